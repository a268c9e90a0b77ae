// What the sync side has learned about the server's limits, persisted in the meta table (key
// "server_safety") so that `status` can show it and the next process starts from it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lfh {

inline constexpr const char* kServerSafetyMetaKey = "server_safety";

struct ServerSafety {
  int effective_concurrency = 0;   // traces in flight allowed now (AIMD), 1..in-flight cap
  double effective_rate = 0;       // requests per second allowed now (0: not recorded)
  int64_t largest_response = 0;    // bytes of the largest observation response seen
  int64_t outages = 0;             // bursts of server failures (from healthy to failing)
  int64_t crashes = 0;             // of which began with a big response in flight or just before
  int64_t traces_learned_big = 0;  // traces found big (each counted once)
  bool careful = false;            // traces of unknown size are fetched one at a time
  std::string updated_at;          // ISO 8601, when it was written
};

std::string server_safety_to_json(const ServerSafety& s);
/// nullopt for text that is not such a record (never throws).
std::optional<ServerSafety> server_safety_from_json(const std::string& text);

}  // namespace lfh
