"""Sweeps started from inside a custom-op rule (issue 15, "Hang").

A custom-op rule runs with the engine lock released, so it may run nested
sweeps (backward, grad, jvp, jacobian) or wait for another thread's sweep.
Each scenario runs in a subprocess with a timeout: a regression to the old
deadlock fails instead of hanging the suite.
"""

import subprocess
import sys
import textwrap

import pytest

TIMEOUT = 60

PRELUDE = textwrap.dedent("""
    import threading
    import numpy as np
    import tapegrad as tg

    Z0 = np.array([0.3, -0.2, 1.1])
    DTANH = 1 - np.tanh(Z0) ** 2          # d/dz sum(tanh(z))
    seen = []

    def inner(kind):
        # A derivative computed by a sweep of its own, checked against DTANH.
        if kind == "backward":
            with tg.enable_grad():
                z = tg.Variable(Z0, requires_grad=True)
                tg.tanh(z).sum().backward()
            got = np.asarray(z.grad)
        elif kind == "grad":
            got = np.asarray(tg.grad(lambda z: tg.tanh(z).sum())(Z0))
        elif kind == "jvp":
            got = np.array([np.asarray(tg.jvp(lambda z: tg.tanh(z).sum(), (Z0,), (e,))[1])
                            for e in np.eye(3)])
        elif kind == "jacobian":
            got = np.diag(np.asarray(tg.jacobian(tg.tanh, Z0)))
        elif kind == "thread":  # the rule waits for another thread's sweep
            box = {}
            def run():
                with tg.enable_grad():
                    z = tg.Variable(Z0, requires_grad=True)
                    tg.tanh(z).sum().backward()
                box["g"] = np.asarray(z.grad)
            t = threading.Thread(target=run)
            t.start()
            t.join()
            got = box["g"]
        np.testing.assert_allclose(got, DTANH, rtol=1e-12)
        seen.append(kind)

    def make_sq(kind):
        @tg.custom_op
        def sq(x):
            return x ** 2

        @sq.defvjp
        def _(g, ans, x):
            inner(kind)
            return g * 2 * x

        @sq.defjvp
        def _(t, ans, x):
            inner(kind)
            return t * 2 * x

        return sq
""")

INNER = ["backward", "grad", "jvp", "jacobian", "thread"]

OUTER = {
    # outer sweep -> the rule it runs
    "backward": """
        x = tg.Variable(np.array([1.0, -2.0]), requires_grad=True)
        sq(x).sum().backward()
        np.testing.assert_allclose(np.asarray(x.grad), [2.0, -4.0])
    """,
    "grad": """
        g = tg.grad(lambda x: sq(x).sum())(np.array([1.0, -2.0]))
        np.testing.assert_allclose(np.asarray(g), [2.0, -4.0])
    """,
    "jvp": """
        _, t = tg.jvp(lambda x: sq(x), (np.array([1.0, -2.0]),), (np.array([1.0, 1.0]),))
        np.testing.assert_allclose(np.asarray(t), [2.0, -4.0])
    """,
    "jacobian_rev": """
        J = tg.jacobian(sq, np.array([1.0, -2.0]), mode="reverse")
        np.testing.assert_allclose(np.asarray(J), np.diag([2.0, -4.0]))
    """,
    "jacobian_fwd": """
        J = tg.jacobian(sq, np.array([1.0, -2.0]), mode="forward")
        np.testing.assert_allclose(np.asarray(J), np.diag([2.0, -4.0]))
    """,
}


def run(body):
    src = PRELUDE + textwrap.dedent(body) + "\nprint('OK', len(seen))\n"
    try:
        p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("the scenario hung (no result within %d s)" % TIMEOUT)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


@pytest.mark.parametrize("outer", sorted(OUTER))
@pytest.mark.parametrize("kind", INNER)
def test_sweep_inside_rule(kind, outer):
    out = run(f"sq = make_sq({kind!r})\n" + textwrap.dedent(OUTER[outer]))
    n = int(out.split()[-1])
    assert n >= 1  # the rule ran (and its nested sweep was checked)


def test_nested_sweep_over_the_outer_graph():
    # The rule sweeps through nodes the outer sweep is still to visit (h's
    # node, x's accumulator): the outer sweep must re-stamp them afterwards.
    run("""
        x = tg.Variable(np.array([1.0, -2.0, 0.5]), requires_grad=True)
        h = x * 3.0

        @tg.custom_op
        def sq(a):
            return a ** 2

        @sq.defvjp
        def _(g, ans, a):
            with tg.enable_grad():
                (h * 1.0).sum().backward(retain_graph=True)   # adds 3 to x.grad
            seen.append(1)
            return g * 2 * a

        (sq(h).sum() + h.sum()).backward()
        xv = np.array([1.0, -2.0, 0.5])
        np.testing.assert_allclose(np.asarray(x.grad), 18 * xv + 3 + 3)
    """)


def test_rule_errors_still_propagate_and_release_the_lock():
    run("""
        @tg.custom_op
        def bad(x):
            return x * 1.0

        @bad.defvjp
        def _(g, ans, x):
            raise ZeroDivisionError("boom")

        x = tg.Variable(np.ones(2), requires_grad=True)
        try:
            bad(x).sum().backward()
        except ZeroDivisionError:
            pass
        else:
            raise AssertionError("no error")
        # the engine lock was released: other sweeps still run
        y = tg.Variable(np.ones(2), requires_grad=True)
        tg.tanh(y).sum().backward()
        seen.append(1)
    """)


def test_threads_with_custom_ops_still_give_serial_results():
    run("""
        sq = make_sq("grad")
        res = [None] * 4
        def work(i):
            x = tg.Variable(np.arange(1.0, 4.0) * (i + 1), requires_grad=True)
            for _ in range(20):
                x.grad = None
                sq(tg.tanh(x)).sum().backward()
            res[i] = np.asarray(x.grad)
        ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        [t.start() for t in ts]; [t.join() for t in ts]
        for i in range(4):
            xv = np.arange(1.0, 4.0) * (i + 1)
            np.testing.assert_allclose(res[i], 2 * np.tanh(xv) * (1 - np.tanh(xv) ** 2))
    """)
