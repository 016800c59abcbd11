"""NumPy code differentiates as written: ``np.<name>(v)`` dispatches to tapegrad
through ``__array_ufunc__`` / ``__array_function__`` on both engines, and every
NumPy entry point that is not implemented raises instead of dropping the graph.

The NumPy names come from the op spec (``tapegrad._core.__ops__`` and
``__compositions__``); CASES says how to call each, and a parity test fails when
a spec name has no case. Each case is checked against NumPy's own function on
plain arrays (values), finite differences (gradcheck, first and second order for
smooth ones) and the reference engine (crosscheck: values, VJP, JVP).
"""
import copy
import inspect
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing.overrides import get_overridable_numpy_array_functions, get_overridable_numpy_ufuncs

import tapegrad as tg
from tapegrad.testing import crosscheck

ref = tg.reference
ENGINES = {"tapegrad": tg, "reference": ref}
SPEC = {**tg._core.__ops__, **tg._core.__compositions__}


def np_object(name):
    obj = np
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj


NUMPY_NAMES = {n: entry for entry in SPEC.values() for n in entry["numpy"] if np_object(n) is not None}

rng0 = np.random.default_rng(0)
IDX = np.array([[0, 2, 1], [1, 0, 0]])

def _dominant(a):
    """a (entries in [-1.5, 1.5]) + 6 I in a's dtype: a well-conditioned matrix."""
    return a + (6.0 * np.eye(a.shape[-1])).astype(a.dtype)


