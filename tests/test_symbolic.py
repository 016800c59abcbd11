"""tapegrad.symbolic: functions on SymPy symbols, exact derivatives, expression swell.

* to_sympy gives the expected expressions; every engine op runs on symbols;
* the op tables (UNARY_OPS, BINARY_OPS) cover the engines' elementwise ops, as
  functions, Variable methods and operators, with the engines' values and
  derivatives;
* symbolic gradients and Jacobians (sympy.diff, lambdify) equal AD at random
  points, for functions written once for the three engines;
* swell_report: the symbolic derivative grows faster than the tape;
* SymPy is imported only when tapegrad.symbolic is used.
"""
import operator
import subprocess
import sys
import textwrap

import numpy as np
import pytest

sympy = pytest.importorskip("sympy")

import op_cases  # noqa: E402
import tapegrad as tg  # noqa: E402
from tapegrad import symbolic  # noqa: E402


def test_to_sympy_expressions():
    x0, x1 = sympy.symbols("x_0 x_1", real=True)
    sf = symbolic.to_sympy(lambda engine, x: engine.sum(engine.tanh(x) * x), (2,))
    assert sf.expr == x0 * sympy.tanh(x0) + x1 * sympy.tanh(x1)
    assert sf.symbols[0].shape == (2,)

    x, y = sympy.symbols("x y", real=True)
    sf = symbolic.to_sympy(lambda engine, a, b: engine.exp(a) * engine.sigmoid(b) + a ** 2, (), ())
    assert sympy.simplify(sf.expr - (sympy.exp(x) / (1 + sympy.exp(-y)) + x ** 2)) == 0

    # matrices: names x_i_j, output shape kept
    sf = symbolic.to_sympy(lambda engine, a, w: a @ w, (2, 3), 3)
    assert sf.shape == (2,)
    assert str(sf.output[1]) == "x_1_0*y_0 + x_1_1*y_1 + x_1_2*y_2"
    assert sf(np.arange(6.0).reshape(2, 3), np.ones(3)).tolist() == [3.0, 12.0]


def test_plain_functions_with_operators_and_methods():
    sf = symbolic.to_sympy(lambda x, w: ((x @ w).tanh() * 2 - 1).sum(), (3, 2), (2,), names=["a", "b"])
    assert {s.name for s in sf.expr.free_symbols} == {"a_0_0", "a_0_1", "a_1_0", "a_1_1", "a_2_0", "a_2_1",
                                                       "b_0", "b_1"}
    # NumPy arrays on the left work too (NumPy defers to SymArray)
    A = np.array([[1.0, 2.0], [0.5, -1.0]])
    sf = symbolic.to_sympy(lambda x: A @ x + np.ones(2), (2,))
    x0, x1 = sympy.symbols("x_0 x_1", real=True)
    assert sf.output[0] == x0 + 2 * x1 + 1


def test_tapegrad_functions_on_symbols_explain_the_engine_convention():
    with pytest.raises(TypeError, match="write it as f\\(engine, \\*xs\\)"):
        symbolic.to_sympy(lambda x: tg.exp(x), (2,))


# Functions written once for every engine, covering every op of docs/API.md.
A = np.array([[0.5, -1.0, 0.25], [1.5, 0.75, -0.5]])


def f_elementwise(engine, x, y):
    z = engine.exp(x) * engine.sin(y) - engine.cos(x) / (2 + engine.tanh(y))
    z = z + engine.log(1 + x * x) + engine.log1p(y * y) + engine.sqrt(2 + x) + engine.sigmoid(x - y)
    return z + engine.power(engine.abs(y) + 1, x) + (-x) ** 2 + engine.subtract(x, y) + engine.divide(x, 3.0)


def f_kinks(engine, x, y):
    return (engine.relu(x) + engine.maximum(x, y) + engine.minimum(x, 0.5 * y) + engine.clip(y, -0.5, 0.5)
            + engine.where(np.array([True, False, True]), x, y))


def f_reductions(engine, x, y):
    m = engine.reshape(engine.concatenate([x, y], axis=0), (2, 3))
    return (engine.sum(m, axis=0) * engine.mean(m, axis=1, keepdims=True) + engine.max(m, axis=1, keepdims=True)
            - engine.min(m))


def f_shapes(engine, x, y):
    m = engine.stack([x, y, x * y], axis=1)  # (3, 3)
    t = engine.transpose(m) @ engine.broadcast_to(x, (3, 3)).T
    return t[1:, [0, 2]] * A[:, :2].T + engine.astype(m[0, :2], np.float64)


