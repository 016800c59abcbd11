"""tapegrad.optim: updates against hand-computed ones, state round-trips, clipping, schedulers."""
import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn, optim


def param(values, grad):
    p = tg.Variable(np.array(values, dtype=float), requires_grad=True)
    p.grad = np.array(grad, dtype=float)
    return p


def test_sgd_plain_and_weight_decay():
    p = param([1.0, -2.0], [0.5, 0.25])
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [1 - 0.05, -2 - 0.025], rtol=1e-15)
    p = param([1.0, -2.0], [0.5, 0.25])
    optim.SGD([p], lr=0.1, weight_decay=0.01).step()
    np.testing.assert_allclose(p.data, [1 - 0.1 * (0.5 + 0.01), -2 - 0.1 * (0.25 - 0.02)], rtol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_by_hand(nesterov):
    p = param([1.0, 2.0], [0.0, 0.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=nesterov)
    w = np.array([1.0, 2.0])
    buf = np.zeros(2)
    for g in ([0.5, -1.0], [0.25, 0.5], [-1.0, 0.0]):
        g = np.array(g)
        p.grad = g.copy()
        opt.step()
        buf = 0.9 * buf + g
        d = g + 0.9 * buf if nesterov else buf
        w = w - 0.1 * d
        np.testing.assert_allclose(p.data, w, rtol=1e-14)


@pytest.mark.parametrize("cls,wd", [(optim.Adam, 0.0), (optim.Adam, 0.1), (optim.AdamW, 0.1)])
def test_adam_by_hand(cls, wd):
    p = param([1.0, -0.5, 2.0], [0.0, 0.0, 0.0])
    opt = cls([p], lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    w = p.data.copy()
    m = np.zeros(3)
    v = np.zeros(3)
    rng = np.random.default_rng(0)
    for t in range(1, 6):
        g = rng.normal(size=3)
        p.grad = g.copy()
        opt.step()
        if cls is optim.AdamW:
            w = w * (1 - 0.01 * wd)
        else:
            g = g + wd * w
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g * g
        w = w - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.95 ** t)) + 1e-6)
        np.testing.assert_allclose(p.data, w, rtol=1e-13)
    assert opt.state[0]["step"] == 5


def test_float32_parameters_and_skipping_params_without_grad():
    p = tg.Variable(np.ones(3, dtype=np.float32), requires_grad=True)
    q = tg.Variable(np.ones(2), requires_grad=True)
    p.grad = np.full(3, 0.5, dtype=np.float32)
    for opt in (optim.SGD([p, q], lr=0.1, momentum=0.5), optim.Adam([p, q], lr=0.1)):
        opt.step()
        assert p.dtype == np.float32
        np.testing.assert_array_equal(q.data, np.ones(2))  # no grad: untouched
        assert opt.state[1] == {}  # and no buffers made for it
        assert set(opt.state[0]) == ({"momentum_buffer"} if isinstance(opt, optim.SGD)
                                     else {"step", "exp_avg", "exp_avg_sq"})
        assert opt.state[0].get("momentum_buffer", opt.state[0].get("exp_avg")).dtype == np.float32
    assert p.data[0] < 1


def test_one_call_step_validates_its_lists():
    """The C++ step over all parameters rejects malformed lists instead of reading past them."""
    from tapegrad import _core
    p = tg.Variable(np.ones(3), requires_grad=True)
    p.grad = np.ones(3)
    with pytest.raises(TypeError, match="equal length"):
        _core._sgd_steps([p], [], 0.1, 0.0, False, 0.0)
    with pytest.raises(TypeError, match="not a Variable"):
        _core._sgd_steps([np.ones(3)], [{}], 0.1, 0.0, False, 0.0)
    with pytest.raises(TypeError, match="not a dict"):
        _core._adam_steps([p], [None], 0.1, 0.9, 0.99, 1e-8, 0.0, False)
    with pytest.raises(TypeError, match="momentum_buffer"):
        _core._sgd_steps([p], [{"momentum_buffer": np.zeros(3)}], 0.1, 0.9, False, 0.0)
    with pytest.raises(ValueError, match="momentum buffer must have the parameter's shape"):
        _core._sgd_steps([p], [{"momentum_buffer": tg.Variable(np.zeros(2))}], 0.1, 0.9, False, 0.0)
    np.testing.assert_array_equal(p.data, np.ones(3))


