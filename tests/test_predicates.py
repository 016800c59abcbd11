"""The predicate compositions (tapegrad.less, ..., isnan: opspec COMPOSITIONS) run C++ kernels
(cpp/bindings/functions.cpp) on Variables and NumPy itself on anything else: each must give NumPy's
answer and type (a NumPy bool array; np.bool_ for a 0-d result) on every operand mix, special values
included, and errors that name the function."""
import itertools

import numpy as np
import pytest

import tapegrad as tg

SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-310, -1e-310, 3.0e38, 1e300, 0.1])
COMPARE = ["less", "less_equal", "greater", "greater_equal", "equal", "not_equal"]
CLASSIFY = ["isnan", "isinf", "isfinite", "signbit"]


def _same(got, want):
    assert type(got) is type(want), (type(got), type(want))
    np.testing.assert_array_equal(got, want)
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype == np.bool_ and got.shape == want.shape


@pytest.mark.parametrize("name", COMPARE)
@pytest.mark.parametrize("da,db", list(itertools.product([np.float32, np.float64], repeat=2)))
def test_comparisons_give_numpys_answer_and_type(name, da, db):
    f, g = getattr(tg, name), getattr(np, name)
    with np.errstate(over="ignore"):
        a, b = SPECIAL.astype(da)[:, None], SPECIAL.astype(db)[None, :]
    V = tg.Variable
    _same(f(V(a), V(b)), g(a, b))
    _same(f(V(a), b), g(a, b))
    _same(f(a, V(b)), g(a, b))
    _same(f(V(a), 0.1), g(a, 0.1))  # a Python float takes the Variable's dtype (NEP 50), as NumPy's
    _same(f(0.1, V(b)), g(0.1, b))
    _same(f(V(a), np.arange(12)[None, :]), g(a, np.arange(12)[None, :]))
    _same(f(V(a[4, 0]), V(b[0, 6])), g(a[4, 0], b[0, 6]))  # 0-d: np.bool_
    _same(f(V(a[::2]), V(b[:, ::3])), g(a[::2], b[:, ::3]))  # views
    A, B = np.tile(a, (400, 1)), np.tile(b, (1, 3))  # (past the size from which Variables go to NumPy's loops)
    _same(f(V(A), V(B)), g(A, B))
    _same(f(V(A), 0.1), g(A, 0.1))
    _same(f(V(A[::-7]), B[:, ::2]), g(A[::-7], B[:, ::2]))
    big = np.array([2**53 + 1, 2**60], dtype=np.int64)  # no Variable: NumPy's exact integer comparison
    _same(f(big, big - 1), g(big, big - 1))


@pytest.mark.parametrize("name", CLASSIFY)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_classifiers_give_numpys_answer_and_type(name, dtype):
    with np.errstate(over="ignore"):
        x = SPECIAL.astype(dtype)
    f, g = getattr(tg, name), getattr(np, name)
    _same(f(tg.Variable(x)), g(x))
    _same(f(tg.Variable(x.reshape(3, 4).T)), g(x.reshape(3, 4).T))
    _same(f(tg.Variable(x[6])), g(x[6]))
    _same(f(x), g(x))
    _same(f(tg.Variable(np.zeros((0, 3), dtype))), g(np.zeros((0, 3), dtype)))
    big = np.tile(x, 500)  # (past the size from which Variables go to NumPy's loops)
    _same(f(tg.Variable(big)), g(big))
    _same(f(tg.Variable(big[::-3])), g(big[::-3]))


@pytest.mark.parametrize("name", COMPARE + CLASSIFY)
def test_predicates_errors_name_the_function(name):
    f = getattr(tg, name)
    args = (tg.Variable(np.ones(3)), "x") if name in COMPARE else ([[1.0], [1.0, 2.0]],)
    with pytest.raises((TypeError, ValueError), match=f"^{name}: "):
        f(*args)
    if name in COMPARE:
        with pytest.raises(ValueError, match=f"^{name}: .*broadcast"):
            f(tg.Variable(np.ones(3)), tg.Variable(np.ones(4)))


def test_predicates_stay_outside_the_graph():
    x = tg.Variable(np.array([1.0, -2.0]), requires_grad=True)
    m = tg.greater(x, 0.0)
    assert isinstance(m, np.ndarray) and m.tolist() == [True, False]
    (tg.where(m, x, 0.0) * 3.0).sum().backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [3.0, 0.0])
