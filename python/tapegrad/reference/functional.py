"""The functional API of the reference engine, and ``custom_op``.

Every transform (1) traces ``f`` once on fresh input nodes (``_Trace``),
(2) runs ``forward_sweep`` (batched tangents in) or ``reverse_sweep``
(cotangent in) over that graph as often as needed, (3) returns NumPy arrays,
or Variables still connected to the outer graph when *nested*.

A call is nested when one of its inputs (arguments, tangents, cotangent) is a
Variable that requires grad, never because of what ``f`` captures.  Then each
input node is an ``identity`` of the outer Variable (so the inner derivative
holds everything else constant) and the sweeps are recorded, so the results
can be differentiated again (``grad(grad(f))``, ``jacobian(grad(f), x)``).

Pytrees (dicts, lists, tuples, namedtuples, None around array leaves) go
through ``_Tree``: ``f`` is seen as a function of its arguments' leaves
returning one Variable (a pytree output raveled and concatenated), so the
transforms below stay single-output; results are cut back into the
arguments' and the output's structures.
Forward mode pushes k directions through ONE sweep (a leading batch axis);
reverse mode pulls cotangents back one row at a time.  ``.grad`` is never
touched.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

from . import ops
from .ops import _zeros
from .engine import (OUTPUT, _FLOAT_DTYPES, Function, Variable, _to_array, enable_grad,
                     forward_sweep, is_grad_enabled, no_grad, reverse_sweep)

__all__ = ["jvp", "vjp", "grad", "value_and_grad", "jacobian", "hessian", "hvp",
           "directional_derivative", "custom_op"]


def _requires_grad(x):
    return isinstance(x, Variable) and x.requires_grad


def _as_tuple(x):
    """A tuple is several arguments; anything else (a list too) is one."""
    return x if isinstance(x, tuple) else (x,)


# -- pytrees -----------------------------------------------------------------------------

_NUMBER = (bool, int, float, np.generic)


def _plain_numbers(seq):
    """A list/tuple of numbers (nested): one array, as NumPy reads it."""
    for e in seq:
        if type(e) in (list, tuple):
            if not _plain_numbers(e):
                return False
        elif not isinstance(e, _NUMBER):
            return False
    return True


def _is_container(x):
    if x is None or isinstance(x, dict):
        return True
    return isinstance(x, (list, tuple)) and (hasattr(x, "_fields") or not _plain_numbers(x))


def _children(x, path):
    """(path, child) pairs of a container, in order; dicts by insertion order."""
    if x is None:
        return []
    if isinstance(x, dict):
        return [(f"{path}[{k!r}]", v) for k, v in x.items()]
    return [(f"{path}[{i}]", v) for i, v in enumerate(x)]


def _tree_leaves(fname, x, path, check=True):
    """[(path, leaf)], depth first; with ``check``, anything but an array, Variable or number is refused."""
    if _is_container(x):
        return [pl for p, c in _children(x, path) for pl in _tree_leaves(fname, c, p, check)]
    if check and not isinstance(x, (Variable, np.ndarray, list, tuple) + _NUMBER):
        raise TypeError(f"{fname}: {path} must be an array-like of numbers, a Variable or a dict/list/tuple "
                        f"of them, got {type(x).__name__}")
    return [(path, x)]


def _tree_like(template, leaves):
    """``template``'s structure with its leaves taken in order from the iterator ``leaves``."""
    if not _is_container(template):
        return next(leaves)
    if template is None:
        return None
    if isinstance(template, dict):
        return type(template)((k, _tree_like(v, leaves)) for k, v in template.items())
    values = [_tree_like(v, leaves) for v in template]
    return type(template)(*values) if hasattr(template, "_fields") else type(template)(values)


