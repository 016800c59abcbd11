"""Reductions and normalisers along the last axis (h123-lastaxis).

sum, mean, norm, prod, min and max over rows, and softmax / log_softmax and their first-order VJPs:

* the same bits on every ISA build at 1 and 2 threads (row lengths around the 32 lanes and the
  2,048-element blocks, one and many rows, strided input);
* sum / norm / prod bit for bit equal to a NumPy replay of the documented order (simd/reduce.hpp:
  32 double lanes, lane k summing elements k, k + 32, ... in order, the tail into lane 0, the lanes
  combined pairwise at w = 16, 8, 4, 2, 1; norm's squares rounded in the input's dtype first), so a
  change of the order (a row kernel that combined otherwise) fails here;
* softmax / log_softmax against float64 / mpmath references, and their VJPs bit for bit equal to
  the formulas the kernel implements (g - exp(y) sum(g); y (g - sum(g y))) replayed in NumPy with
  tapegrad's exp and row sums, and against finite differences.
"""
import mpmath
import numpy as np
import pytest

import tapegrad as tg
from helpers import every_isa_and_thread_count, numeric_grad

LENGTHS = [1, 5, 31, 32, 33, 63, 64, 65, 95, 127, 128, 129, 1023, 1024, 1025, 2047, 2048, 2049]


def _lanes(v, op):
    """The 32-lane order of simd/reduce.hpp over one run v (float64 values), op 'sum' or 'prod'."""
    n = v.size
    if n < 32:
        r = 0.0 if op == "sum" else 1.0
        for x in v:
            r = r + x if op == "sum" else r * x
        return r
    full = n // 32 * 32
    s = np.zeros(32) if op == "sum" else np.ones(32)
    for b in range(0, full, 32):
        s = s + v[b:b + 32] if op == "sum" else s * v[b:b + 32]
    t = s[0]
    for x in v[full:]:
        t = t + x if op == "sum" else t * x
    s[0] = t
    w = 16
    while w >= 1:
        s[:w] = s[:w] + s[w:2 * w] if op == "sum" else s[:w] * s[w:2 * w]
        w //= 2
    return s[0]


def _rows_replay(X, op, square=False):
    X = np.ascontiguousarray(X)
    out = []
    for row in X.reshape(-1, X.shape[-1]):
        v = (row * row).astype(X.dtype) if square else row
        out.append(_lanes(v.astype(np.float64), op))
    r = np.array(out, dtype=np.float64)
    if square:
        r = np.sqrt(r.astype(X.dtype))
    return r.astype(X.dtype).reshape(X.shape[:-1] + (1,))


def _matrix(rows, n, dtype, seed=0, kind="normal"):
    rng = np.random.default_rng([seed, rows, n])
    if kind == "prod":
        return rng.uniform(0.97, 1.03, (rows, n)).astype(dtype)
    return (rng.standard_normal((rows, n)) * 3).astype(dtype)


def _check_sum_norm_prod(X, P):
    """sum and norm of X's rows, prod of P's: the replay's bits at every ISA and thread count."""
    got = every_isa_and_thread_count(lambda v: tg.sum(v, axis=-1, keepdims=True), X)
    assert got.tobytes() == _rows_replay(X, "sum").tobytes()
    got = every_isa_and_thread_count(lambda v: tg.norm(v, axis=-1, keepdims=True), X)
    assert got.tobytes() == _rows_replay(X, "sum", square=True).tobytes()
    got = every_isa_and_thread_count(lambda v: tg.prod(v, axis=-1, keepdims=True), P)
    assert got.tobytes() == _rows_replay(P, "prod").tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", LENGTHS)
