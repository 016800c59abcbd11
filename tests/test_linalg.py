"""tapegrad.linalg: inv, solve, slogdet, det, cholesky (LAPACK in C++) against NumPy's values,
the reference engine, finite differences and (optionally) PyTorch; batches, both float dtypes,
and the errors NumPy raises (numpy.linalg.LinAlgError) for singular, non-square and
non-positive-definite matrices. The spec-wide tests (tests/test_opspec.py) cover each primitive
once more through tests/op_cases.py; np.linalg.* dispatch is in tests/test_numpy_dispatch.py.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import crosscheck

ref = tg.reference
ENGINES = {"tapegrad": tg, "reference": ref}


def well_conditioned(shape, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    n = shape[-1]
    return (rng.uniform(-1, 1, shape) + 4 * np.eye(n) * rng.choice([-1, 1], shape[:-1] + (1,))).astype(dtype)


def spd(shape, seed=0, dtype=np.float64):
    a = np.random.default_rng(seed).normal(size=shape)
    return (a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])).astype(dtype)


def sym_chol(m, a):
    """cholesky of the symmetric part of a: the derivative NumPy's function has in every entry."""
    return m.linalg.cholesky(0.5 * (a + m.transpose(a, tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))))


SHAPES = [(3, 3), (2, 4, 4), (2, 1, 3, 3), (1, 1)]


# ----- values against NumPy ---------------------------------------------------------------
@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_values_match_numpy(engine, dtype, shape):
    m = ENGINES[engine]
    a = well_conditioned(shape, 1, dtype)
    s = spd(shape, 2, dtype)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    v = m.Variable(a)
    for got, want in [(m.linalg.inv(v), np.linalg.inv(a)), (m.linalg.det(v), np.linalg.det(a)),
                      (m.linalg.cholesky(m.Variable(s)), np.linalg.cholesky(s))]:
        assert got.dtype == want.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got.data, want, rtol=tol, atol=tol)
    sign, logdet = m.linalg.slogdet(v)
    wsign, wlogdet = np.linalg.slogdet(a)
    np.testing.assert_array_equal(sign.data, wsign)
    assert sign.dtype == logdet.dtype == dtype and not sign.requires_grad
    np.testing.assert_allclose(logdet.data, wlogdet, rtol=tol, atol=tol)


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("a_shape, b_shape", [
    ((3, 3), (3,)),            # b a vector
    ((3, 3), (3, 2)),          # b a matrix
    ((2, 3, 3), (3,)),         # a batched, b one vector (NumPy 2: b is a vector when 1-d)
    ((2, 3, 3), (2, 3, 1)),
    ((3, 3), (4, 3, 2)),       # a broadcast over b's batch
    ((2, 1, 3, 3), (5, 3, 2)),  # both batches broadcast
])
def test_solve_matches_numpy(engine, dtype, a_shape, b_shape):
    m = ENGINES[engine]
    a = well_conditioned(a_shape, 3, dtype)
    b = np.random.default_rng(4).normal(size=b_shape).astype(dtype)
    got, want = m.linalg.solve(m.Variable(a), m.Variable(b)), np.linalg.solve(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(got.data, want, rtol=tol, atol=tol)


def test_float32_with_float64_promotes_as_numpy():
    a, b = well_conditioned((3, 3), 5, np.float32), np.ones(3)
    assert tg.linalg.solve(tg.Variable(a), tg.Variable(b)).dtype == np.linalg.solve(a, b).dtype == np.float64


@pytest.mark.parametrize("engine", list(ENGINES))
def test_empty_and_singular_edges_follow_numpy(engine):
    m = ENGINES[engine]
    e = np.zeros((2, 0, 0))
    assert m.linalg.inv(m.Variable(e)).shape == (2, 0, 0)
    np.testing.assert_array_equal(m.linalg.det(m.Variable(e)).data, np.linalg.det(e))  # 1: the empty product
    sing = np.array([[1.0, 2.0], [2.0, 4.0]])
    sign, logdet = m.linalg.slogdet(m.Variable(sing))
    assert sign.data == 0 and logdet.data == -np.inf
    assert m.linalg.det(m.Variable(sing)).data == 0.0


@pytest.mark.parametrize("engine", list(ENGINES))
def test_slogdet_sign_follows_row_swaps_and_negative_pivots(engine):
    m = ENGINES[engine]
    rng = np.random.default_rng(6)
    for _ in range(20):
        a = rng.normal(size=(4, 4))
        sign, logdet = m.linalg.slogdet(m.Variable(a))
        assert sign.data == np.sign(np.linalg.det(a))
        np.testing.assert_allclose(logdet.data, np.log(abs(np.linalg.det(a))), rtol=1e-12)


# ----- derivatives: C++ vs reference vs finite differences ---------------------------------
FUNCS = {
    "inv": (lambda m, a: m.linalg.inv(a), well_conditioned),
    "det": (lambda m, a: m.linalg.det(a), well_conditioned),
    "logdet": (lambda m, a: m.linalg.slogdet(a)[1], well_conditioned),
    "slogdet": (lambda m, a: m.linalg.slogdet(a)[0] * m.linalg.slogdet(a)[1], well_conditioned),
    "cholesky": (sym_chol, spd),
    "solve_a": (lambda m, a: m.linalg.solve(a, np.arange(6.0).reshape(3, 2)), well_conditioned),
}


@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 3)])
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_derivatives_three_ways(name, shape):
    f, make = FUNCS[name]
    a = make(shape, 7)  # solve_a with (2, 3, 3): one b broadcast against a batch of a
    assert crosscheck(lambda m, x: f(m, x), a)
    assert tg.gradcheck(lambda x: f(tg, x), (a,), order=2, modes=("reverse", "forward"))


