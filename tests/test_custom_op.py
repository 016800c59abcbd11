"""Custom ops (``@tapegrad.custom_op`` with ``defvjp`` / ``defjvp`` rules in
NumPy): first order in every mode, several inputs, missing rules, second
order refused, rules that raise or return the wrong shape, custom ops nested
in transforms.
"""

import numpy as np
import pytest

import tapegrad as tg
from helpers import MODES, assert_close, rng_for
from helpers import case_id as _ids


# ---------------------------------------------------------------------------
# 5. Custom ops
# ---------------------------------------------------------------------------
def make_cube():
    @tg.custom_op
    def cube(x):
        return x ** 3

    @cube.defvjp
    def _(g, ans, x):
        return g * 3 * x ** 2

    @cube.defjvp
    def _(t, ans, x):
        return t * 3 * x ** 2

    return cube


@pytest.mark.parametrize("shape", [(), (4,), (2, 3)], ids=_ids)
def test_custom_cube_every_first_order_mode(shape):
    cube = make_cube()
    rng = rng_for("cube", shape)
    x = rng.normal(size=shape)
    u = rng.normal(size=shape)

    def f_custom(v):
        return tg.sin(cube(v * 1.5)) + cube(v)

    def f_builtin(v):
        return tg.sin((v * 1.5) ** 3) + v ** 3

    # grad
    g1 = tg.grad(lambda v: tg.sum(f_custom(v)))(x)
    g2 = tg.grad(lambda v: tg.sum(f_builtin(v)))(x)
    assert_close(g1, g2, rtol=1e-12, atol_scale=1e-14)
    # jvp / directional derivative
    o1, t1 = tg.jvp(f_custom, (x,), (u,))
    o2, t2 = tg.jvp(f_builtin, (x,), (u,))
    assert_close(o1, o2, rtol=1e-12, atol_scale=1e-14)
    assert_close(t1, t2, rtol=1e-12, atol_scale=1e-14)
    assert_close(tg.directional_derivative(f_custom, x, u), t2, rtol=1e-12, atol_scale=1e-14)
    # vjp
    w = rng.normal(size=shape)
    _, vf1 = tg.vjp(f_custom, x)
    _, vf2 = tg.vjp(f_builtin, x)
    assert_close(vf1(w)[0], vf2(w)[0], rtol=1e-12, atol_scale=1e-14)
    # jacobians, every mode and chunk size (the rules get a batch axis)
    Jb = tg.jacobian(f_builtin, x, mode="reverse")
    for mode in ["forward", "reverse", "auto"]:
        for chunk in (None, 1, 2):
            assert_close(tg.jacobian(f_custom, x, mode=mode, chunk_size=chunk), Jb, rtol=1e-12, atol_scale=1e-14,
                         msg=f"{mode} chunk={chunk}")
    # backward
    v = tg.Variable(x, requires_grad=True)
    tg.sum(f_custom(v)).backward()
    assert_close(v.grad, g2, rtol=1e-12, atol_scale=1e-14)
    # the value
    assert_close(cube(tg.Variable(x)), x ** 3)


def make_two_input(jvp_rules="both"):
    """f(a, b) = a * sin(b) with a tuple VJP and one JVP rule per input."""
    calls = {"vjp": 0, "jvp_a": 0, "jvp_b": 0}

    @tg.custom_op
    def asinb(a, b):
        return a * np.sin(b)

    @asinb.defvjp
    def _(g, ans, a, b):
        calls["vjp"] += 1
        return g * np.sin(b), g * a * np.cos(b)

    def jvp_a(t, ans, a, b):
        calls["jvp_a"] += 1
        return t * np.sin(b)

    def jvp_b(t, ans, a, b):
        calls["jvp_b"] += 1
        return t * a * np.cos(b)

    if jvp_rules == "both":
        asinb.defjvp(jvp_a, jvp_b)
    elif jvp_rules == "a_only":
        asinb.defjvp(jvp_a, None)
    return asinb, calls


