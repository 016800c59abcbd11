"""The first-order sweep's 0-d fast paths (h99-scalar, issue 17: rk4's margin):
binary VJPs of 0-d operands skip sum_to, subtract's -g of a 0-d float is written
directly, 0-d cotangents of one dtype are summed directly (in place when
exclusive), stack's gradient for 0-d parts is a 0-d view per part, and `v[i]`
with a Python int on a 1-d Variable skips the general key parser.

Each must give the general path's bits. The general path is the one create_graph
takes (every fast path above tests grad mode or anomaly mode), so each test
compares a first-order sweep's bytes with create_graph's and with values computed
in NumPy (signs of zeros, inf, nan included); errors for bad keys are unchanged.
"""
import numpy as np
import pytest

import tapegrad as tg

pytestmark = pytest.mark.usefixtures("restore_grad_mode")


def leaves(values, dtype):
    return [tg.Variable(np.array(v, dtype=dtype), requires_grad=True) for v in values]


def first_and_second(f, values, dtype):
    """Gradients of f from a first-order sweep and from a create_graph sweep."""
    out = []
    for create_graph in (False, True):
        xs = leaves(values, dtype)
        f(*xs).backward(create_graph=create_graph)
        out.append([np.array(x.grad.data if create_graph else x.grad) for x in xs])
    return out


def assert_bits(got, want):
    for g, w in zip(got, want):
        w = np.asarray(w, dtype=g.dtype)
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.tobytes() == w.tobytes(), (g, w)


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
def test_0d_binary_vjps(dtype):
    a, b = dtype(1.25), dtype(-0.75)

    def f(x, y):
        return (x + y) * (x - y) / (y * x)

    first, second = first_and_second(f, [a, b], dtype)
    assert_bits(first, second)
    # d/dx ((x+y)(x-y)/(xy)) = (x^2 + y^2) / (x^2 y)
    np.testing.assert_allclose(first[0], (a * a + b * b) / (a * a * b), rtol=1e-6)
    np.testing.assert_allclose(first[1], -(a * a + b * b) / (a * b * b), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [0.0, -0.0, np.inf, -np.inf, np.nan])
