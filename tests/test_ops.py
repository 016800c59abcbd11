"""Every op of the public API, in float64 and float32.

For each op and each shape case:
  * the value equals NumPy's,
  * the gradient of a random-weighted sum of the output (via ``.backward``)
    equals central finite differences of the NumPy function, and
  * it equals the gradient computed by the reference engine.

Then the exact kink conventions, float32 behaviour and dtype rules,
numerical stability of the normalisers, and NaN / inf propagation.
"""

import numpy as np
import pytest

import tapegrad as tg
from helpers import case_id as _ids
from helpers import rng_for, sample
from helpers import (
    assert_close,
    engines,
    loss_np,
    numeric_grads,
    reference_engine,
    value_and_grads,
    weights_like,
)

FD_RTOL = 1e-6
FD_ATOL = 1e-6
XENGINE_RTOL = 1e-9
VALUE_RTOL = 1e-12


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_logsumexp(x, axis=None, keepdims=False):
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis if axis is not None else tuple(range(x.ndim)))
    return out


def np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    return x - np_logsumexp(x, axis=axis, keepdims=True)


# ---------------------------------------------------------------------------
# The generic check: value vs NumPy, grad vs finite differences and reference
# ---------------------------------------------------------------------------
def check_op(fn, np_fn, arrays, rng, fd=True, value_rtol=VALUE_RTOL):
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    expected = np.asarray(np_fn(*arrays), dtype=np.float64)
    w = weights_like(expected.shape, rng)

    value, dtype, grads = value_and_grads(tg, fn, arrays, w)
    assert dtype == np.float64
    assert_close(value, expected, rtol=value_rtol, atol_scale=1e-14, msg="value vs NumPy")
    for a, g in zip(arrays, grads):
        assert g is not None, "an input that requires grad got no gradient"
        assert isinstance(g, np.ndarray)
        assert g.shape == a.shape
        assert g.dtype == np.float64

    if fd:
        num = numeric_grads(loss_np(np_fn, w), arrays)
        for i, (g, n) in enumerate(zip(grads, num)):
            assert_close(g, n, rtol=FD_RTOL, atol_scale=FD_ATOL, atol_floor=1e-9,
                         msg=f"grad of input {i} vs finite differences")

    ref = reference_engine()
    rvalue, rdtype, rgrads = value_and_grads(ref, fn, arrays, w)
    assert rdtype == np.float64
    assert_close(rvalue, value, rtol=XENGINE_RTOL, atol_scale=1e-14, msg="value vs reference")
    for i, (g, r) in enumerate(zip(grads, rgrads)):
        assert_close(g, r, rtol=XENGINE_RTOL, atol_scale=1e-12, msg=f"grad of input {i} vs reference")
    return value, grads


def test_engines_include_the_reference():
    mods = engines()
    assert tg in mods
    assert len(mods) == 2, "tapegrad.reference must be importable for the cross-engine tests"


# ---------------------------------------------------------------------------
# Unary elementwise
# ---------------------------------------------------------------------------
UNARY = {
    "negative": (lambda m, x: m.negative(x), np.negative, "normal"),
    "neg_operator": (lambda m, x: -x, np.negative, "normal"),
    "pos_operator": (lambda m, x: +x * 1.0, lambda x: x, "normal"),
    "exp": (lambda m, x: m.exp(x), np.exp, "normal"),
    "exp_method": (lambda m, x: x.exp(), np.exp, "normal"),
    "log": (lambda m, x: m.log(x), np.log, "positive"),
    "log_method": (lambda m, x: x.log(), np.log, "positive"),
    "log1p": (lambda m, x: m.log1p(x), np.log1p, "log1p"),
    "sqrt": (lambda m, x: m.sqrt(x), np.sqrt, "positive"),
    "sqrt_method": (lambda m, x: x.sqrt(), np.sqrt, "positive"),
    "sin": (lambda m, x: m.sin(x), np.sin, "normal"),
    "cos": (lambda m, x: m.cos(x), np.cos, "normal"),
    "tanh": (lambda m, x: m.tanh(x), np.tanh, "normal"),
    "tanh_method": (lambda m, x: x.tanh(), np.tanh, "normal"),
    "sigmoid": (lambda m, x: m.sigmoid(x), np_sigmoid, "normal"),
    "sigmoid_method": (lambda m, x: x.sigmoid(), np_sigmoid, "normal"),
    "relu": (lambda m, x: m.relu(x), lambda x: np.maximum(x, 0.0), "awayzero"),
    "relu_method": (lambda m, x: x.relu(), lambda x: np.maximum(x, 0.0), "awayzero"),
    "abs": (lambda m, x: m.abs(x), np.abs, "awayzero"),
    "abs_method": (lambda m, x: x.abs(), np.abs, "awayzero"),
    "abs_builtin": (lambda m, x: abs(x), np.abs, "awayzero"),
    "clip": (lambda m, x: m.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), "clip"),
    "clip_method": (lambda m, x: x.clip(-0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), "clip"),
    "clip_lo_only": (lambda m, x: m.clip(x, -0.5, None), lambda x: np.clip(x, -0.5, None), "clip"),
    "clip_hi_only": (lambda m, x: m.clip(x, None, 0.7), lambda x: np.clip(x, None, 0.7), "clip"),
    "clip_array_bounds": (
        lambda m, x: m.clip(x, np.full(x.shape[-1:] or (), -0.5), np.full(x.shape[-1:] or (), 0.7)),
        lambda x: np.clip(x, np.full(x.shape[-1:] or (), -0.5), np.full(x.shape[-1:] or (), 0.7)),
        "clip",
    ),
    "square_pow": (lambda m, x: x ** 2, np.square, "normal"),
    "cube_pow": (lambda m, x: x ** 3, lambda x: x ** 3, "normal"),
    "rsqrt_pow": (lambda m, x: x ** -0.5, lambda x: x ** -0.5, "positive"),
}
UNARY_SHAPES = [(), (1,), (5,), (2, 3), (1, 3, 1), (2, 1, 4)]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=_ids)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name, shape):
    fn, np_fn, domain = UNARY[name]
    rng = rng_for("unary", name, shape)
    x = sample(domain, shape, rng)
    check_op(fn, np_fn, [x], rng)


