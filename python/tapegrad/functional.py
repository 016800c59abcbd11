"""Derivative operators built from the core's two sweeps.

Every operator here is a thin driver over `_core._forward` (forward sweep:
JVPs of a batch of tangents) and `_core._grad` (reverse sweep: VJPs of a
batch of cotangents). Nothing is differentiated in Python.

Values come back as NumPy arrays, except when an input is a Variable that
requires grad: then the call is nested inside another transform (for
example `jacobian(grad(f), x)`), the sweeps are recorded (`create_graph`)
and Variables connected to the outer graph come back.

Arguments and outputs may be pytrees, as in JAX: dicts, lists, tuples
(namedtuples too) and None nested around array leaves (ndarrays, Variables,
numbers); derivatives come back in the same structure. A list or tuple of
plain numbers stays one array, as NumPy reads it.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterator, Literal, Sequence, TypeVar, overload

import numpy as np

from . import _core
from ._core import Variable
from ._grad_mode import enable_grad
from ._typing import Array, Function, Operand, Primals, Result, Results

Aux = TypeVar("Aux")

__all__ = [
    "jvp", "vjp", "grad", "value_and_grad", "jacobian", "hessian", "hvp",
    "directional_derivative",
]

# The auto mode's cost model (see jacobian): one reverse direction costs
# about this many forward directions over the same tape, measured with
# benchmarks/jacobian.py (reverse sweeps also sum broadcasts back and
# re-read saved values).
REVERSE_COST_PER_DIRECTION = 1.0


# ---------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------

def _as_tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _check_f(f: object, what: str) -> None:
    if not callable(f):
        raise TypeError(f"{what}: f must be a function, got {type(f).__name__}")


def _asarray(x: Any, what: str, role: str) -> np.ndarray[Any, Any]:
    """np.asarray(x), its errors naming the operator (a ragged list, ...)."""
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{what}: {role} must be an array of real numbers: {e}") from None


def _input(x: Operand, what: str) -> tuple[Variable, bool]:
    """(leaf to differentiate at, nested?) for a primal value."""
    if isinstance(x, Variable):
        if x.requires_grad:
            return x, True  # part of an outer graph: differentiate through it
        v = x.detach()
        v.requires_grad = True
        return v, False
    arr = _asarray(x, what, "primal")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{what}: primal must be an array of real numbers, got dtype {arr.dtype}")
    return Variable(arr, requires_grad=True), False


def _run(f: Any, args: Sequence[Any], what: str, has_aux: bool) -> tuple[Any, Any]:
    """f(*args) recorded: (its output, its aux or None)."""
    with enable_grad():
        out = f(*args)
    return _split_aux(out, f, what) if has_aux else (out, None)


def _call(f: Function, args: Sequence[Any], what: str, has_aux: bool = False) -> tuple[Variable, Any]:
    """f(*args) recorded, for an operator that needs one Variable out: (output, aux or None)."""
    out, aux = _run(f, args, what, has_aux)
    if not isinstance(out, Variable):
        raise TypeError(f"{what}: the function {_fname(f)} must return a tapegrad.Variable, got {type(out).__name__}")
    return out, aux


def _value(v: Variable, nested: bool) -> Result:
    return v if nested else v.numpy()


def _zeros_like(x: Variable, nested: bool) -> Result:
    z = np.zeros(x.shape, dtype=x.dtype)
    return Variable(z) if nested else z


def _tangent(t: Operand, primal: Variable, what: str, i: int) -> Any:
    """A tangent as an array of the primal's dtype and shape (batch axes allowed before)."""
    if isinstance(t, Variable):
        t = t if t.requires_grad else t.data
    else:
        t = _asarray(t, what, f"tangent {i}")
    dt = np.dtype(t.dtype)
    if dt.kind not in "fiub":
        raise TypeError(f"{what}: tangent {i} must be real numbers, got dtype {dt}")
    if dt.kind == "f" and dt != primal.dtype:
        raise TypeError(f"{what}: tangent {i} has dtype {dt} but its primal has dtype {primal.dtype}")
    if isinstance(t, np.ndarray) and t.dtype != primal.dtype:
        t = t.astype(primal.dtype)
    return t


