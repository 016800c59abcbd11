"""Derivative modes of the C++ engine and the functional API (docs/API.md,
"Modes and the functional API (both engines)").

* Every primitive, on shapes including 0-d and broadcasting pairs:
  jacobian(mode="forward") == jacobian(mode="reverse") == central finite
  differences == the reference engine's jacobian.
* Hessians (symmetric, differences of gradients, hvp, nested transforms,
  reverse-over-reverse through ``backward(create_graph=True)`` for every
  primitive).
* jacobian options: tuples of inputs, chunk_size, mode="auto", constant
  outputs, float32, nesting.
* Custom ops (first order in every mode, several inputs, missing rules,
  second order refused, rules that raise or return the wrong shape).
* Error cases.

Everything is float64 unless a test says otherwise.
"""

import numpy as np
import pytest

import tapegrad as tg
from helpers import assert_close, evaluate, fd_jacobians, reference_engine, rng_for, sample
from helpers import case_id as _ids

FD_RTOL = 1e-6
FD_ATOL = 1e-6  # scaled by the magnitude of the values compared (see assert_close)
MODE_RTOL = 1e-11  # forward vs reverse: the same numbers summed in another order
XENGINE_RTOL = 1e-9  # tapegrad vs tapegrad.reference
MODES = ["forward", "reverse"]


# ---------------------------------------------------------------------------
# Jacobians three ways
# ---------------------------------------------------------------------------
def engine_jacobians(m, fn, arrays, mode, chunk_size=None):
    def f(*vs):
        return fn(m, *vs)

    jac = m.jacobian(f, tuple(arrays), mode=mode, chunk_size=chunk_size)
    assert isinstance(jac, tuple) and len(jac) == len(arrays)
    return list(jac)


def reference_with_jacobian():
    """The reference engine; fails (does not skip) if it lacks the functional API."""
    ref = reference_engine()
    assert hasattr(ref, "jacobian"), "tapegrad.reference has no jacobian: the cross-engine comparison needs it"
    return ref


