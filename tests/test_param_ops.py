"""elu, leaky_relu (elementwise primitives with a float parameter) and deg2rad, rad2deg (h92-param;
all four were compositions in _compose.py).

The parameter by position or by name with its default; values against the old compositions' formula
(the same bits), NumPy and special values; first-order VJP and JVP (the fused kernel), the composite
(create_graph) and second order against formulas written from the math; the kinks (elu'(0) = alpha,
leaky_relu'(0) = negative_slope, as the compositions and PyTorch); float32 kept with a Python-float
parameter; deg2rad/rad2deg against NumPy's bits; PyTorch cross-checks when torch is installed."""
import inspect
import math

import numpy as np
import pytest

import tapegrad as tg

_LD = np.longdouble
DTYPES = [np.float32, np.float64]


def _old_elu(x, alpha=1.0):  # the composition this primitive replaces (_compose.py, before h92)
    x = tg.Variable(x) if not isinstance(x, tg.Variable) else x
    pos = x.numpy() > 0
    return tg.where(pos, x, tg.multiply(tg.expm1(tg.where(pos, 0.0, x)), float(alpha)))


def _old_leaky(x, negative_slope=0.01):
    x = tg.Variable(x) if not isinstance(x, tg.Variable) else x
    return tg.where(x.numpy() > 0, x, tg.multiply(x, float(negative_slope)))


def _points(dtype):
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.uniform(-30, 30, 300), rng.standard_normal(300), [0.0, -0.0, 1e-30, -1e-30, 5.0, -5.0]])
    return x.astype(dtype)


# ----- signatures and arguments ------------------------------------------------------------

def test_signatures_and_defaults():
    assert str(inspect.signature(tg.elu)) == "(x, alpha=1.0)"
    assert str(inspect.signature(tg.leaky_relu)) == "(x, negative_slope=0.01)"
    assert str(inspect.signature(tg.deg2rad)) == "(x, /)"
    x = np.array([-2.0, -0.5, 0.0, 1.5])
    for fn, p, d in ((tg.elu, "alpha", 1.0), (tg.leaky_relu, "negative_slope", 0.01)):
        a, b, c, e = fn(x), fn(x, d), fn(x, **{p: d}), fn(x=x, **{p: 0.3})
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(e.numpy(), fn(x, 0.3).numpy())
        # ints, NumPy scalars and 0-d arrays are numbers; the reference engine agrees
        for q in (2, np.float32(0.25), np.float64(0.25), np.array(0.25)):
            np.testing.assert_array_equal(fn(x, q).numpy(), fn(x, float(q)).numpy())
            np.testing.assert_allclose(fn(x, q).numpy(), getattr(tg.reference, fn.__name__)(x, q).numpy(),
                                       rtol=1e-15)


@pytest.mark.parametrize("call, err, msg", [
    (lambda: tg.elu(np.ones(3), "1.0"), TypeError, "elu: alpha must be a real number, got str"),
    (lambda: tg.elu(np.ones(3), None), TypeError, "elu: alpha must be a real number, got NoneType"),
    (lambda: tg.leaky_relu(np.ones(3), [0.1]), TypeError, "leaky_relu: negative_slope must be a real number"),
    (lambda: tg.elu(np.ones(3), 1.0, 2.0), TypeError, "elu"),
    (lambda: tg.elu(np.ones(3), beta=1.0), TypeError, "elu"),
    (lambda: tg.elu(), TypeError, "elu"),
    (lambda: tg.leaky_relu(np.ones(3), 2**2000), ValueError,
     r"leaky_relu: negative_slope 114813069527\.\.\. \(603 digits\) is out of range"),
    (lambda: tg.elu(np.array(["a"])), TypeError, "elu"),
    (lambda: tg.elu(np.ones(3), tg.Variable(np.ones(3))), ValueError, "elu: alpha: "),
])
def test_bad_arguments_name_the_op(call, err, msg):
    with pytest.raises(err, match=msg):
        call()


# ----- values --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1.0, 0.3, 2.5, 0.0, -1.0])
def test_values_are_the_old_compositions_bits(dtype, alpha):
    x = _points(dtype)
    np.testing.assert_array_equal(tg.elu(x, alpha).numpy(), _old_elu(x, alpha).numpy())
    np.testing.assert_array_equal(tg.leaky_relu(x, alpha).numpy(), _old_leaky(x, alpha).numpy())
    for fn in (tg.elu, tg.leaky_relu):
        r = fn(x, alpha)
        assert r.dtype == dtype  # a Python-float parameter does not promote float32
        assert fn(x[3], alpha).shape == () and fn(x[3], alpha).dtype == dtype


