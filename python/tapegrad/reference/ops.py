"""Primitive ops of the reference engine, each forward next to its VJP and JVP.

Conventions used throughout:

* ``forward(self, *inputs)`` gets Variables and returns a NumPy array.
* ``vjp(self, g)`` gets the gradient of the output (a Variable) and returns
  one gradient per input, written with Variable ops so the backward pass can
  itself be recorded (``create_graph=True``).  Gradients of broadcast operands
  go through the single helper ``unbroadcast``.
* ``jvp(self, *tangents)`` gets one tangent per input (a Variable, or None
  for a zero tangent) and returns the output tangent, also written with
  Variable ops (so forward mode nests).  Every tangent carries ONE leading
  batch axis: shape ``(k,) + input_shape`` for k directions at once.  So
  (1) a tangent is lifted with ``_lift`` to the output's number of
  dimensions (size-1 axes inserted after the batch axis) before it is
  combined with primal values, which then broadcast against it from the
  right, and (2) reductions and other axis ops shift their axes by one
  (``_shift``).  The engine broadcasts the result to ``(k,) + output_shape``.
  The rules are derived from the math independently of the VJPs, with the
  same conventions at kinks (so forward and reverse mode agree there too).
* Kinks follow docs/API.md: relu'(0) = 0, abs'(0) = 0, maximum/minimum split
  ties 0.5/0.5, max/min reductions split evenly among tied maxima, clip is
  inclusive, and the power special cases below.
* Two ops exist only for the engine: ``Identity`` (how a nested transform
  makes a fresh input node out of an outer Variable) and ``IndexAdd`` (the
  VJP of indexing).

NB: this module defines ``sum``, ``max``, ``min`` and ``abs``, shadowing the
builtins; the builtins are used through ``builtins.`` where needed.
"""

import builtins
import math

import numpy as np

from .engine import OUTPUT, Function, Variable, _check_float_dtype

__all__ = [
    "add", "subtract", "multiply", "divide", "power", "negative",
    "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs",
    "maximum", "minimum", "clip", "where",
    "sum", "mean", "max", "min",
    "reshape", "transpose", "broadcast_to", "concatenate", "stack", "getitem",
    "matmul", "linear", "softmax", "log_softmax", "logsumexp", "astype", "unbroadcast",
    "identity",
]


# --------------------------------------------------------------------------
# Helpers: operand conversion, shape checks, unbroadcast
# --------------------------------------------------------------------------


def _is_python_scalar(x):
    # np.float64 subclasses float, hence the exact type test.
    return type(x) in (bool, int, float)


def as_variable(x, dtype=None):
    """``x`` itself if it is a Variable, else a new constant Variable."""
    return x if isinstance(x, Variable) else Variable(x, dtype=dtype)


def _operands(*xs):
    """Convert op operands to Variables.

    Python scalars are "weak": they take the dtype of the other operands
    (float64 if there are none).  Arrays and Variables keep their dtype and
    promote like NumPy inside the forward computation (float32 op float64 ->
    float64); the gradient of each input is cast back to its own dtype.
    """
    if builtins.all(isinstance(x, Variable) for x in xs):
        return list(xs)
    strong = [as_variable(x) for x in xs if not _is_python_scalar(x)]
    dtype = np.result_type(*[v.dtype for v in strong]) if strong else np.float64
    strong = iter(strong)
    return [Variable(x, dtype=dtype) if _is_python_scalar(x) else next(strong) for x in xs]


def _shapes_text(shapes):
    shapes = [str(tuple(s)) for s in shapes]
    return ", ".join(shapes[:-1]) + " and " + shapes[-1] if len(shapes) > 1 else shapes[0]


def _broadcast_shapes(name, *shapes):
    if builtins.all(s == shapes[0] for s in shapes):
        return shapes[0]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{name}: shapes {_shapes_text(shapes)} cannot be "
                         f"broadcast together") from None


def _normalize_axes(name, axis, shape):
    """``axis`` (None, int or tuple of ints) as a sorted tuple of non-negative ints."""
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"{name}: axis must be None, an int or a tuple of ints, "
                        f"got {axis!r}") from None
    result = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{name}: axis must be None, an int or a tuple of ints, "
                            f"got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}: axis {a} is out of bounds for shape {tuple(shape)}")
        result.append(int(a) % ndim)
    if len(set(result)) != len(result):
        raise ValueError(f"{name}: repeated axis in {axis!r} for shape {tuple(shape)}")
    return tuple(sorted(result))


