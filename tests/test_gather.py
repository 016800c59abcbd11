"""take, take_along_axis, repeat, tile in C++ (h94-gather): values against NumPy
(random shapes, axes, indices with repeats and negatives, any integer dtype,
lists), gradients against np.add.at (repeated indices accumulate), finite
differences and the reference engine (its Python bodies over getitem /
broadcast_to), JVPs, second order, copies, and errors naming the op."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tapegrad as tg

RNG = np.random.default_rng(94)
DTYPES = [np.float32, np.float64]
INDEX_DTYPES = [np.int64, np.int32, np.int16, np.uint8, np.uint32, np.uint64]


def _var(a, grad=True):
    return tg.Variable(a, requires_grad=grad)


def _check_gather(fn, np_fn, a, w_seed=0):
    """fn(x) against np_fn(a): values (bits), dtype, a copy; the VJP against np.add.at of the positions
    np_fn reads; the JVP; the reference engine's value and gradient."""
    x = _var(a)
    y = fn(x)
    want = np_fn(a)
    assert y.shape == want.shape and y.dtype == a.dtype
    assert y.numpy().tobytes() == want.tobytes()
    if y.size:
        assert not np.shares_memory(y.numpy(), x.numpy())  # NumPy's take/repeat/tile return new arrays
    w = np.random.default_rng(w_seed).uniform(0.5, 1.5, want.shape).astype(a.dtype)
    (y * w).sum().backward()
    pos = np_fn(np.arange(a.size).reshape(a.shape))  # the flat positions read
    expected = np.zeros(a.size, dtype=np.float64)
    np.add.at(expected, pos.ravel(), w.astype(np.float64).ravel())
    np.testing.assert_allclose(x.grad, expected.reshape(a.shape), rtol=1e-6 if a.dtype == np.float32 else 1e-14)
    # forward mode: the op is linear, its JVP is the op on the tangent
    t = RNG.standard_normal(a.shape).astype(a.dtype)
    _, tangent = tg.jvp(fn, (a,), (t,))
    assert np.asarray(tangent).tobytes() == np_fn(t).tobytes()
    # the reference engine (the compositions' Python bodies)
    r = _var_ref(a)
    ry = fn(r)
    np.testing.assert_array_equal(ry.data, want)
    (ry * w).sum().backward()
    np.testing.assert_allclose(r.grad, x.grad, rtol=1e-6 if a.dtype == np.float32 else 1e-14)


def _var_ref(a):
    return tg.reference.Variable(a, requires_grad=True)


def _op(name, *args, **kwargs):
    """f(x) calling tg.<name>(x, *args, **kwargs), and tg.reference.<name> for a reference Variable."""
    def f(x):
        mod = tg.reference if isinstance(x, tg.reference.Variable) else tg
        return getattr(mod, name)(x, *args, **kwargs)
    return f


@st.composite
def shapes(draw, min_dims=0, max_dims=3):
    return tuple(draw(st.lists(st.integers(0, 4), min_size=min_dims, max_size=max_dims)))


def _array_and_axis(shape, data):
    """An array of the drawn shape and dtype, an axis (None or any valid one) and the length it indexes."""
    a = RNG.standard_normal(shape).astype(data.draw(st.sampled_from(DTYPES)))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))) if shape else None
    return a, axis, a.size if axis is None else shape[axis]


@settings(max_examples=60, deadline=None)
@given(shape=shapes(), data=st.data())
def test_take_matches_numpy(shape, data):
    a, axis, n = _array_and_axis(shape, data)
    if n == 0:
        idx = np.zeros(data.draw(shapes(0, 2)) if data.draw(st.booleans()) else (0,), dtype=np.int64)
        if idx.size:
            with pytest.raises(IndexError, match="take: index 0 is out of bounds"):
                tg.take(a, idx, axis=axis)
            return
    else:
        ishape = data.draw(shapes(0, 2))
        idx = RNG.integers(-n, n, ishape)  # repeats and negatives
    idt = data.draw(st.sampled_from(INDEX_DTYPES))
    if np.dtype(idt).kind == "u" or idt == np.int16:
        idx = np.where(idx < 0, idx + n, idx).astype(idt) if np.dtype(idt).kind == "u" else idx.astype(idt)
    as_list = data.draw(st.booleans())
    key = idx.tolist() if as_list and idx.size else idx
    # (NumPy's oracle gets intp positions: NumPy 2.0, the declared floor, refuses a uint64 index array in take)
    pos = idx.astype(np.intp)
    _check_gather(_op("take", key, axis=axis), lambda v: np.take(v, pos, axis=axis), a)
    if axis is None:
        np.testing.assert_array_equal(_var(a).take(key).numpy(), np.take(a, pos))  # the method


