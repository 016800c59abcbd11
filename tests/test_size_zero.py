"""Size-0 axes, op by op (issue 15: "audit every kernel and rule for size-0
axes"): every entry of the random-program table (tests/random_programs.py,
every public op) on inputs with size-0 axes, broadcast against (1,) and 0-d
operands, float32/float64/mixed, compared with the reference engine in value,
backward, jvp and Jacobian; plus the fixes this audit made, one test each.

Run it under the sanitizer build (README "Sanitizer builds") to see an out of
bounds access as a report.
"""
import warnings

import numpy as np
import pytest

import tapegrad as tg

from tests import random_programs as rp

R = tg.reference
EMPTY_SHAPES = [(0,), (2, 0), (0, 3), (2, 0, 3), (1, 0), (1,), ()]
DTYPE_MODES = ["float32", "float64", "mixed"]


@pytest.mark.parametrize("name", rp.public_op_names())
def test_every_op_on_size_zero_axes(name):
    counts = {}
    failures = []
    for si, shape in enumerate(EMPTY_SHAPES):
        for di, mode in enumerate(DTYPE_MODES):
            for k in range(1):
                seed = 1_000_000 + 10_000 * si + 1000 * di + k
                prog = rp.generate(seed, n_ops=1, shapes=[shape], dtype_mode=mode, ops=[name])
                out = rp.check(prog)
                counts[out.status] = counts.get(out.status, 0) + 1
                if out.status == "fail":
                    failures.append(f"seed {seed}: {out.message}\n{prog.source()}")
    assert not failures, "\n\n".join(failures[:3])


# --------------------------------------------------------------------------
# logsumexp / softmax / log_softmax of empty arrays (kernels.cpp safe_max):
# they raised "logsumexp: zero-size reduction ... has no identity".
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((2, 0), -1), ((2, 0), 0), ((0,), 0), ((0, 3), 0), ((0, 3), 1),
                                         ((2, 0, 3), 1), ((2, 0, 3), -1)])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_of_empty_is_empty(op, shape, axis, dtype):
    x = tg.Variable(np.ones(shape, dtype), requires_grad=True)
    y = getattr(tg, op)(x, axis=axis)
    assert y.shape == shape and y.dtype == dtype
    y.backward(np.ones(shape, dtype))
    assert x.grad.shape == shape and x.grad.dtype == dtype
    _, t = tg.jvp(lambda v: getattr(tg, op)(v, axis=axis), (np.ones(shape, dtype),), (np.ones(shape, dtype),))
    assert t.shape == shape
    J = tg.jacobian(lambda v: getattr(tg, op)(v, axis=axis), np.ones(shape, dtype), mode="forward")
    assert J.shape == shape + shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((0,), None), ((2, 0), -1), ((2, 0), None), ((0, 3), 0),
                                         ((2, 0, 3), (0, 1)), ((2, 0), 0)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_of_empty_axis_is_minus_inf(shape, axis, keepdims, dtype):
    """log(sum(exp(empty))) = log 0 = -inf, as SciPy, PyTorch and the reference give."""
    x = tg.Variable(np.ones(shape, dtype), requires_grad=True)
    y = tg.logsumexp(x, axis=axis, keepdims=keepdims)
    with np.errstate(divide="ignore"):
        expected = np.log(np.sum(np.exp(np.ones(shape, dtype)), axis=axis, keepdims=keepdims))
    assert y.shape == expected.shape and y.dtype == dtype
    np.testing.assert_array_equal(y.numpy(), expected)
    y.backward(np.ones(y.shape, dtype))
    np.testing.assert_array_equal(x.grad, np.zeros(shape, dtype))
    r = R.logsumexp(R.Variable(np.ones(shape, dtype)), axis=axis, keepdims=keepdims)
    np.testing.assert_array_equal(y.numpy(), r.data)


def test_cross_entropy_with_probabilities_of_no_class():
    """cross_entropy with probability targets composes log_softmax: (2, 0) logits give 0 per row."""
    z = tg.Variable(np.ones((2, 0)), requires_grad=True)
    loss = tg.nn.cross_entropy(z, np.ones((2, 0)), reduction="none")
    np.testing.assert_array_equal(loss.numpy(), [0.0, 0.0])
    loss.sum().backward()
    assert z.grad.shape == (2, 0)


# --------------------------------------------------------------------------
# mean over no element (ops.cpp mean; module.cpp mean_warn)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((0,), None), ((2, 0), 1), ((0, 3), 0), ((2, 0, 3), (1, 2))])
def test_mean_of_no_element_warns_like_numpy(shape, axis):
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"), np.errstate(invalid="ignore"):
        expected = np.mean(np.ones(shape), axis=axis)
    for call in (lambda v: tg.mean(v, axis=axis), lambda v: v.mean(axis=axis)):
        with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
            y = call(tg.Variable(np.ones(shape)))
        np.testing.assert_array_equal(y.numpy(), expected)