def _leaves_like(fname, template, x, path):
    """[(path, leaf)] of ``x``, which must have ``template``'s structure (a tangent, a cotangent)."""
    if not _is_container(template):
        return [(path, x)]
    if template is None:
        if x is not None:
            raise ValueError(f"{fname}: {path} must be None like its primal, got {type(x).__name__}")
        return []
    if isinstance(template, dict):
        if not isinstance(x, dict) or set(x) != set(template):
            raise ValueError(f"{fname}: {path} must be a dict with the keys {sorted(map(repr, template))} "
                             f"of its primal, got {sorted(map(repr, x)) if isinstance(x, dict) else type(x).__name__}")
        return [pl for k in template for pl in _leaves_like(fname, template[k], x[k], f"{path}[{k!r}]")]
    if not isinstance(x, (list, tuple)) or len(x) != len(template):
        raise ValueError(f"{fname}: {path} must be a {type(template).__name__} of {len(template)} like "
                         f"its primal, got {type(x).__name__}"
                         + (f" of {len(x)}" if isinstance(x, (list, tuple)) else ""))
    return [pl for i, (t, e) in enumerate(zip(template, x))
            for pl in _leaves_like(fname, t, e, f"{path}[{i}]")]


def _pair(fname, f, res):
    if isinstance(res, tuple) and len(res) == 2:
        return res
    what = f"a tuple of {len(res)}" if isinstance(res, tuple) else type(res).__name__
    raise TypeError(f"{fname}: has_aux=True, so {getattr(f, '__name__', 'the function')} must "
                    f"return (output, aux); it returned {what}")


def _detached(aux, nested):
    """aux with its Variables as arrays unless nested (no graph kept alive); other leaves as they are."""
    leaves = [leaf for _, leaf in _tree_leaves("aux", aux, "aux", check=False)]
    return _tree_like(aux, iter(np.array(v.data) if isinstance(v, Variable) and not nested else v for v in leaves))


def _aux_flag(fname, has_aux):
    if not isinstance(has_aux, (bool, np.bool_)):
        raise TypeError(f"{fname}: has_aux must be a bool, got {type(has_aux).__name__}")


class _Tree:
    """``f`` as a function of the leaves of its arguments at ``positions``, returning one
    Variable: the output itself, or its leaves raveled and concatenated."""

    def __init__(self, fname, f, args, positions, has_aux=False, name=lambda p: f"argument {p}"):
        self.fname, self.f, self.args, self.positions, self.has_aux = fname, f, list(args), positions, has_aux
        self.paths, self.leaves = [], []
        for p in positions:
            if args[p] is None:
                raise TypeError(f"{fname}: {name(p)} is None; expected an array, a number or "
                                f"a dict/list/tuple of them")
            pairs = _tree_leaves(fname, args[p], name(p))
            self.paths += [path for path, _ in pairs]
            self.leaves += [leaf for _, leaf in pairs]
        self.aux = self.out_template = self.outs = None

    def __call__(self, *leaves, **kwargs):
        it, args = iter(leaves), list(self.args)
        for p in self.positions:
            args[p] = _tree_like(self.args[p], it)
        res = self.f(*args, **kwargs)
        if self.has_aux:
            res, self.aux = _pair(self.fname, self.f, res)
        self.out_template = res
        if isinstance(res, Variable):
            self.outs = [res]
            return res
        outs = [leaf for _, leaf in _tree_leaves(self.fname, res, "output")] if _is_container(res) else [res]
        if not outs or not all(isinstance(o, Variable) for o in outs):
            bad = next((type(o).__name__ for o in outs if not isinstance(o, Variable)), None)
            shape = getattr(res, "shape", None)
            raise TypeError(f"{self.fname}: the function must return a tapegrad.reference Variable, "
                            f"got {type(res).__name__}" + ("" if shape is None else f" of shape {shape}")
                            + (f" holding a {bad}" if bad and _is_container(res) else "")
                            + "; build the result with Variable ops (a dict/list/tuple of them is a pytree output)")
        self.outs = outs
        return outs[0] if len(outs) == 1 else ops.concatenate([o.reshape((-1,)) for o in outs])

    def rows(self, v, dtype_with=None):
        """``v`` (the concatenated output's axis first, then any trailing axes) cut into one piece
        per output leaf, of that leaf's shape + the trailing axes; ``dtype_with``: a dtype each
        piece is promoted with (a Jacobian's input's), else the leaf's own."""
        if len(self.outs) == 1:
            pieces = [v]
        else:
            pieces, lo = [], 0
            for o in self.outs:
                pieces.append(v[lo:lo + o.size].reshape(o.shape + tuple(v.shape[1:])))
                lo += o.size
        dts = [o.dtype if dtype_with is None else np.result_type(o.dtype, dtype_with) for o in self.outs]
        return [pc if pc.dtype == dt else pc.astype(dt) for pc, dt in zip(pieces, dts)]

    def per_output(self, v):
        """``v`` cut per output leaf and put back in the output's structure."""
        return _tree_like(self.out_template, iter(self.rows(v)))

    def per_argument(self, flat):
        """Per-leaf results regrouped into each differentiated argument's structure."""
        it = iter(flat)
        return [_tree_like(self.args[p], it) for p in self.positions]

    def cotangent(self, fname, ct):
        """A cotangent of the output's structure as one Variable (concatenated like the output)."""
        if len(self.outs) == 1 and isinstance(self.out_template, Variable):
            return _direction(fname, "cotangent", ct, self.outs[0], "the output")
        pairs = _leaves_like(fname, self.out_template, ct, "cotangent")
        cts = [_direction(fname, path, c, o, "its output") for (path, c), o in zip(pairs, self.outs)]
        return cts[0] if len(cts) == 1 else ops.concatenate([c.reshape((-1,)) for c in cts])