# ---------------------------------------------------------------------------
# Binary elementwise with broadcasting
# ---------------------------------------------------------------------------
def _distinct_pair(sa, sb, rng):
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    for _ in range(200):
        if np.min(np.abs(a - b), initial=np.inf) > 0.05:
            return a, b
        a, b = rng.normal(size=sa), rng.normal(size=sb)
    raise AssertionError("could not sample a pair without ties")


def _pair(domain, sa, sb, rng):
    if domain == "normal":
        return rng.normal(size=sa), rng.normal(size=sb)
    if domain == "divide":
        return rng.normal(size=sa), sample("nonzero", sb, rng)
    if domain == "power":
        return sample("positive", sa, rng), rng.uniform(-2.0, 2.0, size=sb)
    if domain == "distinct":
        return _distinct_pair(sa, sb, rng)
    raise AssertionError(domain)


BINARY = {
    "add": (lambda m, a, b: m.add(a, b), np.add, "normal"),
    "add_operator": (lambda m, a, b: a + b, np.add, "normal"),
    "subtract": (lambda m, a, b: m.subtract(a, b), np.subtract, "normal"),
    "sub_operator": (lambda m, a, b: a - b, np.subtract, "normal"),
    "multiply": (lambda m, a, b: m.multiply(a, b), np.multiply, "normal"),
    "mul_operator": (lambda m, a, b: a * b, np.multiply, "normal"),
    "divide": (lambda m, a, b: m.divide(a, b), np.divide, "divide"),
    "div_operator": (lambda m, a, b: a / b, np.divide, "divide"),
    "power": (lambda m, a, b: m.power(a, b), np.power, "power"),
    "pow_operator": (lambda m, a, b: a ** b, np.power, "power"),
    "maximum": (lambda m, a, b: m.maximum(a, b), np.maximum, "distinct"),
    "minimum": (lambda m, a, b: m.minimum(a, b), np.minimum, "distinct"),
}
PAIRS = [
    ((), ()),
    ((), (2, 3)),
    ((2, 3), ()),
    ((2, 3), (2, 3)),
    ((2, 3), (1, 3)),
    ((1, 3), (2, 3)),
    ((4, 1, 3), (2, 3)),
    ((2, 3), (4, 1, 3)),
    ((3, 1), (1, 4)),
    ((1,), (2, 1)),
    ((2, 1, 3), (2, 4, 1)),
    ((5,), (1,)),
    ((1, 1), (3,)),
]


@pytest.mark.parametrize("shapes", PAIRS, ids=_ids)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary(name, shapes):
    fn, np_fn, domain = BINARY[name]
    rng = rng_for("binary", name, shapes)
    a, b = _pair(domain, shapes[0], shapes[1], rng)
    check_op(fn, np_fn, [a, b], rng)


CONST_OPERANDS = {
    "var+arr": (lambda m, x: x + np.arange(3.0), lambda x: x + np.arange(3.0)),
    "arr+var": (lambda m, x: np.arange(3.0) + x, lambda x: np.arange(3.0) + x),
    "arr-var": (lambda m, x: np.arange(3.0) - x, lambda x: np.arange(3.0) - x),
    "2*var": (lambda m, x: 2 * x, lambda x: 2 * x),
    "var*2.5": (lambda m, x: x * 2.5, lambda x: x * 2.5),
    "1-var": (lambda m, x: 1 - x, lambda x: 1 - x),
    "var/3": (lambda m, x: x / 3, lambda x: x / 3),
    "3/var": (lambda m, x: 3.0 / x, lambda x: 3.0 / x),
    "arr/var": (lambda m, x: np.full(3, 2.0) / x, lambda x: np.full(3, 2.0) / x),
    "var/arr": (lambda m, x: x / np.array([1.0, 2.0, 4.0]), lambda x: x / np.array([1.0, 2.0, 4.0])),
    "2**var": (lambda m, x: 2.0 ** x, lambda x: 2.0 ** x),
    "var**2.5": (lambda m, x: x ** 2.5, lambda x: x ** 2.5),
    "var**arr": (lambda m, x: x ** np.array([0.5, 1.5, 3.0]), lambda x: x ** np.array([0.5, 1.5, 3.0])),
    "arr**var": (lambda m, x: np.array([0.5, 1.5, 3.0]) ** x, lambda x: np.array([0.5, 1.5, 3.0]) ** x),
    "max(var,arr)": (lambda m, x: m.maximum(x, np.array([0.0, 5.0, -5.0])),
                     lambda x: np.maximum(x, np.array([0.0, 5.0, -5.0]))),
    "min(list,var)": (lambda m, x: m.minimum([0.0, 5.0, -5.0], x), lambda x: np.minimum([0.0, 5.0, -5.0], x)),
    "add(1,var)": (lambda m, x: m.add(1, x), lambda x: 1 + x),
    "multiply(var,list)": (lambda m, x: m.multiply(x, [1.0, -2.0, 3.0]), lambda x: x * np.array([1.0, -2.0, 3.0])),
    "arr@var": (lambda m, x: np.arange(6.0).reshape(2, 3) @ x, lambda x: np.arange(6.0).reshape(2, 3) @ x),
    "var@arr": (lambda m, x: x @ np.arange(6.0).reshape(3, 2), lambda x: x @ np.arange(6.0).reshape(3, 2)),
    "list@var": (lambda m, x: [1.0, 2.0, 3.0] @ x, lambda x: np.array([1.0, 2.0, 3.0]) @ x),
}


@pytest.mark.parametrize("name", list(CONST_OPERANDS))
def test_binary_with_constant_operand(name):
    fn, np_fn = CONST_OPERANDS[name]
    rng = rng_for("const", name)
    x = rng.uniform(0.6, 1.6, size=3)
    check_op(fn, np_fn, [x], rng)


WHERE_SHAPES = [
    ((2, 3), (2, 3), (2, 3)),
    ((2, 3), (1, 3), (2, 1)),
    ((3,), (2, 3), ()),
    ((), (2, 3), (2, 3)),
    ((4, 1, 3), (2, 3), (1,)),
    ((2, 1), (), ()),
]


