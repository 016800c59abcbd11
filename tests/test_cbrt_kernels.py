"""cbrt's vector pass and fix-up (cpp/src/simd/cbrt.hpp): the lanes with a normal finite x run in the
vector loop without the subnormal and special-value selects; a pre-scan of each 256-element block finds
the others (+-0, subnormals, +-inf, NaN), which the full scalar kernel redoes. These put such lanes at
every position of a vector and of a block, mixed with normal ones, and check each result against NumPy
(specials), a float64 / mpmath oracle (accuracy bars: float32 <= 1 ulp, float64 <= 2 ulp; the kernels
measure 0.5000) and the same element computed alone (a 0-d call takes the full kernel), in every ISA
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
