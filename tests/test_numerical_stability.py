"""Numerical stability (softmax / log_softmax / logsumexp at logits of 1e4,
sigmoid at large inputs) and NaN / inf propagating as in NumPy, through
values and gradients.
"""
import numpy as np
import pytest

import op_cases
import tapegrad as tg
from helpers import assert_close, np_sigmoid, np_softmax


# ---------------------------------------------------------------------------
# Numerical stability
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalisers_stable_at_huge_logits(dtype):
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4 + 2.0]], dtype=dtype)
    shifted = x.astype(np.float64) - x.astype(np.float64).max(axis=1, keepdims=True)
    e = np.exp(shifted)
    want_sm = e / e.sum(axis=1, keepdims=True)
    want_lse = x.astype(np.float64).max(axis=1) + np.log(e.sum(axis=1))

    v = tg.Variable(x, requires_grad=True)
    sm = tg.softmax(v, axis=1)
    lsm = tg.log_softmax(v, axis=1)
    lse = tg.logsumexp(v, axis=1)
    for out in (sm, lsm, lse):
        assert np.all(np.isfinite(out.data)), out
        assert out.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert_close(sm, want_sm, rtol=rtol, atol_scale=rtol)
    assert_close(lsm, shifted - np.log(e.sum(axis=1, keepdims=True)), rtol=rtol, atol_scale=rtol)
    assert_close(lse, want_lse, rtol=rtol, atol_scale=rtol)
    (sm[:, 0].sum() + lsm[:, 1].sum() + lse.sum()).backward()
    assert np.all(np.isfinite(v.grad))
    # gradient of logsumexp is the softmax
    v2 = tg.Variable(x, requires_grad=True)
    tg.logsumexp(v2, axis=1).sum().backward()
    # float32 cannot represent logits ~1e4 closer than ~1e-3 (ulp), so the
    # gradient is only good to that relative accuracy there.
    grtol = 1e-10 if dtype == np.float64 else 2e-3
    assert_close(v2.grad, want_sm, rtol=grtol, atol_scale=grtol)
    # all-axis logsumexp at huge values
    big = tg.Variable(np.array([1e4, 1e4], dtype=dtype), requires_grad=True)
    out = tg.logsumexp(big)
    assert_close(out, 1e4 + np.log(2.0), rtol=rtol)
    out.backward()
    assert_close(big.grad, [0.5, 0.5], rtol=grtol)


def test_sigmoid_stable_for_large_inputs():
    x = np.array([-800.0, -50.0, 0.0, 50.0, 800.0])
    v = tg.Variable(x, requires_grad=True)
    y = tg.sigmoid(v)
    with np.errstate(over="ignore"):
        assert_close(y, np_sigmoid(x))
    y.sum().backward()
    assert np.all(np.isfinite(v.grad))
    assert v.grad[0] == 0.0 and v.grad[-1] == 0.0


@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_log1p_logaddexp_keep_the_answer_at_huge_inputs(engine, dtype):
    # softplus(x) = x + log1p(e^-x) for large x, not log(1 + e^x) (inf beyond ~88 / ~709); log1p of a
    # huge value stays finite and exact; logaddexp(a, a) = a + log 2. Gradients: sigmoid(x) -> 1, 1/(1+x), 1/2.
    E = tg if engine == "tapegrad" else __import__("tapegrad.reference", fromlist=["x"])
    big = np.array([1e4, 1e7, 1e30, float(np.finfo(dtype).max) / 4], dtype=dtype)
    v = E.Variable(big, requires_grad=True)
    y = E.softplus(v)
    np.testing.assert_array_equal(y.data, big)  # x + log1p(e^-x) rounds to x here
    y.sum().backward()
    np.testing.assert_array_equal(v.grad, np.ones_like(big))
    neg = E.Variable(-big, requires_grad=True)
    z = E.softplus(neg)
    assert np.all(z.data >= 0) and np.all(z.data < np.finfo(dtype).tiny)  # e^-1e4 underflows to 0, never < 0
    z.sum().backward()
    assert np.all(neg.grad >= 0) and np.all(neg.grad < np.finfo(dtype).tiny)
    w = E.Variable(big, requires_grad=True)
    lp = E.log1p(w)
    np.testing.assert_allclose(lp.data, np.log1p(big.astype(np.float64)), rtol=np.finfo(dtype).eps)
    lp.sum().backward()
    np.testing.assert_allclose(w.grad, 1.0 / (1.0 + big.astype(np.float64)), rtol=4 * np.finfo(dtype).eps)
    a = E.Variable(big, requires_grad=True)
    la = E.logaddexp(a, a)
    np.testing.assert_allclose(la.data, big.astype(np.float64) + np.log(2.0), rtol=np.finfo(dtype).eps)
    la.sum().backward()
    np.testing.assert_array_equal(a.grad, np.ones_like(big))  # 1/2 from each operand
    # (the reference engine's softmax and logsumexp gradient were exp(x - lse(x)): 1 for each of a tie at 1e30)
    tie = E.Variable(np.array([big[2], big[2], 0.0], dtype=dtype), requires_grad=True)
    np.testing.assert_array_equal(E.softmax(tie).data, [0.5, 0.5, 0.0])
    E.logsumexp(tie).backward()
    np.testing.assert_array_equal(tie.grad, [0.5, 0.5, 0.0])


