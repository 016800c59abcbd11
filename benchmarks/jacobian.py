"""Jacobians, Hessian-vector products: tapegrad's modes vs torch.func, in one process.

    python benchmarks/jacobian.py [--repeat 15]

f(x) = tanh(W2 · tanh(W1 · x)), hidden width 64, float64, at 1 thread, for
(n, m) = (1000, 10), (10, 1000), (300, 300). Reports the median time of
`tapegrad.jacobian` in each mode and of torch.func.jacrev / jacfwd (when
PyTorch is installed), with the ratios the modes issue targets:
  - the better tapegrad mode vs the better torch mode (target >= 3x faster),
  - mode="auto" vs the better fixed mode (target within 10%),
  - hvp of s(x) = sum(f(x)^2) vs one gradient of s (target < 5x).
All systems' Jacobians are checked against each other before timing.
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import tapegrad as tg  # noqa: E402

HIDDEN = 64
SHAPES = [(1000, 10), (10, 1000), (300, 300)]


def median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_problem(n, m, seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((HIDDEN, n)) / np.sqrt(n)
    w2 = rng.standard_normal((m, HIDDEN)) / np.sqrt(HIDDEN)
    x = rng.standard_normal(n)
    return w1, w2, x


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args(argv)

    try:
        import torch
        import torch.func

        torch.set_num_threads(1)
    except ImportError:
        torch = None
        print("(PyTorch not installed: pip install torch==2.13.0 to compare)")

    rows = []
    for n, m in SHAPES:
        w1, w2, x = make_problem(n, m)
        W1, W2 = tg.Variable(w1), tg.Variable(w2)

        def f(v):
            return tg.tanh(W2 @ tg.tanh(W1 @ v))

        def s(v):
            return (f(v) ** 2).sum()

        times = {}
        jacs = {}
        for mode in ("forward", "reverse", "auto"):
            jacs[mode] = tg.jacobian(f, x, mode=mode)
            times[f"tapegrad {mode}"] = median_time(lambda: tg.jacobian(f, x, mode=mode), args.repeat)
        chosen = tg.functional.choose_mode(n, m)
        if torch is not None:
            tw1, tw2, tx = (torch.tensor(a) for a in (w1, w2, x))

            def tf(v):
                return torch.tanh(tw2 @ torch.tanh(tw1 @ v))

            jacs["jacrev"] = torch.func.jacrev(tf)(tx).numpy()
            jacs["jacfwd"] = torch.func.jacfwd(tf)(tx).numpy()
            times["torch jacrev"] = median_time(lambda: torch.func.jacrev(tf)(tx), args.repeat)
            times["torch jacfwd"] = median_time(lambda: torch.func.jacfwd(tf)(tx), args.repeat)
        for name, j in jacs.items():
            assert np.allclose(j, jacs["forward"], rtol=1e-10, atol=1e-12), name

        u = np.random.default_rng(1).standard_normal(n)
        g_fn = tg.grad(s)
        t_grad = median_time(lambda: g_fn(x), args.repeat)
        t_hvp = median_time(lambda: tg.hvp(s, x, u), args.repeat)

        best_tg = min(times["tapegrad forward"], times["tapegrad reverse"])
        row = {
            "shape": f"n={n}, m={m}",
            **{k: v * 1e3 for k, v in times.items()},
            "auto_choice": chosen,
            "auto_vs_best": times["tapegrad auto"] / best_tg,
            "hvp_vs_grad": t_hvp / t_grad,
        }
        if torch is not None:
            row["best_torch_vs_best_tapegrad"] = min(times["torch jacrev"], times["torch jacfwd"]) / best_tg
        rows.append(row)

    print("Jacobian of tanh(W2 tanh(W1 x)), hidden 64, float64, 1 thread; median ms")
    cols = ["tapegrad forward", "tapegrad reverse", "tapegrad auto"]
    if torch is not None:
        cols += ["torch jacrev", "torch jacfwd"]
    print(f"{'shape':<18}" + "".join(f"{c:>18}" for c in cols))
    for r in rows:
        print(f"{r['shape']:<18}" + "".join(f"{r[c]:>18.3f}" for c in cols))
    print()
    print(f"{'shape':<18}{'auto picks':>12}{'auto/best':>12}{'hvp/grad':>12}" +
          (f"{'best torch / best tapegrad':>30}" if torch is not None else ""))
    for r in rows:
        line = f"{r['shape']:<18}{r['auto_choice']:>12}{r['auto_vs_best']:>12.2f}{r['hvp_vs_grad']:>12.2f}"
        if torch is not None:
            line += f"{r['best_torch_vs_best_tapegrad']:>30.2f}"
        print(line)
    return rows


if __name__ == "__main__":
    main()
