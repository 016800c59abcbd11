"""Data-parallel training on MPI: weak scaling, reduction bandwidth and overlap (tapegrad.distributed).

    python benchmarks/distributed.py                  # 1 rank, 2 ranks and the hardware ceiling, 3 repeats
    python benchmarks/distributed.py --repeats 5 --steps 60 --four
    python benchmarks/distributed.py --bind          # every rank pinned to its own core
    mpiexec -n 2 python benchmarks/distributed.py --worker mlp_mnist   # one configuration, JSON out

Each rank runs 1 thread (tapegrad and OpenBLAS) on its own batch of the
workload's size (weak scaling: the global batch grows with the ranks). Per
workload, the configurations run interleaved, ``--repeats`` times (the load of
a shared machine drifts; the table gives the median over the repeats and the
range of the ratios):

* ``1 rank``: ``mpiexec -n 1``; ``2 ranks``: ``mpiexec -n 2``;
* ``ceiling``: two independent ``mpiexec -n 1`` jobs of the same worker at the
  same time (they start timing together through a file gate): the throughput
  two busy cores give with no communication at all, the bound of the scaling
  ratio on this machine, measured next to it.

Per configuration (rank 0, medians over the timed steps): one training step
(forward, backward, ``DistributedOptimizer.step``) and samples/s over all
ranks; the step's phases in wall and thread-CPU time (forward, backward with
the hooks inside it, the hooks alone, ``synchronize``, the SGD update) and
the involuntary context switches and minor page faults per step (median, and the mean, which the first
steps of a block after the variants alternate dominate: heap growth) (wall >> CPU with switches: the
rank was descheduled; CPU grown: more work or a slower core). On 2 ranks
also: the same step with ``overlap=False``, both through MPI's ``Iallreduce``
(``shared_memory=False``; the default on one node is the shared-memory window), and with a plain mpi4py loop (pack
every gradient into one buffer, ``Allreduce``, unpack / N), run in
alternating blocks with the overlapped one (and the overlapped one with
``zero_grad(set_to_none=False)``, which keeps the ``.grad`` bucket views); the
bandwidth: a plain ``Allreduce`` of the gradients' bytes, the same as one
blocking ``Allreduce`` per bucket, and the reduction path a training step runs
(the reducer's ``synchronize()`` without hooks, in place, with the 1/N folded
into the update; on gradients already in the bucket views and on new gradient
arrays), the same number of times each, alternately from a barrier, with the
update's time with and without the 1/N; the communication left exposed after
the backward with overlap, and the last step's per-bucket timeline.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _workloads import MLP_WORKLOADS  # noqa: E402

PHASES = ("forward", "backward", "hooks", "synchronize", "update")
BLOCK = 10  # steps per block when step variants alternate
COUNTS = ("switches", "faults")  # per step, from getrusage: involuntary context switches, minor page faults


def _gate(path, count):
    """Wait until ``count`` jobs have reached this point (files in ``path``): the ceiling's jobs time together."""
    open(os.path.join(path, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 300
    while len(os.listdir(path)) < count:
        if time.monotonic() > deadline:  # the other job died before the gate: fail, do not hang
            sys.exit(f"benchmarks/distributed.py: only {len(os.listdir(path))} of {count} ceiling jobs reached the gate")
        time.sleep(1e-3)


def worker(args):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import tapegrad as tg
    import tapegrad.distributed as dist
    from tapegrad import nn, optim
    from mpi4py import MPI

    tg.set_num_threads(1)
    r, n = dist.init()
    spec = MLP_WORKLOADS[args.worker]
    nn.manual_seed(0)
    model = nn.MLP(list(spec.sizes), activation=spec.activation, dtype=np.float32)
    params = model.parameters()
    rng = np.random.default_rng(r)
    x = tg.Variable(rng.standard_normal((spec.batch, spec.sizes[0])).astype(np.float32))
    y = rng.integers(0, spec.sizes[-1], spec.batch)
    comm = MPI.COMM_WORLD
    inner = optim.SGD(params, lr=1e-3)
    flat = np.empty(sum(p.size for p in params), np.float32)

    def plain_reduce():
        """What a user would write with mpi4py alone: one buffer, one blocking Allreduce."""
        o = 0
        for p in params:
            flat[o:o + p.size] = p.grad.reshape(-1)
            o += p.size
        comm.Allreduce(MPI.IN_PLACE, flat)
        o = 0
        for p in params:
            np.multiply(flat[o:o + p.size].reshape(p.shape), np.float32(1 / n), out=p.grad)
            o += p.size

    def optimizer(overlap, shared=None):
        opt = dist.DistributedOptimizer(inner, bucket_size=args.bucket, overlap=overlap,
                                        progress_interval=args.progress_interval, shared_memory=shared)
        hook = {"wall": 0.0, "cpu": 0.0}
        if opt._reducer is not None and opt.overlap:  # time the hooks' work (pack, Iallreduce, Test) from outside
            ready = opt._reducer.grad_ready

            def timed(i):
                t, c = time.perf_counter(), time.thread_time()
                ready(i)
                hook["wall"] += time.perf_counter() - t
                hook["cpu"] += time.thread_time() - c
            opt._reducer.grad_ready = timed
        return opt, hook

    def steps(variant, k, set_to_none=True):
        """``k`` timed steps of ``variant``: ``(opt, hook)`` of a DistributedOptimizer, or "plain";
        ``set_to_none``: the steps' ``zero_grad`` (False keeps the bucket views, zeroed in place)."""
        rows = []
        opt, hook = (inner, None) if variant == "plain" else variant
        for _ in range(k):
            comm.Barrier()
            opt.zero_grad(set_to_none=set_to_none)
            if hook is not None:
                hook["wall"] = hook["cpu"] = 0.0
            ru0 = resource.getrusage(resource.RUSAGE_THREAD)
            t, c = [time.perf_counter()], [time.thread_time()]
            loss = nn.cross_entropy(model(x), y)
            t.append(time.perf_counter()), c.append(time.thread_time())
            loss.backward()
            t.append(time.perf_counter()), c.append(time.thread_time())
            red = getattr(opt, "_reducer", None)
            if variant == "plain":
                if n > 1:
                    plain_reduce()
            elif red is not None:  # DistributedOptimizer.step(), its two parts timed apart
                red.synchronize()
            t.append(time.perf_counter()), c.append(time.thread_time())
            if red is not None:
                inner._fused_step(red.inv)  # the update with the 1/N folded in, as step() runs it
            else:
                opt.step()
            t.append(time.perf_counter()), c.append(time.thread_time())
            ru = resource.getrusage(resource.RUSAGE_THREAD)
            row = {"step": t[-1] - t[0], "step_cpu": c[-1] - c[0], "switches": ru.ru_nivcsw - ru0.ru_nivcsw,
                   "faults": ru.ru_minflt - ru0.ru_minflt}
            for j, ph in enumerate(("forward", "backward", "synchronize", "update")):
                row[ph], row[ph + "_cpu"] = t[j + 1] - t[j], c[j + 1] - c[j]
            row["hooks"], row["hooks_cpu"] = (hook["wall"], hook["cpu"]) if hook else (0.0, 0.0)
            rows.append(row)
        return rows

    def summary(rows):
        out = {k: 1e3 * float(np.median([row[k] for row in rows])) for k in rows[0] if k not in COUNTS}
        out.update({k: float(np.median([row[k] for row in rows])) for k in COUNTS})
        # the mean too: a block's first steps after the variants alternate (a new optimizer's buffers, the
        # rebuild's) grow the heap and fault fresh pages (~1,000-3,000 in a block, then 0 a step)
        out.update({k + "_mean": float(np.mean([row[k] for row in rows])) for k in COUNTS})
        return out

    overlapped = optimizer(True)
    steps(overlapped, 3)  # warm-up; the first step also rebuilds the buckets in hook order
    if args.gate:
        _gate(args.gate, args.gate_count)
    res = {"workload": args.worker, "ranks": n, "batch": spec.batch}
    if n == 1:
        res["step"] = summary(steps(overlapped, args.steps))
    else:
        overlapped[0].remove_hooks()  # the hooks of the overlapped optimizer would fire in the other variants' steps
        blocking = optimizer(False)
        steps(blocking, 1)
        # the reducer through MPI's Iallreduce (shared_memory=False): the path before the shared window,
        # and the one a multi-node job takes
        blocking_mpi = optimizer(False, shared=False)
        steps(blocking_mpi, 1)
        rows = {"overlap": [], "overlap, zero_grad(set_to_none=False)": [], "no overlap": [],
                "overlap, Iallreduce": [], "no overlap, Iallreduce": [], "plain Allreduce loop": []}
        for _ in range(max(1, args.steps // BLOCK)):  # alternating blocks: the load drifts
            overlapped = optimizer(True)
            steps(overlapped, 1)  # rebuilds the buckets in hook order
            rows["overlap"] += steps(overlapped, BLOCK)
            rows["overlap, zero_grad(set_to_none=False)"] += steps(overlapped, BLOCK, set_to_none=False)
            overlapped[0].remove_hooks()
            rows["no overlap"] += steps(blocking, BLOCK)
            over_mpi = optimizer(True, shared=False)
            steps(over_mpi, 1)
            rows["overlap, Iallreduce"] += steps(over_mpi, BLOCK)
            over_mpi[0].remove_hooks()
            rows["no overlap, Iallreduce"] += steps(blocking_mpi, BLOCK)
            rows["plain Allreduce loop"] += steps("plain", BLOCK)
        res["step"] = summary(rows["overlap"])
        res["variants"] = {k: summary(v) for k, v in rows.items()}
        # the communication left exposed after the backward with overlap, and the last step's timeline
        res["exposed_ms"] = res["step"]["synchronize"]
        res["backward_ms"] = 1e3 * rows["overlap"][-1]["backward"]
        res["timeline"] = overlapped[0].timeline
        # bandwidth: the same bytes from the same starting line, every variant the same number of times,
        # alternating (the load drifts): a plain Allreduce of all the bytes; the same blocking Allreduce once
        # per bucket (the same bytes in the same calls); the reduction path a training step runs
        # (the reducer's synchronize() without hooks: in place, the 1/N left to the update) on gradients
        # already in the bucket views (what a backward after zero_grad(set_to_none=False) leaves) and on new
        # gradient arrays (after zero_grad(): a lone gradient reduced where it is, a fused one copied into
        # its bucket); and the update with and without the 1/N folded in (its cost in the step)
        red = blocking[0]._reducer
        reducers = {"": red, "_mpi": blocking_mpi[0]._reducer}  # the shared window (one node), Iallreduce
        buf = np.ones(flat.size, np.float32)
        res["bytes"] = 4 * int(flat.size)
        ones = [np.ones(p.shape, np.float32) for p in params]
        for p, o in zip(params, ones):
            p.grad = o
        red.synchronize()  # every .grad is a bucket view (or a lone bucket) from here on
        sizes = [sum(params[i].size for i in b.params) for b in red.buckets]
        pieces = [buf[o:o + k] for o, k in zip(np.cumsum([0] + sizes[:-1]), sizes)]
        times = {k: [] for k in ("plain", "per_bucket", "inview", "fresh", "inview_mpi", "fresh_mpi", "update",
                                 "update_scaled")}

        def timed(key, fn, barrier=True):
            """Wall time of a communication; thread CPU time of local work (``barrier=False``: the update,
            whose wall time on a loaded machine is mostly the rank waiting for a core)."""
            clock = time.perf_counter if barrier else time.thread_time
            if barrier:
                comm.Barrier()
            t0 = clock()
            fn()
            times[key].append(clock() - t0)

        def refill():
            for p in params:
                p.grad[...] = 1

        for _ in range(args.steps):
            timed("plain", lambda: comm.Allreduce(MPI.IN_PLACE, buf))
            buf[...] = 1
            timed("per_bucket", lambda: [comm.Allreduce(MPI.IN_PLACE, piece) for piece in pieces])
            buf[...] = 1
            for suffix, rd in reducers.items():
                for p, o in zip(params, ones):
                    p.grad = o
                rd.synchronize()  # .grad becomes this reducer's bucket views
                refill()
                timed("inview" + suffix, rd.synchronize)
                for p, o in zip(params, ones):
                    p.grad = o  # an assignment copies: a new array, as a backward after zero_grad() makes
                timed("fresh" + suffix, rd.synchronize)
            refill()
            timed("update", lambda: inner._fused_step(1.0), barrier=False)
            refill()
            timed("update_scaled", lambda: inner._fused_step(1.0 / n), barrier=False)
        for k, v in times.items():
            res[k + "_ms"] = 1e3 * float(np.median(v))
        # per-pair ratios plain / bucketed: their spread within the job
        for k in ("inview", "fresh", "inview_mpi", "fresh_mpi"):
            pairs = np.array(times["plain"]) / np.array(times[k])
            res[k + "_ratio_q"] = [float(q) for q in np.percentile(pairs, [10, 50, 90])]
        res["buckets"] = len(red.buckets)
    res["samples_per_s"] = n * spec.batch / (res["step"]["step"] / 1e3)
    if r == 0:
        print("RESULT " + json.dumps(res), flush=True)


def _launch(mpiexec, n, name, args, gate=None, core=None):
    cmd = [mpiexec] + (["-bind-to", "core"] if args.bind and core is None else []) + [
        "-n", str(n), sys.executable, __file__, "--worker", name, "--steps", str(args.steps),
        "--bucket", str(args.bucket)]
    if args.bind and core is not None:  # a ceiling job: pinned to its own core, as the 2 ranks are
        cmd = ["taskset", "-c", str(core)] + cmd
    if args.progress_interval:
        cmd += ["--progress-interval", str(args.progress_interval)]
    if gate:
        cmd += ["--gate", gate, "--gate-count", "2"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p, what):
    out, err = p.communicate(timeout=900)
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not line:
        sys.exit(f"{what} failed:\n{out}\n{err[-3000:]}")
    return json.loads(line[0][7:])


def _load():
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def drive(args):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    runs = {}  # (workload, config) -> [result per repeat]
    print(f"load average at start: {_load()}")
    for rep in range(args.repeats):
        for name in args.workloads:
            configs = ["1 rank", "2 ranks", "ceiling"] + (["4 ranks"] if args.four else [])
            for config in configs[rep % 3:] + configs[:rep % 3]:  # rotate: no configuration always runs first
                if config == "ceiling":
                    with tempfile.TemporaryDirectory() as gate:
                        jobs = [_launch(mpiexec, 1, name, args, gate, core) for core in range(2)]
                        a, b = (_result(j, f"{name}: ceiling job") for j in jobs)
                    res = dict(a, ranks=2, samples_per_s=a["samples_per_s"] + b["samples_per_s"],
                               jobs_step_ms=[a["step"]["step"], b["step"]["step"]])
                else:
                    res = _result(_launch(mpiexec, int(config[0]), name, args), f"{name} on {config}")
                runs.setdefault((name, config), []).append(res)
    print(f"load average at end: {_load()}\n")
    med = lambda xs: float(np.median(xs))  # noqa: E731
    print(f"| workload | configuration | step ms | samples/s | vs 1 rank: median (range over {args.repeats} repeats) |")
    print("|---|---|---|---|---|")
    for (name, config), rs in runs.items():
        base = runs[(name, "1 rank")]
        ratios = [x["samples_per_s"] / b["samples_per_s"] for x, b in zip(rs, base)]
        step = med([x["step"]["step"] for x in rs])
        if config == "ceiling":
            step = med([s for x in rs for s in x["jobs_step_ms"]])
        print(f"| {name} | {config} | {step:.2f} | {med([x['samples_per_s'] for x in rs]):,.0f} | "
              f"{med(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")
    print("\nphases, ms per step, wall / thread CPU (rank 0; ceiling: one of its jobs); medians over the repeats:")
    print("| workload | configuration | " + " | ".join(PHASES) + " | step | involuntary switches / step | "
          "page faults / step: median (mean) |")
    print("|---|---|" + "---|" * (len(PHASES) + 3))
    for (name, config), rs in runs.items():
        variants = [(config, [x["step"] for x in rs])]
        if "variants" in rs[0]:
            variants = [(f"{config}, {v}", [x["variants"][v] for x in rs]) for v in rs[0]["variants"]]
        for label, ss in variants:
            cells = [f"{med([s[p] for s in ss]):.2f} / {med([s[p + '_cpu'] for s in ss]):.2f}"
                     for p in PHASES + ("step",)]
            print(f"| {name} | {label} | " + " | ".join(cells) + f" | {med([s['switches'] for s in ss]):.1f} | "
                  f"{med([s['faults'] for s in ss]):.0f} ({med([s.get('faults_mean', 0) for s in ss]):.0f}) |")
    print("\nbandwidth, 2 ranks, the same bytes, alternating from a barrier, medians: plain = one Allreduce of "
          "all the bytes; per bucket = one blocking Allreduce per bucket; bucketed = the reducer's synchronize() "
          "without hooks (the path a training step runs: in place, 1/N folded into the update) on gradients in "
          "the bucket views / on new arrays; ratio = plain / bucketed, median over the repeats (range of the "
          "repeats' ratios; last repeat's per-pair p10-p90); update = SGD's fused step, without / with the 1/N "
          "(thread CPU time)")
    print("| workload | MB | buckets | plain ms | per bucket ms | bucketed ms | ratio | bucketed, new arrays ms | ratio | "
          "update CPU ms | update with 1/N CPU ms | exposed after backward ms | exposed / plain |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, config), rs in runs.items():
        if "plain_ms" not in rs[0]:
            continue
        m = {k: med([x[k + "_ms"] for x in rs]) for k in ("plain", "per_bucket", "update", "update_scaled")}
        exposed = med([x["exposed_ms"] for x in rs])
        for suffix, label in (("", "shared window"), ("_mpi", "Iallreduce")):
            cells = []
            for k in ("inview" + suffix, "fresh" + suffix):
                ratio = [x["plain_ms"] / x[k + "_ms"] for x in rs]
                q = rs[-1][k + "_ratio_q"]
                cells.append(f"{med([x[k + '_ms'] for x in rs]):.3f} | {med(ratio):.2f} "
                             f"({min(ratio):.2f}-{max(ratio):.2f}; {q[0]:.2f}-{q[2]:.2f})")
            print(f"| {name} ({label}) | {rs[0]['bytes'] / 1e6:.2f} | {rs[0]['buckets']} | {m['plain']:.3f} | "
                  f"{m['per_bucket']:.3f} | " + " | ".join(cells) + f" | {m['update']:.3f} | "
                  f"{m['update_scaled']:.3f} | {exposed:.3f} | {exposed / m['plain']:.2f} |")
    for (name, config), rs in runs.items():
        if config != "2 ranks":
            continue
        r = rs[-1]
        print(f"\ntimeline, {name} on 2 ranks, last step of the last repeat, ms from the start of synchronize "
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
    ap.add_argument("--gate", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--gate-count", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--workloads", nargs="+", default=["mlp_large", "mlp_mnist"])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per configuration (and per variant)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every configuration")
    ap.add_argument("--bucket", type=int, default=1 << 20, help="bucket size in bytes")
    ap.add_argument("--progress-interval", type=float, default=None,
                    help="DistributedOptimizer(progress_interval=): seconds between the progress thread's tests")
    ap.add_argument("--four", action="store_true", help="also 4 ranks (oversubscribed on 2 cores)")
    ap.add_argument("--bind", action="store_true",
                    help="pin each rank to a core (mpiexec -bind-to core; the ceiling's jobs with taskset): "
                         "tells a scheduler that stacks both ranks on one core apart from the rest")
    args = ap.parse_args()
    if args.worker:
        worker(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
