"""Optimizers (``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad``), gradient clipping and learning-rate
schedulers.

``SGD``/``Adam``/``AdamW``: each ``step()`` is one C++ call per parameter group
(``_core._sgd_steps`` / ``_core._adam_steps``) that updates every parameter
that has a gradient with one fused kernel: one pass over the parameter's
memory, in place, no Python loop. ``RMSprop``/``Adagrad`` update in place with
NumPy. Parameters without a gradient are skipped. Buffers (momentum, moments)
live in ``self.state[i]``, created there on a parameter's first update.

``params`` is an iterable of Variables or, as in PyTorch, of parameter groups:
dicts ``{"params": [...], "lr": ..., "weight_decay": ...}`` whose entries
override the optimizer's defaults for that group (``optimizer.param_groups``).
``state_dict()`` / ``load_state_dict()`` capture the groups' hyper-parameters,
step counts and buffers, so a run resumed from them continues bit for bit.

The schedulers follow PyTorch's definitions (checked against them in
``tests/test_optim_torch.py``): each sets every group's ``lr`` from that
group's ``initial_lr`` when created (epoch 0) and at each ``step()``.
"""
import bisect
import copy
import math
import numbers
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._core import Variable

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "clip_grad_norm", "clip_grad_value",
    "LRScheduler", "StepLR", "CosineAnnealingLR", "ExponentialLR", "LinearLR", "SequentialLR", "OneCycleLR",
    "ReduceLROnPlateau",
]


def _check_number(name: str, value: Any, low: float = 0.0, low_inclusive: bool = True, high: Optional[float] = None,
                  high_inclusive: bool = False, owner: str = "") -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    value = float(value)
    ok_low = value >= low if low_inclusive else value > low
    ok_high = True if high is None else (value <= high if high_inclusive else value < high)
    if not (ok_low and ok_high):
        rng = f"{'[' if low_inclusive else '('}{low}, {'' if high is None else high}{']' if high_inclusive else ')'}"
        raise ValueError(f"{owner}: {name} must be in {rng}, got {value!r}")
    return value


