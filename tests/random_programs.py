"""Random programs over tapegrad's public ops, run on both engines and compared.

The project's one random-program generator (issue 15). A *program* is a short
straight-line sequence (3-15 ops) of public tapegrad calls on a few input
Variables, with shapes that include 0-d, size-1 and size-0 axes, float32,
float64 or mixed dtypes, tied values (so the kinks of relu/abs/maximum/max/
clip/power are hit exactly), and Python / NumPy scalars and NumPy arrays as
operands. Each program runs on the C++ engine (``tapegrad``) and on the
pure-NumPy reference (``tapegrad.reference``); compared are

* the value (shape, dtype, elements) or the exception type,
* the gradients of every input from ``backward`` with a random cotangent,
* forward mode: ``jvp`` with random tangents,
* the Jacobian (``jacobian``; the C++ engine's mode and chunk size drawn at
  random, so both sweeps run), for programs small enough.

Everything about the ops lives in ONE table, :data:`OPS`: public name ->
:class:`OpSpec` (how to call it on an engine, how to build random valid
arguments, the input domain, and where its kinks are). Tolerances live in
:func:`tolerance`.

Run it alone (the test suite runs a seeded few thousand programs,
``tests/test_random_programs.py``)::

    python -m tests.random_programs --n 100000 --seed 1          # from the repo root
    python -m tests.random_programs --n 2000 --seed 7 --show     # print every program

or ``TAPEGRAD_RANDOM_PROGRAMS=100000 python -m pytest tests/test_random_programs.py``.
A failure prints the program as Python source and its shortest failing prefix.

Kink conventions (README "Conventions"): relu'(0) = abs'(0) = 0, ties of
maximum/minimum and of max/min reductions split evenly, clip is inclusive,
``d(a**b)/da = 0`` where ``b == 0``, ``d(a**b)/db = 0`` where ``a == 0, b >= 0``.
Both engines implement them, so a tie is compared like any other point. The
one thing that cannot be compared is a tie that exists in one engine and not
in the other (two values equal in one engine differ by a rounding in the
other, after a sum or a GEMM): every kink op records a *signature* of its
arguments (signs, tie masks) in each engine; a program whose signatures
differ between the engines is counted as ``ambiguous`` and not compared.
"""
import argparse
import dataclasses
import math
import sys
import time
import traceback
import warnings
from typing import Any, Callable, Optional

import numpy as np

import tapegrad as tg

REF = tg.reference
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# ---------------------------------------------------------------------------
# Tolerances: the one place.
# ---------------------------------------------------------------------------
# (rtol, atol); atol is scaled by max(1, max |reference|) of the compared
# array, so values near zero next to large ones are not held to a relative
# bound they cannot meet (the engines sum and multiply in different orders).
TOLERANCES = {F64: (1e-8, 1e-10), F32: (3e-3, 3e-4)}


def tolerance(dtypes):
    """(rtol, atol) for a program whose arrays have these dtypes: the loosest."""
    return TOLERANCES[F32] if any(np.dtype(d) == F32 for d in dtypes) else TOLERANCES[F64]


def compare_arrays(a, b, tol):
    """None if ``a`` (C++) matches ``b`` (reference), else a short message."""
    if a is None or b is None:
        if a is None and b is None:
            return None
        return f"one is None: C++ {None if a is None else np.shape(a)}, reference {None if b is None else np.shape(b)}"
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} != {b.dtype}"
    if a.size == 0:
        return None
    rtol, atol = tol
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    fin = np.isfinite(b64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)) or not np.array_equal(a64[~fin & ~np.isnan(b64)],
                                                                               b64[~fin & ~np.isnan(b64)]):
        return f"non-finite entries differ: C++ {a64.ravel()[:8]} reference {b64.ravel()[:8]}"
    if not np.array_equal(np.isfinite(a64), fin):
        return f"finiteness differs: C++ {a64.ravel()[:8]} reference {b64.ravel()[:8]}"
    if not fin.any():
        return None
    scale = max(1.0, float(np.max(np.abs(b64[fin]))))
    err = np.abs(a64[fin] - b64[fin])
    bound = atol * scale + rtol * np.abs(b64[fin])
    if np.all(err <= bound):
        return None
    i = int(np.argmax(err - bound))
    return (f"max abs err {err.max():.3g} (worst C++ {a64[fin][i]!r} vs reference {b64[fin][i]!r}, "
            f"rtol {rtol}, atol {atol} x {scale:.3g})")


# ---------------------------------------------------------------------------
# Program representation
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Leaf:
    """An input Variable (differentiated): ``inputs[k]``."""
    k: int


@dataclasses.dataclass
class Ref:
    """An argument that is an earlier value of the program."""
    i: int


@dataclasses.dataclass
class Step:
    op: str                 # a key of OPS
    args: tuple             # Ref, or a constant (Python/NumPy scalar, NumPy array, key, shape...)
    kwargs: dict


@dataclasses.dataclass
class Program:
    seed: int
    inputs: list            # NumPy arrays: the differentiated inputs
    defs: list              # Leaf or Step: value i of the program is defs[i]
    cotangent: Any = None   # for backward: an array of the output's shape and dtype
    tangents: Any = None    # for jvp: one per input
    expect_error: Optional[type] = None   # the reference raised this at the last step
    jac_mode: str = "auto"
    jac_chunk: Optional[int] = None
    # A mean over no element is nan whatever its input (derivative 0); a JVP carries
    # 0 * f'(nan) = nan downstream of it, which a Jacobian with no path from an
    # input cannot show: the Jacobian-times-tangents check skips such programs.
    mean_of_empty: bool = False

    def source(self):
        """The program as Python code on an engine ``E`` (tapegrad or tapegrad.reference)."""
        lines = []
        for k, a in enumerate(self.inputs):
            lines.append(f"x{k} = E.Variable(np.array({_lit(a)}, dtype=np.{a.dtype}), requires_grad=True)"
                         f"  # shape {a.shape}")
        for i, d in enumerate(self.defs):
            if isinstance(d, Leaf):
                lines.append(f"v{i} = x{d.k}")
            else:
                lines.append(f"v{i} = " + OPS[d.op].show(d))
        if self.expect_error:
            lines.append(f"# the reference raises {self.expect_error.__name__} at the last line")
        return "\n".join(lines)


def _lit(x):
    if isinstance(x, np.ndarray):
        if x.size > 64:
            return f"<array {x.shape} {x.dtype}>"
        return np.array2string(x, separator=", ", threshold=100, floatmode="unique").replace("\n", "")
    if isinstance(x, Ref):
        return f"v{x.i}"
    if isinstance(x, np.generic):
        return f"np.{type(x).__name__}({x.item()!r})"
    if isinstance(x, slice):
        return f"{'' if x.start is None else x.start}:{'' if x.stop is None else x.stop}" + \
               ("" if x.step is None else f":{x.step}")
    if x is Ellipsis:
        return "..."
    return repr(x)


# ---------------------------------------------------------------------------
# The op table
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class OpSpec:
    """One public op.

    call(E, *args, **kwargs): the call on engine module E (tapegrad or tapegrad.reference).
    build(G, x): random valid (args, kwargs) for a program whose primary
        operand is the value index x (G: the generator; None if the op does not
        apply to that value). Arguments are Ref(i) for program values, or constants.
    domain: what the primary operand must satisfy (see DOMAINS), the builder
        asks G.ensure(...) for other operands' domains.
    kink(arrays, kwargs): a signature of where the op's kinks are, from the
        argument arrays as NumPy (None: a smooth op).
    form: how to print a call (for the program's source).
    """
    name: str
    call: Callable
    build: Callable
    domain: str = "finite"
    kink: Optional[Callable] = None
    form: str = "E.{name}({args})"
    weight: float = 1.0


def _tuple_lit(t):
    return "(" + ", ".join(_lit(e) for e in t) + ("," if len(t) == 1 else "") + ")"


