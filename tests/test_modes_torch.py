"""Jacobians and Hessians of the C++ engine vs torch.func (skipped without torch).

tapegrad.jacobian(mode="forward") == torch.func.jacfwd,
tapegrad.jacobian(mode="reverse") == torch.func.jacrev,
tapegrad.hessian == torch.func.hessian, hvp == hessian · v, on the same
functions in float64.
"""
import zlib

import numpy as np
import pytest

import tapegrad as tg
from helpers import assert_close

torch = pytest.importorskip("torch")
torch_func = pytest.importorskip("torch.func")

# torch.func's first call goes through torch.jit.script, which warns in recent torch releases
# (a third-party deprecation; the suite turns warnings into errors).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


_R = rng_for("torch-constants")
W1 = _R.normal(size=(4, 5)) * 0.7
B1 = _R.normal(size=(4,))
W2 = _R.normal(size=(4,))
A = _R.normal(size=(5, 3))
LABELS = np.eye(3)[[0, 2]]
IDX = np.array([2, 0, 0, 4])


def T(a):
    return torch.tensor(a, dtype=torch.float64)


# name: (input shape, domain, tapegrad fn, torch fn)
VECTOR_FUNCTIONS = {
    "tanh_mlp_layer": ((5,), "normal", lambda x: tg.tanh(tg.matmul(W1, x) + B1),
                       lambda x: torch.tanh(T(W1) @ x + T(B1))),
    "softmax": ((2, 3), "normal", lambda x: tg.softmax(x * 1.5, axis=0), lambda x: torch.softmax(x * 1.5, dim=0)),
    "log_softmax": ((2, 3), "normal", lambda x: tg.log_softmax(x, axis=-1), lambda x: torch.log_softmax(x, dim=-1)),
    "logsumexp_axis": ((3, 4), "normal", lambda x: tg.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, dim=1)),
    "broadcast_binary": ((3,), "positive",
                         lambda x: (tg.reshape(x, (3, 1)) ** tg.reshape(x, (1, 3))) / (1.0 + x),
                         lambda x: (x.reshape(3, 1) ** x.reshape(1, 3)) / (1.0 + x)),
    "batched_matmul": ((2, 3, 3), "normal", lambda x: tg.matmul(x, tg.transpose(x, (0, 2, 1))) - x[0],
                       lambda x: x @ x.transpose(1, 2) - x[0]),
    "indexing": ((5,), "normal", lambda x: tg.sin(x)[IDX] * x[1:][::-1][:4],
                 lambda x: torch.sin(x)[torch.tensor(IDX)] * torch.flip(x[1:], (0,))[:4]),
    "reductions": ((2, 3), "normal",
                   lambda x: tg.concatenate([tg.sum(x * x, axis=0), tg.mean(tg.exp(x), axis=1),
                                             tg.reshape(tg.sum(x), (1,))]),
                   lambda x: torch.cat([(x * x).sum(0), torch.exp(x).mean(1), x.sum().reshape(1)])),
    "stack_where": ((4,), "normal",
                    lambda x: tg.stack([tg.where(np.array([True, False, True, False]), x * x, tg.sigmoid(x)),
                                        tg.log1p(x * x), tg.sqrt(1.0 + x * x)], axis=1),
                    lambda x: torch.stack([torch.where(torch.tensor([True, False, True, False]), x * x,
                                                       torch.sigmoid(x)),
                                           torch.log1p(x * x), torch.sqrt(1.0 + x * x)], dim=1)),
    "scalar_in": ((), "normal", lambda x: tg.stack([tg.sin(x), tg.cos(x) * x, x ** 3]),
                  lambda x: torch.stack([torch.sin(x), torch.cos(x) * x, x ** 3])),
}

SCALAR_FUNCTIONS = {
    "tanh_mlp": ((5,), "normal", lambda x: tg.sum(tg.tanh(tg.matmul(W1, x) + B1) * W2),
                 lambda x: (torch.tanh(T(W1) @ x + T(B1)) * T(W2)).sum()),
    "logsumexp": ((5,), "normal", lambda x: tg.logsumexp(x), lambda x: torch.logsumexp(x, dim=0)),
    "softmax_cross_entropy": (
        (2, 5), "normal",
        lambda x: -tg.mean(tg.sum(tg.log_softmax(tg.matmul(x, A), axis=-1) * LABELS, axis=-1)),
        lambda x: -(torch.log_softmax(x @ T(A), dim=-1) * T(LABELS)).sum(-1).mean()),
    "product": ((4,), "normal", lambda x: x[0] * x[1] * x[2] * x[3] + tg.sum(x[:-1] * x[1:]),
                lambda x: x[0] * x[1] * x[2] * x[3] + (x[:-1] * x[1:]).sum()),
    "pow": ((4,), "positive", lambda x: tg.sum(x ** 3) + tg.sum(x ** 2.5) + tg.sum(x ** x[::-1]),
            lambda x: (x ** 3).sum() + (x ** 2.5).sum() + (x ** torch.flip(x, (0,))).sum()),
    "sin_cos": ((5,), "normal", lambda x: tg.sum(tg.sin(x) * tg.cos(2.0 * x[::-1])),
                lambda x: (torch.sin(x) * torch.cos(2.0 * torch.flip(x, (0,)))).sum()),
    "exp_log_sqrt": ((3,), "positive", lambda x: tg.sum(tg.exp(x) * tg.log(x) + tg.sqrt(x) / (1.0 + x)),
                     lambda x: (torch.exp(x) * torch.log(x) + torch.sqrt(x) / (1.0 + x)).sum()),
    "matrix_quadratic": ((2, 3), "normal", lambda x: tg.sum(tg.matmul(x, tg.transpose(x)) ** 2),
                         lambda x: ((x @ x.T) ** 2).sum()),
    "scalar_input": ((), "normal", lambda x: tg.sin(x) * tg.exp(x) + x ** 4,
                     lambda x: torch.sin(x) * torch.exp(x) + x ** 4),
}


