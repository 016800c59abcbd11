"""Tests of the pure-NumPy reference engine (tapegrad.reference) on its own.

Gradients are checked against central finite differences in float64; the
error cases, dtype rules, kink conventions, grad mode and graph bookkeeping
of docs/API.md are checked directly.
"""

import threading

import numpy as np
import pytest

import op_cases
import tapegrad.reference as tg

Variable = tg.Variable


# --------------------------------------------------------------------------
# Finite-difference helper
# --------------------------------------------------------------------------


def numerical_grads(f, arrays, w, eps=1e-6):
    """Central differences of sum(f(*arrays) * w) w.r.t. each array."""
    def value(arrs):
        with tg.no_grad():
            out = f(*[Variable(a) for a in arrs])
        return float(np.sum(np.asarray(out.data) * w))

    grads = []
    for i, a in enumerate(arrays):
        grad = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            grad[idx] = (value(plus) - value(minus)) / (2 * eps)
        grads.append(grad)
    return grads


def check_grads(f, *arrays, seed=0, rtol=1e-5, atol=1e-6):
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    variables = [Variable(a, requires_grad=True) for a in arrays]
    out = f(*variables)
    w = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(w)
    expected = numerical_grads(f, arrays, w)
    for v, num in zip(variables, expected):
        assert v.grad is not None
        assert isinstance(v.grad, np.ndarray)
        assert v.grad.shape == v.shape and v.grad.dtype == np.float64
        np.testing.assert_allclose(v.grad, num, rtol=rtol, atol=atol)
    return variables


def rand(shape, seed=0, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def away_from_zero(shape, seed=0):
    x = rand(shape, seed, 0.3, 2.0)
    sign = np.where(np.random.default_rng(seed + 1).random(shape) < 0.5, -1.0, 1.0)
    return x * sign


SHAPES = [(), (3,), (2, 3), (1, 3), (4, 1, 3), (2, 1)]
PAIRS = [((), ()), ((2, 3), (1, 3)), ((4, 1, 3), (2, 3)), ((2, 3), ()), ((), (2, 3)),
         ((3,), (2, 1)), ((1,), (1, 1)), ((2, 1), (1, 3)), ((3,), (3,))]


# --------------------------------------------------------------------------
# Elementwise ops
# --------------------------------------------------------------------------

def _spec_input(name):
    """Uniform on the op's spec domain (away from 0 where it has a kink)."""
    lo, hi, away = op_cases.bounds(name)
    if away:
        return away_from_zero
    return lambda s, seed: rand(s, seed, lo, hi)


# every elementwise op of the spec; then other spellings and compositions
UNARY = {name: (getattr(tg, name), _spec_input(name)) for name in op_cases.ELEMENTWISE}
UNARY.update({
    "neg_operator": (lambda x: -x, rand),
    "sigmoid_wide": (tg.sigmoid, lambda s, seed: rand(s, seed, -6, 6)),
    "abs_builtin": (abs, away_from_zero),
    "clip": (lambda x: tg.clip(x, -0.5, 0.7), away_from_zero),
    "square": (lambda x: x ** 2, rand),
    "rpow": (lambda x: 2.0 ** x, rand),
    "method_chain": (lambda x: x.exp().log1p().tanh().sigmoid().sqrt(), rand),
})


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_gradients(name, shape):
    f, make = UNARY[name]
    check_grads(f, make(shape, 3))


_PAIR_INPUTS = {"normal": (rand, rand), "divide": (rand, away_from_zero),
                "power": (lambda s, seed: rand(s, seed, 0.3, 2.0), rand), "distinct": (rand, rand)}
# every two-operand elementwise op of the spec; then the operators
BINARY = {name: (getattr(tg, name), *_PAIR_INPUTS[op_cases.pair_domain(name)]) for name in op_cases.BINARY}
BINARY.update({
    "operators": (lambda a, b: (a + b) * a - b / (a * a + 1) + a ** 2 - 3 * b, rand, rand),
})


@pytest.mark.parametrize("shapes", PAIRS, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_gradients_with_broadcasting(name, shapes):
    f, make_a, make_b = BINARY[name]
    a, b = make_a(shapes[0], 1), make_b(shapes[1], 2)
    check_grads(f, a, b)
    out = f(Variable(a), Variable(b))
    assert out.shape == np.broadcast_shapes(*shapes)


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3), (2, 3)), ((2, 3), (1, 3), (2, 1)),
                                    ((4, 1, 3), (2, 3), ()), ((), (), ()), ((3,), (2, 1), (1,))],
                         ids=str)