def _check_positive_int(name: str, value: Any, owner: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


ParamsT = Union[Iterable[Variable], Iterable[Dict[str, Any]]]


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``, ``state_dict``.

    Subclasses list their per-group hyper-parameters in ``_hyper``, check
    them in ``_check_group`` and implement ``step``. The first group's
    hyper-parameters read as attributes (``opt.lr``, ``opt.momentum``);
    assigning one (``opt.lr = 0.1``) sets it in every group.
    """

    _hyper: Sequence[str] = ("lr",)
    _variable_buffers = True  # the C++ steps keep their buffers as Variables; the NumPy ones as arrays

    def __init__(self, params: ParamsT, defaults: Dict[str, Any]) -> None:
        name = type(self).__name__
        if isinstance(params, Variable):
            raise TypeError(f"{name}: params must be an iterable of Variables (e.g. model.parameters()), "
                            f"not a single Variable")
        items = list(params)
        if not items:
            raise ValueError(f"{name}: got an empty parameter list")
        raw_groups = items if isinstance(items[0], dict) else [{"params": items}]
        object.__setattr__(self, "param_groups", [])
        self.params: List[Variable] = []
        self._index: List[List[int]] = []
        seen: Dict[int, int] = {}
        for gi, raw in enumerate(raw_groups):
            if not isinstance(raw, dict) or "params" not in raw:
                raise TypeError(f"{name}: parameter group {gi} must be a dict with a 'params' entry, "
                                f"got {type(raw).__name__}")
            unknown = [k for k in raw if k not in self._hyper and k not in ("params", "initial_lr")]
            if unknown:
                raise ValueError(f"{name}: parameter group {gi} has unknown option(s) {unknown}; "
                                 f"expected some of {list(self._hyper)}")
            group_params = raw["params"]
            group_params = [group_params] if isinstance(group_params, Variable) else list(group_params)
            if not group_params:
                raise ValueError(f"{name}: parameter group {gi} is empty")
            index = []
            for p in group_params:
                i = len(self.params)
                if not isinstance(p, Variable):
                    raise TypeError(f"{name}: parameter {i} is a {type(p).__name__}, not a tapegrad.Variable")
                if not p.requires_grad:
                    raise ValueError(f"{name}: parameter {i} (shape {p.shape}) does not require grad")
                if id(p) in seen:
                    raise ValueError(f"{name}: parameter {i} (shape {p.shape}) appears twice "
                                     f"(groups {seen[id(p)]} and {gi})")
                seen[id(p)] = gi
                self.params.append(p)
                index.append(i)
            group = dict(defaults)
            group.update({k: v for k, v in raw.items() if k != "params"})
            self._check_group(group)
            group.setdefault("initial_lr", group["lr"])
            group["params"] = group_params
            self.param_groups.append(group)
            self._index.append(index)
        self.state: List[Dict[str, Any]] = [dict() for _ in self.params]

    def _check_group(self, group: Dict[str, Any]) -> None:
        group["lr"] = _check_number("lr", group["lr"], 0.0, owner=type(self).__name__)

    # The first group's hyper-parameters as attributes; assigning one sets every group's.
    def __getattr__(self, name: str) -> Any:
        if name in type(self)._hyper or name == "initial_lr":
            groups = self.__dict__.get("param_groups")
            if groups:
                return groups[0][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self)._hyper or name == "initial_lr":
            for group in self.param_groups:
                group[name] = value
        else:
            object.__setattr__(self, name, value)

    def _groups(self) -> Iterable[tuple]:
        """(group, its parameters, their state dicts) for each group (the state dicts are self.state's)."""
        if len(self.param_groups) == 1:
            yield self.param_groups[0], self.params, self.state
        else:
            for group, index in zip(self.param_groups, self._index):
                yield group, group["params"], [self.state[i] for i in index]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: drop them (``set_to_none=True``, the default) or fill them with zeros."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif isinstance(p.grad, np.ndarray):
                p.grad[...] = 0
            elif p.grad is not None:  # a Variable (backward(create_graph=True)): zeros, outside the graph
                p.grad = np.zeros(p.grad.shape, p.grad.dtype)

    def step(self) -> None:
        """Update every parameter that has a gradient (subclasses implement it)."""
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:
        """Hyper-parameters per group and buffers per parameter (copies), as plain Python/NumPy values."""
        state = []
        for s in self.state:
            state.append({k: (np.array(v.data, copy=True) if isinstance(v, Variable) else copy.copy(v))
                          for k, v in s.items()})
        groups = [dict({k: v for k, v in g.items() if k != "params"}, params=list(index))
                  for g, index in zip(self.param_groups, self._index)]
        return {"type": type(self).__name__, "param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore a ``state_dict()`` taken from an optimizer of the same type over same-shaped parameters
        in the same groups; everything is checked before anything changes."""
        name = type(self).__name__
        if state_dict.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state is from a {state_dict.get('type')!r} optimizer")
        states, groups = state_dict["state"], state_dict["param_groups"]
        if len(states) != len(self.params):
            raise ValueError(f"{name}.load_state_dict: the state has {len(states)} parameters, "
                             f"the optimizer {len(self.params)}")
        if [len(g["params"]) for g in groups] != [len(ix) for ix in self._index]:
            raise ValueError(f"{name}.load_state_dict: the state's parameter groups have sizes "
                             f"{[len(g['params']) for g in groups]}, the optimizer's "
                             f"{[len(ix) for ix in self._index]}")
        new = []
        for i, (p, s) in enumerate(zip(self.params, states)):
            d = {}
            for k, v in s.items():
                if isinstance(v, np.ndarray):
                    if v.shape != p.shape:
                        raise ValueError(f"{name}.load_state_dict: buffer {k!r} of parameter {i} has shape "
                                         f"{v.shape}, the parameter {p.shape}")
                    arr = v.astype(p.dtype)
                    d[k] = Variable(arr) if self._variable_buffers else arr
                else:
                    d[k] = v
            new.append(d)
        for group, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(group.get(k), tuple) else v
        self.state = new

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={getattr(self, k)}" for k in self._hyper)
        more = f", {len(self.param_groups)} groups" if len(self.param_groups) > 1 else ""
        return f"{type(self).__name__}({len(self.params)} parameters{more}, {hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent: d = g + wd p; with momentum buf = mu buf + d,
    d = nesterov ? d + mu buf : buf; p -= lr d (PyTorch's convention)."""

    _hyper = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, params: ParamsT, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    def _check_group(self, group: Dict[str, Any]) -> None:
        super()._check_group(group)
        group["momentum"] = _check_number("momentum", group["momentum"], 0.0, owner="SGD")
        group["weight_decay"] = _check_number("weight_decay", group["weight_decay"], 0.0, owner="SGD")
        group["nesterov"] = bool(group["nesterov"])
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self._fused_step(1.0)

    def _fused_step(self, grad_scale: float) -> None:
        # grad_scale != 1 (tapegrad.distributed's 1/N): each .grad is multiplied by it in the update's pass
        groups = self.param_groups
        if len(groups) == 1:  # the common case without the generator (0.4 us a step, not 1 us)
            g = groups[0]
            _core._sgd_steps(self.params, self.state, g["lr"], g["momentum"], g["nesterov"], g["weight_decay"],
                             grad_scale)
            return
        for g, params, states in self._groups():
            _core._sgd_steps(params, states, g["lr"], g["momentum"], g["nesterov"], g["weight_decay"], grad_scale)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is added to the gradient (L2)."""

    _hyper = ("lr", "betas", "eps", "weight_decay")
    _decoupled = False

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_group(self, group: Dict[str, Any]) -> None:
        super()._check_group(group)
        name = type(self).__name__
        b1, b2 = group["betas"]
        group["betas"] = (_check_number("beta1", b1, 0.0, high=1.0, owner=name),
                          _check_number("beta2", b2, 0.0, high=1.0, owner=name))
        group["eps"] = _check_number("eps", group["eps"], 0.0, owner=name)
        group["weight_decay"] = _check_number("weight_decay", group["weight_decay"], 0.0, owner=name)

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self._fused_step(1.0)

    def _fused_step(self, grad_scale: float) -> None:
        # grad_scale != 1 (tapegrad.distributed's 1/N): each .grad is multiplied by it in the update's pass
        groups = self.param_groups
        if len(groups) == 1:  # the common case without the generator
            g = groups[0]
            b1, b2 = g["betas"]
            _core._adam_steps(self.params, self.state, g["lr"], b1, b2, g["eps"], g["weight_decay"], self._decoupled,
                              grad_scale)
            return
        for g, params, states in self._groups():
            b1, b2 = g["betas"]
            _core._adam_steps(params, states, g["lr"], b1, b2, g["eps"], g["weight_decay"], self._decoupled,
                              grad_scale)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr wd before the Adam step."""

    _decoupled = True

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


def _numpy_buffer(state: Dict[str, Any], key: str, like: np.ndarray, fill: float = 0.0) -> np.ndarray:
    buf = state.get(key)
    if buf is None:
        buf = state[key] = np.full_like(like, fill)
    return buf


class RMSprop(Optimizer):
    """RMSprop (PyTorch's definition): g += wd p; v = alpha v + (1 - alpha) g^2;
    ``centered``: v - mean(g)^2 in place of v; d = g / (sqrt(v) + eps);
    with momentum buf = mu buf + d, d = buf; p -= lr d."""

    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    _variable_buffers = False

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def _check_group(self, group: Dict[str, Any]) -> None:
        super()._check_group(group)
        group["alpha"] = _check_number("alpha", group["alpha"], 0.0, high=1.0, high_inclusive=True, owner="RMSprop")
        group["eps"] = _check_number("eps", group["eps"], 0.0, owner="RMSprop")
        group["weight_decay"] = _check_number("weight_decay", group["weight_decay"], 0.0, owner="RMSprop")
        group["momentum"] = _check_number("momentum", group["momentum"], 0.0, owner="RMSprop")
        group["centered"] = bool(group["centered"])

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for g, params, states in self._groups():
            lr, alpha, eps, wd, mu = g["lr"], g["alpha"], g["eps"], g["weight_decay"], g["momentum"]
            for p, st in zip(params, states):
                grad = p.grad
                if grad is None:
                    continue
                w = p.data
                if wd:
                    grad = grad + wd * w
                st["step"] = st.get("step", 0) + 1
                sq = _numpy_buffer(st, "square_avg", w)
                sq *= alpha
                sq += (1 - alpha) * grad * grad
                if g["centered"]:
                    ga = _numpy_buffer(st, "grad_avg", w)
                    ga *= alpha
                    ga += (1 - alpha) * grad
                    avg = np.sqrt(sq - ga * ga) + eps
                else:
                    avg = np.sqrt(sq) + eps
                if mu > 0:
                    buf = _numpy_buffer(st, "momentum_buffer", w)
                    buf *= mu
                    buf += grad / avg
                    w -= lr * buf
                else:
                    w -= lr * (grad / avg)


class Adagrad(Optimizer):
    """Adagrad (PyTorch's definition): g += wd p; sum += g^2; p -= lr / (1 + (t - 1) lr_decay) g / (sqrt(sum) + eps),
    ``sum`` starting at ``initial_accumulator_value``."""

    _hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    _variable_buffers = False

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _check_group(self, group: Dict[str, Any]) -> None:
        super()._check_group(group)
        for k in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            group[k] = _check_number(k, group[k], 0.0, owner="Adagrad")

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for g, params, states in self._groups():
            for p, st in zip(params, states):
                grad = p.grad
                if grad is None:
                    continue
                w = p.data
                st["step"] = step = st.get("step", 0) + 1
                if g["weight_decay"]:
                    grad = grad + g["weight_decay"] * w
                clr = g["lr"] / (1 + (step - 1) * g["lr_decay"])
                acc = _numpy_buffer(st, "sum", w, g["initial_accumulator_value"])
                acc += grad * grad
                w -= clr * (grad / (np.sqrt(acc) + g["eps"]))


def clip_grad_norm(params: Iterable[Variable], max_norm: float) -> float:
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


def clip_grad_value(params: Iterable[Variable], clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place (no grad: skipped)."""
    c = _check_number("clip_value", clip_value, 0.0, low_inclusive=False, owner="clip_grad_value")
    for p in params:
        g = p.grad
        if isinstance(g, np.ndarray):
            np.clip(g, -c, c, out=g)
        elif g is not None:
            raise TypeError(f"clip_grad_value: a gradient of shape {g.shape} is a Variable (from "
                            "backward(create_graph=True)); clipping it in place would cut its graph: "
                            "clip p.grad.data, or use tapegrad.clip on the Variable")


# ---------------------------------------------------------------------------------------------------------------
# Learning-rate schedulers
# ---------------------------------------------------------------------------------------------------------------

class LRScheduler:
    """Base class: sets each group's ``lr`` to ``_lr(group's initial_lr, epoch)``, at creation (epoch 0)
    and at each ``step()``. ``state_dict()`` holds the epoch count and the settings."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a tapegrad.optim optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def _start(self) -> None:
        self._apply()

    def _lr(self, base: float, epoch: int) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self._lr(base, self.last_epoch)

    def step(self) -> float:
        """Advance one epoch (or one batch, for per-batch schedules); returns the first group's new lr."""
        self.last_epoch += 1
        self._apply()
        return self.optimizer.param_groups[0]["lr"]

    @property
    def base_lr(self) -> float:
        """The first group's initial learning rate."""
        return self.base_lrs[0]

    def get_last_lr(self) -> List[float]:
        """The learning rate of each group, as last set."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        """The scheduler's settings and counters (plain Python values)."""
        state = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in ("optimizer", "schedulers")}
        state["type"] = type(self).__name__
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a ``state_dict()`` from a scheduler of the same type."""
        name = type(self).__name__
        if state.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state is from a {state.get('type')!r} scheduler")
        unknown = [k for k in state if k != "type" and k not in self.__dict__]
        if unknown:
            raise ValueError(f"{name}.load_state_dict: unexpected entries {unknown}")
        for k, v in state.items():
            if k != "type":
                self.__dict__[k] = copy.deepcopy(v)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = _check_positive_int("step_size", step_size, "StepLR")
        self.gamma = _check_number("gamma", gamma, 0.0, owner="StepLR")
        self._start()

    def _lr(self, base: float, epoch: int) -> float:
        return base * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2 (constant eta_min after T_max)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max = _check_positive_int("T_max", T_max, "CosineAnnealingLR")
        self.eta_min = _check_number("eta_min", eta_min, 0.0, owner="CosineAnnealingLR")
        self._start()

    def _lr(self, base: float, epoch: int) -> float:
        e = min(epoch, self.T_max)
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma = _check_number("gamma", gamma, 0.0, low_inclusive=False, owner="ExponentialLR")
        self._start()

    def _lr(self, base: float, epoch: int) -> float:
        return base * self.gamma ** epoch


class LinearLR(LRScheduler):
    """Linear warm-up (or decay): lr = base_lr * f, f going linearly from ``start_factor`` (epoch 0) to
    ``end_factor`` (epoch ``total_iters`` and after). Follow it with another schedule via :class:`SequentialLR`."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5) -> None:
        super().__init__(optimizer)
        self.start_factor = _check_number("start_factor", start_factor, 0.0, low_inclusive=False, high=1.0,
                                          high_inclusive=True, owner="LinearLR")
        self.end_factor = _check_number("end_factor", end_factor, 0.0, high=1.0, high_inclusive=True,
                                        owner="LinearLR")
        self.total_iters = _check_positive_int("total_iters", total_iters, "LinearLR")
        self._start()

    def _lr(self, base: float, epoch: int) -> float:
        e = min(epoch, self.total_iters)
        return base * (self.start_factor + (self.end_factor - self.start_factor) * e / self.total_iters)


class SequentialLR(LRScheduler):
    """Runs ``schedulers[0]`` until epoch ``milestones[0]``, then ``schedulers[1]`` from its epoch 0, ...

    E.g. warm-up then cosine: ``SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=5),
    CosineAnnealingLR(opt, T_max=45)], milestones=[5])``."""

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int]) -> None:
        super().__init__(optimizer)
        schedulers = list(schedulers)
        if not schedulers or any(not isinstance(s, LRScheduler) or isinstance(s, SequentialLR) for s in schedulers):
            raise TypeError("SequentialLR: schedulers must be a non-empty list of epoch schedulers "
                            "(StepLR, CosineAnnealingLR, ExponentialLR, LinearLR)")
        if any(s.optimizer is not optimizer for s in schedulers):
            raise ValueError("SequentialLR: every scheduler must drive the same optimizer")
        milestones = [int(m) for m in milestones]
        if len(milestones) != len(schedulers) - 1 or milestones != sorted(milestones) or \
                any(m <= 0 for m in milestones):
            raise ValueError(f"SequentialLR: expected {len(schedulers) - 1} increasing positive milestones, "
                             f"got {milestones}")
        self.schedulers = schedulers
        self.milestones = milestones
        self._start()

    def _lr(self, base: float, epoch: int) -> float:
        i = bisect.bisect_right(self.milestones, epoch)
        offset = self.milestones[i - 1] if i else 0
        return self.schedulers[i]._lr(base, epoch - offset)

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["schedulers"] = [s.state_dict() for s in self.schedulers]
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        children = state.pop("schedulers", [])
        if len(children) != len(self.schedulers):
            raise ValueError(f"SequentialLR.load_state_dict: the state has {len(children)} schedulers, "
                             f"this one {len(self.schedulers)}")
        super().load_state_dict(state)
        for s, st in zip(self.schedulers, children):
            s.load_state_dict(st)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith), stepped once per batch (PyTorch's definition).

    The lr rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of ``total_steps`` (or ``epochs * steps_per_epoch``), then
    anneals to ``max_lr / div_factor / final_div_factor`` (``anneal_strategy``
    "cos" or "linear"; ``three_phase`` comes back to the initial lr first).
    ``cycle_momentum`` moves the momentum (SGD/RMSprop) or beta1 (Adam)
    inversely between ``max_momentum`` and ``base_momentum``. Stepping past
    ``total_steps`` raises ``ValueError``. ``tapegrad.nn.fit`` steps it per batch.
    """

    def __init__(self, optimizer: Optimizer, max_lr: Union[float, Sequence[float]], total_steps: Optional[int] = None,
                 epochs: Optional[int] = None, steps_per_epoch: Optional[int] = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True, base_momentum: float = 0.85,
                 max_momentum: float = 0.95, div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False) -> None:
        super().__init__(optimizer)
        name = "OneCycleLR"
        if total_steps is not None:
            self.total_steps = _check_positive_int("total_steps", total_steps, name)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_check_positive_int("epochs", epochs, name)
                                * _check_positive_int("steps_per_epoch", steps_per_epoch, name))
        else:
            raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
        pct = _check_number("pct_start", pct_start, 0.0, high=1.0, high_inclusive=True, owner=name)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(max_lrs) != len(groups):
            raise ValueError(f"OneCycleLR: {len(max_lrs)} max_lr values for {len(groups)} parameter groups")
        div = _check_number("div_factor", div_factor, 0.0, low_inclusive=False, owner=name)
        final_div = _check_number("final_div_factor", final_div_factor, 0.0, low_inclusive=False, owner=name)
        self.max_lrs = [_check_number("max_lr", m, 0.0, owner=name) for m in max_lrs]
        self.initial_lrs = [m / div for m in self.max_lrs]
        self.min_lrs = [m / div / final_div for m in self.max_lrs]
        t = self.total_steps
        # (end step, start, end) with "initial"/"max"/"min" lrs and "max"/"base" momenta, as PyTorch
        self.phases: List[Tuple[float, str, str, str, str]]
        if three_phase:
            self.phases = [(float(pct * t) - 1, "initial", "max", "max_m", "base_m"),
                           (float(2 * pct * t) - 2, "max", "initial", "base_m", "max_m"),
                           (t - 1.0, "initial", "min", "max_m", "max_m")]
        else:
            self.phases = [(float(pct * t) - 1, "initial", "max", "max_m", "base_m"),
                           (t - 1.0, "max", "min", "base_m", "max_m")]
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            if "betas" not in type(optimizer)._hyper and "momentum" not in type(optimizer)._hyper:
                raise ValueError(f"OneCycleLR: cycle_momentum needs an optimizer with momentum or betas, "
                                 f"{type(optimizer).__name__} has neither (pass cycle_momentum=False)")
            self.base_momentum = _check_number("base_momentum", base_momentum, 0.0, owner=name)
            self.max_momentum = _check_number("max_momentum", max_momentum, 0.0, owner=name)
        for g, lr0 in zip(groups, self.initial_lrs):
            g["initial_lr"] = lr0
        self.base_lrs = list(self.initial_lrs)
        self._start()

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _apply(self) -> None:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times, past total_steps={self.total_steps}")
        start_step = 0.0
        for i, (end_step, a, b, ma, mb) in enumerate(self.phases):
            if step <= end_step or i == len(self.phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                break
            start_step = end_step
        moms = {"max_m": getattr(self, "max_momentum", 0.0), "base_m": getattr(self, "base_momentum", 0.0)}
        for g, lr0, lrmax, lrmin in zip(self.optimizer.param_groups, self.initial_lrs, self.max_lrs, self.min_lrs):
            lrs = {"initial": lr0, "max": lrmax, "min": lrmin}
            g["lr"] = self._anneal(lrs[a], lrs[b], pct)
            if self.cycle_momentum:
                m = self._anneal(moms[ma], moms[mb], pct)
                if "betas" in g:
                    g["betas"] = (m,) + tuple(g["betas"][1:])
                else:
                    g["momentum"] = m


class ReduceLROnPlateau:
    """Multiply each group's lr by ``factor`` when ``step(metric)`` has not improved for ``patience`` epochs
    (PyTorch's definition: ``mode`` "min"/"max", ``threshold`` with ``threshold_mode`` "rel"/"abs",
    ``cooldown`` epochs after a reduction, lrs floored at ``min_lr``; changes below ``eps`` are skipped)."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: Union[float, Sequence[float]] = 0.0, eps: float = 1e-8) -> None:
        name = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected a tapegrad.optim optimizer, got {type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{name}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = _check_number("factor", factor, 0.0, high=1.0, owner=name)
        if not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"{name}: patience must be a non-negative integer, got {patience!r}")
        if not isinstance(cooldown, (int, np.integer)) or cooldown < 0:
            raise ValueError(f"{name}: cooldown must be a non-negative integer, got {cooldown!r}")
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.threshold = _check_number("threshold", threshold, 0.0, owner=name)
        n = len(optimizer.param_groups)
        mins = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        if len(mins) != n:
            raise ValueError(f"{name}: {len(mins)} min_lr values for {n} parameter groups")
        self.min_lrs = [_check_number("min_lr", m, 0.0, owner=name) for m in mins]
        self.eps = _check_number("eps", eps, 0.0, owner=name)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _is_better(self, a: float) -> bool:
        best = self.best
        if self.mode == "min":
            return a < best * (1.0 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (self.threshold + 1.0) if self.threshold_mode == "rel" else a > best + self.threshold

    def step(self, metric: float) -> float:
        """Record this epoch's ``metric`` (e.g. the validation loss); returns the first group's lr."""
        current = float(metric)
        if math.isnan(current):
            raise ValueError("ReduceLROnPlateau.step: the metric is NaN")
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, floor in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(g["lr"] * self.factor, floor)
                if g["lr"] - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.optimizer.param_groups[0]["lr"]

    def get_last_lr(self) -> List[float]:
        """The learning rate of each group, as last set."""
        return [g["lr"] for g in self.optimizer.param_groups]

    state_dict = LRScheduler.state_dict
    load_state_dict = LRScheduler.load_state_dict