def _keepdims_shape(shape, axes):
    """``shape`` with the reduced ``axes`` set to 1."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _mask(condition, dtype):
    """A boolean NumPy array as 0/1 constants of the given dtype."""
    return np.asarray(condition).astype(dtype)


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the VJP of NumPy broadcasting.

    Leading axes that broadcasting added are summed away, and axes where
    ``shape`` has size 1 (but ``grad`` does not) are summed with keepdims.
    """
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return sum(grad, axis=axes, keepdims=True).reshape(shape)


def _lift(t, shape):
    """Batched tangent ``t`` (k,) + s reshaped to k, 1, ..., 1, *s so that it has
    ``1 + len(shape)`` dims: it then broadcasts with arrays of ``shape``
    aligned from the right, with the batch axis left alone.  None stays None."""
    if t is None or t.ndim == len(shape) + 1:
        return t
    return t.reshape((t.shape[0],) + (1,) * (len(shape) + 1 - t.ndim) + t.shape[1:])


def _shift(axes):
    """Axes of an unbatched array as axes of its batched tangent."""
    return tuple(a + 1 for a in axes)


def _sum_tangents(*terms):
    """Sum of the terms that are not None (None if all are)."""
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _batch_size(tangents):
    return next(t for t in tangents if t is not None).shape[0]


def _zero_tangents(tangents, shapes, dtype):
    """``tangents`` with each None replaced by zeros of shape (k,) + shape."""
    k = _batch_size(tangents)
    return [Variable._wrap(np.zeros((k,) + tuple(s), dtype)) if t is None else t
            for t, s in zip(tangents, shapes)]


class _Elementwise(Function):
    """Base of broadcasting elementwise ops: checks the operand shapes."""

    @classmethod
    def apply(cls, *inputs, **params):
        _broadcast_shapes(cls.name, *(v.shape for v in inputs))
        return super().apply(*inputs, **params)


# --------------------------------------------------------------------------
# Binary arithmetic
# --------------------------------------------------------------------------


class Add(_Elementwise):
    name = "add"

    def forward(self, a, b):
        return a.data + b.data

    def vjp(self, g):
        a_shape, b_shape = self.input_shapes
        return unbroadcast(g, a_shape), unbroadcast(g, b_shape)

    def jvp(self, ta, tb):
        out = self.output_shape
        return _sum_tangents(_lift(ta, out), _lift(tb, out))


class Subtract(_Elementwise):
    name = "subtract"

    def forward(self, a, b):
        return a.data - b.data

    def vjp(self, g):
        a_shape, b_shape = self.input_shapes
        return unbroadcast(g, a_shape), unbroadcast(-g, b_shape)

    def jvp(self, ta, tb):
        out = self.output_shape
        return _sum_tangents(_lift(ta, out), None if tb is None else -_lift(tb, out))


class Multiply(_Elementwise):
    name = "multiply"

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a.data * b.data

    def vjp(self, g):
        a, b = self.saved_values()
        return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)

    def jvp(self, ta, tb):
        # d(a b) = da b + a db
        a, b = self.saved_values()
        out = self.output_shape
        return _sum_tangents(None if ta is None else _lift(ta, out) * b,
                             None if tb is None else a * _lift(tb, out))


class Divide(_Elementwise):
    name = "divide"

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a.data / b.data

    def vjp(self, g):
        a, b = self.saved_values()
        return unbroadcast(g / b, a.shape), unbroadcast(-g * a / (b * b), b.shape)

    def jvp(self, ta, tb):
        # d(a / b) = da / b - a db / b^2
        a, b = self.saved_values()
        out = self.output_shape
        return _sum_tangents(None if ta is None else _lift(ta, out) / b,
                             None if tb is None else -_lift(tb, out) * a / (b * b))


