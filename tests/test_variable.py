"""The Variable class: construction, from_numpy, awkward inputs, buffers
(.data, .numpy(), np.asarray), attributes, gradient state (.grad
accumulation, zero_grad, retain_grad) and lifetimes.

NumPy interplay: test_numpy_interop.py. In-place operators and version
counters: test_inplace.py. Grad mode: test_grad_mode.py.

Most tests run on both engines (tapegrad and tapegrad.reference), since
docs/API.md gives them the same semantics.
"""
import gc
import weakref

import numpy as np
import pytest

import tapegrad as tg
from helpers import assert_close

pytestmark = pytest.mark.usefixtures("restore_grad_mode")  # fixtures m and restore_grad_mode: conftest.py


# ---------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------
def test_constructor_copies_data(m):
    arr = np.arange(6.0).reshape(2, 3)
    v = m.Variable(arr)
    assert not np.shares_memory(v.data, arr)
    arr[0, 0] = 100.0
    assert v.data[0, 0] == 0.0
    v.data[1, 1] = -5.0
    assert arr[1, 1] == 4.0
    lst = [1.0, 2.0]
    v = m.Variable(lst)
    lst[0] = 9.0
    np.testing.assert_array_equal(v.data, [1.0, 2.0])


def test_constructor_from_variable_copies(m):
    a = m.Variable([1.0, 2.0], requires_grad=True)
    b = m.Variable(a)
    assert not np.shares_memory(a.data, b.data)
    assert b.is_leaf and not b.requires_grad
    np.testing.assert_array_equal(b.data, [1.0, 2.0])
    c = m.Variable(a, dtype=np.float32)
    assert c.dtype == np.float32


@pytest.mark.parametrize(
    "data,shape",
    [(3.5, ()), (7, ()), (True, ()), ([1, 2, 3], (3,)), ([[1.0], [2.0]], (2, 1)), (np.float64(2.0), ()),
     (np.array(4.0), ()), (np.zeros((0, 3)), (0, 3)), (np.ones((2, 1, 3)), (2, 1, 3)), ((1.0, 2.0), (2,))],
    ids=repr,
)
def test_constructor_shapes_and_values(m, data, shape):
    v = m.Variable(data)
    assert v.shape == shape
    assert isinstance(v.shape, tuple)
    assert v.ndim == len(shape)
    assert v.size == int(np.prod(shape))
    np.testing.assert_array_equal(v.data, np.asarray(data, dtype=np.float64))
    assert v.requires_grad is False
    assert v.is_leaf is True
    assert v.grad is None
    assert v.grad_fn is None


@pytest.mark.parametrize("data", [np.arange(4), np.arange(4, dtype=np.int32), np.array([True, False]),
                                  np.arange(3, dtype=np.uint8), [1, 2], 5, False], ids=repr)
def test_int_and_bool_data_become_float64(m, data):
    v = m.Variable(data, requires_grad=True)
    assert v.dtype == np.float64
    assert isinstance(v.dtype, np.dtype)
    np.testing.assert_array_equal(v.data, np.asarray(data).astype(np.float64))


def test_float_dtypes(m):
    assert m.Variable(np.ones(3, np.float32)).dtype == np.float32
    assert m.Variable(np.ones(3, np.float32)).data.dtype == np.float32
    assert m.Variable(np.float32(1.0)).dtype == np.float32
    assert m.Variable(1.0).dtype == np.float64
    assert m.Variable([1.0, 2.0], dtype=np.float32).dtype == np.float32
    assert m.Variable([1, 2], dtype="float32").dtype == np.float32
    assert m.Variable(np.ones(2, np.float32), dtype=np.float64).dtype == np.float64
    assert m.Variable([1.5], dtype=np.dtype("float64")).dtype == np.float64


@pytest.mark.parametrize("dtype", [int, np.int64, "int32", np.bool_, bool, np.uint8, np.complex128, "float16", object],
                         ids=repr)
def test_explicit_non_float_dtype_raises_type_error(m, dtype):
    with pytest.raises(TypeError):
        m.Variable([1.0, 2.0], dtype=dtype)


