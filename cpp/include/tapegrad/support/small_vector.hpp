// A vector that keeps its first N elements inline. Nodes hold one edge and
// one saved value per input, almost always one or two: keeping them inline
// saves two heap allocations per recorded op. Elements past N go to a
// separately allocated std::vector, held by a plain pointer: a null check is
// all an inline-only SmallVec pays to make and destroy (an embedded
// std::vector cost three stores and a capacity test for each of the three
// SmallVecs a recorded op and its backward step create).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <new>
#include <utility>
#include <vector>

namespace tg {

template <class T, size_t N>
class SmallVec {
 public:
  SmallVec() = default;
  SmallVec(std::initializer_list<T> init) {
    for (const T& v : init) push_back(v);
  }
  // One element, moved in (a braced list would copy it: a reference count
  // up and down per gradient a rule returns).
  __attribute__((always_inline)) static SmallVec of(T&& v) {  // (outlined once the destructor was inlined: +7 per call)
    SmallVec r;
    r.push_back(std::move(v));
    return r;
  }
  SmallVec(std::vector<T>&& v) {
    for (T& x : v) push_back(std::move(x));
  }
  SmallVec(const SmallVec& o) {
    for (const T& v : o) push_back(v);
  }
  SmallVec(SmallVec&& o) noexcept {
    for (T& v : o) push_back(std::move(v));
    o.clear();
  }
  SmallVec& operator=(const SmallVec& o) {
    if (this != &o) {
      clear();
      for (const T& v : o) push_back(v);
    }
    return *this;
  }
  SmallVec& operator=(SmallVec&& o) noexcept {
    if (this != &o) {
      clear();
      for (T& v : o) push_back(std::move(v));
      o.clear();
    }
    return *this;
  }
  // Inline everywhere, over the N inline slots (a known-size loop GCC unrolls,
  // not clear()'s loop over size_): the sweep's Grads (one per node) outlined
  // a loop-form destructor at +27 instructions per node, the prologue and
  // epilogue of a call included. The spill, rare, is freed out of line.
  __attribute__((always_inline)) ~SmallVec() {
    for (size_t i = 0; i < N; ++i)
      if (i < size_) inline_ptr()[i].~T();
    if (__builtin_expect(overflow_ != nullptr, 0)) free_overflow(overflow_);
  }

  void push_back(T v) {
    if (size_ < N) {
      new (inline_ptr() + size_) T(std::move(v));
    } else {
      if (!overflow_) overflow_ = new std::vector<T>();
      overflow_->push_back(std::move(v));
    }
    ++size_;
  }
  // Built in place (an aggregate T from its members): no temporary to move and
  // destroy. (Not shared with push_back: routing push_back through this
  // changed the sweep's inlining and made every scalar op dearer.)
  template <class... Args>
  void emplace_back(Args&&... args) {
    if (size_ < N) {
      new (inline_ptr() + size_) T{std::forward<Args>(args)...};
    } else {
      if (!overflow_) overflow_ = new std::vector<T>();
      overflow_->push_back(T{std::forward<Args>(args)...});
    }
    ++size_;
  }
  void clear() {
    for (size_t i = 0; i < size_ && i < N; ++i) inline_ptr()[i].~T();
    if (overflow_) {  // frees the spill, if any
      delete overflow_;
      overflow_ = nullptr;
    }
    size_ = 0;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return i < N ? inline_ptr()[i] : (*overflow_)[i - N]; }
  const T& operator[](size_t i) const { return i < N ? inline_ptr()[i] : (*overflow_)[i - N]; }
  T& at(size_t i) { return (*this)[i]; }
  const T& at(size_t i) const { return (*this)[i]; }

  template <class V, class P>
  struct Iter {
    P* vec;
    size_t i;
    V& operator*() const { return (*vec)[i]; }
    V* operator->() const { return &(*vec)[i]; }
    Iter& operator++() { ++i; return *this; }
    bool operator!=(const Iter& o) const { return i != o.i; }
    bool operator==(const Iter& o) const { return i == o.i; }
  };
  Iter<T, SmallVec> begin() { return {this, 0}; }
  Iter<T, SmallVec> end() { return {this, size_}; }
  Iter<const T, const SmallVec> begin() const { return {this, 0}; }
  Iter<const T, const SmallVec> end() const { return {this, size_}; }

  std::vector<T> to_vector() const {
    std::vector<T> out;
    for (const T& v : *this) out.push_back(v);
    return out;
  }

 private:
  __attribute__((noinline, cold)) static void free_overflow(std::vector<T>* v) noexcept { delete v; }
  T* inline_ptr() { return std::launder(reinterpret_cast<T*>(storage_)); }
  const T* inline_ptr() const { return std::launder(reinterpret_cast<const T*>(storage_)); }
  alignas(T) unsigned char storage_[N * sizeof(T)];
  size_t size_ = 0;
  std::vector<T>* overflow_ = nullptr;  // elements N.. (owned)
};

}  // namespace tg
