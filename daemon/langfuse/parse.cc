#include "langfuse/parse.h"

#include <fmt/format.h>

#include <cctype>
#include <climits>
#include <cmath>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/time_format.h"
#include "langfuse/json_scan.h"

namespace lfh {
namespace {

using Json = nlohmann::json;

// Members of a page object we look at are few; more than this is not a Langfuse response.
constexpr std::size_t kMaxEnvelopeMembers = 1000;
// `meta`, health and project documents are small and flat.
constexpr std::size_t kMaxSmallDepth = 64;

// Every serialization replaces invalid UTF-8 instead of throwing.
std::string dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// `text` as a JSON string literal. The output is sized once: serializing through nlohmann would
// grow the string by doubling, which costs up to twice a tens-of-megabytes input.
std::string quote_json_string(std::string_view text) {
  if (!json_scan::is_valid_utf8(text)) return dump(Json(std::string(text)));
  auto escaped_size = [](char c) -> std::size_t {
    switch (c) {
      case '"':
      case '\\':
      case '\b':
      case '\f':
      case '\n':
      case '\r':
      case '\t':
        return 2;
      default:
        return static_cast<unsigned char>(c) < 0x20 ? 6 : 1;
    }
  };
  std::size_t size = 2;
  for (char c : text) size += escaped_size(c);
  std::string out;
  out.reserve(size);
  out.push_back('"');
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

// Frees a string's buffer now (assigning an empty string would keep the capacity).
void release(std::string& text) {
  std::string().swap(text);
}

Status malformed(std::string_view why) {
  return Status::Error(ErrorKind::kRetryable, fmt::format("malformed response: {}", why));
}

// Server data quoted in reasons: printable ASCII only, bounded, so reasons are safe to log and
// store whatever the server sent.
std::string printable(std::string_view text, std::size_t max_len) {
  std::string out;
  for (char c : text.substr(0, max_len)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7F ? c : '?');
  }
  if (text.size() > max_len) out += "...";
  return out;
}

std::string describe(const Json::exception& e) {
  if (e.id == 406) return "number out of range for a double";
  std::string_view what = e.what();
  // nlohmann appends the token it stopped at, which can be megabytes of item text.
  if (auto cut = what.find("; last read"); cut != std::string_view::npos)
    what = what.substr(0, cut);
  if (auto tag = what.find("] "); tag != std::string_view::npos) what = what.substr(tag + 2);
  return "invalid JSON: " + printable(what, 160);
}

// Parses one JSON text. Broken Unicode is repaired and the text parsed again, so a stray byte
// from a proxy or a surrogate pair cut in half by the server's truncation loses nothing.
bool parse_json(std::string_view text, Json& out, std::string& reason) {
  try {
    out = Json::parse(text);
    return true;
  } catch (const Json::exception& first) {
    if (!json_scan::has_broken_unicode(text)) {
      reason = describe(first);
      return false;
    }
  }
  try {
    out = Json::parse(json_scan::repair_unicode(text));
    return true;
  } catch (const Json::exception& second) {
    reason = describe(second);
    return false;
  }
}

bool key_is(const json_scan::Child& child, std::string_view name) {
  if (!child.key_has_escapes) return child.key == name;
  return json_scan::decode_string("\"" + std::string(child.key) + "\"") == name;
}

// The id of an item that could not be parsed, read from its text; "#<index>" when unreadable.
std::string id_for_error(std::string_view item_text, std::size_t index) {
  json_scan::Document doc;
  std::string unused;
  if (json_scan::scan_children(item_text, kMaxEnvelopeMembers, doc, unused) && doc.root_is_object) {
    for (const auto& child : doc.children) {
      if (child.key != "id" || child.key_has_escapes) continue;
      std::string_view v = child.value;
      if (v.size() < 3 || v.front() != '"') continue;
      v = v.substr(1, v.size() - 2);
      bool plain = v.size() <= 200;
      for (char c : v) plain = plain && c >= 0x20 && c < 0x7F && c != '\\';
      if (plain) return std::string(v);
    }
  }
  return fmt::format("#{}", index);
}

// system_clock counts nanoseconds in 64 bits (years 1678..2262); converting a date outside that
// overflows, so years no Langfuse data can have are refused before conversion.
bool year_in_range(std::string_view text) {
  if (text.size() < 4) return false;
  int year = 0;
  for (char c : text.substr(0, 4)) {
    if (c < '0' || c > '9') return false;
    year = year * 10 + (c - '0');
  }
  return year >= 1900 && year <= 2200;
}

// Reads fields of one item, moving values out and erasing them so that what remains is "every
// other field". The first problem is kept as the item's error.
class ItemReader {
 public:
  explicit ItemReader(Json& item) : item_(item) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  void fail(std::string reason) {
    if (error_.empty()) error_ = std::move(reason);
  }

