#include "app/runtime.h"

namespace lfh {

Result<std::unique_ptr<Runtime>> Runtime::create(const Config& config) {
  std::unique_ptr<Runtime> rt(new Runtime(config));
  const Config& c = rt->config_;

  CurlHttpClientOptions curl;
  curl.connect_timeout = c.connect_timeout;
  curl.total_timeout = c.request_timeout;
  curl.low_speed_limit_bytes_per_s = c.low_speed_bytes_per_second;
  curl.low_speed_time = c.low_speed_time;
  curl.max_body_bytes = c.max_response_bytes;
  curl.ca_file = c.ca_file;
  rt->curl_ = std::make_unique<CurlHttpClient>(curl);
  // Under the budget: the watch sees exactly the requests that reach the network.
  rt->watch_ = std::make_unique<ServerWatch>(*rt->curl_, rt->clock_);

  const bool per_minute = c.requests_per_minute.has_value();
  const double rate = per_minute ? *c.requests_per_minute : c.requests_per_second;
  const RatePeriod period = per_minute ? RatePeriod::kMinute : RatePeriod::kSecond;
  rt->budget_ = std::make_unique<RequestBudget>(rt->clock_, rate, period);
  rt->governed_ =
      std::make_unique<GovernedHttpClient>(*rt->watch_, *rt->budget_, rt->clock_, c.max_in_flight);
  // Maintenance requests pass through their own, smaller budget and then the global one, so
  // they never take more than their share and never exceed the global limits.
  rt->maintenance_budget_ =
      std::make_unique<RequestBudget>(rt->clock_, rate * c.maintenance_share, period);
  rt->maintenance_http_ =
      std::make_unique<GovernedHttpClient>(*rt->governed_, *rt->maintenance_budget_, rt->clock_, 1);

  LangfuseClientOptions lf;
  lf.base_url = c.base_url;
  lf.public_key = c.public_key;
  lf.secret_key = c.secret_key;
  lf.max_response_bytes = c.max_response_bytes;
  lf.generation = c.api == "current"  ? ApiGeneration::kCurrent
                  : c.api == "legacy" ? ApiGeneration::kLegacy
                                      : ApiGeneration::kUnknown;
  rt->api_ = std::make_unique<LangfuseClient>(*rt->governed_, rt->clock_, lf);
  rt->maintenance_api_ = std::make_unique<LangfuseClient>(*rt->maintenance_http_, rt->clock_, lf);

  auto store = CheckpointStore::open(c.database, rt->clock_);
  if (!store.ok()) return store.status();
  rt->store_ = std::move(store).value();

  CircuitBreakerOptions breaker;
  breaker.failure_threshold = c.breaker_failures;
  breaker.probe_base = c.breaker_probe_base;
  breaker.probe_cap = c.breaker_probe_cap;
  rt->breaker_ = std::make_unique<CircuitBreaker>(rt->clock_, breaker);

  rt->engine_ = std::make_unique<SyncEngine>(*rt->api_, *rt->maintenance_api_, *rt->store_,
                                             *rt->breaker_, rt->clock_, rt->random_,
                                             SyncSettings::from_config(c), rt->budget_.get());
  return rt;
}

}  // namespace lfh
