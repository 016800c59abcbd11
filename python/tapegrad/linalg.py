"""tapegrad.linalg: linear algebra on Variables (``np.linalg.<name>`` dispatches here).

``inv``, ``solve``, ``slogdet``, ``cholesky`` and ``matmul`` are primitives of the op
spec (opspec/ops.py, LAPACK kernels in C++), ``det`` and ``norm`` compositions; all are
also ``tapegrad.<name>``. Batches: every function works on (..., n, n) stacks as NumPy's.
"""
from . import cholesky, det, inv, matmul, norm, slogdet, solve  # type: ignore[attr-defined]  # noqa: F401  (det, norm: set by tapegrad/__init__.py before this import)

__all__ = ["cholesky", "det", "inv", "matmul", "norm", "slogdet", "solve"]
