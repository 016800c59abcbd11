"""Optional: a tapegrad MLP follows PyTorch's SGD loss trajectory (float64, same weights and data order)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402
from tapegrad import nn, optim  # noqa: E402


def test_mlp_10_32_16_3_tanh_sgd_matches_torch_over_100_steps():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 10))
    y = rng.integers(0, 3, 256)
    model = nn.MLP([10, 32, 16, 3], activation="tanh", rng=0, dtype=np.float64)
    tmodel = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16),
                                 torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    with torch.no_grad():
        for lin, tlin in zip([model[0], model[2], model[4]], [tmodel[0], tmodel[2], tmodel[4]]):
            tlin.weight.copy_(torch.from_numpy(lin.weight.data.T.copy()))  # ours is (in, out)
            tlin.bias.copy_(torch.from_numpy(lin.bias.data.copy()))
    opt = optim.SGD(model.parameters(), lr=0.1)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1)
    order = np.random.default_rng(1).permutation(256)
    ours, theirs = [], []
    for step in range(100):
        idx = order[(step % 8) * 32:(step % 8 + 1) * 32]
        loss = nn.cross_entropy(model(tg.Variable(X[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(X[idx])), torch.from_numpy(y[idx]))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        ours.append(loss.item())
        theirs.append(tloss.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    assert ours[-1] < ours[0]
    np.testing.assert_allclose(model[0].weight.data, tmodel[0].weight.detach().numpy().T, rtol=1e-9, atol=1e-12)
