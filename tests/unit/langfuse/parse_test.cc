#include "langfuse/parse.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace lfh {
namespace {

using Json = nlohmann::json;

// Bodies shaped like the spec's GetScoresV3Response, GetScoresResponse, ObservationsV2Response
// and legacyObservationsViews.
constexpr const char* kScoresV3 = R"({
  "data": [
    {"id": "s-1", "projectId": "p-1", "name": "helpfulness", "value": 0.75,
     "dataType": "NUMERIC", "source": "ANNOTATION", "timestamp": "2025-03-01T10:00:00Z",
     "environment": "production", "createdAt": "2025-03-01T10:00:01.000Z",
     "updatedAt": "2025-03-01T10:00:02.000+01:00", "comment": "clear answer",
     "configId": "cfg-1", "metadata": {"reviewer": "ann"}, "authorUserId": "u-1",
     "queueId": "q-1", "subject": {"kind": "trace", "id": "t-1"}},
    {"id": "s-2", "projectId": "p-1", "name": "correct", "value": true, "dataType": "BOOLEAN",
     "source": "ANNOTATION", "timestamp": "2025-03-01T09:00:00.000Z", "environment": "default",
     "createdAt": "2025-03-01T09:00:00.000Z", "updatedAt": "2025-03-01T09:00:00.000Z",
     "comment": null, "configId": null, "metadata": null, "authorUserId": null, "queueId": null,
     "subject": {"kind": "observation", "id": "o-7", "traceId": "t-2"}},
    {"id": "s-3", "projectId": "p-1", "name": "tone", "value": "friendly",
     "dataType": "CATEGORICAL", "source": "EVAL", "timestamp": "2025-03-01T08:00:00.000Z",
     "environment": "default", "createdAt": "2025-03-01T08:00:00.000Z",
     "updatedAt": "2025-03-01T08:00:00.000Z", "subject": {"kind": "session", "id": "sess-1"}},
    {"id": "s-4", "projectId": "p-1", "name": "fix", "value": "The corrected answer.",
     "dataType": "CORRECTION", "source": "ANNOTATION", "timestamp": "2025-03-01T07:00:00.000Z",
     "environment": "default", "createdAt": "2025-03-01T07:00:00.000Z",
     "updatedAt": "2025-03-01T07:00:00.000Z", "subject": {"kind": "experiment", "id": "run-1"}}
  ],
  "meta": {"limit": 4, "cursor": "eyJ0IjoxfQ+/="}
})";

constexpr const char* kScoresLegacy = R"({
  "data": [
    {"id": "s-1", "traceId": "t-1", "sessionId": null, "observationId": null,
     "datasetRunId": null, "name": "helpfulness", "source": "ANNOTATION",
     "timestamp": "2024-05-01T12:00:00.000Z", "createdAt": "2024-05-01T12:00:00.000Z",
     "updatedAt": "2024-05-01T12:00:00.000Z", "authorUserId": "u-1", "comment": null,
     "metadata": null, "configId": null, "queueId": null, "environment": "default",
     "dataType": "NUMERIC", "value": 3,
     "trace": {"userId": "user-1", "tags": ["a"], "environment": "default"}},
    {"id": "s-2", "traceId": "t-2", "observationId": "o-2", "name": "correct",
     "source": "ANNOTATION", "timestamp": "2024-05-01T11:00:00.000Z",
     "createdAt": "2024-05-01T11:00:00.000Z", "updatedAt": "2024-05-01T11:00:00.000Z",
     "dataType": "BOOLEAN", "value": 0, "stringValue": "False", "environment": "default"},
    {"id": "s-3", "traceId": "t-3", "name": "tone", "source": "ANNOTATION",
     "timestamp": "2024-05-01T10:00:00.000Z", "dataType": "CATEGORICAL", "value": 2,
     "stringValue": "friendly"},
    {"id": "s-4", "traceId": "t-4", "name": "note", "source": "API",
     "timestamp": "2024-05-01T09:00:00.000Z", "dataType": "TEXT",
     "stringValue": "Needs a source."},
    {"id": "s-5", "sessionId": "sess-9", "name": "session-rating", "source": "API",
     "timestamp": "2024-05-01T08:00:00.000Z", "dataType": "NUMERIC", "value": 1}
  ],
  "meta": {"page": 1, "limit": 5, "totalItems": 12, "totalPages": 3}
})";

