"""``fit``, ``evaluate`` and ``predict``: the training loop."""
import sys
import time
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

import tapegrad as _tg

from .losses import binary_cross_entropy_with_logits, get_loss

__all__ = ["History", "fit", "evaluate", "predict", "accuracy"]


class History:
    """What :func:`fit` returns: per-epoch metrics, ``history["loss"]`` (also
    ``history.history["loss"]``), ``["accuracy"]``, ``["val_loss"]``,
    ``["val_accuracy"]``, ``["time"]`` (seconds), one entry per epoch;
    ``epochs`` run, ``best_epoch`` and ``stopped_epoch`` (early stopping)."""

    def __init__(self) -> None:
        self.history: dict = {}
        self.epochs = 0
        self.best_epoch: Optional[int] = None  # the epoch (0-based) with the best monitored metric, when tracked
        self.stopped_epoch: Optional[int] = None  # the epoch after which training stopped early, if it did

    def append(self, logs: dict) -> None:
        """Add one epoch's metrics."""
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.epochs += 1

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def last(self, key: str) -> Any:
        """The last epoch's value of metric ``key``."""
        return self.history[key][-1]

    def __repr__(self):
        keys = ", ".join(self.history)
        return f"History(epochs={self.epochs}, metrics=[{keys}])"


def accuracy(outputs, y):
    """Fraction of correct predictions, or None for a regression target.

    Logits ``(N, C)`` with C > 1: argmax against integer labels (or against
    the argmax of probability targets). One logit per sample (``(N,)`` or
    ``(N, 1)``) with integer labels: ``logit > 0`` predicts class 1."""
    y = np.asarray(y)
    c = _batch_accuracy_counts(outputs, y, False)
    return None if c is None else c / len(y)


def _counts_as_classification(loss_fn):
    return loss_fn is binary_cross_entropy_with_logits or getattr(loss_fn, "fn", None) is binary_cross_entropy_with_logits


def _batch_accuracy_counts(out, yb, binary):
    out = np.asarray(out)
    yb = np.asarray(yb)
    if out.ndim == 2 and out.shape[1] > 1:
        if yb.dtype.kind in "iub" and yb.shape == (out.shape[0],):
            return int(np.sum(out.argmax(axis=1) == yb))
        if yb.shape == out.shape:
            return int(np.sum(out.argmax(axis=1) == yb.argmax(axis=1)))
        return None
    if binary or yb.dtype.kind in "iub":
        return int(np.sum((out.reshape(-1) > 0) == (yb.reshape(-1) > 0.5)))
    return None


def _as_input(X, dtype):
    X = np.asarray(X)
    if dtype is not None and X.dtype != dtype:
        X = X.astype(dtype)
    return _tg.Variable(X)


def _model_dtype(model):
    params = model.parameters()
    return params[0].dtype if params else None


def _check_xy(X, y, what):
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"{what}: X has {len(X)} samples but y has {len(y)}")
    if len(X) == 0:
        raise ValueError(f"{what}: no samples")
    return X, y


class _Mode:
    """Temporarily set train/eval mode, restoring the previous per-layer modes."""

    def __init__(self, model, training):
        self.model, self.training = model, training

    def __enter__(self):
        self.saved = [(layer, layer.training) for _, layer in self.model.named_layers()]
        self.model.train(self.training)

    def __exit__(self, *exc):
        for layer, mode in self.saved:
            object.__setattr__(layer, "training", mode)


def predict(model, X, batch_size=None):
    """The model's outputs on ``X`` as a NumPy array (eval mode, ``no_grad``)."""
    X = np.asarray(X)
    dtype = _model_dtype(model)
    n = len(X)
    step = n if batch_size is None else int(batch_size)
    outs = []
    with _Mode(model, False), _tg.no_grad():
        for i in range(0, max(n, 1), max(step, 1)):
            outs.append(np.array(model(_as_input(X[i:i + step], dtype)).data))
    return np.concatenate(outs, axis=0) if len(outs) > 1 else outs[0]


