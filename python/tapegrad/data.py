"""Data sets and batching: ``load_digits``, ``make_moons``, ``make_spirals``,
``train_test_split``, ``Dataset``, ``TensorDataset``, ``DataLoader``, ``load_array_file``.

Everything returns NumPy arrays: features ``X`` as float64 ``(N, D)``,
labels ``y`` as int64 ``(N,)``. Randomness comes from explicit seeds.
"""
import csv
import os
from typing import Any, Iterator, Optional, Sequence, Tuple

import numpy as np

__all__ = ["load_digits", "make_moons", "make_spirals", "train_test_split", "Dataset", "TensorDataset",
           "DataLoader", "load_array_file", "DistributedSampler"]


def load_digits(scale=True):
    """The 8x8 handwritten digits bundled with scikit-learn (1797 samples, 64 features, 10 classes).

    No download: the data ship inside scikit-learn (the optional ``data``
    extra). Features are divided by 16 into [0, 1] when ``scale``."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise ImportError("tapegrad.data.load_digits needs scikit-learn: pip install 'tapegrad[data]' "
                          "(or pip install scikit-learn)") from None
    d = _load()
    X = d.data.astype(np.float64)
    if scale:
        X /= 16.0
    return X, d.target.astype(np.int64)


def _check_n(n_samples, what):
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples <= 0:
        raise ValueError(f"{what}: n_samples must be a positive integer, got {n_samples!r}")
    return int(n_samples)


def make_moons(n_samples=500, noise=0.1, seed=0):
    """Two interleaving half circles (labels 0 and 1), with Gaussian noise of std ``noise``."""
    n = _check_n(n_samples, "make_moons")
    rng = np.random.default_rng(seed)
    n0 = n // 2
    n1 = n - n0
    t0 = np.linspace(0, np.pi, n0)
    t1 = np.linspace(0, np.pi, n1)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1),
                        np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    X = X + rng.normal(0.0, noise, X.shape)
    perm = rng.permutation(n)
    return X[perm], y[perm]


def make_spirals(n_samples=500, noise=0.05, n_classes=2, turns=1.5, seed=0):
    """``n_classes`` interleaved spiral arms in the plane (labels 0..n_classes-1)."""
    n = _check_n(n_samples, "make_spirals")
    if not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"make_spirals: n_classes must be an integer >= 2, got {n_classes!r}")
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % n_classes
    r = np.sqrt(rng.uniform(0.02, 1.0, n))
    theta = r * turns * 2 * np.pi + y * (2 * np.pi / n_classes)
    X = np.stack([r * np.cos(theta), r * np.sin(theta)], 1) + rng.normal(0.0, noise, (n, 2))
    perm = rng.permutation(n)
    return X[perm], y[perm]


def train_test_split(X, y, test_size=0.2, seed=0, stratify=True):
    """Shuffle and split into ``X_train, X_test, y_train, y_test``.

    ``test_size``: a fraction in (0, 1) or a number of samples. ``stratify``
    (for integer labels) keeps each class's proportion in both parts: each
    class contributes round(test_size * its count) test samples."""
    X, y = np.asarray(X), np.asarray(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"train_test_split: X has {n} samples but y has {len(y)}")
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"train_test_split: a fractional test_size must be in (0, 1), got {test_size}")
        frac = test_size
    elif isinstance(test_size, (int, np.integer)) and 0 < test_size < n:
        frac = test_size / n
    else:
        raise ValueError(f"train_test_split: test_size must be a fraction in (0, 1) or a count in [1, {n}), "
                         f"got {test_size!r}")
    rng = np.random.default_rng(seed)
    if stratify and y.dtype.kind in "iub":
        test = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            idx = idx[rng.permutation(len(idx))]
            test.append(idx[:int(round(frac * len(idx)))])
        test = np.sort(np.concatenate(test))
        mask = np.zeros(n, bool)
        mask[test] = True
        train = np.flatnonzero(~mask)
        train = train[rng.permutation(len(train))]
        test = test[rng.permutation(len(test))]
    else:
        perm = rng.permutation(n)
        n_test = int(round(frac * n))
        test, train = perm[:n_test], perm[n_test:]
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"train_test_split: test_size={test_size!r} leaves an empty part for {n} samples")
    return X[train], X[test], y[train], y[test]


class Dataset:
    """Base class of map-style data sets (PyTorch's ``Dataset``): implement ``__len__`` and
    ``__getitem__(i)`` returning one sample, e.g. an ``(x, y)`` tuple of arrays or numbers.

    ``DataLoader`` batches samples by stacking each field; ``nn.fit`` takes a
    Dataset whose samples are ``(x, y)`` pairs in place of ``X, y``."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")