@pytest.mark.parametrize("a_shape, b_shape", [((3, 3), (3,)), ((2, 3, 3), (3, 2)), ((3, 3), (2, 3, 1))])
def test_solve_derivatives_in_both_operands(a_shape, b_shape):
    a = well_conditioned(a_shape, 8)
    b = np.random.default_rng(9).normal(size=b_shape)
    assert crosscheck(lambda m, x, y: m.linalg.solve(x, y), a, b)
    assert tg.gradcheck(lambda x, y: tg.linalg.solve(x, y), (a, b), order=2, modes=("reverse", "forward"))


@pytest.mark.parametrize("engine", list(ENGINES))
def test_cholesky_gradient_is_symmetric_as_pytorchs(engine):
    m = ENGINES[engine]
    s = spd((3, 3), 10)
    w = np.random.default_rng(11).normal(size=(3, 3))
    g = m.grad(lambda a: (m.linalg.cholesky(a) * w).sum())(s)
    np.testing.assert_allclose(g, g.T, rtol=1e-12, atol=1e-14)
    # against central differences along symmetric directions (the ones a symmetric input has)
    u = np.random.default_rng(12).normal(size=(3, 3))
    u = u + u.T
    h = 1e-6
    fd = (np.sum(np.linalg.cholesky(s + h * u) * w) - np.sum(np.linalg.cholesky(s - h * u) * w)) / (2 * h)
    np.testing.assert_allclose(np.sum(g * u), fd, rtol=1e-7)


def test_second_order_of_logdet_is_minus_the_inverse_product():
    # d^2 log|det A| [U, V] = -tr(A^-1 U A^-1 V): the Hessian applied to V, read at U
    a = well_conditioned((3, 3), 13)
    rng = np.random.default_rng(14)
    u, v = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    ai = np.linalg.inv(a)
    for m in (tg, ref):
        hv = m.hvp(lambda x: m.linalg.slogdet(x)[1], a, v)
        np.testing.assert_allclose(np.sum(hv * u), -np.trace(ai @ u @ ai @ v), rtol=1e-10)


# ----- errors: NumPy's LinAlgError, naming the op and the shape -------------------------------
@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("name", ["inv", "slogdet", "det", "cholesky", "solve"])
def test_non_square_and_1d_raise_linalg_error(engine, name):
    m = ENGINES[engine]
    call = (lambda a: m.linalg.solve(a, np.ones(2))) if name == "solve" else getattr(m.linalg, name)
    for bad in (np.ones((2, 3)), np.ones(3)):
        with pytest.raises(np.linalg.LinAlgError, match=name):
            call(m.Variable(bad))


