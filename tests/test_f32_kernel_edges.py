"""h97-f32: float32 gelu, arctanh, logaddexp, logaddexp2 in plain double (simd/math.hpp's last block).

The whole-domain ulp bars are in test_kernels_fastpaths.py (LD_ORACLE) and test_binary_ufuncs.py;
these add the places the new kernels' own choices sit: every float near gelu's |u| = 700 cut and near
arctanh's pole and its tiny arguments, logaddexp's cancellation where max(a, b) < 0, and signaling
NaNs (the baseline build once returned arctanh's signaling NaN unquieted: other bits than AVX2/-512).
"""
import numpy as np
import pytest

import tapegrad as tg
from helpers import every_isa_and_thread_count
from test_kernels_fastpaths import LD_ORACLE, _ulp_error, needs_long_double

LD = np.longdouble


def _band(lo, hi, step=1):
    a, b = np.array([lo, hi], np.float32).view(np.int32)
    x = np.arange(a, b, step, dtype=np.int32).view(np.float32)
    return np.concatenate([x, -x])


@needs_long_double
def test_gelu_every_float_around_the_cut_within_one_ulp(restore_isa_and_threads):
    # |u| = 700 (e^-|u| taken as 0 beyond) is at |x| ~ 21.4; gelu(x) underflows float below x ~ -14.
    x = np.concatenate([_band(8.0, 24.0, 7), _band(0.5, 1.5, 97), _band(1e-30, 1e-20, 9973)])
    got = every_isa_and_thread_count(tg.gelu, x)
    err, _ = _ulp_error(got, LD_ORACLE["gelu"](x.astype(LD)), np.float32)
    assert err.max() <= 1.0
    neg = x < -16
    assert (got[neg] == 0).all() and np.signbit(got[neg]).all()


@needs_long_double
def test_arctanh_every_float_near_the_pole_and_tiny_within_one_ulp(restore_isa_and_threads):
    x = np.concatenate([_band(0.999, 1.0), _band(2.0**-31, 2.0**-27, 3), _band(0.49, 0.51, 5)])
    got = every_isa_and_thread_count(tg.arctanh, x)
    err, _ = _ulp_error(got, np.arctanh(x.astype(LD)), np.float32)
    assert err.max() <= 1.0


@needs_long_double
@pytest.mark.parametrize("name", ["logaddexp", "logaddexp2"])
def test_float32_logaddexp_where_the_log1p_term_cancels(name, restore_isa_and_threads):
    # max(a, b) < 0 near -ln 2 (logaddexp) / -1 (logaddexp2): the result is far below |max(a, b)|;
    # its error is log1p's absolute ~2^-53, far below a float ulp of max(|a|, |b|).
    rng = np.random.default_rng(97)
    c = np.log(2.0) if name == "logaddexp" else 1.0
    a = (-c + rng.uniform(-1e-3, 1e-3, 200_000)).astype(np.float32)
    b = (a - np.abs(rng.normal(0, 1e-3, a.size))).astype(np.float32)
    got = every_isa_and_thread_count(lambda v: getattr(tg, name)(v, tg.Variable(b)).numpy(), a)
    al, bl = a.astype(LD), b.astype(LD)
    m = np.maximum(al, bl)
    d = np.abs(al - bl)
    want = m + (np.log1p(np.exp(-d)) if name == "logaddexp" else np.log1p(np.exp2(-d)) / np.log(LD(2)))
    big = np.maximum(np.abs(want), np.maximum(np.abs(al), np.abs(bl)))
    err = np.abs(got.astype(LD) - want) / np.spacing(big.astype(np.float32)).astype(LD)
    assert err.max() <= 0.5 + 2.0**-10
    if name == "logaddexp2":  # a + 1 exactly at a == b
        np.testing.assert_array_equal(tg.logaddexp2(tg.Variable(a), tg.Variable(a)).numpy(), a + np.float32(1))


def test_signaling_nans_quieted_alike_in_every_isa(restore_isa_and_threads):
    snan = np.array([0x7F800001, 0xFF800005, 0x7FA00000, 0x7FC00003], np.uint32).view(np.float32)
    x = np.concatenate([snan, np.float32([0.5, -0.25, 1.0, -1.0, 2.0, np.inf, -np.inf, 0.0, -0.0])])
    quiet = snan.view(np.uint32) | np.uint32(0x00400000)
    for name in ("gelu", "arctanh"):
        got = every_isa_and_thread_count(getattr(tg, name), x)
        np.testing.assert_array_equal(got[:4].view(np.uint32), quiet)
    one = np.ones(x.size, np.float32)
    for name in ("logaddexp", "logaddexp2"):
        got = every_isa_and_thread_count(lambda v: getattr(tg, name)(v, tg.Variable(one)).numpy(), x)
        np.testing.assert_array_equal(got[:4].view(np.uint32), quiet)
        got = every_isa_and_thread_count(lambda v: getattr(tg, name)(tg.Variable(one), v).numpy(), x)
        np.testing.assert_array_equal(got[:4].view(np.uint32), quiet)
