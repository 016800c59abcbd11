"""Ctrl-C during a long sweep: KeyboardInterrupt between nodes (not at the
end of the sweep), leaf .grad values as they were, the engine usable after.

Each case runs in a subprocess (a SIGINT must reach a main thread that sits
in a sweep without the GIL); a thread of that process sends SIGINT to the
main thread while it sweeps. Latencies are printed (pytest -s) for
benchmarks/README.md; the tests only check that the interrupt arrived well
before the sweep would have ended."""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, signal, sys, threading, time
import numpy as np
import tapegrad as tg

mode = sys.argv[1]
rng = np.random.default_rng(0)
sent = {}

def interrupt_after(delay):
    def run():
        time.sleep(delay)
        sent["t"] = time.perf_counter()
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    threading.Thread(target=run, daemon=True).start()

def timed(sweep, delay):
    # The sweep once uninterrupted (its length), then interrupted after `delay`.
    t0 = time.perf_counter()
    full = sweep()
    length = time.perf_counter() - t0
    interrupt_after(delay)
    t0 = time.perf_counter()
    try:
        sweep()
    except KeyboardInterrupt:
        t1 = time.perf_counter()
        return full, {"interrupted": True, "length": length, "latency": t1 - sent["t"], "elapsed": t1 - t0}
    try:
        time.sleep(1.0)  # (the signal arrives late: let it land outside the sweep)
    except KeyboardInterrupt:
        pass
    return full, {"interrupted": False, "length": length}

out = {}
try:
    if mode == "backward":
        x = tg.Variable(np.ones((1000, 1000), np.float32), requires_grad=True)
        y = x
        for _ in range(1500):
            y = y * 1.0001
        loss = y.sum()
        x.grad = np.full((1000, 1000), 7.0, np.float32)
        def sweep():
            loss.backward(retain_graph=True)
            return x.grad.copy()
        after_one, out = timed(sweep, 0.15)
        # the uninterrupted backward accumulated once; the interrupted one nothing
        out["grad_as_before"] = bool(np.array_equal(x.grad, after_one))
        x.grad = None
        loss.backward()  # the same graph, to the end
        out["usable"] = bool(np.allclose(x.grad + 7.0, after_one, rtol=1e-6))
    else:
        n = 400
        W = rng.standard_normal((n, n)) / np.sqrt(n)
        def f(v):
            h = tg.Variable(W) @ v if mode == "forward" else v
            # reverse: 400 directions share each node, so it needs more nodes
            # for a sweep of seconds; h + 0.001 tanh(h) keeps the cotangents
            # near 1 (tanh(h) * 1.5 halves them per layer: denormals by 1,000
            # layers, and a sweep 20x slower than its length predicts)
            for _ in range(600 if mode == "forward" else 2400):
                h = tg.tanh(h) * 1.5 if mode == "forward" else h + 0.001 * tg.tanh(h)
            return h if mode == "forward" else tg.Variable(W) @ h
        x0 = rng.standard_normal(n) * 0.1
        def sweep():
            return tg.jacobian(f, x0, mode=mode)  # one sweep of n dense directions
        full, out = timed(sweep, 0.3)
        out["usable"] = bool(np.allclose(tg.jacobian(f, x0, mode=mode), full))
finally:
    print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", ["backward", "reverse", "forward"])
def test_ctrl_c_interrupts_a_long_sweep(mode):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(mode, out)
    assert out["usable"]
    if mode == "backward":
        assert out["grad_as_before"]
    # Interrupted, and between nodes: well before the rest of the sweep would have run.
    assert out["interrupted"], out
    assert out["latency"] < 0.5 * (out["length"] - 0.3), out
