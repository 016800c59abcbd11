"""Instructions per call of issue 17's small rows, under callgrind (load-free).

    python benchmarks/callgrind_rows.py OUT.json   (with the python of the build to measure; needs valgrind)

One valgrind process: each row's statement runs in a loop of 1,000 then of
10,000 calls, separated by os.getppid() (libc getppid: callgrind dumps its
counts there, --dump-before); (Ir(10,000) - Ir(1,000)) / 9,000 per call.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

ROWS = [
    ("concatenate([a, b])", "tg.concatenate([a, b])", "a = V(r(16)); b = V(r(16))"),
    ("stack([a, b]) 0-d", "tg.stack([a, b])", "a = V(r(())); b = V(r(()))"),
    ("stack([a, b])", "tg.stack([a, b])", "a = V(r(16)); b = V(r(16))"),
    ("matmul(A, B)", "tg.matmul(A, B)", "A = V(r((4, 4))); B = V(r((4, 4)))"),
    ("softmax(X, axis=-1)", "tg.softmax(X, axis=-1)", "X = V(r((4, 4)))"),
    ("log_softmax(X, axis=-1)", "tg.log_softmax(X, axis=-1)", "X = V(r((4, 4)))"),
    ("max(X, axis=-1)", "tg.max(X, axis=-1)", "X = V(r((4, 4)))"),
    ("min(X, axis=-1)", "tg.min(X, axis=-1)", "X = V(r((4, 4)))"),
    ("sum(X, axis=-1)", "tg.sum(X, axis=-1)", "X = V(r((4, 4)))"),
    ("mean(X, axis=-1)", "tg.mean(X, axis=-1)", "X = V(r((4, 4)))"),
    ("minimum f32", "tg.minimum(a, b)", "a = V(r(16), dtype='float32'); b = V(r(16), dtype='float32')"),
    ("subtract 0-d", "tg.subtract(a, b)", "a = V(r(())); b = V(r(()))"),
    ("v.transpose()", "X.transpose()", "X = V(r((4, 4)))"),
    ("v.sum()", "v.sum()", "v = V(r(16))"),
    ("abs(x)", "abs(v)", "v = V(r(16))"),
    ("v[3] = c", "v[3] = 0.5", "v = V(r(16))"),
    ("v[::2] = c", "v[::2] = 0.5", "v = V(r(16))"),
    ("M[3] = c", "M[3] = 0.5", "M = V(r((4, 4)))"),
    ("v.item()", "v.item()", "v = V(r(()))"),
    ("from_numpy(ndarray)", "tg.from_numpy(arr)", "arr = r(16)"),
    ("np.asarray(v)", "np.asarray(v)", "v = V(r(16))"),
    ("list(v) 25", "list(v)", "v = V(r(25))"),
    ("v[3] recorded 1024", "v[3]", "v = V(r(1024), requires_grad=True)"),
    ("v[2:5] recorded 1024", "v[2:5]", "v = V(r(1024), requires_grad=True)"),
    # issue 17's 0-d rows as benchmarks/ops.py builds them (h57)
    ("concatenate([a, b]) 0-d f32", "tg.concatenate([a, b])",
     "a = V(r((1,)), dtype='float32'); b = V(r((1,)), dtype='float32')"),
    ("reshape(x, square) 0-d f32", "tg.reshape(x, ())", "x = V(r((1,)), dtype='float32')"),
    ("sum(X, axis=-1) 0-d f32", "tg.sum(X, axis=-1)", "X = V(r((1, 1)), dtype='float32')"),
    ("v.sigmoid() 0-d", "v.sigmoid()", "v = V(r(()))"),
    ("v.tan() 0-d", "v.tan()", "v = V(r(()))"),
    ("np.asarray(v) 0-d", "np.asarray(v)", "v = V(r(()))"),
    ("float(v)", "float(v)", "v = V(r(()))"),
    # what benchmarks/ops.py's timing loop adds around a row: `run()` = `lambda: f(*args)` (here `call`)
    ("(loop alone)", "pass", ""),
    ("ops.py's call of f(x) = x", "call()", "f = lambda x: x; args = [1.0]; call = lambda: f(*args)"),
    ("numpy a.item()", "a.item()", "a = r(())"),
    # benchmarks/ops.py's loop since h75: the row's call written in the loop, `f(x)` (CPython 3.11
    # inlines the Python frame of a lambda called with exact arguments; a star-call it does not)
    ("ops.py's loop: f(x) = x", "f(x)", "f = lambda x: x; x = 1.0"),
    ("ops.py's loop: v.item()", "f(v)", "f = lambda x: x.item(); v = V(r(()))"),
    ("ops.py's loop: float(v)", "f(v)", "f = float; v = V(r(()))"),
    ("ops.py's loop: np.asarray(v) 16", "f(v)", "f = np.asarray; v = V(r(16))"),
    # PyTorch's side of the same rows (skipped when torch is not installed)
    ("torch t.item()", "t.item()", "import torch; torch.set_num_threads(1); t = torch.tensor(r(()))"),
    ("torch float(t)", "float(t)", "import torch; t = torch.tensor(r(()))"),
    ("torch np.asarray(t) 16", "np.asarray(t)", "import torch; t = torch.tensor(r(16))"),
    ("torch ops.py's loop: t.item()", "f(t)", "import torch; f = lambda x: x.item(); t = torch.tensor(r(()))"),
]

CHILD = r'''
import os, sys, json
import numpy as np
import tapegrad as tg
tg.set_num_threads(1)
V = tg.Variable
rng = np.random.default_rng(0)
r = lambda s: rng.uniform(-2, 2, s)
rows = json.loads(sys.argv[1])
fns = []
for name, stmt, setup in rows:
    ns = dict(tg=tg, np=np, V=V, r=r)
    try:
        exec(setup, ns)
    except ImportError:  # (a PyTorch row without torch: counted as the loop alone)
        ns, stmt = dict(), "pass"
    exec("def run(n):\n    for _ in range(n):\n        " + stmt + "\n", ns)
    ns["run"](100)  # warm-up
    fns.append(ns["run"])
os.getppid()
for f in fns:
    f(1000)
    os.getppid()
    f(10000)
    os.getppid()
'''


def main():
    out = sys.argv[1]
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "child.py")
        with open(script, "w") as f:
            f.write(CHILD)
        p = subprocess.run(["valgrind", "--tool=callgrind", "--dump-before=getppid", "--dump-instr=no",
                            f"--callgrind-out-file={d}/cg.out", sys.executable, script,
                            json.dumps([list(x) for x in ROWS])], capture_output=True, text=True, env=env)
        if p.returncode != 0:
            sys.exit(p.stderr[-3000:])
        files = sorted(glob.glob(f"{d}/cg.out.*"), key=lambda s: int(s.rsplit(".", 1)[1]))
        totals = []
        for fn in files:
            with open(fn) as f:
                txt = f.read()
            m = re.search(r"^(?:summary|totals):\s+(\d+)", txt, re.M)
            totals.append(int(m.group(1)) if m else 0)
    # the last two dumps per row: its 1,000 loop, its 10,000 loop (counted from the end: whatever
    # the imports dump before the first row does not shift them)
    per = totals[-2 * len(ROWS):]
    res = {}
    for i, (name, stmt, _) in enumerate(ROWS):
        a, b = per[2 * i], per[2 * i + 1]
        res[name] = (b - a) / 9000
        print(f"{name:<26} {stmt:<28} {res[name]:9.0f}")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
