"""round(x, decimals) as one core call (_core._round, cpp/src/simd/round.cpp): NumPy's bits at every decimals
(rint(x * 10^d) / 10^d for d >= 0, rint(x / 10^-d) * 10^-d for d < 0, 10^d NumPy's power_of_ten), in every ISA
build and thread count; derivative 0 with the result on the graph; the method, NumPy's dispatch and the errors.
Also: norm(x) of a 3-d x (the 2-norm of all elements, as np.linalg.norm) and argmax/argmin's keepdims check."""
import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core

from helpers import supported_isas

DECIMALS = [0, 1, -1, 2, -2, 3, -3, 5, -5, 7, 8, 9, 10, -9, -10, 15, 16, 17, 22, 23, 24, 30, 37, 38, 39, 40, 45,
            -15, -22, -23, -30, -37, -38, -39, -40, -45, 100, 200, 292, 300, 307, 308, 309, 310, 320, 330, 400,
            -100, -300, -307, -308, -309, -310, -330, -400, 2**31 - 1, -(2**31 - 1), -(2**31)]


def _inputs(dtype, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    mags = 10.0 ** rng.uniform(-12, 40 if dtype == np.float32 else 300, n)
    x = (rng.choice([-1, 1], n) * mags)
    x = np.clip(x, -np.finfo(dtype).max, np.finfo(dtype).max).astype(dtype)
    halves = (rng.integers(-10**6, 10**6, 500) + 0.5) / 10.0 ** rng.integers(0, 6, 500)  # ties at many scales
    ints = rng.integers(-10**6, 10**6, 200).astype(np.float64) * 10.0 ** rng.integers(-3, 5, 200)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 0.5, -0.5, 1.5, 2.5, -2.5, 0.125, 1e-300, -1e-300, 5e-324,
               np.finfo(dtype).max, -np.finfo(dtype).max, np.finfo(dtype).tiny, 1.0049999999999999, 0.285,
               123456.789, 2.675, 1.005]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.concatenate([x, halves.astype(dtype), ints.astype(dtype), np.array(special, dtype)])


