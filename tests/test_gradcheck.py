"""tapegrad.gradcheck and tapegrad.testing.crosscheck.

* gradcheck passes on every primitive (both modes, first and second order,
  full and fast paths, float64 and float32);
* it fails on deliberately wrong custom rules (a sign flip, a missing
  factor, a wrong broadcast reduction) with a table pointing at the wrong
  element; second-order failures are located too;
* float32 functions are checked in float64, or with a GradcheckWarning when
  they forbid it;
* crosscheck agrees on correct functions and finds an injected difference.
"""
import sys
import warnings

import numpy as np
import pytest

import op_cases
import tapegrad as tg
from helpers import rng_for, sample
from tapegrad import functional
from tapegrad.gradcheck import DEFAULT_TOLERANCES, GradcheckWarning
from tapegrad.testing import CrosscheckError, CrosscheckReport, crosscheck



R = np.random.default_rng(1234)


def nrm(*shape):
    return R.normal(size=shape)


def pos(*shape):
    return R.uniform(0.5, 2.0, size=shape)


def away(*shape):
    """Normal values kept away from 0 (relu, abs kinks) and from each other (max/min ties)."""
    x = R.uniform(0.3, 2.0, size=shape) * R.choice([-1.0, 1.0], size=shape)
    return x + 1e-3 * np.arange(x.size).reshape(shape)


# Every primitive of docs/API.md, with inputs away from its kinks.
OPS = {
    "add": (lambda a, b: a + b, (nrm(3, 4), nrm(4))),
    "subtract": (lambda a, b: tg.subtract(a, b), (nrm(3, 1), nrm(1, 4))),
    "multiply": (lambda a, b: a * b, (nrm(3, 4), nrm(3, 1))),
    "divide": (lambda a, b: a / b, (nrm(3, 4), pos(4))),
    "power": (lambda a, b: a ** b, (pos(3, 4), nrm(3, 4))),
    "power_scalar": (lambda a: a ** 3, (nrm(5),)),
    "maximum": (lambda a, b: tg.maximum(a, b), (away(3, 4), away(4) * 0.7)),
    "minimum": (lambda a, b: tg.minimum(a, b), (away(3, 4), away(4) * 0.7)),
    "clip": (lambda a: tg.clip(a, -0.9, 1.1), (away(8),)),
    "where": (lambda a, b: tg.where(np.array([True, False, True]), a, b), (nrm(2, 3), nrm(3))),
    "sum": (lambda a: tg.sum(a, axis=(0, 2), keepdims=True), (nrm(2, 3, 2),)),
    "mean": (lambda a: tg.mean(a, axis=1), (nrm(3, 4),)),
    "max": (lambda a: tg.max(a, axis=0), (away(3, 4),)),
    "min": (lambda a: tg.min(a), (away(3, 4),)),
    "reshape": (lambda a: tg.reshape(a, (4, 3)) * 2, (nrm(3, 4),)),
    "transpose": (lambda a: tg.transpose(a, (2, 0, 1)) * 2, (nrm(2, 3, 2),)),
    "broadcast_to": (lambda a, c=nrm(3, 4): tg.broadcast_to(a, (3, 4)) * c, (nrm(4),)),
    "getitem": (lambda a: a[1:, [0, 2]] * 3, (nrm(3, 4),)),
    "getitem_mask": (lambda a: a[a.data > 0] * 3, (away(3, 4),)),
    "concatenate": (lambda a, b: tg.concatenate([a, b], axis=1), (nrm(2, 3), nrm(2, 2))),
    "stack": (lambda a, b: tg.stack([a, b], axis=1), (nrm(2, 3), nrm(2, 3))),
    "matmul": (lambda a, b: a @ b, (nrm(3, 4), nrm(4, 2))),
    "matmul_batched": (lambda a, b: a @ b, (nrm(2, 3, 4), nrm(4))),
    "softmax": (lambda a: tg.softmax(a, axis=0), (nrm(3, 4),)),
    "log_softmax": (lambda a: tg.log_softmax(a), (nrm(3, 4),)),
    "logsumexp": (lambda a: tg.logsumexp(a, axis=1), (nrm(3, 4),)),
    "astype": (lambda a: tg.astype(a * 2, np.float64), (nrm(3),)),
}
# every elementwise op of the spec, drawn from its domain (away from its kink, if any)
for _name in op_cases.ELEMENTWISE:
    _rng = rng_for("gradcheck", _name)
    OPS[_name] = (getattr(tg, _name), (sample(op_cases.sample_domain(_name), (3, 4), _rng),))