@pytest.mark.parametrize("data", ["abc", [1 + 2j], np.array(["a"]), None, {"a": 1}, object()], ids=repr)
def test_non_numeric_data_raises_type_error(m, data):
    with pytest.raises(TypeError):
        m.Variable(data)


# ---------------------------------------------------------------------------
# from_numpy
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_from_numpy_shares_the_buffer(m, dtype):
    arr = np.arange(6, dtype=dtype).reshape(2, 3)
    v = m.from_numpy(arr)
    assert v.dtype == dtype
    assert v.shape == (2, 3)
    assert np.shares_memory(v.data, arr)
    arr[0, 1] = 42.0  # numpy -> Variable
    assert v.data[0, 1] == 42.0
    assert (v * 1.0).data[0, 1] == 42.0
    v.data[1, 2] = -7.0  # Variable -> numpy
    assert arr[1, 2] == -7.0
    np.asarray(v)[0, 0] = 3.0
    assert arr[0, 0] == 3.0


def test_from_numpy_keeps_the_array_alive(m):
    arr = np.arange(1000.0)
    ref = weakref.ref(arr) if hasattr(arr, "__weakref__") else None
    v = m.from_numpy(arr)
    del arr
    gc.collect()
    np.testing.assert_array_equal(v.data, np.arange(1000.0))
    np.testing.assert_array_equal((v * 2).data, np.arange(1000.0) * 2)
    del v
    gc.collect()
    if ref is not None:
        assert ref() is None  # and it is released with the Variable


def test_from_numpy_zero_d_and_gradients(m):
    arr = np.array(3.0)
    v = m.from_numpy(arr)
    assert v.shape == ()
    v.requires_grad = True
    (v * v).backward()
    assert v.grad == 6.0
    arr[()] = 5.0
    assert v.item() == 5.0


@pytest.mark.parametrize("make", [
    lambda: np.arange(12.0).reshape(3, 4)[:, ::2],
    lambda: np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    lambda: np.arange(12.0).reshape(3, 4).T,
    lambda: np.arange(5.0)[::-1],
    lambda: np.arange(10.0)[::2],
], ids=["strided", "fortran", "transposed", "negative_stride", "step2"])
def test_from_numpy_non_contiguous_raises_value_error(m, make):
    with pytest.raises(ValueError):
        m.from_numpy(make())


@pytest.mark.parametrize("arr", [np.arange(3), np.arange(3, dtype=np.int32), np.array([True]),
                                 np.ones(2, np.complex128), np.ones(2, np.float16)], ids=lambda a: str(a.dtype))
def test_from_numpy_non_float_dtype_raises_type_error(m, arr):
    with pytest.raises(TypeError):
        m.from_numpy(arr)


def test_from_numpy_non_array_raises_type_error(m):
    with pytest.raises(TypeError):
        m.from_numpy([1.0, 2.0])


# ---------------------------------------------------------------------------
# Awkward inputs: read-only, non-contiguous, Fortran, negative strides
# ---------------------------------------------------------------------------
def _awkward_arrays():
    base = np.arange(24.0).reshape(4, 6) * 0.1 - 1.0
    ro = base.copy()
    ro.setflags(write=False)
    return {
        "readonly": ro,
        "fortran": np.asfortranarray(base),
        "transposed": base.T.copy().T,  # Fortran-ordered view of a C array
        "negative_stride": base[::-1, ::-1],
        "strided": np.arange(48.0).reshape(4, 12)[:, ::2] * 0.1,
        "broadcast_view": np.broadcast_to(np.arange(6.0), (4, 6)),  # zero strides, read-only
        "float32_fortran": np.asfortranarray(base.astype(np.float32)),
    }


AWKWARD = _awkward_arrays()


@pytest.mark.parametrize("name", list(AWKWARD))
def test_awkward_inputs_to_constructor(m, name):
    arr = AWKWARD[name]
    v = m.Variable(arr, requires_grad=True)
    assert v.dtype == arr.dtype
    np.testing.assert_array_equal(v.data, arr)
    assert v.data.flags.writeable
    v.data[0, 0] = 123.0  # writable copy, does not touch the input
    assert arr[0, 0] != 123.0
    v2 = m.Variable(arr, requires_grad=True)
    w = np.arange(24.0).reshape(4, 6)
    (v2 * w).sum().backward()
    np.testing.assert_array_equal(v2.grad, w.astype(arr.dtype))


