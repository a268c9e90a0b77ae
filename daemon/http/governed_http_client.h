// The decorator every production request passes through: the in-flight cap, the request budget,
// Retry-After honoured process-wide, and the counters behind the metrics.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>

#include "core/clock.h"
#include "http/http_client.h"
#include "http/rate_limiter.h"

namespace lfh {

/// get() first takes one of `max_in_flight` slots (waiting if all are taken), then a slot of the
/// RequestBudget, then calls the inner client; the in-flight slot is held until the inner call
/// returns. A 429, or a 503 carrying Retry-After, with a valid Retry-After calls
/// budget.penalize_until(), so no thread of the process sends anything before that time; the
/// response itself is returned unchanged (the caller maps statuses to errors and retries).
///
/// A stop request while waiting returns kCancelled without calling the inner client.
/// The inner client, the budget and the clock are not owned and must outlive this object.
/// Thread-safe.
class GovernedHttpClient final : public HttpClient {
 public:
  struct EndpointCounts {
    std::uint64_t status_1xx = 0;
    std::uint64_t status_2xx = 0;
    std::uint64_t status_3xx = 0;
    std::uint64_t status_4xx = 0;
    std::uint64_t status_5xx = 0;
    std::uint64_t status_other = 0;      // outside 100..599 (e.g. 0 from a broken fake)
    std::uint64_t transport_errors = 0;  // inner client returned a Status (kCancelled excluded)
  };

  struct Stats {
    std::map<std::string, EndpointCounts> by_endpoint;  // HttpRequest::endpoint, "" -> "other"
    std::uint64_t requests = 0;                         // calls that reached the inner client
    std::uint64_t transport_errors = 0;                 // all endpoints
    std::uint64_t cancelled = 0;              // stopped while waiting or in the inner client
    std::uint64_t bytes_received = 0;         // responses: headers and body, cut-off ones too
    std::uint64_t largest_response = 0;       // the largest of them
    std::uint64_t rate_limited = 0;           // 429 responses
    std::uint64_t retry_after_penalties = 0;  // Retry-After values fed to the budget
    std::uint64_t throttle_waits = 0;         // requests that had to wait for the budget
    Millis throttle_wait{0};                  // total time spent waiting for the budget
    int in_flight = 0;                        // now
    int peak_in_flight = 0;                   // highest ever; never above max_in_flight
  };

  /// max_in_flight < 1 is treated as 1.
  GovernedHttpClient(HttpClient& inner, RequestBudget& budget, Clock& clock, int max_in_flight);
  GovernedHttpClient(const GovernedHttpClient&) = delete;
  GovernedHttpClient& operator=(const GovernedHttpClient&) = delete;

  Result<HttpResponse> get(const HttpRequest& request, std::stop_token stop) override;

  Stats stats() const;
  int max_in_flight() const { return max_in_flight_; }

 private:
  bool enter(std::stop_token stop);  // takes an in-flight slot; false when stopped
  void leave();
  void record(const HttpRequest& request, const Result<HttpResponse>& result);
  void honour_retry_after(const HttpResponse& response);

  HttpClient& inner_;
  RequestBudget& budget_;
  Clock& clock_;
  const int max_in_flight_;

  mutable std::mutex mu_;
  std::condition_variable_any slot_freed_;
  Stats stats_;
};

}  // namespace lfh
