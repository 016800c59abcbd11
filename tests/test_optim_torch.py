"""Optional: optimizers (with parameter groups), gradient clipping and learning-rate schedulers follow
PyTorch's trajectories in float64 over many steps (same weights, same data order)."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tapegrad as tg  # noqa: E402
from tapegrad import nn, optim  # noqa: E402

rng = np.random.default_rng(0)
X = rng.normal(size=(96, 5))
Y = rng.integers(0, 3, 96)


def models():
    model = nn.MLP([5, 8, 3], activation="tanh", rng=0, dtype=np.float64)
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    with torch.no_grad():
        for lin, tlin in zip([model[0], model[2]], [tmodel[0], tmodel[2]]):
            tlin.weight.copy_(torch.from_numpy(lin.weight.data.T.copy()))  # ours is (in, out)
            tlin.bias.copy_(torch.from_numpy(lin.bias.data.copy()))
    return model, tmodel


def groups(params, split, extra):
    """Two parameter groups (the first layer, the rest) with the second's options overridden."""
    if not split:
        return params
    return [{"params": params[:2]}, dict({"params": params[2:]}, **extra)]


def run_both(make, tmake, steps=30, split=False, extra=None, sched=None, tsched=None, clip=None):
    model, tmodel = models()
    opt = make(groups(model.parameters(), split, extra or {}))
    topt = tmake(groups(list(tmodel.parameters()), split, extra or {}))
    s = sched(opt) if sched else None
    ts = tsched(topt) if tsched else None
    ours, theirs, lrs, tlrs = [], [], [], []
    for step in range(steps):
        idx = slice((step % 6) * 16, (step % 6 + 1) * 16)
        loss = nn.cross_entropy(model(tg.Variable(X[idx])), Y[idx])
        opt.zero_grad()
        loss.backward()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(X[idx])), torch.from_numpy(Y[idx]))
        topt.zero_grad()
        tloss.backward()
        if clip:
            clip(model.parameters(), tmodel.parameters())
        opt.step()
        topt.step()
        if s:
            s.step()
            ts.step()
        lrs.append([g["lr"] for g in opt.param_groups])
        tlrs.append([g["lr"] for g in topt.param_groups])
        ours.append(loss.item())
        theirs.append(tloss.item())
    np.testing.assert_allclose(lrs, tlrs, rtol=1e-12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        ref = tp.detach().numpy()
        np.testing.assert_allclose(p.data, ref.T if ref.ndim == 2 else ref, rtol=1e-9, atol=1e-12)
    return opt, topt


OPTIMIZERS = {
    "sgd_momentum_nesterov_wd": (lambda p: optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01),
                                 lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True,
                                                           weight_decay=0.01)),
    "adam_wd": (lambda p: optim.Adam(p, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05),
                lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)),
    "adamw": (lambda p: optim.AdamW(p, lr=0.01, weight_decay=0.1),
              lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
    "rmsprop": (lambda p: optim.RMSprop(p, lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "rmsprop_centered_momentum_wd": (
        lambda p: optim.RMSprop(p, lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.02, momentum=0.7, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.02, momentum=0.7,
                                      centered=True)),
    "adagrad": (lambda p: optim.Adagrad(p, lr=0.1), lambda p: torch.optim.Adagrad(p, lr=0.1)),
    "adagrad_decay_wd_init": (
        lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.03, initial_accumulator_value=0.2,
                                eps=1e-8),
        lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.03, initial_accumulator_value=0.2,
                                      eps=1e-8)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_trajectory(name):
    run_both(*OPTIMIZERS[name])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_param_groups_with_their_own_lr_and_weight_decay(name):
    extra = {"lr": 0.03, "weight_decay": 0.2}
    opt, _ = run_both(*OPTIMIZERS[name], split=True, extra=extra)
    assert opt.param_groups[1]["lr"] == 0.03 and opt.param_groups[1]["weight_decay"] == 0.2


def test_zero_grad_set_to_none_false_keeps_zeroed_arrays():
    model, tmodel = models()
    opt = optim.SGD(model.parameters(), lr=0.1)
    nn.cross_entropy(model(tg.Variable(X[:4])), Y[:4]).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_clip_grad_value_matches_torch():
    def clip(ps, tps):
        optim.clip_grad_value(ps, 0.05)
        torch.nn.utils.clip_grad_value_(list(tps), 0.05)
    run_both(*OPTIMIZERS["sgd_momentum_nesterov_wd"], clip=clip)


def test_clip_grad_norm_matches_torch():
    def clip(ps, tps):
        optim.clip_grad_norm(ps, 0.3)
        torch.nn.utils.clip_grad_norm_(list(tps), 0.3)
    run_both(*OPTIMIZERS["adam_wd"], clip=clip)


S = torch.optim.lr_scheduler
# (CosineAnnealingLR runs to T_max only: past it PyTorch rises again, ours stays at eta_min, as documented.)
SCHEDULERS = {
    "step": (lambda o: optim.StepLR(o, 4, gamma=0.5), lambda o: S.StepLR(o, 4, gamma=0.5)),
    "cosine": (lambda o: optim.CosineAnnealingLR(o, T_max=30, eta_min=0.01),
               lambda o: S.CosineAnnealingLR(o, T_max=30, eta_min=0.01)),
    "exponential": (lambda o: optim.ExponentialLR(o, 0.9), lambda o: S.ExponentialLR(o, 0.9)),
    "linear_warmup": (lambda o: optim.LinearLR(o, start_factor=0.1, total_iters=6),
                      lambda o: S.LinearLR(o, start_factor=0.1, total_iters=6)),
    "warmup_then_cosine": (
        lambda o: optim.SequentialLR(o, [optim.LinearLR(o, 0.2, total_iters=5),
                                         optim.CosineAnnealingLR(o, T_max=25)], milestones=[5]),
        lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.2, total_iters=5), S.CosineAnnealingLR(o, T_max=25)],
                                 milestones=[5])),
    "one_cycle": (lambda o: optim.OneCycleLR(o, max_lr=0.5, total_steps=30),
                  lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=30)),
    "one_cycle_linear_three_phase": (
        lambda o: optim.OneCycleLR(o, max_lr=[0.3, 0.6], epochs=3, steps_per_epoch=10, pct_start=0.25,
                                   anneal_strategy="linear", three_phase=True, div_factor=10,
                                   final_div_factor=100),
        lambda o: S.OneCycleLR(o, max_lr=[0.3, 0.6], epochs=3, steps_per_epoch=10, pct_start=0.25,
                               anneal_strategy="linear", three_phase=True, div_factor=10, final_div_factor=100)),
}


