"""cumsum, cumprod, prod, var and std as primitives (h88-scan): values against NumPy, exact
gradients at zeros (no division by x), ddof, axes, empty axes, second order and JVPs against
PyTorch, and the same bits at every ISA build and thread count."""
import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core
from test_kernels_fastpaths import ISAS

torch = pytest.importorskip("torch")
torch.set_default_dtype(torch.float64)


def _grad(f, x, g=None, create_graph=False):
    v = tg.Variable(x, requires_grad=True)
    y = f(v)
    y.backward(tg.Variable(np.ones(y.shape) if g is None else g), create_graph=create_graph)
    g = v.grad
    return np.array(g.data if isinstance(g, tg.Variable) else g)


# ----- values --------------------------------------------------------------------------------

def test_cumsum_float64_is_numpys_sequential_sum():
    x = np.random.default_rng(0).standard_normal(10_000)
    assert np.array_equal(tg.cumsum(x).data, np.cumsum(x))


@pytest.mark.parametrize("shape, axis", [((1 << 20,), 0), ((64, 4096), -1), ((4096, 64), 0)])
def test_cumprod_float32_within_half_an_ulp(shape, axis):
    # float32 products accumulate in double (as PyTorch): each output the running product rounded
    # once. A float32 chain (NumPy's) drifts: up to 527 ulp over 1M factors in [0.999, 1.001].
    x = np.random.default_rng(7).uniform(0.999, 1.001, shape).astype(np.float32)
    got = tg.cumprod(x, axis=axis).data
    exact = np.cumprod(x.astype(np.longdouble), axis=axis)
    ulp = np.spacing(exact.astype(np.float32)).astype(np.longdouble)
    assert got.dtype == np.float32
    assert float(np.max(np.abs(got.astype(np.longdouble) - exact) / ulp)) <= 0.5001


def test_cumsum_float32_adds_up_in_double():
    # float32(the float64 running sum): more accurate than NumPy's float32 chain
    x = np.random.default_rng(1).standard_normal(10_000).astype(np.float32)
    y = tg.cumsum(x).data
    assert y.dtype == np.float32
    assert np.array_equal(y, np.cumsum(x.astype(np.float64)).astype(np.float32))


@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4), (0, 3), (3, 0), (2, 300)])
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_scans_match_numpy_on_every_axis(name, shape):
    x = np.random.default_rng(2).uniform(0.5, 1.5, shape)
    for axis in [None] + list(range(len(shape))) + [-1] * bool(shape):
        got = getattr(tg, name)(x, axis=axis).data
        np.testing.assert_allclose(got, getattr(np, name)(x, axis=axis), rtol=1e-13, atol=0)
        assert got.shape == getattr(np, name)(x, axis=axis).shape


@pytest.mark.parametrize("name", ["prod", "var", "std"])
@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (2, 3, 5)])
def test_reductions_match_numpy(name, shape):
    x = np.random.default_rng(3).uniform(0.5, 1.5, shape)
    axes = [None] + list(range(len(shape))) + ([(0, len(shape) - 1)] if len(shape) > 1 else [])
    for axis in axes:
        for keepdims in (False, True):
            kw = {} if name == "prod" else {"ddof": 1 if x.size > 1 else 0}
            want = getattr(np, name)(x, axis=axis, keepdims=keepdims, **kw)
            got = getattr(tg, name)(x, axis=axis, keepdims=keepdims, **kw).data
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
            assert got.shape == np.shape(want)


def test_methods():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    v = tg.Variable(x)
    assert np.array_equal(v.cumsum().data, x.cumsum())
    assert np.array_equal(v.cumprod(axis=1).data, x.cumprod(axis=1))
    assert np.array_equal(v.prod(0, keepdims=True).data, x.prod(0, keepdims=True))
    np.testing.assert_allclose(v.var(ddof=1).data, x.var(ddof=1), rtol=1e-15)
    np.testing.assert_allclose(v.std(axis=(0, 1), ddof=0.5).data, x.std(axis=(0, 1), ddof=0.5), rtol=1e-15)


