#include "export/exporter.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/log.h"
#include "core/time_format.h"
#include "core/version.h"
#include "export/atomic_file.h"
#include "export/formats.h"
#include "export/sha256.h"
#include "store/dataset_reader.h"
#include "store/schema.h"

namespace lfh {
namespace {

constexpr std::size_t kPendingBatch = 1000;  // records per state transaction (named exports)
constexpr auto kProgressInterval = std::chrono::milliseconds(250);

Status config_error(std::string message) {
  return Status::Error(ErrorKind::kConfig, "export: " + std::move(message));
}

std::string base_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

struct Plan {
  ExportFormat format = ExportFormat::kJson;
  DatasetQuery query;
  ConvertOptions options;
  bool to_stdout = false;
  bool named = false;
  bool chat = false;  // a conversation format: duplicate detection applies
};

bool is_chat_format(ExportFormat format) {
  return format != ExportFormat::kJson && format != ExportFormat::kJsonl;
}

// ASCII upper case: score sources are ANNOTATION, API, EVAL in any case, as in the config.
std::string upper(std::string text) {
  for (char& c : text) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return text;
}

Result<Plan> plan_export(const ExportSpec& spec) {
  Plan plan;
  auto format = parse_export_format(spec.format);
  if (!format) {
    return config_error(fmt::format(
        "unknown format '{}' (json, jsonl, openai-chat, openai-dpo, kto, sharegpt, trl-dpo)",
        spec.format));
  }
  auto pick = parse_pick(spec.pick);
  if (!pick) {
    return config_error(
        fmt::format("unknown pick '{}' (last-generation, all-generations, root)", spec.pick));
  }
  if (spec.out.empty()) return config_error("no output path (use - for standard output)");
  if (spec.min && spec.max && *spec.min > *spec.max) {
    return config_error(fmt::format("min {} is greater than max {}", *spec.min, *spec.max));
  }
  if (spec.incremental && spec.name.empty()) {
    return config_error("--incremental needs a named export ([[export]] name = ...)");
  }
  auto dialect = parse_sharegpt_dialect(spec.sharegpt_dialect);
  if (!dialect) {
    return config_error(fmt::format("unknown ShareGPT dialect '{}' (llamafactory, axolotl)",
                                    spec.sharegpt_dialect));
  }
  auto repeated = parse_turn_policy(spec.repeated_answer);
  auto alternation = parse_turn_policy(spec.non_alternating);
  for (auto [given, value] : {std::pair{&repeated, &spec.repeated_answer},
                              std::pair{&alternation, &spec.non_alternating}}) {
    if (!*given)
      return config_error(fmt::format("unknown policy '{}' (keep, drop, merge)", *value));
  }
  if (spec.validation_fraction &&
      !(*spec.validation_fraction > 0 && *spec.validation_fraction < 1)) {
    return config_error(fmt::format("the validation fraction must be between 0 and 1 (got {})",
                                    *spec.validation_fraction));
  }
  if (spec.validation_fraction && spec.out == "-") {
    return config_error("a validation split needs --out PATH (its second file goes beside it)");
  }
  const std::string source = upper(spec.source);
  if (!source.empty() && source != "ANNOTATION" && source != "API" && source != "EVAL") {
    return config_error(
        fmt::format("unknown score source '{}' (ANNOTATION, API, EVAL; any case)", spec.source));
  }
  plan.format = *format;
  plan.to_stdout = spec.out == "-";
  plan.named = !spec.name.empty();
  plan.chat = is_chat_format(*format);
  DatasetQuery& q = plan.query;
  q.score_names = spec.score_names;
  q.values = spec.values;
  q.source = source;
  q.min_value = spec.min;
  q.max_value = spec.max;
  for (auto [text, target] : {std::pair{&spec.since, &q.since}, std::pair{&spec.until, &q.until}}) {
    if (!*text) continue;
    auto canonical = canonical_iso8601(**text);
    if (!canonical) return config_error(fmt::format("'{}' is not an ISO 8601 time", **text));
    *target = *canonical;
  }
  q.environments = spec.environments;
  q.pick = *pick;
  q.preferred_data_types = preferred_score_types(*format);
  plan.options.pick = *pick;
  plan.options.positive = spec.positive;
  plan.options.sharegpt_dialect = *dialect;
  plan.options.repeated_answer = *repeated;
  plan.options.non_alternating = *alternation;
  return plan;
}

// Where the bytes go: the atomic temp file, standard output, or nowhere (a dry run). Hashes
// everything it writes.
class DataSink {
 public:
  static Result<DataSink> to_file(const std::string& path) {
    DataSink sink;
    auto file = AtomicFile::create(path);
    if (!file.ok()) return file.status();
    sink.file_.emplace(std::move(file).value());
    return sink;
  }
  static DataSink to_fd(int fd) {
    DataSink sink;
    sink.stdout_.emplace(fd, false, "standard output");
    return sink;
  }
  static DataSink discard() { return DataSink(); }

