// `lfharvest export`: scored traces from the local database -> a dataset file (docs/formats.md).
//
// run_export() streams: one row is read, converted and written at a time, so memory grows with
// the largest record, never with the number of records. The output is written atomically
// (export/atomic_file.h) and described by a manifest beside it (PATH.manifest.json, written
// atomically after the data file). The same database and request give a byte-identical data file.
//
// The database is only read (read-only connection, short read transactions; see
// store/dataset_reader.h), except for named exports (spec.name set): they record their run and
// the hash of every record they wrote (schema/0002_exports.sql) through short read-write
// transactions, which is what --incremental compares against. Safe to run while `lfharvest run`
// writes the same database.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <stop_token>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "core/status.h"

namespace lfh {

/// Counts while an export runs (for a progress display).
struct ExportProgress {
  std::size_t records = 0;    // written
  std::size_t skipped = 0;    // not convertible
  std::size_t unchanged = 0;  // incremental: same as last run, not written
  std::uint64_t bytes = 0;    // written so far
  double seconds = 0;
};

struct ExportRequest {
  ExportSpec spec;  // format, out ("-" = standard output), filters, pick, positive, name...
  std::string db_path;
  /// Show a progress line on standard error while exporting, when it is a terminal (and the data
  /// does not go to that same terminal). At most four updates a second, erased at the end.
  bool progress_on_tty = false;
  /// Where "-" writes; tests pass a pipe or file.
  int stdout_fd = STDOUT_FILENO;
  /// Called after every record (written, skipped or unchanged); optional.
  std::function<void(const ExportProgress&)> on_progress;
};

struct ExportSummary {
  std::size_t records = 0;    // written to the file
  std::size_t unchanged = 0;  // incremental: identical to the last run's, not written
  std::map<std::string, std::size_t> skipped_by_reason;  // code -> count (export/formats.h)
  std::size_t unfetched_traces = 0;  // matching scores whose trace is not fetched yet
  std::uint64_t bytes = 0;
  double seconds = 0;         // monotonic, from the injected Clock
  std::string out_path;       // "-" for standard output
  std::string manifest_path;  // empty for standard output
  std::string sha256;         // of the data file's bytes
  std::size_t stale_temp_files_removed = 0;

  std::size_t skipped() const;
};

/// Runs one export. Errors: kConfig (bad spec: unknown format or pick, min > max, unparseable
/// since/until, --incremental without a name), kIo (database or output file), kCorrupt/kFatal
/// (not an lfharvest database, or one newer than this program), kCancelled (stop requested; the
/// target is left as it was). On any error the target and its manifest are untouched and no temp
/// file is left behind.
Result<ExportSummary> run_export(const ExportRequest& request, Clock& clock, std::stop_token stop);

/// "exported 120 records (1.4 MiB) to good.jsonl in 0.3 s; skipped 3 (missing_output: 2,
/// no_generation: 1)" plus unchanged and not-yet-fetched counts when there are any.
std::string format_summary_line(const ExportSummary& summary);

/// The progress line shown on a terminal: "exporting: 1200 records, 3 skipped, 14.2 MiB, 2.1 s".
std::string format_progress_line(const ExportProgress& progress);

/// "512 B", "1.5 KiB", "14.2 MiB", "3.0 GiB".
std::string format_bytes(std::uint64_t bytes);

}  // namespace lfh
