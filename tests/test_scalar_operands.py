"""Variable op Python number, and how Variables come back to Python.

`x * 2.0` (and +, -, / on either side) records one scalar node holding the
number instead of building a 0-d constant Variable (the operators' fast
path). The explicit functions (`tg.multiply(x, 2.0)`) still take the general
broadcasting op with a 0-d constant, so the two must agree bit for bit:
values, gradients, forward-mode tangents, second order, node names.

The bindings find a Variable's Python object through a back pointer rather
than pybind11's registry: identity, subclasses and objects that died while
their Variable lived on are checked at the end.
"""
import gc
import weakref

import numpy as np
import pytest

import op_cases
import tapegrad as tg

# operator form (scalar node) vs function form (general op, 0-d constant)
OPS = {
    "x+c": (lambda x, c: x + c, lambda x, c: tg.add(x, c)),
    "c+x": (lambda x, c: c + x, lambda x, c: tg.add(c, x)),
    "x-c": (lambda x, c: x - c, lambda x, c: tg.subtract(x, c)),
    "c-x": (lambda x, c: c - x, lambda x, c: tg.subtract(c, x)),
    "x*c": (lambda x, c: x * c, lambda x, c: tg.multiply(x, c)),
    "c*x": (lambda x, c: c * x, lambda x, c: tg.multiply(c, x)),
    "x/c": (lambda x, c: x / c, lambda x, c: tg.divide(x, c)),
    "c/x": (lambda x, c: c / x, lambda x, c: tg.divide(c, x)),
}
# floats, ints, signed zeros, non-finite values, an int past 2**53 (rounded
# like NumPy), one past int64 (the general path) and a bool (general path).
CONSTS = [2.5, -1.75, 0.0, -0.0, 3, -7, 1e300, 1e-300, float("inf"), float("-inf"), float("nan"),
          2**62 + 1, 2**70, True]
SHAPES = [(), (1,), (7,), (3, 5)]


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    assert a.tobytes() == b.tobytes()  # the same bits: signed zeros, NaN signs


