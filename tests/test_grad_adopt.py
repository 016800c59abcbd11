"""Gradients that backward adopts instead of copying (issue 17, h30).

backward(seed) uses the caller's seed buffer as is (no private copy) while
no hook is registered and no graph of the gradient is built; the VJP of a
view op is a view of its incoming gradient; a leaf's .grad adopts a
gradient only the sweep holds and copies any other (a view of the caller's
seed, a gradient a hook kept). These tests pin what users see: .grad has
the right values (C++ engine vs reference engine vs finite differences),
is a C-contiguous array of its own (never aliased with the seed, the
Variable or an array the user holds), a second backward accumulates into
the array taken from .grad, and the seed is never written (PyTorch's
AccumulateGrad keeps a view of the caller's seed as .grad and a second
backward then adds into the caller's array).
"""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.reference as ref

pytestmark = pytest.mark.usefixtures("restore_grad_mode")

RNG = np.random.default_rng(30)
X = RNG.standard_normal((6, 4))

# (name, view of a (6, 4) array or Variable): the view ops whose VJPs are views or embeds.
VIEWS = [
    ("T", lambda x: x.T),
    ("transpose()", lambda x: x.transpose()),
    ("reshape", lambda x: x.reshape(3, 8)),
    ("reshape(-1)", lambda x: x.reshape(-1)),
    ("None, ...", lambda x: x[None, ...]),
    ("..., None", lambda x: x[..., None]),
    ("full slices", lambda x: x[:, :]),
    ("int on a length-1 axis", lambda x: x[None][0]),
    ("row", lambda x: x[3]),
    ("rows", lambda x: x[1:3]),
    ("inner slice", lambda x: x[1:-1]),
    ("column", lambda x: x[..., 1]),
    ("strided", lambda x: x[::2]),
    ("negative step", lambda x: x[::-1]),
    ("empty", lambda x: x[3:3]),
    ("view of a view", lambda x: x.T[1:][None, ...]),
    ("broadcast_to", lambda x: (tg if isinstance(x, tg.Variable) else ref).broadcast_to(x[:1], (2, 6, 4))),
]
IDS = [n for n, _ in VIEWS]


def seeds_for(shape):
    """(name, the seed to pass, its values, the writable array behind it): a Variable the caller
    keeps, a NumPy array, a shared buffer, a transposed view, a broadcast (stride-0) view."""
    w = RNG.standard_normal(shape)
    t = tg.Variable(np.ascontiguousarray(w.T))
    half = tg.Variable(np.float64(0.5))
    out = []
    for kind, seed, vals in [("Variable", tg.Variable(w.copy()), w), ("ndarray", w.copy(), w),
                             ("from_numpy", tg.from_numpy(w.copy()), w), ("transposed view", t.T, w),
                             ("broadcast view", tg.broadcast_to(half, shape), np.full(shape, 0.5))]:
        base = {"transposed view": t, "broadcast view": half}.get(kind, seed)
        out.append((kind, seed, vals, np.asarray(base.data if isinstance(base, tg.Variable) else base)))
    return out


def reference_grad(f, seed_values):
    x = ref.Variable(X, requires_grad=True)
    f(x).backward(ref.Variable(seed_values))
    return x.grad


def numeric_grad(f, seed_values, eps=1e-6):
    """d <f(x), w> / dx by central differences (float64; the views are linear so it is exact up to rounding)."""
    g = np.zeros_like(X)
    for i in np.ndindex(X.shape):
        xp, xm = X.copy(), X.copy()
        xp[i] += eps
        xm[i] -= eps
        fx = lambda a: np.sum(np.asarray(f(tg.Variable(a)).data) * seed_values)  # noqa: E731
        g[i] = (fx(xp) - fx(xm)) / (2 * eps)
    return g


@pytest.mark.parametrize("name,f", VIEWS, ids=IDS)
def test_view_grad_values_three_ways_and_independent_of_the_seed(name, f):
    shape = f(X).shape
    for kind, seed, w, seed_arr in seeds_for(shape):
        x = tg.Variable(X, requires_grad=True)
        f(x).backward(seed)
        want = reference_grad(f, w)
        g = x.grad
        np.testing.assert_allclose(g, want, rtol=0, atol=0)
        np.testing.assert_allclose(g, numeric_grad(f, w), rtol=1e-8, atol=1e-8)
        assert g.flags.c_contiguous and g.flags.writeable and g.shape == X.shape
        assert not np.shares_memory(g, seed_arr), kind
        assert not np.shares_memory(g, x.data), kind
        # Writes on either side stay on that side.
        seed_arr[...] = 123.0
        np.testing.assert_array_equal(x.grad, want)
        g[...] = -1.0
        np.testing.assert_array_equal(seed_arr, np.full(seed_arr.shape, 123.0))


