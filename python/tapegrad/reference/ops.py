"""The ops of the reference engine, written from the math: each derivative is
stated once and used by both sweeps.

* Elementwise ops are lines of ``UNARY`` / ``BINARY``: the forward on arrays
  and the partial derivatives.  A partial's parameter *names* say what it
  needs (inputs ``x`` or ``a``, ``b``; output ``y``), and exactly those are
  saved for backward.  It returns a Variable (built with this engine's ops, so
  it can be differentiated again), an array of constants or a number.  One
  class, ``Elementwise``, makes the VJP ``unbroadcast(g * d)`` and the JVP
  ``t * d`` from them, and the public function and Variable method are generated.
* Linear ops (``_Linear``) accept extra leading (batch) axes, so their JVP is
  the op itself applied to the tangents; only the VJP (the transpose) is
  written.  Axes are stored negative (counted from the end) for that reason.
* The other ops state their derivative once, in a method both rules call.

Tangents carry one leading batch axis (k directions).  Kinks (docs/API.md):
relu'(0) = abs'(0) = 0, maximum/minimum and max/min split ties evenly, clip is
inclusive, d(a**b)/da = 0 where b == 0, d(a**b)/db = 0 where a == 0, b >= 0.
NB: ``sum``, ``max``, ``min`` and ``abs`` shadow the builtins here.
"""

import builtins
import inspect
import math

import numpy as np

from .engine import OUTPUT, Function, Variable, _check_float_dtype

# -- helpers ------------------------------------------------------------------------


def as_variable(x, dtype=None):
    return x if isinstance(x, Variable) else Variable(x, dtype=dtype)


def _operands(*xs):
    """Operands as Variables; Python scalars are weak (take the others' dtype)."""
    weak = [type(x) in (bool, int, float) for x in xs]     # np.float64 subclasses float
    strong = [as_variable(x) for x, w in zip(xs, weak) if not w]
    dtype = np.result_type(*[v.dtype for v in strong]) if strong else np.float64
    strong = iter(strong)
    return [Variable(x, dtype=dtype) if w else next(strong) for x, w in zip(xs, weak)]


def _shapes_text(shapes):
    shapes = [str(tuple(s)) for s in shapes]
    return ", ".join(shapes[:-1]) + " and " + shapes[-1] if len(shapes) > 1 else shapes[0]


def _broadcast_shapes(name, *shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{name}: shapes {_shapes_text(shapes)} cannot be "
                         f"broadcast together") from None


def _is_int(a):
    return isinstance(a, (int, np.integer)) and not isinstance(a, bool)


def _int_tuple(name, what, value):
    try:
        items = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    except TypeError:
        raise TypeError(f"{name}: {what} must be an int or a tuple of ints, got {value!r}") from None
    for a in items:
        if not _is_int(a):
            raise TypeError(f"{name}: {what} must contain only ints, got {a!r}")
    return tuple(int(a) for a in items)


def _normalize_axes(name, axis, shape):
    """``axis`` (None, int or tuple) as a sorted tuple of NEGATIVE axes of ``shape``."""
    ndim = len(shape)
    try:
        axes = range(ndim) if axis is None else (axis,) if _is_int(axis) else tuple(axis)
    except TypeError:
        axes = (None,)
    result = set()
    for a in axes:
        if not _is_int(a):
            raise TypeError(f"{name}: axis must be None, an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}: axis {a} is out of bounds for shape {tuple(shape)}")
        if int(a) % ndim - ndim in result:
            raise ValueError(f"{name}: repeated axis in {axis!r} for shape {tuple(shape)}")
        result.add(int(a) % ndim - ndim)
    return tuple(sorted(result))


def _keepdims_shape(shape, axes):
    """``shape`` with the (negative) ``axes`` set to 1."""
    return tuple(1 if i - len(shape) in axes else s for i, s in enumerate(shape))


def _mask(condition, like):
    """A boolean array as 0/1 constants of ``like``'s dtype."""
    return np.asarray(condition).astype(like.dtype)


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the transpose of NumPy broadcasting."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return sum(grad, axis=axes, keepdims=True).reshape(shape)


def _lift(t, shape):
    """Batched tangent (k,) + s as (k, 1, ..., 1) + s with 1 + len(shape) dims, so
    it broadcasts against arrays of ``shape`` with the batch axis left alone."""
    if t.ndim == len(shape) + 1:
        return t
    return t.reshape((t.shape[0],) + (1,) * (len(shape) + 1 - t.ndim) + t.shape[1:])


def _zeros(shape, dtype):
    return Variable._wrap(np.zeros(shape, dtype))


# -- elementwise ops: one table line each ---------------------------------------------


_GELU_C, _GELU_A = float(2 * np.sqrt(2 / np.pi)), 0.044715  # gelu's tanh form: x sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))


def _gelu_deriv(x):
    return sigmoid(_GELU_C * (x + _GELU_A * x * x * x)) * (1 + x * sigmoid(-_GELU_C * (x + _GELU_A * x * x * x))
                                                            * _GELU_C * (1 + 3 * _GELU_A * x * x))


def _sigmoid(x):
    e = np.exp(-np.abs(x))                    # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _tie_weight(wins, a, b):
    """d max(a, b) / da: 1 where ``a`` wins, 0.5 on a tie, else 0."""
    return _mask(wins(a.data, b.data), a) + 0.5 * _mask(a.data == b.data, a)


def _nan_aware_weight(wins, a, b):
    """d fmax(a, b) / da (wins=np.greater; fmin: np.less): 1 where b is NaN, 0 where only a is, else _tie_weight."""
    w = np.where(np.isnan(b.data), 1.0, np.where(np.isnan(a.data), 0.0, _tie_weight(wins, a, b)))
    return w.astype(a.dtype)


def _radius2(a, b):
    """a^2 + b^2, or 1 at the origin: atan2's gradient there is 0 (PyTorch's backward)."""
    return where((a.data == 0) & (b.data == 0), 1.0, a * a + b * b)