def _x(shape, dtype, rng):
    x = rng.standard_normal(shape)
    if x.size:
        x.reshape(-1)[0] = -0.0  # signed zero, and a pole of c / x
    return np.asarray(x, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("c", CONSTS, ids=repr)
@pytest.mark.parametrize("op", list(OPS))
def test_operator_equals_general_op_values_and_gradients(op, c, shape, dtype):
    rng = np.random.default_rng(0)
    x0 = _x(shape, dtype, rng)
    w = np.asarray(rng.standard_normal(shape), dtype=dtype)
    fast, general = OPS[op]
    results = []
    for f in (fast, general):
        with np.errstate(all="ignore"):
            x = tg.Variable(x0, requires_grad=True)
            y = f(x, c)
            (y * tg.Variable(w)).sum().backward()
            results.append((y.numpy(), np.asarray(x.grad), y.grad_fn.name, y.dtype))
    (ya, ga, na, da), (yb, gb, nb, db) = results
    assert da == db == np.dtype(dtype) and na == nb
    _same(ya, yb)
    _same(ga, gb)


@pytest.mark.parametrize("op", list(OPS))
def test_operator_matches_numpy_weak_scalar_promotion(op):
    # NEP 50: a Python number takes the array's dtype, rounded to it first.
    x0 = np.float32([0.3, -1.25, 7.0])
    fast, _ = OPS[op]
    with np.errstate(all="ignore"):
        expect = fast(x0, 1.0001)
    got = fast(tg.Variable(x0), 1.0001).numpy()
    assert got.dtype == np.float32
    _same(got, expect)


@pytest.mark.parametrize("op", list(OPS))
def test_operator_forward_mode_and_second_order_equal_general_op(op):
    rng = np.random.default_rng(1)
    x0 = rng.uniform(0.5, 2.0, size=(4,))
    t0 = rng.standard_normal(4)
    fast, general = OPS[op]
    for c in (2.5, -3):
        outs = []
        for f in (fast, general):
            _, tangent = tg.jvp(lambda x: f(tg.tanh(x), c), (tg.Variable(x0),), (tg.Variable(t0),))
            hess = tg.hessian(lambda x: tg.sum(f(x * x, c) * f(x, c)), tg.Variable(x0))
            jac = tg.jacobian(lambda x: f(tg.sin(x), c), tg.Variable(x0), mode="reverse")
            jac_f = tg.jacobian(lambda x: f(tg.sin(x), c), tg.Variable(x0), mode="forward")
            outs.append([np.asarray(tangent), np.asarray(hess), np.asarray(jac),
                         np.asarray(jac_f)])
        for a, b in zip(*outs):
            _same(a, b)


def test_operator_with_scalar_matches_reference_and_finite_differences():
    from helpers import assert_close, numeric_grad, reference_engine

    ref = reference_engine()
    x0 = np.array([0.4, 1.3, -0.8])

    def f(m, x):
        return m.sum(((x * 3.0 + 1) - 0.5) / 2 + 2.0 / (x - 5) - (1 - x) * x)

    x = tg.Variable(x0, requires_grad=True)
    f(tg, x).backward()
    xr = ref.Variable(x0, requires_grad=True)
    f(ref, xr).backward()
    assert_close(np.asarray(x.grad), np.asarray(xr.grad))
    assert_close(np.asarray(x.grad), numeric_grad(lambda a: f(np, a), x0), rtol=1e-6)


def test_large_scalar_op_is_threaded_and_identical_to_one_thread():
    x0 = np.random.default_rng(2).standard_normal(600_001).astype(np.float32)
    prev = tg.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            tg.set_num_threads(n)
            x = tg.Variable(x0, requires_grad=True)
            y = 1.5 / (x * 0.75 - 2) + 0.25
            y.sum().backward()
            outs.append((y.numpy(), np.asarray(x.grad)))
    finally:
        tg.set_num_threads(prev)
    _same(outs[0][0], outs[1][0])
    _same(outs[0][1], outs[1][1])
    _same(outs[0][0], np.float32(1.5) / (x0 * np.float32(0.75) - np.float32(2)) + np.float32(0.25))


def test_scalar_op_in_place_change_of_saved_input_is_detected():
    x = tg.Variable(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 1.0
    y = 3.0 / h  # saves h and its output
    with tg.no_grad():
        h += 1.0
    with pytest.raises(RuntimeError, match="in place"):
        y.sum().backward()


# ----- Python objects of Variables -------------------------------------------
def test_differentiable_grad_is_the_same_object_each_time():
    x = tg.Variable(np.ones(3), requires_grad=True)
    (x * x * 2.0).sum().backward(create_graph=True)  # .grad is then a Variable
    assert isinstance(x.grad, tg.Variable)
    assert x.grad is x.grad


def test_a_variable_handed_back_is_its_existing_object():
    x = tg.Variable(np.ones(3), requires_grad=True)
    g = tg.Variable(np.full(3, 2.0), requires_grad=True) * 1.5
    x.grad = g  # requires grad: stored as is, returned as the same object
    assert x.grad is g


def test_subclass_objects_keep_their_type_and_attributes():
    class Tagged(tg.Variable):
        pass

    t = Tagged(np.ones(2), requires_grad=True)
    t.tag = "kept"
    y = (t * 2.0).sum()
    y.backward()
    assert type(t) is Tagged and t.tag == "kept"
    assert type(t * 2.0) is tg.Variable
    np.testing.assert_array_equal(np.asarray(t.grad), [2.0, 2.0])


def test_second_init_on_an_op_result_is_ignored():
    # An op result's object must stay the same Variable (and the one its
    # holder points back to) when __init__ is called on it again.
    x = tg.Variable([1.0], requires_grad=True)
    w = tg.Variable([1.0], requires_grad=True)
    y = x * 2.0
    w.grad = y  # w's gradient is y's Variable itself
    y.__init__([5.0])
    assert w.grad is y
    np.testing.assert_array_equal(y.numpy(), [2.0])
    del y
    gc.collect()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0])
    v = tg.Variable([3.0])
    v.__init__([7.0])  # the same for a constructed Variable
    np.testing.assert_array_equal(v.numpy(), [3.0])


def test_variable_outliving_its_python_object_gets_a_new_one():
    # y's Python object dies while the C++ Variable lives on as x.grad; asking
    # for x.grad must build a new object (a stale pointer would be a crash).
    x = tg.Variable(np.ones(2), requires_grad=True)
    w = tg.Variable(np.full(2, 5.0), requires_grad=True)
    y = w * 2.0  # requires grad, so the setter keeps this very Variable
    x.grad = y
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is None
    for _ in range(3):
        g = x.grad
        np.testing.assert_array_equal(g.numpy(), [10.0, 10.0])
        assert g is x.grad
        del g
        gc.collect()
    # The same through a leaf whose object died with its graph still alive.
    leaf = tg.Variable(np.ones(2), requires_grad=True)
    out = (leaf * 3.0).sum()
    del leaf
    gc.collect()
    out.backward()  # accumulates into the orphaned leaf: no dead object touched


def test_weakrefs_to_results_work_and_clear():
    x = tg.Variable(np.ones(2))
    y = x * 2.0
    r = weakref.ref(y)
    assert r() is y
    del y
    gc.collect()
    assert r() is None


def test_many_results_created_and_dropped_do_not_leak_objects():
    x = tg.Variable(np.ones(4), requires_grad=True)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(2000):
        y = x * 2.0 + 1
        del y
    gc.collect()
    assert len(gc.get_objects()) - before < 50


# ----- the reverse sweep writing a gradient into the cotangent's buffer --------
# tanh / sigmoid / relu and multiply/divide by a number overwrite the incoming
# cotangent when nothing else holds it. Everything that does hold one must
# see its own values afterwards.
CHAIN_FNS = {
    "tanh": tg.tanh, "sigmoid": tg.sigmoid, "relu": tg.relu,
    "mul": lambda v: v * 1.5, "div": lambda v: v / 0.75,
}


def _chain(x, names):
    for name in names:
        x = CHAIN_FNS[name](x)
    return x


