"""gelu's first-order derivative kernel (h131-actgrad): the spec's `deriv_kernel="gelu_deriv"`, k_gelu_deriv in
simd/loops.hpp (float32: simd/math.hpp's h131 block, one exp and one division in double lanes, rounded once;
float64: the spec's expression, as generated before). The spec's `deriv` string stays the definition: these tests
hold the kernel to it (a long double and an mpmath oracle), to finite differences and to PyTorch.
"""
import mpmath
import numpy as np
import pytest

import tapegrad as tg
from test_f32_kernel_edges import _band
from helpers import assert_float32_within_ulps_of_mpmath
from test_kernels_fastpaths import _run_every_isa_and_thread_count, _ulp_error, needs_long_double

LD = np.longdouble
C, A = 1.5957691216057308, 0.044715
ROOT = -0.7517915986  # gelu'(x0) = 0: 1 + x sigmoid(-u) u' cancels around it


def _grad(v, g=None):
    """d/dx sum(g * gelu(x)) through backward (the fused derivative kernel)."""
    x = tg.Variable(np.asarray(v), requires_grad=True)
    seed = np.ones(x.shape, x.dtype) if g is None else g
    tg.gelu(x).backward(tg.Variable(seed))
    return np.asarray(x.grad)


def _ld_deriv(x):
    """gelu'(x) = s(u) (1 + x s(-u) u') in long double, each sigmoid from e^-|u| (no 1 - s cancellation)."""
    x = x.astype(LD)
    u = LD(C) * x * (1 + LD(A) * x * x)
    du = LD(C) * (1 + 3 * LD(A) * x * x)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(u))
    d = 1 / (1 + e)
    neg = u < 0
    s, sn = np.where(neg, e * d, d), np.where(neg, d, e * d)
    return s * (1 + x * du * sn)


def _mp_deriv(x):
    x = mpmath.mpf(x)
    u = mpmath.mpf(C) * x * (1 + mpmath.mpf(A) * x * x)
    s = 1 / (1 + mpmath.exp(-u))
    return s * (1 + x * (1 - s) * mpmath.mpf(C) * (1 + 3 * mpmath.mpf(A) * x * x))


@needs_long_double
def test_float32_derivative_every_float_in_its_bands_within_one_ulp(restore_isa_and_threads):
    # the cancellation around the zero x0 (every float of [0.74, 0.77]), the subnormal results and the cut at
    # |u| = 112 (x in [9, 12]), a coarse sweep, small and subnormal |x| (f' ~ 1/2)
    x = np.concatenate([_band(0.74, 0.77, 1), _band(9.0, 12.0, 3), _band(0.25, 40.0, 4099),
                        _band(1e-30, 1e-3, 99991), _band(1.4e-45, 1.2e-38, 99991),
                        np.float32([ROOT, 10.25, 11.5])])
    got = _run_every_isa_and_thread_count(_grad, x)
    err, _ = _ulp_error(got, _ld_deriv(x), np.float32)
    assert err.max() <= 1.0, x[np.argmax(err)]
    sub = (x < -10.4) & (x > -10.6)
    assert (got[sub] != 0).all() and (np.abs(got[sub]) < np.finfo(np.float32).tiny).all()  # subnormal, not flushed


def test_float32_derivative_against_mpmath(restore_isa_and_threads):
    rng = np.random.default_rng(131)
    near = np.arange(-40, 41, dtype=np.int32) + np.float32(ROOT).view(np.int32)  # the floats around the zero
    x = np.concatenate([rng.uniform(-12, 12, 300), rng.uniform(-3, 3, 300)]).astype(np.float32)
    x = np.concatenate([x, near.view(np.float32)])
    got = _run_every_isa_and_thread_count(_grad, x)
    assert_float32_within_ulps_of_mpmath(x, got, _mp_deriv)


def test_float32_derivative_special_values_in_every_isa(restore_isa_and_threads):
    x = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, -12.0, -200.0, -1e30, 1e30, 3.4028235e38, -3.4028235e38,
                    1.4e-45, -1.4e-45, 12.0])
    got = _run_every_isa_and_thread_count(_grad, x)
    bits = got.view(np.uint32)
    assert got[0] == 0.5 and got[1] == 0.5 and got[11] == 0.5 and got[12] == 0.5
    # +-inf: NaN, as the spec's expression (its clamp: inf - inf) gives
    assert np.isnan(got[2:5]).all()
    assert (bits[[5, 6, 7, 10]] == 0x80000000).all()  # -0 below the cut (x e^u u' rounds to -0)
    # 1 above it (the spec's expression gave 0.5 at 1e30: its clamp x - relu(x - 30) is 0 there)
    assert got[8] == 1.0 and got[9] == 1.0 and got[13] == 1.0


