#include "http/governed_http_client.h"

#include <algorithm>

#include "core/log.h"
#include "http/retry_after.h"

namespace lfh {
namespace {

GovernedHttpClient::EndpointCounts& counts_for(GovernedHttpClient::Stats& stats,
                                               const std::string& endpoint) {
  return stats.by_endpoint[endpoint.empty() ? std::string("other") : endpoint];
}

}  // namespace

GovernedHttpClient::GovernedHttpClient(HttpClient& inner, RequestBudget& budget, Clock& clock,
                                       int max_in_flight)
    : inner_(inner), budget_(budget), clock_(clock), max_in_flight_(std::max(max_in_flight, 1)) {}

bool GovernedHttpClient::enter(std::stop_token stop) {
  std::unique_lock lock(mu_);
  if (!slot_freed_.wait(lock, stop, [this] { return stats_.in_flight < max_in_flight_; })) {
    return false;
  }
  ++stats_.in_flight;
  stats_.peak_in_flight = std::max(stats_.peak_in_flight, stats_.in_flight);
  return true;
}

void GovernedHttpClient::leave() {
  {
    std::lock_guard lock(mu_);
    --stats_.in_flight;
  }
  slot_freed_.notify_one();
}

Result<HttpResponse> GovernedHttpClient::get(const HttpRequest& request, std::stop_token stop) {
  auto cancelled = [&] {
    std::lock_guard lock(mu_);
    ++stats_.cancelled;
    return Status::Error(ErrorKind::kCancelled, "stop requested before sending " + request.url);
  };
  if (!enter(stop)) return cancelled();
  struct Leave {
    GovernedHttpClient& client;
    ~Leave() { client.leave(); }
  } leave_on_exit{*this};

  // The budget is taken after the in-flight slot: a slot holder then sends as soon as the budget
  // allows, and waiters never consume budget they cannot use.
  const auto before = clock_.mono();
  if (!budget_.acquire(stop)) return cancelled();
  const auto waited = std::chrono::duration_cast<Millis>(clock_.mono() - before);
  {
    std::lock_guard lock(mu_);
    ++stats_.requests;
    if (waited > Millis(0)) {
      ++stats_.throttle_waits;
      stats_.throttle_wait += waited;
    }
  }

  Result<HttpResponse> result = inner_.get(request, stop);
  record(request, result);
  if (result.ok()) honour_retry_after(*result);
  return result;
}

void GovernedHttpClient::record(const HttpRequest& request, const Result<HttpResponse>& result) {
  std::lock_guard lock(mu_);
  EndpointCounts& counts = counts_for(stats_, request.endpoint);
  if (!result.ok()) {
    if (result.status().detail() > 0 && (result.status().kind() == ErrorKind::kRetryable ||
                                         result.status().kind() == ErrorKind::kTooLarge)) {
      // Bytes of a response cut off (or refused) mid-way: the server serialised them all.
      const auto seen = static_cast<std::uint64_t>(result.status().detail());
      stats_.bytes_received += seen;
      stats_.largest_response = std::max(stats_.largest_response, seen);
    }
    if (result.status().kind() == ErrorKind::kCancelled) {
      ++stats_.cancelled;
    } else {
      ++counts.transport_errors;
      ++stats_.transport_errors;
    }
    return;
  }
  const HttpResponse& response = *result;
  const std::uint64_t bytes = response.wire_bytes > 0 ? response.wire_bytes : response.body.size();
  stats_.bytes_received += bytes;
  stats_.largest_response = std::max(stats_.largest_response, bytes);
  if (response.status == 429) ++stats_.rate_limited;
  switch (response.status / 100) {
    case 1:
      ++counts.status_1xx;
      break;
    case 2:
      ++counts.status_2xx;
      break;
    case 3:
      ++counts.status_3xx;
      break;
    case 4:
      ++counts.status_4xx;
      break;
    case 5:
      ++counts.status_5xx;
      break;
    default:
      ++counts.status_other;
      break;
  }
}

void GovernedHttpClient::honour_retry_after(const HttpResponse& response) {
  if (response.status != 429 && response.status != 503) return;
  const std::string* header = response.header("retry-after");
  if (header == nullptr) return;
  std::optional<Millis> delay = parse_retry_after(*header, clock_.now());
  if (!delay) {
    // The caller falls back to its own backoff; nothing process-wide to do.
    log::debug("ignoring unusable Retry-After value on a {} response", response.status);
    return;
  }
  budget_.penalize_until(clock_.mono() + *delay);
  std::lock_guard lock(mu_);
  ++stats_.retry_after_penalties;
}

GovernedHttpClient::Stats GovernedHttpClient::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace lfh
