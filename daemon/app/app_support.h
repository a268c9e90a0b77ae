// Shared steps of the commands: configuration, logging, connecting with the retry policy.
#pragma once

#include <stop_token>
#include <string>

#include "app/commands.h"
#include "app/runtime.h"
#include "config/config.h"
#include "store/writer_lock.h"

namespace lfh {

/// Loads the configuration, sets the log level, registers the secret for masking. On failure
/// prints the error and returns nullopt; *exit_code is then set.
std::optional<Config> load_for_command(const CommonOptions& common, bool need_secret,
                                       int* exit_code);

/// Takes the one-writer lock beside config.database (sync, run, retry, reconcile). On failure
/// prints the error and returns nullopt; *exit_code is then kExitTempFail (another writer holds
/// it: try again later) or kExitIoError (the lock file is unusable).
std::optional<WriterLock> take_writer_lock(const Config& config, int* exit_code);

/// engine.connect() with capped backoff for transient failures, giving up after max_attempts
/// or when the next wait would exceed max_wait. Copies the detected API generation to the
/// maintenance client. *waiting (optional) is set when it stopped because the next wait would
/// exceed max_wait (the retry policy is not exhausted: a later run may succeed).
Status connect_with_retry(Runtime& rt, Millis max_wait, std::stop_token stop,
                          bool* waiting = nullptr);

/// A one-line progress display on a terminal (stderr), nothing otherwise.
class ProgressLine {
 public:
  ProgressLine();
  ~ProgressLine();
  void update(const PassProgress& p);
  void clear();

 private:
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace lfh
