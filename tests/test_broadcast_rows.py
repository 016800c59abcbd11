"""Binary ops where neither operand has the output's shape: a column against a row ((n, 1) op (1, m), outer),
a row against a column, a matrix against a column or a row, and scalar-like shapes (issue 17, h121-outer).

Each element is one application of the op, so the result must have the bits of the same op on operands
broadcast out to the full shape first (the same-shape loop), in every ISA build and at 1 and 2 threads; the
elementary ops (+ - * / maximum minimum fmax fmin) must also have NumPy's bits, the others NumPy's values to
a few ulps. Views (strided, reversed) are operands like any other. Gradients against finite differences.
"""
import numpy as np
import pytest

import tapegrad as tg
from helpers import every_isa_and_thread_count

EXACT = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "fmax", "fmin"]
OTHER = ["power", "arctan2", "hypot", "logaddexp", "logaddexp2"]
ALL = EXACT + OTHER
DTYPES = [np.float32, np.float64]

# (a's shape, b's shape): output (n, m) in every case but the scalar-like ones.
SHAPES = [
    ((7, 1), (1, 9)),        # column x row
    ((1, 9), (7, 1)),        # row x column
    ((37, 1), (53,)),        # column x 1-d row
    ((53,), (37, 1)),
    ((5, 1, 1), (1, 3, 17)),  # column of a 3-d output against a matrix
    ((1, 1), (6, 1)),        # scalar-like against a column
    ((6, 1), (1, 1)),
    ((1,), (4, 1)),
    ((1, 40), (1, 1)),
    ((12, 1), (12, 33)),     # a matrix against a column (M + col)
    ((12, 33), (12, 1)),
    ((33,), (12, 33)),       # against a row (M + row)
    ((3, 1, 5), (1, 4, 1)),  # a column in the middle
    ((64, 1), (1, 1030)),    # rows longer than a vector loop's unrolled body, odd tail
    ((1, 1030), (64, 1)),
]

# Large enough to be split over 2 threads at the elementwise grain (262,144 elements; pow's 32,768).
BIG = [((700, 1), (1, 800)), ((1, 800), (700, 1)), ((700, 1), (700, 800))]


def _operands(name, sa, sb, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(sa).astype(dtype)
    b = rng.standard_normal(sb).astype(dtype)
    if name == "power":  # a positive base (a negative one to a fractional power is NaN in both)
        a = np.abs(a) + dtype(0.25)
    if name == "divide":
        b = np.where(np.abs(b) < 0.1, dtype(0.5), b).astype(dtype)
    return a, b


def _full(x, shape):
    return np.ascontiguousarray(np.broadcast_to(x, shape))


def _check(name, a, b, dtype, views=None):
    """The broadcast result: bit-equal across ISAs and thread counts, to the same-shape loop, and to NumPy."""
    f = getattr(tg, name)
    views = views or (lambda v: v)
    got = every_isa_and_thread_count(lambda x, y: f(views(x), views(y)), a, b)
    av, bv = np.asarray(views(a)), np.asarray(views(b))
    shape = np.broadcast_shapes(av.shape, bv.shape)
    assert got.shape == shape and got.dtype == dtype
    same = f(tg.Variable(_full(av, shape)), tg.Variable(_full(bv, shape))).numpy()
    assert got.tobytes() == same.tobytes(), f"{name}: broadcast bits differ from the same-shape loop's"
    with np.errstate(all="ignore"):
        want = getattr(np, name)(av, bv)
        want64 = getattr(np, name)(av.astype(np.float64), bv.astype(np.float64))
    if name in EXACT:
        assert got.tobytes() == want.astype(dtype).tobytes(), f"{name}: not NumPy's bits"
    else:
        # (NumPy's float32 logaddexp is off by more than 8 ulps where it cancels: the float64 values instead)
        np.testing.assert_allclose(got, want64, rtol=8 * np.finfo(dtype).eps, atol=8 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", ALL)
def test_rows_against_columns(name, shapes, dtype, restore_isa_and_threads):
    a, b = _operands(name, *shapes, dtype)
    _check(name, a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BIG, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", ["multiply", "add", "divide", "maximum", "power", "logaddexp"])
def test_large_outputs_split_over_threads(name, shapes, dtype, restore_isa_and_threads):
    a, b = _operands(name, *shapes, dtype, seed=1)
    _check(name, a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["multiply", "subtract", "divide", "arctan2", "fmin"])
def test_strided_and_reversed_views(name, dtype, restore_isa_and_threads):
    # a (n, 1) column and a (1, m) row taken as views: every other element, reversed, both.
    a, b = _operands(name, (40, 2), (3, 70), dtype, seed=2)
    _check(name, a, b, dtype, views=lambda v: v[::-2, :1] if v.shape[0] == 40 else v[1:2, ::-3])
    _check(name, a, b, dtype, views=lambda v: v[::2, 1:] if v.shape[0] == 40 else v[2:, ::-1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_column_by_row(dtype, restore_isa_and_threads):
    vals = np.array([0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 1e-40, 3e38], dtype)
    for name in EXACT:
        _check(name, vals[:, None], vals[None, :], dtype)
        _check(name, vals[None, :], vals[:, None], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_outer_matches_numpy(dtype, restore_isa_and_threads):
    rng = np.random.default_rng(3)
    u, w = rng.standard_normal(300).astype(dtype), rng.standard_normal(1001).astype(dtype)
    got = every_isa_and_thread_count(tg.outer, u, w)
    assert got.tobytes() == np.outer(u, w).tobytes()
    u2 = rng.standard_normal((25, 30)).astype(dtype)  # flattened first, as NumPy's
    assert tg.outer(tg.Variable(u2), tg.Variable(w)).numpy().tobytes() == np.outer(u2, w).tobytes()
    big_u, big_w = rng.standard_normal(1024).astype(dtype), rng.standard_normal(1024).astype(dtype)
    got = every_isa_and_thread_count(tg.outer, big_u, big_w)
    assert got.tobytes() == np.outer(big_u, big_w).tobytes()


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "maximum", "hypot", "logaddexp"])
def test_gradients_against_finite_differences(name):
    for sa, sb in [((5, 1), (1, 4)), ((1, 4), (5, 1)), ((5, 1), (5, 4)), ((4,), (5, 1))]:
        a, b = _operands(name, sa, sb, np.float64, seed=4)
        if name == "maximum":  # away from ties, where the derivative jumps
            b = b + 0.01
        tg.gradcheck(lambda x, y: getattr(tg, name)(x, y), (a, b), fast=False)


def test_outer_and_broadcast_to_gradients():
    rng = np.random.default_rng(5)
    u, w = rng.standard_normal(6), rng.standard_normal(7)
    tg.gradcheck(tg.outer, (u, w), fast=False, order=2)
    tg.gradcheck(lambda r: tg.broadcast_to(r, (5, 7)), (w,), fast=False)
    # broadcast_to's backward sums the seed over rows: at 1 and 2 threads, the same bits, NumPy's column sums.
    row = rng.standard_normal(1024).astype(np.float32)
    seed = rng.standard_normal((1024, 1024)).astype(np.float32)

    def grad(r):
        r.requires_grad = True
        tg.broadcast_to(r, (1024, 1024)).backward(tg.Variable(seed))
        return r.grad

    got = every_isa_and_thread_count(grad, row)
    np.testing.assert_allclose(got, seed.astype(np.float64).sum(axis=0), rtol=1e-4, atol=1e-4)

