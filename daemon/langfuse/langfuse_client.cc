#include "langfuse/langfuse_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/log.h"
#include "http/retry_after.h"
#include "langfuse/parse.h"

namespace lfh {
namespace {

constexpr std::string_view kHealthPath = "/api/public/health";
constexpr std::string_view kProjectsPath = "/api/public/projects";
constexpr std::string_view kScoresV3Path = "/api/public/v3/scores";
constexpr std::string_view kScoresLegacyPath = "/api/public/scores";
constexpr std::string_view kObservationsV2Path = "/api/public/v2/observations";
constexpr std::string_view kObservationsLegacyPath = "/api/public/observations";

constexpr int kMaxScorePage = 100;
constexpr int kMaxObservationPage = 1000;
constexpr int kMaxLegacyObservationPage = 100;
constexpr std::size_t kMaxIdsPerRequest = 100;
// Error bodies are small JSON documents; a bigger body is not worth parsing for a message.
constexpr std::size_t kMaxErrorBodyParsed = 64 * 1024;
constexpr std::size_t kMaxServerMessage = 200;

std::string what_of(std::string_view path) {
  return fmt::format("GET {}", path);
}

// A page-number cursor of the legacy API; anything else (a cursor of the other generation)
// starts the listing again from page 1.
int page_from_cursor(const std::optional<std::string>& cursor) {
  if (!cursor) return 1;
  int page = 0;
  const char* end = cursor->data() + cursor->size();
  auto [ptr, ec] = std::from_chars(cursor->data(), end, page);
  if (ec != std::errc() || ptr != end || page < 1) return 1;
  return page;
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Keeps a legacy score only if it matches every filter the server could not apply.
bool matches_filters(const Score& score, const ScoreQuery& query) {
  if (!query.sources.empty()) {
    std::string source = upper(score.source);
    bool any = std::any_of(query.sources.begin(), query.sources.end(),
                           [&](const std::string& s) { return upper(s) == source; });
    if (!any) return false;
  }
  if (!query.names.empty() &&
      std::find(query.names.begin(), query.names.end(), score.name) == query.names.end()) {
    return false;
  }
  if (!query.environments.empty()) {
    const std::string environment = score.environment.value_or("default");
    if (std::find(query.environments.begin(), query.environments.end(), environment) ==
        query.environments.end()) {
      return false;
    }
  }
  return true;
}

// The "message" (or "error") of a JSON error body, cleaned for a log line: control characters
// become spaces and the text is cut at a UTF-8 character boundary.
std::string server_message(const std::string& body) {
  if (body.empty() || body.size() > kMaxErrorBodyParsed) return {};
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return {};
  std::string message;
  for (const char* key : {"message", "error"}) {
    auto it = doc.find(key);
    if (it != doc.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      message = it->get<std::string>();
      break;
    }
  }
  for (char& c : message) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  }
  return message;
}

std::string truncate_utf8(std::string text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  return text + "...";
}

ErrorKind kind_of_http_status(long status) {
  switch (status) {
    case 400:
      return ErrorKind::kPermanent;
    case 401:
    case 403:
      return ErrorKind::kAuth;
    case 404:
      return ErrorKind::kNotFound;
    case 408:
      return ErrorKind::kRetryable;
    case 413:
    case 422:
      return ErrorKind::kTooLarge;
    case 429:
      return ErrorKind::kRateLimited;
    default:
      break;
  }
  if (status >= 500 && status <= 599) return ErrorKind::kRetryable;  // 524 included
  return ErrorKind::kPermanent;  // other 4xx; 1xx/3xx are not answers we can use
}

ApiGeneration other_generation(ApiGeneration g) {
  return g == ApiGeneration::kLegacy ? ApiGeneration::kCurrent : ApiGeneration::kLegacy;
}

}  // namespace

LangfuseClient::LangfuseClient(HttpClient& http, const Clock& clock, LangfuseClientOptions options)
    : http_(http),
      clock_(clock),
      options_(std::move(options)),
      detect_generation_(options_.generation == ApiGeneration::kUnknown),
      generation_(options_.generation) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/') {
    options_.base_url.pop_back();
  }
}

std::string LangfuseClient::mask_keys(std::string text) const {
  for (const std::string* key : {&options_.secret_key, &options_.public_key}) {
    if (key->empty()) continue;
    for (auto pos = text.find(*key); pos != std::string::npos; pos = text.find(*key, pos + 3)) {
      text.replace(pos, key->size(), "***");
    }
  }
  return text;
}

