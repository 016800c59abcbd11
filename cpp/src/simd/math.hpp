// Vectorizable float64 transcendental functions (included by simd/loops.hpp
// inside its per-ISA namespace; no namespace of its own).
//
// glibc's scalar exp/log/sin/... do not vectorize. These are plain
// arithmetic with selects instead of branches, so the compiler vectorizes a
// loop over them, and with -ffp-contract=off every build (SSE2, AVX2,
// AVX-512) gives the same bits. Polynomials and reductions are FreeBSD msun's
// (fdlibm: e_exp.c, e_log.c, s_log1p.c, k_sin.c, k_cos.c, e_rem_pio2.c),
// made branch-free (asin, acos, atan, atan2: at the end, with fma); each is within 1 ulp of the correctly
// rounded value in its source's analysis, and tests/test_kernels_fastpaths.py
// measures every one (bars: 2 ulp float64, 1 ulp float32) on >= 10^6 points
// against a long double oracle.
// FMA: only where a kernel writes tg_fma (below), one rounding and the same
// bits in every build. exp (SLEEF's xexp u10 polynomial, no division; 0.75
// ulp max measured on 4M points), tanh (0.76 ulp) and sigmoid (0.76 ulp),
// each down to one division; log_kernel (log, log1p, softplus) fuses its
// polynomial and tail (0.83 ulp log, 0.83 log1p on 10^6 points); softplus
// takes both (1.26-1.43 ulp); sin, cos, tan and the inverse trig: their own
// sections say how, and their accuracy.

// Always inlined: a call left out of line (GCC's budget gives out when one
// loop body holds several of these) stops the loop from vectorizing.
#define TG_MATH_INLINE inline __attribute__((always_inline))
// The spec-generated loop cases' lambdas (loop_cases.inc): GCC's inliner may
// otherwise leave a case's lambda out of line, one call per element and no
// vectorizing (arctan2 was 135 ns per element that way).
#define TG_INLINE_LAMBDA __attribute__((always_inline))

// a * b + c rounded once (fused multiply-add), the same bits in every build:
// the AVX2 and AVX-512 loop builds (-mfma) emit vfmadd, vectorized; the SSE2
// baseline build calls libm's fma, which is exact by contract (glibc uses the
// CPU's FMA where it has one and an exact software path where it has none),
// scalar and ~5x slower per operation (4.6 vs 0.85 ns in a Horner chain here).
// Implicit contraction stays off (-ffp-contract=off): a kernel fuses only
// where it says tg_fma, so every build rounds at the same places.
TG_MATH_INLINE double tg_fma(double a, double b, double c) { return __builtin_fma(a, b, c); }
TG_MATH_INLINE float tg_fmaf(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
// (The float overload lets code templated on the width write tg_fma for both.)
TG_MATH_INLINE float tg_fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }

TG_MATH_INLINE double tg_bits_to_f64(uint64_t b) {
  double d;
  __builtin_memcpy(&d, &b, 8);
  return d;
}
TG_MATH_INLINE uint64_t tg_f64_to_bits(double d) {
  uint64_t b;
  __builtin_memcpy(&b, &d, 8);
  return b;
}

constexpr double kTgShifter = 6755399441055744.0;  // 1.5 * 2^52: x + it rounds x to an integer in the low bits
constexpr double kTgInf = __builtin_inf();
constexpr double kTgNaN = __builtin_nan("");

// 2^k for an integer-valued kd in [-1022, 1023], from the exponent bits.
TG_MATH_INLINE double tg_pow2i(double kd) {
  uint64_t b = tg_f64_to_bits(kd + kTgShifter);  // k's two's complement bits are the low bits
  return tg_bits_to_f64((b + 1023) << 52);
}

// e^x with FMA, SLEEF's xexp (u10) reduction and polynomial, no division:
// x = k ln2 + s (|s| <= ln2/2; ln2 in two parts, the first short enough that
// x - k ln2_hi is exact, s's rounding error s_err kept by one more fma),
// e^s = 1 + s + s^2 P(s), P of degree 10 by Estrin (error < 2^-58 relative);
// 1 + s summed exactly (Fast2Sum) and the rest added once, so hi + lo is
// e^s to ~2^-56. e^x = 2^k e^s scaled in two steps (2^(k/2) twice) so
// subnormal and near-overflow results round only once. Valid for x in
// [-746, 710] (callers clamp, or select their result elsewhere: no clamp here,
// it cost 10 instructions per vector, GCC not using vmaxpd/vminpd for it).
// *lo gets the last rounding's error (e^x ~ hi + lo to ~2^-56 relative):
// sigmoid, softplus and tanh use it so that exp's error does not add to theirs.
// e^s - 1 - s - s_err... to 2^-58 relative for |s| <= ln2/2 (no reduction):
// s^2 P(s) + s_err, P of degree 10 by Estrin (exp_dd's core; float64 pow's too).
TG_MATH_INLINE double exp_poly(double s, double s_err) {
  double s2 = s * s, s4 = s2 * s2, s8 = s4 * s4;
  double p = tg_fma(s8, tg_fma(s, 0.2081276378237164457e-8, 0.2511210703042288022e-7),
                    tg_fma(s4,
                           tg_fma(s2, tg_fma(s, 0.2755762628169491192e-6, 0.2755723402025388239e-5),
                                  tg_fma(s, 0.2480158687479686264e-4, 0.1984126989855865850e-3)),
                           tg_fma(s2, tg_fma(s, 0.1388888888914497797e-2, 0.8333333333314938210e-2),
                                  tg_fma(s, 0.4166666666666602598e-1, 0.1666666666666669072e+0))));
  p = tg_fma(p, s, 0.5);
  return tg_fma(s2, p, s_err);
}

// 2^k e^(s + s_err), |s| <= ln2/2, k = kd in [-1075, 1024]: exp_dd's second half (exp2 shares it).
TG_MATH_INLINE double exp_dd_from(double kd, double s, double s_err, double* lo) {
  double q = exp_poly(s, s_err);  // e^s - 1 - s, |q| < 0.07
  double h = 1.0 + s;
  double l = ((1.0 - h) + s) + q;  // Fast2Sum (1 >= |s|) plus q
  double y = h + l;
  double y_lo = (h - y) + l;  // Fast2Sum: exact
  double k1 = (kd * 0.5 + kTgShifter) - kTgShifter;
  double s1 = tg_pow2i(k1), s2k = tg_pow2i(kd - k1);
  *lo = y_lo * s1 * s2k;
  return y * s1 * s2k;
}

TG_MATH_INLINE double exp_dd(double x, double* lo) {
  const double inv_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931;
  const double ln2_hi = .69314718055966295651160180568695068359375, ln2_lo = .28235290563031577122588448175013436025525412068e-12;
  double kd = tg_fma(x, inv_ln2, kTgShifter) - kTgShifter;  // round to nearest
  double sh = tg_fma(kd, -ln2_hi, x);                          // exact: k ln2_hi has 43 bits, Sterbenz
  double s = tg_fma(kd, -ln2_lo, sh);
  double s_err = tg_fma(kd, -ln2_lo, sh - s);  // (sh - s exact)
  return exp_dd_from(kd, s, s_err, lo);
}

TG_MATH_INLINE double exp_f64(double x) {
  const double o_threshold = 7.09782712893383973096e+02, u_threshold = -7.45133219101941108420e+02;
  double lo;
  double res = exp_dd(x, &lo);
  // Two compares and blends: NaN fails both and gets x + inf = x (quiet).
  res = x >= u_threshold ? res : 0.0;
  return x <= o_threshold ? res : x + kTgInf;
}

// fdlibm's log(1 + f) for f = m - 1, m in [sqrt(2)/2, sqrt(2)): s = f/(2+f),
// log(1+f) = f - hfsq + s (hfsq + R(s^2)), R a degree-7 minimax (error <
// 2^-58.45); returns k ln2 + that + c, c a correction below f's ulp. With
// FMA: R by Estrin in fused steps, s (hfsq + R) + (k ln2_lo + c) rounded
// once (fewer roundings than fdlibm's; the bound holds).
TG_MATH_INLINE double log_kernel(double f, double kd, double c) {
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01,
               Lg4 = 2.222219843214978396e-01, Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
               Lg7 = 1.479819860511658591e-01;
  double hfsq = 0.5 * f * f;
  double s = f / (2.0 + f);
  double z = s * s, w = z * z;
  double t1 = w * tg_fma(w, tg_fma(w, Lg6, Lg4), Lg2);
  double R = tg_fma(z, tg_fma(w, tg_fma(w, tg_fma(w, Lg7, Lg5), Lg3), Lg1), t1);
  return kd * ln2_hi - ((hfsq - tg_fma(s, hfsq + R, tg_fma(kd, ln2_lo, c))) - f);
}

// Splits a positive normal x into 2^k * m, m in [sqrt(2)/2, sqrt(2)) (fdlibm's
// bit manipulation on the whole 64-bit word); k as an exact double.
TG_MATH_INLINE double split_exponent(double x, double* kd) {
  uint64_t b = tg_f64_to_bits(x) + ((uint64_t(0x3ff00000) - 0x3fe6a09e) << 32);
  uint64_t e = (b >> 52) & 0x7ff;
  *kd = tg_bits_to_f64(0x4330000000000000ULL | e) - (4503599627370496.0 + 1023.0);
  return tg_bits_to_f64((b & 0x000fffffffffffffULL) + (uint64_t(0x3fe6a09e) << 32));
}

// Natural log, fdlibm e_log.c; subnormal x scaled by 2^54 first.
TG_MATH_INLINE double log_f64(double x) {
  bool sub = x < 0x1p-1022;
  double xs = sub ? x * 0x1p54 : x;
  double kd;
  double m = split_exponent(xs, &kd);
  kd = sub ? kd - 54.0 : kd;
  double res = log_kernel(m - 1.0, kd, 0.0);
  res = x == kTgInf ? x : res;
  res = x == 0.0 ? -kTgInf : res;
  res = x < 0.0 ? kTgNaN : res;
  return x != x ? x : res;
}

// log(1 + x), fdlibm s_log1p.c: u = 1 + x split as in log; where k = 0 the
// kernel takes x itself, else u's rounding error, c = ((1 + x) - u) / u, is
// added back.
TG_MATH_INLINE double log1p_f64(double x) {
  double u = 1.0 + x;
  double kd;
  double m = split_exponent(u, &kd);
  // (u >= 2: u - x is exact; below, u - 1 is)
  double c = (u >= 2.0 ? 1.0 - (u - x) : x - (u - 1.0)) / u;
  bool k0 = kd == 0.0;
  double res = log_kernel(k0 ? x : m - 1.0, kd, k0 ? 0.0 : c);
  res = x == kTgInf ? x : res;
  res = x == -1.0 ? -kTgInf : res;
  res = x < -1.0 ? kTgNaN : res;
  res = x == 0.0 ? x : res;  // keeps -0
  return x != x ? x : res;
}

// ----- sin, cos, tan, float64 and float32 (FMA) ---------------------------------
// One template for both widths (float arithmetic at the full float vector
// width for float32): x = n pi/2 + (h + l) by a three-part Cody-Waite
// reduction with fma (trig_reduce), sin and cos of h + l on |h| <= pi/4 as
// head + tail pairs (trig_sincos: fdlibm k_sin/k_cos forms, Horner with fma),
// the quadrant selecting the pair per lane (cos); tan divides the two pairs
// once and corrects the quotient with fma. sin reduces by pi instead and
// evaluates one odd polynomial per lane (trig_sin_pi). Branch-free, so the
// loops vectorize. Measured (tests/test_kernels_fastpaths.py, benchmarks/README
// "sin, cos, tan on FMA (h64)" and "h73-sincos"): float64 at most 0.74 (sin),
// 0.69 (cos), 0.79 (tan) ulp; float32 0.807, 0.718, 0.856 ulp on every 17th
// block of all floats (cpp/tools/exhaustive_f32.sh --stride 17; the full
// sweep: not yet).
// Beyond the bounds, and inf/NaN, the lanes take the scalar libm fix-up
// (trig_slow in simd/loops.hpp): the reduction holds only for |n| < 2^20.
constexpr double kTrigBound = 1647099.0;  // 2^20 * pi/2
constexpr float kTrigBoundF = 1600.0f;

