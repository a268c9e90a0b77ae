// What scores the local cache holds: one row per (name, source, data type) with counts, and the
// values of label-like scores. The one query behind `lfharvest scores` and the explanations of
// an export that matched nothing (export/explain_empty.h).
//
// Only scores an export can use are counted: not deleted, and attached to a trace (session and
// dataset-run scores never select a record). Read-only; safe while `lfharvest run` writes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace lfh {

struct ScoreValueCount {
  std::string value;  // BOOLEAN: "true" / "false" (both API generations); CATEGORICAL: the label
  std::size_t scores = 0;
};

struct ScoreCatalogEntry {
  std::string name;
  std::string source;     // ANNOTATION | API | EVAL
  std::string data_type;  // NUMERIC | CATEGORICAL | BOOLEAN | TEXT | CORRECTION; "" when unknown
  std::size_t scores = 0;
  std::size_t traces = 0;          // distinct traces they point at
  std::size_t fetched_traces = 0;  // of those, fetched completely (state done): exportable now
  std::optional<double> min;       // of the numeric values, when there are any
  std::optional<double> max;
  /// CATEGORICAL and BOOLEAN only: every value with its count, most frequent first.
  std::vector<ScoreValueCount> values;
};

/// Ordered by name, source, data type. kIo when the file cannot be opened; kCorrupt when it is
/// not an lfharvest database.
Result<std::vector<ScoreCatalogEntry>> read_score_catalog(const std::string& db_path);

}  // namespace lfh