def test_custom_two_inputs_tuple_vjp_and_two_jvp_rules():
    asinb, calls = make_two_input()
    rng = rng_for("two-input")
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    ta, tb = rng.normal(size=a.shape), rng.normal(size=b.shape)

    def f(p, q):
        return tg.exp(asinb(p, q * 0.5))

    def fb(p, q):
        return tg.exp(p * tg.sin(q * 0.5))

    o1, t1 = tg.jvp(f, (a, b), (ta, tb))
    o2, t2 = tg.jvp(fb, (a, b), (ta, tb))
    assert_close(o1, o2, rtol=1e-12, atol_scale=1e-14)
    assert_close(t1, t2, rtol=1e-12, atol_scale=1e-14)
    assert calls["jvp_a"] >= 1 and calls["jvp_b"] >= 1
    for mode in ["forward", "reverse"]:
        j1 = tg.jacobian(f, (a, b), mode=mode)
        j2 = tg.jacobian(fb, (a, b), mode="reverse")
        for x1, x2 in zip(j1, j2):
            assert_close(x1, x2, rtol=1e-12, atol_scale=1e-14, msg=mode)
    g1 = tg.grad(lambda p, q: tg.sum(f(p, q)), argnums=(0, 1))(a, b)
    g2 = tg.grad(lambda p, q: tg.sum(fb(p, q)), argnums=(0, 1))(a, b)
    for x1, x2 in zip(g1, g2):
        assert_close(x1, x2, rtol=1e-12, atol_scale=1e-14)
    # only one input is differentiated: the other's JVP rule is skipped
    calls["jvp_a"] = calls["jvp_b"] = 0
    _, t = tg.jvp(lambda p: asinb(p, b), (a,), (ta,))
    assert_close(t, ta * np.sin(b), rtol=1e-13, atol_scale=1e-15)
    assert calls["jvp_a"] == 1 and calls["jvp_b"] == 0
    _, t = tg.jvp(lambda q: asinb(a, q), (b,), (tb,))
    assert_close(t, tb * a * np.cos(b), rtol=1e-13, atol_scale=1e-15)
    # a Python-scalar / NumPy second input
    _, t = tg.jvp(lambda p: asinb(p, 0.3), (a,), (ta,))
    assert_close(t, ta * np.sin(0.3), rtol=1e-13, atol_scale=1e-15)


def test_custom_jvp_rule_none_for_one_input():
    asinb, _ = make_two_input("a_only")
    a, b = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    _, t = tg.jvp(lambda p: asinb(p, b), (a,), (np.ones(2),))
    assert_close(t, np.sin(b), rtol=1e-14, atol_scale=1e-15)
    with pytest.raises(NotImplementedError, match="asinb"):
        tg.jvp(lambda q: asinb(a, q), (b,), (np.ones(2),))
    # reverse mode is unaffected
    assert_close(tg.jacobian(lambda q: asinb(a, q), b, mode="reverse"), np.diag(a * np.cos(b)), rtol=1e-14)


def test_custom_missing_vjp_rule():
    @tg.custom_op
    def only_fwd(x):
        return 2.0 * x

    only_fwd.defjvp(lambda t, ans, x: 2.0 * t)
    x = np.array([1.0, 2.0])
    # forward mode works
    assert_close(tg.jvp(only_fwd, (x,), (np.ones(2),))[1], np.full(2, 2.0))
    assert_close(tg.jacobian(only_fwd, x, mode="forward"), 2.0 * np.eye(2))
    for call in (
        lambda: tg.grad(lambda v: tg.sum(only_fwd(v)))(x),
        lambda: tg.vjp(only_fwd, x)[1](np.ones(2)),
        lambda: tg.jacobian(only_fwd, x, mode="reverse"),
        lambda: tg.sum(only_fwd(tg.Variable(x, requires_grad=True))).backward(),
    ):
        with pytest.raises(NotImplementedError, match="only_fwd"):
            call()


def test_custom_missing_jvp_rule():
    @tg.custom_op
    def only_rev(x):
        return 2.0 * x

    only_rev.defvjp(lambda g, ans, x: 2.0 * g)
    x = np.array([1.0, 2.0])
    assert_close(tg.grad(lambda v: tg.sum(only_rev(v)))(x), np.full(2, 2.0))
    assert_close(tg.jacobian(only_rev, x, mode="reverse"), 2.0 * np.eye(2))
    for call in (
        lambda: tg.jvp(only_rev, (x,), (np.ones(2),)),
        lambda: tg.directional_derivative(only_rev, x, np.ones(2)),
        lambda: tg.jacobian(only_rev, x, mode="forward"),
    ):
        with pytest.raises(NotImplementedError, match="only_rev"):
            call()