def check_jacobians(fn, arrays, fd=True, expected=None):
    """forward == reverse == finite differences (or `expected`) == reference, for fn(m, *vars)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out_shape = evaluate(tg, fn, arrays).shape
    fwd = engine_jacobians(tg, fn, arrays, "forward")
    rev = engine_jacobians(tg, fn, arrays, "reverse")
    for i, (a, jf, jr) in enumerate(zip(arrays, fwd, rev)):
        for name, j in (("forward", jf), ("reverse", jr)):
            assert isinstance(j, np.ndarray), f"{name} jacobian of input {i} is a {type(j).__name__}"
            assert j.shape == out_shape + a.shape, f"{name} jacobian of input {i}: shape {j.shape}"
            assert j.dtype == np.float64, f"{name} jacobian of input {i}: dtype {j.dtype}"
        assert_close(jf, jr, rtol=MODE_RTOL, atol_scale=1e-13, msg=f"input {i}: forward vs reverse")
    if fd:
        for i, (jr, jn) in enumerate(zip(rev, fd_jacobians(fn, arrays))):
            assert_close(jr, jn, rtol=FD_RTOL, atol_scale=FD_ATOL, atol_floor=1e-8,
                         msg=f"input {i}: jacobian vs finite differences")
    if expected is not None:
        for i, (jr, je) in enumerate(zip(rev, expected)):
            assert_close(jr, je, rtol=1e-12, atol_scale=1e-14, msg=f"input {i}: jacobian vs expected")
    ref = reference_with_jacobian()
    for mode in MODES:
        rj = engine_jacobians(ref, fn, arrays, mode)
        for i, (j, r) in enumerate(zip(fwd, rj)):
            assert_close(np.asarray(r), j, rtol=XENGINE_RTOL, atol_scale=1e-12,
                         msg=f"input {i}: reference jacobian ({mode}) vs tapegrad")
    return fwd


# ---------------------------------------------------------------------------
# 1. Every primitive
# ---------------------------------------------------------------------------
UNARY = {
    "negative": (lambda m, x: m.negative(x), "normal"),
    "neg_operator": (lambda m, x: -x, "normal"),
    "exp": (lambda m, x: m.exp(x), "normal"),
    "log": (lambda m, x: m.log(x), "positive"),
    "log1p": (lambda m, x: m.log1p(x), "log1p"),
    "sqrt": (lambda m, x: m.sqrt(x), "positive"),
    "sin": (lambda m, x: m.sin(x), "normal"),
    "cos": (lambda m, x: m.cos(x), "normal"),
    "tanh": (lambda m, x: m.tanh(x), "normal"),
    "sigmoid": (lambda m, x: m.sigmoid(x), "normal"),
    "relu": (lambda m, x: m.relu(x), "awayzero"),
    "abs": (lambda m, x: m.abs(x), "awayzero"),
    "clip": (lambda m, x: m.clip(x, -0.5, 0.7), "clip"),
    "clip_lo_only": (lambda m, x: m.clip(x, -0.5, None), "clip"),
    "clip_hi_only": (lambda m, x: m.clip(x, None, 0.7), "clip"),
    "clip_array_bounds": (
        lambda m, x: m.clip(x, np.full(x.shape[-1:], -0.5), np.full(x.shape[-1:], 0.7)), "clip"),
    "square": (lambda m, x: x ** 2, "normal"),
    "cube": (lambda m, x: m.power(x, 3.0), "normal"),
    "rsqrt": (lambda m, x: x ** -0.5, "positive"),
    "two_to_the_x": (lambda m, x: 2.0 ** x, "normal"),
    "reciprocal": (lambda m, x: 1.0 / x, "awayzero"),
    "method_chain": (lambda m, x: x.exp().tanh().sigmoid(), "normal"),
}
UNARY_SHAPES = [(), (1,), (3,), (2, 3)]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=_ids)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_jacobian(name, shape):
    fn, domain = UNARY[name]
    rng = rng_for("unary", name, shape)
    check_jacobians(fn, [sample(domain, shape, rng)])


def _pair(domain, sa, sb, rng):
    if domain == "normal":
        return rng.normal(size=sa), rng.normal(size=sb)
    if domain == "divide":
        return rng.normal(size=sa), sample("awayzero", sb, rng)
    if domain == "power":
        return sample("positive", sa, rng), sample("exponent", sb, rng)
    if domain == "distinct":
        for _ in range(500):
            a, b = rng.normal(size=sa), rng.normal(size=sb)
            if np.min(np.abs(a - b), initial=np.inf) > 0.05:
                return a, b
        raise AssertionError("could not sample a pair without ties")
    raise AssertionError(domain)


BINARY = {
    "add": (lambda m, a, b: m.add(a, b), "normal"),
    "add_operator": (lambda m, a, b: a + b, "normal"),
    "subtract": (lambda m, a, b: m.subtract(a, b), "normal"),
    "sub_operator": (lambda m, a, b: a - b, "normal"),
    "multiply": (lambda m, a, b: m.multiply(a, b), "normal"),
    "divide": (lambda m, a, b: m.divide(a, b), "divide"),
    "power": (lambda m, a, b: m.power(a, b), "power"),
    "pow_operator": (lambda m, a, b: a ** b, "power"),
    "maximum": (lambda m, a, b: m.maximum(a, b), "distinct"),
    "minimum": (lambda m, a, b: m.minimum(a, b), "distinct"),
}
PAIRS = [
    ((), ()),
    ((), (2, 3)),
    ((2, 3), ()),
    ((2, 3), (2, 3)),
    ((2, 1), (1, 3)),
    ((3,), (2, 3)),
    ((2, 3), (1,)),
    ((2, 1, 3), (4, 1)),
]


@pytest.mark.parametrize("shapes", PAIRS, ids=_ids)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_jacobian(name, shapes):
    fn, domain = BINARY[name]
    rng = rng_for("binary", name, shapes)
    a, b = _pair(domain, shapes[0], shapes[1], rng)
    check_jacobians(fn, [a, b])


CONST = np.array([0.7, -1.3, 2.1])
CONST_OPERAND = {
    "add_const": (lambda m, x: m.add(x, CONST), "normal"),
    "const_minus": (lambda m, x: m.subtract(CONST, x), "normal"),
    "mul_const": (lambda m, x: m.multiply(CONST, x), "normal"),
    "const_div": (lambda m, x: m.divide(CONST, x), "awayzero"),
    "div_const": (lambda m, x: m.divide(x, CONST), "normal"),
    "pow_const_exp": (lambda m, x: m.power(x, CONST), "positive"),
    "const_base_pow": (lambda m, x: m.power(np.abs(CONST), x), "normal"),
    "maximum_const": (lambda m, x: m.maximum(x, np.array([0.05, 5.0, -5.0])), "awayzero"),
    "minimum_const": (lambda m, x: m.minimum(np.array([0.05, 5.0, -5.0]), x), "awayzero"),
}


@pytest.mark.parametrize("shape", [(3,), (2, 3)], ids=_ids)
@pytest.mark.parametrize("name", list(CONST_OPERAND))
def test_binary_with_constant_operand_jacobian(name, shape):
    fn, domain = CONST_OPERAND[name]
    rng = rng_for("const", name, shape)
    check_jacobians(fn, [sample(domain, shape, rng)])


WHERE_SHAPES = [
    ((), (), ()),
    ((2, 3), (2, 3), (2, 3)),
    ((2, 3), (1, 3), (2, 1)),
    ((3,), (2, 3), ()),
    ((), (2, 3), (3,)),
    ((4, 1, 3), (2, 3), (1,)),
]


@pytest.mark.parametrize("shapes", WHERE_SHAPES, ids=_ids)
def test_where_jacobian(shapes):
    rng = rng_for("where", shapes)
    cond = rng.random(size=shapes[0]) < 0.5
    if cond.ndim:
        cond.flat[0] = True
        cond.flat[-1] = False
    x, y = rng.normal(size=shapes[1]), rng.normal(size=shapes[2])
    check_jacobians(lambda m, a, b: m.where(cond, a, b), [x, y])
    # one branch constant
    check_jacobians(lambda m, a: m.where(cond, a, 0.5), [x])
    check_jacobians(lambda m, b: m.where(cond, np.ones(shapes[1]), b), [y])


REDUCTION_CASES = [
    ((), None, False),
    ((), None, True),
    ((4,), 0, False),
    ((4,), -1, True),
    ((2, 3), None, False),
    ((2, 3), None, True),
    ((2, 3), 0, False),
    ((2, 3), 1, True),
    ((2, 3), (0, 1), False),
    ((2, 3, 2), (0, 2), False),
    ((2, 3, 2), (2, 0), True),
    ((2, 1, 3), 1, False),
]


@pytest.mark.parametrize("shape,axis,keepdims", REDUCTION_CASES, ids=_ids)
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "logsumexp"])
def test_reduction_jacobian(op, shape, axis, keepdims):
    rng = rng_for("reduce", op, shape, axis, keepdims)
    x = sample("distinct" if op in ("max", "min") else "normal", shape, rng)
    check_jacobians(lambda m, v: getattr(m, op)(v, axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
def test_reduction_method_jacobian(op):
    rng = rng_for("reduce-method", op)
    x = sample("distinct", (3, 4), rng)
    check_jacobians(lambda m, v: getattr(v, op)(axis=1), [x])
    check_jacobians(lambda m, v: getattr(v, op)(), [x])


@pytest.mark.parametrize("op", ["max", "min"])
def test_extremum_with_ties_splits_evenly_in_both_modes(op):
    # Kink convention: ties share the derivative evenly (not checkable by finite differences).
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    if op == "min":
        x = -x
    expected = np.zeros((2, 2, 3))
    expected[0, 0, 1:] = 0.5
    expected[1, 1, :] = 1.0 / 3.0
    check_jacobians(lambda m, v: getattr(m, op)(v, axis=1), [x], fd=False, expected=[expected])


def test_maximum_minimum_ties_and_kinks_in_both_modes():
    a = np.array([1.0, 2.0, -1.0, 0.0])
    b = np.array([1.0, 0.0, 3.0, 0.0])
    eye = np.eye(4)
    w = np.array([0.5, 1.0, 0.0, 0.5])
    check_jacobians(lambda m, p, q: m.maximum(p, q), [a, b], fd=False,
                    expected=[eye * w, eye * (1 - w)])
    check_jacobians(lambda m, p, q: m.minimum(p, q), [a, b], fd=False,
                    expected=[eye * (np.array([0.5, 0.0, 1.0, 0.5])), eye * np.array([0.5, 1.0, 0.0, 0.5])])
    x = np.array([-1.0, 0.0, 2.0])
    check_jacobians(lambda m, v: m.relu(v), [x], fd=False, expected=[np.diag([0.0, 0.0, 1.0])])
    check_jacobians(lambda m, v: m.abs(v), [x], fd=False, expected=[np.diag([-1.0, 0.0, 1.0])])
    xc = np.array([-0.5, 0.7, 1.0, -2.0, 0.0])
    check_jacobians(lambda m, v: m.clip(v, -0.5, 0.7), [xc], fd=False,
                    expected=[np.diag([1.0, 1.0, 0.0, 0.0, 1.0])])


SOFTMAX_CASES = [
    ((4,), -1),
    ((4,), 0),
    ((2, 3), 0),
    ((2, 3), -1),
    ((2, 3, 2), 1),
    ((1, 3), 0),
]


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=_ids)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_normaliser_jacobian(op, shape, axis):
    rng = rng_for("softmax", op, shape, axis)
    x = rng.normal(size=shape)
    check_jacobians(lambda m, v: getattr(m, op)(v, axis=axis), [x])


SHAPE_CASES = {
    "reshape_2x3_to_3x2": ((2, 3), lambda m, x: m.reshape(x, (3, 2))),
    "reshape_6_to_2x3": ((6,), lambda m, x: m.reshape(x, (2, 3))),
    "reshape_0d_to_1x1": ((), lambda m, x: m.reshape(x, (1, 1))),
    "reshape_1x1_to_0d": ((1, 1), lambda m, x: m.reshape(x, ())),
    "reshape_minus1": ((2, 3, 2), lambda m, x: m.reshape(x, (-1, 3))),
    "reshape_method_varargs": ((2, 3), lambda m, x: x.reshape(3, 2)),
    "transpose_2d": ((2, 3), lambda m, x: m.transpose(x)),
    "transpose_T": ((2, 3), lambda m, x: x.T),
    "transpose_3d_perm": ((2, 3, 4), lambda m, x: m.transpose(x, (1, 2, 0))),
    "transpose_3d_default": ((2, 3, 4), lambda m, x: m.transpose(x)),
    "transpose_0d": ((), lambda m, x: m.transpose(x)),
    "broadcast_0d": ((), lambda m, x: m.broadcast_to(x, (2, 3))),
    "broadcast_row": ((3,), lambda m, x: m.broadcast_to(x, (2, 3))),
    "broadcast_col": ((2, 1), lambda m, x: m.broadcast_to(x, (2, 3))),
    "broadcast_new_and_inner": ((1, 3), lambda m, x: m.broadcast_to(x, (4, 2, 3))),
    "broadcast_same": ((2, 3), lambda m, x: m.broadcast_to(x, (2, 3))),
    "astype_same_dtype": ((2, 3), lambda m, x: m.astype(x, np.float64)),
}


@pytest.mark.parametrize("name", list(SHAPE_CASES))
def test_shape_op_jacobian(name):
    shape, fn = SHAPE_CASES[name]
    rng = rng_for("shape", name)
    check_jacobians(fn, [rng.normal(size=shape)])


def test_identity_and_pos_operator_jacobian():
    """f(x) = x (the output *is* the input, no op recorded): J = I in both modes."""
    x = np.array([1.0, -2.0, 3.0])
    check_jacobians(lambda m, v: v, [x], expected=[np.eye(3)])
    check_jacobians(lambda m, v: +v, [x], expected=[np.eye(3)])
    check_jacobians(lambda m, a, b: b, [x, np.array(2.0)], expected=[np.zeros((3,)), np.ones(())])


CONCAT_CASES = [
    ([(2, 3), (1, 3)], 0),
    ([(2, 1), (2, 3)], 1),
    ([(2, 1), (2, 3), (2, 2)], -1),
    ([(3,), (2,)], 0),
    ([(2, 2), (1, 3)], None),
]


@pytest.mark.parametrize("shapes,axis", CONCAT_CASES, ids=_ids)
def test_concatenate_jacobian(shapes, axis):
    rng = rng_for("concat", shapes, axis)
    arrays = [rng.normal(size=s) for s in shapes]
    check_jacobians(lambda m, *vs: m.concatenate(list(vs), axis=axis), arrays)
    # a constant piece among the Variables (no tangent/cotangent for it)
    const = rng.normal(size=shapes[0])
    check_jacobians(lambda m, *vs: m.concatenate([const] + list(vs[1:]), axis=axis), [const] + arrays[1:])


STACK_CASES = [
    ((), 0, 2),
    ((3,), 0, 2),
    ((3,), -1, 3),
    ((2, 3), 1, 2),
    ((2, 3), -1, 2),
]


@pytest.mark.parametrize("shape,axis,n", STACK_CASES, ids=_ids)
def test_stack_jacobian(shape, axis, n):
    rng = rng_for("stack", shape, axis, n)
    arrays = [rng.normal(size=shape) for _ in range(n)]
    check_jacobians(lambda m, *vs: m.stack(list(vs), axis=axis), arrays)
    check_jacobians(lambda m, v: m.stack([v, v * 2.0, np.ones(shape)], axis=axis), arrays[:1])


MATMUL_CASES = [
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (3, 2)),
    ((2, 3), (3, 4)),
    ((1, 3), (3, 1)),
    ((2, 2, 3), (3, 4)),
    ((2, 3), (4, 3, 2)),
    ((2, 1, 2, 3), (3, 3, 2)),
    ((3,), (2, 3, 4)),
    ((2, 3, 4), (4,)),
]


@pytest.mark.parametrize("shapes", MATMUL_CASES, ids=_ids)
def test_matmul_jacobian(shapes):
    rng = rng_for("matmul", shapes)
    a, b = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])
    check_jacobians(lambda m, p, q: m.matmul(p, q), [a, b])
    check_jacobians(lambda m, p, q: p @ q, [a, b])
    # only one side differentiable
    check_jacobians(lambda m, p: m.matmul(p, b), [a])
    check_jacobians(lambda m, q: m.matmul(a, q), [b])
    # the same Variable on both sides
    if shapes[0] == shapes[1][::-1] or (len(shapes[0]) == 1 and shapes[0] == shapes[1]):
        check_jacobians(lambda m, p: m.matmul(p, m.transpose(p)) if p.ndim == 2 else m.matmul(p, p), [a])


# linear(x, W, b): the C++ engine's fused primitive vs the reference's matmul + add.
LINEAR_CASES = [  # x shape, (K, N), bias
    ((2, 3), (3, 4), True),
    ((2, 3), (3, 4), False),
    ((3,), (3, 2), True),
    ((2, 2, 3), (3, 1), True),
    ((1, 1), (1, 1), True),
    ((0, 3), (3, 2), True),
    ((2, 0), (0, 3), True),
]


@pytest.mark.parametrize("case", LINEAR_CASES, ids=_ids)
def test_linear_jacobian(case):
    xs, ws, bias = case
    rng = rng_for("linear", case)
    x, w, b = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[1])
    if bias:
        check_jacobians(lambda m, p, q, c: m.linear(p, q, c), [x, w, b])
        check_jacobians(lambda m, c: m.linear(x, w, bias=c), [b])
    else:
        check_jacobians(lambda m, p, q: m.linear(p, q), [x, w])
        check_jacobians(lambda m, p, q: m.linear(p, q, None), [x, w])
    check_jacobians(lambda m, p: m.linear(p, w, b if bias else None), [x])
    check_jacobians(lambda m, q: m.linear(x, q, b if bias else None), [w])
    if xs[-1:] == ws[1:] and len(xs) == 2:  # the same Variable as input and weight
        check_jacobians(lambda m, p: m.linear(p, m.reshape(p, ws), b if bias else None), [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_matches_matmul_plus_bias(dtype):
    """Values and gradients of the fused primitive equal matmul + add in both dtypes, and the
    result's dtype follows NumPy promotion (float32 with a float64 bias -> float64)."""
    rng = rng_for("linear-dtype", dtype)
    x, w, b = (rng.normal(size=s).astype(dtype) for s in ((5, 7), (7, 3), (3,)))
    tol = 1e-5 if dtype == np.float32 else 1e-13
    vs = [tg.Variable(a, requires_grad=True) for a in (x, w, b)]
    us = [tg.Variable(a, requires_grad=True) for a in (x, w, b)]
    y, z = tg.linear(*vs), us[0] @ us[1] + us[2]
    assert y.dtype == dtype and y.shape == (5, 3)
    np.testing.assert_allclose(y.data, z.data, rtol=tol, atol=tol)
    g = rng.normal(size=(5, 3)).astype(dtype)
    (y * g).sum().backward()
    (z * g).sum().backward()
    for v, u in zip(vs, us):
        np.testing.assert_allclose(v.grad, u.grad, rtol=tol, atol=tol)
    assert tg.linear(vs[0], vs[1], b.astype(np.float64)).dtype == np.promote_types(dtype, np.float64)



INDEX_KEYS = {
    "int": (4,), "slice": (4, 3), "neg_step": (4, 3), "int_and_slice": (4, 3),
    "ellipsis_int": (2, 3, 2), "newaxis": (4, 3), "int_array_repeats": (4, 3),
    "int_array_2d": (4, 3), "int_arrays_pair": (4, 3), "mask": (4, 3), "row_mask": (4, 3),
    "empty_tuple_0d": (), "scalar_of_2d": (4, 3), "mixed_array_slice": (4, 3),
    "negative_int_array": (4, 3),
}
INDEX_MASK = np.array([[True, False, True], [False, False, True], [True, True, False], [False, True, True]])


