"""The spec's compositions (opspec/ops.py, ``COMPOSITIONS``): NumPy's aliases and
helpers built from an engine's primitives, with no rule of their own.

``build(ns)`` writes them over one engine's namespace ``ns`` (the C++ core, the
reference engine's ops, or tapegrad.symbolic's on SymPy expressions, where a
body that needs numbers raises NotImplementedError), so each engine runs them
on its own primitives and rules: a composition's derivatives are its
primitives', which the engines state independently. Values are checked against NumPy's own functions and
derivatives against finite differences (tests/test_numpy_dispatch.py).

Conventions: Python scalars keep the Variable's dtype; a composition whose
derivative is zero (floor, sign, round) returns a Variable still on the graph
(``where(False, x, value)``), so Jacobians keep their shape; predicates and
argmax return NumPy arrays, outside the graph.
"""
import functools
import operator
import math

import numpy as np


def _norm_axis(axis, ndim, name):
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ValueError(f"{name}: axis {axis} is out of bounds for an array of dimension {ndim}")
    return a % ndim


def _norm_axes(axis, ndim, name):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(_norm_axis(a, ndim, name) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"{name}: repeated axis in {axis}")
        return axes
    return (_norm_axis(axis, ndim, name),)


def _keepdims_flag(keepdims, name):
    """keepdims as the reductions take it (the core's bool_arg): a bool or an int, else TypeError. (np.argmax
    takes any object's truth value; np.sum and the other ufunc reductions refuse a str, None or a float.)"""
    if isinstance(keepdims, (bool, np.bool_, int, np.integer)):
        return bool(keepdims)
    raise TypeError(f"{name}: keepdims must be a bool, got {type(keepdims).__name__}")


# What Python and NumPy say when an int does not fit (a C long, an index, a float); _compose names the argument.
_INT_CONVERSION = ("too large to convert", "too big to convert", "cannot fit 'int'", "Maximum allowed dimension",
                   "does not fit", "out of range")


def _oversized_int_argument(fn, args, kwargs, to_float):
    """'<argument> <value> is out of range ...' for the first argument of ``fn(*args, **kwargs)`` holding an int
    outside int64 (``to_float``: outside float64's range), searched through tuples and lists; or None."""
    import inspect
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return None

    def oversized(v):
        if isinstance(v, (tuple, list)):
            return next((o for o in map(oversized, v) if o is not None), None)
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and (
                abs(v) >= 2**1024 if to_float else not -2**63 <= v < 2**63):
            return int(v)
        return None

    for arg, value in bound.arguments.items():
        v = oversized(value)
        if v is not None:
            text = str(v) if len(str(v)) <= 40 else f"{str(v)[:12]}... ({len(str(abs(v)))} digits)"
            return f"{arg} {text} is out of range (it does not fit a {'float64' if to_float else '64-bit integer'})"
    return None


class _F64:  # V(x, _F64): a Python number as float64, not as the other operand's float32 (NumPy's)
    dtype = np.float64