@pytest.mark.parametrize("name,f", VIEWS, ids=IDS)
def test_second_backward_accumulates_into_the_array_taken_from_grad_and_never_into_the_seed(name, f):
    x = tg.Variable(X, requires_grad=True)
    w = RNG.standard_normal(f(X).shape)
    seed = tg.Variable(w.copy())
    f(x).backward(seed)
    first = x.grad                   # an array the user keeps
    f(x).backward(seed)
    f(x).backward(seed)
    once = reference_grad(f, w)
    np.testing.assert_allclose(first, 3 * once, rtol=1e-15, atol=0)
    assert np.shares_memory(first, x.grad)
    np.testing.assert_array_equal(seed.data, w)  # PyTorch would have added into the caller's seed here


@pytest.mark.parametrize("name,f", VIEWS, ids=IDS)
def test_gradient_the_sweep_owns_is_right_through_a_view(name, f):
    """The incoming gradient is computed (exclusive): .grad may adopt it or a view of it."""
    w = RNG.standard_normal(f(X).shape)

    def loss(eng):
        return lambda x: (eng.tanh(f(x)) * w).sum()

    x = tg.Variable(X, requires_grad=True)
    loss(tg)(x).backward()
    xr = ref.Variable(X, requires_grad=True)
    loss(ref)(xr).backward()
    np.testing.assert_allclose(x.grad, xr.grad, rtol=1e-13, atol=1e-13)
    assert x.grad.flags.c_contiguous and x.grad.flags.writeable
    kept = x.grad
    loss(tg)(x).backward()
    np.testing.assert_allclose(kept, 2 * xr.grad, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name,f", VIEWS, ids=IDS)
def test_create_graph_through_views(name, f):
    """Second order: the gradient of |d loss/dx|^2 through each view, vs the reference engine and gradcheck."""
    w = RNG.standard_normal(f(X).shape)

    def loss(eng):
        return lambda x: ((f(x) ** 3) * w).sum()

    def run(eng):
        x = eng.Variable(X, requires_grad=True)
        loss(eng)(x).backward(create_graph=True)
        g = x.grad
        x.grad = None
        (g * g).sum().backward()
        return x.grad

    np.testing.assert_allclose(run(tg), run(ref), rtol=1e-12, atol=1e-12)
    tg.gradcheck(loss(tg), [X], order=2)


def test_seed_that_requires_grad_and_create_graph_keep_the_graph():
    x = tg.Variable(X, requires_grad=True)
    s = tg.Variable(np.ones((4, 6)), requires_grad=True)
    x.T.backward(s, create_graph=True)
    assert isinstance(x.grad, tg.Variable) and x.grad.requires_grad
    (x.grad * x.grad).sum().backward()
    np.testing.assert_allclose(s.grad, 2 * np.ones((4, 6)))


def test_a_hook_that_writes_into_its_gradient_does_not_reach_the_seed():
    """With a hook registered the seed is copied: the hook's writes stay inside the sweep."""
    x = tg.Variable(X, requires_grad=True)
    seed = tg.Variable(np.ones((4, 6)))
    y = x.T
    seen = []

    def hook(g):
        seen.append(np.array(g.data))
        with tg.no_grad():
            g += 1.0                 # in place, on what the sweep passed

    y.register_hook(hook)
    y.backward(seed)
    np.testing.assert_array_equal(seed.data, np.ones((4, 6)))
    np.testing.assert_array_equal(seen[0], np.ones((4, 6)))
    np.testing.assert_array_equal(x.grad, np.full((6, 4), 2.0))


def test_a_gradient_a_hook_kept_is_copied_into_grad():
    x = tg.Variable(X, requires_grad=True)
    kept = []
    x.register_hook(lambda g: kept.append(g))
    (x.reshape(-1) * 2.0).sum().backward()
    assert not np.shares_memory(x.grad, np.asarray(kept[0].data))
    x.grad[...] = 0.0
    np.testing.assert_array_equal(kept[0].data, np.full(X.shape, 2.0))


def test_retained_non_leaf_and_leaf_do_not_share_one_buffer():
    x = tg.Variable(X, requires_grad=True)
    y = x.reshape(3, 8)
    y.retain_grad()
    y.backward(np.ones((3, 8)))
    assert not np.shares_memory(x.grad, y.grad)
    np.testing.assert_array_equal(x.grad, np.ones(X.shape))
    np.testing.assert_array_equal(y.grad, np.ones((3, 8)))


def test_functional_grad_and_vjp_through_views_leave_the_cotangent_alone():
    w = RNG.standard_normal((4, 6))
    c = w.copy()
    out, pullback = tg.vjp(lambda x: x.T, X)
    (gx,) = pullback(c)
    np.testing.assert_array_equal(gx, w.T)
    gx[...] = 0.0
    np.testing.assert_array_equal(c, w)
    np.testing.assert_allclose(tg.grad(lambda x: (x[None, ...] * 2.0).sum())(X), np.full(X.shape, 2.0))


def test_optimizer_step_after_a_view_backward():
    """An optimizer reads the gradients views gave exactly as gradients assigned by hand."""
    def step(opt_cls, by_hand):
        x = tg.Variable(X.copy(), requires_grad=True)
        opt = opt_cls([x], lr=0.1)
        for _ in range(3):
            if by_hand:
                g = np.zeros_like(X)
                g[:, 1:] = 2 * np.asarray(x.data)[:, 1:]
                x.grad = g
            else:
                (x.T[1:] ** 2).sum().backward()
            opt.step()
            opt.zero_grad()
        return np.asarray(x.data)

    np.testing.assert_allclose(step(tg.optim.SGD, False), _sgd_by_hand(), rtol=1e-13, atol=1e-13)
    for opt_cls in (tg.optim.SGD, tg.optim.Adam, tg.optim.AdamW):
        np.testing.assert_array_equal(step(opt_cls, False), step(opt_cls, True))


def _sgd_by_hand():
    """Three SGD steps of (x.T[1:] ** 2).sum(): rows 1: of x.T are columns 1: of x."""
    x = X.copy()
    for _ in range(3):
        g = np.zeros_like(x)
        g[:, 1:] = 2 * x[:, 1:]
        x -= 0.1 * g
    return x


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_view_gradients_at_every_thread_count(threads, dtype):
    """Above the thread grain: the threaded copies and zero fills give NumPy's bits."""
    prev = tg.get_num_threads()
    tg.set_num_threads(threads)
    try:
        a = RNG.standard_normal((1024, 768)).astype(dtype)
        w = RNG.standard_normal((768, 1024)).astype(dtype)
        for f in [lambda x: x.T, lambda x: x.reshape(768, 1024), lambda x: x[None, ...], lambda x: x[1:-1],
                  lambda x: x[::2], lambda x: x[3], lambda x: x[:, 5]]:
            x = tg.Variable(a, requires_grad=True)
            out = f(x)
            seed = RNG.standard_normal(out.shape).astype(dtype)
            out.backward(seed)
            want = np.zeros_like(a)
            f(want)[...] = seed      # NumPy's view of the same selection
            np.testing.assert_array_equal(x.grad, want)
            assert x.grad.dtype == dtype and x.grad.flags.c_contiguous
    finally:
        tg.set_num_threads(prev)


@pytest.mark.parametrize("threads", [1, 2])
def test_large_copies_and_zeros_at_every_thread_count(threads):
    prev = tg.get_num_threads()
    tg.set_num_threads(threads)
    try:
        a = RNG.standard_normal((700, 900))
        v = tg.Variable(a)                                   # a copy (threaded above the grain)
        np.testing.assert_array_equal(v.data, a)
        np.testing.assert_array_equal(v.T + 0.0, a.T)       # a transposed copy, split by blocks
        np.testing.assert_array_equal(v[::-1, ::3] * 1.0, a[::-1, ::3])
        t = tg.Variable(np.zeros((900, 700)))
        t[...] = v.T                                         # write_through a view
        np.testing.assert_array_equal(t.data, a.T)
        s = tg.Variable(np.arange(1 << 20, dtype=np.float64))
        with tg.no_grad():
            s[1:] = s[:-1]                                   # overlapping: NumPy's result
        want = np.arange(1 << 20, dtype=np.float64)
        want[1:] = want[:-1].copy()
        np.testing.assert_array_equal(s.data, want)
    finally:
        tg.set_num_threads(prev)


# Ops whose rules read the seed directly: a strided or broadcast seed (no longer copied) must give
# the reference engine's gradients.
OPS = [
    ("tanh", lambda e, x: e.tanh(x)),
    ("relu", lambda e, x: e.relu(x)),
    ("times a number", lambda e, x: x * 2.5),
    ("divide", lambda e, x: x / 1.5),
    ("exp", lambda e, x: e.exp(x)),
    ("x * x", lambda e, x: x * x),
    ("matmul", lambda e, x: x @ e.Variable(np.arange(16.0).reshape(4, 4) / 10)),
    ("softmax", lambda e, x: e.softmax(x, axis=-1)),
    ("log_softmax", lambda e, x: e.log_softmax(x, axis=0)),
    ("sum keepdims", lambda e, x: e.sum(x, axis=1, keepdims=True) * x),
    ("maximum", lambda e, x: e.maximum(x, 0.1)),
    ("identity", lambda e, x: x),
]


@pytest.mark.parametrize("name,op", OPS, ids=[n for n, _ in OPS])
def test_ops_read_a_strided_or_broadcast_seed(name, op):
    for kind, seed, w, seed_arr in seeds_for(X.shape):
        x = tg.Variable(X, requires_grad=True)
        op(tg, x).backward(seed)
        xr = ref.Variable(X, requires_grad=True)
        op(ref, xr).backward(ref.Variable(w))
        np.testing.assert_allclose(x.grad, xr.grad, rtol=1e-12, atol=1e-12, err_msg=kind)
        before = seed_arr.copy()
        op(tg, x).backward(seed)      # accumulates; the seed is only read
        np.testing.assert_array_equal(seed_arr, before)
        np.testing.assert_allclose(x.grad, 2 * xr.grad, rtol=1e-12, atol=1e-12, err_msg=kind)