@pytest.mark.parametrize("shapes", WHERE_SHAPES, ids=_ids)
def test_where(shapes):
    rng = rng_for("where", shapes)
    cond = rng.random(size=shapes[0]) < 0.5
    if cond.ndim:
        cond.flat[0] = True
        cond.flat[-1] = False
    x, y = rng.normal(size=shapes[1]), rng.normal(size=shapes[2])
    check_op(lambda m, a, b: m.where(cond, a, b), lambda a, b: np.where(cond, a, b), [x, y], rng)


def test_where_condition_from_comparison_and_constant_branches():
    rng = rng_for("where2")
    x = rng.normal(size=(3, 4))
    check_op(lambda m, a: m.where(a > 0, a, 0.1 * a), lambda a: np.where(a > 0, a, 0.1 * a), [x], rng)
    check_op(lambda m, a: m.where(a > 0, 1.0, a), lambda a: np.where(a > 0, 1.0, a), [x], rng)
    check_op(lambda m, a: m.where(a > 0, np.zeros((3, 4)), a * a), lambda a: np.where(a > 0, 0.0, a * a), [x], rng)


# ---------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------
REDUCTION_CASES = [
    ((), None),
    ((), ()),
    ((4,), None),
    ((4,), 0),
    ((4,), -1),
    ((4,), (0,)),
    ((2, 3), None),
    ((2, 3), 0),
    ((2, 3), 1),
    ((2, 3), -1),
    ((2, 3), -2),
    ((2, 3), (0, 1)),
    ((2, 3), (1, 0)),
    ((2, 3), ()),
    ((2, 3, 4), 1),
    ((2, 3, 4), (0, 2)),
    ((2, 3, 4), (2, 0)),
    ((2, 3, 4), (-1, -3)),
    ((2, 3, 4), (0, 1, 2)),
    ((2, 1, 3), 1),
    ((2, 1, 3), (0, 1)),
    ((1, 1), None),
    ((3, 1, 1, 2), (1, 2)),
]

NP_REDUCE = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "logsumexp": np_logsumexp,
}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axis", REDUCTION_CASES, ids=_ids)
@pytest.mark.parametrize(
    "form,op", [("function", op) for op in NP_REDUCE] + [("method", op) for op in NP_REDUCE if op != "logsumexp"]
)
def test_reduction(form, op, shape, axis, keepdims):
    rng = rng_for("reduce", form, op, shape, axis, keepdims)
    x = sample("distinct" if op in ("max", "min") else "normal", shape, rng)
    np_fn = NP_REDUCE[op]
    if form == "function":
        def fn(m, v):
            return getattr(m, op)(v, axis=axis, keepdims=keepdims)
    else:
        def fn(m, v):
            return getattr(v, op)(axis=axis, keepdims=keepdims)
    value, _ = check_op(fn, lambda a: np_fn(a, axis=axis, keepdims=keepdims), [x], rng)
    assert value.shape == np.sum(x, axis=axis, keepdims=keepdims).shape


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "logsumexp"])
def test_reduction_positional_and_default_arguments(op):
    rng = rng_for("reduce-args", op)
    x = sample("distinct", (3, 4), rng)
    np_fn = NP_REDUCE[op]
    f = getattr(tg, op)
    assert_close(f(tg.Variable(x)), np_fn(x))
    assert f(tg.Variable(x)).shape == ()
    assert_close(f(tg.Variable(x), 1), np_fn(x, axis=1))
    assert_close(f(tg.Variable(x), 0, True), np_fn(x, axis=0, keepdims=True))
    assert_close(f(x, axis=-1), np_fn(x, axis=-1))  # a plain array is accepted too
    if op != "logsumexp":
        assert_close(getattr(tg.Variable(x), op)(), np_fn(x))
        assert_close(getattr(tg.Variable(x), op)(1), np_fn(x, axis=1))
    # numpy integer axes
    assert_close(f(tg.Variable(x), axis=np.int64(1)), np_fn(x, axis=1))


# ---------------------------------------------------------------------------
# Normalisers
# ---------------------------------------------------------------------------
SOFTMAX_CASES = [
    ((5,), -1),
    ((5,), 0),
    ((2, 3), -1),
    ((2, 3), 0),
    ((2, 3), 1),
    ((2, 3), -2),
    ((2, 3, 4), 1),
    ((2, 3, 4), -3),
    ((1, 3), 0),
    ((3, 1), 1),
]


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=_ids)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(op, shape, axis):
    rng = rng_for("softmax", op, shape, axis)
    x = rng.normal(size=shape) * 2
    np_fn = np_softmax if op == "softmax" else np_log_softmax
    check_op(lambda m, v: getattr(m, op)(v, axis=axis), lambda a: np_fn(a, axis=axis), [x], rng)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_default_axis_is_last(op):
    rng = rng_for("softmax-default", op)
    x = rng.normal(size=(2, 3, 4))
    np_fn = np_softmax if op == "softmax" else np_log_softmax
    check_op(lambda m, v: getattr(m, op)(v), lambda a: np_fn(a, axis=-1), [x], rng)
    assert_close(getattr(tg, op)(tg.Variable(x), 1), np_fn(x, axis=1))


def test_softmax_rows_sum_to_one_and_gradient_of_sum_is_zero():
    rng = rng_for("softmax-sum")
    x = tg.Variable(rng.normal(size=(4, 6)), requires_grad=True)
    y = tg.softmax(x, axis=1)
    assert_close(y.data.sum(axis=1), np.ones(4))
    y.sum().backward()
    assert np.max(np.abs(x.grad)) < 1e-15


# ---------------------------------------------------------------------------
# Shape ops
# ---------------------------------------------------------------------------
RESHAPES = [
    ((2, 3), (3, 2)),
    ((2, 3), (6,)),
    ((2, 3), (-1,)),
    ((2, 3), (1, -1, 1)),
    ((2, 3, 4), (4, -1)),
    ((6,), (2, 3)),
    ((), (1,)),
    ((1,), ()),
    ((), (1, 1)),
    ((1, 1, 1), ()),
    ((2, 3), (2, 3)),
]


@pytest.mark.parametrize(
    "form,shape,new",
    [(f, s, n) for f in ("function", "method_tuple", "method_varargs") for s, n in RESHAPES
     if not (f == "method_varargs" and n == ())],  # v.reshape() with no arguments is not a reshape to ()
    ids=_ids,
)
def test_reshape(form, shape, new):
    rng = rng_for("reshape", form, shape, new)
    x = rng.normal(size=shape)
    if form == "function":
        def fn(m, v):
            return m.reshape(v, new)
    elif form == "method_tuple":
        def fn(m, v):
            return v.reshape(new)
    else:
        def fn(m, v):
            return v.reshape(*new)
    check_op(fn, lambda a: np.reshape(a, new), [x], rng)