def _primal(fname, argname, x):
    """A differentiated argument as a Variable, or a fresh float array."""
    if isinstance(x, Variable):
        return x
    try:
        return _to_array(x, name=f"{fname}: {argname}")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{fname}: {argname} must be an array-like of numbers, "
                        f"got {type(x).__name__} ({exc})") from None


def _direction(fname, argname, t, primal, primal_name):
    """A tangent/cotangent checked against ``primal`` (same shape and dtype; a
    Python scalar or list takes the primal's dtype), as a Variable."""
    if isinstance(t, Variable):
        shape, dtype = t.shape, t.dtype
    else:
        try:
            arr = np.asarray(t)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{fname}: {argname} must be an array of floats, got "
                            f"{type(t).__name__} (dtype {arr.dtype}); {primal_name} "
                            f"has shape {primal.shape}")
        weak = type(t) in (bool, int, float, list)
        shape, dtype = arr.shape, (primal.dtype if weak else arr.dtype)
    if shape != primal.shape:
        raise ValueError(f"{fname}: {argname} has shape {shape} but {primal_name} has "
                         f"shape {primal.shape}; they must be equal")
    if dtype != primal.dtype:
        raise TypeError(f"{fname}: {argname} has dtype {dtype} (shape {shape}) but "
                        f"{primal_name} has dtype {primal.dtype} (shape {primal.shape}); "
                        f"the dtypes must be equal")
    return t if isinstance(t, Variable) else Variable._wrap(_to_array(arr, dtype))


class _Trace:
    """``f(*args)`` evaluated once with the arguments at positions ``diff``
    replaced by fresh input nodes; the graph is kept for the sweeps."""

    def __init__(self, fname, f, args, diff, nested, kwargs=None):
        self.nested, call_args, self.inputs = nested, list(args), []
        with enable_grad():
            for i in diff:
                x = args[i]
                call_args[i] = (ops.identity(x) if nested and _requires_grad(x) else
                                Variable(x.data if isinstance(x, Variable) else x, requires_grad=True))
                self.inputs.append(call_args[i])
            out = f(*call_args, **(kwargs or {}))
        if not isinstance(out, Variable):
            shape = getattr(out, "shape", None)
            raise TypeError(
                f"{fname}: the function must return a tapegrad.reference Variable, "
                f"got {type(out).__name__}" + ("" if shape is None else f" of shape {shape}")
                + "; build the result with Variable ops")
        self.output = out

    def value(self):
        """f's value: a copy unless nested (f may return a Variable the caller owns)."""
        return self.output if self.nested else np.array(self.output.data)

    def finish(self, v, nested=None):
        return v if (self.nested if nested is None else nested) else v.data

    def grad_mode(self, nested=None):
        return enable_grad() if (self.nested if nested is None else nested) else no_grad()

    def push_forward(self, tangents):
        """Output tangent (k,) + out.shape for input tangents (k,) + x.shape."""
        t = forward_sweep(self.output, self.inputs, tangents, create_graph=self.nested)
        k = next(t for t in tangents if t is not None).shape[0]
        return _zeros((k,) + self.output.shape, self.output.dtype) if t is None else t

    def pull_back(self, cotangent, nested=None):
        """One gradient per input (zeros where there is no path)."""
        grads = reverse_sweep(self.output, self.inputs, cotangent,
                              create_graph=self.nested if nested is None else nested)
        return [_zeros(x.shape, x.dtype) if g is None else g for x, g in zip(self.inputs, grads)]


