// Elementwise inner loops, compiled once per instruction set.
//
// This header is included by loops_baseline.cpp (plain x86-64: SSE2),
// loops_avx2.cpp (-mavx2 -mfma) and loops_avx512.cpp (AVX-512, 512-bit
// vectors), each with TG_ISA naming its own namespace; kernels.cpp picks one
// table at run time from what the CPU supports (isa.hpp). All builds use
// -ffp-contract=off and no fast-math, so they give bit-identical IEEE
// results: only the vector width differs. (A kernel fuses a multiply-add
// only where it calls tg_fma, simd/math.hpp: one rounding in every build;
// exp, log, log1p, pow, sin, cos, tan and the inverse trig do.)
//
// Everything here lives in tg::kern::TG_ISA and uses compiler builtins for
// libm, so no inline function compiled for AVX2 can be shared (ODR-merged)
// with code that runs on a CPU without it. The transcendental functions are
// simd/math.hpp's and simd/pow.hpp's vectorizable ones; libm is left for the
// lanes they cannot do (the fix-up passes below).
#include <cstdint>
#include <type_traits>
#if defined(__AVX512F__)
#include <immintrin.h>  // cbrt_avx512 (simd/cbrt.hpp)
#endif

#include "tapegrad/kernels.hpp"
#include "tapegrad_gen/loop_cases.inc"  // generated from opspec/ops.py

#ifndef TG_ISA
#error "define TG_ISA before including simd/loops.hpp"
#endif

