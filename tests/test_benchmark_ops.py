"""benchmarks/ops.py has a row for every spec op, every other public function
and every Variable method (the row list only: timings are never asserted), and
its rows run on each library."""
import functools
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

import tapegrad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
torch = pytest.importorskip("torch")  # the rows name PyTorch's twins


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(ROOT, "benchmarks", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


OPS = json.loads(tapegrad._core.__ops__) if isinstance(tapegrad._core.__ops__, str) else tapegrad._core.__ops__
bench = load("ops")
CASES = bench.cases()


def test_every_spec_op_has_a_row():
    assert set(OPS) - bench.covered_ops(CASES) == set()


def test_every_spec_method_has_a_method_row():
    methods = {name for name, e in OPS.items() if e["method"]}
    assert methods - bench.covered_methods(CASES) == set()


def test_every_public_function_has_a_row():
    """The public functions are read from the package now (not a list kept here): a function added
    to tapegrad (e.g. a new composition in tapegrad._compose) fails this until it gets a row."""
    import inspect

    public = {n for n in dir(tapegrad) if not n.startswith("_") and callable(getattr(tapegrad, n))
              and not inspect.isclass(getattr(tapegrad, n)) and not inspect.ismodule(getattr(tapegrad, n))}
    assert public - bench.NON_OPS - bench.covered_ops(CASES) == set()
    assert set(tapegrad._compose.build(tapegrad)) - bench.covered_ops(CASES) == set()
    assert bench.NON_OPS <= public  # (a stale exclusion would hide nothing, but says what is excluded)
    assert bench.public_functions() == public - bench.NON_OPS


def test_every_public_variable_method_has_a_row():
    import inspect

    V = tapegrad.Variable
    methods = {m for m in dir(V) if not m.startswith("_") and not isinstance(inspect.getattr_static(V, m), property)
               and callable(getattr(V, m))}
    assert methods - bench.NON_METHODS - bench.covered_methods(CASES) == set()
    assert bench.NON_METHODS <= methods
    assert bench.public_methods() == methods - bench.NON_METHODS


def test_a_function_without_a_row_is_noticed(monkeypatch):
    monkeypatch.setattr(tapegrad, "frobnicate", lambda x: x, raising=False)
    assert "frobnicate" in bench.public_functions() - bench.covered_ops(CASES)


def test_every_operator_has_a_row():
    ops_with_operator = {name for name, e in OPS.items() if e["operator"]}
    assert ops_with_operator <= {c.op for c in CASES if c.kind == "operator"}


def test_indexing_and_conversion_rows():
    names = {c.name for c in CASES}
    for want in ("v[3]", "v[-2]", "v[2:5]", "v[::2]", "M[1, 2]", "v[None, ...]", "v[ints]", "v[mask]", "M[ints]",
                 "M[mask]", "list(v)", "next(iter(v))", "float(v)", "v.item()", "Variable(ndarray)",
                 "from_numpy(ndarray)", "np.asarray(v)", "v[3] = c", "v[::2] = c", "M[::2, 1:-1] = c", "v[mask] = c",
                 "v[-2] = c", "M[..., 1] = c", "M[ints] = c", "M[1:3] = c"):
        assert want in names


def test_an_op_without_arguments_is_refused():
    fake = dict(OPS, frobnicate=dict(OPS["sum"], name="frobnicate", family="reduction"))
    with pytest.raises(KeyError, match="frobnicate"):
        bench.op_cases(fake)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.kind}:{c.name}")
def test_row_runs_and_agrees(case):
    """Each row at its smallest size: tapegrad, PyTorch and NumPy compute the same values."""
    n = case.sizes[0] if case.sizes[0] else 0
    outs = {}
    for lib in ("tapegrad", "torch", "numpy"):
        fn = bench.prepare(case, lib, n, "float64", grad=False)
        if fn is None:  # (no twin in this library: PyTorch for cbrt and the shape queries, NumPy for detach)
            continue
        out = fn()
        if case.name == "next(iter(v))" or case.name == "list(v)":
            out = [np.asarray(o.detach() if lib == "torch" else o) for o in (out if isinstance(out, list) else [out])]
        elif lib == "torch" and hasattr(out, "detach"):
            out = out.detach().numpy()
        outs[lib] = out
        for mode in set(case.modes) - {"eval"}:  # grad (recorded + backward) and record (no backward) run too
            g = bench.prepare(case, lib, n, "float64", grad=True, backward=mode == "grad") if lib != "numpy" else None
            if g is not None:
                g()
    if case.kind in ("convert",) and case.name in ("Variable(ndarray)", "from_numpy(ndarray)"):
        return
    assert sum(lib in outs for lib in ("torch", "numpy")) >= 1
    for lib in ("torch", "numpy"):
        if lib not in outs:
            continue
        a, b = outs["tapegrad"], outs[lib]
        if isinstance(a, list):
            assert len(a) == len(b) and all(np.allclose(x, y) for x, y in zip(a, b))
        else:
            assert np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-12), lib


