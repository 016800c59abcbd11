"""Symbolic differentiation with SymPy, and why AD beats it on nested functions.

This module is also a third *engine*: it has the op names of ``tapegrad``
and ``tapegrad.reference`` (``exp``, ``tanh``, ``matmul``, ``sum``,
``softmax``, ``Variable``…) acting on :class:`SymArray`, a NumPy object array
of SymPy expressions.  A function written as ``f(engine, *xs)`` (the
convention of :func:`tapegrad.testing.crosscheck`) therefore runs on numbers
with ``tapegrad`` and on symbols with ``tapegrad.symbolic``:

    def f(engine, x):
        return engine.sum(engine.tanh(x) * x)

    sf = to_sympy(f, (2,))           # sf.expr == x_0*tanh(x_0) + x_1*tanh(x_1)
    g = symbolic_gradient(f, (2,))   # exact expressions, g.exprs; g(x) evaluates them
    print(swell_report("sincos", 8)) # derivative size vs depth, against the tape

Functions ``f(*xs)`` that use only operators and Variable methods
(``x @ w``, ``(x * x).sum()``, ``x.tanh()``) run on symbols directly.

The elementwise ops (functions, SymArray methods, operators) are generated
from the tables ``UNARY_OPS`` and ``BINARY_OPS``: adding one is one line there.

SymPy is an optional dependency (``pip install 'tapegrad[symbolic]'``): it is
imported when a function here is first used, not when tapegrad is imported.

NB: like the engines, this module defines ``sum``, ``max``, ``min`` and
``abs``; the builtins are used through ``builtins.`` here.
"""
from __future__ import annotations

import builtins
import contextlib
import dataclasses
import functools
import inspect
import operator
import sys
import time

import numpy as np
from typing import Any, Callable, Optional, Sequence, Union

Shape = Union[int, Sequence[int]]

# ---------------------------------------------------------------------------
# The elementwise ops: one line each
# ---------------------------------------------------------------------------
# Each entry becomes a module function of that name (exp(x), add(a, b)); each
# unary op is also a SymArray method (x.exp()) unless it is in _NOT_METHODS,
# and _OPERATORS gives ops their Python operators (-x, a + b and b + a).  A
# rule gets the sympy module (imported lazily) and then its operands'
# expressions.  Kinks are SymPy's: d Max(u, v) = Heaviside(u - v) with
# Heaviside(0) = 1/2 (relu'(0) is 1/2 here, 0 in the engines), d Abs = sign.
UNARY_OPS: dict[str, Callable[..., Any]] = {  # (elu, leaky_relu take parameters after u)
    "negative": lambda sp, u: -u,
    "exp": lambda sp, u: sp.exp(u),
    "log": lambda sp, u: sp.log(u),
    "log1p": lambda sp, u: sp.log(1 + u),
    "sqrt": lambda sp, u: sp.sqrt(u),
    "sin": lambda sp, u: sp.sin(u),
    "cos": lambda sp, u: sp.cos(u),
    "tanh": lambda sp, u: sp.tanh(u),
    "sigmoid": lambda sp, u: 1 / (1 + sp.exp(-u)),
    "relu": lambda sp, u: sp.Max(u, 0),
    "abs": lambda sp, u: sp.Abs(u),
    "softplus": lambda sp, u: sp.log(1 + sp.exp(u)),
    "tan": lambda sp, u: sp.tan(u),
    "arcsin": lambda sp, u: sp.asin(u),
    "arccos": lambda sp, u: sp.acos(u),
    "arctan": lambda sp, u: sp.atan(u),
    "expm1": lambda sp, u: sp.exp(u) - 1,  # (h85-expfam)
    "sinh": lambda sp, u: sp.sinh(u),
    "cosh": lambda sp, u: sp.cosh(u),
    "exp2": lambda sp, u: 2 ** u,

    # h87-act
    "silu": lambda sp, u: u / (1 + sp.exp(-u)),
    "gelu": lambda sp, u: u / (1 + sp.exp(-2 * sp.sqrt(2 / sp.pi) * (u + sp.Rational(44715, 10**6) * u**3))),
    "log_sigmoid": lambda sp, u: -sp.log(1 + sp.exp(-u)),

    # h84-round: the piecewise-constant ones as functions of derivative 0 (SymPy's sign' is a
    # DiracDelta, floor's unevaluated), as in the engines
    "floor": lambda sp, u: _zero_derivative("floor_")(u),
    "ceil": lambda sp, u: _zero_derivative("ceil_")(u),
    "rint": lambda sp, u: _zero_derivative("rint_")(u),
    "trunc": lambda sp, u: _zero_derivative("trunc_")(u),
    "sign": lambda sp, u: _zero_derivative("sign_")(u),
    "square": lambda sp, u: u ** 2,
    "reciprocal": lambda sp, u: 1 / u,
    "positive": lambda sp, u: u,

    "log2": lambda sp, u: sp.log(u, 2),
    "log10": lambda sp, u: sp.log(u, 10),
    "cbrt": lambda sp, u: sp.Piecewise((u ** sp.Rational(1, 3), u >= 0), (-(-u) ** sp.Rational(1, 3), True)),
    "arcsinh": lambda sp, u: sp.asinh(u),
    "arccosh": lambda sp, u: sp.acosh(u),
    "arctanh": lambda sp, u: sp.atanh(u),
    "deg2rad": lambda sp, u: u * sp.pi / 180,  # (h92-param)
    "rad2deg": lambda sp, u: u * 180 / sp.pi,
    # h92-param: float parameters after u (numbers in the expression), by position or name
    "elu": lambda sp, u, alpha=1.0: sp.Piecewise((u, u > 0), (alpha * (sp.exp(u) - 1), True)),
    "leaky_relu": lambda sp, u, negative_slope=0.01: sp.Piecewise((u, u > 0), (negative_slope * u, True)),
}
BINARY_OPS = {
    "add": lambda sp, u, v: u + v,
    "subtract": lambda sp, u, v: u - v,
    "multiply": lambda sp, u, v: u * v,
    "divide": lambda sp, u, v: u / v,
    "power": lambda sp, u, v: u ** v,
    "arctan2": lambda sp, u, v: sp.atan2(u, v),
    "maximum": lambda sp, u, v: sp.Max(u, v),
    "minimum": lambda sp, u, v: sp.Min(u, v),
    # h90-binary (symbols are real, never NaN: fmax/fmin are Max/Min)
    "logaddexp": lambda sp, u, v: sp.log(sp.exp(u) + sp.exp(v)),
    "logaddexp2": lambda sp, u, v: sp.log(2 ** u + 2 ** v) / sp.log(2),
    "hypot": lambda sp, u, v: sp.sqrt(u ** 2 + v ** 2),
    "fmax": lambda sp, u, v: sp.Max(u, v),
    "fmin": lambda sp, u, v: sp.Min(u, v),
}
_NOT_METHODS = {"negative", "elu", "leaky_relu"}  # the engines' Variable spells it -x; elu: functions only
_OPERATORS = {"negative": "neg", "abs": "abs",  # __neg__, __abs__
              "add": "add", "subtract": "sub", "multiply": "mul", "divide": "truediv", "power": "pow"}