def test_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e300, -1e300, -800.0])
    e = tg.elu(x, 0.5).numpy()
    np.testing.assert_array_equal(e, [0.0, -0.0, np.inf, -0.5, np.nan, 5e-324, -0.0, 1e300, -0.5, -0.5])
    np.testing.assert_array_equal(np.signbit(e[:2]), [False, True])
    lr = tg.leaky_relu(x, 0.1).numpy()
    np.testing.assert_array_equal(lr, [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -0.0, 1e300, -1e299, -80.0])
    np.testing.assert_array_equal(np.signbit(lr[:2]), [False, True])


@pytest.mark.parametrize("dtype", DTYPES)
def test_elu_within_an_ulp_at_alpha_1(dtype):
    # alpha = 1: the expm1 kernel's bits (<= 1 ulp, tests/test_kernels_fastpaths.py) on x <= 0
    x = -np.abs(_points(dtype))
    got = tg.elu(x).numpy().astype(_LD)
    want = np.expm1(x.astype(_LD))
    ulp = np.spacing(np.abs(want.astype(dtype))).astype(_LD)
    assert (np.abs(got - want) / ulp).max() <= 1.0


def test_same_bits_on_every_isa_and_thread_count():
    x = np.random.default_rng(2).uniform(-20, 20, 300_001)
    want = {}
    old = tg._core._isa()
    try:
        for isa in ("baseline", "avx2", "avx512"):
            try:
                tg._core._set_isa(isa)
            except ValueError:
                continue
            for threads in (1, 2):
                tg._core._set_pool_threads(threads)
                for dt in DTYPES:
                    xd = x.astype(dt)
                    g = np.cos(x).astype(dt)
                    for name, p in (("elu", 0.7), ("leaky_relu", 0.2)):
                        v = tg.Variable(xd, requires_grad=True)
                        getattr(tg, name)(v, p).backward(tg.Variable(g))
                        got = (getattr(tg, name)(xd, p).numpy(), v.grad.copy())
                        key = (name, dt)
                        if key in want:
                            for a, b in zip(want[key], got):
                                np.testing.assert_array_equal(a, b, err_msg=f"{name} {dt} {isa} {threads}")
                        else:
                            want[key] = got
    finally:
        tg._core._set_isa(old)
        tg.set_num_threads(tg.get_num_threads())


# ----- derivatives -----------------------------------------------------------------------------

def d1(name, x, p):
    x = x.astype(_LD)
    if name == "elu":
        return np.where(x > 0, 1, p * np.exp(np.minimum(x, 0)))
    return np.where(x > 0, 1, p).astype(_LD)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, p", [("elu", 1.0), ("elu", 0.4), ("leaky_relu", 0.01), ("leaky_relu", 0.3)])
def test_first_order_vjp_and_jvp(name, p, dtype):
    x = _points(dtype)
    fn = getattr(tg, name)
    g = np.random.default_rng(3).uniform(0.5, 2, x.size).astype(dtype)
    want = (g.astype(_LD) * d1(name, x, p)).astype(np.float64)
    v = tg.Variable(x, requires_grad=True)
    fn(v, p).backward(tg.Variable(g))
    assert v.grad.dtype == dtype
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(v.grad.astype(np.float64), want, rtol=4 * eps, atol=0)
    _, t = tg.jvp(lambda z: fn(z, p), (tg.Variable(x),), (tg.Variable(g),))
    np.testing.assert_array_equal(np.asarray(t), v.grad)  # the same fused kernel both ways
    # the composite (a recorded sweep: create_graph) gives the same first derivative
    w = tg.Variable(x, requires_grad=True)
    fn(w, p).backward(tg.Variable(g), create_graph=True)
    np.testing.assert_allclose(np.asarray(w.grad.numpy() if hasattr(w.grad, "numpy") else w.grad, np.float64),
                               want, rtol=4 * eps, atol=0)


def test_kinks_and_infinities():
    # elu'(0) = alpha (both engines, PyTorch); leaky_relu'(0) = negative_slope; +inf: 1; -inf: 0 / slope
    x = np.array([0.0, -0.0, np.inf, -np.inf, 800.0, -800.0])
    for m in (tg, tg.reference):
        v = m.Variable(x, requires_grad=True)
        m.elu(v, 0.5).backward(m.Variable(np.ones(6)))
        np.testing.assert_array_equal(np.asarray(v.grad), [0.5, 0.5, 1.0, 0.0, 1.0, 0.0])
        v = m.Variable(x, requires_grad=True)
        m.leaky_relu(v, 0.25).backward(m.Variable(np.ones(6)))
        np.testing.assert_array_equal(np.asarray(v.grad), [0.25, 0.25, 1.0, 0.25, 1.0, 0.25])


