"""Optional: every layer and loss against PyTorch (float64), values and gradients, with non-default
parameters, so a bug in a layer's composition cannot hide behind the cross-engine test (which runs the
same Python composition on both engines)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402
from tapegrad import nn  # noqa: E402

F = torch.nn.functional
RTOL = 1e-11


def t(a, grad=False):
    return torch.tensor(np.array(a), dtype=torch.float64 if np.asarray(a).dtype.kind == "f" else None,
                        requires_grad=grad)


def compare(ours_fn, theirs_fn, inputs, rtol=RTOL, atol=1e-13, seed=7):
    """Values and gradients (of a random projection) w.r.t. every float input, ours vs PyTorch."""
    vs = [tg.Variable(a, requires_grad=True) for a in inputs]
    ts = [t(a, True) for a in inputs]
    out, tout = ours_fn(*vs), theirs_fn(*ts)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=atol)
    w = np.random.default_rng(seed).normal(size=out.shape)
    (out * w).sum().backward()
    (tout * t(w)).sum().backward()
    for v, tv in zip(vs, ts):
        np.testing.assert_allclose(v.grad, tv.grad.numpy(), rtol=1e-10, atol=1e-12)


rng = np.random.default_rng(0)


def test_linear_non_default_weights():
    lin = nn.Linear(4, 3, rng=1, dtype=np.float64)
    x, W, b = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    compare(lambda x, W, b: nn.functional_call(lin, {"weight": W, "bias": b}, x),
            lambda x, W, b: F.linear(x, W.T, b), [x, W, b])


@pytest.mark.parametrize("layer,tf", [
    (nn.ReLU(), F.relu), (nn.LeakyReLU(0.3), lambda x: F.leaky_relu(x, 0.3)), (nn.Tanh(), torch.tanh),
    (nn.Sigmoid(), torch.sigmoid), (nn.GELU(), lambda x: F.gelu(x, approximate="tanh")),
    (nn.Softmax(axis=0), lambda x: F.softmax(x, 0)), (nn.Identity(), lambda x: x * 1),
    (nn.Flatten(), lambda x: torch.flatten(x, 1)),
], ids=lambda v: type(v).__name__ if isinstance(v, nn.Layer) else "")
def test_activations(layer, tf):
    x = rng.normal(size=(5, 4)) if not isinstance(layer, nn.Flatten) else rng.normal(size=(2, 3, 4))
    compare(layer, tf, [x])


def test_layernorm_affine_non_default():
    ln = nn.LayerNorm(4, eps=1e-3, dtype=np.float64)
    x, w, b = rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=4)
    compare(lambda x, w, b: nn.functional_call(ln, {"weight": w, "bias": b}, x),
            lambda x, w, b: F.layer_norm(x, (4,), w, b, eps=1e-3), [x, w, b])


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("momentum", [0.3, None])
def test_batchnorm1d_train_eval_and_running_statistics(shape, momentum):
    bn = nn.BatchNorm1d(3, eps=1e-3, momentum=momentum, dtype=np.float64)
    tbn = torch.nn.BatchNorm1d(3, eps=1e-3, momentum=momentum).double()
    w, b = rng.normal(size=3), rng.normal(size=3)
    bn.weight.data[...] = w
    bn.bias.data[...] = b
    with torch.no_grad():
        tbn.weight.copy_(t(w))
        tbn.bias.copy_(t(b))
    for step in range(3):  # running statistics over several batches
        x = rng.normal(loc=step, size=shape)
        xv, xt = tg.Variable(x, requires_grad=True), t(x, True)
        out, tout = bn(xv), tbn(xt)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=RTOL, atol=1e-12)
        wts = np.random.default_rng(step).normal(size=shape)
        bn.zero_grad()
        (out * wts).sum().backward()
        (tout * t(wts)).sum().backward()
        np.testing.assert_allclose(xv.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.weight.grad, tbn.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.bias.grad, tbn.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
        tbn.zero_grad()
        np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-13)
        np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-13)
        assert int(bn.num_batches_tracked) == int(tbn.num_batches_tracked)
    bn.eval()
    tbn.eval()
    x = rng.normal(size=shape)
    compare(bn, tbn, [x])


def test_batchnorm1d_without_affine_or_running_stats():
    for kw in ({"affine": False}, {"track_running_stats": False}):
        bn, tbn = nn.BatchNorm1d(3, **kw, dtype=np.float64), torch.nn.BatchNorm1d(3, **kw).double()
        bn.eval()
        tbn.eval()
        x = rng.normal(loc=2, size=(6, 3))
        compare(bn, tbn, [x])


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding(padding_idx):
    emb = nn.Embedding(6, 3, padding_idx=padding_idx, rng=0, dtype=np.float64)
    temb = torch.nn.Embedding(6, 3, padding_idx=padding_idx).double()
    with torch.no_grad():
        temb.weight.copy_(t(emb.weight.data))
    idx = np.array([[0, 2, 2], [5, 2, 1]])
    out, tout = emb(idx), temb(torch.from_numpy(idx))
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    w = rng.normal(size=out.shape)
    (out * w).sum().backward()
    (tout * t(w)).sum().backward()
    np.testing.assert_allclose(emb.weight.grad, temb.weight.grad.numpy(), rtol=1e-13)


LOGITS = rng.normal(size=(6, 4)) * 3
LABELS = np.array([0, 3, 1, 1, 2, 0])
PROBS = np.random.default_rng(1).dirichlet(np.ones(4), size=6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(reduction):
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) * 2
    compare(lambda a: nn.mse_loss(a, y, reduction), lambda a: F.mse_loss(a, t(y), reduction=reduction), [x])
    compare(lambda a: nn.l1_loss(a, y, reduction), lambda a: F.l1_loss(a, t(y), reduction=reduction), [x])
    for delta in (1.0, 0.7, 2.5):
        compare(lambda a: nn.huber_loss(a, y, reduction, delta=delta),
                lambda a: F.huber_loss(a, t(y), reduction=reduction, delta=delta), [x])
        compare(lambda a: nn.HuberLoss(reduction, delta=delta)(a, y),
                lambda a: F.huber_loss(a, t(y), reduction=reduction, delta=delta), [x])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_cross_entropy_with_label_smoothing(reduction, smoothing):
    for target in (LABELS, PROBS):
        compare(lambda z: nn.cross_entropy(z, target, reduction, label_smoothing=smoothing),
                lambda z: F.cross_entropy(z, torch.from_numpy(target), reduction=reduction,
                                          label_smoothing=smoothing), [LOGITS])
        compare(lambda z: nn.CrossEntropyLoss(reduction, label_smoothing=smoothing)(z, target),
                lambda z: F.cross_entropy(z, torch.from_numpy(target), reduction=reduction,
                                          label_smoothing=smoothing), [LOGITS])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_and_binary_losses(reduction):
    logp = np.log(np.random.default_rng(2).dirichlet(np.ones(4), size=6))
    compare(lambda a: nn.nll_loss(a, LABELS, reduction),
            lambda a: F.nll_loss(a, torch.from_numpy(LABELS), reduction=reduction), [logp])
    compare(lambda a: nn.NLLLoss(reduction)(a, LABELS),
            lambda a: F.nll_loss(a, torch.from_numpy(LABELS), reduction=reduction), [logp])
    p = np.random.default_rng(3).uniform(0.02, 0.98, size=(5, 2))
    y = np.random.default_rng(4).uniform(0, 1, size=(5, 2))
    compare(lambda a: nn.binary_cross_entropy(a, y, reduction),
            lambda a: F.binary_cross_entropy(a, t(y), reduction=reduction), [p])
    compare(lambda a: nn.BCELoss(reduction)(a, y),
            lambda a: F.binary_cross_entropy(a, t(y), reduction=reduction), [p])
    z = rng.normal(size=(5, 2)) * 4
    compare(lambda a: nn.binary_cross_entropy_with_logits(a, y, reduction),
            lambda a: F.binary_cross_entropy_with_logits(a, t(y), reduction=reduction), [z])


def test_binary_cross_entropy_clamps_logs_like_torch():
    p, y = np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0])
    ours = nn.binary_cross_entropy(tg.Variable(p), y, "none").numpy()
    theirs = F.binary_cross_entropy(t(p), t(y), reduction="none").numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-14)
