"""The core of the reference engine: grad mode, ``Variable``, ``Function``
(a node of the graph) and the backward sweep.

The primitive operations themselves live in ``ops.py``; every one is a
``Function`` subclass whose ``forward`` (NumPy in, NumPy out), ``vjp``
(vector-Jacobian product) and ``jvp`` (Jacobian-vector product) sit side by
side.  Both rules are written with Variable ops, so the sweeps that use them
can themselves be recorded (``create_graph=True``) and differentiated again.

Graph bookkeeping in one paragraph: an op whose inputs require grad (while
grad mode is on) records a ``Function`` as the output's ``grad_fn``; the
function keeps its differentiable inputs in ``inputs`` and whatever its VJP
needs in ``save_for_backward``.  ``backward`` sorts the graph topologically
(iteratively, so deep graphs are fine), walks it from the output to the
leaves calling each ``vjp``, and accumulates into ``.grad`` of the leaves.
Every Variable carries a version counter bumped by in-place ops; a saved
value whose version changed makes ``backward`` raise.

The functional API (``functional.py``) uses two more sweeps over the same
recorded graph, both between chosen *input* Variables and one output and
neither touching ``.grad``: ``reverse_sweep`` (cotangent of the output ->
gradients of the inputs) and ``forward_sweep`` (tangents of the inputs ->
tangent of the output, inputs to output in topological order).  Tangents in
the forward sweep always carry one leading batch axis: a batch of k
directions, k = 1 for a single ``jvp``.
"""

import functools
import operator
import threading

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------
# Grad mode (thread-local)
# --------------------------------------------------------------------------

_grad_mode = threading.local()


def is_grad_enabled():
    """True unless inside ``no_grad()`` (per thread)."""
    return getattr(_grad_mode, "enabled", True)


class _GradModeContext:
    """Base of ``no_grad`` / ``enable_grad``: context manager and decorator.

    Usable as ``with no_grad():``, ``@no_grad()`` and ``@no_grad``.  The
    previous mode is kept on a per-thread stack, so instances may be nested,
    reused and shared between threads.
    """

    enabled = True

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if func is None:
            return self
        if not callable(func):
            raise TypeError(f"{cls.__name__}() takes no arguments or a function")
        return self(func)

    def __enter__(self):
        stack = getattr(_grad_mode, "stack", None)
        if stack is None:
            stack = _grad_mode.stack = []
        stack.append(is_grad_enabled())
        _grad_mode.enabled = self.enabled
        return self

    def __exit__(self, *exc_info):
        _grad_mode.enabled = _grad_mode.stack.pop()
        return False

    def __call__(self, func):
        cls = type(self)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with cls():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """Disable graph recording in this thread (context manager / decorator)."""

    enabled = False


class enable_grad(_GradModeContext):
    """Re-enable graph recording in this thread (context manager / decorator)."""

    enabled = True


# --------------------------------------------------------------------------
# dtype handling
# --------------------------------------------------------------------------


def _check_float_dtype(dtype):
    """Validate an explicit dtype: float32 or float64, else TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _to_array(data, dtype=None, name="Variable"):
    """Copy array-like ``data`` into a fresh C-contiguous float array.

    float32/float64 data keeps its dtype; bool/int data becomes float64.
    """
    if isinstance(data, Variable):
        data = data._data
    if dtype is not None:
        dtype = _check_float_dtype(dtype)
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: unsupported data type {arr.dtype}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in _FLOAT_DTYPES else np.dtype(np.float64)
    return np.array(arr, dtype=dtype, copy=True, order="C")


class _Version:
    """A mutable counter shared by Variables that share a buffer (detach)."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


# --------------------------------------------------------------------------
# Function: a node of the graph
# --------------------------------------------------------------------------

#: Placeholder for ``save_for_backward``: "save the output of this op".
OUTPUT = object()

_RELEASED = (
    "{name}: trying to backward through the graph a second time, but its saved "
    "values were freed after the first backward. Pass retain_graph=True to the "
    "first backward() call if you need to backward through it again."
)


