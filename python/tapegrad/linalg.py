"""tapegrad.linalg: linear algebra on Variables (``np.linalg.<name>`` dispatches here).

``norm`` is a composition of the op spec (opspec/ops.py), ``matmul`` a primitive;
both are also ``tapegrad.norm`` / ``tapegrad.matmul``.
"""
from . import matmul, norm  # type: ignore[attr-defined]  # noqa: F401  (norm: set by tapegrad/__init__.py before this import)

__all__ = ["matmul", "norm"]
