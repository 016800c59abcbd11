// Linear algebra: matmul (NumPy semantics over the primitive matmul_t),
// linear (a Linear layer's x W + b in one primitive), and inv, solve,
// slogdet, cholesky (LAPACK kernels). Each rule struct sits beside its
// public forward function.
#include "ops/common.hpp"

namespace tg {

namespace {
// ---------------------------------------------------------------------------
// Matrix product: C = op(A) op(B), op = identity or transpose of the last two axes.
//   dA = dC op(B)^T  (or its transpose),  dB = op(A)^T dC  (or its transpose)
// computed with transpose flags, never materialized transposes. Bilinear:
// dC = op(dA) op(B) + op(A) op(dB). Batch axes broadcast as matmul batches.
// ---------------------------------------------------------------------------
struct MatmulRule {
  static constexpr const char* name = "matmul";
  struct Attrs { bool ta = false, tb = false; Shape a_shape, b_shape; };
  static Grads vjp(OpNode<MatmulRule>& n, const Var& g) {
    const Attrs& t = n.attrs;
    int nb = n.batch_dims(g);
    Var ga, gb;
    if (n.needs(0)) {
      Var b = n.get(1);
      ga = sum_to(t.ta ? matmul_t(b, g, t.tb, true) : matmul_t(g, b, false, !t.tb), with_batch(g, nb, t.a_shape), nb);
    }
    if (n.needs(1)) {
      Var a = n.get(0);
      gb = sum_to(t.tb ? matmul_t(g, a, true, t.ta) : matmul_t(a, g, !t.ta, false), with_batch(g, nb, t.b_shape), nb);
    }
    return {ga, gb};
  }
  static Var jvp(OpNode<MatmulRule>& n, const Grads& t, int nb) {
    const Attrs& a = n.attrs;
    size_t nd = n.out_shape.size();
    return add_opt(t[0] ? matmul_t(lift(t[0], nb, nd), n.get(1), a.ta, a.tb) : nullptr,
                   t[1] ? matmul_t(n.get(0), lift(t[1], nb, nd), a.ta, a.tb) : nullptr);
  }
  // Structured batches (jacobian's basis directions, see Node::pointwise):
  // when one operand is a vector, the diagonal batch diag(d)[start:stop]
  // times the matrix is the matrix's rows or columns scaled by d, a copy
  // instead of a GEMM with the identity. Other cases densify.
  static Var scaled_rows(const Var& m, const Var& d, int64_t start, int64_t stop) {
    int64_t k = stop - start;
    Var dk = reshape(narrow(reshape(d, Shape{d->data.numel()}), 0, start, k), Shape{k, 1});
    return mul(narrow(m, 0, start, k), dk);
  }
  static Grads vjp_diag(OpNode<MatmulRule>& n, const Var& d, int64_t start, int64_t stop) {
    const Attrs& t = n.attrs;
    if (t.ta || t.tb || n.out_shape.size() != 2) return {};
    int64_t M = n.out_shape[0], N = n.out_shape[1], k = stop - start;
    if (N == 1 && !n.needs(0)) {  // y = A x: row b of the gradient of x is d_b A[b, :]
      Var rows = scaled_rows(n.get(0), d, start, stop);
      return {nullptr, reshape(rows, Shape{k, rows->shape()[1], 1})};
    }
    if (M == 1 && !n.needs(1)) {  // y = x B: row b of the gradient of x is d_b B[:, b]
      Var rows = scaled_rows(transpose(n.get(1), std::nullopt), d, start, stop);
      return {reshape(rows, Shape{k, 1, rows->shape()[1]}), nullptr};
    }
    return {};
  }
  static Var jvp_diag(OpNode<MatmulRule>& n, size_t i, const Var& d, int64_t start, int64_t stop) {
    const Attrs& t = n.attrs;
    if (t.ta || t.tb || n.out_shape.size() != 2) return nullptr;
    int64_t M = n.out_shape[0], N = n.out_shape[1], k = stop - start;
    if (i == 1 && N == 1)  // y = A x: tangent b is d_b A[:, b]
      return reshape(scaled_rows(transpose(n.get(0), std::nullopt), d, start, stop), Shape{k, M, 1});
    if (i == 0 && M == 1)  // y = x B: tangent b is d_b B[b, :]
      return reshape(scaled_rows(n.get(1), d, start, stop), Shape{k, 1, N});
    return nullptr;
  }
};
}  // namespace

// ----- matmul ---------------------------------------------------------------------
Var matmul_t(const Var& a0, const Var& b0, bool ta, bool tb) {
  DType dt = promote(a0->dtype(), b0->dtype());
  Var a = a0->dtype() == dt ? a0 : astype(a0, dt);
  Var b = b0->dtype() == dt ? b0 : astype(b0, dt);
  Recorder<MatmulRule> r(kern::matmul(a->data, b->data, ta, tb), {&a, &b});
  if (r) {
    r.attrs() = MatmulRule::Attrs{ta, tb, a->shape(), b->shape()};
    r.save_input(a, 0);
    r.save_input(b, 1);
  }
  return std::move(r.out);
}

Var matmul(const Var& a, const Var& b) {
  const Shape &sa = a->shape(), &sb = b->shape();
  if (sa.empty() || sb.empty())
    throw value_error("matmul: input operand does not have enough dimensions (shapes " + shape_str(sa) + " and " +
                      shape_str(sb) + "; use * for scalars)");
  int64_t ka = sa.back(), kb = sb.size() == 1 ? sb[0] : sb[sb.size() - 2];
  if (ka != kb)
    throw value_error("matmul: shapes " + shape_str(sa) + " and " + shape_str(sb) + " are not aligned: " +
                      std::to_string(ka) + " (dim " + std::to_string(sa.size() - 1) + ") != " + std::to_string(kb) +
                      " (dim " + std::to_string(sb.size() == 1 ? 0 : sb.size() - 2) + ")");
  Shape ba(sa.begin(), sa.end() - std::min<size_t>(2, sa.size()));
  Shape bb(sb.begin(), sb.end() - std::min<size_t>(2, sb.size()));
  Shape batch;
  try {
    batch = kern::broadcast_shapes(ba, bb, "matmul");
  } catch (const value_error&) {
    throw value_error("matmul: batch dimensions of shapes " + shape_str(sa) + " and " + shape_str(sb) +
                      " cannot be broadcast together");
  }
  Var a2 = sa.size() == 1 ? reshape(a, Shape{1, sa[0]}) : a;
  Var b2 = sb.size() == 1 ? reshape(b, Shape{sb[0], 1}) : b;
  Var out = matmul_t(a2, b2, false, false);
  if (sa.size() > 1 && sb.size() > 1) return out;
  Shape final_shape = batch;
  if (sa.size() > 1) final_shape.push_back(sa[sa.size() - 2]);
  if (sb.size() > 1) final_shape.push_back(sb.back());
  return reshape(out, final_shape);
}

namespace {
// ---------------------------------------------------------------------------
// Affine map y = x W + b (a Linear layer): x (..., K), W (K, N), b (N,) or
// none. One primitive instead of a matmul and a broadcast add: the forward
// GEMM accumulates onto the bias rows, and the sweep passes one node.
// x's leading axes fold into R rows:
//   dx = g Wᵀ,  dW = x₂ᵀ g₂,  db = column sums of g₂   (g₂: g as (R, N))
// Linear in each operand: dy = dx W + x dW + db.
// ---------------------------------------------------------------------------
struct LinearRule {
  static constexpr const char* name = "linear";
  struct Attrs { Shape x_shape; };
  static int64_t rows(const Shape& x_shape) { return numel(Shape(x_shape.begin(), x_shape.end() - 1)); }
  static Grads vjp(OpNode<LinearRule>& n, const Var& g) {
    const int nb = n.batch_dims(g);
    const Shape& xs = n.attrs.x_shape;
    const int64_t R = rows(xs), K = xs.back(), N = n.out_shape.back();
    Var g2 = reshape(g, with_batch(g, nb, Shape{R, N}));
    Var gx, gw, gb;
    if (n.needs(0)) gx = reshape(matmul_t(g2, n.get(1), false, true), with_batch(g, nb, xs));
    if (n.needs(1)) gw = matmul_t(reshape(n.get(0), Shape{R, K}), g2, true, false);
    if (n.needs(2)) gb = sum(g2, Axes{nb}, false);
    return {gx, gw, gb};
  }
  static Var jvp(OpNode<LinearRule>& n, const Grads& t, int nb) {
    const Shape& xs = n.attrs.x_shape;
    const int64_t R = rows(xs), K = xs.back();
    const Var& any = t[0] ? t[0] : (t[1] ? t[1] : t[2]);
    const Shape out = with_batch(any, nb, n.out_shape);
    Var dy;
    if (t[0]) dy = reshape(matmul_t(reshape(t[0], with_batch(t[0], nb, Shape{R, K})), n.get(1), false, false), out);
    if (t[1]) dy = add_opt(dy, reshape(matmul_t(reshape(n.get(0), Shape{R, K}), t[1], false, false), out));
    if (t.size() > 2 && t[2]) {
      Var db = lift(t[2], nb, n.out_shape.size());  // batch + (1, ..., 1, N)
      dy = dy ? add(dy, db) : broadcast_to(db, out);
    }
    return dy;
  }
};
}  // namespace

Var linear(const Var& x0, const Var& w0, const Var& b0) {
  auto describe = [&] {
    std::string s = "x " + shape_str(x0->shape()) + " " + dtype_name(x0->dtype()) + ", weight " +
                    shape_str(w0->shape()) + " " + dtype_name(w0->dtype());
    if (b0) s += ", bias " + shape_str(b0->shape()) + " " + dtype_name(b0->dtype());
    return s;
  };
  for (const Var* v : {&x0, &w0, &b0})
    if (*v && !is_float((*v)->dtype())) throw type_error("linear: expected float32 or float64 operands, got " + describe());
  const Shape &xs = x0->shape(), &ws = w0->shape();
  if (ws.size() != 2 || xs.empty() || xs.back() != ws[0])
    throw value_error("linear: expected x (..., K) and weight (K, N), got " + describe());
  if (b0 && b0->shape() != Shape{ws[1]})
    throw value_error("linear: bias must have shape (" + std::to_string(ws[1]) + ",), got " + describe());
  DType dt = promote(x0->dtype(), w0->dtype());
  if (b0) dt = promote(dt, b0->dtype());
  Var x = x0->dtype() == dt ? x0 : astype(x0, dt);
  Var w = w0->dtype() == dt ? w0 : astype(w0, dt);
  Var b = !b0 || b0->dtype() == dt ? b0 : astype(b0, dt);
  Tensor y = kern::linear(x->data, w->data, b ? b->data : Tensor());
  Recorder<LinearRule> r = b ? Recorder<LinearRule>(std::move(y), {&x, &w, &b}) : Recorder<LinearRule>(std::move(y), {&x, &w});
  if (r) {
    r.attrs().x_shape = xs;
    r.save_input(x, 0);
    r.save_input(w, 1);
  }
  return std::move(r.out);
}

namespace {
// The matrix transpose of the last two axes (any batch axes in front stay).
Var mT(const Var& x) {
  const int64_t nd = int64_t(x->shape().size());
  Axes perm(nd);
  for (int64_t i = 0; i < nd; ++i) perm[i] = i;
  std::swap(perm[nd - 1], perm[nd - 2]);
  return transpose(x, perm);
}

Var float_operand(const Var& x, DType dt) { return x->dtype() == dt ? x : astype(x, dt); }

// ---------------------------------------------------------------------------
// Inverse Y = A^-1:  dY = -Y dA Y,  gA = -Y^T g Y^T  (reads the output).
// ---------------------------------------------------------------------------
struct InvRule {
  static constexpr const char* name = "inv";
  struct Attrs {};
  static Grads vjp(OpNode<InvRule>& n, const Var& g) {
    Var y = n.get(0);
    return {neg(matmul_t(matmul_t(y, g, true, false), y, false, true))};
  }
  static Var jvp(OpNode<InvRule>& n, const Grads& t, int) {
    Var y = n.get(0);
    return neg(matmul_t(matmul_t(y, t[0], false, false), y, false, false));
  }
};

// ---------------------------------------------------------------------------
// X = A^-1 B for a (..., n, n), b (..., n, k) of one batch (solve() broadcasts
// first):  dX = A^-1 (dB - dA X),  gB = A^-T g,  gA = -gB X^T.
// Saves A and the output X, and the forward's LU factors: a first-order
// backward solves with A^T from them (getrs with the transpose, as PyTorch)
// instead of factoring A^T again; under create_graph the rule stays made of
// differentiable ops.
// ---------------------------------------------------------------------------
struct SolveRule {
  static constexpr const char* name = "solve";
  struct Attrs { kern::LU lu; };
  static void release(Attrs& a) { a.lu = {}; }
  static Grads vjp(OpNode<SolveRule>& n, const Var& g) {
    Var gb;
    if (!grad_enabled() && n.batch_dims(g) == 0 && n.attrs.lu.lu.defined()) {
      n.check_saved();  // (the factors came from A: refuse an A modified since, as get() would)
      gb = constant(kern::lu_solve(n.attrs.lu, g->data, true, "solve"));
    } else {
      gb = solve(mT(n.get(0)), g);
    }
    return {n.needs(0) ? neg(matmul_t(gb, n.get(1), false, true)) : nullptr, n.needs(1) ? gb : nullptr};
  }
  static Var jvp(OpNode<SolveRule>& n, const Grads& t, int) {
    Var rhs = t[1];
    if (t[0]) {
      Var dax = matmul_t(t[0], n.get(1), false, false);
      rhs = rhs ? sub(rhs, dax) : neg(dax);
    }
    return solve(n.get(0), rhs);
  }
};

Var solve_same_batch(const Var& a, const Var& b) {
  const bool rec = grad_enabled() && (a->requires_grad || b->requires_grad);
  kern::LU lu;
  Recorder<SolveRule> r(kern::solve(a->data, b->data, "solve", rec ? &lu : nullptr), {&a, &b});
  if (r) {
    r.attrs().lu = std::move(lu);
    r.save_input(a, 0);
    r.save_output();
  }
  return std::move(r.out);
}

// log|det A|:  d = tr(A^-1 dA),  gA = g A^-T. First order: A^-T from the
// forward's LU factors (getri, 4/3 n^3 flops, then a transpose; no new
// factorization, where getrs on I took 2 n^3);
// under create_graph (or at a singular A) through inv, so it is
// differentiable again (at a singular A inv raises LinAlgError). The sign is
// piecewise constant: no derivative.
// ---------------------------------------------------------------------------
struct SlogdetRule {
  static constexpr const char* name = "slogdet";
  struct Attrs { kern::LU lu; };
  static void release(Attrs& a) { a.lu = {}; }
  static Grads vjp(OpNode<SlogdetRule>& n, const Var& g) {
    Shape gs = g->shape();
    gs.push_back(1);
    gs.push_back(1);
    const kern::LU& f = n.attrs.lu;
    const bool fast = !grad_enabled() && f.lu.defined() &&
                      std::find(f.singular.begin(), f.singular.end(), true) == f.singular.end();
    if (fast) {
      n.check_saved();
      return {mul(reshape(g, gs), constant(kern::lu_inverse(f, true, "slogdet")))};
    }
    return {mul(reshape(g, gs), mT(inv(n.get(0))))};
  }
  static Var jvp(OpNode<SlogdetRule>& n, const Grads& t, int) {
    const int64_t nd = int64_t(t[0]->shape().size());
    return sum(mul(mT(inv(n.get(0))), t[0]), Axes{nd - 2, nd - 1}, false);
  }
};

// Cholesky A = L L^T (PyTorch's and Murray's formula, for symmetric A: the
// gradient is symmetric, as A's perturbations are):
//   dL = L Phi(L^-1 sym(dA) L^-T),   gA = sym(L^-T Phi(L^T g) L^-1),
// Phi = the lower triangle with the diagonal halved, sym(X) = (X + X^T) / 2.
// Saves the output L.
// ---------------------------------------------------------------------------
struct CholeskyRule {
  static constexpr const char* name = "cholesky";
  struct Attrs {};
  static Var phi(const Var& x, const Var& l) {
    const int64_t n = l->shape().back();
    Tensor mask = Tensor::empty(Shape{n, n}, l->dtype());
    TG_DISPATCH_FLOAT(l->dtype(), "cholesky", {
      T* m = mask.ptr<T>();
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < n; ++c) m[r * n + c] = c < r ? T(1) : (c == r ? T(0.5) : T(0));
    });
    return mul_const(x, mask);
  }
  static Var sym(const Var& x) { return scalar_op(add(x, mT(x)), 0.5, ScalarOp::Mul); }
  static Grads vjp(OpNode<CholeskyRule>& n, const Var& g) {
    if (!grad_enabled() && n.batch_dims(g) == 0)  // first order: trmm and two trsm in one kernel, as PyTorch
      return {constant(kern::cholesky_backward(n.get(0)->data, g->data))};
    Var l = n.get(0), lt = mT(l);
    Var p = solve(lt, phi(matmul_t(l, g, true, false), l));  // L^-T Phi
    return {sym(mT(solve(lt, mT(p))))};                        // (L^-T (L^-T Phi)^T)^T = L^-T Phi L^-1
  }
  static Var jvp(OpNode<CholeskyRule>& n, const Grads& t, int) {
    Var l = n.get(0);
    Var q = solve(l, sym(t[0]));                               // L^-1 S
    return matmul_t(l, phi(solve(l, mT(q)), l), false, false);  // L Phi(L^-1 S L^-T)
  }
};
}  // namespace