def test_custom_second_order_is_refused_naming_the_op():
    cube = make_cube()
    x = np.array([0.5, -1.0])

    def f(v):
        return tg.sum(cube(v))

    with pytest.raises(NotImplementedError, match="cube"):
        tg.hessian(f, x)
    with pytest.raises(NotImplementedError, match="cube"):
        tg.hvp(f, x, np.ones(2))
    v = tg.Variable(x, requires_grad=True)
    with pytest.raises(NotImplementedError, match="cube"):
        f(v).backward(create_graph=True)
    with pytest.raises(NotImplementedError, match="cube"):
        tg.jacobian(tg.grad(f), x, mode="reverse")
    with pytest.raises(NotImplementedError, match="cube"):
        tg.grad(tg.grad(lambda s: cube(s)))(0.5)
    # first order still works afterwards, and on the same Variable
    assert_close(tg.grad(f)(x), 3 * x ** 2)
    v.grad = None
    f(v).backward()
    assert_close(v.grad, 3 * x ** 2)


class RuleError(Exception):
    pass


def test_custom_rule_raising_propagates_and_tape_still_works():
    state = {"raise": True}

    @tg.custom_op
    def fragile(x):
        return np.sin(x)

    @fragile.defvjp
    def _(g, ans, x):
        if state["raise"]:
            raise RuleError("vjp failed on purpose")
        return g * np.cos(x)

    @fragile.defjvp
    def _(t, ans, x):
        if state["raise"]:
            raise RuleError("jvp failed on purpose")
        return t * np.cos(x)

    x = np.array([0.1, 0.2, 0.3])
    with pytest.raises(RuleError, match="vjp failed"):
        tg.grad(lambda v: tg.sum(fragile(v)))(x)
    with pytest.raises(RuleError, match="jvp failed"):
        tg.jvp(fragile, (x,), (np.ones(3),))
    with pytest.raises(RuleError):
        tg.jacobian(fragile, x, mode="forward", chunk_size=1)
    with pytest.raises(RuleError):
        tg.jacobian(fragile, x, mode="reverse", chunk_size=2)
    # backward: the exception propagates and no .grad is touched
    v = tg.Variable(x, requires_grad=True)
    y = tg.sum(fragile(v) * 2.0 + v)
    with pytest.raises(RuleError):
        y.backward(retain_graph=True)
    assert v.grad is None
    # the same graph and new graphs work once the rule stops raising
    state["raise"] = False
    y.backward()
    assert_close(v.grad, 2 * np.cos(x) + 1, rtol=1e-14)
    assert_close(tg.jacobian(fragile, x, mode="forward"), np.diag(np.cos(x)), rtol=1e-14)
    assert_close(tg.jacobian(fragile, x, mode="reverse"), np.diag(np.cos(x)), rtol=1e-14)
    assert_close(tg.grad(lambda v: tg.sum(tg.tanh(v)))(x), 1 - np.tanh(x) ** 2, rtol=1e-14)


def test_custom_rule_raising_inside_no_grad_and_threads_do_not_break_grad_mode():
    @tg.custom_op
    def bad(x):
        return x * 1.0

    @bad.defvjp
    def _(g, ans, x):
        raise RuleError("boom")

    @bad.defjvp
    def _(t, ans, x):
        raise RuleError("boom")

    x = np.ones(2)
    for _ in range(3):
        with pytest.raises(RuleError):
            tg.jacobian(lambda v: tg.exp(bad(v)), x, mode="forward")
        with pytest.raises(RuleError):
            tg.jacobian(lambda v: tg.exp(bad(v)), x, mode="reverse")
        assert tg.is_grad_enabled()
    with tg.no_grad():
        with pytest.raises(RuleError):
            tg.grad(lambda v: tg.sum(bad(v)))(x)
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_custom_vjp_rule_wrong_shape_is_a_value_error():
    @tg.custom_op
    def badshape(x):
        return x * 2.0

    badshape.defvjp(lambda g, ans, x: np.ones(2))
    badshape.defjvp(lambda t, ans, x: np.ones(2))
    x = np.ones(3)
    with pytest.raises(ValueError, match="badshape"):
        tg.grad(lambda v: tg.sum(badshape(v)))(x)
    with pytest.raises(ValueError, match="badshape"):
        tg.jacobian(badshape, x, mode="reverse")
    with pytest.raises(ValueError, match="badshape"):
        tg.jvp(badshape, (x,), (np.ones(3),))
    with pytest.raises(ValueError, match="badshape"):
        tg.jacobian(badshape, x, mode="forward")

    @tg.custom_op
    def badshape2(x):
        return x.sum(axis=0)

    badshape2.defvjp(lambda g, ans, x: np.ones((4,)))
    with pytest.raises(ValueError, match="badshape2"):
        tg.grad(lambda v: tg.sum(badshape2(v)))(np.ones((2, 2)))
    # the engine is still usable
    assert_close(tg.grad(lambda v: tg.sum(v * v))(x), 2 * x)


