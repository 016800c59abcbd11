"""Grad mode, ``Function`` (a graph node), the sweeps and ``Variable``.

An op whose inputs require grad records a ``Function`` as the output's
``grad_fn``, holding its differentiable ``inputs`` and what its rules saved
(version-checked against in-place edits).  The sweeps walk an iteratively
computed topological order (no recursion, so 100,000-op chains are fine):
``backward`` (into the leaves' ``.grad``), ``reverse_sweep`` (cotangent ->
gradients of chosen inputs) and ``forward_sweep`` (tangents with a leading
batch axis of k directions -> the output's).  Rules use Variable ops, so a
sweep run in grad mode is recorded (``create_graph``) and differentiable.
"""

import contextlib
import operator
import os
import sys
import threading

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# -- grad mode (thread-local) -------------------------------------------------

_grad_mode = threading.local()


def is_grad_enabled():
    """True unless inside ``no_grad()`` (per thread)."""
    return getattr(_grad_mode, "enabled", True)


class _GradModeContext(contextlib.ContextDecorator):
    """``with no_grad():``, ``@no_grad()`` or ``@no_grad``; nests, per thread."""

    def __new__(cls, func=None):
        if func is not None and not callable(func):
            raise TypeError(f"{cls.__name__}() takes no arguments or a function")
        self = super().__new__(cls)
        return self if func is None else self(func)

    def __enter__(self):
        _grad_mode.__dict__.setdefault("stack", []).append(is_grad_enabled())
        _grad_mode.enabled = self.enabled
        return self

    def __exit__(self, *exc_info):
        _grad_mode.enabled = _grad_mode.stack.pop()


class no_grad(_GradModeContext):
    """Disable graph recording in this thread (context manager / decorator)."""
    enabled = False


class enable_grad(_GradModeContext):
    """Re-enable graph recording in this thread (context manager / decorator)."""
    enabled = True


def _sweep_mode(create_graph): return enable_grad() if create_graph else no_grad()


# -- anomaly mode (thread-local) ----------------------------------------------


def is_anomaly_enabled():
    """True inside ``detect_anomaly()`` (per thread)."""
    return getattr(_grad_mode, "anomaly", False)


class detect_anomaly(_GradModeContext):
    """The first op whose forward, VJP or JVP produces NaN or inf raises
    RuntimeError naming it and the line that recorded it."""

    def __enter__(self):
        _grad_mode.__dict__.setdefault("anomaly_stack", []).append(is_anomaly_enabled())
        _grad_mode.anomaly = True
        return self

    def __exit__(self, *exc_info):
        _grad_mode.anomaly = _grad_mode.anomaly_stack.pop()


