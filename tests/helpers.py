"""Shared utilities for the tapegrad test suite.

* ``numeric_grad``: central finite differences of a scalar NumPy function.
* ``assert_close``: allclose with an absolute floor scaled by the magnitude
  of the values being compared (so gradients near zero are not held to a
  relative tolerance they cannot meet).
* ``engines``: the engine modules to cross-check (tapegrad, and the pure
  NumPy reference once it exists).
* ``value_and_grads``: run one function on an engine and backpropagate a
  random-weighted sum of its output.
* ``rng_for`` / ``sample`` / ``fd_jacobians``: seeded inputs away from kinks,
  central-difference Jacobians.
* ``check_jacobians`` (forward == reverse == finite differences == the
  reference engine) and ``fd_hessian``: the derivative-mode test files.
* ``check_op`` (value vs NumPy, gradient vs finite differences and the
  reference) and NumPy normalisers: test_ops, test_indexing and others.
* ``supported_isas``, ``with_threads``, ``every_isa_and_thread_count``: the
  same-bits checks across ISA builds and thread counts.

Fixtures (the engine fixture ``m``, ``restore_grad_mode``, ``restore_threads``, ...) are in conftest.py.
"""
import importlib
import importlib.util
import zlib

import os

import numpy as np
import pytest

import tapegrad


# ---------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------
def numeric_grad(f, x, eps=1e-6):
    """Central finite differences of the scalar function ``f`` at ``x``.

    ``f`` takes a float64 array shaped like ``x`` and returns a number;
    ``x`` is not modified. Returns a float64 array shaped like ``x``.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    g = np.zeros_like(x)
    flat = x.reshape(-1)  # a view of the copy
    gflat = g.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        fp = float(f(x))
        flat[i] = orig - eps
        fm = float(f(x))
        flat[i] = orig
        gflat[i] = (fp - fm) / (2.0 * eps)
    return g


def numeric_grads(f, arrays, eps=1e-6):
    """Finite-difference gradients of ``f(*arrays)`` (a scalar) w.r.t. each array."""
    arrays = [np.array(a, dtype=np.float64, copy=True) for a in arrays]
    out = []
    for i in range(len(arrays)):
        def fi(xi, i=i):
            args = list(arrays)
            args[i] = xi
            return f(*args)
        out.append(numeric_grad(fi, arrays[i], eps=eps))
    return out


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------
def _as_array(x):
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "data") and hasattr(x, "requires_grad"):  # a Variable of either engine
        return np.asarray(x.data)
    return np.asarray(x)


def assert_close(a, b, rtol=1e-10, atol_scale=1e-12, check_shape=True, msg="", atol_floor=0.0):
    """``a`` close to ``b`` elementwise.

    The absolute tolerance is ``atol_scale * max(|a|, |b|)`` over the finite
    values, so an entry that should be ~0 in an array whose other entries are
    ~1e3 is compared at the right scale (and never below ``atol_floor``, for
    comparisons with finite differences, which cannot resolve tiny values).
    NaNs must match NaNs; infinities must match exactly (sign included).
    Shapes must match exactly unless ``check_shape`` is False (then they must
    broadcast).
    """
    a = _as_array(a)
    b = _as_array(b)
    if check_shape:
        assert a.shape == b.shape, f"{msg} shape mismatch: {a.shape} vs {b.shape}"
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    finite = np.concatenate([np.abs(a64[np.isfinite(a64)]).ravel(), np.abs(b64[np.isfinite(b64)]).ravel()])
    scale = float(finite.max()) if finite.size else 0.0
    np.testing.assert_allclose(a64, b64, rtol=rtol, atol=max(atol_scale * scale, atol_floor), equal_nan=True,
                               err_msg=msg)


# ---------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------
REFERENCE_NAME = "tapegrad.reference"


def reference_engine():
    """The reference engine module. Fails (not skips) if it does not import."""
    try:
        return importlib.import_module(REFERENCE_NAME)
    except Exception as exc:  # pragma: no cover - only when the reference is broken
        raise AssertionError(
            f"{REFERENCE_NAME} failed to import ({type(exc).__name__}: {exc}); the cross-engine "
            "tests need it"
        ) from exc


def engines():
    """The engine modules available: tapegrad always, tapegrad.reference if it imports.

    If the reference package exists (``python/tapegrad/reference``) but fails
    to import, this raises an AssertionError so that cross-engine tests FAIL
    rather than silently testing only one engine.
    """
    mods = [tapegrad]
    if importlib.util.find_spec(REFERENCE_NAME) is None:
        return mods
    mods.append(reference_engine())
    return mods


ENGINE_NAMES = ["tapegrad", "reference"]


def engine_by_name(name):
    if name == "tapegrad":
        return tapegrad
    assert name == "reference"
    return reference_engine()


# ---------------------------------------------------------------------------
# Running a function on an engine
# ---------------------------------------------------------------------------
def weights_like(shape, rng, dtype=np.float64):
    """Random weights for a weighted-sum loss (never tiny, mixed signs)."""
    w = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return np.asarray(w, dtype=dtype)


def value_and_grads(m, fn, arrays, weights, dtype=None):
    """Evaluate ``fn(m, *vars)`` on engine ``m`` and backprop ``sum(out * weights)``.

    Returns (output values as a NumPy copy, output dtype, [grad of each input]).
    """
    vs = [m.Variable(a, requires_grad=True, dtype=dtype) for a in arrays]
    out = fn(m, *vs)
    w = m.Variable(np.asarray(weights, dtype=out.dtype))
    loss = (out * w).sum()
    assert loss.shape == ()
    loss.backward()
    grads = []
    for v in vs:
        g = v.grad
        grads.append(None if g is None else np.array(g, copy=True))
    return np.array(out.data, copy=True), out.dtype, grads


def loss_np(np_fn, weights):
    """The NumPy counterpart of the weighted-sum loss, for finite differences."""
    def f(*arrays):
        return float(np.sum(np.asarray(np_fn(*arrays), dtype=np.float64) * weights))
    return f


# ---------------------------------------------------------------------------
# Grad-mode hygiene for tests
# ---------------------------------------------------------------------------
def force_grad_enabled():
    """Switch recording back on in this thread for both engines.

    Used after each test of grad-mode behaviour so that one failing test
    (leaving the thread in no_grad) does not make unrelated tests fail.
    """
    mods = [tapegrad]
    if importlib.util.find_spec(REFERENCE_NAME) is not None:
        mods.append(reference_engine())
    for eng in mods:
        if not eng.is_grad_enabled():
            eng.enable_grad().__enter__()  # deliberately never exited


# ---------------------------------------------------------------------------
# Seeded inputs and finite-difference Jacobians (test_ops, test_modes*,
# test_indexing, ...)
# ---------------------------------------------------------------------------
def rng_for(*key):
    """A generator seeded by the test case, so every case is reproducible."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def case_id(x):
    """A pytest id without spaces."""
    return repr(x).replace(" ", "")


