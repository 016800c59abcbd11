"""The `tapegrad train` command: short runs and every bad-argument case (exit 2, one line)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tapegrad import cli


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_default_digits_one_epoch_with_check_save_and_plot(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    save, plot = tmp_path / "m.npz", tmp_path / "c.png"
    code, out, err = run(["train", "--epochs", "1", "--no-progress", "--save", str(save), "--plot", str(plot)],
                         capsys)
    assert code == 0, err
    hidden = cli.build_parser().parse_args(["train"]).hidden  # the default --hidden, parsed
    assert f"MLP {'-'.join(map(str, [64, *hidden, 10]))}" in out and "OK: the three gradients agree" in out
    assert "C++ vs reference engine" in out and "C++ vs finite differences" in out
    assert "test accuracy" in out and "ms per epoch" in out
    assert save.exists() and plot.stat().st_size > 1000
    with np.load(save) as z:
        assert z["0.weight"].shape == (64, hidden[0])


@pytest.mark.parametrize("extra", [["--data", "moons", "--optimizer", "adam", "--activation", "tanh"],
                                   ["--data", "spirals", "--hidden", "16", "--dtype", "float64", "--no-check"]])
def test_synthetic_runs(extra, capsys):
    code, out, err = run(["train", "--epochs", "1", "--quiet", *extra], capsys)
    assert code == 0, err
    assert "test accuracy" in out


def test_csv_and_npz_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    npz = tmp_path / "d.npz"
    np.savez(npz, X=X, y=y)
    code, out, err = run(["train", "--data", str(npz), "--epochs", "1", "--quiet", "--hidden", "8"], capsys)
    assert code == 0, err
    assert "60 samples, 3 features" in out
    csv = tmp_path / "d.csv"
    rows = ["f1,target,f2"] + [f"{a},{t},{b}" for (a, _, b), t in zip(X, y)]
    csv.write_text("\n".join(rows) + "\n")
    code, out, err = run(["train", "--data", str(csv), "--label-column", "target", "--epochs", "1", "--quiet"],
                         capsys)
    assert code == 0, err
    reg = tmp_path / "r.csv"
    reg.write_text("\n".join(f"{a},{b},{a * 0.37 + b:.6f}" for a, _, b in X) + "\n")
    code, out, err = run(["train", "--data", str(reg), "--epochs", "1", "--quiet"], capsys)
    assert code == 0, err
    assert "test MSE" in out


@pytest.mark.parametrize("argv,message", [
    (["--data", "mnist"], "unknown data set 'mnist'"),
    (["--data", "missing.npz"], "cannot read missing.npz"),
    (["--hidden", "64,x"], "hidden sizes must be comma-separated positive integers"),
    (["--hidden", "64,0"], "hidden sizes must be comma-separated positive integers"),
    (["--hidden", "-3"], "hidden sizes must be comma-separated positive integers"),
    (["--epochs", "0"], "expected a positive integer"),
    (["--lr", "abc"], "expected a positive number"),
    (["--optimizer", "rmsprop"], "invalid choice"),
    (["--dtype", "float16"], "invalid choice"),
    (["--label-column", "y"], "--label-column applies to CSV data only"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        code = cli.main(["train", *argv])
        raise SystemExit(code)
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_files_exit_2(tmp_path, capsys):
    corrupt = tmp_path / "c.npz"
    corrupt.write_bytes(b"not a zip")
    noy = tmp_path / "noy.npz"
    np.savez(noy, X=np.ones((10, 2)))
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c\n1,2,0\n3,4,1\n")
    ragged = tmp_path / "r.csv"
    ragged.write_text("1,2,0\n3,1\n")
    for argv, message in [([str(corrupt)], "not a readable .npz"), ([str(noy)], "no array 'y'"),
                          ([str(csv), "--label-column", "label"], "label column 'label' not found"),
                          ([str(ragged)], "row 2 has 2 columns"),
                          ([str(tmp_path)], "unknown data set")]:
        code, out, err = run(["train", "--data", *argv, "--epochs", "1"], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "tapegrad", "train", "--data", "nowhere"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == ("tapegrad train: error: unknown data set 'nowhere': expected "
                                                 "digits, moons, spirals, or a path to a .npz or .csv file")


def test_outputs_and_model_size_fail_up_front(tmp_path, capsys):
    # Issue 15: these failed after training (an unwritable --save) or with a
    # NumPy MemoryError traceback (a huge --hidden); now one line, exit 2, no training.
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cases = [(["--hidden", "10000000000"], "parameters, which need about"),
             (["--save", str(tmp_path)], "is a directory"),
             (["--save", str(tmp_path / "no" / "w.npz")], "does not exist"),
             (["--plot", str(tmp_path / "no" / "c.png")], "does not exist")]
    if os.geteuid() != 0:  # (root may write into a directory of mode 0o500)
        cases.append((["--save", str(locked / "w.npz")], "not writable"))
    if os.path.isdir("/proc/self"):  # a place no one may create a file, root included (CI runs as root)
        cases.append((["--save", "/proc/tapegrad-w.npz"], "not writable"))
    for argv, message in cases:
        code, out, err = run(["train", *argv, "--epochs", "1", "--quiet", "--no-check"], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
        assert "epoch" not in out, argv


def test_resume_with_more_epochs_keeps_training(tmp_path, capsys):
    # The checkpoint's cosine schedule ended at its --epochs with lr 0: resumed as it was, epochs 3-5 did not
    # train at all (the same loss printed three times). The schedule now stretches to the new --epochs.
    ck = str(tmp_path / "run.npz")
    base = ["train", "--data", "moons", "--hidden", "16", "--no-check", "--no-progress"]
    code, _, err = run([*base, "--epochs", "2", "--checkpoint", ck], capsys)
    assert code == 0, err
    code, out, err = run([*base, "--epochs", "5", "--resume", ck], capsys)
    assert code == 0, err
    assert "the learning-rate schedule now ends at epoch 5 (the checkpoint's ended at 2): lr 0 -> 0.06545" in out
    losses = [ln.split()[3] for ln in out.splitlines() if ln.startswith("epoch ")]
    assert len(losses) == 3 and len(set(losses)) == 3, out
    code, out, err = run([*base, "--epochs", "2", "--resume", ck], capsys)  # same --epochs: nothing to stretch
    assert code == 0 and "schedule now ends" not in out, (out, err)


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert "(default: None)" not in text and "[64, 64]" not in text
    train = next(a for a in cli.build_parser()._actions if a.dest == "command").choices["train"]
    shown = {a.option_strings[0]: a.default for a in train._actions
             if a.default is not None and a.default is not False and a.dest != "help"}
    assert {"--epochs", "--batch-size", "--activation", "--dtype", "--hidden", "--optimizer"} <= set(shown)
    for option, default in shown.items():
        assert isinstance(default, (str, int, float)), (option, default)  # never a Python list
        assert f"{option}" in text and f"(default: {default})" in text, (option, default)
    assert "default 0.1 for sgd" in text and "a bar only when stderr is a terminal" in text


def test_version_is_the_package_version(capsys):
    import tapegrad
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"tapegrad {tapegrad.__version__}"


def _bar_in(err):
    return "it/s" in err or "%|" in err


def test_progress_bar_only_on_a_terminal_unless_asked(capsys, monkeypatch):
    base = ["train", "--data", "moons", "--epochs", "2", "--no-check"]
    # capsys: stderr is not a terminal -> one plain line per epoch on stdout, no bar
    code, out, err = run(base, capsys)
    assert code == 0 and not _bar_in(err) and "epoch 2/2" in out
    code, out, err = run([*base, "--progress"], capsys)  # forced
    assert code == 0 and _bar_in(err)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: a bar by default, off when asked
    code, out, err = run(base, capsys)
    assert code == 0 and _bar_in(err) and "epoch 2/2 " not in out
    code, out, err = run([*base, "--no-progress"], capsys)
    assert code == 0 and not _bar_in(err) and "epoch 2/2" in out


def test_progress_not_on_a_pipe():
    r = subprocess.run([sys.executable, "-m", "tapegrad", "train", "--data", "moons", "--epochs", "2", "--no-check"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not _bar_in(r.stderr) and "epoch 2/2" in r.stdout


def test_validate_holds_out_part_of_the_training_set(capsys):
    code, out, err = run(["train", "--data", "moons", "--epochs", "1", "--no-check", "--quiet", "--validate", "0.25"],
                         capsys)
    assert code == 0, err
    # 1000 points: 800 train / 200 test; the validation quarter comes out of the 800, the test set is not used
    assert "600 training / 200 validation samples" in out and "validation accuracy" in out
    assert "test" not in out.split("samples;")[1]


def test_default_config_reaches_97_5_percent_on_digits_seeds_0_to_4(capsys):
    """Issue 18's target for the defaults (chosen on a validation split by benchmarks/tune_train.py)."""
    pytest.importorskip("sklearn")
    accuracies = []
    for seed in range(5):
        code, out, err = run(["train", "--quiet", "--no-check", "--seed", str(seed)], capsys)
        assert code == 0, err
        accuracies.append(float(re.search(r"test accuracy ([\d.]+)%", out).group(1)))
    assert min(accuracies) >= 97.5, accuracies


def test_distributed_start_closes_the_devnull_of_other_ranks(monkeypatch):
    # ranks other than 0 write their log to os.devnull: it is closed when training ends (no ResourceWarning)
    import contextlib
    from tapegrad import distributed
    monkeypatch.setattr(distributed, "init", lambda: (1, 2))
    with contextlib.ExitStack() as closing:
        rank, size, out = cli._distributed_start(None, sys.stdout, closing)
        assert (rank, size) == (1, 2) and out is not sys.stdout and not out.closed
    assert out.closed