# -- jvp, vjp, directional_derivative ---------------------------------------------------


def _names(base, several):
    return (lambda i: f"{base}[{i}]") if several else (lambda i: base)


def _jvp(fname, f, primals, tangents, names, has_aux=False):
    primal_names, tangent_names = names
    _aux_flag(fname, has_aux)
    primals, tangents = _as_tuple(primals), _as_tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"{fname}: got {len(primals)} primals but {len(tangents)} "
                         f"tangents; pass one tangent per primal")
    tree = _Tree(fname, f, primals, range(len(primals)), has_aux, primal_names)
    leaves = [_primal(fname, path, leaf) for path, leaf in zip(tree.paths, tree.leaves)]
    pairs = [pl for i, (p, t) in enumerate(zip(primals, tangents))
             for pl in _leaves_like(fname, p, t, tangent_names(i))]
    tangents = [_direction(fname, path, t, x, xpath)
                for (path, t), x, xpath in zip(pairs, leaves, tree.paths)]
    trace = _Trace(fname, tree, leaves, range(len(leaves)),
                   any(_requires_grad(v) for v in leaves + tangents))
    with trace.grad_mode():
        if leaves:
            out_t = trace.push_forward([t.reshape((1,) + t.shape) for t in tangents])   # k = 1
            out_t = trace.finish(out_t.reshape(trace.output.shape))
        else:
            out_t = trace.finish(_zeros(trace.output.shape, trace.output.dtype))
        res = (tree.per_output(trace.value()), tree.per_output(out_t))
    return res + (_detached(tree.aux, trace.nested),) if has_aux else res


def jvp(f: Callable[..., Any], primals: Any, tangents: Any, *, has_aux: bool = False) -> Tuple[Any, ...]:
    """Forward mode: ``(f(*primals), J(primals) @ tangents)``.  A tuple is several
    arguments, each a pytree; tangents match the primals' structures, shapes and
    dtypes; ``f`` may return a pytree.  ``has_aux=True``: ``f`` returns
    ``(output, aux)`` and ``(out, tangent, aux)`` comes back."""
    several = isinstance(primals, tuple)
    return _jvp("jvp", f, primals, tangents,
                (_names("primals", several), _names("tangents", several)), has_aux)


def directional_derivative(f: Callable[..., Variable], x: Any, u: Any) -> Any:
    """J(x) @ u (forward mode); ``x`` and ``u`` as in ``jvp``."""
    several = isinstance(x, tuple)
    return _jvp("directional_derivative", f, x, u, (_names("x", several), _names("u", several)))[1]


def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Tuple[Any, ...]:
    """Reverse mode: ``(f(*primals), vjp_fn)``; ``vjp_fn(cotangent)`` returns one
    gradient per primal (each in its primal's structure) and may be called any
    number of times; the cotangent has the output's structure.  ``has_aux=True``:
    ``(out, vjp_fn, aux)``."""
    _aux_flag("vjp", has_aux)
    tree = _Tree("vjp", f, primals, range(len(primals)), has_aux, lambda i: f"primals[{i}]")
    leaves = [_primal("vjp", path, leaf) for path, leaf in zip(tree.paths, tree.leaves)]
    trace = _Trace("vjp", tree, leaves, range(len(leaves)), any(map(_requires_grad, leaves)))

    def vjp_fn(cotangent):
        ct = tree.cotangent("vjp", cotangent)
        nested = trace.nested or _requires_grad(ct)
        with trace.grad_mode(nested):
            grads = [trace.finish(g, nested) for g in trace.pull_back(ct, nested)] if leaves else []
            return tuple(tree.per_argument(grads))

    value = tree.per_output(trace.value())
    return (value, vjp_fn, _detached(tree.aux, trace.nested)) if has_aux else (value, vjp_fn)


