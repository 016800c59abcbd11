"""Every op of the public API, in float64.

For each op and each shape case:
  * the value equals NumPy's,
  * the gradient of a random-weighted sum of the output (via ``.backward``)
    equals central finite differences of the NumPy function, and
  * it equals the gradient computed by the reference engine.

Indexing: test_indexing.py. Kink conventions: test_kinks.py. float32 and
dtype rules: test_dtypes.py. Stability at huge inputs and NaN / inf:
test_numerical_stability.py.
"""
import numpy as np
import pytest

import op_cases
import tapegrad as tg
from helpers import case_id as _ids
from helpers import (
    FD_ATOL,
    FD_RTOL,
    assert_close,
    check_op,
    engines,
    loss_np,
    np_log_softmax,
    np_logsumexp,
    np_softmax,
    numeric_grads,
    reference_engine,
    rng_for,
    sample,
    weights_like,
)


def test_engines_include_the_reference():
    mods = engines()
    assert tg in mods
    assert len(mods) == 2, "tapegrad.reference must be importable for the cross-engine tests"


# ---------------------------------------------------------------------------
# Unary elementwise
# ---------------------------------------------------------------------------
# One entry per elementwise op of the spec (oracle: NumPy, else the reference
# engine), one per op that is also a method, then the other spellings.
UNARY = {name: (op_cases.call(name), op_cases.oracle(name), op_cases.sample_domain(name))
         for name in op_cases.ELEMENTWISE}
UNARY.update({f"{name}_method": (op_cases.method(name), op_cases.oracle(name), op_cases.sample_domain(name))
              for name in op_cases.METHODS})
UNARY.update({
    "neg_operator": (lambda m, x: -x, np.negative, "normal"),
    "pos_operator": (lambda m, x: +x * 1.0, lambda x: x, "normal"),
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
})
UNARY_SHAPES = [(), (1,), (5,), (2, 3), (1, 3, 1), (2, 1, 4)]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=_ids)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name, shape):
    fn, np_fn, domain = UNARY[name]
    rng = rng_for("unary", name, shape)
    x = sample(domain, shape, rng)
    check_op(fn, np_fn, [x], rng)


@pytest.mark.parametrize("name", op_cases.ELEMENTWISE)
def test_elementwise_gradient_is_the_spec_derivative(name):
    """The gradient of sum(f(x)) is the spec's `deriv` (opspec/ops.py) evaluated in NumPy, on both engines."""
    rng = rng_for("spec-deriv", name)
    x = sample(op_cases.sample_domain(name), (3, 4), rng)
    want = op_cases.spec_derivative(name)(x)
    for m in engines():
        v = m.Variable(x, requires_grad=True)
        getattr(m, name)(v).sum().backward()
        assert_close(v.grad, want, rtol=1e-13, atol_scale=1e-15, msg=m.__name__)


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


# One entry per two-operand elementwise op of the spec, then the operators.
BINARY = {name: (op_cases.call(name), op_cases.oracle(name), op_cases.pair_domain(name))
          for name in op_cases.BINARY}
BINARY.update({
    "add_operator": (lambda m, a, b: a + b, np.add, "normal"),
    "sub_operator": (lambda m, a, b: a - b, np.subtract, "normal"),
    "mul_operator": (lambda m, a, b: a * b, np.multiply, "normal"),
    "div_operator": (lambda m, a, b: a / b, np.divide, "divide"),
    "pow_operator": (lambda m, a, b: a ** b, np.power, "power"),
})
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
