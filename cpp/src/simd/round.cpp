// ----- h100-small: round(x, decimals) in one pass, NumPy's bits.
// NumPy (PyArray_Round) computes, in x's dtype, rint(x * f) / f for decimals >= 0 and rint(x / f) * f for
// decimals < 0, with f = power_of_ten(|decimals|) a double (1e0..1e8 from a table, then 1e9 times 10 once per
// further decimal) that float32 arithmetic rounds to float. Each step is one IEEE operation, so every build
// below (baseline SSE2, AVX2, AVX-512: picked as isa() is) gives the same bits; only the vector width differs.
// Its own file (not in loops.hpp's table): the per-ISA copies come from target attributes.
#include <cstring>

#include "simd/isa.hpp"
#include "tapegrad/kernels.hpp"
#include "tapegrad/ops.hpp"
#include "tapegrad/parallel.hpp"

namespace tg::kern {
namespace round_simd {
// The three builds: the AVX2 and AVX-512 copies vectorize (v)roundp[sd]/vrndscale and the division; the
// baseline build (no SSE4.1: TAPEGRAD_ISA=baseline or an old CPU) calls libm's rint, scalar but exact.
#define TG_ROUND_INLINE inline __attribute__((always_inline))
template <class T, bool MulFirst>
TG_ROUND_INLINE void round_loop(const T* x, T* y, int64_t n, T f) {
  for (int64_t i = 0; i < n; ++i) {
    T s = MulFirst ? x[i] * f : x[i] / f;
    if constexpr (sizeof(T) == 4) s = __builtin_rintf(s);
    else s = __builtin_rint(s);
    y[i] = MulFirst ? s / f : s * f;
  }
}
// h132-rows64: f = 1 (decimals = 0: v.round()) is rint(x) alone. x * 1 and s / 1 are exact (a signalling NaN
// comes out quiet from rint either way): the same bits without a multiply and a division per element.
template <class T>
TG_ROUND_INLINE void rint_loop(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (sizeof(T) == 4) y[i] = __builtin_rintf(x[i]);
    else y[i] = __builtin_rint(x[i]);
  }
}
template <class T>
TG_ROUND_INLINE void round_run(const T* x, T* y, int64_t n, T f, bool mul_first) {
  if (f == T(1)) rint_loop<T>(x, y, n);
  else if (mul_first) round_loop<T, true>(x, y, n, f);
  else round_loop<T, false>(x, y, n, f);
}

template <class T>
void round_baseline(const T* x, T* y, int64_t n, T f, bool m) { round_run<T>(x, y, n, f, m); }
template <class T>
__attribute__((target("avx2"))) void round_avx2(const T* x, T* y, int64_t n, T f, bool m) {
  round_run<T>(x, y, n, f, m);
}
template <class T>
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,prefer-vector-width=512"))) void round_avx512(
    const T* x, T* y, int64_t n, T f, bool m) {
  round_run<T>(x, y, n, f, m);
}

template <class T>
void round_isa(const T* x, T* y, int64_t n, T f, bool m) {
  const IsaKernels& k = isa();
  if (&k == &kAvx512Kernels) round_avx512<T>(x, y, n, f, m);
  else if (&k == &kAvx2Kernels) round_avx2<T>(x, y, n, f, m);
  else round_baseline<T>(x, y, n, f, m);
}
}  // namespace round_simd
#undef TG_ROUND_INLINE

// NumPy's power_of_ten(n), n >= 0: the same double (repeated multiplication past 1e9, not the correctly
// rounded 10^n); once it is inf it stays inf, so the loop stops there (NumPy's runs on to n).
static double numpy_power_of_ten(int64_t n) {
  static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
  if (n < 9) return p10[n];
  double r = 1e9;
  while (n-- > 9 && r != __builtin_inf()) r *= 10.;
  return r;
}

// f in float, as NumPy's cast of the Python float (inf past FLT_MAX: 10^39 and up).
static float narrow(double f) { return f > 3.4028234663852886e38 ? __builtin_inff() : static_cast<float>(f); }

Tensor round_decimals(const Tensor& x0, int64_t decimals) {
  TG_CONTIGUOUS(x, x0);
  if (!is_float(x.dtype))
    throw type_error(std::string("round: expected a float32 or float64 array, got ") + dtype_name(x.dtype));
  const bool mul_first = decimals >= 0;
  // (NumPy: decimals is a C int, and INT_MIN counts as INT_MAX)
  const double f = numpy_power_of_ten(mul_first ? decimals : decimals == INT32_MIN ? INT32_MAX : -decimals);
  Tensor y = Tensor::empty(x.shape, x.dtype);
  parallel_for(x.numel(), kGrainElements, [&](int64_t b, int64_t e) {
    if (x.dtype == DType::F32)
      round_simd::round_isa<float>(x.ptr<float>() + b, y.ptr<float>() + b, e - b, narrow(f), mul_first);
    else round_simd::round_isa<double>(x.ptr<double>() + b, y.ptr<double>() + b, e - b, f, mul_first);
  });
  return y;
}

}  // namespace tg::kern
