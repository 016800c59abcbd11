"""Strided views (issue 17): transpose, basic indexing and broadcast_to are
O(1) views sharing their base's buffer and version counter; every other op
reads them through one contiguous copy. Values and derivatives are checked
against NumPy, the reference engine and finite differences; in-place ops
and ``v[key] = value`` write through views to the base, and a saved value
modified through a view still makes backward raise.
"""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.reference as ref

pytestmark = pytest.mark.usefixtures("restore_grad_mode")

RNG = np.random.default_rng(17)
A3 = RNG.standard_normal((4, 5, 6))

# (name, function of an array or Variable): each gives a view in both NumPy and tapegrad.
VIEWS = [
    ("T", lambda x: x.T),
    ("transpose(2,0,1)", lambda x: x.transpose(2, 0, 1)),
    ("swapaxes", lambda x: np.swapaxes(x, 0, 2)),
    ("moveaxis", lambda x: np.moveaxis(x, 0, -1)),
    ("int", lambda x: x[2]),
    ("negative int", lambda x: x[-1, 3]),
    ("slice", lambda x: x[1:-1]),
    ("strided slice", lambda x: x[::2, 1::3]),
    ("negative step", lambda x: x[::-1, :, ::-2]),
    ("None and Ellipsis", lambda x: x[None, ..., 1]),
    ("empty slice", lambda x: x[3:1]),
    ("expand_dims", lambda x: np.expand_dims(x, 1)),
    ("squeeze", lambda x: np.squeeze(x[:, :1])),
    ("broadcast_to", lambda x: np.broadcast_to(x[:, :1], (3, 4, 5, 6))),
    ("view of a view", lambda x: x.T[1:, ::-2][None, ...][..., 1:3]),
    ("reshape of a transpose", lambda x: x.T.reshape(6, 5, 2, 2)),
]
VIEW_IDS = [n for n, _ in VIEWS]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,f", VIEWS, ids=VIEW_IDS)
def test_view_values_strides_and_sharing(name, f, dtype):
    a = A3.astype(dtype)
    v = tg.Variable(a)
    got, want = f(v), f(a)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got.data, want)
    np.testing.assert_array_equal(got + 0, want)  # a kernel reading the view
    if want.size > 1 and name != "reshape of a transpose":
        # Zero-copy: the view's .data is a strided NumPy view of the base's buffer.
        assert np.shares_memory(got.data, v.data)
        assert got.data.strides == want.strides
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("name,f", VIEWS, ids=VIEW_IDS)
def test_view_gradients_three_ways(name, f):
    a = A3.copy()
    w = RNG.standard_normal(f(a).shape)

    def loss(eng):
        return lambda x: (f(x) * w).sum() + (f(x) ** 2).sum()

    gt = tg.grad(loss(tg))(a)
    gr = ref.grad(loss(ref))(a)
    np.testing.assert_allclose(gt, gr, rtol=1e-12, atol=1e-12)
    tg.gradcheck(lambda x: f(x) * 1.5, [a])  # reverse and forward mode vs finite differences
    tg.gradcheck(lambda x: (f(x) ** 3).sum(), [a], order=2)


@pytest.mark.parametrize("name,f", VIEWS, ids=VIEW_IDS)
def test_view_crosscheck_with_reference(name, f):
    tg.testing.crosscheck(lambda eng, x: eng.tanh(f(x)) * 2.0, A3, raise_on_mismatch=True)


def test_views_are_o1_and_share_the_version_counter():
    v = tg.Variable(np.zeros(1 << 20))
    for view in (v.T, v[1:-1], v[::2], v[None, ...], tg.broadcast_to(v, (2, 1 << 20))):
        assert np.shares_memory(view.data, v.data)
    b = tg.Variable(np.ones((3, 4)))
    x = tg.Variable(np.ones((4, 3)), requires_grad=True)
    loss = (x * b.T).sum()          # saves the view b.T
    with tg.no_grad():
        b[1:, 2] += 1.0             # through another view of the same buffer
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


@pytest.mark.parametrize("sym", ["+=", "-=", "*=", "/="])
def test_inplace_through_views_writes_to_the_base(sym):
    a = A3.copy()
    v = tg.Variable(a.copy())
    ops = {"+=": np.add, "-=": np.subtract, "*=": np.multiply, "/=": np.divide}
    for view_of in (lambda x: x.T, lambda x: x[1:, ::2], lambda x: x[::-1, 2], lambda x: x[None]):
        t, ta = view_of(v), view_of(a)
        before = v.data.copy()
        if sym == "+=":
            t += 2.0
        elif sym == "-=":
            t -= tg.Variable(np.full(ta.shape, 3.0))
        elif sym == "*=":
            t *= 2.0
        else:
            t /= 4.0
        operand = 3.0 if sym == "-=" else (2.0 if sym != "/=" else 4.0)
        ta[...] = ops[sym](ta, operand)
        np.testing.assert_array_equal(v.data, a)
        assert not np.array_equal(v.data, before)


def test_inplace_on_a_broadcast_view_raises():
    v = tg.Variable(np.ones(3))
    b = tg.broadcast_to(v, (4, 3))
    with pytest.raises(ValueError, match="broadcast view"):
        b += 1.0
    np.testing.assert_array_equal(v.data, np.ones(3))
    assert not b.data.flags.writeable  # as np.broadcast_to's result


