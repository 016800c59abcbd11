// Vectorizable float64 x ** y (included by simd/loops.hpp after simd/math.hpp,
// inside its per-ISA namespace; no namespace of its own).
//
// With FMA (tg_fma: one rounding, the same bits in every build): log2|x| as
// a double-double t1 + t2 (fdlibm e_pow.c's reduction around 1 or 1.5, the
// atanh series with its leading terms as exact fma products), y log2|x| =
// p_h + p_l (the exact fma product), and 2^(p_h + p_l) = 2^n e^r with
// exp_dd's polynomial, r's tail carried in (SLEEF's xpow u10 structure).
// Max 0.75 ulp on 1.2e7 pairs (long double powl; subnormal results, which
// round twice), 0.84 for fdlibm's truncation splits before. Scaling by 2^n is
// done in two steps (as exp_dd) so that overflow gives inf.
//
// pow_f64_fast is valid for finite nonzero x and finite y with |y| < 2^31
// (pow_f64_slow names the other lanes: zeros, infinities, NaN and huge y,
// where fdlibm switches to a series for x near 1); loops.hpp redoes those
// lanes with libm's pow. Negative x with an integer y gets the sign of
// (-1)^y; with a non-integer y, NaN (C99).
// tests/test_kernels_fastpaths.py measures the error against a long double
// oracle (bar: 2 ulp).

// a + b = *s + *e exactly (Knuth's TwoSum: no order needed).
TG_MATH_INLINE double pow_two_sum(double a, double b, double* e) {
  const double s = a + b, bb = s - a;
  *e = (a - (s - bb)) + (b - bb);
  return s;
}

