"""Forward mode and the functional API of the reference engine (tapegrad.reference).

Checked against each other and against central finite differences (float64):
Jacobians in forward and reverse mode, the jvp/vjp inner-product identity,
Hessians (symmetric, equal to differences of gradients), Hessian-vector
products, nested transforms, custom ops, and the error cases of docs/API.md
("Modes and the functional API").
"""

import numpy as np
import pytest

import op_cases
import tapegrad.reference as tg
from tapegrad.reference import ops as ref_ops
from tapegrad.reference.engine import Function

Variable = tg.Variable


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def rng(seed):
    return np.random.default_rng(seed)


def rand(shape, seed=0, low=-2.0, high=2.0):
    return rng(seed).uniform(low, high, size=shape)


def away_from_zero(shape, seed=0):
    x = rand(shape, seed, 0.3, 2.0)
    return x * np.where(rng(seed + 1).random(shape) < 0.5, -1.0, 1.0)


def positive(shape, seed=0):
    return rand(shape, seed, 0.5, 2.0)


def distinct(shape, seed=0):
    """Values pairwise at least 0.1 apart (no ties for max/min/maximum)."""
    n = int(np.prod(shape))
    return (rng(seed).permutation(n) * 0.37 - 1.0).reshape(shape)


def evaluate(f, arrays):
    with tg.no_grad():
        return np.asarray(f(*[Variable(a) for a in arrays]).data)


def fd_jacobians(f, arrays, eps=1e-6):
    """Central differences: one array of shape out.shape + x.shape per input."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out_shape = evaluate(f, arrays).shape
    jacobians = []
    for i, x in enumerate(arrays):
        jac = np.zeros(out_shape + x.shape)
        for idx in np.ndindex(x.shape):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            jac[(Ellipsis,) + idx] = (evaluate(f, plus) - evaluate(f, minus)) / (2 * eps)
        jacobians.append(jac)
    return jacobians


def backward_grad(f, x):
    """Gradient of a scalar f by Variable.backward (independent of the functional API)."""
    v = Variable(x, requires_grad=True)
    f(v).backward()
    return v.grad


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------
# The cases: (function of Variables, input arrays)
# --------------------------------------------------------------------------

PAIRS = [((2, 3), (2, 3)), ((2, 3), (1, 3)), ((4, 1, 3), (2, 3)), ((2, 3), ()),
         ((), (2, 3)), ((3,), (2, 1)), ((2, 1), (1, 3))]

CASES = {}


def case(name, f, *arrays):
    CASES[name] = (f, [np.array(a, dtype=np.float64) for a in arrays])


def _spec_input(name):
    """Uniform on the op's spec domain (away from 0 where it has a kink)."""
    lo, hi, away = op_cases.bounds(name, positive=(0.5, 2.0))
    if away:
        return away_from_zero
    return lambda shape, seed: rand(shape, seed, lo, hi)


# unary: every elementwise op of the spec, then astype
for _name, _f, _gen in [
    *[(_n, getattr(tg, _n), _spec_input(_n)) for _n in op_cases.ELEMENTWISE],
    ("astype_f64", lambda x: x.astype(np.float64) * 2, rand),
]:
    case(f"{_name}_0d", _f, _gen((), 1))
    case(f"{_name}_2x3", _f, _gen((2, 3), 2))

# binary, with broadcasting
for _sa, _sb in PAIRS:
    _tag = f"{_sa}_{_sb}".replace(" ", "")
    for _name in op_cases.BINARY:  # every two-operand elementwise op of the spec
        _a, _b = {"normal": (rand, rand), "divide": (rand, away_from_zero), "power": (positive, rand),
                  "distinct": (distinct, lambda shape, seed: distinct(shape, seed) + 0.05)}[op_cases.pair_domain(_name)]
        case(f"{_name}{_tag}", getattr(tg, _name), _a(_sa, 3), _b(_sb, 4))
case("where_broadcast",
     lambda x, y: tg.where(np.array([[True], [False]]), x, y), rand((3,), 5), rand((2, 1), 6))
case("where_one_side", lambda x: tg.where(np.array([True, False, True]), x, 2.0), rand((3,), 5))
case("clip_scalar_bounds", lambda x: tg.clip(x, -0.5, 0.7),
     np.array([-1.5, -0.2, 0.3, 1.9, 0.69]))
case("clip_array_bounds_broadcast",
     lambda x: tg.clip(x, np.array([[-0.5], [0.1]]), None), np.array([-1.5, 0.3, 1.1]))
case("scalar_operands", lambda x: (2.0 - x) * 3 / (x + 5) ** 2, rand((3,), 7))

# reductions
for _op in ("sum", "mean", "max", "min", "logsumexp"):
    for _axis in (None, 0, -1, (0, 2)):
        for _keep in (False, True):
            case(f"{_op}_{_axis}_{_keep}",
                 lambda x, op=_op, axis=_axis, keep=_keep: getattr(tg, op)(x, axis=axis,
                                                                           keepdims=keep),
                 distinct((2, 3, 2), 8))
