"""tapegrad.numeric against numdifftools (optional: skipped when numdifftools is missing).

numdifftools picks its step adaptively from a sequence of 15 steps with
Richardson extrapolation; tapegrad.numeric uses one analysed step (plus k
halvings).  Both are compared with the exact derivative and with each other:
numdifftools' adaptive estimate is typically ~1e-13 relative, so the
difference is dominated by tapegrad.numeric's documented error.
"""
import warnings

import numpy as np
import pytest

nd = pytest.importorskip("numdifftools")

from tapegrad import numeric  # noqa: E402


def f_scalar(x):
    return np.exp(x[0]) * np.sin(x[1]) + x[0] ** 2 * x[1] * x[2] + np.log(x[2])


def f_vector(x):
    return np.array([np.sin(x[0] * x[1]), x[0] ** 2 + np.tanh(x[2]), np.sqrt(x[1] * x[2])])


X = np.array([0.3, 1.1, 0.8])


EXACT = {"sin": np.cos, "exp": np.exp, "log": lambda x: 1 / x, "arctan": lambda x: 1 / (1 + x * x)}


def nd_derivative(fn, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numdifftools warns (All-NaN slice) where its steps leave the domain
        return nd.Derivative(fn)(x)


@pytest.mark.parametrize("x", [0.5, 1e-3, 30.0])
@pytest.mark.parametrize("fn", [np.sin, np.exp, np.log, np.arctan], ids=lambda f: f.__name__)
def test_derivative(fn, x):
    """Steps relative to |x| cost digits where f varies on a scale other than |x| (sin at 30:
    ~5e-9 with one central step) and win where absolute steps leave the domain (log at 1e-3:
    numdifftools returns NaN); Richardson extrapolation and the complex step recover the digits."""
    exact = EXACT[fn.__name__](x)
    for method, richardson, rtol in [("central", 0, 1e-8), ("central", 2, 1e-9), ("complex", 0, 1e-14)]:
        d = numeric.derivative(fn, x, method=method, richardson=richardson)
        assert abs(d - exact) <= rtol * abs(exact), (method, richardson)
    ref = nd_derivative(fn, x)
    if np.isfinite(ref):
        np.testing.assert_allclose(numeric.derivative(fn, x), ref, rtol=1e-8)


def test_gradient_and_jacobian():
    np.testing.assert_allclose(numeric.gradient(f_scalar, X), nd.Gradient(f_scalar)(X), rtol=1e-9)
    np.testing.assert_allclose(numeric.gradient(f_scalar, X, method="complex"), nd.Gradient(f_scalar)(X),
                               rtol=1e-12)
    np.testing.assert_allclose(numeric.jacobian(f_vector, X), nd.Jacobian(f_vector)(X), rtol=1e-9, atol=1e-12)


def test_hessian():
    ref = nd.Hessian(f_scalar)(X)
    np.testing.assert_allclose(numeric.hessian(f_scalar, X), ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(numeric.hessian(f_scalar, X, richardson=2), ref, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(numeric.hessian(f_scalar, X, method="complex", richardson=1), ref, rtol=1e-10,
                               atol=1e-10)


def test_directional_derivative():
    u = np.array([1.0, -2.0, 0.5])
    ref = nd.Jacobian(f_vector)(X) @ u
    np.testing.assert_allclose(numeric.directional_derivative(f_vector, X, u), ref, rtol=1e-8, atol=1e-12)


def test_error_estimates_are_comparable():
    """Both libraries' error estimates bound their actual errors on the same problem."""
    exact = np.cos(0.5)
    ours = numeric.derivative(np.sin, 0.5, richardson=2, full_output=True)
    theirs = nd.Derivative(np.sin, full_output=True)(0.5)
    assert abs(ours.value - exact) <= ours.error
    assert abs(theirs.estimate - exact) <= max(theirs.error_estimate, 1e-15)
