// ----- cbrt (h86-logfam's kernels; h115-cbrt: the vector pass takes normal lanes only;
// h126-cbrt: float32 without the Newton step, fewer operations in both;
// h129-cbrt: r in {-1, 0, 1}, and the AVX-512 build's own vector loop) -----
// Included by simd/math.hpp inside its namespace. No division: |x| = 2^(3q + r) m,
// m in [1, 2), q = round(e / 3) for x's exponent e, r = e - 3q in {-1, 0, 1}, mm = 2^r m;
// z ~ mm^(-1/3) (a degree-5 fit of m^(-1/3), 2^-17.2 relative, times 2^(-r/3)), y = mm z^2,
// then y -= (y^3 - mm) z^2 / 3 with y^3 - mm from fma products (y^2 = y2 + y2e exactly;
// fma(y2, y, -mm) rounds a quantity ~3 delta mm small, then + y2e y). With y = c (1 + delta)
// and z^2 = y / mm the step leaves c (1 - 2 delta^2 - ...): the error is the square of y's, so
// - float64 first refines z by one Newton step (z += z (1 - mm z^3) / 3: 2^-33), so delta ~
//   2^-32 and ~2^-63 relative is left before the one rounding (0.5 ulp, exact cubes exact);
// - float32 runs in float (16 lanes per AVX-512 vector) with no Newton step: delta <= ~2^-15.9
//   (the fit, its float Horner roundings, y's two roundings), 2 delta^2 <= 2^-30.8 plus the
//   residual's and the correction's roundings (~2^-38 of y): <= 0.5 + 2^-6.8 ulp after the one
//   rounding, and exact cubes stay exact (their root is a float ~2^-30 away).
// 2^r and 2^(-r/3) are quadratics in r (not selects), both evaluated exactly; 2^(-r/3)'s values
// are rounded to 2^-20 (they only seed z). The result y in [0.79, 1.59] is scaled by 2^q by
// adding q to its exponent bits (from the shifter sum t that rounded q); x's sign OR-ed in.
// The AVX-512 build (cbrt_avx512) takes e, m, 2^r m and the scaling from vgetexp,
// vgetmant and vscalef instead (exact, so the same values: the same bits in every build).
//
// cbrt_{f32,f64}_normal take a normal finite x only (no subnormal scaling, no special
// selects); unary's Cbrt runs them in the vector pass and redoes the other lanes (+-0,
// subnormals, +-inf, NaN: CbrtLanes) with cbrt_{f32,f64}, which are the same steps on
// x scaled by 2^24 (2^54) where subnormal, so the bits are the same either way.