case("max_0d", lambda x: tg.max(x), rand((), 9))
for _op in ("softmax", "log_softmax"):
    for _axis in (-1, 0, (0, 1)):
        case(f"{_op}_{_axis}", lambda x, op=_op, axis=_axis: getattr(tg, op)(x, axis=axis),
             rand((2, 3), 10))

# shape ops
case("reshape", lambda x: x.reshape(3, -1) * 1.5, rand((2, 3), 11))
case("reshape_0d", lambda x: x.reshape(1, 1), rand((), 11))
case("transpose", lambda x: x.transpose(2, 0, 1), rand((2, 3, 4), 12))
case("T", lambda x: x.T, rand((2, 3), 12))
case("broadcast_to", lambda x: tg.broadcast_to(x, (4, 2, 3)), rand((2, 1), 13))
case("concatenate", lambda a, b: tg.concatenate([a, b], axis=1), rand((2, 3), 14), rand((2, 1), 15))
case("concatenate_with_constant",
     lambda a: tg.concatenate([np.ones((1, 3)), a, a * 2], axis=0), rand((2, 3), 14))
case("concatenate_axis_none", lambda a, b: tg.concatenate([a, b], axis=None),
     rand((2, 2), 14), rand((1, 3), 15))
case("stack", lambda a, b: tg.stack([a, b], axis=1), rand((2, 3), 16), rand((2, 3), 17))
case("stack_with_constant", lambda a: tg.stack([a, np.zeros(3)], axis=-1), rand((3,), 16))
for _i, _key in enumerate([
    1, -1, slice(1, None), slice(None, None, -1), (Ellipsis, 0), (None, 1), (0, None, slice(None)),
    np.array([2, 0, 2]), np.array([True, False, True, True]),
    (np.array([0, 1]), slice(None), np.array([1, 0])),    # separated advanced indices
    (slice(None), np.array([[0], [1]]), np.array([1, 0])),  # adjacent, broadcast
    np.array([[True, False, True], [False, True, True]]),
]):
    _shape = (4,) if isinstance(_key, np.ndarray) and _key.dtype == bool and _key.ndim == 1 else (
        (2, 3) if isinstance(_key, np.ndarray) and _key.ndim == 2 else (2, 3, 2))
    if isinstance(_key, np.ndarray) and _key.dtype != bool:
        _shape = (3, 2)
    case(f"getitem_{_i}", lambda x, key=_key: x[key] * 2.0, rand(_shape, 18 + _i))
case("getitem_repeated_then_scatter",
     lambda x: (x[np.array([0, 0, 2])] ** 2).sum() * x, rand((3,), 30))

# matmul
for _sa, _sb in [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)),
                 ((4, 2, 3), (3, 2)), ((2, 3), (4, 3, 2)), ((3,), (4, 3, 2)),
                 ((4, 2, 3), (3,)), ((2, 1, 2, 3), (3, 3, 2))]:
    case(f"matmul{_sa}{_sb}".replace(" ", ""), tg.matmul, rand(_sa, 31), rand(_sb, 32))

# compositions
W1, B1 = rand((4, 3), 40), rand((4,), 41)
case("mlp", lambda x: tg.softmax(tg.tanh(W1 @ x + B1) * 2.0), rand((3,), 42))
case("mlp_params", lambda x, w: tg.log_softmax(tg.tanh(w @ x) @ w), rand((3,), 43), rand((3, 3), 44))
case("normalise", lambda x: x / tg.sqrt((x * x).sum(axis=-1, keepdims=True)), rand((2, 3), 45))
case("mixed", lambda x, y: tg.logsumexp(tg.sigmoid(x)[:, None] * tg.exp(y), axis=0)
     + tg.concatenate([x, y.mean(axis=0)])[:2].sum(), rand((2,), 46), rand((2, 2), 47))
case("power_chain", lambda x: tg.power(x * x + 1, tg.cos(x)) / tg.log1p(x * x), rand((3,), 48))
case("astype_roundtrip", lambda x: (x.astype(np.float64) ** 2).astype(np.float64), rand((2,), 49))


