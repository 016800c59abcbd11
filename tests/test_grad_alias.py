"""No silent aliasing between .grad, the caller's seed and other leaves' .grad (issue 17, h77).

backward(seed) reads the caller's seed in place (no private copy) and a
leaf's .grad adopts a gradient without a copy when nothing else holds it,
including the disjoint blocks of one buffer the sweep owns (a stack's or
concatenate's parts of a computed gradient). These tests pin the guarantee
that makes those copies optional and not the others: after backward, a
write into the seed (the Variable, its NumPy view, or the ndarray passed)
never changes a .grad; a write into one .grad never changes the seed or
another leaf's .grad; a hook that mutates its gradient in place changes
only what reaches its own Variable.
"""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.reference as ref

pytestmark = pytest.mark.usefixtures("restore_grad_mode")

RNG = np.random.default_rng(77)
A = RNG.standard_normal((4, 6))
B = RNG.standard_normal((4, 6))

# (name, f(engine, a, b)) for the ops whose VJP can hand the seed (or a view of it) through to a leaf.
OPS = [
    ("reshape", lambda e, a, b: a.reshape(6, 4)),
    ("reshape fn", lambda e, a, b: e.reshape(a, (24,))),
    ("None, ...", lambda e, a, b: a[None, ...]),
    ("full slice", lambda e, a, b: a[:, :]),
    ("transpose", lambda e, a, b: e.transpose(a)),
    (".T", lambda e, a, b: a.T),
    ("slice", lambda e, a, b: a[1:3]),
    ("row", lambda e, a, b: a[2]),
    ("int array", lambda e, a, b: a[np.array([2, 0, 3])]),
    ("bool mask", lambda e, a, b: a[np.array([True, False, True, True])]),
    ("stack", lambda e, a, b: e.stack([a, b])),
    ("stack axis 1", lambda e, a, b: e.stack([a, b], axis=1)),
    ("concatenate", lambda e, a, b: e.concatenate([a, b])),
    ("concatenate axis 1", lambda e, a, b: e.concatenate([a, b], axis=1)),
    ("astype same dtype", lambda e, a, b: a.astype(np.float64)),
    ("a + b", lambda e, a, b: a + b),
    ("a - b", lambda e, a, b: a - b),
    ("a + 1.5", lambda e, a, b: a + 1.5),
    ("a * 1.0", lambda e, a, b: a * 1.0),
    ("a + a", lambda e, a, b: a + a),
    ("broadcast_to", lambda e, a, b: e.broadcast_to(a[:1], (3, 4, 6))),
    ("sum axis -1", lambda e, a, b: e.sum(a, axis=-1)),
    ("split parts", lambda e, a, b: e.concatenate([a[:, :2], b, a[:, 2:]], axis=1)),
]
IDS = [n for n, _ in OPS]


def seeds(shape):
    """(kind, seed passed to backward, its values, the writable arrays behind it)."""
    w = RNG.standard_normal(shape)
    v = tg.Variable(w.copy())
    arr = w.copy()
    fn = tg.from_numpy(w.copy())
    return [("Variable", v, w, [np.asarray(v.data), v.numpy()]),
            ("ndarray", arr, w, [arr]),
            ("from_numpy", fn, w, [np.asarray(fn.data)])]


def reference_grads(f, w):
    a, b = ref.Variable(A, requires_grad=True), ref.Variable(B, requires_grad=True)
    f(ref, a, b).backward(ref.Variable(w))
    return [np.zeros_like(A) if a.grad is None else np.asarray(a.grad),
            np.zeros_like(B) if b.grad is None else np.asarray(b.grad)]


def grads_of(a, b):
    return [np.zeros_like(A) if a.grad is None else a.grad, np.zeros_like(B) if b.grad is None else b.grad]


@pytest.mark.parametrize("name,f", OPS, ids=IDS)
def test_writing_into_the_seed_after_backward_leaves_grad_alone(name, f):
    for kind, seed, w, behind in seeds(f(np, A, B).shape):
        a, b = tg.Variable(A, requires_grad=True), tg.Variable(B, requires_grad=True)
        f(tg, a, b).backward(seed)
        want = reference_grads(f, w)
        for g, r in zip(grads_of(a, b), want):
            np.testing.assert_array_equal(g, r, err_msg=kind)
        for arr in behind:
            arr[...] = 1e6                          # the caller writes into its seed
        for g, r in zip(grads_of(a, b), want):
            np.testing.assert_array_equal(g, r, err_msg=kind)
        seen = np.asarray(seed.data if isinstance(seed, tg.Variable) else seed)
        np.testing.assert_array_equal(seen, np.full(w.shape, 1e6), err_msg=kind)   # (the writes reached it)


