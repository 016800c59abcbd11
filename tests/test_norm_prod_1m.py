"""norm's sum of squares in one pass and prod's float32 loop and threaded VJP (h103-reduce): the bits of the
composition they replace (sum(x * x), the one-thread VJP), at every ISA build and thread count; NumPy's values
(overflow, underflow, NaN); the gradient and Hessian at 0; prod's gradient exact at zeros on a long run."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core
from test_kernels_fastpaths import ISAS


def _arr(v):
    return np.asarray(v.data if isinstance(v, tg.Variable) else v)


def _on_every_isa_and_thread_count(run):
    before_isa, before_threads = _core._isa(), tg.get_num_threads()
    out = []
    try:
        for isa in ISAS:
            for threads in (1, 2):
                _core._set_isa(isa)
                tg.set_num_threads(threads)
                out.append(run())
    finally:
        _core._set_isa(before_isa)
        tg.set_num_threads(before_threads)
    return out


def _two_op_norm(x, axis=None, keepdims=False):
    # what norm built before h103: multiply, sum, sqrt (every sum positive here)
    return tg.sqrt(tg.sum(tg.multiply(x, x), axis=axis, keepdims=keepdims))


SHAPES = [((1 << 20,), None), ((1024, 1024), -1), ((1024, 1024), None), ((37, 1000), 1), ((5, 7, 33), -1),
          ((3, 40), 0), ((200_000,), 0), ((31,), None), ((4, 3), (0, 1))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", SHAPES)
def test_norm_same_bits_as_multiply_sum_sqrt(dtype, shape, axis):
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    kw = {} if axis is None else {"axis": axis}
    if isinstance(axis, tuple) and len(shape) != 2:
        pytest.skip("norm's tuple axis is a matrix norm")
    want = _two_op_norm(tg.Variable(x), axis=axis)
    got = tg.norm(tg.Variable(x), **kw)
    assert got.dtype == want.dtype and _arr(got).tobytes() == _arr(want).tobytes()
    ref = np.linalg.norm(x.astype(np.float64), **kw)
    np.testing.assert_allclose(_arr(got), ref, rtol=2e-6 if dtype == np.float32 else 1e-13)
    # the gradient: the bits of the composition's (x g / norm as sum's and multiply's VJPs give it)
    v1, v2 = tg.Variable(x, requires_grad=True), tg.Variable(x, requires_grad=True)
    g = np.random.default_rng(4).standard_normal(np.shape(_arr(want))).astype(dtype)
    tg.norm(v1, **kw).backward(tg.Variable(g))
    _two_op_norm(v2, axis=axis).backward(tg.Variable(g))
    assert _arr(v1.grad).tobytes() == _arr(v2.grad).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norm_same_bits_on_every_isa_and_thread_count(dtype):
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal(1 << 20).astype(dtype), rng.standard_normal((600, 1001)).astype(dtype)]

    def run():
        out = []
        for x in xs:
            for kw in ({}, {"axis": -1}):
                v = tg.Variable(x, requires_grad=True)
                y = tg.norm(v, **kw)
                y.backward(tg.Variable(np.ones(y.shape, dtype)))
                out += [_arr(y).tobytes(), _arr(v.grad).tobytes(), _arr(tg.norm(x, **kw)).tobytes()]
        return out

    results = _on_every_isa_and_thread_count(run)
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x", [[1e200, 1e200], [1e-200, 1e-200], [3e38, 3e38], [1e-30, 1e-30], [np.nan, 1.0],
                               [np.inf, 1.0], [0.0, 0.0], [-0.0, 3.0, 4.0]])
def test_norm_edge_values_as_numpy(dtype, x):
    with np.errstate(all="ignore"):
        a = np.array(x, dtype=dtype)
        want = np.linalg.norm(a)
    got = _arr(tg.norm(tg.Variable(a)))
    np.testing.assert_array_equal(got, want)  # NumPy overflows and underflows the sum of squares too


def test_norm_gradient_and_hessian_at_zero_are_zero():
    for shape, kw in (((3,), {}), ((2, 3), {"axis": -1})):
        x = np.zeros(shape)
        g = tg.grad(lambda v: tg.sum(tg.norm(v, **kw)))(x)
        assert np.array_equal(_arr(g), np.zeros(shape))
        h = tg.grad(lambda v: tg.sum(tg.grad(lambda w: tg.sum(tg.norm(w, **kw)))(v)))(x)
        assert np.array_equal(_arr(h), np.zeros(shape))


def test_norm_hessian_and_jvp_match_finite_differences():
    rng = np.random.default_rng(6)
    x, t = rng.standard_normal((3, 40)), rng.standard_normal((3, 40))
    eps = 1e-6
    grad_np = lambda u: u / np.linalg.norm(u, axis=-1, keepdims=True)  # noqa: E731
    hv = tg.grad(lambda v: tg.sum(tg.grad(lambda w: tg.sum(tg.norm(w, axis=-1)))(v) * t))(x)
    np.testing.assert_allclose(_arr(hv), (grad_np(x + eps * t) - grad_np(x - eps * t)) / (2 * eps), rtol=1e-6,
                               atol=1e-8)
    _, jt = tg.jvp(lambda w: tg.norm(w, axis=-1), (x,), (t,))
    want = (np.linalg.norm(x + eps * t, axis=-1) - np.linalg.norm(x - eps * t, axis=-1)) / (2 * eps)
    np.testing.assert_allclose(_arr(jt), want, rtol=1e-7)


# ----- prod --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prod_long_run_vjp_same_bits_at_every_thread_count_and_exact_at_zeros(dtype):
    rng = np.random.default_rng(8)
    x = rng.uniform(0.9999, 1.0001, 1 << 20).astype(dtype)
    x2 = x.copy()
    x2[123_457] = 0  # one zero: its gradient is the product of all the others, the rest 0
    x3 = x2.copy()
    x3[900_001] = 0  # two zeros: every gradient 0

    def run():
        out = []
        for a in (x, x2, x3):
            v = tg.Variable(a, requires_grad=True)
            y = tg.prod(v)
            y.backward()
            out += [_arr(y).tobytes(), _arr(v.grad).tobytes()]
        return out

    results = _on_every_isa_and_thread_count(run)
    assert all(r == results[0] for r in results)
    tg.set_num_threads(2)
    try:
        v = tg.Variable(x2, requires_grad=True)
        tg.prod(v).backward()
        g = _arr(v.grad)
    finally:
        tg.set_num_threads(1)
    others = np.prod(np.delete(x2, 123_457).astype(np.float64))
    assert np.count_nonzero(g) == 1
    np.testing.assert_allclose(g[123_457], others, rtol=1e-6 if dtype == np.float32 else 1e-12)
    v = tg.Variable(x3, requires_grad=True)
    tg.prod(v).backward()
    assert not np.any(_arr(v.grad))


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 63, 64, 65, 1000, 65536 * 2 + 17])
def test_prod_float32_in_double_lanes_matches_the_exact_product(n):
    w = 0.1 if n <= 1000 else 1e-4  # (the product of the long run stays a normal float32)
    x = np.random.default_rng(n).uniform(1 - w, 1 + w, n).astype(np.float32)
    got = _arr(tg.prod(tg.Variable(x)))
    want = np.prod(x.astype(np.float64))  # double products: within float32's half ulp (+ a few double ulps)
    assert got.dtype == np.float32
    assert abs(float(got) - want) <= 0.5 * float(np.spacing(got)) * (1 + 1e-6)
    X = np.random.default_rng(n + 1).uniform(1 - w, 1 + w, (3, n)).astype(np.float32)
    got = _arr(tg.prod(tg.Variable(X), axis=-1)).astype(np.float64)
    want = np.prod(X.astype(np.float64), axis=-1)
    assert np.all(np.abs(got - want) <= 0.5 * np.spacing(got.astype(np.float32)) * (1 + 1e-6))


@pytest.mark.parametrize("keepdims", [False, True])
def test_norm_of_a_strided_view_and_keepdims(keepdims):
    base = np.random.default_rng(9).standard_normal((300, 400)).astype(np.float32)
    for x in (base.T, base[::2, ::3]):
        got = tg.norm(tg.Variable(x), axis=-1, keepdims=keepdims)
        want = _two_op_norm(tg.Variable(x), axis=-1, keepdims=keepdims)
        assert got.shape == want.shape and _arr(got).tobytes() == _arr(want).tobytes()
