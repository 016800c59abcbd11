"""Cross-checking the two engines: ``crosscheck(fn, *inputs)``.

``fn(engine, *variables)`` is written once against an engine module's names
(``engine.tanh``, ``engine.Variable``, operators…) and run on both engines,
``tapegrad`` (C++) and ``tapegrad.reference`` (pure NumPy), which are written
independently.  Compared: the output value, the gradient (VJP) with respect
to each input, and the JVP along each input.  Agreement means that two
implementations of every rule used agree, which catches bugs that a check
against finite differences cannot resolve (errors smaller than the finite
differences' own).

    report = tapegrad.testing.crosscheck(lambda eng, x, w: eng.tanh(x @ w).sum(), x, w)
    print(report)                 # a table: max abs / rel error per input
    report.raise_if_failed()      # or crosscheck(..., raise_on_mismatch=True)
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional, Sequence

import numpy as np

__all__ = ["crosscheck", "CrosscheckReport", "CrosscheckError", "DEFAULT_TOLERANCES"]

# (atol, rtol).  The engines compute the same formulas in different orders
# (C++ kernels and OpenBLAS vs NumPy), so float64 results agree to a few
# ulps times the depth of the computation; float32 to a few float32 ulps.
DEFAULT_TOLERANCES = {"float64": (1e-12, 1e-9), "float32": (1e-5, 1e-4)}


class CrosscheckError(AssertionError):
    """The engines disagreed; the message is the report's table, ``.report`` the report."""

    def __init__(self, report: CrosscheckReport) -> None:
        self.report = report
        super().__init__(str(report))


@dataclasses.dataclass
class Comparison:
    """One quantity compared between the engines (max over its elements)."""
    quantity: str      # "value", "grad", "jvp"
    input: str         # input name, or "-" for the value
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...]
    tapegrad_value: float
    reference_value: float
    ok: bool


