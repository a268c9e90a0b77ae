#include "export/explain_empty.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

namespace lfh {
namespace {

std::string lower(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

std::string upper(std::string text) {
  for (char& c : text) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return text;
}

// "a, b, c, ... (12 in all)": long lists are cut so the message stays one readable line.
std::string listing(const std::vector<std::string>& items) {
  constexpr std::size_t kShown = 10;
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < kShown; ++i) {
    out += (i ? ", " : "") + items[i];
  }
  if (items.size() > kShown) out += fmt::format(", ... ({} in all)", items.size());
  return out;
}

std::string quoted_names(const std::vector<std::string>& names) {
  std::vector<std::string> q;
  for (const auto& n : names) q.push_back("'" + n + "'");
  return listing(q);
}

bool is_number(const std::string& v) {
  char* end = nullptr;
  std::strtod(v.c_str(), &end);
  return !v.empty() && end == v.c_str() + v.size();
}

bool is_boolean_word(const std::string& v) {
  const std::string l = lower(v);
  return l == "true" || l == "false";
}

}  // namespace

std::vector<std::string> explain_empty_export(const ExportSpec& spec, const ExportSummary& summary,
                                              const std::vector<ScoreCatalogEntry>& catalog) {
  std::vector<std::string> why;
  if (catalog.empty()) {
    why.push_back("the cache holds no trace scores yet: run `lfharvest sync` first");
    return why;
  }
  std::vector<const ScoreCatalogEntry*> selected;
  for (const auto& e : catalog) selected.push_back(&e);

  if (!spec.score_names.empty()) {
    std::set<std::string> names;
    for (const auto& e : catalog) names.insert(e.name);
    std::vector<std::string> missing;
    for (const auto& n : spec.score_names) {
      if (!names.contains(n)) missing.push_back(n);
    }
    if (missing.size() == spec.score_names.size()) {
      std::string line = fmt::format("no score named {}; names: {}", quoted_names(missing),
                                     listing({names.begin(), names.end()}));
      for (const auto& n : missing) {
        for (const auto& known : names) {
          if (lower(known) == lower(n)) {
            line += fmt::format(" (names are case-sensitive: did you mean '{}'?)", known);
          }
        }
      }
      why.push_back(line);
      return why;
    }
    std::erase_if(selected, [&](const ScoreCatalogEntry* e) {
      return std::find(spec.score_names.begin(), spec.score_names.end(), e->name) ==
             spec.score_names.end();
    });
  }
  const std::string named =
      spec.score_names.empty() ? std::string() : " named " + quoted_names(spec.score_names);

  if (const std::string source = upper(spec.source); !source.empty()) {
    std::map<std::string, std::size_t> sources;
    for (const auto* e : selected) sources[e->source] += e->scores;
    if (!sources.contains(source)) {
      std::vector<std::string> have;
      for (const auto& [s, n] : sources) have.push_back(fmt::format("{} ({})", s, n));
      why.push_back(fmt::format("no {} scores{}; sources: {} (choose with --source)", source, named,
                                listing(have)));
      return why;
    }
    std::erase_if(selected, [&](const ScoreCatalogEntry* e) { return e->source != source; });
  }

  if (!spec.values.empty()) {
    std::map<std::string, std::size_t> values;  // label -> count, over the selected scores
    bool numeric = false;
    for (const auto* e : selected) {
      for (const auto& v : e->values) values[v.value] += v.scores;
      numeric = numeric || e->min.has_value();
    }
    bool any = false;
    std::vector<std::string> hints;
    for (const auto& v : spec.values) {
      if (values.contains(v) || (is_boolean_word(v) && values.contains(lower(v)))) {
        any = true;
        continue;
      }
      // A number may match a NUMERIC score: the summary's other reasons then apply.
      if (numeric && is_number(v)) {
        any = true;
        continue;
      }
      for (const auto& [known, n] : values) {
        if (lower(known) == lower(v)) {
          hints.push_back(fmt::format(
              "no value '{}': values are case-sensitive; did you mean '{}'?", v, known));
        }
      }
      if (v.find(',') != std::string::npos) {
        hints.push_back(
            fmt::format("'{}' is one value; give --value once per value (--value {})", v, [&] {
              std::string out;
              std::size_t start = 0;
              while (start <= v.size()) {
                auto comma = v.find(',', start);
                if (comma == std::string::npos) comma = v.size();
                out += (out.empty() ? "" : " --value ") + v.substr(start, comma - start);
                start = comma + 1;
              }
              return out;
            }()));
      }
    }
    if (!any) {
      if (hints.empty()) {
        std::vector<std::string> have;
        for (const auto& [v, n] : values) have.push_back(fmt::format("{} ({})", v, n));
        hints.push_back(
            fmt::format("no score{} has the value {}; values: {}", named, quoted_names(spec.values),
                        have.empty() ? "none (not a label or boolean score)" : listing(have)));
      }
      why.insert(why.end(), hints.begin(), hints.end());
      return why;
    }
  }

  if (summary.skipped_by_reason.contains("kto_positive_not_set")) {
    std::set<std::string> labels;
    for (const auto* e : selected) {
      if (e->data_type == "CATEGORICAL") {
        for (const auto& v : e->values) labels.insert(v.value);
      }
    }
    why.push_back(fmt::format("kto needs --positive VALUE to label CATEGORICAL scores (values: {})",
                              listing({labels.begin(), labels.end()})));
  }
  if (summary.skipped_by_reason.contains("wrong_score_type")) {
    std::set<std::string> fitting;
    const bool preference = spec.format == "openai-dpo" || spec.format == "trl-dpo";
    for (const auto& e : catalog) {
      const bool fits = preference ? e.data_type == "CORRECTION"
                                   : e.data_type == "BOOLEAN" || e.data_type == "CATEGORICAL";
      if (fits) fitting.insert(e.name);
    }
    why.push_back(
        fmt::format("{} needs {} scores; names with that type: {}", spec.format,
                    preference ? "CORRECTION" : "BOOLEAN or CATEGORICAL",
                    fitting.empty() ? "none" : listing({fitting.begin(), fitting.end()})));
  }
  if (summary.skipped() > 0 && why.empty()) {
    why.push_back(fmt::format(
        "every matching record was skipped (reasons above; docs/formats.md explains each)"));
  }
  if (summary.unfetched_traces > 0) {
    why.push_back(fmt::format("{} matching trace{} not fetched yet: run `lfharvest sync`",
                              summary.unfetched_traces,
                              summary.unfetched_traces == 1 ? " is" : "s are"));
  }
  if (why.empty()) {
    why.push_back(
        "no score matches all the filters together (check --min/--max, --since/--until, "
        "--environment); `lfharvest scores` lists what the cache holds");
  }
  return why;
}

}  // namespace lfh
