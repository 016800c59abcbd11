"""Errors users can read (issue 15): shapes NumPy refuses, allocation
failures, ints that do not fit, pybind11's signature dumps. The broad sweep
over every function and bad argument is tests/test_bad_arguments.py."""
import numpy as np
import pytest

import tapegrad as tg


def numpy_max_dims():
    for k in (64, 32):
        try:
            np.empty((1,) * k)
            return k
        except ValueError:
            pass
    return 32


def test_element_count_beyond_int64_is_refused_where_the_shape_is_made():
    with pytest.raises(ValueError, match=r"broadcast_to: the array is too big"):
        tg.broadcast_to(tg.Variable(1.0), (2**62, 2**62, 0))
    with pytest.raises(ValueError, match=r"reshape: the array is too big"):
        tg.Variable(np.ones(0)).reshape(2**62, 2**62, 0)
    empty = tg.Variable(np.ones((1, 1, 0)))
    a, b = tg.broadcast_to(empty, (2**59, 1, 0)), tg.broadcast_to(empty, (1, 2**59, 0))  # valid, no bytes
    with pytest.raises(ValueError, match=r"add: the array is too big"):
        a + b
    with pytest.raises(ValueError, match="concatenate: the array is too big"):
        tg.concatenate([tg.broadcast_to(tg.Variable(np.ones((1, 0))), (2**61, 0))] * 4)


def test_more_axes_than_numpy_allows_is_refused():
    n = numpy_max_dims()
    big = tg.Variable(np.ones((1,) * n))
    for op, call in [
        ("broadcast_to", lambda: tg.broadcast_to(tg.Variable(1.0), (1,) * (n + 1))),
        ("reshape", lambda: tg.Variable(1.0).reshape((1,) * (n + 1))),
        ("stack", lambda: tg.stack([big])),
        ("getitem", lambda: big[None]),
    ]:
        with pytest.raises((ValueError, IndexError), match=op):
            call()
    assert tg.stack([tg.Variable(np.ones((1,) * (n - 1)))]).ndim == n  # the limit itself is fine


def test_allocation_failure_is_a_memory_error_naming_the_op_and_the_bytes():
    # Far beyond any machine (> 1 PB): the allocation fails at once, nothing is touched.
    big = tg.broadcast_to(tg.Variable(1.0), (2**50,))  # a stride-0 view allocates nothing
    assert big.shape == (2**50,)
    with pytest.raises(MemoryError, match=r"multiply: cannot allocate 9007199254740992 bytes for shape "
                                          r"\(1125899906842624,\) of dtype float64"):
        big * 2.0
    a, b = tg.Variable(np.ones((2**25, 0))), tg.Variable(np.ones((0, 2**25)))
    with pytest.raises(MemoryError, match=r"matmul: cannot allocate 9007199254740992 bytes"):
        a @ b
    # An operator (the raw number slot) names itself too.
    c = tg.broadcast_to(tg.Variable(1.0), (2**25, 1))
    with pytest.raises(MemoryError, match=r"multiply: cannot allocate 9007199254740992 bytes"):
        c * tg.Variable(np.ones((1, 2**25)))


@pytest.mark.parametrize("call,arg", [
    (lambda v: tg.sum(v, axis=2**64), "axis"),
    (lambda v: v.sum(axis=2**64), "axis"),
    (lambda v: v.reshape(2**70), "shape"),
    (lambda v: tg.softmax(v, axis=2**64), "axis"),
    (lambda v: tg.stack([v], axis=-2**63 - 5), "axis"),
    (lambda v: tg.broadcast_to(v, (2**64,)), "shape"),
    # compositions (NumPy computes with the argument and says only "Python int too large to convert to C long")
    (lambda v: tg.argmax(v, axis=2**64), "argmax: axis 18446744073709551616 is out of range"),
    (lambda v: tg.roll(v, 2**64), "roll: shift 18446744073709551616 is out of range"),
    (lambda v: tg.round(v, 2**64), "round: decimals"),
    (lambda v: tg.repeat(v, 2**64), "repeat: repeats"),
    (lambda v: tg.pad(v, ((0, 2**64),)), "pad: pad_width 18446744073709551616"),
    (lambda v: tg.tril(tg.reshape(tg.tile(v, 3), (3, 3)), 2**64), "tril: k"),
    (lambda v: tg.elu(v, 2**2000), r"elu: alpha 114813069527\.\.\. \(603 digits\) is out of range \(it does not fit a float64\)"),
])
def test_an_int_that_does_not_fit_is_a_value_error_naming_the_argument(call, arg):
    with pytest.raises(ValueError, match=arg) as e:
        call(tg.Variable(np.ones(3)))
    assert "Unable to cast" not in str(e.value) and "PYBIND11" not in str(e.value)


@pytest.mark.parametrize("call,match", [
    (lambda v: tg.log_softmax(v, axis=None), "log_softmax: axis must be an int"),
    (lambda v: tg.sum(v, keepdims="yes"), "sum: keepdims must be a bool"),
    (lambda v: tg.sum(v, 0, False, 1), r"sum\(\): too many positional arguments"),
    (lambda v: tg.sum(v, axes=0), r"sum\(\): got an unexpected keyword argument 'axes'"),
    (lambda v: v.backward(create_graph="x"), "backward: create_graph must be a bool"),
    (lambda v: tg.Variable(), r"Variable\(\): missing a required argument: 'data'"),
    (lambda v: tg.Variable.backward(3), r"Variable.backward\(\): self must be a tapegrad.Variable"),
    # (a raw C method: CPython's own check of self, naming the method)
    (lambda v: tg.Variable.sum(3), r"descriptor 'sum' for 'tapegrad._core.Variable' objects doesn't apply to a 'int'"),
    (lambda v: tg.set_num_threads("2"), "set_num_threads: n must be an int"),
])
def test_no_pybind11_signature_dump(call, match):
    with pytest.raises(TypeError, match=match) as e:
        call(tg.Variable(np.ones(3)))
    assert "incompatible function arguments" not in str(e.value)


@pytest.mark.parametrize("make,match", [
    (lambda: tg.nn.Linear(2**64, 2), r"Linear: a parameter of shape \(18446744073709551616, 2\) float32 is too big"),
    (lambda: tg.nn.Embedding(2**40, 2**30), r"Embedding: a parameter of shape \(1099511627776, 1073741824\)"),
    (lambda: tg.nn.LayerNorm(2**64), r"LayerNorm: a parameter of shape \(18446744073709551616,\)"),
    (lambda: tg.nn.BatchNorm1d(2**62), r"BatchNorm1d: a parameter of shape \(4611686018427387904,\)"),
    (lambda: tg.nn.MLP([2**64, 2]), r"Linear: a parameter of shape"),
])
def test_a_layer_too_big_to_exist_is_a_value_error_naming_the_layer_and_shape(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_layer_that_cannot_be_allocated_is_a_memory_error_naming_the_layer_and_bytes():
    # 4 TB of float32: representable, not allocatable on any machine this runs on
    with pytest.raises(MemoryError, match=r"Linear: cannot allocate a parameter of shape \(1000000, 1000000\) float32 "
                                          r"\(4000000000000 bytes\)"):
        tg.nn.Linear(10**6, 10**6)