#: name: (f(x) on arrays, f'(x) from x and/or y = f(x))
UNARY = {
    "negative": (np.negative, lambda: -1),
    "exp":      (np.exp,      lambda y: y),
    "log":      (np.log,      lambda x: 1 / x),
    "log1p":    (np.log1p,    lambda x: 1 / (1 + x)),
    "sqrt":     (np.sqrt,     lambda y: 0.5 / y),
    "sin":      (np.sin,      lambda x: cos(x)),
    "cos":      (np.cos,      lambda x: -sin(x)),
    "tanh":     (np.tanh,     lambda y: 1 - y * y),
    "sigmoid":  (_sigmoid,    lambda y: y * (1 - y)),
    "relu":     (lambda x: np.maximum(x, 0), lambda x: _mask(x.data > 0, x)),
    "abs":      (np.abs,      lambda x: _mask(np.sign(x.data), x)),
    "softplus": (lambda x: np.logaddexp(0, x), lambda x: sigmoid(x)),
    "tan":      (np.tan,      lambda y: 1 + y * y),
    "arcsin":   (np.arcsin,   lambda x: 1 / sqrt(1 - x * x)),
    "arccos":   (np.arccos,   lambda x: -1 / sqrt(1 - x * x)),
    "arctan":   (np.arctan,   lambda x: 1 / (1 + x * x)),
    # h85-expfam
    "expm1":    (np.expm1,    lambda x: exp(x)),
    "sinh":     (np.sinh,     lambda x: cosh(x)),
    "cosh":     (np.cosh,     lambda x: sinh(x)),
    "exp2":     (np.exp2,     lambda y: y * np.log(2.0)),

    # h87-act: silu = x s(x), s' = s (1 - s) = s(x) s(-x); gelu = x s(u), u = C (x + A x^3) (the tanh form);
    # log_sigmoid = log s(x)
    "silu":     (lambda x: x * _sigmoid(x), lambda x: sigmoid(x) * (1 + x * sigmoid(-x))),
    # (gelu's derivative with x clipped to [-30, 30], where it is 1 or 0 to double precision: x^3 overflows
    # float32 at |x| ~ 7e12, and 0 * inf was NaN)
    "gelu":     (lambda x: x * _sigmoid(_GELU_C * (x + _GELU_A * x ** 3)), lambda x: _gelu_deriv(clip(x, -30, 30))),
    "log_sigmoid": (lambda x: -np.logaddexp(0, -x), lambda x: sigmoid(-x)),

    # h84-round: piecewise constant (`lambda: 0`: zeros, see _times), square, reciprocal
    "floor":    (np.floor,    lambda: 0),
    "ceil":     (np.ceil,     lambda: 0),
    "rint":     (np.rint,     lambda: 0),
    "trunc":    (np.trunc,    lambda: 0),
    "sign":     (np.sign,     lambda: 0),
    "square":   (np.square,   lambda x: 2 * x),
    "reciprocal": (np.reciprocal, lambda x: -1 / (x * x)),
    "positive": (np.positive, lambda: 1),

    "log2":     (np.log2,     lambda x: 1 / (x * np.log(2.0))),
    "log10":    (np.log10,    lambda x: 1 / (x * np.log(10.0))),
    "cbrt":     (np.cbrt,     lambda y: 1 / (3 * y * y)),
    "arcsinh":  (np.arcsinh,  lambda x: 1 / sqrt(x * x + 1)),
    "arccosh":  (np.arccosh,  lambda x: 1 / sqrt(x * x - 1)),
    "arctanh":  (np.arctanh,  lambda x: 1 / (1 - x * x)),
    # h92-param: multiplies by a constant (NumPy's functions: its float32 constant is 180f / pi_f)
    "deg2rad":  (np.deg2rad,  lambda: math.pi / 180),
    "rad2deg":  (np.rad2deg,  lambda: 180 / math.pi),
}

#: name: (f(a, b) on arrays, df/da, df/db from a, b and/or y = f(a, b))
BINARY = {
    "add":      (np.add,      lambda: 1, lambda: 1),
    "subtract": (np.subtract, lambda: 1, lambda: -1),
    "multiply": (np.multiply, lambda b: b, lambda a: a),
    "divide":   (np.divide,   lambda b: 1 / b, lambda a, b: -a / (b * b)),
    "power":    (np.power,    lambda a, b: where(b.data == 0, 0.0, b * a ** (b - 1)),
                 lambda a, b, y: where((a.data == 0) & (b.data >= 0), 0.0, y * log(a))),
    "arctan2":  (np.arctan2,  lambda a, b: b / _radius2(a, b), lambda a, b: -a / _radius2(a, b)),
    "maximum":  (np.maximum,  lambda a, b: _tie_weight(np.greater, a, b),
                 lambda a, b: _tie_weight(np.greater, b, a)),
    "minimum":  (np.minimum,  lambda a, b: _tie_weight(np.less, a, b),
                 lambda a, b: _tie_weight(np.less, b, a)),
    # h90-binary: d/da log(e^a + e^b) = e^a / (e^a + e^b) = 1 / (1 + e^(b - a)); base 2 alike with ln 2;
    # d/da sqrt(a^2 + b^2) = a / y; fmax/fmin: to the chosen operand (a NaN is never chosen over a number;
    # both NaN: the first), ties split as maximum's.
    "logaddexp":  (np.logaddexp,  lambda a, b: 1 / (1 + exp(b - a)), lambda a, b: 1 / (1 + exp(a - b))),
    "logaddexp2": (np.logaddexp2, lambda a, b: 1 / (1 + exp((b - a) * math.log(2))),
                   lambda a, b: 1 / (1 + exp((a - b) * math.log(2)))),
    "hypot":      (np.hypot,      lambda a, y: a / y, lambda b, y: b / y),
    "fmax":       (np.fmax,       lambda a, b: _nan_aware_weight(np.greater, a, b),
                   lambda a, b: 1 - _nan_aware_weight(np.greater, a, b)),
    "fmin":       (np.fmin,       lambda a, b: _nan_aware_weight(np.less, a, b),
                   lambda a, b: 1 - _nan_aware_weight(np.less, a, b)),
}


