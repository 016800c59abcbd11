"""tapegrad.distributed under a real ``mpiexec`` (MPICH from PyPI: pip install 'tapegrad[distributed]').

Each test launches ``mpiexec -n 2`` (or 3, 4: oversubscribing the cores)
``python tests/distributed_worker.py SCENARIO`` as a subprocess with its own
timeout, so a hang fails instead of blocking the suite. The whole module
skips when mpi4py is not installed; the single-process behaviour is tested in
tests/test_distributed.py.
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the distributed extra (mpi4py) is not installed")

WORKER = str(Path(__file__).with_name("distributed_worker.py"))


def _mpiexec():
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    assert found, "mpi4py is installed but no mpiexec is on PATH (pip install mpich)"
    return found


def mpirun(n, *args, timeout=120, cwd=None):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.monotonic()
    p = subprocess.run([_mpiexec(), "-n", str(n), *args], capture_output=True, text=True, timeout=timeout,
                       env=env, cwd=cwd)
    p.elapsed = time.monotonic() - start
    return p


def worker(n, *args, **kw):
    return mpirun(n, sys.executable, WORKER, *args, **kw)


def mpi_worker(n, *args, **kw):
    """The scenario with DistributedOptimizer's reduction through Iallreduce (one node's default is the shared
    window, which the plain ``worker`` runs)."""
    return mpirun(n, "-env", "TG_TEST_SHARED_MEMORY", "0", sys.executable, WORKER, *args, **kw)


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr[-4000:]}"
    return p


@pytest.mark.parametrize("n", [2, 3])
def test_collectives_broadcast_and_optimizer(n):
    p = ok(worker(n, "basics"))  # 2: the averages bitwise sum / 2; 3: within rounding of sum / 3
    assert all(f"OK basics rank {r}" in p.stdout for r in range(n))


@pytest.mark.parametrize("n", [2, 3])
def test_gradients_are_views_of_the_buckets(n):
    p = ok(worker(n, "views"))
    assert all(f"OK views rank {r}" in p.stdout for r in range(n))


def test_gradients_are_views_of_the_buckets_through_iallreduce():
    p = ok(mpi_worker(2, "views"))
    assert all(f"OK views rank {r}" in p.stdout for r in range(2))


@pytest.mark.parametrize("n", [2, 3])
def test_the_shared_window_sums_in_rank_order_on_every_rank(n):
    p = ok(worker(n, "shared_window"))
    assert all(f"OK shared_window rank {r}" in p.stdout for r in range(n))


@pytest.mark.parametrize("n", [2, 3])
def test_the_average_folded_into_the_update_gives_the_averaging_pass_bits(n):
    p = ok(worker(n, "fused_average"))
    assert all(f"OK fused_average rank {r}" in p.stdout for r in range(n))


def test_the_average_folded_into_the_update_through_iallreduce():
    p = ok(mpi_worker(3, "fused_average"))
    assert all(f"OK fused_average rank {r}" in p.stdout for r in range(3))


@pytest.mark.parametrize("n", [2, 3])
def test_presence_counts_ride_in_the_last_bucket(n):
    p = ok(worker(n, "presence"))  # one call per bucket; a gradient missing on some or all ranks as before
    assert all(f"OK presence rank {r}" in p.stdout for r in range(n))

@pytest.mark.parametrize("n", [2, 3])
def test_gradients_that_fit_one_bucket_are_reduced_in_one_call(n):
    p = ok(worker(n, "one_bucket"))
    assert all(f"OK one_bucket rank {r}" in p.stdout for r in range(n))


@pytest.mark.parametrize("run", [worker, mpi_worker], ids=["shared_window", "iallreduce"])
def test_every_step_leaves_identical_parameters_on_3_ranks(run):
    p = ok(run(3, "consistent_steps"))
    assert p.stdout.count("OK consistent") == 3


def test_progress_thread_gives_the_same_steps():
    p = ok(worker(2, "consistent_steps", "0.0001"))
    assert p.stdout.count("OK consistent") == 2


def test_a_different_model_fails_at_broadcast_naming_the_shapes():
    p = ok(worker(2, "shape_mismatch"))
    for r in (0, 1):
        assert f"rank {r}: tapegrad.distributed.broadcast_parameters: the models differ" in p.stdout


def _params(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _single_process(tmp_path, batch, dtype="float64", epochs="3"):
    out = tmp_path / f"single_{batch}_{dtype}.npz"
    subprocess.run([sys.executable, WORKER, "fit", str(batch), str(out), dtype, epochs], check=True, timeout=120,
                   capture_output=True)
    return _params(out)


@pytest.mark.parametrize("n, batch", [(2, 16), (3, 11)])
def test_n_ranks_batch_b_equal_one_process_batch_nb(tmp_path, n, batch):
    """203 samples: batch 2x16 leaves a last global batch of 11 (6 + 5), 3x11 one of 5 (2 + 2 + 1)."""
    out = tmp_path / "dist.npz"
    ok(worker(n, "fit", str(batch), str(out)))
    dist_params, single = _params(out), _single_process(tmp_path, n * batch)
    for k in single:
        np.testing.assert_allclose(dist_params[k], single[k], rtol=0, atol=1e-13, err_msg=k)
    # the reduction order is fixed: the same run gives the same bits
    out2 = tmp_path / "dist2.npz"
    ok(worker(n, "fit", str(batch), str(out2)))
    again = _params(out2)
    assert all(np.array_equal(again[k], dist_params[k]) for k in again)


def test_float32_and_one_bucket_per_parameter(tmp_path):
    out = tmp_path / "dist.npz"
    ok(worker(2, "fit", "16", str(out), "float32", "2", "1"))
    d, single = _params(out), _single_process(tmp_path, 32, "float32", "2")
    for k in single:
        np.testing.assert_allclose(d[k], single[k], rtol=0, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("how", ["raise", "exit", "kill"])
@pytest.mark.parametrize("run", [worker, mpi_worker], ids=["shared_window", "iallreduce"])
def test_a_failing_rank_ends_the_job_within_30_s(how, run):
    p = run(2, "fail", how, timeout=90)
    assert p.returncode != 0
    assert p.elapsed < 30, p.elapsed
    assert "unreachable" not in p.stdout
    text = p.stdout + p.stderr
    if how == "raise":
        assert "rank 1 fails on purpose" in text and "rank 1 of 2 failed (ValueError)" in text
    elif how == "exit":  # rank 0 learns that rank 1 left and says so
        assert "rank(s) 1 of 2 exited" in text and "rank 0 of 2 failed (RuntimeError)" in text
    else:
        assert "KILLED" in text or "signal 9" in text or "Killed" in text, text[-2000:]


def test_cli_train_distributed_on_4_ranks_prints_one_log(tmp_path):
    p = ok(mpirun(4, sys.executable, "-m", "tapegrad", "train", "--distributed", "--epochs", "2", "--no-progress",
                  "--no-check", "--batch-size", "16", "--save", str(tmp_path / "m.npz"), timeout=240))
    single = subprocess.run([sys.executable, "-m", "tapegrad", "train", "--epochs", "2", "--no-progress", "--no-check",
                             "--batch-size", "64"], capture_output=True, text=True, timeout=120, check=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(("epoch", "train accuracy", "tapegrad"))]
    assert sum(ln.startswith("tapegrad ") for ln in lines) == 1  # one header: only rank 0 printed
    assert "data-parallel on 4 rank(s): global batch 64" in p.stdout
    epochs = [ln.split("(")[0] for ln in lines if ln.startswith("epoch")]
    assert epochs == [ln.split("(")[0] for ln in single.stdout.splitlines() if ln.startswith("epoch")]
    assert (tmp_path / "m.npz").exists()


def test_cli_error_on_rank_0_stops_every_rank_with_status_2(tmp_path):
    p = mpirun(2, sys.executable, "-m", "tapegrad", "train", "--distributed", "--epochs", "1", "--no-check",
               "--save", str(tmp_path / "missing" / "m.npz"), timeout=120)
    assert p.returncode == 2, p.stderr[-3000:]
    assert p.stderr.count("does not exist") == 2  # each rank says why it stops; no traceback, no abort
    assert "Traceback" not in p.stderr and "MPI_Abort" not in p.stderr



def test_checkpoint_resumes_on_another_number_of_ranks(tmp_path):
    """2 ranks x 16 checkpoint after epoch 2 of 4; 1 process x 32 and 3 ranks x 11 resume from it."""
    ckpt, full = tmp_path / "ck.npz", tmp_path / "full.npz"
    ok(worker(2, "resume", "16", str(full), str(ckpt), "0"))
    one = tmp_path / "one.npz"
    ok(worker(1, "resume", "32", str(one), str(ckpt), "2"))
    a, b = _params(full), _params(one)
    for k in a:  # the same global batches: equal to rounding
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-13, err_msg=k)
    three = tmp_path / "three.npz"
    ok(worker(3, "resume", "11", str(three), str(ckpt), "2"))
    c = _params(three)
    assert all(np.all(np.isfinite(c[k])) for k in c) and any(not np.array_equal(c[k], a[k]) for k in c)


def test_cli_checkpoint_and_resume_on_2_ranks(tmp_path):
    ck = str(tmp_path / "run.npz")
    base = [sys.executable, "-m", "tapegrad", "train", "--distributed", "--no-check", "--no-progress",
            "--data", "moons", "--hidden", "16"]
    ok(mpirun(2, *base, "--epochs", "2", "--checkpoint", ck, timeout=180))
    p = ok(mpirun(2, *base, "--epochs", "3", "--resume", ck, timeout=180))
    assert f"resumed from {ck} at epoch 2" in p.stdout
    assert p.stdout.count("the learning-rate schedule now ends at epoch 3 (the checkpoint's ended at 2)") == 1
    assert [ln.split()[1] for ln in p.stdout.splitlines() if ln.startswith("epoch ")] == ["3/3"]
    bad = mpirun(2, *base, "--epochs", "3", "--resume", str(tmp_path / "nope.npz"), timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("no such file") == 2