@pytest.mark.parametrize("shape, axis", [((2, 0), 0), ((0, 3), 1), ((2, 3), None)])
def test_mean_with_elements_does_not_warn(shape, axis):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tg.mean(tg.Variable(np.ones(shape)), axis=axis)
        tg.Variable(np.ones(shape)).mean(axis=axis)


def test_mean_of_no_element_has_derivative_zero_in_every_mode():
    """nan whatever the input: d/dx1 of mean((2, 0) + x1, axis=1) is 0 in both modes.

    It was nan in forward mode (0 * (1/0)) and 0 in reverse mode, so
    jacobian(mode="forward") and jacobian(mode="reverse") differed."""
    def f(x0, x1):
        return tg.mean(x0 + x1, axis=1)
    x0, x1 = np.ones((2, 0)), np.array(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y, t = tg.jvp(f, (x0, x1), (x0, np.array(1.0)))
        np.testing.assert_array_equal(y, [np.nan, np.nan])
        np.testing.assert_array_equal(t, [0.0, 0.0])
        for mode in ("forward", "reverse"):
            J0, J1 = tg.jacobian(f, (x0, x1), mode=mode)
            assert J0.shape == (2, 2, 0)
            np.testing.assert_array_equal(J1, [0.0, 0.0])
        a, b = tg.Variable(x0, requires_grad=True), tg.Variable(x1, requires_grad=True)
        f(a, b).backward(np.ones(2))
        assert b.grad == 0.0 and a.grad.shape == (2, 0)


# --------------------------------------------------------------------------
# max / min of an empty axis: NumPy's ValueError, in both engines
# --------------------------------------------------------------------------
@pytest.mark.parametrize("m", [tg, R], ids=["cpp", "reference"])
@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("shape, axis", [((0,), None), ((2, 0), 1), ((2, 0), None), ((0, 3), 0)])
def test_max_of_empty_axis_raises_value_error(m, op, shape, axis):
    with pytest.raises(ValueError):
        getattr(np, op)(np.ones(shape), axis=axis)
    with pytest.raises(ValueError, match=op):
        getattr(m, op)(m.Variable(np.ones(shape)), axis=axis)
    with pytest.raises(ValueError, match=op):
        getattr(m.Variable(np.ones(shape)), op)(axis=axis)


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_over_kept_empty_axis_is_empty(op):
    x = tg.Variable(np.ones((0, 3)), requires_grad=True)
    y = getattr(tg, op)(x, axis=1)
    assert y.shape == (0,)
    y.backward(np.ones(0))
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("loss", [
    lambda v: tg.nn.cross_entropy(v, np.zeros(0, np.int64)),
    lambda v: tg.nn.mse_loss(v, np.zeros((0, 3))),
], ids=["cross_entropy_labels", "mse_loss"])
def test_fused_loss_mean_of_no_row_has_derivative_zero(loss):
    """The fused C++ losses with reduction 'mean' over N = 0: nan, derivative 0 in both modes
    (the JVP was 0 * (1/0) = nan)."""
    x = np.ones((0, 3))
    y, t = tg.jvp(loss, (x,), (x,))
    assert np.isnan(y) and t == 0.0
    v = tg.Variable(x, requires_grad=True)
    loss(v).backward()
    assert v.grad.shape == (0, 3)


# 0-d inputs to softmax/log_softmax follow PyTorch (axis 0 or -1 normalises
# over the one element); both engines agree, derivative 0 in every mode.
@pytest.mark.parametrize("m", [tg, R], ids=["tapegrad", "reference"])
@pytest.mark.parametrize("op, value", [("softmax", 1.0), ("log_softmax", 0.0)])
@pytest.mark.parametrize("axis", [0, -1])
def test_normaliser_of_0d_is_one_element(m, op, value, axis):
    x = m.Variable(np.array(2.5), requires_grad=True)
    y = getattr(m, op)(x, axis=axis)
    assert y.shape == () and float(y.data) == value
    y.backward()
    assert float(np.asarray(x.grad)) == 0.0
    _, t = m.jvp(lambda v: getattr(m, op)(v, axis=axis), (np.array(2.5),), (np.array(1.0),))
    assert float(np.asarray(t)) == 0.0


@pytest.mark.parametrize("m", [tg, R], ids=["tapegrad", "reference"])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [1, -2, 5])
def test_normaliser_of_0d_refuses_other_axes(m, op, axis):
    with pytest.raises(ValueError, match=rf"{op}: axis {axis} is out of bounds for a 0-d array"):
        getattr(m, op)(m.Variable(np.array(2.5)), axis=axis)
