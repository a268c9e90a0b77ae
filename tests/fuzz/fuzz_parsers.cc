// libFuzzer target: every parser of Langfuse response bodies gets the same bytes. Besides "no
// crash, no sanitizer report", it checks the parsers' promise that every JSON-valued field of a
// record holds valid JSON text. Seed corpus: tests/fuzz/corpus/parsers/.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "langfuse/json_scan.h"
#include "langfuse/parse.h"

namespace {

void require(bool condition) {
  if (!condition) __builtin_trap();
}

bool valid_json(const std::string& text) {
  return nlohmann::json::accept(text);
}

void check_scores(const lfh::Result<lfh::ScorePage>& page) {
  if (!page.ok()) return;
  for (const auto& score : page->scores) {
    require(valid_json(score.value_json));
    require(valid_json(score.raw_json));
    require(!score.metadata_json || valid_json(*score.metadata_json));
  }
  for (const auto& error : page->errors) require(!error.reason.empty());
}

void check_observations(const lfh::Result<lfh::ObservationPage>& page) {
  if (!page.ok()) return;
  for (const auto& obs : page->observations) {
    require(valid_json(obs.input_json));
    require(valid_json(obs.output_json));
    require(valid_json(obs.attributes_json));
    require(!obs.usage_json || valid_json(*obs.usage_json));
    require(!obs.metadata_json || valid_json(*obs.metadata_json));
  }
  for (const auto& error : page->errors) require(!error.reason.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)lfh::parse_health(body);
  (void)lfh::parse_projects(body);
  check_scores(lfh::parse_scores_v3(body));
  check_scores(lfh::parse_scores_v3(body, std::string("cursor")));
  check_scores(lfh::parse_scores_legacy(body, 1));
  check_observations(lfh::parse_observations_v2(body));
  check_observations(lfh::parse_observations_legacy(body, 3));
  require(valid_json(lfh::json_text_from_raw_string(std::string(body))));

  lfh::json_scan::Document doc;
  std::string error;
  if (lfh::json_scan::scan_children(body, 1000, doc, error)) {
    if (lfh::json_scan::has_broken_unicode(body)) {
      require(!lfh::json_scan::has_broken_unicode(lfh::json_scan::repair_unicode(body)));
    }
    // Differential check: the fast string decoder agrees with nlohmann on repaired text.
    for (const auto& child : doc.children) {
      if (child.value.empty() || child.value.front() != '"') continue;
      auto reference = nlohmann::json::parse(lfh::json_scan::repair_unicode(child.value), nullptr,
                                             /*allow_exceptions=*/false);
      require(reference.is_string());
      require(reference.get<std::string>() == lfh::json_scan::decode_string(child.value));
    }
  }
  return 0;
}