# ---------------------------------------------------------------------------
# NaN and inf propagate as in NumPy
# ---------------------------------------------------------------------------
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0])
# every elementwise op of the spec against NumPy (or, where NumPy lacks it, the reference engine); then clip
NONFINITE_UNARY = {name: (getattr(tg, name), op_cases.oracle(name)) for name in op_cases.ELEMENTWISE}
NONFINITE_UNARY["clip"] = (lambda v: tg.clip(v, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5))


@pytest.mark.parametrize("name", list(NONFINITE_UNARY))
def test_nan_inf_propagate_unary(name):
    fn, np_fn = NONFINITE_UNARY[name]
    with np.errstate(all="ignore"):
        want = np_fn(SPECIAL)
    got = fn(tg.Variable(SPECIAL)).data
    if name in op_cases.ELEMENTWISE:
        # another implementation (the reference engine, or tapegrad's vectorized kernels against NumPy's libm,
        # each within 2 ulp: tests/test_kernels_fastpaths.py): non-finite results exactly, the rest to 2 ulp
        finite = np.isfinite(want)
        np.testing.assert_array_equal(got[~finite], want[~finite])
        np.testing.assert_allclose(got[finite], want[finite], rtol=4.5e-16, atol=0)
    else:
        np.testing.assert_array_equal(got, want)  # NaN == NaN here; checks the sign of inf
    np.testing.assert_array_equal(np.signbit(got[~np.isnan(got)]), np.signbit(want[~np.isnan(want)]))


# every two-operand elementwise op of the spec, with its NumPy function
NONFINITE_BINARY = {name: op_cases.oracle(name) for name in op_cases.BINARY}


@pytest.mark.parametrize("name", list(NONFINITE_BINARY))
def test_nan_inf_propagate_binary(name):
    a = np.repeat(SPECIAL, SPECIAL.size)
    b = np.tile(SPECIAL, SPECIAL.size)
    with np.errstate(all="ignore"):
        want = NONFINITE_BINARY[name](a, b)
    got = getattr(tg, name)(tg.Variable(a), tg.Variable(b)).data
    if name in ("logaddexp", "logaddexp2"):  # correctly rounded at (0, -1) (0.45 ulp); NumPy's is 0.55 ulp off
        finite = np.isfinite(want)
        np.testing.assert_array_equal(got[~finite], want[~finite])
        np.testing.assert_allclose(got[finite], want[finite], rtol=2.3e-16, atol=0)
        return
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
def test_nan_inf_propagate_reductions(op):
    x = np.array([[1.0, np.nan, 3.0], [np.inf, 1.0, 2.0], [-np.inf, np.inf, 0.0], [-np.inf, -np.inf, 5.0]])
    for axis in (None, 0, 1):
        with np.errstate(all="ignore"):
            want = getattr(np, op)(x, axis=axis)
        np.testing.assert_array_equal(getattr(tg, op)(tg.Variable(x), axis=axis).data, want, err_msg=f"axis={axis}")
    # NaN in the first position too (max must not skip it)
    x = np.array([np.nan, 1.0, 2.0])
    assert np.isnan(getattr(tg, op)(tg.Variable(x)).item())


