"""Pytrees and has_aux in the derivative operators, on both engines.

Arguments and outputs of grad, value_and_grad, jvp, vjp, jacobian, hessian and hvp
may be dicts, lists, tuples (namedtuples) and None around array leaves; the
derivatives come back in the same structure. Checked three ways: the C++ engine
vs the reference engine vs central differences (float64), JAX's return shapes
for has_aux, and the errors."""
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import tapegrad as tg
from helpers import assert_close, numeric_grad

R = tg.reference
ENGINES = [pytest.param(tg, id="cpp"), pytest.param(R, id="reference")]
Params = namedtuple("Params", "w b")


def params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {"layer": {"W": rng.normal(size=(3, 4)).astype(dtype), "b": rng.normal(size=4).astype(dtype)},
            "scale": [rng.normal(size=2).astype(dtype), 0.7],
            "skip": None,
            "pair": Params(rng.normal(size=(2, 2)).astype(dtype), rng.normal(size=2).astype(dtype))}


def loss(E):
    """A scalar of every leaf of params(), with a batch x."""
    def f(p, x):
        h = E.tanh(x @ p["layer"]["W"] + p["layer"]["b"])            # (5, 4)
        s = p["scale"][0] * p["scale"][1]                             # (2,)
        q = E.sin(p["pair"].w @ s + p["pair"].b)                      # (2,)
        return (h ** 2).sum() * 0.1 + (q * q).sum() + (h[:, :2] * q).sum()
    return f


def leaves(tree):
    """The leaves of a pytree, depth first (test-side walker, independent of both engines)."""
    if tree is None:
        return []
    if isinstance(tree, dict):
        return [leaf for k in tree for leaf in leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for e in tree for leaf in leaves(e)]
    return [tree]


