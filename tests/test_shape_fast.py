"""split, array_split, hstack, vstack, atleast_*, ravel, flatten, pad, roll, flip, copy in C++ (h95-shape):
values against NumPy (hypothesis: shapes, axes, sections), views vs copies, writes through the views,
gradients against finite differences and the reference engine (which runs _compose.py's Python bodies),
JVPs, create_graph, errors naming the op; and the C++ bodies against the Python ones over the same primitives."""
import types

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tapegrad as tg
from tapegrad import _compose

RNG = np.random.default_rng(95)
NAMES = ("ravel", "flatten", "copy", "atleast_1d", "atleast_2d", "atleast_3d", "hstack", "vstack", "split",
         "array_split", "flip", "roll", "pad")

# The Python bodies over the C++ primitives (the compositions as they were): _core without the C++ bodies.
_hidden = {"_" + n for n in NAMES}
_old_ns = types.SimpleNamespace(**{k: getattr(tg._core, k) for k in dir(tg._core) if k not in _hidden})
OLD = _compose.build(_old_ns)

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


def _arr(shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def _same(got, want):
    assert isinstance(got, tg.Variable)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
    assert got.numpy().tobytes() == np.ascontiguousarray(want).tobytes()


def test_the_functions_are_the_cpp_bodies_with_the_specs_signatures():
    import inspect
    for n in NAMES:
        f = getattr(tg, n)
        assert f is getattr(tg._core, "_" + n) and f.__name__ == n
        assert str(inspect.signature(f)) == tg._core.__compositions__[n]["signature"]
    v = tg.Variable(np.ones((2, 4)))
    for call in (lambda: np.split(v, 2), lambda: np.array_split(v, 3, 1), lambda: np.flip(v), lambda: np.roll(v, 1),
                 lambda: np.pad(v, 1), lambda: np.hstack([v, v]), lambda: np.vstack([v, v]), lambda: np.ravel(v),
                 lambda: np.copy(v), lambda: np.atleast_3d(v)):  # NumPy's functions dispatch to them
        r = call()
        assert all(isinstance(p, tg.Variable) for p in (r if isinstance(r, list) else [r]))
    for m in ("ravel", "flatten", "copy"):
        assert getattr(tg.Variable, m) is getattr(tg._core, f"_{m}_method")


# ----- values against NumPy ------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(shape=shapes.filter(lambda s: len(s) > 0), data=st.data())
def test_split_and_array_split_are_numpys(shape, data):
    a = _arr(shape)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    if data.draw(st.booleans()):
        ios = data.draw(st.integers(1, 5))
    else:
        ios = data.draw(st.lists(st.integers(-n - 2, n + 2), max_size=4))
        if data.draw(st.booleans()):
            ios = np.array(ios, dtype=np.int64)
    for name in ("split", "array_split"):
        try:
            want = getattr(np, name)(a, ios, axis)
        except ValueError:
            with pytest.raises(ValueError, match=f"^{name}: "):
                getattr(tg, name)(tg.Variable(a), ios, axis)
            continue
        got = getattr(tg, name)(tg.Variable(a), ios, axis)
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w)
        ref = getattr(tg.reference, name)(a, ios, axis)  # the Python body (NumPy's bounds too)
        assert [r.data.shape for r in ref] == [w.shape for w in want]


@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data())
def test_flip_and_roll_are_numpys(shape, data):
    a = _arr(shape, data.draw(st.sampled_from([np.float32, np.float64])))
    nd = len(shape)
    axes = st.integers(-nd, nd - 1) if nd else st.nothing()
    axis = data.draw(st.one_of(st.none(), axes, st.lists(axes, max_size=nd, unique_by=lambda i: i % nd).map(tuple))
                     if nd else st.none())
    _same(tg.flip(tg.Variable(a), axis), np.flip(a, axis))
    if nd and axis is not None and not isinstance(axis, int) and len(axis) == 0:
        axis = None
    shift = data.draw(st.one_of(st.integers(-9, 9), st.lists(st.integers(-9, 9), min_size=1, max_size=3).map(tuple)))
    if axis is not None and not isinstance(axis, int) and isinstance(shift, tuple) and len(shift) not in (1, len(axis)):
        shift = shift[0]
    rolled = tg.roll(tg.Variable(a), shift, axis)
    _same(rolled, np.roll(a, shift, axis))
    np.testing.assert_array_equal(tg.reference.roll(a, shift, axis).data, np.roll(a, shift, axis))


