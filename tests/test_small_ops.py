"""h96-small: the C++ fast paths over compositions at small sizes (tapegrad._core._fast: shape, ndim, size,
argmax, argmin, norm's 2-norm, average without weights, the six comparisons) and the raw methods v.argmax(), v.argmin(), v.tolist(),
v.detach(). Each is checked against NumPy (values, result types, NaN rules, errors) and against the
composition's own Python body (the fallback: same bits, gradients, second derivatives), and norm's and
average's gradients against finite differences."""
import inspect
import types

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg
from tapegrad import _compose, _core

FAST = sorted(_core._fast)


# _core without its fast paths: _compose.build over it gives the Python bodies alone.
_slow_ns = types.ModuleType("slow")
_slow_ns.__dict__.update({k: v for k, v in vars(_core).items() if k not in ("_fast", "_set_fallback")})
SLOW = _compose.build(_slow_ns)


def V(a, **kw):
    return tg.Variable(np.asarray(a), **kw)


def test_the_fast_functions_are_the_public_ones():
    assert set(FAST) == {"shape", "ndim", "size", "argmax", "argmin", "norm", "average", "less", "less_equal", "greater",
                         "greater_equal", "equal", "not_equal"}
    for name in FAST:
        f = getattr(tg, name)
        assert f is _core._fast[name] and f.__name__ == name
        spec = _core.__compositions__[name]
        assert str(inspect.signature(f)) == spec["signature"].replace(", /", ", /")
        assert spec["doc"] in f.__doc__
    for name in ("argmax", "argmin"):
        assert str(inspect.signature(getattr(tg.Variable, name))).endswith("axis=None, keepdims=False)")
    assert np.argmax is not tg.argmax and np.argmax(V([1.0, 3.0, 2.0])) == 1  # NumPy's name dispatches


SHAPES = [(), (1,), (16,), (4, 4), (1, 1), (2, 3, 4), (0,), (3, 0)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_ndim_size_match_numpy(shape, dtype):
    a = np.zeros(shape, dtype)
    v = tg.Variable(a)
    assert tg.shape(v) == np.shape(a) and type(tg.shape(v)) is tuple
    assert tg.ndim(v) == np.ndim(a) and type(tg.ndim(v)) is int
    assert tg.size(v) == np.size(a) and type(tg.size(v)) is int
    for ax in range(-len(shape), len(shape)):
        assert tg.size(v, ax) == np.size(a, ax) and tg.size(v, axis=ax) == np.size(a, ax)
        assert tg.size(v, np.int64(ax)) == np.size(a, ax)  # (the fallback)
    for f in ("shape", "ndim", "size"):  # non-Variables: the composition's NumPy path
        assert getattr(tg, f)(a) == getattr(np, f)(a) == getattr(tg, f)(a.tolist() if a.ndim else 0.0)
    assert v.view if False else True


def test_shape_ndim_size_errors_are_the_compositions():
    v = V(np.zeros((2, 3)))
    for bad in (2, -3, 2**70):
        with pytest.raises((ValueError, IndexError)) as fast:
            tg.size(v, bad)
        with pytest.raises(type(fast.value)) as slow:
            SLOW["size"](v, bad)
        assert str(fast.value) == str(slow.value) and str(fast.value).startswith("size:")
    for call in (lambda f: f(), lambda f: f(v, v, v), lambda f: f(v, foo=1)):
        for name in ("shape", "ndim", "size"):
            with pytest.raises(TypeError):
                call(getattr(tg, name))


def _arrays(dtype):
    elems = st.floats(-3, 3, width=32 if dtype == np.float32 else 64) | st.sampled_from([np.nan, -0.0, 0.0, 1.0])
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5), elements=elems)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_argmax_argmin_match_numpy(name, dtype, data):
    a = data.draw(_arrays(dtype))
    v = tg.Variable(a)
    axes = [None] + list(range(-a.ndim, a.ndim))
    axis = data.draw(st.sampled_from(axes))
    keepdims = data.draw(st.booleans())
    want = getattr(np, name)(a, axis=axis, keepdims=keepdims)
    for got in (getattr(tg, name)(v, axis, keepdims), getattr(tg, name)(v, axis=axis, keepdims=keepdims),
                getattr(v, name)(axis, keepdims), getattr(v, name)(axis=axis, keepdims=keepdims),
                getattr(tg, name)(tg.Variable(a.T).T, axis, keepdims)):  # (a strided view: the fallback)
        assert type(got) is type(want)
        np.testing.assert_array_equal(got, want)
        assert np.shape(got) == np.shape(want) and np.asarray(got).dtype == np.asarray(want).dtype
    if axis is None and not keepdims:
        assert type(getattr(tg, name)(v)) is np.int64 and getattr(v, name)() == want


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin_nan_ties_and_errors(name):
    f = getattr(tg, name)
    assert f(V([1.0, np.nan, 5.0, np.nan])) == 1  # the first NaN, as NumPy
    assert f(V([2.0, 2.0, 2.0])) == 0 and f(V([-0.0, 0.0])) == 0  # the first of equal ones
    m = V(np.array([[1.0, 3.0, 3.0], [np.nan, 0.0, 9.0]], np.float32))
    np.testing.assert_array_equal(f(m, 1), getattr(np, name)(m.data, 1))
    assert f(V(np.ones((2, 3)), requires_grad=True) * 2.0, 0).dtype == np.int64  # (a Variable on a graph too)
    for bad in [(V(np.zeros(0)),), (V(np.zeros((2, 0))), 1), (V(np.zeros(3)), 1), (V(np.zeros(3)), 2**70),
                (V(np.zeros(3)), 0.5)]:
        with pytest.raises(Exception) as fast:
            f(*bad)
        with pytest.raises(Exception) as slow:
            SLOW[name](*bad)
        assert type(fast.value) is type(slow.value) and str(fast.value) == str(slow.value)
        assert str(fast.value).startswith(name + ":")
    assert f([3.0, 1.0, 2.0]) == getattr(np, name)([3.0, 1.0, 2.0])  # a list: the composition's path
    big = np.random.default_rng(4).standard_normal((5000, 3))  # (NumPy's loop from 4,096 elements)
    big[7, 1] = np.nan
    for ax in (None, 0, 1):
        np.testing.assert_array_equal(f(V(big), ax), getattr(np, name)(big, ax))


