"""How the tests call every op of the spec (`tapegrad._core.__ops__`).

Elementwise ops of one operand need nothing here: the spec's `domain` says
where to draw their input. Every other op has one entry in CASES: the
shapes of its differentiable inputs, where to draw each, and how to call
it on an engine `m` (tapegrad or tapegrad.reference). tests/test_opspec.py
fails when a spec op has no way to be called here.
"""
import numpy as np

import tapegrad as tg

SPEC = tg._core.__ops__
ELEMENTWISE = [name for name, op in SPEC.items() if op["family"] == "elementwise"]


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