@pytest.mark.parametrize("engine", list(ENGINES))
def test_singular_matrices_raise_linalg_error(engine):
    m = ENGINES[engine]
    sing = m.Variable(np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [2.0, 4.0]]]), requires_grad=True)
    with pytest.raises(np.linalg.LinAlgError, match=r"inv: singular .*\(2, 2, 2\)"):
        m.linalg.inv(sing)
    with pytest.raises(np.linalg.LinAlgError, match=r"solve: singular"):
        m.linalg.solve(sing, np.ones((2, 2, 1)))
    # log|det| is -inf there (as NumPy), and its gradient A^-T does not exist: raise, not NaN
    logdet = m.linalg.slogdet(sing)[1]
    assert logdet.data[1] == -np.inf
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        logdet[0].backward()


@pytest.mark.parametrize("engine", list(ENGINES))
def test_not_positive_definite_raises_linalg_error(engine):
    m = ENGINES[engine]
    with pytest.raises(np.linalg.LinAlgError, match=r"cholesky: .*\(2, 2\).* not positive definite"):
        m.linalg.cholesky(m.Variable(np.array([[1.0, 2.0], [2.0, 1.0]])))


@pytest.mark.parametrize("engine", list(ENGINES))
def test_solve_shape_errors_name_the_shapes(engine):
    m = ENGINES[engine]
    a = m.Variable(np.eye(3))
    with pytest.raises(ValueError, match=r"solve: .*\(3, 3\).*\(2,\)"):
        m.linalg.solve(a, np.ones(2))
    with pytest.raises(ValueError, match=r"solve: batch dimensions"):
        m.linalg.solve(m.Variable(np.ones((2, 3, 3)) + np.eye(3)), np.ones((4, 3, 1)))


# ----- np.linalg dispatch ----------------------------------------------------------------------
@pytest.mark.parametrize("engine", list(ENGINES))
def test_np_linalg_dispatches_to_tapegrad(engine):
    m = ENGINES[engine]
    a = well_conditioned((3, 3), 15)
    v = m.Variable(a, requires_grad=True)
    for fn, want in [(np.linalg.inv, np.linalg.inv(a)), (np.linalg.det, np.linalg.det(a))]:
        out = fn(v)
        assert isinstance(out, m.Variable) and out.requires_grad
        np.testing.assert_allclose(out.data, want, rtol=1e-12)
    sign, logdet = np.linalg.slogdet(v)
    assert isinstance(logdet, m.Variable) and logdet.requires_grad
    x = np.linalg.solve(v, np.ones(3))
    assert isinstance(x, m.Variable) and x.requires_grad
    assert isinstance(np.linalg.cholesky(m.Variable(spd((3, 3)))), m.Variable)


