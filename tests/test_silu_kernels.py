"""silu's float32 kernel in double lanes (simd/math.hpp's h101-sigmoid block) and float64's silu path.

The whole-domain ulp bars are in test_kernels_fastpaths.py (LD_ORACLE, 10^6 points); these add every
float in the bands where the new kernel makes its own choices: the cap at |x| = 112 (x e^x rounds to 0
below it, -inf gives NaN), the subnormal results (x in ~[-112, -87]: one rounding from a normal double),
the range where e^-|x|'s 2^k reaches its lowest k, small and tiny |x|, and the special values; plus an
mpmath check independent of the long double oracle, and PyTorch's silu as a coarse cross-check.
"""
import mpmath
import numpy as np
import pytest

import tapegrad as tg
from test_f32_kernel_edges import _band
from test_kernels_fastpaths import LD_ORACLE, _run_every_isa_and_thread_count, _ulp_error, needs_long_double

LD = np.longdouble


@needs_long_double
def test_float32_silu_every_float_in_its_bands_within_one_ulp(restore_isa_and_threads):
    x = np.concatenate([_band(80.0, 120.0, 3), _band(0.5, 2.0, 41), _band(8.0, 20.0, 61),
                        _band(1e-30, 1e-3, 99991), np.float32([0.34657359, 103.97, 111.99, 112.0, 112.01])])
    got = _run_every_isa_and_thread_count(tg.silu, x)
    err, _ = _ulp_error(got, LD_ORACLE["silu"](x.astype(LD)), np.float32)
    assert err.max() <= 1.0
    sub = (x < -93.0) & (x > -103.0)
    assert (got[sub] != 0).all() and (np.abs(got[sub]) < np.finfo(np.float32).tiny).all()  # subnormal, not flushed


def test_float32_silu_against_mpmath(restore_isa_and_threads):
    rng = np.random.default_rng(101)
    x = np.concatenate([rng.uniform(-110, 30, 400), rng.uniform(-3, 3, 400)]).astype(np.float32)
    got = _run_every_isa_and_thread_count(tg.silu, x)
    mpmath.mp.prec = 120
    for xi, gi in zip(x.tolist(), got.tolist()):
        want = mpmath.mpf(xi) / (1 + mpmath.exp(-mpmath.mpf(xi)))
        w32 = np.float32(float(want))
        ulp = float(np.spacing(np.abs(w32))) if w32 != 0 else float(np.float32(1.4e-45))
        assert abs(mpmath.mpf(gi) - want) <= 1.0 * ulp, (xi, gi, want)


def test_float32_silu_special_values_in_every_isa(restore_isa_and_threads):
    x = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, -112.5, -200.0, -1e30, 1e30, 3.4028235e38, -3.4028235e38,
                    1.4e-45, -1.4e-45])
    got = _run_every_isa_and_thread_count(tg.silu, x)
    bits = got.view(np.uint32)
    assert bits[0] == 0 and bits[1] == 0x80000000  # +0, -0
    assert got[2] == np.inf and np.isnan(got[3]) and np.isnan(got[4])  # -inf: NaN, as x * sigmoid(x)
    assert (bits[5:8] == 0x80000000).all()  # -0 below the cap
    assert got[8] == np.float32(1e30) and got[9] == np.float32(3.4028235e38) and bits[10] == 0x80000000
    assert got[11] == np.float32(0.0) or got[11] == np.float32(1.4e-45)  # x / 2 rounds to 0 or the least subnormal
    assert (bits[11] >> 31) == 0 and (bits[12] >> 31) == 1


def test_float32_silu_close_to_torch(restore_isa_and_threads):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(7).uniform(-20, 20, 100_000).astype(np.float32)
    got = tg.silu(tg.Variable(x)).numpy()
    want = torch.nn.functional.silu(torch.from_numpy(x.astype(np.float64))).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-30)


@needs_long_double
def test_float64_silu_without_the_zero_low_part_within_two_ulp(restore_isa_and_threads):
    # silu_f64 skips the TwoSum of a zero low part (x_sigmoid_f64<false>): the same bits as before; the
    # subnormal results (u < -700 path) and the cut at -760 are where it must still hold.
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-760, -690, 20_000), rng.uniform(-40, 40, 20_000), [-0.0, 0.0, -760.5, 709.9]])
    got = _run_every_isa_and_thread_count(tg.silu, x)
    err, _ = _ulp_error(got, LD_ORACLE["silu"](x.astype(LD)), np.float64)
    assert err.max() <= 2.0
    assert np.signbit(got[-4]) and got[-4] == 0 and np.signbit(got[-2]) and got[-2] == 0
