#include "service/notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace lfh {

Notifier Notifier::from_environment() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  return Notifier(path ? path : "");
}

bool Notifier::send(std::string_view message) const {
  if (socket_path_.empty()) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&addr), len);
  ::close(fd);
  return n == static_cast<ssize_t>(message.size());
}

bool Notifier::status(std::string_view text) const {
  std::string msg = "STATUS=";
  // One line: a newline would end the STATUS= assignment.
  for (char c : text) msg.push_back(c == '\n' ? ' ' : c);
  return send(msg);
}

std::optional<Millis> Notifier::watchdog_interval() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (!usec) return std::nullopt;
  if (const char* pid = std::getenv("WATCHDOG_PID")) {
    if (std::strtol(pid, nullptr, 10) != static_cast<long>(::getpid())) return std::nullopt;
  }
  char* end = nullptr;
  unsigned long long v = std::strtoull(usec, &end, 10);
  if (end == usec || *end != '\0' || v == 0) return std::nullopt;
  return Millis(static_cast<long long>(v / 1000));
}

}  // namespace lfh
