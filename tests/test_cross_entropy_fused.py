"""The fused softmax cross-entropy primitive (`_core._cross_entropy_labels`).

tapegrad.nn.cross_entropy with integer labels runs one C++ primitive whose
VJP is g (softmax(z) - onehot(y)); the reference engine composes
log_softmax and indexing. Every mode is checked against the reference and
finite differences: values, gradients, forward-mode and reverse-mode
Jacobians, Hessians (second order through the differentiable VJP form), and
the errors of the C++ entry point.
"""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.reference as ref
from tapegrad import _core
from helpers import assert_close, numeric_grad

rng = np.random.default_rng(5)
Z = rng.standard_normal((6, 4)) * 3
Y = np.array([0, 3, 1, 1, 2, 3])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_value_and_gradient_match_reference_and_fd(reduction):
    w = rng.standard_normal(6)
    z = tg.Variable(Z, requires_grad=True)
    out = tg.nn.cross_entropy(z, Y, reduction=reduction)
    (out * tg.Variable(w)).sum().backward() if reduction == "none" else out.backward()
    zr = ref.Variable(Z, requires_grad=True)
    outr = tg.nn.cross_entropy(zr, Y, reduction=reduction)
    (outr * ref.Variable(w)).sum().backward() if reduction == "none" else outr.backward()
    assert_close(out.numpy(), np.asarray(outr.data))
    assert_close(z.grad, np.asarray(zr.grad))

    def f(a):
        v = tg.nn.cross_entropy(tg.Variable(a), Y, reduction=reduction).numpy()
        return float((v * w).sum()) if reduction == "none" else float(v)

    assert_close(z.grad, numeric_grad(f, Z), rtol=1e-6, atol_scale=1e-7)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_jacobian_both_modes_match_reference(mode, chunk_size):
    f = lambda z: tg.nn.cross_entropy(z, Y, reduction="none")  # noqa: E731
    got = tg.jacobian(f, Z, mode=mode, chunk_size=chunk_size)
    want = ref.jacobian(f, Z, mode=mode)
    assert got.shape == (6, 6, 4)
    assert_close(got, want)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reduced_forms_are_one_node_and_their_jacobians_match_reference(mode, reduction):
    z = tg.Variable(Z, requires_grad=True)
    assert tg.nn.cross_entropy(z, Y, reduction=reduction).grad_fn.name == "cross_entropy"
    f = lambda z: tg.nn.cross_entropy(z * z, Y, reduction=reduction)  # noqa: E731
    got = tg.jacobian(f, Z, mode=mode)
    assert got.shape == (6, 4)
    assert_close(got, ref.jacobian(f, Z, mode=mode))


def test_hessian_second_order_matches_reference_and_is_symmetric():
    f = lambda z: tg.nn.cross_entropy(z, Y)  # noqa: E731
    h = tg.hessian(f, Z)
    assert_close(h, ref.hessian(f, Z))
    flat = h.reshape(24, 24)
    assert_close(flat, flat.T)
    # grad of grad through create_graph
    z = tg.Variable(Z, requires_grad=True)
    tg.nn.cross_entropy(z, Y).backward(create_graph=True)
    (z.grad * z.grad).sum().backward()
    zr = ref.Variable(Z, requires_grad=True)
    tg.nn.cross_entropy(zr, Y).backward(create_graph=True)
    (zr.grad * zr.grad).sum().backward()
    assert_close(z.grad.numpy() if hasattr(z.grad, "numpy") else z.grad, np.asarray(getattr(zr.grad, "data", zr.grad)))


def test_float32_and_large_logits_are_stable():
    z = np.array([[1000.0, -1000.0, 0.0], [-50.0, 50.0, 49.0]], dtype=np.float32)
    v = tg.Variable(z, requires_grad=True)
    loss = tg.nn.cross_entropy(v, np.array([1, 2]), reduction="none")
    assert loss.dtype == np.float32
    assert np.all(np.isfinite(loss.numpy()))
    np.testing.assert_allclose(loss.numpy(), [2000.0, 1.3132617], rtol=1e-5)  # float32 rounding of 50 - 49
    loss.sum().backward()
    assert np.all(np.isfinite(v.grad))


def test_entry_point_rejects_bad_labels_with_clear_errors():
    z = tg.Variable(Z, requires_grad=True)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\): label 4 at row 1 is out of range"):
        _core._cross_entropy_labels(z, np.array([0, 4, 1, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"label -1"):
        _core._cross_entropy_labels(z, np.array([0, -1, 1, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels must be int64 of shape \(6,\)"):
        _core._cross_entropy_labels(z, np.array([0, 1]))
    with pytest.raises(TypeError, match="labels must be an integer"):
        _core._cross_entropy_labels(z, np.array([0.0, 1, 1, 1, 2, 3]))
    with pytest.raises(ValueError, match="exceeds the int64 range"):
        _core._cross_entropy_labels(z, np.array([0, 2**63 + 5, 1, 1, 2, 3], dtype=np.uint64))
    with pytest.raises(ValueError, match="reduction must be one of"):
        _core._cross_entropy_labels(z, Y, "avg")
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\)"):
        _core._cross_entropy_labels(tg.Variable(np.ones(3)), np.array([0, 1, 2]))
    # nothing was recorded or modified by the failures
    assert z.grad is None


def test_bool_labels_work_as_integers():
    z = np.random.default_rng(1).standard_normal((4, 2))
    labels = np.array([True, False, False, True])
    got = tg.nn.cross_entropy(tg.Variable(z), labels).numpy()
    want = tg.nn.cross_entropy(ref.Variable(z), labels.astype(np.int64)).data
    assert_close(got, np.asarray(want))