@pytest.mark.parametrize("name", list(CASES))
def test_jacobian_forward_equals_reverse_equals_finite_differences(name):
    f, arrays = CASES[name]
    expected = fd_jacobians(f, arrays)
    fwd = tg.jacobian(f, tuple(arrays), mode="forward")
    rev = tg.jacobian(f, tuple(arrays), mode="reverse")
    auto = tg.jacobian(f, tuple(arrays))
    chunked = tg.jacobian(f, tuple(arrays), mode="forward", chunk_size=2)   # k = 2 (and 1)
    assert isinstance(fwd, tuple) and len(fwd) == len(arrays)
    out_shape = evaluate(f, arrays).shape
    for x, jf, jr, ja, je in zip(arrays, fwd, rev, auto, expected):
        for j in (jf, jr, ja):
            assert isinstance(j, np.ndarray)
            assert j.shape == out_shape + x.shape and j.dtype == np.float64
        close(jf, je)
        np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ja, jr, rtol=1e-12, atol=1e-12)
    for jc, jf in zip(chunked, fwd):
        np.testing.assert_allclose(jc, jf, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", list(CASES))
def test_jvp_vjp_inner_product_identity(name):
    # <u, vjp(w)> = <jvp(u), w> for random directions u (all inputs) and w.
    f, arrays = CASES[name]
    seed = sum(map(ord, name))
    us = tuple(rng(seed + i).standard_normal(a.shape) for i, a in enumerate(arrays))
    out, out_t = tg.jvp(f, tuple(arrays), us)
    out2, vjp_fn = tg.vjp(f, *arrays)
    w = rng(seed + 99).standard_normal(out.shape)
    grads = vjp_fn(w)
    assert isinstance(out_t, np.ndarray) and out_t.shape == out.shape
    assert len(grads) == len(arrays)
    for g, a in zip(grads, arrays):
        assert isinstance(g, np.ndarray) and g.shape == a.shape
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(out, evaluate(f, arrays))
    lhs = sum(float(np.sum(u * g)) for u, g in zip(us, grads))
    rhs = float(np.sum(out_t * w))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)
    # and directional_derivative is the same J.u
    dd = tg.directional_derivative(f, tuple(arrays), us)
    np.testing.assert_allclose(dd, out_t, rtol=1e-13, atol=1e-13)


def test_every_primitive_has_a_jvp_rule():
    classes = [c for c in vars(ref_ops).values()
               if isinstance(c, type) and issubclass(c, Function) and c is not Function
               and not c.__name__.startswith("_")]
    assert len(classes) >= 30
    missing = [c.__name__ for c in classes if c.jvp is Function.jvp]
    assert missing == []


# --------------------------------------------------------------------------
# Kinks: forward and reverse mode follow the same conventions
# --------------------------------------------------------------------------

KINKS = {
    "relu_at_0": (tg.relu, [np.array([-1.0, 0.0, 2.0])], [np.diag([0.0, 0.0, 1.0])]),
    "abs_at_0": (tg.abs, [np.array([-1.0, 0.0, 2.0])], [np.diag([-1.0, 0.0, 1.0])]),
    "maximum_tie": (tg.maximum, [np.array([1.0, 2.0]), np.array([1.0, 3.0])],
                    [np.diag([0.5, 0.0]), np.diag([0.5, 1.0])]),
    "minimum_tie": (tg.minimum, [np.array([1.0, 2.0]), np.array([1.0, 3.0])],
                    [np.diag([0.5, 1.0]), np.diag([0.5, 0.0])]),
    "max_ties": (tg.max, [np.array([3.0, 1.0, 3.0])], [np.array([0.5, 0.0, 0.5])]),
    "min_ties": (lambda x: tg.min(x, axis=1), [np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 3.0]])],
                 [np.array([[[1 / 3, 1 / 3, 1 / 3], [0, 0, 0]], [[0, 0, 0], [1.0, 0, 0]]])]),
    "clip_inclusive": (lambda x: tg.clip(x, -1.0, 1.0), [np.array([-1.0, 1.0, 2.0])],
                       [np.diag([1.0, 1.0, 0.0])]),
    "power_b_zero": (lambda a, b: tg.power(a, b), [np.array([0.0]), np.array([0.0])],
                     [np.array([[0.0]]), np.array([[0.0]])]),
    "power_a_zero": (lambda a, b: tg.power(a, b), [np.array([0.0]), np.array([2.0])],
                     [np.array([[0.0]]), np.array([[0.0]])]),
}


@pytest.mark.parametrize("name", list(KINKS))
def test_kink_conventions_in_both_modes(name):
    f, arrays, expected = KINKS[name]
    for mode in ("forward", "reverse"):
        jacs = tg.jacobian(f, tuple(arrays), mode=mode)
        for j, e in zip(jacs, expected):
            np.testing.assert_allclose(j, e, rtol=0, atol=1e-15, err_msg=mode)


# --------------------------------------------------------------------------
# Hessians, hvp, nested transforms
# --------------------------------------------------------------------------

SCALAR_CASES = {
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
    "stack_transpose": (lambda x: (tg.stack([x, x.sin()], axis=1).T @ x).sum() ** 2, (3,)),
    "where_clip_abs": (lambda x: (tg.where(x.data > 0, x ** 3, x.exp())
                                  * tg.clip(x, -5, 5) * x.abs()).sum(), (4,)),
    "scalar_input": (lambda x: x.sin() * x ** 3, ()),
}


def _scalar_case(name):
    f, shape = SCALAR_CASES[name]
    x = rand(shape, 21, 0.2, 1.5)
    if name == "where_clip_abs":
        x = away_from_zero(shape, 21)
    return f, x


