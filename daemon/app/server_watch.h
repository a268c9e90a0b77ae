// What the commands know about how the server answers, for the progress line and for the
// --max-wait bound on a silent server. A decorator of the HttpClient that sits under the request
// budget, so it sees every request that reaches the network and nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

#include "core/clock.h"
#include "http/http_client.h"

namespace lfh {

class ServerWatch final : public HttpClient {
 public:
  struct Snapshot {
    std::uint64_t requests = 0;     // sent
    std::uint64_t answers = 0;      // any HTTP status came back (a 429 or a 500 is an answer)
    int failures_since_answer = 0;  // transport timeouts since the last answer
    std::optional<std::chrono::steady_clock::time_point> last_answer;
    std::optional<std::chrono::steady_clock::time_point> first_request;
    // The last Retry-After the server sent (429/503), and when that wait ends.
    std::optional<Millis> retry_after;
    std::optional<std::chrono::steady_clock::time_point> retry_after_until;
  };

  /// `inner` and `clock` must outlive the watch.
  ServerWatch(HttpClient& inner, Clock& clock) : inner_(inner), clock_(clock) {}

  /// Forwards to inner; logs each request at trace level (method, path, status, time).
  Result<HttpResponse> get(const HttpRequest& request, std::stop_token stop) override;

  Snapshot snapshot() const;

  /// How long the server has been silent at `now`: since the first request while nothing ever
  /// answered, or since the last answer once a request has timed out after it (a slow download
  /// still arriving does not count, nor does a refused connection, which fails at once and
  /// opens the circuit breaker). Zero while it answers.
  Millis silent_for(std::chrono::steady_clock::time_point now) const;

 private:
  HttpClient& inner_;
  Clock& clock_;
  mutable std::mutex mu_;
  Snapshot state_;  // guarded by mu_
};

}  // namespace lfh
