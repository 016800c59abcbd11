"""Data-parallel training on MPI: weak scaling, reduction bandwidth and overlap (tapegrad.distributed).

    python benchmarks/distributed.py                  # runs mpiexec -n 1 and -n 2 (and -n 4 with --four)
    mpiexec -n 2 python benchmarks/distributed.py --worker mlp_mnist   # one configuration

Each rank runs 1 thread (tapegrad and OpenBLAS) on its own batch of the
workload's size (weak scaling: the global batch grows with the ranks). Per
workload and rank count it reports (rank 0, medians over the timed steps):

* step: one training step (forward, backward, DistributedOptimizer.step),
  and the throughput in samples/s over all ranks;
* allreduce: a plain mpi4py ``Allreduce`` of the gradients' bytes in one
  buffer, vs the bucketed path alone (``synchronize()`` without hooks on
  gradients already there: pack, ``Iallreduce``, wait, unpack and divide),
  both timed from a barrier;
* exposed: with overlap (hooks), the time ``step()`` still waits after the
  backward ends, and the per-bucket timeline of the last step.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _workloads import MLP_WORKLOADS  # noqa: E402


def worker(name, steps, bucket, interval):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import tapegrad as tg
    import tapegrad.distributed as dist
    from tapegrad import nn, optim
    from mpi4py import MPI

    tg.set_num_threads(1)
    r, n = dist.init()
    spec = MLP_WORKLOADS[name]
    nn.manual_seed(0)
    model = nn.MLP(list(spec.sizes), activation=spec.activation, dtype=np.float32)
    rng = np.random.default_rng(r)
    x = tg.Variable(rng.standard_normal((spec.batch, spec.sizes[0])).astype(np.float32))
    y = rng.integers(0, spec.sizes[-1], spec.batch)
    comm = MPI.COMM_WORLD

    def run(opt, k, only_sync=False):
        times, marks = [], []
        for _ in range(k):
            comm.Barrier()
            opt.zero_grad()
            t0 = time.perf_counter()
            nn.cross_entropy(model(x), y).backward()
            t1 = time.perf_counter()
            if only_sync:
                opt.synchronize()
            opt.step()
            t2 = time.perf_counter()
            times.append(t2 - (t1 if only_sync else t0))
            marks.append((t0, t1))
        return times, marks

    out = {"workload": name, "ranks": n, "batch": spec.batch}
    inner = optim.SGD(model.parameters(), lr=1e-3)
    overlapped = dist.DistributedOptimizer(inner, bucket_size=bucket, progress_interval=interval)
    run(overlapped, 3)
    t, marks = run(overlapped, steps)
    out["step_ms"] = 1e3 * float(np.median(t))
    out["samples_per_s"] = n * spec.batch / float(np.median(t))
    if n > 1:
        grads = sum(p.size for p in model.parameters())
        buf = np.ones(grads, np.float32)
        out["bytes"] = 4 * grads
        # exposed communication with overlap: step() = synchronize + SGD update; time the synchronize part
        t0, t1 = marks[-1]
        tl = overlapped.timeline
        out["timeline"] = tl
        out["backward_ms"] = 1e3 * (t1 - t0)
        exposed = []
        for _ in range(steps):
            comm.Barrier()
            overlapped.zero_grad()
            nn.cross_entropy(model(x), y).backward()
            ts = time.perf_counter()
            overlapped.synchronize()
            exposed.append(time.perf_counter() - ts)
            overlapped.step()
        out["exposed_ms"] = 1e3 * float(np.median(exposed))
        out["timeline"] = overlapped.timeline
        overlapped.remove_hooks()
        blocking = dist.DistributedOptimizer(inner, bucket_size=bucket, overlap=False)
        sync, plain = [], []
        for _ in range(steps):  # the same bytes, from the same starting line, alternating (the load drifts)
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf)
            plain.append(time.perf_counter() - t0)
            for p in model.parameters():
                p.grad = np.ones(p.shape, np.float32)
            comm.Barrier()
            ts = time.perf_counter()
            blocking.synchronize()
            sync.append(time.perf_counter() - ts)
            blocking.zero_grad()
        out["allreduce_ms"] = 1e3 * float(np.median(plain))
        out["bucketed_ms"] = 1e3 * float(np.median(sync))
        out["buckets"] = len(blocking.buckets)
    if r == 0:
        print("RESULT " + json.dumps(out), flush=True)


def drive(args):
    rows = []
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    counts = [1, 2] + ([4] if args.four else [])
    for name in args.workloads:
        for n in counts:
            p = subprocess.run([mpiexec, "-n", str(n), sys.executable, __file__, "--worker", name,
                                "--steps", str(args.steps), "--bucket", str(args.bucket)]
                               + (["--progress-interval", str(args.progress_interval)] if args.progress_interval else []),
                               capture_output=True, text=True, timeout=900)
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if p.returncode or not line:
                sys.exit(f"{name} on {n} ranks failed:\n{p.stdout}\n{p.stderr[-3000:]}")
            rows.append(json.loads(line[0][7:]))
    base = {r["workload"]: r["samples_per_s"] for r in rows if r["ranks"] == 1}
    print("| workload | ranks | step ms | samples/s | vs 1 rank | plain Allreduce ms | bucketed ms | "
          "bandwidth ratio | exposed after backward ms | exposed / plain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        speed = r["samples_per_s"] / base[r["workload"]]
        if r["ranks"] == 1:
            print(f"| {r['workload']} | 1 | {r['step_ms']:.2f} | {r['samples_per_s']:,.0f} | 1.00 | | | | | |")
            continue
        print(f"| {r['workload']} | {r['ranks']} | {r['step_ms']:.2f} | {r['samples_per_s']:,.0f} | {speed:.2f} | "
              f"{r['allreduce_ms']:.3f} | {r['bucketed_ms']:.3f} | {r['allreduce_ms'] / r['bucketed_ms']:.2f} | "
              f"{r['exposed_ms']:.3f} | {r['exposed_ms'] / r['allreduce_ms']:.2f} |")
    for r in rows:
        if r["ranks"] == 2:
            print(f"\ntimeline, {r['workload']} on 2 ranks, last step, ms from the start of synchronize "
                  f"(the backward took {r['backward_ms']:.2f} ms and ended at ~0):")
            print("| bucket | params | KiB | ready | start | end |")
            print("|---|---|---|---|---|---|")
            for b in r["timeline"]["buckets"]:
                print(f"| {b['bucket']} | {b['params']} | {b['bytes'] / 1024:,.1f} | {1e3 * b['ready']:.3f} | "
                      f"{1e3 * b['start']:.3f} | {1e3 * b['end']:.3f} |")
            print(f"synchronize returns at {1e3 * r['timeline']['synchronize_end']:.3f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workloads", nargs="+", default=["mlp_large", "mlp_mnist"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--bucket", type=int, default=1 << 20, help="bucket size in bytes")
    ap.add_argument("--progress-interval", type=float, default=None,
                    help="DistributedOptimizer(progress_interval=): seconds between the progress thread's tests")
    ap.add_argument("--four", action="store_true", help="also 4 ranks (oversubscribed on 2 cores)")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.bucket, args.progress_interval)
    else:
        drive(args)


if __name__ == "__main__":
    main()
