"""Issue 17 (h80): the memory-bound rows at 1M elements. setitem's fills run
in the ISA's loops (a copy of the value's bits at any width: -0.0 and NaN
payloads kept), long runs and short ones, every row split among threads
whole; the results are compared with NumPy bit for bit at every instruction
set and at 1 and 2 threads."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core
from test_big_views import threads  # noqa: F401  (the 1- and 2-thread fixture)
from test_kernels_fastpaths import ISAS

# Values whose bits a fill must keep: negative zero, a NaN with a payload, a subnormal, an infinity.
VALUES = [0.5, -0.0, float("nan"), 5e-324, -float("inf")]


def bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def each_isa():
    before = _core._isa()
    try:
        for isa in ISAS:
            _core._set_isa(isa)
            yield isa
    finally:
        _core._set_isa(before)


# Row lengths around the inline/ISA cut (32) and the vector widths; offsets
# that leave the rows unaligned.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [(0, 31), (1, 32), (1, 34), (3, 70), (1, -1), (0, None)], ids=str)
def test_strided_block_fill_keeps_bits(cols, dtype, threads):
    rng = np.random.default_rng(80)
    a = rng.standard_normal((1024, 1024)).astype(dtype)
    key = (slice(None, None, 2), slice(*cols))
    for isa in each_isa():
        for c in VALUES:
            v = tg.Variable(a)
            v[key] = c
            want = a.copy()
            want[key] = c
            assert np.array_equal(bits(v.numpy()), bits(want)), (isa, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 40), (33, 1024), (1024, 1022), (2, 1 << 19)], ids=str)
def test_row_key_fills_keep_bits_and_wrap_negative_rows(shape, dtype, threads):
    rng = np.random.default_rng(81)
    a = rng.standard_normal(shape).astype(dtype)
    n = shape[0]
    ints = rng.integers(-n, n, max(1, n // 2))
    mask = rng.random(n) < 0.5
    for isa in each_isa():
        for key in (ints, list(ints[:5].tolist()), mask):
            v = tg.Variable(a)
            v[key] = -0.0
            want = a.copy()
            want[key] = -0.0
            assert np.array_equal(bits(v.numpy()), bits(want)), isa


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scatter_of_a_number_1m(dtype, threads):
    rng = np.random.default_rng(82)
    a = rng.standard_normal(1 << 20).astype(dtype)
    ints = rng.integers(-(1 << 20), 1 << 20, 1 << 19)
    v = tg.Variable(a)
    v[ints] = 0.5
    want = a.copy()
    want[ints] = 0.5
    assert np.array_equal(v.numpy(), want)
    with pytest.raises(IndexError):
        v[np.array([0, 1 << 20])] = 0.5
    with pytest.raises(IndexError):
        v[np.array([-(1 << 20) - 1])] = 0.5
    assert np.array_equal(v.numpy(), want)  # a refused key writes nothing


# h134-scatter: `v[ints] = c` with an int64 array reads the key in place and
# splits the stores among threads (two threads may store the same element:
# the same bits). Every key form NumPy takes gives NumPy's bits: in-place
# int64 keys (also with many repeats and with negative entries), strided and
# byte-swapped int64 keys, int32 keys and lists (the copying path), over a
# destination above and below the split's size.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1000, 1 << 20], ids=str)
def test_scatter_of_a_number_keys_bits(n, dtype, threads):
    rng = np.random.default_rng(134)
    a = rng.standard_normal(n).astype(dtype)
    ints = rng.integers(-n, n, n // 2 + 70001)
    keys = [ints, rng.integers(0, 5, n), ints[::3], ints.astype(">i8"), ints.astype(np.int32), ints[:40].tolist(),
            np.arange(n - 20, n)]
    for key in keys:
        for c in VALUES:
            v = tg.Variable(a)
            v[key] = c
            want = a.copy()
            want[key] = c
            assert np.array_equal(bits(v.numpy()), bits(want)), (type(key), getattr(key, "dtype", None), c)


def test_scatter_of_a_number_refuses_bad_keys_whole(threads):
    a = np.arange(float(1 << 20))
    for bad in (1 << 20, -(1 << 20) - 1):
        key = np.arange(1 << 19)
        key[-1] = bad  # (the last entry, in the second thread's half)
        v = tg.Variable(a)
        with pytest.raises(IndexError):
            v[key] = -1.0
        assert np.array_equal(v.numpy(), a)