Var inv(const Var& a) {
  Recorder<InvRule> r(kern::inv(a->data, "inv"), {&a});
  if (r) r.save_output();
  return std::move(r.out);
}

Var solve(const Var& a0, const Var& b0) {
  kern::check_square(a0->shape(), "solve");
  DType dt = promote(a0->dtype(), b0->dtype());
  Var a = float_operand(a0, dt), b = float_operand(b0, dt);
  const Shape &sa = a->shape(), &sb = b->shape();
  const int64_t n = sa.back();
  // NumPy 2: b is a vector exactly when it is 1-d, else (..., n, k).
  const bool vec = sb.size() == 1;
  if (sb.empty() || (vec ? sb[0] : sb[sb.size() - 2]) != n)
    throw value_error("solve: a " + shape_str(sa) + " and b " + shape_str(sb) + " do not match: b needs " +
                      std::to_string(n) + " rows (b is a vector when 1-d, else (..., n, k))");
  Var b2 = vec ? reshape(b, Shape{n, 1}) : b;
  Shape ba(sa.begin(), sa.end() - 2), bb(b2->shape().begin(), b2->shape().end() - 2);
  Shape batch;
  try {
    batch = kern::broadcast_shapes(ba, bb, "solve");
  } catch (const value_error&) {
    throw value_error("solve: batch dimensions of a " + shape_str(sa) + " and b " + shape_str(sb) +
                      " cannot be broadcast together");
  }
  auto full = [&](const Var& v, int64_t cols) {
    Shape s = batch;
    s.push_back(n);
    s.push_back(cols);
    return v->shape() == s ? v : broadcast_to(v, s);
  };
  Var x = solve_same_batch(full(a, n), full(b2, b2->shape().back()));
  if (!vec) return x;
  Shape out = batch;
  out.push_back(n);
  return reshape(x, out);
}

std::pair<Var, Var> slogdet(const Var& a) {
  kern::LU lu;
  auto [sign, logdet] = kern::slogdet(a->data, "slogdet", grad_enabled() && a->requires_grad ? &lu : nullptr);
  Recorder<SlogdetRule> r(std::move(logdet), {&a});
  if (r) {
    r.attrs().lu = std::move(lu);
    r.save_input(a, 0);
  }
  return {constant(sign), std::move(r.out)};
}

Var cholesky(const Var& a) {
  Recorder<CholeskyRule> r(kern::cholesky(a->data, "cholesky"), {&a});
  if (r) r.save_output();
  return std::move(r.out);
}

}  // namespace tg
