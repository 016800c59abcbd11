"""How much of an mlp_large training step is its GEMMs.

    python benchmarks/gemm_share.py [--threads 2] [--rounds 3]

Times, alternating in one process: a tapegrad mlp_large training step (the
workload of run.py), the five large matrix products of that step alone
(forward x W1 and h W2; backward dW2 = hᵀ g, dX2 = g W2ᵀ, dW1 = xᵀ g) through
tapegrad's ops, and tapegrad's own 1024³ sgemm. Prints each as GFLOP/s and as
a fraction of the sgemm rate: the gap between the products alone and the
step is what the step adds around its GEMMs.
"""
import argparse
import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workloads as W  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)

    import tapegrad as tg
    tg.set_num_threads(args.threads)
    spec = W.MLP_WORKLOADS["mlp_large"]
    weights, x, y = W.make_problem(spec)
    step = W.TapegradMLP(spec, weights, x, y).step
    rng = np.random.default_rng(0)
    batch, hidden = spec.batch, spec.sizes[1]
    h = rng.standard_normal((batch, hidden)).astype(np.float32)
    g = rng.standard_normal((batch, hidden)).astype(np.float32)
    X, H, G = tg.Variable(x), tg.Variable(h), tg.Variable(g)
    W1, W2 = tg.Variable(weights[0][0]), tg.Variable(weights[1][0])
    W2t = tg.Variable(np.ascontiguousarray(weights[1][0].T))
    XT, HT = tg.Variable(np.ascontiguousarray(x.T)), tg.Variable(np.ascontiguousarray(h.T))
    A = tg.Variable(rng.standard_normal((1024, 1024)).astype(np.float32))

    def products():
        tg.linear(X, W1), tg.linear(H, W2)  # forward
        HT @ G, tg.linear(G, W2t), XT @ G   # dW2, dX2 (g W2ᵀ, same FLOPs), dW1

    def sgemm():
        A @ A

    def seconds(fn, n):
        for _ in range(3):
            fn()
        return min(timeit.repeat(fn, number=n, repeat=5)) / n

    k1, n, k2 = spec.sizes[0], hidden, spec.sizes[2]
    product_flops = 2 * batch * (k1 * n + n * k2) * 2 + 2 * batch * n * k2
    step_flops = spec.flops()
    print(f"mlp_large at {args.threads} thread(s); step {step_flops / 1e9:.2f} GFLOP, the five products "
          f"{product_flops / 1e9:.2f} GFLOP")
    for r in range(args.rounds):
        t_step, t_prod, t_sq = seconds(step, 10), seconds(products, 10), seconds(sgemm, 10)
        peak = 2 * 1024 ** 3 / t_sq / 1e9
        print(f"round {r}: sgemm 1024^3 {peak:.0f} GFLOP/s | products alone {t_prod * 1e3:.2f} ms = "
              f"{product_flops / t_prod / 1e9:.0f} GFLOP/s ({100 * product_flops / t_prod / 1e9 / peak:.0f}%) | "
              f"step {t_step * 1e3:.2f} ms = {step_flops / t_step / 1e9:.0f} GFLOP/s "
              f"({100 * step_flops / t_step / 1e9 / peak:.0f}%)")


if __name__ == "__main__":
    main()