@settings(max_examples=60, deadline=None)
@given(shape=shapes(1, 3), data=st.data())
def test_take_along_axis_matches_numpy(shape, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    a = RNG.standard_normal(shape).astype(dtype)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    # per other axis: x's length, or 1 (broadcast); along axis any length
    ishape = tuple(data.draw(st.integers(0, 4)) if d == axis % len(shape) else
                   data.draw(st.sampled_from([s, 1])) for d, s in enumerate(shape))
    out_size = np.prod([i if d == axis % len(shape) or s == 1 else s
                        for d, (i, s) in enumerate(zip(ishape, shape))])
    if n == 0 and out_size:  # (NumPy checks only the indices it reads)
        with pytest.raises(IndexError, match="take_along_axis: index 0 is out of bounds"):
            tg.take_along_axis(a, np.zeros(ishape, dtype=np.int64), axis)
        return
    idx = RNG.integers(-n, n, ishape) if n else np.zeros(ishape, dtype=np.int64)
    idx = idx.astype(data.draw(st.sampled_from([np.int64, np.int32])))
    _check_gather(_op("take_along_axis", idx, axis), lambda v: np.take_along_axis(v, idx, axis), a)


def test_take_along_axis_broadcasts_x_too_and_axis_none():
    a = RNG.standard_normal((1, 4))
    idx = np.array([[0, 3], [1, 1], [-1, 2]])  # x's axis 0 (length 1) broadcasts to the indices' 3
    _check_gather(_op("take_along_axis", idx, 1), lambda v: np.take_along_axis(v, idx, 1), a)
    b = RNG.standard_normal((2, 3))
    _check_gather(_op("take_along_axis", np.array([5, 0, 5, -6]), None),
                  lambda v: np.take_along_axis(v, np.array([5, 0, 5, -6]), None), b)


@settings(max_examples=60, deadline=None)
@given(shape=shapes(), data=st.data())
def test_repeat_matches_numpy(shape, data):
    a, axis, n = _array_and_axis(shape, data)
    kind = data.draw(st.sampled_from(["int", "array", "list", "one"]))
    if kind == "int":
        reps = data.draw(st.integers(0, 3))
    elif kind == "one":
        reps = np.array([data.draw(st.integers(0, 3))])
    else:
        reps = RNG.integers(0, 4, n)
        reps = reps.tolist() if kind == "list" else reps.astype(data.draw(st.sampled_from([np.int64, np.int32])))
    _check_gather(_op("repeat", reps, axis=axis), lambda v: np.repeat(v, reps, axis=axis), a)


@settings(max_examples=60, deadline=None)
@given(shape=shapes(), data=st.data())
def test_tile_matches_numpy(shape, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    a = RNG.standard_normal(shape).astype(dtype)
    reps = data.draw(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), max_size=4).map(tuple),
                               st.lists(st.integers(0, 3), max_size=4)))
    _check_gather(_op("tile", reps), lambda v: np.tile(v, reps), a)


def test_special_values_keep_their_bits():
    a = np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324, 1.0])
    for dt in DTYPES:
        v = a.astype(dt)
        for got, want in ((tg.take(v, [5, 0, 1, 1]), np.take(v, [5, 0, 1, 1])), (tg.repeat(v, 2), np.repeat(v, 2)),
                          (tg.tile(v, (2, 1)), np.tile(v, (2, 1))),
                          (tg.take_along_axis(v, np.array([2, -1]), 0), np.take_along_axis(v, np.array([2, -1]), 0))):
            assert got.dtype == dt and got.numpy().tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("f", [
    lambda x: tg.take(x, [[0, -1], [2, 2]], axis=1),
    lambda x: tg.take(x, [3, 3, 0]),
    lambda x: tg.take_along_axis(x, np.array([[1, 1, 0], [2, 0, 0]]), 1),
    lambda x: tg.repeat(x, [2, 0, 1], axis=1),
    lambda x: tg.repeat(x, 2, axis=0),
    lambda x: tg.repeat(x, 3),
    lambda x: tg.tile(x, (2, 1, 2)),
], ids=["take-axis", "take-flat", "take_along", "repeat-array", "repeat-int", "repeat-flat", "tile"])
def test_gradients_against_finite_differences_to_second_order(f, dtype):
    a = RNG.standard_normal((2, 3)).astype(dtype)
    # second order: the first-order gradient recorded (create_graph) is differentiated again; f * f is not linear
    assert tg.gradcheck(lambda x: f(x) * f(x), a.astype(np.float64), order=2)
    assert tg.gradcheck(f, a.astype(np.float64))


