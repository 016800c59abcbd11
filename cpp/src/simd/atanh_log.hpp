// ----- h124-atanh-log: arctanh (float32, float64) with one division; float32 log2/log10 in float -----
// Included by simd/math.hpp inside its namespace (before atanh_f64; split_exponentf is declared there).
//
// arctanh. For a = |x| < 1, atanh a = ln(u) / 2, u = n / d, n = 1 + a, d = 1 - a. k = round(L(n) - L(d))
// where L(v) = (the bits of v) / 2^52 - 1023 is log2 v to within 0.0861 (exponent plus the mantissa
// taken linearly), so m = u 2^-k is in [2^-0.5861, 2^0.5861] = [0.666, 1.501], and
// atanh a = k ln2 / 2 + atanh s, s = (m - 1) / (m + 1) = (n - d 2^k) / (n + d 2^k), |s| <= 0.2002:
// one division (the old kernels divided for u, then again inside log: s = f / (2 + f); float64 took
// pow_log2's double-double and a quotient correction, three divisions). n - d 2^k is exact (Sterbenz:
// n and d 2^k are within a factor 1.5). atanh s = s + s z P(z), z = s^2 <= 0.0401. k = 0 gives s = a.
// k >= 0 (n >= 1 >= d), so the bit difference is non-negative and a logical shift recovers k.

// k 2^52 (as bits: k in the exponent field) for n >= 1 >= d > 0: L(n) - L(d) rounded to an integer.
TG_MATH_INLINE uint64_t atanh_k_bits(double n, double d) {
  return (tg_f64_to_bits(n) - tg_f64_to_bits(d) + (uint64_t(1) << 51)) & 0xfff0000000000000ULL;
}
TG_MATH_INLINE double atanh_k_of(uint64_t kb) {
  return tg_bits_to_f64((kb >> 52) | 0x4330000000000000ULL) - 0x1p52;
}

// float32 in double lanes: a float's 1 + a and 1 - a are exact in double for a >= 2^-29 (below, k = 0
// and s = a is selected: n - d would lose a), d 2^k exact (d >= 2^-24 is normal), s rounded twice
// (n + d 2^k, the quotient: 2^-52 relative), P of degree 3 (Remez fit on z in [0, 0.0401]: < 2^-33
// relative in atanh s; exhaustive float32 sweep in benchmarks/README.md "h124-atanh-log"), one
// rounding to float at the end.
TG_MATH_INLINE float atanh_f32_1div(float xf) {
  const double ln2_2 = 0x1.62e42fefa39efp-2;  // ln 2 / 2
  double a = __builtin_fabs(double(xf));
  double n = 1.0 + a, d = 1.0 - a;
  uint64_t kb = atanh_k_bits(n, d);
  double kd = atanh_k_of(kb);
  double dk = tg_bits_to_f64(tg_f64_to_bits(d) + kb);  // d 2^k (garbage for d <= 0: selected below)
  double q = (n - dk) / (n + dk);
  double s = kd == 0.0 ? a : q;
  double z = s * s;
  double p = tg_fma(tg_fma(tg_fma(0x1.e6c1501d9e49bp-4, z, 0x1.242a3eea68d0fp-3), z, 0x1.999a72980c0ebp-3), z, 0x1.55555532247f3p-2);
  double r = tg_fma(kd, ln2_2, tg_fma(s * z, p, s));
  r = d == 0.0 ? kTgInf : r;
  r = d < 0.0 ? kTgNaN : r;
  r = d != d ? a + a : r;  // (a + a: a signaling NaN quieted in every build, as before)
  return float(__builtin_copysign(r, double(xf)));
}