NORM_CALLS = [
    ((7,), {}), ((7,), {"ord": 2}), ((7,), {"ord": 2.0}), ((3, 4), {}), ((3, 4), {"axis": -1}),
    ((3, 4), {"axis": 0, "keepdims": True}), ((2, 3, 4), {"axis": 1}), ((), {}),
    ((3, 4), {"ord": 2, "axis": 1}), ((1, 1), {"axis": -1}), ((3, 4), {"ord": 1, "axis": 1}),
    ((3, 4), {"ord": "fro"}), ((5,), {"ord": np.inf}), ((3, 4), {"axis": np.int64(1)}),
]


@pytest.mark.parametrize("shape, kw", NORM_CALLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norm_matches_numpy_and_the_composition(shape, kw, dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(shape).astype(dtype)
    if a.ndim >= 2:
        a[0] = 0.0  # a zero row: the subgradient 0 (the masked path; the other calls: all sums positive)
    got = tg.norm(tg.Variable(a), **kw)
    np.testing.assert_allclose(got.data, np.linalg.norm(a, **kw), rtol=2e-6 if dtype == np.float32 else 1e-14)
    assert got.dtype == dtype
    x = tg.Variable(a)
    y1, y2 = tg.norm(x, **kw), SLOW["norm"](x, **kw)
    assert y1.data.tobytes() == y2.data.tobytes() and y1.shape == y2.shape
    # first and second derivatives through the same primitives: the same bits
    f1 = tg.grad(lambda x: tg.sum(tg.norm(x, **kw) ** 3.0))
    f2 = tg.grad(lambda x: tg.sum(SLOW["norm"](x, **kw) ** 3.0))
    assert np.asarray(f1(x)).tobytes() == np.asarray(f2(x)).tobytes()
    h1 = tg.hessian(lambda x: tg.sum(tg.norm(x, **kw) ** 3.0), x)
    h2 = tg.hessian(lambda x: tg.sum(SLOW["norm"](x, **kw) ** 3.0), x)
    np.testing.assert_array_equal(np.asarray(h1), np.asarray(h2))


def _fd_check(f, a, eps=1e-6):
    g = tg.grad(lambda x: tg.sum(f(x)))(tg.Variable(a))
    num = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        d = np.zeros_like(a)
        d[i] = eps
        num[i] = (np.sum(f(tg.Variable(a + d)).data) - np.sum(f(tg.Variable(a - d)).data)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(g), num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kw", [{}, {"axis": -1}, {"axis": 0, "keepdims": True}, {"ord": 1, "axis": 1}])
def test_norm_gradient_vs_finite_differences(kw):
    a = np.random.default_rng(5).standard_normal((3, 4))
    _fd_check(lambda x: tg.norm(x, **kw), a)


def test_norm_subgradient_at_zero_is_zero():
    for kw in ({}, {"axis": -1}, {"ord": 2}):
        g = tg.grad(lambda x: tg.sum(tg.norm(x, **kw)))(tg.Variable(np.zeros(4)))
        np.testing.assert_array_equal(np.asarray(g), np.zeros(4))
    with pytest.raises(ValueError, match="^norm:"):  # (as NumPy's: ord=2 needs a vector or a matrix)
        tg.norm(V(np.zeros((2, 2, 2))), ord=2)
    # norm(x) of a 3-d x: the 2-norm of all elements, as np.linalg.norm (h100-small; it raised before)
    g = tg.grad(lambda x: tg.norm(x))(tg.Variable(np.zeros((2, 2, 2))))
    np.testing.assert_array_equal(np.asarray(g), np.zeros((2, 2, 2)))
    with pytest.raises(Exception, match="^norm:"):
        tg.norm(V(np.zeros(3)), axis=3)


@pytest.mark.parametrize("kw", [{}, {"axis": 1}, {"axis": 0, "weights": np.array([1.0, 2.0, 3.0])},
                                {"axis": 1, "weights": np.arange(1.0, 5.0)}])
def test_average_gradient_vs_finite_differences(kw):
    a = np.random.default_rng(7).standard_normal((3, 4))
    _fd_check(lambda x: tg.average(x, **kw), a)
    np.testing.assert_allclose(tg.average(tg.Variable(a), **kw).data, np.average(a, **kw), rtol=1e-14)
    x = tg.Variable(a)
    assert tg.average(x, **kw).data.tobytes() == SLOW["average"](x, **kw).data.tobytes()


def test_average_fast_path_keeps_the_compositions_behaviour():
    a = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    x = tg.Variable(a)
    for kw in ({}, {"axis": 0}, {"axis": -1, "keepdims": True}, {"axis": (0, 1)}, {"axis": np.int64(1)}):
        y, z = tg.average(x, **kw), SLOW["average"](x, **kw)
        assert y.dtype == z.dtype == np.float32 and y.shape == z.shape and y.data.tobytes() == z.data.tobytes()
    for bad in ({"axis": 2}, {"axis": 0.5}, {"weights": np.ones(5), "axis": 1}):
        with pytest.raises(Exception) as fast:
            tg.average(x, **bad)
        with pytest.raises(Exception) as slow:
            SLOW["average"](x, **bad)
        assert type(fast.value) is type(slow.value) and str(fast.value) == str(slow.value)
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        assert np.isnan(tg.average(tg.Variable(np.zeros(0))).data)


@pytest.mark.parametrize("shape", [(), (1,), (16,), (3, 4), (2, 0, 3), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tolist_matches_numpy(shape, dtype):
    a = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    if a.size:
        a.flat[0] = np.nan
    for v, want in ((tg.Variable(a), a), (tg.Variable(a).T, a.T), (tg.Variable(a, requires_grad=True) * 1.0, a)):
        got = v.tolist()
        assert repr(got) == repr(want.tolist())  # (the same floats, nan and -0.0 included)
    if a.ndim >= 1 and a.shape[0] > 1:
        assert repr(tg.Variable(a)[::-2].tolist()) == repr(a[::-2].tolist())
    assert type(tg.Variable(np.float32(1.5)).tolist()) is float


def test_detach_shares_the_buffer_outside_the_graph():
    x = tg.Variable(np.arange(3.0), requires_grad=True)
    y = x * 2.0
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None and type(d) is tg.Variable
    np.testing.assert_array_equal(d.data, y.data)
    with tg.no_grad():
        y[0] = 7.0
    assert d.data[0] == 7.0  # the same buffer
    assert tg.Variable(np.float32(2.0)).detach().dtype == np.float32
    with pytest.raises(TypeError):
        x.detach(1)
    with pytest.raises(TypeError):
        x.tolist(1)


@pytest.mark.parametrize("name", ["less", "less_equal", "greater", "greater_equal", "equal", "not_equal"])
def test_predicates_public_names(name):
    a = np.array([1.0, np.nan, 2.0, -0.0], np.float32)
    b = np.array([1.0, 1.0, 3.0, 0.0])
    f, want = getattr(tg, name), getattr(np, name)(a, b)
    for got in (f(V(a), V(b)), f(a=V(a), b=V(b)), f(V(a), b), f(a, V(b)), f(a, b), getattr(np, name)(V(a), V(b))):
        assert type(got) is np.ndarray and got.dtype == bool
        np.testing.assert_array_equal(got, want)
    assert type(f(V(1.0), 2.0)) is np.bool_
    with pytest.raises(TypeError, match=name):
        f(V(a))
    with pytest.raises(ValueError, match=f"^{name}:"):
        f(V(np.zeros(2)), V(np.zeros(3)))


def test_norm_special_values_as_the_composition():
    # A NaN element gives NaN, as NumPy's (the mask was s > 0 until session 17: NaN gave 0, silently).
    for a in ([np.nan, 1.0], [np.inf, 1.0], [0.0, -0.0], [1e200, 1e200], [1e-200, 0.0], [np.nan, 0.0]):
        x = tg.Variable(np.array(a))
        for kw in ({}, {"axis": 0}, {"ord": 2}):
            y, z = tg.norm(x, **kw), SLOW["norm"](x, **kw)
            assert y.data.tobytes() == z.data.tobytes()
            with np.errstate(over="ignore"):
                np.testing.assert_array_equal(y.data, np.linalg.norm(np.array(a), **kw))
                r = tg.reference.norm(tg.reference.Variable(np.array(a)), **kw)
            assert np.array_equal(r.data, y.data, equal_nan=True)
            g1 = tg.grad(lambda x: tg.norm(x, **kw))(x)
            g2 = tg.grad(lambda x: SLOW["norm"](x, **kw))(x)
            assert np.asarray(g1).tobytes() == np.asarray(g2).tobytes()
