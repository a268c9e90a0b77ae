#include "export/chat_messages.h"

#include <string_view>

namespace lfh {
namespace {

bool fail(SkipReason& skip, const char* code, std::string detail) {
  skip.code = code;
  skip.detail = std::move(detail);
  return false;
}

const Json* member(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

bool is_message_like(const Json& value) {
  return value.is_object() && (value.contains("role") || value.contains("content") ||
                               value.contains("tool_calls") || value.contains("function_call"));
}

std::string canonical_role(const std::string& role) {
  if (role == "human") return "user";
  if (role == "ai") return "assistant";
  return role;
}

// Copies the keys OpenAI accepts, in a fixed order. role_override forces the role (outputs).
bool normalize_message(const Json& m, const char* role_override, const char* bad_code, Json& out,
                       SkipReason& skip) {
  if (!m.is_object()) return fail(skip, bad_code, "message is not an object");
  std::string role;
  if (role_override) {
    role = role_override;
  } else {
    const Json* r = member(m, "role");
    if (!r || !r->is_string()) return fail(skip, bad_code, "message without a string role");
    role = canonical_role(r->get<std::string>());
  }
  out = Json::object();
  out["role"] = role;
  const Json* content = member(m, "content");
  if (content && !content->is_null() && !content->is_string() && !content->is_array()) {
    return fail(skip, bad_code, "message content is neither text nor a list of parts");
  }
  out["content"] = content ? *content : Json(nullptr);
  if (const Json* name = member(m, "name"); name && name->is_string() && !role_override) {
    out["name"] = *name;
  }
  const Json* calls = member(m, "tool_calls");
  if (!calls || calls->is_null()) {
    // LangChain keeps provider fields under additional_kwargs.
    if (const Json* extra = member(m, "additional_kwargs")) calls = member(*extra, "tool_calls");
  }
  if (calls && !calls->is_null()) {
    if (!calls->is_array()) return fail(skip, bad_code, "tool_calls is not a list");
    if (!calls->empty()) out["tool_calls"] = *calls;
  }
  if (const Json* id = member(m, "tool_call_id"); id && id->is_string()) out["tool_call_id"] = *id;
  if (const Json* call = member(m, "function_call"); call && call->is_object()) {
    out["function_call"] = *call;
  }
  return true;
}

bool message_list(const Json& list, Json& messages, SkipReason& skip) {
  if (list.empty()) return fail(skip, "missing_input", "empty message list");
  messages = Json::array();
  for (const Json& m : list) {
    Json normalized;
    if (!normalize_message(m, nullptr, "unrecognized_input", normalized, skip)) return false;
    messages.push_back(std::move(normalized));
  }
  return true;
}

bool has_text(const Json& content) {
  if (content.is_null()) return false;
  if (content.is_string()) return !content.get_ref<const std::string&>().empty();
  return !content.empty();
}

}  // namespace

bool parse_json_text(std::string_view text, Json& out) {
  // One pass over the text counting open brackets outside strings: cheaper than a parser
  // callback, and it keeps hostile nesting away from the recursive printer.
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  out = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  return !out.is_discarded();
}

bool input_messages(const Json& input, Json& messages, SkipReason& skip) {
  if (input.is_null()) return fail(skip, "missing_input", "input is null");
  if (input.is_string()) {
    messages = Json::array();
    messages.push_back(Json{{"role", "user"}, {"content", input}});
    return true;
  }
  if (input.is_array()) return message_list(input, messages, skip);
  if (input.is_object()) {
    if (const Json* list = member(input, "messages"); list && list->is_array()) {
      return message_list(*list, messages, skip);
    }
    if (member(input, "role")) {
      Json normalized;
      if (!normalize_message(input, nullptr, "unrecognized_input", normalized, skip)) return false;
      messages = Json::array();
      messages.push_back(std::move(normalized));
      return true;
    }
  }
  return fail(skip, "unrecognized_input",
              std::string("input is a ") + input.type_name() + " without chat messages");
}

bool assistant_message(const Json& output, Json& message, SkipReason& skip) {
  if (output.is_null()) return fail(skip, "missing_output", "output is null");
  if (output.is_string()) {
    if (output.get_ref<const std::string&>().empty()) {
      return fail(skip, "missing_output", "output is an empty string");
    }
    message = Json{{"role", "assistant"}, {"content", output}};
    return true;
  }
  if (output.is_array()) {
    if (output.empty()) return fail(skip, "missing_output", "output is an empty list");
    if (output.size() == 1) return assistant_message(output.front(), message, skip);
    return fail(skip, "unrecognized_output", "output is a list of several items");
  }
  if (!output.is_object()) {
    return fail(skip, "unrecognized_output", std::string("output is a ") + output.type_name());
  }
  const Json* m = &output;
  if (const Json* choices = member(output, "choices"); choices && choices->is_array()) {
    if (choices->empty()) return fail(skip, "missing_output", "output has no choices");
    const Json& first = choices->front();
    if (const Json* inner = member(first, "message"); inner && inner->is_object()) {
      m = inner;
    } else if (const Json* text = member(first, "text"); text && text->is_string()) {
      return assistant_message(*text, message, skip);  // legacy completions
    } else {
      return fail(skip, "unrecognized_output", "choices[0] has no message");
    }
  } else if (const Json* inner = member(output, "message"); inner && is_message_like(*inner)) {
    m = inner;
  }
  if (!is_message_like(*m)) {
    return fail(skip, "unrecognized_output", "output object is not a message");
  }
  if (!normalize_message(*m, "assistant", "unrecognized_output", message, skip)) return false;
  if (!has_text(message["content"]) && !message.contains("tool_calls") &&
      !message.contains("function_call")) {
    return fail(skip, "missing_output", "assistant message has neither content nor tool calls");
  }
  return true;
}

bool find_tools(const Json& input, const Json& metadata, const Json& attributes, Json& tools,
                SkipReason& skip) {
  const Json* attribute_metadata = member(attributes, "metadata");
  const Json* model_parameters = member(attributes, "modelParameters");
  const Json* candidates[] = {
      member(input, "tools"),
      member(metadata, "tools"),
      member(attributes, "tools"),
      attribute_metadata ? member(*attribute_metadata, "tools") : nullptr,
      model_parameters ? member(*model_parameters, "tools") : nullptr,
  };
  tools = nullptr;
  for (const Json* candidate : candidates) {
    if (!candidate || candidate->is_null()) continue;
    Json value = *candidate;
    if (value.is_string()) {
      Json parsed;
      if (!parse_json_text(value.get_ref<const std::string&>(), parsed)) parsed = nullptr;
      value = std::move(parsed);
    }
    if (!value.is_array()) {
      return fail(skip, "unreadable_tools", "tools is not a list (truncated metadata?)");
    }
    for (const Json& tool : value) {
      if (!tool.is_object()) return fail(skip, "unreadable_tools", "a tool is not an object");
    }
    if (!value.empty()) tools = std::move(value);
    return true;
  }
  return true;
}

bool content_text(const Json& content, std::string& text) {
  text.clear();
  if (content.is_null()) return true;
  if (content.is_string()) {
    text = content.get<std::string>();
    return true;
  }
  if (!content.is_array()) return false;
  bool first = true;
  for (const Json& part : content) {
    const Json* piece = nullptr;
    if (part.is_string()) {
      piece = &part;
    } else if (const Json* type = member(part, "type"); type && type->is_string()) {
      const auto& t = type->get_ref<const std::string&>();
      if (t == "text" || t == "input_text" || t == "output_text") piece = member(part, "text");
    }
    if (!piece || !piece->is_string()) return false;
    if (!first) text += '\n';
    text += piece->get_ref<const std::string&>();
    first = false;
  }
  return true;
}

}  // namespace lfh
