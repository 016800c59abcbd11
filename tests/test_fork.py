"""A fork while another thread is inside a backward sweep.

The child of a fork() taken while a sweep holds the engine lock in another
thread must still be able to run backward (the lock is re-created in the
child). The indexing tests that shared this file are in test_indexing.py.
"""
import multiprocessing as mp
import threading
import warnings

import numpy as np

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
