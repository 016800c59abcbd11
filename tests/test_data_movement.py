"""Issue 17 (h57): copies and zero fills split from 1 MB, the list fast path
of concatenate/stack, the sum's gradients. Values against NumPy (exact: these
are copies) and the reference engine, at 1 and 2 threads. (The 32-lane sum's
bits at every ISA and thread count: tests/test_big_views.py.)"""
import numpy as np
import pytest

import tapegrad as tg
from test_big_views import threads  # noqa: F401  (the 1- and 2-thread fixture)

RNG = np.random.default_rng(57)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("join", ["concatenate", "stack"])
def test_join_gradients_of_1m_elements(join, dtype, threads):
    """Each part's gradient is its block of the seed, copied (threaded from 1 MB) and not aliased."""
    n = 1 << 19  # two parts of 2 MB (float32) / 4 MB (float64)
    a0, b0 = (RNG.standard_normal(n).astype(dtype) for _ in range(2))
    a, b = tg.Variable(a0, requires_grad=True), tg.Variable(b0, requires_grad=True)
    out = getattr(tg, join)([a, b])
    np.testing.assert_array_equal(out.data, getattr(np, join)([a0, b0]))
    seed = RNG.standard_normal(out.shape).astype(dtype)
    out.backward(tg.Variable(seed))
    parts = (seed[:n], seed[n:]) if join == "concatenate" else (seed[0], seed[1])
    np.testing.assert_array_equal(a.grad, parts[0])
    np.testing.assert_array_equal(b.grad, parts[1])
    assert not np.shares_memory(a.grad, seed) and not np.shares_memory(a.grad, b.grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("key", [3, -2, slice(2, 5), (3,), (1, 2)], ids=["3", "-2", "2:5", "(3,)", "(1,2)"])
def test_scatter_into_zeros_of_1m_elements(key, dtype, threads):
    """A basic index's gradient: the seed in its block, zeros around it (a 4 MB float32 fill now splits)."""
    shape = (1 << 20,) if not isinstance(key, tuple) else (1024, 1024)
    x0 = RNG.standard_normal(shape).astype(dtype)
    x = tg.Variable(x0, requires_grad=True)
    out = x[key]
    seed = np.asarray(RNG.standard_normal(out.shape), dtype)
    out.backward(tg.Variable(seed))
    want = np.zeros_like(x0)
    want[key] = seed
    np.testing.assert_array_equal(x.grad, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("key", [(slice(None, None, 2), slice(1, -1)), slice(None, None, 2), slice(7, -9)],
                         ids=["M[::2,1:-1]", "v[::2]", "v[7:-9]"])
def test_setitem_fills_of_1m_elements(key, dtype, threads):
    """setitem with a number: a strided fill (just under 2M elements' bytes for M[::2, 1:-1]) splits."""
    shape = (1024, 1024) if isinstance(key, tuple) else (1 << 20,)
    x0 = RNG.standard_normal(shape).astype(dtype)
    v = tg.Variable(x0)
    v[key] = 0.5
    want = x0.copy()
    want[key] = 0.5
    np.testing.assert_array_equal(v.data, want)
    w = tg.Variable(x0)
    vals = RNG.standard_normal(want[key].shape).astype(dtype)
    w[key] = vals  # a strided copy of a whole array
    want[key] = vals
    np.testing.assert_array_equal(w.data, want)


def test_sum_gradients_three_ways():
    """sum and mean along an axis: C++ engine vs reference engine vs finite differences (float64)."""
    x0 = RNG.standard_normal((5, 37))
    ref = tg.reference
    for f in (lambda e, x: (e.sum(x, axis=-1) ** 2).sum(), lambda e, x: (e.mean(x, axis=0) ** 3).sum(),
              lambda e, x: e.sum(x) * e.sum(x)):
        x = tg.Variable(x0, requires_grad=True)
        f(tg, x).backward()
        xr = ref.Variable(x0, requires_grad=True)
        f(ref, xr).backward()
        np.testing.assert_allclose(x.grad, xr.grad, rtol=1e-12, atol=1e-12)
        num = tg.numeric.gradient(lambda a: float(f(ref, ref.Variable(a)).data), x0, richardson=2)
        np.testing.assert_allclose(x.grad, num, rtol=1e-7, atol=1e-9)


class Shrinker:
    """An array-like whose conversion empties the list being concatenated."""

    def __init__(self, victim):
        self.victim = victim

    def __array__(self, dtype=None, copy=None):
        self.victim.clear()
        return np.ones(3)


@pytest.mark.parametrize("join", ["concatenate", "stack"])
def test_join_list_changed_by_a_conversion_neither_crashes_nor_reads_freed_items(join):
    parts = [tg.Variable(np.zeros(3))]
    parts += [Shrinker(parts), tg.Variable(np.full(3, 2.0))]
    out = getattr(tg, join)(parts)  # the list holds 1 item once the second is converted
    want = getattr(np, join)([np.zeros(3), np.ones(3)])
    np.testing.assert_array_equal(out.data, want)


@pytest.mark.parametrize("join", ["concatenate", "stack"])
def test_join_takes_lists_tuples_and_iterables(join):
    a, b = np.arange(3.0), np.arange(3.0, 6.0)
    want = getattr(np, join)([a, b])
    for parts in ([tg.Variable(a), tg.Variable(b)], (tg.Variable(a), b), iter([a, tg.Variable(b)]),
                  (x for x in [tg.Variable(a), tg.Variable(b)])):
        np.testing.assert_array_equal(getattr(tg, join)(parts).data, want)
    with pytest.raises(TypeError, match=join):
        getattr(tg, join)([tg.Variable(a), "no"])
    with pytest.raises(ValueError, match=join):
        getattr(tg, join)([])


@pytest.mark.parametrize("shape", [(), (16,), (3, 4)])
def test_asarray_keeps_the_buffer_alive_after_the_variable_goes(shape):
    """np.asarray(v)'s base holds the Variable's buffer itself (a capsule over the storage)."""
    import gc

    x0 = RNG.standard_normal(shape)
    v = tg.Variable(x0)
    a, b = np.asarray(v), v.numpy()
    assert np.shares_memory(a, b)
    v.data = np.zeros(shape)  # the Variable moves to a new buffer: the arrays keep the old one
    del v, b
    gc.collect()
    tg._core._empty_buffer_cache()
    np.testing.assert_array_equal(a, x0)
    w = tg.Variable(np.ones(shape))
    np.testing.assert_array_equal(a, x0)  # not recycled for w
    assert not np.shares_memory(a, np.asarray(w))
