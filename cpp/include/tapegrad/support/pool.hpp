// A per-thread free-list pool for the small objects the tape creates by the
// million (Variables, Storages with inline data, nodes). A chain of scalar
// ops allocates and frees thousands of them per step; malloc's per-thread
// caches hold only a few of each size, so without the pool most of the time
// of a scalar op went to malloc/free. The pool recycles blocks; it owns no
// object (make_ref in ref.hpp allocates from it and its Refs free to it).
#pragma once

#include <cstddef>
#include <new>

namespace tg {

namespace pool_detail {
constexpr size_t kGranule = 16;
constexpr size_t kClasses = 64;         // blocks up to 1 KiB are pooled
constexpr size_t kMaxCached = 1 << 14;  // per class and thread: bounds what a freed graph keeps (a few MB)
struct FreeBlock {
  FreeBlock* next;
};
struct ThreadPool {
  FreeBlock* heads[kClasses] = {};
  size_t counts[kClasses] = {};
  ~ThreadPool();
};
// initial-exec TLS: a direct fs-relative load on the hot path (the default
// model for a shared library calls __tls_get_addr on every access).
extern __attribute__((tls_model("initial-exec"))) thread_local ThreadPool* tl_pool;
ThreadPool& create_pool();
inline ThreadPool& local_pool() {
  ThreadPool* p = tl_pool;
  return __builtin_expect(p != nullptr, 1) ? *p : create_pool();
}
}  // namespace pool_detail

// always_inline: on every op's path, and the size is a constant there.
// Building with -DTG_NO_POOL sends every block to operator new/delete, so
// that AddressSanitizer sees a use after free of a Variable, Storage or
// node (the pool would recycle the block first).
__attribute__((always_inline)) inline void* pool_allocate(size_t bytes) {
#ifdef TG_NO_POOL
  return ::operator new(bytes);
#endif
  using namespace pool_detail;
  size_t c = (bytes + kGranule - 1) / kGranule;
  if (c >= kClasses) return ::operator new(bytes);
  ThreadPool& p = local_pool();
  if (FreeBlock* b = p.heads[c]) {
    p.heads[c] = b->next;
    --p.counts[c];
    return b;
  }
  return ::operator new(c * kGranule);
}

__attribute__((always_inline)) inline void pool_deallocate(void* ptr, size_t bytes) noexcept {
#ifdef TG_NO_POOL
  ::operator delete(ptr);
  return;
#endif
  using namespace pool_detail;
  size_t c = (bytes + kGranule - 1) / kGranule;
  if (c >= kClasses) {
    ::operator delete(ptr);
    return;
  }
  ThreadPool& p = local_pool();
  if (p.counts[c] >= kMaxCached) {
    ::operator delete(ptr);
    return;
  }
  auto* b = static_cast<FreeBlock*>(ptr);
  b->next = p.heads[c];
  p.heads[c] = b;
  ++p.counts[c];
}

}  // namespace tg