UNARY_METHODS = tuple(n for n in UNARY_OPS if n not in _NOT_METHODS)

__all__ = [
    "SymArray", "to_sympy", "symbolic_gradient", "symbolic_jacobian", "swell_report",
    "SymbolicFunction", "SymbolicDerivative", "SwellReport", "UNARY_OPS", "BINARY_OPS", "UNARY_METHODS",
    # the engine names
    "Variable", "from_numpy", "no_grad", "enable_grad", "is_grad_enabled",
    *UNARY_OPS, *BINARY_OPS, "clip", "where", "sum", "mean", "max", "min",
    "reshape", "transpose", "broadcast_to", "concatenate", "stack",
    "matmul", "linear", "softmax", "log_softmax", "logsumexp", "astype",
    "inv", "solve", "slogdet", "cholesky", "cumsum", "cumprod", "prod", "var", "std",
    "diagonal", "diag", "trace", "squeeze", "expand_dims", "swapaxes", "moveaxis", "tril", "triu",
]


def _sympy():
    try:
        import sympy
    except ImportError as exc:  # pragma: no cover - sympy is in the test extra
        raise ImportError("tapegrad.symbolic needs SymPy: pip install 'tapegrad[symbolic]' "
                          "(or pip install sympy)") from exc
    return sympy


# ---------------------------------------------------------------------------
# Arrays of expressions
# ---------------------------------------------------------------------------

def _number(v):
    """A NumPy/Python number as a SymPy number (integral floats become Integers, for readable output)."""
    sp = _sympy()
    if isinstance(v, sp.Basic):
        return v
    if isinstance(v, (bool, np.bool_)):
        return sp.Integer(int(v))
    if isinstance(v, (int, np.integer)):
        return sp.Integer(int(v))
    v = float(v)
    if np.isfinite(v) and v == int(v) and builtins.abs(v) < 2 ** 53:
        return sp.Integer(int(v))
    return sp.Float(v)


def _objects(x):
    """An object array of SymPy expressions from a SymArray, array or number."""
    if isinstance(x, SymArray):
        return x.data
    arr = np.asarray(x)
    if arr.dtype == object:
        return np.vectorize(_number, otypes=[object])(arr) if arr.size else arr
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"tapegrad.symbolic: cannot use dtype {arr.dtype} as a symbolic constant")
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        out[idx] = _number(arr[idx])
    return out


def _wrap(obj):
    """A SymArray around an object array (0-d for a bare expression)."""
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        return SymArray(obj)
    out = np.empty((), dtype=object)
    out[()] = obj
    return SymArray(out)


def _map(fn, x):
    """fn applied to every expression of x."""
    data = _objects(x)
    out = np.empty(data.shape, dtype=object)
    for idx in np.ndindex(data.shape):
        out[idx] = fn(data[idx])
    return SymArray(out)


def _binary(fn, a, b):
    """fn applied elementwise with NumPy broadcasting."""
    da, db = np.broadcast_arrays(_objects(a), _objects(b))
    out = np.empty(da.shape, dtype=object)
    for idx in np.ndindex(da.shape):
        out[idx] = fn(da[idx], db[idx])
    return SymArray(out)


