// Thread-safety annotations checked by clang's -Wthread-safety, and a mutex that carries them.
//
// Under clang the macros expand to its thread-safety attributes; under other compilers to
// nothing. libstdc++'s std::mutex carries no capability attributes, so state that a mutex guards
// uses gimbal::Mutex and gimbal::MutexLock, which do:
//
//   mutable Mutex mu_;
//   std::vector<int> items_ GIMBAL_GUARDED_BY(mu_);
//   void Add(int x) { MutexLock lock(mu_); items_.push_back(x); }
//
// Check the annotated libraries with scripts/thread-safety-check.sh (docs/router.md, Implementation
// notes). The GCC build compiles them as plain code.
#pragma once

#include <mutex>

#if defined(__clang__)
#define GIMBAL_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define GIMBAL_THREAD_ANNOTATION(x)
#endif

// A type that is a lock (a capability named `x` in the analysis's messages).
#define GIMBAL_CAPABILITY(x) GIMBAL_THREAD_ANNOTATION(capability(x))
// An RAII type that holds a capability from construction to destruction.
#define GIMBAL_SCOPED_CAPABILITY GIMBAL_THREAD_ANNOTATION(scoped_lockable)
// A field read or written only while holding `x`.
#define GIMBAL_GUARDED_BY(x) GIMBAL_THREAD_ANNOTATION(guarded_by(x))
// A pointer whose pointee is read or written only while holding `x`.
#define GIMBAL_PT_GUARDED_BY(x) GIMBAL_THREAD_ANNOTATION(pt_guarded_by(x))
// A function its callers call holding (REQUIRES) or not holding (EXCLUDES) the capabilities.
#define GIMBAL_REQUIRES(...) GIMBAL_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define GIMBAL_EXCLUDES(...) GIMBAL_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// A function that acquires or releases the capabilities (or the object's own, given none).
#define GIMBAL_ACQUIRE(...) GIMBAL_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define GIMBAL_RELEASE(...) GIMBAL_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// A function the analysis does not look into (say why where it is used).
#define GIMBAL_NO_THREAD_SAFETY_ANALYSIS GIMBAL_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace gimbal {

// std::mutex as a capability. Not recursive.
class GIMBAL_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() GIMBAL_ACQUIRE() { mu_.lock(); }
  void unlock() GIMBAL_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class GIMBAL_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) GIMBAL_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() GIMBAL_RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace gimbal
