"""Numeric differentiation of plain NumPy functions: finite differences and the complex step.

    derivative(f, x)               f'(x); for an array x, f must act elementwise
    gradient(f, x)                 ∇f(x) of a scalar f, shape x.shape
    jacobian(f, x)                 shape f(x).shape + x.shape
    hessian(f, x)                  of a scalar f, shape x.shape + x.shape
    directional_derivative(f, x, u) = J(x)·u, shape f(x).shape

Every function takes ``method`` ("central", "forward", "backward" or
"complex"), ``richardson=k`` (Richardson extrapolation over k step halvings),
``step`` (absolute steps, overriding the default), ``scale`` (the magnitude
steps are relative to), ``eval_dtype`` and ``full_output``: False returns the
derivative (a float64 array); True a :class:`NumericResult` whose ``error``
estimates truncation plus rounding (with ``richardson=0`` this costs a second
set of calls, at twice the step); "rounding" a NumericResult whose ``error``
is the rounding bound alone, at no extra cost.
docs/NUMERIC.md derives the step sizes and lists the measured accuracy
(:func:`accuracy_report` measures it).

Step sizes.  A difference quotient has a truncation error ~ C·h^p and a
rounding error ~ ε·|f|/h^r (the values of f carry relative errors ~ ε and
their difference is divided by h^r).  Their sum is smallest near
h = ε^(1/(p+r)) in units of the length over which f changes, taken to be |x|
(1 where x = 0): ε^(1/2)·|x| for one-sided first differences, ε^(1/3)·|x| for
central ones, ε^(1/4)·|x| for central second differences.  ε is that of the
precision f is evaluated in.  The complex step has no subtraction (r = 0), so
its step can be tiny (ε·|x|): it is exact to rounding for real-analytic f.

float32.  float32 inputs are evaluated in float64 unless the function
forbids it (it raises TypeError/ValueError on float64 input, or the caller
passes ``eval_dtype=np.float32``); a function that returns float32 computes in
float32 whatever it is given, so its steps are sized for float32's ε.
``NumericResult.eval_dtype`` and ``.note`` say which precision was used.
Returned derivatives are float64 (the differencing is done in float64).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, Optional, Union, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

__all__ = [
    "METHODS", "NumericResult", "derivative", "gradient", "jacobian", "hessian",
    "directional_derivative", "accuracy_report", "format_accuracy_report",
]

METHODS = ("central", "forward", "backward", "complex")
#: f of the numeric derivatives: NumPy array (or scalar) in, array or number out.
NumFn = Callable[[Any], Any]
Float64Array = NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class _Scheme:
    """Error model of one difference quotient.

    Truncation error ~ h**order, and its expansion continues in multiples of
    ``order`` (h², h⁴, … for the symmetric schemes; h, h², … for one-sided
    ones), which is what Richardson extrapolation removes term by term.
    Rounding error ~ eps / h**rounding.
    """
    order: int
    rounding: int


_FIRST = {"central": _Scheme(2, 1), "forward": _Scheme(1, 1), "backward": _Scheme(1, 1),
          "complex": _Scheme(2, 0)}
# Second derivatives: the complex-step Hessian differentiates a complex-step
# first derivative by a real central difference, so one power of h is lost.
_SECOND = {"central": _Scheme(2, 2), "forward": _Scheme(1, 2), "backward": _Scheme(1, 2),
           "complex": _Scheme(2, 1)}


@dataclasses.dataclass(frozen=True)
class NumericResult:
    """A numeric derivative with what is known about its accuracy (``full_output=True``).

    value:      the derivative (float64).
    error:      estimated absolute error per element: truncation (from the
                difference between extrapolation levels, or between steps h
                and 2h when ``richardson=0``) plus a rounding bound.
    method, richardson: as requested.
    step:       the base step actually used per input element (the steps
                taken are step, step/2, …, step/2**richardson).
    eval_dtype: the precision f was evaluated in (its ε sized the steps).
    n_evals:    number of calls of f.
    note:       how float32 was handled, or "".
    """
    value: np.ndarray
    error: np.ndarray
    method: str
    richardson: int
    step: np.ndarray
    eval_dtype: np.dtype
    n_evals: int
    note: str = ""

    def __array__(self, dtype: Optional[DTypeLike] = None, copy: Optional[bool] = None) -> np.ndarray[Any, Any]:
        return np.asarray(self.value, dtype=dtype)


# ---------------------------------------------------------------------------
# Evaluating f
# ---------------------------------------------------------------------------

class _Evaluator:
    """Calls f at points of the evaluation dtype, checks what it returns, counts calls."""

    def __init__(self, f, method, fname):
        self.f = f
        self.complex = method == "complex"
        self.fname = fname
        self.n = 0
        self.shape = None  # the output shape, fixed by the first call

    def __call__(self, x):
        self.n += 1
        out = np.asarray(self.f(x))
        if self.complex:
            if out.dtype.kind != "c":
                raise ValueError(
                    f"{self.fname}: method='complex' needs f to carry complex input through to a complex "
                    f"result, but f returned dtype {out.dtype} for complex input (it discards the imaginary "
                    f"part, e.g. through abs, real or astype); use method='central'")
        elif out.dtype.kind not in "fiub":
            raise TypeError(f"{self.fname}: f must return real numbers, got dtype {out.dtype}")
        if self.shape is None:
            self.shape = out.shape
        elif out.shape != self.shape:
            raise ValueError(f"{self.fname}: f returned shape {out.shape} at a perturbed point "
                             f"but {self.shape} at x")
        return out


@dataclasses.dataclass
class _Setup:
    """What every operator needs after the first call of f."""
    ev: _Evaluator
    x: np.ndarray        # x in the evaluation dtype
    work: np.dtype       # dtype of the points f is called at (complex for the complex step)
    f0: np.ndarray       # f(x) as float64 (the real part for the complex step)
    eps: float           # ε of the precision f computes in
    precision: np.dtype
    note: str

    def point(self, offsets):
        """x plus ``offsets`` (an array of x's shape, or {flat index: offset}), in the work dtype."""
        p = self.x.astype(self.work)
        if isinstance(offsets, dict):
            flat = p.reshape(-1)
            for i, o in offsets.items():
                flat[i] += o
        else:
            p += offsets
        return p


def _prepare(f: NumFn, x: ArrayLike, method: str, eval_dtype: Optional[DTypeLike], fname: str) -> _Setup:
    """Choose the evaluation dtype and evaluate f once at x."""
    if method not in METHODS:
        raise ValueError(f"{fname}: method must be one of {METHODS}, got {method!r}")
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{fname}: x must be an array of real numbers, got dtype {x.dtype}")
    if eval_dtype is not None:
        eval_dtype = np.dtype(eval_dtype)
        if eval_dtype not in (np.float32, np.float64):
            raise TypeError(f"{fname}: eval_dtype must be float32 or float64, got {eval_dtype}")
        candidates = [eval_dtype]
    elif x.dtype in (np.float32, np.float16):
        candidates = [np.dtype(np.float64), np.dtype(np.float32)]  # float64 unless f forbids it
    else:
        candidates = [np.dtype(np.float64)]

    ev = _Evaluator(f, method, fname)
    notes = []
    for i, dt in enumerate(candidates):
        work = np.result_type(dt, np.complex64) if method == "complex" else dt
        try:
            out = ev(x.astype(work))
        except (TypeError, ValueError) as exc:
            if i == len(candidates) - 1:
                raise
            # a float32-only function forbids the upcast by refusing float64
            notes.append(f"f rejected {work} input ({type(exc).__name__}: {exc}), so the {x.dtype} input "
                         f"was evaluated in float32")
            continue
        break
    precision = dt
    out_real = out.real if out.dtype.kind == "c" else out
    if out_real.dtype in (np.float32, np.float16):
        if precision == np.float64:
            notes.append("f returns float32 for float64 input (it computes in float32), so steps are "
                         "sized for float32's epsilon")
        precision = np.dtype(np.float32)
    elif precision == np.float64 and x.dtype.kind == "f" and x.dtype != np.float64:
        notes.append(f"{x.dtype} input evaluated in float64 (pass eval_dtype=np.float32 to evaluate in float32)")
    return _Setup(ev=ev, x=x.astype(dt), work=np.dtype(work), f0=np.asarray(out_real, dtype=np.float64),
                  eps=float(np.finfo(precision).eps), precision=np.dtype(precision), note="; ".join(notes))


def _scale(x, scale, fname):
    """The magnitude steps are relative to: |x|, or 1 where x = 0, unless given."""
    if scale is None:
        s = np.abs(np.asarray(x, dtype=np.float64))
        return np.where(s == 0, 1.0, s)
    s = np.broadcast_to(np.abs(np.asarray(scale, dtype=np.float64)), x.shape).copy()
    if not np.all(s > 0) or not np.all(np.isfinite(s)):
        raise ValueError(f"{fname}: scale must be positive and finite")
    return s


def _base_step(scheme, method, richardson, eps):
    """The relative step ε^(1/(p+r)), p the final order after Richardson extrapolation."""
    if method == "complex" and scheme.rounding == 0:
        return eps  # no cancellation: a tiny step makes the truncation error (~step²) vanish
    p = scheme.order * (richardson + 1)
    return eps ** (1.0 / (p + scheme.rounding))


def _exact_step(x, signed_h):
    """|(x + h) − x| in x's dtype: the step actually taken, so the quotient divides by it."""
    x = np.asarray(x)
    moved = np.asarray(x + signed_h).astype(x.dtype)
    return np.abs(moved.astype(np.float64) - x.astype(np.float64))


def _check_taken(h, fname):
    """A step that vanished when added to x (x huge, step tiny) would divide by zero."""
    if np.any(np.asarray(h) == 0):
        raise ValueError(f"{fname}: a step vanished when added to x (x + h == x); pass a larger step or scale")
    return h


def _user_step(step, shape, fname):
    h = np.broadcast_to(np.asarray(step, dtype=np.float64), shape).copy()
    if not np.all(h > 0) or not np.all(np.isfinite(h)):
        raise ValueError(f"{fname}: step must be positive and finite, got {step!r}")
    return h


def _check_options(richardson, full_output, fname):
    if not isinstance(richardson, (int, np.integer)) or isinstance(richardson, bool) or richardson < 0:
        raise ValueError(f"{fname}: richardson must be a non-negative int, got {richardson!r}")
    if full_output not in (False, True, "rounding"):
        raise ValueError(f"{fname}: full_output must be False, True or 'rounding', got {full_output!r}")
    return int(richardson)


# ---------------------------------------------------------------------------
# Richardson extrapolation
# ---------------------------------------------------------------------------

def _tableau(levels, order):
    """Extrapolate estimates at steps h, h/2, …, h/2**k to step 0.

    Returns (best, next best): the last entries of the last two columns of
    the tableau.  Column m removes the error term h**(order·m):
    T[j] ← T[j] + (T[j] − T[j−1]) / (2**(order·m) − 1).
    """
    col = list(levels)
    prev = col[-1]
    for m in range(1, len(levels)):
        c = 2.0 ** (order * m) - 1.0
        prev = col[-1]
        col = [col[j] + (col[j] - col[j - 1]) / c for j in range(1, len(col))]
    return col[-1], prev


def _extrapolate(estimate, scheme, richardson, want_error):
    """Run ``estimate(multiplier) -> (value, rounding bound)`` at multipliers 1, 1/2, …, 1/2**k
    of the base step and extrapolate.  Returns (value, error estimate or None).

    Error = truncation + rounding.  Truncation: with k ≥ 1 the larger of the
    differences to the two next-best tableau entries (as Numerical Recipes'
    dfridr does); with k = 0 one more estimate at twice the step gives
    |D(h) − D(2h)| / (2**p − 1), the correction Richardson would apply.
    Rounding: each level's bound weighted by |its weight| in the final entry.
    """
    k = richardson
    results = [estimate(0.5 ** j) for j in range(k + 1)]
    values = [v for v, _ in results]
    best, next_best = _tableau(values, scheme.order)
    if not want_error:
        return best, None
    eye = np.eye(k + 1)
    weights = _tableau(list(eye), scheme.order)[0]
    rounding = sum(abs(w) * r for w, (_, r) in zip(weights, results))
    if want_error == "rounding":  # the free part of the estimate only
        return best, rounding
    if k == 0:
        coarse, _ = estimate(2.0)
        trunc = np.abs(values[0] - coarse) / (2.0 ** scheme.order - 1.0)
    else:
        prev_diag, _ = _tableau(values[:-1], scheme.order)
        trunc = np.maximum(np.abs(best - next_best), np.abs(best - prev_diag))
    return best, trunc + rounding


# ---------------------------------------------------------------------------
# First derivatives
# ---------------------------------------------------------------------------

def _difference(F, f0, h, method, eps):
    """One difference quotient of t ↦ F(t) = f(x + t·d) at step h > 0, and its rounding bound.

    h is a scalar, or an array for elementwise derivatives.  The rounding
    bound assumes each value of f is correct to ε relative.
    """
    if method == "central":
        fp, fm = F(h), F(-h)
        return (fp - fm) / (2 * h), eps * (np.abs(fp) + np.abs(fm)) / (2 * h)
    if method == "forward":
        fp = F(h)
        return (fp - f0) / h, eps * (np.abs(fp) + np.abs(f0)) / h
    if method == "backward":
        fm = F(-h)
        return (f0 - fm) / h, eps * (np.abs(fm) + np.abs(f0)) / h
    fi = F(1j * h)  # complex step: Im f(x + ih) / h, nothing is subtracted
    return fi / h, eps * np.abs(fi) / h


def _first(setup, offsets, h, exact, method, richardson, want_error):
    """d/dt f(x + offsets(t)) at t = 0, with Richardson extrapolation.

    ``h`` is the base step (a scalar, or an array of x's shape for
    elementwise derivatives); ``exact(signed_h)`` gives the step actually
    taken in the direction perturbed.
    """
    sign = -1.0 if method == "backward" else 1.0

    def F(t):
        out = setup.ev(setup.point(offsets(t)))
        return np.asarray(out.imag if np.iscomplexobj(out) else out, dtype=np.float64)

    def estimate(mult):
        hm = h * mult if method == "complex" else exact(sign * h * mult)  # the imaginary step is exact
        return _difference(F, setup.f0, _check_taken(hm, setup.ev.fname), method, setup.eps)

    return _extrapolate(estimate, _FIRST[method], richardson, want_error)


def _finish(setup, value, error, method, richardson, step, full_output):
    value = np.asarray(value, dtype=np.float64)
    if not full_output:
        return value
    return NumericResult(value=value, error=np.asarray(error, dtype=np.float64), method=method,
                         richardson=richardson, step=np.asarray(step, dtype=np.float64),
                         eval_dtype=setup.precision, n_evals=setup.ev.n, note=setup.note)


@overload
def derivative(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[False] = False) -> Float64Array: ...
@overload
def derivative(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[True]) -> NumericResult: ...
def derivative(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: bool = False) -> Union[Float64Array, NumericResult]:
    """f'(x) by finite differences (or the complex step).

    ``x`` a scalar: the derivative of f (of any output shape) with respect to
    x.  ``x`` an array: f must act elementwise (output element i depends only
    on input element i); all elements are perturbed at once and the result
    has the output's shape, as numdifftools.Derivative and
    scipy.differentiate.derivative do.  Use :func:`jacobian` otherwise.
    """
    fname = "derivative"
    richardson = _check_options(richardson, full_output, fname)
    setup = _prepare(f, x, method, eval_dtype, fname)
    x, f0 = setup.x, setup.f0
    if x.ndim and f0.shape != x.shape:
        try:
            np.broadcast_shapes(f0.shape, x.shape)
        except ValueError:
            raise ValueError(f"derivative: for an array x, f must act elementwise, but f returned shape "
                             f"{f0.shape} for x of shape {x.shape}; use jacobian") from None
    h = (_user_step(step, x.shape, fname) if step is not None
         else _base_step(_FIRST[method], method, richardson, setup.eps) * _scale(x, scale, fname))
    value, error = _first(setup, lambda t: t, h, lambda sh: _exact_step(x, sh), method, richardson,
                          full_output)
    return _finish(setup, value, error, method, richardson, h, full_output)


@overload
def directional_derivative(f: NumFn, x: ArrayLike, u: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[False] = False) -> Float64Array: ...
@overload
def directional_derivative(f: NumFn, x: ArrayLike, u: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[True]) -> NumericResult: ...
def directional_derivative(f: NumFn, x: ArrayLike, u: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: bool = False) -> Union[Float64Array, NumericResult]:
    """J(x)·u = d/dα f(x + αu) at α = 0, shape f(x).shape (2 calls per level for central).

    The step in α is relative to max|x| / max|u| (1 / max|u| where x = 0), so
    the perturbation αu is small compared with x.  ``step`` sets α's step.
    """
    fname = "directional_derivative"
    richardson = _check_options(richardson, full_output, fname)
    setup = _prepare(f, x, method, eval_dtype, fname)
    x = setup.x
    u = np.asarray(u)
    if u.dtype.kind not in "fiub":
        raise TypeError(f"{fname}: u must be an array of real numbers, got dtype {u.dtype}")
    if u.shape != x.shape:
        raise ValueError(f"{fname}: u has shape {u.shape} but x has shape {x.shape}")
    u = u.astype(np.float64)
    umax = float(np.max(np.abs(u))) if u.size else 0.0
    if umax == 0.0:  # the derivative along the zero direction
        zero = np.zeros(setup.f0.shape)
        return _finish(setup, zero, zero, method, richardson, 0.0, full_output)
    if step is not None:
        h = float(_user_step(step, (), fname))
    else:
        xmax = float(np.max(np.abs(x))) if x.size else 0.0
        h = _base_step(_FIRST[method], method, richardson, setup.eps) * (xmax if xmax > 0 else 1.0) / umax
    # α's step cannot be made exact for every element at once; it is kept as computed
    value, error = _first(setup, lambda t: t * u, h, np.abs, method, richardson, full_output)
    return _finish(setup, value, error, method, richardson, h, full_output)


@overload
def jacobian(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[False] = False) -> Float64Array: ...
@overload
def jacobian(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[True]) -> NumericResult: ...
def jacobian(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: bool = False) -> Union[Float64Array, NumericResult]:
    """The Jacobian of f at x, shape f(x).shape + x.shape, one column per input element.

    Calls of f per Richardson level: n (forward, backward, complex) or 2n
    (central), n = x.size, plus one at x.
    """
    return _jacobian(f, x, "jacobian", method, richardson, step, scale, eval_dtype, full_output)


@overload
def gradient(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[False] = False) -> Float64Array: ...
@overload
def gradient(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[True]) -> NumericResult: ...
def gradient(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: bool = False) -> Union[Float64Array, NumericResult]:
    """∇f(x) of a scalar (single-element) f, shape x.shape."""
    return _jacobian(f, x, "gradient", method, richardson, step, scale, eval_dtype, full_output)


def _jacobian(f, x, fname, method, richardson, step, scale, eval_dtype, full_output):
    richardson = _check_options(richardson, full_output, fname)
    setup = _prepare(f, x, method, eval_dtype, fname)
    x, f0 = setup.x, setup.f0
    if fname == "gradient" and f0.size != 1:
        raise ValueError(f"gradient: f must return a scalar (single-element) value, got shape {f0.shape}; "
                         f"use jacobian")
    h = (_user_step(step, x.shape, fname) if step is not None
         else _base_step(_FIRST[method], method, richardson, setup.eps) * _scale(x, scale, fname))
    xf, hf = x.reshape(-1), h.reshape(-1)
    cols, errs = [], []
    for i in range(xf.size):  # one column per input element: perturb element i only
        v, e = _first(setup, lambda t, i=i: {i: t}, hf[i], lambda sh, i=i: _exact_step(xf[i], sh),
                      method, richardson, full_output)
        cols.append(v)
        errs.append(e)
    out_shape = f0.shape if fname == "jacobian" else ()

    def assemble(parts):
        if not parts:
            return np.zeros(out_shape + x.shape)
        return np.moveaxis(np.stack(parts), 0, -1).reshape(out_shape + x.shape)

    return _finish(setup, assemble(cols), assemble(errs) if full_output else None, method, richardson, h,
                   full_output)


# ---------------------------------------------------------------------------
# Second derivatives
# ---------------------------------------------------------------------------

@overload
def hessian(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[False] = False) -> Float64Array: ...
@overload
def hessian(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: Literal[True]) -> NumericResult: ...
def hessian(f: NumFn, x: ArrayLike, *, method: str = "central", richardson: int = 0, step: Optional[ArrayLike] = None, scale: Optional[ArrayLike] = None, eval_dtype: Optional[DTypeLike] = None,
        full_output: bool = False) -> Union[Float64Array, NumericResult]:
    """The Hessian of a scalar f at x, shape x.shape + x.shape (symmetric by construction).

    central:  (f(x+hᵢ+hⱼ) − f(x+hᵢ−hⱼ) − f(x−hᵢ+hⱼ) + f(x−hᵢ−hⱼ)) / 4hᵢhⱼ off the
              diagonal, (f(x+hᵢ) − 2f(x) + f(x−hᵢ)) / hᵢ² on it: 2n² + 1 calls,
              error O(h²) + O(ε/h²), step ε^(1/4)·|x|.
    forward / backward: one-sided second differences, n(n+3)/2 + 1 calls,
              error O(h) + O(ε/h²), step ε^(1/3)·|x|.
    complex:  Im(f(x + iδeᵢ + hⱼeⱼ) − f(x + iδeᵢ − hⱼeⱼ)) / 2δhⱼ, a complex-step
              first derivative differenced centrally (δ = ε·|xᵢ|): n(n+1) + 1
              calls, error O(h²) + O(ε/h), step ε^(1/3)·|x|.
    """
    fname = "hessian"
    richardson = _check_options(richardson, full_output, fname)
    setup = _prepare(f, x, method, eval_dtype, fname)
    x = setup.x
    if setup.f0.size != 1:
        raise ValueError(f"hessian: f must return a scalar (single-element) value, got shape {setup.f0.shape}")
    scheme = _SECOND[method]
    s = _scale(x, scale, fname)
    h = _user_step(step, x.shape, fname) if step is not None else _base_step(scheme, method, richardson, setup.eps) * s
    xf = x.reshape(-1)
    n = xf.size
    f0 = float(setup.f0.reshape(()))
    delta = setup.eps * s.reshape(-1)  # the complex method's imaginary step
    sign = -1.0 if method == "backward" else 1.0
    eps = setup.eps

    def at(offsets):
        out = np.asarray(setup.ev(setup.point(offsets))).reshape(())
        return complex(out) if np.iscomplexobj(out) else float(out)

    def estimate(mult):
        hm = h.reshape(-1) * mult if method == "complex" else _exact_step(xf, sign * h.reshape(-1) * mult)
        _check_taken(hm, fname)
        H = np.empty((n, n))
        R = np.empty((n, n))  # rounding bounds
        if method == "central":
            fp = [at({i: hm[i]}) for i in range(n)]
            fm = [at({i: -hm[i]}) for i in range(n)]
            for i in range(n):
                H[i, i] = (fp[i] - 2 * f0 + fm[i]) / hm[i] ** 2
                R[i, i] = eps * (abs(fp[i]) + 2 * abs(f0) + abs(fm[i])) / hm[i] ** 2
                for j in range(i + 1, n):
                    pp, pm = at({i: hm[i], j: hm[j]}), at({i: hm[i], j: -hm[j]})
                    mp, mm = at({i: -hm[i], j: hm[j]}), at({i: -hm[i], j: -hm[j]})
                    d = 4 * hm[i] * hm[j]
                    H[i, j] = H[j, i] = (pp - pm - mp + mm) / d
                    R[i, j] = R[j, i] = eps * (abs(pp) + abs(pm) + abs(mp) + abs(mm)) / d
        elif method in ("forward", "backward"):
            hs = sign * hm  # the same formulas with signed steps
            f1 = [at({i: hs[i]}) for i in range(n)]
            for i in range(n):
                f2 = at({i: 2 * hs[i]})
                H[i, i] = (f2 - 2 * f1[i] + f0) / hm[i] ** 2
                R[i, i] = eps * (abs(f2) + 2 * abs(f1[i]) + abs(f0)) / hm[i] ** 2
                for j in range(i + 1, n):
                    fij = at({i: hs[i], j: hs[j]})
                    d = hm[i] * hm[j]
                    H[i, j] = H[j, i] = (fij - f1[i] - f1[j] + f0) / d
                    R[i, j] = R[j, i] = eps * (abs(fij) + abs(f1[i]) + abs(f1[j]) + abs(f0)) / d
        else:
            for i in range(n):
                for j in range(i, n):
                    # x + iδeᵢ ± hⱼeⱼ (one element, complex, when i == j)
                    plus, minus = {i: 1j * delta[i]}, {i: 1j * delta[i]}
                    plus[j] = plus.get(j, 0) + hm[j]
                    minus[j] = minus.get(j, 0) - hm[j]
                    a, b = at(plus).imag, at(minus).imag
                    d = 2 * delta[i] * hm[j]
                    H[i, j] = H[j, i] = (a - b) / d
                    R[i, j] = R[j, i] = eps * (abs(a) + abs(b)) / d
        return H, R

    value, error = _extrapolate(estimate, scheme, richardson, full_output)
    shape2 = x.shape + x.shape
    return _finish(setup, value.reshape(shape2), None if error is None else error.reshape(shape2), method,
                   richardson, h, full_output)


# ---------------------------------------------------------------------------
# Measured accuracy (docs/NUMERIC.md quotes this table)
# ---------------------------------------------------------------------------

# Smooth scalar functions with known derivatives, at points of very different size.
_SURVEY: list[tuple[str, NumFn, NumFn, tuple[float, ...]]] = [
    ("exp(x)", np.exp, np.exp, (-3.0, 0.5, 2.0)),
    ("sin(x)", np.sin, np.cos, (0.3, 1.0, 2.5)),
    ("log(x)", np.log, lambda x: 1 / x, (1e-6, 1e-3, 1.0, 1e3, 1e6)),
    ("x**3", lambda x: x ** 3, lambda x: 3 * x ** 2, (1e-6, 0.7, 1e6)),
    ("sqrt(x)", np.sqrt, lambda x: 0.5 / np.sqrt(x), (1e-6, 2.0, 1e6)),
    ("1/(1+x**2)", lambda x: 1 / (1 + x * x), lambda x: -2 * x / (1 + x * x) ** 2, (-1.5, 0.2, 3.0)),
    ("tanh(x)", np.tanh, lambda x: 1 - np.tanh(x) ** 2, (-0.7, 0.4, 1.3)),
    ("exp(x/1e6)", lambda x: np.exp(x / 1e6), lambda x: np.exp(x / 1e6) / 1e6, (3e5, 1e6)),
]


def _hessian_survey_function(v):
    x, y, z = v[0], v[1], v[2]
    return np.exp(x) * np.sin(y) + x * x * y * z + np.log(z)


def _hessian_survey_exact(v):
    x, y, z = v
    ex, sy, cy = np.exp(x), np.sin(y), np.cos(y)
    return np.array([
        [ex * sy + 2 * y * z, ex * cy + 2 * x * z, 2 * x * y],
        [ex * cy + 2 * x * z, -ex * sy, x * x],
        [2 * x * y, x * x, -1 / z ** 2],
    ])


class _Counter:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x):
        self.n += 1
        return self.f(x)