# Smooth ops whose second derivatives are checked too (scalar losses built from them).
SMOOTH = ["add", "multiply", "divide", "power", *op_cases.SMOOTH,
          "mean", "matmul", "softmax", "log_softmax", "logsumexp", "getitem", "concatenate", "broadcast_to"]


@pytest.mark.parametrize("name", sorted(OPS))
def test_passes_on_every_op(name):
    f, inputs = OPS[name]
    assert tg.gradcheck(f, inputs) is True
    assert tg.gradcheck(f, inputs, fast=True) is True


@pytest.mark.parametrize("name", SMOOTH)
def test_second_order_passes_on_smooth_ops(name):
    f, inputs = OPS[name]
    assert tg.gradcheck(f, inputs, order=2, fast=False) is True
    assert tg.gradcheck(f, inputs, order=2, fast=True) is True


@pytest.mark.parametrize("name", [*op_cases.ELEMENTWISE, "matmul", "softmax", "divide"])
def test_float32_inputs_are_checked_in_float64(name):
    f, inputs = OPS[name]
    inputs32 = tuple(a.astype(np.float32) for a in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no GradcheckWarning: float64 was possible
        assert tg.gradcheck(f, inputs32) is True


def mlp_loss(w1, b1, w2):
    x = tg.Variable(np.linspace(-1, 1, 40).reshape(20, 2))
    h = tg.tanh(x @ w1 + b1)
    return tg.logsumexp(h @ w2) + 0.1 * tg.sum(w1 * w1)


def test_mlp_full_and_fast_paths():
    rng = np.random.default_rng(0)
    params = (rng.normal(size=(2, 8)), rng.normal(size=8), rng.normal(size=(8, 3)))
    assert tg.gradcheck(mlp_loss, params) is True
    big = (rng.normal(size=(2, 200)), rng.normal(size=200), rng.normal(size=(200, 3)))
    assert tg.gradcheck(mlp_loss, big) is True  # > FAST_THRESHOLD elements: random directions
    assert tg.gradcheck(mlp_loss, params, order=2) is True


def test_badly_scaled_inputs_and_outputs():
    """Tiny and huge inputs, large outputs: the numeric error estimate keeps the check tight yet passing."""
    x = np.array([1e-9, 1e-5, 1.0, 1e6])
    assert tg.gradcheck(lambda v: tg.sum(tg.exp(v * 1e-6) * 1e4), x)
    assert tg.gradcheck(lambda v: tg.log(v), x)
    assert tg.gradcheck(lambda v: tg.sum(tg.exp(v[:3])) * 1e8, x)


# ---------------------------------------------------------------------------
# Wrong rules are caught and located
# ---------------------------------------------------------------------------

def make_cube(vjp_factor=3.0, jvp_factor=3.0, vjp_sign=1.0):
    @tg.custom_op
    def cube(x):
        return x ** 3

    cube.defvjp(lambda g, ans, x: vjp_sign * g * vjp_factor * x ** 2)
    cube.defjvp(lambda t, ans, x: t * jvp_factor * x ** 2)
    return cube


X = np.array([[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]])


def test_correct_custom_op_passes():
    cube = make_cube()
    assert tg.gradcheck(cube, X) is True
    assert tg.gradcheck(lambda x: tg.sum(cube(x) * x), X) is True


def test_sign_flip_in_vjp():
    cube = make_cube(vjp_sign=-1.0)
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(cube, X)
    err = info.value
    assert [r["check"] for r in err.rows] == ["reverse"]  # the JVP rule is right
    row = err.rows[0]
    # the worst element is where |3x²| is largest: x[0, 2] = 2, diagonal of the Jacobian
    assert (row["input"], row["output"], row["index"]) == ("x", "out(0, 2)", "x(0, 2)")
    assert row["ad"] == pytest.approx(-12.0) and row["numeric"] == pytest.approx(12.0)
    msg = str(err)
    for text in ("gradcheck failed: 1 comparison out of tolerance", "worst element", "AD value", "numeric",
                 "abs err", "rel err", "x(0, 2)", "out(0, 2)"):
        assert text in msg


def test_missing_factor_in_jvp():
    cube = make_cube(jvp_factor=1.0)  # forgot the 3
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(cube, X)
    rows = info.value.rows
    assert [r["check"] for r in rows] == ["forward"]
    assert rows[0]["index"] == "x(0, 2)" and rows[0]["rel_err"] == pytest.approx(2 / 3)
    # the fast path finds it too
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(cube, X, fast=True)
    assert {r["check"] for r in info.value.rows} == {"forward"}
    assert "random u0" in info.value.rows[0]["input"]


def test_only_the_modes_asked_are_checked():
    cube = make_cube(vjp_sign=-1.0)
    assert tg.gradcheck(cube, X, modes=("forward",)) is True
    assert tg.gradcheck(cube, X, modes="reverse", raise_exception=False) is False


def make_add_column():
    """y = x + b with x (2, 2) and b (2, 1): b's gradient sums over the columns (axis -1)."""
    @tg.custom_op
    def add_column(x, b):
        return x + b

    def wrong_vjp(g, ans, x, b):
        # summed over the wrong axis: rows instead of columns (transposed into b's shape)
        return g, np.swapaxes(g.sum(axis=-2, keepdims=True), -1, -2)

    add_column.defvjp(wrong_vjp)
    add_column.defjvp(lambda t, ans, x, b: t, lambda t, ans, x, b: np.broadcast_to(t, t.shape[:-1] + (2,)))
    return add_column


def test_wrong_broadcast_reduction_points_at_the_input_and_element():
    add_column = make_add_column()
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[0.5], [-0.5]])
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(add_column, (x, b))
    rows = info.value.rows
    assert [(r["check"], r["input"]) for r in rows] == [("reverse", "b")]  # x's gradient and all JVPs are right
    # d out[0, 1] / d b[1, 0] should be 0 but the rule says 1 (or the other way round)
    assert rows[0]["index"] in ("b(0, 0)", "b(1, 0)")
    assert abs(rows[0]["ad"] - rows[0]["numeric"]) == pytest.approx(1.0)
    assert "b(" in str(info.value)


