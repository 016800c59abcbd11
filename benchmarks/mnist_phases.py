"""Where an mlp_mnist training step goes: tapegrad vs PyTorch eager, phase by phase.

    python benchmarks/mnist_phases.py [--threads 1] [--rounds 7] [--steps 400]

The workload of run.py's ``mlp_mnist`` (784-128-10 relu, cross-entropy,
batch 64, SGD). Each round times, alternating between the two libraries
(so a change in machine load hits both), ``--steps`` calls of each phase
of the step: zero_grad, the first Linear, relu, the second Linear, the loss,
backward, the optimizer update (each phase run in order, as the step runs
it, so each sees the caches the step leaves), then the whole step, and the
step's matrix products alone: forward x W1 and h W2, backward dW1 = xᵀ g,
dW2 = hᵀ g, dh = g W2ᵀ (tapegrad's not-recording matmul, i.e. its OpenBLAS
sgemm, against torch.mm, i.e. MKL/oneDNN). Times are thread CPU time
(``time.thread_time``: less sensitive to other processes than wall clock)
per call in microseconds, the median over rounds; the last column is
tapegrad / PyTorch.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workloads as W  # noqa: E402


def phases(m):
    """The step of ``m`` (a W.TapegradMLP or W.TorchMLP: the same nn API) cut into its phases, in order."""
    lin1, act, lin2 = m.model[0], m.model[1], m.model[2]
    st = {}

    def zero():
        m.opt.zero_grad()

    def l1():
        st["h"] = lin1(m.x)

    def relu():
        st["a"] = act(st["h"])

    def l2():
        st["z"] = lin2(st["a"])

    def loss():
        st["loss"] = m.loss_fn(st["z"], m.y)

    def backward():
        st.pop("loss").backward()
        st.clear()

    def update():
        m.opt.step()

    return [("zero_grad", zero), ("linear 1", l1), ("relu", relu), ("linear 2", l2), ("loss", loss),
            ("backward", backward), ("update", update)]


def operands(spec, x):
    """h (the hidden activations), g1 and g2 (the two layers' output gradients): random, float32."""
    rng = np.random.default_rng(1)
    return [rng.standard_normal((spec.batch, n)).astype(np.float32) for n in (spec.sizes[1], spec.sizes[1],
                                                                               spec.sizes[2])]


def gemms_tapegrad(spec, weights, x):
    import tapegrad as tg

    X, W1, W2 = tg.Variable(x), tg.Variable(weights[0][0]), tg.Variable(weights[1][0])
    h, g1, g2 = (tg.Variable(a) for a in operands(spec, x))

    def gemms():
        with tg.no_grad():
            tg.matmul(X, W1)
            tg.matmul(h, W2)
            tg.matmul(X.T, g1)
            tg.matmul(h.T, g2)
            tg.matmul(g2, W2.T)
    return gemms


def gemms_torch(spec, weights, x):
    import torch

    X = torch.from_numpy(x)
    W1t = torch.from_numpy(np.ascontiguousarray(weights[0][0].T))   # (out, in), as nn.Linear stores it
    W2t = torch.from_numpy(np.ascontiguousarray(weights[1][0].T))
    h, g1, g2 = (torch.from_numpy(a) for a in operands(spec, x))

    def gemms():
        with torch.no_grad():
            torch.mm(X, W1t.t())
            torch.mm(h, W2t.t())
            torch.mm(g1.t(), X)      # dW1 in torch's (out, in) layout
            torch.mm(g2.t(), h)
            torch.mm(g2, W2t)
    return gemms


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=400)
    args = p.parse_args(argv)

    import tapegrad as tg
    import torch
    tg.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    spec = W.MLP_WORKLOADS["mlp_mnist"]
    weights, x, y = W.make_problem(spec)
    tgm, tm = W.TapegradMLP(spec, weights, x, y), W.TorchMLP(spec, weights, x, y)
    systems = {"tapegrad": (phases(tgm), tgm.step, gemms_tapegrad(spec, weights, x)),
               "torch": (phases(tm), tm.step, gemms_torch(spec, weights, x))}
    names = [n for n, _ in systems["tapegrad"][0]] + ["sum of phases", "step", "5 GEMMs alone"]
    times = {s: {n: [] for n in names} for s in systems}
    for _ in range(args.rounds):
        for s, (cut, step, gemms) in systems.items():
            for _ in range(50):
                step()
            acc = {n: 0.0 for n, _ in cut}
            for _ in range(args.steps):
                for n, fn in cut:
                    t0 = time.thread_time()
                    fn()
                    acc[n] += time.thread_time() - t0
            for n, _ in cut:
                times[s][n].append(acc[n] / args.steps * 1e6)
            times[s]["sum of phases"].append(sum(acc.values()) / args.steps * 1e6)
            for label, fn in (("step", step), ("5 GEMMs alone", gemms)):
                t0 = time.thread_time()
                for _ in range(args.steps):
                    fn()
                times[s][label].append((time.thread_time() - t0) / args.steps * 1e6)
    print(f"mlp_mnist phases, {args.threads} thread(s), thread CPU us per call, median of {args.rounds} rounds "
          f"of {args.steps}")
    print(f"{'phase':<16}{'tapegrad':>10}{'torch':>10}{'tg/torch':>10}")
    for n in names:
        a, b = statistics.median(times["tapegrad"][n]), statistics.median(times["torch"][n])
        print(f"{n:<16}{a:>10.1f}{b:>10.1f}{a / b:>10.3f}")
    r = [a / b for a, b in zip(times["tapegrad"]["step"], times["torch"]["step"])]
    print(f"step ratio per round: {' '.join(f'{v:.3f}' for v in r)}")


if __name__ == "__main__":
    main()
