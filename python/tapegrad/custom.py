"""User-defined primitives with their own derivative rules (HIPS autograd style).

    @tapegrad.custom_op
    def cube(x):                 # forward: NumPy arrays in, NumPy array out
        return x ** 3

    @cube.defvjp
    def _(g, ans, x):            # one gradient per input (a tuple for several)
        return g * 3 * x ** 2

    @cube.defjvp
    def _(t, ans, x):            # output tangent contributed by x's tangent
        return t * 3 * x ** 2

Calling ``cube(v)`` records one node on the tape. The C++ sweeps take the
GIL back to run these rules: the only Python that runs inside a sweep.
Rules receive read-only NumPy arrays; ``g`` and ``t`` may carry one extra
leading batch axis (a batch of directions), so write rules that broadcast.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Tuple, TypeVar

import numpy as np

from . import _core
from ._core import Variable
from ._typing import Operand

__all__ = ["custom_op"]

#: A rule: NumPy arrays in (the cotangent or tangent, the output, then the inputs), arrays out.
Rule = Callable[..., Any]
_R = TypeVar("_R", bound=Rule)


class custom_op:
    """A primitive defined by a NumPy forward function and optional VJP/JVP rules."""

    fn: Callable[..., Any]
    name: str
    vjp_rule: Optional[Rule]
    jvp_rules: Optional[Tuple[Optional[Rule], ...]]

    def __init__(self, fn: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = getattr(fn, "__name__", "custom_op")
        self.vjp_rule = None
        self.jvp_rules = None

    def defvjp(self, rule: _R) -> _R:
        """Set the VJP rule ``rule(g, ans, *inputs) -> grad or tuple of grads``."""
        if not callable(rule):
            raise TypeError(f"{self.name}.defvjp: expected a function, got {type(rule).__name__}")
        self.vjp_rule = rule
        return rule

    def defjvp(self, *rules: Optional[Rule]) -> Optional[Rule]:
        """Set the JVP rules: one ``rule(t_i, ans, *inputs)`` per input (None: that input's
        tangent is not supported). With one rule, usable as a decorator."""
        if not rules or not all(r is None or callable(r) for r in rules):
            raise TypeError(f"{self.name}.defjvp: expected one function per input")
        self.jvp_rules = tuple(rules)
        return rules[0]

    def __call__(self, *args: Operand) -> Variable:
        like = next((a.dtype for a in args if isinstance(a, Variable)), None)
        inputs = []
        for a in args:
            if isinstance(a, Variable):
                inputs.append(a)
            else:
                arr = np.asarray(a)
                if arr.dtype.kind not in "fiub":
                    raise TypeError(f"{self.name}: inputs must be real numbers, got dtype {arr.dtype}")
                inputs.append(Variable(arr, dtype=like if np.ndim(a) == 0 and like is not None else None))
        if self.jvp_rules is not None and len(self.jvp_rules) != len(inputs):
            raise ValueError(f"{self.name}: defjvp was given {len(self.jvp_rules)} rules for {len(inputs)} inputs")
        views = [v.numpy() for v in inputs]
        for arr in views:
            arr.setflags(write=False)  # the forward must not change its inputs
        out = np.asarray(self.fn(*views))
        if out.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: the forward function must return real numbers, got dtype {out.dtype}")
        return _core._custom_record(self, inputs, out)

    def __repr__(self) -> str:
        return f"<tapegrad.custom_op {self.name}>"
