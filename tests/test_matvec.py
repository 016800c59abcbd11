"""Products with a vector (cpp/src/kernels/linalg.cpp: tapegrad's own dot_run / vecmat_run instead of
OpenBLAS's GEMM, which packs even a vector, or its GEMV, whose x A form splits the sum between threads):
matrix @ vector, vector @ matrix, vector @ vector, and the K = 1 outer products of their gradients, on
contiguous operands and on views (transposes, slices: strided vectors), with and without the
accumulating form (linear's bias). Each: values against a long double product, the same bits in every
ISA build and at 1 and 2 threads, gradients C++ vs reference vs finite differences."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import crosscheck
from helpers import every_isa_and_thread_count

RNG = np.random.default_rng(11)
LONG_DOUBLE_OK = np.finfo(np.longdouble).nmant >= 63


# (a's shape, b's shape): sizes past the thread split (65,536-element chunks; 256-column blocks) and odd
# remainders of the 32 lanes and the column blocks.
SHAPES = [
    (((1 << 17) + 3,), ((1 << 17) + 3,)),  # dot: chunked
    ((31,), (31,)), ((33,), (33,)), ((1,), (1,)),
    ((2049, 517), (517,)), ((517,), (517, 2049)),  # matrix-vector, vector-matrix, threaded
    ((5, 7), (7,)), ((7,), (7, 5)), ((1, 300), (300, 129)), ((129, 300), (300, 1)),
    ((4097, 1), (1,)), ((1,), (1, 4097)), ((3, 1), (1, 1)),  # K = 1
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_vector_products_same_bits_everywhere_and_accurate(sa, sb, dtype, restore_isa_and_threads):
    a, b = RNG.standard_normal(sa).astype(dtype), RNG.standard_normal(sb).astype(dtype)
    got = every_isa_and_thread_count(lambda: tg.matmul(tg.Variable(a), tg.Variable(b)).numpy())
    want = np.matmul(a.astype(np.longdouble), b.astype(np.longdouble))
    scale = np.matmul(np.abs(a).astype(np.longdouble), np.abs(b).astype(np.longdouble))
    k = sa[-1]
    # A float32 dot product of two vectors sums in double: within one rounding of the result (relative to
    # sum |a_i b_i|). Rows of a matrix product accumulate in T, as GEMM: within the k-term bound gamma_k.
    eps = np.finfo(dtype).eps
    bound = eps if (dtype == np.float32 and len(sa) == len(sb) == 1) else (k + 1) * eps
    assert got.dtype == dtype and got.shape == want.shape
    if LONG_DOUBLE_OK:
        assert float(np.max(np.abs(got - want) / scale)) <= bound, (sa, sb)
    np.testing.assert_allclose(got, np.matmul(a, b), rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


def _views():
    """(name, a view as the left operand, a view as the right one) for shapes (m, k) @ (k,) and (k,) @ (k, n)."""
    m, k, n = 300, 257, 301
    A = RNG.standard_normal((k, m))  # A.T is (m, k), column-major
    B = RNG.standard_normal((n, k))  # B.T is (k, n)
    V = RNG.standard_normal(3 * k)
    W = RNG.standard_normal((k, 5))
    return [
        ("A.T @ v", lambda M: M(A).T, lambda M: M(V)[:k]),
        ("A[:, ::1] @ v[::3]", lambda M: M(A.T.copy())[:, :k], lambda M: M(V)[::3]),
        ("v[::3] @ B.T", lambda M: M(V)[::3], lambda M: M(B).T),
        ("W[:, 2] @ B.T", lambda M: M(W)[:, 2], lambda M: M(B).T),
        ("A.T @ W[:, 1]", lambda M: M(A).T, lambda M: M(W)[:, 1]),
        ("W[:, 1] @ W[:, 3]", lambda M: M(W)[:, 1], lambda M: M(W)[:, 3]),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", _views(), ids=lambda c: c[0])
def test_vector_products_of_views(case, dtype, restore_isa_and_threads):
    _, left, right = case
    cast = lambda x: x.astype(dtype)  # noqa: E731
    want = left(lambda x: cast(x)) @ right(lambda x: cast(x))
    got = every_isa_and_thread_count(
        lambda: (left(lambda x: tg.Variable(cast(x))) @ right(lambda x: tg.Variable(cast(x)))).numpy())
    np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_of_one_row_accumulates_onto_the_bias(dtype, restore_isa_and_threads):
    # linear's GEMM with one row is a vector-matrix product with beta = 1 (the bias copied in first)
    x, w, b = (RNG.standard_normal(s).astype(dtype) for s in ((1, 700), (700, 600), (600,)))
    got = every_isa_and_thread_count(lambda: tg.linear(tg.Variable(x), tg.Variable(w), tg.Variable(b)).numpy())
    np.testing.assert_allclose(got, x @ w + b, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)
    got1 = tg.linear(tg.Variable(x[0]), tg.Variable(w), tg.Variable(b)).numpy()
    np.testing.assert_array_equal(got1, got[0])


@pytest.mark.parametrize("sa,sb", [((6,), (6,)), ((4, 6), (6,)), ((6,), (6, 3)), ((5, 1), (1,)), ((1,), (1, 4))])
def test_vector_product_gradients(sa, sb):
    a, b = RNG.standard_normal(sa), RNG.standard_normal(sb)
    assert crosscheck(lambda m, x, y: x @ y, a, b)
    assert tg.gradcheck(lambda x, y: x @ y, (a, b), order=2, modes=("reverse", "forward"))


def test_dot_gradient_at_a_million_elements_matches_numpy():
    a, b = RNG.standard_normal(1 << 20), RNG.standard_normal(1 << 20)
    x, y = tg.Variable(a, requires_grad=True), tg.Variable(b, requires_grad=True)
    (2.5 * tg.dot(x, y)).backward()
    np.testing.assert_array_equal(np.asarray(x.grad), 2.5 * b)
    np.testing.assert_array_equal(np.asarray(y.grad), 2.5 * a)
