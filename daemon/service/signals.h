// Signals as events for the main loop. install() blocks SIGTERM, SIGINT and SIGHUP in the
// calling thread (call it before starting any other thread, so every thread inherits the mask)
// and starts a thread that waits for them with sigwait(): SIGTERM/SIGINT request a stop on the
// stop_source, SIGHUP raises the reload flag. A second SIGINT/SIGTERM while stopping exits at
// once. No work happens in an asynchronous signal handler.
#pragma once

#include <atomic>
#include <stop_token>
#include <thread>

namespace lfh {

class SignalWatcher {
 public:
  SignalWatcher() = default;
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  void install();
  std::stop_token stop_token() const { return stop_.get_token(); }
  std::stop_source& stop_source() { return stop_; }
  /// True once per SIGHUP.
  bool take_reload() { return reload_.exchange(false); }
  bool reload_pending() const { return reload_.load(); }
  /// The signal that requested the stop (0 if none).
  int stop_signal() const { return stop_signal_.load(); }

 private:
  std::stop_source stop_;
  std::atomic<bool> reload_{false};
  std::atomic<int> stop_signal_{0};
  std::jthread thread_;
  bool installed_ = false;
};

}  // namespace lfh
