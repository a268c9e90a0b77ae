// Counters that outlive the process: the service adds each pass's HTTP figures to the totals
// kept in the database (meta key "service"), so `lfharvest status --prometheus` and the textfile
// show monotonic counters across restarts.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "http/governed_http_client.h"
#include "sync/sync_engine.h"

namespace lfh {

struct ServiceCounters {
  std::map<std::string, std::map<std::string, uint64_t>> requests;  // endpoint -> class -> n
  uint64_t transport_errors = 0;
  uint64_t bytes_received = 0;
  uint64_t rate_limited = 0;
  uint64_t throttle_waits = 0;
  double throttle_wait_seconds = 0;
  uint64_t breaker_opens = 0;
  std::string breaker_state = "closed";
  uint64_t retries_scheduled = 0;
  uint64_t passes = 0;
  std::string updated_at;

  std::string to_json() const;
  /// Unknown or malformed JSON gives zeroed counters (never an error: they are only figures).
  static ServiceCounters from_json(const std::string& text);
};

/// Adds the growth between two HTTP stats snapshots to the counters.
void add_http_delta(ServiceCounters& c, const GovernedHttpClient::Stats& before,
                    const GovernedHttpClient::Stats& after);

}  // namespace lfh
