"""What a call through NumPy's protocols costs on top of the direct tapegrad call.

    python benchmarks/numpy_dispatch.py [--number 200000] [--repeat 9]
    python benchmarks/numpy_dispatch.py --instructions [--calls 20000] [--keep DIR]   # callgrind: load-free

In one process, for each NumPy function: `np.f(v, ...)` on 3-element float64 Variables (no
graph), the direct tapegrad call (`v + w`, `tg.sum(v)` ...), and NumPy's own dispatch floor:
the same NumPy call on a class whose `__array_ufunc__` / `__array_function__` return at once.
The extra cost of tapegrad's dispatch is (np.f(v) - direct) - floor; the target is at most
0.15 µs (~600 instructions). Timed mode: medians over repeats that interleave the statements
(the machines are noisy). --instructions: instructions per call counted by valgrind's
callgrind in one process (a profile is dumped at each os.getppid() between the statements'
loops, a loop of `pass` subtracted; every statement runs once before the counted round, so
first-call costs are not counted); a loaded machine does not move the counts. --keep DIR
keeps the per-statement profiles (DIR/cg.out.N) for callgrind_annotate's per-function view.
"""
import argparse
import statistics
import sys
import timeit

import numpy as np

import tapegrad as tg


class Nothing:
    """NumPy's dispatch floor: protocols that do nothing."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return None

    def __array_function__(self, func, types, args, kwargs):
        return None


# (direct tapegrad call, the NumPy call on Variables, the same NumPy call on Nothing)
ROWS = (
    ("v + w", "np.add(v, w)", "np.add(d, d)"),
    ("v * w", "np.multiply(v, w)", "np.multiply(d, d)"),
    ("tg.exp(v)", "np.exp(v)", "np.exp(d)"),
    ("tg.sum(v)", "np.sum(v)", "np.sum(d)"),
    ("tg.sum(v, axis=0)", "np.sum(v, axis=0)", "np.sum(d, axis=0)"),
    ("tg.mean(v)", "np.mean(v)", "np.mean(d)"),
    ("tg.dot(v, w)", "np.dot(v, w)", "np.dot(d, d)"),
    ("tg.concatenate((v, w))", "np.concatenate((v, w))", "np.concatenate((d, d))"),
    ("tg.reshape(v, (3, 1))", "np.reshape(v, (3, 1))", "np.reshape(d, (3, 1))"),
)
STMTS = tuple(s for row in ROWS for s in row)


CHILD = r"""
import os
import sys
import numpy as np
import tapegrad as tg
sys.path.insert(0, sys.argv[3])
from numpy_dispatch import Nothing
v, w, d = tg.Variable(np.ones(3)), tg.Variable(np.ones(3)), Nothing()
stmts = sys.argv[1].split("\n")
loops = [compile("for _ in range(%d):\n    %s" % (int(sys.argv[2]), s), "<loop>", "exec") for s in stmts]
for code in loops + loops:  # a warm-up round, then the counted one
    os.getppid()  # callgrind dumps the profile here (--dump-before=getppid)
    exec(code)
os.getppid()
"""


def instructions(stmts, calls, keep=None):
    """{stmt: instructions per call, a loop of `pass` subtracted}, from one callgrind run."""
    import glob
    import os
    import re
    import subprocess
    import tempfile
    stmts = ("pass",) + tuple(stmts)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(keep or tmp, "cg.out")
        for f in glob.glob(out + "*"):
            os.remove(f)
        r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-before=getppid",
                            "--compress-strings=no", "--compress-pos=no",
                            sys.executable, "-c", CHILD, "\n".join(stmts), str(calls),
                            os.path.dirname(os.path.abspath(__file__))],
                           capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if r.returncode:
            raise SystemExit(r.stderr[-2000:])
        # cg.out.1 is the start-up; then one part per loop, warm-up round first.
        counted = [int(re.search(r"^summary: (\d+)", open(f"{out}.{len(stmts) + 2 + i}").read(), re.M).group(1))
                   for i in range(len(stmts))]
    return {s: (n - counted[0]) / calls for s, n in zip(stmts[1:], counted[1:])}


def main_instructions(calls, keep):
    per = instructions(STMTS, calls, keep)
    print(f"{'NumPy call':<24} {'np.f(v)':>8} {'direct':>8} {'floor':>8} {'over floor':>10}")
    for direct, via, floor in ROWS:
        print(f"{via:<24} {per[via]:8.0f} {per[direct]:8.0f} {per[floor]:8.0f} "
              f"{per[via] - per[direct] - per[floor]:+10.0f}")
    if keep:
        n = len(STMTS) + 3
        print(f"profiles: {keep}/cg.out.{n + 1} .. cg.out.{n + len(STMTS)}, in the order " + ", ".join(STMTS))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--number", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--keep", help="with --instructions: keep the callgrind profiles in this directory")
    a = p.parse_args(argv)
    if a.instructions:
        return main_instructions(a.calls, a.keep)
    env = {"np": np, "tg": tg, "v": tg.Variable(np.ones(3)), "w": tg.Variable(np.ones(3)), "d": Nothing()}
    timers = {s: timeit.Timer(s, globals=env) for s in STMTS}
    runs = []  # the statements interleaved in each repeat, so a load change hits all of them
    for _ in range(a.repeat):
        runs.append({s: t.timeit(a.number) / a.number * 1e6 for s, t in timers.items()})
    print(f"{'NumPy call':<24} {'over floor µs':>13}  (repeats; target <= 0.15)")
    for direct, via, floor in ROWS:
        extra = sorted(r[via] - r[direct] - r[floor] for r in runs)
        print(f"{via:<24} {statistics.median(extra):+13.3f}  ({extra[0]:+.3f} .. {extra[-1]:+.3f})")


if __name__ == "__main__":
    main()