class SymArray:
    """An n-d array of SymPy expressions with the Variable interface of the engines.

    ``.data`` is the NumPy object array; ``.item()`` the expression of a
    one-element array.  Operators broadcast like NumPy; ``ndarray ⊕ SymArray``
    works too (NumPy hands the operator to SymArray).
    """
    __array_ufunc__ = None  # NumPy defers arr + s, arr @ s to the reflected methods
    requires_grad = False
    grad = None
    grad_fn = None

    def __init__(self, data):
        is_objects = isinstance(data, np.ndarray) and data.dtype == object
        self.data = data if is_objects else _objects(data)  # numbers become SymPy numbers

    # array protocol --------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: np.dtype(object))
    T = property(lambda self: SymArray(self.data.T))

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return f"SymArray({self.data!r})" if self.ndim else f"SymArray({self.item()!r})"

    def numpy(self):
        return self.data

    def item(self):
        if self.size != 1:
            raise ValueError(f"item: only one-element arrays convert to one expression, got shape {self.shape}")
        return self.data.reshape(-1)[0]

    def detach(self):
        return self

    def __getitem__(self, key):
        if isinstance(key, SymArray):
            raise TypeError("tapegrad.symbolic: index with NumPy arrays, not with symbols")
        return _wrap(self.data[key])

    # operators: those of the elementwise ops are generated from _OPERATORS
    def __matmul__(self, o): return matmul(self, o)
    def __rmatmul__(self, o): return matmul(o, self)
    def __pos__(self): return self

    # comparisons give SymPy relationals, usable as where's condition
    def __lt__(self, o): return _binary(lambda a, b: a < b, self, o)
    def __le__(self, o): return _binary(lambda a, b: a <= b, self, o)
    def __gt__(self, o): return _binary(lambda a, b: a > b, self, o)
    def __ge__(self, o): return _binary(lambda a, b: a >= b, self, o)
    __hash__ = object.__hash__

    # methods mirroring functions
    def sum(self, axis=None, keepdims=False): return sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return min(self, axis, keepdims)
    def cumsum(self, axis=None): return cumsum(self, axis)
    def cumprod(self, axis=None): return cumprod(self, axis)
    def prod(self, axis=None, keepdims=False): return prod(self, axis, keepdims)
    def var(self, axis=None, ddof=0, keepdims=False): return var(self, axis, ddof, keepdims)
    def std(self, axis=None, ddof=0, keepdims=False): return std(self, axis, ddof, keepdims)
    # exp, log, … are generated from UNARY_OPS (UNARY_METHODS)
    def clip(self, a_min, a_max): return clip(self, a_min, a_max)
    def astype(self, dtype): return self

    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def transpose(self, *axes):
        return transpose(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else (axes or None))

    def diagonal(self, offset=0, axis1=0, axis2=1): return diagonal(self, offset, axis1, axis2)
    def trace(self, offset=0, axis1=0, axis2=1): return trace(self, offset, axis1, axis2)
    def squeeze(self, axis=None): return squeeze(self, axis)
    def swapaxes(self, axis1, axis2): return swapaxes(self, axis1, axis2)


# ---------------------------------------------------------------------------
# The engine names
# ---------------------------------------------------------------------------

def Variable(data, requires_grad=False, dtype=None):
    """A constant (numbers become SymPy numbers); a SymArray is kept as it is."""
    return data if isinstance(data, SymArray) else SymArray(_objects(data))


from_numpy = Variable


@contextlib.contextmanager
def no_grad():
    yield  # nothing is recorded on symbols


enable_grad = no_grad


def is_grad_enabled():
    return False


def astype(x, dtype): return Variable(x)


def _elementwise(name, rule, arity):
    """The engine function of one line of UNARY_OPS (arity 1) or BINARY_OPS (arity 2)."""
    def unary(x, *params, **named):  # (params: h92-param's elu(x, alpha))
        sp = _sympy()
        return _map(lambda u: rule(sp, u, *params, **named), x)

    def binary(a, b):
        sp = _sympy()
        return _binary(lambda u, v: rule(sp, u, v), a, b)

    op = unary if arity == 1 else binary
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"Elementwise {name} of SymArrays, arrays or numbers (NumPy broadcasting); "
                  f"rule: {'UNARY' if arity == 1 else 'BINARY'}_OPS[{name!r}].")
    return op


def _define_elementwise_ops():
    """The module functions, SymArray methods and operators of UNARY_OPS and BINARY_OPS."""
    for name, rule in [*UNARY_OPS.items(), *BINARY_OPS.items()]:
        fn = globals()[name] = _elementwise(name, rule, 1 if name in UNARY_OPS else 2)
        if name in UNARY_METHODS:
            setattr(SymArray, name, fn)
        if name in _OPERATORS:
            setattr(SymArray, f"__{_OPERATORS[name]}__", fn)
            if name in BINARY_OPS:
                setattr(SymArray, f"__r{_OPERATORS[name]}__", lambda self, o, fn=fn: fn(o, self))


_define_elementwise_ops()


def clip(x, a_min, a_max):
    sp = _sympy()
    lo, hi = _number(a_min), _number(a_max)
    return _map(lambda u: sp.Min(sp.Max(u, lo), hi), x)


def where(cond, x, y):
    """NumPy's where; a symbolic condition (from comparing SymArrays) gives Piecewise."""
    sp = _sympy()
    if isinstance(cond, SymArray):
        c, dx, dy = np.broadcast_arrays(cond.data, _objects(x), _objects(y))
        out = np.empty(c.shape, dtype=object)
        for idx in np.ndindex(c.shape):
            out[idx] = sp.Piecewise((dx[idx], c[idx]), (dy[idx], True))
        return SymArray(out)
    return SymArray(np.where(np.asarray(cond, dtype=bool), _objects(x), _objects(y)))


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _reduce(x, axis, keepdims, combine):
    """combine(list of expressions) over the axes, NumPy's shape rules."""
    data = _objects(x)
    axes = _axes(axis, data.ndim) if data.ndim else ()
    keep = [a for a in range(data.ndim) if a not in axes]
    moved = np.transpose(data, keep + list(axes))
    lead = tuple(data.shape[a] for a in keep)
    flat = moved.reshape(lead + (-1,))
    out = np.empty(lead, dtype=object)
    for idx in np.ndindex(lead):
        out[idx] = combine(list(flat[idx]))
    if keepdims:
        out = out.reshape(tuple(1 if a in axes else n for a, n in enumerate(data.shape)))
    return SymArray(out)


