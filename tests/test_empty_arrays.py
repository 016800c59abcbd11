"""Size-0 axes: every op must give NumPy's empty result (and zero-size
gradients) without touching memory it does not own.

The matmul cases were heap corruption (an empty broadcast batch took the
one-GEMM path and wrote M*N elements into a zero-size output); run them
under the sanitizer build to see a regression as a report, not luck.
"""
import numpy as np
import pytest

import tapegrad as tg


def _churn():
    # Allocations right after the op: a heap write out of bounds shows up here.
    return [tg.Variable(np.ones(1000)) for _ in range(100)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa, sb", [
    ((0, 64, 64), (64, 64)),
    ((2, 0, 8, 8), (2, 0, 8, 8)),
    ((0, 3, 4), (4,)),
    ((3, 4), (0, 4, 5)),
    ((0, 3, 4), (0, 4, 5)),
    ((3, 0), (0, 5)),
    ((0, 3), (3, 0)),
    ((1, 0, 2, 3), (5, 1, 3, 2)),
])
def test_matmul_with_size_zero_axes(sa, sb, dtype):
    a = tg.Variable(np.ones(sa, dtype), requires_grad=True)
    b = tg.Variable(np.ones(sb, dtype), requires_grad=True)
    y = a @ b
    expected = np.ones(sa, dtype) @ np.ones(sb, dtype)
    _churn()
    assert y.shape == expected.shape and y.dtype == expected.dtype
    np.testing.assert_array_equal(y.numpy(), expected)
    y.sum().backward()
    _churn()
    ra = tg.reference.Variable(np.ones(sa, dtype), requires_grad=True)
    rb = tg.reference.Variable(np.ones(sb, dtype), requires_grad=True)
    (ra @ rb).sum().backward()
    assert a.grad.shape == sa and b.grad.shape == sb
    np.testing.assert_array_equal(a.grad, ra.grad)
    np.testing.assert_array_equal(b.grad, rb.grad)
