// libFuzzer target: reading chat messages out of stored generation inputs and outputs. The input
// is NUL-separated JSON texts: input, output, metadata, attributes. Checks: parse_json_text()
// refuses what nlohmann refuses; messages come out as an array of objects with a string role;
// the assistant message has role "assistant"; tools are null or an array of objects; every
// result serializes. Seeds: corpus/chat_messages/.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "export/chat_messages.h"

namespace {

void require(bool condition) {
  if (!condition) __builtin_trap();
}

std::vector<std::string_view> split(std::string_view text) {
  std::vector<std::string_view> fields;
  for (;;) {
    const auto nul = text.find('\0');
    fields.push_back(text.substr(0, nul));
    if (nul == std::string_view::npos) break;
    text.remove_prefix(nul + 1);
  }
  return fields;
}

lfh::Json parse_or_null(std::string_view text) {
  lfh::Json value;
  if (!lfh::parse_json_text(text, value)) return nullptr;
  require(nlohmann::json::accept(text));
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto fields = split(std::string_view(reinterpret_cast<const char*>(data), size));
  auto at = [&](std::size_t i) { return i < fields.size() ? fields[i] : std::string_view("null"); };
  const lfh::Json input = parse_or_null(at(0));
  const lfh::Json output = parse_or_null(at(1));
  const lfh::Json metadata = parse_or_null(at(2));
  const lfh::Json attributes = parse_or_null(at(3));

  lfh::SkipReason skip;
  lfh::Json messages;
  if (lfh::input_messages(input, messages, skip)) {
    require(messages.is_array());
    for (const auto& message : messages) {
      require(message.is_object());
      require(message.contains("role") && message["role"].is_string());
      if (message.contains("content")) {
        std::string text;
        (void)lfh::content_text(message["content"], text);
      }
    }
    (void)messages.dump();
  } else {
    require(!skip.code.empty());
  }

  lfh::SkipReason output_skip;
  lfh::Json assistant;
  if (lfh::assistant_message(output, assistant, output_skip)) {
    require(assistant.is_object() && assistant.value("role", "") == "assistant");
    (void)assistant.dump();
  } else {
    require(!output_skip.code.empty());
  }

  lfh::SkipReason tools_skip;
  lfh::Json tools;
  if (lfh::find_tools(input, metadata, attributes, tools, tools_skip)) {
    require(tools.is_null() || tools.is_array());
    if (tools.is_array()) {
      for (const auto& tool : tools) require(tool.is_object());
    }
    (void)tools.dump();
  } else {
    require(!tools_skip.code.empty());
  }
  return 0;
}