class Power(_Elementwise):
    """a ** b.  d/da = b a^(b-1), taken as 0 where b == 0;
    d/db = a^b log(a), taken as 0 where a == 0 and b >= 0."""

    name = "power"

    def forward(self, a, b):
        self.save_for_backward(a, b, OUTPUT)
        return np.power(a.data, b.data)

    def vjp(self, g):
        a, b, out = self.saved_values()
        grad_a = grad_b = None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.needs_input_grad[0]:
                grad_a = where(b.data == 0, 0.0, g * b * a ** (b - 1))
                grad_a = unbroadcast(grad_a, a.shape)
            if self.needs_input_grad[1]:
                grad_b = where((a.data == 0) & (b.data >= 0), 0.0, g * out * log(a))
                grad_b = unbroadcast(grad_b, b.shape)
        return grad_a, grad_b

    def jvp(self, ta, tb):
        # d(a^b) = b a^(b-1) da + a^b log(a) db, with the same special cases.
        a, b, out = self.saved_values()
        shape = self.output_shape
        term_a = term_b = None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if ta is not None:
                term_a = where(b.data == 0, 0.0, _lift(ta, shape) * (b * a ** (b - 1)))
            if tb is not None:
                term_b = where((a.data == 0) & (b.data >= 0), 0.0,
                               _lift(tb, shape) * (out * log(a)))
        return _sum_tangents(term_a, term_b)


class Maximum(_Elementwise):
    name = "maximum"
    _wins = staticmethod(np.greater)

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return np.maximum(a.data, b.data)

    def vjp(self, g):
        a, b = self.saved_values()
        # Weight of `a` in the output: 1 where it wins, 0.5 on a tie, else 0.
        w_a = _mask(self._wins(a.data, b.data), g.dtype) + 0.5 * _mask(a.data == b.data, g.dtype)
        return unbroadcast(g * w_a, a.shape), unbroadcast(g * (1 - w_a), b.shape)

    def jvp(self, ta, tb):
        # The output follows the winner; on a tie it moves by the average.
        a, b = self.saved_values()
        dtype = self.output_dtype
        w_a = _mask(self._wins(a.data, b.data), dtype) + 0.5 * _mask(a.data == b.data, dtype)
        out = self.output_shape
        return _sum_tangents(None if ta is None else _lift(ta, out) * w_a,
                             None if tb is None else _lift(tb, out) * (1 - w_a))


class Minimum(Maximum):
    name = "minimum"
    _wins = staticmethod(np.less)

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return np.minimum(a.data, b.data)


def add(a, b):
    return Add.apply(*_operands(a, b))


def subtract(a, b):
    return Subtract.apply(*_operands(a, b))


def multiply(a, b):
    return Multiply.apply(*_operands(a, b))


def divide(a, b):
    return Divide.apply(*_operands(a, b))


def power(a, b):
    return Power.apply(*_operands(a, b))


def maximum(a, b):
    return Maximum.apply(*_operands(a, b))


def minimum(a, b):
    return Minimum.apply(*_operands(a, b))


# --------------------------------------------------------------------------
# Unary elementwise
# --------------------------------------------------------------------------


class Negative(Function):
    name = "negative"

    def forward(self, x):
        return -x.data

    def vjp(self, g):
        return -g

    def jvp(self, t):
        return -t


class Exp(Function):
    name = "exp"

    def forward(self, x):
        self.save_for_backward(OUTPUT)
        return np.exp(x.data)

    def vjp(self, g):
        (y,) = self.saved_values()
        return g * y

    def jvp(self, t):
        (y,) = self.saved_values()          # d exp(x) = exp(x) dx
        return t * y


class Log(Function):
    name = "log"

    def forward(self, x):
        self.save_for_backward(x)
        return np.log(x.data)

    def vjp(self, g):
        (x,) = self.saved_values()
        return g / x

    def jvp(self, t):
        (x,) = self.saved_values()          # d log(x) = dx / x
        return t / x


class Log1p(Function):
    name = "log1p"

    def forward(self, x):
        self.save_for_backward(x)
        return np.log1p(x.data)

    def vjp(self, g):
        (x,) = self.saved_values()
        return g / (1 + x)

    def jvp(self, t):
        (x,) = self.saved_values()          # d log(1 + x) = dx / (1 + x)
        return t / (1 + x)


class Sqrt(Function):
    name = "sqrt"

    def forward(self, x):
        self.save_for_backward(OUTPUT)
        return np.sqrt(x.data)

    def vjp(self, g):
        (y,) = self.saved_values()
        return g / (2 * y)

    def jvp(self, t):
        (y,) = self.saved_values()          # d sqrt(x) = dx / (2 sqrt(x))
        return t / (2 * y)


