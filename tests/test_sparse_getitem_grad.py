"""The first-order sweep adds a single-element (or one-block) getitem's gradient
straight into its input's accumulated gradient (Node::vjp_into, h91) instead of a
zero vector of the input's size plus a sum; 0-d products take a direct VJP. Both
must give the dense path's bits. The dense path is what a sweep takes while a hook
exists anywhere (or under create_graph / anomaly mode), so each test computes the
gradients twice, once with a do-nothing hook registered on an unrelated Variable,
and compares the bytes.
"""
import contextlib

import numpy as np
import pytest

import tapegrad as tg

pytestmark = pytest.mark.usefixtures("restore_grad_mode")


@contextlib.contextmanager
def dense_path():
    """While this holds a hook, every sweep in the process is the hooked (dense) one."""
    z = tg.Variable(np.zeros(1), requires_grad=True)
    handle = z.register_hook(lambda g: g)
    try:
        yield
    finally:
        handle.remove()


def grads(f, *arrays, dense=False):
    with dense_path() if dense else contextlib.nullcontext():
        xs = [tg.Variable(a, requires_grad=True) for a in arrays]
        f(*xs).backward()
        return [np.array(x.grad) for x in xs]


def same_bits(f, *arrays):
    sparse, dense = grads(f, *arrays), grads(f, *arrays, dense=True)
    for s, d in zip(sparse, dense):
        assert s.dtype == d.dtype and s.shape == d.shape
        assert s.tobytes() == d.tobytes(), (s, d)
    return sparse


RNG = np.random.default_rng(91)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_many_reads_of_one_element(dtype):
    v = RNG.standard_normal(7).astype(dtype)

    def f(x):
        s = x[3] * 1.5
        for i in range(40):
            s = s + x[3] * x[i % 7] + x[-1] * 0.25
        return s

    g = same_bits(f, v)[0]
    assert np.all(np.isfinite(g)) and g[3] != 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_negative_indices_and_2d_rows(dtype):
    m = RNG.standard_normal((4, 5)).astype(dtype)

    def f(x):
        return (x[-1, -2] * x[0, 0] + x[2, -5] - x[-4, 4] * 3.0 + (x[1] * x[-2]).sum()  # rows: one block each
                + x[1, 2] * x[1, 2])

    same_bits(f, m)


def test_reads_of_a_view_and_of_stacked_values():
    v = RNG.standard_normal(12)

    def f(x):
        y = x[2:9]              # a slice (non-leaf): its element reads accumulate into y's gradient
        z = tg.stack([y[i] * y[i - 1] for i in range(7)])
        w = z[1:5]              # a block read of a non-leaf
        return (z * z).sum() + w.sum() + z[3] + y[-1]

    same_bits(f, v)


def test_rk4_program_bits():
    import importlib.util, pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "scalar_programs.py"
    spec = importlib.util.spec_from_file_location("scalar_programs_h91", path)
    sp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sp)
    p0, data = sp.draw("rk4", np.random.default_rng(3))
    same_bits(lambda p: sp.rk4(sp.TapeNS(tg), p, data), p0)


def test_negative_zero_becomes_positive_as_the_dense_sum_does():
    # The sweep runs newest first: x[0]'s gradient, exactly -0.0 (1 * -0.0), makes x's gradient; the
    # dense path then adds x[1]'s zero vector, turning that -0.0 into +0.0 (-0 + 0 = +0): so must the
    # sparse add.
    v = np.array([1.0, 2.0, 3.0])

    def f(x):
        return x[1] * 2.0 + x[0] * -0.0

    g = same_bits(f, v)[0]
    assert not np.signbit(g[0]) and g[1] == 2.0
    g32 = same_bits(f, v.astype(np.float32))[0]
    assert not np.signbit(g32[0])


def test_zero_d_products_bits():
    a, b, c = RNG.standard_normal(3)

    def f(x, y, z):
        s = x * y
        for _ in range(5):
            s = s * z + x * s
        return s * s

    same_bits(f, np.float64(a), np.float64(b), np.float64(c))
    same_bits(f, np.float32(a), np.float32(b), np.float32(c))
    # mixed dtypes and a 0-d times a vector keep the general rule
    same_bits(lambda x, y: (x * y).sum(), np.float32(a), RNG.standard_normal(3))
    same_bits(lambda x, y: (x * y).sum(), np.float64(a), RNG.standard_normal(3).astype(np.float32))


def test_hook_on_the_indexed_variable_sees_the_dense_gradient():
    v = RNG.standard_normal(6)
    seen = []

    x = tg.Variable(v, requires_grad=True)
    y = x * 2.0
    y.register_hook(lambda g: seen.append(np.array(g.data)))
    (y[1] * y[1] + y[4] * 3.0 + y[-1]).backward()
    expect = np.zeros(6)
    expect[1] = 2 * (2 * v[1])
    expect[4] = 3.0
    expect[5] = 1.0
    assert len(seen) == 1 and seen[0].shape == (6,)
    np.testing.assert_array_equal(seen[0], expect)
    np.testing.assert_array_equal(np.array(x.grad), 2.0 * expect)


def test_hook_on_an_element_and_retain_grad():
    v = RNG.standard_normal(5)
    for dense in (False, True):
        with dense_path() if dense else contextlib.nullcontext():
            x = tg.Variable(v, requires_grad=True)
            y = x * 1.0
            y.retain_grad()
            e = y[2]
            e.register_hook(lambda g: g * 10.0)   # replaces the element's gradient before it reaches y
            (e * 2.0 + y[2] + y[0] * y[2]).backward()
            got = (np.array(x.grad), np.array(y.grad))
        if dense:
            assert all(a.tobytes() == b.tobytes() for a, b in zip(got, first))
        else:
            first = got
    expect = np.zeros(5)
    expect[2] = 20.0 + 1.0 + v[0]
    expect[0] = v[2]
    np.testing.assert_array_equal(first[1], expect)
    np.testing.assert_array_equal(first[0], expect)


def test_create_graph_second_order():
    v = RNG.standard_normal(4)

    def f(x):
        return x[0] * x[0] * x[1] + x[2] * x[-1] * x[2]

    x = tg.Variable(v, requires_grad=True)
    f(x).backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    g1 = np.array(g.data)
    (g * g).sum().backward()
    # first order: the sparse sweep's bits equal create_graph's values
    np.testing.assert_array_equal(g1, grads(f, v)[0])
    a, b, c, d = v
    grad = np.array([2 * a * b, a * a, 2 * c * d, c * c])
    hess = np.array([[2 * b, 2 * a, 0, 0], [2 * a, 0, 0, 0], [0, 0, 2 * d, 2 * c], [0, 0, 2 * c, 0]])
    np.testing.assert_allclose(np.array(x.grad) - g1, 2 * hess @ grad, rtol=1e-12)


def test_grad_of_elements_with_inputs_and_accumulation_into_existing_grad():
    v = RNG.standard_normal(5)
    x = tg.Variable(v, requires_grad=True)
    (x[1] * x[3]).backward()
    (x[1] + x[-1]).backward()   # accumulates into x.grad
    expect = np.zeros(5)
    expect[1] = v[3] + 1.0
    expect[3] = v[1]
    expect[4] = 1.0
    np.testing.assert_array_equal(np.array(x.grad), expect)
    gx = tg.grad(lambda x: x[2] * x[2] + x[0])(v)  # (a sweep with inputs: the gradient returned, no .grad)
    np.testing.assert_array_equal(np.array(gx), np.array([1.0, 0, 2 * v[2], 0, 0]))
