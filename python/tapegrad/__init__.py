"""tapegrad: automatic differentiation for Python on the CPU.

A C++ tape records every primitive op applied to a :class:`Variable`;
``backward()`` runs the reverse sweep in C++. ``tapegrad.reference`` is an
independent pure-NumPy engine with the same API, for cross-checking.
"""
from typing import TYPE_CHECKING as _TYPE_CHECKING


def _load_openblas() -> None:
    """Load OpenBLAS (scipy-openblas32) before the extension that links it.

    The extension finds it through its RPATH in a regular install; loading it
    here first also covers editable installs, whose extension lives in the
    build tree."""
    import ctypes
    import os

    import scipy_openblas32

    ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True)),
                mode=ctypes.RTLD_GLOBAL)


_load_openblas()

from . import _core  # noqa: E402
from ._core import (  # noqa: E402,F401  (the public API besides the ops)
    Variable,
    Node,
    from_numpy,
    is_grad_enabled,
    is_anomaly_enabled,
    set_num_threads,
    get_num_threads,
)

# Every op of the spec (opspec/ops.py), as the core declares it in __ops__.
globals().update({_name: getattr(_core, _name) for _name in _core.__ops__})
if _TYPE_CHECKING:  # the same names for type checkers, from _core.pyi (opspec/stubs.py writes it from the spec)
    from ._core import *  # noqa: F401,F403
from ._grad_mode import no_grad, enable_grad, detect_anomaly  # noqa: F401
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
from . import _interop  # noqa: F401  (repr, formatting, pickling and DLPack for Variable)
from ._interop import from_dlpack  # noqa: F401,E402
from . import _compose as _compose_mod  # noqa: E402
# The spec's compositions (opspec/ops.py COMPOSITIONS) over the C++ primitives.
_compositions = _compose_mod.build(_core)
import types as _types  # noqa: E402
globals().update(_compositions)
for _name, _entry in _core.__compositions__.items():
    # C++ methods stay (h96-small installs argmax, tolist, ... on the type); h95-shape's C++ bodies come as
    # _core._<name>_method; else the composition.
    if _entry["method"] and not isinstance(vars(Variable).get(_name), _types.MethodDescriptorType):
        setattr(Variable, _name, getattr(_core, f"_{_name}_method", _compositions[_name]))
from . import linalg  # noqa: E402,F401
from . import _numpy_dispatch  # noqa: E402
_numpy_dispatch.install({**{_n: getattr(_core, _n) for _n in _core.__ops__}, **_compositions})
from . import reference  # noqa: F401  (the pure-NumPy engine, same API)
from . import nn, optim, data  # noqa: F401,E402  (layers and training, optimizers, data sets)
from .nn.init import manual_seed  # noqa: F401,E402
from . import numeric  # noqa: F401,E402  (finite differences and the complex step)
from . import symbolic  # noqa: F401,E402  (SymPy, imported only when used)
from . import testing  # noqa: F401,E402  (crosscheck of the two engines)
from .gradcheck import gradcheck, GradcheckError  # noqa: F401,E402

__version__ = "0.1.0"

# ``from tapegrad import *``: the spec's ops and compositions and every other public name, minus those that would
# shadow a Python builtin (sum, max, min, abs, round, ...): after a star import ``max(3, 5)`` stays Python's.
# Derived, not listed, so a new op or builtin is handled without editing this line.
import builtins as _builtins  # noqa: E402

__all__ = sorted({*_core.__ops__, *_core.__compositions__, *(n for n in list(globals()) if not n.startswith("_"))}
                 - set(dir(_builtins)))
