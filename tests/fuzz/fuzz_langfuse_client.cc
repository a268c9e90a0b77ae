// libFuzzer target: LangfuseClient over a scripted HttpClient. The input decides the HTTP status,
// the response headers and the body every call receives; health, projects, scores and
// observations are then called in both API generations and in detect mode. Besides "no crash, no
// sanitizer report": an error message never holds the secret key (even when the server echoes
// it), no request URL carries it, and every record's JSON fields hold valid JSON.
// Input: byte 0 picks the status, byte 1 the generation mode and a transport error; then header
// lines "name: value" up to an empty line; the rest is the body. Seeds: corpus/langfuse_client/.
#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "http/http_client.h"
#include "langfuse/langfuse_client.h"

namespace {

constexpr std::string_view kSecret = "sk-lf-fuzz-0123456789abcdef";
constexpr std::string_view kPublic = "pk-lf-fuzz-public";

void require(bool condition) {
  if (!condition) __builtin_trap();
}

class ScriptedHttp final : public lfh::HttpClient {
 public:
  lfh::Result<lfh::HttpResponse> get(const lfh::HttpRequest& request, std::stop_token) override {
    require(request.url.find(kSecret) == std::string::npos);
    if (!transport_error.ok()) return transport_error;
    return response;
  }
  lfh::HttpResponse response;
  lfh::Status transport_error;
};

void check_message(const lfh::Status& status) {
  if (!status.ok()) require(status.message().find(kSecret) == std::string::npos);
}

bool valid(const std::string& text) {
  return nlohmann::json::accept(text);
}

void exercise(lfh::LangfuseClient& client) {
  std::stop_source stop;
  auto health = client.health(stop.get_token());
  check_message(health.status());
  auto project = client.project(stop.get_token());
  check_message(project.status());

  lfh::ScoreQuery scores;
  scores.from_timestamp = "2026-01-01T00:00:00.000Z";
  scores.sources = {"ANNOTATION", "API"};
  scores.names = {"quality"};
  scores.cursor = "2";
  auto page = client.scores(scores, stop.get_token());
  check_message(page.status());
  if (page.ok()) {
    for (const auto& s : page->scores) require(valid(s.value_json) && valid(s.raw_json));
  }

  lfh::ObservationQuery observations;
  observations.trace_id = "trace-1";
  observations.cursor = "c3VyZS8rPQ==";
  auto obs = client.observations(observations, stop.get_token());
  check_message(obs.status());
  if (obs.ok()) {
    for (const auto& o : obs->observations) {
      require(valid(o.input_json) && valid(o.output_json) && valid(o.attributes_json));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lfh::log::set_level(lfh::log::Level::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static constexpr std::array<long, 16> kStatuses = {200, 200, 200, 200, 400, 401, 403, 404,
                                                     408, 422, 429, 500, 502, 503, 524, 302};
  if (size < 2) return 0;
  ScriptedHttp http;
  http.response.status = kStatuses[data[0] % kStatuses.size()];
  const std::uint8_t mode = data[1];
  if ((mode & 0x30) == 0x30) {
    // What a transport failure looks like after CurlHttpClient (the text may echo the server).
    http.transport_error =
        lfh::Status::Error((mode & 0x40) ? lfh::ErrorKind::kTooLarge : lfh::ErrorKind::kRetryable,
                           std::string("transport: ") + std::string(kSecret));
  }
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  // Headers up to the first empty line.
  for (;;) {
    const auto end = rest.find('\n');
    if (end == std::string_view::npos || end == 0) {
      if (end == 0) rest.remove_prefix(1);
      break;
    }
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    http.response.headers[name] = std::string(value);
  }
  http.response.body.assign(rest);

  lfh::FakeClock clock;
  lfh::LangfuseClientOptions options;
  options.base_url = "https://cloud.langfuse.com/";
  options.public_key = kPublic;
  options.secret_key = kSecret;
  options.max_response_bytes = 1 << 20;
  options.generation = (mode & 0x3) == 0   ? lfh::ApiGeneration::kUnknown
                       : (mode & 0x3) == 1 ? lfh::ApiGeneration::kCurrent
                                           : lfh::ApiGeneration::kLegacy;
  lfh::LangfuseClient client(http, clock, options);
  exercise(client);
  return 0;
}