class Function:
    """Base class of primitive ops.

    Subclasses define ``name``, ``forward(self, *inputs)`` (receives Variables,
    returns a NumPy array), ``vjp(self, g)`` (receives the output gradient as
    a Variable, returns one gradient Variable -- or None -- per input) and
    ``jvp(self, *tangents)`` (receives one tangent Variable -- or None -- per
    input, each of shape ``(k,) + input_shape`` with a leading batch axis of k
    directions, and returns the output tangent, broadcastable to
    ``(k,) + output_shape``).  Keyword parameters given to ``apply`` (axes,
    shapes, keys...) become attributes of the node; ``apply`` also records
    ``output_shape`` and ``output_dtype``.
    """

    name = "function"

    def __init__(self, **params):
        for key, value in params.items():
            setattr(self, key, value)
        self.inputs = ()            # differentiable inputs (None where not needed)
        self.input_shapes = ()
        self.output_shape = ()
        self.output_dtype = None
        self.needs_input_grad = ()
        self._to_save = ()
        self._saved = ()
        self._saved_versions = ()
        self._released = False

    def __repr__(self):
        return f"<{self.name}>"

    # -- forward ------------------------------------------------------------

    @classmethod
    def apply(cls, *inputs, **params):
        """Run the op on Variables and record it if a gradient is needed."""
        fn = cls(**params)
        fn.input_shapes = tuple(v.shape for v in inputs)
        fn.needs_input_grad = tuple(v._requires_grad for v in inputs)
        data = np.asarray(fn.forward(*inputs))
        # An op's output always owns a fresh, writable, C-contiguous buffer,
        # so in-place ops on it can never silently change another Variable.
        if (data.base is not None or not data.flags.c_contiguous
                or not data.flags.writeable
                or any(data is v._data for v in inputs)):
            data = data.copy(order="C")
        assert data.dtype in _FLOAT_DTYPES, f"{cls.name} produced {data.dtype}"
        fn.output_shape, fn.output_dtype = data.shape, data.dtype
        out = Variable._wrap(data)
        if is_grad_enabled() and any(fn.needs_input_grad):
            fn.inputs = tuple(v if v._requires_grad else None for v in inputs)
            fn._saved = tuple(out if v is OUTPUT else v for v in fn._to_save)
            fn._saved_versions = tuple(v._version.value for v in fn._saved)
            out._requires_grad = True
            out._grad_fn = fn
        fn._to_save = ()
        return out

    def save_for_backward(self, *values):
        """Keep Variables (or ``OUTPUT``) for the VJP; checked for in-place edits."""
        self._to_save = values

    # -- backward -----------------------------------------------------------

    def _check_saved(self):
        if self._released:
            raise RuntimeError(_RELEASED.format(name=self.name))
        for i, (v, version) in enumerate(zip(self._saved, self._saved_versions)):
            if v._version.value != version:
                raise RuntimeError(
                    f"{self.name}: a value saved for backward (saved value {i}, "
                    f"shape {v.shape}) was modified by an in-place operation: "
                    f"it is at version {v._version.value}, expected version {version}"
                )

    def saved_values(self):
        """The values given to ``save_for_backward`` (after checking them)."""
        self._check_saved()
        return self._saved

    def _release(self):
        self._saved = ()
        self._saved_versions = ()
        self._released = True

    def _input_grads(self, g):
        """Call ``vjp`` and check/cast the gradients to the inputs' shapes/dtypes."""
        grads = self.vjp(g)
        grads = (grads,) if isinstance(grads, Variable) else tuple(grads)
        if len(grads) != len(self.inputs):
            raise RuntimeError(f"{self.name}: VJP returned {len(grads)} gradients "
                               f"for {len(self.inputs)} inputs")
        result = []
        for inp, shape, gi in zip(self.inputs, self.input_shapes, grads):
            if inp is None or gi is None:
                result.append(None)
                continue
            if gi.shape != shape:
                raise RuntimeError(f"{self.name}: internal error, VJP gave a gradient "
                                   f"of shape {gi.shape} for an input of shape {shape}")
            if gi.dtype != inp.dtype:
                gi = gi.astype(inp.dtype)
            result.append(gi)
        return result

    def _output_tangent(self, tangents):
        """Call ``jvp`` and check/broadcast/cast the tangent to the output's."""
        k = next(t for t in tangents if t is not None).shape[0]
        t = self.jvp(*tangents)
        shape = (k,) + self.output_shape
        if t is None:
            return None
        if not isinstance(t, Variable):
            raise RuntimeError(f"{self.name}: internal error, JVP returned "
                               f"{type(t).__name__}, not a Variable")
        if t.shape != shape:
            try:
                ok = np.broadcast_shapes(t.shape, shape) == shape
            except ValueError:
                ok = False
            if not ok:
                raise RuntimeError(f"{self.name}: internal error, JVP gave a tangent of "
                                   f"shape {t.shape} for a batched output of shape {shape}")
            t = ops.broadcast_to(t, shape)
        if t.dtype != self.output_dtype:
            t = t.astype(self.output_dtype)
        return t

    def forward(self, *inputs):  # pragma: no cover - abstract
        raise NotImplementedError

    def vjp(self, g):  # pragma: no cover - abstract
        raise NotImplementedError

    def jvp(self, *tangents):
        raise NotImplementedError(f"{self.name}: this op has no forward-mode (JVP) rule")


