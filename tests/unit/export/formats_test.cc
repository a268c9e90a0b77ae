// Conversion of single rows: the shapes generation inputs and outputs come in, and every reason
// a record is skipped.
#include "export/formats.h"

#include <doctest/doctest.h>

#include <string>

namespace lfh {
namespace {

DatasetRow generation(std::string input, std::string output) {
  DatasetRow row;
  row.project_id = "p";
  row.trace_id = "t";
  row.score_id = "s";
  row.score_name = "quality";
  row.score_source = "ANNOTATION";
  row.score_data_type = "CATEGORICAL";
  row.score_value_json = R"("Good")";
  row.score_string_value = "Good";
  row.score_timestamp = "2026-01-10T12:00:00.000Z";
  row.has_observation = true;
  row.observation_id = "o";
  row.observation_type = "GENERATION";
  row.start_time = "2026-01-10T10:00:00.000Z";
  row.input_json = std::move(input);
  row.output_json = std::move(output);
  row.attributes_json = "{}";
  return row;
}

ConvertedRecord convert(ExportFormat format, const DatasetRow& row, ConvertOptions options = {}) {
  ConvertedRecord out;
  convert_record(format, row, options, out);
  return out;
}

std::string chat(const DatasetRow& row) {
  ConvertedRecord out = convert(ExportFormat::kOpenAiChat, row);
  REQUIRE_MESSAGE(out.ok(), out.skip.code << ": " << out.skip.detail);
  return out.text;
}

std::string skip_code(ExportFormat format, const DatasetRow& row, ConvertOptions options = {}) {
  ConvertedRecord out = convert(format, row, options);
  CHECK(out.text.empty());
  return out.skip.code;
}

}  // namespace

TEST_CASE("format and pick names round-trip and unknown names are refused") {
  for (auto f : {ExportFormat::kJson, ExportFormat::kJsonl, ExportFormat::kOpenAiChat,
                 ExportFormat::kOpenAiDpo, ExportFormat::kKto, ExportFormat::kShareGpt,
                 ExportFormat::kTrlDpo}) {
    CHECK(parse_export_format(export_format_name(f)) == f);
  }
  for (auto p : {ObservationPick::kLastGeneration, ObservationPick::kAllGenerations,
                 ObservationPick::kRoot}) {
    CHECK(parse_pick(pick_name(p)) == p);
  }
  CHECK_FALSE(parse_export_format("csv").has_value());
  CHECK_FALSE(parse_export_format("JSON").has_value());
  CHECK_FALSE(parse_pick("first-generation").has_value());
}

TEST_CASE("openai-chat: the input shapes Langfuse stores") {
  SUBCASE("a plain string is one user message") {
    CHECK(
        chat(generation(R"("hi")", R"("hello")")) ==
        R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]})");
  }
  SUBCASE("an OpenAI request body; extra request keys are dropped") {
    CHECK(chat(generation(
              R"({"model":"m","temperature":0,"messages":[{"role":"user","content":"q"}]})",
              R"("a")")) ==
          R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})");
  }
  SUBCASE("a single message object") {
    CHECK(chat(generation(R"({"role":"user","content":"q"})", R"("a")")) ==
          R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})");
  }
  SUBCASE("LangChain roles and tool calls under additional_kwargs") {
    CHECK(
        chat(generation(
            R"([{"role":"human","content":"q"},{"role":"ai","content":"","additional_kwargs":)"
            R"({"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}},)"
            R"({"role":"tool","tool_call_id":"c","content":"r"}])",
            R"("a")")) ==
        R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"","tool_calls":)"
        R"([{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},)"
        R"({"role":"tool","content":"r","tool_call_id":"c"},{"role":"assistant","content":"a"}]})");
  }
  SUBCASE("unknown message keys are dropped, name is kept") {
    CHECK(
        chat(
            generation(R"([{"role":"user","name":"ann","content":"q","audio":null}])", R"("a")")) ==
        R"({"messages":[{"role":"user","content":"q","name":"ann"},{"role":"assistant","content":"a"}]})");
  }
}

