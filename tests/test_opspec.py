"""The op spec (opspec/ops.py, exposed as tapegrad._core.__ops__) drives the
op surface: every op is checked here on both engines and against finite
differences, and the parity test fails when any place that must know an op
(Variable methods, the reference engine, the symbolic engine, the docs, the
tests' cases) is missing one."""
import inspect
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import symbolic

import op_cases
from op_cases import CASES, SPEC, case, draw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "API.md")


# ----- parity: every place that must know an op knows it ---------------------------------

def parity_problems(spec, *, tapegrad=tg, reference=tg.reference, sym=symbolic, docs_text=None, cases=None):
    """(op, place) pairs where an op of `spec` is missing."""
    if docs_text is None:
        with open(DOCS, encoding="utf-8") as f:
            docs_text = f.read()
    cases = CASES if cases is None else cases
    missing = []
    for name, op in spec.items():
        places = {
            "tapegrad function": hasattr(tapegrad, name),
            "reference function": hasattr(reference, name),
            "symbolic function": hasattr(sym, name),
            "docs/API.md op table": f"| `{name}(" in docs_text,
            "tests/op_cases.py": name in cases or op["family"] == "elementwise",
        }
        if op["method"]:
            places["Variable method"] = hasattr(tapegrad.Variable, name)
            places["reference Variable method"] = hasattr(reference.Variable, name)
            places["symbolic SymArray method"] = hasattr(sym.SymArray, name)
        missing += [(name, place) for place, ok in places.items() if not ok]
    return missing


def test_every_place_knows_every_op():
    assert parity_problems(SPEC) == []


def test_parity_check_fails_for_an_op_missing_anywhere():
    # A test of the test: an op the spec declares but nothing implements is
    # reported in every place, and one place missing alone is reported alone.
    fake = dict(SPEC)
    fake["softplus_missing"] = dict(SPEC["tanh"], name="softplus_missing")
    problems = parity_problems(fake)
    assert {place for op, place in problems if op == "softplus_missing"} == {
        "tapegrad function", "reference function", "symbolic function", "docs/API.md op table",
        "Variable method", "reference Variable method", "symbolic SymArray method"}
    assert all(op == "softplus_missing" for op, _ in problems)

    class NoSum:  # the reference engine without `sum`
        Variable = tg.reference.Variable

        def __getattr__(self, name):
            if name == "sum":
                raise AttributeError(name)
            return getattr(tg.reference, name)
    assert parity_problems(SPEC, reference=NoSum()) == [("sum", "reference function")]
    assert parity_problems(SPEC, cases={k: v for k, v in CASES.items() if k != "matmul"}) == [
        ("matmul", "tests/op_cases.py")]


def test_op_cases_extra_table_names_only_spec_ops():
    # EXTRA (tests/op_cases.py) is optional per op: an op needs an entry only for data the spec
    # cannot give. A stale entry (an op no longer in the spec, an unknown field) fails here.
    assert set(op_cases.EXTRA) <= set(SPEC)
    for name, entry in op_cases.EXTRA.items():
        assert set(entry) <= {"numpy", "ties", "f32_ulp"}, name
        assert "ties" not in entry or name in op_cases.BINARY, name


def test_op_lists_come_from_the_spec():
    assert op_cases.ELEMENTWISE == [n for n, op in SPEC.items() if op["family"] == "elementwise"]
    assert set(op_cases.BINARY) <= {n for n, op in SPEC.items() if op["family"] == "binary"}
    assert set(op_cases.SMOOTH) <= set(op_cases.ELEMENTWISE)
    assert set(op_cases.METHODS) == {n for n in op_cases.ELEMENTWISE if SPEC[n]["method"]}
    for name in op_cases.ELEMENTWISE:
        assert op_cases.sample_domain(name) in ("normal", "awayzero", "positive") or \
            isinstance(op_cases.sample_domain(name), tuple), name


@pytest.mark.parametrize("name", op_cases.ELEMENTWISE)
def test_spec_derivative_matches_finite_differences_of_the_oracle(name):
    # What the tests compare elementwise ops with: the oracle (NumPy, EXTRA, else the reference
    # engine) and the spec's `deriv` evaluated in NumPy, which must agree with each other.
    x = draw(np.random.default_rng(5), (7,), op_cases.domain(name))
    if op_cases.kinked(name):
        x = np.where(np.abs(x) < 0.2, 0.5, x)
    f, df = op_cases.oracle(name), op_cases.spec_derivative(name)
    eps = 1e-6
    np.testing.assert_allclose(df(x), (f(x + eps) - f(x - eps)) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_docs_op_tables_are_current():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "opspec", "generate.py"), "--check-docs"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_python_face_exports_every_spec_op_from_core():
    for name in SPEC:
        assert getattr(tg, name) is getattr(tg._core, name), name


# ----- signatures come from the spec ------------------------------------------------------

def _spec_params(args):
    out = []
    for a in args:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        name = a["name"] if isinstance(a, dict) else a
        out.append((name, a["default"] if isinstance(a, dict) and not a["required"] else inspect.Parameter.empty))
    return out


@pytest.mark.parametrize("name", sorted(SPEC))
def test_function_signature_matches_spec(name):
    sig = inspect.signature(getattr(tg, name))
    got = [(p.name, p.default) for p in sig.parameters.values()]
    assert got == _spec_params(SPEC[name]["args"])
    assert getattr(tg, name).__doc__.strip().endswith(SPEC[name]["doc"])