constexpr const char* kObservationsV2 = R"({
  "data": [
    {"id": "o-1", "traceId": "t-1", "startTime": "2025-03-01T10:00:00.000Z",
     "endTime": "2025-03-01T10:00:02.500Z", "projectId": "p-1", "parentObservationId": "o-0",
     "type": "GENERATION", "name": "chat", "level": "DEFAULT", "statusMessage": null,
     "version": null, "environment": "production", "userId": "user-1", "sessionId": "sess-1",
     "isRootObservation": false,
     "input": "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
     "output": "Hello there!", "metadata": {"k": "v"}, "providedModelName": "gpt-4o",
     "internalModelId": "m-1", "modelParameters": {"temperature": 0.2},
     "usageDetails": {"input": 10, "output": 5, "total": 15}, "costDetails": {"total": 0.001},
     "totalCost": 0.001, "modelId": null, "inputPrice": null, "outputPrice": null,
     "totalPrice": null},
    {"id": "o-0", "traceId": "t-1", "startTime": "2025-03-01T09:59:59.000Z", "endTime": null,
     "projectId": "p-1", "parentObservationId": null, "type": "SPAN", "input": "[1, 2]",
     "output": null}
  ],
  "meta": {"cursor": "b2JzOjI+/w=="}
})";

constexpr const char* kObservationsLegacy = R"({
  "data": [
    {"id": "o-1", "traceId": "t-1", "type": "GENERATION", "name": "chat",
     "startTime": "2024-05-01T12:00:00.000Z", "endTime": "2024-05-01T12:00:01.000Z",
     "completionStartTime": null, "model": "gpt-4", "modelParameters": {"temperature": 0},
     "input": {"messages": [{"role": "user", "content": "hi"}]}, "version": null,
     "metadata": null, "output": "plain text answer",
     "usage": {"input": 10, "output": 5, "total": 15, "unit": "TOKENS"}, "level": "DEFAULT",
     "statusMessage": null, "parentObservationId": null, "promptId": null,
     "usageDetails": {"input": 10, "output": 5}, "costDetails": {}, "environment": "default",
     "promptName": null, "promptVersion": null, "modelId": "m-1", "inputPrice": 0.00001,
     "outputPrice": 0.00003, "totalPrice": null, "calculatedInputCost": 0.0001,
     "calculatedOutputCost": 0.00015, "calculatedTotalCost": 0.00025, "latency": 1.0,
     "timeToFirstToken": null}
  ],
  "meta": {"page": 2, "limit": 10, "totalItems": 11, "totalPages": 2}
})";

std::string v3_page(const std::string& items, const std::string& cursor = "null") {
  return R"({"data":[)" + items + R"(],"meta":{"limit":50,"cursor":)" + cursor + "}}";
}
std::string v2_obs_page(const std::string& items) {
  return R"({"data":[)" + items + R"(],"meta":{}})";
}
std::string legacy_page(const std::string& items, int total_pages = 1) {
  return R"({"data":[)" + items + R"(],"meta":{"page":1,"limit":50,"totalItems":1,"totalPages":)" +
         std::to_string(total_pages) + "}}";
}

const std::string kGoodScore =
    R"({"id":"ok","name":"n","value":1,"dataType":"NUMERIC","source":"API",)"
    R"("timestamp":"2025-01-01T00:00:00Z","subject":{"kind":"trace","id":"t"}})";
const std::string kGoodObservation =
    R"({"id":"ok","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z"})";

void check_malformed(const Status& status) {
  CHECK(status.kind() == ErrorKind::kRetryable);
  CHECK(status.message().rfind("malformed response: ", 0) == 0);
}

TEST_CASE("generation_from_version") {
  CHECK(generation_from_version("4.16.0") == ApiGeneration::kCurrent);
  CHECK(generation_from_version("v5.0.0") == ApiGeneration::kCurrent);
  CHECK(generation_from_version("3.112.0") == ApiGeneration::kLegacy);
  CHECK(generation_from_version("2.95.1") == ApiGeneration::kLegacy);
  CHECK(generation_from_version("1.0.0") == ApiGeneration::kUnknown);
  CHECK(generation_from_version("") == ApiGeneration::kUnknown);
  CHECK(generation_from_version("latest") == ApiGeneration::kUnknown);
  CHECK(generation_from_version("99999999999999999999.0") == ApiGeneration::kCurrent);
}