class Sin(Function):
    name = "sin"

    def forward(self, x):
        self.save_for_backward(x)
        return np.sin(x.data)

    def vjp(self, g):
        (x,) = self.saved_values()
        return g * cos(x)

    def jvp(self, t):
        (x,) = self.saved_values()          # d sin(x) = cos(x) dx
        return t * cos(x)


class Cos(Function):
    name = "cos"

    def forward(self, x):
        self.save_for_backward(x)
        return np.cos(x.data)

    def vjp(self, g):
        (x,) = self.saved_values()
        return -g * sin(x)

    def jvp(self, t):
        (x,) = self.saved_values()          # d cos(x) = -sin(x) dx
        return -t * sin(x)


class Tanh(Function):
    name = "tanh"

    def forward(self, x):
        self.save_for_backward(OUTPUT)
        return np.tanh(x.data)

    def vjp(self, g):
        (y,) = self.saved_values()
        return g * (1 - y * y)

    def jvp(self, t):
        (y,) = self.saved_values()          # d tanh(x) = (1 - tanh(x)^2) dx
        return t * (1 - y * y)


class Sigmoid(Function):
    name = "sigmoid"

    def forward(self, x):
        self.save_for_backward(OUTPUT)
        e = np.exp(-np.abs(x.data))          # in (0, 1]: never overflows
        return np.where(x.data >= 0, 1 / (1 + e), e / (1 + e))

    def vjp(self, g):
        (y,) = self.saved_values()
        return g * y * (1 - y)

    def jvp(self, t):
        (y,) = self.saved_values()          # d s(x) = s(x) (1 - s(x)) dx
        return t * (y * (1 - y))


class Relu(Function):
    name = "relu"

    def forward(self, x):
        self.save_for_backward(x)
        return np.maximum(x.data, 0)

    def vjp(self, g):
        (x,) = self.saved_values()
        return g * _mask(x.data > 0, g.dtype)           # relu'(0) = 0

    def jvp(self, t):
        (x,) = self.saved_values()
        return t * _mask(x.data > 0, t.dtype)           # relu'(0) = 0


class Abs(Function):
    name = "abs"

    def forward(self, x):
        self.save_for_backward(x)
        return np.abs(x.data)

    def vjp(self, g):
        (x,) = self.saved_values()
        return g * np.sign(x.data).astype(g.dtype)      # abs'(0) = sign(0) = 0

    def jvp(self, t):
        (x,) = self.saved_values()
        return t * np.sign(x.data).astype(t.dtype)      # abs'(0) = sign(0) = 0


class AsType(Function):
    name = "astype"

    def forward(self, x):
        return x.data.astype(self.dtype)

    def vjp(self, g):
        return g.astype(self.input_dtype)

    def jvp(self, t):
        return t.astype(self.dtype)


def negative(x):
    return Negative.apply(as_variable(x))


def exp(x):
    return Exp.apply(as_variable(x))


def log(x):
    return Log.apply(as_variable(x))


def log1p(x):
    return Log1p.apply(as_variable(x))


def sqrt(x):
    return Sqrt.apply(as_variable(x))


def sin(x):
    return Sin.apply(as_variable(x))


def cos(x):
    return Cos.apply(as_variable(x))


def tanh(x):
    return Tanh.apply(as_variable(x))


def sigmoid(x):
    return Sigmoid.apply(as_variable(x))


def relu(x):
    return Relu.apply(as_variable(x))


def abs(x):
    return Abs.apply(as_variable(x))


def astype(x, dtype):
    x = as_variable(x)
    return AsType.apply(x, dtype=_check_float_dtype(dtype), input_dtype=x.dtype)


# --------------------------------------------------------------------------
# clip and where (non-differentiable bounds / condition)
# --------------------------------------------------------------------------


class Clip(Function):
    """Bounds are constants (None = unbounded); gradient passes where
    a_min <= x <= a_max, inclusive."""

    name = "clip"

    def forward(self, x):
        self.save_for_backward(x)
        out = x.data
        if self.a_min is not None:
            out = np.maximum(out, self.a_min)
        if self.a_max is not None:
            out = np.minimum(out, self.a_max)
        return np.broadcast_to(out, self.out_shape)

    def vjp(self, g):
        (x,) = self.saved_values()
        inside = np.ones(self.out_shape, dtype=bool)
        if self.a_min is not None:
            inside &= x.data >= self.a_min
        if self.a_max is not None:
            inside &= x.data <= self.a_max
        return unbroadcast(g * _mask(inside, g.dtype), x.shape)

    def jvp(self, t):
        (x,) = self.saved_values()
        inside = np.ones(self.out_shape, dtype=bool)
        if self.a_min is not None:
            inside &= x.data >= self.a_min
        if self.a_max is not None:
            inside &= x.data <= self.a_max
        return _lift(t, self.out_shape) * _mask(inside, t.dtype)