TG_MATH_INLINE float tg_bits_to_f32(uint32_t b) {
  float f;
  __builtin_memcpy(&f, &b, 4);
  return f;
}
TG_MATH_INLINE uint32_t tg_f32_to_bits(float f) {
  uint32_t b;
  __builtin_memcpy(&b, &f, 4);
  return b;
}

TG_MATH_INLINE uint64_t trig_bits(double x) { return tg_f64_to_bits(x); }
TG_MATH_INLINE uint32_t trig_bits(float x) { return tg_f32_to_bits(x); }

// x = n pi/2 + (h + l), |h + l| <= pi/4 (about), for |x| <= the bound (other
// lanes, inf and NaN: garbage, overwritten by the fix-up); returns n's bits
// (n mod 4 in the low two). pi/2 = P1 + P2 + P3 (53-bit parts; float: 24):
// a = x - n P1 is exact (one fma: for n != 0, x and n P1 are multiples of
// ulp(P1)/2 and the difference is below 1); h = a - p, p = n P2 rounded, and
// a - h is exact (Fast2Sum's first step, valid also where |a| < |p|: a is
// then a multiple of ulp(p)); (a - h) - n P2 is below ulp(h) and takes one
// rounding in its fma, so h + l carries n P2 to ~2^-53 ulp(h); n P3 rounded:
// its error and pi/2's truncation are below 2^-140 (float: 2^-63) absolute:
// 2^-60 relative even for an x 2^-80 from a multiple of pi/2 (float32:
// every float checked, cpp/tools/exhaustive_f32.cpp; float64: the tests at
// the doubles nearest n pi/2).
// K = 2: the same by pi (x = n pi + (h + l), |h + l| <= pi/2; every part
// scaled by 2 exactly, so the products are those of 2n: the same accuracy; a
// stays exact: for n != 0, |x| >= pi/2 is a multiple of ulp(2 P1)/2 and |a| < 2).
template <class T, int K = 1> TG_MATH_INLINE auto trig_reduce(T x, T* h, T* l) {
  const bool f = sizeof(T) == 4;
  const T inv_pio2 = (f ? T(0x1.45f306p-1f) : T(0x1.45f306dc9c883p-1)) / T(K);
  const T shifter = f ? T(12582912.0f) : T(kTgShifter);  // 1.5 * 2^23, 1.5 * 2^52
  const T p1 = (f ? T(0x1.921fb6p+0f) : T(0x1.921fb54442d18p+0)) * T(K);
  const T p2 = (f ? T(-0x1.777a5cp-25f) : T(0x1.1a62633145c07p-54)) * T(K);
  const T p3 = (f ? T(-0x1.ee59dap-50f) : T(-0x1.f1976b7ed8fbcp-110)) * T(K);
  T nsh = tg_fma(x, inv_pio2, shifter);
  auto q = trig_bits(nsh);
  T fn = nsh - shifter;
  T a = tg_fma(-fn, p1, x);
  T s = a - fn * p2;
  *l = tg_fma(-fn, p3, tg_fma(-fn, p2, a - s));
  *h = s;
  return q;
}

// sin(h + l) ~ *sh + *sl and cos(h + l) ~ *ch + *cl for |h| <= pi/4 (about),
// |l| <= ulp(h): sin = h + (h z S(z) + l (1 - z/2)), z = h^2; cos = w + (e +
// z^2 C(z) - h l), w = 1 - h^2/2 rounded once (fma) and e its rounding error,
// again one fma (1 - w is exact, the result below ulp(w)). fdlibm's
// minimax S, C (float: Taylor, truncation below 2^-28 relative). The tails
// are at most 0.11 of the heads, so their rounding errors count a tenth.
template <class T> TG_MATH_INLINE void trig_sincos(T h, T l, T* sh, T* sl, T* ch, T* cl) {
  const bool f = sizeof(T) == 4;
  const T S1 = f ? T(-1.0f / 6) : T(-1.66666666666666324348e-01);
  const T S2 = f ? T(1.0f / 120) : T(8.33333333332248946124e-03);
  const T S3 = f ? T(-1.0f / 5040) : T(-1.98412698298579493134e-04);
  const T S4 = f ? T(1.0f / 362880) : T(2.75573137070700676789e-06);
  const T C1 = f ? T(1.0f / 24) : T(4.16666666666666019037e-02);
  const T C2 = f ? T(-1.0f / 720) : T(-1.38888888888741095749e-03);
  const T C3 = f ? T(1.0f / 40320) : T(2.48015872894767294178e-05);
  const T C4 = f ? T(-1.0f / 3628800) : T(-2.75573143513906633035e-07);
  T z = h * h;
  T ps, pc;
  if constexpr (sizeof(T) == 4) {
    ps = tg_fma(z, tg_fma(z, tg_fma(z, S4, S3), S2), S1);
    pc = tg_fma(z, tg_fma(z, tg_fma(z, C4, C3), C2), C1);
  } else {
    const T S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
    const T C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
    ps = tg_fma(z, tg_fma(z, tg_fma(z, tg_fma(z, tg_fma(z, S6, S5), S4), S3), S2), S1);
    pc = tg_fma(z, tg_fma(z, tg_fma(z, tg_fma(z, tg_fma(z, C6, C5), C4), C3), C2), C1);
  }
  T hz = T(0.5) * z;
  *sh = h;
  *sl = tg_fma(h * z, ps, tg_fma(-hz, l, l));
  T mh = T(-0.5) * h;
  T w = tg_fma(mh, h, T(1));
  *ch = w;
  *cl = tg_fma(z * z, pc, tg_fma(-h, l, tg_fma(mh, h, T(1) - w)));
}

// -r where q & 2 (q's bit 1 moved to the sign bit: no mask, no select).
template <class T, class U> TG_MATH_INLINE T trig_flip(T r, U q) {
  constexpr int k = 8 * sizeof(T) - 2;
  U b = trig_bits(r) ^ ((q << k) & (U(1) << (k + 1)));
  if constexpr (sizeof(T) == 4) return tg_bits_to_f32(b);
  else return tg_bits_to_f64(b);
}

// cos x = sin(x + pi/2): sin(r + n pi/2) is +-sin r for even n, +-cos r for
// odd, negative where n & 2.
template <class T> TG_MATH_INLINE T trig_cos(T x) {
  T h, l, sh, sl, ch, cl;
  auto q = trig_reduce(x, &h, &l) + 1;
  trig_sincos(h, l, &sh, &sl, &ch, &cl);
  bool odd = q & 1;
  T r = odd ? ch : sh;
  r += odd ? cl : sl;
  return trig_flip(r, q);
}

// sin x = (-1)^n sin(h + l), x = n pi + (h + l), |h| <= pi/2 (SLEEF's xsin_u1
// form with fma): one odd polynomial per lane instead of trig_cos's two and
// the select (trig_reduce<T, 2>: |n| < 2^19 within the bound). sin(h + l) = (h + l) X, X = 1 + m, m = Z (c6 + Z
// u(Z)), Z = (h + l)^2 = sx + sy (sx = h^2, sy its rounding error plus 2 h
// l, both by fma); m's head c6 sx with its rounding error (fma), the rest a
// tail below 0.13 of it (to first order in sy: c6 sy + 2 u sx sy); 1 + m by
// Fast2Sum, then (h + l) X with one rounding at the end. SLEEF's u1
// coefficients (u: degree 6 in Z, float: 2). The parity of n in the
// shifter's low bit becomes the sign bit.
template <class T> TG_MATH_INLINE T trig_sin_pi(T x) {
  T h, l;
  auto q = trig_reduce<T, 2>(x, &h, &l);
  T sx = h * h;
  T sy = tg_fma(h + h, l, tg_fma(h, h, -sx));
  T u, c6;
  if constexpr (sizeof(T) == 4) {
    u = tg_fma(tg_fma(T(2.6083159809786593541503e-06f), sx, T(-0.0001981069071916863322258f)), sx,
               T(0.00833307858556509017944336f));
    c6 = -0.166666597127914428710938f;
  } else {
    u = tg_fma(2.72052416138529567917983e-15, sx, -7.64292594113954471900203e-13);
    u = tg_fma(u, sx, 1.60589370117277896211623e-10);
    u = tg_fma(u, sx, -2.5052106814843123359368e-08);
    u = tg_fma(u, sx, 2.75573192104428224777379e-06);
    u = tg_fma(u, sx, -0.000198412698412046454654947);
    u = tg_fma(u, sx, 0.00833333333333318056201922);
    c6 = -0.166666666666666657414808;
  }
  T mx = c6 * sx;
  T w = u * sx;
  T my = tg_fma(w, sx, tg_fma(tg_fma(w, T(2), c6), sy, tg_fma(c6, sx, -mx)));
  T X = T(1) + mx;
  T Xl = ((T(1) - X) + mx) + my;
  T r = tg_fma(h, X, tg_fma(h, Xl, l * X));
  r = trig_flip(r, q << 1);
  return x == T(0) ? x : r;  // keeps -0
}
// tan = sin / cos (odd n: -cos / sin) from the pairs: each pair summed to
// head + tail (Fast2Sum), one division for the reciprocal of the
// denominator's head, the quotient corrected once with the fma residual.
template <class T> TG_MATH_INLINE T trig_tan(T x) {
  T h, l, sh, sl, ch, cl;
  auto q = trig_reduce(x, &h, &l);
  trig_sincos(h, l, &sh, &sl, &ch, &cl);
  bool odd = q & 1;
  T nh = odd ? -ch : sh, nl = odd ? -cl : sl;
  T dh = odd ? sh : ch, dl = odd ? sl : cl;
  T n = nh + nl, d = dh + dl;
  nl = (nh - n) + nl;
  dl = (dh - d) + dl;
  T rcp = T(1) / d;
  T q0 = n * rcp;
  T e = tg_fma(-q0, dl, tg_fma(-q0, d, n) + nl);
  T r = tg_fma(e, rcp, q0);
  return x == T(0) ? x : r;  // keeps -0
}

// sin/cos/tan for |x| <= kTrigBound (float32: kTrigBoundF; other lanes: see
// trig_fixup in loops.hpp).
TG_MATH_INLINE double sin_f64(double x) { return trig_sin_pi(x); }
TG_MATH_INLINE double cos_f64(double x) { return trig_cos(x); }
TG_MATH_INLINE double tan_f64(double x) { return trig_tan(x); }
TG_MATH_INLINE float sin_f32(float x) { return trig_sin_pi(x); }
TG_MATH_INLINE float cos_f32(float x) { return trig_cos(x); }
TG_MATH_INLINE float tan_f32(float x) { return trig_tan(x); }

// tanh |x| = -m / (2 + m) (float or double; no cancellation anywhere: 2 + m >=
// 1) from m = e^(-2|x|) - 1 = 2^k (1 + u + ue) - 1, u + ue = e^s - 1 from the
// caller's exp reduction and polynomial, sc = 2^k (k <= 0): m = (2^k - 1) +
// 2^k u as a pair mh + ml (Fast2Sum: 2^k - 1 is 0 or at least 1/2 in
// magnitude, |2^k u| < 1/4; 2^k ue and 2^k - 1's own rounding error, nonzero
// where k is below -(significand bits), in the tail); 2 + m likewise; the
// quotient by one reciprocal whose error the exact fma residual removes.
template <class T> TG_MATH_INLINE T tanh_finish(T sc, T u, T ue) {
  T sm1 = sc - T(1), su = sc * u;
  T sm1e = (T(-1) - sm1) + sc;  // exact (Fast2Sum)
  T mh = sm1 + su;
  T ml = ((sm1 - mh) + su) + (sc * ue + sm1e);
  T dh = T(2) + mh;
  T dl = ((T(2) - dh) + mh) + ml;
  T inv = T(1) / dh;
  T q = -mh * inv;
  return tg_fma((tg_fma(q, dh, mh) + ml) + q * dl, -inv, q);  // -(mh + ml) / (dh + dl)
}