class Elementwise(Function):
    """out = f(*inputs) with broadcasting; ``partial(i)`` is d out / d input i."""

    def forward(self, *xs):
        _broadcast_shapes(self.name, *(x.shape for x in xs))
        named = dict(zip(self.arg_names, xs))
        self.save_for_backward(*(named.get(n, OUTPUT) for n in self.uses))
        return self.f(*(x.data for x in xs))

    def partial(self, i):
        saved = dict(zip(self.uses, self.saved_values()))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self.partials[i](*(saved[n] for n in self.partial_args[i]))

    def vjp(self, g):
        return [None if x is None else unbroadcast(_times(g, self.partial(i)), x.shape)
                for i, x in enumerate(self.inputs)]

    def jvp(self, *ts):
        terms = [_times(_lift(t, self.output_shape), self.partial(i))
                 for i, t in enumerate(ts) if t is not None]
        return builtins.sum(terms[1:], terms[0])


def _times(g, d):
    if isinstance(d, int) and d == 0:  # derivative 0 (floor, sign): zeros, not g * 0 (NaN where g is inf)
        return _zeros(g.shape, g.dtype)
    return g if isinstance(d, int) and d == 1 else g * d


def _elementwise_op(name, f, *partials):
    """The node class and public function of a table line."""
    args = [tuple(inspect.signature(d).parameters) for d in partials]
    cls = type(name.capitalize(), (Elementwise,), dict(
        name=name, f=staticmethod(f), partials=partials, partial_args=args,
        uses=sorted({n for a in args for n in a}), arg_names=("x",) if len(args) == 1 else ("a", "b")))

    def unary(x):
        return cls.apply(as_variable(x))

    def binary(a, b):
        return cls.apply(*_operands(a, b))
    op = unary if len(args) == 1 else binary
    op.__name__ = op.__qualname__ = name
    return cls, op


for _name, (_f, *_partials) in {**UNARY, **BINARY}.items():
    _cls, globals()[_name] = _elementwise_op(_name, _f, *_partials)
    globals()[_cls.__name__] = _cls


class Clip(Elementwise):
    """Constant bounds (None = unbounded); the derivative is 1 where
    a_min <= x <= a_max (inclusive), else 0."""

    name, uses, arg_names = "clip", ("x",), ("x",)

    def f(self, x):
        out = x if self.a_min is None else np.maximum(x, self.a_min)
        return np.broadcast_to(out if self.a_max is None else np.minimum(out, self.a_max),
                               self.out_shape)

    def inside(self):
        (x,) = self.saved_values()
        inside = np.ones(self.out_shape, dtype=bool)
        if self.a_min is not None:
            inside &= x.data >= self.a_min
        if self.a_max is not None:
            inside &= x.data <= self.a_max
        return inside

    def partial(self, i):
        return _mask(self.inside(), self.inputs[0])

    # A select, not g * mask: outside the bounds a NaN or inf direction gives 0 (PyTorch's clamp and the
    # C++ engine's clip_mask), where a product would give NaN.
    def vjp(self, g):
        return [unbroadcast(where(self.inside(), g, 0.0), self.inputs[0].shape)]

    def jvp(self, t):
        return where(self.inside(), _lift(t, self.output_shape), 0.0)


def clip(x, a_min, a_max):
    x = as_variable(x)

    def bound(b):
        if isinstance(b, Variable):
            if b.requires_grad:
                raise ValueError("clip: the bounds are constants and are not differentiated; "
                                 "use maximum/minimum for differentiable bounds")
            b = b.data
        if b is not None and np.asarray(b).dtype.kind not in "fiub":
            raise TypeError(f"clip: bounds must be real numbers, got an array of dtype "
                            f"{np.asarray(b).dtype}")
        return None if b is None else np.array(b, dtype=x.dtype)      # x's dtype

    a_min, a_max = bound(a_min), bound(a_max)
    shapes = [x.shape] + [b.shape for b in (a_min, a_max) if b is not None]
    return Clip.apply(x, a_min=a_min, a_max=a_max, out_shape=_broadcast_shapes("clip", *shapes))


# h92-param: elementwise ops with a float parameter p (a Python float: float32 stays float32).
# elu = x for x > 0, p (e^x - 1) else; elu'(x) = 1 for x > 0, p e^x for x <= 0 (so elu'(0) = p, as
# PyTorch's). leaky_relu = x for x > 0, p x else; its derivative p at 0.
class _ParamElementwise(Elementwise):
    uses, arg_names = ("x",), ("x",)

    def partial(self, i):
        (x,) = self.saved_values()
        with np.errstate(over="ignore", invalid="ignore"):
            return self.deriv(x, self.p)


class Elu(_ParamElementwise):
    name = "elu"

    def f(self, x):
        with np.errstate(over="ignore"):
            return np.where(x > 0, x, self.p * np.expm1(np.where(x > 0, 0, x)))  # (keeps -0: expm1(-0) = -0)

    @staticmethod
    def deriv(x, p):
        pos = x.data > 0
        return where(pos, 1.0, exp(where(pos, 0.0, x)) * p)   # (e^x of x <= 0 only: no inf * 0)


class LeakyRelu(_ParamElementwise):
    name = "leaky_relu"

    def f(self, x):
        return np.where(x > 0, x, x * self.p)

    @staticmethod
    def deriv(x, p):
        return _mask(x.data > 0, x) + p * _mask(x.data <= 0, x)


def _real_parameter(op, name, p):
    if isinstance(p, (str, bytes)) or p is None:
        raise TypeError(f"{op}: {name} must be a real number, got {type(p).__name__}")
    try:
        return float(p)
    except OverflowError:
        raise ValueError(f"{op}: {name} {p} is out of range (it does not fit a float64)") from None


def elu(x, alpha=1.0):
    return Elu.apply(as_variable(x), p=_real_parameter("elu", "alpha", alpha))


def leaky_relu(x, negative_slope=0.01):
    return LeakyRelu.apply(as_variable(x), p=_real_parameter("leaky_relu", "negative_slope", negative_slope))


# -- linear ops: JVP = the op applied to the tangents; VJP = its transpose ----------------


class _Linear(Function):
    """A linear op.  ``forward`` acts on the last ``ndim`` axes of its inputs and
    treats any axes in front (``lead``) as a batch, so the JVP is the op itself."""

    broadcasts = False       # inputs of different ranks (their batch axes must be aligned)

    @classmethod
    def apply(cls, *xs, **params):
        params.setdefault("ndim", xs[0].ndim)
        return super().apply(*xs, **params)

    def lead(self, x):
        return x.shape[:x.ndim - self.ndim]

    def jvp(self, *ts):
        k = next(t for t in ts if t is not None).shape[0]
        ts = [_zeros((k,) + s, self.output_dtype) if t is None else t
              for t, s in zip(ts, self.input_shapes)]
        ts = [_lift(t, self.output_shape) for t in ts] if self.broadcasts else ts
        return type(self).apply(*ts, **self.params)


