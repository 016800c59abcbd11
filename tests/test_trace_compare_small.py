"""trace(X) and the comparisons' small-call paths (cpp/bindings/functions.cpp, h100-small): a small contiguous
matrix that records nothing is traced by a gather and the ISA's sum, comparisons of one shape by a plain loop.
Both must give the general path's bits and NumPy's results: recorded vs not, float32 sums (accumulated in double,
rounded once), NaN, views, broadcasting and mixed dtypes (the general path), every ISA build."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core

from helpers import supported_isas

COMPARISONS = ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal")


@pytest.mark.usefixtures("restore_isa_and_threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trace_small_path_same_bits_as_recorded(dtype):
    rng = np.random.default_rng(0)
    for isa in supported_isas():
        _core._set_isa(isa)
        for shape in [(1, 1), (2, 2), (4, 4), (3, 7), (9, 5), (17, 17), (64, 64), (65, 65), (0, 3)]:
            X = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 8, shape)).astype(dtype)
            fast = tg.trace(tg.Variable(X))
            rec = tg.trace(tg.Variable(X, requires_grad=True))  # the view + sum primitives
            assert fast.dtype == rec.dtype == dtype and fast.shape == ()
            assert fast.data.tobytes() == rec.data.tobytes(), (isa, shape)
            assert tg.Variable(X).trace().data.tobytes() == rec.data.tobytes()
            np.testing.assert_allclose(fast.data, np.trace(X.astype(np.float64)), rtol=1e-6 if dtype == np.float32
                                       else 1e-13, atol=1e-30)


def test_trace_float32_accumulates_in_double():
    X = np.diag(np.array([1.0, 1e-8, 1e-8, -1.0], np.float32))  # a float accumulator would give 0
    r = tg.trace(tg.Variable(X)).data
    assert r.dtype == np.float32 and abs(float(r) - 2 * float(np.float32(1e-8))) < 1e-14
    assert r.tobytes() == tg.trace(tg.Variable(X, requires_grad=True)).data.tobytes()


def test_trace_other_calls_keep_the_general_path():
    X = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(tg.trace(tg.Variable(X)).data, np.trace(X))
    M = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(tg.trace(tg.Variable(M), 1).data, np.trace(M, 1))
    np.testing.assert_array_equal(tg.trace(tg.Variable(M)[:, ::-1]).data, np.trace(M[:, ::-1]))  # a view
    x = tg.Variable(M, requires_grad=True)
    tg.trace(x).backward()
    np.testing.assert_array_equal(x.grad.data, np.eye(4))
    with tg.detect_anomaly():
        assert tg.trace(tg.Variable(M)).data == np.trace(M)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", COMPARISONS)
def test_comparisons_match_numpy(dtype, name):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(37).astype(dtype)
    b = a.copy()
    b[::2] = rng.standard_normal(19).astype(dtype)
    a[3], b[5], a[7], b[7] = np.nan, np.nan, np.inf, np.inf
    a[9], b[9] = 0.0, -0.0
    f, ref = getattr(tg, name), getattr(np, name)
    for x, y in ((a, b), (a[:16], b[:16]), (a[:1].reshape(()), b[:1].reshape(())), (a.reshape(1, 37), b),
                 (a[::2], b[::2]), (a[:4].reshape(2, 2), b[:4].reshape(2, 2).T)):
        got = f(tg.Variable(np.ascontiguousarray(x) if x.ndim else x), tg.Variable(y))
        np.testing.assert_array_equal(got, ref(x, y))
        assert np.asarray(got).dtype == bool and np.shape(got) == np.shape(ref(x, y))
    got = f(tg.Variable(a), tg.Variable(b.astype(np.float64)))  # mixed: compared in float64
    np.testing.assert_array_equal(got, ref(a.astype(np.float64), b.astype(np.float64)))
    m = tg.Variable(np.stack([a, b]))
    np.testing.assert_array_equal(f(m[0], m[1]), ref(a, b))  # views of one storage
    np.testing.assert_array_equal(f(tg.Variable(a[:0]), tg.Variable(b[:0])), ref(a[:0], b[:0]))
