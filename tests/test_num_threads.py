"""tapegrad.set_num_threads / get_num_threads: the one threads knob."""
import numpy as np
import pytest

import tapegrad as tg


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
