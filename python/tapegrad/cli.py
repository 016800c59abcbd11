"""The ``tapegrad`` command line: ``tapegrad train`` (also ``python -m tapegrad train``).

``tapegrad train`` trains an MLP (by default on the scikit-learn digits, 8x8
images of handwritten digits): it first cross-checks the gradients of one
batch three ways (C++ engine, pure-NumPy reference engine, central finite
differences), then trains (with a progress bar on a terminal) and prints
train/test accuracy and the time per epoch. Exit status: 0 on success, 1 if the gradient check
fails, 2 on bad arguments or unreadable data (a one-line message).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time

import numpy as np
from typing import IO, Any, Callable, Optional, Sequence

ACTIVATION_CHOICES = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu")
# The defaults (--hidden, --optimizer, --lr, --epochs, --batch-size, --weight-decay, --label-smoothing) were
# chosen on a validation split of the digits training set by benchmarks/tune_train.py (benchmarks/README.md).
DEFAULT_LR = {"sgd": 0.1, "adam": 0.002}


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" where there is a value to show: not for None (an off option or a default that the
    help text explains) nor for flags that are off unless given."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}") from None
    if not (v >= 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return v


def _fraction(text: str) -> float:
    v = _non_negative_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return v


def parse_hidden(text: str) -> list[int]:
    """"64,64" -> [64, 64]; "" or "none" -> [] (a linear model)."""
    text = text.strip()
    if text == "" or text.lower() == "none":
        return []
    sizes = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = int(part)
        except ValueError:
            v = 0
        if v <= 0 or not part.isdigit():
            raise argparse.ArgumentTypeError(
                f"hidden sizes must be comma-separated positive integers (e.g. 64,64), got {text!r}")
        sizes.append(v)
    return sizes


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="tapegrad", description="tapegrad: automatic differentiation on the CPU.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    t = sub.add_parser("train", help="train an MLP (default: the digits data set), after a 3-way gradient check",
                       description=__doc__.split("\n\n")[1], formatter_class=_DefaultsFormatter)
    t.add_argument("--data", default="digits",
                   help="digits | moons | spirals | PATH.npz (arrays X and y) | PATH.csv (label: last column)")
    t.add_argument("--label-column", default=None, help="CSV label column (header name or 0-based index)")
    t.add_argument("--hidden", type=parse_hidden, default="128,64", help="hidden layer sizes, comma-separated ('none': a linear model)")
    t.add_argument("--activation", choices=ACTIVATION_CHOICES, default="relu", help="hidden-layer activation")
    t.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="sgd (momentum 0.9) or adam; the learning rate follows a cosine schedule")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help=f"learning rate (default {DEFAULT_LR['sgd']} for sgd, {DEFAULT_LR['adam']} for adam)")
    t.add_argument("--epochs", type=_positive_int, default=25, help="passes over the training set")
    t.add_argument("--batch-size", type=_positive_int, default=32, help="samples per optimizer step")
    t.add_argument("--seed", type=_non_negative_int, default=0,
                   help="seeds the train/test split, the initial weights and the batch order")
    t.add_argument("--test-size", type=float, default=0.2, help="fraction held out (stratified)")
    t.add_argument("--weight-decay", type=_non_negative_float, default=1e-4, help="L2 weight decay")
    t.add_argument("--label-smoothing", type=_fraction, default=0.1, help="cross-entropy label smoothing")
    t.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="scale each feature to mean 0, std 1 with the training set's statistics (default: file "
                        "data only; digits, moons and spirals come scaled)")
    t.add_argument("--validate", metavar="FRACTION", type=_fraction, default=0.0,
                   help="hold out this fraction of the TRAINING set and report accuracy on it instead of the "
                        "test set (for choosing hyper-parameters; 0: evaluate on the test set)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="training precision (the gradient check always runs in float64)")
    t.add_argument("--save", metavar="PATH.npz", default=None, help="save the trained parameters")
    t.add_argument("--plot", metavar="PATH.png", default=None, help="plot loss/accuracy curves (matplotlib)")
    t.add_argument("--no-check", action="store_true", help="skip the gradient cross-check")
    t.add_argument("--detect-anomaly", action="store_true",
                   help="stop at the first op whose forward or backward gives NaN or inf, naming it and its line")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar per epoch (on stderr); --no-progress: one line per epoch instead "
                        "(default: a bar only when stderr is a terminal)")
    t.add_argument("--quiet", action="store_true", help="no per-epoch output at all")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel on MPI (run under mpiexec -n N; needs mpi4py): each rank trains on its share "
                        "of global batches of N x --batch-size, rank 0 prints the log and writes the files")
    t.add_argument("--checkpoint", metavar="PATH.npz", default=None,
                   help="write model, optimizer, schedule and epoch after every epoch (rank 0)")
    t.add_argument("--resume", metavar="PATH.npz", default=None,
                   help="continue from a --checkpoint file (on any number of ranks)")
    return parser


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def load_data(name, label_column, seed):
    """(X, y, description) for --data; raises CLIError for anything the user got wrong."""
    from . import data

    if label_column is not None and not name.lower().endswith(".csv"):
        raise CLIError("--label-column applies to CSV data only")
    if name == "digits":
        try:
            X, y = data.load_digits()
        except ImportError as e:
            raise CLIError(str(e)) from None
        return X, y, "digits (8x8 handwritten digits from scikit-learn)"
    if name == "moons":
        X, y = data.make_moons(1000, noise=0.15, seed=seed)
        return X, y, "moons (synthetic, 1000 points)"
    if name == "spirals":
        X, y = data.make_spirals(1000, noise=0.05, seed=seed)
        return X, y, "spirals (synthetic, 1000 points)"
    if not name.lower().endswith((".npz", ".csv")):
        raise CLIError(f"unknown data set {name!r}: expected digits, moons, spirals, or a path to a .npz or .csv file")
    try:
        X, y = data.load_array_file(name, label_column)
    except FileNotFoundError as e:
        raise CLIError(f"cannot read {name}: {e}") from None
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    if len(X) < 5:
        raise CLIError(f"{name}: too few samples ({len(X)}) to split into train and test sets")
    if not np.all(np.isfinite(X)):
        raise CLIError(f"{name}: the features contain NaN or infinite values")
    if y.dtype.kind == "i":
        _, y = np.unique(y, return_inverse=True)  # classes numbered 0..K-1
        y = y.astype(np.int64)
    return X, y, f"{name} ({len(X)} samples, {X.shape[1]} features)"


# ---------------------------------------------------------------------------
# Gradient check
# ---------------------------------------------------------------------------

def _max_rel_error(a, b, floor=1e-8):
    """max |u - v| / (|u| + |v| + floor) over all entries."""
    return max(float(np.max(np.abs(u - v) / (np.abs(u) + np.abs(v) + floor))) for u, v in zip(a, b))


def gradient_check(model, loss_fn, xb, yb, *, n_fd=24, seed=0):
    """Gradients of ``loss_fn(model(xb), yb)`` w.r.t. every parameter, in float64, three ways.

    The model's forward is run as a function of the engine and the parameter
    arrays (``nn.functional_call``), by the C++ engine and by the reference
    engine; finite differences (``tapegrad.numeric.derivative``, central) are
    taken at ``n_fd`` random entries of each parameter. Returns a dict of the max relative errors."""
    import tapegrad
    import tapegrad.reference as reference
    from . import nn

    names = [n for n, _ in model.named_parameters()]
    arrays = {n: np.array(p.data, dtype=np.float64) for n, p in model.named_parameters()}
    xb = np.asarray(xb, dtype=np.float64)

    def loss_value(engine, params):
        return loss_fn(nn.functional_call(model, params, engine.Variable(xb)), yb)

    def engine_grads(engine):
        params = {n: engine.Variable(arrays[n], requires_grad=True) for n in names}
        loss = loss_value(engine, params)
        loss.backward()
        return loss.item(), [np.array(params[n].grad) for n in names]

    was_training = model.training
    model.eval()  # dropout off: a deterministic function of the parameters
    try:
        loss_cpp, g_cpp = engine_grads(tapegrad)
        loss_ref, g_ref = engine_grads(reference)
        rng = np.random.default_rng(seed)
        fd, an = [], []
        with tapegrad.no_grad():
            for n, g in zip(names, g_cpp):
                a = arrays[n]
                k = min(n_fd, a.size)
                for flat in rng.choice(a.size, size=k, replace=False):
                    idx = np.unravel_index(flat, a.shape)

                    def loss_at(t, n=n, a=a, idx=idx):
                        shifted = dict(arrays)
                        shifted[n] = a.copy()
                        shifted[n][idx] = t
                        return loss_value(tapegrad, {m: tapegrad.Variable(v) for m, v in shifted.items()}).item()

                    # tapegrad.numeric, central; scale=1: weights are O(1e-2), the loss varies on a scale of 1
                    fd.append(float(tapegrad.numeric.derivative(loss_at, float(a[idx]), scale=1.0)))
                    an.append(g[idx])
    finally:
        model.train(was_training)
    return {
        "loss_cpp": loss_cpp, "loss_ref": loss_ref,
        "err_ref": _max_rel_error(g_cpp, g_ref),
        # finite differences carry ~1e-10 of rounding noise: floor the denominator at 1e-6
        "err_fd": _max_rel_error([np.array(an)], [np.array(fd)], floor=1e-6),
        "n_params": int(sum(a.size for a in arrays.values())), "n_fd": len(fd),
    }


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------

def _plot(history, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install matplotlib") from None
    h = history.history
    epochs = np.arange(1, history.epochs + 1)
    has_acc = "accuracy" in h
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5, 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(epochs, h["loss"], label="train")
    if "val_loss" in h:
        ax.plot(epochs, h["val_loss"], label="test")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.set_yscale("log"), ax.legend(), ax.set_title("loss")
    if has_acc:
        ax = axes[0, 1]
        ax.plot(epochs, h["accuracy"], label="train")
        if "val_accuracy" in h:
            ax.plot(epochs, h["val_accuracy"], label="test")
        ax.set_xlabel("epoch"), ax.set_ylabel("accuracy"), ax.legend(), ax.set_title("accuracy")
    fig.tight_layout()
    try:
        fig.savefig(path)
    except (OSError, ValueError) as e:
        raise CLIError(f"cannot write the plot {path}: {e}") from None
    finally:
        plt.close(fig)


def _check_writable(path, what):
    """Fail before training, not after it, when the output cannot be written."""
    full = os.path.abspath(path)
    directory = os.path.dirname(full)
    if not os.path.isdir(directory):
        raise CLIError(f"{what} {path}: directory {directory} does not exist")
    if os.path.isdir(full):
        raise CLIError(f"{what} {path}: is a directory, expected a file path")
    # A real open, not os.access: that says yes to root everywhere, also where the filesystem refuses
    # (a read-only mount, /proc, /sys). Append mode leaves an existing file as it is.
    existed = os.path.exists(full)
    try:
        with open(full, "ab"):
            pass
    except OSError as e:
        raise CLIError(f"{what} {path}: not writable ({e.strerror.lower() if e.strerror else e})") from None
    if not existed:
        os.remove(full)


def _check_model_fits(sizes, dtype):
    """Refuse a model whose parameters alone exceed the machine's memory (before allocating them)."""
    n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    need = n_params * np.dtype(dtype).itemsize * 4  # weights, gradients and the optimizer's state
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        have = None
    if have and need > have:
        raise CLIError(f"the model {'-'.join(map(str, sizes))} has {n_params:,} parameters, which need about "
                       f"{need / 2**30:,.1f} GiB with their gradients and optimizer state; this machine has "
                       f"{have / 2**30:,.1f} GiB (choose smaller --hidden sizes)")


