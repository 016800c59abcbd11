"""Type aliases of tapegrad's public signatures (one place, so every module spells them alike)."""
from typing import Any, Callable, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._core import Variable

#: A float32/float64 NumPy array, as `.grad`, `.numpy()` and the derivative operators return.
Array = NDArray[np.floating[Any]]
#: What an op or a derivative operator takes: a Variable, or anything NumPy turns into an array.
Operand = Union[Variable, ArrayLike]
#: The result of a derivative operator: a NumPy array, or a Variable when it runs nested inside
#: another transform (an input that requires grad, e.g. jacobian(grad(f), x)).
Result = Union[Array, Variable]
#: One primal or several (a tuple or list: one per argument of the function).
Primals = Union[Operand, Sequence[Operand]]
#: A function a derivative operator differentiates: Variables in, one Variable out.
Function = Callable[..., Variable]
#: A Jacobian per input: one, or a tuple of them.
Results = Union[Result, Tuple[Result, ...]]
