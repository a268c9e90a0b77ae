// What both API generations share: the base URL, the keys, one GET with the HTTP outcome mapped
// to a Status (langfuse_api.h's table), error messages without secrets, the server's Date, and
// the filters a server cannot apply (done here on the items instead).
//
// Error messages look like "GET /api/public/v3/scores: HTTP 503: <server message, at most 200
// bytes>"; they never contain the base URL, the query, the keys or the Authorization header.
// Statuses beyond langfuse_api.h's table: 408 -> kRetryable; any other non-2xx (other 4xx such
// as 414 and 431, an unfollowed 3xx) -> kPermanent. Thread-safe: immutable after construction.
#pragma once

#include <cstddef>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "http/http_client.h"
#include "langfuse/model.h"
#include "langfuse/query_string.h"

namespace lfh {

struct LangfuseClientOptions {
  std::string base_url;    // scheme://host[:port][/prefix]; trailing slashes are ignored
  std::string public_key;  // Basic auth user
  std::string secret_key;  // Basic auth password
  std::size_t max_response_bytes = std::size_t{64} << 20;
  ApiGeneration generation = ApiGeneration::kUnknown;  // kUnknown = detect
};

/// The longest request line lfharvest sends on purpose: nginx's default
/// large_client_header_buffers refuses a request line over 8 KB (414); Node refuses headers over
/// 16 KiB (431). Kept below 8 KB with room for a proxy's own additions.
inline constexpr std::size_t kMaxRequestLineBytes = 7500;

/// Bytes an id list may take, percent-encoded with its commas, in one scores request: with the
/// path and the other parameters the request line stays under kMaxRequestLineBytes.
inline constexpr std::size_t kMaxIdListBytes = 6000;
/// Bytes of `ids` as one comma-separated, percent-encoded parameter value.
std::size_t encoded_list_bytes(const std::vector<std::string>& ids);

class ApiTransport {
 public:
  /// `http` and `clock` (used to read Retry-After dates) must outlive the transport.
  ApiTransport(HttpClient& http, const Clock& clock, LangfuseClientOptions options);

  /// GET base+path?query; a non-2xx status becomes the Status langfuse_api.h documents.
  Result<HttpResponse> get(std::string_view path, const QueryString& query, const char* endpoint,
                           bool authenticated, std::stop_token stop) const;
  /// GET /api/public/health and GET /api/public/projects (the same on every generation).
  Result<ServerInfo> health(std::stop_token stop) const;
  Result<ProjectInfo> project(std::stop_token stop) const;

  /// A parse (or other) Status with "GET <path>: " in front and the keys masked.
  Status in_context(const Status& status, std::string_view path) const;
  /// Bytes of the request line for path?query (method, URL and protocol included).
  std::size_t request_line_bytes(std::string_view path, const QueryString& query) const;

  ApiGeneration pinned() const { return options_.generation; }

 private:
  Status http_error(const HttpResponse& response, std::string_view what) const;
  std::string mask_keys(std::string text) const;

  HttpClient& http_;
  const Clock& clock_;
  LangfuseClientOptions options_;
};

/// The server's Date header as canonical ISO 8601 (curl_getdate), nullopt when absent or bad.
std::optional<std::string> server_time_of(const HttpResponse& response);

/// Whether a score matches every filter of the query (sources case-insensitively, a missing
/// environment counting as "default"): for the filters a server could not apply.
bool score_matches(const Score& score, const ScoreQuery& query);

}  // namespace lfh