@pytest.mark.parametrize("name,f", OPS, ids=IDS)
def test_writing_into_one_grad_leaves_the_seed_and_the_other_grad_alone(name, f):
    for computed in (False, True):
        shape = f(np, A, B).shape
        w = RNG.standard_normal(shape)
        seed = tg.Variable(w.copy())
        a, b = tg.Variable(A, requires_grad=True), tg.Variable(B, requires_grad=True)
        out = f(tg, a, b)
        if computed:                # a gradient the sweep made (and owns), not the caller's
            (out * tg.Variable(w)).sum().backward()
        else:
            out.backward(seed)
        want = reference_grads(f, w)
        if a.grad is not None:
            a.grad[...] = -7.0
            np.testing.assert_array_equal(grads_of(a, b)[1], want[1])
        if b.grad is not None:
            b.grad[...] = -9.0
            if a.grad is not None:
                np.testing.assert_array_equal(a.grad, np.full(A.shape, -7.0))
        np.testing.assert_array_equal(seed.data, w)


@pytest.mark.parametrize("name,f", OPS, ids=IDS)
def test_second_backward_accumulates_per_leaf(name, f):
    w = RNG.standard_normal(f(np, A, B).shape)
    a, b = tg.Variable(A, requires_grad=True), tg.Variable(B, requires_grad=True)
    for _ in range(2):
        (f(tg, a, b) * tg.Variable(w)).sum().backward()
    kept = grads_of(a, b)
    (f(tg, a, b) * tg.Variable(w)).sum().backward()
    for g, r in zip(kept, reference_grads(f, w)):
        if g is not None and np.any(r):
            np.testing.assert_allclose(g, 3 * r, rtol=1e-14, atol=1e-14)


def address(x):
    return x.__array_interface__["data"][0]


@pytest.mark.parametrize("join", ["stack", "concatenate"])
def test_parts_of_a_computed_gradient_are_adopted_without_a_copy(join):
    """stack/concatenate of a gradient the sweep computed: each .grad is its block of that one buffer
    (contiguous, disjoint, adjacent), not a copy of it; the values are the reference engine's."""
    n = 1000
    a0, b0, w = RNG.standard_normal(n), RNG.standard_normal(n), RNG.standard_normal(2 * n)

    def loss(e, a, b):
        y = getattr(e, join)([a, b])
        return (y.reshape(-1) * e.Variable(w)).sum()

    a, b = tg.Variable(a0, requires_grad=True), tg.Variable(b0, requires_grad=True)
    loss(tg, a, b).backward()
    ar, br = ref.Variable(a0, requires_grad=True), ref.Variable(b0, requires_grad=True)
    loss(ref, ar, br).backward()
    np.testing.assert_array_equal(a.grad, ar.grad)
    np.testing.assert_array_equal(b.grad, br.grad)
    assert a.grad.flags.c_contiguous and b.grad.flags.c_contiguous and a.grad.flags.writeable
    assert address(b.grad) == address(a.grad) + a.grad.nbytes     # the blocks of one buffer: no copy
    assert not np.shares_memory(a.grad, b.grad)
    ga, gb = a.grad, b.grad
    loss(tg, a, b).backward()                                      # accumulates into each block
    np.testing.assert_array_equal(ga, 2 * w[:n])
    np.testing.assert_array_equal(gb, 2 * w[n:])
    a.grad = None                                                  # b's block stays valid
    np.testing.assert_array_equal(gb, 2 * w[n:])


def test_blocks_held_elsewhere_are_copied():
    """A buffer something else holds (a retained .grad of the whole, a hook's reference, the caller's
    seed) is not adopted from: each .grad is an array of its own."""
    n = 64
    w = RNG.standard_normal(2 * n)
    a, b = tg.Variable(RNG.standard_normal(n), requires_grad=True), tg.Variable(RNG.standard_normal(n), requires_grad=True)
    y = tg.concatenate([a, b])
    y.retain_grad()
    (y * tg.Variable(w)).sum().backward()
    assert not np.shares_memory(a.grad, y.grad) and not np.shares_memory(b.grad, y.grad)
    y.grad[...] = 0.0
    np.testing.assert_array_equal(a.grad, w[:n])
    np.testing.assert_array_equal(b.grad, w[n:])

    a.grad = b.grad = None
    kept = []
    h = b.register_hook(lambda g: kept.append(g))
    try:
        (tg.concatenate([a, b]) * tg.Variable(w)).sum().backward()
    finally:
        h.remove()
    assert not np.shares_memory(b.grad, np.asarray(kept[0].data))
    np.asarray(kept[0].data)[...] = 0.0
    np.testing.assert_array_equal(b.grad, w[n:])