TRANSPOSES = [
    ((2, 3), None),
    ((2, 3), (1, 0)),
    ((2, 3), (0, 1)),
    ((2, 3, 4), None),
    ((2, 3, 4), (1, 2, 0)),
    ((2, 3, 4), (2, 0, 1)),
    ((2, 3, 4), (-1, 0, 1)),
    ((1, 3, 1, 2), (3, 1, 0, 2)),
    ((5,), None),
    ((5,), (0,)),
    ((), None),
]


@pytest.mark.parametrize(
    "form,shape,axes",
    [(f, s, a) for f in ("function", "method", "T") for s, a in TRANSPOSES if f != "T" or a is None],
    ids=_ids,
)
def test_transpose(form, shape, axes):
    rng = rng_for("transpose", form, shape, axes)
    x = rng.normal(size=shape)
    if form == "function":
        def fn(m, v):
            return m.transpose(v, axes)
    elif form == "method":
        def fn(m, v):
            return v.transpose() if axes is None else v.transpose(*axes)
    else:
        def fn(m, v):
            return v.T
    check_op(fn, lambda a: np.transpose(a, axes), [x], rng)


def test_transpose_method_accepts_a_tuple():
    x = np.arange(24.0).reshape(2, 3, 4)
    assert_close(tg.Variable(x).transpose((2, 0, 1)), np.transpose(x, (2, 0, 1)))


BROADCASTS = [
    ((3,), (2, 3)),
    ((1, 3), (4, 3)),
    ((), (2, 2)),
    ((), ()),
    ((2, 1), (3, 2, 4)),
    ((2, 3), (2, 3)),
    ((1,), (5,)),
]


@pytest.mark.parametrize("shape,target", BROADCASTS, ids=_ids)
def test_broadcast_to(shape, target):
    rng = rng_for("broadcast", shape, target)
    x = rng.normal(size=shape)
    check_op(lambda m, v: m.broadcast_to(v, target), lambda a: np.broadcast_to(a, target), [x], rng)


CONCATS = [
    ([(2, 3), (4, 3)], 0),
    ([(2, 3), (2, 1), (2, 2)], 1),
    ([(2, 3), (2, 5)], -1),
    ([(1, 2, 3), (1, 2, 3)], 2),
    ([(1, 2, 3), (2, 2, 3)], -3),
    ([(3,)], 0),
    ([(2,), (3,), (1,)], 0),
    ([(2, 0), (2, 3)], 1),
]


@pytest.mark.parametrize("shapes,axis", CONCATS, ids=_ids)
def test_concatenate(shapes, axis):
    rng = rng_for("concat", shapes, axis)
    xs = [rng.normal(size=s) for s in shapes]
    check_op(lambda m, *vs: m.concatenate(list(vs), axis=axis), lambda *a: np.concatenate(a, axis=axis), xs, rng)


def test_concatenate_default_axis_tuple_input_and_mixed_operands():
    rng = rng_for("concat2")
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(1, 3))
    c = np.arange(3.0).reshape(1, 3)
    check_op(lambda m, x, y: m.concatenate((x, c, y)), lambda x, y: np.concatenate((x, c, y)), [a, b], rng)


STACKS = [
    ([(2, 3), (2, 3)], 0),
    ([(2, 3)] * 3, 1),
    ([(2, 3)] * 2, 2),
    ([(2, 3)] * 2, -1),
    ([(4,)] * 3, -2),
    ([(), (), ()], 0),
    ([(1,)], 0),
]


@pytest.mark.parametrize("shapes,axis", STACKS, ids=_ids)
def test_stack(shapes, axis):
    rng = rng_for("stack", shapes, axis)
    xs = [rng.normal(size=s) for s in shapes]
    check_op(lambda m, *vs: m.stack(list(vs), axis=axis), lambda *a: np.stack(a, axis=axis), xs, rng)


def test_stack_default_axis():
    rng = rng_for("stack2")
    xs = [rng.normal(size=(3,)) for _ in range(4)]
    check_op(lambda m, *vs: m.stack(vs), lambda *a: np.stack(a), xs, rng)


# ---------------------------------------------------------------------------
# Matrix product
# ---------------------------------------------------------------------------
MATMULS = [
    ((4,), (4,)),
    ((4,), (4, 3)),
    ((3, 4), (4,)),
    ((3, 4), (4, 2)),
    ((1, 4), (4, 1)),
    ((1, 1), (1, 1)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((5, 3, 4), (2, 1, 4, 2)),
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((1, 3, 4), (2, 4, 2)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (1, 3, 4, 2)),
    ((7, 9), (9, 8)),
]


@pytest.mark.parametrize("shapes", MATMULS, ids=_ids)
@pytest.mark.parametrize("form", ["function", "operator"])
def test_matmul(form, shapes):
    rng = rng_for("matmul", form, shapes)
    a, b = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])
    if form == "function":
        def fn(m, x, y):
            return m.matmul(x, y)
    else:
        def fn(m, x, y):
            return x @ y
    value, _ = check_op(fn, np.matmul, [a, b], rng, value_rtol=1e-11)
    assert value.shape == np.matmul(a, b).shape


def test_matmul_with_only_one_side_requiring_grad():
    rng = rng_for("matmul-one-side")
    a, b = rng.normal(size=(2, 1, 3, 4)), rng.normal(size=(5, 4, 2))
    w = weights_like((2, 5, 3, 2), rng)
    for requires in [(True, False), (False, True)]:
        va = tg.Variable(a, requires_grad=requires[0])
        vb = tg.Variable(b, requires_grad=requires[1])
        (tg.matmul(va, vb) * w).sum().backward()
        num = numeric_grads(loss_np(np.matmul, w), [a, b])
        for v, n, r in zip((va, vb), num, requires):
            if r:
                assert_close(v.grad, n, rtol=FD_RTOL, atol_scale=FD_ATOL)
            else:
                assert v.grad is None


