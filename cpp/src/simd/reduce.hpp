// Whole-run reductions compiled per instruction set (included by
// simd/loops.hpp inside its per-ISA namespace; no namespace of its own).
// Plain loops over a fixed number of lanes, combined in a fixed order, so
// every build gives the same bits and only the vector width differs:
// 32 lanes fill four AVX2 or two AVX-512 registers.

// Sum of a contiguous run, in 32 interleaved partial sums accumulated in
// Acc (double for float32 too: float32 partial sums over blocks of 256
// were 1.4x faster but up to 28 float32 ulp off the exact sum of zero-mean
// data, benchmarks/README.md h46-bigviews). 32 lanes, not 8: with 8 double
// lanes (one AVX-512 register) each add waited for the previous one (the
// add's latency bound it at ~2 elements per cycle); 32 are four independent
// chains at any width, combined pairwise in a fixed order (same bits on
// every ISA).
//
// With AVX2 and FMA (the avx2 and avx512 builds) the same 32 lanes are 8
// vectors of 4 doubles, each step s = fma(x, 1, s), which rounds x * 1 + s
// = x + s once: the plain loop's bits. Why: on Zen 4 the float32 -> double
// conversions and the adds both issue to the two FP add pipes (AVX-512
// splits each zmm op in two), so the plain loop ran at ~12 float32 per ns
// (87 us per 1M); with the adds on the FMA pipes, 24 per ns (46 us;
// benchmarks/README.md h78-reduce). 256-bit, not 512: the zmm conversion
// was slower there. The lanes are then combined in registers in the plain
// loop's order (through memory it cost ~45 ns per run: most of a
// 1,024-element row's time).
#if defined(__AVX2__) && defined(__FMA__)
typedef float sum_f4_load __attribute__((vector_size(16), aligned(4), may_alias));
typedef double sum_d4_load __attribute__((vector_size(32), aligned(8), may_alias));
typedef float sum_f4 __attribute__((vector_size(16)));
typedef double sum_d4 __attribute__((vector_size(32)));
static inline sum_d4 sum_load4(const float* p) { return __builtin_ia32_cvtps2pd256(sum_f4(*(const sum_f4_load*)p)); }
static inline sum_d4 sum_load4(const double* p) { return *(const sum_d4_load*)p; }
// h103-reduce: the squares x * x rounded in T (norm's sum of squares: the bits of sum(x * x)).
static inline sum_d4 sum_load4_sq(const float* p) {
  const sum_f4 x = *(const sum_f4_load*)p;
  return __builtin_ia32_cvtps2pd256(x * x);
}
static inline sum_d4 sum_load4_sq(const double* p) {
  const sum_d4 x = *(const sum_d4_load*)p;
  return x * x;
}
#endif
// An element of the run: x, or x * x rounded in T (Sq, norm's sum of squares).
template <bool Sq, class Acc, class T>
static inline Acc sum_elem(const T* a, int64_t i) {
  if constexpr (Sq) return Acc(T(a[i] * a[i]));
  else return Acc(a[i]);
}

// Sq (h103-reduce): the sum of the squares x * x, each rounded in T first, so
// that norm's one pass gives the bits of sum(multiply(x, x)).
template <class T, class Acc, bool Sq = false>
Acc sum_run(const T* a, int64_t n) {
  constexpr int L = 32;
  if (n < L) {  // (a short run: one chain, no lanes to set up and combine)
    Acc r = 0;
    for (int64_t i = 0; i < n; ++i) r += sum_elem<Sq, Acc>(a, i);
    return r;
  }
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if constexpr (sizeof(Acc) == 8) {
    sum_d4 one = {1.0, 1.0, 1.0, 1.0};
    asm("" : "+x"(one));  // (hidden, so that the compiler keeps the FMA rather than fold it to an add)
    sum_d4 v[L / 4];
    for (int k = 0; k < L / 4; ++k) v[k] = sum_d4{0, 0, 0, 0};
    for (; i + L <= n; i += L)
#pragma GCC unroll 8
      for (int k = 0; k < L / 4; ++k)
        v[k] = __builtin_ia32_vfmaddpd256(Sq ? sum_load4_sq(a + i + 4 * k) : sum_load4(a + i + 4 * k), one, v[k]);
    if (i < n) {  // the tail into lane 0 (a blend: a store of the lane, loaded back as a vector, stalled)
      Acc t = v[0][0];
      for (; i < n; ++i) t += sum_elem<Sq, Acc>(a, i);
      v[0] = __builtin_ia32_blendpd256(v[0], sum_d4{t, t, t, t}, 1);
    }
    // Lane k is v[k / 4][k % 4]: the steps w = 16, 8, 4 below add whole vectors.
    for (int k = 0; k < 4; ++k) v[k] += v[k + 4];
    v[0] += v[2];
    v[1] += v[3];
    v[0] += v[1];
    return (v[0][0] + v[0][2]) + (v[0][1] + v[0][3]);
  } else
#endif
  {
    Acc s[L];
    for (int k = 0; k < L; ++k) s[k] = 0;
    for (; i + L <= n; i += L)
      for (int k = 0; k < L; ++k) s[k] += sum_elem<Sq, Acc>(a, i + k);
    for (; i < n; ++i) s[0] += sum_elem<Sq, Acc>(a, i);
    for (int w = L / 2; w >= 1; w /= 2)
      for (int k = 0; k < w; ++k) s[k] += s[k + w];
    return s[0];
  }
}

