"""NumPy's protocols for the reference ``Variable``, written apart from the C++
engine's (python/tapegrad/_numpy_dispatch.py): ``np.<name>(v)`` runs this engine's
function, so one NumPy-written function runs on both engines.

The NumPy names are listed here by hand (a test checks them against the spec);
arguments are bound with ``inspect.Signature.bind`` on every call: slower than
the C++ engine's compiled adapters, and simpler, which is the point here.
"""
import inspect
import operator

import numpy as np

from .engine import Variable

# NumPy name[:reference function when it differs]
NUMPY_NAMES = """
negative exp log log1p sqrt sin cos tanh tan absolute:abs abs add subtract multiply divide
true_divide:divide power maximum minimum clip where sum mean max amax:max min amin:min reshape
transpose broadcast_to concatenate stack matmul positive fabs square reciprocal float_power exp2
expm1 log2 log10 cbrt sinh cosh arcsinh arccosh arctanh hypot logaddexp logaddexp2 fmax fmin
deg2rad radians:deg2rad rad2deg degrees:rad2deg sign floor ceil rint trunc fix:trunc round
around:round less less_equal greater greater_equal equal not_equal isnan isfinite isinf signbit
prod var std cumsum cumprod argmax argmin average linalg.norm:norm ravel copy swapaxes moveaxis
squeeze expand_dims atleast_1d atleast_2d atleast_3d hstack vstack split
array_split flip roll tile repeat pad take take_along_axis diagonal diag trace tril triu shape
ndim size dot vdot inner outer tensordot einsum arcsin arccos arctan arctan2 linalg.inv:inv
linalg.solve:solve linalg.slogdet:slogdet linalg.cholesky:cholesky linalg.det:det
""".split()
_RENAMED = {"newshape": "shape", "min": "a_min", "max": "a_max"}


def _resolve(name):
    try:
        return operator.attrgetter(name)(np)  # "linalg.norm" -> np.linalg.norm
    except AttributeError:  # not in this NumPy version
        return None


def _refuse(name, what):
    raise TypeError(f"np.{name}: {what} is not supported on tapegrad Variables")



# NumPy's signatures for the C functions that NumPy < 2.1 leaves without one (as NumPy 2.4 states them).
def _where_signature(condition, x=None, y=None, /): ...
def _concatenate_signature(arrays, /, axis=0, out=None, *, dtype=None, casting="same_kind"): ...
def _dot_signature(a, b, out=None): ...
def _vdot_signature(a, b, /): ...
def _inner_signature(a, b, /): ...


_SIGNATURE_STANDINS = {"where": _where_signature, "concatenate": _concatenate_signature, "dot": _dot_signature,
                       "vdot": _vdot_signature, "inner": _inner_signature}

class _Protocol:
    def __init__(self, functions):
        self.by_object = {}
        for item in NUMPY_NAMES:
            np_name, _, ours = item.partition(":")
            obj = _resolve(np_name)
            if obj is not None:
                self.by_object[obj] = (np_name, functions[ours or np_name])

    def ufunc(self, var, ufunc, method, *inputs, **kwargs):
        hit = self.by_object.get(ufunc)
        if hit is None:
            raise TypeError(f"np.{ufunc.__name__} is not implemented for tapegrad.reference Variables")
        if method != "__call__":
            _refuse(f"{ufunc.__name__}.{method}", "this ufunc method")
        if kwargs:
            _refuse(ufunc.__name__, "argument(s) " + ", ".join(kwargs))
        return hit[1](*inputs)

    def function(self, var, func, types, args, kwargs):
        hit = self.by_object.get(func)
        if hit is None:
            raise TypeError(f"np.{func.__name__} is not implemented for tapegrad.reference Variables")
        if any(t is not Variable and not issubclass(t, np.ndarray) for t in types):
            return NotImplemented
        np_name, fn = hit
        if np_name == "clip":  # NumPy 2 names the bounds twice
            kwargs = dict(kwargs)
            for alias, name in (("min", "a_min"), ("max", "a_max")):
                if alias in kwargs:
                    kwargs[name] = kwargs.pop(alias)
        try:
            sig = inspect.signature(func)
        except ValueError:  # NumPy < 2.1: some C functions carry no text signature
            sig = inspect.signature(_SIGNATURE_STANDINS[func.__name__])
        bound = sig.bind(*args, **kwargs)
        ours = inspect.signature(fn).parameters
        first = next(iter(ours))
        pos, kw = [], {}
        for i, (name, value) in enumerate(bound.arguments.items()):
            p = sig.parameters[name]
            if p.kind == p.VAR_POSITIONAL:
                pos.extend(value)
                continue
            if p.kind == p.VAR_KEYWORD:
                for k, v in value.items():
                    if k not in ours:
                        _refuse(np_name, f"argument {k}")
                    kw[k] = v
                continue
            target = first if i == 0 else _RENAMED.get(name, name)
            if target in ours:
                if value is not np._NoValue:
                    (pos.append(value) if i == 0 else kw.__setitem__(target, value))
            elif name == "dtype" and pos and isinstance(pos[0], (Variable, np.ndarray)):
                if value is not None:
                    if np.dtype(value) not in (np.float32, np.float64):
                        _refuse(np_name, f"dtype={np.dtype(value)}")
                    pos[0] = pos[0].astype(value) if isinstance(pos[0], Variable) else Variable(pos[0], dtype=value)
            elif not (value is p.default or (type(value) is type(p.default) and value == p.default)):
                _refuse(np_name, f"argument {name}={value!r}")
        return fn(*pos, **kw)


def install(functions):
    protocol = _Protocol(functions)
    Variable.__array_ufunc__ = lambda self, *a, **k: protocol.ufunc(self, *a, **k)
    Variable.__array_function__ = lambda self, *a: protocol.function(self, *a)
    return protocol