def evaluate(model, X, y, loss, batch_size=None):
    """``{"loss": mean loss, "accuracy": ...}`` on ``(X, y)`` (eval mode, ``no_grad``);
    accuracy only for classification targets."""
    X, y = _check_xy(X, y, "evaluate")
    loss_fn = get_loss(loss)
    out = predict(model, X, batch_size)
    with _tg.no_grad():
        value = float(loss_fn(_tg.Variable(out), y).item())
    result = {"loss": value}
    correct = _batch_accuracy_counts(out, y, _counts_as_classification(loss_fn))
    if correct is not None:
        result["accuracy"] = correct / len(y)
    return result


def _monitor_mode(monitor: str) -> str:
    return "max" if "acc" in monitor else "min"


def _first_samples(X: Any, y: Any, dataset: Any, k: int = 2) -> Tuple[Any, Any]:
    from ..data import _fetch_batch
    if dataset is not None:
        batch = _fetch_batch(dataset, np.arange(min(k, len(dataset))))
        if not isinstance(batch, tuple) or len(batch) != 2:
            raise ValueError("fit: the Dataset's samples must be (x, y) pairs")
        return batch
    return X[:k], y[:k]


def _check_output_shape(model: Any, loss_fn: Any, xb: Any, yb: Any, dtype: Any) -> None:
    """Run the loss on two samples (eval mode, no_grad) so a shape mismatch between the model's outputs
    and the targets raises before training, with the loss's own message, not inside the first batch."""
    with _Mode(model, False), _tg.no_grad():
        loss_fn(model(_as_input(xb, dtype)), yb)


