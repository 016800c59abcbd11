// h114-logaddexp: float64 logaddexp / logaddexp2 where the result r cancels (max(a, b) < 0, |r| < L/4,
// L = log1p(e^-|a - b|) or its log2): the vector kernels' head + tail L is ~2^-54.5 L off there
// (log1p_hilo's tail, exp_dd's pair), which is more than 2 ulp of r below |r| ~ L/8. Those lanes
// (5% of standard-normal pairs) are redone here, scalar, after the vector pass: y = e^a + e^b - 1
// (2^a + 2^b - 1) as a double-double, each exponential from a 32-entry 2^(j/32) table and a degree-12
// expm1 on |t| <= ln2/64 (first terms in double-double), e^max - 1 kept as expm1 so that a small max
// loses nothing; then r = log1p(y), y being small, by log1p_hilo (~2^-55 relative) and one rounding.
// y's error is ~2^-103 L, so r is within 2 ulp wherever |r| >= 2^-48 L (below, ~2^-50 L / |r| ulp).
// Included by loops.hpp after math.hpp (uses log1p_hilo, kTgShifter, bin_run_fixup).
#pragma once

namespace tg_lae {

struct DD {
  double h, l;
};

TG_MATH_INLINE DD two_sum(double a, double b) {
  double s = a + b, bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}
TG_MATH_INLINE DD fast_two_sum(double a, double b) {  // |a| >= |b|
  double s = a + b;
  return {s, b - (s - a)};
}
TG_MATH_INLINE DD add(DD a, DD b) {  // accurate double-double sum (~2^-105 relative, cancellation included)
  DD s = two_sum(a.h, b.h), t = two_sum(a.l, b.l);
  s = fast_two_sum(s.h, s.l + t.h);
  return fast_two_sum(s.h, s.l + t.l);
}
TG_MATH_INLINE DD add_nc(DD a, DD b) {  // a and b of one sign (no cancellation): ~2^-104 relative
  DD s = two_sum(a.h, b.h);
  return fast_two_sum(s.h, s.l + (a.l + b.l));
}
TG_MATH_INLINE DD mul(DD a, DD b) {
  double p = a.h * b.h;
  double e = __builtin_fma(a.h, b.h, -p);
  e = __builtin_fma(a.h, b.l, __builtin_fma(a.l, b.h, e));
  return fast_two_sum(p, e);
}
TG_MATH_INLINE DD mul_d(DD a, double b) {
  double p = a.h * b;
  return fast_two_sum(p, __builtin_fma(a.h, b, -p) + a.l * b);
}
TG_MATH_INLINE DD scale(DD a, double p2) { return {a.h * p2, a.l * p2}; }

// 2^(j/32), j = 0..31, as head + tail (mpmath, 300 bits).
alignas(64) constexpr double kExp2Tab[32][2] = {
    {0x1.0000000000000p+0, 0x0.0p+0},
    {0x1.059b0d3158574p+0, 0x1.d73e2a475b465p-55},
    {0x1.0b5586cf9890fp+0, 0x1.8a62e4adc610bp-54},
    {0x1.11301d0125b51p+0, -0x1.6c51039449b3ap-54},
    {0x1.172b83c7d517bp+0, -0x1.19041b9d78a76p-55},
    {0x1.1d4873168b9aap+0, 0x1.e016e00a2643cp-54},
    {0x1.2387a6e756238p+0, 0x1.9b07eb6c70573p-54},
    {0x1.29e9df51fdee1p+0, 0x1.612e8afad1255p-55},
    {0x1.306fe0a31b715p+0, 0x1.6f46ad23182e4p-55},
    {0x1.371a7373aa9cbp+0, -0x1.63aeabf42eae2p-54},
    {0x1.3dea64c123422p+0, 0x1.ada0911f09ebcp-55},
    {0x1.44e086061892dp+0, 0x1.89b7a04ef80d0p-59},
    {0x1.4bfdad5362a27p+0, 0x1.d4397afec42e2p-56},
    {0x1.5342b569d4f82p+0, -0x1.07abe1db13cadp-55},
    {0x1.5ab07dd485429p+0, 0x1.6324c054647adp-54},
    {0x1.6247eb03a5585p+0, -0x1.383c17e40b497p-54},
    {0x1.6a09e667f3bcdp+0, -0x1.bdd3413b26456p-54},
    {0x1.71f75e8ec5f74p+0, -0x1.16e4786887a99p-55},
    {0x1.7a11473eb0187p+0, -0x1.41577ee04992fp-55},
    {0x1.82589994cce13p+0, -0x1.d4c1dd41532d8p-54},
    {0x1.8ace5422aa0dbp+0, 0x1.6e9f156864b27p-54},
    {0x1.93737b0cdc5e5p+0, -0x1.75fc781b57ebcp-57},
    {0x1.9c49182a3f090p+0, 0x1.c7c46b071f2bep-56},
    {0x1.a5503b23e255dp+0, -0x1.d2f6edb8d41e1p-54},
    {0x1.ae89f995ad3adp+0, 0x1.7a1cd345dcc81p-54},
    {0x1.b7f76f2fb5e47p+0, -0x1.5584f7e54ac3bp-56},
    {0x1.c199bdd85529cp+0, 0x1.11065895048ddp-55},
    {0x1.cb720dcef9069p+0, 0x1.503cbd1e949dbp-56},
    {0x1.d5818dcfba487p+0, 0x1.2ed02d75b3707p-55},
    {0x1.dfc97337b9b5fp+0, -0x1.1a5cd4f184b5cp-54},
    {0x1.ea4afa2a490dap+0, -0x1.e9c23179c2893p-54},
    {0x1.f50765b6e4540p+0, 0x1.9d3e12dd8a18bp-54},
};

constexpr double kLn2H = 0x1.62e42fefa39efp-1, kLn2L = 0x1.abc9e3b39803fp-56;

// expm1(t) for |t| <= 0.0109 as a double-double (~2^-100 relative): 1/k! for k >= 7 in double (their
// terms are below 2^-45 t), k = 2..6 in double-double; t's tail through e^t_h.
TG_MATH_INLINE DD expm1_small(DD t) {
  const double th = t.h;
  double q = 0x1.1eed8eff8d898p-29;  // 1/12!
  q = __builtin_fma(q, th, 0x1.ae64567f544e4p-26);
  q = __builtin_fma(q, th, 0x1.27e4fb7789f5cp-22);
  q = __builtin_fma(q, th, 0x1.71de3a556c734p-19);
  q = __builtin_fma(q, th, 0x1.a01a01a01a01ap-16);
  q = __builtin_fma(q, th, 0x1.a01a01a01a01ap-13);  // ... 1/7!
  DD p = fast_two_sum(0x1.6c16c16c16c17p-10, q * th);
  p.l += -0x1.f49f49f49f49fp-65;
  p = add_nc(mul_d(p, th), DD{0x1.1111111111111p-7, 0x1.1111111111111p-63});
  p = add_nc(mul_d(p, th), DD{0x1.5555555555555p-5, 0x1.5555555555555p-59});
  p = add_nc(mul_d(p, th), DD{0x1.5555555555555p-3, 0x1.5555555555555p-57});
  p = add_nc(mul_d(p, th), DD{0.5, 0.0});
  p = add_nc(mul_d(p, th), DD{1.0, 0.0});
  p = mul_d(p, th);                  // expm1(t_h)
  return add(p, DD{t.l, t.l * p.h});  // + t_l e^t_h
}

// x = (n / 32) ln 2 + t, n an integer (logaddexp2: x in base 2, x = n / 32 + t / ln 2); returns
// n + 1.5 * 2^52, whose low bits are n's.
template <bool Base2> TG_MATH_INLINE double reduce(double x, DD* t) {
  if constexpr (Base2) {
    double ns = __builtin_fma(x, 32.0, kTgShifter);
    double f = __builtin_fma(ns - kTgShifter, -0x1p-5, x);  // exact: |f| <= 1/64, on x's grid
    double p = f * kLn2H;
    *t = fast_two_sum(p, __builtin_fma(f, kLn2H, -p) + f * kLn2L);
    return ns;
  } else {
    const double c1 = 0x1.62e42fefa0000p-6, c2 = 0x1.cf79abc9e3b3ap-45, c3 = -0x1.ff0342542fc33p-99;
    double ns = __builtin_fma(x, 0x1.71547652b82fep+5, kTgShifter);
    double n = ns - kTgShifter;
    double th = __builtin_fma(n, -c1, x);  // exact: n c1 has <= 52 bits (|n| < 2^16), Sterbenz
    double p2 = n * c2;
    DD s = two_sum(th, -p2);
    *t = fast_two_sum(s.h, s.l + (-__builtin_fma(n, c2, -p2) - n * c3));
    return ns;
  }
}

// e^x (2^x) = 2^k (T_j + T_j expm1(t)), n = 32 k + j: *sc = 2^k (k >= -1022), *T = T_j, returns T_j expm1(t).
TG_MATH_INLINE DD exp_parts(double ns, DD t, double* sc, DD* T) {
  uint64_t b = tg_f64_to_bits(ns);  // 0x4338... + n: 32 | the shifter's bits, so b >> 5 = C + floor(n / 32)
  uint64_t j = b & 31;
  *sc = tg_bits_to_f64(((b >> 5) + 1023) << 52);
  *T = DD{kExp2Tab[j][0], kExp2Tab[j][1]};
  return mul(*T, expm1_small(t));
}

// r for a lane lae_cancels picks (m = max(a, b) < 0, lo = min(a, b) >= -600; m >= -1.25 there):
// y = (e^m - 1) + e^lo, e^m - 1 = (2^k T - 1) + 2^k T expm1(t) (zero and exact where k = j = 0: small
// m), then r = log1p(y) (|y| < 0.3: log1p_hilo's head + tail, y's tail through 1 / (1 + y)).
// Branch-free, so that the compacted lanes vectorize.
template <bool Base2> TG_MATH_INLINE double slow(double m, double lo) {
  m = m > -2.0 ? m : -2.0;
  lo = lo > -600.0 ? lo : -600.0;  // (lanes below: slow_tiny)
  DD ta, tb, Ta, Tb;
  double sa, sb;
  DD Tpa = exp_parts(reduce<Base2>(m, &ta), ta, &sa, &Ta);
  DD Tpb = exp_parts(reduce<Base2>(lo, &tb), tb, &sb, &Tb);
  DD em1 = add(add(DD{Ta.h * sa, Ta.l * sa}, DD{-1.0, 0.0}), scale(Tpa, sa));
  DD y = add(em1, scale(add_nc(Tb, Tpb), sb));
  double lo1;
  double hi = log1p_hilo(y.h, &lo1);
  lo1 += y.l / (1.0 + y.h);
  if constexpr (!Base2) {
    return hi + lo1;
  } else {
    const double log2e = 0x1.71547652b82fep+0, log2e_l = 0x1.777d0ffda0d24p-56;
    double p = hi * log2e;
    return p + (__builtin_fma(hi, log2e, -p) + (hi * log2e_l + lo1 * log2e));
  }
}

// lo < -600 (so e^lo ~ -m, m tiny): y = m + e^lo (m^2 is below 2^-1700), scaled by 2^600 so that
// nothing is subnormal before the one rounding at the end. (Scalar: rare.)
template <bool Base2> inline double slow_tiny(double m, double lo) {
  lo = lo > -1200.0 ? lo : -1200.0;
  DD t, T;
  double ns = reduce<Base2>(lo, &t);
  double sc;
  DD Tp = exp_parts(ns, t, &sc, &T);
  (void)sc;
  uint64_t b = tg_f64_to_bits(ns);
  // 2^(k + 600): k from ns's bits, as exp_parts (its own *sc would be 2^k, subnormal or 0 here)
  double s600 = tg_bits_to_f64(((b >> 5) + 1023 + 600) << 52);
  DD e = scale(add_nc(T, Tp), s600);
  DD mm = Base2 ? mul_d(DD{kLn2H, kLn2L}, m * 0x1p600) : DD{m * 0x1p600, 0.0};
  DD y = add(mm, e);
  if constexpr (Base2) y = mul(y, DD{0x1.71547652b82fep+0, 0x1.777d0ffda0d24p-56});  // r = y / ln 2
  return (y.h + y.l) * 0x1p-600;
}

}  // namespace tg_lae

