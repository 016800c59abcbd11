"""tapegrad.distributed on one process (no mpiexec, no mpi4py needed) and data.DistributedSampler.

The multi-rank behaviour runs under mpiexec in tests/test_distributed_mpi.py.
"""
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.distributed as dist
from tapegrad import data, nn, optim


@pytest.fixture
def local(monkeypatch):
    """A fresh, not-yet-initialised module state outside mpiexec."""
    for k in dist._ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(dist, "_state", None)
    assert dist.init() == (0, 1)
    return dist


def test_the_core_never_imports_mpi4py_and_init_is_a_no_op_outside_mpiexec():
    code = ("import sys, tapegrad, tapegrad.distributed as d; assert 'mpi4py' not in sys.modules; "
            "assert d.init() == (0, 1) == d.init(); assert 'mpi4py' not in sys.modules; print(d.rank(), d.size())")
    env = {k: v for k, v in __import__("os").environ.items() if k not in dist._ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["0", "1"]  # (an editable install may print its rebuild first)


def test_rank_before_init_raises(monkeypatch):
    monkeypatch.setattr(dist, "_state", None)
    for fn in (dist.rank, dist.size, lambda: dist.allreduce(1.0), lambda: dist.broadcast_parameters({})):
        with pytest.raises(RuntimeError, match=r"call tapegrad.distributed.init\(\) first"):
            fn()
    assert not dist.is_initialized()


def test_one_rank_collectives_are_the_identity(local):
    x = np.array([1.0, -2.0], np.float32)
    for op in ("mean", "sum", "max", "min"):
        out = dist.allreduce(x, op)
        assert np.array_equal(out, x) and out.dtype == np.float32 and out is not x
    assert dist.allreduce(3, "sum") == 3 and dist.allreduce(np.array([3]), "mean").dtype == np.float64
    with tg.no_grad():
        v = dist.allreduce(tg.Variable(x, requires_grad=True))
    assert isinstance(v, tg.Variable) and not v.requires_grad
    with pytest.raises(RuntimeError, match="not a tape op"):
        dist.allreduce(tg.Variable(x, requires_grad=True) * 2)
    with pytest.raises(ValueError, match="op must be one of"):
        dist.allreduce(x, "prod")
    with pytest.raises(TypeError, match="numeric"):
        dist.allreduce(np.array(["a"]))
    with pytest.raises(ValueError, match="root must be a rank"):
        dist.broadcast_parameters(nn.Linear(2, 2), root=1)
    with pytest.raises(TypeError, match="not a single Variable"):
        dist.broadcast_parameters(tg.Variable(x))
    with pytest.raises(TypeError, match="not a tapegrad.Variable"):
        dist.broadcast_parameters([x])
    assert dist.broadcast_object({"k": 1}) == {"k": 1}
    dist.barrier()
    dist.check_consistent(nn.Linear(2, 2))


def test_distributed_optimizer_on_one_rank_is_the_wrapped_optimizer(local):
    nn.manual_seed(0)
    m1 = nn.MLP([3, 4, 2])
    nn.manual_seed(0)
    m2 = nn.MLP([3, 4, 2])
    o1 = optim.Adam(m1.parameters(), lr=0.01)
    o2 = dist.DistributedOptimizer(optim.Adam(m2.parameters(), lr=0.01))
    assert isinstance(o2, optim.Optimizer) and "DistributedOptimizer(Adam(" in repr(o2)
    s1, s2 = optim.StepLR(o1, 1, 0.5), optim.StepLR(o2, 1, 0.5)
    x = tg.Variable(np.random.default_rng(0).normal(size=(5, 3)))
    for m, o, s in ((m1, o1, s1), (m2, o2, s2)):
        for _ in range(3):
            o.zero_grad()
            m(x).sum().backward()
            o.step()
            s.step()
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert np.array_equal(a.data, b.data)
    assert o2.lr == o1.lr == o2.optimizer.lr
    o2.lr = 0.5
    assert o2.optimizer.lr == 0.5
    st = o2.state_dict()
    assert st["type"] == "Adam"
    o2.load_state_dict(st)
    with pytest.raises(TypeError, match="expected a tapegrad.optim optimizer"):
        dist.DistributedOptimizer(object())
    with pytest.raises(TypeError, match="already a DistributedOptimizer"):
        dist.DistributedOptimizer(o2)
    with pytest.raises(ValueError, match="bucket_size must be a positive integer"):
        dist.DistributedOptimizer(o1, bucket_size=0)


def test_fit_distributed_on_one_rank_equals_fit(local):
    X, y = data.make_moons(101, seed=2)
    results = []
    for distributed in (False, True):
        nn.manual_seed(0)
        model = nn.MLP([2, 8, 2])
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if distributed:
            opt = dist.DistributedOptimizer(opt)
        h = nn.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=3, batch_size=16, progress=False,
                   distributed=distributed)
        results.append((model.state_dict(), h.history["loss"]))
    (p1, l1), (p2, l2) = results
    assert l1 == l2 and all(np.array_equal(p1[k], p2[k]) for k in p1)


