"""Property tests (hypothesis): random shapes, random compositions of ops.

Each example builds a small random expression tree over 1-3 input arrays of
broadcast-compatible random shapes, using smooth ops only (no kinks), and
checks it three ways in float64: tapegrad vs the reference engine vs finite
differences of the same expression evaluated with plain NumPy.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg
from helpers import assert_close, numeric_grads, reference_engine

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------------
# A NumPy "engine" with the same function names, for finite differences
# ---------------------------------------------------------------------------
class NumpyLib:
    add = staticmethod(np.add)
    subtract = staticmethod(np.subtract)
    multiply = staticmethod(np.multiply)
    divide = staticmethod(np.divide)
    tanh = staticmethod(np.tanh)
    exp = staticmethod(np.exp)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    matmul = staticmethod(np.matmul)

    @staticmethod
    def linear(x, w, b=None):
        return x @ w if b is None else x @ w + b

    @staticmethod
    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        return np.mean(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def logsumexp(x, axis=None, keepdims=False):
        mx = np.max(x, axis=axis, keepdims=True)
        out = np.log(np.sum(np.exp(x - mx), axis=axis, keepdims=True)) + mx
        if not keepdims:
            out = np.squeeze(out, axis=axis if axis is not None else tuple(range(np.ndim(x))))
        return out

    @staticmethod
    def softmax(x, axis=-1):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    @staticmethod
    def transpose(x, axes=None):
        return np.transpose(x, axes)

    @staticmethod
    def reshape(x, shape):
        return np.reshape(x, shape)


# ---------------------------------------------------------------------------
# Expression trees
# ---------------------------------------------------------------------------
UNARY = ["tanh", "sigmoid", "exp_tanh", "sin", "cos", "inv1p_sq", "neg", "scale"]
BINARY = ["add", "subtract", "multiply", "op_add", "op_mul", "op_sub", "divide_smooth"]


def shape_of(node, in_shapes):
    kind = node[0]
    if kind == "input":
        return in_shapes[node[1]]
    if kind == "unary":
        return shape_of(node[2], in_shapes)
    if kind == "binary":
        return tuple(np.broadcast_shapes(shape_of(node[2], in_shapes), shape_of(node[3], in_shapes)))
    if kind in ("sum", "mean", "logsumexp"):
        s = shape_of(node[1], in_shapes)
        axis, keepdims = node[2], node[3]
        return np.sum(np.zeros(s), axis=axis, keepdims=keepdims).shape
    if kind == "softmax":
        return shape_of(node[1], in_shapes)
    if kind == "matmul_self":
        s = shape_of(node[1], in_shapes)
        return np.matmul(np.zeros(s), np.zeros(s[:-2] + (s[-1], s[-2]) if len(s) >= 2 else s)).shape
    if kind == "linear_self":
        s = shape_of(node[1], in_shapes)
        return s[:-1] + (int(np.prod(s[:-1], dtype=np.int64)),)
    if kind == "transpose":
        return shape_of(node[1], in_shapes)[::-1]
    if kind == "flatten":
        return (int(np.prod(shape_of(node[1], in_shapes), dtype=np.int64)),)
    if kind == "reverse_last":
        return shape_of(node[1], in_shapes)
    raise AssertionError(node)


def evaluate(node, lib, xs):
    kind = node[0]
    if kind == "input":
        return xs[node[1]]
    if kind == "unary":
        x = evaluate(node[2], lib, xs)
        name = node[1]
        if name == "exp_tanh":
            return lib.exp(lib.tanh(x))  # exp of a bounded input
        if name == "inv1p_sq":
            return lib.divide(1.0, lib.add(1.0, x * x))
        if name == "neg":
            return -x
        if name == "scale":
            return 0.5 * x
        return getattr(lib, name)(x)
    if kind == "binary":
        a, b = evaluate(node[2], lib, xs), evaluate(node[3], lib, xs)
        name = node[1]
        if name == "op_add":
            return a + b
        if name == "op_mul":
            return a * b
        if name == "op_sub":
            return a - b
        if name == "divide_smooth":
            return lib.divide(a, lib.add(1.5, lib.tanh(b)))  # denominator in [0.5, 2.5]
        return getattr(lib, name)(a, b)
    if kind in ("sum", "mean", "logsumexp"):
        return getattr(lib, kind)(evaluate(node[1], lib, xs), axis=node[2], keepdims=node[3])
    if kind == "softmax":
        return lib.softmax(evaluate(node[1], lib, xs), axis=node[2])
    if kind == "matmul_self":
        x = evaluate(node[1], lib, xs)
        nd = len(x.shape)
        if nd >= 2:
            perm = tuple(range(nd - 2)) + (nd - 1, nd - 2)
            return lib.matmul(x, lib.transpose(x, perm))
        return lib.matmul(x, x)
    if kind == "linear_self":  # x (..., K) with weight and bias made from x's rows
        x = evaluate(node[1], lib, xs)
        rows = lib.reshape(x, (-1, x.shape[-1]))
        return lib.linear(x, lib.transpose(rows), lib.sum(rows, axis=1))
    if kind == "transpose":
        return lib.transpose(evaluate(node[1], lib, xs))
    if kind == "flatten":
        return lib.reshape(evaluate(node[1], lib, xs), (-1,))
    if kind == "reverse_last":
        return evaluate(node[1], lib, xs)[..., ::-1]
    raise AssertionError(node)


@st.composite
def shapes_and_inputs(draw):
    """1-3 input shapes that broadcast together (some dims 1, some dropped)."""
    ndim = draw(st.integers(0, 3))
    base = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    n = draw(st.integers(1, 3))
    shapes = []
    for _ in range(n):
        drop = draw(st.integers(0, ndim))
        s = [d if not draw(st.booleans()) or d == 1 else (1 if draw(st.integers(0, 3)) == 0 else d)
             for d in base[drop:]]
        shapes.append(tuple(s))
    arrays = [
        draw(hnp.arrays(np.float64, s, elements=st.floats(-1.5, 1.5, allow_nan=False, allow_subnormal=False)))
        for s in shapes
    ]
    return shapes, arrays


def _axis_choice(draw, ndim):
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    kind = draw(st.sampled_from(["none", "int", "neg", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(0, ndim - 1))
    if kind == "neg":
        return draw(st.integers(-ndim, -1))
    axes = draw(st.lists(st.integers(0, ndim - 1), unique=True, min_size=1, max_size=ndim))
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes)


def draw_tree(draw, in_shapes, depth):
    leaves = [("input", i) for i in range(len(in_shapes))]
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(leaves))
    kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "reduce", "softmax", "matmul_self",
                                 "linear_self", "transpose", "flatten", "reverse_last"]))
    child = draw_tree(draw, in_shapes, depth - 1)
    cshape = shape_of(child, in_shapes)
    if kind == "binary":
        other = draw_tree(draw, in_shapes, depth - 1)
        try:
            np.broadcast_shapes(cshape, shape_of(other, in_shapes))
        except ValueError:
            kind = "unary"
        else:
            return ("binary", draw(st.sampled_from(BINARY)), child, other)
    if kind == "reduce":
        op = draw(st.sampled_from(["sum", "mean", "logsumexp"]))
        return (op, child, _axis_choice(draw, len(cshape)), draw(st.booleans()))
    if kind == "softmax" and len(cshape) >= 1:
        return ("softmax", child, draw(st.integers(-len(cshape), len(cshape) - 1)))
    if kind == "matmul_self" and len(cshape) >= 1:
        return ("matmul_self", child)
    if kind == "linear_self" and len(cshape) >= 1:
        return ("linear_self", child)
    if kind == "transpose":
        return ("transpose", child)
    if kind == "flatten":
        return ("flatten", child)
    if kind == "reverse_last" and len(cshape) >= 1:
        return ("reverse_last", child)
    return ("unary", draw(st.sampled_from(UNARY)), child)


@st.composite
def programs(draw):
    shapes, arrays = draw(shapes_and_inputs())
    tree = draw_tree(draw, shapes, depth=draw(st.integers(1, 4)))
    out_shape = shape_of(tree, shapes)
    weights = draw(hnp.arrays(np.float64, out_shape, elements=st.floats(-2, 2, allow_nan=False,
                                                                       allow_subnormal=False)))
    return tree, arrays, weights


def run_engine(m, tree, arrays, weights):
    vs = [m.Variable(a, requires_grad=True) for a in arrays]
    out = evaluate(tree, m, vs)
    assert isinstance(out, m.Variable)
    loss = (out * weights).sum()
    loss.backward()
    return np.array(out.data, copy=True), [None if v.grad is None else np.array(v.grad, copy=True) for v in vs]


@SETTINGS
@given(programs())
def test_random_expression_three_ways(program):
    tree, arrays, weights = program
    expected = np.asarray(evaluate(tree, NumpyLib, arrays), dtype=np.float64)

    value, grads = run_engine(tg, tree, arrays, weights)
    assert value.shape == expected.shape, tree
    assert_close(value, expected, rtol=1e-10, atol_scale=1e-12, msg=f"value of {tree}")

    rvalue, rgrads = run_engine(reference_engine(), tree, arrays, weights)
    assert_close(rvalue, value, rtol=1e-10, atol_scale=1e-12, msg=f"reference value of {tree}")

    def loss(*xs):
        return float(np.sum(np.asarray(evaluate(tree, NumpyLib, list(xs))) * weights))

    num = numeric_grads(loss, arrays)
    for i, (g, r, n) in enumerate(zip(grads, rgrads, num)):
        used = _uses_input(tree, i)
        if not used:
            assert g is None and r is None, (i, tree)
            continue
        # an input can be reached with an all-zero weight vector; the grad is then zeros, not None
        assert g is not None and g.shape == arrays[i].shape and g.dtype == np.float64, (i, tree)
        # atol_floor: a gradient that is exactly 0 (softmax over a size-1 axis) comes out as round-off
        # (1e-17) from one engine and as 0 from the other; a relative tolerance cannot compare those.
        assert_close(g, r, rtol=1e-9, atol_scale=1e-11, atol_floor=1e-14, msg=f"grad {i} vs reference for {tree}")
        assert_close(g, n, rtol=1e-5, atol_scale=1e-6, atol_floor=1e-8,
                     msg=f"grad {i} vs finite differences for {tree}")


def _uses_input(node, i):
    if node[0] == "input":
        return node[1] == i
    return any(_uses_input(c, i) for c in node[1:] if isinstance(c, tuple) and c and isinstance(c[0], str)
               and c[0] in ("input", "unary", "binary", "sum", "mean", "logsumexp", "softmax", "matmul_self",
                            "linear_self", "transpose", "flatten", "reverse_last"))


# ---------------------------------------------------------------------------
# Targeted properties
# ---------------------------------------------------------------------------
@st.composite
def broadcast_pairs(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3))
    a = draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=st.floats(-2, 2, allow_subnormal=False)))
    b = draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=st.floats(0.5, 2, allow_subnormal=False)))
    return a, b


@SETTINGS
@given(broadcast_pairs(), st.sampled_from(["add", "subtract", "multiply", "divide", "power"]))
def test_broadcast_binary_gradients_sum_back(pair, op):
    a, b = pair
    if op == "power":
        a, b = b, a  # positive base
    ga, gb = [], []
    for m in (tg, reference_engine()):
        va, vb = m.Variable(a, requires_grad=True), m.Variable(b, requires_grad=True)
        out = getattr(m, op)(va, vb)
        np.testing.assert_allclose(out.data, getattr(np, op)(a, b), rtol=1e-13, atol=0)
        out.backward(np.ones(out.shape))
        ga.append(va.grad)
        gb.append(vb.grad)
    assert ga[0].shape == a.shape and gb[0].shape == b.shape
    # A broadcast operand's gradient is a sum of up to 81 terms of size <= 8 here, which the engines add in
    # different orders: where the terms cancel, the sum is ~1e-16 and only an absolute tolerance at the scale
    # of the terms can compare it (a purely relative one failed once in ~10^4 examples).
    assert_close(ga[0], ga[1], rtol=1e-12, atol_floor=1e-12)
    assert_close(gb[0], gb[1], rtol=1e-12, atol_floor=1e-12)
    if op in ("add", "subtract"):
        # the gradient of a broadcast operand is the count of its copies
        out_shape = np.broadcast_shapes(a.shape, b.shape)
        n_a = int(np.prod(out_shape, dtype=np.int64)) // max(a.size, 1)
        np.testing.assert_array_equal(ga[0], np.full(a.shape, float(n_a)))


@st.composite
def reduction_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    n = int(np.prod(shape, dtype=np.int64))
    # distinct values so max/min have no ties
    perm = draw(st.permutations(list(range(n))))
    x = (np.array(perm, dtype=np.float64) - n / 2.0).reshape(shape) * 0.25
    axis = _axis_choice(draw, len(shape))
    return x, axis, draw(st.booleans()), draw(st.sampled_from(["sum", "mean", "max", "min", "logsumexp"]))


@SETTINGS
@given(reduction_cases())
def test_reductions_random_axes(case):
    x, axis, keepdims, op = case
    np_fn = NumpyLib.logsumexp if op == "logsumexp" else getattr(np, op)
    expected = np_fn(x, axis=axis, keepdims=keepdims)
    w = np.linspace(-1.0, 1.0, num=max(np.size(expected), 1)).reshape(np.shape(expected)) + 0.3
    results = []
    for m in (tg, reference_engine()):
        v = m.Variable(x, requires_grad=True)
        out = getattr(m, op)(v, axis=axis, keepdims=keepdims)
        assert out.shape == np.shape(expected)
        assert_close(out, expected, rtol=1e-12, atol_scale=1e-14)
        (out * w).sum().backward()
        results.append(v.grad)
    num = numeric_grads(lambda a: float(np.sum(np_fn(a, axis=axis, keepdims=keepdims) * w)), [x])[0]
    assert_close(results[0], results[1], rtol=1e-10, atol_scale=1e-13)
    assert_close(results[0], num, rtol=1e-6, atol_scale=1e-7, atol_floor=1e-8)


@st.composite
def basic_index_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    key = draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) * 0.5 - 1.0
    return x, key


@SETTINGS
@given(basic_index_cases())
def test_basic_indexing_random_keys(case):
    x, key = case
    expected = x[key]
    for m in (tg, reference_engine()):
        v = m.Variable(x, requires_grad=True)
        out = v[key]
        assert out.shape == np.shape(expected)
        np.testing.assert_array_equal(out.data, expected)
        w = np.arange(1.0, np.size(expected) + 1.0).reshape(np.shape(expected))
        (out * w).sum().backward()
        want = np.zeros_like(x)
        want[key] += w  # basic indexing selects each element at most once
        np.testing.assert_array_equal(v.grad, want)


@st.composite
def integer_index_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    ax = draw(st.integers(0, len(shape) - 1))
    idx = draw(hnp.arrays(np.int64, draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=5)),
                          elements=st.integers(-shape[ax], shape[ax] - 1)))
    key = (slice(None),) * ax + (idx,)
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape), key


@SETTINGS
@given(integer_index_cases())
def test_integer_array_indexing_accumulates(case):
    x, key = case
    expected = x[key]
    w = np.arange(1.0, expected.size + 1.0).reshape(expected.shape)
    want = np.zeros_like(x)
    np.add.at(want, key, w)
    for m in (tg, reference_engine()):
        v = m.Variable(x, requires_grad=True)
        out = v[key]
        np.testing.assert_array_equal(out.data, expected)
        (out * w).sum().backward()
        np.testing.assert_array_equal(v.grad, want)


@pytest.mark.parametrize("seed", range(3))
def test_property_helpers_self_check(seed):
    # the NumPy evaluator agrees with tapegrad on a fixed, hand-written tree
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(-1, 1, size=(2, 3)), rng.uniform(-1, 1, size=(3,))]
    tree = ("sum", ("binary", "op_mul", ("unary", "tanh", ("input", 0)), ("matmul_self", ("input", 1))), 1, False)
    want = np.sum(np.tanh(xs[0]) * (xs[1] @ xs[1]), axis=1)
    assert_close(evaluate(tree, NumpyLib, xs), want)
    assert_close(evaluate(tree, tg, [tg.Variable(x) for x in xs]), want)