def sample(domain, shape, rng):
    """Inputs away from kinks and singularities, so finite differences are exact enough."""
    shape = tuple(shape)
    if isinstance(domain, (tuple, list)):  # an op spec's (lo, hi) domain
        lo, hi = domain
        return rng.uniform(lo, hi, size=shape)
    if domain == "normal":
        return rng.normal(size=shape)
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if domain == "log1p":
        return rng.uniform(-0.5, 2.0, size=shape)
    if domain in ("nonzero", "awayzero"):
        return rng.uniform(0.25, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    if domain == "exponent":
        return rng.uniform(-2.0, 2.0, size=shape)
    if domain == "clip":  # away from the bounds -0.5 and 0.7 the tests use
        x = rng.uniform(-1.5, 1.5, size=shape)
        for _ in range(200):
            bad = (np.abs(x + 0.5) < 0.05) | (np.abs(x - 0.7) < 0.05)
            if not bad.any():
                return x
            x = np.where(bad, rng.uniform(-1.5, 1.5, size=shape), x)
        raise AssertionError("could not sample away from the clip bounds")
    if domain == "distinct":  # all entries distinct, gaps >= ~0.25 (no ties for max/min)
        n = int(np.prod(shape, dtype=np.int64))
        vals = (rng.permutation(n) - n / 2.0) * 0.3 + rng.uniform(-0.02, 0.02, size=n)
        return vals.reshape(shape)
    raise AssertionError(domain)


def evaluate(m, fn, arrays):
    """fn(m, *Variables) on engine module m as a float64 NumPy array, recording nothing."""
    with m.no_grad():
        out = fn(m, *[m.Variable(np.array(a, dtype=np.float64)) for a in arrays])
    return np.array(out.data, dtype=np.float64)


def fd_jacobians(fn, arrays, eps=1e-6):
    """Central-difference Jacobians of fn(tapegrad, *arrays), one per array (out.shape + x.shape)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out_shape = evaluate(tapegrad, fn, arrays).shape
    jacs = []
    for i, a in enumerate(arrays):
        J = np.zeros(out_shape + a.shape)
        Jflat = J.reshape(out_shape + (a.size,))
        for k in range(a.size):
            args = [b.copy() for b in arrays]
            args[i].reshape(-1)[k] += eps
            fp = evaluate(tapegrad, fn, args)
            args[i].reshape(-1)[k] -= 2 * eps
            fm = evaluate(tapegrad, fn, args)
            Jflat[..., k] = (fp - fm) / (2 * eps)
        jacs.append(J)
    return jacs


# ---------------------------------------------------------------------------
# Jacobians three ways, Hessians by differences of gradients (test_modes,
# test_modes_primitives, test_custom_op, test_modes_errors)
# ---------------------------------------------------------------------------
FD_RTOL = 1e-6
FD_ATOL = 1e-6  # scaled by the magnitude of the values compared (see assert_close)
MODE_RTOL = 1e-11  # forward vs reverse: the same numbers summed in another order
XENGINE_RTOL = 1e-9  # tapegrad vs tapegrad.reference
MODES = ["forward", "reverse"]


def engine_jacobians(m, fn, arrays, mode, chunk_size=None):
    def f(*vs):
        return fn(m, *vs)

    jac = m.jacobian(f, tuple(arrays), mode=mode, chunk_size=chunk_size)
    assert isinstance(jac, tuple) and len(jac) == len(arrays)
    return list(jac)


def reference_with_jacobian():
    """The reference engine; fails (does not skip) if it lacks the functional API."""
    ref = reference_engine()
    assert hasattr(ref, "jacobian"), "tapegrad.reference has no jacobian: the cross-engine comparison needs it"
    return ref


def check_jacobians(fn, arrays, fd=True, expected=None):
    """forward == reverse == finite differences (or `expected`) == reference, for fn(m, *vars)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out_shape = evaluate(tapegrad, fn, arrays).shape
    fwd = engine_jacobians(tapegrad, fn, arrays, "forward")
    rev = engine_jacobians(tapegrad, fn, arrays, "reverse")
    for i, (a, jf, jr) in enumerate(zip(arrays, fwd, rev)):
        for name, j in (("forward", jf), ("reverse", jr)):
            assert isinstance(j, np.ndarray), f"{name} jacobian of input {i} is a {type(j).__name__}"
            assert j.shape == out_shape + a.shape, f"{name} jacobian of input {i}: shape {j.shape}"
            assert j.dtype == np.float64, f"{name} jacobian of input {i}: dtype {j.dtype}"
        assert_close(jf, jr, rtol=MODE_RTOL, atol_scale=1e-13, msg=f"input {i}: forward vs reverse")
    if fd:
        for i, (jr, jn) in enumerate(zip(rev, fd_jacobians(fn, arrays))):
            assert_close(jr, jn, rtol=FD_RTOL, atol_scale=FD_ATOL, atol_floor=1e-8,
                         msg=f"input {i}: jacobian vs finite differences")
    if expected is not None:
        for i, (jr, je) in enumerate(zip(rev, expected)):
            assert_close(jr, je, rtol=1e-12, atol_scale=1e-14, msg=f"input {i}: jacobian vs expected")
    ref = reference_with_jacobian()
    for mode in MODES:
        rj = engine_jacobians(ref, fn, arrays, mode)
        for i, (j, r) in enumerate(zip(fwd, rj)):
            assert_close(np.asarray(r), j, rtol=XENGINE_RTOL, atol_scale=1e-12,
                         msg=f"input {i}: reference jacobian ({mode}) vs tapegrad")
    return fwd


def grad_np(fn, x):
    return tapegrad.grad(lambda v: fn(tapegrad, v))(x)


def fd_hessian(fn, x, eps=1e-5):
    """Central differences of the (engine's) gradient."""
    H = np.zeros(x.shape + x.shape)
    Hf = H.reshape(x.shape + (x.size,))
    for k in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.reshape(-1)[k] += eps
        xm.reshape(-1)[k] -= eps
        Hf[..., k] = (grad_np(fn, xp) - grad_np(fn, xm)) / (2 * eps)
    return H


# ---------------------------------------------------------------------------
# NumPy versions of the normalisers, and the generic op check: value vs NumPy,
# grad vs finite differences and reference (test_ops, test_indexing, ...)
# ---------------------------------------------------------------------------
VALUE_RTOL = 1e-12


def np_sigmoid(x):
    # exp of a non-positive number only: no overflow warning at |x| > 709
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def np_logsumexp(x, axis=None, keepdims=False):
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis if axis is not None else tuple(range(x.ndim)))
    return out


