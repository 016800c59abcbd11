"""Types for tools: _core.pyi is current and matches the built module, py.typed
ships, and inspect.signature works for every public callable.

Two checks take a minute each and run as steps of .ci/run rather than here:
`python -m mypy` (the examples and tests/typed/test_public_api.py against the
annotations and _core.pyi) and `python -m mypy.stubtest tapegrad._core`
(every name of the built module in the stub and back, with the same
parameters wherever inspect can read them).
"""
import importlib
import inspect
import os
import subprocess
import sys
import types

import pytest

import tapegrad as tg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "python", "tapegrad")
# The modules whose public names are users' API (tapegrad.reference mirrors tapegrad).
PUBLIC_MODULES = ["tapegrad", "tapegrad.functional", "tapegrad.numeric", "tapegrad.gradcheck", "tapegrad.testing",
                  "tapegrad.custom", "tapegrad.symbolic", "tapegrad.reference", "tapegrad.nn", "tapegrad.optim",
                  "tapegrad.data"]


def test_stub_is_current():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "opspec", "stubs.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("where", [PACKAGE, os.path.dirname(tg.__file__)], ids=["source", "installed"])
def test_py_typed_and_stub_are_package_files(where):
    # wheel.packages ships every file of python/tapegrad: the installed package (a wheel's
    # contents under .ci/run's `pip install ".[test]"`) has both.
    assert os.path.isfile(os.path.join(where, "py.typed"))
    assert os.path.isfile(os.path.join(where, "_core.pyi"))


def _public_callables():
    seen = set()
    for modname in PUBLIC_MODULES:
        mod = importlib.import_module(modname)
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for name in names:
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType) or not callable(obj):
                continue
            owner = getattr(obj, "__module__", "") or ""
            if not owner.startswith("tapegrad") or id(obj) in seen:
                continue  # re-exported NumPy or stdlib names
            seen.add(id(obj))
            yield f"{modname}.{name}", obj
            if isinstance(obj, type):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") and attr not in ("__init__", "__call__"):
                        continue
                    if callable(member) or isinstance(member, (staticmethod, classmethod)):
                        yield f"{modname}.{name}.{attr}", getattr(obj, attr)


# Public callables that have no signature because Python cannot call them.
NOT_CALLABLE_FROM_PYTHON = {"tapegrad.Node"}  # made by the engine only: Node() raises TypeError


@pytest.mark.parametrize("name,obj", list(_public_callables()), ids=lambda v: v if isinstance(v, str) else "")
def test_signature(name, obj):
    if name in NOT_CALLABLE_FROM_PYTHON:
        with pytest.raises(TypeError):
            obj()
        return
    inspect.signature(obj)


def test_signatures_of_the_core_say_what_they_take():
    v = tg.Variable([1.0])
    assert str(inspect.signature(tg.Variable)) == "(data, requires_grad=False, dtype=None)"
    assert str(inspect.signature(v.backward)) == "(grad=None, retain_graph=None, create_graph=False)"
    assert str(inspect.signature(tg.from_numpy)) == "(array)"
    assert str(inspect.signature(tg.sum)) == "(x, axis=None, keepdims=False)"
    assert list(inspect.signature(tg.Variable.__add__).parameters) == ["self", "arg1"]
    # the pybind11 signature line is gone from help(), the doc stays
    assert tg.Variable.backward.__doc__.startswith("Reverse sweep")
    # a call that fits no signature still names the function and what it expected
    with pytest.raises(TypeError, match=r"Variable.backward\(\): got an unexpected keyword argument 'foo'"):
        v.backward(foo=1)
