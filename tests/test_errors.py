"""Every error path: the exception type, what the message names, and that
the state is intact afterwards (values, .grad, the graph, grad mode).

ValueError for shapes and values (the message names the op and the
shapes), TypeError for types, RuntimeError for graph misuse.
"""
import re

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("restore_grad_mode")  # fixtures m and restore_grad_mode: conftest.py


def _names_shapes(msg, *shapes):
    for s in shapes:
        assert str(tuple(s)) in msg, f"{tuple(s)} not named in {msg!r}"


# ---------------------------------------------------------------------------
# Shape mismatch in each binary op
# ---------------------------------------------------------------------------
BINARY_FUNCS = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum"]
OPERATORS = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b,
    "power": lambda a, b: a ** b,
}
BAD_PAIRS = [((3,), (4,)), ((2, 3), (3, 2)), ((4, 1, 3), (2, 2)), ((2, 3), (4,))]


@pytest.mark.parametrize("shapes", BAD_PAIRS, ids=str)
@pytest.mark.parametrize("op", BINARY_FUNCS)
def test_binary_function_shape_mismatch(m, op, shapes):
    a = m.Variable(np.ones(shapes[0]), requires_grad=True)
    b = m.Variable(np.ones(shapes[1]), requires_grad=True)
    with pytest.raises(ValueError) as info:
        getattr(m, op)(a, b)
    msg = str(info.value)
    assert op in msg, msg
    _names_shapes(msg, *shapes)
    # the operands are untouched and still usable
    assert a.grad is None and b.grad is None
    getattr(m, op)(a, a).sum().backward()
    assert a.grad is not None


@pytest.mark.parametrize("op", list(OPERATORS))
def test_operator_shape_mismatch_names_op_and_shapes(m, op):
    a = m.Variable(np.ones(3), requires_grad=True)
    for other in (m.Variable(np.ones(4)), np.ones(4)):
        for fn in (lambda: OPERATORS[op](a, other), lambda: OPERATORS[op](other, a)):
            with pytest.raises(ValueError) as info:
                fn()
            msg = str(info.value)
            assert op in msg, msg
            _names_shapes(msg, (3,), (4,))


def test_add_3_and_4_names_both_shapes(m):
    with pytest.raises(ValueError) as info:
        m.Variable(np.ones(3)) + m.Variable(np.ones(4))
    msg = str(info.value)
    assert "(3,)" in msg and "(4,)" in msg


def test_where_shape_mismatch(m):
    with pytest.raises(ValueError) as info:
        m.where(np.ones(3, bool), m.Variable(np.ones(3)), m.Variable(np.ones(4)))
    assert "where" in str(info.value)
    with pytest.raises(ValueError):
        m.where(np.ones(5, bool), m.Variable(np.ones(3)), 0.0)


def test_inplace_shape_mismatch(m):
    v = m.Variable(np.ones(3))
    with pytest.raises(ValueError):
        v += np.ones(4)
    with pytest.raises(ValueError):
        v *= np.ones((2, 3))  # broadcasts, but the result does not fit in v
    np.testing.assert_array_equal(v.data, np.ones(3))


# ---------------------------------------------------------------------------
# matmul
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["operator", "function"])
def test_matmul_mismatch_names_matmul_and_shapes(m, form):
    a = m.Variable(np.ones((3, 4)), requires_grad=True)
    b = m.Variable(np.ones((5, 2)), requires_grad=True)
    with pytest.raises(ValueError) as info:
        if form == "operator":
            a @ b
        else:
            m.matmul(a, b)
    msg = str(info.value)
    assert "matmul" in msg
    _names_shapes(msg, (3, 4), (5, 2))


@pytest.mark.parametrize("shapes", [((3,), (4,)), ((3,), (4, 2)), ((2, 3), (4,)), ((2, 3, 4), (3, 4, 5)),
                                    ((2, 2, 3), (3, 3, 1)), ((3,), ()), ((), (3,)), ((), ())], ids=str)
def test_matmul_other_mismatches(m, shapes):
    a = m.Variable(np.ones(shapes[0]))
    b = m.Variable(np.ones(shapes[1]))
    with pytest.raises(ValueError) as info:
        m.matmul(a, b)
    assert "matmul" in str(info.value)
    with pytest.raises(ValueError):
        np.ones(shapes[0]) @ b if shapes[0] else a @ b


# ---------------------------------------------------------------------------
# Axes
# ---------------------------------------------------------------------------
REDUCERS = ["sum", "mean", "max", "min", "logsumexp"]


@pytest.mark.parametrize("op", REDUCERS)
@pytest.mark.parametrize("axis", [2, -3, (0, 2), (0, 0), (1, -1)], ids=str)
def test_reduction_bad_axis(m, op, axis):
    x = m.Variable(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError) as info:
        getattr(m, op)(x, axis=axis)
    assert op in str(info.value)