def test_blas_bound_rows_exist_and_are_held_to_numpy():
    names = {c.name for c in CASES}
    assert set(bench.BLAS_BOUND) <= names and bench.HELD_TO_NUMPY <= set(bench.BLAS_BOUND)
    assert bench.HELD_TO_NUMPY_EVAL <= set(bench.BLAS_BOUND) and not bench.HELD_TO_NUMPY_EVAL & bench.HELD_TO_NUMPY
    for c in CASES:
        if c.name in bench.HELD_TO_NUMPY:
            assert bench.target_for(c, 1 << 20, "grad").startswith("BLAS")
            assert not bench.target_for(c, 16, "grad").startswith("BLAS")
        if c.name in bench.HELD_TO_NUMPY_EVAL:  # one LAPACK call when not recording; several with the VJP
            assert bench.target_for(c, 1 << 20, "eval").startswith("BLAS")
            assert not bench.target_for(c, 1 << 20, "grad").startswith("BLAS")
            assert not bench.target_for(c, 16, "eval").startswith("BLAS")


@pytest.mark.parametrize("name", sorted(bench.BLAS_BOUND))
def test_numpy_grad_column_computes_the_same_gradients(name):
    """The NumPy `grad` twin of a BLAS-bound row runs the forward and the VJP's calls by hand:
    its forward value and gradients are tapegrad's (ones seed), so it times the same work."""
    case = next(c for c in CASES if c.name == name)
    raw = case.inputs(16, np.random.default_rng(3))
    fwd, *grads = bench.BLAS_BOUND[name](np.ones(np.shape(case.calls["numpy"](*raw))), *raw)
    vs = [tapegrad.Variable(a, requires_grad=True) for a in raw]
    out = case.calls["tapegrad"](*vs)
    out.backward(tapegrad.Variable(np.ones(out.shape)))
    np.testing.assert_allclose(out.data, fwd, rtol=1e-12, atol=1e-12)
    assert len(grads) == len(vs)
    for v, g in zip(vs, grads):
        np.testing.assert_allclose(v.grad.data, g, rtol=1e-10, atol=1e-12)
    fn = bench.prepare(case, "numpy", 16, "float32", grad=True)  # the runner times it
    assert fn is not None and fn()[0].dtype == np.float32


def test_a_one_call_row_is_timed_as_the_call_itself():
    """The timing loop calls the row's function with its arguments directly (no wrapper frame:
    a `lambda: f(*args)` around it cost more than `v.item()` itself), once per iteration."""
    callers = []

    def f(a, b):
        callers.append((sys._getframe(1).f_code.co_name, a, b))
    loop, rest = bench.timing_loop(functools.partial(f, 1, 2))
    loop(3, *rest)
    assert callers == [("_loop2", 1, 2)] * 3
    assert bench.best_time(functools.partial(f, 1, 2), 1e-4, 2) > 0
    case = next(c for c in CASES if c.name == "v.item()")
    for lib in ("tapegrad", "torch", "numpy"):
        fn = bench.prepare(case, lib, 0, "float64", grad=False)
        assert isinstance(fn, functools.partial) and fn.func is case.calls[lib] and len(fn.args) == 1


def test_a_grad_row_is_timed_as_its_closure():
    case = next(c for c in CASES if c.name == "exp")
    fn = bench.prepare(case, "tapegrad", 16, "float64", grad=True)
    loop, rest = bench.timing_loop(fn)
    assert loop is bench._LOOPS[0] and rest == (fn,)


