"""tapegrad.reference: a small, readable pure-NumPy reverse-mode autodiff engine.

It implements the public API of docs/API.md independently of the C++ engine,
so tests can run the same function on both and compare.  ``engine.py`` holds
Variable, grad mode and the sweeps (backward, and the reverse/forward sweeps
of the functional API); ``ops.py`` holds the primitive ops with their
forward, VJP and JVP side by side; ``functional.py`` holds the transforms
(jvp, vjp, grad, value_and_grad, jacobian, hessian, hvp,
directional_derivative) and ``custom_op``.
"""

from .engine import (
    Function,
    Variable,
    enable_grad,
    from_numpy,
    is_grad_enabled,
    no_grad,
)
from .functional import (
    custom_op,
    directional_derivative,
    grad,
    hessian,
    hvp,
    jacobian,
    jvp,
    value_and_grad,
    vjp,
)
from .ops import (
    abs,
    add,
    astype,
    broadcast_to,
    clip,
    concatenate,
    cos,
    divide,
    exp,
    log,
    log1p,
    log_softmax,
    logsumexp,
    matmul,
    linear,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    negative,
    power,
    relu,
    reshape,
    sigmoid,
    sin,
    softmax,
    sqrt,
    stack,
    subtract,
    sum,
    tanh,
    transpose,
    unbroadcast,
    where,
)

Node = Function   # the C++ engine calls its graph-node type Node

__all__ = [
    "Variable", "Function", "Node", "from_numpy", "no_grad", "enable_grad", "is_grad_enabled",
    "add", "subtract", "multiply", "divide", "power", "negative",
    "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs",
    "maximum", "minimum", "clip", "where",
    "sum", "mean", "max", "min",
    "reshape", "transpose", "broadcast_to", "concatenate", "stack",
    "matmul", "linear", "softmax", "log_softmax", "logsumexp", "astype", "unbroadcast",
    "jvp", "vjp", "grad", "value_and_grad", "jacobian", "hessian", "hvp",
    "directional_derivative", "custom_op",
]
