"""silu, gelu and log_sigmoid as primitives (h87-act; they were compositions of sigmoid/softplus).

Values within the bars are tests/test_kernels_fastpaths.py's (LD_ORACLE); here: the derivatives (first
order from the fused kernels, second order through create_graph, JVPs) against long double formulas
written from the math, special values, the gelu definition against PyTorch's approximate='tanh', and
tapegrad.nn.GELU on the primitive."""
import numpy as np
import pytest

import tapegrad as tg

_LD = np.longdouble
C, A = 1.5957691216057308, 0.044715  # gelu: x sigmoid(C (x + A x^3)), C = 2 sqrt(2/pi)


def _sig(u):
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1 / (1 + e), e / (1 + e))


def _u(x):
    return C * (x + A * x**3), C * (1 + 3 * A * x * x), C * 6 * A * x  # u, u', u''


def d1(name, x):
    """f'(x) in long double."""
    x = x.astype(_LD)
    if name == "silu":
        s = _sig(x)
        return s * (1 + x * (1 - s))
    if name == "log_sigmoid":
        return _sig(-x)
    u, du, _ = _u(x)
    s = _sig(u)
    return s + x * s * _sig(-u) * du


def d2(name, x):
    """f''(x) in long double (s' = s (1 - s), s'' = s (1 - s) (1 - 2 s))."""
    x = x.astype(_LD)
    if name == "silu":
        s = _sig(x)
        ds = s * (1 - s)
        return 2 * ds + x * ds * (1 - 2 * s)
    if name == "log_sigmoid":
        s = _sig(x)
        return -s * (1 - s)
    u, du, ddu = _u(x)
    s = _sig(u)
    ds = s * (1 - s)
    return 2 * ds * du + x * (ds * (1 - 2 * s) * du * du + ds * ddu)


NAMES = ["silu", "gelu", "log_sigmoid"]
DTYPES = [(np.float64, 4e-15, 1e-12), (np.float32, 4e-7, 2e-5)]  # dtype, rtol first order, second order


def _points(dtype):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-12, 12, 400), rng.standard_normal(200), [0.0, -0.0, 1e-30, -1e-30, 5.0, -5.0]])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype, rtol, rtol2", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_first_order_vjp_and_jvp_match_the_long_double_derivative(name, dtype, rtol, rtol2):
    x = _points(dtype)
    fn = getattr(tg, name)
    g = np.random.default_rng(3).uniform(0.5, 2, x.size).astype(dtype)
    want = (g.astype(_LD) * d1(name, x)).astype(np.float64)
    v = tg.Variable(x, requires_grad=True)
    fn(v).backward(tg.Variable(g))
    assert v.grad.dtype == dtype
    # relative, and absolute in the terms' size where f' cancels (silu' and gelu' are 0 near x = -1.28, -1.5)
    scale = np.abs(want) + np.abs(g) * np.abs(x.astype(np.float64)) * 0.25
    np.testing.assert_array_less(np.abs(v.grad.astype(np.float64) - want), rtol * 8 * scale + 1e-300)
    _, t = tg.jvp(fn, (tg.Variable(x),), (tg.Variable(g),))
    np.testing.assert_array_equal(np.asarray(t), v.grad)  # the same fused kernel both ways