class TensorDataset(Dataset):
    """Arrays with the same first dimension, indexed together: ``ds[i]`` is ``(a[i], b[i], ...)``.

    Batches are taken with one fancy-indexing per array (no per-sample loop)."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: give at least one array")
        for a in arrays:  # a dataset holds values: the graph of a Variable would be lost
            if getattr(a, "requires_grad", False) is True:
                raise TypeError("TensorDataset: an array is a Variable that requires grad; batches are plain "
                                "arrays, so no gradient would reach it: pass v.detach() or v.data")
        self.arrays = tuple(np.asarray(a.data if hasattr(a, "data") and not isinstance(a, np.ndarray) else a)
                            for a in arrays)
        n = len(self.arrays[0]) if self.arrays[0].ndim else -1
        for i, a in enumerate(self.arrays):
            if a.ndim == 0 or len(a) != n:
                raise ValueError(f"TensorDataset: every array needs the same first dimension; array 0 has "
                                 f"shape {self.arrays[0].shape}, array {i} {a.shape}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> Tuple[Any, ...]:
        return tuple(a[index] for a in self.arrays)


def _is_dataset(obj: Any) -> bool:
    return isinstance(obj, Dataset) or (hasattr(obj, "__getitem__") and hasattr(obj, "__len__")
                                        and not isinstance(obj, (np.ndarray, list, tuple, str, bytes))
                                        and not hasattr(obj, "__array__"))


def _collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples field by field (tuples stay tuples)."""
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(np.stack([np.asarray(s[j]) for s in samples]) for j in range(len(first)))
    return np.stack([np.asarray(s) for s in samples])


def _fetch_batch(dataset: Any, idx: np.ndarray) -> Any:
    """The samples ``idx`` of ``dataset`` as stacked arrays (one indexing for a TensorDataset)."""
    if isinstance(dataset, TensorDataset):
        return dataset[idx]
    return _collate([dataset[int(i)] for i in idx])