# --------------------------------------------------------------------------
# The backward sweep
# --------------------------------------------------------------------------


def _parents(var, stop=()):
    fn = var._grad_fn
    if fn is None or id(var) in stop:
        return iter(())
    return iter([p for p in fn.inputs if p is not None])


def _topological_order(root, stop=()):
    """Variables reachable from ``root``, outputs before their inputs.

    Iterative depth-first search (an explicit stack of parent iterators), so
    a chain of 100,000 ops does not hit Python's recursion limit.  Variables
    whose id is in ``stop`` are treated as leaves (the search does not go
    past them): the functional API stops at the inputs it differentiates.
    """
    order = []
    visited = {id(root)}
    stack = [(root, _parents(root, stop))]
    while stack:
        var, parents = stack[-1]
        for parent in parents:
            if id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, _parents(parent, stop)))
                break
        else:                      # all parents done: post-order position
            stack.pop()
            order.append(var)
    order.reverse()
    return order


def backward(root, grad=None, retain_graph=False, create_graph=False):
    """Accumulate d(root)/d(leaf), contracted with ``grad``, into leaf ``.grad``."""
    if not root._requires_grad:
        raise RuntimeError("backward: this Variable does not require grad and has no grad_fn")
    if grad is None:
        if root.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for single-element "
                f"outputs, but the output has shape {root.shape}; pass grad=...")
        seed = Variable._wrap(np.ones(root.shape, root.dtype))
    else:
        arr = _to_array(grad, root.dtype, name="backward")
        if arr.shape != root.shape:
            raise ValueError(f"backward: grad has shape {arr.shape} but the output "
                             f"has shape {root.shape}")
        if create_graph and isinstance(grad, Variable):
            seed = grad if grad.dtype == root.dtype else grad.astype(root.dtype)
        else:
            seed = Variable._wrap(arr)
    retain_graph = retain_graph or create_graph

    order = _topological_order(root)
    # Validate the whole graph first so an error never leaves half-updated grads.
    for var in order:
        if var._grad_fn is not None:
            var._grad_fn._check_saved()

    grads = {id(root): seed}           # id(Variable) -> gradient Variable
    with enable_grad() if create_graph else no_grad():
        for var in order:
            g = grads.pop(id(var), None)
            if g is None:
                continue
            fn = var._grad_fn
            if fn is None or var._retains_grad:
                var._accumulate_grad(g, create_graph)
            if fn is None:
                continue
            for parent, pg in zip(fn.inputs, fn._input_grads(g)):
                if parent is None or pg is None:
                    continue
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
            if not retain_graph:
                fn._release()


def reverse_sweep(output, inputs, cotangent, create_graph=False):
    """Gradients of ``output`` contracted with ``cotangent``, w.r.t. ``inputs``.

    ``cotangent`` is a Variable of the output's shape.  Returns one gradient
    Variable per input (None if the output does not depend on it).  Unlike
    ``backward`` it leaves ``.grad`` alone, stops at ``inputs`` (they may be
    non-leaves) and never frees the graph, so it can be repeated.  With
    ``create_graph=True`` the sweep is recorded, so the gradients can be
    differentiated again.
    """
    wanted = {id(x) for x in inputs}
    order = _topological_order(output, stop=wanted)
    for var in order:
        if var._grad_fn is not None and id(var) not in wanted:
            var._grad_fn._check_saved()
    grads = {id(output): cotangent}        # id(Variable) -> gradient Variable
    found = {}
    with enable_grad() if create_graph else no_grad():
        for var in order:
            g = grads.pop(id(var), None)
            if g is None:
                continue
            if id(var) in wanted:
                found[id(var)] = g
                continue
            fn = var._grad_fn
            if fn is None:
                continue
            for parent, pg in zip(fn.inputs, fn._input_grads(g)):
                if parent is None or pg is None:
                    continue
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
    return [found.get(id(x)) for x in inputs]