def test_fit_initial_epoch_continues_the_same_batches(local):
    X, y = data.make_moons(64, seed=0)

    def run(epochs, initial_epoch=0, state=None):
        nn.manual_seed(0)
        model = nn.MLP([2, 8, 2])
        opt = optim.SGD(model.parameters(), lr=0.1)
        if state:
            model.load_state_dict(state)
        nn.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=epochs, batch_size=10, progress=False,
               initial_epoch=initial_epoch)
        return model.state_dict()

    full, half = run(4), run(2)
    resumed = run(4, 2, half)
    assert all(np.array_equal(full[k], resumed[k]) for k in full)
    with pytest.raises(ValueError, match="initial_epoch"):
        run(2, 3)


def test_fit_distributed_needs_init_and_a_distributed_optimizer(monkeypatch):
    monkeypatch.setattr(dist, "_state", None)
    model = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="init"):
        nn.fit(model, np.zeros((4, 2)), np.zeros(4, np.int64), loss="cross_entropy", epochs=1, progress=False,
               optimizer=optim.SGD(model.parameters(), lr=0.1), distributed=True)


# ---------------------------------------------------------------------------
# DistributedSampler
# ---------------------------------------------------------------------------

def _epoch(sampler):
    return [(idx.copy(), w) for idx, w in sampler]


@pytest.mark.parametrize("n, reps, batch", [(203, 2, 16), (203, 3, 11), (10, 4, 3), (7, 3, 5), (64, 4, 4)])
def test_sampler_parts_are_disjoint_and_cover_each_global_batch(n, reps, batch):
    samplers = [data.DistributedSampler(n, batch, num_replicas=reps, rank=r, seed=5) for r in range(reps)]
    loader = data.DataLoader(np.arange(n), batch_size=reps * batch, shuffle=True, seed=5)
    for epoch in range(3):
        parts = [_epoch(s) for s in samplers]
        globals_ = list(loader)
        assert all(len(p) == len(globals_) == len(samplers[0]) for p in parts)
        for step, g in enumerate(globals_):
            joined = np.concatenate([p[step][0] for p in parts])
            assert np.array_equal(joined, g)  # rank order = the single-process batch, so results can match
            counts = np.array([len(p[step][0]) for p in parts])
            weights = np.array([p[step][1] for p in parts])
            # mean over ranks of weight * (mean over the rank's samples) = mean over the global batch
            np.testing.assert_allclose(weights / reps, counts / len(g))
            if len(g) == reps * batch:
                assert np.all(weights == 1.0)
        assert sorted(np.concatenate([i for p in parts for i, _ in p]).tolist()) == list(range(n))


def test_sampler_epochs_reshuffle_are_seeded_and_set_epoch_jumps():
    s = data.DistributedSampler(50, 5, num_replicas=2, rank=1, seed=3)
    e0, e1, e2 = _epoch(s), _epoch(s), _epoch(s)
    assert not np.array_equal(np.concatenate([i for i, _ in e0]), np.concatenate([i for i, _ in e1]))
    t = data.DistributedSampler(50, 5, num_replicas=2, rank=1, seed=3)
    t.set_epoch(2)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(_epoch(t), e2))
    u = data.DistributedSampler(50, 5, num_replicas=2, rank=1, seed=4)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(_epoch(u), e0))
    plain = data.DistributedSampler(50, 5, num_replicas=2, rank=0, shuffle=False)
    assert np.array_equal(next(iter(plain))[0], np.arange(5))


def test_sampler_drop_last_and_errors():
    s = data.DistributedSampler(23, 5, num_replicas=2, rank=0, drop_last=True)
    assert len(s) == 2 and all(len(i) == 5 and w == 1.0 for i, w in s)
    s = data.DistributedSampler(3, 2, num_replicas=4, rank=3)  # fewer samples than ranks: an empty share
    (idx, w), = list(s)
    assert len(idx) == 0 and w == 0.0
    for kwargs, msg in [(dict(n_samples=0, batch_size=1), "n_samples"), (dict(n_samples=5, batch_size=0), "batch_size"),
                        (dict(n_samples=5, batch_size=1, num_replicas=0, rank=0), "num_replicas"),
                        (dict(n_samples=5, batch_size=1, num_replicas=2, rank=2), r"rank must be in \[0, 2\)")]:
        with pytest.raises(ValueError, match=msg):
            data.DistributedSampler(**kwargs)
    with pytest.raises(ValueError, match="epoch"):
        data.DistributedSampler(5, 1, num_replicas=1, rank=0).set_epoch(-1)