@pytest.mark.parametrize("name", list(AWKWARD))
def test_awkward_inputs_to_ops(m, name):
    arr = AWKWARD[name]
    a64 = np.asarray(arr, dtype=np.float64)
    x = m.Variable(np.ones((4, 6)) * 0.5, requires_grad=True)
    checks = [
        (m.add(x, arr), 0.5 + a64),
        (arr * x, a64 * 0.5),
        (x - arr, 0.5 - a64),
        (m.maximum(arr, x), np.maximum(a64, 0.5)),
        (m.exp(arr), np.exp(a64)),
        (m.sum(arr, axis=0), a64.sum(axis=0)),
        (m.matmul(arr, x.T), a64 @ np.full((6, 4), 0.5)),
        (arr.T @ x, a64.T @ np.full((4, 6), 0.5)),
        (m.where(arr > 0, x, arr), np.where(a64 > 0, 0.5, a64)),
        (m.concatenate([arr, x]), np.concatenate([a64, np.full((4, 6), 0.5)])),
        (m.reshape(arr, (6, 4)), a64.reshape(6, 4)),
        (m.transpose(arr), a64.T),
        (m.Variable(arr)[::-1, 1], a64[::-1, 1]),
        (m.Variable(arr)[np.array([3, 0, 3])], a64[[3, 0, 3]]),
    ]
    for i, (got, want) in enumerate(checks):
        assert_close(got, want, rtol=1e-6 if arr.dtype == np.float32 else 1e-12, atol_scale=1e-7, msg=f"check {i}")
    # gradients through an awkward constant operand, and an awkward backward seed
    y = x * arr
    y.backward(arr)
    assert_close(x.grad, a64 * a64, rtol=1e-6 if arr.dtype == np.float32 else 1e-12, atol_scale=1e-7)


def test_awkward_index_and_condition_arrays(m):
    x = m.Variable(np.arange(10.0), requires_grad=True)
    idx = np.array([9, 0, 3, 3, 5, 1])[::-2]  # negative stride index array
    y = x[idx]
    np.testing.assert_array_equal(y.data, np.arange(10.0)[idx])
    y.sum().backward()
    expected = np.zeros(10)
    np.add.at(expected, idx, 1.0)
    np.testing.assert_array_equal(x.grad, expected)
    cond = np.asfortranarray(np.arange(12).reshape(3, 4) % 3 == 0)
    out = m.where(cond, m.Variable(np.ones((3, 4))), 0.0)
    np.testing.assert_array_equal(out.data, cond.astype(float))


# ---------------------------------------------------------------------------
# .data, .numpy(), np.asarray
# ---------------------------------------------------------------------------
def test_data_shares_the_buffer_and_is_writable(m):
    v = m.Variable([1.0, 2.0, 3.0])
    d = v.data
    assert isinstance(d, np.ndarray)
    assert d.flags.writeable
    d[0] = 10.0
    assert v.data[0] == 10.0
    assert np.shares_memory(v.data, v.data)
    assert np.shares_memory(v.data, v.numpy())
    assert (v + 0).data[0] == 10.0


def test_asarray_does_not_copy(m):
    v = m.Variable(np.arange(6.0).reshape(2, 3))
    a = np.asarray(v)
    assert isinstance(a, np.ndarray)
    assert a.dtype == np.float64
    assert np.shares_memory(a, v.data)
    a[0, 0] = -1.0
    assert v.data[0, 0] == -1.0
    v32 = m.Variable(np.ones(3, np.float32))
    assert np.shares_memory(np.asarray(v32), v32.data)
    # np.array copies by default
    c = np.array(v)
    assert not np.shares_memory(c, v.data)
    np.testing.assert_array_equal(c, v.data)
    # dtype conversion on request
    assert np.asarray(v, dtype=np.float32).dtype == np.float32