def forward_sweep(output, inputs, tangents, create_graph=False):
    """Tangent of ``output`` given batched tangents of ``inputs`` (forward mode).

    ``tangents`` holds, per input, a Variable of shape ``(k,) + input.shape``
    (k directions at once) or None (a zero tangent).  Nodes are visited from
    the inputs towards the output (the reverse of the topological order used
    by ``backward``), each applying its ``jvp`` to its inputs' tangents.
    Returns a Variable of shape ``(k,) + output.shape``, or None if the
    output does not depend on any input with a tangent.  With
    ``create_graph=True`` the sweep is recorded (nested transforms).
    """
    tangent_of = {id(x): t for x, t in zip(inputs, tangents) if t is not None}
    stop = {id(x) for x in inputs}
    order = _topological_order(output, stop=stop)
    with enable_grad() if create_graph else no_grad():
        for var in reversed(order):             # inputs first, output last
            fn = var._grad_fn
            if id(var) in stop or fn is None:
                continue
            ts = [None if p is None else tangent_of.get(id(p)) for p in fn.inputs]
            if all(t is None for t in ts):
                continue
            fn._check_saved()
            t = fn._output_tangent(ts)
            if t is not None:
                tangent_of[id(var)] = t
    return tangent_of.get(id(output))


# --------------------------------------------------------------------------
# Variable
# --------------------------------------------------------------------------


