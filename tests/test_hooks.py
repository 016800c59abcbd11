"""Variable.register_hook and register_post_accumulate_grad_hook (PyTorch's
names and semantics), on the C++ engine and the reference engine."""
import gc
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.reference as ref

ENGINES = [pytest.param(tg, id="cpp"), pytest.param(ref, id="reference")]


def mlp(e, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = e.Variable(rng.standard_normal((4, 3)).astype(dtype))
    w1 = e.Variable(rng.standard_normal((3, 5)).astype(dtype), requires_grad=True)
    w2 = e.Variable(rng.standard_normal((5, 2)).astype(dtype), requires_grad=True)
    return x, w1, w2


@pytest.mark.parametrize("e", ENGINES)
def test_leaf_hook_sees_total_gradient_before_accumulation(e):
    x = e.Variable(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    x.grad = np.array([10.0, 10.0, 10.0])
    seen = []

    def hook(g):
        seen.append((np.array(g.data), np.array(x.grad)))

    x.register_hook(hook)
    (x * x + 3.0 * x).sum().backward()  # x reaches the loss twice: one call, the sum
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0][0], 2 * x.data + 3)
    np.testing.assert_allclose(seen[0][1], 10.0)  # .grad not yet updated when the hook runs
    np.testing.assert_allclose(x.grad, 10 + 2 * x.data + 3)


@pytest.mark.parametrize("e", ENGINES)
def test_replacement_on_leaf_and_non_leaf(e):
    x, w1, w2 = mlp(e)
    h = e.tanh(x @ w1)
    h.register_hook(lambda g: g * 2.0)           # a Variable
    w2.register_hook(lambda g: np.zeros_like(g.data))  # an array
    (h @ w2).sum().backward()
    x0, w10, w20 = mlp(e)
    (e.tanh(x0 @ w10) @ w20).sum().backward()
    np.testing.assert_allclose(w1.grad, 2 * w10.grad, rtol=1e-12)
    np.testing.assert_allclose(w2.grad, 0.0)


@pytest.mark.parametrize("e", ENGINES)
def test_engines_agree_on_hooked_gradients(e):
    """The same hooked program on both engines: the same hook calls and grads."""
    def run(eng):
        x, w1, w2 = mlp(eng)
        log = []
        h = eng.tanh(x @ w1)
        h.register_hook(lambda g: (log.append(("h", np.array(g.data))), g * g)[1])
        w1.register_hook(lambda g: log.append(("w1", np.array(g.data))))
        w2.register_post_accumulate_grad_hook(lambda v: log.append(("w2 post", np.array(v.grad))))
        ((h @ w2) ** 2).sum().backward()
        return log, w1.grad, w2.grad
    a, b = run(tg), run(e)
    assert sorted(k for k, _ in a[0]) == sorted(k for k, _ in b[0])
    for (ka, va), (kb, vb) in zip(sorted(a[0], key=lambda t: t[0]), sorted(b[0], key=lambda t: t[0])):
        np.testing.assert_allclose(va, vb, rtol=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-12)


@pytest.mark.parametrize("e", ENGINES)
def test_non_leaf_hook_outlives_its_variable(e):
    x = e.Variable(np.array([1.0, -2.0]), requires_grad=True)
    calls = []

    def build():
        h = x * 3.0
        h.register_hook(lambda g: calls.append(1))
        return e.tanh(h).sum()

    loss = build()
    gc.collect()
    loss.backward()
    assert calls == [1]


@pytest.mark.parametrize("e", ENGINES)
def test_hooks_run_in_grad_and_vjp(e):
    x0 = np.array([0.5, 1.5])

    def f(x):
        y = e.exp(x)
        y.register_hook(lambda g: g * 10.0)
        x.register_hook(lambda g: g + 1.0)  # a hook on the input: grad() returns what it returns
        return y.sum()

    np.testing.assert_allclose(e.grad(f)(x0), 10 * np.exp(x0) + 1, rtol=1e-12)
    out, vjp_fn = e.vjp(f, x0)
    (g,) = vjp_fn(np.array(2.0))
    np.testing.assert_allclose(g, 20 * np.exp(x0) + 1, rtol=1e-12)


def test_hooks_in_jacobian_see_the_batch_and_scale_it():
    x = tg.Variable(np.array([0.3, -0.7, 1.1]), requires_grad=True)
    shapes = []

    def f(x_):
        h = tg.sin(x_) * 2.0
        if h.requires_grad:
            h.register_hook(lambda g: (shapes.append(g.shape), g * 3.0)[1])
        return tg.tanh(h)

    J = tg.jacobian(f, x.data, mode="reverse")
    J0 = tg.jacobian(lambda x_: tg.tanh(tg.sin(x_) * 2.0), x.data, mode="reverse")
    np.testing.assert_allclose(J, 3 * J0, rtol=1e-12)
    assert shapes and all(s[-1:] == (3,) for s in shapes)