# ---------------------------------------------------------------------------
# Pytrees: dicts, lists, tuples (namedtuples too) and None around array leaves
# ---------------------------------------------------------------------------
# A structure is described by a spec: _LEAF, None, or (type, keys, child specs) where keys
# is a tuple for a dict, None for a list/tuple and _NAMED for a namedtuple.

_LEAF = "leaf"
_NAMED = "namedtuple"
_SCALARS = (bool, int, float, np.generic)


def _numbers_only(x: Any) -> bool:
    """A (nested) list/tuple of numbers is one array as NumPy reads it (today's calls), not a container."""
    return all(isinstance(e, _SCALARS) or (type(e) in (list, tuple) and _numbers_only(e)) for e in x)


def _flatten(x: Any, leaves: list[Any], where: str, what: str) -> Any:
    """Append the leaves of ``x`` (depth first, dicts in key order) to ``leaves``; return its spec.
    ``where`` names ``x`` in errors (``argument 0['W']``)."""
    t = type(x)
    if t is np.ndarray or t is Variable:  # the usual call: no container walk
        leaves.append(x)
        return _LEAF
    if x is None:
        return None
    if isinstance(x, dict):
        keys = tuple(x)
        return t, keys, tuple(_flatten(x[k], leaves, f"{where}[{k!r}]", what) for k in keys)
    if isinstance(x, (tuple, list)) and (hasattr(x, "_fields") or not _numbers_only(x)):
        kids = tuple(_flatten(e, leaves, f"{where}[{i}]", what) for i, e in enumerate(x))
        return t, (_NAMED if hasattr(x, "_fields") else None), kids
    if not isinstance(x, (np.ndarray, Variable, tuple, list) + _SCALARS):
        raise TypeError(f"{what}: {where} is a {t.__name__}; a leaf must be a NumPy array, a tapegrad.Variable "
                        "or a number (in dicts, lists, tuples or None)")
    leaves.append(x)
    return _LEAF


def _flatten_as(spec: Any, x: Any, leaves: list[Any], where: str, what: str) -> None:
    """Append the leaves of ``x``, which must have the structure ``spec`` (a tangent or cotangent)."""
    if spec is _LEAF:
        leaves.append(x)
        return
    if spec is None:
        if x is not None:
            raise ValueError(f"{what}: {where} must be None (as its primal), got {type(x).__name__}")
        return
    t, keys, kids = spec
    if keys is None or keys is _NAMED:
        if not isinstance(x, (tuple, list)) or len(x) != len(kids):
            got = f"a {type(x).__name__} of length {len(x)}" if isinstance(x, (tuple, list)) else type(x).__name__
            raise ValueError(f"{what}: {where} must be a {t.__name__} of length {len(kids)} (as its primal), "
                             f"got {got}")
        for i, (k, e) in enumerate(zip(kids, x)):
            _flatten_as(k, e, leaves, f"{where}[{i}]", what)
        return
    if not isinstance(x, dict) or set(x) != set(keys):
        got = f"keys {_keys(x)}" if isinstance(x, dict) else f"a {type(x).__name__}"
        raise ValueError(f"{what}: {where} must be a dict with keys {_keys(keys)} (as its primal), got {got}")
    for key, k in zip(keys, kids):
        _flatten_as(k, x[key], leaves, f"{where}[{key!r}]", what)


def _keys(keys: Any) -> str:
    return ", ".join(sorted(map(repr, keys)))


def _build(spec: Any, it: Iterator[Any]) -> Any:
    """The structure ``spec`` with its leaves taken from ``it`` in order."""
    if spec is _LEAF:
        return next(it)
    if spec is None:
        return None
    t, keys, kids = spec
    vals = [_build(k, it) for k in kids]
    if keys is None:
        return t(vals)
    return t(*vals) if keys is _NAMED else t(zip(keys, vals))