@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
@pytest.mark.parametrize("bad", [(1,), ()], ids=_ids)
def test_custom_rule_shape_that_merely_broadcasts_is_refused(engine, bad):
    """A rule result of shape (1,) or () for an input of shape (3,) broadcasts
    to it, but it is a rule that lost an axis: refused like any other wrong
    shape (an un-reduced VJP result, which sums down, stays accepted)."""
    lib = tg if engine == "tapegrad" else tg.reference

    @lib.custom_op
    def lossy(x):
        return x * 2.0

    lossy.defvjp(lambda g, ans, x: np.ones(bad))
    lossy.defjvp(lambda t, ans, x: np.ones(bad))
    x = np.arange(3.0)
    with pytest.raises(ValueError, match="lossy.*shape"):
        lib.grad(lambda v: lib.sum(lossy(v)))(x)
    with pytest.raises(ValueError, match="lossy.*shape"):
        lib.jvp(lossy, (x,), (np.ones(3),))
    with pytest.raises(ValueError, match="lossy.*shape"):
        lib.jacobian(lossy, x, mode="forward")
    with pytest.raises(ValueError, match="lossy.*shape"):
        lib.jacobian(lossy, x, mode="reverse")

    @lib.custom_op
    def unreduced(x):
        return x * 2.0

    unreduced.defvjp(lambda g, ans, x: np.broadcast_to(2.0 * g, (2,) + g.shape) / 2)  # sums back to 2 g
    np.testing.assert_allclose(lib.grad(lambda v: lib.sum(unreduced(v)))(x), 2.0 * np.ones(3))


@pytest.mark.parametrize("n", [2, 3])
def test_custom_vjp_rule_returning_one_array_for_several_inputs_is_a_value_error(n):
    """A rule of a two-input op must return a tuple of two gradients; a bare array (here of
    length 2, like the tuple expected) is a wrong result, not a tuple to iterate over."""

    @tg.custom_op
    def wrong_count(a, b):
        return a + b

    wrong_count.defvjp(lambda g, ans, a, b: g)  # one gradient for two inputs
    with pytest.raises(ValueError, match="wrong_count"):
        tg.grad(lambda p, q: tg.sum(wrong_count(p, q)))(np.ones(n), np.ones(n))
    with pytest.raises(ValueError, match="wrong_count"):
        tg.jacobian(lambda p, q: wrong_count(p, q), (np.ones(n), np.ones(n)), mode="reverse")


def test_custom_op_nested_in_first_order_transforms_of_an_outer_function():
    """A custom op inside f works for jacobian of f (first order), whatever builtin ops surround it."""
    cube = make_cube()
    rng = rng_for("cube-composite")
    x = rng.normal(size=(2, 3))
    W = rng.normal(size=(3, 2))

    def fc(v):
        return tg.log_softmax(tg.matmul(cube(tg.tanh(v)), W), axis=0)[np.array([1, 1, 0])]

    def fb(v):
        return tg.log_softmax(tg.matmul(tg.tanh(v) ** 3, W), axis=0)[np.array([1, 1, 0])]

    for mode in MODES:
        assert_close(tg.jacobian(fc, x, mode=mode), tg.jacobian(fb, x, mode="reverse"), rtol=1e-12,
                     atol_scale=1e-14)
