"""What tapegrad.detect_anomaly() costs: an mlp_mnist training step with it
on / off (the issue's bar: at most 2x), and the same for PyTorch's
torch.autograd.detect_anomaly when PyTorch is installed.

    python benchmarks/anomaly_cost.py [--workload mlp_mnist] [--repeat 15] [--threads 1]

Steps alternate between the two modes in rounds (the shared VM's speed moves
during a run) and each mode's median step time is reported, with the ratio.
"""
import argparse
import contextlib
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _workloads import MLP_WORKLOADS, TapegradMLP, make_problem  # noqa: E402


def median_step_ms(system, mode, steps):
    times = []
    for _ in range(steps):
        with mode():
            t0 = time.perf_counter()
            system.step()
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def compare(system, anomaly, rounds, steps):
    off, on = [], []
    for _ in range(3):  # warm-up (buffer cache, BLAS)
        system.step()
    for _ in range(rounds):
        off.append(median_step_ms(system, contextlib.nullcontext, steps))
        on.append(median_step_ms(system, anomaly, steps))
    return statistics.median(off), statistics.median(on)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="mlp_mnist", choices=sorted(MLP_WORKLOADS))
    ap.add_argument("--repeat", type=int, default=15, help="rounds of (off, on)")
    ap.add_argument("--steps", type=int, default=20, help="steps per round and mode")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import tapegrad as tg
    tg.set_num_threads(args.threads)
    spec = MLP_WORKLOADS[args.workload]
    weights, x, y = make_problem(spec)
    print(f"{args.workload} ({spec.describe()}), {args.threads} thread(s), median step time over "
          f"{args.repeat} rounds of {args.steps} steps per mode")
    off, on = compare(TapegradMLP(spec, weights, x, y), tg.detect_anomaly, args.repeat, args.steps)
    print(f"tapegrad  off {off:.3f} ms  detect_anomaly {on:.3f} ms  ratio {on / off:.2f}x")
    try:
        import torch
    except ImportError:
        return
    from _workloads import TorchMLP
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Anomaly Detection has been enabled")
    off, on = compare(TorchMLP(spec, weights, x, y), torch.autograd.detect_anomaly, args.repeat, args.steps)
    print(f"torch     off {off:.3f} ms  detect_anomaly {on:.3f} ms  ratio {on / off:.2f}x")


if __name__ == "__main__":
    main()