def _unflatten(spec: Any, leaves: Sequence[Any]) -> Any:
    return leaves[0] if spec is _LEAF else _build(spec, iter(leaves))


def _fname(f: Any) -> str:
    return getattr(f, "__name__", type(f).__name__)


def _check_flag(has_aux: Any, what: str) -> None:
    if not isinstance(has_aux, (bool, np.bool_)):
        raise TypeError(f"{what}: has_aux must be True or False, got {type(has_aux).__name__}")


def _split_aux(res: Any, f: Any, what: str) -> tuple[Any, Any]:
    """(output, aux) of a has_aux function's result."""
    if not (isinstance(res, tuple) and len(res) == 2):
        got = f"a tuple of length {len(res)}" if isinstance(res, tuple) else type(res).__name__
        raise TypeError(f"{what}: with has_aux=True the function {_fname(f)} must return a pair (output, aux), "
                        f"got {got}")
    return res


def _aux(x: Any, nested: bool) -> Any:
    """aux with its Variables as arrays (outside a nested call), so it holds no graph."""
    if isinstance(x, Variable):
        return x if nested else x.numpy()
    if isinstance(x, dict):
        return type(x)((k, _aux(e, nested)) for k, e in x.items())
    if isinstance(x, (tuple, list)):
        vals = [_aux(e, nested) for e in x]
        return type(x)(*vals) if hasattr(x, "_fields") else type(x)(vals)
    return x


def _primals(args: Sequence[Any], what: str,
             positions: Sequence[int] | None = None) -> tuple[list[Any], list[Variable], list[Any], bool]:
    """Each argument flattened into fresh leaves: (the arguments rebuilt around Variables, every leaf in
    order, each argument's spec, nested?). ``positions`` number the arguments in errors."""
    call, xs, specs, nested = [], [], [], False
    for i, a in enumerate(args):
        if type(a) is np.ndarray or type(a) is Variable:  # the usual call: one leaf, no walk
            v, n = _input(a, what)
            call.append(v)
            xs.append(v)
            specs.append(_LEAF)
            nested = nested or n
            continue
        where = f"argument {i if positions is None else positions[i]}"
        if a is None:  # (None inside a container is an empty subtree; a whole None argument is a mistake)
            raise TypeError(f"{what}: {where} is None; expected an array, a number or a dict/list/tuple of them")
        leaves: list[Any] = []
        spec = _flatten(a, leaves, where, what)
        vs = []
        for p in leaves:
            v, n = _input(p, what)
            vs.append(v)
            nested = nested or n
        call.append(_unflatten(spec, vs))
        xs.extend(vs)
        specs.append(spec)
    return call, xs, specs, nested


def _per_arg(specs: Sequence[Any], flat: Sequence[Any]) -> list[Any]:
    """Per-leaf results regrouped into each argument's structure."""
    if all(spec is _LEAF for spec in specs):
        return list(flat)
    res, k = [], 0
    for spec in specs:
        n = _count(spec)
        res.append(_unflatten(spec, flat[k:k + n]))
        k += n
    return res


def _count(spec: Any) -> int:
    if spec is _LEAF:
        return 1
    return 0 if spec is None else sum(_count(k) for k in spec[2])


def _outputs(out: Any, f: Any, what: str) -> tuple[list[Variable], Any]:
    """f's result as (its Variable leaves, its spec); at least one (None is a forgotten return)."""
    if isinstance(out, Variable):
        return [out], _LEAF
    leaves: list[Any] = []
    spec = _flatten(out, leaves, "output", what) if isinstance(out, (dict, tuple, list)) else _LEAF
    bad = [v for v in leaves if not isinstance(v, Variable)]
    if not leaves or bad or spec is _LEAF:
        held = f" holding a {type(bad[0]).__name__}" if bad and spec is not _LEAF else ""
        raise TypeError(f"{what}: the function {_fname(f)} must return a tapegrad.Variable or a dict/list/tuple "
                        f"of them, got {type(out).__name__}{held}")
    return leaves, spec


# ---------------------------------------------------------------------------
# First order
# ---------------------------------------------------------------------------

