"""Forward mode, reverse mode and the functional API of the reference engine.

Every transform here works the same way:

1. ``_Trace`` calls ``f`` once on fresh *input nodes* (one per differentiated
   argument) with graph recording on, so the graph from those inputs to the
   output is on the tape;
2. ``engine.forward_sweep`` (tangents in, inputs -> output) or
   ``engine.reverse_sweep`` (cotangent in, output -> inputs) runs over that
   graph, as many times as needed (the graph is never freed);
3. the results are returned as NumPy arrays -- or, when the transform is
   *nested*, as Variables still connected to the outer graph.

Nesting.  A call is nested when one of its inputs is a Variable that
requires grad (e.g. ``grad(f)`` called by an outer ``jacobian``).  Then each
such input node is an ``Identity`` of the outer Variable (a fresh node, so
the inner derivative holds everything else constant), and the sweeps are
recorded (``create_graph=True``), so the results are Variables connected to
the outer graph and can be differentiated again.  Otherwise the input nodes
are fresh leaves (copies), the sweeps run under ``no_grad`` and the results
are NumPy arrays.  Whether a call is nested depends only on its inputs (the
arguments, tangents or cotangent), never on what ``f`` captures: pass a
Variable that ``f`` would capture as an argument instead if the result must
stay connected to it.

Batches of directions.  Forward-mode tangents always carry one leading batch
axis (k directions, k = 1 for ``jvp``), so ``jacobian(mode="forward")``
pushes a whole chunk of basis vectors through ONE forward sweep.  Reverse
mode pulls a batch of cotangents back one row at a time (a Python loop:
the reference engine favours clarity over speed).

The transforms never read or write ``.grad`` of any Variable.
"""

import functools
import math

import numpy as np

from . import ops
from .engine import (
    Function,
    OUTPUT,
    Variable,
    _FLOAT_DTYPES,
    _to_array,
    enable_grad,
    forward_sweep,
    is_grad_enabled,
    no_grad,
    reverse_sweep,
)

__all__ = ["jvp", "vjp", "grad", "value_and_grad", "jacobian", "hessian", "hvp",
           "directional_derivative", "custom_op"]


# --------------------------------------------------------------------------
# Inputs, tangents and the traced function
# --------------------------------------------------------------------------


def _is_python_scalar(x):
    return type(x) in (bool, int, float)


def _requires_grad(x):
    return isinstance(x, Variable) and x.requires_grad


def _as_tuple(x):
    """A tuple stays a tuple (several arguments); anything else is one argument.

    Lists are array-likes here, as everywhere in NumPy: ``[1.0, 2.0]`` is ONE
    argument of shape (2,).
    """
    return x if isinstance(x, tuple) else (x,)


def _primal(fname, argname, x):
    """A differentiated argument as a Variable, or a fresh float array."""
    if isinstance(x, Variable):
        return x
    try:
        return _to_array(x, name=f"{fname}: {argname}")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{fname}: {argname} must be an array-like of numbers, "
                        f"got {type(x).__name__} ({exc})") from None


def _input_node(x, nested):
    """The node ``f`` receives for a differentiated argument (see module doc)."""
    if nested and _requires_grad(x):
        return ops.identity(x)
    data = x.data if isinstance(x, Variable) else x
    return Variable(data, requires_grad=True)


def _direction(fname, argname, t, primal, primal_name):
    """Check a tangent/cotangent ``t`` against ``primal``; return a Variable.

    Its shape must equal the primal's.  Its dtype must too, except that a
    Python scalar or list is weakly typed (it takes the primal's dtype).  A
    Variable (possibly requiring grad, in nested use) is kept as it is.
    """
    if isinstance(t, Variable):
        shape, dtype = t.shape, t.dtype
    else:
        try:
            arr = np.asarray(t)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{fname}: {argname} must be an array of floats, got "
                            f"{type(t).__name__} (dtype {arr.dtype}); {primal_name} "
                            f"has shape {primal.shape}")
        weak = _is_python_scalar(t) or isinstance(t, list)
        shape, dtype = arr.shape, (primal.dtype if weak else arr.dtype)
    if shape != primal.shape:
        raise ValueError(f"{fname}: {argname} has shape {shape} but {primal_name} has "
                         f"shape {primal.shape}; they must be equal")
    if dtype != primal.dtype:
        raise TypeError(f"{fname}: {argname} has dtype {dtype} (shape {shape}) but "
                        f"{primal_name} has dtype {primal.dtype} (shape {primal.shape}); "
                        f"the dtypes must be equal")
    if isinstance(t, Variable):
        return t
    return Variable._wrap(_to_array(arr, dtype))       # a copy, never the caller's array


