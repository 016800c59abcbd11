"""h93-contract: dot, vdot, inner, outer, tensordot and einsum in C++ (cpp/src/ops/contract.cpp; einsum's plan
parsed once, python/tapegrad/_compose.py _einsum_plan): NumPy's values, shapes and dtypes, errors naming the
function and the shapes, derivatives against finite differences (first and second order) and the reference
engine, and the C++ plan runner against the same plan run through the Python primitives (the same bits)."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tapegrad as tg
from tapegrad import _compose

RNG = np.random.default_rng(93)


def arr(shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def check(name, got, want, rtol=1e-12):
    got = got.numpy() if isinstance(got, tg.Variable) else np.asarray(got)
    assert got.shape == np.shape(want), (name, got.shape, np.shape(want))
    assert got.dtype == np.asarray(want).dtype, (name, got.dtype, np.asarray(want).dtype)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


DOT_SHAPES = [((), ()), ((), (3,)), ((2, 3), ()), ((3,), (3,)), ((0,), (0,)), ((2, 3), (3,)), ((3,), (3, 4)),
              ((2, 3), (3, 4)), ((2, 2, 3), (3,)), ((3,), (2, 3, 4)), ((2, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)),
              ((2, 1, 3), (2, 3, 2)), ((1, 3), (0, 3, 2)), ((4, 2, 3), (2, 3, 5)), ((1,), (1,))]


@pytest.mark.parametrize("sa,sb", DOT_SHAPES)
@pytest.mark.parametrize("dtypes", [(np.float64, np.float64), (np.float32, np.float32), (np.float32, np.float64)])
def test_dot_like_numpy(sa, sb, dtypes):
    a, b = arr(sa, dtypes[0]), arr(sb, dtypes[1])
    rtol = 1e-5 if np.float32 in dtypes else 1e-12
    va, vb = tg.Variable(a), tg.Variable(b)
    check("dot", tg.dot(va, vb), np.dot(a, b), rtol)
    check("v.dot", va.dot(vb), np.dot(a, b), rtol)
    check("np.dot", np.dot(va, vb), np.dot(a, b), rtol)
    if a.size == b.size:
        check("vdot", tg.vdot(va, vb), np.vdot(a, b), rtol)
    if (not sa or not sb) or sa[-1] == sb[-1]:
        check("inner", tg.inner(va, vb), np.inner(a, b), rtol)
    check("outer", tg.outer(va, vb), np.outer(a, b), rtol)


def test_python_scalars_take_the_variables_dtype():
    x = tg.Variable(arr((3,), np.float32))
    for f in (tg.dot, tg.inner, tg.outer, tg.vdot):
        assert f(x, 2.0).dtype == np.float32 if f is not tg.vdot else True
    assert tg.dot(2.0, x).dtype == np.float32
    assert tg.vdot(x, [1.0, 2.0, 3.0]).dtype == np.float64  # a list is an array: NumPy's promotion
    np.testing.assert_allclose(tg.outer([1.0, 2.0], x).numpy(), np.outer([1.0, 2.0], x.numpy()), rtol=1e-6)


TENSORDOT = [((3, 4), (4, 5), 1), ((3, 4), (3, 4), 2), ((2, 3, 4), (3, 4, 5), 2), ((2, 3), (4, 5), 0),
             ((3, 2, 4), (3, 5, 2), ([1, 0], [2, 0])), ((3, 4), (4, 3), ([-1, 0], [0, -1])),
             ((2, 3, 4), (4, 3), (2, 0)), ((3,), (3,), ((0,), (0,))), ((), (), 0), ((2, 3), (3, 2), np.int64(1)),
             ((2, 0), (0, 3), 1), ((4, 1), (4, 1), ((0, 1), (0, 1))), ((2, 3), (2, 3), (range(2), range(2)))]


@pytest.mark.parametrize("sa,sb,axes", TENSORDOT)
def test_tensordot_like_numpy(sa, sb, axes):
    a, b = arr(sa), arr(sb)
    check("tensordot", tg.tensordot(tg.Variable(a), tg.Variable(b), axes), np.tensordot(a, b, axes))
    check("np.tensordot", np.tensordot(tg.Variable(a), tg.Variable(b), axes), np.tensordot(a, b, axes))
    if axes == 2:
        check("default", tg.tensordot(tg.Variable(a), tg.Variable(b)), np.tensordot(a, b))


@pytest.mark.parametrize("call,words", [
    (lambda: tg.dot(arr((2, 3)), arr((4,))), ["dot:", "(2, 3)", "(4,)", "not aligned"]),
    (lambda: tg.dot(arr((2, 2, 3)), arr((2, 4, 2))), ["dot:", "(2, 2, 3)", "(2, 4, 2)"]),
    (lambda: tg.vdot(arr((2, 3)), arr((5,))), ["vdot:", "(2, 3)", "(5,)", "different lengths"]),
    (lambda: tg.inner(arr((2, 3)), arr((3, 2))), ["inner:", "(2, 3)", "(3, 2)", "not aligned"]),
    (lambda: tg.tensordot(arr((2, 3)), arr((4, 5)), 1), ["tensordot:", "(2, 3)", "(4, 5)", "shape-mismatch"]),
    (lambda: tg.tensordot(arr((2, 3)), arr((3, 5)), 3), ["tensordot:", "axes=3", "out of range"]),
    (lambda: tg.tensordot(arr((2, 3)), arr((3, 5)), -1), ["tensordot:", "axes=-1"]),
    (lambda: tg.tensordot(arr((2, 3)), arr((3, 5)), ([1, 0], [0])), ["tensordot:", "shape-mismatch"]),
    (lambda: tg.tensordot(arr((2, 3)), arr((3, 5)), ([2], [0])), ["tensordot:", "out of bounds"]),
    (lambda: tg.tensordot(arr((3, 3)), arr((3, 3)), ([0, 0], [0, 1])), ["tensordot:", "repeated axis"]),
    (lambda: tg.einsum("ij,jk->ik", arr((2, 3)), arr((4, 5))), ["einsum:", "'j'", "(2, 3)", "(4, 5)"]),
    (lambda: tg.einsum("ii->i", arr((2, 3))), ["einsum:", "'i'", "2 and 3"]),
    (lambda: tg.einsum("ij->i", arr((2,))), ["einsum:", "(2,)"]),
    (lambda: tg.einsum("i,i->i", arr((2,))), ["einsum:", "2 subscripts for 1 operands"]),
    (lambda: tg.einsum("i->j", arr((2,))), ["einsum:", "unknown or repeated"]),
])
def test_errors_name_the_function_and_the_shapes(call, words):
    with pytest.raises(ValueError) as e:
        call()
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_bad_arguments_raise_type_errors():
    x = tg.Variable(arr((2, 2)))
    for bad in ("ab", 1.5, (1, 2, 3), ([0], "x"), None):
        with pytest.raises(TypeError, match="tensordot"):
            tg.tensordot(x, x, bad)
    with pytest.raises(TypeError, match="dot"):
        tg.dot(x, "abc")
    with pytest.raises(TypeError, match="einsum"):
        tg._core._einsum_run("i->i", [np.ones(2)], _compose._einsum_plan)
    with pytest.raises(TypeError, match="einsum"):
        tg._core._einsum_run(3, [x], _compose._einsum_plan)
    for bad in (((3, 0, 7, 4),), ((9, 0, 0),), ((1, 0, 0, 5),), ((0, 0),)):  # errors, not crashes
        with pytest.raises(ValueError, match="einsum"):
            tg._core._einsum_run("ij->ij", [x], lambda sub, shapes, bad=bad: (bad, 0))
    with pytest.raises(TypeError, match="einsum"):
        tg._core._einsum_run("ij->ij", [x], lambda sub, shapes: 5)
    with pytest.raises(ValueError, match="einsum"):
        tg._core._einsum_run("ij->ij", [x], lambda sub, shapes: ((), 3))
    assert tg.einsum("ij->ij", x) is x  # the real planner's plan for the same subscripts and shape


EINSUM = [("ij,ij->i", [(3, 4), (3, 4)]), ("ij,jk->ik", [(3, 4), (4, 5)]), ("ii->i", [(4, 4)]),
          ("ij->ji", [(3, 4)]), ("i,i->", [(5,), (5,)]), ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
          ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ij,jk", [(3, 4), (4, 5)]), ("ii", [(3, 3)]),
          ("ij,jj->i", [(3, 3), (3, 3)]), ("iij->j", [(3, 3, 2)]), ("...ij,jk->k...", [(2, 3, 4), (4, 2)]),
          ("ij,kl->ijkl", [(2, 3), (4, 1)]), ("i,j,k->ijk", [(2,), (3,), (4,)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
          ("ij->", [(3, 4)]), ("ij,j->", [(1, 4), (4,)]), ("...i,...i->...", [(3, 1, 4), (2, 4)]),
          ("ab,ab->ab", [(2, 3), (1, 3)]), (" i j , j k -> i k ", [(2, 3), (3, 2)]), ("i->i", [(0,)])]


@pytest.mark.parametrize("spec,shapes", EINSUM)
def test_einsum_like_numpy(spec, shapes):
    ops = [arr(s) for s in shapes]
    check(spec, tg.einsum(spec, *map(tg.Variable, ops)), np.einsum(spec, *ops))
    check("np." + spec, np.einsum(spec, *map(tg.Variable, ops)), np.einsum(spec, *ops))


@pytest.mark.parametrize("spec,shapes", EINSUM)
def test_einsum_plan_in_cpp_is_the_plan_in_python_bit_for_bit(spec, shapes):
    ops = [tg.Variable(arr(s)) for s in shapes]
    steps, result = _compose._einsum_plan(spec, tuple(o.shape for o in ops))
    a = tg.einsum(spec, *ops).numpy()
    b = _compose._run_einsum_plan(tg, steps, ops, result).numpy()
    np.testing.assert_array_equal(a, b)


def test_einsum_common_forms_are_one_cpp_call_after_the_first():
    calls = []

    def planner(sub, shapes):
        calls.append((sub, shapes))
        return _compose._einsum_plan(sub, shapes)
    x = tg.Variable(arr((3, 4)))
    for _ in range(3):
        np.testing.assert_array_equal(tg._core._einsum_run("ij,ij->i", [x, x], planner).numpy(),
                                      np.einsum("ij,ij->i", x.numpy(), x.numpy()))
    assert calls == [("ij,ij->i", ((3, 4), (3, 4)))]  # planned once, then kept in C++
    tg._core._einsum_run("ij,ij->i", [x[:2], x[:2]], planner)
    assert calls[-1] == ("ij,ij->i", ((2, 4), (2, 4)))
    steps, _ = _compose._einsum_plan("ij,ij->i", ((3, 4), (3, 4)))
    assert [s[0] for s in steps] == [_compose._RESHAPE, _compose._RESHAPE, _compose._MATMUL, _compose._RESHAPE]
    assert _compose._einsum_plan("ij,jk->ik", ((3, 4), (4, 5)))[0] == ((_compose._MATMUL, 0, 0, 1),)
    assert _compose._einsum_plan("ij->ij", ((3, 4),))[0] == ()


@pytest.mark.parametrize("f,shapes", [
    (lambda m, a, b: m.dot(a, b), [(2, 3), (3, 2)]), (lambda m, a, b: m.dot(a, b), [(2, 2, 3), (3,)]),
    (lambda m, a, b: m.dot(a, b), [(2, 3), (2, 3, 2)]), (lambda m, a, b: m.vdot(a, b), [(2, 3), (3, 2)]),
    (lambda m, a, b: m.inner(a, b), [(2, 3), (4, 3)]), (lambda m, a, b: m.outer(a, b), [(2, 2), (3,)]),
    (lambda m, a, b: m.tensordot(a, b, ([1, 0], [2, 0])), [(3, 2, 4), (3, 5, 2)]),
    (lambda m, a, b: m.einsum("ij,ij->i", a, b), [(3, 4), (3, 4)]),
    (lambda m, a, b: m.einsum("...ij,jk->k...", a, b), [(2, 3, 4), (4, 2)]),
    (lambda m, a, b: m.einsum("ii,ij->j", a, b), [(3, 3), (3, 2)]),
])
def test_derivatives(f, shapes):
    ops = [arr(s) for s in shapes]
    tg.gradcheck(lambda a, b: f(tg, a, b), ops, order=2)  # finite differences, first and second order
    tg.testing.crosscheck(f, *ops, raise_on_mismatch=True)  # VJP and JVP against the reference engine


def test_second_derivatives_through_dot_and_einsum():
    x = arr((3,))
    want = 8 * np.outer(x, x) + 4 * np.dot(x, x) * np.eye(3)
    for f in (lambda v: tg.dot(v, v) ** 2, lambda v: tg.einsum("i,i->", v, v) ** 2, lambda v: tg.vdot(v, v) ** 2,
              lambda v: tg.tensordot(v, v, 1) ** 2, lambda v: tg.sum(tg.outer(v, v) * tg.outer(v, v))):
        np.testing.assert_allclose(np.asarray(tg.hessian(f, x)), want, rtol=1e-12)


def fsum_dot(a, b):
    return math.fsum(float(x) * float(y) for x, y in zip(a.ravel(), b.ravel()))


@pytest.mark.parametrize("n", [16, 1000, 4099])
def test_accuracy_against_an_exact_sum(n):
    a, b = arr((n,)), arr((n,))
    exact = fsum_dot(a, b)
    scale = math.fsum(abs(float(x) * float(y)) for x, y in zip(a, b))
    for got in (tg.dot(a, b), tg.vdot(a, b), tg.inner(a, b), tg.tensordot(a, b, 1), tg.einsum("i,i->", a, b)):
        assert abs(float(got.numpy()) - exact) <= 4 * n * np.finfo(np.float64).eps * scale
    # the same summation as matmul's: the same bits
    ref = tg.matmul(a, b).numpy()
    for got in (tg.dot(a, b), tg.vdot(a, b), tg.inner(a, b), tg.tensordot(a, b, 1), tg.einsum("i,i->", a, b)):
        assert got.numpy().tobytes() == ref.tobytes()


LABELS = "abcd"


@st.composite
def einsum_cases(draw):
    sizes = {c: draw(st.integers(1, 3)) for c in LABELS}
    n_ops = draw(st.integers(1, 3))
    terms = [draw(st.lists(st.sampled_from(LABELS), min_size=0, max_size=3)) for _ in range(n_ops)]
    used = sorted({c for t in terms for c in t})
    explicit = draw(st.booleans())
    out = draw(st.permutations(used).map(lambda p: p[:draw(st.integers(0, len(p)))])) if explicit else None
    spec = ",".join("".join(t) for t in terms) + ("->" + "".join(out) if explicit else "")
    shapes = [tuple(sizes[c] for c in t) for t in terms]
    return spec, shapes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(einsum_cases())
def test_einsum_random_subscripts_like_numpy(case):
    spec, shapes = case
    ops = [arr(s) for s in shapes]
    want = np.einsum(spec, *ops)
    got = tg.einsum(spec, *map(tg.Variable, ops))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    assert got.shape == want.shape
    steps, result = _compose._einsum_plan(spec, tuple(shapes))
    np.testing.assert_array_equal(_compose._run_einsum_plan(tg, steps, list(map(tg.Variable, ops)), result).numpy(),
                                  got.numpy())