# name -> (call(f, *arrays), [input shapes], domain override or None)
U = (lambda f, x: f(x), [(2, 3)])
B = (lambda f, a, b: f(a, b), [(2, 3), (3,)])
CASES = {
    **{n: U for n in ["negative", "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "tan", "absolute", "abs",
                      "positive", "fabs", "square", "reciprocal", "exp2", "expm1", "log2", "log10", "cbrt", "sinh",
                      "cosh", "arcsinh", "arccosh", "arctanh", "deg2rad", "radians", "rad2deg", "degrees", "sign",
                      "floor", "ceil", "rint", "trunc", "fix", "isnan", "isfinite", "isinf", "signbit", "ravel",
                      "copy", "shape", "ndim", "size", "argmax", "argmin", "prod", "cumsum", "cumprod", "trace",
                      "diagonal", "tril", "triu", "squeeze", "atleast_1d", "atleast_3d", "flip"]},
    **{n: B for n in ["add", "subtract", "multiply", "divide", "true_divide", "power", "maximum", "minimum",
                      "float_power", "hypot", "logaddexp", "logaddexp2", "fmax", "fmin", "less", "less_equal",
                      "greater", "greater_equal", "equal", "not_equal", "inner", "outer"]},
    "round": (lambda f, x: f(x, 1), [(2, 3)]),
    "around": (lambda f, x: f(x, 1), [(2, 3)]),
    "clip": (lambda f, x: f(x, -0.5, 0.5), [(2, 3)]),
    "where": (lambda f, a, b: f(np.array([True, False, True]), a, b), [(2, 3), (3,)]),
    "sum": (lambda f, x: f(x, axis=1, keepdims=True), [(2, 3)]),
    "mean": (lambda f, x: f(x, axis=(0,)), [(2, 3)]),
    "max": (lambda f, x: f(x, axis=0), [(2, 3)]),
    "amax": (lambda f, x: f(x), [(2, 3)]),
    "min": (lambda f, x: f(x, axis=1), [(2, 3)]),
    "amin": (lambda f, x: f(x, keepdims=True), [(2, 3)]),
    "var": (lambda f, x: f(x, axis=0, ddof=1), [(3, 4)]),
    "std": (lambda f, x: f(x, axis=1, keepdims=True), [(3, 4)]),
    "average": (lambda f, x, w: f(x, axis=1, weights=w), [(2, 3), (3,)]),
    "linalg.norm": (lambda f, x: f(x, ord=1, axis=1), [(2, 3)]),
    "reshape": (lambda f, x: f(x, (3, 2)), [(2, 3)]),
    "transpose": (lambda f, x: f(x, (1, 0, 2)), [(2, 3, 2)]),
    "broadcast_to": (lambda f, x: f(x, (2, 2, 3)), [(2, 3)]),
    "concatenate": (lambda f, a, b: f([a, b], axis=1), [(2, 3), (2, 2)]),
    "stack": (lambda f, a, b: f([a, b], axis=-1), [(2, 3), (2, 3)]),
    "matmul": (lambda f, a, b: f(a, b), [(2, 3), (3, 4)]),
    "swapaxes": (lambda f, x: f(x, 0, 2), [(2, 3, 4)]),
    "moveaxis": (lambda f, x: f(x, [0, 1], [2, 0]), [(2, 3, 4)]),
    "expand_dims": (lambda f, x: f(x, (0, 3)), [(2, 3)]),
    "atleast_2d": (lambda f, a, b: f(a, b), [(), (3,)]),
    "hstack": (lambda f, a, b: f([a, b]), [(2, 3), (2, 1)]),
    "vstack": (lambda f, a, b: f((a, b)), [(3,), (2, 3)]),
    "split": (lambda f, x: f(x, 2, axis=1), [(2, 4)]),
    "array_split": (lambda f, x: f(x, [1, 4], axis=0), [(5, 2)]),
    "roll": (lambda f, x: f(x, (1, -2), axis=(0, 1)), [(3, 4)]),
    "tile": (lambda f, x: f(x, (2, 1, 2)), [(2, 3)]),
    "repeat": (lambda f, x: f(x, [1, 0, 2], axis=1), [(2, 3)]),
    "pad": (lambda f, x: f(x, ((1, 0), (2, 1)), constant_values=0.5), [(2, 3)]),
    "take": (lambda f, x: f(x, IDX, axis=1), [(2, 3)]),
    "take_along_axis": (lambda f, x: f(x, IDX, axis=1), [(2, 3)]),
    "diag": (lambda f, x: f(x, -1), [(3,)]),
    "dot": (lambda f, a, b: f(a, b), [(2, 3, 4), (5, 4, 2)]),
    "tensordot": (lambda f, a, b: f(a, b, axes=([1, 0], [2, 0])), [(3, 2, 4), (3, 5, 2)]),
    "vdot": (lambda f, a, b: f(a, b), [(2, 3), (3, 2)]),
    "einsum": (lambda f, a, b: f("...ij,jk->k...", a, b), [(2, 3, 4), (4, 2)]),
    "arcsin": U, "arccos": U, "arctan": U,
    "arctan2": (lambda f, a, b: f(a, b), [(2, 3), (3,)]),
    "linalg.inv": (lambda f, a: f(_dominant(a)), [(2, 3, 3)]),
    "linalg.det": (lambda f, a: f(_dominant(a)), [(2, 3, 3)]),
    "linalg.slogdet": (lambda f, a: f(_dominant(a) - (9.0 * np.eye(3)).astype(a.dtype)), [(3, 3)]),  # sign -1
    "linalg.solve": (lambda f, a, b: f(_dominant(a), b), [(3, 3), (2, 3, 2)]),
    "linalg.cholesky": (lambda f, a: f(np.matmul(a, np.swapaxes(a, -1, -2)) + (3.0 * np.eye(3)).astype(a.dtype)),
                        [(2, 3, 3)]),
}
for _n in ("trace", "diagonal", "tril", "triu"):
    CASES[_n] = (lambda f, x, _n=_n: f(x, 1) if _n in ("tril", "triu") else f(x, 1), [(3, 4)])
CASES["squeeze"] = (lambda f, x: f(x, axis=1), [(2, 1, 3)])
CASES["prod"] = (lambda f, x: f(x, axis=1), [(2, 5)])
CASES["cumprod"] = (lambda f, x: f(x, axis=1), [(2, 5)])
CASES["cumsum"] = (lambda f, x: f(x), [(2, 5)])
CASES["flip"] = (lambda f, x: f(x, axis=1), [(2, 3)])
CASES["argmax"] = (lambda f, x: f(x, axis=1), [(2, 3)])


