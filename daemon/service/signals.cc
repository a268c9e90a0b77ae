#include "service/signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace lfh {
namespace {

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR2);  // used internally to wake the watcher on shutdown
  return set;
}

}  // namespace

void SignalWatcher::install() {
  if (installed_) return;
  installed_ = true;
  sigset_t set = handled_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::jthread([this, set](std::stop_token self) {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (self.stop_requested()) return;
      if (sig == SIGHUP) {
        reload_.store(true);
        continue;
      }
      if (sig == SIGUSR2) continue;
      if (stop_.stop_requested()) _exit(128 + sig);  // second request: the user insists
      stop_signal_.store(sig);
      stop_.request_stop();
    }
  });
}

SignalWatcher::~SignalWatcher() {
  if (!installed_) return;
  thread_.request_stop();
  pthread_kill(thread_.native_handle(), SIGUSR2);
}

}  // namespace lfh
