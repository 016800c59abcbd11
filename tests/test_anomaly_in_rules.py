"""detect_anomaly() inside VJP and JVP rules: an op a rule calls (subtract's VJP negates g, multiply's
multiplies, sqrt's divides under create_graph) is part of the user's op's backward, so the error names
the op the user called ("the backward of 'subtract'"), with the internal op in parentheses and the
user's line, as the reference engine does (it checks rules' results only); never "the forward of
'negative'" for a - b. The first-order 0-d multiply's fast path is not taken in anomaly mode, so 0-d
and vector products raise the same error."""
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.reference as ref
from test_anomaly import ENGINES, here, quiet_numpy  # noqa: F401  (quiet_numpy: an autouse fixture)


def raised(e, run):
    with e.detect_anomaly():
        with pytest.raises(RuntimeError) as info:
            run()
    return str(info.value)


@pytest.mark.parametrize("e", ENGINES)
@pytest.mark.parametrize("shape", [(), (3,)])
def test_subtract_backward_names_subtract(e, shape):
    a = e.Variable(np.ones(shape), requires_grad=True)
    b = e.Variable(np.ones(shape), requires_grad=True)
    seed = np.full(shape, np.inf)  # -g of an inf cotangent: subtract's VJP negates it
    line = here(); y = a - b  # noqa: E702
    msg = raised(e, lambda: y.backward(seed))
    assert msg.startswith("detect_anomaly: the backward of 'subtract' produced"), msg
    assert "'negative'" not in msg.split(" produced")[0] and "forward of" not in msg, msg
    if e is tg:
        assert "(in its 'negative'" in msg and line not in msg  # recorded before the mode: no line
    assert a.grad is None and b.grad is None


@pytest.mark.parametrize("e", ENGINES)
@pytest.mark.parametrize("shape", [(), (3,)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multiply_backward_overflow_raises_at_every_shape(e, shape, dtype):
    # a * b is 1, its cotangent 1e300 (1e30 in float32): g * b overflows in multiply's VJP. At 0-d the
    # first-order sweep had its own products (h91), which skipped the check mul() makes.
    big = 1e300 if dtype == np.float64 else 1e30
    a = e.Variable(np.full(shape, 1 / big, dtype), requires_grad=True)
    b = e.Variable(np.full(shape, big, dtype), requires_grad=True)

    def run():
        nonlocal line
        line = here(); p = a * b  # noqa: E702
        (p * dtype(big)).sum().backward()
    line = None
    msg = raised(e, run)
    assert msg.startswith("detect_anomaly: the backward of 'multiply' produced"), msg
    assert "forward of" not in msg and line in msg, msg
    assert a.grad is None and b.grad is None


def test_multiply_backward_messages_agree_between_0d_and_vector():
    msgs = []
    for shape in [(), (1,)]:
        a = tg.Variable(np.full(shape, 1e-200), requires_grad=True)
        b = tg.Variable(np.full(shape, 1e200), requires_grad=True)
        y = (a * b) * 1e300
        msgs.append(raised(tg, lambda: y.sum().backward()).replace("(1,)", "()"))
    assert msgs[0] == msgs[1], msgs
    assert "(in its 'multiply'" in msgs[0]


def test_multiply_0d_first_order_bits_unchanged_outside_anomaly_mode():
    # (the fast path still runs outside anomaly mode: the same bits as NumPy's products)
    for dtype in (np.float64, np.float32):
        a = tg.Variable(np.array(0.3, dtype), requires_grad=True)
        b = tg.Variable(np.array(-1.7, dtype), requires_grad=True)
        (a * b * dtype(2.5)).backward()
        assert a.grad.tobytes() == (dtype(2.5) * dtype(-1.7)).tobytes()
        assert b.grad.tobytes() == (dtype(2.5) * dtype(0.3)).tobytes()


def test_create_graph_names_the_users_op():
    # under create_graph sqrt's VJP records g / (2 y), whose division by y = 0 gives inf
    x = tg.Variable(np.array([4.0, 0.0]), requires_grad=True)
    with tg.detect_anomaly():
        line = here(); y = tg.sqrt(x)  # noqa: E702
        with pytest.raises(RuntimeError) as info:
            y.sum().backward(create_graph=True)
    msg = str(info.value)
    assert msg.startswith("detect_anomaly: the backward of 'sqrt' produced 1 inf of 2 values"), msg
    assert "(in its '" in msg and "forward of" not in msg and line in msg, msg


def test_forward_mode_names_the_users_op():
    # multiply's JVP ta * b + a * tb: ta * b overflows inside the rule
    a = np.array([1e-200, 1.0])
    b = np.array([1e200, 1.0])
    with tg.detect_anomaly():
        with pytest.raises(RuntimeError) as info:
            tg.jvp(lambda u, v: u * v, (a, b), (np.array([1e300, 1.0]), np.zeros(2)))
    msg = str(info.value)
    assert msg.startswith("detect_anomaly: the forward-mode JVP of 'multiply' produced"), msg
    assert "forward of" not in msg, msg


def test_engines_name_the_same_op():
    def program(e):
        a = e.Variable(np.array([1.0, 2.0]), requires_grad=True)
        b = e.Variable(np.array([1e-200, 1e-200]), requires_grad=True)
        return (a - b * 1e200) * 1e300  # d/db = -1e300 * 1e200: overflows inside multiply's VJP

    heads = []
    for e in (tg, ref):
        heads.append(raised(e, lambda: program(e).sum().backward()).split(" produced")[0])
    assert heads[0] == heads[1] == "detect_anomaly: the backward of 'multiply'", heads