# ----- PyTorch (optional) ----------------------------------------------------------------------
def test_gradients_match_torch():
    torch = pytest.importorskip("torch")
    a = well_conditioned((2, 3, 3), 16)
    s = spd((2, 3, 3), 17)
    b = np.random.default_rng(18).normal(size=(2, 3, 2))
    w3 = np.random.default_rng(19).normal(size=(2, 3, 3))
    cases = [
        (lambda m, x: (m.linalg.inv(x) * w3).sum(), lambda x: (torch.linalg.inv(x) * torch.tensor(w3)).sum(), a),
        (lambda m, x: m.linalg.det(x).sum(), lambda x: torch.linalg.det(x).sum(), a),
        (lambda m, x: m.linalg.slogdet(x)[1].sum(), lambda x: torch.linalg.slogdet(x)[1].sum(), a),
        (lambda m, x: (m.linalg.cholesky(x) * w3).sum(), lambda x: (torch.linalg.cholesky(x) * torch.tensor(w3)).sum(), s),
        (lambda m, x: (m.linalg.solve(x, b) ** 2).sum(), lambda x: (torch.linalg.solve(x, torch.tensor(b)) ** 2).sum(), a),
    ]
    for ours, theirs, x in cases:
        tx = torch.tensor(x, requires_grad=True)
        theirs(tx).backward()
        np.testing.assert_allclose(tg.grad(lambda v: ours(tg, v))(x), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    tb = torch.tensor(b, requires_grad=True)
    (torch.linalg.solve(torch.tensor(a), tb) ** 2).sum().backward()
    np.testing.assert_allclose(tg.grad(lambda v: (tg.linalg.solve(a, v) ** 2).sum())(b), tb.grad.numpy(), rtol=1e-10)


# ----- the inverse trigonometric primitives' edges --------------------------------------------------
@pytest.mark.parametrize("engine", list(ENGINES))
def test_arcsin_arccos_derivative_at_the_domain_edge_is_infinite(engine):
    m = ENGINES[engine]
    x = np.array([-1.0, 1.0])
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(m.grad(lambda v: m.arcsin(v).sum())(x), [np.inf, np.inf])
        np.testing.assert_array_equal(m.grad(lambda v: m.arccos(v).sum())(x), [-np.inf, -np.inf])


@pytest.mark.parametrize("engine", list(ENGINES))
def test_arctan2_gradient_at_the_origin_is_zero_as_pytorchs(engine):
    m = ENGINES[engine]
    a, b = np.array([0.0, 0.0, 1.0]), np.array([0.0, 2.0, 0.0])
    ga, gb = m.grad(lambda u, v: m.arctan2(u, v).sum(), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga, [0.0, 0.5, 0.0])
    np.testing.assert_array_equal(gb, [0.0, 0.0, -1.0])
    _, t = m.jvp(lambda u, v: m.arctan2(u, v), (a, b), (np.ones(3), np.ones(3)))  # the same rule forward
    np.testing.assert_array_equal(t, ga + gb)
    torch = pytest.importorskip("torch")
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    torch.atan2(ta, tb).sum().backward()
    np.testing.assert_array_equal(ga, ta.grad.numpy())
    np.testing.assert_array_equal(gb, tb.grad.numpy())


@pytest.mark.parametrize("engine", list(ENGINES))
def test_arctan2_values_in_every_quadrant_match_numpy(engine):
    m = ENGINES[engine]
    a = np.array([1.0, 1.0, -1.0, -1.0, 0.0, 0.0, -0.0, 2.0])
    b = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 0.0])
    np.testing.assert_array_equal(m.arctan2(m.Variable(a), m.Variable(b)).data, np.arctan2(a, b))


def test_inverse_trig_match_torch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-0.9, 0.9, 7)
    for ours, theirs in [(tg.arcsin, torch.asin), (tg.arccos, torch.acos), (tg.arctan, torch.atan)]:
        tx = torch.tensor(x, requires_grad=True)
        theirs(tx).sum().backward()
        np.testing.assert_allclose(tg.grad(lambda v: ours(v).sum())(x), tx.grad.numpy(), rtol=1e-14)
    a, b = np.array([0.5, -2.0, 3.0]), np.array([-1.0, 0.25, 2.0])
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    torch.atan2(ta, tb).sum().backward()
    ga, gb = tg.grad(lambda u, v: tg.arctan2(u, v).sum(), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-14)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-14)


# ----- the symbolic engine (SymPy's Matrix inv / det / cholesky) -------------------------------
def test_symbolic_engine_agrees_with_the_tape():
    pytest.importorskip("sympy")
    S = tg.symbolic
    a, s = well_conditioned((2, 2), 20), spd((2, 2), 21)
    w = np.array([[0.3, -1.2], [0.7, 2.0]])
    for f, x in [(lambda m, v: m.slogdet(v)[1], a), (lambda m, v: (m.inv(v) * w).sum(), a),
                 (lambda m, v: (m.cholesky(v) * w).sum(), s), (lambda m, v: m.solve(v, w[0]).sum(), a)]:
        np.testing.assert_allclose(S.to_sympy(lambda v: f(S, v), (2, 2))(x), f(tg, tg.Variable(x)).data, rtol=1e-12)
        g = S.symbolic_gradient(lambda v: f(S, v), (2, 2))(x)
        if x is s:  # cholesky: SymPy differentiates the lower triangle it reads, the engines symmetrically
            g = 0.5 * (g + g.T)
        np.testing.assert_allclose(g, tg.grad(lambda v: f(tg, v))(x), rtol=1e-10)
    u, v = np.array([0.5, -2.0]), np.array([-1.0, 0.25])
    ga, gb = S.symbolic_gradient(lambda p, q: S.arctan2(p, q).sum(), (2,), (2,))(u, v)
    np.testing.assert_allclose(ga, tg.grad(lambda p: tg.arctan2(p, v).sum())(u), rtol=1e-13)
    np.testing.assert_allclose(gb, tg.grad(lambda q: tg.arctan2(u, q).sum())(v), rtol=1e-13)