def _distributed_start(args, out, closing):
    """(rank, size, out) for --distributed: only rank 0 writes the log; the other ranks'
    os.devnull is closed by `closing` (an ExitStack) when training ends."""
    from . import distributed as dist

    try:
        r, n = dist.init()
    except ImportError as e:
        raise CLIError(str(e)) from None
    return r, n, (out if r == 0 else closing.enter_context(open(os.devnull, "w")))


def _check_outputs(args):
    if args.resume and not os.path.isfile(args.resume):
        raise CLIError(f"--resume {args.resume}: no such file")
    if args.checkpoint:
        _check_writable(args.checkpoint, "--checkpoint")
    if not 0.0 < args.test_size < 1.0:
        raise CLIError(f"--test-size must be a fraction in (0, 1), got {args.test_size}")
    if args.save:
        _check_writable(args.save, "--save")
    if args.plot:
        _check_writable(args.plot, "--plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError("--plot needs matplotlib: pip install matplotlib") from None


def train(args: argparse.Namespace, out: Optional[IO[str]] = None) -> int:
    with contextlib.ExitStack() as closing:
        return _train(args, sys.stdout if out is None else out, closing)


def _train(args: argparse.Namespace, out: IO[str], closing: contextlib.ExitStack) -> int:
    import tapegrad
    from . import data, nn, optim

    rank, n_ranks = 0, 1
    if args.distributed:
        rank, n_ranks, out = _distributed_start(args, out, closing)
    # files are rank 0's business; its verdict is every rank's, so all stop together
    error = None
    if rank == 0:
        try:
            _check_outputs(args)
        except CLIError as e:
            error = str(e)
    if args.distributed:
        from . import distributed as dist
        error = dist.broadcast_object(error)
    if error:
        raise CLIError(error)
    X, y, description = load_data(args.data, args.label_column, args.seed)
    classification = y.dtype.kind == "i"
    try:
        Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_size=args.test_size, seed=args.seed,
                                                   stratify=classification)
        held_out = "test"
        if args.validate:  # the test set is set aside untouched; the validation set comes from the training set
            Xtr, Xte, ytr, yte = data.train_test_split(Xtr, ytr, test_size=args.validate, seed=args.seed,
                                                       stratify=classification)
            held_out = "validation"
    except ValueError as e:
        raise CLIError(str(e)) from None
    standardize = args.standardize
    if standardize is None:  # the built-in sets come scaled; files are standardised
        standardize = args.data not in ("digits", "moons", "spirals")
    if standardize:  # with the training set's statistics only
        mu, sd = Xtr.mean(0), Xtr.std(0)
        sd[sd == 0] = 1.0
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    dtype = np.dtype(args.dtype)
    Xtr, Xte = Xtr.astype(dtype), Xte.astype(dtype)
    loss_fn: Callable[..., Any]
    if classification:
        n_out = int(y.max()) + 1
        loss_fn = functools.partial(nn.cross_entropy, label_smoothing=args.label_smoothing) \
            if args.label_smoothing else nn.cross_entropy
    else:
        n_out = 1
        ytr, yte = ytr.reshape(-1, 1), yte.reshape(-1, 1)
        loss_fn = nn.mse_loss
    sizes = [X.shape[1], *args.hidden, n_out]
    _check_model_fits(sizes, dtype)
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]

    nn.manual_seed(args.seed)
    model = nn.MLP(sizes, activation=args.activation, dtype=dtype)
    print(f"tapegrad {tapegrad.__version__} train: {description}", file=out)
    print(f"  {len(Xtr)} training / {len(Xte)} {held_out} samples; MLP {'-'.join(map(str, sizes))} "
          f"({args.activation}, {model.num_parameters():,} parameters, {args.dtype}); "
          f"{args.optimizer} lr {lr:g}, weight decay {args.weight_decay:g}, label smoothing {args.label_smoothing:g}, "
          f"{'standardized' if standardize else 'raw'} inputs, batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}", file=out)
    if args.distributed:
        print(f"  data-parallel on {n_ranks} rank(s): global batch {n_ranks * args.batch_size}", file=out)

    ok = True
    if not args.no_check and rank == 0:
        t0 = time.perf_counter()
        n = min(args.batch_size, len(Xtr))
        r = gradient_check(model, loss_fn, Xtr[:n], ytr[:n], seed=args.seed)
        ok = abs(r["loss_cpp"] - r["loss_ref"]) <= 1e-12 * max(1.0, abs(r["loss_cpp"])) \
            and r["err_ref"] < 1e-8 and r["err_fd"] < 1e-5
        print(f"gradient check on one batch of {n} (float64, all {r['n_params']:,} parameters; "
              f"finite differences at {r['n_fd']} entries), {time.perf_counter() - t0:.2f} s:", file=out)
        print(f"  max relative error, C++ vs reference engine:   {r['err_ref']:.2e}", file=out)
        print(f"  max relative error, C++ vs finite differences: {r['err_fd']:.2e}", file=out)
        print(f"  {'OK' if ok else 'FAILED'}: the three gradients "
              f"{'agree' if ok else 'disagree (tolerances 1e-8 and 1e-5)'}", file=out)
    if args.distributed:
        ok = dist.broadcast_object(ok)  # every rank stops, not only rank 0
    if not ok:
        return 1

    opt: optim.Optimizer
    if args.optimizer == "sgd":
        opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=args.weight_decay)
    else:
        opt = optim.Adam(model.parameters(), lr=lr, weight_decay=args.weight_decay)
    sched = optim.CosineAnnealingLR(opt, T_max=args.epochs)
    if args.distributed:
        opt = dist.DistributedOptimizer(opt)
    start = _resume(args, model, opt, sched, rank, out) if args.resume else 0
    callbacks = []
    if args.checkpoint and rank == 0:
        def checkpoint(epoch, logs):
            nn.save_checkpoint(args.checkpoint, model, opt, sched, epoch=epoch + 1, seed=args.seed)
        callbacks.append(checkpoint)
    # a bar only where someone watches it: on a terminal, unless --progress / --no-progress says otherwise
    bar = sys.stderr.isatty() if args.progress is None else args.progress
    t0 = time.perf_counter()
    try:
        with tapegrad.detect_anomaly() if args.detect_anomaly else contextlib.nullcontext():
            history = nn.fit(model, Xtr, ytr, loss=loss_fn, optimizer=opt, epochs=args.epochs,
                             batch_size=args.batch_size, validation_data=(Xte, yte), progress=not args.quiet,
                             seed=args.seed, scheduler=sched, file=None if bar else out, plain=not bar, distributed=args.distributed, initial_epoch=start,
                             callbacks=callbacks)
    except RuntimeError as e:
        if not (args.detect_anomaly and str(e).startswith("detect_anomaly")):
            raise
        print(f"tapegrad train: {e}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - t0
    if rank != 0:
        return 0
    train_metrics = nn.evaluate(model, Xtr, ytr, loss_fn)
    test_metrics = nn.evaluate(model, Xte, yte, loss_fn)
    per_epoch = elapsed / max(history.epochs, 1)
    if classification:
        print(f"train accuracy {train_metrics['accuracy']:.2%}, {held_out} accuracy {test_metrics['accuracy']:.2%} "
              f"({held_out} loss {test_metrics['loss']:.4f})", file=out)
    else:
        print(f"train MSE {train_metrics['loss']:.4g}, {held_out} MSE {test_metrics['loss']:.4g}", file=out)
    print(f"{history.epochs} epochs in {elapsed:.2f} s ({per_epoch * 1000:.1f} ms per epoch)", file=out)
    if args.save:
        try:
            nn.save(model, args.save)
        except OSError as e:
            raise CLIError(f"cannot write {args.save}: {e}") from None
        print(f"saved the parameters to {args.save}", file=out)
    if args.plot:
        _plot(history, args.plot)
        print(f"saved the loss/accuracy curves to {args.plot}", file=out)
    return 0 if ok else 1


def _resume(args, model, opt, sched, rank, out):
    """Rank 0 reads the checkpoint; fit(distributed=True) hands its model and optimizer to the others."""
    from . import nn

    meta = None
    if rank == 0:
        try:
            meta = nn.load_checkpoint(args.resume, model, opt, sched)
        except (ValueError, KeyError, TypeError, OSError) as e:
            meta = {"error": f"--resume {args.resume}: {e}"}
    if args.distributed:
        from . import distributed as dist
        meta = dist.broadcast_object(meta)
        state = dist.broadcast_object(sched.state_dict())
        if rank != 0 and "error" not in meta:
            sched.load_state_dict(state)
    if "error" in meta:
        raise CLIError(meta["error"])
    epoch = int(meta.get("epoch", 0))
    if not 0 <= epoch <= args.epochs:
        raise CLIError(f"--resume {args.resume}: the checkpoint is at epoch {epoch}, beyond --epochs {args.epochs}")
    print(f"resumed from {args.resume} at epoch {epoch}", file=out)
    if sched.T_max != args.epochs:
        # The checkpoint's cosine schedule ends at its own --epochs (lr 0 there): left as it is, more epochs
        # would train at lr 0. The schedule is stretched to this run's --epochs, from the epoch reached.
        print(f"the learning-rate schedule now ends at epoch {args.epochs} (the checkpoint's ended at "
              f"{sched.T_max}): lr {sched.get_last_lr()[0]:.4g} -> ", end="", file=out)
        sched.T_max = args.epochs
        sched._apply()
        print(f"{sched.get_last_lr()[0]:.4g}", file=out)
    return epoch


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "train":
            return train(args)
    except CLIError as e:
        print(f"tapegrad {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tapegrad train | head`: the reader left; no traceback (Python's documented idiom)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
