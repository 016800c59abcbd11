"""Mixing Variables with NumPy arrays and Python scalars (operators return
Variables; NumPy ufuncs tapegrad lacks raise TypeError pointing to tapegrad) and
comparisons returning NumPy bool arrays.

Most tests run on both engines (tapegrad and tapegrad.reference), since
docs/API.md gives them the same semantics.
"""
import numpy as np
import pytest

import tapegrad as tg
from helpers import assert_close

pytestmark = pytest.mark.usefixtures("restore_grad_mode")  # fixtures m and restore_grad_mode: conftest.py


# ---------------------------------------------------------------------------
# Mixing with NumPy arrays and Python scalars
# ---------------------------------------------------------------------------
MIXED = {
    "2*v": lambda v, a: 2 * v,
    "v*2": lambda v, a: v * 2,
    "v+1.5": lambda v, a: v + 1.5,
    "1.5+v": lambda v, a: 1.5 + v,
    "1-v": lambda v, a: 1 - v,
    "v-1": lambda v, a: v - 1,
    "2/v": lambda v, a: 2 / v,
    "v/2": lambda v, a: v / 2,
    "2**v": lambda v, a: 2 ** v,
    "v**2": lambda v, a: v ** 2,
    "arr+v": lambda v, a: a + v,
    "v+arr": lambda v, a: v + a,
    "arr-v": lambda v, a: a - v,
    "arr*v": lambda v, a: a * v,
    "arr/v": lambda v, a: a / v,
    "v/arr": lambda v, a: v / a,
    "arr**v": lambda v, a: a ** v,
    "arr@v": lambda v, a: a @ v,
    "v@arr": lambda v, a: v @ a,
    "arr0d*v": lambda v, a: np.array(2.0) * v,
    "np.float64*v": lambda v, a: np.float64(2.0) * v,
    "v*np.float64": lambda v, a: v * np.float64(2.0),
    "np.int64+v": lambda v, a: np.int64(3) + v,
    "list+v": lambda v, a: [1.0, 2.0] + v,
    "v-list": lambda v, a: v - [1.0, 2.0],
    "arr32*v": lambda v, a: a.astype(np.float32) * v,
    "intarr+v": lambda v, a: np.array([1, 2]) + v,
}


@pytest.mark.parametrize("name", list(MIXED))
def test_mixing_returns_a_variable(m, name):
    fn = MIXED[name]
    a = np.array([1.5, 2.5])
    v = m.Variable([0.5, 2.0], requires_grad=True)
    out = fn(v, a)
    assert type(out) is m.Variable, type(out)
    assert out.dtype == np.float64
    expected = fn(np.array([0.5, 2.0]), a)
    assert_close(out, expected)
    assert out.requires_grad
    out.sum().backward()
    assert v.grad is not None and v.grad.shape == (2,)
    assert np.all(np.isfinite(v.grad))


def test_numpy_ufunc_on_a_variable_dispatches_or_points_to_tapegrad():
    v = tg.Variable([1.0, 2.0], requires_grad=True)
    assert isinstance(np.exp(v), tg.Variable) and np.exp(v).requires_grad  # dispatched (test_numpy_dispatch.py)
    with pytest.raises(TypeError, match=r"np\.bitwise_and is not implemented"):
        np.bitwise_and(v, v)
    with pytest.raises(TypeError, match="out"):
        np.add(v, 1.0, out=np.zeros(2))


@pytest.mark.parametrize("ufunc", [np.spacing, np.nextafter, np.bitwise_and])
def test_unimplemented_numpy_ufunc_raises_type_error_on_both_engines(m, ufunc):
    with pytest.raises(TypeError):
        ufunc(*[m.Variable([1.0, 2.0], requires_grad=True)] * ufunc.nin)


COMPARISONS = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
    "==": lambda x, y: x == y,
    "!=": lambda x, y: x != y,
}


@pytest.mark.parametrize("op", list(COMPARISONS))
def test_comparisons_return_numpy_bool_arrays(m, op):
    f = COMPARISONS[op]
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    va = m.Variable(a, requires_grad=True)
    vb = m.Variable(b)
    for got, want in [
        (f(va, vb), f(a, b)),
        (f(va, 2.0), f(a, 2.0)),
        (f(2.0, va), f(2.0, a)),
        (f(va, b), f(a, b)),
        (f(b, va), f(b, a)),  # reflected, NumPy array on the left
        (f(va, va), f(a, a)),
    ]:
        assert isinstance(got, np.ndarray), type(got)
        assert not isinstance(got, m.Variable)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)


def test_comparisons_across_dtypes_and_with_nan(m):
    v32 = m.Variable(np.array([0.1, 1.0], np.float32))
    v64 = m.Variable(np.array([0.1, 1.0]))
    np.testing.assert_array_equal(v32 == v64, np.array([0.1, 1.0], np.float32) == np.array([0.1, 1.0]))
    n = m.Variable([np.nan, 1.0])
    np.testing.assert_array_equal(n == n, [False, True])
    np.testing.assert_array_equal(n != n, [True, False])
    np.testing.assert_array_equal(n < 2.0, [False, True])
