"""matmul, `@` and linear on views BLAS reads without a copy (a transpose, a column slice:
a leading dimension) and on views it cannot (negative or zero strides, copied first), with
batches: values against NumPy, gradients C++ vs the reference engine vs finite differences,
and (optionally) PyTorch."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import crosscheck

ref = tg.reference
RNG = np.random.default_rng(0)

# Each view: a function of the engine module and an array giving a view of it, and the
# shape of the base array it is taken from (its result's shape is what matmul sees).
VIEWS = {
    "contiguous": (lambda m, x: x, (4, 3)),
    "transpose": (lambda m, x: x.T, (3, 4)),
    "column slice": (lambda m, x: x[:, 1:4], (4, 5)),  # row-major, leading dimension 5
    "row slice": (lambda m, x: x[1:5], (6, 3)),
    "transposed slice": (lambda m, x: x[1:4, :].T, (5, 4)),  # column-major, leading dimension 4
    "reversed rows": (lambda m, x: x[::-1], (4, 3)),  # a negative stride: copied
    "strided both": (lambda m, x: x[::2, ::2], (8, 6)),  # two non-unit strides: copied
}
OTHER = {  # right operands (3, 2)
    "contiguous": (lambda m, y: y, (3, 2)),
    "transpose": (lambda m, y: y.T, (2, 3)),
    "column slice": (lambda m, y: y[:, 2:4], (3, 5)),
    "reversed cols": (lambda m, y: y[:, ::-1], (3, 2)),
}


def _f(view_a, view_b, op):
    def f(m, a, b):
        x, y = view_a(m, a), view_b(m, b)
        return x @ y if op == "@" else m.matmul(x, y)
    return f


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("vb", sorted(OTHER))
@pytest.mark.parametrize("va", sorted(VIEWS))
def test_matmul_of_views_matches_numpy_and_the_reference(va, vb, dtype):
    (fa, sa), (fb, sb) = VIEWS[va], OTHER[vb]
    a, b = RNG.normal(size=sa).astype(dtype), RNG.normal(size=sb).astype(dtype)
    want = fa(np, a) @ fb(np, b)
    for op in ("@", "matmul"):
        got = _f(fa, fb, op)(tg, tg.Variable(a), tg.Variable(b))
        assert got.dtype == dtype and got.shape == want.shape
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(got.data, want, rtol=tol, atol=tol)
    if dtype == np.float64:  # gradients: C++ vs reference (VJP and JVP), then vs finite differences
        assert crosscheck(_f(fa, fb, "@"), a, b)
        assert tg.gradcheck(lambda x, y: _f(fa, fb, "@")(tg, x, y), (a, b), order=2, modes=("reverse", "forward"))


@pytest.mark.parametrize("case", ["swapaxes", "sliced batch", "broadcast batch", "batched slice"])
def test_batched_matmul_of_views(case):
    if case == "swapaxes":  # each matrix of the batch a transpose: (2, 4, 3) as a view of (2, 3, 4)
        a, b = RNG.normal(size=(2, 3, 4)), RNG.normal(size=(2, 3, 2))
        f = lambda m, x, y: m.transpose(x, (0, 2, 1)) @ y  # noqa: E731
    elif case == "sliced batch":  # every other matrix of a stack
        a, b = RNG.normal(size=(4, 4, 3)), RNG.normal(size=(2, 3, 2))
        f = lambda m, x, y: x[::2] @ y  # noqa: E731
    elif case == "broadcast batch":  # a transposed matrix against a batch
        a, b = RNG.normal(size=(3, 4)), RNG.normal(size=(5, 3, 2))
        f = lambda m, x, y: x.T @ y  # noqa: E731
    else:  # a column slice of each matrix of a batch, times a batch of transposes
        a, b = RNG.normal(size=(2, 4, 6)), RNG.normal(size=(2, 2, 3))
        f = lambda m, x, y: x[:, :, 1:4] @ m.transpose(y, (0, 2, 1))  # noqa: E731
    want = f(np, a, b)
    got = f(tg, tg.Variable(a), tg.Variable(b))
    np.testing.assert_allclose(got.data, want, rtol=1e-12, atol=1e-12)
    assert crosscheck(f, a, b)
    assert tg.gradcheck(lambda x, y: f(tg, x, y), (a, b), order=2, modes=("reverse", "forward"))


LINEAR_VIEWS = {
    "x transposed": (lambda m, x, w: m.linear(x.T, w, None), (3, 4), (3, 2)),
    "w transposed (a (N, K) weight)": (lambda m, x, w: m.linear(x, w.T, None), (4, 3), (2, 3)),
    "both, with bias": (lambda m, x, w: m.linear(x.T, w.T, m.Variable(np.arange(2.0).astype(x.dtype))), (3, 4), (2, 3)),
    "column slices": (lambda m, x, w: m.linear(x[:, 1:4], w[:, :2], None), (4, 6), (3, 5)),
    "reversed (copied)": (lambda m, x, w: m.linear(x[::-1], w[::-1], None), (4, 3), (3, 2)),
    "3-d x of a transpose": (lambda m, x, w: m.linear(m.transpose(x, (1, 0, 2)), w, None), (4, 2, 3), (3, 2)),
}


def _linear_np(x, w, b=None):
    return x @ w + (0 if b is None else b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(LINEAR_VIEWS))
def test_linear_of_views(case, dtype):
    f, sx, sw = LINEAR_VIEWS[case]
    x, w = RNG.normal(size=sx).astype(dtype), RNG.normal(size=sw).astype(dtype)

    class NP:  # f written for the engines, run on NumPy arrays
        Variable = staticmethod(lambda v: v.astype(dtype))
        transpose = staticmethod(np.transpose)
        linear = staticmethod(_linear_np)
    want = f(NP, x, w)
    got = f(tg, tg.Variable(x), tg.Variable(w))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert got.dtype == dtype
    np.testing.assert_allclose(got.data, want, rtol=tol, atol=tol)
    if dtype == np.float64:
        assert crosscheck(f, x, w)
        assert tg.gradcheck(lambda a, b: f(tg, a, b), (x, w), order=2, modes=("reverse", "forward"))


def test_views_gradients_match_torch():
    torch = pytest.importorskip("torch")
    a, b, w = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 5)), RNG.normal(size=(5, 3))
    bias = RNG.normal(size=5)
    ta, tb, tw = (torch.tensor(v, requires_grad=True) for v in (a, b, w))
    ((ta.T @ tb[:, 1:4]) ** 2).sum().backward()
    (torch.nn.functional.linear(ta.T, tw, torch.tensor(bias)) ** 2).sum().backward()
    va, vb, vw = (tg.Variable(v, requires_grad=True) for v in (a, b, w))
    ((va.T @ vb[:, 1:4]) ** 2).sum().backward()
    (tg.linear(va.T, vw.T, tg.Variable(bias)) ** 2).sum().backward()
    for ours, theirs in ((va, ta), (vb, tb), (vw, tw)):
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_view_of_a_large_matrix_takes_the_no_copy_path_with_the_same_result():
    # 300 x 300: past any small-size special case; the transposed and sliced views
    # give exactly NumPy's values (same GEMM up to rounding)
    a = RNG.normal(size=(300, 310))
    b = RNG.normal(size=(300, 200))
    got = tg.Variable(a)[:, 5:305].T @ tg.Variable(b)
    np.testing.assert_allclose(got.data, a[:, 5:305].T @ b, rtol=1e-11, atol=1e-11)
