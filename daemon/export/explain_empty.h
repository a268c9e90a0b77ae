// Why an export wrote no record, in the words a user needs to fix the command: "no score named
// 'qualty'; names: quality, helpful", "values are case-sensitive: did you mean 'Good'?". Built
// from the score catalog (store/score_catalog.h) and the export's own summary.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "export/exporter.h"
#include "store/score_catalog.h"

namespace lfh {

/// One or more sentences, the most likely cause first. Never empty.
std::vector<std::string> explain_empty_export(const ExportSpec& spec, const ExportSummary& summary,
                                              const std::vector<ScoreCatalogEntry>& catalog);

}  // namespace lfh