def clip(x, a_min, a_max):
    x = as_variable(x)

    def bound(b):
        if b is None:
            return None
        if isinstance(b, Variable):
            if b.requires_grad:
                raise ValueError("clip: the bounds are constants and are not differentiated; "
                                 "use maximum/minimum for differentiable bounds")
            b = b.data
        b = np.asarray(b)
        if b.dtype.kind not in "fiub":
            raise TypeError(f"clip: bounds must be real numbers, got an array of dtype {b.dtype}")
        return np.array(b, dtype=x.dtype)      # bounds take x's dtype

    a_min, a_max = bound(a_min), bound(a_max)
    shapes = [x.shape] + [b.shape for b in (a_min, a_max) if b is not None]
    out_shape = _broadcast_shapes("clip", *shapes)
    return Clip.apply(x, a_min=a_min, a_max=a_max, out_shape=out_shape)


class Where(Function):
    name = "where"

    def forward(self, x, y):
        _broadcast_shapes(self.name, self.cond.shape, x.shape, y.shape)
        return np.where(self.cond, x.data, y.data)

    def vjp(self, g):
        x_shape, y_shape = self.input_shapes
        return (unbroadcast(where(self.cond, g, 0.0), x_shape),
                unbroadcast(where(self.cond, 0.0, g), y_shape))

    def jvp(self, tx, ty):
        out = self.output_shape
        tx = 0.0 if tx is None else _lift(tx, out)
        ty = 0.0 if ty is None else _lift(ty, out)
        return where(self.cond, tx, ty)


def where(cond, x, y):
    cond = cond.data if isinstance(cond, Variable) else cond
    cond = np.array(cond, dtype=bool)          # a copy: later edits can't change it
    return Where.apply(*_operands(x, y), cond=cond)


# --------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------


class Sum(Function):
    name = "sum"

    def forward(self, x):
        return np.sum(x.data, axis=self.axes, keepdims=self.keepdims)

    def vjp(self, g):
        (shape,) = self.input_shapes
        return broadcast_to(g.reshape(_keepdims_shape(shape, self.axes)), shape)

    def jvp(self, t):
        return sum(t, axis=_shift(self.axes), keepdims=self.keepdims)


class Mean(Function):
    name = "mean"

    def forward(self, x):
        return np.mean(x.data, axis=self.axes, keepdims=self.keepdims)

    def vjp(self, g):
        (shape,) = self.input_shapes
        count = math.prod(shape[a] for a in self.axes)
        return broadcast_to(g.reshape(_keepdims_shape(shape, self.axes)), shape) / count

    def jvp(self, t):
        return mean(t, axis=_shift(self.axes), keepdims=self.keepdims)


class Max(Function):
    """The gradient is split evenly among the elements equal to the maximum."""

    name = "max"
    _reduce = staticmethod(np.max)

    def forward(self, x):
        if builtins.any(x.shape[a] == 0 for a in self.axes):
            raise ValueError(f"{self.name}: cannot reduce over a zero-size axis, "
                             f"shape {x.shape}, axes {self.axes}")
        self.save_for_backward(x, OUTPUT)
        return self._reduce(x.data, axis=self.axes, keepdims=self.keepdims)

    def vjp(self, g):
        x, out = self.saved_values()
        kshape = _keepdims_shape(x.shape, self.axes)
        ties = x.data == out.data.reshape(kshape)
        weights = ties / np.sum(ties, axis=self.axes, keepdims=True)
        return g.reshape(kshape) * weights.astype(g.dtype)

    def jvp(self, t):
        # The maximum moves with the average of its tied arguments.
        x, out = self.saved_values()
        ties = x.data == out.data.reshape(_keepdims_shape(x.shape, self.axes))
        weights = (ties / np.sum(ties, axis=self.axes, keepdims=True)).astype(t.dtype)
        return sum(t * weights, axis=_shift(self.axes), keepdims=self.keepdims)


