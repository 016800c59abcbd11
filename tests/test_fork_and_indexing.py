"""A fork while another thread is inside a backward sweep, and indexing cost.

The child of a fork() taken while a sweep holds the engine lock in another
thread must still be able to run backward (the lock is re-created in the
child). Basic indexing computes the selected positions from a view, so
x[i] on a large Variable does not build an index of the whole array; its
results must match NumPy's and the advanced-indexing path.
"""
import multiprocessing as mp
import threading
import warnings

import numpy as np
import pytest

import tapegrad as tg


def _child_backward(_):
    x = tg.Variable(np.arange(3.0), requires_grad=True)
    (x * x).sum().backward()
    return np.asarray(x.grad).tolist()


def test_fork_during_a_backward_sweep_in_another_thread_leaves_child_usable():
    entered = threading.Event()
    release = threading.Event()

    @tg.custom_op
    def slow(x):
        return x * 1.0

    @slow.defvjp
    def _(g, ans, x):
        entered.set()  # the sweep holds the engine lock while this rule runs
        release.wait(60)
        return g

    x = tg.Variable(np.ones(2), requires_grad=True)
    y = slow(x).sum()
    worker = threading.Thread(target=y.backward)
    worker.start()
    try:
        assert entered.wait(30)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads (Python >= 3.12)
            with mp.get_context("fork").Pool(1) as pool:
                res = pool.map_async(_child_backward, [0])
                got = res.get(timeout=60)  # a deadlocked child would time out here
    finally:
        release.set()
        worker.join(60)
    assert got == [[0.0, 2.0, 4.0]]
    np.testing.assert_array_equal(np.asarray(x.grad), [1.0, 1.0])


KEYS = [
    0, -1, 2, slice(None), slice(1, None, 2), slice(None, None, -1), slice(5, 1, -2), slice(7, 7),
    (1, 2), (-1, slice(None, None, -2)), (Ellipsis, 1), (None, 0), (slice(None), None, slice(1, 3)),
    (0, Ellipsis, None), (), Ellipsis, (slice(None, None, 3), -2),
    # advanced keys take the other path; same results
    [0, 2], np.array([1, 1, 0]), (np.array([0, 2]), slice(1, 3)), np.array([True, False, True, False]),
]


@pytest.mark.parametrize("key", KEYS, ids=repr)
@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 3)], ids=str)
def test_indexing_matches_numpy_and_scatters_gradients_back(key, shape):
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) * 1.5
    try:
        expect = a[key]
    except IndexError:
        with pytest.raises(IndexError):
            tg.Variable(a)[key]
        return
    x = tg.Variable(a, requires_grad=True)
    y = x[key]
    np.testing.assert_array_equal(y.numpy(), expect)
    w = np.random.default_rng(0).standard_normal(np.shape(expect))
    (y * tg.Variable(w)).sum().backward()
    g = np.zeros_like(a)
    np.add.at(g, key, w)
    np.testing.assert_array_equal(np.asarray(x.grad), g)


def test_indexing_zero_d_and_empty_variables():
    z = tg.Variable(np.float64(2.5))
    assert z[()].numpy() == 2.5 and z[...].shape == ()
    e = tg.Variable(np.zeros((0, 3)))
    assert e[:, 1].shape == (0,)
    assert e[1:].shape == (0, 3)
    with pytest.raises(IndexError):
        e[0]
    with pytest.raises(IndexError):
        tg.Variable(np.ones(3))[3]