class Identity(_Linear):
    """y = x as a new node (how nested transforms make a fresh input)."""
    name = "identity"

    def forward(self, x):
        return x.data

    def vjp(self, g):
        return g


class AsType(_Linear):
    name = "astype"

    def forward(self, x):
        return x.data.astype(self.dtype)

    def vjp(self, g):
        return g.astype(self.input_dtype)


class Sum(_Linear):
    name, reduce = "sum", staticmethod(np.sum)

    def forward(self, x):
        return self.reduce(x.data, axis=self.axes, keepdims=self.keepdims)

    def vjp(self, g):
        shape = self.input_shapes[0]
        return broadcast_to(g.reshape(_keepdims_shape(shape, self.axes)), shape)


class Mean(Sum):
    name, reduce = "mean", staticmethod(np.mean)

    def count(self):
        return math.prod(self.input_shapes[0][a] for a in self.axes)

    def vjp(self, g):
        return super().vjp(g) / self.count()

    def jvp(self, *ts):
        # The mean of no element is nan whatever the input: a constant, derivative 0
        # (the op applied to the tangent would give nan).
        if self.count() == 0:
            return _zeros((ts[0].shape[0],) + self.output_shape, self.output_dtype)
        return super().jvp(*ts)


class Reshape(_Linear):
    name = "reshape"

    def forward(self, x):
        try:
            return x.data.reshape(self.lead(x) + self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape shape {x.shape} (size {x.size}) "
                             f"into shape {self.shape}") from None

    def vjp(self, g):
        return g.reshape(self.input_shapes[0])


class Transpose(_Linear):
    name = "transpose"

    def perm(self, x):
        n = len(self.lead(x))
        return tuple(range(n)) + tuple(n + a for a in self.axes)

    def forward(self, x):
        return np.transpose(x.data, self.perm(x))

    def vjp(self, g):
        return g.transpose(tuple(int(i) for i in np.argsort(self.perm(g))))


class BroadcastTo(_Linear):
    name = "broadcast_to"

    def lifted(self, shape):     # the input's shape with 1s where broadcasting adds axes
        n = len(shape) - self.ndim
        return shape[:n] + (1,) * (len(self.shape) - self.ndim) + shape[n:]

    def forward(self, x):
        return np.broadcast_to(x.data.reshape(self.lifted(x.shape)), self.lead(x) + self.shape)

    def vjp(self, g):
        shape = self.input_shapes[0]
        return unbroadcast(g, self.lifted(shape)).reshape(shape)


class Concatenate(_Linear):
    name = "concatenate"

    def forward(self, *xs):
        return np.concatenate([x.data for x in xs], axis=self.axis)

    def vjp(self, g):
        edges = np.cumsum([0] + [s[self.axis] for s in self.input_shapes]).tolist()
        after = (slice(None),) * (-1 - self.axis)
        return [g[(Ellipsis, slice(lo, hi)) + after] for lo, hi in zip(edges, edges[1:])]


class Stack(_Linear):
    name = "stack"

    def forward(self, *xs):
        return np.stack([x.data for x in xs], axis=self.axis)

    def vjp(self, g):
        after = (slice(None),) * (-1 - self.axis)
        return [g[(Ellipsis, i) + after] for i in range(len(self.input_shapes))]


class Where(_Linear):
    """np.where(cond, x, y) with a constant condition: linear in (x, y)."""
    name, broadcasts = "where", True

    def forward(self, x, y):
        _broadcast_shapes(self.name, self.cond.shape, x.shape, y.shape)
        return np.where(self.cond, x.data, y.data)

    def vjp(self, g):
        return [unbroadcast(where(self.cond, g, 0.0), self.input_shapes[0]),
                unbroadcast(where(self.cond, 0.0, g), self.input_shapes[1])]


class GetItem(_Linear):
    """x[key] as x.flat[positions], ``positions`` being the flat indices the key
    picks (so every NumPy key works, with batch axes in front)."""
    name = "getitem"

    def forward(self, x):
        lead = self.lead(x)
        return x.data.reshape(lead + (math.prod(x.shape[len(lead):]),))[..., self.positions]

    def vjp(self, g):
        shape = self.input_shapes[0]
        return IndexAdd.apply(g, positions=self.positions, shape=shape[len(shape) - self.ndim:],
                              ndim=self.positions.ndim)


class IndexAdd(_Linear):
    """zeros(shape) with g added at ``positions`` (repeats accumulate): the
    transpose of GetItem, and GetItem is its transpose."""
    name = "index_add"

    def forward(self, g):
        lead = self.lead(g)
        out = np.zeros(lead + (math.prod(self.shape),), g.dtype)
        np.add.at(out, (Ellipsis, self.positions), g.data)
        return out.reshape(lead + self.shape)

    def vjp(self, gg):
        return GetItem.apply(gg, positions=self.positions, ndim=len(self.shape))


def identity(x):
    return Identity.apply(as_variable(x))


def astype(x, dtype):
    x = as_variable(x)
    return AsType.apply(x, dtype=_check_float_dtype(dtype), input_dtype=x.dtype)


def reshape(x, shape):
    return Reshape.apply(as_variable(x), shape=_int_tuple("reshape", "shape", shape))


def transpose(x, axes=None):
    x = as_variable(x)
    n = x.ndim
    if axes is None:
        axes = tuple(reversed(range(n)))
    else:
        axes = _int_tuple("transpose", "axes", axes)
        if not builtins.all(-n <= a < n for a in axes) or sorted(a % n for a in axes) != list(range(n)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                             f"axes of shape {x.shape}")
    return Transpose.apply(x, axes=tuple(a % n for a in axes))