def sum(x, axis=None, keepdims=False):
    return _reduce(x, axis, keepdims, lambda items: _sympy().Add(*items))


def mean(x, axis=None, keepdims=False):
    return _reduce(x, axis, keepdims, lambda items: _sympy().Add(*items) / len(items))


def max(x, axis=None, keepdims=False):
    return _reduce(x, axis, keepdims, lambda items: _sympy().Max(*items))


def min(x, axis=None, keepdims=False):
    return _reduce(x, axis, keepdims, lambda items: _sympy().Min(*items))


def _scan(x, axis, combine):
    """Running combine(a, b) along axis (the flattened array when None)."""
    data = _objects(x)
    if axis is None:
        data, axis = data.reshape(-1), 0
    axis = _axes(axis, data.ndim)[0]
    out = np.moveaxis(data, axis, 0).copy()
    for k in range(1, out.shape[0]):
        out[k] = np.frompyfunc(combine, 2, 1)(out[k - 1], out[k])
    return SymArray(np.moveaxis(out, 0, axis))


def cumsum(x, axis=None):
    return _scan(x, axis, lambda a, b: a + b)


def cumprod(x, axis=None):
    return _scan(x, axis, lambda a, b: a * b)


def prod(x, axis=None, keepdims=False):
    return _reduce(x, axis, keepdims, lambda items: _sympy().Mul(*items))


def _var(items, ddof):
    sp = _sympy()
    m = sp.Add(*items) / len(items)
    return sp.Add(*[(i - m) ** 2 for i in items]) / (len(items) - ddof)


def var(x, axis=None, ddof=0, keepdims=False):
    return _reduce(x, axis, keepdims, lambda items: _var(items, ddof))


def std(x, axis=None, ddof=0, keepdims=False):
    return _reduce(x, axis, keepdims, lambda items: _sympy().sqrt(_var(items, ddof)))


def logsumexp(x, axis=None, keepdims=False):
    return sum(Variable(x).exp(), axis, keepdims).log()


def softmax(x, axis=-1):
    e = Variable(x).exp()
    return e / sum(e, axis, keepdims=True)


def log_softmax(x, axis=-1):
    return Variable(x) - logsumexp(x, axis, keepdims=True)


def reshape(x, shape):
    return SymArray(_objects(x).reshape(shape))


def transpose(x, axes=None):
    return SymArray(np.transpose(_objects(x), axes))


def broadcast_to(x, shape):
    return SymArray(np.array(np.broadcast_to(_objects(x), shape)))


def concatenate(seq, axis=0):
    return SymArray(np.concatenate([_objects(s) for s in seq], axis=axis))


def stack(seq, axis=0):
    return SymArray(np.stack([_objects(s) for s in seq], axis=axis))


# h89-views: NumPy's own functions on the object arrays (copies: symbols are values)
def diagonal(x, offset=0, axis1=0, axis2=1):
    return SymArray(np.array(np.diagonal(_objects(x), offset, axis1, axis2)))


def diag(x, k=0):
    d = _objects(x)
    if d.ndim != 1:
        return SymArray(np.array(np.diag(d, k)))
    m = len(d) + builtins.abs(k)              # the vector on the k-th diagonal of zeros (m, m)
    out = np.full((m, m), _number(0), dtype=object)
    i = np.arange(len(d))
    out[(i, i + k) if k >= 0 else (i - k, i)] = d
    return SymArray(out)


def trace(x, offset=0, axis1=0, axis2=1):
    return sum(diagonal(x, offset, axis1, axis2), axis=-1)


def squeeze(x, axis=None):
    return SymArray(np.squeeze(_objects(x), axis))


def expand_dims(x, axis):
    return SymArray(np.expand_dims(_objects(x), axis))


def swapaxes(x, axis1, axis2):
    return SymArray(np.swapaxes(_objects(x), axis1, axis2))


def moveaxis(x, source, destination):
    return SymArray(np.moveaxis(_objects(x), source, destination))


def tril(x, k=0):
    d = _objects(x)
    n, m = d.shape[-2:]
    return SymArray(np.where(np.tri(n, m, k, dtype=bool), d, _number(0)))


def triu(x, k=0):
    d = _objects(x)
    n, m = d.shape[-2:]
    return SymArray(np.where(np.tri(n, m, k - 1, dtype=bool), _number(0), d))


def matmul(a, b):
    """NumPy's matmul on expressions: each entry is one Add of products."""
    da, db = _objects(a), _objects(b)
    if da.ndim == 0 or db.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got shapes {da.shape} and {db.shape}")
    return _wrap(np.matmul(da, db))


def linear(x, weight, bias=None):
    """``x @ weight + bias`` (bias optional): x (..., K), weight (K, N), bias (N,), as in the engines."""
    x, weight = Variable(x), Variable(weight)
    what = f"x {x.shape}, weight {weight.shape}" + ("" if bias is None else f", bias {np.shape(bias)}")
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"linear: expected x (..., K) and weight (K, N), got {what}")
    if bias is not None and np.shape(bias) != (weight.shape[1],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[1]},), got {what}")
    y = matmul(x, weight)
    return y if bias is None else y + bias


