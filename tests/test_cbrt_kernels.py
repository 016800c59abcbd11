"""cbrt's vector pass and fix-up (cpp/src/simd/cbrt.hpp): the lanes with a normal finite x run in the
vector loop without the subnormal and special-value selects; a pre-scan of each 256-element block finds
the others (+-0, subnormals, +-inf, NaN), which the full scalar kernel redoes. These put such lanes at
every position of a vector and of a block, mixed with normal ones, and check each result against NumPy
(specials), a float64 / mpmath oracle (accuracy bars: float32 <= 1 ulp, float64 <= 2 ulp; the kernels
measure 0.5046 float32, 0.5005 float64: h129-cbrt) and the same element computed alone (a 0-d call takes the full kernel), in every ISA
build at 1 and 2 threads with identical bits.
"""
import numpy as np
import pytest

import tapegrad as tg

mpmath = pytest.importorskip("mpmath")

from helpers import every_isa_and_thread_count  # noqa: E402 (asserts identical bits)


def _specials(dt):
    f = np.finfo(dt)
    tiny, sub = f.smallest_normal, f.smallest_subnormal
    return np.array([0.0, -0.0, np.inf, -np.inf, np.nan, sub, -sub, tiny * 0.75, -tiny * 0.5,
                     np.nextafter(tiny, dt(0)), tiny, -tiny, f.max, -f.max], dtype=dt)


