"""tapegrad.nn beyond test_nn.py: registration (plain containers refused, ModuleList/ModuleDict), Parameter,
buffers, modules/apply/requires_grad_/to, BatchNorm1d, Embedding, Flatten, the new losses (closed forms,
three-way gradients), shape errors, Datasets and fit's early stopping / best-model checkpoints."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import data, nn, optim
from test_nn import check_layer


class Blocks(nn.Layer):
    """The issue's example, written with a ModuleList."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(5, 5, rng=0), nn.Linear(5, 5, rng=1)])
        self.head = nn.Linear(5, 1, rng=2)

    def forward(self, x):
        for b in self.blocks:
            x = nn.ReLU()(b(x))
        return self.head(x)


def test_the_issues_example_has_66_parameters_and_trains_every_block():
    m = Blocks()
    assert m.num_parameters() == 66 and len(m.parameters()) == 6
    assert list(m.state_dict())[:2] == ["blocks.0.weight", "blocks.0.bias"]
    before = [p.data.copy() for p in m.parameters()]
    opt = optim.SGD(m.parameters(), lr=0.1)
    X = np.random.default_rng(0).normal(size=(16, 5))
    nn.fit(m, X, X.sum(1, keepdims=True), loss="mse", optimizer=opt, epochs=2, progress=False)
    assert all(not np.array_equal(b, p.data) for b, p in zip(before, m.parameters()))


@pytest.mark.parametrize("container,fix", [
    (lambda: [nn.Linear(5, 5), nn.Linear(5, 5)], "ModuleList"),
    (lambda: (nn.Linear(5, 5),), "ModuleList"),
    (lambda: {"a": nn.Linear(5, 5)}, "ModuleDict"),
    (lambda: [[nn.Linear(5, 5)]], "ModuleList"),
    (lambda: [tg.Variable(np.ones(2), requires_grad=True)], "one attribute per parameter"),
])
def test_layers_in_plain_containers_are_refused_naming_the_fix(container, fix):
    class Bad(nn.Layer):
        def __init__(self):
            super().__init__()
            self.blocks = container()

    with pytest.raises(TypeError, match=f"Bad.blocks: a plain .* is not registered.*{fix}"):
        Bad()


def test_a_plain_list_filled_after_assignment_is_caught_at_traversal():
    class Late(nn.Layer):
        def __init__(self):
            super().__init__()
            self.blocks = []
            self.blocks.append(nn.Linear(2, 2))
            self.sizes = [1, 2]  # plain data stays fine

    m = Late()
    with pytest.raises(TypeError, match="Late.blocks.*ModuleList"):
        m.parameters()


def test_private_attributes_may_hold_unregistered_layers():
    class Student(nn.Layer):
        def __init__(self, teacher):
            super().__init__()
            self._teacher = [teacher]  # deliberately not a sub-layer
            self.lin = nn.Linear(2, 2)

    s = Student(nn.Linear(2, 2))
    assert [n for n, _ in s.named_parameters()] == ["lin.weight", "lin.bias"]


def test_layernorm_and_linear_closed_forms_with_non_default_parameters():
    """The cross-engine test runs the same composition on both engines; these check the composition itself."""
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=4)
    ln = nn.LayerNorm(4, eps=1e-3, dtype=np.float64)
    ln.weight.data[...] = w
    ln.bias.data[...] = b
    ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3) * w + b
    np.testing.assert_allclose(ln(tg.Variable(x)).numpy(), ref, rtol=1e-12)
    lin = nn.Linear(4, 3, dtype=np.float64)
    W, c = rng.normal(size=(4, 3)), rng.normal(size=3)
    lin.weight.data[...] = W
    lin.bias.data[...] = c
    np.testing.assert_allclose(lin(tg.Variable(x)).numpy(), x @ W + c, rtol=1e-13)


