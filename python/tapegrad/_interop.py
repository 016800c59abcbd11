"""NumPy interplay for the C++ ``Variable``: repr and ``__array_ufunc__``.

With ``__array_ufunc__`` defined, ``ndarray + Variable`` does not turn the
Variable into an object array: NumPy hands the operation to us and we run
the tapegrad op. Any other ufunc (``np.exp(v)``) would silently drop the
graph, so it raises a TypeError that names the tapegrad function to use.
"""
from typing import Any, Callable, Dict, Iterator

import numpy as np

from . import _core

_OPERATOR_UFUNCS: Dict[np.ufunc, Callable[..., _core.Variable]] = {
    np.add: _core.add,
    np.subtract: _core.subtract,
    np.multiply: _core.multiply,
    np.true_divide: _core.divide,
    np.power: _core.power,
    np.matmul: _core.matmul,
    np.negative: _core.negative,
    np.maximum: _core.maximum,
    np.minimum: _core.minimum,
}
_COMPARISONS: Dict[np.ufunc, Callable[[Any, Any], Any]] = {
    np.less: lambda a, b: np.asarray(a) < np.asarray(b),
    np.less_equal: lambda a, b: np.asarray(a) <= np.asarray(b),
    np.greater: lambda a, b: np.asarray(a) > np.asarray(b),
    np.greater_equal: lambda a, b: np.asarray(a) >= np.asarray(b),
    np.equal: lambda a, b: np.asarray(a) == np.asarray(b),
    np.not_equal: lambda a, b: np.asarray(a) != np.asarray(b),
}


def _array_ufunc(self: _core.Variable, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
    if method == "__call__" and not kwargs:
        fn = _OPERATOR_UFUNCS.get(ufunc)
        if fn is not None:
            return fn(*inputs)
        cmp = _COMPARISONS.get(ufunc)
        if cmp is not None:
            return cmp(*inputs)
    name = ufunc.__name__
    hint = f"tapegrad.{name}(...)" if hasattr(_core, name) else "a tapegrad function"
    raise TypeError(
        f"np.{name} was applied to a tapegrad.Variable (method={method!r}); NumPy ufuncs do not "
        f"record on the tape, so the gradient would be lost. Use {hint} instead, or np.{name}(v.data) "
        "for a plain array without gradients."
    )


def _repr(self: _core.Variable) -> str:
    body = np.array2string(self.data, separator=", ", prefix="Variable(")
    extra = f", dtype={self.dtype}"
    if self.grad_fn is not None:
        extra += f", grad_fn={self.grad_fn.name}"
    elif self.requires_grad:
        extra += ", requires_grad=True"
    return f"Variable({body}{extra})"


def _iter(self: _core.Variable) -> Iterator[_core.Variable]:
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d Variable")
    return (self[i] for i in range(len(self)))


for _name, _fn in {"__array_ufunc__": _array_ufunc, "__iter__": _iter, "__repr__": _repr, "__str__": _repr}.items():
    setattr(_core.Variable, _name, _fn)  # (_core.pyi declares them on Variable)