class _Trace:
    """``f`` evaluated once on fresh input nodes, its graph kept for the sweeps.

    ``args`` are the positional arguments of ``f``; those at positions
    ``diff`` (already converted by ``_primal``) are differentiated; the
    others are passed through unchanged.
    """

    def __init__(self, fname, f, args, diff, nested, kwargs=None):
        self.fname = fname
        self.nested = nested
        call_args = list(args)
        self.inputs = []
        with enable_grad():                 # the transform needs the graph
            for i in diff:
                call_args[i] = _input_node(args[i], nested)
                self.inputs.append(call_args[i])
            out = f(*call_args, **(kwargs or {}))
        if not isinstance(out, Variable):
            shape = getattr(out, "shape", None)
            raise TypeError(
                f"{fname}: the function must return a tapegrad.reference Variable, "
                f"got {type(out).__name__}" + ("" if shape is None else f" of shape {shape}")
                + "; build the result with Variable ops")
        self.output = out

    def finish(self, v, nested=None):
        """A result as returned to the user: Variable if nested, else NumPy."""
        return v if (self.nested if nested is None else nested) else v.data

    def grad_mode(self, nested=None):
        return enable_grad() if (self.nested if nested is None else nested) else no_grad()

    def push_forward(self, tangents):
        """Batched output tangent (k,) + out.shape for batched input tangents."""
        out = self.output
        t = forward_sweep(out, self.inputs, tangents, create_graph=self.nested)
        if t is None:                       # the output does not depend on them
            k = next(t for t in tangents if t is not None).shape[0]
            t = Variable._wrap(np.zeros((k,) + out.shape, out.dtype))
        return t

    def pull_back(self, cotangent, nested=None):
        """One gradient Variable per input (zeros where there is no path)."""
        grads = reverse_sweep(self.output, self.inputs, cotangent,
                              create_graph=self.nested if nested is None else nested)
        return [Variable._wrap(np.zeros(x.shape, x.dtype)) if g is None else g
                for x, g in zip(self.inputs, grads)]

    def pull_back_batch(self, cotangents):
        """Per input, the gradients (k,) + x.shape for cotangents (k,) + out.shape.

        One reverse sweep per row: the VJP rules stay unbatched.
        """
        with self.grad_mode():
            rows = [self.pull_back(cotangents[r]) for r in range(cotangents.shape[0])]
            return [ops.stack([row[i] for row in rows]) for i in range(len(self.inputs))]


def _output_of(trace):
    """f's value: a copy in plain mode (f may return a Variable the caller owns)."""
    out = trace.output
    return out if trace.nested else np.array(out.data)


# --------------------------------------------------------------------------
# jvp, vjp, directional_derivative
# --------------------------------------------------------------------------


def _jvp(fname, f, primals, tangents, names):
    primal_names, tangent_names = names
    primals, tangents = _as_tuple(primals), _as_tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"{fname}: got {len(primals)} primals but {len(tangents)} "
                         f"tangents; pass one tangent per primal")
    primals = [_primal(fname, primal_names(i), p) for i, p in enumerate(primals)]
    tangents = [_direction(fname, tangent_names(i), t, p, primal_names(i))
                for i, (t, p) in enumerate(zip(tangents, primals))]
    nested = any(_requires_grad(v) for v in primals + tangents)
    trace = _Trace(fname, f, primals, range(len(primals)), nested)
    with trace.grad_mode():
        batched = [t.reshape((1,) + t.shape) for t in tangents]     # k = 1
        out_t = trace.push_forward(batched).reshape(trace.output.shape)
    return _output_of(trace), trace.finish(out_t)


def _names(base, several):
    return (lambda i: f"{base}[{i}]") if several else (lambda i: base)


def jvp(f, primals, tangents):
    """Forward mode: ``(f(*primals), J(primals) @ tangents)``.

    ``primals`` and ``tangents`` are tuples of arrays of equal shapes and
    dtypes (a single array, or a list, is one argument; a Python scalar or
    list tangent takes its primal's dtype).  Returns NumPy arrays, or
    Variables connected to the outer graph when a primal or tangent is a
    Variable that requires grad.
    """
    several = isinstance(primals, tuple)
    names = (_names("primals", several), _names("tangents", several))
    return _jvp("jvp", f, primals, tangents, names)


