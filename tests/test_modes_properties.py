"""Property tests (hypothesis) for the derivative modes of the C++ engine.

Each example builds a small random expression over 1-2 inputs of random,
broadcast-compatible shapes from smooth primitives (no kinks, no
singularities) and checks, in float64:

* jacobian(mode="forward") == jacobian(mode="reverse") (random chunk sizes)
  == central finite differences;
* the inner-product identity <u, vjp(w)> == <jvp(u), w> for random u, w;
* the reference engine's jacobian agrees;
* for the scalar loss sum(w * expr): hvp == hessian · v, hessian symmetric.
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg
from helpers import assert_close, evaluate, fd_jacobians, reference_engine

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------
# Expressions: nested tuples ("op", children...) or ("input", i)
# ---------------------------------------------------------------------------
UNARY = {
    "tanh": lambda m, x: m.tanh(x),
    "sin": lambda m, x: m.sin(x),
    "cos": lambda m, x: m.cos(x),
    "sigmoid": lambda m, x: m.sigmoid(x),
    "exp_tanh": lambda m, x: m.exp(m.tanh(x)),
    "log1p_sq": lambda m, x: m.log1p(x * x),
    "sqrt_1p_sq": lambda m, x: m.sqrt(1.0 + x * x),
    "affine": lambda m, x: x * 1.7 - 0.3,
    "square": lambda m, x: x * x,
    "neg": lambda m, x: -x,
    "softmax_last": lambda m, x: m.softmax(x, axis=-1) if x.ndim else x,
    "log_softmax_first": lambda m, x: m.log_softmax(x, axis=0) if x.ndim else x,
    "logsumexp_keep": lambda m, x: m.logsumexp(x, axis=-1, keepdims=True) if x.ndim else m.logsumexp(x),
    "sum_first": lambda m, x: m.sum(x, axis=0) if x.ndim else x,
    "mean_all_times": lambda m, x: m.mean(x) * x,
    "transpose": lambda m, x: m.transpose(x),
    "flip_first": lambda m, x: x[::-1] if x.ndim else x,
    "gather_repeat": lambda m, x: x[np.array([0, 0, x.shape[0] - 1])] if x.ndim else x,
    "flatten": lambda m, x: m.reshape(x, (-1,)),
    "broadcast_up": lambda m, x: m.broadcast_to(x, (2,) + tuple(x.shape)),
    "stack_self": lambda m, x: m.stack([x, m.tanh(x)], axis=0),
    "concat_self": lambda m, x: m.concatenate([x, x * 0.5], axis=-1) if x.ndim else x,
    "pow_const": lambda m, x: (1.0 + x * x) ** 1.5,
}
BINARY = {
    "add": lambda m, a, b: a + b,
    "subtract": lambda m, a, b: m.subtract(a, b),
    "multiply": lambda m, a, b: a * b,
    "divide_smooth": lambda m, a, b: a / (1.0 + b * b),
    "pow_smooth": lambda m, a, b: (1.0 + a * a) ** m.tanh(b),
    "where_mix": None,  # where(fixed mask, a * b, b): see evaluate_node
}

def evaluate_node(m, node, inputs):
    kind = node[0]
    if kind == "input":
        return inputs[node[1]]
    if kind in UNARY:
        return UNARY[kind](m, evaluate_node(m, node[1], inputs))
    a = evaluate_node(m, node[1], inputs)
    b = evaluate_node(m, node[2], inputs)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        b = m.sum(b)  # incompatible shapes: combine with a scalar summary instead
    if kind == "where_mix":
        return m.where(_FIXED_MASKS.setdefault(np.broadcast_shapes(a.shape, b.shape), _mask(a.shape, b.shape)),
                       a * b, b)
    return BINARY[kind](m, a, b)


_FIXED_MASKS = {}


def _mask(sa, sb):
    shape = np.broadcast_shapes(sa, sb)
    r = np.random.default_rng(len(shape) * 7 + int(np.prod(shape)))
    return r.random(size=shape) < 0.5


@st.composite
def expressions(draw, n_inputs, depth=3, top=True):
    if depth == 0 or (not top and draw(st.integers(0, 3)) == 0):
        return ("input", draw(st.integers(0, n_inputs - 1)))
    if draw(st.integers(0, 2)) > 0:
        return (draw(st.sampled_from(sorted(UNARY))), draw(expressions(n_inputs, depth - 1, False)))
    return (draw(st.sampled_from(sorted(BINARY))), draw(expressions(n_inputs, depth - 1, False)),
            draw(expressions(n_inputs, depth - 1, False)))


BASE_SHAPES = [(), (3,), (2, 3), (2, 1, 3), (1,), (3, 2), (4,)]


@st.composite
def input_shapes(draw):
    base = draw(st.sampled_from(BASE_SHAPES))
    n = draw(st.integers(1, 2))
    shapes = []
    for _ in range(n):
        s = list(base)
        if s and draw(st.integers(0, 2)) == 0:
            s = s[draw(st.integers(1, len(s))):]  # drop leading axes
        s = [1 if draw(st.integers(0, 4)) == 0 else d for d in s]  # some axes broadcast
        shapes.append(tuple(s))
    return shapes


@st.composite
def problems(draw):
    shapes = draw(input_shapes())
    expr = draw(expressions(len(shapes)))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s) for s in shapes]
    return expr, arrays, rng


def _inputs_used(node, used):
    if node[0] == "input":
        used.add(node[1])
    else:
        for child in node[1:]:
            _inputs_used(child, used)
    return used


def fn_of(expr):
    used = _inputs_used(expr, set())

    def fn(m, *vs):
        out = evaluate_node(m, expr, vs)
        if any(out is v for v in vs):
            out = out * 1.0  # a bare input as the whole expression (f(x) = x is tested in test_modes.py)
        for i, v in enumerate(vs):
            if i not in used:  # every input takes part (unused inputs are tested in test_modes.py)
                out = out + m.sum(m.sin(v)) * 0.1
        return out

    return fn


def _describe(expr, arrays):
    return f"expr={expr!r} shapes={[a.shape for a in arrays]}"


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------
@SETTINGS
@given(problem=problems(), chunk=st.sampled_from([None, 1, 2, 3, 7]))
def test_forward_reverse_and_finite_differences_agree(problem, chunk):
    expr, arrays, _ = problem
    fn = fn_of(expr)
    what = _describe(expr, arrays)
    out_shape = evaluate(tg, fn, arrays).shape

    def f(*vs):
        return fn(tg, *vs)

    jf = tg.jacobian(f, tuple(arrays), mode="forward", chunk_size=chunk)
    jr = tg.jacobian(f, tuple(arrays), mode="reverse", chunk_size=chunk)
    ja = tg.jacobian(f, tuple(arrays), mode="auto", chunk_size=chunk)
    jn = fd_jacobians(fn, arrays)
    for i, a in enumerate(arrays):
        assert jf[i].shape == jr[i].shape == ja[i].shape == out_shape + a.shape, what
        assert_close(jf[i], jr[i], rtol=1e-10, atol_scale=1e-12, msg=f"{what} input {i}: forward vs reverse")
        assert_close(ja[i], jr[i], rtol=1e-10, atol_scale=1e-12, msg=f"{what} input {i}: auto vs reverse")
        assert_close(jr[i], jn[i], rtol=1e-5, atol_scale=1e-6, atol_floor=1e-7,
                     msg=f"{what} input {i}: reverse vs finite differences")


@SETTINGS
@given(problem=problems())
def test_inner_product_identity(problem):
    """<u, vjp(w)> == <jvp(u), w>: the two modes are adjoint."""
    expr, arrays, rng = problem
    fn = fn_of(expr)
    what = _describe(expr, arrays)

    def f(*vs):
        return fn(tg, *vs)

    us = tuple(rng.normal(size=a.shape) for a in arrays)
    out, jvp_out = tg.jvp(f, tuple(arrays), us)
    w = rng.normal(size=np.shape(out))
    out2, vjp_fn = tg.vjp(f, *arrays)
    assert_close(out, out2, rtol=0, atol_scale=0, msg=what)
    grads = vjp_fn(w)
    assert len(grads) == len(arrays)
    lhs = sum(float(np.vdot(u, g)) for u, g in zip(us, grads))
    rhs = float(np.vdot(jvp_out, w))
    scale = max(sum(float(np.abs(u).ravel() @ np.abs(g).ravel()) for u, g in zip(us, grads)),
                float(np.abs(jvp_out).ravel() @ np.abs(w).ravel()), 1.0)
    assert abs(lhs - rhs) <= 1e-11 * scale, f"{what}: <u, vjp(w)> = {lhs!r} but <jvp(u), w> = {rhs!r}"
    # directional derivatives one input at a time sum to the joint jvp
    parts = []
    for i in range(len(arrays)):
        ts = tuple(u if j == i else np.zeros_like(u) for j, u in enumerate(us))
        parts.append(tg.jvp(f, tuple(arrays), ts)[1])
    assert_close(sum(parts), jvp_out, rtol=1e-12, atol_scale=1e-13, msg=what)


@SETTINGS
@given(problem=problems(), mode=st.sampled_from(["forward", "reverse"]))
def test_reference_engine_jacobian_agrees(problem, mode):
    expr, arrays, _ = problem
    fn = fn_of(expr)
    ref = reference_engine()
    assert hasattr(ref, "jacobian"), "tapegrad.reference has no jacobian: the cross-engine comparison needs it"
    jt = tg.jacobian(lambda *vs: fn(tg, *vs), tuple(arrays), mode="forward")
    jref = ref.jacobian(lambda *vs: fn(ref, *vs), tuple(arrays), mode=mode)
    for i, (a, b) in enumerate(zip(jt, jref)):
        assert_close(np.asarray(b), a, rtol=1e-9, atol_scale=1e-12,
                     msg=f"{_describe(expr, arrays)} input {i}: reference ({mode}) vs tapegrad")


@SETTINGS
@given(problem=problems())
def test_hessian_symmetric_and_hvp_consistent(problem):
    expr, arrays, rng = problem
    fn = fn_of(expr)
    x = arrays[0]
    rest = arrays[1:]
    out_shape = evaluate(tg, fn, arrays).shape
    w = rng.normal(size=out_shape)
    what = _describe(expr, arrays)

    def loss(v):
        return tg.sum(fn(tg, v, *rest) * w)

    H = tg.hessian(loss, x)
    assert H.shape == x.shape + x.shape, what
    n = x.size
    Hm = H.reshape(n, n)
    assert_close(Hm, Hm.T, rtol=1e-9, atol_scale=1e-11, atol_floor=1e-12, msg=f"{what}: symmetry")
    v = rng.normal(size=x.shape)
    assert_close(tg.hvp(loss, x, v), (Hm @ v.reshape(-1)).reshape(x.shape), rtol=1e-9, atol_scale=1e-11,
                 atol_floor=1e-12, msg=f"{what}: hvp vs H v")
    # differences of the gradient along v
    eps = 1e-5
    g = tg.grad(loss)
    assert_close(Hm @ v.reshape(-1), ((g(x + eps * v) - g(x - eps * v)) / (2 * eps)).reshape(-1),
                 rtol=1e-5, atol_scale=1e-6, atol_floor=1e-7, msg=f"{what}: H v vs differences of the gradient")
