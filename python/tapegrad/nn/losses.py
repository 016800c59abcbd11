"""Loss functions (``mse_loss``, ``l1_loss``, ``huber_loss``, ``cross_entropy``
(with label smoothing), ``nll_loss``, ``binary_cross_entropy``,
``binary_cross_entropy_with_logits``) and their layer forms.

``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"`` (per-sample
losses). Inputs may be Variables of either engine; targets are arrays (a target
Variable that requires grad raises TypeError: a loss reads it as a constant).
"""
from typing import Any, Callable, Union

import numpy as np

from .. import _core
from .layers import Layer, _as_variable, engine_of

__all__ = [
    "mse_loss", "l1_loss", "cross_entropy", "binary_cross_entropy_with_logits",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "BCEWithLogitsLoss", "get_loss",
    "nll_loss", "binary_cross_entropy", "huber_loss", "NLLLoss", "BCELoss", "HuberLoss",
]

_REDUCTIONS = ("mean", "sum", "none")


def _is_core(x):
    return isinstance(x, _core.Variable)


def _reduce(loss, reduction, what):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{what}: reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")


def _target(target, dtype, what):
    if hasattr(target, "data") and not isinstance(target, np.ndarray):  # a Variable: a constant here
        if getattr(target, "requires_grad", False) and engine_of(target).is_grad_enabled():
            # its values are read as a constant: the gradient with respect to it would be lost
            raise TypeError(f"{what}: the target requires grad, and a loss takes its target as a constant "
                            "(no gradient reaches it); pass target.detach(), or compute the loss from "
                            "the ops (e.g. ((input - target) ** 2).mean()) to differentiate it")
        target = np.asarray(target.data)
    return np.asarray(target)


def _check_reduction(reduction, what):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{what}: reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")