TEST_CASE("openai-chat: the output shapes Langfuse stores") {
  const std::string input = R"("q")";
  const std::string prefix = R"({"messages":[{"role":"user","content":"q"},)";
  SUBCASE("choices[0].message is unwrapped") {
    CHECK(chat(generation(input, R"({"choices":[{"message":{"role":"assistant","content":"a"}},)"
                                 R"({"message":{"role":"assistant","content":"second"}}]})")) ==
          prefix + R"({"role":"assistant","content":"a"}]})");
  }
  SUBCASE("legacy completions choices[0].text") {
    CHECK(chat(generation(input, R"({"choices":[{"text":"a"}]})")) ==
          prefix + R"({"role":"assistant","content":"a"}]})");
  }
  SUBCASE("a message without role, and a one-element list") {
    CHECK(chat(generation(input, R"({"content":"a"})")) ==
          prefix + R"({"role":"assistant","content":"a"}]})");
    CHECK(chat(generation(input, R"([{"role":"assistant","content":"a"}])")) ==
          prefix + R"({"role":"assistant","content":"a"}]})");
  }
  SUBCASE("tool calls without content are kept") {
    CHECK(chat(generation(input,
                          R"({"role":"assistant","content":null,"tool_calls":[{"id":"c"}]})")) ==
          prefix + R"({"role":"assistant","content":null,"tool_calls":[{"id":"c"}]}]})");
  }
}

TEST_CASE("openai-chat: tools come from the input, the metadata or the attributes") {
  const std::string tool = R"({"type":"function","function":{"name":"f"}})";
  const std::string expected_tail = R"("tools":[)" + tool + "]}";
  SUBCASE("input.tools") {
    auto row = generation(R"({"messages":[{"role":"user","content":"q"}],"tools":[)" + tool + "]}",
                          R"("a")");
    CHECK(chat(row).ends_with(expected_tail));
  }
  SUBCASE("metadata.tools") {
    auto row = generation(R"("q")", R"("a")");
    row.metadata_json = R"({"tools":[)" + tool + "]}";
    CHECK(chat(row).ends_with(expected_tail));
  }
  SUBCASE("attributes.modelParameters.tools as JSON text") {
    auto row = generation(R"("q")", R"("a")");
    row.attributes_json =
        R"({"modelParameters":{"tools":)" + nlohmann::json("[" + tool + "]").dump() + "}}";
    CHECK(chat(row).ends_with(expected_tail));
  }
  SUBCASE("an empty list means no tools") {
    auto row = generation(R"({"messages":[{"role":"user","content":"q"}],"tools":[]})", R"("a")");
    CHECK(chat(row).find("tools") == std::string::npos);
  }
  SUBCASE("metadata cut to 200 characters by the server is refused, not silently dropped") {
    auto row = generation(R"("q")", R"("a")");
    row.metadata_json = R"({"tools":"[{\"type\":\"function\",\"function\":{\"na"})";
    CHECK(skip_code(ExportFormat::kOpenAiChat, row) == "unreadable_tools");
  }
}

