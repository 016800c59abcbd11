"""Integer arguments (axis, ddof, shapes, take's scalar index) accept Python ints and every NumPy integer
scalar type, and refuse bools, floats and NumPy floats and bools with a TypeError naming the op;
keepdims-style flags take bools, NumPy bools and integers. (cpp/bindings/convert.cpp's is_integer and
bool_arg test NumPy's scalar types by a cached type check instead of numpy.integer's lookup per call.)"""
import numpy as np
import pytest

import tapegrad as tg

INTS = [1, np.int8(1), np.int16(1), np.int32(1), np.int64(1), np.uint8(1), np.uint16(1), np.uint32(1),
        np.uint64(1), np.intp(1)]
NOT_INTS = [True, np.bool_(True), 1.0, np.float64(1.0), np.float32(1.0), "1"]


@pytest.mark.parametrize("axis", INTS, ids=lambda v: type(v).__name__)
def test_integer_axis_types(axis):
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(tg.sum(tg.Variable(x), axis=axis).data, x.sum(axis=1))
    np.testing.assert_array_equal(tg.sum(tg.Variable(x), axis=(axis,)).data, x.sum(axis=1))
    np.testing.assert_array_equal(tg.var(tg.Variable(x), ddof=axis).data, x.var(ddof=1))
    np.testing.assert_array_equal(tg.Variable(x).reshape(axis * 6).data, x.reshape(6))
    np.testing.assert_array_equal(tg.take(tg.Variable(x), axis).data, np.take(x, 1))


@pytest.mark.parametrize("axis", NOT_INTS, ids=lambda v: type(v).__name__)
def test_non_integer_axis_is_a_type_error(axis):
    with pytest.raises(TypeError, match="sum"):
        tg.sum(tg.Variable(np.ones((2, 3))), axis=axis)
    with pytest.raises(TypeError, match="sum"):
        tg.sum(tg.Variable(np.ones((2, 3))), axis=(axis,))


@pytest.mark.parametrize("flag", [True, np.bool_(True), 1, np.int64(1), np.uint8(1)], ids=lambda v: type(v).__name__)
def test_bool_flags(flag):
    assert tg.sum(tg.Variable(np.ones((2, 3))), axis=1, keepdims=flag).shape == (2, 1)


@pytest.mark.parametrize("flag", [1.0, np.float64(1.0), "yes"], ids=lambda v: type(v).__name__)
def test_bool_flag_refuses_floats(flag):
    with pytest.raises(TypeError, match="keepdims"):
        tg.sum(tg.Variable(np.ones((2, 3))), axis=1, keepdims=flag)
