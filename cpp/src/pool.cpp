#include "tapegrad/support/pool.hpp"

#include <memory>

namespace tg::pool_detail {

__attribute__((tls_model("initial-exec"))) thread_local ThreadPool* tl_pool = nullptr;
// Owns the pool so that its blocks return to the system at thread exit.
static thread_local std::unique_ptr<ThreadPool> tl_pool_owner;

ThreadPool::~ThreadPool() {
  for (size_t c = 0; c < kClasses; ++c) {
    while (FreeBlock* b = heads[c]) {
      heads[c] = b->next;
      ::operator delete(b);
    }
  }
  if (tl_pool == this) tl_pool = nullptr;
}

ThreadPool& create_pool() {
  tl_pool_owner = std::make_unique<ThreadPool>();
  tl_pool = tl_pool_owner.get();
  return *tl_pool;
}

}  // namespace tg::pool_detail
