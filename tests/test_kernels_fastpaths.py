"""The fast paths of the elementwise kernels and of the buffer cache.

The elementwise loops are compiled per instruction set (baseline x86-64,
AVX2+FMA, AVX-512; cpp/src/simd/) and chosen at run time; every build the CPU
can run must give the same bits, and match the reference engine, at sizes whose tails do not fill a
vector register and on every broadcasting layout (contiguous, scalar
operand, strided). The buffer cache must make repeated training steps stop
asking the system for memory.
"""
import numpy as np
import pytest

import op_cases
import tapegrad as tg
from tapegrad import _core
from helpers import assert_close, reference_engine, measures_memory, supported_isas
# (under these names test_silu_*.py, test_logaddexp_accuracy.py and others import them from here)
from helpers import every_isa_and_thread_count as _run_every_isa_and_thread_count, with_threads as _with_threads

ISAS = supported_isas()
SIZES = [1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 127, 1000, 4097]
UNARY = op_cases.ELEMENTWISE
BINARY = op_cases.BINARY



def _value(name, shape, dtype, rng):
    """Standard normal; |x| + 0.1 for an op whose spec domain is positive; the spec's (lo, hi) else."""
    x = rng.standard_normal(shape).astype(dtype)
    domain = op_cases.domain(name)
    if domain == "positive":
        x = np.abs(x) + dtype(0.1)
    elif isinstance(domain, tuple):
        x = rng.uniform(*domain, size=shape).astype(dtype)
    return x


def _forward_backward(m, name, arrays, dtype):
    vs = [m.Variable(a, requires_grad=True) for a in arrays]
    fn = getattr(m, name)
    out = fn(*vs)
    w = m.Variable(np.linspace(-1, 1, out.size).reshape(out.shape).astype(dtype))
    (out * w).sum().backward()
    return [np.asarray(out.numpy() if hasattr(out, "numpy") else out.data)] + [
        np.asarray(v.grad) for v in vs
    ]