  Status write(std::string_view data) {
    bytes_ += data.size();
    if (file_) {
      hash_.update(data);
      return file_->write(data);
    }
    if (stdout_) {
      hash_.update(data);
      return stdout_->write(data);
    }
    return Status::Ok();
  }

  Status finish() {
    if (file_) return file_->commit();
    return stdout_ ? stdout_->flush() : Status::Ok();
  }

  std::uint64_t bytes() const { return bytes_; }
  std::string sha256() { return hash_.hex_digest(); }

 private:
  std::optional<AtomicFile> file_;
  std::optional<FdWriter> stdout_;
  Sha256 hash_;
  std::uint64_t bytes_ = 0;
};

// The reader of standard output went away (export --out - | head): a normal end.
bool is_closed_output(const Status& status) {
  return status.kind() == ErrorKind::kIo && status.detail() == EPIPE;
}

// The record separators of each format: a JSON array is "[\n" rec ",\n" rec "\n]\n" (or "[]\n"),
// everything else is one record per line.
class RecordFraming {
 public:
  explicit RecordFraming(ExportFormat format) : array_(format == ExportFormat::kJson) {}
  std::string_view before_record() {
    const bool first = count_++ == 0;
    if (!array_) return {};
    return first ? "[\n" : ",\n";
  }
  std::string_view after_record() const { return array_ ? std::string_view() : "\n"; }
  std::string_view end() const {
    if (!array_) return {};
    return count_ == 0 ? "[]\n" : "\n]\n";
  }

 private:
  bool array_;
  std::size_t count_ = 0;
};

// Shows progress on standard error at most every kProgressInterval, when it is a terminal.
class TerminalProgress {
 public:
  TerminalProgress(bool wanted, Clock& clock)
      : enabled_(wanted && ::isatty(STDERR_FILENO) == 1), clock_(clock) {}
  ~TerminalProgress() {
    if (shown_) put("\r\033[K");
  }
  void update(const ExportProgress& progress) {
    if (!enabled_) return;
    auto now = clock_.mono();
    if (shown_ && now - last_ < kProgressInterval) return;
    last_ = now;
    shown_ = true;
    put("\r\033[K" + format_progress_line(progress));
  }

