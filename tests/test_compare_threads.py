"""The six comparisons on two large contiguous Variables of one shape and dtype (cpp/src/compare_split.cpp): an SSE2
loop split over the pool from 512K elements, instead of NumPy's one-thread loop. Its bools must be NumPy's, bit for
bit, at 1 and 2 threads and every ISA setting: NaN compares false (true for !=), -0.0 == 0.0, infinities, subnormals,
sizes around the 16-lane blocks, kPredicateNumpyFrom (4,096) and the split (2 * 262,144). Views, broadcasting, mixed
dtypes and scalars keep NumPy's loop and must still give NumPy's results."""
import operator

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core

from helpers import supported_isas

COMPARISONS = ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal")
OPERATORS = {"less": operator.lt, "less_equal": operator.le, "greater": operator.gt, "greater_equal": operator.ge,
             "equal": operator.eq, "not_equal": operator.ne}
SIZES = (4095, 4096, 4097, 4096 + 15, 524287, 524288, 524288 + 17, (1 << 20) + 3)


def operands(n, dtype, seed=0):
    """Random values, half the pairs equal, and every special value against every other."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    b[::2] = a[::2]
    tiny = np.finfo(dtype).smallest_subnormal
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, tiny, -tiny], dtype)
    x, y = np.meshgrid(special, special)
    k = min(n, x.size)
    for start in (0, n // 2 - k // 2, n - k):  # the head, the threads' boundary and the scalar tail
        a[start:start + k] = x.ravel()[:k]
        b[start:start + k] = y.ravel()[:k]
    return a, b


@pytest.mark.usefixtures("restore_isa_and_threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_same_shape_matches_numpy_at_1_and_2_threads(n, dtype):
    a, b = operands(n, dtype, seed=n)
    va, vb = tg.Variable(a), tg.Variable(b)
    for isa in supported_isas():
        _core._set_isa(isa)
        for threads in (1, 2):
            tg.set_num_threads(threads)
            for name in COMPARISONS:
                want = getattr(np, name)(a, b)
                for got in (getattr(tg, name)(va, vb), OPERATORS[name](va, vb)):
                    assert isinstance(got, np.ndarray) and got.dtype == np.bool_ and got.shape == (n,)
                    assert got.view(np.uint8).max() <= 1  # 0/1 bytes, as NumPy's bools
                    assert np.array_equal(got, want), (name, n, threads, isa, np.flatnonzero(got != want)[:5])


@pytest.mark.usefixtures("restore_isa_and_threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matrix_shape_and_recorded_operands(dtype):
    a, b = operands(1 << 20, dtype, seed=3)
    a, b = a.reshape(1024, 1024), b.reshape(1024, 1024)
    tg.set_num_threads(2)
    va, vb = tg.Variable(a, requires_grad=True), tg.Variable(b)
    for name in COMPARISONS:
        got = getattr(tg, name)(va, vb)
        assert got.shape == (1024, 1024) and np.array_equal(got, getattr(np, name)(a, b)), name


@pytest.mark.usefixtures("restore_isa_and_threads")
@pytest.mark.parametrize("threads", [1, 2])
def test_other_operands_keep_numpys_results(threads):
    tg.set_num_threads(threads)
    n = (1 << 20) + 2
    a64, b64 = operands(n, np.float64, seed=5)
    a32 = a64.astype(np.float32)
    base = tg.Variable(np.stack([a64, b64]))
    cases = [
        (tg.Variable(a32), tg.Variable(b64), a32, b64),  # mixed dtypes: compared in float64, as NumPy
        (tg.Variable(a64), tg.Variable(b64.astype(np.float32)), a64, b64.astype(np.float32)),
        (base[0, ::2], base[1, ::2], a64[::2], b64[::2]),  # strided views
        (base[:, 1:][0], base[:, :-1][1], a64[1:], b64[:-1]),  # offset views (contiguous)
        (tg.Variable(a64.reshape(-1, 2)), tg.Variable(b64[:2]), a64.reshape(-1, 2), b64[:2]),  # broadcasting
        (tg.Variable(a64), tg.Variable(np.float64(0.0)), a64, np.float64(0.0)),  # with a 0-d Variable
        (tg.Variable(a32), 0.25, a32, 0.25),  # a Python scalar
        (tg.Variable(a64), b64, a64, b64),  # a NumPy array
        (a32, tg.Variable(b64), a32, b64),
    ]
    for name in COMPARISONS:
        for x, y, nx, ny in cases:
            got = getattr(tg, name)(x, y)
            want = getattr(np, name)(nx, ny)
            assert got.dtype == np.bool_ and got.shape == want.shape and np.array_equal(got, want), name
        got = OPERATORS[name](tg.Variable(a32), tg.Variable(b64))
        assert np.array_equal(got, getattr(np, name)(a32, b64)), name


def test_zero_d_and_mismatched_shapes():
    for name in COMPARISONS:
        got = getattr(tg, name)(tg.Variable(np.float64(1.0)), tg.Variable(np.float64(np.nan)))
        assert isinstance(got, np.bool_) and got == getattr(np, name)(1.0, np.nan), name
        with pytest.raises(ValueError, match=name):
            getattr(tg, name)(tg.Variable(np.zeros(5000)), tg.Variable(np.zeros(4999)))