def draw(name, shapes, dtype=np.float64, rng=None):
    rng = rng or np.random.default_rng(1)
    domain = NUMPY_NAMES[name]["domain"]
    out = []
    for s in shapes:
        if domain == "positive":
            x = rng.uniform(0.5, 2.0, s)
        elif domain == "nonzero":
            x = rng.uniform(0.5, 2.0, s) * rng.choice([-1, 1], s)
        elif isinstance(domain, list):
            x = rng.uniform(*domain, s)
        else:
            x = rng.uniform(-1.5, 1.5, s)
        out.append(np.asarray(x, dtype))
    return out


def test_every_numpy_name_of_the_spec_has_a_case():
    assert sorted(set(NUMPY_NAMES) - set(CASES)) == []
    assert sorted(set(CASES) - set(NUMPY_NAMES)) == []


def test_reference_names_match_the_spec():
    from tapegrad.reference.numpy_protocol import NUMPY_NAMES as REF
    spec = sorted(n if n == e["name"] else f"{n}:{e['name']}" for e in SPEC.values() for n in e["numpy"])
    assert sorted(REF) == spec
    assert sorted(ref.COMPOSITIONS) == sorted(tg._core.__compositions__)
    methods = {n for n, e in tg._core.__compositions__.items() if e["method"]}
    assert {n for n in methods if callable(getattr(ref.Variable, n, None))} == methods
    assert {n for n in methods if callable(getattr(tg.Variable, n, None))} == methods


def as_plain(x):
    if isinstance(x, (tg.Variable, ref.Variable)):
        return x.data
    if isinstance(x, (list, tuple)):
        return type(x)(as_plain(y) for y in x)
    return x


def _total(out, weights):
    """A scalar of out (a Variable, or a list of them) with fixed weights."""
    outs = out if isinstance(out, (list, tuple)) else [out]
    total = 0.0
    for o, w in zip(outs, weights):
        total = total + (o * w).sum()
    return total


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_value_matches_numpy(engine, dtype, name):
    m = ENGINES[engine]
    call, shapes = CASES[name]
    arrays = draw(name, shapes, dtype)
    fn = np_object(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # np.row_stack, np.fix
        want = call(fn, *arrays)
        vs = [m.Variable(a, requires_grad=True) for a in arrays]
        got = call(fn, *vs)
    deriv = NUMPY_NAMES[name]["deriv"] if "deriv" in NUMPY_NAMES[name] and NUMPY_NAMES[name].get(
        "family") not in ("elementwise",) else "smooth"
    if NUMPY_NAMES[name] in tg._core.__compositions__.values() and NUMPY_NAMES[name]["deriv"] == "none":
        assert not isinstance(got, (tg.Variable, ref.Variable))
        np.testing.assert_array_equal(got, want)
        return
    del deriv
    gots = got if isinstance(got, (list, tuple)) else [got]
    wants = want if isinstance(want, (list, tuple)) else [want]
    assert len(gots) == len(wants)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for g, w in zip(gots, wants):
        assert isinstance(g, m.Variable), type(g)
        assert g.shape == np.shape(w), (g.shape, np.shape(w))
        if np.result_type(w) in (np.float32, np.float64):
            assert g.dtype == np.result_type(w), (g.dtype, np.result_type(w))
        np.testing.assert_allclose(g.data, w, rtol=tol, atol=tol)


SMOOTH = sorted(n for n in CASES if NUMPY_NAMES[n].get("deriv") not in ("none", "zero"))


@pytest.mark.parametrize("name", SMOOTH)
def test_derivatives_against_reference_and_finite_differences(name):
    call, shapes = CASES[name]
    arrays = draw(name, shapes)
    fn = np_object(name)
    out = call(fn, *arrays)
    outs = out if isinstance(out, (list, tuple)) else [out]
    weights = [np.random.default_rng(2).normal(size=np.shape(o)) for o in outs]

    def f(*vs):
        return _total(call(fn, *vs), weights)

    report = crosscheck(lambda engine, *vs: f(*vs), *arrays)
    assert report, report
    order = 1 if name in ("max", "min", "amax", "amin", "maximum", "minimum", "fmax", "fmin", "clip",
                          "abs", "absolute", "fabs", "linalg.norm") else 2
    assert tg.gradcheck(f, tuple(arrays), order=order)


@pytest.mark.parametrize("name", sorted(n for n in CASES if NUMPY_NAMES[n].get("deriv") == "zero"))
def test_piecewise_constant_has_zero_derivative_on_the_graph(name):
    call, shapes = CASES[name]
    x = tg.Variable(draw(name, shapes)[0], requires_grad=True)
    y = call(np_object(name), x)
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros_like(x.data))


