"""tapegrad.set_num_threads / get_num_threads: the one threads knob."""
import numpy as np
import pytest

import tapegrad as tg
from helpers import with_threads


def test_set_and_get_num_threads_round_trip_and_results_do_not_change():
    a = np.random.default_rng(0).standard_normal((300, 200))
    b = np.random.default_rng(1).standard_normal((200, 100))
    before = tg.get_num_threads()
    try:
        tg.set_num_threads(1)
        assert tg.get_num_threads() == 1
        one = (tg.Variable(a) @ tg.Variable(b)).numpy()
        tg.set_num_threads(2)
        assert tg.get_num_threads() == 2
        two = (tg.Variable(a) @ tg.Variable(b)).numpy()
    finally:
        tg.set_num_threads(before)
    np.testing.assert_allclose(one, a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(two, a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad", [0, -3])
def test_set_num_threads_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        tg.set_num_threads(bad)


# Workers spin between jobs and the caller spins for them (cpp/src/parallel.cpp):
# results at any thread count, with workers awake or woken, are one thread's bits.
@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("size", [8 * 32768 + 1, (1 << 20) + 3])
def test_ranges_claimed_by_any_thread_give_one_threads_bits(threads, size):
    rng = np.random.default_rng(size + threads)
    x = rng.standard_normal(size).astype(np.float32)
    m = rng.standard_normal((size // 257, 257))

    def run():
        xv, mv = tg.Variable(x, requires_grad=True), tg.Variable(m, requires_grad=True)
        out = [tg.exp(xv), tg.sigmoid(xv), xv * xv + 1.0, xv.sum(), mv.sum(axis=0), tg.softmax(mv), mv.mean()]
        (tg.tanh(xv) * xv).sum().backward()
        tg.logsumexp(mv).backward()
        return [o.numpy() for o in out] + [xv.grad, mv.grad]

    one = with_threads(1, run)
    for _ in range(3):  # workers spinning from the last job, and woken from sleep
        many = with_threads(threads, run)
        for a, b in zip(one, many):
            np.testing.assert_array_equal(a, b)


def test_back_to_back_jobs_from_several_python_threads_and_resizes():
    # Jobs live on the caller's stack while spinning workers may still hold
    # them: many short jobs from two Python threads, with resizes between.
    import threading

    x = np.random.default_rng(5).standard_normal(70_001)
    want_exp = tg.exp(tg.Variable(x)).numpy()
    want_sum = tg.Variable(x).sum().item()
    errors = []

    def loop():
        try:
            v = tg.Variable(x)
            for _ in range(150):
                np.testing.assert_array_equal(tg.exp(v).numpy(), want_exp)
                assert v.sum().item() == want_sum
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    before = tg.get_num_threads()
    try:
        for n in (2, 3, 2):
            tg.set_num_threads(n)
            ts = [threading.Thread(target=loop) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
    finally:
        tg.set_num_threads(before)
    assert not errors, errors