TEST_CASE("parse_health") {
  auto current = parse_health(R"({"status":"OK","version":"4.16.0"})");
  REQUIRE(current.ok());
  CHECK(current->version == "4.16.0");
  CHECK(current->generation == ApiGeneration::kCurrent);

  auto legacy = parse_health(R"({"status":"OK","version":"3.40.1"})");
  REQUIRE(legacy.ok());
  CHECK(legacy->generation == ApiGeneration::kLegacy);

  auto no_version = parse_health(R"({"status":"OK"})");
  REQUIRE(no_version.ok());
  CHECK(no_version->version.empty());
  CHECK(no_version->generation == ApiGeneration::kUnknown);

  auto number_version = parse_health(R"({"status":"OK","version":4})");
  REQUIRE(number_version.ok());
  CHECK(number_version->generation == ApiGeneration::kUnknown);

  check_malformed(parse_health("<html>Bad Gateway</html>").status());
  check_malformed(parse_health("").status());
  check_malformed(parse_health("[]").status());
  check_malformed(parse_health(R"({"version":"4.)").status());
}

TEST_CASE("parse_projects returns the key's project") {
  auto project = parse_projects(
      R"({"data":[{"id":"p-1","name":"Chatbot","organization":{"id":"o","name":"Org"},)"
      R"("metadata":{},"retentionDays":null}]})");
  REQUIRE(project.ok());
  CHECK(project->id == "p-1");
  CHECK(project->name == "Chatbot");

  auto none = parse_projects(R"({"data":[]})");
  CHECK(none.status().kind() == ErrorKind::kAuth);
  check_malformed(parse_projects(R"({"data":[{"name":"no id"}]})").status());
  check_malformed(parse_projects(R"({"projects":[]})").status());
}

TEST_CASE("v3 scores: every field of a realistic page") {
  auto page = parse_scores_v3(kScoresV3);
  REQUIRE(page.ok());
  CHECK(page->errors.empty());
  CHECK(page->body_bytes == std::string(kScoresV3).size());
  CHECK(page->next_cursor == "eyJ0IjoxfQ+/=");
  REQUIRE(page->scores.size() == 4);

  const Score& numeric = page->scores[0];
  CHECK(numeric.id == "s-1");
  CHECK(numeric.name == "helpfulness");
  CHECK(numeric.source == "ANNOTATION");
  CHECK(numeric.data_type == "NUMERIC");
  CHECK(numeric.value_json == "0.75");
  CHECK(numeric.value_num == 0.75);
  CHECK_FALSE(numeric.string_value.has_value());
  CHECK(numeric.timestamp == "2025-03-01T10:00:00.000Z");
  CHECK(numeric.created_at == "2025-03-01T10:00:01.000Z");
  CHECK(numeric.updated_at == "2025-03-01T09:00:02.000Z");  // +01:00 normalized to UTC
  CHECK(numeric.comment == "clear answer");
  CHECK(numeric.config_id == "cfg-1");
  CHECK(numeric.queue_id == "q-1");
  CHECK(numeric.author_user_id == "u-1");
  CHECK(numeric.environment == "production");
  CHECK(numeric.metadata_json == R"({"reviewer":"ann"})");
  CHECK(numeric.subject_kind == "trace");
  CHECK(numeric.trace_id == "t-1");
  CHECK_FALSE(numeric.observation_id.has_value());
  auto raw = Json::parse(numeric.raw_json);
  CHECK(raw["id"] == "s-1");
  CHECK(raw["subject"]["id"] == "t-1");
  CHECK(raw["projectId"] == "p-1");

  const Score& boolean = page->scores[1];
  CHECK(boolean.value_json == "true");
  CHECK(boolean.value_num == 1.0);
  CHECK(boolean.string_value == "True");
  CHECK(boolean.subject_kind == "observation");
  CHECK(boolean.observation_id == "o-7");
  CHECK(boolean.trace_id == "t-2");
  CHECK_FALSE(boolean.comment.has_value());
  CHECK_FALSE(boolean.metadata_json.has_value());

  const Score& categorical = page->scores[2];
  CHECK(categorical.value_json == R"("friendly")");
  CHECK(categorical.string_value == "friendly");
  CHECK_FALSE(categorical.value_num.has_value());
  CHECK(categorical.subject_kind == "session");
  CHECK(categorical.session_id == "sess-1");
  CHECK_FALSE(categorical.trace_id.has_value());

  const Score& correction = page->scores[3];
  CHECK(correction.string_value == "The corrected answer.");
  CHECK(correction.subject_kind == "experiment");
  CHECK_FALSE(correction.trace_id.has_value());
}

TEST_CASE("v3 scores: cursor rules") {
  SUBCASE("absent or null cursor ends the listing") {
    auto last = parse_scores_v3(v3_page(kGoodScore));
    REQUIRE(last.ok());
    CHECK_FALSE(last->next_cursor.has_value());
    auto absent = parse_scores_v3(R"({"data":[)" + kGoodScore + R"(],"meta":{"limit":50}})");
    REQUIRE(absent.ok());
    CHECK_FALSE(absent->next_cursor.has_value());
  }
  SUBCASE("an empty page with a cursor keeps the cursor (the engine stops endless ones)") {
    auto empty = parse_scores_v3(v3_page("", R"("more")"));
    REQUIRE(empty.ok());
    CHECK(empty->scores.empty());
    CHECK(empty->next_cursor == std::optional<std::string>("more"));
  }
  SUBCASE("a cursor equal to the one just used is an error") {
    auto same = parse_scores_v3(v3_page(kGoodScore, R"("c1")"), std::string("c1"));
    CHECK(same.status().kind() == ErrorKind::kCorrupt);
    CHECK(same.status().message() == "cursor did not advance");
    auto moved = parse_scores_v3(v3_page(kGoodScore, R"("c2")"), std::string("c1"));
    REQUIRE(moved.ok());
    CHECK(moved->next_cursor == "c2");
  }
  SUBCASE("a meta that is missing or a cursor of the wrong type is malformed") {
    check_malformed(parse_scores_v3(R"({"data":[]})").status());
    check_malformed(parse_scores_v3(v3_page(kGoodScore, "42")).status());
  }
}

TEST_CASE("v3 scores: bad items become record errors and the rest is kept") {
  const std::string items =
      kGoodScore + "," +
      R"({"name":"no id","timestamp":"2025-01-01T00:00:00Z"},)"
      R"({"id":"no-name","timestamp":"2025-01-01T00:00:00Z"},)"
      R"({"id":"bad-ts","name":"n","timestamp":"yesterday"},)"
      R"({"id":"no-ts","name":"n"},)"
      R"({"id":42,"name":"n","timestamp":"2025-01-01T00:00:00Z"},)"
      R"({"id":"num-is-string","name":"n","dataType":"NUMERIC","value":"0.5",)"
      R"("timestamp":"2025-01-01T00:00:00Z"},)"
      R"({"id":"bool-is-string","name":"n","dataType":"BOOLEAN","value":"yes",)"
      R"("timestamp":"2025-01-01T00:00:00Z"},)"
      R"({"id":"subject-string","name":"n","timestamp":"2025-01-01T00:00:00Z","subject":"t"},)"
      R"({"id":"subject-no-id","name":"n","timestamp":"2025-01-01T00:00:00Z",)"
      R"("subject":{"kind":"trace"}},)"
      R"({"id":"comment-number","name":"n","timestamp":"2025-01-01T00:00:00Z","comment":5},)"
      R"("just a string",)"
      R"([1,2],)" +
      kGoodScore;
  auto page = parse_scores_v3(v3_page(items));
  REQUIRE(page.ok());
  CHECK(page->scores.size() == 2);
  REQUIRE(page->errors.size() == 12);
  const auto& e = page->errors;
  CHECK(e[0].record_id == "#1");
  CHECK(e[0].reason == "missing id");
  CHECK(e[1].record_id == "no-name");
  CHECK(e[1].reason == "missing name");
  CHECK(e[2].record_id == "bad-ts");
  CHECK(e[2].reason == "bad timestamp in timestamp: 'yesterday'");
  CHECK(e[3].reason == "missing timestamp");
  CHECK(e[4].record_id == "#5");
  CHECK(e[4].reason == "id is not a string (got number)");
  CHECK(e[5].reason == "value of a NUMERIC score is a string");
  CHECK(e[6].reason == "value of a BOOLEAN score is a string");
  CHECK(e[7].reason == "subject is not an object (got string)");
  CHECK(e[8].reason == "subject: missing id");
  CHECK(e[9].reason == "comment is not a string (got number)");
  CHECK(e[10].record_id == "#11");
  CHECK(e[10].reason == "item is not an object (got string)");
  CHECK(e[11].reason == "item is not an object (got array)");
}

TEST_CASE("v3 scores: a score without subject falls back to top-level ids") {
  auto page = parse_scores_v3(v3_page(
      R"({"id":"a","name":"n","timestamp":"2025-01-01T00:00:00Z","value":2,"traceId":"t-9"})"));
  REQUIRE(page.ok());
  REQUIRE(page->scores.size() == 1);
  CHECK(page->scores[0].subject_kind == "trace");
  CHECK(page->scores[0].trace_id == "t-9");
  CHECK(page->scores[0].value_num == 2.0);
}

TEST_CASE("legacy scores: values, subjects and page paging") {
  auto page = parse_scores_legacy(kScoresLegacy, 1);
  REQUIRE(page.ok());
  CHECK(page->errors.empty());
  CHECK(page->next_cursor == "2");
  REQUIRE(page->scores.size() == 5);

  const Score& numeric = page->scores[0];
  CHECK(numeric.value_json == "3");
  CHECK(numeric.value_num == 3.0);
  CHECK(numeric.subject_kind == "trace");
  CHECK(numeric.trace_id == "t-1");
  CHECK(numeric.author_user_id == "u-1");
  CHECK(Json::parse(numeric.raw_json)["trace"]["userId"] == "user-1");

  const Score& boolean = page->scores[1];  // 0 + "False" -> false
  CHECK(boolean.value_json == "false");
  CHECK(boolean.value_num == 0.0);
  CHECK(boolean.string_value == "False");
  CHECK(boolean.subject_kind == "observation");
  CHECK(boolean.observation_id == "o-2");
  CHECK(boolean.trace_id == "t-2");

  const Score& categorical = page->scores[2];  // the label, not the category number
  CHECK(categorical.value_json == R"("friendly")");
  CHECK(categorical.string_value == "friendly");
  CHECK_FALSE(categorical.value_num.has_value());

  const Score& text = page->scores[3];  // TEXT has no value field at all
  CHECK(text.value_json == R"("Needs a source.")");
  CHECK(text.string_value == "Needs a source.");

  const Score& session = page->scores[4];
  CHECK(session.subject_kind == "session");
  CHECK(session.session_id == "sess-9");
  CHECK_FALSE(session.trace_id.has_value());

  auto last = parse_scores_legacy(kScoresLegacy, 3);
  REQUIRE(last.ok());
  CHECK_FALSE(last->next_cursor.has_value());
  auto empty = parse_scores_legacy(legacy_page("", 5), 1);
  REQUIRE(empty.ok());
  CHECK_FALSE(empty->next_cursor.has_value());
  auto zero_page = parse_scores_legacy(legacy_page(kGoodScore, 2), 0);  // taken as page 1
  REQUIRE(zero_page.ok());
  CHECK(zero_page->next_cursor == "2");
  check_malformed(parse_scores_legacy(R"({"data":[],"meta":{"page":1}})", 1).status());
  check_malformed(parse_scores_legacy(R"({"data":[],"meta":{"totalPages":"2"}})", 1).status());
  check_malformed(parse_scores_legacy(R"({"data":[],"meta":{"totalPages":1.5}})", 1).status());
}

TEST_CASE("legacy scores: broken values are record errors") {
  auto page = parse_scores_legacy(
      legacy_page(R"({"id":"b","name":"n","timestamp":"2024-01-01","dataType":"BOOLEAN"},)"
                  R"({"id":"c","name":"n","timestamp":"2024-01-01","dataType":"CATEGORICAL",)"
                  R"("value":1},)"
                  R"({"id":"v","name":"n","timestamp":"2024-01-01","value":"1"},)"
                  R"({"id":"t","name":"n","timestamp":"2024-01-01","dataType":"BOOLEAN",)"
                  R"("stringValue":"True"})"),
      1);
  REQUIRE(page.ok());
  REQUIRE(page->errors.size() == 3);
  CHECK(page->errors[0].reason == "BOOLEAN score without a value");
  CHECK(page->errors[1].reason == "CATEGORICAL score without stringValue");
  CHECK(page->errors[2].reason == "value is not a number (got string)");
  REQUIRE(page->scores.size() == 1);
  CHECK(page->scores[0].value_json == "true");  // from stringValue alone
  CHECK(page->scores[0].timestamp == "2024-01-01T00:00:00.000Z");
}

TEST_CASE("v2 observations: raw-string input/output, model, usage and attributes") {
  auto page = parse_observations_v2(kObservationsV2);
  REQUIRE(page.ok());
  CHECK(page->errors.empty());
  CHECK(page->next_cursor == "b2JzOjI+/w==");
  REQUIRE(page->observations.size() == 2);

  const Observation& gen = page->observations[0];
  CHECK(gen.id == "o-1");
  CHECK(gen.trace_id == "t-1");
  CHECK(gen.type == "GENERATION");
  CHECK(gen.name == "chat");
  CHECK(gen.parent_observation_id == "o-0");
  CHECK(gen.start_time == "2025-03-01T10:00:00.000Z");
  CHECK(gen.end_time == "2025-03-01T10:00:02.500Z");
  CHECK(gen.level == "DEFAULT");
  CHECK(gen.environment == "production");
  CHECK(gen.model == "gpt-4o");
  // JSON text arrives as a string and is kept as that JSON text, byte for byte.
  CHECK(gen.input_json == R"({"messages":[{"role":"user","content":"hi"}]})");
  // Plain text is not JSON: it becomes a JSON string.
  CHECK(gen.output_json == R"("Hello there!")");
  CHECK(gen.metadata_json == R"({"k":"v"})");
  auto usage = Json::parse(gen.usage_json.value());
  CHECK(usage["usageDetails"]["total"] == 15);
  CHECK(usage["costDetails"]["total"] == 0.001);
  CHECK_FALSE(usage.contains("usage"));
  auto attributes = Json::parse(gen.attributes_json);
  CHECK(attributes["projectId"] == "p-1");
  CHECK(attributes["internalModelId"] == "m-1");
  CHECK(attributes["modelParameters"]["temperature"] == 0.2);
  CHECK(attributes["totalCost"] == 0.001);
  CHECK(attributes["isRootObservation"] == false);
  for (const char* mapped : {"input", "output", "id", "traceId", "type", "startTime",
                             "providedModelName", "usageDetails", "metadata"}) {
    CAPTURE(mapped);
    CHECK_FALSE(attributes.contains(mapped));
  }

  const Observation& span = page->observations[1];
  CHECK(span.input_json == "[1, 2]");
  CHECK(span.output_json == "null");
  CHECK_FALSE(span.end_time.has_value());
  CHECK_FALSE(span.parent_observation_id.has_value());
  CHECK_FALSE(span.usage_json.has_value());
  CHECK_FALSE(span.model.has_value());
}

TEST_CASE("legacy observations: parsed input/output are serialized") {
  auto page = parse_observations_legacy(kObservationsLegacy, 2);
  REQUIRE(page.ok());
  CHECK_FALSE(page->next_cursor.has_value());  // page 2 of 2
  REQUIRE(page->observations.size() == 1);
  const Observation& obs = page->observations[0];
  CHECK(obs.input_json == R"({"messages": [{"role": "user", "content": "hi"}]})");  // as sent
  CHECK(obs.output_json == R"("plain text answer")");
  CHECK(obs.model == "gpt-4");
  auto usage = Json::parse(obs.usage_json.value());
  CHECK(usage["usage"]["unit"] == "TOKENS");
  CHECK(usage["usageDetails"]["input"] == 10);
  CHECK(usage["costDetails"].empty());
  auto attributes = Json::parse(obs.attributes_json);
  CHECK(attributes["calculatedTotalCost"] == 0.00025);
  CHECK(attributes.contains("completionStartTime"));
  CHECK_FALSE(attributes.contains("input"));
  CHECK_FALSE(attributes.contains("model"));

  auto first = parse_observations_legacy(kObservationsLegacy, 1);
  REQUIRE(first.ok());
  CHECK(first->next_cursor == "2");
}

TEST_CASE("observations: input/output of every shape") {
  auto legacy = parse_observations_legacy(
      legacy_page(
          R"({"id":"a","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
          R"("input":[1,{"x":null}],"output":42},)"
          R"({"id":"inf","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
          R"("input":{"x":1e400}},)"
          R"({"id":"out","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
          R"("output":[-1e999]},)"
          "{\"id\":\"utf\",\"traceId\":\"t\",\"type\":\"SPAN\",\"startTime\":\"2025-01-01\","
          "\"input\":{\"k\":\"\xC3(\"},\"output\":\"\\ud800\"}"),
      1);
  REQUIRE(legacy.ok());
  REQUIRE(legacy->observations.size() == 2);
  CHECK(legacy->observations[0].input_json == R"([1,{"x":null}])");
  CHECK(legacy->observations[0].output_json == "42");
  CHECK(legacy->observations[1].input_json == "{\"k\":\"\xEF\xBF\xBD(\"}");
  CHECK(legacy->observations[1].output_json == "\"\xEF\xBF\xBD\"");
  REQUIRE(legacy->errors.size() == 2);
  CHECK(legacy->errors[0].record_id == "inf");
  CHECK(legacy->errors[0].reason == "input: number out of range for a double");
  CHECK(legacy->errors[1].reason == "output: number out of range for a double");

  // A v2 server that sent values instead of strings is read the legacy way.
  auto v2 = parse_observations_v2(
      v2_obs_page(R"({"id":"a","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
                  R"("input":{"already":"parsed"},"output":"tab\tand \u0001 control"})"));
  REQUIRE(v2.ok());
  REQUIRE(v2->observations.size() == 1);
  CHECK(v2->observations[0].input_json == R"({"already":"parsed"})");
  CHECK(v2->observations[0].output_json == R"("tab\tand \u0001 control")");
}

TEST_CASE("observations: missing or bad required fields are record errors") {
  auto page = parse_observations_v2(v2_obs_page(
      kGoodObservation + "," +
      R"({"id":"no-trace","type":"SPAN","startTime":"2025-01-01T00:00:00Z"},)"
      R"({"id":"null-trace","traceId":null,"type":"SPAN","startTime":"2025-01-01T00:00:00Z"},)"
      R"({"id":"no-start","traceId":"t","type":"SPAN"},)"
      R"({"id":"no-type","traceId":"t","startTime":"2025-01-01T00:00:00Z"},)"
      R"({"id":"bad-end","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
      R"("endTime":"soon"},)"
      R"({"id":"name-array","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
      R"("name":["x"]})"));
  REQUIRE(page.ok());
  CHECK(page->observations.size() == 1);
  REQUIRE(page->errors.size() == 6);
  CHECK(page->errors[0].reason == "missing traceId");
  CHECK(page->errors[1].record_id == "null-trace");
  CHECK(page->errors[1].reason == "missing traceId");
  CHECK(page->errors[2].reason == "missing startTime");
  CHECK(page->errors[3].reason == "missing type");
  CHECK(page->errors[4].reason == "bad timestamp in endTime: 'soon'");
  CHECK(page->errors[5].reason == "name is not a string (got array)");
}

TEST_CASE("timestamps outside the years a clock can hold are bad timestamps") {
  auto page = parse_observations_v2(v2_obs_page(
      R"({"id":"far","traceId":"t","type":"SPAN","startTime":"9108-03-01T10:00:00Z"},)"
      R"({"id":"old","traceId":"t","type":"SPAN","startTime":"0001-01-01T00:00:00Z"},)" +
      kGoodObservation));
  REQUIRE(page.ok());
  CHECK(page->observations.size() == 1);
  REQUIRE(page->errors.size() == 2);
  CHECK(page->errors[0].reason == "bad timestamp in startTime: '9108-03-01T10:00:00Z'");
}

TEST_CASE("json_text_from_raw_string") {
  CHECK(json_text_from_raw_string(R"({"a":[1,2]})") == R"({"a":[1,2]})");
  CHECK(json_text_from_raw_string(R"("quoted")") == R"("quoted")");
  CHECK(json_text_from_raw_string("42") == "42");
  CHECK(json_text_from_raw_string("hello world") == R"("hello world")");
  CHECK(json_text_from_raw_string("") == R"("")");
  CHECK(json_text_from_raw_string("{not json") == R"("{not json")");
  CHECK(json_text_from_raw_string("line\n\"two\"") == R"("line\n\"two\"")");
  CHECK(json_text_from_raw_string("1e400") == R"("1e400")");  // not representable: kept as text
  CHECK(json_text_from_raw_string("bad \xff") == "\"bad \xEF\xBF\xBD\"");
  CHECK(json_text_from_raw_string(std::string("nul\0\x1f\b\\/", 8)) == R"("nul\u0000\u001f\b\\/")");
  CHECK(json_text_from_raw_string("caf\xC3\xA9") == "\"caf\xC3\xA9\"");
}

TEST_CASE("invalid UTF-8 and cut surrogate pairs are replaced; the record is kept") {
  const std::string bad_byte_item =
      "{\"id\":\"u1\",\"traceId\":\"t\",\"type\":\"SPAN\",\"startTime\":\"2025-01-01T00:00:00Z\","
      "\"name\":\"caf\xE9\",\"input\":\"in\xff put\"}";
  const std::string lone_surrogate_item =
      R"({"id":"u2","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
      R"("metadata":{"note":"truncated emoji \ud83d"}})";
  auto page = parse_observations_v2(
      v2_obs_page(bad_byte_item + "," + lone_surrogate_item + "," + kGoodObservation));
  REQUIRE(page.ok());
  CHECK(page->errors.empty());
  REQUIRE(page->observations.size() == 3);
  CHECK(page->observations[0].name == "caf\xEF\xBF\xBD");
  CHECK(page->observations[0].input_json == "\"in\xEF\xBF\xBD put\"");
  CHECK(page->observations[1].metadata_json == "{\"note\":\"truncated emoji \xEF\xBF\xBD\"}");

  auto scores = parse_scores_v3(v3_page(
      "{\"id\":\"s\",\"name\":\"n\xC3\",\"timestamp\":\"2025-01-01T00:00:00Z\",\"value\":1}"));
  REQUIRE(scores.ok());
  REQUIRE(scores->scores.size() == 1);
  CHECK(scores->scores[0].name == "n\xEF\xBF\xBD");
  CHECK(Json::accept(scores->scores[0].raw_json));
}

TEST_CASE("deep nesting: an item deeper than the limit is a record error, no crash") {
  const std::size_t depth = 10'000;
  const std::string deep = std::string(depth, '[') + std::string(depth, ']');
  const std::string deep_item =
      R"({"id":"deep","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
      R"("metadata":)" +
      deep + "}";
  auto page = parse_observations_v2(v2_obs_page(deep_item + "," + kGoodObservation));
  REQUIRE(page.ok());
  CHECK(page->observations.size() == 1);
  REQUIRE(page->errors.size() == 1);
  CHECK(page->errors[0].record_id == "deep");
  CHECK(page->errors[0].reason == "nested deeper than 512 levels");

  SUBCASE("exactly at the limit is accepted") {
    const std::size_t arrays = kMaxItemDepth - 1;  // plus the item object itself = the limit
    const std::string item =
        R"({"id":"edge","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
        R"("metadata":)" +
        std::string(arrays, '[') + std::string(arrays, ']') + "}";
    auto edge = parse_observations_v2(v2_obs_page(item));
    REQUIRE(edge.ok());
    CHECK(edge->errors.empty());
    CHECK(edge->observations.size() == 1);
    const std::string one_more =
        R"({"id":"edge","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z",)"
        R"("metadata":)" +
        std::string(arrays + 1, '[') + std::string(arrays + 1, ']') + "}";
    auto over = parse_observations_v2(v2_obs_page(one_more));
    REQUIRE(over.ok());
    CHECK(over->errors.size() == 1);
  }
  SUBCASE("a deep JSON text inside a v2 input string is kept as text") {
    const std::string deep_text = std::string(100'000, '[') + std::string(100'000, ']');
    auto raw = parse_observations_v2(v2_obs_page(
        R"({"id":"s","traceId":"t","type":"SPAN","startTime":"2025-01-01T00:00:00Z","input":")" +
        deep_text + R"("})"));
    REQUIRE(raw.ok());
    REQUIRE(raw->observations.size() == 1);
    CHECK(raw->observations[0].input_json == deep_text);
  }
  SUBCASE("a deep body outside the items is malformed") {
    const std::string deep_meta =
        R"({"data":[],"meta":)" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
    check_malformed(parse_observations_v2(deep_meta).status());
    check_malformed(parse_health(std::string(100'000, '[') + std::string(100'000, ']')).status());
    check_malformed(
        parse_health(R"({"x":)" + std::string(100'000, '[') + std::string(100'000, ']') + "}")
            .status());
  }
}

TEST_CASE("huge numbers: beyond a double is a record error, big but finite is kept") {
  auto page = parse_scores_v3(
      v3_page(R"({"id":"inf","name":"n","timestamp":"2025-01-01T00:00:00Z","value":1e400},)"
              R"({"id":"big","name":"n","timestamp":"2025-01-01T00:00:00Z",)"
              R"("value":123456789012345678901234567890},)"
              R"({"id":"neg","name":"n","timestamp":"2025-01-01T00:00:00Z","value":-1e400})"));
  REQUIRE(page.ok());
  REQUIRE(page->errors.size() == 2);
  CHECK(page->errors[0].record_id == "inf");
  CHECK(page->errors[0].reason == "number out of range for a double");
  CHECK(page->errors[1].record_id == "neg");
  REQUIRE(page->scores.size() == 1);
  CHECK(page->scores[0].id == "big");
  CHECK(page->scores[0].value_num.value() == doctest::Approx(1.2345678901234568e29));
}

TEST_CASE("bodies that are not a page are malformed (retryable)") {
  const std::string bodies[] = {
      "",
      "null",
      "[]",
      "{}",
      R"({"data":{}})",
      R"({"data":"x","meta":{}})",
      R"({"data":[1,2)",
      R"({"data":[{"id":"a"}],"meta":{"cursor":"x"})",
      "<html><body>502 Bad Gateway</body></html>",
      R"({"data":[],"meta":{"cursor":"\ud800"})"
      "\xff",
  };
  for (const auto& body : bodies) {
    CAPTURE(body);
    check_malformed(parse_scores_v3(body).status());
    check_malformed(parse_scores_legacy(body, 1).status());
    check_malformed(parse_observations_v2(body).status());
    check_malformed(parse_observations_legacy(body, 1).status());
  }
}

TEST_CASE("a page with more items than any real page is malformed") {
  std::string body = R"({"meta":{},"data":[0)";
  for (std::size_t i = 0; i < kMaxItemsPerPage; ++i) body += ",0";
  body += "]}";
  check_malformed(parse_observations_v2(body).status());
}

TEST_CASE("escaped member names are matched after decoding") {
  auto page = parse_observations_v2(R"({"d\u0061ta":[)" + kGoodObservation + R"(],"meta":{}})");
  REQUIRE(page.ok());
  CHECK(page->observations.size() == 1);
}

TEST_CASE("a large input string is moved, not mangled") {
  std::string big(5 << 20, 'x');
  auto page = parse_observations_v2(v2_obs_page(
      R"({"id":"big","traceId":"t","type":"GENERATION","startTime":"2025-01-01T00:00:00Z",)"
      R"("input":")" +
      big + R"(","output":"{\"ok\":true}"})"));
  REQUIRE(page.ok());
  REQUIRE(page->observations.size() == 1);
  CHECK(page->observations[0].input_json.size() == big.size() + 2);
  CHECK(page->observations[0].output_json == R"({"ok":true})");
}

}  // namespace
}  // namespace lfh

TEST_CASE("v3 scores with nested field groups read like flat ones") {
  const char* body = R"({"data":[{"id":"s1","projectId":"p","name":"quality","value":"Good",
    "dataType":"CATEGORICAL","source":"ANNOTATION","timestamp":"2026-01-01T00:00:00.000Z",
    "environment":"default","createdAt":"2026-01-01T00:00:00.000Z",
    "updatedAt":"2026-01-01T00:00:00.000Z",
    "details":{"comment":"nice","configId":null,"metadata":{}},
    "annotation":{"authorUserId":"u1","queueId":null},
    "subject":{"kind":"trace","id":"t1"}}],"meta":{"limit":100}})";
  auto page = lfh::parse_scores_v3(body);
  REQUIRE(page.ok());
  REQUIRE(page->scores.size() == 1);
  CHECK(page->scores[0].comment == std::optional<std::string>("nice"));
  CHECK(page->scores[0].author_user_id == std::optional<std::string>("u1"));
  CHECK(page->scores[0].trace_id == std::optional<std::string>("t1"));
}

namespace lfh {
namespace {

TEST_CASE("observations: updatedAt is read as the version of the item") {
  const std::string v2 =
      R"({"data":[{"id":"o1","traceId":"t","type":"GENERATION","startTime":"2026-01-01T00:00:00Z",)"
      R"("updatedAt":"2026-01-02T03:04:05.678+01:00","input":"hi","output":null},)"
      R"({"id":"o2","traceId":"t","type":"SPAN","startTime":"2026-01-01T00:00:00Z"},)"
      R"({"id":"o3","traceId":"t","type":"SPAN","startTime":"2026-01-01T00:00:00Z","updatedAt":"soon"}],)"
      R"("meta":{}})";
  auto page = parse_observations_v2(v2);
  REQUIRE(page.ok());
  REQUIRE(page->observations.size() == 2);
  CHECK(page->observations[0].updated_at == std::optional<std::string>("2026-01-02T02:04:05.678Z"));
  CHECK(page->observations[0].attributes_json.find("updatedAt") == std::string::npos);
  CHECK_FALSE(page->observations[1].updated_at.has_value());
  REQUIRE(page->errors.size() == 1);
  CHECK(page->errors[0].record_id == "o3");
}

}  // namespace
}  // namespace lfh
