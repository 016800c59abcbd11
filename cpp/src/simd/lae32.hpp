// h127-lae32: float32 logaddexp / logaddexp2 with short double polynomials, the cancelling lanes redone.
// A float result needs the double value only to ~2^-30 of itself before its one rounding (0.5 + 2^-6 ulp),
// not the 2^-53 of h97-f32's kernels (logaddexp_f32: exp_lite's degree-11 exp and log1p_lite's split and
// division). Here L = log1p(e), e = e^-|a - b| (2^-|a - b|) in (0, 1]:
//   e = 2^k p(t), t = |d| reduced by k ln 2 (one fma, ln 2 rounded: <= 2^-45 relative for |d| <= 600),
//       p a degree-8 fit of e^t on |t| <= ln2/2 (2^t on |t| <= 1/2), 2^-40.2 relative;
//   L = e P(e), P a degree-13 fit of log1p(e)/e (times log2 e) on [0, 1], 2^-38.3 relative:
// no division, no exponent split, the same relative accuracy however small e is. So L is within ~2^-37.8
// of itself, and r = m + L (m = max(a, b)) within 2^-37.8 L / |r| + 2^-53 of r: where m >= 0 (|r| >= L)
// that is below 2^-37, where m < 0 and |r| >= L/32 below 2^-32.8 (0.5 + 2^-8.8 float ulp at most). The
// lanes with m < 0 and |r| < L/32, where r cancels, are written as NaN and redone by h97-f32's kernels
// (logaddexp_f32: L's absolute error ~2^-53), as are NaN inputs and (inf, inf) pairs (a - b is NaN):
// bin_run_fixup's pooled option (simd/loops.hpp) finds them from the result. Each lane depends on its
// inputs only, double arithmetic with explicit fma: the same bits on every ISA build and thread split.
// (Fits: Lawson-weighted least squares on 4,000 Chebyshev points, /work/scratch/s20/h127/fit2.py.)
// Included by loops.hpp after simd/lae_fixup.hpp (uses bin_run_fixup, logaddexp_f32, kTgShifter).
#pragma once