def test_module_list_and_dict_operations():
    ml = nn.ModuleList([nn.Linear(2, 3), nn.ReLU()])
    ml.append(nn.Linear(3, 1)).extend([nn.Tanh()])
    ml.insert(0, nn.Identity())
    assert [type(x).__name__ for x in ml] == ["Identity", "Linear", "ReLU", "Linear", "Tanh"]
    assert len(ml) == 5 and isinstance(ml[1], nn.Linear) and isinstance(ml[1:3], nn.ModuleList)
    del ml[0]
    ml[2] = nn.Linear(3, 2)
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(TypeError, match="expected a Layer"):
        ml.append(3)
    with pytest.raises(NotImplementedError, match="iterate"):
        ml(tg.Variable(np.ones(2)))
    md = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    md["act"] = nn.ReLU()
    assert md.keys() == ["enc", "dec", "act"] and "enc" in md and len(md) == 3
    assert [k for k, _ in md.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    del md["act"]
    assert list(md) == ["enc", "dec"] and md.values()[0] is md["enc"] and md.items()[1][0] == "dec"
    with pytest.raises(KeyError, match="without '.'"):
        md["a.b"] = nn.ReLU()
    # functional_call reaches parameters inside the containers
    params = {k: v.data * 0 for k, v in md.named_parameters()}

    class Wrap(nn.Layer):
        def __init__(self):
            super().__init__()
            self.md = md

        def forward(self, x):
            return self.md["dec"](self.md["enc"](x))

    w = Wrap()
    out = nn.functional_call(w, {"md." + k: v for k, v in params.items()}, tg.Variable(np.ones((1, 2))))
    np.testing.assert_array_equal(out.numpy(), np.zeros((1, 2)))


def test_parameter_and_buffers():
    p = nn.Parameter([1, 2, 3])
    assert isinstance(p, tg.Variable) and p.requires_grad and p.dtype == np.float64
    assert isinstance(p, nn.Parameter) and not isinstance(tg.Variable(np.ones(2)), nn.Parameter)
    assert nn.Parameter(np.ones(2, np.float32)).dtype == np.float32

    class Scale(nn.Layer):
        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(np.array([2.0]))
            self.register_buffer("calls", np.zeros(()))
            self.register_buffer("scratch", np.ones(2), persistent=False)

        def forward(self, x):
            self.calls[...] += 1
            return x * self.s

    m = Scale()
    m(tg.Variable(np.ones(1)))
    assert [n for n, _ in m.named_parameters()] == ["s"]
    assert [n for n, _ in m.named_buffers()] == ["calls", "scratch"]
    assert list(m.state_dict()) == ["s", "calls"] and m.state_dict()["calls"] == 1
    m2 = Scale()
    m2.load_state_dict(m.state_dict())
    assert m2.calls == 1
    m2.calls = np.array(5.0)  # assigning a buffer's name updates the buffer
    assert m2.state_dict()["calls"] == 5
    with pytest.raises(KeyError, match="already a parameter"):
        m2.register_buffer("s", np.ones(1))


def test_modules_apply_requires_grad_and_to():
    m = nn.Sequential(nn.Linear(3, 4, rng=0), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2, rng=1))
    assert [type(x).__name__ for x in m.modules()] == ["Sequential", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert [n for n, _ in m.named_modules()] == ["", "0", "1", "2", "3"]
    seen = []
    m.apply(lambda layer: seen.append(type(layer).__name__))
    assert seen == ["Linear", "BatchNorm1d", "ReLU", "Linear", "Sequential"]  # children first, as PyTorch

    def zero_linear(layer):
        if isinstance(layer, nn.Linear):
            layer.weight.data[...] = 0

    m.apply(zero_linear)
    assert not m[0].weight.data.any()
    m[0].requires_grad_(False)
    out = m(tg.Variable(np.ones((3, 3))))
    out.sum().backward()
    assert m[0].weight.grad is None and m[3].weight.grad is not None
    assert m.requires_grad_() is m and m[0].weight.requires_grad
    assert all(p.dtype == np.float32 for p in m.parameters())  # the default, as PyTorch's
    m.to(np.float64)
    assert all(p.dtype == np.float64 for p in m.parameters()) and m[1].running_var.dtype == np.float64
    m.to(np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())
    assert m[1].running_mean.dtype == np.float32 and m[1].num_batches_tracked.dtype == np.int64
    assert m(tg.Variable(np.ones((3, 3), np.float32))).dtype == np.float32
    assert m.double()[0].weight.dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        m.to(np.int32)


@pytest.mark.parametrize("layer", [
    nn.BatchNorm1d(4, eps=1e-2), nn.Flatten(),
    nn.Sequential(nn.Linear(4, 5, rng=0), nn.BatchNorm1d(5), nn.Tanh()),
], ids=lambda l: type(l).__name__)
def test_new_layer_gradients_three_ways(layer):
    if isinstance(layer, nn.BatchNorm1d):
        layer.weight.data[...] = np.random.default_rng(5).normal(size=4)
        layer.bias.data[...] = np.random.default_rng(6).normal(size=4)
    check_layer(layer, np.random.default_rng(0).normal(size=(5, 4)))
    layer.eval()
    check_layer(layer, np.random.default_rng(1).normal(size=(5, 4)))


def test_batchnorm_closed_form_and_errors():
    x = np.random.default_rng(0).normal(loc=3, scale=2, size=(8, 3))
    bn = nn.BatchNorm1d(3, momentum=0.5, dtype=np.float64)
    bn.weight.data[...] = [1.0, 2.0, -1.0]
    bn.bias.data[...] = [0.0, 0.5, 1.0]
    y = bn(tg.Variable(x)).numpy()
    ref = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) * [1, 2, -1] + [0, 0.5, 1]
    np.testing.assert_allclose(y, ref, rtol=1e-12)
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(0, ddof=1), rtol=1e-14)
    bn.eval()
    y = bn(tg.Variable(x)).numpy()
    ref = (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5) * [1, 2, -1] + [0, 0.5, 1]
    np.testing.assert_allclose(y, ref, rtol=1e-12)
    bn.train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(tg.Variable(np.ones((1, 3))))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected input of shape \(N, 3\)"):
        bn(tg.Variable(np.ones((4, 2))))


