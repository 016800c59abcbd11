"""prod's VJP (h117-prodgrad): runs < 2,048 round a float32 gradient once (the prefix was stored as float32,
then multiplied by the suffix and rounded again: up to 1.93 x 2^-24 relative), checked against exact products
(mpmath at 256 bits); the lane layout of long runs (its per-block loops compiled per ISA now) against a NumPy
replay of its arithmetic, bit for bit, and its range guard (rows out of range take the chains)."""
import mpmath
import numpy as np
import pytest

import tapegrad as tg
from test_norm_prod_1m import _arr, _on_every_isa_and_thread_count


def _grad(x, seed=1.0, axis=None):
    v = tg.Variable(x, requires_grad=True)
    y = tg.prod(v) if axis is None else tg.prod(v, axis=axis)
    y.backward(tg.Variable(np.full(_arr(y).shape, seed, dtype=x.dtype)))
    return _arr(v.grad)


def _exact_ulps(x, got, seed=1.0):
    # |got - d prod / dx_k| in units of float32's spacing at |got|, the products exact to 2^-256 relative
    with mpmath.workprec(256):
        a = [mpmath.mpf(float(v)) for v in x]
        pre = [mpmath.mpf(1)]
        for v in a[:-1]:
            pre.append(pre[-1] * v)
        suf = [mpmath.mpf(float(seed))]
        for v in reversed(a[1:]):
            suf.append(suf[-1] * v)
        suf.reverse()
        return [float(abs(mpmath.mpf(float(g)) - p * s) / mpmath.mpf(float(np.spacing(np.float32(abs(g))))))
                for g, p, s in zip(got, pre, suf)]


@pytest.mark.parametrize("n", [2, 3, 17, 300, 1024, 2047])
@pytest.mark.parametrize("width", [0.01, 0.5])
def test_short_run_float32_gradient_rounded_once(n, width):
    # A run < 2,048 is one chain in double; its float32 gradient is now that double rounded once: within half
    # a float32 ulp (+ n double roundings, ~2^-42 relative). Before: up to ~0.97 ulp (two roundings).
    x = np.random.default_rng(n).uniform(1 - width, 1 + width, n).astype(np.float32)
    x *= np.where(np.arange(n) % 3 == 0, -1, 1).astype(np.float32)
    for seed in (1.0, 0.37):
        got = _grad(x, seed=seed)
        err = _exact_ulps(x, got, seed=np.float32(seed))
        assert max(err) <= 0.5 + 1e-6, (n, seed, max(err))


def test_short_rows_float32_gradient_rounded_once():
    # rows of a matrix (prod(X, axis=-1)'s 1,024-element rows take the same short path)
    X = np.random.default_rng(5).uniform(0.5, 1.5, (3, 1024)).astype(np.float32)
    got = _grad(X, axis=-1)
    for row, g in zip(X, got):
        assert max(_exact_ulps(row, g)) <= 0.5 + 1e-6


def test_short_run_float64_gradient_bits_unchanged():
    # float64: the chain already rounded once (prefix x suffix in double); the product of the other elements
    # in prefix-then-suffix order, as NumPy's cumprod gives it
    x = np.random.default_rng(2).uniform(0.5, 1.5, 1500)
    pre = np.concatenate([[1.0], np.cumprod(x[:-1])])
    suf = np.concatenate([np.cumprod(x[::-1][:-1])[::-1], [1.0]])  # x_{k+1} ... x_{n-1}, multiplied from the end
    got = _grad(x, seed=0.75)
    q = np.empty_like(x)
    acc = 0.75
    for k in range(len(x) - 1, -1, -1):  # the suffix times the seed, multiplied from the end (the kernel's order)
        q[k] = acc
        acc *= x[k]
    assert got.tobytes() == (pre * q).tobytes()
    assert np.allclose(got, pre * suf * 0.75, rtol=1e-12)