# ----- the issue's snippets and functions written only with np.* ------------------------------
@pytest.mark.parametrize("engine", list(ENGINES))
def test_issue_snippets_give_true_gradients(engine):
    m = ENGINES[engine]
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(m.grad(lambda v: np.dot(v, v) * v.sum())(x), [11.0, 17.0])
    np.testing.assert_allclose(m.grad(lambda v: np.concatenate([v, v]) @ m.concatenate([v, v]))(x), [4.0, 8.0])


def mlp_loss(W, b, x, y):
    h = np.tanh(np.dot(x, W) + b)
    return np.mean((h - y) ** 2)


def softmax_regression(W, X, Y):
    z = X @ W
    z = z - np.max(z, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.mean(np.sum(Y * logp, axis=1))


def gaussian_loglik(mu, log_sigma, x):
    # diagonal covariance (gaussian_loglik_full below: a full one, through slogdet and solve)
    sigma = np.exp(log_sigma)
    z = (x - mu) / sigma
    return -0.5 * np.sum(z ** 2) - x.shape[0] * np.sum(np.log(sigma)) - 0.5 * np.size(x) * np.log(2 * np.pi)


def gaussian_loglik_full(L, mu, x):
    """Log-likelihood of the rows of x under N(mu, L L^T + I/2), with np.linalg.slogdet and solve."""
    cov = L @ L.T + 0.5 * np.eye(L.shape[0])
    d = x - mu
    _, logdet = np.linalg.slogdet(cov)
    z = np.linalg.solve(cov, d.T)
    return -0.5 * np.sum(d.T * z) - 0.5 * x.shape[0] * logdet - 0.5 * np.size(x) * np.log(2 * np.pi)


def rk4(y0, k):
    def f(y):
        return -k * y + np.sin(y)
    y, h = y0, 0.1
    for _ in range(5):
        k1 = f(y)
        k2 = f(y + h / 2 * k1)
        k3 = f(y + h / 2 * k2)
        k4 = f(y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return np.sum(y ** 2)


def cofactor_det(A):
    n = np.shape(A)[0]
    if n == 1:
        return A[0, 0]
    total = 0.0
    for j in range(n):
        minor = np.hstack([A[1:, :j], A[1:, j + 1:]])
        total = total + (-1) ** j * A[0, j] * cofactor_det(minor)
    return total


_r = np.random.default_rng(3)
MODELS = {
    "mlp": (mlp_loss, [_r.normal(size=(3, 4)), _r.normal(size=4), _r.normal(size=(5, 3)), _r.normal(size=(5, 4))]),
    "softmax_regression": (softmax_regression, [_r.normal(size=(3, 4)), _r.normal(size=(6, 3)),
                                                np.eye(4)[_r.integers(0, 4, 6)]]),
    "gaussian": (gaussian_loglik, [_r.normal(size=3), _r.normal(size=3) * 0.3, _r.normal(size=(4, 3))]),
    "gaussian_full": (gaussian_loglik_full, [_r.normal(size=(3, 3)), _r.normal(size=3), _r.normal(size=(4, 3))]),
    "rk4": (rk4, [_r.normal(size=3), np.array(0.7)]),
    "cofactor_det": (cofactor_det, [_r.normal(size=(4, 4))]),
}


@pytest.mark.parametrize("model", list(MODELS))
def test_numpy_written_functions_in_every_mode(model):
    f, args = MODELS[model]
    assert crosscheck(lambda engine, *vs: f(*vs), *args)
    assert tg.gradcheck(f, tuple(args), order=2, modes=("reverse", "forward"))
    x0, rest = args[0], args[1:]
    g = lambda x: f(x, *rest)  # noqa: E731
    for m in (tg, ref):
        gr = m.grad(g)(x0)
        _, jv = m.jvp(g, (x0,), (np.ones_like(x0),))
        np.testing.assert_allclose(np.sum(gr), jv, rtol=1e-10, atol=1e-12)
        _, pull = m.vjp(g, x0)
        np.testing.assert_allclose(pull(np.array(1.0))[0], gr, rtol=1e-10, atol=1e-12)
        for mode in ("forward", "reverse"):
            np.testing.assert_allclose(m.jacobian(g, x0, mode=mode), gr, rtol=1e-10, atol=1e-12)
        H = m.hessian(g, x0)
        u = np.random.default_rng(4).normal(size=x0.shape)
        np.testing.assert_allclose(m.hvp(g, x0, u), np.tensordot(H, u, u.ndim), rtol=1e-9, atol=1e-10)
    # backward(create_graph=True): the gradient's own gradient is the Hessian's row sums
    x = tg.Variable(x0, requires_grad=True)
    g(x).backward(create_graph=True)
    (x.grad * 1.0).sum().backward()
    H = tg.hessian(g, x0)
    np.testing.assert_allclose(x.grad.data if isinstance(x.grad, tg.Variable) else x.grad,
                               tg.grad(g)(x0) + H.reshape(x0.size, x0.size).sum(0).reshape(x0.shape),
                               rtol=1e-9, atol=1e-10)


def test_numpy_written_functions_match_torch():
    torch = pytest.importorskip("torch")
    W, b, x, y = MODELS["mlp"][1]
    tW, tb = torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)
    loss = torch.mean((torch.tanh(torch.tensor(x) @ tW + tb) - torch.tensor(y)) ** 2)
    loss.backward()
    gW, gb = tg.grad(mlp_loss, argnums=(0, 1))(W, b, x, y)
    np.testing.assert_allclose(gW, tW.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-12)
    L, mu, x = MODELS["gaussian_full"][1]
    tL, tmu = torch.tensor(L, requires_grad=True), torch.tensor(mu, requires_grad=True)
    cov = tL @ tL.T + 0.5 * torch.eye(3, dtype=torch.float64)
    d = torch.tensor(x) - tmu
    ll = (-0.5 * torch.sum(d.T * torch.linalg.solve(cov, d.T)) - 0.5 * x.shape[0] * torch.linalg.slogdet(cov)[1]
          - 0.5 * x.size * np.log(2 * np.pi))
    ll.backward()
    gL, gmu = tg.grad(gaussian_loglik_full, argnums=(0, 1))(L, mu, x)
    np.testing.assert_allclose(gaussian_loglik_full(L, mu, x), ll.item(), rtol=1e-12)
    np.testing.assert_allclose(gL, tL.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gmu, tmu.grad.numpy(), rtol=1e-10)
    A = MODELS["cofactor_det"][1][0]
    tA = torch.tensor(A, requires_grad=True)
    torch.linalg.det(tA).backward()
    np.testing.assert_allclose(tg.grad(cofactor_det)(A), tA.grad.numpy(), rtol=1e-10)


# ----- hypothesis: random shapes (0-d, size 1, size 0) ----------------------------------------------
shapes = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, name=st.sampled_from(["square", "expm1", "sinh", "cosh", "arcsinh", "cbrt", "exp2",
                                           "logaddexp", "hypot", "fmax", "log2", "reciprocal"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_random_shapes_elementwise(shape, name, dtype, seed):
    arrays = draw(name, [shape] * NUMPY_NAMES[name]["args"].__len__(), dtype, np.random.default_rng(seed))
    fn = np_object(name)
    want = fn(*arrays)
    # float32: one rounding of an intermediate as large as the inputs (logaddexp's max(a, b) + log1p(..)
    # cancels to a result near 0: seed 3, (2, 3) was 0.5 ulp of 1 off, 3.4e-6 relative, in the reference)
    atol = 1e-30 if dtype == np.float64 else np.finfo(np.float32).eps * max([1.0] + [np.abs(a).max(initial=0)
                                                                                   for a in arrays])
    for m in (tg, ref):
        vs = [m.Variable(a, requires_grad=True) for a in arrays]
        got = fn(*vs)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got.data, want, rtol=1e-12 if dtype == np.float64 else 3e-6, atol=atol)
        got.sum().backward()
    vs64 = [a.astype(np.float64) for a in arrays]
    if all(a.size for a in vs64):
        assert crosscheck(lambda engine, *vs: fn(*vs), *vs64)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple), data=st.data())