@pytest.mark.parametrize("name", list(SCALAR_CASES))
def test_hessian_symmetric_and_equal_to_differences_of_gradients(name):
    f, x = _scalar_case(name)
    h = tg.hessian(f, x)
    assert isinstance(h, np.ndarray) and h.shape == x.shape + x.shape
    n = x.size
    hm = h.reshape(n, n)
    np.testing.assert_allclose(hm, hm.T, rtol=1e-10, atol=1e-10)
    eps = 1e-6
    numeric = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = eps
        e = e.reshape(x.shape)
        numeric[:, j] = ((backward_grad(f, x + e) - backward_grad(f, x - e)) / (2 * eps)).ravel()
    close(hm, numeric)
    # reverse-over-reverse and forward-over-reverse via jacobian(grad(f))
    for mode in ("forward", "reverse", "auto"):
        np.testing.assert_allclose(tg.jacobian(tg.grad(f), x, mode=mode), h,
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(SCALAR_CASES))
def test_hvp_equals_hessian_times_v(name):
    f, x = _scalar_case(name)
    v = rng(5).standard_normal(x.shape)
    h = tg.hessian(f, x).reshape(x.size, x.size)
    hv = tg.hvp(f, x, v)
    assert isinstance(hv, np.ndarray) and hv.shape == x.shape
    np.testing.assert_allclose(hv.ravel(), h @ v.ravel(), rtol=1e-10, atol=1e-10)
    # reverse-over-forward: grad of the directional derivative is also H v
    hv2 = tg.grad(lambda y: tg.jvp(f, y, v)[1])(x)
    np.testing.assert_allclose(hv2, hv, rtol=1e-10, atol=1e-10)
    # forward-over-forward: u^T H v
    u = rng(6).standard_normal(x.shape)
    uhv = tg.jvp(lambda y: tg.jvp(f, y, u)[1], x, v)[1]
    assert float(uhv) == pytest.approx(float(u.ravel() @ h @ v.ravel()), rel=1e-9, abs=1e-10)


def test_grad_of_grad_scalar():
    f = lambda x: x.sin() * x ** 3      # noqa: E731
    x = 0.7
    d1 = tg.grad(f)(x)
    d2 = tg.grad(tg.grad(f))(x)
    d3 = tg.grad(tg.grad(tg.grad(f)))(x)
    assert isinstance(d2, np.ndarray) and d2.shape == () and d2.dtype == np.float64
    s, c = np.sin(x), np.cos(x)
    assert float(d1) == pytest.approx(c * x ** 3 + 3 * s * x ** 2, rel=1e-12)
    assert float(d2) == pytest.approx(-s * x ** 3 + 6 * c * x ** 2 + 6 * s * x, rel=1e-12)
    assert float(d3) == pytest.approx(-c * x ** 3 - 9 * s * x ** 2 + 18 * c * x + 6 * s, rel=1e-12)


def test_mixed_partials_with_argnums():
    f = lambda x, y: x.exp() * y ** 2 + x * y      # noqa: E731
    x, y = 0.3, -1.2
    dxdy = tg.grad(tg.grad(f, argnums=0), argnums=1)(x, y)
    dydx = tg.grad(tg.grad(f, argnums=1), argnums=0)(x, y)
    assert float(dxdy) == pytest.approx(2 * np.exp(x) * y + 1, rel=1e-12)
    assert float(dydx) == pytest.approx(float(dxdy), rel=1e-12)
    h = tg.hessian(f, (np.array(x), np.array(y)))
    assert len(h) == 2 and all(len(row) == 2 for row in h)
    np.testing.assert_allclose([[h[0][0], h[0][1]], [h[1][0], h[1][1]]],
                               [[np.exp(x) * y ** 2, 2 * np.exp(x) * y + 1],
                                [2 * np.exp(x) * y + 1, 2 * np.exp(x)]], rtol=1e-12)
    hv = tg.hvp(f, (np.array(x), np.array(y)), (np.array(1.0), np.array(2.0)))
    np.testing.assert_allclose(hv, [h[0][0] + 2 * h[0][1], h[1][0] + 2 * h[1][1]], rtol=1e-12)


def test_nested_results_are_variables_connected_to_the_outer_graph():
    seen = {}

    def g(x):
        inner = tg.grad(lambda y: (y ** 3).sum())(x)
        out, tangent = tg.jvp(lambda y: y.sin(), x, np.ones(x.shape))
        seen.update(inner=inner, out=out, tangent=tangent)
        return (inner * tangent).sum()

    x = np.array([0.5, 1.0])
    result = tg.grad(g)(x)
    for v in seen.values():
        assert isinstance(v, Variable) and v.requires_grad
    # d/dx sum(3x^2 cos x) = 6x cos x - 3x^2 sin x
    close(result, 6 * x * np.cos(x) - 3 * x ** 2 * np.sin(x), rtol=1e-12, atol=0)
    # Called at top level on arrays, the same transforms return NumPy arrays.
    assert isinstance(tg.grad(lambda y: (y ** 3).sum())(x), np.ndarray)