def test_sum_norm_prod_rows_replay_order_every_isa(dtype, n):
    rows = 7
    X = _matrix(rows, n, dtype)
    P = _matrix(rows, n, dtype, kind="prod")
    _check_sum_norm_prod(X, P)
    got = every_isa_and_thread_count(lambda v: tg.mean(v, axis=-1), X)
    np.testing.assert_allclose(got, X.astype(np.float64).mean(axis=-1), rtol=4e-7 if dtype == np.float32 else 1e-14,
                               atol=1e-6 if dtype == np.float32 else 1e-13)
    for name in ("max", "min"):
        got = every_isa_and_thread_count(lambda v: getattr(tg, name)(v, axis=-1), X)
        assert got.tobytes() == getattr(np, name)(X, axis=-1).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,n", [(1, 1024), (1024, 1024), (129, 1000), (1000, 33), (5, 4097)])
def test_many_rows_and_strided_every_isa(dtype, rows, n):
    X = _matrix(rows, n, dtype, seed=1)
    P = _matrix(rows, n, dtype, seed=1, kind="prod")
    for M, Q in ((X, P), (X[:, ::2], P[:, ::2]), (X[::3], P[::3])):
        _check_sum_norm_prod(M, Q)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_min_rows_nan_inf_overflow_every_isa(dtype):
    """h132-rows64: max/min find a NaN from each lane's sum (a run is scanned for NaN only where a lane's
    sum is not finite), so rows with an inf but no NaN, both infinities, sums that overflow with no inf or
    NaN, and a NaN next to an inf of either sign at every lane position of the body and the tail give
    NumPy's values, the same bits on every ISA at 1 and 2 threads, through the rows kernel (many rows)."""
    rng = np.random.default_rng(11)
    big = np.finfo(dtype).max
    for n in (31, 32, 33, 64, 69, 1024, 1027):
        rows = []
        for p in range(0, n, max(1, n // 40)):
            for kind in range(6):
                x = rng.standard_normal(n).astype(dtype)
                q = (p * 7 + 3) % n
                if kind == 0:
                    x[p] = np.inf
                elif kind == 1:
                    x[p], x[q] = -np.inf, np.inf
                elif kind == 2:
                    x[:] = big * np.where(rng.random(n) < 0.5, -1, 1).astype(dtype)  # lane sums overflow
                    x[p] = big / 2
                elif kind == 3:
                    x[p], x[q] = np.nan, np.inf
                elif kind == 4:
                    x[p], x[q] = np.nan, -np.inf
                else:
                    x[p] = np.nan
                rows.append(x)
        X = np.stack(rows)
        for name in ("max", "min"):
            got = every_isa_and_thread_count(lambda v: getattr(tg, name)(v, axis=-1), X)
            want = getattr(np, name)(X, axis=-1)
            assert np.array_equal(np.isnan(got), np.isnan(want)), (n, name)
            assert np.array_equal(got[~np.isnan(want)], want[~np.isnan(want)]), (n, name)
            # one run (v.max()) and a row of softmax's shift take the same kernel
            for r in range(0, len(X), 17):
                one = getattr(tg, name)(tg.Variable(X[r])).numpy()
                assert np.array_equal(one, want[r], equal_nan=True), (n, name, r)


def test_sum_rows_specials():
    """inf, NaN, -0 and huge values in rows of every lane position: the replay's IEEE results."""
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        X = rng.standard_normal((40, 1027)).astype(dtype)
        X[1, 3] = np.inf
        X[2, 1026] = np.nan
        X[3, :] = -0.0
        X[4, 5] = np.finfo(dtype).max
        X[4, 37] = np.finfo(dtype).max
        X[5, 17] = np.inf
        X[5, 18] = -np.inf
        X[6, :] = 0.0
        X[6, 1000] = -0.0
        with np.errstate(invalid="ignore", over="ignore"):
            want_s = _rows_replay(X, "sum")
            want_n = _rows_replay(X, "sum", square=True)
        got = every_isa_and_thread_count(lambda v: tg.sum(v, axis=-1, keepdims=True), X)
        assert got.tobytes() == want_s.tobytes()
        got = every_isa_and_thread_count(lambda v: tg.norm(v, axis=-1, keepdims=True), X)
        assert got.tobytes() == want_n.tobytes()


def _mp_log_softmax(row):
    with mpmath.workdps(40):
        xs = [mpmath.mpf(float(v)) for v in row]
        ls = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
        return np.array([float(v - ls) for v in xs])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [5, 31, 33, 64, 1000, 1024, 2047, 2048, 2049])
def test_softmax_log_softmax_values_every_isa(dtype, n):
    rng = np.random.default_rng([7, n])
    X = (rng.standard_normal((3, n)) * 4).astype(dtype)
    ls = every_isa_and_thread_count(lambda v: tg.log_softmax(v, axis=-1), X)
    sm = every_isa_and_thread_count(lambda v: tg.softmax(v, axis=-1), X)
    want = np.array([_mp_log_softmax(r) for r in X])
    eps = np.finfo(dtype).eps
    # |error| of (x - m) - log s: a few roundings of numbers of the size of |x - m| + log s.
    scale = np.abs(X - X.max(axis=-1, keepdims=True)) + np.log(n) + 1
    assert np.all(np.abs(ls - want) <= 4 * eps * scale)
    np.testing.assert_allclose(sm, np.exp(want), rtol=8 * eps * (1 + np.log2(n)), atol=0)


def _vjp(fn, X, G):
    v = tg.Variable(X, requires_grad=True)
    y = fn(v)
    tg.sum(y * tg.Variable(G)).backward()
    return y.numpy(), v.grad.numpy() if hasattr(v.grad, "numpy") else np.asarray(v.grad)


def _row_sums(A):
    return np.array([tg.sum(tg.Variable(np.ascontiguousarray(r))).numpy() for r in A], dtype=A.dtype)[:, None]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [10, 63, 64, 1024, 3000])