def _per_matrix(name, fn, a, *, out_tail):
    """fn(sympy.Matrix) over the last two axes of a; out_tail: the result's per-matrix shape."""
    sp = _sympy()
    da = _objects(a)
    if da.ndim < 2 or da.shape[-1] != da.shape[-2]:
        raise np.linalg.LinAlgError(f"{name}: the last 2 dimensions must be square, got shape {da.shape}")
    out = np.empty(da.shape[:-2] + out_tail, dtype=object)
    for idx in np.ndindex(da.shape[:-2]):
        r = fn(sp.Matrix(da[idx]))
        out[idx] = np.array(r.tolist(), dtype=object).reshape(out_tail) if out_tail else r
    return SymArray(out)


def inv(a):
    """SymPy's Matrix.inv over the last two axes (an expression of every entry: swells fast)."""
    n = np.shape(_objects(a))[-1:]
    return _per_matrix("inv", lambda m: m.inv(), a, out_tail=n + n)


def solve(a, b):
    """inv(a) @ b, NumPy 2's rule (b a vector when 1-d)."""
    b = Variable(b)
    if b.ndim == 1:
        return matmul(inv(a), b.reshape((-1, 1))).reshape(np.shape(_objects(a))[:-2] + (b.shape[0],))
    return matmul(inv(a), b)


def slogdet(a):
    """(sign, log|det a|): SymPy's det, its sign and log of its absolute value. The sign is
    constant (derivative 0, as in both engines), not SymPy's sign, whose derivative is a
    DiracDelta that lambdify cannot evaluate."""
    sp = _sympy()
    det_ = _per_matrix("slogdet", lambda m: m.det(), a, out_tail=())
    return _map(_zero_derivative("sign_"), det_), _map(lambda d: sp.log(sp.Abs(d)), det_)


def cholesky(a):
    """SymPy's Matrix.cholesky (lower factor) of the symmetric matrix a's lower triangle defines, as NumPy reads it."""
    sp = _sympy()
    n = np.shape(_objects(a))[-1:]

    def lower_symmetric(m):
        return sp.Matrix(m.rows, m.cols, lambda i, j: m[builtins.max(i, j), builtins.min(i, j)])
    return _per_matrix("cholesky", lambda m: lower_symmetric(m).cholesky(hermitian=False), a, out_tail=n + n)


# ---------------------------------------------------------------------------
# Running functions on symbols
# ---------------------------------------------------------------------------

def _shape(s):
    return (int(s),) if isinstance(s, (int, np.integer)) else tuple(int(n) for n in s)


def _symbols(shapes, names):
    """One array of real Symbols per input: x, or x_0, x_1, … (x_0_1 for matrices)."""
    sp = _sympy()
    defaults = ["x", "y", "z", "w", "u", "v"]
    if names is None:
        names = [defaults[i] if i < len(defaults) else f"a{i}" for i in range(len(shapes))]
    if len(names) != len(shapes):
        raise ValueError(f"to_sympy: {len(names)} names for {len(shapes)} shapes")
    out = []
    for name, shape in zip(names, shapes):
        arr = np.empty(shape, dtype=object)
        for idx in np.ndindex(shape):
            arr[idx] = sp.Symbol(name if not shape else name + "_" + "_".join(map(str, idx)), real=True)
        out.append(arr)
    return out


def _takes_engine(f, n):
    """Does f take an engine before its n inputs (f(engine, *xs))? Judged by its required positional parameters."""
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty]
    return len(required) == n + 1


def _run(f, xs, takes_engine, what):
    engine = sys.modules[__name__]  # this module is the engine
    args = [SymArray(x) for x in xs]
    if takes_engine is None:
        takes_engine = _takes_engine(f, len(args))
    try:
        out = f(engine, *args) if takes_engine else f(*args)
    except TypeError as exc:
        raise TypeError(f"{what}: f failed on symbols ({exc}). A function that calls tapegrad functions "
                        f"(tapegrad.exp(x)) cannot run on symbols: write it as f(engine, *xs) using "
                        f"engine.exp etc., so that tapegrad.symbolic can be the engine") from exc
    if not isinstance(out, SymArray):
        if isinstance(out, np.ndarray) or np.isscalar(out) or isinstance(out, _sympy().Basic):
            out = SymArray(_objects(out))
        else:
            raise TypeError(f"{what}: f must return an array, got {type(out).__name__}")
    return out.data


@dataclasses.dataclass
class SymbolicFunction:
    """A function's outputs as SymPy expressions of its inputs' symbols.

    symbols: one object array of Symbols per input; output: object array of
    expressions (the output's shape); expr: the expression of a one-element
    output.  Calling it evaluates the expressions at NumPy arrays.
    """
    symbols: tuple
    output: np.ndarray

    @property
    def expr(self):
        if self.output.size != 1:
            raise ValueError(f"expr: the output has shape {self.output.shape}; use .output")
        return self.output.reshape(-1)[0]

    @property
    def shape(self):
        return self.output.shape

    def __call__(self, *arrays):
        return _evaluate(self.symbols, [self.output], arrays)[0]


@dataclasses.dataclass
class SymbolicDerivative:
    """Exact derivative expressions: ``exprs[i]`` for input i, shape output + input
    (gradient: the input's shape).  Calling it evaluates them (lambdify, with
    common subexpressions shared) and returns one array per input (the array
    itself for a single input)."""
    function: SymbolicFunction
    exprs: tuple

    def __call__(self, *arrays):
        vals = _evaluate(self.function.symbols, list(self.exprs), arrays)
        return vals[0] if len(vals) == 1 else tuple(vals)