 private:
  static void put(const std::string& text) {
    // Best effort: a progress line that cannot be shown is not an error.
    (void)!::write(STDERR_FILENO, text.data(), text.size());
  }
  bool enabled_;
  Clock& clock_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

Json optional_json(const std::optional<std::string>& v) {
  return v ? Json(*v) : Json(nullptr);
}
Json optional_json(const std::optional<double>& v) {
  return v ? Json(*v) : Json(nullptr);
}

// What the manifest says about its own data file (the main file or the validation file).
struct FileFacts {
  std::string path;
  std::size_t records = 0;
  std::uint64_t bytes = 0;
  std::string sha256;
  const char* split = nullptr;  // "train" / "validation" with a split, else null
};

std::string manifest_text(const ExportRequest& request, const Plan& plan,
                          const ExportSummary& summary, const FileFacts& file, int schema_version,
                          SysTime now) {
  const ExportSpec& spec = request.spec;
  Json filters = Json::object();
  filters["score_names"] = spec.score_names;
  filters["values"] = spec.values;
  filters["source"] = plan.query.source;
  filters["min"] = optional_json(spec.min);
  filters["max"] = optional_json(spec.max);
  filters["since"] = optional_json(plan.query.since);
  filters["until"] = optional_json(plan.query.until);
  filters["environments"] = spec.environments;
  Json skipped = Json::object();
  for (const auto& [reason, count] : summary.skipped_by_reason) skipped[reason] = count;
  Json m = Json::object();
  m["lfharvest_version"] = kVersion;
  m["export_name"] = spec.name.empty() ? Json(nullptr) : Json(spec.name);
  m["format"] = export_format_name(plan.format);
  m["pick"] = pick_name(plan.query.pick);
  m["positive"] = optional_json(spec.positive);
  m["incremental"] = spec.incremental;
  m["filters"] = std::move(filters);
  m["file"] = base_name(file.path);
  m["records"] = file.records;
  m["unchanged"] = summary.unchanged;
  m["skipped"] = summary.skipped();
  m["skipped_by_reason"] = std::move(skipped);
  m["unfetched_traces"] = summary.unfetched_traces;
  m["bytes"] = file.bytes;
  m["sha256"] = file.sha256;
  m["database"] = Json{{"file", base_name(request.db_path)}, {"schema_version", schema_version}};
  m["created_at"] = format_iso8601(now);
  // Added with the trainer-facing options; after the original keys so those keep their place.
  if (plan.format == ExportFormat::kShareGpt) {
    m["sharegpt_dialect"] = sharegpt_dialect_name(plan.options.sharegpt_dialect);
  }
  Json checks = Json::object();
  checks["repeated_answer"] = Json{{"found", summary.repeated_answers},
                                   {"policy", turn_policy_name(plan.options.repeated_answer)}};
  checks["non_alternating"] = Json{{"found", summary.non_alternating},
                                   {"policy", turn_policy_name(plan.options.non_alternating)}};
  checks["duplicates"] =
      Json{{"found", summary.duplicates}, {"policy", spec.drop_duplicates ? "drop" : "keep"}};
  m["conversation_checks"] = std::move(checks);
  m["max_record_bytes"] = spec.max_record_bytes ? Json(*spec.max_record_bytes) : Json(nullptr);
  m["approx_tokens"] =
      Json{{"total", summary.approx_tokens}, {"largest_record", summary.approx_tokens_max}};
  if (file.split) {
    m["split"] = Json{{"part", file.split},
                      {"validation_fraction", *spec.validation_fraction},
                      {"by", "sha256(trace_id)"}};
  }
  return m.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// A plain export reads any schema version from 1 up to this program's.
Result<int> check_schema(DatasetReader& reader, const std::string& db_path) {
  auto version = reader.schema_version();
  if (!version.ok()) return version.status();
  if (*version == 0) {
    return Status::Error(ErrorKind::kCorrupt,
                         fmt::format("{}: not an lfharvest database (no schema); run "
                                     "`lfharvest sync` first",
                                     db_path));
  }
  if (*version > latest_schema_version()) {
    return Status::Error(
        ErrorKind::kFatal,
        fmt::format("{}: database schema version {} is newer than this lfharvest understands "
                    "(version {})",
                    db_path, *version, latest_schema_version()));
  }
  return *version;
}

}  // namespace

std::size_t ExportSummary::skipped() const {
  std::size_t total = 0;
  for (const auto& [reason, count] : skipped_by_reason) total += count;
  return total;
}

std::string sibling_path(const std::string& path, const std::string& tag) {
  const auto slash = path.find_last_of('/');
  const std::size_t name_start = slash == std::string::npos ? 0 : slash + 1;
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || dot <= name_start) return path + "." + tag;
  return path.substr(0, dot) + "." + tag + path.substr(dot);
}

bool in_validation_split(const std::string& trace_id, double fraction) {
  const std::string hex = Sha256::of(trace_id).substr(0, 16);
  const double position =
      static_cast<double>(std::stoull(hex, nullptr, 16)) / 18446744073709551616.0;
  return position < fraction;
}

namespace {

// One output file of the run and its framing.
struct Output {
  std::string path;  // "-" for standard output
  DataSink sink;
  RecordFraming framing;
  std::size_t records = 0;

