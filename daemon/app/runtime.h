// The production object graph for the commands that talk to the server: one curl client, one
// global request budget and in-flight cap shared by everything, a smaller budget for
// maintenance on top of it, the Langfuse clients, the checkpoint store and the sync engine.
#pragma once

#include <memory>

#include "app/server_watch.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/random.h"
#include "http/circuit_breaker.h"
#include "http/curl_http_client.h"
#include "http/governed_http_client.h"
#include "http/rate_limiter.h"
#include "langfuse/langfuse_client.h"
#include "store/checkpoint_store.h"
#include "sync/sync_engine.h"

namespace lfh {

class Runtime {
 public:
  /// Opens the database (kIo / kCorrupt / kFatal on failure) and wires everything.
  static Result<std::unique_ptr<Runtime>> create(const Config& config);

  const Config& config() const { return config_; }
  SystemClock& clock() { return clock_; }
  CheckpointStore& store() { return *store_; }
  SyncEngine& engine() { return *engine_; }
  LangfuseClient& api() { return *api_; }
  CircuitBreaker& breaker() { return *breaker_; }
  /// How the server answers: every request that reaches the network passes through it.
  const ServerWatch& watch() const { return *watch_; }
  /// After connecting: the maintenance client uses the generation the main client detected.
  void share_generation() { maintenance_api_->set_generation(api_->generation()); }
  GovernedHttpClient::Stats http_stats() const { return governed_->stats(); }
  RequestBudget::Stats budget_stats() const { return budget_->stats(); }

 private:
  explicit Runtime(const Config& config) : config_(config) {}

  Config config_;
  SystemClock clock_;
  SeededRandom random_;
  std::unique_ptr<CurlHttpClient> curl_;
  std::unique_ptr<ServerWatch> watch_;
  std::unique_ptr<RequestBudget> budget_;
  std::unique_ptr<GovernedHttpClient> governed_;
  std::unique_ptr<RequestBudget> maintenance_budget_;
  std::unique_ptr<GovernedHttpClient> maintenance_http_;
  std::unique_ptr<LangfuseClient> api_;
  std::unique_ptr<LangfuseClient> maintenance_api_;
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<CircuitBreaker> breaker_;
  std::unique_ptr<SyncEngine> engine_;
};

}  // namespace lfh
