// The HTTP seam. Every request lfharvest sends goes through an HttpClient; production wires
// CurlHttpClient wrapped in a GovernedHttpClient (rate limit + in-flight cap), tests wire fakes.
#pragma once

#include <cstddef>
#include <map>
#include <stop_token>
#include <string>
#include <vector>

#include "core/status.h"

namespace lfh {

struct HttpRequest {
  std::string url;  // absolute URL, query already encoded
  std::vector<std::pair<std::string, std::string>> headers;
  // HTTP Basic credentials. Never logged, never put in error messages.
  std::string basic_user;
  std::string basic_password;
  // Abort (kTooLarge) as soon as more than this many body bytes arrive. 0 = client default.
  std::size_t max_body_bytes = 0;
  // Short name of the endpoint for metrics and logs ("scores", "observations", "health").
  std::string endpoint;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased; last value wins
  std::string body;
  std::size_t wire_bytes = 0;  // status line, headers and body as received (0: not counted)
  double elapsed_s = 0;

  const std::string* header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? nullptr : &it->second;
  }
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  /// Performs a GET. Returns the response for any HTTP status (the caller maps statuses to
  /// errors), or a Status for transport failures: kRetryable (connect failure, timeout, low-speed
  /// abort, reset, truncated body; detail = bytes of the response received or announced by its
  /// Content-Length before the failure when some arrived, else -curl_code as curl_errors.h
  /// says, so transport_failure() can tell a refused connection from a timeout), kTooLarge
  /// (detail = bytes
  /// received or announced when aborted), kCancelled
  /// (stop requested), kConfig (TLS/URL problems that retrying cannot fix). Thread-safe.
  virtual Result<HttpResponse> get(const HttpRequest& request, std::stop_token stop) = 0;
};

}  // namespace lfh