def broadcast_to(x, shape):
    x = as_variable(x)
    shape = _int_tuple("broadcast_to", "shape", shape)
    try:
        ok = np.broadcast_shapes(x.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to shape {shape}")
    return BroadcastTo.apply(x, shape=shape)


def _sequence(name, seq):
    xs = _operands(*seq)
    if not xs:
        raise ValueError(f"{name}: need at least one array")
    return xs, [x.shape for x in xs]


def concatenate(seq, axis=0):
    xs, shapes = _sequence("concatenate", seq)
    if axis is None:                           # NumPy: flatten the arrays first
        xs, axis = [reshape(x, (-1,)) for x in xs], 0
        shapes = [x.shape for x in xs]
    ndim = len(shapes[0])
    if ndim == 0 or builtins.any(len(s) != ndim for s in shapes):
        raise ValueError(f"concatenate: shapes {_shapes_text(shapes)} must have the same, "
                         f"non-zero number of dimensions")
    (axis,) = _normalize_axes("concatenate", axis, shapes[0])
    if len({s[:axis] + s[axis:][1:] for s in shapes}) > 1:
        raise ValueError(f"concatenate: shapes {_shapes_text(shapes)} differ outside "
                         f"axis {axis + ndim}")
    return Concatenate.apply(*xs, axis=axis)


def stack(seq, axis=0):
    xs, shapes = _sequence("stack", seq)
    if builtins.any(s != shapes[0] for s in shapes):
        raise ValueError(f"stack: all shapes must be equal, got {_shapes_text(shapes)}")
    ndim = len(shapes[0]) + 1                  # the result has one more axis
    if not _is_int(axis):
        raise TypeError(f"stack: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of bounds for stacking arrays of "
                         f"shape {shapes[0]}")
    return Stack.apply(*xs, axis=int(axis) % ndim - ndim)


def where(cond, x, y):
    cond = np.array(cond.data if isinstance(cond, Variable) else cond, dtype=bool)  # a copy
    return Where.apply(*_operands(x, y), cond=cond)


def _index_key(key):
    if isinstance(key, tuple):
        return tuple(map(_index_key, key))
    return key.data if isinstance(key, Variable) else key


def getitem(x, key):
    x = as_variable(x)
    positions = np.asarray(np.arange(x.size).reshape(x.shape)[_index_key(key)])
    return GetItem.apply(x, positions=positions)


# -- h89-views: diagonals (a gather of the diagonal's flat positions, its transpose a
# scatter), squeeze / expand_dims (reshapes), swapaxes / moveaxis (transposes) ----------


def _axis(name, axis, ndim):
    if not _is_int(axis):
        raise TypeError(f"{name}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of bounds for an array of dimension {ndim}")
    return int(axis) % ndim


def _diagonal_positions(name, shape, offset, axis1, axis2):
    """The flat positions, in an array of ``shape``, of its offset diagonal over axis1 and axis2."""
    if len(shape) < 2:
        raise ValueError(f"{name}: needs at least 2 axes, got shape {tuple(shape)}")
    a1, a2 = _axis(name, axis1, len(shape)), _axis(name, axis2, len(shape))
    if a1 == a2:
        raise ValueError(f"{name}: axis1 and axis2 cannot be the same")
    if not _is_int(offset):
        raise TypeError(f"{name}: offset must be an int, got {offset!r}")
    return np.array(np.arange(math.prod(shape)).reshape(shape).diagonal(int(offset), a1, a2))


def diagonal(x, offset=0, axis1=0, axis2=1):
    x = as_variable(x)
    return GetItem.apply(x, positions=_diagonal_positions("diagonal", x.shape, offset, axis1, axis2))


def trace(x, offset=0, axis1=0, axis2=1):
    x = as_variable(x)
    d = GetItem.apply(x, positions=_diagonal_positions("trace", x.shape, offset, axis1, axis2))
    return sum(d, axis=-1)


def diag(x, k=0):
    x = as_variable(x)
    if x.ndim == 2:
        return GetItem.apply(x, positions=_diagonal_positions("diag", x.shape, k, 0, 1))
    if x.ndim != 1:
        raise ValueError(f"diag: input must be 1-d or 2-d, got shape {x.shape}")
    m = x.shape[0] + builtins.abs(int(k))     # the vector on the k-th diagonal of zeros (m, m)
    return IndexAdd.apply(x, positions=_diagonal_positions("diag", (m, m), k, 0, 1), shape=(m, m), ndim=1)


def squeeze(x, axis=None):
    x = as_variable(x)
    axes = tuple(a for a, n in enumerate(x.shape) if n == 1) if axis is None else \
        tuple(a % x.ndim for a in _normalize_axes("squeeze", axis, x.shape))
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: cannot select an axis to squeeze out which has size not equal to one "
                             f"(axis {a} of shape {x.shape})")
    return reshape(x, tuple(n for a, n in enumerate(x.shape) if a not in axes))


def expand_dims(x, axis):
    x = as_variable(x)
    axes = _int_tuple("expand_dims", "axis", axis)
    nd = x.ndim + len(axes)
    new = {_axis("expand_dims", a, nd) for a in axes}
    if len(new) != len(axes):
        raise ValueError(f"expand_dims: repeated axis in {axis!r}")
    rest = iter(x.shape)
    return reshape(x, tuple(1 if a in new else next(rest) for a in range(nd)))


