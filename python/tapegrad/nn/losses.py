"""Loss functions (``mse_loss``, ``l1_loss``, ``cross_entropy``,
``binary_cross_entropy_with_logits``) and their layer forms.

``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"`` (per-sample
losses). Inputs may be Variables of either engine; targets are arrays.
"""
import numpy as np

from .. import _core
from .layers import Layer, _as_variable, engine_of

__all__ = [
    "mse_loss", "l1_loss", "cross_entropy", "binary_cross_entropy_with_logits",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "BCEWithLogitsLoss", "get_loss",
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


def _target(target, dtype):
    if hasattr(target, "data") and not isinstance(target, np.ndarray):  # a Variable: a constant here
        target = np.asarray(target.data)
    return np.asarray(target)


def _check_reduction(reduction, what):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{what}: reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")


def mse_loss(input, target, reduction="mean"):
    """Mean squared error, elementwise; ``input`` and ``target`` must have the same shape."""
    if (reduction == "mean" or reduction == "sum") and type(input) is _core.Variable:
        # the C++ engine's fused primitive (it checks shapes; the reference composes the loss)
        return _core._mse_loss(input, _target(target, None), reduction == "mean")
    _check_reduction(reduction, "mse_loss")
    x = _as_variable(input)
    t = _target(target, x.dtype)
    if tuple(t.shape) != x.shape:
        raise ValueError(f"mse_loss: input shape {x.shape} and target shape {tuple(t.shape)} differ")
    if reduction != "none" and _is_core(x):  # the C++ engine's fused primitive (the reference composes it)
        return _core._mse_loss(x, t, reduction == "mean")
    d = x - t.astype(x.dtype, copy=False)
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    """Mean absolute error, elementwise; same shapes required."""
    _check_reduction(reduction, "l1_loss")
    x = _as_variable(input)
    t = _target(target, x.dtype)
    if tuple(t.shape) != x.shape:
        raise ValueError(f"l1_loss: input shape {x.shape} and target shape {tuple(t.shape)} differ")
    return _reduce(engine_of(x).abs(x - t.astype(x.dtype, copy=False)), reduction, "l1_loss")


def cross_entropy(logits, target, reduction="mean"):
    """Softmax cross-entropy from raw logits ``(N, C)``, fused and stable.

    ``target``: integer class labels ``(N,)`` in ``[0, C)``, or class
    probabilities ``(N, C)`` (floats, rows summing to 1). Computed as
    ``-log_softmax(logits)[i, y_i]`` (or ``-(p * log_softmax).sum(1)``), so
    logits of any size are fine. ``reduction="none"`` returns ``(N,)``.
    """
    _check_reduction(reduction, "cross_entropy")
    z = _as_variable(logits)
    t = _target(target, z.dtype)
    if z.ndim != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, C), got {z.shape}")
    n, c = z.shape
    if t.dtype.kind in "iub" and _is_core(z):
        logp = None  # computed inside the fused primitive
    else:
        logp = engine_of(z).log_softmax(z, axis=1)
    if t.dtype.kind in "iub":
        if t.shape != (n,):
            raise ValueError(f"cross_entropy: integer labels must have shape ({n},) for logits {z.shape}, "
                             f"got {tuple(t.shape)}")
        if _is_core(z):
            # The C++ engine's fused primitive: one op, the reduction included; it checks the labels' range.
            # (The reference engine composes log_softmax and indexing.)
            return _core._cross_entropy_labels(z, t, reduction)
        if n and (t.min() < 0 or t.max() >= c):
            raise ValueError(f"cross_entropy: labels must be in [0, {c}), got values in [{t.min()}, {t.max()}]")
        loss = -logp[np.arange(n), t.astype(np.intp)]
    elif t.dtype.kind == "f":
        if tuple(t.shape) != (n, c):
            raise ValueError(f"cross_entropy: probability targets must have the logits' shape {z.shape}, "
                             f"got {tuple(t.shape)} (integer labels need an integer dtype)")
        loss = -(logp * t.astype(z.dtype, copy=False)).sum(axis=1)
    else:
        raise TypeError(f"cross_entropy: target must be integer labels or float probabilities, got dtype {t.dtype}")
    return _reduce(loss, reduction, "cross_entropy")


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Binary cross-entropy of ``sigmoid(logits)`` against ``target`` in [0, 1], stable.

    Written as ``softplus(z) - y z`` with ``softplus(z) = logsumexp([0, z])``
    (exact gradient ``sigmoid(z) - y`` everywhere, including z = 0)."""
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    z = _as_variable(logits)
    t = _target(target, z.dtype)
    if tuple(t.shape) != z.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: logits shape {z.shape} and target shape "
                         f"{tuple(t.shape)} differ")
    E = engine_of(z)
    zeros = E.Variable(np.zeros(z.shape, dtype=z.dtype))
    softplus = E.logsumexp(E.stack([zeros, z], axis=0), axis=0)
    return _reduce(softplus - z * t.astype(z.dtype), reduction, "binary_cross_entropy_with_logits")


class _Loss(Layer):
    fn = None

    def __init__(self, reduction="mean"):
        super().__init__()
        _check_reduction(reduction, type(self).__name__)
        self.reduction = reduction

    def forward(self, input, target):
        return type(self).fn(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    fn = staticmethod(mse_loss)


class L1Loss(_Loss):
    fn = staticmethod(l1_loss)


class CrossEntropyLoss(_Loss):
    fn = staticmethod(cross_entropy)


class BCEWithLogitsLoss(_Loss):
    fn = staticmethod(binary_cross_entropy_with_logits)


_BY_NAME = {
    "mse": mse_loss, "mse_loss": mse_loss, "l1": l1_loss, "l1_loss": l1_loss,
    "cross_entropy": cross_entropy, "bce_with_logits": binary_cross_entropy_with_logits,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
}


def get_loss(loss):
    """A loss callable from a callable or a name ("cross_entropy", "mse", "l1", "bce_with_logits")."""
    if callable(loss):
        return loss
    if loss in _BY_NAME:
        return _BY_NAME[loss]
    raise ValueError(f"unknown loss {loss!r}: expected a callable or one of {', '.join(sorted(_BY_NAME))}")
