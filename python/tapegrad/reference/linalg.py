"""tapegrad.reference.linalg: tapegrad.linalg's names over the reference engine
(``np.linalg.<name>`` on a reference Variable dispatches to the same functions)."""
from . import cholesky, det, inv, matmul, norm, slogdet, solve  # noqa: F401  (set by reference/__init__.py first)

__all__ = ["cholesky", "det", "inv", "matmul", "norm", "slogdet", "solve"]