TG_MATH_INLINE float cbrt_fma(float a, float b, float c) { return tg_fmaf(a, b, c); }
TG_MATH_INLINE double cbrt_fma(double a, double b, double c) { return tg_fma(a, b, c); }
#if defined(__AVX512F__)
TG_MATH_INLINE __m512 cbrt_fma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
TG_MATH_INLINE __m512d cbrt_fma(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
#endif
// a b + c where it is exact (small integers, the short coefficients below): the same bits with
// or without fma, so the baseline build skips libm's scalar fma here.
template <class V> TG_MATH_INLINE V cbrt_fma_exact(V a, V b, V c) {
#if defined(__FMA__)
  return cbrt_fma(a, b, c);
#else
  return a * b + c;
#endif
}
// A constant as V: itself, or broadcast to every lane of a GCC vector (__m512, __m512d).
template <class V, class T> TG_MATH_INLINE V cbrt_k(T c) {
  if constexpr (std::is_same_v<V, T>) return c;
  else return V{} + c;
}

// cbrt(mm) for mm = 2^r m, m in [1, 2), r in {-1, 0, 1}, before the scaling by 2^q; T the
// element type, V it or a vector of it (the same operations on each lane); Newton: the float64
// kernel's step on z (see above).
template <class T, bool Newton, class V> TG_MATH_INLINE V cbrt_mant(V m, V mm, V r) {
  auto K = [](T c) TG_INLINE_LAMBDA { return cbrt_k<V>(c); };
  V z = cbrt_fma(m, K(T(-0x1.103d54c9939c4p-6)), K(T(0x1.396c97dea5c17p-3)));
  z = cbrt_fma(z, m, K(T(-0x1.2d80192b401ddp-1)));
  z = cbrt_fma(z, m, K(T(0x1.3b091ccbb40fep+0)));
  z = cbrt_fma(z, m, K(T(-0x1.8e78c2286e3b1p+0)));
  z = cbrt_fma(z, m, K(T(0x1.c742a51a07563p+0)));
  // 2^(-r/3) to 2^-20.4 (multiples of 2^-20, as are the coefficients: exact in either form)
  z = z * cbrt_fma_exact(cbrt_fma_exact(K(T(0x6dd1p-20)), r, K(T(-0x3bad2p-20))), r, K(T(1)));
  if constexpr (Newton) z = cbrt_fma(z * K(T(1) / T(3)), cbrt_fma(-(mm * z), z * z, K(T(1))), z);
  const V zz = z * z;
  const V y = mm * zz;
  const V y2 = y * y, y2e = cbrt_fma(y, y, -y2);
  const V res3 = cbrt_fma(y2e, y, cbrt_fma(y2, y, -mm));
  return cbrt_fma(res3 * K(T(-1) / T(3)), zz, y);
}
// 2^r m for r in {-1, 0, 1}: 2^r = 1 + r (3/4 + r / 4), exact.
template <class T> TG_MATH_INLINE T cbrt_pow2r(T m, T r) {
  return m * cbrt_fma_exact(cbrt_fma_exact(T(0.25), r, T(0.75)), r, T(1));
}

// The exponent split takes e exactly (x's biased exponent bits under a shifter's, less the
// shifter and the bias) and the shifter sum t = q + 1.5 2^23 (e / 3 is never near a half, so q =
// round(e / 3)), whose low bits are q's: t's bits shifted to the exponent field are q's (the
// shifter's low bits are 0); r = e - 3q exactly. The result is positive: x's sign is OR-ed in.
TG_MATH_INLINE float cbrt_f32_normal(float x) {
  const uint32_t xb = tg_f32_to_bits(x);
  const float shf = 12582912.0f;  // 1.5 * 2^23
  const float e = tg_bits_to_f32(0x4b000000u | ((xb << 1) >> 24)) - (8388608.0f + 127.0f);
  const float t = tg_fmaf(e, 1.0f / 3.0f, shf);
  const float r = cbrt_fma_exact(-3.0f, t - shf, e);
  const float m = tg_bits_to_f32((xb & 0x007fffffu) | 0x3f800000u);
  const float y = cbrt_mant<float, false>(m, cbrt_pow2r(m, r), r);
  return tg_bits_to_f32((tg_f32_to_bits(y) + (tg_f32_to_bits(t) << 23)) | (xb & 0x80000000u));
}
TG_MATH_INLINE double cbrt_f64_normal(double x) {
  const uint64_t xb = tg_f64_to_bits(x);
  const double e = tg_bits_to_f64(0x4330000000000000ULL | ((xb << 1) >> 53)) - (4503599627370496.0 + 1023.0);
  const double t = tg_fma(e, 1.0 / 3.0, kTgShifter);
  const double r = cbrt_fma_exact(-3.0, t - kTgShifter, e);
  const double m = tg_bits_to_f64((xb & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  const double y = cbrt_mant<double, true>(m, cbrt_pow2r(m, r), r);
  return tg_bits_to_f64((tg_f64_to_bits(y) + (tg_f64_to_bits(t) << 52)) | (xb & 0x8000000000000000ULL));
}

#if defined(__AVX512F__)
// The same steps on 16 floats (8 doubles): e by vgetexp (floor(log2 |x|), exact for normal x),
// m by vgetmant, 2^r m and y 2^q by vscalef (exact: no rounding, no overflow for normal x), the
// sign by one ternary-logic op. (GCC's vectorized scalar code spends ~9 more instructions per
// vector on the same exact values.) Lanes that are not normal finite give garbage, redone after.
TG_MATH_INLINE __m512 cbrt_f32_normal_v(__m512 x) {
  const __m512 shf = _mm512_set1_ps(12582912.0f);
  const __m512 e = _mm512_mask_getexp_ps(x, 0xffff, x);
  const __m512 q = _mm512_fmadd_ps(e, _mm512_set1_ps(1.0f / 3.0f), shf) - shf;
  const __m512 r = _mm512_fmadd_ps(_mm512_set1_ps(-3.0f), q, e);
  const __m512 m = _mm512_mask_getmant_ps(x, 0xffff, x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
  const __m512 y = cbrt_mant<float, false>(m, _mm512_mask_scalef_ps(m, 0xffff, m, r), r);
  const __m512 s = _mm512_mask_scalef_ps(y, 0xffff, y, q);
  // y 2^q | (x & sign): 0xf8 = A | (B & C). (The mask_ forms with every lane set: the plain ones'
  // undefined source operand trips GCC 12's -Wmaybe-uninitialized.)
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(s), _mm512_castps_si512(x),
                                                       _mm512_set1_epi32(int32_t(0x80000000u)), 0xf8));
}
TG_MATH_INLINE __m512d cbrt_f64_normal_v(__m512d x) {
  const __m512d shf = _mm512_set1_pd(kTgShifter);
  const __m512d e = _mm512_mask_getexp_pd(x, 0xff, x);
  const __m512d q = _mm512_fmadd_pd(e, _mm512_set1_pd(1.0 / 3.0), shf) - shf;
  const __m512d r = _mm512_fmadd_pd(_mm512_set1_pd(-3.0), q, e);
  const __m512d m = _mm512_mask_getmant_pd(x, 0xff, x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
  const __m512d y = cbrt_mant<double, true>(m, _mm512_mask_scalef_pd(m, 0xff, m, r), r);
  const __m512d s = _mm512_mask_scalef_pd(y, 0xff, y, q);
  return _mm512_castsi512_pd(_mm512_ternarylogic_epi64(_mm512_castpd_si512(s), _mm512_castpd_si512(x),
                                                       _mm512_set1_epi64(int64_t(0x8000000000000000ULL)), 0xf8));
}
#endif
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

#if defined(__AVX512F__)
// unary's Cbrt in the AVX-512 build (n > 1): the vector kernel on every lane, a masked tail, and
// the lanes that are not normal finite (vfpclass: +-0, subnormal, +-inf, NaN) saved from the
// register and redone by cbrt_{f32,f64} after each block: the same results as
// map1_fixup<CbrtLanes> without its pre-scan pass (~6 of the loop's ~40 instructions per vector).
// y may be x.
template <class T> inline void cbrt_avx512(const T* x, T* y, int64_t n) {
  constexpr int W = 64 / sizeof(T);
  constexpr int64_t B = 256;  // per block: the vector pass, then the saved lanes (no call in the loop)
  for (int64_t i0 = 0; i0 < n; i0 += B) {
    const int64_t m = n - i0 < B ? n - i0 : B;
    alignas(64) T saved[B];
    int32_t at[B / W];
    unsigned bad[B / W];
    int cnt = 0;
    auto run = [&](int64_t i, unsigned k) TG_INLINE_LAMBDA {
      unsigned b;
      if constexpr (W == 16) {
        const __m512 xv = _mm512_maskz_loadu_ps(__mmask16(k), x + i0 + i);
        b = _mm512_fpclass_ps_mask(xv, 0xbf) & k;  // QNaN, +-0, +-inf, subnormal, SNaN
        _mm512_mask_storeu_ps(y + i0 + i, __mmask16(k), cbrt_f32_normal_v(xv));
        if (__builtin_expect(b != 0, 0)) _mm512_store_ps(saved + cnt * W, xv);
      } else {
        const __m512d xv = _mm512_maskz_loadu_pd(__mmask8(k), x + i0 + i);
        b = _mm512_fpclass_pd_mask(xv, 0xbf) & k;
        _mm512_mask_storeu_pd(y + i0 + i, __mmask8(k), cbrt_f64_normal_v(xv));
        if (__builtin_expect(b != 0, 0)) _mm512_store_pd(saved + cnt * W, xv);
      }
      if (__builtin_expect(b != 0, 0)) {
        at[cnt] = int32_t(i);
        bad[cnt++] = b;
      }
    };
    int64_t i = 0;
    for (; i + W <= m; i += W) run(i, W == 16 ? 0xffffu : 0xffu);
    if (i < m) run(i, (1u << (m - i)) - 1);
    for (int c = 0; c < cnt; ++c)
      for (unsigned b = bad[c]; b; b &= b - 1) {
        const int j = __builtin_ctz(b);
        if constexpr (W == 16) y[i0 + at[c] + j] = cbrt_f32(saved[c * W + j]);
        else y[i0 + at[c] + j] = cbrt_f64(saved[c * W + j]);
      }
  }
}
#endif

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
