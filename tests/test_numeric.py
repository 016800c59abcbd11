"""tapegrad.numeric: finite differences and the complex step (docs/NUMERIC.md).

* Every method on smooth functions with known derivatives, at |x| from 1e-6
  to 1e6, within the bounds documented in docs/NUMERIC.md (BOUNDS below);
  the complex step within 1e-13·max(1, |f'|).
* Richardson extrapolation improves on one step; error estimates cover the
  actual error.
* Gradients, Jacobians, Hessians and directional derivatives of functions
  of arrays; call counts (n+1, 2n, n).
* Step sizes: relative to |x|, ε^(1/2) / ε^(1/3) / ε^(1/4), exact steps.
* float32: evaluated in float64 unless f forbids it, and the result says so.
* Errors.
"""
import numpy as np
import pytest

import tapegrad
from tapegrad import numeric

EPS = np.finfo(np.float64).eps

# Documented worst relative errors (docs/NUMERIC.md, "Measured accuracy"):
# about 3-10x the measured maximum of numeric.accuracy_report().
FIRST_BOUNDS = {
    ("central", 0): 1e-9, ("central", 1): 2e-11, ("central", 2): 1e-11,
    ("forward", 0): 3e-7, ("forward", 1): 5e-9, ("forward", 2): 1e-9,
    ("backward", 0): 3e-7, ("backward", 1): 5e-9, ("backward", 2): 1e-9,
}
HESSIAN_BOUNDS = {
    ("central", 0): 3e-7, ("central", 1): 1e-8, ("central", 2): 3e-9,
    ("forward", 0): 1e-4, ("forward", 1): 3e-6, ("forward", 2): 5e-7,
    ("backward", 0): 1e-4, ("backward", 1): 3e-6, ("backward", 2): 5e-7,
    ("complex", 0): 3e-10, ("complex", 1): 5e-12, ("complex", 2): 2e-12,
}
COMPLEX_ABS = 1e-13  # |D - f'| <= 1e-13 * max(1, |f'|)

# Functions with known derivatives, other than the survey's, at large and tiny |x|.
CASES = [
    ("cosh", np.cosh, np.sinh, (-1.7, 0.4, 2.2)),
    ("x*exp(-x)", lambda x: x * np.exp(-x), lambda x: (1 - x) * np.exp(-x), (0.4, 3.0)),
    ("arctan", np.arctan, lambda x: 1 / (1 + x * x), (-2.0, 0.6, 40.0)),
    ("1/x", lambda x: 1 / x, lambda x: -1 / (x * x), (-3e-4, 1e-6, 7.0, 1e6)),
    ("x**2.5", lambda x: x ** 2.5, lambda x: 2.5 * x ** 1.5, (1e-6, 0.9, 1e6)),
    ("log(x)", np.log, lambda x: 1 / x, (1e-6, 1e6)),
    ("sin(x**2)", lambda x: np.sin(x * x), lambda x: 2 * x * np.cos(x * x), (0.8, 1.3)),
    ("exp(x/1e6)", lambda x: np.exp(x / 1e6), lambda x: np.exp(x / 1e6) / 1e6, (2e6,)),
    ("x**3 at tiny", lambda x: x ** 3, lambda x: 3 * x * x, (-2e-6, 3e-6)),
]
POINTS = [(name, f, df, p) for name, f, df, pts in CASES for p in pts]
POINT_IDS = [f"{name}@{p:g}" for name, _, _, p in POINTS]


# ---------------------------------------------------------------------------
# First derivatives of smooth scalar functions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,richardson", sorted(FIRST_BOUNDS))
@pytest.mark.parametrize("name,f,df,x", POINTS, ids=POINT_IDS)
def test_first_derivative_within_documented_bound(name, f, df, x, method, richardson):
    d = numeric.derivative(f, x, method=method, richardson=richardson)
    exact = df(x)
    assert d.dtype == np.float64 and d.shape == ()
    assert abs(d - exact) <= FIRST_BOUNDS[method, richardson] * abs(exact), (d, exact)


