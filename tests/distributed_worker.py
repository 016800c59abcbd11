"""Scenarios that tests/test_distributed_mpi.py runs under ``mpiexec -n N python tests/distributed_worker.py NAME ...``.

Each scenario asserts on every rank; a failed assertion is an uncaught
exception, which (under ``tapegrad.distributed.init()``) aborts the job with
a non-zero status.
"""
import gc
import os
import signal
import sys
import weakref

import numpy as np

import tapegrad as tg
import tapegrad.distributed as dist
from tapegrad import data, nn, optim

if os.environ.get("TG_TEST_SHARED_MEMORY") == "0":  # the scenario through MPI's Iallreduce, not the shared window
    dist.DistributedOptimizer.__init__.__kwdefaults__["shared_memory"] = False


def expect(exc, fn, *words):
    try:
        fn()
    except exc as e:
        for w in words:
            assert w in str(e), (w, str(e))
        return str(e)
    raise AssertionError(f"expected {exc.__name__}")


def same_mean(got, expect, n, magnitude=None):
    """The reducer's averages are the sum of g * (1/N): bitwise the sum / N for N a power of two, else within
    rounding of the terms' ``magnitude`` (the mean of |g|; default |expect|: no cancellation)."""
    if n & (n - 1) == 0:
        return np.array_equal(got, expect)
    magnitude = np.abs(expect) if magnitude is None else magnitude
    return bool(np.all(np.abs(got - expect) <= 4 * np.finfo(np.asarray(got).dtype).eps * magnitude))