def test_rows_keep_the_measured_times_and_report_the_floor():
    """No floor is subtracted: the ratio is the two measured times; the floor is reported beside them."""
    case = next(c for c in CASES if c.name == "v.item()")
    (row,) = bench.run([case], (0,), ["float64"], ["eval"], [1], 1e-4, 1, progress=False)
    assert row["floor"] > 0 and row["tapegrad"] > 0 and row["torch"] > 0
    assert row["ratio"] == row["tapegrad"] / row["torch"]


def test_method_rows_call_the_method_as_written():
    """`v.exp()`'s row is `lambda x: x.exp()` on each side (no getattr call in the timed loop)."""
    for c in CASES:
        if c.kind == "method" and c.name == f"v.{c.op}()":
            for lib in ("tapegrad", "numpy") if c.op in ("sum", "mean", "max", "min") else ("tapegrad",):
                assert c.calls[lib].__code__.co_names == (c.op,), (c.name, lib)


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in ("op", "method") and c.op not in OPS],
                         ids=lambda c: f"{c.kind}:{c.name}")
def test_public_function_rows_agree_in_float32_at_1024(case):
    """The rows outside the spec at 1,024 elements in float32 (the domain keeps every value finite:
    arccosh > 1, log2 > 0, products near 1, ...)."""
    outs = {}
    for lib in ("tapegrad", "torch", "numpy"):
        fn = bench.prepare(case, lib, 1024, "float32", grad=False)
        if fn is not None:
            out = fn()
            out = out.detach().numpy() if lib == "torch" and hasattr(out, "detach") else out
            outs[lib] = np.asarray(out.data if lib == "tapegrad" and hasattr(out, "data") else out, dtype=float)
    assert np.all(np.isfinite(outs["tapegrad"]))
    for lib in set(outs) - {"tapegrad"}:
        np.testing.assert_allclose(outs["tapegrad"], outs[lib], rtol=2e-5, atol=2e-5, err_msg=lib)


def test_absolute_bars_are_checked():
    """Issue 17's absolute bars, besides the ratio: int and slice reads of <= 1,024 elements recorded
    (`record` mode: the read on inputs that require grad, no backward) <= 0.5 µs; list(v) of 25
    recorded <= 5 µs. A row meeting the ratio but not the bar fails, and the other way round."""
    by = {c.name: c for c in CASES}
    for name in ("v[3]", "v[-2]", "v[2:5]", "v[1:-1]", "v[::2]", "M[3]", "M[1, 2]", "M[1:3]"):
        assert "record" in by[name].modes
        for n in (16, 1024):
            assert bench.target_for(by[name], n, "record").startswith("<= 0.5 µs, ")
        assert "µs" not in bench.target_for(by[name], 1 << 20, "record")
        assert "µs" not in bench.target_for(by[name], 1024, "grad")
    assert "record" not in by["v[ints]"].modes and "record" not in by["M[mask]"].modes
    assert bench.target_for(by["list(v)"], 25, "grad") == "<= 5 µs, <= 1x torch"
    assert "µs" not in bench.target_for(by["list(v)"], 1024, "grad")
    row = {"target": "<= 0.5 µs, <= 0.3x torch", "tapegrad": 0.4e-6, "torch": 2e-6, "numpy": 1e-7}
    assert bench.passes(row)
    assert not bench.passes(dict(row, tapegrad=0.55e-6))  # ratio 0.28 holds, the bar does not
    assert not bench.passes(dict(row, torch=1e-6))  # the bar holds, ratio 0.4 does not
    assert bench.passes({"target": "<= 1x NumPy (no PyTorch twin)", "tapegrad": 1.0, "torch": None, "numpy": 1.1})
    assert not bench.passes({"target": "<= 1x NumPy (no PyTorch twin)", "tapegrad": 1.2, "torch": None, "numpy": 1.1})
    assert bench.target_for(by["cbrt"], 16, "grad") == "none (no PyTorch twin)"


def test_record_mode_records_without_backward():
    case = next(c for c in CASES if c.name == "v[3]")
    fn = bench.prepare(case, "tapegrad", 1024, "float64", grad=True, backward=False)
    out = fn()
    assert out.requires_grad and isinstance(fn, functools.partial)
    assert bench.prepare(case, "numpy", 1024, "float64", grad=True, backward=False) is None
    (row,) = bench.run([case], (16,), ["float64"], ["record"], [1], 1e-4, 1, progress=False)
    assert row["mode"] == "record" and row["target"].startswith("<= 0.5 µs")