class DataLoader:
    """Iterate over ``(X_batch, y_batch)`` NumPy minibatches of arrays ``X, y``, or over batches of a
    :class:`Dataset` (each field stacked: ``(x_batch, y_batch)`` for ``(x, y)`` samples).

    ``shuffle``: a new permutation each epoch (each ``iter()``), drawn from a
    generator seeded once with ``seed``, so the sequence of epochs is the same
    for the same seed. ``drop_last`` drops a final incomplete batch."""

    def __init__(self, X: Any, y: Any = None, batch_size: int = 32, shuffle: bool = False, seed: Any = 0,
                 drop_last: bool = False) -> None:
        self.dataset: Optional[Any] = None
        if _is_dataset(X):
            if y is not None:
                raise ValueError("DataLoader: give a Dataset alone (its samples hold the targets), not with y")
            self.dataset = X
            self.X = None
            self.y = None
            self._n = len(X)
        else:
            self.X = np.asarray(X)
            self.y = None if y is None else np.asarray(y)
            self._n = len(self.X)
            if self.y is not None and len(self.y) != len(self.X):
                raise ValueError(f"DataLoader: X has {len(self.X)} samples but y has {len(self.y)}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n, b = self._n, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[Any]:
        n = self._n
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        X, y = self.X, self.y
        for i in range(0, stop, self.batch_size):
            idx = order[i:i + self.batch_size]
            if X is None:
                yield _fetch_batch(self.dataset, idx)
            elif y is None:
                yield X[idx]
            else:
                yield X[idx], y[idx]


def _labels(column, what):
    col = np.asarray(column)
    if col.dtype.kind in "iub":
        return col.astype(np.int64)
    if col.dtype.kind == "f":
        if np.all(np.isfinite(col)) and np.all(col == np.round(col)):
            return col.astype(np.int64)
        return col.astype(np.float64)  # a regression target
    try:
        return _labels(col.astype(np.float64), what)
    except ValueError:
        pass
    # non-numeric strings: map sorted distinct values to 0..K-1
    _, inv = np.unique(col, return_inverse=True)
    return inv.astype(np.int64)


def load_array_file(path, label_column=None):
    """``(X, y)`` from a ``.npz`` (arrays ``X`` and ``y``) or a ``.csv``.

    CSV: numeric feature columns; the label is the last column unless
    ``label_column`` names another (by header name or 0-based index). A
    header row is detected when its first row is not numeric. Integral
    labels become int64 classes; string labels are numbered in sorted
    order; other floats stay a regression target. Raises ``ValueError``
    (or ``FileNotFoundError``) with a one-line message naming the problem."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        if label_column is not None:
            raise ValueError("--label-column applies to CSV files only (an .npz holds arrays X and y)")
        from .nn.serialization import load_arrays
        arrays = load_arrays(path)
        for k in ("X", "y"):
            if k not in arrays:
                raise ValueError(f"{path}: the .npz file has no array {k!r} (it has {sorted(arrays) or 'none'})")
        X, y = np.asarray(arrays["X"]), np.asarray(arrays["y"])
        if X.dtype.kind not in "fiub":
            raise ValueError(f"{path}: X must be numeric, got dtype {X.dtype}")
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise ValueError(f"{path}: X must be 2-D (samples x features), got shape {X.shape}")
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"{path}: y must be 1-D with one label per row of X ({len(X)}), got shape {y.shape}")
        return X.astype(np.float64), _labels(y, path)
    if ext != ".csv":
        raise ValueError(f"{path}: unsupported file type {ext or '(none)'!r}: expected .npz or .csv")
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: cannot read the CSV file ({e})") from None
    if not rows:
        raise ValueError(f"{path}: the CSV file is empty")

    def numeric(row):
        try:
            [float(c) for c in row]
            return True
        except ValueError:
            return False

    header = None if numeric(rows[0]) else [c.strip() for c in rows[0]]
    body = rows[1:] if header else rows
    if not body:
        raise ValueError(f"{path}: the CSV file has a header but no data rows")
    width = len(rows[0])
    for i, r in enumerate(body):
        if len(r) != width:
            raise ValueError(f"{path}: row {i + (2 if header else 1)} has {len(r)} columns, expected {width}")
    if width < 2:
        raise ValueError(f"{path}: the CSV file needs at least one feature column and a label column")
    if label_column is None:
        li = width - 1
    elif header is not None and label_column in header:
        li = header.index(label_column)
    else:
        try:
            li = int(label_column)
        except (TypeError, ValueError):
            li = None
        if li is None or not -width <= li < width:
            names = f" (columns: {', '.join(header)})" if header else f" (it has {width} columns)"
            raise ValueError(f"{path}: label column {label_column!r} not found{names}")
        li %= width
    feats = [j for j in range(width) if j != li]
    try:
        X = np.array([[float(r[j]) for j in feats] for r in body], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: feature columns must be numeric ({e})") from None
    return X, _labels(np.array([r[li].strip() for r in body]), path)


class DistributedSampler:
    """This rank's share of each global batch, for data-parallel training (``tapegrad.distributed``).

    Each epoch permutes the ``n_samples`` indices (a generator seeded once
    with ``seed``, one permutation per epoch: with one rank the order is
    exactly ``DataLoader(shuffle=True, seed=seed)``'s) and cuts them into
    global batches of ``num_replicas * batch_size``; rank ``r`` gets the
    ``r``-th contiguous block of ``batch_size`` of each. The ranks' parts are
    disjoint and cover the epoch. A last, partial global batch of ``m``
    samples is split as evenly as possible (a rank may get none), or dropped
    with ``drop_last``. Iterating yields ``(indices, weight)`` per step:
    ``weight`` (1.0 except on an uneven last batch) is ``num_replicas * k / m``
    for a rank holding ``k`` of the ``m`` samples, so that averaging the ranks'
    ``weight * mean loss`` gradients gives the gradient of the global batch's
    mean loss. Each ``iter()`` is the next epoch; ``set_epoch(e)`` jumps to
    epoch ``e`` (0-based, e.g. when resuming). ``num_replicas`` and ``rank``
    default to ``tapegrad.distributed.size()`` and ``rank()``."""

    def __init__(self, n_samples, batch_size, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        for name, v in (("n_samples", n_samples), ("batch_size", batch_size)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"DistributedSampler: {name} must be a positive integer, got {v!r}")
        if num_replicas is None or rank is None:
            from . import distributed
            num_replicas = distributed.size() if num_replicas is None else num_replicas
            rank = distributed.rank() if rank is None else rank
        if not isinstance(num_replicas, (int, np.integer)) or isinstance(num_replicas, bool) or num_replicas <= 0:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, got {num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or isinstance(rank, bool) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas}), got {rank!r}")
        self.n, self.batch_size = int(n_samples), int(batch_size)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), seed, bool(drop_last)
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Use epoch's shuffle (every rank must set the same epoch before iterating)."""
        if not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"DistributedSampler.set_epoch: epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)
        self._rng = np.random.default_rng(self.seed)
        if self.shuffle:
            for _ in range(self.epoch):  # the same stream as DataLoader: one permutation per epoch
                self._rng.permutation(self.n)

    def __len__(self):
        g = self.num_replicas * self.batch_size
        return self.n // g if self.drop_last else -(-self.n // g)

    def __iter__(self):
        order = self._rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        self.epoch += 1
        g = self.num_replicas * self.batch_size
        for step in range(len(self)):
            batch = order[step * g:(step + 1) * g]
            if len(batch) == g:
                yield batch[self.rank * self.batch_size:(self.rank + 1) * self.batch_size], 1.0
            else:
                part = np.array_split(batch, self.num_replicas)[self.rank]
                yield part, self.num_replicas * len(part) / len(batch)
