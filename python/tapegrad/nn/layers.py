"""The ``Layer`` base class and the built-in layers.

Conventions
-----------
* ``Linear.weight`` has shape ``(in_features, out_features)`` and the forward
  is ``x @ W + b`` (inputs are row vectors, batches are rows): no transpose.
  PyTorch stores ``(out, in)``; transpose when copying weights across.
* Every layer runs on either engine: the ops are taken from the engine of the
  input (``tapegrad`` for a ``tapegrad.Variable``, ``tapegrad.reference`` for
  a reference Variable), so ``functional_call(model, params, x)`` with
  reference Variables runs the same network in pure NumPy.
"""
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import numpy as np

import tapegrad as _tg

from .init import INITS, get_rng, initialize

__all__ = [
    "Layer", "Linear", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "Softmax", "Dropout", "LayerNorm",
    "Sequential", "MLP", "Identity", "functional_call", "engine_of", "ACTIVATIONS",
    "Parameter", "ModuleList", "ModuleDict", "Flatten", "Embedding", "BatchNorm1d",
]


_Variable = _tg.Variable
_core_linear = _tg.linear


def engine_of(x):
    """The engine module (``tapegrad`` or ``tapegrad.reference``) that owns ``x``."""
    if isinstance(x, _tg.Variable):
        return _tg
    from tapegrad import reference
    if isinstance(x, reference.Variable):
        return reference
    return _tg


def _as_variable(x):
    if isinstance(x, _tg.Variable):
        return x
    from tapegrad import reference
    if isinstance(x, reference.Variable):
        return x
    return _tg.Variable(np.asarray(x))


def _dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _allocate(layer, make, shape, dt):
    """``make(shape, dt)``, the array of a parameter or buffer of ``shape`` and dtype ``dt``, with errors that name the
    layer, the shape and the bytes: a size that does not fit a 64-bit integer is a ValueError (NumPy would say
    only "Maximum allowed dimension exceeded"), a failed allocation a MemoryError."""
    dt = np.dtype(dt)
    nbytes = dt.itemsize
    for n in shape:
        nbytes *= int(n)
    if nbytes >= 2**63:
        raise ValueError(f"{layer}: a parameter of shape {tuple(shape)} {dt} is too big "
                         f"({nbytes} bytes do not fit a 64-bit size)")
    try:
        return make(shape, dt)
    except MemoryError:
        raise MemoryError(f"{layer}: cannot allocate a parameter of shape {tuple(shape)} {dt} "
                          f"({nbytes} bytes)") from None


def _buffer_array(value: Any, name: str) -> Optional[np.ndarray]:
    if value is None:
        return None
    if isinstance(value, _tg.Variable):
        value = value.data
    arr = np.array(value, copy=True)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"buffer {name!r} must be a numeric array, got dtype {arr.dtype}")
    return arr


def _zero_grads(params: Iterable[Any], set_to_none: bool) -> None:
    for p in params:
        if set_to_none:
            p.grad = None
        elif p.grad is not None:
            p.grad[...] = 0


def _is_param(value: object) -> bool:
    return isinstance(value, _tg.Variable) and value.requires_grad


def _hidden_layers(value: object, depth: int = 0) -> Optional[str]:
    """What a plain list/tuple/dict/set attribute holds that would not be registered (or None)."""
    if depth > 3 or not isinstance(value, (list, tuple, dict, set, frozenset)):
        return None
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, Layer):
            return "Layer"
        if _is_param(item):
            return "parameter"
        inner = _hidden_layers(item, depth + 1)
        if inner:
            return inner
    return None


def _refuse_container(owner: "Layer", name: str, value: object) -> None:
    what = _hidden_layers(value)
    if what is None:
        return
    kind = type(value).__name__
    if what == "Layer":
        fix = ("nn.ModuleDict({...})" if isinstance(value, dict) else "nn.ModuleList([...])")
    else:
        fix = "one attribute per parameter"
    raise TypeError(f"{type(owner).__name__}.{name}: a plain {kind} holding a {what} is not registered, so "
                    f"parameters(), state_dict() and the optimizer would silently skip it; use {fix} instead")


