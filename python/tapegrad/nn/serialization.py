"""``save(layer, path)`` / ``load(layer, path)``: parameters as a ``.npz`` of plain arrays;
``save_checkpoint`` / ``load_checkpoint``: model, optimizer, scheduler and metadata in one such file.

Arrays only (``allow_pickle=False``); keys are the dotted parameter names of
``named_parameters()``. ``load`` validates the whole file against the model
before writing anything, so a bad file never leaves a half-loaded model.
"""
import json
import os
import tempfile
import zipfile
from typing import Any, Dict, Mapping

import numpy as np

from .._core import Variable

__all__ = ["save", "load", "load_arrays", "save_arrays", "save_checkpoint", "load_checkpoint"]


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


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints: model + optimizer + scheduler + metadata in one .npz of arrays
# ---------------------------------------------------------------------------------------------------------------
# The optimizer's and scheduler's state_dict()s are nested dicts/lists of numbers, strings, tuples and
# arrays. Arrays go into the archive under their path ("optimizer/state/3/exp_avg"); everything else
# goes into one JSON document ("__checkpoint__", a unicode array) in which each array is a reference
# {"__array__": key}. So the file stays arrays only (np.load with allow_pickle=False reads it) and
# floats round-trip exactly (JSON writes Python's shortest round-tripping repr).
_FORMAT = "tapegrad-checkpoint-1"


def _encode(obj: Any, key: str, arrays: Dict[str, np.ndarray]) -> Any:
    if isinstance(obj, np.ndarray):
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, Variable):
        arrays[key] = np.array(obj.data, copy=True)
        return {"__array__": key}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"save_checkpoint: {key}: keys must be strings, got {bad[0]!r}")
        return {"__dict__": {k: _encode(v, f"{key}/{k}", arrays) for k, v in obj.items()}}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(obj)]
    if isinstance(obj, (np.bool_, np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"save_checkpoint: {key} is a {type(obj).__name__}; a checkpoint holds only arrays, "
                    f"numbers, strings, None, lists, tuples and dicts with string keys")


def _decode(doc: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(doc, list):
        return [_decode(v, arrays) for v in doc]
    if isinstance(doc, dict):
        if "__array__" in doc:
            if doc["__array__"] not in arrays:
                raise ValueError(f"load_checkpoint: array {doc['__array__']!r} is missing from the file")
            return arrays[doc["__array__"]]
        if "__tuple__" in doc:
            return tuple(_decode(v, arrays) for v in doc["__tuple__"])
        return {k: _decode(v, arrays) for k, v in doc["__dict__"].items()}
    return doc


def save_checkpoint(path: Any, model: Any, optimizer: Any = None, scheduler: Any = None, **meta: Any) -> None:
    """Save a training checkpoint to ``path`` (a ``.npz`` of arrays only, written atomically).

    It holds ``model.state_dict()`` (parameters and buffers), and, when given,
    ``optimizer.state_dict()`` (hyper-parameters per group, step counts,
    moment buffers), ``scheduler.state_dict()`` and ``meta`` (epoch, metrics,
    arrays, ...: numbers, strings, arrays, lists, tuples, dicts). Nothing
    depends on the process that wrote it, so any number of processes can
    resume from it with :func:`load_checkpoint`.
    """
    arrays: Dict[str, np.ndarray] = {}
    for name, arr in model.state_dict().items():
        arrays["model/" + name] = arr
    doc: Dict[str, Any] = {"format": _FORMAT, "model": list(model.state_dict().keys())}
    if optimizer is not None:
        doc["optimizer"] = _encode(optimizer.state_dict(), "optimizer", arrays)
    if scheduler is not None:
        doc["scheduler"] = _encode(scheduler.state_dict(), "scheduler", arrays)
    doc["meta"] = _encode(dict(meta), "meta", arrays)
    arrays["__checkpoint__"] = np.array(json.dumps(doc))
    save_arrays(arrays, path)


def load_checkpoint(path: Any, model: Any, optimizer: Any = None, scheduler: Any = None,
                    strict: bool = True) -> Dict[str, Any]:
    """Restore a :func:`save_checkpoint` file into ``model`` (and ``optimizer``, ``scheduler``); returns the meta dict.

    Build the model, optimizer and scheduler as for a fresh run, then load:
    everything is validated and nothing is left half-loaded on error
    (``FileNotFoundError``, ``ValueError`` for a bad file or shape,
    ``KeyError`` for missing/extra parameter names). Asking for an optimizer
    or scheduler state the file does not hold raises ``ValueError``.
    """
    arrays = load_arrays(path)
    where = f"(file {os.fspath(path)})"
    if "__checkpoint__" not in arrays:
        raise ValueError(f"load_checkpoint: {os.fspath(path)} is not a checkpoint (no '__checkpoint__' entry; "
                         f"a file from nn.save loads with nn.load)")
    try:
        doc = json.loads(str(arrays["__checkpoint__"]))
    except ValueError as e:
        raise ValueError(f"load_checkpoint: the checkpoint description is corrupt ({e}) {where}") from None
    if doc.get("format") != _FORMAT:
        raise ValueError(f"load_checkpoint: unknown checkpoint format {doc.get('format')!r} {where}")
    for what, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None and what not in doc:
            raise ValueError(f"load_checkpoint: the file holds no {what} state {where}")
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    saved_model = model.state_dict()
    saved_opt = optimizer.state_dict() if optimizer is not None else None
    saved_sched = scheduler.state_dict() if scheduler is not None else None
    try:
        model.load_state_dict(model_state, strict=strict)
        if optimizer is not None:
            optimizer.load_state_dict(_decode(doc["optimizer"], arrays))
        if scheduler is not None:
            scheduler.load_state_dict(_decode(doc["scheduler"], arrays))
    except BaseException as e:
        # put back what was already loaded, so an error never leaves a half-restored run
        model.load_state_dict(saved_model)
        if saved_opt is not None:
            optimizer.load_state_dict(saved_opt)
        if saved_sched is not None:
            scheduler.load_state_dict(saved_sched)
        if isinstance(e, KeyError):
            raise KeyError(f"{e.args[0]} {where}") from None
        if isinstance(e, (ValueError, TypeError)):
            raise type(e)(f"{e} {where}") from None
        raise
    return _decode(doc["meta"], arrays)
