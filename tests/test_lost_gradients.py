"""Where the package reads a Variable's values as a constant, a Variable that requires
grad raises instead of silently losing its gradient (NumPy's np.asarray(v) raises for
it already: Variable.__array__)."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn
from tapegrad.data import TensorDataset

ENGINES = {"tapegrad": tg, "reference": tg.reference}
LOSSES = {
    "mse_loss": (lambda m: m.Variable(np.ones((4, 3))), lambda: np.zeros((4, 3))),
    "l1_loss": (lambda m: m.Variable(np.ones((4, 3))), lambda: np.zeros((4, 3))),
    "huber_loss": (lambda m: m.Variable(np.ones((4, 3))), lambda: np.zeros((4, 3))),
    "cross_entropy": (lambda m: m.Variable(np.ones((4, 3))), lambda: np.full((4, 3), 1 / 3)),
    "nll_loss": (lambda m: m.Variable(-np.ones((4, 3))), lambda: np.full((4, 3), 1 / 3)),
    "binary_cross_entropy": (lambda m: m.Variable(np.full(4, 0.3)), lambda: np.full(4, 0.5)),
    "binary_cross_entropy_with_logits": (lambda m: m.Variable(np.ones(4)), lambda: np.full(4, 0.5)),
}


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_loss_refuses_a_target_that_requires_grad(name, engine, reduction):
    m = ENGINES[engine]
    make_input, make_target = LOSSES[name]
    loss = getattr(nn, name)
    x = make_input(m)
    x.requires_grad = True
    t = m.Variable(make_target(), requires_grad=True)
    with pytest.raises(TypeError, match=f"^{name}: the target requires grad"):
        loss(x, t, reduction=reduction)
    if name == "nll_loss":
        return  # (its target is integer labels, which a Variable cannot hold)
    # the same values as a constant: detached, as an array, or with grad mode off
    want = loss(x, make_target(), reduction=reduction).data
    np.testing.assert_array_equal(loss(x, t.detach(), reduction=reduction).data, want)
    with m.no_grad():
        np.testing.assert_array_equal(loss(x, t, reduction=reduction).data, want)


def test_tensor_dataset_refuses_a_variable_that_requires_grad():
    x = tg.Variable(np.ones((5, 2)), requires_grad=True)
    with pytest.raises(TypeError, match="TensorDataset: an array is a Variable that requires grad"):
        TensorDataset(x, np.arange(5))
    ds = TensorDataset(x.detach(), np.arange(5))
    np.testing.assert_array_equal(ds[0][0], np.ones(2))
