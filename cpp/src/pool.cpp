#include "tapegrad/pool.hpp"

#include <memory>
#include <vector>

namespace tg {

namespace {

constexpr size_t kGranule = 16;
constexpr size_t kClasses = 64;  // blocks up to 1 KiB are pooled
constexpr size_t kMaxCached = 1 << 16;  // per class and thread: bounds what a freed graph keeps

struct FreeBlock {
  FreeBlock* next;
};

struct ThreadPool {
  FreeBlock* heads[kClasses] = {};
  size_t counts[kClasses] = {};
  ~ThreadPool() {
    for (size_t c = 0; c < kClasses; ++c) {
      while (FreeBlock* b = heads[c]) {
        heads[c] = b->next;
        ::operator delete(b);
      }
    }
  }
};

// The hot path reads a plain pointer in initial-exec TLS (a direct
// fs-relative load; the default model for a shared library calls
// __tls_get_addr on every access). The owner frees the pool at thread exit.
__attribute__((tls_model("initial-exec"))) thread_local ThreadPool* tl_pool = nullptr;
thread_local std::unique_ptr<ThreadPool> tl_pool_owner;

ThreadPool& local_pool() {
  if (__builtin_expect(tl_pool == nullptr, 0)) {
    tl_pool_owner = std::make_unique<ThreadPool>();
    tl_pool = tl_pool_owner.get();
  }
  return *tl_pool;
}

inline size_t size_class(size_t bytes) { return (bytes + kGranule - 1) / kGranule; }

}  // namespace

void* pool_allocate(size_t bytes) {
  size_t c = size_class(bytes);
  if (c >= kClasses) return ::operator new(bytes);
  ThreadPool& p = local_pool();
  if (FreeBlock* b = p.heads[c]) {
    p.heads[c] = b->next;
    --p.counts[c];
    return b;
  }
  return ::operator new(c * kGranule);
}

void pool_deallocate(void* ptr, size_t bytes) noexcept {
  size_t c = size_class(bytes);
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