def _heaviside(a, h0=0.5):
    return np.heaviside(a, h0)


def _maxof(*args):
    return np.max(np.stack(np.broadcast_arrays(*args)), axis=0)


def _minof(*args):
    return np.min(np.stack(np.broadcast_arrays(*args)), axis=0)


_NUMERIC_FUNCTIONS = {"heaviside_": _heaviside, "maxof_": _maxof, "minof_": _minof}


def _plain_functions(expr):
    """Max, Min and Heaviside as opaque functions for lambdify: SymPy's NumPy printer
    rewrites nested ones into select() calls whose conditions NumPy 2 rejects. For the same
    reason a condition ITE(c, a, b) (SymPy's form of a comparison of a Piecewise) becomes
    (c & a) | (~c & b)."""
    sp = _sympy()
    if not isinstance(expr, sp.Basic):
        return expr
    return expr.replace(sp.Heaviside, sp.Function("heaviside_")).replace(
        sp.Max, sp.Function("maxof_")).replace(sp.Min, sp.Function("minof_")).replace(
        sp.ITE, lambda c, a, b: sp.Or(sp.And(c, a), sp.And(sp.Not(c), b)))


def _evaluate(symbols, exprs, arrays):
    """Evaluate object arrays of expressions at numbers for the symbols (cached lambdify)."""
    sp = _sympy()
    if len(arrays) != len(symbols):
        raise ValueError(f"expected {len(symbols)} input arrays, got {len(arrays)}")
    flat_syms = [s for arr in symbols for s in arr.reshape(-1)]
    values = []
    for arr, sym in zip(arrays, symbols):
        a = np.asarray(arr, dtype=np.float64)
        if a.shape != sym.shape:
            raise ValueError(f"an input has shape {a.shape} but its symbols have shape {sym.shape}")
        # one-element arrays, not floats: lambdified Piecewise (from Max, Abs…) needs array conditions
        values.extend(np.array([v]) for v in a.reshape(-1))
    flat_exprs = [_plain_functions(e) for arr in exprs for e in arr.reshape(-1)]
    fn = sp.lambdify(flat_syms, flat_exprs, modules=[_NUMERIC_FUNCTIONS, "numpy"], cse=True)
    with np.errstate(all="ignore"):  # lambdify computes every branch of a Piecewise, the ruled-out ones too
        flat = [float(np.asarray(v, dtype=np.float64).reshape(-1)[0]) for v in fn(*values)] if flat_exprs else []
    out, k = [], 0
    for arr in exprs:
        out.append(np.array(flat[k:k + arr.size], dtype=np.float64).reshape(arr.shape))
        k += arr.size
    return out


def to_sympy(f: Callable[..., Any], *shapes: Shape, names: Optional[Sequence[str]] = None,
             takes_engine: Optional[bool] = None) -> SymbolicFunction:
    """Run f on symbols and return its outputs as SymPy expressions (a :class:`SymbolicFunction`).

    ``shapes``: one shape per input (an int n means (n,); () a scalar).
    ``f`` is called as ``f(tapegrad.symbolic, *symbols)`` when it takes one
    more required positional parameter than there are shapes (the engine
    convention), else as ``f(*symbols)``; ``takes_engine`` overrides.
    ``names``: base names of the inputs' symbols (default x, y, z, …).
    """
    if not shapes:
        raise ValueError("to_sympy: give one shape per input of f")
    syms = _symbols([_shape(s) for s in shapes], names)
    out = _run(f, syms, takes_engine, "to_sympy")
    return SymbolicFunction(symbols=tuple(syms), output=out)


def _differentiate(sf, simplify):
    sp = _sympy()
    jacs = []
    for sym in sf.symbols:
        J = np.empty(sf.output.shape + sym.shape, dtype=object)
        for oi in np.ndindex(sf.output.shape):
            for ii in np.ndindex(sym.shape):
                d = sp.diff(sf.output[oi], sym[ii])
                J[oi + ii] = sp.simplify(d) if simplify else d
        jacs.append(J)
    return tuple(jacs)


def symbolic_jacobian(f: Callable[..., Any], *shapes: Shape, names: Optional[Sequence[str]] = None,
                      takes_engine: Optional[bool] = None, simplify: bool = False) -> SymbolicDerivative:
    """Exact Jacobians by ``sympy.diff``: ``exprs[i]`` has shape output + input i.

    ``simplify=True`` runs ``sympy.simplify`` on every entry (slow on large
    expressions).  Call the result to evaluate it at arrays.
    """
    sf = to_sympy(f, *shapes, names=names, takes_engine=takes_engine)
    return SymbolicDerivative(function=sf, exprs=_differentiate(sf, simplify))


def symbolic_gradient(f: Callable[..., Any], *shapes: Shape, names: Optional[Sequence[str]] = None,
                      takes_engine: Optional[bool] = None, simplify: bool = False) -> SymbolicDerivative:
    """Exact gradients of a scalar (one-element) f: ``exprs[i]`` has input i's shape."""
    sf = to_sympy(f, *shapes, names=names, takes_engine=takes_engine)
    if sf.output.size != 1:
        raise ValueError(f"symbolic_gradient: f must return one element, got shape {sf.output.shape}; "
                         f"use symbolic_jacobian")
    scalar = SymbolicFunction(symbols=sf.symbols, output=sf.output.reshape(()))
    jacs = _differentiate(scalar, simplify)
    return SymbolicDerivative(function=scalar, exprs=jacs)


