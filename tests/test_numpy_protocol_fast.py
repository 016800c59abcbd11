"""The C protocols (cpp/bindings/numpy_protocol.cpp) make the call the Python ones would.

``Variable.__array_ufunc__`` / ``__array_function__`` are C methods that make the
common calls themselves and hand the rest to ``tapegrad._numpy_dispatch``'s
``array_ufunc`` / ``array_function``, which define what a call does. Every call
here runs both ways and must give the same value, dtype and recorded op, or the
same exception with the same message.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _numpy_dispatch as nd

from test_numpy_dispatch import CASES, draw, np_object

V = tg.Variable


def python_protocol(obj):
    """obj called through the Python protocol (what the C one falls back to)."""
    if isinstance(obj, np.ufunc):
        return lambda *a, **k: nd.array_ufunc(None, obj, "__call__", *a, **k)
    return lambda *a, **k: nd.array_function(None, obj, (V,), a, k)


def outcome(thunk):
    try:
        r = thunk()
    except Exception as e:  # noqa: BLE001 (the exception is the outcome compared)
        return ("raises", type(e), str(e))
    return result_key(r)


def result_key(r):
    if isinstance(r, V):
        node = r.grad_fn.name if r.grad_fn is not None else None
        return ("Variable", r.dtype, r.shape, r.data.tobytes(), r.requires_grad, node)
    if isinstance(r, (list, tuple)):
        return (type(r), tuple(result_key(x) for x in r))
    if isinstance(r, np.ndarray):
        return ("ndarray", r.dtype, r.shape, r.tobytes())
    return ("other", type(r), r)


def c_protocol(obj):
    """obj called through the C protocol directly (NumPy checks a ufunc's arity before it)."""
    self = V(0.0)
    if isinstance(obj, np.ufunc):
        return lambda *a, **k: V.__array_ufunc__(self, obj, "__call__", *a, **k)
    return lambda *a, **k: V.__array_function__(self, obj, (V,), a, k)


def same_both_ways(obj, *args, through_numpy=True, **kwargs):
    slow = outcome(lambda: python_protocol(obj)(*args, **kwargs))
    fast = outcome(lambda: c_protocol(obj)(*args, **kwargs))
    assert fast == slow, (obj, fast, slow)
    if through_numpy:
        fast = outcome(lambda: obj(*args, **kwargs))
        assert fast == slow, (obj, fast, slow)
    return fast


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_spec_case_same_both_ways(name, dtype):
    call, shapes = CASES[name][:2]
    arrays = draw(name, shapes, dtype)
    vs = [V(a, requires_grad=True) for a in arrays]
    obj = np_object(name)
    fast = outcome(lambda: call(obj, *vs))
    slow = outcome(lambda: call(python_protocol(obj), *vs))
    assert fast == slow
    assert fast[0] != "raises", fast


x23 = np.arange(6.0).reshape(2, 3) - 2.5
NO = np._NoValue

# Calls the C side makes itself and calls it must hand on: renamed arguments, keywords, NumPy's
# "not given", an argument twice, unknown and unsupported arguments, bad values.
FUNCTION_CALLS = [
    ("sum", (0,), {}), ("sum", (0, 1), {}), ("sum", (0,), {"axis": 1}), ("sum", (0,), {"axis": 1, "keepdims": True}),
    ("sum", (0, 1), {"keepdims": True}), ("sum", (0,), {"keepdims": NO}), ("sum", (0, NO), {}),
    ("sum", (0, 1), {"axis": 0}), ("sum", (0,), {"axes": 1}), ("sum", (0,), {"out": None}),
    ("sum", (0,), {"out": np.zeros(3)}), ("sum", (0, 5), {}), ("sum", (0,), {"keepdims": "yes"}),
    ("sum", (0, None, None, None, True), {}), ("sum", (0,), {"dtype": np.float32}), ("sum", (0,), {"initial": 1.0}),
    ("sum", (0,), {"where": True}), ("sum", (0, (0, 1)), {}), ("sum", (0, 2 ** 70), {}), ("sum", (), {"a": 0}),
    ("mean", (0,), {}), ("mean", (0, 0), {"keepdims": False}), ("mean", (0,), {"axis": (0, 1)}),
    ("mean", (0, 0, None), {}), ("mean", (0,), {"keepdims": 1}),
    ("max", (0,), {"axis": -1}), ("amin", (0,), {"keepdims": True}),
    ("var", (0,), {"ddof": 1}), ("var", (0, 1, None, None, 1), {}), ("std", (0,), {"ddof": 1.5, "axis": 0}),
    ("reshape", (0, (3, 2)), {}), ("reshape", (0, -1), {}), ("reshape", (0,), {"shape": (6,)}),
    ("reshape", (0, (4, 2)), {}), ("reshape", (0,), {}), ("reshape", (0, (3, 2), "F"), {}),
    ("reshape", (0, (3, 2)), {"order": "C"}), ("reshape", (0,), {"newshape": (6,)}),
    ("reshape", (0, (3, 2)), {"shape": (6,)}), ("reshape", (0, None), {}),
    ("concatenate", ([0, 0],), {}), ("concatenate", ([0, 0], 1), {}), ("concatenate", ([0, 0],), {"axis": None}),
    ("concatenate", ([0, 0],), {"axis": 2}), ("concatenate", ((0, x23),), {"axis": 0}),
    ("concatenate", ([0, 0],), {"dtype": np.float32}), ("concatenate", ([0, 0],), {"casting": "no"}),
    ("concatenate", (), {"arrays": [0, 0]}),
    ("dot", (0, "T"), {}), ("dot", (0,), {}), ("dot", (0, "T", None), {}), ("dot", (), {"a": 0, "b": "T"}),
    ("dot", (0, 0), {}), ("dot", (0, 2.0), {}),
    ("transpose", (0,), {}), ("transpose", (0, (1, 0)), {}), ("transpose", (0,), {"axes": (0, 1)}),
    ("transpose", (0, (0, 0)), {}),
    ("take", (0, [1, 0]), {"axis": 1}), ("take", (0, [5]), {}), ("take", (0, [0], 0, None, "raise"), {}),
    ("take", (0, [0]), {"mode": "clip"}),
    ("clip", (0, -1, 1), {}), ("clip", (0,), {"a_min": -1, "a_max": None}), ("stack", ([0, 0],), {"axis": 1}),
    ("einsum", ("ij,ij->", 0, 0), {}), ("atleast_2d", (0, 0), {}), ("moveaxis", (0, 0, 1), {}),
    ("squeeze", (0,), {}), ("where", (x23 > 0, 0, 1.0), {}), ("linalg.norm", (0,), {"ord": 2}),
]


def materialize(a, v):
    if isinstance(a, list):
        return [materialize(b, v) for b in a]
    if isinstance(a, tuple):
        return tuple(materialize(b, v) for b in a)
    if isinstance(a, int) and not isinstance(a, bool) and a == 0:
        return v
    if isinstance(a, str) and a == "T":
        return v.T
    return a


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("name,args,kwargs", FUNCTION_CALLS, ids=[f"{n}-{i}" for i, (n, _, _) in
                                                                    enumerate(FUNCTION_CALLS)])
def test_function_calls_same_both_ways(name, args, kwargs, dtype, requires_grad):
    v = V(x23.astype(dtype), requires_grad=requires_grad)
    same_both_ways(np_object(name), *materialize(args, v), **{k: materialize(a, v) for k, a in kwargs.items()})


def test_the_plans_cover_the_common_functions():
    # The functions benchmarks/numpy_dispatch.py measures, and most of the table, are planned calls.
    for name in ("sum", "mean", "dot", "concatenate", "reshape", "transpose", "var", "take"):
        assert np_object(name) in nd._PLANS, name
    assert len(nd._PLANS) >= len(nd._FUNCTIONS) - 8


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ufunc_calls_same_both_ways(dtype):
    v = V(np.array([0.5, -1.0, 2.0], dtype), requires_grad=True)
    w = V(np.array([1.5, 2.0, -0.25], dtype))
    m = V(np.ones((3, 3), dtype))
    a = np.array([1.0, 2.0, 3.0])
    for inputs in [(v, w), (v, 2.0), (v, 3), (2.0, v), (3, v), (v, a), (a, v), (v, True), (v, np.float32(2)),
                   (v, [1.0, 2.0, 3.0]), (v, "x"), (v, None), (v,), (v, w, w)]:
        for uf in (np.add, np.subtract, np.multiply, np.divide, np.power, np.maximum, np.hypot, np.less):
            same_both_ways(uf, *inputs, through_numpy=len(inputs) == 2)
    for inputs in [(m, m), (m, a), (a, m), (m, 2.0), (m,)]:
        same_both_ways(np.matmul, *inputs, through_numpy=len(inputs) == 2)
    for uf in (np.negative, np.exp, np.tanh, np.abs, np.sign, np.isnan, np.positive):
        same_both_ways(uf, v)
        same_both_ways(uf, v, v, through_numpy=False)
    same_both_ways(np.add, v, w, out=np.empty(3))
    same_both_ways(np.exp, v, where=True)
    # methods other than __call__ and ufuncs tapegrad lacks go to the Python protocol
    for method in ("reduce", "accumulate", "outer"):
        fast = outcome(lambda: getattr(np.add, method)(v, v) if method == "outer" else getattr(np.add, method)(v))
        assert fast[0] == "raises" and fast[1] is TypeError and f"np.add.{method}" in fast[2]
    fast = outcome(lambda: np.bitwise_and(v, v))
    assert fast[0] == "raises" and "np.bitwise_and is not implemented" in fast[2]


def test_protocols_called_directly_and_with_keywords():
    v = V([1.0, 2.0])
    assert np.array_equal(v.__array_ufunc__(np.add, "__call__", v, v).data, [2.0, 4.0])
    assert np.array_equal(v.__array_ufunc__(np.negative, "__call__", v).data, [-1.0, -2.0])
    # keywords for the protocol's own arguments: the Python protocol takes them
    assert outcome(lambda: v.__array_ufunc__(np.exp, method="__call__")) == \
        outcome(lambda: nd.array_ufunc(v, np.exp, method="__call__"))
    r = v.__array_function__(func=np.sum, types=(V,), args=(v,), kwargs={})
    assert r.item() == 3.0
    assert v.__array_function__(np.sum, (V,), (v,), None).item() == 3.0
    # another type among the arguments: NotImplemented, as the Python protocol says
    assert v.__array_function__(np.sum, (V, int), (v,), {}) is NotImplemented

    class Other:
        pass
    assert v.__array_function__(np.concatenate, (V, Other), ([v, Other()],), {}) is NotImplemented
    assert v.__array_function__(np.sum, [V], (v,), {}).item() == 3.0  # (a list: the Python protocol)


def test_plan_of_reordered_and_renamed_arguments():
    # NumPy's order differs from tapegrad's after the first argument: only `a` is positional in
    # the plan; keywords map by name; what NumPy requires is np._NoValue (the adapter decides).
    def f(a, keepdims=False, axis=None, *, out=None, shape=NO):
        """np.f stand-in."""

    def g(x, axis=None, keepdims=False, shape=(1,)):
        return (x, axis, keepdims, shape)

    adapter, plan = nd._adapter("f", f, g)
    assert plan == (1, (NO, None, False, (1,)), {"keepdims": 2, "axis": 1, "shape": 3})
    assert adapter(1, True, 0) == g(1, 0, True) and adapter(1, shape=(2,)) == g(1, shape=(2,))

    def h(a, b, c=0):
        """np.h stand-in."""
    assert nd._adapter("h", h, lambda x, c=0, b=1: None)[1] == (1, (NO, 0, NO), {"c": 1, "b": 2})
    assert nd._adapter("h", h, lambda x, b, *, c=0: None)[1] is None  # keyword-only: the adapter only