// tanh in double: tanh_finish with exp_dd's reduction and polynomial (no
// separate rational function near 0: Cephes' below 0.625, plus exp_dd's whole
// scaling, was the form before). |x| capped at 19.5, where tanh rounds to 1.
TG_MATH_INLINE double tanh_f64(double x) {
  const double inv_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931;
  const double ln2_hi = .69314718055966295651160180568695068359375, ln2_lo = .28235290563031577122588448175013436025525412068e-12;
  double a = x < 0 ? -x : x;
  a = a > 19.5 ? 19.5 : a;
  double c = -2.0 * a;
  double kd = tg_fma(c, inv_ln2, kTgShifter) - kTgShifter;
  double sh = tg_fma(kd, -ln2_hi, c);  // exact (exp_dd)
  double s = tg_fma(kd, -ln2_lo, sh);
  double q = exp_poly(s, tg_fma(kd, -ln2_lo, sh - s));  // e^s - 1 - s
  double u = s + q;
  double t = tanh_finish(tg_pow2i(kd), u, (s - u) + q);  // (Fast2Sum: |s| >= |q|)
  double r = x < 0 ? -t : t;
  r = x == 0.0 ? x : r;  // keeps -0
  return x != x ? x : r;
}

// sigmoid from e = e^-|x| as the pair e + e_lo (float or double): 1 / (1 + e),
// or e / (1 + e) where neg; 1 + e as a pair (Fast2Sum: 1 >= e), one
// reciprocal, its error removed by the exact fma residual.
// (exp_sigmoid_parts: the quotient q unrounded, q + *res * *inv; silu and
// gelu multiply that by x with one rounding.)
template <class T> TG_MATH_INLINE T exp_sigmoid_parts(T e, T e_lo, bool neg, T* res, T* inv) {
  T s = T(1) + e;
  T s_lo = ((T(1) - s) + e) + e_lo;
  T num = neg ? e : T(1), num_lo = neg ? e_lo : T(0);
  *inv = T(1) / s;
  T q = num * *inv;
  *res = (tg_fma(-q, s, num) + num_lo) - q * s_lo;
  return q;
}
template <class T> TG_MATH_INLINE T exp_sigmoid_finish(T e, T e_lo, bool neg) {
  T res, inv;
  T q = exp_sigmoid_parts(e, e_lo, neg, &res, &inv);
  return tg_fma(res, inv, q);
}

// 1 / (1 + e^-x), stable on both sides (e = e^-|x| <= 1): e as hi + lo and
// 1 + e as a double-double; one reciprocal, its error removed by the exact
// fma residual, so only the last rounding remains. e is exp_dd's e^-|x| with
// |x| capped at 746 (e^-746 rounds to 0) and 2^k applied as 2^(k + 600),
// exact, then 2^-600, rounding once: exp_dd's bits, 2^(k + 600) from the
// shifted k's low bits in two integer operations (exp_dd's two-step scaling
// takes ten; -4% kernel time).
// (exp_neg_abs_p600: e^-|x| 2^600 as *hi + *lo, exact scaling, |x| capped at
// cap <= 1100 (sigmoid: 746); with kWithLo, x_lo is a low part of the
// argument, |x_lo| <= ulp(x): e^-|x + x_lo|, added to the reduced argument.)
template <bool kWithLo = false>
TG_MATH_INLINE void exp_neg_abs_p600(double x, double x_lo, double cap, double* hi, double* lo) {
  const double inv_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931;
  const double ln2_hi = .69314718055966295651160180568695068359375, ln2_lo = .28235290563031577122588448175013436025525412068e-12;
  double a = __builtin_fabs(x);
  a = a < cap ? a : cap;  // (a NaN lane: cap, and x below)
  double ks = tg_fma(a, -inv_ln2, kTgShifter);  // k + 1.5 * 2^52, k = round(-a / ln2)
  double kd = ks - kTgShifter;
  double sh = tg_fma(kd, -ln2_hi, -a);  // exact (exp_dd)
  double s = tg_fma(kd, -ln2_lo, sh);
  double s_err = tg_fma(kd, -ln2_lo, sh - s);
  if constexpr (kWithLo) {  // s + s_err += the low part, TwoSum (exp_poly takes s_err only to first order)
    double xl = x < 0 ? x_lo : -x_lo;
    double s2 = s + xl, sb = s2 - s;
    s_err += (s - (s2 - sb)) + (xl - sb);
    s = s2;
  }
  double q = exp_poly(s, s_err);  // e^s - 1 - s
  double h = 1.0 + s;
  double l = ((1.0 - h) + s) + q;  // (exp_dd's sums)
  double y = h + l;
  double y_lo = (h - y) + l;
  double p = tg_bits_to_f64((tg_f64_to_bits(ks) + (1023 + 600)) << 52);  // 2^(k + 600), k in [-1077, 0] (cap 746)
  *hi = y * p;
  *lo = y_lo * p;
}
TG_MATH_INLINE double sigmoid_f64(double x) {
  double hi, lo;
  exp_neg_abs_p600(x, 0.0, 746.0, &hi, &lo);
  double r = exp_sigmoid_finish(hi * 0x1p-600, lo * 0x1p-600, x < 0);
  return x != x ? x : r;
}

// log(1 + e^x) = max(x, 0) + log1p(e^-|x|), e^-|x| = e + e_lo: log1p(e + e_lo)
// ~ log1p(e) + e_lo / (1 + e).
TG_MATH_INLINE double softplus_f64(double x) {
  double a = x < 0 ? -x : x;
  double e_lo;
  double e = exp_dd(-a, &e_lo);
  e = a > 746.0 ? 0.0 : e;
  e_lo = a > 746.0 ? 0.0 : e_lo;
  double r = (x > 0.0 ? x : 0.0) + (log1p_f64(e) + e_lo / (1.0 + e));
  return x != x ? x : r;
}

// ----- Inverse trigonometric functions --------------------------------------
// FMA-era algorithms (SLEEF's xasin_u1/xacos_u1, ARM optimized-routines'
// asin/acos structure; fdlibm's s_atan.c/e_atan2.c reduction for arctan),
// polynomials by tg_fma Horner, branches all computed and one selected.
// Measured max error against long double (tests/test_kernels_fastpaths.py
// holds arcsin, arccos, arctan to 1 ulp): arcsin 0.80, arccos 0.70, arctan
// 0.75, arctan2 1.24 ulp (its q = y/x rounding, e_atan2.c's).

constexpr double kPio2Hi = 1.57079632679489655800e+00, kPio2Lo = 6.12323399573676603587e-17;
constexpr double kPio4Hi = 7.85398163397448278999e-01;
constexpr double kPiHi = 3.14159265358979311600e+00, kPiLo = 1.2246467991473531772e-16;
// float32's pi/2, pi/4, pi as float head (round to nearest) + tail.
constexpr float kPio2HiF = 0x1.921fb6p+0f, kPio2LoF = -0x1.777a5cp-25f, kPio4HiF = 0x1.921fb6p-1f,
                kPio4LoF = -0x1.777a5cp-26f, kPiHiF = 0x1.921fb6p+1f, kPiLoF = -0x1.777a5cp-24f;

// SLEEF's asin polynomial: asin(s) = s + s z P(z), z = s^2 <= 1/4 (degree 11,
// Horner by fma).
TG_MATH_INLINE double asin_r(double z) {
  double p = tg_fma(z, 0.3161587650653934628e-1, -0.1581918243329996643e-1);
  p = tg_fma(z, p, 0.1929045477267910674e-1);
  p = tg_fma(z, p, 0.6606077476277170610e-2);
  p = tg_fma(z, p, 0.1215360525577377331e-1);
  p = tg_fma(z, p, 0.1388715184501609218e-1);
  p = tg_fma(z, p, 0.1735956991223614604e-1);
  p = tg_fma(z, p, 0.2237176181932048341e-1);
  p = tg_fma(z, p, 0.3038195928038132237e-1);
  p = tg_fma(z, p, 0.4464285681377102438e-1);
  p = tg_fma(z, p, 0.7500000000378581611e-1);
  return tg_fma(z, p, 0.1666666666666497543e+0);
}

// copysign for float and double alike (asin_reduce, asin_from, acos_from).
template <class T> TG_MATH_INLINE T asin_copysign(T a, T b) {
  if constexpr (sizeof(T) == 4) return __builtin_copysignf(a, b);
  else return __builtin_copysign(a, b);
}
template <class T> struct AsinPartsT {
  T a, z, s, c, m, p;
};
using AsinParts = AsinPartsT<double>;
using AsinPartsF = AsinPartsT<float>;
// The reduction asin and acos share: |x| < 0.5: z = x^2, v = |x|; else
// asin|x| = pi/2 - 2 asin(s), s = sqrt(z), z = (1 - |x|)/2 (exact), v = s,
// with s's rounding error c (s + c = sqrt(z) to ~2^-100: z - s^2 exact by
// fma, over 2s; 1/s from a bit-trick seed (3.5%), no divide: |c| <=
// ulp(s)/2, so the seed's error costs <= 0.035 ulp). m = v z: asin(v) = v +
// m P(z).
// (p = P(z) is left to the caller: float and double differ.)
template <class T> TG_MATH_INLINE AsinPartsT<T> asin_reduce(T x) {
  AsinPartsT<T> q;
  T y;
  if constexpr (sizeof(T) == 4) {
    q.a = __builtin_fabsf(x);
    q.z = q.a < 0.5f ? x * x : (1.0f - q.a) * 0.5f;
    q.s = __builtin_sqrtf(q.z);
    y = tg_bits_to_f32(0x5f375a86u - (tg_f32_to_bits(q.z) >> 1));  // ~1/sqrt(z), 3.5%
  } else {
    q.a = __builtin_fabs(x);
    q.z = q.a < 0.5 ? x * x : (1.0 - q.a) * 0.5;
    q.s = __builtin_sqrt(q.z);
    y = tg_bits_to_f64(0x5fe6eb50c7b537a9ULL - (tg_f64_to_bits(q.z) >> 1));
  }
  q.c = tg_fma(-q.s, q.s, q.z) * (T(0.5) * y);
  q.m = (q.a < T(0.5) ? q.a : q.s) * q.z;
  return q;
}
TG_MATH_INLINE AsinParts asin_parts(double x) {
  AsinParts q = asin_reduce(x);
  q.p = asin_r(q.z);
  return q;
}

// asin and acos from the parts (float64 and float32 alike; P is AsinParts or
// AsinPartsF): each ends as A + B + (alo + bc + bm P), A + B by Fast2Sum
// (A = 0 or |A| > |B|), the rest its tail, rounded once at the end.
template <class T, class P> TG_MATH_INLINE T asin_sum(const P& q, T A, T alo, T B, T bc, T bm) {
  T h = A + B;
  return h + tg_fma(bm, q.p, ((B - (h - A)) + alo) + bc);
}
// |x| < 0.5: |x| + m P; else pi/2 - 2 (s + c + m P); then x's sign. (The
// terms selected first, one sum for both branches.)
template <class T, class P> TG_MATH_INLINE T asin_from(T x, const P& q, T pio2, T pio2lo) {
  bool small = q.a < T(0.5);
  T res = asin_sum<T>(q, small ? T(0) : pio2, small ? T(0) : pio2lo, small ? q.a : T(-2) * q.s,
                      small ? T(0) : T(-2) * q.c, small ? q.m : T(-2) * q.m);
  res = asin_copysign(res, x);  // (|x| > 1: sqrt(z < 0) is NaN, and so is res)
  return x != x ? x : res;
}
// |x| < 0.5: pi/2 - (x + x z P); x >= 0.5: 2 (s + c + m P); x <= -0.5:
// pi - 2 (s + c + m P).
template <class T, class P> TG_MATH_INLINE T acos_from(T x, const P& q, T pio2, T pio2lo, T pi, T pilo) {
  bool small = q.a < T(0.5);
  T A = small ? pio2 : (x < 0 ? pi : T(0)), alo = small ? pio2lo : (x < 0 ? pilo : T(0));
  T s2 = asin_copysign(T(2), x);
  T res = asin_sum<T>(q, A, alo, small ? -x : s2 * q.s, small ? T(0) : s2 * q.c, small ? -(x * q.z) : s2 * q.m);
  return x != x ? x : res;  // (|x| > 1: NaN from sqrt(z < 0))
}
TG_MATH_INLINE double asin_f64(double x) { return asin_from(x, asin_parts(x), kPio2Hi, kPio2Lo); }
TG_MATH_INLINE double acos_f64(double x) { return acos_from(x, asin_parts(x), kPio2Hi, kPio2Lo, kPiHi, kPiLo); }

