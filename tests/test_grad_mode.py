"""Grad mode: no_grad / enable_grad as context managers and decorators,
nesting, restoring after exceptions, recursion, and thread-locality.

Most tests run on both engines (tapegrad and tapegrad.reference), since
docs/API.md gives them the same semantics.
"""
import threading

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("restore_grad_mode")  # fixtures m and restore_grad_mode: conftest.py


# ---------------------------------------------------------------------------
# Grad mode
# ---------------------------------------------------------------------------
def test_no_grad_context_manager(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    assert m.is_grad_enabled()
    with m.no_grad():
        assert not m.is_grad_enabled()
        y = x * 2
        assert y.requires_grad is False
        assert y.grad_fn is None
        assert y.is_leaf
    assert m.is_grad_enabled()
    z = x * 2
    assert z.requires_grad and z.grad_fn is not None


def test_no_grad_decorator(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)

    @m.no_grad()
    def f(v):
        assert not m.is_grad_enabled()
        return v * 3

    y = f(x)
    assert not y.requires_grad
    assert m.is_grad_enabled()
    assert f.__name__ == "f"


def test_enable_grad_inside_no_grad(m):
    x = m.Variable([1.0, 2.0], requires_grad=True)
    with m.no_grad():
        with m.enable_grad():
            assert m.is_grad_enabled()
            y = x * x
        assert not m.is_grad_enabled()
        z = x * x
    assert y.requires_grad and not z.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])

    @m.enable_grad()
    def g(v):
        return v * 2

    with m.no_grad():
        w = g(x)
        assert not m.is_grad_enabled()
    assert w.requires_grad


def test_grad_mode_restored_after_exception(m):
    with pytest.raises(KeyError):
        with m.no_grad():
            raise KeyError("boom")
    assert m.is_grad_enabled()

    @m.no_grad()
    def f():
        raise ValueError("boom")

    with pytest.raises(ValueError):
        f()
    assert m.is_grad_enabled()


def test_nested_no_grad_restores_each_level(m):
    with m.no_grad():
        with m.no_grad():
            assert not m.is_grad_enabled()
        assert not m.is_grad_enabled()
        with m.enable_grad():
            with m.no_grad():
                assert not m.is_grad_enabled()
            assert m.is_grad_enabled()
        assert not m.is_grad_enabled()
    assert m.is_grad_enabled()


def test_no_grad_decorated_function_can_recurse(m):
    # A decorated function that calls itself (or another function decorated
    # with the same object) must restore the mode of its caller at each level.
    depth_modes = []

    @m.no_grad()
    def f(n):
        depth_modes.append(m.is_grad_enabled())
        if n:
            f(n - 1)

    f(3)
    assert depth_modes == [False] * 4
    assert m.is_grad_enabled(), "grad mode left disabled after a recursive @no_grad() function returned"


def test_same_no_grad_instance_entered_twice(m):
    ctx = m.no_grad()
    with ctx:
        with ctx:
            assert not m.is_grad_enabled()
        assert not m.is_grad_enabled()
    assert m.is_grad_enabled()
    ectx = m.enable_grad()
    with m.no_grad():
        with ectx:
            with m.no_grad():
                with ectx:
                    assert m.is_grad_enabled()
                assert not m.is_grad_enabled()
            assert m.is_grad_enabled()
        assert not m.is_grad_enabled()
    assert m.is_grad_enabled()


def test_grad_mode_is_thread_local(m):
    entered = threading.Event()
    checked = threading.Event()
    results = {}

    def worker_in_no_grad():
        with m.no_grad():
            entered.set()
            checked.wait(10)
            results["worker_mode"] = m.is_grad_enabled()
            results["worker_rg"] = (m.Variable([1.0], requires_grad=True) * 2).requires_grad

    t = threading.Thread(target=worker_in_no_grad)
    t.start()
    try:
        assert entered.wait(10)
        # the other thread is inside no_grad; this one is not affected
        main_mode = m.is_grad_enabled()
        x = m.Variable([1.0, 2.0], requires_grad=True)
        y = x * x
    finally:
        checked.set()
        t.join(10)
    assert main_mode
    assert y.requires_grad
    assert results == {"worker_mode": False, "worker_rg": False}
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])

    # and a new thread starts with grad enabled even if this one is in no_grad
    seen = {}
    with m.no_grad():
        t = threading.Thread(target=lambda: seen.setdefault("mode", m.is_grad_enabled()))
        t.start()
        t.join(10)
    assert seen == {"mode": True}


def test_shared_decorated_function_used_by_two_threads(m):
    # Thread A runs a @no_grad() function; while it is inside, thread B (which
    # is itself inside no_grad) calls the same function. When A's call
    # returns, A must be back to grad enabled.
    @m.no_grad()
    def f(enter, leave):
        enter.set()
        leave.wait(10)

    a_in, a_go = threading.Event(), threading.Event()
    b_in, b_go = threading.Event(), threading.Event()
    out = {}

    def thread_a():
        f(a_in, a_go)
        out["a_after"] = m.is_grad_enabled()

    def thread_b():
        with m.no_grad():
            f(b_in, b_go)
            out["b_inside"] = m.is_grad_enabled()
        out["b_after"] = m.is_grad_enabled()

    ta = threading.Thread(target=thread_a)
    tb = threading.Thread(target=thread_b)
    ta.start()
    try:
        assert a_in.wait(10)
        tb.start()
        assert b_in.wait(10)
        b_go.set()
        tb.join(10)
    finally:
        b_go.set()
        a_go.set()
        ta.join(10)
        if tb.is_alive():
            tb.join(10)
    assert out == {"a_after": True, "b_inside": False, "b_after": True}