namespace tg::kern::TG_ISA {

#include "simd/math.hpp"  // vectorizable float64 exp, log, log1p, sin, cos, tan, tanh, sigmoid, softplus,
                          // arcsin, arccos, arctan, arctan2

inline float m_sqrt(float x) { return __builtin_sqrtf(x); }
inline double m_sqrt(double x) { return __builtin_sqrt(x); }
inline float m_pow(float x, float y) { return __builtin_powf(x, y); }
inline double m_pow(double x, double y) { return __builtin_pow(x, y); }
inline float m_fabs(float x) { return __builtin_fabsf(x); }
inline double m_fabs(double x) { return __builtin_fabs(x); }

#include "simd/pow.hpp"  // vectorizable float64 pow

// ----- float32 exp, log, log1p, tanh, sigmoid, softplus -------------------------
// glibc's scalar expf/tanhf do not vectorize (NumPy's SIMD versions are an
// order of magnitude faster). These are plain arithmetic the compiler
// vectorizes at the full float vector width, each within one ulp of the
// correctly rounded value (checked over all 2^32 inputs by
// cpp/tools/exhaustive_f32.cpp), all in float (tanh and sigmoid with one float
// reciprocal, below; float64 only in powf_fast). The exp reduction
// (expf_reduce) uses FMA (tg_fmaf: the same bits in every build).
// tests/test_kernels_fastpaths.py measures the ulp error on 10^6 points in
// every build. Special values follow IEEE: NaN propagates, exp(-inf) = 0,
// exp(inf) = inf, log(0) = -inf, log(x < 0) = NaN, tanh(+-inf) = +-1,
// sigmoid(+-inf) = 1, 0, softplus(inf) = inf, softplus(-inf) = 0.
// FMA (tg_fmaf/tg_fma, the same bits in every build): logf_kernel2 (log,
// log1p, softplus; exhaustive max 0.63 ulp log, 0.82 log1p, 0.75 softplus at
// --stride 17) and powf_fast's log series (0.5032 ulp over 10^8 sampled pairs).

// 2^k in float for an integer-valued k in [-126, 127].
TG_MATH_INLINE float tg_pow2f(float k) {
  uint32_t bits = uint32_t(int32_t(k) + 127) << 23;
  float s;
  __builtin_memcpy(&s, &bits, 4);
  return s;
}

// e^r - 1 - r + re = re + r^2 P(r) for |r| <= ln2/2 (expf_reduce's polynomial; exp2 shares it).
TG_MATH_INLINE float expf_poly(float rr, float re) {
  float p = 1.98527617612853646278381e-4f;
  p = tg_fmaf(p, rr, 1.39304355252534151077271e-3f);
  p = tg_fmaf(p, rr, 8.33336077630519866943359e-3f);
  p = tg_fmaf(p, rr, 4.16664853692054748535156e-2f);
  p = tg_fmaf(p, rr, 1.66666671633720397949219e-1f);
  p = tg_fmaf(p, rr, 0.5f);
  return tg_fmaf(p, rr * rr, re);
}

// e^c = 2^k (1 + (r + X)) for c in [-104, 89], in float arithmetic with FMA at
// the full float vector width (SLEEF's xexpf u10 reduction and polynomial):
// c = k ln2 + r, ln2 in two parts (c - k ln2_hi exact: k ln2_hi has <= 17
// bits, Sterbenz); r = that - k ln2_lo rounded, its rounding error `re`
// recovered by one more fma and carried into X = re + r^2 P(r), so
// 1 + (r + X) is accurate to ~2^-28 before any rounding at 1's scale. k is
// integer-valued; r and X stay apart so that callers can finish in double.
// *ks (if given) gets k + 1.5 * 2^23, whose low bits are k's two's complement.
TG_MATH_INLINE void expf_reduce(float c, float* k, float* r, float* X, float* ks = nullptr) {
  const float log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187045e-06f;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float ksh = tg_fmaf(c, log2e, shifter);
  if (ks) *ks = ksh;
  float kk = ksh - shifter;
  float rh = tg_fmaf(kk, -ln2_hi, c);  // exact
  float rr = tg_fmaf(kk, -ln2_lo, rh);
  float re = tg_fmaf(kk, -ln2_lo, rh - rr);  // rr's rounding error (rh - rr exact)
  *k = kk;
  *r = rr;
  *X = expf_poly(rr, re);
}

// 2^k u for k in [-150, 128], applied in two steps so that a subnormal result
// rounds once.
// (k split as floor(k/2) + the rest in integers: 7 vector instructions
// against 12 for the float split; the product is exact until the last
// multiplication either way, so the bits are the same.)
TG_MATH_INLINE float scale_pow2f(float u, float k) {
  int32_t ki = int32_t(k);
  int32_t k1 = ki >> 1;  // (arithmetic shift: floor)
  uint32_t b1 = uint32_t(k1 + 127) << 23, b2 = uint32_t(ki - k1 + 127) << 23;
  float s1, s2;
  __builtin_memcpy(&s1, &b1, 4);
  __builtin_memcpy(&s2, &b2, 4);
  return u * s1 * s2;
}

// e^x in float: 1 + (r + X) rounds once at 1's scale, then 2^k. Exhaustively
// within 1 ulp of the correctly rounded value (cpp/tools/exhaustive_f32.cpp).
// Outside [-104, 89] the result is selected (0, inf) rather than the argument
// clamped (the clamp's compares and blends were a fifth of the loop); between
// those bounds and the true thresholds, the scaling over- or underflows itself.
TG_MATH_INLINE float expf_fast(float x) {
  float k, r, X;
  expf_reduce(x, &k, &r, &X);
  float res = scale_pow2f((r + X) + 1.0f, k);
  // Two compares and blends: NaN fails both and gets x + inf = x (quiet).
  res = x >= -104.0f ? res : 0.0f;
  return x <= 89.0f ? res : x + __builtin_inff();
}

// log(2^k (1 + f)) + tail in float, f in [sqrt(1/2) - 1, sqrt(2) - 1) exact and
// k integer-valued (Cephes' logf: log(1 + f) = f - f^2/2 + f^3 P(f), P of
// degree 8, no division), with FMA: P by Horner in fused steps and -f^2/2
// exact inside the last fused step; k ln2_hi + f summed exactly (Fast2Sum:
// |k ln2_hi| >= |f| unless k = 0), so the last addition is the only rounding
// at the result's scale.
// The result unrounded: returns s, with *lo the rest (s + *lo rounds to the
// result; softplus adds x to the pair before that one rounding).
TG_MATH_INLINE float logf_kernel2(float f, float k, float tail, float* lo) {
  const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  float z = f * f;
  float p = logf_poly(f);  // simd/atanh_log.hpp
  float small = tg_fmaf(-0.5f * f, f, tg_fmaf(p * f, z, tg_fmaf(k, ln2_lo, tail)));
  float hi = k * ln2_hi;  // exact: ln2_hi has 9 significant bits
  float s = hi + f;
  float e = (hi - s) + f;
  *lo = e + small;
  return s;
}
TG_MATH_INLINE float logf_kernel(float f, float k, float tail) {
  float lo;
  float s = logf_kernel2(f, k, tail, &lo);
  return s + lo;
}

// Splits a positive normal x into 2^k m, m in [sqrt(2)/2, sqrt(2)); k as a float.
TG_MATH_INLINE float split_exponentf(float x, float* k) {
  uint32_t b;
  __builtin_memcpy(&b, &x, 4);
  b += 0x3f800000u - 0x3f3504f3u;
  *k = float(int32_t(b >> 23) - 127);
  uint32_t mb = (b & 0x007fffffu) + 0x3f3504f3u;
  float m;
  __builtin_memcpy(&m, &mb, 4);
  return m;
}

// Natural log in float at full vector width; subnormal x scaled by 2^23 first.
TG_MATH_INLINE float logf_fast(float x) {
  bool sub = x < 0x1p-126f;
  float k;
  float m = split_exponentf(sub ? x * 0x1p23f : x, &k);
  k = sub ? k - 23.0f : k;
  float res = logf_kernel(m - 1.0f, k, 0.0f);
  res = x == __builtin_inff() ? x : res;
  res = x == 0.0f ? -__builtin_inff() : res;
  res = x < 0.0f ? __builtin_nanf("") : res;
  return x != x ? x : res;
}

// log(1 + x) in float (fdlibm's s_log1p.c scheme): u = 1 + x split as in
// log; where k = 0 the kernel takes x itself (exact), else f = m - 1 and u's
// rounding error c (exact) enters as c / u ~ c 2^-k (1 - f + f^2), well
// within the 2^-8 relative accuracy this term needs (no division).
TG_MATH_INLINE float log1pf_fast(float x) {
  float u = 1.0f + x;
  float k;
  float m = split_exponentf(u, &k);
  float f = m - 1.0f;
  float c = u >= 2.0f ? 1.0f - (u - x) : x - (u - 1.0f);
  float kc = k > 64.0f ? 64.0f : k;  // (beyond, c / u is far below the result's ulp)
  float tail = c * tg_pow2f(-kc) * (1.0f - f + f * f);
  bool k0 = k == 0.0f;
  float res = logf_kernel(k0 ? x : f, k, k0 ? 0.0f : tail);
  res = x == __builtin_inff() ? x : res;
  res = x == -1.0f ? -__builtin_inff() : res;
  res = x < -1.0f ? __builtin_nanf("") : res;
  res = x == 0.0f ? x : res;  // keeps -0
  return x != x ? x : res;
}

// tanh, sigmoid, softplus: e = e^-|x| from expf_reduce at the full float
// vector width, all in float: tanh and sigmoid finish with one float
// reciprocal whose error the exact fma residual removes, softplus in float
// pairs.

// tanh in float: tanh_finish (simd/math.hpp) with expf_reduce: e^r - 1 = r + X
// as a float pair. |x| capped at 10, where tanh is 1 in float32 (2^k - 1 is
// inexact for k < -24, |x| in ~[8.3, 9.01], where tanh is not yet 1: hence
// its error term). Sign copied from x (+-0). (Was m in double and one double
// division: half the lanes per vector.)
TG_MATH_INLINE float tanhf_fast(float x) {
  float a = __builtin_fabsf(x);
  a = a > 10.0f ? 10.0f : a;
  float k, r, X;
  expf_reduce(-2.0f * a, &k, &r, &X);
  float u = r + X;
  float t = tanh_finish(tg_pow2f(k), u, X - (u - r));  // (Fast2Sum: |r| >= |X|)
  float res = __builtin_copysignf(t, x);
  return x != x ? x : res;
}

// sigmoid x = 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0, e = e^-|x|, all
// in float with FMA: e as a float pair eh + el (2^k (1 + (r + X)), k down to
// -150: 2^k as two factors, so a subnormal eh rounds once), 1 + e as a pair,
// and one float reciprocal whose error the exact fma residual removes. |x|
// capped at 104, where sigmoid(-x) rounds to 0 in float32. (Was one double
// division: half as many lanes per vector.) 2^k is applied as 2^(k + 64),
// exact, then 2^-64, rounding once: the bits of scale_pow2f, with 2^(k + 64)
// made from the reduction's shifted k in two integer operations (scale_pow2f
// takes seven per call, and was called twice; -5% kernel time, same bits).
// (expf_neg_abs_p64: e^-|x| 2^64 = vh p + vl p, p = 2^(k + 64) exact, |x|
// capped at cap <= 125.)
TG_MATH_INLINE void expf_neg_abs_p64(float x, float cap, float* vh, float* vl, float* p) {
  float a = __builtin_fabsf(x);
  a = a < cap ? a : cap;  // (vminps; a NaN lane gets cap and x below)
  float k, r, X, ks;
  expf_reduce(-a, &k, &r, &X, &ks);
  float t = r + X;
  float te = X - (t - r);  // exact: |r| >= |X|
  *vh = 1.0f + t;
  *vl = ((1.0f - *vh) + t) + te;
  *p = tg_bits_to_f32((tg_f32_to_bits(ks) + (127u + 64u)) << 23);  // 2^(k + 64), k in [-150, 0] (cap 104)
}
TG_MATH_INLINE float sigmoidf_fast(float x) {
  float vh, vl, p;
  expf_neg_abs_p64(x, 104.0f, &vh, &vl, &p);
  float eh = vh * p * 0x1p-64f, el = vl * p * 0x1p-64f;
  float res = exp_sigmoid_finish(eh, el, x < 0.0f);
  return x != x ? x : res;
}

// softplus x = max(x, 0) + log1p(e), e = e^-|x|, all in float: e as a float
// pair eh + el, log1p of the pair by logf_kernel2 (as log1pf_fast, with el in
// the tail), and x added to the unrounded log (TwoSum), so the sum rounds once.
// Where e < 2^-23 (|x| > 16): x itself for x > 0 (e is below half its ulp),
// else e (1 - e/2) = 2^k (1 + r + (X - eh v/2)), v = 1 + r + X, rounded once
// before the scaling by 2^k (in two steps, as expf_fast).
TG_MATH_INLINE float softplusf_fast(float x) {
  float a = __builtin_fabsf(x);
  a = a > 104.0f ? 104.0f : a;
  float k, r, X;
  expf_reduce(-a, &k, &r, &X);
  float t = r + X;
  float te = X - (t - r);  // exact: |r| >= |X|
  float vh = 1.0f + t;
  float vl = ((1.0f - vh) + t) + te;
  float pk = tg_pow2f(k < -126.0f ? -126.0f : k);
  float eh = vh * pk, el = vl * pk;  // exact where it matters (|x| <= 16: e normal)
  float h = 1.0f + r;  // Fast2Sum: 1 + r + X' rounds once (no second rounding of r + X' first)
  float tiny = scale_pow2f(h + (((1.0f - h) + r) + (X - 0.5f * (eh * vh))), k);
  // log1p(eh + el): u = 1 + eh = 2^j m, m in [sqrt(1/2), sqrt(2)), j in {0, 1}.
  float u = 1.0f + eh;
  float ue = (eh - (u - 1.0f)) + el;  // u's rounding error, plus el
  float j;
  float mm = split_exponentf(u, &j);
  bool j0 = j == 0.0f;
  float f = j0 ? eh : mm - 1.0f;
  float w = j0 ? el : ue * 0.5f;  // divided by u: 1 - f + f^2 - f^3 is 1/(1+f) to f^4 < 0.03
  float tail = w * (((1.0f - f) + f * f) - f * f * f);
  float lo;
  float lh = logf_kernel2(f, j, tail, &lo);
  float xp = x > 0.0f ? x : 0.0f;
  float sh = xp + lh;  // TwoSum(xp, lh)
  float bp = sh - xp;
  float se = (xp - (sh - bp)) + (lh - bp);
  float res = sh + (se + lo);
  res = x < -16.0f ? tiny : res;
  res = x > 16.0f ? x : res;
  return x != x ? x : res;
}

template <class T, class F>
inline void map1(const T* __restrict x, T* __restrict y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
// In place (x == y) is allowed: the same loop without __restrict.
template <class T, class F>
inline void map1_alias(const T* x, T* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// ----- The scalar function of each elementwise op in the spec ------------------
// y = k_<name>(x), named by opspec/ops.py; the generated switch cases
// (TG_SPEC_UNARY_CASES, TG_SPEC_DERIV_CASES) call them. Adding an op to the
// spec means adding its function here.
template <class T> TG_MATH_INLINE T k_negative(T v) { return -v; }
// k_NAME<T>: one op's kernel pair, the float32 function for float and the
// float64 one for double (a macro, not a template taking the functions:
// the expansion is the plain call GCC vectorizes, as before).
#define TG_BY_WIDTH(name, f32, f64)                                      \
  template <class T> TG_MATH_INLINE T name(T v) {                        \
    if constexpr (sizeof(T) == 4) return f32(v);                         \
    else return f64(v);                                                  \
  }
TG_BY_WIDTH(k_exp, expf_fast, exp_f64)
TG_BY_WIDTH(k_log, logf_fast, log_f64)
TG_BY_WIDTH(k_log1p, log1pf_fast, log1p_f64)
template <class T> TG_MATH_INLINE T k_sqrt(T v) { return m_sqrt(v); }
// sin, cos, tan: valid for |v| <= kTrigBound (float32: kTrigBoundF); unary()
// and binary() redo the other lanes (and inf, NaN) with libm (map1_fixup below).
TG_BY_WIDTH(k_sin, sin_f32, sin_f64)
TG_BY_WIDTH(k_cos, cos_f32, cos_f64)
TG_BY_WIDTH(k_tanh, tanhf_fast, tanh_f64)
TG_BY_WIDTH(k_sigmoid, sigmoidf_fast, sigmoid_f64)
template <class T> TG_MATH_INLINE T k_relu(T v) { return v > T(0) ? v : (v != v ? v : T(0)); }
template <class T> TG_MATH_INLINE T k_abs(T v) { return m_fabs(v); }
TG_BY_WIDTH(k_softplus, softplusf_fast, softplus_f64)
TG_BY_WIDTH(k_tan, tan_f32, tan_f64)
TG_BY_WIDTH(k_arcsin, asin_f32, asin_f64)
TG_BY_WIDTH(k_arccos, acos_f32, acos_f64)
TG_BY_WIDTH(k_arctan, atan_f32, atan_f64)
template <class T> TG_MATH_INLINE T k_arctan2(T a, T b) {  // (two operands: not TG_BY_WIDTH)
  if constexpr (sizeof(T) == 4) return atan2_f32(a, b);
  else return atan2_f64(a, b);
}
// ----- h85-expfam: expm1, sinh, cosh, exp2 -------------------------------------
// float32 in float at the full vector width: simd/math.hpp's pair finishes
// (expm1_pair, sinh_small, cosh_small) on expf_reduce's r + X, as tanhf_fast.

// expm1 in float: below -20 it rounds to -1 (clamped there: 2^k normal); k =
// 128 (x in (88.38, 89]): 2^127 and the result doubled; 89 caps x (inf).
TG_MATH_INLINE float expm1f_fast(float x) {
  float xc = x < -20.0f ? -20.0f : x;
  xc = xc > 89.0f ? 89.0f : xc;
  float k, r, X, ml;
  expf_reduce(xc, &k, &r, &X);
  float u = r + X;
  float mh = expm1_pair(tg_pow2f(k > 127.0f ? 127.0f : k), u, X - (u - r), &ml);  // (Fast2Sum: |r| >= |X|)
  float res = (mh + ml) * (k > 127.0f ? 2.0f : 1.0f);
  res = x == 0.0f ? x : res;  // keeps -0
  return x != x ? x : res;
}

// sinh and cosh in float: sinh_cosh_f64's scheme, the switch to e^a / 2 at
// a > 10 (e^-2a < 2^-28), a capped at 89.5 (both overflow from 89.42; k - 1
// stays <= 128 for scale_pow2f).
template <bool kSinh> TG_MATH_INLINE float sinh_coshf_fast(float x) {
  float a = __builtin_fabsf(x);
  a = a > 89.5f ? 89.5f : a;
  float k, r, X;
  expf_reduce(a, &k, &r, &X);
  float u = r + X;
  float ue = X - (u - r);
  float y = 1.0f + u;
  float yl = ((1.0f - y) + u) + ue;
  float big = scale_pow2f(y, k - 1.0f);
  float sc = tg_pow2f(a > 10.0f ? 0.0f : k);
  float res;
  if constexpr (kSinh) {
    float ml;
    float mh = expm1_pair(sc, u, ue, &ml);
    res = a > 10.0f ? big : sinh_small(sc, y, yl, mh, ml);
    res = __builtin_copysignf(res, x);  // (keeps -0)
  } else {
    res = a > 10.0f ? big : cosh_small(sc, y, yl);
  }
  return x != x ? x : res;
}

// 2^x in float: k = round(x), f = x - k exact, e^(f ln2) by expf_poly on r +
// re = f ln2 (fma for the product's error), then expf_fast's finish; integers
// give r = 0 and 2^k exactly. 0 below -150, inf from 128.
TG_MATH_INLINE float exp2f_fast(float x) {
  const float ln2_hi = 0x1.62e43p-1f, ln2_lo = -0x1.05c610p-29f;
  float k = (x + 12582912.0f) - 12582912.0f;  // (|x| >= 2^22: garbage, selected below)
  float f = x - k;
  float r = f * ln2_hi;
  float re = tg_fmaf(f, ln2_lo, tg_fmaf(f, ln2_hi, -r));
  float res = scale_pow2f((r + expf_poly(r, re)) + 1.0f, k);
  res = x >= -150.0f ? res : 0.0f;
  return x < 128.0f ? res : x + __builtin_inff();
}
TG_BY_WIDTH(k_expm1, expm1f_fast, expm1_f64)
TG_BY_WIDTH(k_sinh, sinh_coshf_fast<true>, sinh_f64)
TG_BY_WIDTH(k_cosh, sinh_coshf_fast<false>, cosh_f64)
TG_BY_WIDTH(k_exp2, exp2f_fast, exp2_f64)

// ----- h87-act: activations (simd/math.hpp's h87-act block; log_sigmoid x =
// -softplus(-x), exactly: a negation either side)
// silu: float32 in double lanes (simd/math.hpp's h101-sigmoid block, silu_f32).
TG_BY_WIDTH(k_silu, silu_f32, silu_f64)
// h109-siluderiv: silu's derivative (spec field deriv_kernel; math.hpp's h109 block).
TG_BY_WIDTH(k_silu_deriv, silu_deriv_f32, silu_deriv_f64)
TG_BY_WIDTH(k_gelu, gelu_f32, gelu_f64)
// h131-actgrad: gelu's derivative (spec field deriv_kernel): float32 math.hpp's h131 block; float64 the
// spec's expression as generated before (same bits for |x| <= 2^53), its clamp by compares.
TG_MATH_INLINE double gelu_deriv_f64(double x) {
  // x clamped to [-30, 30] as the spec's deriv (by compares: exact at every magnitude; +-inf NaN as before)
  double c = x > 30.0 ? 30.0 : (x < -30.0 ? -30.0 : x);
  c = __builtin_fabs(x) == __builtin_inf() ? x - x : c;
  return (k_sigmoid((double(1.5957691216057308) * (c + (((double(0.044715) * c) * c) * c)))) * (double(1) + (((c * k_sigmoid(((-double(1.5957691216057308)) * (c + (((double(0.044715) * c) * c) * c))))) * double(1.5957691216057308)) * (double(1) + (((double(3) * double(0.044715)) * c) * c)))));
}
TG_BY_WIDTH(k_gelu_deriv, gelu_deriv_f32, gelu_deriv_f64)
template <class T> TG_MATH_INLINE T k_log_sigmoid(T v) { return -k_softplus(-v); }

// ----- h84-round: rounding (math.hpp's *_exact), square, reciprocal ---------------------------------
template <class T> TG_MATH_INLINE T k_floor(T v) { return floor_exact(v); }
template <class T> TG_MATH_INLINE T k_ceil(T v) { return ceil_exact(v); }
template <class T> TG_MATH_INLINE T k_rint(T v) { return rint_exact(v); }
template <class T> TG_MATH_INLINE T k_trunc(T v) { return trunc_exact(v); }
template <class T> TG_MATH_INLINE T k_square(T v) { return v * v; }
template <class T> TG_MATH_INLINE T k_reciprocal(T v) { return T(1) / v; }
template <class T> TG_MATH_INLINE T k_positive(T v) { return v; }  // (the loop is a vectorized copy)
// (k_sign, the spec's sign op, is below with the derivatives' piecewise-constant helpers.)

// ----- h86-logfam: log2, log10, cbrt, arcsinh, arccosh, arctanh (simd/math.hpp's last block)
TG_BY_WIDTH(k_log2, log2_f32, log2_f64)
TG_BY_WIDTH(k_log10, log10_f32, log10_f64)
TG_BY_WIDTH(k_cbrt, cbrt_f32, cbrt_f64)
TG_BY_WIDTH(k_arcsinh, asinh_f32, asinh_f64)
TG_BY_WIDTH(k_arccosh, acosh_f32, acosh_f64)
TG_BY_WIDTH(k_arctanh, atanh_f32, atanh_f64)

// ----- h90-binary: logaddexp, logaddexp2, hypot (simd/math.hpp), fmax, fmin -----
// (k_logaddexp, k_logaddexp2: after simd/lae32.hpp below)
template <class T> TG_MATH_INLINE T k_hypot(T a, T b) {
  if constexpr (sizeof(T) == 4) return hypot_f32(a, b);
  else return hypot_f64(a, b);
}
// NumPy's fmax/fmin on arrays: a NaN operand loses to a number; on a tie the second operand, as
// maximum's (np.fmax(-0., 0.) on arrays is 0.; NumPy's scalar path gives -0.).
template <class T> TG_MATH_INLINE T k_fmax(T a, T b) { return (a > b) | (b != b) ? a : b; }
template <class T> TG_MATH_INLINE T k_fmin(T a, T b) { return (a < b) | (b != b) ? a : b; }
// Their derivative weights for the first operand (the second's is 1 - it): 1 where a is chosen over
// a NaN b (both NaN: a), 0 where a is NaN, else maximum's MaxWeight (ties 1/2).
template <class T> TG_MATH_INLINE T k_fmax_weight(T a, T b) {
  return b != b ? T(1) : (a > b ? T(1) : (a == b ? T(0.5) : T(0)));
}
template <class T> TG_MATH_INLINE T k_fmin_weight(T a, T b) {
  return b != b ? T(1) : (a < b ? T(1) : (a == b ? T(0.5) : T(0)));
}
// The piecewise-constant helpers a spec derivative may use (derivative 0).
template <class T> TG_MATH_INLINE T k_step(T v) { return v > T(0) ? T(1) : T(0); }  // relu'(0) = 0
template <class T> TG_MATH_INLINE T k_sign(T v) { return v > T(0) ? T(1) : (v < T(0) ? T(-1) : (v != v ? v : T(0))); }

// ----- h92-param: elu, leaky_relu (a float parameter p, converted to T as the compositions'
// `x * float(p)` did), deg2rad, rad2deg; the parametrized loops unary_p and deriv_p ------------
// elu: p expm1(x) rounded twice (expm1's <= 1 ulp, then the product; exact for p = 1); -0 stays -0.
template <class T> TG_MATH_INLINE T k_elu(T v, T p) { return v > T(0) ? v : p * k_expm1(v); }
template <class T> TG_MATH_INLINE T k_leaky_relu(T v, T p) { return v > T(0) ? v : v * p; }
// One multiply by the constant NumPy uses: float64 pi/180 and 180/pi rounded once; float32 NumPy's
// NPY_PIf / 180.0f (= float(pi/180)) and 180.0f / NPY_PIf (one ulp below float(180/pi)).
template <class T> TG_MATH_INLINE T k_deg2rad(T v) {
  return v * (sizeof(T) == 4 ? T(0x1.1df46ap-6f) : T(0x1.1df46a2529d39p-6));
}
template <class T> TG_MATH_INLINE T k_rad2deg(T v) {
  return v * (sizeof(T) == 4 ? T(0x1.ca5dcp+5f) : T(0x1.ca5dc1a63c1f8p+5));
}
// The generated cases (TG_SPEC_UNARY_P_CASES, TG_SPEC_DERIV_P_CASES) read the parameters as p0, p1.
template <class T>
void unary_p(UnaryOp op, const T* a, T* o, int64_t n, const double* p) {
  const T p0 = T(p[0]), p1 = T(p[1]);
  (void)p1;
  auto run = [&](auto f) {
    if (n == 1) *o = f(*a);
    else if (a == o) map1_alias(a, o, n, f);
    else map1(a, o, n, f);
  };
  switch (op) {
    TG_SPEC_UNARY_P_CASES
    default: break;
  }
}
// o = g * f'(s; p), all three of length n; o may be g.
template <class T>
void deriv_p(UnaryOp op, T* o, const T* g, const T* s, int64_t n, const double* p) {
  const T p0 = T(p[0]), p1 = T(p[1]);
  (void)p1;
  auto run = [&](auto f) {
    for (int64_t i = 0; i < n; ++i) o[i] = f(g[i], s[i]);
  };
  switch (op) {
    TG_SPEC_DERIV_P_CASES
    default: break;
  }
}

// ----- Scalar fix-up passes ------------------------------------------------------
// The lanes a vector kernel cannot do (sin/cos/tan beyond kTrigBound, inf and
// NaN there; pow outside x > 0 with finite operands) are redone with scalar
// libm after the vector pass, in blocks whose slow lanes' inputs are saved
// first (the output may overwrite an input). Libm's bits, the same in every
// build and at any thread split.
constexpr int64_t kFixupBlock = 256;

template <class T> inline bool trig_slow(T v) {
  return !(m_fabs(v) <= (sizeof(T) == 4 ? T(kTrigBoundF) : T(kTrigBound)));
}
template <class T> inline T sin_libm(T v) { return T(__builtin_sin(double(v))); }
template <class T> inline T cos_libm(T v) { return T(__builtin_cos(double(v))); }
template <class T> inline T tan_libm(T v) { return T(__builtin_tan(double(v))); }

// Whether x[0, m) holds a lane for libm: the bits of |x| order as the
// magnitudes do (NaN's above inf's), so bound - |x|'s bits is negative
// exactly there; OR-ing those is a reduction with a one-cycle dependency that
// vectorizes (an any-of over trig_slow's bools compiled to mask conversions
// and shuffles, ~30% of float64 sin's time; a max, to a compare-and-blend
// chain on AVX2).
template <class T> inline bool trig_block_slow(const T* x, int64_t m) {
  if constexpr (sizeof(T) == 4) {
    const int32_t bound = int32_t(tg_f32_to_bits(kTrigBoundF));
    int32_t acc = 0;
    for (int64_t i = 0; i < m; ++i) acc |= bound - int32_t(tg_f32_to_bits(x[i]) & 0x7fffffffu);
    return acc < 0;
  } else {
    const int64_t bound = int64_t(tg_f64_to_bits(kTrigBound));
    int64_t acc = 0;
    for (int64_t i = 0; i < m; ++i) acc |= bound - int64_t(tg_f64_to_bits(x[i]) & 0x7fffffffffffffffULL);
    return acc < 0;
  }
}

// Which lanes map1_fixup redoes: the trig kernels' (cbrt's: CbrtLanes, simd/cbrt.hpp).
struct TrigLanes {
  template <class T> static bool lane(T v) { return trig_slow(v); }
  template <class T> static bool block(const T* x, int64_t m) { return trig_block_slow(x, m); }
};

template <class Lanes = TrigLanes, class T, class F, class Slow>
inline void map1_fixup(const T* a, T* o, int64_t n, F f, Slow slow) {
  if (n == 1) {
    *o = Lanes::lane(*a) ? slow(*a) : f(*a);
    return;
  }
  for (int64_t i0 = 0; i0 < n; i0 += kFixupBlock) {
    const int64_t m = n - i0 < kFixupBlock ? n - i0 : kFixupBlock;
    const T* x = a + i0;
    int32_t idx[kFixupBlock];
    T saved[kFixupBlock];
    int32_t cnt = 0;
    if (Lanes::block(x, m))
      for (int64_t i = 0; i < m; ++i)
        if (Lanes::lane(x[i])) {
          idx[cnt] = int32_t(i);
          saved[cnt++] = x[i];
        }
    map1_alias(x, o + i0, m, f);
    for (int32_t c = 0; c < cnt; ++c) o[i0 + idx[c]] = slow(saved[c]);
  }
}

template <class T>
void unary(UnaryOp op, const T* a, T* o, int64_t n) {
  auto run = [&](auto f) {
    if (n == 1) *o = f(*a);  // a 0-d value: skip the vector loop's set-up
    else if (a == o) map1_alias(a, o, n, f);
    else map1(a, o, n, f);
  };
  // (These take the fix-up pass; their generated cases below are not reached.)
  switch (op) {
    case UnaryOp::Sin: return map1_fixup(a, o, n, [](T v) { return k_sin(v); }, [](T v) { return sin_libm(v); });
    case UnaryOp::Cos: return map1_fixup(a, o, n, [](T v) { return k_cos(v); }, [](T v) { return cos_libm(v); });
    case UnaryOp::Tan: return map1_fixup(a, o, n, [](T v) { return k_tan(v); }, [](T v) { return tan_libm(v); });
    case UnaryOp::Cbrt:  // normal lanes in the vector pass, the others redone (simd/cbrt.hpp)
#if defined(__AVX512F__)
      if (n > 1) return cbrt_avx512(a, o, n);  // the same bits, its own loop (simd/cbrt.hpp)
#endif
      if constexpr (sizeof(T) == 4) return map1_fixup<CbrtLanes>(a, o, n, [](T v) TG_INLINE_LAMBDA { return cbrt_f32_normal(v); }, [](T v) { return cbrt_f32(v); });
      else return map1_fixup<CbrtLanes>(a, o, n, [](T v) TG_INLINE_LAMBDA { return cbrt_f64_normal(v); }, [](T v) { return cbrt_f64(v); });
    default: break;
  }
  switch (op) {
    TG_SPEC_UNARY_CASES
    case UnaryOp::ReluMask: run([](T v) { return k_step(v); }); break;
  }
}

// o[i*so] = f(a[i*sa], b[i*sb]); the contiguous and scalar-operand cases are
// the loops the compiler vectorizes. o may alias a or b exactly (in place).
template <class T, class F>
inline void bin_run(T* o, int64_t so, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n, F f) {
  if (n == 1) {  // a 0-d value: skip the vector loops' set-up (alias and length checks)
    *o = f(*a, *b);
  } else if (so == 1 && sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
  } else if (so == 1 && sa == 1 && sb == 0) {
    const T bv = *b;
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], bv);
  } else if (so == 1 && sa == 0 && sb == 1) {
    const T av = *a;
    for (int64_t i = 0; i < n; ++i) o[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * so] = f(a[i * sa], b[i * sb]);
  }
}

// bin_run_fixup<true>'s is_slow where the lanes to redo are exactly those f returns NaN for (simd/lae32.hpp):
// contiguous blocks then find them in the vector loop itself (bin_run_fixup).
struct NanLanes {
  template <class T> bool operator()(T, T, T r) const { return r != r; }
};

// bin_run with the fix-up pass: slow(x, y) replaces f where is_slow(x, y) (pow: libm's lanes, found
// from the inputs before the vector pass, redone per block, scalar).
// kPooled (float32/64 logaddexp, logaddexp2: simd/lae_fixup.hpp, simd/lae32.hpp): the lanes are found
// after the vector pass, from the inputs and the result (is_slow(x, y, r)), collected across blocks (a
// block has a few: too few for a vector loop) and redone together by slow(cx, cy, cr, cnt), which fills
// cr[0, cnt) in a vectorized loop (the arrays hold cnt rounded up to 16: it may pad them); where o's
// block overlaps an input (out= and in-place forms) the block's inputs are copied first, so a lane's
// inputs are read before any redo writes it. Each lane's answer depends on its inputs only: the same
// bits at any block or thread split.
template <bool kPooled = false, class T, class F, class IsSlow, class Slow>
inline void bin_run_fixup(T* o, int64_t so, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n, F f,
                          IsSlow is_slow, Slow slow) {
  if constexpr (kPooled) {
    T xs[kFixupBlock], ys[kFixupBlock];
    constexpr int32_t kPend = 2 * kFixupBlock + 16;
    T cx[kPend], cy[kPend], cr[kPend];
    int64_t idx[kPend];
    int32_t cnt = 0;
    auto flush = [&] {
      slow(cx, cy, cr, cnt);
      for (int32_t c = 0; c < cnt; ++c) o[idx[c] * so] = cr[c];
      cnt = 0;
    };
    for (int64_t i0 = 0; i0 < n; i0 += kFixupBlock) {
      const int64_t m = n - i0 < kFixupBlock ? n - i0 : kFixupBlock;
      const T* x = a + i0 * sa;
      const T* y = b + i0 * sb;
      T* ob = o + i0 * so;
      const char *olo = reinterpret_cast<const char*>(ob), *ohi = reinterpret_cast<const char*>(ob + (m - 1) * so + 1);
      auto overlaps = [&](const T* p, int64_t sp) {
        const char *lo = reinterpret_cast<const char*>(p), *hi = reinterpret_cast<const char*>(p + (m - 1) * sp + 1);
        return lo < ohi && olo < hi;
      };
      const T *xv = x, *yv = y;
      int64_t sxv = sa, syv = sb;
      if (overlaps(x, sa) || overlaps(y, sb)) {
        for (int64_t i = 0; i < m; ++i) {
          xs[i] = x[i * sa];
          ys[i] = y[i * sb];
        }
        xv = xs, yv = ys, sxv = 1, syv = 1;
      }
      // flags as bytes (a vectorized loop), then the lanes found 8 at a time from one 64-bit word: a branch
      // per 8 lanes and per flagged lane (a branch per lane cost ~1.5 ns per element at 2.6% flagged,
      // h114-logaddexp; OR-ing 8 flags of T's width ~0.4 ns, h127-lae32)
      alignas(64) uint8_t fl[kFixupBlock];
      int64_t mf = 0;  // [0, mf) done by the fused loop
      if constexpr (std::is_same_v<IsSlow, NanLanes>) {
        if (so == 1 && sa == 1 && sb == 1) {
          // the flags stored by the vector loop itself, in multiples of 64 lanes (bytes' vector width: the
          // loop runs 4 float vectors at a time at AVX-512, 8 independent double polynomial chains; the
          // rest of the block takes the loops below, whose vectors are floats' width). No second pass over
          // the result, and more chains in flight: float32 logaddexp 1M kernel ~0.7x (16 lanes OR-ed in
          // registers, only flagged ones scanned: 1.15x): h128-lae32fold
          mf = m & ~int64_t(63);
          for (int64_t i = 0; i < mf; ++i) {
            T r = f(x[i], y[i]);
            ob[i] = r;
            fl[i] = uint8_t(r != r);
          }
        }
      }
      if (mf < m) {
        const int64_t k = m - mf;
        bin_run<T>(ob + mf * so, so, x + mf * sa, sa, y + mf * sb, sb, k, f);
        if (sxv == 1 && syv == 1 && so == 1) {
          for (int64_t i = mf; i < m; ++i) fl[i] = uint8_t(is_slow(xv[i], yv[i], ob[i]));
        } else {
          for (int64_t i = mf; i < m; ++i) fl[i] = uint8_t(is_slow(xv[i * sxv], yv[i * syv], ob[i * so]));
        }
      }
      for (int64_t i = m; i < ((m + 7) & ~int64_t(7)); ++i) fl[i] = 0;
      for (int64_t w = 0; w < m; w += 8) {
        uint64_t bits;
        __builtin_memcpy(&bits, fl + w, 8);
        for (; bits; bits &= bits - 1) {
          int64_t i = w + (__builtin_ctzll(bits) >> 3);
          idx[cnt] = i0 + i;
          cx[cnt] = xv[i * sxv];
          cy[cnt++] = yv[i * syv];
        }
      }
      if (cnt >= kFixupBlock) flush();
    }
    if (cnt) flush();
  } else {
    if (n == 1) {
      *o = is_slow(*a, *b) ? slow(*a, *b) : f(*a, *b);
      return;
    }
    for (int64_t i0 = 0; i0 < n; i0 += kFixupBlock) {
      const int64_t m = n - i0 < kFixupBlock ? n - i0 : kFixupBlock;
      const T* x = a + i0 * sa;
      const T* y = b + i0 * sb;
      int any = 0;
      for (int64_t i = 0; i < m; ++i) any |= int(is_slow(x[i * sa], y[i * sb]));
      int32_t idx[kFixupBlock];
      T sx[kFixupBlock], sy[kFixupBlock];
      int32_t cnt = 0;
      if (any)
        for (int64_t i = 0; i < m; ++i)
          if (is_slow(x[i * sa], y[i * sb])) {
            idx[cnt] = int32_t(i);
            sx[cnt] = x[i * sa];
            sy[cnt++] = y[i * sb];
          }
      bin_run<T>(o + i0 * so, so, x, sa, y, sb, m, f);
      for (int32_t c = 0; c < cnt; ++c) o[(i0 + idx[c]) * so] = slow(sx[c], sy[c]);
    }
  }
}

// o = g * h(x) for the sin/cos derivatives: x gathered into a block, h(x)
// by map1_fixup (the forward's vectorized loop and fix-up), then the
// product. (The fused loop g * k_cos(x) through bin_run took ~36 ns per
// element: 1M float32, sin forward + backward 40 ms against 3.8 ms for the
// forward.) o may alias g or x exactly.
template <class T, class H, class Slow>
inline void deriv_fixup(T* o, int64_t so, const T* g, int64_t sg, const T* x, int64_t sx, int64_t n, H h, Slow slow) {
  T xb[kFixupBlock], hb[kFixupBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kFixupBlock) {
    const int64_t m = n - i0 < kFixupBlock ? n - i0 : kFixupBlock;
    const T* xs = x + i0 * sx;
    if (sx != 1) {  // (contiguous x is read in place)
      for (int64_t i = 0; i < m; ++i) xb[i] = x[(i0 + i) * sx];
      xs = xb;
    }
    map1_fixup(xs, hb, m, h, slow);
    for (int64_t i = 0; i < m; ++i) o[(i0 + i) * so] = g[(i0 + i) * sg] * hb[i];
  }
}

// e^x in double to 2.1e-10 relative, for x in [-160, 100] (powf_fast's last step;
// beyond that float32 over/underflows anyway).
TG_MATH_INLINE double exp_d(double x) {
  const double log2e = 1.4426950408889634, ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer in the low bits
  double kd = x * log2e + shifter;
  uint64_t kbits;  // unsigned: the shift below must wrap, not overflow
  __builtin_memcpy(&kbits, &kd, 8);
  kd -= shifter;
  double r = (x - kd * ln2_hi) - kd * ln2_lo;  // |r| <= ln2 / 2
  // Taylor to degree 8: relative error < 2.1e-10 on |r| <= 0.347.
  double p = 1.0 / 40320;
  p = p * r + 1.0 / 5040;
  p = p * r + 1.0 / 720;
  p = p * r + 1.0 / 120;
  p = p * r + 1.0 / 24;
  p = p * r + 1.0 / 6;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  uint64_t scale_bits = (kbits + 1023) << 52;  // 2^k (k's bits are the low bits of kbits)
  double scale;
  __builtin_memcpy(&scale, &scale_bits, 8);
  return p * scale;
}

// float32 x ** y for x > 0 (subnormal too) and finite y: e^(y ln x) in
// double with just the accuracy float needs, not float64 log/exp's. x's
// exponent k and m in [sqrt(1/2), sqrt(2)) are split in float (exact);
// ln m = 2 atanh(s), s = (m - 1) / (m + 1) in [-0.172, 0.172], by its series
// to s^13 (truncation < 1.3e-12 relative) in fused Horner steps; |y ln x| is
// clamped to exp_d's range (beyond it float32 over/underflows anyway). y ln x
// is off by < 1.4e-10 (1.3e-12 relative, |y ln x| <= 104), so with exp_d's
// 2.1e-10 the double result is within 0.01 ulp of float's and one rounding
// leaves it within 0.51 ulp. Plain IEEE operations, one division and tg_fma:
// the same bits in every build. The loop runs at the ISA's full double width
// (GCC splits each float vector into two double halves).
TG_MATH_INLINE float powf_fast(float x, float y) {
  const bool sub = x < 0x1p-126f;
  float kf;
  const float m = split_exponentf(sub ? x * 0x1p23f : x, &kf);
  const double k = double(sub ? kf - 23.0f : kf);
  const double f = double(m) - 1.0;  // exact
  const double s = f / (2.0 + f);
  const double z = s * s;
  double p = 2.0 / 13;
  p = tg_fma(p, z, 2.0 / 11);
  p = tg_fma(p, z, 2.0 / 9);
  p = tg_fma(p, z, 2.0 / 7);
  p = tg_fma(p, z, 2.0 / 5);
  p = tg_fma(p, z, 2.0 / 3);
  const double lnx = tg_fma(k, 0.6931471805599453, tg_fma(s * z, p, 2.0 * s));
  double t = double(y) * lnx;
  t = t < -160.0 ? -160.0 : (t > 100.0 ? 100.0 : t);
  return float(exp_d(t));
}

// x ** y where x > 0 and both are finite (float64: also x < 0; |y| < 2^31):
// float32 by powf_fast, float64 by simd/pow.hpp. libm's pow/powf takes the
// other lanes (signs, zeros, infinities, NaN) in the fix-up pass.
template <class T> TG_MATH_INLINE T k_pow(T x, T y) {
  if constexpr (sizeof(T) == 4) return y == T(2) ? x * x : powf_fast(x, y);
  else return pow_f64_fast(x, y);
}
template <class T> inline bool pow_slow(T x, T y) {
  if constexpr (sizeof(T) == 4) return !(x > T(0) && x < T(__builtin_inf()) && m_fabs(y) < T(__builtin_inf()));
  else return pow_f64_slow(x, y);
}
template <class T> inline T pow_libm(T x, T y) { return y == T(2) ? x * x : m_pow(x, y); }

// x ** 1.5 = x sqrt(x) rounded once: s = sqrt(x), e = x - s^2 exactly (fma),
// sqrt(x) = s + e / (2s) + O(s 2^-106) and x / s = s + e / s, so x sqrt(x) =
// x s + s e / 2 + O(x^1.5 2^-104); one fma adds the correction to the exact
// x s: within 0.5 ulp + 2^-50 ulp (x * sqrt(x) alone, two roundings, ~1 ulp).
// Small x is scaled by 2^(2j) first (sqrt exact: 2^j) and the result by
// 2^-3j: s e / 2 ~ x^1.5 2^-53 underflows where x^1.5 is still normal (x near
// 2^-681: 0.96 ulp without it); for a subnormal result the second rounding
// adds < 2^-50 ulp. Beyond 2^(2/3 128) (float; 2^(2/3 1024) double) the result
// is inf and s e may overflow with e's sign; -inf ** 1.5 = +inf (sqrt gives
// NaN); negative x is NaN (sqrt's), -0 gives +0 (fma(-0, -0, +0)).
template <class T> TG_MATH_INLINE T k_pow15(T x) {
  const bool f32 = sizeof(T) == 4;
  const T inf = T(__builtin_inf());
  const T big = f32 ? T(0x1p90f) : T(0x1p700);
  const bool tiny = x < (f32 ? T(0x1p-60f) : T(0x1p-600));
  const T xs = tiny ? x * (f32 ? T(0x1p60f) : T(0x1p600)) : x;
  const T s = m_sqrt(xs);
  const T e = tg_fma(-s, s, xs);
  const T r = tg_fma(xs, s, (T(0.5) * s) * e);
  return (x > big) | (x == -inf) ? inf : (tiny ? r * (f32 ? T(0x1p-90f) : T(0x1p-900)) : r);
}

// x ** c for one exponent c (`a ** 2`, `a ** 0.5`, the derivative's
// a ** (c - 1)): the exponents whose power is one correctly rounded IEEE
// operation take it, as NumPy does (libm's pow is correctly rounded there
// too, so the bits are pow's). false: c is not one of them.
template <class T>
inline bool pow_by_scalar(T* o, int64_t so, const T* a, int64_t sa, T c, int64_t n) {
  const T inf = T(__builtin_inf());
  auto run = [&](auto f) { bin_run<T>(o, so, a, sa, &c, 0, n, [&](T x, T) { return f(x); }); };
  if (c == T(2)) run([](T x) { return x * x; });
  else if (c == T(1)) run([](T x) { return x; });
  else if (c == T(-1)) run([](T x) { return T(1) / x; });
  else if (c == T(0)) run([](T) { return T(1); });  // also for NaN x (C99)
  // pow(-0, 0.5) = +0 and pow(-inf, 0.5) = +inf, where sqrt gives -0, NaN.
  else if (c == T(0.5)) run([inf](T x) { return x == -inf ? inf : m_sqrt(x) + T(0); });
  else if (c == T(1.5)) run([](T x) TG_INLINE_LAMBDA { return k_pow15(x); });
  else return false;
  return true;
}

template <class T>
inline void pow_run(T* o, int64_t so, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) {
  // (always inlined: the FMA float64 kernel is past GCC's inlining budget, and a
  // call per element does not vectorize)
  bin_run_fixup(o, so, a, sa, b, sb, n, [](T x, T y) TG_INLINE_LAMBDA { return k_pow(x, y); },
                [](T x, T y) { return pow_slow(x, y); }, [](T x, T y) { return pow_libm(x, y); });
}
// One exponent c for all elements: GCC does not vectorize the kernel with y
// loop-invariant (it hoists y's tests out as branches: ~5x slower), so c is
// given as a block of copies.
template <class T>
inline void pow_by_block(T* o, int64_t so, const T* a, int64_t sa, T c, int64_t n) {
  T cb[kFixupBlock];
  for (int64_t i = 0; i < kFixupBlock; ++i) cb[i] = c;
  for (int64_t i0 = 0; i0 < n; i0 += kFixupBlock)
    pow_run(o + i0 * so, so, a + i0 * sa, sa, cb, 1, n - i0 < kFixupBlock ? n - i0 : kFixupBlock);
}

// power's derivative factors (the first-order sweep; ops/elementwise.cpp PowRule):
// PowBase(a, b) = b == 0 ? 0 : b a^(b-1), a^(b-1) by the Pow case's own dispatch
// on the exponent b - 1, so the bits are those of the composite where(b == 0,
// 0, b * pow(a, b - 1)); in blocks, b saved first (o may alias it).
template <class T>
inline void pow_base_run(T* o, int64_t so, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n);
// PowExp(a, y = a^b) = a == 0 && |y| <= 1 ? 0 : y log(a): where a is +-0,
// |y| <= 1 exactly when b >= 0 (0^b is 0 or 1; inf for b < 0, NaN for NaN b),
// the composite's where(a == 0 & b >= 0, 0, y * log(a)) without b.
// (Where both are NaN the product's NaN would be either operand's, by the
// compiler's operand order: log's is taken, the Mul kernel's choice.)
template <class T> TG_MATH_INLINE T k_pow_exp(T x, T y) {
  const T l = k_log(x);
  const T v = l != l ? l : y * l;
  return (x == T(0)) & (m_fabs(y) <= T(1)) ? T(0) : v;
}

#include "simd/lae_fixup.hpp"  // h114-logaddexp: float64 logaddexp/logaddexp2 cancelling lanes
#include "simd/lae32.hpp"  // h127-lae32: float32 logaddexp/logaddexp2, short polynomials
// binary() runs logaddexp through lae_run / lae32_run; these are the spec's generated scalar cases (not
// reached), kept to the same bits: their one-element paths.
template <class T> TG_MATH_INLINE T k_logaddexp(T a, T b) {
  if constexpr (sizeof(T) == 4) return tg_lae32::one<false>(a, b);
  else return lae_one<false>(a, b);
}
template <class T> TG_MATH_INLINE T k_logaddexp2(T a, T b) {
  if constexpr (sizeof(T) == 4) return tg_lae32::one<true>(a, b);
  else return lae_one<true>(a, b);
}

template <class T>
void binary(BinaryOp op, T* o, int64_t so, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) {
  auto run = [&](auto f) { bin_run<T>(o, so, a, sa, b, sb, n, f); };
  // (The derivatives of sin and cos take the fix-up pass; their generated
  // cases below are not reached.)
  switch (op) {
    case BinaryOp::SinDeriv:
      return deriv_fixup(o, so, a, sa, b, sb, n, [](T x) { return k_cos(x); }, [](T x) { return cos_libm(x); });
    case BinaryOp::CosDeriv:
      return deriv_fixup(o, so, a, sa, b, sb, n, [](T x) { return -k_sin(x); }, [](T x) { return -sin_libm(x); });
    case BinaryOp::Pow:
      if (sb != 0) return pow_run(o, so, a, sa, b, sb, n);
      if (pow_by_scalar(o, so, a, sa, *b, n)) return;  // (also at n = 1: the same bits as any other run)
      if (n == 1) return pow_run(o, so, a, sa, b, sb, n);
      return pow_by_block(o, so, a, sa, *b, n);
    case BinaryOp::PowBase: return pow_base_run(o, so, a, sa, b, sb, n);
    case BinaryOp::Logaddexp:
      if constexpr (sizeof(T) == 8) return lae_run<false>(o, so, a, sa, b, sb, n);
      else return lae32_run<false>(o, so, a, sa, b, sb, n);
    case BinaryOp::Logaddexp2:
      if constexpr (sizeof(T) == 8) return lae_run<true>(o, so, a, sa, b, sb, n);
      else return lae32_run<true>(o, so, a, sa, b, sb, n);
    case BinaryOp::PowExp: return bin_run<T>(o, so, a, sa, b, sb, n, [](T x, T y) TG_INLINE_LAMBDA { return k_pow_exp(x, y); });
    default: break;
  }
  switch (op) {
    case BinaryOp::Add: run([](T x, T y) { return x + y; }); break;
    case BinaryOp::Sub: run([](T x, T y) { return x - y; }); break;
    case BinaryOp::Mul: run([](T x, T y) { return x * y; }); break;
    case BinaryOp::Div: run([](T x, T y) { return x / y; }); break;
    case BinaryOp::Pow: case BinaryOp::PowBase: case BinaryOp::PowExp: break;  // above
    case BinaryOp::Atan2R2: run([](T x, T y) { return (x == T(0)) & (y == T(0)) ? T(1) : x * x + y * y; }); break;
    // NaN-propagating like np.maximum / np.minimum.
    case BinaryOp::Maximum: run([](T x, T y) { return (x > y || x != x) ? x : y; }); break;
    case BinaryOp::Minimum: run([](T x, T y) { return (x < y || x != x) ? x : y; }); break;
    case BinaryOp::MaxWeight: run([](T x, T y) { return x > y ? T(1) : (x == y ? T(0.5) : T(0)); }); break;
    case BinaryOp::MinWeight: run([](T x, T y) { return x < y ? T(1) : (x == y ? T(0.5) : T(0)); }); break;
    // h90-binary: logaddexp's and logaddexp2's weights sigmoid(a - b), sigmoid((a - b) ln 2) (the
    // composites' bits), fmax's and fmin's.
    case BinaryOp::LogaddexpWeight: run([](T x, T y) TG_INLINE_LAMBDA { return k_sigmoid(x - y); }); break;
    case BinaryOp::Logaddexp2Weight:
      run([](T x, T y) TG_INLINE_LAMBDA { return k_sigmoid((x - y) * T(0.6931471805599453094)); }); break;
    case BinaryOp::FmaxWeight: run([](T x, T y) { return k_fmax_weight(x, y); }); break;
    case BinaryOp::FminWeight: run([](T x, T y) { return k_fmin_weight(x, y); }); break;
    TG_SPEC_DERIV_CASES
  }
}

template <class T>
inline void pow_base_run(T* o, int64_t so, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) {
  T bb[kFixupBlock], bm1[kFixupBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kFixupBlock) {
    const int64_t m = n - i0 < kFixupBlock ? n - i0 : kFixupBlock;
    T* ob = o + i0 * so;
    for (int64_t i = 0; i < m; ++i) {
      bb[i] = b[(i0 + i) * sb];
      bm1[i] = bb[i] - T(1);
    }
    binary<T>(BinaryOp::Pow, ob, so, a + i0 * sa, sa, bm1, sb == 0 ? 0 : 1, m);
    for (int64_t i = 0; i < m; ++i) {  // (a NaN power's own NaN, as the Mul kernel gives, not b's)
      const T p = ob[i * so];
      ob[i * so] = bb[i] == T(0) ? T(0) : (p != p ? p : bb[i] * p);
    }
  }
}

// ----- h133-outer: a column against a row, rows [0, R) of C (kernels/rowbcast.hpp) -----
// o[r C + j] = f(col[r], row[j]) (a_col) or f(row[j], col[r]): bin_run's scalar-operand loop, the same
// operation per element (the same bits), but all the rows in one call: one call through the ISA table
// and one switch per row cost 7-12% of a 4 KB row's time (1M float32 outer). o is a fresh output.
template <class T>
void col_row_run(BinaryOp op, T* __restrict o, const T* col, const T* row, int64_t R, int64_t C, bool a_col) {
  auto run = [&](auto f) {
    for (int64_t r = 0; r < R; ++r) {
      const T c = col[r];
      T* __restrict orow = o + r * C;
      if (a_col) {
        for (int64_t j = 0; j < C; ++j) orow[j] = f(c, row[j]);
      } else {
        for (int64_t j = 0; j < C; ++j) orow[j] = f(row[j], c);
      }
    }
  };
  switch (op) {
    case BinaryOp::Add: return run([](T x, T y) { return x + y; });
    case BinaryOp::Sub: return run([](T x, T y) { return x - y; });
    case BinaryOp::Mul: return run([](T x, T y) { return x * y; });
    case BinaryOp::Div: return run([](T x, T y) { return x / y; });
    default:  // the other ops row by row, as before
      for (int64_t r = 0; r < R; ++r) {
        if (a_col) binary<T>(op, o + r * C, 1, col + r, 0, row, 1, C);
        else binary<T>(op, o + r * C, 1, row, 1, col + r, 0, C);
      }
  }
}

#include "simd/reduce.hpp"  // sum_run, extremum_run, dot_run, vecmat_run
#include "simd/prodvjp.hpp"  // h117-prodgrad: prod_vjp's per-block loops
#include "simd/lastaxis.hpp"  // h123-lastaxis: exp(x - m) and (x - m) - c in one pass

// ----- clip with bounds that are numbers (kernels/select.cpp's one-pass case) -----
// x <= lo ? lo : x, then >= hi ? hi : x: a NaN x compares false and stays, a
// missing bound comes as an infinity. Here rather than in select.cpp, which is
// built for the baseline: there it ran at SSE2's width without a blend
// (float32 1M: 2.6x PyTorch's time). Selects only, so the same bits at any width.
template <class T>
void clip_run(T* o, const T* x, int64_t n, T lo, T hi) {
  for (int64_t i = 0; i < n; ++i) {
    T v = x[i];
    v = v <= lo ? lo : v;
    o[i] = v >= hi ? hi : v;
  }
}

// ----- a fill with one bit pattern (setitem's `M[::2, 1:-1] = c`, `v[ints] = c`) -----
// Here rather than in kernels/layout.cpp, built for the baseline: there the
// fill ran at SSE2's width, 2x PyTorch's time for a 4 MB strided block. A
// copy of bits, so the same result at any width.
template <class E>
void fill_run(E* o, int64_t n, E c) {
  for (int64_t i = 0; i < n; ++i) o[i] = c;
}

// ----- optimizer updates (tapegrad.optim; cpp/src/optim.cpp splits the range) -----
// SGD (PyTorch's convention): d = g + wd w; with momentum buf = mu buf + d,
// d = nesterov ? d + mu buf : buf; w -= lr d.
template <class T>
void sgd_run(T* w, const T* g, T* buf, int64_t n, T lr, T wd, T mu, bool nesterov) {
  if (!buf) {
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
  } else if (nesterov) {
    for (int64_t i = 0; i < n; ++i) {
      T d = g[i] + wd * w[i];
      buf[i] = mu * buf[i] + d;
      w[i] -= lr * (d + mu * buf[i]);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      buf[i] = mu * buf[i] + (g[i] + wd * w[i]);
      w[i] -= lr * buf[i];
    }
  }
}

// Adam / AdamW; the scalars carry the bias corrections (see optim.cpp).
template <class T>
void adam_run(T* w, const T* g, T* m, T* v, int64_t n, const AdamScalars<T>& c) {
  for (int64_t i = 0; i < n; ++i) {
    T gi = c.decoupled ? g[i] : g[i] + c.wd * w[i];
    if (c.decoupled) w[i] *= c.decay;
    m[i] = c.b1 * m[i] + (T(1) - c.b1) * gi;
    v[i] = c.b2 * v[i] + (T(1) - c.b2) * gi * gi;
    w[i] -= c.step_size * m[i] / (m_sqrt(v[i]) * c.rc2 + c.eps);
  }
}

// ----- h98-membound: o = a / s for one divisor s (softmax's e / sum) -----
// A division per element bounded softmax's float64 rows (vdivpd's throughput);
// instead q = a * (1/s) and one correction q + (a - q s) (1/s), the remainder
// exact by fma: Markstein's theorem makes that the correctly rounded a / s
// (1/s rounded to nearest, q faithful), so the bits of the division, in
// every build. It needs no underflow or overflow on the way, so s in [1,
// 2^64] (2^32 for float32) and, per block, every |a| in [2^-896, max]
// (float32 [2^-64, max]); other blocks (zeros, tiny e, inf, NaN), and the
// build without FMA, divide.
template <class T>
void div_by_run(T* o, const T* a, T s, int64_t n) {
#if defined(__FMA__)
  constexpr bool kF64 = sizeof(T) == 8;
  if (s >= T(1) && s <= (kF64 ? T(0x1p64) : T(0x1p32))) {
    const T r = T(1) / s;
    for (int64_t i0 = 0; i0 < n; i0 += kFixupBlock) {
      const int64_t m = n - i0 < kFixupBlock ? n - i0 : kFixupBlock;
      const T* x = a + i0;
      T* y = o + i0;
      // (trig_block_slow's OR of differences: negative iff a lane is out of range)
      using I = std::conditional_t<kF64, int64_t, int32_t>;
      const auto mag = [](T v) { I u; __builtin_memcpy(&u, &v, sizeof u); return I(u & (kF64 ? I(0x7fffffffffffffffLL) : I(0x7fffffff))); };
      const I lo = mag(kF64 ? T(0x1p-896) : T(0x1p-64)), hi = mag(kF64 ? T(__DBL_MAX__) : T(__FLT_MAX__));
      I acc = 0;
      for (int64_t i = 0; i < m; ++i) acc |= (mag(x[i]) - lo) | (hi - mag(x[i]));
      const bool fast = acc >= 0;
      if (fast) {
        for (int64_t i = 0; i < m; ++i) {
          const T q = x[i] * r;
          y[i] = tg_fma(tg_fma(-q, s, x[i]), r, q);
        }
      } else {
        for (int64_t i = 0; i < m; ++i) y[i] = x[i] / s;
      }
    }
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) o[i] = a[i] / s;
}

}  // namespace tg::kern::TG_ISA

