// Output files that readers see either whole or not at all.
//
// AtomicFile writes to a temp file in the target's folder, named ".<basename>.tmp.<pid>.<random>"
// and created with O_CREAT|O_EXCL and mode 0640 (the umask removes more), then commit() flushes,
// fsyncs, renames it over the target and fsyncs the folder. If the process dies before the
// rename, the target keeps its old content (or stays absent) and the temp file is left for
// remove_stale_temp_files(). Not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace lfh {

/// Buffered writes to a file descriptor it may own. Write errors are kIo with the path and errno
/// text.
class FdWriter {
 public:
  static constexpr std::size_t kBufferBytes = 1u << 20;

  FdWriter() = default;
  /// owns: close the descriptor in the destructor. name: used in error messages.
  FdWriter(int fd, bool owns, std::string name);
  ~FdWriter();
  FdWriter(FdWriter&&) noexcept;
  FdWriter& operator=(FdWriter&&) noexcept;
  FdWriter(const FdWriter&) = delete;
  FdWriter& operator=(const FdWriter&) = delete;

  Status write(std::string_view data);
  /// Writes the buffer out (write(2) until done, retrying EINTR and short writes).
  Status flush();
  /// Flushes, then fsync(2).
  Status sync();
  /// Flushes and closes an owned descriptor (close errors are reported: NFS reports late).
  Status close();

  std::uint64_t bytes_written() const { return bytes_; }
  int fd() const { return fd_; }

 private:
  Status write_all(const char* data, std::size_t size);
  int fd_ = -1;
  bool owns_ = false;
  std::string name_;
  std::string buffer_;
  std::uint64_t bytes_ = 0;
};

class AtomicFile {
 public:
  /// Creates the temp file beside target_path. kIo when the folder is missing or not writable.
  static Result<AtomicFile> create(const std::string& target_path);

  AtomicFile(AtomicFile&&) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  /// Removes the temp file unless commit() succeeded.
  ~AtomicFile();

  Status write(std::string_view data) { return writer_.write(data); }
  /// Flush, fsync, close, rename over the target, fsync the folder. On failure the temp file is
  /// removed and the target is untouched (except when only the folder fsync failed: the rename
  /// happened but may not be durable yet).
  Status commit();

  const std::string& target_path() const { return target_; }
  const std::string& temp_path() const { return temp_; }
  std::uint64_t bytes_written() const { return writer_.bytes_written(); }

 private:
  AtomicFile(std::string target, std::string temp, FdWriter writer);
  std::string target_;
  std::string temp_;
  FdWriter writer_;
  bool done_ = false;  // committed, or the temp file is already gone
};

/// ".<basename>.tmp." for target_path: the prefix of its temp files.
std::string temp_file_prefix(const std::string& target_path);

/// Deletes temp files of target_path left by processes that no longer exist (the pid in the name
/// is not running). Files of live processes, including this one, are kept: another export of the
/// same target may be running. Returns how many files were removed.
Result<std::size_t> remove_stale_temp_files(const std::string& target_path);

/// Writes content to path atomically (AtomicFile in one go).
Status write_file_atomically(const std::string& path, std::string_view content);

}  // namespace lfh