def test_matmul_large_enough_to_release_the_gil():
    # The binding releases the GIL above a size threshold: same results.
    rng = rng_for("matmul-big")
    a, b = rng.normal(size=(2, 64, 96)), rng.normal(size=(96, 80))
    va, vb = tg.Variable(a, requires_grad=True), tg.Variable(b, requires_grad=True)
    out = va @ vb
    assert_close(out, a @ b, rtol=1e-11, atol_scale=1e-13)
    g = np.ones(out.shape)
    out.backward(g)
    assert_close(va.grad, g @ b.T, rtol=1e-11, atol_scale=1e-13)
    assert_close(vb.grad, np.einsum("bij,bik->jk", a, g), rtol=1e-11, atol_scale=1e-13)


# ---------------------------------------------------------------------------
# astype
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["function", "method"])
@pytest.mark.parametrize("name", ["tapegrad", "reference"])
def test_astype_differentiable(name, form):
    m = tg if name == "tapegrad" else reference_engine()
    rng = rng_for("astype", form)
    x = rng.normal(size=(2, 3))
    w = weights_like((2, 3), rng)
    v = m.Variable(x, requires_grad=True)
    y = m.astype(v, np.float32) if form == "function" else v.astype(np.float32)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, x.astype(np.float32))
    z = y * m.Variable(w.astype(np.float32)) + y ** 2
    back = z.astype("float64") if form == "method" else m.astype(z, np.dtype(np.float64))
    assert back.dtype == np.float64
    back.sum().backward()
    assert v.grad.dtype == np.float64
    xf = x.astype(np.float32)
    expected = (w.astype(np.float32) + 2 * xf).astype(np.float64)
    assert_close(v.grad, expected, rtol=1e-6, atol_scale=1e-7)


def test_astype_same_dtype_is_a_differentiable_copy():
    x = tg.Variable([1.0, 2.0], requires_grad=True)
    y = x.astype(np.float64)
    assert y is not x
    assert not np.shares_memory(y.data, x.data)
    (y * 3).sum().backward()
    assert_close(x.grad, [3.0, 3.0])


# ---------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------
_mrng = np.random.default_rng(1234)
MASK_FULL = _mrng.random((3, 4, 5)) < 0.4
MASK_AX0 = np.array([True, False, True])
MASK_AX1 = np.array([False, True, True, False])

KEYS = [
    0,
    -1,
    2,
    np.int64(1),
    (1, 2),
    (1, 2, 3),
    (-1, -2, -3),
    slice(1, None),
    slice(None, 2),
    slice(None, None, -1),
    slice(None, None, -2),
    (slice(None), slice(3, 0, -1)),
    (slice(None), slice(None), slice(None, None, -3)),
    (slice(1, 3), slice(0, 4, 2), 4),
    None,
    (None, 0),
    (None, slice(None, None, -1), None, 2),
    Ellipsis,
    (Ellipsis, 1),
    (0, Ellipsis),
    (Ellipsis, None),
    (1, Ellipsis, slice(None, None, -1)),
    np.array([0, 0, 2, 1, 0]),
    [2, 2],
    [-1, 0, -1],
    (np.array([0, 1, 1]), np.array([2, 2, 0])),
    (slice(None), np.array([3, 3, 0])),
    (np.array([[0, 1], [1, 1]]),),
    (np.array([0, 2, 0]), slice(None), np.array([4, 4, 1])),
    MASK_FULL,
    MASK_AX0,
    (slice(None), MASK_AX1),
    (MASK_AX0, Ellipsis, -1),
    (slice(None, None, -1), [0, 0, 1]),
    (1, slice(None), [4, 0, 4]),
    (None, Ellipsis, [1, 1], slice(None, None, -2)),
    (slice(5, None),),  # empty result
]


@pytest.mark.parametrize("key", KEYS, ids=_ids)
def test_getitem(key):
    rng = rng_for("getitem", _ids(key))
    x = rng.normal(size=(3, 4, 5))
    value, _ = check_op(lambda m, v: v[key], lambda a: a[key], [x], rng)
    assert value.shape == x[key].shape


ZERO_D_KEYS = [(), Ellipsis, None, (None, None), (Ellipsis, None)]


@pytest.mark.parametrize("key", ZERO_D_KEYS, ids=_ids)
def test_getitem_zero_d(key):
    rng = rng_for("getitem0", _ids(key))
    x = np.asarray(rng.normal())
    check_op(lambda m, v: v[key], lambda a: a[key], [x], rng)


def test_getitem_repeated_indices_accumulate_exactly():
    x = tg.Variable(np.arange(5.0), requires_grad=True)
    y = x[[0, 0, 0, 3, 3]] * np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 0.0, 0.0, 9.0, 0.0])
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.0, 12.0, 15.0])


def test_getitem_chained_and_out_of_range():
    rng = rng_for("getitem-chain")
    x = rng.normal(size=(4, 5))
    check_op(lambda m, v: v[1:][::-1, 2:][[0, 0, 2]], lambda a: a[1:][::-1, 2:][[0, 0, 2]], [x], rng)
    v = tg.Variable(x)
    with pytest.raises(IndexError):
        v[4]
    with pytest.raises(IndexError):
        v[:, [0, 5]]


# ---------------------------------------------------------------------------
# Exact kink conventions
# ---------------------------------------------------------------------------
def _grad(fn, x):
    v = tg.Variable(x, requires_grad=True)
    fn(v).sum().backward()
    return v.grad


def test_kink_relu_at_zero():
    g = _grad(tg.relu, np.array([-1.0, 0.0, 1.0, -0.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0, 0.0])
    g = _grad(lambda v: v.relu(), np.array(0.0))
    assert g == 0.0


def test_kink_abs_at_zero():
    g = _grad(tg.abs, np.array([-2.0, 0.0, 3.0, -0.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0, 0.0])
    assert _grad(abs, np.array(0.0)) == 0.0


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_kink_maximum_minimum_ties_split_evenly(op):
    a = tg.Variable([1.0, 2.0, 3.0], requires_grad=True)
    b = tg.Variable([1.0, 5.0, 0.0], requires_grad=True)
    getattr(tg, op)(a, b).sum().backward()
    if op == "maximum":
        np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])
        np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])
    else:
        np.testing.assert_array_equal(a.grad, [0.5, 1.0, 0.0])
        np.testing.assert_array_equal(b.grad, [0.5, 0.0, 1.0])


