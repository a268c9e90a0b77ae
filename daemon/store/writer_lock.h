// One writer per database: `sync`, `run`, `retry` and `reconcile` hold an exclusive lock on a
// file beside the database (`<database>.lock`) for as long as they run. Readers (`status`,
// `export`, sqlite3) never take it: SQLite's WAL already lets them read while a writer runs.
#pragma once

#include <string>

#include "core/status.h"

namespace lfh {

/// An exclusive flock(2) on `<database>.lock`, held from acquire() until the object is
/// destroyed. The kernel releases it when the process dies, however it dies (kill -9 included),
/// so a lock file left on disk is never stale: only a live process can hold the lock.
///
/// acquire() never waits. The descriptor is close-on-exec, so child processes never inherit the
/// lock. Movable, not copyable; one per database per process.
class WriterLock {
 public:
  /// The lock file for a database path.
  static std::string path_for(const std::string& database);

  /// Takes the lock for `database` and writes this process's PID into the lock file (one line).
  /// Errors: kRetryable when another live process holds it (detail() = the holder's PID as it
  /// wrote it, 0 when it has not yet; the message names the PID and the lock file), kIo when
  /// the lock file cannot be opened or locked (message names the file and the reason). On
  /// failure nothing is held and the file's content is unchanged.
  static Result<WriterLock> acquire(const std::string& database);

  WriterLock(WriterLock&& other) noexcept;
  WriterLock& operator=(WriterLock&& other) noexcept;
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
  ~WriterLock();

  const std::string& path() const { return path_; }

 private:
  WriterLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

}  // namespace lfh