// float64: n = nh + nl and d = dh + dl exactly (Fast2Sum: 1 >= a), scaled by 2^k exactly; the
// numerator nh - dh 2^k exact plus nl - dl 2^k, the denominator by TwoSum; s = s0 + sl from one
// reciprocal (s0 = uh / v rounded, sl from s0's exact fma residual): ~2^-100 relative. For k = 0 the
// pairs carry a to the end even where 1 +- a rounds (tiny and subnormal a: nh = dh = 1, s0 = 0,
// sl = a). atanh s = s0 + sl + s0 z P(z), P of degree 7 (< 2^-54 relative on z in [0, 0.0401]);
// k ln2/2 + s0 by Fast2Sum (k ln2/2's head has 41 bits: exact for k <= 55; |k ln2/2| >= 0.34 > |s0|
// where k != 0), the small terms added once: 0.5 ulp plus ~2^-56 relative.
TG_MATH_INLINE double atanh_f64_1div(double x) {
  const double c_h = 0x1.62e42fefa3000p-2, c_l = 0x1.3de6af278ece6p-43;  // ln 2 / 2 = c_h + c_l
  double a = __builtin_fabs(x);
  double nh = 1.0 + a, nl = (1.0 - nh) + a;
  double dh = 1.0 - a, dl = (1.0 - dh) - a;
  uint64_t kb = atanh_k_bits(nh, dh);
  double kd = atanh_k_of(kb);
  double p2k = tg_bits_to_f64(kb + 0x3ff0000000000000ULL);  // 2^k
  double dkh = dh * p2k, dkl = dl * p2k;
  double uh = nh - dkh;  // exact
  double ul = nl - dkl;
  double vh = nh + dkh, bb = vh - nh;
  double vl = ((nh - (vh - bb)) + (dkh - bb)) + (nl + dkl);  // TwoSum, plus the low parts
  double inv = 1.0 / vh;
  double s0 = uh * inv;
  double sl = (tg_fma(-s0, vh, uh) + tg_fma(-s0, vl, ul)) * inv;
  double z = s0 * s0, z2 = z * z, z4 = z2 * z2;
  double p = tg_fma(z4, tg_fma(z2, tg_fma(z, 0x1.171fcac1eaa43p-4, 0x1.0e7b22d240537p-4), tg_fma(z, 0x1.3b2ab103a724cp-4, 0x1.745ca69dd4056p-4)),
                    tg_fma(z2, tg_fma(z, 0x1.c71c72f1d7576p-4, 0x1.24924923d0287p-3), tg_fma(z, 0x1.9999999999f99p-3, 0x1.5555555555555p-2)));
  double kh = kd * c_h;  // exact
  double hi = kh + s0;
  double lo = (kh - hi) + s0;  // Fast2Sum (k = 0: hi = s0, lo = 0)
  double res = hi + (lo + (sl + tg_fma(s0 * z, p, kd * c_l)));
  res = a == 1.0 ? kTgInf : res;
  res = a > 1.0 ? kTgNaN : res;
  res = __builtin_copysign(res, x);
  return x != x ? x : res;
}

// Cephes logf's P: log(1 + f) = f - f^2/2 + f^3 P(f) for f in [sqrt(1/2) - 1, sqrt(2) - 1), by
// Horner in fused steps (shared by logf_base_h124 below and loops.hpp's logf_kernel2).
TG_MATH_INLINE float logf_poly(float f) {
  float p = 7.0376836292e-2f;
  p = tg_fmaf(p, f, -1.1514610310e-1f);
  p = tg_fmaf(p, f, 1.1676998740e-1f);
  p = tg_fmaf(p, f, -1.2420140846e-1f);
  p = tg_fmaf(p, f, 1.4249322787e-1f);
  p = tg_fmaf(p, f, -1.6668057665e-1f);
  p = tg_fmaf(p, f, 2.0000714765e-1f);
  p = tg_fmaf(p, f, -2.4999993993e-1f);
  p = tg_fmaf(p, f, 3.3333331174e-1f);
  return p;
}

// float32 log2 and log10 in float lanes (16 per AVX-512 vector; the old kernel ran log_kernel in
// double, with a division, at 8). x = 2^k m (split_exponentf), f = m - 1 exact, ln(1 + f) =
// f - f^2/2 + f^3 P(f) (Cephes' P, logf_kernel2's) held as t + tail: f^2/2 = h + he exactly (fma),
// t = f - h and its error by Fast2Sum (|f| > h), so tail = f^3 P + (te - he) is <= 7% of the log and
// its float roundings count that much. (h86 scaled logf_kernel2's pair f + (f^2/2 + f^3 P), whose tail
// is up to 25% of the log: 1.06 ulp.) Times c = 1/ln(base) as ch + cl: t ch exact as q + qe (fma);
// plus k g (log10: g = log10 2 as gh + gl, gh of 16 bits so k gh is exact for |k| <= 149) by Fast2Sum
// (|k g| >= 0.30 > |q| unless k = 0); every small term summed into one rest, one rounding at the end.
// log2(2^k) = k and log10(10^k) = k: a float result within 1 ulp of an exact float result is it.
template <bool kTen> TG_MATH_INLINE float logf_base_h124(float x) {
  const float ch = kTen ? 0x1.bcb7b2p-2f : 0x1.715476p+0f, cl = kTen ? -0x1.5b235ep-27f : 0x1.4ae0c0p-26f;
  bool sub = x < 0x1p-126f;
  float k;
  float m = split_exponentf(sub ? x * 0x1p23f : x, &k);
  k = sub ? k - 23.0f : k;
  float f = m - 1.0f;
  float z = f * f;
  float p = logf_poly(f);
  float hf = 0.5f * f;
  float h = hf * f;
  float he = tg_fmaf(hf, f, -h);  // f^2/2 = h + he exactly
  float t = f - h;
  float te = (f - t) - h;  // exact
  float tail = tg_fmaf(p * f, z, te - he);
  float q = t * ch;
  float qe = tg_fmaf(t, ch, -q);  // exact
  float rest = tg_fmaf(tail, ch, tg_fmaf(t, cl, qe));
  float y = k;
  if constexpr (kTen) {
    y = k * 0x1.3442p-2f;  // exact
    rest = tg_fmaf(k, -0x1.95ec1p-19f, rest);
  }
  float s = y + q;
  float se = (y - s) + q;  // Fast2Sum
  float res = s + (se + rest);
  res = x == __builtin_inff() ? x : res;
  res = x == 0.0f ? -__builtin_inff() : res;
  res = x < 0.0f ? __builtin_nanf("") : res;
  return x != x ? x : res;
}