def test_embedding_closed_form_and_errors():
    emb = nn.Embedding(5, 2, padding_idx=1, rng=0)
    assert not emb.weight.data[1].any()
    idx = np.array([3, 1, 3, 0])
    out = emb(idx)
    np.testing.assert_array_equal(out.numpy(), emb.weight.data[idx])
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [1, 0, 0, 2, 0])  # repeats add, padding gets none
    with pytest.raises(IndexError, match=r"in \[0, 5\)"):
        emb(np.array([5]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.5]))


def test_flatten_and_errors():
    x = np.arange(24.0).reshape(2, 3, 4)
    assert nn.Flatten()(tg.Variable(x)).shape == (2, 12)
    assert nn.Flatten(0, 1)(tg.Variable(x)).shape == (6, 4)
    with pytest.raises(ValueError, match="Flatten"):
        nn.Flatten(2, 1)(tg.Variable(x))


def test_new_losses_closed_forms_and_gradients():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3))
    y = np.array([0, 2, 1, 2])
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    assert nn.nll_loss(tg.Variable(logp), y).item() == pytest.approx(-logp[np.arange(4), y].mean(), rel=1e-14)
    eps = 0.2
    smooth = (1 - eps) * -logp[np.arange(4), y] - eps / 3 * logp.sum(1)
    assert nn.cross_entropy(tg.Variable(z), y, label_smoothing=eps).item() == pytest.approx(smooth.mean(), rel=1e-13)
    d = np.array([-3.0, -0.5, 0.2, 2.0])
    h = np.where(np.abs(d) < 1.5, 0.5 * d * d, 1.5 * (np.abs(d) - 0.75))
    np.testing.assert_allclose(nn.huber_loss(tg.Variable(d), np.zeros(4), "none", delta=1.5).numpy(), h)
    p, t = np.array([0.2, 0.9]), np.array([1.0, 0.0])
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    np.testing.assert_allclose(nn.binary_cross_entropy(tg.Variable(p), t, "none").numpy(), bce, rtol=1e-14)
    # gradients: C++ vs reference vs finite differences
    from tapegrad import reference as R
    from helpers import numeric_grad
    for fn, x in [(lambda v: nn.huber_loss(v, np.zeros(4), delta=1.5), d),
                  (lambda v: nn.binary_cross_entropy(v, t), p),
                  (lambda v: nn.cross_entropy(v, y, label_smoothing=eps), z),
                  (lambda v: nn.nll_loss(v, y, "sum"), logp)]:
        a, b = tg.Variable(x, requires_grad=True), R.Variable(x, requires_grad=True)
        fn(a).backward()
        fn(b).backward()
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12)
        np.testing.assert_allclose(a.grad, numeric_grad(lambda arr: fn(tg.Variable(arr)).item(), x), rtol=1e-6,
                                   atol=1e-8)