TEST_CASE("chat formats skip records they cannot convert, with the reason") {
  for (auto format : {ExportFormat::kOpenAiChat, ExportFormat::kKto, ExportFormat::kShareGpt}) {
    CAPTURE(export_format_name(format));
    ConvertOptions options;
    options.positive = "Good";
    CHECK(skip_code(format, generation(R"("q")", "null"), options) == "missing_output");
    CHECK(skip_code(format, generation(R"("q")", R"("")"), options) == "missing_output");
    CHECK(skip_code(format, generation(R"("q")", R"({"role":"assistant","content":null})"),
                    options) == "missing_output");
    CHECK(skip_code(format, generation(R"("q")", R"({"choices":[]})"), options) ==
          "missing_output");
    CHECK(skip_code(format, generation(R"("q")", "42"), options) == "unrecognized_output");
    CHECK(skip_code(format, generation(R"("q")", R"({"answer":"a"})"), options) ==
          "unrecognized_output");
    CHECK(skip_code(format, generation(R"("q")", R"(["a","b"])"), options) ==
          "unrecognized_output");
    CHECK(skip_code(format, generation("null", R"("a")"), options) == "missing_input");
    CHECK(skip_code(format, generation("[]", R"("a")"), options) == "missing_input");
    CHECK(skip_code(format, generation("3", R"("a")"), options) == "unrecognized_input");
    CHECK(skip_code(format, generation(R"({"question":"q"})", R"("a")"), options) ==
          "unrecognized_input");
    CHECK(skip_code(format, generation(R"([{"content":"no role"}])", R"("a")"), options) ==
          "unrecognized_input");
    CHECK(skip_code(format, generation(R"([{"role":"user","content":{"x":1}}])", R"("a")"),
                    options) == "unrecognized_input");
  }
}

TEST_CASE("bad stored JSON is skipped in every format, never exported half-read") {
  for (auto format : {ExportFormat::kJson, ExportFormat::kJsonl, ExportFormat::kOpenAiChat,
                      ExportFormat::kShareGpt}) {
    CAPTURE(export_format_name(format));
    CHECK(skip_code(format, generation(R"({"messages":[)", R"("a")")) == "bad_stored_json");
    CHECK(skip_code(format, generation(R"("q")", "Plain text, not JSON")) == "bad_stored_json");
    // Nesting far deeper than any real message: refused before it reaches the printer.
    CHECK(skip_code(format, generation(std::string(100000, '[') + std::string(100000, ']'),
                                       R"("a")")) == "bad_stored_json");
  }
  auto row = generation(R"("q")", R"("a")");
  row.score_value_json = "{oops";
  CHECK(skip_code(ExportFormat::kJson, row) == "bad_score_value");
  row = generation(R"("q")", R"("a")");
  row.usage_json = "{";
  CHECK(skip_code(ExportFormat::kJsonl, row) == "bad_stored_json");
  row = generation(R"("q")", R"("a")");
  row.attributes_json = "{";
  CHECK(skip_code(ExportFormat::kOpenAiChat, row) == "bad_stored_json");
}

TEST_CASE("nesting up to the limit is still exported") {
  const std::string deep =
      std::string(kMaxJsonDepth - 1, '[') + std::string(kMaxJsonDepth - 1, ']');
  CHECK(convert(ExportFormat::kJson, generation(deep, R"("a")")).ok());
}

TEST_CASE("text columns that are not UTF-8 are skipped as invalid_utf8") {
  auto row = generation(R"("q")", R"("a")");
  row.score_comment = std::string("bad \xC3\x28 bytes");
  CHECK(skip_code(ExportFormat::kJson, row) == "invalid_utf8");
}

TEST_CASE("a row without an observation is skipped with the pick's reason") {
  DatasetRow row = generation("", "");
  row.has_observation = false;
  CHECK(skip_code(ExportFormat::kJson, row) == "no_generation");
  ConvertOptions root;
  root.pick = ObservationPick::kRoot;
  CHECK(skip_code(ExportFormat::kJsonl, row, root) == "no_root_observation");
}

TEST_CASE("json keeps the stored values; jsonl adds the identifiers") {
  auto row = generation(R"({"b":1,"a":[1.5,"x"]})", R"("a")");
  row.score_comment = "c";
  CHECK(convert(ExportFormat::kJson, row).text ==
        R"({"trace_id":"t","score_name":"quality","score_value":"Good","string_value":"Good",)"
        R"("comment":"c","input":{"b":1,"a":[1.5,"x"]},"output":"a"})");
  row.usage_json = R"({"total":3})";
  row.model = "m";
  const std::string jsonl = convert(ExportFormat::kJsonl, row).text;
  auto parsed = nlohmann::json::parse(jsonl);
  CHECK(parsed["score_id"] == "s");
  CHECK(parsed["observation_id"] == "o");
  CHECK(parsed["usage"]["total"] == 3);
  CHECK(parsed["model"] == "m");
  CHECK(parsed["score_timestamp"] == "2026-01-10T12:00:00.000Z");
  CHECK(jsonl.find('\n') == std::string::npos);
}

