"""``gradcheck``: compare tapegrad's derivatives with numeric ones.

    tapegrad.gradcheck(f, inputs)            # True, or raises GradcheckError

``f(*variables)`` is a tapegrad function returning a Variable; ``inputs`` is
one array or a tuple of arrays.  For every input the AD Jacobian (one per
mode in ``modes``: ``jacobian(mode="reverse")`` and ``mode="forward"``) is
compared elementwise with central differences (:mod:`tapegrad.numeric`).
``order=2`` also compares second derivatives (reverse-over-reverse and
forward-over-reverse) with numeric Hessians.  Large inputs take the fast
path: random-direction checks (J·u against a numeric directional derivative,
vᵀJ·u against vᵀ(J·u)), as HIPS autograd's ``check_grads`` does.

Tolerances (docs/NUMERIC.md explains them).  An AD value a passes against
the numeric value d when

    |a − d| ≤ atol + rtol·|d| + 2·err(d)

where err(d) is the numeric derivative's own error estimate (truncation,
from differencing at steps h and 2h, plus a rounding bound computed from the
values of f that were differenced).  It widens the tolerance exactly where
finite differences cannot resolve the derivative (a large output, a tiny
input, a kink within 2h), so atol and rtol can stay tight: float64 atol=1e-7,
rtol=1e-6 (second order: atol=1e-6, rtol=1e-5); float32 AD checked against
float64 numeric derivatives: atol=1e-4, rtol=1e-3 (PyTorch uses atol=1e-5,
rtol=1e-3 for everything, without the error term).  Each numeric element
uses the better, by its error estimate, of steps relative to |x| and to
max(|x|, 1).

float32.  PyTorch's gradcheck differences float32 functions in float32 with
a step of 1e-6, which gives noise, not derivatives.  Here the numeric
derivatives of a float32 function are computed in float64 (inputs upcast)
whenever the function accepts float64 input and returns float64: then the
float32 AD results are checked at float32 tolerances and the float64 AD
results (the same rules run in float64) at float64 tolerances.  When the
function forbids float64 (raises, or returns float32), the numeric
derivatives are float32 central differences with steps sized for float32's
ε, the tolerances widen (atol=1e-3, rtol=1e-2, plus the float32 error
estimate) and gradcheck says so with a GradcheckWarning.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, Iterable, Sequence, Union

import numpy as np

from . import _core
from . import functional as F
from . import numeric
from ._core import Variable
from ._grad_mode import no_grad
from ._typing import Operand

__all__ = ["gradcheck", "GradcheckError", "GradcheckWarning", "DEFAULT_TOLERANCES"]

# (atol, rtol) by what is compared; see the module docstring and docs/NUMERIC.md.
DEFAULT_TOLERANCES = {
    "float64": (1e-7, 1e-6),          # float64 AD vs float64 central differences
    "float64 order 2": (1e-6, 1e-5),  # second differences are ~ε^(1/2) accurate, not ε^(2/3)
    "float32": (1e-4, 1e-3),          # float32 AD (rounding ~1e-7 relative per op) vs float64 numeric
    "float32 numeric": (1e-3, 1e-2),  # f forbids float64: float32 central differences
}
ERROR_SAFETY = 2.0  # how many times the numeric derivative's error estimate is tolerated
# fast="auto" switches to random directions above these total input sizes:
# full Jacobians cost 2n calls of f (twice, for the error estimate), full Hessians 2n².
FAST_THRESHOLD = 256
FAST_THRESHOLD_ORDER2 = 32


_WIDENED = " (default atol={:g}, rtol={:g})".format(*DEFAULT_TOLERANCES["float32 numeric"])


class GradcheckWarning(UserWarning):
    """The check was weaker than asked: f cannot be differenced in float64."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class GradcheckError(AssertionError):
    """A derivative disagreed with its numeric value.

    ``rows`` holds one dict per failed comparison (check, input, output, index,
    ad, numeric, abs_err, rel_err, allowed); ``notes`` how float32 was handled
    or which shortcuts were taken.  The message is a table of the rows.
    """

    def __init__(self, rows: Iterable[dict[str, Any]], notes: Iterable[str] = (), header: str = "gradcheck failed") -> None:
        self.rows = list(rows)
        self.notes = list(notes)
        super().__init__(_format(header, self.rows, self.notes))