def directional_derivative(f, x, u):
    """J(x) @ u, the derivative of ``f`` at ``x`` along ``u`` (shape of f's output).

    ``x`` and ``u`` as in ``jvp`` (tuples for several arguments).  Forward mode.
    """
    several = isinstance(x, tuple)
    names = (_names("x", several), _names("u", several))
    return _jvp("directional_derivative", f, x, u, names)[1]


def vjp(f, *primals):
    """Reverse mode: ``(f(*primals), vjp_fn)``.

    ``vjp_fn(cotangent)`` (``cotangent`` of the output's shape and dtype)
    returns a tuple with one gradient per primal, each of that primal's
    shape.  It may be called any number of times (the graph is kept).
    Results are NumPy arrays, or Variables connected to the outer graph when
    a primal or the cotangent is a Variable that requires grad.
    """
    primals = [_primal("vjp", f"primals[{i}]", p) for i, p in enumerate(primals)]
    nested = any(_requires_grad(p) for p in primals)
    trace = _Trace("vjp", f, primals, range(len(primals)), nested)

    def vjp_fn(cotangent):
        ct = _direction("vjp", "cotangent", cotangent, trace.output, "the output")
        # A cotangent requiring grad makes this call nested even if f's was not.
        nested = trace.nested or _requires_grad(ct)
        with trace.grad_mode(nested):
            grads = trace.pull_back(ct, nested)
        return tuple(trace.finish(g, nested) for g in grads)

    return _output_of(trace), vjp_fn


# --------------------------------------------------------------------------
# grad, value_and_grad
# --------------------------------------------------------------------------


def _check_argnums(fname, argnums):
    """Validate the type of ``argnums`` (the range is checked at call time)."""
    single = isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool)
    if single:
        return True, (int(argnums),)
    if isinstance(argnums, (tuple, list)) and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in argnums):
        return False, tuple(int(a) for a in argnums)
    raise TypeError(f"{fname}: argnums must be an int or a tuple of ints, got {argnums!r}")


def _value_and_grad(fname, f, argnums):
    single, nums = _check_argnums(fname, argnums)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        n = len(args)
        for a in nums:
            if not -n <= a < n:
                valid = f" (valid: {-n}..{n - 1})" if n else ""
                raise ValueError(
                    f"{fname}: argnums {argnums!r} is out of range for a call with {n} "
                    f"positional argument{'s' if n != 1 else ''}{valid}")
        positions = sorted({a % n for a in nums})
        args = list(args)
        for i in positions:
            args[i] = _primal(fname, f"argument {i}", args[i])
        nested = any(_requires_grad(v) for v in list(args) + list(kwargs.values()))
        trace = _Trace(fname, f, args, positions, nested, kwargs)
        out = trace.output
        if out.size != 1:
            raise ValueError(
                f"{fname}: the function must return a single-element Variable (a scalar), "
                f"but it returned shape {out.shape}; use jacobian, vjp or jvp for "
                f"non-scalar outputs")
        with trace.grad_mode():
            grads = trace.pull_back(Variable._wrap(np.ones(out.shape, out.dtype)))
        by_position = {i: trace.finish(g) for i, g in zip(positions, grads)}
        result = tuple(by_position[a % n] for a in nums)
        return _output_of(trace), (result[0] if single else result)

    return wrapper


def value_and_grad(f, argnums=0):
    """Like ``grad``, but the function returns ``(f(*args), gradient)``."""
    return _value_and_grad("value_and_grad", f, argnums)


def grad(f, argnums=0):
    """The gradient of a scalar (single-element) ``f``, as a function.

    ``argnums`` (an int, or a tuple of ints; negative counts from the end)
    picks the positional arguments to differentiate: an int gives one
    gradient, a tuple a tuple of gradients, each of its argument's shape.
    Other arguments (and keyword arguments) are passed through unchanged.
    Reverse mode.  Results are NumPy arrays, or Variables connected to the
    outer graph when an argument is a Variable that requires grad, so
    ``grad(grad(f))`` and ``jacobian(grad(f), x)`` work.
    """
    value_and_grad_f = _value_and_grad("grad", f, argnums)

    @functools.wraps(f)
    def grad_f(*args, **kwargs):
        return value_and_grad_f(*args, **kwargs)[1]

    return grad_f