def test_loss_argument_errors():
    v = tg.Variable(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.cross_entropy(v, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="probabilities in"):
        nn.binary_cross_entropy(tg.Variable(np.array([1.5])), np.array([1.0]))
    with pytest.raises(ValueError, match="delta"):
        nn.huber_loss(v, np.zeros((2, 2)), delta=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        nn.nll_loss(v, np.array([0, 2]))
    assert repr(nn.HuberLoss(delta=2.0)) == "HuberLoss(reduction='mean', delta=2.0)"


@pytest.mark.parametrize("loss", [nn.mse_loss, nn.l1_loss, nn.huber_loss])
def test_elementwise_loss_shape_mismatch_names_both_shapes_and_the_reshape(loss):
    for requires_grad in (False, True):
        out = tg.Variable(np.ones((4, 1)), requires_grad=requires_grad)
        with pytest.raises(ValueError, match=r"shape \(4, 1\) and target shape \(4,\) differ "
                                             r"\(reshape one to match: target.reshape\(4, 1\)"):
            loss(out, np.ones(4))


def test_fit_raises_the_shape_error_before_the_first_batch():
    m = nn.Linear(3, 1, rng=0)
    before = m.state_dict()
    with pytest.raises(ValueError, match=r"mse_loss: input shape \(2, 1\) and target shape \(2,\).*reshape"):
        nn.fit(m, np.ones((10, 3)), np.ones(10), loss="mse", optimizer=optim.SGD(m.parameters(), lr=0.1),
               epochs=1, progress=False)
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())  # no step was taken


class Squares(data.Dataset):
    def __len__(self):
        return 40

    def __getitem__(self, i):
        x = np.array([i / 40, (i % 7) / 7])
        return x, np.array([x[0] ** 2])


def test_datasets_in_dataloader_and_fit():
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    ds = data.TensorDataset(X, y)
    assert len(ds) == 10 and ds[3][1] == 3
    batches = list(data.DataLoader(ds, batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(batches[1][0], X[4:8])
    custom = list(data.DataLoader(Squares(), batch_size=16, shuffle=True, seed=1))
    assert custom[0][0].shape == (16, 2) and custom[0][1].shape == (16, 1)
    with pytest.raises(ValueError, match="same first dimension"):
        data.TensorDataset(X, y[:3])
    with pytest.raises(ValueError, match="Dataset alone"):
        data.DataLoader(ds, y)
    m = nn.MLP([2, 8, 1], rng=0)
    h = nn.fit(m, Squares(), loss="mse", optimizer=optim.Adam(m.parameters(), lr=0.01), epochs=5, batch_size=8,
               progress=False, validation_data=data.TensorDataset(*data._collate([Squares()[i] for i in range(8)])))
    assert h["loss"][-1] < h["loss"][0] and "val_loss" in h
    with pytest.raises(ValueError, match="y is missing"):
        nn.fit(m, X, loss="mse", optimizer=optim.SGD(m.parameters(), lr=0.1), epochs=1)


def _regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=64)


def test_fit_early_stopping_and_restore_best():
    X, y = _regression()
    m = nn.MLP([3, 16, 1], rng=0)
    Xv, yv = X[:16], -y[:16, None]
    # validation targets opposite to the training ones: the validation loss climbs, early stopping must trigger
    h = nn.fit(m, X, y[:, None], loss="mse", optimizer=optim.SGD(m.parameters(), lr=0.05), epochs=50,
               validation_data=(Xv, yv), patience=2, restore_best=True, progress=False)
    assert h.stopped_epoch is not None and h.epochs == h.stopped_epoch + 1 < 50
    best = int(np.argmin(h["val_loss"]))
    assert h.best_epoch == best and h.epochs - 1 - best == 3  # patience 2: the third bad epoch stops
    assert nn.evaluate(m, Xv, yv, "mse")["loss"] == pytest.approx(h["val_loss"][best], rel=1e-12)
    with pytest.raises(ValueError, match="needs validation_data"):
        nn.fit(m, X, y[:, None], loss="mse", optimizer=optim.SGD(m.parameters(), lr=0.1), epochs=1,
               monitor="val_loss", patience=1, progress=False)
    with pytest.raises(ValueError, match="not a metric of this run"):
        nn.fit(m, X, y[:, None], loss="mse", optimizer=optim.SGD(m.parameters(), lr=0.1), epochs=1,
               monitor="accuracy", patience=1, progress=False)


def test_fit_best_model_checkpoint_and_plateau_scheduler(tmp_path):
    X, y = _regression()
    m = nn.MLP([3, 16, 1], rng=0)
    opt = optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    sched = optim.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    path = tmp_path / "best.npz"
    h = nn.fit(m, X, y[:, None], loss="mse", optimizer=opt, scheduler=sched, epochs=12,
               validation_data=(X[:16], y[:16, None]), checkpoint=path, progress=False)
    m2 = nn.MLP([3, 16, 1], rng=5)
    opt2 = optim.SGD(m2.parameters(), lr=0.05, momentum=0.9)
    sched2 = optim.ReduceLROnPlateau(opt2, patience=0, factor=0.5)
    meta = nn.load_checkpoint(path, m2, opt2, sched2)
    assert meta == {"epoch": h.best_epoch + 1, "monitor": "val_loss", "best": min(h["val_loss"])}
    assert nn.evaluate(m2, X[:16], y[:16, None], "mse")["loss"] == pytest.approx(min(h["val_loss"]), rel=1e-12)
    assert sched2.best == min(h["val_loss"])


def test_fit_steps_one_cycle_per_batch():
    X, y = _regression()
    m = nn.MLP([3, 8, 1], rng=0)
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    sched = optim.OneCycleLR(opt, max_lr=0.1, epochs=3, steps_per_epoch=4)
    nn.fit(m, X, y[:, None], loss="mse", optimizer=opt, scheduler=sched, epochs=3, batch_size=16, progress=False)
    alone = optim.OneCycleLR(optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1, momentum=0.9), max_lr=0.1,
                             total_steps=12)
    for _ in range(12):
        alone.step()
    assert sched.last_epoch == 12 and opt.lr == alone.optimizer.lr and opt.momentum == alone.optimizer.momentum


def test_layers_default_to_float32_like_pytorch():
    for layer in (nn.Linear(2, 3), nn.MLP([2, 3, 1]), nn.LayerNorm(3), nn.BatchNorm1d(3), nn.Embedding(4, 2)):
        assert {p.dtype for p in layer.parameters()} == {np.dtype(np.float32)}, layer
    assert nn.MLP([2, 3, 1], dtype=np.float64)[0].weight.dtype == np.float64
    X, y = data.make_moons(64, seed=0)  # float64 data is cast to the model's dtype by fit and predict
    m = nn.MLP([2, 8, 2], rng=0)
    nn.fit(m, X, y, loss="cross_entropy", optimizer=optim.SGD(m.parameters(), lr=0.1), epochs=1, progress=False)
    assert nn.predict(m, X).dtype == np.float32


def test_embedding_runs_on_both_engines_with_the_same_gradient():
    import tapegrad.reference as R
    emb = nn.Embedding(5, 3, padding_idx=1, rng=0, dtype=np.float64)
    idx = np.array([[0, 1], [1, 4], [4, 4]])
    w = np.random.default_rng(0).normal(size=(5, 3))
    proj = np.random.default_rng(1).normal(size=(3, 2, 3))
    grads = []
    for E in (tg, R):
        W = E.Variable(w, requires_grad=True)
        out = nn.functional_call(emb, {"weight": W}, idx)
        pad = (idx == 1)[..., None]
        np.testing.assert_array_equal(np.asarray(out.data), np.where(pad, w[1], w[idx]))
        (out * proj).sum().backward()
        grads.append(np.asarray(W.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-13)
    expected = np.zeros((5, 3))
    np.add.at(expected, idx[idx != 1], proj[idx != 1])
    np.testing.assert_allclose(grads[0], expected, rtol=1e-13)


def test_save_and_load_include_buffers(tmp_path):
    m = nn.Sequential(nn.Linear(2, 3, rng=0), nn.BatchNorm1d(3))
    m(tg.Variable(np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)))
    nn.save(m, tmp_path / "m.npz")
    m2 = nn.Sequential(nn.Linear(2, 3, rng=1), nn.BatchNorm1d(3))
    nn.load(m2, tmp_path / "m.npz")
    np.testing.assert_array_equal(m2[1].running_mean, m[1].running_mean)
    assert int(m2[1].num_batches_tracked) == 1
