#include "store/server_safety.h"

#include <nlohmann/json.hpp>

namespace lfh {

std::string server_safety_to_json(const ServerSafety& s) {
  nlohmann::json j;
  j["effective_concurrency"] = s.effective_concurrency;
  j["effective_rate"] = s.effective_rate;
  j["largest_response"] = s.largest_response;
  j["outages"] = s.outages;
  j["crashes"] = s.crashes;
  j["traces_learned_big"] = s.traces_learned_big;
  j["careful"] = s.careful;
  j["updated_at"] = s.updated_at;
  return j.dump();
}

std::optional<ServerSafety> server_safety_from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  ServerSafety s;
  try {
    s.effective_concurrency = j.value("effective_concurrency", 0);
    s.effective_rate = j.value("effective_rate", 0.0);
    s.largest_response = j.value("largest_response", int64_t{0});
    s.outages = j.value("outages", int64_t{0});
    s.crashes = j.value("crashes", int64_t{0});
    s.traces_learned_big = j.value("traces_learned_big", int64_t{0});
    s.careful = j.value("careful", false);
    s.updated_at = j.value("updated_at", std::string());
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return s;
}

}  // namespace lfh