def test_every_explained_row_exists_and_cites_a_measured_readme_section():
    """A bound in the op table's last column names rows that exist (a renamed row would lose it
    silently) and a benchmarks/README.md section (its `### <name>:` heading) where it is measured."""
    names = {c.name for c in CASES}
    with open(os.path.join(ROOT, "benchmarks", "README.md")) as f:
        headings = [line for line in f if line.startswith("#")]
    for m in bench.EXPLAINED:
        assert m.kind in ("bound", "open") and m.rows <= names, (m.rows - names, m.why)
        assert m.modes <= {"eval", "grad", "record"} and m.min_n in (0, *bench.SIZES), m
        assert m.dtypes <= {"float32", "float64"} and m.dtypes, m
        section = m.why.rsplit("(", 1)[1].rstrip(")")
        assert any(h.lstrip("# ").startswith(section + ":") for h in headings), section


def test_a_miss_shows_its_bound_or_says_it_is_not_explained():
    base = {"shapes": "(4,)", "dtype": "float64", "threads": 1, "tapegrad": 2e-6, "torch": 1e-6, "numpy": None,
            "ratio": 2.0, "ratio_np": None, "target": "<= 1x torch", "pass": False}
    rows = [dict(base, name="v.reshape(*square)", op="reshape", n=1 << 20, mode="grad"),
            dict(base, name="v.reshape(*square)", op="reshape", n=1024, mode="grad"),
            dict(base, name="exp", op="exp", n=16, mode="eval", ratio=0.1, tapegrad=1e-7, **{"pass": True})]
    lines = bench.table(rows).splitlines()[2:]
    big, small, met = (next(line for line in lines if f"| {size} |" in line) for size in ("1,048,576", "1,024", "16"))
    assert big.endswith("| bound: the one copy of the caller's seed into .grad; PyTorch adopts the seed itself "
                        "(h77-seedcopy) |") and small.endswith("| not explained |") and met.endswith("| yes |  |")
    assert bench.misses_summary(rows) == ("2 timings miss their target: 1 at a measured bound, 0 open (cause "
                                          "measured, fix not done; last column), 1 not explained.")


def _fake_case(name, tg, peer):
    """A synthetic 1,024-element row: tapegrad runs `tg`, PyTorch and NumPy `peer` (no real op timed)."""
    calls = {"tapegrad": lambda x: tg(), "torch": lambda x: peer(), "numpy": lambda x: peer()}
    return bench.Case(name, name, "op", lambda n, rng: [rng.uniform(-1, 1, n)], calls, sizes=(1024,),
                      modes=("eval",))