@overload
def jvp(f: Function, primals: Primals, tangents: Primals, *,
        has_aux: Literal[False] = False) -> tuple[Result, Result]: ...
@overload
def jvp(f: Callable[..., tuple[Any, Aux]], primals: Primals, tangents: Primals, *,
        has_aux: Literal[True]) -> tuple[Result, Result, Aux]: ...
def jvp(f: Callable[..., Any], primals: Primals, tangents: Primals, *, has_aux: bool = False) -> tuple[Any, ...]:
    """Forward mode: ``(f(*primals), J·tangents)``.

    ``primals`` and ``tangents`` are tuples of arguments (a single argument is
    taken as a 1-tuple); each argument a pytree whose tangent has the same
    structure, shapes and dtypes; ``f`` may return a pytree. With
    ``has_aux=True`` ``f`` returns ``(output, aux)`` and ``(out, tangent, aux)`` comes back.
    """
    return _jvp(f, primals, tangents, "jvp", has_aux)


def _jvp(f: Callable[..., Any], primals: Primals, tangents: Primals, what: str,
         has_aux: bool = False) -> tuple[Any, ...]:
    _check_f(f, what)
    _check_flag(has_aux, what)
    primals, tangents = _as_tuple(primals), _as_tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"{what}: got {len(primals)} primals but {len(tangents)} tangents")
    call, xs, specs, nested = _primals(primals, what)
    flat: list[Any] = []
    for i, (spec, t) in enumerate(zip(specs, tangents)):
        _flatten_as(spec, t, flat, f"tangent {i}" if len(tangents) > 1 else "the tangent", what)
    ts = []
    for i, (t, x) in enumerate(zip(flat, xs)):
        t = _tangent(t, x, what, i)
        if tuple(np.shape(t)) != x.shape:
            raise ValueError(f"{what}: tangent {i} has shape {tuple(np.shape(t))} but its primal has shape {x.shape}")
        ts.append(t)
    res, aux = _run(f, call, what, has_aux)
    outs, ospec = _outputs(res, f, what)
    live = [o for o in outs if o.requires_grad]
    swept = iter(_core._forward(live, xs, ts, 0, nested) if live and xs else [])
    out_t = [_value(t, nested) if o.requires_grad and (t := next(swept)) is not None else _zeros_like(o, nested)
             for o in outs]
    value, tangent = _unflatten(ospec, [_value(o, nested) for o in outs]), _unflatten(ospec, out_t)
    return (value, tangent, _aux(aux, nested)) if has_aux else (value, tangent)


def directional_derivative(f: Function, x: Operand, u: Operand) -> Result:
    """J(x)·u = d/dα f(x + αu) at α = 0, by one forward sweep."""
    return _jvp(f, (x,), (u,), "directional_derivative")[1]


@overload
def vjp(f: Function, *primals: Operand,
        has_aux: Literal[False] = False) -> tuple[Result, Callable[[Operand], tuple[Result, ...]]]: ...
@overload
def vjp(f: Callable[..., tuple[Any, Aux]], *primals: Operand,
        has_aux: Literal[True]) -> tuple[Result, Callable[[Operand], tuple[Result, ...]], Aux]: ...
