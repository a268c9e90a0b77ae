// Process exit codes (sysexits.h values, so shell scripts and systemd can tell them apart).
#pragma once

#include "core/status.h"

namespace lfh {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,       // anything not listed below
  kExitUsage = 64,        // bad command line
  kExitUnavailable = 69,  // server unreachable after the retry policy
  kExitIoError = 74,      // database or output file unusable
  kExitTempFail = 75,     // sync stopped with traces waiting for a retry further than --max-wait
  kExitNoPerm = 77,       // the server refused the keys (401/403)
  kExitConfig = 78,       // invalid configuration or secret
};

/// The exit code for a fatal Status.
int exit_code_for(const Status& status);

}  // namespace lfh