TEST_CASE("pretty-printed stored JSON still gives one line per record") {
  auto row =
      generation("[\n  {\"role\": \"user\",\n   \"content\": \"line1\\nline2\"}\n]", R"("a")");
  for (auto format : {ExportFormat::kJsonl, ExportFormat::kOpenAiChat, ExportFormat::kShareGpt}) {
    ConvertedRecord out = convert(format, row);
    REQUIRE(out.ok());
    CHECK(out.text.find('\n') == std::string::npos);
  }
}

TEST_CASE("openai-dpo builds a preference pair from a CORRECTION score") {
  auto row =
      generation(R"({"messages":[{"role":"user","content":"q"}],"tools":[{"type":"function"}]})",
                 R"({"choices":[{"message":{"role":"assistant","content":"wrong"}}]})");
  row.score_data_type = "CORRECTION";
  row.score_value_json = R"("right")";
  row.score_string_value = "right";
  CHECK(convert(ExportFormat::kOpenAiDpo, row).text ==
        R"({"input":{"messages":[{"role":"user","content":"q"}],"tools":[{"type":"function"}]},)"
        R"("preferred_output":[{"role":"assistant","content":"right"}],)"
        R"("non_preferred_output":[{"role":"assistant","content":"wrong"}]})");

  SUBCASE("the correction from value_json when string_value is absent") {
    row.score_string_value.reset();
    CHECK(convert(ExportFormat::kOpenAiDpo, row).ok());
  }
  SUBCASE("empty correction") {
    row.score_string_value = "";
    CHECK(skip_code(ExportFormat::kOpenAiDpo, row) == "empty_correction");
  }
  SUBCASE("a correction equal to the output teaches nothing") {
    row.score_string_value = "wrong";
    CHECK(skip_code(ExportFormat::kOpenAiDpo, row) == "correction_equals_output");
  }
  SUBCASE("other score types") {
    row.score_data_type = "CATEGORICAL";
    CHECK(skip_code(ExportFormat::kOpenAiDpo, row) == "wrong_score_type");
    row.score_data_type.reset();
    CHECK(skip_code(ExportFormat::kOpenAiDpo, row) == "wrong_score_type");
  }
}

TEST_CASE("kto labels from BOOLEAN and CATEGORICAL scores") {
  auto label = [](const DatasetRow& row, ConvertOptions options) -> std::string {
    ConvertedRecord out = convert(ExportFormat::kKto, row, options);
    if (!out.ok()) return out.skip.code;
    return nlohmann::json::parse(out.text)["label"].dump();
  };
  auto row = generation(R"("q")", R"("a")");
  ConvertOptions none;
  ConvertOptions good;
  good.positive = "Good";
  ConvertOptions positive_false;
  positive_false.positive = "False";

  row.score_string_value = "Good";
  CHECK(label(row, good) == "true");
  row.score_string_value = "Bad";
  row.score_value_json = R"("Bad")";
  CHECK(label(row, good) == "false");
  CHECK(label(row, none) == "kto_positive_not_set");

  row.score_data_type = "BOOLEAN";
  row.score_string_value.reset();
  row.score_value_json = "true";  // current API
  CHECK(label(row, none) == "true");
  CHECK(label(row, good) == "true");  // a label positive does not apply to booleans
  CHECK(label(row, positive_false) == "false");
  row.score_value_json = "0";  // legacy API: 1/0 and "True"/"False"
  row.score_value_num = 0;
  row.score_string_value = "False";
  CHECK(label(row, none) == "false");
  CHECK(label(row, positive_false) == "true");

  row.score_data_type = "NUMERIC";
  CHECK(label(row, good) == "wrong_score_type");
  row.score_data_type = "TEXT";
  CHECK(label(row, good) == "wrong_score_type");

  row = generation(R"("q")", R"("a")");
  row.score_data_type.reset();
  row.score_value_json = "false";  // no data type stored: a JSON boolean is a BOOLEAN
  CHECK(label(row, none) == "false");

  CHECK(convert(ExportFormat::kKto, generation(R"("q")", R"("a")"), good).text ==
        R"({"prompt":[{"role":"user","content":"q"}],"completion":[{"role":"assistant",)"
        R"("content":"a"}],"label":true})");
}

