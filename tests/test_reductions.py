"""The reduction kernels (cpp/src/kernels/reductions.cpp): sum, mean, max, min and the stable
normalisers (logsumexp, softmax, log_softmax) on their fast layouts (reduced axes trailing:
rows of contiguous runs, threaded over rows; a total reduction in fixed chunks) and on the
general path, against NumPy, across instruction sets and thread counts (the same bits), and
their first-order backward kernels against the reference engine and finite differences.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core
from helpers import numeric_grad, reference_engine, with_threads
from test_kernels_fastpaths import ISAS

DTYPES = [np.float32, np.float64]
# Run lengths around the vector loop's step (16 floats, 8 doubles) and the chunk sizes
# (2048-element exp pieces, 65536-element chunks of a total reduction, threaded from 2x).
LENGTHS = [1, 3, 15, 16, 17, 33, 2047, 2049, 131071, 131073, 300001]


def _np_logsumexp(x, axis):
    x = x.astype(np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        return np.squeeze(np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m, axis=axis)


def _np_softmax(x, axis):
    x = x.astype(np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    with np.errstate(invalid="ignore"):
        return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", LENGTHS)
def test_max_min_of_a_run_match_numpy_with_nan_and_inf_anywhere(n, dtype):
    """The vectorized max/min: exact, a NaN at any position (vector body or scalar tail) gives NaN,
    +-inf are ordinary values."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(dtype)
    v = tg.Variable(x)
    assert tg.max(v).item() == x.max() and tg.min(v).item() == x.min()
    for pos in sorted({0, n // 2, n - 1}):
        y = x.copy()
        y[pos] = np.inf
        assert tg.max(tg.Variable(y)).item() == np.inf and tg.min(tg.Variable(y)).item() == y.min()
        y[pos] = -np.inf
        assert tg.min(tg.Variable(y)).item() == -np.inf and tg.max(tg.Variable(y)).item() == y.max()
        y[pos] = np.nan
        assert np.isnan(tg.max(tg.Variable(y)).item()) and np.isnan(tg.min(tg.Variable(y)).item())
        assert np.isnan(tg.max(tg.Variable(y[None, :]), axis=-1).numpy()).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((4, 4), -1), ((32, 32), -1), ((7, 33), 1), ((3, 5, 17), (1, 2)),
                                        ((3, 5, 17), 0), ((3, 5, 17), 1), ((3, 1, 17), (1, 2)), ((6, 129), None),
                                        ((1, 4097), 1), ((2, 3), ()), ((5,), 0), ((), None)])