def _same_bits(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    u = np.uint32 if want.dtype == np.float32 else np.uint64
    bad = np.flatnonzero(got[~nan].view(u) != want[~nan].view(u))
    assert bad.size == 0, (got[~nan][bad[:5]], want[~nan][bad[:5]])


# NumPy 2.0 (the declared floor) crashes on np.round(x, -2**31) (it negates decimals); NumPy 2.4 gives there
# exactly its bits at -(2**31 - 1) (10^d is inf either way; checked on this test's inputs), so older NumPys are
# asked for those.
_NP_CRASHES_AT_INT_MIN = tuple(int(p) for p in np.__version__.split(".")[:2]) < (2, 4)


def _np_round(x, d):
    if d == -(2**31) and _NP_CRASHES_AT_INT_MIN:
        d = -(2**31 - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.round(x, d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", DECIMALS)
def test_numpy_bits(dtype, d):
    x = _inputs(dtype)
    _same_bits(tg.round(tg.Variable(x), d).data, _np_round(x, d))
    _same_bits(tg.Variable(x).round(d).data, _np_round(x, d))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_bits_every_decimals(dtype):
    """Every decimals from -330 to 330 on values around each scale."""
    rng = np.random.default_rng(1)
    for d in range(-330, 331):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = (rng.standard_normal(64) * 10.0 ** np.clip(rng.uniform(-d - 3, -d + 3, 64), -320, 300)).astype(dtype)
        _same_bits(tg.round(tg.Variable(x), decimals=d).data, _np_round(x, d))


@pytest.mark.usefixtures("restore_isa_and_threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_every_isa_and_thread_count(dtype):
    x = np.resize(_inputs(dtype), 600_007)  # several threads' chunks and a vector tail
    for d in (2, -3, 0, 40, -400):
        want = _np_round(x, d)
        for isa in supported_isas():
            _core._set_isa(isa)
            for threads in (1, 2, 3):
                tg.set_num_threads(threads)
                _same_bits(tg.round(tg.Variable(x), d).data, want)


@pytest.mark.parametrize("shape", [(), (1,), (16,), (3, 5), (0,), (2, 0, 3)])
def test_shapes_and_views(shape):
    x = np.random.default_rng(2).standard_normal(shape) * 100
    for d in (0, 1, -1):
        got = tg.round(tg.Variable(x), d)
        assert isinstance(got, tg.Variable) and got.shape == np.shape(x)
        _same_bits(got.data, _np_round(x, d))
    m = tg.Variable(np.random.default_rng(3).standard_normal((6, 8)) * 100)
    v = m[::2, 1::3].T  # a strided view
    _same_bits(tg.round(v, 2).data, _np_round(m.data[::2, 1::3].T, 2))


@pytest.mark.parametrize("d", [0, 2, -1])
def test_derivative_zero_on_the_graph(d):
    x0 = np.array([1.234, -5.678, 2.5, 0.0])
    x = tg.Variable(x0, requires_grad=True)
    y = tg.round(x, d)
    assert y.requires_grad and y.grad_fn is not None
    (y * 3.0).sum().backward()
    assert np.array_equal(x.grad.data, np.zeros(4))
    g = tg.grad(lambda v: tg.sum(v.round(d) * v))(tg.Variable(x0))  # d(round(v) v) = round(v), not None
    np.testing.assert_array_equal(g.data, np.round(x0, d))
    J = tg.jacobian(lambda v: tg.round(v, d), tg.Variable(x0))
    assert np.array_equal(np.asarray(getattr(J, "data", J)), np.zeros((4, 4)))
    H = tg.hessian(lambda v: tg.sum(tg.round(v, d) * v), tg.Variable(x0))  # second order through the zeros
    assert np.array_equal(np.asarray(getattr(H, "data", H)), np.zeros((4, 4)))


def test_reference_engine_agrees():
    x = _inputs(np.float64, n=300)
    for d in (0, 3, -2):
        with warnings.catch_warnings():  # (the reference engine's body is np.round: its overflow warnings)
            warnings.simplefilter("ignore")
            ref = tg.reference.round(tg.reference.Variable(x), d).data
        _same_bits(ref, tg.round(tg.Variable(x), d).data)


def test_numpy_dispatch():
    x = tg.Variable(np.array([1.2345, -2.5, 0.125]), requires_grad=True)
    for fn in (np.round, np.around):
        for args, kw in (((), {}), ((2,), {}), ((), {"decimals": -1})):
            r = fn(x, *args, **kw)
            assert isinstance(r, tg.Variable)
            _same_bits(r.data, np.round(x.data, *args, **kw))


def test_signature_and_method():
    import inspect
    assert str(inspect.signature(tg.round)) == "(x, decimals=0)"
    assert tg.round is _core._round and vars(tg.Variable)["round"] is _core._round_method  # one C call each
    assert tg.round(tg.Variable(np.ones(2), requires_grad=True), 2).grad_fn.name == "round"
    x = tg.Variable(np.array([0.15, 2.25], dtype=np.float32))
    _same_bits(x.round(decimals=1).data, np.round(x.data, 1))
    _same_bits(x.round().data, np.rint(x.data))
    _same_bits(tg.round(x.data.tolist(), 1).data, np.round(np.array([0.15, 2.25]), 1))  # array-likes: float64


@pytest.mark.parametrize("bad", [1.5, "2", None, [1], True])
def test_non_integer_decimals(bad):
    x = tg.Variable(np.ones(3))
    with pytest.raises(TypeError, match="round"):
        tg.round(x, bad)
    with pytest.raises(TypeError, match="round"):
        x.round(bad)


def test_decimals_out_of_range():
    x = tg.Variable(np.ones(3))
    for d in (2**31, -(2**31) - 1, 2**70):
        with pytest.raises((ValueError, OverflowError), match="round"):
            tg.round(x, d)
    _same_bits(tg.round(x, np.int64(2)).data, np.round(x.data, 2))  # NumPy integers are ints


# ----- norm(x) of any ndim, argmax/argmin's keepdims ----------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 1, 3, 2), (3, 0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_norm_flattens_any_ndim(shape, keepdims):
    x0 = np.random.default_rng(4).standard_normal(shape)
    want = np.linalg.norm(x0, keepdims=keepdims)
    for engine in (tg, tg.reference):
        x = engine.Variable(x0, requires_grad=True)
        n = engine.norm(x, keepdims=keepdims)
        assert n.shape == np.shape(want)
        np.testing.assert_allclose(n.data, want, rtol=1e-14)
        engine.sum(n).backward()
        np.testing.assert_allclose(x.grad.data, x0 / np.linalg.norm(x0) if x0.size else x0, rtol=1e-13)


def test_norm_3d_other_ords_still_refused():
    x = tg.Variable(np.ones((2, 3, 4)))
    for ord_ in (2, "fro", 1):
        with pytest.raises(ValueError, match="norm"):
            tg.norm(x, ord=ord_)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_keepdims_checked(name):
    x0 = np.array([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    x = tg.Variable(x0)
    for bad in ("x", None, 1.0, [1]):
        with pytest.raises(TypeError, match=f"{name}: keepdims must be a bool"):
            getattr(tg, name)(x, axis=1, keepdims=bad)
        with pytest.raises(TypeError, match=f"{name}: keepdims must be a bool"):
            getattr(x, name)(axis=1, keepdims=bad)
        with pytest.raises(TypeError, match=f"{name}: keepdims must be a bool"):
            getattr(tg.reference, name)(tg.reference.Variable(x0), axis=1, keepdims=bad)
    for ok in (True, False, 1, 0, np.True_):
        want = getattr(np, name)(x0, axis=1, keepdims=bool(ok))
        assert np.array_equal(getattr(tg, name)(x, axis=1, keepdims=ok), want)
        assert np.array_equal(getattr(x, name)(axis=1, keepdims=ok), want)