TEST_CASE("sharegpt llamafactory: its role tags, one function_call turn, strict alternation") {
  auto row = generation(
      R"([{"role":"developer","content":"sys"},{"role":"user","content":[{"type":"text","text":"a"},)"
      R"({"type":"text","text":"b"}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c",)"
      R"("type":"function","function":{"name":"f","arguments":"{\"x\":1}"}},{"id":"d",)"
      R"("type":"function","function":{"name":"g","arguments":"not json"}}]},)"
      R"({"role":"tool","tool_call_id":"c","content":"r1"},)"
      R"({"role":"tool","tool_call_id":"d","content":"r2"}])",
      R"("done")");
  row.metadata_json = R"({"tools":[{"type":"function","function":{"name":"f"}}]})";
  CHECK(
      convert(ExportFormat::kShareGpt, row).text ==
      R"({"conversations":[{"from":"system","value":"sys"},{"from":"human","value":"a\nb"},)"
      R"({"from":"function_call","value":)"
      R"("[{\"name\":\"f\",\"arguments\":{\"x\":1}},{\"name\":\"g\",\"arguments\":\"not json\"}]"},)"
      R"({"from":"observation","value":"r1\nr2"},{"from":"gpt","value":"done"}],)"
      R"("tools":"[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"})");

  SUBCASE("text beside tool calls has no place in a function_call turn") {
    auto both = generation(R"("q")", R"({"role":"assistant","content":"let me look","tool_calls":)"
                                     R"([{"id":"c","type":"function","function":{"name":"f",)"
                                     R"("arguments":"{}"}}]})");
    CHECK(skip_code(ExportFormat::kShareGpt, both) == "text_with_tool_calls");
  }
  SUBCASE("turns LLaMA-Factory would drop are skipped, or merged on request") {
    auto twice =
        generation(R"([{"role":"user","content":"a"},{"role":"user","content":"b"}])", R"("c")");
    CHECK(skip_code(ExportFormat::kShareGpt, twice) == "non_alternating_turns");
    ConvertOptions merge;
    merge.non_alternating = TurnPolicy::kMerge;
    ConvertedRecord out = convert(ExportFormat::kShareGpt, twice, merge);
    CHECK(out.non_alternating);
    CHECK(out.text ==
          R"({"conversations":[{"from":"human","value":"a\n\nb"},{"from":"gpt","value":"c"}]})");
  }
  CHECK(skip_code(ExportFormat::kShareGpt,
                  generation(R"([{"role":"critic","content":"x"}])", R"("a")")) == "unknown_role");
  CHECK(skip_code(ExportFormat::kShareGpt,
                  generation(R"([{"role":"user","content":[{"type":"input_audio"}]}])",
                             R"("a")")) == "non_text_content");
}