# --------------------------------------------------------------------------
# jacobian, hessian, hvp
# --------------------------------------------------------------------------

_MODES = ("auto", "forward", "reverse")


def _basis(start, stop, shape, dtype):
    """Rows ``start:stop`` of the identity, each reshaped to ``shape``."""
    size = math.prod(shape)
    rows = np.zeros((stop - start, size), dtype)
    rows[np.arange(stop - start), np.arange(start, stop)] = 1
    return Variable._wrap(rows.reshape((stop - start,) + tuple(shape)))


def _chunks(total, chunk_size):
    step = total if chunk_size is None else chunk_size
    return [(lo, min(total, lo + step)) for lo in range(0, total, max(step, 1))]


def _jacobian_forward(trace, chunk_size):
    """Per input: J of shape out.shape + x.shape, one batched forward sweep per
    chunk of input-basis tangents (the other inputs get no tangent)."""
    out = trace.output
    jacobians = []
    for i, x in enumerate(trace.inputs):
        dtype = np.result_type(out.dtype, x.dtype)
        if x.size == 0 or out.size == 0:
            jacobians.append(Variable._wrap(np.zeros(out.shape + x.shape, dtype)))
            continue
        columns = []
        for lo, hi in _chunks(x.size, chunk_size):
            tangents = [None] * len(trace.inputs)
            tangents[i] = _basis(lo, hi, x.shape, x.dtype)
            columns.append(trace.push_forward(tangents))       # (hi - lo,) + out.shape
        cols = ops.concatenate(columns) if len(columns) > 1 else columns[0]
        jac = cols.reshape((x.size, out.size)).T.reshape(out.shape + x.shape)
        jacobians.append(jac.astype(dtype) if jac.dtype != dtype else jac)
    return jacobians


def _jacobian_reverse(trace, chunk_size):
    """Per input: J of shape out.shape + x.shape from output-basis cotangents,
    pulled back a chunk at a time."""
    out = trace.output
    dtypes = [np.result_type(out.dtype, x.dtype) for x in trace.inputs]
    if out.size == 0:
        return [Variable._wrap(np.zeros(out.shape + x.shape, dt))
                for x, dt in zip(trace.inputs, dtypes)]
    rows = [[] for _ in trace.inputs]
    for lo, hi in _chunks(out.size, chunk_size):
        cotangents = _basis(lo, hi, out.shape, out.dtype)
        for i, g in enumerate(trace.pull_back_batch(cotangents)):
            rows[i].append(g)                                   # (hi - lo,) + x.shape
    jacobians = []
    for x, r, dt in zip(trace.inputs, rows, dtypes):
        jac = (ops.concatenate(r) if len(r) > 1 else r[0]).reshape(out.shape + x.shape)
        jacobians.append(jac.astype(dt) if jac.dtype != dt else jac)
    return jacobians


def jacobian(f, x, *, mode="auto", chunk_size=None):
    """The Jacobian of ``f`` at ``x``: shape ``out.shape + x.shape``.

    ``x`` is one array, or a tuple of arrays: then ``f`` is called as
    ``f(*x)`` and the result is a tuple with one Jacobian per input.

    ``mode="forward"`` pushes input-basis tangents through batched forward
    sweeps; ``mode="reverse"`` pulls output-basis cotangents back;
    ``mode="auto"`` (the default) uses forward mode when the total input
    size n is at most the output size m (n <= m: n forward directions cost
    no more than m reverse ones), reverse mode otherwise.  ``chunk_size``
    (a positive int, or None for all at once) bounds how many basis
    directions go through one sweep.  The Jacobian's dtype is the promotion
    of the output's and the input's dtypes.  NumPy arrays are returned, or
    Variables connected to the outer graph when an input is a Variable that
    requires grad (nesting: ``jacobian(grad(f), x)`` is a Hessian).
    """
    if mode not in _MODES:
        raise ValueError(f"jacobian: mode must be one of {', '.join(map(repr, _MODES))}, "
                         f"got {mode!r}")
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
            raise TypeError(f"jacobian: chunk_size must be a positive int or None, "
                            f"got {chunk_size!r}")
        if chunk_size < 1:
            raise ValueError(f"jacobian: chunk_size must be a positive int or None, "
                             f"got {chunk_size}")
        chunk_size = int(chunk_size)
    several = isinstance(x, tuple)
    xs = [_primal("jacobian", f"x[{i}]" if several else "x", xi)
          for i, xi in enumerate(_as_tuple(x))]
    nested = any(_requires_grad(xi) for xi in xs)
    trace = _Trace("jacobian", f, xs, range(len(xs)), nested)
    if mode == "auto":
        n = sum(xi.size for xi in trace.inputs)
        mode = "forward" if n <= trace.output.size else "reverse"
    with trace.grad_mode():
        if mode == "forward":
            jacobians = _jacobian_forward(trace, chunk_size)
        else:
            jacobians = _jacobian_reverse(trace, chunk_size)
    jacobians = tuple(trace.finish(j) for j in jacobians)
    return jacobians if several else jacobians[0]


