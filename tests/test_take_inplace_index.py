"""take / v.take / take_along_axis read a C-contiguous int64 NumPy index in place
(one fused pass: wrap, range check, gather): the caller's array is not copied, so
these check that a recorded node keeps its own positions (mutating or freeing the
index after the call changes no gradient), that nothing writes to the index
(a read-only one works), that the first out-of-range index in index order is the
one reported at 1 and 2 threads, and the fused path against NumPy (1M, split
among threads: the same bits at 1 and 2)."""
import gc

import numpy as np
import pytest

import tapegrad as tg

N = 1 << 20


def _add_at(shape, dtype, pos, w):
    want = np.zeros(int(np.prod(shape)), dtype)
    np.add.at(want, pos.ravel(), w.ravel())
    return want.reshape(shape)


@pytest.mark.parametrize("n", [7, N])
@pytest.mark.parametrize("how", ["take", "v.take", "along"])
def test_mutating_index_after_call_keeps_gradient(how, n):
    rng = np.random.default_rng(111)
    if how == "along":
        k = 1024 if n == N else 3
        a = rng.standard_normal((k, k))
        idx = rng.integers(-k, k, (k, k // 2 + 1))
        pos = np.arange(k)[:, None] * k + np.where(idx < 0, idx + k, idx)
    else:
        a = rng.standard_normal(n)
        idx = rng.integers(-n, n, n // 2 + 1)
        pos = np.where(idx < 0, idx + n, idx)
    x = tg.Variable(a, requires_grad=True)
    y = {"take": lambda: tg.take(x, idx), "v.take": lambda: x.take(idx),
         "along": lambda: tg.take_along_axis(x, idx, -1)}[how]()
    want = a.ravel()[pos]
    np.testing.assert_array_equal(y.numpy(), want)
    idx[...] = 0  # the caller reuses its array: neither the value nor the node may see it
    del idx
    gc.collect()
    w = rng.uniform(0.5, 1.5, pos.shape)
    y.backward(w)
    assert y.numpy().tobytes() == want.tobytes()
    assert x.grad.tobytes() == _add_at(a.shape, a.dtype, pos, w).tobytes()

def test_read_only_index_not_written():
    a = np.arange(10.0)
    idx = np.array([-1, 3, -10, 9])
    idx.setflags(write=False)
    x = tg.Variable(a, requires_grad=True)
    y = tg.take(x, idx)
    np.testing.assert_array_equal(y.numpy(), [9.0, 3.0, 0.0, 9.0])
    np.testing.assert_array_equal(idx, [-1, 3, -10, 9])
    y.backward(np.ones(4))
    np.testing.assert_array_equal(x.grad, [1, 0, 0, 1, 0, 0, 0, 0, 0, 2])


@pytest.mark.parametrize("how", ["take", "along"])
def test_first_bad_index_in_order_at_any_thread_count(restore_threads, how):
    rng = np.random.default_rng(7)
    k = 1024
    a = rng.standard_normal(N if how == "take" else (k, k))
    n = N if how == "take" else k
    idx = rng.integers(-n, n, N if how == "take" else (k, k))
    flat = idx.reshape(-1)
    flat[N - 5] = n + 3   # in the second thread's half
    flat[N // 2 + 9] = -n - 2
    flat[N // 2 - 1] = n  # the first one, in the first half
    for t in (1, 2):
        tg.set_num_threads(t)
        for rg in (False, True):
            x = tg.Variable(a, requires_grad=rg)
            with pytest.raises(IndexError, match=rf"index {n} is out of bounds for axis {0 if how == 'take' else 1} with size {n}"):
                tg.take(x, idx) if how == "take" else tg.take_along_axis(x, idx, -1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_eval_same_bits_at_two_threads(restore_threads, dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(N).astype(dtype)
    idx = rng.integers(-N, N, N // 2)
    m = rng.standard_normal((1024, 1024)).astype(dtype)
    ix2 = rng.integers(-1024, 1024, (1024, 512))
    outs = []
    for t in (1, 2):
        tg.set_num_threads(t)
        outs.append((tg.take(a, idx).numpy(), tg.take_along_axis(m, ix2, -1).numpy(),
                     tg.take(tg.Variable(a), idx, axis=0).numpy()))
    for u, v in zip(*outs):
        assert u.tobytes() == v.tobytes()
    np.testing.assert_array_equal(outs[0][0], np.take(a, idx))
    np.testing.assert_array_equal(outs[0][1], np.take_along_axis(m, ix2, -1))
    np.testing.assert_array_equal(outs[0][2], np.take(a, idx, axis=0))


def test_empty_axis_and_odd_inputs():
    # an index into an empty axis: the first entry is the bad one
    with pytest.raises(IndexError, match="index 0 is out of bounds for axis 0 with size 0"):
        tg.take(np.zeros(0), np.array([0, 5]))
    assert tg.take(np.zeros(0), np.zeros(0, np.int64)).shape == (0,)
    # a non-contiguous or int32 index still goes through the copy
    a = np.arange(12.0)
    idx = np.arange(24)[::2] - 12
    np.testing.assert_array_equal(tg.take(a, idx).numpy(), np.take(a, idx))
    np.testing.assert_array_equal(tg.take(a, idx.astype(np.int32)).numpy(), np.take(a, idx))
    m = np.arange(12.0).reshape(3, 4)
    i2 = np.array([[3, -1], [0, 0], [-4, 2]])
    np.testing.assert_array_equal(tg.take_along_axis(m, i2, 1).numpy(), np.take_along_axis(m, i2, 1))
    np.testing.assert_array_equal(tg.take_along_axis(m, i2[:1], 1).numpy(), np.take_along_axis(m, i2[:1], 1))
