// h93-contract: NumPy's dot, vdot, inner, outer, tensordot, and einsum's
// pairwise plan, run in C++ (opspec COMPOSITIONS; their Python bodies in
// python/tapegrad/_compose.py remain the other engines'). Each is recorded
// as the primitives it calls (matmul, multiply, reshape, transpose, sum,
// diagonal, broadcast_to), in the order the Python bodies call them, so
// gradients, JVPs and create_graph are those primitives' and the values
// the same bits; identity transposes and same-shape reshapes (views, no
// arithmetic) are left out.
#include "ops/common.hpp"

namespace tg {

namespace {
std::string axes_str(const Axes& ax) {
  std::string s = "[";
  for (size_t i = 0; i < ax.size(); ++i) s += (i ? ", " : "") + std::to_string(ax[i]);
  return s + "]";
}

bool is_identity(const Axes& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return true;
}

Var reshape_if(const Var& x, const Shape& s) { return x->shape() == s ? x : reshape(x, s); }

// The transpose + reshape + matmul plan of tensordot; `op` names the public
// function in errors (dot and inner reach it too).
Var contract_axes(const Var& a, const Var& b, const Axes& axes_a0, const Axes& axes_b0, const char* op) {
  const Shape &sa = a->shape(), &sb = b->shape();
  const int64_t na = static_cast<int64_t>(sa.size()), nb = static_cast<int64_t>(sb.size());
  if (axes_a0.size() != axes_b0.size())
    throw value_error(std::string(op) + ": shape-mismatch for sum: shapes " + shape_str(sa) + " and " +
                      shape_str(sb) + ", axes " + axes_str(axes_a0) + " and " + axes_str(axes_b0) +
                      " (different numbers of axes)");
  Axes ax_a, ax_b;
  for (int64_t i : axes_a0) ax_a.push_back(normalize_axis(i, na, op));
  for (int64_t i : axes_b0) ax_b.push_back(normalize_axis(i, nb, op));
  std::vector<bool> in_a(na, false), in_b(nb, false);
  for (size_t k = 0; k < ax_a.size(); ++k) {
    if (in_a[ax_a[k]] || in_b[ax_b[k]])
      throw value_error(std::string(op) + ": repeated axis in axes " + axes_str(axes_a0) + " and " +
                        axes_str(axes_b0));
    in_a[ax_a[k]] = in_b[ax_b[k]] = true;
    if (sa[ax_a[k]] != sb[ax_b[k]])
      throw value_error(std::string(op) + ": shape-mismatch for sum: shapes " + shape_str(sa) + " and " +
                        shape_str(sb) + ", axes " + axes_str(ax_a) + " and " + axes_str(ax_b));
  }
  Axes perm_a, perm_b;
  Shape out_shape;
  int64_t m = 1, n = 1, k = 1;
  for (int64_t i = 0; i < na; ++i)
    if (!in_a[i]) {
      perm_a.push_back(i);
      out_shape.push_back(sa[i]);
      m *= sa[i];
    }
  perm_a.insert(perm_a.end(), ax_a.begin(), ax_a.end());
  for (int64_t i : ax_a) k *= sa[i];
  perm_b = ax_b;
  for (int64_t j = 0; j < nb; ++j)
    if (!in_b[j]) {
      perm_b.push_back(j);
      out_shape.push_back(sb[j]);
      n *= sb[j];
    }
  const Var at = is_identity(perm_a) ? a : transpose(a, perm_a);
  const Var bt = is_identity(perm_b) ? b : transpose(b, perm_b);
  return reshape_if(matmul(reshape_if(at, Shape{m, k}), reshape_if(bt, Shape{k, n})), out_shape);
}

// a (K,) . b (K,) as matmul computes it (the same kernel, the same bits). Not recorded (grad mode off, or no
// input requiring grad, no anomaly mode): the kernel on views, without matmul's three reshape Variables (a third
// of a 16-element dot's instructions).
Var vector_dot(const Var& a, const Var& b) {
  const uint8_t m = t_modes;
  if (a->dtype() != b->dtype() || !(m == 0 || (m == kGradMode && !a->requires_grad && !b->requires_grad)))
    return matmul(a, b);
  const int64_t k = a->shape()[0];
  return make_var(kern::matmul(a->data.view(Shape{1, k}), b->data.view(Shape{k, 1}), false, false).view(Shape{}));
}

std::string not_aligned(const char* op, const Shape& sa, const Shape& sb, int64_t da, int64_t db) {
  return std::string(op) + ": shapes " + shape_str(sa) + " and " + shape_str(sb) + " not aligned: " +
         std::to_string(sa[da]) + " (dim " + std::to_string(da) + ") != " + std::to_string(sb[db]) + " (dim " +
         std::to_string(db) + ")";
}
}  // namespace

Var dot(const Var& a, const Var& b) {
  const Shape &sa = a->shape(), &sb = b->shape();
  if (sa.empty() || sb.empty()) return mul(a, b);
  const int64_t da = static_cast<int64_t>(sa.size()) - 1, db = std::max<int64_t>(static_cast<int64_t>(sb.size()) - 2, 0);
  if (sa[da] != sb[db]) throw value_error(not_aligned("dot", sa, sb, da, db));
  if (sa.size() == 1 && sb.size() == 1) return vector_dot(a, b);
  if (sa.size() <= 2 && sb.size() <= 2) return matmul(a, b);
  return contract_axes(a, b, Axes{da}, Axes{db}, "dot");
}

Var vdot(const Var& a, const Var& b) {
  const int64_t na = a->data.numel(), nb = b->data.numel();
  if (na != nb)
    throw value_error("vdot: vectors have different lengths: shapes " + shape_str(a->shape()) + " and " +
                      shape_str(b->shape()) + " (" + std::to_string(na) + " and " + std::to_string(nb) +
                      " elements)");
  return vector_dot(reshape_if(a, Shape{na}), reshape_if(b, Shape{nb}));
}

Var inner(const Var& a, const Var& b) {
  const Shape &sa = a->shape(), &sb = b->shape();
  if (sa.empty() || sb.empty()) return mul(a, b);
  const int64_t da = static_cast<int64_t>(sa.size()) - 1, db = static_cast<int64_t>(sb.size()) - 1;
  if (sa[da] != sb[db]) throw value_error(not_aligned("inner", sa, sb, da, db));
  if (sb.size() == 1) return sa.size() == 1 ? vector_dot(a, b) : matmul(a, b);  // (a matrix-vector product)
  return contract_axes(a, b, Axes{da}, Axes{db}, "inner");
}

Var outer(const Var& a, const Var& b) {
  return mul(reshape_if(a, Shape{a->data.numel(), 1}), reshape_if(b, Shape{1, b->data.numel()}));
}

Var tensordot(const Var& a, const Var& b, const Axes& axes_a, const Axes& axes_b) {
  return contract_axes(a, b, axes_a, axes_b, "tensordot");
}

Var tensordot(const Var& a, const Var& b, int64_t n) {
  const int64_t na = a->data.ndim(), nb = b->data.ndim();
  if (n < 0 || n > std::min(na, nb))
    throw value_error("tensordot: axes=" + std::to_string(n) + " out of range for shapes " + shape_str(a->shape()) +
                      " and " + shape_str(b->shape()));
  Axes ax_a, ax_b;
  for (int64_t i = 0; i < n; ++i) {
    ax_a.push_back(na - n + i);
    ax_b.push_back(i);
  }
  return contract_axes(a, b, ax_a, ax_b, "tensordot");
}

Var einsum_run(std::vector<Var> regs, const std::vector<EinsumStep>& plan, int64_t result) {
  const int64_t n = static_cast<int64_t>(regs.size());
  auto reg = [&](int64_t i) -> Var& {
    if (i < 0 || i >= n)
      throw value_error("einsum: the plan names register " + std::to_string(i) + " of " + std::to_string(n));
    return regs[i];
  };
  for (const EinsumStep& s : plan) {
    const Var& x = reg(s.src);
    const size_t na = s.args.size();
    Var y;
    switch (s.kind) {
      case EinsumStep::Diagonal:
        if (na != 2) throw value_error("einsum: a diagonal step takes 2 axes");
        y = diagonal(x, 0, s.args[0], s.args[1]);
        break;
      case EinsumStep::Sum:
        y = sum(x, normalize_axes(s.args, x->data.ndim(), "einsum"), false);
        break;
      case EinsumStep::Transpose:
        y = transpose(x, s.args);
        break;
      case EinsumStep::Reshape:
        y = reshape(x, s.args);
        break;
      case EinsumStep::BroadcastTo:
        y = broadcast_to(x, s.args);
        break;
      case EinsumStep::Matmul:
        if (na != 1) throw value_error("einsum: a matmul step takes 1 more register");
        y = matmul(x, reg(s.args[0]));
        break;
      default:
        throw value_error("einsum: unknown plan step " + std::to_string(int(s.kind)));
    }
    reg(s.dst) = std::move(y);
  }
  return reg(result);
}

}  // namespace tg