# ----- first-order backward from the forward's factors (LU, trsm) vs the differentiable rules ------
FIRST_ORDER = {  # f(m, a) -> scalar; the input maker
    "solve": (lambda m, a: (m.linalg.solve(a, np.arange(a.shape[-1] * 2.0).reshape(a.shape[-1], 2)) ** 2).sum(),
              well_conditioned),
    "slogdet": (lambda m, a: (m.linalg.slogdet(a)[1] * np.arange(1.0, 1.0 + np.prod(a.shape[:-2]))
                              .reshape(a.shape[:-2])).sum(), well_conditioned),
    "det": (lambda m, a: m.linalg.det(a).sum(), well_conditioned),
    "cholesky": (lambda m, a: (m.linalg.cholesky(a) * np.tril(np.ones(a.shape[-2:])) * 1.5).sum(), spd),
    "inv": (lambda m, a: (m.linalg.inv(a) ** 2).sum(), well_conditioned),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(5, 5), (3, 4, 4), (2, 1, 6, 6)])
@pytest.mark.parametrize("name", sorted(FIRST_ORDER))
def test_first_order_gradient_equals_the_create_graph_one(name, shape, dtype):
    """backward() (first order: LU reuse, trsm) and backward(create_graph=True) (the rules made of
    differentiable ops, refactoring) give the same gradient, and so does the reference engine."""
    f, make = FIRST_ORDER[name]
    a = make(shape, 21, dtype)
    grads = []
    for m, cg in ((tg, False), (tg, True), (ref, False)):
        v = m.Variable(a, requires_grad=True)
        f(m, v).backward(create_graph=cg)
        assert v.grad.dtype == dtype
        grads.append(np.asarray(v.grad.data, dtype=np.float64))
    tol = 1e-10 if dtype == np.float64 else 2e-4
    for g in grads[1:]:
        np.testing.assert_allclose(grads[0], g, rtol=tol, atol=tol)


@pytest.mark.parametrize("op", ["solve", "slogdet"])
def test_a_factored_input_modified_in_place_makes_backward_raise(op):
    # the saved LU factors came from A: a first-order backward must refuse an A changed since
    y = tg.Variable(well_conditioned((3, 3), 22), requires_grad=True)
    out = tg.linalg.solve(y, np.ones(3)) if op == "solve" else tg.linalg.slogdet(y)[1]
    with tg.no_grad():
        y += 1.0
    with pytest.raises(RuntimeError, match=f"modified by an in-place operation.*saved by '{op}'"):
        out.sum().backward()


