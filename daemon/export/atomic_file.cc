#include "export/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <utility>

#include "core/log.h"

namespace lfh {
namespace {

Status errno_status(std::string_view what, const std::string& path, int err) {
  return Status::Error(ErrorKind::kIo, fmt::format("{} {}: {}", what, path, std::strerror(err)))
      .with_detail(err);
}

// Splits "dir/name" into ("dir", "name"); a bare name lives in ".".
std::pair<std::string, std::string> split_path(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return {".", path};
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

std::string random_suffix() {
  // The name only has to be unlikely to collide (O_EXCL catches the rest); it never reaches the
  // output, so it does not affect determinism.
  std::random_device device;
  std::uint64_t value = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  return fmt::format("{:016x}", value);
}

Status fsync_folder(const std::string& folder) {
  int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status("open folder", folder, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems cannot fsync a directory; the rename is still atomic there.
  if (rc != 0 && err != EINVAL && err != ENOTSUP) return errno_status("fsync folder", folder, err);
  return Status::Ok();
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

}  // namespace

FdWriter::FdWriter(int fd, bool owns, std::string name)
    : fd_(fd), owns_(owns), name_(std::move(name)) {
  buffer_.reserve(kBufferBytes);
}

FdWriter::~FdWriter() {
  if (owns_ && fd_ >= 0) ::close(fd_);
}

FdWriter::FdWriter(FdWriter&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      owns_(std::exchange(other.owns_, false)),
      name_(std::move(other.name_)),
      buffer_(std::move(other.buffer_)),
      bytes_(other.bytes_) {}

FdWriter& FdWriter::operator=(FdWriter&& other) noexcept {
  if (this != &other) {
    if (owns_ && fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    owns_ = std::exchange(other.owns_, false);
    name_ = std::move(other.name_);
    buffer_ = std::move(other.buffer_);
    bytes_ = other.bytes_;
  }
  return *this;
}

Status FdWriter::write_all(const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd_, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("write", name_, errno);
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Status FdWriter::write(std::string_view data) {
  if (fd_ < 0) return Status::Error(ErrorKind::kIo, fmt::format("write {}: closed", name_));
  bytes_ += data.size();
  if (buffer_.size() + data.size() <= kBufferBytes) {
    buffer_.append(data);
    return Status::Ok();
  }
  if (Status s = flush(); !s.ok()) return s;
  // A large piece (a multi-megabyte record) goes straight out instead of through the buffer.
  if (data.size() >= kBufferBytes) return write_all(data.data(), data.size());
  buffer_.append(data);
  return Status::Ok();
}

Status FdWriter::flush() {
  if (buffer_.empty()) return Status::Ok();
  Status s = write_all(buffer_.data(), buffer_.size());
  buffer_.clear();
  return s;
}

Status FdWriter::sync() {
  if (Status s = flush(); !s.ok()) return s;
  if (::fsync(fd_) != 0) return errno_status("fsync", name_, errno);
  return Status::Ok();
}

Status FdWriter::close() {
  Status s = flush();
  if (owns_ && fd_ >= 0) {
    if (::close(fd_) != 0 && s.ok()) s = errno_status("close", name_, errno);
    fd_ = -1;
  }
  return s;
}

std::string temp_file_prefix(const std::string& target_path) {
  return fmt::format(".{}.tmp.", split_path(target_path).second);
}

AtomicFile::AtomicFile(std::string target, std::string temp, FdWriter writer)
    : target_(std::move(target)), temp_(std::move(temp)), writer_(std::move(writer)) {}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : target_(std::move(other.target_)),
      temp_(std::move(other.temp_)),
      writer_(std::move(other.writer_)),
      done_(std::exchange(other.done_, true)) {}

AtomicFile::~AtomicFile() {
  if (!done_) {
    (void)writer_.close();
    ::unlink(temp_.c_str());
  }
}

Result<AtomicFile> AtomicFile::create(const std::string& target_path) {
  if (target_path.empty() || target_path.back() == '/') {
    return Status::Error(ErrorKind::kConfig,
                         fmt::format("output path '{}' names no file", target_path));
  }
  auto [folder, name] = split_path(target_path);
  const std::string prefix =
      fmt::format("{}/{}{}.", folder, temp_file_prefix(target_path), ::getpid());
  for (int attempt = 0;; ++attempt) {
    std::string temp = prefix + random_suffix();
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd >= 0) return AtomicFile(target_path, temp, FdWriter(fd, true, temp));
    if (errno != EEXIST || attempt >= 8) {
      return errno_status("create temp file for", target_path, errno);
    }
  }
}

Status AtomicFile::commit() {
  if (done_) return Status::Error(ErrorKind::kFatal, "AtomicFile committed twice");
  Status s = writer_.sync();
  if (s.ok()) s = writer_.close();
  if (s.ok() && ::rename(temp_.c_str(), target_.c_str()) != 0) {
    s = errno_status("rename into place", target_, errno);
  }
  if (!s.ok()) {
    (void)writer_.close();
    ::unlink(temp_.c_str());
    done_ = true;
    return s;
  }
  done_ = true;
  return fsync_folder(split_path(target_).first);
}

Result<std::size_t> remove_stale_temp_files(const std::string& target_path) {
  auto [folder, name] = split_path(target_path);
  const std::string prefix = temp_file_prefix(target_path);
  std::unique_ptr<DIR, DirCloser> dir(::opendir(folder.c_str()));
  if (!dir) {
    // A missing folder has no stale files; creating the output reports the real problem.
    if (errno == ENOENT) return std::size_t{0};
    return errno_status("open folder", folder, errno);
  }
  std::size_t removed = 0;
  const pid_t self = ::getpid();
  while (const dirent* entry = ::readdir(dir.get())) {
    std::string_view file = entry->d_name;
    if (file.substr(0, prefix.size()) != prefix) continue;
    // The rest must be "<pid>.<suffix>".
    std::string_view rest = file.substr(prefix.size());
    auto dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot + 1 == rest.size()) continue;
    long long pid = 0;
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + dot, pid);
    if (ec != std::errc() || ptr != rest.data() + dot || pid <= 0) continue;
    if (pid == self) continue;
    // kill(pid, 0) fails with ESRCH only when no such process exists (EPERM: alive, not ours).
    // A pid beyond pid_t cannot be alive.
    const bool alive =
        pid <= INT32_MAX && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH);
    if (alive) continue;
    std::string path = folder + "/" + std::string(file);
    if (::unlink(path.c_str()) == 0) {
      ++removed;
      log::info("removed stale temp file {} of an interrupted export", path);
    } else if (errno != ENOENT) {
      return errno_status("remove stale temp file", path, errno);
    }
  }
  return removed;
}

Status write_file_atomically(const std::string& path, std::string_view content) {
  auto file = AtomicFile::create(path);
  if (!file.ok()) return file.status();
  if (Status s = file->write(content); !s.ok()) return s;
  return file->commit();
}

}  // namespace lfh
