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

bool conversation_of(const DatasetRow& row, Conversation& conversation, SkipReason& skip) {
  ParsedColumns parsed;
  if (!parse_input_output(row, parsed, skip)) return false;
  return input_messages(parsed.input, conversation.messages, skip) &&
         assistant_message(parsed.output, conversation.assistant, skip) &&
         tools_of(row, parsed.input, conversation.tools, skip);
}

bool openai_chat_record(const DatasetRow& row, Json& record, SkipReason& skip) {
  Conversation c;
  if (!conversation_of(row, c, skip)) return false;
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

bool openai_dpo_record(const DatasetRow& row, Json& record, SkipReason& skip) {
  if (row.score_data_type.value_or("") != "CORRECTION") {
    return fail(skip, "wrong_score_type",
                "openai-dpo needs a CORRECTION score, got " + row.score_data_type.value_or("none"));
  }
  std::string corrected;
  if (!correction_text(row, corrected, skip)) return false;
  Conversation c;
  if (!conversation_of(row, c, skip)) return false;
  const Json& original = c.assistant["content"];
  if (original.is_string() && original.get_ref<const std::string&>() == corrected &&
      !c.assistant.contains("tool_calls")) {
    return fail(skip, "correction_equals_output", "the correction repeats the output");
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

bool kto_record(const DatasetRow& row, const ConvertOptions& options, Json& record,
                SkipReason& skip) {
  bool label = false;
  if (!kto_label(row, options, label, skip)) return false;
  Conversation c;
  if (!conversation_of(row, c, skip)) return false;
  record = Json::object();
  record["prompt"] = std::move(c.messages);
  record["completion"] = Json::array({std::move(c.assistant)});
  record["label"] = label;
  return true;
}

bool sharegpt_speaker(const std::string& role, std::string& from) {
  if (role == "system" || role == "developer") {
    from = "system";
  } else if (role == "user") {
    from = "human";
  } else if (role == "assistant") {
    from = "gpt";
  } else if (role == "tool" || role == "function") {
    from = "tool";
  } else {
    return false;
  }
  return true;
}

// Tool calls as one "function_call" turn: [{"name", "arguments"}], arguments parsed when they
// are JSON text (OpenAI sends them as a string).
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
  return out.dump(-1, ' ', false, Json::error_handler_t::strict);
}

bool sharegpt_record(const DatasetRow& row, Json& record, SkipReason& skip) {
  Conversation c;
  if (!conversation_of(row, c, skip)) return false;
  c.messages.push_back(std::move(c.assistant));
  Json turns = Json::array();
  std::string from;
  std::string text;
  for (const Json& m : c.messages) {
    const std::string& role = m["role"].get_ref<const std::string&>();
    if (!sharegpt_speaker(role, from)) {
      return fail(skip, "unknown_role", "role '" + role + "' has no ShareGPT speaker");
    }
    if (!content_text(m["content"], text)) {
      return fail(skip, "non_text_content", "a " + role + " message holds non-text content");
    }
    const bool has_calls = m.contains("tool_calls");
    if (!has_calls || !text.empty()) turns.push_back(Json{{"from", from}, {"value", text}});
    if (has_calls) {
      turns.push_back(
          Json{{"from", "function_call"}, {"value", tool_calls_value(m["tool_calls"])}});
    }
  }
  record = Json::object();
  record["conversations"] = std::move(turns);
  if (!c.tools.is_null()) {
    record["tools"] = c.tools.dump(-1, ' ', false, Json::error_handler_t::strict);
  }
  return true;
}

bool build_record(ExportFormat format, const DatasetRow& row, const ConvertOptions& options,
                  Json& record, SkipReason& skip) {
  switch (format) {
    case ExportFormat::kJson:
      return json_record(row, record, skip);
    case ExportFormat::kJsonl:
      return jsonl_record(row, record, skip);
    case ExportFormat::kOpenAiChat:
      return openai_chat_record(row, record, skip);
    case ExportFormat::kOpenAiDpo:
      return openai_dpo_record(row, record, skip);
    case ExportFormat::kKto:
      return kto_record(row, options, record, skip);
    case ExportFormat::kShareGpt:
      return sharegpt_record(row, record, skip);
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
  if (!row.has_observation) {
    const bool root = options.pick == ObservationPick::kRoot;
    fail(out.skip, root ? "no_root_observation" : "no_generation",
         root ? "the trace has no root observation" : "the trace has no generation");
    return;
  }
  try {
    Json record;
    if (!build_record(format, row, options, record, out.skip)) return;
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