@pytest.mark.parametrize("richardson", [0, 1])
@pytest.mark.parametrize("name,f,df,x", POINTS, ids=POINT_IDS)
def test_complex_step_exact_to_rounding(name, f, df, x, richardson):
    exact = df(x)
    d = numeric.derivative(f, x, method="complex", richardson=richardson)
    assert abs(d - exact) <= COMPLEX_ABS * max(1.0, abs(exact)), (d, exact)


def test_survey_within_documented_bounds():
    """The survey docs/NUMERIC.md quotes stays within the documented bounds."""
    rows = numeric.accuracy_report()
    assert len(rows) == 2 * len(numeric.METHODS) * 3
    for r in rows:
        key = (r["method"], r["richardson"])
        if r["kind"] == "derivative":
            bound = 1e-15 if r["method"] == "complex" else FIRST_BOUNDS[key]
        else:
            bound = HESSIAN_BOUNDS[key]
        assert r["max_rel_error"] <= bound, r
    table = numeric.format_accuracy_report(rows)
    assert table.startswith("| quantity | method |") and table.count("\n") == len(rows) + 1


@pytest.mark.parametrize("method", ["central", "forward", "backward"])
def test_richardson_improves_on_one_step(method):
    def worst(k):
        return max(abs(numeric.derivative(f, x, method=method, richardson=k) - df(x)) / abs(df(x))
                   for _, f, df, x in POINTS)

    e0, e1, e2 = worst(0), worst(1), worst(2)
    assert e1 < e0 / 10 and e2 < e0 / 10


@pytest.mark.parametrize("method", numeric.METHODS)
@pytest.mark.parametrize("richardson", [0, 1, 2])
@pytest.mark.parametrize("name,f,df,x", POINTS[::2], ids=POINT_IDS[::2])
def test_error_estimate_covers_the_error(name, f, df, x, method, richardson):
    r = numeric.derivative(f, x, method=method, richardson=richardson, full_output=True)
    exact = df(x)
    # the rounding part assumes f correctly rounded; composite f (x**2.5 = exp(2.5 log x)) is off by a few ulps
    assert abs(r.value - exact) <= max(r.error, 16 * EPS * abs(exact)), (r.value, exact, r.error)
    # and is not absurdly pessimistic (a useful estimate)
    assert r.error <= 1e-4 * abs(exact)


def test_error_estimate_is_free_with_rounding_only():
    full = numeric.derivative(np.sin, 0.5, full_output=True)
    cheap = numeric.derivative(np.sin, 0.5, full_output="rounding")
    assert full.n_evals == 5 and cheap.n_evals == 3  # f(x), f(x±h), and f(x±2h) for the estimate
    assert cheap.value == full.value
    assert 0 < cheap.error <= full.error


# ---------------------------------------------------------------------------
# Shapes: elementwise derivatives, gradients, Jacobians, Hessians
# ---------------------------------------------------------------------------

def test_derivative_elementwise_over_an_array():
    x = np.linspace(-2, 2, 7).reshape(7)
    for method in numeric.METHODS:
        d = numeric.derivative(np.tanh, x, method=method)
        np.testing.assert_allclose(d, 1 - np.tanh(x) ** 2, rtol=1e-6, atol=1e-12)


def test_derivative_of_a_vector_valued_function_of_a_scalar():
    d = numeric.derivative(lambda t: np.array([np.sin(t), t ** 2, 3.0]), 0.5)
    np.testing.assert_allclose(d, [np.cos(0.5), 1.0, 0.0], rtol=1e-9, atol=1e-12)


def test_derivative_rejects_non_elementwise_array_functions():
    with pytest.raises(ValueError, match="elementwise.*use jacobian"):
        numeric.derivative(lambda x: np.array([x.sum(), 1.0, 2.0]), np.ones(2))


def _mlp(x):
    A = np.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.1]])
    return np.tanh(A @ x) * np.exp(x[0])