// max (Max) or min of a contiguous run; NaN if the run holds one (NumPy's
// rule), -inf / +inf for an empty run. 32 lanes, lane k the extremum of
// elements k, k + 32, ... (strict compares: a lane keeps its first of equal
// values), the tail after them. Exact: any combine order gives the same
// value; only a tie of +0 and -0 can differ in bits, and then the first of
// the 32 lanes holding the extremum gives it (the lanes were once folded
// from lane 0; tests/test_reductions.py pins it), so every ISA and vector
// width gives the same bits.
//
// The lanes are GCC vectors of VB bytes: 16 (SSE2), 32 (AVX2; float32 in
// the AVX-512 build too: four chains of 8), 64 (float64 in the AVX-512
// build: four chains of 8). h132-rows64: NaN is found from a sum, not a
// per-lane flag: each lane also adds its elements up (one add per vector
// on the add pipes beside the max/min), and only where a lane's sum is not
// finite (the run holds a NaN or an inf, or the sum overflowed) is the run
// scanned for NaN. The per-lane flag (x != x ? 1 : u) cost a compare and a
// blend per vector (AVX2's vblendvpd: the AVX2 build's float64 rows 1.6x
// slower); 1,024-element float64 rows in L2, AVX-512 build: 0.84x main's
// time (benchmarks/README.md h132-rows64).
template <bool Max, class V>
static inline V ext_sel(V a, V b) {
  return (Max ? a > b : a < b) ? a : b;  // (max/min(a, b) with b kept for a NaN a or a zero tie: vmaxpd's rule)
}
// The value of t's extremum (the order is free: only the value is used).
template <bool Max, class V>
static inline auto ext_fold_lanes(V t) {
  constexpr int N = sizeof(V) / sizeof(t[0]);
  if constexpr (N == 8) {
    t = ext_sel<Max>(__builtin_shufflevector(t, t, 4, 5, 6, 7, 0, 1, 2, 3), t);
    t = ext_sel<Max>(__builtin_shufflevector(t, t, 2, 3, 0, 1, 6, 7, 4, 5), t);
  } else if constexpr (N == 4) {
    t = ext_sel<Max>(__builtin_shufflevector(t, t, 2, 3, 0, 1), t);
  }
  return ext_sel<Max>(t[1], t[0]);
}
template <bool Max, class T>
static inline __attribute__((always_inline)) T extremum_row(const T* a, int64_t n) {
  constexpr int L = 32;
  constexpr T init = Max ? -__builtin_inf() : __builtin_inf();
#if defined(__AVX512F__)
  constexpr int VB = sizeof(T) == 8 ? 64 : 32;
#elif defined(__AVX2__)
  constexpr int VB = 32;
#else
  constexpr int VB = 16;
#endif
  typedef T V __attribute__((vector_size(VB)));
  typedef T V_load __attribute__((vector_size(VB), aligned(sizeof(T)), may_alias));
  constexpr int N = VB / sizeof(T), NV = L / N;  // lane k is m[k / N][k % N]
  // 4 sums at most (any sum will do: a NaN or an inf makes it NaN or inf): with 8 or 16 lane vectors in
  // 16 registers (AVX2, SSE2 float64) a sum per vector spilled one, whose chain then ran through memory
  // (AVX2 float64 rows: 0.90x main's time with 8 sums, 0.64-0.79x with 4).
  constexpr int NS = NV < 4 ? NV : 4;
  V m[NV], s[NS];
  for (int k = 0; k < NV; ++k) m[k] = V{} + init;
  for (int k = 0; k < NS; ++k) s[k] = V{};
  int64_t i = 0;
  for (; i + L <= n; i += L)
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) {
      const V x = *(const V_load*)(a + i + N * k);
      m[k] = ext_sel<Max>(x, m[k]);
      s[k % NS] += x;
    }
  T r = init;
  bool nan = false;
  if (i > 0) {
    V t[NV];
    for (int k = 0; k < NV; ++k) t[k] = m[k];
    for (int w = NV / 2; w >= 1; w /= 2)  // (pairwise: a short dependent chain)
      for (int k = 0; k < w; ++k) t[k] = ext_sel<Max>(t[k + w], t[k]);
    for (int w = NS / 2; w >= 1; w /= 2)
      for (int k = 0; k < w; ++k) s[k] += s[k + w];
    r = ext_fold_lanes<Max>(t[0]);
    const V z = s[0] - s[0];  // 0 where the sum is finite
    bool finite = true;
    for (int j = 0; j < N; ++j) finite = finite && z[j] == 0;
    if (__builtin_expect(!finite, 0))
      for (int64_t j = 0; j < i; ++j) nan |= a[j] != a[j];
    if (r == 0) {  // a zero tie: the first lane's zero
      T lanes[L];
      __builtin_memcpy(lanes, m, sizeof lanes);
      for (int k = 0; k < L; ++k)
        if (lanes[k] == 0) {
          r = lanes[k];
          break;
        }
    }
  }
  for (; i < n; ++i) {
    const T x = a[i];
    r = (Max ? x > r : x < r) ? x : r;
    nan = nan || x != x;
  }
  return nan ? T(__builtin_nan("")) : r;
}
template <bool Max, class T>
T extremum_run(const T* a, int64_t n) {
  return extremum_row<Max>(a, n);
}
// h132-rows64: a last-axis max/min's rows in one call (as rows_run below: the
// per-row call through the ISA table and its set-up, ~2% of a float64 row).
template <bool Max, class T>
void extremum_rows_run(const T* a, T* o, int64_t rows, int64_t run) {
  for (int64_t r = 0; r < rows; ++r) o[r] = extremum_row<Max>(a + r * run, run);
}

