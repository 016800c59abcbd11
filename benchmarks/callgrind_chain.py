"""Per-op cost of Python dispatch, counted in instructions (load-free).

    python benchmarks/callgrind_chain.py [--systems tapegrad torch] [--modes fwdbwd fwd nograd]
                                     [--pairs N] [--by-object]

Runs benchmarks/overhead.py's chain of scalar ops (y*1.0001, y+0.01, tanh,
y-0.001; 1,000 ops) under `valgrind --tool=callgrind`, once with 1 repetition
and once with R, and reports (Ir(R) - Ir(1)) / ((R - 1) * 1,000): the instructions one op
costs with import and warm-up subtracted (R = 41 runs for tapegrad, 11 for
PyTorch, whose runs under valgrind take minutes). Modes:

  fwdbwd  the ops recorded, then backward (what the chain benchmark times)
  fwd     the ops recorded, no backward (the graph is freed at the end)
  nograd  the ops on Variables that do not require grad (pure dispatch)

Wall-clock ratios on a shared VM move by 2-3x between runs; instruction
counts barely do (PYTHONHASHSEED is fixed, 1 BLAS thread); what still moves
them (an editable install's rebuild check on import, for one) is taken out by
the median over --pairs pairs of runs (default 3 for tapegrad; PyTorch's
20-40x larger per-op count makes one pair enough, and a pair takes minutes). They do not weigh
atomic operations or cache misses, which cost PyTorch more than tapegrad, so
the time ratio is usually larger than the instruction ratio.
With --by-object each count is also split by where the instructions ran
(callgrind_annotate's self cost per function): tapegrad's C++ (functions in
tg::, tgpy::, pybind11::), then the other shared objects. tapegrad's share
moves far less between runs than the interpreter's does, so a change to the
C++ engine is resolved to a few instructions per op there.
Needs valgrind (Debian: apt install valgrind); PyTorch is optional.
"""
import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile

# One run of the chain (OPS_PER_RUN ops), given the globals `leaf` (makes
# the start value: LEAF's expression), `tanh` and `mode`.
# benchmarks/hooks_ab/ab.py runs the same text, so its A/B measures the
# chain reported here.
LEAF = {
    "tapegrad": 'eng.Variable(0.5, requires_grad=mode != "nograd")',
    "torch": 'eng.tensor(0.5, dtype=eng.float64, requires_grad=mode != "nograd")',
}
CHAIN_RUN = r"""
def run():
    y = leaf()
    for _ in range(250):
        y = y * 1.0001
        y = y + 0.01
        y = tanh(y)
        y = y - 0.001
    if mode == "fwdbwd":
        y.backward()
"""

CHILD = r"""
import sys
system, mode, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
if system == "tapegrad":
    import tapegrad as eng
    def leaf():
        return """ + LEAF["tapegrad"] + r"""
else:
    import torch as eng
    def leaf():
        return """ + LEAF["torch"] + r"""
eng.set_num_threads(1)
tanh = eng.tanh""" + CHAIN_RUN.rstrip("\n") + r"""
for _ in range(reps + 1):  # one warm-up run
    run()
"""

OPS_PER_RUN = 1000


def instructions(system, mode, reps, script, by_object=False):
    """The run's instruction count; with by_object, also {object file name: count}."""
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.out", sys.executable, script, system, mode,
             str(reps)],
            capture_output=True, text=True, env=env)
        m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if out.returncode != 0 or not m:
            raise RuntimeError(f"callgrind run of {system} {mode} failed:\n{out.stderr[-2000:]}")
        total = int(m.group(1).replace(",", ""))
        if not by_object:
            return total
        ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", f"{d}/cg.out"],
                             capture_output=True, text=True, check=True).stdout
    objects = collections.Counter()
    for line in ann.splitlines():  # "  1,234 ( 0.10%)  file.c:function [/path/to/object.so]"
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S+?):(.*)$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        # callgrind_annotate leaves out the [object] of many lines: tapegrad's
        # own code is told by its namespaces (the engine, the bindings and
        # the pybind11 code they instantiate), the rest by object when shown.
        if re.search(r"\btg(py)?::|pybind11::", m.group(3)):
            name = "tapegrad C++ (tg::, tgpy::, pybind11::)"
        else:
            obj = re.search(r"\[(/[^\]]+)\]\s*$", m.group(3))
            name = os.path.basename(obj.group(1)) if obj else "other"
        objects[name] += int(m.group(1).replace(",", ""))
    return total, objects


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", nargs="+", default=["tapegrad", "torch"], choices=["tapegrad", "torch"])
    p.add_argument("--modes", nargs="+", default=["fwdbwd", "fwd", "nograd"], choices=["fwdbwd", "fwd", "nograd"])
    p.add_argument("--pairs", type=int, default=0, help="pairs of runs per system and mode (median; default 3 / 1)")
    p.add_argument("--by-object", action="store_true",
                   help="also split each count by shared object (tapegrad's _core, libpython, libc, ...)")
    args = p.parse_args(argv)
    systems = []
    for s in args.systems:
        try:
            __import__(s)
            systems.append(s)
        except ImportError:
            print(f"({s} not installed: skipped)")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(CHILD)
        script = f.name
    try:
        per_op = {}
        for mode in args.modes:
            for s in systems:
                pairs = args.pairs if args.pairs else (3 if s == "tapegrad" else 1)
                reps = 41 if s == "tapegrad" else 11  # more runs: fixed costs' jitter weighs less per op
                counts, objects = [], collections.defaultdict(list)
                for _ in range(pairs):
                    if args.by_object:
                        (big, big_obj), (small, small_obj) = (instructions(s, mode, r, script, True) for r in (reps, 1))
                        for name in big_obj.keys() | small_obj.keys():
                            objects[name].append((big_obj[name] - small_obj[name]) / ((reps - 1) * OPS_PER_RUN))
                    else:
                        big, small = (instructions(s, mode, r, script) for r in (reps, 1))
                    counts.append((big - small) / ((reps - 1) * OPS_PER_RUN))
                per_op[s, mode] = statistics.median(counts)
                spread = f"  (pairs: {', '.join(f'{c:,.0f}' for c in counts)})" if pairs > 1 else ""
                print(f"{s:9} {mode:7} {per_op[s, mode]:9,.0f} instructions/op{spread}", flush=True)
                for name, per in sorted(objects.items(), key=lambda kv: -statistics.median(kv[1])):
                    if abs(statistics.median(per)) >= 1:
                        print(f"{'':17} {statistics.median(per):9,.1f}  in {name}"
                              f"  (pairs: {', '.join(f'{c:,.1f}' for c in per)})", flush=True)
        if "tapegrad" in systems and "torch" in systems:
            for mode in args.modes:
                r = per_op["torch", mode] / per_op["tapegrad", mode]
                print(f"{mode:7} tapegrad / torch eager = 1/{r:.1f}")
    finally:
        os.unlink(script)


if __name__ == "__main__":
    main()
