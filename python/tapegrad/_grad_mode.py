"""Grad-mode switches. The flag itself lives in C++ and is thread-local."""
import contextlib

from . import _core


class _GradMode(contextlib.ContextDecorator):
    _enabled: bool

    def __enter__(self):
        self._prev = _core._set_grad_enabled(self._enabled)
        return self

    def __exit__(self, *exc):
        _core._set_grad_enabled(self._prev)
        return False


class no_grad(_GradMode):
    """Context manager and decorator: ops inside record nothing on the tape."""

    _enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator: re-enables recording inside ``no_grad``."""

    _enabled = True
