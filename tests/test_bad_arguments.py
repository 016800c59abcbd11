"""Bad arguments get errors users can read.

Every public function (the op spec's list, ``tapegrad._core.__ops__``, plus
the other public callables of ``dir(tapegrad)``) and every public Variable
method and settable property is called with a catalogue of bad arguments,
one argument at a time, the others valid. A call may succeed (the value
was acceptable after all); if it raises, the error must be a TypeError,
ValueError or IndexError whose message names the function, and never
pybind11's dump of C++ signatures or its cast failures.
"""
import inspect
import types

import numpy as np
import pytest

import tapegrad as tg

FORBIDDEN = ("incompatible function arguments", "incompatible constructor arguments", "Unable to cast",
             "PYBIND11", "The following argument types")


class Opaque:
    pass


BAD = {
    "None": None,
    "str": "abc",
    "bytes": b"ab",
    "int_2_64": 2**64,
    "int_below_int64": -2**63 - 5,
    "int_2_70": 2**70,
    "int_2_2000": 2**2000,
    "float": 1.5,
    "nan": float("nan"),
    "bool": True,
    "np_int": np.int64(2),
    "np_float32": np.float32(2.0),
    "ragged_list": [[1.0, 2.0], [3.0]],
    "nested_empty": [[[]]],
    "mixed_list": [1, "a"],
    "tuple_float": (1, 2.5),
    "str_array": np.array(["a", "b"]),
    "complex_array": np.array([1 + 2j]),
    "object_array": np.array([1, None], dtype=object),
    "dict": {"a": 1},
    "object": Opaque(),
    "function": lambda *a: 0,
    "slice": slice(None),
    "ellipsis": Ellipsis,
    "wrong_shape": tg.Variable(np.ones((2, 2))),
}


def v3():
    return tg.Variable(np.array([0.5, 1.0, 2.0]))


def _f(*xs):  # any number of arguments: a bad primal tuple must not fail inside the user's function
    return sum(tg.sum(tg.tanh(x)) for x in xs)


def _fv(x):
    return tg.tanh(x)


# Valid values by parameter name (functions of the spec and the rest).
def valid(name):
    return {
        "x": v3(), "a": v3(), "b": v3(), "y": v3(), "input": v3(), "data": [0.5, 1.0, 2.0],
        "axis": 0, "axes": None, "keepdims": False, "shape": (3,), "dtype": np.float64,
        "arrays": [v3(), v3()], "condition": [True, False, True], "a_min": 0.0, "a_max": 1.0,
        "weight": tg.Variable(np.ones((3, 2))), "bias": tg.Variable(np.ones(2)),
        "array": np.ones(3), "n": 1, "f": _f, "fun": _f, "func": _f, "primals": (np.ones(3),),
        "tangents": (np.ones(3),), "u": np.ones(3), "v": np.ones(3), "argnums": 0, "mode": "auto",
        "chunk_size": None, "seed": 0, "requires_grad": False, "grad": None, "retain_graph": None,
        "create_graph": False,
    }.get(name, v3())


def spec_functions():
    return sorted(tg._core.__ops__)


OTHER_FUNCTIONS = sorted(
    n for n in dir(tg)
    if not n.startswith("_") and n not in tg._core.__ops__
    and not isinstance(getattr(tg, n), types.ModuleType)
    and callable(getattr(tg, n))
    and not (isinstance(getattr(tg, n), type) and issubclass(getattr(tg, n), BaseException))
)

METHODS = sorted(
    n for n in dir(tg.Variable)
    if not n.startswith("_") and callable(getattr(tg.Variable, n))
) + ["__getitem__", "__array__"]

SETTABLE = ["requires_grad", "grad", "data"]

# Parameters of functions whose signature inspect cannot read (they take any arguments).
SIGNATURES = {
    "gradcheck": ["f", "x"],
}


def params_of(fn, name, method=False):
    if name in SIGNATURES:
        return SIGNATURES[name]
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    out = []
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            out.append("*" + p.name)
            continue
        out.append(p.name)
    return out


OUT_OF_INT64 = {"int_2_64", "int_below_int64", "int_2_70", "int_2_2000"}
# What Python and NumPy say when an int does not fit: such an error must say which argument held it.
INT_CONVERSION_PHRASES = ("too large to convert", "too big to convert", "cannot fit 'int'", "Maximum allowed dimension",
                          "does not fit", "out of range")