def vjp(f: Callable[..., Any], *primals: Operand, has_aux: bool = False) -> tuple[Any, ...]:
    """Reverse mode: ``(f(*primals), vjp_fn)``; ``vjp_fn(w)`` gives wᵀ·J, one result per primal.

    Each primal may be a pytree (its gradient has its structure), ``f`` may return one
    (``w`` then has that structure). With ``has_aux=True`` ``f`` returns ``(output, aux)``
    and ``(out, vjp_fn, aux)`` comes back.
    """
    _check_f(f, "vjp")
    _check_flag(has_aux, "vjp")
    call, xs, specs, nested = _primals(primals, "vjp")
    res, aux = _run(f, call, "vjp", has_aux)
    outs, ospec = _outputs(res, f, "vjp")

    def vjp_fn(cotangent: Operand) -> tuple[Result, ...]:
        cts: list[Any] = []
        _flatten_as(ospec, cotangent, cts, "the cotangent", "vjp")
        live, seeds = [], []
        for o, c in zip(outs, cts):
            if not isinstance(c, Variable):
                c = _asarray(c, "vjp", "the cotangent")
                if c.dtype.kind not in "fiub":
                    raise TypeError(f"vjp: the cotangent must be real numbers, got dtype {c.dtype}")
            if o.requires_grad:
                live.append(o)
                seeds.append(c)
        grads = _core._grad(live, xs, seeds, True, nested, 0) if live and xs else [None] * len(xs)
        flat = [_zeros_like(x, nested) if g is None else _value(g, nested) for g, x in zip(grads, xs)]
        return tuple(_per_arg(specs, flat))

    value = _unflatten(ospec, [_value(o, nested) for o in outs])
    return (value, vjp_fn, _aux(aux, nested)) if has_aux else (value, vjp_fn)


def _argnums(argnums: int | Sequence[int], nargs: int, what: str) -> tuple[tuple[int, ...], bool]:
    many = isinstance(argnums, (tuple, list))
    nums: tuple[Any, ...] = tuple(argnums) if isinstance(argnums, (tuple, list)) else (argnums,)
    for a in nums:
        if not isinstance(a, numbers.Integral) or isinstance(a, bool):
            raise TypeError(f"{what}: argnums must be an int or a tuple of ints, got {a!r}")
        if not -nargs <= int(a) < nargs:
            raise ValueError(f"{what}: argnums {a} is out of range for a function called with {nargs} "
                             f"positional argument{'s' if nargs != 1 else ''}")
    return tuple(a % nargs for a in nums), many


@overload
def value_and_grad(f: Function, argnums: int = 0,
                   has_aux: Literal[False] = False) -> Callable[..., tuple[float | Variable, Result]]: ...
@overload
def value_and_grad(f: Function, argnums: Sequence[int],
                   has_aux: Literal[False] = False) -> Callable[..., tuple[float | Variable, tuple[Result, ...]]]: ...
@overload
def value_and_grad(f: Callable[..., tuple[Variable, Aux]], argnums: int = 0, *,
                   has_aux: Literal[True]) -> Callable[..., tuple[tuple[float | Variable, Aux], Result]]: ...
@overload
def value_and_grad(f: Callable[..., tuple[Variable, Aux]], argnums: Sequence[int], *,
                   has_aux: Literal[True]) -> Callable[..., tuple[tuple[float | Variable, Aux], tuple[Result, ...]]]: ...
