// Process exit codes (sysexits.h values, so shell scripts and systemd can tell them apart).
#pragma once

#include "core/status.h"

namespace lfh {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,       // anything not listed below
  kExitUsage = 64,        // bad command line
  kExitEmptyExport = 65,  // export --fail-empty wrote no record (EX_DATAERR)
  kExitUnavailable = 69,  // server unreachable after the retry policy
  kExitIoError = 74,      // database or output file unusable
  kExitTempFail = 75,     // sync stopped with traces waiting for a retry further than --max-wait
  kExitNoPerm = 77,       // the server refused the keys (401/403)
  kExitConfig = 78,       // invalid configuration or secret
  // 128 + N: stopped by signal N (130 SIGINT, 143 SIGTERM), the convention of shells. Only
  // `sync`, `reconcile` and `check` use it; the service (`run`) exits 0 on SIGTERM.
};

/// The exit code for a fatal Status: kAuth 77, kConfig 78, kIo/kCorrupt 74 (a database of a
/// newer schema or of another program is kCorrupt), kRetryable/kRateLimited/kNotFound 69 (the
/// server could not be reached or did not answer usefully), anything else 1.
int exit_code_for(const Status& status);

/// 128 + signal: what a shell reports for a command stopped by that signal.
int exit_code_for_signal(int signal_number);

}  // namespace lfh