namespace tg_lae32 {

// Fit coefficients, constant term first: [Base2] e^t on |t| <= ln2/2 (2^t on |t| <= 1/2), degree 8,
// 2^-40.2 relative; log1p(e)/e (times log2 e) on [0, 1], degree 13, 2^-38.3 relative.
constexpr double kExpC[2][9] = {
    {0x1.ffffffffff793p-1, 0x1.ffffffffd544dp-1, 0x1.0000000088602p-1, 0x1.555555a0aa8e7p-3, 0x1.555554043b5e3p-5,
     0x1.1110827b792b8p-7, 0x1.6c18b427cad3ap-10, 0x1.a1a864773c051p-13, 0x1.9eda19629750ep-16},
    {0x1.ffffffffff7adp-1, 0x1.62e42fef86160p-1, 0x1.ebfbdff931960p-3, 0x1.c6b08dd46d94cp-5, 0x1.3b2ab5c531d20p-7,
     0x1.5d874837ee129p-10, 0x1.430acc9537fcbp-13, 0x1.00dad29692ca3p-16, 0x1.61afdd7a98fe2p-20}};
constexpr double kLogC[2][14] = {
    {0x1.fffffffff95bbp-1, -0x1.ffffffeb20bf8p-2, 0x1.55554fddad887p-2, -0x1.fffedd2e5caf0p-3, 0x1.9989b13819a96p-3,
     -0x1.54ce48fe1fa92p-3, 0x1.219f15f54bb4cp-3, -0x1.e91079b80ae9cp-4, 0x1.86b946de3adcep-4, -0x1.1303f6c4139a6p-4,
     0x1.38e9a114c7378p-5, -0x1.0439d71a8f0d9p-6, 0x1.12a3628f1625dp-8, -0x1.1034ced2b6f97p-11},
    {0x1.71547652b365ap+0, -0x1.71547643a9d6fp-1, 0x1.ec7095e058e20p-2, -0x1.7153a48a9679ep-2, 0x1.276b4b73fc63ap-2,
     -0x1.ebadc85d513b0p-3, 0x1.a1d5dc723505ap-3, -0x1.60c90c975abddp-3, 0x1.19d8fa66c8d35p-3, -0x1.8cc36d8edfc91p-4,
     0x1.c36ff366c04b2p-5, -0x1.776d2c1a271f0p-6, 0x1.8c3808732054cp-8, -0x1.88b5d1722d45fp-11}};

// c[I] + x (c[I + 1] + x (...)) by fma (Horner; sum |c| is 2-4 here: the evaluation's roundings ~2^-51)
template <int I, int N> TG_MATH_INLINE double horner(double x, const double (&c)[N]) {
  if constexpr (I == N - 1) return c[I];
  else return tg_fma(horner<I + 1>(x, c), x, c[I]);
}

// kExpC halved (exact): horner gives p(t) / 2 with the same bits but the exponent
template <int B> struct HalfExpC {
  double c[9];
  constexpr HalfExpC() : c{} {
    for (int i = 0; i < 9; ++i) c[i] = kExpC[B][i] * 0.5;
  }
};
inline constexpr HalfExpC<0> kExpHalf0{};
inline constexpr HalfExpC<1> kExpHalf1{};

// e^y (Base2: 2^y) for y in [-600, 0] (or NaN: NaN), ~2^-40 relative: y = k ln 2 + t (Base2: k + t,
// t exact), 2^k from the shifted k's bits (k >= -866: a normal double). The shifter carries 1024 (even:
// ties, y + shifter in Base2 at half-integers, round k as before), so the shifted bits hold k + 1024, the
// exponent field of 2^(k+1), and p(t) / 2 from the halved coefficients (both scalings exact: the same
// bits) makes up for it: no integer add for the exponent bias (h128-lae32fold).
template <bool Base2> TG_MATH_INLINE double exp_unit(double y) {
  const double inv_ln2 = 0x1.71547652b82fep+0, ln2 = 0x1.62e42fefa39efp-1, sh = kTgShifter + 1024.0;
  double ks = Base2 ? y + sh : tg_fma(y, inv_ln2, sh);  // k + 1024 + 1.5 * 2^52, k = round
  // Base2: exact (Sterbenz where k != 0); else |t| <= ln2/2 + 2^-43, k ln2's rounding <= 2^-45.5
  double t = Base2 ? y - (ks - sh) : tg_fma(ks - sh, -ln2, y);
  return horner<0>(t, Base2 ? kExpHalf1.c : kExpHalf0.c) * tg_bits_to_f64(tg_f64_to_bits(ks) << 52);
}

// The vector pass: the result, or NaN for a lane to redo (m < 0 and |r| < L/32; NaN inputs; a - b NaN).
// a - b of two floats is exact in double unless their exponents differ by more than 29 (then |a - b|
// is 2^-53 relative off: e by <= 600 2^-53, where e matters at all). |a - b| > 600 (e^-600 is far below
// any float sum's ulp) takes 600; NaN stays NaN (the compare's order), so r is NaN.
template <bool Base2> TG_MATH_INLINE float fast(float af, float bf) {
  double a = af, b = bf;
  // (each written as the form GCC turns into one max instruction: NaN takes the second operand)
  double m = a > b ? a : b;  // a > b as a - b > 0 (the difference of two floats has their sign)
  double y = -__builtin_fabs(a - b);
  y = -600.0 > y ? -600.0 : y;  // NaN stays NaN
  double e = exp_unit<Base2>(y);
  double L = e * horner<0>(e, kLogC[Base2]);  // log1p(e): no division, no exponent split
  double r = m + L;
  // 32 |r| < L holds only where m < 0 (m >= 0: r >= L > 0): one compare, no m < 0 test (h128-lae32fold)
  return float(32.0 * __builtin_fabs(r) < L ? kTgNaN : r);
}

// h97-f32's kernels for the redone lanes (their bits: NaN-input lanes included).
template <bool Base2> TG_MATH_INLINE float accurate(float a, float b) {
  if constexpr (Base2) return logaddexp2_f32(a, b);
  else return logaddexp_f32(a, b);
}

// Where r still cancels deeply (m < 0, |r| < 2^-16 L: ~10^-5 of random pairs) accurate's L is ~2^-52 L
// off (and a - b rounds where the exponents differ by more than 29): more than a float ulp of r below
// |r| ~ 2^-28 L; logaddexp(-0x1.1985fp-36, -0x1.8dbb7p+4) was 884 ulp off. There h114's double-double
// kernel (simd/lae_fixup.hpp, within 2 ulp of double down to |r| ~ 2^-48 L) gives r, rounded once.
template <bool Base2> inline float deep_cancel(float a, float b, float r) {
  double m = a > b ? a : b, lo = a > b ? b : a, L = double(r) - m;
  if (!((m < 0.0) & (0x1p16 * __builtin_fabs(double(r)) < L))) return r;
  return float(lo < -600.0 ? tg_lae::slow_tiny<Base2>(m, lo) : tg_lae::slow<Base2>(m, lo));
}

// bin_run_fixup's pooled redo: cr[0, cnt) from the pending pairs, the arrays padded to 16 lanes so that
// the vectorized loop has no scalar tail.
template <bool Base2> struct Redo {
  void operator()(float* cx, float* cy, float* cr, int32_t cnt) const {
    int32_t padded = (cnt + 15) & ~15;
    for (int32_t c = cnt; c < padded; ++c) cx[c] = 0.0f, cy[c] = 0.0f;
    for (int32_t c = 0; c < padded; ++c) cr[c] = accurate<Base2>(cx[c], cy[c]);
    for (int32_t c = 0; c < cnt; ++c) cr[c] = deep_cancel<Base2>(cx[c], cy[c], cr[c]);  // (its own loop: the one above stays vectorized)
  }
};

// One element with lae32_run's bits: the vector pass, a flagged lane redone as Redo does.
template <bool Base2> TG_MATH_INLINE float one(float a, float b) {
  float r = fast<Base2>(a, b);
  return r != r ? deep_cancel<Base2>(a, b, accurate<Base2>(a, b)) : r;
}

}  // namespace tg_lae32

template <bool Base2>
inline void lae32_run(float* o, int64_t so, const float* a, int64_t sa, const float* b, int64_t sb, int64_t n) {
  bin_run_fixup<true>(
      o, so, a, sa, b, sb, n, [](float u, float v) TG_INLINE_LAMBDA { return tg_lae32::fast<Base2>(u, v); },
      NanLanes{}, tg_lae32::Redo<Base2>{});
}
