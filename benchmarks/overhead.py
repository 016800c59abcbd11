"""Per-op overhead: a chain of scalar ops, forward then backward, on each engine.

    python benchmarks/overhead.py [--ops 1000] [--repeat 30]

Runs the same workload on tapegrad (C++ tape), tapegrad.reference (pure
NumPy) and, when installed, PyTorch eager, in one process, and prints the
median microseconds per op (forward + backward) and the ratio to tapegrad.
The machines are noisy: read the ratios, not the absolute times.
"""
import argparse
import statistics
import time

import numpy as np


def chain(engine, n_ops):
    """n_ops scalar ops in a chain (mul, add, tanh, sub, ...), then backward."""

    def run():
        x = engine.Variable(0.5, requires_grad=True)
        y = x
        for i in range(n_ops // 4):
            y = y * 1.0001
            y = y + 0.01
            y = engine.tanh(y)
            y = y - 0.001
        y.backward()
        return x.grad

    return run


def torch_chain(torch, n_ops):
    def run():
        x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        y = x
        for i in range(n_ops // 4):
            y = y * 1.0001
            y = y + 0.01
            y = torch.tanh(y)
            y = y - 0.001
        y.backward()
        return x.grad

    return run


def median_time(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", type=int, default=1000, help="ops in the chain (multiple of 4)")
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args(argv)

    import tapegrad
    import tapegrad.reference

    systems = {
        "tapegrad": chain(tapegrad, args.ops),
        "tapegrad.reference": chain(tapegrad.reference, args.ops),
    }
    try:
        import torch

        torch.set_num_threads(1)
        systems["torch eager"] = torch_chain(torch, args.ops)
    except ImportError:
        print("(PyTorch not installed: pip install torch==2.13.0 to compare)")

    # All engines must agree on the derivative before their times mean anything.
    grads = {name: float(np.asarray(fn())) for name, fn in systems.items()}
    ref = grads["tapegrad"]
    for name, g in grads.items():
        assert abs(g - ref) <= 1e-9 * max(1.0, abs(ref)), (name, g, ref)

    results = {name: median_time(fn, args.repeat) / args.ops * 1e6 for name, fn in systems.items()}
    base = results["tapegrad"]
    print(f"chain of {args.ops} scalar ops + backward, median of {args.repeat} runs (gradient {ref:.12g})")
    print(f"{'system':<22}{'us/op':>10}{'vs tapegrad':>14}")
    for name, us in results.items():
        print(f"{name:<22}{us:>10.3f}{us / base:>13.1f}x")
    if "torch eager" in results:
        print(f"tapegrad / torch eager = 1/{results['torch eager'] / base:.1f}")
    return results


if __name__ == "__main__":
    main()
