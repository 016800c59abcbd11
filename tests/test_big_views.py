"""Large views and reductions (issue 17, h46): the tiled transposed copy
(with and without streaming stores, threaded or not), view gradients at
1M elements, and the whole-array reductions' bits at any thread count."""

import numpy as np
import pytest

import tapegrad as tg


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
