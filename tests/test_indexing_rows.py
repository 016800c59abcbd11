"""The C++ paths of advanced indexing taken whole (a 1-d integer array, a
list of Python ints, a boolean mask over the leading axes), of setitem with
such keys, and the threaded gather / scatter / concatenate / stack kernels.

Values and errors must be NumPy's (the C++ path declines every error and
NumPy raises its own); gradients match finite differences and the
reference engine; results are the same bits at 1 and 2 threads, repeated
indices accumulating in index order.
"""
import numpy as np
import pytest

import tapegrad as tg
from helpers import check_op, rng_for

SHAPES = [(7,), (4, 5), (3, 4, 2)]


def int_keys(n):
    """Integer keys over an axis of length n: repeated, negative, empty, each dtype the C++ path reads."""
    return [
        np.array([0, n - 1, 0, -1, -n]),
        np.array([2, 2, 2], dtype=np.int32),
        np.array([n - 1, 0], dtype=np.uint32),
        np.array([1, 0], dtype=np.uint64),
        np.array([1, -1], dtype=np.int8),  # (NumPy's path)
        np.array([], dtype=np.int64),
        np.arange(2 * n)[::-4] % n,  # a strided index array
        [0, -1, 1, 1],
        [],
    ]


def mask_keys(shape, rng):
    out = []
    for lead in range(1, len(shape) + 1):
        s = shape[:lead]
        out += [rng.random(s) < 0.5, np.zeros(s, bool), np.ones(s, bool)]
    return out


def all_keys(shape):
    rng = rng_for("rows-keys", str(shape))
    return int_keys(shape[0]) + mask_keys(shape, rng)


CASES = [(s, i) for s in SHAPES for i in range(len(all_keys(s)))]


@pytest.mark.parametrize("shape,i", CASES, ids=[f"{s}-{i}" for s, i in CASES])
def test_row_keys_match_numpy_both_engines_and_finite_differences(shape, i):
    key = all_keys(shape)[i]
    rng = rng_for("rows", str(shape), str(i))
    x = rng.normal(size=shape)
    value, _ = check_op(lambda m, v: v[key] * 1.0, lambda a: a[key], [x], rng)
    assert value.shape == x[key].shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_keys_gradients_accumulate_exactly_and_results_are_copies(dtype):
    a = np.arange(20, dtype=dtype).reshape(5, 4)
    for key in ([0, 0, -1, 3, 0], np.array([4, 4, 1]), np.array([True, False, True, True, False])):
        x = tg.Variable(a, requires_grad=True)
        y = x[key]
        assert y.dtype == dtype
        np.testing.assert_array_equal(y.numpy(), a[key])
        w = np.random.default_rng(0).standard_normal(a[key].shape).astype(dtype)
        (y * tg.Variable(w)).sum().backward()
        g = np.zeros_like(a)
        np.add.at(g, key, w)
        np.testing.assert_array_equal(x.grad, g)
        # a copy, as NumPy's: writing it leaves x alone
        z = tg.Variable(a)[key]
        z[...] = -1.0
        np.testing.assert_array_equal(x.numpy(), a)


def test_views_as_inputs():
    base = np.arange(60.0).reshape(6, 10)
    for view in (lambda v: v.T, lambda v: v[::2, 1:], lambda v: v[1:4], lambda v: v[:, ::-3]):
        npv = view(base)
        keys = [np.array([0, -1, 0]), [1, 1], npv[:, 0] > 20, npv > 25]
        for key in keys:
            x = tg.Variable(base, requires_grad=True)
            y = view(x)[key]
            np.testing.assert_array_equal(y.numpy(), npv[key])
            y.sum().backward()
            g = np.zeros_like(base)
            np.add.at(view(g), key, 1.0)
            np.testing.assert_array_equal(x.grad, g)


def numpy_error(a, key):
    try:
        a[key]
    except Exception as e:  # noqa: BLE001
        return type(e), str(e)
    raise AssertionError(f"NumPy accepts {key!r}")