def test_second_order_failure_is_located(monkeypatch):
    """A wrong Hessian entry (injected into the AD side) is reported with both inputs' indices."""
    real_jacobian = functional.jacobian

    def corrupted(f, x, **kw):
        J = real_jacobian(f, x, **kw)
        if isinstance(J, np.ndarray) and J.shape == (5, 5) and kw.get("mode") == "forward":  # the Hessian
            J = J.copy()
            J[1, 3] += 0.5
        return J

    shim = type("F", (), {})()
    for name in ("jvp", "vjp", "grad", "hvp"):
        setattr(shim, name, getattr(functional, name))
    shim.jacobian = corrupted
    monkeypatch.setattr(sys.modules["tapegrad.gradcheck"], "F", shim)  # the name tapegrad.gradcheck is the function
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(lambda a, b: tg.sum(tg.exp(a) * tg.sum(b * b)), (nrm(2), nrm(3)), order=2, fast=False)
    (row,) = info.value.rows
    assert row["check"] == "order 2 forward-over-reverse"
    assert row["input"] == "a, b" and row["index"] == "a(1,), b(1,)"


def test_second_order_through_custom_op_is_refused():
    cube = make_cube()
    with pytest.raises(NotImplementedError, match="cube"):
        tg.gradcheck(lambda x: tg.sum(cube(x)), X, order=2)


def test_float32_wrong_rule_fails_in_both_precisions():
    cube = make_cube(vjp_factor=2.9)  # 3% off
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(cube, X.astype(np.float32))
    checks = {r["check"] for r in info.value.rows}
    assert checks == {"reverse", "reverse (float64)"}
    assert "numeric derivatives computed in float64" in str(info.value)


def test_float32_only_function_warns_and_still_checks():
    def f(x):
        if x.dtype != np.float32:
            raise TypeError("float32 only")
        return tg.tanh(x) * 2

    x = np.float32([0.3, -1.2, 2.0])
    with pytest.warns(GradcheckWarning, match="rejects float64 inputs.*tolerances are widened"):
        assert tg.gradcheck(f, x) is True
    cube = make_cube(vjp_factor=2.0)
    with pytest.warns(GradcheckWarning, match="computes in float32"):
        with pytest.raises(tg.GradcheckError, match="float32 central differences"):
            tg.gradcheck(lambda v: cube(v.astype(np.float32)), X)


def test_default_tolerances_are_documented():
    assert DEFAULT_TOLERANCES["float64"] == (1e-7, 1e-6)
    assert DEFAULT_TOLERANCES["float32"] == (1e-4, 1e-3)
    # a 1e-5 relative error in a rule is caught with the defaults, not with PyTorch's rtol=1e-3
    cube = make_cube(vjp_factor=3.0 * (1 + 1e-5))
    assert tg.gradcheck(cube, X, raise_exception=False) is False
    assert tg.gradcheck(cube, X, atol=1e-5, rtol=1e-3) is True


