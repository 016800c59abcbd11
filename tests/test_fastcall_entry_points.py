"""The raw C entry points of the small-op paths (issue 17): module functions
taking a list or an axis keyword, the reduction/transpose methods, abs(v),
v[key] = value and from_numpy. Each takes its arguments as the spec declares
them (positionally or by keyword) and refuses bad calls with a TypeError
naming the function and the argument, in inspect.Signature.bind's words."""
import inspect

import numpy as np
import pytest

import tapegrad as tg

X = np.arange(12.0).reshape(3, 4) - 5.0

# name, positional call, the same call by keyword, NumPy's value
CALLS = [
    ("add", lambda a: tg.add(a, 2.0), lambda a: tg.add(a=a, b=2.0), lambda x: x + 2.0),
    ("subtract", lambda a: tg.subtract(a, a), lambda a: tg.subtract(b=a, a=a), lambda x: x - x),
    ("multiply", lambda a: tg.multiply(a, 3.0), lambda a: tg.multiply(a=a, b=3.0), lambda x: x * 3.0),
    ("divide", lambda a: tg.divide(a, 2.0), lambda a: tg.divide(a=a, b=2.0), lambda x: x / 2.0),
    ("power", lambda a: tg.power(a, 2.0), lambda a: tg.power(a=a, b=2.0), lambda x: x**2.0),
    ("maximum", lambda a: tg.maximum(a, 0.0), lambda a: tg.maximum(a=a, b=0.0), lambda x: np.maximum(x, 0.0)),
    ("minimum", lambda a: tg.minimum(a, 0.0), lambda a: tg.minimum(a=a, b=0.0), lambda x: np.minimum(x, 0.0)),
    ("arctan2", lambda a: tg.arctan2(a, 2.0), lambda a: tg.arctan2(a=a, b=2.0), lambda x: np.arctan2(x, 2.0)),
    ("matmul", lambda a: tg.matmul(a, a.T), lambda a: tg.matmul(a=a, b=a.T), lambda x: x @ x.T),
    ("sum", lambda a: tg.sum(a, -1, True), lambda a: tg.sum(x=a, keepdims=True, axis=-1),
     lambda x: x.sum(-1, keepdims=True)),
    ("mean", lambda a: tg.mean(a, (0, 1)), lambda a: tg.mean(axis=(0, 1), x=a), lambda x: x.mean()),
    ("max", lambda a: tg.max(a, 0), lambda a: tg.max(a, axis=0), lambda x: x.max(0)),
    ("min", lambda a: tg.min(a), lambda a: tg.min(x=a), lambda x: x.min()),
    ("logsumexp", lambda a: tg.logsumexp(a, 1), lambda a: tg.logsumexp(a, axis=1),
     lambda x: np.log(np.exp(x).sum(1))),
    ("softmax", lambda a: tg.softmax(a, 0), lambda a: tg.softmax(x=a, axis=0),
     lambda x: np.exp(x) / np.exp(x).sum(0)),
    ("log_softmax", lambda a: tg.log_softmax(a), lambda a: tg.log_softmax(x=a, axis=-1),
     lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
    ("transpose", lambda a: tg.transpose(a), lambda a: tg.transpose(x=a, axes=(1, 0)), lambda x: x.T),
    ("concatenate", lambda a: tg.concatenate([a, a]), lambda a: tg.concatenate(arrays=(a, a), axis=0),
     lambda x: np.concatenate([x, x])),
    ("stack", lambda a: tg.stack([a, a], 1), lambda a: tg.stack(arrays=[a, a], axis=1),
     lambda x: np.stack([x, x], 1)),
]


@pytest.mark.parametrize("name,pos,kw,ref", CALLS, ids=[c[0] for c in CALLS])
def test_positional_and_keyword_calls_agree_with_numpy(name, pos, kw, ref):
    a = tg.Variable(X)
    want = ref(X)
    np.testing.assert_allclose(pos(a).data, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kw(a).data, want, rtol=1e-12, atol=1e-12)


FUNCTIONS = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "arctan2", "matmul", "sum",
             "mean", "max", "min", "logsumexp", "softmax", "log_softmax", "transpose", "concatenate", "stack",
             "from_numpy"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_bad_calls_name_the_function_and_argument(name):
    f = getattr(tg, name)
    params = list(inspect.signature(f).parameters)
    first = params[0]
    with pytest.raises(TypeError, match=rf"^{name}\(\): too many positional arguments$"):
        f(*([tg.Variable(X)] * (len(params) + 1)))
    with pytest.raises(TypeError, match=rf"^{name}\(\): got an unexpected keyword argument 'bogus'$"):
        f(tg.Variable(X), bogus=1)
    with pytest.raises(TypeError, match=rf"^{name}\(\): multiple values for argument '{first}'$"):
        f(tg.Variable(X), **{first: tg.Variable(X)})
    with pytest.raises(TypeError, match=rf"^{name}\(\): missing a required argument: '{first}'$"):
        f()


@pytest.mark.parametrize("call,exc,match", [
    (lambda v: tg.sum(v, axis="0"), TypeError, "sum: axis must be an int or a tuple of ints, got str"),
    (lambda v: tg.mean(v, axis=3), ValueError, "mean: axis 3 is out of bounds"),
    (lambda v: tg.max(v, keepdims="no"), TypeError, "max: keepdims must be a bool, got str"),
    (lambda v: tg.min(v, axis=(0, 0)), ValueError, "min: repeated axis"),
    (lambda v: tg.softmax(v, axis=1.0), TypeError, "softmax: axis must be an int, got float"),
    (lambda v: tg.log_softmax(v, axis=5), ValueError, "log_softmax"),
    (lambda v: tg.concatenate(v, axis="a"), TypeError, "concatenate: axis must be an int or None, got str"),
    (lambda v: tg.concatenate(3.0), TypeError, "concatenate: arrays must be a sequence of arrays"),
    (lambda v: tg.concatenate([v, tg.Variable(np.ones(3))]), ValueError, r"concatenate.*\(3, 4\).*\(3,\)"),
    (lambda v: tg.stack([v, "x"]), TypeError, "stack: expected a Variable, an array of real numbers or a Python "
     "number, got str"),
    (lambda v: tg.stack([v, tg.Variable(np.ones(3))]), ValueError, r"stack.*\(3, 4\).*\(3,\)"),
    (lambda v: tg.minimum(v, tg.Variable(np.ones(3))), ValueError, r"minimum.*\(3, 4\).*\(3,\)"),
    (lambda v: tg.subtract(v, None), TypeError, "subtract: expected a Variable"),
    (lambda v: tg.matmul(v, v), ValueError, "matmul"),
    (lambda v: tg.transpose(v, axes=(0,)), ValueError, "transpose"),
    (lambda v: tg.transpose(v, axes="ab"), TypeError, "transpose: axes must be an int or a tuple of ints"),
    (lambda v: tg.from_numpy([1.0, 2.0]), TypeError, "from_numpy: expected a numpy.ndarray, got list"),
    (lambda v: tg.from_numpy(np.arange(3)), TypeError, "from_numpy: the array must have dtype float32 or float64"),
    (lambda v: tg.from_numpy(X.T), ValueError, r"from_numpy: the array of shape \(4, 3\) is not C-contiguous"),
    (lambda v: v.sum(axis=2**64), ValueError, "sum: axis .* is out of range"),
    (lambda v: v.mean(1, "yes"), TypeError, "mean: keepdims must be a bool, got str"),
    (lambda v: v.max(0, False, 1), TypeError, r"^max\(\): too many positional arguments$"),
    (lambda v: v.min(axes=0), TypeError, r"^min\(\): got an unexpected keyword argument 'axes'$"),
    (lambda v: v.transpose(axes=(1, 0)), TypeError, r"^transpose\(\): got an unexpected keyword argument 'axes'$"),
    (lambda v: v.transpose(0, "a"), TypeError, "transpose: axes must contain only ints, got str"),
    (lambda v: v.transpose(0, 0), ValueError, "transpose"),
])
def test_bad_values_keep_their_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call(tg.Variable(X))


def test_methods_take_positional_and_keyword_arguments():
    v = tg.Variable(X)
    np.testing.assert_array_equal(v.sum(1, True).data, X.sum(1, keepdims=True))
    np.testing.assert_array_equal(v.mean(keepdims=True, axis=0).data, X.mean(0, keepdims=True))
    np.testing.assert_array_equal(v.max(axis=None).data, X.max())
    np.testing.assert_array_equal(v.min((0, 1)).data, X.min())
    np.testing.assert_array_equal(v.transpose().data, X.T)
    np.testing.assert_array_equal(v.transpose(None).data, X.T)
    np.testing.assert_array_equal(v.transpose(1, 0).data, X.T)
    np.testing.assert_array_equal(v.transpose([1, 0]).data, X.T)
    assert str(inspect.signature(tg.Variable.sum)) == "(self, /, axis=None, keepdims=False)"
    assert str(inspect.signature(tg.Variable.transpose)) == "(self, /, *axes)"
    assert str(inspect.signature(tg.from_numpy)) == "(array)"


def test_reductions_and_softmax_record_and_differentiate():
    # The C entry points record as the pybind11 ones did: gradients against NumPy's by hand.
    x = tg.Variable(X, requires_grad=True)
    (tg.sum(x, axis=-1) * tg.Variable(np.arange(3.0))).sum().backward()
    np.testing.assert_array_equal(x.grad, np.repeat(np.arange(3.0)[:, None], 4, axis=1))
    x.grad = None
    tg.concatenate([x, x], axis=None).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(X.shape, 2.0))
    x.grad = None
    tg.stack([x, 2.0 * x]).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(X.shape, 3.0))
    x.grad = None
    abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.sign(X))


def test_mean_of_nothing_warns_through_the_c_entry_points():
    e = tg.Variable(np.ones((0, 3)))
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        tg.mean(e, axis=0)
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        e.mean(0)


def test_setitem_slot():
    v = tg.Variable(np.zeros(6))
    v[3] = 0.5
    v[::2] = 1.0
    v[np.array([1])] = 2.0
    v[4:] = np.array([7.0, 8.0])
    np.testing.assert_array_equal(v.data, [1.0, 2.0, 1.0, 0.5, 7.0, 8.0])
    with pytest.raises(TypeError, match="'Variable' object does not support item deletion"):
        del v[0]
    with pytest.raises(IndexError, match="setitem"):
        v[10] = 1.0
    w = tg.Variable(np.zeros(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"setitem: `v\[key\] = value` on a Variable that requires grad"):
        w[0] = 1.0
    with tg.no_grad():
        w[0] = 1.0
    assert w.data[0] == 1.0
    with pytest.raises(ValueError, match="setitem: this Variable shares a read-only NumPy array"):
        ro = np.zeros(3)
        ro.flags.writeable = False
        tg.from_numpy(ro)[0] = 1.0