class _ParameterMeta(type):
    def __instancecheck__(cls, obj: object) -> bool:
        return _is_param(obj)


class Parameter(metaclass=_ParameterMeta):
    """``nn.Parameter(data)``: a trainable ``tapegrad.Variable`` (``requires_grad=True``), copied from ``data``.

    It is a plain ``Variable`` (so every fast path applies); ``isinstance(v,
    nn.Parameter)`` is true for any Variable that requires grad. Assigned as a
    ``Layer`` attribute, it is registered as a parameter.
    """

    def __new__(cls, data: Any, requires_grad: bool = True, dtype: Any = None) -> Any:
        if isinstance(data, _tg.Variable):
            data = data.data
        arr = np.array(data, dtype=dtype, copy=True)
        if arr.dtype.kind in "iub":
            arr = arr.astype(np.float64)
        return _tg.Variable(arr, requires_grad=requires_grad)


class Layer:
    """Base class of layers.

    Assigning an attribute registers it: a ``Variable`` that requires grad
    (e.g. an ``nn.Parameter``) becomes a parameter, a ``Layer`` a sub-layer,
    both in assignment order; :meth:`register_buffer` adds non-trainable
    arrays (running statistics) that ``state_dict()`` saves but
    ``parameters()`` does not list. Layers kept in a plain list, tuple or dict
    are refused with a ``TypeError`` (they would not be registered, as in
    PyTorch, where the optimizer then silently never trains them): use
    :class:`ModuleList` / :class:`ModuleDict` (an attribute whose name starts
    with ``_`` may hold them unregistered on purpose). Subclasses implement
    ``forward``; calling the layer calls ``forward``.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_layers", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)

    # Parameters and sub-layers are kept in the registries (_parameters,
    # _layers: order and traversal) and mirrored in the instance __dict__, so
    # that reading ``self.weight`` in a forward is a plain attribute lookup
    # rather than a __getattr__ fallback (three per Linear call, ~1 us each).
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        if name in self._buffers:
            self._buffers[name] = _buffer_array(value, name)
            object.__setattr__(self, name, self._buffers[name])
            return
        params, layers = self._parameters, self._layers
        params.pop(name, None)
        layers.pop(name, None)
        if _is_param(value):
            params[name] = value
        elif isinstance(value, Layer):
            layers[name] = value
        elif not name.startswith("_"):  # a private attribute may hold unregistered layers on purpose
            _refuse_container(self, name, value)
        object.__setattr__(self, name, value)

    def _set_registered(self, name: str, value: Any) -> None:
        """Swap a registered parameter's value (functional_call, to), registry and mirror together."""
        self._parameters[name] = value
        self.__dict__[name] = value

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._layers.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent.discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Any, persistent: bool = True) -> None:
        """Register a non-trainable array (e.g. BatchNorm's running mean) as ``self.<name>``.

        Buffers are NumPy arrays (or None), saved by ``state_dict()`` (unless
        ``persistent=False``), converted by ``to(dtype)``, never listed by
        ``parameters()`` and never updated by an optimizer."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"register_buffer: name must be an identifier, got {name!r}")
        if name in self._parameters or name in self._layers:
            raise KeyError(f"register_buffer: {name!r} is already a parameter or sub-layer of {type(self).__name__}")
        if "_buffers" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before register_buffer({name!r})")
        self._buffers[name] = _buffer_array(value, name)
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, self._buffers[name])

    # -- traversal ----------------------------------------------------------
    def _check_unregistered(self) -> None:
        # A list assigned empty and filled later escaped the check in __setattr__.
        for name, value in self.__dict__.items():
            if isinstance(value, (list, tuple, dict, set)) and not name.startswith("_"):
                _refuse_container(self, name, value)

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Any]]:
        """(dotted name, parameter) pairs, depth first in registration order (shared ones once)."""
        seen = set()
        for name, p in self._named_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters(self, prefix: str) -> Iterator[Tuple[str, Any]]:
        self._check_unregistered()
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, layer in self._layers.items():
            yield from layer._named_parameters(prefix + name + ".")

    def parameters(self) -> List[Any]:
        """The parameters (Variables) of this layer and its sub-layers, as a list."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[Tuple[str, np.ndarray]]:
        """(dotted name, array) pairs of the registered buffers (None-valued ones skipped)."""
        for lname, layer in self.named_layers():
            for name, b in layer._buffers.items():
                if b is not None:
                    yield prefix + (lname + "." if lname else "") + name, b

    def buffers(self) -> List[np.ndarray]:
        """The registered buffers (arrays) of this layer and its sub-layers."""
        return [b for _, b in self.named_buffers()]

    def children(self) -> List["Layer"]:
        """The direct sub-layers."""
        return list(self._layers.values())

    def named_layers(self, prefix: str = "") -> Iterator[Tuple[str, "Layer"]]:
        """(dotted name, layer) pairs of this layer ("") and every sub-layer, depth first."""
        self._check_unregistered()
        yield prefix.rstrip("."), self
        for name, layer in self._layers.items():
            yield from layer.named_layers(prefix + name + ".")

    named_modules = named_layers

    def modules(self) -> List["Layer"]:
        """This layer and every sub-layer, depth first (PyTorch's name)."""
        return [layer for _, layer in self.named_layers()]

    def apply(self, fn: Callable[["Layer"], Any]) -> "Layer":
        """Call ``fn(layer)`` on every sub-layer, then on this one (e.g. custom initialisation); returns self."""
        for layer in self._layers.values():
            layer.apply(fn)
        fn(self)
        return self

    def num_parameters(self) -> int:
        """The number of trainable numbers."""
        return int(sum(p.size for p in self.parameters()))

    # -- modes, gradients, dtype --------------------------------------------
    def train(self, mode: bool = True) -> "Layer":
        """Set train mode (``mode=True``) or eval mode on this layer and its sub-layers; returns self."""
        for _, layer in self.named_layers():
            object.__setattr__(layer, "training", bool(mode))
        return self

    def eval(self) -> "Layer":
        """Eval mode (Dropout off, BatchNorm uses its running statistics); returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the parameters' gradients: drop them (default) or fill them with zeros."""
        _zero_grads(self.parameters(), set_to_none)

    def requires_grad_(self, requires_grad: bool = True) -> "Layer":
        """Freeze (False) or unfreeze the parameters in place; frozen ones get no gradient. Returns self."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def to(self, dtype: Any) -> "Layer":
        """Convert every parameter and floating buffer to ``dtype`` (float32 or float64); returns self.

        Parameters of another dtype are replaced by new Variables (a
        Variable's dtype is fixed), so create the optimizer after ``to``."""
        dt = _dtype(dtype)
        for _, layer in self.named_layers():
            for name, p in list(layer._parameters.items()):
                if p.dtype != dt:
                    q = _tg.Variable(np.array(p.data, dtype=dt), requires_grad=p.requires_grad)
                    layer._set_registered(name, q)
            for name, b in list(layer._buffers.items()):
                if b is not None and b.dtype.kind == "f" and b.dtype != dt:
                    layer._buffers[name] = b.astype(dt)
                    object.__setattr__(layer, name, layer._buffers[name])
            if hasattr(layer, "dtype") and isinstance(layer.__dict__.get("dtype"), np.dtype):
                object.__setattr__(layer, "dtype", dt)
        return self

    def float(self) -> "Layer":
        """``to(np.float32)``."""
        return self.to(np.float32)

    def double(self) -> "Layer":
        """``to(np.float64)``."""
        return self.to(np.float64)

    # -- state --------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """An ordered dict of name -> NumPy array (copies): the parameters, then the persistent buffers."""
        state = OrderedDict((name, np.array(p.data, copy=True)) for name, p in self.named_parameters())
        for lname, layer in self.named_layers():
            for name, b in layer._buffers.items():
                if b is not None and name not in layer._non_persistent:
                    state[(lname + "." if lname else "") + name] = np.array(b, copy=True)
        return state

    def _state_targets(self) -> "OrderedDict[str, Tuple[Any, Optional[Tuple[Layer, str]]]]":
        targets: "OrderedDict[str, Tuple[Any, Optional[Tuple[Layer, str]]]]" = OrderedDict(
            (name, (p, None)) for name, p in self.named_parameters())
        for lname, layer in self.named_layers():
            for name, b in layer._buffers.items():
                if b is not None and name not in layer._non_persistent:
                    targets[(lname + "." if lname else "") + name] = (b, (layer, name))
        return targets

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Dict[str, List[str]]:
        """Copy arrays into the parameters and buffers (in place: optimizers keep working).

        Everything is validated before anything is written: with ``strict``,
        a missing or unexpected name raises ``KeyError``; a shape mismatch
        raises ``ValueError``; either way nothing is modified. Returns
        ``{"missing": [...], "unexpected": [...]}``.
        """
        own = self._state_targets()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing parameter(s): " + ", ".join(missing))
            if unexpected:
                parts.append("unexpected parameter(s): " + ", ".join(unexpected))
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))
        staged = []
        for name, (target, _) in own.items():
            if name not in state:
                continue
            value = state[name]
            arr = np.asarray(value.data if isinstance(value, _tg.Variable) else value)
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"load_state_dict: parameter {name!r} must be numeric, got dtype {arr.dtype}")
            if tuple(arr.shape) != tuple(target.shape):
                raise ValueError(f"load_state_dict: parameter {name!r} has shape {tuple(target.shape)} in the "
                                 f"model but {tuple(arr.shape)} in the state")
            staged.append((target, arr))
        for target, arr in staged:
            if isinstance(target, np.ndarray):
                target[...] = arr
            else:
                target.data[...] = arr
        return {"missing": missing, "unexpected": unexpected}

    # -- calling ------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The layer's computation (subclasses implement it); ``layer(*args)`` calls it."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    # Calling a layer is calling its forward. As a property, layer(x) finds
    # self.forward by normal attribute lookup (so a subclass's or mixin's
    # override, or a forward patched on the instance or the class, is the one
    # called) and calls it directly: one Python frame per layer, not two with
    # argument packing in between (~0.4 us per layer, a tenth of a small
    # MLP's training step). A subclass may still define its own __call__.
    __call__ = property(lambda self: self.forward, doc="layer(*args) calls layer.forward(*args)")

    # -- repr ---------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of ``repr(layer)`` (settings such as sizes); override it."""
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._layers:
            n = self.num_parameters()
            return head + ")" + (f"  # {n:,} params" if n else "")
        lines = [head]
        for name, layer in self._layers.items():
            sub = repr(layer).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        lines.append(f")  # {self.num_parameters():,} params")
        return "\n".join(lines)