def basics():
    r, n = dist.init()
    assert (dist.rank(), dist.size()) == (r, n) and n > 1
    ranks = np.arange(n, dtype=np.float64)
    for dtype in (np.float32, np.float64):
        x = np.array([r, -r, 1.5], dtype)
        assert np.array_equal(dist.allreduce(x, "sum"), np.array([ranks.sum(), -ranks.sum(), 1.5 * n], dtype))
        assert dist.allreduce(x, "sum").dtype == dtype
        assert np.array_equal(dist.allreduce(x, "mean"), (np.array([ranks.sum(), -ranks.sum(), 1.5 * n]) / n).astype(dtype))
        assert np.array_equal(dist.allreduce(x, "max"), np.array([n - 1, 0, 1.5], dtype))
        assert np.array_equal(dist.allreduce(x, "min"), np.array([0, -(n - 1), 1.5], dtype))
        assert x[0] == r  # not modified in place
    assert dist.allreduce(r, "sum") == ranks.sum() and isinstance(dist.allreduce(r, "sum"), int)
    assert dist.allreduce(np.array([r]), "mean").dtype == np.float64
    assert dist.allreduce(np.zeros((0, 3)), "sum").shape == (0, 3)
    v = tg.Variable(np.full(3, float(r)), requires_grad=True)
    expect(RuntimeError, lambda: dist.allreduce(v * 2), "not a tape op", "no_grad")
    with tg.no_grad():
        out = dist.allreduce(v * 2, "sum")
    assert isinstance(out, tg.Variable) and not out.requires_grad and np.allclose(out.data, 2 * ranks.sum())
    assert np.allclose(dist.allreduce(v.detach(), "max").data, n - 1)
    # every rank raises, naming the shapes, when they disagree
    msg = expect(ValueError, lambda: dist.allreduce(np.zeros(3 + (r == 1))), "different arrays", "rank 1: shape (4,)")
    assert "rank 0: shape (3,)" in msg
    expect(ValueError, lambda: dist.allreduce(np.zeros(3, np.float32 if r else np.float64)), "float32", "float64")
    assert dist.allreduce(1.0) == 1.0  # still in step after the errors

    # broadcast_parameters: root's values everywhere, in place
    nn.manual_seed(r)
    model = nn.MLP([3, 5, 2])
    w0 = model.parameters()[0]
    expect(RuntimeError, lambda: dist.check_consistent(model), "differs", "0.weight")
    dist.broadcast_parameters(model, root=n - 1)
    assert model.parameters()[0] is w0
    nn.manual_seed(n - 1)
    ref = nn.MLP([3, 5, 2])
    for a, b in zip(model.parameters(), ref.parameters()):
        assert np.array_equal(a.data, b.data)
    dist.check_consistent(model)
    expect(ValueError, lambda: dist.broadcast_parameters(model, root=n), "root must be a rank")
    assert dist.broadcast_object({"a": [r]}, root=1) == {"a": [1]}

    # DistributedOptimizer: unused parameters, a rank without a gradient, synchronize before clipping
    a = tg.Variable(np.ones(4), requires_grad=True)
    b = tg.Variable(np.ones(2, np.float32), requires_grad=True)
    unused = tg.Variable(np.ones(3), requires_grad=True)
    inner = optim.SGD([a, b, unused], lr=0.5, weight_decay=0.1)
    opt = dist.DistributedOptimizer(inner, bucket_size=16)
    assert isinstance(opt, optim.Optimizer) and opt.lr == 0.5
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    if r != 0:  # rank 0 computes no gradient for `a`
        ((a * (r + 1.0)).sum()).backward()
    (b * float(r)).sum().backward()
    opt.synchronize()
    expect_a = sum(k + 1.0 for k in range(1, n)) / n
    assert same_mean(a.grad, np.full(4, expect_a), n), a.grad
    assert b.grad.dtype == np.float32 and np.allclose(b.grad, ranks.mean())
    assert unused.grad is None
    optim.clip_grad_norm([a, b], 1e9)
    opt.step()
    assert np.allclose(a.data, 1 - 0.5 * (expect_a + 0.1)) and np.array_equal(unused.data, np.ones(3))
    sched.step()
    assert inner.lr == 0.25 and opt.state_dict()["type"] == "SGD"
    opt.zero_grad()
    assert a.grad is None

    # backward_passes_per_step: gradients of two backward calls are averaged once
    opt.remove_hooks()
    opt2 = dist.DistributedOptimizer(optim.SGD([a], lr=1.0), backward_passes_per_step=2)
    opt2.zero_grad()
    a.sum().backward()
    (a * float(r)).sum().backward()
    opt2.synchronize()
    assert np.allclose(a.grad, 1 + ranks.mean())
    opt2.step()
    if opt2.overlap:
        expect(RuntimeError, lambda: [a.sum().backward(), opt2.zero_grad()], "before step()")
        opt2.step()
    opt2.remove_hooks()
    # the average is the sum of g / N (scaled before the reduction, in the hook): for N a power of two
    # bitwise the sum / N, else within rounding; fused (c, d) and in-place (e) buckets alike
    rng = np.random.default_rng(100 + r)
    c, d, e = (tg.Variable(rng.standard_normal(k).astype(np.float32), requires_grad=True) for k in (3, 5, 64))
    mine = {id(v): rng.standard_normal(v.shape).astype(np.float32) for v in (c, d, e)}
    opt4 = dist.DistributedOptimizer(optim.SGD([c, d, e], lr=1.0), bucket_size=128)
    assert opt4.buckets == [[2], [1, 0]], opt4.buckets
    sum(((v * tg.Variable(mine[id(v)])).sum() for v in (c, d, e)), tg.Variable(np.float32(0))).backward()
    opt4.synchronize()
    for v in (c, d, e):
        total = dist.allreduce(mine[id(v)], "sum")
        magnitude = dist.allreduce(np.abs(mine[id(v)]), "mean")
        assert v.grad.dtype == np.float32 and same_mean(v.grad, total / np.float32(n), n, magnitude), \
            (v.grad, total / n)
    opt4.remove_hooks()
    # a dropped optimizer goes with its hooks: later backward passes start no collective of its
    opt3 = dist.DistributedOptimizer(optim.SGD([a], lr=1.0))
    reducer = weakref.ref(opt3._reducer)
    del opt3
    gc.collect()
    assert reducer() is None
    a.grad = None
    a.sum().backward()
    assert dist.allreduce(float(r), "max") == n - 1  # the ranks' collectives are still in step
    print(f"OK basics rank {r}", flush=True)


