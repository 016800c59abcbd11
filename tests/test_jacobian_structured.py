"""jacobian()'s structured basis seeds against dense seeds.

`tapegrad.jacobian` (not nested) seeds its sweeps with rows of the identity
kept as one vector inside the sweep (`Basis` in cpp/include/tapegrad/
autograd.hpp): pointwise ops pass it on, matmul with a vector turns it dense
with a scaled copy, anything else densifies it. Each case here compares that
path with the same sweep seeded by explicit dense identity rows (the
`_core._grad` / `_core._forward` entry points) and with the reference engine,
over chunk sizes that split the basis unevenly.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core
from helpers import assert_close, reference_engine

rng = np.random.default_rng(7)
W = rng.standard_normal((5, 4))
V = rng.standard_normal((4, 3))
B3 = rng.standard_normal(3)


def _cases(m):
    """name -> (f, input shapes); f uses only the engine module `m`."""
    Wm, Vm, Bm = m.Variable(W), m.Variable(V), m.Variable(B3)
    return {
        "tanh_mlp_column": (lambda x: m.tanh(Wm @ m.tanh(x)), [(4,)]),
        "row_vector_linear": (lambda x: m.sigmoid(x @ Vm + Bm), [(4,)]),
        "bias_broadcast_row": (lambda x: m.tanh(x @ Vm + Bm), [(1, 4)]),
        "matrix_input": (lambda x: m.tanh(x @ Vm), [(2, 4)]),
        "identity": (lambda x: x, [(3, 2)]),
        "reshape_chain": (lambda x: m.exp(m.reshape(x, (6,)) * 0.5), [(2, 3)]),
        "input_used_twice": (lambda x: x * m.sum(x) + m.sin(x), [(5,)]),
        "scalar_times_vector": (lambda s: s * m.Variable(B3), [()]),
        "broadcast_input": (lambda b: m.tanh(m.Variable(W) + b), [(4,)]),
        "two_inputs": (lambda x, y: m.tanh(x * y) + x @ m.Variable(np.eye(4)), [(4,), (4,)]),
        "second_input_matrix": (lambda x, A: m.tanh(A @ x), [(4,), (5, 4)]),
        "where_clip": (lambda x: m.where(np.arange(6).reshape(2, 3) % 2 == 0, m.clip(x, -0.5, 0.5), x * x),
                       [(2, 3)]),
        "astype": (lambda x: m.tanh(x.astype(np.float32)).astype(np.float64) * 2, [(4,)]),
        "reduction": (lambda x: m.sum(m.tanh(x), axis=0), [(3, 4)]),
    }


CASES = sorted(_cases(tg))


def _dense(f, arrays, mode):
    """The Jacobians through dense identity seeds (the path jacobian() replaces)."""
    xs = [tg.Variable(a, requires_grad=True) for a in arrays]
    out = f(*xs)
    jacs = []
    if mode == "reverse":
        eye = np.eye(out.size).reshape((out.size,) + out.shape)
        gs = _core._grad([out], xs, [eye], True, False, 1)
        for g, a in zip(gs, arrays):
            g = np.zeros((out.size,) + a.shape) if g is None else np.asarray(g)
            jacs.append(g.reshape(out.shape + a.shape))
    else:
        for x, a in zip(xs, arrays):
            eye = np.eye(a.size).reshape((a.size,) + a.shape)
            (t,) = _core._forward([out], [x], [eye], 1, False)
            jacs.append(np.asarray(t).reshape(a.size, -1).T.reshape(out.shape + a.shape))
    return jacs


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("chunk_size", [None, 1, 2, 5])
@pytest.mark.parametrize("name", CASES)
def test_structured_seed_equals_dense_seed(name, chunk_size, mode):
    f, shapes = _cases(tg)[name]
    arrays = [rng.standard_normal(s) for s in shapes]
    got = tg.jacobian(f, tuple(arrays), mode=mode, chunk_size=chunk_size)
    want = _dense(f, arrays, mode)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    ref = reference_engine()
    if ref is not None:
        rf, _ = _cases(ref)[name]
        tol = {"rtol": 1e-5} if name == "astype" else {}  # a float32 intermediate
        for g, r in zip(got, ref.jacobian(rf, tuple(arrays), mode=mode)):
            assert_close(g, r, **tol)


def test_basis_entry_points_reject_bad_rows():
    x = tg.Variable(np.ones(3), requires_grad=True)
    y = tg.tanh(x)
    with pytest.raises(ValueError, match="basis rows 2..1"):
        _core._grad_basis(y, [x], 2, 1)
    with pytest.raises(ValueError, match="out of range for size 3"):
        _core._forward_basis(y, x, 0, 4)
    with pytest.raises(ValueError, match="no inputs"):
        _core._grad_basis(y, [], 0, 1)
    with pytest.raises(Exception, match="does not depend"):
        _core._grad_basis(tg.Variable(np.ones(3)), [x], 0, 1)