def functional_call(layer, params, *args, **kwargs):
    """Run ``layer(*args)`` with its parameters temporarily replaced by ``params``.

    ``params`` maps dotted parameter names (as in ``named_parameters``) to
    Variables of either engine (or arrays, wrapped as constants). Every name
    must be given. The layer's own parameters are restored afterwards.
    """
    owners = {}
    for name, _ in layer.named_parameters():
        *path, attr = name.split(".")
        owner = layer
        for part in path:
            owner = owner._layers[part]
        owners[name] = (owner, attr)
    missing = [k for k in owners if k not in params]
    unexpected = [k for k in params if k not in owners]
    if missing or unexpected:
        raise KeyError(f"functional_call: missing {missing}, unexpected {unexpected}")
    saved = [(owner, attr, owner._parameters[attr]) for owner, attr in owners.values()]
    try:
        for name, (owner, attr) in owners.items():
            owner._set_registered(attr, _as_variable(params[name]))
        return layer(*args, **kwargs)
    finally:
        for owner, attr, p in saved:
            owner._set_registered(attr, p)


class Identity(Layer):
    """Returns its input unchanged (a placeholder layer)."""

    def forward(self, x):
        return x


class Linear(Layer):
    """``y = x @ weight + bias``; ``weight`` has shape ``(in_features, out_features)``.

    ``init``: ``"he"`` (normal, std sqrt(2/in), for ReLU-like activations) or
    ``"xavier"`` (uniform, for tanh/sigmoid); the bias starts at zero. The
    random numbers come from ``rng`` (a Generator or an int seed) or, by
    default, the global generator reset by ``tapegrad.manual_seed``.
    Parameters are float32 unless ``dtype=np.float64`` (as in PyTorch).
    """

    def __init__(self, in_features, out_features, bias=True, *, init="he", rng=None, dtype=np.float32):
        super().__init__()
        for what, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Linear: {what} must be a positive integer, got {v!r}")
        if init not in INITS:
            raise ValueError(f"Linear: unknown init {init!r}: expected one of {', '.join(map(repr, INITS))}")
        dt = _dtype(dtype)
        self.in_features, self.out_features = int(in_features), int(out_features)
        shape = (self.in_features, self.out_features)
        w = _allocate("Linear", lambda shape, dt: initialize(init, shape, *shape, get_rng(rng), dt), shape, dt)
        self.weight = _tg.Variable(w, requires_grad=True)
        if bias:
            self.bias = _tg.Variable(np.zeros(self.out_features, dtype=dt), requires_grad=True)
        else:
            self.bias = None

    def forward(self, x):
        # One primitive (matmul + bias add fused) on the engine of the input.
        try:
            if type(x) is _Variable:
                return _core_linear(x, self.weight, self.bias)
            return engine_of(x).linear(x, self.weight, self.bias)
        except ValueError:
            shape = tuple(np.shape(x.data if hasattr(x, "data") else x))
            if shape[-1:] != (self.in_features,):
                raise ValueError(f"Linear: expected inputs with last dimension {self.in_features}, "
                                 f"got shape {shape}") from None
            raise

    def extra_repr(self):
        return f"{self.in_features} -> {self.out_features}, bias={self.bias is not None}"