BAD_KEYS = [
    np.array([0, 7]), np.array([-8]), [7], [0, -8], np.array([3], dtype=np.uint64) + np.uint64(2**63),
    np.zeros(6, bool), np.zeros((7, 1), bool), np.array([0.0, 1.0]), [0, 1.5], [2**70],
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys_raise_numpys_error(key):
    a = np.arange(7.0)
    etype, msg = numpy_error(a, key)
    with pytest.raises(etype) as info:
        tg.Variable(a)[key]
    assert msg in str(info.value) and "getitem" in str(info.value)
    v = tg.Variable(a)
    with tg.no_grad(), pytest.raises(etype):
        v[key] = 1.0
    np.testing.assert_array_equal(v.numpy(), a)


def test_other_advanced_keys_still_take_numpys_path():
    a = np.arange(24.0).reshape(2, 3, 4)
    for key in ([[0, 1], [1, 0]], [True, False], np.array([[0, 1]]), (np.array([0, 1]), 2), np.int64(1),
                (Ellipsis, np.array([3, 0])), np.array(1)):
        np.testing.assert_array_equal(tg.Variable(a)[key].numpy(), a[key])


SET_KEYS = [np.array([0, -1, 2, 2]), [1, 0, -1], np.array([], dtype=np.int64), np.array([3], dtype=np.int32),
            "mask", "mask-lead", (slice(None, None, 2),), (slice(None, None, 2), slice(1, -1)),
            (slice(None, None, -3), 1)]


@pytest.mark.parametrize("key", range(len(SET_KEYS)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_setitem_with_row_and_strided_keys(key, dtype):
    rng = np.random.default_rng(key)
    a = rng.normal(size=(6, 5)).astype(dtype)
    k = SET_KEYS[key]
    if isinstance(k, str):
        k = rng.random(a.shape if k == "mask" else a.shape[:1]) < 0.5
    v = tg.Variable(a)
    before = v._version
    v[k] = 0.25
    expect = a.copy()
    expect[k] = 0.25
    np.testing.assert_array_equal(v.numpy(), expect)
    assert v._version == before + 1


def test_setitem_writes_through_views_and_refuses_graph_values():
    base = tg.Variable(np.arange(12.0).reshape(3, 4))
    row = base[1:]  # a contiguous view
    row[np.array([0, 0])] = -1.0
    row[row.numpy() > 9] = -2.0
    col = base.T  # a strided view: NumPy's path, still through to base
    col[[0]] = 7.0
    expect = np.arange(12.0).reshape(3, 4)
    expect[1] = -1.0
    expect[2, 2:] = -2.0
    expect[:, 0] = 7.0
    np.testing.assert_array_equal(base.numpy(), expect)
    x = tg.Variable(np.ones(4), requires_grad=True)
    with pytest.raises(RuntimeError):
        x[[0]] = 2.0
    with pytest.raises(RuntimeError):
        x[np.ones(4, bool)] = 2.0


def test_saved_index_survives_changes_to_the_key_array():
    key = np.array([0, 2])
    x = tg.Variable(np.arange(4.0), requires_grad=True)
    y = x[key]
    key[:] = 3
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 1.0, 0.0])


BIG = 1 << 20


def run_at(n_threads, fn):
    tg.set_num_threads(n_threads)
    return fn()


def test_threaded_kernels_give_the_same_bits_at_any_thread_count(restore_threads):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(BIG)
    m = rng.standard_normal((1024, 1024))
    ints = rng.integers(-BIG, BIG, BIG // 2)
    ints[::7] = 5  # many repeats of one index
    rows = rng.integers(0, 1024, 700)
    mask = rng.random(BIG) < 0.5
    w = rng.standard_normal(ints.shape)

    def once():
        out = []
        x = tg.Variable(a, requires_grad=True)
        (x[ints] * tg.Variable(w)).sum().backward()
        out += [x.grad, x[mask].numpy()]
        y = tg.Variable(m, requires_grad=True)
        (y[rows] * 3.0).sum().backward()
        out += [y.grad, y[rows].numpy()]
        p = tg.Variable(m, requires_grad=True)
        q = tg.Variable(m.T)  # a strided part
        out += [tg.concatenate([p, q], axis=1).numpy(), tg.stack([p, q], axis=2).numpy()]
        s = tg.stack([p, p * 2.0], axis=1)
        (s * tg.Variable(rng_w)).sum().backward()
        out.append(p.grad)
        v = tg.Variable(a)
        v[mask] = 0.5
        v[::3] = -1.0
        out.append(v.numpy())
        return out

    rng_w = np.random.default_rng(4).standard_normal((1024, 2, 1024))
    one, two = run_at(1, once), run_at(2, once)
    for u, t in zip(one, two):
        np.testing.assert_array_equal(u, t)
    # and they are right
    g = np.zeros(BIG)
    np.add.at(g, ints, w)
    np.testing.assert_allclose(one[0], g, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(one[1], a[mask])
    np.testing.assert_array_equal(one[4], np.concatenate([m, m.T], axis=1))
    np.testing.assert_array_equal(one[5], np.stack([m, m.T], axis=2))
    np.testing.assert_allclose(one[6], rng_w[:, 0] + 2 * rng_w[:, 1], rtol=1e-15)
    expect = a.copy()
    expect[mask] = 0.5
    expect[::3] = -1.0
    np.testing.assert_array_equal(one[7], expect)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("op", ["concatenate", "stack"])
def test_join_gradients_both_engines_and_finite_differences(op, axis):
    rng = rng_for("join", op, str(axis))
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    check_op(lambda m, x, y: getattr(m, op)([x, y.T.T, x * 2.0], axis=axis),
             lambda x, y: getattr(np, op)([x, y, x * 2.0], axis=axis), [a, b], rng)


def test_join_gradient_views_of_views_and_second_order():
    x = tg.Variable(np.arange(6.0).reshape(2, 3), requires_grad=True)
    s = tg.stack([x.T, x.T * x.T], axis=1)  # strided inputs
    c = tg.concatenate([s, s[:, :1]], axis=1)
    a = x.numpy()
    gx = tg.grad(lambda v: (tg.concatenate([tg.stack([v.T, v.T * v.T], axis=1)] * 2, axis=1) ** 2).sum())(a)
    np.testing.assert_allclose(np.asarray(gx), 2 * (2 * a + 4 * a ** 3), rtol=1e-14)
    np.testing.assert_array_equal(c.numpy()[:, 2], a.T)
    h = tg.hessian(lambda v: (tg.stack([v, v * v]) ** 2).sum(), np.array([1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(h), np.diag(2 + 12 * np.array([1.0, 2.0]) ** 2), rtol=1e-14)