def _lanes_replay(x, g=1.0):
    # The lane layout's arithmetic (kernels/reductions.cpp prod_vjp, simd/prodvjp.hpp), in NumPy float64:
    # blocks of 128 steps x 16 lanes, lane b taking elements b, b + 16, ...; cumprod multiplies in order.
    B, L = 16, 128
    n = len(x)
    nf = n // (B * L)
    xd = x.astype(np.float64)
    blocks = xd[: nf * B * L].reshape(nf, L, B)
    run = np.cumprod(blocks, axis=1)  # running lane products
    lanes = run[:, -1, :]
    sp = [np.cumprod(lanes[t])[-1] for t in range(nf)]
    tail = xd[nf * B * L:]
    if len(tail):
        sp.append(np.cumprod(tail)[-1])
    ns = len(sp)
    before, after = np.empty(ns), np.empty(ns)
    before[0] = 1.0
    for t in range(1, ns):
        before[t] = before[t - 1] * sp[t - 1]
    after[ns - 1] = g
    for t in range(ns - 2, -1, -1):
        after[t] = after[t + 1] * sp[t + 1]
    out = np.empty(n, dtype=np.float64)
    for t in range(nf):
        f = np.empty(B)
        e = before[t]
        for b in range(B):
            f[b] = e
            e *= lanes[t][b]
        q = np.empty(B)
        e = after[t]
        for b in range(B - 1, -1, -1):
            q[b] = e
            e *= lanes[t][b]
        buf = np.concatenate([np.ones((1, B)), run[t, :-1, :]])  # the prefix before each step
        suf = np.empty((L, B))
        for i in range(L - 1, -1, -1):
            suf[i] = q
            q = q * blocks[t, i]
        out[t * B * L:(t + 1) * B * L] = ((f * buf) * suf).ravel()
    if len(tail):
        m = len(tail)
        pre = np.concatenate([[1.0], np.cumprod(tail[:-1])])
        qq, o = after[ns - 1], np.empty(m)
        for k in range(m - 1, -1, -1):
            o[k] = (before[ns - 1] * pre[k]) * qq
            qq *= tail[k]
        out[nf * B * L:] = o
    return out.astype(x.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [2048, 4096 + 77, 1 << 17])
def test_long_run_gradient_is_the_lane_layouts_arithmetic_on_every_isa(dtype, n):
    x = np.random.default_rng(n).uniform(0.9, 1.1, n).astype(dtype)
    want = _lanes_replay(x, 1.5).tobytes()
    results = _on_every_isa_and_thread_count(lambda: _grad(x, seed=1.5).tobytes())
    assert all(r == want for r in results)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_run_out_of_the_lanes_range_takes_the_chains(dtype):
    # one lane whose running product reaches 2.5^128 ~ 2^169 stays in range (lanes); 2.5^160 would not,
    # but a lane has only 128 steps per block: a lane at 4.0 (2^256 at the end) leaves [2^-200, 2^200] and
    # the row takes h103's chains (sequential: 4 x 0.25 pairs cancel). Both within the chains' bound.
    n = 4096
    base = np.random.default_rng(1).uniform(0.99, 1.01, n)
    for big in (2.5, 4.0):
        x = base.copy()
        x[3::16] = big  # lane 3 of each block
        x[3 + 2048::16] = 1 / big  # the second block's lane 3 brings the total back near 1
        x = x.astype(dtype)
        got = _grad(x)
        with mpmath.workprec(256):
            a = [mpmath.mpf(float(v)) for v in x]
            total = mpmath.fprod(a)
            want = np.array([float(total / v) for v in a])
        rel = np.max(np.abs(got.astype(np.float64) - want) / np.abs(want))
        assert rel <= (2.0**-24 + n * 2.0**-53 if dtype == np.float32 else n * 2.0**-52), (big, rel)
        if big == 2.5:
            assert got.tobytes() == _lanes_replay(x).tobytes()