// Dot product of two contiguous runs (matmul of a vector by a vector),
// in sum_run's 32 lanes and combine order, so the same bits on every ISA
// and at any thread split (BLAS's dot accumulates float32 in float and
// splits the run by thread count). float32 accumulates in double, where
// the product of two floats is exact: fma(a, b, s) and the plain loop's
// s + a * b round once at the same place, so the AVX2 build's FMA gives
// the baseline's bits. float64 is the plain loop (a product and an add,
// no contraction) in every build. With Acc = float (a matrix-vector
// product's rows, which accumulate in float as GEMM does), the plain loop
// everywhere too.
template <class T, class U, class Acc>
Acc dot_run(const T* a, const U* b, int64_t n) {
  constexpr int L = 32;
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if constexpr (sizeof(T) == 4 && sizeof(Acc) == 8) {
    if (n >= L) {
      sum_d4 v[L / 4];
      for (int k = 0; k < L / 4; ++k) v[k] = sum_d4{0, 0, 0, 0};
      for (; i + L <= n; i += L)
#pragma GCC unroll 8
        for (int k = 0; k < L / 4; ++k)
          v[k] = __builtin_ia32_vfmaddpd256(sum_load4(a + i + 4 * k), sum_load4(b + i + 4 * k), v[k]);
      Acc s[L];
      __builtin_memcpy(s, v, sizeof s);
      for (; i < n; ++i) s[0] += Acc(a[i]) * Acc(b[i]);
      for (int w = L / 2; w >= 1; w /= 2)
        for (int k = 0; k < w; ++k) s[k] += s[k + w];
      return s[0];
    }
  }
#endif
  if (n < L) {
    Acc r = 0;
    for (; i < n; ++i) r += Acc(a[i]) * Acc(b[i]);
    return r;
  }
  Acc s[L];
  for (int k = 0; k < L; ++k) s[k] = 0;
  for (; i + L <= n; i += L)
    for (int k = 0; k < L; ++k) s[k] += Acc(a[i + k]) * Acc(b[i + k]);
  for (; i < n; ++i) s[0] += Acc(a[i]) * Acc(b[i]);
  for (int w = L / 2; w >= 1; w /= 2)
    for (int k = 0; k < w; ++k) s[k] += s[k + w];
  return s[0];
}

