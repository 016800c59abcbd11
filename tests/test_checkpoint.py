"""nn.save_checkpoint / nn.load_checkpoint: a run resumed from a file continues bit for bit (model with
buffers, every optimizer with parameter groups, schedulers); the file is arrays only; errors leave the
model, optimizer and scheduler untouched."""
import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn, optim

rng = np.random.default_rng(0)
X, Y = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)


def build(seed):
    m = nn.Sequential(nn.Linear(3, 8, rng=seed), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2, rng=seed + 1))
    return m


OPTS = {
    "sgd": lambda g: optim.SGD(g, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda g: optim.Adam(g, lr=0.01),
    "adamw": lambda g: optim.AdamW(g, lr=0.01),
    "rmsprop": lambda g: optim.RMSprop(g, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda g: optim.Adagrad(g, lr=0.1, lr_decay=0.01),
}
SCHEDS = {
    "none": None,
    "warmup_cosine": lambda o: optim.SequentialLR(o, [optim.LinearLR(o, 0.1, total_iters=3),
                                                      optim.CosineAnnealingLR(o, T_max=9)], milestones=[3]),
    "one_cycle": lambda o: optim.OneCycleLR(o, max_lr=0.05, total_steps=12, cycle_momentum=False),
    "plateau": lambda o: optim.ReduceLROnPlateau(o, patience=0, factor=0.7),
}


def make(opt_name, sched_name, seed):
    m = build(seed)
    groups = [{"params": m[0].parameters(), "lr": 0.02}, {"params": m[1].parameters() + m[3].parameters()}]
    o = OPTS[opt_name](groups)
    s = SCHEDS[sched_name](o) if SCHEDS[sched_name] else None
    return m, o, s


def train(m, o, s, steps):
    for step in steps:
        idx = slice(8 * (step % 8), 8 * (step % 8) + 8)
        loss = nn.cross_entropy(m(tg.Variable(X[idx])), Y[idx])
        o.zero_grad()
        loss.backward()
        o.step()
        if isinstance(s, optim.ReduceLROnPlateau):
            s.step(loss.item())
        elif s is not None:
            s.step()


@pytest.mark.parametrize("sched_name", list(SCHEDS))
@pytest.mark.parametrize("opt_name", list(OPTS))
def test_resume_from_a_checkpoint_is_bit_for_bit(tmp_path, opt_name, sched_name):
    m, o, s = make(opt_name, sched_name, 0)
    train(m, o, s, range(12))
    straight = m.state_dict()

    m, o, s = make(opt_name, sched_name, 0)
    train(m, o, s, range(5))
    nn.save_checkpoint(tmp_path / "c.npz", m, o, s, epoch=5, history={"loss": [1.5, 1.25]})
    m2, o2, s2 = make(opt_name, sched_name, 7)  # a fresh run, other weights
    meta = nn.load_checkpoint(tmp_path / "c.npz", m2, o2, s2)
    assert meta == {"epoch": 5, "history": {"loss": [1.5, 1.25]}}
    train(m2, o2, s2, range(5, 12))
    resumed = m2.state_dict()
    assert list(straight) == list(resumed)
    for k in straight:
        np.testing.assert_array_equal(straight[k], resumed[k], err_msg=k)


def test_the_file_is_arrays_only_and_meta_round_trips(tmp_path):
    m, o, s = make("adam", "one_cycle", 0)
    train(m, o, s, range(1))
    meta = {"epoch": 3, "lr": 0.1 + 0.2, "big": math.inf, "name": "run-1", "pair": (1, 2.5), "none": None,
            "nested": {"a": [1, {"b": np.arange(3)}]}, "weights": np.ones((2, 2), np.float32), "flag": True,
            "np_scalar": np.float32(0.5)}
    nn.save_checkpoint(tmp_path / "c.npz", m, o, s, **meta)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        assert "model/1.running_mean" in z.files and "optimizer/state/0/exp_avg" in z.files
    back = nn.load_checkpoint(tmp_path / "c.npz", build(3))
    assert back["lr"] == 0.1 + 0.2 and back["big"] == math.inf and back["pair"] == (1, 2.5)
    assert back["none"] is None and back["flag"] is True and back["np_scalar"] == 0.5
    np.testing.assert_array_equal(back["nested"]["a"][1]["b"], np.arange(3))
    assert back["weights"].dtype == np.float32
    with pytest.raises(TypeError, match="meta/bad is a object"):
        nn.save_checkpoint(tmp_path / "d.npz", m, bad=object())


def test_errors_leave_everything_untouched(tmp_path):
    m, o, s = make("sgd", "warmup_cosine", 0)
    train(m, o, s, range(3))
    nn.save_checkpoint(tmp_path / "c.npz", m, o, s)
    nn.save_checkpoint(tmp_path / "model_only.npz", m)
    nn.save(m, tmp_path / "weights.npz")

    m2, o2, s2 = make("sgd", "warmup_cosine", 5)
    before = (m2.state_dict(), o2.state_dict(), s2.state_dict())

    def untouched():
        now = (m2.state_dict(), o2.state_dict(), s2.state_dict())
        assert all(np.array_equal(before[0][k], now[0][k]) for k in before[0])
        assert before[1]["param_groups"] == now[1]["param_groups"] and now[1]["state"] == before[1]["state"]
        assert before[2] == now[2]

    with pytest.raises(FileNotFoundError):
        nn.load_checkpoint(tmp_path / "nope.npz", m2)
    with pytest.raises(ValueError, match="not a checkpoint.*nn.load"):
        nn.load_checkpoint(tmp_path / "weights.npz", m2)
    with pytest.raises(ValueError, match="holds no optimizer state"):
        nn.load_checkpoint(tmp_path / "model_only.npz", m2, o2)
    with pytest.raises(ValueError, match="from a 'SGD' optimizer"):  # model loads, then the optimizer fails
        nn.load_checkpoint(tmp_path / "c.npz", m2, optim.Adam(m2.parameters()))
    untouched()
    wrong = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match="3.weight.*c.npz"):
        nn.load_checkpoint(tmp_path / "c.npz", wrong)
    with pytest.raises(ValueError, match="ExponentialLR"):  # the scheduler is last: model and optimizer put back
        nn.load_checkpoint(tmp_path / "c.npz", m2, o2, optim.ExponentialLR(o2, 0.5))
    s2 = optim.SequentialLR(o2, [optim.LinearLR(o2, 0.1, total_iters=3), optim.CosineAnnealingLR(o2, T_max=9)],
                            milestones=[3])
    before = (before[0], before[1], s2.state_dict())
    untouched()
    nn.load_checkpoint(tmp_path / "c.npz", m2, o2, s2)
    assert s2.last_epoch == 3 and o2.param_groups[0]["lr"] == o.param_groups[0]["lr"]