# Input domains: a predicate on the (float64) values and the guard ops that
# map any finite value into the domain (each guard is a list of (op, extra args)).
DOMAINS = {
    "finite": (lambda v: np.all(np.isfinite(v)) and (v.size == 0 or np.max(np.abs(v)) <= 1e4),
               [("tanh", ())]),
    "bounded": (lambda v: np.all(np.isfinite(v)) and (v.size == 0 or np.max(np.abs(v)) <= 8),
                [("tanh", ())]),
    "positive": (lambda v: np.all(np.isfinite(v)) and (v.size == 0 or (np.min(v) >= 0.05 and np.max(v) <= 1e4)),
                 [("sigmoid", ()), ("Variable.__add__", (0.25,))]),
    "bounded_unit": (lambda v: np.all(np.isfinite(v)) and (v.size == 0 or np.max(np.abs(v)) < 1),
                     [("tanh", ())]),
    # 0.9 tanh: float32 tanh rounds to +-1 from |x| ~ 9, where arcsin' is infinite
    "inside_unit": (lambda v: np.all(np.isfinite(v)) and (v.size == 0 or np.max(np.abs(v)) <= 0.9),
                    [("tanh", ()), ("Variable.__mul__", (0.9,))]),
    "unit": (lambda v: np.all(np.isfinite(v)) and (v.size == 0 or (np.min(v) > 0 and np.max(v) < 1)),
             [("sigmoid", ())]),
    "gt_m1": (lambda v: np.all(np.isfinite(v)) and (v.size == 0 or (np.min(v) >= -0.9 and np.max(v) <= 1e4)),
              [("sigmoid", ())]),
    "nonzero": (lambda v: np.all(np.isfinite(v)) and (v.size == 0 or (np.min(np.abs(v)) >= 0.05
                                                                       and np.max(np.abs(v)) <= 1e4)),
                [("sigmoid", ()), ("Variable.__add__", (0.5,))]),
    # arccosh (h86): x >= 1.05, away from 1 where the derivative is infinite
    "gt_1": (lambda v: np.all(np.isfinite(v)) and (v.size == 0 or (np.min(v) >= 1.05 and np.max(v) <= 1e4)),
             [("sigmoid", ()), ("Variable.__add__", (1.1,))]),
}

MAX_SIZE = 48        # elements of any value
SHAPES = [(), (), (1,), (3,), (0,), (2, 3), (1, 3), (3, 1), (2, 0), (0, 3), (2, 2), (1, 1),
          (2, 0, 3), (2, 1, 3), (1, 2, 3), (2, 3, 1), (0,), (4,), (1, 0)]


def pick(rng, seq):
    """One element of ``seq`` as it is (rng.choice would make an array of them)."""
    return seq[int(rng.integers(len(seq)))]


def _size(shape):
    return math.prod(shape)


# -- signatures of kinks (C++ and reference must agree on them to compare) --
def _sign(arrs, kw):
    return [np.sign(arrs[0])]


def _ties(arrs, kw):
    a, b = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in arrs[:2]])
    return [np.sign(a - b)]


def _origin(arrs, kw):
    a, b = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in arrs[:2]])
    return [(a == 0) & (b == 0)]     # arctan2's gradient is a convention (0) there


def _clip_sig(arrs, kw):
    x = np.asarray(arrs[0], dtype=np.float64)
    lo, hi = arrs[1], arrs[2]
    out = []
    if lo is not None:
        out.append(np.sign(x - np.float64(lo)))
    if hi is not None:
        out.append(np.sign(x - np.float64(hi)))
    return out


def _extremum_sig(arrs, kw):
    x = np.asarray(arrs[0])
    axis = kw.get("axis")
    if x.size == 0:
        return []
    m = np.max(x, axis=axis, keepdims=True) if "max" in kw.get("_op", "max") else np.min(x, axis=axis, keepdims=True)
    return [x == m]


def _power_sig(arrs, kw):
    a, b = arrs[0], arrs[1]
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    return [a == 0, b == 0, np.sign(a)]


def _where_sig(arrs, kw):
    return [np.asarray(arrs[0])]


def _l1_sig(arrs, kw):
    return [np.sign(np.asarray(arrs[0], dtype=np.float64) - np.asarray(arrs[1], dtype=np.float64))]


# -- builders ----------------------------------------------------------------
def b_unary(G, x):
    return (Ref(x),), {}


def b_binary(G, x):
    return (Ref(x), G.operand(G.shape(x), "finite")), {}


def b_binary_r(G, x):
    # reflected operator: a constant on the left (Python/NumPy scalar or NumPy array)
    return (G.constant(G.shape(x), "finite"), Ref(x)), {}


def b_divide(G, x):
    return (Ref(x), G.operand(G.shape(x), "nonzero")), {}


def b_rdivide(G, x):
    x = G.ensure(x, "nonzero")
    return (G.constant(G.shape(x), "finite"), Ref(x)), {}


def b_power(G, x):
    r = G.rng.random()
    if r < 0.35:   # an integer exponent: any base (negative exponents: a base away from 0)
        e = int(G.rng.choice([0, 1, 2, 3, -1, -2]))
        if e < 0:
            x = G.ensure(x, "nonzero")
        else:
            x = G.ensure(x, "finite")
        e = pick(G.rng, [e, float(e), np.float64(e)]) if G.rng.random() < 0.3 else e
        return (Ref(x), e), {}
    if r < 0.6:    # a non-integer exponent: a positive base
        x = G.ensure(x, "positive")
        return (Ref(x), float(G.rng.choice([0.5, 1.5, -0.5, 2.5]))), {}
    if r < 0.8:    # a Variable exponent
        x = G.ensure(x, "positive")
        return (Ref(x), G.operand(G.shape(x), "bounded", allow_const=False)), {}
    # the conventions at a == 0 and b == 0: a base with zeros, integer exponents with zeros
    shape = G.shape(x)
    base = G.new_leaf(shape, values=G.rng.choice([0.0, 0.5, 1.0, 2.0], size=shape))
    expo = G.new_leaf(G.bshape(shape), values=None, kind="expo")
    return (base, expo), {}


def b_rpow(G, x):
    x = G.ensure(x, "bounded")
    return (pick(G.rng, [2.0, 0.5, 3, np.float64(1.5), np.float32(2.0)]), Ref(x)), {}


def b_clip(G, x):
    lo, hi = sorted(G.rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0], size=2))
    r = G.rng.random()
    if r < 0.15:
        lo = None
    elif r < 0.3:
        hi = None
    return (Ref(x), lo, hi), {}


def b_where(G, x):
    shape = G.shape(x)
    other = G.operand(shape, "finite")
    if G.rng.random() < 0.5:
        cond = G.rng.random(G.bshape(shape)) < 0.5
        return (cond, Ref(x), other), {}
    # a condition computed in each engine from a comparison (a kink signature)
    thr = float(G.rng.choice([0.0, 0.5, -1.0]))
    return (("cmp", Ref(x), thr), Ref(x), other), {}


def _axis_kw(G, shape, allow_tuple=True):
    nd = len(shape)
    r = G.rng.random()
    kw = {}
    if r < 0.3 or nd == 0:
        if nd == 0 and G.rng.random() < 0.5:
            kw["axis"] = (None if G.rng.random() < 0.5 else ()) if allow_tuple else None
        else:
            kw["axis"] = None
    elif r < 0.75 or not allow_tuple:
        a = int(G.rng.integers(0, nd))
        kw["axis"] = a - nd if G.rng.random() < 0.4 else a
    else:
        k = int(G.rng.integers(0, nd + 1))
        kw["axis"] = tuple(int(a) for a in sorted(G.rng.choice(nd, size=k, replace=False)))
    if G.rng.random() < 0.4:
        kw["keepdims"] = True
    if kw.get("axis", 0) is None and G.rng.random() < 0.5:
        del kw["axis"]
    return kw