def test_solve_first_order_gradient_for_b_alone_matches_torch():
    torch = pytest.importorskip("torch")
    a, b = well_conditioned((2, 4, 4), 24), np.random.default_rng(25).normal(size=(2, 4, 3))
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (torch.linalg.solve(ta, tb) ** 3).sum().backward()
    va, vb = tg.Variable(a, requires_grad=True), tg.Variable(b, requires_grad=True)
    (tg.linalg.solve(va, vb) ** 3).sum().backward()
    np.testing.assert_allclose(va.grad.data, ta.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vb.grad.data, tb.grad.numpy(), rtol=1e-10, atol=1e-12)
    vb2 = tg.Variable(b, requires_grad=True)  # only b requires grad: A's factors are still kept
    (tg.linalg.solve(tg.Variable(a), vb2) ** 3).sum().backward()
    np.testing.assert_allclose(vb2.grad.data, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


# ----- past LAPACK's block size: getri (inv, slogdet's backward), the cholesky backward's tiles ------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inverse_and_first_order_gradients_past_the_block_size(dtype):
    """n = 150: getri's blocked path (block 64) and sym's 64 x 64 tiles with a partial one; inv
    against NumPy, the first-order gradients (getri, trmm + trsm) against the create_graph rules,
    cholesky's with a full (not lower-triangular, not symmetric) cotangent."""
    n = 150
    a, s = well_conditioned((n, n), 30, dtype), spd((n, n), 31, dtype)
    w = np.random.default_rng(32).normal(size=(n, n)).astype(dtype)
    tol = 1e-10 if dtype == np.float64 else 5e-4
    np.testing.assert_allclose(tg.linalg.inv(tg.Variable(a)).data, np.linalg.inv(a), rtol=tol, atol=tol)
    for f, x in [(lambda m, v: (m.linalg.inv(v) * w).sum(), a), (lambda m, v: m.linalg.slogdet(v)[1] * 3.0, a),
                 (lambda m, v: (m.linalg.cholesky(v) * w).sum(), s)]:
        grads = []
        for cg in (False, True):
            v = tg.Variable(x, requires_grad=True)
            f(tg, v).backward(create_graph=cg)
            grads.append(np.asarray(v.grad.data, np.float64))
        np.testing.assert_allclose(grads[0], grads[1], rtol=tol, atol=tol * np.abs(grads[1]).max())
    a64 = a.astype(np.float64)  # d log|det A| / dA = A^-T: getri's inverse, transposed
    np.testing.assert_allclose(tg.grad(lambda v: tg.linalg.slogdet(v)[1])(a64), np.linalg.inv(a64).T,
                               rtol=1e-10, atol=1e-13)


def test_inverse_of_a_batch_with_one_singular_matrix_names_it():
    a = np.stack([well_conditioned((3, 3), 33), [[1.0, 2, 3], [2, 4, 6], [0, 1, 1]]])
    with pytest.raises(np.linalg.LinAlgError, match=r"inv: singular matrix of shape \(2, 3, 3\) \(batch element 1\)"):
        tg.linalg.inv(tg.Variable(a))
    v = tg.Variable(a, requires_grad=True)  # slogdet: (0, -inf) forward, its gradient raises
    sign, logdet = tg.linalg.slogdet(v)
    np.testing.assert_array_equal(sign.data[1], 0.0)
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        logdet.sum().backward()


def test_inverse_of_a_matrix_with_nan_is_all_nan_as_before_getri():
    # getri alone left -1 and 1 in the inverse of this matrix; the getrs-on-I fallback gives NaN throughout
    a = np.array([[np.nan, 1.0], [1.0, 2.0]])
    assert np.isnan(tg.linalg.inv(tg.Variable(a)).data).all()
    assert np.isnan(tg.linalg.inv(tg.Variable(np.stack([well_conditioned((2, 2), 37), a]))).data[1]).all()


def test_large_inverse_and_cholesky_gradients_match_torch():
    torch = pytest.importorskip("torch")
    n = 130
    a, s = well_conditioned((n, n), 34), spd((n, n), 35)
    w = np.random.default_rng(36).normal(size=(n, n))
    for ours, theirs, x in [
            (lambda v: (tg.linalg.inv(v) * w).sum(), lambda t: (torch.linalg.inv(t) * torch.tensor(w)).sum(), a),
            (lambda v: tg.linalg.slogdet(v)[1], lambda t: torch.linalg.slogdet(t)[1], a),
            (lambda v: (tg.linalg.cholesky(v) * w).sum(), lambda t: (torch.linalg.cholesky(t) * torch.tensor(w)).sum(),
             s)]:
        t = torch.tensor(x, requires_grad=True)
        theirs(t).backward()
        v = tg.Variable(x, requires_grad=True)
        ours(v).backward()
        np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-9, atol=1e-12 * np.abs(t.grad.numpy()).max())