def test_var_ddof_at_or_past_n_gives_inf_or_nan_as_numpy():
    x = np.array([1.0, 2.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ddof in (3, 4):
            assert np.isinf(tg.var(x, ddof=ddof).data) and np.isinf(np.var(x, ddof=ddof))
        assert np.isnan(tg.var(np.ones(3), ddof=3).data) and np.isnan(np.var(np.ones(3), ddof=3))
        assert np.isnan(tg.std(np.ones(0)).data)


def test_empty_axes():
    x = np.ones((3, 0))
    assert np.array_equal(tg.prod(x, axis=1).data, np.ones(3))
    assert tg.cumsum(x, axis=1).shape == (3, 0)
    g = _grad(lambda v: tg.prod(v, axis=1), x)
    assert g.shape == (3, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(tg.var(x, axis=1).data).all()


def test_var_of_no_element_warns_as_the_composition_did():
    for f in (lambda v: tg.var(v, axis=1), lambda v: v.std(axis=1), lambda v: tg.std(v)):
        with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
            y = f(tg.Variable(np.ones((2, 0))))
        assert np.isnan(np.asarray(y.data)).all()


def test_axis_errors():
    with pytest.raises((ValueError, IndexError)):
        tg.cumsum(np.ones(3), axis=1)
    with pytest.raises(TypeError):
        tg.var(np.ones(3), ddof="1")


# ----- gradients at zeros: exact, no division by x ---------------------------------------------

ZEROS = [np.array([2.0, 3.0, 0.0, 5.0, -1.0]), np.array([0.0, 3.0, 0.0, 5.0, 7.0]),
         np.zeros(5), np.array([0.0]), np.array([4.0, -2.0, 3.0, 0.5, 7.0])]


@pytest.mark.parametrize("x", ZEROS, ids=["one-zero", "two-zeros", "all-zeros", "single", "no-zero"])
@pytest.mark.parametrize("create_graph", [False, True])
def test_prod_gradient_is_the_product_of_the_others(x, create_graph):
    want = np.array([np.prod(np.delete(x, i)) for i in range(x.size)])
    assert np.array_equal(_grad(tg.prod, x, create_graph=create_graph), want)


@pytest.mark.parametrize("x", ZEROS, ids=["one-zero", "two-zeros", "all-zeros", "single", "no-zero"])
@pytest.mark.parametrize("create_graph", [False, True])
def test_cumprod_gradient_exact_at_zeros(x, create_graph):
    g = np.array([1.0, -2.0, 3.0, 0.5, 2.0])[:x.size]
    n = x.size
    want = np.array([sum(g[j] * np.prod(np.delete(x[:j + 1], k)) for j in range(k, n)) for k in range(n)])
    assert np.array_equal(_grad(tg.cumprod, x, g, create_graph), want)


def test_cumprod_gradient_on_other_axes_and_batches():
    x = np.random.default_rng(4).uniform(-2, 2, (3, 4, 5))
    x[1, 2, 3] = x[2, 0, 1] = x[2, 1, 1] = 0.0
    g = np.random.default_rng(5).standard_normal((3, 4, 5))
    for axis in (0, 1, 2, None):
        t = torch.tensor(x, requires_grad=True)
        (torch.cumprod(t.reshape(-1), 0) if axis is None else torch.cumprod(t, axis)).backward(
            torch.tensor(g.reshape(-1) if axis is None else g))
        for cg in (False, True):
            np.testing.assert_allclose(_grad(lambda v: tg.cumprod(v, axis=axis),
                                             x, g.reshape(-1) if axis is None else g, cg),
                                       t.grad.numpy(), rtol=1e-12, atol=1e-13)


# ----- second order and JVPs against PyTorch ------------------------------------------------

CASES = {
    "cumsum": (lambda m, v: m.cumsum(v, axis=1), lambda t: torch.cumsum(t, 1)),
    "cumprod": (lambda m, v: m.cumprod(v, axis=0), lambda t: torch.cumprod(t, 0)),
    "cumprod-flat": (lambda m, v: m.cumprod(v), lambda t: torch.cumprod(t.reshape(-1), 0)),
    "prod": (lambda m, v: m.prod(v, axis=1), lambda t: torch.prod(t, 1)),
    "prod-all": (lambda m, v: m.prod(v), lambda t: torch.prod(t)),
    "var": (lambda m, v: m.var(v, axis=0, ddof=1), lambda t: torch.var(t, 0, correction=1)),
    "std": (lambda m, v: m.std(v, axis=1, keepdims=True), lambda t: torch.std(t, 1, correction=0, keepdim=True)),
    "std-all": (lambda m, v: m.std(v), lambda t: torch.std(t, correction=0)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_second_order_and_jvp_match_torch(name):
    f, tf = CASES[name]
    rng = np.random.default_rng(6)
    x = rng.uniform(-1.5, 1.5, (3, 4))
    if name.startswith(("prod", "cumprod")):
        x[1, 2] = 0.0  # exact through zeros
    w = rng.standard_normal(tf(torch.tensor(x)).shape)
    h = tg.hessian(lambda v: tg.sum(f(tg, v) * w), x)
    th = torch.autograd.functional.hessian(lambda t: (tf(t) * torch.tensor(w)).sum(), torch.tensor(x))
    np.testing.assert_allclose(np.asarray(h.data if hasattr(h, "data") else h), th.numpy(), rtol=1e-10, atol=1e-12)
    t = rng.standard_normal(x.shape)
    _, jt = tg.jvp(lambda v: f(tg, v), (x,), (t,))
    _, tjt = torch.autograd.functional.jvp(tf, torch.tensor(x), torch.tensor(t))
    np.testing.assert_allclose(np.asarray(jt.data if hasattr(jt, "data") else jt), tjt.numpy(), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("create_graph", [False, True])
def test_std_gradient_at_a_constant_input_is_zero_as_pytorch(create_graph):
    # (the old sqrt(var) composition gave NaN: sqrt'(0) = inf times 0)
    x = np.array([[2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    g = _grad(lambda v: tg.std(v, axis=1), x, create_graph=create_graph)
    t = torch.tensor(x, requires_grad=True)
    torch.std(t, 1, correction=0).sum().backward()
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-15, atol=0)
    assert (g[0] == 0).all()
    gx = tg.grad(lambda u: tg.sum(tg.grad(lambda w: tg.sum(tg.std(w, axis=1)))(u) ** 2))(x)
    assert np.isfinite(np.asarray(gx.data if hasattr(gx, "data") else gx)).all()


# ----- the same bits at every ISA build and thread count ---------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_on_every_isa_and_thread_count(dtype):
    rng = np.random.default_rng(7)
    xs = {"long": rng.uniform(0.999, 1.001, 300_000).astype(dtype),
          "rows": rng.uniform(0.9, 1.1, (600, 700)).astype(dtype)}
    before_isa, before_threads = _core._isa(), tg.get_num_threads()
    results = []
    try:
        for isa in ISAS:
            for threads in (1, 2):
                _core._set_isa(isa)
                tg.set_num_threads(threads)
                out = []
                for x in xs.values():
                    for name, f in [("cumsum", lambda v: tg.cumsum(v, axis=0)), ("cumsum", lambda v: tg.cumsum(v, axis=-1)),
                                    ("cumprod", lambda v: tg.cumprod(v, axis=0)), ("prod", tg.prod),
                                    ("prod", lambda v: tg.prod(v, axis=0)), ("var", tg.var),
                                    ("std", lambda v: tg.std(v, axis=-1, ddof=1))]:
                        v = tg.Variable(x, requires_grad=True)
                        y = f(v)
                        y.backward(tg.Variable(np.ones(y.shape, dtype)))
                        out += [np.asarray(y.data).tobytes(), np.asarray(v.grad).tobytes()]
                results.append(out)
    finally:
        _core._set_isa(before_isa)
        tg.set_num_threads(before_threads)
    assert all(r == results[0] for r in results)