@pytest.mark.parametrize("e", ENGINES)
def test_create_graph_hook_gets_graph_variable(e):
    x = e.Variable(np.array([0.4, 0.9]), requires_grad=True)
    got = []
    y = x ** 3
    handle = y.register_hook(lambda g: (got.append(g.requires_grad), g * x)[1])  # differentiable replacement
    (y * y).sum().backward(create_graph=True)  # y's gradient 2y = 2x^3 depends on x: a graph Variable
    assert got == [True]
    gx = x.grad  # 2x^3 * x (the hook) * 3x^2 = 6x^6
    np.testing.assert_allclose(np.asarray(gx.data), 6 * x.data ** 6, rtol=1e-12)
    x.grad = None
    handle.remove()  # (else it would scale y's gradient in this sweep too)
    gx.sum().backward()
    np.testing.assert_allclose(np.asarray(x.grad), 36 * x.data ** 5, rtol=1e-12)


@pytest.mark.parametrize("e", ENGINES)
def test_bad_replacements_are_refused(e):
    x = e.Variable(np.ones((2, 3)), requires_grad=True)
    x.register_hook(lambda g: np.ones(3))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        (x * 2.0).sum().backward()
    assert x.grad is None
    y = e.Variable(np.ones((2, 3)), requires_grad=True)
    y.register_hook(lambda g: np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        (y * 2.0).sum().backward()
    z = e.Variable(np.ones(2), requires_grad=True)
    z.register_hook(lambda g: "no")
    with pytest.raises(TypeError, match="register_hook"):
        (z * 2.0).sum().backward()


class HookError(Exception):
    pass


@pytest.mark.parametrize("e", ENGINES)
def test_exception_in_hook_propagates_and_engine_stays_usable(e):
    w = e.Variable(np.array([1.0, 2.0]), requires_grad=True)
    v = e.Variable(np.array([3.0, 4.0]), requires_grad=True)

    def exploding_hook(g):
        raise HookError("boom")

    h = (w * v)
    handle = h.register_hook(exploding_hook)
    with pytest.raises(HookError, match="boom") as info:
        e.tanh(h).sum().backward(retain_graph=True)
    if e is tg and sys.version_info >= (3, 11):
        assert any("exploding_hook" in n for n in info.value.__notes__)
    assert w.grad is None and v.grad is None  # no .grad changed
    handle.remove()
    e.tanh(h).sum().backward()  # the same graph, now without the hook
    np.testing.assert_allclose(w.grad, (1 - np.tanh(w.data * v.data) ** 2) * v.data)
    # and the engine runs other sweeps (another thread would hang if the lock leaked)
    a = e.Variable(np.array(2.0), requires_grad=True)
    (a * a).backward()
    assert float(a.grad) == 4.0


@pytest.mark.parametrize("e", ENGINES)
def test_remove_is_idempotent_and_handles_are_context_managers(e):
    x = e.Variable(np.array([1.0]), requires_grad=True)
    calls = []
    h1 = x.register_hook(lambda g: calls.append("a"))
    with x.register_hook(lambda g: calls.append("b")):
        (x * 2.0).sum().backward()
    assert calls == ["a", "b"]
    h1.remove()
    h1.remove()
    (x * 2.0).sum().backward()
    assert calls == ["a", "b"]
    p = x.register_post_accumulate_grad_hook(lambda v: calls.append("post"))
    (x * 2.0).sum().backward()
    p.remove()
    p.remove()
    (x * 2.0).sum().backward()
    assert calls == ["a", "b", "post"]


def test_hooks_go_with_their_variable_and_node():
    # The C++ engine keeps hooks apart from the Variable and node (a side
    # table keyed by address, released with the object's last reference):
    # the hooks are freed with them, and a new object at the same address
    # starts with none.
    import weakref

    class Hook:
        def __init__(self, calls, tag):
            self.calls, self.tag = calls, tag

        def __call__(self, arg):
            self.calls.append(self.tag)

    calls = []
    x = tg.Variable(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3.0
    leaf_hook, post_hook, node_hook = Hook(calls, "leaf"), Hook(calls, "post"), Hook(calls, "node")
    x.register_hook(leaf_hook)
    x.register_post_accumulate_grad_hook(post_hook)
    h.register_hook(node_hook)
    h.retain_grad()  # (a weak reference to h from its node)
    tg.tanh(h).sum().backward()
    assert sorted(calls) == ["leaf", "node", "post"]
    alive = [weakref.ref(f) for f in (leaf_hook, post_hook, node_hook)]
    del leaf_hook, post_hook, node_hook, h, x
    gc.collect()
    assert [r() for r in alive] == [None, None, None]
    calls.clear()
    for _ in range(200):  # new Variables and nodes, some at the freed addresses
        y = tg.Variable(np.array([1.0, 2.0]), requires_grad=True)
        z = y * 3.0
        z.retain_grad()
        tg.tanh(z).sum().backward()
    assert calls == []


@pytest.mark.parametrize("e", ENGINES)
def test_registration_errors(e):
    x = e.Variable(np.ones(2))
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.register_hook(lambda g: None)
    w = e.Variable(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2.0).register_post_accumulate_grad_hook(lambda v: None)
    with pytest.raises(TypeError, match="callable"):
        w.register_hook(3)
    with pytest.raises(TypeError, match="callable"):
        w.register_post_accumulate_grad_hook(None)


@pytest.mark.parametrize("e", ENGINES)
def test_post_accumulate_hook_sees_final_grad_once_per_backward(e):
    w = e.Variable(np.array([1.0, 2.0]), requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda v: seen.append(np.array(v.grad)))
    loss = (w * w).sum() + (w * 3.0).sum()  # two paths into w
    loss.backward(retain_graph=True)
    loss.backward()
    assert len(seen) == 2
    np.testing.assert_allclose(seen[0], 2 * w.data + 3)
    np.testing.assert_allclose(seen[1], 2 * (2 * w.data + 3))  # accumulated across backward calls
    # grad() accumulates nothing, so it fires nothing
    e.grad(lambda t: (t * t).sum())(w.data)
    assert len(seen) == 2


def test_post_accumulate_hook_fires_before_earlier_layers_are_differentiated():
    """Issue 19 starts an allreduce from this hook: it must fire as soon as the
    last layer's weight gradient is final, while the sweep still works on the
    earlier layers (whose rule here logs when it runs)."""
    log = []

    @tg.custom_op
    def layer1(x):
        return np.tanh(x)

    @layer1.defvjp
    def layer1_vjp(g, ans, x):
        log.append("layer1 vjp")
        return g * (1 - ans ** 2)

    x, w1, w2 = mlp(tg)
    w3 = tg.Variable(np.ones((2, 1)), requires_grad=True)
    w3.register_post_accumulate_grad_hook(lambda v: log.append(("w3 ready", v.grad.copy())))
    w1.register_post_accumulate_grad_hook(lambda v: log.append("w1 ready"))
    h1 = layer1(x @ w1)
    h2 = tg.relu(h1 @ w2)
    loss = (h2 @ w3).sum()
    loss.backward()
    assert [e if isinstance(e, str) else e[0] for e in log] == ["w3 ready", "layer1 vjp", "w1 ready"]
    np.testing.assert_allclose(log[0][1], h2.data.sum(axis=0, keepdims=True).T)


def test_nested_sweep_inside_a_hook():
    x = tg.Variable(np.array([0.5, 1.0]), requires_grad=True)
    inner = []

    def hook(g):
        with tg.enable_grad():
            inner.append(tg.grad(lambda t: (t ** 3).sum())(x.data))
        return g

    (x * x).register_hook(hook)
    ((x * x).sum()).backward()  # a fresh x*x without a hook: nothing nested
    y = x * x
    y.register_hook(hook)
    x.grad = None
    y.sum().backward()
    assert len(inner) == 1
    np.testing.assert_allclose(inner[0], 3 * x.data ** 2)
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_hooks_agree_with_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))

    def run(lib, Var):
        wa = Var(a, requires_grad=True) if lib is tg else torch.tensor(a, requires_grad=True)
        wb = Var(b, requires_grad=True) if lib is tg else torch.tensor(b, requires_grad=True)
        order = []
        h = (wa @ wb) if lib is tg else wa @ wb
        h.register_hook(lambda g: (order.append("h"), g * 2)[1])
        wa.register_hook(lambda g: (order.append("wa"), g - 1)[1])
        wb.register_post_accumulate_grad_hook(lambda v: order.append("wb post"))
        s = (tg.tanh(h) if lib is tg else torch.tanh(h)).sum()
        s.backward()
        ga = wa.grad if lib is tg else wa.grad.numpy()
        gb = wb.grad if lib is tg else wb.grad.numpy()
        return order, ga, gb

    o1, ga1, gb1 = run(tg, tg.Variable)
    o2, ga2, gb2 = run(torch, None)
    assert sorted(o1) == sorted(o2)
    np.testing.assert_allclose(ga1, ga2, rtol=1e-12)
    np.testing.assert_allclose(gb1, gb2, rtol=1e-12)


def test_hook_flags_survive_new_graphs_and_retain_grad():
    # The C++ engine keeps a leaf's "has hooks" flag in the word of its weak
    # reference to its AccumulateGrad node, and a node's in the word of its
    # weak reference to a retained output: a hook registered before the leaf
    # is used, then used by graph after graph (each with a new AccumulateGrad
    # node), and a non-leaf hooked before and after retain_grad(), must keep
    # firing; the Variables must free their hooks when they go.
    import weakref

    calls = []

    class Hook:
        def __init__(self, tag):
            self.tag = tag

        def __call__(self, g):
            calls.append(self.tag)

    x = tg.Variable(np.array([1.0, 2.0]), requires_grad=True)
    leaf_hook = Hook("leaf")
    x.register_hook(leaf_hook)
    for step in range(3):
        h = x * 3.0
        h.register_hook(Hook("before retain"))
        h.retain_grad()
        h.register_hook(Hook("after retain"))
        tg.tanh(h).sum().backward()
        assert h.grad is not None
        assert calls == ["before retain", "after retain", "leaf"], (step, calls)
        calls.clear()
        del h
        gc.collect()
    alive = weakref.ref(leaf_hook)
    del leaf_hook, x
    gc.collect()
    assert alive() is None
