// A per-thread free-list pool for the small objects the tape creates by the
// million (Variables, Storages with inline data, nodes). A chain of scalar
// ops allocates and frees thousands of them per step; malloc's per-thread
// caches hold only a few of each size, so without the pool most of the time
// of a scalar op went to malloc/free. The pool recycles blocks; it owns no
// object (each is destroyed by its shared_ptr as usual).
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace tg {

void* pool_allocate(size_t bytes);
void pool_deallocate(void* p, size_t bytes) noexcept;

template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() noexcept = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(pool_allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { pool_deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const PoolAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const PoolAllocator<U>&) const noexcept { return false; }
};

template <class T, class... Args>
std::shared_ptr<T> make_pooled(Args&&... args) {
  return std::allocate_shared<T>(PoolAllocator<T>(), std::forward<Args>(args)...);
}

}  // namespace tg