// log2(ax) = *t1 + *t2 (a double-double, ~2^-68 relative) for finite positive
// ax, with FMA: ax = 2^n * m, m in [sqrt(3)/2, sqrt(3)) reduced around bp = 1
// or 1.5 (fdlibm e_pow.c's reduction), s = (m - bp) / (m + bp) as s_h + s_l
// (|s| < 0.102), and (3/2) log(m / bp) = 3s + s^3 + s^5 R(s^2) with 3s and s^3
// as double-doubles (the exact fma products; s^3's coefficient is 1, so only
// R, fdlibm's, ~2e-5 of the sum, is rounded in plain double), times 2 / (3
// ln2) as a double-double; n + log2(bp) added exactly (log2(1.5)'s head has 26
// bits).
TG_MATH_INLINE void pow_log2(double ax, double* t1, double* t2) {
  const double L1 = 5.99999999999994648725e-01, L2 = 4.28571428578550184252e-01, L3 = 3.33333329818377432918e-01,
               L4 = 2.72728123808534006489e-01, L5 = 2.30660745775561754067e-01, L6 = 2.06975017800338417784e-01;
  const double cp_h = 9.6179669392597555433e-01, cp_l = 5.0577616648125907e-17;  // 2 / (3 ln2)
  const double dp_h1 = 5.84962487220764160156e-01, dp_l1 = 1.35003920212974897128e-08;  // log2(1.5)
  const bool sub = ax < 0x1p-1022;
  const double xs = sub ? ax * 0x1p53 : ax;
  const uint64_t b = tg_f64_to_bits(xs);
  // m0 in [1, 2); fdlibm's tests on its high word as double compares (SSE2
  // has no 64-bit integer compare)
  const double m0 = tg_bits_to_f64((b & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  const double lim1 = tg_bits_to_f64(0x3ff3988F00000000ULL), lim2 = tg_bits_to_f64(0x3ffBB67A00000000ULL);
  const bool k1 = m0 >= lim1 && m0 < lim2;  // m0 in [sqrt(3/2), sqrt(3)): around 1.5
  const bool up = m0 >= lim2;               // m0 >= sqrt(3): use m0 / 2 and n + 1
  const double m = up ? m0 * 0.5 : m0;
  double n = tg_bits_to_f64(0x4330000000000000ULL | (b >> 52)) - (4503599627370496.0 + 1023.0);
  n = n + (up ? 1.0 : 0.0) - (sub ? 53.0 : 0.0);
  const double bp = k1 ? 1.5 : 1.0;
  // s = (m - bp) / (m + bp): m - bp exact (Sterbenz), m + bp = d_h + d_l
  // (Fast2Sum: m's exponent is at most bp's, 0)
  const double u = m - bp;
  const double d_h = bp + m;
  const double d_l = (bp - d_h) + m;
  const double inv = 1.0 / d_h;
  const double s_h = u * inv;
  const double s_l = (tg_fma(-s_h, d_h, u) - s_h * d_l) * inv;
  const double z = s_h * s_h;
  const double r = z * z * s_h * tg_fma(z, tg_fma(z, tg_fma(z, tg_fma(z, tg_fma(z, L6, L5), L4), L3), L2), L1);
  // s^2 and s^3 as double-doubles
  const double q_l = tg_fma(s_h, s_h, -z) + 2.0 * s_h * s_l;
  const double c_h = s_h * z;
  const double c_l = tg_fma(s_h, z, -c_h) + (s_h * q_l + s_l * z);
  const double a_h = 3.0 * s_h;
  const double a_l = tg_fma(3.0, s_h, -a_h) + 3.0 * s_l;
  const double l_h = a_h + c_h;  // Fast2Sum: |3s| > |s^3|
  const double l_t = ((a_h - l_h) + c_h) + ((a_l + c_l) + r);
  const double g_h = l_h + l_t;
  const double g_l = (l_h - g_h) + l_t;
  // times 2 / (3 ln2)
  const double w_h = cp_h * g_h;
  const double w_l = tg_fma(cp_h, g_h, -w_h) + (cp_h * g_l + cp_l * g_h);
  const double nb = n + (k1 ? dp_h1 : 0.0);  // exact
  double e;
  const double h = pow_two_sum(nb, w_h, &e);
  const double tl = e + (w_l + (k1 ? dp_l1 : 0.0));
  *t1 = h + tl;
  *t2 = (h - *t1) + tl;
}

TG_MATH_INLINE double pow_f64_fast(double x, double y) {
  const double ln2_h = 6.93147180559945286227e-01, ln2_l = 2.319046813846299558e-17;
  const double ax = m_fabs(x), ay = m_fabs(y);
  // y an integer (|y| < 2^31 here): y + 2^52 rounds to one; the sign of
  // (-1)^y is its last bit (moved to the sign bit).
  const double yr = ay + 4503599627370496.0;
  const bool y_int = yr - 4503599627370496.0 == ay;
  const uint64_t odd_sign = tg_f64_to_bits(yr) << 63;
  double t1, t2;
  pow_log2(ax, &t1, &t2);
  // y * log2|x| = p_h + p_l (the exact fma product, plus y t2)
  double p_h = y * t1;
  double p_l = tg_fma(y, t1, -p_h) + y * t2;
  const double z = p_h + p_l;
  // 2^z = 2^nd * e^((p_h - nd + p_l) ln2), |p_h - nd + p_l| <= 0.5 (p_h - nd is exact). No clamp of z
  // and no NaN test: here |z| < 2^31 * 1075 < 2^51 (so nd is z rounded) and z is not NaN; where |z| >
  // 1100 the result is selected below (inf or 0). (Both sat on the critical path.)
  const double nd = (z + kTgShifter) - kTgShifter;
  p_h = p_h - nd;
  const double f_h = p_h + p_l;  // Fast2Sum: p_h is 0 or at least p_l's ulp above it
  const double f_l = (p_h - f_h) + p_l;
  const double e_h = f_h * ln2_h;  // (f_h + f_l) ln2 = e_h + e_l
  const double e_l = tg_fma(f_h, ln2_h, -e_h) + (f_h * ln2_l + f_l * ln2_h);
  // e^(e_h + e_l), |e_h| <= ln2/2: exp_dd's polynomial without its reduction;
  // 1 + e_h + that, rounded once (in [0.7, 1.42]); e_l (1 + e_h) as its tail.
  const double eq = exp_poly(e_h, tg_fma(e_h, e_l, e_l));
  const double one_h = 1.0 + e_h;
  const double q = one_h + (((1.0 - one_h) + e_h) + eq);  // Fast2Sum's error added before the rounding
  const double n1 = (nd * 0.5 + kTgShifter) - kTgShifter;
  double res = q * tg_pow2i(n1) * tg_pow2i(nd - n1);
  res = z > 1100.0 ? kTgInf : (z < -1100.0 ? 0.0 : res);
  res = y == 1.0 ? ax : res;  // exact, as libm's (correctly rounded) pow
  res = y == 2.0 ? ax * ax : res;
  res = tg_bits_to_f64(tg_f64_to_bits(res) ^ (x < 0.0 ? odd_sign : 0));
  return x < 0.0 && !y_int ? kTgNaN : res;
}

// The lanes pow_f64_fast does not do (libm's pow takes them).
TG_MATH_INLINE bool pow_f64_slow(double x, double y) {
  const double ax = m_fabs(x);
  return !(ax > 0.0 && ax < kTgInf && m_fabs(y) < 2147483648.0);
}
