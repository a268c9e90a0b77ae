#include "sync/sync_settings.h"

namespace lfh {

SyncSettings SyncSettings::from_config(const Config& c) {
  SyncSettings s;
  s.base_url = c.base_url;
  s.sources = c.sources;
  s.score_names = c.score_names;
  s.environments = c.environments;
  s.overlap = c.overlap;
  s.since = c.since;
  s.score_page_size = c.score_page_size;
  s.observation_page_size = c.observation_page_size;
  s.big_response_bytes = static_cast<std::int64_t>(c.big_response_bytes);
  s.requests_per_second =
      c.requests_per_minute ? *c.requests_per_minute / 60 : c.requests_per_second;
  s.workers = c.max_in_flight;
  s.backoff_base = c.backoff_base;
  s.backoff_cap = c.backoff_cap;
  s.max_attempts = c.max_attempts;
  s.settle_time = c.settle_time;
  s.max_wait = c.max_wait;
  s.poll_interval = c.poll_interval;
  s.rescan_interval = c.rescan_interval;
  s.rescan_window = c.rescan_window;
  s.sweep_interval = c.sweep_interval;
  return s;
}

}  // namespace lfh
