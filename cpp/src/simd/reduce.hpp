// Whole-run reductions compiled per instruction set (included by
// simd/loops.hpp inside its per-ISA namespace; no namespace of its own).
// Plain loops over a fixed number of lanes, combined in a fixed order, so
// every build gives the same bits and only the vector width differs:
// 32 lanes fill four AVX2 or two AVX-512 registers.

// Sum of a contiguous run, in eight interleaved partial sums accumulated
// in Acc (double for float32 too: float32 partial sums over blocks of 256
// were 1.4x faster but up to 28 float32 ulp off the exact sum of zero-mean
// data, benchmarks/README.md h46-bigviews).
template <class T, class Acc>
Acc sum_run(const T* a, int64_t n) {
  Acc s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += Acc(a[i + k]);
  for (; i < n; ++i) s[0] += Acc(a[i]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// max (Max) or min of a contiguous run; NaN if the run holds one (NumPy's
// rule), -inf / +inf for an empty run. NaN is tracked apart (a per-lane
// flag set where x != x), so the compare loop stays a branch-free select
// the compiler turns into vector max/min. Exact: any lane order gives the
// same value (the sign of a zero tie follows the fixed lanes).
template <bool Max, class T>
T extremum_run(const T* a, int64_t n) {
  constexpr int L = 32;
  constexpr T init = Max ? -__builtin_inf() : __builtin_inf();
  T m[L], u[L];
  for (int k = 0; k < L; ++k) {
    m[k] = init;
    u[k] = 0;
  }
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int k = 0; k < L; ++k) {
      const T x = a[i + k];
      m[k] = (Max ? x > m[k] : x < m[k]) ? x : m[k];
      u[k] = x != x ? T(1) : u[k];
    }
  T r = init, nan = 0;
  for (int k = 0; k < L; ++k) {
    r = (Max ? m[k] > r : m[k] < r) ? m[k] : r;
    nan += u[k];
  }
  for (; i < n; ++i) {
    const T x = a[i];
    r = (Max ? x > r : x < r) ? x : r;
    nan += x != x ? T(1) : T(0);
  }
  return nan != 0 ? T(__builtin_nan("")) : r;
}