# -- grad, value_and_grad --------------------------------------------------------------


def _value_and_grad(fname, f, argnums, has_aux=False):
    _aux_flag(fname, has_aux)
    single = isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool)
    nums = (argnums,) if single else argnums
    if not isinstance(nums, (tuple, list)) or not all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in nums):
        raise TypeError(f"{fname}: argnums must be an int or a tuple of ints, got {argnums!r}")
    nums = tuple(int(a) for a in nums)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        n = len(args)
        if any(not -n <= a < n for a in nums):
            valid = f" (valid: {-n}..{n - 1})" if n else ""
            raise ValueError(
                f"{fname}: argnums {argnums!r} is out of range for a call with {n} "
                f"positional argument{'s' if n != 1 else ''}{valid}")
        positions = sorted({a % n for a in nums})
        tree = _Tree(fname, f, args, positions, has_aux)
        leaves = [_primal(fname, path, leaf) for path, leaf in zip(tree.paths, tree.leaves)]
        others = [a for i, a in enumerate(args) if i not in positions] + list(kwargs.values())
        nested = any(map(_requires_grad, leaves + others))
        trace = _Trace(fname, tree, leaves, range(len(leaves)), nested, kwargs)
        out = trace.output
        if not isinstance(tree.out_template, Variable):
            raise TypeError(f"{fname}: the function must return a tapegrad.reference Variable (a scalar), "
                            f"got {type(tree.out_template).__name__}")
        if out.size != 1:
            raise ValueError(
                f"{fname}: the function must return a single-element Variable (a scalar), "
                f"but it returned shape {out.shape}; use jacobian, vjp or jvp for "
                f"non-scalar outputs")
        with trace.grad_mode():
            grads = trace.pull_back(Variable._wrap(np.ones(out.shape, out.dtype))) if leaves else []
        by_position = dict(zip(positions, tree.per_argument([trace.finish(g) for g in grads])))
        result = tuple(by_position[a % n] for a in nums)
        value = (trace.value(), _detached(tree.aux, nested)) if has_aux else trace.value()
        return value, (result[0] if single else result)

    return wrapper


def value_and_grad(f: Callable[..., Any], argnums: Union[int, Sequence[int]] = 0,
                   has_aux: bool = False) -> Callable[..., Tuple[Any, Any]]:
    """Like ``grad``, but the function returns ``(f(*args), gradient)``; with
    ``has_aux=True`` ``((value, aux), gradient)``."""
    return _value_and_grad("value_and_grad", f, argnums, has_aux)