def test_create_graph_second_derivative_accumulates_repeats():
    a = np.array([1.0, 2.0, 3.0])
    x = _var(a)
    y = tg.take(x, [0, 0, 2])
    g = tg.grad(lambda v: (tg.take(v, [0, 0, 2]) ** 3).sum())(a)
    np.testing.assert_allclose(np.asarray(g), [6.0, 0.0, 27.0])
    h = tg.hessian(lambda v: (tg.take(v, [0, 0, 2]) ** 3).sum(), a)
    np.testing.assert_allclose(np.asarray(h), np.diag([12.0, 0.0, 18.0]))
    assert y.shape == (3,)


def test_0d_inputs_empty_indices_and_float32():
    s = np.float32(2.5)
    for got, want in ((tg.take(s, 0), np.take(s, 0)), (tg.take(s, [0, 0]), np.take(s, [0, 0])),
                      (tg.repeat(np.array(s), 3), np.repeat(np.array(s), 3)),
                      (tg.tile(np.array(s), ()), np.tile(np.array(s), ())),
                      (tg.tile(np.array(s), 2), np.tile(np.array(s), 2)),
                      (tg.take(np.arange(3.0, dtype=np.float32), []), np.take(np.arange(3.0, dtype=np.float32), [])),
                      (tg.take(np.ones((2, 3)), np.zeros((0, 2), np.int64), axis=1),
                       np.take(np.ones((2, 3)), np.zeros((0, 2), np.int64), axis=1))):
        assert got.shape == np.shape(want) and got.dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(got.numpy(), want)
    x = _var(np.arange(3.0, dtype=np.float32))
    tg.take(x, np.array([], np.int64)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros(3, np.float32))


def test_copies_even_when_nothing_repeats():
    x = _var(np.arange(6.0).reshape(2, 3), grad=False)
    for y in (tg.tile(x, 1), tg.tile(x, (1, 1)), tg.repeat(x, 1, axis=0), tg.repeat(x, 1), tg.take(x, [0, 1], 0)):
        assert y is not x and not np.shares_memory(y.numpy(), x.numpy())
    with tg.no_grad():
        assert not np.shares_memory(tg.tile(x, 1).numpy(), x.numpy())


@pytest.mark.parametrize("call,exc,match", [
    (lambda x: tg.take(x, [6]), IndexError, "take: index 6 is out of bounds for axis 0 with size 6"),
    (lambda x: tg.take(x, [[0, -7]]), IndexError, "take: index -7 is out of bounds for axis 0 with size 6"),
    (lambda x: tg.take(x, [3], axis=1), IndexError, "take: index 3 is out of bounds for axis 1 with size 3"),
    (lambda x: tg.take(x, [0], axis=2), ValueError, "take: axis 2 is out of bounds"),
    (lambda x: tg.take(x, [0.5]), TypeError, "take: indices must be integers, got dtype float64"),
    (lambda x: tg.take(x, tg.Variable([0.0])), TypeError, "take: indices must be integers, got a Variable"),
    (lambda x: tg.take(x, 2**64), ValueError, "take: indices 18446744073709551616 is out of range"),
    (lambda x: tg.take(x, np.array([2**63 + 1], np.uint64)), IndexError, "take: indices .* out of range"),
    (lambda x: tg.take_along_axis(x, np.array([[3]]), 1), IndexError,
     "take_along_axis: index 3 is out of bounds for axis 1 with size 3"),
    (lambda x: tg.take_along_axis(x, np.array([1]), 1), ValueError,
     "take_along_axis: indices and x must have the same number of dimensions"),
    (lambda x: tg.take_along_axis(x, np.array([[0, 1, 2, 0]]), 0), IndexError, "take_along_axis: shape mismatch"),
    (lambda x: tg.take_along_axis(x, np.array([[1.0]]), 1), TypeError, "take_along_axis: indices must be integers"),
    (lambda x: tg.take_along_axis(x, np.array([[1]]), None), ValueError, "take_along_axis: with axis=None"),
    (lambda x: tg.repeat(x, -1), ValueError, "repeat: repeats may not contain negative values"),
    (lambda x: tg.repeat(x, [1, -1], axis=0), ValueError, "repeat: repeats may not contain negative values"),
    (lambda x: tg.repeat(x, [1, 2], axis=1), ValueError, r"repeat: repeats of shape \(2,\) do not broadcast"),
    (lambda x: tg.repeat(x, 2, axis=-3), ValueError, "repeat: axis -3 is out of bounds"),
    (lambda x: tg.repeat(x, "2"), TypeError, "repeat: repeats must be integers"),
    (lambda x: tg.tile(x, -1), ValueError, "tile: negative dimensions are not allowed"),
    (lambda x: tg.tile(x, 2.0), TypeError, "tile: reps must be an int"),
    (lambda x: tg.tile(x, (2, "a")), TypeError, "tile: reps must contain only ints"),
])
def test_errors_name_the_op_the_index_and_the_axis(call, exc, match):
    with pytest.raises(exc, match=match):
        call(tg.Variable(np.arange(6.0).reshape(2, 3)))