@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data())
def test_pad_is_numpys_for_every_pad_width_form(shape, data):
    a = _arr(shape, data.draw(st.sampled_from([np.float32, np.float64])))
    nd = len(shape)
    w = st.integers(0, 3)
    form = data.draw(st.sampled_from(["int", "pair", "one", "one_pair"] + (["per_axis", "array"] if nd else [])))
    pw = {"int": lambda: data.draw(w), "pair": lambda: (data.draw(w), data.draw(w)), "one": lambda: (data.draw(w),),
          "per_axis": lambda: tuple((data.draw(w), data.draw(w)) for _ in range(nd)),
          "one_pair": lambda: ((data.draw(w), data.draw(w)),),
          "array": lambda: np.array([[data.draw(w), data.draw(w)]] * nd, dtype=np.int64).reshape(nd, 2)}[form]()
    c = data.draw(st.sampled_from([0, 0.0, -0.0, 1.5, np.inf, np.nan, np.float32(2.5), np.array(-3.0)]))
    want = np.pad(a, pw, constant_values=c)
    _same(tg.pad(tg.Variable(a), pw, constant_values=c), want)
    _same(tg.pad(tg.Variable(a), pw, "constant", c), want)
    np.testing.assert_array_equal(tg.reference.pad(a, pw, constant_values=c).data, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stacks_atleast_ravel_flatten_copy_are_numpys(dtype):
    for shape in [(), (0,), (3,), (2, 3), (2, 3, 4), (1, 2, 1, 2)]:
        a = _arr(shape, dtype)
        x = tg.Variable(a)
        for n in ("atleast_1d", "atleast_2d", "atleast_3d"):
            _same(getattr(tg, n)(x), getattr(np, n)(a))
        _same(tg.ravel(x), np.ravel(a))
        _same(x.ravel(), a.ravel())
        _same(tg.flatten(x), a.flatten())
        _same(x.flatten(), a.flatten())
        _same(tg.copy(x), np.copy(a))
        _same(x.copy(), a.copy())
        for f in (tg.hstack, tg.vstack):
            try:
                want = getattr(np, f.__name__)([a, a * 2])
            except ValueError:
                with pytest.raises(ValueError, match=f"^{f.__name__}: "):
                    f([x, x * 2])
                continue
            _same(f([x, x * 2]), want)
            _same(f((x, a * 2)), want)
    got = tg.atleast_2d(tg.Variable(1.0), tg.Variable(np.ones(3)), tg.Variable(np.ones((2, 2))))
    assert isinstance(got, tuple) and [g.shape for g in got] == [(1, 1), (1, 3), (2, 2)]
    _same(tg.hstack([tg.Variable(np.float32(1.0)), np.ones(2)]), np.hstack([np.float32(1.0), np.ones(2)]))
    _same(tg.vstack([np.ones(3, np.float32), tg.Variable(np.ones((2, 3)))]),
          np.vstack([np.ones(3, np.float32), np.ones((2, 3))]))
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324], dtype)
    x = tg.Variable(special)
    assert tg.copy(x).numpy().tobytes() == special.tobytes()
    assert tg.flip(x).numpy().tobytes() == special[::-1].tobytes()
    assert tg.roll(x, 2).numpy().tobytes() == np.roll(special, 2).tobytes()
    assert tg.pad(x, 1, constant_values=-0.0).numpy().tobytes() == np.pad(special, 1, constant_values=-0.0).tobytes()


def test_the_cpp_bodies_give_the_python_bodies_answers():
    a = _arr((3, 4))
    x = tg.Variable(a)
    calls = [("ravel", (x,)), ("flatten", (x.T,)), ("copy", (x,)), ("atleast_3d", (x,)), ("hstack", ([x, x],)),
             ("vstack", ([x[0], x],)), ("split", (x, 2, 1)), ("array_split", (x, [1, 3, 9], -1)),
             ("flip", (x, (0, -1))), ("roll", (x, (1, -2), (0, 1))), ("roll", (x, 5)), ("pad", (x, ((1, 0), (2, 3)), "constant", 7.0))]
    for name, args in calls:
        new, old = getattr(tg, name)(*args), OLD[name](*args)
        for n, o in zip(new if isinstance(new, list) else [new], old if isinstance(old, list) else [old]):
            _same(n, o.numpy())