Status LangfuseClient::in_context(const Status& status, std::string_view what) const {
  Status out =
      Status::Error(status.kind(), mask_keys(fmt::format("{}: {}", what, status.message())));
  out.with_detail(status.detail());
  if (status.retry_after_ms()) out.with_retry_after_ms(*status.retry_after_ms());
  return out;
}

Status LangfuseClient::http_error(const HttpResponse& response, std::string_view what) const {
  std::string message = fmt::format("{}: HTTP {}", what, response.status);
  // Masked before it is cut, so no part of a key can survive the cut.
  std::string from_server =
      truncate_utf8(mask_keys(server_message(response.body)), kMaxServerMessage);
  if (!from_server.empty()) message += ": " + from_server;
  ErrorKind kind = kind_of_http_status(response.status);
  Status status = Status::Error(kind, std::move(message));
  status.with_detail(response.status);
  if (kind == ErrorKind::kRateLimited || kind == ErrorKind::kRetryable) {
    if (const std::string* header = response.header("retry-after")) {
      if (auto wait = parse_retry_after(*header, clock_.now())) {
        status.with_retry_after_ms(wait->count());
      }
    }
  }
  return status;
}

Result<HttpResponse> LangfuseClient::fetch(std::string_view path, const QueryString& query,
                                           const char* endpoint, bool authenticated,
                                           std::stop_token stop) {
  HttpRequest request;
  request.url = options_.base_url + std::string(path);
  if (!query.empty()) request.url += "?" + query.str();
  request.headers.emplace_back("Accept", "application/json");
  if (authenticated) {
    request.basic_user = options_.public_key;
    request.basic_password = options_.secret_key;
  }
  request.max_body_bytes = options_.max_response_bytes;
  request.endpoint = endpoint;
  auto response = http_.get(request, std::move(stop));
  if (!response.ok()) return in_context(response.status(), what_of(path));
  if (response->status < 200 || response->status > 299) {
    return http_error(*response, what_of(path));
  }
  return response;
}

Result<ServerInfo> LangfuseClient::health(std::stop_token stop) {
  auto response = fetch(kHealthPath, QueryString(), "health", false, std::move(stop));
  if (!response.ok()) return response.status();
  auto info = parse_health(response->body);
  if (!info.ok()) return in_context(info.status(), what_of(kHealthPath));
  if (detect_generation_ && info->generation != ApiGeneration::kUnknown) {
    ApiGeneration expected = ApiGeneration::kUnknown;
    generation_.compare_exchange_strong(expected, info->generation);
  }
  return info;
}

Result<ProjectInfo> LangfuseClient::project(std::stop_token stop) {
  auto response = fetch(kProjectsPath, QueryString(), "projects", true, std::move(stop));
  if (!response.ok()) return response.status();
  auto project = parse_projects(response->body);
  if (!project.ok()) return in_context(project.status(), what_of(kProjectsPath));
  return project;
}

template <typename Page, typename Call>
Result<Page> LangfuseClient::with_generation_fallback(Call call) {
  const ApiGeneration known = generation_.load();
  const ApiGeneration first = known == ApiGeneration::kUnknown ? ApiGeneration::kCurrent : known;
  Result<Page> result = call(first, /*drop_cursor=*/false);
  const bool not_found = !result.ok() && result.status().kind() == ErrorKind::kNotFound;
  if (!not_found || !detect_generation_) {
    if (result.ok() && known == ApiGeneration::kUnknown && detect_generation_) {
      ApiGeneration expected = ApiGeneration::kUnknown;
      generation_.compare_exchange_strong(expected, first);
    }
    return result;
  }
  const ApiGeneration second = other_generation(first);
  log::info("the {} API answered 404 ({}); trying the {} API", api_generation_name(first),
            result.status().message(), api_generation_name(second));
  Result<Page> retry = call(second, /*drop_cursor=*/true);
  if (retry.ok()) {
    generation_.store(second);
    log::info("using the {} Langfuse API from now on", api_generation_name(second));
  }
  return retry;
}

