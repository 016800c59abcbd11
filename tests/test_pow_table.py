"""float64 pow's table-driven kernel (cpp/src/simd/pow.hpp, pow_tables.hpp): dense bands against powl.

The oracle is NumPy's long double power (x87 80-bit powl on x86-64 Linux, ~2^-63 relative: ~2^-10 of a
float64 ulp), so each band can hold 10^4-10^5 pairs; tests/test_pow_cbrt_accuracy.py checks fewer pairs
against mpmath. The kernel is ARM optimized-routines' pow (0.54 ulp by its analysis where the result is
normal; a subnormal result is rounded a second time by the final 2^n scaling: <= 0.77 ulp of 2^-1074).
Every band runs in every ISA build at 1 and 2 threads with the bits asserted equal.
"""
import numpy as np
import pytest

import tapegrad as tg
from helpers import every_isa_and_thread_count

pytestmark = pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs x87 long double powl")

NORMAL_BAR = 0.56  # ulp, normal results (0.54 + the oracle's ~0.001 + margin)
SUBNORMAL_BAR = 1.0  # ulp of 2^-1074, subnormal results


def _errors(x, y):
    """Kernel results (asserted identical in every ISA and thread count) and their error in float64 ulps of
    powl's value; also returns masks normal / subnormal / overflowed of the reference."""
    got = every_isa_and_thread_count(lambda a, b: a ** b, x, y)
    np.testing.assert_array_equal(got, every_isa_and_thread_count(tg.power, x, y))
    with np.errstate(all="ignore"):
        ref = np.power(x.astype(np.longdouble), y.astype(np.longdouble))
    aref = np.abs(ref)
    big = np.longdouble(np.finfo(np.float64).max) * (1 + np.longdouble(2.0) ** -54)
    over = aref >= big
    under = aref <= np.longdouble(2.0) ** -1075  # rounds to 0 (ties: the oracle's error is far below)
    sub = ~over & ~under & (aref < np.longdouble(2.0) ** -1022)
    normal = ~over & ~under & ~sub
    _, e = np.frexp(np.where(normal | sub, aref, 1))
    ulp = np.ldexp(np.longdouble(1), np.maximum(e.astype(np.int64) - 53, -1074))
    err = np.abs(got.astype(np.longdouble) - ref) / ulp
    assert np.isinf(got[over]).all()
    np.testing.assert_array_equal(np.signbit(got[over]), np.signbit(ref[over]))
    assert (got[under] == 0).all()
    return got, err.astype(np.float64), normal, sub


def _check(x, y, expect_sub=False):
    got, err, normal, sub = _errors(x, y)
    assert normal.sum() > 0
    i = np.flatnonzero(normal)[np.argmax(err[normal])]
    assert err[normal].max() <= NORMAL_BAR, (err[normal].max(), x[i], y[i])
    if expect_sub:
        assert sub.sum() > 0
    if sub.any():
        k = np.flatnonzero(sub)[np.argmax(err[sub])]
        assert err[sub].max() <= SUBNORMAL_BAR, (err[sub].max(), x[k], y[k])
    return err, normal, sub


def test_every_binade_of_x_with_y_log2x_over_the_whole_range():
    rng = np.random.default_rng(125)
    n = 60000
    x = np.ldexp(rng.uniform(1, 2, n), rng.integers(-1074, 1024, n))  # subnormal x included
    lx = np.log2(x)
    t = rng.uniform(-1080, 1030, n)
    keep = np.abs(lx) > 1e-2
    _check(x[keep], (t / lx)[keep], expect_sub=True)


def test_moderate_values_and_the_table_boundaries():
    rng = np.random.default_rng(126)
    n = 60000
    # the log table's 128 subintervals of z in [0x1.69555p-1, 0x1.69555p0): their edges and the doubles
    # next to them, in binades 2^-20..2^20
    edge = (np.uint64(0x3FE6955500000000) + (np.arange(128, dtype=np.uint64) << np.uint64(45)))
    edge = (edge[:, None] + np.array([-1, 0, 1], dtype=np.int64).astype(np.uint64)).ravel().view(np.float64)
    xe = np.ldexp(np.repeat(edge, 8), rng.integers(-20, 20, edge.size * 8))
    # x, y uniform in [0.5, 2) x [-60, 60] and (0, 10) x (-30, 30)
    x = np.concatenate([rng.uniform(0.5, 2.0, n), rng.uniform(0, 10, n), xe])
    y = np.concatenate([rng.uniform(-60, 60, n), rng.uniform(-30, 30, n), rng.uniform(-5, 5, xe.size)])
    _check(x, y)


def test_x_near_one_with_large_y():
    rng = np.random.default_rng(127)
    n = 40000
    # x = 1 + d, |d| from 2^-52 to 2^-2, y up to |y log2 x| = 1000 with |y| < 2^31 (the kernel's range)
    d = np.ldexp(rng.uniform(1, 2, n), rng.integers(-52, -2, n)) * rng.choice([-1.0, 1.0], n)
    x = 1 + d
    t = rng.uniform(-1000, 1000, n)
    y = np.clip(t / np.log2(x), -(2.0**31 - 1), 2.0**31 - 1)
    _check(x, y)


def test_negative_x_with_integer_y():
    # the error is measured against powl's signed value, so a wrong sign of (-1)^y fails it
    rng = np.random.default_rng(128)
    n = 40000
    x = -np.ldexp(rng.uniform(1, 2, n), rng.integers(-30, 30, n))
    lx = np.log2(-x)
    keep = np.abs(lx) > 1e-3
    x, y = x[keep], np.round(rng.uniform(-1000, 1000, n)[keep] / lx[keep])
    _check(x, y)
    assert (np.mod(y, 2) == 1).sum() > n // 4


def test_subnormal_results():
    rng = np.random.default_rng(129)
    n = 40000
    x = rng.uniform(1.001, 30, n) ** rng.choice([-1.0, 1.0], n)
    t = rng.uniform(-1076, -1020, n)
    _check(x, t / np.log2(x), expect_sub=True)


def test_exact_results_are_exact():
    # integer powers whose value is a double, and powers of two: the kernel gives them exactly
    b = np.array([2.0, 3.0, 5.0, 7.0, 10.0, 0.5, 0.25, 1.5, -3.0, -10.0])
    k = np.arange(-12, 23, dtype=np.float64)
    x, y = np.meshgrid(b, k)
    x, y = x.ravel(), y.ravel()
    exact = np.array([float(np.longdouble(a) ** int(e)) for a, e in zip(x, y)])
    rep = np.array([(np.longdouble(a) ** int(e)) == np.longdouble(v) for a, e, v in zip(x, y, exact)])
    got = every_isa_and_thread_count(lambda a, c: a ** c, x, y)
    np.testing.assert_array_equal(got[rep], exact[rep])
    p2 = np.ldexp(1.0, np.arange(-1074, 1024))
    got = every_isa_and_thread_count(lambda a, c: a ** c, np.full(p2.size, 2.0), np.arange(-1074, 1024.0))
    np.testing.assert_array_equal(got, p2)
