"""What a call through NumPy's protocols costs on top of the direct tapegrad call.

    python benchmarks/numpy_dispatch.py [--number 200000] [--repeat 9]
    python benchmarks/numpy_dispatch.py --instructions [--calls 20000]   # under callgrind: load-free

In one process: `np.add(v, w)` vs `v + w`, and `np.sum(v)` vs `tg.sum(v)` (3-element
float64 Variables, no graph), against NumPy's own dispatch floor: the same NumPy call on
a class whose `__array_ufunc__` / `__array_function__` return at once. The extra cost
of tapegrad's dispatch is (np.f(v) - direct) - floor; the target is at most 0.15 µs.
Medians over repeats that interleave the statements (the machines are noisy); with
--instructions, instructions per call counted by valgrind's callgrind (a run with no call
subtracted), which a loaded machine does not move.
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


STMTS = ("v + w", "np.add(v, w)", "np.add(d, d)", "tg.sum(v)", "np.sum(v)", "np.sum(d)")
PAIRS = (("v + w", "np.add(v, w)", "np.add(d, d)"), ("tg.sum(v)", "np.sum(v)", "np.sum(d)"))


CHILD = r"""
import sys
import numpy as np
import tapegrad as tg
sys.path.insert(0, sys.argv[3])
from numpy_dispatch import Nothing
v, w, d = tg.Variable(np.ones(3)), tg.Variable(np.ones(3)), Nothing()
exec(compile("for _ in range(%d):\n    %s" % (int(sys.argv[2]), sys.argv[1]), "<loop>", "exec"))
"""


def instructions(stmt, calls):
    import os
    import re
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c",
                            CHILD, stmt, str(calls), os.path.dirname(os.path.abspath(__file__))],
                           capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if r.returncode:
            raise SystemExit(r.stderr[-2000:])
        return int(re.search(r"^summary: (\d+)", open(out).read(), re.M).group(1))


def main_instructions(calls):
    base = instructions("pass", calls)
    per = {s: (instructions(s, calls) - base) / calls for s in STMTS}
    print(f"{'call':<14} {'instructions':>12}")
    for s in STMTS:
        print(f"{s:<14} {per[s]:12.0f}")
    for direct, via, floor in PAIRS:
        print(f"{via}: tapegrad's dispatch {per[via] - per[direct] - per[floor]:+.0f} instructions over NumPy's "
              f"floor ({floor}: {per[floor]:.0f})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--number", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    p.add_argument("--calls", type=int, default=20_000)
    a = p.parse_args(argv)
    if a.instructions:
        return main_instructions(a.calls)
    env = {"np": np, "tg": tg, "v": tg.Variable(np.ones(3)), "w": tg.Variable(np.ones(3)), "d": Nothing()}
    timers = {s: timeit.Timer(s, globals=env) for s in STMTS}
    runs = []  # the statements interleaved in each repeat, so a load change hits all of them
    for _ in range(a.repeat):
        runs.append({s: t.timeit(a.number) / a.number * 1e6 for s, t in timers.items()})
    print(f"{'call':<14} {'median µs':>10}")
    for s in STMTS:
        print(f"{s:<14} {statistics.median(r[s] for r in runs):10.3f}")
    for direct, via, floor in PAIRS:
        extra = sorted(r[via] - r[direct] - r[floor] for r in runs)
        print(f"{via}: tapegrad's dispatch costs {statistics.median(extra):+.3f} µs over NumPy's floor "
              f"({floor}) (repeats: {extra[0]:+.3f} .. {extra[-1]:+.3f}; target <= 0.15)")


if __name__ == "__main__":
    main()
