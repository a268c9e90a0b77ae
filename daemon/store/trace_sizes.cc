// Size learning on the trace queue (migration 0004). Kept apart from checkpoint_store.cc: these
// statements run once per trace that turns out big, so they are prepared when used.
#include "store/checkpoint_store.h"

namespace lfh {

Status CheckpointStore::mark_trace_big(const std::string& project, const std::string& trace_id,
                                       int64_t page_bytes) {
  std::lock_guard lock(mu_);
  auto st = db_.prepare(R"(
    UPDATE traces SET
      largest_page_bytes = max(largest_page_bytes, :bytes),
      big_since = coalesce(big_since, :now)
    WHERE project_id = :p AND trace_id = :t)");
  if (!st.ok()) return st.status();
  return st->bind(":p", project)
      .bind(":t", trace_id)
      .bind(":bytes", page_bytes)
      .bind(":now", now_text())
      .run();
}

}  // namespace lfh
