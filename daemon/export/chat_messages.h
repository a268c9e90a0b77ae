// Reading OpenAI-style chat messages out of stored generation inputs and outputs.
//
// Langfuse stores what the application's SDK logged, so the same conversation arrives in several
// shapes: a plain string, an array of messages, {"messages": [...], "tools": [...]} (an OpenAI
// request body), a single message, or an OpenAI response ({"choices":[{"message":...}]}). These
// functions accept those shapes and produce messages with the keys OpenAI fine-tuning accepts
// (role, content, name, tool_calls, tool_call_id, function_call), in that order. Anything else is
// refused with a stable reason code (export/formats.h lists them). Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lfh {

using Json = nlohmann::ordered_json;

/// Why a record cannot be converted: a stable code for counts and manifests, and a detail for
/// logs (never written to the output).
struct SkipReason {
  std::string code;
  std::string detail;
};

/// Deeper JSON is refused: printing it would recurse that deep.
inline constexpr std::size_t kMaxJsonDepth = 512;

/// Parses JSON text: false when it is not valid JSON or nests deeper than kMaxJsonDepth.
bool parse_json_text(std::string_view text, Json& out);

/// input -> array of messages. A plain string becomes one user message. Roles "human" and "ai"
/// (LangChain) become "user" and "assistant".
bool input_messages(const Json& input, Json& messages, SkipReason& skip);

/// output -> one assistant message. A plain string becomes its content; choices[0].message is
/// unwrapped; tool calls are kept. Refuses (missing_output) an output without content or calls.
bool assistant_message(const Json& output, Json& message, SkipReason& skip);

/// The tool definitions the generation was called with, looked up in order in input.tools,
/// metadata.tools, attributes.tools, attributes.metadata.tools and
/// attributes.modelParameters.tools (a string holding a JSON array is accepted). tools is null
/// when there are none. Refuses (unreadable_tools) a tools value that is not an array of objects,
/// e.g. metadata cut to 200 characters by the server.
bool find_tools(const Json& input, const Json& metadata, const Json& attributes, Json& tools,
                SkipReason& skip);

/// The text of a message content: a string as is, null as "", an array of text parts joined by
/// "\n". False for anything that is not text (images, audio, ...).
bool content_text(const Json& content, std::string& text);

}  // namespace lfh
