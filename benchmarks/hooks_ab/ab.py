"""What hooks and anomaly mode cost when unused: this tree against the same tree with them compiled out.

    python benchmarks/hooks_ab/ab.py [--work DIR] [--runs N] [--keep]

(benchmarks/README.md, "Hooks, anomaly mode and Ctrl-C (issue 15)".) Two builds,
both Release -O3 as the editable install builds them:

  as built      this work tree (uncommitted edits included), built in build/dev
                (the editable install's build directory, brought up to date here);
  compiled out  a copy of this work tree with nohooks.patch applied (no has_extra
                flag bits in the weak references, the Recorder testing the grad
                bit alone, the sweeps without
                hook and anomaly tests, registration raising; the Ctrl-C check
                kept), built in --work (kept between runs: only what changed is
                recompiled).

Each build's unstripped _core is imported in one process that runs the chain of
benchmarks/callgrind_chain.py (its CHAIN_RUN text: y*1.0001, y+0.01, tanh,
y-0.001; 1,000 ops a run) under `valgrind --tool=callgrind --dump-before=getppid`
(PYTHONHASHSEED=0, 1 thread, TAPEGRAD_ISA=avx2): import and two warm-up runs of
each mode, a dump, N fwdbwd runs, a dump, N nograd runs, a dump, N nograd runs
inside no_grad() (grad mode off: nothing records), a dump. Per op = a part's count / (N x
1,000), nothing subtracted. tapegrad's C++ = self cost in tg::, tgpy::,
pybind11:: (callgrind_annotate --inclusive=no); whole process = every
instruction of the part.

When the hot paths change, nohooks.patch must be refreshed: the script stops
with "nohooks.patch NO LONGER APPLIES" when `git apply` rejects it. A patch that
applies but misses a new hook or anomaly test in a hot path does not fail: read
the diff of autograd.hpp/autograd.cpp since the patch's last refresh.
"""
import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = subprocess.run(["git", "-C", HERE, "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                      check=True).stdout.strip()
PATCH = os.path.join(HERE, "nohooks.patch")

sys.path.insert(0, os.path.dirname(HERE))
from callgrind_chain import CHAIN_RUN, LEAF, OPS_PER_RUN  # noqa: E402  (the chain callgrind_chain.py reports)

# That chain, run in one process with dumps between the phases instead of two
# processes subtracted.
CHILD = r"""
import os, sys
stage, runs = sys.argv[1], int(sys.argv[2])
# The editable install's finder would import the work tree's package (and
# check for a rebuild): this process imports the staged copy only.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                    and "scikit" not in type(f).__module__.lower()]
sys.path.insert(0, stage)
import tapegrad as eng
assert eng.__file__.startswith(stage), eng.__file__
eng.set_num_threads(1)
tanh = eng.tanh
def leaf():
    return """ + LEAF["tapegrad"] + CHAIN_RUN + r"""
for _ in range(2):
    for mode in ("fwdbwd", "nograd"):
        run()
    with eng.no_grad():
        run()
os.getppid()  # dump: import and warm-up
mode = "fwdbwd"
for _ in range(runs): run()
os.getppid()  # dump: fwdbwd
mode = "nograd"
for _ in range(runs): run()
os.getppid()  # dump: nograd
with eng.no_grad():
    for _ in range(runs): run()
os.getppid()  # dump: nograd inside no_grad()
"""
MODES = ("fwdbwd", "nograd", "no_grad()")  # the dumps after the warm-up's, in order


def sh(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def sync_tree(dst):
    """Copies this work tree's tracked files (as they are on disk) to dst, touching only files that differ."""
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True).stdout
    for rel in files.decode().split("\0"):
        if rel and os.path.isfile(os.path.join(ROOT, rel)):
            copy_if_changed(os.path.join(ROOT, rel), os.path.join(dst, rel))


def copy_if_changed(src, dst):
    """(A file rewritten with the same bytes would still make ninja recompile what depends on it.)"""
    data = open(src, "rb").read()
    if os.path.exists(dst) and open(dst, "rb").read() == data:
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "wb") as f:
        f.write(data)
    shutil.copymode(src, dst)


def make_baseline(work):
    """The compiled-out tree in work/src: this tree plus nohooks.patch, files rewritten only when changed."""
    fresh = os.path.join(work, "fresh")
    shutil.rmtree(fresh, ignore_errors=True)
    os.makedirs(fresh)
    sync_tree(fresh)
    r = subprocess.run(["git", "apply", "--verbose", PATCH], cwd=fresh, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"\nnohooks.patch NO LONGER APPLIES to this tree:\n{r.stderr}\nRefresh it: make the compiled-out "
                 f"edits again on this tree (the patch's hunks say what they are) and save `git diff` as "
                 f"benchmarks/hooks_ab/nohooks.patch.")
    src = os.path.join(work, "src")
    os.makedirs(src, exist_ok=True)
    for dirpath, _, names in os.walk(fresh):
        for name in names:
            a = os.path.join(dirpath, name)
            copy_if_changed(a, os.path.join(src, os.path.relpath(a, fresh)))
    shutil.rmtree(fresh)
    return src


def build(src, bdir):
    if not os.path.exists(os.path.join(bdir, "CMakeCache.txt")):
        import pybind11
        site = os.path.dirname(os.path.dirname(pybind11.__file__))
        sh(["cmake", "-S", src, "-B", bdir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={sys.executable}", f"-DCMAKE_PREFIX_PATH={site}",
            f"-DCMAKE_INSTALL_PREFIX={bdir}/install"], stdout=subprocess.DEVNULL)
    sh(["cmake", "--build", bdir])
    cores = glob.glob(os.path.join(bdir, "core", "_core*.so"))
    if len(cores) != 1:
        sys.exit(f"no single _core*.so in {bdir}/core: {cores}")
    return cores[0]


def stage(src, core, dst):
    """src's Python package with the given _core next to it."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(os.path.join(src, "python", "tapegrad"), os.path.join(dst, "tapegrad"),
                    ignore=shutil.ignore_patterns("_core*.so", "__pycache__"))
    shutil.copy2(core, os.path.join(dst, "tapegrad"))
    return dst


def self_cost(path):
    """(whole part, tapegrad's C++ self cost) of one callgrind dump."""
    ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    total = tg = 0
    for line in ann.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)$", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = n
        elif re.search(r"\btg(py)?::|pybind11::", m.group(2)):
            tg += n
    return total, tg


def measure(stage_dir, runs, out_dir):
    script = os.path.join(out_dir, "child.py")
    with open(script, "w") as f:
        f.write(CHILD)
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               TAPEGRAD_ISA="avx2", TAPEGRAD_NUM_THREADS="1")
    out = os.path.join(out_dir, "cg.out")
    r = subprocess.run(["valgrind", "--tool=callgrind", "--dump-before=getppid", f"--callgrind-out-file={out}",
                        sys.executable, script, stage_dir, str(runs)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"callgrind run failed:\n{r.stderr[-3000:]}")
    parts = sorted(glob.glob(out + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]))
    if len(parts) < 1 + len(MODES):
        sys.exit(f"expected {1 + len(MODES)} dumps, got {parts}")
    per_op = OPS_PER_RUN * runs
    res = {}
    for mode, path in zip(MODES, parts[1:]):
        total, tg = self_cost(path)
        res[mode, "tapegrad's C++"] = tg / per_op
        res[mode, "whole process"] = total / per_op
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "tapegrad-hooks-ab"),
                   help="the compiled-out tree, its build and the callgrind files (kept)")
    p.add_argument("--runs", type=int, default=10, help="runs of 1,000 ops per mode (default 10)")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    base_src = make_baseline(args.work)
    base_core = build(base_src, os.path.join(args.work, "build"))
    main_core = build(ROOT, os.path.join(ROOT, "build", "dev"))
    results = {}
    for name, src, core in (("compiled out", base_src, base_core), ("as built", ROOT, main_core)):
        d = os.path.join(args.work, "run-" + name.replace(" ", "-"))
        os.makedirs(d, exist_ok=True)
        for old in glob.glob(os.path.join(d, "cg.out*")):
            os.unlink(old)
        results[name] = measure(stage(src, core, os.path.join(d, "stage")), args.runs, d)
        print(f"measured {name} ({core})", flush=True)
    head = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                          text=True).stdout.strip()
    print(f"\nInstructions per op ({head}; callgrind, {args.runs} runs of {OPS_PER_RUN:,} ops per mode):\n")
    print("| per op | compiled out | as built | cost |")
    print("|---|---|---|---|")
    for mode in MODES:
        for part in ("tapegrad's C++", "whole process"):
            a, b = results["compiled out"][mode, part], results["as built"][mode, part]
            print(f"| {mode}, {part} | {a:,.1f} | {b:,.1f} | {b - a:+,.1f} ({(b - a) / a * 100:+.2f}%) |")
    print(f"\n(callgrind files: {args.work}/run-*/cg.out.N; per function: callgrind_annotate --inclusive=no FILE)")


if __name__ == "__main__":
    main()