class Min(Max):
    name = "min"
    _reduce = staticmethod(np.min)


def _reduction(cls, x, axis, keepdims):
    x = as_variable(x)
    return cls.apply(x, axes=_normalize_axes(cls.name, axis, x.shape), keepdims=bool(keepdims))


def sum(x, axis=None, keepdims=False):
    return _reduction(Sum, x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    return _reduction(Mean, x, axis, keepdims)


def max(x, axis=None, keepdims=False):
    return _reduction(Max, x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    return _reduction(Min, x, axis, keepdims)


# --------------------------------------------------------------------------
# Shape ops
# --------------------------------------------------------------------------


class Reshape(Function):
    name = "reshape"

    def forward(self, x):
        try:
            return x.data.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape shape {x.shape} (size {x.size}) "
                             f"into shape {self.shape}") from None

    def vjp(self, g):
        return g.reshape(self.input_shapes[0])

    def jvp(self, t):
        return t.reshape((t.shape[0],) + self.output_shape)


class Transpose(Function):
    name = "transpose"

    def forward(self, x):
        return np.transpose(x.data, self.axes)

    def vjp(self, g):
        return g.transpose(tuple(int(i) for i in np.argsort(self.axes)))

    def jvp(self, t):
        return t.transpose((0,) + _shift(self.axes))


class BroadcastTo(Function):
    name = "broadcast_to"

    def forward(self, x):
        return np.broadcast_to(x.data, self.shape)

    def vjp(self, g):
        return unbroadcast(g, self.input_shapes[0])

    def jvp(self, t):
        return broadcast_to(_lift(t, self.shape), (t.shape[0],) + self.shape)


class Concatenate(Function):
    name = "concatenate"

    def forward(self, *xs):
        return np.concatenate([x.data for x in xs], axis=self.axis)

    def vjp(self, g):
        edges = np.cumsum([0] + [s[self.axis] for s in self.input_shapes]).tolist()
        before = (slice(None),) * self.axis
        return tuple(g[before + (slice(lo, hi),)] for lo, hi in zip(edges[:-1], edges[1:]))

    def jvp(self, *ts):
        ts = _zero_tangents(ts, self.input_shapes, self.output_dtype)
        return concatenate(ts, axis=self.axis + 1)


class Stack(Function):
    name = "stack"

    def forward(self, *xs):
        return np.stack([x.data for x in xs], axis=self.axis)

    def vjp(self, g):
        before = (slice(None),) * self.axis
        return tuple(g[before + (i,)] for i in range(len(self.input_shapes)))

    def jvp(self, *ts):
        ts = _zero_tangents(ts, self.input_shapes, self.output_dtype)
        return stack(ts, axis=self.axis + 1)


class GetItem(Function):
    """x[key] with full NumPy semantics (basic and advanced indexing)."""

    name = "getitem"

    def forward(self, x):
        return x.data[self.key]

    def vjp(self, g):
        return IndexAdd.apply(g, shape=self.input_shapes[0], key=self.key)

    def jvp(self, t):
        # Prepending a slice to ``key`` would move the batch axis for some
        # advanced-indexing keys, so index the flattened tangent instead with
        # the flat positions the key selects.
        (shape,) = self.input_shapes
        positions = _flat_positions(shape, self.key)
        k = t.shape[0]
        flat = t.reshape((k, math.prod(shape)))[:, positions.ravel()]
        return flat.reshape((k,) + positions.shape)


class IndexAdd(Function):
    """zeros(shape) with g added at [key] (repeated indices accumulate).

    The VJP of GetItem; its own VJP is GetItem again.  The positions are
    found by indexing an array of flat indices with the same key, so every
    kind of NumPy key (None, Ellipsis, masks, integer arrays) works.
    """

    name = "index_add"

    def forward(self, g):
        size = math.prod(self.shape)
        positions = np.arange(size).reshape(self.shape)[self.key]
        out = np.zeros(size, dtype=g.dtype)
        np.add.at(out, np.ravel(positions), g.data.ravel())
        return out.reshape(self.shape)

    def vjp(self, gg):
        return gg[self.key]

    def jvp(self, t):
        # Linear in g: scatter-add each direction's tangent (flat positions,
        # as in GetItem.jvp).
        positions = _flat_positions(self.shape, self.key)
        k, size = t.shape[0], math.prod(self.shape)
        flat = IndexAdd.apply(t.reshape((k, positions.size)), shape=(k, size),
                              key=(slice(None), positions.ravel()))
        return flat.reshape((k,) + self.shape)


def _flat_positions(shape, key):
    """The flat (C-order) indices into an array of ``shape`` that ``[key]`` picks."""
    return np.arange(math.prod(shape)).reshape(shape)[key]


class Identity(Function):
    """y = x as a new node: a nested transform differentiates w.r.t. such a
    fresh node, so an outer Variable that ``f`` also captures directly is
    held constant (no perturbation confusion)."""

    name = "identity"

    def forward(self, x):
        return x.data

    def vjp(self, g):
        return g

    def jvp(self, t):
        return t


def identity(x):
    return Identity.apply(as_variable(x))


def _int_tuple(name, what, value):
    """An int or a sequence of ints as a tuple of ints; TypeError otherwise."""
    items = (value,) if isinstance(value, (int, np.integer)) else value
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{name}: {what} must be an int or a tuple of ints, got {value!r}") from None
    for a in items:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{name}: {what} must contain only ints, got {a!r}")
    return tuple(int(a) for a in items)


def reshape(x, shape):
    x = as_variable(x)
    return Reshape.apply(x, shape=_int_tuple("reshape", "shape", shape))


def transpose(x, axes=None):
    x = as_variable(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    else:
        axes, n = _int_tuple("transpose", "axes", axes), x.ndim
        valid = builtins.all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                             and -n <= a < n for a in axes)
        if not valid or sorted(a % n for a in axes) != list(range(n)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                             f"axes of shape {x.shape}")
        axes = tuple(int(a) % x.ndim for a in axes)
    return Transpose.apply(x, axes=axes)


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
    return xs


def concatenate(seq, axis=0):
    xs = _sequence("concatenate", seq)
    if axis is None:                           # NumPy: flatten the arrays first
        xs = [reshape(x, (-1,)) for x in xs]
        axis = 0
    shapes = [x.shape for x in xs]
    ndim = xs[0].ndim
    if ndim == 0 or builtins.any(x.ndim != ndim for x in xs):
        raise ValueError(f"concatenate: shapes {_shapes_text(shapes)} must have the same, "
                         f"non-zero number of dimensions")
    (axis,) = _normalize_axes("concatenate", axis, xs[0].shape)
    if builtins.any(s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]
                    for s in shapes):
        raise ValueError(f"concatenate: shapes {_shapes_text(shapes)} differ outside "
                         f"axis {axis}")
    return Concatenate.apply(*xs, axis=axis)


