"""The C++ fast path of basic indexing (plain ints, slices, None, Ellipsis
and tuples of them, parsed without NumPy) and iteration.

Every key the fast path takes must give what the general path gives (the
same key with np.int64 ints goes through NumPy's parser), values and
gradients bit for bit; every key it declines (errors included) must still
raise NumPy's error. Iteration yields v[0], v[1], ... one at a time, each
its own recorded op.
"""
import itertools

import numpy as np
import pytest

import tapegrad as tg

SHAPES = [(7,), (4, 5), (3, 0, 2), (2, 3, 4), (0,)]


def slow_key(key):
    """The same key with np.int64 ints and slice bounds: the NumPy path."""
    def conv(k):
        if isinstance(k, int) and not isinstance(k, bool):
            return np.int64(k)
        if isinstance(k, slice):
            return slice(*(None if b is None else np.int64(b) for b in (k.start, k.stop, k.step)))
        return k
    return tuple(conv(k) for k in key) if isinstance(key, tuple) else conv(key)


def random_key(rng, ndim):
    items = []
    consumed = 0
    for _ in range(rng.integers(0, ndim + 2)):
        kind = rng.integers(0, 5)
        if kind == 0 and consumed < ndim:
            items.append(int(rng.integers(-6, 6)))
            consumed += 1
        elif kind == 1 and consumed < ndim:
            bound = lambda: None if rng.random() < 0.3 else int(rng.integers(-8, 8))  # noqa: E731
            step = None if rng.random() < 0.3 else int(rng.choice([-3, -2, -1, 1, 2, 3]))
            items.append(slice(bound(), bound(), step))
            consumed += 1
        elif kind == 2:
            items.append(None)
        elif kind == 3 and Ellipsis not in items:
            items.append(Ellipsis)
    if len(items) == 1 and rng.random() < 0.5:
        return items[0]
    return tuple(items)


def outcome(v, key):
    try:
        return v[key], None
    except Exception as e:  # noqa: BLE001  (the exception type is compared)
        return None, type(e)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_keys_match_numpy_and_the_general_path(shape, dtype):
    rng = np.random.default_rng(sum(shape) + len(shape))
    a = rng.standard_normal(shape).astype(dtype)
    for _ in range(300):
        key = random_key(rng, len(shape))
        try:
            want = a[key]
        except IndexError:
            with pytest.raises(IndexError):
                tg.Variable(a)[key]
            continue
        v = tg.Variable(a, requires_grad=True)
        y = v[key]
        assert y.dtype == a.dtype and y.shape == np.shape(want), key
        np.testing.assert_array_equal(y.data, want)
        seed = rng.standard_normal(y.shape).astype(dtype)
        y.backward(seed)
        w = tg.Variable(a, requires_grad=True)
        z = w[slow_key(key)]
        np.testing.assert_array_equal(z.data, want)
        z.backward(seed)
        np.testing.assert_array_equal(v.grad, w.grad)
        expect = np.zeros_like(a)
        if np.size(seed):
            np.add.at(expect, key, seed)
        np.testing.assert_array_equal(v.grad, expect)


@pytest.mark.parametrize("key", [5, -6, (0, 5), (0, 0, 0), (Ellipsis, Ellipsis), 2 ** 70, (1, slice(0, 2, 0))],
                         ids=repr)
def test_declined_keys_raise_numpys_error(key):
    a = np.zeros((3, 4))
    v = tg.Variable(a)
    with pytest.raises(Exception) as got:
        v[key]
    with pytest.raises(Exception) as want:
        a[key]
    assert issubclass(got.type, want.type) or (want.type is IndexError and got.type is IndexError)
    assert "getitem" in str(got.value)


def test_key_of_many_items_takes_the_general_path():
    a = np.arange(2.0 ** 5).reshape((2,) * 5)
    key = (None,) * 20 + (1, 0, 1, 0, 1)
    np.testing.assert_array_equal(tg.Variable(a)[key].data, a[key])


def test_iteration_yields_recorded_rows():
    a = np.arange(12.0).reshape(4, 3)
    v = tg.Variable(a, requires_grad=True)
    rows = list(v)
    assert len(rows) == 4
    for i, r in enumerate(rows):
        assert r.grad_fn is not None and r.grad_fn.name == "getitem"
        np.testing.assert_array_equal(r.data, a[i])
    total = rows[0].sum() * 1.0 + (rows[2] * rows[3]).sum()
    total.backward()
    np.testing.assert_array_equal(v.grad, np.array([[1, 1, 1], [0, 0, 0], a[3], a[2]]))


def test_iteration_of_a_vector_gives_0d_elements_and_float_works():
    v = tg.Variable(np.array([1.5, -2.0, 3.25], dtype=np.float32))
    items = list(v)
    assert [x.shape for x in items] == [()] * 3 and all(x.dtype == np.float32 for x in items)
    assert [float(x) for x in items] == [1.5, -2.0, 3.25]
    assert [x.item() for x in v] == [1.5, -2.0, 3.25]
    assert sum(v).item() == 2.75


def test_iteration_is_lazy_and_ends():
    v = tg.Variable(np.arange(5.0))
    it = iter(v)
    assert iter(it) is it
    assert next(it).item() == 0.0
    assert [x.item() for x in it] == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(StopIteration):
        next(it)
    assert list(tg.Variable(np.zeros((0, 3)))) == []


def test_iterating_a_0d_variable_or_converting_a_vector_raises():
    with pytest.raises(TypeError, match="0-d"):
        iter(tg.Variable(2.0))
    with pytest.raises(ValueError, match="one element"):
        float(tg.Variable(np.zeros(3)))
    assert float(tg.Variable(np.zeros((1, 1)) + 2.5)) == 2.5


def test_iterator_keeps_its_variable_alive():
    it = iter(tg.Variable(np.arange(3.0)))
    import gc

    gc.collect()
    assert [x.item() for x in it] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("n", [1, 4])
def test_indexed_elements_match_reference_engine(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, 3))
    outs = []
    for engine in (tg, tg.reference):
        v = engine.Variable(a, requires_grad=True)
        acc = 0.0
        for i, j in itertools.product(range(n), range(3)):
            acc = acc + v[i, j] * v[-1 - i, 2 - j] + v[i][j:][0]
        acc.backward()
        outs.append((acc.item(), np.asarray(v.grad)))
    assert outs[0][0] == outs[1][0]
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_item_is_a_float_and_names_itself_in_errors():
    v = tg.Variable(np.array([[2.5]], dtype=np.float32))
    assert v.item() == 2.5 and type(v.item()) is float
    with pytest.raises(ValueError, match="item: only a Variable with one element"):
        tg.Variable(np.zeros(3)).item()
    with pytest.raises(TypeError, match="item"):
        v.item(0)