@pytest.mark.parametrize("op", REDUCERS)
def test_reduction_bad_axis_on_0d(m, op):
    with pytest.raises(ValueError):
        getattr(m, op)(m.Variable(1.0), axis=0)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
def test_reduction_method_bad_axis(m, op):
    with pytest.raises(ValueError):
        getattr(m.Variable(np.ones((2, 3))), op)(axis=5)


@pytest.mark.parametrize("axis", [1.5, "0", [0.0]], ids=repr)
def test_reduction_axis_of_wrong_type(m, axis):
    with pytest.raises(TypeError):
        m.sum(m.Variable(np.ones((2, 3))), axis=axis)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [2, -3], ids=str)
def test_softmax_bad_axis(m, op, axis):
    with pytest.raises(ValueError) as info:
        getattr(m, op)(m.Variable(np.ones((2, 3))), axis=axis)
    assert op in str(info.value)


@pytest.mark.parametrize("axes", [(0,), (0, 1, 2), (0, 0), (0, 3), (1, -1), (-3, 0)], ids=str)
def test_transpose_bad_axes(m, axes):
    with pytest.raises(ValueError) as info:
        m.transpose(m.Variable(np.ones((2, 3))), axes)
    assert "transpose" in str(info.value)


def test_reduction_of_empty_array_without_identity(m):
    for op in ("max", "min"):
        with pytest.raises(ValueError):
            getattr(m, op)(m.Variable(np.ones((0, 3))), axis=0)
    np.testing.assert_array_equal(m.sum(m.Variable(np.ones((0, 3))), axis=0).data, np.zeros(3))


# ---------------------------------------------------------------------------
# Reshape, broadcast_to, concatenate, stack
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("new", [(4,), (5, -1), (-1, -1), (7,), (2, 2), (4, -1)], ids=str)
def test_bad_reshape(m, new):
    x = m.Variable(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError) as info:
        m.reshape(x, new)
    msg = str(info.value)
    assert "reshape" in msg
    with pytest.raises(ValueError):
        x.reshape(new)
    if new in [(4,), (7,), (2, 2)]:
        _names_shapes(msg, (2, 3), new)


@pytest.mark.parametrize("shape,target", [((3,), (4,)), ((2, 3), (3,)), ((2, 3), (3, 3)), ((3,), ())], ids=str)
def test_bad_broadcast_to(m, shape, target):
    with pytest.raises(ValueError) as info:
        m.broadcast_to(m.Variable(np.ones(shape)), target)
    assert "broadcast_to" in str(info.value)


def test_concatenate_mismatched_shapes(m):
    a = m.Variable(np.ones((2, 3)), requires_grad=True)
    b = m.Variable(np.ones((2, 4)), requires_grad=True)
    with pytest.raises(ValueError) as info:
        m.concatenate([a, b], axis=0)
    msg = str(info.value)
    assert "concatenate" in msg
    _names_shapes(msg, (2, 3), (2, 4))
    with pytest.raises(ValueError):
        m.concatenate([a, m.Variable(np.ones(3))])  # different ndim
    with pytest.raises(ValueError):
        m.concatenate([a, b], axis=2)  # bad axis
    with pytest.raises(ValueError):
        m.concatenate([m.Variable(1.0), m.Variable(2.0)])  # 0-d
    with pytest.raises(ValueError):
        m.concatenate([])
    # still fine along the right axis
    out = m.concatenate([a, b], axis=1)
    assert out.shape == (2, 7)


def test_stack_mismatched_shapes(m):
    a = m.Variable(np.ones((2, 3)))
    b = m.Variable(np.ones((3, 2)))
    with pytest.raises(ValueError) as info:
        m.stack([a, b])
    assert "stack" in str(info.value)
    _names_shapes(str(info.value), (2, 3), (3, 2))
    with pytest.raises(ValueError):
        m.stack([a, a], axis=3)
    with pytest.raises(ValueError):
        m.stack([])


# ---------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------
def test_index_errors(m):
    v = m.Variable(np.ones((2, 3)))
    with pytest.raises(IndexError):
        v[2]
    with pytest.raises(IndexError):
        v[0, 0, 0]
    with pytest.raises(IndexError):
        v[:, [0, 3]]
    with pytest.raises(IndexError):
        v[np.ones(3, bool)]  # mask of the wrong length
    with pytest.raises(IndexError):
        v[1.5]


