"""How the tests call every op of the spec (`tapegrad._core.__ops__`), and
the op lists the tests parametrize over, all derived from the spec.

Elementwise ops of one operand need nothing here: the spec's `domain` says
where to draw their input, `deriv` whether they have a kink (`step`/`sign`)
or are linear, `numpy` the NumPy function to compare with, `method` whether
`x.name()` exists, `operator` the Python spelling, `cost` the thread-split
class. Every other op has one entry in CASES: the shapes of its
differentiable inputs, where to draw each, and how to call it on an engine
`m` (tapegrad or tapegrad.reference). tests/test_opspec.py fails when a spec
op has no way to be called here.

Per-op data the spec cannot give lives in ONE table, EXTRA, keyed by op name
and optional for every op: an elementwise op without a NumPy function and
without an EXTRA entry is compared with the reference engine instead, so a
new elementwise op in opspec/ops.py is tested everywhere with no edit here.
"""
import re

import numpy as np

import tapegrad as tg

SPEC = tg._core.__ops__
ELEMENTWISE = [name for name, op in SPEC.items() if op["family"] == "elementwise"]
# elementwise ops of two operands (a, b), broadcast together
BINARY = [name for name, op in SPEC.items()
          if op["family"] == "binary" and [a["name"] for a in op["args"]] == ["a", "b"]]
# the elementwise ops that are also Variable methods
METHODS = [name for name in ELEMENTWISE if SPEC[name]["method"]]


def _np_sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


# Per-op data the spec cannot provide; every entry optional (see the docstring).
#   numpy   a NumPy oracle where NumPy has no function of that name
#   ties    a two-operand op with a kink where a == b (maximum, minimum): tests draw
#           operands without ties
#   f32_ulp the float32 kernel's error bound in ulps of the float64 result, where
#           it is tighter than F32_ULP (tests/test_kernels_fastpaths.py)
EXTRA = {
    "sigmoid": {"numpy": _np_sigmoid, "f32_ulp": 1},
    "relu": {"numpy": lambda x: np.maximum(x, 0.0)},
    "maximum": {"ties": True},
    "minimum": {"ties": True},
    "exp": {"f32_ulp": 1},
    "tanh": {"f32_ulp": 1},
    "softplus": {"f32_ulp": 1},
}
F32_ULP = 4


def domain(name):
    """The spec's test domain: 'real' | 'positive' | 'nonzero' | (lo, hi)."""
    d = SPEC[name]["domain"]
    return tuple(d) if isinstance(d, list) else d


def kinked(name):
    """An elementwise op whose derivative jumps at 0 (relu, abs): step(x) or sign(x) of x itself (gelu's
    steps clamp x at +-30): draw inputs away from 0."""
    return re.search(r"\b(step|sign)\(-?x\)", SPEC[name]["deriv"] or "") is not None


def piecewise_constant(name):
    """An elementwise op of derivative 0 (spec deriv "0": floor, sign): its rules give zeros."""
    return name in SPEC and SPEC[name]["deriv"] == "0"


def linear(name):
    """An elementwise op that is its own derivative map (negative): second derivative 0."""
    return SPEC[name]["deriv"] in ("linear", "1")


def smooth(name):
    """An elementwise op with a non-trivial, continuous second derivative."""
    return (SPEC[name]["family"] == "elementwise" and not linear(name) and not kinked(name)
            and not piecewise_constant(name))


# elementwise ops with a non-trivial second derivative
SMOOTH = [name for name in ELEMENTWISE if smooth(name)]


def sample_domain(name):
    """The domain key of helpers.sample for an elementwise op: normal | awayzero | positive | (lo, hi)."""
    d = domain(name)
    if d == "real":
        return "awayzero" if kinked(name) else "normal"
    if d == "nonzero":
        return "awayzero"
    return d


def pair_domain(name):
    """How tests draw the operands (a, b) of a two-operand op: normal | divide | power | distinct."""
    d = domain(name)
    if EXTRA.get(name, {}).get("ties"):
        return "distinct"
    return {"nonzero": "divide", "positive": "power"}.get(d, "normal")


def bounds(name, real=(-2.0, 2.0), positive=(0.2, 3.0)):
    """(lo, hi, away_from_zero) to draw an elementwise op's input uniformly."""
    d = domain(name)
    if d == "positive":
        return positive[0], positive[1], False
    if isinstance(d, tuple):
        return d[0], d[1], False
    return real[0], real[1], d == "nonzero" or kinked(name)


def call(name):
    """The op as a function of an engine and its operands: call(name)(m, *xs)."""
    return lambda m, *xs: getattr(m, name)(*xs)


def method(name):
    """The op spelled as a Variable method: x.name()."""
    return lambda m, x: getattr(x, name)()


