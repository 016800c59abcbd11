"""Derivative operators built from the core's two sweeps.

Every operator here is a thin driver over `_core._forward` (forward sweep:
JVPs of a batch of tangents) and `_core._grad` (reverse sweep: VJPs of a
batch of cotangents). Nothing is differentiated in Python.

Values come back as NumPy arrays, except when an input is a Variable that
requires grad: then the call is nested inside another transform (for
example `jacobian(grad(f), x)`), the sweeps are recorded (`create_graph`)
and Variables connected to the outer graph come back.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence, overload

import numpy as np

from . import _core
from ._core import Variable
from ._grad_mode import enable_grad
from ._typing import Array, Function, Operand, Primals, Result, Results

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


def _call(f: Function, args: Sequence[Any], what: str) -> Variable:
    with enable_grad():
        out = f(*args)
    if not isinstance(out, Variable):
        raise TypeError(f"{what}: the function must return a tapegrad.Variable, got {type(out).__name__}")
    return out


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
# First order
# ---------------------------------------------------------------------------

def jvp(f: Function, primals: Primals, tangents: Primals) -> tuple[Result, Result]:
    """Forward mode: ``(f(*primals), J·tangents)``.

    ``primals`` and ``tangents`` are tuples of arrays of equal shapes (a
    single array is taken as a 1-tuple).
    """
    return _jvp(f, primals, tangents, "jvp")


def _jvp(f: Function, primals: Primals, tangents: Primals, what: str) -> tuple[Result, Result]:
    _check_f(f, what)
    primals, tangents = _as_tuple(primals), _as_tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"{what}: got {len(primals)} primals but {len(tangents)} tangents")
    leaves = [_input(p, what) for p in primals]
    xs = [v for v, _ in leaves]
    nested = any(n for _, n in leaves)
    ts = []
    for i, (t, x) in enumerate(zip(tangents, xs)):
        t = _tangent(t, x, what, i)
        if tuple(np.shape(t)) != x.shape:
            raise ValueError(f"{what}: tangent {i} has shape {tuple(np.shape(t))} but its primal has shape {x.shape}")
        ts.append(t)
    out = _call(f, xs, what)
    if not out.requires_grad:
        return _value(out, nested), _zeros_like(out, nested)
    (out_t,) = _core._forward([out], xs, ts, 0, nested)
    return _value(out, nested), _value(out_t, nested)


def directional_derivative(f: Function, x: Operand, u: Operand) -> Result:
    """J(x)·u = d/dα f(x + αu) at α = 0, by one forward sweep."""
    return _jvp(f, (x,), (u,), "directional_derivative")[1]


def vjp(f: Function, *primals: Operand) -> tuple[Result, Callable[[Operand], tuple[Result, ...]]]:
    """Reverse mode: ``(f(*primals), vjp_fn)``; ``vjp_fn(w)`` gives wᵀ·J, one array per primal."""
    _check_f(f, "vjp")
    leaves = [_input(p, "vjp") for p in primals]
    xs = [v for v, _ in leaves]
    nested = any(n for _, n in leaves)
    out = _call(f, xs, "vjp")

    def vjp_fn(cotangent: Operand) -> tuple[Result, ...]:
        if not out.requires_grad:
            return tuple(_zeros_like(x, nested) for x in xs)
        if not isinstance(cotangent, Variable):
            cotangent = _asarray(cotangent, "vjp", "the cotangent")
            if cotangent.dtype.kind not in "fiub":
                raise TypeError(f"vjp: the cotangent must be real numbers, got dtype {cotangent.dtype}")
        grads = _core._grad([out], xs, [cotangent], True, nested, 0)
        return tuple(_zeros_like(x, nested) if g is None else _value(g, nested) for g, x in zip(grads, xs))

    return _value(out, nested), vjp_fn


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
def value_and_grad(f: Function, argnums: int = 0) -> Callable[..., tuple[float | Variable, Result]]: ...
@overload
def value_and_grad(f: Function, argnums: Sequence[int]) -> Callable[..., tuple[float | Variable, tuple[Result, ...]]]: ...
def value_and_grad(f: Function, argnums: int | Sequence[int] = 0) -> Callable[..., tuple[float | Variable, Any]]:
    """A function returning ``(f(*args), ∇f)`` for a scalar (single-element) ``f``."""
    return _value_and_grad(f, argnums, "value_and_grad")


def _value_and_grad(f: Function, argnums: int | Sequence[int], what: str) -> Callable[..., tuple[Any, Any]]:
    _check_f(f, what)

    def wrapped(*args: Any) -> tuple[Any, Any]:
        nums, many = _argnums(argnums, len(args), what)
        arglist = list(args)
        nested = False
        xs = []
        for a in nums:
            v, n = _input(arglist[a], what)
            arglist[a] = v
            xs.append(v)
            nested = nested or n
        out = _call(f, arglist, what)
        if out.size != 1:
            raise ValueError(f"{what}: the function must return a scalar (single-element) Variable, "
                             f"got shape {out.shape}; use jacobian or vjp for non-scalar functions")
        if out.requires_grad:
            raw = _core._grad([out], xs, [None], nested, nested, 0)
        else:
            raw = [None] * len(xs)
        gs = tuple(_zeros_like(x, nested) if g is None else _value(g, nested) for g, x in zip(raw, xs))
        value = out if nested else out.item()
        return value, (gs if many else gs[0])

    wrapped.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return wrapped


@overload
def grad(f: Function, argnums: int = 0) -> Callable[..., Result]: ...
@overload
def grad(f: Function, argnums: Sequence[int]) -> Callable[..., tuple[Result, ...]]: ...
def grad(f: Function, argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The gradient function of a scalar ``f`` (``argnums`` an int or a tuple of ints)."""
    vg = _value_and_grad(f, argnums, "grad")

    def wrapped(*args: Any) -> Any:
        return vg(*args)[1]

    wrapped.__name__ = f"grad({getattr(f, '__name__', 'f')})"
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
             chunk_size: int | None = None) -> tuple[Result, ...]: ...