TEST_CASE("sharegpt axolotl: role names its loader maps, tool calls as the assistant's text") {
  ConvertOptions axolotl;
  axolotl.sharegpt_dialect = ShareGptDialect::kAxolotl;
  auto row = generation(
      R"([{"role":"system","content":"sys"},{"role":"user","content":"q"},)"
      R"({"role":"assistant","content":"looking","tool_calls":[{"id":"c","type":"function",)"
      R"("function":{"name":"f","arguments":"{\"x\":1}"}}]},)"
      R"({"role":"tool","tool_call_id":"c","content":"r"}])",
      R"("done")");
  CHECK(convert(ExportFormat::kShareGpt, row, axolotl).text ==
        R"({"conversations":[{"from":"system","value":"sys"},{"from":"user","value":"q"},)"
        R"({"from":"assistant","value":"looking\n[{\"name\":\"f\",\"arguments\":{\"x\":1}}]"},)"
        R"({"from":"tool","value":"r"},{"from":"assistant","value":"done"}]})");
  CHECK(parse_sharegpt_dialect("axolotl") == ShareGptDialect::kAxolotl);
  CHECK(parse_sharegpt_dialect(sharegpt_dialect_name(ShareGptDialect::kLlamaFactory)) ==
        ShareGptDialect::kLlamaFactory);
  CHECK_FALSE(parse_sharegpt_dialect("Axolotl"));
}