// s_atan.c's reduction of a = |x| >= 0 (float and double alike): t = (a -
// c) / (1 + c a) for c = 1/2, 1, 3/2 (a - c exact by Sterbenz on each
// interval, 1 + c a rounded once by fma; fdlibm's (2a - 1) / (2 + a) is the
// same quotient), t = -1/a beyond 39/16, t = a below 7/16; atan(c) = hi + lo.
// The selects pick c, hi and lo; one division.
template <class T> TG_MATH_INLINE T atan_reduce(T a, T& hi, T& lo) {
  T h1, l1, h2, l2, h3, l3, h4, l4;  // atan(1/2), atan(1), atan(3/2), atan(inf) as head + tail
  if constexpr (sizeof(T) == 4) {
    h1 = 0x1.dac67p-2f, l1 = 0x1.586ed4p-28f, h2 = kPio4HiF, l2 = kPio4LoF;
    h3 = 0x1.f730bep-1f, l3 = -0x1.afc12cp-26f, h4 = kPio2HiF, l4 = kPio2LoF;
  } else {
    h1 = 4.63647609000806093515e-01, l1 = 2.26987774529616870924e-17, h2 = kPio4Hi, l2 = 3.06161699786838301793e-17;
    h3 = 9.82793723247329054082e-01, l3 = 1.39033110312309984516e-17, h4 = kPio2Hi, l4 = kPio2Lo;
  }
  // (Selects on compares written out, no bool variables: with them GCC left
  // the loop scalar, "control flow in loop".)
  T c = a >= T(0.4375) ? T(0.5) : T(0);
  hi = a >= T(0.4375) ? h1 : T(0);
  lo = a >= T(0.4375) ? l1 : T(0);
  c = a >= T(0.6875) ? T(1) : c;
  hi = a >= T(0.6875) ? h2 : hi;
  lo = a >= T(0.6875) ? l2 : lo;
  c = a >= T(1.1875) ? T(1.5) : c;
  hi = a >= T(1.1875) ? h3 : hi;
  lo = a >= T(1.1875) ? l3 : lo;
  T num = a >= T(2.4375) ? T(-1) : a - c, den = a >= T(2.4375) ? a : tg_fma(c, a, T(1));
  hi = a >= T(2.4375) ? h4 : hi;
  lo = a >= T(2.4375) ? l4 : lo;
  return num / den;
}

// s_atan.c: |x| reduced to |t| <= 7/16 (atan_reduce), then an odd degree-21
// polynomial (error < 2^-57.4, two fma Horner chains in z^2) and atan(c) in
// two parts. The one division stays: a division-free reciprocal to 2^-53
// would take a seed and ~4 Newton steps (8 fma), more than the ~45
// operations' worth the divider runs beside (not tried).
TG_MATH_INLINE double atan_f64(double x) {
  const double aT0 = 3.33333333333329318027e-01, aT1 = -1.99999999998764832476e-01,
               aT2 = 1.42857142725034663711e-01, aT3 = -1.11111104054623557880e-01,
               aT4 = 9.09088713343650656196e-02, aT5 = -7.69187620504482999495e-02,
               aT6 = 6.66107313738753120669e-02, aT7 = -5.83357013379057348645e-02,
               aT8 = 4.97687799461593236017e-02, aT9 = -3.65315727442169155270e-02,
               aT10 = 1.62858201153657823623e-02;
  double hi, lo;
  double t = atan_reduce(__builtin_fabs(x), hi, lo);
  double z = t * t, w = z * z;
  double s1 = z * tg_fma(w, tg_fma(w, tg_fma(w, tg_fma(w, tg_fma(w, aT10, aT8), aT6), aT4), aT2), aT0);
  double s2 = w * tg_fma(w, tg_fma(w, tg_fma(w, tg_fma(w, aT9, aT7), aT5), aT3), aT1);
  // hi + (t - (t (s1 + s2) - lo)): t (s1 + s2) - lo rounded once by fma.
  double r = hi + (t - tg_fma(t, s1 + s2, -lo));
  r = __builtin_copysign(r, x);  // (keeps -0)
  return x != x ? x : r;
}

// e_atan2.c: atan(|y/x|) placed in its quadrant by the signs of y and x
// (pi - (z - pi_lo) for x < 0), with C99's special cases: zeros (by sign),
// infinities, |y/x| beyond 2^60 (+-pi/2) or, for x < 0, below 2^-60 (+-pi).
TG_MATH_INLINE double atan2_f64(double y, double x) {
  // (No bool variables: in the loops' context GCC then leaves the loop
  // scalar. fabs, not x < 0 ? -x : x, which keeps -0's sign; x's sign bit
  // read by a double compare of copysign.)
  double ay = __builtin_fabs(y), ax = __builtin_fabs(x);
  double sx = __builtin_copysign(1.0, x);
  double q = ay / ax;
  q = ay == 0.0 ? 0.0 : q;                            // (0/0 and 0/inf)
  q = ay == kTgInf ? (ax == kTgInf ? 1.0 : q) : q;  // both infinite: pi/4 by quadrant
  double z = atan_f64(q);
  double zx = q < 0x1p-60 ? 0.0 : z;
  double r = sx < 0 ? kPiHi - (zx - kPiLo) : z;
  r = ay == kTgInf ? (ax == kTgInf ? (sx < 0 ? 3.0 * kPio4Hi : r) : r) : r;
  r = q > 0x1p60 ? kPio2Hi + 0.5 * kPiLo : r;  // (q = inf where x = 0)
  r = __builtin_copysign(r, y);
  return x != x ? x + y : (y != y ? x + y : r);
}

// ----- float32 arcsin, arccos, arctan, arctan2 -------------------------------
// In float, at the full float vector width (no float64 anywhere): the float64
// versions' reductions and compensated sums, fma Horner polynomials refitted
// for float (near-minimax, relative error of the polynomial term < 2^-28.5 on
// each range). Each is within 1 ulp of the correctly rounded result
// (cpp/tools/exhaustive_f32.cpp, every 7th block of all 2^32 floats: arcsin
// 0.694, arccos 0.648, arctan 0.857 ulp; arctan2 0.844 ulp on 1.3 10^8
// sampled pairs).

// asin_parts in float (asin_reduce with float's seed; SLEEF's degree-4 P refitted).
TG_MATH_INLINE AsinPartsF asinf_parts(float x) {
  const float Q0 = 1.6666753590e-01f, Q1 = 7.4952416122e-02f, Q2 = 4.5477103442e-02f, Q3 = 2.4147571996e-02f,
              Q4 = 4.2218618095e-02f;
  AsinPartsF q = asin_reduce(x);
  q.p = tg_fmaf(q.z, tg_fmaf(q.z, tg_fmaf(q.z, tg_fmaf(q.z, Q4, Q3), Q2), Q1), Q0);
  return q;
}

TG_MATH_INLINE float asin_f32(float x) { return asin_from(x, asinf_parts(x), kPio2HiF, kPio2LoF); }
TG_MATH_INLINE float acos_f32(float x) {
  return acos_from(x, asinf_parts(x), kPio2HiF, kPio2LoF, kPiHiF, kPiLoF);
}

// atan(t) - t = t z P(z), z = t^2, |t| <= 7/16; + lo by the last fma.
TG_MATH_INLINE float atanf_poly(float t, float lo) {
  const float P0 = -3.3333304524e-01f, P1 = 1.9997766614e-01f, P2 = -1.4230041206e-01f, P3 = 1.0493666679e-01f,
              P4 = -5.8252315968e-02f;
  float z = t * t;
  return tg_fmaf(t * z, tg_fmaf(z, tg_fmaf(z, tg_fmaf(z, tg_fmaf(z, P4, P3), P2), P1), P0), lo);
}

// atan_f64 in float: atan_reduce, atan(c) as head + tail summed last.
TG_MATH_INLINE float atan_f32(float x) {
  float hi, lo;
  float t = atan_reduce(__builtin_fabsf(x), hi, lo);
  float r = hi + (t + atanf_poly(t, lo));
  r = __builtin_copysignf(r, x);  // (keeps -0)
  return x != x ? x : r;
}

// atan2 in float: y/x folded to q = small/large in [0, 1] (|y| <= |x|: angle
// K pi/2 + atan q, else K pi/2 - atan q; K from the quadrant), q's division
// error added back as the exact residual n - q d (one fma, on the operands
// scaled so that it stays normal) over d (1 + q^2), atan q as head + tail and
// K pi/2 added by TwoSum: one rounding at the end. C99's special cases as
// atan2_f64: zeros by sign, both infinite: odd multiples of pi/4.
TG_MATH_INLINE float atan2_f32(float y, float x) {
  float ay = __builtin_fabsf(y), ax = __builtin_fabsf(x);
  float sx = __builtin_copysignf(1.0f, x);
  float n = ay <= ax ? ay : ax, d = ay <= ax ? ax : ay;
  n = ay == __builtin_inff() ? (ax == __builtin_inff() ? 1.0f : n) : n;  // both infinite: pi/4 by quadrant
  d = ay == __builtin_inff() ? (ax == __builtin_inff() ? 1.0f : d) : d;
  d = d == 0.0f ? 1.0f : d;  // (0/0: atan 0)
  float q = n / d;
  float sc = d > 0x1p64f ? 0x1p-64f : (d < 0x1p-20f ? 0x1p100f : 1.0f);
  float ns = n * sc, ds = d * sc;
  float corr = tg_fmaf(-q, ds, ns) / tg_fmaf(q, ns, ds);  // (atan' = 1/(1 + q^2))
  corr = q < 0x1p-30f ? 0.0f : corr;  // (there atan q = q: the residual is not needed, and may underflow)
  // atan q, q in [0, 1] (atan_reduce's first three intervals), head zh + tail zl.
  float hi, lo;
  float t = atan_reduce(q, hi, lo);
  float tail = t + atanf_poly(t, lo + corr);
  float zh = hi + tail;
  float zl = (hi - zh) + tail;  // Fast2Sum: |hi| > |tail| or hi = 0
  // Quadrant: x > 0: atan q (|y| <= |x|) or pi/2 - atan q; x < 0: pi -
  // atan q or pi/2 + atan q. K pi/2 + sign atan q, then y's sign.
  float k = sx < 0 ? (ay <= ax ? 2.0f : 1.0f) : (ay <= ax ? 0.0f : 1.0f);
  float neg = sx < 0 ? (ay <= ax ? 1.0f : 0.0f) : (ay <= ax ? 0.0f : 1.0f);
  zh = neg > 0 ? -zh : zh;
  zl = neg > 0 ? -zl : zl;
  float A = k * kPio2HiF;
  float S = A + zh;
  float bb = S - A;
  float err = (A - (S - bb)) + (zh - bb);  // TwoSum: A + zh = S + err exactly
  float r = S + (err + tg_fmaf(k, kPio2LoF, zl));
  r = __builtin_copysignf(r, y);
  return x != x ? x + y : (y != y ? x + y : r);
}