// y[0, N) = sum over k of v[k * incv] X[k * ldx + (0, N)], plus y when
// accumulate: a vector times a matrix read row by row (each row once, in
// order), the outputs kept in blocks of J accumulators. Every y[j] is
// summed over k in the same order whatever the block or thread split and
// ISA (a product and an add, no contraction; float32 in float, as GEMM).
// OpenBLAS's GEMV of this form splits the sum between threads (other bits
// at 2 threads).
template <class T, class Acc>
void vecmat_run(const T* v, int64_t incv, const T* X, int64_t ldx, T* y, int64_t K, int64_t N, bool accumulate) {
  constexpr int J = 256 / sizeof(T) * 2;
  // One block of nj columns; a whole block passes nj as a constant, so its loops have a fixed trip count.
  auto block = [&](int64_t j0, auto nj) {
    Acc acc[J];
    for (int64_t j = 0; j < nj; ++j) acc[j] = accumulate ? Acc(y[j0 + j]) : Acc(0);
    for (int64_t k = 0; k < K; ++k) {
      const Acc vk = Acc(v[k * incv]);
      const T* x = X + k * ldx + j0;
      for (int64_t j = 0; j < nj; ++j) acc[j] += vk * Acc(x[j]);
    }
    for (int64_t j = 0; j < nj; ++j) y[j0 + j] = T(acc[j]);
  };
  int64_t j0 = 0;
  for (; j0 + J <= N; j0 += J) block(j0, std::integral_constant<int64_t, J>{});
  if (j0 < N) block(j0, N - j0);
}

// ----- h88-scan: the product of a contiguous run -----
// 32 lanes in Acc (double for float32 too), each a chain of multiplies in
// order, combined pairwise in a fixed order: the same bits at every width.
// Per ISA so that the float32 -> double conversions and the multiplies run
// at the vector width (prod of 1M float32 in the baseline build: ~3x PyTorch's time).
template <class T, class Acc>
Acc prod_run(const T* a, int64_t n) {
  constexpr int L = 32;
  if (n < L) {
    Acc r = 1;
    for (int64_t i = 0; i < n; ++i) r *= Acc(a[i]);
    return r;
  }
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  // h103-reduce: the 32 lanes as 8 vectors of 4 doubles, combined in registers in the
  // plain loop's order (the same multiplies in the same lanes: the same bits). GCC's
  // loop below converted in zmm (vcvtps2pd + vextractf32x8 per 16 floats) and combined
  // through memory; as sum_run (h78-reduce) the ymm form is faster on Zen 4.
  if constexpr (sizeof(Acc) == 8) {
    sum_d4 v[L / 4];
    for (int k = 0; k < L / 4; ++k) v[k] = sum_d4{1, 1, 1, 1};
    for (; i + L <= n; i += L)
#pragma GCC unroll 8
      for (int k = 0; k < L / 4; ++k) v[k] *= sum_load4(a + i + 4 * k);
    if (i < n) {  // the tail into lane 0
      Acc t = v[0][0];
      for (; i < n; ++i) t *= Acc(a[i]);
      v[0] = __builtin_ia32_blendpd256(v[0], sum_d4{t, t, t, t}, 1);
    }
    for (int k = 0; k < 4; ++k) v[k] *= v[k + 4];
    v[0] *= v[2];
    v[1] *= v[3];
    v[0] *= v[1];
    return (v[0][0] * v[0][2]) * (v[0][1] * v[0][3]);
  } else
#endif
  {
    Acc s[L];
    for (int k = 0; k < L; ++k) s[k] = 1;
    for (; i + L <= n; i += L)
      for (int k = 0; k < L; ++k) s[k] *= Acc(a[i + k]);
    for (; i < n; ++i) s[0] *= Acc(a[i]);
    for (int w = L / 2; w >= 1; w /= 2)
      for (int k = 0; k < w; ++k) s[k] *= s[k + w];
    return s[0];
  }
}

