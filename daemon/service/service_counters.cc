#include "service/service_counters.h"

#include <nlohmann/json.hpp>

namespace lfh {

std::string ServiceCounters::to_json() const {
  nlohmann::json j;
  j["requests"] = requests;
  j["transport_errors"] = transport_errors;
  j["bytes_received"] = bytes_received;
  j["rate_limited"] = rate_limited;
  j["throttle_waits"] = throttle_waits;
  j["throttle_wait_seconds"] = throttle_wait_seconds;
  j["breaker_opens"] = breaker_opens;
  j["breaker_state"] = breaker_state;
  j["retries_scheduled"] = retries_scheduled;
  j["passes"] = passes;
  j["updated_at"] = updated_at;
  return j.dump();
}

ServiceCounters ServiceCounters::from_json(const std::string& text) {
  ServiceCounters c;
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return c;
  try {
    c.requests = j.value("requests", decltype(c.requests){});
    c.transport_errors = j.value("transport_errors", uint64_t{0});
    c.bytes_received = j.value("bytes_received", uint64_t{0});
    c.rate_limited = j.value("rate_limited", uint64_t{0});
    c.throttle_waits = j.value("throttle_waits", uint64_t{0});
    c.throttle_wait_seconds = j.value("throttle_wait_seconds", 0.0);
    c.breaker_opens = j.value("breaker_opens", uint64_t{0});
    c.breaker_state = j.value("breaker_state", std::string("closed"));
    c.retries_scheduled = j.value("retries_scheduled", uint64_t{0});
    c.passes = j.value("passes", uint64_t{0});
    c.updated_at = j.value("updated_at", std::string());
  } catch (const nlohmann::json::exception&) {
    return ServiceCounters{};
  }
  return c;
}

void add_http_delta(ServiceCounters& c, const GovernedHttpClient::Stats& before,
                    const GovernedHttpClient::Stats& after) {
  for (const auto& [endpoint, now] : after.by_endpoint) {
    GovernedHttpClient::EndpointCounts then;
    if (auto it = before.by_endpoint.find(endpoint); it != before.by_endpoint.end()) {
      then = it->second;
    }
    auto& m = c.requests[endpoint.empty() ? "other" : endpoint];
    m["2xx"] += now.status_2xx - then.status_2xx;
    m["3xx"] += now.status_3xx - then.status_3xx;
    m["4xx"] += now.status_4xx - then.status_4xx;
    m["5xx"] += now.status_5xx - then.status_5xx;
    m["error"] += (now.transport_errors - then.transport_errors) +
                  (now.status_other - then.status_other) + (now.status_1xx - then.status_1xx);
  }
  c.transport_errors += after.transport_errors - before.transport_errors;
  c.bytes_received += after.bytes_received - before.bytes_received;
  c.rate_limited += after.rate_limited - before.rate_limited;
  c.throttle_waits += after.throttle_waits - before.throttle_waits;
  c.throttle_wait_seconds +=
      static_cast<double>((after.throttle_wait - before.throttle_wait).count()) / 1000.0;
}

}  // namespace lfh
