"""arctanh (float32, float64) with one division and float32 log2/log10 in float lanes (simd/atanh_log.hpp).

arctanh reduces u = (1 + |x|) / (1 - |x|) by 2^k, k from the bit patterns of 1 + |x| and 1 - |x| (a
linear log2 of the mantissas), so the bands checked here are where k changes (u near 2^(j + 1/2) give
or take 0.09), the pole, tiny and subnormal |x|; float64 against mpmath (<= 2 ulp), float32 against a
long double oracle (<= 1 ulp). log2/log10: the split at m = sqrt(2), x near 1, powers, subnormals.
Every result is compared bit for bit across the ISA builds and 1/2 threads.
"""
import mpmath
import numpy as np
import pytest

import tapegrad as tg
from helpers import every_isa_and_thread_count
from test_kernels_fastpaths import _ulp_error, needs_long_double

LD = np.longdouble


def _band32(lo, hi, step=1):
    a, b = np.array([lo, hi], np.float32).view(np.int32)
    x = np.arange(a, b, step, dtype=np.int32).view(np.float32)
    return np.concatenate([x, -x])


def _k_switch_points(dtype, width, per, seed):
    # x with u = (1 + x) / (1 - x) = 2^c, c over j + 1/2 +- 0.1 (where the bit-derived k may switch),
    # j = 0 .. 55: x = (2^c - 1) / (2^c + 1)
    rng = np.random.default_rng(seed)
    j = np.repeat(np.arange(0, 56), per)
    c = j + 0.5 + rng.uniform(-width, width, j.size)
    u = np.exp2(c)
    x = ((u - 1) / (u + 1)).astype(dtype)
    x = x[np.abs(x) < 1]
    return np.concatenate([x, -x])


def _mp_ulp_error(got, x, fn):
    """|got - fn(x)| in ulps of the correctly rounded float64 result, fn evaluated by mpmath at 80 digits."""
    errs = []
    with mpmath.workdps(80):
        for g, v in zip(got.tolist(), x.tolist()):
            w = fn(mpmath.mpf(v))
            wf = float(w)
            ulp = np.spacing(abs(wf)) if wf != 0 else np.spacing(0.0)
            errs.append(float(abs(mpmath.mpf(g) - w) / ulp))
    return np.array(errs)


def test_arctanh_float64_within_two_ulp_of_mpmath_on_the_bands(restore_isa_and_threads):
    rng = np.random.default_rng(124)
    x = np.concatenate([
        _k_switch_points(np.float64, 0.1, 20, 1),
        rng.uniform(-1, 1, 2000),
        1 - np.exp2(-rng.uniform(1, 53, 600)),  # near the pole: k up to 54
        np.exp2(-rng.uniform(0, 60, 300)),  # 1 +- x rounds below 2^-53
        np.exp2(-rng.uniform(1000, 1074, 100)),  # subnormal
        np.array([0.2, 0.2002, 0.1999, 0.5, 1 - 2.0**-53, 2.0**-1074, 2.0**-1022, 1e-300]),
    ])
    x = np.concatenate([x, -x])
    got = every_isa_and_thread_count(tg.arctanh, x)
    err = _mp_ulp_error(got, x, mpmath.atanh)
    assert err.max() <= 2.0, (err.max(), x[err.argmax()])
    tiny = np.abs(x) < 2.0**-30
    np.testing.assert_array_equal(got[tiny], x[tiny])  # atanh x = x to within far less than half an ulp


@needs_long_double
def test_arctanh_float32_within_one_ulp_on_the_bands(restore_isa_and_threads):
    x = np.concatenate([
        _k_switch_points(np.float32, 0.1, 400, 2),
        _band32(0.999, 1.0), _band32(0.19, 0.21, 3), _band32(0.33, 0.35, 3),
        _band32(2.0**-31, 2.0**-27, 3), _band32(2.0**-149, 2.0**-120, 4099),
    ])
    got = every_isa_and_thread_count(tg.arctanh, x)
    err, _ = _ulp_error(got, np.arctanh(x.astype(LD)), np.float32)
    assert err.max() <= 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arctanh_special_values(dtype, restore_isa_and_threads):
    fi = np.finfo(dtype)
    x = np.array([0.0, -0.0, 1.0, -1.0, 1 + fi.eps, -(1 + fi.eps), 2.0, -2.0, np.inf, -np.inf, np.nan,
                  fi.smallest_subnormal, -fi.smallest_subnormal, 1 - fi.epsneg, -(1 - fi.epsneg)], dtype)
    got = every_isa_and_thread_count(tg.arctanh, x)
    with np.errstate(all="ignore"):
        want = np.arctanh(x)
    np.testing.assert_array_equal(got[:4], want[:4])
    np.testing.assert_array_equal(np.signbit(got[:4]), np.signbit(want[:4]))
    assert np.isnan(got[4:11]).all()
    np.testing.assert_array_equal(got[11:13], x[11:13])
    assert np.isfinite(got[13:]).all() and got[13] > 0 > got[14]
    assert got[13] == -got[14]


@needs_long_double
@pytest.mark.parametrize("name", ["log2", "log10"])
def test_float32_log2_log10_within_one_ulp_on_the_bands(name, restore_isa_and_threads):
    s2 = np.sqrt(2.0)
    x = np.concatenate([_band32(0.99, 1.01, 3), _band32(s2 * 0.998, s2 * 1.002), _band32(s2 / 2 * 0.998, s2 / 2 * 1.002),
                        _band32(1.4e-45, 1.2e-38, 9973), _band32(0.3, 3.0, 257), _band32(3.0e30, 3.4e38, 65537)])
    x = np.abs(x)
    got = every_isa_and_thread_count(getattr(tg, name), x)
    err, _ = _ulp_error(got, getattr(np, name)(x.astype(LD)), np.float32)
    assert err.max() <= 1.0


@pytest.mark.parametrize("name", ["log2", "log10"])
def test_float32_log2_log10_specials_and_exact_results(name, restore_isa_and_threads):
    x = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, -1e-45, 1.0])
    got = every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        want = getattr(np, name)(x)
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[-1])  # log(1) = +0
    if name == "log2":
        k = np.arange(-149, 128)
        x = np.ldexp(np.ones(k.size), k).astype(np.float32)
    else:
        k = np.arange(-37, 39)
        x = np.array([float(f"1e{j}") for j in k]).astype(np.float32)
    got = every_isa_and_thread_count(getattr(tg, name), x)
    np.testing.assert_array_equal(got, k.astype(np.float32))