def b_reduce(G, x):
    return (Ref(x),), _axis_kw(G, G.shape(x))


def b_extremum(G, x):
    shape = G.shape(x)
    kw = _axis_kw(G, shape)
    axis = kw.get("axis")
    axes = range(len(shape)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    if any(shape[a] == 0 for a in axes) and G.rng.random() < 0.8:
        return None   # mostly valid programs; sometimes the ValueError NumPy raises
    return (Ref(x),), kw


def b_softmax(G, x):
    shape = G.shape(x)
    nd = len(shape)
    if G.rng.random() < 0.4:
        return (Ref(x),), {}
    # a 0-d array takes axis 0 or -1 (PyTorch's rule; both engines give softmax 1, log_softmax 0)
    a = int(G.rng.integers(-max(nd, 1), max(nd, 1)))
    return (Ref(x),), {"axis": a}


def _random_reshape(G, shape):
    n = _size(shape)
    if n == 0:
        cands = [(0,), (0, 2), (2, 0), (3, 0, 1), (0, 5), (1, 0), (-1,), (0, -1)]
        return tuple(cands[int(G.rng.integers(len(cands)))])
    divs = [d for d in range(1, n + 1) if n % d == 0]
    r = G.rng.random()
    if r < 0.25:
        return (n,) if G.rng.random() < 0.5 else (-1,)
    if r < 0.35 and n == 1:
        return ()
    a = int(G.rng.choice(divs))
    s = [a, n // a]
    if G.rng.random() < 0.3:
        s.insert(int(G.rng.integers(0, 3)), 1)
    if G.rng.random() < 0.3:
        s[int(G.rng.integers(len(s)))] = -1
    return tuple(s)


def b_reshape(G, x):
    return (Ref(x), _random_reshape(G, G.shape(x))), {}


def b_method_reshape(G, x):
    s = _random_reshape(G, G.shape(x))
    if len(s) > 0 and G.rng.random() < 0.5:
        return (Ref(x),) + s, {}   # varargs form
    return (Ref(x), s), {}


def b_transpose(G, x):
    nd = len(G.shape(x))
    if G.rng.random() < 0.3:
        return (Ref(x),), {}
    perm = tuple(int(p) for p in G.rng.permutation(nd))
    if G.rng.random() < 0.3:
        perm = tuple(p - nd if G.rng.random() < 0.5 else p for p in perm)
    return (Ref(x), perm), {}


def b_method_transpose(G, x):
    args, kw = b_transpose(G, x)
    if len(args) == 2 and len(args[1]) > 0 and G.rng.random() < 0.5:
        return (Ref(x),) + args[1], {}
    return args, kw


def b_broadcast_to(G, x):
    shape = G.shape(x)
    new = list(shape)
    new = [int(G.rng.choice([2, 3])) if d == 1 and G.rng.random() < 0.5 else d for d in new]
    if G.rng.random() < 0.5:
        new = [int(G.rng.choice([0, 1, 2, 3]))] + new
    new = tuple(new)
    if _size(new) > MAX_SIZE:
        return None
    return (Ref(x), new), {}


def _same_shape_operands(G, x, shape, k):
    out = [Ref(x)]
    for _ in range(k):
        out.append(G.operand(shape, "finite", allow_const=False, exact=True))
    G.rng.shuffle(out)
    return out


def b_concatenate(G, x):
    shape = G.shape(x)
    nd = len(shape)
    if nd == 0:
        return None
    axis = int(G.rng.integers(-nd, nd))
    k = int(G.rng.integers(1, 3))
    parts = [Ref(x)]
    for _ in range(k):
        s = list(shape)
        s[axis] = int(G.rng.choice([0, 1, 2]))
        if G.rng.random() < 0.3:
            parts.append(Ref(x))   # the same Variable twice
        else:
            parts.append(G.operand(tuple(s), "finite", allow_const=False, exact=True))
    G.rng.shuffle(parts)
    if sum(_size(G.shape_of(p)) for p in parts) > MAX_SIZE:
        return None
    kw = {"axis": axis} if axis != 0 or G.rng.random() < 0.5 else {}
    return (parts,), kw


def b_stack(G, x):
    shape = G.shape(x)
    nd = len(shape)
    axis = int(G.rng.integers(-nd - 1, nd + 1))
    k = int(G.rng.integers(0, 3))
    parts = _same_shape_operands(G, x, shape, k)
    if _size(shape) * len(parts) > MAX_SIZE:
        return None
    kw = {"axis": axis} if axis != 0 or G.rng.random() < 0.5 else {}
    return (parts,), kw


def _matmul_other(G, shape):
    nd = len(shape)
    K = shape[-1]
    r = G.rng.random()
    N = int(G.rng.choice([0, 1, 2, 3]))
    if r < 0.25:
        return (K,)
    if r < 0.8 or nd < 2:
        return (K, N)
    batch = shape[:-2]
    b = tuple(int(G.rng.choice([d, 1])) for d in batch[-1:])
    return b + (K, N)


def b_matmul(G, x):
    shape = G.shape(x)
    if len(shape) == 0:
        return None
    other = _matmul_other(G, shape)
    return (Ref(x), G.operand(other, "finite", exact=True, allow_scalar=False)), {}


def b_rmatmul(G, x):
    shape = G.shape(x)
    if len(shape) == 0:
        return None
    # constant @ x: the constant is (..., M, K) with K = x's first matrix axis
    K = shape[0] if len(shape) == 1 else shape[-2]
    lhs = (int(G.rng.choice([0, 1, 2])), K) if G.rng.random() < 0.7 else (K,)
    return (G.constant(lhs, "finite", array=True), Ref(x)), {}


def b_linear(G, x):
    shape = G.shape(x)
    if len(shape) == 0:
        return None
    K, N = shape[-1], int(G.rng.choice([0, 1, 2, 3]))
    w = G.operand((K, N), "finite", exact=True, allow_scalar=False)
    if G.rng.random() < 0.3:
        return (Ref(x), w), {}
    b = G.operand((N,), "finite", exact=True, allow_scalar=False)
    return (Ref(x), w, b), {}


def _conditioned(E, x, symmetric=False):
    """4 I + x / 20 for x with entries in [-8, 8] ("bounded"): diagonally dominant up to n = 10,
    so inv, solve, slogdet compare well-conditioned matrices; symmetric: positive definite."""
    if symmetric:
        x = x + E.swapaxes(x, -1, -2)
    return x * 0.05 + (4.0 * np.eye(x.shape[-1])).astype(x.dtype)


def b_square(G, x):
    shape = G.shape(x)
    if len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] > 10:
        return None
    return (Ref(x),), {}


def b_solve(G, x):
    a = b_square(G, x)
    if a is None:
        return None
    n = G.shape(x)[-1]
    rhs = (n,) if G.rng.random() < 0.4 else G.shape(x)[:-1] + (int(G.rng.choice([0, 1, 2])),)
    return (Ref(x), G.operand(rhs, "finite", exact=True, allow_scalar=False)), {}


def b_astype(G, x):
    dt = G.dtype(x)
    to = F64 if dt == F32 else F32
    if G.rng.random() < 0.2:
        to = dt
    return (Ref(x), pick(G.rng, [to, to.type, to.name])), {}


def b_getitem(G, x):
    shape = G.shape(x)
    nd = len(shape)
    rng = G.rng
    kind = rng.random()
    if nd == 0:
        key = [None, Ellipsis, ()][int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
        return (Ref(x), key), {}
    if kind < 0.15 and shape[0] > 0:   # an int
        return (Ref(x), int(rng.integers(-shape[0], shape[0]))), {}
    if kind < 0.45:                   # a tuple of basic keys
        key = []
        for d in range(int(rng.integers(1, nd + 1))):
            n = shape[d]
            r = rng.random()
            if r < 0.3 and n > 0:
                key.append(int(rng.integers(-n, n)))
            elif r < 0.5:
                key.append(None)
            else:
                lo = int(rng.integers(-n - 1, n + 2)) if rng.random() < 0.5 else None
                hi = int(rng.integers(-n - 1, n + 2)) if rng.random() < 0.5 else None
                st = int(rng.choice([1, 2, -1, -2])) if rng.random() < 0.4 else None
                key.append(slice(lo, hi, st))
        if rng.random() < 0.3:
            key.insert(int(rng.integers(0, len(key) + 1)), Ellipsis)
        return (Ref(x), tuple(key)), {}
    if kind < 0.75:                   # integer arrays (repeats accumulate in the gradient)
        n = shape[0]
        if n == 0:
            idx = np.zeros(0, dtype=np.int64)
        else:
            idx = rng.integers(-n, n, size=int(rng.integers(0, 5)))
        if rng.random() < 0.3 and n > 0:
            idx = idx.reshape(-1, 1) if idx.size else idx
        if nd >= 2 and rng.random() < 0.3 and shape[1] > 0:
            idx2 = rng.integers(0, shape[1], size=idx.shape)
            return (Ref(x), (idx, idx2)), {}
        return (Ref(x), idx), {}
    # boolean masks: the whole shape or the first axis
    if rng.random() < 0.5:
        return (Ref(x), rng.random(shape) < 0.5), {}
    return (Ref(x), rng.random(shape[:1]) < 0.5), {}


def b_mse(G, x):
    shape = G.shape(x)
    t = G.rng.standard_normal(shape).astype(G.dtype(x))
    return (Ref(x), t), ({"reduction": str(G.rng.choice(["mean", "sum", "none"]))} if G.rng.random() < 0.7 else {})


def b_l1(G, x):
    shape = G.shape(x)
    t = G.rng.choice([-1.0, 0.0, 0.5, 1.0], size=shape).astype(G.dtype(x))
    return (Ref(x), t), ({"reduction": str(G.rng.choice(["mean", "sum", "none"]))} if G.rng.random() < 0.7 else {})


def b_cross_entropy(G, x):
    shape = G.shape(x)
    if len(shape) != 2:
        return None
    n, c = shape
    if G.rng.random() < 0.6:
        if c == 0 and n > 0:
            return None
        t = G.rng.integers(0, max(c, 1), size=n).astype(pick(G.rng, [np.int64, np.int32]))
    else:
        p = G.rng.random(shape) + 0.1
        t = (p / np.maximum(p.sum(axis=1, keepdims=True), 1e-30)).astype(G.dtype(x))
    return (Ref(x), t), ({"reduction": str(G.rng.choice(["mean", "sum", "none"]))} if G.rng.random() < 0.7 else {})


def b_bce(G, x):
    shape = G.shape(x)
    t = G.rng.choice([0.0, 1.0, 0.25], size=shape).astype(G.dtype(x))
    return (Ref(x), t), ({"reduction": str(G.rng.choice(["mean", "sum", "none"]))} if G.rng.random() < 0.7 else {})


# h89-views: diagonals, triangles and the axis ops
def _axes(G, nd, k):
    return [int(a) - (nd if G.rng.random() < 0.4 else 0) for a in G.rng.choice(nd, k, replace=False)]


def b_diagonal(G, x):
    nd = len(G.shape(x))
    if nd < 2:
        return None
    a1, a2 = _axes(G, nd, 2)
    return (Ref(x), int(G.rng.integers(-2, 3)), a1, a2), {}


def b_diag(G, x):
    shape = G.shape(x)
    if len(shape) not in (1, 2) or (len(shape) == 1 and shape[0] > 12):
        return None
    return (Ref(x), int(G.rng.integers(-2, 3))), {}


def b_triangle(G, x):
    return None if len(G.shape(x)) < 2 else ((Ref(x), int(G.rng.integers(-2, 3))), {})


def b_squeeze(G, x):
    ones = [a for a, n in enumerate(G.shape(x)) if n == 1]
    if not ones or G.rng.random() < 0.4:
        return (Ref(x),), {}
    return (Ref(x), int(G.rng.choice(ones))), {}


def b_expand_dims(G, x):
    nd = len(G.shape(x)) + 1
    return (Ref(x), _axes(G, nd, 1)[0]), {}


def b_swapaxes(G, x):
    nd = len(G.shape(x))
    return None if nd < 1 else ((Ref(x), *_axes(G, nd, 1), *_axes(G, nd, 1)), {})


def b_moveaxis(G, x):
    nd = len(G.shape(x))
    if nd < 1:
        return None
    k = int(G.rng.integers(1, nd + 1))
    return (Ref(x), tuple(_axes(G, nd, k)), tuple(_axes(G, nd, k))), {}


def _fn(name):
    return lambda E, *a, **k: getattr(E, name)(*a, **k)


def _method(name):
    return lambda E, x, *a, **k: getattr(x, name)(*a, **k)


def _nn(name):
    return lambda E, *a, **k: getattr(tg.nn, name)(*a, **k)


def _op(fn):
    return lambda E, *a, **k: fn(*a, **k)


def _ext_sig(which):
    def sig(arrs, kw):
        return _extremum_sig(arrs, dict(kw, _op=which))
    return sig


def _T(E, x):
    return x.T


OPS = {}


def _add(spec):
    OPS[spec.name] = spec


# functions of the module (tapegrad.X / tapegrad.reference.X)
# The spec's elementwise ops (tapegrad._core.__ops__): a new one is drawn with no edit here.
# Its test domain maps onto DOMAINS; exp overflows past |x| ~ 700, so it stays bounded (and so do
# expm1, sinh, cosh and exp2, h85).
def _spec_domain(name, domain):
    if name in ("exp", "expm1", "sinh", "cosh", "exp2"):
        return "bounded"
    if domain in ("real", "positive", "nonzero"):
        return {"real": "finite"}.get(domain, domain)
    lo, hi = domain
    if lo <= -1 and hi >= 1:
        return "bounded_unit"        # tanh's range fits
    if -1 <= lo < 0 < hi <= 1:
        return "inside_unit"         # arcsin, arccos: away from +-1, where the derivative is infinite
    if lo < 0 and hi >= 1:
        return "gt_m1" if lo <= -0.9 else "unit"
    if lo >= 1.05:
        return "gt_1"                # arccosh
    raise ValueError(f"random_programs: no DOMAINS entry for {name}'s test domain {domain}")


ELEMENTWISE_SPEC = {n: op for n, op in tg._core.__ops__.items() if op["family"] == "elementwise"}


def _b_params(names):
    """h92-param: an op with float parameters after x (elu's alpha): each drawn or left at its
    default, given by position or by name."""
    def build(G, x):
        vals = [float(pick(G.rng, [0.0, 0.01, 0.5, 1.0, 1.7, -0.3])) for _ in names]
        if G.rng.random() < 0.3:
            return (Ref(x),), {}
        if G.rng.random() < 0.5:
            return (Ref(x), *vals), {}
        return (Ref(x),), dict(zip(names, vals))
    return build


for _name, _entry in ELEMENTWISE_SPEC.items():
    _kink = _sign if ("step(" in _entry["deriv"] or "sign(" in _entry["deriv"]) else None
    _params = [a["name"] for a in _entry["args"][1:]]
    _add(OpSpec(_name, _fn(_name), _b_params(_params) if _params else b_unary,
                _spec_domain(_name, _entry["domain"]), _kink))
for _name in ["add", "subtract", "multiply"]:
    _add(OpSpec(_name, _fn(_name), b_binary))
_add(OpSpec("divide", _fn("divide"), b_divide))
_add(OpSpec("power", _fn("power"), b_power, "finite", lambda arrs, kw: _power_sig(arrs, kw)))
for _name in ["maximum", "minimum"]:
    _add(OpSpec(_name, _fn(_name), b_binary, "finite", _ties))
_add(OpSpec("clip", _fn("clip"), b_clip, "finite", _clip_sig))
_add(OpSpec("where", lambda E, c, a, b: E.where(c, a, b), b_where, "finite", _where_sig))
for _name in ["sum", "mean"]:
    _add(OpSpec(_name, _fn(_name), b_reduce))
for _name in ["max", "min"]:
    _add(OpSpec(_name, _fn(_name), b_extremum, "finite", _ext_sig(_name)))
_add(OpSpec("logsumexp", _fn("logsumexp"), b_reduce))
_add(OpSpec("softmax", _fn("softmax"), b_softmax))
_add(OpSpec("log_softmax", _fn("log_softmax"), b_softmax))
_add(OpSpec("reshape", _fn("reshape"), b_reshape))
_add(OpSpec("transpose", _fn("transpose"), b_transpose))
_add(OpSpec("broadcast_to", _fn("broadcast_to"), b_broadcast_to))
_add(OpSpec("concatenate", _fn("concatenate"), b_concatenate))
_add(OpSpec("stack", _fn("stack"), b_stack))
_add(OpSpec("matmul", _fn("matmul"), b_matmul, weight=1.5))
_add(OpSpec("linear", _fn("linear"), b_linear))
_add(OpSpec("astype", _fn("astype"), b_astype, weight=0.5))
for _name, _b in [("diagonal", b_diagonal), ("diag", b_diag), ("trace", b_diagonal), ("tril", b_triangle),
                 ("triu", b_triangle), ("squeeze", b_squeeze), ("expand_dims", b_expand_dims),
                 ("swapaxes", b_swapaxes), ("moveaxis", b_moveaxis)]:  # (h89-views)
    _add(OpSpec(_name, _fn(_name), _b, weight=0.5))
_add(OpSpec("arctan2", _fn("arctan2"), b_binary, "finite", _origin))
# h90-binary (fmax and logaddexp also as np.fmax / np.logaddexp below). hypot's gradient at the origin is 0/0 = NaN
# (PyTorch's), which later ops' masks (clip's where vs the reference's product) treat differently: its
# second operand is drawn nonzero, as divide's.
_add(OpSpec("logaddexp2", _fn("logaddexp2"), b_binary, "finite"))
_add(OpSpec("hypot", _fn("hypot"), b_divide, "finite"))
_add(OpSpec("fmin", _fn("fmin"), b_binary, "finite", _ties))
_add(OpSpec("fmax", _fn("fmax"), b_binary, "finite", _ties))
_add(OpSpec("logaddexp", _fn("logaddexp"), b_binary, "finite"))
_add(OpSpec("inv", lambda E, x: E.inv(_conditioned(E, x)), b_square, "bounded",
            form="E.inv(_conditioned(E, {a}))"))
_add(OpSpec("solve", lambda E, x, b: E.solve(_conditioned(E, x), b), b_solve, "bounded",
            form="E.solve(_conditioned(E, {a}), {b})"))
_add(OpSpec("slogdet", lambda E, x: E.slogdet(_conditioned(E, x))[1], b_square, "bounded",
            form="E.slogdet(_conditioned(E, {a}))[1]"))
_add(OpSpec("cholesky", lambda E, x: E.cholesky(_conditioned(E, x, symmetric=True)), b_square, "bounded",
            form="E.cholesky(_conditioned(E, {a}, symmetric=True))"))
# Variable methods
for _name, _b, _dom, _kink in [("sum", b_reduce, "finite", None), ("mean", b_reduce, "finite", None),
                               ("max", b_extremum, "finite", _ext_sig("max")),
                               ("min", b_extremum, "finite", _ext_sig("min")),
                               ("reshape", b_method_reshape, "finite", None),
                               ("transpose", b_method_transpose, "finite", None),
                               ("clip", b_clip, "finite", _clip_sig),
                               ("astype", b_astype, "finite", None),
                               ("diagonal", b_diagonal, "finite", None), ("trace", b_diagonal, "finite", None),
                               ("squeeze", b_squeeze, "finite", None), ("swapaxes", b_swapaxes, "finite", None)]:
    _add(OpSpec("Variable." + _name, _method(_name), _b, _dom, _kink, form="{a}.{name}({rest})",
                weight=0.5))
for _name, _entry in ELEMENTWISE_SPEC.items():
    if _entry["method"]:
        _add(OpSpec("Variable." + _name, _method(_name), b_unary, OPS[_name].domain, OPS[_name].kink,
                    form="{a}.{name}({rest})", weight=0.5))
# h88-scan: scans (axis None flattens), prod, var/std (a reduction's axes; ddof 0 or 1)
def b_scan(G, x):
    nd = len(G.shape(x))
    if nd == 0 or G.rng.random() < 0.3:
        return (Ref(x),), {}
    return (Ref(x),), {"axis": int(G.rng.integers(-nd, nd))}


def b_moments(G, x):
    # Not over no element: there the forward Jacobian downstream (tanh(nan) ...) differs, C++ 0 and
    # the reference nan (h88-scan: var/std of no element; see benchmarks/README.md).
    shape = G.shape(x)
    args, kw = b_reduce(G, x)
    axis = kw.get("axis")
    axes = range(len(shape)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    if any(shape[a] == 0 for a in axes):
        return None
    return args, dict(kw, ddof=int(G.rng.integers(0, 2))) if G.rng.random() < 0.3 else kw


for _name, _b, _dom in [("cumsum", b_scan, "finite"), ("cumprod", b_scan, "bounded"),
                        ("prod", b_reduce, "bounded"), ("var", b_moments, "finite"), ("std", b_moments, "finite")]:
    _add(OpSpec(_name, _fn(_name), _b, _dom))
    _add(OpSpec("Variable." + _name, _method(_name), _b, _dom, form="{a}.{name}({rest})", weight=0.5))
_add(OpSpec("Variable.T", _T, b_unary, form="{a}.T", weight=0.5))
# operators
for _name, _sym, _b, _dom, _kink in [
        ("__add__", "+", b_binary, "finite", None), ("__radd__", "+", b_binary_r, "finite", None),
        ("__sub__", "-", b_binary, "finite", None), ("__rsub__", "-", b_binary_r, "finite", None),
        ("__mul__", "*", b_binary, "finite", None), ("__rmul__", "*", b_binary_r, "finite", None),
        ("__truediv__", "/", b_divide, "finite", None), ("__rtruediv__", "/", b_rdivide, "finite", None),
        ("__pow__", "**", b_power, "finite", _power_sig),
        ("__rpow__", "**", b_rpow, "finite", lambda arrs, kw: _power_sig(arrs, kw)),
        ("__matmul__", "@", b_matmul, "finite", None), ("__rmatmul__", "@", b_rmatmul, "finite", None)]:
    _fnop = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
             "**": lambda a, b: a ** b, "@": lambda a, b: a @ b}[_sym]
    _add(OpSpec("Variable." + _name, _op(_fnop), _b, _dom, _kink, form="{a} " + _sym + " {b}"))
_add(OpSpec("Variable.__neg__", _op(lambda a: -a), b_unary, form="-{a}", weight=0.5))
_add(OpSpec("Variable.__getitem__", _op(lambda a, k: a[k]), b_getitem, form="{a}[{b}]", weight=2.0))
# tapegrad.nn losses (the same Python functions dispatch on the engine of their input)
_add(OpSpec("nn.mse_loss", _nn("mse_loss"), b_mse, form="tg.nn.mse_loss({args})", weight=0.5))
_add(OpSpec("nn.l1_loss", _nn("l1_loss"), b_l1, "finite", _l1_sig, form="tg.nn.l1_loss({args})", weight=0.5))
_add(OpSpec("nn.cross_entropy", _nn("cross_entropy"), b_cross_entropy, form="tg.nn.cross_entropy({args})",
            weight=0.7))
_add(OpSpec("nn.binary_cross_entropy_with_logits", _nn("binary_cross_entropy_with_logits"), b_bce,
            form="tg.nn.binary_cross_entropy_with_logits({args})", weight=0.5))

# NumPy-written programs: np.<name>(v, ...) dispatches to the engine of its Variable arguments
# (__array_ufunc__ / __array_function__), the same call on both engines.
def _np(name):
    fn = np
    for part in name.split("."):
        fn = getattr(fn, part)
    return lambda E, *a, **k: fn(*a, **k)


def b_scan(G, x):
    nd = len(G.shape(x))
    return (Ref(x),), ({} if nd == 0 or G.rng.random() < 0.3 else {"axis": int(G.rng.integers(-nd, nd))})


def b_var(G, x):
    args, kw = b_reduce(G, x)
    kw.pop("axis", None)  # one axis or all: var's N - ddof stays positive for ddof 0
    return args, kw


_NP_NAMED = {n for e in tg._core.__ops__.values() for n in e["numpy"]}
for _name in sorted(_NP_NAMED & set(ELEMENTWISE_SPEC)):
    _add(OpSpec("np." + _name, _np(_name), b_unary, OPS[_name].domain, OPS[_name].kink, form="np.{name}({args})",
                weight=0.5))
for _name, _b, _dom, _kink in [
        ("add", b_binary, "finite", None), ("subtract", b_binary, "finite", None),
        ("multiply", b_binary, "finite", None), ("divide", b_divide, "finite", None),
        ("maximum", b_binary, "finite", _ties), ("minimum", b_binary, "finite", _ties),
        ("fmax", b_binary, "finite", _ties), ("logaddexp", b_binary, "finite", None),
        ("clip", b_clip, "finite", _clip_sig), ("sum", b_reduce, "finite", None),
        ("mean", b_reduce, "finite", None), ("prod", b_reduce, "bounded", None), ("var", b_var, "finite", None),
        ("max", b_extremum, "finite", _ext_sig("max")), ("amin", b_extremum, "finite", _ext_sig("min")),
        ("reshape", b_reshape, "finite", None), ("transpose", b_transpose, "finite", None),
        ("broadcast_to", b_broadcast_to, "finite", None), ("concatenate", b_concatenate, "finite", None),
        ("stack", b_stack, "finite", None), ("matmul", b_matmul, "finite", None), ("dot", b_matmul, "finite", None),
        ("cumsum", b_scan, "finite", None), ("cumprod", b_scan, "bounded_unit", None),
        ("square", b_unary, "finite", None), ("positive", b_unary, "finite", None),
        ("reciprocal", b_unary, "nonzero", None), ("log2", b_unary, "positive", None),
        ("expm1", b_unary, "bounded", None), ("sinh", b_unary, "bounded", None),
        ("cosh", b_unary, "bounded", None), ("arcsinh", b_unary, "finite", None),
        ("fabs", b_unary, "finite", _sign), ("ravel", b_unary, "finite", None),
        ("floor", b_unary, "finite", None)]:
    _add(OpSpec("np." + _name, _np(_name), _b, _dom, _kink, form="np.{name}({args})", weight=0.5))


def _show(self, step):
    args = []
    for a in step.args:
        if isinstance(a, list):
            args.append("[" + ", ".join(_lit(e) for e in a) + "]")
        elif isinstance(a, tuple) and a and isinstance(a[0], str) and a[0] == "cmp":  # (a[0] may be an index array)
            args.append(f"({_lit(a[1])}.data > {a[2]!r})")
        elif isinstance(a, tuple):
            args.append(_tuple_lit(a))
        else:
            args.append(_lit(a))
    kw = [f"{k}={_tuple_lit(v) if isinstance(v, tuple) else _lit(v)}" for k, v in step.kwargs.items()]
    rest = ", ".join(args[1:] + kw)
    return self.form.format(name=self.name.split(".")[-1], args=", ".join(args + kw),
                            a=args[0] if args else "", b=args[1] if len(args) > 1 else "", rest=rest)


OpSpec.show = _show


def public_op_names():
    """What the table covers, for a check against the op spec: public names."""
    return sorted(OPS)


# ---------------------------------------------------------------------------
# Running a program on an engine
# ---------------------------------------------------------------------------
def _resolve(a, values, E):
    if isinstance(a, Ref):
        return values[a.i]
    if isinstance(a, list):
        return [_resolve(e, values, E) for e in a]
    if isinstance(a, tuple) and a and isinstance(a[0], str) and a[0] == "cmp":
        return np.asarray(values[a[1].i].data) > a[2]   # a comparison in this engine (NumPy bool array)
    return a


def _np(v):
    if v is None or isinstance(v, (float, int, np.generic)):
        return v
    if isinstance(v, np.ndarray):
        return v
    return np.asarray(v.data)


def execute(E, prog, xs, sigs=None, upto=None):
    """Run ``prog`` on engine E with input Variables ``xs``; the last value (or value ``upto``)."""
    values = []
    defs = prog.defs if upto is None else prog.defs[:upto + 1]
    for d in defs:
        if isinstance(d, Leaf):
            values.append(xs[d.k])
            continue
        spec = OPS[d.op]
        args = [_resolve(a, values, E) for a in d.args]
        if sigs is not None and spec.kink is not None:
            arrs = [_np(a) if not isinstance(a, list) else a for a in args]
            sigs.append(spec.kink(arrs, dict(d.kwargs)))
        values.append(spec.call(E, *args, **d.kwargs))
    return values[-1]


@dataclasses.dataclass
class Outcome:
    status: str            # "ok", "ambiguous", "error-ok", "fail"
    message: str = ""


class Quiet:
    """NumPy's warnings (the mean of an empty slice, log(0)) are the reference's, not a failure."""

    def __enter__(self):
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")
        self._e = np.errstate(all="ignore")
        self._e.__enter__()

    def __exit__(self, *exc):
        self._e.__exit__(*exc)
        self._w.__exit__(*exc)


def _forward_backward(E, prog):
    xs = [E.Variable(a.copy(), requires_grad=True) for a in prog.inputs]
    sigs = []
    out = execute(E, prog, xs, sigs)
    val = np.array(out.data, copy=True)
    if out.requires_grad:
        out.backward(prog.cotangent.astype(out.dtype))
    grads = [None if x.grad is None else np.array(x.grad, copy=True) for x in xs]
    return out, val, grads, sigs


def check(prog, modes=("value", "grad", "jvp", "jacobian"), tol=None):
    """Run ``prog`` on both engines and compare; an :class:`Outcome`."""
    tol = tol or tolerance(_program_dtypes(prog))
    with Quiet():
        if prog.expect_error is not None:
            try:
                with tg.no_grad():
                    execute(tg, prog, [tg.Variable(a.copy()) for a in prog.inputs])
            except prog.expect_error:
                return Outcome("error-ok")
            except Exception as e:   # noqa: BLE001
                return Outcome("fail", f"the reference raises {prog.expect_error.__name__}, C++ raises "
                                       f"{type(e).__name__}: {e}")
            return Outcome("fail", f"the reference raises {prog.expect_error.__name__}, C++ does not")
        try:
            c_out, c_val, c_grads, c_sigs = _forward_backward(tg, prog)
        except Exception as e:   # noqa: BLE001
            return Outcome("fail", f"C++ raised {type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}")
        r_out, r_val, r_grads, r_sigs = _forward_backward(REF, prog)
        if not _same_sigs(c_sigs, r_sigs):
            return Outcome("ambiguous")
        msg = compare_arrays(c_val, r_val, tol)
        if msg:
            return Outcome("fail", f"value: {msg}")
        if c_out.requires_grad != r_out.requires_grad:
            return Outcome("fail", f"requires_grad: C++ {c_out.requires_grad}, reference {r_out.requires_grad}")
        if "grad" in modes:
            for k, (a, b) in enumerate(zip(c_grads, r_grads)):
                msg = compare_arrays(a, b, tol)
                if msg:
                    return Outcome("fail", f"grad of x{k}: {msg}")
        ref_jvp = None
        if "jvp" in modes and prog.inputs:
            res = []
            for E in (tg, REF):
                try:
                    res.append(E.jvp(lambda *xs: execute(E, prog, xs), tuple(a.copy() for a in prog.inputs),
                                     tuple(prog.tangents)))
                except Exception as e:   # noqa: BLE001
                    return Outcome("fail", f"jvp on {E.__name__} raised {type(e).__name__}: {e}\n"
                                           f"{traceback.format_exc(limit=-3)}")
            for what, a, b in (("jvp value", res[0][0], res[1][0]), ("jvp tangent", res[0][1], res[1][1])):
                msg = compare_arrays(a, b, tol)
                if msg:
                    return Outcome("fail", f"{what}: {msg}")
            ref_jvp = res[1][1]
        if "jacobian" in modes and prog.inputs and c_val.size <= 32 and sum(a.size for a in prog.inputs) <= 48:
            # The C++ engine's whole Jacobian, checked against the reference in
            # two directions it already has: J·tangents (its jvp, for a
            # forward-mode Jacobian) or cotangentᵀ·J (its backward, for a
            # reverse-mode one). A reference Jacobian would cost more than the
            # rest of the check.
            mode = prog.jac_mode
            if mode == "auto":
                mode = tg.functional.choose_mode(sum(a.size for a in prog.inputs), c_val.size)
            try:
                jac = tg.jacobian(lambda *xs: execute(tg, prog, xs), tuple(a.copy() for a in prog.inputs),
                                  mode=prog.jac_mode, chunk_size=prog.jac_chunk)
            except Exception as e:   # noqa: BLE001
                return Outcome("fail", f"jacobian (mode {prog.jac_mode}) raised {type(e).__name__}: "
                                       f"{e}\n{traceback.format_exc(limit=-3)}")
            od = c_val.ndim
            for k, (J, a) in enumerate(zip(jac, prog.inputs)):
                want = tuple(c_val.shape) + a.shape
                if J.shape != want:
                    return Outcome("fail", f"jacobian wrt x{k}: shape {J.shape}, expected {want}")
                if J.dtype != np.result_type(c_val.dtype, a.dtype):
                    return Outcome("fail", f"jacobian wrt x{k}: dtype {J.dtype}")
            # An empty Jacobian contracts to 0s, where a sweep may carry 0 * nan (a nan upstream of an empty
            # output or downstream of empty inputs): nothing to compare then.
            if sum(J.size for J in jac) == 0:
                mode = "empty"
            if mode == "forward" and ref_jvp is not None and not prog.mean_of_empty:
                jt = sum(np.tensordot(J.astype(np.float64), t.astype(np.float64), axes=t.ndim) if t.ndim
                         else J.astype(np.float64) * float(t) for J, t in zip(jac, prog.tangents))
                msg = compare_arrays(np.asarray(jt, dtype=np.float64).reshape(c_val.shape),
                                     np.asarray(ref_jvp, dtype=np.float64), tol)
                if msg:
                    return Outcome("fail", f"jacobian (forward, chunk {prog.jac_chunk}) times the tangents: {msg}")
            if mode == "reverse" and r_out.requires_grad:
                cot = prog.cotangent.astype(np.float64)
                for k, (J, b) in enumerate(zip(jac, r_grads)):
                    ct = np.tensordot(cot, J.astype(np.float64), axes=od) if od else float(cot) * J.astype(np.float64)
                    msg = compare_arrays(np.asarray(ct, dtype=np.float64).reshape(prog.inputs[k].shape),
                                         None if b is None else np.asarray(b, dtype=np.float64), tol)
                    if msg and not (b is None and not np.any(ct)):
                        return Outcome("fail", f"cotangent times the jacobian (reverse, chunk {prog.jac_chunk}) "
                                               f"wrt x{k}: {msg}")
    return Outcome("ok")


def _same_sigs(a, b):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if len(x) != len(y):
            return False
        for p, q in zip(x, y):
            if np.shape(p) != np.shape(q) or not np.array_equal(p, q):
                return False
    return True


def _program_dtypes(prog):
    dts = [a.dtype for a in prog.inputs]
    for d in prog.defs:
        if isinstance(d, Step):
            for a in list(d.args) + list(d.kwargs.values()):
                if isinstance(a, (np.ndarray, np.generic)) and a.dtype.kind == "f":
                    dts.append(a.dtype)
                if isinstance(a, (np.dtype, type, str)) and d.op.endswith("astype"):
                    dts.append(np.dtype(a))
    return dts


# ---------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------
class Generator:
    """Builds one program, running it on the reference engine as it goes
    (shapes, dtypes and values decide which calls are valid and which
    domain guards are needed)."""

    def __init__(self, rng, seed, dtype_mode):
        self.rng = rng
        self.dtype_mode = dtype_mode
        self.prog = Program(seed=seed, inputs=[], defs=[])
        self.vals = []       # reference Variables (no grad), one per program value
        self.grow = True     # may a second operand broadcast the first one to a bigger shape?
        self.error = None

    # -- what is known about values
    def shape(self, i):
        return tuple(self.vals[i].shape)

    def dtype(self, i):
        return np.dtype(self.vals[i].dtype)

    def data(self, i):
        return np.asarray(self.vals[i].data, dtype=np.float64)

    def shape_of(self, a):
        if isinstance(a, Ref):
            return self.shape(a.i)
        return np.shape(a)

    def leaf_dtype(self):
        if self.dtype_mode == "mixed":
            return F32 if self.rng.random() < 0.5 else F64
        return F32 if self.dtype_mode == "float32" else F64

    # -- new values
    def _values(self, shape, kind=None):
        rng = self.rng
        if kind == "expo":
            return rng.choice([0.0, 1.0, 2.0, 3.0], size=shape)
        r = rng.random()
        if r < 0.35:        # small integers: ties and zeros (kinks)
            return rng.integers(-2, 3, size=shape).astype(np.float64)
        if r < 0.5:
            return rng.integers(-4, 5, size=shape) / 2.0
        if r < 0.6:         # all equal
            return np.full(shape, float(rng.choice([-1.0, 0.0, 0.5, 1.0])))
        return rng.standard_normal(shape)

    def new_leaf(self, shape, values=None, kind=None, dtype=None):
        dt = dtype or self.leaf_dtype()
        arr = np.asarray(self._values(shape, kind) if values is None else values, dtype=dt).reshape(shape)
        k = len(self.prog.inputs)
        self.prog.inputs.append(arr)
        self.prog.defs.append(Leaf(k))
        self.vals.append(REF.Variable(arr))
        return Ref(len(self.vals) - 1)

    def bshape(self, shape):
        """A shape that broadcasts with ``shape`` to ``shape``."""
        rng = self.rng
        r = rng.random()
        if r < 0.5 or len(shape) == 0:
            return tuple(shape)
        if r < 0.7:
            return tuple(shape[int(rng.integers(0, len(shape) + 1)):])
        if r < 0.9:
            return tuple(1 if rng.random() < 0.5 else d for d in shape)
        if r < 0.95 or not self.grow:
            return ()
        # a shape that broadcasts WITH shape to a bigger (often empty) one: (1,) with (0,), () with (2, 0)
        if 1 in shape and rng.random() < 0.7:
            return tuple(0 if d == 1 and rng.random() < 0.7 else d for d in shape)
        return (int(rng.choice([0, 2])),) + tuple(shape)

    def constant(self, shape, domain, array=False):
        """A Python scalar, NumPy scalar or NumPy array operand (not differentiated)."""
        rng = self.rng
        lo = {"positive": 0.5, "nonzero": 0.5, "gt_m1": 0.0, "gt_1": 1.05}.get(domain)
        def val():
            v = float(rng.choice([0.0, 1.0, -1.0, 0.5, 2.0, -2.5, 3.0]))
            if lo is not None and v < lo:
                v = 1.5
            return v
        r = rng.random()
        if array or r < 0.3:
            s = self.bshape(shape) if not array else tuple(shape)
            a = np.array([val() for _ in range(_size(s))]).reshape(s)
            return a.astype(self.leaf_dtype())
        v = val()
        if r < 0.5:
            return int(v) if float(v).is_integer() else v
        if r < 0.75:
            return v
        return np.float32(v) if rng.random() < 0.5 else np.float64(v)

    def operand(self, shape, domain, allow_const=True, exact=False, allow_scalar=True):
        """A second operand for an op whose primary operand has ``shape``."""
        rng = self.rng
        r = rng.random()
        if allow_const and allow_scalar and r < 0.3:
            return self.constant(shape, domain)
        want = tuple(shape) if exact else self.bshape(shape)
        if r < 0.6:   # an existing value of that shape
            cands = [i for i in range(len(self.vals)) if self.shape(i) == want]
            if cands:
                i = int(rng.choice(cands))
                return Ref(self.ensure(i, domain))
        leaf = self.new_leaf(want)
        return Ref(self.ensure(leaf.i, domain))

    def ensure(self, i, domain):
        """Value ``i``, or guard ops appended after it that map it into ``domain``."""
        if isinstance(i, Ref):
            i = i.i
        ok, guards = DOMAINS[domain]
        if ok(self.data(i)):
            return i
        if domain != "finite" and not DOMAINS["finite"][0](self.data(i)):
            i = self.ensure(i, "finite")
            if ok(self.data(i)):
                return i
        for op, extra in guards:
            i = self.append(op, (Ref(i),) + tuple(extra), {})
            if i is None:
                raise RuntimeError("a domain guard failed")
        return i

    def append(self, op, args, kwargs):
        """Append a step, run it on the reference; its value index (None if it raised)."""
        step = Step(op, tuple(args), dict(kwargs))
        spec = OPS[op]
        try:
            with Quiet(), REF.no_grad():
                v = spec.call(REF, *[_resolve(a, self.vals, REF) for a in args], **kwargs)
        except (ValueError, TypeError, IndexError) as e:
            self.prog.defs.append(step)
            self.error = type(e)
            return None
        if _size(v.shape) > MAX_SIZE * 4:
            raise _TooBig()
        self.prog.defs.append(step)
        self.vals.append(v)
        return len(self.vals) - 1


class _TooBig(Exception):
    pass


_NAMES = sorted(OPS)
_WEIGHTS = np.array([OPS[n].weight for n in _NAMES])
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def generate(seed, n_ops=None, shapes=None, dtype_mode=None, ops=None):
    """One random program (deterministic in ``seed``). ``shapes``/``ops``
    restrict the first input's shape and the ops drawn (the size-0 audit)."""
    rng = np.random.default_rng(seed)
    for _attempt in range(20):
        try:
            return _generate(rng, seed, n_ops, shapes, dtype_mode, ops)
        except _TooBig:
            continue
    raise RuntimeError(f"could not generate a program for seed {seed}")


def _generate(rng, seed, n_ops, shapes, dtype_mode, ops):
    dtype_mode = dtype_mode or str(rng.choice(["float32", "float64", "mixed"]))
    G = Generator(rng, seed, dtype_mode)
    n_ops = n_ops or int(rng.integers(3, 16))
    shape_list = shapes or SHAPES
    first = tuple(shape_list[int(rng.integers(len(shape_list)))])
    G.new_leaf(first)
    names = ops or _NAMES
    weights = None if ops else _WEIGHTS
    steps = 0
    tries = 0
    while steps < n_ops and tries < 200 and G.error is None:
        tries += 1
        # the primary operand: mostly the newest value
        nv = len(G.vals)
        x = nv - 1 if rng.random() < 0.6 else int(rng.integers(0, nv))
        name = str(rng.choice(names, p=weights))
        spec = OPS[name]
        xi = G.ensure(x, spec.domain)
        built = spec.build(G, xi)
        if built is None:
            continue
        args, kwargs = built
        if G.append(name, args, kwargs) is None and G.error is None:
            continue
        if G.error is None and _averages_nothing(name, args, kwargs, G):
            G.prog.mean_of_empty = True
        steps += 1
    prog = G.prog
    prog.expect_error = G.error
    if G.error is None:
        out = G.vals[-1]
        prog.cotangent = rng.standard_normal(out.shape).astype(out.dtype)
    prog.tangents = [rng.standard_normal(a.shape).astype(a.dtype) for a in prog.inputs]
    prog.jac_mode = str(rng.choice(["auto", "forward", "reverse"]))
    prog.jac_chunk = None if rng.random() < 0.6 else int(rng.integers(1, 5))
    return prog


def _averages_nothing(name, args, kwargs, G):
    if name not in ("mean", "Variable.mean", "np.mean", "np.var") and not (name.startswith("nn.") and
                                                     kwargs.get("reduction", "mean") == "mean"):
        return False
    shape = G.shape_of(args[0])
    axis = kwargs.get("axis")
    if axis is None or name.startswith("nn."):
        return _size(shape) == 0 or (name == "nn.cross_entropy" and shape[0] == 0)
    axes = (axis,) if isinstance(axis, int) else axis
    return any(shape[a] == 0 for a in axes)


def shrink(prog, modes=("value", "grad", "jvp", "jacobian")):
    """The shortest prefix of ``prog`` that still fails (its output: that step's value)."""
    best = prog
    for upto in range(1, len(prog.defs)):
        p = dataclasses.replace(prog, defs=prog.defs[:upto])
        if isinstance(p.defs[-1], Leaf):
            continue
        if prog.expect_error is None:
            with Quiet(), REF.no_grad():
                try:
                    out = execute(REF, p, [REF.Variable(a) for a in p.inputs])
                except Exception:   # noqa: BLE001
                    continue
            p.cotangent = np.random.default_rng(0).standard_normal(out.shape).astype(out.dtype)
        if check(p, modes).status == "fail":
            return p
    return best


def run(n, seed=0, verbose=False, show=False, stop_after=10, modes=("value", "grad", "jvp", "jacobian"), **gen_kw):
    """Generate and check ``n`` programs from ``seed``; a dict of counts and the failures."""
    counts = {"ok": 0, "ambiguous": 0, "error-ok": 0, "fail": 0}
    failures = []
    t0 = time.perf_counter()
    for s in range(seed, seed + n):
        prog = generate(s, **gen_kw)
        if show:
            print(f"# seed {s}\n{prog.source()}\n")
        out = check(prog, modes)
        counts[out.status] += 1
        if out.status == "fail":
            failures.append((prog, out))
            if verbose:
                small = shrink(prog, modes)
                print(f"FAIL seed {s}: {out.message}\n{prog.source()}\n-- shortest failing prefix:\n"
                      f"{small.source()}\n", flush=True)
            if len(failures) >= stop_after:
                break
        if verbose and (s - seed + 1) % 1000 == 0:
            print(f"{s - seed + 1} programs, {counts}, {time.perf_counter() - t0:.1f} s", flush=True)
    return counts, failures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="number of programs")
    p.add_argument("--seed", type=int, default=0, help="the first program's seed (program i has seed + i)")
    p.add_argument("--show", action="store_true", help="print every program")
    p.add_argument("--stop-after", type=int, default=20, help="stop after this many failures")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    counts, failures = run(a.n, a.seed, verbose=True, show=a.show, stop_after=a.stop_after)
    dt = time.perf_counter() - t0
    print(f"{sum(counts.values())} programs in {dt:.1f} s: {counts}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
