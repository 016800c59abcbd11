"""Large views and reductions (issue 17, h46): the tiled transposed copy
(with and without streaming stores, threaded or not), view gradients at
1M elements, and the whole-array reductions' bits at any thread count."""

import numpy as np
import pytest

import tapegrad as tg
from test_kernels_fastpaths import ISAS  # the instruction sets this CPU runs


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = tg.get_num_threads()
    tg.set_num_threads(request.param)
    yield request.param
    tg.set_num_threads(before)


# Shapes around the kernel's edges: smaller than one block, not a multiple of
# the 8/16-element block or the 128-element tile, power-of-two rows (the
# aliasing case), and >= 4 MB (threaded, non-temporal stores).
SHAPES = [(3, 5), (17, 33), (64, 64), (130, 257), (1024, 1024), (1031, 1029)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_transposed_copy_matches_numpy(shape, dtype, threads):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    got = tg.copy(tg.Variable(a).T).numpy()
    assert got.flags["C_CONTIGUOUS"]
    assert np.array_equal(got, a.T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_copy_of_offset_and_strided_views(dtype, threads):
    # An odd element offset (unaligned rows), a row stride that is not the
    # row length, and a 3-D permutation whose tiled axis is not the first.
    a = np.random.default_rng(1).standard_normal((1100, 1050)).astype(dtype)
    v = tg.Variable(a)
    assert np.array_equal(tg.copy(v[1:, 3:].T).numpy(), a[1:, 3:].T)
    assert np.array_equal(tg.copy(v[:, ::-1].T).numpy(), a[:, ::-1].T)
    b = np.random.default_rng(2).standard_normal((6, 300, 700)).astype(dtype)
    for perm in [(0, 2, 1), (2, 1, 0), (1, 2, 0)]:
        assert np.array_equal(tg.copy(tg.Variable(b).transpose(*perm)).numpy(), b.transpose(perm))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose_grad_is_the_seed_transposed_not_aliased(dtype, threads):
    x = tg.Variable(np.zeros((1024, 1024), dtype), requires_grad=True)
    seed = np.random.default_rng(3).standard_normal((1024, 1024)).astype(dtype)
    x.T.backward(seed)
    assert np.array_equal(x.grad, seed.T)
    assert x.grad.flags["C_CONTIGUOUS"] and not np.shares_memory(x.grad, seed)
    seed[0, 1] = 99.0  # a later write to the caller's seed leaves .grad alone
    assert x.grad[1, 0] != 99.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 31, 32, 33, 95, 255, 257, 70_001, 131_072, 1_048_576 + 77])
def test_whole_array_reductions_same_bits_every_isa_and_thread_count(n, dtype):
    """sum, max and min (simd/reduce.hpp, compiled per ISA; fixed 65,536-element
    chunks; the sum's 32 lanes and its path for runs shorter than 32): one
    result at every ISA and thread count."""
    from tapegrad import _core

    x = np.random.default_rng(n).standard_normal(n).astype(dtype) + dtype(0.25)
    before_isa, before_threads = _core._isa(), tg.get_num_threads()
    results = set()
    try:
        for isa in ISAS:
            _core._set_isa(isa)
            for t in (1, 2):
                tg.set_num_threads(t)
                v = tg.Variable(x)
                results.add(tuple(np.asarray(f(v).numpy()).tobytes() for f in (tg.sum, tg.max, tg.min)))
    finally:
        _core._set_isa(before_isa)
        tg.set_num_threads(before_threads)
    assert len(results) == 1
    s, mx, mn = (np.frombuffer(b, dtype)[0] for b in results.pop())
    assert mx == x.max() and mn == x.min()
    exact = float(np.sum(x.astype(np.longdouble)))
    # float32: accumulated in double, so within one float32 ulp of the exact sum.
    tol = np.spacing(np.float32(abs(exact))) if dtype == np.float32 else 1e-12 * np.abs(x).sum()
    assert abs(float(s) - exact) <= tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_min_nan_and_inf_every_isa(dtype):
    from tapegrad import _core

    n = 1000
    x = np.random.default_rng(5).standard_normal(n).astype(dtype)
    before = _core._isa()
    try:
        for isa in ISAS:
            _core._set_isa(isa)
            for pos in (0, 31, 32, 500, 991, n - 1):  # vector body, lane edges, scalar tail
                y = x.copy()
                y[pos] = np.nan
                assert np.isnan(tg.max(tg.Variable(y)).item()) and np.isnan(tg.min(tg.Variable(y)).item())
                y[pos] = np.inf
                assert tg.max(tg.Variable(y)).item() == np.inf and tg.min(tg.Variable(y)).item() == y.min()
                y[pos] = -np.inf
                assert tg.min(tg.Variable(y)).item() == -np.inf and tg.max(tg.Variable(y)).item() == y.max()
    finally:
        _core._set_isa(before)