def hessian(f, x):
    """The Hessian of a scalar ``f`` at ``x``: shape ``x.shape + x.shape``.

    Forward-over-reverse: ``jacobian(grad(f), x, mode="forward")``, i.e. a
    batched forward sweep over the recorded reverse sweep.  For a tuple
    ``x`` the result is a tuple of tuples: ``H[i][j]`` has shape
    ``x[i].shape + x[j].shape``.
    """
    if isinstance(x, tuple):
        return tuple(
            jacobian(_value_and_grad_of("hessian", f, i), x, mode="forward")
            for i in range(len(x)))
    return jacobian(_value_and_grad_of("hessian", f, 0), x, mode="forward")


def _value_and_grad_of(fname, f, argnum):
    """``grad(f, argnum)`` whose errors name ``fname``."""
    vg = _value_and_grad(fname, f, argnum)
    return lambda *args: vg(*args)[1]


def hvp(f, x, v):
    """Hessian-vector product H(x) @ v of a scalar ``f``, shape of ``x``.

    Forward-over-reverse without forming H: one forward sweep of the tangent
    ``v`` over the recorded gradient computation.  For a tuple ``x``, ``v``
    is a tuple too and the result is a tuple (one block row per input).
    """
    several = isinstance(x, tuple)
    xs = [_primal("hvp", f"x[{i}]" if several else "x", xi) for i, xi in enumerate(_as_tuple(x))]
    vs = _as_tuple(v)
    if len(vs) != len(xs):
        raise ValueError(f"hvp: got {len(xs)} inputs x but {len(vs)} directions v")
    for i, (vi, xi) in enumerate(zip(vs, xs)):       # check here to name 'v'
        _direction("hvp", f"v[{i}]" if several else "v", vi, xi, f"x[{i}]" if several else "x")
    names = (_names("x", several), _names("v", several))
    rows = tuple(_jvp("hvp", _value_and_grad_of("hvp", f, i), tuple(xs), tuple(vs), names)[1]
                 for i in range(len(xs)))
    return rows if several else rows[0]


# --------------------------------------------------------------------------
# Custom ops
# --------------------------------------------------------------------------


