// What the sync engine needs from the Config, in the engine's own terms.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/clock.h"

namespace lfh {

struct SyncSettings {
  std::string base_url;
  std::vector<std::string> sources{"ANNOTATION"};
  std::vector<std::string> score_names;
  std::vector<std::string> environments;
  Millis overlap{15 * 60 * 1000};
  std::optional<std::string> since;
  int score_page_size = 100;
  int observation_page_size = 10;
  int workers = 2;  // traces fetched concurrently (= the in-flight cap)
  // A page larger than this holds its trace as big (fetched alone, one observation per page).
  std::int64_t big_response_bytes = 4LL << 20;
  double requests_per_second = 5.0;  // the configured budget (per-minute budgets converted)
  Millis backoff_base{1000};
  Millis backoff_cap{600 * 1000};
  int max_attempts = 10;
  Millis settle_time{30 * 60 * 1000};
  Millis max_wait{60 * 1000};  // longest wait inside a pass before it returns kWaiting
  Millis poll_interval{60 * 1000};
  // Maintenance (edits and deletions), see sync/maintenance.h.
  Millis rescan_interval{3600 * 1000};
  Millis rescan_window{7LL * 24 * 3600 * 1000};
  Millis sweep_interval{24LL * 3600 * 1000};

  static SyncSettings from_config(const Config& config);
};

}  // namespace lfh
