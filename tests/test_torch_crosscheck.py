"""Optional cross-checks against PyTorch (skipped when torch is not installed).

CI installs torch==2.13.0 so these run there; the rest of the suite never
needs torch.
"""
import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(1234)


def _compare(tg_fn, torch_fn, *arrays, rtol=1e-10, atol=1e-12):
    tvars = [tg.Variable(a, requires_grad=True) for a in arrays]
    out = tg_fn(*tvars)
    w = RNG.standard_normal(out.shape)
    (out * w).sum().backward()

    pvars = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    pout = torch_fn(*pvars)
    (pout * torch.tensor(w)).sum().backward()

    np.testing.assert_allclose(out.numpy(), pout.detach().numpy(), rtol=rtol, atol=atol)
    for tv, pv in zip(tvars, pvars):
        np.testing.assert_allclose(tv.grad, pv.grad.numpy(), rtol=rtol, atol=atol)


CASES = {
    "tanh_matmul_broadcast": (
        lambda a, b: tg.tanh(a @ b + 1.0),
        lambda a, b: torch.tanh(a @ b + 1.0),
        [(4, 1, 3, 5), (2, 5, 3)],
    ),
    "softmax_axis0": (lambda a: tg.softmax(a, axis=0), lambda a: torch.softmax(a, dim=0), [(5, 3)]),
    "log_softmax": (lambda a: tg.log_softmax(a * 3.0), lambda a: torch.log_softmax(a * 3.0, dim=-1), [(4, 7)]),
    "logsumexp_tuple": (
        lambda a: tg.logsumexp(a, axis=(0, 2)),
        lambda a: torch.logsumexp(a, dim=(0, 2)),
        [(3, 4, 5)],
    ),
    "sigmoid_log1p_sqrt": (
        lambda a: tg.sigmoid(a) * tg.log1p(a * a) + tg.sqrt(a * a + 1.0),
        lambda a: torch.sigmoid(a) * torch.log1p(a * a) + torch.sqrt(a * a + 1.0),
        [(3, 4)],
    ),
    "div_pow_broadcast": (
        lambda a, b: (a / (b * b + 1.0)) ** 2.0,
        lambda a, b: (a / (b * b + 1.0)) ** 2.0,
        [(2, 3), (1, 3)],
    ),
    "indexing_fancy": (
        lambda a: a[[0, 2, 2], 1:] * 2.0,
        lambda a: a[[0, 2, 2], 1:] * 2.0,
        [(3, 4)],
    ),
    "concat_stack_mean": (
        lambda a, b: tg.stack([tg.concatenate([a, b], axis=1).mean(axis=0), b.max(axis=0).sum() * tg.Variable(np.ones(6))], axis=1),
        lambda a, b: torch.stack([torch.cat([a, b], dim=1).mean(dim=0), b.max(dim=0).values.sum() * torch.ones(6, dtype=torch.float64)], dim=1),
        [(3, 2), (3, 4)],
    ),
    "transpose_sin_cos": (
        lambda a: tg.sin(a.T) * tg.cos(tg.transpose(a, (1, 0))),
        lambda a: torch.sin(a.T) * torch.cos(a.permute(1, 0)),
        [(3, 5)],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch(name):
    tg_fn, torch_fn, shapes = CASES[name]
    arrays = [RNG.standard_normal(s) for s in shapes]
    _compare(tg_fn, torch_fn, *arrays)


def test_mlp_cross_entropy_matches_torch():
    x = RNG.standard_normal((16, 8))
    labels = RNG.integers(0, 5, 16)
    w1, b1 = RNG.standard_normal((8, 32)) * 0.3, RNG.standard_normal(32) * 0.1
    w2, b2 = RNG.standard_normal((32, 5)) * 0.3, RNG.standard_normal(5) * 0.1
    onehot = np.eye(5)[labels]

    params = [tg.Variable(a, requires_grad=True) for a in (w1, b1, w2, b2)]
    h = tg.relu(tg.Variable(x) @ params[0] + params[1])
    loss = -(tg.log_softmax(h @ params[2] + params[3]) * onehot).sum(axis=1).mean()
    loss.backward()

    tparams = [torch.tensor(a, requires_grad=True) for a in (w1, b1, w2, b2)]
    th = torch.relu(torch.tensor(x) @ tparams[0] + tparams[1])
    tloss = torch.nn.functional.cross_entropy(th @ tparams[2] + tparams[3], torch.tensor(labels))
    tloss.backward()

    assert abs(loss.item() - tloss.item()) < 1e-12
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-12)
