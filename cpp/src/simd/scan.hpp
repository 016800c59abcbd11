// h122-scans: cumsum / cumprod of many lanes along a contiguous axis (rows),
// several rows at once (kernels/reductions.cpp `scan`; included inside its
// namespace, no namespace or includes of its own).
//
// One row's scan is a chain of dependent adds (multiplies): 3 cycles of
// latency per element, which bounded the row-by-row loop at ~0.85-1.0 ns per
// element. R rows advance in lockstep so R chains overlap; each row is still
// scanned alone, from its first element to its last, with the same
// operations as the one-row loop: the same bits (any R, any thread count;
// plain C++ in reductions.cpp's one build, so every ISA).
//
// R = 8 unless the 8 rows' lines at one column fall in too few L1 sets:
// rows of 4 KB (1,024 floats, 512 doubles, or a multiple) all map to one set,
// and 8 in + 8 out lines in an 8-way set evict each other (4.4 ms instead of
// 1.0 for 1,024 x 1,024 float32); 4 rows (8 lines) do not.

// The running value is SumAcc<T> (kernels/reductions.cpp): float32 sums and products in
// double, as PyTorch: each output rounded once (a float32 product chain drifts by up to
// ~500 ulp over 1M factors near 1).

// Rows r = 0..R-1 of n elements (row r at a + r * n, y likewise); Reverse
// scans each row from its last element.
template <class T, bool Prod, bool Reverse, int R>
static inline void scan_rows_lockstep(const T* a, T* y, int64_t n) {
  using Acc = SumAcc<T>;
  Acc s[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) s[r] = Prod ? Acc(1) : Acc(0);
  const T* p = a + (Reverse ? n - 1 : 0);
  T* q = y + (Reverse ? n - 1 : 0);
  for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const int64_t off = r * n + (Reverse ? -i : i);
      if constexpr (Prod) {
        s[r] = s[r] * Acc(p[off]);
        q[off] = T(s[r]);
      } else {
        s[r] += Acc(p[off]);
        q[off] = T(s[r]);
      }
    }
  }
}

// True when 8 rows of `bytes` each spread over the L1 sets (64-byte lines,
// 64 sets: 4 KB per way): any two of them, at one column, a line apart or more.
static inline bool scan_rows_spread8(int64_t bytes) {
  for (int64_t r = 1; r < 8; ++r) {
    const int64_t d = (r * bytes) & 4095;  // rows i and i + r, modulo the way size
    if (d < 64 || d > 4096 - 64) return false;
  }
  return true;
}

// rows x n (row-major, contiguous): each row scanned on its own.
template <class T, bool Prod, bool Reverse>
static void scan_rows_dir(const T* a, T* y, int64_t rows, int64_t n) {
  int64_t r = 0;
  if (scan_rows_spread8(n * int64_t(sizeof(T))))
    for (; r + 8 <= rows; r += 8) scan_rows_lockstep<T, Prod, Reverse, 8>(a + r * n, y + r * n, n);
  for (; r + 4 <= rows; r += 4) scan_rows_lockstep<T, Prod, Reverse, 4>(a + r * n, y + r * n, n);
  if (r + 2 <= rows) {
    scan_rows_lockstep<T, Prod, Reverse, 2>(a + r * n, y + r * n, n);
    r += 2;
  }
  if (r < rows) scan_rows_lockstep<T, Prod, Reverse, 1>(a + r * n, y + r * n, n);
}

template <class T, bool Prod>
static void scan_rows(const T* a, T* y, int64_t rows, int64_t n, bool reverse) {
  if (reverse) scan_rows_dir<T, Prod, true>(a, y, rows, n);
  else scan_rows_dir<T, Prod, false>(a, y, rows, n);
}