def same_structure(a, b):
    """Containers of the same types, keys and lengths; leaves (arrays, numbers) of the same shapes."""
    if isinstance(a, (dict, list, tuple)) or a is None:
        assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            same_structure(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same_structure(x, y)
    elif a is not None:
        assert np.shape(a) == np.shape(b)


def fd_tree_grad(f, tree, *rest):
    """Central differences of f with respect to every leaf of ``tree`` (one at a time), as a list."""
    out = []
    for i, leaf in enumerate(leaves(tree)):
        def g(v, i=i):
            flat = [np.asarray(x, dtype=np.float64) for x in leaves(tree)]
            flat[i] = v
            return float(np.asarray(f(rebuild(tree, flat), *rest)))
        out.append(numeric_grad(g, np.asarray(leaf, dtype=np.float64)))
    return out


def rebuild(tree, flat):
    it = iter(flat)

    def go(t):
        if t is None:
            return None
        if isinstance(t, dict):
            return type(t)((k, go(v)) for k, v in t.items())
        if isinstance(t, tuple) and hasattr(t, "_fields"):
            return type(t)(*[go(v) for v in t])
        if isinstance(t, (list, tuple)):
            return type(t)(go(v) for v in t)
        return next(it)
    return go(tree)


def numpy_loss(p, x):
    h = np.tanh(x @ p["layer"]["W"] + p["layer"]["b"])
    s = p["scale"][0] * p["scale"][1]
    q = np.sin(p["pair"].w @ s + p["pair"].b)
    return (h ** 2).sum() * 0.1 + (q * q).sum() + (h[:, :2] * q).sum()


X = np.random.default_rng(1).normal(size=(5, 3))


# ---------------------------------------------------------------------------
# grad / value_and_grad: structure, both engines, finite differences
# ---------------------------------------------------------------------------

def test_grad_of_a_nested_pytree_three_ways():
    p = params()
    g_cpp = tg.grad(loss(tg))(p, X)
    g_ref = R.grad(loss(R))(p, X)
    same_structure(g_cpp, p)
    same_structure(g_ref, p)
    fd = fd_tree_grad(numpy_loss, p, X)
    for a, b, c in zip(leaves(g_cpp), leaves(g_ref), fd):
        assert_close(a, b, rtol=1e-12)
        assert_close(a, c, rtol=1e-6, atol_scale=1e-8)
    assert g_cpp["skip"] is None and isinstance(g_cpp["pair"], Params)
    assert np.shape(g_cpp["scale"][1]) == ()          # a Python number leaf: a 0-d gradient


@pytest.mark.parametrize("E", ENGINES)
def test_value_and_grad_argnums_tuple_of_pytrees(E):
    p = params()
    f = loss(E)
    value, (gp, gx) = E.value_and_grad(f, argnums=(0, 1))(p, X)
    assert_close(value, numpy_loss(p, X), rtol=1e-12)
    same_structure(gp, p)
    assert_close(gx, numeric_grad(lambda x: numpy_loss(p, x), X), rtol=1e-6, atol_scale=1e-8)


@pytest.mark.parametrize("E", ENGINES)
@pytest.mark.parametrize("make", [list, tuple, lambda xs: OrderedDict(zip("ab", xs)),
                                  lambda xs: Params(*xs), lambda xs: {"only": [xs[0], (xs[1], None)]}],
                         ids=["list", "tuple", "OrderedDict", "namedtuple", "nested"])
def test_structure_round_trips(E, make):
    a, b = np.array([1.0, -2.0]), np.array([[0.5, 3.0]])
    tree = make([a, b])

    def f(t):
        u, v = leaves(t)
        return (u * u).sum() + (v ** 3).sum()
    g = E.grad(f)(tree)
    same_structure(g, tree)
    assert_close(leaves(g)[0], 2 * a)
    assert_close(leaves(g)[1], 3 * b ** 2)


@pytest.mark.parametrize("E", ENGINES)
def test_lists_of_numbers_stay_one_array(E):
    # today's calls: grad(f)([1.0, 2.0]) is one array (NumPy's reading), not a list of scalars
    g = E.grad(lambda v: (v * v).sum())([1.0, 2.0])
    assert isinstance(g, np.ndarray) and g.shape == (2,)
    assert_close(g, [2.0, 4.0])
    g = E.grad(lambda t: (t[0] * t[1]).sum())([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    assert isinstance(g, list) and len(g) == 2
    assert_close(g[0], [3.0, 4.0])


def test_engines_agree_in_float32():
    p = params(dtype=np.float32)
    g_cpp = tg.grad(loss(tg))(p, X.astype(np.float32))
    g_ref = R.grad(loss(R))(p, X.astype(np.float32))
    for a, b in zip(leaves(g_cpp), leaves(g_ref)):
        assert a.dtype == b.dtype
        assert_close(a, b, rtol=1e-5, atol_scale=1e-6)


# ---------------------------------------------------------------------------
# has_aux: JAX's return shapes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("E", ENGINES)
def test_has_aux_carries_metrics(E):
    p = {"w": np.array([0.5, -1.0, 2.0])}
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    y = np.array([1.0, 0.0])

    def f(p):
        pred = x @ p["w"]
        err = pred - y
        return (err ** 2).mean(), {"pred": pred, "max_err": abs(err).max(), "name": "mse", "n": 2}

    g, aux = E.grad(f, has_aux=True)(p)
    (value, aux2), g2 = E.value_and_grad(f, has_aux=True)(p)
    pred = x @ p["w"]
    assert_close(g["w"], 2 * (pred - y) @ x / 2)
    assert_close(g2["w"], g["w"])
    assert_close(value, ((pred - y) ** 2).mean())
    for a in (aux, aux2):
        assert isinstance(a["pred"], np.ndarray)       # arrays, not Variables holding the graph
        assert_close(a["pred"], pred)
        assert_close(a["max_err"], np.abs(pred - y).max())
        assert a["name"] == "mse" and a["n"] == 2
    g3, aux3 = E.grad(lambda a, b: (((a * b).sum()), [a * 2]), argnums=(0, 1), has_aux=True)(x[0], x[1])
    assert isinstance(g3, tuple) and len(g3) == 2
    assert_close(aux3[0], 2 * x[0])


@pytest.mark.parametrize("E", ENGINES)
def test_has_aux_in_jvp_vjp_jacobian(E):
    x = np.array([0.3, -0.7])
    f = lambda v: (E.tanh(v) * 2, {"norm": (v * v).sum()})  # noqa: E731
    out, t, aux = E.jvp(f, (x,), (np.ones(2),), has_aux=True)
    assert_close(t, 2 * (1 - np.tanh(x) ** 2))
    assert_close(aux["norm"], (x * x).sum())
    out, vjp_fn, aux = E.vjp(f, x, has_aux=True)
    (g,) = vjp_fn(np.ones(2))
    assert_close(g, 2 * (1 - np.tanh(x) ** 2))
    J, aux = E.jacobian(f, x, has_aux=True)
    assert_close(J, np.diag(2 * (1 - np.tanh(x) ** 2)))
    assert_close(aux["norm"], (x * x).sum())


@pytest.mark.parametrize("E", ENGINES)
@pytest.mark.parametrize("bad", [lambda v: v.sum(), lambda v: (v.sum(),), lambda v: (v.sum(), 1, 2),
                                 lambda v: [v.sum(), 1]], ids=["variable", "1-tuple", "3-tuple", "list"])
def test_has_aux_without_a_pair_is_a_type_error(E, bad):
    x = np.ones(2)
    for name, call in {"grad": lambda: E.grad(bad, has_aux=True)(x),
                       "value_and_grad": lambda: E.value_and_grad(bad, has_aux=True)(x),
                       "jvp": lambda: E.jvp(bad, (x,), (x,), has_aux=True),
                       "vjp": lambda: E.vjp(bad, x, has_aux=True),
                       "jacobian": lambda: E.jacobian(bad, x, has_aux=True)}.items():
        with pytest.raises(TypeError, match=rf"{name}: .*has_aux.*<lambda>.*(Variable|tuple|list)"):
            call()
        with pytest.raises(TypeError, match=rf"{name}: has_aux must be"):
            {"grad": lambda: E.grad(bad, has_aux="yes")(x),
             "value_and_grad": lambda: E.value_and_grad(bad, has_aux=1)(x),
             "jvp": lambda: E.jvp(bad, (x,), (x,), has_aux=None),
             "vjp": lambda: E.vjp(bad, x, has_aux=[]),
             "jacobian": lambda: E.jacobian(bad, x, has_aux=0.0)}[name]()


# ---------------------------------------------------------------------------
# jvp, vjp, jacobian, hessian, hvp with pytrees
# ---------------------------------------------------------------------------

def two_outputs(E):
    def f(p, x):
        h = E.tanh(x @ p["W"] + p["b"])
        return {"h": h, "stats": (h.sum(), (p["W"] ** 2).sum(axis=0))}
    return f


def small(seed=2):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}, rng.normal(size=(4, 3))


def np_two_outputs(p, x):
    h = np.tanh(x @ p["W"] + p["b"])
    return [h, h.sum(), (p["W"] ** 2).sum(axis=0)]


def fd_jac(p, x):
    """Central-difference Jacobians [out leaf][in leaf] of np_two_outputs in p."""
    names, eps = ["W", "b"], 1e-6
    outs = np_two_outputs(p, x)
    J = [[np.zeros(np.shape(o) + p[k].shape) for k in names] for o in outs]
    for j, k in enumerate(names):
        for idx in np.ndindex(p[k].shape):
            hi = {n: p[n].copy() for n in names}
            lo = {n: p[n].copy() for n in names}
            hi[k][idx] += eps
            lo[k][idx] -= eps
            for i, (a, b) in enumerate(zip(np_two_outputs(hi, x), np_two_outputs(lo, x))):
                J[i][j][(Ellipsis,) + idx] = (np.asarray(a) - np.asarray(b)) / (2 * eps)
    return J


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_jacobian_of_pytree_input_and_output_three_ways(mode):
    p, x = small()
    fd = fd_jac(p, x)
    results = [E.jacobian(lambda q: two_outputs(E)(q, x), p, mode=mode) for E in (tg, R)]
    for J in results:
        assert set(J) == {"h", "stats"} and isinstance(J["stats"], tuple)
        blocks = [J["h"], J["stats"][0], J["stats"][1]]
        for i, blk in enumerate(blocks):
            assert set(blk) == {"W", "b"}
            for j, k in enumerate(["W", "b"]):
                assert blk[k].shape == fd[i][j].shape
                assert_close(blk[k], fd[i][j], rtol=1e-6, atol_scale=1e-8)
    for a, b in zip(leaves(results[0]), leaves(results[1])):
        assert_close(a, b, rtol=1e-12)


def test_jacobian_of_mixed_dtype_outputs_keeps_each_dtype():
    x = np.array([1.0, 2.0], dtype=np.float32)
    for E in (tg, R):
        J = E.jacobian(lambda v: [v * 2, (v * 3).astype(np.float64)], x)
        assert J[0].dtype == np.float32 and J[1].dtype == np.float64
        assert_close(J[0], 2 * np.eye(2), rtol=1e-6)
        assert_close(J[1], 3 * np.eye(2), rtol=1e-6)


def test_jvp_and_vjp_of_pytrees_three_ways():
    p, x = small()
    rng = np.random.default_rng(5)
    tp = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    ct = {"h": rng.normal(size=(4, 2)), "stats": (rng.normal(), rng.normal(size=2))}
    fd = fd_jac(p, x)
    flat_t = [tp["W"], tp["b"]]
    want_t = [sum(np.tensordot(fd[i][j], flat_t[j], axes=flat_t[j].ndim) for j in range(2)) for i in range(3)]
    flat_c = [ct["h"], np.asarray(ct["stats"][0]), ct["stats"][1]]
    want_g = [sum(np.tensordot(flat_c[i], fd[i][j], axes=flat_c[i].ndim) for i in range(3)) for j in range(2)]
    for E in (tg, R):
        f = two_outputs(E)
        out, t = E.jvp(f, (p, x), (tp, np.zeros_like(x)))
        same_structure(out, {"h": np.zeros((4, 2)), "stats": (np.zeros(()), np.zeros(2))})
        for a, b in zip(leaves(t), want_t):
            assert_close(a, b, rtol=1e-6, atol_scale=1e-8)
        out, vjp_fn = E.vjp(f, p, x)
        gp, gx = vjp_fn(ct)
        same_structure(gp, p)
        assert_close(gp["W"], want_g[0], rtol=1e-6, atol_scale=1e-8)
        assert_close(gp["b"], want_g[1], rtol=1e-6, atol_scale=1e-8)


def test_hessian_and_hvp_of_a_dict():
    p = {"a": np.array([0.4, -0.3]), "c": np.array(0.8)}

    def np_f(a, c):
        return np.sum(np.sin(a) * c ** 3) + np.sum(a ** 2) * c

    def f(p):
        return (tg.sin(p["a"]) * p["c"] ** 3).sum() + (p["a"] ** 2).sum() * p["c"]

    def fr(p):
        return (R.sin(p["a"]) * p["c"] ** 3).sum() + (p["a"] ** 2).sum() * p["c"]

    a, c = p["a"], float(p["c"])
    H_aa = np.diag(-np.sin(a) * c ** 3 + 2 * c)
    H_ac = np.cos(a) * 3 * c ** 2 + 2 * a
    H_cc = np.sum(np.sin(a)) * 6 * c
    want = {"a": {"a": H_aa, "c": H_ac}, "c": {"a": H_ac, "c": np.array(H_cc)}}
    v = {"a": np.array([1.0, -2.0]), "c": np.array(0.5)}
    for E, fn in ((tg, f), (R, fr)):
        H = E.hessian(fn, p)
        for r in "ac":
            for s in "ac":
                assert H[r][s].shape == p[r].shape + p[s].shape
                assert_close(H[r][s], want[r][s], rtol=1e-12)
        hv = E.hvp(fn, p, v)
        assert set(hv) == {"a", "c"}
        assert_close(hv["a"], H_aa @ v["a"] + H_ac * v["c"], rtol=1e-12)
        assert_close(hv["c"], H_ac @ v["a"] + H_cc * v["c"], rtol=1e-12)
    # the closed form against central differences of the analytic gradient over z = (a, c)
    def grad_z(z):
        aa, cc = z[:2], z[2]
        return np.concatenate([np.cos(aa) * cc ** 3 + 2 * aa * cc, [np.sum(np.sin(aa)) * 3 * cc ** 2 + np.sum(aa ** 2)]])
    z, eps = np.array([a[0], a[1], c]), 1e-6
    fd = np.stack([(grad_z(z + eps * e) - grad_z(z - eps * e)) / (2 * eps) for e in np.eye(3)], axis=1)
    assert_close(fd[:2, :2], H_aa, rtol=1e-6)
    assert_close(fd[:2, 2], H_ac, rtol=1e-6)
    assert_close(fd[2, 2], H_cc, rtol=1e-6)
    assert tg.value_and_grad(f)(p)[0] == pytest.approx(np_f(a, c), rel=1e-14)


def test_nested_grad_of_grad_with_a_dict():
    # grad inside jacobian: the inner call sees Variables that require grad (nested) in a dict
    p = {"x": np.array([0.5, 1.5])}
    for E in (tg, R):
        J = E.jacobian(lambda q: E.grad(lambda r: (r["x"] ** 3).sum())(q)["x"], p)
        assert_close(J["x"], np.diag(6 * p["x"]), rtol=1e-12)


# ---------------------------------------------------------------------------
# An MLP whose parameters are a dict, trained with tg.grad
# ---------------------------------------------------------------------------

def test_mlp_with_dict_params_trains_with_grad():
    X_, y_ = tg.data.make_moons(200, noise=0.1, seed=0)
    X_, y_ = X_.astype(np.float64), y_.astype(np.float64)
    rng = np.random.default_rng(0)
    sizes = [2, 16, 16, 1]
    p = {f"layer{i}": {"W": rng.normal(scale=1 / np.sqrt(m), size=(m, n)), "b": np.zeros(n)}
         for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:]))}

    def forward(E, p, x):
        h = x
        for i in range(len(sizes) - 1):
            h = h @ p[f"layer{i}"]["W"] + p[f"layer{i}"]["b"]
            if i < len(sizes) - 2:
                h = E.tanh(h)
        return h[:, 0]

    def objective(E):
        def f(p, x, y):
            logits = forward(E, p, x)
            # logistic loss, with accuracy as aux
            nll = (E.softplus(logits) - y * logits).mean()
            return nll, {"acc": ((logits.data > 0) == (y > 0.5)).mean()}
        return f

    # one step: both engines agree on every leaf
    (g, _), (gr, _) = tg.grad(objective(tg), has_aux=True)(p, X_, y_), R.grad(objective(R), has_aux=True)(p, X_, y_)
    for a, b in zip(leaves(g), leaves(gr)):
        assert_close(a, b, rtol=1e-10)
    step = tg.grad(objective(tg), has_aux=True)
    (first, _), _ = tg.value_and_grad(objective(tg), has_aux=True)(p, X_, y_)
    for _ in range(300):
        g, aux = step(p, X_, y_)
        p = {k: {n: p[k][n] - 0.5 * g[k][n] for n in p[k]} for k in p}
    (last, aux), _ = tg.value_and_grad(objective(tg), has_aux=True)(p, X_, y_)
    assert last < 0.25 * first, (first, last)
    assert aux["acc"] > 0.95


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("E", ENGINES)
@pytest.mark.parametrize("leaf", ["text", object(), 1 + 2j, b"x"], ids=["str", "object", "complex", "bytes"])
def test_unsupported_leaf_is_a_type_error_naming_where(E, leaf):
    tree = {"w": np.ones(2), "bad": [np.ones(1), leaf]}
    f = lambda t: t["w"].sum()  # noqa: E731
    for name, call in {"grad": lambda: E.grad(f)(tree), "value_and_grad": lambda: E.value_and_grad(f)(tree),
                       "jvp": lambda: E.jvp(f, (tree,), (tree,)), "vjp": lambda: E.vjp(f, tree),
                       "jacobian": lambda: E.jacobian(f, tree), "hessian": lambda: E.hessian(f, tree)}.items():
        with pytest.raises(TypeError, match=rf"{name}: .*\['bad'\]\[1\].*{type(leaf).__name__}"):
            call()


