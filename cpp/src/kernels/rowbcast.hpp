// h121-outer: binary ops where each output row is one element of a column
// operand against one whole contiguous row operand: outer(u, w) = (n, 1) *
// (1, m), X[:, None] op y[None, :]. Included inside namespace tg::kern by
// kernels/elementwise.cpp, after bin_run (the ISA loops) it calls.
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

// The row operand, or a copy of it 2 KB further modulo 4 KB for the output
// rows it sits just below modulo 4 KB: there each load of the row matches the
// low 12 address bits of the loop's previous store or two, and the core holds
// the load back (4K aliasing; 1M float32 outer, the ISA's AVX-512 loop: 1.31-
// 1.35x PyTorch's thread CPU with the row 64 bytes below the output row's
// 4 KB boundary, 0.78-0.86x at 0-3,840 bytes; benchmarks/README.md,
// h121-outer). The copy has the row's bits (memcpy), so the results too.
constexpr uintptr_t kAliasPage = 4096, kAliasBad = 512;
constexpr int64_t kAliasRowBytes = 2048;  // shorter rows are not copied

inline bool alias_bad(const void* row, const void* out_row) {
  return (reinterpret_cast<uintptr_t>(row) - reinterpret_cast<uintptr_t>(out_row)) % kAliasPage >=
         kAliasPage - kAliasBad;
}

template <class T>
struct AliasFreeRow {
  const T* row;
  const T* alt = nullptr;
  Tensor buf;
  AliasFreeRow(const T* r, int64_t C, const T* po, int64_t R) : row(r) {
    const int64_t bytes = C * int64_t(sizeof(T));
    if (bytes < kAliasRowBytes) return;
    // Rows a multiple of 4 KB apart all sit alike; others move through the window.
    bool any = bytes % int64_t(kAliasPage) != 0 && R > 1;
    any = any || alias_bad(r, po);
    if (!any) return;
    buf = Tensor::empty(Shape{C + int64_t(kAliasPage / sizeof(T))}, sizeof(T) == 4 ? DType::F32 : DType::F64);
    const uintptr_t base = reinterpret_cast<uintptr_t>(buf.ptr<T>());
    const uintptr_t want = (reinterpret_cast<uintptr_t>(r) + kAliasPage / 2 - base) % kAliasPage;
    T* p = buf.ptr<T>() + want / sizeof(T);
    std::memcpy(p, r, size_t(bytes));
    alt = p;
  }
  const T* for_out(const T* out_row) const { return alt && alias_bad(row, out_row) ? alt : row; }
};

// out = col op row or row op col (a_col: a is the column), row by row through
// the ISA's loops with the column's element as the scalar operand: the op per
// element unchanged, so the bits of the general path. Threads take row ranges.
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
  const AliasFreeRow<T> rows(a_col ? b.ptr<T>() : a.ptr<T>(), C, po, R);
  parallel_for(R, std::max<int64_t>(1, grain / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* o = po + r * C;
      const T* w = rows.for_out(o);
      if (a_col) bin_run(op, o, 1, col + r, 0, w, 1, C);
      else bin_run(op, o, 1, w, 1, col + r, 0, C);
    }
  });
  return true;
}