def _index(name, v):
    keys = {
        "int": 2,
        "slice": (slice(1, 3),),
        "neg_step": (slice(None, None, -1), slice(None, None, -2)),
        "int_and_slice": (-1, slice(None, None, 2)),
        "ellipsis_int": (Ellipsis, 1),
        "newaxis": (None, slice(1, 3), None),
        "int_array_repeats": np.array([0, 2, 2, 1, 0]),
        "int_array_2d": np.array([[3, 3], [0, 1]]),
        "int_arrays_pair": (np.array([0, 1, 1, 3]), np.array([2, 0, 0, 2])),
        "mask": INDEX_MASK,
        "row_mask": np.array([True, False, True, True]),
        "empty_tuple_0d": (),
        "scalar_of_2d": (1, 2),
        "mixed_array_slice": (np.array([2, 0, 2]), slice(1, None)),
        "negative_int_array": (slice(None), np.array([-1, -3, -1])),
    }
    return v[keys[name]]


@pytest.mark.parametrize("name", list(INDEX_KEYS))
def test_indexing_jacobian(name):
    shape = INDEX_KEYS[name]
    rng = rng_for("index", name)
    x = rng.normal(size=shape)
    check_jacobians(lambda m, v: _index(name, v), [x])
    # indexing after a nonlinear op, then another op (batched gather / scatter inside the tape)
    check_jacobians(lambda m, v: m.tanh(_index(name, m.sin(v))) * 1.5, [x])


def test_indexing_chained_with_repeats():
    rng = rng_for("index-chain")
    x = rng.normal(size=(4, 3))
    check_jacobians(lambda m, v: v[np.array([3, 0, 3])][:, np.array([1, 1, 2])] * v[0, 0], [x])


@pytest.mark.parametrize("mode", MODES)
def test_astype_jacobian(mode):
    """astype between float32 and float64 is linear: J is the identity (no finite differences in float32)."""
    x = np.array([0.5, -1.25, 2.0])  # exactly representable in float32
    J = tg.jacobian(lambda v: tg.astype(tg.astype(v, np.float32) * 2.0, np.float64), x, mode=mode)
    assert J.dtype == np.float64
    assert_close(J, 2.0 * np.eye(3), rtol=0, atol_scale=0)
    x32 = x.astype(np.float32)
    J = tg.jacobian(lambda v: tg.astype(v, np.float64) * 3.0, x32, mode=mode)
    assert_close(J, 3.0 * np.eye(3), rtol=0, atol_scale=0)
    J = tg.jacobian(lambda v: v.astype(np.float32).astype(np.float32) * 3.0, x32, mode=mode)
    assert J.dtype == np.float32
    assert_close(J, 3.0 * np.eye(3), rtol=0, atol_scale=0)
    ref = reference_with_jacobian()
    R = ref.jacobian(lambda v: ref.astype(ref.astype(v, np.float32) * 2.0, np.float64), x, mode=mode)
    assert_close(np.asarray(R), 2.0 * np.eye(3), rtol=0, atol_scale=0)


@pytest.mark.parametrize("dt_in,dt_out", [(np.float32, np.float64), (np.float64, np.float32)],
                         ids=["f32_to_f64", "f64_to_f32"])
def test_astype_mixed_precision_jacobian_dtype_does_not_depend_on_mode(dt_in, dt_out):
    """Input and output of different precision: the Jacobian is the same array (dtype included)
    whichever mode computes it."""
    x = np.array([0.5, -1.25, 2.0], dtype=dt_in)
    jf = tg.jacobian(lambda v: tg.astype(v, dt_out) * 3.0, x, mode="forward")
    jr = tg.jacobian(lambda v: tg.astype(v, dt_out) * 3.0, x, mode="reverse")
    assert_close(jf, jr, rtol=0, atol_scale=0)
    assert jf.dtype == jr.dtype, f"forward gives {jf.dtype}, reverse gives {jr.dtype}"


def test_composite_functions_of_several_primitives():
    rng = rng_for("composite")
    W = rng.normal(size=(3, 4))
    x = rng.normal(size=(2, 3))
    b = rng.normal(size=(4,))

    def mlp(m, v, bias):
        h = m.tanh(m.matmul(v, W) + bias)
        return m.log_softmax(h * 2.0, axis=-1)[:, np.array([0, 2, 2])]

    check_jacobians(mlp, [x, b])

    def mixed(m, v):
        s = m.softmax(v, axis=0)
        return m.concatenate([m.sum(s * v, axis=1), m.logsumexp(v, axis=0), m.max(v, axis=None, keepdims=True)
                              .reshape(1)], axis=0)

    check_jacobians(mixed, [sample("distinct", (2, 3), rng)])


# ---------------------------------------------------------------------------
# 2. jvp, vjp, directional_derivative, grad on primitives (cross-checked)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "log", "sqrt", "sigmoid", "clip", "rsqrt", "two_to_the_x"])
def test_jvp_vjp_match_jacobian(name):
    fn, domain = UNARY[name]
    rng = rng_for("jvp-vjp", name)
    x = sample(domain, (2, 3), rng)
    J = tg.jacobian(lambda v: fn(tg, v), x, mode="reverse")
    u = rng.normal(size=x.shape)
    w = rng.normal(size=J.shape[:2])
    out, jvp_out = tg.jvp(lambda v: fn(tg, v), (x,), (u,))
    assert isinstance(out, np.ndarray) and isinstance(jvp_out, np.ndarray)
    assert_close(out, evaluate(tg, fn, [x]))
    assert_close(jvp_out, np.tensordot(J, u, axes=2), rtol=1e-12, atol_scale=1e-14)
    assert_close(tg.directional_derivative(lambda v: fn(tg, v), x, u), jvp_out, rtol=0, atol_scale=0)
    out2, vjp_fn = tg.vjp(lambda v: fn(tg, v), x)
    assert_close(out2, out)
    (g,) = vjp_fn(w)
    assert isinstance(g, np.ndarray) and g.shape == x.shape
    assert_close(g, np.tensordot(w, J, axes=2), rtol=1e-12, atol_scale=1e-14)
    # vjp_fn may be called several times
    (g2,) = vjp_fn(2 * w)
    assert_close(g2, 2 * g, rtol=1e-14, atol_scale=1e-15)
    (g3,) = vjp_fn(w)
    assert_close(g3, g, rtol=0, atol_scale=0)
    # the inner-product identity
    assert_close(np.vdot(u, g), np.vdot(jvp_out, w), rtol=1e-11, atol_scale=1e-13)


def test_jvp_several_primals_and_single_array_forms():
    rng = rng_for("jvp-several")
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3,))
    ta, tb = rng.normal(size=a.shape), rng.normal(size=b.shape)

    def f(p, q):
        return tg.sin(p) * q + tg.exp(q)

    out, t = tg.jvp(f, (a, b), (ta, tb))
    expected = np.cos(a) * b * ta + np.sin(a) * tb + np.exp(b) * tb
    assert_close(out, np.sin(a) * b + np.exp(b))
    assert_close(t, expected, rtol=1e-13, atol_scale=1e-15)
    # lists are accepted like tuples; a single array is a 1-tuple
    out_l, t_l = tg.jvp(f, [a, b], [ta, tb])
    assert_close(t_l, expected, rtol=1e-13, atol_scale=1e-15)
    out1, t1 = tg.jvp(tg.tanh, a, ta)
    assert_close(t1, (1 - np.tanh(a) ** 2) * ta, rtol=1e-13, atol_scale=1e-15)
    # vjp with several primals
    out, vjp_fn = tg.vjp(f, a, b)
    w = rng.normal(size=(2, 3))
    ga, gb = vjp_fn(w)
    assert_close(ga, np.cos(a) * b * w, rtol=1e-13, atol_scale=1e-15)
    assert_close(gb, (np.sin(a) * w).sum(0) + np.exp(b) * w.sum(0), rtol=1e-13, atol_scale=1e-15)
    # inner-product identity with both inputs at once
    assert_close(np.vdot(ta, ga) + np.vdot(tb, gb), np.vdot(t, w), rtol=1e-12, atol_scale=1e-14)


def test_grad_and_value_and_grad():
    rng = rng_for("grad")
    a, b = rng.normal(size=(3,)), rng.normal(size=(2, 3))

    def f(p, q):
        return tg.sum(tg.tanh(q * p) ** 2)

    ga = tg.grad(f)(a, b)
    gb = tg.grad(f, argnums=1)(a, b)
    gab = tg.grad(f, argnums=(0, 1))(a, b)
    gneg = tg.grad(f, argnums=-1)(a, b)
    t = np.tanh(b * a)
    dq = 2 * t * (1 - t ** 2)
    assert_close(ga, (dq * b).sum(0), rtol=1e-13, atol_scale=1e-15)
    assert_close(gb, dq * a, rtol=1e-13, atol_scale=1e-15)
    assert isinstance(gab, tuple) and len(gab) == 2
    assert_close(gab[0], ga, rtol=0, atol_scale=0)
    assert_close(gab[1], gb, rtol=0, atol_scale=0)
    assert_close(gneg, gb, rtol=0, atol_scale=0)
    value, g = tg.value_and_grad(f, argnums=(1,))(a, b)
    assert isinstance(g, tuple) and len(g) == 1
    assert_close(value, np.sum(t ** 2))
    assert_close(g[0], gb, rtol=0, atol_scale=0)
    # a single-element non-0-d output counts as scalar
    g1 = tg.grad(lambda p: tg.sum(p * p, keepdims=True))(a)
    assert_close(g1, 2 * a)
    # a function that does not depend on the argument: zeros
    gz = tg.grad(lambda p, q: tg.sum(q), argnums=0)(a, b)
    assert_close(gz, np.zeros(3), rtol=0, atol_scale=0)
    assert gz.shape == (3,)
    # a Python scalar argument
    assert_close(tg.grad(lambda s: s * s * s)(2.0), 12.0)


# ---------------------------------------------------------------------------
# 3. Hessians
# ---------------------------------------------------------------------------
def _hess_rng():
    return rng_for("hessian-constants")


_HR = _hess_rng()
W1 = _HR.normal(size=(4, 5)) * 0.7
B1 = _HR.normal(size=(4,))
W2 = _HR.normal(size=(4,))
LABELS = np.eye(3)[[0, 2]]  # one-hot labels for 2 rows of 3 logits
A_CE = _HR.normal(size=(5, 3))

