"""The gather and its scatter-add VJP split among threads (take, take_along_axis, v.take,
v[ints]), and the strided embed behind a basic slice's gradient (v[::2], flip): at sizes
that split (1M elements), the same bits at 1 and 2 threads, against NumPy (np.take,
np.take_along_axis, np.add.at accumulating in index order in the array's dtype), with
many repeated and negative indices, out-of-range indices raising (naming the op, the
first bad index in index order), and empty indices."""
import numpy as np
import pytest

import tapegrad as tg

N = 1 << 20
DTYPES = [np.float32, np.float64]


def _at_threads(fn):
    """fn() at 1 and 2 threads: both results (lists of arrays)."""
    out = []
    for t in (1, 2):
        tg.set_num_threads(t)
        out.append([np.array(a, copy=True) for a in fn()])
    return out


def _same_bits(pair):
    a, b = pair
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()


def _add_at(shape, dtype, pos, w):
    # np.add.at adds in index order in the array's dtype: the order the scatter keeps
    want = np.zeros(int(np.prod(shape)), dtype)
    np.add.at(want, pos.ravel(), w.ravel())
    return want.reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spread", [50, N])  # 50: every position ~10,000 times; N: random over x
def test_take_repeated_negative_indices(restore_threads, dtype, spread):
    rng = np.random.default_rng(105)
    a = rng.standard_normal(N).astype(dtype)
    idx = rng.integers(-spread, spread, N)
    w = rng.uniform(0.5, 1.5, N).astype(dtype)

    def run():
        x = tg.Variable(a, requires_grad=True)
        y = tg.take(x, idx)
        y.backward(w)
        z = tg.Variable(a, requires_grad=True)
        z.take(idx).backward(w)
        return y.numpy(), x.grad, z.grad

    pair = _at_threads(run)
    _same_bits(pair)
    y, g, g2 = pair[1]
    assert y.tobytes() == np.take(a, idx).tobytes()
    want = _add_at(a.shape, dtype, np.where(idx < 0, idx + N, idx), w)
    assert g.tobytes() == want.tobytes() and g2.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0])
def test_take_along_axis_rows(restore_threads, dtype, axis):
    rng = np.random.default_rng(7)
    k = 1024
    a = rng.standard_normal((k, k)).astype(dtype)
    shape = (k, k // 2) if axis == -1 else (k // 2, k)
    idx = rng.integers(-k, k, shape)  # negatives, repeats within each row
    w = rng.uniform(0.5, 1.5, shape).astype(dtype)

    def run():
        x = tg.Variable(a, requires_grad=True)
        y = tg.take_along_axis(x, idx, axis)
        y.backward(w)
        return y.numpy(), x.grad

    pair = _at_threads(run)
    _same_bits(pair)
    y, g = pair[1]
    assert y.tobytes() == np.take_along_axis(a, idx, axis).tobytes()
    pos = np.take_along_axis(np.arange(a.size).reshape(a.shape), idx, axis)
    assert g.tobytes() == _add_at(a.shape, dtype, pos, w).tobytes()


def test_take_along_axis_broadcast_and_3d(restore_threads):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((64, 1, 256)).astype(np.float32)
    idx = rng.integers(-256, 256, (64, 128, 300))  # x broadcasts along axis 1: 2.4M gathered

    def run():
        x = tg.Variable(a, requires_grad=True)
        y = tg.take_along_axis(x, idx, 2)
        y.sum().backward()
        return y.numpy(), x.grad

    pair = _at_threads(run)
    _same_bits(pair)
    assert pair[1][0].tobytes() == np.take_along_axis(a, idx, 2).tobytes()


@pytest.mark.parametrize("t", [1, 2])
def test_out_of_range_names_the_first_bad_index(restore_threads, t):
    tg.set_num_threads(t)
    x = tg.Variable(np.zeros(N, np.float32), requires_grad=True)
    idx = np.zeros(N, np.int64)
    idx[700_000] = N + 5  # the second half's range
    idx[600_000] = -N - 3  # first in index order
    with pytest.raises(IndexError, match=rf"^take: index {-N - 3} is out of bounds for axis 0 with size {N}$"):
        tg.take(x, idx)
    idx[600_000] = 0
    with pytest.raises(IndexError, match=rf"take: index {N + 5} is out of bounds"):
        x.take(idx)
    with pytest.raises(IndexError):
        np.take(np.zeros(N), idx)  # NumPy raises too
    X = tg.Variable(np.zeros((1024, 1024)), requires_grad=True)
    I = np.zeros((1024, 512), np.int64)
    I[900, 3] = 1024
    I[1000, 0] = -1025
    with pytest.raises(IndexError, match=r"^take_along_axis: index 1024 is out of bounds for axis 1 with size 1024$"):
        tg.take_along_axis(X, I, -1)
    with pytest.raises(IndexError, match=r"take_along_axis: shape mismatch: indices of shape \(1024, 3\) do not "
                                         r"broadcast against x of shape \(1024, 1024\)"):
        tg.take_along_axis(X, np.zeros((1024, 3), np.int64), 0)


@pytest.mark.parametrize("t", [1, 2])
def test_empty(restore_threads, t):
    tg.set_num_threads(t)
    x = tg.Variable(np.ones(N), requires_grad=True)
    y = tg.take(x, np.zeros(0, np.int64))
    assert y.shape == (0,)
    y.backward(np.zeros(0))
    assert x.grad.tobytes() == np.zeros(N).tobytes()
    X = tg.Variable(np.ones((1024, 1024)), requires_grad=True)
    z = tg.take_along_axis(X, np.zeros((1024, 0), np.int64), -1)
    assert z.shape == (1024, 0)
    z.backward(np.zeros((1024, 0)))
    assert X.grad.tobytes() == np.zeros((1024, 1024)).tobytes()


def _slice_grad_cases():
    M = (1024, 1024)
    return [
        ((N,), lambda v: v[::2]), ((N,), lambda v: v[1::3]), ((N,), lambda v: v[5:-7:4]),
        ((N,), lambda v: v[::-2]), ((N,), lambda v: v[::-1]), ((N + 1,), lambda v: v[1::2]),
        (M, lambda v: v[::2, 1:-1]), (M, lambda v: v[1::3, ::2]), (M, lambda v: v[:, ::2]),
        (M, lambda v: v[::-1, ::-1]), (M, lambda v: v[None, ::2, 3]), ((4, 512, 512), lambda v: v[:, ::2, ::3]),
        (M, lambda v: v[:1, ::2]),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(_slice_grad_cases())))