def stack(seq, axis=0):
    xs = _sequence("stack", seq)
    shapes = [x.shape for x in xs]
    if builtins.any(s != shapes[0] for s in shapes):
        raise ValueError(f"stack: all shapes must be equal, got {_shapes_text(shapes)}")
    ndim = len(shapes[0]) + 1                  # the result has one more axis
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"stack: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of bounds for stacking arrays of "
                         f"shape {shapes[0]}")
    return Stack.apply(*xs, axis=int(axis) % ndim)


def _index_key(key):
    """Freeze an indexing key: Variables become their data, arrays are copied."""
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if isinstance(key, Variable):
        return key.data.copy()
    if isinstance(key, np.ndarray):
        return key.copy()
    return key


def getitem(x, key):
    return GetItem.apply(as_variable(x), key=_index_key(key))


# --------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------


def _swap_last(v):
    """Swap the last two axes of a Variable (ndim >= 2)."""
    return v.transpose(tuple(range(v.ndim - 2)) + (v.ndim - 1, v.ndim - 2))


class MatMul(Function):
    """NumPy matmul: 1-D operands are promoted (a to a row, b to a column)
    and the promoted axis dropped from the result; batch axes broadcast."""

    name = "matmul"

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return np.matmul(a.data, b.data)

    def vjp(self, g):
        a, b = self.saved_values()
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a     # (k,) -> (1, k)
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b     # (k,) -> (k, 1)
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = g.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(g2 @ _swap_last(b2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            grad_b = unbroadcast(_swap_last(a2) @ g2, b2.shape).reshape(b.shape)
        return grad_a, grad_b

    def jvp(self, ta, tb):
        # d(a @ b) = da @ b + a @ db.  As in the VJP, 1-D operands are promoted
        # to matrices; the tangents are promoted the same way and lifted so
        # their batch axis sits in front of all of matmul's batch axes.
        a, b = self.saved_values()
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a     # (k,) -> (1, k)
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b     # (k,) -> (k, 1)
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        out2 = batch + (a2.shape[-2], b2.shape[-1])
        terms = []
        if ta is not None:
            ta2 = _lift(ta.reshape((ta.shape[0],) + a2.shape), out2)
            terms.append(ta2 @ b2)
        if tb is not None:
            tb2 = _lift(tb.reshape((tb.shape[0],) + b2.shape), out2)
            terms.append(a2 @ tb2)
        t = _sum_tangents(*terms)
        return t.reshape((t.shape[0],) + self.output_shape)


def matmul(a, b):
    a, b = _operands(a, b)
    sa, sb = a.shape, b.shape
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got "
                         f"shapes {sa} and {sb}")
    k_b = sb[0] if b.ndim == 1 else sb[-2]
    if sa[-1] != k_b:
        raise ValueError(f"matmul: shapes {sa} and {sb} are not aligned")
    try:
        np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of shapes {sa} and {sb} cannot be "
                         f"broadcast together") from None
    return MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """``x @ weight + bias`` (bias optional): x (..., K), weight (K, N), bias (N,).

    Composed from matmul and add here (the C++ engine has it as one fused
    primitive), so the two engines derive its gradients independently."""
    operands = (x, weight) if bias is None else (x, weight, bias)
    vs = _operands(*operands)
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