@contextlib.contextmanager
def _in_rule():
    """Inside a rule the ops it runs are not checked one by one: its result is."""
    prev, _grad_mode.in_rule = getattr(_grad_mode, "in_rule", False), True
    try:
        yield
    finally:
        _grad_mode.in_rule = prev


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _recorded_at():
    """``file:line (in function)`` of the innermost caller outside tapegrad
    (and outside Python's frozen modules)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith((_PACKAGE_DIR, "<")):
        frame = frame.f_back
    if frame is None:
        return "tapegrad's own code"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} (in {frame.f_code.co_name})"


def _check_finite(fn, value, what):
    bad = ~np.isfinite(value)
    if bad.any():
        dtypes = getattr(fn, "input_dtypes", ("",) * len(fn.input_shapes))  # (recorded before the mode)
        inputs = ", ".join(f"{s} {d}".strip() for s, d in zip(fn.input_shapes, dtypes))
        raise RuntimeError(
            f"detect_anomaly: the {what} of '{fn.name}' produced {int(np.isnan(value).sum())} nan and "
            f"{int(bad.sum() - np.isnan(value).sum())} inf of {value.size} values; the op's inputs: "
            f"{inputs}; recorded at {getattr(fn, 'recorded_at', 'an unknown place (before detect_anomaly)')}")


# -- dtypes -------------------------------------------------------------------


def _check_float_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _to_array(data, dtype=None, name="Variable"):
    """A fresh C-contiguous float copy of ``data`` (bool/int data becomes float64)."""
    if isinstance(data, Variable):
        data = data._data
    dtype = None if dtype is None else _check_float_dtype(dtype)
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: unsupported data type {arr.dtype}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in _FLOAT_DTYPES else np.dtype(np.float64)
    return np.array(arr, dtype=dtype, copy=True, order="C")


# -- Function: a node of the graph ---------------------------------------------

OUTPUT = object()   # for save_for_backward: "the output of this op"

_RELEASED = (
    "{name}: trying to backward through the graph a second time, but its saved "
    "values were freed after the first backward. Pass retain_graph=True to the "
    "first backward() call if you need to backward through it again.")


class Function:
    """Base of the ops: ``forward(*inputs)`` (Variables in, array out), ``vjp(g)``
    (one gradient or None per input) and ``jvp(*tangents)`` (tangents (k,) +
    input shape or None, out: broadcastable to (k,) + output shape).  Keyword
    parameters of ``apply`` become attributes (and ``params``)."""

    name = "function"

    def __init__(self, **params):
        self.params = params
        self.__dict__.update(params)
        self.inputs, self._saved, self._saved_versions = (), (), ()
        self._to_save, self._released = (), False

    def __repr__(self): return f"<{self.name}>"

    @classmethod
    def apply(cls, *inputs, **params):
        """Run the op on Variables and record it if a gradient is needed."""
        fn = cls(**params)
        fn.input_shapes = tuple(v.shape for v in inputs)
        fn.needs_input_grad = tuple(v._requires_grad for v in inputs)
        data = np.asarray(fn.forward(*inputs))
        if is_anomaly_enabled() and not getattr(_grad_mode, "in_rule", False):
            fn.input_dtypes = tuple(v.dtype for v in inputs)
            fn.recorded_at = _recorded_at()
            _check_finite(fn, data, "forward")
        # Outputs own a fresh writable C-contiguous buffer (in-place ops are safe).
        if (data.base is not None or not data.flags.c_contiguous or not data.flags.writeable
                or any(data is v._data for v in inputs)):
            data = data.copy(order="C")
        assert data.dtype in _FLOAT_DTYPES, f"{cls.name} produced {data.dtype}"
        fn.output_shape, fn.output_dtype = data.shape, data.dtype
        out = Variable._wrap(data)
        if is_grad_enabled() and any(fn.needs_input_grad):
            fn.inputs = tuple(v if v._requires_grad else None for v in inputs)
            fn._saved = tuple(out if v is OUTPUT else v for v in fn._to_save)
            fn._saved_versions = tuple(v._version[0] for v in fn._saved)
            out._requires_grad, out._grad_fn = True, fn
        fn._to_save = ()
        return out

    def save_for_backward(self, *values):
        """Keep Variables (or ``OUTPUT``) for the rules; checked for in-place edits."""
        self._to_save = values

    def saved_values(self):
        self._check_saved()
        return self._saved

    def _check_saved(self):
        if self._released:
            raise RuntimeError(_RELEASED.format(name=self.name))
        for i, (v, version) in enumerate(zip(self._saved, self._saved_versions)):
            if v._version[0] != version:
                raise RuntimeError(
                    f"{self.name}: a value saved for backward (saved value {i}, shape "
                    f"{v.shape}) was modified by an in-place operation: it is at version "
                    f"{v._version[0]}, expected version {version}")

    def _release(self): self._saved, self._saved_versions, self._released = (), (), True

    def _input_grads(self, g):
        """``vjp(g)`` cast to the inputs' dtypes (None for inputs not needing one)."""
        with _in_rule():
            grads = self.vjp(g)
        grads = (grads,) if isinstance(grads, Variable) else grads
        assert len(grads) == len(self.inputs), self.name
        if is_anomaly_enabled():
            for gi in grads:
                if gi is not None:
                    _check_finite(self, gi._data, "backward")
        return [None if x is None or gi is None else _cast(gi, x.dtype, x.shape, self.name)
                for x, gi in zip(self.inputs, grads)]

    def _output_tangent(self, tangents):
        """``jvp(*tangents)`` broadcast and cast to the batched output's shape and dtype."""
        shape = (next(t for t in tangents if t is not None).shape[0],) + self.output_shape
        with _in_rule():
            t = self.jvp(*tangents)
        if t is None:
            return None
        if is_anomaly_enabled():
            _check_finite(self, t._data, "forward-mode JVP")
        return _cast(t if t.shape == shape else ops.broadcast_to(t, shape),
                     self.output_dtype, shape, self.name)

    def jvp(self, *tangents):
        raise NotImplementedError(f"{self.name}: this op has no forward-mode (JVP) rule")


