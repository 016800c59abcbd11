// What the kernel files share: broadcast iteration and operand checks.
// The kernel files compile as one unit (CMake unity group), like the old
// single kernels.cpp, so the hot helpers inline as before.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "simd/isa.hpp"
#include "tapegrad/kernels.hpp"
#include "tapegrad/parallel.hpp"

namespace tg::kern {

// Elements per thread task of a unary op (elementwise.cpp, param.cpp): transcendental functions cost ~10x
// an add per element, so they split sooner. (The spec's `cost` field; the thresholds are tested at their
// edges in tests/test_kernels_fastpaths.py.)
inline int64_t unary_grain(UnaryOp op) {
  switch (op) {
    TG_SPEC_UNARY_COSTLY_CASES
      return kGrainElements / 8;
    default:
      return kGrainElements;
  }
}

// ---------------------------------------------------------------------------
// Broadcasting iteration
// ---------------------------------------------------------------------------


// Element strides of a contiguous `in` broadcast to `out` (0 on broadcast axes).
inline std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t acc = 1;
  size_t off = out.size() - in.size();
  for (size_t i = in.size(); i-- > 0;) {
    st[i + off] = in[i] == 1 ? 0 : acc;
    acc *= in[i];
  }
  return st;
}

inline std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// Walks `shape` with N operands given by element strides, merging axes that
// are contiguous for every operand, and calls
//   f(const std::array<int64_t,N>& offsets, int64_t n, const std::array<int64_t,N>& inner_strides)
// once per innermost run.
template <size_t N, class F>
inline void nd_loop(const Shape& shape, std::array<std::vector<int64_t>, N> strides, F&& f) {
  if (numel(shape) == 0) return;
  // Drop size-1 axes and merge axis d into d+1 when contiguous for all operands.
  Shape sh;
  std::array<std::vector<int64_t>, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!sh.empty()) {
      bool merge = true;
      for (size_t k = 0; k < N; ++k)
        if (st[k].back() != strides[k][d] * shape[d]) { merge = false; break; }
      if (merge) {
        sh.back() *= shape[d];
        for (size_t k = 0; k < N; ++k) st[k].back() = strides[k][d];
        continue;
      }
    }
    sh.push_back(shape[d]);
    for (size_t k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
  }
  std::array<int64_t, N> off{};
  std::array<int64_t, N> inner{};
  if (sh.empty()) {
    f(off, int64_t(1), inner);
    return;
  }
  size_t nd = sh.size();
  int64_t n = sh[nd - 1];
  for (size_t k = 0; k < N; ++k) inner[k] = st[k][nd - 1];
  if (nd == 1) {
    f(off, n, inner);
    return;
  }
  std::vector<int64_t> idx(nd - 1, 0);
  int64_t outer = numel(Shape(sh.begin(), sh.end() - 1));
  for (int64_t o = 0; o < outer; ++o) {
    f(off, n, inner);
    for (size_t d = nd - 1; d-- > 0;) {
      if (++idx[d] < sh[d]) {
        for (size_t k = 0; k < N; ++k) off[k] += st[k][d];
        break;
      }
      for (size_t k = 0; k < N; ++k) off[k] -= st[k][d] * (sh[d] - 1);
      idx[d] = 0;
    }
  }
}

inline void check_same_float(const Tensor& a, const Tensor& b, const char* opname) {
  if (a.dtype != b.dtype || !is_float(a.dtype))
    throw type_error(std::string(opname) + ": dtypes " + dtype_name(a.dtype) + " and " + dtype_name(b.dtype) +
                     " do not match (the caller promotes first)");
}

}  // namespace tg::kern