def _check_every_isa_and_reference(name, arrays, dtype):
    """Forward and backward of `name`: the same bits on every ISA, close to the reference engine."""
    results = {}
    for isa in ISAS:
        _core._set_isa(isa)
        results[isa] = _forward_backward(tg, name, arrays, dtype)
    first = results[ISAS[0]]
    for isa in ISAS[1:]:
        for a, b in zip(first, results[isa]):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} {isa} vs baseline")
    ref = _forward_backward(reference_engine(), name, arrays, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(first, ref):
        assert_close(a, b, rtol=tol, atol_scale=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", UNARY)
def test_unary_every_isa_same_bits_and_matches_reference(name, n, dtype, restore_isa_and_threads):
    rng = np.random.default_rng(n)
    arrays = [_value(name, (n,), dtype, rng)]
    _check_every_isa_and_reference(name, arrays, dtype)


# (a shape, b shape): contiguous, scalar operand either side, strided broadcast.
LAYOUTS = [((17,), (17,)), ((33,), ()), ((), (65,)), ((7, 1), (1, 15)), ((3, 17), (3, 1)), ((5, 1), (1,)),
           # a row repeated along leading axes (bias add): its own contiguous loop
           ((5, 9), (9,)), ((9,), (5, 9)), ((2, 3, 5), (1, 3, 5)), ((2, 3, 5), (3, 5)), ((4, 17), (1, 17))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", LAYOUTS, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_every_isa_same_bits_and_matches_reference(name, shapes, dtype, restore_isa_and_threads):
    rng = np.random.default_rng(len(shapes[0]) * 100 + len(shapes[1]))
    arrays = [_value(name, s, dtype, rng) for s in shapes]
    _check_every_isa_and_reference(name, arrays, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("bounds", [(-0.5, 0.5), (None, 0.25), (-0.25, None), (0.0, 0.0), (-np.inf, np.inf)],
                         ids=str)
def test_clip_every_isa_and_thread_count_equals_numpy(n, dtype, bounds, restore_isa_and_threads):
    # the one-pass clip runs in the ISA loops (simd/loops.hpp clip_run): NumPy's values on each, NaN kept,
    # infinities as np.clip gives them; the same bits on every ISA and thread count (where x == bound == +-0,
    # the bound's zero, as the maximum/minimum kernels give, where NumPy keeps x's)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 0.25], dtype=dtype)
    x = np.concatenate([specials, np.random.default_rng(n).standard_normal(n).astype(dtype)])
    want = np.clip(x, *bounds)
    threads, first = tg.get_num_threads(), None
    try:
        for isa in ISAS:
            _core._set_isa(isa)
            for t in (1, 2):
                tg.set_num_threads(t)
                got = tg.clip(tg.Variable(x), *bounds).data
                np.testing.assert_array_equal(got, want, err_msg=f"{isa}, {t} threads")
                first = got if first is None else first
                assert got.tobytes() == first.tobytes(), f"{isa}, {t} threads"
    finally:
        tg.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_sum_every_isa_same_bits_and_close_to_numpy(n, dtype, restore_isa_and_threads):
    x = np.random.default_rng(n).standard_normal((3, n)).astype(dtype)
    sums = {}
    for isa in ISAS:
        _core._set_isa(isa)
        v = tg.Variable(x)
        sums[isa] = (np.asarray(v.sum().numpy()), np.asarray(v.sum(axis=1).numpy()), np.asarray(v.sum(axis=0).numpy()))
    for isa in ISAS[1:]:
        for a, b in zip(sums[ISAS[0]], sums[isa]):
            np.testing.assert_array_equal(a, b)
    x64 = x.astype(np.float64)
    for got, want in zip(sums[ISAS[0]], (x64.sum(), x64.sum(axis=1), x64.sum(axis=0))):
        tol = 1e-6 if dtype == np.float32 else 1e-13  # float32 results round to float32
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_set_isa_rejects_unknown_name(restore_isa_and_threads):
    with pytest.raises(ValueError, match="unknown instruction set"):
        _core._set_isa("sse9")


@measures_memory
def test_buffer_cache_training_steps_stop_asking_the_system_for_memory():
    # From an empty cache: the tests before this one (test_reductions.py's alone) leave it near its
    # 1 GB limit, and a full cache hands the steps' buffers back to the system.
    _core._empty_buffer_cache()
    rng = np.random.default_rng(0)
    model = tg.nn.MLP([64, 128, 128, 10], activation="relu", dtype=np.float32, rng=0)
    x = tg.Variable(rng.standard_normal((64, 64)).astype(np.float32))
    y = rng.integers(0, 10, 64)
    opt = tg.optim.SGD(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        loss = tg.nn.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    before = _core._buffer_cache_stats()
    for _ in range(20):
        step()
    after = _core._buffer_cache_stats()
    assert after["system_allocs"] == before["system_allocs"], (before, after)
    assert after["reuses"] > before["reuses"]


@measures_memory
def test_buffer_cache_is_consistent_under_concurrent_sweeps():
    # Backward sweeps run without the GIL, so threads take and return cached
    # buffers (here 65 B - 4 KiB, the small classes) at the same time; the
    # cache's lock must keep its lists and counts exact.
    import threading

    def work(seed, errors):
        try:
            rng = np.random.default_rng(seed)
            w = tg.Variable(rng.standard_normal(37), requires_grad=True)
            for _ in range(600):
                y = tg.tanh(w * 1.5) * w + w
                y.sum().backward()
            wv = w.numpy()
            t = np.tanh(1.5 * wv)
            expected = 600 * (1.5 * (1 - t**2) * wv + t + 1)
            np.testing.assert_allclose(w.grad, expected, rtol=1e-12)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    _core._empty_buffer_cache()
    before = _core._buffer_cache_stats()
    errors = []
    threads = [threading.Thread(target=work, args=(i, errors)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    after = _core._buffer_cache_stats()
    # every buffer the threads took came back (a lost update of the counts or
    # of a free list shows here, or as a crash)
    assert after["in_use_bytes"] == before["in_use_bytes"], (before, after)
    assert after["cached_bytes"] > 0


@measures_memory
def test_empty_buffer_cache_releases_cached_bytes():
    v = tg.Variable(np.ones(100_000))
    w = v * 2.0
    del w
    assert _core._buffer_cache_stats()["cached_bytes"] > 0
    _core._empty_buffer_cache()
    assert _core._buffer_cache_stats()["cached_bytes"] == 0
    np.testing.assert_array_equal((v * 3.0).numpy(), np.full(100_000, 3.0))


# Sizes around the thread pool's thresholds (cpp/include/tapegrad/parallel.hpp:
# 2 x 262144 elements for cheap ops, 2 x 32768 for transcendental ones, 2 x 65536
# for a total sum's partial chunks), with odd remainders.
THREAD_SIZES = [65535, 65537, 131071, 131073, 524287, 524289, 600001]


@pytest.mark.parametrize("size", THREAD_SIZES)
def test_threaded_elementwise_and_reductions_equal_one_thread_bitwise(size):
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(np.float32)
    y = rng.standard_normal(size).astype(np.float32)
    cols = 129
    m = rng.standard_normal((size // cols, cols))
    bias = rng.standard_normal(cols)

    def run():
        xv, yv, mv = tg.Variable(x, requires_grad=True), tg.Variable(y), tg.Variable(m, requires_grad=True)
        out = [tg.tanh(xv), xv * yv, tg.exp(xv) + 1.0, mv + tg.Variable(bias), mv.sum(axis=0), mv.sum(), xv.sum()]
        (tg.tanh(xv) * yv).sum().backward()
        (tg.relu(mv + tg.Variable(bias)) ** 2).sum().backward()
        return [o.numpy() for o in out] + [xv.grad, mv.grad]

    one = _with_threads(1, run)
    many = _with_threads(max(2, tg.get_num_threads()), run)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(one[0], np.tanh(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(one[3], m + bias, rtol=1e-15)
    np.testing.assert_allclose(one[4], m.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one[5], m.sum(), rtol=1e-12)
    np.testing.assert_allclose(one[6], x64.sum(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(one[7], (1 - np.tanh(x64) ** 2) * y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one[8], 2 * np.maximum(m + bias, 0), rtol=1e-15)


# The split threshold of an elementwise op comes from its spec `cost` (see THREAD_SIZES above).
SPLIT_AT = {"cheap": 2 * 262144, "transcendental": 2 * 32768}


@pytest.mark.parametrize("name", UNARY)
def test_threaded_elementwise_op_equals_one_thread_bitwise_around_its_split_threshold(name):
    at = SPLIT_AT[op_cases.SPEC[name]["cost"]]
    for size in (at - 1, at + 1, 2 * at + 3):
        rng = np.random.default_rng(size)
        x = _value(name, (size,), np.float32, rng)
        w = rng.standard_normal(size).astype(np.float32)

        def run():
            xv = tg.Variable(x, requires_grad=True)
            out = getattr(tg, name)(xv)
            (out * tg.Variable(w)).sum().backward()
            return [out.numpy(), xv.grad]

        one = _with_threads(1, run)
        many = _with_threads(max(2, tg.get_num_threads()), run)
        for a, b in zip(one, many):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} at {size} elements")
        with np.errstate(all="ignore"):
            want = op_cases.oracle(name)(x.astype(np.float64))
        np.testing.assert_allclose(one[0], want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(one[1], op_cases.spec_derivative(name)(x.astype(np.float64)) * w,
                                   rtol=2e-5, atol=1e-5)


def test_threaded_optimizer_steps_equal_one_thread_bitwise():
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((300, 401)).astype(np.float32)
    g0 = rng.standard_normal((300, 401)).astype(np.float32)

    def run(make_opt):
        p = tg.Variable(w0.copy(), requires_grad=True)
        opt = make_opt([p])
        for _ in range(3):
            p.grad = g0
            opt.step()
        return p.numpy()

    for make in (lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
                 lambda ps: tg.optim.SGD(ps, lr=0.1, weight_decay=0.01),
                 lambda ps: tg.optim.Adam(ps, lr=0.01),
                 lambda ps: tg.optim.AdamW(ps, lr=0.01, weight_decay=0.1)):
        one = _with_threads(1, lambda: run(make))
        two = _with_threads(2, lambda: run(make))
        np.testing.assert_array_equal(one, two)


OPTIMIZERS = {
    "sgd": lambda ps: tg.optim.SGD(ps, lr=0.1, weight_decay=0.01),
    "sgd_momentum": lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
    "sgd_nesterov": lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: tg.optim.Adam(ps, lr=0.01, weight_decay=0.01),
    "adamw": lambda ps: tg.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


def _numpy_optimizer_steps(name, w, g, steps):
    """The same updates written out in float64 NumPy (PyTorch's conventions)."""
    w, buf, m, v = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape), np.zeros(w.shape)
    for t in range(1, steps + 1):
        if name.startswith("sgd"):
            wd, mu = (0.01, 0.0) if name == "sgd" else (0.01 if name == "sgd_nesterov" else 0.0, 0.9)
            d = g + wd * w
            if mu:
                buf = mu * buf + d
                d = d + mu * buf if name == "sgd_nesterov" else buf
            w = w - 0.1 * d
        else:
            gi = g + 0.01 * w if name == "adam" else g
            if name == "adamw":
                w = w * (1 - 0.01 * 0.1)
            m = 0.9 * m + 0.1 * gi
            v = 0.999 * v + 0.001 * gi * gi
            w = w - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return w


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 9, 17, 1000, 4097])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_loops_every_isa_same_bits_and_match_numpy(name, n, dtype, restore_isa_and_threads):
    rng = np.random.default_rng(n)
    w0, g0 = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    results = {}
    for isa in ISAS:
        _core._set_isa(isa)
        p = tg.Variable(w0.copy(), requires_grad=True)
        opt = OPTIMIZERS[name]([p])
        for _ in range(3):
            p.grad = g0
            opt.step()
        results[isa] = p.numpy()
    for isa in ISAS[1:]:
        np.testing.assert_array_equal(results[ISAS[0]], results[isa])
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(results[ISAS[0]], _numpy_optimizer_steps(name, w0, g0.astype(np.float64), 3),
                               rtol=tol, atol=tol)


def test_pool_survives_fork():
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    x = np.random.default_rng(0).standard_normal(300_000)
    _with_threads(2, lambda: tg.tanh(tg.Variable(x)).numpy())  # start the workers
    with ctx.Pool(1) as pool:
        got = pool.apply(_child_tanh_sum, (x,))
    np.testing.assert_allclose(got, np.tanh(x).sum(), rtol=1e-10)


def _child_tanh_sum(x):
    tg.set_num_threads(2)
    return float(tg.tanh(tg.Variable(x)).sum().numpy())


@pytest.mark.parametrize("name", UNARY)
def test_float32_transcendentals_are_within_one_ulp_of_float64_libm(name, restore_isa_and_threads):
    """Every elementwise op on float32 against float64 NumPy (or the reference engine): within
    op_cases.f32_ulp(name) ulps; exp/log/log1p/tanh/sigmoid, the vectorized float32 kernels
    (cpp/src/simd/loops.hpp), within one."""
    rng = np.random.default_rng(11)
    xs = np.concatenate([rng.standard_normal(20_000).astype(np.float32) * s for s in (1e-6, 1e-3, 0.06, 1, 5, 30, 90)])
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e-45, 88.7, 88.8, -103.0, -104.0,
                         -87.3, 0.0625, -0.0625, 20.0, -20.0], dtype=np.float32)
    xs = np.concatenate([xs, specials])
    ref = op_cases.oracle(name)
    bound = op_cases.f32_ulp(name)
    with np.errstate(all="ignore"):
        want = ref(xs.astype(np.float64))
        want32 = want.astype(np.float32)
    for isa in ISAS:
        _core._set_isa(isa)
        got = getattr(tg, name)(tg.Variable(xs)).numpy()
        assert got.dtype == np.float32
        nan = np.isnan(want32)
        np.testing.assert_array_equal(np.isnan(got), nan)
        exact = ~nan & (~np.isfinite(want32) | (want32 == 0))  # inf, and results that underflow to 0
        np.testing.assert_array_equal(got[exact], want32[exact])
        rest = ~nan & ~exact
        ulp = np.abs(got[rest].astype(np.float64) - want[rest]) / np.spacing(np.abs(want32[rest]))
        assert ulp.max() <= bound, (isa, float(ulp.max()))


def test_sizes_whose_byte_count_overflows_raise_memory_error():
    one = tg.Variable(np.array(1.0))
    for n in (2**61 - 2**57, 2**61, 2**62):
        view = tg.broadcast_to(one, (n,))  # a stride-0 view: no bytes
        with pytest.raises(MemoryError, match=rf"multiply: cannot allocate {n * 8} bytes for shape \({n},\)"):
            view * 2.0
    # An element count beyond int64 is a shape NumPy refuses: ValueError.
    with pytest.raises(ValueError, match="broadcast_to: the array is too big"):
        tg.broadcast_to(one, (2**31, 2**31, 4))
    assert tg.broadcast_to(one, (0, 2**62)).shape == (0, 2**62)  # empty: no bytes at all


@pytest.mark.parametrize("bad", [0, 1025])
def test_set_num_threads_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match=r"set_num_threads: n must be in \[1, 1024\]"):
        tg.set_num_threads(bad)


def test_fork_while_another_thread_allocates_does_not_deadlock_the_child():
    """The buffer cache's lock is taken around fork (a sweep allocates without the GIL)."""
    import os
    import threading
    import time

    stop = threading.Event()

    def sweeps():
        x = tg.Variable(np.ones(600), requires_grad=True)
        while not stop.is_set():
            (tg.tanh(x * 2.0) * 3.0).sum().backward()

    t = threading.Thread(target=sweeps)
    t.start()
    children = []
    try:
        for _ in range(60):
            pid = os.fork()
            if pid == 0:  # child: one allocation through the cache, then leave at once
                try:
                    ok = float((tg.Variable(np.ones(1000)) * 3.0).sum().numpy()) == 3000.0
                finally:
                    os._exit(0 if ok else 1)
            children.append(pid)
    finally:
        stop.set()
        t.join()
    deadline = time.monotonic() + 30
    hung = []
    for pid in children:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
                break
            if time.monotonic() > deadline:
                hung.append(pid)
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)
    assert not hung, f"{len(hung)} forked children hung"


def test_shapes_with_more_dimensions_than_kept_inline():
    """tg::Shape keeps 6 dimensions inline and moves to the heap beyond: ops on 7-10-d Variables
    (broadcasting, reductions, transposes, reshapes and their gradients) match the reference."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal((2, 1, 3, 1, 2, 1, 2, 3))
    b = rng.standard_normal((1, 2, 1, 2, 1, 3, 2, 1))
    results = []
    for m in (tg, reference_engine()):
        A, B = m.Variable(a, requires_grad=True), m.Variable(b, requires_grad=True)
        p = A * B                                                   # (2, 2, 3, 2, 2, 3, 2, 3)
        q = m.transpose(p, tuple(range(8))[::-1]).sum(axis=(0, 7))  # (2, 3, 2, 2, 3, 2)
        r = m.reshape(m.tanh(q), (1, 2, 1, 3, 2, 1, 2, 3, 1, 2))    # 10-d
        loss = (r * r).sum() + p.sum(axis=(1, 4)).max()
        loss.backward()
        results.append([np.asarray(r.data), np.asarray(A.grad), np.asarray(B.grad)])
    assert results[0][0].shape == (1, 2, 1, 3, 2, 1, 2, 3, 1, 2)
    for got, want in zip(*results):
        assert_close(got, want, rtol=1e-12, atol_scale=1e-13)


@measures_memory
def test_small_buffers_are_reused_too():
    """Buffers from 65 bytes to 4 KiB go through the cache as well (glibc's aligned_alloc was a
    fifth of a small MLP step); bytes up to 64 live inside the Storage."""
    x = tg.Variable(np.ones((7, 9), dtype=np.float32))  # 252 bytes
    for _ in range(3):  # warm-up: the loop below holds at most four such buffers at once
        y = tg.exp(x * 2.0) + 1.0
    before = _core._buffer_cache_stats()
    for _ in range(50):
        y = tg.exp(x * 2.0) + 1.0
    after = _core._buffer_cache_stats()
    assert after["system_allocs"] == before["system_allocs"], (before, after)
    assert after["reuses"] >= before["reuses"] + 100
    np.testing.assert_allclose(y.numpy(), np.exp(2.0) + 1.0, rtol=1e-6)


@pytest.mark.parametrize("shape,axis", [((32, 16), 0), ((7, 1, 5), 0), ((3, 4, 5), (0, 1)), ((2, 1, 3, 9), (0, 2)),
                                        ((33, 1), 1), ((3, 4, 5), (1, 2)), ((3, 4, 5), 2), ((6, 1, 7), (1, 2))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_and_column_sums_fast_path(shape, axis, dtype, restore_isa_and_threads):
    """Sums over leading axes (bias gradients) add rows in order in the input dtype; sums over
    trailing axes add each row in double: exactly what the general path does for these layouts,
    in every instruction set, with gradients to match."""
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    axes = (axis,) if isinstance(axis, int) else axis
    results = []
    for isa in ISAS:
        _core._set_isa(isa)
        v = tg.Variable(x, requires_grad=True)
        s = v.sum(axis=axis)
        (s * s).sum().backward()
        results.append((s.numpy(), v.grad))
    for got in results[1:]:
        for a, b in zip(results[0], got):
            np.testing.assert_array_equal(a, b)
    got = results[0][0]
    kept = [d for d in range(len(shape)) if d not in axes and shape[d] != 1]
    reduced = [a for a in axes if shape[a] != 1]
    leading = bool(reduced) and all(d > max(reduced) for d in kept)
    if leading:  # rows added one after another in the input dtype: bitwise
        moved = np.moveaxis(x, axes, tuple(range(len(axes)))).reshape((-1,) + got.shape)
        want = moved[0].copy()
        for row in moved[1:]:
            want = want + row
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, x.astype(np.float64).sum(axis=axis), rtol=1e-5 if dtype == np.float32 else 1e-13,
                               atol=1e-5 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(results[0][1], np.broadcast_to(2 * np.expand_dims(got, axes), shape), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (257, 7), (3, 4, 9), (300, 17), (2100, 33)])
def test_softmax_rows_fast_path_every_isa_threads_and_reference(shape, dtype, restore_isa_and_threads):
    """softmax / log_softmax over the last axis run row by row in blocks of 2048 elements (exp over a
    block at once), split over threads above 32K elements: same bits in every instruction set and
    at any thread count, equal to the reference (general path), including -inf / inf / NaN rows."""
    rng = np.random.default_rng(shape[-1])
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    if shape[0] >= 5:
        x[1] = -np.inf          # a row of -inf: shift by 0, exp(-inf) = 0, 0/0 = NaN (as NumPy)
        x[2, ..., 0] = np.inf   # an inf entry
        x[3, ..., -1] = np.nan  # NaN propagates through its row only
        x[4, ..., 0] = 80.0     # large, finite: no overflow after the shift
    results = {}
    for isa in ISAS:
        _core._set_isa(isa)
        for threads in (1, 2):
            def run():
                v = tg.Variable(x, requires_grad=True)
                p, lp = tg.softmax(v, axis=-1), tg.log_softmax(v, axis=-1)
                w = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
                ((p * w).sum() + lp[..., :1].sum()).backward()
                return p.numpy(), lp.numpy(), v.grad
            results[(isa, threads)] = _with_threads(threads, run)
    first = results[(ISAS[0], 1)]
    for key, got in results.items():
        for a, b in zip(first, got):
            np.testing.assert_array_equal(a, b, err_msg=str(key))
    R = reference_engine()
    with np.errstate(all="ignore"):
        want_p = np.asarray(R.softmax(R.Variable(x), axis=-1).data)
        want_lp = np.asarray(R.log_softmax(R.Variable(x), axis=-1).data)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(first[0], want_p, rtol=tol, atol=tol, equal_nan=True)
    # log_softmax = x - lse cancels where p is near 1: its error is absolute, a few ulps of lse ~ |x|
    scale = max(1.0, float(np.max(np.abs(x[np.isfinite(x)]))))
    np.testing.assert_allclose(first[1], want_lp, rtol=tol, atol=4 * tol * scale, equal_nan=True)


def test_fused_losses_free_their_buffers_after_backward():
    """The fused losses keep tensors in their node (softmax probabilities, the target); a backward
    without retain_graph frees them with the saved values, even while the loss Variable lives on."""
    rng = np.random.default_rng(2)
    W = tg.Variable(rng.standard_normal((64, 300)), requires_grad=True)
    x = rng.standard_normal((128, 64))
    y = rng.integers(0, 300, 128)
    t = rng.standard_normal((128, 300))

    def step():
        z = tg.Variable(x) @ W
        loss = tg.nn.cross_entropy(z, y) + tg.nn.mse_loss(z, t)
        loss.backward()
        W.grad = None
        return loss

    kept = [step() for _ in range(2)]
    before = _core._buffer_cache_stats()["in_use_bytes"]
    kept += [step() for _ in range(10)]
    grown = _core._buffer_cache_stats()["in_use_bytes"] - before
    assert grown < 128 * 300 * 8, grown  # less than one (128, 300) buffer for ten kept losses
    with pytest.raises(RuntimeError, match="already released"):
        kept[-1].backward()


def test_mse_target_variable_is_copied():
    x = tg.Variable(np.array([1.0, 2.0]), requires_grad=True)
    target = tg.Variable(np.array([0.0, 0.0]))
    loss = _core._mse_loss(x, target, False)
    target.data[...] = 10.0  # changed after the loss was recorded
    loss.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


# ----- Vectorized transcendental kernels (cpp/src/simd/math.hpp): accuracy against a long double oracle -----
# Bars (issue 17): within 2 ulp (float64) and 1 ulp (float32) of the correctly rounded value, the same bits in
# every ISA build and at 1 and 2 threads. The oracle is NumPy's long double (x87 extended: 64-bit significand,
# so rounding it to float64 is correct to ~2^-11 ulp).
LONG_DOUBLE_OK = np.finfo(np.longdouble).nmant >= 63
needs_long_double = pytest.mark.skipif(not LONG_DOUBLE_OK, reason="the oracle needs an 80-bit long double (x86)")

_LD = np.longdouble
_PIO2 = _LD("1.57079632679489661923132169163975144")


def _ld_sigmoid(x):
    return _LD(1) / (_LD(1) + np.exp(-x))


def _ld_softplus(x):
    return np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(-np.abs(x))))


LD_ORACLE = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "sin": np.sin, "cos": np.cos, "tan": np.tan,
             "tanh": np.tanh, "sigmoid": _ld_sigmoid, "softplus": _ld_softplus, "arcsin": np.arcsin,
             "arccos": np.arccos, "arctan": np.arctan, "sqrt": np.sqrt}
# ----- h85-expfam: expm1, sinh, cosh, exp2 (long double libm; their own tests at the end of the file) -----
LD_ORACLE.update({"expm1": np.expm1, "sinh": np.sinh, "cosh": np.cosh, "exp2": np.exp2})
_H85_MAIN = {"expm1": (-50, 710), "sinh": (-711, 711), "cosh": (-711, 711), "exp2": (-1080, 1030)}
# where the kernels switch (k = 0 <-> +-1 at ln2/2; sinh/cosh's e^a / 2 at 20 (float: 10); expm1's -1 clamp
# (-45, float -20) and k = 1024 (709.43)), the overflow thresholds (exp's 709.78, sinh/cosh's 710.476; float
# 88.72, 89.416), exp2's range ends and binade edges, and 0
_H85_CENTERS = {
    "expm1": [0.0, 0.34657359, -0.34657359, -45.0, -38.0, -20.0, -17.3, 709.43613930310391, 709.782712893384,
              88.3762626647949, 88.7228391, 1e-8, -1e-8],
    "sinh": [0.0, 0.34657359, 20.0, -20.0, 10.0, -10.0, 710.4758600739439, -710.4758600739439, 89.4159851,
             -89.4159851, 709.782712893384, 1e-8, -1e-8],
    "cosh": [0.0, 0.34657359, 20.0, -20.0, 10.0, -10.0, 710.4758600739439, -710.4758600739439, 89.4159851,
             -89.4159851, 709.782712893384],
    "exp2": [0.0, 0.5, -0.5, 1024.0, -1022.0, -1074.0, -1075.0, 128.0, -126.0, -149.0, -150.0, 1e-8, -1e-8],
}


# ----- h87-act: silu, gelu, log_sigmoid oracles -----
def _ld_two_prod(a, b):
    """a * b = p + e exactly in long double (Dekker: 64-bit significands split at 32 bits)."""
    p = a * b
    sp = _LD(2**32 + 1)
    t = sp * a
    ah = t - (t - a)
    t = sp * b
    bh = t - (t - b)
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _ld_sig(u):
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(u))
    return np.where(u >= 0, _LD(1) / (_LD(1) + e), e / (_LD(1) + e))


def _ld_silu(x):
    return x * _ld_sig(x)


def _ld_gelu(x):
    # x sigmoid(u), u = C x (1 + A x^2) with tapegrad's two doubles: u as a long double pair (|u| up to ~760
    # before gelu underflows, and sigmoid's relative error is |u| times u's: u in long double alone is ~1 ulp
    # of float64 off there); sigmoid(u + ue) = sigmoid(u) (1 + sigmoid(-u) ue). Beyond |x| = 30: x or -0.
    C, A = _LD(1.5957691216057308), _LD(0.044715)
    xc = np.clip(x, -30, 30)
    x2, x2e = _ld_two_prod(xc, xc)
    p, pe = _ld_two_prod(A, x2)
    pe = pe + A * x2e
    t = 1 + p
    tb = t - 1
    te = ((1 - (t - tb)) + (p - tb)) + pe
    cx, cxe = _ld_two_prod(C, xc)
    u, ue = _ld_two_prod(cx, t)
    ue = ue + cx * te + cxe * t
    r = x * _ld_sig(u) * (1 + _ld_sig(-u) * ue)
    return np.where(x > 30, x, np.where(x < -30, x * 0, r))


def _ld_log_sigmoid(x):
    return -_ld_softplus(-x)


LD_ORACLE.update({"silu": _ld_silu, "gelu": _ld_gelu, "log_sigmoid": _ld_log_sigmoid})
_H87_MAIN = {"silu": (-760, 760), "gelu": (-25, 25), "log_sigmoid": (-746, 746)}
_H87_CENTERS = {"silu": [0.0, -708.4, -745.13, -751.8, -760.0, 36.7], "gelu": [0.0, -5.0, -10.5, -19.9, -21.4, 5.5, 30.0],
                "log_sigmoid": [0.0, 745.13, 708.4, -36.7, -709.78]}

SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 2.2250738585072014e-308, -2.2250738585072014e-308,
            1.0, -1.0, 0.5, 2.0, 1e-300, -1e-300, 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308]


def _f64_points(name, n=1_000_000, seed=5):
    """n float64 points over the whole domain of `name`: every binade of both signs, the function's own
    edge ranges (overflow/underflow thresholds, near 1 or -1, near multiples of pi/2, the Cody-Waite bound,
    the rational/exp switch of tanh), and the special values."""
    rng = np.random.default_rng(seed)
    k = n // 4
    every_binade = np.exp2(rng.uniform(-1074, 1024, k)) * rng.choice([-1.0, 1.0], k)
    main = {"exp": (-746, 710), "log": (0, 4), "log1p": (-1, 3), "sin": (-20, 20), "cos": (-20, 20),
            "tan": (-20, 20), "tanh": (-25, 25), "sigmoid": (-746, 746), "softplus": (-746, 746),
            "arcsin": (-1, 1), "arccos": (-1, 1), "arctan": (-10, 10), "sqrt": (0, 4), **_H85_MAIN,
            **_H87_MAIN}[name]
    uniform = rng.uniform(*main, k)
    moderate = np.exp2(rng.uniform(-60, 12, k)) * rng.choice([-1.0, 1.0], k)
    m = n - 3 * k
    if name == "exp":
        centers = [709.782712893384, -745.1332191019411, -708.3964185322641, 0.0]
    elif name == "log":
        centers = [1.0, 2.2250738585072014e-308, 0.7071067811865476, 1.4142135623730951]
    elif name == "log1p":
        centers = [-1.0, 0.0, 0.41421356237309503, -0.2928932188134524, 1.0]
    elif name in ("sin", "cos", "tan"):
        # near multiples of pi/2 (where the reduction cancels) up to the bound, and either side of it
        j = rng.integers(-(2**20), 2**20, m // 2)
        near = (j * _PIO2).astype(np.float64)
        near = near + near * rng.uniform(-1e-14, 1e-14, near.size)
        edge = 1647099.0 + rng.uniform(-2, 2, m - m // 2) * rng.choice([-1.0, 1.0], m - m // 2)
        return np.concatenate([every_binade, uniform, moderate, near, edge, SPECIALS])
    elif name == "tanh":
        centers = [0.625, -0.625, 22.0, -22.0, 0.0]
    elif name in ("arcsin", "arccos"):  # the branch switch (0.5; 0.975 was fdlibm's), and +-1
        centers = [0.5, -0.5, 0.975, -0.975, 1.0, -1.0, 0.0]
    elif name == "arctan":  # s_atan.c's reduction intervals' edges, and where it returns pi/2
        centers = [0.4375, 0.6875, 1.1875, 2.4375, -0.4375, -0.6875, -1.1875, -2.4375, 2.0**66, 0.0]
    elif name == "sqrt":
        centers = [0.0, 1.0, 2.2250738585072014e-308]
    elif name in _H85_CENTERS:
        centers = _H85_CENTERS[name]
    elif name in _H87_CENTERS:
        centers = _H87_CENTERS[name]
    else:  # sigmoid, softplus
        centers = [0.0, -745.1332191019411, -708.4, 36.7, 709.78]
    c = np.array(centers)[rng.integers(0, len(centers), m)]
    edges = c + np.abs(c + 1e-300) * rng.uniform(-1e-3, 1e-3, m) + rng.uniform(-1e-6, 1e-6, m)
    return np.concatenate([every_binade, uniform, moderate, edges, SPECIALS])


def _ulp_error(got, want_ld, dtype):
    """|got - want| in ulps of the correctly rounded result; inf and NaN results must match exactly."""
    with np.errstate(all="ignore"):
        want = want_ld.astype(dtype)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    exact = ~nan & ~np.isfinite(want)
    np.testing.assert_array_equal(got[exact], want[exact])
    rest = ~nan & ~exact
    w = np.abs(want[rest])
    with np.errstate(over="ignore"):
        ulp = np.spacing(w)
    ulp = np.where(np.isinf(ulp), np.spacing(np.nextafter(w, 0)), ulp)  # the largest finite value
    err = np.abs(got[rest].astype(np.longdouble) - want_ld[rest]) / ulp.astype(np.longdouble)
    return err.astype(np.float64), rest


# ----- h86-logfam: log2, log10, cbrt, arcsinh, arccosh, arctanh (simd/math.hpp's last block) -----
# Oracles and points for the whole-domain tests below (float64 <= 2 ulp, float32 <= 1 ulp, same bits
# everywhere); the kernels measure 0.501 ulp (float64) and 0.5 ulp (float32) on these points.
LD_ORACLE.update({"log2": np.log2, "log10": np.log10, "cbrt": np.cbrt, "arcsinh": np.arcsinh,
                  "arccosh": np.arccosh, "arctanh": np.arctanh})
# name: (the uniform range, edge centers: pow_log2's reduction switches, log10's powers, cbrt's exponent
# classes, the 2^28 switch to log(2x), the tiny-argument cut-offs, the poles and 1)
_LOGFAM_POINTS = {
    "log2": ((0, 4), [1.0, 0.7071067811865476, 1.4142135623730951, 1.224744871391589, 1.7320508075688772]),
    "log10": ((0, 4), [1.0, 0.7071067811865476, 1.4142135623730951, 10.0, 0.1, 1e22]),
    "cbrt": ((-10, 10), [1.0, 2.0, 4.0, 8.0, -8.0, 2.2250738585072014e-308]),
    "arcsinh": ((-10, 10), [2.0**-26, -(2.0**-26), 2.0**28, -(2.0**28), 1.0, 0.0]),
    "arccosh": ((1, 10), [1.0, 2.0, 2.0**28]),
    "arctanh": ((-1, 1), [1.0, -1.0, 0.5, 2.0**-27, -(2.0**-27), 0.0]),
}
_f64_points_without_logfam = _f64_points


def _f64_points(name, n=1_000_000, seed=5):  # noqa: F811 (the points above, for this block's names)
    if name not in _LOGFAM_POINTS:
        return _f64_points_without_logfam(name, n, seed)
    (lo, hi), centers = _LOGFAM_POINTS[name]
    x = _f64_points_without_logfam("sqrt", n, seed)  # every binade, moderate values, the special values
    rng = np.random.default_rng(seed + 1)
    k = n // 4
    c = np.array(centers)[rng.integers(0, len(centers), k)]
    edges = c + np.abs(c + 1e-300) * rng.uniform(-1e-3, 1e-3, k) * rng.choice([1.0, 1e-10], k)
    return np.concatenate([x, rng.uniform(lo, hi, k), edges])


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log2_log10_exact_at_powers_cbrt_exact_at_cubes(dtype, restore_isa_and_threads):
    # NumPy's (libm's) answers users test: log2(2^k) = k for every power of two (subnormal too),
    # log10(10^k) = k for every normal power of ten (the nearest float where it is not exact),
    # cbrt(n^3) = n for the integer cubes the dtype holds exactly, with either sign.
    fi = np.finfo(dtype)
    k2 = np.arange(int(np.log2(fi.smallest_subnormal)), fi.maxexp)
    got = _run_every_isa_and_thread_count(tg.log2, np.ldexp(np.ones(k2.size), k2).astype(dtype))
    np.testing.assert_array_equal(got, k2.astype(dtype))
    k10 = np.arange(int(np.ceil(np.log10(fi.tiny))), int(np.log10(fi.max)) + 1)  # (subnormal: too coarse)
    with np.errstate(all="ignore"):
        p10 = np.array([float(f"1e{k}") for k in k10]).astype(dtype)
    got = _run_every_isa_and_thread_count(tg.log10, p10)
    np.testing.assert_array_equal(got, k10.astype(dtype))
    n = np.arange(1, 2**17 + 1 if dtype == np.float64 else 256, dtype=np.int64)
    n = np.concatenate([n, -n])
    got = _run_every_isa_and_thread_count(tg.cbrt, (n**3).astype(dtype))
    np.testing.assert_array_equal(got, n.astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["log2", "log10", "cbrt", "arcsinh", "arccosh", "arctanh"])
def test_logfam_special_values_as_numpy(name, dtype, restore_isa_and_threads):
    # -0.0, +-inf, NaN, the domain's edges and beyond (NaN, not an error), the extremes of the range
    # (arcsinh and arccosh of the largest floats: no overflow), signed zeros kept (odd functions).
    fi = np.finfo(dtype)
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, fi.max, -fi.max,
                  fi.tiny, -fi.tiny, fi.smallest_subnormal, -fi.smallest_subnormal, 1 + fi.eps, 1 - fi.epsneg,
                  -(1 - fi.epsneg)], dtype=dtype)
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        want = getattr(np, name)(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))
    inf = ok & np.isinf(want)
    np.testing.assert_array_equal(got[inf], want[inf])
    assert np.isfinite(got[ok & ~inf]).all()


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, deriv, lo, hi", [
    ("log2", lambda v: 1 / (v * np.log(_LD(2))), 0.01, 100), ("log10", lambda v: 1 / (v * np.log(_LD(10))), 0.01, 100),
    ("cbrt", lambda v: 1 / (3 * np.cbrt(v) ** 2), -100, 100), ("arcsinh", lambda v: 1 / np.sqrt(1 + v * v), -100, 100),
    ("arccosh", lambda v: 1 / np.sqrt((v - 1) * (v + 1)), 1, 100),
    ("arctanh", lambda v: 1 / ((1 - v) * (1 + v)), -1, 1)])
def test_logfam_gradients_near_the_poles_every_isa(name, deriv, lo, hi, dtype, restore_isa_and_threads):
    # The fused derivative kernels: (x - 1)(x + 1) and (1 - x)(1 + x), not x x - 1 and 1 - x x, which
    # cancel near 1 (x x rounds: 2^-14 relative error at x = 1 + 2^-40); the same bits everywhere. The
    # points crowd the poles (arccosh at 1, arctanh at +-1) from within ~1 ulp.
    rng = np.random.default_rng(31)
    near = np.exp2(-rng.uniform(1, 52 if dtype == np.float64 else 23, 100_000))
    x = np.concatenate([rng.uniform(lo, hi, 100_000), 1 + near, 1 - near, -1 + near]).astype(dtype)
    x = x[(x > lo) & (x < hi) & (x != 0)]

    def grad(v):
        v.requires_grad = True
        getattr(tg, name)(v).sum().backward()
        return v.grad

    got = _run_every_isa_and_thread_count(grad, x)
    with np.errstate(all="ignore"):
        want = deriv(x.astype(np.longdouble))
    np.testing.assert_allclose(got, want.astype(dtype), rtol=5e-7 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("name", ["log2", "log10", "cbrt", "arcsinh", "arccosh", "arctanh"])
def test_logfam_second_derivative_and_jvp_match_the_formulas(name):
    # The composite rule (create_graph) and the JVP, against f'' and f' written out in float64.
    x = {"arccosh": np.array([1.01, 1.5, 3.0, 1e5]), "arctanh": np.array([-0.99, -0.3, 1e-8, 0.5, 0.999]),
         "log2": np.array([1e-3, 0.5, 2.0, 1e10]), "log10": np.array([1e-3, 0.5, 2.0, 1e10])}.get(
        name, np.array([-50.0, -0.7, 1e-5, 0.3, 2.0, 1e4]))
    d1 = {"log2": lambda v: 1 / (v * np.log(2)), "log10": lambda v: 1 / (v * np.log(10)),
          "cbrt": lambda v: 1 / (3 * np.cbrt(v) ** 2), "arcsinh": lambda v: 1 / np.sqrt(1 + v * v),
          "arccosh": lambda v: 1 / np.sqrt((v - 1) * (v + 1)), "arctanh": lambda v: 1 / ((1 - v) * (1 + v))}[name]
    d2 = {"log2": lambda v: -1 / (v * v * np.log(2)), "log10": lambda v: -1 / (v * v * np.log(10)),
          "cbrt": lambda v: -2 / (9 * np.cbrt(v) ** 5), "arcsinh": lambda v: -v / (1 + v * v) ** 1.5,
          "arccosh": lambda v: -v / ((v - 1) * (v + 1)) ** 1.5,
          "arctanh": lambda v: 2 * v / ((1 - v) * (1 + v)) ** 2}[name]
    v = tg.Variable(x, requires_grad=True)
    getattr(tg, name)(v).sum().backward(create_graph=True)
    g = v.grad
    np.testing.assert_allclose(g.data, d1(x), rtol=1e-13)
    v.grad = None
    g.sum().backward()
    # (arctanh'' near 0: d[(1 - x)(1 + x)] = (1 - x) - (1 + x) cancels, ~1e-16 absolute; the price of
    # the product form, exact-er than 1 - x x near +-1 in first order)
    np.testing.assert_allclose(v.grad, d2(x), rtol=1e-12, atol=1e-15)
    t = np.linspace(0.5, 1.5, x.size)
    _, tangent = tg.jvp(getattr(tg, name), (x,), (t,))
    np.testing.assert_allclose(tangent, d1(x) * t, rtol=1e-13)


@needs_long_double
@pytest.mark.parametrize("name", list(LD_ORACLE))
def test_float64_transcendentals_within_two_ulp_same_bits_everywhere(name, restore_isa_and_threads):
    x = _f64_points(name)
    assert x.size >= 1_000_000
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        want = LD_ORACLE[name](x.astype(np.longdouble))
    err, rest = _ulp_error(got, want, np.float64)
    worst = int(np.argmax(err))
    assert err.max() <= 2.0, (name, float(err.max()), float(x[rest][worst]))
    # Signed zeros as IEEE: sin, tan, tanh, log1p, arcsin, arctan and sqrt keep the sign of a zero.
    if name in ("sin", "tan", "tanh", "log1p", "arcsin", "arctan", "sqrt"):
        zero = x == 0
        np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(x[zero]))
        assert not got[zero].any()


@needs_long_double
@pytest.mark.parametrize("name", list(LD_ORACLE))
def test_float32_transcendentals_within_one_ulp_same_bits_everywhere(name, restore_isa_and_threads):
    x64 = _f64_points(name, seed=6)
    with np.errstate(all="ignore"):
        x = x64.astype(np.float32)
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    assert got.dtype == np.float32
    with np.errstate(all="ignore"):
        want = LD_ORACLE[name](x.astype(np.longdouble))
    err, rest = _ulp_error(got, want, np.float32)
    assert err.max() <= 1.0, (name, float(err.max()), float(x[rest][int(np.argmax(err))]))


@needs_long_double
def test_float32_tanh_every_float_where_the_exp_scale_minus_one_rounds(restore_isa_and_threads):
    # tanhf_fast's m = 2^k (1 + r + X) - 1: 2^k - 1 is inexact in float for k < -24 (|x| > ~8.3), where tanh
    # is still below 1 until ~9.01; its rounding error must go into the pair's tail (it did not at first: 1.41
    # ulp). Every float in [8, 9.5] of both signs, and around the first reduction switch (|x| ~ ln2 / 4).
    lo, hi = np.array([8.0, 9.5], np.float32).view(np.int32)
    band = np.arange(lo, hi, dtype=np.int32).view(np.float32)
    lo, hi = np.array([0.16, 0.19], np.float32).view(np.int32)
    switch = np.arange(lo, hi, 3, dtype=np.int32).view(np.float32)
    x = np.concatenate([band, -band, switch, -switch])
    got = _run_every_isa_and_thread_count(tg.tanh, x)
    want = np.tanh(x.astype(np.longdouble))
    err, rest = _ulp_error(got, want, np.float32)
    assert err.max() <= 1.0, (float(err.max()), float(x[rest][int(np.argmax(err))]))


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sin", "cos", "tan"])
def test_trig_beyond_the_reduction_bound_takes_libm_at_every_block_position(name, dtype, restore_isa_and_threads):
    # Lanes beyond kTrigBound (and inf, NaN) are redone with libm after the vector pass, per block of 256:
    # put them at block edges, in runs and alone, in place of the fast lanes around them.
    rng = np.random.default_rng(8)
    x = rng.uniform(-3, 3, 1000).astype(dtype)
    slow = [0, 1, 255, 256, 257, 511, 512, 700, 701, 702, 999]
    x[slow] = np.array([1e300 if dtype == np.float64 else 3e38, -2e6, np.inf, -np.inf, np.nan, 1647100.0,
                        -1647100.0, 1e22, 5e15, -7e9, 1e6 * np.pi], dtype=np.float64).astype(dtype)
    if dtype == np.float32:  # (float32's bound is 1600: these are slow lanes there too)
        x[[3, 600, 998]] = [1600.0001, -2000.0, 1e5]
        slow = slow + [3, 600, 998]
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        want = getattr(np, name)(x.astype(np.float64)).astype(dtype)  # libm in float64
        ld = getattr(np, name)(x.astype(np.longdouble))
    np.testing.assert_array_equal(got[slow], want[slow])
    err, _ = _ulp_error(got, ld, dtype)
    assert err.max() <= (1.0 if dtype == np.float32 else 2.0)


@needs_long_double
@pytest.mark.parametrize("name", ["sin", "cos", "tan"])
def test_float32_trig_near_multiples_of_half_pi_and_the_float_bound(name, restore_isa_and_threads):
    # The float32 kernels reduce in float (pi/2 in four parts, exact products for |n| <= 1023): every float
    # within 200 ulps of each n pi/2 up to the float bound (1600, where the reduction cancels most), the
    # floats either side of the bound (beyond it: libm's lanes), and tiny and subnormal x.
    n = np.arange(-1019, 1020)
    centers = (n * _PIO2).astype(np.float32)
    steps = np.arange(-200, 201)
    bits = centers.view(np.int32)[:, None] + np.sign(centers.view(np.int32))[:, None] * steps[None, :]
    near = bits.astype(np.int32).view(np.float32).ravel()
    bound = np.float32(1600.0).view(np.int32) + np.arange(-3000, 3000, dtype=np.int32)
    edge = np.concatenate([bound.view(np.float32), -bound.view(np.float32)])
    tiny = np.array([1e-45, -1e-45, 1.1754942e-38, 1e-20, -3e-8, 2.4414062e-4, 0.0, -0.0], dtype=np.float32)
    x = np.concatenate([near[np.isfinite(near)], edge, tiny])
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        ld = getattr(np, name)(x.astype(np.longdouble))
        libm = getattr(np, name)(x.astype(np.float64)).astype(np.float32)
    err, rest = _ulp_error(got, ld, np.float32)
    assert err.max() <= 1.0, (name, float(err.max()), float(x[rest][int(np.argmax(err))]))
    beyond = np.abs(x) > 1600
    assert beyond.sum() > 5000
    np.testing.assert_array_equal(got[beyond], libm[beyond])
    if name != "cos":
        np.testing.assert_array_equal(np.signbit(got[x == 0]), np.signbit(x[x == 0]))


@needs_long_double
@pytest.mark.parametrize("name", ["sin", "cos", "tan"])
def test_float64_trig_at_the_doubles_nearest_multiples_of_half_pi(name, restore_isa_and_threads):
    # Where x - n pi/2 cancels most: the 41 doubles around the one nearest n pi/2, for every n up to 2,000 and
    # 2,000 random n up to the bound 2^20 (a reduction with pi/2 in too few parts fails here first: the
    # random points of _f64_points are rarely this close).
    rng = np.random.default_rng(10)
    n = np.concatenate([np.arange(-2000, 2001), rng.integers(-(2**20) + 1, 2**20, 2000)])
    centers = (n * _PIO2).astype(np.float64)
    steps = np.arange(-20, 21)
    bits = centers.view(np.int64)[:, None] + np.where(centers < 0, -1, 1)[:, None] * steps[None, :]
    x = np.concatenate([bits.ravel().view(np.float64), [0.0, -0.0]])
    x = x[np.abs(x) <= 1647099.0]
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        ld = getattr(np, name)(x.astype(np.longdouble))
    err, rest = _ulp_error(got, ld, np.float64)
    assert err.max() <= 2.0, (name, float(err.max()), float(x[rest][int(np.argmax(err))]))


@needs_long_double
def test_float64_sin_within_0_8_ulp_where_its_one_polynomial_runs_widest(restore_isa_and_threads):
    # sin reduces by pi (x = n pi + r) and evaluates one polynomial on |r| up to pi/2, where the
    # polynomial term is 0.57 of the result and its tail terms count most: around the odd multiples of
    # pi/2 up to 1.6e6, and where sin is near 1 for small x. Measured 0.74 ulp at worst on 5x10^6 points;
    # dropping the second-order term of Z^2 from the tail gives 0.92 here (0.74 with it).
    rng = np.random.default_rng(11)
    k = np.concatenate([np.arange(-40, 40), rng.integers(-(2**19), 2**19, 400)])
    centers = ((2 * k + 1) * _PIO2).astype(np.float64)
    x = (centers[:, None] + rng.uniform(-0.3, 0.3, (centers.size, 500))).ravel()
    x = x[np.abs(x) <= 1647099.0]
    got = _run_every_isa_and_thread_count(tg.sin, x)
    err, rest = _ulp_error(got, np.sin(x.astype(np.longdouble)), np.float64)
    assert err.max() <= 0.8, (float(err.max()), float(x[rest][int(np.argmax(err))]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sin", "cos", "tan"])
def test_trig_zero_d_gives_the_bits_of_the_same_element_in_an_array(name, dtype, restore_isa_and_threads):
    # A 0-d value skips the vector loop (map1_fixup's n == 1 case): its bits must be those of the vector
    # lanes, in every ISA, for fast lanes, libm lanes (beyond the bound, inf, NaN) and signed zeros.
    rng = np.random.default_rng(11)
    bound = 1600.0 if dtype == np.float32 else 1647099.0
    x = np.concatenate([rng.uniform(-3, 3, 40), rng.uniform(-bound, bound, 40), np.exp2(rng.uniform(-30, 0, 20)),
                        [0.0, -0.0, bound, -bound, bound * 1.01, 1e30, -np.inf, np.inf, np.nan]]).astype(dtype)
    f = getattr(tg, name)
    for isa in ISAS:
        _core._set_isa(isa)
        vec = f(tg.Variable(x)).numpy()
        one = np.array([f(tg.Variable(np.asarray(v, dtype=dtype))).numpy() for v in x], dtype=dtype)
        np.testing.assert_array_equal(one.view(np.uint8), vec.view(np.uint8), err_msg=f"{name} {isa}")


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, deriv", [("sin", np.cos), ("cos", lambda v: -np.sin(v))])
def test_sin_cos_gradients_use_the_fast_kernels_and_the_fixup(name, deriv, dtype, restore_isa_and_threads):
    # The backward kernels g * cos(x) and g * -sin(x) (TG_SPEC_DERIV_CASES): the same kernels and fix-up as the
    # forward, so the gradient of sum(sin(x)) is cos(x) to within the same bars, huge lanes included.
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.uniform(-50, 50, 300_000), np.exp2(rng.uniform(-40, 60, 100_000)),
                        [1e30, -3e7, np.inf, np.nan, 0.0, -0.0]]).astype(dtype)

    def grad(v):
        v.requires_grad = True
        getattr(tg, name)(v).sum().backward()
        return v.grad

    got = _run_every_isa_and_thread_count(grad, x)
    with np.errstate(all="ignore"):
        ld = deriv(x.astype(np.longdouble))
    err, _ = _ulp_error(got, ld, dtype)
    assert err.max() <= (1.0 if dtype == np.float32 else 2.0)


@needs_long_double
def test_float32_power_within_one_ulp_and_libm_special_cases(restore_isa_and_threads):
    # float32 x ** y runs as e^(y log x) in float64 where x > 0 and both are finite; libm's powf elsewhere.
    rng = np.random.default_rng(10)
    n = 1_000_000
    x = np.concatenate([np.exp2(rng.uniform(-149, 128, n // 2)), rng.uniform(0, 4, n // 2)]).astype(np.float32)
    y = np.concatenate([rng.uniform(-40, 40, n // 2), rng.uniform(-60, 60, n // 2)]).astype(np.float32)
    sx = np.array([0.0, -0.0, -2.0, -2.0, -2.0, np.inf, -np.inf, np.nan, 1.0, 1.0, 2.0, 0.5, -1.0, 3.0, 0.0],
                  dtype=np.float32)
    sy = np.array([-1.0, 3.0, 3.0, 0.5, 2.0, -1.0, 3.0, 0.0, np.nan, np.inf, np.inf, -np.inf, np.inf, 2.0, 0.0],
                  dtype=np.float32)
    x, y = np.concatenate([x, sx]), np.concatenate([y, sy])
    got = _run_every_isa_and_thread_count(lambda v: v ** tg.Variable(y), x)
    with np.errstate(all="ignore"):
        ld = np.power(x.astype(np.longdouble), y.astype(np.longdouble))
        want64 = np.power(x.astype(np.float64), y.astype(np.float64)).astype(np.float32)
    special = slice(n, None)
    np.testing.assert_array_equal(got[special], want64[special])
    err, _ = _ulp_error(got[:n], ld[:n], np.float32)
    assert err.max() <= 1.0
    # A scalar exponent (the `**` operator with a number) takes the same kernel.
    v = tg.Variable(x[:1000])
    np.testing.assert_array_equal((v ** 3.5).numpy(), (v ** tg.Variable(np.full(1000, 3.5, np.float32))).numpy())


def _atan2_points(dtype, n=1_000_000, seed=11):
    """(y, x) pairs: normal, every binade of both signs (the ratio over- and underflows), x near +-1 and
    y/x near s_atan.c's interval edges, and every pair of special values."""
    rng = np.random.default_rng(seed)
    k = n // 3
    sign = lambda m: rng.choice([-1.0, 1.0], m)
    y = np.concatenate([rng.normal(size=k), np.exp2(rng.uniform(-1074, 1024, k)) * sign(k)])
    x = np.concatenate([rng.normal(size=k), np.exp2(rng.uniform(-1074, 1024, k)) * sign(k)])
    m = n - 2 * k
    xe = sign(m) * np.exp2(rng.uniform(-3, 3, m))
    ratio = np.array([0.4375, 0.6875, 1.1875, 2.4375, 2.0**60, 2.0**-60])[rng.integers(0, 6, m)]
    ye = xe * ratio * (1 + rng.uniform(-1e-3, 1e-3, m)) * sign(m)
    sp = np.array(SPECIALS)
    sy, sx = np.meshgrid(sp, sp)
    with np.errstate(all="ignore"):
        return (np.concatenate([y, ye, sy.ravel()]).astype(dtype), np.concatenate([x, xe, sx.ravel()]).astype(dtype))


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arctan2_within_bars_c99_special_cases_same_bits_everywhere(dtype, restore_isa_and_threads):
    # e_atan2.c made branch-free: atan(|y/x|) by quadrant, and C99's special cases (signed zeros, infinities,
    # NaN) against long double atan2l, whose special cases are C99's.
    y, x = _atan2_points(dtype)
    got = _run_every_isa_and_thread_count(lambda v: tg.arctan2(tg.Variable(y), v), x)
    with np.errstate(all="ignore"):
        want = np.arctan2(y.astype(np.longdouble), x.astype(np.longdouble))
    err, rest = _ulp_error(got, want, dtype)
    assert err.max() <= (1.0 if dtype == np.float32 else 2.0), (float(err.max()), int(np.argmax(err)))
    zero = want == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(want[zero]))
    assert not got[zero].any()


@needs_long_double
@pytest.mark.parametrize("name", ["arcsin", "arccos", "arctan"])
def test_float64_inverse_trig_within_one_ulp(name, restore_isa_and_threads):
    # The fma kernels (h65) are held to 1 ulp, tighter than the 2 ulp bar: SLEEF's asin/acos with sqrt's
    # rounding error carried (z - s^2 by fma over 2s, 1/s from a bit-trick seed), fdlibm's atan reduction.
    # Besides the whole-domain points: |x| in [0.5, 1) densely, where asin(x) = pi/2 - 2 asin(sqrt((1-|x|)/2))
    # and the carried tail matters most (near 0.5 the polynomial term is 40% of pi/4 - s).
    rng = np.random.default_rng(21)
    near = np.concatenate([rng.uniform(0.5, 0.6, 200_000), 1 - np.exp2(rng.uniform(-53, -1, 200_000))])
    x = np.concatenate([_f64_points(name), near, -near])
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        want = LD_ORACLE[name](x.astype(np.longdouble))
    err, rest = _ulp_error(got, want, np.float64)
    assert err.max() <= 1.0, (name, float(err.max()), float(x[rest][int(np.argmax(err))]))


def _floats_around(centers, k):
    """Every float32 within k ulps of each center (both signs), as float32."""
    c = np.abs(np.array(centers, dtype=np.float32)).view(np.int32)
    b = (c[:, None] + np.arange(-k, k + 1, dtype=np.int32)[None, :]).ravel()
    b = b[(b >= 0) & (b <= 0x7F800000)]
    v = b.view(np.float32)
    return np.concatenate([v, -v])


@needs_long_double
@pytest.mark.parametrize("name, edges", [
    ("arcsin", [0.5, 0.975, 1.0, 2.0**-12, 2.0**-126]),  # the float kernel's branch switches, +-1, tiny
    ("arccos", [0.5, 0.975, 1.0, 2.0**-12, 2.0**-126]),
    ("arctan", [0.4375, 0.6875, 1.1875, 2.4375, 2.0**12, 2.0**24, 2.0**-12, 2.0**-126])])
def test_float32_inverse_trig_every_float_near_the_branch_switches(name, edges, restore_isa_and_threads):
    # The float32 kernels compute in float (h54): every float within 20,000 ulps of each reduction edge,
    # both signs, within 1 ulp of long double, the same bits in every ISA and at 1 and 2 threads; beyond
    # +-1 arcsin and arccos give NaN.
    x = _floats_around(edges, 20_000)
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        want = LD_ORACLE[name](x.astype(np.longdouble))
    err, rest = _ulp_error(got, want, np.float32)
    assert err.max() <= 1.0, (name, float(err.max()), float(x[rest][int(np.argmax(err))]))
    if name != "arctan":
        assert np.isnan(got[np.abs(x) > 1]).all() and (np.abs(x) > 1).sum() > 10_000


@needs_long_double
def test_float32_arctan2_near_the_fold_and_the_residual_scaling(restore_isa_and_threads):
    # float32 arctan2 folds y/x to q = min/max in [0, 1] and adds q's division error back from the exact
    # residual on operands scaled by 2^-64 (max > 2^64) or 2^100 (max < 2^-20), dropped below q = 2^-30:
    # |y| ~ |x| in every quadrant, the interval edges of q, and the larger operand either side of the
    # scaling thresholds and near the float range's ends.
    rng = np.random.default_rng(13)
    m = 200_000
    big = np.float32(2.0) ** rng.integers(-149, 128, m).astype(np.float32) * rng.uniform(1, 2, m).astype(np.float32)
    big = np.concatenate([big, _floats_around([2.0**64, 2.0**-20, 3.4028235e38, 2.0**-126, 2.0**-149], 2_000)])
    big = big[np.isfinite(big)]
    q = np.concatenate([np.array([1.0, 0.4375, 0.6875, 2.0**-30])[rng.integers(0, 4, big.size // 2)]
                        * rng.uniform(0.99, 1.01, big.size // 2), 2.0 ** rng.uniform(-40, 0, big.size - big.size // 2)])
    with np.errstate(all="ignore"):
        small = (big * q).astype(np.float32)
    s = rng.integers(0, 2, (3, big.size)).astype(bool)
    x = np.where(s[0], big, small)
    y = np.where(s[0], small, big)
    x = np.where(s[1], -x, x).astype(np.float32)
    y = np.where(s[2], -y, y).astype(np.float32)
    got = _run_every_isa_and_thread_count(lambda v: tg.arctan2(tg.Variable(y), v), x)
    with np.errstate(all="ignore"):
        want = np.arctan2(y.astype(np.longdouble), x.astype(np.longdouble))
    err, rest = _ulp_error(got, want, np.float32)
    worst = int(np.argmax(err))
    assert err.max() <= 1.0, (float(err.max()), float(y[rest][worst]), float(x[rest][worst]))


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, deriv", [("arcsin", lambda v: 1 / np.sqrt(1 - v * v)),
                                         ("arccos", lambda v: -1 / np.sqrt(1 - v * v)),
                                         ("arctan", lambda v: 1 / (1 + v * v))])
def test_inverse_trig_gradients_every_isa_and_thread_count(name, deriv, dtype, restore_isa_and_threads):
    # The fused derivative kernels (g / sqrt(1 - x x) vectorizes only without errno: CMakeLists.txt's
    # -fno-math-errno): same bits everywhere and close to the long double derivative; +-1 give +-inf.
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.uniform(-1, 1, 200_000), [1.0, -1.0, 0.0, -0.0, np.nan, 2.0]]).astype(dtype)

    def grad(v):
        v.requires_grad = True
        getattr(tg, name)(v).sum().backward()
        return v.grad

    with np.errstate(all="ignore"):
        got = _run_every_isa_and_thread_count(grad, x)
        want = deriv(x.astype(np.longdouble))
    # (1 - x x rounds in the working precision: a few ulp near +-1, as NumPy's own formula)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    fin = np.isfinite(want)
    np.testing.assert_array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)].astype(dtype))
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(got[fin], want[fin].astype(dtype), rtol=1e-3 if dtype == np.float32 else 1e-9)


def _pow_points(n=1_000_000, seed=13):
    """(x, y) float64 pairs for x ** y: x over every binade (subnormal too) with y keeping the result in range,
    results near overflow, underflow and the subnormal range, x within 2^-20 of 1 with large y (fdlibm's
    series range), x near the reduction's interval edges (sqrt(3/2), sqrt(3)), negative x with integer y
    (odd and even), integer powers of integers (exact results), and every pair of special values."""
    rng = np.random.default_rng(seed)
    k = n // 8
    sign = lambda m: rng.choice([-1.0, 1.0], m)
    lx = rng.uniform(-1074, 1024, k)  # log2 x
    xs = [np.exp2(lx)]
    ys = [rng.uniform(-1, 1, k) * np.minimum(1070.0 / np.maximum(np.abs(lx), 1e-3), 1e6)]
    # the result's exponent near 1024 (overflow), -1022 (subnormal) and -1075 (underflow)
    lx = rng.uniform(-60, 60, k)
    target = np.array([1023.9, 1024.0, -1022.0, -1050.0, -1074.5, -1075.0])[rng.integers(0, 6, k)]
    xs.append(np.exp2(lx))
    ys.append((target + rng.uniform(-0.2, 0.2, k)) / np.where(np.abs(lx) < 1e-3, 1e-3, lx))
    # x near 1, |y| up to 2^31
    xs.append(1 + rng.uniform(-2.0**-20, 2.0**-20, k))
    ys.append(sign(k) * np.exp2(rng.uniform(0, 31, k)))
    # the interval edges of the log reduction, and moderate values
    edge = np.array([1.0, 1.2247448713915890, 1.7320508075688772, 1.5, 2.0])[rng.integers(0, 5, k)]
    xs.append(edge * (1 + rng.uniform(-1e-6, 1e-6, k)) * np.exp2(rng.integers(-20, 20, k)))
    ys.append(rng.uniform(-30, 30, k))
    xs.append(np.exp2(rng.uniform(-10, 10, k)))
    ys.append(rng.uniform(-50, 50, k))
    # negative x, integer y
    xs.append(-np.exp2(rng.uniform(-8, 8, k)))
    ys.append(np.round(rng.uniform(-100, 100, k)))
    # integers to integer powers (exact when representable)
    xs.append(rng.integers(-30, 31, k).astype(np.float64))
    ys.append(rng.integers(-12, 13, k).astype(np.float64))
    m = n - 7 * k
    xs.append(np.exp2(rng.uniform(-3, 3, m)) * sign(m))
    ys.append(rng.uniform(-5, 5, m))
    sp = np.array(SPECIALS + [3.0, -3.0, 0.25, 2.0**31, -(2.0**31), 2.0**53, 1.5, -1.5])
    sy, sx = np.meshgrid(sp, sp)
    return np.concatenate(xs + [sx.ravel()]), np.concatenate(ys + [sy.ravel()]), sx.size


@needs_long_double
def test_float64_power_rounds_from_a_double_double_log(restore_isa_and_threads):
    # simd/pow.hpp's log2|x| and y log2|x| are double-doubles with FMA (~2^-68 relative), and e^r keeps its
    # tail: half-integer powers of 2 and 1.5 ** (1 + 2^-52) round correctly (fdlibm's form, before FMA, gave
    # 0x1.6a09e667f3bccp+0 for 2 ** 0.5, 1 ulp low, and 1.5 for the last), and under 0.8 ulp overall.
    x = np.array([2.0, 0.5, 2.0, 0.5, 2.0, 1.5, 8.0], np.float64)
    y = np.array([0.5, 0.5, -0.5, 1.5, -1.5, 1.0000000000000002, 0.5])
    got = _run_every_isa_and_thread_count(lambda v: v ** tg.Variable(y), x)
    want = np.array([np.sqrt(2.0), np.sqrt(0.5), np.sqrt(0.5), 0.5 * np.sqrt(0.5), 0.5 * np.sqrt(0.5),
                     np.nextafter(1.5, 2.0), 2.0 * np.sqrt(2.0)])
    np.testing.assert_array_equal(got, want)
    xs, ys, _ = _pow_points()
    with np.errstate(all="ignore"):
        got = (tg.Variable(xs) ** tg.Variable(ys)).numpy()
        want = np.power(xs.astype(np.longdouble), ys.astype(np.longdouble))
        libm = np.power(xs, ys)
    bad = np.isnan(want) & ~np.isnan(libm)
    want[bad] = libm[bad]
    err, rest = _ulp_error(got, want, np.float64)
    assert err.max() <= 0.8, (float(err.max()), float(xs[rest][int(np.argmax(err))]), float(ys[rest][int(np.argmax(err))]))


@needs_long_double
def test_float64_power_within_two_ulp_c99_special_cases_same_bits_everywhere(restore_isa_and_threads):
    # simd/pow.hpp (fdlibm's e_pow.c, branch-free) where x is finite and nonzero and |y| < 2^31; libm's pow on
    # the other lanes. Special cases as C99 (against NumPy's pow, which is libm's).
    x, y, n_special = _pow_points()
    assert x.size >= 1_000_000
    yv = tg.Variable(y)
    got = _run_every_isa_and_thread_count(lambda v: v ** yv, x)
    with np.errstate(all="ignore"):
        want = np.power(x.astype(np.longdouble), y.astype(np.longdouble))
        libm = np.power(x, y)
    # long double pow of a negative base and a huge integer y is NaN in NumPy's longdouble: take libm's there
    bad = np.isnan(want) & ~np.isnan(libm)
    want[bad] = libm[bad]
    err, rest = _ulp_error(got, want, np.float64)
    worst = int(np.argmax(err))
    assert err.max() <= 2.0, (float(err.max()), float(x[rest][worst]), float(y[rest][worst]))
    # The special values: libm's results where libm takes the lane (zeros, infinities, NaN, |y| >= 2^31), and
    # C99's zeros and infinities (with their signs) where the vector kernel does.
    sp = slice(x.size - n_special, None)
    gs, ls, xs, ys = got[sp], libm[sp], x[sp], y[sp]
    libm_lanes = ~(np.isfinite(xs) & (xs != 0) & (np.abs(ys) < 2.0**31))
    np.testing.assert_array_equal(gs[libm_lanes], ls[libm_lanes])
    exact = (ls == 0) | np.isinf(ls)
    np.testing.assert_array_equal(gs[exact], ls[exact])
    zero = want == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(libm[zero]))
    # integer powers of integers are exact where the result is representable
    ints = (x == np.round(x)) & (y == np.round(y)) & (np.abs(want) < 2.0**53) & (want == np.round(want))
    np.testing.assert_array_equal(got[ints], want[ints].astype(np.float64))


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [2.0, 0.5, -1.0, 1.0, 0.0, 1.5, 3.0, -0.5])
def test_power_by_a_number_matches_the_elementwise_kernel_and_c99(c, dtype, restore_isa_and_threads):
    # `a ** 2`, `a ** 0.5`, `a ** -1`, `a ** 1`, `a ** 0` take one IEEE operation (x * x, sqrt, 1 / x); those are
    # correctly rounded, so they give libm's pow's bits (C99's -0 ** 0.5 = +0, -inf ** 0.5 = +inf, NaN ** 0 = 1);
    # the other exponents the elementwise kernel. (An array of 0.5 or -1 takes the kernel, within the ulp bars
    # but not always correctly rounded; 2, 1, 0 give the same bits either way.)
    rng = np.random.default_rng(14)
    x = np.concatenate([rng.uniform(-4, 4, 5000), np.exp2(rng.uniform(-140, 120, 5000)),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 5e-324]]).astype(dtype)
    got = _run_every_isa_and_thread_count(lambda v: v ** c, x)
    full = _run_every_isa_and_thread_count(lambda v: v ** tg.Variable(np.full(x.size, c, dtype)), x)
    # The correctly rounded values, from the one IEEE operation itself: NumPy's float64 power is not an oracle
    # (NumPy 2.0.0's is one ulp off on ~0.5% of these points). In float64 then rounded to float32, x*x is exact
    # and sqrt and 1/x round innocuously twice (53 >= 2*24 + 2).
    with np.errstate(all="ignore"):
        xd = x.astype(np.float64)
        exact = {2.0: lambda: xd * xd, 0.5: lambda: np.sqrt(xd), -1.0: lambda: 1.0 / xd, 1.0: lambda: xd,
                 0.0: lambda: np.ones_like(xd)}
        want = exact[c]().astype(dtype) if c in exact else None
    if c not in (0.5, -1.0, 1.5):
        np.testing.assert_array_equal(got.view(np.uint8), full.view(np.uint8))
    # zeros, infinities and NaN take libm's pow in the array path: C99's values (NumPy's own `a ** 0.5` is
    # sqrt's -0 and NaN for -0 and -inf)
    special = ~np.isfinite(x) | (x == 0)
    np.testing.assert_array_equal(got[special].view(np.uint8), full[special].view(np.uint8))
    if c in (2.0, 0.5, -1.0, 1.0, 0.0):
        np.testing.assert_array_equal(got[~special].view(np.uint8), want[~special].view(np.uint8))
    if c == 1.5:  # x sqrt(x) with its fma correction: 0.5 ulp where the result is normal
        with np.errstate(all="ignore"):
            xl = x[~special].astype(np.longdouble)
            err, rest = _ulp_error(got[~special], xl * np.sqrt(xl), dtype)
        normal = np.abs(got[~special][rest]) >= np.finfo(dtype).tiny
        assert err[normal].max() <= 0.501 and err.max() <= 0.75, float(err.max())
    # and the gradient's a ** (c - 1)
    v = tg.Variable(np.abs(x[:1000]) + 1)
    v.requires_grad = True
    (v ** c).sum().backward()
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(np.asarray(v.grad), c * np.power(np.abs(x[:1000]).astype(np.float64) + 1, c - 1),
                                   rtol=1e-6 if dtype == np.float32 else 1e-14)


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_power_one_and_a_half_rounds_once_over_every_binade(dtype, restore_isa_and_threads):
    # `a ** 1.5` is x sqrt(x) plus the fma correction s e / 2 (loops.hpp k_pow15), small x scaled first: within
    # 0.5 ulp (+ 2^-50) wherever the result is normal, 0.75 where it is subnormal (a second rounding), the same bits
    # in every build. (Without the scaling the correction underflows: 0.96 ulp at float64 x ~ 2^-681.)
    rng = np.random.default_rng(81)
    e = np.finfo(dtype)
    lo, hi = np.log2(float(e.smallest_subnormal)), np.log2(float(e.max))
    edge = 2.0 / 3 * np.log2(float(e.tiny))  # x whose x ** 1.5 is the smallest normal
    x = np.concatenate([np.exp2(rng.uniform(lo, hi, 200_000)), np.exp2(rng.uniform(edge - 2, edge + 60, 100_000)),
                        np.exp2(rng.uniform(2.0 / 3 * hi - 1, 2.0 / 3 * hi + 1, 10_000)),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1.0, 4.0, float(e.max)]]).astype(dtype)
    got = _run_every_isa_and_thread_count(lambda v: v ** 1.5, x)
    with np.errstate(all="ignore"):
        xl = x.astype(np.longdouble)
        want = np.where(x == -np.inf, np.longdouble(np.inf), xl * np.sqrt(xl))
        err, rest = _ulp_error(got, want, dtype)
        libm = np.power(x, dtype(1.5))
    normal = np.abs(got[rest]) >= e.tiny
    assert err[normal].max() <= 0.501, float(err[normal].max())
    assert err.max() <= 0.75, float(err.max())
    sp = ~np.isfinite(x) | (x <= 0)  # C99's values: +0 for +-0, +inf for +-inf, NaN for negative x
    np.testing.assert_array_equal(got[sp], libm[sp])
    assert not np.signbit(got[x == 0]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_power_gradient_fused_kernels_match_the_composite(dtype, restore_isa_and_threads):
    # The first-order sweep takes power's factors from one kernel each (PowBase: b a^(b-1), 0 where b == 0;
    # PowExp: y log a, 0 where a == 0 and b >= 0, told from |y| <= 1); under create_graph the composite ops run.
    # Same bits (NaN's sign too), in every build and thread count, over a grid of special values, and both mask
    # the factor before the seed multiplies it, as PyTorch and the reference engine: an inf seed where b == 0
    # gives NaN (it gave 0).
    sp = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, 1.5, 3.0, -3.0, np.inf, -np.inf, np.nan, 5e-324, 1e300, -0.5, 2.0**-140]
    a, b = (m.ravel() for m in np.meshgrid(sp, sp))
    rng = np.random.default_rng(17)
    with np.errstate(over="ignore"):  # (1e300 is inf in float32)
        a = np.concatenate([a, rng.uniform(0.1, 3, 3000), rng.uniform(-3, 3, 1000)]).astype(dtype)
        b = np.concatenate([b, rng.uniform(-3, 3, 3000), np.round(rng.uniform(-5, 5, 1000))]).astype(dtype)
    seed = np.where(rng.random(a.size) < 0.1, np.inf, rng.standard_normal(a.size)).astype(dtype)

    def grads(exponent, create):
        va = tg.Variable(a, requires_grad=True)
        vb = tg.Variable(exponent, requires_grad=True) if np.ndim(exponent) else exponent
        with np.errstate(all="ignore"):
            (va ** vb).backward(tg.Variable(seed), create_graph=create)
        out = [va.grad] + ([vb.grad] if np.ndim(exponent) else [])
        return np.concatenate([np.asarray(g.numpy() if hasattr(g, "numpy") else g).ravel() for g in out])

    for exponent in (b, 1.5, 2.5, 0.5, 2.0, 0.0, -1.0):
        fused = _run_every_isa_and_thread_count(lambda v: grads(exponent, False), a)
        np.testing.assert_array_equal(fused.view(np.uint8), grads(exponent, True).view(np.uint8), err_msg=str(exponent))
    ga = grads(b, False)[: a.size]
    hit = (b == 0) & np.isinf(seed)
    assert hit.any() and np.isnan(ga[hit]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arctan2_gradient_first_order_matches_the_composite(dtype, restore_isa_and_threads):
    # The first-order sweep's a^2 + b^2 (1 at the origin) is one kernel (Atan2R2) and d x / r is divided in the
    # product's buffer; create_graph runs the composite ops. Same bits, every build and thread count.
    sp = [0.0, -0.0, 1.0, -1.0, 2.0, np.inf, -np.inf, np.nan, 5e-324, 1e300, 1e-300, 1e-30]
    a, b = (m.ravel() for m in np.meshgrid(sp, sp))
    rng = np.random.default_rng(2)
    with np.errstate(over="ignore", under="ignore"):
        a = np.concatenate([a, rng.uniform(-3, 3, 5000)]).astype(dtype)
        b = np.concatenate([b, rng.uniform(-3, 3, 5000)]).astype(dtype)
    seed = tg.Variable(rng.standard_normal(a.size).astype(dtype))

    def grads(create):
        va, vb = tg.Variable(a, requires_grad=True), tg.Variable(b, requires_grad=True)
        with np.errstate(all="ignore"):
            tg.arctan2(va, vb).backward(seed, create_graph=create)
        return np.concatenate([np.asarray(g.numpy() if hasattr(g, "numpy") else g) for g in (va.grad, vb.grad)])

    fused = _run_every_isa_and_thread_count(lambda v: grads(False), a)
    np.testing.assert_array_equal(fused.view(np.uint8), grads(True).view(np.uint8))


def test_float32_power_exhaustive_over_one_binade_and_a_grid_of_exponents():
    # Every float32 in [1, 2) (2^23 values: the log reduction's whole range; other binades only add an integer
    # to log2 x) against a grid of exponents (small, fractional, negative, and large enough to reach float32's
    # overflow). The oracle is float64 libm pow (error < 1 float64 ulp: ~2^-29 of a float32 ulp).
    x = (np.arange(2**23, dtype=np.uint32) | np.uint32(0x3F800000)).view(np.float32)
    v = tg.Variable(x)
    for c in (-2.5, 1.0 / 3, 7.25, 127.5):
        got = (v ** tg.Variable(np.full(x.size, c, np.float32))).numpy()
        with np.errstate(all="ignore"):
            want = np.power(x.astype(np.float64), np.float64(np.float32(c)))
        err, _ = _ulp_error(got, want, np.float32)
        assert err.max() <= 1.0, (c, float(err.max()))


# ----- h85-expfam: expm1, sinh, cosh, exp2 as primitives (simd/math.hpp, loops.hpp) -----
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["expm1", "sinh", "cosh", "exp2"])
def test_expfam_special_values_and_signed_zeros_as_numpy(name, dtype, restore_isa_and_threads):
    # -0.0 (expm1 and sinh keep its sign), inf, nan, the smallest subnormals, and past the overflow thresholds
    fi = np.finfo(dtype)
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, fi.smallest_subnormal, -fi.smallest_subnormal, fi.tiny,
                  -fi.tiny, fi.max, -fi.max, 1e-30, -1e-30, 100.0, -100.0, 1000.0, -1000.0, 2000.0, -2000.0],
                 dtype=np.float64).astype(dtype)
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        want = getattr(np, name)(x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp2_exact_at_every_integer_as_numpy(dtype, restore_isa_and_threads):
    # exp2(3) == 8.0: f = x - round(x) = 0 leaves e^0 = 1 exactly, then 2^k (also subnormal, and the ends)
    lo, hi = (-160, 140) if dtype == np.float32 else (-1090, 1040)
    x = np.arange(lo, hi).astype(dtype)
    got = _run_every_isa_and_thread_count(tg.exp2, x)
    with np.errstate(over="ignore", under="ignore"):
        want = np.ldexp(np.ones_like(x), np.arange(lo, hi))
        if dtype == np.float64:  # (NumPy's own float32 exp2 is not exact at 127: 1.7014120e38)
            np.testing.assert_array_equal(got, np.exp2(x))
    np.testing.assert_array_equal(got, want)


@needs_long_double
@pytest.mark.parametrize("name", ["expm1", "sinh", "cosh"])
def test_float32_expfam_every_float_near_the_switches(name, restore_isa_and_threads):
    # Every float within 4096 ulps of where the kernels switch (reduction k = 0 <-> 1, the e^a / 2 branch at
    # 10, expm1's k = 128 and -20 clamp) and of the overflow thresholds, both signs.
    centers = {"expm1": [0.34657359, 88.3762626647949, 88.7228391, 20.0, 17.3, 1e-4],
               "sinh": [0.34657359, 10.0, 89.4159851, 1e-4], "cosh": [0.34657359, 10.0, 89.4159851]}[name]
    x = _floats_around(centers, 4096)
    got = _run_every_isa_and_thread_count(getattr(tg, name), x)
    with np.errstate(all="ignore"):
        want = LD_ORACLE[name](x.astype(np.longdouble))
    err, rest = _ulp_error(got, want, np.float32)
    assert err.max() <= 1.0, (name, float(err.max()), float(x[rest][int(np.argmax(err))]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expfam_gradients_against_numpy_and_second_order(dtype, restore_isa_and_threads):
    # expm1' = exp(x) (not y + 1, which cancels where y ~ -1: relative accuracy kept at x = -30), sinh' = cosh,
    # cosh' = sinh, exp2' = y ln2; second derivatives through create_graph: expm1'' = exp, sinh'' = sinh,
    # cosh'' = cosh, exp2'' = y ln2^2.
    x = np.array([-30.0, -3.0, -0.5, -1e-6, 0.0, 1e-6, 0.7, 2.5, 30.0]).astype(dtype)
    ln2 = np.log(2.0)
    first = {"expm1": np.exp, "sinh": np.cosh, "cosh": np.sinh, "exp2": lambda v: np.exp2(v) * ln2}
    second = {"expm1": np.exp, "sinh": np.sinh, "cosh": np.cosh, "exp2": lambda v: np.exp2(v) * ln2 * ln2}
    tol = 2e-6 if dtype == np.float32 else 1e-14
    for name in first:
        v = tg.Variable(x, requires_grad=True)
        getattr(tg, name)(v).sum().backward(create_graph=True)
        g = v.grad
        np.testing.assert_allclose(g.numpy(), first[name](x.astype(np.float64)), rtol=tol, atol=0, err_msg=name)
        v.grad = None
        g.sum().backward()
        np.testing.assert_allclose(v.grad, second[name](x.astype(np.float64)), rtol=tol, atol=0, err_msg=name)