def test_nan_inf_normalisers_and_matmul():
    x = np.array([[-np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0]])
    lse = tg.logsumexp(tg.Variable(x), axis=1).data
    assert_close(lse[0], np.log(1.0 + np.e))
    assert lse[1] == -np.inf
    assert lse[2] == np.inf
    assert np.isnan(lse[3])
    sm = tg.softmax(tg.Variable(x[:1]), axis=1).data
    assert_close(sm, np_softmax(np.array([[-np.inf, 0.0, 1.0]])))
    assert sm[0, 0] == 0.0
    lsm = tg.log_softmax(tg.Variable(x[:1]), axis=1).data
    assert lsm[0, 0] == -np.inf
    assert np.all(np.isnan(tg.softmax(tg.Variable(x[3]), axis=0).data))
    a = np.array([[1.0, np.nan], [1.0, 2.0]])
    np.testing.assert_array_equal((tg.Variable(a) @ tg.Variable(np.eye(2))).data, a @ np.eye(2))
    b = np.array([[np.inf, 1.0], [1.0, 1.0]])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal((tg.Variable(b) @ tg.Variable(b)).data, b @ b)


def test_nan_propagates_through_gradients():
    v = tg.Variable([np.nan, 1.0], requires_grad=True)
    (v * 2.0).sum().backward()
    np.testing.assert_array_equal(v.grad, [2.0, 2.0])
    v = tg.Variable([np.nan, 1.0], requires_grad=True)
    (v * v).sum().backward()
    np.testing.assert_array_equal(v.grad, [np.nan, 2.0])
    v = tg.Variable([0.0, 1.0], requires_grad=True)
    tg.log(v).sum().backward()
    np.testing.assert_array_equal(v.grad, [np.inf, 1.0])


def _exact_log_softmax(x, axis):
    s = np.asarray(x, np.float64)
    s = s - s.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


# (dtype, the largest logit, the second one): each pair is exact in its dtype.
HUGE_LOGITS = [(np.float32, 1e7, 1e7 - 1), (np.float32, 3e38, 3e38), (np.float64, 1e17, 1e17),
               (np.float64, 1e300, np.nextafter(1e300, 0))]


@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
@pytest.mark.parametrize("dtype, big, second", HUGE_LOGITS)
def test_log_softmax_and_cross_entropy_keep_the_answer_at_huge_logits(engine, dtype, big, second):
    # Issue 15: x - (m + log s) loses log s when m + log s rounds to m; (x - m) - log s does not.
    m = tg if engine == "tapegrad" else tg.reference
    rtol = 2e-7 if dtype == np.float32 else 1e-15
    x = np.array([big, second, 0.0], dtype)
    for axis, data in [(-1, x), (0, x[:, None])]:
        got = m.log_softmax(m.Variable(data), axis=axis).numpy()
        np.testing.assert_allclose(got.astype(np.float64), _exact_log_softmax(data, axis), rtol=rtol)
    if engine == "tapegrad":  # the fused primitive (the reference composes it from log_softmax)
        loss = tg.nn.cross_entropy(tg.Variable(np.full((1, 3), big, dtype)), np.array([0]))
        np.testing.assert_allclose(float(loss.item()), np.log(3.0), rtol=rtol)


# BCE-with-logits is max(z, 0) - z*y + log1p(exp(-|z|)): at |z| of 1e7..1e30
# the loss is |z| on the wrong side and 0 on the right one, gradients
# sigmoid(z) - y exactly; a naive log(sigmoid(z)) gives inf or 0 there.
@pytest.mark.parametrize("engine", ["tapegrad", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("big", [1e7, 1e17, 1e30])
def test_bce_with_logits_keeps_the_answer_at_huge_logits(engine, dtype, big):
    m = tg if engine == "tapegrad" else tg.reference
    z = np.array([big, -big, big, -big, 0.5], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0], dtype=dtype)
    z64, y64 = z.astype(np.float64), y.astype(np.float64)
    want_terms = np.logaddexp(0.0, z64) - z64 * y64          # exact in float64 here
    want_grad = (np_sigmoid(z64) - y64) / z.size
    v = m.Variable(z, requires_grad=True)
    loss = tg.nn.binary_cross_entropy_with_logits(v, m.Variable(y))
    assert loss.dtype == dtype
    loss.backward()
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(float(np.asarray(loss.data)), want_terms.mean(), rtol=rtol)
    np.testing.assert_allclose(np.asarray(v.grad, dtype=np.float64), want_grad, rtol=rtol, atol=1e-7)
