"""The public API as a type checker sees it: `python -m mypy` (CI runs it) checks
this file, and each assert_type fails there if a type is wrong or has become
Any (assert_type is exact). pytest runs the same code, so every line is also
a call that works."""
from typing import Any, assert_type

import numpy as np
from numpy.typing import NDArray

import tapegrad as tg
from tapegrad import Variable

Array = NDArray[np.floating[Any]]
Result = Array | Variable


def loss(w: Variable) -> Variable:
    return tg.sum(tg.tanh(w) ** 2)


def test_variable_and_ops() -> None:
    x = tg.Variable(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    w = tg.Variable([0.5, -0.25], requires_grad=True, dtype=np.float64)
    assert_type(x @ w, Variable)
    assert_type(x + 1, Variable)
    assert_type(2.0 * x, Variable)
    assert_type(x / np.ones(2), Variable)
    assert_type(1 - x, Variable)
    assert_type(-x, Variable)
    assert_type(abs(x), Variable)
    assert_type(x ** 2, Variable)
    assert_type(x[0, 1:], Variable)
    assert_type(x[..., None], Variable)
    assert_type(x > 2, NDArray[np.bool_])
    assert_type(tg.exp(x), Variable)
    assert_type(tg.logsumexp(tg.tanh(x @ w)), Variable)
    assert_type(tg.sum(x, axis=(0, 1), keepdims=True), Variable)
    assert_type(tg.softmax(x, axis=-1), Variable)
    assert_type(tg.concatenate([x, np.zeros((1, 2))]), Variable)
    assert_type(tg.where(x > 2, x, 0.0), Variable)
    assert_type(tg.linear(x, np.eye(2), None), Variable)
    assert_type(x.sum(axis=0), Variable)
    assert_type(x.reshape(4), Variable)
    assert_type(x.reshape(2, 2), Variable)
    assert_type(x.reshape((4, 1)), Variable)
    assert_type(x.transpose(), Variable)
    assert_type(x.T, Variable)
    assert_type(x.astype(np.float32), Variable)
    assert_type(x.shape, tuple[int, ...])
    assert_type(x.dtype, np.dtype[np.floating[Any]])
    assert_type(x.data, Array)
    assert_type(x.numpy(), Array)
    assert_type(np.asarray(x.detach()), NDArray[Any])  # (np.asarray of x itself raises: x requires grad)
    loss_value = tg.logsumexp(tg.tanh(x @ w)) + (w ** 2).sum()
    assert_type(loss_value.item(), float)
    assert_type(loss_value.backward(), None)
    assert_type(w.grad, Array | Variable | None)
    assert_type(loss_value.grad_fn, tg.Node | None)
    assert w.grad is not None and loss_value.grad_fn is not None
    assert_type(loss_value.grad_fn.name, str)
    assert_type(tg.from_numpy(np.zeros(3)), Variable)
    assert_type(tg.is_grad_enabled(), bool)
    assert_type(tg.get_num_threads(), int)


def test_grad_mode() -> None:
    with tg.no_grad() as mode:
        assert_type(mode, tg.no_grad)
        assert not tg.is_grad_enabled()

    @tg.enable_grad()
    def recording(v: Variable) -> Variable:
        return v * 2

    out = recording(tg.Variable(1.0, requires_grad=True))
    assert_type(out, Variable)
    assert out.requires_grad


def test_derivative_operators() -> None:
    x: NDArray[np.float64] = np.array([0.5, -1.0])
    assert_type(tg.grad(loss)(x), Result)
    assert_type(tg.grad(lambda a, b: tg.sum(a * b), argnums=(0, 1))(x, x), tuple[Result, ...])
    value, g = tg.value_and_grad(loss)(x)
    assert_type(value, float | Variable)
    assert_type(g, Result)
    assert_type(tg.jacobian(tg.tanh, x), Result)
    def product(a: Variable, b: Variable) -> Variable:
        return a * b

    assert_type(tg.jacobian(product, (x, x), mode="reverse"), tuple[Result, ...])
    assert_type(tg.hessian(loss, x), Result)
    assert_type(tg.hvp(loss, x, x), Result)
    out, tangent = tg.jvp(tg.tanh, (x,), (x,))
    assert_type(tangent, Result)
    out, vjp_fn = tg.vjp(tg.tanh, x)
    assert_type(vjp_fn(np.ones(2)), tuple[Result, ...])
    assert_type(tg.directional_derivative(loss, x, x), Result)
    assert_type(tg.gradcheck(loss, x), bool)


def loss_and_metrics(w: Variable) -> tuple[Variable, dict[str, float]]:
    value = tg.sum(tg.tanh(w) ** 2)
    return value, {"loss": value.item()}


def test_has_aux() -> None:
    x: NDArray[np.float64] = np.array([0.5, -1.0])
    g, aux = tg.grad(loss_and_metrics, has_aux=True)(x)
    assert_type(g, Result)
    assert_type(aux, dict[str, float])
    assert_type(tg.grad(loss_and_metrics, argnums=(0,), has_aux=True)(x), tuple[tuple[Result, ...], dict[str, float]])
    (value, aux2), g2 = tg.value_and_grad(loss_and_metrics, has_aux=True)(x)
    assert_type(value, float | Variable)
    assert_type(aux2, dict[str, float])
    assert_type(g2, Result)
    out, tangent, aux3 = tg.jvp(loss_and_metrics, (x,), (x,), has_aux=True)
    assert_type(aux3, dict[str, float])
    out, vjp_fn, aux4 = tg.vjp(loss_and_metrics, x, has_aux=True)
    assert_type(vjp_fn(1.0), tuple[Result, ...])
    assert_type(tg.jacobian(loss_and_metrics, x, has_aux=True), tuple[Result, dict[str, float]])
    # a pytree argument: the gradient has its structure (typed as the arrays' Result union)
    params = {"w": x}
    assert_type(tg.grad(lambda p: tg.sum(p["w"] ** 2))(params), Result)
    assert aux["loss"] == aux2["loss"]


def test_dlpack() -> None:
    v = tg.Variable(np.zeros(3))
    assert_type(tg.from_dlpack(np.ones(2)), Variable)
    assert_type(v.__dlpack_device__(), tuple[int, int])
    assert np.from_dlpack(v).shape == (3,)  # (NumPy types the result by its own stubs)


def test_custom_op_and_checks() -> None:
    @tg.custom_op
    def cube(a: NDArray[np.float64]) -> NDArray[np.float64]:
        return a ** 3

    @cube.defvjp
    def _(g: Array, ans: Array, a: Array) -> Array:
        return g * 3 * a ** 2

    assert_type(cube(tg.Variable([1.0, 2.0])), Variable)
    assert_type(tg.numeric.derivative(np.sin, 0.5), NDArray[np.float64])
    assert_type(tg.numeric.gradient(lambda v: np.sum(v ** 2), np.ones(3), full_output=True), tg.numeric.NumericResult)
    report = tg.testing.crosscheck(lambda e, a: e.tanh(a), np.ones(3))
    assert_type(report, tg.testing.CrosscheckReport)
    assert report.ok