def test_the_confirmation_pass_re_times_misses_paired(monkeypatch, tmp_path):
    """A row the first pass misses only because of a slow spell (here: tapegrad sleeps 3 ms while
    `loaded` is set, during the main pass) meets once re-timed; a row that is really slow (tapegrad
    sleeps 2 ms, its peer does nothing) stays missed; a row that met is not re-timed. The sleeps set
    lower bounds, so no verdict depends on the machine's speed. The JSON keeps the first pass beside
    the paired fields; the table's cell reads "first -> paired"."""
    import time

    monkeypatch.setattr(bench, "CONFIRM_ROW_SECONDS", 0.3)  # (41 pairs, short calls: the test's time)
    loaded = [True]
    fast = _fake_case("fake-fast", lambda: time.sleep(3e-3) if loaded[0] else None, lambda: time.sleep(1e-3))
    slow = _fake_case("fake-slow", lambda: time.sleep(2e-3), lambda: None)
    meets = _fake_case("fake-meets", lambda: None, lambda: time.sleep(1e-3))
    monkeypatch.setattr(bench, "cases", lambda: [fast, slow, meets])
    real_confirm = bench.confirm

    def confirm(*a, **k):
        loaded[0] = False  # the slow spell is over when the confirmation pass starts
        return real_confirm(*a, **k)
    monkeypatch.setattr(bench, "confirm", confirm)
    out = tmp_path / "rows.json"
    bench.main(["--only", "fake-fast", "fake-slow", "fake-meets", "--sizes", "1024", "--dtypes", "float64",
                "--modes", "eval", "--threads", "1", "--min-time", "0.003", "--repeat", "2", "--json", str(out)])
    saved = json.loads(out.read_text())
    rows = {r["name"]: r for r in saved["rows"]}
    f, s, m = rows["fake-fast"], rows["fake-slow"], rows["fake-meets"]
    assert f["pass_first"] is False and f["pass"] is True and f["ratio"] > 1 and f["ratio_confirm"] < 1
    assert f["confirm_ref"] == "torch" and f["tapegrad_confirm"] < 1e-3 <= f["torch_confirm_best"] <= f["torch_confirm"]
    assert 0 <= f["tapegrad_confirm_cpu"] and 0 <= f["torch_confirm_cpu"] < 1e-3  # (a sleep costs no CPU)
    assert s["pass_first"] is False and s["pass"] is False and s["ratio_confirm"] > 1 and s["tapegrad_confirm"] >= 2e-3
    for r in (f, s):
        q1, q3 = r["ratio_confirm_iqr"]
        assert q1 <= r["ratio_confirm"] <= q3 and r["ratio_aa_iqr"][0] <= r["ratio_aa"] <= r["ratio_aa_iqr"][1]
        assert 41 <= r["confirm_pairs"] <= 61 and r["confirm_k"] >= 1 and r["confirm_seconds"] > 0
        assert r["ratio_confirm_cpu"] is not None and r["ratio_aa_cpu"] is not None  # (sleeps: ~no CPU)
    # (a no-op sets k, cut by the row's budget: the rounds' sleeps, 3 ms and 2 ms, fit in it)
    assert f["confirm_k"] * 3e-3 * f["confirm_pairs"] <= 0.3 and s["confirm_k"] * 2e-3 * s["confirm_pairs"] <= 0.3
    assert m["pass"] is True and "pass_first" not in m and "ratio_confirm" not in m and "ratio_aa" not in m
    assert "3 timings (2 meet their target)" in saved["header"]
    assert "the 2 timings the first pass missed were re-timed paired" in saved["header"]
    assert "1 met, 1 stayed missed" in saved["header"]
    lines = bench.table(saved["rows"]).splitlines()
    fl, sl = (next(line for line in lines if f"`{n}`" in line) for n in ("fake-fast", "fake-slow"))
    assert f"| {f['ratio']:.2f} -> {f['ratio_confirm']:.2f} paired |" in fl and fl.endswith("| yes |  |")
    assert " paired |" in sl and sl.endswith("| **no** | not explained |")
    assert "A/A" in bench.fmt_line(s) and "paired" in bench.fmt_line(s)


def test_no_confirm_skips_the_pass(monkeypatch, tmp_path):
    import time

    slow = _fake_case("fake-slow", lambda: time.sleep(1e-3), lambda: None)
    monkeypatch.setattr(bench, "cases", lambda: [slow])
    out = tmp_path / "rows.json"
    bench.main(["--only", "fake-slow", "--sizes", "1024", "--dtypes", "float64", "--modes", "eval",
                "--threads", "1", "--min-time", "0.002", "--repeat", "1", "--json", str(out), "--no-confirm"])
    saved = json.loads(out.read_text())
    (row,) = saved["rows"]
    assert row["pass"] is False and "ratio_confirm" not in row and "Confirmation pass" not in saved["header"]