class Variable:
    """A NumPy array (float32 or float64) that records the ops applied to it."""

    __slots__ = ("_data", "_requires_grad", "_grad", "_grad_fn",
                 "_retains_grad", "_version", "__weakref__")
    __array_ufunc__ = None   # `ndarray + Variable` dispatches to Variable.__radd__
    __hash__ = object.__hash__

    def __init__(self, data, requires_grad=False, dtype=None):
        self._data = _to_array(data, dtype)
        self._setup(bool(requires_grad))

    @classmethod
    def _wrap(cls, array, version=None):
        """A Variable around ``array`` without copying it."""
        self = cls.__new__(cls)
        self._data = array
        self._setup(False, version)
        return self

    def _setup(self, requires_grad, version=None):
        self._requires_grad = requires_grad
        self._grad = None
        self._grad_fn = None
        self._retains_grad = False
        self._version = version if version is not None else _Version()

    # -- data access ----------------------------------------------------------

    @property
    def data(self):
        """The underlying NumPy array (shares memory with the Variable)."""
        return self._data

    def numpy(self):
        return self._data

    def __array__(self, dtype=None, copy=None):
        arr = self._data
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            if copy is False:
                raise ValueError("cannot convert Variable without a copy")
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def item(self):
        if self.size != 1:
            raise ValueError(f"item: only single-element Variables can be converted, "
                             f"got shape {self.shape}")
        return self._data.item()

    def __float__(self):
        return float(self.item())

    def __bool__(self):
        return bool(self._data)

    @property
    def shape(self):
        return self._data.shape

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def size(self):
        return self._data.size

    @property
    def dtype(self):
        return self._data.dtype

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d Variable")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d Variable")
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        body = np.array2string(self._data, separator=", ", prefix="Variable(")
        extra = f", dtype={self.dtype}"
        if self._grad_fn is not None:
            extra += f", grad_fn={self._grad_fn!r}"
        elif self._requires_grad:
            extra += ", requires_grad=True"
        return f"Variable({body}{extra})"

    # -- autograd attributes --------------------------------------------------

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if self._grad_fn is not None:
            raise RuntimeError("requires_grad can only be changed on leaf Variables")
        self._requires_grad = bool(flag)

    @property
    def is_leaf(self):
        return self._grad_fn is None

    @property
    def grad_fn(self):
        return self._grad_fn

    @property
    def grad(self):
        """Accumulated gradient: a NumPy array (a Variable after create_graph=True)."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None and not isinstance(value, Variable):
            value = _to_array(value, self.dtype, name="grad")
        if value is not None and value.shape != self.shape:
            raise ValueError(f"grad: assigned gradient of shape {value.shape} to a "
                             f"Variable of shape {self.shape}")
        self._grad = value

    def zero_grad(self):
        """Forget the accumulated gradient (``.grad`` becomes None)."""
        self._grad = None

    def retain_grad(self):
        """Make a non-leaf Variable keep its ``.grad`` during backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: Variable does not require grad")
        if self._grad_fn is not None:
            self._retains_grad = True

    def detach(self):
        """A new leaf sharing this Variable's buffer (and version counter)."""
        return Variable._wrap(self._data, self._version)

    def _accumulate_grad(self, g, create_graph):
        if create_graph:               # keep the gradient differentiable
            old = self._grad
            if old is None:
                self._grad = g
            else:
                self._grad = (old if isinstance(old, Variable) else Variable(old)) + g
        else:
            old = self._grad
            gd = g._data
            if old is None:
                self._grad = gd.copy()
            else:
                self._grad = np.asarray(old) + gd

    def backward(self, grad=None, retain_graph=False, create_graph=False):
        """Accumulate gradients of this Variable into the ``.grad`` of the leaves.

        ``grad`` is required unless the Variable has a single element.
        ``retain_graph=False`` frees saved values, so a second backward through
        the same graph raises.  ``create_graph=True`` records the backward pass
        itself, making ``.grad`` a differentiable Variable (implies
        ``retain_graph=True``).
        """
        backward(self, grad, retain_graph, create_graph)

    # -- in-place ops -----------------------------------------------------------

    def _inplace(self, symbol, ufunc, other):
        if is_grad_enabled():
            if self._requires_grad:
                raise RuntimeError(
                    f"in-place '{symbol}' on a Variable that requires grad is only "
                    f"allowed inside no_grad()")
            if isinstance(other, Variable) and other._requires_grad:
                raise RuntimeError(
                    f"in-place '{symbol}' with an operand that requires grad cannot "
                    f"be recorded; use the out-of-place operator instead")
        value = np.asarray(other._data if isinstance(other, Variable) else other)
        if value.dtype.kind not in "biuf":
            raise TypeError(f"in-place '{symbol}': unsupported operand type {value.dtype}")
        try:
            ok = np.broadcast_shapes(self.shape, value.shape) == self.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"in-place '{symbol}': shapes {self.shape} and {value.shape} "
                             f"cannot be broadcast to {self.shape}")
        ufunc(self._data, value, out=self._data)
        self._version.value += 1
        return self

    def __iadd__(self, other):
        return self._inplace("+=", np.add, other)

    def __isub__(self, other):
        return self._inplace("-=", np.subtract, other)

    def __imul__(self, other):
        return self._inplace("*=", np.multiply, other)

    def __itruediv__(self, other):
        return self._inplace("/=", np.true_divide, other)

    # -- comparisons (plain NumPy bool arrays, not differentiable) ------------

    def _compare(self, op, other):
        other = other._data if isinstance(other, Variable) else other
        return np.asarray(op(self._data, other))

    def __lt__(self, other):
        return self._compare(operator.lt, other)

    def __le__(self, other):
        return self._compare(operator.le, other)

    def __gt__(self, other):
        return self._compare(operator.gt, other)

    def __ge__(self, other):
        return self._compare(operator.ge, other)

    def __eq__(self, other):
        return self._compare(operator.eq, other)

    def __ne__(self, other):
        return self._compare(operator.ne, other)

    # -- arithmetic operators (differentiable, see ops.py) --------------------

    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.subtract(self, other)

    def __rsub__(self, other):
        return ops.subtract(other, self)

    def __mul__(self, other):
        return ops.multiply(self, other)

    def __rmul__(self, other):
        return ops.multiply(other, self)

    def __truediv__(self, other):
        return ops.divide(self, other)

    def __rtruediv__(self, other):
        return ops.divide(other, self)

    def __pow__(self, other):
        return ops.power(self, other)

    def __rpow__(self, other):
        return ops.power(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, key):
        return ops.getitem(self, key)

    # -- methods mirroring the functions --------------------------------------

    def astype(self, dtype):
        return ops.astype(self, dtype)

    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        return ops.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], (int, np.integer))):
            axes = axes[0]
        return ops.transpose(self, axes if axes != () else None)

    @property
    def T(self):
        return ops.transpose(self)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def log1p(self):
        return ops.log1p(self)

    def sqrt(self):
        return ops.sqrt(self)

    def sin(self):
        return ops.sin(self)

    def cos(self):
        return ops.cos(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def abs(self):
        return ops.abs(self)

    def clip(self, a_min, a_max):
        return ops.clip(self, a_min, a_max)


def from_numpy(arr):
    """A Variable sharing ``arr``'s buffer (float32/float64, C-contiguous)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"from_numpy: dtype must be float32 or float64, got {arr.dtype}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"from_numpy: array of shape {arr.shape} is not C-contiguous")
    return Variable._wrap(arr)


# ops.py builds on Variable and Function above; imported last to break the cycle.
from . import ops  # noqa: E402
