"""floor, ceil, rint, trunc, sign, square, reciprocal as primitives (h84-round), on what the
generic op tests do not draw: NumPy's exact bits at -0.0, NaN, +-inf, the .5 ties and past
2^52 / 2^23 (where every float is an integer) on every ISA build and thread count; zero
gradients and tangents of the piecewise-constant ones where the seed is inf or NaN (PyTorch's
zeros, not seed * 0); round(x, decimals) against np.round; positive a copy as np.positive."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core
from test_kernels_fastpaths import ISAS  # the ISA builds this CPU runs

ROUNDING = ["floor", "ceil", "rint", "trunc", "sign"]
EXACT = ROUNDING + ["square", "reciprocal", "abs"]





def special_values(dtype):
    """The hard cases: signed zeros, ties, both sides of each integer, the bound where the float's
    ulp reaches 1 (2^52 or 2^23) and 2, subnormals, the largest finite, inf and NaN."""
    big = 2.0 ** (52 if dtype == np.float64 else 23)
    eps = np.finfo(dtype).eps
    tiny = np.finfo(dtype).tiny
    base = [0.0, 0.5, 1.5, 2.5, 3.5, 0.49999999999999994, 1.0, 2.0, 1 - eps / 2, 1 + eps, 0.1, 0.7,
            big - 1.5, big - 0.5, big - 1, big, big + 1, big + 2, 2 * big + 2, 4 * big + 4,
            tiny, tiny / 4, np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max, 1e30, np.inf, np.nan]
    vals = np.array(base + [-v for v in base], dtype=dtype)
    # a vector long enough for every ISA's main loop and tail, a mix of all of them
    rng = np.random.default_rng(7)
    mixed = np.concatenate([vals, rng.permutation(np.tile(vals, 5)),
                            (rng.standard_normal(301) * 4).astype(dtype)])
    return mixed


def numpy_fn(name):
    return {"abs": np.abs}.get(name) or getattr(np, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", EXACT)
def test_numpy_bits_on_every_isa_and_thread_count(name, dtype, restore_isa_and_threads):
    x = special_values(dtype)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        want = numpy_fn(name)(x)
    for isa in ISAS:
        _core._set_isa(isa)
        for threads in (1, 2):
            tg.set_num_threads(threads)
            for xs in (x, x[:1].reshape(()), x[5:6]):  # the vector loops and the 0-d path
                got = getattr(tg, name)(tg.Variable(xs)).numpy()
                with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                    w = want if xs is x else numpy_fn(name)(xs)
                assert got.dtype == dtype
                # the same value and sign of zero; NaN where NumPy's is NaN
                np.testing.assert_array_equal(got, w, err_msg=f"{name} {isa} {threads}t")
                assert np.array_equal(np.signbit(got), np.signbit(w)), f"{name} {isa}: the sign of a zero"


@pytest.mark.parametrize("name", ROUNDING)
def test_zero_gradient_and_tangent_even_for_inf_and_nan_seeds(name):
    x = tg.Variable(np.array([-1.5, -0.0, 0.3, 2.5, np.inf, np.nan]), requires_grad=True)
    y = getattr(tg, name)(x)
    assert y.requires_grad  # still on the graph, as PyTorch's
    y.backward(np.array([np.inf, -np.inf, np.nan, 1.0, np.inf, 2.0]))
    assert x.grad.tobytes() == np.zeros(6).tobytes()  # +0.0 everywhere (g * 0 would give NaN)
    _, t = tg.jvp(lambda v: getattr(tg, name)(v), (x.numpy(),), (np.full(6, np.inf),))
    np.testing.assert_array_equal(np.asarray(t), np.zeros(6))
    # second order (the first-order rule recorded): zeros
    h = tg.hessian(lambda v: (getattr(tg, name)(v) * v).sum(), np.array([0.3, -1.7]))
    np.testing.assert_array_equal(np.asarray(h), np.zeros((2, 2)))


@pytest.mark.parametrize("name", ROUNDING)
def test_reference_engine_gives_zeros_too(name):
    ref = tg.reference
    x = ref.Variable(np.array([-1.5, 0.3, np.inf]), requires_grad=True)
    getattr(ref, name)(x).backward(ref.Variable(np.array([np.inf, np.nan, 1.0])))
    assert np.asarray(x.grad.data if hasattr(x.grad, "data") else x.grad).tobytes() == np.zeros(3).tobytes()


def test_square_and_reciprocal_derivatives_at_the_edges_match_pytorch():
    torch = pytest.importorskip("torch")
    x = np.array([0.0, -0.0, 1e-310, -1e-310, 1e-160, 1e154, np.inf, -np.inf, 3.0, -0.5])
    for name in ("square", "reciprocal"):
        v = tg.Variable(x, requires_grad=True)
        getattr(tg, name)(v).sum().backward()
        t = torch.tensor(x, requires_grad=True)
        getattr(torch, name)(t).sum().backward()
        np.testing.assert_array_equal(v.grad, t.grad.numpy(), err_msg=name)
        # and the second derivative (2, and 2 / x^3) under create_graph
        h = np.asarray(tg.hessian(lambda u: getattr(tg, name)(u).sum(), np.array([0.5, -3.0])))
        want = {"square": [2.0, 2.0], "reciprocal": [2 / 0.5 ** 3, 2 / (-3.0) ** 3]}[name]
        np.testing.assert_allclose(np.diag(h), want, rtol=1e-15)


@pytest.mark.parametrize("decimals", [0, 1, 2, -1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_matches_numpy_exactly(decimals, dtype):
    x = np.concatenate([special_values(dtype), np.array([0.125, 0.375, 1.005, 2.675, -2.675, 15.0, 25.0],
                                                        dtype=dtype)])
    with np.errstate(over="ignore", invalid="ignore"):
        want = np.round(x, decimals)
    v = tg.Variable(x, requires_grad=True)
    with np.errstate(over="ignore", invalid="ignore"):  # (NumPy's own x * 10^d, for decimals != 0)
        gots = [tg.round(v, decimals), v.round(decimals), np.round(v, decimals), np.around(v, decimals)]
    for got in gots:
        assert got.requires_grad
        assert got.numpy().tobytes() == want.tobytes()
    gots[0].backward(np.full(x.shape, np.inf, dtype))
    assert v.grad.tobytes() == np.zeros_like(x).tobytes()


def test_fabs_is_abs_and_positive_a_copy():
    x = tg.Variable(np.array([-2.0, -0.0, 3.0]), requires_grad=True)
    np.testing.assert_array_equal(np.fabs(x).numpy(), [2.0, 0.0, 3.0])
    np.testing.assert_array_equal(tg.fabs(x).numpy(), [2.0, 0.0, 3.0])  # (public since the op spec: kept)
    np.fabs(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 1.0])
    p = np.positive(x)
    assert isinstance(p, tg.Variable) and p.requires_grad and p.dtype == x.dtype
    assert p.numpy().tobytes() == x.numpy().tobytes()
    assert not np.shares_memory(p.numpy(), x.numpy())  # NumPy's np.positive copies
    assert tg.positive(tg.Variable(np.float32(1.5))).dtype == np.float32
    # the primitive: -0.0 and NaN kept, the gradient passes through (inf seeds too), the JVP is the tangent
    z = np.array([-0.0, np.nan, np.inf, -1e-310])
    assert tg.positive(tg.Variable(z)).numpy().tobytes() == np.positive(z).tobytes()
    v = tg.Variable(np.array([1.0, -2.0]), requires_grad=True)
    v.positive().backward(np.array([np.inf, 3.0]))
    np.testing.assert_array_equal(v.grad, [np.inf, 3.0])
    np.testing.assert_array_equal(np.asarray(tg.jvp(tg.positive, (np.array([1.0]),), (np.array([5.0]),))[1]), [5.0])
