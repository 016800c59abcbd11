"""The exact kink conventions (README.md, "Conventions"): relu'(0) = 0,
abs'(0) = 0, ties of maximum / minimum and of the max / min reductions split
the gradient evenly, clip passes the gradient at its bounds (inclusive),
the special cases of d(a**b), and the reference engine agrees.
"""
import numpy as np
import pytest

import op_cases
import tapegrad as tg
from helpers import assert_close, reference_engine


# ---------------------------------------------------------------------------
# Exact kink conventions
# ---------------------------------------------------------------------------
def _grad(fn, x):
    v = tg.Variable(x, requires_grad=True)
    fn(v).sum().backward()
    return v.grad


def test_kink_relu_at_zero():
    g = _grad(tg.relu, np.array([-1.0, 0.0, 1.0, -0.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0, 0.0])
    g = _grad(lambda v: v.relu(), np.array(0.0))
    assert g == 0.0


def test_kink_abs_at_zero():
    g = _grad(tg.abs, np.array([-2.0, 0.0, 3.0, -0.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0, 0.0])
    assert _grad(abs, np.array(0.0)) == 0.0


@pytest.mark.parametrize("name", [n for n in op_cases.ELEMENTWISE if op_cases.kinked(n)])
def test_kink_at_zero_is_the_spec_derivative(name):
    """Every elementwise op whose spec `deriv` has step(x) or sign(x): its gradient at +-0 is that
    expression there (step(0) = sign(0) = 0), on both engines."""
    x = np.array([-1.0, 0.0, 1.0, -0.0, 2.5])
    want = op_cases.spec_derivative(name)(x)
    assert want[1] == want[3] == {"elu": 1.0, "leaky_relu": 0.01}.get(name, 0.0)  # (h92-param: the parameter)
    for m in (tg, reference_engine()):
        v = m.Variable(x, requires_grad=True)
        getattr(m, name)(v).sum().backward()
        np.testing.assert_array_equal(v.grad, want, err_msg=m.__name__)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_kink_maximum_minimum_ties_split_evenly(op):
    a = tg.Variable([1.0, 2.0, 3.0], requires_grad=True)
    b = tg.Variable([1.0, 5.0, 0.0], requires_grad=True)
    getattr(tg, op)(a, b).sum().backward()
    if op == "maximum":
        np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])
        np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])
    else:
        np.testing.assert_array_equal(a.grad, [0.5, 1.0, 0.0])
        np.testing.assert_array_equal(b.grad, [0.5, 0.0, 1.0])


def test_kink_maximum_ties_with_broadcasting():
    a = tg.Variable([[1.0, 2.0], [2.0, 0.0]], requires_grad=True)
    b = tg.Variable(2.0, requires_grad=True)
    tg.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [[0.0, 0.5], [0.5, 0.0]])
    assert b.grad == 3.0  # 1 (1 < 2) + 0.5 (tie) + 0.5 (tie) + 1 (0 < 2)
    assert b.grad.shape == ()


