// ----- cbrt (h86-logfam's kernels; h115-cbrt: the vector pass takes normal lanes only;
// h126-cbrt: float32 without the Newton step, fewer operations in both) -----
// Included by simd/math.hpp inside its namespace. No division: |x| = 2^(3q + r) m,
// m in [1, 2), r in {0, 1, 2}, mm = 2^r m; z ~ mm^(-1/3) (a degree-5 fit of m^(-1/3),
// 2^-17.2 relative, times 2^(-r/3)), y = mm z^2, then y -= (y^3 - mm) z^2 / 3 with y^3 - mm
// from fma products (y^2 = y2 + y2e exactly; fma(y2, y, -mm) rounds a quantity ~3 delta mm
// small, then + y2e y). With y = c (1 + delta) and z^2 = y / mm the step leaves
// c (1 - 2 delta^2 - ...): the error is the square of y's, so
// - float64 first refines z by one Newton step (z += z (1 - mm z^3) / 3: 2^-33), so delta ~
//   2^-32 and ~2^-63 relative is left before the one rounding (0.5 ulp, exact cubes exact);
// - float32 runs in float (16 lanes per AVX-512 vector) with no Newton step: delta <= ~2^-15.9
//   (the fit, its float Horner roundings, y's two roundings), 2 delta^2 <= 2^-30.8 plus the
//   residual's and the correction's roundings (~2^-38 of y): <= 0.5 + 2^-6.8 ulp after the one
//   rounding, and exact cubes stay exact (their root is a float ~2^-30 away).
// 2^r and 2^(-r/3) are quadratics in r - 1 in {-1, 0, 1} (not selects), both evaluated exactly;
// 2^(-r/3)'s values are rounded to 2^-20 (they only seed z). The result y in [1, 2] is scaled
// by adding q to its exponent bits (from the shifter sum t that rounded q); x's sign OR-ed in.
//
// cbrt_{f32,f64}_normal take a normal finite x only (no subnormal scaling, no special
// selects); unary's Cbrt runs them in the vector pass and redoes the other lanes (+-0,
// subnormals, +-inf, NaN: CbrtLanes) with cbrt_{f32,f64}, which are the same steps on
// x scaled by 2^24 (2^54) where subnormal, so the bits are the same either way.

template <class T> TG_MATH_INLINE T cbrt_fma(T a, T b, T c) {
  if constexpr (sizeof(T) == 4) return tg_fmaf(a, b, c);
  else return tg_fma(a, b, c);
}
// a b + c where it is exact (small integers, the short coefficients below): the same bits with
// or without fma, so the baseline build skips libm's scalar fma here.
template <class T> TG_MATH_INLINE T cbrt_fma_exact(T a, T b, T c) {
#if defined(__FMA__)
  return cbrt_fma(a, b, c);
#else
  return a * b + c;
#endif
}

// cbrt(2^r m) for m in [1, 2) before the scaling by 2^q, r1 = r - 1 in {-1, 0, 1}; Newton: the
// float64 kernel's step on z (see above).
template <class T, bool Newton> TG_MATH_INLINE T cbrt_mant(T m, T r1) {
  const T mm = m * cbrt_fma_exact(cbrt_fma_exact(T(0.5), r1, T(1.5)), r1, T(2));  // 2^r
  T z = cbrt_fma(m, T(-0x1.103d54c9939c4p-6), T(0x1.396c97dea5c17p-3));
  z = cbrt_fma(z, m, T(-0x1.2d80192b401ddp-1));
  z = cbrt_fma(z, m, T(0x1.3b091ccbb40fep+0));
  z = cbrt_fma(z, m, T(-0x1.8e78c2286e3b1p+0));
  z = cbrt_fma(z, m, T(0x1.c742a51a07563p+0));
  // 2^(-r/3) to 2^-20.4 (multiples of 2^-20, exact in either form)
  z = z * cbrt_fma_exact(cbrt_fma_exact(T(0x1.5ca6p-6), r1, T(-0x1.7aebcp-3)), r1, T(0x1.965fep-1));
  if constexpr (Newton) z = cbrt_fma(z * (T(1) / T(3)), cbrt_fma(-mm * z, z * z, T(1)), z);
  const T zz = z * z;
  const T y = mm * zz;
  const T y2 = y * y, y2e = cbrt_fma(y, y, -y2);
  const T res3 = cbrt_fma(y2e, y, cbrt_fma(y2, y, -mm));
  return cbrt_fma(res3 * (T(-1) / T(3)), zz, y);
}

// The exponent split keeps e - 1 (q = round((e - 1) / 3)) and the shifter sum t = q + 1.5
// 2^23 whose low bits are q's, so t's bits shifted to the exponent field are q's (the
// shifter's low bits are 0); r - 1 = (e - 1) - 3q exactly. The result is positive: x's sign
// is OR-ed in.
TG_MATH_INLINE float cbrt_f32_normal(float x) {
  const uint32_t xb = tg_f32_to_bits(x);
  const float shf = 12582912.0f;  // 1.5 * 2^23
  const float e1 = tg_bits_to_f32(0x4b000000u | ((xb << 1) >> 24)) - (8388608.0f + 128.0f);
  const float t = tg_fmaf(e1, 1.0f / 3.0f, shf);
  const float r1 = cbrt_fma_exact(-3.0f, t - shf, e1);
  const float m = tg_bits_to_f32((xb & 0x007fffffu) | 0x3f800000u);
  const float y = cbrt_mant<float, false>(m, r1);
  return tg_bits_to_f32((tg_f32_to_bits(y) + (tg_f32_to_bits(t) << 23)) | (xb & 0x80000000u));
}
TG_MATH_INLINE double cbrt_f64_normal(double x) {
  const uint64_t xb = tg_f64_to_bits(x);
  const double e1 = tg_bits_to_f64(0x4330000000000000ULL | ((xb << 1) >> 53)) - (4503599627370496.0 + 1024.0);
  const double t = tg_fma(e1, 1.0 / 3.0, kTgShifter);
  const double r1 = cbrt_fma_exact(-3.0, t - kTgShifter, e1);
  const double m = tg_bits_to_f64((xb & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  const double y = cbrt_mant<double, true>(m, r1);
  return tg_bits_to_f64((tg_f64_to_bits(y) + (tg_f64_to_bits(t) << 52)) | (xb & 0x8000000000000000ULL));
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