def test_op_results_own_their_buffers(m):
    x = m.Variable(np.arange(4.0))
    y = x + 0.0
    z = x * 1.0
    assert not np.shares_memory(y.data, x.data)
    assert not np.shares_memory(z.data, x.data)
    y.data[0] = 99.0
    assert x.data[0] == 0.0



def test_variable_whose_init_never_ran_raises_type_error_in_ops():
    # Variable.__new__ alone leaves no value: the bindings' fast accessor
    # (holder_of) must hand it to the general path, which raises.
    v = tg.Variable.__new__(tg.Variable)
    for op in (lambda: v * 2.0, lambda: 2.0 - v, lambda: tg.tanh(v), lambda: v + v, lambda: -v):
        with pytest.raises(TypeError, match="__init__ was not called"):
            op()
    del v  # and it is freed without a value (var_dealloc's general path)
    gc.collect()


def test_object_free_list_keeps_the_type_refcount_balanced():
    # Op results' Python objects go to a free list when they die and keep
    # their reference to the Variable type there (module.cpp, var_dealloc);
    # past the list's 256 slots they are freed and drop it. A lost or extra
    # reference per object shows as drift of the type's count over rounds
    # that overflow the list, and with weak references and subclasses in the
    # mix (the general dealloc path).
    import sys

    class Sub(tg.Variable):
        pass

    x = tg.Variable(np.arange(3.0))

    def round_():
        keep = [x * float(i) for i in range(1000)]  # more than the free list holds
        refs = [weakref.ref(v) for v in keep[:10]]
        subs = [Sub(np.ones(2)) for _ in range(10)]
        del keep, subs
        assert all(r() is None for r in refs)
        y = x
        for _ in range(500):  # results born and freed one at a time
            y = tg.tanh(y) + 1.0

    round_()
    before = sys.getrefcount(tg.Variable)
    for _ in range(3):
        round_()
    after = sys.getrefcount(tg.Variable)  # (not inside the assert: pytest's rewriting holds a reference)
    assert after == before

# ---------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------
def test_attributes(m):
    v = m.Variable(np.zeros((2, 3, 4), np.float32), requires_grad=True)
    assert v.shape == (2, 3, 4)
    assert v.ndim == 3
    assert v.size == 24
    assert v.dtype == np.float32
    assert isinstance(v.dtype, np.dtype)
    assert len(v) == 2
    assert v.requires_grad is True
    assert v.is_leaf is True
    assert v.grad_fn is None
    y = v * 2
    assert y.requires_grad is True
    assert y.is_leaf is False
    assert y.grad_fn is not None
    assert isinstance(y.grad_fn.name, str) and y.grad_fn.name
    z = m.Variable(np.ones(3)) * 2  # no input requires grad
    assert z.requires_grad is False
    assert z.is_leaf is True
    assert z.grad_fn is None


def test_len(m):
    assert len(m.Variable(np.zeros((5, 2)))) == 5
    assert len(m.Variable([1.0])) == 1
    with pytest.raises(TypeError):
        len(m.Variable(1.0))


def test_item(m):
    assert m.Variable(2.5).item() == 2.5
    assert isinstance(m.Variable(2.5).item(), float)
    assert m.Variable([[3.0]]).item() == 3.0
    assert m.Variable(np.float32(0.5)).item() == 0.5
    assert float(m.Variable([4.0])) == 4.0
    with pytest.raises(ValueError):
        m.Variable([1.0, 2.0]).item()


def test_repr(m):
    v = m.Variable([1.25, -2.5])
    r = repr(v)
    assert "Variable" in r
    assert "1.25" in r and "-2.5" in r
    r = repr(m.Variable(np.array([[7.0, 8.0]], np.float32), requires_grad=True))
    assert "Variable" in r and "7." in r and "8." in r
    assert "float32" in r
    assert "requires_grad" in r or "grad" in r
    r = repr(m.Variable(3.0, requires_grad=True) * 2)
    assert "6." in r and "Variable" in r
    assert "Variable" in str(m.Variable(0.5))