// Lanes for tg_lae::slow, with L ~ r - m: |r| < L/8 (logaddexp) or L/4 (logaddexp2, its log2e product
// adds error) where m < 0: the vector kernels measure <= 1.74 / 1.5 ulp above those (h102's table and
// h114's), and |r| < 2 L where L < 2^-45 (the vector kernels' u = 1 + e^-|a - b| is then 1 and L =
// e + e_lo rounds once: 2^-53 L, up to 3.4 ulp of r at |r| ~ L/3 with m ~ -2^-580).
template <bool Base2> TG_MATH_INLINE bool lae_cancels(double mx, double r) {
  double l = r - mx, ar = __builtin_fabs(r);
  return (mx < 0.0) & (((Base2 ? 4.0 : 8.0) * ar < l) | ((l < 0x1p-45) & (ar < 2.0 * l)));
}

// The vector kernel, then the cancelling lanes (found from the inputs and the vector result) pooled and
// redone by tg_lae::slow in a vectorized loop, lo < -600 by slow_tiny: bin_run_fixup's pooled option
// (simd/loops.hpp). Each lane's answer depends on its inputs only: the same bits at any block or thread
// split; the same double arithmetic with fma in every ISA build.
template <bool Base2> struct LaeRedo {
  // cr[0, cnt) for the pending pairs, padded to a multiple of 16 so that the vectorized loop has no scalar tail
  void operator()(double* cx, double* cy, double* cr, int32_t cnt) const {
    int32_t padded = (cnt + 15) & ~15, half = padded / 2;
    for (int32_t c = cnt; c < padded; ++c) cx[c] = -0.5, cy[c] = -1.0;
    // two independent lanes per iteration: the kernel is a long dependency chain (double-double Horner),
    // so interleaving two vectors' chains hides latency
    for (int32_t c = 0; c < half; ++c) {
      double u = cx[c], v = cy[c], u2 = cx[c + half], v2 = cy[c + half];
      cr[c] = tg_lae::slow<Base2>(u > v ? u : v, u > v ? v : u);
      cr[c + half] = tg_lae::slow<Base2>(u2 > v2 ? u2 : v2, u2 > v2 ? v2 : u2);
    }
    for (int32_t c = 0; c < cnt; ++c) {
      double u = cx[c], v = cy[c], lo = u > v ? v : u;
      if (lo < -600.0) cr[c] = tg_lae::slow_tiny<Base2>(u > v ? u : v, lo);
    }
  }
};