Result<ScorePage> LangfuseClient::scores(const ScoreQuery& query, std::stop_token stop) {
  if (query.ids.size() > kMaxIdsPerRequest) {
    return Status::Error(ErrorKind::kPermanent,
                         fmt::format("scores: {} ids asked for in one request, at most {}",
                                     query.ids.size(), kMaxIdsPerRequest));
  }
  return with_generation_fallback<ScorePage>(
      [&](ApiGeneration g, bool drop_cursor) { return scores_with(g, query, drop_cursor, stop); });
}

Result<ScorePage> LangfuseClient::scores_with(ApiGeneration g, const ScoreQuery& query,
                                              bool drop_cursor, std::stop_token stop) {
  const std::optional<std::string> cursor = drop_cursor ? std::nullopt : query.cursor;
  const int limit = std::clamp(query.limit, 1, kMaxScorePage);
  QueryString q;
  if (g != ApiGeneration::kLegacy) {
    q.add("limit", limit).add_list("fields", {"details", "subject", "annotation"});
    if (cursor) q.add("cursor", *cursor);
    if (query.from_timestamp) q.add("fromTimestamp", *query.from_timestamp);
    if (query.to_timestamp) q.add("toTimestamp", *query.to_timestamp);
    q.add_list("source", query.sources)
        .add_list("name", query.names)
        .add_list("environment", query.environments)
        .add_list("id", query.ids);
    auto response = fetch(kScoresV3Path, q, "scores", true, std::move(stop));
    if (!response.ok()) return response.status();
    auto page = parse_scores_v3(response->body, cursor);
    if (!page.ok()) return in_context(page.status(), what_of(kScoresV3Path));
    return page;
  }

  const int page_number = page_from_cursor(cursor);
  q.add("page", page_number).add("limit", limit).add("fields", "score");
  if (query.from_timestamp) q.add("fromTimestamp", *query.from_timestamp);
  if (query.to_timestamp) q.add("toTimestamp", *query.to_timestamp);
  if (query.sources.size() == 1) q.add("source", upper(query.sources.front()));
  if (query.names.size() == 1) q.add("name", query.names.front());
  for (const auto& environment : query.environments) q.add("environment", environment);
  q.add_list("scoreIds", query.ids);
  auto response = fetch(kScoresLegacyPath, q, "scores", true, std::move(stop));
  if (!response.ok()) return response.status();
  auto page = parse_scores_legacy(response->body, page_number);
  if (!page.ok()) return in_context(page.status(), what_of(kScoresLegacyPath));
  auto& scores = page->scores;
  scores.erase(std::remove_if(scores.begin(), scores.end(),
                              [&](const Score& s) { return !matches_filters(s, query); }),
               scores.end());
  return page;
}

Result<ObservationPage> LangfuseClient::observations(const ObservationQuery& query,
                                                     std::stop_token stop) {
  if (query.trace_id.empty()) {
    return Status::Error(ErrorKind::kPermanent, "observations: empty trace id");
  }
  return with_generation_fallback<ObservationPage>([&](ApiGeneration g, bool drop_cursor) {
    return observations_with(g, query, drop_cursor, stop);
  });
}

Result<ObservationPage> LangfuseClient::observations_with(ApiGeneration g,
                                                          const ObservationQuery& query,
                                                          bool drop_cursor, std::stop_token stop) {
  const std::optional<std::string> cursor = drop_cursor ? std::nullopt : query.cursor;
  QueryString q;
  q.add("traceId", query.trace_id);
  if (g != ApiGeneration::kLegacy) {
    q.add("limit", std::clamp(query.limit, 1, kMaxObservationPage))
        .add_list("fields", {"core", "basic", "io", "model", "usage", "metadata"});
    if (cursor) q.add("cursor", *cursor);
    auto response = fetch(kObservationsV2Path, q, "observations", true, std::move(stop));
    if (!response.ok()) return response.status();
    auto page = parse_observations_v2(response->body, cursor);
    if (!page.ok()) return in_context(page.status(), what_of(kObservationsV2Path));
    return page;
  }

  const int page_number = page_from_cursor(cursor);
  q.add("page", page_number).add("limit", std::clamp(query.limit, 1, kMaxLegacyObservationPage));
  auto response = fetch(kObservationsLegacyPath, q, "observations", true, std::move(stop));
  if (!response.ok()) return response.status();
  auto page = parse_observations_legacy(response->body, page_number);
  if (!page.ok()) return in_context(page.status(), what_of(kObservationsLegacyPath));
  return page;
}

}  // namespace lfh