def build(ns):
    """{name: function} for every composition, over the engine namespace ``ns``."""
    Variable = ns.Variable
    out = {}

    def composition(fn):
        name = fn.__name__.rstrip("_")

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except NotImplementedError as e:  # a body the engine cannot run (on symbols: one that needs numbers)
                if str(e).startswith(name + ":"):
                    raise
                raise NotImplementedError(f"{name}: {e}") from None
            except (TypeError, ValueError, IndexError, OverflowError, np.exceptions.ComplexWarning,
                    DeprecationWarning) as e:  # (NumPy < 2.3 warns where later ones raise: int() of an array)
                # errors of the primitives inside (or NumPy's) name this function, as the project's do
                kind = type(e) if isinstance(e, np.linalg.LinAlgError) else \
                    IndexError if isinstance(e, IndexError) else \
                    TypeError if isinstance(e, (TypeError, Warning)) else ValueError
                if any(phrase in str(e) for phrase in _INT_CONVERSION):
                    which = _oversized_int_argument(fn, args, kwargs, "to float" in str(e))
                    if which is not None:
                        raise ValueError(f"{name}: {which}") from None
                if type(e) is kind and str(e).startswith(name + ":"):
                    raise
                raise kind(str(e) if str(e).startswith(name + ":") else f"{name}: {e}") from None

        wrapper.__name__ = wrapper.__qualname__ = name
        out[name] = wrapper
        return wrapper

    def V(x, like=None):
        """x as a Variable; a Python number takes `like`'s dtype (weak, as the operators)."""
        if isinstance(x, Variable):
            return x
        if like is not None and type(x) in (bool, int, float):
            return Variable(np.asarray(x, dtype=like.dtype))
        return Variable(x)

    def pair(a, b):
        if isinstance(a, Variable):
            return a, V(b, a)
        b = V(b)
        return V(a, b), b

    def values(x):
        return x.data if isinstance(x, Variable) else np.asarray(x)
    # tapegrad.symbolic reads symbols instead: masks become conditions of its where (Piecewise)
    values = getattr(ns, "compose_values", values)

    def constant(x, vals):
        """vals (derivative 0) as a Variable still on x's graph."""
        return ns.where(np.zeros(np.shape(vals), dtype=bool), x, np.asarray(vals, dtype=x.dtype))

    def where_(cond, a, b):
        return ns.where(cond, a, b)

    # ----- ufuncs ----------------------------------------------------------------
    @composition
    def fabs(x):
        return ns.abs(V(x))

    @composition
    def float_power(a, b):
        return ns.power(ns.astype(V(a, _F64), np.float64), ns.astype(V(b, _F64), np.float64))
    if getattr(ns, "_float_power", None) is not None:  # (h92-param: the same body in C++, one call)
        out["float_power"] = ns._float_power

    @composition
    def round_(x, decimals=0):
        x = V(x)
        if isinstance(decimals, (int, np.integer)) and not isinstance(decimals, (bool, np.bool_)) and decimals == 0:
            return ns.rint(x)  # NumPy's round at 0 decimals is rint; the primitive (one pass, zero rule)
        return constant(x, np.round(values(x), decimals))
    if getattr(ns, "_round", None) is not None:  # (h100-small: the core's primitive, one call at every decimals)
        out["round"] = ns._round

    # ----- predicates ------------------------------------------------------------------
    def predicate(np_fn, name=None):
        name = name or np_fn.__name__
        kernel = getattr(ns, "_" + name, None)  # the engine's own (tapegrad: C++, ~5x faster than via NumPy)
        if kernel is not None:  # (its errors name the function already: no composition wrapper around it)
            f = (lambda a, b: kernel(a, b)) if np_fn.nin == 2 else (lambda x: kernel(x))
            f.__name__ = f.__qualname__ = name
            out[name] = f
            return f
        f = (lambda a, b: np_fn(values(a), values(b))) if np_fn.nin == 2 else (lambda x: np_fn(values(x)))
        f.__name__ = name
        return composition(f)

    for _f in (np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal,
               np.isnan, np.isfinite, np.isinf, np.signbit):
        predicate(_f)

    # ----- reductions --------------------------------------------------------------------
    @composition
    def argmax(x, axis=None, keepdims=False):
        return np.argmax(values(x), axis=axis, keepdims=_keepdims_flag(keepdims, "argmax"))

    @composition
    def argmin(x, axis=None, keepdims=False):
        return np.argmin(values(x), axis=axis, keepdims=_keepdims_flag(keepdims, "argmin"))

    @composition
    def average(x, axis=None, weights=None, keepdims=False):
        x = V(x)
        if weights is None:
            return ns.mean(x, axis=axis, keepdims=keepdims)
        w = V(weights, x)
        if w.shape != x.shape:
            if axis is None or isinstance(axis, (tuple, list)) or w.ndim != 1 or w.shape[0] != x.shape[
                    _norm_axis(axis, x.ndim, "average")]:
                raise ValueError(f"average: weights of shape {w.shape} differ from x's {x.shape}; 1-d weights "
                                 "need an int axis of their length")
            w = ns.reshape(w, tuple(n if a == _norm_axis(axis, x.ndim, "average") else 1
                                    for a, n in enumerate(x.shape)))
        w = ns.broadcast_to(w, x.shape)
        return ns.divide(ns.sum(ns.multiply(x, w), axis=axis, keepdims=keepdims),
                         ns.sum(w, axis=axis, keepdims=keepdims))

    def l2(x, axes, keepdims):
        s = ns.sum(ns.multiply(x, x), axis=axes, keepdims=keepdims)
        pos = values(s) > 0  # sqrt'(0) is inf: the subgradient 0 there instead of NaN
        # (where s <= 0 or is NaN: s * 0, so a NaN sum stays NaN, as NumPy's; computed there only, no inf * 0)
        return where_(pos, ns.sqrt(where_(pos, s, 1.0)), ns.multiply(where_(pos, 0.0, s), 0.0))

    @composition
    def norm(x, ord=None, axis=None, keepdims=False):
        x = V(x)
        if axis is None and (ord is None or x.ndim == 1):
            axes = tuple(range(x.ndim)) if ord is None else (0,)
        else:
            axes = _norm_axes(x.ndim - 1 if axis is None and x.ndim == 1 else axis,
                              x.ndim, "norm") if axis is not None else (0, 1) if x.ndim == 2 else None
            if axes is None:
                raise ValueError(f"norm: ord={ord!r} without axis needs a 1-d or 2-d array, got shape {x.shape}")
        if len(axes) == 2 and (axis is not None or x.ndim == 2) and ord is not None:
            if ord != "fro":
                raise ValueError(f"norm: matrix ord={ord!r} is not implemented (only None and 'fro')")
            return l2(x, axes, keepdims)
        if (len(axes) > 2 and axis is not None) or (len(axes) == 2 and axis is not None and ord is not None):
            raise ValueError(f"norm: improper axis {axis!r} for ord={ord!r}")
        if ord is None or ord == 2 or (ord == "fro" and len(axes) == 2):
            return l2(x, axes, keepdims)
        if isinstance(ord, str):
            raise ValueError(f"norm: ord={ord!r} is not a vector norm")
        ax = ns.abs(x)
        if ord == np.inf:
            return ns.max(ax, axis=axes, keepdims=keepdims)
        if ord == -np.inf:
            return ns.min(ax, axis=axes, keepdims=keepdims)
        if ord == 0:
            return constant(x, np.sum(values(x) != 0, axis=axes, keepdims=keepdims).astype(x.dtype))
        if ord == 1:
            return ns.sum(ax, axis=axes, keepdims=keepdims)
        return ns.power(ns.sum(ns.power(ax, float(ord)), axis=axes, keepdims=keepdims), 1.0 / ord)

    # ----- shape -------------------------------------------------------------------------
    @composition
    def ravel(x):
        return ns.reshape(V(x), (-1,))

    @composition
    def flatten(x):  # a copy, as ndarray.flatten (ravel is the view)
        return ns.reshape(ns.multiply(V(x), 1.0), (-1,))

    @composition
    def copy(x):
        return ns.multiply(V(x), 1.0)

    def atleast(n, arys, name):
        res = []
        for a in arys:
            a = V(a)
            shape = a.shape
            if a.ndim < n:
                shape = {0: {1: (1,), 2: (1, 1), 3: (1, 1, 1)}[n],
                         1: {2: (1,) + shape, 3: (1,) + shape + (1,)}.get(n),
                         2: shape + (1,)}[a.ndim]
                a = ns.reshape(a, shape)
            res.append(a)
        return res[0] if len(res) == 1 else tuple(res)

    @composition
    def atleast_1d(*arys):
        return atleast(1, arys, "atleast_1d")

    @composition
    def atleast_2d(*arys):
        return atleast(2, arys, "atleast_2d")

    @composition
    def atleast_3d(*arys):
        return atleast(3, arys, "atleast_3d")

    def as_list(arrays, name):
        if isinstance(arrays, (Variable, np.ndarray)) or not hasattr(arrays, "__iter__"):
            raise TypeError(f"{name}: arrays must be a sequence of arrays, got {type(arrays).__name__}")
        return list(arrays)

    @composition
    def hstack(arrays):
        arrs = [atleast(1, [a], "hstack") for a in as_list(arrays, "hstack")]
        return ns.concatenate(arrs, axis=0 if arrs and arrs[0].ndim == 1 else 1)

    @composition
    def vstack(arrays):
        return ns.concatenate([atleast(2, [a], "vstack") for a in as_list(arrays, "vstack")], axis=0)

    def along(x, axis, key):
        return x[(slice(None),) * axis + (key,)]

    def splits(x, indices_or_sections, axis, name, equal):
        x = V(x)
        axis = _norm_axis(axis, x.ndim, name)
        n = x.shape[axis]
        if isinstance(indices_or_sections, (int, np.integer)) and not isinstance(indices_or_sections, bool):
            k = int(indices_or_sections)
            if k <= 0:
                raise ValueError(f"{name}: number of sections must be larger than 0")
            if equal and n % k:
                raise ValueError(f"{name}: array split does not result in an equal division ({n} into {k})")
            each, extra = divmod(n, k)
            points = np.cumsum([0] + extra * [each + 1] + (k - extra) * [each]).tolist()
        else:
            points = [0] + [operator.index(i) for i in indices_or_sections] + [n]  # (int() of an array row warns on NumPy < 2.1)
        return [along(x, axis, slice(a, b)) for a, b in zip(points[:-1], points[1:])]  # NumPy's x[a:b]

    @composition
    def split(x, indices_or_sections, axis=0):
        return splits(x, indices_or_sections, axis, "split", True)

    @composition
    def array_split(x, indices_or_sections, axis=0):
        return splits(x, indices_or_sections, axis, "array_split", False)

    @composition
    def flip(x, axis=None):
        x = V(x)
        axes = _norm_axes(axis, x.ndim, "flip")
        return x[tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(x.ndim))]

    @composition
    def roll(x, shift, axis=None):
        x = V(x)
        if axis is None:
            return ns.reshape(roll(ns.reshape(x, (-1,)), shift, 0), x.shape)
        try:  # NumPy's: shift and axis broadcast together; the shifts of a repeated axis add up
            shifts, axes = np.broadcast_arrays(np.asarray(shift, dtype=np.int64), np.asarray(axis, dtype=np.int64))
        except ValueError:
            raise ValueError(f"roll: shift {shift!r} and axis {axis!r} differ in length") from None
        total = {}
        for s, a in zip(shifts.ravel().tolist(), axes.ravel().tolist()):
            a = _norm_axis(a, x.ndim, "roll")
            total[a] = total.get(a, 0) + s
        for a, s in total.items():
            n = x.shape[a]
            if n and s % n:
                s = s % n
                x = ns.concatenate([along(x, a, slice(n - s, n)), along(x, a, slice(0, n - s))], axis=a)
        return x

    @composition
    def tile(x, reps):
        x = V(x)
        reps = tuple(int(r) for r in reps) if isinstance(reps, (tuple, list)) else (int(reps),)
        d = max(len(reps), x.ndim)
        reps = (1,) * (d - len(reps)) + reps
        shape = (1,) * (d - x.ndim) + x.shape
        y = ns.reshape(x, tuple(v for n in shape for v in (1, n)))
        y = ns.broadcast_to(y, tuple(v for r, n in zip(reps, shape) for v in (r, n)))
        return ns.reshape(y, tuple(r * n for r, n in zip(reps, shape)))

    @composition
    def repeat(x, repeats, axis=None):
        x = V(x)
        if axis is None:
            x, axis = ns.reshape(x, (-1,)), 0
        axis = _norm_axis(axis, x.ndim, "repeat")
        idx = np.repeat(np.arange(x.shape[axis]), repeats)
        return along(x, axis, idx)

    @composition
    def pad(x, pad_width, mode="constant", constant_values=0):
        x = V(x)
        if mode != "constant":
            raise ValueError(f"pad: mode={mode!r} is not implemented (only 'constant')")
        if np.ndim(constant_values) != 0:
            raise ValueError("pad: only a scalar constant_values is implemented")
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
        if (widths < 0).any():
            raise ValueError(f"pad: negative pad_width {pad_width!r}")
        for a, (before, after) in enumerate(widths.tolist()):
            if before or after:
                fill = lambda k: np.full(x.shape[:a] + (k,) + x.shape[a + 1:], constant_values, x.dtype)  # noqa
                x = ns.concatenate([fill(before), x, fill(after)], axis=a)
        return x

    def int_indices(indices):
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu" and idx.size == 0 and not isinstance(indices, np.ndarray):
            idx = idx.astype(np.int64)  # an empty list (float64 to np.asarray), which NumPy's take accepts
        return idx

    @composition
    def take(x, indices, axis=None):
        x = V(x)
        if axis is None:
            x, axis = ns.reshape(x, (-1,)), 0
        idx = int_indices(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"take: indices must be integers, got dtype {idx.dtype}")
        return along(x, _norm_axis(axis, x.ndim, "take"), idx if idx.ndim else int(idx))

    @composition
    def take_along_axis(x, indices, axis):
        x = V(x)
        idx = int_indices(indices)
        if axis is None:
            x, axis = ns.reshape(x, (-1,)), 0
        axis = _norm_axis(axis, x.ndim, "take_along_axis")
        if idx.dtype.kind not in "iu" or idx.ndim != x.ndim:
            raise ValueError(f"take_along_axis: indices must be integers with x's {x.ndim} axes, "
                             f"got dtype {idx.dtype} and shape {idx.shape}")
        key = tuple(idx if a == axis else np.arange(n).reshape((-1,) + (1,) * (x.ndim - a - 1))
                    for a, n in enumerate(x.shape))
        return x[key]

    # ----- h94-gather: on the C++ engine take, take_along_axis, repeat and tile are one C++ call each
    # (ns._take, ...: the gather primitive, whose VJP scatter-adds, or a broadcast copy), their errors
    # naming the function (no composition wrapper: a Python frame is most of a 16-element call); the
    # bodies above are the reference and symbolic engines'.
    if getattr(ns, "_take", None) is not None:
        _take, _take_along, _repeat, _tile = ns._take, ns._take_along_axis, ns._repeat, ns._tile

        def take(x, indices, axis=None):  # noqa: F811
            return _take(x, indices, axis)

        def take_along_axis(x, indices, axis):  # noqa: F811
            return _take_along(x, indices, axis)

        def repeat(x, repeats, axis=None):  # noqa: F811
            return _repeat(x, repeats, axis)

        def tile(x, reps):  # noqa: F811
            return _tile(x, reps)

        for f in (take, take_along_axis, repeat, tile):
            f.__doc__ = out[f.__name__].__doc__
            out[f.__name__] = f

    @composition
    def shape(x):
        return tuple(V(x).shape) if isinstance(x, Variable) else np.shape(x)

    @composition
    def ndim(x):
        return x.ndim if isinstance(x, Variable) else np.ndim(x)

    @composition
    def size(x, axis=None):
        s = x.shape if isinstance(x, Variable) else np.shape(x)
        return int(np.prod(s, dtype=np.int64)) if axis is None else s[_norm_axis(axis, len(s), "size")]

    # h95-shape: the C++ engine's bodies of these (cpp/bindings/shape_fast.cpp): one call, no Python frame
    for _name in ("ravel", "flatten", "copy", "atleast_1d", "atleast_2d", "atleast_3d", "hstack", "vstack", "split",
                  "array_split", "flip", "roll", "pad"):
        if getattr(ns, "_" + _name, None) is not None:
            out[_name] = getattr(ns, "_" + _name)

    # ----- linear algebra ----------------------------------------------------------------
    @composition
    def tensordot(a, b, axes=2):
        a, b = pair(a, b)
        if isinstance(axes, (int, np.integer)):
            n = int(axes)
            if n < 0 or n > min(a.ndim, b.ndim):
                raise ValueError(f"tensordot: axes={n} out of range for shapes {a.shape} and {b.shape}")
            ax_a, ax_b = list(range(a.ndim - n, a.ndim)), list(range(n))
        else:
            ax_a, ax_b = axes
            ax_a = list(ax_a) if isinstance(ax_a, (tuple, list)) else [ax_a]
            ax_b = list(ax_b) if isinstance(ax_b, (tuple, list)) else [ax_b]
            ax_a = [_norm_axis(i, a.ndim, "tensordot") for i in ax_a]
            ax_b = [_norm_axis(i, b.ndim, "tensordot") for i in ax_b]
        if len(ax_a) != len(ax_b) or any(a.shape[i] != b.shape[j] for i, j in zip(ax_a, ax_b)):
            raise ValueError(f"tensordot: shape-mismatch for sum: shapes {a.shape} and {b.shape}, "
                             f"axes {ax_a} and {ax_b}")
        free_a = [i for i in range(a.ndim) if i not in ax_a]
        free_b = [j for j in range(b.ndim) if j not in ax_b]
        k = int(np.prod([a.shape[i] for i in ax_a], dtype=np.int64))
        fa = tuple(a.shape[i] for i in free_a)
        fb = tuple(b.shape[j] for j in free_b)
        am = ns.reshape(ns.transpose(a, tuple(free_a + ax_a)), (int(np.prod(fa, dtype=np.int64)), k))
        bm = ns.reshape(ns.transpose(b, tuple(ax_b + free_b)), (k, int(np.prod(fb, dtype=np.int64))))
        return ns.reshape(ns.matmul(am, bm), fa + fb)

    @composition
    def dot(a, b):
        a, b = pair(a, b)
        if a.ndim == 0 or b.ndim == 0:
            return ns.multiply(a, b)
        if b.ndim <= 2 and a.ndim <= 2:
            return ns.matmul(a, b)
        return tensordot(a, b, ([a.ndim - 1], [max(b.ndim - 2, 0)]))

    @composition
    def vdot(a, b):
        a, b = pair(a, b)
        return ns.matmul(ns.reshape(a, (-1,)), ns.reshape(b, (-1,)))

    @composition
    def inner(a, b):
        a, b = pair(a, b)
        if a.ndim == 0 or b.ndim == 0:
            return ns.multiply(a, b)
        if b.ndim == 1:  # the last axes contracted with a vector: a matrix-vector product, one primitive
            return ns.matmul(a, b)
        return tensordot(a, b, ([a.ndim - 1], [b.ndim - 1]))

    @composition
    def outer(a, b):
        a, b = pair(a, b)
        return ns.multiply(ns.reshape(a, (-1, 1)), ns.reshape(b, (1, -1)))

    @composition
    def det(a):
        sign, logdet = ns.slogdet(V(a))  # a singular matrix: 0 * exp(-inf) = 0, as NumPy
        return ns.multiply(sign, ns.exp(logdet))

    out["einsum"] = composition(_einsum_over(ns, V))

    # h93-contract: the core's C++ kernels of these (cpp/src/ops/contract.cpp) replace the bodies above: the same
    # primitives in the same order, without a Python body on the path (their errors name the function already).
    kernels = {name: getattr(ns, "_" + name, None) for name in ("dot", "vdot", "inner", "outer", "tensordot")}
    if all(kernels.values()):
        k_dot, k_vdot, k_inner, k_outer, k_tensordot = kernels.values()
        fast = {"dot": lambda a, b: k_dot(a, b), "vdot": lambda a, b: k_vdot(a, b),
                "inner": lambda a, b: k_inner(a, b), "outer": lambda a, b: k_outer(a, b),
                "tensordot": lambda a, b, axes=2: k_tensordot(a, b, axes)}
        for name, f in fast.items():
            f.__name__ = f.__qualname__ = name
            out[name] = f

    # h96-small: C++ functions over some of these (shape, ndim, size, argmax, argmin, norm, the comparisons):
    # they run the common calls (a Variable, plain arguments) and hand every other one to the body above.
    for name, fast in getattr(ns, "_fast", {}).items():
        ns._set_fallback(name, out[name])
        out[name] = fast

    # Each function's docstring is its spec entry's (opspec/ops.py COMPOSITIONS: declared once)
    from ._core import __compositions__ as spec
    for name, fn in out.items():
        if not (fn.__doc__ or "").strip():
            fn.__doc__ = f"{name}{spec[name]['signature']}\n\n{spec[name]['doc']}"
    return out


