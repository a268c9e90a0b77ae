#include "export/formats.h"

#include <utility>

namespace lfh {
namespace {

bool fail(SkipReason& skip, const char* code, std::string detail) {
  skip.code = code;
  skip.detail = std::move(detail);
  return false;
}

Json optional_text(const std::optional<std::string>& value) {
  return value ? Json(*value) : Json(nullptr);
}

// The observation's JSON columns, parsed once per record and only when the format needs them.
struct ParsedColumns {
  Json input;
  Json output;
  Json score_value;
};

bool parse_column(std::string_view text, const char* column, Json& out, SkipReason& skip) {
  if (parse_json_text(text, out)) return true;
  return fail(skip, "bad_stored_json", std::string(column) + " is not valid JSON");
}

bool parse_optional_column(const std::optional<std::string>& text, const char* column, Json& out,
                           SkipReason& skip) {
  if (!text) {
    out = nullptr;
    return true;
  }
  return parse_column(*text, column, out, skip);
}

bool parse_input_output(const DatasetRow& row, ParsedColumns& parsed, SkipReason& skip) {
  return parse_column(row.input_json, "input", parsed.input, skip) &&
         parse_column(row.output_json, "output", parsed.output, skip);
}

bool parse_score_value(const DatasetRow& row, Json& value, SkipReason& skip) {
  if (parse_json_text(row.score_value_json, value)) return true;
  return fail(skip, "bad_score_value", "score value_json is not valid JSON");
}

bool tools_of(const DatasetRow& row, const Json& input, Json& tools, SkipReason& skip) {
  Json metadata;
  Json attributes;
  if (!parse_optional_column(row.metadata_json, "metadata", metadata, skip)) return false;
  if (!parse_column(row.attributes_json, "attributes", attributes, skip)) return false;
  return find_tools(input, metadata, attributes, tools, skip);
}

// {trace_id, score_name, score_value, string_value, comment, input, output}: the shape of the
// hand-made good_annotations.json files.
bool json_record(const DatasetRow& row, Json& record, SkipReason& skip) {
  ParsedColumns parsed;
  if (!parse_score_value(row, parsed.score_value, skip)) return false;
  if (!parse_input_output(row, parsed, skip)) return false;
  record = Json::object();
  record["trace_id"] = row.trace_id;
  record["score_name"] = row.score_name;
  record["score_value"] = std::move(parsed.score_value);
  record["string_value"] = optional_text(row.score_string_value);
  record["comment"] = optional_text(row.score_comment);
  record["input"] = std::move(parsed.input);
  record["output"] = std::move(parsed.output);
  return true;
}

bool jsonl_record(const DatasetRow& row, Json& record, SkipReason& skip) {
  ParsedColumns parsed;
  Json usage;
  if (!parse_score_value(row, parsed.score_value, skip)) return false;
  if (!parse_input_output(row, parsed, skip)) return false;
  if (!parse_optional_column(row.usage_json, "usage", usage, skip)) return false;
  record = Json::object();
  record["project_id"] = row.project_id;
  record["trace_id"] = row.trace_id;
  record["observation_id"] = row.observation_id;
  record["observation_type"] = row.observation_type;
  record["observation_name"] = optional_text(row.observation_name);
  record["score_id"] = row.score_id;
  record["score_name"] = row.score_name;
  record["score_source"] = row.score_source;
  record["score_data_type"] = optional_text(row.score_data_type);
  record["score_value"] = std::move(parsed.score_value);
  record["string_value"] = optional_text(row.score_string_value);
  record["comment"] = optional_text(row.score_comment);
  record["score_timestamp"] = row.score_timestamp;
  record["score_environment"] = optional_text(row.score_environment);
  record["score_observation_id"] = optional_text(row.score_observation_id);
  record["start_time"] = row.start_time;
  record["end_time"] = optional_text(row.end_time);
  record["model"] = optional_text(row.model);
  record["usage"] = std::move(usage);
  record["input"] = std::move(parsed.input);
  record["output"] = std::move(parsed.output);
  return true;
}

// Messages of the prompt, the assistant answer and the tools, shared by the chat formats.
struct Conversation {
  Json messages;
  Json assistant;
  Json tools;
};

bool is_role(const Json& message, std::string_view role) {
  const Json& r = message["role"];
  return r.is_string() && r.get_ref<const std::string&>() == role;
}

bool same_role(const Json& a, const Json& b) {
  const std::string& role = a["role"].get_ref<const std::string&>();
  return (role == "system" || role == "user" || role == "assistant") && is_role(b, role);
}

// The input ends with the answer itself: same content and the same tool calls.
bool repeats_answer(const Conversation& c) {
  if (c.messages.empty()) return false;
  const Json& last = c.messages.back();
  if (!is_role(last, "assistant") || last["content"] != c.assistant["content"]) return false;
  auto calls = [](const Json& m) { return m.contains("tool_calls") ? m["tool_calls"] : Json(); };
  return calls(last) == calls(c.assistant);
}

bool alternates(const Conversation& c) {
  for (std::size_t i = 1; i < c.messages.size(); ++i) {
    if (same_role(c.messages[i - 1], c.messages[i])) return false;
  }
  return c.messages.empty() || !same_role(c.messages.back(), c.assistant);
}

// Content as a list of parts, for joining a text with a list.
Json as_parts(const Json& content) {
  if (content.is_array()) return content;
  Json parts = Json::array();
  if (content.is_string()) parts.push_back(Json{{"type", "text"}, {"text", content}});
  return parts;
}

// Appends next's content and tool calls to into (two messages of the same role).
void merge_into(Json& into, const Json& next) {
  Json& content = into["content"];
  const Json& more = next["content"];
  if (more.is_null() || (more.is_string() && more.get_ref<const std::string&>().empty())) {
    // nothing to add
  } else if (content.is_null() ||
             (content.is_string() && content.get_ref<const std::string&>().empty())) {
    content = more;
  } else if (content.is_string() && more.is_string()) {
    content = content.get<std::string>() + "\n\n" + more.get<std::string>();
  } else {
    Json parts = as_parts(content);
    for (const Json& part : as_parts(more)) parts.push_back(part);
    content = std::move(parts);
  }
  if (next.contains("tool_calls")) {
    Json& calls = into["tool_calls"];
    if (calls.is_null()) calls = Json::array();
    for (const Json& call : next["tool_calls"]) calls.push_back(call);
  }
}

// Merges runs of same-role messages; a run that ends the input merges into the answer.
void merge_runs(Conversation& c) {
  Json merged = Json::array();
  for (Json& m : c.messages) {
    if (!merged.empty() && same_role(merged.back(), m)) {
      merge_into(merged.back(), m);
    } else {
      merged.push_back(std::move(m));
    }
  }
  if (!merged.empty() && same_role(merged.back(), c.assistant)) {
    Json answer = std::move(merged.back());
    merged.erase(merged.end() - 1);
    merge_into(answer, c.assistant);
    c.assistant = std::move(answer);
  }
  c.messages = std::move(merged);
}

// Counts the conversation's defects into out and applies the policies.
bool apply_turn_policies(Conversation& c, const ConvertOptions& options, ConvertedRecord& out,
                         SkipReason& skip) {
  if (repeats_answer(c)) {
    out.repeated_answer = true;
    if (options.repeated_answer == TurnPolicy::kDrop) {
      return fail(skip, "repeated_answer", "the last input message repeats the output");
    }
    if (options.repeated_answer == TurnPolicy::kMerge) c.messages.erase(c.messages.end() - 1);
  }
  if (!alternates(c)) {
    out.non_alternating = true;
    if (options.non_alternating == TurnPolicy::kDrop) {
      return fail(skip, "non_alternating_turns", "two consecutive messages have the same role");
    }
    if (options.non_alternating == TurnPolicy::kMerge) merge_runs(c);
  }
  return true;
}

bool conversation_of(const DatasetRow& row, const ConvertOptions& options, Conversation& c,
                     ConvertedRecord& out, SkipReason& skip) {
  ParsedColumns parsed;
  if (!parse_input_output(row, parsed, skip)) return false;
  return input_messages(parsed.input, c.messages, skip) &&
         assistant_message(parsed.output, c.assistant, skip) &&
         tools_of(row, parsed.input, c.tools, skip) && apply_turn_policies(c, options, out, skip);
}

// TRL's conversational rows (and the chat templates they feed) take tool-call arguments as
// objects; OpenAI logs them as JSON text. Text that is not JSON stays text.
void arguments_as_objects(Json& message) {
  if (!message.contains("tool_calls")) return;
  for (Json& call : message["tool_calls"]) {
    if (!call.is_object() || !call.contains("function")) continue;
    Json& function = call["function"];
    if (!function.is_object() || !function.contains("arguments")) continue;
    Json& arguments = function["arguments"];
    if (!arguments.is_string()) continue;
    Json parsed;
    if (parse_json_text(arguments.get_ref<const std::string&>(), parsed)) {
      arguments = std::move(parsed);
    }
  }
}

void arguments_as_objects_all(Json& messages) {
  for (Json& m : messages) arguments_as_objects(m);
}

std::string compact(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::strict);
}

bool openai_chat_record(const DatasetRow& row, const ConvertOptions& options, Json& record,
                        ConvertedRecord& out, SkipReason& skip) {
  Conversation c;
  if (!conversation_of(row, options, c, out, skip)) return false;
  c.messages.push_back(std::move(c.assistant));
  record = Json::object();
  record["messages"] = std::move(c.messages);
  if (!c.tools.is_null()) record["tools"] = std::move(c.tools);
  return true;
}

bool correction_text(const DatasetRow& row, std::string& text, SkipReason& skip) {
  if (row.score_string_value) {
    text = *row.score_string_value;
  } else {
    Json value;
    if (!parse_score_value(row, value, skip)) return false;
    text = value.is_string() ? value.get<std::string>() : std::string();
  }
  if (text.empty()) return fail(skip, "empty_correction", "the correction is empty");
  return true;
}

// A CORRECTION score and the generation: the correction is preferred over the output.
bool preference_pair(const DatasetRow& row, const ExportFormat format,
                     const ConvertOptions& options, Conversation& c, std::string& corrected,
                     ConvertedRecord& out, SkipReason& skip) {
  if (row.score_data_type.value_or("") != "CORRECTION") {
    return fail(skip, "wrong_score_type",
                std::string(export_format_name(format)) + " needs a CORRECTION score, got " +
                    row.score_data_type.value_or("none"));
  }
  if (!correction_text(row, corrected, skip)) return false;
  if (!conversation_of(row, options, c, out, skip)) return false;
  const Json& original = c.assistant["content"];
  if (original.is_string() && original.get_ref<const std::string&>() == corrected &&
      !c.assistant.contains("tool_calls")) {
    return fail(skip, "correction_equals_output", "the correction repeats the output");
  }
  return true;
}

bool openai_dpo_record(const DatasetRow& row, const ConvertOptions& options, Json& record,
                       ConvertedRecord& out, SkipReason& skip) {
  Conversation c;
  std::string corrected;
  if (!preference_pair(row, ExportFormat::kOpenAiDpo, options, c, corrected, out, skip)) {
    return false;
  }
  Json input = Json::object();
  input["messages"] = std::move(c.messages);
  if (!c.tools.is_null()) input["tools"] = std::move(c.tools);
  record = Json::object();
  record["input"] = std::move(input);
  record["preferred_output"] = Json::array({Json{{"role", "assistant"}, {"content", corrected}}});
  record["non_preferred_output"] = Json::array({std::move(c.assistant)});
  return true;
}

// TRL's conversational preference rows: {prompt, chosen, rejected} (+ tools as JSON text).
bool trl_dpo_record(const DatasetRow& row, const ConvertOptions& options, Json& record,
                    ConvertedRecord& out, SkipReason& skip) {
  Conversation c;
  std::string corrected;
  if (!preference_pair(row, ExportFormat::kTrlDpo, options, c, corrected, out, skip)) {
    return false;
  }
  arguments_as_objects_all(c.messages);
  arguments_as_objects(c.assistant);
  record = Json::object();
  record["prompt"] = std::move(c.messages);
  record["chosen"] = Json::array({Json{{"role", "assistant"}, {"content", corrected}}});
  record["rejected"] = Json::array({std::move(c.assistant)});
  if (!c.tools.is_null()) record["tools"] = compact(c.tools);
  return true;
}

std::string lower(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

// The score as a boolean: current API true/false, legacy 1/0 with "True"/"False".
bool boolean_value(const DatasetRow& row, const Json& value) {
  if (value.is_boolean()) return value.get<bool>();
  if (row.score_value_num) return *row.score_value_num != 0;
  return lower(row.score_string_value.value_or("")) == "true";
}

bool kto_label(const DatasetRow& row, const ConvertOptions& options, bool& label,
               SkipReason& skip) {
  Json value;
  if (!parse_score_value(row, value, skip)) return false;
  std::string type = row.score_data_type.value_or("");
  if (type.empty() && value.is_boolean()) type = "BOOLEAN";
  if (type == "BOOLEAN") {
    bool positive = true;
    if (options.positive) {
      std::string p = lower(*options.positive);
      if (p == "true" || p == "false") positive = p == "true";
    }
    label = boolean_value(row, value) == positive;
    return true;
  }
  if (type == "CATEGORICAL") {
    if (!options.positive) {
      return fail(skip, "kto_positive_not_set",
                  "a CATEGORICAL score needs the positive value (--positive)");
    }
    std::string category = row.score_string_value.value_or(
        value.is_string() ? value.get<std::string>() : std::string());
    label = category == *options.positive;
    return true;
  }
  return fail(skip, "wrong_score_type",
              "kto needs a BOOLEAN or CATEGORICAL score, got " + (type.empty() ? "none" : type));
}

// TRL's unpaired preference rows. tools is JSON text: KTOTrainer parses a string per row, while
// a list column would be merged into one Arrow schema across rows by datasets.
bool kto_record(const DatasetRow& row, const ConvertOptions& options, Json& record,
                ConvertedRecord& out, SkipReason& skip) {
  bool label = false;
  if (!kto_label(row, options, label, skip)) return false;
  Conversation c;
  if (!conversation_of(row, options, c, out, skip)) return false;
  arguments_as_objects_all(c.messages);
  arguments_as_objects(c.assistant);
  record = Json::object();
  record["prompt"] = std::move(c.messages);
  record["completion"] = Json::array({std::move(c.assistant)});
  record["label"] = label;
  if (!c.tools.is_null()) record["tools"] = compact(c.tools);
  return true;
}

// Tool calls as the JSON text [{"name", "arguments"}], arguments parsed when they are JSON text
// (OpenAI sends them as a string): what LLaMA-Factory's function_call turn holds.
std::string tool_calls_value(const Json& calls) {
  Json out = Json::array();
  for (const Json& call : calls) {
    const Json& function = call.is_object() && call.contains("function") ? call["function"] : call;
    Json item = Json::object();
    item["name"] = function.is_object() && function.contains("name") ? function["name"] : Json();
    Json arguments = function.is_object() && function.contains("arguments") ? function["arguments"]
                                                                            : Json(nullptr);
    if (arguments.is_string()) {
      Json parsed;
      if (parse_json_text(arguments.get_ref<const std::string&>(), parsed)) {
        arguments = std::move(parsed);
      }
    }
    item["arguments"] = std::move(arguments);
    out.push_back(std::move(item));
  }
  return compact(out);
}

// The speaker names of each dialect, indexed by the message kind.
struct ShareGptNames {
  const char* system;
  const char* user;
  const char* assistant;
  const char* tool;
};
constexpr ShareGptNames kLlamaFactoryNames{"system", "human", "gpt", "observation"};
constexpr ShareGptNames kAxolotlNames{"system", "user", "assistant", "tool"};

const char* sharegpt_speaker(const std::string& role, const ShareGptNames& names) {
  if (role == "system" || role == "developer") return names.system;
  if (role == "user") return names.user;
  if (role == "assistant") return names.assistant;
  if (role == "tool" || role == "function") return names.tool;
  return nullptr;
}

// LLaMA-Factory's converter: an optional first system turn, then human|observation and
// gpt|function_call in turn, ending with the model's turn; anything else is dropped.
bool llamafactory_alternates(const Json& turns) {
  std::size_t i = !turns.empty() && turns[0]["from"] == "system" ? 1 : 0;
  const std::size_t first = i;
  for (; i < turns.size(); ++i) {
    const std::string& from = turns[i]["from"].get_ref<const std::string&>();
    const bool prompt_side = (i - first) % 2 == 0;
    if (prompt_side ? (from != "human" && from != "observation")
                    : (from != "gpt" && from != "function_call")) {
      return false;
    }
  }
  return (turns.size() - first) % 2 == 0;
}

bool sharegpt_record(const DatasetRow& row, const ConvertOptions& options, Json& record,
                     ConvertedRecord& out, SkipReason& skip) {
  Conversation c;
  if (!conversation_of(row, options, c, out, skip)) return false;
  c.messages.push_back(std::move(c.assistant));
  const bool llamafactory = options.sharegpt_dialect == ShareGptDialect::kLlamaFactory;
  const ShareGptNames& names = llamafactory ? kLlamaFactoryNames : kAxolotlNames;
  Json turns = Json::array();
  std::string text;
  for (const Json& m : c.messages) {
    const std::string& role = m["role"].get_ref<const std::string&>();
    const char* from = sharegpt_speaker(role, names);
    if (!from) return fail(skip, "unknown_role", "role '" + role + "' has no ShareGPT speaker");
    if (!content_text(m["content"], text)) {
      return fail(skip, "non_text_content", "a " + role + " message holds non-text content");
    }
    const bool has_calls = m.contains("tool_calls");
    if (has_calls && llamafactory) {
      if (!text.empty()) {
        return fail(skip, "text_with_tool_calls",
                    "an assistant message has text and tool calls; a function_call turn holds "
                    "only calls");
      }
      turns.push_back(
          Json{{"from", "function_call"}, {"value", tool_calls_value(m["tool_calls"])}});
      continue;
    }
    if (has_calls) {  // axolotl: the calls are the assistant's text
      if (!text.empty()) text += '\n';
      text += tool_calls_value(m["tool_calls"]);
    }
    // Parallel tool results: LLaMA-Factory has one observation turn for them.
    if (llamafactory && !turns.empty() && from == names.tool &&
        turns.back()["from"] == names.tool) {
      turns.back()["value"] = turns.back()["value"].get<std::string>() + "\n" + text;
      continue;
    }
    turns.push_back(Json{{"from", from}, {"value", text}});
  }
  if (llamafactory && !llamafactory_alternates(turns)) {
    return fail(skip, "non_alternating_turns",
                "the turns do not alternate as LLaMA-Factory requires (see --non-alternating)");
  }
  record = Json::object();
  record["conversations"] = std::move(turns);
  if (!c.tools.is_null()) record["tools"] = compact(c.tools);
  return true;
}

bool build_record(ExportFormat format, const DatasetRow& row, const ConvertOptions& options,
                  Json& record, ConvertedRecord& out) {
  SkipReason& skip = out.skip;
  switch (format) {
    case ExportFormat::kJson:
      return json_record(row, record, skip);
    case ExportFormat::kJsonl:
      return jsonl_record(row, record, skip);
    case ExportFormat::kOpenAiChat:
      return openai_chat_record(row, options, record, out, skip);
    case ExportFormat::kOpenAiDpo:
      return openai_dpo_record(row, options, record, out, skip);
    case ExportFormat::kKto:
      return kto_record(row, options, record, out, skip);
    case ExportFormat::kShareGpt:
      return sharegpt_record(row, options, record, out, skip);
    case ExportFormat::kTrlDpo:
      return trl_dpo_record(row, options, record, out, skip);
  }
  return fail(skip, "unknown_format", "unknown format");
}

}  // namespace

std::optional<ExportFormat> parse_export_format(std::string_view name) {
  if (name == "json") return ExportFormat::kJson;
  if (name == "jsonl") return ExportFormat::kJsonl;
  if (name == "openai-chat") return ExportFormat::kOpenAiChat;
  if (name == "openai-dpo") return ExportFormat::kOpenAiDpo;
  if (name == "kto") return ExportFormat::kKto;
  if (name == "sharegpt") return ExportFormat::kShareGpt;
  if (name == "trl-dpo") return ExportFormat::kTrlDpo;
  return std::nullopt;
}

const char* export_format_name(ExportFormat format) {
  switch (format) {
    case ExportFormat::kJson:
      return "json";
    case ExportFormat::kJsonl:
      return "jsonl";
    case ExportFormat::kOpenAiChat:
      return "openai-chat";
    case ExportFormat::kOpenAiDpo:
      return "openai-dpo";
    case ExportFormat::kKto:
      return "kto";
    case ExportFormat::kShareGpt:
      return "sharegpt";
    case ExportFormat::kTrlDpo:
      return "trl-dpo";
  }
  return "unknown";
}

std::optional<ShareGptDialect> parse_sharegpt_dialect(std::string_view name) {
  if (name == "llamafactory") return ShareGptDialect::kLlamaFactory;
  if (name == "axolotl") return ShareGptDialect::kAxolotl;
  return std::nullopt;
}

const char* sharegpt_dialect_name(ShareGptDialect dialect) {
  return dialect == ShareGptDialect::kAxolotl ? "axolotl" : "llamafactory";
}

std::optional<TurnPolicy> parse_turn_policy(std::string_view name) {
  if (name == "keep") return TurnPolicy::kKeep;
  if (name == "drop") return TurnPolicy::kDrop;
  if (name == "merge") return TurnPolicy::kMerge;
  return std::nullopt;
}

const char* turn_policy_name(TurnPolicy policy) {
  switch (policy) {
    case TurnPolicy::kKeep:
      return "keep";
    case TurnPolicy::kDrop:
      return "drop";
    case TurnPolicy::kMerge:
      return "merge";
  }
  return "unknown";
}

std::optional<ObservationPick> parse_pick(std::string_view name) {
  if (name == "last-generation") return ObservationPick::kLastGeneration;
  if (name == "all-generations") return ObservationPick::kAllGenerations;
  if (name == "root") return ObservationPick::kRoot;
  return std::nullopt;
}

const char* pick_name(ObservationPick pick) {
  switch (pick) {
    case ObservationPick::kLastGeneration:
      return "last-generation";
    case ObservationPick::kAllGenerations:
      return "all-generations";
    case ObservationPick::kRoot:
      return "root";
  }
  return "unknown";
}

std::vector<std::string> preferred_score_types(ExportFormat format) {
  switch (format) {
    case ExportFormat::kOpenAiDpo:
    case ExportFormat::kTrlDpo:
      return {"CORRECTION"};
    case ExportFormat::kKto:
      return {"BOOLEAN", "CATEGORICAL"};
    default:
      return {};
  }
}

void convert_record(ExportFormat format, const DatasetRow& row, const ConvertOptions& options,
                    ConvertedRecord& out) {
  out.text.clear();
  out.skip = SkipReason{};
  out.repeated_answer = false;
  out.non_alternating = false;
  if (!row.has_observation) {
    const bool root = options.pick == ObservationPick::kRoot;
    fail(out.skip, root ? "no_root_observation" : "no_generation",
         root ? "the trace has no root observation" : "the trace has no generation");
    return;
  }
  try {
    Json record;
    if (!build_record(format, row, options, record, out)) return;
    out.text = record.dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const Json::exception& e) {
    // Strings from SQLite text columns were never checked as UTF-8; the printer checks them.
    out.text.clear();
    const bool utf8 = e.id == 316;
    fail(out.skip, utf8 ? "invalid_utf8" : "bad_stored_json", e.what());
  }
}

std::string record_key(const DatasetRow& row, ObservationPick pick) {
  std::string key = row.project_id + "/" + row.trace_id;
  if (pick == ObservationPick::kAllGenerations) key += "/" + row.observation_id;
  return key;
}

}  // namespace lfh
