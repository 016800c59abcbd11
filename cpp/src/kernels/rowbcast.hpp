// h121-outer: binary ops where each output row is one element of a column
// operand against one whole contiguous row operand: outer(u, w) = (n, 1) *
// (1, m), X[:, None] op y[None, :]. Included inside namespace tg::kern by
// kernels/elementwise.cpp.
#pragma once


// out's shape as (R, C) for a column operand cs and a row operand rs: cs dense
// over out's leading axes and 1 on the trailing ones, rs dense over those
// trailing axes and 1 (or absent) on the leading ones. Size-1 axes of out
// count for neither.
inline bool col_row_split(const Shape& out, const Shape& cs, const Shape& rs, int64_t& R, int64_t& C) {
  size_t lead = 0;
  while (lead < rs.size() && rs[lead] == 1) ++lead;
  const size_t d = out.size(), k = rs.size() - lead;
  if (k == 0 || k >= d || cs.size() > d) return false;
  const std::vector<int64_t> sc = broadcast_strides(cs, out), sr = broadcast_strides(rs, out);
  R = C = 1;
  for (size_t i = d; i-- > 0;) {
    if (out[i] == 1) continue;
    if (i >= d - k) {
      if (sc[i] != 0 || sr[i] != C) return false;
      C *= out[i];
    } else {
      if (sr[i] != 0 || sc[i] != R) return false;
      R *= out[i];
    }
  }
  return R > 1 && C > 1;
}

// out = col op row or row op col (a_col: a is the column): simd/loops.hpp's col_row_run, each element the
// op of the ISA's loop with the column's element as the scalar operand, so the bits of the general path.
// Threads take row ranges. (h121's copy of the row out of 4K aliasing with the output rows is gone: in
// the library it gained nothing, at the aliasing offset either; benchmarks/README.md, h133-outer.)
template <class T>
bool col_by_row(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b, int64_t grain) {
  int64_t R, C;
  bool a_col = true;
  if (!col_row_split(out.shape, a.shape, b.shape, R, C)) {
    if (!col_row_split(out.shape, b.shape, a.shape, R, C)) return false;
    a_col = false;
  }
  T* po = out.ptr<T>();
  const T* col = a_col ? a.ptr<T>() : b.ptr<T>();
  const T* row = a_col ? b.ptr<T>() : a.ptr<T>();
  parallel_for(R, std::max<int64_t>(1, grain / C), [&](int64_t r0, int64_t r1) {
    if constexpr (sizeof(T) == 4) isa().col_row_f32(op, po + r0 * C, col + r0, row, r1 - r0, C, a_col);
    else isa().col_row_f64(op, po + r0 * C, col + r0, row, r1 - r0, C, a_col);
  });
  return true;
}