// ----- h85-expfam: expm1, sinh, cosh, exp2 (float64; float32's in loops.hpp) -----
// exp_dd's reduction and polynomial (exp2: its own exact reduction, then
// exp_dd_from), finished in pairs so that the result rounds about once.

// e^x = 2^k (1 + u + ue): exp_dd's reduction and exp_poly, with e^s - 1 kept
// as the pair u + ue (Fast2Sum: |s| >= |q|), as tanh_f64; returns k.
TG_MATH_INLINE double expm1_reduce(double x, double* u, double* ue) {
  const double inv_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931;
  const double ln2_hi = .69314718055966295651160180568695068359375, ln2_lo = .28235290563031577122588448175013436025525412068e-12;
  double kd = tg_fma(x, inv_ln2, kTgShifter) - kTgShifter;
  double sh = tg_fma(kd, -ln2_hi, x);  // exact (exp_dd)
  double s = tg_fma(kd, -ln2_lo, sh);
  double q = exp_poly(s, tg_fma(kd, -ln2_lo, sh - s));  // e^s - 1 - s
  *u = s + q;
  *ue = (s - *u) + q;
  return kd;
}

// e^x - 1 = (2^k - 1) + 2^k (u + ue) as a pair mh + ml (tanh_finish's m, for
// k of either sign): 2^k - 1 is 0 or at least 1/2 in magnitude and above
// |2^k u| (|u| < 0.42), so Fast2Sum holds; 2^k - 1's own rounding error (k >
// 53 or k < -53) in the tail, by Fast2Sum from the larger operand.
template <class T> TG_MATH_INLINE T expm1_pair(T sc, T u, T ue, T* ml) {
  T sm1 = sc - T(1), su = sc * u;
  T sm1e = sc > T(1) ? (sc - sm1) - T(1) : (T(-1) - sm1) + sc;
  T mh = sm1 + su;
  *ml = ((sm1 - mh) + su) + (sc * ue + sm1e);
  return mh;
}

// sinh a and cosh a, a >= 0 with k <= 52 (2^k exact in T), from E = e^a =
// 2^k (y + yl) and, for sinh, m = e^a - 1 = mh + ml: sinh a = (m + m / E) / 2
// (both terms >= 0: no cancellation, also near 0), cosh a = (E + 1 / E) / 2
// (E >= 1 / E: Fast2Sum); each quotient by one reciprocal corrected by the
// exact fma residual, the sum by TwoSum, one rounding at the end (halving is
// exact: the results are >= a).
template <class T> TG_MATH_INLINE T sinh_small(T sc, T y, T yl, T mh, T ml) {
  T E = sc * y, El = sc * yl;
  T inv = T(1) / E;
  T w = mh * inv;
  T wl = ((tg_fma(-w, E, mh) + ml) - w * El) * inv;
  T S = mh + w;
  T bb = S - mh;
  T err = (mh - (S - bb)) + (w - bb);
  return T(0.5) * (S + (err + (ml + wl)));
}
template <class T> TG_MATH_INLINE T cosh_small(T sc, T y, T yl) {
  T E = sc * y, El = sc * yl;
  T inv = T(1) / E;
  T il = ((tg_fma(-inv, E, T(1))) - inv * El) * inv;
  T c = E + inv;
  return T(0.5) * (c + (((E - c) + inv) + (El + il)));
}

// expm1: below -45 it rounds to -1 (x clamped there, so 2^k stays normal);
// k = 1024 (x in (709.43, 710]): 2^1023 and the result doubled (exact, and
// it overflows just where the true value does); above 710, inf. -0 kept.
TG_MATH_INLINE double expm1_f64(double x) {
  double xc = x < -45.0 ? -45.0 : x;
  xc = xc > 710.0 ? 710.0 : xc;
  double u, ue, ml;
  double kd = expm1_reduce(xc, &u, &ue);
  double mh = expm1_pair(tg_pow2i(kd > 1023.0 ? 1023.0 : kd), u, ue, &ml);
  double r = (mh + ml) * (kd > 1023.0 ? 2.0 : 1.0);
  r = x == 0.0 ? x : r;  // keeps -0
  return x != x ? x : r;
}

// sinh and cosh: a = |x| <= 20 by sinh_small / cosh_small; beyond, e^-2a <
// 2^-57 and both are e^a / 2 = 2^(k - 1) (y + yl), scaled in two steps as
// exp_dd (k - 1 up to 1024: sinh and cosh overflow at 710.48, after e^a
// does), so the result rounds once and overflows where the true value does.
// a capped at 711 (inf there; NaN lanes are selected at the end).
template <bool kSinh> TG_MATH_INLINE double sinh_cosh_f64(double x) {
  double a = __builtin_fabs(x);
  a = a > 711.0 ? 711.0 : a;
  double u, ue;
  double kd = expm1_reduce(a, &u, &ue);
  double y = 1.0 + u;
  double yl = ((1.0 - y) + u) + ue;  // Fast2Sum: 1 > |u|
  double kb = kd - 1.0;
  double k1 = (kb * 0.5 + kTgShifter) - kTgShifter;
  double big = y * tg_pow2i(k1) * tg_pow2i(kb - k1);
  double sc = tg_pow2i(a > 20.0 ? 0.0 : kd);
  double r;
  if constexpr (kSinh) {
    double ml;
    double mh = expm1_pair(sc, u, ue, &ml);
    r = a > 20.0 ? big : sinh_small(sc, y, yl, mh, ml);
    r = __builtin_copysign(r, x);  // (keeps -0)
  } else {
    r = a > 20.0 ? big : cosh_small(sc, y, yl);
  }
  return x != x ? x : r;
}
TG_MATH_INLINE double sinh_f64(double x) { return sinh_cosh_f64<true>(x); }
TG_MATH_INLINE double cosh_f64(double x) { return sinh_cosh_f64<false>(x); }

// 2^x = 2^k 2^f, k = round(x), f = x - k exact (|f| <= 1/2), e^(f ln2) by
// exp_dd_from on s + s_err = f ln2 to ~2^-105 (ln2 in two parts, the product's
// rounding error by fma): integers give s = 0 and 2^k exactly. Below -1075
// 0, at or above 1024 inf.
TG_MATH_INLINE double exp2_f64(double x) {
  const double ln2_hi = 0x1.62e42fefa39efp-1, ln2_lo = 0x1.abc9e3b39803fp-56;
  double kd = (x + kTgShifter) - kTgShifter;  // (|x| >= 2^51: garbage, selected below)
  double f = x - kd;
  double s = f * ln2_hi;
  double s_err = tg_fma(f, ln2_lo, tg_fma(f, ln2_hi, -s));
  double lo;
  double res = exp_dd_from(kd, s, s_err, &lo);
  res = x > -1075.0 ? res : 0.0;
  return x < 1024.0 ? res : x + kTgInf;  // (NaN: x + inf)
}

// ----- h87-act: silu, gelu: x times a sigmoid, rounded once -----------------
// x sigmoid(u + u_lo) = x (q + res inv) from exp_sigmoid_parts, one rounding
// (fma); x sigmoid(u) rounded twice would be ~1.3 ulp. Where u < -700 (1 + e
// is 1, sigmoid(u) is e^u to 2^-1000 relative) from the 2^600-scaled e^u, so
// a subnormal result rounds once (at its scale) instead of losing bits with
// a subnormal e^u. |u| capped at 760: x e^-760 rounds to 0 for |x| < 2^20.
// (kWithLo false: u_lo is 0, and the TwoSum adding it is left out: GCC cannot
// drop s + 0.0 itself (s = -0); silu's bits unchanged, -7% of its kernel time.)
template <bool kWithLo = true>
TG_MATH_INLINE double x_sigmoid_f64(double x, double u, double u_lo) {
  double hi, lo;
  exp_neg_abs_p600<kWithLo>(u, u_lo, 760.0, &hi, &lo);
  double res, inv;
  double q = exp_sigmoid_parts(hi * 0x1p-600, lo * 0x1p-600, u < 0, &res, &inv);
  double r = tg_fma(x, q, x * (res * inv));
  double t = tg_fma(x, hi, x * lo) * 0x1p-600;
  return u < -700.0 ? t : r;
}

// silu x = x sigmoid(x) (measured: tests/test_kernels_fastpaths.py). Below
// -760 the result is -0 (-inf: NaN, as x * sigmoid(x)); inf stays inf.
TG_MATH_INLINE double silu_f64(double x) {
  double r = x_sigmoid_f64<false>(x, x, 0.0);
  r = x < -760.0 ? x * 0.0 : r;
  r = x == kTgInf ? x : r;
  return x != x ? x : r;
}

// gelu (the tanh form, tapegrad's definition with these two doubles) x
// sigmoid(u), u = C x (1 + A x^2) as a double-double: sigmoid(u)'s relative
// error is |u| times u's (|u| up to 760 before gelu underflows), so u
// rounded in double alone was up to ~2^9 ulp off. Beyond |x| = 30 the result
// is x or -0 (x^3 would overflow; -inf: NaN, as the composition gave).
TG_MATH_INLINE double gelu_f64(double x) {
  const double C = 1.5957691216057308, A = 0.044715;
  double xc = x < -30.0 ? -30.0 : (x > 30.0 ? 30.0 : x);
  double x2 = xc * xc, x2l = tg_fma(xc, xc, -x2);
  double p = A * x2, pl = tg_fma(A, x2, -p) + A * x2l;
  double t = 1.0 + p;  // TwoSum (p may exceed 1)
  double tb = t - 1.0;
  double tl = ((1.0 - (t - tb)) + (p - tb)) + pl;
  double cx = C * xc, cxl = tg_fma(C, xc, -cx);
  double u = cx * t;
  double ul = tg_fma(cx, t, -u) + (cx * tl + cxl * t);
  double r = x_sigmoid_f64(x, u, ul);
  r = x > 30.0 ? x : r;
  r = x < -30.0 ? x * 0.0 : r;
  return x != x ? x : r;
}

// (gelu's float32 kernel: h97-f32's block at the end; silu's: h101-sigmoid's block, in double lanes.)

// ----- h84-round: floor, ceil, rint, trunc (exact: the same bits on every ISA) -----------------------
// With SSE4.1 (the AVX2 and AVX-512 builds) GCC turns the builtins into (v)roundps/pd, vectorized. The
// baseline SSE2 build has no round instruction (GCC emits a scalar cvttsd2si sequence there), so it
// rounds by adding and subtracting 2^52 (float: 2^23), which vectorizes: below that bound the sum's
// ulp is 1, so the default rounding mode rounds to the nearest integer, ties to even; |x| >= the bound
// (already an integer), inf and NaN (quieted, as roundpd does) return x. copysign keeps -0.0 (floor(-0.0),
// ceil(-0.5), trunc(-0.3): NumPy's -0.0).
template <class T> TG_MATH_INLINE T round_copysign(T v, T s) {
  if constexpr (sizeof(T) == 4) return __builtin_copysignf(v, s);
  else return __builtin_copysign(v, s);
}
template <class T> TG_MATH_INLINE T round_abs(T v) {
  if constexpr (sizeof(T) == 4) return __builtin_fabsf(v);
  else return __builtin_fabs(v);
}
template <class T> TG_MATH_INLINE T round_even_sse2(T x) {
  const T big = sizeof(T) == 4 ? T(0x1p23f) : T(0x1p52);
  T a = round_abs(x);
  T r = round_copysign((a + big) - big, x);
  return a < big ? r : (x != x ? x + x : x);
}
// The SSE4.1 builtin of each width (rint -> __builtin_rintf / __builtin_rint).
#define TG_ROUND_BUILTIN(fn, x)                              \
  if constexpr (sizeof(T) == 4) return __builtin_##fn##f(x); \
  else return __builtin_##fn(x)