def _mixed(dt, n, seed):
    """n normal values over every binade with specials scattered at random positions and in runs
    that cross vector (16 lanes) and block (256) boundaries."""
    rng = np.random.default_rng(seed)
    f = np.finfo(dt)
    lo, hi = int(np.log2(f.smallest_normal)), int(np.log2(f.max))
    x = (np.ldexp(rng.uniform(1, 2, n), rng.integers(lo, hi, n)) * rng.choice([-1.0, 1.0], n)).astype(dt)
    sp = _specials(dt)
    pos = rng.choice(n, n // 7, replace=False)
    x[pos] = sp[rng.integers(0, len(sp), len(pos))]
    for start in (15, 250, 511, 1000):  # runs across lane / block edges
        if start + 9 <= n:
            x[start:start + 9] = sp[:9]
    x[-1] = sp[2]  # the tail's last lane
    return x


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("n", [2, 17, 256, 257, 1031, 4099])
def test_cbrt_special_and_subnormal_lanes_mixed_with_normal_ones(dt, n):
    x = _mixed(dt, n, seed=n)
    got = every_isa_and_thread_count(tg.cbrt, x)
    assert got.dtype == dt
    # each element as computed alone (0-d: the full scalar kernel): the same bits
    alone = np.array([np.asarray(tg.cbrt(tg.Variable(np.array(v, dtype=dt))).numpy()) for v in x], dtype=dt)
    np.testing.assert_array_equal(got.view(np.uint8), alone.view(np.uint8))
    # specials as NumPy: +-0 keeps its sign, +-inf, NaN
    ref = np.cbrt(x)
    nonfinite_or_zero = ~np.isfinite(x) | (x == 0)
    np.testing.assert_array_equal(got[nonfinite_or_zero], ref[nonfinite_or_zero])
    assert np.array_equal(np.signbit(got[x == 0]), np.signbit(x[x == 0]))
    # the finite lanes against a float64 oracle (float32) or mpmath (float64)
    fin = np.isfinite(x) & (x != 0)
    if dt == np.float32:
        r64 = np.cbrt(x[fin].astype(np.float64))
        _, e = np.frexp(r64)
        err = np.abs(got[fin].astype(np.float64) - r64) / np.ldexp(1.0, np.maximum(e - 24, -149))
    else:
        mpmath.mp.prec = 160
        err = []
        for g, v in zip(got[fin].tolist(), x[fin].tolist()):
            ex = mpmath.cbrt(mpmath.mpf(abs(v))) * (1 if v > 0 else -1)
            ulp = mpmath.mpf(2) ** (int(mpmath.floor(mpmath.log(abs(ex), 2))) - 52)
            err.append(float(abs(mpmath.mpf(g) - ex) / ulp))
        err = np.array(err)
    assert err.max() < 0.51, (err.max(), x[fin][err.argmax()])


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_cbrt_all_special_block_and_exact_cubes(dt):
    # a block of nothing but special lanes (every lane redone), and exact cubes in the vector pass
    sp = _specials(dt)
    x = np.resize(sp, 300)
    got = every_isa_and_thread_count(tg.cbrt, x)
    np.testing.assert_array_equal(got[~np.isfinite(x) | (x == 0)], np.cbrt(x)[~np.isfinite(x) | (x == 0)])
    k = np.arange(1, 2000, dtype=np.float64)
    c = np.concatenate([k ** 3, -(k ** 3)]).astype(dt)
    got = every_isa_and_thread_count(tg.cbrt, c)
    np.testing.assert_array_equal(got, np.concatenate([k, -k]).astype(dt))


def test_cbrt_views_and_grad_use_the_kernel():
    # a strided view (copied to contiguous first or looped) and the gradient 1 / (3 cbrt(x)^2)
    x = _mixed(np.float64, 600, seed=3)[::3]
    np.testing.assert_array_equal(np.asarray(tg.cbrt(tg.Variable(x)).numpy()),
                                  np.asarray(tg.cbrt(tg.Variable(np.ascontiguousarray(x))).numpy()))
    v = tg.Variable(np.array([8.0, -27.0, 1e-300, 5e-324, 2.0]), requires_grad=True)
    tg.cbrt(v).sum().backward()
    y = np.cbrt(np.array([8.0, -27.0, 1e-300, 5e-324, 2.0]))
    np.testing.assert_allclose(np.asarray(v.grad), 1 / (3 * y * y), rtol=1e-15)


# h126-cbrt: float32 has no Newton step (the exact-residual step squares the seed's error), so its
# error peaks where the degree-5 seed of m^(-1/3) errs most. These windows of consecutive floats sit on
# the seed's error extrema (and the ends m = 1, 2) in each exponent class r = 0, 1, 2 of several binades.
_SEED = [float.fromhex(h) for h in ("-0x1.103d54c9939c4p-6", "0x1.396c97dea5c17p-3", "-0x1.2d80192b401ddp-1",
                                     "0x1.3b091ccbb40fep+0", "-0x1.8e78c2286e3b1p+0", "0x1.c742a51a07563p+0")]
# (cbrt.hpp's seed in Horner order, highest degree first)


def _seed_extrema():
    m = np.linspace(1.0, 2.0, 1 << 16)
    p = np.zeros_like(m)
    for c in _SEED:
        p = p * m + c
    e = np.abs(p * np.cbrt(m) - 1.0)
    peak = (e[1:-1] >= e[:-2]) & (e[1:-1] >= e[2:])
    return np.concatenate([[1.0], m[1:-1][peak], [2.0 - 2.0**-23]])


def test_seed_extrema_are_where_the_fit_errs_most():
    # the windows below need the extrema to be real: the fit equioscillates (7 extrema, about 2^-17.2)
    m = _seed_extrema()
    p = np.zeros_like(m)
    for c in _SEED:
        p = p * m + c
    e = np.abs(p * np.cbrt(m) - 1.0)
    assert len(m) == 7 and e.min() > 2.0**-18.5 and e.max() < 2.0**-16.5, (m, np.log2(e))


def test_float32_cbrt_dense_windows_on_the_seed_extrema_every_isa():
    w = 1 << 13
    starts = []
    for m in _seed_extrema():
        for r in (0, 1, 2):
            for k in (-42, -9, 0, 5, 40):
                c = np.array(np.ldexp(m, 3 * k + r), dtype=np.float32).view(np.int32)
                starts.append(int(c) - w // 2)
    bits = (np.array(starts, dtype=np.int64)[:, None] + np.arange(w)[None, :]).ravel()
    bits = bits[(bits > 0x00800000) & (bits < 0x7f800000)].astype(np.uint32)
    x = bits.view(np.float32)
    x = np.concatenate([x, -x])
    got = every_isa_and_thread_count(tg.cbrt, x)
    r64 = np.cbrt(x.astype(np.float64))
    _, e = np.frexp(r64)
    err = np.abs(got.astype(np.float64) - r64) / np.ldexp(1.0, e - 24)
    # the bound is 0.5 + 2^-6.8 ulp (cbrt.hpp); the float64 oracle's own error is ~2^-29 float ulp
    assert err.max() < 0.51, (err.max(), x[err.argmax()])
    np.testing.assert_array_equal(np.signbit(got), np.signbit(x))


def test_float64_cbrt_near_the_seed_extrema_against_mpmath_every_isa():
    rng = np.random.default_rng(126)
    m = _seed_extrema()
    n = 3000
    mm = m[rng.integers(0, len(m), n)] * (1 + rng.uniform(-1e-3, 1e-3, n))
    mm = np.clip(mm, 1.0, np.nextafter(2.0, 0))
    k = rng.integers(-340, 340, n)
    r = rng.integers(0, 3, n)
    x = np.ldexp(mm, 3 * k + r) * rng.choice([-1.0, 1.0], n)
    got = every_isa_and_thread_count(tg.cbrt, x)
    mpmath.mp.prec = 160
    err = []
    for g, v in zip(got.tolist(), x.tolist()):
        ex = mpmath.cbrt(mpmath.mpf(abs(v))) * (1 if v > 0 else -1)
        ulp = mpmath.mpf(2) ** (int(mpmath.floor(mpmath.log(abs(ex), 2))) - 52)
        err.append(float(abs(mpmath.mpf(g) - ex) / ulp))
    err = np.array(err)
    assert err.max() < 0.51, (err.max(), x[err.argmax()])


# h129-cbrt: the AVX-512 build runs its own vector loop (vgetexp/vgetmant/vscalef, a masked tail); the
# others GCC's vectorized scalar kernel. Every length from 1 to 40 (full vectors and every tail), each
# element against the same element alone (the scalar kernel), exponents in every class e mod 3 (r = -1, 0,
# 1) including the ends of the normal range.
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_cbrt_every_short_length_and_offset_matches_the_scalar_kernel(dt):
    f = np.finfo(dt)
    rng = np.random.default_rng(129)
    lo, hi = f.minexp, f.maxexp - 1
    e = np.concatenate([np.arange(lo, lo + 6), np.arange(-4, 5), np.arange(hi - 5, hi + 1)])
    base = (np.ldexp(rng.uniform(1, 1.99, 4096), rng.choice(e, 4096)) * rng.choice([-1.0, 1.0], 4096)).astype(dt)
    base[:5] = np.array([1.0, 8.0, 0.125, -27.0, 2.0], dtype=dt)
    alone = np.array([np.asarray(tg.cbrt(tg.Variable(np.array(v, dtype=dt))).numpy()) for v in base[:80]], dtype=dt)
    for n in range(1, 41):
        for off in (0, 1, 3):
            x = np.ascontiguousarray(base[off:off + n])
            got = every_isa_and_thread_count(tg.cbrt, x)
            np.testing.assert_array_equal(got.view(np.uint8), alone[off:off + n].view(np.uint8))