def test_reductions_match_numpy_on_every_layout(shape, axis, dtype):
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    if x.size > 4:
        x.reshape(-1)[::5] = x.reshape(-1)[1]  # ties
    v = tg.Variable(x)
    for name in ("max", "min"):
        np.testing.assert_array_equal(getattr(tg, name)(v, axis=axis).numpy(), getattr(np, name)(x, axis=axis))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(tg.sum(v, axis=axis).numpy(), x.astype(np.float64).sum(axis=axis), rtol=tol, atol=tol)
    np.testing.assert_allclose(tg.mean(v, axis=axis).numpy(), x.astype(np.float64).mean(axis=axis), rtol=tol, atol=tol)
    if axis != ():
        np.testing.assert_allclose(tg.logsumexp(v, axis=axis).numpy(), _np_logsumexp(x, axis), rtol=tol, atol=tol)
    if isinstance(axis, int):
        np.testing.assert_allclose(tg.softmax(v, axis=axis).numpy(), _np_softmax(x, axis), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_of_non_contiguous_views(dtype):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((40, 66)).astype(dtype)
    v = tg.Variable(base)
    for view, arr in ((v.T, base.T), (v[::2, 1::3], base[::2, 1::3]), (v[:, ::-1], base[:, ::-1])):
        for axis in (None, 0, -1):
            np.testing.assert_array_equal(tg.max(view, axis=axis).numpy(), arr.max(axis=axis))
            np.testing.assert_array_equal(tg.min(view, axis=axis).numpy(), arr.min(axis=axis))
            np.testing.assert_allclose(tg.sum(view, axis=axis).numpy(), arr.astype(np.float64).sum(axis=axis),
                                       rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-5)
        np.testing.assert_allclose(tg.logsumexp(view, axis=-1).numpy(), _np_logsumexp(arr, -1), rtol=1e-6)
        np.testing.assert_allclose(tg.softmax(view, axis=-1).numpy(), _np_softmax(arr, -1), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(tg.log_softmax(view, axis=-1).numpy(), np.log(_np_softmax(arr, -1)),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_axes(dtype):
    x = np.zeros((3, 0), dtype)
    v = tg.Variable(x)
    np.testing.assert_array_equal(tg.sum(v, axis=-1).numpy(), np.zeros(3))
    np.testing.assert_array_equal(tg.logsumexp(v, axis=-1).numpy(), np.full(3, -np.inf))
    assert tg.softmax(v, axis=-1).shape == (3, 0) and tg.log_softmax(v, axis=-1).shape == (3, 0)
    assert tg.max(v, axis=0).shape == (0,)
    for name in ("max", "min"):
        with pytest.raises(ValueError, match=f"{name}: zero-size reduction along axis 1 of shape \\(3, 0\\)"):
            getattr(tg, name)(v, axis=-1)
        with pytest.raises(ValueError, match=f"{name}: zero-size reduction"):
            getattr(tg, name)(v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalisers_with_nan_inf_rows(dtype):
    x = np.array([[1.0, 2.0, 3.0], [np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0], [-np.inf] * 3, [1e30, 1e30, 0.0]],
                 dtype)
    v = tg.Variable(x)
    with np.errstate(all="ignore"):
        want_lse = _np_logsumexp(x, -1)
        want_p = _np_softmax(x, -1)
    np.testing.assert_allclose(tg.logsumexp(v, axis=-1).numpy(), want_lse, rtol=1e-6)
    np.testing.assert_allclose(tg.softmax(v, axis=-1).numpy(), want_p, rtol=1e-6)
    rows = x[[0, 4]].astype(np.float64)
    shifted = rows - rows.max(axis=-1, keepdims=True)
    want_lp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(tg.log_softmax(v, axis=-1).numpy()[[0, 4]], want_lp, rtol=1e-6)
    assert np.isnan(tg.logsumexp(tg.Variable(x[1])).item())
    assert tg.logsumexp(tg.Variable(x[2])).item() == np.inf
    assert tg.logsumexp(tg.Variable(x[3])).item() == -np.inf


# One large and several small cases per op: rows (threaded over rows), one long run (fixed chunks),
# the general path (a leading axis); each with a NaN and with ties.
BIG_CASES = [((1024, 1024), -1), ((300001,), None), ((2, 140000), -1), ((600, 1000), 0), ((5, 33), -1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", BIG_CASES)
def test_same_bits_every_isa_and_thread_count(shape, axis, dtype, restore_isa_and_threads):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    flat = x.reshape(-1)
    flat[7] = flat[3]
    w = rng.standard_normal(shape).astype(dtype)
    norm_axis = -1 if axis is None else axis

    def run():
        out = []
        for name in ("sum", "mean", "max", "min", "logsumexp"):
            v = tg.Variable(x, requires_grad=True)
            r = getattr(tg, name)(v, axis=axis)
            (r * tg.Variable(np.ones(r.shape, dtype))).sum().backward()
            out += [r.numpy(), v.grad]
        for name in ("softmax", "log_softmax"):
            v = tg.Variable(x, requires_grad=True)
            r = getattr(tg, name)(v, axis=norm_axis)
            (r * tg.Variable(w)).sum().backward()
            out += [r.numpy(), v.grad]
        nan = x.copy()
        nan.reshape(-1)[-2] = np.nan
        out += [tg.max(tg.Variable(nan), axis=axis).numpy(), tg.min(tg.Variable(nan), axis=axis).numpy()]
        return out

    results = {}
    for isa in ISAS:
        _core._set_isa(isa)
        for threads in (1, 2):
            results[(isa, threads)] = with_threads(threads, run)
    first = results[(ISAS[0], 1)]
    for key, got in results.items():
        for i, (a, b) in enumerate(zip(first, got)):
            np.testing.assert_array_equal(a, b, err_msg=f"{key} output {i}")
    np.testing.assert_array_equal(first[4], x.max(axis=axis))
    np.testing.assert_array_equal(first[6], x.min(axis=axis))
    assert np.isnan(first[-1]).any() and np.isnan(first[-2]).any()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(first[0], x.astype(np.float64).sum(axis=axis), rtol=tol, atol=tol * np.sqrt(x.size))
    np.testing.assert_allclose(first[8], _np_logsumexp(x, axis), rtol=tol)
    np.testing.assert_allclose(first[10], _np_softmax(x, norm_axis), rtol=tol, atol=tol * 1e-3)


def _grads(m, name, x, axis, w):
    v = m.Variable(x, requires_grad=True)
    r = getattr(m, name)(v, axis=axis)
    (r * m.Variable(w)).sum().backward()
    return np.asarray(v.grad)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp", "softmax", "log_softmax"])
@pytest.mark.parametrize("shape,axis", [((4, 4), -1), ((6, 5), 0), ((3, 4, 5), -1), ((2, 2050), -1), ((17,), None)])
def test_gradients_engine_vs_reference_vs_finite_differences(name, shape, axis):
    if name in ("softmax", "log_softmax") and axis is None:
        axis = -1
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = rng.standard_normal(shape) * 2
    if name in ("max", "min"):  # ties: the gradient splits evenly (the spec's rule)
        x.reshape(-1)[1] = x.reshape(-1)[0] = (x.max() + 1) if name == "max" else (x.min() - 1)
    out_shape = getattr(tg, name)(tg.Variable(x), axis=axis).shape
    w = rng.standard_normal(out_shape)
    got = _grads(tg, name, x, axis, w)
    ref = _grads(reference_engine(), name, x, axis, w)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)
    if name in ("max", "min"):
        if axis == 0:  # elements 0 and 1 are in different columns: no tie there
            return
        flat_w = np.broadcast_to(w if axis is None else np.expand_dims(w, axis), shape).reshape(-1)
        assert got.reshape(-1)[0] == got.reshape(-1)[1] == flat_w[0] / 2
        return
    if x.size <= 100:
        fd = numeric_grad(lambda a: float((getattr(np, "sum")(getattr(tg, name)(tg.Variable(a), axis=axis).numpy() * w))), x)
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extremum_gradient_with_nan_is_nan_and_ties_split(dtype):
    x = np.array([[1.0, 3.0, 3.0, 3.0], [np.nan, 1.0, 2.0, 0.0]], dtype)
    for m in (tg, reference_engine()):
        v = m.Variable(x, requires_grad=True)
        with np.errstate(invalid="ignore"):  # the reference's 0/0 for the NaN row
            m.max(v, axis=-1).sum().backward()
        g = np.asarray(v.grad)
        np.testing.assert_allclose(g[0], [0, 1 / 3, 1 / 3, 1 / 3], rtol=1e-7)
        assert np.isnan(g[1]).all()


@pytest.mark.parametrize("name", ["max", "softmax", "log_softmax", "logsumexp"])
def test_second_order_still_goes_through_the_composite_rules(name):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6))
    w = rng.standard_normal((3, 6) if name in ("softmax", "log_softmax") else (3,))

    def f(m):
        def g(a):
            return (getattr(m, name)(a, axis=-1) * m.Variable(w)).sum()
        return g

    got = tg.hessian(f(tg), x)
    ref = reference_engine().hessian(f(reference_engine()), x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-10, atol=1e-12)


def _long_runs(rng, n, dtype):
    """Runs of n elements for the long-run paths: uniform in [-30, 30], a NaN, a +inf, all -inf."""
    cases = [rng.uniform(-30, 30, n).astype(dtype)]
    for bad in (np.nan, np.inf):
        y = rng.standard_normal(n).astype(dtype)
        y[200000] = bad
        cases.append(y)
    return cases + [np.full(n, -np.inf, dtype)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of_a_long_run_combines_its_chunks(dtype):
    """A whole-array logsumexp of >= 2 x 65536 elements shifts each 65536-element chunk by its own max
    and combines the chunks' sums rescaled to the largest max: chunks of -inf only, chunks whose maxima
    lie far apart (their sums underflow when rescaled), NaN, +inf and all -inf give the two-pass answer,
    with the same bits at 1 and 2 threads."""
    rng = np.random.default_rng(5)
    n = 300001
    cases = []
    x = rng.standard_normal(n).astype(dtype)
    x[:65536] = -np.inf                      # a first chunk that adds nothing
    x[65536:131072] -= 1000                  # far below the largest max: its rescaled sum underflows
    x[-5:] += 80                             # the largest max sits in the last, partial chunk
    cases.append(x)
    for x in cases + _long_runs(rng, n, dtype):
        got = [with_threads(t, lambda: tg.logsumexp(tg.Variable(x)).item()) for t in (1, 2)]
        assert got[0] == got[1] or (np.isnan(got[0]) and np.isnan(got[1]))
        with np.errstate(all="ignore"):
            want = _np_logsumexp(x, None)
        np.testing.assert_allclose(got[0], want, rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_one_long_run_is_threaded_over_chunks(dtype):
    """softmax / log_softmax of a 1-d array of >= 2 x 65536 elements run over fixed 65536-element chunks
    on the pool: the same bits at 1 and 2 threads, the two-pass answer, including NaN, +inf and all -inf."""
    for x in _long_runs(np.random.default_rng(6), 300001, dtype):
        got = [with_threads(t, lambda: (tg.softmax(tg.Variable(x)).numpy(), tg.log_softmax(tg.Variable(x)).numpy()))
               for t in (1, 2)]
        for a, b in zip(got[0], got[1]):
            np.testing.assert_array_equal(a, b)
        with np.errstate(all="ignore"):
            want = _np_softmax(x, -1)
            m = np.max(x.astype(np.float64))
            m = m if np.isfinite(m) else 0.0
            want_lp = (x.astype(np.float64) - m) - np.log(np.sum(np.exp(x.astype(np.float64) - m)))
        tol = 1e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(got[0][0], want, rtol=tol, atol=tol * 1e-3, equal_nan=True)
        np.testing.assert_allclose(got[0][1], want_lp, rtol=tol, atol=4 * tol * 30, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_min_zero_ties_keep_the_first_lane(dtype, restore_isa_and_threads):
    """A tie of +0 and -0 gives the zero of the first of extremum_run's 32 lanes holding it (the lanes were
    folded from lane 0; they are now combined pairwise, which alone would give lane 2's zero here), on
    every ISA, as a row of softmax's shift and as a whole-array max/min."""
    for isa in ISAS:
        _core._set_isa(isa)
        for first, second in ((0.0, -0.0), (-0.0, 0.0)):
            for fill, fn in ((-1.0, tg.max), (1.0, tg.min)):
                x = np.full(40, fill, dtype)
                x[1], x[2] = first, second
                got = fn(tg.Variable(x)).numpy()
                assert got == 0 and np.signbit(got) == np.signbit(first), (isa, fn.__name__, first)
                rows = fn(tg.Variable(np.stack([x, x])), axis=-1).numpy()
                assert np.array_equal(np.signbit(rows), [np.signbit(first)] * 2), (isa, fn.__name__, first)


def _model_sum_run(x):
    """sum_run's order (simd/reduce.hpp) in NumPy: 32 interleaved double partial sums, the tail
    into lane 0, the lanes combined pairwise (lane k += lane k + w, w = 16, 8, 4, 2, 1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 32:
        r = 0.0
        for v in x:
            r += v
        return r
    m = x.size // 32
    s = np.zeros(32)
    for row in x[: m * 32].reshape(m, 32):
        s += row
    for v in x[m * 32:]:
        s[0] += v
    w = 16
    while w >= 1:
        s[:w] = s[:w] + s[w:2 * w]
        w //= 2
    return s[0]


def _model_sum(x):
    """reduce()'s sum of one run: from 2 * 65,536 elements, chunks of 65,536 added in order."""
    if x.size < 2 * 65536:
        return _model_sum_run(x)
    acc = 0.0
    for j in range(0, x.size, 65536):
        acc += _model_sum_run(x[j:j + 65536])
    return acc


# Around the 32 lanes and the 65,536-element chunks (one chunk, the first split at 2 chunks, a tail chunk).
SUM_LENGTHS = [31, 32, 33, 63, 64, 65, 95, 1023, 1024, 1025, 1055, 131071, 131072, 131073, 131104, 196639]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SUM_LENGTHS)
def test_sum_is_the_lane_order_on_every_isa_and_thread_count(n, dtype, restore_isa_and_threads):
    # Zero-mean data with a large offset on some elements, so that any other order of the adds
    # (other lanes, a float32 partial sum, chunks split otherwise) changes the bits.
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(dtype)
    x[::7] *= dtype(1e4)
    want = _model_sum(x)
    rows = np.stack([x, x[::-1]])
    want_rows = np.array([_model_sum_run(rows[0]), _model_sum_run(rows[1])])
    for isa in ISAS:
        _core._set_isa(isa)
        for threads in (1, 2):
            got = with_threads(threads, lambda: (tg.sum(tg.Variable(x)).numpy(),
                                                  tg.sum(tg.Variable(rows), axis=-1).numpy(),
                                                  tg.mean(tg.Variable(x)).numpy()))
            key = f"{isa}, {threads} threads"
            assert got[0].tobytes() == np.asarray(want, dtype).tobytes(), key
            assert got[1].tobytes() == want_rows.astype(dtype).tobytes(), key
            mean = np.asarray(want, dtype) * np.asarray(1.0 / n, dtype)
            assert got[2].tobytes() == mean.tobytes(), key


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_of_exact_values_is_exact_on_every_isa_and_thread_count(dtype, restore_isa_and_threads):
    # Multiples of 1/8 below 2**10, with a tail after the lanes and chunks: every partial sum is
    # exact in double, so the sum is the exact one (rounded once to float32) in any order.
    n = 3 * 65536 + 37
    rng = np.random.default_rng(5)
    k = rng.integers(-8192, 8192, n)
    x = (k / 8).astype(dtype)
    exact = int(k.sum()) / 8
    for isa in ISAS:
        _core._set_isa(isa)
        for threads in (1, 2):
            got = with_threads(threads, lambda: tg.sum(tg.Variable(x)).numpy())
            assert got == dtype(exact), f"{isa}, {threads} threads"


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_min_lanes_in_registers_keep_nan_and_the_first_lanes_zero(dtype, restore_isa_and_threads):
    """extremum_run's lanes combined in registers (AVX2 / AVX-512 builds) as the plain loop does:
    a NaN at any position of the vector body or the tail gives NaN; a tie of +0 and -0 at any two
    positions gives the zero of the lower lane (position mod 32; the same lane: the earlier one)."""
    n = 64 + 5
    pairs = [(p, q) for p in range(64) for q in range(p + 1, 64)]
    for fill, fn in ((-1.0, tg.max), (1.0, tg.min)):
        x = np.full((len(pairs), n), fill, dtype)
        want = np.empty(len(pairs), bool)
        for r, (p, q) in enumerate(pairs):
            x[r, p], x[r, q] = (0.0, -0.0) if r % 2 else (-0.0, 0.0)
            first = p if (p % 32, p) < (q % 32, q) else q
            want[r] = np.signbit(x[r, first])
        nan = np.full((n, n), fill, dtype)
        nan[np.arange(n), np.arange(n)] = np.nan
        for isa in ISAS:
            _core._set_isa(isa)
            got = fn(tg.Variable(x), axis=-1).numpy()
            assert (got == 0).all() and np.array_equal(np.signbit(got), want), (isa, fn.__name__)
            assert np.isnan(fn(tg.Variable(nan), axis=-1).numpy()).all(), (isa, fn.__name__)
