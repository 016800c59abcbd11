"""Optimizers (``SGD``, ``Adam``, ``AdamW``), ``clip_grad_norm`` and learning-rate schedulers.

Each ``step()`` is one C++ call (``_core._sgd_steps`` / ``_core._adam_steps``)
that updates every parameter that has a gradient with one fused kernel: one
pass over the parameter's memory, in place, no Python loop at all.
Parameters without a gradient are skipped. Buffers (momentum, Adam moments)
live in ``self.state[i]``, created there on a parameter's first update. ``state_dict()`` / ``load_state_dict()``
capture the hyper-parameters, step counts and buffers, so a run resumed
from them continues bit for bit.
"""
import copy
import math
import numbers

import numpy as np

from . import _core
from ._core import Variable

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm", "StepLR", "CosineAnnealingLR"]


def _check_number(name, value, low=0.0, low_inclusive=True, high=None, high_inclusive=False, owner=""):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    ok_low = value >= low if low_inclusive else value > low
    ok_high = True if high is None else (value <= high if high_inclusive else value < high)
    if not (ok_low and ok_high):
        rng = f"{'[' if low_inclusive else '('}{low}, {'' if high is None else high}{']' if high_inclusive else ')'}"
        raise ValueError(f"{owner}: {name} must be in {rng}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: holds the parameter list, ``lr`` and per-parameter state."""

    _hyper = ("lr",)

    def __init__(self, params, lr):
        name = type(self).__name__
        if isinstance(params, Variable):
            raise TypeError(f"{name}: params must be an iterable of Variables (e.g. model.parameters()), "
                            f"not a single Variable")
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Variable):
                raise TypeError(f"{name}: parameter {i} is a {type(p).__name__}, not a tapegrad.Variable")
            if not p.requires_grad:
                raise ValueError(f"{name}: parameter {i} (shape {p.shape}) does not require grad")
        self.lr = _check_number("lr", lr, 0.0, owner=name)
        self.initial_lr = self.lr
        self.state = [dict() for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        raise NotImplementedError

    def state_dict(self):
        """Hyper-parameters and per-parameter buffers (copies), as plain Python/NumPy values."""
        state = []
        for s in self.state:
            state.append({k: (np.array(v.data, copy=True) if isinstance(v, Variable) else copy.copy(v))
                          for k, v in s.items()})
        return {"type": type(self).__name__, "hyper": {k: getattr(self, k) for k in self._hyper},
                "initial_lr": self.initial_lr, "state": state}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` taken from an optimizer of the same type over same-shaped parameters."""
        name = type(self).__name__
        if state_dict.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state is from a {state_dict.get('type')!r} optimizer")
        states = state_dict["state"]
        if len(states) != len(self.params):
            raise ValueError(f"{name}.load_state_dict: the state has {len(states)} parameters, "
                             f"the optimizer {len(self.params)}")
        new = []
        for i, (p, s) in enumerate(zip(self.params, states)):
            d = {}
            for k, v in s.items():
                if isinstance(v, np.ndarray):
                    if v.shape != p.shape:
                        raise ValueError(f"{name}.load_state_dict: buffer {k!r} of parameter {i} has shape "
                                         f"{v.shape}, the parameter {p.shape}")
                    d[k] = Variable(v.astype(p.dtype))
                else:
                    d[k] = v
            new.append(d)
        for k, v in state_dict["hyper"].items():
            setattr(self, k, v)
        self.initial_lr = state_dict.get("initial_lr", self.lr)
        self.state = new

    def __repr__(self):
        hyper = ", ".join(f"{k}={getattr(self, k)}" for k in self._hyper)
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent: d = g + wd p; with momentum buf = mu buf + d,
    d = nesterov ? d + mu buf : buf; p -= lr d (PyTorch's convention)."""

    _hyper = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum = _check_number("momentum", momentum, 0.0, owner="SGD")
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0, owner="SGD")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")

    def step(self):
        _core._sgd_steps(self.params, self.state, self.lr, self.momentum, self.nesterov, self.weight_decay)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is added to the gradient (L2)."""

    _hyper = ("lr", "betas", "eps", "weight_decay")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        name = type(self).__name__
        b1, b2 = betas
        self.betas = (_check_number("beta1", b1, 0.0, high=1.0, owner=name),
                      _check_number("beta2", b2, 0.0, high=1.0, owner=name))
        self.eps = _check_number("eps", eps, 0.0, owner=name)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0, owner=name)

    def step(self):
        b1, b2 = self.betas
        _core._adam_steps(self.params, self.state, self.lr, b1, b2, self.eps, self.weight_decay, self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr wd before the Adam step."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


def clip_grad_norm(params, max_norm):
    """Scale all gradients in place so that their global L2 norm is at most ``max_norm``.

    Returns the total norm before clipping (parameters without a gradient are ignored)."""
    max_norm = _check_number("max_norm", max_norm, 0.0, low_inclusive=False, owner="clip_grad_norm")
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total = math.sqrt(sum(float(np.dot(g.ravel().astype(np.float64), g.ravel().astype(np.float64)))
                          for g in grads))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= g.dtype.type(scale)
    return total


class _Scheduler:
    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a tapegrad.optim optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.initial_lr
        self.last_epoch = 0

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr(self.last_epoch)
        return self.optimizer.lr

    def get_last_lr(self):
        return self.optimizer.lr

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state):
        self.last_epoch = state["last_epoch"]
        self.base_lr = state["base_lr"]


class StepLR(_Scheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        if not isinstance(step_size, (int, np.integer)) or step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = _check_number("gamma", gamma, 0.0, owner="StepLR")

    def get_lr(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Scheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2 (constant eta_min after T_max)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        if not isinstance(T_max, (int, np.integer)) or T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive integer, got {T_max!r}")
        self.T_max = int(T_max)
        self.eta_min = _check_number("eta_min", eta_min, 0.0, owner="CosineAnnealingLR")

    def get_lr(self, epoch):
        e = min(epoch, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2