SCALAR_FUNCTIONS = {
    "tanh_mlp": ((5,), "normal", lambda m, x: m.sum(m.tanh(m.matmul(W1, x) + B1) * W2)),
    "logsumexp": ((5,), "normal", lambda m, x: m.logsumexp(x)),
    "logsumexp_2d_axis": ((2, 3), "normal", lambda m, x: m.sum(m.logsumexp(x, axis=1) * np.array([1.0, -0.5]))),
    "softmax_cross_entropy": (
        (2, 5), "normal",
        lambda m, x: -m.mean(m.sum(m.log_softmax(m.matmul(x, A_CE), axis=-1) * LABELS, axis=-1))),
    "softmax_quadratic": ((4,), "normal", lambda m, x: m.sum(m.softmax(x) * x * x)),
    "product": ((4,), "normal", lambda m, x: x[0] * x[1] * x[2] * x[3] + m.sum(x[:-1] * x[1:])),
    "pow": ((4,), "positive", lambda m, x: m.sum(x ** 3) + m.sum(x ** 2.5) + m.sum(x ** x[::-1])),
    "sin_cos": ((5,), "normal", lambda m, x: m.sum(m.sin(x) * m.cos(2.0 * x[::-1]))),
    "exp_log_sqrt": ((3,), "positive", lambda m, x: m.sum(m.exp(x) * m.log(x) + m.sqrt(x) / (1.0 + x))),
    "sigmoid_log1p": ((3,), "normal", lambda m, x: m.sum(m.sigmoid(x) * m.log1p(x * x))),
    "scalar_input": ((), "normal", lambda m, x: m.sin(x) * m.exp(x) + x ** 4),
    "matrix_quadratic": ((2, 3), "normal", lambda m, x: m.sum(m.matmul(x, m.transpose(x)) ** 2)),
}


def _grad_np(fn, x):
    return tg.grad(lambda v: fn(tg, v))(x)


def _fd_hessian(fn, x, eps=1e-5):
    """Central differences of the (engine's) gradient."""
    H = np.zeros(x.shape + x.shape)
    Hf = H.reshape(x.shape + (x.size,))
    for k in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.reshape(-1)[k] += eps
        xm.reshape(-1)[k] -= eps
        Hf[..., k] = (_grad_np(fn, xp) - _grad_np(fn, xm)) / (2 * eps)
    return H


@pytest.mark.parametrize("name", list(SCALAR_FUNCTIONS))
def test_hessian(name):
    shape, domain, fn = SCALAR_FUNCTIONS[name]
    rng = rng_for("hessian", name)
    x = sample(domain, shape, rng)

    def f(v):
        return fn(tg, v)

    H = tg.hessian(f, x)
    assert isinstance(H, np.ndarray)
    assert H.shape == x.shape + x.shape and H.dtype == np.float64
    n = x.size
    Hm = H.reshape(n, n)
    assert_close(Hm, Hm.T, rtol=1e-10, atol_scale=1e-12, msg="hessian symmetry")
    assert_close(H, _fd_hessian(fn, x), rtol=1e-6, atol_scale=1e-6, atol_floor=1e-7,
                 msg="hessian vs differences of the gradient")
    # gradient vs finite differences of f itself (sanity for the FD above)
    # hvp == H @ v
    for _ in range(2):
        v = rng.normal(size=shape)
        hv = tg.hvp(f, x, v)
        assert isinstance(hv, np.ndarray) and hv.shape == x.shape
        assert_close(hv, (Hm @ v.reshape(n)).reshape(shape), rtol=1e-10, atol_scale=1e-12, msg="hvp vs H v")
    # jacobian(grad(f)) in both modes == hessian
    for mode in MODES + ["auto"]:
        Jg = tg.jacobian(tg.grad(f), x, mode=mode)
        assert_close(Jg, H, rtol=1e-10, atol_scale=1e-12, msg=f"jacobian(grad(f), mode={mode}) vs hessian")
    # jacobian(jacobian(f)) in every combination of modes (f scalar: jacobian(f) has x's shape)
    for m1 in MODES:
        for m2 in MODES:
            JJ = tg.jacobian(lambda v: tg.jacobian(f, v, mode=m1), x, mode=m2)
            assert_close(JJ, H, rtol=1e-10, atol_scale=1e-12, msg=f"jacobian(jacobian(f, {m1}), {m2})")
    # the reference engine agrees
    ref = reference_with_jacobian()
    assert hasattr(ref, "hessian") and hasattr(ref, "hvp")
    RH = ref.hessian(lambda v: fn(ref, v), x)
    assert_close(np.asarray(RH), H, rtol=XENGINE_RTOL, atol_scale=1e-12, msg="reference hessian")


@pytest.mark.parametrize("name", ["tanh_mlp", "softmax_cross_entropy", "pow", "product"])
def test_hessian_by_reverse_over_reverse(name):
    """backward(create_graph=True), then backward through x.grad, gives H·u."""
    shape, domain, fn = SCALAR_FUNCTIONS[name]
    rng = rng_for("rr", name)
    x = sample(domain, shape, rng)
    u = rng.normal(size=shape)
    H = tg.hessian(lambda v: fn(tg, v), x).reshape(x.size, x.size)
    v = tg.Variable(x, requires_grad=True)
    fn(tg, v).backward(create_graph=True)
    g = v.grad
    assert isinstance(g, tg.Variable) and g.requires_grad
    assert_close(g, _grad_np(fn, x), rtol=1e-13, atol_scale=1e-15)
    v.grad = None
    tg.sum(g * u).backward()
    assert isinstance(v.grad, np.ndarray)
    assert_close(v.grad, (H @ u.reshape(-1)).reshape(shape), rtol=1e-10, atol_scale=1e-12)


SCALAR_OF_SCALAR = {
    "sin_exp": (lambda x: tg.sin(x) * tg.exp(x), lambda x: 2 * np.cos(x) * np.exp(x), 0.3),
    "cube": (lambda x: x ** 3, lambda x: 6 * x, -1.1),
    "tanh": (lambda x: tg.tanh(x), lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), 0.4),
    "sigmoid": (lambda x: tg.sigmoid(x), lambda x: (lambda s: s * (1 - s) * (1 - 2 * s))(1 / (1 + np.exp(-x))), 0.8),
    "log1p_sq": (lambda x: tg.log1p(x * x), lambda x: (2 - 2 * x * x) / (1 + x * x) ** 2, 0.6),
    "sqrt": (lambda x: tg.sqrt(x), lambda x: -0.25 * x ** -1.5, 1.7),
    "reciprocal": (lambda x: 1.0 / x, lambda x: 2.0 / x ** 3, 1.3),
    "log": (lambda x: tg.log(x), lambda x: -1.0 / x ** 2, 0.7),
    "x_pow_x": (lambda x: x ** x, lambda x: x ** x * ((np.log(x) + 1) ** 2 + 1 / x), 1.4),
    "cos_of_cos": (lambda x: tg.cos(tg.cos(x)),
                   lambda x: -np.cos(np.cos(x)) * np.sin(x) ** 2 + np.sin(np.cos(x)) * np.cos(x), 0.9),
}


@pytest.mark.parametrize("name", list(SCALAR_OF_SCALAR))
def test_grad_of_grad_scalar(name):
    f, d2, x0 = SCALAR_OF_SCALAR[name]
    for x in (x0, np.float64(x0), np.array(x0)):
        gg = tg.grad(tg.grad(f))(x)
        assert np.shape(gg) == ()
        assert_close(np.asarray(gg), d2(x0), rtol=1e-12, atol_scale=1e-14)
    # the third derivative by differences of the second
    eps = 1e-5
    d3 = (tg.grad(tg.grad(f))(x0 + eps) - tg.grad(tg.grad(f))(x0 - eps)) / (2 * eps)
    assert_close(np.asarray(tg.grad(tg.grad(tg.grad(f)))(x0)), d3, rtol=1e-6, atol_scale=1e-6, atol_floor=1e-8)


def test_hessian_and_hvp_of_functions_of_shape_0d_and_nd():
    # f(x) of 0-d x: hessian is 0-d
    H = tg.hessian(lambda x: x ** 3, 2.0)
    assert np.shape(H) == ()
    assert_close(np.asarray(H), 12.0)
    # hvp of a function that does not depend on x / is linear in x: zeros
    x = np.arange(3.0)
    v = np.ones(3)
    assert_close(tg.hvp(lambda p: tg.sum(p * 2.0), x, v), np.zeros(3), rtol=0, atol_scale=0)
    assert_close(tg.hessian(lambda p: tg.sum(p * 2.0), x), np.zeros((3, 3)), rtol=0, atol_scale=0)
    assert_close(tg.hvp(lambda p: tg.sum(tg.Variable(np.ones(3))), x, v), np.zeros(3), rtol=0, atol_scale=0)
    assert_close(tg.hessian(lambda p: tg.Variable(1.0), x), np.zeros((3, 3)), rtol=0, atol_scale=0)


# reverse-over-reverse through backward(create_graph=True) for every primitive
SECOND_ORDER_UNARY = [n for n in UNARY]
SECOND_ORDER_BINARY = list(BINARY)


def _backward_twice(fn, arrays, w, us):
    """x.grad after backward(create_graph=True) of sum(w * sin(fn(x))), then H·u by backward through x.grad."""
    vs = [tg.Variable(a, requires_grad=True) for a in arrays]
    out = fn(tg, *vs)
    loss = tg.sum(tg.sin(out) * w)
    loss.backward(create_graph=True)
    gs = [v.grad for v in vs]
    for g, a in zip(gs, arrays):
        assert isinstance(g, tg.Variable), f"x.grad is a {type(g).__name__}, not a Variable"
        assert g.shape == a.shape
    first = [np.array(g.data, copy=True) for g in gs]
    for v in vs:
        v.grad = None
    total = None
    for g, u in zip(gs, us):
        assert g.requires_grad, "x.grad after backward(create_graph=True) is not connected to the graph"
        term = tg.sum(g * u)
        total = term if total is None else total + term
    total.backward()
    second = [np.zeros_like(a) if v.grad is None else np.array(v.grad, copy=True) for v, a in zip(vs, arrays)]
    return first, second


def _first_grads(fn, arrays, w):
    vs = [tg.Variable(a, requires_grad=True) for a in arrays]
    tg.sum(tg.sin(fn(tg, *vs)) * w).backward()
    return [np.zeros_like(a) if v.grad is None else np.array(v.grad) for v, a in zip(vs, arrays)]


def check_second_order(fn, arrays, rng, eps=1e-5):
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out = evaluate(tg, fn, arrays)
    w = rng.uniform(0.5, 1.5, size=out.shape) * rng.choice([-1.0, 1.0], size=out.shape)
    us = [rng.normal(size=a.shape) for a in arrays]
    first, second = _backward_twice(fn, arrays, w, us)
    expected_first = _first_grads(fn, arrays, w)
    for f1, e1 in zip(first, expected_first):
        assert_close(f1, e1, rtol=1e-12, atol_scale=1e-14, msg="create_graph first derivative")
    plus = _first_grads(fn, [a + eps * u for a, u in zip(arrays, us)], w)
    minus = _first_grads(fn, [a - eps * u for a, u in zip(arrays, us)], w)
    for i, (s, p, q) in enumerate(zip(second, plus, minus)):
        assert_close(s, (p - q) / (2 * eps), rtol=1e-6, atol_scale=1e-6, atol_floor=1e-7,
                     msg=f"input {i}: backprop through x.grad vs differences of the gradient")
    # forward-over-reverse agrees: hvp of the same loss along u (one input at a time)
    if len(arrays) == 1:
        hv = tg.hvp(lambda v: tg.sum(tg.sin(fn(tg, v)) * w), arrays[0], us[0])
        assert_close(hv, second[0], rtol=1e-10, atol_scale=1e-12, msg="hvp vs reverse-over-reverse")