@pytest.mark.parametrize("op", ["max", "min"])
def test_kink_max_min_reduction_ties_split_evenly(op):
    x = np.array([[3.0, 1.0, 3.0, 3.0], [2.0, 2.0, -1.0, 0.0]])
    if op == "min":
        x = -x
    g = _grad(lambda v: getattr(tg, op)(v, axis=1), x)
    np.testing.assert_array_equal(g, [[1 / 3, 0.0, 1 / 3, 1 / 3], [0.5, 0.5, 0.0, 0.0]])
    g = _grad(lambda v: getattr(v, op)(), x)
    np.testing.assert_array_equal(g, [[1 / 3, 0.0, 1 / 3, 1 / 3], [0.0, 0.0, 0.0, 0.0]])
    g = _grad(lambda v: getattr(tg, op)(v, axis=0, keepdims=True), x)
    np.testing.assert_array_equal(g, [[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    g = _grad(lambda v: getattr(tg, op)(v), np.full((2, 2), 7.0))
    np.testing.assert_array_equal(g, np.full((2, 2), 0.25))


def test_kink_clip_inclusive_bounds():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, -1.0, 1.0), x), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad(lambda v: v.clip(-1.0, 1.0), x), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, -1.0, None), x), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, None, 1.0), x), [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, 0.0, 0.0), x), [0, 0, 1, 0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_outside_its_bounds_gives_zero_for_a_nan_or_inf_direction(m, dtype):
    """A select, as PyTorch's clamp: not direction * 0 (NaN). Both engines, reverse and forward mode."""
    x = np.array([-1.0, 0.5, 2.0, 1.0], dtype=dtype)
    d = np.array([np.nan, np.inf, -np.inf, np.nan], dtype=dtype)
    v = m.Variable(x, requires_grad=True)
    m.clip(v, -0.5, 1.0).backward(m.Variable(d))
    want = np.array([0.0, np.inf, 0.0, np.nan], dtype=dtype)  # inside (bounds inclusive): the direction itself
    np.testing.assert_array_equal(np.asarray(v.grad), want)
    assert np.asarray(v.grad).dtype == dtype
    np.testing.assert_array_equal(np.asarray(m.jvp(lambda a: m.clip(a, -0.5, 1.0), (x,), (d,))[1]), want)


def test_kink_clip_inclusive_bounds_with_array_bounds():
    # Same convention when the bounds are arrays: the gradient passes where
    # a_min <= x <= a_max, fully (not split like maximum/minimum ties).
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    lo, hi = np.full(5, -1.0), np.full(5, 1.0)
    np.testing.assert_array_equal(_grad(lambda v: tg.clip(v, lo, hi), x), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad(lambda v: v.clip(lo, None), x), [0, 1, 1, 1, 1])


def test_clip_values_match_numpy_including_reversed_bounds():
    x = np.array([-3.0, 0.0, 2.0, 5.0])
    for lo, hi in [(-1.0, 1.0), (3.0, 1.0), (2.0, 2.0), (None, 0.5), (0.5, None)]:
        np.testing.assert_array_equal(tg.clip(tg.Variable(x), lo, hi).data, np.clip(x, lo, hi), err_msg=f"{lo},{hi}")


def test_kink_power_special_cases():
    # d/da a**0 at a = 0 is 0 (not 0 * 0**-1 = nan)
    a = tg.Variable([0.0, 2.0, -1.5], requires_grad=True)
    b = tg.Variable([0.0, 0.0, 0.0], requires_grad=True)
    y = a ** b
    np.testing.assert_array_equal(y.data, [1.0, 1.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 0.0, 0.0])
    # d/db 0**b at b >= 0 is 0 (not 0 * log 0 = nan); b = 0 included
    assert_close(b.grad, [0.0, np.log(2.0), np.nan])

    a = tg.Variable([0.0, 0.0, 0.0], requires_grad=True)
    b = tg.Variable([0.5, 2.0, 3.0], requires_grad=True)
    y = tg.power(a, b)
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(b.grad, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(a.grad, [np.inf, 0.0, 0.0])

    # python-scalar exponent 0 and base 0
    a = tg.Variable(0.0, requires_grad=True)
    (a ** 0).backward()
    assert a.grad == 0.0
    b = tg.Variable(1.5, requires_grad=True)
    (0.0 ** b).backward()
    assert b.grad == 0.0


def test_kink_conventions_match_reference():
    ref = reference_engine()
    x = np.array([-1.0, 0.0, 0.0, 1.0, 2.0, 2.0])
    cases = [
        lambda m, v: m.relu(v),
        lambda m, v: m.abs(v),
        lambda m, v: m.maximum(v, 0.0),
        lambda m, v: m.minimum(v, 2.0),
        lambda m, v: m.max(v),
        lambda m, v: m.min(v.reshape(2, 3), axis=1),
        lambda m, v: m.clip(v, 0.0, 2.0),
        lambda m, v: v ** 0.0,
        lambda m, v: m.power(v, m.Variable(np.zeros(6))),
    ]
    for i, fn in enumerate(cases):
        grads = []
        for m in (tg, ref):
            v = m.Variable(x, requires_grad=True)
            fn(m, v).sum().backward()
            grads.append(v.grad)
        np.testing.assert_array_equal(grads[0], grads[1], err_msg=f"case {i}")