def test_nested_with_variable_inputs_and_backward():
    x = Variable([0.5, -1.5], requires_grad=True)
    g = tg.grad(lambda y: (y ** 3).sum())(x)
    assert isinstance(g, Variable) and g.requires_grad
    g.sum().backward()
    close(x.grad, 6 * x.data, rtol=1e-12, atol=0)
    # jacobian of a Variable requiring grad is a Variable too
    x.grad = None
    j = tg.jacobian(lambda y: y ** 2, x)
    assert isinstance(j, Variable) and j.shape == (2, 2)
    j.sum().backward()
    close(x.grad, [2.0, 2.0], rtol=1e-12, atol=0)
    # a tangent requiring grad makes jvp nested: d/dt <J, t>
    t = Variable([1.0, 2.0], requires_grad=True)
    out, out_t = tg.jvp(lambda y: y.exp(), x.detach().data, t)
    assert isinstance(out_t, Variable)
    out_t.sum().backward()
    close(t.grad, np.exp(x.data), rtol=1e-12, atol=0)
    # a cotangent requiring grad makes vjp_fn nested
    w = Variable([1.0, 1.0], requires_grad=True)
    _, vjp_fn = tg.vjp(lambda y: y * y, np.array([3.0, 4.0]))
    (gx,) = vjp_fn(w)
    assert isinstance(gx, Variable)
    gx.sum().backward()
    close(w.grad, [6.0, 8.0], rtol=1e-12, atol=0)


def test_no_perturbation_confusion():
    # d/dx [x * d/dy (x + y)|_{y=x}] = d/dx [x * 1] = 1, even though the inner
    # function also receives x itself as an argument.
    inner = tg.grad(lambda y, x: x + y, argnums=0)
    assert float(tg.grad(lambda x: x * inner(x, x))(2.0)) == pytest.approx(1.0)
    # d/dx [x * d/dy (x y)] = d/dx x^2 = 2x
    inner2 = tg.grad(lambda y, x: x * y, argnums=0)
    assert float(tg.grad(lambda x: x * inner2(3.0, x))(2.0)) == pytest.approx(4.0)
    # the same in forward mode
    fwd = lambda x: x * tg.jvp(lambda y, x: x * y, (3.0, x), (1.0, 0.0))[1]   # noqa: E731
    assert float(tg.jvp(fwd, 2.0, 1.0)[1]) == pytest.approx(4.0)


def test_transforms_leave_grad_alone():
    x = Variable([1.0, 2.0], requires_grad=True)
    w = Variable([0.5, 0.5], requires_grad=True)
    tg.grad(lambda y: (y * w).sum())(x)
    tg.jacobian(lambda y: y * w, x, mode="forward")
    tg.hessian(lambda y: (y ** 3).sum(), x.data)
    assert x.grad is None and w.grad is None


def test_value_and_grad():
    f = lambda x, y, scale=1.0: (x * y).sum() * scale      # noqa: E731
    x, y = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    value, g = tg.value_and_grad(f)(x, y)
    assert isinstance(value, np.ndarray) and float(value) == pytest.approx(1.0)
    close(g, y, rtol=0, atol=0)
    value, (gy, gx) = tg.value_and_grad(f, argnums=(1, 0))(x, y, scale=2.0)
    assert float(value) == pytest.approx(2.0)
    close(gy, 2 * x, rtol=0, atol=0)
    close(gx, 2 * y, rtol=0, atol=0)
    assert tg.grad(f, argnums=-1)(x, y).shape == (2,)
    gs = tg.grad(f, argnums=(0, 0))(x, y)
    close(gs[0], gs[1], rtol=0, atol=0)
    # single-element, not 0-d, outputs are accepted; value keeps its shape
    value, g = tg.value_and_grad(lambda x: x.sum(keepdims=True))(x)
    assert value.shape == (1,)
    close(g, [1.0, 1.0], rtol=0, atol=0)
    # the non-differentiated argument is passed through unchanged
    seen = []
    tg.grad(lambda x, obj: (seen.append(obj), x.sum())[1])(x, "anything")
    assert seen == ["anything"]
    # gradient of an argument the output does not depend on is zero
    close(tg.grad(lambda x, y: tg.sum(x), argnums=1)(x, y), [0.0, 0.0], rtol=0, atol=0)
    assert tg.grad(f).__name__ == "<lambda>"


def test_vjp_fn_may_be_called_several_times():
    out, vjp_fn = tg.vjp(lambda x, y: x * y.exp(), np.array([1.0, 2.0]), np.array([0.5, -0.5]))
    first = vjp_fn(np.array([1.0, 0.0]))
    second = vjp_fn(np.array([1.0, 0.0]))
    third = vjp_fn([0.0, 2.0])
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    close(third[0], [0.0, 2 * np.exp(-0.5)], rtol=1e-14, atol=0)
    close(out, [np.exp(0.5), 2 * np.exp(-0.5)], rtol=1e-14, atol=0)


def test_chunk_sizes_and_modes_agree():
    f, arrays = CASES["mixed"]
    reference = tg.jacobian(f, tuple(arrays), mode="reverse")
    for mode in ("forward", "reverse", "auto"):
        for chunk in (None, 1, 2, 3, 100):
            jacs = tg.jacobian(f, tuple(arrays), mode=mode, chunk_size=chunk)
            for j, r in zip(jacs, reference):
                np.testing.assert_allclose(j, r, rtol=1e-13, atol=1e-14)


