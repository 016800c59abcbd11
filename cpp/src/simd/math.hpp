// Vectorizable float64 transcendental functions (included by simd/loops.hpp
// inside its per-ISA namespace; no namespace of its own).
//
// glibc's scalar exp/log/sin/... do not vectorize. These are plain
// arithmetic with selects instead of branches, so the compiler vectorizes a
// loop over them, and with -ffp-contract=off every build (SSE2, AVX2,
// AVX-512) gives the same bits. Polynomials and reductions are FreeBSD msun's
// (fdlibm: e_exp.c, e_log.c, s_log1p.c, k_sin.c, k_cos.c, e_rem_pio2.c) and
// Cephes' tanh.c, made branch-free (asin, acos, atan, atan2: at the end); each is within 1 ulp of the correctly
// rounded value in its source's analysis, and tests/test_kernels_fastpaths.py
// measures every one (bars: 2 ulp float64, 1 ulp float32) on >= 10^6 points
// against a long double oracle. sin, cos, tan (float64 and float32) use
// tg_fma (below): their own section says how, and their accuracy.

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

// e^x, fdlibm e_exp.c: x = k ln2 + r (|r| <= ln2/2), e^r from a degree-5
// minimax in r^2 (Remez, error < 2^-59), e^x = 2^k e^r scaled in two steps
// (2^(k/2) twice) so subnormal and near-overflow results round only once.
// *lo gets the last rounding's error (e^x ~ hi + lo to ~2^-60 relative):
// sigmoid, softplus and tanh use it so that exp's error does not add to theirs.
TG_MATH_INLINE double exp_dd(double x, double* lo) {
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10,
               inv_ln2 = 1.44269504088896338700e+00;
  const double P1 = 1.66666666666666019037e-01, P2 = -2.77777777770155933842e-03, P3 = 6.61375632143793436117e-05,
               P4 = -1.65339022054652515390e-06, P5 = 4.13813679705723846039e-08;
  double c = x < -746.0 ? -746.0 : (x > 710.0 ? 710.0 : x);
  c = x != x ? 0.0 : c;
  double kd = (c * inv_ln2 + kTgShifter) - kTgShifter;  // round to nearest
  double hi = c - kd * ln2_hi;  // exact: ln2_hi has 32 low zero bits
  double lo_r = kd * ln2_lo;
  double r = hi - lo_r;
  double t = r * r;
  double cc = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  double u = (lo_r - (r * cc) / (2.0 - cc)) - hi;  // e^r = 1 - u, |u| < 0.42
  double y = 1.0 - u;
  double y_lo = (1.0 - y) - u;  // Fast2Sum: exact
  double k1 = (kd * 0.5 + kTgShifter) - kTgShifter;
  double s1 = tg_pow2i(k1), s2 = tg_pow2i(kd - k1);
  *lo = y_lo * s1 * s2;
  return y * s1 * s2;
}

TG_MATH_INLINE double exp_f64(double x) {
  const double o_threshold = 7.09782712893383973096e+02, u_threshold = -7.45133219101941108420e+02;
  double lo;
  double res = exp_dd(x, &lo);
  res = x > o_threshold ? kTgInf : (x < u_threshold ? 0.0 : res);
  return x != x ? x : res;
}