def test_strided_slice_grad(restore_threads, dtype, case):
    shape, f = _slice_grad_cases()[case]
    rng = np.random.default_rng(case)
    a = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(f(a).shape).astype(dtype)
    w.flat[:7] = -0.0  # -0 stays -0 where selected, +0 elsewhere (NumPy's zeros)

    def run():
        x = tg.Variable(a, requires_grad=True)
        f(x).backward(w)
        return [x.grad]

    pair = _at_threads(run)
    _same_bits(pair)
    want = np.zeros(shape, dtype)
    f(want)[...] = w
    assert pair[1][0].tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_flip_grad(restore_threads, dtype):
    a = np.random.default_rng(1).standard_normal((1024, 1024)).astype(dtype)
    for seed in (np.ones(a.shape, dtype), tg.Variable(np.arange(a.size, dtype=dtype).reshape(a.shape))):
        for axis in (None, 0, 1):
            def run():
                x = tg.Variable(a, requires_grad=True)
                tg.flip(x, axis).backward(seed)
                return [x.grad]

            pair = _at_threads(run)
            _same_bits(pair)
            assert pair[1][0].tobytes() == np.flip(np.asarray(seed), axis).tobytes()


# A NumPy seed of the output's dtype is borrowed by backward() (no copy) from 64 KB: the sweep must
# never write into it and no .grad may share its memory.
SEED_CASES = [
    lambda x: x.reshape(-1), lambda x: x + x, lambda x: x * 2.0 + x, lambda x: tg.flip(x), lambda x: x[::2],
    lambda x: tg.roll(x, 3), lambda x: tg.concatenate([x, x]), lambda x: x[:, 1:-1] + x[:, 1:-1],
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(SEED_CASES)))
@pytest.mark.parametrize("readonly", [False, True])
def test_numpy_seed_is_never_written_or_aliased(dtype, case, readonly):
    f = SEED_CASES[case]
    a = np.random.default_rng(case).standard_normal((256, 257)).astype(dtype)
    x = tg.Variable(a, requires_grad=True)
    ref = tg.Variable(a, requires_grad=True)
    y = f(x)
    seed = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    keep = seed.copy()
    seed.flags.writeable = not readonly
    y.backward(seed)
    f(ref).backward(tg.Variable(keep))  # the same gradient from a private seed
    assert seed.tobytes() == keep.tobytes()
    assert x.grad.tobytes() == ref.grad.tobytes()
    assert not np.shares_memory(x.grad, seed)
    if not readonly:
        seed[...] = 7.0
        assert x.grad.tobytes() == ref.grad.tobytes()
    y = f(x)
    again = keep.copy()
    y.backward(keep)  # a second backward accumulates into .grad, not into the seed
    assert keep.tobytes() == again.tobytes()
    assert x.grad.tobytes() == (ref.grad + ref.grad).tobytes()