def test_set_grad_view_shares_the_bucket_and_the_backward_adds_into_it():
    """The core entry point DistributedOptimizer uses for gradient-as-bucket-view."""
    from tapegrad import _core
    bucket = np.zeros(10, np.float32)
    w = tg.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    view = bucket[2:8].reshape(2, 3)
    _core._set_grad_view(w, view, "w")
    assert np.shares_memory(w.grad, bucket) and np.array_equal(w.grad, np.zeros((2, 3)))
    (w * 3.0).sum().backward()
    (w * w).sum().backward()  # accumulates in place, into the bucket
    expect = np.full((2, 3), 3, np.float32) + 2 * w.data
    assert np.array_equal(bucket[2:8].reshape(2, 3), expect) and bucket[:2].tolist() == [0, 0] == bucket[8:].tolist()
    assert np.shares_memory(w.grad, bucket)
    opt = optim.SGD([w], lr=0.5)
    before = w.data.copy()
    opt.step()  # the fused update reads the view
    assert np.array_equal(w.data, before - np.float32(0.5) * expect)
    opt.zero_grad(set_to_none=False)
    assert np.shares_memory(w.grad, bucket) and not bucket.any()
    w.grad = np.ones((2, 3), np.float32)  # an assignment copies: the view is gone, the bucket untouched
    assert not np.shares_memory(w.grad, bucket) and not bucket.any()
    del view, bucket
    import gc
    gc.collect()
    _core._set_grad_view(w, np.full((2, 3), 7, np.float32), "w")  # .grad keeps its memory alive
    gc.collect()
    assert np.array_equal(w.grad, np.full((2, 3), 7))


@pytest.mark.parametrize("view, bad, words", [
    (np.zeros((3, 2), np.float32), ValueError, ["parameter w", "shape (2, 3)", "shape (3, 2)"]),
    (np.zeros((2, 3), np.float64), ValueError, ["parameter w", "float32", "float64"]),
    (np.zeros((3, 2), np.float32).T, ValueError, ["parameter w", "C-contiguous"]),
    ("read-only", ValueError, ["parameter w", "writeable"]),
    ([[0.0] * 3] * 2, TypeError, ["parameter w", "numpy.ndarray", "list"]),
])
def test_set_grad_view_refuses_a_view_that_cannot_hold_the_gradient(view, bad, words):
    from tapegrad import _core
    w = tg.Variable(np.zeros((2, 3), np.float32), requires_grad=True)
    if isinstance(view, str):
        view = np.zeros((2, 3), np.float32)
        view.setflags(write=False)
    with pytest.raises(bad) as e:
        _core._set_grad_view(w, view, "w")
    for word in words:
        assert word in str(e.value)
    assert w.grad is None


def test_set_grad_view_needs_a_leaf_that_requires_grad():
    from tapegrad import _core
    for v in (tg.Variable(np.zeros(3)), tg.Variable(np.zeros(3), requires_grad=True) * 2):
        with pytest.raises(ValueError, match="parameter p .*leaf that requires grad"):
            _core._set_grad_view(v, np.zeros(3), "p")
    with pytest.raises(TypeError, match="parameter p is not a Variable"):
        _core._set_grad_view(np.zeros(3), np.zeros(3), "p")


def test_grad_address_tells_a_bucket_view_from_an_array_of_its_own():
    """The reducer's per-step test of whether .grad is still its bucket view: the address of the first element."""
    from tapegrad import _core
    bucket = np.zeros(12, np.float64)
    view = bucket[4:10].reshape(2, 3)
    w = tg.Variable(np.ones((2, 3)), requires_grad=True)
    assert _core._grad_address(w) == 0  # no gradient
    _core._set_grad_view(w, view, "w")
    assert _core._grad_address(w) == view.ctypes.data != bucket.ctypes.data
    (w * 2.0).sum().backward()  # accumulates into the view: still it
    assert _core._grad_address(w) == view.ctypes.data
    w.grad = np.ones((2, 3))  # an assignment copies: memory of its own
    assert _core._grad_address(w) not in (0, -1, -2, view.ctypes.data)
    assert _core._grad_address(w) == w.grad.ctypes.data
    w.grad = None
    (w * w).sum().backward(create_graph=True)  # a differentiable gradient: not an array
    assert _core._grad_address(w) == -1
    empty = tg.Variable(np.ones((0, 3)), requires_grad=True)
    (empty * 2.0).sum().backward()
    assert _core._grad_address(empty) == -2  # empty: never compared with a view's address
    with pytest.raises(TypeError, match="_grad_address: expected a Variable"):
        _core._grad_address(np.ones(3))
