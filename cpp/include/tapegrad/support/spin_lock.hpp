// SpinLock: a lock for critical sections of a few loads and stores, taken
// on every op's path (the buffer cache's free lists, a leaf's accumulator
// lookup). A pthread mutex's lock and unlock are calls into libc; this is
// an exchange and a store. Waiters yield to the scheduler after a short spin
// (the holder may be descheduled on a shared VM). BasicLockable: use it with
// std::lock_guard.
#pragma once

#include <atomic>
#include <thread>

namespace tg {

class SpinLock {
  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

 public:
  void lock() noexcept {
    for (int spins = 0; flag_.exchange(true, std::memory_order_acquire); ++spins) {
      while (flag_.load(std::memory_order_relaxed)) {
        if (spins++ < 64) cpu_relax();
        else std::this_thread::yield();
      }
    }
  }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> flag_{false};
};

}  // namespace tg
