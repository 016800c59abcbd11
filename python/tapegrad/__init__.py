"""tapegrad: automatic differentiation for Python on the CPU.

A C++ tape records every primitive op applied to a :class:`Variable`;
``backward()`` runs the reverse sweep in C++. ``tapegrad.reference`` is an
independent pure-NumPy engine with the same API, for cross-checking.
"""
from ._core import (  # noqa: F401  (the public API)
    Variable,
    Node,
    from_numpy,
    is_grad_enabled,
    add,
    subtract,
    multiply,
    divide,
    power,
    negative,
    exp,
    log,
    log1p,
    sqrt,
    sin,
    cos,
    tanh,
    sigmoid,
    relu,
    abs,
    maximum,
    minimum,
    clip,
    where,
    sum,
    mean,
    max,
    min,
    logsumexp,
    softmax,
    log_softmax,
    reshape,
    transpose,
    broadcast_to,
    concatenate,
    stack,
    matmul,
    astype,
)
from ._grad_mode import no_grad, enable_grad  # noqa: F401
from .functional import (  # noqa: F401
    jvp,
    vjp,
    grad,
    value_and_grad,
    jacobian,
    hessian,
    hvp,
    directional_derivative,
)
from .custom import custom_op  # noqa: F401
from . import _interop  # noqa: F401  (NumPy protocols and repr for Variable)
from . import reference  # noqa: F401  (the pure-NumPy engine, same API)

__version__ = "0.1.0"