def np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    return x - np_logsumexp(x, axis=axis, keepdims=True)


def check_op(fn, np_fn, arrays, rng, fd=True, value_rtol=VALUE_RTOL):
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    expected = np.asarray(np_fn(*arrays), dtype=np.float64)
    w = weights_like(expected.shape, rng)

    value, dtype, grads = value_and_grads(tapegrad, fn, arrays, w)
    assert dtype == np.float64
    assert_close(value, expected, rtol=value_rtol, atol_scale=1e-14, msg="value vs NumPy")
    for a, g in zip(arrays, grads):
        assert g is not None, "an input that requires grad got no gradient"
        assert isinstance(g, np.ndarray)
        assert g.shape == a.shape
        assert g.dtype == np.float64

    if fd:
        num = numeric_grads(loss_np(np_fn, w), arrays)
        for i, (g, n) in enumerate(zip(grads, num)):
            assert_close(g, n, rtol=FD_RTOL, atol_scale=FD_ATOL, atol_floor=1e-9,
                         msg=f"grad of input {i} vs finite differences")

    ref = reference_engine()
    rvalue, rdtype, rgrads = value_and_grads(ref, fn, arrays, w)
    assert rdtype == np.float64
    assert_close(rvalue, value, rtol=XENGINE_RTOL, atol_scale=1e-14, msg="value vs reference")
    for i, (g, r) in enumerate(zip(grads, rgrads)):
        assert_close(g, r, rtol=XENGINE_RTOL, atol_scale=1e-12, msg=f"grad of input {i} vs reference")
    return value, grads