def operator(name):
    """The op spelled with its Python operator (a function of the operands), or None."""
    spelling = SPEC[name]["operator"]
    if not spelling or SPEC[name]["family"] != "elementwise":
        return None
    return eval("lambda x: " + spelling)  # noqa: S307 (the spec's own text: "-x", "abs(x)")


def numpy_oracle(name):
    """The NumPy function of an op (from the spec's `numpy`, or EXTRA), or None."""
    if "numpy" in EXTRA.get(name, {}):
        return EXTRA[name]["numpy"]
    for np_name in SPEC[name]["numpy"]:
        if hasattr(np, np_name):
            return getattr(np, np_name)
    return None


def reference_function(name):
    """The op evaluated by the reference engine, as a function of NumPy arrays."""
    import tapegrad.reference as ref

    def f(*arrays):
        with ref.no_grad():
            return np.asarray(getattr(ref, name)(*[ref.Variable(np.asarray(a)) for a in arrays]).data)
    f.__name__ = f"reference_{name}"
    return f


def oracle(name):
    """What an op's values are checked against: NumPy where it has the op, else the reference engine."""
    return numpy_oracle(name) or reference_function(name)


def f32_ulp(name):
    """The float32 kernel's error bound (ulps of the float64 result) the tests hold an op to."""
    return EXTRA.get(name, {}).get("f32_ulp", F32_ULP)


def spec_derivative(name):
    """f'(x) of an elementwise op as a NumPy function, evaluated from the spec's `deriv` text."""
    expr = SPEC[name]["deriv"]
    f = oracle(name)
    if expr == "linear":  # f(x) = c * x
        return lambda x: np.full(np.shape(x), float(f(np.ones(1))[0]))
    env = {n: oracle(n) for n in ELEMENTWISE}
    env.update(step=lambda v: (np.asarray(v) > 0).astype(np.float64), sign=np.sign)
    env.update({a["name"]: a["default"] for a in SPEC[name]["args"][1:]})  # (h92-param: at the defaults)

    def df(x):
        x = np.asarray(x, dtype=np.float64)
        d = eval(expr, {"__builtins__": {}}, dict(env, x=x, y=f(x)))  # noqa: S307
        return np.asarray(d, dtype=np.float64) + np.zeros_like(x)  # (deriv "0": a number)
    return df


def draw(rng, shape, domain, dtype=np.float64):
    """Inputs away from kinks and domain edges, so that finite differences hold."""
    if domain == "positive":
        x = rng.uniform(0.5, 2.0, shape)
    elif domain == "nonzero":
        x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    elif domain == "real":
        x = rng.uniform(0.2, 1.5, shape) * rng.choice([-1.0, 1.0], shape)  # |x| >= 0.2: no kink at 0
    else:
        lo, hi = domain
        x = rng.uniform(lo, hi, shape)
    return np.asarray(x, dtype=dtype)


_COND = np.array([[True, False, True, False], [False, True, True, False], [True, True, False, False]])

def _dominant(a):
    """a (|entries| <= 1.5) + 6 I in a's dtype: diagonally dominant, well conditioned."""
    return a + (6.0 * np.eye(a.shape[-1])).astype(a.dtype)


def _slogdet_case(m, a):
    sign, logdet = m.slogdet(_dominant(a))
    return sign * logdet


def _spd(m, a):
    """a a^T + 3 I: symmetric positive definite, differentiable in every entry of a."""
    return m.matmul(a, m.transpose(a, (0, 2, 1))) + (3.0 * np.eye(a.shape[-1])).astype(a.dtype)