// One element with lae_run's bits: the vector kernel, a cancelling lane redone as LaeRedo does.
template <bool Base2> TG_MATH_INLINE double lae_one(double u, double v) {
  double mx = u > v ? u : v, lo = u > v ? v : u;
  double r = Base2 ? logaddexp2_f64(u, v) : logaddexp_f64(u, v);
  if (!lae_cancels<Base2>(mx, r)) return r;
  return lo < -600.0 ? tg_lae::slow_tiny<Base2>(mx, lo) : tg_lae::slow<Base2>(mx, lo);
}

template <bool Base2>
inline void lae_run(double* o, int64_t so, const double* a, int64_t sa, const double* b, int64_t sb, int64_t n) {
  if constexpr (Base2)
    bin_run_fixup<true>(
        o, so, a, sa, b, sb, n, [](double u, double v) TG_INLINE_LAMBDA { return logaddexp2_f64(u, v); },
        [](double u, double v, double r) TG_INLINE_LAMBDA { return lae_cancels<true>(u > v ? u : v, r); },
        LaeRedo<true>{});
  else
    bin_run_fixup<true>(
        o, so, a, sa, b, sb, n, [](double u, double v) TG_INLINE_LAMBDA { return logaddexp_f64(u, v); },
        [](double u, double v, double r) TG_INLINE_LAMBDA { return lae_cancels<false>(u > v ? u : v, r); },
        LaeRedo<false>{});
}