template <class T> TG_MATH_INLINE T rint_exact(T x) {
#ifdef __SSE4_1__
  TG_ROUND_BUILTIN(rint, x);
#else
  return round_even_sse2(x);
#endif
}
template <class T> TG_MATH_INLINE T floor_exact(T x) {
#ifdef __SSE4_1__
  TG_ROUND_BUILTIN(floor, x);
#else
  T r = round_even_sse2(x);
  return round_copysign(r > x ? r - T(1) : r, x);
#endif
}
template <class T> TG_MATH_INLINE T ceil_exact(T x) {
#ifdef __SSE4_1__
  TG_ROUND_BUILTIN(ceil, x);
#else
  T r = round_even_sse2(x);
  return round_copysign(r < x ? r + T(1) : r, x);
#endif
}
template <class T> TG_MATH_INLINE T trunc_exact(T x) {
#ifdef __SSE4_1__
  TG_ROUND_BUILTIN(trunc, x);
#else
  T a = round_abs(x);
  T r = round_even_sse2(a);
  return round_copysign(r > a ? r - T(1) : r, x);
#endif
}
#undef TG_ROUND_BUILTIN

// ----- h86-logfam: log2, log10, cbrt, arcsinh, arccosh, arctanh ----------------------
// float64: (log2 and log10: h97-f32's block, log1p_hilo) pow's log2 as a double-double
// (pow_log2, simd/pow.hpp: ~2^-68 relative): the natural logs
// of arcsinh and arccosh take that pair times ln2 as
// double-doubles (ln_dd; arctanh: simd/atanh_log.hpp), their arguments built as double-doubles too, so each
// rounds once at the end (0.5 ulp plus ~2^-60 relative). cbrt has no division:
// a polynomial seed, one Newton step, and one correction from the exact residual
// y^3 - x. float32: log2 and log10 in float (simd/atanh_log.hpp); the others are
// the float64 kernels rounded to float (0.5 ulp plus ~2^-28), arctanh in h97-f32's block.
// (pow_log2 and split_exponentf are defined after this file.)
TG_MATH_INLINE void pow_log2(double ax, double* t1, double* t2);
TG_MATH_INLINE float split_exponentf(float x, float* k);

// (log2_f64, log10_f64: h97-f32's block at the end, on log1p_hilo; pow_log2 was ~45% slower.)

// ln(2^e (xh + xl)) = h + *lo for finite positive xh, |xl| <= ulp(xh), e a small
// integer: log2(xh) = t1 + t2 (pow_log2), e added by TwoSum, times ln2 as a
// double-double, xl / xh (ln's first-order term) in the tail.
TG_MATH_INLINE double ln_dd(double xh, double xl, double e, double* lo) {
  const double ln2_h = 0x1.62e42fefa39efp-1, ln2_l = 0x1.abc9e3b39803fp-56;
  double t1, t2;
  pow_log2(xh, &t1, &t2);
  double n = t1 + e, bb = n - t1;
  double ne = ((t1 - (n - bb)) + (e - bb)) + t2;
  double h = n * ln2_h;
  *lo = (tg_fma(n, ln2_h, -h) + (n * ln2_l + ne * ln2_h)) + xl / xh;
  return h;
}

// asinh |x| = ln(w), w = |x| + sqrt(x^2 + 1) as a double-double (x^2 + 1 exact
// as a pair, its square root corrected by the exact residual), accurate where w
// is near 1 (small |x|: ln's argument carries x to ~2^-106); ln(2|x|) beyond
// 2^28 (no x^2, no overflow); |x| below 2^-26: x itself (x^3/6 is below half an
// ulp). Odd: the sign copied from x (keeps -0).
TG_MATH_INLINE double asinh_f64(double x) {
  double a = __builtin_fabs(x);
  double p = a * a, pe = tg_fma(a, a, -p);
  double S = 1.0 + p, bb = S - p;
  double Se = ((p - (S - bb)) + (1.0 - bb)) + pe;  // TwoSum
  double r = __builtin_sqrt(S);
  double r_lo = (tg_fma(-r, r, S) + Se) / (r + r);
  double wh = r + a;
  double wl = ((r - wh) + a) + r_lo;  // Fast2Sum: r >= a
  double lo;
  double h = ln_dd(a > 0x1p28 ? a : wh, a > 0x1p28 ? 0.0 : wl, a > 0x1p28 ? 1.0 : 0.0, &lo);
  double res = h + lo;
  res = a < 0x1p-26 ? a : res;
  res = a == kTgInf ? a : res;
  res = __builtin_copysign(res, x);
  return x != x ? x : res;
}

// acosh x = ln(x + sqrt(x^2 - 1)): x^2 - 1 = (p - 1) + pe exactly (p = x^2
// rounded, pe its error by fma; p - 1 by Fast2Sum), so no cancellation near 1;
// the square root corrected as in asinh; ln(2x) beyond 2^28.
TG_MATH_INLINE double acosh_f64(double x) {
  double p = x * x, pe = tg_fma(x, x, -p);
  double vh = p - 1.0;
  double vl = ((p - vh) - 1.0) + pe;
  double r = __builtin_sqrt(vh);
  double r_lo = vh > 0.0 ? (tg_fma(-r, r, vh) + vl) / (r + r) : 0.0;  // (x = 1: 0, not 0/0)
  double wh = x + r;
  double wl = ((x - wh) + r) + r_lo;  // Fast2Sum: x >= r
  double lo;
  double h = ln_dd(x > 0x1p28 ? x : wh, x > 0x1p28 ? 0.0 : wl, x > 0x1p28 ? 1.0 : 0.0, &lo);
  double res = h + lo;
  res = x == kTgInf ? x : res;
  res = x < 1.0 ? kTgNaN : res;
  return x != x ? x : res;
}

#include "simd/atanh_log.hpp"  // h124-atanh-log: atanh_f64_1div, atanh_f32_1div, logf_base_h124

// atanh: one division (simd/atanh_log.hpp; was w = (1 + |x|) / (1 - |x|) as a double-double and
// ln_dd, three divisions).
TG_MATH_INLINE double atanh_f64(double x) { return atanh_f64_1div(x); }

#include "simd/cbrt.hpp"  // cbrt_f32, cbrt_f64 and the normal-lane kernels of the vector pass

// log2 and log10 in float lanes (simd/atanh_log.hpp; was log_kernel in double lanes, with a division).
TG_MATH_INLINE float log2_f32(float x) { return logf_base_h124<false>(x); }
TG_MATH_INLINE float log10_f32(float x) { return logf_base_h124<true>(x); }
// (cbrt_f32: simd/cbrt.hpp)
TG_MATH_INLINE float asinh_f32(float x) { return float(asinh_f64(double(x))); }
TG_MATH_INLINE float acosh_f32(float x) { return float(acosh_f64(double(x))); }
// (atanh_f32: h97-f32's block at the end)

// ----- h90-binary: logaddexp, logaddexp2, hypot (float64; float32 evaluated in double) -----
// logaddexp(a, b) = max(a, b) + log1p(e^-|a - b|), softplus_f64's log1p(e + e_lo) of exp_dd's pair.
// a - b is rounded (0.5 ulp of |a - b|, ~4 ulp of a small result: NumPy's error); its exact error
// (TwoSum) goes into e_lo. a == b gives d = 0 (so inf, inf is inf and -inf, -inf is -inf, NumPy's
// answers, not inf - inf's NaN); a NaN operand gives NaN. (Where max(a, b) < 0 cancels against the
// log1p term: h102-logaddexp's block at the end.)
// *ad_err gets |a - b|'s rounding error (d_abs + *ad_err = |a - b| exactly; 0 where not finite).
// The NaN of a NaN operand, a's where both are: a + b would leave the choice to the compiler's
// operand order, which differs between the ISA builds.
TG_MATH_INLINE double tg_nan_of(double a, double b) { return a != a ? a + a : b + b; }

TG_MATH_INLINE double absdiff_f64(double a, double b, double* ad_err) {
  double d = a == b ? 0.0 : a - b;
  double bb = d - a;
  double err = (a - (d - bb)) + (-b - bb);
  double ad = d < 0 ? -d : d;
  err = d < 0 ? -err : err;
  // (inf, inf: d = 0 but err NaN. Two selects: a & of the two compares left the loop scalar, GCC
  // finding no vector mask conversion for it: 38 -> 5 ms per 1M float64 pairs.)
  err = err == err ? err : 0.0;
  *ad_err = ad < 0x1p1000 ? err : 0.0;
  return d != d ? d : ad;
}

// (logaddexp_f64, logaddexp2_f64: h102-logaddexp's block at the end)

// 2^x for x <= 0 as hi + *lo (to ~2^-56 relative): k = round(x), x - k exact, s = (x - k) ln 2 as
// s + s_err (ln 2 in two parts), exp_dd's polynomial and sums, then 2^k applied as 2^(k + 600)
// (exact) and 2^-600 (one rounding), sigmoid_f64's scaling; x below -1100 (and -inf) gives 0.
TG_MATH_INLINE double exp2_neg_dd(double x, double* lo) {
  const double ln2 = 0x1.62e42fefa39efp-1, ln2_lo = 0x1.abc9e3b39803fp-56;
  x = x > -1100.0 ? x : -1100.0;
  double ks = x + kTgShifter;  // k + 1.5 * 2^52
  double kd = ks - kTgShifter;
  double r = x - kd;  // exact, |r| <= 1/2
  double s = r * ln2;
  double s_err = tg_fma(r, ln2, -s) + r * ln2_lo;
  double q = exp_poly(s, s_err);  // e^s - 1 - s
  double h = 1.0 + s;
  double l = ((1.0 - h) + s) + q;
  double y = h + l;
  double y_lo = (h - y) + l;
  double p = tg_bits_to_f64((tg_f64_to_bits(ks) + (1023 + 600)) << 52);  // 2^(k + 600), k in [-1100, 0]
  *lo = y_lo * p * 0x1p-600;
  return y * p * 0x1p-600;
}

// hypot with no overflow or underflow: |a|, |b| sorted to hi >= lo and both scaled by a power of 2
// (exact) where hi is huge or tiny; sqrt(hi^2 + lo^2) corrected by its exact fma residual (Borges
// 2019, "corrected fused": within ~0.5 ulp). C99: an infinite operand gives inf even with a NaN.
TG_MATH_INLINE double hypot_f64(double a, double b) {
  double x = __builtin_fabs(a), y = __builtin_fabs(b);
  double hi = x > y ? x : y, lo = x > y ? y : x;
  double sc = hi > 0x1p500 ? 0x1p-600 : (hi < 0x1p-500 ? 0x1p600 : 1.0);
  double un = hi > 0x1p500 ? 0x1p600 : (hi < 0x1p-500 ? 0x1p-600 : 1.0);
  double p = hi * sc, q = lo * sc;
  double h = __builtin_sqrt(tg_fma(p, p, q * q));
  double h_sq = h * h, p_sq = p * p;
  double e = (tg_fma(-q, q, h_sq - p_sq) + tg_fma(h, h, -h_sq)) - tg_fma(p, p, -p_sq);
  h = h - e / (2.0 * h);
  double r = hi == 0.0 ? 0.0 : h * un;
  r = x != x ? x : (y != y ? y : r);
  return (x == kTgInf) | (y == kTgInf) ? kTgInf : r;
}

// float32 in double: the double results are within ~2 double ulps, so one rounding to float
// stays within 1 float ulp; hypot's squares are exact in double and cannot overflow there.
// (logaddexp_f32, logaddexp2_f32: h97-f32's block at the end)
TG_MATH_INLINE float hypot_f32(float a, float b) {
  double x = a, y = b;
  float r = float(__builtin_sqrt(x * x + y * y));
  r = a != a ? a + a : (b != b ? b + b : r);  // (x x + y y's NaN would be either's, by operand order)
  return (__builtin_fabsf(a) == __builtin_inff()) | (__builtin_fabsf(b) == __builtin_inff()) ? __builtin_inff() : r;
}

