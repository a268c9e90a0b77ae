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
  /// Read and convert everything, count what would be written and skipped, write nothing: no
  /// data file, no manifest, no temp file, no export state.
  bool dry_run = false;
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

  // Conversation checks of the chat formats (counted whatever the policy did with them).
  std::size_t repeated_answers = 0;  // the last input message repeats the output
  std::size_t non_alternating = 0;   // consecutive system/user/assistant messages
  std::size_t duplicates = 0;        // records identical to an earlier one (dropped or not)
  /// Approximate tokens of the written records (bytes / 4, a rough rule for English text in
  /// JSON; enough to spot records past a context window, not a tokenizer's count).
  std::uint64_t approx_tokens = 0;
  std::uint64_t approx_tokens_max = 0;  // of the largest record

  // validation_fraction: the records that went to the validation file (not in records).
  std::size_t validation_records = 0;
  std::uint64_t validation_bytes = 0;
  std::string validation_path;  // empty without a split
  std::string validation_manifest_path;
  std::string validation_sha256;

  bool dry_run = false;
  /// Standard output was closed by its reader (export --out - | head): the export stopped
  /// there, which is a normal end; a named export's state is not updated.
  bool output_closed = false;
  /// Incremental run without a new or changed record: no file was written.
  bool nothing_new = false;

  std::size_t skipped() const;
};

/// The file beside path with tag before the extension: ("out/good.jsonl", "validation") ->
/// "out/good.validation.jsonl"; no extension: "out/good.validation".
std::string sibling_path(const std::string& path, const std::string& tag);

/// Whether a trace goes to the validation file: the first 64 bits of SHA-256(trace_id), as a
/// fraction of 2^64, are below fraction. Stable across runs, databases and incremental exports.
bool in_validation_split(const std::string& trace_id, double fraction);

/// Runs one export. A named --incremental run writes its new and changed records to a delta
/// file beside the full one (sibling_path(out, "delta-NNNNNN"), NNNNNN its run id) and never
/// touches out itself; with nothing new it writes no file. Errors: kConfig (bad spec: unknown
/// format, pick, dialect or policy, min > max, unparseable since/until, --incremental without a
/// name, a split to standard output), kIo (database or output file), kCorrupt/kFatal
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
