// ----- cbrt (h86-logfam's kernels; h115-cbrt: the vector pass takes normal lanes only) -----
// Included by simd/math.hpp inside its namespace. No division: |x| = 2^(3q + r) m,
// m in [1, 2), r in {0, 1, 2}; z ~ mm^(-1/3) for mm = 2^r m (a degree-5 fit of
// m^(-1/3), 2^-17.2 relative, times 2^(-r/3)), one Newton step (z += z (1 - mm z^3) / 3),
// y = mm z^2, then y -= (y^3 - mm) z^2 / 3 with y^3 - mm exact to ~2^-100 (float64;
// float: ~2^-44) by fma products and Sterbenz: ~2^-64 (float: ~2^-41) relative before
// the one rounding, so 0.5 ulp and exact cubes exact. float32 runs the same steps in
// float (16 lanes per AVX-512 vector: twice the lanes of the float64 kernel it once
// went through).
//
// cbrt_{f32,f64}_normal take a normal finite x only (no subnormal scaling, no special
// selects); unary's Cbrt runs them in the vector pass and redoes the other lanes (+-0,
// subnormals, +-inf, NaN: CbrtLanes) with cbrt_{f32,f64}, which are the same steps on
// x scaled by 2^24 (2^54) where subnormal, so the bits are the same either way (and
// were compared with h86's kernels over all 2^32 floats and 4M float64 patterns in
// every ISA build: 0 differ).

template <class T> TG_MATH_INLINE T cbrt_fma(T a, T b, T c) {
  if constexpr (sizeof(T) == 4) return tg_fmaf(a, b, c);
  else return tg_fma(a, b, c);
}

// cbrt(2^r m) for m in [1, 2) before the scaling by 2^q: r0 is r == 0, r2 r == 2 (else r = 1).
template <class T> TG_MATH_INLINE T cbrt_mant(T m, bool r0, bool r2) {
  const T mm = m * (r0 ? T(1) : (r2 ? T(4) : T(2)));
  T z = cbrt_fma(m, T(-0x1.103d54c9939c4p-6), T(0x1.396c97dea5c17p-3));
  z = cbrt_fma(z, m, T(-0x1.2d80192b401ddp-1));
  z = cbrt_fma(z, m, T(0x1.3b091ccbb40fep+0));
  z = cbrt_fma(z, m, T(-0x1.8e78c2286e3b1p+0));
  z = cbrt_fma(z, m, T(0x1.c742a51a07563p+0));
  z = z * (r0 ? T(1) : (r2 ? T(0x1.428a2f98d728bp-1) : T(0x1.965fea53d6e3dp-1)));  // 2^(-r/3)
  z = cbrt_fma(z * (T(1) / T(3)), cbrt_fma(-mm * z, z * z, T(1)), z);
  const T zz = z * z;
  T y = mm * zz;
  const T y2 = y * y, y2e = cbrt_fma(y, y, -y2);
  const T y3 = y2 * y, y3e = cbrt_fma(y2, y, -y3) + y2e * y;
  const T res3 = (y3 - mm) + y3e;
  return cbrt_fma(res3 * (T(-1) / T(3)), zz, y);
}

// The exponent split keeps e - 1 (q = round((e - 1) / 3)) and the shifter sum t = q + 1.5
// 2^23 whose low bits are q's (for 2^q); r - 1 = (e - 1) - 3q exactly. The result is
// positive: x's sign is OR-ed in.
TG_MATH_INLINE float cbrt_f32_normal(float x) {
  const uint32_t xb = tg_f32_to_bits(x);
  const float shf = 12582912.0f;  // 1.5 * 2^23
  const float e1 = tg_bits_to_f32(0x4b000000u | ((xb << 1) >> 24)) - (8388608.0f + 128.0f);
  const float t = tg_fmaf(e1, 1.0f / 3.0f, shf);
  const float r1 = e1 - 3.0f * (t - shf);
  const float m = tg_bits_to_f32((xb & 0x007fffffu) | 0x3f800000u);
  const float y = cbrt_mant(m, r1 == -1.0f, r1 == 1.0f);
  const float res = y * tg_bits_to_f32((tg_f32_to_bits(t) + 127u) << 23);
  return tg_bits_to_f32(tg_f32_to_bits(res) | (xb & 0x80000000u));
}
TG_MATH_INLINE double cbrt_f64_normal(double x) {
  const uint64_t xb = tg_f64_to_bits(x);
  const double e1 = tg_bits_to_f64(0x4330000000000000ULL | ((xb << 1) >> 53)) - (4503599627370496.0 + 1024.0);
  const double t = tg_fma(e1, 1.0 / 3.0, kTgShifter);
  const double r1 = e1 - 3.0 * (t - kTgShifter);
  const double m = tg_bits_to_f64((xb & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  const double y = cbrt_mant(m, r1 == -1.0, r1 == 1.0);
  const double res = y * tg_bits_to_f64((tg_f64_to_bits(t) + 1023) << 52);
  return tg_bits_to_f64(tg_f64_to_bits(res) | (xb & 0x8000000000000000ULL));
}

// Every x: subnormal |x| scaled by 2^24 (2^54) and the result by 2^-8 (2^-18), both exact;
// +-0, +-inf and NaN give x itself.
TG_MATH_INLINE float cbrt_f32(float x) {
  const float a = __builtin_fabsf(x);
  const bool sub = a < 0x1p-126f;
  float res = cbrt_f32_normal(sub ? x * 0x1p24f : x);
  res = sub ? res * 0x1p-8f : res;
  return a == 0.0f || !(a < __builtin_inff()) ? x : res;
}
TG_MATH_INLINE double cbrt_f64(double x) {
  const double a = __builtin_fabs(x);
  const bool sub = a < 0x1p-1022;
  double res = cbrt_f64_normal(sub ? x * 0x1p54 : x);
  res = sub ? res * 0x1p-18 : res;
  return a == 0.0 || !(a < kTgInf) ? x : res;
}

// map1_fixup's lanes for cbrt: with t = |x|'s bits minus the smallest normal's, the lanes
// that are not normal and finite are t < 0 (zero, subnormal) or t beyond the largest
// finite's (inf, NaN); OR-ing t and (bound - t) over a block is a vectorizable any-of.
struct CbrtLanes {
  template <class T> static TG_MATH_INLINE auto t_of(T v) {
    if constexpr (sizeof(T) == 4) return int32_t((tg_f32_to_bits(v) & 0x7fffffffu) - 0x00800000u);
    else return int64_t((tg_f64_to_bits(v) & 0x7fffffffffffffffULL) - 0x0010000000000000ULL);
  }
  template <class T> static TG_MATH_INLINE auto bound() {
    if constexpr (sizeof(T) == 4) return int32_t(0x7effffff);
    else return int64_t(0x7fdfffffffffffffLL);
  }
  template <class T> static bool lane(T v) { return (t_of(v) | (bound<T>() - t_of(v))) < 0; }
  template <class T> static bool block(const T* x, int64_t m) {
    decltype(t_of(x[0])) acc = 0;
    for (int64_t i = 0; i < m; ++i) acc |= t_of(x[i]) | (bound<T>() - t_of(x[i]));
    return acc < 0;
  }
};
