"""tapegrad.nn: layers (forward values and gradients vs finite differences and the
reference engine), losses, the Layer API, state dicts, save/load, fit/evaluate/predict."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.reference as R
from tapegrad import nn, optim, data


def fd_grad(f, arrays, eps=1e-6):
    """Central finite differences of the scalar f(list of arrays)."""
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            vals = []
            for s in (1, -1):
                b = [x.copy() for x in arrays]
                b[i][idx] += s * eps
                vals.append(f(b))
            g[idx] = (vals[0] - vals[1]) / (2 * eps)
        grads.append(g)
    return grads


def check_layer(layer, x, atol=1e-6):
    """Gradient of a random projection of layer(x) w.r.t. x and every parameter: C++ vs reference vs FD
    (in float64: the layer is converted, as layers default to float32)."""
    layer.to(np.float64)
    names = [n for n, _ in layer.named_parameters()]
    arrays = [x] + [np.array(p.data) for _, p in layer.named_parameters()]
    rng = np.random.default_rng(1)
    with tg.no_grad():
        w = rng.normal(size=layer(tg.Variable(x)).shape)

    def run(engine, arrs, requires_grad):
        vs = [engine.Variable(a, requires_grad=requires_grad) for a in arrs]
        out = nn.functional_call(layer, dict(zip(names, vs[1:])), vs[0])
        return (out * w).sum(), vs

    loss, vs = run(tg, arrays, True)
    loss.backward()
    g_cpp = [np.array(v.grad) for v in vs]
    loss_r, vr = run(R, arrays, True)
    loss_r.backward()
    g_ref = [np.array(v.grad) for v in vr]
    assert abs(loss.item() - loss_r.item()) < 1e-12 * max(1, abs(loss.item()))
    with tg.no_grad():
        g_fd = fd_grad(lambda arrs: run(tg, arrs, False)[0].item(), arrays)
    for a, b, c in zip(g_cpp, g_ref, g_fd):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=atol)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(5, 4))


def test_linear_forward_shape_and_value(x):
    lin = nn.Linear(4, 3, rng=0)
    assert lin.weight.shape == (4, 3) and lin.bias.shape == (3,)
    lin.bias.data[...] = [1.0, 2.0, 3.0]
    np.testing.assert_allclose(lin(tg.Variable(x)).numpy(), x @ lin.weight.data + [1, 2, 3], rtol=1e-14)
    assert nn.Linear(4, 3, bias=False, rng=0).bias is None
    assert len(nn.Linear(4, 3, bias=False).parameters()) == 1


def test_linear_init_statistics():
    w = nn.Linear(1000, 200, rng=0).weight.data
    assert abs(w.std() - np.sqrt(2 / 1000)) < 0.002
    w = nn.Linear(1000, 200, init="xavier", rng=0).weight.data
    a = np.sqrt(6 / 1200)
    assert np.abs(w).max() <= a and abs(w.std() - a / np.sqrt(3)) < 0.002
    assert nn.Linear(3, 2, dtype=np.float32).weight.dtype == np.float32


def test_linear_errors():
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="unknown init"):
        nn.Linear(2, 3, init="bogus")
    with pytest.raises(ValueError, match="last dimension 4"):
        nn.Linear(4, 2)(tg.Variable(np.ones((2, 3))))
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(4, 2, dtype=np.int32)


def test_manual_seed_makes_init_reproducible():
    nn.manual_seed(3)
    a = nn.MLP([4, 8, 2]).state_dict()
    nn.manual_seed(3)
    b = nn.MLP([4, 8, 2]).state_dict()
    nn.manual_seed(4)
    c = nn.MLP([4, 8, 2]).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], c["0.weight"])
    with pytest.raises(ValueError):
        nn.manual_seed(-1)


@pytest.mark.parametrize("layer", [
    nn.Linear(4, 3, rng=0), nn.Linear(4, 3, bias=False, init="xavier", rng=1), nn.ReLU(), nn.LeakyReLU(0.1),
    nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.Softmax(), nn.LayerNorm(4),
    nn.Sequential(nn.Linear(4, 6, rng=2), nn.Tanh(), nn.Linear(6, 2, rng=3)),
    nn.MLP([4, 5, 3], activation="gelu", rng=4),
], ids=lambda l: type(l).__name__)
def test_layer_gradients_three_ways(layer, x):
    if isinstance(layer, nn.LayerNorm):
        layer.weight.data[...] = np.random.default_rng(5).normal(size=4)
        layer.bias.data[...] = np.random.default_rng(6).normal(size=4)
    check_layer(layer, x)


def test_activation_values(x):
    v = tg.Variable(x)
    np.testing.assert_allclose(nn.ReLU()(v).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(nn.LeakyReLU(0.2)(v).numpy(), np.where(x > 0, x, 0.2 * x))
    np.testing.assert_allclose(nn.Tanh()(v).numpy(), np.tanh(x))
    np.testing.assert_allclose(nn.Sigmoid()(v).numpy(), 1 / (1 + np.exp(-x)))
    gelu = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(nn.GELU()(v).numpy(), gelu, rtol=1e-13)
    sm = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    np.testing.assert_allclose(nn.Softmax()(v).numpy(), sm, rtol=1e-13)
    ln = nn.LayerNorm(4)(v).numpy()
    ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln, ref, rtol=1e-12)


def test_dropout_train_and_eval():
    d = nn.Dropout(0.25, rng=0)
    x = np.ones((200, 50))
    y = d(tg.Variable(x)).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    d.eval()
    np.testing.assert_array_equal(d(tg.Variable(x)).numpy(), x)
    # the gradient flows through the kept elements only
    d.train()
    v = tg.Variable(x, requires_grad=True)
    out = d(v)
    out.sum().backward()
    np.testing.assert_array_equal(v.grad, out.numpy())
    with pytest.raises(ValueError):
        nn.Dropout(1.0)


def test_mlp_structure_and_repr():
    m = nn.MLP([4, 8, 8, 3], activation="tanh", dropout=0.1, output_activation="softmax", rng=0)
    kinds = [type(l).__name__ for l in m]
    assert kinds == ["Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear", "Softmax"]
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias"]
    assert m.num_parameters() == 4 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3
    r = repr(m)
    assert "MLP(4-8-8-3" in r and "(0): Linear(4 -> 8, bias=True)  # 40 params" in r and ")  # 139 params" in r
    with pytest.raises(ValueError, match="unknown activation"):
        nn.MLP([2, 3], activation="swish")
    with pytest.raises(ValueError, match="positive integers"):
        nn.MLP([2, 0, 3])


class Custom(nn.Layer):
    def __init__(self):
        super().__init__()
        self.scale = tg.Variable(np.array(2.0), requires_grad=True)
        self.body = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU())
        self.head = nn.Linear(2, 1, rng=1)
        self.constant = tg.Variable(np.ones(3))  # does not require grad: not a parameter
        self.note = "plain attribute"

    def forward(self, x):
        return self.head(self.body(x * self.scale))


def test_layer_registration_modes_and_zero_grad():
    m = Custom()
    assert [n for n, _ in m.named_parameters()] == ["scale", "body.0.weight", "body.0.bias", "head.weight",
                                                     "head.bias"]
    assert m.note == "plain attribute"
    assert m.eval() is m and not m.body[1].training
    m.train()
    assert all(layer.training for _, layer in m.named_layers())
    m(tg.Variable(np.ones((4, 3)))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    del m.head
    assert "head.weight" not in dict(m.named_parameters())
    with pytest.raises(AttributeError):
        m.nonexistent


def test_shared_parameter_listed_once():
    lin = nn.Linear(2, 2, rng=0)
    seq = nn.Sequential(lin, nn.Tanh(), lin)
    assert len(seq.parameters()) == 2


def test_state_dict_round_trip_and_errors():
    a, b = nn.MLP([3, 4, 2], rng=0), nn.MLP([3, 4, 2], rng=1)
    state = a.state_dict()
    w_before = b[0].weight
    b.load_state_dict(state)
    assert b[0].weight is w_before  # loaded in place
    assert all(np.array_equal(state[k], v) for k, v in b.state_dict().items())
    state["0.weight"][...] = 0  # a copy, not a view
    assert not np.all(a[0].weight.data == 0)

    c = nn.MLP([3, 4, 2], rng=2)
    before = c.state_dict()
    bad = dict(a.state_dict())
    bad["2.bias"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"'2.bias' has shape \(2,\)"):
        c.load_state_dict(bad)
    missing = dict(a.state_dict())
    del missing["2.weight"]
    with pytest.raises(KeyError, match="missing parameter.*2.weight"):
        c.load_state_dict(missing)
    extra = dict(a.state_dict(), extra=np.zeros(1))
    with pytest.raises(KeyError, match="unexpected parameter.*extra"):
        c.load_state_dict(extra)
    assert all(np.array_equal(before[k], v) for k, v in c.state_dict().items())  # nothing half-loaded
    c.load_state_dict(missing, strict=False)
    assert np.array_equal(c[0].weight.data, a[0].weight.data)


def test_save_load(tmp_path):
    a, b = nn.MLP([3, 4, 2], rng=0), nn.MLP([3, 4, 2], rng=1)
    path = tmp_path / "m.npz"
    nn.save(a, path)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(a.state_dict())
    nn.load(b, path)
    assert all(np.array_equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_load_errors_leave_model_untouched(tmp_path):
    m = nn.MLP([3, 4, 2], rng=0)
    before = m.state_dict()
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        nn.load(m, tmp_path / "nope.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip file")
    with pytest.raises(ValueError, match="corrupt.npz"):
        nn.load(m, corrupt)
    shaped = tmp_path / "shaped.npz"
    np.savez(shaped, **dict(before, **{"0.weight": np.zeros((4, 3))}))
    with pytest.raises(ValueError, match="0.weight"):
        nn.load(m, shaped)
    missing = tmp_path / "missing.npz"
    np.savez(missing, **{k: v for k, v in before.items() if k != "2.bias"})
    with pytest.raises(KeyError, match="2.bias"):
        nn.load(m, missing)
    extra = tmp_path / "extra.npz"
    np.savez(extra, **dict(before, bogus=np.zeros(2)))
    with pytest.raises(KeyError, match="bogus"):
        nn.load(m, extra)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **dict(before, **{"0.bias": np.array([object()] * 4, dtype=object)}))
    with pytest.raises(ValueError, match="pickled.npz"):
        nn.load(m, pickled)
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())


def test_functional_call_restores_parameters():
    m = nn.MLP([2, 3, 1], rng=0)
    params = {k: R.Variable(v) for k, v in m.state_dict().items()}
    out = nn.functional_call(m, params, R.Variable(np.ones((2, 2))))
    assert isinstance(out, R.Variable)
    assert isinstance(m[0].weight, tg.Variable)
    with pytest.raises(KeyError):
        nn.functional_call(m, {}, np.ones((2, 2)))


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def _np_log_softmax(z):
    m = z.max(1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(1, keepdims=True))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_labels_and_probabilities(reduction):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 4))
    y = np.array([0, 3, 1, 2, 3, 0])
    ref = -_np_log_softmax(z)[np.arange(6), y]
    agg = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    np.testing.assert_allclose(nn.cross_entropy(tg.Variable(z), y, reduction=reduction).numpy(), agg, rtol=1e-13)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(nn.cross_entropy(tg.Variable(z), onehot, reduction=reduction).numpy(), agg,
                               rtol=1e-13)
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction)(tg.Variable(z), y).numpy(), agg, rtol=1e-13)


def test_cross_entropy_gradient_and_stability():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 3))
    y = np.array([0, 1, 2, 1, 0])
    v = tg.Variable(z, requires_grad=True)
    nn.cross_entropy(v, y).backward()
    p = np.exp(_np_log_softmax(z))
    np.testing.assert_allclose(v.grad, (p - np.eye(3)[y]) / 5, rtol=1e-12, atol=1e-15)
    big = tg.Variable(np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]]), requires_grad=True)
    loss = nn.cross_entropy(big, np.array([1, 1]))
    loss.backward()
    assert np.isfinite(loss.item()) and abs(loss.item() - 5e3) < 1e-9
    assert np.all(np.isfinite(big.grad))
    # soft targets
    t = rng.dirichlet(np.ones(3), size=5)
    v = tg.Variable(z, requires_grad=True)
    nn.cross_entropy(v, t).backward()
    np.testing.assert_allclose(v.grad, (p - t) / 5, rtol=1e-12, atol=1e-15)


def test_cross_entropy_errors():
    z = tg.Variable(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        nn.cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="shape"):
        nn.cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        nn.cross_entropy(z, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="reduction"):
        nn.cross_entropy(z, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        nn.cross_entropy(tg.Variable(np.zeros(3)), np.array([0, 1, 2]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(reduction):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    agg = {"mean": np.mean, "sum": np.sum, "none": lambda e: e}[reduction]
    np.testing.assert_allclose(nn.mse_loss(tg.Variable(a), b, reduction).numpy(), agg((a - b) ** 2), rtol=1e-13)
    np.testing.assert_allclose(nn.l1_loss(tg.Variable(a), b, reduction).numpy(), agg(np.abs(a - b)), rtol=1e-13)
    np.testing.assert_allclose(nn.MSELoss(reduction)(tg.Variable(a), b).numpy(), agg((a - b) ** 2), rtol=1e-13)
    np.testing.assert_allclose(nn.L1Loss(reduction)(tg.Variable(a), b).numpy(), agg(np.abs(a - b)), rtol=1e-13)
    with pytest.raises(ValueError, match="differ"):
        nn.mse_loss(tg.Variable(a), b[:, :2])
    with pytest.raises(ValueError, match="differ"):
        nn.l1_loss(tg.Variable(a), b.reshape(-1))


def test_loss_gradients_three_ways():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3))
    y01 = rng.integers(0, 2, size=(4, 3)).astype(float)
    tgt = rng.normal(size=(4, 3))
    for fn, target in [(nn.mse_loss, tgt), (nn.l1_loss, tgt), (nn.binary_cross_entropy_with_logits, y01),
                       (nn.cross_entropy, np.array([0, 2, 1, 1]))]:
        v = tg.Variable(z, requires_grad=True)
        fn(v, target).backward()
        vr = R.Variable(z, requires_grad=True)
        fn(vr, target).backward()
        np.testing.assert_allclose(v.grad, vr.grad, rtol=1e-12, atol=1e-15)
        with tg.no_grad():
            (g_fd,) = fd_grad(lambda arrs: fn(tg.Variable(arrs[0]), target).item(), [z])
        np.testing.assert_allclose(v.grad, g_fd, rtol=1e-5, atol=1e-8)


def test_bce_with_logits_values_stable_and_exact_at_zero():
    z = np.array([-1e4, -3.0, 0.0, 2.0, 1e4])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    v = tg.Variable(z, requires_grad=True)
    loss = nn.binary_cross_entropy_with_logits(v, y, reduction="sum")
    loss.backward()
    ref = np.logaddexp(0, z) - y * z
    np.testing.assert_allclose(loss.item(), ref.sum(), rtol=1e-13)
    np.testing.assert_allclose(v.grad, 1 / (1 + np.exp(-np.clip(z, -700, 700))) - y, atol=1e-15)
    assert nn.BCEWithLogitsLoss("none")(tg.Variable(z), y).shape == (5,)


# ---------------------------------------------------------------------------
# fit / evaluate / predict
# ---------------------------------------------------------------------------

def _train(seed, epochs=3, dropout=0.0):
    X, y = data.make_moons(200, noise=0.1, seed=0)
    nn.manual_seed(seed)
    m = nn.MLP([2, 16, 2], activation="tanh", dropout=dropout)
    opt = optim.Adam(m.parameters(), lr=0.01)
    h = nn.fit(m, X, y, loss=nn.cross_entropy, optimizer=opt, epochs=epochs, batch_size=16, progress=False,
               seed=seed, validation_data=(X[:50], y[:50]))
    return m, h


def test_fit_is_deterministic_bit_for_bit():
    m1, h1 = _train(0, dropout=0.2)
    m2, h2 = _train(0, dropout=0.2)
    assert h1["loss"] == h2["loss"]
    assert all(np.array_equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    m3, h3 = _train(1, dropout=0.2)
    assert h3["loss"] != h1["loss"]


def test_fit_learns_and_history(capsys):
    X, y = data.make_moons(300, noise=0.1, seed=0)
    nn.manual_seed(0)
    m = nn.MLP([2, 32, 32, 2], activation="tanh")
    opt = optim.Adam(m.parameters(), lr=0.01)
    stops = []
    h = nn.fit(m, X, y, loss="cross_entropy", optimizer=opt, epochs=30, batch_size=32, progress=True,
               validation_data=(X, y), callbacks=[lambda e, logs: stops.append(e) or logs["accuracy"] > 0.99])
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "time"}
    assert h["loss"][-1] < h["loss"][0] and h.last("val_accuracy") > 0.95
    assert len(stops) == h.epochs
    assert "epoch 1/30" in capsys.readouterr().err  # the tqdm bar
    r = nn.evaluate(m, X, y, nn.cross_entropy)
    assert set(r) == {"loss", "accuracy"} and r["accuracy"] > 0.95
    p = nn.predict(m, X)
    assert p.shape == (300, 2) and isinstance(p, np.ndarray)
    assert p.dtype == np.float32  # the layers' default dtype, as PyTorch's
    np.testing.assert_allclose(nn.predict(m, X, batch_size=7), p, rtol=1e-5, atol=1e-6)
    assert nn.accuracy(p, y) == r["accuracy"]


def test_fit_plain_progress_regression_and_scheduler(capsys):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (128, 1))
    y = np.sin(3 * X)
    nn.manual_seed(0)
    m = nn.MLP([1, 16, 1], activation="tanh")
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    h = nn.fit(m, X, y, loss=nn.mse_loss, optimizer=opt, epochs=4, batch_size=16, plain=True, scheduler=sched)
    err = capsys.readouterr().err
    assert err.count("\n") == 4 and "epoch 4/4  loss" in err
    assert "accuracy" not in h and opt.lr == pytest.approx(0.025)
    assert "accuracy" not in nn.evaluate(m, X, y, nn.mse_loss)


def test_predict_and_evaluate_restore_mode_and_use_no_grad():
    m = nn.MLP([2, 4, 2], dropout=0.5, rng=0)
    m.train()
    out = nn.predict(m, np.ones((3, 2)))
    np.testing.assert_array_equal(out, nn.predict(m, np.ones((3, 2))))  # dropout off
    assert m[2].training
    with pytest.raises(ValueError, match="3 samples but y has 2"):
        nn.evaluate(m, np.ones((3, 2)), np.array([0, 1]), nn.cross_entropy)


def test_calling_a_layer_calls_its_own_forward():
    """Layer subclasses get forward as __call__ (no extra frame); overrides and explicit __call__ hold."""
    class Double(nn.Layer):
        def forward(self, x):
            return x * 2.0

    class Triple(Double):
        def forward(self, x):
            return x * 3.0

    class TripleChild(Triple):
        pass

    class Logged(nn.Layer):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            return x + 1.0

        def __call__(self, x):
            self.calls += 1
            return self.forward(x)

    class Scaled(nn.Layer):  # a base class with its own __call__, and a subclass that overrides forward
        def __call__(self, x):
            return self.forward(x) * 2.0

        def forward(self, x):
            return x

    class ScaledChild(Scaled):
        def forward(self, x):
            return x + 1.0

    class DoubledMixin:  # a mixin whose forward wraps the layer's
        def forward(self, x):
            return super().forward(x) * 2.0

    class DoubledReLU(DoubledMixin, nn.ReLU):
        pass

    x = tg.Variable(np.ones(2))
    assert np.all(ScaledChild()(x).numpy() == 4)
    assert np.all(DoubledReLU()(tg.Variable(np.array([3.0, -1.0]))).numpy() == [6.0, 0.0])
    patched = Double()
    patched.forward = lambda v: v * 5.0  # patched on the instance
    assert np.all(patched(x).numpy() == 5)
    from unittest import mock
    with mock.patch.object(Double, "forward", lambda self, v: v * 7.0):  # patched on the class
        assert np.all(Double()(x).numpy() == 7)
    assert np.all(Double()(x).numpy() == 2) and np.all(Triple()(x).numpy() == 3)
    assert np.all(TripleChild()(x).numpy() == 3)
    logged = Logged()
    assert np.all(logged(x).numpy() == 2) and logged.calls == 1
    with pytest.raises(NotImplementedError, match="must implement forward"):
        nn.Layer()(x)
    seq = nn.Sequential(Double(), Triple(), logged)
    assert np.all(seq(x).numpy() == 7) and logged.calls == 2