def accuracy_report(richardson_levels: tuple[int, ...] = (0, 1, 2), eval_dtype: Optional[DTypeLike] = None) -> list[dict[str, Any]]:
    """Measure the worst relative error of each method on smooth functions.

    First derivatives: the functions and points of ``_SURVEY`` (|x| from 1e-6
    to 1e6), error |D − f'| / |f'|.  Hessians: a 3-variable function at three
    points, error max|H − H_exact| / max|H_exact|.  ``eval_dtype=np.float32``
    measures evaluation in float32.  Returns a list of dicts (kind, method,
    richardson, max_rel_error, median_rel_error, evals: calls of f);
    ``format_accuracy_report`` makes a Markdown table.  docs/NUMERIC.md quotes
    both tables::

        python -c "import tapegrad.numeric as n; print(n.format_accuracy_report())"
        python -c "import numpy as np, tapegrad.numeric as n; \
                   print(n.format_accuracy_report(n.accuracy_report(eval_dtype=np.float32)))"
    """
    rows = []
    for k in richardson_levels:
        for method in METHODS:
            errs, evals = [], []
            for _, fn, dfn, points in _SURVEY:
                for p in points:
                    counted = _Counter(fn)
                    value = derivative(counted, np.float64(p), method=method, richardson=k, eval_dtype=eval_dtype)
                    exact = dfn(p)
                    errs.append(abs(float(value) - exact) / abs(exact))
                    evals.append(counted.n)
            rows.append(dict(kind="derivative", method=method, richardson=k, max_rel_error=max(errs),
                             median_rel_error=float(np.median(errs)), evals=max(evals)))
    for k in richardson_levels:
        for method in METHODS:
            errs, evals = [], []
            for point in ([0.3, 1.1, 0.8], [-1.2, 0.4, 2.5], [2.0, -0.7, 0.05]):
                pa = np.array(point)
                counted = _Counter(_hessian_survey_function)
                value = hessian(counted, pa, method=method, richardson=k, eval_dtype=eval_dtype)
                exact = _hessian_survey_exact(pa)
                errs.append(float(np.max(np.abs(value - exact)) / np.max(np.abs(exact))))
                evals.append(counted.n)
            rows.append(dict(kind="hessian (n=3)", method=method, richardson=k, max_rel_error=max(errs),
                             median_rel_error=float(np.median(errs)), evals=max(evals)))
    return rows


def format_accuracy_report(rows: Optional[list[dict[str, Any]]] = None) -> str:
    """The accuracy survey as a Markdown table (runs :func:`accuracy_report` if no rows are given)."""
    rows = accuracy_report() if rows is None else rows
    lines = ["| quantity | method | richardson | max rel. error | median rel. error | calls of f |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['method']} | {r['richardson']} | {r['max_rel_error']:.1e} "
                     f"| {r['median_rel_error']:.1e} | {r['evals']} |")
    return "\n".join(lines)
