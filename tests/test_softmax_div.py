"""h98-membound: softmax's e / s by a reciprocal and one fma correction (simd/loops.hpp div_by_run).

The correction makes the quotient the correctly rounded division (Markstein), so softmax must give
exactly e / s, e = exp(x - max) and s its row's sum, both as tapegrad computes them: the same bits
as before the change, on every ISA build and at 1 and 2 threads. A plain product e * (1/s) differs
from the division in ~30% of the lanes (NumPy, normal logits), so these tests fail without the
correction. Rows with zeros, tiny e (< 2^-896 / 2^-64: the blocks that divide), inf and NaN too.
"""
import numpy as np
import pytest

import tapegrad as tg
from helpers import supported_isas
from tapegrad import _core


def _bits(a):
    return a.view(np.uint64 if a.dtype == np.float64 else np.uint32)


def _e_over_s(X):
    """e / s with tapegrad's exp and its row sum (the sum order softmax's rows use), NumPy's division."""
    m = X.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(X.dtype)
    e = tg.exp(tg.Variable(X - m)).numpy()
    s = np.array([float(tg.sum(tg.Variable(r)).numpy()) for r in e]).astype(X.dtype)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return e / s


def _inputs(dtype):
    rng = np.random.default_rng(17)
    out = []
    for scale in (1.0, 10.0, 60.0, 400.0):  # 400: e = 0 and subnormal e in most rows
        out.append((rng.standard_normal((48, 1000)) * scale).astype(dtype))
    X = rng.standard_normal((6, 300)).astype(dtype)
    X[0, 5] = np.inf
    X[1, 7] = np.nan
    X[2, :] = -np.inf
    X[3, 9] = -np.inf
    X[4, :] = 0.0
    X[5, 100:] = -1e4
    out.append(X)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_softmax_is_the_correctly_rounded_division(dtype, nthreads):
    before_isa, before_threads = _core._isa(), tg.get_num_threads()
    try:
        tg.set_num_threads(nthreads)
        for X in _inputs(dtype):
            want = _bits(_e_over_s(X))
            for isa in supported_isas():
                _core._set_isa(isa)
                got = _bits(tg.softmax(tg.Variable(X), axis=-1).numpy())
                bad = np.flatnonzero(got != want)
                assert bad.size == 0, f"{isa} {nthreads}t {dtype.__name__}: {bad.size} lanes differ from e / s"
    finally:
        _core._set_isa(before_isa)
        tg.set_num_threads(before_threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_1d_softmax_same_bits_on_every_isa_and_thread_count(dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(300_000) * 4).astype(dtype)
    x[::9973] = -800.0  # tiny and zero e in some blocks
    before_isa, before_threads = _core._isa(), tg.get_num_threads()
    try:
        got = []
        for isa in supported_isas():
            for nt in (1, 2):
                _core._set_isa(isa)
                tg.set_num_threads(nt)
                got.append(_bits(tg.softmax(tg.Variable(x), axis=-1).numpy()))
        for g in got[1:]:
            assert np.array_equal(g, got[0])
        p = got[0].view(dtype)
        assert abs(float(p.astype(np.float64).sum()) - 1.0) < (1e-4 if dtype == np.float32 else 1e-12)
    finally:
        _core._set_isa(before_isa)
        tg.set_num_threads(before_threads)
