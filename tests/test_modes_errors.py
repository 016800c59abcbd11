"""Error cases of the derivative modes and the functional API: wrong tangent
or cotangent shapes and dtypes, functions returning non-Variables, grad of
non-scalar functions, bad argnums / mode / chunk_size, non-numeric primals,
and grad mode left enabled after an error.
"""

import numpy as np
import pytest

import tapegrad as tg
from helpers import assert_close
from helpers import case_id as _ids


# ---------------------------------------------------------------------------
# 6. Errors
# ---------------------------------------------------------------------------
def test_wrong_tangent_shape():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"\(3, 2\)") as info:
        tg.jvp(tg.exp, (x,), (np.ones((3, 2)),))
    assert "(2, 3)" in str(info.value)
    with pytest.raises(ValueError, match=r"\(6,\)"):
        tg.directional_derivative(tg.exp, x, np.ones(6))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        tg.jvp(tg.exp, (x,), (np.ones(3),))  # broadcastable is still wrong
    with pytest.raises(ValueError):
        tg.jvp(tg.exp, (x,), (1.0,))  # a scalar tangent for a (2, 3) primal
    with pytest.raises(ValueError, match=r"\(4,\)"):
        tg.hvp(lambda v: tg.sum(v * v), np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        tg.jvp(lambda a, b: a * b, (np.ones(2), np.ones(2)), (np.ones(2),))  # tangent count


def test_wrong_cotangent_shape():
    _, vjp_fn = tg.vjp(tg.exp, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        vjp_fn(np.ones((3, 2)))
    # a correct call still works after the failed one
    assert_close(vjp_fn(np.ones((2, 3)))[0], np.full((2, 3), np.e))


def test_wrong_tangent_dtype():
    x32 = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        tg.jvp(tg.exp, (x32,), (np.ones(3, dtype=np.float64),))
    with pytest.raises(TypeError):
        tg.directional_derivative(tg.exp, x32, np.ones(3))
    with pytest.raises(TypeError):
        tg.hvp(lambda v: tg.sum(v * v), x32, np.ones(3))
    with pytest.raises(TypeError, match="float32"):
        tg.jvp(tg.exp, (np.ones(3),), (np.ones(3, dtype=np.float32),))
    with pytest.raises(TypeError):
        tg.jvp(tg.exp, (np.ones(3),), (np.array(["a", "b", "c"]),))
    with pytest.raises(TypeError):
        tg.jvp(tg.exp, (np.ones(3),), (np.ones(3, dtype=complex),))
    with pytest.raises(TypeError):
        tg.jvp(tg.exp, (np.ones(3, dtype=complex),), (np.ones(3),))


@pytest.mark.parametrize("bad", [np.ones(3), 1.0, None, (1.0,), [1.0]], ids=lambda b: type(b).__name__)
def test_function_returning_a_non_variable(bad):
    x = np.ones(3)

    def f(*args):
        return bad

    calls = {
        "jvp": lambda: tg.jvp(f, (x,), (x,)),
        "vjp": lambda: tg.vjp(f, x),
        "grad": lambda: tg.grad(f)(x),
        "value_and_grad": lambda: tg.value_and_grad(f)(x),
        "jacobian_forward": lambda: tg.jacobian(f, x, mode="forward"),
        "jacobian_reverse": lambda: tg.jacobian(f, x, mode="reverse"),
        "jacobian_auto": lambda: tg.jacobian(f, x),
        "hessian": lambda: tg.hessian(f, x),
        "hvp": lambda: tg.hvp(f, x, x),
        "directional_derivative": lambda: tg.directional_derivative(f, x, x),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match="Variable"):
            call()


@pytest.mark.parametrize("shape", [(3,), (2, 2), (0,), (1, 2)], ids=_ids)
def test_grad_of_non_scalar_function(shape):
    x = np.ones(shape)
    shape_str = str(shape)
    for call in (
        lambda: tg.grad(lambda v: v * 2.0)(x),
        lambda: tg.value_and_grad(lambda v: v * 2.0)(x),
        lambda: tg.hessian(lambda v: v * 2.0, x),
        lambda: tg.hvp(lambda v: v * 2.0, x, x),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert shape_str in str(info.value), f"message does not name the shape {shape_str}: {info.value}"


def test_argnums_out_of_range_and_of_the_wrong_type():
    def f(a, b):
        return tg.sum(a * b)

    a, b = np.ones(2), np.ones(2)
    for argnums in (2, -3, (0, 2), (5,), 100):
        with pytest.raises(ValueError, match="argnums"):
            tg.grad(f, argnums=argnums)(a, b)
        with pytest.raises(ValueError, match="argnums"):
            tg.value_and_grad(f, argnums=argnums)(a, b)
    for argnums in ("0", 1.0, None, (0, "1")):
        with pytest.raises(TypeError, match="argnums"):
            tg.grad(f, argnums=argnums)(a, b)
    with pytest.raises(ValueError, match="argnums"):
        tg.grad(lambda: tg.Variable(1.0))()


@pytest.mark.parametrize("mode", ["Forward", "fwd", "rev", "", None, "both", 1])
def test_bad_mode(mode):
    with pytest.raises(ValueError, match="mode"):
        tg.jacobian(tg.exp, np.ones(2), mode=mode)


@pytest.mark.parametrize("chunk", [0, -1, -7])
def test_bad_chunk_size_value(chunk):
    for mode in ["forward", "reverse", "auto"]:
        with pytest.raises(ValueError, match="chunk_size"):
            tg.jacobian(tg.exp, np.ones(2), mode=mode, chunk_size=chunk)


@pytest.mark.parametrize("chunk", [1.5, 2.0, "2", [2]])
def test_bad_chunk_size_type(chunk):
    for mode in ["forward", "reverse", "auto"]:
        with pytest.raises((ValueError, TypeError), match="chunk_size"):
            tg.jacobian(tg.exp, np.ones(2), mode=mode, chunk_size=chunk)


def test_non_numeric_primals():
    with pytest.raises(TypeError):
        tg.jacobian(tg.exp, np.array(["a"]))
    with pytest.raises(TypeError):
        tg.grad(lambda v: tg.sum(v))(np.array(["a"]))
    with pytest.raises(TypeError):
        tg.jvp(tg.exp, (np.array(["a"]),), (np.ones(1),))


def test_errors_leave_grad_mode_enabled():
    for call in (
        lambda: tg.jacobian(lambda v: None, np.ones(2)),
        lambda: tg.grad(lambda v: v)(np.ones(2)),
        lambda: tg.jvp(tg.exp, (np.ones(2),), (np.ones(3),)),
    ):
        with pytest.raises((TypeError, ValueError)):
            call()
        assert tg.is_grad_enabled()
    # inside no_grad the transforms still differentiate and restore no_grad afterwards
    with tg.no_grad():
        g = tg.grad(lambda v: tg.sum(v * v))(np.ones(2))
        J = tg.jacobian(tg.exp, np.zeros(2), mode="forward")
        assert not tg.is_grad_enabled()
    assert_close(g, np.full(2, 2.0))
    assert_close(J, np.eye(2))