def sample(domain, shape, rng):
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    return rng.normal(size=shape)


@pytest.mark.parametrize("name", list(VECTOR_FUNCTIONS) + list(SCALAR_FUNCTIONS))
def test_jacobian_matches_torch_func(name):
    shape, domain, f, tf = {**VECTOR_FUNCTIONS, **SCALAR_FUNCTIONS}[name]
    x = sample(domain, shape, rng_for("torch-jac", name))
    jf = tg.jacobian(f, x, mode="forward")
    jr = tg.jacobian(f, x, mode="reverse")
    tjf = torch_func.jacfwd(tf)(T(x)).numpy()
    tjr = torch_func.jacrev(tf)(T(x)).numpy()
    assert jf.shape == tjf.shape and jr.shape == tjr.shape
    assert_close(jf, tjf, rtol=1e-10, atol_scale=1e-12, msg="forward vs torch.func.jacfwd")
    assert_close(jr, tjr, rtol=1e-10, atol_scale=1e-12, msg="reverse vs torch.func.jacrev")
    # jvp / vjp against torch.func.jvp / vjp
    rng = rng_for("torch-jvp", name)
    u = rng.normal(size=shape)
    _, t = tg.jvp(f, (x,), (u,))
    _, tt = torch_func.jvp(tf, (T(x),), (T(u),))
    assert_close(t, tt.numpy(), rtol=1e-10, atol_scale=1e-12, msg="jvp")
    out, vjp_fn = tg.vjp(f, x)
    w = rng.normal(size=np.shape(out))
    _, tvjp = torch_func.vjp(tf, T(x))
    assert_close(vjp_fn(w)[0], tvjp(T(w))[0].numpy(), rtol=1e-10, atol_scale=1e-12, msg="vjp")


@pytest.mark.parametrize("name", list(SCALAR_FUNCTIONS))
def test_hessian_matches_torch_func(name):
    shape, domain, f, tf = SCALAR_FUNCTIONS[name]
    rng = rng_for("torch-hess", name)
    x = sample(domain, shape, rng)
    H = tg.hessian(f, x)
    TH = torch_func.hessian(tf)(T(x)).numpy()
    assert H.shape == TH.shape
    assert_close(H, TH, rtol=1e-10, atol_scale=1e-12, msg="hessian vs torch.func.hessian")
    # jacrev(jacrev) and jacfwd(jacrev) spelled with tapegrad
    for m1 in ("forward", "reverse"):
        for m2 in ("forward", "reverse"):
            HH = tg.jacobian(lambda v: tg.jacobian(f, v, mode=m1), x, mode=m2)
            assert_close(HH, TH, rtol=1e-10, atol_scale=1e-12, msg=f"jacobian({m1}) of jacobian({m2})")
    v = rng.normal(size=shape)
    hv = tg.hvp(f, x, v)
    _, thv = torch_func.jvp(torch_func.grad(tf), (T(x),), (T(v),))
    assert_close(hv, thv.numpy(), rtol=1e-10, atol_scale=1e-12, msg="hvp")
    assert_close(tg.grad(f)(x), torch_func.grad(tf)(T(x)).numpy(), rtol=1e-12, atol_scale=1e-14, msg="grad")


@pytest.mark.parametrize("name", list(VECTOR_FUNCTIONS))
def test_second_derivatives_of_vector_functions_match_torch(name):
    shape, domain, f, tf = VECTOR_FUNCTIONS[name]
    x = sample(domain, shape, rng_for("torch-d2", name))
    ref = torch_func.jacfwd(torch_func.jacrev(tf))(T(x)).numpy()
    for inner in ("forward", "reverse"):
        for outer in ("forward", "reverse"):
            D2 = tg.jacobian(lambda v: tg.jacobian(f, v, mode=inner), x, mode=outer)
            assert D2.shape == ref.shape
            assert_close(D2, ref, rtol=1e-10, atol_scale=1e-12, msg=f"jacobian({outer}) of jacobian({inner})")
