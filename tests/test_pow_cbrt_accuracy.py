"""Accuracy of float64 pow (a ** b, power, float_power) and cbrt against mpmath / a float64 oracle.

Bars: float64 <= 2 ulp of the correctly rounded value, float32 <= 1 ulp; the same bits in every ISA build
(baseline, AVX2, AVX-512) at 1 and 2 threads. The asserted maxima are tighter than the bars (what the
kernels measure, with a margin), so that a change eating into the error budget shows here.
"""
import numpy as np
import pytest

import tapegrad as tg
from helpers import every_isa_and_thread_count

mpmath = pytest.importorskip("mpmath")


def _ulp_err_f64(got, exact):
    """|got - exact| in units of the float64 ulp at exact (mpmath values; subnormal ulp 2^-1074)."""
    errs = []
    for g, e in zip(got.tolist(), exact):
        if e == 0:
            errs.append(0.0 if g == 0 else np.inf)
            continue
        ex = mpmath.floor(mpmath.log(abs(e), 2))
        ulp = mpmath.mpf(2) ** max(int(ex) - 52, -1074)
        errs.append(float(abs(mpmath.mpf(g) - e) / ulp))
    return np.array(errs)


def _pow_pairs(seed=7, n=1500):
    rng = np.random.default_rng(seed)
    # |y log2 x| spread over [0, 1080]: every result binade, overflow and underflow edges
    x = np.ldexp(rng.uniform(1, 2, n), rng.integers(-1074, 1024, n))
    t = rng.uniform(-1080, 1080, n)
    lx = np.log2(x)
    y = np.where(np.abs(lx) > 1e-3, t / np.where(lx == 0, 1, lx), rng.uniform(-50, 50, n))
    # x near 1 with large |y|; moderate values; negative x with integer y; half-integer y
    x2 = 1 + rng.uniform(-1e-6, 1e-6, n)
    y2 = rng.uniform(-1e8, 1e8, n)
    x3 = rng.uniform(0, 10, n)
    y3 = rng.uniform(-30, 30, n)
    x4 = -rng.uniform(0.01, 20, n)
    y4 = rng.integers(-200, 200, n).astype(np.float64)
    x5 = rng.uniform(0, 1e4, n)
    y5 = rng.integers(-70, 70, n) + 0.5
    # subnormal x
    x6 = np.ldexp(rng.uniform(0.5, 1, n // 4), rng.integers(-1074, -1022, n // 4))
    y6 = rng.uniform(-1, 1, n // 4)
    xs = np.concatenate([x, x2, x3, x4, x5, x6])
    ys = np.concatenate([y, y2, y3, y4, y5, y6])
    return xs, ys


def test_float64_pow_against_mpmath_every_isa():
    x, y = _pow_pairs()
    got = every_isa_and_thread_count(lambda a, b: a ** b, x, y)
    np.testing.assert_array_equal(got, every_isa_and_thread_count(tg.power, x, y))
    mpmath.mp.prec = 160
    exact = [mpmath.power(mpmath.mpf(a), mpmath.mpf(b)) if a >= 0 or b == int(b)
             else mpmath.mpf("nan") for a, b in zip(x.tolist(), y.tolist())]
    fmax = mpmath.mpf(np.finfo(np.float64).max)
    nan = np.array([mpmath.isnan(e) for e in exact])
    over = np.array([not mpmath.isnan(e) and abs(e) > fmax * (1 + mpmath.mpf(2) ** -54) for e in exact])
    np.testing.assert_array_equal(np.isnan(got), nan)
    assert np.isinf(got[over]).all()
    fin = ~nan & ~over
    err = _ulp_err_f64(got[fin], [e for e, f in zip(exact, fin) if f])
    assert err.max() <= 1.0, (err.max(), x[fin][err.argmax()], y[fin][err.argmax()])


def _pow_as_numpy(x, y):
    """x ** y in every ISA and thread count, and np.power's: NaN, sign and inf where NumPy has them."""
    got = every_isa_and_thread_count(lambda a, b: a ** b, x, y)
    with np.errstate(all="ignore"):
        want = np.power(x, y)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))
    np.testing.assert_array_equal(np.isinf(got[ok]), np.isinf(want[ok]))
    return got, want, ok


def test_float64_pow_special_values_as_numpy():
    # zeros, signed zeros, subnormals, 1, -1, infinities, NaN, integers and half-integers, huge |y|
    v = np.array([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 0.5, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0,
                  0.5 + 2**-53, 1 - 2**-53, 1 + 2**-52, 1.5, 2.0**31, 2.0**53, -(2.0**53) - 2, 1e308,
                  np.inf, -np.inf, np.nan])
    x, y = np.meshgrid(v, v)
    x, y = x.ravel(), y.ravel()
    got, want, ok = _pow_as_numpy(x, y)
    np.testing.assert_array_equal(got[ok] == 0, want[ok] == 0)
    fin = ok & np.isfinite(want) & (want != 0)
    np.testing.assert_allclose(got[fin], want[fin], rtol=3e-16)


def test_float_power_of_float32_inputs_against_mpmath():
    # float_power computes in float64 from the float32 values exactly (as NumPy): <= 1 ulp of float64
    rng = np.random.default_rng(11)
    n = 2000
    a = np.concatenate([rng.uniform(0, 100, n), -rng.uniform(0, 10, n // 4)]).astype(np.float32)
    b = np.concatenate([rng.uniform(-20, 20, n), rng.integers(-20, 20, n // 4)]).astype(np.float32)
    got = every_isa_and_thread_count(tg.float_power, a, b)
    assert got.dtype == np.float64
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(np.float_power(a, b)))
    mpmath.mp.prec = 160
    ok = ~np.isnan(got)
    exact = [mpmath.power(mpmath.mpf(float(p)), mpmath.mpf(float(q))) for p, q in zip(a[ok], b[ok])]
    err = _ulp_err_f64(got[ok], exact)
    assert err.max() <= 1.0, err.max()


def test_float64_cbrt_against_mpmath_every_isa():
    rng = np.random.default_rng(13)
    n = 4000
    x = np.ldexp(rng.uniform(1, 2, n), rng.integers(-1074, 1024, n)) * rng.choice([-1.0, 1.0], n)
    x = np.concatenate([x, rng.uniform(-10, 10, n), np.ldexp(1.0, np.arange(-1074, 1024))])
    got = every_isa_and_thread_count(tg.cbrt, x)
    mpmath.mp.prec = 160
    exact = [mpmath.cbrt(mpmath.mpf(v)) if v >= 0 else -mpmath.cbrt(mpmath.mpf(-v)) for v in x.tolist()]
    err = _ulp_err_f64(got, exact)
    assert err.max() < 0.51, (err.max(), x[err.argmax()])


def _f32_ulp_err(got, ref64):
    """|got - ref| in float32 ulps of the reference (a float64 cbrt: ~2^-29 float ulp of error itself)."""
    _, e = np.frexp(ref64)
    ulp = np.ldexp(1.0, np.maximum(e - 24, -149))
    return np.abs(got.astype(np.float64) - ref64) / ulp


def test_float32_cbrt_dense_every_isa():
    # cbrt_f32 works in float (16 lanes per AVX-512 vector): every 3rd float of [1, 8) (its three exponent
    # classes r = 0, 1, 2 and the polynomial's whole range), both signs, every 61st subnormal bit pattern,
    # the normal/subnormal edge and the top binades; <= 1 ulp is the bar, it measures 0.505 (h126-cbrt).
    one, eight = np.array([1.0, 8.0], dtype=np.float32).view(np.uint32)
    bits = [np.arange(one, eight, 3, dtype=np.uint32), np.arange(1, 0x00800000, 61, dtype=np.uint32),
            np.arange(0x00700000, 0x00900000, dtype=np.uint32), np.arange(0x7e000000, 0x7f800000, 97, dtype=np.uint32)]
    x = np.concatenate(bits).view(np.float32)
    x = np.concatenate([x, -x])
    got = every_isa_and_thread_count(tg.cbrt, x)
    ref = np.cbrt(x.astype(np.float64))
    err = _f32_ulp_err(got, ref)
    assert err.max() < 0.51, (err.max(), x[err.argmax()])
    # exact cubes: every float32 n^3 that is exact, n < 2^8, scaled by 2^(3k)
    n = np.arange(1, 256, dtype=np.float64)
    k = np.arange(-40, 40)
    c = (n[:, None] ** 3 * np.ldexp(1.0, 3 * k)[None, :]).ravel()
    r = (n[:, None] * np.ldexp(1.0, k)[None, :]).ravel()
    inr = (c > 1e-37) & (c < 3e38)
    c, r = c[inr], r[inr]
    keep = c.astype(np.float32).astype(np.float64) == c
    got = every_isa_and_thread_count(tg.cbrt, c[keep].astype(np.float32))
    np.testing.assert_array_equal(got, r[keep].astype(np.float32))


def test_float64_pow_overflow_underflow_edges_and_huge_exponents():
    # y log2|x| near 1024 (overflow), -1022..-1075 (subnormal results, underflow to 0) and far beyond
    # (|y| up to 2^31 - 1: the kernel takes z = y log2|x| unclamped, the result selected past |z| > 1100)
    rng = np.random.default_rng(17)
    z = np.concatenate([rng.uniform(1020, 1026, 3000), rng.uniform(-1080, -1018, 3000),
                        rng.uniform(1090, 1110, 500), -rng.uniform(1090, 1110, 500)])
    x = rng.uniform(1.001, 20, z.size) ** rng.choice([-1.0, 1.0], z.size)
    y = z / np.log2(x)
    big_y = np.array([2.0**31 - 1, -(2.0**31 - 1), 1e9, -1e9, 2.0**30, -(2.0**30)])
    big_x = np.array([10.0, 0.1, 1 + 2.0**-52, 1 - 2.0**-53, 2.0, -3.0])
    x = np.concatenate([x, np.repeat(big_x, big_y.size), -x[:500]])
    y = np.concatenate([y, np.tile(big_y, big_x.size), np.round(y[:500])])
    got, want, ok = _pow_as_numpy(x, y)
    fin = ok & np.isfinite(want)
    # libm's pow is correctly rounded or nearly: within 1 ulp of it (subnormal results: ulp 2^-1074)
    ulp = np.spacing(np.maximum(np.abs(want[fin]), 2.0**-1022))
    assert (np.abs(got[fin] - want[fin]) <= ulp).all()
