"""Derivative modes of the C++ engine and the functional API (docs/API.md,
"Modes and the functional API (both engines)").

* jvp, vjp, grad and value_and_grad with several primals and argnums.
* Hessians (symmetric, differences of gradients, hvp, nested transforms,
  reverse-over-reverse, create_graph to third order).
* jacobian options: tuples of inputs, chunk_size, mode="auto", constant
  outputs, float32, nesting.

Every primitive in every mode: test_modes_primitives.py. Custom ops:
test_custom_op.py. Error cases: test_modes_errors.py. Everything is float64
unless a test says otherwise.
"""

import numpy as np
import pytest

import op_cases
import tapegrad as tg
from helpers import (FD_ATOL, FD_RTOL, MODE_RTOL, MODES, XENGINE_RTOL, assert_close, fd_jacobians,
                     reference_with_jacobian, rng_for, sample)
from helpers import fd_hessian as _fd_hessian
from helpers import grad_np as _grad_np


# ---------------------------------------------------------------------------
# 1. jvp, vjp, grad with several primals
# ---------------------------------------------------------------------------
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
# 2. Hessians
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


@pytest.mark.parametrize("name", op_cases.SMOOTH)
def test_grad_of_grad_of_every_smooth_elementwise_op(name):
    """grad is the spec's f' (opspec/ops.py `deriv`, evaluated in NumPy), grad of grad its differences,
    and the third derivative the differences of the second, at a point of the op's domain."""
    f = getattr(tg, name)
    df = op_cases.spec_derivative(name)
    x0 = float(sample(op_cases.sample_domain(name), (), rng_for("grad-of-grad", name)))
    eps = 1e-5
    assert_close(np.asarray(tg.grad(f)(x0)), df(x0), rtol=1e-13, atol_scale=1e-15)
    gg = tg.grad(tg.grad(f))(x0)
    assert np.shape(gg) == ()
    assert_close(np.asarray(gg), (df(x0 + eps) - df(x0 - eps)) / (2 * eps), rtol=1e-7, atol_scale=1e-7,
                 atol_floor=1e-9)
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
# 3. jacobian: tuples, chunks, auto, constants, float32, nesting
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

