"""tapegrad.detect_anomaly(): the first op whose forward, backward or JVP
produces NaN or inf raises RuntimeError naming the op, its inputs and the
Python line that recorded it. Both engines (the reference's is written
independently)."""
import inspect
import threading

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.reference as ref

ENGINES = [pytest.param(tg, id="cpp"), pytest.param(ref, id="reference")]


def here():
    """file:line of the caller (the line a test records an op on)."""
    f = inspect.currentframe().f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}"


@pytest.fixture(autouse=True)
def quiet_numpy():
    with np.errstate(all="ignore"):  # the reference engine computes log(0) with NumPy
        yield


@pytest.mark.parametrize("e", ENGINES)
def test_forward_nan_names_op_inputs_and_line(e):
    x = e.Variable(np.array([1.0, 0.0, 2.0], np.float32), requires_grad=True)
    with e.detect_anomaly():
        assert e.is_anomaly_enabled()
        y = x - 1.0
        with pytest.raises(RuntimeError) as info:
            line = here(); e.log(y)  # noqa: E702
    msg = str(info.value)
    assert "forward of 'log'" in msg and "(3,) float32" in msg and line in msg, msg
    assert "nan" in msg and "inf" in msg
    assert not e.is_anomaly_enabled()


@pytest.mark.parametrize("e", ENGINES)
def test_backward_inf_names_the_op_whose_rule_produced_it(e):
    x = e.Variable(np.array([4.0, 0.0, 1.0]), requires_grad=True)
    with e.detect_anomaly():
        line = here(); y = e.sqrt(x)  # noqa: E702  (finite forward; d sqrt/dx at 0 = inf)
        loss = (y * 2.0).sum()
        with pytest.raises(RuntimeError) as info:
            loss.backward()
    msg = str(info.value)
    assert "backward of 'sqrt'" in msg and "(3,) float64" in msg and line in msg, msg
    assert x.grad is None  # nothing accumulated
    (e.sqrt(x + 1.0) * 2.0).sum().backward()  # the engine is usable; off, no check
    np.testing.assert_allclose(x.grad, 1 / np.sqrt(x.data + 1.0))


@pytest.mark.parametrize("e", ENGINES)
def test_off_by_default_and_nan_flows(e):
    x = e.Variable(np.array([-1.0, 0.0]), requires_grad=True)
    y = e.log(x)
    y.sum().backward()
    assert np.isnan(y.data[0]) and np.isinf(y.data[1])
    assert not e.is_anomaly_enabled()


@pytest.mark.parametrize("e", ENGINES)
def test_graph_recorded_before_the_mode_is_checked_without_a_line(e):
    x = e.Variable(np.array([0.0, 1.0]), requires_grad=True)
    loss = e.sqrt(x).sum()
    with e.detect_anomaly():
        with pytest.raises(RuntimeError, match="backward of 'sqrt'") as info:
            loss.backward()
    assert "before detect_anomaly" in str(info.value)


@pytest.mark.parametrize("e", ENGINES)
def test_forward_mode_jvp_is_checked(e):
    with e.detect_anomaly():
        with pytest.raises(RuntimeError, match="forward-mode JVP of 'sqrt'"):
            e.jvp(lambda v: e.sqrt(v), (np.array([0.0, 1.0]),), (np.array([1.0, 1.0]),))


@pytest.mark.parametrize("e", ENGINES)
def test_decorator_nesting_and_threads(e):
    seen = {}

    @e.detect_anomaly()
    def f():
        seen["in"] = e.is_anomaly_enabled()
        t = threading.Thread(target=lambda: seen.setdefault("thread", e.is_anomaly_enabled()))
        t.start()
        t.join()
        with e.detect_anomaly():
            pass
        seen["after nested"] = e.is_anomaly_enabled()

    f()
    assert seen == {"in": True, "thread": False, "after nested": True}
    assert not e.is_anomaly_enabled()


def test_layer_ops_name_the_users_line_and_the_layer():
    layer = tg.nn.Linear(3, 2)
    layer.weight.data[...] = 1e300  # (a view: no recording)
    with tg.detect_anomaly():
        with pytest.raises(RuntimeError) as info:
            line = here(); layer(tg.Variable(np.full((4, 3), 1e30)))  # noqa: E702
    msg = str(info.value)
    assert line in msg and "layers.py" in msg, msg


def test_custom_op_forward_is_checked():
    @tg.custom_op
    def bad(x):
        return x / 0.0

    bad.defvjp(lambda g, ans, x: g)
    with tg.detect_anomaly():
        with pytest.raises(RuntimeError, match="forward of 'bad'"):
            bad(tg.Variable(np.ones(2), requires_grad=True))


def test_cli_flag(capsys):
    from tapegrad.cli import main
    rc = main(["train", "--lr", "1e30", "--epochs", "1", "--no-check", "--quiet", "--detect-anomaly"])
    err = capsys.readouterr().err
    assert rc == 1 and "detect_anomaly: the forward of" in err and "recorded at" in err, err


def test_engines_raise_for_the_same_op():
    def program(e):
        w = e.Variable(np.array([[1.0, -2.0], [0.5, 3.0]]), requires_grad=True)
        h = e.tanh(w @ e.Variable(np.array([1.0, 1.0])))
        return (e.log(h * h) + e.sqrt(e.relu(h))).sum()

    msgs = []
    for e in (tg, ref):
        with e.detect_anomaly():
            with pytest.raises(RuntimeError) as info:
                program(e).backward()
        msgs.append(str(info.value).split(" produced")[0])
    assert msgs[0] == msgs[1] == "detect_anomaly: the backward of 'sqrt'"


@pytest.mark.parametrize("e", ENGINES)
@pytest.mark.parametrize("setting", ["no_grad", "no input requires grad", "listed inputs", "a list of inputs"])
def test_forward_is_checked_whatever_records(e, setting):
    # Recording (grad mode on, anomaly mode off) is the C++ ops' one-compare
    # path; every other mode byte takes the out-of-line path, which must
    # still record the node and check the forward result, for ops listing
    # their inputs and ops given a list (concatenate).
    x = e.Variable(np.array([1.0, 0.0]), requires_grad=setting != "no input requires grad")
    with e.detect_anomaly():
        if setting == "no_grad":
            with e.no_grad():
                with pytest.raises(RuntimeError, match="forward of 'log'"):
                    e.log(x)
                assert not e.log(x + 1.0).requires_grad
        elif setting == "a list of inputs":
            y = e.concatenate([x, x * 2.0])
            assert y.requires_grad  # the node was recorded on the out-of-line path
            y.sum().backward()
            np.testing.assert_allclose(x.grad, [3.0, 3.0])
            with pytest.raises(RuntimeError, match="forward of 'concat"):
                e.concatenate([x, e.Variable(np.array([np.nan]))])
        else:
            with pytest.raises(RuntimeError, match="forward of 'log'"):
                e.log(x)
            y = e.log(x + 1.0)
            assert y.requires_grad == (setting == "listed inputs")
            if y.requires_grad:
                y.sum().backward()
                np.testing.assert_allclose(x.grad, [0.5, 1.0])
