"""Python-facing parts of the C++ ``Variable`` written in Python: repr, formatting, pickling, DLPack.
NumPy's protocols are in _numpy_dispatch.py."""
from typing import Any, Optional

import numpy as np

from . import _core


def _repr(self: _core.Variable) -> str:
    body = np.array2string(self.data, separator=", ", prefix="Variable(")
    extra = f", dtype={self.dtype}"
    if self.grad_fn is not None:
        extra += f", grad_fn={self.grad_fn.name}"
    elif self.requires_grad:
        extra += ", requires_grad=True"
    return f"Variable({body}{extra})"


def _format(self, spec):
    # f"{loss:.4f}": a 0-d Variable formats as its number (as a 0-d ndarray does)
    if not spec:
        return str(self)
    if self.ndim != 0:
        raise TypeError(f"unsupported format string {spec!r} for a Variable of shape {self.shape} "
                        "(only 0-d Variables format as numbers)")
    return format(self.item(), spec)


def _round(self, ndigits=None):
    if ndigits is None:  # round(v): a Python int, as round(np.float64(x))
        return round(_core.Variable.__float__(self)) if self.ndim == 0 else int(self)
    from . import round as round_
    return round_(self, ndigits)


def _reduce(self):
    # copy, deepcopy and pickle: (class, (a copy of the data, requires_grad)); never the graph,
    # the gradient or a shared buffer. For in-process use: pickle is unsafe on untrusted
    # files, and nn.save (.npz, allow_pickle=False) stays the file format.
    return _core.Variable, (self.data.copy(), self.requires_grad)


for _name, _fn in {"__reduce__": _reduce, "__format__": _format, "__round__": _round,
                  "__repr__": _repr, "__str__": _repr}.items():
    setattr(_core.Variable, _name, _fn)  # (_core.pyi declares them on Variable; tolist is C++: variable.cpp)


# ----- DLPack: zero-copy exchange with NumPy, PyTorch, JAX ... through NumPy's own exporter and importer
# over the buffer .data already shares, so the C++ side needs nothing.

_KDLCPU = 1  # DLPack's device type for host memory
# NumPy 2.1 added versioned capsules (max_version, dl_device, copy), which carry a read-only flag;
# NumPy 2.0 exports and imports only unversioned ones, and marks every array it imports read-only.
_VERSIONED = "max_version" in (np.ndarray.__dlpack__.__doc__ or "")


def _dlpack(self, *, stream=None, max_version=None, dl_device=None, copy=None):
    if self.requires_grad:  # as __array__: an array made from a graph would silently lose the gradient
        raise TypeError(
            "__dlpack__: this Variable requires grad, and an array made from it (np.from_dlpack, "
            "torch.from_dlpack ...) would drop the graph (a silent wrong gradient). Use v.data or v.numpy() "
            "for its values, v.detach() for a Variable outside the graph.")
    if stream is not None:
        raise ValueError(f"__dlpack__: a tapegrad Variable lives on the CPU, where stream must be None, got {stream!r}")
    if dl_device is not None and tuple(dl_device) != (_KDLCPU, 0):
        raise BufferError(f"__dlpack__: a tapegrad Variable lives on the CPU (device (1, 0)); cannot export it "
                          f"to device {tuple(dl_device)}")
    if copy is not None and not isinstance(copy, (bool, np.bool_)):
        raise TypeError(f"__dlpack__: copy must be True, False or None, got {type(copy).__name__}")
    arr = self.data.copy() if copy else self.data
    if max_version is None or not _VERSIONED:  # an unversioned capsule (NumPy refuses a read-only buffer there)
        return arr.__dlpack__()
    return arr.__dlpack__(max_version=max_version)


def _dlpack_device(self):
    """(device type, device id) of the buffer, as DLPack names it: (kDLCPU, 0)."""
    return self.data.__dlpack_device__()


_dlpack.__doc__ = """A DLPack capsule sharing this Variable's buffer (no copy unless copy=True), for
np.from_dlpack, torch.from_dlpack and other consumers. Refused (TypeError) for a Variable that
requires grad; use v.detach(), which shares the buffer outside the graph."""

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def from_dlpack(x: Any, /, *, copy: Optional[bool] = None) -> _core.Variable:
    """A Variable sharing the memory of ``x``, any object with ``__dlpack__`` (a NumPy array, a
    PyTorch tensor, a JAX array, another Variable): writes through one show in the other.

    ``x`` must be a float32 or float64 C-contiguous array on the CPU (a read-only buffer stays
    read-only; with NumPy 2.0, which imports through unversioned capsules, every import is read-only). ``copy=True`` copies; ``copy=None`` (default) shares, copying only a
    non-contiguous array; ``copy=False`` never copies (a non-contiguous array is then a ValueError).
    """
    if not hasattr(x, "__dlpack__") or not hasattr(x, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ and __dlpack_device__ (an array or "
                        f"tensor), got {type(x).__name__}")
    if copy is not None and not isinstance(copy, (bool, np.bool_)):
        raise TypeError(f"from_dlpack: copy must be True, False or None, got {type(copy).__name__}")
    device = tuple(x.__dlpack_device__())
    if int(device[0]) != _KDLCPU:
        raise ValueError(f"from_dlpack: tapegrad works on the CPU, but this {type(x).__name__} is on DLPack device "
                         f"{device} (type {int(device[0])}, not kDLCPU=1); move it to the CPU first")
    dtype = getattr(x, "dtype", None)
    try:
        arr = np.from_dlpack(x)
    except BufferError as e:  # the producer refused (a tensor that requires grad, a read-only one ...)
        raise BufferError(f"from_dlpack: cannot import this {type(x).__name__}: {e}") from None
    except (RuntimeError, ValueError) as e:  # a dtype NumPy lacks (bfloat16 ...)
        raise TypeError(f"from_dlpack: cannot import this {type(x).__name__}"
                        + ("" if dtype is None else f" of dtype {dtype}")
                        + f"; tapegrad shares only float32 and float64 buffers ({e})") from None
    if arr.dtype not in _FLOATS:
        raise TypeError(f"from_dlpack: the {type(x).__name__} has dtype {dtype if dtype is not None else arr.dtype}; "
                        f"tapegrad shares only float32 and float64 buffers (convert with .astype first, or use "
                        f"tapegrad.Variable(np.from_dlpack(x)) to copy)")
    if copy or (copy is None and not arr.flags.c_contiguous):
        arr = np.array(arr, order="C")
    elif not arr.flags.c_contiguous:
        raise ValueError(f"from_dlpack: the {type(x).__name__} of shape {arr.shape} and strides {arr.strides} is "
                         "not C-contiguous, so its memory cannot be shared (copy=False); pass copy=None to copy it")
    return _core.from_numpy(arr)


for _name, _fn in {"__dlpack__": _dlpack, "__dlpack_device__": _dlpack_device}.items():
    setattr(_core.Variable, _name, _fn)