def test_numpy_dispatch_and_methods_reach_the_kernels():
    a = RNG.standard_normal((3, 4))
    x = tg.Variable(a)
    for got, want in ((np.take(x, [1, -1], axis=1), np.take(a, [1, -1], axis=1)), (x.take([0, 11]), a.take([0, 11])),
                      (np.repeat(x, [1, 0, 2], axis=0), np.repeat(a, [1, 0, 2], axis=0)),
                      (x.repeat(2, axis=1), a.repeat(2, axis=1)), (np.tile(x, (2, 1)), np.tile(a, (2, 1))),
                      (np.take_along_axis(x, np.argsort(a, 1), 1), np.take_along_axis(a, np.argsort(a, 1), 1))):
        assert isinstance(got, tg.Variable)
        np.testing.assert_array_equal(got.numpy(), want)


def test_results_at_two_threads_are_the_same_bits():
    a = RNG.standard_normal(300_000)
    idx = RNG.integers(-a.size, a.size, 200_000)
    w = RNG.standard_normal(200_000)
    outs, before = [], tg.get_num_threads()
    try:
        for threads in (1, 2):
            tg.set_num_threads(threads)
            x = _var(a)
            (tg.take(x, idx) * w).sum().backward()
            outs.append((tg.take(a, idx).numpy().tobytes(), x.grad.tobytes()))
    finally:
        tg.set_num_threads(before)
    assert outs[0] == outs[1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((5,), None), ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), 1), ((2, 0, 3), 2)])
def test_repeat_by_one_count_is_the_same_recorded_or_not(shape, axis, dtype):
    # repeat by one count: one copy loop, its own rule (the VJP sums the r copies); recorded or not, the same bits
    a = RNG.standard_normal(shape).astype(dtype)
    for r in (0, 1, 2, 3):
        plain = tg.repeat(a, r, axis=axis)
        x = _var(a)
        recorded = tg.repeat(x, r, axis=axis)
        assert recorded.grad_fn is not None and plain.grad_fn is None
        assert plain.numpy().tobytes() == recorded.numpy().tobytes() == np.repeat(a, r, axis=axis).tobytes()
        with tg.no_grad():
            assert tg.repeat(x, r, axis=axis).numpy().tobytes() == plain.numpy().tobytes()
    v = tg.Variable(np.arange(12.0).reshape(3, 4))[:, ::2]  # a strided view
    np.testing.assert_array_equal(tg.repeat(v, 2, axis=1).numpy(), np.repeat(v.numpy(), 2, axis=1))


@pytest.mark.parametrize("r,axis", [(2, 1), (3, 0), (0, 1), (2, None)])
def test_repeat_by_one_count_jacobians_both_modes(r, axis):
    # the full Jacobian (batched VJPs / JVPs through the rule) is the 0/1 matrix of the positions read
    a = RNG.standard_normal((2, 3))
    f = lambda v: tg.repeat(v, r, axis=axis)  # noqa: E731
    pos = np.repeat(np.arange(6).reshape(2, 3), r, axis=axis).ravel()
    want = np.zeros((pos.size, 6))
    want[np.arange(pos.size), pos] = 1.0
    for mode in ("reverse", "forward"):
        J = np.asarray(tg.jacobian(f, a, mode=mode))
        np.testing.assert_array_equal(J.reshape(pos.size, 6), want)