def test_jacobian_single_input_list_and_identity():
    j = tg.jacobian(lambda x: x, [1.0, 2.0, 3.0])
    assert isinstance(j, np.ndarray)
    np.testing.assert_array_equal(j, np.eye(3))
    j = tg.jacobian(lambda x: x.sum(), np.ones((2, 3)), mode="forward")
    np.testing.assert_array_equal(j, np.ones((2, 3)))
    # an output that does not depend on the input
    for mode in ("forward", "reverse"):
        j = tg.jacobian(lambda x: Variable(np.ones(2)) * 2, np.ones(3), mode=mode)
        np.testing.assert_array_equal(j, np.zeros((2, 3)))
    # zero-size input and output
    for mode in ("forward", "reverse", "auto"):
        assert tg.jacobian(lambda x: x * 2, np.ones((0, 2)), mode=mode).shape == (0, 2, 0, 2)
        assert tg.jacobian(lambda x: x.sum(), np.ones(0), mode=mode).shape == (0,)


def test_float32():
    x = np.array([0.5, 1.5], dtype=np.float32)
    f = lambda x: (x.sin() * x).sum()      # noqa: E731
    g = tg.grad(f)(x)
    assert g.dtype == np.float32
    out, t = tg.jvp(lambda x: x.exp(), x, np.ones(2, np.float32))
    assert out.dtype == np.float32 and t.dtype == np.float32
    for mode in ("forward", "reverse"):
        j = tg.jacobian(lambda x: x.exp(), x, mode=mode)
        assert j.dtype == np.float32
        np.testing.assert_allclose(j, np.diag(np.exp(x)), rtol=1e-6)
    # a float32 input with a float64 output: the Jacobian is float64 in both modes
    for mode in ("forward", "reverse"):
        j = tg.jacobian(lambda x: x.astype(np.float64) * 2, x, mode=mode)
        assert j.dtype == np.float64
    assert tg.hessian(f, x).dtype == np.float32
    # a Python scalar tangent takes the primal's dtype
    assert tg.jvp(lambda x: x * 2, np.float32(1.0), 1.0)[1].dtype == np.float32


def test_deep_chain_forward_sweep_is_iterative():
    def f(x):
        for _ in range(20000):
            x = x * 1.0001
        return x

    out, t = tg.jvp(f, np.array([1.0]), np.array([1.0]))
    assert float(t[0]) == pytest.approx(1.0001 ** 20000, rel=1e-9)
    assert float(tg.jacobian(f, 1.0, mode="forward")) == pytest.approx(1.0001 ** 20000, rel=1e-9)


def test_transforms_work_inside_no_grad():
    with tg.no_grad():
        g = tg.grad(lambda x: (x ** 2).sum())(np.array([1.0, 2.0]))
        h = tg.hessian(lambda x: (x ** 3).sum(), np.array([1.0, 2.0]))
        assert tg.is_grad_enabled() is False
    close(g, [2.0, 4.0], rtol=0, atol=0)
    close(h, np.diag([6.0, 12.0]), rtol=1e-14, atol=0)


# --------------------------------------------------------------------------
# Custom ops
# --------------------------------------------------------------------------


def make_cube(with_vjp=True, with_jvp=True):
    @tg.custom_op
    def cube(x):
        return x ** 3

    if with_vjp:
        @cube.defvjp
        def _(g, ans, x):
            return g * 3 * x ** 2

    if with_jvp:
        @cube.defjvp
        def _(t, ans, x):
            return t * 3 * x ** 2

    return cube


def make_mul_exp():
    """f(a, b) = a * exp(b), rules per input (HIPS autograd style)."""
    @tg.custom_op
    def mul_exp(a, b):
        return a * np.exp(b)

    mul_exp.defvjp(lambda g, ans, a, b: (g * np.exp(b), g * ans))
    mul_exp.defjvp(lambda ta, ans, a, b: ta * np.exp(b),
                   lambda tb, ans, a, b: tb * ans)
    return mul_exp


def test_custom_op_first_order_modes():
    cube = make_cube()
    x = np.array([0.5, -1.0, 2.0])
    f = lambda x: cube(x.sin()) * 2      # noqa: E731
    g = lambda x: (x.sin() ** 3) * 2     # the same with built-in ops  # noqa: E731
    for fn in (tg.jvp, tg.directional_derivative):
        u = np.array([1.0, -2.0, 0.5])
        r1, r2 = fn(f, x, u), fn(g, x, u)
        if fn is tg.jvp:
            r1, r2 = r1[1], r2[1]
        close(r1, r2, rtol=1e-12, atol=1e-14)
    w = np.array([0.3, 0.2, -1.0])
    close(tg.vjp(f, x)[1](w)[0], tg.vjp(g, x)[1](w)[0], rtol=1e-12, atol=1e-14)
    close(tg.grad(lambda x: f(x).sum())(x), tg.grad(lambda x: g(x).sum())(x), rtol=1e-12, atol=1e-14)
    v1, g1 = tg.value_and_grad(lambda x: f(x).sum())(x)
    assert float(v1) == pytest.approx(float(evaluate(g, [x]).sum()), rel=1e-12)
    expected = tg.jacobian(g, x)
    for mode in ("forward", "reverse", "auto"):
        for chunk in (None, 2):
            close(tg.jacobian(f, x, mode=mode, chunk_size=chunk), expected, rtol=1e-12, atol=1e-14)
    close(fd_jacobians(f, [x])[0], expected)
    # Variable.backward through the custom op
    v = Variable(x, requires_grad=True)
    f(v).sum().backward()
    close(v.grad, tg.grad(lambda x: g(x).sum())(x), rtol=1e-12, atol=1e-14)
    # on constants nothing is recorded
    assert cube(Variable(x)).grad_fn is None
    assert cube(v).grad_fn.name == "cube"