def test_where_gradients(shapes):
    cond = rand(shapes[0], 5) > 0
    check_grads(lambda x, y: tg.where(cond, x, y), rand(shapes[1], 1), rand(shapes[2], 2))


def test_where_with_scalar_and_variable_condition():
    x = Variable([1.0, -2.0, 3.0], requires_grad=True)
    y = tg.where(x > 0, x, 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [1.0, 0.0, 3.0])
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 1.0])
    cond = Variable([1.0, 0.0, 2.0])
    np.testing.assert_array_equal(tg.where(cond, 1.0, -1.0).data, [1.0, -1.0, 1.0])


def test_clip_with_array_bounds_and_none():
    x = away_from_zero((2, 3), 4)
    check_grads(lambda v: tg.clip(v, np.array([-1.0, 0.0, -0.5]), 0.8), x)
    check_grads(lambda v: tg.clip(v, None, 0.5), x)
    check_grads(lambda v: tg.clip(v, -0.5, None), x)
    check_grads(lambda v: v.clip(-0.5, 0.5), x)


# --------------------------------------------------------------------------
# Reductions and normalisers
# --------------------------------------------------------------------------

REDUCTION_CASES = [((), None), ((), ()), ((3,), None), ((3,), 0), ((2, 3, 4), None),
                   ((2, 3, 4), 0), ((2, 3, 4), -1), ((2, 3, 4), (0, 2)), ((2, 3, 4), ()),
                   ((1, 3), 0), ((4, 1, 3), 1), ((4, 1, 3), (1, 2))]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axis", REDUCTION_CASES, ids=str)
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "logsumexp"])
def test_reduction_gradients(op, shape, axis, keepdims):
    f = getattr(tg, op)
    x = rand(shape, 7)          # continuous random values: no ties
    check_grads(lambda v: f(v, axis=axis, keepdims=keepdims), x)
    if op == "logsumexp":
        expected = np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    else:
        expected = getattr(np, op)(x, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(f(Variable(x), axis=axis, keepdims=keepdims).data, expected)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
def test_reduction_methods(op):
    x = rand((2, 3), 8)
    check_grads(lambda v: getattr(v, op)(), x)
    check_grads(lambda v: getattr(v, op)(axis=1, keepdims=True), x)
    check_grads(lambda v: getattr(v, op)(0), x)


@pytest.mark.parametrize("shape,axis", [((3,), -1), ((2, 3), 0), ((2, 3), -1),
                                        ((4, 1, 3), 1), ((4, 1, 3), -1), ((4, 2, 3), (0, 2))],
                         ids=str)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_gradients(op, shape, axis):
    f = getattr(tg, op)
    x = rand(shape, 9)
    check_grads(lambda v: f(v, axis=axis), x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    sm = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(f(Variable(x), axis=axis).data,
                               sm if op == "softmax" else np.log(sm))


def test_normalisers_are_stable_for_huge_logits():
    x = Variable([1e4, 0.0, -1e4], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        sm = tg.softmax(x)
        lsm = tg.log_softmax(x)
        lse = tg.logsumexp(Variable([1e4, 1e4]))
    np.testing.assert_allclose(sm.data, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(lsm.data, [0.0, -1e4, -2e4])
    np.testing.assert_allclose(lse.data, 1e4 + np.log(2.0))
    (sm[0] + lsm.sum() + tg.logsumexp(x)).backward()
    assert np.all(np.isfinite(x.grad))
    s = tg.sigmoid(Variable([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(s.data, [0.0, 0.5, 1.0])
    lse_inf = tg.logsumexp(Variable([-np.inf, -np.inf]))
    assert lse_inf.item() == -np.inf


# --------------------------------------------------------------------------
# Shape ops and indexing
# --------------------------------------------------------------------------


@pytest.mark.parametrize("f,shape", [
    (lambda v: tg.reshape(v, (3, 2)), (2, 3)),
    (lambda v: v.reshape(-1), (2, 3)),
    (lambda v: v.reshape(1, 6, 1), (2, 3)),
    (lambda v: v.reshape(()), (1, 1)),
    (lambda v: v.reshape((1,)), ()),
    (lambda v: tg.transpose(v), (2, 3, 4)),
    (lambda v: tg.transpose(v, (1, 0, 2)), (2, 3, 4)),
    (lambda v: v.transpose(2, 0, 1), (2, 3, 4)),
    (lambda v: v.transpose(-1, 0, 1), (2, 3, 4)),
    (lambda v: v.T, (2, 3)),
    (lambda v: v.T, ()),
    (lambda v: tg.broadcast_to(v, (2, 3)), (3,)),
    (lambda v: tg.broadcast_to(v, (4, 2, 3)), (1, 3)),
    (lambda v: tg.broadcast_to(v, (2,)), ()),
    (lambda v: tg.broadcast_to(v, (4, 2, 3)), (4, 1, 3)),
], ids=lambda x: str(x) if isinstance(x, tuple) else "")
def test_shape_op_gradients(f, shape):
    check_grads(f, rand(shape, 11))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack_gradients(axis):
    shapes = {0: [(1, 3), (2, 3), (3, 3)], 1: [(2, 1), (2, 2), (2, 3)], -1: [(2, 1), (2, 2), (2, 3)]}
    arrays = [rand(s, i) for i, s in enumerate(shapes[axis])]
    check_grads(lambda *vs: tg.concatenate(vs, axis=axis), *arrays)
    arrays = [rand((2, 3), i) for i in range(3)]
    check_grads(lambda *vs: tg.stack(vs, axis=axis), *arrays)
    if axis in (0, -1):                       # stacking 0-d values
        check_grads(lambda *vs: tg.stack(list(vs), axis=axis), *[rand((), i) for i in range(2)])


def test_concatenate_mixed_inputs():
    x = Variable([1.0, 2.0], requires_grad=True)
    y = tg.concatenate([x, np.array([3.0]), x], axis=0)
    np.testing.assert_array_equal(y.data, [1, 2, 3, 1, 2])
    y.backward(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    np.testing.assert_array_equal(x.grad, [5.0, 7.0])


KEYS = [
    1, -1, slice(1, None), slice(None, None, -2), (slice(None), 1), (Ellipsis, 0),
    (None, 0), (0, None, slice(1, 3)), (Ellipsis, None), np.array([0, 2, 0, 0]),
    [2, 2], (np.array([0, 1, 1]), np.array([3, 0, 3])), (slice(None), [0, 0, 3]),
    (np.array([[0], [2]]), np.array([[1, 1, 2]])), (1, 2), (Ellipsis,),
    "mask", "mask_row",
]


@pytest.mark.parametrize("key", KEYS, ids=lambda k: repr(k).replace(" ", ""))
def test_getitem_gradients(key):
    x = rand((3, 4), 12)
    if isinstance(key, str):
        key = (x > 0) if key == "mask" else np.array([True, False, True])
    check_grads(lambda v: v[key], x)
    np.testing.assert_array_equal(Variable(x)[key].data, x[key])


def test_getitem_zero_d_and_repeated_indices_accumulate():
    check_grads(lambda v: v[()], rand((), 1))
    check_grads(lambda v: v[None], rand((), 1))
    check_grads(lambda v: v[..., None], rand((), 1))
    x = Variable([1.0, 2.0, 3.0], requires_grad=True)
    y = x[np.array([0, 0, 2, 0])]
    y.backward(np.array([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_array_equal(x.grad, [1011.0, 0.0, 100.0])
    # the key is frozen: editing the index array afterwards changes nothing
    idx = np.array([1, 1])
    x.zero_grad()
    y = x[idx]
    idx[:] = 0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 2.0, 0.0])


MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)),
                 ((1, 3), (3, 1)), ((3,), (2, 3, 4)), ((2, 2, 3), (3,)), ((1, 2, 3), (4, 3, 1))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_gradients(shapes):
    a, b = rand(shapes[0], 1), rand(shapes[1], 2)
    check_grads(tg.matmul, a, b)
    check_grads(lambda x, y: x @ y, a, b)
    np.testing.assert_allclose((Variable(a) @ Variable(b)).data, a @ b)


def test_astype_is_differentiable():
    x = Variable(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = x.astype(np.float64)
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    check_grads(lambda v: v.astype("float64") * 3, rand((2,), 1))
    with pytest.raises(TypeError):
        x.astype(np.int32)


# --------------------------------------------------------------------------
# Kink conventions
# --------------------------------------------------------------------------


def grad_of(f, *values):
    vs = [Variable(np.array(v, dtype=np.float64), requires_grad=True) for v in values]
    f(*vs).sum().backward()
    return [v.grad for v in vs]


def test_kink_conventions():
    (g,) = grad_of(tg.relu, [-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0])
    (g,) = grad_of(tg.abs, [-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])
    ga, gb = grad_of(tg.maximum, [1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    np.testing.assert_array_equal(ga, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.0])
    ga, gb = grad_of(tg.minimum, [1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 1.0])
    ga, gb = grad_of(tg.maximum, [[1.0, 2.0], [2.0, 0.0]], [2.0, 2.0])   # broadcast ties
    np.testing.assert_array_equal(ga, [[0.0, 0.5], [0.5, 0.0]])
    np.testing.assert_array_equal(gb, [1.5, 1.5])
    (g,) = grad_of(tg.max, [1.0, 3.0, 3.0, 3.0])
    np.testing.assert_allclose(g, [0.0, 1 / 3, 1 / 3, 1 / 3])
    (g,) = grad_of(lambda v: tg.min(v, axis=1), [[1.0, 1.0], [0.0, 2.0]])
    np.testing.assert_array_equal(g, [[0.5, 0.5], [1.0, 0.0]])
    (g,) = grad_of(lambda v: tg.clip(v, 0.0, 1.0), [-1.0, 0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_power_special_cases():
    with np.errstate(all="ignore"):
        ga, gb = grad_of(tg.power, [0.0, 0.0, 0.0, 2.0, 3.0], [0.0, 2.0, 0.5, 0.0, 2.0])
    np.testing.assert_array_equal(ga[[0, 1, 3]], [0.0, 0.0, 0.0])    # b == 0 -> 0; 2*0^1 = 0
    assert ga[2] == np.inf                                           # 0.5 * 0^-0.5
    np.testing.assert_array_equal(ga[4], 6.0)
    np.testing.assert_array_equal(gb[:3], [0.0, 0.0, 0.0])          # a == 0, b >= 0 -> 0
    np.testing.assert_allclose(gb[3:], [np.log(2.0), 9 * np.log(3.0)])
    (g,) = grad_of(lambda x: x ** 0, [0.0, 5.0])
    np.testing.assert_array_equal(g, [0.0, 0.0])
    (g,) = grad_of(lambda x: x ** 2, [0.0, -3.0])
    np.testing.assert_array_equal(g, [0.0, -6.0])


# --------------------------------------------------------------------------
# dtype rules
# --------------------------------------------------------------------------


def test_dtype_rules():
    f32 = np.array([1.0, 2.0], dtype=np.float32)
    assert Variable([1, 2]).dtype == np.float64
    assert Variable(np.array([True])).dtype == np.float64
    assert Variable(1.5).dtype == np.float64
    assert Variable(f32).dtype == np.float32
    assert Variable([1, 2], dtype=np.float32).dtype == np.float32
    assert Variable(f32, dtype="float64").dtype == np.float64
    for bad in (np.int32, "int64", bool, np.float16, np.complex128):
        with pytest.raises(TypeError):
            Variable([1.0], dtype=bad)
    with pytest.raises(TypeError):
        Variable("abc")
    with pytest.raises(TypeError):
        Variable(np.array([1 + 2j]))

    x32 = Variable(f32, requires_grad=True)
    x64 = Variable([3.0, 4.0], requires_grad=True)
    assert (x32 * 2.0).dtype == np.float32
    assert (2 * x32).dtype == np.float32
    assert (x32 ** 2).dtype == np.float32
    assert tg.maximum(x32, 0.0).dtype == np.float32
    assert (x32 + np.ones(2, np.float32)).dtype == np.float32
    assert (x32 + np.ones(2)).dtype == np.float64
    assert (np.ones(2) + x32).dtype == np.float64
    assert (x32 + np.arange(2)).dtype == np.float64       # int data counts as float64
    y = x32 * x64
    assert y.dtype == np.float64
    y.sum().backward()
    assert x32.grad.dtype == np.float32 and x64.grad.dtype == np.float64
    np.testing.assert_allclose(x32.grad, [3.0, 4.0])
    for f in (tg.exp, tg.sigmoid, tg.softmax, tg.logsumexp, lambda v: v.sum(), lambda v: v.mean(),
              lambda v: v[0], lambda v: v @ v, lambda v: tg.clip(v, 0.0, 1.5)):
        assert f(Variable(f32)).dtype == np.float32


# --------------------------------------------------------------------------
# Error cases
# --------------------------------------------------------------------------


def test_shape_errors_name_op_and_shapes():
    with pytest.raises(ValueError, match=r"^matmul: shapes \(3, 4\) and \(5, 2\) are not aligned$"):
        tg.matmul(Variable(np.ones((3, 4))), Variable(np.ones((5, 2))))
    with pytest.raises(ValueError, match=r"matmul: .*\(2, 3, 4\).*\(5, 4, 2\)"):
        tg.matmul(np.ones((2, 3, 4)), np.ones((5, 4, 2)))
    with pytest.raises(ValueError, match="matmul"):
        tg.matmul(Variable(2.0), Variable([1.0]))
    with pytest.raises(ValueError, match=r"add: .*\(2, 3\).*\(4,\)"):
        Variable(np.ones((2, 3))) + Variable(np.ones(4))
    with pytest.raises(ValueError, match=r"multiply: .*\(2,\).*\(3,\)"):
        np.ones(2) * Variable(np.ones(3))
    with pytest.raises(ValueError, match=r"where: .*\(2,\).*\(3,\)"):
        tg.where(np.ones(2, bool), np.ones(3), 0.0)
    with pytest.raises(ValueError, match=r"reshape: .*\(2, 3\).*\(4,\)"):
        Variable(np.ones((2, 3))).reshape(4)
    with pytest.raises(ValueError, match=r"transpose: .*\(2, 3\)"):
        Variable(np.ones((2, 3))).transpose(0, 0)
    with pytest.raises(ValueError, match=r"broadcast_to: .*\(2, 3\).*\(3, 3\)"):
        tg.broadcast_to(Variable(np.ones((2, 3))), (3, 3))
    with pytest.raises(ValueError, match=r"sum: axis 2 .*\(2, 3\)"):
        tg.sum(Variable(np.ones((2, 3))), axis=2)
    with pytest.raises(ValueError, match="max"):
        tg.max(Variable(np.ones((0, 3))), axis=0)
    with pytest.raises(ValueError, match=r"concatenate: .*\(2, 3\).*\(2, 4\)"):
        tg.concatenate([np.ones((2, 3)), np.ones((2, 4))], axis=0)
    with pytest.raises(ValueError, match=r"stack: .*\(2,\).*\(3,\)"):
        tg.stack([np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match="softmax"):
        tg.softmax(Variable(np.ones(3)), axis=1)
    x = Variable(np.ones((2, 3)))
    with pytest.raises(ValueError):
        x += np.ones((3, 3))
    with pytest.raises(TypeError):
        tg.sum(x, axis=1.5)


def test_backward_errors():
    x = Variable(np.ones((2, 3)), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError):
        y.backward()                                   # non-scalar needs grad
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        y.backward(np.ones((3, 2)))
    with pytest.raises(RuntimeError):
        Variable(1.0).backward()                       # nothing requires grad
    assert x.grad is None                              # no partial updates


def test_second_backward_needs_retain_graph():
    x = Variable([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()                                        # graph kept by the first call
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])  # accumulated twice
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


def test_modified_saved_value_is_detected():
    w = Variable([1.0, 2.0], requires_grad=True)
    c = Variable([3.0, 4.0])
    y = (w * c).sum()
    c += 1.0                         # allowed: c does not require grad
    with pytest.raises(RuntimeError, match="in-place"):
        y.backward()
    assert w.grad is None

    x = Variable([0.0, 1.0], requires_grad=True)
    e = x.exp()                      # exp saves its output
    z = e.sum()
    with tg.no_grad():
        e *= 2.0
    with pytest.raises(RuntimeError, match="in-place"):
        z.backward()

    # a detached alias shares the version counter of its source
    x = Variable([0.0, 1.0], requires_grad=True)
    e = x.exp()
    alias = e.detach()
    alias += 1.0                     # allowed: the alias does not require grad
    np.testing.assert_array_equal(e.data, np.exp([0.0, 1.0]) + 1.0)
    with pytest.raises(RuntimeError, match="in-place"):
        e.sum().backward()

    # values that are not saved can be modified freely
    a = Variable([1.0, 2.0], requires_grad=True)
    b = Variable([5.0, 5.0])
    s = (a + b).sum()
    b -= 1.0
    s.backward()
    np.testing.assert_array_equal(a.grad, [1.0, 1.0])


def test_inplace_rules():
    w = Variable([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        w += 1.0
    with pytest.raises(RuntimeError):
        w *= 2.0
    data = w.data
    with tg.no_grad():
        w -= np.array([0.5, 0.5])
        w /= 2.0
        w *= Variable([2.0, 4.0])
        w += 1
    assert w.data is data                              # really in place
    np.testing.assert_array_equal(w.data, [1.5, 4.0])
    assert w.requires_grad and w.is_leaf
    c = Variable([1.0, 2.0])
    c2 = c
    c += w.detach()
    assert c is c2
    np.testing.assert_array_equal(c.data, [2.5, 6.0])
    with pytest.raises(RuntimeError):
        c += w                                         # would need recording
    f32 = Variable(np.ones(2, np.float32))
    f32 += np.array([0.5, 0.5])                        # keeps its dtype
    assert f32.dtype == np.float32


# --------------------------------------------------------------------------
# Variable API
# --------------------------------------------------------------------------


def test_variable_attributes():
    arr = np.arange(6.0).reshape(2, 3)
    v = Variable(arr, requires_grad=True)
    arr[0, 0] = 100.0
    assert v.data[0, 0] == 0.0                          # constructor copies
    v.data[0, 0] = 7.0                                  # .data is the live buffer
    assert v.numpy()[0, 0] == 7.0 and np.asarray(v.detach())[0, 0] == 7.0  # (np.asarray(v) raises: grad)
    assert v.shape == (2, 3) and v.ndim == 2 and v.size == 6 and len(v) == 2
    assert v.dtype == np.float64 and isinstance(v.dtype, np.dtype)
    assert v.is_leaf and v.grad_fn is None and v.grad is None
    assert "Variable" in repr(v)
    assert Variable(3.5).item() == 3.5 and isinstance(Variable(3.5).item(), float)
    with pytest.raises(ValueError):
        v.item()
    with pytest.raises(TypeError):
        len(Variable(1.0))
    y = v * 2
    assert not y.is_leaf and y.grad_fn.name == "multiply" and y.requires_grad
    assert "multiply" in repr(y)
    d = y.detach()
    assert d.is_leaf and not d.requires_grad
    np.testing.assert_array_equal(d.data, y.data)
    assert v.T.shape == (3, 2)
    np.testing.assert_array_equal(v.T.data, v.data.T)
    rows = list(Variable([[1.0, 2.0], [3.0, 4.0]]))
    assert len(rows) == 2 and rows[1].shape == (2,)


def test_grad_accumulates_and_can_be_reset():
    x = Variable([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.grad = None
    assert x.grad is None
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    x.zero_grad()
    assert x.grad is None
    x.grad = np.zeros(2)
    (x * 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    with pytest.raises(ValueError):
        x.grad = np.zeros(3)


def test_retain_grad_and_shared_subexpressions():
    x = Variable([1.0, 2.0], requires_grad=True)
    h = x * x
    h.retain_grad()
    y = (h + h * x).sum()        # h used twice, x used three times
    y.backward()
    np.testing.assert_allclose(h.grad, 1 + x.data)
    np.testing.assert_allclose(x.grad, 2 * x.data + 3 * x.data ** 2)
    z = x * 2
    z.sum().backward()
    assert z.grad is None        # not retained


def test_comparisons_return_numpy_bool_arrays():
    v = Variable([1.0, 2.0, 3.0], requires_grad=True)
    w = Variable([3.0, 2.0, 1.0])
    for result, expected in [(v < 2, [1, 0, 0]), (v <= 2, [1, 1, 0]), (v > w, [0, 0, 1]),
                             (v >= w, [0, 1, 1]), (v == 2, [0, 1, 0]), (v != w, [1, 0, 1]),
                             (np.array([2.0, 2.0, 2.0]) < v, [0, 0, 1]),
                             (2.0 >= v, [1, 1, 0])]:
        assert isinstance(result, np.ndarray) and result.dtype == bool
        np.testing.assert_array_equal(result, np.array(expected, bool))
    assert isinstance(Variable(1.0) < 2, np.ndarray)


def test_reflected_operators():
    a = np.array([1.0, 2.0])
    v = Variable([3.0, 4.0], requires_grad=True)
    cases = [(a + v, a + v.data), (a - v, a - v.data), (a * v, a * v.data), (a / v, a / v.data),
             (a ** v, a ** v.data), (2 - v, 2 - v.data), (2 / v, 2 / v.data),
             (2 ** v, 2 ** v.data), (a @ v, a @ v.data), (np.float64(2) * v, 2 * v.data)]
    for result, expected in cases:
        assert isinstance(result, Variable) and result.requires_grad
        np.testing.assert_allclose(result.data, expected)
    check_grads(lambda x: np.array([1.0, 2.0]) - x / np.array([2.0, 4.0]), [3.0, 4.0])


def test_from_numpy_shares_memory():
    arr = np.array([1.0, 2.0], dtype=np.float32)
    v = tg.from_numpy(arr)
    assert v.dtype == np.float32
    arr[0] = 5.0
    assert v.data[0] == 5.0
    v.data[1] = 7.0
    assert arr[1] == 7.0
    with pytest.raises(TypeError):
        tg.from_numpy(np.array([1, 2]))
    with pytest.raises(TypeError):
        tg.from_numpy([1.0, 2.0])
    with pytest.raises(ValueError):
        tg.from_numpy(np.ones((3, 3))[:, 0])


def test_op_outputs_own_their_buffers():
    x = Variable(np.arange(6.0).reshape(2, 3))
    for y in (x.reshape(3, 2), x.T, x[0], tg.broadcast_to(x, (2, 2, 3)), x.astype(np.float64)):
        y.data[...] = -1.0
    np.testing.assert_array_equal(x.data, np.arange(6.0).reshape(2, 3))


# --------------------------------------------------------------------------
# Graph depth, grad mode, higher order
# --------------------------------------------------------------------------


def test_chain_of_100000_ops():
    x = Variable(1.0, requires_grad=True)
    y = x
    for i in range(100_000):
        y = y * 0.9999 if i % 2 else y + 0.5
    y.backward()
    np.testing.assert_allclose(x.grad, 0.9999 ** 50_000)
    del y                                                   # deep graph frees fine


def test_no_grad_and_enable_grad():
    x = Variable([1.0], requires_grad=True)
    assert tg.is_grad_enabled()
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = x * 2
        with tg.enable_grad():
            assert tg.is_grad_enabled()
            z = x * 2
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad
    assert z.grad_fn is not None and z.requires_grad

    @tg.no_grad()
    def f(v):
        assert not tg.is_grad_enabled()
        return v * 2

    @tg.no_grad
    def g(v):
        return v * 2

    @tg.enable_grad()
    def h(v):
        return v * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    with tg.no_grad():
        assert h(x).requires_grad
    assert tg.is_grad_enabled()
    try:
        with tg.no_grad():
            raise KeyError
    except KeyError:
        pass
    assert tg.is_grad_enabled()


def test_grad_mode_is_thread_local():
    entered, checked = threading.Event(), threading.Event()
    results = {}

    def worker_without_grad():
        with tg.no_grad():
            entered.set()
            checked.wait(5)
            results["worker"] = tg.is_grad_enabled()
            results["worker_op"] = (Variable(1.0, requires_grad=True) * 2).requires_grad

    def worker_with_grad():
        entered.wait(5)
        results["other"] = tg.is_grad_enabled()
        results["other_op"] = (Variable(1.0, requires_grad=True) * 2).requires_grad
        checked.set()

    threads = [threading.Thread(target=worker_without_grad), threading.Thread(target=worker_with_grad)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"worker": False, "worker_op": False, "other": True, "other_op": True}
    assert tg.is_grad_enabled()


def test_create_graph_gives_second_derivatives():
    x = Variable([1.0, 2.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert isinstance(g, Variable) and g.requires_grad
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad, 6 * x.data)


HVP_CASES = {
    "exp_log_sin": (lambda x: (x.exp() + (x * x + 1).log() * x.sin()).sum(), (3,)),
    "tanh_sigmoid": (lambda x: (x.tanh() * x.sigmoid() / (x.cos() + 2)).sum(), (2, 2)),
    "sqrt_log1p": (lambda x: ((x * x + 1).sqrt() * (x * x).log1p()).sum(), (3,)),
    "softmax": (lambda x: (tg.softmax(x, axis=1) * np.arange(6.0).reshape(2, 3)).sum(), (2, 3)),
    "log_softmax": (lambda x: (tg.log_softmax(x) ** 2).sum(), (2, 3)),
    "logsumexp": (lambda x: tg.logsumexp(x * x, axis=0).sum(), (3, 2)),
    "matmul": (lambda x: ((x @ x.T) ** 2).sum(), (2, 3)),
    "power": (lambda x: (tg.power(x * x + 1, x) + x ** 3).sum(), (3,)),
    "divide_getitem": (lambda x: (x[np.array([0, 0, 2])] / (x[1] ** 2 + 1)).sum(), (3,)),
    "broadcast": (lambda x: ((x + x.reshape(3, 1)) ** 3).mean(), (3,)),
    "max_concat": (lambda x: (tg.concatenate([x, x * x]) ** 2).max() * x.sum(), (3,)),
}


@pytest.mark.parametrize("name", list(HVP_CASES))
def test_hessian_vector_products(name):
    f, shape = HVP_CASES[name]
    x0 = rand(shape, 21, 0.2, 1.5)
    v = np.random.default_rng(3).standard_normal(shape)

    def gradient(arr, create_graph=False):
        x = Variable(arr, requires_grad=True)
        f(x).backward(create_graph=create_graph)
        return x, x.grad

    x, g = gradient(x0, create_graph=True)
    x.grad = None
    (g * v).sum().backward()
    eps = 1e-6
    numeric = (gradient(x0 + eps * v)[1] - gradient(x0 - eps * v)[1]) / (2 * eps)
    np.testing.assert_allclose(x.grad, numeric, rtol=1e-5, atol=1e-6)