def swapaxes(x, axis1, axis2):
    x = as_variable(x)
    perm = list(range(x.ndim))
    i, j = _axis("swapaxes", axis1, x.ndim), _axis("swapaxes", axis2, x.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(x, tuple(perm))


def _triangle(name, x, k, lower):
    x = as_variable(x)
    if x.ndim < 2:
        raise ValueError(f"{name}: needs at least 2 axes, got shape {x.shape}")
    if not _is_int(k):
        raise TypeError(f"{name}: k must be an int, got {k!r}")
    n, m = x.shape[-2:]
    i, j = np.arange(n)[:, None], np.arange(m)[None, :]
    return where(j - i <= k if lower else j - i >= k, x, 0.0)


def tril(x, k=0):
    return _triangle("tril", x, k, True)


def triu(x, k=0):
    return _triangle("triu", x, k, False)


def moveaxis(x, source, destination):
    x = as_variable(x)
    src = [_axis("moveaxis", a, x.ndim) for a in _int_tuple("moveaxis", "source", source)]
    dst = [_axis("moveaxis", a, x.ndim) for a in _int_tuple("moveaxis", "destination", destination)]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError("moveaxis: repeated axis in source or destination")
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of elements")
    order = [n for n in range(x.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, tuple(order))


# -- matmul (bilinear: d(a @ b) = da @ b + a @ db) ----------------------------------------


def _swap_last(v):
    return v.transpose(tuple(range(v.ndim - 2)) + (v.ndim - 1, v.ndim - 2))


class MatMul(Function):
    """NumPy matmul: a 1-D ``a`` is a row, a 1-D ``b`` a column (the promoted
    axis is dropped from the result); batch axes broadcast."""

    name = "matmul"

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return np.matmul(a.data, b.data)

    def matrices(self):
        a, b = self.saved_values()
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
        return a2, b2, np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1])

    def vjp(self, g):
        (sa, sb), (a2, b2, out2) = self.input_shapes, self.matrices()
        ga, gb = self.inputs
        g2 = g.reshape(out2)
        return (None if ga is None else unbroadcast(g2 @ _swap_last(b2), a2.shape).reshape(sa),
                None if gb is None else unbroadcast(_swap_last(a2) @ g2, b2.shape).reshape(sb))

    def jvp(self, ta, tb):
        a2, b2, out2 = self.matrices()
        terms = [] if ta is None else [_lift(ta.reshape((ta.shape[0],) + a2.shape), out2) @ b2]
        terms += [] if tb is None else [a2 @ _lift(tb.reshape((tb.shape[0],) + b2.shape), out2)]
        t = builtins.sum(terms[1:], terms[0])
        return t.reshape((t.shape[0],) + self.output_shape)


def matmul(a, b):
    a, b = _operands(a, b)
    sa, sb = a.shape, b.shape
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got "
                         f"shapes {sa} and {sb}")
    if sa[-1] != (sb[0] if b.ndim == 1 else sb[-2]):
        raise ValueError(f"matmul: shapes {sa} and {sb} are not aligned")
    try:
        np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of shapes {sa} and {sb} cannot be "
                         f"broadcast together") from None
    return MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """``x @ weight + bias``: x (..., K), weight (K, N), bias (N,) or None.  Composed
    of matmul and add (the C++ engine fuses it), so its derivative is independent."""
    vs = _operands(*((x, weight) if bias is None else (x, weight, bias)))
    x, weight = vs[0], vs[1]
    what = f"x {x.shape} {x.dtype}, weight {weight.shape} {weight.dtype}"
    if bias is not None:
        what += f", bias {vs[2].shape} {vs[2].dtype}"
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"linear: expected x (..., K) and weight (K, N), got {what}")
    if bias is not None and vs[2].shape != (weight.shape[1],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[1]},), got {what}")
    y = matmul(x, weight)
    return y if bias is None else add(y, vs[2])


# -- inv, solve, slogdet, cholesky: NumPy's LAPACK forward, rules from the matrix calculus --
# (d A^-1 = -A^-1 dA A^-1; d log|det A| = tr(A^-1 dA); Cholesky: Murray 2016, eq. 10/11.)


def _square(name, a):
    if a.ndim < 2:
        raise np.linalg.LinAlgError(f"{name}: {a.ndim}-dimensional array given; the array must be "
                                    f"at least two-dimensional")
    if a.shape[-1] != a.shape[-2]:
        raise np.linalg.LinAlgError(f"{name}: the last 2 dimensions of the array must be square, "
                                    f"got shape {a.shape}")


def _lapack(name, fn, *arrays):
    try:
        return fn(*arrays)
    except np.linalg.LinAlgError as e:
        raise np.linalg.LinAlgError(f"{name}: {str(e).lower()} (matrix of shape {arrays[0].shape})") from None


class Inv(Function):
    name = "inv"

    def forward(self, a):
        self.save_for_backward(OUTPUT)
        return _lapack("inv", np.linalg.inv, a.data)

    def vjp(self, g):
        (y,) = self.saved_values()
        yt = _swap_last(y)
        return [-(yt @ g @ yt)]

    def jvp(self, t):
        (y,) = self.saved_values()
        return -(y @ t @ y)


def inv(a):
    a = as_variable(a)
    _square("inv", a)
    return Inv.apply(a)


class Solve(Function):
    """x = A^-1 b for a (..., n, n) and b (..., n, k) of one batch."""
    name = "solve"

    def forward(self, a, b):
        self.save_for_backward(a, OUTPUT)
        return _lapack("solve", np.linalg.solve, a.data, b.data)

    def vjp(self, g):
        a, x = self.saved_values()
        gb = _swap_last(inv(a)) @ g               # A^-T g
        return [None if self.inputs[0] is None else -(gb @ _swap_last(x)), gb]

    def jvp(self, ta, tb):
        a, x = self.saved_values()
        rhs = -(ta @ x) if tb is None else tb if ta is None else tb - ta @ x
        return inv(a) @ rhs


def solve(a, b):
    """NumPy 2's rule: b is a vector when 1-d, else a stack of (n, k) matrices."""
    a, b = _operands(a, b)
    _square("solve", a)
    n, vec = a.shape[-1], b.ndim == 1
    if b.ndim == 0 or (b.shape[0] if vec else b.shape[-2]) != n:
        raise ValueError(f"solve: a {a.shape} and b {b.shape} do not match: b needs {n} rows")
    b2 = b.reshape((n, 1)) if vec else b
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(f"solve: batch dimensions of a {a.shape} and b {b.shape} cannot be "
                         f"broadcast together") from None
    a2 = a if a.shape[:-2] == batch else broadcast_to(a, batch + a.shape[-2:])
    b2 = b2 if b2.shape[:-2] == batch else broadcast_to(b2, batch + b2.shape[-2:])
    x = Solve.apply(a2, b2)
    return x.reshape(batch + (n,)) if vec else x


class LogAbsDet(Function):
    name = "slogdet"

    def forward(self, a):
        self.save_for_backward(a)
        return np.linalg.slogdet(a.data)[1]

    def vjp(self, g):
        (a,) = self.saved_values()
        return [g.reshape(g.shape + (1, 1)) * _swap_last(inv(a))]

    def jvp(self, t):
        (a,) = self.saved_values()
        return (_swap_last(inv(a)) * t).sum(axis=(-2, -1))