@dataclasses.dataclass
class CrosscheckReport:
    """What :func:`crosscheck` found: one :class:`Comparison` per quantity and input."""
    comparisons: list[Comparison]
    atol: float
    rtol: float
    seed: int

    @property
    def ok(self) -> bool:
        """True when every comparison is within tolerance."""
        return all(c.ok for c in self.comparisons)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def max_abs(self) -> dict[str, float]:
        """Worst absolute difference per input (over value, gradient and JVP)."""
        return self._worst("max_abs")

    @property
    def max_rel(self) -> dict[str, float]:
        """Worst relative difference per input (over value, gradient and JVP)."""
        return self._worst("max_rel")

    def _worst(self, attr: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in self.comparisons:
            out[c.input] = max(out.get(c.input, 0.0), getattr(c, attr))
        return out

    @property
    def failures(self) -> list[Comparison]:
        """The comparisons out of tolerance."""
        return [c for c in self.comparisons if not c.ok]

    def raise_if_failed(self) -> CrosscheckReport:
        """Raise :class:`CrosscheckError` on a mismatch, else return the report."""
        if not self.ok:
            raise CrosscheckError(self)
        return self

    def __str__(self) -> str:
        head = ["quantity", "input", "max abs", "max rel", "worst index", "tapegrad", "reference", ""]
        rows = [head]
        for c in self.comparisons:
            rows.append([c.quantity, c.input, f"{c.max_abs:.3g}", f"{c.max_rel:.3g}", str(c.worst_index),
                         f"{c.tapegrad_value:.10g}", f"{c.reference_value:.10g}", "ok" if c.ok else "MISMATCH"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        status = "engines agree" if self.ok else f"{len(self.failures)} mismatch(es)"
        lines = [f"crosscheck tapegrad vs tapegrad.reference: {status} "
                 f"(atol={self.atol:g}, rtol={self.rtol:g}, seed={self.seed})"]
        lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)

    __repr__ = __str__


def _compare(quantity, name, a, b, atol, rtol):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return Comparison(quantity, name, np.inf, np.inf, (), np.nan, np.nan, False)
    if a.size == 0:
        return Comparison(quantity, name, 0.0, 0.0, (), 0.0, 0.0, True)
    same = (a == b) | (np.isnan(a) & np.isnan(b))  # equal infinities and NaNs agree
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)
    scale = np.maximum(np.abs(a), np.abs(b))
    # relative error where it means something: not for values that are ~0 in both
    rel = np.where(scale > atol, diff / np.where(scale > 0, scale, 1.0), 0.0)
    allowed = atol + rtol * np.abs(b)
    badness = diff / allowed
    k = int(np.argmax(badness))
    idx = tuple(int(i) for i in np.unravel_index(k, a.shape))
    return Comparison(quantity, name, float(diff.max()), float(rel.max()), idx, float(a.flat[k]),
                      float(b.flat[k]), bool(np.all(diff <= allowed)))


def _input_names(fn, n):
    """fn's parameter names after the engine ("x", "w"), else "x0", "x1", …."""
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return params[1:n + 1] if len(params) >= n + 1 else [f"x{i}" for i in range(n)]


def _engines():
    import tapegrad
    import tapegrad.reference
    return (("tapegrad", tapegrad), ("reference", tapegrad.reference))


def crosscheck(fn: Callable[..., Any], *inputs: Any, atol: Optional[float] = None, rtol: Optional[float] = None,
               seed: int = 0, names: Optional[Sequence[str]] = None, raise_on_mismatch: bool = False) -> CrosscheckReport:
    """Run ``fn(engine, *inputs)`` on tapegrad and tapegrad.reference and compare.

    fn:      ``fn(engine, *variables) -> Variable``, using the engine's names.
    inputs:  arrays (float32/float64; integers become float64), each a
             differentiated argument.
    Compared: the output; the VJP with a random cotangent (the gradient when
    the output is a scalar) with respect to each input; the JVP along a
    random tangent of each input.  Cotangents and tangents come from
    ``seed``, the same for both engines.
    atol, rtol: elementwise |tapegrad − reference| ≤ atol + rtol·|reference|;
    None takes DEFAULT_TOLERANCES for the inputs' dtype.
    Returns a :class:`CrosscheckReport` (falsy on a mismatch); with
    ``raise_on_mismatch`` raises :class:`CrosscheckError` instead.
    """
    if not inputs:
        raise ValueError("crosscheck: give at least one input")
    arrays = []
    for i, a in enumerate(inputs):
        arr = np.array(a.data if hasattr(a, "requires_grad") else a, copy=True)
        if arr.dtype.kind in "iub":
            arr = arr.astype(np.float64)
        if arr.dtype not in (np.float32, np.float64):
            raise TypeError(f"crosscheck: input {i} must be float32 or float64 numbers, got dtype {arr.dtype}")
        arrays.append(arr)
    names = list(names) if names is not None else _input_names(fn, len(arrays))
    if len(names) != len(arrays):
        raise ValueError(f"crosscheck: {len(names)} names for {len(arrays)} inputs")
    kind = "float32" if any(a.dtype == np.float32 for a in arrays) else "float64"
    d_atol, d_rtol = DEFAULT_TOLERANCES[kind]
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol

    results = {}
    rng = np.random.default_rng(seed)
    tangents = [rng.standard_normal(a.shape).astype(a.dtype) for a in arrays]
    cotangent = None
    for label, engine in _engines():
        def f(*xs, engine=engine):
            return fn(engine, *xs)

        out, vjp_fn = engine.vjp(f, *arrays)
        out = np.asarray(out)
        if cotangent is None:  # drawn once, after the output's shape is known
            cotangent = (np.ones(out.shape) if out.size == 1 else rng.standard_normal(out.shape)).astype(out.dtype)
        grads = vjp_fn(cotangent)
        jvps = []
        for i in range(len(arrays)):
            ts = tuple(tangents[i] if j == i else np.zeros_like(a) for j, a in enumerate(arrays))
            jvps.append(np.asarray(engine.jvp(f, tuple(arrays), ts)[1]))
        results[label] = (out, [np.asarray(g) for g in grads], jvps)

    (out_t, grads_t, jvps_t), (out_r, grads_r, jvps_r) = results["tapegrad"], results["reference"]
    comparisons = [_compare("value", "-", out_t, out_r, atol, rtol)]
    grad_label = "grad" if out_t.size == 1 else "vjp"
    for i, name in enumerate(names):
        comparisons.append(_compare(grad_label, name, grads_t[i], grads_r[i], atol, rtol))
        comparisons.append(_compare("jvp", name, jvps_t[i], jvps_r[i], atol, rtol))
    report = CrosscheckReport(comparisons=comparisons, atol=atol, rtol=rtol, seed=seed)
    if raise_on_mismatch:
        report.raise_if_failed()
    return report
