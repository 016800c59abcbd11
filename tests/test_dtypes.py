"""float32 and dtype rules: float32 results close to float64 and to NumPy's
float32, NumPy's promotion (float32 with float64 gives float64, Python
scalars keep the Variable's dtype), and each input's gradient in its own
dtype.
"""
import numpy as np
import pytest

import op_cases
import tapegrad as tg
from helpers import assert_close, engines, reference_engine, rng_for, sample, value_and_grads, weights_like


# ---------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------
F32_CASES = {
    "tanh_sigmoid": (lambda m, x: m.tanh(x) * m.sigmoid(x), "normal", (4,)),
    "sqrt_sin_cos": (lambda m, x: m.sqrt(x) + m.sin(x) * m.cos(x), "positive", (3, 2)),
    "relu_abs": (lambda m, x: m.relu(x) + m.abs(x), "awayzero", (2, 2)),
    "clip": (lambda m, x: m.clip(x, -0.5, 0.7), "clip", (6,)),
    "div_pow": (lambda m, x: (x + 3.0) / (x * x + 1.0) + x ** 2, "normal", (2, 3)),
    "power_var": (lambda m, x: m.power(x, x), "positive", (4,)),
    "max_min": (lambda m, x: m.maximum(x, 0.1) + m.max(x, axis=0) - m.min(x, axis=1, keepdims=True), "distinct", (2, 4)),
    "reductions": (lambda m, x: m.sum(x, axis=0) + m.mean(x, axis=0) + m.logsumexp(x, axis=0), "normal", (3, 4)),
    "softmax": (lambda m, x: m.softmax(x, axis=-1) * m.log_softmax(x, axis=0), "normal", (3, 4)),
    "matmul": (lambda m, x: x @ x.T + m.matmul(x[0], x.T), "normal", (3, 4)),
    "shape_ops": (lambda m, x: m.concatenate([x.reshape(-1), m.stack([x[0], x[1]]).reshape(-1)])
                  * m.broadcast_to(x[0, 0], (12,)), "normal", (2, 3)),
    "transpose_getitem": (lambda m, x: m.transpose(x, (1, 0))[::-1, [0, 0]], "normal", (2, 3)),
    "where": (lambda m, x: m.where(x.data > 0, x, x * x), "normal", (3, 3)),
    "scalar_0d": (lambda m, x: x * 2.5 - 1 + x ** 3, "normal", ()),
}
# and every elementwise op of the spec on its own, drawn from its domain
F32_CASES.update({name: (op_cases.call(name), op_cases.sample_domain(name), (2, 3)) for name in op_cases.ELEMENTWISE})


@pytest.mark.parametrize("name", list(F32_CASES))
@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
def test_float32_close_to_float64(engine, name):
    m = tg if engine == "tapegrad" else reference_engine()
    fn, domain, shape = F32_CASES[name]
    rng = rng_for("f32", name)
    x = sample(domain, shape, rng)
    out64 = fn(m, m.Variable(x))
    w = weights_like(out64.shape, rng)
    v32, dt32, g32 = value_and_grads(m, fn, [x.astype(np.float32)], w)
    v64, dt64, g64 = value_and_grads(m, fn, [x], w)
    assert dt32 == np.float32
    assert dt64 == np.float64
    assert v32.dtype == np.float32
    assert g32[0].dtype == np.float32
    assert_close(v32, v64, rtol=1e-5, atol_scale=1e-6)
    assert_close(g32[0], g64[0], rtol=1e-5, atol_scale=1e-5)


def test_float32_values_match_numpy_float32():
    rng = rng_for("f32-numpy")
    x = rng.normal(size=(3, 4)).astype(np.float32)
    v = tg.Variable(x)
    for got, want in [
        (tg.exp(v), np.exp(x)),
        (v * 2.5, x * 2.5),
        (v @ v.T, x @ x.T),
        (tg.sum(v, axis=1), np.sum(x, axis=1)),
        (tg.tanh(v), np.tanh(x)),
    ]:
        assert got.dtype == np.float32
        assert_close(got, want, rtol=1e-6, atol_scale=1e-6)


