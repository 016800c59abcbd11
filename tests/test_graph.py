"""Graph-level behaviour: very deep graphs, memory over many iterations,
threads training at once, and second derivatives (create_graph).
"""
import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import zlib

import numpy as np
import pytest

import tapegrad as tg
from helpers import assert_close, numeric_grad, reference_engine, measures_memory

PYTHON = sys.executable
MAIN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.usefixtures("restore_grad_mode")  # conftest.py


def run_script(code, timeout=300):
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    proc = subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=MAIN,
    )
    assert proc.returncode == 0, (
        f"subprocess died with return code {proc.returncode} (negative = killed by that signal)\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stdout[-3000:]
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------
# A chain of 1,000,000 scalar ops
# ---------------------------------------------------------------------------
def test_chain_of_a_million_ops_backpropagates_and_is_freed():
    # Subprocess: a recursion in the sweep or in the graph's destructor would
    # overflow the C stack and kill the interpreter, not raise.
    result = run_script(
        """
        import json, time
        import tapegrad as tg

        ITER = 500_000  # two ops each: 1,000,000 ops
        c = 1.0000001
        t0 = time.perf_counter()
        x = tg.Variable(1.0, requires_grad=True)
        y = x
        for _ in range(ITER):
            y = y * c + 0.0
        t1 = time.perf_counter()
        y.backward()
        t2 = time.perf_counter()
        value = y.item()
        del y  # frees the whole chain
        t3 = time.perf_counter()
        grad = float(x.grad)

        # a second chain freed without ever running backward
        z = tg.Variable(2.0, requires_grad=True)
        w = z
        for _ in range(ITER):
            w = w * c + 0.0
        del w
        t4 = time.perf_counter()
        # and the process is still healthy
        q = tg.Variable(3.0, requires_grad=True)
        (q * q).backward()
        print(json.dumps({"value": value, "grad": grad, "q_grad": float(q.grad),
                          "forward": t1 - t0, "backward": t2 - t1, "free": t3 - t2, "second": t4 - t3}))
        """
    )
    expected = 1.0000001 ** 500_000
    assert result["value"] == pytest.approx(expected, rel=1e-9)
    assert result["grad"] == pytest.approx(expected, rel=1e-9)
    assert result["q_grad"] == 6.0


def test_long_chain_inline():
    # A shorter chain in-process, also through a non-leaf with retain_grad.
    x = tg.Variable(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    mid = None
    for i in range(5_000):
        y = tg.tanh(y) * 0.5 + y * 0.5
        if i == 2_500:
            mid = y
            mid.retain_grad()
    y.sum().backward()
    assert np.all(np.isfinite(x.grad))
    assert mid.grad is not None and mid.grad.shape == (2,)
    # compare with the reference engine
    ref = reference_engine()
    rx = ref.Variable(np.array([1.0, 2.0]), requires_grad=True)
    ry = rx
    for _ in range(5_000):
        ry = ref.tanh(ry) * 0.5 + ry * 0.5
    ry.sum().backward()
    assert_close(x.grad, rx.grad, rtol=1e-10)
    assert_close(y, ry, rtol=1e-12)


def test_wide_graph_fan_in_and_fan_out():
    x = tg.Variable(np.linspace(-1, 1, 5), requires_grad=True)
    terms = [tg.sin(x * (k + 1)) for k in range(2000)]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    total.sum().backward()
    k = np.arange(1, 2001)[:, None]
    expected = np.sum(k * np.cos(k * np.linspace(-1, 1, 5)[None, :]), axis=0)
    assert_close(x.grad, expected, rtol=1e-10, atol_scale=1e-12)


def test_diamond_graph_accumulates():
    x = tg.Variable(1.5, requires_grad=True)
    a = x * 2
    b = tg.exp(a)
    c = tg.sin(a)
    d = b * c + a
    d.backward()
    expected = 2 * np.exp(3.0) * np.sin(3.0) + np.exp(3.0) * np.cos(3.0) * 2 + 2
    assert_close(x.grad, expected, rtol=1e-13)


def test_borrowed_buffer_released_during_backward():
    # The only reference to a from_numpy array is a value saved by the graph;
    # the sweep (which runs without the GIL) releases it.
    result = run_script(
        """
        import gc, json
        import numpy as np
        import tapegrad as tg

        w = tg.Variable(np.ones(1000), requires_grad=True)
        ys = []
        for k in range(50):
            arr = np.full(1000, float(k))
            ys.append((w * tg.from_numpy(arr)).sum())
            del arr
        gc.collect()
        total = 0.0
        for y in ys:
            y.backward()
        del ys
        gc.collect()
        print(json.dumps({"grad0": float(w.grad[0]), "grad_last": float(w.grad[-1])}))
        """,
        timeout=120,
    )
    assert result == {"grad0": float(sum(range(50))), "grad_last": float(sum(range(50)))}


# ---------------------------------------------------------------------------
# Memory stays flat
# ---------------------------------------------------------------------------
def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class MLP:
    def __init__(self, m, seed, n_in=8, n_hidden=16, n_out=1):
        rng = np.random.default_rng(seed)
        self.m = m
        self.W1 = m.Variable(rng.normal(size=(n_in, n_hidden)) * 0.3, requires_grad=True)
        self.b1 = m.Variable(np.zeros(n_hidden), requires_grad=True)
        self.W2 = m.Variable(rng.normal(size=(n_hidden, n_out)) * 0.3, requires_grad=True)
        self.b2 = m.Variable(np.zeros(n_out), requires_grad=True)

    @property
    def params(self):
        return [self.W1, self.b1, self.W2, self.b2]

    def forward(self, X):
        h = self.m.tanh(X @ self.W1 + self.b1)
        return h @ self.W2 + self.b2

    def step(self, X, Y, lr=0.05):
        loss = ((self.forward(X) - Y) ** 2).mean()
        loss.backward()
        with self.m.no_grad():
            for p in self.params:
                p -= lr * p.grad
                p.zero_grad()
        return loss.item()


def _data(seed, n=32, n_in=8):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    Y = np.sin(X.sum(axis=1, keepdims=True))
    return X, Y


@measures_memory
def test_training_loop_memory_is_flat():
    X, Y = _data(0)
    model = MLP(tg, 0)
    for _ in range(500):  # warm-up: allocator pools, caches
        model.step(X, Y)
    gc.collect()
    start = rss_bytes()
    peak = start
    for i in range(10_000):
        loss = model.step(X, Y)
        if i % 500 == 0:
            peak = max(peak, rss_bytes())
    gc.collect()
    end = rss_bytes()
    assert np.isfinite(loss)
    growth_mb = (max(end, peak) - start) / 2**20
    assert growth_mb < 4.0, f"RSS grew by {growth_mb:.1f} MB over 10,000 training iterations"


@measures_memory
def test_forward_without_backward_memory_is_flat():
    X, _ = _data(1)
    model = MLP(tg, 1)

    def forward():
        return (model.forward(X) ** 2).mean()

    for _ in range(500):
        forward()
    gc.collect()
    start = rss_bytes()
    peak = start
    keep = None
    for i in range(10_000):
        keep = forward()  # the previous graph becomes garbage here
        if i % 500 == 0:
            peak = max(peak, rss_bytes())
    del keep
    gc.collect()
    end = rss_bytes()
    growth_mb = (max(end, peak) - start) / 2**20
    assert growth_mb < 4.0, f"RSS grew by {growth_mb:.1f} MB over 10,000 forwards without backward"


@measures_memory
def test_retain_graph_and_create_graph_loops_memory_is_flat():
    x = tg.Variable(np.linspace(-1, 1, 64), requires_grad=True)
    for _ in range(300):
        y = (tg.tanh(x) ** 3).sum()
        y.backward(retain_graph=True)
        y.backward()
        x.zero_grad()
    gc.collect()
    start = rss_bytes()
    for _ in range(3000):
        y = (tg.tanh(x) ** 3).sum()
        y.backward(retain_graph=True)
        y.backward()
        x.zero_grad()
    gc.collect()
    growth_mb = (rss_bytes() - start) / 2**20
    assert growth_mb < 4.0, f"RSS grew by {growth_mb:.1f} MB (retain_graph loop)"

    def second_order_step():
        (tg.tanh(x) ** 3).sum().backward(create_graph=True)
        g = x.grad
        x.zero_grad()  # drops the first-order graph held by .grad
        (g * g).sum().backward()
        x.zero_grad()

    for _ in range(300):
        second_order_step()
    gc.collect()
    start = rss_bytes()
    for _ in range(3000):
        second_order_step()
    gc.collect()
    growth_mb = (rss_bytes() - start) / 2**20
    assert growth_mb < 4.0, f"RSS grew by {growth_mb:.1f} MB (create_graph loop)"


def test_training_matches_reference_engine():
    X, Y = _data(2)
    a, b = MLP(tg, 3), MLP(reference_engine(), 3)
    la = [a.step(X, Y) for _ in range(200)]
    lb = [b.step(X, Y) for _ in range(200)]
    assert la[-1] < la[0]
    assert_close(np.array(la), np.array(lb), rtol=1e-9)
    for pa, pb in zip(a.params, b.params):
        assert_close(pa, pb, rtol=1e-9, atol_scale=1e-10)


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------
def _train_model(seed, steps, barrier=None, big=False):
    """Train a small model; returns the losses and final parameters."""
    n_in, n_hidden = (96, 48) if big else (8, 16)
    rng = np.random.default_rng(100 + seed)
    X = rng.normal(size=(64, n_in))
    Y = np.tanh(X[:, :1] * 0.5 + 0.1 * seed)
    Xv = tg.from_numpy(np.ascontiguousarray(X))  # a borrowed buffer in the graph
    model = MLP(tg, seed, n_in=n_in, n_hidden=n_hidden)
    losses = []
    if barrier is not None:
        barrier.wait(30)
    for i in range(steps):
        loss = ((model.forward(Xv) - Y) ** 2).mean()
        if i % 3 == 0:
            loss = loss + 0.001 * tg.sum(tg.softmax(model.W1, axis=0) * tg.log_softmax(model.W1, axis=1))
        loss.backward()
        with tg.no_grad():
            for p in model.params:
                p -= 0.05 * p.grad
                p.zero_grad()
        losses.append(loss.item())
    return np.array(losses), [np.array(p.data, copy=True) for p in model.params]


@pytest.mark.parametrize("big", [False, True], ids=["small", "gil_releasing_matmul"])
def test_threads_training_at_once_match_serial(big):
    n_threads, steps = 4, 150 if big else 300
    serial = [_train_model(s, steps, big=big) for s in range(n_threads)]
    results = [None] * n_threads
    errors = []
    barrier = threading.Barrier(n_threads)

    def work(s):
        try:
            results[s] = _train_model(s, steps, barrier, big=big)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(s,)) for s in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a training thread hung"
    assert not errors, errors
    for s in range(n_threads):
        losses, params = results[s]
        np.testing.assert_array_equal(losses, serial[s][0])
        for p, q in zip(params, serial[s][1]):
            np.testing.assert_array_equal(p, q)


def test_threads_with_no_grad_and_backward_interleaved():
    # One thread evaluates under no_grad in a loop while others backprop.
    stop = threading.Event()
    errors = []

    def evaluator():
        try:
            model = MLP(tg, 7)
            X, _ = _data(7)
            while not stop.is_set():
                with tg.no_grad():
                    out = model.forward(X)
                    if out.requires_grad or tg.is_grad_enabled():
                        errors.append("grad mode leaked into the no_grad thread")
                        return
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def trainer(seed, out):
        try:
            out.append(_train_model(seed, 100))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    outs = [[], []]
    ev = threading.Thread(target=evaluator)
    ev.start()
    trainers = [threading.Thread(target=trainer, args=(s, outs[s])) for s in range(2)]
    for t in trainers:
        t.start()
    for t in trainers:
        t.join(120)
    stop.set()
    ev.join(30)
    assert not errors, errors
    for s in range(2):
        ref_losses, ref_params = _train_model(s, 100)
        np.testing.assert_array_equal(outs[s][0][0], ref_losses)


# ---------------------------------------------------------------------------
# create_graph: second derivatives
# ---------------------------------------------------------------------------
def test_create_graph_second_derivative_of_cube():
    x = tg.Variable(1.5, requires_grad=True)
    y = x ** 3
    y.backward(create_graph=True)
    g = x.grad
    assert isinstance(g, tg.Variable)
    assert g.requires_grad
    assert_close(g, 3 * 1.5 ** 2, rtol=1e-15)
    x.grad = None
    g.backward()
    assert isinstance(x.grad, np.ndarray)
    assert_close(x.grad, 6 * 1.5, rtol=1e-15)


def test_create_graph_vector_and_accumulation():
    xv = np.array([-1.0, 0.5, 2.0])
    x = tg.Variable(xv, requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert_close(g, 3 * xv ** 2, rtol=1e-15)
    x.zero_grad()
    (g * np.array([1.0, 2.0, 3.0])).sum().backward()
    assert_close(x.grad, 6 * xv * np.array([1.0, 2.0, 3.0]), rtol=1e-15)
    # without clearing, the second backward adds into the first-order grad
    x2 = tg.Variable(xv, requires_grad=True)
    (x2 ** 3).sum().backward(create_graph=True)
    x2.grad.sum().backward()
    assert_close(x2.grad, 3 * xv ** 2 + 6 * xv, rtol=1e-15)


def test_create_graph_third_derivative():
    x = tg.Variable(0.7, requires_grad=True)
    (tg.sin(x) * x).backward(create_graph=True)
    g1 = x.grad
    x.grad = None
    g1.backward(create_graph=True)
    g2 = x.grad
    x.grad = None
    g2.backward()
    # f = x sin x: f' = sin + x cos, f'' = 2 cos - x sin, f''' = -3 sin - x cos
    assert_close(g1, np.sin(0.7) + 0.7 * np.cos(0.7), rtol=1e-14)
    assert_close(g2, 2 * np.cos(0.7) - 0.7 * np.sin(0.7), rtol=1e-14)
    assert_close(x.grad, -3 * np.sin(0.7) - 0.7 * np.cos(0.7), rtol=1e-13)


HVP_FUNCS = {
    "mlp": lambda m, x: m.sum(m.tanh(m.reshape(x, (2, 3)) @ np.arange(6.0).reshape(3, 2) * 0.3) ** 2),
    "logsumexp": lambda m, x: m.logsumexp(x * x, axis=None) + m.sum(m.sigmoid(x) * m.exp(x * 0.5)),
    "softmax": lambda m, x: m.sum(m.softmax(m.reshape(x, (2, 3)), axis=1) * np.arange(6.0).reshape(2, 3)),
    "log_softmax_div": lambda m, x: m.sum(m.log_softmax(x, axis=0) / (x * x + 1.0)),
    "pow_sqrt_log": lambda m, x: m.sum((x * x + 1.0) ** 1.5 + m.sqrt(x * x + 2.0) * m.log(x * x + 3.0)),
    "broadcast_reduce": lambda m, x: m.sum(m.mean(m.reshape(x, (2, 3, 1)) * m.reshape(x, (1, 3, 2))[:, :, ::-1],
                                                  axis=(0, 2)) ** 2),
    "maxmin_where": lambda m, x: m.sum(m.where(x.data > 0, x ** 3, m.cos(x))) + m.max(x * x * x),
    "concat_getitem": lambda m, x: m.sum(m.concatenate([x[::-1], x[[0, 0, 1]]]) ** 2 * m.stack([x, x])[1, 0]),
}


def _grad_fn(fn):
    def g(xv):
        x = tg.Variable(xv, requires_grad=True)
        fn(tg, x).backward()
        return np.array(x.grad, copy=True)
    return g


@pytest.mark.parametrize("name", list(HVP_FUNCS))
def test_hessian_vector_products(name):
    fn = HVP_FUNCS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    xv = rng.uniform(0.3, 1.2, size=6) * rng.choice([-1.0, 1.0], size=6)
    v = rng.normal(size=6)
    x = tg.Variable(xv, requires_grad=True)
    fn(tg, x).backward(create_graph=True)
    g = x.grad
    assert isinstance(g, tg.Variable) and g.requires_grad
    x.grad = None
    (g * v).sum().backward()
    hvp = x.grad
    grad = _grad_fn(fn)
    eps = 1e-6
    num = (grad(xv + eps * v) - grad(xv - eps * v)) / (2 * eps)
    assert_close(hvp, num, rtol=1e-5, atol_scale=1e-6, atol_floor=1e-8)
    # and the reference engine agrees
    ref = reference_engine()
    rx = ref.Variable(xv, requires_grad=True)
    fn(ref, rx).backward(create_graph=True)
    rg = rx.grad
    rx.grad = None
    (rg * v).sum().backward()
    assert_close(hvp, rx.grad, rtol=1e-9, atol_scale=1e-11)


def test_first_order_grad_is_numpy_without_create_graph():
    x = tg.Variable([1.0, 2.0], requires_grad=True)
    (x ** 3).sum().backward()
    assert isinstance(x.grad, np.ndarray)
    assert_close(x.grad, numeric_grad(lambda a: float(np.sum(a ** 3)), np.array([1.0, 2.0])), rtol=1e-8)


# ---------------------------------------------------------------------------
# Objects crossing threads: made in one thread, used and freed in another
# ---------------------------------------------------------------------------
def test_graphs_outlive_the_threads_that_built_them():
    # Subprocess: a use-after-free (e.g. of a per-thread allocator that died
    # with its thread) would crash the interpreter rather than raise.
    result = run_script(
        """
        import gc, json, threading
        import numpy as np
        import tapegrad as tg

        made = []
        def build(k):
            x = tg.Variable(np.full(3, float(k)), requires_grad=True)
            s = tg.Variable(float(k), requires_grad=True)  # small: inline storage
            y = (tg.tanh(x) * s + x * x).sum() + s * s
            made.append((k, x, s, y, (x * 2).data))

        # many short-lived threads, each with its own allocator state
        for round_ in range(10):
            ts = [threading.Thread(target=build, args=(round_ * 8 + i,)) for i in range(8)]
            for t in ts: t.start()
            for t in ts: t.join()
        gc.collect()
        ok = True
        for k, x, s, y, view in made:
            y.backward()
            want_x = np.tanh(k) * 0 + (1 - np.tanh(k) ** 2) * k + 2 * k
            ok &= bool(np.allclose(x.grad, want_x, rtol=1e-12))
            ok &= bool(np.isclose(float(s.grad), 3 * np.tanh(k) + 2 * k, rtol=1e-12))
            ok &= bool(np.array_equal(view, np.full(3, 2.0 * k)))

        # and the other way round: built here, freed (and backpropagated) in threads
        leaves = []
        parts = [[] for _ in range(4)]
        for k in range(64):
            x = tg.Variable(np.full(2, 0.1 * k), requires_grad=True)
            leaves.append(x)
            parts[k % 4].append((tg.sigmoid(x) * x).sum())
        def consume(part):
            for y in part:
                y.backward()
            part.clear()  # the graphs die in this thread
        ts = [threading.Thread(target=consume, args=(parts[i],)) for i in range(4)]
        del x
        for t in ts: t.start()
        for t in ts: t.join()
        for x in leaves:
            v = x.data[0]
            s = 1 / (1 + np.exp(-v))
            ok &= bool(np.allclose(x.grad, s + v * s * (1 - s), rtol=1e-12))
        del leaves, made, x
        gc.collect()
        # churn after all that
        z = tg.Variable(np.ones(4), requires_grad=True)
        for _ in range(1000):
            (z * 2.0).sum().backward()
        ok &= bool(np.array_equal(z.grad, np.full(4, 2000.0)))
        print(json.dumps({"ok": ok}))
        """,
        timeout=120,
    )
    assert result == {"ok": True}


def test_backward_racing_with_grad_access_in_other_threads():
    # backward() runs without the GIL; other threads may meanwhile read,
    # reset (grad = None) or zero_grad() the same leaf's .grad. Results then
    # interleave, but nothing may crash or corrupt: every observed .grad is
    # None or an array of the right shape whose entries are sums of the
    # per-backward contributions (2 or 3), i.e. whole numbers.
    result = run_script(
        """
        import json, threading, time
        import numpy as np
        import tapegrad as tg

        w = tg.Variable(np.ones(4), requires_grad=True)
        errs = []
        done = threading.Event()

        def backprop(c):
            try:
                t_end = time.perf_counter() + 1.5
                while time.perf_counter() < t_end:
                    (w * c).sum().backward()
            except Exception as e:
                errs.append(repr(e))
            finally:
                done.set()

        def resetter():
            try:
                while not done.is_set():
                    g = w.grad
                    if g is not None:
                        g = np.array(g, copy=True)
                        if g.shape != (4,) or not np.all(g >= 0) or not np.all(g % 1 == 0):
                            errs.append("inconsistent grad %r" % (g,))
                    w.zero_grad()
                    w.grad = None
            except Exception as e:
                errs.append(repr(e))

        ts = [threading.Thread(target=backprop, args=(2.0,)), threading.Thread(target=backprop, args=(3.0,)),
              threading.Thread(target=resetter)]
        for t in ts: t.start()
        for t in ts: t.join()
        w.grad = None
        (w * 5.0).sum().backward()
        errs += [] if np.array_equal(w.grad, np.full(4, 5.0)) else ["final grad %r" % (w.grad,)]
        print(json.dumps({"errs": errs[:5]}))
        """,
        timeout=120,
    )
    assert result == {"errs": []}


@pytest.mark.parametrize("backprop", [True, False], ids=["after_backward", "never_backpropagated"])
@pytest.mark.parametrize("step", ["tg.maximum(y, y)", "(y + y) * 0.5", "tg.tanh(y) * 0.0 + y"])
def test_deep_chain_with_repeated_operands_is_freed(step, backprop):
    # Each op uses the same Variable twice, so a node holds two edges to the
    # previous one: freeing the chain must still not recurse once per node.
    # (The last step alternates one-edge nodes, which free their chain in a
    # loop, with two-edge ones, which use the delete queue.)
    result = run_script(
        f"""
        import json
        import tapegrad as tg

        x = tg.Variable(1.0, requires_grad=True)
        y = x
        for _ in range(300_000):
            y = {step}  # value and derivative stay exactly 1 (maximum: ties split 0.5 + 0.5)
        if {backprop}:
            y.backward()
        value = y.item()
        del y
        z = tg.Variable(2.0, requires_grad=True)
        (z * z).backward()
        print(json.dumps({{"value": value, "grad": None if x.grad is None else float(x.grad),
                          "z_grad": float(z.grad)}}))
        """
    )
    assert result == {"value": 1.0, "grad": 1.0 if backprop else None, "z_grad": 4.0}