# The sanitizer job (.ci/sanitizers) turns the small-object pool and the
# buffer cache off, so tests that measure memory or the cache's reuse skip there.
measures_memory = pytest.mark.skipif(os.environ.get("TAPEGRAD_SANITIZED") == "1",
                                     reason="measures memory or the buffer cache, which the sanitizer build turns off")


# ---------------------------------------------------------------------------
# Instruction sets
# ---------------------------------------------------------------------------
def supported_isas():
    """The loop builds this CPU can run ("baseline", "avx2", "avx512"), for tests comparing their bits."""
    from tapegrad import _core
    before, names = _core._isa(), []
    for name in ("baseline", "avx2", "avx512"):
        try:
            _core._set_isa(name)
            names.append(name)
        except ValueError:
            pass
    _core._set_isa(before)
    return names


def with_threads(n, fn):
    """fn() with tapegrad's kernels at n threads; the thread count restored after."""
    before = tapegrad.get_num_threads()
    try:
        tapegrad.set_num_threads(n)
        return fn()
    finally:
        tapegrad.set_num_threads(before)


def every_isa_and_thread_count(fn, *arrays):
    """fn(*[Variable(a) for a in arrays]) in every ISA build this CPU runs, at 1 and 2 threads (the ISA and
    the thread count restored after): asserts the results have the same dtype, shape and bits, and returns
    the first as an array (a Variable's .numpy())."""
    from tapegrad import _core
    results, before = [], _core._isa()
    try:
        for isa in supported_isas():
            _core._set_isa(isa)
            for threads in (1, 2):
                r = with_threads(threads, lambda: fn(*[tapegrad.Variable(a) for a in arrays]))
                results.append((isa, threads, np.asarray(r.numpy() if hasattr(r, "numpy") else r)))
    finally:
        _core._set_isa(before)
    first = results[0][2]
    for isa, threads, r in results[1:]:
        assert r.dtype == first.dtype and r.shape == first.shape, (isa, threads, r.dtype, r.shape)
        assert r.tobytes() == first.tobytes(), f"{isa} at {threads} threads: other bits than {results[0][:2]}"
    return first


def assert_float32_within_ulps_of_mpmath(x, got, exact, ulps=1.0, prec=120):
    """float32 results `got` at the points `x` within `ulps` of mpmath's `exact(xi)` (at `prec` bits), the ulp
    of the float32 nearest the exact value (of the smallest subnormal where that rounds to 0)."""
    import mpmath

    mpmath.mp.prec = prec
    for xi, gi in zip(np.asarray(x).tolist(), np.asarray(got).tolist()):
        want = exact(xi)
        w32 = np.float32(float(want))
        ulp = float(np.spacing(np.abs(w32))) if w32 != 0 else float(np.float32(1.4e-45))
        assert abs(mpmath.mpf(gi) - want) <= ulps * ulp, (xi, gi, want)
