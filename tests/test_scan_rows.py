"""cumsum / cumprod along a contiguous axis with many lanes (h122-scans: rows scanned 8 or 4, then 2,
1 at a time in lockstep; simd/scan.hpp): every row is still one sequential chain, so the values are
NumPy's sequential scan bit for bit (float32 sums and products in double), at every ISA build and thread count, for
every row count (the groups and their tails), row lengths that take 8- and 4-row groups, forward (the
value) and reversed (cumsum's VJP)."""
import numpy as np
import pytest

import tapegrad as tg
from helpers import every_isa_and_thread_count, numeric_grad


def _seq_cumsum(x, reverse=False):
    """The sequential running sum along the last axis (float32 in double, rounded once per element)."""
    acc = np.float64 if x.dtype == np.float32 else x.dtype
    x = x[..., ::-1] if reverse else x
    y = np.cumsum(x.astype(acc), axis=-1).astype(x.dtype)  # np.cumsum is one chain per lane
    return y[..., ::-1] if reverse else y


def _seq_cumprod(x):
    """The running product along the last axis, one multiply at a time (float32 in double, rounded once
    per element)."""
    acc = np.float64 if x.dtype == np.float32 else x.dtype
    y = np.empty_like(x)
    p = np.ones(x.shape[:-1], acc)
    for k in range(x.shape[-1]):
        p = p * x[..., k].astype(acc)
        y[..., k] = p.astype(x.dtype)
    return y


def _rows(rows, n, dtype, prod, seed=0):
    rng = np.random.default_rng(seed + 1000 * rows + n)
    if prod:
        x = rng.uniform(0.9, 1.1, (rows, n)).astype(dtype)
        if x.size:
            x.reshape(-1)[:: 97] = 0  # zeros, some late in a row
            x.reshape(-1)[13:: 211] = -x.reshape(-1)[13:: 211]
    else:
        x = rng.standard_normal((rows, n)).astype(dtype)
    return x


ROW_COUNTS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31]
# 1-3, 512 and 1,024 take 4-row groups (rows 64 bytes or less, or 2 / 4 KB apart: one L1 set), the others 8-row ones.
ROW_LENGTHS = [1, 2, 3, 17, 31, 32, 33, 97, 223, 512, 1000, 1024, 1040]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", ROW_LENGTHS)
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_rows_are_the_sequential_scan(name, n, dtype):
    seq = _seq_cumsum if name == "cumsum" else _seq_cumprod
    for rows in ROW_COUNTS:
        x = _rows(rows, n, dtype, prod=name == "cumprod")
        y = getattr(tg, name)(x, axis=-1).data
        assert y.dtype == dtype
        assert np.array_equal(y, seq(x)), (rows, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cumsum_vjp_is_the_reversed_sequential_sum(dtype):
    for rows, n in [(9, 300), (17, 1024), (3, 5)]:
        x = _rows(rows, n, dtype, prod=False)
        g = _rows(rows, n, dtype, prod=False, seed=1)
        got = tg.grad(lambda v: tg.sum(tg.cumsum(v, axis=-1) * tg.Variable(g)))(x)
        got = np.asarray(got.data if hasattr(got, "data") else got)
        assert np.array_equal(got, _seq_cumsum(g, reverse=True)), (rows, n)


def test_cumprod_special_values_as_numpy():
    x = np.array([[1.0, np.inf, 0.0, 2.0], [0.0, np.inf, 1.0, 1.0], [np.nan, 1.0, 2.0, 3.0],
                  [-0.0, 1.0, -1.0, 2.0], [1e200, 1e200, 1e-200, 1e-200], [2.0, 0.5, -0.0, np.inf]] * 3)
    with np.errstate(all="ignore"):
        want = np.cumprod(x, axis=-1)
    got = tg.cumprod(x, axis=-1).data
    assert got.tobytes() == want.tobytes()


def test_cumsum_minus_zero_start_kept():
    # the running sum starts at +0: -0.0 + +0 = +0 in every row, as the one-row loop gave
    x = np.full((11, 40), -0.0)
    got = tg.cumsum(x, axis=-1).data
    assert not np.signbit(got).any()


@pytest.mark.parametrize("shape", [(600, 1000), (512, 1024)])  # 8-row and 4-row groups
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_rows_same_bits_every_isa_and_thread_count(name, dtype, shape):
    # enough rows for the two threads to split them
    x = _rows(*shape, dtype, prod=name == "cumprod")
    got = every_isa_and_thread_count(lambda v: getattr(tg, name)(v, axis=-1), x)
    want = _seq_cumsum(x) if name == "cumsum" else _seq_cumprod(x)
    assert np.array_equal(got, want)
    g = _rows(*shape, dtype, prod=False, seed=2)
    gx = every_isa_and_thread_count(
        lambda v: tg.grad(lambda w: tg.sum(getattr(tg, name)(w, axis=-1) * tg.Variable(g)))(v), x)
    if name == "cumsum":
        assert np.array_equal(gx, _seq_cumsum(g, reverse=True))


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_strided_and_other_axes(name):
    base = _rows(40, 600, np.float64, prod=name == "cumprod")
    f = getattr(tg, name)
    for x in [base[:, ::2], base.T, base[::3, 5:500], base.reshape(4, 10, 600)]:
        for axis in range(x.ndim):
            got = f(x, axis=axis).data
            want = getattr(np, name)(x, axis=axis)
            assert np.array_equal(got, want), (x.shape, axis)


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_gradients_match_finite_differences(name):
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 1.5, (9, 12))
    x[2, 3] = 0.0
    x[7, 0] = 0.0
    w = rng.standard_normal((9, 12))
    f = getattr(tg, name)
    got = tg.grad(lambda v: tg.sum(f(v, axis=-1) * tg.Variable(w)))(x)
    got = np.asarray(got.data if hasattr(got, "data") else got)
    want = numeric_grad(lambda a: np.sum(getattr(np, name)(a, axis=-1) * w), x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
