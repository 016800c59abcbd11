// Shape: the dimensions of a tensor, a vector of int64 that keeps up to
// kInline of them inline. Every op builds, copies and compares shapes (its
// output's, its node's, broadcast and reduction bookkeeping); as a
// std::vector each of those was a malloc/free pair, ~250 per training step
// of a small MLP. Almost every real shape has <= 6 dimensions, so this has
// std::vector's interface and contiguous storage but allocates only beyond
// that.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <type_traits>
#include <vector>

namespace tg {

class Shape {
 public:
  using value_type = int64_t;
  using size_type = size_t;
  using difference_type = std::ptrdiff_t;
  using reference = int64_t&;
  using const_reference = const int64_t&;
  using pointer = int64_t*;
  using const_pointer = const int64_t*;
  using iterator = int64_t*;
  using const_iterator = const int64_t*;
  using reverse_iterator = std::reverse_iterator<iterator>;
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;
  static constexpr size_t kInline = 6;

  // User-provided, so that `Shape()` and `Shape{}` leave the inline slots
  // alone (a defaulted one zeroes all 48 bytes on every value-initialization).
  Shape() noexcept {}
  Shape(std::initializer_list<int64_t> init) { assign(init.begin(), init.end()); }
  explicit Shape(size_t n, int64_t value = 0) { assign(n, value); }
  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  Shape(It first, It last) { assign(first, last); }
  Shape(const std::vector<int64_t>& v) { assign(v.begin(), v.end()); }  // NOLINT: implicit, like a vector copy
  Shape(const Shape& o) { copy_from(o); }
  Shape(Shape&& o) noexcept { take(o); }
  Shape& operator=(const Shape& o) {
    if (this != &o) copy_from(o);
    return *this;
  }
  Shape& operator=(Shape&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  // operator= inline, for the one hot site (each recorded op's node copies
  // its output's shape); inlining operator= itself everywhere was slower.
  __attribute__((always_inline)) void assign_inline(const Shape& o) {
    if (this != &o) copy_from(o);
  }
  Shape& operator=(std::initializer_list<int64_t> init) {
    assign(init.begin(), init.end());
    return *this;
  }
  ~Shape() { release(); }
  operator std::vector<int64_t>() const { return std::vector<int64_t>(begin(), end()); }  // NOLINT

  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  void assign(It first, It last) {
    const size_t n = static_cast<size_t>(std::distance(first, last));
    size_ = 0;
    reserve(n);
    std::copy(first, last, data_);
    size_ = n;
  }
  void assign(size_t n, int64_t value) {
    size_ = 0;
    reserve(n);
    std::fill(data_, data_ + n, value);
    size_ = n;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return cap_; }
  int64_t* data() { return data_; }
  const int64_t* data() const { return data_; }
  int64_t& operator[](size_t i) { return data_[i]; }
  const int64_t& operator[](size_t i) const { return data_[i]; }
  int64_t& at(size_t i) { return data_[i]; }
  const int64_t& at(size_t i) const { return data_[i]; }
  int64_t& front() { return data_[0]; }
  const int64_t& front() const { return data_[0]; }
  int64_t& back() { return data_[size_ - 1]; }
  const int64_t& back() const { return data_[size_ - 1]; }
  iterator begin() { return data_; }
  iterator end() { return data_ + size_; }
  const_iterator begin() const { return data_; }
  const_iterator end() const { return data_ + size_; }
  const_iterator cbegin() const { return data_; }
  const_iterator cend() const { return data_ + size_; }
  reverse_iterator rbegin() { return reverse_iterator(end()); }
  reverse_iterator rend() { return reverse_iterator(begin()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }

  void reserve(size_t n) {
    if (n <= cap_) return;
    size_t cap = std::max(n, 2 * cap_);
    int64_t* p = new int64_t[cap];
    std::copy(data_, data_ + size_, p);
    release();
    data_ = p;
    cap_ = cap;
  }
  void clear() { size_ = 0; }
  void push_back(int64_t v) {
    if (size_ == cap_) reserve(size_ + 1);
    data_[size_++] = v;
  }
  void emplace_back(int64_t v) { push_back(v); }
  void pop_back() { --size_; }
  void resize(size_t n, int64_t value = 0) {
    reserve(n);
    if (n > size_) std::fill(data_ + size_, data_ + n, value);
    size_ = n;
  }
  // Inserts count copies of value before pos.
  iterator insert(const_iterator pos, size_t count, int64_t value) {
    const size_t at = static_cast<size_t>(pos - data_);
    reserve(size_ + count);
    std::copy_backward(data_ + at, data_ + size_, data_ + size_ + count);
    std::fill(data_ + at, data_ + at + count, value);
    size_ += count;
    return data_ + at;
  }
  iterator insert(const_iterator pos, int64_t value) { return insert(pos, 1, value); }
  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  iterator insert(const_iterator pos, It first, It last) {
    const size_t at = static_cast<size_t>(pos - data_);
    const size_t count = static_cast<size_t>(std::distance(first, last));
    Shape tmp(first, last);  // the range may point into *this
    reserve(size_ + count);
    std::copy_backward(data_ + at, data_ + size_, data_ + size_ + count);
    std::copy(tmp.begin(), tmp.end(), data_ + at);
    size_ += count;
    return data_ + at;
  }
  iterator insert(const_iterator pos, std::initializer_list<int64_t> init) { return insert(pos, init.begin(), init.end()); }
  iterator erase(const_iterator first, const_iterator last) {
    const size_t a = static_cast<size_t>(first - data_), b = static_cast<size_t>(last - data_);
    std::copy(data_ + b, data_ + size_, data_ + a);
    size_ -= b - a;
    return data_ + a;
  }
  iterator erase(const_iterator pos) { return erase(pos, pos + 1); }

  // An element loop: std::equal on int64 calls memcmp, which costs more than
  // the loop for a shape of a few dimensions, and ops compare shapes often.
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.size_ != b.size_) return false;
    for (size_t i = 0; i < a.size_; ++i)
      if (a.data_[i] != b.data_[i]) return false;
    return true;
  }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
  friend bool operator<(const Shape& a, const Shape& b) {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  // The common copy, inline to inline, is a fixed-size block move (a loop of
  // size() elements compiles to a call to memmove).
  __attribute__((always_inline)) void copy_from(const Shape& o) {
    if (o.size_ <= kInline && data_ == inline_) {
      __builtin_memcpy(inline_, o.data_, sizeof(inline_));  // o.data_ holds >= kInline slots
      size_ = o.size_;
    } else {
      copy_slow(o);
    }
  }
  __attribute__((noinline)) void copy_slow(const Shape& o) { assign(o.begin(), o.end()); }
  void release() {
    if (data_ != inline_) delete[] data_;
    data_ = inline_;
    cap_ = kInline;
  }
  void take(Shape& o) {  // *this holds nothing
    if (o.data_ == o.inline_) {
      __builtin_memcpy(inline_, o.inline_, sizeof(inline_));  // fixed size: inline moves, no memmove call
      data_ = inline_;
      cap_ = kInline;
    } else {
      data_ = o.data_;
      cap_ = o.cap_;
      o.data_ = o.inline_;
      o.cap_ = kInline;
    }
    size_ = o.size_;
    o.size_ = 0;
  }

  int64_t* data_ = inline_;
  size_t size_ = 0;
  size_t cap_ = kInline;
  int64_t inline_[kInline];
};

}  // namespace tg