@pytest.mark.parametrize("name", sorted(n for n in SPEC if SPEC[n]["method"]))
def test_method_signature_matches_spec(name):
    method = getattr(tg.Variable(np.ones(3)), name)
    got = [("*" + p.name if p.kind == p.VAR_POSITIONAL else p.name, p.default)
           for p in inspect.signature(method).parameters.values()]
    want = inspect.signature(eval("lambda " + SPEC[name]["method"][1:-1] + ": 0"))  # noqa: S307 (the spec's own text)
    want = [("*" + p.name if p.kind == p.VAR_POSITIONAL else p.name, p.default)
            for p in list(want.parameters.values())[1:]]
    assert got == want


def _spec_compositions():
    """opspec/ops.py's COMPOSITIONS (the fields the core's __compositions__ does not carry)."""
    if ROOT not in sys.path:
        sys.path.append(ROOT)
    from opspec.ops import COMPOSITIONS
    return {c.name: c for c in COMPOSITIONS}


def test_composition_c_methods_are_declared():
    # A composition method implemented in C (positional-only self) declares c_method, so that the stub
    # (opspec/stubs.py) says `self, /` and stubtest passes; the others are the function with x as self.
    spec = _spec_compositions()
    for name, c in spec.items():
        if c.method:
            is_c = isinstance(vars(tg.Variable)[name], types.MethodDescriptorType)
            assert is_c == c.c_method, (name, is_c)
            first = next(iter(inspect.signature(vars(tg.Variable)[name]).parameters.values()))
            assert (first.name, first.kind == first.POSITIONAL_ONLY) == (("self", True) if is_c else (c.args[0].name, False))


def _bypassed_compositions():
    """The compositions whose Python body the C++ engine does not run: python/tapegrad/_compose.py takes a
    core function _<name> instead, h96-small's _core._fast table, or (einsum) _core._einsum_run."""
    core = tg._core
    names = {n for n in core.__compositions__ if hasattr(core, "_" + n)} | set(core._fast)
    return names | ({"einsum"} if hasattr(core, "_einsum_run") else set())


def _defines(text, name):
    """A definition (a line from column 0, not a comment) of a C++ function named after the composition:
    `Var dot(`, `pad_body(`, `atleast_1d_fn(`, `TG_SMALL_FN(norm)`, `TG_CLASSIFY_BODY(_isnan, ...)`."""
    return re.search(rf"(?m)^[A-Za-z][^\n]*\b_?{name}(?:_[a-z]+)?\s*[(),]", text) is not None


def test_compositions_with_a_cpp_body_say_where():
    spec = _spec_compositions()
    declared = {n for n, c in spec.items() if c.cpp}
    assert sorted(_bypassed_compositions() - declared) == [], "bypassed by C++ but no cpp= in opspec/ops.py"
    assert sorted(declared - _bypassed_compositions()) == [], "cpp= declared but the Python body runs"
    for name in sorted(declared):
        path = os.path.join(ROOT, spec[name].cpp)
        assert os.path.isfile(path), (name, spec[name].cpp)
        with open(path, encoding="utf-8") as f:
            assert _defines(f.read(), name), f"{spec[name].cpp} defines no function {name}"
    assert not _defines("// Var dot(a, b) in a comment\n  dot(a, b);  // a call\n", "dot")
    assert not _defines("Var vdot(const Var& a);\n", "dot")


# ----- every op: C++ engine vs reference vs finite differences -----------------------------

def _inputs(name, seed, dtype=np.float64):
    shapes, domains, call = case(name)
    rng = np.random.default_rng(seed)
    return [draw(rng, s, d, dtype) for s, d in zip(shapes, domains)], call


def _run(m, call, arrays, weights):
    xs = [m.Variable(a, requires_grad=True) for a in arrays]
    out = call(m, *xs)
    (out * weights).sum().backward() if weights.shape else (out * weights).backward()
    return out.numpy() if hasattr(out, "numpy") else np.asarray(out.data), [x.grad for x in xs]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(SPEC))
def test_op_matches_reference(name, dtype):
    arrays, call = _inputs(name, 1, dtype)
    probe = call(tg, *[tg.Variable(a) for a in arrays])
    weights = np.random.default_rng(2).uniform(0.5, 1.5, probe.shape).astype(dtype)
    y, grads = _run(tg, call, arrays, weights)
    ry, rgrads = _run(tg.reference, call, arrays, weights)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    assert y.dtype == ry.dtype == probe.dtype
    np.testing.assert_allclose(y, ry, rtol=rtol, atol=rtol)
    for g, rg in zip(grads, rgrads):
        assert g.dtype == rg.dtype
        np.testing.assert_allclose(g, rg, rtol=rtol * 10, atol=rtol * 10)
    # forward mode: the JVP along random tangents, both engines
    rng = np.random.default_rng(3)
    tangents = tuple(rng.standard_normal(a.shape).astype(dtype) for a in arrays)
    _, t = tg.jvp(lambda *xs: call(tg, *xs), tuple(arrays), tangents)
    _, rt = tg.reference.jvp(lambda *xs: call(tg.reference, *xs), tuple(arrays), tangents)
    np.testing.assert_allclose(np.asarray(t), np.asarray(rt), rtol=rtol * 10, atol=rtol * 10)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_op_matches_finite_differences(name):
    arrays, call = _inputs(name, 4)
    order = 1 if SPEC[name]["family"] in ("shape",) or SPEC[name]["deriv"] == "linear" else 2
    tg.gradcheck(lambda *xs: call(tg, *xs), tuple(arrays), order=order)
