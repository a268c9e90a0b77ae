#include "store/writer_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace lfh {
namespace {

// The holder's PID as it wrote it: digits up to a newline. 0 when the file is empty (the
// holder took the lock but has not written yet) or holds anything else.
long read_holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return 0;
  char* end = nullptr;
  const long pid = std::strtol(buf, &end, 10);
  return end != buf && pid > 0 ? pid : 0;
}

}  // namespace

std::string WriterLock::path_for(const std::string& database) {
  return database + ".lock";
}

Result<WriterLock> WriterLock::acquire(const std::string& database) {
  std::string path = path_for(database);
  // O_CLOEXEC: a child process must not keep the lock alive after this process has gone.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Status::Error(ErrorKind::kIo, fmt::format("cannot open the writer lock {}: {}", path,
                                                     std::strerror(errno)));
  }
  WriterLock lock(fd, path);  // closes the descriptor on every early return
  // flock, not fcntl: an fcntl lock is dropped when *any* descriptor of the file is closed by
  // this process, and it is per process rather than per open file.
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) {
      const long holder = read_holder_pid(fd);
      std::string who = holder > 0 ? fmt::format("PID {}", holder) : "another process";
      return Status::Error(ErrorKind::kRetryable,
                           fmt::format("another lfharvest ({}) is already writing this database "
                                       "(lock {}); `status` and `export` work meanwhile, "
                                       "writers run one at a time",
                                       who, path))
          .with_detail(holder);
    }
    return Status::Error(ErrorKind::kIo,
                         fmt::format("cannot lock {}: {}", path, std::strerror(errno)));
  }
  // Holding the lock now: record who holds it for the next one who asks. A failure to write
  // only costs the PID in someone else's message, never the lock itself.
  const std::string pid_line = fmt::format("{}\n", static_cast<long>(::getpid()));
  if (::ftruncate(fd, 0) == 0) {
    (void)!::pwrite(fd, pid_line.data(), pid_line.size(), 0);
  }
  return lock;
}

WriterLock::WriterLock(WriterLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

WriterLock& WriterLock::operator=(WriterLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

WriterLock::~WriterLock() {
  // The file stays: removing it would race with a process that has just opened it and is about
  // to lock the unlinked inode. Closing releases the lock.
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace lfh