# ----- views and copies -----------------------------------------------------------------------------------
def test_views_share_storage_and_write_through_copies_do_not():
    a = np.arange(12.0).reshape(3, 4)
    x = tg.Variable(a.copy())
    views = {"split": tg.split(x, 2, 1)[1], "array_split": tg.array_split(x, 3)[2], "flip": tg.flip(x),
             "ravel": tg.ravel(x), "v.ravel": x.ravel(), "atleast_3d": tg.atleast_3d(x)}
    for name, v in views.items():
        assert np.shares_memory(v.data, x.data), name
    copies = {"copy": tg.copy(x), "v.copy": x.copy(), "roll": tg.roll(x, 1), "roll0": tg.roll(x, 0),
              "flatten": tg.flatten(x), "v.flatten": x.flatten(), "flatten of a view": tg.flatten(x.T),
              "pad": tg.pad(x, 1), "pad0": tg.pad(x, 0), "hstack": tg.hstack([x]), "vstack": tg.vstack([x])}
    for name, v in copies.items():
        assert not np.shares_memory(v.data, x.data), name
    assert tg.atleast_2d(x) is x and tg.atleast_1d(x) is x  # NumPy's: the array itself
    p = tg.split(x, 2, 1)[1]
    p[0, 0] = -1.0  # x[0, 2]
    f = tg.flip(x)
    f[0, 0] = -2.0  # x[2, 3]
    r = tg.ravel(x)
    r[5] = -3.0  # x[1, 1]
    want = a.copy()
    want[0, 2], want[2, 3], want[1, 1] = -1.0, -2.0, -3.0
    np.testing.assert_array_equal(x.numpy(), want)
    c = tg.copy(x)
    c[0, 0] = 99.0
    assert x.numpy()[0, 0] == 0.0


# ----- derivatives -----------------------------------------------------------------------------------------
CASES = [
    ("split1", lambda e, x: e.split(x, [1, -1], 1)[1], (3, 4)),
    ("split0", lambda e, x: e.split(x, 3)[2], (6,)),
    ("array_split", lambda e, x: e.array_split(x, 3, -1)[0], (2, 5)),
    ("flip", lambda e, x: e.flip(x, (0, 2)), (2, 3, 2)),
    ("flip_all", lambda e, x: e.flip(x), (3, 2)),
    ("roll", lambda e, x: e.roll(x, (1, -1), (0, 1)), (3, 4)),
    ("roll_flat", lambda e, x: e.roll(x, 5), (3, 4)),
    ("pad", lambda e, x: e.pad(x, ((1, 2), (0, 3)), constant_values=2.0), (2, 3)),
    ("pad_vec", lambda e, x: e.pad(x, 2), (5,)),
    ("hstack", lambda e, x: e.hstack([x, x * 2.0]), (2, 3)),
    ("vstack", lambda e, x: e.vstack([x[0], x]), (2, 3)),
    ("atleast_3d", lambda e, x: e.atleast_3d(x), (4,)),
    ("ravel", lambda e, x: e.ravel(x.T), (2, 3)),
    ("flatten", lambda e, x: e.flatten(x), (2, 3)),
    ("copy", lambda e, x: e.copy(x), (2, 3)),
]


@pytest.mark.parametrize("name,f,shape", CASES, ids=[c[0] for c in CASES])
def test_gradients_jvps_and_second_order(name, f, shape):
    a = _arr(shape)
    out_shape = np.asarray(f(tg.reference, a).data).shape
    w = _arr(out_shape)
    loss = lambda e, x: (f(e, x) ** 2 * w).sum()  # noqa: E731
    g = tg.grad(lambda x: loss(tg, x))(a)
    gr = tg.reference.grad(lambda x: loss(tg.reference, x))(a)
    np.testing.assert_allclose(np.asarray(g), np.asarray(gr), rtol=1e-13, atol=1e-14)
    # finite differences of the loss
    gn = tg.numeric.gradient(lambda x: float(np.asarray(loss(tg.reference, x).data)), a)
    np.testing.assert_allclose(np.asarray(g), np.asarray(gn), rtol=1e-5, atol=1e-6)
    # the JVP is the op on the tangent (affine: pad's constant has no tangent)
    t = _arr(shape)
    _, tan = tg.jvp(lambda x: f(tg, x), (a,), (t,))
    lin = np.asarray(f(tg.reference, t).data) - np.asarray(f(tg.reference, np.zeros(shape)).data)
    np.testing.assert_array_equal(np.asarray(tan), lin)
    # vector mode (batched seeds through the rules) and second order through create_graph
    j = tg.jacobian(lambda x: f(tg, x), a)
    jr = tg.reference.jacobian(lambda x: f(tg.reference, x), a)
    np.testing.assert_array_equal(np.asarray(j), np.asarray(jr))
    h = tg.hessian(lambda x: loss(tg, x), a)
    hr = tg.reference.hessian(lambda x: loss(tg.reference, x), a)
    np.testing.assert_allclose(np.asarray(h), np.asarray(hr), rtol=1e-12, atol=1e-13)


