// Vectorizable float64 x ** y (included by simd/loops.hpp after simd/math.hpp,
// inside its per-ISA namespace; no namespace of its own).
//
// With FMA (tg_fma: one rounding, the same bits in every build). pow_f64_fast
// (h125-pow) is ARM optimized-routines' table-driven pow, below; pow_log2 is
// the earlier kernel's log2|x| as a double-double (fdlibm e_pow.c's reduction
// around 1 or 1.5, the atanh series with its leading terms as exact fma
// products), kept for math.hpp's ln_dd.
//
// pow_f64_fast is valid for finite nonzero x and finite y with |y| < 2^31
// (pow_f64_slow names the other lanes: zeros, infinities, NaN and huge y);
// loops.hpp redoes those lanes with libm's pow. Negative x with an integer y
// gets the sign of (-1)^y; with a non-integer y, NaN (C99).
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

// x ** y for the kernel's lanes (h125-pow): ARM optimized-routines' pow (math/pow.c, HAVE_FAST_FMA;
// 0.54 ulp worst case by its analysis) made branch-free on its tables (simd/pow_tables.hpp: GCC 12
// loads them lane by lane, emulated gathers, at AVX2/AVX-512 too; the same operations and bits in
// every build). log|x| = hi + lo to ~2^-68 relative: |x| = 2^k z, z/c - 1 = r exact by one fma
// (1/c from the table), log|x| = k ln2 + log(c) + log1p(r), log1p(r) = r - r^2/2 + r^3 P(r) with
// -r^2/2's rounding error kept by an fma. y log|x| = ehi + elo (fma products). e^(ehi + elo) =
// 2^(m/128) e^s: m = round(ehi 128/ln2), s = ehi - m ln2/128 + elo (|s| <= ln2/256 + tiny), 2^(j/128)
// = H_j (1 + T_j) from the table (j = m mod 128), e^s - 1 + T_j by a degree-5 polynomial, q = H_j +
// H_j (...) rounded once; then 2^((m - j)/128) in two exact steps (as before), so a subnormal
// result rounds twice (<= 0.77 ulp of the subnormal) and an overflow gives inf.
// pow_log2 above stays: math.hpp's ln_dd (arcsinh, arccosh) takes it.
#include "simd/pow_tables.hpp"

