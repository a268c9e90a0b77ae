// `lfharvest scores`: what the local cache holds, to look at before writing an export command:
// score names, sources, data types, values and counts (store/score_catalog.h). Text or --json.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/app_support.h"
#include "app/commands.h"
#include "app/exit_codes.h"
#include "store/score_catalog.h"

namespace lfh {
namespace {

std::string number(double v) {
  return fmt::format("{}", v);
}

std::string text_report(const std::vector<ScoreCatalogEntry>& catalog) {
  if (catalog.empty()) return "no trace scores in the cache yet (run `lfharvest sync`)\n";
  std::size_t name_width = 4;
  for (const auto& e : catalog) name_width = std::max(name_width, e.name.size());
  std::string out =
      fmt::format("{:<{}}  {:<10}  {:<11}  {:>7}  {:>7}  {:>7}  {}\n", "name", name_width, "source",
                  "type", "scores", "traces", "fetched", "values");
  for (const auto& e : catalog) {
    std::string values;
    for (std::size_t i = 0; i < e.values.size(); ++i) {
      values += fmt::format("{}{} ({})", i ? ", " : "", e.values[i].value, e.values[i].scores);
    }
    if (values.empty() && e.min && e.max) {
      values = *e.min == *e.max ? number(*e.min) : number(*e.min) + " .. " + number(*e.max);
    }
    if (values.empty()) values = "-";
    out += fmt::format("{:<{}}  {:<10}  {:<11}  {:>7}  {:>7}  {:>7}  {}\n", e.name, name_width,
                       e.source, e.data_type.empty() ? "-" : e.data_type, e.scores, e.traces,
                       e.fetched_traces, values);
  }
  out +=
      "(values are case-sensitive in `export --value`; `--source` takes any case; only scores "
      "of traces are counted)\n";
  return out;
}

std::string json_report(const std::vector<ScoreCatalogEntry>& catalog) {
  auto scores = nlohmann::ordered_json::array();
  for (const auto& e : catalog) {
    nlohmann::ordered_json item;
    item["name"] = e.name;
    item["source"] = e.source;
    item["data_type"] =
        e.data_type.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(e.data_type);
    item["scores"] = e.scores;
    item["traces"] = e.traces;
    item["fetched_traces"] = e.fetched_traces;
    item["min"] = e.min ? nlohmann::ordered_json(*e.min) : nlohmann::ordered_json();
    item["max"] = e.max ? nlohmann::ordered_json(*e.max) : nlohmann::ordered_json();
    auto values = nlohmann::ordered_json::array();
    for (const auto& v : e.values) values.push_back({{"value", v.value}, {"scores", v.scores}});
    item["values"] = std::move(values);
    scores.push_back(std::move(item));
  }
  nlohmann::ordered_json out;
  out["scores"] = std::move(scores);
  return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace

int cmd_scores(const CommonOptions& common, const ScoresOptions& options) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/false, &code);
  if (!config) return code;
  auto catalog = read_score_catalog(config->database);
  if (!catalog.ok()) {
    print_error("scores: " + catalog.status().message());
    return exit_code_for(catalog.status());
  }
  const std::string report = options.json ? json_report(*catalog) : text_report(*catalog);
  std::fwrite(report.data(), 1, report.size(), stdout);
  return kExitOk;
}

}  // namespace lfh
