// The engine's view of server health: the circuit breaker plus the waits around it.
//
// Workers ask may_send() before each request and report() each outcome; when the breaker is
// open they stop taking work. The pass loop calls wait_until_closed(), which sends at most one
// probe per breaker interval and returns once the API answers again.
#pragma once

#include <stop_token>

#include "core/clock.h"
#include "core/status.h"
#include "http/circuit_breaker.h"
#include "langfuse/langfuse_api.h"

namespace lfh {

/// Whether an error says the server (or the way to it) is failing, which feeds the breaker.
/// 429 is not a failure: the server is healthy and asks us to slow down.
bool is_server_failure(const Status& status);

class ServerGate {
 public:
  ServerGate(LangfuseApi& api, CircuitBreaker& breaker, Clock& clock)
      : api_(api), breaker_(breaker), clock_(clock) {}

  bool may_send() const { return breaker_.state() == CircuitBreaker::State::kClosed; }
  void report(const Status& status);

  enum class Wait { kClosed, kTooLong, kStopped };
  /// Returns kClosed at once while the breaker is closed. Otherwise waits for probe times
  /// (never past now + max_wait: kTooLong) and probes until the API answers: a probe is
  /// GET /api/public/health (cheap, no auth; a 404 there is no failure: old servers lack it)
  /// then, when health did not fail, GET /api/public/projects. Only an API answer that is not a
  /// server failure closes the breaker: health checks nothing on the server by default.
  Wait wait_until_closed(Millis max_wait, std::stop_token stop);

 private:
  LangfuseApi& api_;
  CircuitBreaker& breaker_;
  Clock& clock_;
};

}  // namespace lfh
