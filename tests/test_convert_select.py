"""The one-pass kernels of where, clip and astype, and the raw conversion
paths (Variable(...)'s tp_init, from_numpy, np.asarray(v) / __array__,
v.item(), where's condition): values, dtypes and bits against NumPy at
sizes where the kernels split across threads, gradients against the
reference engine and finite differences, and that each keeps the semantics
of the general path it shortcuts (views vs copies, read-only arrays,
errors). The ops' general tests: test_ops.py, test_variable.py,
test_numpy_interop.py.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import reference as ref

pytestmark = pytest.mark.usefixtures("restore_grad_mode")

BIG = 1 << 20  # above the thread split (2 x 262,144 elements)


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _special(n, dtype, rng):
    """Normal values with NaN, +-inf, +-0 and the bounds themselves mixed in."""
    x = rng.standard_normal(n).astype(dtype)
    x[rng.integers(0, n, max(1, n // 50))] = np.nan
    x[rng.integers(0, n, max(1, n // 50))] = np.inf
    x[rng.integers(0, n, max(1, n // 50))] = -np.inf
    x[rng.integers(0, n, max(1, n // 50))] = -0.0
    x[rng.integers(0, n, max(1, n // 50))] = 0.5
    x[rng.integers(0, n, max(1, n // 50))] = -0.5
    return x


# ---------------------------------------------------------------------------
# where
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 16, 1023, BIG + 3])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_where_bits_match_numpy(restore_threads, dtype, n, nthreads):
    tg.set_num_threads(nthreads)
    rng = np.random.default_rng(n)
    a, b = _special(max(n, 1), dtype, rng)[:n], _special(max(n, 1), dtype, rng)[:n]
    c = rng.random(n) > 0.5
    for x, y in ((a, b), (a, dtype(0.25)), (dtype(-1.5), b), (dtype(2.0), dtype(-0.0))):
        got = tg.where(c, tg.Variable(np.asarray(x)), tg.Variable(np.asarray(y)))
        want = np.where(c, x, y)
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_array_equal(_bits(got.data), _bits(want.astype(dtype)))


@pytest.mark.parametrize("cond", [
    lambda s: np.arange(12).reshape(s) % 3 == 0,                          # C-contiguous bool: copied directly
    lambda s: np.asfortranarray(np.arange(12).reshape(s) % 2 == 0),       # Fortran: the np.asarray path
    lambda s: (np.arange(24).reshape(4, 6) % 5 == 0)[:, ::2],             # strided view
    lambda s: np.arange(12).reshape(s) % 4,                               # ints: truth values, as NumPy
    lambda s: (np.arange(4) % 2 == 0)[:, None],                           # broadcasting condition
    lambda s: True,
    lambda s: [[True, False, True]] * 4,
], ids=["c_bool", "fortran_bool", "strided_bool", "int", "broadcast", "python_bool", "list"])
def test_where_condition_kinds(cond, m):
    c = cond((4, 3))
    x, y = np.arange(12.0).reshape(4, 3), -np.arange(12.0).reshape(4, 3)
    got = m.where(c, m.Variable(x), y)
    np.testing.assert_array_equal(got.data, np.where(c, x, y))


def test_where_copies_the_condition():
    # The node keeps the condition: a later change to the array must not change the gradient.
    c = np.array([True, False, True])
    x = tg.Variable(np.ones(3), requires_grad=True)
    y = tg.where(c, x, 0.0)
    c[:] = False
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 1.0])


def test_where_condition_errors():
    x = tg.Variable(np.ones(3))
    with pytest.raises(ValueError, match="where"):
        tg.where(np.ones((2, 2), bool), x, x)
    with pytest.raises(ValueError, match="where: condition"):
        tg.where([[True], [False, True]], x, x)  # ragged: NumPy's error, named


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_where_gradients_large_against_reference(restore_threads, dtype):
    tg.set_num_threads(2)
    rng = np.random.default_rng(1)
    n = BIG + 5
    a, b, g = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    c = rng.random(n) > 0.3
    grads = {}
    for eng in (tg, ref):
        x, y = eng.Variable(a, requires_grad=True), eng.Variable(b, requires_grad=True)
        eng.where(c, x, y).backward(g)
        grads[eng] = (x.grad, y.grad)
    for got, want in zip(grads[tg], grads[ref]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(grads[tg][0], np.where(c, g, 0))


# ---------------------------------------------------------------------------
# clip
# ---------------------------------------------------------------------------
BOUNDS = [(-0.5, 0.5), (-0.5, None), (None, 0.5), (0.5, -0.5), (np.nan, 0.5), (-0.5, np.nan), (-np.inf, np.inf),
          (0.0, -0.0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 16, BIG + 7])
@pytest.mark.parametrize("lo,hi", BOUNDS, ids=[str(b) for b in BOUNDS])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_clip_bits_match_maximum_then_minimum(restore_threads, dtype, n, lo, hi, nthreads):
    tg.set_num_threads(nthreads)
    x = _special(max(n, 1), dtype, np.random.default_rng(n))[:n]
    want = x
    if lo is not None:
        want = np.maximum(want, dtype(lo))
    if hi is not None:
        want = np.minimum(want, dtype(hi))
    for got in (tg.clip(tg.Variable(x), lo, hi), tg.Variable(x).clip(lo, hi)):
        assert got.dtype == dtype and got.shape == x.shape
        np.testing.assert_array_equal(_bits(got.data), _bits(want))
    if lo is not None and hi is not None and lo < hi:  # (np.clip itself orders other bounds differently)
        np.testing.assert_array_equal(_bits(tg.clip(tg.Variable(x), lo, hi).data), _bits(np.clip(x, lo, hi)))


def test_clip_zero_d_input_and_shaped_bounds(m):
    # One-element bounds that add axes take the broadcasting kernels: the result has the broadcast shape.
    x = m.Variable(np.array(0.7), requires_grad=True)
    y = m.clip(x, np.array([-0.5]), np.array([[0.5]]))
    assert y.shape == (1, 1)
    np.testing.assert_array_equal(y.data, [[0.5]])
    y.sum().backward()
    assert x.grad == 0.0
    v = m.Variable(np.array([[-2.0, 0.1, 3.0]]))
    np.testing.assert_array_equal(m.clip(v, np.full((2, 1), -1.0), [0.0, 0.0, 1.0]).data,
                                  np.clip(v.data, np.full((2, 1), -1.0), [0.0, 0.0, 1.0]))


def test_clip_result_is_a_new_buffer():
    x = tg.Variable(np.array([0.1, 0.2]))
    y = tg.clip(x, -1.0, 1.0)  # nothing clipped: still a copy, not the input's buffer
    assert not np.shares_memory(y.data, x.data)
    y.data[0] = 5.0
    assert x.data[0] == 0.1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lo,hi", [(-0.5, 0.5), (-0.5, None), (None, 0.5), (np.nan, 0.5), (-0.5, np.nan),
                                   (-np.inf, np.inf), (0.0, -0.0), (0.5, -0.5)])
def test_clip_gradient_fused_matches_reference_and_composite(restore_threads, dtype, lo, hi):
    """The one-pass gradient (first order), the recorded composite (create_graph) and the
    reference engine agree, at the bounds too (inclusive), above the thread split."""
    tg.set_num_threads(2)
    rng = np.random.default_rng(3)
    x0 = _special(BIG + 1, dtype, rng)
    x0[np.isnan(x0)] = 0.0  # (NaN x: no gradient in any engine; its mask is tested below)
    g = rng.standard_normal(x0.shape).astype(dtype)
    want = ref.Variable(x0, requires_grad=True)
    ref.clip(want, lo, hi).backward(g)
    x = tg.Variable(x0, requires_grad=True)
    tg.clip(x, lo, hi).backward(g)
    np.testing.assert_array_equal(x.grad, want.grad)
    x2 = tg.Variable(x0, requires_grad=True)
    tg.clip(x2, lo, hi).backward(tg.Variable(g), create_graph=True)
    np.testing.assert_array_equal(x2.grad.data, want.grad)
    inside = np.ones(x0.shape, bool)
    if lo is not None:
        inside &= x0 >= lo
    if hi is not None:
        inside &= x0 <= hi
    np.testing.assert_array_equal(x.grad, np.where(inside, g, 0))


def test_clip_gradient_of_nan_is_zero_in_both_paths():
    x0 = np.array([np.nan, 0.0, 2.0])
    for create_graph in (False, True):
        x = tg.Variable(x0, requires_grad=True)
        tg.clip(x, -1.0, 1.0).backward(tg.Variable(np.ones(3)), create_graph=create_graph)
        grad = x.grad.data if create_graph else x.grad
        np.testing.assert_array_equal(grad, [0.0, 1.0, 0.0])


def test_clip_jvp_and_jacobian():
    x0 = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    t = np.arange(1.0, 6.0)
    _, tangent = tg.jvp(lambda v: tg.clip(v, -0.5, 0.5), (x0,), (t,))
    np.testing.assert_array_equal(tangent, [0.0, 2.0, 3.0, 4.0, 0.0])
    for mode in ("forward", "reverse"):
        np.testing.assert_array_equal(tg.jacobian(lambda v: tg.clip(v, -0.5, 0.5), x0, mode=mode),
                                      np.diag([0.0, 1.0, 1.0, 1.0, 0.0]))


def test_clip_second_order_against_finite_differences():
    x0 = np.array([-2.0, -0.3, 0.1, 0.4, 3.0])
    f = lambda v: (tg.clip(v, -0.5, 0.5) ** 3).sum()  # noqa: E731
    h = tg.hessian(f, x0)
    np.testing.assert_allclose(h, np.diag(np.where(np.abs(x0) <= 0.5, 6 * x0, 0.0)), rtol=1e-12)
    tg.gradcheck(lambda v: tg.clip(v, -0.5, 0.5) * v, x0)


# ---------------------------------------------------------------------------
# astype
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("src,dst", [(np.float64, np.float32), (np.float32, np.float64)])
@pytest.mark.parametrize("n", [0, 5, BIG + 9])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_astype_bits_and_gradient(restore_threads, src, dst, n, nthreads):
    tg.set_num_threads(nthreads)
    rng = np.random.default_rng(n)
    x0 = _special(max(n, 1), src, rng)[:n]
    with np.errstate(over="ignore"):
        x0[: min(n, 3)] = np.array([1e300, 1e-310, -3.4e38])[: min(n, 3)].astype(src)  # overflow, subnormal
    x = tg.Variable(x0, requires_grad=True)
    with np.errstate(over="ignore"):
        want = x0.astype(dst)
    for y in (tg.astype(x, dst), x.astype(dst)):
        assert y.dtype == dst
        np.testing.assert_array_equal(_bits(y.data), _bits(want))
    g = rng.standard_normal(n).astype(dst)
    tg.astype(x, dst).backward(g)
    np.testing.assert_array_equal(_bits(x.grad), _bits(g.astype(src)))


# ---------------------------------------------------------------------------
# Variable(...): tp_init
# ---------------------------------------------------------------------------
def test_constructor_arguments_by_position_and_keyword():
    a = np.arange(3.0)
    for v in (tg.Variable(a, True, np.float32), tg.Variable(data=a, requires_grad=True, dtype="float32"),
              tg.Variable(a, dtype=np.float32, requires_grad=1)):
        assert v.requires_grad and v.dtype == np.float32
        np.testing.assert_array_equal(v.data, a)
    v = tg.Variable(a)
    assert not v.requires_grad and v.dtype == np.float64 and not np.shares_memory(v.data, a)


@pytest.mark.parametrize("call,match", [
    (lambda: tg.Variable(), "missing a required argument: 'data'"),
    (lambda: tg.Variable(1.0, data=2.0), "multiple values for argument 'data'"),
    (lambda: tg.Variable(1.0, requires_grad=True, bogus=1), "unexpected keyword argument 'bogus'"),
    (lambda: tg.Variable(1.0, False, None, 4), "too many positional arguments"),
    (lambda: tg.Variable(1.0, requires_grad="yes"), "Variable: requires_grad must be a bool"),
    (lambda: tg.Variable(1.0, dtype=np.int32), "Variable: dtype must be float32 or float64"),
    (lambda: tg.Variable("abc"), "Variable: data must be real numbers"),
])
def test_constructor_errors(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_constructor_subclass_and_second_init():
    class Sub(tg.Variable):
        def __init__(self, data, scale):
            super().__init__(np.asarray(data) * scale, requires_grad=True)

    s = Sub([1.0, 2.0], 3.0)
    assert type(s) is Sub and s.requires_grad
    np.testing.assert_array_equal(s.data, [3.0, 6.0])

    class Plain(tg.Variable):
        pass

    p = Plain([1.0], requires_grad=True)
    assert type(p) is Plain and p.requires_grad
    v = tg.Variable([1.0, 2.0])
    v.__init__([5.0])  # ignored, as for every pybind11 object
    np.testing.assert_array_equal(v.data, [1.0, 2.0])
    (v * 2).sum()  # and its value is intact


@pytest.mark.parametrize("nthreads", [1, 2])
def test_constructor_large_copy(restore_threads, nthreads):
    tg.set_num_threads(nthreads)
    a = np.random.default_rng(0).standard_normal(BIG + 11)
    v = tg.Variable(a)
    assert not np.shares_memory(v.data, a)
    np.testing.assert_array_equal(_bits(v.data), _bits(a))
    f = tg.Variable(a.astype(np.float32), dtype=np.float64)
    np.testing.assert_array_equal(f.data, a.astype(np.float32).astype(np.float64))


# ---------------------------------------------------------------------------
# from_numpy
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("arr", [np.arange(3.0).astype(">f8"), np.arange(3.0).astype(">f4"),
                                 np.ones(2, np.longdouble)], ids=["big_endian_f8", "big_endian_f4", "longdouble"])
def test_from_numpy_refuses_other_layouts_of_floats(arr):
    with pytest.raises(TypeError, match="from_numpy: the array must have dtype float32 or float64 in native byte"):
        tg.from_numpy(arr)


def test_from_numpy_readonly_and_subclass():
    ro = np.arange(4.0)
    ro.setflags(write=False)
    v = tg.from_numpy(ro)
    assert np.shares_memory(v.data, ro) and not v.data.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        v += 1.0

    class Sub(np.ndarray):
        pass

    sub = np.arange(4.0).reshape(2, 2).view(Sub)
    w = tg.from_numpy(sub)
    assert w.shape == (2, 2) and np.shares_memory(w.data, sub)


def test_from_numpy_sizes():
    for shape in [(), (0,), (3, 0, 2), (1 << 20,)]:
        a = np.zeros(shape)
        v = tg.from_numpy(a)
        assert v.shape == shape and (a.size == 0 or np.shares_memory(v.data, a))


# ---------------------------------------------------------------------------
# np.asarray(v) / __array__ and item
# ---------------------------------------------------------------------------
def test_asarray_views_and_flags():
    x = tg.Variable(np.arange(6.0).reshape(2, 3))
    for view, want in ((x.T, np.arange(6.0).reshape(2, 3).T), (x[:, ::2], np.arange(6.0).reshape(2, 3)[:, ::2]),
                       (x[1], np.arange(3.0, 6.0)), (x[0, 1], np.array(1.0))):
        a = np.asarray(view)
        np.testing.assert_array_equal(a, want)
        assert np.shares_memory(a, x.data) and a.flags.writeable
        assert a.strides == want.strides
    b = np.asarray(tg.broadcast_to(tg.Variable(np.arange(3.0)), (4, 3)))
    assert not b.flags.writeable and b.strides == (0, 8)
    ro = np.arange(3.0)
    ro.setflags(write=False)
    assert not np.asarray(tg.from_numpy(ro)).flags.writeable
    e = np.asarray(tg.Variable(np.zeros((0, 3), np.float32)))
    assert e.shape == (0, 3) and e.dtype == np.float32


def test_asarray_keeps_the_buffer_alive():
    x = tg.Variable(np.arange(1000.0))
    a = np.asarray(x)
    x.data = np.zeros(1000)  # x takes a new buffer; `a` still holds the old one
    del x
    np.testing.assert_array_equal(a, np.arange(1000.0))


def test_array_method_arguments():
    x = tg.Variable(np.arange(3.0))
    assert x.__array__().dtype == np.float64
    assert x.__array__(np.float32).dtype == np.float32
    c = x.__array__(copy=True)
    assert not np.shares_memory(c, x.data)
    assert np.shares_memory(x.__array__(None, False), x.data)
    assert np.shares_memory(np.asarray(x, copy=False), x.data)
    assert not np.shares_memory(np.array(x), x.data)
    with pytest.raises(TypeError, match=r"__array__\(\): got an unexpected keyword argument 'order'"):
        x.__array__(order="C")
    with pytest.raises(TypeError, match=r"__array__\(\): too many positional arguments"):
        x.__array__(None, None, None)
    with pytest.raises(TypeError, match=r"__array__\(\): multiple values for argument 'dtype'"):
        x.__array__(None, dtype=None)
    with pytest.raises(TypeError, match="__array__: copy must be a bool"):
        x.__array__(copy="no")
    with pytest.raises(TypeError, match="__array__: dtype"):
        x.__array__(dtype="not a dtype")
    with pytest.raises(TypeError, match="__array__: this Variable requires grad"):
        np.asarray(tg.Variable(np.arange(3.0), requires_grad=True))


def test_item_fast_and_general_paths():
    assert tg.Variable(np.float32(1.5)).item() == 1.5
    assert float(tg.Variable(np.array([[2.5]]))) == 2.5
    x = tg.Variable(np.arange(6.0).reshape(2, 3))
    assert x.T[2, 1].item() == 5.0  # a view: Tensor::item
    assert float(x[1, 2]) == 5.0
    with pytest.raises(ValueError):
        x.item()