def _format(header, rows, notes):
    cols = [("check", "check"), ("input", "input"), ("output", "output"), ("index", "worst element"),
            ("ad", "AD value"), ("numeric", "numeric"), ("abs_err", "abs err"), ("rel_err", "rel err"),
            ("allowed", "allowed")]

    def cell(row, key):
        v = row[key]
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    table = [[title for _, title in cols]] + [[cell(r, key) for key, _ in cols] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    lines = [f"{header}: {len(rows)} comparison{'s' if len(rows) != 1 else ''} out of tolerance "
             f"(|AD - numeric| > allowed = atol + rtol*|numeric| + {ERROR_SAFETY:g}*numeric error estimate)"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in table]
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Inputs and the function
# ---------------------------------------------------------------------------

def _as_arrays(inputs):
    items = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]
    if not items:
        raise ValueError("gradcheck: inputs is empty; pass an array or a tuple of arrays")
    arrays = []
    for i, a in enumerate(items):
        arr = np.array(a.numpy() if isinstance(a, Variable) else a, copy=True)
        if arr.dtype.kind in "iub":
            arr = arr.astype(np.float64)  # as Variable does with integer data
        if arr.dtype not in (np.float32, np.float64):
            raise TypeError(f"gradcheck: input {i} must be float32 or float64 numbers, got dtype {arr.dtype}")
        arrays.append(arr)
    return arrays


def _input_names(f, n):
    """Parameter names of f for the table ("x", "w"), else "input 0", "input 1"."""
    try:
        params = [p for p in inspect.signature(f).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) >= n:
        return [p.name for p in params[:n]]
    return [f"input {i}" for i in range(n)]


def _evaluate(f, arrays):
    """f on constants (no graph) as a NumPy array: what the numeric side differences."""
    with no_grad():
        out = f(*[Variable(a) for a in arrays])
    if not isinstance(out, Variable):
        raise TypeError(f"gradcheck: f must return a tapegrad.Variable, got {type(out).__name__}")
    return out.numpy().copy()


def _numeric_dtype(f, arrays, out, notes):
    """float64 for the numeric side when f accepts and returns it; else float32 (with a note)."""
    if all(a.dtype == np.float64 for a in arrays):
        if out.dtype == np.float64:
            return np.dtype(np.float64)
        notes.append("f returns float32 for float64 inputs (it computes in float32); numeric derivatives "
                     "are float32 central differences and the tolerances are widened" + _WIDENED)
        return np.dtype(np.float32)
    try:
        out64 = _evaluate(f, [a.astype(np.float64) for a in arrays])
    except (TypeError, ValueError) as exc:
        notes.append(f"f rejects float64 inputs ({type(exc).__name__}: {exc}); numeric derivatives are "
                     f"float32 central differences and the tolerances are widened" + _WIDENED)
        return np.dtype(np.float32)
    if out64.dtype == np.float32:
        notes.append("f returns float32 even for float64 inputs (it computes in float32); numeric derivatives "
                     "are float32 central differences and the tolerances are widened" + _WIDENED)
        return np.dtype(np.float32)
    notes.append("float32 inputs: numeric derivatives computed in float64; AD checked in float32 (float32 "
                 "tolerances) and in float64 (float64 tolerances)")
    return np.dtype(np.float64)


def _tolerances(kind, atol, rtol):
    d_atol, d_rtol = DEFAULT_TOLERANCES[kind]
    return (d_atol if atol is None else atol), (d_rtol if rtol is None else rtol)


def _fmt_index(idx):
    return "(" + ", ".join(str(int(i)) for i in idx) + ("," if len(idx) == 1 else "") + ")"


