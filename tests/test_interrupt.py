"""Ctrl-C during a long sweep: KeyboardInterrupt between nodes (not at the
end of the sweep), leaf .grad values as they were, the engine usable after.

Each case runs in a subprocess (a SIGINT must reach a main thread that sits
in a sweep without the GIL); a thread of that process sends SIGINT to the
main thread while it sweeps. Latencies are printed (pytest -s) for
benchmarks/README.md; the tests check that the interrupt arrived within half
a second of the signal, the issue's bound."""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, signal, sys, threading, time
import numpy as np
import tapegrad as tg

# A suite started in the background of a non-interactive shell (`cmd &`) inherits SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler: every attempt would end
# uninterrupted. Ctrl-C at a terminal is what this tests, so install Python's handler.
signal.signal(signal.SIGINT, signal.default_int_handler)

mode = sys.argv[1]
rng = np.random.default_rng(0)
sent = {}

def interrupt_after(delay):
    def run():
        time.sleep(delay)
        sent["t"] = time.perf_counter()
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    threading.Thread(target=run, daemon=True).start()

def calibrated(make):
    # Doubles the graph until one uninterrupted sweep takes >= 2 s here, idle
    # or loaded (a fixed size ran 0.15 s on an idle machine and 1.5 s on a
    # loaded one); returns the sweep, its result and its length.
    layers = 32
    while True:
        sweep = make(layers)
        t0 = time.perf_counter()
        full = sweep()
        length = time.perf_counter() - t0
        if length >= 2.0 or layers >= 1 << 16:
            return sweep, full, length
        layers *= 2

def timed(sweep, length):
    # The same sweep again, interrupted an eighth of the way in (a quarter was
    # too late once under load: that run went 4x faster than the measured one,
    # the signal landed after the sweep, and .grad had been updated).
    interrupt_after(length / 8)
    t0 = time.perf_counter()
    try:
        sweep()
    except KeyboardInterrupt:
        t1 = time.perf_counter()
        return {"interrupted": True, "length": length, "latency": t1 - sent["t"], "elapsed": t1 - t0}
    try:
        time.sleep(1.0)  # (the signal arrives late: let it land outside the sweep)
    except KeyboardInterrupt:
        pass
    return {"interrupted": False, "length": length}

out = {}
try:
    if mode == "backward":
        x = tg.Variable(np.ones((1000, 1000), np.float32), requires_grad=True)
        def make(layers):
            y = x
            for _ in range(layers):
                y = y * 1.0001
            loss = y.sum()
            def sweep():
                x.grad = np.full((1000, 1000), 7.0, np.float32)
                loss.backward(retain_graph=True)
                return x.grad.copy()
            return sweep
        sweep, after_one, length = calibrated(make)
        out = timed(sweep, length)
        # the interrupted backward left .grad as the sweep found it
        out["grad_as_before"] = bool(np.all(x.grad == 7.0))
        out["usable"] = bool(np.array_equal(sweep(), after_one))  # the same graph, to the end
    else:
        n = 400
        W = rng.standard_normal((n, n)) / np.sqrt(n)
        x0 = rng.standard_normal(n) * 0.1
        def make(layers):
            def f(v):
                h = tg.Variable(W) @ v if mode == "forward" else v
                for _ in range(layers):
                    h = tg.sin(h)  # (derivatives near 1: no cotangent decays into slow subnormals)
                return h if mode == "forward" else tg.Variable(W) @ h
            return lambda: tg.jacobian(f, x0, mode=mode)  # one sweep of n dense directions
        sweep, full, length = calibrated(make)
        out = timed(sweep, length)
        out["usable"] = bool(np.allclose(sweep(), full))
finally:
    print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", ["backward", "reverse", "forward"])
def test_ctrl_c_interrupts_a_long_sweep(mode):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    # Up to 3 attempts: on a machine whose load drops between the calibrating sweep and the
    # timed one (the full suite beside other jobs), the timed sweep can end before the
    # signal is sent; that attempt proves nothing either way. Every attempt must leave the
    # engine usable; an interrupted one must leave .grad as it was.
    for _attempt in range(3):
        proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300,
                              env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        print(mode, out)
        assert out["usable"]
        if out["interrupted"]:
            break
    if mode == "backward":
        assert out["grad_as_before"]
    # Interrupted between nodes, within the half second (measured 1-28 ms) and well before the
    # rest of the sweep (>= 2 s) would have run.
    assert out["interrupted"], out
    assert out["latency"] < 0.5, out