TEST_CASE("kto keeps the tools and gives tool-call arguments as objects") {
  auto row = generation(
      R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,)"
      R"("tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},)"
      R"({"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function"}]})",
      R"({"role":"assistant","content":null,"tool_calls":[{"id":"d","type":"function",)"
      R"("function":{"name":"g","arguments":"{\"y\":[2]}"}}]})");
  row.score_data_type = "BOOLEAN";
  row.score_value_json = "true";
  CHECK(
      convert(ExportFormat::kKto, row).text ==
      R"({"prompt":[{"role":"user","content":"q"},{"role":"assistant","content":null,)"
      R"("tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":{"x":1}}}]},)"
      R"({"role":"tool","content":"r","tool_call_id":"c"}],)"
      R"("completion":[{"role":"assistant","content":null,"tool_calls":[{"id":"d",)"
      R"("type":"function","function":{"name":"g","arguments":{"y":[2]}}}]}],"label":true,)"
      R"("tools":"[{\"type\":\"function\"}]"})");
  // openai-chat keeps OpenAI's JSON text for the same trace.
  CHECK(chat(row).find(R"("arguments":"{\"x\":1}")") != std::string::npos);
}

TEST_CASE("trl-dpo: prompt, chosen and rejected from the same pairs as openai-dpo") {
  auto row =
      generation(R"({"messages":[{"role":"user","content":"q"}],"tools":[{"type":"function"}]})",
                 R"({"choices":[{"message":{"role":"assistant","content":"wrong"}}]})");
  row.score_data_type = "CORRECTION";
  row.score_value_json = R"("right")";
  row.score_string_value = "right";
  CHECK(
      convert(ExportFormat::kTrlDpo, row).text ==
      R"({"prompt":[{"role":"user","content":"q"}],)"
      R"("chosen":[{"role":"assistant","content":"right"}],)"
      R"("rejected":[{"role":"assistant","content":"wrong"}],"tools":"[{\"type\":\"function\"}]"})");
  row.score_string_value = "wrong";
  CHECK(skip_code(ExportFormat::kTrlDpo, row) == "correction_equals_output");
  row.score_data_type = "BOOLEAN";
  CHECK(skip_code(ExportFormat::kTrlDpo, row) == "wrong_score_type");
  CHECK(preferred_score_types(ExportFormat::kTrlDpo) == std::vector<std::string>{"CORRECTION"});
}

TEST_CASE("a repeated answer is counted, kept, dropped or merged") {
  auto row =
      generation(R"([{"role":"user","content":"q"},{"role":"assistant","content":"a"}])", R"("a")");
  ConvertedRecord kept = convert(ExportFormat::kOpenAiChat, row);
  CHECK(kept.repeated_answer);
  CHECK(kept.non_alternating);  // assistant, assistant
  CHECK(kept.text == R"({"messages":[{"role":"user","content":"q"},{"role":"assistant",)"
                     R"("content":"a"},{"role":"assistant","content":"a"}]})");
  ConvertOptions drop;
  drop.repeated_answer = TurnPolicy::kDrop;
  CHECK(skip_code(ExportFormat::kOpenAiChat, row, drop) == "repeated_answer");
  ConvertOptions merge;
  merge.repeated_answer = TurnPolicy::kMerge;
  ConvertedRecord merged = convert(ExportFormat::kOpenAiChat, row, merge);
  CHECK(merged.repeated_answer);
  CHECK_FALSE(merged.non_alternating);  // the repair made it alternate
  CHECK(merged.text ==
        R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})");
  // A different earlier answer is no repetition.
  auto other =
      generation(R"([{"role":"user","content":"q"},{"role":"assistant","content":"b"}])", R"("a")");
  CHECK_FALSE(convert(ExportFormat::kOpenAiChat, other).repeated_answer);
  CHECK(parse_turn_policy("merge") == TurnPolicy::kMerge);
  CHECK_FALSE(parse_turn_policy("Merge"));
}

TEST_CASE("non-alternating turns are counted, dropped or merged") {
  auto row = generation(R"([{"role":"system","content":"s"},{"role":"user","content":"a"},)"
                        R"({"role":"user","content":[{"type":"text","text":"b"}]},)"
                        R"({"role":"assistant","content":"x"},{"role":"tool","content":"t1"},)"
                        R"({"role":"tool","content":"t2"},{"role":"assistant","content":"y"}])",
                        R"("z")");
  ConvertedRecord kept = convert(ExportFormat::kOpenAiChat, row);
  CHECK(kept.non_alternating);
  CHECK_FALSE(kept.repeated_answer);
  ConvertOptions drop;
  drop.non_alternating = TurnPolicy::kDrop;
  CHECK(skip_code(ExportFormat::kKto, row, drop) == "kto_positive_not_set");  // label first
  CHECK(skip_code(ExportFormat::kOpenAiChat, row, drop) == "non_alternating_turns");
  ConvertOptions merge;
  merge.non_alternating = TurnPolicy::kMerge;
  // Text and parts join as parts; consecutive tool results stay; the trailing assistant message
  // merges into the answer.
  CHECK(convert(ExportFormat::kOpenAiChat, row, merge).text ==
        R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text",)"
        R"("text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":"x"},)"
        R"({"role":"tool","content":"t1"},{"role":"tool","content":"t2"},)"
        R"({"role":"assistant","content":"y\n\nz"}]})");
  // Parallel tool results alone are not a defect.
  auto parallel = generation(R"([{"role":"user","content":"a"},{"role":"assistant","content":"x"},)"
                             R"({"role":"tool","content":"t1"},{"role":"tool","content":"t2"}])",
                             R"("z")");
  CHECK_FALSE(convert(ExportFormat::kOpenAiChat, parallel).non_alternating);
}

TEST_CASE("record keys: one per trace, one per generation for all-generations") {
  auto row = generation("", "");
  CHECK(record_key(row, ObservationPick::kLastGeneration) == "p/t");
  CHECK(record_key(row, ObservationPick::kRoot) == "p/t");
  CHECK(record_key(row, ObservationPick::kAllGenerations) == "p/t/o");
}

TEST_CASE("conversion is deterministic and never throws on odd values") {
  auto row = generation(
      R"({"messages":[{"role":"user","content":"q"}],"n":1e300,"small":-0.0,"big":18446744073709551616})",
      R"("a")");
  ConvertedRecord first = convert(ExportFormat::kJson, row);
  ConvertedRecord second = convert(ExportFormat::kJson, row);
  CHECK(first.ok());
  CHECK(first.text == second.text);
  // A number beyond double range is not JSON nlohmann can read: skipped, not thrown.
  row.input_json = "[1e400]";
  CHECK(skip_code(ExportFormat::kJson, row) == "bad_stored_json");
}

}  // namespace lfh