def test_custom_op_with_several_inputs():
    mul_exp = make_mul_exp()
    a, b = np.array([1.0, -2.0]), np.array([0.3, 0.1])
    f = lambda a, b: mul_exp(a * 2, b) + a      # noqa: E731
    ref = lambda a, b: (a * 2) * b.exp() + a    # noqa: E731
    for mode in ("forward", "reverse"):
        for j, e in zip(tg.jacobian(f, (a, b), mode=mode), tg.jacobian(ref, (a, b))):
            close(j, e, rtol=1e-12, atol=1e-14)
    # tangents on one input only: the other rule is skipped
    close(tg.jvp(f, (a, b), (np.zeros(2), np.ones(2)))[1],
          tg.jvp(ref, (a, b), (np.zeros(2), np.ones(2)))[1], rtol=1e-12, atol=1e-14)
    close(tg.jvp(lambda b: mul_exp(a, b), b, np.ones(2))[1], a * np.exp(b), rtol=1e-12, atol=0)
    # a Python scalar operand
    close(tg.grad(lambda b: mul_exp(3.0, b).sum())(b), 3 * np.exp(b), rtol=1e-12, atol=0)
    # a None rule means a zero derivative w.r.t. that input
    @tg.custom_op
    def first(a, b):
        return a + 0 * b
    first.defjvp(lambda ta, ans, a, b: ta, None)
    close(tg.jacobian(first, (a, b), mode="forward")[1], np.zeros((2, 2)), rtol=0, atol=0)


def test_custom_op_missing_rules():
    only_jvp = make_cube(with_vjp=False)
    only_vjp = make_cube(with_jvp=False)
    x = np.array([1.0, 2.0])
    with pytest.raises(NotImplementedError, match=r"cube.*VJP.*reverse"):
        tg.grad(lambda x: only_jvp(x).sum())(x)
    with pytest.raises(NotImplementedError, match=r"cube.*VJP.*reverse"):
        tg.jacobian(only_jvp, x, mode="reverse")
    with pytest.raises(NotImplementedError, match=r"cube.*JVP.*forward"):
        tg.jvp(only_vjp, x, np.ones(2))
    with pytest.raises(NotImplementedError, match=r"cube.*JVP.*forward"):
        tg.jacobian(only_vjp, x, mode="forward")
    # mode="auto" picks forward when n <= m and reverse when n > m
    close(tg.jacobian(only_jvp, x), np.diag(3 * x ** 2), rtol=1e-14, atol=0)
    close(tg.jacobian(lambda x: only_vjp(x).sum(), x), 3 * x ** 2, rtol=1e-14, atol=0)
    with pytest.raises(NotImplementedError, match=r"cube.*VJP"):
        tg.jacobian(lambda x: only_jvp(x).sum(), x)
    with pytest.raises(NotImplementedError, match=r"cube.*JVP"):
        tg.jacobian(only_vjp, x)
    # a JVP rule missing for one input of several
    @tg.custom_op
    def mul(a, b):
        return a * b
    mul.defjvp(lambda ta, ans, a, b: ta * b)
    close(tg.jvp(lambda a: mul(a, x), x, np.ones(2))[1], x, rtol=0, atol=0)
    with pytest.raises(NotImplementedError, match=r"mul.*input 1.*forward"):
        tg.jvp(lambda b: mul(x, b), x, np.ones(2))


def test_custom_op_second_order_raises():
    cube = make_cube()
    x = np.array([1.0, 2.0])
    f = lambda x: cube(x).sum()      # noqa: E731
    for call in (lambda: tg.hessian(f, x),
                 lambda: tg.hvp(f, x, np.ones(2)),
                 lambda: tg.grad(tg.grad(lambda s: cube(s)))(1.0),
                 lambda: tg.jacobian(tg.grad(f), x, mode="reverse"),
                 lambda: tg.grad(lambda y: tg.jvp(cube, y, np.ones(2))[1].sum())(x)):
        with pytest.raises(NotImplementedError, match=r"cube.*second-order"):
            call()
    v = Variable(x, requires_grad=True)
    with pytest.raises(NotImplementedError, match=r"cube.*second-order"):
        f(v).backward(create_graph=True)


