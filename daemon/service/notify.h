// The systemd notify protocol (sd_notify(3)), spoken directly: one datagram per message to the
// AF_UNIX socket named by $NOTIFY_SOCKET. Without that variable every call is a no-op, so the
// same binary runs in a terminal, in tests and under systemd.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace lfh {

class Notifier {
 public:
  /// Reads $NOTIFY_SOCKET ("/path" or "@abstract").
  static Notifier from_environment();
  explicit Notifier(std::string socket_path) : socket_path_(std::move(socket_path)) {}

  bool enabled() const { return !socket_path_.empty(); }
  /// Sends one message such as "READY=1" or "STATUS=...". Returns false when it could not be
  /// sent (never fatal: the service works without its supervisor).
  bool send(std::string_view message) const;

  bool ready() const { return send("READY=1"); }
  bool status(std::string_view text) const;
  bool watchdog() const { return send("WATCHDOG=1"); }
  bool stopping() const { return send("STOPPING=1"); }
  bool reloading() const { return send("RELOADING=1"); }

  /// The watchdog interval from $WATCHDOG_USEC when $WATCHDOG_PID is unset or this process.
  static std::optional<Millis> watchdog_interval();

 private:
  std::string socket_path_;
};

}  // namespace lfh