def check(call, name, arg=None):
    """Runs call(); an error must be readable and name `name` (and `arg`, the argument given an int that
    does not fit 64 bits, when it is known: "an int that does not fit is an error naming the argument")."""
    try:
        out = call()
        if callable(out) and not isinstance(out, (tg.Variable, type)) and name in ("grad", "value_and_grad"):
            out(np.ones(3))  # the transformed function: the bad argument may surface here
    except (TypeError, ValueError, IndexError) as e:
        msg = str(e)
        for bad in FORBIDDEN:
            assert bad not in msg, f"{name}: pybind11's message leaked: {msg[:300]}"
        assert name.strip("_") in msg or name in msg, f"{name}: the message does not name it: {type(e).__name__}: {msg[:300]}"
        if arg is not None and any(phrase in msg for phrase in INT_CONVERSION_PHRASES):
            assert arg in msg, f"{name}: the message does not name the argument {arg}: {type(e).__name__}: {msg[:300]}"
    except (NotImplementedError, RuntimeError) as e:  # graph misuse is a RuntimeError; still readable
        msg = str(e)
        for bad in FORBIDDEN:
            assert bad not in msg, f"{name}: pybind11's message leaked: {msg[:300]}"
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{name}: {type(e).__name__} is not TypeError/ValueError/IndexError: {str(e)[:300]}")


# A dict of arrays is a valid primal (a pytree) of the derivative operators: not a bad argument there.
PYTREE_PRIMALS = {"x", "v", "u", "primals", "tangents"}
DERIVATIVE_OPERATORS = {"grad", "value_and_grad", "jvp", "vjp", "jacobian", "hessian", "hvp",
                        "directional_derivative"}


def cases():
    out = []
    for name in spec_functions() + OTHER_FUNCTIONS:
        fn = getattr(tg, name)
        ps = params_of(fn, name)
        if ps is None:
            ps = ["*args"]
        positional = [p for p in ps if not p.startswith("*")]
        for i, p in enumerate(positional):
            if "*primals" in ps and i >= ps.index("*primals"):  # vjp(f, *primals, has_aux): passed positionally, a primal
                p = "primals"
            for bad in BAD:
                if bad == "dict" and name in DERIVATIVE_OPERATORS and p in PYTREE_PRIMALS:
                    continue
                out.append(("function", name, i, bad))
        out.append(("function", name, "too_many", None))
        out.append(("function", name, "unknown_kw", None))
    for name in METHODS:
        ps = params_of(getattr(tg.Variable, name), name, method=True) or []
        positional = [p for p in ps if not p.startswith("*")]
        slots = list(range(len(positional))) or ([0] if any(p.startswith("*") for p in ps) else [])
        for i in slots:
            for bad in BAD:
                out.append(("method", name, i, bad))
        out.append(("method", name, "too_many", None))
        out.append(("method", name, "unknown_kw", None))
        out.append(("method", name, "bad_self", None))
    for name in SETTABLE:
        for bad in BAD:
            out.append(("setter", name, 0, bad))
    return out


CASES = cases()


def test_catalogue_is_large():
    # (function, bad argument) pairs; the README states the count.
    assert len(CASES) >= 2000, len(CASES)


@pytest.mark.parametrize("kind,name,slot,bad", CASES,
                         ids=[f"{k}-{n}-{s}-{b}" for k, n, s, b in CASES])
def test_bad_argument_error_is_readable(kind, name, slot, bad):
    threads = tg.get_num_threads()
    try:
        if kind == "setter":
            v = tg.Variable(np.ones(3), requires_grad=True)
            check(lambda: setattr(v, name, BAD[bad]), name)
            return
        if kind == "function":
            fn = getattr(tg, name)
            ps = params_of(fn, name) or []
        else:
            v = v3()
            fn = getattr(v, name)
            ps = params_of(getattr(tg.Variable, name), name, method=True) or []
        positional = [p for p in ps if not p.startswith("*")]
        args = [valid(p) for p in positional]
        if name in ("reshape", "transpose") and kind == "method":
            args = [(3,)] if name == "reshape" else []
        if slot == "too_many":
            check(lambda: fn(*(args + [v3()] * 5)), name)
        elif slot == "unknown_kw":
            check(lambda: fn(*args, no_such_argument=1), name)
        elif slot == "bad_self":
            check(lambda: getattr(tg.Variable, name)(Opaque(), *args), name)
        else:
            if slot < len(args):
                args[slot] = BAD[bad]
            else:
                args.append(BAD[bad])
            check(lambda: fn(*args), name, positional[slot] if bad in OUT_OF_INT64 and slot < len(positional) else None)
    finally:
        tg.set_num_threads(threads)