def test_random_shapes_reductions(shape, data):
    name = data.draw(st.sampled_from(["prod", "var", "std", "cumsum", "cumprod", "linalg.norm", "trace"]))
    if name == "trace" and len(shape) < 2:
        shape = shape + (2,)
    axis = data.draw(st.sampled_from([None] + list(range(-len(shape), len(shape)))))
    x = np.random.default_rng(len(shape)).uniform(0.5, 1.5, shape)
    fn = np_object(name)
    kw = {} if name == "trace" else {"axis": axis}
    if name == "linalg.norm" and axis is None and len(shape) > 2:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = fn(x, **kw)
        for m in (tg, ref):
            got = fn(m.Variable(x, requires_grad=True), **kw)
            np.testing.assert_allclose(got.data, want, rtol=1e-12, atol=1e-14)
    if x.size and name not in ("std",) and np.all(np.isfinite(want)):
        assert crosscheck(lambda engine, v: fn(v, **kw), x)


# ----- what does not dispatch raises -----------------------------------------------------------
def _call_with_variables(fn, v):
    """fn with one, two, then three Variable arguments, until it is not a missing-argument error."""
    last = None
    for n in (1, 2, 3, 4):
        try:
            return fn(*([v] * n)), None
        except TypeError as e:
            last = e
            if "missing" in str(e) and "argument" in str(e):
                continue
            return None, e
        except Exception as e:  # noqa: BLE001  (a dispatched function may refuse these arguments)
            return None, e
    return None, last