@pytest.mark.parametrize("dtype", DTYPES)
def test_second_order_through_create_graph(dtype):
    x = _points(dtype)
    x = x[x != 0]
    for p in (1.0, 0.6):
        f1 = tg.grad(lambda z: tg.elu(z, p).sum())
        f2 = tg.grad(lambda z: f1(z).sum())
        want2 = np.where(x > 0, 0.0, p * np.exp(np.minimum(x.astype(np.float64), 0)))
        np.testing.assert_allclose(np.asarray(f2(tg.Variable(x)), np.float64), want2,
                                   rtol=4 * np.finfo(dtype).eps, atol=0)
        g1 = tg.grad(lambda z: tg.leaky_relu(z, p).sum())
        g2 = tg.grad(lambda z: g1(z).sum())
        np.testing.assert_array_equal(np.asarray(g2(tg.Variable(x))), np.zeros_like(x))
    # at 0: elu'' is alpha from the left, 0 from the right; the composite's exp(-relu(-x)) gives the
    # right-hand 0 (relu'(0) = 0), where the old composition and PyTorch gave alpha
    f1 = tg.grad(lambda z: tg.elu(z, 0.6).sum())
    f2 = tg.grad(lambda z: f1(z).sum())
    assert float(np.asarray(f2(tg.Variable(np.array([0.0]))))[0]) == 0.0


def test_batched_directions_take_the_composite():
    # a Jacobian (directions with a batch axis) runs the composite: the same values as the fused kernel
    x = np.array([-1.5, -0.2, 0.0, 0.7])
    for fn in (lambda z: tg.elu(z, 0.8), lambda z: tg.leaky_relu(z, 0.3)):
        for mode in ("forward", "reverse"):
            J = np.asarray(tg.jacobian(fn, x, mode=mode))
            v = tg.Variable(x, requires_grad=True)
            fn(v).sum().backward()
            np.testing.assert_allclose(np.diag(J), v.grad, rtol=1e-15)
            np.testing.assert_array_equal(J - np.diag(np.diag(J)), 0)


