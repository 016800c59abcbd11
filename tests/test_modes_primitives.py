"""Every primitive of the C++ engine in every derivative mode (docs/API.md,
"Modes and the functional API (both engines)").

* Every primitive, on shapes including 0-d and broadcasting pairs:
  jacobian(mode="forward") == jacobian(mode="reverse") == central finite
  differences == the reference engine's jacobian.
* jvp, vjp and directional_derivative of primitives agree with their Jacobian.
* Reverse-over-reverse through ``backward(create_graph=True)`` for every
  primitive, against differences of gradients and hvp.

The functional API itself (jvp/vjp/grad/jacobian options/hessian/hvp) is in
test_modes.py, custom ops in test_custom_op.py, error cases in
test_modes_errors.py. Everything is float64 unless a test says otherwise.
"""

import numpy as np
import pytest

import op_cases
import tapegrad as tg
from helpers import MODES, assert_close, check_jacobians, evaluate, reference_with_jacobian, rng_for, sample
from helpers import case_id as _ids
from helpers import fd_hessian as _fd_hessian


# ---------------------------------------------------------------------------
# 1. Every primitive
# ---------------------------------------------------------------------------
# every elementwise op of the spec, drawn from its domain; then other spellings and compositions
UNARY = {name: (op_cases.call(name), op_cases.sample_domain(name)) for name in op_cases.ELEMENTWISE}
UNARY.update({
    "neg_operator": (lambda m, x: -x, "normal"),
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
})
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


# every two-operand elementwise op of the spec; then the operators
BINARY = {name: (op_cases.call(name), op_cases.pair_domain(name)) for name in op_cases.BINARY}
BINARY.update({
    "add_operator": (lambda m, a, b: a + b, "normal"),
    "sub_operator": (lambda m, a, b: a - b, "normal"),
    "pow_operator": (lambda m, a, b: a ** b, "power"),
})
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
@pytest.mark.parametrize("name", [*op_cases.ELEMENTWISE, "clip", "rsqrt", "two_to_the_x"])
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


# ---------------------------------------------------------------------------
# 3. Second order of every primitive
# ---------------------------------------------------------------------------
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
        # (atol_floor: for arcsin, sin(arcsin(x)) = x and the Hessian is 0, rounding noise on both sides)
        assert_close(hv, second[0], rtol=1e-10, atol_scale=1e-12, atol_floor=1e-13, msg="hvp vs reverse-over-reverse")


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

