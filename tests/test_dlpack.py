"""DLPack: Variable.__dlpack__ / __dlpack_device__ and tapegrad.from_dlpack, zero-copy with NumPy
and (when installed) PyTorch in both directions; shared memory is proven by writing through one side."""
import gc

import numpy as np
import pytest

import tapegrad as tg

try:
    import torch
except ImportError:  # the PyTorch checks are optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
# NumPy 2.0 imports only unversioned capsules and marks every imported array read-only (2.1+: writable
# unless the producer says read-only): there, sharing is proven by writing through the producer's side.
WRITABLE_IMPORTS = tg._interop._VERSIONED


def write_or_refused(arr, index, value):
    """Write through an imported array; on NumPy 2.0 check that it is read-only instead."""
    if WRITABLE_IMPORTS:
        arr[index] = value
        return True
    assert not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        arr[index] = value
    return False
REFUSED = r"__dlpack__: this Variable requires grad.*v\.data or v\.numpy\(\).*v\.detach\(\)"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_from_variable_shares_memory(dtype):
    v = tg.Variable(np.arange(6.0).reshape(2, 3), dtype=dtype)
    a = np.from_dlpack(v)
    assert a.dtype == dtype and a.shape == (2, 3)
    if write_or_refused(a, (1, 2), -7.0):  # NumPy -> Variable
        assert v.data[1, 2] == -7.0
    with tg.no_grad():
        v *= 2.0                        # Variable (in place) -> NumPy
    assert a[0, 1] == 2.0 and a[1, 2] == v.data[1, 2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_variable_from_numpy_shares_memory(dtype):
    a = np.linspace(0, 1, 5, dtype=dtype)
    v = tg.from_dlpack(a)
    assert isinstance(v, tg.Variable) and v.dtype == dtype and not v.requires_grad
    a[0] = 3.0
    assert v.data[0] == 3.0
    if WRITABLE_IMPORTS:
        with tg.no_grad():
            v += 1.0
        assert a[0] == 4.0
    if not WRITABLE_IMPORTS:            # v is read-only, which an unversioned capsule cannot say
        with pytest.raises(BufferError, match="from_dlpack: .*readonly"):
            tg.from_dlpack(v)
        return
    w = tg.from_dlpack(v)               # Variable -> Variable: the same buffer again
    a[1] = 9.0
    assert w.data[1] == 9.0


def test_imported_variable_differentiates():
    a = np.array([1.0, 2.0, 3.0])
    v = tg.from_dlpack(a)
    v.requires_grad = True
    (v * v).sum().backward()
    np.testing.assert_array_equal(v.grad, 2 * a)
    assert tg.grad(lambda x: (x ** 3).sum())(tg.from_dlpack(a))[1] == 12.0


def test_dlpack_device_and_keywords():
    v = tg.Variable([1.0, 2.0])
    assert tuple(v.__dlpack_device__()) == (1, 0)
    capsule = v.__dlpack__(stream=None, max_version=(1, 0), dl_device=(1, 0), copy=False)
    assert type(capsule).__name__ == "PyCapsule"
    class Copying:                               # a consumer asking for copy=True
        __dlpack_device__ = v.__dlpack_device__

        def __dlpack__(self, **kwargs):
            return v.__dlpack__(copy=True, **kwargs)
    copied, shared = np.from_dlpack(Copying()), np.from_dlpack(v)
    with tg.no_grad():
        v += 100.0
    assert copied[0] == 1.0 and shared[0] == 101.0
    with pytest.raises(ValueError, match="__dlpack__: .*stream must be None"):
        v.__dlpack__(stream=1)
    with pytest.raises(BufferError, match=r"__dlpack__: .*CPU.*device \(2, 0\)"):
        v.__dlpack__(dl_device=(2, 0))
    with pytest.raises(TypeError, match="__dlpack__: copy must be"):
        v.__dlpack__(copy="yes")


def test_refused_for_a_variable_that_requires_grad():
    v = tg.Variable([1.0, 2.0], requires_grad=True)
    for call in (lambda: v.__dlpack__(), lambda: np.from_dlpack(v), lambda: tg.from_dlpack(v)):
        with pytest.raises(TypeError, match=REFUSED):
            call()
    d = np.from_dlpack(v.detach())               # the way out: detach shares the buffer
    v.data[0] = 5.0
    assert d[0] == 5.0
    y = v * 2                                    # a non-leaf on the graph too
    with pytest.raises(TypeError, match=REFUSED):
        np.from_dlpack(y)


def test_read_only_buffers_stay_read_only():
    a = np.arange(4.0)
    a.flags.writeable = False
    if not WRITABLE_IMPORTS:                     # NumPy 2.0 refuses to export it at all
        with pytest.raises(BufferError, match="from_dlpack: .*readonly"):
            tg.from_dlpack(a)
        return
    v = tg.from_dlpack(a)
    assert not v.data.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        with tg.no_grad():
            v += 1.0
    if WRITABLE_IMPORTS:
        back = np.from_dlpack(v)                 # a versioned capsule carries the read-only flag
        assert not back.flags.writeable
        with pytest.raises(ValueError):
            back[0] = 1.0
    with pytest.raises(BufferError):             # an unversioned one cannot: NumPy refuses
        v.__dlpack__()
    np.testing.assert_array_equal(a, np.arange(4.0))


@pytest.mark.parametrize("arr", [np.arange(3), np.arange(3, dtype=np.int32), np.ones(2, dtype=bool),
                                 np.ones(2, dtype=np.complex128), np.ones(2, dtype=np.float16),
                                 np.ones(2, dtype=np.uint8)], ids=lambda a: str(a.dtype))
def test_unsupported_dtypes_name_the_dtype(arr):
    with pytest.raises(TypeError, match=rf"from_dlpack: .*dtype {arr.dtype}.*float32 and float64"):
        tg.from_dlpack(arr)


class _OnDevice:
    """An object on another DLPack device (no GPU here): its capsule must never be asked for."""

    def __init__(self, device):
        self.device = device

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, **kwargs):
        raise AssertionError("from_dlpack asked a non-CPU object for its capsule")


