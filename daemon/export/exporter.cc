#include "export/exporter.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <optional>
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
};

Result<Plan> plan_export(const ExportSpec& spec) {
  Plan plan;
  auto format = parse_export_format(spec.format);
  if (!format) {
    return config_error(fmt::format(
        "unknown format '{}' (json, jsonl, openai-chat, openai-dpo, kto, sharegpt)", spec.format));
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
  plan.format = *format;
  plan.to_stdout = spec.out == "-";
  plan.named = !spec.name.empty();
  DatasetQuery& q = plan.query;
  q.score_names = spec.score_names;
  q.values = spec.values;
  q.source = spec.source;
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
  return plan;
}

// Where the bytes go: the atomic temp file, or standard output. Hashes everything it writes.
class DataSink {
 public:
  static Result<DataSink> open(const Plan& plan, const ExportRequest& request) {
    DataSink sink;
    if (plan.to_stdout) {
      sink.stdout_.emplace(request.stdout_fd, false, "standard output");
    } else {
      auto file = AtomicFile::create(request.spec.out);
      if (!file.ok()) return file.status();
      sink.file_.emplace(std::move(file).value());
    }
    return sink;
  }

  Status write(std::string_view data) {
    hash_.update(data);
    bytes_ += data.size();
    return file_ ? file_->write(data) : stdout_->write(data);
  }

  Status finish() { return file_ ? file_->commit() : stdout_->flush(); }

  std::uint64_t bytes() const { return bytes_; }
  std::string sha256() { return hash_.hex_digest(); }

 private:
  std::optional<AtomicFile> file_;
  std::optional<FdWriter> stdout_;
  Sha256 hash_;
  std::uint64_t bytes_ = 0;
};

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

std::string manifest_text(const ExportRequest& request, const Plan& plan,
                          const ExportSummary& summary, int schema_version, SysTime now) {
  const ExportSpec& spec = request.spec;
  Json filters = Json::object();
  filters["score_names"] = spec.score_names;
  filters["values"] = spec.values;
  filters["source"] = spec.source;
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
  m["file"] = base_name(spec.out);
  m["records"] = summary.records;
  m["unchanged"] = summary.unchanged;
  m["skipped"] = summary.skipped();
  m["skipped_by_reason"] = std::move(skipped);
  m["unfetched_traces"] = summary.unfetched_traces;
  m["bytes"] = summary.bytes;
  m["sha256"] = summary.sha256;
  m["database"] = Json{{"file", base_name(request.db_path)}, {"schema_version", schema_version}};
  m["created_at"] = format_iso8601(now);
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
  // connection (the file exists and is an lfharvest database: checked above).
  std::optional<ExportStateStore> state;
  if (plan.named) {
    auto opened = ExportStateStore::open(request.db_path);
    if (!opened.ok()) return opened.status();
    state.emplace(std::move(opened).value());
    schema = reader.schema_version();
    if (!schema.ok()) return schema.status();
  }

  ExportSummary summary;
  summary.out_path = spec.out;
  if (!plan.to_stdout) {
    auto removed = remove_stale_temp_files(spec.out);
    if (!removed.ok()) return removed.status();
    auto removed_manifest = remove_stale_temp_files(spec.out + ".manifest.json");
    if (!removed_manifest.ok()) return removed_manifest.status();
    summary.stale_temp_files_removed = *removed + *removed_manifest;
  }
  auto unfetched = reader.count_unfetched_traces(plan.query);
  if (!unfetched.ok()) return unfetched.status();
  summary.unfetched_traces = *unfetched;

  auto sink_result = DataSink::open(plan, request);
  if (!sink_result.ok()) return sink_result.status();
  DataSink& sink = *sink_result;

  std::int64_t run_id = 0;
  if (state) {
    auto run =
        state->begin_run(spec.name, export_format_name(plan.format), pick_name(plan.query.pick),
                         spec.incremental, format_iso8601(clock.now()));
    if (!run.ok()) return run.status();
    run_id = *run;
  }
  std::vector<ExportedRecord> pending;

  if (Status s = reader.start(plan.query); !s.ok()) return s;
  RecordFraming framing(plan.format);
  // Not when the data itself goes to the same terminal: the two would interleave.
  const bool data_on_terminal = plan.to_stdout && ::isatty(request.stdout_fd) == 1;
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
    if (!converted.ok()) {
      ++summary.skipped_by_reason[converted.skip.code];
      ++progress.skipped;
      log::debug("export: trace {} observation {} skipped: {} ({})", row.trace_id,
                 row.observation_id.empty() ? "-" : row.observation_id, converted.skip.code,
                 converted.skip.detail);
    } else {
      bool write = true;
      if (state) {
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
        } else if (!same) {
          pending.push_back({std::move(key), std::move(hash)});
          if (pending.size() >= kPendingBatch) {
            if (Status s = state->add_pending(run_id, pending); !s.ok()) return s;
            pending.clear();
          }
        }
      }
      if (write) {
        Status s = sink.write(framing.before_record());
        if (s.ok()) s = sink.write(converted.text);
        if (s.ok()) s = sink.write(framing.after_record());
        if (!s.ok()) return s;
        ++summary.records;
        ++progress.records;
      }
    }
    progress.bytes = sink.bytes();
    progress.seconds = std::chrono::duration<double>(clock.mono() - started).count();
    terminal.update(progress);
    if (request.on_progress) request.on_progress(progress);
  }
  if (Status s = sink.write(framing.end()); !s.ok()) return s;
  summary.bytes = sink.bytes();
  summary.sha256 = sink.sha256();
  if (Status s = sink.finish(); !s.ok()) return s;

  if (!plan.to_stdout) {
    summary.manifest_path = spec.out + ".manifest.json";
    std::string manifest = manifest_text(request, plan, summary, *schema, clock.now());
    if (Status s = write_file_atomically(summary.manifest_path, manifest); !s.ok()) return s;
  }
  if (state) {
    // Last, after the file is in place: a crash before this commit makes the next incremental
    // run export these records again rather than lose them.
    if (Status s = state->add_pending(run_id, pending); !s.ok()) return s;
    ExportRunTotals totals{summary.records, summary.unchanged, summary.skipped(),
                           summary.bytes,   spec.out,          summary.sha256};
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
  std::string line = fmt::format("exported {} record{} ({}) to {} in {:.1f} s", s.records,
                                 s.records == 1 ? "" : "s", format_bytes(s.bytes),
                                 s.out_path == "-" ? "standard output" : s.out_path, s.seconds);
  if (s.unchanged > 0) line += fmt::format("; {} unchanged since the last run", s.unchanged);
  if (const std::size_t skipped = s.skipped(); skipped > 0) {
    line += fmt::format("; skipped {} (", skipped);
    bool first = true;
    for (const auto& [reason, count] : s.skipped_by_reason) {
      line += fmt::format("{}{}: {}", first ? "" : ", ", reason, count);
      first = false;
    }
    line += ")";
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