@overload
def jacobian(f: Function, x: Operand, *, mode: str = "auto", chunk_size: int | None = None) -> Result: ...
def jacobian(f: Function, x: Primals, *, mode: str = "auto", chunk_size: int | None = None) -> Results:
    """The Jacobian of ``f`` at ``x``, shape ``out.shape + x.shape``.

    ``x`` a tuple of arrays gives a tuple of Jacobians. ``mode``:
    ``"forward"`` (input-basis tangents, batched through one forward sweep),
    ``"reverse"`` (output-basis cotangents, batched through one reverse sweep)
    or ``"auto"`` (see :func:`choose_mode`). ``chunk_size`` bounds how many
    basis directions go through one sweep (memory: chunk × tape).
    """
    return _jacobian(f, x, mode, chunk_size, "jacobian")


def _jacobian(f: Function, x: Primals, mode: str, chunk_size: int | None, what: str) -> Results:
    _check_f(f, what)
    if not isinstance(mode, str) or mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"{what}: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    if chunk_size is not None and (not isinstance(chunk_size, numbers.Integral) or isinstance(chunk_size, bool)
                                   or chunk_size < 1):
        raise ValueError(f"{what}: chunk_size must be a positive int or None, got {chunk_size!r}")
    single = not isinstance(x, (tuple, list))
    leaves = [_input(p, what) for p in _as_tuple(x)]
    xs = [v for v, _ in leaves]
    nested = any(n for _, n in leaves)
    out = _call(f, xs, what)
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
    return jacs[0] if single else tuple(jacs)


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
    input basis through it."""
    _check_f(f, "hessian")
    vg = _value_and_grad(f, 0, "hessian")
    return _jacobian(lambda *a: vg(*a)[1], x, "forward", None, "hessian")


def hvp(f: Function, x: Operand, v: Operand) -> Result:
    """H(x)·v for a scalar ``f`` without forming H: one recorded gradient, then one
    forward sweep through it (forward-over-reverse); a small multiple of a gradient's cost."""
    _check_f(f, "hvp")
    xv, nested = _input(x, "hvp")
    out = _call(f, [xv], "hvp")
    if out.size != 1:
        raise ValueError(f"hvp: the function must return a scalar (single-element) Variable, got shape {out.shape}")
    t = _tangent(v, xv, "hvp", 0)
    if tuple(np.shape(t)) != xv.shape:
        raise ValueError(f"hvp: v has shape {tuple(np.shape(t))} but x has shape {xv.shape}")
    if not out.requires_grad:
        return _zeros_like(xv, nested)
    (g,) = _core._grad([out], [xv], [None], True, True, 0)
    if g is None or not g.requires_grad:
        return _zeros_like(xv, nested)
    (hv,) = _core._forward([g], [xv], [t], 0, nested)
    return _value(hv, nested)