def test_detach(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.detach()
    assert d.requires_grad is False
    assert d.is_leaf is True
    assert d.grad_fn is None
    np.testing.assert_array_equal(d.data, [3.0, 6.0])
    assert np.shares_memory(d.data, y.data)  # a view of the same buffer
    # gradient does not flow through the detached value
    z = (y * d).sum()
    z.backward()
    np.testing.assert_array_equal(x.grad, [9.0, 18.0])  # d(3x * const)/dx = 3 * d
    assert x.detach().requires_grad is False


def test_requires_grad_setter(m):
    x = m.Variable([1.0, 2.0])
    x.requires_grad = True
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    y = x * 2
    with pytest.raises(RuntimeError):
        y.requires_grad = False


# ---------------------------------------------------------------------------
# Gradients: accumulation, reset, retain_grad
# ---------------------------------------------------------------------------
def test_grad_is_a_numpy_array_that_accumulates(m):
    x = m.Variable([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    g = x.grad
    assert isinstance(g, np.ndarray)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [2.0, 4.0, 6.0])
    first = np.array(g, copy=True)
    (x * 10).sum().backward()
    np.testing.assert_array_equal(x.grad, first + 10)
    m.sum(x).backward()
    np.testing.assert_array_equal(x.grad, first + 11)


def test_grad_accumulates_for_float32(m):
    x = m.Variable(np.array([1.0, 2.0], np.float32), requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


def test_zero_grad_and_set_grad_to_none(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    x.zero_grad()
    assert x.grad is None
    (x * 5).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, 5.0])
    x.grad = None
    assert x.grad is None
    (x * 7).sum().backward()
    np.testing.assert_array_equal(x.grad, [7.0, 7.0])


def test_grad_of_a_variable_used_several_times(m):
    x = m.Variable(2.0, requires_grad=True)
    y = x * x * x + x * 4 - x / x
    y.backward()
    assert_close(x.grad, 3 * 4.0 + 4.0)
    a = m.Variable([1.0, 2.0], requires_grad=True)
    b = a + a  # same operand twice in one op
    (b * a).sum().backward()
    np.testing.assert_array_equal(a.grad, [4.0, 8.0])


def test_leaf_not_reached_keeps_grad_none(m):
    x = m.Variable([1.0], requires_grad=True)
    w = m.Variable([2.0], requires_grad=True)
    (x * 3).sum().backward()
    assert w.grad is None
    c = m.Variable([5.0])
    (x * c).sum().backward()
    assert c.grad is None


def test_retain_grad_on_non_leaf(m):
    x = m.Variable([1.0, -2.0, 3.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    k = x * 5  # no retain_grad
    y = (h * h).sum() + k.sum()
    y.backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    assert k.grad is None
    np.testing.assert_array_equal(x.grad, 8 * x.data + 5)
    # retain_grad on a leaf is a no-op; the leaf keeps accumulating as usual
    x.retain_grad()


def test_retain_grad_accumulates_across_backward_calls(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    y = (h * h).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(h.grad, 2 * 2 * h.data)


def test_retained_variable_that_died_before_backward(m):
    # The graph holds a retained Variable only weakly: once it is gone, the
    # sweep skips it, and the rest of the graph is unaffected.
    x = m.Variable([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    y = (h * h).sum()
    del h
    gc.collect()
    y.backward()
    np.testing.assert_array_equal(x.grad, 18 * x.data)
    # a retained Variable alive only through another Variable's .grad
    a = m.Variable([1.0], requires_grad=True)
    b = a * 2
    b.retain_grad()
    z = (b * b).sum()
    z.backward()
    g = b.grad
    del b
    gc.collect()
    np.testing.assert_array_equal(g, [4.0])


def test_backward_on_a_leaf_and_explicit_grad(m):
    x = m.Variable([[1.0, 2.0]], requires_grad=True)
    x.backward(np.array([[3.0, 4.0]]))
    np.testing.assert_array_equal(x.grad, [[3.0, 4.0]])
    y = x * 2
    y.backward(grad=[[1.0, 1.0]])
    np.testing.assert_array_equal(x.grad, [[5.0, 6.0]])
    s = m.Variable(3.0, requires_grad=True)
    (s * s).backward(np.array(2.0))
    assert s.grad == 12.0
    one = m.Variable([[2.0]], requires_grad=True)
    (one * one).backward()  # single element, not 0-d: implicit grad of ones
    np.testing.assert_array_equal(one.grad, [[4.0]])


def test_backward_seed_is_not_modified(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    seed = np.array([1.0, 1.0])
    y = x + x + x
    y.backward(seed)
    np.testing.assert_array_equal(seed, [1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_grad_array_not_aliased_to_internal_buffers(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    (x * 1.0).sum().backward()
    g = x.grad
    g_copy = g.copy()
    y = m.Variable([5.0, 6.0], requires_grad=True)
    (y * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, g_copy)  # another backward does not scribble on it
    assert not np.shares_memory(x.grad, y.grad)


# ---------------------------------------------------------------------------
# Lifetimes: arrays handed out outlive the Variable they came from
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 3, 8, 9, 100])  # small arrays may be stored inline
def test_data_view_outlives_its_variable(m, n):
    vals = np.arange(n, dtype=np.float64) + 0.5
    d = m.Variable(vals).data
    a = np.asarray(m.Variable(vals * 2) * 1.0)
    x = m.Variable(vals, requires_grad=True)
    (x * 3.0).sum().backward()
    g = x.grad
    del x
    gc.collect()
    # churn: many small objects of the same sizes are created and freed
    for _ in range(200):
        y = m.Variable(np.full(n, -1.0), requires_grad=True)
        (y * y + 1.0).sum().backward()
        del y
    np.testing.assert_array_equal(d, vals)
    np.testing.assert_array_equal(a, vals * 2)
    np.testing.assert_array_equal(g, np.full(n, 3.0))
    d[0] = 7.0  # still writable, owned memory
    assert d[0] == 7.0


def test_operator_slots_and_methods_agree(m):
    a = np.array([1.0, 2.0, 4.0])
    v = m.Variable(a)
    pairs = [
        (v + 2, v.__add__(2)), (2 + v, v.__radd__(2)), (v - 2, v.__sub__(2)), (2 - v, v.__rsub__(2)),
        (v * 3, v.__mul__(3)), (3 * v, v.__rmul__(3)), (v / 2, v.__truediv__(2)), (2 / v, v.__rtruediv__(2)),
        (v ** 2, v.__pow__(2)), (2 ** v, v.__rpow__(2)), (v @ v, v.__matmul__(v)), (-v, v.__neg__()),
    ]
    for got, via_method in pairs:
        assert type(got) is m.Variable and type(via_method) is m.Variable
        np.testing.assert_array_equal(got.data, via_method.data)
    import operator
    np.testing.assert_array_equal(operator.add(v, v).data, a + a)
    np.testing.assert_array_equal(operator.pow(v, 0.5).data, a ** 0.5)
    with pytest.raises(TypeError):
        pow(v, 2, 3)  # three-argument pow is not supported
    np.testing.assert_array_equal(+v, a)
    np.testing.assert_array_equal((True + v).data, a + 1)


def test_results_are_plain_variables(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    outs = [x + 1, x * x, -x, m.exp(x), m.tanh(x), m.sum(x), x[0], x.reshape(2, 1), x @ x, m.clip(x, 0, 1)]
    for o in outs:
        assert type(o) is m.Variable
        assert isinstance(o, m.Variable)
        assert o.requires_grad
        r = weakref.ref(o) if m is not tg else None
        assert r is None or r() is o
    ids = {id(o) for o in outs}
    assert len(ids) == len(outs)


def test_iteration_like_numpy(m):
    v = m.Variable(np.arange(6.0).reshape(3, 2), requires_grad=True)
    rows = list(v)
    assert len(rows) == 3
    for i, r in enumerate(rows):
        assert isinstance(r, m.Variable)
        np.testing.assert_array_equal(r.data, np.arange(6.0).reshape(3, 2)[i])
    sum(r.sum() for r in rows).backward()
    np.testing.assert_array_equal(v.grad, np.ones((3, 2)))
    with pytest.raises(TypeError):
        list(m.Variable(1.0))  # a 0-d Variable is not iterable (NumPy: "iteration over a 0-d array")