def test_a_bar_only_or_numpy_target_is_confirmed_against_its_own_system():
    assert bench.reference_lib("<= 1x torch") == "torch"
    assert bench.reference_lib("<= 0.5 µs, <= 0.3x torch") == "torch"
    assert bench.reference_lib("BLAS: <= 1.05x NumPy") == "numpy"
    assert bench.reference_lib("<= 1x NumPy (no PyTorch twin)") == "numpy"
    assert bench.reference_lib("none (no PyTorch twin)") is None
    row = {"name": "x", "n": 16, "dtype": "float64", "threads": 1, "tapegrad": 2.0, "torch": 1.0, "numpy": 1.0,
           "ratio": 2.0, "ratio_np": 1.1, "pass_first": False, "confirm_ref": "numpy", "tapegrad_confirm": 1.0,
           "numpy_confirm": 1.0, "ratio_confirm": 1.0}
    assert bench.confirm_cell(row) == "tg/np 1.10 -> 1.00 confirmed"  # (an earlier JSON's best-of pass)
    paired = dict(row, ratio_aa=1.0, ratio_aa_iqr=[0.98, 1.02], ratio_confirm_iqr=[0.95, 1.05])
    assert bench.confirm_cell(paired) == "tg/np 1.10 -> 1.00 paired"
    assert bench.confirm_cell(dict(paired, confirm_ref="torch")) == "2.00 -> 1.00 paired"
    assert bench.confirm_cell(dict(paired, confirm_ref=None, ratio_confirm=None, tapegrad_confirm=9e-7,
                                   tapegrad_confirm_best=4e-7)) == "tg 2000000 -> 0.40 µs paired"
    assert bench.passes({"target": "<= 1x torch", "tapegrad": 2.0, "torch": 1.0}, ratio=0.97)
    assert not bench.passes({"target": "<= 1x torch", "tapegrad": 0.5, "torch": 1.0}, ratio=1.03)
    assert not bench.passes({"target": "<= 0.5 µs, <= 0.3x torch", "tapegrad": 6e-7, "torch": 1.0}, ratio=0.1)


class FakeClock:
    """A clock that moves only when a fake row runs: row `name` costs `cost[name]` seconds times the
    load at that moment. `load(i)` gives the slowdown of the i-th call: slow spells span several calls,
    as a preemption or a neighbour's burst does on the shared machine."""

    def __init__(self, cost, load=lambda i: 1.0):
        self.now, self.calls, self.cost, self.load, self.log = 0.0, 0, cost, load, []

    def __call__(self):
        return self.now

    def row(self, name):
        def run():
            self.now += self.cost[name] * self.load(self.calls)
            self.calls += 1
            self.log.append(name)
        return run


def _spells(i):
    """Calls 40-99 run at a third of the speed, every 7th call and the 200th-219th 5x slower."""
    return (3.0 if 40 <= i < 100 else 1.0) * (5.0 if i % 7 == 3 or 200 <= i < 220 else 1.0)


def test_paired_times_swap_the_order_and_take_per_pair_ratios():
    clk = FakeClock({"tg": 1.2e-3, "torch": 1e-3, "torch2": 1e-3, "torch3": 1e-3}, _spells)
    t = bench.paired_times(clk.row("tg"), clk.row("torch"), clk.row("torch2"), clk.row("torch3"), 61, clk, clk)
    # (each called once a round, so no side's data is warmer in the cache: reused 4 calls later)
    assert clk.log[:8] == ["tg", "torch", "torch2", "torch3", "torch", "tg", "torch3", "torch2"]
    assert len(t["ab"]) == len(t["aa"]) == 61 and len(clk.log) == 4 * 61
    q1, med, q3 = bench.quartiles(t["ab"])
    assert med == pytest.approx(1.2) and q1 < 1.2 + 1e-9 and q3 > 1.2 - 1e-9  # (spells and spikes: at the tails)
    assert bench.quartiles(t["aa"])[1] == pytest.approx(1.0)
    assert min(t["ab"]) < 0.5 and max(t["ab"]) > 3  # (pairs a spike hit on one side only)
    # What the best-of-interleaved-loops pass saw on this trace: the minima, right here only because the
    # fake load leaves calls at full speed; the per-pair median needs no unloaded call at all.
    assert min(t["a"]) / min(t["b"]) == pytest.approx(1.2)