@pytest.mark.parametrize("device", [(2, 0), (2, 1), (10, 0), (13, 0)], ids=["cuda", "cuda1", "rocm", "metal"])
def test_non_cpu_devices_are_refused_naming_the_device(device):
    with pytest.raises(ValueError, match=rf"from_dlpack: .*device \({device[0]}, {device[1]}\).*CPU"):
        tg.from_dlpack(_OnDevice(device))


def test_copy_modes_and_non_contiguous_input():
    a = np.arange(6.0).reshape(2, 3).T           # a strided view
    v = tg.from_dlpack(a)                        # copy=None: shares when it can, copies this one
    np.testing.assert_array_equal(v.data, a)
    with pytest.raises(ValueError, match=r"from_dlpack: .*shape \(3, 2\).*not C-contiguous"):
        tg.from_dlpack(a, copy=False)
    b = np.zeros(3)
    c = tg.from_dlpack(b, copy=True)
    b[0] = 1.0
    assert c.data[0] == 0.0
    with pytest.raises(TypeError, match="from_dlpack: copy must be"):
        tg.from_dlpack(b, copy=1)
    for bad in ([1.0, 2.0], 3.0, "abc", None):
        with pytest.raises(TypeError, match="from_dlpack: expected an object with __dlpack__"):
            tg.from_dlpack(bad)


def test_imported_memory_outlives_the_producer():
    a = np.arange(1000.0)
    v = tg.from_dlpack(a)
    del a
    gc.collect()
    np.testing.assert_array_equal(v.data, np.arange(1000.0))


# ---------------------------------------------------------------------------
# PyTorch (optional)
# ---------------------------------------------------------------------------

@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_from_variable_shares_memory(dtype):
    v = tg.Variable(np.arange(4.0), dtype=getattr(np, dtype))
    t = torch.from_dlpack(v)
    assert t.dtype == getattr(torch, dtype) and t.shape == (4,)
    t[2] = -1.0                              # torch -> Variable
    assert v.data[2] == -1.0
    with tg.no_grad():
        v -= 1.0                             # Variable -> torch
    assert t[0].item() == -1.0


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_variable_from_torch_shares_memory(dtype):
    t = torch.zeros(2, 3, dtype=getattr(torch, dtype))
    v = tg.from_dlpack(t)
    assert v.dtype == getattr(np, dtype) and v.shape == (2, 3)
    t[1, 1] = 4.0                            # torch -> Variable
    assert v.data[1, 1] == 4.0
    if WRITABLE_IMPORTS:
        with tg.no_grad():
            v += 1.0                         # Variable -> torch
        assert t[0, 0].item() == 1.0 and t[1, 1].item() == 5.0
    else:
        assert not v.data.flags.writeable
    del t
    gc.collect()
    assert v.data[1, 1] == (5.0 if WRITABLE_IMPORTS else 4.0)  # the capsule keeps torch's storage alive


@needs_torch
def test_torch_refusals_and_dtypes():
    with pytest.raises(TypeError, match=REFUSED):
        torch.from_dlpack(tg.Variable([1.0], requires_grad=True))
    with pytest.raises(BufferError, match="from_dlpack: .*Tensor.*require"):
        tg.from_dlpack(torch.ones(2, requires_grad=True))
    for dt in (torch.int64, torch.int32, torch.bool, torch.complex64, torch.float16, torch.bfloat16):
        with pytest.raises(TypeError, match=rf"from_dlpack: .*dtype {dt}"):
            tg.from_dlpack(torch.ones(2, dtype=dt))
    t = torch.arange(6.0).reshape(2, 3).T
    np.testing.assert_array_equal(tg.from_dlpack(t).data, t.numpy())
    with pytest.raises(ValueError, match="not C-contiguous"):
        tg.from_dlpack(t, copy=False)


@needs_torch
def test_gradients_agree_after_a_round_trip_through_torch():
    x = torch.linspace(-1, 1, 5, dtype=torch.float64, requires_grad=True)
    (torch.tanh(x) ** 2).sum().backward()
    v = tg.from_dlpack(x.detach())
    g = tg.grad(lambda u: (tg.tanh(u) ** 2).sum())(v)
    np.testing.assert_allclose(g, x.grad.numpy(), rtol=1e-14)