// ----- h97-f32: float32 gelu, arctanh, logaddexp, logaddexp2 in plain double -----
// These ran the float64 kernels (double-doubles throughout, for float64's 0.5-1.5 ulp) and rounded
// to float. A float result needs far less: a double value within a few double ulps (2^-50
// relative) rounds to within 0.5 + 2^-26 float ulps. So: exp_dd's reduction and polynomial summed
// plainly (exp_lite), log1p without u's rounding correction c / u (log1p_lite: c / u <= 2^-53 where
// k != 0, the result >= 0.34 there; k = 0 takes w itself, exact), gelu's u in plain double (|u| <=
// 320 here: sigmoid's relative error |u| 2^-52 < 2^-43), one division per sigmoid. Still half the
// vector width of float, but about half the operations and divisions of the float64 kernels.

// e^x for x in [-700, 0] within ~1 ulp of double: exp_dd's reduction and polynomial, 2^k from
// the shifted k's bits (k >= -1010: normal).
TG_MATH_INLINE double exp_lite(double x) {
  const double inv_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931;
  const double ln2_hi = .69314718055966295651160180568695068359375, ln2_lo = .28235290563031577122588448175013436025525412068e-12;
  double ks = tg_fma(x, inv_ln2, kTgShifter);
  double kd = ks - kTgShifter;
  double sh = tg_fma(kd, -ln2_hi, x);  // exact (exp_dd)
  double s = tg_fma(kd, -ln2_lo, sh);
  double q = exp_poly(s, tg_fma(kd, -ln2_lo, sh - s));  // e^s - 1 - s
  return (1.0 + (s + q)) * tg_bits_to_f64((tg_f64_to_bits(ks) + 1023) << 52);
}

// log(1 + w) for finite w >= 0 within ~1 ulp of double (log1p_f64 less its c / u term, above).
// Where k = 0, m - 1 = u - 1 and c = w - (u - 1) are exact and sum to w; a select between w and
// m - 1 instead had GCC divide in both arms (and in a caller's select arms: 3 divisions, not 1).
TG_MATH_INLINE double log1p_lite(double w) {
  double kd;
  double u = 1.0 + w;
  double m = split_exponent(u, &kd);
  double c = w - (u - 1.0);
  return log_kernel((m - 1.0) + (kd == 0.0 ? c : 0.0), kd, 0.0);
}

// Compares in these four are on values computed in double (u, 1 - |x|, a - b, the bits): GCC
// narrows a compare of a float converted to double back to a float compare, and the float masks'
// conversion to double lanes cost ~15 more instructions per 8 lanes (gelu, atanh, logaddexp).

// gelu x sigmoid(u), u = C x (1 + A x^2): x e / (1 + e) or x / (1 + e), e = e^-|u|, in double
// (a float's x^3 cannot overflow there), rounded to float once (a subnormal float result too).
// Beyond |u| = 700 (|x| > 21), e is 0: x, -0, or NaN for -inf (as gelu_f64).
TG_MATH_INLINE float gelu_f32(float xf) {
  const double C = 1.5957691216057308, A = 0.044715;
  double x = xf;
  double u = (C * x) * (1.0 + A * (x * x));
  double au = __builtin_fabs(u);
  double e = exp_lite(au < 700.0 ? -au : -700.0);
  e = au < 700.0 ? e : 0.0;  // (NaN: 0, and x's NaN below)
  return float(x * (u < 0.0 ? e : 1.0) / (1.0 + e));
}

// atanh: simd/atanh_log.hpp's atanh_f32_1div (one division; was log1p(2|x| / (1 - |x|)) / 2, two).
TG_MATH_INLINE float atanh_f32(float xf) { return atanh_f32_1div(xf); }

// a NaN operand's NaN, a's where both are (as tg_nan_of); a + b is also the result for (inf, inf)
// and (-inf, -inf), whose a - b is NaN.
TG_MATH_INLINE double nan_or_sum(double a, double b) {
  bool a_nan = (tg_f64_to_bits(a) & 0x7fffffffffffffffULL) > 0x7ff0000000000000ULL;
  return a_nan ? a + a : a + b;
}

// logaddexp(a, b) = max(a, b) + log1p(e^-|a - b|) in double: a - b of two floats is exact in double
// unless their exponents differ by more than 29 (then |a - b| rounds by 2^-53 relative and
// e^-|a - b|'s error is |a - b| 2^-53, <= 2^-45 where e matters); its sign is exact either way, so
// it picks max(a, b). |a - b| capped at 600 (e^-600 is far below any float sum's ulp). Where
// max(a, b) < 0 cancels against the log1p term, the error is log1p's absolute ~2^-53, as
// logaddexp_f64's. (Since h127-lae32 these two redo the lanes where the result cancels, NaN inputs and
// (inf, inf) after simd/lae32.hpp's vector pass, whose short polynomials are ~2^-38 relative.)
TG_MATH_INLINE float logaddexp_f32(float af, float bf) {
  double a = af, b = bf;
  double d = a - b;
  double m = d > 0.0 ? a : b;
  double ad = __builtin_fabs(d);
  double e = exp_lite(ad < 600.0 ? -ad : -600.0);
  double r = m + log1p_lite(e);
  return float(d != d ? nan_or_sum(a, b) : r);
}

// logaddexp2(a, b) = max(a, b) + log2(1 + 2^-|a - b|): 2^-|d| = 2^k e^(r ln 2), r = -|d| - k exact,
// (r ln 2) as s + s_err, exp_lite's polynomial; the log1p term times log2(e). logaddexp2(a, a) is
// a + 1 exactly (log1p(1) log2(e) rounds below 1).
TG_MATH_INLINE float logaddexp2_f32(float af, float bf) {
  const double ln2 = 0x1.62e42fefa39efp-1, ln2_lo = 0x1.abc9e3b39803fp-56, log2e = 1.4426950408889634074;
  double a = af, b = bf;
  double d = a - b;
  double m = d > 0.0 ? a : b;
  double ad = __builtin_fabs(d);
  double x = ad < 600.0 ? -ad : -600.0;
  double ks = x + kTgShifter;  // k + 1.5 * 2^52, k = round(x)
  double kd = ks - kTgShifter;
  double rr = x - kd;  // exact, |rr| <= 1/2
  double s = rr * ln2;
  double q = exp_poly(s, tg_fma(rr, ln2, -s) + rr * ln2_lo);  // e^s - 1 - s
  double e = (1.0 + (s + q)) * tg_bits_to_f64((tg_f64_to_bits(ks) + 1023) << 52);
  double r = ad == 0.0 ? m + 1.0 : m + log1p_lite(e) * log2e;
  return float(d != d ? nan_or_sum(a, b) : r);
}

// float64 log2 and log10 (h86's next step, /work/scratch/s16/h86-logfam/newlog.hpp): log(m) as a head
// and tail (log1p_hilo) instead of pow's log2 double-double, one rounding at the end.
// log(1 + f) = hi + *lo for f = m - 1, m in [sqrt(2)/2, sqrt(2)) (fdlibm e_log2.c's split, with fma):
// hi = f - f^2/2 rounded; the tail holds f^2/2's rounding error (fma), hi's (Fast2Sum: |f| > f^2/2)
// and s (f^2/2 + R), s = f / (2 + f) (log_kernel's R: fdlibm's Lg1-Lg7, ~4% of the sum at most, so
// its roundings count that much). Measured 2^-54.95 relative before the caller's one rounding (4M
// points, h102-logaddexp; R's 2^-58.45 and s (hfsq + R) rounded in double).
TG_MATH_INLINE double log1p_hilo(double f, double* lo) {
  const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01,
               Lg4 = 2.222219843214978396e-01, Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
               Lg7 = 1.479819860511658591e-01;
  double hfsq = 0.5 * f * f;
  double hfsq_e = tg_fma(0.5 * f, f, -hfsq);
  double s = f / (2.0 + f);
  double z = s * s, w = z * z;
  double t1 = w * tg_fma(w, tg_fma(w, Lg6, Lg4), Lg2);
  double R = tg_fma(z, tg_fma(w, tg_fma(w, tg_fma(w, Lg7, Lg5), Lg3), Lg1), t1);
  double hi = f - hfsq;
  *lo = (((f - hi) - hfsq) - hfsq_e) + s * (hfsq + R);
  return hi;
}

// k g + log(m) c for x = 2^k m (log_f64's split), log(m) = hi + lo (log1p_hilo), c = 1/ln(base) and
// g = log_base(2) as head + tail (g's head short enough that k g_h is exact); k g_h + hi c_h summed by
// Fast2Sum (|k g_h| >= 0.3 > |hi c_h| unless k = 0), one rounding at the end: log2(2^k) = k,
// log10(10^k) = k.
TG_MATH_INLINE double log_base_f64(double x, double c_h, double c_l, double g_h, double g_l) {
  bool sub = x < 0x1p-1022;
  double kd;
  double m = split_exponent(sub ? x * 0x1p54 : x, &kd);
  kd = sub ? kd - 54.0 : kd;
  double lo;
  double hi = log1p_hilo(m - 1.0, &lo);
  double y2 = kd * g_h;
  double yh = hi * c_h;
  double yl = tg_fma(hi, c_h, -yh) + ((hi * c_l + lo * c_h) + kd * g_l);
  double w = y2 + yh;
  double res = w + (((y2 - w) + yh) + yl);
  res = x == kTgInf ? x : res;
  res = x == 0.0 ? -kTgInf : res;
  res = x < 0.0 ? kTgNaN : res;
  return x != x ? x : res;
}
TG_MATH_INLINE double log2_f64(double x) { return log_base_f64(x, 0x1.71547652b82fep+0, 0x1.777d0ffda0d24p-56, 1.0, 0.0); }
TG_MATH_INLINE double log10_f64(double x) {
  return log_base_f64(x, 0x1.bcb7b1526e50ep-2, 0x1.95355baaafad3p-57, 0x1.34413509f6000p-2, 0x1.9fef311f12b36p-42);
}

// ----- h102-logaddexp: float64 logaddexp, logaddexp2 with the log1p term as head + tail -----
// max(a, b) + L, L = log1p(e^-|a - b|) (or its log2). Where max(a, b) < 0, L cancels against it: L
// rounded to a double (h90's kernels) put L's ~1 ulp error on a smaller result, 2.7-4.5 ulp where
// |r| is L/2 to L (e.g. (-0.5, -0.6)), 2^k ulp where it is L 2^-k. Here L stays a head + tail to
// ~2^-55 relative (exp_dd's pair, then log1p_hilo's split) and m + L is summed by TwoSum, one
// rounding at the end: measured max 0.68-0.77 ulp where |r| >= L/2, 1.0 (logaddexp) / 1.5
// (logaddexp2) ulp where |r| >= L/4, then doubling per halving of |r| / L (a result L 2^-k is within
// ~2^(k-2) ulp: 8x less than h90's kernels, not the 2 ulp bar). The floor is log1p_hilo's tail
// (~2^-55.5 L; with e^-|a - b| exact instead of exp_dd's pair the error is the same).
// (Float64 arrays: lanes with |r| < L/8 or L/4, and tiny L, are redone in double-double after this
// kernel: simd/lae_fixup.hpp, h114-logaddexp.)
// log(1 + e + e_lo), e in [0, 1]: u = 1 + e (Fast2Sum: c = e - (u - 1) exact), u = 2^k mm
// (k in {0, 1}), log(mm) = hi + lo (log1p_hilo); c + e_lo added as (c + e_lo) / u. Returns k.
TG_MATH_INLINE double lae_log1p_parts(double e, double e_lo, double* hi, double* lo) {
  double u = 1.0 + e;
  double c = e - (u - 1.0);
  double kd;
  double mm = split_exponent(u, &kd);
  double l;
  *hi = log1p_hilo(mm - 1.0, &l);
  *lo = l + (c + e_lo) / u;
  return kd;
}