class _CustomFunction(Function):
    """The graph node of a ``custom_op`` call.  Rules get NumPy arrays."""

    name = "custom_op"

    def forward(self, *xs):
        self.save_for_backward(*xs, OUTPUT)
        out = np.asarray(self.op.fun(*[x.data for x in xs], **self.kwargs))
        if out.dtype not in _FLOAT_DTYPES:
            if out.dtype.kind not in "biuf":
                raise TypeError(f"custom op '{self.name}': forward must return a float "
                                f"array, got dtype {out.dtype}")
            out = out.astype(np.result_type(*[x.dtype for x in xs]) if xs else np.float64)
        return out

    def _second_order_check(self):
        # Rules work on NumPy arrays, so they cannot be recorded: a sweep that
        # is itself being recorded (create_graph, nested transforms) fails.
        if is_grad_enabled():
            raise NotImplementedError(
                f"custom op '{self.name}': second-order differentiation (create_graph=True, "
                f"hessian, hvp, nested transforms) through a custom op is not supported; "
                f"its rules work on NumPy arrays")

    def vjp(self, g):
        rule = self.op._vjp_rule
        if rule is None:
            raise NotImplementedError(
                f"custom op '{self.name}' has no VJP rule for reverse mode; define one "
                f"with @{self.name}.defvjp")
        self._second_order_check()
        *xs, ans = self.saved_values()
        grads = rule(g.data, ans.data, *[x.data for x in xs], **self.kwargs)
        if len(xs) == 1 and not isinstance(grads, (tuple, list)):
            grads = (grads,)
        grads = tuple(grads)
        if len(grads) != len(xs):
            raise ValueError(f"custom op '{self.name}': the VJP rule returned {len(grads)} "
                             f"gradients for {len(xs)} inputs")
        result = []
        for i, (x, gi) in enumerate(zip(xs, grads)):
            if gi is None or self.inputs[i] is None:
                result.append(None)
                continue
            gi = np.asarray(gi, dtype=x.dtype)
            if gi.shape != x.shape:
                try:        # accept a gradient of the broadcast shape: sum it down
                    np.broadcast_to(np.zeros(x.shape), gi.shape)
                    gi = ops.unbroadcast(Variable._wrap(gi), x.shape).data
                except ValueError:
                    raise ValueError(
                        f"custom op '{self.name}': the VJP rule returned a gradient of "
                        f"shape {gi.shape} for input {i} of shape {x.shape}") from None
            result.append(Variable._wrap(np.array(gi)))
        return tuple(result)

    def jvp(self, *ts):
        rules = self.op._jvp_rules
        if rules is None:
            raise NotImplementedError(
                f"custom op '{self.name}' has no JVP rule for forward mode; define them "
                f"with {self.name}.defjvp(...) (one rule per input)")
        self._second_order_check()
        *xs, ans = self.saved_values()
        k = next(t for t in ts if t is not None).shape[0]
        shape = (k,) + ans.shape
        total = None
        for i, t in enumerate(ts):
            if t is None:
                continue                       # no tangent: no contribution
            if i >= len(rules):
                raise NotImplementedError(
                    f"custom op '{self.name}' has no JVP rule for input {i} (forward mode); "
                    f"pass one rule per input to {self.name}.defjvp")
            if rules[i] is None:               # declared zero, as in HIPS autograd
                continue
            ti = np.asarray(rules[i](t.data, ans.data, *[x.data for x in xs], **self.kwargs))
            try:
                ti = np.broadcast_to(ti, shape)
            except ValueError:
                raise ValueError(
                    f"custom op '{self.name}': the JVP rule of input {i} returned shape "
                    f"{ti.shape}, expected the batched output shape {shape}") from None
            total = ti if total is None else total + ti
        return None if total is None else Variable._wrap(np.array(total, dtype=ans.dtype))


class custom_op:
    """A primitive defined by a NumPy function, with user-supplied derivatives.

    ::

        @custom_op
        def cube(x):                    # forward: NumPy arrays in and out
            return x ** 3

        @cube.defvjp
        def _(g, ans, x):               # one gradient per input (a tuple for several)
            return g * 3 * x ** 2

        @cube.defjvp
        def _(t, ans, x):               # output tangent contributed by x's tangent
            return t * 3 * x ** 2

    For several inputs, ``defjvp(rule_0, rule_1, ...)`` takes one rule per
    input (``rule_i(t_i, ans, *inputs)``); the contributions of the inputs
    with a tangent are summed.  A rule given as None means a zero derivative
    (HIPS autograd's convention).  ``g`` and ``t`` may carry one extra leading
    batch axis (in this engine: ``t`` always does, ``g`` never), so rules must
    broadcast.  Calling it on Variables records a node; positional arguments
    are the inputs, keyword arguments are passed to forward and rules as
    constants.  A missing rule for the mode in use, or any second-order use,
    raises ``NotImplementedError`` naming the op.
    """

    def __init__(self, fun):
        if not callable(fun):
            raise TypeError(f"custom_op: expected a function, got {type(fun).__name__}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.name = getattr(fun, "__name__", "custom_op")
        self._vjp_rule = None
        self._jvp_rules = None

    def defvjp(self, rule):
        """Set the VJP rule ``rule(g, ans, *inputs)``; usable as a decorator."""
        if not callable(rule):
            raise TypeError(f"custom op '{self.name}': defvjp expects a function")
        self._vjp_rule = rule
        return rule

    def defjvp(self, *rules):
        """Set the JVP rules, one per input (None = zero); usable as a decorator."""
        if not rules or any(r is not None and not callable(r) for r in rules):
            raise TypeError(f"custom op '{self.name}': defjvp expects one function "
                            f"(or None) per input")
        self._jvp_rules = rules
        return rules[0] if len(rules) == 1 else rules

    def __call__(self, *args, **kwargs):
        xs = ops._operands(*args)
        return _CustomFunction.apply(*xs, op=self, kwargs=kwargs, name=self.name)

    def __repr__(self):
        return f"<custom_op {self.name}>"