# --------------------------------------------------------------------------
# Normalisers (numerically stable: the max is subtracted before exp)
# --------------------------------------------------------------------------


def _logsumexp_keepdims(x, axes):
    m = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0)       # all -inf (or inf) slices: no shift
    with np.errstate(divide="ignore"):
        return m + np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True))


class Softmax(Function):
    name = "softmax"

    def forward(self, x):
        self.save_for_backward(OUTPUT)
        return np.exp(x.data - _logsumexp_keepdims(x.data, self.axes))

    def vjp(self, g):
        (y,) = self.saved_values()
        return y * (g - sum(g * y, axis=self.axes, keepdims=True))

    def jvp(self, t):
        # d softmax = y * (dx - <y, dx>) along the axes
        (y,) = self.saved_values()
        return y * (t - sum(y * t, axis=_shift(self.axes), keepdims=True))


class LogSoftmax(Function):
    name = "log_softmax"

    def forward(self, x):
        self.save_for_backward(OUTPUT)
        return x.data - _logsumexp_keepdims(x.data, self.axes)

    def vjp(self, g):
        (y,) = self.saved_values()
        return g - exp(y) * sum(g, axis=self.axes, keepdims=True)

    def jvp(self, t):
        # d log_softmax = dx - <softmax(x), dx> along the axes
        (y,) = self.saved_values()
        return t - sum(exp(y) * t, axis=_shift(self.axes), keepdims=True)


class LogSumExp(Function):
    name = "logsumexp"

    def forward(self, x):
        self.save_for_backward(x, OUTPUT)
        out = _logsumexp_keepdims(x.data, self.axes)
        return out if self.keepdims else np.squeeze(out, axis=self.axes)

    def vjp(self, g):
        x, out = self.saved_values()
        kshape = _keepdims_shape(x.shape, self.axes)
        return g.reshape(kshape) * exp(x - out.reshape(kshape))   # softmax(x) * g

    def jvp(self, t):
        # d logsumexp = <softmax(x), dx> along the axes
        x, out = self.saved_values()
        p = exp(x - out.reshape(_keepdims_shape(x.shape, self.axes)))
        return sum(p * t, axis=_shift(self.axes), keepdims=self.keepdims)


def softmax(x, axis=-1):
    x = as_variable(x)
    return Softmax.apply(x, axes=_normalize_axes("softmax", axis, x.shape))


def log_softmax(x, axis=-1):
    x = as_variable(x)
    return LogSoftmax.apply(x, axes=_normalize_axes("log_softmax", axis, x.shape))


def logsumexp(x, axis=None, keepdims=False):
    x = as_variable(x)
    return LogSumExp.apply(x, axes=_normalize_axes("logsumexp", axis, x.shape),
                           keepdims=bool(keepdims))