// ----- h123-lastaxis: a last-axis reduction's rows in one call -----
// o[r] = T(sum / sum of squares / product of row r) (Kind 0 / 1 / 2) over
// `rows` contiguous runs of `run`: each row exactly sum_run's / prod_run's
// arithmetic (the same 32 lanes, tail and pairwise combine: the same bits).
// Through the ISA table one call per row cost ~7 ns of a 1,024-element
// float32 row's ~50; here four rows at a time share the last combine step
// (their four-lane vectors transposed, (c0 + c2) + (c1 + c3) for the four at
// once) and the call (1,024 rows of 1,024 float32, thread CPU: sum 50.0 ->
// 45.8 us, prod 49.7 -> 45.5; benchmarks/README.md h123-lastaxis).
#if defined(__AVX2__) && defined(__FMA__)
template <int Kind, class T>
static inline __attribute__((always_inline)) void rows_lanes(const T* a, int64_t n, sum_d4 v[8]) {
  sum_d4 one = {1.0, 1.0, 1.0, 1.0};
  asm("" : "+x"(one));  // (as sum_run)
  const double init = Kind == 2 ? 1.0 : 0.0;
  for (int k = 0; k < 8; ++k) v[k] = sum_d4{init, init, init, init};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      if constexpr (Kind == 2) v[k] *= sum_load4(a + i + 4 * k);
      else v[k] = __builtin_ia32_vfmaddpd256(Kind == 1 ? sum_load4_sq(a + i + 4 * k) : sum_load4(a + i + 4 * k), one, v[k]);
    }
  if (i < n) {  // the tail into lane 0
    double t = v[0][0];
    for (; i < n; ++i) {
      if constexpr (Kind == 2) t *= double(a[i]);
      else t += sum_elem<Kind == 1, double>(a, i);
    }
    v[0] = __builtin_ia32_blendpd256(v[0], sum_d4{t, t, t, t}, 1);
  }
  // the pairwise steps w = 16, 8, 4 (whole vectors): lane j of v[0] ends with lanes j, j + 4, ...
  for (int k = 0; k < 4; ++k) v[k] = Kind == 2 ? v[k] * v[k + 4] : v[k] + v[k + 4];
  v[0] = Kind == 2 ? v[0] * v[2] : v[0] + v[2];
  v[1] = Kind == 2 ? v[1] * v[3] : v[1] + v[3];
  v[0] = Kind == 2 ? v[0] * v[1] : v[0] + v[1];
}
#endif
template <int Kind, class T>
void rows_run(const T* a, T* o, int64_t rows, int64_t run) {
  int64_t r = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if (run >= 32)
    for (; r + 4 <= rows; r += 4) {
      sum_d4 w[4];
      for (int q = 0; q < 4; ++q) {
        sum_d4 v[8];
        rows_lanes<Kind>(a + (r + q) * run, run, v);
        w[q] = v[0];
      }
      // c_j = lane j of the four rows' vectors; each row's last step is (c0 + c2) + (c1 + c3), as sum_run's
      const sum_d4 t0 = __builtin_shufflevector(w[0], w[1], 0, 4, 2, 6), t1 = __builtin_shufflevector(w[0], w[1], 1, 5, 3, 7);
      const sum_d4 t2 = __builtin_shufflevector(w[2], w[3], 0, 4, 2, 6), t3 = __builtin_shufflevector(w[2], w[3], 1, 5, 3, 7);
      const sum_d4 c0 = __builtin_shufflevector(t0, t2, 0, 1, 4, 5), c2 = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
      const sum_d4 c1 = __builtin_shufflevector(t1, t3, 0, 1, 4, 5), c3 = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
      const sum_d4 s = Kind == 2 ? (c0 * c2) * (c1 * c3) : (c0 + c2) + (c1 + c3);
      for (int q = 0; q < 4; ++q) o[r + q] = T(s[q]);
    }
#endif
  for (; r < rows; ++r)
    o[r] = T(Kind == 2 ? prod_run<T, double>(a + r * run, run) : sum_run<T, double, Kind == 1>(a + r * run, run));
}
