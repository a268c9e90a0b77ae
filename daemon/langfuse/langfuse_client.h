// LangfuseApi over an HttpClient: builds the requests of both API generations, maps HTTP outcomes
// to Status kinds (see langfuse_api.h) and parses the bodies with langfuse/parse.h.
//
// Requests:
//   health        GET {base}/api/public/health                       (no credentials)
//   project       GET {base}/api/public/projects                     (Basic auth, as all below)
//   scores        current: GET /api/public/v3/scores?limit&fields=details,subject,annotation
//                          [&cursor][&fromTimestamp][&toTimestamp][&source][&name][&environment][&id]
//                 legacy:  GET /api/public/scores?page&limit&fields=score[&fromTimestamp]
//                          [&toTimestamp][&source][&name][&environment...][&scoreIds]
//   observations  current: GET /api/public/v2/observations?traceId&limit
//                          &fields=core,basic,io,model,usage,metadata[&cursor]
//                 legacy:  GET /api/public/observations?traceId&page&limit
// The v3 scores endpoint rejects unknown parameters, so only those above are ever sent.
// Page sizes are clamped to what each endpoint accepts (scores 1..100; observations 1..1000,
// legacy 1..100). Every value is percent-encoded; credentials travel only as Basic auth.
//
// Legacy scores take one source and one name: with exactly one value it is sent as a filter;
// with several, the filter is left out and scores are filtered here (sources case-insensitively,
// environments with a missing environment counting as "default"). The page's next_cursor stays
// the server's, so paging is unaffected; a page may then hold fewer scores than asked for.
//
// Generation: options.generation pins one; kUnknown detects. In detect mode health() adopts the
// generation of the server version while none is known yet, scores()/observations() use the
// current API while unknown and remember the one that answered, and a 404 from one generation's
// endpoint switches to the other and retries once (a cursor is specific to its generation, so the
// retry starts the listing from its first page). A pinned generation never switches: a 404 is
// returned as kNotFound.
//
// Statuses beyond langfuse_api.h's table: 408 -> kRetryable; any other non-2xx (other 4xx, an
// unfollowed 3xx) -> kPermanent. detail() is always the HTTP status.
// Error messages look like "GET /api/public/v3/scores: HTTP 503: <server message, at most 200
// bytes>"; they never contain the base URL, the query, the keys or the Authorization header.
// Thread-safe: the generation is atomic, everything else is immutable after construction.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "http/http_client.h"
#include "langfuse/langfuse_api.h"
#include "langfuse/query_string.h"

namespace lfh {

struct LangfuseClientOptions {
  std::string base_url;    // scheme://host[:port][/prefix]; trailing slashes are ignored
  std::string public_key;  // Basic auth user
  std::string secret_key;  // Basic auth password
  std::size_t max_response_bytes = std::size_t{64} << 20;
  ApiGeneration generation = ApiGeneration::kUnknown;  // kUnknown = detect
};

class LangfuseClient final : public LangfuseApi {
 public:
  /// `http` and `clock` (used to read Retry-After dates) must outlive the client.
  LangfuseClient(HttpClient& http, const Clock& clock, LangfuseClientOptions options);

  Result<ServerInfo> health(std::stop_token stop) override;
  Result<ProjectInfo> project(std::stop_token stop) override;
  ApiGeneration generation() const override { return generation_.load(); }
  void set_generation(ApiGeneration g) override { generation_.store(g); }
  /// kPermanent without a request when query.ids holds more than 100 ids.
  Result<ScorePage> scores(const ScoreQuery& query, std::stop_token stop) override;
  /// kPermanent without a request when query.trace_id is empty (that would list the project).
  Result<ObservationPage> observations(const ObservationQuery& query,
                                       std::stop_token stop) override;

 private:
  // GET base+path?query; non-2xx statuses become the Status langfuse_api.h documents.
  Result<HttpResponse> fetch(std::string_view path, const QueryString& query, const char* endpoint,
                             bool authenticated, std::stop_token stop);
  Result<ScorePage> scores_with(ApiGeneration g, const ScoreQuery& query, bool drop_cursor,
                                std::stop_token stop);
  Result<ObservationPage> observations_with(ApiGeneration g, const ObservationQuery& query,
                                            bool drop_cursor, std::stop_token stop);
  template <typename Page, typename Call>
  Result<Page> with_generation_fallback(Call call);
  // Status from the server or the transport, with "GET <path>: " in front and keys masked.
  Status in_context(const Status& status, std::string_view what) const;
  Status http_error(const HttpResponse& response, std::string_view what) const;
  std::string mask_keys(std::string text) const;

  HttpClient& http_;
  const Clock& clock_;
  LangfuseClientOptions options_;
  bool detect_generation_;
  std::atomic<ApiGeneration> generation_;
};

}  // namespace lfh
