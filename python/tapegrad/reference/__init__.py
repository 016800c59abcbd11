"""tapegrad.reference: a small pure-NumPy autodiff engine with tapegrad's API,
written from the math independently of the C++ engine, so tests can run one
function on both and compare.  ``engine.py``: Variable, grad mode, the sweeps;
``ops.py``: the ops (elementwise ops are lines of the ``UNARY`` / ``BINARY``
tables; ``OPS`` lists the op names); ``functional.py``: jvp, vjp, grad,
value_and_grad, jacobian, hessian, hvp, directional_derivative, custom_op.
"""

from . import ops
from .engine import (Function, Variable, detect_anomaly, enable_grad, from_numpy, is_anomaly_enabled,
                     is_grad_enabled, no_grad)
from .functional import (custom_op, directional_derivative, grad, hessian, hvp, jacobian,
                         jvp, value_and_grad, vjp)
from .ops import BINARY, OPS, UNARY, unbroadcast

globals().update({name: getattr(ops, name) for name in OPS})

# The spec's compositions over this engine's primitives, and NumPy's protocols.
from .._compose import build as _build  # noqa: E402
from . import numpy_protocol as _numpy_protocol  # noqa: E402

COMPOSITIONS = _build(ops)
globals().update(COMPOSITIONS)
for _name, _fn in COMPOSITIONS.items():
    if _name in ("argmax", "argmin", "ravel", "flatten", "copy", "repeat", "take", "dot", "round"):
        setattr(Variable, _name, _fn)
from . import linalg  # noqa: E402,F401  (tapegrad.linalg's names, as in the C++ engine)
_numpy_protocol.install({**{name: getattr(ops, name) for name in OPS}, **COMPOSITIONS})

Node = Function   # the C++ engine calls its graph-node type Node

__all__ = ["Variable", "Function", "Node", "from_numpy", "no_grad", "enable_grad",
           "is_grad_enabled", "detect_anomaly", "is_anomaly_enabled", *OPS, "unbroadcast", "OPS", "UNARY", "BINARY",
           "jvp", "vjp", "grad", "value_and_grad", "jacobian", "hessian", "hvp",
           "directional_derivative", "custom_op", *COMPOSITIONS, "COMPOSITIONS"]