  // The value, moved out; nullopt when absent or null.
  std::optional<Json> take(const std::string& key) {
    auto it = item_.find(key);
    if (it == item_.end()) return std::nullopt;
    std::optional<Json> value;
    if (!it->is_null()) value = std::move(*it);
    item_.erase(it);
    return value;
  }

  std::optional<std::string> take_string(const std::string& key, bool required) {
    auto value = take(key);
    if (!value) {
      if (required) fail("missing " + key);
      return std::nullopt;
    }
    if (!value->is_string()) {
      fail(fmt::format("{} is not a string (got {})", key, value->type_name()));
      return std::nullopt;
    }
    return std::move(value->get_ref<std::string&>());
  }

  std::optional<std::string> take_timestamp(const std::string& key, bool required) {
    auto text = take_string(key, required);
    if (!text) return std::nullopt;
    auto canonical = year_in_range(*text) ? canonical_iso8601(*text) : std::nullopt;
    if (!canonical) fail(fmt::format("bad timestamp in {}: '{}'", key, printable(*text, 40)));
    return canonical;
  }

 private:
  Json& item_;
  std::string error_;
};

// ---- page envelope ----------------------------------------------------------------------------

struct Envelope {
  std::vector<json_scan::Child> items;  // views into the body
  std::optional<Json> meta;             // nullopt when absent or null
};

Result<Envelope> scan_page(std::string_view body) {
  json_scan::Document doc;
  std::string error;
  if (!json_scan::scan_children(body, kMaxEnvelopeMembers, doc, error)) {
    return malformed("not JSON: " + error);
  }
  if (!doc.root_is_object) return malformed("not a JSON object");
  const json_scan::Child* data = nullptr;
  const json_scan::Child* meta = nullptr;
  for (const auto& child : doc.children) {  // the last duplicate wins, as in a JSON parser
    if (key_is(child, "data")) data = &child;
    if (key_is(child, "meta")) meta = &child;
  }
  if (data == nullptr) return malformed("no data array");
  if (data->value.empty() || data->value.front() != '[') return malformed("data is not an array");
  json_scan::Document items;
  if (!json_scan::scan_children(data->value, kMaxItemsPerPage, items, error)) {
    return malformed("data: " + error);
  }
  Envelope envelope;
  envelope.items = std::move(items.children);
  if (meta != nullptr) {
    if (meta->depth > kMaxSmallDepth) return malformed("meta is nested too deeply");
    Json value;
    if (!parse_json(meta->value, value, error)) return malformed("meta: " + error);
    if (!value.is_null()) envelope.meta = std::move(value);
  }
  return envelope;
}

// A small whole document (health): depth-checked, then parsed.
Result<Json> parse_small_object(std::string_view body) {
  json_scan::Document doc;
  std::string error;
  if (!json_scan::scan_children(body, kMaxEnvelopeMembers, doc, error)) {
    return malformed("not JSON: " + error);
  }
  if (!doc.root_is_object) return malformed("not a JSON object");
  for (const auto& child : doc.children) {
    if (child.depth > kMaxSmallDepth) return malformed("nested too deeply");
  }
  Json value;
  if (!parse_json(body, value, error)) return malformed(error);
  return value;
}

// Cursor paging (current API).
Result<std::optional<std::string>> next_cursor(const Envelope& envelope,
                                               const std::optional<std::string>& previous) {
  if (!envelope.meta || !envelope.meta->is_object()) return malformed("no meta object");
  std::optional<std::string> cursor;
  auto it = envelope.meta->find("cursor");
  if (it != envelope.meta->end() && !it->is_null()) {
    if (!it->is_string()) return malformed("meta.cursor is not a string");
    if (!it->get_ref<const std::string&>().empty()) cursor = it->get<std::string>();
  }
  // An empty page that offers a cursor is followed: ending here would silently drop whatever
  // comes after it. The sync engine stops a listing that keeps returning empty pages.
  if (cursor && previous && *cursor == *previous) {
    return Status::Error(ErrorKind::kCorrupt, "cursor did not advance");
  }
  return cursor;
}

// Page-number paging (legacy API).
Result<std::optional<std::string>> next_page(const Envelope& envelope, int current_page) {
  if (!envelope.meta || !envelope.meta->is_object()) return malformed("no meta object");
  auto it = envelope.meta->find("totalPages");
  if (it == envelope.meta->end() || !it->is_number()) return malformed("no meta.totalPages");
  double total = it->get<double>();
  if (!std::isfinite(total) || total != std::floor(total)) {
    return malformed("meta.totalPages is not an integer");
  }
  int page = current_page < 1 ? 1 : current_page;
  if (envelope.items.empty() || page == INT_MAX || static_cast<double>(page) >= total) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(std::to_string(page + 1));
}

// One item's DOM; false with a reason when it is not a JSON object.
bool parse_item(std::string_view text, Json& item, std::string& reason) {
  if (!parse_json(text, item, reason)) return false;
  if (item.is_object()) return true;
  reason = fmt::format("item is not an object (got {})", item.type_name());
  return false;
}

// Runs convert(item_text, record, reason) on every item; items that fail become RecordErrors.
// Each item's DOM lives only inside convert(), so one item at a time is held in memory.
template <typename Record, typename Convert>
void convert_items(const Envelope& envelope, Convert convert, std::vector<Record>& records,
                   std::vector<RecordError>& errors) {
  records.reserve(envelope.items.size());
  for (std::size_t i = 0; i < envelope.items.size(); ++i) {
    const json_scan::Child& child = envelope.items[i];
    std::string reason;
    Record record;
    if (child.depth > kMaxItemDepth) {
      reason = fmt::format("nested deeper than {} levels", kMaxItemDepth);
    } else {
      convert(child.value, record, reason);
    }
    if (reason.empty()) {
      records.push_back(std::move(record));
    } else {
      errors.push_back(
          RecordError{record.id.empty() ? id_for_error(child.value, i) : std::move(record.id),
                      std::move(reason)});
    }
  }
}

// Runs a parser body, turning any escaped exception into a Status: the parsers never throw.
template <typename T, typename Body>
Result<T> guarded(Body body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Status::Error(ErrorKind::kFatal, "out of memory while parsing a response");
  } catch (const std::exception& e) {
    return malformed(printable(e.what(), 160));
  }
}

// ---- scores -----------------------------------------------------------------------------------

bool is_string_type(const std::string& data_type) {
  return data_type == "CATEGORICAL" || data_type == "TEXT" || data_type == "CORRECTION";
}

void set_boolean(Score& score, bool value) {
  score.value_json = value ? "true" : "false";
  score.value_num = value ? 1.0 : 0.0;
  score.string_value = value ? "True" : "False";
}

// v3: value is a number (NUMERIC), a boolean (BOOLEAN) or a string (the others).
void read_value_v3(ItemReader& reader, Score& score) {
  auto value = reader.take("value");
  if (!value) return;  // value_json stays "null"
  const std::string& type = score.data_type;
  auto wrong = [&] {
    reader.fail(fmt::format("value of a {} score is a {}", type.empty() ? "typeless" : type,
                            value->type_name()));
  };
  if (value->is_boolean()) {
    if (type != "BOOLEAN" && !type.empty()) return wrong();
    set_boolean(score, value->get<bool>());
  } else if (value->is_number()) {
    double number = value->get<double>();
    if (type == "BOOLEAN" && (number == 0 || number == 1)) return set_boolean(score, number == 1);
    if (type != "NUMERIC" && !type.empty()) return wrong();
    score.value_json = dump(*value);
    score.value_num = number;
  } else if (value->is_string()) {
    if (!is_string_type(type) && !type.empty()) return wrong();
    score.value_json = dump(*value);
    score.string_value = std::move(value->get_ref<std::string&>());
  } else {
    wrong();
  }
}

// Legacy: value is numeric for every type (1/0 for BOOLEAN, a category's number for
// CATEGORICAL); the label or text is in stringValue; TEXT scores have no value at all.
void read_value_legacy(ItemReader& reader, Score& score) {
  auto value = reader.take("value");
  auto string_value = reader.take_string("stringValue", false);
  if (value && !value->is_number()) {
    return reader.fail(fmt::format("value is not a number (got {})", value->type_name()));
  }
  const std::string& type = score.data_type;
  if (type == "BOOLEAN") {
    if (value) {
      set_boolean(score, value->get<double>() != 0);
    } else if (string_value && (*string_value == "True" || *string_value == "False")) {
      set_boolean(score, *string_value == "True");
    } else {
      return reader.fail("BOOLEAN score without a value");
    }
    if (string_value) score.string_value = std::move(string_value);
  } else if (is_string_type(type) || (type.empty() && string_value)) {
    if (!string_value) return reader.fail(fmt::format("{} score without stringValue", type));
    score.value_json = dump(Json(*string_value));
    score.string_value = std::move(string_value);
  } else if (value) {  // NUMERIC, or an unknown type with a number
    score.value_json = dump(*value);
    score.value_num = value->get<double>();
  } else if (type == "NUMERIC") {
    reader.fail("NUMERIC score without a value");
  }
}

// Legacy fields (also a fallback for v3 items without `subject`).
void read_subject_fields(ItemReader& reader, Score& score) {
  auto trace_id = reader.take_string("traceId", false);
  auto observation_id = reader.take_string("observationId", false);
  auto session_id = reader.take_string("sessionId", false);
  auto run_id = reader.take_string("datasetRunId", false);
  if (observation_id) {
    score.subject_kind = "observation";
  } else if (trace_id) {
    score.subject_kind = "trace";
  } else if (session_id) {
    score.subject_kind = "session";
  } else if (run_id) {
    score.subject_kind = "experiment";
  }
  score.trace_id = std::move(trace_id);
  score.observation_id = std::move(observation_id);
  score.session_id = std::move(session_id);
}

// v3: {"kind":"trace","id":T} | {"kind":"observation","id":O,"traceId":T} | session | experiment.
void read_subject_v3(ItemReader& reader, Score& score) {
  auto subject = reader.take("subject");
  if (!subject) return read_subject_fields(reader, score);
  if (!subject->is_object()) {
    return reader.fail(fmt::format("subject is not an object (got {})", subject->type_name()));
  }
  ItemReader fields(*subject);
  auto kind = fields.take_string("kind", true);
  auto id = fields.take_string("id", true);
  auto trace_id = fields.take_string("traceId", false);
  if (!fields.ok()) return reader.fail("subject: " + fields.error());
  score.subject_kind = *kind;
  if (*kind == "trace") {
    score.trace_id = std::move(id);
  } else if (*kind == "observation") {
    score.observation_id = std::move(id);
    score.trace_id = std::move(trace_id);
  } else if (*kind == "session") {
    score.session_id = std::move(id);
  }  // experiment (or a kind added later): no trace; raw_json keeps the subject
}

// Some server versions nest the v3 field groups ("details": {comment, configId, metadata},
// "annotation": {authorUserId, queueId}); the spec has them flat. Accept both.
void flatten_v3_groups(Json& item) {
  for (const char* group : {"details", "annotation"}) {
    auto it = item.find(group);
    if (it == item.end() || !it->is_object()) continue;
    Json fields = std::move(*it);
    item.erase(group);
    for (auto& [key, value] : fields.items()) {
      if (!item.contains(key)) item[key] = std::move(value);
    }
  }
}

void convert_score(Json& item, bool v3, Score& score, std::string& reason) {
  score.raw_json = dump(item);
  if (v3 && item.is_object()) flatten_v3_groups(item);
  ItemReader reader(item);
  if (auto id = reader.take_string("id", true)) score.id = std::move(*id);
  if (auto name = reader.take_string("name", true)) score.name = std::move(*name);
  if (auto ts = reader.take_timestamp("timestamp", true)) score.timestamp = std::move(*ts);
  if (auto source = reader.take_string("source", false)) score.source = std::move(*source);
  if (auto type = reader.take_string("dataType", false)) score.data_type = std::move(*type);
  score.comment = reader.take_string("comment", false);
  score.environment = reader.take_string("environment", false);
  score.config_id = reader.take_string("configId", false);
  score.queue_id = reader.take_string("queueId", false);
  score.author_user_id = reader.take_string("authorUserId", false);
  score.created_at = reader.take_timestamp("createdAt", false);
  score.updated_at = reader.take_timestamp("updatedAt", false);
  if (auto metadata = reader.take("metadata")) score.metadata_json = dump(*metadata);
  if (v3) {
    read_value_v3(reader, score);
    read_subject_v3(reader, score);
  } else {
    read_value_legacy(reader, score);
    read_subject_fields(reader, score);
  }
  if (!reader.ok()) reason = reader.error();
}

// How an item of a score page becomes a Score, for one generation.
auto score_items(bool v3) {
  return [v3](std::string_view text, Score& score, std::string& reason) {
    Json item;
    if (parse_item(text, item, reason)) convert_score(item, v3, score, reason);
  };
}

// ---- observations -----------------------------------------------------------------------------

// An observation item split in two: its text with the values of input and output replaced by
// null (small: parsed into a DOM), and the raw text of those two values (possibly tens of
// megabytes: never put in a DOM, never run through the general parser more than needed).
struct SplitItem {
  std::string shell;
  std::optional<std::string_view> input;  // views into the body; the last duplicate wins
  std::optional<std::string_view> output;
};

SplitItem split_io(std::string_view item_text) {
  SplitItem split;
  json_scan::Document doc;
  std::string unused;
  if (!json_scan::scan_children(item_text, kMaxItemsPerPage, doc, unused) || !doc.root_is_object) {
    split.shell.assign(item_text);  // parse_item() reports what is wrong with it
    return split;
  }
  std::size_t copied = 0;
  for (const auto& child : doc.children) {
    const bool is_input = key_is(child, "input");
    if (!is_input && !key_is(child, "output")) continue;
    (is_input ? split.input : split.output) = child.value;
    const auto offset = static_cast<std::size_t>(child.value.data() - item_text.data());
    split.shell.append(item_text.substr(copied, offset - copied));
    split.shell.append("null");
    copied = offset + child.value.size();
  }
  split.shell.append(item_text.substr(copied));
  return split;
}

// input/output as JSON text, from the member's raw text. v2 sends a string holding JSON text or
// plain text; legacy sends the value itself, which is copied as it is once known to be valid.
bool io_json(std::optional<std::string_view> raw, bool v2, std::string& out, std::string& reason) {
  if (!raw || *raw == "null") {
    out = "null";
    return true;
  }
  if (v2 && raw->front() == '"') {
    std::string text = json_scan::decode_string(*raw);
    if (Json::accept(text)) {
      out = std::move(text);
    } else if (!json_scan::has_broken_unicode(*raw)) {
      // Plain text: the literal the server sent is already that text as a JSON string.
      release(text);
      out.assign(raw->data(), raw->size());
    } else {
      out = quote_json_string(text);
    }
    return true;
  }
  if (Json::accept(*raw)) {
    out.assign(raw->data(), raw->size());
    return true;
  }
  Json value;  // not valid as it is: repair broken Unicode, or learn why not
  if (!parse_json(*raw, value, reason)) return false;
  out = dump(value);
  return true;
}

void convert_observation(std::string_view item_text, bool v2, Observation& obs,
                         std::string& reason) {
  SplitItem split = split_io(item_text);
  Json item;
  if (!parse_item(split.shell, item, reason)) return;
  release(split.shell);
  item.erase("input");
  item.erase("output");
  ItemReader reader(item);
  if (auto id = reader.take_string("id", true)) obs.id = std::move(*id);
  if (auto trace_id = reader.take_string("traceId", true)) obs.trace_id = std::move(*trace_id);
  if (auto type = reader.take_string("type", true)) obs.type = std::move(*type);
  if (auto start = reader.take_timestamp("startTime", true)) obs.start_time = std::move(*start);
  obs.end_time = reader.take_timestamp("endTime", false);
  obs.name = reader.take_string("name", false);
  obs.parent_observation_id = reader.take_string("parentObservationId", false);
  obs.level = reader.take_string("level", false);
  obs.updated_at = reader.take_timestamp("updatedAt", false);
  obs.environment = reader.take_string("environment", false);
  // v2 names the model providedModelName (field group `model`); v1 calls it model.
  auto provided_model = reader.take_string("providedModelName", false);
  auto model = reader.take_string("model", false);
  obs.model = provided_model ? std::move(provided_model) : std::move(model);

  Json usage = Json::object();
  for (const char* key : {"usage", "usageDetails", "costDetails"}) {
    if (auto value = reader.take(key)) usage[key] = std::move(*value);
  }
  if (!usage.empty()) obs.usage_json = dump(usage);
  if (auto metadata = reader.take("metadata")) obs.metadata_json = dump(*metadata);
  if (!reader.ok()) {
    reason = reader.error();
    return;
  }
  obs.attributes_json = dump(item);
  item = Json();  // release the DOM before copying input/output

  std::string io_reason;
  if (!io_json(split.input, v2, obs.input_json, io_reason)) {
    reason = "input: " + io_reason;
  } else if (!io_json(split.output, v2, obs.output_json, io_reason)) {
    reason = "output: " + io_reason;
  }
}

// How an item of an observation page becomes an Observation, for one generation.
auto observation_items(bool v2) {
  return [v2](std::string_view text, Observation& obs, std::string& reason) {
    convert_observation(text, v2, obs, reason);
  };
}

// ---- pages ------------------------------------------------------------------------------------

// Every listing of either generation: the envelope, the paging rule (next_of(envelope) ->
// Result<optional cursor>), then each item through convert_item into page.*records.
template <typename Page, typename Record, typename NextOf, typename ConvertItem>
Result<Page> parse_page(std::string_view body, std::vector<Record> Page::*records, NextOf next_of,
                        ConvertItem convert_item) {
  return guarded<Page>([&]() -> Result<Page> {
    auto envelope = scan_page(body);
    if (!envelope.ok()) return envelope.status();
    auto next = next_of(*envelope);
    if (!next.ok()) return next.status();
    Page page;
    page.body_bytes = body.size();
    page.next_cursor = std::move(next.value());
    convert_items(*envelope, convert_item, page.*records, page.errors);
    return page;
  });
}

auto cursor_paging(const std::optional<std::string>& previous) {
  return [&previous](const Envelope& e) { return next_cursor(e, previous); };
}

auto page_number_paging(int current_page) {
  return [current_page](const Envelope& e) { return next_page(e, current_page); };
}

}  // namespace

