"""The fast paths of the elementwise kernels and of the buffer cache.

The elementwise loops are compiled twice (baseline x86-64 and AVX2+FMA,
cpp/src/simd/) and chosen at run time; both must give the same bits, and
both must match the reference engine, at sizes whose tails do not fill a
vector register and on every broadcasting layout (contiguous, scalar
operand, strided). The buffer cache must make repeated training steps stop
asking the system for memory.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core
from helpers import assert_close, reference_engine

ISAS = ["baseline"] + (["avx2"] if _core._isa() == "avx2" else [])
SIZES = [1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 127, 1000, 4097]
UNARY = ["negative", "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs"]
BINARY = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum"]


@pytest.fixture
def restore_isa():
    before = _core._isa()
    yield
    _core._set_isa(before)


def _positive(name):
    return name in ("log", "sqrt", "power", "log1p")


def _value(name, shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    if _positive(name):
        x = np.abs(x) + dtype(0.1)
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


def _run_all_isas(name, arrays, dtype):
    results = {}
    for isa in ISAS:
        _core._set_isa(isa)
        results[isa] = _forward_backward(tg, name, arrays, dtype)
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", UNARY)
def test_unary_every_isa_same_bits_and_matches_reference(name, n, dtype, restore_isa):
    rng = np.random.default_rng(n)
    arrays = [_value(name, (n,), dtype, rng)]
    results = _run_all_isas(name, arrays, dtype)
    first = results[ISAS[0]]
    for isa in ISAS[1:]:
        for a, b in zip(first, results[isa]):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} {isa} vs baseline")
    ref = _forward_backward(reference_engine(), name, arrays, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(first, ref):
        assert_close(a, b, rtol=tol, atol_scale=tol)


# (a shape, b shape): contiguous, scalar operand either side, strided broadcast.
LAYOUTS = [((17,), (17,)), ((33,), ()), ((), (65,)), ((5, 9), (9,)), ((7, 1), (1, 15)), ((3, 17), (3, 1))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", LAYOUTS, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_every_isa_same_bits_and_matches_reference(name, shapes, dtype, restore_isa):
    rng = np.random.default_rng(len(shapes[0]) * 100 + len(shapes[1]))
    arrays = [_value(name, s, dtype, rng) for s in shapes]
    results = _run_all_isas(name, arrays, dtype)
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
def test_sum_every_isa_same_bits_and_close_to_numpy(n, dtype, restore_isa):
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


def test_set_isa_rejects_unknown_name(restore_isa):
    with pytest.raises(ValueError, match="unknown instruction set"):
        _core._set_isa("sse9")


def test_buffer_cache_training_steps_stop_asking_the_system_for_memory():
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


def test_empty_buffer_cache_releases_cached_bytes():
    v = tg.Variable(np.ones(100_000))
    w = v * 2.0
    del w
    assert _core._buffer_cache_stats()["cached_bytes"] > 0
    _core._empty_buffer_cache()
    assert _core._buffer_cache_stats()["cached_bytes"] == 0
    np.testing.assert_array_equal((v * 3.0).numpy(), np.full(100_000, 3.0))
