#include "app/server_watch.h"

#include "core/log.h"
#include "http/curl_errors.h"
#include "http/retry_after.h"

namespace lfh {
namespace {

// The path of a URL without its query: enough to follow the traffic, and never the keys.
std::string_view path_of(std::string_view url) {
  auto scheme = url.find("://");
  auto start = url.find('/', scheme == std::string_view::npos ? 0 : scheme + 3);
  if (start == std::string_view::npos) return "/";
  auto end = url.find('?', start);
  return url.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

}  // namespace

Result<HttpResponse> ServerWatch::get(const HttpRequest& request, std::stop_token stop) {
  const auto start = clock_.mono();
  {
    std::lock_guard lock(mu_);
    ++state_.requests;
    if (!state_.first_request) state_.first_request = start;
  }
  log::trace("GET {} ...", path_of(request.url));
  auto response = inner_.get(request, std::move(stop));
  const auto end = clock_.mono();
  const auto ms = std::chrono::duration_cast<Millis>(end - start).count();
  std::lock_guard lock(mu_);
  // A body over the cap was cut by us while the server was sending it: that is an answer too.
  const bool answered = response.ok() || response.status().kind() == ErrorKind::kTooLarge;
  if (answered) {
    ++state_.answers;
    state_.failures_since_answer = 0;
    state_.last_answer = end;
  }
  if (response.ok()) {
    if (response->status == 429 || response->status == 503) {
      if (const std::string* header = response->header("retry-after")) {
        if (auto wait = parse_retry_after(*header, clock_.now())) {
          state_.retry_after = *wait;
          state_.retry_after_until = end + *wait;
        }
      }
    }
    log::trace("GET {} -> HTTP {}, {} bytes in {} ms", path_of(request.url), response->status,
               response->body.size(), ms);
  } else {
    // Only timeouts (connect, low-speed, total) say "the server went silent"; a refused or
    // reset connection fails fast and is the circuit breaker's business.
    if (!answered && transport_failure(response.status()) == TransportFailure::kTimeout) {
      ++state_.failures_since_answer;
    }
    log::trace("GET {} -> {} after {} ms", path_of(request.url),
               error_kind_name(response.status().kind()), ms);
  }
  return response;
}

ServerWatch::Snapshot ServerWatch::snapshot() const {
  std::lock_guard lock(mu_);
  return state_;
}

Millis ServerWatch::silent_for(std::chrono::steady_clock::time_point now) const {
  std::lock_guard lock(mu_);
  std::optional<std::chrono::steady_clock::time_point> since;
  if (state_.answers == 0) {
    since = state_.first_request;
  } else if (state_.failures_since_answer > 0) {
    since = state_.last_answer;
  }
  if (!since || now < *since) return Millis(0);
  return std::chrono::duration_cast<Millis>(now - *since);
}

}  // namespace lfh