# ---------------------------------------------------------------------------
# backward misuse
# ---------------------------------------------------------------------------
def test_second_backward_without_retain_graph(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    y = (m.exp(x) * x).sum()
    y.backward()
    first = np.array(x.grad, copy=True)
    with pytest.raises(RuntimeError) as info:
        y.backward()
    assert "retain_graph=True" in str(info.value)
    np.testing.assert_array_equal(x.grad, first)  # unchanged by the failed call


def test_second_backward_through_shared_part_of_a_released_graph(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    h = m.tanh(x)
    y1 = (h * 2).sum()
    y2 = (h * h).sum()
    y1.backward()
    with pytest.raises(RuntimeError) as info:
        y2.backward()  # h's node was released by the first backward
    assert "retain_graph=True" in str(info.value)


def test_retain_graph_allows_a_second_backward(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    y = (m.exp(x) * x).sum()
    y.backward(retain_graph=True)
    once = np.array(x.grad, copy=True)
    np.testing.assert_allclose(once, np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0])), rtol=1e-14)
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, 2 * once, rtol=1e-14)
    y.backward()
    np.testing.assert_allclose(x.grad, 3 * once, rtol=1e-14)
    with pytest.raises(RuntimeError):
        y.backward()
    np.testing.assert_allclose(x.grad, 3 * once, rtol=1e-14)


def test_backward_of_non_scalar_needs_grad(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError):
        y.backward()
    assert x.grad is None
    y.backward(np.ones(2))  # the graph was not consumed by the failed call
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