@pytest.mark.parametrize("sname", list(SCHEDULERS))
@pytest.mark.parametrize("oname", ["sgd_momentum_nesterov_wd", "adam_wd"])
def test_scheduler_trajectory(sname, oname):
    opt, topt = run_both(*OPTIMIZERS[oname], split=True, extra={"lr": 0.05}, sched=SCHEDULERS[sname][0],
                         tsched=SCHEDULERS[sname][1])
    if sname.startswith("one_cycle"):  # momentum / beta1 cycled as well
        key = "momentum" if oname.startswith("sgd") else "betas"
        assert [g[key] for g in opt.param_groups] == pytest.approx([g[key] for g in topt.param_groups])


def test_one_cycle_past_total_steps_raises():
    p = tg.Variable(np.ones(2), requires_grad=True)
    s = optim.OneCycleLR(optim.SGD([p], lr=0.1), max_lr=1.0, total_steps=3)
    s.step()
    s.step()
    s.step()
    with pytest.raises(ValueError, match="past total_steps=3"):
        s.step()
    with pytest.raises(ValueError, match="momentum or betas"):
        optim.OneCycleLR(optim.Adagrad([p]), max_lr=1.0, total_steps=3)


@pytest.mark.parametrize("kw", [
    {}, {"mode": "max", "factor": 0.5, "patience": 1, "threshold": 0.05, "threshold_mode": "abs", "cooldown": 2,
         "min_lr": 0.004},
])
def test_reduce_lr_on_plateau(kw):
    p = tg.Variable(np.ones(2), requires_grad=True)
    tp = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt, topt = optim.SGD([p], lr=0.1), torch.optim.SGD([tp], lr=0.1)
    s, ts = optim.ReduceLROnPlateau(opt, **kw), S.ReduceLROnPlateau(topt, **kw)
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.97, 0.89, 0.99] * 5
    for m in metrics:
        s.step(m)
        ts.step(m)
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-15)
    assert opt.lr < 0.1 or kw == {}  # it did reduce (the defaults' patience is 10)
    assert not math.isnan(opt.lr)
