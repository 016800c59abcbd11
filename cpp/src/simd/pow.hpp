// Vectorizable float64 x ** y (included by simd/loops.hpp after simd/math.hpp,
// inside its per-ISA namespace; no namespace of its own).
//
// The method is fdlibm's e_pow.c (FreeBSD msun), made branch-free: log2|x|
// in two pieces t1 + t2 (t1 with 32 zero low bits, so y1 * t1 below is
// exact), y * log2|x| = p_h + p_l by splitting y the same way, and
// 2^(p_h + p_l) = 2^n * e^(r ln2) with fdlibm's exp kernel on |r| <= 0.5.
// No FMA is needed (the splits are by truncation), so with -ffp-contract=off
// every build gives the same bits. Scaling by 2^n is done in two steps (as
// exp_dd) so that subnormal results round once and overflow gives inf.
//
// pow_f64_fast is valid for finite nonzero x and finite y with |y| < 2^31
// (pow_f64_slow names the other lanes: zeros, infinities, NaN and huge y,
// where fdlibm switches to a series for x near 1); loops.hpp redoes those
// lanes with libm's pow. Negative x with an integer y gets the sign of
// (-1)^y; with a non-integer y, NaN (C99).
// tests/test_kernels_fastpaths.py measures the error against a long double
// oracle (bar: 2 ulp).

// fdlibm's SET_LOW_WORD(x, 0): x's top 21 significand bits.
TG_MATH_INLINE double tg_trunc32(double x) { return tg_bits_to_f64(tg_f64_to_bits(x) & 0xffffffff00000000ULL); }

// log2(ax) = *t1 + *t2 for finite positive ax (fdlibm e_pow.c's main path):
// ax = 2^n * m, m in [sqrt(2)/2 .. sqrt(3)) reduced around bp = 1 or 1.5,
// s = (m - bp) / (m + bp) in two pieces, log(m / bp) = 2s + 2s^3/3 + ...
TG_MATH_INLINE void pow_log2(double ax, double* t1, double* t2) {
  const double L1 = 5.99999999999994648725e-01, L2 = 4.28571428578550184252e-01, L3 = 3.33333329818377432918e-01,
               L4 = 2.72728123808534006489e-01, L5 = 2.30660745775561754067e-01, L6 = 2.06975017800338417784e-01;
  const double cp = 9.61796693925975554329e-01, cp_h = 9.61796700954437255859e-01,  // 2 / (3 ln2)
      cp_l = -7.02846165095275826516e-09;
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
  // ss = s_h + s_l = (m - bp) / (m + bp)
  const double u = m - bp, v = 1.0 / (m + bp);
  const double ss = u * v;
  const double s_h = tg_trunc32(ss);
  // m + bp = t_h + t_l exactly (t_h - bp and m - that are exact)
  double t_h = tg_trunc32(m + bp);
  double t_l = m - (t_h - bp);
  const double s_l = v * ((u - s_h * t_h) - s_h * t_l);
  // log(m / bp) = 2s + 2/3 s^3 + ... as (3/2) log = 3s + s^3 + r
  double s2 = ss * ss;
  double r = s2 * s2 * (L1 + s2 * (L2 + s2 * (L3 + s2 * (L4 + s2 * (L5 + s2 * L6)))));
  r += s_l * (s_h + ss);
  s2 = s_h * s_h;
  t_h = tg_trunc32(3.0 + s2 + r);
  t_l = r - ((t_h - 3.0) - s2);
  const double uu = s_h * t_h;
  const double vv = s_l * t_h + t_l * ss;
  const double p_h = tg_trunc32(uu + vv);
  const double p_l = vv - (p_h - uu);
  // log2(ax) = n + dp_h + z_h + z_l
  const double z_h = cp_h * p_h;
  const double z_l = cp_l * p_h + p_l * cp + (k1 ? dp_l1 : 0.0);
  const double dp_h = k1 ? dp_h1 : 0.0;
  *t1 = tg_trunc32(((z_h + z_l) + dp_h) + n);
  *t2 = z_l - (((*t1 - n) - dp_h) - z_h);
}

TG_MATH_INLINE double pow_f64_fast(double x, double y) {
  const double P1 = 1.66666666666666019037e-01, P2 = -2.77777777770155933842e-03, P3 = 6.61375632143793436117e-05,
               P4 = -1.65339022054652515390e-06, P5 = 4.13813679705723846039e-08;
  const double lg2 = 6.93147180559945286227e-01, lg2_h = 6.93147182464599609375e-01,
               lg2_l = -1.90465429995776804525e-09;
  const double ax = m_fabs(x), ay = m_fabs(y);
  // y an integer (|y| < 2^31 here): y + 2^52 rounds to one; the sign of
  // (-1)^y is its last bit (moved to the sign bit).
  const double yr = ay + 4503599627370496.0;
  const bool y_int = yr - 4503599627370496.0 == ay;
  const uint64_t odd_sign = tg_f64_to_bits(yr) << 63;
  double t1, t2;
  pow_log2(ax, &t1, &t2);
  // y * log2|x| = p_h + p_l, y split as y1 + (y - y1) with y1 * t1 exact
  const double y1 = tg_trunc32(y);
  double p_l = (y - y1) * t1 + y * t2;
  double p_h = y1 * t1;
  const double z = p_l + p_h;
  // 2^z = 2^nd * 2^(p_h - nd + p_l), |p_h - nd + p_l| <= 0.5 (p_h - nd is exact)
  const double zc = z < -1200.0 ? -1200.0 : (z > 1200.0 ? 1200.0 : z);
  const double nd = (zc + kTgShifter) - kTgShifter;
  p_h = z != z ? 0.0 : p_h - nd;
  p_l = z != z ? 0.0 : p_l;
  const double t = tg_trunc32(p_l + p_h);
  const double u = t * lg2_h;
  const double v = (p_l - (t - p_h)) * lg2 + t * lg2_l;
  const double e = u + v;  // (p_h + p_l) ln2 = e + w
  const double w = v - (e - u);
  const double tt = e * e;
  const double c = e - tt * (P1 + tt * (P2 + tt * (P3 + tt * (P4 + tt * P5))));
  const double rr = (e * c) / (c - 2.0) - (w + e * w);
  const double q = 1.0 - (rr - e);  // e^(e + w), in [0.7, 1.42]
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