def test_kink_maximum_ties_with_broadcasting():
    a = tg.Variable([[1.0, 2.0], [2.0, 0.0]], requires_grad=True)
    b = tg.Variable(2.0, requires_grad=True)
    tg.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [[0.0, 0.5], [0.5, 0.0]])
    assert b.grad == 3.0  # 1 (1 < 2) + 0.5 (tie) + 0.5 (tie) + 1 (0 < 2)
    assert b.grad.shape == ()


@pytest.mark.parametrize("op", ["max", "min"])
def test_kink_max_min_reduction_ties_split_evenly(op):
    x = np.array([[3.0, 1.0, 3.0, 3.0], [2.0, 2.0, -1.0, 0.0]])
    if op == "min":
        x = -x
    g = _grad(lambda v: getattr(tg, op)(v, axis=1), x)
    np.testing.assert_array_equal(g, [[1 / 3, 0.0, 1 / 3, 1 / 3], [0.5, 0.5, 0.0, 0.0]])
    g = _grad(lambda v: getattr(v, op)(), x)
    np.testing.assert_array_equal(g, [[1 / 3, 0.0, 1 / 3, 1 / 3], [0.0, 0.0, 0.0, 0.0]])
    g = _grad(lambda v: getattr(tg, op)(v, axis=0, keepdims=True), x)
    np.testing.assert_array_equal(g, [[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    g = _grad(lambda v: getattr(tg, op)(v), np.full((2, 2), 7.0))
    np.testing.assert_array_equal(g, np.full((2, 2), 0.25))


def test_kink_clip_inclusive_bounds():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, -1.0, 1.0), x), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad(lambda v: v.clip(-1.0, 1.0), x), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, -1.0, None), x), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, None, 1.0), x), [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, 0.0, 0.0), x), [0, 0, 1, 0, 0])


def test_kink_clip_inclusive_bounds_with_array_bounds():
    # Same convention when the bounds are arrays: the gradient passes where
    # a_min <= x <= a_max, fully (not split like maximum/minimum ties).
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    lo, hi = np.full(5, -1.0), np.full(5, 1.0)
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, lo, hi), x), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad(lambda v: v.clip(lo, None), x), [0, 1, 1, 1, 1])


def test_clip_values_match_numpy_including_reversed_bounds():
    x = np.array([-3.0, 0.0, 2.0, 5.0])
    for lo, hi in [(-1.0, 1.0), (3.0, 1.0), (2.0, 2.0), (None, 0.5), (0.5, None)]:
        np.testing.assert_array_equal(tg.clip(tg.Variable(x), lo, hi).data, np.clip(x, lo, hi), err_msg=f"{lo},{hi}")