# name -> (input shapes, input domains, call(m, *inputs), finite differences apply)
CASES = {
    "add": ([(3, 4), (4,)], ["real", "real"], lambda m, a, b: m.add(a, b)),
    "subtract": ([(3, 4), (3, 1)], ["real", "real"], lambda m, a, b: m.subtract(a, b)),
    "multiply": ([(3, 4), (4,)], ["real", "real"], lambda m, a, b: m.multiply(a, b)),
    "divide": ([(3, 4), (4,)], ["real", "nonzero"], lambda m, a, b: m.divide(a, b)),
    "power": ([(3, 4), (3, 4)], ["positive", "real"], lambda m, a, b: m.power(a, b)),
    "maximum": ([(3, 4), (3, 4)], ["real", "real"], lambda m, a, b: m.maximum(a, b)),
    "minimum": ([(3, 4), (4,)], ["real", "real"], lambda m, a, b: m.minimum(a, b)),
    "clip": ([(3, 4)], ["real"], lambda m, x: m.clip(x, -0.9, 1.1)),
    "where": ([(3, 4), (3, 4)], ["real", "real"], lambda m, a, b: m.where(_COND, a, b)),
    "astype": ([(3, 4)], ["real"], lambda m, x: m.astype(x, np.float64) * 2.0),
    "sum": ([(3, 4)], ["real"], lambda m, x: m.sum(x, axis=1)),
    "mean": ([(3, 4)], ["real"], lambda m, x: m.mean(x, axis=0, keepdims=True)),
    "max": ([(3, 4)], ["real"], lambda m, x: m.max(x, axis=1)),
    "min": ([(3, 4)], ["real"], lambda m, x: m.min(x, axis=0)),
    "logsumexp": ([(3, 4)], ["real"], lambda m, x: m.logsumexp(x, axis=1)),
    "softmax": ([(3, 4)], ["real"], lambda m, x: m.softmax(x, axis=-1)),
    "log_softmax": ([(3, 4)], ["real"], lambda m, x: m.log_softmax(x, axis=0)),
    "reshape": ([(3, 4)], ["real"], lambda m, x: m.reshape(x, (2, 6))),
    "transpose": ([(2, 3, 4)], ["real"], lambda m, x: m.transpose(x, (2, 0, 1))),
    "broadcast_to": ([(3, 1)], ["real"], lambda m, x: m.broadcast_to(x, (2, 3, 4))),
    "concatenate": ([(3, 4), (3, 2)], ["real", "real"], lambda m, a, b: m.concatenate([a, b], axis=1)),
    "stack": ([(3, 4), (3, 4)], ["real", "real"], lambda m, a, b: m.stack([a, b], axis=1)),
    "matmul": ([(2, 3, 4), (4, 5)], ["real", "real"], lambda m, a, b: m.matmul(a, b)),
    "linear": ([(3, 4), (4, 5), (5,)], ["real", "real", "real"], lambda m, x, w, b: m.linear(x, w, b)),
    "inv": ([(2, 3, 3)], ["real"], lambda m, a: m.inv(_dominant(a))),
    "solve": ([(3, 3), (2, 3, 2)], ["real", "real"], lambda m, a, b: m.solve(_dominant(a), b)),
    "slogdet": ([(2, 3, 3)], ["real"], _slogdet_case),
    "cholesky": ([(2, 3, 3)], ["real"], lambda m, a: m.cholesky(_spd(m, a))),
    "arctan2": ([(3, 4), (4,)], ["real", "nonzero"], lambda m, a, b: m.arctan2(a, b)),
    # h89-views
    "diagonal": ([(2, 3, 4)], ["real"], lambda m, x: m.diagonal(x, -1, 2, 1)),
    "diag": ([(4,)], ["real"], lambda m, x: m.diag(m.diag(x, 1), -1) * 2.0),
    "trace": ([(3, 4, 2)], ["real"], lambda m, x: m.trace(x, 1, 0, 1)),
    "squeeze": ([(3, 1, 4, 1)], ["real"], lambda m, x: m.squeeze(x, (1, -1))),
    "expand_dims": ([(3, 4)], ["real"], lambda m, x: m.expand_dims(x, (0, -1))),
    "swapaxes": ([(2, 3, 4)], ["real"], lambda m, x: m.swapaxes(x, 0, -1)),
    "moveaxis": ([(2, 3, 4)], ["real"], lambda m, x: m.moveaxis(x, (0, 1), (-1, 0))),
    "tril": ([(2, 3, 4)], ["real"], lambda m, x: m.tril(x, 1)),
    "triu": ([(4, 3)], ["real"], lambda m, x: m.triu(x, -1)),

    # h90-binary
    "logaddexp": ([(3, 4), (4,)], ["real", "real"], lambda m, a, b: m.logaddexp(a, b)),
    "logaddexp2": ([(3, 4), (4,)], ["real", "real"], lambda m, a, b: m.logaddexp2(a, b)),
    "hypot": ([(3, 4), (4,)], ["nonzero", "nonzero"], lambda m, a, b: m.hypot(a, b)),
    "fmax": ([(3, 4), (4,)], ["real", "real"], lambda m, a, b: m.fmax(a, b)),
    "fmin": ([(3, 4), (4,)], ["real", "real"], lambda m, a, b: m.fmin(a, b)),

    # h88-scan
    "cumsum": ([(3, 4)], ["real"], lambda m, x: m.cumsum(x, axis=1)),
    "cumprod": ([(3, 4)], ["real"], lambda m, x: m.cumprod(x, axis=0)),
    "prod": ([(3, 4)], ["real"], lambda m, x: m.prod(x, axis=1)),
    "var": ([(3, 4)], ["real"], lambda m, x: m.var(x, axis=0, ddof=1)),
    "std": ([(3, 4)], ["real"], lambda m, x: m.std(x, axis=1, keepdims=True)),
}


def case(name):
    """(input shapes, domains, call) for any spec op."""
    if name in CASES:
        return CASES[name]
    if name in SPEC and SPEC[name]["family"] == "elementwise":
        domain = SPEC[name]["domain"]
        domain = tuple(domain) if isinstance(domain, list) else domain
        return [(3, 4)], [domain], lambda m, x: getattr(m, name)(x)
    raise KeyError(f"op {name!r} has no test case in tests/op_cases.py")
