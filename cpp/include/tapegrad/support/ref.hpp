// Ref<T>: an owning pointer whose reference counts live in the same
// allocation as the object (make_ref), with the subset of std::shared_ptr's
// interface the code uses, and WeakRef<T> for the one weak reference the
// tape needs (Node::retained, VariableImpl::grad_acc). Variables (Var),
// Storages (StorageRef) and nodes (NodeRef) are held this way.
//
// Why not std::shared_ptr: a scalar op creates and frees a Variable, a
// Storage and a node, and shared_ptr's separate control block (its initialization, the
// out-of-line _M_release, the virtual dispose and destroy calls) were a
// noticeable share of a scalar op. The counts are atomic, as
// shared_ptr's are: sweeps run without the GIL while Python threads hold the
// same Variables. Objects come from the small-object pool (pool.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <utility>

#include "tapegrad/support/pool.hpp"

namespace tg {

// The counts, in a header just before the object (make_ref allocates both
// at once). As in shared_ptr, `weak` counts the weak references plus one for
// all the strong ones together: the object is destroyed when `strong`
// reaches 0 and the memory returned when `weak` does.
struct RefCounts {
  std::atomic<uint32_t> strong{1};
  std::atomic<uint32_t> weak{1};
  uint32_t bytes = 0;  // the whole block (a Ref<Base> may free a derived object)
};
namespace ref_detail {
constexpr size_t kHeader = 16;  // keeps the object 16-byte aligned (pool blocks are)
static_assert(sizeof(RefCounts) <= kHeader, "the counts must fit the header");
template <class T>
inline RefCounts* counts(T* p) noexcept {
  return reinterpret_cast<RefCounts*>(reinterpret_cast<char*>(p) - kHeader);
}
template <class T>
inline void free_block(T* p) noexcept {
  RefCounts* c = counts(p);
  const size_t bytes = c->bytes;
  c->~RefCounts();
  pool_deallocate(c, bytes);
}
}  // namespace ref_detail

template <class T>
class Ref {
 public:
  using element_type = T;
  Ref() noexcept = default;
  Ref(std::nullptr_t) noexcept {}  // NOLINT: implicit, like shared_ptr
  // Shares ownership of an object another Ref already owns (pybind11
  // builds holders from raw pointers this way); p must come from make_ref.
  explicit Ref(T* p) noexcept : p_(p) { retain(); }
  Ref(const Ref& o) noexcept : p_(o.p_) { retain(); }
  Ref(Ref&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  // From a Ref to a derived class (an OpNode to a Node). The counts sit
  // just before the object, so the base must start where the derived
  // object does (single inheritance, checked).
  template <class U, class = std::enable_if_t<std::is_convertible_v<U*, T*> && !std::is_same_v<U, T>>>
  Ref(Ref<U>&& o) noexcept : p_(static_cast<T*>(o.p_)) {  // NOLINT: implicit, like shared_ptr
    if (static_cast<void*>(p_) != static_cast<void*>(o.p_)) std::abort();
    o.p_ = nullptr;
  }
  Ref& operator=(const Ref& o) noexcept {
    Ref(o).swap(*this);
    return *this;
  }
  Ref& operator=(Ref&& o) noexcept {
    Ref(std::move(o)).swap(*this);
    return *this;
  }
  __attribute__((always_inline)) ~Ref() {
    if (p_ && ref_detail::counts(p_)->strong.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(p_);
  }
  // Takes over the reference a new object starts with (make_ref).
  static Ref adopt(T* p) noexcept {
    Ref r;
    r.p_ = p;
    return r;
  }

  void swap(Ref& o) noexcept { std::swap(p_, o.p_); }
  void reset() noexcept { Ref().swap(*this); }
  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  long use_count() const noexcept {
    return p_ ? static_cast<long>(ref_detail::counts(p_)->strong.load(std::memory_order_relaxed)) : 0;
  }

  friend bool operator==(const Ref& a, const Ref& b) noexcept { return a.p_ == b.p_; }
  friend bool operator!=(const Ref& a, const Ref& b) noexcept { return a.p_ != b.p_; }
  friend bool operator==(const Ref& a, std::nullptr_t) noexcept { return a.p_ == nullptr; }
  friend bool operator!=(const Ref& a, std::nullptr_t) noexcept { return a.p_ != nullptr; }
  friend bool operator==(std::nullptr_t, const Ref& a) noexcept { return a.p_ == nullptr; }
  friend bool operator!=(std::nullptr_t, const Ref& a) noexcept { return a.p_ != nullptr; }

 private:
  template <class U> friend class WeakRef;
  template <class U> friend class Ref;
  void retain() const noexcept {
    if (p_) ref_detail::counts(p_)->strong.fetch_add(1, std::memory_order_relaxed);
  }
  // Inline: a null check and one atomic decrement; only the last release
  // calls out. acq_rel: the thread that destroys sees every write made
  // through the other references (as shared_ptr does).
  void release() noexcept {
    if (p_) {
      if (ref_detail::counts(p_)->strong.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(p_);
      p_ = nullptr;
    }
  }
  __attribute__((noinline)) static void destroy(T* p) noexcept {
    p->~T();
    RefCounts* c = ref_detail::counts(p);
    // No weak reference (the common case): no second atomic write.
    if (c->weak.load(std::memory_order_acquire) == 1 || c->weak.fetch_sub(1, std::memory_order_acq_rel) == 1)
      ref_detail::free_block(p);
  }
  T* p_ = nullptr;
};

// make_ref, always inlined: for a call site that must keep it inlined when
// the same T is also made elsewhere (Recorder::record, which a cold path
// repeats: GCC outlined make_ref<OpNode<...>> once it had two callers).
template <class T, class... Args>
__attribute__((always_inline)) inline Ref<T> make_ref_inline(Args&&... args) {
  static_assert(alignof(T) <= ref_detail::kHeader, "make_ref aligns objects to 16 bytes");
  constexpr size_t bytes = ref_detail::kHeader + sizeof(T);
  char* mem = static_cast<char*>(pool_allocate(bytes));
  new (mem) RefCounts();
  reinterpret_cast<RefCounts*>(mem)->bytes = static_cast<uint32_t>(bytes);
  try {
    return Ref<T>::adopt(new (mem + ref_detail::kHeader) T(std::forward<Args>(args)...));
  } catch (...) {
    pool_deallocate(mem, bytes);
    throw;
  }
}

template <class T, class... Args>
Ref<T> make_ref(Args&&... args) {
  return make_ref_inline<T>(std::forward<Args>(args)...);
}

// A reference that does not keep the object alive; lock() gives a Ref while
// some Ref still owns it. Bit 0 of its word is a flag of the object holding
// it (VariableImpl::grad_acc and Node::retained carry their owner's
// has_extra): the owner's destructor tests the word for null anyway, so the
// flag adds no test to it. The owner releases it (drop(), from its
// destructor, when word() is not 0): WeakRef's own destructor does nothing.
template <class T>
class WeakRef {
 public:
  WeakRef() noexcept = default;
  WeakRef(const WeakRef&) = delete;
  WeakRef& operator=(const WeakRef&) = delete;
  ~WeakRef() = default;
  WeakRef& operator=(const Ref<T>& r) noexcept {
    if (r.p_ != ptr()) {
      if (r.p_) ref_detail::counts(r.p_)->weak.fetch_add(1, std::memory_order_relaxed);
      release_ptr();
      w_ = reinterpret_cast<uintptr_t>(r.p_) | (w_ & kFlag);
    }
    return *this;
  }
  Ref<T> lock() const noexcept {
    T* p = ptr();
    if (!p) return nullptr;
    std::atomic<uint32_t>& strong = ref_detail::counts(p)->strong;
    uint32_t n = strong.load(std::memory_order_relaxed);
    while (n != 0) {
      if (strong.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel, std::memory_order_relaxed))
        return Ref<T>::adopt(p);
    }
    return nullptr;
  }
  uintptr_t word() const noexcept { return w_; }
  bool flag() const noexcept { return w_ & kFlag; }
  void set_flag() noexcept { w_ |= kFlag; }
  // Releases the reference and clears the word; returns the flag it had.
  __attribute__((noinline)) bool drop() noexcept {
    const bool flagged = w_ & kFlag;
    release_ptr();
    w_ = 0;
    return flagged;
  }

 private:
  static constexpr uintptr_t kFlag = 1;  // (objects are 16-byte aligned)
  T* ptr() const noexcept { return reinterpret_cast<T*>(w_ & ~kFlag); }
  void release_ptr() noexcept {
    T* p = ptr();
    if (p && ref_detail::counts(p)->weak.fetch_sub(1, std::memory_order_acq_rel) == 1) ref_detail::free_block(p);
  }
  uintptr_t w_ = 0;
};

}  // namespace tg