def _worst(ad, num, bound, atol, rtol):
    """The worst element of one comparison: (ok, flat index, abs err, allowed)."""
    ad = np.asarray(ad, dtype=np.float64)
    num = np.asarray(num, dtype=np.float64)
    err = np.abs(ad - num)
    allowed = atol + rtol * np.abs(num) + ERROR_SAFETY * np.asarray(bound, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        badness = np.where(np.isnan(err), np.inf, err / np.where(allowed > 0, allowed, np.inf))
    badness = np.where(np.isnan(ad) & np.isnan(num), 0.0, badness)
    if badness.size == 0:
        return True, 0, 0.0, 0.0
    i = int(np.argmax(badness))
    return bool(badness.flat[i] <= 1.0), i, float(err.flat[i]), float(allowed.flat[i])


def _row(check, inp, out, idx, ad, num, err, allowed):
    rel = err / abs(num) if num != 0 else (0.0 if err == 0 else float("inf"))
    return dict(check=check, input=inp, output=out, index=idx, ad=float(ad), numeric=float(num),
                abs_err=float(err), rel_err=float(rel), allowed=float(allowed))


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------

def gradcheck(f: Callable[..., Variable], inputs: Union[Operand, Sequence[Operand]], *, atol: float | None = None,
              rtol: float | None = None, modes: Sequence[str] = ("reverse", "forward"), order: int = 1,
              fast: bool | str = "auto", n_directions: int = 3, seed: int = 0, raise_exception: bool = True) -> bool:
    """Check tapegrad's derivatives of ``f`` at ``inputs`` against numeric ones.

    f:        ``f(*variables) -> Variable`` (any output shape).
    inputs:   an array, or a tuple/list of arrays (float32/float64; integers
              become float64), one per positional argument of f.
    atol, rtol: tolerances; None takes :data:`DEFAULT_TOLERANCES` for what is
              compared (see the module docstring).
    modes:    which AD modes to check: "reverse" and/or "forward".
    order:    1 (Jacobians) or 2 (also second derivatives: of f if it is a
              scalar, else of Σ w·f for fixed random weights w).
    fast:     True: random-direction checks only (cost independent of the
              input size); False: full Jacobians and Hessians; "auto": fast
              above FAST_THRESHOLD (first order) and FAST_THRESHOLD_ORDER2
              (second order) input elements in total.
    n_directions, seed: random directions of the fast path.
    Returns True; on failure raises :class:`GradcheckError` (or returns False
    when ``raise_exception=False``).
    """
    if not callable(f):
        raise TypeError(f"gradcheck: f must be a function, got {type(f).__name__}")
    try:
        modes = (modes,) if isinstance(modes, str) else tuple(modes)
    except TypeError:
        raise TypeError(f"gradcheck: modes must be a tuple of 'reverse' and 'forward', got {modes!r}") from None
    if not modes or any(m not in ("reverse", "forward") for m in modes):
        raise ValueError(f"gradcheck: modes must be a non-empty tuple of 'reverse' and 'forward', got {modes!r}")
    if order not in (1, 2):
        raise ValueError(f"gradcheck: order must be 1 or 2, got {order!r}")
    if fast not in (True, False, "auto"):
        raise ValueError(f"gradcheck: fast must be True, False or 'auto', got {fast!r}")
    if not isinstance(n_directions, (int, np.integer)) or n_directions < 1:
        raise ValueError(f"gradcheck: n_directions must be a positive int, got {n_directions!r}")
    arrays = _as_arrays(inputs)
    names = _input_names(f, len(arrays))
    notes: list[str] = []
    out = _evaluate(f, arrays)
    num_dtype = _numeric_dtype(f, arrays, out, notes)
    if num_dtype == np.float32:
        warnings.warn(GradcheckWarning("gradcheck: " + notes[-1]), stacklevel=2)
    total = sum(a.size for a in arrays)
    fast1 = total > FAST_THRESHOLD if fast == "auto" else fast
    fast2 = total > FAST_THRESHOLD_ORDER2 if fast == "auto" else fast
    if fast1:
        notes.append(f"first order: fast path, {n_directions} random direction(s) per input")
    if order == 2 and fast2:
        notes.append(f"second order: fast path, {n_directions} random pair(s) of directions")
    rng = np.random.default_rng(seed)

    # What to run AD at: the inputs as given, and float64 copies when the
    # numeric side is float64 but some input is float32 (the same rules in float64).
    ad_runs = [("", arrays, "float32" if any(a.dtype == np.float32 for a in arrays) else "float64")]
    if num_dtype == np.float64 and ad_runs[0][2] == "float32":
        ad_runs.append((" (float64)", [a.astype(np.float64) for a in arrays], "float64"))
    if num_dtype == np.float32:
        ad_runs = [("", arrays, "float32 numeric")]
    num_arrays = [a.astype(num_dtype) for a in arrays]

    failures = []
    checker = _fast_first if fast1 else _full_first
    failures += checker(f, arrays, num_arrays, num_dtype, names, out, modes, ad_runs, atol, rtol, rng,
                        n_directions)
    if order == 2:
        failures += _second(f, num_arrays, num_dtype, names, out, modes, atol, rtol, rng, fast2, n_directions,
                            notes)
    if failures:
        if raise_exception:
            raise GradcheckError(failures, notes)
        return False
    return True


def _numeric_fn(f, arrays, i):
    """f as a NumPy function of input i alone (the others held at their values)."""

    def fi(a):
        args = list(arrays)
        args[i] = a
        return _evaluate(f, args)

    return fi


def _best_of_two_steps(compute, a):
    """A numeric derivative at a and its estimated error, entry by entry.

    Steps relative to |x| resolve functions that change on the scale of x
    (log at 1e-6) but lose digits to rounding where x is tiny and f is not
    (exp at 1e-9); steps relative to max(|x|, 1) do the opposite.  Where some
    0 < |x| < 1, both are computed (``compute(scale)`` returns a
    numeric.NumericResult) and each entry keeps the one with the smaller error
    estimate (truncation + rounding).
    """
    rel = compute(None)
    small = (np.abs(a) > 0) & (np.abs(a) < 1)
    if not small.any():
        return rel.value, rel.error
    floor = compute(np.maximum(np.abs(a), 1.0))
    rel_err = np.where(np.isfinite(rel.error), rel.error, np.inf)
    use_floor = np.isfinite(floor.error) & (floor.error < rel_err)
    return np.where(use_floor, floor.value, rel.value), np.where(use_floor, floor.error, rel.error)


def _numeric_jacobian(fi, a, num_dtype):
    return _best_of_two_steps(
        lambda scale: numeric.jacobian(fi, a, scale=scale, eval_dtype=num_dtype, full_output=True), a)


def _full_first(f, arrays, num_arrays, num_dtype, names, out, modes, ad_runs, atol, rtol, rng, n_dir):
    """Full Jacobians: every element of every input against central differences."""
    numeric_jacs = [_numeric_jacobian(_numeric_fn(f, num_arrays, i), a, num_dtype)
                    for i, a in enumerate(num_arrays)]
    failures = []
    for label, run_arrays, kind in ad_runs:
        t_atol, t_rtol = _tolerances(kind, atol, rtol)
        for mode in modes:
            jacs = F.jacobian(f, tuple(run_arrays), mode=mode)
            for i, (ad, (num, bound)) in enumerate(zip(jacs, numeric_jacs)):
                ok, k, err, allowed = _worst(ad, num, bound, t_atol, t_rtol)
                if ok:
                    continue
                idx = np.unravel_index(k, out.shape + arrays[i].shape)  # J's index: output, then input
                out_idx, in_idx = idx[:out.ndim], idx[out.ndim:]
                failures.append(_row(f"{mode}{label}", names[i], f"out{_fmt_index(out_idx)}",
                                     f"{names[i]}{_fmt_index(in_idx)}", np.asarray(ad).flat[k], num.flat[k], err,
                                     allowed))
    return failures


def _fast_first(f, arrays, num_arrays, num_dtype, names, out, modes, ad_runs, atol, rtol, rng, n_dir):
    """Random directions: per input i and direction u (nonzero on input i only),
    forward: J·u vs the numeric directional derivative, elementwise over the output;
    reverse: vᵀJ·u (from the VJP) vs vᵀ(J·u)_numeric for a random cotangent v."""
    failures = []
    for d in range(n_dir):
        for i, a in enumerate(num_arrays):
            u = rng.standard_normal(a.shape)
            v = rng.standard_normal(out.shape)
            r = numeric.directional_derivative(_numeric_fn(f, num_arrays, i), a, u, eval_dtype=num_dtype,
                                               full_output=True)
            num, bound = r.value, r.error
            for label, run_arrays, kind in ad_runs:
                t_atol, t_rtol = _tolerances(kind, atol, rtol)
                dt = run_arrays[i].dtype
                if "forward" in modes:
                    tangents = tuple(u.astype(dt) if j == i else np.zeros_like(b)
                                     for j, b in enumerate(run_arrays))
                    _, ju = F.jvp(f, tuple(run_arrays), tangents)
                    ok, k, err, allowed = _worst(ju, num, bound, t_atol, t_rtol)
                    if not ok:
                        oi = np.unravel_index(k, out.shape)
                        failures.append(_row(f"forward{label}", f"{names[i]} · random u{d}",
                                             f"out{_fmt_index(oi)}", "J·u", np.asarray(ju).flat[k], num.flat[k],
                                             err, allowed))
                if "reverse" in modes:
                    _, vjp_fn = F.vjp(f, *run_arrays)
                    g = vjp_fn(v.astype(out.dtype))[i]
                    ad = float(np.sum(np.asarray(g, dtype=np.float64) * u))
                    ref = float(np.sum(v * num))
                    # each element's allowance, weighted by |v|: the inner product's allowance
                    elem = t_atol + t_rtol * np.abs(num) + ERROR_SAFETY * bound
                    allowed = float(np.sum(np.abs(v) * elem))
                    err = abs(ad - ref)
                    if not err <= allowed:
                        failures.append(_row(f"reverse{label}", f"{names[i]} · random u{d}", f"random v{d}",
                                             "vᵀJ·u", ad, ref, err, allowed))
    return failures


# ---------------------------------------------------------------------------
# Second order
# ---------------------------------------------------------------------------

def _scalarize(f, arrays, out, rng, notes):
    """A scalar function of one flat vector z holding all inputs, in tapegrad ops.

    Non-scalar f is contracted with fixed random weights w (Σ w·f), whose
    second derivatives mix every output's.
    """
    shapes = [a.shape for a in arrays]
    sizes = [a.size for a in arrays]
    offsets = np.cumsum([0] + sizes)
    w = None
    if out.size != 1:
        w = rng.standard_normal(out.shape)
        notes.append("order 2: f is not scalar, so second derivatives of sum(w * f) with random w are checked")

    def g(z):
        parts = [z[offsets[k]:offsets[k + 1]].reshape(shapes[k]) for k in range(len(shapes))]
        y = f(*parts)
        if w is not None:
            return _core.sum(y * Variable(w.astype(y.dtype)))
        return y.reshape(())

    z0 = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0)
    return g, z0, offsets


