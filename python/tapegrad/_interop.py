"""Python-facing parts of the C++ ``Variable`` written in Python: repr, iteration.
NumPy's protocols are in _numpy_dispatch.py."""
import numpy as np

from . import _core


def _repr(self):
    body = np.array2string(self.data, separator=", ", prefix="Variable(")
    extra = f", dtype={self.dtype}"
    if self.grad_fn is not None:
        extra += f", grad_fn={self.grad_fn.name}"
    elif self.requires_grad:
        extra += ", requires_grad=True"
    return f"Variable({body}{extra})"


def _iter(self):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d Variable")
    return (self[i] for i in range(len(self)))


_core.Variable.__iter__ = _iter
_core.Variable.__repr__ = _repr
_core.Variable.__str__ = _repr
