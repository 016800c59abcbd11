"""diagonal / diag / trace as O(1) strided views (h89-views) and squeeze /
expand_dims / swapaxes / moveaxis in C++: values against NumPy, views sharing
memory, writes through the diagonal view, gradients (the seed scattered onto
the diagonal), JVPs, second order, errors naming the op."""
import numpy as np
import pytest

import tapegrad as tg

RNG = np.random.default_rng(89)
A = RNG.standard_normal((3, 4, 5))

# (shape, offset, axis1, axis2): square, non-square, offsets +-, beyond the edge, batched, negative axes
DIAG_CASES = [((4, 4), 0, 0, 1), ((3, 5), 2, 0, 1), ((5, 3), -2, 0, 1), ((3, 5), 7, 0, 1), ((3, 5), -3, 0, 1),
              ((3, 4, 5), 1, 2, 0), ((3, 4, 5), -1, -1, 1), ((2, 3, 4, 3), 0, 1, 3), ((0, 3), 0, 0, 1),
              ((4, 4), 1, 1, 0)]


def _expected_grad(shape, offset, a1, a2, w):
    """d sum(w * diagonal(x)) / dx: w on the diagonal of zeros (NumPy's diagonal positions)."""
    pos = np.arange(int(np.prod(shape))).reshape(shape).diagonal(offset, a1, a2)
    out = np.zeros(int(np.prod(shape)))
    out[pos] = w
    return out.reshape(shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,offset,a1,a2", DIAG_CASES)
def test_diagonal_is_numpys_as_a_view_with_its_gradient(shape, offset, a1, a2, dtype):
    a = RNG.standard_normal(shape).astype(dtype)
    x = tg.Variable(a, requires_grad=True)
    d = tg.diagonal(x, offset, a1, a2)
    want = np.diagonal(a, offset, a1, a2)
    assert d.shape == want.shape and d.dtype == want.dtype
    np.testing.assert_array_equal(d.numpy(), want)
    assert d.grad_fn.name == "diagonal"
    if d.size:
        assert np.shares_memory(d.data, x.data)  # O(1): no copy
    w = RNG.uniform(0.5, 1.5, want.shape).astype(dtype)
    (d * w).sum().backward()
    np.testing.assert_array_equal(x.grad, _expected_grad(shape, offset, a1 % len(shape), a2 % len(shape), w))
    np.testing.assert_array_equal(x.diagonal(offset, a1, a2).numpy(), want)  # the method
    np.testing.assert_array_equal(np.diagonal(x, offset, a1, a2).numpy(), want)  # NumPy dispatch
    # the reference engine agrees
    np.testing.assert_array_equal(tg.reference.diagonal(a, offset, a1, a2).data, want)


def test_diagonal_of_a_view_and_special_values_keep_their_bits():
    a = np.array([[np.nan, 1.0, 2.0], [-0.0, np.inf, 5e-324], [6.0, -np.inf, -0.0]])
    x = tg.Variable(a)
    for view, ref in ((x, a), (x.T, a.T), (x[::-1, 1:], a[::-1, 1:]), (x[:, ::2], a[:, ::2])):
        for k in (-1, 0, 1):
            got = tg.diagonal(view, k).numpy()
            assert got.tobytes() == np.diagonal(ref, k).tobytes()
    assert np.trace(a[:, ::2], 1) == tg.trace(x[:, ::2], 1).item()


def test_diagonal_jvp_second_order_and_batched_jacobian():
    a = RNG.standard_normal((3, 4, 4))
    t = RNG.standard_normal((3, 4, 4))
    _, tan = tg.jvp(lambda x: tg.diagonal(x, 1, 1, 2), (a,), (t,))
    np.testing.assert_array_equal(np.asarray(tan), np.diagonal(t, 1, 1, 2))
    f = lambda eng, x: (eng.diagonal(x, -1, 2, 1) ** 3).sum()  # noqa: E731
    h = tg.hessian(lambda x: f(tg, x), a)
    hr = tg.reference.hessian(lambda x: f(tg.reference, x), a)
    np.testing.assert_allclose(np.asarray(h), np.asarray(hr), rtol=1e-12)
    j = tg.jacobian(lambda x: tg.diagonal(x, 0, 0, 2), a)  # vector mode: batch axes in the rules
    jr = tg.reference.jacobian(lambda x: tg.reference.diagonal(x, 0, 0, 2), a)
    np.testing.assert_array_equal(np.asarray(j), np.asarray(jr))
    # second order through diag_embed (create_graph inside hessian)
    u = RNG.standard_normal(4)
    gf = tg.grad(lambda u: (tg.diag(u, 1) ** 2 * 3.0).sum())
    np.testing.assert_allclose(np.asarray(gf(u)), 6.0 * u, rtol=1e-14)
    hv = tg.hessian(lambda u: (tg.diag(u, -2) ** 2 * 3.0).sum(), u)
    np.testing.assert_allclose(np.asarray(hv), 6.0 * np.eye(4), rtol=1e-14)


def test_writes_through_the_diagonal_reach_the_base_and_bump_its_version():
    # tapegrad's views write through (as PyTorch's; NumPy's diagonal is read-only)
    a = np.arange(12.0).reshape(3, 4)
    x = tg.Variable(a.copy())
    d = x.diagonal(1)
    d[0] = -7.0
    d += 100.0
    want = a.copy()
    want[0, 1] = -7.0
    want[[0, 1, 2], [1, 2, 3]] += 100.0
    np.testing.assert_array_equal(x.numpy(), want)
    # a value saved for backward, changed through the diagonal: the backward refuses
    c = tg.Variable(np.ones((3, 3)))
    w = tg.Variable(np.ones((3, 3)), requires_grad=True)
    loss = (w * c).sum()
    cd = tg.diagonal(c)
    cd *= 2.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()
    # a diagonal of a Variable that requires grad: written only under no_grad
    y = tg.Variable(np.zeros((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        y.diagonal()[0] = 1.0
    with tg.no_grad():
        y.diagonal()[1] = 3.0
    assert y.numpy()[1, 1] == 3.0


@pytest.mark.parametrize("k", [-3, -1, 0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_diag_of_a_vector_and_of_a_matrix(k, dtype):
    v = RNG.standard_normal(4).astype(dtype)
    x = tg.Variable(v, requires_grad=True)
    m = tg.diag(x, k)
    np.testing.assert_array_equal(m.numpy(), np.diag(v, k))
    assert m.dtype == dtype and m.grad_fn.name == "diag_embed"
    seed = RNG.standard_normal(m.shape).astype(dtype)
    m.backward(seed)
    np.testing.assert_array_equal(x.grad, np.diag(seed, k))  # the VJP: the diagonal of the seed
    mat = RNG.standard_normal((3, 5)).astype(dtype)
    np.testing.assert_array_equal(tg.diag(tg.Variable(mat), k).numpy(), np.diag(mat, k))
    np.testing.assert_array_equal(np.diag(tg.Variable(v), k).numpy(), np.diag(v, k))
    np.testing.assert_array_equal(tg.reference.diag(v, k).data, np.diag(v, k))
    tg.testing.crosscheck(lambda eng, u: eng.tanh(eng.diag(u, k)) * 2.0, v.astype(np.float64),
                          raise_on_mismatch=True)


@pytest.mark.parametrize("shape,offset,a1,a2", [c for c in DIAG_CASES if c[0] != (0, 3)])
def test_trace_is_numpys_with_its_gradient(shape, offset, a1, a2):
    a = RNG.standard_normal(shape)
    x = tg.Variable(a, requires_grad=True)
    t = tg.trace(x, offset, a1, a2)
    np.testing.assert_allclose(t.numpy(), np.trace(a, offset, a1, a2), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(x.trace(offset, a1, a2).numpy(), np.trace(a, offset, a1, a2), rtol=1e-14, atol=1e-15)
    w = RNG.uniform(0.5, 1.5, t.shape)
    (t * w).sum().backward()
    wd = np.broadcast_to(np.asarray(w)[..., None], np.diagonal(a, offset, a1, a2).shape)
    np.testing.assert_array_equal(x.grad, _expected_grad(shape, offset, a1 % len(shape), a2 % len(shape), wd))
    assert np.trace(x, offset, a1, a2).shape == np.trace(a, offset, a1, a2).shape


def test_einsum_with_repeated_labels_uses_the_diagonal():
    a = RNG.standard_normal((4, 4))
    b = RNG.standard_normal((3, 3, 2))
    for spec, ops in (("ii->i", (a,)), ("ii", (a,)), ("iij->j", (b,)), ("ij,jj->i", (a, a))):
        np.testing.assert_allclose(tg.einsum(spec, *map(tg.Variable, ops)).numpy(), np.einsum(spec, *ops),
                                   rtol=1e-13)
    tg.testing.crosscheck(lambda eng, u: eng.einsum("ii->i", u) * 2.0, a, raise_on_mismatch=True)


AXIS_OPS = [
    ("squeeze", (1, 3, 1, 2), lambda m, x: m.squeeze(x), lambda x: np.squeeze(x)),
    ("squeeze", (1, 3, 1, 2), lambda m, x: m.squeeze(x, -2), lambda x: np.squeeze(x, -2)),
    ("squeeze", (1, 3, 1, 2), lambda m, x: x.squeeze((0, 2)), lambda x: np.squeeze(x, (0, 2))),
    ("squeeze", (), lambda m, x: m.squeeze(x), lambda x: np.squeeze(x)),
    ("expand_dims", (3, 2), lambda m, x: m.expand_dims(x, 1), lambda x: np.expand_dims(x, 1)),
    ("expand_dims", (3, 2), lambda m, x: m.expand_dims(x, (0, -1, 2)), lambda x: np.expand_dims(x, (0, -1, 2))),
    ("expand_dims", (), lambda m, x: m.expand_dims(x, 0), lambda x: np.expand_dims(x, 0)),
    ("swapaxes", (2, 3, 4), lambda m, x: m.swapaxes(x, 0, -1), lambda x: np.swapaxes(x, 0, -1)),
    ("swapaxes", (2, 3, 4), lambda m, x: x.swapaxes(1, 1), lambda x: np.swapaxes(x, 1, 1)),
    ("moveaxis", (2, 3, 4), lambda m, x: m.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1)),
    ("moveaxis", (2, 3, 4, 5), lambda m, x: m.moveaxis(x, (0, 3), (2, 0)), lambda x: np.moveaxis(x, (0, 3), (2, 0))),
    ("moveaxis", (2, 3, 4, 5), lambda m, x: m.moveaxis(x, [-1, 1], [1, -1]), lambda x: np.moveaxis(x, [-1, 1], [1, -1])),
]


@pytest.mark.parametrize("name,shape,f,npf", AXIS_OPS, ids=[f"{c[0]}-{i}" for i, c in enumerate(AXIS_OPS)])
def test_axis_ops_match_numpy_as_views(name, shape, f, npf):
    a = RNG.standard_normal(shape)
    x = tg.Variable(a, requires_grad=True)
    y = f(tg, x)
    np.testing.assert_array_equal(y.numpy(), npf(a))
    if y.size > 1:
        assert np.shares_memory(y.data, x.data)
    np.testing.assert_array_equal(npf(x).numpy(), npf(a))  # np.<name> dispatches to tapegrad's
    tg.testing.crosscheck(lambda eng, u: eng.tanh(f(eng, u)) * 2.0, a, raise_on_mismatch=True)


@pytest.mark.parametrize("call,kind,words", [
    (lambda x: tg.squeeze(x, 1), ValueError, "squeeze: cannot select an axis"),
    (lambda x: tg.squeeze(x, 5), ValueError, "squeeze: axis 5 is out of bounds"),
    (lambda x: tg.expand_dims(x, 4), ValueError, "expand_dims: axis 4 is out of bounds"),
    (lambda x: tg.expand_dims(x, (1, 1)), ValueError, "expand_dims: repeated axis"),
    (lambda x: tg.expand_dims(x, None), TypeError, "expand_dims: axis must be"),
    (lambda x: tg.swapaxes(x, 0, 3), ValueError, "swapaxes: axis 3 is out of bounds"),
    (lambda x: tg.swapaxes(x, 0, 1.0), TypeError, "swapaxes"),
    (lambda x: tg.moveaxis(x, (0, 1), 2), ValueError, "moveaxis: source and destination"),
    (lambda x: tg.moveaxis(x, 0, -4), ValueError, "moveaxis: axis -4 is out of bounds"),
    (lambda x: tg.diagonal(x, 0, 1, -2), ValueError, "diagonal: axis1 and axis2 cannot be the same"),
    (lambda x: tg.diagonal(x[0, 0], 0), ValueError, "diagonal: needs at least 2 axes"),
    (lambda x: tg.trace(x, 0, 0, 3), ValueError, "trace: axis 3 is out of bounds"),
    (lambda x: tg.diag(x), ValueError, "diag: input must be 1-d or 2-d"),
    (lambda x: tg.diag(x[0, 0], 2 ** 63 - 1), ValueError, "diag: k"),
    (lambda x: tg.diagonal(x, 1.5), TypeError, "diagonal"),
])
def test_errors_name_the_op(call, kind, words):
    x = tg.Variable(A)
    with pytest.raises(kind, match=words):
        call(x)


def test_diagonal_of_a_huge_offset_is_empty():
    x = tg.Variable(np.ones((3, 3)))
    for k in (2 ** 63 - 1, -2 ** 63):
        assert tg.diagonal(x, k).shape == (0,) and tg.trace(x, k).item() == 0.0


@pytest.mark.parametrize("k", [-2 ** 63, -5, -1, 0, 2, 6, 2 ** 63 - 1])
@pytest.mark.parametrize("name", ["tril", "triu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tril_triu_are_one_masked_copy_with_the_mask_on_the_seed(name, k, dtype):
    f = getattr(tg, name)
    kk = min(max(k, -50), 50)  # (NumPy's own tri overflows at k = -2**63; beyond the shape k changes nothing)
    npf = lambda u, _k: getattr(np, name)(u, kk)  # noqa: E731
    for a in (RNG.standard_normal((3, 5)), RNG.standard_normal((2, 4, 3)), RNG.standard_normal((5, 4)).T,
              np.array([[np.nan, -0.0, np.inf], [-np.inf, 5e-324, np.nan]])):
        a = a.astype(dtype)
        x = tg.Variable(a, requires_grad=True)
        y = f(x, k)
        assert y.numpy().tobytes() == npf(a, k).tobytes() and y.grad_fn.name == name
        seed = RNG.standard_normal(a.shape).astype(dtype)
        y.backward(seed)
        assert x.grad.tobytes() == npf(seed, k).tobytes()
        np.testing.assert_array_equal(npf(tg.Variable(a), k).numpy(), npf(a, k))  # np.<name> dispatches
    tg.testing.crosscheck(lambda eng, u: eng.tanh(getattr(eng, name)(u, kk)) * 2.0,
                          RNG.standard_normal((2, 3, 4)), raise_on_mismatch=True)


def test_tril_triu_jvp_second_order_and_errors():
    a = RNG.standard_normal((4, 4))
    t = RNG.standard_normal((4, 4))
    _, tan = tg.jvp(lambda x: tg.triu(x, 1), (a,), (t,))
    np.testing.assert_array_equal(np.asarray(tan), np.triu(t, 1))
    h = tg.hessian(lambda x: (tg.tril(x, -1) ** 3).sum(), a)
    np.testing.assert_allclose(np.asarray(h).reshape(16, 16), np.diag((6 * np.tril(a, -1)).reshape(-1)), rtol=1e-14)
    for name in ("tril", "triu"):
        with pytest.raises(ValueError, match=f"{name}: needs at least 2 axes"):
            getattr(tg, name)(tg.Variable(np.ones(3)))
        with pytest.raises(TypeError, match=name):
            getattr(tg, name)(tg.Variable(np.ones((3, 3))), 0.5)
    assert tg.tril(tg.Variable(np.ones((0, 3)))).shape == (0, 3)