@pytest.mark.parametrize("shape", [(), (2, 3)], ids=_ids)
@pytest.mark.parametrize("name", SECOND_ORDER_UNARY)
def test_create_graph_second_derivative_unary(name, shape):
    fn, domain = UNARY[name]
    rng = rng_for("create-graph-unary", name, shape)
    check_second_order(fn, [sample(domain, shape, rng)], rng)


@pytest.mark.parametrize("shapes", [((), ()), ((2, 3), (3,)), ((2, 1), (1, 3))], ids=_ids)
@pytest.mark.parametrize("name", SECOND_ORDER_BINARY)
def test_create_graph_second_derivative_binary(name, shapes):
    fn, domain = BINARY[name]
    rng = rng_for("create-graph-binary", name, shapes)
    a, b = _pair(domain, shapes[0], shapes[1], rng)
    check_second_order(fn, [a, b], rng)


OTHER_SECOND_ORDER = {
    "sum_axis": ((2, 3), "normal", lambda m, x: m.sum(x * x, axis=0)),
    "mean_keepdims": ((2, 3), "normal", lambda m, x: m.mean(m.exp(x), axis=1, keepdims=True)),
    "max": ((2, 3), "distinct", lambda m, x: m.max(x * x, axis=1)),
    "min": ((2, 3), "distinct", lambda m, x: m.min(x, axis=0) ** 2),
    "logsumexp": ((2, 3), "normal", lambda m, x: m.logsumexp(x, axis=1)),
    "logsumexp_all": ((2, 3), "normal", lambda m, x: m.logsumexp(x)),
    "softmax": ((2, 3), "normal", lambda m, x: m.softmax(x, axis=0)),
    "log_softmax": ((2, 3), "normal", lambda m, x: m.log_softmax(x, axis=-1)),
    "reshape": ((2, 3), "normal", lambda m, x: m.reshape(x * x, (3, 2))),
    "transpose": ((2, 3), "normal", lambda m, x: m.transpose(x) * x.T),
    "broadcast_to": ((3,), "normal", lambda m, x: m.broadcast_to(x, (2, 3)) ** 2),
    "concatenate": ((2, 3), "normal", lambda m, x: m.concatenate([x * x, m.exp(x)], axis=1)),
    "stack": ((2, 3), "normal", lambda m, x: m.stack([x * x, m.tanh(x)], axis=-1)),
    "matmul_2d": ((3, 3), "normal", lambda m, x: m.matmul(x, x)),
    "matmul_1d": ((3,), "normal", lambda m, x: m.matmul(x, x) * x),
    "matmul_batched": ((2, 3, 3), "normal", lambda m, x: m.matmul(x, x[0])),
    "linear": ((3, 3), "normal", lambda m, x: m.linear(x, x, x[0])),
    "linear_batched": ((2, 3, 3), "normal", lambda m, x: m.linear(x * x, x[0], m.tanh(x[1, 0]))),
    "index_repeats": ((4, 3), "normal", lambda m, x: (x * x)[np.array([0, 2, 2, 3])]),
    "index_mask": ((4, 3), "normal", lambda m, x: (x * x)[INDEX_MASK] * x[INDEX_MASK]),
    "index_slice": ((4, 3), "normal", lambda m, x: x[1:, ::-1] * x[:-1, :]),
    "where": ((2, 3), "normal", lambda m, x: m.where(INDEX_MASK[:2], x * x, m.exp(x))),
    "astype": ((3,), "normal", lambda m, x: m.astype(x * x, np.float64) * x),
}


@pytest.mark.parametrize("name", list(OTHER_SECOND_ORDER))
def test_create_graph_second_derivative_other(name):
    shape, domain, fn = OTHER_SECOND_ORDER[name]
    rng = rng_for("create-graph-other", name)
    check_second_order(fn, [sample(domain, shape, rng)], rng)


@pytest.mark.parametrize("name", list(OTHER_SECOND_ORDER))
def test_hessian_of_other_primitives(name):
    shape, domain, fn = OTHER_SECOND_ORDER[name]
    rng = rng_for("hessian-other", name)
    x = sample(domain, shape, rng)
    w = rng.normal(size=evaluate(tg, fn, [x]).shape)

    def loss(m, v):
        return m.sum(m.sin(fn(m, v)) * w)

    H = tg.hessian(lambda v: loss(tg, v), x)
    Hm = H.reshape(x.size, x.size)
    assert_close(Hm, Hm.T, rtol=1e-10, atol_scale=1e-12, msg="symmetry")
    assert_close(H, _fd_hessian(loss, x), rtol=1e-6, atol_scale=1e-6, atol_floor=1e-7)


def test_create_graph_grad_accumulates_as_variable_and_third_order():
    x = tg.Variable(np.array([0.3, -0.7]), requires_grad=True)
    y = tg.sum(x ** 4)
    y.backward(create_graph=True)
    g = x.grad
    assert isinstance(g, tg.Variable) and g.requires_grad
    assert_close(g, 4 * x.data ** 3)
    x.grad = None
    tg.sum(g).backward(create_graph=True)
    g2 = x.grad
    assert isinstance(g2, tg.Variable) and g2.requires_grad
    assert_close(g2, 12 * x.data ** 2)
    x.grad = None
    tg.sum(g2).backward()
    assert_close(x.grad, 24 * x.data)


# ---------------------------------------------------------------------------
# 4. jacobian: tuples, chunks, auto, constants, float32, nesting
# ---------------------------------------------------------------------------
def _three_inputs(a, b, c):
    return tg.tanh(a @ b) * c + tg.sum(a, axis=1) * tg.exp(c)


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_jacobian_tuple_input(mode):
    rng = rng_for("tuple")
    a, b, c = rng.normal(size=(2, 3)), rng.normal(size=(3,)), np.array(0.4)
    jac = tg.jacobian(_three_inputs, (a, b, c), mode=mode)
    assert isinstance(jac, tuple) and len(jac) == 3
    assert [j.shape for j in jac] == [(2, 2, 3), (2, 3), (2,)]
    fd = fd_jacobians(lambda m, p, q, r: _three_inputs(p, q, r), [a, b, c])
    for j, n in zip(jac, fd):
        assert isinstance(j, np.ndarray)
        assert_close(j, n, rtol=FD_RTOL, atol_scale=FD_ATOL, atol_floor=1e-8)
    # a list of inputs behaves like a tuple
    jl = tg.jacobian(_three_inputs, [a, b, c], mode=mode)
    assert isinstance(jl, tuple) and len(jl) == 3
    for j, k in zip(jl, jac):
        assert_close(j, k, rtol=0, atol_scale=0)
    # a 1-tuple gives a 1-tuple; a bare array gives a bare array
    j1 = tg.jacobian(tg.tanh, (a,), mode=mode)
    assert isinstance(j1, tuple) and len(j1) == 1 and j1[0].shape == (2, 3, 2, 3)
    j0 = tg.jacobian(tg.tanh, a, mode=mode)
    assert isinstance(j0, np.ndarray) and j0.shape == (2, 3, 2, 3)
    assert_close(j0, j1[0], rtol=0, atol_scale=0)


CHUNK_FUNCTIONS = {
    # 12 inputs -> 5 outputs, and 3 inputs -> 10 outputs: chunks of 7 split both unevenly
    "wide": ((3, 4), lambda m, x: m.concatenate(
        [m.logsumexp(x, axis=0), m.max(m.softmax(x, axis=1) * x, axis=None).reshape(1)], axis=0)),
    "tall": ((3,), lambda m, x: m.reshape(m.tanh(m.matmul(np.arange(30.0).reshape(10, 3) / 10.0, x)), (2, 5))),
    "indexing": ((4, 3), lambda m, x: m.sin(x)[np.array([3, 0, 3, 1])][:, 1:] * x[0, 0]),
    "scalar_out": ((11,), lambda m, x: m.sum(x ** 2)),
    "scalar_in": ((), lambda m, x: m.stack([x, x ** 2, m.sin(x), m.exp(x), x * 3.0, x - 1.0, x / 2.0, m.cos(x)])),
}


@pytest.mark.parametrize("name", list(CHUNK_FUNCTIONS))
def test_jacobian_chunk_sizes_agree(name):
    shape, fn = CHUNK_FUNCTIONS[name]
    rng = rng_for("chunk", name)
    x = rng.normal(size=shape)

    def f(v):
        return fn(tg, v)

    base = tg.jacobian(f, x, mode="reverse")
    for mode in ["forward", "reverse", "auto"]:
        results = {}
        for chunk in (1, 2, 7, None, 1000):
            J = tg.jacobian(f, x, mode=mode, chunk_size=chunk)
            assert J.shape == base.shape and J.dtype == np.float64
            results[chunk] = J
        for chunk, J in results.items():
            assert_close(J, results[None], rtol=1e-14, atol_scale=1e-15,
                         msg=f"mode={mode} chunk_size={chunk} vs chunk_size=None")
        assert_close(results[None], base, rtol=MODE_RTOL, atol_scale=1e-13, msg=f"mode={mode} vs reverse")
    # a NumPy integer chunk size is an int too
    assert_close(tg.jacobian(f, x, mode="forward", chunk_size=np.int64(3)), base, rtol=MODE_RTOL,
                 atol_scale=1e-13)
    assert_close(base, fd_jacobians(fn, [x])[0], rtol=FD_RTOL, atol_scale=FD_ATOL, atol_floor=1e-8)
    ref = reference_with_jacobian()
    for chunk in (1, 2, 7, None):
        for mode in MODES:
            R = ref.jacobian(lambda v: fn(ref, v), x, mode=mode, chunk_size=chunk)
            assert_close(np.asarray(R), base, rtol=XENGINE_RTOL, atol_scale=1e-12,
                         msg=f"reference {mode} chunk={chunk}")


def test_jacobian_chunk_sizes_with_tuple_input():
    rng = rng_for("chunk-tuple")
    a, b, c = rng.normal(size=(2, 3)), rng.normal(size=(3,)), np.array(0.4)
    base = tg.jacobian(_three_inputs, (a, b, c), mode="reverse")
    for mode in MODES:
        for chunk in (1, 2, 7, None):
            jac = tg.jacobian(_three_inputs, (a, b, c), mode=mode, chunk_size=chunk)
            for j, k in zip(jac, base):
                assert_close(j, k, rtol=MODE_RTOL, atol_scale=1e-13, msg=f"{mode} chunk={chunk}")