class ReLU(Layer):
    """``max(x, 0)``, elementwise (gradient 0 at 0)."""

    def forward(self, x):
        return _tg.relu(x) if type(x) is _Variable else engine_of(x).relu(x)


class LeakyReLU(Layer):
    """``x`` for x > 0, ``negative_slope * x`` otherwise (gradient at 0: negative_slope)."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):  # (h92-param: the primitive)
        if type(x) is _Variable:
            return _tg.leaky_relu(x, self.negative_slope)
        return engine_of(x).leaky_relu(_as_variable(x), self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Layer):
    """``tanh(x)``, elementwise."""

    def forward(self, x):
        return _tg.tanh(x) if type(x) is _Variable else engine_of(x).tanh(x)


class Sigmoid(Layer):
    """``1 / (1 + exp(-x))``, elementwise."""

    def forward(self, x):
        return _tg.sigmoid(x) if type(x) is _Variable else engine_of(x).sigmoid(x)


class GELU(Layer):
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def forward(self, x):
        # (the primitive: x sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)), the same function, one kernel each way)
        return _tg.gelu(x) if type(x) is _Variable else engine_of(x).gelu(x)


class Softmax(Layer):
    """``exp(x) / sum(exp(x))`` along ``axis`` (default the last)."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        return engine_of(x).softmax(x, axis=self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"