def _cast(v, dtype, shape, name):
    assert v.shape == shape, f"{name}: internal error, derivative of shape {v.shape}, not {shape}"
    return v if v.dtype == dtype else v.astype(dtype)


# -- the sweeps -----------------------------------------------------------------


def _topological_order(root, stop=()):
    """Variables reachable from ``root``, outputs before inputs; ids in ``stop``
    count as leaves.  Iterative DFS (a stack of parent iterators): no recursion."""
    def parents(var):
        fn = var._grad_fn
        return iter(() if fn is None or id(var) in stop else [p for p in fn.inputs if p is not None])

    order, visited, stack = [], {id(root)}, [(root, parents(root))]
    while stack:
        var, it = stack[-1]
        for parent in it:
            if id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, parents(parent)))
                break
        else:
            stack.pop()
            order.append(var)
    order.reverse()
    return order


def _pull_back(order, root, seed, stop=(), release=False):
    """Yield ``(var, its total gradient)`` along ``order``, passing each gradient
    (after the var's hooks) on through the var's node (unless its id is in ``stop``)."""
    grads = {id(root): seed}
    for var in order:
        g = grads.pop(id(var), None)
        if g is None:
            continue
        if var._hooks:
            g = _run_hooks(var, g)
        yield var, g
        fn = var._grad_fn
        if fn is None or id(var) in stop:
            continue
        for parent, pg in zip(fn.inputs, fn._input_grads(g)):
            if parent is not None and pg is not None:
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
        if release:
            fn._release()


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
    order = _topological_order(root)
    for var in order:        # validate first: an error never leaves half-updated grads
        if var._grad_fn is not None:
            var._grad_fn._check_saved()
    with _sweep_mode(create_graph):
        release = not (retain_graph or create_graph)
        for var, g in _pull_back(order, root, seed, release=release):
            if var._grad_fn is None or var._retains_grad:
                var._accumulate_grad(g, create_graph)
            if var._post_hooks:
                for hook in list(var._post_hooks.values()):
                    if hook(var) is not None:
                        raise TypeError(f"register_post_accumulate_grad_hook: the hook {hook!r} "
                                        "returned a value; these hooks must return None")