@pytest.mark.parametrize("shape_in,n_out", [((2,), 6), ((6,), 2), ((3,), 3), ((), 1), ((4,), 1)])
def test_jacobian_auto_mode_matches(shape_in, n_out):
    rng = rng_for("auto", shape_in, n_out)
    x = rng.normal(size=shape_in)
    M = rng.normal(size=(n_out, max(int(np.prod(shape_in)), 1)))

    def f(v):
        return tg.sin(tg.matmul(M, tg.reshape(v, (-1,))) * 2.0)

    ja = tg.jacobian(f, x)  # mode="auto" is the default
    jb = tg.jacobian(f, x, mode="auto")
    jf = tg.jacobian(f, x, mode="forward")
    jr = tg.jacobian(f, x, mode="reverse")
    assert ja.shape == jf.shape == jr.shape == (n_out,) + shape_in
    assert_close(ja, jf, rtol=MODE_RTOL, atol_scale=1e-13)
    assert_close(jb, jr, rtol=MODE_RTOL, atol_scale=1e-13)


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_jacobian_of_output_independent_of_x(mode):
    x = np.array([1.0, 2.0, 3.0])
    # a constant Variable
    J = tg.jacobian(lambda v: tg.Variable(np.ones((2, 2))), x, mode=mode)
    assert isinstance(J, np.ndarray) and J.shape == (2, 2, 3)
    assert_close(J, np.zeros((2, 2, 3)), rtol=0, atol_scale=0)
    # computed under no_grad
    def f_nograd(v):
        with tg.no_grad():
            return tg.exp(v) * 2.0

    J = tg.jacobian(f_nograd, x, mode=mode)
    assert J.shape == (3, 3)
    assert_close(J, np.zeros((3, 3)), rtol=0, atol_scale=0)
    # from a detached copy
    J = tg.jacobian(lambda v: tg.exp(v.detach()), x, mode=mode)
    assert_close(J, np.zeros((3, 3)), rtol=0, atol_scale=0)
    # one input of a tuple unused
    ja, jb = tg.jacobian(lambda a, b: tg.sin(a), (x, np.ones((2,))), mode=mode)
    assert ja.shape == (3, 3) and jb.shape == (3, 2)
    assert_close(ja, np.diag(np.cos(x)), rtol=1e-14, atol_scale=1e-15)
    assert_close(jb, np.zeros((3, 2)), rtol=0, atol_scale=0)
    # structurally dependent, numerically zero
    J = tg.jacobian(lambda v: v * 0.0, x, mode=mode)
    assert_close(J, np.zeros((3, 3)), rtol=0, atol_scale=0)
    # jvp / vjp / grad of a constant
    out, t = tg.jvp(lambda v: tg.Variable(np.ones(2)), (x,), (x,))
    assert_close(t, np.zeros(2), rtol=0, atol_scale=0)
    out, vjp_fn = tg.vjp(lambda v: tg.Variable(np.ones(2)), x)
    (g,) = vjp_fn(np.ones(2))
    assert g.shape == (3,)
    assert_close(g, np.zeros(3), rtol=0, atol_scale=0)


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_jacobian_float32(mode):
    rng = rng_for("f32")
    x = rng.normal(size=(3,)).astype(np.float32)
    W = rng.normal(size=(4, 3)).astype(np.float32)

    def f(v):
        return tg.tanh(tg.matmul(W, v)) * tg.sum(v * v)

    J = tg.jacobian(f, x, mode=mode)
    assert J.dtype == np.float32
    J64 = tg.jacobian(lambda v: tg.tanh(tg.matmul(W.astype(np.float64), v)) * tg.sum(v * v),
                      x.astype(np.float64), mode=mode)
    assert_close(J, J64, rtol=2e-5, atol_scale=2e-6)
    ja, jb = tg.jacobian(lambda a, b: tg.matmul(a, b) * 2.0, (W, x), mode=mode)
    assert ja.dtype == np.float32 and jb.dtype == np.float32
    # jvp / vjp / grad / hessian / hvp keep float32 too
    out, t = tg.jvp(f, (x,), (np.ones(3, np.float32),))
    assert out.dtype == np.float32 and t.dtype == np.float32
    out, vjp_fn = tg.vjp(f, x)
    assert vjp_fn(np.ones(4, np.float32))[0].dtype == np.float32
    g = tg.grad(lambda v: tg.sum(f(v)))(x)
    assert g.dtype == np.float32
    assert tg.hessian(lambda v: tg.sum(f(v)), x).dtype == np.float32
    assert tg.hvp(lambda v: tg.sum(f(v)), x, np.ones(3, np.float32)).dtype == np.float32


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_jacobian_of_empty_arrays(mode):
    """Size-0 inputs or outputs: the Jacobian is an empty array of shape out.shape + x.shape."""
    J = tg.jacobian(lambda v: tg.sum(v) * np.ones(2), np.zeros(0), mode=mode)
    assert isinstance(J, np.ndarray) and J.shape == (2, 0)
    J = tg.jacobian(lambda v: tg.concatenate([v * 2.0, np.ones(2)]), np.zeros((0,)), mode=mode)
    assert J.shape == (2, 0)
    J = tg.jacobian(lambda v: v[:0] * 2.0, np.ones(3), mode=mode)
    assert isinstance(J, np.ndarray) and J.shape == (0, 3)
    J = tg.jacobian(lambda v: tg.exp(v), np.ones((2, 0)), mode=mode)
    assert J.shape == (2, 0, 2, 0)


def test_jacobian_integer_input_is_float64():
    x = np.array([1, 2, 3])
    for mode in MODES:
        J = tg.jacobian(lambda v: v * v, x, mode=mode)
        assert J.dtype == np.float64
        assert_close(J, np.diag(2.0 * x), rtol=0, atol_scale=0)


@pytest.mark.parametrize("outer", MODES)
@pytest.mark.parametrize("inner", MODES)
def test_nested_jacobian_returns_variables_connected_to_outer_graph(inner, outer):
    rng = rng_for("nested", inner, outer)
    x = rng.normal(size=(3,))
    W = rng.normal(size=(2, 3))
    seen = {}

    def g(v):  # vector-valued: second derivatives of a vector function
        return tg.tanh(tg.matmul(W, v)) * v[0]

    def jac_of_g(v):
        J = tg.jacobian(g, v, mode=inner)
        seen["type"] = type(J)
        seen["requires_grad"] = J.requires_grad if isinstance(J, tg.Variable) else None
        return J

    T = tg.jacobian(jac_of_g, x, mode=outer)
    assert seen["type"] is tg.Variable and seen["requires_grad"], "inner jacobian must return a Variable"
    assert isinstance(T, np.ndarray) and T.shape == (2, 3, 3)

    def fd_T():
        eps = 1e-5
        out = np.zeros((2, 3, 3))
        for k in range(3):
            e = np.zeros(3)
            e[k] = eps
            out[..., k] = (tg.jacobian(g, x + e, mode="reverse") - tg.jacobian(g, x - e, mode="reverse")) / (2 * eps)
        return out

    assert_close(T, fd_T(), rtol=1e-6, atol_scale=1e-6, atol_floor=1e-7)
    # symmetric in the last two axes (second derivatives)
    assert_close(T, np.swapaxes(T, 1, 2), rtol=1e-10, atol_scale=1e-12)
    # chunked, inside and outside: the same tensor
    Tc = tg.jacobian(lambda v: tg.jacobian(g, v, mode=inner, chunk_size=2), x, mode=outer, chunk_size=2)
    assert_close(Tc, T, rtol=1e-12, atol_scale=1e-14)


def test_nested_transforms_of_every_kind():
    rng = rng_for("nested-kinds")
    x = rng.normal(size=(3,))
    u = rng.normal(size=(3,))

    def f(v):
        return tg.sum(tg.sin(v) * v[::-1]) + tg.logsumexp(v * v)

    H = tg.hessian(f, x)
    # nested calls return Variables connected to the outer graph
    seen = {}

    def probe(v):
        out, t = tg.jvp(f, (v,), (u,))
        out2, vjp_fn = tg.vjp(f, v)
        (gv,) = vjp_fn(np.array(1.0))
        seen.update(jvp=(type(out), type(t), t.requires_grad), vjp=(type(out2), type(gv), gv.requires_grad),
                    dd=type(tg.directional_derivative(f, v, u)), hvp=type(tg.hvp(f, v, u)),
                    hess=type(tg.hessian(f, v)), grad=type(tg.grad(f)(v)))
        return t

    tg.grad(probe)(x)
    assert seen["jvp"] == (tg.Variable, tg.Variable, True)
    assert seen["vjp"] == (tg.Variable, tg.Variable, True)
    assert seen["dd"] is seen["hvp"] is seen["hess"] is seen["grad"] is tg.Variable
    # grad of a jvp (forward-over-reverse spelled differently): d/dx <grad f, u> = H u
    hv1 = tg.grad(lambda v: tg.jvp(f, (v,), (u,))[1])(x)
    assert_close(hv1, H @ u, rtol=1e-10, atol_scale=1e-12)
    # grad of a vjp
    hv2 = tg.grad(lambda v: tg.sum(tg.vjp(f, v)[1](np.array(1.0))[0] * u))(x)
    assert_close(hv2, H @ u, rtol=1e-10, atol_scale=1e-12)
    # jvp of grad (forward-over-reverse by hand)
    hv3 = tg.jvp(tg.grad(f), (x,), (u,))[1]
    assert_close(hv3, H @ u, rtol=1e-10, atol_scale=1e-12)
    # directional derivative of a directional derivative: u^T H u
    uhu = tg.directional_derivative(lambda v: tg.directional_derivative(f, v, u), x, u)
    assert_close(np.asarray(uhu), u @ H @ u, rtol=1e-10, atol_scale=1e-12)
    # value_and_grad nested returns Variables for the value too
    seen = {}

    def inner(v):
        val, g = tg.value_and_grad(f)(v)
        seen["val"], seen["g"] = type(val), type(g)
        return val * tg.sum(g)

    gg = tg.grad(inner)(x)
    assert seen["val"] is tg.Variable and seen["g"] is tg.Variable
    g0 = tg.grad(f)(x)
    assert_close(gg, g0 * g0.sum() + f(tg.Variable(x)).item() * H.sum(axis=0), rtol=1e-10, atol_scale=1e-12)
    # hvp nested inside grad: d/dx <H(x) u, u>  vs differences
    third = tg.grad(lambda v: tg.sum(tg.hvp(f, v, u) * u))(x)
    eps = 1e-5
    fd = np.array([(u @ tg.hessian(f, x + eps * e) @ u - u @ tg.hessian(f, x - eps * e) @ u) / (2 * eps)
                   for e in np.eye(3)])
    assert_close(third, fd, rtol=1e-6, atol_scale=1e-6, atol_floor=1e-8)
    # hessian nested inside grad
    t2 = tg.grad(lambda v: tg.sum(tg.hessian(f, v) * np.outer(u, u)))(x)
    assert_close(t2, third, rtol=1e-10, atol_scale=1e-12)