def slogdet(a):
    """(sign, log|det a|): the sign is a constant Variable (piecewise constant)."""
    a = as_variable(a)
    _square("slogdet", a)
    return Variable._wrap(np.asarray(np.linalg.slogdet(a.data)[0], dtype=a.dtype)), LogAbsDet.apply(a)


def _phi(x, n):
    """The lower triangle with the diagonal halved."""
    return x * (np.tril(np.ones((n, n)), -1) + 0.5 * np.eye(n)).astype(x.dtype)


def _symmetric(x):
    return 0.5 * (x + _swap_last(x))


class Cholesky(Function):
    name = "cholesky"

    def forward(self, a):
        self.save_for_backward(OUTPUT)
        try:
            return np.linalg.cholesky(a.data)
        except np.linalg.LinAlgError:
            raise np.linalg.LinAlgError(f"cholesky: matrix of shape {a.shape} is not positive "
                                        f"definite") from None

    def vjp(self, g):
        (lo,) = self.saved_values()
        li = inv(lo)
        return [_symmetric(_swap_last(li) @ _phi(_swap_last(lo) @ g, lo.shape[-1]) @ li)]

    def jvp(self, t):
        (lo,) = self.saved_values()
        li = inv(lo)
        return lo @ _phi(li @ _symmetric(t) @ _swap_last(li), lo.shape[-1])


def cholesky(a):
    a = as_variable(a)
    _square("cholesky", a)
    return Cholesky.apply(a)


# -- reductions and normalisers with nonlinear derivatives -------------------------------


class _Reduce(Function):
    """A reduction whose derivative d out / d x is ``weights()`` (one per
    element): VJP g * weights, JVP sum(t * weights)."""

    def vjp(self, g):
        return g.reshape(_keepdims_shape(self.input_shapes[0], self.axes)) * self.weights()

    def jvp(self, t):
        return sum(t * self.weights(), axis=self.axes, keepdims=self.keepdims)


class Max(_Reduce):
    """The derivative is split evenly among the elements equal to the maximum."""
    name, reduce = "max", staticmethod(np.max)

    def forward(self, x):
        if builtins.any(x.shape[a] == 0 for a in self.axes):
            raise ValueError(f"{self.name}: cannot reduce over a zero-size axis, shape "
                             f"{x.shape}, axes {tuple(a + x.ndim for a in self.axes)}")
        self.save_for_backward(x, OUTPUT)
        return self.reduce(x.data, axis=self.axes, keepdims=self.keepdims)

    def weights(self):
        x, out = self.saved_values()
        ties = x.data == out.data.reshape(_keepdims_shape(x.shape, self.axes))
        return _mask(ties / np.sum(ties, axis=self.axes, keepdims=True), x)


class Min(Max):
    name, reduce = "min", staticmethod(np.min)


def _shift_and_log_sum(x, axes):
    """(m, log sum exp(x - m)); m the slice's finite max (0 for all -inf or inf)."""
    m = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        return m, np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True))


def _logsumexp_keepdims(x, axes):
    m, log_sum = _shift_and_log_sum(x, axes)
    return m + log_sum


class LogSumExp(_Reduce):
    name = "logsumexp"

    def forward(self, x):
        self.save_for_backward(x, OUTPUT)
        out = _logsumexp_keepdims(x.data, self.axes)
        return out if self.keepdims else np.squeeze(out, axis=self.axes)

    def weights(self):                        # softmax(x)
        # Not exp(x - out): out = m + log_sum rounds to m at huge x (1e30 + log 2 == 1e30), and every weight
        # of a tie became 1. Shifted by m, a constant (softmax does not change under a constant shift, so the
        # derivatives of these weights are exact too).
        x, _ = self.saved_values()
        m, _ = _shift_and_log_sum(x.data, self.axes)
        shifted = x - m
        return exp(shifted - logsumexp(shifted, axis=self.axes, keepdims=True))


class Softmax(Function):
    """y = softmax(x); its Jacobian diag(y) - y y^T is symmetric: one rule."""
    name = "softmax"

    def forward(self, x):
        self.save_for_backward(OUTPUT)
        m, log_sum = _shift_and_log_sum(x.data, self.axes)
        return np.exp((x.data - m) - log_sum)  # not x - logsumexp(x): m + log_sum may round to m

    def jvp(self, v):
        (y,) = self.saved_values()
        return y * (v - sum(y * v, axis=self.axes, keepdims=True))

    vjp = jvp


class LogSoftmax(Function):
    """y = x - logsumexp(x): Jacobian I - 1 p^T with p = softmax(x) = exp(y)."""
    name = "log_softmax"

    def forward(self, x):
        self.save_for_backward(OUTPUT)
        m, log_sum = _shift_and_log_sum(x.data, self.axes)
        return (x.data - m) - log_sum         # not x - logsumexp(x): m + log_sum may round to m

    def vjp(self, g):
        return g - exp(self.saved_values()[0]) * sum(g, axis=self.axes, keepdims=True)

    def jvp(self, t):
        return t - sum(exp(self.saved_values()[0]) * t, axis=self.axes, keepdims=True)


def _reduction(cls):
    def op(x, axis=None, keepdims=False):
        x = as_variable(x)
        return cls.apply(x, axes=_normalize_axes(cls.name, axis, x.shape), keepdims=bool(keepdims))
    op.__name__ = op.__qualname__ = cls.name
    return op


sum, mean, max, min, logsumexp = map(_reduction, (Sum, Mean, Max, Min, LogSumExp))


def _normaliser_axes(name, axis, shape):
    # PyTorch's rule on a 0-d input: axis 0 or -1 normalises over nothing
    # (softmax 1, log_softmax 0); any other axis is refused.
    if len(shape) == 0:
        if axis not in (0, -1):
            raise ValueError(f"{name}: axis {axis!r} is out of bounds for a 0-d array "
                             "(only 0 and -1 are accepted)")
        return ()
    return _normalize_axes(name, axis, shape)


def softmax(x, axis=-1):
    x = as_variable(x)
    return Softmax.apply(x, axes=_normaliser_axes("softmax", axis, x.shape))


def log_softmax(x, axis=-1):
    x = as_variable(x)
    return LogSoftmax.apply(x, axes=_normaliser_axes("log_softmax", axis, x.shape))