def _run(opt_factory, steps, resume_at=None):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    m = nn.MLP([3, 8, 2], rng=0)
    opt = opt_factory(m.parameters())
    for s in range(steps):
        if s == resume_at:  # continue with a fresh model and optimizer restored from state dicts
            state, ostate = m.state_dict(), opt.state_dict()
            m = nn.MLP([3, 8, 2], rng=1)
            m.load_state_dict(state)
            opt = opt_factory(m.parameters())
            opt.load_state_dict(ostate)
        idx = slice(8 * (s % 8), 8 * (s % 8) + 8)
        loss = nn.cross_entropy(m(tg.Variable(X[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.state_dict()


@pytest.mark.parametrize("factory", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: optim.Adam(ps, lr=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.05),
], ids=["sgd", "adam", "adamw"])
def test_state_dict_resume_is_exact(factory):
    straight = _run(factory, 12)
    resumed = _run(factory, 12, resume_at=5)
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)


def test_state_dict_is_a_copy_and_mismatch_errors():
    p = param([1.0, 2.0], [1.0, 1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    sd = opt.state_dict()
    opt.step()
    assert not np.array_equal(sd["state"][0]["momentum_buffer"], opt.state[0]["momentum_buffer"].data)
    with pytest.raises(ValueError, match="from a 'SGD' optimizer"):
        optim.Adam([p]).load_state_dict(sd)
    with pytest.raises(ValueError, match="the optimizer 2"):
        optim.SGD([p, param([1.0], [1.0])], lr=0.1).load_state_dict(sd)


def test_optimizer_argument_errors():
    p = param([1.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD([p], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta1"):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="does not require grad"):
        optim.SGD([tg.Variable(np.ones(2))], lr=0.1)
    with pytest.raises(TypeError, match="single Variable"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="not a tapegrad.Variable"):
        optim.SGD([np.ones(2)], lr=0.1)


def test_zero_grad():
    p = param([1.0], [1.0])
    opt = optim.Adam([p])
    opt.zero_grad()
    assert p.grad is None


def test_clip_grad_norm():
    a, b = param([0.0, 0.0], [3.0, 0.0]), param([0.0], [4.0])
    norm = optim.clip_grad_norm([a, b], 1.0)
    assert norm == pytest.approx(5.0)
    total = math.sqrt(float((a.grad ** 2).sum() + (b.grad ** 2).sum()))
    assert total == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(a.grad / b.grad[0], [0.75, 0.0])
    c = param([0.0], [0.5])
    assert optim.clip_grad_norm([c], 1.0) == pytest.approx(0.5)
    assert c.grad[0] == 0.5  # below the threshold: untouched
    with pytest.raises(ValueError):
        optim.clip_grad_norm([c], 0)


def test_schedulers():
    p = param([1.0], [1.0])
    opt = optim.SGD([p], lr=1.0)
    s = optim.StepLR(opt, step_size=3, gamma=0.5)
    lrs = [s.step() for _ in range(7)]
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    opt = optim.SGD([p], lr=1.0)
    c = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    lrs = [c.step() for _ in range(6)]
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (1, 2, 3, 4, 4, 4)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-15)
    assert c.get_last_lr() == [pytest.approx(0.1)]  # one lr per group, as PyTorch
    c2 = optim.CosineAnnealingLR(optim.SGD([p], lr=1.0), T_max=4, eta_min=0.1)
    c2.load_state_dict(c.state_dict())
    assert c2.last_epoch == 6
    with pytest.raises(ValueError):
        optim.StepLR(opt, step_size=0)
    with pytest.raises(TypeError):
        optim.CosineAnnealingLR(object(), T_max=3)


def test_rmsprop_and_adagrad_by_hand():
    rng = np.random.default_rng(0)
    p = param([1.0, -0.5], [0.0, 0.0])
    opt = optim.RMSprop([p], lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.5, centered=True)
    w, v, ga, buf = p.data.copy(), np.zeros(2), np.zeros(2), np.zeros(2)
    for _ in range(4):
        g = rng.normal(size=2)
        p.grad = g.copy()
        opt.step()
        g = g + 0.1 * w
        v = 0.9 * v + 0.1 * g * g
        ga = 0.9 * ga + 0.1 * g
        buf = 0.5 * buf + g / (np.sqrt(v - ga * ga) + 1e-6)
        w = w - 0.01 * buf
        np.testing.assert_allclose(p.data, w, rtol=1e-13)
    q = param([2.0, 1.0], [0.0, 0.0])
    opt = optim.Adagrad([q], lr=0.1, lr_decay=0.5, initial_accumulator_value=0.3, eps=1e-9)
    w, acc = q.data.copy(), np.full(2, 0.3)
    for t in range(1, 4):
        g = rng.normal(size=2)
        q.grad = g.copy()
        opt.step()
        acc = acc + g * g
        w = w - 0.1 / (1 + (t - 1) * 0.5) * g / (np.sqrt(acc) + 1e-9)
        np.testing.assert_allclose(q.data, w, rtol=1e-13)
    assert opt.state[0]["step"] == 3


def test_param_groups_options_and_errors():
    a, b = param([1.0], [1.0]), param([1.0], [1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 1.0}], lr=0.1)
    opt.step()
    assert a.data[0] == pytest.approx(0.9) and b.data[0] == pytest.approx(1 - 0.5 * 2)
    assert opt.lr == 0.1 and opt.param_groups[1]["initial_lr"] == 0.5
    opt.lr = 0.01  # the attribute sets every group
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01]
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError, match="unknown option"):
        optim.Adam([{"params": [a], "momentum": 0.9}])
    with pytest.raises(ValueError, match="group 1 is empty"):
        optim.SGD([{"params": [a]}, {"params": []}], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([{"params": [a], "lr": -1}], lr=0.1)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="groups have sizes"):
        optim.SGD([a, b], lr=0.1).load_state_dict(sd)


def test_clip_grad_value_and_zero_grad_to_zeros():
    a = param([0.0, 0.0, 0.0], [3.0, -0.2, -5.0])
    optim.clip_grad_value([a, tg.Variable(np.ones(1), requires_grad=True)], 1.0)
    np.testing.assert_array_equal(a.grad, [1.0, -0.2, -1.0])
    with pytest.raises(ValueError, match="clip_value"):
        optim.clip_grad_value([a], 0)
    opt = optim.SGD([a], lr=0.1)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad, [0.0, 0.0, 0.0])


def test_new_schedulers_closed_forms():
    p = param([1.0], [1.0])
    opt = optim.SGD([p], lr=1.0)
    s = optim.ExponentialLR(opt, 0.5)
    assert [s.step() for _ in range(3)] == [0.5, 0.25, 0.125]
    opt = optim.SGD([p], lr=1.0)
    s = optim.LinearLR(opt, start_factor=0.25, total_iters=3)
    assert opt.lr == 0.25  # applied at creation, as in PyTorch
    assert [s.step() for _ in range(4)] == [0.5, 0.75, 1.0, 1.0]
    opt = optim.SGD([p], lr=1.0, momentum=0.9)
    s = optim.OneCycleLR(opt, max_lr=2.0, total_steps=10, anneal_strategy="linear", pct_start=0.5)
    assert opt.lr == pytest.approx(2.0 / 25) and opt.momentum == pytest.approx(0.95)
    lrs = [s.step() for _ in range(4)]
    assert lrs[-1] == pytest.approx(2.0) and opt.momentum == pytest.approx(0.85)  # the peak at step 4
    opt = optim.SGD([p], lr=1.0)
    r = optim.ReduceLROnPlateau(opt, patience=1, factor=0.5, cooldown=1)
    lrs = [r.step(m) for m in (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)]
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    with pytest.raises(ValueError, match="NaN"):
        r.step(float("nan"))
    with pytest.raises(ValueError, match="milestones"):
        optim.SequentialLR(opt, [optim.LinearLR(opt), optim.ExponentialLR(opt, 0.5)], milestones=[])
    with pytest.raises(ValueError, match="from a 'StepLR' scheduler"):
        optim.ExponentialLR(opt, 0.5).load_state_dict(optim.StepLR(opt, 2).state_dict())


def test_zero_grad_and_clip_grad_value_with_a_graph_gradient():
    # backward(create_graph=True) leaves Variables in .grad: zero_grad(set_to_none=False)
    # replaces them with zeros; clip_grad_value refuses (clipping in place would cut the graph)
    w = tg.Variable(np.array([1.0, -2.0]), requires_grad=True)
    (w * w * w).sum().backward(create_graph=True)
    assert isinstance(w.grad, tg.Variable)
    with pytest.raises(TypeError, match=r"clip_grad_value: a gradient of shape \(2,\) is a Variable"):
        optim.clip_grad_value([w], 1.0)
    optim.SGD([w], lr=0.1).zero_grad(set_to_none=False)
    assert isinstance(w.grad, np.ndarray) and np.array_equal(w.grad, [0.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01),
    lambda ps: optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.5}], lr=0.1, momentum=0.5),
], ids=["sgd", "momentum", "nesterov", "adam", "adamw", "groups"])
@pytest.mark.parametrize("threads", [1, 2])
def test_grad_scale_in_the_fused_step_equals_a_scaling_pass_then_the_step(dtype, make, threads):
    """tapegrad.distributed's 1/N folded into the update: the same bits as g * s then the plain step, the
    scaled gradient written back into .grad (sizes past the scaling blocks, split across threads)."""
    rng = np.random.default_rng(3)
    shapes = [(3,), (77, 131), (5000,)]
    init = [rng.normal(size=s).astype(dtype) for s in shapes]
    grads = [[rng.normal(size=s).astype(dtype) for s in shapes] for _ in range(3)]
    scale = 1.0 / 3
    ps_a = [tg.Variable(w, requires_grad=True) for w in init]
    ps_b = [tg.Variable(w, requires_grad=True) for w in init]
    opt_a, opt_b = make(ps_a), make(ps_b)
    old = tg.get_num_threads()
    tg.set_num_threads(threads)
    try:
        for gs in grads:
            for p, q, g in zip(ps_a, ps_b, gs):
                p.grad, q.grad = g, g * dtype(scale)
            opt_a._fused_step(scale)
            opt_b.step()
            for p, q in zip(ps_a, ps_b):
                assert p.grad.dtype == dtype
                np.testing.assert_array_equal(p.grad, q.grad)
                np.testing.assert_array_equal(p.data, q.data)
    finally:
        tg.set_num_threads(old)
    p = tg.Variable(np.ones(4, dtype), requires_grad=True)
    p.grad = np.full(4, 3, dtype)
    before = p.grad.copy()
    optim.SGD([p], lr=0.1)._fused_step(1.0)  # no scale: .grad untouched
    np.testing.assert_array_equal(p.grad, before)


def test_grad_scale_must_be_finite():
    from tapegrad import _core
    p = tg.Variable(np.ones(3), requires_grad=True)
    p.grad = np.ones(3)
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError, match="SGD: grad_scale must be finite"):
            _core._sgd_steps([p], [{}], 0.1, 0.0, False, 0.0, bad)
        with pytest.raises(ValueError, match="AdamW: grad_scale must be finite"):
            _core._adam_steps([p], [{}], 0.1, 0.9, 0.99, 1e-8, 0.0, True, bad)
    np.testing.assert_array_equal(p.data, np.ones(3))
    np.testing.assert_array_equal(p.grad, np.ones(3))