def test_inplace_with_an_overlapping_view_operand():
    a = np.arange(6.0)
    v = tg.Variable(a.copy())
    t = v[1:]
    t += v[:-1]                     # NumPy buffers the overlap: so do we
    a[1:] += a[:-1].copy()
    np.testing.assert_array_equal(v.data, a)


def test_optimizer_refuses_a_view_parameter():
    w = tg.Variable(np.ones((3, 2)), requires_grad=True)
    p = w.T.detach()
    p.requires_grad = True
    (p * 2.0).sum().backward()
    with pytest.raises(ValueError, match="non-contiguous view"):
        tg.optim.SGD([p], lr=0.1).step()


@pytest.mark.parametrize("shape,perm", [((67, 45), (1, 0)), ((3, 40, 33), (2, 1, 0)), ((5, 7, 9, 3), (0, 3, 1, 2)),
                                        ((1, 130), (1, 0)), ((129, 1, 65), (2, 0, 1))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_contiguous_copy_of_transposes_and_steps(shape, perm, dtype):
    a = RNG.standard_normal(shape).astype(dtype)
    v = tg.Variable(a)
    dense = tg.Variable(np.ascontiguousarray(a.transpose(perm)))
    np.testing.assert_array_equal(tg.exp(v.transpose(perm)), tg.exp(dense))
    np.testing.assert_array_equal((v.transpose(perm)[::-3] * 1).data, a.transpose(perm)[::-3])
    # reshape of a non-contiguous view copies, as NumPy's does
    np.testing.assert_array_equal(v.transpose(perm).reshape(-1), a.transpose(perm).reshape(-1))


# ---------------------------------------------------------------------------
# v[key] = value (issue 16), both engines
# ---------------------------------------------------------------------------
KEYS = [3, -1, slice(1, 4), slice(None, None, 2), slice(None, None, -3), (1, 2), (Ellipsis, 0), (None, 1),
        (slice(1, 3), [0, 2]), np.array([0, 2, 2]), np.array([True, False, True, False, True, False])]
VALUES = {"number": 7.5, "int": 3, "array": None, "variable": None}


@pytest.mark.parametrize("engine", [tg, ref], ids=["tapegrad", "reference"])
@pytest.mark.parametrize("key", KEYS, ids=repr)
@pytest.mark.parametrize("kind", list(VALUES))
def test_setitem_matches_numpy(engine, key, kind):
    a = np.arange(36.0).reshape(6, 6)
    v = engine.Variable(a.copy())
    target_shape = a[key].shape
    row = target_shape[-1:]  # an array broadcast along the leading axes
    value = {"number": 7.5, "int": 3, "array": -np.arange(np.prod(row, dtype=int)).reshape(row) - 0.5,
             "variable": engine.Variable(np.full(target_shape, -2.0))}[kind]
    a[key] = value.data if kind == "variable" else value
    version = v._version if engine is tg else v._version[0]
    v[key] = value
    np.testing.assert_array_equal(v.data, a)
    assert (v._version if engine is tg else v._version[0]) == version + 1


@pytest.mark.parametrize("engine", [tg, ref], ids=["tapegrad", "reference"])
def test_setitem_outside_the_graph_only(engine):
    v = engine.Variable(np.zeros(4), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"no_grad.*detach|detach.*no_grad"):
        v[1] = 2.0
    with engine.no_grad():
        v[1] = 2.0
    np.testing.assert_array_equal(v.data, [0, 2, 0, 0])
    w = engine.Variable(np.zeros(4))
    with pytest.raises(RuntimeError, match="detach"):
        w[0] = engine.Variable(np.ones(()), requires_grad=True)


@pytest.mark.parametrize("engine", [tg, ref], ids=["tapegrad", "reference"])
def test_setitem_bumps_the_version_a_saved_value_checks(engine):
    c = engine.Variable(np.array([1.0, 2.0, 3.0]))
    x = engine.Variable(np.array([0.5, 0.5, 0.5]), requires_grad=True)
    loss = (x * c).sum()
    c[0] = 10.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


@pytest.mark.parametrize("engine", [tg, ref], ids=["tapegrad", "reference"])
def test_setitem_errors_are_numpys(engine):
    v = engine.Variable(np.zeros((2, 3)))
    with pytest.raises(IndexError):
        v[5] = 1.0
    with pytest.raises(ValueError):
        v[0] = np.ones(4)
    ro = np.zeros(3)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        engine.from_numpy(ro)[0] = 1.0


def test_setitem_writes_through_a_view():
    v = tg.Variable(np.zeros((3, 4)))
    t = v.T
    t[1] = 5.0
    t[2, ::2] = np.array([1.0, 2.0])
    want = np.zeros((3, 4))
    want[:, 1] = 5.0
    want[::2, 2] = [1.0, 2.0]
    np.testing.assert_array_equal(v.data, want)
    b = tg.broadcast_to(v[0], (2, 4))
    with pytest.raises(ValueError, match="broadcast view"):
        b[:, 0] = 1.0               # one element of v, twice: refused (not ambiguous writes)
    with pytest.raises(ValueError, match="read-only"):
        b[:, 0] = np.ones(2)
    b[1, 3] = 9.0                   # a single element has no overlap: written through, as in PyTorch
    assert v.data[0, 3] == 9.0