def test_kink_power_special_cases():
    # d/da a**0 at a = 0 is 0 (not 0 * 0**-1 = nan)
    a = tg.Variable([0.0, 2.0, -1.5], requires_grad=True)
    b = tg.Variable([0.0, 0.0, 0.0], requires_grad=True)
    y = a ** b
    np.testing.assert_array_equal(y.data, [1.0, 1.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 0.0, 0.0])
    # d/db 0**b at b >= 0 is 0 (not 0 * log 0 = nan); b = 0 included
    assert_close(b.grad, [0.0, np.log(2.0), np.nan])

    a = tg.Variable([0.0, 0.0, 0.0], requires_grad=True)
    b = tg.Variable([0.5, 2.0, 3.0], requires_grad=True)
    y = tg.power(a, b)
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(b.grad, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(a.grad, [np.inf, 0.0, 0.0])

    # python-scalar exponent 0 and base 0
    a = tg.Variable(0.0, requires_grad=True)
    (a ** 0).backward()
    assert a.grad == 0.0
    b = tg.Variable(1.5, requires_grad=True)
    (0.0 ** b).backward()
    assert b.grad == 0.0


def test_kink_conventions_match_reference():
    ref = reference_engine()
    x = np.array([-1.0, 0.0, 0.0, 1.0, 2.0, 2.0])
    cases = [
        lambda m, v: m.relu(v),
        lambda m, v: m.abs(v),
        lambda m, v: m.maximum(v, 0.0),
        lambda m, v: m.minimum(v, 2.0),
        lambda m, v: m.max(v),
        lambda m, v: m.min(v.reshape(2, 3), axis=1),
        lambda m, v: m.clip(v, 0.0, 2.0),
        lambda m, v: v ** 0.0,
        lambda m, v: m.power(v, m.Variable(np.zeros(6))),
    ]
    for i, fn in enumerate(cases):
        grads = []
        for m in (tg, ref):
            v = m.Variable(x, requires_grad=True)
            fn(m, v).sum().backward()
            grads.append(v.grad)
        np.testing.assert_array_equal(grads[0], grads[1], err_msg=f"case {i}")


# ---------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------
F32_CASES = {
    "exp": (lambda m, x: m.exp(x), "normal", (2, 3)),
    "log": (lambda m, x: m.log(x), "positive", (2, 3)),
    "tanh_sigmoid": (lambda m, x: m.tanh(x) * m.sigmoid(x), "normal", (4,)),
    "sqrt_sin_cos": (lambda m, x: m.sqrt(x) + m.sin(x) * m.cos(x), "positive", (3, 2)),
    "log1p": (lambda m, x: m.log1p(x), "log1p", (5,)),
    "relu_abs": (lambda m, x: m.relu(x) + m.abs(x), "awayzero", (2, 2)),
    "clip": (lambda m, x: m.clip(x, -0.5, 0.7), "clip", (6,)),
    "div_pow": (lambda m, x: (x + 3.0) / (x * x + 1.0) + x ** 2, "normal", (2, 3)),
    "power_var": (lambda m, x: m.power(x, x), "positive", (4,)),
    "max_min": (lambda m, x: m.maximum(x, 0.1) + m.max(x, axis=0) - m.min(x, axis=1, keepdims=True), "distinct", (2, 4)),
    "reductions": (lambda m, x: m.sum(x, axis=0) + m.mean(x, axis=0) + m.logsumexp(x, axis=0), "normal", (3, 4)),
    "softmax": (lambda m, x: m.softmax(x, axis=-1) * m.log_softmax(x, axis=0), "normal", (3, 4)),
    "matmul": (lambda m, x: x @ x.T + m.matmul(x[0], x.T), "normal", (3, 4)),
    "shape_ops": (lambda m, x: m.concatenate([x.reshape(-1), m.stack([x[0], x[1]]).reshape(-1)])
                  * m.broadcast_to(x[0, 0], (12,)), "normal", (2, 3)),
    "transpose_getitem": (lambda m, x: m.transpose(x, (1, 0))[::-1, [0, 0]], "normal", (2, 3)),
    "where": (lambda m, x: m.where(x.data > 0, x, x * x), "normal", (3, 3)),
    "scalar_0d": (lambda m, x: x * 2.5 - 1 + x ** 3, "normal", ()),
}


@pytest.mark.parametrize("name", list(F32_CASES))
@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
def test_float32_close_to_float64(engine, name):
    m = tg if engine == "tapegrad" else reference_engine()
    fn, domain, shape = F32_CASES[name]
    rng = rng_for("f32", name)
    x = sample(domain, shape, rng)
    out64 = fn(m, m.Variable(x))
    w = weights_like(out64.shape, rng)
    v32, dt32, g32 = value_and_grads(m, fn, [x.astype(np.float32)], w)
    v64, dt64, g64 = value_and_grads(m, fn, [x], w)
    assert dt32 == np.float32
    assert dt64 == np.float64
    assert v32.dtype == np.float32
    assert g32[0].dtype == np.float32
    assert_close(v32, v64, rtol=1e-5, atol_scale=1e-6)
    assert_close(g32[0], g64[0], rtol=1e-5, atol_scale=1e-5)


def test_float32_values_match_numpy_float32():
    rng = rng_for("f32-numpy")
    x = rng.normal(size=(3, 4)).astype(np.float32)
    v = tg.Variable(x)
    for got, want in [
        (tg.exp(v), np.exp(x)),
        (v * 2.5, x * 2.5),
        (v @ v.T, x @ x.T),
        (tg.sum(v, axis=1), np.sum(x, axis=1)),
        (tg.tanh(v), np.tanh(x)),
    ]:
        assert got.dtype == np.float32
        assert_close(got, want, rtol=1e-6, atol_scale=1e-6)


# ---------------------------------------------------------------------------
# dtype rules
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
def test_dtype_promotion_rules(engine):
    m = tg if engine == "tapegrad" else reference_engine()
    f32 = m.Variable(np.ones(3, np.float32), requires_grad=True)
    f64 = m.Variable(np.ones(3), requires_grad=True)
    # float32 op Python scalar stays float32, on either side
    for out in [f32 + 1, 1 + f32, f32 * 2.5, 2.5 * f32, f32 / 3, 3 / f32, f32 - True, f32 ** 2, 2.0 ** f32,
                m.maximum(f32, 0.5), m.minimum(0.5, f32), m.where(np.ones(3, bool), f32, 0.0),
                m.clip(f32, 0.0, 0.5), -f32, m.exp(f32), m.sum(f32), m.mean(f32), f32[0], m.softmax(f32)]:
        assert out.dtype == np.float32, out
    # float32 op float64 -> float64 (Variables, arrays, NumPy float64 scalars)
    for out in [f32 + f64, f64 * f32, f32 @ f64, m.maximum(f32, f64), m.where(np.ones(3, bool), f32, f64),
                m.concatenate([f32, f64]), m.stack([f64, f32]), f32 + np.ones(3), np.ones(3) * f32]:
        assert out.dtype == np.float64, out
    # float32 op float32 arrays / NumPy float32 scalars stays float32
    for out in [f32 + np.ones(3, np.float32), np.float32(2.0) * f32, f32 * np.float32(2.0)]:
        assert out.dtype == np.float32, out
    # int / bool data -> float64
    for data in [np.arange(3), [1, 2, 3], 7, True, np.array([True, False]), np.arange(3, dtype=np.int8),
                 np.arange(3, dtype=np.uint16)]:
        v = m.Variable(data)
        assert v.dtype == np.float64
        np.testing.assert_array_equal(v.data, np.asarray(data, dtype=np.float64))
    assert m.Variable(1.5).dtype == np.float64
    assert m.Variable(np.float32(1.5)).dtype == np.float32
    assert m.Variable(np.ones(2, np.float32)).dtype == np.float32
    assert m.Variable(np.ones(2), dtype=np.float32).dtype == np.float32
    assert m.Variable(np.ones(2, np.float32), dtype="float64").dtype == np.float64
    # float64 op int array -> float64
    assert (f64 + np.arange(3)).dtype == np.float64


@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
def test_numpy_float64_scalar_promotes_float32_like_numpy(engine):
    # NumPy 2 (NEP 50): only Python scalars are "weak"; np.float64 is a float64
    # (even though it subclasses Python float), so float32 op np.float64 -> float64.
    m = tg if engine == "tapegrad" else reference_engine()
    f32 = m.Variable(np.ones(3, np.float32))
    assert (np.ones(3, np.float32) * np.float64(2.0)).dtype == np.float64
    assert (f32 * np.float64(2.0)).dtype == np.float64
    assert (np.float64(2.0) * f32).dtype == np.float64
    assert m.add(f32, np.float64(2.0)).dtype == np.float64


def test_mixed_dtype_gradients_keep_each_input_dtype():
    for m in engines():
        a = m.Variable(np.array([1.0, 2.0], np.float32), requires_grad=True)
        b = m.Variable(np.array([3.0, 4.0]), requires_grad=True)
        y = a * b
        assert y.dtype == np.float64
        y.sum().backward()
        assert a.grad.dtype == np.float32, m
        assert b.grad.dtype == np.float64, m
        np.testing.assert_array_equal(a.grad, [3.0, 4.0])
        np.testing.assert_array_equal(b.grad, [1.0, 2.0])


# ---------------------------------------------------------------------------
# Numerical stability
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalisers_stable_at_huge_logits(dtype):
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4 + 2.0]], dtype=dtype)
    shifted = x.astype(np.float64) - x.astype(np.float64).max(axis=1, keepdims=True)
    e = np.exp(shifted)
    want_sm = e / e.sum(axis=1, keepdims=True)
    want_lse = x.astype(np.float64).max(axis=1) + np.log(e.sum(axis=1))

    v = tg.Variable(x, requires_grad=True)
    sm = tg.softmax(v, axis=1)
    lsm = tg.log_softmax(v, axis=1)
    lse = tg.logsumexp(v, axis=1)
    for out in (sm, lsm, lse):
        assert np.all(np.isfinite(out.data)), out
        assert out.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert_close(sm, want_sm, rtol=rtol, atol_scale=rtol)
    assert_close(lsm, shifted - np.log(e.sum(axis=1, keepdims=True)), rtol=rtol, atol_scale=rtol)
    assert_close(lse, want_lse, rtol=rtol, atol_scale=rtol)
    (sm[:, 0].sum() + lsm[:, 1].sum() + lse.sum()).backward()
    assert np.all(np.isfinite(v.grad))
    # gradient of logsumexp is the softmax
    v2 = tg.Variable(x, requires_grad=True)
    tg.logsumexp(v2, axis=1).sum().backward()
    # float32 cannot represent logits ~1e4 closer than ~1e-3 (ulp), so the
    # gradient is only good to that relative accuracy there.
    grtol = 1e-10 if dtype == np.float64 else 2e-3
    assert_close(v2.grad, want_sm, rtol=grtol, atol_scale=grtol)
    # all-axis logsumexp at huge values
    big = tg.Variable(np.array([1e4, 1e4], dtype=dtype), requires_grad=True)
    out = tg.logsumexp(big)
    assert_close(out, 1e4 + np.log(2.0), rtol=rtol)
    out.backward()
    assert_close(big.grad, [0.5, 0.5], rtol=grtol)


