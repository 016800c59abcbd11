"""Indexing (ints, slices, None, Ellipsis, integer arrays, boolean masks):
values equal NumPy's, gradients equal finite differences and the reference
engine, and repeated indices accumulate exactly.

Basic indexing computes the selected positions from a view, so x[i] on a
large Variable does not build an index of the whole array; its results must
match NumPy's and the advanced-indexing path (VIEW_KEYS).

Index errors: test_errors.py. Jacobians of indexing in both modes:
test_modes_primitives.py.
"""
import numpy as np
import pytest

import tapegrad as tg
from helpers import case_id as _ids
from helpers import check_op, rng_for


_mrng = np.random.default_rng(1234)
MASK_FULL = _mrng.random((3, 4, 5)) < 0.4
MASK_AX0 = np.array([True, False, True])
MASK_AX1 = np.array([False, True, True, False])

KEYS = [
    0,
    -1,
    2,
    np.int64(1),
    (1, 2),
    (1, 2, 3),
    (-1, -2, -3),
    slice(1, None),
    slice(None, 2),
    slice(None, None, -1),
    slice(None, None, -2),
    (slice(None), slice(3, 0, -1)),
    (slice(None), slice(None), slice(None, None, -3)),
    (slice(1, 3), slice(0, 4, 2), 4),
    None,
    (None, 0),
    (None, slice(None, None, -1), None, 2),
    Ellipsis,
    (Ellipsis, 1),
    (0, Ellipsis),
    (Ellipsis, None),
    (1, Ellipsis, slice(None, None, -1)),
    np.array([0, 0, 2, 1, 0]),
    [2, 2],
    [-1, 0, -1],
    (np.array([0, 1, 1]), np.array([2, 2, 0])),
    (slice(None), np.array([3, 3, 0])),
    (np.array([[0, 1], [1, 1]]),),
    (np.array([0, 2, 0]), slice(None), np.array([4, 4, 1])),
    MASK_FULL,
    MASK_AX0,
    (slice(None), MASK_AX1),
    (MASK_AX0, Ellipsis, -1),
    (slice(None, None, -1), [0, 0, 1]),
    (1, slice(None), [4, 0, 4]),
    (None, Ellipsis, [1, 1], slice(None, None, -2)),
    (slice(5, None),),  # empty result
]


@pytest.mark.parametrize("key", KEYS, ids=_ids)
def test_getitem(key):
    rng = rng_for("getitem", _ids(key))
    x = rng.normal(size=(3, 4, 5))
    value, _ = check_op(lambda m, v: v[key], lambda a: a[key], [x], rng)
    assert value.shape == x[key].shape


ZERO_D_KEYS = [(), Ellipsis, None, (None, None), (Ellipsis, None)]


@pytest.mark.parametrize("key", ZERO_D_KEYS, ids=_ids)
def test_getitem_zero_d(key):
    rng = rng_for("getitem0", _ids(key))
    x = np.asarray(rng.normal())
    check_op(lambda m, v: v[key], lambda a: a[key], [x], rng)


def test_getitem_repeated_indices_accumulate_exactly():
    x = tg.Variable(np.arange(5.0), requires_grad=True)
    y = x[[0, 0, 0, 3, 3]] * np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 0.0, 0.0, 9.0, 0.0])
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.0, 12.0, 15.0])


def test_getitem_chained_and_out_of_range():
    rng = rng_for("getitem-chain")
    x = rng.normal(size=(4, 5))
    check_op(lambda m, v: v[1:][::-1, 2:][[0, 0, 2]], lambda a: a[1:][::-1, 2:][[0, 0, 2]], [x], rng)
    v = tg.Variable(x)
    with pytest.raises(IndexError):
        v[4]
    with pytest.raises(IndexError):
        v[:, [0, 5]]


# ---------------------------------------------------------------------------
# Basic keys through views, advanced keys through the other path
# ---------------------------------------------------------------------------
VIEW_KEYS = [
    0, -1, 2, slice(None), slice(1, None, 2), slice(None, None, -1), slice(5, 1, -2), slice(7, 7),
    (1, 2), (-1, slice(None, None, -2)), (Ellipsis, 1), (None, 0), (slice(None), None, slice(1, 3)),
    (0, Ellipsis, None), (), Ellipsis, (slice(None, None, 3), -2),
    # advanced keys take the other path; same results
    [0, 2], np.array([1, 1, 0]), (np.array([0, 2]), slice(1, 3)), np.array([True, False, True, False]),
]


@pytest.mark.parametrize("key", VIEW_KEYS, ids=repr)
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