def test_custom_op_rule_errors():
    @tg.custom_op
    def bad(x):
        return x * 2
    bad.defvjp(lambda g, ans, x: np.ones(5))
    bad.defjvp(lambda t, ans, x: np.ones(5))
    x = np.ones(3)
    with pytest.raises(ValueError, match=r"bad.*\(5,\).*\(3,\)"):
        tg.grad(lambda x: bad(x).sum())(x)
    with pytest.raises(ValueError, match=r"bad.*\(5,\)"):
        tg.jvp(bad, x, x)
    with pytest.raises(TypeError, match="defvjp"):
        bad.defvjp(3)
    with pytest.raises(TypeError, match="custom_op"):
        tg.custom_op(3)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_tangent_shape_and_dtype_errors():
    f = lambda x: x * 2      # noqa: E731
    x = np.ones(3)
    with pytest.raises(ValueError, match=r"jvp: tangents has shape \(2,\).*primals.*\(3,\)"):
        tg.jvp(f, x, np.ones(2))
    with pytest.raises(ValueError, match=r"tangents\[1\] has shape \(3,\).*primals\[1\].*\(\)"):
        tg.jvp(lambda a, b: a * b, (x, 2.0), (x, x))
    with pytest.raises(TypeError, match=r"tangents has dtype float32.*\(3,\).*float64.*\(3,\)"):
        tg.jvp(f, x, np.ones(3, np.float32))
    with pytest.raises(TypeError, match=r"tangents has dtype int64"):
        tg.jvp(f, x, np.ones(3, np.int64))
    with pytest.raises(TypeError, match=r"tangents must be an array of floats"):
        tg.jvp(f, x, "abc")
    with pytest.raises(ValueError, match=r"2 primals but 1 tangents"):
        tg.jvp(lambda a, b: a * b, (x, x), (x,))
    with pytest.raises(ValueError, match=r"hvp: v has shape \(2,\).*x has shape \(3,\)"):
        tg.hvp(lambda x: x.sum(), x, np.ones(2))
    with pytest.raises(TypeError, match=r"hvp: v has dtype float32"):
        tg.hvp(lambda x: x.sum(), x, np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"directional_derivative: u has shape \(4,\).*\(3,\)"):
        tg.directional_derivative(f, x, np.ones(4))
    _, vjp_fn = tg.vjp(f, x)
    with pytest.raises(ValueError, match=r"vjp: cotangent has shape \(2,\).*output.*\(3,\)"):
        vjp_fn(np.ones(2))
    with pytest.raises(TypeError, match=r"vjp: cotangent has dtype float32"):
        vjp_fn(np.ones(3, np.float32))


def test_function_must_return_a_variable():
    x = np.ones(3)
    bad = lambda x: x.data * 2      # noqa: E731  (an ndarray computed from the Variable's values)
    calls = {
        "jvp": lambda: tg.jvp(bad, x, x),
        "vjp": lambda: tg.vjp(bad, x),
        "grad": lambda: tg.grad(bad)(x),
        "value_and_grad": lambda: tg.value_and_grad(bad)(x),
        "jacobian": lambda: tg.jacobian(bad, x),
        "hessian": lambda: tg.hessian(bad, x),
        "hvp": lambda: tg.hvp(bad, x, x),
        "directional_derivative": lambda: tg.directional_derivative(bad, x, x),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=r"must return a .*Variable, got ndarray of shape \(3,\)"):
            call()
    with pytest.raises(TypeError, match="got float"):
        tg.grad(lambda x: 1.0)(x)


def test_grad_of_non_scalar_function():
    with pytest.raises(ValueError, match=r"grad: .*single-element.*shape \(3,\)"):
        tg.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(ValueError, match=r"value_and_grad: .*shape \(2, 2\)"):
        tg.value_and_grad(lambda x: x * 2)(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"hessian: .*shape \(3,\)"):
        tg.hessian(lambda x: x * 2, np.ones(3))
    with pytest.raises(ValueError, match=r"hvp: .*shape \(3,\)"):
        tg.hvp(lambda x: x * 2, np.ones(3), np.ones(3))


def test_argnums_errors():
    f = lambda x, y: (x * y).sum()      # noqa: E731
    with pytest.raises(ValueError, match=r"argnums 2 is out of range.*2 positional"):
        tg.grad(f, argnums=2)(1.0, 2.0)
    with pytest.raises(ValueError, match=r"argnums \(0, -3\) is out of range"):
        tg.grad(f, argnums=(0, -3))(1.0, 2.0)
    with pytest.raises(ValueError, match="out of range"):
        tg.value_and_grad(f, argnums=1)(1.0)
    with pytest.raises(TypeError, match="argnums must be an int or a tuple of ints"):
        tg.grad(f, argnums="0")
    with pytest.raises(TypeError, match="argnums"):
        tg.grad(f, argnums=(0, 1.0))
    with pytest.raises(TypeError, match="argnums"):
        tg.grad(f, argnums=True)


def test_jacobian_argument_errors():
    f = lambda x: x * 2      # noqa: E731
    with pytest.raises(ValueError, match=r"mode must be one of .*'sideways'"):
        tg.jacobian(f, np.ones(2), mode="sideways")
    with pytest.raises(ValueError, match="chunk_size"):
        tg.jacobian(f, np.ones(2), chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        tg.jacobian(f, np.ones(2), chunk_size=1.5)
    with pytest.raises(TypeError, match=r"jacobian: x must be an array-like"):
        tg.jacobian(f, "abc")