def fit(model: Any, X: Any, y: Any = None, *, loss: Any, optimizer: Any, epochs: int, batch_size: int = 32,
        validation_data: Any = None, progress: bool = True, callbacks: Optional[List[Callable[..., Any]]] = None,
        shuffle: bool = True, seed: int = 0, drop_last: bool = False, scheduler: Any = None, file: Any = None,
        plain: bool = False, monitor: Optional[str] = None, patience: Optional[int] = None, min_delta: float = 0.0,
        restore_best: bool = False, checkpoint: Any = None, scheduler_step: Optional[str] = None,
        distributed: bool = False, initial_epoch: int = 0) -> History:
    """Train ``model`` on ``(X, y)`` with minibatches; returns a :class:`History`.

    ``X, y``: arrays, or ``X`` a ``tapegrad.data.Dataset`` of ``(x, y)``
    samples (``y`` omitted). ``loss``: a loss function/layer or name;
    ``optimizer``: a ``tapegrad.optim`` optimizer over the model's
    parameters. Each epoch shuffles with a generator seeded by ``seed`` (same
    seed, same order). Before the first batch, the loss runs on two samples
    so that a mismatch between the outputs' and the targets' shapes raises
    at once. ``progress=True`` shows a tqdm bar per epoch with the running
    loss and accuracy; ``plain=True`` (or tqdm not installed) prints one
    summary line per epoch instead. Output goes to ``file`` (default stderr).

    ``scheduler`` (optional) is stepped once per epoch (``scheduler_step=
    "epoch"``) or once per batch (``"batch"``, the default for
    ``OneCycleLR``); a ``ReduceLROnPlateau`` is stepped with the monitored
    metric. ``callbacks``: callables ``cb(epoch, logs)`` called after each
    epoch with that epoch's metrics; one returning ``True`` stops training.

    Early stopping and best-model checkpointing watch ``monitor`` (default
    ``"val_loss"`` with validation data, else ``"loss"``; metrics with "acc"
    in their name are maximised, others minimised), improved when it beats
    the best so far by more than ``min_delta``: ``patience`` stops after
    that many epochs without improvement; ``restore_best`` loads the best
    epoch's weights into the model at the end; ``checkpoint`` (a path) is
    written with :func:`save_checkpoint` (model, optimizer, scheduler, and
    ``epoch``/``monitor``/``best`` metadata) at each improvement. The
    history records ``best_epoch`` (0-based) and ``stopped_epoch``.

    ``initial_epoch``: start at that epoch (0-based; e.g. resuming from a
    checkpoint): the batch order is that epoch's, as if the earlier epochs had run.

    ``distributed=True`` (under ``tapegrad.distributed.init()``): each rank
    trains on its ``DistributedSampler`` share of global batches of
    ``size() * batch_size`` samples, with ``optimizer`` a
    ``DistributedOptimizer``; rank 0's parameters and optimizer state are
    broadcast first, the logged metrics are over all ranks, only rank 0
    prints and writes ``checkpoint``, and training stops when a callback on
    any rank says so. The loss must be a per-sample mean (every ``nn`` loss
    is) for the ranks' average to be the global batch's gradient.
    """
    from ..data import DataLoader, _is_dataset
    from ..optim import OneCycleLR, ReduceLROnPlateau
    from .serialization import save_checkpoint

    dataset = None
    if _is_dataset(X):
        if y is not None:
            raise ValueError("fit: give a Dataset alone (its samples are (x, y) pairs), not with y")
        dataset = X
        if len(dataset) == 0:
            raise ValueError("fit: no samples")
    else:
        if y is None:
            raise ValueError("fit: y is missing (give X and y, or a Dataset of (x, y) samples)")
        X, y = _check_xy(X, y, "fit")
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    if scheduler_step is None:
        scheduler_step = "batch" if isinstance(scheduler, OneCycleLR) else "epoch"
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"fit: scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
    if isinstance(scheduler, ReduceLROnPlateau) and scheduler_step == "batch":
        raise ValueError("fit: ReduceLROnPlateau steps once per epoch on the monitored metric")
    track = patience is not None or restore_best or checkpoint is not None or isinstance(scheduler, ReduceLROnPlateau)
    if monitor is None:
        monitor = "val_loss" if validation_data is not None else "loss"
    if track and monitor.startswith("val_") and validation_data is None:
        raise ValueError(f"fit: monitor={monitor!r} needs validation_data")
    if not isinstance(initial_epoch, (int, np.integer)) or not 0 <= initial_epoch <= epochs:
        raise ValueError(f"fit: initial_epoch must be an integer in [0, epochs={epochs}], got {initial_epoch!r}")
    if patience is not None and (not isinstance(patience, (int, np.integer)) or patience < 0):
        raise ValueError(f"fit: patience must be a non-negative integer, got {patience!r}")
    loss_fn = get_loss(loss)
    binary = _counts_as_classification(loss_fn)
    dtype = _model_dtype(model)
    if dataset is None and dtype is not None and X.dtype != dtype:
        X = X.astype(dtype)
    dist = _distributed_setup(model, optimizer) if distributed else None
    loader: DataLoader | _ShardLoader
    if dist is None and initial_epoch == 0:
        loader = DataLoader(X if dataset is None else dataset, y, batch_size=batch_size, shuffle=shuffle, seed=seed,
                            drop_last=drop_last)
    else:  # the sampler's order on one rank is DataLoader's, and it can start at any epoch
        loader = _ShardLoader(X, y, dataset, batch_size, shuffle, seed, drop_last, initial_epoch, dist)
        progress = progress and (dist is None or dist.rank() == 0)
    if validation_data is not None and _is_dataset(validation_data):
        validation_data = _first_samples(None, None, validation_data, len(validation_data))
    if epochs:
        _check_output_shape(model, loss_fn, *_first_samples(X, y, dataset), dtype)
    callbacks = list(callbacks or [])
    tqdm: Any = None
    if progress and not plain:
        try:
            from tqdm.auto import tqdm as _tqdm
            tqdm = _tqdm
        except ImportError:
            tqdm = None
    out_file = file if file is not None else sys.stderr
    history = History()
    mode = _monitor_mode(monitor)
    best, best_state, bad_epochs = None, None, 0
    for epoch in range(int(initial_epoch), int(epochs)):
        t0 = time.perf_counter()
        model.train()
        total_loss, total_correct, seen, counted = 0.0, 0, 0, True
        batches = loader
        bar = None
        if progress and tqdm is not None:
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=True, file=out_file,
                       dynamic_ncols=True, mininterval=0.2)
            batches = bar
        for xb, yb, *weight in batches:
            optimizer.zero_grad()
            nb = len(xb)
            if nb == 0:  # this rank's share of a short last batch is empty: it still joins the reduction
                optimizer.step()
                continue
            out = model(_tg.Variable(xb) if dataset is None else _as_input(xb, dtype))
            value = loss_fn(out, yb)
            (value * weight[0] if weight and weight[0] != 1.0 else value).backward()
            optimizer.step()
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()
            total_loss += float(value.item()) * nb
            seen += nb
            if counted:
                c = _batch_accuracy_counts(out.data, yb, binary)
                if c is None:
                    counted = False
                else:
                    total_correct += c
            if bar is not None:
                post = {"loss": f"{total_loss / seen:.4f}"}
                if counted:
                    post["acc"] = f"{total_correct / seen:.3f}"
                bar.set_postfix(post, refresh=False)
        if dist is not None:  # the epoch's metrics over every rank's samples
            total_loss, total_correct, seen, counted = dist.allreduce(
                np.array([total_loss, total_correct, seen, counted], np.float64), op="sum").tolist()
            total_correct, seen, counted = int(total_correct), int(seen), counted == dist.size()
        logs = {"loss": total_loss / max(seen, 1)}
        if counted:
            logs["accuracy"] = total_correct / max(seen, 1)
        if validation_data is not None:
            val = evaluate(model, validation_data[0], validation_data[1], loss_fn)
            logs.update({"val_" + k: v for k, v in val.items()})
        if track and monitor not in logs:
            raise ValueError(f"fit: monitor={monitor!r} is not a metric of this run (it has {', '.join(logs)})")
        if scheduler is not None and scheduler_step == "epoch":
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(logs[monitor])
            else:
                scheduler.step()
        logs["time"] = time.perf_counter() - t0
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if k != "time"}, refresh=True)
            bar.close()
        elif progress:
            summary = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "time")
            print(f"epoch {epoch + 1}/{epochs}  {summary}  ({logs['time']:.2f} s)", file=out_file)
        history.append(logs)
        stop = False
        if track:
            current = logs[monitor]
            improved = best is None or (current < best - min_delta if mode == "min" else current > best + min_delta)
            if improved:
                best, bad_epochs = current, 0
                history.best_epoch = epoch
                if restore_best:
                    best_state = model.state_dict()
                if checkpoint is not None and (dist is None or dist.rank() == 0):
                    save_checkpoint(checkpoint, model, optimizer, scheduler, epoch=epoch + 1, monitor=monitor,
                                    best=current)
            else:
                bad_epochs += 1
                if patience is not None and bad_epochs > patience:
                    stop = True
        for cb in callbacks:
            if cb(epoch, logs) is True:
                stop = True
        if dist is not None:
            stop = bool(dist.allreduce(int(stop), op="max"))
        if stop:
            history.stopped_epoch = epoch
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def _distributed_setup(model, optimizer):
    from .. import distributed as dist

    if not dist.is_initialized():
        raise RuntimeError("fit(distributed=True): call tapegrad.distributed.init() first")
    if dist.size() > 1 and not isinstance(optimizer, dist.DistributedOptimizer):
        raise TypeError("fit(distributed=True): the optimizer must be a tapegrad.distributed.DistributedOptimizer "
                        f"(got {type(optimizer).__name__}), or the ranks' parameters would drift apart")
    dist.broadcast_parameters(model, root=0)
    dist.broadcast_optimizer_state(optimizer, root=0)
    return dist


class _ShardLoader:
    """``(X, y, weight)`` batches of this rank's share (``tapegrad.data.DistributedSampler``)."""

    def __init__(self, X, y, dataset, batch_size, shuffle, seed, drop_last, initial_epoch, dist):
        from ..data import DistributedSampler

        self.X, self.y, self.dataset = X, y, dataset
        n, r = (1, 0) if dist is None else (dist.size(), dist.rank())
        size = len(X) if dataset is None else len(dataset)
        self.sampler = DistributedSampler(size, batch_size, num_replicas=n, rank=r, shuffle=shuffle, seed=seed,
                                          drop_last=drop_last)
        self.sampler.set_epoch(initial_epoch)

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        from ..data import _fetch_batch

        for idx, weight in self.sampler:
            if self.dataset is None:
                yield self.X[idx], self.y[idx], weight
            else:
                xb, yb = _fetch_batch(self.dataset, idx)
                yield xb, yb, weight