def _mlp_jacobian(x):
    A = np.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.1]])
    t = np.tanh(A @ x)
    J = (1 - t ** 2)[:, None] * A * np.exp(x[0])
    J[:, 0] += t * np.exp(x[0])
    return J


@pytest.mark.parametrize("method", numeric.METHODS)
def test_jacobian(method):
    x = np.array([0.2, -0.5, 1.1])
    J = numeric.jacobian(_mlp, x, method=method)
    assert J.shape == (2, 3)
    np.testing.assert_allclose(J, _mlp_jacobian(x), rtol=3e-7 if method in ("forward", "backward") else 1e-9,
                               atol=1e-12)


def test_jacobian_shapes_of_matrices():
    x = np.arange(6.0).reshape(2, 3) / 7
    J = numeric.jacobian(lambda m: np.sin(m).T, x)
    assert J.shape == (3, 2, 2, 3)
    expected = np.zeros((3, 2, 2, 3))
    for i in range(2):
        for j in range(3):
            expected[j, i, i, j] = np.cos(x[i, j])
    np.testing.assert_allclose(J, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", numeric.METHODS)
def test_gradient_matches_tapegrad(method):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 2))

    def f_np(a):
        return np.sum(np.sin(a) * a ** 2) + np.prod(np.cos(a[0]))

    def f_tg(a):
        return tapegrad.sum(tapegrad.sin(a) * a ** 2) + tapegrad.cos(a[0, 0]) * tapegrad.cos(a[0, 1])

    g = numeric.gradient(f_np, x, method=method)
    assert g.shape == x.shape
    ad = tapegrad.grad(f_tg)(x)
    np.testing.assert_allclose(g, ad, rtol=3e-7 if method in ("forward", "backward") else 1e-9, atol=1e-9)


def test_gradient_requires_a_scalar():
    with pytest.raises(ValueError, match="gradient: f must return a scalar.*shape \\(2,\\)"):
        numeric.gradient(lambda x: x * 2, np.ones(2))
    with pytest.raises(ValueError, match="hessian: f must return a scalar"):
        numeric.hessian(lambda x: x * 2, np.ones(2))


@pytest.mark.parametrize("method", numeric.METHODS)
@pytest.mark.parametrize("richardson", [0, 1])
def test_hessian_matches_tapegrad(method, richardson):
    x = np.array([[0.3, -0.8], [1.2, 0.5]])

    def f_np(a):
        return np.sum(np.exp(a[0]) * np.sin(a[1])) + np.sum(a ** 3) * a[0, 0]

    def f_tg(a):
        return tapegrad.sum(tapegrad.exp(a[0]) * tapegrad.sin(a[1])) + tapegrad.sum(a ** 3) * a[0, 0]

    H = numeric.hessian(f_np, x, method=method, richardson=richardson)
    assert H.shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(H.reshape(4, 4), H.reshape(4, 4).T)  # symmetric by construction
    ad = tapegrad.hessian(f_tg, x)
    scale = np.abs(ad).max()
    np.testing.assert_allclose(H, ad, rtol=0, atol=HESSIAN_BOUNDS[method, richardson] * 3 * scale)


@pytest.mark.parametrize("method", numeric.METHODS)
def test_directional_derivative(method):
    x = np.array([0.2, -0.5, 1.1])
    u = np.array([1.0, 2.0, -0.5])
    d = numeric.directional_derivative(_mlp, x, u, method=method)
    np.testing.assert_allclose(d, _mlp_jacobian(x) @ u, rtol=1e-6, atol=1e-12)
    assert np.all(numeric.directional_derivative(_mlp, x, np.zeros(3)) == 0)
    with pytest.raises(ValueError, match="u has shape \\(2,\\) but x has shape \\(3,\\)"):
        numeric.directional_derivative(_mlp, x, np.ones(2))


class Counted:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x):
        self.n += 1
        return self.f(x)