def shape_mismatch():
    r, n = dist.init()
    model = nn.MLP([3, 8 if r == 0 else 9, 2])
    msg = expect(ValueError, lambda: dist.broadcast_parameters(model), "models differ", "(3, 8)", "(3, 9)", "0.weight")
    expect(ValueError, lambda: dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1)),
           "parameters differ", "(8, 2)", "(9, 2)")
    print(f"rank {r}: {msg}", flush=True)


def fit(batch, out, dtype="float64", epochs="3", bucket="512"):
    """Train with fit(distributed=True); rank 0 writes the final parameters."""
    r, n = dist.init()
    tg.set_num_threads(1)
    X, y = data.make_spirals(203, n_classes=3, seed=1)
    nn.manual_seed(0)
    model = nn.MLP([2, 16, 16, 3], dtype=np.dtype(dtype))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if n > 1:
        opt = dist.DistributedOptimizer(opt, bucket_size=int(bucket))
    steps = []

    def every_step(epoch, logs):
        dist.check_consistent(model)  # every rank holds the same bits
        steps.append(epoch)

    nn.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=int(epochs), batch_size=int(batch), seed=0,
           progress=False, distributed=True, callbacks=[every_step])
    if r == 0:
        np.savez(out, **model.state_dict())


def resume(batch, out, ckpt, start):
    """Train 4 epochs with fit(distributed=True); rank 0 checkpoints after epoch 2. With ``start`` = 2,
    resume from that checkpoint instead (rank 0 reads it, fit broadcasts it)."""
    r, n = dist.init()
    X, y = data.make_spirals(203, n_classes=3, seed=1)
    nn.manual_seed(0)
    model = nn.MLP([2, 16, 16, 3], dtype=np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.StepLR(opt, step_size=1, gamma=0.7)
    if n > 1:
        opt = dist.DistributedOptimizer(opt)
    start = int(start)
    if start and r == 0:
        meta = nn.load_checkpoint(ckpt, model, opt, sched)
        assert meta["epoch"] == start, meta
    if start:
        state = dist.broadcast_object(sched.state_dict())
        sched.load_state_dict(state)

    def save(epoch, logs):
        if epoch + 1 == 2 and r == 0 and not start:
            nn.save_checkpoint(ckpt, model, opt, sched, epoch=epoch + 1)

    nn.fit(model, X, y, loss="cross_entropy", optimizer=opt, epochs=4, batch_size=int(batch), seed=0,
           progress=False, distributed=True, scheduler=sched, callbacks=[save], initial_epoch=start)
    dist.check_consistent(model)
    if r == 0:
        np.savez(out, **model.state_dict())


def consistent_steps(interval=None):
    """check_consistent after every single step, with overlap and several buckets (and a progress thread)."""
    r, n = dist.init()
    nn.manual_seed(0)
    model = nn.MLP([4, 32, 32, 3])
    opt = dist.DistributedOptimizer(optim.Adam(model.parameters(), lr=1e-2), bucket_size=1024,
                                    progress_interval=None if interval is None else float(interval))
    assert len(opt.buckets) >= 3, opt.buckets
    rng = np.random.default_rng(r)
    for _ in range(5):
        opt.zero_grad()
        nn.cross_entropy(model(tg.Variable(rng.normal(size=(7, 4)))), rng.integers(0, 3, 7)).backward()
        opt.step()
        dist.check_consistent(model)
    tl = opt.timeline["buckets"]
    assert [row["bucket"] for row in tl] == list(range(len(opt.buckets)))
    assert all(row["start"] <= row["end"] for row in tl)
    if opt.overlap:  # the hooks started the buckets during the backward, before step()
        assert all(row["start"] < 0 for row in tl), tl
    print(f"OK consistent rank {r} overlap={opt.overlap}", flush=True)


def views():
    """Gradient-as-bucket-view: after every reduction each .grad is a view of its bucket and holds the
    average; zero_grad() in both modes, a replaced .grad and clipping keep it so."""
    r, n = dist.init()
    tg.set_num_threads(1)
    nn.manual_seed(0)
    model = nn.MLP([3, 8, 8, 2])
    params = model.parameters()
    opt = dist.DistributedOptimizer(optim.SGD(params, lr=0.1), bucket_size=384)  # < the 488 bytes: several
    rng = np.random.default_rng(r)
    nn.manual_seed(0)
    twin = nn.MLP([3, 8, 8, 2])
    fused = [b for b in opt._reducer.buckets if len(b.params) > 1]
    assert fused and len(fused) < len(opt._reducer.buckets), opt.buckets  # both kinds of bucket

    def check_views():
        red = opt._reducer
        for i, p in enumerate(params):
            b = red.where[i][0]  # fused: .grad is a view of the bucket; alone: .grad is the bucket
            assert len(b.params) == 1 or np.shares_memory(b.target, b.buffer), i
            assert isinstance(p.grad, np.ndarray) and np.shares_memory(p.grad, b.target), (i, red.layout())
            assert sum(np.shares_memory(p.grad, q.grad) for q in params) == 1, i  # disjoint slices

    modes = ["none", "none", "zeros", "zeros", "none", "replace", "zeros", "clip", "none"]
    for step, mode in enumerate(modes):
        linked = step > 0 and modes[step - 1] != "replace"  # .grad are the views when this step starts
        x, y = tg.Variable(rng.normal(size=(5, 3))), rng.integers(0, 2, 5)
        for a, b in zip(twin.parameters(), params):  # this rank's own gradient, on a copy
            a.data[...] = b.data
            a.grad = None
        nn.cross_entropy(twin(x), y).backward()
        mine = [a.grad.copy() for a in twin.parameters()]
        expect = [dist.allreduce(g, "sum") / n for g in mine]
        magnitude = [dist.allreduce(np.abs(g), "mean") for g in mine]
        if mode == "zeros":
            opt.zero_grad(set_to_none=False)
            if linked:  # the views survive and are zeroed in place
                check_views()
                assert not any(p.grad.any() for p in params)
        else:
            opt.zero_grad()
            assert all(p.grad is None for p in params)
        nn.cross_entropy(model(x), y).backward()
        if mode == "zeros" and linked:  # the backward added into the bucket (the hooks' reductions run there)
            check_views()
        opt.synchronize()
        check_views()
        for i, p in enumerate(params):
            assert same_mean(p.grad, expect[i], n, magnitude[i]), (step, i)
        if mode == "replace":  # an optimizer or a user that assigns .grad: used as given, re-linked next step
            for p in params:
                p.grad = p.grad * 0.5
        if mode == "clip":
            total = optim.clip_grad_norm(params, 1e-3)
            assert total > 1e-3
            check_views()
        grads = [p.grad.copy() for p in params]
        before = [p.data.copy() for p in params]
        opt.step()
        for p, g, w in zip(params, grads, before):
            assert np.allclose(p.data, w - 0.1 * g, rtol=1e-14, atol=1e-15)
            assert np.array_equal(p.grad, g)  # read after step: the average the update used
        if mode != "replace":
            check_views()
        else:  # the assigned arrays stay .grad until the next reduction copies them into the buckets
            assert not any(np.shares_memory(p.grad, opt._reducer.where[i][0].target) for i, p in enumerate(params))
        dist.check_consistent(model)
    print(f"OK views rank {r}", flush=True)


def fused_average():
    """step() folds 1/N into the fused update (grad_scale): the same bits as synchronize() (the 1/N pass)
    then step(), and .grad read after step() holds the average; optimizers without a fused step (RMSprop,
    a subclass with its own step) and clipping after synchronize() see the averages before the update."""
    r, n = dist.init()
    tg.set_num_threads(1)
    rng = np.random.default_rng(7 + r)
    data_x = [rng.normal(size=(6, 5)) for _ in range(4)]
    data_y = [rng.integers(0, 3, 6) for _ in range(4)]

    class Peeking(optim.SGD):
        """A subclass whose step() reads .grad: it must see the averages."""
        def step(self):
            self.seen = [p.grad.copy() for p in self.params]
            super().step()

    makers = {
        "sgd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        "adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
        "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
        "groups": lambda ps: optim.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.05}], lr=0.1, momentum=0.5),
        "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01),
        "peeking": lambda ps: Peeking(ps, lr=0.1),
    }
    for dtype in (np.float64, np.float32):
        for name, make in makers.items():
            nn.manual_seed(0)
            a = nn.MLP([5, 16, 16, 3], dtype=dtype)  # step() alone: 1/N folded into the update
            nn.manual_seed(0)
            b = nn.MLP([5, 16, 16, 3], dtype=dtype)  # synchronize() (the 1/N pass), then step()
            nn.manual_seed(0)
            twin = nn.MLP([5, 16, 16, 3], dtype=dtype)  # this rank's own gradient
            # 2048 bytes: under the gradients' 3,352 (float64), so not all in one bucket
            oa = dist.DistributedOptimizer(make(a.parameters()), bucket_size=2048 * np.dtype(dtype).itemsize // 8)
            ob = dist.DistributedOptimizer(make(b.parameters()), bucket_size=2048 * np.dtype(dtype).itemsize // 8)
            kinds = {len(k) > 1 for k in oa.buckets}
            assert kinds == {True, False}, oa.buckets  # fused buckets and lone ones
            scales = []
            if name not in ("rmsprop", "peeking"):  # step() must take the fused path, with 1/N
                fused = oa.optimizer._fused_step
                oa.optimizer._fused_step = lambda s, fused=fused: (scales.append(s), fused(s))[1]
            for step, (x, y) in enumerate(zip(data_x, data_y)):
                x = tg.Variable(x.astype(dtype))
                for t, q in zip(twin.parameters(), a.parameters()):
                    t.data[...] = q.data
                    t.grad = None
                nn.cross_entropy(twin(x), y).backward()
                mine = [t.grad.copy() for t in twin.parameters()]
                expect = [dist.allreduce(g, "sum") / dtype(n) for g in mine]
                magnitude = [dist.allreduce(np.abs(g), "mean") for g in mine]
                for m, o in ((a, oa), (b, ob)):
                    o.zero_grad(set_to_none=step % 2 == 0)
                    nn.cross_entropy(m(x), y).backward()
                ob.synchronize()
                for i, q in enumerate(b.parameters()):  # what clipping or a user sees: the averages
                    assert same_mean(q.grad, expect[i], n, magnitude[i]), (name, dtype, step, i)
                norm = optim.clip_grad_norm(b.parameters(), 1e9)
                want = np.sqrt(sum(float(np.sum(e.astype(np.float64) ** 2)) for e in expect))
                assert abs(norm - want) <= 1e-5 * want, (norm, want)
                oa.step()
                ob.step()
                for i, (qa, qb) in enumerate(zip(a.parameters(), b.parameters())):
                    assert np.array_equal(qa.data, qb.data), (name, dtype, step, i)
                    assert np.array_equal(qa.grad, qb.grad), (name, dtype, step, i)  # .grad after step: the average
                if name == "peeking":
                    for i, g in enumerate(oa.optimizer.seen):
                        assert same_mean(g, expect[i], n, magnitude[i]), (step, i)
                dist.check_consistent(a)
            assert scales == ([] if name in ("rmsprop", "peeking") else [1.0 / n] * len(data_x)), (name, scales)
            oa.remove_hooks()
            ob.remove_hooks()
    print(f"OK fused_average rank {r}", flush=True)


class _CountingComm:
    """The reducer's communicator, counting the collectives it starts (everything else passes through)."""

    def __init__(self, comm):
        self.comm, self.calls = comm, []

    def Iallreduce(self, send, recv, op):
        self.calls.append(np.asarray(recv).size)
        return self.comm.Iallreduce(send, recv, op=op)

    def __getattr__(self, name):
        return getattr(self.comm, name)


def _count_starts(red):
    """The reductions ``red`` starts (their sizes), through MPI or in the shared-memory window; and the undo."""
    if red.shm is None:
        counting = _CountingComm(red.w.comm)
        red.w.comm = counting
        return counting.calls, lambda: setattr(red.w, "comm", counting.comm)
    calls, start = [], red._start_shared
    red._start_shared = lambda b: (calls.append(b.target.size), start(b))[1]
    return calls, lambda: red.__dict__.pop("_start_shared")


def presence():
    """One non-blocking call per bucket and none per step besides: the presence counts (how many ranks had a
    gradient for each parameter) ride in the last bucket. Checked with and without overlap, lone and fused
    last buckets, gradients missing on rank 0 only, on every rank, on every rank but the last, in every
    zero_grad mode and across the first step's rebuild."""
    r, n = dist.init()
    tg.set_num_threads(1)
    for overlap, shared in ((True, False), (False, False), (True, True), (False, True)):
        for big_last in (False, True):
            rng = np.random.default_rng(3)
            # a, c, unused small float64 (fused in reverse order when adjacent), big float32 alone (>= 256 bytes)
            a = tg.Variable(rng.normal(size=4), requires_grad=True)
            big = tg.Variable(rng.normal(size=100).astype(np.float32), requires_grad=True)
            c = tg.Variable(rng.normal(size=3), requires_grad=True)
            unused = tg.Variable(np.ones(3), requires_grad=True)
            params = [big, a, c, unused] if big_last else [a, big, c, unused]
            opt = dist.DistributedOptimizer(optim.SGD(params, lr=0.1), bucket_size=1024, overlap=overlap,
                                            shared_memory=shared)
            red = opt._reducer
            assert (red.shm is not None) == shared
            calls, undo = _count_starts(red)
            try:
                for step, mode in enumerate(["none", "zeros", "none", "zeros", "none"]):
                    opt.zero_grad(set_to_none=mode == "none")
                    del calls[:]
                    # rank 0 has no gradient for a; the last rank none for big at step 2; nobody for unused
                    ga = np.full(4, r + 1.0)
                    gbig = np.arange(100, dtype=np.float32) * (r + 1)
                    gc_ = np.full(3, 2.0 * r)
                    terms = [(c * tg.Variable(gc_)).sum()]
                    if r != 0:
                        terms.append((a * tg.Variable(ga)).sum())
                    if not (step == 2 and r == n - 1):
                        terms.append((big * tg.Variable(gbig)).sum())
                    sum(terms[1:], terms[0]).backward()
                    grads_before = {id(p): p.grad for p in params}
                    layout = opt.buckets  # the first synchronize() may rebuild it in hook order
                    opt.synchronize()
                    assert len(calls) == len(layout), (calls, layout)
                    # the last call is the last bucket with one presence slot per parameter after its gradients
                    assert calls[-1] == sum(params[i].size for i in layout[-1]) + len(params), (calls, layout)
                    expect_a = sum(k + 1.0 for k in range(1, n)) / n
                    assert same_mean(a.grad, np.full(4, expect_a), n), (overlap, shared, step, a.grad)
                    ranks_big = range(n - 1) if step == 2 else range(n)
                    want_big = np.arange(100, dtype=np.float32) * np.float32(sum(k + 1 for k in ranks_big)) / np.float32(n)
                    assert np.allclose(big.grad, want_big, rtol=1e-6), (overlap, step)
                    assert np.allclose(c.grad, 2.0 * sum(range(n)) / n), (overlap, step, c.grad)
                    assert unused.grad is None, (overlap, step)
                    assert grads_before[id(unused)] is None
                    opt.step()
                    assert unused.grad is None and np.array_equal(unused.data, np.ones(3))
                    dist.check_consistent(params)
                if not overlap:  # order free: the smallest bucket last, so no large gradient is copied
                    sizes = [sum(params[i].size for i in b) for b in opt.buckets]
                    assert sizes[-1] == min(sizes), opt.buckets
            finally:
                undo()
            opt.remove_hooks()
    # nobody has any gradient: everything stays None
    x = tg.Variable(np.ones(5), requires_grad=True)
    opt = dist.DistributedOptimizer(optim.SGD([x], lr=0.1))
    opt.step()
    assert x.grad is None and np.array_equal(x.data, np.ones(5))
    opt.remove_hooks()
    print(f"OK presence rank {r}", flush=True)


def one_bucket():
    """All gradients within bucket_size: one bucket, one call per step, even for a parameter of more than a
    quarter of it (alone otherwise), with overlap on and off, in both zero_grad modes, a gradient missing on
    one rank, an assigned .grad; every .grad a view of the one buffer after each reduction."""
    r, n = dist.init()
    tg.set_num_threads(1)
    for overlap, shared in ((True, False), (False, False), (True, True), (False, True)):
        nn.manual_seed(0)
        model = nn.MLP([6, 12, 3], dtype=np.float32)  # W1 288 bytes: >= 1024 / 4, yet the total (492) fits
        params = model.parameters()
        nn.manual_seed(0)
        twin = nn.MLP([6, 12, 3], dtype=np.float32)
        opt = dist.DistributedOptimizer(optim.SGD(params, lr=0.1), bucket_size=1024, overlap=overlap,
                                        shared_memory=shared)
        assert opt.buckets == [[3, 2, 1, 0]], opt.buckets
        small = dist.DistributedOptimizer(optim.SGD(twin.parameters(), lr=0.1), bucket_size=256, overlap=overlap)
        assert len(small.buckets) > 1 and [0] in small.buckets, small.buckets  # 492 > 256: W1 (>= 64) alone
        small.remove_hooks()
        red = opt._reducer
        calls, undo = _count_starts(red)
        rng = np.random.default_rng(r)
        try:
            for step, mode in enumerate(["none", "zeros", "zeros", "none", "assign", "zeros", "skip_b2", "zeros"]):
                x, y = tg.Variable(rng.normal(size=(4, 6)).astype(np.float32)), rng.integers(0, 3, 4)
                coef = [tg.Variable(rng.normal(size=p.shape).astype(np.float32)) for p in params]

                def loss(m):
                    if mode != "skip_b2":
                        return nn.cross_entropy(m(x), y)
                    # rank 0 has no gradient for b2 (parameter 3): it counts as zero in the sum
                    used = range(3) if r == 0 else range(4)
                    return sum(((m.parameters()[i] * coef[i]).sum() for i in used), tg.Variable(np.float32(0)))

                for a, b in zip(twin.parameters(), params):
                    a.data[...] = b.data
                    a.grad = None
                loss(twin).backward()
                mine = [np.zeros(p.shape, np.float32) if a.grad is None else a.grad.copy()
                        for p, a in zip(params, twin.parameters())]
                expect = [dist.allreduce(g, "sum") / np.float32(n) for g in mine]
                magnitude = [dist.allreduce(np.abs(g), "mean") for g in mine]
                opt.zero_grad(set_to_none=mode != "zeros")
                if mode == "assign":  # arrays of their own (as an optimizer may assign): the backward adds into them
                    for p in params:
                        p.grad = np.zeros(p.shape, np.float32)
                del calls[:]
                loss(model).backward()
                opt.synchronize()
                assert calls == [sum(p.size for p in params) + len(params)], calls  # + presence
                buffer = red.buckets[0].buffer
                for i, p in enumerate(params):
                    assert np.shares_memory(p.grad, buffer), (step, i)
                    assert same_mean(p.grad, expect[i], n, magnitude[i]), (overlap, step, i)
                opt.step()
                dist.check_consistent(model)
        finally:
            undo()
        opt.remove_hooks()
    print(f"OK one_bucket rank {r}", flush=True)


def shared_window():
    """On one node the default reduction is the shared-memory window: each bucket summed in rank order, chunk by
    chunk, bitwise ((g0 + g1) + g2) on every rank, run after run; lone and fused buckets, new arrays and views,
    overlap on and off, float32 and float64, a window reused by a later optimizer; MPI's Iallreduce path when
    asked (shared_memory=False)."""
    r, n = dist.init()
    tg.set_num_threads(1)
    for dtype in (np.float64, np.float32):
        for overlap in (True, False):
            nn.manual_seed(0)
            model = nn.MLP([7, 40, 33, 5], dtype=dtype)  # W1 and W2 alone (>= bucket / 4), the rest fused
            params = model.parameters()
            opt = dist.DistributedOptimizer(optim.SGD(params, lr=0.05), bucket_size=1024 * np.dtype(dtype).itemsize,
                                            overlap=overlap)
            red = opt._reducer
            assert red.shm is not None, "every rank is on this node: the shared window is the default"
            assert any(len(b) == 1 for b in opt.buckets) and any(len(b) > 1 for b in opt.buckets), opt.buckets
            nn.manual_seed(0)
            twin = nn.MLP([7, 40, 33, 5], dtype=dtype)
            rng = np.random.default_rng(11 + r)
            for step, mode in enumerate(["none", "none", "zeros", "zeros", "none", "zeros"]):
                x, y = tg.Variable(rng.normal(size=(9, 7)).astype(dtype)), rng.integers(0, 5, 9)
                for a, b in zip(twin.parameters(), params):  # this rank's own gradients, on a copy
                    a.data[...] = b.data
                    a.grad = None
                nn.cross_entropy(twin(x), y).backward()
                every = dist._gather_objects(dist._state, [a.grad for a in twin.parameters()], "test")
                opt.zero_grad(set_to_none=mode == "none")
                nn.cross_entropy(model(x), y).backward()  # with overlap the hooks sum buckets during it
                opt.synchronize()
                for i, p in enumerate(params):
                    want = every[0][i]
                    for q in range(1, n):
                        want = want + every[q][i]  # rank order
                    want = want * dtype(1.0 / n)
                    assert np.array_equal(p.grad, want), (dtype, overlap, step, i)
                    b = red.where[i][0]
                    assert np.shares_memory(p.grad, b.buffer) and np.shares_memory(b.buffer, red.shm.segs[r]), i
                opt.step()
                dist.check_consistent(model)
            opt.remove_hooks()
    del opt, red
    gc.collect()
    windows = list(dist._state.windows)
    nn.manual_seed(0)
    again = dist.DistributedOptimizer(optim.SGD(nn.MLP([7, 40, 33, 5]).parameters(), lr=0.05), bucket_size=4096)
    assert dist._state.windows == windows and again._reducer.shm in windows, "a released window is reused"
    again.remove_hooks()
    mpi = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.05), shared_memory=False)
    assert mpi._reducer.shm is None
    mpi.remove_hooks()
    print(f"OK shared_window rank {r}", flush=True)


def fail(how):
    """Rank 1 fails in the middle of training; the others must not hang."""
    r, n = dist.init()
    nn.manual_seed(0)
    model = nn.MLP([4, 8, 3])
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
    rng = np.random.default_rng(r)
    for step in range(1000):
        if r == 1 and step == 3:
            if how == "raise":
                raise ValueError("rank 1 fails on purpose")
            if how == "exit":
                sys.exit(3)
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
        opt.zero_grad()
        nn.cross_entropy(model(tg.Variable(rng.normal(size=(5, 4)))), rng.integers(0, 3, 5)).backward()
        opt.step()
    print("unreachable: training went on without rank 1", flush=True)


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