# ---------------------------------------------------------------------------
# Expression swell
# ---------------------------------------------------------------------------

def tree_size(exprs):
    """Nodes of the expressions written out as trees (every repeated subexpression
    counted each time it appears), computed over the shared DAG in linear time."""
    memo = {}

    def size(e):
        if not e.args:
            return 1
        key = id(e)
        if key not in memo:
            memo[key] = (1 + builtins.sum(size(a) for a in e.args), e)  # keep e alive: ids stay unique
        return memo[key][0]

    return builtins.sum(size(e) for e in exprs)


def cse_size(exprs):
    """Nodes after common-subexpression elimination (sympy.cse): the replacements'
    trees plus the reduced expressions' trees, each shared subexpression once."""
    sp = _sympy()
    replacements, reduced = sp.cse(list(exprs))
    return tree_size([r for _, r in replacements]) + tree_size(reduced)


def _tape_length(out):
    """Recorded ops reachable from a tapegrad Variable's grad_fn (leaves not counted)."""
    seen = {}
    stack = [out.grad_fn] if out.grad_fn is not None else []
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen[id(n)] = n  # holding n keeps its id unique during the walk
        stack.extend(n.next_functions)
    return builtins.sum(1 for n in seen.values() if n.name != "AccumulateGrad")


def _layer_sincos(engine, x):
    return engine.sin(x) * engine.cos(x)


_SIGMOID_A = np.array([[1.0, -2.0], [3.0, 1.0]]) / 2
_SIGMOID_B = np.array([0.5, -1.0])


def _layer_sigmoid(engine, x):
    return engine.sigmoid(_SIGMOID_A @ x + _SIGMOID_B)


_LAYERS = {
    "sincos": (_layer_sincos, (), "x ↦ sin(x)·cos(x)"),
    "sigmoid": (_layer_sigmoid, (2,), "x ↦ σ(A·x + b), A 2×2, b 2"),
}


@dataclasses.dataclass
class SwellReport:
    """Rows of :func:`swell_report`; ``str(report)`` is a Markdown table."""
    title: str
    rows: list

    def column(self, key):
        return [r[key] for r in self.rows]

    def growth(self, key):
        """How many times the column grew from the first depth to the last."""
        col = self.column(key)
        return col[-1] / col[0]

    def __str__(self):
        head = ("| depth | f (tree nodes) | f' (tree nodes) | f' after CSE | tape ops | "
                "sympy.diff + cse (ms) | AD jacobian (ms) |")
        lines = [f"Expression swell: {self.title}", "", head, "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r['depth']} | {r['f_tree']} | {r['df_tree']} | {r['df_cse']} | {r['tape']} | "
                         f"{r['sym_ms']:.1f} | {r['ad_ms']:.3f} |")
        return "\n".join(lines)

    __repr__ = __str__


def swell_report(f: Union[str, Callable[..., Any]], depth: int, *, shape: Optional[Shape] = None, x: Any = None,
                 repeats: int = 5) -> SwellReport:
    """Sizes and times of symbolic vs algorithmic derivatives of f∘f∘…∘f (1 … depth times).

    ``f``: a layer ``f(engine, x)`` (or ``f(x)`` with operators only), or a
    built-in name: "sincos" (x ↦ sin(x)·cos(x), scalar) or "sigmoid"
    (x ↦ σ(A·x + b) with a fixed 2×2 A).  ``shape``: x's shape (built-ins
    know theirs; default ()).  ``x``: where AD is timed (default 0.3 in every
    element).  For each depth d the row holds the tree size of the
    composition, of its symbolic Jacobian (``sympy.diff``) without and with
    CSE, the tapegrad tape length, the time of ``sympy.diff`` plus ``cse``,
    and the best-of-``repeats`` time of ``tapegrad.jacobian``.
    """
    import tapegrad

    if isinstance(f, str):
        if f not in _LAYERS:
            raise ValueError(f"swell_report: unknown layer {f!r}; built-ins are {sorted(_LAYERS)}")
        layer, default_shape, title = _LAYERS[f]
        shape = default_shape if shape is None else shape
    else:
        layer, title = f, getattr(f, "__name__", "f")
        shape = () if shape is None else shape
    if not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"swell_report: depth must be a positive int, got {depth!r}")
    shape = _shape(shape)
    takes_engine = _takes_engine(layer, 1)
    x0 = np.full(shape, 0.3) if x is None else np.asarray(x, dtype=np.float64)

    sp = _sympy()
    warm = sp.Symbol("warm")
    sp.cse([sp.diff(sp.sin(warm) * sp.cos(warm), warm)])  # SymPy's first diff/cse pay one-off set-up costs

    rows = []
    for d in range(1, int(depth) + 1):
        def composed(engine, v, d=d):
            for _ in range(d):
                v = layer(engine, v) if takes_engine else layer(v)
            return v

        sf = to_sympy(composed, shape, takes_engine=True)
        t0 = time.perf_counter()
        (jac,) = _differentiate(sf, simplify=False)
        df = list(jac.reshape(-1))
        df_cse = cse_size(df)
        sym_ms = (time.perf_counter() - t0) * 1e3

        v = tapegrad.Variable(x0, requires_grad=True)
        tape = _tape_length(composed(tapegrad, v))
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            tapegrad.jacobian(lambda u: composed(tapegrad, u), x0)
            best = builtins.min(best, time.perf_counter() - t0)
        rows.append(dict(depth=d, f_tree=tree_size(list(sf.output.reshape(-1))), df_tree=tree_size(df),
                         df_cse=df_cse, tape=tape, sym_ms=sym_ms, ad_ms=best * 1e3))
    return SwellReport(title=f"{title}, nested 1…{depth} times", rows=rows)