TG_MATH_INLINE double pow_f64_fast(double x, double y) {
  const double ln2_hi = 0x1.62e42fefa3800p-1, ln2_lo = 0x1.ef35793c76730p-45;
  // log1p(r) - r + r^2/2 = r^3 (A1 + A2 r + A3 r^2 + ...) scaled as pow_log_data.c evaluates it
  // (ar = -r/2: the coefficients times -2, 4, -8); relative error 2^-69.9 on |r| < 0x1.6bp-8.
  const double A1 = 0x1.555555555556p-2 * -2, A2 = -0x1.0000000000006p-2 * -2, A3 = 0x1.999999959554ep-3 * 4,
               A4 = -0x1.555555529a47ap-3 * 4, A5 = 0x1.2495b9b4845e9p-3 * -8, A6 = -0x1.0002b8b263fc3p-3 * -8;
  const double inv_ln2_n = 0x1.71547652b82fep0 * 128, neg_ln2_hi_n = -0x1.62e42fefa0000p-8,
               neg_ln2_lo_n = -0x1.cf79abc9e3b3ap-47;
  // e^s - 1 - s (exp_data.c, N = 128, order 5): absolute error 2^-65.4 on |s| < ln2/256
  const double C2 = 0x1.ffffffffffdbdp-2, C3 = 0x1.555555555543cp-3, C4 = 0x1.55555cf172b91p-5,
               C5 = 0x1.1111167a4d017p-7;
  const double ax = m_fabs(x), ay = m_fabs(y);
  // y an integer (|y| < 2^31 here): y + 2^52 rounds to one; the sign of
  // (-1)^y is its last bit (moved to the sign bit).
  const double yr = ay + 4503599627370496.0;
  const bool y_int = yr - 4503599627370496.0 == ay;
  const uint64_t odd_sign = tg_f64_to_bits(yr) << 63;
  // ---- log|x|: ix = |x|'s bits, a subnormal's from |x| 2^52 with the exponent field lowered by 52
  // (wrapping: only ix - off's arithmetic matters, mod 2^64).
  const bool sub = ax < 0x1p-1022;
  const uint64_t ix = sub ? tg_f64_to_bits(ax * 0x1p52) - (52ULL << 52) : tg_f64_to_bits(ax);
  const uint64_t tmp = ix - 0x3fe6955500000000ULL;
  const uint64_t i = (tmp >> 45) & 127;
  // k = tmp's top 12 bits as a signed number (tmp >> 52, arithmetic), made a double through the
  // 2^52 shifter with the sign bit flipped (k + 2048 is then the logical shift: no 64-bit
  // arithmetic shift nor int-to-double conversion at AVX2).
  const double kd =
      tg_bits_to_f64(0x4330000000000000ULL | ((tmp ^ 0x8000000000000000ULL) >> 52)) - (4503599627370496.0 + 2048.0);
  const double z = tg_bits_to_f64(ix - (tmp & (0xfffULL << 52)));
  const double invc = kPowLogTab[i][0], logc = kPowLogTab[i][1], logctail = kPowLogTab[i][2];
  const double r = tg_fma(z, invc, -1.0);      // exact
  const double t1 = tg_fma(kd, ln2_hi, logc);  // exact (logc's last bits are zero)
  const double t2 = t1 + r;
  const double lo1 = tg_fma(kd, ln2_lo, logctail);
  const double lo2 = (t1 - t2) + r;
  const double ar = -0.5 * r;
  const double ar2 = r * ar;
  const double ar3 = r * ar2;
  const double hi0 = t2 + ar2;
  const double lo3 = tg_fma(ar, r, -ar2);
  const double lo4 = (t2 - hi0) + ar2;
  const double p = ar3 * tg_fma(ar2, tg_fma(ar2, tg_fma(r, A6, A5), tg_fma(r, A4, A3)), tg_fma(r, A2, A1));
  const double lo = (((lo1 + lo2) + lo3) + lo4) + p;
  const double hi = hi0 + lo;
  const double lt = (hi0 - hi) + lo;
  // ---- y log|x| = ehi + elo
  const double ehi = y * hi;
  const double elo = tg_fma(y, lt, tg_fma(y, hi, -ehi));
  // ---- e^(ehi + elo). |ehi| < 2^31 * 745 here, so ehi 128/ln2 < 2^51 (the shifter rounds it); lanes
  // with |ehi| > 1000 are inf or 0, selected below (the scaling's garbage there is discarded).
  const double ms = tg_fma(ehi, inv_ln2_n, kTgShifter);
  const double md = ms - kTgShifter;
  const uint64_t j = tg_f64_to_bits(ms) & 127;  // m mod 128 (the shifter's low bits are m's)
  double s = tg_fma(md, neg_ln2_hi_n, ehi);
  s = tg_fma(md, neg_ln2_lo_n, s);
  s = s + elo;
  const double tail = kPowExpTab[j][0], H = kPowExpTab[j][1];
  const double s2 = s * s;
  const double e1 = tg_fma(s2, tg_fma(s, C3, C2), tail + s);
  const double em = tg_fma(s2 * s2, tg_fma(s, C5, C4), e1);
  const double q = tg_fma(H, em, H);  // in (0.99, 2)
  // 2^((m - j)/128), (m - j)/128 in [-1444, 1444] for the kept lanes: two factors in [-722, 722]
  const double jd = tg_bits_to_f64(0x4330000000000000ULL | j) - 4503599627370496.0;
  const double nd = (md - jd) * 0x1p-7;
  const double n1 = (nd * 0.5 + kTgShifter) - kTgShifter;
  double res = q * tg_pow2i(n1) * tg_pow2i(nd - n1);
  res = ehi > 1000.0 ? kTgInf : (ehi < -1000.0 ? 0.0 : res);
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