TG_MATH_INLINE double logaddexp_f64(double a, double b) {
  const double ln2_hi = 0x1.62e42fefa39efp-1, ln2_lo = 0x1.abc9e3b39803fp-56;
  double m = a > b ? a : b;
  double ad_err;
  double ad = absdiff_f64(a, b, &ad_err);
  double e_lo;
  double e = exp_dd(-ad, &e_lo);
  e_lo = tg_fma(-e, ad_err, e_lo);
  e = ad > 746.0 ? 0.0 : e;
  e_lo = ad > 746.0 ? 0.0 : e_lo;
  double hi, lo;
  double kd = lae_log1p_parts(e, e_lo, &hi, &lo);
  double t = kd * ln2_hi + hi;  // Fast2Sum: |hi| <= 0.35 < ln2 where k = 1; t = hi where k = 0
  double t_lo = ((kd * ln2_hi - t) + hi) + (lo + kd * ln2_lo);
  double s = m + t;
  double bb = s - m;
  double r = s + (((m - (s - bb)) + (t - bb)) + t_lo);
  r = (m == kTgInf) | (m == -kTgInf) ? m : r;
  return ad != ad ? tg_nan_of(a, b) : r;
}

TG_MATH_INLINE double logaddexp2_f64(double a, double b) {
  const double log2e = 1.4426950408889634074, log2e_lo = 2.0355273740931033e-17;
  const double ln2 = 0.6931471805599453094;
  double m = a > b ? a : b;
  double ad_err;
  double ad = absdiff_f64(a, b, &ad_err);
  double e_lo;
  double e = exp2_neg_dd(-ad, &e_lo);
  e_lo = tg_fma(-e, ad_err * ln2, e_lo);
  double hi, lo;
  double kd = lae_log1p_parts(e, e_lo, &hi, &lo);
  double p = hi * log2e;
  double p_lo = tg_fma(hi, log2e, -p) + (hi * log2e_lo + lo * log2e);
  double t = kd + p;  // Fast2Sum: |p| <= 1/2 where k = 1
  double t_lo = ((kd - t) + p) + p_lo;
  double s = m + t;
  double bb = s - m;
  double r = s + (((m - (s - bb)) + (t - bb)) + t_lo);
  r = (m == kTgInf) | (m == -kTgInf) ? m : r;
  return ad != ad ? tg_nan_of(a, b) : r;
}

// ----- h101-sigmoid: float32 silu in double lanes ---------------------------------------------------
// exp_neg_short's and exp_neg_deriv's (h109) shared reduction (h116-silugrad): s = -a - k ln 2,
// k = round(-a / ln 2), and the shifted k (k + 1.5 * 2^52), whose bits give 2^k (exp_neg_scale).
TG_MATH_INLINE double exp_neg_reduce(double a, double* ks) {
  const double inv_ln2 = 1.4426950408889634, ln2 = 0.6931471805599453;
  *ks = tg_fma(a, -inv_ln2, kTgShifter);  // k + 1.5 * 2^52
  double kd = *ks - kTgShifter;
  return tg_fma(kd, -ln2, -a);
}
// e^s * 2^k: 2^k from the shifted k's low bits (k >= -162 here: a normal double).
TG_MATH_INLINE double exp_neg_scale(double p, double ks) {
  return p * tg_bits_to_f64((tg_f64_to_bits(ks) + 1023) << 52);
}
// e^-a for a float a in [0, 162 ln 2], in double to ~2^-28.5 relative (a float result needs ~2^-29:
// it rounds to within 0.5 + 2^-4.5 float ulps): k = round(-a / ln 2), s = -a - k ln 2 in one fma
// (k ln 2's error <= 2^-46 absolute), e^s by a degree-6 polynomial (Chebyshev fit on [-ln2/2, ln2/2],
// relative error 2^-28.56 with these double coefficients; /work/scratch/s18/h101/remez.py), 2^k from
// the shifted k's bits (k >= -162: a normal double, so a subnormal float result rounds once).
TG_MATH_INLINE double exp_neg_short(double a) {
  double ks;
  double s = exp_neg_reduce(a, &ks);
  double p = 0.0013941118895837;
  p = tg_fma(p, s, 0.008375134774624326);
  p = tg_fma(p, s, 0.04166635277111221);
  p = tg_fma(p, s, 0.16666415414041177);
  p = tg_fma(p, s, 0.5000000047146057);
  p = tg_fma(p, s, 1.0000000377388714);
  p = tg_fma(p, s, 1.0);
  return exp_neg_scale(p, ks);
}

// silu x = x / (1 + e) or x e / (1 + e), e = e^-|x|, in double (x e exact to 2^-53, no subnormal
// double for |x| <= 112), rounded to float once. The float-pair kernel it replaces (sigmoidf_fast's
// e^-|x| pairs, two paths for e^x near float's subnormals) was 883 us per 1M against 775 (AVX-512),
// 1334 against 1066 (AVX2): half the lanes, but about half the operations. Below -112 the result is
// -0 (x e^x rounds to 0; -inf: NaN, as x * sigmoid(x)); inf stays inf (inf / (1 + e)).
TG_MATH_INLINE float silu_f32(float xf) {
  double x = xf;
  double a = __builtin_fabs(x);
  a = a < 112.0 ? a : 112.0;  // (NaN: 112, and x's NaN below)
  double e = exp_neg_short(a);
  double num = x < 0.0 ? x * e : x;
  float r = float(num / (1.0 + e));
  r = xf < -112.0f ? xf * 0.0f : r;
  return xf != xf ? xf : r;
}

// ----- h109-siluderiv: silu's derivative, float32 in double lanes -----------------------------------
// e^-a as exp_neg_short, but e^s by its Taylor polynomial of degree 9: relative error <= 2^-37 on
// |s| <= ln2/2 and ~2^-54 at s ~ 0.108, where silu' has its zero (a = 1.278, k = -2; see below).
TG_MATH_INLINE double exp_neg_deriv(double a) {
  double ks;
  double s = exp_neg_reduce(a, &ks);
  double p = 2.7557319223985893e-06;
  p = tg_fma(p, s, 2.48015873015873e-05);
  p = tg_fma(p, s, 0.0001984126984126984);
  p = tg_fma(p, s, 0.001388888888888889);
  p = tg_fma(p, s, 0.008333333333333333);
  p = tg_fma(p, s, 0.041666666666666664);
  p = tg_fma(p, s, 0.16666666666666666);
  p = tg_fma(p, s, 0.5);
  p = tg_fma(p, s, 1.0);
  p = tg_fma(p, s, 1.0);
  return exp_neg_scale(p, ks);
}

// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x). With e = e^-|x| and d = 1 / (1 + e), sigmoid(|x|) = d
// and sigmoid(-|x|) = e d: one exp, one division, rounded to float once (the spec's expression calls
// sigmoid twice and rounds each factor). Near its zero x0 = -1.27846 the bracket cancels (x d ~ -1): its
// relative error is e's times ~0.28 / |x - x0|, so e is exp_neg_deriv's (exp_neg_short's 2^-28.5 misses
// 1 ulp there; exp_dd's 2^-52 costs 1,600 us per 1M against 1,140 for the expression) and x d + 1 is
// one fma. Below -112 the result rounds to -0; +-inf give NaN, as the spec's expression (inf * 0) and PyTorch do.
TG_MATH_INLINE float silu_deriv_f32(float xf) {
  double x = xf;
  double a = __builtin_fabs(x);
  a = a < 112.0 ? a : 112.0;  // (NaN: 112, and x's NaN through the fma)
  double e = exp_neg_deriv(a);
  double d = 1.0 / (1.0 + e);
  double ed = e * d;
  bool neg = x < 0.0;
  double sp = neg ? ed : d, sn = neg ? d : ed;
  float r = float(sp * tg_fma(x, sn, 1.0));
  r = xf < -112.0f ? -0.0f : r;
  return __builtin_fabsf(xf) == __builtin_inff() ? __builtin_nanf("") : r;
}
// h130-silu64: float64, the same s (1 + x sn) from one exp and one division, in pairs (the spec's expression
// called sigmoid twice, two divisions: 2.96 ulp at |x - x0| >= 1, 21.8 at >= 1/16, ~1e-16 absolute at x0).
// e = e^-|x| as exp_neg_abs_p600's pair (2^-58 relative), sigma(|x|) = p + pl from 1 / (1 + e) and the fma
// residual, sigma(-|x|) = e (p + pl) as a pair, 1 + x sn by TwoProduct and TwoSum, the product rounded once:
// 0.80 ulp where |x - x0| >= 2^-6; nearer, the bracket's error stays e's, ~2^-60 absolute (the relative
// error grows as 2^-60 / |x - x0|). sigma(x) is kept at e's 2^600 scale (x < 0: e 2^600 (p + pl); x >= 0:
// 2^600 (p + pl)) and the result scaled back once, so subnormal results (x < ~-715) round once more at most.
// Below -760 the result is -0 (-inf: NaN); +inf gives NaN (inf * 0), as the expression and PyTorch.
TG_MATH_INLINE double silu_deriv_f64(double x) {
  double hi, lo;
  exp_neg_abs_p600(x, 0.0, 760.0, &hi, &lo);
  double e = hi * 0x1p-600, el = lo * 0x1p-600;
  double d = 1.0 + e;
  double dl = ((1.0 - d) + e) + el;  // (Fast2Sum: 1 >= e)
  double p = 1.0 / d;
  double r = tg_fma(-d, p, 1.0) - dl * p;  // 1 / (d + dl) = p (1 + r) to 2^-106
  double pl = p * r;
  double en = e * p;
  double enl = tg_fma(e, p, -en) + tg_fma(e, pl, el * p);
  bool neg = x < 0.0;
  double sn = neg ? p : en, snl = neg ? pl : enl;
  double ss = neg ? hi : 0x1p600, ssl = neg ? lo : 0.0;
  double sp = ss * p;
  double spl = tg_fma(ss, p, -sp) + tg_fma(ss, pl, ssl * p);
  double xs = x * sn;
  double xsl = tg_fma(x, sn, -xs) + x * snl;
  double b = 1.0 + xs;  // (TwoSum: x sn < -1 below x0)
  double bb = b - xs;
  double bl = ((1.0 - bb) + (xs - (b - bb))) + xsl;
  double res = tg_fma(sp, b, tg_fma(sp, bl, spl * b)) * 0x1p-600;
  res = x < -760.0 ? x * 0.0 : res;
  return x != x ? x : res;
}

// ----- h131-actgrad: gelu's derivative, float32 in double lanes -------------------------------------
// gelu'(x) = s(u) (1 + x s(-u) u'), u = C x (1 + A x^2), u' = C (1 + 3 A x^2): with e = e^-|u| and
// d = 1 / (1 + e), s(|u|) = d and s(-|u|) = e d: one exp, one division, rounded to float once (the spec's
// expression runs two float sigmoids and rounds every factor; near gelu''s zero x0 = -0.75179 its bracket
// cancels and it was off by up to 5e7 ulps). e is exp_lite's (~2^-52): the bracket's error is ~e's
// relative error there (0.500 ulp on every float of [0.5, 1] of both signs, x0's band). Beyond |u| = 112 e is 0:
// the result is 1, or -0 below (|x u'| <= 3 |u|: it is under 3 |u| e^-|u| < 2^-150); +-inf give NaN,
// as the spec's expression (its clamp, inf - inf) and PyTorch do.
TG_MATH_INLINE float gelu_deriv_f32(float xf) {
  const double C = 1.5957691216057308, A = 0.044715;
  double x = xf;
  double x2 = x * x;
  double u = (C * x) * (1.0 + A * x2);
  double du = C * (1.0 + (3.0 * A) * x2);
  double a = __builtin_fabs(u);
  bool big = !(a < 112.0);  // (NaN too: x's NaN through the fma)
  double e = exp_lite(big ? -112.0 : -a);
  e = big ? 0.0 : e;
  double d = 1.0 / (1.0 + e);
  double ed = e * d;
  bool neg = u < 0.0;
  double sp = neg ? ed : d, sn = neg ? d : ed;
  float r = float(sp * tg_fma(x * du, sn, 1.0));
  return __builtin_fabsf(xf) == __builtin_inff() ? __builtin_nanf("") : r;
}
