"""Python-facing parts of the C++ ``Variable`` written in Python: repr, iteration.
NumPy's protocols are in _numpy_dispatch.py."""
import numpy as np

from . import _core


def _repr(self: _core.Variable) -> str:
    body = np.array2string(self.data, separator=", ", prefix="Variable(")
    extra = f", dtype={self.dtype}"
    if self.grad_fn is not None:
        extra += f", grad_fn={self.grad_fn.name}"
    elif self.requires_grad:
        extra += ", requires_grad=True"
    return f"Variable({body}{extra})"


def _format(self, spec):
    # f"{loss:.4f}": a 0-d Variable formats as its number (as a 0-d ndarray does)
    if not spec:
        return str(self)
    if self.ndim != 0:
        raise TypeError(f"unsupported format string {spec!r} for a Variable of shape {self.shape} "
                        "(only 0-d Variables format as numbers)")
    return format(self.item(), spec)


def _int(self):
    if self.ndim != 0:
        raise TypeError(f"int(): only 0-d Variables convert to Python ints, got shape {self.shape}")
    return int(self.item())


def _round(self, ndigits=None):
    if ndigits is None:  # round(v): a Python int, as round(np.float64(x))
        return round(_core.Variable.__float__(self)) if self.ndim == 0 else _int(self)
    from . import round as round_
    return round_(self, ndigits)


def _tolist(self):
    """The values as nested Python lists (a number for a 0-d Variable)."""
    if not isinstance(self, _core.Variable):
        raise TypeError(f"tolist: expected a tapegrad.Variable, got {type(self).__name__}")
    return self.data.tolist()


def _reduce(self):
    # copy, deepcopy and pickle: (class, (a copy of the data, requires_grad)); never the graph,
    # the gradient or a shared buffer. For in-process use: pickle is unsafe on untrusted
    # files, and nn.save (.npz, allow_pickle=False) stays the file format.
    return _core.Variable, (self.data.copy(), self.requires_grad)


for _name, _fn in {"__reduce__": _reduce, "__format__": _format, "__int__": _int, "__round__": _round,
                  "tolist": _tolist, "__repr__": _repr, "__str__": _repr}.items():
    setattr(_core.Variable, _name, _fn)  # (_core.pyi declares them on Variable)