# einsum's plan: steps (kind, dst, src, *args) over registers that start as the operands; the core keeps it and
# runs it in C++ (_einsum_run, cpp/src/ops/contract.cpp), the other engines with _run_einsum_plan. Kinds:
_DIAGONAL, _SUM, _TRANSPOSE, _RESHAPE, _BROADCAST_TO, _MATMUL = range(6)


@functools.lru_cache(maxsize=512)
def _einsum_plan(subscripts, shapes):
    """(steps, result register) contracting operands of these shapes pairwise left to right, parsed once per
    (subscripts, shapes): the transposes, reshapes and matmuls the composition called, minus identity transposes
    and same-shape reshapes (views)."""
    spec = subscripts.replace(" ", "")
    ins, arrow, outs = spec.partition("->")
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {len(ins)} subscripts for {len(shapes)} operands")
    steps = []
    n_ell = 0
    for s, shape in zip(ins, shapes):
        if "..." in s:
            n_ell = max(n_ell, len(shape) - (len(s) - 3))
    ell = [chr(0x10000 + i) for i in range(n_ell)]  # labels of the broadcast axes, right-aligned
    terms = []  # (register, labels, shape)
    for r, (s, shape) in enumerate(zip(ins, shapes)):
        if "..." in s:
            head, tail = s.split("...")
            k = len(shape) - len(head) - len(tail)
            if k < 0:
                raise ValueError(f"einsum: operand of shape {shape} has too few axes for {s!r}")
            labels = list(head) + ell[n_ell - k:] + list(tail)
        else:
            labels = list(s)
        if len(labels) != len(shape) or not all(c.isalpha() or c in ell for c in labels):
            raise ValueError(f"einsum: subscripts {s!r} do not match an operand of shape {shape}")
        shape = list(shape)
        while len(set(labels)) < len(labels):  # a repeated label: its diagonal
            c = next(c for c in labels if labels.count(c) > 1)
            i = labels.index(c)
            j = labels.index(c, i + 1)
            if shape[i] != shape[j]:
                raise ValueError(f"einsum: label {c!r} repeated in {s!r} over axes of sizes {shape[i]} and "
                                 f"{shape[j]} (operand of shape {tuple(shapes[r])})")
            steps.append((_DIAGONAL, r, r, i, j))
            keep = [t for t in range(len(labels)) if t not in (i, j)]
            labels = [labels[t] for t in keep] + [c]
            shape = [shape[t] for t in keep] + [shape[i]]
        terms.append((r, labels, shape))
    if arrow:
        out = list(outs.replace("...", "\0"))
        out = [x for c in out for x in (ell if c == "\0" else [c])]
    else:
        counts = {}  # NumPy's implicit output: the labels written once, in order
        for c in "".join(ins).replace(".", ""):
            counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1 and c not in ell)
    seen = {c for _, labels, _ in terms for c in labels}
    if any(c not in seen for c in out) or len(set(out)) != len(out):
        raise ValueError(f"einsum: output subscripts {outs!r} name an unknown or repeated label")
    sizes = {}
    for _, labels, shape in terms:
        for c, n in zip(labels, shape):
            if sizes.setdefault(c, n) != n and 1 not in (sizes[c], n):
                raise ValueError(f"einsum: label {c!r} has sizes {sizes[c]} and {n} in operands of shapes "
                                 f"{', '.join(str(tuple(s)) for s in shapes)}")
            sizes[c] = max(sizes[c], n)

    def sum_unneeded(r, labels, shape, later):
        drop = [i for i, c in enumerate(labels) if c not in out and c not in later]
        if drop:
            steps.append((_SUM, r, r, *drop))
            labels = [c for i, c in enumerate(labels) if i not in drop]
            shape = [n for i, n in enumerate(shape) if i not in drop]
        return r, labels, shape

    def transpose(r, labels, shape, order):
        perm = [labels.index(c) for c in order]
        if perm != list(range(len(perm))):
            steps.append((_TRANSPOSE, r, r, *perm))
        return [shape[i] for i in perm]

    def reshape(r, shape, new):
        if list(shape) != list(new):
            steps.append((_RESHAPE, r, r, *new))
        return list(new)

    r, labels, shape = terms[0]
    for t in range(1, len(terms)):
        later = {c for _, lab, _ in terms[t + 1:] for c in lab}
        r, labels, shape = sum_unneeded(r, labels, shape, later | set(terms[t][1]))
        q, plabels, pshape = sum_unneeded(*terms[t], later | set(labels))
        keep = out + sorted(later)
        batch = [c for c in labels if c in plabels and c in keep]
        contract = [c for c in labels if c in plabels and c not in keep]
        fa = [c for c in labels if c not in plabels]
        fb = [c for c in plabels if c not in labels]
        k = math.prod(sizes[c] for c in contract)
        for c in contract:  # a broadcast (size-1) contracted axis: expand it first
            if shape[labels.index(c)] != pshape[plabels.index(c)]:
                full = [sizes[d] if d == c else n for d, n in zip(labels, shape)]
                if full != shape:
                    steps.append((_BROADCAST_TO, r, r, *full))
                pfull = [sizes[d] if d == c else n for d, n in zip(plabels, pshape)]
                if pfull != pshape:
                    steps.append((_BROADCAST_TO, q, q, *pfull))
                shape, pshape = full, pfull
        free = [shape[labels.index(c)] for c in fa] + [pshape[plabels.index(c)] for c in fb]
        sa, sb = math.prod(free[:len(fa)]), math.prod(free[len(fa):])
        shape = transpose(r, labels, shape, batch + fa + contract)
        shape = reshape(r, shape, shape[:len(batch)] + [sa, k])
        pshape = transpose(q, plabels, pshape, batch + contract + fb)
        pshape = reshape(q, pshape, pshape[:len(batch)] + [k, sb])
        steps.append((_MATMUL, r, r, q))
        mshape = list(np.broadcast_shapes(tuple(shape[:-2]), tuple(pshape[:-2]))) + [sa, sb]
        shape = reshape(r, mshape, mshape[:len(batch)] + free)
        labels = batch + fa + fb
    r, labels, shape = sum_unneeded(r, labels, shape, set())
    if labels != out:
        transpose(r, labels, shape, out)
    return tuple(steps), r