def _locate(k, offsets, shapes, names):
    """Flat position k of z as 'name(index)'."""
    b = int(np.searchsorted(offsets, k, side="right") - 1)
    return names[b], f"{names[b]}{_fmt_index(np.unravel_index(k - offsets[b], shapes[b]))}"


def _second(f, arrays, num_dtype, names, out, modes, atol, rtol, rng, fast, n_dir, notes):
    kind = "float64 order 2" if num_dtype == np.float64 else "float32 numeric"
    t_atol, t_rtol = _tolerances(kind, atol, rtol)
    g, z0, offsets = _scalarize(f, arrays, out, rng, notes)

    def g_np(z):
        with no_grad():
            return g(Variable(z)).numpy().copy()

    shapes = [a.shape for a in arrays]
    failures = []
    mode_name = {"forward": "forward-over-reverse", "reverse": "reverse-over-reverse"}
    what = "d²f" if out.size == 1 else "d²(w·f)"
    if not fast:
        num, bound = _best_of_two_steps(
            lambda scale: numeric.hessian(g_np, z0, scale=scale, eval_dtype=num_dtype, full_output=True), z0)
        for mode in modes:
            H = F.jacobian(F.grad(g), z0, mode=mode)
            ok, k, err, allowed = _worst(H, num, bound, t_atol, t_rtol)
            if ok:
                continue
            r, c = np.unravel_index(k, H.shape)
            (in_r, idx_r), (in_c, idx_c) = _locate(r, offsets, shapes, names), _locate(c, offsets, shapes, names)
            failures.append(_row(f"order 2 {mode_name[mode]}", f"{in_r}, {in_c}", what, f"{idx_r}, {idx_c}",
                                 np.asarray(H).flat[k], num.flat[k], err, allowed))
        return failures

    # fast: the 2×2 Hessian of φ(a, b) = g(z + a·u₁ + b·u₂) at 0, against [u₁ u₂]ᵀ H [u₁ u₂]
    for d in range(n_dir):
        U = rng.standard_normal((2, z0.size))
        zmax = float(np.max(np.abs(z0))) if z0.size else 0.0
        s = (zmax if zmax > 0 else 1.0) / np.max(np.abs(U), axis=1)

        def phi(ab, U=U):
            return g_np(z0 + ab[0] * U[0] + ab[1] * U[1])

        r = numeric.hessian(phi, np.zeros(2), scale=s, eval_dtype=num_dtype, full_output=True)
        num, bound = r.value, r.error
        for mode in modes:
            if mode == "forward":
                HU = [F.hvp(g, z0, U[j]) for j in range(2)]
            else:  # reverse-over-reverse: the gradient of ⟨∇g, u⟩
                HU = [F.grad(lambda z, u=U[j]: _core.sum(F.grad(g)(z) * Variable(u)))(z0) for j in range(2)]
            ad = np.array([[np.dot(U[a], HU[b]) for b in range(2)] for a in range(2)])
            ok, k, err, allowed = _worst(ad, num, bound, t_atol, t_rtol)
            if not ok:
                failures.append(_row(f"order 2 {mode_name[mode]}", f"all · random u{d}", what,
                                     "uᵢᵀHuⱼ" + _fmt_index(np.unravel_index(k, (2, 2))), ad.flat[k], num.flat[k],
                                     err, allowed))
    return failures
