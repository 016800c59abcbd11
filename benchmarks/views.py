"""Views vs PyTorch and NumPy at 1,048,576 float64 elements, as interleaved ratios.

    python benchmarks/views.py [--rounds 15]

The machine is shared, so absolute times move by 10x; each round times one
call of tapegrad, PyTorch and NumPy back to back and the script prints the
median of the per-round ratios (1 thread each). Rows: the O(1) views
(`x.T`, `v[1:-1]`, `v[::2]`, `M[3]`, `broadcast_to`), the copies that remain
(an elementwise op reading a transposed or strided view, the contiguous copy
of a transpose) and a transpose's backward with a contiguous seed.
"""
import argparse
import statistics
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    import tapegrad as tg
    import torch

    torch.set_num_threads(1)
    tg.set_num_threads(1)
    a = np.random.default_rng(0).random((1024, 1024))
    v1 = a.reshape(-1).copy()
    x, xt, v, vt = tg.Variable(a), torch.tensor(a), tg.Variable(v1), torch.tensor(v1)
    xg, xgt = tg.Variable(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    seed, seedt = tg.Variable(np.ones((1024, 1024))), torch.ones(1024, 1024)

    def t_grad():
        xg.T.backward(seed)
        xg.grad = None

    def t_grad_torch():
        xgt.T.backward(seedt)
        xgt.grad = None

    rows = {
        "x.T (view)": (lambda: x.T, lambda: xt.T, lambda: a.T),
        "v[1:-1] (view)": (lambda: v[1:-1], lambda: vt[1:-1], lambda: v1[1:-1]),
        "v[::2] (view)": (lambda: v[::2], lambda: vt[::2], lambda: v1[::2]),
        "M[3] (view)": (lambda: x[3], lambda: xt[3], lambda: a[3]),
        "broadcast_to (view)": (lambda: tg.broadcast_to(x[0], (1024, 1024)),
                                lambda: torch.broadcast_to(xt[0], (1024, 1024)),
                                lambda: np.broadcast_to(a[0], (1024, 1024))),
        "x.T + 0": (lambda: x.T + 0.0, lambda: xt.T + 0.0, lambda: a.T + 0.0),
        "x.T.reshape(-1) (copy)": (lambda: x.T.reshape(-1), lambda: xt.T.reshape(-1), lambda: a.T.reshape(-1)),
        "v[::2] + 0": (lambda: v[::2] + 0.0, lambda: vt[::2] + 0.0, lambda: v1[::2] + 0.0),
        "x.T backward": (t_grad, t_grad_torch, None),
    }

    def once(f):
        t0 = time.perf_counter()
        f()
        return time.perf_counter() - t0

    for name, (f, g, h) in rows.items():
        for fn in (f, g, h):
            if fn:
                fn()
        r_torch, r_np, times = [], [], []
        for _ in range(args.rounds):
            t = once(f)
            times.append(t)
            r_torch.append(t / once(g))
            if h:
                r_np.append(t / once(h))
        line = f"{name:24s} tg {statistics.median(times) * 1e6:10.1f} us  tg/torch {statistics.median(r_torch):7.3f}"
        print(line + (f"  tg/numpy {statistics.median(r_np):7.3f}" if r_np else ""))


if __name__ == "__main__":
    main()