def test_sigmoid_stable_for_large_inputs():
    x = np.array([-800.0, -50.0, 0.0, 50.0, 800.0])
    v = tg.Variable(x, requires_grad=True)
    y = tg.sigmoid(v)
    with np.errstate(over="ignore"):
        assert_close(y, np_sigmoid(x))
    y.sum().backward()
    assert np.all(np.isfinite(v.grad))
    assert v.grad[0] == 0.0 and v.grad[-1] == 0.0


# ---------------------------------------------------------------------------
# NaN and inf propagate as in NumPy
# ---------------------------------------------------------------------------
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0])
NONFINITE_UNARY = {
    "exp": (tg.exp, np.exp),
    "log": (tg.log, np.log),
    "log1p": (tg.log1p, np.log1p),
    "sqrt": (tg.sqrt, np.sqrt),
    "sin": (tg.sin, np.sin),
    "cos": (tg.cos, np.cos),
    "tanh": (tg.tanh, np.tanh),
    "sigmoid": (tg.sigmoid, np_sigmoid),
    "relu": (tg.relu, lambda x: np.maximum(x, 0.0)),
    "abs": (tg.abs, np.abs),
    "negative": (tg.negative, np.negative),
    "clip": (lambda v: tg.clip(v, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
}


@pytest.mark.parametrize("name", list(NONFINITE_UNARY))
def test_nan_inf_propagate_unary(name):
    fn, np_fn = NONFINITE_UNARY[name]
    with np.errstate(all="ignore"):
        want = np_fn(SPECIAL)
    got = fn(tg.Variable(SPECIAL)).data
    np.testing.assert_array_equal(got, want)  # NaN == NaN here; checks the sign of inf
    np.testing.assert_array_equal(np.signbit(got[~np.isnan(got)]), np.signbit(want[~np.isnan(want)]))


NONFINITE_BINARY = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "power": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


@pytest.mark.parametrize("name", list(NONFINITE_BINARY))
def test_nan_inf_propagate_binary(name):
    a = np.repeat(SPECIAL, SPECIAL.size)
    b = np.tile(SPECIAL, SPECIAL.size)
    with np.errstate(all="ignore"):
        want = NONFINITE_BINARY[name](a, b)
    got = getattr(tg, name)(tg.Variable(a), tg.Variable(b)).data
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
def test_nan_inf_propagate_reductions(op):
    x = np.array([[1.0, np.nan, 3.0], [np.inf, 1.0, 2.0], [-np.inf, np.inf, 0.0], [-np.inf, -np.inf, 5.0]])
    for axis in (None, 0, 1):
        with np.errstate(all="ignore"):
            want = getattr(np, op)(x, axis=axis)
        np.testing.assert_array_equal(getattr(tg, op)(tg.Variable(x), axis=axis).data, want, err_msg=f"axis={axis}")
    # NaN in the first position too (max must not skip it)
    x = np.array([np.nan, 1.0, 2.0])
    assert np.isnan(getattr(tg, op)(tg.Variable(x)).item())


def test_nan_inf_normalisers_and_matmul():
    x = np.array([[-np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0]])
    lse = tg.logsumexp(tg.Variable(x), axis=1).data
    assert_close(lse[0], np.log(1.0 + np.e))
    assert lse[1] == -np.inf
    assert lse[2] == np.inf
    assert np.isnan(lse[3])
    sm = tg.softmax(tg.Variable(x[:1]), axis=1).data
    assert_close(sm, np_softmax(np.array([[-np.inf, 0.0, 1.0]])))
    assert sm[0, 0] == 0.0
    lsm = tg.log_softmax(tg.Variable(x[:1]), axis=1).data
    assert lsm[0, 0] == -np.inf
    assert np.all(np.isnan(tg.softmax(tg.Variable(x[3]), axis=0).data))
    a = np.array([[1.0, np.nan], [1.0, 2.0]])
    np.testing.assert_array_equal((tg.Variable(a) @ tg.Variable(np.eye(2))).data, a @ np.eye(2))
    b = np.array([[np.inf, 1.0], [1.0, 1.0]])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal((tg.Variable(b) @ tg.Variable(b)).data, b @ b)


def test_nan_propagates_through_gradients():
    v = tg.Variable([np.nan, 1.0], requires_grad=True)
    (v * 2.0).sum().backward()
    np.testing.assert_array_equal(v.grad, [2.0, 2.0])
    v = tg.Variable([np.nan, 1.0], requires_grad=True)
    (v * v).sum().backward()
    np.testing.assert_array_equal(v.grad, [np.nan, 2.0])
    v = tg.Variable([0.0, 1.0], requires_grad=True)
    tg.log(v).sum().backward()
    np.testing.assert_array_equal(v.grad, [np.inf, 1.0])
