#include "langfuse/api_transport.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/time_format.h"
#include "http/retry_after.h"
#include "langfuse/parse.h"

namespace lfh {
namespace {

constexpr std::string_view kHealthPath = "/api/public/health";
constexpr std::string_view kProjectsPath = "/api/public/projects";
// Error bodies are small JSON documents; a bigger body is not worth parsing for a message.
constexpr std::size_t kMaxErrorBodyParsed = 64 * 1024;
constexpr std::size_t kMaxServerMessage = 200;

std::string what_of(std::string_view path) {
  return fmt::format("GET {}", path);
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The "message" (or "error") of a JSON error body, cleaned for a log line: control characters
// become spaces.
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

// Langfuse answers 422 both for a payload over its limit and for a ClickHouse query timeout
// ("Request timed out"); only the message tells them apart.
bool is_query_timeout(const std::string& message) {
  return upper(message).find("TIMED OUT") != std::string::npos;
}

ErrorKind kind_of_http_status(long status, const std::string& message) {
  switch (status) {
    case 400:
      return ErrorKind::kPermanent;
    case 401:
    case 403:
      return ErrorKind::kAuth;
    case 404:
    case 501:  // v2 observations before 3.159: the route exists but is not implemented
      return ErrorKind::kNotFound;
    case 408:
      return ErrorKind::kRetryable;
    case 413:
      return ErrorKind::kTooLarge;
    case 422:
      return is_query_timeout(message) ? ErrorKind::kRetryable : ErrorKind::kTooLarge;
    case 429:
      return ErrorKind::kRateLimited;
    default:
      break;
  }
  if (status >= 500 && status <= 599) return ErrorKind::kRetryable;  // 524 included
  return ErrorKind::kPermanent;  // other 4xx; 1xx/3xx are not answers we can use
}

}  // namespace

ApiTransport::ApiTransport(HttpClient& http, const Clock& clock, LangfuseClientOptions options)
    : http_(http), clock_(clock), options_(std::move(options)) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/') {
    options_.base_url.pop_back();
  }
}

std::string ApiTransport::mask_keys(std::string text) const {
  for (const std::string* key : {&options_.secret_key, &options_.public_key}) {
    if (key->empty()) continue;
    for (auto pos = text.find(*key); pos != std::string::npos; pos = text.find(*key, pos + 3)) {
      text.replace(pos, key->size(), "***");
    }
  }
  return text;
}

Status ApiTransport::in_context(const Status& status, std::string_view path) const {
  Status out = Status::Error(status.kind(),
                             mask_keys(fmt::format("{}: {}", what_of(path), status.message())));
  out.with_detail(status.detail());
  if (status.retry_after_ms()) out.with_retry_after_ms(*status.retry_after_ms());
  return out;
}

Status ApiTransport::http_error(const HttpResponse& response, std::string_view what) const {
  std::string message = fmt::format("{}: HTTP {}", what, response.status);
  // Masked before it is cut, so no part of a key can survive the cut.
  const std::string raw_message = mask_keys(server_message(response.body));
  std::string from_server = truncate_utf8(raw_message, kMaxServerMessage);
  if (!from_server.empty()) message += ": " + from_server;
  ErrorKind kind = kind_of_http_status(response.status, raw_message);
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

std::size_t ApiTransport::request_line_bytes(std::string_view path,
                                             const QueryString& query) const {
  // "GET " + path-and-query + " HTTP/1.1"; the base URL's own path prefix counts too.
  std::size_t prefix = 0;
  if (auto scheme = options_.base_url.find("://"); scheme != std::string::npos) {
    if (auto slash = options_.base_url.find('/', scheme + 3); slash != std::string::npos) {
      prefix = options_.base_url.size() - slash;
    }
  }
  return 4 + prefix + path.size() + (query.empty() ? 0 : 1 + query.str().size()) + 9;
}

Result<HttpResponse> ApiTransport::get(std::string_view path, const QueryString& query,
                                       const char* endpoint, bool authenticated,
                                       std::stop_token stop) const {
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
  if (!response.ok()) return in_context(response.status(), path);
  if (response->status < 200 || response->status > 299) {
    return http_error(*response, what_of(path));
  }
  return response;
}

Result<ServerInfo> ApiTransport::health(std::stop_token stop) const {
  auto response = get(kHealthPath, QueryString(), "health", false, std::move(stop));
  if (!response.ok()) return response.status();
  auto info = parse_health(response->body);
  if (!info.ok()) return in_context(info.status(), kHealthPath);
  return info;
}

Result<ProjectInfo> ApiTransport::project(std::stop_token stop) const {
  auto response = get(kProjectsPath, QueryString(), "projects", true, std::move(stop));
  if (!response.ok()) return response.status();
  auto project = parse_projects(response->body);
  if (!project.ok()) return in_context(project.status(), kProjectsPath);
  return project;
}

std::optional<std::string> server_time_of(const HttpResponse& response) {
  const std::string* date = response.header("date");
  if (date == nullptr || date->empty()) return std::nullopt;
  const time_t seconds = curl_getdate(date->c_str(), nullptr);
  if (seconds == -1) return std::nullopt;
  return format_iso8601(SysTime(std::chrono::seconds(seconds)));
}

std::size_t encoded_list_bytes(const std::vector<std::string>& ids) {
  std::size_t bytes = ids.empty() ? 0 : ids.size() - 1;
  for (const auto& id : ids) bytes += percent_encode(id).size();
  return bytes;
}

bool score_matches(const Score& score, const ScoreQuery& query) {
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

}  // namespace lfh
