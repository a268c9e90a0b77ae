#include "export/export_fixture.h"

#include <fmt/format.h>
#include <stdlib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "store/schema.h"

namespace lfh::testing {
namespace {

void check(const Status& s, const char* what) {
  if (!s.ok()) throw std::runtime_error(std::string(what) + ": " + s.to_string());
}

constexpr const char* kWeatherTool =
    R"({"type":"function","function":{"name":"get_weather","description":"Current weather",)"
    R"("parameters":{"type":"object","properties":{"city":{"type":"string"}},)"
    R"("required":["city"]}}})";

}  // namespace

sql::Db open_migrated(const std::string& path) {
  auto db = sql::Db::open(path, sql::Db::Mode::kReadWrite);
  check(db.status(), "open");
  check(migrate(*db), "migrate");
  return std::move(db).value();
}

void exec(sql::Db& db, const std::string& sql) {
  check(db.exec(sql), "exec");
}

void insert(sql::Db& db, const TraceRow& row) {
  auto stmt = db.prepare(
      "INSERT INTO traces (project_id, trace_id, state, queued_at, fetched_at)"
      " VALUES (:p, :t, :state, '2026-01-10T00:00:00.000Z', '2026-01-10T00:00:01.000Z')");
  check(stmt.status(), "prepare trace");
  check(stmt->bind(":p", row.project_id).bind(":t", row.trace_id).bind(":state", row.state).run(),
        "insert trace");
}

void insert(sql::Db& db, const ObservationRow& row) {
  auto stmt = db.prepare(
      "INSERT INTO observations (project_id, observation_id, trace_id, type, name,"
      " parent_observation_id, start_time, model, usage_json, metadata_json, input_json,"
      " output_json, attributes_json, fetched_at)"
      " VALUES (:p, :id, :t, :type, :name, :parent, :start, :model, :usage, :metadata, :input,"
      " :output, :attributes, '2026-01-10T00:00:01.000Z')");
  check(stmt.status(), "prepare observation");
  stmt->bind(":p", row.project_id)
      .bind(":id", row.observation_id)
      .bind(":t", row.trace_id)
      .bind(":type", row.type)
      .bind(":name", row.name)
      .bind(":parent", row.parent)
      .bind(":start", row.start_time)
      .bind(":model", row.model)
      .bind(":usage", row.usage_json)
      .bind(":metadata", row.metadata_json)
      .bind(":input", row.input_json)
      .bind(":output", row.output_json)
      .bind(":attributes", row.attributes_json);
  check(stmt->run(), "insert observation");
}

void insert(sql::Db& db, const ScoreRow& row) {
  auto stmt = db.prepare(
      "INSERT INTO scores (project_id, score_id, name, source, data_type, value_json, value_num,"
      " string_value, comment, subject_kind, trace_id, observation_id, session_id, environment,"
      " timestamp, raw_json, first_seen_at, last_seen_at, deleted_at)"
      " VALUES (:p, :id, :name, :source, :type, :value, :num, :string, :comment, :kind, :trace,"
      " :obs, :session, :env, :ts, '{}', :ts, :ts, :deleted)");
  check(stmt.status(), "prepare score");
  const char* kind = row.session_id ? "session" : row.observation_id ? "observation" : "trace";
  stmt->bind(":p", row.project_id)
      .bind(":id", row.score_id)
      .bind(":name", row.name)
      .bind(":source", row.source)
      .bind(":type", row.data_type)
      .bind(":value", row.value_json)
      .bind(":num", row.value_num)
      .bind(":string", row.string_value)
      .bind(":comment", row.comment)
      .bind(":kind", kind)
      .bind(":trace", row.trace_id)
      .bind(":obs", row.observation_id)
      .bind(":session", row.session_id)
      .bind(":env", row.environment)
      .bind(":ts", row.timestamp)
      .bind(":deleted", row.deleted_at);
  check(stmt->run(), "insert score");
}

void build_golden_fixture(sql::Db& db) {
  exec(db, "BEGIN");
  const std::string usage = R"({"input":12,"output":3,"total":15,"unit":"TOKENS"})";

  // A plain-text input and output under a root span.
  insert(db, TraceRow{"t01-string-input"});
  insert(db, ObservationRow{.observation_id = "o01-root",
                            .trace_id = "t01-string-input",
                            .type = "SPAN",
                            .start_time = "2026-01-10T10:00:00.000Z",
                            .input_json = R"("What is 2+2?")",
                            .output_json = R"("4")",
                            .name = "handle-question"});
  insert(db, ObservationRow{.observation_id = "o01-gen",
                            .trace_id = "t01-string-input",
                            .parent = "o01-root",
                            .start_time = "2026-01-10T10:00:00.100Z",
                            .input_json = R"("What is 2+2?")",
                            .output_json = R"("4")",
                            .model = "gpt-4o-mini",
                            .usage_json = usage,
                            .name = "answer"});
  insert(db, ScoreRow{.score_id = "s01",
                      .trace_id = "t01-string-input",
                      .value_json = R"("Good")",
                      .string_value = "Good",
                      .comment = "short and right"});

  // An OpenAI request and response, scored at the observation level.
  insert(db, TraceRow{"t02-openai-response"});
  insert(db, ObservationRow{.observation_id = "o02-gen",
                            .trace_id = "t02-openai-response",
                            .start_time = "2026-01-10T10:01:00.000Z",
                            .input_json = R"([{"role":"system","content":"You are terse."},)"
                                          R"({"role":"user","content":"Capital of France?"}])",
                            .output_json =
                                R"({"id":"chatcmpl-1","object":"chat.completion","choices":)"
                                R"([{"index":0,"message":{"role":"assistant","content":"Paris.",)"
                                R"("refusal":null},"finish_reason":"stop"}]})",
                            .model = "gpt-4o-2024-08-06",
                            .usage_json = usage});
  insert(db, ScoreRow{.score_id = "s02",
                      .trace_id = "t02-openai-response",
                      .value_json = R"("Good")",
                      .string_value = "Good",
                      .observation_id = "o02-gen"});

  // An agent: a generation that calls a tool, the tool, and a generation that answers. The first
  // generation has its tools in the input, the second in its metadata.
  insert(db, TraceRow{"t03-tool-calls"});
  insert(db, ObservationRow{.observation_id = "o03-agent",
                            .trace_id = "t03-tool-calls",
                            .type = "AGENT",
                            .start_time = "2026-01-10T10:02:00.000Z",
                            .input_json = R"({"question":"Weather in Paris?"})",
                            .output_json = R"({"answer":"It is 18°C and sunny in Paris."})",
                            .name = "weather-agent"});
  insert(db, ObservationRow{
                 .observation_id = "o03-gen-1",
                 .trace_id = "t03-tool-calls",
                 .parent = "o03-agent",
                 .start_time = "2026-01-10T10:02:00.100Z",
                 .input_json = fmt::format(
                     R"({{"messages":[{{"role":"system","content":"Use the tools."}},)"
                     R"({{"role":"user","content":"Weather in Paris?"}}],"tools":[{}]}})",
                     kWeatherTool),
                 .output_json = R"({"role":"assistant","content":null,"tool_calls":[{"id":)"
                                R"("call_1","type":"function","function":{"name":"get_weather",)"
                                R"("arguments":"{\"city\":\"Paris\"}"}}]})",
                 .model = "gpt-4o-mini"});
  insert(db, ObservationRow{.observation_id = "o03-tool",
                            .trace_id = "t03-tool-calls",
                            .type = "TOOL",
                            .parent = "o03-agent",
                            .start_time = "2026-01-10T10:02:01.000Z",
                            .input_json = R"({"city":"Paris"})",
                            .output_json = R"("18°C, sunny")",
                            .name = "get_weather"});
  insert(
      db,
      ObservationRow{
          .observation_id = "o03-gen-2",
          .trace_id = "t03-tool-calls",
          .parent = "o03-agent",
          .start_time = "2026-01-10T10:02:02.000Z",
          .input_json = R"([{"role":"system","content":"Use the tools."},)"
                        R"({"role":"user","content":"Weather in Paris?"},)"
                        R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":)"
                        R"("function","function":{"name":"get_weather","arguments":)"
                        R"("{\"city\":\"Paris\"}"}}]},)"
                        R"({"role":"tool","tool_call_id":"call_1","content":"18°C, sunny"}])",
          .output_json = R"({"role":"assistant","content":"It is 18°C and sunny in Paris."})",
          .model = "gpt-4o-mini",
          .metadata_json = fmt::format(R"({{"tools":[{}],"agent":"weather"}})", kWeatherTool)});
  insert(db, ScoreRow{.score_id = "s03",
                      .trace_id = "t03-tool-calls",
                      .value_json = R"("Good")",
                      .string_value = "Good"});

  // Chinese and emoji, a BOOLEAN score as the current API sends it.
  insert(db, TraceRow{"t04-unicode"});
  insert(db, ObservationRow{.observation_id = "o04-gen",
                            .trace_id = "t04-unicode",
                            .start_time = "2026-01-10T10:03:00.000Z",
                            .input_json = R"([{"role":"user","content":"用中文解释递归 🌀"}])",
                            .output_json = R"("递归就是函数调用自身。🙂")",
                            .model = "qwen2.5-7b-instruct"});
  insert(db, ScoreRow{.score_id = "s04",
                      .trace_id = "t04-unicode",
                      .name = "correct",
                      .data_type = "BOOLEAN",
                      .value_json = "true",
                      .value_num = 1,
                      .comment = "很好 👍"});

  // The generation has no output (it failed, or the SDK never logged it).
  insert(db, TraceRow{"t05-missing-output"});
  insert(db, ObservationRow{.observation_id = "o05-gen",
                            .trace_id = "t05-missing-output",
                            .start_time = "2026-01-10T10:04:00.000Z",
                            .input_json = R"("Summarize the report.")",
                            .output_json = "null"});
  insert(db, ScoreRow{.score_id = "s05",
                      .trace_id = "t05-missing-output",
                      .value_json = R"("Good")",
                      .string_value = "Good"});

  // Three scores on one trace; two share the newest timestamp: the highest id (s06c) represents
  // the trace. A CORRECTION on the same trace is older, but openai-dpo prefers it.
  insert(db, TraceRow{"t06-duplicate-scores"});
  insert(db, ObservationRow{.observation_id = "o06-gen",
                            .trace_id = "t06-duplicate-scores",
                            .start_time = "2026-01-10T10:05:00.000Z",
                            .input_json = R"([{"role":"user","content":"Name a prime number."}])",
                            .output_json = R"("Nine.")"});
  insert(db, ScoreRow{.score_id = "s06a",
                      .trace_id = "t06-duplicate-scores",
                      .value_json = R"("Good")",
                      .string_value = "Good",
                      .timestamp = "2026-01-10T09:00:00.000Z"});
  insert(db, ScoreRow{.score_id = "s06b",
                      .trace_id = "t06-duplicate-scores",
                      .value_json = R"("Good")",
                      .string_value = "Good",
                      .timestamp = "2026-01-10T11:00:00.000Z"});
  insert(db, ScoreRow{.score_id = "s06c",
                      .trace_id = "t06-duplicate-scores",
                      .value_json = R"("Bad")",
                      .string_value = "Bad",
                      .timestamp = "2026-01-10T11:00:00.000Z",
                      .comment = "nine is not prime"});
  insert(db, ScoreRow{.score_id = "s06d",
                      .trace_id = "t06-duplicate-scores",
                      .name = "correction",
                      .data_type = "CORRECTION",
                      .value_json = R"("Seven.")",
                      .string_value = "Seven.",
                      .timestamp = "2026-01-10T10:30:00.000Z"});

  // Its only score was deleted on the server: never exported.
  insert(db, TraceRow{"t07-deleted-score"});
  insert(db, ObservationRow{.observation_id = "o07-gen",
                            .trace_id = "t07-deleted-score",
                            .start_time = "2026-01-10T10:06:00.000Z",
                            .input_json = R"("deleted")",
                            .output_json = R"("deleted")"});
  insert(db, ScoreRow{.score_id = "s07",
                      .trace_id = "t07-deleted-score",
                      .value_json = R"("Good")",
                      .string_value = "Good",
                      .deleted_at = "2026-01-11T00:00:00.000Z"});

  // A session score: no trace, nothing to export.
  insert(db, ScoreRow{.score_id = "s08",
                      .value_json = R"("Good")",
                      .string_value = "Good",
                      .session_id = "session-1"});

  // The stored input is cut off: skipped as bad_stored_json in every format.
  insert(db, TraceRow{"t09-bad-json"});
  insert(db, ObservationRow{.observation_id = "o09-gen",
                            .trace_id = "t09-bad-json",
                            .start_time = "2026-01-10T10:08:00.000Z",
                            .input_json = R"({"messages":[{"role":"user","content":"cut)",
                            .output_json = R"("fine")"});
  insert(db, ScoreRow{.score_id = "s09",
                      .trace_id = "t09-bad-json",
                      .value_json = R"("Good")",
                      .string_value = "Good"});

  // Scored but not fetched yet: counted as unfetched, not exported.
  insert(db, TraceRow{"t10-pending", "pending"});
  insert(db, ScoreRow{.score_id = "s10",
                      .trace_id = "t10-pending",
                      .value_json = R"("Good")",
                      .string_value = "Good"});

  // Only a span: no generation, but a root observation.
  insert(db, TraceRow{"t11-span-only"});
  insert(db, ObservationRow{.observation_id = "o11-span",
                            .trace_id = "t11-span-only",
                            .type = "SPAN",
                            .start_time = "2026-01-10T10:10:00.000Z",
                            .input_json = R"("ping")",
                            .output_json = R"("pong")"});
  insert(db, ScoreRow{.score_id = "s11",
                      .trace_id = "t11-span-only",
                      .value_json = R"("Good")",
                      .string_value = "Good"});

  // A NUMERIC score: fine for json and chat formats, the wrong type for kto and openai-dpo.
  insert(db, TraceRow{"t12-numeric"});
  insert(db, ObservationRow{.observation_id = "o12-gen",
                            .trace_id = "t12-numeric",
                            .start_time = "2026-01-10T10:11:00.000Z",
                            .input_json = R"("Rate this answer.")",
                            .output_json = R"("4/5")"});
  insert(db, ScoreRow{.score_id = "s12",
                      .trace_id = "t12-numeric",
                      .name = "rating",
                      .data_type = "NUMERIC",
                      .value_json = "4.5",
                      .value_num = 4.5});

  // An API score: outside the default source filter.
  insert(db, TraceRow{"t13-api-source"});
  insert(db, ObservationRow{.observation_id = "o13-gen",
                            .trace_id = "t13-api-source",
                            .start_time = "2026-01-10T10:12:00.000Z",
                            .input_json = R"("api")",
                            .output_json = R"("api")"});
  insert(db, ScoreRow{.score_id = "s13",
                      .trace_id = "t13-api-source",
                      .value_json = R"("Good")",
                      .string_value = "Good",
                      .source = "API"});

  // A correction: a ready preference pair.
  insert(db, TraceRow{"t14-correction"});
  insert(db, ObservationRow{
                 .observation_id = "o14-gen",
                 .trace_id = "t14-correction",
                 .start_time = "2026-01-10T10:13:00.000Z",
                 .input_json = R"([{"role":"user","content":"Translate 'chat' from French."}])",
                 .output_json = R"({"role":"assistant","content":"Chat."})"});
  insert(db, ScoreRow{.score_id = "s14",
                      .trace_id = "t14-correction",
                      .name = "correction",
                      .data_type = "CORRECTION",
                      .value_json = R"("Cat.")",
                      .string_value = "Cat."});

  // A correction that repeats the output: no preference to learn.
  insert(db, TraceRow{"t15-correction-same"});
  insert(db, ObservationRow{.observation_id = "o15-gen",
                            .trace_id = "t15-correction-same",
                            .start_time = "2026-01-10T10:14:00.000Z",
                            .input_json = R"("Say hi.")",
                            .output_json = R"("Hi!")"});
  insert(db, ScoreRow{.score_id = "s15",
                      .trace_id = "t15-correction-same",
                      .name = "correction",
                      .data_type = "CORRECTION",
                      .value_json = R"("Hi!")",
                      .string_value = "Hi!"});

  // An image part, and a BOOLEAN score as the legacy API sends it (1/0 with "True"/"False").
  insert(db, TraceRow{"t16-image-input"});
  insert(db, ObservationRow{.observation_id = "o16-gen",
                            .trace_id = "t16-image-input",
                            .start_time = "2026-01-10T10:15:00.000Z",
                            .input_json =
                                R"([{"role":"user","content":[{"type":"text","text":"What is )"
                                R"(this?"},{"type":"image_url","image_url":{"url":)"
                                R"("https://example.invalid/cat.png"}}]}])",
                            .output_json = R"("A cat.")"});
  insert(db, ScoreRow{.score_id = "s16",
                      .trace_id = "t16-image-input",
                      .name = "correct",
                      .data_type = "BOOLEAN",
                      .value_json = "0",
                      .value_num = 0,
                      .string_value = "False"});

  // A second project sorts after the first.
  insert(db, TraceRow{"t01-other-project", "done", "p2"});
  insert(db, ObservationRow{.observation_id = "o01-p2",
                            .trace_id = "t01-other-project",
                            .start_time = "2026-01-10T10:16:00.000Z",
                            .input_json = R"("Bonjour")",
                            .output_json = R"("Hello")",
                            .project_id = "p2"});
  insert(db, ScoreRow{.score_id = "s01-p2",
                      .trace_id = "t01-other-project",
                      .value_json = R"("Good")",
                      .string_value = "Good",
                      .environment = "staging",
                      .project_id = "p2"});
  exec(db, "COMMIT");
}

void insert_chat_record(sql::Db& db, int index, const std::string& answer) {
  const std::string trace = fmt::format("bulk-{:06d}", index);
  insert(db, TraceRow{trace});
  nlohmann::json input = nlohmann::json::array(
      {{{"role", "system"}, {"content", "You are a helpful assistant."}},
       {{"role", "user"}, {"content", fmt::format("Question number {}?", index)}}});
  insert(db, ObservationRow{.observation_id = trace + "-gen",
                            .trace_id = trace,
                            .start_time = "2026-01-10T10:00:00.000Z",
                            .input_json = input.dump(),
                            .output_json = nlohmann::json(answer).dump(),
                            .model = "gpt-4o-mini"});
  insert(db, ScoreRow{.score_id = trace + "-score",
                      .trace_id = trace,
                      .value_json = R"("Good")",
                      .string_value = "Good"});
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::string bytes(static_cast<std::size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

}  // namespace lfh::testing