@pytest.mark.parametrize("E", ENGINES)
def test_tangent_structure_must_match(E):
    p = {"a": np.ones(2), "b": [np.ones(3), np.ones(1)]}
    f = lambda t: t["a"].sum() + t["b"][0].sum()  # noqa: E731
    for bad in ({"a": np.ones(2)}, {"a": np.ones(2), "b": [np.ones(3)]}, [np.ones(2), np.ones(3)],
                {"a": np.ones(2), "b": (np.ones(3), np.ones(1), np.ones(1))}):
        with pytest.raises(ValueError, match="jvp: .*tangent"):
            E.jvp(f, (p,), (bad,))
    with pytest.raises(ValueError, match=r"jvp: .*shape \(2,\).*\(3,\)"):
        E.jvp(f, (p,), ({"a": np.ones(2), "b": [np.ones(2), np.ones(1)]},))
    out, vjp_fn = E.vjp(lambda t: {"y": t["a"] * 2, "z": t["a"].sum()}, p)
    with pytest.raises(ValueError, match="vjp: .*cotangent"):
        vjp_fn({"y": np.ones(2)})


@pytest.mark.parametrize("E", ENGINES)
def test_outputs_must_be_variables(E):
    x = np.ones(2)
    for out in (lambda v: {"a": v * 2, "b": 3.0}, lambda v: None, lambda v: [], lambda v: {"a": np.ones(2)}):
        for call in (lambda: E.jvp(out, (x,), (x,)), lambda: E.vjp(out, x), lambda: E.jacobian(out, x)):
            with pytest.raises(TypeError, match="must return a .*Variable"):
                call()
    with pytest.raises(TypeError, match="grad: .*must return a .*Variable"):
        E.grad(lambda v: [v.sum()])(x)