# ----- deg2rad, rad2deg ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_deg2rad_rad2deg_are_numpys_bits(dtype):
    rng = np.random.default_rng(5)
    with np.errstate(over="ignore"):
        x = np.concatenate([rng.uniform(-1e4, 1e4, 100_000), rng.standard_normal(10_000) * 10.0 ** rng.uniform(-30, 30, 10_000),
                            [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e308]]).astype(dtype)
    with np.errstate(over="ignore"):
        for name in ("deg2rad", "radians", "rad2deg", "degrees"):
            ours = {"radians": "deg2rad", "degrees": "rad2deg"}.get(name, name)
            got = getattr(tg, ours)(x).numpy()
            want = getattr(np, name)(x)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=name)
            # np.<name> on a Variable dispatches to the primitive
            np.testing.assert_array_equal(getattr(np, name)(tg.Variable(x)).numpy(), got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_deg2rad_rad2deg_derivatives(dtype):
    x = np.array([-3.0, 0.0, 1.5, 720.0], dtype)
    g = np.array([1.0, -2.0, 0.5, 3.0], dtype)
    for fn in (tg.deg2rad, tg.rad2deg):
        v = tg.Variable(x, requires_grad=True)
        fn(v).backward(tg.Variable(g))
        np.testing.assert_array_equal(v.grad, fn(g).numpy())  # linear: the op applied to the cotangent
        _, t = tg.jvp(fn, (tg.Variable(x),), (tg.Variable(g),))
        np.testing.assert_array_equal(np.asarray(t), fn(g).numpy())
        f2 = tg.grad(lambda z: tg.grad(lambda w: (fn(w) * fn(w)).sum())(z).sum())
        c = float(fn(np.float64(1.0)).numpy())
        np.testing.assert_allclose(np.asarray(f2(tg.Variable(x)), np.float64), 2 * c * c,
                                   rtol=4 * np.finfo(dtype).eps)
        # the reference engine: the same values and derivative
        r = tg.reference.Variable(x, requires_grad=True)
        getattr(tg.reference, fn.__name__)(r).backward(tg.reference.Variable(g))
        np.testing.assert_array_equal(getattr(tg.reference, fn.__name__)(x).numpy(), fn(x).numpy())
        np.testing.assert_allclose(np.asarray(r.grad), v.grad, rtol=np.finfo(dtype).eps)


# ----- other places -----------------------------------------------------------------------------

def test_nn_leaky_relu_layer_is_the_primitive():
    x = np.random.default_rng(0).standard_normal((4, 5))
    layer = tg.nn.LeakyReLU(0.2)
    np.testing.assert_array_equal(layer(tg.Variable(x)).numpy(), tg.leaky_relu(x, 0.2).numpy())
    np.testing.assert_array_equal(layer(tg.reference.Variable(x)).numpy(), tg.leaky_relu(x, 0.2).numpy())
    np.testing.assert_array_equal(layer(x).numpy(), tg.leaky_relu(x, 0.2).numpy())


def test_symbolic_engine():
    sp = pytest.importorskip("sympy")
    from tapegrad import symbolic
    u = sp.Symbol("u", real=True)
    e = symbolic.elu(symbolic.SymArray(np.array([u], dtype=object)), 0.5)
    expr = e.data[0] if hasattr(e, "data") else np.asarray(e)[0]
    assert sp.simplify(expr.subs(u, -1) - 0.5 * (sp.exp(-1) - 1)) == 0 and expr.subs(u, 2) == 2
    lr = symbolic.leaky_relu(symbolic.SymArray(np.array([u], dtype=object)), 0.1)
    expr = lr.data[0] if hasattr(lr, "data") else np.asarray(lr)[0]
    assert expr.subs(u, -2) == -0.2 and expr.subs(u, 3) == 3
    assert symbolic.deg2rad(180).data.item() == sp.pi and symbolic.rad2deg(sp.pi).data.item() == 180


@pytest.mark.parametrize("dtype", DTYPES)
def test_against_pytorch(dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.concatenate([np.random.default_rng(4).uniform(-9, 9, 2000), [0.0, -0.0]]).astype(dtype)
    for name, p, th in (("elu", 1.0, lambda t: F.elu(t)), ("elu", 0.3, lambda t: F.elu(t, 0.3)),
                        ("leaky_relu", 0.01, lambda t: F.leaky_relu(t)),
                        ("leaky_relu", 0.2, lambda t: F.leaky_relu(t, 0.2))):
        t = torch.tensor(x, requires_grad=True)
        th(t).sum().backward()
        v = tg.Variable(x, requires_grad=True)
        y = getattr(tg, name)(v, p)
        y.sum().backward()
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(y.numpy(), th(t.detach()).numpy(), rtol=eps * 2, atol=0)
        np.testing.assert_allclose(v.grad, t.grad.numpy(), rtol=eps * 4, atol=0)  # the kink at 0 too
    for name in ("deg2rad", "rad2deg"):  # (PyTorch's float32 constants are not NumPy's: an ulp apart)
        np.testing.assert_allclose(getattr(tg, name)(x).numpy(), getattr(torch, name)(torch.tensor(x)).numpy(),
                                   rtol=np.finfo(dtype).eps * 2)


# ----- float_power: the composition's astype + power as one C++ call ---------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_float_power_is_numpys_in_float64(dtype):
    rng = np.random.default_rng(6)
    a, b = rng.uniform(0.2, 3, 50).astype(dtype), rng.uniform(-2, 2, 50).astype(dtype)
    for x, y in ((a, b), (a, 0.1), (2.5, b), (a[0], b[0])):  # a Python number is float64 itself (as NumPy)
        got = tg.float_power(x, y)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got.numpy(), np.float_power(x, y), rtol=4e-16)  # (power's kernel: < 1 ulp)
        np.testing.assert_allclose(tg.reference.float_power(x, y).numpy(), got.numpy(), rtol=4e-16)
    assert str(inspect.signature(tg.float_power)) == "(a, b)" and tg.float_power.__name__ == "float_power"
    np.testing.assert_allclose(np.float_power(tg.Variable(a), 2).numpy(), np.float_power(a, 2), rtol=4e-16)
    va, vb = tg.Variable(a, requires_grad=True), tg.Variable(b, requires_grad=True)
    tg.float_power(va, vb).sum().backward()
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert va.grad.dtype == dtype and vb.grad.dtype == dtype
    np.testing.assert_allclose(va.grad, (b64 * a64 ** (b64 - 1)).astype(dtype), rtol=2 * np.finfo(dtype).eps)
    np.testing.assert_allclose(vb.grad, (a64 ** b64 * np.log(a64)).astype(dtype), rtol=2 * np.finfo(dtype).eps,
                               atol=1e-30)
    with pytest.raises(ValueError, match=r"float_power: operands could not be broadcast"):
        tg.float_power(np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match="float_power"):
        tg.float_power("a", 1.0)
    with pytest.raises(TypeError, match="float_power"):
        tg.float_power(a)