def value_and_grad(f: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable[..., tuple[Any, Any]]:
    """A function returning ``(f(*args), ∇f)`` for a scalar (single-element) ``f``.

    A differentiated argument may be a pytree (its gradient has its structure). With
    ``has_aux=True`` ``f`` returns ``(scalar, aux)`` and ``((value, aux), ∇f)`` comes back.
    """
    return _value_and_grad(f, argnums, "value_and_grad", has_aux)


def _value_and_grad(f: Callable[..., Any], argnums: int | Sequence[int], what: str,
                    has_aux: bool = False) -> Callable[..., tuple[Any, Any]]:
    _check_f(f, what)
    _check_flag(has_aux, what)

    def wrapped(*args: Any) -> tuple[Any, Any]:
        nums, many = _argnums(argnums, len(args), what)
        arglist = list(args)
        call, xs, specs, nested = _primals([args[a] for a in nums], what, nums)
        for a, c in zip(nums, call):
            arglist[a] = c
        out, aux = _call(f, arglist, what, has_aux)
        if out.size != 1:
            raise ValueError(f"{what}: the function must return a scalar (single-element) Variable, "
                             f"got shape {out.shape}; use jacobian or vjp for non-scalar functions")
        if out.requires_grad and xs:
            raw = _core._grad([out], xs, [None], nested, nested, 0)
        else:
            raw = [None] * len(xs)
        gs = _per_arg(specs, [_zeros_like(x, nested) if g is None else _value(g, nested) for g, x in zip(raw, xs)])
        value = out if nested else out.item()
        g = tuple(gs) if many else gs[0]
        return ((value, _aux(aux, nested)), g) if has_aux else (value, g)

    wrapped.__name__ = f"value_and_grad({_fname(f)})"
    return wrapped


@overload
def grad(f: Function, argnums: int = 0, has_aux: Literal[False] = False) -> Callable[..., Result]: ...
@overload
def grad(f: Function, argnums: Sequence[int], has_aux: Literal[False] = False) -> Callable[..., tuple[Result, ...]]: ...
@overload
def grad(f: Callable[..., tuple[Variable, Aux]], argnums: int = 0, *,
         has_aux: Literal[True]) -> Callable[..., tuple[Result, Aux]]: ...
@overload
def grad(f: Callable[..., tuple[Variable, Aux]], argnums: Sequence[int], *,
         has_aux: Literal[True]) -> Callable[..., tuple[tuple[Result, ...], Aux]]: ...
def grad(f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient function of a scalar ``f`` (``argnums`` an int or a tuple of ints).

    A differentiated argument may be a pytree (dicts, lists, tuples of arrays): its
    gradient has the same structure. With ``has_aux=True`` ``f`` returns
    ``(scalar, aux)`` and ``(gradient, aux)`` comes back.
    """
    vg = _value_and_grad(f, argnums, "grad", has_aux)

    if has_aux:
        def wrapped(*args: Any) -> Any:
            (_, aux), g = vg(*args)
            return g, aux
    else:
        def wrapped(*args: Any) -> Any:
            return vg(*args)[1]

    wrapped.__name__ = f"grad({_fname(f)})"
    return wrapped


# ---------------------------------------------------------------------------
# Jacobians
# ---------------------------------------------------------------------------

def _basis(n: int, start: int, stop: int, shape: Sequence[int], dtype: Any) -> Array:
    """Rows start..stop of the n×n identity, each shaped like the input/output."""
    e = np.zeros((stop - start, n), dtype=dtype)
    e[np.arange(stop - start), np.arange(start, stop)] = 1
    return e.reshape((stop - start,) + tuple(shape))


def choose_mode(n: int, m: int) -> str:
    """The auto mode's choice for a Jacobian of an n-input, m-output tape.

    Both sweeps cost about the same per direction over a given tape (each
    visits every recorded op once with a batch of k directions), so forward
    mode costs ~n·C and reverse mode ~m·C·REVERSE_COST_PER_DIRECTION, where C
    is the tape's cost: pick the smaller.
    """
    return "forward" if n < m * REVERSE_COST_PER_DIRECTION else "reverse"


@overload
def jacobian(f: Function, x: tuple[Operand, ...] | list[Operand], *, mode: str = "auto",
             chunk_size: int | None = None, has_aux: Literal[False] = False) -> tuple[Result, ...]: ...
@overload
def jacobian(f: Function, x: Operand, *, mode: str = "auto", chunk_size: int | None = None,
             has_aux: Literal[False] = False) -> Result: ...
@overload
def jacobian(f: Callable[..., tuple[Variable, Aux]], x: tuple[Operand, ...] | list[Operand], *, mode: str = "auto",
             chunk_size: int | None = None, has_aux: Literal[True]) -> tuple[tuple[Result, ...], Aux]: ...
@overload
def jacobian(f: Callable[..., tuple[Variable, Aux]], x: Operand, *, mode: str = "auto",
             chunk_size: int | None = None, has_aux: Literal[True]) -> tuple[Result, Aux]: ...
def jacobian(f: Callable[..., Any], x: Primals, *, mode: str = "auto", chunk_size: int | None = None,
             has_aux: bool = False) -> Any:
    """The Jacobian of ``f`` at ``x``, shape ``out.shape + x.shape``.

    ``x`` a tuple of arrays gives a tuple of Jacobians. ``mode``:
    ``"forward"`` (input-basis tangents, batched through one forward sweep),
    ``"reverse"`` (output-basis cotangents, batched through one reverse sweep)
    or ``"auto"`` (see :func:`choose_mode`). ``chunk_size`` bounds how many
    basis directions go through one sweep (memory: chunk × tape).
    Pytrees: a dict (list, tuple) ``x`` gives a dict of Jacobians; a pytree
    output gives its structure, each leaf holding the Jacobians of that leaf
    (as JAX's ``jacrev``). With ``has_aux=True`` ``f`` returns ``(output, aux)``
    and ``(jacobian, aux)`` comes back.
    """
    return _jacobian(f, x, mode, chunk_size, "jacobian", has_aux)


def _jacobian(f: Callable[..., Any], x: Primals, mode: str, chunk_size: int | None, what: str,
              has_aux: bool = False) -> Any:
    _check_f(f, what)
    _check_flag(has_aux, what)
    if not isinstance(mode, str) or mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"{what}: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    if chunk_size is not None and (not isinstance(chunk_size, numbers.Integral) or isinstance(chunk_size, bool)
                                   or chunk_size < 1):
        raise ValueError(f"{what}: chunk_size must be a positive int or None, got {chunk_size!r}")
    single = not isinstance(x, (tuple, list))
    call, xs, specs, nested = _primals(_as_tuple(x), what)
    res, aux = _run(f, call, what, has_aux)
    outs, ospec = _outputs(res, f, what)
    if len(outs) == 1:
        out = outs[0]
    else:  # several outputs: one Jacobian of their concatenation, split by rows below
        with enable_grad():
            out = _core.concatenate([o.reshape(-1) for o in outs], axis=0)
    m = out.size
    n_total = sum(v.size for v in xs)
    if mode == "auto":
        mode = choose_mode(n_total, m)

    # NumPy's promotion of the input and output dtypes, whichever mode runs.
    jdtypes = [np.result_type(out.dtype, v.dtype) for v in xs]
    jacs = []
    if not out.requires_grad or m == 0 or n_total == 0:
        for v, dt in zip(xs, jdtypes):
            z = np.zeros(out.shape + v.shape, dtype=dt)
            jacs.append(Variable(z) if nested else z)
    elif mode == "forward":
        for v, dt in zip(xs, jdtypes):
            n = v.size
            if n == 0:  # an empty input among non-empty ones: no columns to sweep for
                z = np.zeros(out.shape + v.shape, dtype=dt)
                jacs.append(Variable(z) if nested else z)
                continue
            step = chunk_size or max(n, 1)
            cols = []
            for start in range(0, n, step):
                stop = min(n, start + step)
                if nested:
                    (t,) = _core._forward([out], [v], [_basis(n, start, stop, v.shape, v.dtype)], 1, True)
                else:  # the sweep keeps the identity seed structured (no n x n array)
                    t = _core._forward_basis(out, v, start, stop)
                cols.append(t)
            jacs.append(_assemble(cols, n, out.shape, v.shape, nested, forward=True, dtype=dt))
    else:
        step = chunk_size or max(m, 1)
        rows: list[list[Any]] = [[] for _ in xs]
        for start in range(0, m, step):
            stop = min(m, start + step)
            if nested:
                gs = _core._grad([out], xs, [_basis(m, start, stop, out.shape, out.dtype)], True, True, 1)
            else:  # the sweep keeps the identity seed structured (no m x m array)
                gs = _core._grad_basis(out, xs, start, stop, True)
            for i, (g, v) in enumerate(zip(gs, xs)):
                if g is None:
                    z = np.zeros((stop - start,) + v.shape, dtype=v.dtype)
                    rows[i].append(Variable(z) if nested else z)
                else:
                    rows[i].append(g)
        for r, v, dt in zip(rows, xs, jdtypes):
            jacs.append(_assemble(r, m, out.shape, v.shape, nested, forward=False, dtype=dt))
    per_out = [jacs] if len(outs) == 1 else _split_rows(jacs, outs, xs)
    tree = _unflatten(ospec, [(lambda g: g[0] if single else tuple(g))(_per_arg(specs, row)) for row in per_out])
    return (tree, _aux(aux, nested)) if has_aux else tree


def _split_rows(jacs: Sequence[Any], outs: Sequence[Variable], xs: Sequence[Variable]) -> list[list[Any]]:
    """The Jacobians of a concatenation of outputs cut back into one row block per output, each of
    shape out.shape + x.shape and dtype NumPy's promotion of the two."""
    per_out, start = [], 0
    for o in outs:
        row = []
        for j, v in zip(jacs, xs):
            part = j[start:start + o.size].reshape(o.shape + v.shape)
            dt = np.result_type(o.dtype, v.dtype)
            row.append(part if part.dtype == dt else part.astype(dt))
        per_out.append(row)
        start += o.size
    return per_out


def _assemble(chunks: list[Any], k: int, out_shape: Sequence[int], in_shape: Sequence[int], nested: bool,
              forward: bool, dtype: Any) -> Result:
    """Stack per-direction results into a Jacobian of shape out_shape + in_shape.

    Forward chunks hold J's columns (k = input size, each of out_shape);
    reverse chunks hold J's rows (k = output size, each of in_shape).
    """
    shape = tuple(out_shape) + tuple(in_shape)
    if nested:
        whole = chunks[0] if len(chunks) == 1 else _core.concatenate(chunks, axis=0)
        if forward:
            whole = whole.reshape(k, -1).T
        whole = whole.reshape(shape)
        return whole if whole.dtype == dtype else whole.astype(dtype)
    arrays = [c.numpy() if isinstance(c, Variable) else c for c in chunks]
    whole = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    if forward:
        whole = whole.reshape(k, -1).T
    return np.asarray(whole.reshape(shape), dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)


# ---------------------------------------------------------------------------
# Second order
# ---------------------------------------------------------------------------

@overload
def hessian(f: Function, x: tuple[Operand, ...] | list[Operand]) -> tuple[Result, ...]: ...
@overload
def hessian(f: Function, x: Operand) -> Result: ...
def hessian(f: Function, x: Primals) -> Results:
    """The Hessian of a scalar ``f`` at ``x`` (shape ``x.shape + x.shape``), forward-over-reverse:
    the gradient's graph is recorded, then one batched forward sweep pushes the
    input basis through it. A dict (list, tuple) ``x`` gives the blocks as a dict
    of dicts: ``H[a][b]`` of shape ``x[a].shape + x[b].shape``."""
    _check_f(f, "hessian")
    vg = _value_and_grad(f, 0, "hessian")
    return _jacobian(lambda *a: vg(*a)[1], x, "forward", None, "hessian")


def hvp(f: Function, x: Operand, v: Operand) -> Result:
    """H(x)·v for a scalar ``f`` without forming H: one recorded gradient, then one
    forward sweep through it (forward-over-reverse); a small multiple of a gradient's cost.
    ``x`` may be a pytree, ``v`` of its structure; H·v comes back in it."""
    _check_f(f, "hvp")
    (xtree,), xs, (spec,), nested = _primals((x,), "hvp")
    flat: list[Any] = []
    _flatten_as(spec, v, flat, "v", "hvp")
    out, _ = _call(f, [xtree], "hvp")
    if out.size != 1:
        raise ValueError(f"hvp: the function must return a scalar (single-element) Variable, got shape {out.shape}")
    ts = []
    for i, (t, xv) in enumerate(zip(flat, xs)):
        t = _tangent(t, xv, "hvp", i)
        if tuple(np.shape(t)) != xv.shape:
            raise ValueError(f"hvp: v has shape {tuple(np.shape(t))} but x has shape {xv.shape}")
        ts.append(t)
    hv: list[Any] = [_zeros_like(xv, nested) for xv in xs]
    if out.requires_grad and xs:
        gs = _core._grad([out], xs, [None], True, True, 0)
        live = [(i, g) for i, g in enumerate(gs) if g is not None and g.requires_grad]
        if live:
            for (i, _), h in zip(live, _core._forward([g for _, g in live], xs, ts, 0, nested)):
                if h is not None:
                    hv[i] = _value(h, nested)
    return _unflatten(spec, hv)
