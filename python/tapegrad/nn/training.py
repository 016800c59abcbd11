"""``fit``, ``evaluate`` and ``predict``: the training loop."""
import sys
import time

import numpy as np

import tapegrad as _tg

from .losses import binary_cross_entropy_with_logits, get_loss

__all__ = ["History", "fit", "evaluate", "predict", "accuracy"]


class History:
    """Per-epoch metrics: ``history.history["loss"]``, ``["accuracy"]``,
    ``["val_loss"]``, ``["val_accuracy"]``, ``["time"]`` (seconds), one entry per epoch."""

    def __init__(self):
        self.history = {}
        self.epochs = 0

    def append(self, logs):
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.epochs += 1

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def last(self, key):
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


def fit(model, X, y, *, loss, optimizer, epochs, batch_size=32, validation_data=None, progress=True,
        callbacks=None, shuffle=True, seed=0, drop_last=False, scheduler=None, file=None, plain=False,
        distributed=False, initial_epoch=0):
    """Train ``model`` on ``(X, y)`` with minibatches; returns a :class:`History`.

    ``loss``: a loss function/layer or name; ``optimizer``: a
    ``tapegrad.optim`` optimizer over the model's parameters. Each epoch
    shuffles with a generator seeded by ``seed`` (same seed, same order).
    ``progress=True`` shows a tqdm bar per epoch with the running loss and
    accuracy; ``plain=True`` (or tqdm not installed) prints one summary line
    per epoch instead. Output goes to ``file`` (default stderr).
    ``scheduler`` (optional) is stepped once per epoch. ``callbacks``: callables
    ``cb(epoch, logs)`` called after each epoch with that epoch's metrics;
    one returning ``True`` stops training.

    ``initial_epoch``: start at that epoch (0-based; e.g. resuming from a
    checkpoint): the batch order is that epoch's, as if the earlier epochs had run.

    ``distributed=True`` (under ``tapegrad.distributed.init()``): each rank
    trains on its ``DistributedSampler`` share of global batches of
    ``size() * batch_size`` samples, with ``optimizer`` a
    ``DistributedOptimizer``; rank 0's parameters and optimizer state are
    broadcast first, the logged metrics are over all ranks, only rank 0
    prints, and training stops when a callback on any rank says so. The loss
    must be a per-sample mean (every ``nn`` loss is) for the ranks' average
    to be the global batch's gradient.
    """
    from ..data import DataLoader

    X, y = _check_xy(X, y, "fit")
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    if not isinstance(initial_epoch, (int, np.integer)) or not 0 <= initial_epoch <= epochs:
        raise ValueError(f"fit: initial_epoch must be an integer in [0, epochs={epochs}], got {initial_epoch!r}")
    loss_fn = get_loss(loss)
    binary = _counts_as_classification(loss_fn)
    dtype = _model_dtype(model)
    if dtype is not None and X.dtype != dtype:
        X = X.astype(dtype)
    dist = _distributed_setup(model, optimizer) if distributed else None
    if dist is None and initial_epoch == 0:
        loader = DataLoader(X, y, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:  # the sampler's order on one rank is DataLoader's, and it can start at any epoch
        loader = _ShardLoader(X, y, batch_size, shuffle, seed, drop_last, initial_epoch, dist)
        progress = progress and (dist is None or dist.rank() == 0)
    callbacks = list(callbacks or [])
    tqdm = None
    if progress and not plain:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
    out_file = file if file is not None else sys.stderr
    history = History()
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
            out = model(_tg.Variable(xb))
            value = loss_fn(out, yb)
            (value * weight[0] if weight and weight[0] != 1.0 else value).backward()
            optimizer.step()
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
        if scheduler is not None:
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
        for cb in callbacks:
            if cb(epoch, logs) is True:
                stop = True
        if dist is not None:
            stop = bool(dist.allreduce(int(stop), op="max"))
        if stop:
            break
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

    def __init__(self, X, y, batch_size, shuffle, seed, drop_last, initial_epoch, dist):
        from ..data import DistributedSampler

        self.X, self.y = X, y
        n, r = (1, 0) if dist is None else (dist.size(), dist.rank())
        self.sampler = DistributedSampler(len(X), batch_size, num_replicas=n, rank=r, shuffle=shuffle, seed=seed,
                                          drop_last=drop_last)
        self.sampler.set_epoch(initial_epoch)

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        for idx, weight in self.sampler:
            yield self.X[idx], self.y[idx], weight
