"""The fused squared-error primitive (`_core._mse_loss`).

tapegrad.nn.mse_loss with reduction "mean" or "sum" runs one C++ primitive
(VJP 2 scale g (x - t)); the reference engine composes subtract, multiply
and mean. Checked against the reference and finite differences: values,
gradients, both Jacobian modes, Hessians (second order through the
differentiable VJP form), dtypes, and the errors of the entry point.
"""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.reference as ref
from tapegrad import _core
from helpers import assert_close, numeric_grad

rng = np.random.default_rng(11)
X = rng.standard_normal((5, 3))
T = rng.standard_normal((5, 3))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("target_kind", ["array", "variable", "int_array"])
def test_value_and_gradient_match_reference_and_fd(reduction, target_kind):
    t = {"array": T, "variable": tg.Variable(T), "int_array": np.round(T * 3).astype(int)}[target_kind]
    if isinstance(t, tg.Variable):  # a target that requires grad would lose its gradient: refused
        with pytest.raises(TypeError, match="mse_loss: the target requires grad"):
            tg.nn.mse_loss(tg.Variable(X), tg.Variable(T, requires_grad=True), reduction=reduction)
    t_np = np.asarray(t.data) if isinstance(t, tg.Variable) else t
    x = tg.Variable(X, requires_grad=True)
    out = tg.nn.mse_loss(x, t, reduction=reduction)
    assert out.grad_fn is not None and out.grad_fn.name == "mse_loss"  # the fused primitive, not a composition
    out.backward()
    xr = ref.Variable(X, requires_grad=True)
    outr = tg.nn.mse_loss(xr, t_np, reduction=reduction)
    outr.backward()
    assert_close(out.numpy(), np.asarray(outr.data), rtol=1e-14)
    assert_close(x.grad, np.asarray(xr.grad), rtol=1e-14)
    if isinstance(t, tg.Variable):
        assert t.grad is None  # targets are constants
    f = lambda a: float(tg.nn.mse_loss(tg.Variable(a), t_np, reduction=reduction).numpy())  # noqa: E731
    assert_close(x.grad, numeric_grad(f, X), rtol=1e-6, atol_scale=1e-7)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_jacobian_both_modes_match_reference(mode):
    for reduction in ("mean", "sum"):
        f = lambda x: tg.nn.mse_loss(tg.nn.engine_of(x).tanh(x), T, reduction=reduction)  # noqa: E731
        got = tg.jacobian(f, X, mode=mode)
        assert got.shape == (5, 3)
        assert_close(got, ref.jacobian(f, X, mode=mode), rtol=1e-13)


def test_hessian_and_grad_of_grad_match_reference():
    f = lambda x: tg.nn.mse_loss(x * x, T)  # noqa: E731
    assert_close(tg.hessian(f, X), ref.hessian(f, X), rtol=1e-12)
    x = tg.Variable(X, requires_grad=True)
    tg.nn.mse_loss(tg.sin(x), T, reduction="sum").backward(create_graph=True)
    g1 = x.grad
    x.grad = None
    (g1 * g1).sum().backward()
    xr = ref.Variable(X, requires_grad=True)
    tg.nn.mse_loss(ref.sin(xr), T, reduction="sum").backward(create_graph=True)
    gr = xr.grad
    xr.grad = None
    (gr * gr).sum().backward()
    assert_close(np.asarray(x.grad), np.asarray(xr.grad), rtol=1e-12)


def test_float32_keeps_its_dtype_and_float64_target_is_cast():
    x = tg.Variable(X.astype(np.float32), requires_grad=True)
    out = tg.nn.mse_loss(x, T)  # float64 target
    assert out.dtype == np.float32 and out.shape == ()
    out.backward()
    assert x.grad.dtype == np.float32
    want = np.mean((X.astype(np.float32) - T.astype(np.float32)).astype(np.float64) ** 2)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(x.grad, 2 * (X.astype(np.float32) - T.astype(np.float32)) / X.size, rtol=1e-6)


def test_empty_input_mean_is_nan_and_sum_is_zero():
    x = tg.Variable(np.zeros((0, 3)), requires_grad=True)
    with np.errstate(all="ignore"):
        assert np.isnan(tg.nn.mse_loss(x, np.zeros((0, 3))).numpy())
    assert tg.nn.mse_loss(x, np.zeros((0, 3)), reduction="sum").numpy() == 0


def test_entry_point_errors_name_the_op_and_shapes():
    x = tg.Variable(X, requires_grad=True)
    with pytest.raises(ValueError, match=r"mse_loss: input shape \(5, 3\) and target shape \(3,\) differ"):
        tg.nn.mse_loss(x, np.ones(3))
    with pytest.raises(ValueError, match=r"mse_loss: input shape \(5, 3\) and target shape \(3,\) differ"):
        _core._mse_loss(x, np.ones(3), True)
    with pytest.raises(TypeError, match="mse_loss"):
        _core._mse_loss(x, "target", True)
    with pytest.raises(ValueError, match="reduction"):
        tg.nn.mse_loss(x, T, reduction="max")
    assert x.grad is None