class Dropout(Layer):
    """Zeroes each element with probability ``p`` in train mode and scales the rest by 1/(1-p).

    Identity in eval mode (and when p == 0)."""

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self._rng = rng

    def forward(self, x):
        x = _as_variable(x)
        if not self.training or self.p == 0.0:
            return x
        rng = get_rng(self._rng)
        if isinstance(self._rng, int):  # keep one stream per layer, not a fresh seed per call
            self._rng = rng
        keep = rng.random(x.shape) >= self.p
        return x * (keep.astype(x.dtype) / x.dtype.type(1.0 - self.p))

    def extra_repr(self):
        return f"p={self.p}"


class LayerNorm(Layer):
    """Normalises over the last axis: (x - mean) / sqrt(var + eps) * weight + bias."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, dtype=np.float32):
        super().__init__()
        if not isinstance(normalized_shape, (int, np.integer)) or normalized_shape <= 0:
            raise ValueError(f"LayerNorm: normalized_shape must be a positive integer, got {normalized_shape!r}")
        dt = _dtype(dtype)
        self.normalized_shape, self.eps = int(normalized_shape), float(eps)
        if elementwise_affine:
            n = (self.normalized_shape,)
            self.weight = _tg.Variable(_allocate("LayerNorm", np.ones, n, dt), requires_grad=True)
            self.bias = _tg.Variable(_allocate("LayerNorm", np.zeros, n, dt), requires_grad=True)
        else:
            self.weight = self.bias = None

    def forward(self, x):
        x = _as_variable(x)
        if x.shape[-1:] != (self.normalized_shape,):
            raise ValueError(f"LayerNorm: expected last dimension {self.normalized_shape}, got shape {x.shape}")
        E = engine_of(x)
        c = x - E.mean(x, axis=-1, keepdims=True)
        var = E.mean(c * c, axis=-1, keepdims=True)
        y = c / E.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Sequential(Layer):
    """Layers applied in order; sub-layers are named "0", "1", ..."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: argument {i} is a {type(layer).__name__}, not a Layer")
            setattr(self, str(i), layer)

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers.values())

    def __getitem__(self, i):
        layers = list(self._layers.values())
        if isinstance(i, slice):
            return Sequential(*layers[i])
        return layers[i]

    def forward(self, x):
        for layer in self._layers.values():
            x = layer(x)
        return x