@pytest.mark.parametrize("method,calls", [("forward", 5 + 1), ("backward", 5 + 1), ("central", 10 + 1),
                                          ("complex", 5 + 1)])
def test_call_counts(method, calls):
    """n+1 (one-sided), 2n (central), n (complex) calls, plus one at x."""
    f = Counted(lambda x: np.sum(np.sin(x)))
    numeric.gradient(f, np.arange(5.0), method=method)
    assert f.n == calls
    f = Counted(lambda x: np.sum(np.sin(x)))
    numeric.gradient(f, np.arange(5.0), method=method, richardson=2)
    assert f.n == 1 + 3 * (calls - 1)


def test_hessian_call_counts():
    n = 4
    for method, calls in [("central", 2 * n * n + 1), ("forward", n * (n + 3) // 2 + 1),
                          ("complex", n * (n + 1) + 1)]:
        f = Counted(lambda x: np.sum(np.sin(x)) * x[0])
        numeric.hessian(f, np.arange(1.0, n + 1), method=method)
        assert f.n == calls, method


# ---------------------------------------------------------------------------
# Step sizes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,power", [("forward", 1 / 2), ("backward", 1 / 2), ("central", 1 / 3)])
def test_first_derivative_steps_relative_to_x(method, power):
    for x in (1e-6, 1.0, 1e6, -0.5):
        r = numeric.derivative(np.log1p, x, method=method, full_output=True)
        assert r.step == pytest.approx(EPS ** power * abs(x), rel=1e-6)


def test_steps_with_richardson_and_hessians():
    r = numeric.derivative(np.exp, 2.0, richardson=2, full_output=True)
    assert r.step == pytest.approx(EPS ** (1 / 7) * 2.0, rel=1e-6)  # order 6 after extrapolation, + rounding 1
    r = numeric.hessian(lambda x: np.sum(x ** 4), np.array([3.0]), full_output=True)
    assert r.step[0] == pytest.approx(EPS ** (1 / 4) * 3.0)
    r = numeric.hessian(lambda x: np.sum(x ** 4), np.array([3.0]), method="complex", full_output=True)
    assert r.step[0] == pytest.approx(EPS ** (1 / 3) * 3.0)


def test_zero_uses_unit_scale_and_scale_overrides():
    r = numeric.derivative(np.cos, 0.0, full_output=True)
    assert r.step == pytest.approx(EPS ** (1 / 3))
    assert abs(r.value) < 1e-10
    r = numeric.derivative(np.sin, 1e-9, scale=1.0, full_output=True)
    assert r.step == pytest.approx(EPS ** (1 / 3))
    assert r.value == pytest.approx(np.cos(1e-9), rel=1e-10)
    with pytest.raises(ValueError, match="scale must be positive"):
        numeric.derivative(np.sin, 1.0, scale=0.0)


def test_steps_are_exactly_representable():
    """The quotient divides by (x + h) − x, not by h: no representation error in the step."""
    x = 0.1
    r = numeric.derivative(lambda t: t, x, method="forward", full_output=True)
    assert r.value == 1.0  # the identity's derivative, exactly


def test_explicit_step():
    r = numeric.derivative(lambda t: t ** 2, 1.0, step=1e-3, full_output=True)
    assert r.step == 1e-3
    assert r.value == pytest.approx(2.0, rel=1e-12)
    with pytest.raises(ValueError, match="step must be positive"):
        numeric.derivative(np.sin, 1.0, step=-1.0)
    with pytest.raises(ValueError, match="a step vanished when added to x"):
        numeric.derivative(np.log, 1e6, step=1e-12)
    with pytest.raises(ValueError, match="a step vanished when added to x"):
        numeric.hessian(lambda v: np.sum(np.log(v)), np.array([1e6]), step=1e-12)


def test_large_and_tiny_parameters_in_one_gradient():
    x = np.array([1e6, 1e-6, 1.0])
    g = numeric.gradient(lambda v: np.sum(np.log(v)), x)
    np.testing.assert_allclose(g, 1 / x, rtol=1e-9)


# ---------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------

def test_float32_input_is_evaluated_in_float64():
    x = np.float32(0.7)
    r = numeric.derivative(np.sin, x, full_output=True)
    assert r.eval_dtype == np.float64 and r.value.dtype == np.float64
    assert "float32 input evaluated in float64" in r.note
    assert abs(r.value - np.cos(np.float64(x))) < 1e-10
    assert r.step == pytest.approx(EPS ** (1 / 3) * float(x))


def test_float32_evaluation_on_request():
    x = np.float32(0.7)
    r = numeric.derivative(np.sin, x, eval_dtype=np.float32, full_output=True)
    assert r.eval_dtype == np.float32 and r.note == ""
    eps32 = np.finfo(np.float32).eps
    assert r.step == pytest.approx(eps32 ** (1 / 3) * float(x), rel=1e-3)
    assert abs(r.value - np.cos(np.float64(x))) < 3e-5
    assert abs(r.value - np.cos(np.float64(x))) <= r.error


def test_function_that_forbids_float64():
    def only32(x):
        if x.dtype != np.float32:
            raise TypeError("this kernel is float32 only")
        return np.sin(x)

    r = numeric.gradient(lambda v: np.sum(only32(v)), np.float32([0.3, 1.2]), full_output=True)
    assert r.eval_dtype == np.float32
    assert "rejected float64 input (TypeError: this kernel is float32 only)" in r.note
    np.testing.assert_allclose(r.value, np.cos(np.float32([0.3, 1.2]).astype(np.float64)), atol=3e-5)
    assert np.all(np.abs(r.value - np.cos(np.float32([0.3, 1.2]).astype(np.float64))) <= r.error)
    with pytest.raises(TypeError, match="float32 only"):  # float64 input: nothing to fall back to
        numeric.gradient(lambda v: np.sum(only32(v)), np.array([0.3, 1.2]))


def test_function_that_computes_in_float32():
    def f(x):
        return np.exp(np.asarray(x, dtype=np.float32))

    r = numeric.derivative(f, 0.5, full_output=True)  # float64 input, float32 arithmetic
    assert r.eval_dtype == np.float32
    assert "computes in float32" in r.note
    eps32 = float(np.finfo(np.float32).eps)
    assert r.step == pytest.approx(eps32 ** (1 / 3) * 0.5, rel=1e-3)
    assert abs(r.value - np.exp(0.5)) < 1e-4  # a float64-sized step (6e-6) would give ~1e-2


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

def test_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        numeric.derivative(np.sin, 1.0, method="midpoint")
    with pytest.raises(ValueError, match="richardson must be a non-negative int"):
        numeric.derivative(np.sin, 1.0, richardson=-1)
    with pytest.raises(ValueError, match="full_output must be"):
        numeric.derivative(np.sin, 1.0, full_output="yes")
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        numeric.derivative(np.sin, 1.0 + 2j)
    with pytest.raises(TypeError, match="eval_dtype must be float32 or float64"):
        numeric.derivative(np.sin, 1.0, eval_dtype=np.int32)
    with pytest.raises(TypeError, match="f must return real numbers"):
        numeric.derivative(lambda x: x * 1j, 1.0)
    with pytest.raises(ValueError, match="method='complex' needs f to carry complex input.*use method='central'"):
        numeric.derivative(np.abs, 1.0, method="complex")
    with pytest.raises(ValueError, match="f returned shape"):
        numeric.jacobian(lambda x: np.ones(3) if x[0] == 1 else np.ones(2), np.ones(2))


def test_public_names():
    assert tapegrad.numeric is numeric
    for name in ("derivative", "gradient", "jacobian", "hessian", "directional_derivative", "NumericResult"):
        assert hasattr(numeric, name)
    r = numeric.derivative(np.sin, 0.0, full_output=True)
    assert np.asarray(r) == r.value and r.method == "central" and r.n_evals == 5