def f_normalizers(engine, x, y):
    m = engine.stack([x, y], axis=0) @ A.T  # (2, 2)
    return engine.softmax(m, axis=0) + engine.log_softmax(m) + engine.logsumexp(m, axis=1, keepdims=True)


def f_mlp(engine, x, y):
    h = engine.tanh(A @ x + y[:2])
    return engine.logsumexp(h * y[2]) + engine.sum(h * h)


FUNCTIONS = [f_elementwise, f_kinks, f_reductions, f_shapes, f_normalizers, f_mlp]


def points(seed):
    rng = np.random.default_rng(seed)
    # away from the kinks of relu/abs/max/min/clip
    x = rng.uniform(0.2, 1.5, 3) * rng.choice([-1.0, 1.0], 3)
    y = rng.uniform(0.6, 1.4, 3) * rng.choice([-1.0, 1.0], 3)
    return x, y


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_symbolic_jacobian_equals_ad_at_random_points(fn):
    jac = symbolic.symbolic_jacobian(fn, (3,), (3,))
    for seed in range(3):
        x, y = points(seed)
        value = tg.jvp(lambda a, b: fn(tg, a, b), (x, y), (x, y))[0]
        np.testing.assert_allclose(jac.function(x, y), value, rtol=1e-12, atol=1e-12)
        jx, jy = jac(x, y)
        for mode in ("forward", "reverse"):
            ax, ay = tg.jacobian(lambda a, b: fn(tg, a, b), (x, y), mode=mode)
            np.testing.assert_allclose(jx, ax, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(jy, ay, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn", [f_mlp, f_normalizers], ids=lambda f: f.__name__)
def test_symbolic_gradient_equals_ad_on_both_engines(fn):
    def loss(engine, x, y):
        return engine.sum(fn(engine, x, y) * np.arange(1.0, 1.0 + fn(tg, tg.Variable(x0), tg.Variable(y0)).size)
                          .reshape(fn(tg, tg.Variable(x0), tg.Variable(y0)).shape))

    x0, y0 = points(7)
    g = symbolic.symbolic_gradient(loss, (3,), (3,))
    assert g.exprs[0].shape == (3,) and g.exprs[1].shape == (3,)
    for seed in range(3):
        x, y = points(seed)
        sx, sy = g(x, y)
        for engine in (tg, tg.reference):
            ex, ey = engine.grad(lambda a, b: loss(engine, a, b), argnums=(0, 1))(x, y)
            np.testing.assert_allclose(sx, ex, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(sy, ey, rtol=1e-10, atol=1e-12)


def test_symbolic_gradient_of_matrix_input_and_simplify():
    g = symbolic.symbolic_gradient(lambda engine, w: engine.sum(engine.sin(w) ** 2 + engine.cos(w) ** 2), (2, 2),
                                   simplify=True)
    assert all(e == 0 for e in g.exprs[0].reshape(-1))  # sin² + cos² = 1
    np.testing.assert_array_equal(g(np.ones((2, 2))), np.zeros((2, 2)))


def test_symbolic_errors():
    with pytest.raises(ValueError, match="symbolic_gradient: f must return one element"):
        symbolic.symbolic_gradient(lambda engine, x: x * 2, (2,))
    with pytest.raises(ValueError, match="one shape per input"):
        symbolic.to_sympy(lambda engine, x: x)
    with pytest.raises(ValueError, match="2 names for 1 shapes"):
        symbolic.to_sympy(lambda engine, x: x, (2,), names=["a", "b"])
    jac = symbolic.symbolic_jacobian(lambda engine, x: x * 2, (2,))
    with pytest.raises(ValueError, match="shape \\(3,\\) but its symbols have shape \\(2,\\)"):
        jac(np.ones(3))
    with pytest.raises(ValueError, match="unknown layer"):
        symbolic.swell_report("nope", 2)


def test_three_engines_agree_on_values():
    x, y = points(11)
    for fn in FUNCTIONS:
        sym = symbolic.to_sympy(fn, (3,), (3,))(x, y)
        for engine in (tg, tg.reference):
            with engine.no_grad():
                out = fn(engine, engine.Variable(x), engine.Variable(y))
            np.testing.assert_allclose(sym, np.asarray(out.data), rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------------------
# The op tables: every elementwise op as a function, a method and an operator
# ---------------------------------------------------------------------------

# the derivative operators of the engines; every other public name of both engines is an op
TRANSFORMS = {"Node", "custom_op", "jvp", "vjp", "grad", "value_and_grad", "jacobian", "hessian", "hvp",
              "directional_derivative",
              "detect_anomaly", "is_anomaly_enabled"}  # (and the engines' NaN checks: no symbolic meaning)


def test_op_tables_cover_the_engines():
    assert set(symbolic.UNARY_OPS) >= set(op_cases.ELEMENTWISE)
    assert set(symbolic.BINARY_OPS) >= set(op_cases.BINARY)
    for name in [*symbolic.UNARY_OPS, *symbolic.BINARY_OPS]:
        fn = getattr(symbolic, name)
        assert fn.__name__ == name and name in symbolic.__all__
        assert callable(getattr(tg, name)) and callable(getattr(tg.reference, name))
    # every op and composition of tapegrad (and of the reference engine) has a symbolic version
    for name in set(dir(tg)) & set(tg.reference.__all__) - TRANSFORMS - {"COMPOSITIONS"}:
        assert name in symbolic.__all__ and callable(getattr(symbolic, name)), name
    assert sorted(symbolic.COMPOSITIONS) == sorted(tg._core.__compositions__) == sorted(tg.reference.COMPOSITIONS)
    # the methods are those of the reference engine's Variable
    assert set(symbolic.UNARY_METHODS) == {n for n in symbolic.UNARY_OPS if hasattr(tg.reference.Variable, n)}
    for name in symbolic.UNARY_METHODS:
        assert getattr(symbolic.SymArray, name) is getattr(symbolic, name)
    assert not hasattr(symbolic.SymArray, "negative")


def unary_input(name, seed):
    """On the op's spec domain; real inputs with 0.2 <= |x| <= 1.5, away from the kinks of relu and abs."""
    rng = np.random.default_rng([seed, len(name)])
    if name in op_cases.SPEC and op_cases.domain(name) not in ("real", "nonzero"):
        lo, hi, _ = op_cases.bounds(name, positive=(0.2, 3.0))
        return rng.uniform(lo, hi, 4)
    return rng.uniform(0.2, 1.5, 4) * rng.choice([-1.0, 1.0], 4)


@pytest.mark.parametrize("name", list(symbolic.UNARY_OPS))
def test_unary_op_values_and_derivatives(name):
    jac = symbolic.symbolic_jacobian(lambda engine, x: getattr(engine, name)(x), (4,))
    ref_fn = getattr(tg.reference, name)
    for seed in range(2):
        x = unary_input(name, seed)
        value, (J,) = jac.function(x), (jac(x),)
        assert J.shape == (4, 4) and np.count_nonzero(J - np.diag(np.diag(J))) == 0  # elementwise
        for engine in (tg, tg.reference):
            fn = getattr(engine, name)
            with engine.no_grad():
                np.testing.assert_allclose(value, np.asarray(fn(engine.Variable(x)).data), rtol=1e-14, atol=1e-15)
            np.testing.assert_allclose(J, engine.jacobian(fn, x), rtol=1e-13, atol=1e-15)
        if op_cases.piecewise_constant(name):  # (floor, rint: Richardson's steps straddle the jumps)
            assert not np.any(J)
            continue
        fd = tg.numeric.jacobian(lambda a: ref_fn(tg.reference.Variable(a)).data, x, richardson=2)
        np.testing.assert_allclose(J, fd, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", list(symbolic.UNARY_OPS))
def test_unary_op_method_and_operator_give_the_function(name):
    x = symbolic.SymArray(symbolic.to_sympy(lambda x: x, (3,)).output)
    expected = getattr(symbolic, name)(x).data.tolist()
    spellings = [lambda v: getattr(v, name)()] if name in symbolic.UNARY_METHODS else []
    spelled = op_cases.operator(name) if name in op_cases.SPEC else None  # the spec's "-x", "abs(x)"
    spellings += [spelled] if spelled else []
    assert spellings or len(op_cases.SPEC[name]["args"]) > 1  # (h92-param: elu(x, alpha) is a function only)
    for spell in spellings:
        got = spell(x)
        assert isinstance(got, symbolic.SymArray) and got.data.tolist() == expected


def binary_inputs(name, seed):
    rng = np.random.default_rng([seed, len(name), 1])
    a = rng.uniform(0.3, 1.5, (2, 3)) * (1.0 if name == "power" else rng.choice([-1.0, 1.0], (2, 3)))
    b = rng.uniform(0.3, 1.5, 3) * rng.choice([-1.0, 1.0], 3)
    return a, b


@pytest.mark.parametrize("name", list(symbolic.BINARY_OPS))
def test_binary_op_values_and_derivatives_with_broadcasting(name):
    jac = symbolic.symbolic_jacobian(lambda engine, a, b: getattr(engine, name)(a, b), (2, 3), (3,))
    for seed in range(2):
        a, b = binary_inputs(name, seed)
        value, (ja, jb) = jac.function(a, b), jac(a, b)
        assert ja.shape == (2, 3, 2, 3) and jb.shape == (2, 3, 3)
        for engine in (tg, tg.reference):
            fn = getattr(engine, name)
            with engine.no_grad():
                out = fn(engine.Variable(a), engine.Variable(b))
            np.testing.assert_allclose(value, np.asarray(out.data), rtol=1e-14, atol=1e-15)
            ea, eb = engine.jacobian(fn, (a, b))
            np.testing.assert_allclose(ja, ea, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(jb, eb, rtol=1e-13, atol=1e-15)
        ref = getattr(tg.reference, name)
        fa = tg.numeric.jacobian(lambda u: ref(tg.reference.Variable(u), b).data, a, richardson=2)
        fb = tg.numeric.jacobian(lambda v: ref(a, tg.reference.Variable(v)).data, b, richardson=2)
        np.testing.assert_allclose(ja, fa, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(jb, fb, rtol=1e-8, atol=1e-10)


OPERATORS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
             "divide": operator.truediv, "power": operator.pow}


@pytest.mark.parametrize("name", list(OPERATORS))
def test_binary_operators_give_the_function(name):
    a, b = symbolic.to_sympy(lambda x, y: x, (2, 3), (3,)).symbols
    op, fn = OPERATORS[name], getattr(symbolic, name)
    sa, sb = symbolic.SymArray(a), symbolic.SymArray(b)
    for left, right in [(sa, sb), (sa, 2.5), (2.5, sb), (np.full(3, 0.5), sa), (sb, np.ones((2, 3)))]:
        got = op(left, right)  # NumPy arrays on either side, Python numbers: the reflected operators
        assert isinstance(got, symbolic.SymArray) and got.data.tolist() == fn(left, right).data.tolist()


def test_new_methods_in_a_plain_function_match_the_reference_engine():
    def f(x):
        return (x.log1p() * x.sin() + x.cos().abs().sqrt() - abs(x) * 0.5).sum()

    g = symbolic.symbolic_gradient(f, (5,))
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.uniform(0.1, 2.0, 5) * rng.choice([-1.0, 1.0], 5) + 0.5
        np.testing.assert_allclose(g(x), tg.reference.grad(f)(x), rtol=1e-12, atol=1e-14)


def test_linear_matches_the_engines():
    def f(engine, x, w, b):
        return engine.linear(x, w, b) + engine.linear(x, w)

    jac = symbolic.symbolic_jacobian(f, (2, 3), (3, 2), (2,))
    rng = np.random.default_rng(5)
    args = (rng.normal(size=(2, 3)), rng.normal(size=(3, 2)), rng.normal(size=2))
    for engine in (tg, tg.reference):
        np.testing.assert_allclose(jac.function(*args), np.asarray(f(engine, *args).data), rtol=1e-13)
        for sj, ej in zip(jac(*args), engine.jacobian(lambda *a: f(engine, *a), args)):
            np.testing.assert_allclose(sj, ej, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match=r"linear: expected x \(\.\.\., K\) and weight \(K, N\)"):
        symbolic.linear(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(2,\)"):
        symbolic.linear(np.ones((2, 3)), np.ones((3, 2)), np.ones(3))


# ---------------------------------------------------------------------------
# Expression swell
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("layer,depth", [("sincos", 7), ("sigmoid", 4)])
def test_swell_report_symbolic_grows_faster_than_the_tape(layer, depth):
    report = symbolic.swell_report(layer, depth, repeats=1)
    assert [r["depth"] for r in report.rows] == list(range(1, depth + 1))
    tape = report.column("tape")
    # the tape grows linearly: the same ops per layer
    assert tape == [tape[0] * d for d in range(1, depth + 1)]
    # the derivative's tree grows geometrically, far faster than the tape
    assert report.growth("df_tree") > 10 * report.growth("tape")
    trees = report.column("df_tree")
    assert all(b > 2 * a for a, b in zip(trees[2:], trees[3:])) if layer == "sincos" else trees == sorted(trees)
    # common-subexpression elimination tames the tree, but it stays bigger than the tape
    assert all(c <= t for c, t in zip(report.column("df_cse"), trees))
    assert report.column("df_cse")[-1] > tape[-1]
    text = str(report)
    assert text.count("\n|") == depth + 2 and "tape ops" in text


def test_swell_report_of_a_user_layer():
    report = symbolic.swell_report(lambda engine, x: engine.exp(-x) * x, 4, repeats=1)
    assert report.growth("df_tree") > report.growth("tape") == 4
    report = symbolic.swell_report(lambda x: (x * x).tanh(), 3, shape=(2,), repeats=1)  # operators only
    assert report.column("tape") == [2, 4, 6]


def test_tree_and_cse_sizes():
    x = sympy.Symbol("x")
    s = sympy.sin(x)
    e = s * s + s  # sin(x) appears twice in the tree, once after CSE
    assert symbolic.tree_size([x]) == 1
    assert symbolic.tree_size([s]) == 2
    assert symbolic.tree_size([e]) == 1 + (1 + 2 + 1) + 2  # Add(Pow(sin x, 2), sin x)
    assert symbolic.cse_size([e]) <= symbolic.tree_size([e])


def test_sympy_is_imported_lazily():
    code = textwrap.dedent("""
        import sys
        import tapegrad
        assert "sympy" not in sys.modules, "import tapegrad imported sympy"
        sys.modules["sympy"] = None  # as if SymPy were not installed
        import tapegrad.symbolic as s
        try:
            s.to_sympy(lambda engine, x: x, (2,))
        except ImportError as exc:
            assert "pip install 'tapegrad[symbolic]'" in str(exc)
            print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


# ---------------------------------------------------------------------------
# The spec's compositions: _compose.py's bodies on symbols
# ---------------------------------------------------------------------------
import test_numpy_dispatch as numpy_cases  # noqa: E402  (how to call each NumPy name of the spec)

SPEC_COMPOSITIONS = tg._core.__compositions__
# compositions without a NumPy name: call, input shapes
OWN_CASES = {
    "flatten": numpy_cases.U,
}


def composition_case(name):
    """(call, shapes, NumPy name or None) for a composition: the NumPy dispatch tests' case of its first
    NumPy name (the same calls, shapes and domains), else OWN_CASES."""
    numpy_names = [n for n in SPEC_COMPOSITIONS[name]["numpy"] if n in numpy_cases.CASES]
    if numpy_names:
        return (*numpy_cases.CASES[numpy_names[0]], numpy_names[0])
    return (*OWN_CASES[name], None)


def composition_inputs(name, seed):
    call, shapes, np_name = composition_case(name)
    rng = np.random.default_rng([seed, len(name)])
    if np_name is not None:
        return numpy_cases.draw(np_name, shapes, rng=rng)
    return [rng.uniform(-1.5, 1.5, s) for s in shapes]


def as_one_array(engine, out):
    """A composition's result as one array: the parts of a list result (split) flattened and joined."""
    if isinstance(out, (list, tuple)):
        return engine.concatenate([engine.reshape(o, (-1,)) for o in out])
    return out


def test_every_composition_has_a_case_and_the_unsupported_ones_are_compositions():
    assert set(OWN_CASES) <= set(SPEC_COMPOSITIONS)
    for name in SPEC_COMPOSITIONS:
        composition_case(name)
    assert set(symbolic.SYMBOLIC_UNSUPPORTED) < set(SPEC_COMPOSITIONS)
    assert all(SPEC_COMPOSITIONS[n]["deriv"] == "none" for n in symbolic.SYMBOLIC_UNSUPPORTED)


RUNS = sorted(set(SPEC_COMPOSITIONS) - set(symbolic.SYMBOLIC_UNSUPPORTED))
NUMBERS = [n for n in RUNS if SPEC_COMPOSITIONS[n]["deriv"] == "none"]  # shape, ndim, size


@pytest.mark.parametrize("name", sorted(set(RUNS) - set(NUMBERS)))
def test_composition_values_and_jacobians_match_both_engines(name):
    call, shapes, _ = composition_case(name)

    def f(engine, *xs):
        return as_one_array(engine, call(getattr(engine, name), *xs))

    jac = symbolic.symbolic_jacobian(f, *shapes, takes_engine=True)
    for seed in range(2):
        arrays = composition_inputs(name, seed)
        value = jac.function(*arrays)
        sym = jac(*arrays)
        sym = sym if isinstance(sym, tuple) else (sym,)
        for engine in (tg, tg.reference):
            with engine.no_grad():
                out = f(engine, *[engine.Variable(a) for a in arrays])
            np.testing.assert_allclose(value, np.asarray(out.data), rtol=1e-12, atol=1e-13)
            ad = engine.jacobian(lambda *vs: f(engine, *vs), tuple(arrays))
            ad = ad if isinstance(ad, tuple) else (ad,)
            assert len(ad) == len(sym)
            for s_j, a_j in zip(sym, ad):
                np.testing.assert_allclose(s_j, a_j, rtol=1e-10, atol=1e-12)
        if SPEC_COMPOSITIONS[name]["deriv"] == "zero":
            assert all(not np.any(s_j) for s_j in sym)


@pytest.mark.parametrize("name", NUMBERS)
def test_shape_ndim_size_give_the_engines_numbers(name):
    call, shapes, _ = composition_case(name)
    syms = [symbolic.SymArray(s) for s in symbolic.to_sympy(lambda *xs: xs[0], *shapes).symbols]
    arrays = composition_inputs(name, 0)
    assert call(getattr(symbolic, name), *syms) == call(getattr(tg, name), *[tg.Variable(a) for a in arrays])


@pytest.mark.parametrize("name", sorted(n for n in RUNS if SPEC_COMPOSITIONS[n]["method"]))
def test_composition_methods_give_the_function(name):
    call, shapes, _ = composition_case(name)
    syms = [symbolic.SymArray(s) for s in symbolic.to_sympy(lambda *xs: xs[0], *shapes).symbols]
    as_function = as_one_array(symbolic, call(getattr(symbolic, name), *syms))
    as_method = as_one_array(symbolic, call(lambda x, *rest, **kw: getattr(x, name)(*rest, **kw), *syms))
    assert getattr(symbolic.SymArray, name) is getattr(symbolic, name)
    assert as_method.data.tolist() == as_function.data.tolist()


@pytest.mark.parametrize("name", sorted(symbolic.SYMBOLIC_UNSUPPORTED))
def test_compositions_that_need_numbers_raise_naming_the_op(name):
    call, shapes, _ = composition_case(name)
    syms = [symbolic.SymArray(s) for s in symbolic.to_sympy(lambda *xs: xs[0], *shapes).symbols]
    with pytest.raises(NotImplementedError, match=f"^{name}: not implemented on tapegrad.symbolic"):
        call(getattr(symbolic, name), *syms)
    # the list is exactly the bodies that cannot run: _compose.py's own body raises on symbols too
    with pytest.raises(NotImplementedError, match=f"^{name}: NumPy's .* needs numbers"):
        call(getattr(symbolic, name).__wrapped__, *syms)
    # and on the engines they run
    call(getattr(tg, name), *[tg.Variable(a) for a in composition_inputs(name, 0)])


def test_masks_become_piecewise_and_the_norm_of_zero_keeps_its_subgradient():
    x0, x1 = sympy.symbols("x_0 x_1", real=True)
    sf = symbolic.to_sympy(lambda engine, x: engine.norm(x), (2,))  # (expm1's mask was the example: a primitive now)
    out = sympy.sympify(sf.output[()])
    assert out.has(sympy.Piecewise) and out.subs({x0: 3, x1: -4}) == 5 and out.subs({x0: 0, x1: 0}) == 0
    g = symbolic.symbolic_gradient(lambda engine, x: engine.norm(x), (3,))
    np.testing.assert_array_equal(g(np.zeros(3)), tg.grad(tg.norm)(np.zeros(3)))  # 0, not NaN
    np.testing.assert_allclose(g(np.array([3.0, 0.0, -4.0])), [0.6, 0.0, -0.8], rtol=1e-15)


def test_values_that_need_numbers_raise_not_implemented():
    x = symbolic.SymArray(symbolic.to_sympy(lambda x: x, (3,)).output)
    with pytest.raises(NotImplementedError, match="^norm: comparing values with != needs numbers"):
        symbolic.norm(x, ord=0)
    assert symbolic.norm(x, ord=1).item() == sum(sympy.Abs(e) for e in x.data)
    with pytest.raises(NotImplementedError, match="^less: not implemented on tapegrad.symbolic"):
        symbolic.less(x, 1.0)