def test_backward_of_views_and_the_pad_vjp_is_a_slice():
    x = tg.Variable(np.arange(6.0), requires_grad=True)
    y = tg.pad(x, (2, 1), constant_values=5.0)
    assert y.grad_fn.name == "pad"
    seed = np.arange(9.0) * 10
    y.backward(seed)
    np.testing.assert_array_equal(x.grad, seed[2:-1])
    x = tg.Variable(np.arange(6.0), requires_grad=True)
    y = tg.roll(x, 2)
    assert y.grad_fn.name == "roll"
    y.backward(seed[:6])
    np.testing.assert_array_equal(x.grad, np.roll(seed[:6], -2))
    x = tg.Variable(np.arange(6.0), requires_grad=True)
    parts = tg.split(x, 3)
    (parts[0].sum() + 2 * parts[2].sum()).backward()
    np.testing.assert_array_equal(x.grad, [1, 1, 0, 0, 2, 2])


# ----- errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call,kind,match", [
    (lambda x: tg.split(x, 4), ValueError, r"^split: array split does not result in an equal division"),
    (lambda x: tg.split(x, 0), ValueError, r"^split: number of sections must be larger than 0"),
    (lambda x: tg.array_split(x, 2, axis=2), ValueError, r"^array_split: axis 2 is out of bounds .* dimension 2"),
    (lambda x: tg.array_split(x, 2.5), TypeError, r"^array_split: indices_or_sections"),
    (lambda x: tg.split(x, [1.5]), TypeError, r"^split: indices_or_sections"),
    (lambda x: tg.flip(x, 2), ValueError, r"^flip: axis 2 is out of bounds"),
    (lambda x: tg.flip(x, (0, 0)), ValueError, r"^flip: repeated axis"),
    (lambda x: tg.roll(x, (1, 2, 3), (0, 1)), ValueError, r"^roll: shift and axis differ in length"),
    (lambda x: tg.roll(x, 1, 3), ValueError, r"^roll: axis 3 is out of bounds"),
    (lambda x: tg.roll(x, 1.5), TypeError, r"^roll: shift"),
    (lambda x: tg.pad(x, -1), ValueError, r"^pad: negative pad_width"),
    (lambda x: tg.pad(x, ((1, 2), (1, 2), (1, 2))), ValueError, r"^pad: pad_width"),
    (lambda x: tg.pad(x, 1, mode="reflect"), ValueError, r"^pad: mode='reflect' is not implemented"),
    (lambda x: tg.pad(x, 1, constant_values=(1, 2)), ValueError, r"^pad: only a scalar constant_values"),
    (lambda x: tg.hstack(x), TypeError, r"^hstack: arrays must be a sequence of arrays"),
    (lambda x: tg.vstack(np.ones((2, 2))), TypeError, r"^vstack: arrays must be a sequence of arrays"),
    (lambda x: tg.vstack([]), ValueError, r"^vstack: need at least one array"),
    (lambda x: tg.hstack([x, np.ones((3, 3))]), ValueError, r"^hstack: .*\(2, 3\).*\(3, 3\)"),
    (lambda x: tg.vstack([x, np.ones(2)]), ValueError, r"^vstack: .*\(2, 3\).*\(1, 2\)"),
    (lambda x: tg.ravel(x, 1), TypeError, r"^ravel\(\): too many positional arguments"),
    (lambda x: x.copy(1), TypeError, r"^copy\(\): too many positional arguments"),
    (lambda x: tg.atleast_1d(x, axis=0), TypeError, r"atleast_1d\(\) got an unexpected keyword argument 'axis'"),
    (lambda x: tg.split(x), TypeError, r"^split\(\): missing a required argument: 'indices_or_sections'"),
])
def test_errors_name_the_op(call, kind, match):
    x = tg.Variable(np.ones((2, 3)))
    with pytest.raises(kind, match=match):
        call(x)
