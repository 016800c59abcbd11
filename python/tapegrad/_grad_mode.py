"""Grad mode and anomaly mode switches. The flags live in C++ and are thread-local."""
from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, Callable, Literal, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import Self

_F = TypeVar("_F", bound=Callable[..., Any])

from . import _core


class _GradMode(contextlib.ContextDecorator):
    """Base of no_grad / enable_grad: a context manager and a decorator.

    One instance may be entered re-entrantly and from several threads (a
    decorated function that recurses, or runs in two threads at once): the
    previous states are kept on a per-thread stack.
    """

    _enabled: bool
    _set = staticmethod(_core._set_grad_enabled)  # sets the flag, returns the previous state
    _local: threading.local

    @overload
    def __new__(cls) -> Self: ...
    @overload
    def __new__(cls, func: Callable[..., Any], /) -> Self: ...

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) > 1:
            raise TypeError(f"{cls.__name__}() takes no arguments (or a function to decorate)")
        func = args[0] if args else None
        self = super().__new__(cls)
        self._local = threading.local()
        if func is not None:  # used as a bare decorator: @no_grad
            if not callable(func):
                raise TypeError(f"{cls.__name__}() takes no arguments (or a function to decorate)")
            return self(func)
        return self

    def __init__(self, *args: Callable[..., Any]) -> None:
        pass

    if TYPE_CHECKING:
        # @no_grad() gives the function back with its type. A bare @no_grad
        # also gives the decorated function at run time (see __new__), but mypy
        # cannot spell a __new__ that returns a non-instance: it sees the
        # instance, whose calls (the function's) are the second overload's.
        @overload
        def __call__(self, func: _F, /) -> _F: ...
        @overload
        def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
        def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def __enter__(self) -> Self:
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append(self._set(self._enabled))
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self._set(self._local.stack.pop())
        return False


class no_grad(_GradMode):
    """Context manager and decorator: ops inside record nothing on the tape."""

    _enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator: re-enables recording inside ``no_grad``."""

    _enabled = True


class detect_anomaly(_GradMode):
    """Context manager and decorator: the first op whose forward, backward
    (VJP) or forward-mode (JVP) rule produces NaN or inf raises RuntimeError,
    naming the op, its inputs' shapes and dtypes, and the Python line that
    recorded it. Ops recorded inside keep that line (which costs a little
    per op, so it is kept only in this mode); a backward run inside is
    checked. Per thread, like no_grad."""

    _enabled = True
    _set = staticmethod(_core._set_anomaly_enabled)