@pytest.mark.parametrize("names", [["tanh", "mul", "sigmoid"], ["div", "relu", "tanh", "mul"], ["mul", "mul"]])
@pytest.mark.parametrize("shape", [(), (5,), (3, 4)], ids=str)
def test_overwriting_sweep_matches_reference_and_leaves_seed_alone(names, shape):
    from helpers import assert_close, reference_engine

    ref = reference_engine()
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal(shape)
    seed0 = rng.standard_normal(shape)
    seed = tg.Variable(seed0.copy())
    x = tg.Variable(x0, requires_grad=True)
    _chain(x, names).backward(seed)
    np.testing.assert_array_equal(seed.numpy(), seed0)  # the user's seed is not a scratch buffer
    seed_np = seed0.copy()
    x2 = tg.Variable(x0, requires_grad=True)
    _chain(x2, names).backward(seed_np)
    np.testing.assert_array_equal(seed_np, seed0)
    xr = ref.Variable(x0, requires_grad=True)
    rfns = {"tanh": ref.tanh, "sigmoid": ref.sigmoid, "relu": ref.relu,
            "mul": lambda v: v * 1.5, "div": lambda v: v / 0.75}
    yr = xr
    for name in names:
        yr = rfns[name](yr)
    yr.backward(ref.Variable(seed0))
    assert_close(np.asarray(x.grad), np.asarray(xr.grad))
    np.testing.assert_array_equal(np.asarray(x.grad), np.asarray(x2.grad))


@pytest.mark.parametrize("name", op_cases.ELEMENTWISE)
def test_overwriting_sweep_of_every_elementwise_op_matches_reference_and_leaves_seed_alone(name):
    """Each elementwise op of the spec last (its cotangent the user's seed), then inside a chain."""
    from helpers import assert_close, reference_engine, rng_for, sample

    ref = reference_engine()
    rng = rng_for("overwrite", name)
    x0 = sample(op_cases.sample_domain(name), (3, 4), rng)
    seed0 = rng.standard_normal((3, 4))
    chains = [lambda m, v: getattr(m, name)(v), lambda m, v: getattr(m, name)(v * 1.0) * 1.5 / 0.75]
    for chain in chains:
        seed = tg.Variable(seed0.copy())
        x = tg.Variable(x0, requires_grad=True)
        chain(tg, x).backward(seed)
        np.testing.assert_array_equal(seed.numpy(), seed0)
        seed_np = seed0.copy()
        x2 = tg.Variable(x0, requires_grad=True)
        chain(tg, x2).backward(seed_np)
        np.testing.assert_array_equal(seed_np, seed0)
        xr = ref.Variable(x0, requires_grad=True)
        chain(ref, xr).backward(ref.Variable(seed0))
        assert_close(np.asarray(x.grad), np.asarray(xr.grad))
        np.testing.assert_array_equal(np.asarray(x.grad), np.asarray(x2.grad))


def test_retained_and_requested_gradients_are_not_overwritten():
    x0 = np.array([0.3, -0.7, 1.2])
    x = tg.Variable(x0, requires_grad=True)
    h1 = tg.tanh(x)
    h2 = h1 * 3.0
    h3 = tg.sigmoid(h2)
    h2.retain_grad()
    h3.retain_grad()
    (h3 / 2.0).sum().backward()
    s = 1 / (1 + np.exp(-3 * np.tanh(x0)))
    np.testing.assert_allclose(np.asarray(h3.grad), np.full(3, 0.5), rtol=1e-15)
    np.testing.assert_allclose(np.asarray(h2.grad), 0.5 * s * (1 - s), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(x.grad), 0.5 * s * (1 - s) * 3 * (1 - np.tanh(x0) ** 2), rtol=1e-13)
    # tg.grad w.r.t. intermediates: each keeps its own cotangent.
    x = tg.Variable(x0, requires_grad=True)
    a = tg.tanh(x)
    b = a * 2.0
    c = tg.tanh(b)
    from tapegrad import _core

    ga, gb, gx = _core._grad([c.sum()], [a, b, x], [None], False, False, 0)
    tb = np.tanh(2 * np.tanh(x0))
    np.testing.assert_allclose(np.asarray(gb), 1 - tb ** 2, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(ga), 2 * (1 - tb ** 2), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(gx), 2 * (1 - tb ** 2) * (1 - np.tanh(x0) ** 2), rtol=1e-14)


def test_branching_graph_shares_a_cotangent_without_corruption():
    # y = tanh(x) feeds two branches whose cotangents meet again at x.
    x0 = np.array([0.2, -1.1])
    x = tg.Variable(x0, requires_grad=True)
    t = tg.tanh(x)
    y = tg.tanh(t) * 2.0 + t * 3.0 + tg.sigmoid(t)
    y.sum().backward()
    t0 = np.tanh(x0)
    s = 1 / (1 + np.exp(-t0))
    dt = 2 * (1 - np.tanh(t0) ** 2) + 3 + s * (1 - s)
    np.testing.assert_allclose(np.asarray(x.grad), dt * (1 - t0 ** 2), rtol=1e-14)