@pytest.mark.parametrize("name", op_cases.ELEMENTWISE)
def test_float32_elementwise_values_match_numpy_float32(name):
    """Each elementwise op of the spec on float32 against NumPy's float32 (or the reference engine's)."""
    rng = rng_for("f32-numpy", name)
    x = sample(op_cases.sample_domain(name), (3, 4), rng).astype(np.float32)
    got = getattr(tg, name)(tg.Variable(x))
    want = op_cases.oracle(name)(x)
    assert got.dtype == np.float32
    assert_close(got, want, rtol=1e-6, atol_scale=1e-6)


# ---------------------------------------------------------------------------
# dtype rules
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
def test_dtype_promotion_rules(engine):
    m = tg if engine == "tapegrad" else reference_engine()
    f32 = m.Variable(np.ones(3, np.float32), requires_grad=True)
    f64 = m.Variable(np.ones(3), requires_grad=True)
    # float32 op Python scalar stays float32, on either side
    for out in [f32 + 1, 1 + f32, f32 * 2.5, 2.5 * f32, f32 / 3, 3 / f32, f32 - True, f32 ** 2, 2.0 ** f32,
                m.maximum(f32, 0.5), m.minimum(0.5, f32), m.where(np.ones(3, bool), f32, 0.0),
                m.clip(f32, 0.0, 0.5), -f32, m.exp(f32), m.sum(f32), m.mean(f32), f32[0], m.softmax(f32)]:
        assert out.dtype == np.float32, out
    # float32 op float64 -> float64 (Variables, arrays, NumPy float64 scalars)
    for out in [f32 + f64, f64 * f32, f32 @ f64, m.maximum(f32, f64), m.where(np.ones(3, bool), f32, f64),
                m.concatenate([f32, f64]), m.stack([f64, f32]), f32 + np.ones(3), np.ones(3) * f32]:
        assert out.dtype == np.float64, out
    # float32 op float32 arrays / NumPy float32 scalars stays float32
    for out in [f32 + np.ones(3, np.float32), np.float32(2.0) * f32, f32 * np.float32(2.0)]:
        assert out.dtype == np.float32, out
    # int / bool data -> float64
    for data in [np.arange(3), [1, 2, 3], 7, True, np.array([True, False]), np.arange(3, dtype=np.int8),
                 np.arange(3, dtype=np.uint16)]:
        v = m.Variable(data)
        assert v.dtype == np.float64
        np.testing.assert_array_equal(v.data, np.asarray(data, dtype=np.float64))
    assert m.Variable(1.5).dtype == np.float64
    assert m.Variable(np.float32(1.5)).dtype == np.float32
    assert m.Variable(np.ones(2, np.float32)).dtype == np.float32
    assert m.Variable(np.ones(2), dtype=np.float32).dtype == np.float32
    assert m.Variable(np.ones(2, np.float32), dtype="float64").dtype == np.float64
    # float64 op int array -> float64
    assert (f64 + np.arange(3)).dtype == np.float64


@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
def test_numpy_float64_scalar_promotes_float32_like_numpy(engine):
    # NumPy 2 (NEP 50): only Python scalars are "weak"; np.float64 is a float64
    # (even though it subclasses Python float), so float32 op np.float64 -> float64.
    m = tg if engine == "tapegrad" else reference_engine()
    f32 = m.Variable(np.ones(3, np.float32))
    assert (np.ones(3, np.float32) * np.float64(2.0)).dtype == np.float64
    assert (f32 * np.float64(2.0)).dtype == np.float64
    assert (np.float64(2.0) * f32).dtype == np.float64
    assert m.add(f32, np.float64(2.0)).dtype == np.float64


def test_mixed_dtype_gradients_keep_each_input_dtype():
    for m in engines():
        a = m.Variable(np.array([1.0, 2.0], np.float32), requires_grad=True)
        b = m.Variable(np.array([3.0, 4.0]), requires_grad=True)
        y = a * b
        assert y.dtype == np.float64
        y.sum().backward()
        assert a.grad.dtype == np.float32, m
        assert b.grad.dtype == np.float64, m
        np.testing.assert_array_equal(a.grad, [3.0, 4.0])
        np.testing.assert_array_equal(b.grad, [1.0, 2.0])