ApiGeneration generation_from_version(std::string_view version) {
  while (!version.empty() && std::isspace(static_cast<unsigned char>(version.front()))) {
    version.remove_prefix(1);
  }
  if (!version.empty() && (version.front() == 'v' || version.front() == 'V')) {
    version.remove_prefix(1);
  }
  long major = 0;
  std::size_t digits = 0;
  while (digits < version.size() && std::isdigit(static_cast<unsigned char>(version[digits]))) {
    if (major < 1'000'000) major = major * 10 + (version[digits] - '0');
    ++digits;
  }
  if (digits == 0) return ApiGeneration::kUnknown;
  if (major >= 4) return ApiGeneration::kCurrent;
  if (major >= 2) return ApiGeneration::kLegacy;
  return ApiGeneration::kUnknown;
}

Result<ServerInfo> parse_health(std::string_view body) {
  return guarded<ServerInfo>([&]() -> Result<ServerInfo> {
    auto doc = parse_small_object(body);
    if (!doc.ok()) return doc.status();
    ServerInfo info;
    auto it = doc->find("version");
    if (it != doc->end() && it->is_string()) info.version = it->get<std::string>();
    info.generation = generation_from_version(info.version);
    return info;
  });
}

Result<ProjectInfo> parse_projects(std::string_view body) {
  return guarded<ProjectInfo>([&]() -> Result<ProjectInfo> {
    auto envelope = scan_page(body);
    if (!envelope.ok()) return envelope.status();
    if (envelope->items.empty()) {
      return Status::Error(ErrorKind::kAuth, "the API key has no project (use a project key)");
    }
    const auto& first = envelope->items.front();
    if (first.depth > kMaxItemDepth) return malformed("project nested too deeply");
    Json item;
    std::string reason;
    if (!parse_json(first.value, item, reason)) return malformed("project: " + reason);
    if (!item.is_object()) return malformed("project is not an object");
    ItemReader reader(item);
    ProjectInfo project;
    if (auto id = reader.take_string("id", true)) project.id = std::move(*id);
    if (auto name = reader.take_string("name", false)) project.name = std::move(*name);
    if (!reader.ok()) return malformed("project: " + reader.error());
    return project;
  });
}

Result<ScorePage> parse_scores_v3(std::string_view body,
                                  const std::optional<std::string>& previous_cursor) {
  return parse_page(body, &ScorePage::scores, cursor_paging(previous_cursor), score_items(true));
}

Result<ScorePage> parse_scores_legacy(std::string_view body, int current_page) {
  return parse_page(body, &ScorePage::scores, page_number_paging(current_page), score_items(false));
}

Result<ObservationPage> parse_observations_v2(std::string_view body,
                                              const std::optional<std::string>& previous_cursor) {
  return parse_page(body, &ObservationPage::observations, cursor_paging(previous_cursor),
                    observation_items(true));
}

Result<ObservationPage> parse_observations_legacy(std::string_view body, int current_page) {
  return parse_page(body, &ObservationPage::observations, page_number_paging(current_page),
                    observation_items(false));
}

std::string json_text_from_raw_string(std::string raw) {
  // accept() runs the parser without building a DOM: no recursion, any size.
  if (Json::accept(raw)) return raw;
  return quote_json_string(raw);
}

}  // namespace lfh