def test_normaliser_vjps_replay_formula(dtype, n):
    """The first-order VJPs, bit for bit: log_softmax g - exp(y) * sum(g), softmax y * (g - sum(g * y))."""
    rng = np.random.default_rng([11, n])
    X = (rng.standard_normal((6, n)) * 2).astype(dtype)
    G = rng.standard_normal((6, n)).astype(dtype)
    y, g = _vjp(lambda v: tg.log_softmax(v, axis=-1), X, G)
    t = tg.exp(tg.Variable(y)).numpy()
    assert g.tobytes() == (G - t * _row_sums(G)).tobytes()
    y, g = _vjp(lambda v: tg.softmax(v, axis=-1), X, G)
    t = G * y
    assert g.tobytes() == (y * (G - _row_sums(t))).tobytes()
    # the same bits at every ISA and thread count
    for fn in (lambda v: tg.log_softmax(v, axis=-1), lambda v: tg.softmax(v, axis=-1)):
        def grad(v, fn=fn):
            return _vjp(fn, v.numpy(), G)[1]
        every_isa_and_thread_count(grad, X)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_normaliser_grads_finite_differences(name):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 70))
    G = rng.standard_normal((3, 70))
    np_fn = {"softmax": lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True),
             "log_softmax": lambda x: (x - x.max(-1, keepdims=True)) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))}[name]
    _, g = _vjp(lambda v: getattr(tg, name)(v, axis=-1), X, G)
    want = numeric_grad(lambda x: float((np_fn(x) * G).sum()), X)
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8)


def test_log_softmax_large_logits_float32():
    """(x - m) - log s, not x - (m + log s): at logits of 1e7 the answer stays (written x - m first now)."""
    X = np.array([[1e7, 1e7 + 1, 1e7 - 2] + [1e7 - 50] * 200], dtype=np.float32)
    got = every_isa_and_thread_count(lambda v: tg.log_softmax(v, axis=-1), X)
    want = _mp_log_softmax(X[0])
    assert np.all(np.abs(got[0] - want) <= 4 * np.finfo(np.float32).eps * (np.abs(X[0] - X[0].max()) + 7))