@pytest.mark.parametrize("dtype, rtol, rtol2", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_second_order_through_create_graph(name, dtype, rtol, rtol2):
    x = _points(dtype)
    x = x[np.abs(x) < 8]  # (f'' of a sum: cancellation beyond; the composite is exact to its ops' rounding)
    f1 = tg.grad(lambda z: getattr(tg, name)(z).sum())
    f2 = tg.grad(lambda z: f1(z).sum())  # f1 recorded: the composite derivative, differentiated again
    np.testing.assert_allclose(np.asarray(f1(tg.Variable(x)), np.float64), d1(name, x).astype(np.float64),
                               rtol=rtol * 64, atol=rtol * 64)
    got = np.asarray(f2(tg.Variable(x)), np.float64)
    np.testing.assert_allclose(got, d2(name, x).astype(np.float64), rtol=rtol2, atol=rtol2)


def test_special_values_as_the_compositions_gave():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e300, -1e300])
    silu = tg.silu(x).numpy()
    gelu = tg.gelu(x).numpy()
    ls = tg.log_sigmoid(x).numpy()
    # x * sigmoid(x): -0 stays -0, inf * 1 = inf, -inf * 0 = NaN (PyTorch's silu and gelu give the same)
    np.testing.assert_array_equal(silu, [0.0, -0.0, np.inf, np.nan, np.nan, 0.0, -0.0, 1e300, -0.0])
    np.testing.assert_array_equal(np.signbit(silu[:2]), [False, True])
    np.testing.assert_array_equal(gelu, [0.0, -0.0, np.inf, np.nan, np.nan, 0.0, -0.0, 1e300, -0.0])
    np.testing.assert_array_equal(np.signbit(gelu[[0, 1, 5, 6, 8]]), [False, True, False, True, True])
    np.testing.assert_array_equal(ls, [-np.log(2), -np.log(2), -0.0, -np.inf, np.nan, -np.log(2), -np.log(2),
                                       -0.0, -1e300])
    for dt in (np.float32, np.float64):  # the dtype is kept, 0-d too
        for name in NAMES:
            r = getattr(tg, name)(np.asarray(1.5, dt))
            assert r.dtype == dt and r.shape == ()


@pytest.mark.parametrize("name", ["silu", "gelu"])
def test_subnormal_results_round_once(name):
    # x sigmoid(x) where e^x is subnormal (x in [-760, -708] for float64, [-112, -80] for float32): the
    # compositions rounded sigmoid(x) to a subnormal first, then multiplied (hundreds of ulps); here the
    # result is within an ulp of x e^x (1 - e^x) (silu) in long double.
    if name == "silu":
        for dt, lo, hi in ((np.float64, -760, -700), (np.float32, -112, -80)):
            x = np.linspace(lo, hi, 20001).astype(dt)
            got = tg.silu(x).numpy().astype(_LD)
            xl = x.astype(_LD)
            want = xl * np.exp(xl) / (1 + np.exp(xl))
            ulp = np.spacing(np.abs(want.astype(dt))).astype(_LD)
            assert (np.abs(got - want) / ulp).max() <= 1.0
    else:  # gelu: u = C x (1 + A x^2) reaches -745 near x = -21.2, where x e^u turns subnormal (float32: -10.5)
        from test_kernels_fastpaths import _ld_gelu  # (its oracle: u as a long double pair)
        for dt, lo, hi in ((np.float64, -21.6, -19.5), (np.float32, -11.0, -9.0)):
            x = np.linspace(lo, hi, 20001).astype(dt)
            got = tg.gelu(x).numpy().astype(_LD)
            want = _ld_gelu(x.astype(_LD))
            ulp = np.spacing(np.abs(want.astype(dt))).astype(_LD)
            assert (np.abs(got - want) / ulp).max() <= 1.0
            assert (got == 0).any() and (got < 0).any()


def test_nn_gelu_layer_is_the_primitive():
    x = np.random.default_rng(0).standard_normal((4, 5))
    layer = tg.nn.GELU()
    np.testing.assert_array_equal(layer(tg.Variable(x)).numpy(), tg.gelu(x).numpy())
    # (the layer's old form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) is the same function)
    old = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(layer(tg.Variable(x)).numpy(), old, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_against_pytorch(name, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    th = {"silu": F.silu, "gelu": lambda t: F.gelu(t, approximate="tanh"), "log_sigmoid": F.logsigmoid}[name]
    # (PyTorch's gelu is 0.5 x (1 + tanh(u/2)): 1 + tanh cancels for negative x, all bits gone by x ~ -6)
    x = np.random.default_rng(4).uniform(-3 if name == "gelu" else -9, 9, 2000).astype(dtype)
    # PyTorch in float64 on the same points (its float32 gelu computes u in float: ~|u| ulp off)
    t = torch.tensor(x.astype(np.float64), requires_grad=True)
    th(t).sum().backward()
    v = tg.Variable(x, requires_grad=True)
    y = getattr(tg, name)(v)
    y.sum().backward()
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(y.numpy(), th(t.detach()).numpy(), rtol=eps * 64, atol=eps * 8)  # (its cancellation)
    np.testing.assert_allclose(v.grad, t.grad.numpy(), rtol=eps * 16, atol=eps * 16)