# -- hooks ----------------------------------------------------------------------


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` (idempotent); a context manager."""

    _next_id = 0

    def __init__(self, hooks):
        RemovableHandle._next_id += 1
        self.id, self._hooks = RemovableHandle._next_id, hooks

    def remove(self): self._hooks.pop(self.id, None)

    def __enter__(self): return self

    def __exit__(self, *exc_info): self.remove()


def _run_hooks(var, g):
    """``var``'s gradient after its hooks: each gets the current one and may
    return a replacement of the same shape and dtype."""
    for hook in list(var._hooks.values()):
        new = hook(g)
        if new is None:
            continue
        if not isinstance(new, (Variable, np.ndarray)):
            raise TypeError(f"register_hook: the hook {hook!r} returned {type(new).__name__}, "
                            "not a Variable, an array or None")
        if new.shape != g.shape or new.dtype != g.dtype:
            err = ValueError if new.shape != g.shape else TypeError
            raise err(f"register_hook: the hook {hook!r} on a Variable of shape {var.shape} "
                      f"returned a gradient of shape {new.shape} {new.dtype}, expected "
                      f"{g.shape} {g.dtype}")
        g = new if isinstance(new, Variable) else Variable._wrap(new.copy())
    return g


def reverse_sweep(output, inputs, cotangent, create_graph=False):
    """Gradients of ``output`` (contracted with ``cotangent``) w.r.t. ``inputs``
    (None where there is no path); stops at the inputs, keeps the graph and
    leaves ``.grad`` alone."""
    wanted = {id(x) for x in inputs}
    order = _topological_order(output, stop=wanted)
    for var in order:
        if var._grad_fn is not None and id(var) not in wanted:
            var._grad_fn._check_saved()
    with _sweep_mode(create_graph):
        found = {id(v): g for v, g in _pull_back(order, output, cotangent, wanted)
                 if id(v) in wanted}
    return [found.get(id(x)) for x in inputs]


def forward_sweep(output, inputs, tangents, create_graph=False):
    """Batched tangent (k,) + output.shape of ``output`` from tangents (k,) +
    x.shape of ``inputs`` (None = zero), inputs first; None if no path."""
    tangent_of = {id(x): t for x, t in zip(inputs, tangents) if t is not None}
    stop = {id(x) for x in inputs}
    with _sweep_mode(create_graph):
        for var in reversed(_topological_order(output, stop=stop)):
            fn = var._grad_fn
            if id(var) in stop or fn is None:
                continue
            ts = [None if p is None else tangent_of.get(id(p)) for p in fn.inputs]
            if any(t is not None for t in ts):
                fn._check_saved()
                t = fn._output_tangent(ts)
                if t is not None:
                    tangent_of[id(var)] = t
    return tangent_of.get(id(output))


# -- Variable -------------------------------------------------------------------


class Variable:
    """A float32/float64 NumPy array that records the ops applied to it.  Its
    operators and op methods are attached by ``ops.py``."""

    __slots__ = ("_data", "_requires_grad", "_grad", "_grad_fn", "_retains_grad",
                 "_version", "_hooks", "_post_hooks", "__weakref__")
    # __array_ufunc__ / __array_function__: numpy_protocol.py
    __hash__ = object.__hash__

    def __init__(self, data, requires_grad=False, dtype=None):
        self._data = _to_array(data, dtype)
        self._setup(bool(requires_grad))

    @classmethod
    def _wrap(cls, array, version=None):
        """A Variable around ``array`` (no copy)."""
        self = cls.__new__(cls)
        self._data = array
        self._setup(False, version)
        return self

    def _setup(self, requires_grad, version=None):
        self._requires_grad, self._grad, self._grad_fn, self._retains_grad = requires_grad, None, None, False
        self._hooks = self._post_hooks = None   # {handle id: fn}, created on first use
        self._version = version if version is not None else [0]   # shared by detach()

    data = property(lambda self: self._data, doc="The NumPy array (shared memory).")
    shape = property(lambda self: self._data.shape)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    dtype = property(lambda self: self._data.dtype)
    is_leaf = property(lambda self: self._grad_fn is None)
    grad_fn = property(lambda self: self._grad_fn)

    def numpy(self): return self._data

    def __array__(self, dtype=None, copy=None):
        if self._requires_grad:  # an array made from a graph would silently lose the gradient
            raise TypeError("__array__: this Variable requires grad and a NumPy array of it would drop "
                            "the graph; use v.data or v.numpy() for its values, v.detach() for a Variable "
                            "outside the graph, or the np.* function on the Variable itself")
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

    def __float__(self): return float(self.item())

    def __int__(self): return int(np.asarray(self._data).item()) if self.ndim == 0 else self._not_scalar("int()")

    def __format__(self, spec):  # f"{loss:.4f}" on a 0-d Variable
        return format(self._data.item(), spec) if spec and self.ndim == 0 else (
            str(self) if not spec else self._not_scalar(f"format {spec!r}"))

    def __round__(self, ndigits=None):
        from . import round as round_   # the composition (reference/__init__.py)
        return round(self._data.item()) if ndigits is None and self.ndim == 0 else round_(self, ndigits or 0)

    def tolist(self): return self._data.tolist()

    def __reduce__(self):  # copy / deepcopy / pickle: the values and the flag, never the graph
        return Variable, (self._data.copy(), self._requires_grad)

    def _not_scalar(self, what):
        raise TypeError(f"{what}: only 0-d Variables convert to Python numbers, got shape {self.shape}")

    def __bool__(self): return bool(self._data)

    def __pos__(self): return self

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

    # -- autograd attributes

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if self._grad_fn is not None:
            raise RuntimeError("requires_grad can only be changed on leaf Variables")
        self._requires_grad = bool(flag)

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

    def zero_grad(self): self._grad = None

    def retain_grad(self):
        """Make a non-leaf Variable keep its ``.grad`` during backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: Variable does not require grad")
        if self._grad_fn is not None:
            self._retains_grad = True

    def register_hook(self, hook):
        """``hook(grad)`` runs when this Variable's gradient is computed in a
        sweep; it may return a replacement (same shape and dtype) or None."""
        if not callable(hook):
            raise TypeError(f"register_hook: the hook must be callable, got {type(hook).__name__}")
        if not self._requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a Variable that does not require grad")
        if self._hooks is None:
            self._hooks = {}
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def register_post_accumulate_grad_hook(self, hook):
        """``hook(self)`` runs in each backward() once this leaf's ``.grad`` is final."""
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: the hook must be callable, "
                            f"got {type(hook).__name__}")
        if not self._requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a "
                               "Variable that does not require grad")
        if self._grad_fn is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks "
                               "cannot be registered on non-leaf Variables")
        if self._post_hooks is None:
            self._post_hooks = {}
        handle = RemovableHandle(self._post_hooks)
        self._post_hooks[handle.id] = hook
        return handle

    def detach(self):
        """A new leaf sharing this Variable's buffer (and version counter)."""
        return Variable._wrap(self._data, self._version)

    def _accumulate_grad(self, g, create_graph):
        old = self._grad
        if create_graph:               # keep the gradient differentiable
            self._grad = g if old is None else (
                old if isinstance(old, Variable) else Variable(old)) + g
        else:
            self._grad = g._data.copy() if old is None else (
                old._data if isinstance(old, Variable) else old) + g._data

    def backward(self, grad=None, retain_graph=False, create_graph=False):
        """Accumulate gradients of this Variable into the leaves' ``.grad``
        (``grad`` required unless single-element; ``create_graph`` records the
        sweep and implies ``retain_graph``)."""
        backward(self, grad, retain_graph, create_graph)

    # -- in-place ops (allowed on Variables requiring grad only under no_grad)

    def _inplace(self, symbol, ufunc, other):
        if is_grad_enabled():
            if self._requires_grad:
                raise RuntimeError(f"in-place '{symbol}' on a Variable that requires grad "
                                   f"is only allowed inside no_grad()")
            if isinstance(other, Variable) and other._requires_grad:
                raise RuntimeError(f"in-place '{symbol}' with an operand that requires grad "
                                   f"cannot be recorded; use the out-of-place operator instead")
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
        self._data[...] = ufunc(self._data, value)
        self._version[0] += 1
        return self

    def __setitem__(self, key, value):
        """``v[key] = value`` with NumPy's semantics, outside the graph only (under
        no_grad, or on a Variable that requires no grad); bumps the version."""
        if is_grad_enabled():
            if self._requires_grad:
                raise RuntimeError(f"setitem: `v[key] = value` on a Variable that requires grad (shape "
                                   f"{self.shape}) would change a value the graph may need: write under "
                                   f"`with no_grad():` or into `v.detach()`")
            if isinstance(value, Variable) and value._requires_grad:
                raise RuntimeError("setitem: a value that requires grad cannot be recorded by "
                                   "`v[key] = value`: write `value.detach()`")
        if not self._data.flags.writeable:
            raise ValueError("setitem: this Variable shares a read-only NumPy array")
        self._data[key] = value._data if isinstance(value, Variable) else value
        self._version[0] += 1


for _sym, _name in (("+=", "add"), ("-=", "sub"), ("*=", "mul"), ("/=", "truediv")):
    setattr(Variable, f"__i{_name}__", lambda self, other, _sym=_sym, _uf=getattr(operator, _name):
            self._inplace(_sym, _uf, other))
# Comparisons give plain NumPy bool arrays (not differentiable).
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(Variable, f"__{_name}__", lambda self, other, _op=getattr(operator, _name):
            np.asarray(_op(self._data, other._data if isinstance(other, Variable) else other)))


def from_numpy(arr):
    """A Variable sharing ``arr``'s buffer (float32/float64, C-contiguous)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"from_numpy: dtype must be float32 or float64, got {arr.dtype}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"from_numpy: array of shape {arr.shape} is not C-contiguous")
    return Variable._wrap(arr)


from . import ops  # noqa: E402  (ops builds on the classes above)