def _run_einsum_plan(ns, steps, regs, result):
    """The plan over an engine's primitives (the core runs it in C++: _einsum_run)."""
    regs = list(regs)
    for kind, dst, src, *args in steps:
        x = regs[src]
        if kind == _DIAGONAL:
            x = ns.diagonal(x, 0, *args)
        elif kind == _SUM:
            x = ns.sum(x, axis=tuple(args))
        elif kind == _TRANSPOSE:
            x = ns.transpose(x, tuple(args))
        elif kind == _RESHAPE:
            x = ns.reshape(x, tuple(args))
        elif kind == _BROADCAST_TO:
            x = ns.broadcast_to(x, tuple(args))
        else:
            x = ns.matmul(x, regs[args[0]])
        regs[dst] = x
    return regs[result]


_shape_of = operator.attrgetter("shape")


def _einsum_over(ns, V):
    run = getattr(ns, "_einsum_run", None)
    Variable = ns.Variable

    def einsum(subscripts, *operands):
        if not isinstance(subscripts, str):
            raise TypeError(f"einsum: subscripts must be a string, got {type(subscripts).__name__} "
                            "(the sublist form is not implemented)")
        if not operands:
            raise ValueError("einsum: no operands")
        ops = list(operands)  # (no comprehension: each made a function object per call)
        for i, o in enumerate(ops):
            if not isinstance(o, Variable):
                ops[i] = V(o)
        if run is not None:  # the core keeps the plans too: one C++ call
            return run(subscripts, ops, _einsum_plan)
        steps, result = _einsum_plan(subscripts, tuple(map(_shape_of, ops)))
        return _run_einsum_plan(ns, steps, ops, result)
    return einsum
