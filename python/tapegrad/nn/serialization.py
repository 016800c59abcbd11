"""``save(layer, path)`` / ``load(layer, path)``: parameters as a ``.npz`` of plain arrays.

Arrays only (``allow_pickle=False``); keys are the dotted parameter names of
``named_parameters()``. ``load`` validates the whole file against the model
before writing anything, so a bad file never leaves a half-loaded model.
"""
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["save", "load", "load_arrays", "save_arrays"]


def save_arrays(arrays, path):
    """Write a dict of arrays to ``path`` (.npz) atomically (temp file + rename)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(layer, path):
    """Save ``layer``'s parameters to ``path`` (a ``.npz`` file, arrays only)."""
    save_arrays(layer.state_dict(), path)


def load_arrays(path):
    """Read every array of a ``.npz`` file (no pickle); a clear ``ValueError`` if it is not one."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    try:
        with open(path, "rb") as f:
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            with z:
                return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ValueError(f"load: {path} is not a readable .npz file of arrays ({e})") from None


def load(layer, path, strict=True):
    """Load parameters saved by :func:`save` into ``layer`` (in place).

    Raises ``FileNotFoundError`` (no file), ``ValueError`` (corrupt file,
    mis-shaped parameter) or ``KeyError`` (missing/extra parameter names),
    each naming the file or parameter; nothing is modified on error.
    """
    arrays = load_arrays(path)
    try:
        return layer.load_state_dict(arrays, strict=strict)
    except KeyError as e:
        raise KeyError(f"{e.args[0]} (file {os.fspath(path)})") from None
    except (ValueError, TypeError) as e:
        raise type(e)(f"{e} (file {os.fspath(path)})") from None