# -- h88-scan: cumsum, cumprod, prod, var, std, from their definitions ------------------------
# Built from this engine's primitives (their derivatives follow), by other algorithms than the
# C++ kernels: a scan as a product with the triangle of ones, a product as a tree of multiplies.

def _scan_axis(name, x, axis):
    x = as_variable(x)
    if axis is None:
        return reshape(x, (-1,)), 0
    if not _is_int(axis):
        raise TypeError(f"{name}: axis must be None or an int, got {axis!r}")
    return x, _normalize_axes(name, axis, x.shape)[0] % x.ndim


def _last(x, axis):          # the permutation moving axis last (its own inverse is argsort)
    return tuple(a for a in range(x.ndim) if a != axis) + (axis,)


def cumsum(x, axis=None):
    """y_j = sum_{i <= j} x_i = x @ U along the axis, U[i, j] = [i <= j]."""
    x, axis = _scan_axis("cumsum", x, axis)
    n, perm = x.shape[axis], _last(x, axis)
    upper = np.triu(np.ones((n, n), dtype=x.dtype))
    y = matmul(transpose(x, perm), as_variable(upper, x.dtype)) if n else transpose(x, perm)
    return transpose(y, tuple(int(i) for i in np.argsort(perm)))


def prod(x, axis=None, keepdims=False):
    """x_0 * x_1 * ... over the axes, as a tree of multiplies (exact derivatives at zeros)."""
    x = as_variable(x)
    axes = sorted(a % x.ndim for a in _normalize_axes("prod", axis, x.shape)) if x.ndim else []
    rest = [a for a in range(x.ndim) if a not in axes]
    n = math.prod(x.shape[a] for a in axes)
    y = reshape(transpose(x, tuple(axes) + tuple(rest)), (n,) + tuple(x.shape[a] for a in rest))
    if n == 0:
        y = sum(y, axis=0) * 0.0 + 1.0
    else:
        while y.shape[0] > 1:
            h = y.shape[0] // 2
            pair = y[:h] * y[h:2 * h]
            y = concatenate([pair, y[2 * h:]], axis=0) if y.shape[0] % 2 else pair
        y = y[0]
    return reshape(y, _keepdims_shape(x.shape, tuple(a - x.ndim for a in axes))) if keepdims else y


def cumprod(x, axis=None):
    """y_j = prod_i (x_i if i <= j else 1): the product over a masked copy per output."""
    x, axis = _scan_axis("cumprod", x, axis)
    n, perm = x.shape[axis], _last(x, axis)
    xt = transpose(x, perm)
    lead = xt.shape[:-1]
    rows = broadcast_to(reshape(xt, lead + (1, n)), lead + (n, n))       # [..., j, i] = x_i
    y = prod(where(np.tril(np.ones((n, n), dtype=bool)), rows, 1.0), axis=-1) if n else xt
    return transpose(y, tuple(int(i) for i in np.argsort(perm)))


def var(x, axis=None, ddof=0, keepdims=False):
    """sum((x - mean(x))^2) / (N - ddof); N - ddof <= 0 divides by 0."""
    x = as_variable(x)
    axes = _normalize_axes("var", axis, x.shape) if x.ndim else ()
    count = math.prod(x.shape[a] for a in axes)
    if count == 0:       # nan, a constant (derivative 0 in every mode), as mean of no element
        return mean(x, axis=axes, keepdims=bool(keepdims))
    d = x - mean(x, axis=axes, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sum(d * d, axis=axes, keepdims=bool(keepdims)) / float(builtins.max(count - ddof, 0))


def std(x, axis=None, ddof=0, keepdims=False):
    """sqrt(var); of no element, var's nan (a constant). Where var is 0 the derivative is 0 (PyTorch's
    convention; sqrt'(0) is inf): sqrt of 1 there, then 0 in its place, so no 0 * inf reaches any order."""
    x = as_variable(x)
    axes = _normalize_axes("std", axis, x.shape) if x.ndim else ()
    y = var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    if math.prod(x.shape[a] for a in axes) == 0:
        return y
    zero = y.data == 0
    return where(zero, 0.0, sqrt(where(zero, 1.0, y)))


# -- Variable's operators and methods; the op list -----------------------------------------

for _sym, _op in dict(add=add, sub=subtract, mul=multiply, truediv=divide, pow=power,
                      matmul=matmul).items():
    setattr(Variable, f"__{_sym}__", lambda a, b, _op=_op: _op(a, b))
    setattr(Variable, f"__r{_sym}__", lambda a, b, _op=_op: _op(b, a))
for _name in UNARY.keys() - {"negative"}:      # -v is __neg__
    setattr(Variable, _name, globals()[_name])
Variable.__neg__, Variable.__abs__, Variable.__getitem__ = negative, abs, getitem
Variable.astype, Variable.clip, Variable.T = astype, clip, property(transpose)
Variable.sum, Variable.mean, Variable.max, Variable.min = sum, mean, max, min
Variable.cumsum, Variable.cumprod, Variable.prod, Variable.var, Variable.std = cumsum, cumprod, prod, var, std
Variable.reshape = lambda self, *shape: reshape(
    self, shape[0] if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)) else shape)
Variable.transpose = lambda self, *axes: transpose(
    self, axes[0] if len(axes) == 1 and not _is_int(axes[0]) else axes or None)
Variable.diagonal, Variable.trace, Variable.squeeze, Variable.swapaxes = diagonal, trace, squeeze, swapaxes

#: The public op names of the reference engine (for a parity check against the spec).
OPS = tuple(UNARY) + tuple(BINARY) + ("elu", "leaky_relu") + (
    "clip", "where", "sum", "mean", "max", "min", "reshape", "transpose", "broadcast_to",
    "concatenate", "stack", "matmul", "linear", "softmax", "log_softmax", "logsumexp", "astype",
    "inv", "solve", "slogdet", "cholesky", "cumsum", "cumprod", "prod", "var", "std",
    "diagonal", "diag", "trace", "squeeze", "expand_dims", "swapaxes", "moveaxis", "tril", "triu")
__all__ = [*OPS, "unbroadcast", "getitem", "identity", "OPS", "UNARY", "BINARY"]