# ---------------------------------------------------------------------------
# The spec's compositions (opspec/ops.py COMPOSITIONS): _compose.py's bodies, run on symbols
# ---------------------------------------------------------------------------
# _compose.build writes each composition once over an engine's primitives; here the engine is
# this module (SymArray as its Variable class). Where a body reads values to build a mask
# (the 2-norm's s > 0), the mask becomes a condition and where() a Piecewise,
# so the expressions hold at every point, as the engines' results do. A body that needs numbers
# (NaN tests, counting, argmax, bool results) raises NotImplementedError naming it:
# SYMBOLIC_UNSUPPORTED lists those, with the reason.
SYMBOLIC_UNSUPPORTED = {
    **{name: "a bool array of values: symbols have no truth value"
       for name in ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
                    "isnan", "isfinite", "isinf", "signbit")},
    "argmax": "an integer index that depends on the values",
    "argmin": "an integer index that depends on the values",
}
# and norm(x, ord=0), the count of nonzero values (norm's other orders run)

# piecewise-constant ufuncs: a SymPy function of that name whose derivative is 0 (as in the
# engines, jumps included), evaluated by NumPy's function
_ZERO_DERIVATIVE_UFUNCS = {np.sign: "sign_", np.floor: "floor_", np.ceil: "ceil_", np.rint: "rint_",
                           np.trunc: "trunc_"}
_NUMERIC_FUNCTIONS.update({name: fn for fn, name in _ZERO_DERIVATIVE_UFUNCS.items()}, round_=np.round)
_zero_derivative_classes: dict[str, Any] = {}


def _zero_derivative(name):
    if name not in _zero_derivative_classes:
        sp = _sympy()
        _zero_derivative_classes[name] = type(name, (sp.Function,), {"fdiff": lambda self, argindex=1: sp.S.Zero})
    return _zero_derivative_classes[name]


class _Values:
    """What a composition's body reads as its input's values (`values(x)` in _compose.py): the
    expressions. Comparisons give conditions for where(); abs and the piecewise-constant
    ufuncs give expressions; any other use needs numbers and raises NotImplementedError."""

    def __init__(self, data):
        self.data = data

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)

    def _objects(self, other):
        return other.data if isinstance(other, _Values) else _objects(other)

    def __lt__(self, o): return _binary(lambda a, b: a < b, self.data, self._objects(o))
    def __le__(self, o): return _binary(lambda a, b: a <= b, self.data, self._objects(o))
    def __gt__(self, o): return _binary(lambda a, b: a > b, self.data, self._objects(o))
    def __ge__(self, o): return _binary(lambda a, b: a >= b, self.data, self._objects(o))
    def __abs__(self): return _Values(abs(SymArray(self.data)).data)

    def _needs_numbers(self, what):
        raise NotImplementedError(f"{what} needs numbers, and tapegrad.symbolic has symbols")

    def __eq__(self, o): self._needs_numbers("comparing values with ==")
    def __ne__(self, o): self._needs_numbers("comparing values with !=")
    def __bool__(self): self._needs_numbers("the truth value of an array")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "__call__" and len(inputs) == 1 and not kwargs:
            if ufunc is np.absolute:
                return self.__abs__()  # (abs is this module's op here)
            if ufunc in _ZERO_DERIVATIVE_UFUNCS:
                return _map(_zero_derivative(_ZERO_DERIVATIVE_UFUNCS[ufunc]), self.data).data
        self._needs_numbers(f"NumPy's {ufunc.__name__}")

    def __array_function__(self, func, types, args, kwargs):
        if func is np.round and len(args) + len(kwargs) <= 2:
            decimals = _number(operator.index(kwargs.get("decimals", args[1] if len(args) > 1 else 0)))
            return _map(lambda u: _zero_derivative("round_")(u, decimals), self.data).data
        self._needs_numbers(f"NumPy's {func.__name__}")


def _compose_values(x):
    return _Values(x.data) if isinstance(x, SymArray) else np.asarray(x)


class _ComposeEngine:
    """This module as _compose.build's engine namespace: its ops, SymArray as the Variable class."""
    Variable = SymArray
    compose_values = staticmethod(_compose_values)

    def __getattr__(self, name):
        try:
            return globals()[name]
        except KeyError:
            raise AttributeError(name) from None


def _unsupported(name, reason):
    def fn(*args, **kwargs):
        raise NotImplementedError(f"{name}: not implemented on tapegrad.symbolic ({reason})")
    return fn


def _define_compositions():
    """The module functions and SymArray methods of the spec's compositions."""
    from . import _compose
    from ._core import __compositions__ as spec

    built = _compose.build(_ComposeEngine())
    for name, fn in built.items():
        if name in SYMBOLIC_UNSUPPORTED:
            fn = functools.update_wrapper(_unsupported(name, SYMBOLIC_UNSUPPORTED[name]), fn)
        globals()[name] = fn
        if spec[name]["method"]:
            setattr(SymArray, name, fn)
    return list(built)


COMPOSITIONS = _define_compositions()
__all__ += ["COMPOSITIONS", "SYMBOLIC_UNSUPPORTED", *COMPOSITIONS]