# Functions that dispatch only on like= (the Variable lands where NumPy wants a shape, a file or a
# buffer, and NumPy refuses it first); with like= they reach our __array_function__ and raise.
NOT_AN_ARRAY_ARGUMENT = {"empty", "eye", "frombuffer", "fromfile", "fromfunction", "fromiter", "fromstring",
                         "genfromtxt", "identity", "loadtxt", "ones", "savez", "savez_compressed", "tri", "zeros"}


@pytest.mark.parametrize("engine", list(ENGINES))
def test_creation_functions_with_like_raise(engine):
    v = ENGINES[engine].Variable([1.0], requires_grad=True)
    for call in (lambda: np.zeros(2, like=v), lambda: np.ones(2, like=v), lambda: np.empty(2, like=v),
                 lambda: np.eye(2, like=v), lambda: np.identity(2, like=v), lambda: np.tri(2, like=v)):
        with pytest.raises(TypeError, match="not implemented for tapegrad"):
            call()


@pytest.mark.parametrize("engine", list(ENGINES))
def test_every_overridable_numpy_function_dispatches_or_raises(engine):
    m = ENGINES[engine]
    implemented = {np_object(n) for n in NUMPY_NAMES}
    funcs = sorted(get_overridable_numpy_array_functions(), key=lambda f: f"{f.__module__}.{f.__name__}")
    for fn in funcs:
        v = m.Variable(np.array([[0.5, 0.25], [0.75, 1.0]]), requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, err = _call_with_variables(fn, v)
        name = f"{fn.__module__}.{fn.__name__}"
        if fn in implemented:
            continue  # checked by test_value_matches_numpy
        assert out is None, name
        if fn.__name__ in NOT_AN_ARRAY_ARGUMENT:
            assert err is not None, name  # NumPy itself refuses a Variable as a shape, file or buffer
            continue
        assert isinstance(err, TypeError), f"{name}: {out!r} {err!r}"
        assert "not implemented for tapegrad" in str(err) or "requires grad" in str(err), f"{name}: {err}"
        assert out is None


@pytest.mark.parametrize("engine", list(ENGINES))
def test_every_overridable_ufunc_dispatches_or_raises(engine):
    m = ENGINES[engine]
    for uf in sorted(get_overridable_numpy_ufuncs(), key=lambda u: u.__name__):
        v = m.Variable(np.array([0.5, 0.25]), requires_grad=True)
        if uf in {np_object(n) for n in NUMPY_NAMES}:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # arccosh(0.5) is nan
                out = uf(*([v] * uf.nin))
            assert isinstance(out, (m.Variable, np.ndarray)) and not (
                isinstance(out, np.ndarray) and out.dtype.kind == "f"), uf
            continue
        with pytest.raises(TypeError, match="not implemented for tapegrad"):
            uf(*([v] * uf.nin))


def test_the_not_implemented_message_names_the_nearest_tapegrad_function():
    v = tg.Variable([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"np\.nansum .*tapegrad\.sum|np\.nansum.*nearest"):
        np.nansum(v)
    with pytest.raises(TypeError, match=r"np\.spacing "):
        np.spacing(v)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_arguments_that_cannot_be_honoured_raise_naming_them(engine):
    m = ENGINES[engine]
    v = m.Variable([1.0, 2.0], requires_grad=True)
    for call, what in [
        (lambda: np.sum(v, out=np.zeros(())), "out"),
        (lambda: np.mean(v, where=np.array([True, False])), "where"),
        (lambda: np.max(v, initial=3.0), "initial"),
        (lambda: np.add(v, v, out=np.zeros(2)), "out"),
        (lambda: np.exp(v, where=np.array([True, False])), "where"),
        (lambda: np.add.reduce(v), "reduce"),
        (lambda: np.concatenate([v, v], dtype=np.float32), "dtype"),
        (lambda: np.sum(v, dtype=np.int64), "int64"),
    ]:
        with pytest.raises(TypeError, match=what):
            call()


@pytest.mark.parametrize("engine", list(ENGINES))
def test_dtype_argument_casts_on_the_graph(engine):
    m = ENGINES[engine]
    v = m.Variable(np.array([1.0, 2.0], np.float32), requires_grad=True)
    s = np.sum(v, dtype=np.float64)
    assert s.dtype == np.float64
    s.backward()
    np.testing.assert_array_equal(v.grad, [1.0, 1.0])


@pytest.mark.parametrize("engine", list(ENGINES))
def test_array_of_a_variable_that_requires_grad_raises(engine):
    m = ENGINES[engine]
    v = m.Variable([1.0, 2.0], requires_grad=True)
    for conv in (np.asarray, np.array, lambda x: np.array([x, x]), lambda x: np.sum([x, x])):
        with pytest.raises(TypeError, match=r"\.data.*\.numpy\(\).*\.detach\(\)"):
            conv(v)
    with pytest.raises(TypeError, match="requires grad"):
        np.asarray(v * 2)  # a non-leaf on the graph
    d = v.detach()
    a = np.asarray(d)
    assert np.shares_memory(a, v.data)  # zero-copy outside the graph
    with m.no_grad():
        w = v * 2
    np.testing.assert_array_equal(np.asarray(w), [2.0, 4.0])


@pytest.mark.parametrize("engine", list(ENGINES))
def test_constants_mix_on_either_side(engine):
    m = ENGINES[engine]
    v = m.Variable([1.0, 2.0], requires_grad=True)
    for out in (np.add(np.array([1.0, 1.0]), v), np.maximum(1.5, v), np.dot(np.ones(2), v), np.hypot(3.0, v),
                np.where([True, False], np.zeros(2), v), np.concatenate([np.zeros(1), v])):
        assert isinstance(out, m.Variable) and out.requires_grad
    v32 = m.Variable(np.array([1.0, 2.0], np.float32))
    assert np.logaddexp(v32, 1.0).dtype == np.float32  # Python numbers keep the Variable's dtype
    assert np.hypot(2.0, v32).dtype == np.float32


def test_mixed_engines_are_refused():
    with pytest.raises(TypeError):
        np.concatenate([tg.Variable([1.0]), ref.Variable([1.0])])


def test_methods_follow_numpy():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    for m in (tg, ref):
        v = m.Variable(x, requires_grad=True)
        np.testing.assert_allclose(v.prod().data, x.prod())
        np.testing.assert_allclose(v.std(axis=0, ddof=1).data, x.std(axis=0, ddof=1))
        np.testing.assert_array_equal(v.argmax(axis=1), x.argmax(axis=1))
        np.testing.assert_allclose(v.cumsum(axis=1).data, x.cumsum(axis=1))
        assert v.reshape(1, 2, 3).squeeze().shape == (2, 3)


def test_signatures_are_numpy_s():
    for name in ("sum", "var", "linalg.norm", "concatenate", "take"):
        fn = tg._numpy_dispatch._FUNCTIONS[np_object(name)]
        want = tg._numpy_dispatch._numpy_signature(name, np_object(name))  # (NumPy < 2.1: concatenate has none)
        assert inspect.signature(fn) == want, name


def test_copy_is_a_new_buffer_on_the_graph():
    v = tg.Variable([1.0, 2.0], requires_grad=True)
    c = np.copy(v)
    assert c.requires_grad and not np.shares_memory(c.data, v.data)
    assert copy is not None


@pytest.mark.parametrize("engine", list(ENGINES))
def test_zero_d_variables_work_where_python_wants_a_number(engine):
    m = ENGINES[engine]
    loss = m.Variable(2.34567, requires_grad=True)
    assert f"{loss:.2f}" == "2.35" and f"{loss}" == str(loss)
    assert int(m.Variable(3.7)) == 3 and round(m.Variable(2.5)) == 2 and isinstance(round(loss), int)
    r = round(loss, 2)
    assert isinstance(r, m.Variable) and r.item() == 2.35
    assert loss.tolist() == 2.34567 and m.Variable([[1.0, 2.0]]).tolist() == [[1.0, 2.0]]
    v = m.Variable([1.0, 2.0])
    with pytest.raises(TypeError):
        f"{v:.2f}"
    with pytest.raises(TypeError, match=r"int\(\): only 0-d Variables .*\(2,\)"):
        int(v)
    assert [x.item() for x in v] == [1.0, 2.0] and len(v) == 2
    # int() truncates toward zero and raises on NaN / inf, as int(float) does
    for dtype in ("float32", "float64"):
        assert int(m.Variable(-2.7, dtype=dtype)) == -2 and type(int(m.Variable(2.0, dtype=dtype))) is int
        assert int(m.Variable(1e20, dtype=dtype)) == int(np.array(1e20, dtype=dtype).item())
        with pytest.raises(ValueError):
            int(m.Variable(float("nan"), dtype=dtype))
        with pytest.raises(OverflowError):
            int(m.Variable(float("-inf"), dtype=dtype))
    assert int(m.Variable(3.5, requires_grad=True) * 2) == 7


@pytest.mark.parametrize("engine", list(ENGINES))
def test_copy_deepcopy_and_pickle_keep_values_and_flag_but_never_the_graph(engine):
    import pickle
    m = ENGINES[engine]
    x = m.Variable(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x * 2
    for clone in (copy.copy, copy.deepcopy, lambda v: pickle.loads(pickle.dumps(v))):
        for v in (x, y):
            c = clone(v)
            assert type(c) is m.Variable and c.dtype == np.float32 and c.requires_grad
            assert c.is_leaf and c.grad_fn is None and c.grad is None
            np.testing.assert_array_equal(c.data, v.data)
            assert not np.shares_memory(c.data, v.data)
    model = tg.nn.Linear(3, 2) if engine == "tapegrad" else None
    if model is not None:
        twin = copy.deepcopy(model)
        for (n, p), (n2, p2) in zip(model.named_parameters(), twin.named_parameters()):
            assert n == n2 and p is not p2 and p2.requires_grad
            np.testing.assert_array_equal(p.data, p2.data)
        pickle.loads(pickle.dumps(model))


def test_signatures_older_numpy_lacks_match_numpy_where_it_has_them():
    # NumPy < 2.1 gives no signature for these C functions; the table stands in for it there
    import inspect
    from tapegrad import _numpy_dispatch as nd
    for name, text in nd._NO_TEXT_SIGNATURE.items():
        try:
            sig = inspect.signature(getattr(np, name))
        except ValueError:
            continue  # an older NumPy: nothing to compare with
        assert str(sig) == text, (name, str(sig), text)