def test_transforms_accept_variables_that_do_not_require_grad():
    x = tg.Variable(np.array([0.5, 1.5]))
    J = tg.jacobian(tg.exp, x, mode="forward")
    assert isinstance(J, np.ndarray)
    assert_close(J, np.diag(np.exp(x.data)))
    g = tg.grad(lambda v: tg.sum(v ** 2))(x)
    assert isinstance(g, np.ndarray)
    assert_close(g, 2 * x.data)
    assert x.grad is None and not x.requires_grad


# ---------------------------------------------------------------------------
# 5. Custom ops
# ---------------------------------------------------------------------------
def make_cube():
    @tg.custom_op
    def cube(x):
        return x ** 3

    @cube.defvjp
    def _(g, ans, x):
        return g * 3 * x ** 2

    @cube.defjvp
    def _(t, ans, x):
        return t * 3 * x ** 2

    return cube


@pytest.mark.parametrize("shape", [(), (4,), (2, 3)], ids=_ids)
def test_custom_cube_every_first_order_mode(shape):
    cube = make_cube()
    rng = rng_for("cube", shape)
    x = rng.normal(size=shape)
    u = rng.normal(size=shape)

    def f_custom(v):
        return tg.sin(cube(v * 1.5)) + cube(v)

    def f_builtin(v):
        return tg.sin((v * 1.5) ** 3) + v ** 3

    # grad
    g1 = tg.grad(lambda v: tg.sum(f_custom(v)))(x)
    g2 = tg.grad(lambda v: tg.sum(f_builtin(v)))(x)
    assert_close(g1, g2, rtol=1e-12, atol_scale=1e-14)
    # jvp / directional derivative
    o1, t1 = tg.jvp(f_custom, (x,), (u,))
    o2, t2 = tg.jvp(f_builtin, (x,), (u,))
    assert_close(o1, o2, rtol=1e-12, atol_scale=1e-14)
    assert_close(t1, t2, rtol=1e-12, atol_scale=1e-14)
    assert_close(tg.directional_derivative(f_custom, x, u), t2, rtol=1e-12, atol_scale=1e-14)
    # vjp
    w = rng.normal(size=shape)
    _, vf1 = tg.vjp(f_custom, x)
    _, vf2 = tg.vjp(f_builtin, x)
    assert_close(vf1(w)[0], vf2(w)[0], rtol=1e-12, atol_scale=1e-14)
    # jacobians, every mode and chunk size (the rules get a batch axis)
    Jb = tg.jacobian(f_builtin, x, mode="reverse")
    for mode in ["forward", "reverse", "auto"]:
        for chunk in (None, 1, 2):
            assert_close(tg.jacobian(f_custom, x, mode=mode, chunk_size=chunk), Jb, rtol=1e-12, atol_scale=1e-14,
                         msg=f"{mode} chunk={chunk}")
    # backward
    v = tg.Variable(x, requires_grad=True)
    tg.sum(f_custom(v)).backward()
    assert_close(v.grad, g2, rtol=1e-12, atol_scale=1e-14)
    # the value
    assert_close(cube(tg.Variable(x)), x ** 3)


def make_two_input(jvp_rules="both"):
    """f(a, b) = a * sin(b) with a tuple VJP and one JVP rule per input."""
    calls = {"vjp": 0, "jvp_a": 0, "jvp_b": 0}

    @tg.custom_op
    def asinb(a, b):
        return a * np.sin(b)

    @asinb.defvjp
    def _(g, ans, a, b):
        calls["vjp"] += 1
        return g * np.sin(b), g * a * np.cos(b)

    def jvp_a(t, ans, a, b):
        calls["jvp_a"] += 1
        return t * np.sin(b)

    def jvp_b(t, ans, a, b):
        calls["jvp_b"] += 1
        return t * a * np.cos(b)

    if jvp_rules == "both":
        asinb.defjvp(jvp_a, jvp_b)
    elif jvp_rules == "a_only":
        asinb.defjvp(jvp_a, None)
    return asinb, calls


def test_custom_two_inputs_tuple_vjp_and_two_jvp_rules():
    asinb, calls = make_two_input()
    rng = rng_for("two-input")
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    ta, tb = rng.normal(size=a.shape), rng.normal(size=b.shape)

    def f(p, q):
        return tg.exp(asinb(p, q * 0.5))

    def fb(p, q):
        return tg.exp(p * tg.sin(q * 0.5))

    o1, t1 = tg.jvp(f, (a, b), (ta, tb))
    o2, t2 = tg.jvp(fb, (a, b), (ta, tb))
    assert_close(o1, o2, rtol=1e-12, atol_scale=1e-14)
    assert_close(t1, t2, rtol=1e-12, atol_scale=1e-14)
    assert calls["jvp_a"] >= 1 and calls["jvp_b"] >= 1
    for mode in ["forward", "reverse"]:
        j1 = tg.jacobian(f, (a, b), mode=mode)
        j2 = tg.jacobian(fb, (a, b), mode="reverse")
        for x1, x2 in zip(j1, j2):
            assert_close(x1, x2, rtol=1e-12, atol_scale=1e-14, msg=mode)
    g1 = tg.grad(lambda p, q: tg.sum(f(p, q)), argnums=(0, 1))(a, b)
    g2 = tg.grad(lambda p, q: tg.sum(fb(p, q)), argnums=(0, 1))(a, b)
    for x1, x2 in zip(g1, g2):
        assert_close(x1, x2, rtol=1e-12, atol_scale=1e-14)
    # only one input is differentiated: the other's JVP rule is skipped
    calls["jvp_a"] = calls["jvp_b"] = 0
    _, t = tg.jvp(lambda p: asinb(p, b), (a,), (ta,))
    assert_close(t, ta * np.sin(b), rtol=1e-13, atol_scale=1e-15)
    assert calls["jvp_a"] == 1 and calls["jvp_b"] == 0
    _, t = tg.jvp(lambda q: asinb(a, q), (b,), (tb,))
    assert_close(t, tb * a * np.cos(b), rtol=1e-13, atol_scale=1e-15)
    # a Python-scalar / NumPy second input
    _, t = tg.jvp(lambda p: asinb(p, 0.3), (a,), (ta,))
    assert_close(t, ta * np.sin(0.3), rtol=1e-13, atol_scale=1e-15)


def test_custom_jvp_rule_none_for_one_input():
    asinb, _ = make_two_input("a_only")
    a, b = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    _, t = tg.jvp(lambda p: asinb(p, b), (a,), (np.ones(2),))
    assert_close(t, np.sin(b), rtol=1e-14, atol_scale=1e-15)
    with pytest.raises(NotImplementedError, match="asinb"):
        tg.jvp(lambda q: asinb(a, q), (b,), (np.ones(2),))
    # reverse mode is unaffected
    assert_close(tg.jacobian(lambda q: asinb(a, q), b, mode="reverse"), np.diag(a * np.cos(b)), rtol=1e-14)


def test_custom_missing_vjp_rule():
    @tg.custom_op
    def only_fwd(x):
        return 2.0 * x

    only_fwd.defjvp(lambda t, ans, x: 2.0 * t)
    x = np.array([1.0, 2.0])
    # forward mode works
    assert_close(tg.jvp(only_fwd, (x,), (np.ones(2),))[1], np.full(2, 2.0))
    assert_close(tg.jacobian(only_fwd, x, mode="forward"), 2.0 * np.eye(2))
    for call in (
        lambda: tg.grad(lambda v: tg.sum(only_fwd(v)))(x),
        lambda: tg.vjp(only_fwd, x)[1](np.ones(2)),
        lambda: tg.jacobian(only_fwd, x, mode="reverse"),
        lambda: tg.sum(only_fwd(tg.Variable(x, requires_grad=True))).backward(),
    ):
        with pytest.raises(NotImplementedError, match="only_fwd"):
            call()


def test_custom_missing_jvp_rule():
    @tg.custom_op
    def only_rev(x):
        return 2.0 * x

    only_rev.defvjp(lambda g, ans, x: 2.0 * g)
    x = np.array([1.0, 2.0])
    assert_close(tg.grad(lambda v: tg.sum(only_rev(v)))(x), np.full(2, 2.0))
    assert_close(tg.jacobian(only_rev, x, mode="reverse"), 2.0 * np.eye(2))
    for call in (
        lambda: tg.jvp(only_rev, (x,), (np.ones(2),)),
        lambda: tg.directional_derivative(only_rev, x, np.ones(2)),
        lambda: tg.jacobian(only_rev, x, mode="forward"),
    ):
        with pytest.raises(NotImplementedError, match="only_rev"):
            call()


def test_custom_second_order_is_refused_naming_the_op():
    cube = make_cube()
    x = np.array([0.5, -1.0])

    def f(v):
        return tg.sum(cube(v))

    with pytest.raises(NotImplementedError, match="cube"):
        tg.hessian(f, x)
    with pytest.raises(NotImplementedError, match="cube"):
        tg.hvp(f, x, np.ones(2))
    v = tg.Variable(x, requires_grad=True)
    with pytest.raises(NotImplementedError, match="cube"):
        f(v).backward(create_graph=True)
    with pytest.raises(NotImplementedError, match="cube"):
        tg.jacobian(tg.grad(f), x, mode="reverse")
    with pytest.raises(NotImplementedError, match="cube"):
        tg.grad(tg.grad(lambda s: cube(s)))(0.5)
    # first order still works afterwards, and on the same Variable
    assert_close(tg.grad(f)(x), 3 * x ** 2)
    v.grad = None
    f(v).backward()
    assert_close(v.grad, 3 * x ** 2)


class RuleError(Exception):
    pass


def test_custom_rule_raising_propagates_and_tape_still_works():
    state = {"raise": True}

    @tg.custom_op
    def fragile(x):
        return np.sin(x)

    @fragile.defvjp
    def _(g, ans, x):
        if state["raise"]:
            raise RuleError("vjp failed on purpose")
        return g * np.cos(x)

    @fragile.defjvp
    def _(t, ans, x):
        if state["raise"]:
            raise RuleError("jvp failed on purpose")
        return t * np.cos(x)

    x = np.array([0.1, 0.2, 0.3])
    with pytest.raises(RuleError, match="vjp failed"):
        tg.grad(lambda v: tg.sum(fragile(v)))(x)
    with pytest.raises(RuleError, match="jvp failed"):
        tg.jvp(fragile, (x,), (np.ones(3),))
    with pytest.raises(RuleError):
        tg.jacobian(fragile, x, mode="forward", chunk_size=1)
    with pytest.raises(RuleError):
        tg.jacobian(fragile, x, mode="reverse", chunk_size=2)
    # backward: the exception propagates and no .grad is touched
    v = tg.Variable(x, requires_grad=True)
    y = tg.sum(fragile(v) * 2.0 + v)
    with pytest.raises(RuleError):
        y.backward(retain_graph=True)
    assert v.grad is None
    # the same graph and new graphs work once the rule stops raising
    state["raise"] = False
    y.backward()
    assert_close(v.grad, 2 * np.cos(x) + 1, rtol=1e-14)
    assert_close(tg.jacobian(fragile, x, mode="forward"), np.diag(np.cos(x)), rtol=1e-14)
    assert_close(tg.jacobian(fragile, x, mode="reverse"), np.diag(np.cos(x)), rtol=1e-14)
    assert_close(tg.grad(lambda v: tg.sum(tg.tanh(v)))(x), 1 - np.tanh(x) ** 2, rtol=1e-14)


