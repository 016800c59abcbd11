"""tapegrad.symbolic: functions on SymPy symbols, exact derivatives, expression swell.

* to_sympy gives the expected expressions; every engine op runs on symbols;
* symbolic gradients and Jacobians (sympy.diff, lambdify) equal AD at random
  points, for functions written once for the three engines;
* swell_report: the symbolic derivative grows faster than the tape;
* SymPy is imported only when tapegrad.symbolic is used.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

sympy = pytest.importorskip("sympy")

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