def grad(f: Callable[..., Any], argnums: Union[int, Sequence[int]] = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of a single-element ``f`` w.r.t. the positional argument(s)
    ``argnums`` (an int gives one gradient, a tuple a tuple), as a function.
    An argument may be a pytree (the gradient has its structure); with
    ``has_aux=True`` ``f`` returns ``(scalar, aux)`` and so does the result: ``(gradient, aux)``."""
    vg = _value_and_grad("grad", f, argnums, has_aux)
    if has_aux:
        def with_aux(*args, **kwargs):
            (_, aux), g = vg(*args, **kwargs)
            return g, aux
        return functools.wraps(f)(with_aux)
    return functools.wraps(f)(lambda *args, **kwargs: vg(*args, **kwargs)[1])


# -- jacobian, hessian, hvp ------------------------------------------------------------

_MODES = ("auto", "forward", "reverse")


def _basis(lo, hi, shape, dtype):
    """Rows lo:hi of the identity, each reshaped to ``shape``."""
    rows = np.zeros((hi - lo, math.prod(shape)), dtype)
    rows[np.arange(hi - lo), np.arange(lo, hi)] = 1
    return Variable._wrap(rows.reshape((hi - lo,) + tuple(shape)))


def _chunks(total, chunk_size):
    step = total if chunk_size is None else chunk_size
    return [(lo, min(total, lo + step)) for lo in range(0, total, max(step, 1))]


def _cat(parts):
    return ops.concatenate(parts) if len(parts) > 1 else parts[0]


def _jacobian(trace, mode, chunk_size):
    """Per input, J of shape out.shape + x.shape: input-basis tangents pushed
    forward a chunk per sweep, or output-basis cotangents pulled back."""
    out = trace.output
    jacs = []
    if mode == "forward":
        for i, x in enumerate(trace.inputs):
            if x.size == 0 or out.size == 0:
                jacs.append(_zeros(out.shape + x.shape, out.dtype))
                continue
            cols = [trace.push_forward([_basis(lo, hi, x.shape, x.dtype) if j == i else None
                                        for j in range(len(trace.inputs))])
                    for lo, hi in _chunks(x.size, chunk_size)]
            jacs.append(_cat(cols).reshape((x.size, out.size)).T.reshape(out.shape + x.shape))
    else:
        rows = [[] for _ in trace.inputs]
        for lo, hi in _chunks(out.size, chunk_size):
            cts = _basis(lo, hi, out.shape, out.dtype)
            for r in range(hi - lo):
                for i, g in enumerate(trace.pull_back(cts[r])):
                    rows[i].append(g)
        jacs = [_zeros(out.shape + x.shape, out.dtype) if out.size == 0 else
                ops.stack(r).reshape(out.shape + x.shape) for x, r in zip(trace.inputs, rows)]
    dtypes = [np.result_type(out.dtype, x.dtype) for x in trace.inputs]
    return [j if j.dtype == dt else j.astype(dt) for j, dt in zip(jacs, dtypes)]


def jacobian(f: Callable[..., Any], x: Any, *, mode: str = "auto", chunk_size: Optional[int] = None,
             has_aux: bool = False) -> Any:
    """The Jacobian of ``f`` at ``x`` (shape out.shape + x.shape; a tuple ``x``
    gives a tuple).  ``mode="auto"`` is forward when the input size n <= the
    output size m, else reverse; ``chunk_size`` bounds the directions per
    sweep.  dtype: the promotion of the output's and the input's.  Pytrees: a
    dict ``x`` gives a dict; a pytree output gives its structure, each leaf
    holding the Jacobians of that leaf.  ``has_aux=True``: ``(jacobian, aux)``."""
    return _jacobian_of("jacobian", f, x, mode, chunk_size, has_aux)


def _jacobian_of(fname, f, x, mode, chunk_size, has_aux=False):
    if mode not in _MODES:
        raise ValueError(f"{fname}: mode must be one of {', '.join(map(repr, _MODES))}, "
                         f"got {mode!r}")
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
            raise TypeError(f"{fname}: chunk_size must be a positive int or None, "
                            f"got {chunk_size!r}")
        if chunk_size < 1:
            raise ValueError(f"{fname}: chunk_size must be a positive int or None, "
                             f"got {chunk_size}")
        chunk_size = int(chunk_size)
    _aux_flag(fname, has_aux)
    several = isinstance(x, tuple)
    args = _as_tuple(x)
    tree = _Tree(fname, f, args, range(len(args)), has_aux, _names("x", several))
    xs = [_primal(fname, path, leaf) for path, leaf in zip(tree.paths, tree.leaves)]
    trace = _Trace(fname, tree, xs, range(len(xs)), any(map(_requires_grad, xs)))
    if mode == "auto":
        mode = "forward" if sum(xi.size for xi in xs) <= trace.output.size else "reverse"
    with trace.grad_mode():
        # per input leaf, its Jacobian cut per output leaf; then per output leaf, the arguments' structures
        cut = [tree.rows(trace.finish(j), xi.dtype) for j, xi in zip(_jacobian(trace, mode, chunk_size), xs)]
        per_out = []
        for i in range(len(tree.outs)):
            per_arg = tree.per_argument([pieces[i] for pieces in cut])
            per_out.append(tuple(per_arg) if several else per_arg[0])
        jac = _tree_like(tree.out_template, iter(per_out))
    return (jac, _detached(tree.aux, trace.nested)) if has_aux else jac


def _grad_of(fname, f, argnum):
    vg = _value_and_grad(fname, f, argnum)
    return lambda *args: vg(*args)[1]


def hessian(f: Callable[..., Variable], x: Any) -> Any:
    """The Hessian of a scalar ``f`` (x.shape + x.shape): forward over reverse,
    ``jacobian(grad(f), x, mode="forward")``; a tuple ``x`` gives H[i][j], a
    dict ``x`` a dict of dicts."""
    if isinstance(x, tuple):
        return tuple(_jacobian_of("hessian", _grad_of("hessian", f, i), x, "forward", None)
                     for i in range(len(x)))
    return _jacobian_of("hessian", _grad_of("hessian", f, 0), x, "forward", None)


def hvp(f: Callable[..., Variable], x: Any, v: Any) -> Any:
    """H(x) @ v of a scalar ``f`` without forming H: one forward sweep of ``v``
    over the recorded gradient (tuples for several inputs; a pytree ``x`` with
    ``v`` of its structure gives H·v in it)."""
    several = isinstance(x, tuple)
    if not several:      # x may be a pytree (v of its structure): jvp of the gradient checks both
        return _jvp("hvp", _grad_of("hvp", f, 0), (x,), (v,), (_names("x", False), _names("v", False)))[1]
    xs = [_primal("hvp", f"x[{i}]" if several else "x", xi) for i, xi in enumerate(_as_tuple(x))]
    vs = _as_tuple(v)
    if len(vs) != len(xs):
        raise ValueError(f"hvp: got {len(xs)} inputs x but {len(vs)} directions v")
    names = (_names("x", several), _names("v", several))
    for i, (vi, xi) in enumerate(zip(vs, xs)):       # check here to name 'v'
        _direction("hvp", names[1](i), vi, xi, names[0](i))
    rows = tuple(_jvp("hvp", _grad_of("hvp", f, i), tuple(xs), vs, names)[1]
                 for i in range(len(xs)))
    return rows if several else rows[0]


# -- custom ops --------------------------------------------------------------------


class _CustomFunction(Function):
    """The node of a ``custom_op`` call; its rules get NumPy arrays."""

    name = "custom_op"

    def forward(self, *xs):
        self.save_for_backward(*xs, OUTPUT)
        out = np.asarray(self.op.fun(*[x.data for x in xs], **self.kwargs))
        if out.dtype not in _FLOAT_DTYPES:
            if out.dtype.kind not in "biuf":
                raise TypeError(f"custom op '{self.name}': forward must return a float "
                                f"array, got dtype {out.dtype}")
            out = out.astype(np.result_type(*[x.dtype for x in xs]) if xs else np.float64)
        return out

    def _arrays(self, rule, what):
        if rule is None:
            raise NotImplementedError(what)
        if is_grad_enabled():     # a recorded sweep: NumPy rules cannot be recorded
            raise NotImplementedError(
                f"custom op '{self.name}': second-order differentiation (create_graph=True, "
                f"hessian, hvp, nested transforms) through a custom op is not supported; "
                f"its rules work on NumPy arrays")
        *xs, ans = self.saved_values()
        return [x.data for x in xs], ans.data

    def vjp(self, g):
        xs, ans = self._arrays(self.op._vjp_rule, f"custom op '{self.name}' has no VJP rule "
                               f"for reverse mode; define one with @{self.name}.defvjp")
        grads = self.op._vjp_rule(g.data, ans, *xs, **self.kwargs)
        grads = (grads,) if len(xs) == 1 and not isinstance(grads, (tuple, list)) else tuple(grads)
        if len(grads) != len(xs):
            raise ValueError(f"custom op '{self.name}': the VJP rule returned {len(grads)} "
                             f"gradients for {len(xs)} inputs")
        result = []
        for i, (x, gi) in enumerate(zip(xs, grads)):
            if gi is None or self.inputs[i] is None:
                result.append(None)
                continue
            gi = np.asarray(gi, dtype=x.dtype)
            if gi.shape != x.shape:
                try:        # accept a gradient of the broadcast shape: sum it down
                    np.broadcast_to(np.zeros(x.shape), gi.shape)
                    gi = ops.unbroadcast(Variable._wrap(gi), x.shape).data
                except ValueError:
                    raise ValueError(
                        f"custom op '{self.name}': the VJP rule returned a gradient of "
                        f"shape {gi.shape} for input {i} of shape {x.shape}") from None
            result.append(Variable._wrap(np.array(gi)))
        return tuple(result)

    def jvp(self, *ts):
        rules = self.op._jvp_rules
        xs, ans = self._arrays(rules, f"custom op '{self.name}' has no JVP rule for forward "
                               f"mode; define them with {self.name}.defjvp(...) (one rule per input)")
        shape = (next(t for t in ts if t is not None).shape[0],) + ans.shape
        total = None
        for i, t in enumerate(ts):
            if t is None:
                continue
            if i >= len(rules):
                raise NotImplementedError(
                    f"custom op '{self.name}' has no JVP rule for input {i} (forward mode); "
                    f"pass one rule per input to {self.name}.defjvp")
            if rules[i] is None:               # declared zero, as in HIPS autograd
                continue
            ti = np.asarray(rules[i](t.data, ans, *xs, **self.kwargs))
            if ti.shape != shape:   # a shape that merely broadcasts is refused too, as the C++ engine does
                raise ValueError(
                    f"custom op '{self.name}': the JVP rule of input {i} returned shape "
                    f"{ti.shape}, expected the batched output shape {shape}")
            total = ti if total is None else total + ti
        return None if total is None else Variable._wrap(np.array(total, dtype=ans.dtype))


class custom_op:
    """A primitive defined by a NumPy function with user-supplied derivatives::

        @custom_op
        def cube(x):                    # forward: NumPy arrays in and out
            return x ** 3

        @cube.defvjp
        def _(g, ans, x):               # one gradient per input (a tuple for several)
            return g * 3 * x ** 2

        @cube.defjvp
        def _(t, ans, x):               # output tangent contributed by x's tangent
            return t * 3 * x ** 2

    ``defjvp(rule_0, rule_1, ...)`` takes one rule per input (None = zero); ``t``
    carries a leading batch axis, so rules must broadcast.  Keyword arguments
    are constants passed to forward and rules.  A missing rule for the mode in
    use, or any second-order use, raises ``NotImplementedError``.
    """

    def __init__(self, fun):
        if not callable(fun):
            raise TypeError(f"custom_op: expected a function, got {type(fun).__name__}")
        functools.update_wrapper(self, fun)
        self.fun, self.name = fun, getattr(fun, "__name__", "custom_op")
        self._vjp_rule = self._jvp_rules = None

    def defvjp(self, rule):
        """Set the VJP rule ``rule(g, ans, *inputs)``; usable as a decorator."""
        if not callable(rule):
            raise TypeError(f"custom op '{self.name}': defvjp expects a function")
        self._vjp_rule = rule
        return rule

    def defjvp(self, *rules):
        """Set the JVP rules ``rule_i(t_i, ans, *inputs)``, one per input (None = zero)."""
        if not rules or any(r is not None and not callable(r) for r in rules):
            raise TypeError(f"custom op '{self.name}': defjvp expects one function "
                            f"(or None) per input")
        self._jvp_rules = rules
        return rules[0] if len(rules) == 1 else rules

    def __call__(self, *args, **kwargs):
        return _CustomFunction.apply(*ops._operands(*args), op=self, kwargs=kwargs, name=self.name)

    def __repr__(self):
        return f"<custom_op {self.name}>"
