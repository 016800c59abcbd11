"""Strided copies whose rows are short (at most 4 elements: a broadcast (N, 1) -> (N, 2), x[:, :2]) take
their own loop nest in kernels/layout.cpp (copy_short_rows): the same elements as NumPy's copy, for
broadcast and strided sources, reversed axes, more leading axes, both dtypes, and the threaded split of a
large copy at 1 and 2 threads."""
import numpy as np
import pytest

import tapegrad as tg

DTYPES = [np.float64, np.float32]


def views(rng, dtype):
    """(name, NumPy view, the same view of a tapegrad Variable)."""
    out = []
    for n in (1, 2, 3, 4, 5):  # 5: past the short-row limit, the general loop
        base = rng.standard_normal((7, 1)).astype(dtype)
        out.append((f"broadcast (7,1)->(7,{n})", np.broadcast_to(base, (7, n)),
                    tg.broadcast_to(tg.Variable(base), (7, n))))
    base = rng.standard_normal((3, 6, 1)).astype(dtype)
    out.append(("broadcast (3,6,1)->(3,6,2)", np.broadcast_to(base, (3, 6, 2)),
                tg.broadcast_to(tg.Variable(base), (3, 6, 2))))
    base = rng.standard_normal((3, 1, 1)).astype(dtype)
    out.append(("broadcast (3,1,1)->(3,5,2)", np.broadcast_to(base, (3, 5, 2)),
                tg.broadcast_to(tg.Variable(base), (3, 5, 2))))
    x = rng.standard_normal((9, 10)).astype(dtype)
    v = tg.Variable(x)
    out += [("x[:, :2]", x[:, :2], v[:, :2]), ("x[:, 1:4:2]", x[:, 1:4:2], v[:, 1:4:2]),
            ("x[::-1, :3]", x[::-1, :3], v[::-1, :3]), ("x[::2, ::-3]", x[::2, ::-3], v[::2, ::-3]),
            ("x[:, :1]", x[:, :1], v[:, :1])]
    y = rng.standard_normal((2, 5, 8)).astype(dtype)
    w = tg.Variable(y)
    out.append(("y[:, :, 2:4]", y[:, :, 2:4], w[:, :, 2:4]))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_short_row_copies_match_numpy(dtype):
    rng = np.random.default_rng(3)
    for name, want, view in views(rng, dtype):
        got = tg.copy(view)
        assert got.shape == want.shape and got.dtype == want.dtype, name
        assert np.array(got.data).tobytes() == np.ascontiguousarray(want).tobytes(), name


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_broadcast_copy_threads(dtype, threads):
    prev = tg.get_num_threads()
    tg.set_num_threads(threads)
    try:
        base = np.random.default_rng(4).standard_normal((300_001, 1)).astype(dtype)
        for n in (2, 3):
            got = tg.copy(tg.broadcast_to(tg.Variable(base), (300_001, n)))
            assert np.array(got.data).tobytes() == np.ascontiguousarray(np.broadcast_to(base, (300_001, n))).tobytes()
        x = np.random.default_rng(5).standard_normal((200_001, 6)).astype(dtype)
        got = tg.copy(tg.Variable(x)[:, 1:3])
        assert np.array(got.data).tobytes() == np.ascontiguousarray(x[:, 1:3]).tobytes()
    finally:
        tg.set_num_threads(prev)


def test_broadcast_copy_gradient():
    base = tg.Variable(np.arange(5.0).reshape(5, 1), requires_grad=True)
    y = tg.copy(tg.broadcast_to(base, (5, 2)))
    (y * np.array([1.0, 10.0])).sum().backward()
    np.testing.assert_array_equal(base.grad, np.full((5, 1), 11.0))