def mutate(g):
    with tg.no_grad():
        g += 100.0                   # in place, on what the sweep passed


@pytest.mark.parametrize("name,f", [o for o in OPS if o[0] in
                                    ("a + b", "a - b", "a + a", "stack", "concatenate", "split parts", "reshape",
                                     "a * 1.0", "a + 1.5", "transpose", "slice")],
                         ids=lambda x: x if isinstance(x, str) else "")
def test_a_hook_that_mutates_its_gradient_does_not_corrupt_another_leaf(name, f):
    for computed in (False, True):
        w = RNG.standard_normal(f(np, A, B).shape)
        seed = tg.Variable(w.copy())
        a, b = tg.Variable(A, requires_grad=True), tg.Variable(B, requires_grad=True)
        a.register_hook(mutate)
        out = f(tg, a, b)
        if computed:
            (out * tg.Variable(w)).sum().backward()
        else:
            out.backward(seed)
        want = reference_grads(f, w)
        # b's gradient is the reference's; a's is the reference's plus the hook's 100 (where a is used).
        np.testing.assert_array_equal(grads_of(a, b)[1], want[1])
        if a.grad is not None:
            np.testing.assert_array_equal(a.grad, want[0] + 100.0)
        np.testing.assert_array_equal(seed.data, w)


def test_a_hook_on_a_non_leaf_that_mutates_does_not_reach_a_sibling():
    a, b = tg.Variable(A, requires_grad=True), tg.Variable(B, requires_grad=True)
    u, v = a * 1.0, b * 1.0
    u.register_hook(mutate)
    (u + v).backward(np.ones(A.shape))
    np.testing.assert_array_equal(a.grad, np.full(A.shape, 101.0))
    np.testing.assert_array_equal(b.grad, np.ones(B.shape))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("join", ["stack", "concatenate"])
def test_large_joined_gradients_at_every_thread_count(join, dtype, threads):
    prev = tg.get_num_threads()
    tg.set_num_threads(threads)
    try:
        n = 1 << 20
        a0, b0 = RNG.standard_normal(n).astype(dtype), RNG.standard_normal(n).astype(dtype)
        a, b = tg.Variable(a0, requires_grad=True), tg.Variable(b0, requires_grad=True)
        out = getattr(tg, join)([a, b])
        seed = RNG.standard_normal(out.shape).astype(dtype)
        behind = seed.copy()
        out.backward(seed)
        flat = behind.reshape(-1)
        np.testing.assert_array_equal(a.grad, flat[:n])
        np.testing.assert_array_equal(b.grad, flat[n:])
        seed[...] = 0
        np.testing.assert_array_equal(a.grad, flat[:n])
        a.grad = b.grad = None
        (getattr(tg, join)([a, b]) * tg.Variable(behind)).sum().backward()
        np.testing.assert_array_equal(a.grad, flat[:n])
        np.testing.assert_array_equal(b.grad, flat[n:])
        assert a.grad.dtype == dtype and address(b.grad) == address(a.grad) + a.grad.nbytes
    finally:
        tg.set_num_threads(prev)



@pytest.mark.parametrize("name,f", OPS, ids=IDS)
def test_vjp_and_grad_results_are_arrays_of_their_own(name, f):
    """The functional API: a write into one returned gradient changes neither another one (a + b hands
    both inputs the same gradient) nor the cotangent passed."""
    w = RNG.standard_normal(f(np, A, B).shape)
    c = w.copy()
    _, pullback = tg.vjp(lambda a, b: f(tg, a, b), A, B)
    ga, gb = pullback(c)
    want = reference_grads(f, w)
    np.testing.assert_array_equal(ga, want[0])
    np.testing.assert_array_equal(gb, want[1])
    assert not np.shares_memory(ga, c) and not np.shares_memory(gb, c)
    if ga.flags.writeable:          # (a broadcast result, sum's, is a read-only view)
        ga[...] = -7.0
        np.testing.assert_array_equal(gb, want[1])
        if gb.flags.writeable:
            gb[...] = -9.0
            np.testing.assert_array_equal(ga, np.full(A.shape, -7.0))
    np.testing.assert_array_equal(c, w)
    ga, gb = tg.grad(lambda a, b: (f(tg, a, b) * tg.Variable(w)).sum(), argnums=(0, 1))(A, B)
    if ga.flags.writeable:
        ga[...] = -7.0
        np.testing.assert_array_equal(gb, want[1])
