// Clang's thread-safety annotations (-Wthread-safety), as macros that vanish on other compilers,
// and a mutex the analysis understands (libstdc++'s std::mutex carries no annotations).
//
// Usage: a member `int n_ GUARDED_BY(mu_);`, a function `void f() REQUIRES(mu_);`, and
// `MutexLock lock(mu_);` to hold it for a scope. Clang then refuses code that touches `n_`
// without holding `mu_`.
#pragma once

#include <mutex>

#if defined(__clang__)
#define LFH_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define LFH_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) LFH_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY LFH_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) LFH_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) LFH_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) LFH_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) LFH_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) LFH_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) LFH_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS LFH_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace lfh {

/// std::mutex with the capability annotation. Meets BasicLockable, so
/// std::condition_variable_any can wait on it (through MutexLock::mutex()).
class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

/// Holds a Mutex for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace lfh