def test_custom_rule_raising_inside_no_grad_and_threads_do_not_break_grad_mode():
    @tg.custom_op
    def bad(x):
        return x * 1.0

    @bad.defvjp
    def _(g, ans, x):
        raise RuleError("boom")

    @bad.defjvp
    def _(t, ans, x):
        raise RuleError("boom")

    x = np.ones(2)
    for _ in range(3):
        with pytest.raises(RuleError):
            tg.jacobian(lambda v: tg.exp(bad(v)), x, mode="forward")
        with pytest.raises(RuleError):
            tg.jacobian(lambda v: tg.exp(bad(v)), x, mode="reverse")
        assert tg.is_grad_enabled()
    with tg.no_grad():
        with pytest.raises(RuleError):
            tg.grad(lambda v: tg.sum(bad(v)))(x)
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_custom_vjp_rule_wrong_shape_is_a_value_error():
    @tg.custom_op
    def badshape(x):
        return x * 2.0

    badshape.defvjp(lambda g, ans, x: np.ones(2))
    badshape.defjvp(lambda t, ans, x: np.ones(2))
    x = np.ones(3)
    with pytest.raises(ValueError, match="badshape"):
        tg.grad(lambda v: tg.sum(badshape(v)))(x)
    with pytest.raises(ValueError, match="badshape"):
        tg.jacobian(badshape, x, mode="reverse")
    with pytest.raises(ValueError, match="badshape"):
        tg.jvp(badshape, (x,), (np.ones(3),))
    with pytest.raises(ValueError, match="badshape"):
        tg.jacobian(badshape, x, mode="forward")

    @tg.custom_op
    def badshape2(x):
        return x.sum(axis=0)

    badshape2.defvjp(lambda g, ans, x: np.ones((4,)))
    with pytest.raises(ValueError, match="badshape2"):
        tg.grad(lambda v: tg.sum(badshape2(v)))(np.ones((2, 2)))
    # the engine is still usable
    assert_close(tg.grad(lambda v: tg.sum(v * v))(x), 2 * x)


@pytest.mark.parametrize("n", [2, 3])
def test_custom_vjp_rule_returning_one_array_for_several_inputs_is_a_value_error(n):
    """A rule of a two-input op must return a tuple of two gradients; a bare array (here of
    length 2, like the tuple expected) is a wrong result, not a tuple to iterate over."""

    @tg.custom_op
    def wrong_count(a, b):
        return a + b

    wrong_count.defvjp(lambda g, ans, a, b: g)  # one gradient for two inputs
    with pytest.raises(ValueError, match="wrong_count"):
        tg.grad(lambda p, q: tg.sum(wrong_count(p, q)))(np.ones(n), np.ones(n))
    with pytest.raises(ValueError, match="wrong_count"):
        tg.jacobian(lambda p, q: wrong_count(p, q), (np.ones(n), np.ones(n)), mode="reverse")


def test_custom_op_nested_in_first_order_transforms_of_an_outer_function():
    """A custom op inside f works for jacobian of f (first order), whatever builtin ops surround it."""
    cube = make_cube()
    rng = rng_for("cube-composite")
    x = rng.normal(size=(2, 3))
    W = rng.normal(size=(3, 2))

    def fc(v):
        return tg.log_softmax(tg.matmul(cube(tg.tanh(v)), W), axis=0)[np.array([1, 1, 0])]

    def fb(v):
        return tg.log_softmax(tg.matmul(tg.tanh(v) ** 3, W), axis=0)[np.array([1, 1, 0])]

    for mode in MODES:
        assert_close(tg.jacobian(fc, x, mode=mode), tg.jacobian(fb, x, mode="reverse"), rtol=1e-12,
                     atol_scale=1e-14)


# ---------------------------------------------------------------------------
# 6. Errors
# ---------------------------------------------------------------------------
def test_wrong_tangent_shape():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"\(3, 2\)") as info:
        tg.jvp(tg.exp, (x,), (np.ones((3, 2)),))
    assert "(2, 3)" in str(info.value)
    with pytest.raises(ValueError, match=r"\(6,\)"):
        tg.directional_derivative(tg.exp, x, np.ones(6))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        tg.jvp(tg.exp, (x,), (np.ones(3),))  # broadcastable is still wrong
    with pytest.raises(ValueError):
        tg.jvp(tg.exp, (x,), (1.0,))  # a scalar tangent for a (2, 3) primal
    with pytest.raises(ValueError, match=r"\(4,\)"):
        tg.hvp(lambda v: tg.sum(v * v), np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        tg.jvp(lambda a, b: a * b, (np.ones(2), np.ones(2)), (np.ones(2),))  # tangent count


def test_wrong_cotangent_shape():
    _, vjp_fn = tg.vjp(tg.exp, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        vjp_fn(np.ones((3, 2)))
    # a correct call still works after the failed one
    assert_close(vjp_fn(np.ones((2, 3)))[0], np.full((2, 3), np.e))


def test_wrong_tangent_dtype():
    x32 = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        tg.jvp(tg.exp, (x32,), (np.ones(3, dtype=np.float64),))
    with pytest.raises(TypeError):
        tg.directional_derivative(tg.exp, x32, np.ones(3))
    with pytest.raises(TypeError):
        tg.hvp(lambda v: tg.sum(v * v), x32, np.ones(3))
    with pytest.raises(TypeError, match="float32"):
        tg.jvp(tg.exp, (np.ones(3),), (np.ones(3, dtype=np.float32),))
    with pytest.raises(TypeError):
        tg.jvp(tg.exp, (np.ones(3),), (np.array(["a", "b", "c"]),))
    with pytest.raises(TypeError):
        tg.jvp(tg.exp, (np.ones(3),), (np.ones(3, dtype=complex),))
    with pytest.raises(TypeError):
        tg.jvp(tg.exp, (np.ones(3, dtype=complex),), (np.ones(3),))


@pytest.mark.parametrize("bad", [np.ones(3), 1.0, None, (1.0,), [1.0]], ids=lambda b: type(b).__name__)
def test_function_returning_a_non_variable(bad):
    x = np.ones(3)

    def f(*args):
        return bad

    calls = {
        "jvp": lambda: tg.jvp(f, (x,), (x,)),
        "vjp": lambda: tg.vjp(f, x),
        "grad": lambda: tg.grad(f)(x),
        "value_and_grad": lambda: tg.value_and_grad(f)(x),
        "jacobian_forward": lambda: tg.jacobian(f, x, mode="forward"),
        "jacobian_reverse": lambda: tg.jacobian(f, x, mode="reverse"),
        "jacobian_auto": lambda: tg.jacobian(f, x),
        "hessian": lambda: tg.hessian(f, x),
        "hvp": lambda: tg.hvp(f, x, x),
        "directional_derivative": lambda: tg.directional_derivative(f, x, x),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match="Variable"):
            call()


@pytest.mark.parametrize("shape", [(3,), (2, 2), (0,), (1, 2)], ids=_ids)
def test_grad_of_non_scalar_function(shape):
    x = np.ones(shape)
    shape_str = str(shape)
    for call in (
        lambda: tg.grad(lambda v: v * 2.0)(x),
        lambda: tg.value_and_grad(lambda v: v * 2.0)(x),
        lambda: tg.hessian(lambda v: v * 2.0, x),
        lambda: tg.hvp(lambda v: v * 2.0, x, x),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert shape_str in str(info.value), f"message does not name the shape {shape_str}: {info.value}"


def test_argnums_out_of_range_and_of_the_wrong_type():
    def f(a, b):
        return tg.sum(a * b)

    a, b = np.ones(2), np.ones(2)
    for argnums in (2, -3, (0, 2), (5,), 100):
        with pytest.raises(ValueError, match="argnums"):
            tg.grad(f, argnums=argnums)(a, b)
        with pytest.raises(ValueError, match="argnums"):
            tg.value_and_grad(f, argnums=argnums)(a, b)
    for argnums in ("0", 1.0, None, (0, "1")):
        with pytest.raises(TypeError, match="argnums"):
            tg.grad(f, argnums=argnums)(a, b)
    with pytest.raises(ValueError, match="argnums"):
        tg.grad(lambda: tg.Variable(1.0))()


@pytest.mark.parametrize("mode", ["Forward", "fwd", "rev", "", None, "both", 1])
def test_bad_mode(mode):
    with pytest.raises(ValueError, match="mode"):
        tg.jacobian(tg.exp, np.ones(2), mode=mode)


@pytest.mark.parametrize("chunk", [0, -1, -7])
def test_bad_chunk_size_value(chunk):
    for mode in ["forward", "reverse", "auto"]:
        with pytest.raises(ValueError, match="chunk_size"):
            tg.jacobian(tg.exp, np.ones(2), mode=mode, chunk_size=chunk)


@pytest.mark.parametrize("chunk", [1.5, 2.0, "2", [2]])
def test_bad_chunk_size_type(chunk):
    for mode in ["forward", "reverse", "auto"]:
        with pytest.raises((ValueError, TypeError), match="chunk_size"):
            tg.jacobian(tg.exp, np.ones(2), mode=mode, chunk_size=chunk)


def test_non_numeric_primals():
    with pytest.raises(TypeError):
        tg.jacobian(tg.exp, np.array(["a"]))
    with pytest.raises(TypeError):
        tg.grad(lambda v: tg.sum(v))(np.array(["a"]))
    with pytest.raises(TypeError):
        tg.jvp(tg.exp, (np.array(["a"]),), (np.ones(1),))


def test_errors_leave_grad_mode_enabled():
    for call in (
        lambda: tg.jacobian(lambda v: None, np.ones(2)),
        lambda: tg.grad(lambda v: v)(np.ones(2)),
        lambda: tg.jvp(tg.exp, (np.ones(2),), (np.ones(3),)),
    ):
        with pytest.raises((TypeError, ValueError)):
            call()
        assert tg.is_grad_enabled()
    # inside no_grad the transforms still differentiate and restore no_grad afterwards
    with tg.no_grad():
        g = tg.grad(lambda v: tg.sum(v * v))(np.ones(2))
        J = tg.jacobian(tg.exp, np.zeros(2), mode="forward")
        assert not tg.is_grad_enabled()
    assert_close(g, np.full(2, 2.0))
    assert_close(J, np.eye(2))
