"""In-place operators (+= -= *= /=: allowed on a Variable that requires grad
only under no_grad) and version counters (a saved value modified in place
makes backward raise RuntimeError).

Most tests run on both engines (tapegrad and tapegrad.reference), since
docs/API.md gives them the same semantics.
"""
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("restore_grad_mode")  # fixtures m and restore_grad_mode: conftest.py


# ---------------------------------------------------------------------------
# In-place operators
# ---------------------------------------------------------------------------
INPLACE = {
    "+=": (lambda v, o: v.__iadd__(o), np.add),
    "-=": (lambda v, o: v.__isub__(o), np.subtract),
    "*=": (lambda v, o: v.__imul__(o), np.multiply),
    "/=": (lambda v, o: v.__itruediv__(o), np.divide),
}


def _apply_inplace(sym, v, o):
    if sym == "+=":
        v += o
    elif sym == "-=":
        v -= o
    elif sym == "*=":
        v *= o
    else:
        v /= o
    return v


@pytest.mark.parametrize("sym", list(INPLACE))
@pytest.mark.parametrize("operand", ["scalar", "array", "broadcast_array", "variable"])
def test_inplace_under_no_grad_modifies_in_place(m, sym, operand):
    base = np.array([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    o = {"scalar": 2.0, "array": np.full((2, 3), 4.0), "broadcast_array": np.array([2.0, 4.0, 8.0]),
         "variable": m.Variable(np.full((2, 3), 0.5))}[operand]
    v = m.Variable(base, requires_grad=True)
    before = v
    view = v.data
    with m.no_grad():
        v = _apply_inplace(sym, v, o)
    assert v is before
    want = INPLACE[sym][1](base, np.asarray(o.data if isinstance(o, m.Variable) else o))
    np.testing.assert_array_equal(v.data, want)
    np.testing.assert_array_equal(view, want)  # the same buffer was updated
    assert v.requires_grad and v.is_leaf
    # still usable for gradients afterwards
    (v * v).sum().backward()
    np.testing.assert_array_equal(v.grad, 2 * want)


@pytest.mark.parametrize("sym", list(INPLACE))
def test_inplace_on_requires_grad_outside_no_grad_raises(m, sym):
    v = m.Variable([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        _apply_inplace(sym, v, 2.0)
    np.testing.assert_array_equal(v.data, [1.0, 2.0])  # unchanged
    h = v * 1.0  # a non-leaf requires grad as well
    with pytest.raises(RuntimeError):
        _apply_inplace(sym, h, 2.0)
    np.testing.assert_array_equal(h.data, [1.0, 2.0])


@pytest.mark.parametrize("sym", list(INPLACE))
def test_inplace_on_plain_variable_allowed_everywhere(m, sym):
    v = m.Variable([1.0, 2.0])
    before = v
    v = _apply_inplace(sym, v, 2.0)
    assert v is before
    np.testing.assert_array_equal(v.data, INPLACE[sym][1](np.array([1.0, 2.0]), 2.0))


def test_inplace_keeps_dtype_and_shape(m):
    v = m.Variable(np.ones(3, np.float32))
    v += np.ones(3)  # float64 operand
    assert v.dtype == np.float32
    np.testing.assert_array_equal(v.data, [2.0, 2.0, 2.0])
    v *= 1.5
    assert v.dtype == np.float32
    with pytest.raises(ValueError):
        v += np.ones((2, 3))  # the result would not fit
    np.testing.assert_array_equal(v.data, [3.0, 3.0, 3.0])


def test_inplace_with_itself(m):
    v = m.Variable([1.0, 2.0, 3.0])
    v += v
    np.testing.assert_array_equal(v.data, [2.0, 4.0, 6.0])
    v *= v
    np.testing.assert_array_equal(v.data, [4.0, 16.0, 36.0])


def test_inplace_sgd_step(m):
    w = m.Variable([1.0, -1.0], requires_grad=True)
    for _ in range(3):
        w.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        with m.no_grad():
            w -= 0.25 * w.grad
    np.testing.assert_array_equal(w.data, [0.125, -0.125])


# ---------------------------------------------------------------------------
# Version counters: a saved value modified in place makes backward raise
# ---------------------------------------------------------------------------
def test_saved_input_modified_in_place_raises(m):
    w = m.Variable([1.0, 2.0], requires_grad=True)
    x = m.Variable([3.0, 4.0])
    y = w * x
    with m.no_grad():
        x += 1
    with pytest.raises(RuntimeError):
        y.sum().backward()
    assert w.grad is None


def test_saved_input_modified_in_place_without_no_grad_raises(m):
    w = m.Variable([1.0, 2.0], requires_grad=True)
    x = m.Variable([3.0, 4.0])
    y = m.sin(x) * w + w * x  # x saved by multiply
    x *= 2.0  # x does not require grad: allowed outside no_grad
    with pytest.raises(RuntimeError):
        y.sum().backward()


def test_saved_output_modified_in_place_raises(m):
    x = m.Variable([0.5, 1.0], requires_grad=True)
    y = m.exp(x)  # exp saves its output
    with m.no_grad():
        y += 1.0
    with pytest.raises(RuntimeError):
        y.sum().backward()
    assert x.grad is None


def test_saved_value_modified_through_a_detached_alias_raises(m):
    x = m.Variable([0.5, 1.0], requires_grad=True)
    y = x * x
    d = x.detach()  # shares x's buffer
    d += 1.0
    with pytest.raises(RuntimeError):
        y.sum().backward()


def test_in_place_on_an_unsaved_value_is_fine(m):
    w = m.Variable([1.0, 2.0], requires_grad=True)
    x = m.Variable([3.0, 4.0])
    y = w + x  # add saves nothing
    with m.no_grad():
        x += 1.0
    y.sum().backward()
    np.testing.assert_array_equal(w.grad, [1.0, 1.0])
    # and a modification before the op is of course fine
    x2 = m.Variable([1.0, 1.0])
    x2 += 1.0
    z = w * x2
    z.sum().backward()
    np.testing.assert_array_equal(w.grad, [3.0, 3.0])


def test_version_error_leaves_graph_usable_elsewhere(m):
    w = m.Variable([1.0, 2.0], requires_grad=True)
    x = m.Variable([3.0, 4.0])
    bad = w * x
    good = w * 2.0
    with m.no_grad():
        x += 1.0
    with pytest.raises(RuntimeError):
        (bad.sum() + good.sum()).backward()
    assert w.grad is None
    good.sum().backward()
    np.testing.assert_array_equal(w.grad, [2.0, 2.0])