@pytest.mark.parametrize("bad", [np.ones(3), np.ones((2, 1)), np.ones((1, 2)), np.ones(()), [1.0]], ids=repr)
def test_backward_grad_of_wrong_shape(m, bad):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(ValueError) as info:
        y.backward(bad)
    _names_shapes(str(info.value), (2,), np.shape(bad))
    assert x.grad is None
    y.backward(np.array([1.0, 3.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 6.0])


def test_backward_on_variable_not_requiring_grad(m):
    x = m.Variable([1.0, 2.0])
    with pytest.raises(RuntimeError):
        x.sum().backward()
    with pytest.raises(RuntimeError):
        m.Variable(1.0).backward()
    w = m.Variable([1.0], requires_grad=True)
    with m.no_grad():
        y = (w * 2).sum()
    with pytest.raises(RuntimeError):
        y.backward()
    assert w.grad is None


def test_backward_grad_of_wrong_type(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(TypeError):
        y.backward("ab")
    assert x.grad is None


def test_failed_backward_keeps_existing_grads(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    before = np.array(x.grad, copy=True)
    y = x * x
    for bad_call in (lambda: y.backward(), lambda: y.backward(np.ones(5))):
        with pytest.raises((RuntimeError, ValueError)):
            bad_call()
        np.testing.assert_array_equal(x.grad, before)
    c = m.Variable([3.0, 4.0])
    z = (x * c).sum()
    with m.no_grad():
        c += 1.0
    with pytest.raises(RuntimeError):
        z.backward()
    np.testing.assert_array_equal(x.grad, before)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, before + 2 * x.data)


def test_retain_grad_on_variable_not_requiring_grad(m):
    with pytest.raises(RuntimeError):
        m.Variable([1.0]).retain_grad()


def test_set_grad_of_wrong_shape(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError):
        x.grad = np.ones(3)
    assert x.grad is None


# ---------------------------------------------------------------------------
# Bad types
# ---------------------------------------------------------------------------
BAD_OPERANDS = ["a", None, {"k": 1}, object(), np.array(["x"]), [1.0, "a"]]


@pytest.mark.parametrize("bad", BAD_OPERANDS, ids=repr)
def test_operators_with_bad_types(m, bad):
    v = m.Variable([1.0, 2.0], requires_grad=True)
    for fn in (lambda: v + bad, lambda: bad + v, lambda: v * bad, lambda: bad - v, lambda: v / bad,
               lambda: v ** bad, lambda: v @ bad):
        with pytest.raises(TypeError):
            fn()


@pytest.mark.parametrize("bad", BAD_OPERANDS, ids=repr)
def test_functions_with_bad_types(m, bad):
    v = m.Variable([1.0, 2.0])
    for fn in (lambda: m.add(v, bad), lambda: m.multiply(bad, v), lambda: m.maximum(v, bad),
               lambda: m.exp(bad), lambda: m.sum(bad), lambda: m.matmul(v, bad), lambda: m.concatenate([v, bad]),
               lambda: m.where(np.ones(2, bool), v, bad)):
        with pytest.raises(TypeError):
            fn()


def test_complex_operands_raise_type_error(m):
    v = m.Variable([1.0, 2.0])
    with pytest.raises(TypeError):
        v + np.array([1j, 2j])
    with pytest.raises(TypeError):
        v * 1j


def test_inplace_with_bad_type(m):
    v = m.Variable([1.0, 2.0])
    with pytest.raises(TypeError):
        v += "a"
    with pytest.raises(TypeError):
        v *= None
    np.testing.assert_array_equal(v.data, [1.0, 2.0])


def test_astype_to_non_float(m):
    v = m.Variable([1.0, 2.0], requires_grad=True)
    for dt in (np.int32, int, "bool", np.complex64):
        with pytest.raises(TypeError):
            v.astype(dt)
        with pytest.raises(TypeError):
            m.astype(v, dt)


def test_bool_of_multi_element_variable(m):
    with pytest.raises(ValueError):
        bool(m.Variable([1.0, 2.0]))
    assert bool(m.Variable([1.0])) is True
    assert bool(m.Variable(0.0)) is False


# ---------------------------------------------------------------------------
# The state after errors
# ---------------------------------------------------------------------------
def test_errors_inside_no_grad_restore_grad_mode(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError):
        with m.no_grad():
            x + m.Variable(np.ones(3))
    assert m.is_grad_enabled()
    assert (x * 2).requires_grad


def test_error_mid_expression_leaves_no_trace(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    h = m.exp(x)
    with pytest.raises(ValueError):
        h + m.Variable(np.ones(3))
    with pytest.raises(ValueError):
        m.matmul(h, m.Variable(np.ones((3, 3))))
    h.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp([1.0, 2.0]), rtol=1e-15)


def test_messages_are_informative(m):
    """Messages name the op and the shapes in the NumPy tuple notation."""
    cases = [
        (lambda: m.Variable(np.ones((2, 3))) * m.Variable(np.ones((4, 5))), "multiply", [(2, 3), (4, 5)]),
        (lambda: m.reshape(m.Variable(np.ones((2, 3))), (5,)), "reshape", [(2, 3), (5,)]),
        (lambda: m.matmul(m.Variable(np.ones((2, 3, 4))), m.Variable(np.ones((5, 6)))), "matmul", [(2, 3, 4), (5, 6)]),
        (lambda: m.linear(m.Variable(np.ones((2, 3))), m.Variable(np.ones((4, 5)))), "linear", [(2, 3), (4, 5)]),
        (lambda: m.linear(m.Variable(np.ones((2, 3))), m.Variable(np.ones((3, 5))), m.Variable(np.ones(4))),
         "linear", [(2, 3), (3, 5), (4,)]),
        (lambda: m.linear(m.Variable(np.ones((2, 3))), m.Variable(np.ones(3))), "linear", [(2, 3), (3,)]),
    ]
    for fn, name, shapes in cases:
        with pytest.raises(ValueError) as info:
            fn()
        msg = str(info.value)
        assert re.search(name, msg), msg
        _names_shapes(msg, *shapes)


# ---------------------------------------------------------------------------
# Arguments of the wrong type are TypeErrors (never a bare RuntimeError)
# ---------------------------------------------------------------------------
BAD_ARGUMENT_CALLS = {
    "sum_axis_tuple_with_float": lambda m, x: m.sum(x, axis=(0, 1.0)),
    "mean_axis_list_of_str": lambda m, x: m.mean(x, axis=["a"]),
    "reshape_float_dim": lambda m, x: m.reshape(x, (2.0, 3)),
    "reshape_str": lambda m, x: m.reshape(x, "ab"),
    "method_reshape_float_dims": lambda m, x: x.reshape(3.0, 2.0),
    "transpose_float_axes": lambda m, x: m.transpose(x, (1.0, 0)),
    "method_transpose_str": lambda m, x: x.transpose("a", "b"),
    "broadcast_to_float_shape": lambda m, x: m.broadcast_to(x, (2.0, 3)),
    "concatenate_str_axis": lambda m, x: m.concatenate([x, x], axis="0"),
    "stack_float_axis": lambda m, x: m.stack([x, x], axis=1.5),
    "softmax_float_axis": lambda m, x: m.softmax(x, axis=0.5),
    "clip_str_bound": lambda m, x: m.clip(x, "a", 1.0),
    "clip_method_str_bound": lambda m, x: x.clip(0.0, "b"),
    "linear_str_weight": lambda m, x: m.linear(x, "w"),
    "linear_missing_weight": lambda m, x: m.linear(x),
    "linear_missing_x": lambda m, x: m.linear(weight=x),
    "linear_unknown_keyword": lambda m, x: m.linear(x, x.T, bais=None),
    "linear_too_many_arguments": lambda m, x: m.linear(x, x.T, None, None),
}


@pytest.mark.parametrize("name", list(BAD_ARGUMENT_CALLS))
def test_arguments_of_wrong_type_raise_type_error(m, name):
    x = m.Variable(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(TypeError):
        BAD_ARGUMENT_CALLS[name](m, x)
