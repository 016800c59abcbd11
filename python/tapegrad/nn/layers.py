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
import math
from collections import OrderedDict

import numpy as np

import tapegrad as _tg

from .init import INITS, get_rng, initialize

__all__ = [
    "Layer", "Linear", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "Softmax", "Dropout", "LayerNorm",
    "Sequential", "MLP", "Identity", "functional_call", "engine_of", "ACTIVATIONS",
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


def _is_param(value):
    return isinstance(value, _tg.Variable) and value.requires_grad


class Layer:
    """Base class of layers.

    ``Variable`` attributes that require grad become parameters and ``Layer``
    attributes become sub-layers, both registered in assignment order.
    Subclasses implement ``forward``; calling the layer calls ``forward``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_layers", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration -------------------------------------------------------
    # Parameters and sub-layers are kept in the registries (_parameters,
    # _layers: order and traversal) and mirrored in the instance __dict__, so
    # that reading ``self.weight`` in a forward is a plain attribute lookup
    # rather than a __getattr__ fallback (three per Linear call, ~1 us each).
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        params, layers = self._parameters, self._layers
        params.pop(name, None)
        layers.pop(name, None)
        if _is_param(value):
            params[name] = value
        elif isinstance(value, Layer):
            layers[name] = value
        object.__setattr__(self, name, value)

    def _set_registered(self, name, value):
        """Swap a registered parameter's value (functional_call), registry and mirror together."""
        self._parameters[name] = value
        self.__dict__[name] = value

    def __getattr__(self, name):
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._layers.pop(name, None)
        object.__delattr__(self, name)

    # -- traversal ----------------------------------------------------------
    def named_parameters(self, prefix=""):
        """(dotted name, parameter) pairs, depth first in registration order."""
        seen = set()
        for name, p in self._named_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters(self, prefix):
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, layer in self._layers.items():
            yield from layer._named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def children(self):
        return list(self._layers.values())

    def named_layers(self, prefix=""):
        yield prefix.rstrip("."), self
        for name, layer in self._layers.items():
            yield from layer.named_layers(prefix + name + ".")

    def num_parameters(self):
        return int(sum(p.size for p in self.parameters()))

    # -- modes and gradients ------------------------------------------------
    def train(self, mode=True):
        for _, layer in self.named_layers():
            object.__setattr__(layer, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # -- state --------------------------------------------------------------
    def state_dict(self):
        """An ordered dict of parameter name -> NumPy array (a copy)."""
        return OrderedDict((name, np.array(p.data, copy=True)) for name, p in self.named_parameters())

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters (in place: optimizers keep working).

        Everything is validated before anything is written: with ``strict``,
        a missing or unexpected name raises ``KeyError``; a shape mismatch
        raises ``ValueError``; either way no parameter is modified.
        """
        own = OrderedDict(self.named_parameters())
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
        for name, p in own.items():
            if name not in state:
                continue
            arr = np.asarray(state[name])
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"load_state_dict: parameter {name!r} must be numeric, got dtype {arr.dtype}")
            if tuple(arr.shape) != p.shape:
                raise ValueError(f"load_state_dict: parameter {name!r} has shape {p.shape} in the model "
                                 f"but {tuple(arr.shape)} in the state")
            staged.append((p, arr))
        for p, arr in staged:
            p.data[...] = arr
        return {"missing": missing, "unexpected": unexpected}

    # -- calling ------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    # Calling a layer is calling its forward. As a property, layer(x) finds
    # self.forward by normal attribute lookup (so a subclass's or mixin's
    # override, or a forward patched on the instance or the class, is the one
    # called) and calls it directly: one Python frame per layer, not two with
    # argument packing in between (~0.4 us per layer, a tenth of a small
    # MLP's training step). A subclass may still define its own __call__.
    __call__ = property(lambda self: self.forward, doc="layer(*args) calls layer.forward(*args)")

    # -- repr ---------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
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
    def forward(self, x):
        return x


class Linear(Layer):
    """``y = x @ weight + bias``; ``weight`` has shape ``(in_features, out_features)``.

    ``init``: ``"he"`` (normal, std sqrt(2/in), for ReLU-like activations) or
    ``"xavier"`` (uniform, for tanh/sigmoid); the bias starts at zero. The
    random numbers come from ``rng`` (a Generator or an int seed) or, by
    default, the global generator reset by ``tapegrad.manual_seed``.
    """

    def __init__(self, in_features, out_features, bias=True, *, init="he", rng=None, dtype=np.float64):
        super().__init__()
        for what, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Linear: {what} must be a positive integer, got {v!r}")
        if init not in INITS:
            raise ValueError(f"Linear: unknown init {init!r}: expected one of {', '.join(map(repr, INITS))}")
        dt = _dtype(dtype)
        self.in_features, self.out_features = int(in_features), int(out_features)
        w = initialize(init, (self.in_features, self.out_features), self.in_features, self.out_features,
                       get_rng(rng), dt)
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
    def forward(self, x):
        return _tg.relu(x) if type(x) is _Variable else engine_of(x).relu(x)


class LeakyReLU(Layer):
    """``x`` for x > 0, ``negative_slope * x`` otherwise (gradient at 0: negative_slope)."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        x = _as_variable(x)
        return engine_of(x).where(x.data > 0, x, x * self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Layer):
    def forward(self, x):
        return _tg.tanh(x) if type(x) is _Variable else engine_of(x).tanh(x)


class Sigmoid(Layer):
    def forward(self, x):
        return _tg.sigmoid(x) if type(x) is _Variable else engine_of(x).sigmoid(x)


class GELU(Layer):
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def forward(self, x):
        x = _as_variable(x)
        E = engine_of(x)
        return 0.5 * x * (1.0 + E.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


class Softmax(Layer):
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

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, dtype=np.float64):
        super().__init__()
        if not isinstance(normalized_shape, (int, np.integer)) or normalized_shape <= 0:
            raise ValueError(f"LayerNorm: normalized_shape must be a positive integer, got {normalized_shape!r}")
        dt = _dtype(dtype)
        self.normalized_shape, self.eps = int(normalized_shape), float(eps)
        if elementwise_affine:
            self.weight = _tg.Variable(np.ones(self.normalized_shape, dtype=dt), requires_grad=True)
            self.bias = _tg.Variable(np.zeros(self.normalized_shape, dtype=dt), requires_grad=True)
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
    "xavier" for tanh/sigmoid.
    """

    def __init__(self, sizes, activation="relu", output_activation=None, dropout=0.0, *, init=None, rng=None,
                 dtype=np.float64):
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