ACTIVATIONS = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid, "gelu": GELU,
    "softmax": Softmax, "identity": Identity,
}
_XAVIER_ACTIVATIONS = ("tanh", "sigmoid", "softmax", "identity")


def _activation(name, what):
    if isinstance(name, Layer):
        return name
    if name not in ACTIVATIONS:
        raise ValueError(f"MLP: unknown {what} {name!r}: expected one of {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]()


class MLP(Sequential):
    """A multi-layer perceptron: ``Linear(sizes[0], sizes[1])``, activation, ..., ``Linear(sizes[-2], sizes[-1])``.

    ``activation`` is one of ``relu leaky_relu tanh sigmoid gelu identity``;
    ``output_activation`` (default None: raw outputs, e.g. logits) is applied
    after the last Linear. ``dropout`` > 0 adds ``Dropout`` after each hidden
    activation. ``init`` defaults to "he" for ReLU-like activations and
    "xavier" for tanh/sigmoid. ``dtype``: float32 (default, as PyTorch and the CLI) or float64.
    """

    def __init__(self, sizes, activation="relu", output_activation=None, dropout=0.0, *, init=None, rng=None,
                 dtype=np.float32):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        for s in sizes:
            if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s <= 0:
                raise ValueError(f"MLP: sizes must be positive integers, got {sizes}")
        _activation(activation, "activation")
        if output_activation is not None:
            _activation(output_activation, "output_activation")
        if init is None:
            init = "xavier" if activation in _XAVIER_ACTIVATIONS else "he"
        rng = get_rng(rng)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b, init=init, rng=rng, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(_activation(activation, "activation"))
                if dropout:
                    layers.append(Dropout(dropout, rng=rng))
        if output_activation is not None:
            layers.append(_activation(output_activation, "output_activation"))
        super().__init__(*layers)
        self.sizes = sizes

    def extra_repr(self):
        return "-".join(map(str, self.sizes))


def _check_layer(value: Any, what: str) -> "Layer":
    if not isinstance(value, Layer):
        raise TypeError(f"{what}: expected a Layer, got a {type(value).__name__}")
    return value


class ModuleList(Layer):
    """A list of layers, registered as sub-layers named "0", "1", ... (PyTorch's ``nn.ModuleList``).

    Use it instead of a plain list for layers built in a loop; it has no
    ``forward`` of its own: iterate over it in the owner's forward."""

    def __init__(self, layers: Optional[Iterable[Layer]] = None) -> None:
        super().__init__()
        if layers is not None:
            self.extend(layers)

    def _reindex(self, layers: List[Layer]) -> None:
        self._layers.clear()
        for i, layer in enumerate(layers):
            self._layers[str(i)] = layer

    def append(self, layer: Layer) -> "ModuleList":
        """Add ``layer`` at the end; returns self."""
        self._layers[str(len(self._layers))] = _check_layer(layer, "ModuleList.append")
        return self

    def extend(self, layers: Iterable[Layer]) -> "ModuleList":
        """Append every layer of ``layers``; returns self."""
        if isinstance(layers, Layer) and not isinstance(layers, (ModuleList, Sequential)):
            raise TypeError("ModuleList.extend: expected an iterable of Layers, got a single Layer")
        for layer in list(layers):
            self.append(layer)
        return self

    def insert(self, index: int, layer: Layer) -> None:
        """Insert ``layer`` before position ``index``."""
        layers = list(self._layers.values())
        layers.insert(index, _check_layer(layer, "ModuleList.insert"))
        self._reindex(layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._layers.values()))

    def __getitem__(self, i: Any) -> Any:
        layers = list(self._layers.values())
        if isinstance(i, slice):
            return ModuleList(layers[i])
        return layers[i]

    def __setitem__(self, i: int, layer: Layer) -> None:
        layers = list(self._layers.values())
        layers[i] = _check_layer(layer, "ModuleList.__setitem__")
        self._reindex(layers)

    def __delitem__(self, i: Any) -> None:
        layers = list(self._layers.values())
        del layers[i]
        self._reindex(layers)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward: iterate over it in the owner's forward")