def test_float64_derivative_is_the_spec_expression():
    # float64 runs the expression as generated before h131: the same values as the composite (create_graph)
    x = np.concatenate([np.random.default_rng(4).uniform(-35, 35, 5000), [ROOT, 0.0, -0.0, 1e-300, 29.9, -29.9]])
    got = _grad(x)
    f1 = tg.grad(lambda z: tg.gelu(z).sum())
    np.testing.assert_allclose(got, np.asarray(f1(tg.Variable(x))), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_equals_finite_differences_and_the_jvp(dtype):
    x = np.concatenate([np.random.default_rng(2).uniform(-12, 12, 2000), [ROOT, 0.0, -0.0, 1e-30]])
    g = np.random.default_rng(3).uniform(0.5, 2, x.size)
    h = 1e-6
    fd = (tg.gelu(x + h).numpy() - tg.gelu(x - h).numpy()) / (2 * h)  # float64 central differences
    got = _grad(x.astype(dtype), g.astype(dtype))
    tol = 1e-8 if dtype == np.float64 else 3e-7
    np.testing.assert_allclose(got.astype(np.float64), g.astype(dtype).astype(np.float64) * fd, rtol=tol, atol=tol)
    _, t = tg.jvp(tg.gelu, (tg.Variable(x.astype(dtype)),), (tg.Variable(g.astype(dtype)),))
    np.testing.assert_array_equal(np.asarray(t), got)  # the same kernel forward and reverse


def test_float32_gradient_close_to_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(7).uniform(-20, 20, 100_000).astype(np.float32)
    got = _grad(x)
    t = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    torch.nn.functional.gelu(t, approximate="tanh").backward(torch.ones_like(t))
    want = t.grad.numpy()  # (torch's tanh form uses sqrt(2 / pi) and 0.044715: the same function to ~1e-16)
    # (below x ~ -5 PyTorch's 1 + tanh(z) cancels: its float64 gradient is off by up to 100% at x = -7)
    ok = x > -5
    ulp = np.spacing(np.abs(want[ok]).astype(np.float32)).astype(np.float64)
    assert (np.abs(got[ok] - want[ok]) <= ulp + 1e-15).all()


def test_spec_field_deriv_kernel():
    from opspec import generate
    from opspec.ops import OPS
    gelu = next(op for op in OPS if op.name == "gelu")
    assert gelu.deriv_kernel == "gelu_deriv" and gelu.deriv.startswith("sigmoid(1.5957691216057308 * ((x * (1 - step(x - 30)")
    assert "case BinaryOp::GeluDeriv: run([](T g, T x) TG_INLINE_LAMBDA { return g * k_gelu_deriv(x); })" \
        in generate.gen_loop_cases()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_derivative_at_huge_magnitudes_saturates(dtype):
    # gelu'(x) is 1 above ~30 and 0 below -30: the spec's old clamp x - relu(x - 30) cancelled to 0 once x - 30
    # rounded to x (float64 gave 0.5 at 1e30), and the reference's x^3 overflowed float32 (0 * inf: NaN)
    import tapegrad.reference as ref
    x = np.array([31.0, 1e10, 1e18, 1e30, -31.0, -1e10, -1e18, -1e30], dtype)
    want = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype)
    for engine in (tg, ref):
        with np.errstate(over="ignore"):
            got = np.asarray(tg.grad(lambda v: engine.gelu(v).sum())(engine.Variable(x)) if engine is tg
                             else _ref_grad(engine, x))
        np.testing.assert_array_equal(got, want, err_msg=engine.__name__)
    # second order through the spec's composite (create_graph): 0 out there
    h = tg.grad(lambda v: tg.grad(lambda w: tg.gelu(w).sum())(v).sum())(tg.Variable(x))
    np.testing.assert_array_equal(np.asarray(h), np.zeros_like(x))


def _ref_grad(ref, x):
    v = ref.Variable(x, requires_grad=True)
    with np.errstate(over="ignore"):
        ref.gelu(v).sum().backward()
    return v.grad