def _check_same_shape(what: str, shape: tuple, target_shape: tuple, name: str = "input") -> None:
    """Elementwise losses never broadcast: (N, 1) against (N,) would silently build an (N, N) loss."""
    if shape == target_shape:
        return
    hint = ""
    if shape[:-1] == target_shape and shape[-1:] == (1,):
        hint = f" (reshape one to match: target.reshape({', '.join(map(str, shape))}) or {name}.reshape(-1))"
    elif target_shape[:-1] == shape and target_shape[-1:] == (1,):
        hint = f" (reshape one to match: target.reshape(-1) or {name}.reshape({', '.join(map(str, target_shape))}))"
    raise ValueError(f"{what}: {name} shape {shape} and target shape {target_shape} differ{hint}")


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error, elementwise; ``input`` and ``target`` must have the same shape
    (no broadcasting: ``(N, 1)`` against ``(N,)`` raises, naming the reshape)."""
    if (reduction == "mean" or reduction == "sum") and type(input) is _core.Variable:
        # the C++ engine's fused primitive (the reference composes the loss)
        t = _target(target, None, "mse_loss")
        if t.shape != input.shape:
            _check_same_shape("mse_loss", input.shape, tuple(t.shape))
        return _core._mse_loss(input, t, reduction == "mean")
    _check_reduction(reduction, "mse_loss")
    x = _as_variable(input)
    t = _target(target, x.dtype, "mse_loss")
    _check_same_shape("mse_loss", x.shape, tuple(t.shape))
    if reduction != "none" and _is_core(x):  # the C++ engine's fused primitive (the reference composes it)
        return _core._mse_loss(x, t, reduction == "mean")
    d = x - t.astype(x.dtype, copy=False)
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    """Mean absolute error, elementwise; same shapes required."""
    _check_reduction(reduction, "l1_loss")
    x = _as_variable(input)
    t = _target(target, x.dtype, "l1_loss")
    _check_same_shape("l1_loss", x.shape, tuple(t.shape))
    return _reduce(engine_of(x).abs(x - t.astype(x.dtype, copy=False)), reduction, "l1_loss")


def cross_entropy(logits: Any, target: Any, reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    """Softmax cross-entropy from raw logits ``(N, C)``, fused and stable.

    ``target``: integer class labels ``(N,)`` in ``[0, C)``, or class
    probabilities ``(N, C)`` (floats, rows summing to 1). Computed as
    ``-log_softmax(logits)[i, y_i]`` (or ``-(p * log_softmax).sum(1)``), so
    logits of any size are fine. ``reduction="none"`` returns ``(N,)``.
    ``label_smoothing`` ``eps`` in [0, 1] mixes the target with the uniform
    distribution: ``(1 - eps) * target + eps / C`` (PyTorch's definition).
    """
    if (type(logits) is _core.Variable and type(target) is np.ndarray and target.dtype.kind in "iu"
            and target.ndim == 1 and logits.ndim == 2 and target.shape[0] == logits.shape[0]
            and type(label_smoothing) is float and label_smoothing == 0.0 and type(reduction) is str
            and reduction in _REDUCTIONS):
        # A training step's call, straight to the fused primitive (which checks the labels' range):
        # the checks below cost 1-2 us, a quarter of the whole call at a (64, 10) batch.
        return _core._cross_entropy_labels(logits, target, reduction)
    _check_reduction(reduction, "cross_entropy")
    if not (isinstance(label_smoothing, (int, float, np.floating)) and 0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    z = _as_variable(logits)
    t = _target(target, z.dtype, "cross_entropy")
    if z.ndim != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, C), got {z.shape}")
    n, c = z.shape
    smooth = float(label_smoothing)
    logp: Any
    if t.dtype.kind in "iub" and _is_core(z) and not smooth:
        logp = None  # computed inside the fused primitive
    else:
        logp = engine_of(z).log_softmax(z, axis=1)
    if t.dtype.kind in "iub":
        if t.shape != (n,):
            raise ValueError(f"cross_entropy: integer labels must have shape ({n},) for logits {z.shape}, "
                             f"got {tuple(t.shape)}")
        if _is_core(z) and not smooth:
            # The C++ engine's fused primitive: one op, the reduction included; it checks the labels' range.
            # (The reference engine composes log_softmax and indexing.)
            return _core._cross_entropy_labels(z, t, reduction)
        if n and (t.min() < 0 or t.max() >= c):
            raise ValueError(f"cross_entropy: labels must be in [0, {c}), got values in [{t.min()}, {t.max()}]")
        loss = -logp[np.arange(n), t.astype(np.intp)]
        if smooth:
            loss = (1.0 - smooth) * loss - (smooth / c) * logp.sum(axis=1)
    elif t.dtype.kind == "f":
        if tuple(t.shape) != (n, c):
            raise ValueError(f"cross_entropy: probability targets must have the logits' shape {z.shape}, "
                             f"got {tuple(t.shape)} (integer labels need an integer dtype)")
        p = t.astype(z.dtype, copy=False)
        if smooth:
            p = (1.0 - smooth) * p + smooth / c
        loss = -(logp * p.astype(z.dtype, copy=False)).sum(axis=1)
    else:
        raise TypeError(f"cross_entropy: target must be integer labels or float probabilities, got dtype {t.dtype}")
    return _reduce(loss, reduction, "cross_entropy")


def nll_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Negative log-likelihood of integer labels ``(N,)`` given log-probabilities ``(N, C)``
    (e.g. from ``log_softmax``): ``-input[i, target_i]``."""
    _check_reduction(reduction, "nll_loss")
    x = _as_variable(input)
    t = _target(target, x.dtype, "nll_loss")
    if x.ndim != 2:
        raise ValueError(f"nll_loss: input must have shape (N, C) (log-probabilities), got {x.shape}")
    n, c = x.shape
    if t.dtype.kind not in "iu" or t.shape != (n,):
        raise ValueError(f"nll_loss: target must be integer labels of shape ({n},), got {tuple(t.shape)} "
                         f"of dtype {t.dtype}")
    if n and (t.min() < 0 or t.max() >= c):
        raise ValueError(f"nll_loss: labels must be in [0, {c}), got values in [{t.min()}, {t.max()}]")
    return _reduce(-x[np.arange(n), t.astype(np.intp)], reduction, "nll_loss")


def binary_cross_entropy(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Binary cross-entropy of probabilities ``input`` in [0, 1] against ``target`` in [0, 1]:
    ``-(t log p + (1 - t) log(1 - p))``, each log clamped at -100 as PyTorch does (so p = 0 or 1
    gives a finite loss). Prefer :func:`binary_cross_entropy_with_logits` on raw scores: it is stable."""
    _check_reduction(reduction, "binary_cross_entropy")
    x = _as_variable(input)
    t = _target(target, x.dtype, "binary_cross_entropy")
    _check_same_shape("binary_cross_entropy", x.shape, tuple(t.shape))
    data = np.asarray(x.data)
    if data.size and (np.nanmin(data) < 0 or np.nanmax(data) > 1):
        raise ValueError(f"binary_cross_entropy: input must be probabilities in [0, 1], got values in "
                         f"[{np.nanmin(data)}, {np.nanmax(data)}] (use binary_cross_entropy_with_logits "
                         f"for raw scores)")
    E = engine_of(x)
    floor = E.Variable(np.full(x.shape, -100.0, dtype=x.dtype))
    log_p = E.maximum(E.log(x), floor)
    log_q = E.maximum(E.log(1.0 - x), floor)
    tt = t.astype(x.dtype)
    return _reduce(-(log_p * tt + log_q * (1.0 - tt)), reduction, "binary_cross_entropy")


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Any:
    """Huber loss, elementwise: ``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``,
    with ``d = input - target`` (quadratic near zero, linear in the tails)."""
    _check_reduction(reduction, "huber_loss")
    if not (isinstance(delta, (int, float, np.floating)) and delta > 0):
        raise ValueError(f"huber_loss: delta must be a positive number, got {delta!r}")
    x = _as_variable(input)
    t = _target(target, x.dtype, "huber_loss")
    _check_same_shape("huber_loss", x.shape, tuple(t.shape))
    E = engine_of(x)
    d = x - t.astype(x.dtype, copy=False)
    a = E.abs(d)
    delta = float(delta)
    loss = E.where(np.abs(np.asarray(d.data)) < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    return _reduce(loss, reduction, "huber_loss")


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Binary cross-entropy of ``sigmoid(logits)`` against ``target`` in [0, 1], stable.

    Written as ``softplus(z) - y z`` with ``softplus(z) = logsumexp([0, z])``
    (exact gradient ``sigmoid(z) - y`` everywhere, including z = 0)."""
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    z = _as_variable(logits)
    t = _target(target, z.dtype, "binary_cross_entropy_with_logits")
    _check_same_shape("binary_cross_entropy_with_logits", z.shape, tuple(t.shape), "logits")
    E = engine_of(z)
    zeros = E.Variable(np.zeros(z.shape, dtype=z.dtype))
    softplus = E.logsumexp(E.stack([zeros, z], axis=0), axis=0)
    return _reduce(softplus - z * t.astype(z.dtype), reduction, "binary_cross_entropy_with_logits")


class _Loss(Layer):
    """A loss function as a layer: ``loss_layer(input, target)`` calls ``fn`` with the stored options."""

    fn: Callable[..., Any]

    def __init__(self, reduction: str = "mean", **options: Any) -> None:
        super().__init__()
        _check_reduction(reduction, type(self).__name__)
        self.reduction = reduction
        self.options = options

    def forward(self, input: Any, target: Any) -> Any:
        return type(self).fn(input, target, reduction=self.reduction, **self.options)

    def extra_repr(self) -> str:
        return ", ".join([f"reduction={self.reduction!r}"] + [f"{k}={v!r}" for k, v in self.options.items()])


class MSELoss(_Loss):
    """Layer form of :func:`mse_loss`."""
    fn = staticmethod(mse_loss)


class L1Loss(_Loss):
    """Layer form of :func:`l1_loss`."""
    fn = staticmethod(l1_loss)


class CrossEntropyLoss(_Loss):
    """Layer form of :func:`cross_entropy`: ``CrossEntropyLoss(reduction="mean", label_smoothing=0.0)``."""
    fn = staticmethod(cross_entropy)

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(reduction, **({"label_smoothing": label_smoothing} if label_smoothing else {}))


class BCEWithLogitsLoss(_Loss):
    """Layer form of :func:`binary_cross_entropy_with_logits`."""
    fn = staticmethod(binary_cross_entropy_with_logits)


class NLLLoss(_Loss):
    """Layer form of :func:`nll_loss` (input: log-probabilities)."""
    fn = staticmethod(nll_loss)


class BCELoss(_Loss):
    """Layer form of :func:`binary_cross_entropy` (input: probabilities)."""
    fn = staticmethod(binary_cross_entropy)


class HuberLoss(_Loss):
    """Layer form of :func:`huber_loss`: ``HuberLoss(reduction="mean", delta=1.0)``."""
    fn = staticmethod(huber_loss)

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction, delta=delta)


_BY_NAME = {
    "mse": mse_loss, "mse_loss": mse_loss, "l1": l1_loss, "l1_loss": l1_loss,
    "cross_entropy": cross_entropy, "bce_with_logits": binary_cross_entropy_with_logits,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "nll": nll_loss, "nll_loss": nll_loss, "bce": binary_cross_entropy, "binary_cross_entropy": binary_cross_entropy,
    "huber": huber_loss, "huber_loss": huber_loss,
}


def get_loss(loss: Union[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A loss callable from a callable or a name ("cross_entropy", "mse", "l1", "huber", "nll", "bce",
    "bce_with_logits")."""
    if callable(loss):
        return loss
    if loss in _BY_NAME:
        return _BY_NAME[loss]
    raise ValueError(f"unknown loss {loss!r}: expected a callable or one of {', '.join(sorted(_BY_NAME))}")