class ModuleDict(Layer):
    """A dict of named layers, registered as sub-layers under their keys (PyTorch's ``nn.ModuleDict``).

    Keys are strings without dots; insertion order is kept."""

    def __init__(self, layers: Optional[Any] = None) -> None:
        super().__init__()
        if layers is not None:
            self.update(layers)

    def __setitem__(self, key: str, layer: Layer) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without '.', got {key!r}")
        self._layers[key] = _check_layer(layer, f"ModuleDict[{key!r}]")

    def __getitem__(self, key: str) -> Layer:
        return self._layers[key]

    def __delitem__(self, key: str) -> None:
        del self._layers[key]

    def __contains__(self, key: object) -> bool:
        return key in self._layers

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._layers))

    def keys(self) -> List[str]:
        """The keys, in insertion order."""
        return list(self._layers.keys())

    def values(self) -> List[Layer]:
        """The layers, in insertion order."""
        return list(self._layers.values())

    def items(self) -> List[Tuple[str, Layer]]:
        """(key, layer) pairs, in insertion order."""
        return list(self._layers.items())

    def update(self, layers: Any) -> None:
        """Add (or replace) layers from a mapping or an iterable of (key, layer) pairs."""
        pairs = layers.items() if hasattr(layers, "items") else layers
        for key, layer in pairs:
            self[key] = layer

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward: index it in the owner's forward")


class Flatten(Layer):
    """Merges axes ``start_axis..end_axis`` into one: ``(N, C, L) -> (N, C*L)`` by default."""

    def __init__(self, start_axis: int = 1, end_axis: int = -1) -> None:
        super().__init__()
        self.start_axis, self.end_axis = int(start_axis), int(end_axis)

    def forward(self, x: Any) -> Any:
        x = _as_variable(x)
        nd = x.ndim
        s, e = self.start_axis % max(nd, 1), self.end_axis % max(nd, 1)
        if not (-nd <= self.start_axis < nd and -nd <= self.end_axis < nd) or s > e:
            raise ValueError(f"Flatten: axes {self.start_axis}..{self.end_axis} are not a valid range "
                             f"for an input of shape {x.shape}")
        shape = x.shape[:s] + (int(np.prod(x.shape[s:e + 1], dtype=np.int64)),) + x.shape[e + 1:]
        return engine_of(x).reshape(x, shape)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