// fdlibm's log(1 + f) for f = m - 1, m in [sqrt(2)/2, sqrt(2)): s = f/(2+f),
// log(1+f) = f - hfsq + s (hfsq + R(s^2)), R a degree-7 minimax (error <
// 2^-58.45); returns k ln2 + that + c, c a correction below f's ulp.
TG_MATH_INLINE double log_kernel(double f, double kd, double c) {
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01,
               Lg4 = 2.222219843214978396e-01, Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
               Lg7 = 1.479819860511658591e-01;
  double hfsq = 0.5 * f * f;
  double s = f / (2.0 + f);
  double z = s * s, w = z * z;
  double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
  double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
  double R = t2 + t1;
  return kd * ln2_hi - ((hfsq - (s * (hfsq + R) + (kd * ln2_lo + c))) - f);
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
// the quadrant selecting the pair per lane; tan divides the two pairs once
// and corrects the quotient with fma. Branch-free, so the loops vectorize.
// Measured (tests/test_kernels_fastpaths.py, benchmarks/README "sin, cos,
// tan on FMA (h64)"): float64 at most 0.69 (sin, cos), 0.79 (tan) ulp on
// 8x10^5 points; float32 0.711, 0.718, 0.856 ulp on every 17th block of all
// floats (cpp/tools/exhaustive_f32.sh --stride 17; the full sweep: not yet).
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

template <class T> TG_MATH_INLINE T trig_fma(T a, T b, T c) {
  if constexpr (sizeof(T) == 4) return tg_fmaf(a, b, c);
  else return tg_fma(a, b, c);
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
template <class T> TG_MATH_INLINE auto trig_reduce(T x, T* h, T* l) {
  const bool f = sizeof(T) == 4;
  const T inv_pio2 = f ? T(0x1.45f306p-1f) : T(0x1.45f306dc9c883p-1);
  const T shifter = f ? T(12582912.0f) : T(kTgShifter);  // 1.5 * 2^23, 1.5 * 2^52
  const T p1 = f ? T(0x1.921fb6p+0f) : T(0x1.921fb54442d18p+0);
  const T p2 = f ? T(-0x1.777a5cp-25f) : T(0x1.1a62633145c07p-54);
  const T p3 = f ? T(-0x1.ee59dap-50f) : T(-0x1.f1976b7ed8fbcp-110);
  T nsh = trig_fma(x, inv_pio2, shifter);
  auto q = trig_bits(nsh);
  T fn = nsh - shifter;
  T a = trig_fma(-fn, p1, x);
  T s = a - fn * p2;
  *l = trig_fma(-fn, p3, trig_fma(-fn, p2, a - s));
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
    ps = trig_fma(z, trig_fma(z, trig_fma(z, S4, S3), S2), S1);
    pc = trig_fma(z, trig_fma(z, trig_fma(z, C4, C3), C2), C1);
  } else {
    const T S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
    const T C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
    ps = trig_fma(z, trig_fma(z, trig_fma(z, trig_fma(z, trig_fma(z, S6, S5), S4), S3), S2), S1);
    pc = trig_fma(z, trig_fma(z, trig_fma(z, trig_fma(z, trig_fma(z, C6, C5), C4), C3), C2), C1);
  }
  T hz = T(0.5) * z;
  *sh = h;
  *sl = trig_fma(h * z, ps, trig_fma(-hz, l, l));
  T mh = T(-0.5) * h;
  T w = trig_fma(mh, h, T(1));
  *ch = w;
  *cl = trig_fma(z * z, pc, trig_fma(-h, l, trig_fma(mh, h, T(1) - w)));
}

// -r where q & 2 (q's bit 1 moved to the sign bit: no mask, no select).
template <class T, class U> TG_MATH_INLINE T trig_flip(T r, U q) {
  constexpr int k = 8 * sizeof(T) - 2;
  U b = trig_bits(r) ^ ((q << k) & (U(1) << (k + 1)));
  if constexpr (sizeof(T) == 4) return tg_bits_to_f32(b);
  else return tg_bits_to_f64(b);
}

// sin(x + k pi/2) (k = 0: sin, 1: cos): sin(r + n pi/2) is +-sin r for even
// n, +-cos r for odd, negative where n & 2.
template <class T, int k> TG_MATH_INLINE T trig_sin_k(T x) {
  T h, l, sh, sl, ch, cl;
  auto q = trig_reduce(x, &h, &l) + k;
  trig_sincos(h, l, &sh, &sl, &ch, &cl);
  bool odd = q & 1;
  T r = odd ? ch : sh;
  r += odd ? cl : sl;
  r = trig_flip(r, q);
  if constexpr (k == 0) r = x == T(0) ? x : r;  // keeps -0
  return r;
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
  T e = trig_fma(-q0, dl, trig_fma(-q0, d, n) + nl);
  T r = trig_fma(e, rcp, q0);
  return x == T(0) ? x : r;  // keeps -0
}

// sin/cos/tan for |x| <= kTrigBound (float32: kTrigBoundF; other lanes: see
// trig_fixup in loops.hpp).
TG_MATH_INLINE double sin_f64(double x) { return trig_sin_k<double, 0>(x); }
TG_MATH_INLINE double cos_f64(double x) { return trig_sin_k<double, 1>(x); }
TG_MATH_INLINE double tan_f64(double x) { return trig_tan(x); }
TG_MATH_INLINE float sin_f32(float x) { return trig_sin_k<float, 0>(x); }
TG_MATH_INLINE float cos_f32(float x) { return trig_sin_k<float, 1>(x); }
TG_MATH_INLINE float tan_f32(float x) { return trig_tan(x); }

// tanh: Cephes tanh.c's rational function below |x| = 0.625, else
// 1 - 2 / (E + 1), E = e^(2|x|) as hi + lo and E + 1 as a double-double;
// 1 beyond 22 (1 - tanh(22) < 2^-62).
TG_MATH_INLINE double tanh_f64(double x) {
  const double P0 = -9.64399179425052238628e-1, P1 = -9.92877231001918586564e1, P2 = -1.61468768441708447952e3;
  const double Q0 = 1.12811678491632931402e2, Q1 = 2.23548839060100448583e3, Q2 = 4.84406305325125486048e3;
  double a = x < 0 ? -x : x;
  a = a > 22.0 ? 22.0 : a;
  double z = a * a;
  double small = a + a * (z * ((P0 * z + P1) * z + P2) / (((z + Q0) * z + Q1) * z + Q2));
  double e_lo;
  double e = exp_dd(2.0 * a, &e_lo);
  double s = e + 1.0;
  double s_lo = ((e - s) + 1.0) + e_lo;  // Fast2Sum (e >= 1) plus exp's tail
  double q = 2.0 / s;
  q = q - q * (s_lo / s);
  double big = 1.0 - q;
  double t = a < 0.625 ? small : big;
  double r = x < 0 ? -t : t;
  r = x == 0.0 ? x : r;  // keeps -0
  return x != x ? x : r;
}

// 1 / (1 + e^-x), stable on both sides (e = e^-|x| <= 1): e as hi + lo and
// 1 + e as a double-double, so only the division's rounding remains.
TG_MATH_INLINE double sigmoid_f64(double x) {
  double e_lo;
  double e = exp_dd(x < 0 ? x : -x, &e_lo);
  e = x < -746.0 ? 0.0 : e;  // (exp_dd clamps its argument)
  e_lo = x < -746.0 ? 0.0 : e_lo;
  double s = 1.0 + e;
  double s_lo = ((1.0 - s) + e) + e_lo;  // Fast2Sum: 1 >= e
  double num = x < 0 ? e : 1.0, num_lo = x < 0 ? e_lo : 0.0;
  double q = num / s;
  double r = q + (num_lo - q * s_lo) / s;
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
// FreeBSD msun's e_asin.c, e_acos.c, s_atan.c, e_atan2.c (fdlibm; each < 1 ulp
// in its source's analysis), their branches all computed and one selected.

// fdlibm's asin/acos rational R(t) = p(t)/q(t) on t in [0, 0.25] (Remez,
// error < 2^-58.75): asin(x) = x + x R(x^2) for |x| < 0.5.
TG_MATH_INLINE double asin_r(double t) {
  const double pS0 = 1.66666666666666657415e-01, pS1 = -3.25565818622400915405e-01,
               pS2 = 2.01212532134862925881e-01, pS3 = -4.00555345006794114027e-02,
               pS4 = 7.91534994289814532176e-04, pS5 = 3.47933107596021167570e-05;
  const double qS1 = -2.40339491173441421878e+00, qS2 = 2.02094576023350569471e+00,
               qS3 = -6.88283971605453293030e-01, qS4 = 7.70381505559019352791e-02;
  double p = t * (pS0 + t * (pS1 + t * (pS2 + t * (pS3 + t * (pS4 + t * pS5)))));
  double q = 1.0 + t * (qS1 + t * (qS2 + t * (qS3 + t * qS4)));
  return p / q;
}
constexpr double kPio2Hi = 1.57079632679489655800e+00, kPio2Lo = 6.12323399573676603587e-17;
constexpr double kPio4Hi = 7.85398163397448278999e-01;
constexpr double kPiHi = 3.14159265358979311600e+00, kPiLo = 1.2246467991473531772e-16;

// The reduction e_asin.c and e_acos.c share: t = x^2 below |x| = 0.5, else
// (1 - |x|)/2 with s = sqrt(t) as head w (low 32 bits cleared: w^2 exact)
// plus tail c; r = R(t).
struct AsinParts {
  double a, t, r, s, w, c;
  bool small;
};
TG_MATH_INLINE AsinParts asin_parts(double x) {
  AsinParts p;
  p.a = __builtin_fabs(x);
  p.small = p.a < 0.5;
  p.t = p.small ? x * x : (1.0 - p.a) * 0.5;
  p.r = asin_r(p.t);
  p.s = __builtin_sqrt(p.t);
  p.w = tg_bits_to_f64(tg_f64_to_bits(p.s) & 0xffffffff00000000ULL);
  p.c = (p.t - p.w * p.w) / (p.s + p.w);
  return p;
}

// e_asin.c: |x| < 0.5: x + x R(x^2); else asin|x| = pi/2 - 2 (s + s R(t)),
// for |x| < 0.975 with s's head w so that pi/4 - 2w is exact.
TG_MATH_INLINE double asin_f64(double x) {
  AsinParts p = asin_parts(x);
  double near1 = kPio2Hi - (2.0 * (p.s + p.s * p.r) - kPio2Lo);
  double mid = kPio4Hi - ((2.0 * p.s * p.r - (kPio2Lo - 2.0 * p.c)) - (kPio4Hi - 2.0 * p.w));
  double big = p.a >= 0.975 ? near1 : mid;
  big = x < 0 ? -big : big;
  double res = p.small ? x + x * p.r : big;
  res = p.a > 1.0 ? kTgNaN : res;
  return x != x ? x : res;
}

// e_acos.c: |x| < 0.5: pi/2 - (x - (pio2_lo - x R(x^2))); x <= -0.5:
// pi - 2 (s + (s R(t) - pio2_lo)); x >= 0.5: 2 (w + (s R(t) + c)), w the
// head of s = sqrt((1 - x)/2) and c its tail.
TG_MATH_INLINE double acos_f64(double x) {
  AsinParts p = asin_parts(x);
  double mid = kPio2Hi - (x - (kPio2Lo - x * p.r));
  double neg = kPiHi - 2.0 * (p.s + (p.r * p.s - kPio2Lo));
  double pos = 2.0 * (p.w + (p.r * p.s + p.c));
  double res = p.small ? mid : (x < 0 ? neg : pos);
  res = x == 1.0 ? 0.0 : res;  // (c is 0/0 there)
  res = p.a > 1.0 ? kTgNaN : res;
  return x != x ? x : res;
}

// s_atan.c: |x| reduced to |t| <= 7/16 by atan(x) = atan(c) + atan((x - c) /
// (1 + c x)) for c = 1/2, 1, 3/2, inf (the intervals' edges 7/16, 11/16,
// 19/16, 39/16), then an odd degree-21 polynomial (error < 2^-57.4) and
// atan(c) in two parts. One division per element: t = num / den.
TG_MATH_INLINE double atan_f64(double x) {
  const double aT0 = 3.33333333333329318027e-01, aT1 = -1.99999999998764832476e-01,
               aT2 = 1.42857142725034663711e-01, aT3 = -1.11111104054623557880e-01,
               aT4 = 9.09088713343650656196e-02, aT5 = -7.69187620504482999495e-02,
               aT6 = 6.66107313738753120669e-02, aT7 = -5.83357013379057348645e-02,
               aT8 = 4.97687799461593236017e-02, aT9 = -3.65315727442169155270e-02,
               aT10 = 1.62858201153657823623e-02;
  double a = x < 0 ? -x : x;
  // fdlibm's id: -1 (no reduction), 0..3; atanhi/atanlo[id] as selects.
  bool r0 = a >= 0.4375, r1 = a >= 0.6875, r2 = a >= 1.1875, r3 = a >= 2.4375;
  double num = r3 ? -1.0 : (r2 ? a - 1.5 : (r1 ? a - 1.0 : (r0 ? 2.0 * a - 1.0 : x)));
  double den = r3 ? a : (r2 ? 1.0 + 1.5 * a : (r1 ? a + 1.0 : (r0 ? 2.0 + a : 1.0)));
  double hi = r3 ? 1.57079632679489655800e+00
                 : (r2 ? 9.82793723247329054082e-01 : (r1 ? 7.85398163397448278999e-01 : 4.63647609000806093515e-01));
  double lo = r3 ? 6.12323399573676603587e-17
                 : (r2 ? 1.39033110312309984516e-17 : (r1 ? 3.06161699786838301793e-17 : 2.26987774529616870924e-17));
  double t = num / den;
  double z = t * t, w = z * z;
  double s1 = z * (aT0 + w * (aT2 + w * (aT4 + w * (aT6 + w * (aT8 + w * aT10)))));
  double s2 = w * (aT1 + w * (aT3 + w * (aT5 + w * (aT7 + w * aT9))));
  double reduced = hi - ((t * (s1 + s2) - lo) - t);
  reduced = x < 0 ? -reduced : reduced;
  double res = r0 ? reduced : t - t * (s1 + s2);
  res = x == 0.0 ? x : res;  // keeps -0
  return x != x ? x : res;
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
// In float, at the full float vector width (no float64 anywhere): fdlibm's
// reductions and compensated sums as the float64 versions above, with
// polynomials refitted for float (near-minimax, relative error of the
// polynomial term < 2^-28.5 on each range). Each is within 1 ulp of the
// correctly rounded result on all 2^32 inputs (cpp/tools/f32_trig_exhaustive.cpp;
// arctan2 on a dense 2-d sample).
// pi/2, pi/4, pi as float head (round to nearest) + tail.
constexpr float kPio2HiF = 0x1.921fb6p+0f, kPio2LoF = -0x1.777a5cp-25f, kPio4HiF = 0x1.921fb6p-1f,
                kPiHiF = 0x1.921fb6p+1f;

// asin_parts in float: z = x^2 below |x| = 0.5, else (1 - |x|)/2 (exact);
// r = z P(z) (asin(x) = x + x r for |x| < 0.5); s = sqrt(z) as head w (12
// bits: w^2 exact) + tail c.
struct AsinPartsF {
  float a, z, r, s, w, c;
};
TG_MATH_INLINE AsinPartsF asinf_parts(float x) {
  const float Q0 = 1.6666753590e-01f, Q1 = 7.4952416122e-02f, Q2 = 4.5477103442e-02f, Q3 = 2.4147571996e-02f,
              Q4 = 4.2218618095e-02f;
  AsinPartsF p;
  p.a = __builtin_fabsf(x);
  p.z = p.a < 0.5f ? x * x : (1.0f - p.a) * 0.5f;
  p.r = p.z * (Q0 + p.z * (Q1 + p.z * (Q2 + p.z * (Q3 + p.z * Q4))));
  p.s = __builtin_sqrtf(p.z);
  p.w = tg_bits_to_f32(tg_f32_to_bits(p.s) & 0xfffff000u);
  p.c = (p.z - p.w * p.w) / (p.s + p.w);
  return p;
}

// asin_f64's three branches in float.
TG_MATH_INLINE float asin_f32(float x) {
  AsinPartsF p = asinf_parts(x);
  float near1 = kPio2HiF - (2.0f * (p.s + p.s * p.r) - kPio2LoF);
  float mid = kPio4HiF - ((2.0f * p.s * p.r - (kPio2LoF - 2.0f * p.c)) - (kPio4HiF - 2.0f * p.w));
  float big = p.a >= 0.975f ? near1 : mid;
  big = __builtin_copysignf(big, x);
  float res = p.a < 0.5f ? x + x * p.r : big;
  res = p.a > 1.0f ? __builtin_nanf("") : res;
  return x != x ? x : res;
}

// acos_f64's three branches in float.
TG_MATH_INLINE float acos_f32(float x) {
  AsinPartsF p = asinf_parts(x);
  float mid = kPio2HiF - (x - (kPio2LoF - x * p.r));
  float neg = kPiHiF - 2.0f * (p.s + (p.r * p.s - kPio2LoF));
  float pos = 2.0f * (p.w + (p.r * p.s + p.c));
  float res = p.a < 0.5f ? mid : (x < 0 ? neg : pos);
  res = x == 1.0f ? 0.0f : res;  // (c is 0/0 there)
  res = p.a > 1.0f ? __builtin_nanf("") : res;
  return x != x ? x : res;
}

// atan(t) - t = t z P(z), z = t^2, |t| <= 7/16.
TG_MATH_INLINE float atanf_poly(float t) {
  const float P0 = -3.3333304524e-01f, P1 = 1.9997766614e-01f, P2 = -1.4230041206e-01f, P3 = 1.0493666679e-01f,
              P4 = -5.8252315968e-02f;
  float z = t * t;
  return t * z * (P0 + z * (P1 + z * (P2 + z * (P3 + z * P4))));
}

// atan_f64's reduction in float (2a - 1, a - 1, a - 1.5 exact), atan(c) as
// head + tail summed last.
TG_MATH_INLINE float atan_f32(float x) {
  float a = __builtin_fabsf(x);
  // (Selects on compares written out, no bool variables: with them GCC left
  // the loop scalar, "control flow in loop".)
  float num = a >= 0.4375f ? 2.0f * a - 1.0f : a, den = a >= 0.4375f ? 2.0f + a : 1.0f;
  float hi = a >= 0.4375f ? 0x1.dac67p-2f : 0.0f, lo = a >= 0.4375f ? 0x1.586ed4p-28f : 0.0f;
  num = a >= 0.6875f ? a - 1.0f : num;
  den = a >= 0.6875f ? a + 1.0f : den;
  hi = a >= 0.6875f ? kPio4HiF : hi;
  lo = a >= 0.6875f ? -0x1.777a5cp-26f : lo;
  num = a >= 1.1875f ? a - 1.5f : num;
  den = a >= 1.1875f ? 1.0f + 1.5f * a : den;
  hi = a >= 1.1875f ? 0x1.f730bep-1f : hi;
  lo = a >= 1.1875f ? -0x1.afc12cp-26f : lo;
  num = a >= 2.4375f ? -1.0f : num;
  den = a >= 2.4375f ? a : den;
  hi = a >= 2.4375f ? kPio2HiF : hi;
  lo = a >= 2.4375f ? kPio2LoF : lo;
  float t = num / den;
  float r = hi + (t + (atanf_poly(t) + lo));
  r = __builtin_copysignf(r, x);  // (keeps -0)
  return x != x ? x : r;
}

// atan2 in float: y/x folded to q = small/large in [0, 1] (|y| <= |x|: angle
// K pi/2 + atan q, else K pi/2 - atan q; K from the quadrant), q's division
// error added back as the exact residual (n - q d, Dekker's product on the
// operands scaled into range) over d (1 + q^2), atan q as head + tail and
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
  // Residual n - q d, exact: n and d scaled by a power of 2 so that 4097 d
  // cannot overflow and the products' low bits stay normal.
  float sc = d > 0x1p64f ? 0x1p-64f : (d < 0x1p-20f ? 0x1p100f : 1.0f);
  float ns = n * sc, ds = d * sc;
  float qh = q * 4097.0f, dh = ds * 4097.0f;
  qh = qh - (qh - q);
  dh = dh - (dh - ds);
  float ql = q - qh, dl = ds - dh;
  float p = q * ds;
  float p_lo = ((qh * dh - p) + qh * dl + ql * dh) + ql * dl;
  float corr = ((ns - p) - p_lo) / (ds + q * ns);  // (atan' = 1/(1 + q^2))
  corr = q < 0x1p-30f ? 0.0f : corr;  // (there atan q = q: the residual is not needed, and may underflow)
  // atan q, q in [0, 1]: atan_f32's first three intervals, head zh + tail zl.
  float num = q >= 0.6875f ? q - 1.0f : (q >= 0.4375f ? 2.0f * q - 1.0f : q);
  float den = q >= 0.6875f ? q + 1.0f : (q >= 0.4375f ? 2.0f + q : 1.0f);
  float hi = q >= 0.6875f ? kPio4HiF : (q >= 0.4375f ? 0x1.dac67p-2f : 0.0f);
  float lo = q >= 0.6875f ? -0x1.777a5cp-26f : (q >= 0.4375f ? 0x1.586ed4p-28f : 0.0f);
  float t = num / den;
  float tail = t + (atanf_poly(t) + (lo + corr));
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
  float r = S + (err + (zl + k * kPio2LoF));
  r = __builtin_copysignf(r, y);
  return x != x ? x + y : (y != y ? x + y : r);
}