  Status write_record(std::string_view text) {
    Status s = sink.write(framing.before_record());
    if (s.ok()) s = sink.write(text);
    if (s.ok()) s = sink.write(framing.after_record());
    if (s.ok()) ++records;
    return s;
  }
};

Result<Output> open_output(const Plan& plan, const ExportRequest& request, std::string path) {
  if (request.dry_run)
    return Output{std::move(path), DataSink::discard(), RecordFraming(plan.format)};
  if (path == "-") {
    return Output{std::move(path), DataSink::to_fd(request.stdout_fd), RecordFraming(plan.format)};
  }
  auto sink = DataSink::to_file(path);
  if (!sink.ok()) return sink.status();
  return Output{std::move(path), std::move(sink).value(), RecordFraming(plan.format)};
}

Result<std::size_t> remove_stale_files_of(const std::string& path) {
  auto removed = remove_stale_temp_files(path);
  if (!removed.ok()) return removed.status();
  auto removed_manifest = remove_stale_temp_files(path + ".manifest.json");
  if (!removed_manifest.ok()) return removed_manifest.status();
  return *removed + *removed_manifest;
}

}  // namespace

Result<ExportSummary> run_export(const ExportRequest& request, Clock& clock, std::stop_token stop) {
  const auto started = clock.mono();
  auto plan_result = plan_export(request.spec);
  if (!plan_result.ok()) return plan_result.status();
  const Plan& plan = *plan_result;
  const ExportSpec& spec = request.spec;

  auto reader_result = DatasetReader::open(request.db_path);
  if (!reader_result.ok()) return reader_result.status();
  DatasetReader& reader = *reader_result;
  auto schema = check_schema(reader, request.db_path);
  if (!schema.ok()) return schema.status();
  // Named exports keep state, which may need the 0002 tables: migrate through a short read-write
  // connection (the file exists and is an lfharvest database: checked above). A dry run writes
  // nothing: it compares with the state only when the tables are there.
  std::optional<ExportStateStore> state;
  const bool compare_state = plan.named && (!request.dry_run || *schema >= 2);
  if (plan.named && !request.dry_run) {
    auto opened = ExportStateStore::open(request.db_path);
    if (!opened.ok()) return opened.status();
    state.emplace(std::move(opened).value());
    schema = reader.schema_version();
    if (!schema.ok()) return schema.status();
  }

  ExportSummary summary;
  summary.dry_run = request.dry_run;
  std::int64_t run_id = 0;
  if (state) {
    auto run =
        state->begin_run(spec.name, export_format_name(plan.format), pick_name(plan.query.pick),
                         spec.incremental, format_iso8601(clock.now()));
    if (!run.ok()) return run.status();
    run_id = *run;
  }
  // An incremental run never replaces the full file: its delta goes to a file of its own.
  std::string target = spec.out;
  if (spec.incremental && !plan.to_stdout) {
    target = sibling_path(spec.out, request.dry_run ? std::string("delta-NEXT")
                                                    : fmt::format("delta-{:06d}", run_id));
  }
  const std::string validation_target =
      spec.validation_fraction ? sibling_path(target, "validation") : std::string();
  summary.out_path = target;
  summary.validation_path = validation_target;
  if (!plan.to_stdout && !request.dry_run) {
    for (const std::string* path : {&std::as_const(target), &validation_target}) {
      if (path->empty()) continue;
      auto removed = remove_stale_files_of(*path);
      if (!removed.ok()) return removed.status();
      summary.stale_temp_files_removed += *removed;
    }
  }
  auto unfetched = reader.count_unfetched_traces(plan.query);
  if (!unfetched.ok()) return unfetched.status();
  summary.unfetched_traces = *unfetched;

  auto main_output = open_output(plan, request, target);
  if (!main_output.ok()) return main_output.status();
  Output& output = *main_output;
  std::optional<Output> validation;
  if (spec.validation_fraction) {
    auto opened = open_output(plan, request, validation_target);
    if (!opened.ok()) return opened.status();
    validation.emplace(std::move(opened).value());
  }
  std::vector<ExportedRecord> pending;
  // Duplicate detection keeps a 64-bit hash per distinct record (about 40 bytes each in the set):
  // the one part of an export whose memory grows with the number of records.
  std::unordered_set<std::size_t> seen;
  const std::hash<std::string_view> text_hash;

  if (Status s = reader.start(plan.query); !s.ok()) return s;
  // Not when the data itself goes to the same terminal: the two would interleave.
  const bool data_on_terminal =
      plan.to_stdout && !request.dry_run && ::isatty(request.stdout_fd) == 1;
  TerminalProgress terminal(request.progress_on_tty && !data_on_terminal, clock);
  ExportProgress progress;
  DatasetRow row;
  ConvertedRecord converted;
  Sha256 record_hash;
  for (;;) {
    if (stop.stop_requested()) {
      return Status::Error(ErrorKind::kCancelled, "export cancelled; the target is unchanged");
    }
    auto more = reader.next(row);
    if (!more.ok()) return more.status();
    if (!*more) break;
    convert_record(plan.format, row, plan.options, converted);
    summary.repeated_answers += converted.repeated_answer ? 1 : 0;
    summary.non_alternating += converted.non_alternating ? 1 : 0;
    if (converted.ok() && spec.max_record_bytes && converted.text.size() > *spec.max_record_bytes) {
      converted.skip = SkipReason{"record_too_large",
                                  fmt::format("{} bytes, over --max-record-bytes {}",
                                              converted.text.size(), *spec.max_record_bytes)};
    }
    if (converted.ok() && plan.chat && !seen.insert(text_hash(converted.text)).second) {
      ++summary.duplicates;
      if (spec.drop_duplicates) {
        converted.skip = SkipReason{"duplicate", "identical to an earlier record"};
      }
    }
    if (!converted.ok()) {
      ++summary.skipped_by_reason[converted.skip.code];
      ++progress.skipped;
      log::debug("export: trace {} observation {} skipped: {} ({})", row.trace_id,
                 row.observation_id.empty() ? "-" : row.observation_id, converted.skip.code,
                 converted.skip.detail);
    } else {
      bool write = true;
      if (compare_state) {
        std::string key = record_key(row, plan.query.pick);
        record_hash.update(converted.text);
        std::string hash = record_hash.hex_digest();
        auto previous = reader.exported_record_hash(spec.name, key);
        if (!previous.ok()) return previous.status();
        const bool same = *previous && **previous == hash;
        if (same && spec.incremental) {
          write = false;
          ++summary.unchanged;
          ++progress.unchanged;
        } else if (!same && state) {
          pending.push_back({std::move(key), std::move(hash)});
          if (pending.size() >= kPendingBatch) {
            if (Status s = state->add_pending(run_id, pending); !s.ok()) return s;
            pending.clear();
          }
        }
      }
      if (write) {
        Output& to = validation && in_validation_split(row.trace_id, *spec.validation_fraction)
                         ? *validation
                         : output;
        if (Status s = to.write_record(converted.text); !s.ok()) {
          if (!plan.to_stdout || !is_closed_output(s)) return s;
          summary.output_closed = true;
          break;
        }
        const std::uint64_t tokens = (converted.text.size() + 3) / 4;
        summary.approx_tokens += tokens;
        summary.approx_tokens_max = std::max(summary.approx_tokens_max, tokens);
        ++progress.records;
      }
    }
    progress.bytes = output.sink.bytes() + (validation ? validation->sink.bytes() : 0);
    progress.seconds = std::chrono::duration<double>(clock.mono() - started).count();
    terminal.update(progress);
    if (request.on_progress) request.on_progress(progress);
  }
  summary.records = output.records;
  summary.validation_records = validation ? validation->records : 0;
  if (summary.output_closed) {
    // What was written reached a reader that stopped reading; nothing is recorded as exported.
    summary.bytes = output.sink.bytes();
    summary.seconds = std::chrono::duration<double>(clock.mono() - started).count();
    return summary;
  }
  if (spec.incremental && summary.records + summary.validation_records == 0 && !plan.to_stdout) {
    // Nothing new: no delta file (the temp files are removed with the sinks).
    summary.nothing_new = true;
    summary.out_path.clear();
    summary.validation_path.clear();
  } else {
    for (Output* out : {&output, validation ? &*validation : nullptr}) {
      if (!out) continue;
      Status s = out->sink.write(out->framing.end());
      if (s.ok()) s = out->sink.finish();
      if (!s.ok()) {
        if (out->path == "-" && is_closed_output(s)) {
          summary.output_closed = true;
          break;
        }
        return s;
      }
    }
    summary.bytes = output.sink.bytes();
    summary.sha256 = output.sink.sha256();
    if (validation) {
      summary.validation_bytes = validation->sink.bytes();
      summary.validation_sha256 = validation->sink.sha256();
    }
  }
  if (request.dry_run || summary.output_closed) {
    summary.seconds = std::chrono::duration<double>(clock.mono() - started).count();
    return summary;
  }

  if (!plan.to_stdout && !summary.nothing_new) {
    summary.manifest_path = target + ".manifest.json";
    FileFacts main_facts{target, summary.records, summary.bytes, summary.sha256,
                         validation ? "train" : nullptr};
    std::string manifest = manifest_text(request, plan, summary, main_facts, *schema, clock.now());
    if (Status s = write_file_atomically(summary.manifest_path, manifest); !s.ok()) return s;
    if (validation) {
      summary.validation_manifest_path = validation_target + ".manifest.json";
      FileFacts facts{validation_target, summary.validation_records, summary.validation_bytes,
                      summary.validation_sha256, "validation"};
      std::string text = manifest_text(request, plan, summary, facts, *schema, clock.now());
      if (Status s = write_file_atomically(summary.validation_manifest_path, text); !s.ok()) {
        return s;
      }
    }
  }
  if (state) {
    // Last, after the file is in place: a crash before this commit makes the next incremental
    // run export these records again rather than lose them.
    if (Status s = state->add_pending(run_id, pending); !s.ok()) return s;
    ExportRunTotals totals{
        summary.records + summary.validation_records, summary.unchanged, summary.skipped(),
        summary.bytes + summary.validation_bytes,     summary.out_path,  summary.sha256};
    if (Status s = state->finish_run(run_id, spec.name, format_iso8601(clock.now()), totals);
        !s.ok()) {
      return s;
    }
  }
  summary.seconds = std::chrono::duration<double>(clock.mono() - started).count();
  return summary;
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, units[unit]);
}

std::string format_summary_line(const ExportSummary& s) {
  const std::string where = s.out_path == "-" ? "standard output" : s.out_path;
  std::string line;
  if (s.nothing_new) {
    line = "nothing new since the last run: no delta file written (the full export is untouched)";
  } else if (s.dry_run) {
    line = fmt::format("dry run: would write {} record{} ({}) to {}", s.records,
                       s.records == 1 ? "" : "s", format_bytes(s.bytes), where);
  } else if (s.output_closed) {
    line = fmt::format("standard output was closed after {} record{} ({}); stopped", s.records,
                       s.records == 1 ? "" : "s", format_bytes(s.bytes));
  } else {
    line = fmt::format("exported {} record{} ({}) to {} in {:.1f} s", s.records,
                       s.records == 1 ? "" : "s", format_bytes(s.bytes), where, s.seconds);
  }
  if (!s.validation_path.empty()) {
    line += fmt::format("; {} validation record{} ({}) to {}", s.validation_records,
                        s.validation_records == 1 ? "" : "s", format_bytes(s.validation_bytes),
                        s.validation_path);
  }
  if (s.approx_tokens > 0) {
    line += fmt::format("; ~{} tokens, largest record ~{}", s.approx_tokens, s.approx_tokens_max);
  }
  if (s.unchanged > 0) line += fmt::format("; {} unchanged since the last run", s.unchanged);
  if (const std::size_t skipped = s.skipped(); skipped > 0) {
    line += fmt::format("; {}skipped {} (", s.dry_run ? "would have " : "", skipped);
    bool first = true;
    for (const auto& [reason, count] : s.skipped_by_reason) {
      line += fmt::format("{}{}: {}", first ? "" : ", ", reason, count);
      first = false;
    }
    line += ")";
  }
  for (auto [count, what] : {std::pair{s.repeated_answers, "repeated answer"},
                             std::pair{s.non_alternating, "non-alternating conversation"},
                             std::pair{s.duplicates, "duplicate record"}}) {
    if (count > 0) line += fmt::format("; {} {}{}", count, what, count == 1 ? "" : "s");
  }
  if (s.unfetched_traces > 0) {
    line += fmt::format("; {} matching trace{} not fetched yet", s.unfetched_traces,
                        s.unfetched_traces == 1 ? "" : "s");
  }
  return line;
}

std::string format_progress_line(const ExportProgress& p) {
  std::string line = fmt::format("exporting: {} records, {} skipped", p.records, p.skipped);
  if (p.unchanged > 0) line += fmt::format(", {} unchanged", p.unchanged);
  return line + fmt::format(", {}, {:.1f} s", format_bytes(p.bytes), p.seconds);
}

}  // namespace lfh