def test_subtract_negates_with_its_sign_bits(dtype, scale):
    # g = scale reaches a - b: b's gradient is -scale (a -0 from +0, a +0 from -0, nan stays nan)
    c = tg.Variable(np.array(scale, dtype=dtype))  # a constant
    first, second = first_and_second(lambda a, b: (a - b) * c, [1.0, 2.0], dtype)
    assert_bits(first, second)
    assert_bits(first, [np.array(scale, dtype), -np.array(scale, dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c1, c2", [(-0.0, -0.0), (-0.0, 0.0), (0.0, -0.0), (np.inf, -np.inf), ("max", "max"),
                                    (0.1, 0.2)])
def test_0d_accumulation_bits(dtype, c1, c2):
    # x (a 0-d non-leaf) feeds two products: its cotangent is c1 + c2, summed in place
    c1, c2 = (np.finfo(dtype).max if c == "max" else c for c in (c1, c2))  # (max + max overflows to inf)
    k1 = tg.Variable(np.array(c1, dtype=dtype))
    k2 = tg.Variable(np.array(c2, dtype=dtype))

    def f(p):
        x = p * 1.0
        return x * k1 + x * k2

    with np.errstate(over="ignore", invalid="ignore"):
        want = np.array(c1, dtype) + np.array(c2, dtype)
    first, second = first_and_second(f, [3.0], dtype)
    assert_bits(first, second)
    assert_bits(first, [want])


@pytest.mark.parametrize("dtype", DTYPES)
def test_shared_cotangent_accumulates_into_a_new_value(dtype):
    # x + x: both inputs receive the same gradient object (not exclusive: a new sum, not an in-place one)
    def f(p):
        x = p * 1.0
        y = x + x
        return y * 3.0 + (x - x) * 5.0

    first, second = first_and_second(f, [0.5], dtype)
    assert_bits(first, second)
    assert_bits(first, [np.array(6.0, dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_of_0d_parts(dtype):
    rng = np.random.default_rng(99)
    w = tg.Variable(rng.standard_normal(5).astype(dtype))
    const = tg.Variable(np.array(2.0, dtype=dtype))  # a part needing no gradient

    def f(a, b):
        parts = [a * b, a, const, a - b, a]  # a twice: two views of one gradient summed
        return (tg.stack(parts) * w).sum()

    first, second = first_and_second(f, [1.5, -2.5], dtype)
    assert_bits(first, second)
    wv = np.array(w.data)
    np.testing.assert_allclose(first[0], wv[0] * dtype(-2.5) + wv[1] + wv[3] + wv[4], rtol=1e-6)
    np.testing.assert_allclose(first[1], wv[0] * dtype(1.5) - wv[3], rtol=1e-6)


def test_stack_of_0d_parts_jacobian_and_second_order():
    def f(x):
        return tg.stack([x[0] * x[1], x[1] - x[2], x[2]])

    v = np.array([1.5, -0.5, 2.0])
    jac = np.array(tg.jacobian(f, v))
    np.testing.assert_array_equal(jac, np.array([[v[1], v[0], 0], [0, 1, -1], [0, 0, 1.0]]))
    x = tg.Variable(v, requires_grad=True)
    (f(x) * f(x)).sum().backward(create_graph=True)
    g = x.grad
    g1 = np.array(g.data)
    g.sum().backward()
    y0, y1, y2 = v[0] * v[1], v[1] - v[2], v[2]
    np.testing.assert_allclose(g1, [2 * y0 * v[1], 2 * y0 * v[0] + 2 * y1, -2 * y1 + 2 * y2], rtol=1e-12)


def test_second_order_through_0d_subtract():
    a, b = leaves([1.5, -0.25], np.float64)
    d = a - b
    (d * d).backward(create_graph=True)
    gb = b.grad
    assert gb.requires_grad
    np.testing.assert_array_equal(np.array(gb.data), -2 * (1.5 + 0.25))
    a.grad = None
    b.grad = None
    gb.backward()
    np.testing.assert_array_equal(np.array(b.grad), 2.0)
    np.testing.assert_array_equal(np.array(a.grad), -2.0)


def test_hooks_and_retain_grad_see_the_0d_sums():
    seen = []
    p = tg.Variable(np.array(2.0), requires_grad=True)
    x = p * 1.0
    x.retain_grad()
    handle = x.register_hook(lambda g: seen.append(np.array(g)) or g)
    try:
        (x * 3.0 + x * 4.0 - x).backward()
    finally:
        handle.remove()
    assert len(seen) == 1 and seen[0] == 6.0
    assert np.array(x.grad) == 6.0 and np.array(p.grad) == 6.0


def test_anomaly_mode_takes_the_general_paths():
    # recorded outside anomaly mode, swept in it: the fast paths stand aside, so the
    # general path's ops (stack's getitem per part, subtract's negative) check their
    # results as before and the first nan raises there, named as the user's op's backward
    a, b = leaves([1.0, 2.0], np.float64)
    with pytest.raises(RuntimeError, match=r"detect_anomaly: the backward of 'stack' .*\(in its 'getitem'"):
        with tg.detect_anomaly():
            tg.stack([a - b, a * 2.0]).backward(tg.Variable(np.array([np.nan, 1.0])))
    with pytest.raises(RuntimeError, match=r"detect_anomaly: the backward of 'subtract' .*\(in its 'negative'"):
        with tg.detect_anomaly():
            (a - b).backward(tg.Variable(np.array(np.nan)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_int_getitem_on_1d(dtype):
    v = np.array([0.5, -0.0, np.inf, np.nan, 3.0], dtype=dtype)
    x = tg.Variable(v, requires_grad=True)
    for i in range(-5, 5):
        e = x[i]
        assert e.shape == () and e.dtype == v.dtype
        assert np.array(e.data).tobytes() == v[i].tobytes()
    s = x[-1] * 2.0 + x[0] + x[4]
    s.backward()
    np.testing.assert_array_equal(np.array(x.grad), np.array([1, 0, 0, 0, 3.0], dtype=dtype))


@pytest.mark.parametrize("key", [5, -6, 2 ** 70, -(2 ** 70)])
def test_int_getitem_out_of_range_raises_numpys_error(key):
    x = tg.Variable(np.arange(5.0))
    with pytest.raises(IndexError) as err:
        x[key]
    msg = str(err.value)
    assert "getitem" in msg
    with pytest.raises(IndexError) as np_err:
        np.arange(5.0)[key]
    assert str(np_err.value) in msg


def test_int_like_keys_keep_numpys_meaning():
    v = np.arange(5.0)
    x = tg.Variable(v)
    np.testing.assert_array_equal(np.array(x[np.int64(3)]), v[np.int64(3)])
    np.testing.assert_array_equal(np.array(x[True]), v[True])   # a bool is a mask, not 1
    np.testing.assert_array_equal(np.array(x[False]), v[False])
    y = tg.Variable(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(np.array(y[1]), np.arange(6.0).reshape(2, 3)[1])  # 2-d: the general path