def test_argument_errors():
    f = OPS["exp"][0]
    with pytest.raises(ValueError, match="modes must be"):
        tg.gradcheck(f, nrm(2), modes=("sideways",))
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        tg.gradcheck(f, nrm(2), order=3)
    with pytest.raises(ValueError, match="fast must be"):
        tg.gradcheck(f, nrm(2), fast="sometimes")
    with pytest.raises(ValueError, match="inputs is empty"):
        tg.gradcheck(f, ())
    with pytest.raises(TypeError, match="input 0 must be float32 or float64"):
        tg.gradcheck(f, np.array(["a"]))
    with pytest.raises(TypeError, match="must return a tapegrad.Variable"):
        tg.gradcheck(lambda x: x.numpy(), nrm(2))
    assert tg.gradcheck(lambda x: x * 2, np.array([1, 2, 3]))  # integers become float64


# ---------------------------------------------------------------------------
# crosscheck
# ---------------------------------------------------------------------------

def mlp_engine(engine, x, w1, w2):
    h = engine.tanh(x @ w1)
    return engine.logsumexp(h @ w2, axis=1).mean() + (w1 * w1).sum() * 0.1


def test_crosscheck_agrees():
    rng = np.random.default_rng(3)
    inputs = (rng.normal(size=(5, 3)), rng.normal(size=(3, 4)), rng.normal(size=(4, 2)))
    report = crosscheck(mlp_engine, *inputs)
    assert isinstance(report, CrosscheckReport) and report.ok and bool(report)
    assert set(report.max_abs) == {"-", "x", "w1", "w2"}
    assert all(v < 1e-12 for v in report.max_abs.values())
    assert [(c.quantity, c.input) for c in report.comparisons] == [
        ("value", "-"), ("grad", "x"), ("jvp", "x"), ("grad", "w1"), ("jvp", "w1"), ("grad", "w2"), ("jvp", "w2")]
    assert "engines agree" in str(report)


ENGINE_FUNCTIONS = {
    "softmax": (lambda engine, a: engine.softmax(a, axis=0), (nrm(3, 4),)),
    "matmul_batched": (lambda engine, a, b: a @ b, (nrm(2, 3, 4), nrm(4))),
    "getitem": (lambda engine, a: a[1:, [0, 2]] * 3, (nrm(3, 4),)),
    "max": (lambda engine, a: engine.max(a, axis=0), (away(3, 4),)),
    "clip": (lambda engine, a: engine.clip(a, -0.9, 1.1), (away(8),)),
    "concatenate": (lambda engine, a, b: engine.concatenate([a, b], axis=1), (nrm(2, 3), nrm(2, 2))),
    "power": (lambda engine, a, b: a ** b, (pos(3, 4), nrm(3, 4))),
}


@pytest.mark.parametrize("name", sorted(ENGINE_FUNCTIONS))
def test_crosscheck_on_ops(name):
    fn, inputs = ENGINE_FUNCTIONS[name]
    report = crosscheck(fn, *inputs, raise_on_mismatch=True)
    assert report.ok


def test_crosscheck_float32():
    report = crosscheck(lambda engine, a: engine.softmax(a * 3), nrm(3, 4).astype(np.float32))
    assert report.ok and report.atol == 1e-5


def test_crosscheck_finds_an_injected_difference():
    def sometimes_wrong(engine, x, w):
        y = engine.tanh(x @ w)
        if engine is tg:  # a bug in one engine only
            y = y + 1e-7 * y * y
        return y

    rng = np.random.default_rng(4)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=4)
    report = crosscheck(sometimes_wrong, x, w)
    assert not report.ok
    assert {c.quantity for c in report.failures} == {"value", "vjp", "jvp"}
    assert 1e-9 < report.max_abs["x"] < 1e-6
    with pytest.raises(CrosscheckError, match="MISMATCH") as info:
        crosscheck(sometimes_wrong, x, w, raise_on_mismatch=True)
    assert info.value.report.failures


def test_crosscheck_finds_a_wrong_custom_rule_in_one_engine():
    def f(engine, x):
        @engine.custom_op
        def square(a):
            return a * a

        factor = 2.0 if engine is tg.reference else 2.001
        square.defvjp(lambda g, ans, a: g * factor * a)
        square.defjvp(lambda t, ans, a: t * 2.0 * a)
        return engine.sum(square(x))

    report = crosscheck(f, nrm(4))
    assert [(c.quantity, c.input) for c in report.failures] == [("grad", "x")]
    assert report.max_rel["x"] == pytest.approx(5e-4, rel=1e-3)


def test_crosscheck_errors():
    with pytest.raises(ValueError, match="at least one input"):
        crosscheck(lambda engine: engine.Variable(1.0))
    with pytest.raises(TypeError, match="input 0 must be float32 or float64"):
        crosscheck(lambda engine, x: x, np.array(["a"]))
    with pytest.raises(ValueError, match="2 names for 1 inputs"):
        crosscheck(lambda engine, x: x, nrm(2), names=["a", "b"])