def test_the_paired_median_holds_where_no_call_runs_at_full_speed():
    """Load that never lets up and varies from spell to spell (1.05x-2.05x, spells of 3 calls, so
    some pairs straddle two spells): the per-pair median is the cost ratio, the A/A median 1."""
    def load(i):
        return 1.0 + ((i // 3) * 37 % 11) / 10 + 0.05
    clk = FakeClock({"tg": 0.9e-3, "torch": 1e-3, "torch2": 1e-3, "torch3": 1e-3}, load)
    t = bench.paired_times(clk.row("tg"), clk.row("torch"), clk.row("torch2"), clk.row("torch3"), 41, clk, clk)
    assert bench.quartiles(t["ab"])[1] == pytest.approx(0.9, rel=0.02)
    assert bench.quartiles(t["aa"])[1] == pytest.approx(1.0, rel=0.02)


def test_paired_confirm_calibrates_calls_and_bounds_the_row(monkeypatch):
    clk = FakeClock({"tapegrad": 3e-5, "torch": 2.5e-5, "aa": 2.5e-5, "aa2": 2.5e-5})
    fns = {lib: clk.row(lib) for lib in ("tapegrad", "torch", "aa", "aa2")}
    res = bench.paired_confirm(fns, {"tapegrad": 4e-5, "torch": 2.5e-5}, clk, clk)
    # k: 10 ms over the faster side's call (2.5e-5 s), the same on both sides; 61 pairs within 6 s
    k = res["confirm_k"]
    assert k in (400, 401) and res["confirm_pairs"] == 61  # (401: the fake clock's sums round 2.5e-5 down)
    assert res["ratio"] == pytest.approx(1.2) and res["ratio_iqr"] == pytest.approx([1.2, 1.2])
    assert res["ratio_aa"] == pytest.approx(1.0) and res["ratio_aa_iqr"] == pytest.approx([1.0, 1.0])
    assert res["ratio_cpu"] == pytest.approx(1.2) and res["ratio_aa_cpu"] == pytest.approx(1.0)  # (the fake clock's)
    assert res["tapegrad"] == pytest.approx(3e-5) and res["torch"] == pytest.approx(2.5e-5)
    assert res["tapegrad_best"] == pytest.approx(3e-5) and res["torch_best"] == pytest.approx(2.5e-5)
    assert res["confirm_seconds"] == pytest.approx(61 * k * (3e-5 + 3 * 2.5e-5))
    # a slow row: 61 rounds would overrun the budget, 41 at the least
    clk = FakeClock({"tapegrad": 0.05, "torch": 0.04, "aa": 0.04, "aa2": 0.04})
    res = bench.paired_confirm({lib: clk.row(lib) for lib in ("tapegrad", "torch", "aa", "aa2")}, {}, clk, clk)
    assert res["confirm_k"] == 1 and res["confirm_pairs"] == 41 and res["ratio"] == pytest.approx(1.25)
    # one side 1,000x the other: k cut so that 41 rounds fit the budget (the verdict is not close)
    clk = FakeClock({"tapegrad": 5e-4, "torch": 5e-7, "aa": 5e-7, "aa2": 5e-7})
    res = bench.paired_confirm({lib: clk.row(lib) for lib in ("tapegrad", "torch", "aa", "aa2")}, {}, clk, clk)
    assert res["confirm_k"] == int(6.0 / (41 * (5e-4 + 3 * 5e-7))) and res["ratio"] == pytest.approx(1000)
    assert res["confirm_seconds"] <= bench.CONFIRM_ROW_SECONDS
    # a bar-only target: tapegrad against its own second copy, no ratio
    clk = FakeClock({"tapegrad": 3e-7, "aa": 3e-7, "aa2": 3e-7})
    res = bench.paired_confirm({lib: clk.row(lib) for lib in ("tapegrad", "aa", "aa2")}, {}, clk, clk)
    assert res["ratio"] is None and res["tapegrad_best"] == pytest.approx(3e-7, rel=1e-6)
    assert res["confirm_k"] in (33333, 33334)  # 10 ms / 0.3 us


def test_paired_confirm_takes_longer_calls_at_two_threads():
    """call_seconds (the threaded rows' 20 ms) sets k: k calls of the faster side last >= it."""
    clk = FakeClock({"tapegrad": 3e-4, "torch": 2.5e-4, "aa": 2.5e-4, "aa2": 2.5e-4})
    fns = {lib: clk.row(lib) for lib in ("tapegrad", "torch", "aa", "aa2")}
    short = bench.paired_confirm(fns, {"tapegrad": 3e-4, "torch": 2.5e-4}, clk, clk)
    long = bench.paired_confirm(fns, {"tapegrad": 3e-4, "torch": 2.5e-4}, clk, clk,
                                call_seconds=bench.CONFIRM_CALL_SECONDS_THREADED)
    assert short["confirm_k"] in (40, 41) and long["confirm_k"] in (80, 81)  # 10 ms, 20 ms / 0.25 ms
    assert long["ratio"] == pytest.approx(1.2) and long["confirm_seconds"] <= bench.CONFIRM_ROW_SECONDS


def test_paired_confirm_warms_each_side_up_at_two_threads():
    """A call right after the other library's runs 1.5x slower (its neighbour's spinning worker, a cold
    cache): without a warm-up the pairs charge that to whichever side is slower to recover; with
    warm_seconds each timed call follows an untimed call of its own row and the ratio is the cost ratio."""
    class ColdAfterOther(FakeClock):
        def row(self, name):
            lib = name.rstrip("2") if name.startswith("aa") else name
            def run():
                cold = self.log and self.log[-1] != lib and lib == "tapegrad"
                self.now += self.cost[name] * (1.5 if cold else 1.0)
                self.log.append(lib)
            return run
    clk = ColdAfterOther({"tapegrad": 3e-4, "torch": 3.3e-4, "aa": 3.3e-4, "aa2": 3.3e-4})
    fns = {lib: clk.row(lib) for lib in ("tapegrad", "torch", "aa", "aa2")}
    cold = bench.paired_confirm(fns, {"tapegrad": 3e-4, "torch": 3.3e-4}, clk, clk, call_seconds=3e-4)
    assert cold["confirm_k"] == 1 and cold["ratio"] == pytest.approx(1.5 * 3 / 3.3)
    clk.log.clear()
    warm = bench.paired_confirm(fns, {"tapegrad": 3e-4, "torch": 3.3e-4}, clk, clk, call_seconds=3e-4,
                                warm_seconds=bench.CONFIRM_WARM_SECONDS_THREADED)
    assert warm["ratio"] == pytest.approx(3 / 3.3) and warm["ratio_aa"] == pytest.approx(1.0)
    # (the warm-up calls are untimed: the per-call medians are the row's own costs)
    assert warm["tapegrad"] == pytest.approx(3e-4) and warm["torch"] == pytest.approx(3.3e-4)
    assert warm["confirm_seconds"] == pytest.approx(warm["confirm_pairs"] * (3e-4 + 3 * 3.3e-4))


def test_recheck_re_times_an_earlier_runs_misses(monkeypatch, tmp_path):
    """--recheck FILE: only the confirmation pass, on FILE's missed rows (filtered; --unexplained drops
    those EXPLAINED covers), the first-pass figures FILE's."""
    import time

    monkeypatch.setattr(bench, "CONFIRM_ROW_SECONDS", 0.2)
    slow = _fake_case("fake-slow", lambda: time.sleep(1e-3), lambda: None)
    monkeypatch.setattr(bench, "cases", lambda: [slow])
    base = {"name": "fake-slow", "op": "fake-slow", "kind": "op", "n": 1024, "shapes": "(1024,)", "dtype": "float64",
            "mode": "eval", "threads": 1, "tapegrad": 2e-3, "torch": 1e-3, "numpy": 1e-3, "floor": 3e-8,
            "target": "<= 1x torch", "ratio": 2.0, "ratio_np": 2.0, "pass": False, "confirm_ref": "torch",
            "tapegrad_confirm": 1.9e-3, "torch_confirm": 1e-3, "ratio_confirm": 1.9, "pass_first": False}
    explained = dict(base, name="positive", op="positive")
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps({"header": "", "rows": [base, dict(base, dtype="float32"), dict(base, **{"pass": True}),
                                                        explained]}))
    rows = bench.recheck_rows(json.loads(saved.read_text())["rows"], unexplained=True)
    assert [r["dtype"] for r in rows] == ["float64", "float32"] and rows[0]["ratio_confirm_earlier"] == 1.9
    assert "tapegrad_confirm" not in rows[0] and "pass_first" not in rows[0]
    assert len(bench.recheck_rows(json.loads(saved.read_text())["rows"])) == 3
    out = tmp_path / "new.json"
    bench.main(["--recheck", str(saved), "--unexplained", "--dtypes", "float64", "--json", str(out)])
    new = json.loads(out.read_text())
    (row,) = new["rows"]
    assert row["pass_first"] is False and row["pass"] is False and row["ratio"] == 2.0 and row["ratio_confirm"] > 1
    assert "1 missed timings of" in new["header"] and "0 met, 1 stayed missed" in new["header"]