class Embedding(Layer):
    """A lookup table: ``Embedding(n, d)(indices)`` is ``weight[indices]``, shape ``indices.shape + (d,)``.

    ``weight`` ``(num_embeddings, embedding_dim)`` starts N(0, 1) (PyTorch's
    default). ``padding_idx``: that row starts at zero and gets no gradient.
    Indices are integers (an array, list or a Variable's data) in ``[0, n)``;
    repeated indices accumulate their gradients."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None, *,
                 rng: Any = None, dtype: Any = np.float32) -> None:
        super().__init__()
        for what, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Embedding: {what} must be a positive integer, got {v!r}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be in [-{num_embeddings}, {num_embeddings}), "
                                 f"got {padding_idx}")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        shape = (self.num_embeddings, self.embedding_dim)
        w = _allocate("Embedding", lambda shape, dt: get_rng(rng).normal(0.0, 1.0, shape).astype(dt), shape,
                      _dtype(dtype))
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = _tg.Variable(w, requires_grad=True)

    def forward(self, indices: Any) -> Any:
        idx = np.asarray(indices.data if hasattr(indices, "data") and not isinstance(indices, np.ndarray)
                         else indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise IndexError(f"Embedding: indices must be in [0, {self.num_embeddings}), "
                             f"got values in [{idx.min()}, {idx.max()}]")
        w = self.weight
        out = w[idx.astype(np.intp)]
        if self.padding_idx is not None:
            E = engine_of(w)
            keep = np.broadcast_to((idx != self.padding_idx)[..., None], out.shape)
            out = E.where(keep, out, E.Variable(np.broadcast_to(w.data[self.padding_idx], out.shape).copy()))
        return out

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class BatchNorm1d(Layer):
    """Batch normalisation over the batch (and length) axes of ``(N, C)`` or ``(N, C, L)`` inputs.

    Train mode normalises with the batch's mean and biased variance and
    updates the buffers ``running_mean``/``running_var`` (unbiased variance)
    as ``(1 - momentum) * running + momentum * batch`` (``momentum=None``: a
    cumulative average); eval mode normalises with the running statistics.
    ``affine`` adds a learnable per-channel ``weight`` (ones) and ``bias``
    (zeros); ``track_running_stats=False`` always uses batch statistics.
    PyTorch's definition, checked against it in ``tests/test_nn_layers_torch.py``."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, dtype: Any = np.float32) -> None:
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features <= 0:
            raise ValueError(f"BatchNorm1d: num_features must be a positive integer, got {num_features!r}")
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"BatchNorm1d: eps must be a positive number, got {eps!r}")
        if momentum is not None and not (isinstance(momentum, (int, float)) and 0.0 <= momentum <= 1.0):
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1] or None, got {momentum!r}")
        dt = _dtype(dtype)
        self.num_features, self.eps = int(num_features), float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.weight: Optional[_Variable]
        self.bias: Optional[_Variable]
        if self.affine:
            self.weight = _tg.Variable(_allocate("BatchNorm1d", np.ones, (self.num_features,), dt), requires_grad=True)
            self.bias = _tg.Variable(_allocate("BatchNorm1d", np.zeros, (self.num_features,), dt), requires_grad=True)
        else:
            self.weight = self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dt))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dt))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: Any) -> Any:
        x = _as_variable(x)
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d: expected input of shape (N, {self.num_features}) or "
                             f"(N, {self.num_features}, L), got {x.shape}")
        E = engine_of(x)
        axes = (0,) if x.ndim == 2 else (0, 2)
        shape = (1, self.num_features) + ((1,) if x.ndim == 3 else ())
        if self.training or not self.track_running_stats:
            n = x.size // self.num_features
            if self.training and n <= 1:
                raise ValueError(f"BatchNorm1d: expected more than 1 value per channel when training, "
                                 f"got input of shape {x.shape}")
            mean = E.mean(x, axis=axes, keepdims=True)
            c = x - mean
            var = E.mean(c * c, axis=axes, keepdims=True)
            if self.training and self.track_running_stats:
                self._update_running(np.asarray(mean.data).reshape(-1), np.asarray(var.data).reshape(-1), n)
            y = c / E.sqrt(var + self.eps)
        else:
            rm = self.running_mean.reshape(shape).astype(x.dtype)
            inv = (1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)).reshape(shape).astype(x.dtype)
            y = (x - E.Variable(rm)) * E.Variable(inv)
        if self.weight is not None:
            y = y * E.reshape(self.weight, shape) + E.reshape(self.bias, shape)
        return y

    def _update_running(self, mean: np.ndarray, var: np.ndarray, n: int) -> None:
        self.num_batches_tracked[...] += 1
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (n / (n - 1))
        self.running_mean[...] = (1 - m) * self.running_mean + m * mean
        self.running_var[...] = (1 - m) * self.running_var + m * unbiased

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
