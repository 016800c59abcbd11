// The rule table: one struct per primitive, its forward next to its VJP.
//
// A rule struct has `name`, an `Attrs` struct (what the VJP needs besides
// saved values) and `vjp(node, g)` returning one gradient per input (null
// where the input needs none). Rules are written with differentiable ops,
// so a sweep under create_graph records its own graph (second order).
// The JVP column is added by the forward-mode issue, next to each vjp.
#include "tapegrad/ops.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "tapegrad/kernels.hpp"

namespace tg {

using kern::BinaryOp;
using kern::CompareOp;
using kern::ReduceOp;
using kern::UnaryOp;

namespace {

Var constant(const Tensor& t) { return make_var(t); }
Var scalar(double v, const Var& like) { return scalar_like(v, like); }

// NumPy promotion for two float Variables.
DType promote(DType a, DType b) { return (a == DType::F64 || b == DType::F64) ? DType::F64 : DType::F32; }

std::vector<bool> axes_mask(const std::optional<Axes>& axes, int64_t ndim) {
  std::vector<bool> m(ndim, !axes.has_value());
  if (axes)
    for (int64_t a : *axes) m[a] = true;
  return m;
}

Shape keep_shape_of(const Shape& in, const std::vector<bool>& mask) {
  Shape k = in;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) k[d] = 1;
  return k;
}

Shape squeeze_shape(const Shape& in, const std::vector<bool>& mask) {
  Shape s;
  for (size_t d = 0; d < mask.size(); ++d)
    if (!mask[d]) s.push_back(in[d]);
  return s;
}

// ---------------------------------------------------------------------------
// Batch helpers. A cotangent or tangent may carry `nb` leading batch axes (k
// directions in one sweep). Saved values broadcast against it from the right,
// so elementwise rules need nothing; rules that name axes or shapes shift
// them past the batch axes with these helpers.
// ---------------------------------------------------------------------------
Shape batch_shape(const Var& v, int nb) { return Shape(v->shape().begin(), v->shape().begin() + nb); }
Shape with_batch(const Var& v, int nb, const Shape& s) {
  Shape out = batch_shape(v, nb);
  out.insert(out.end(), s.begin(), s.end());
  return out;
}
// A tangent of an input with fewer axes than the output, padded with size-1
// axes after the batch axes so that it broadcasts like the input did.
Var lift(const Var& t, int nb, size_t out_ndim) {
  if (!t) return t;
  size_t in_ndim = t->shape().size() - nb;
  if (in_ndim >= out_ndim) return t;
  Shape s = batch_shape(t, nb);
  s.insert(s.end(), out_ndim - in_ndim, 1);
  s.insert(s.end(), t->shape().begin() + nb, t->shape().end());
  return reshape(t, s);
}
Axes shift_axes(const std::vector<bool>& mask, int nb) {
  Axes a;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) a.push_back(static_cast<int64_t>(d) + nb);
  return a;
}
// Sums two optional tangents (null = zero).
Var add_opt(const Var& a, const Var& b) { return !a ? b : (!b ? a : add(a, b)); }
// Flat indices of `index` repeated for each of `batch` rows of size `row`.
Tensor batched_index(const Tensor& index, int64_t batch, int64_t row) {
  Shape s{batch};
  s.insert(s.end(), index.shape.begin(), index.shape.end());
  Tensor out = Tensor::empty(s, DType::I64);
  int64_t n = index.numel();
  const int64_t* src = index.ptr<int64_t>();
  int64_t* dst = out.ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < n; ++i) dst[b * n + i] = src[i] + b * row;
  return out;
}
// gather / scatter_add over the trailing (non-batch) axes of a batched value.
Var batched_gather(const Var& v, const Tensor& index, const Shape& in_shape, int nb) {
  if (nb == 0) return gather(v, index);
  Shape b = batch_shape(v, nb);
  int64_t batch = numel(b), row = numel(in_shape);
  Var flat = gather(reshape(v, Shape{batch * row}), batched_index(index, batch, row));
  Shape out = b;
  out.insert(out.end(), index.shape.begin(), index.shape.end());
  return reshape(flat, out);
}
Var batched_scatter(const Var& v, const Tensor& index, const Shape& out_shape, int nb) {
  if (nb == 0) return scatter_add(v, index, out_shape);
  Shape b = batch_shape(v, nb);
  int64_t batch = numel(b), row = numel(out_shape);
  Tensor bi = batched_index(index, batch, row);
  Var flat = scatter_add(reshape(v, Shape{numel(bi.shape)}), bi.view(Shape{numel(bi.shape)}), Shape{batch * row});
  return reshape(flat, with_batch(v, nb, out_shape));
}

// ---------------------------------------------------------------------------
// Unary elementwise primitives: d out = f'(x) dx, so the VJP and the JVP are
// the same product (`deriv` gives it) and batch axes broadcast for free.
// ---------------------------------------------------------------------------
enum class SaveWhat { Nothing, Input, Output };

template <class Rule>
Var unary_op(const Var& x) {
  Recorder<Rule> r(kern::unary(Rule::kernel, x->data), {&x});
  if (r) {
    if (Rule::save == SaveWhat::Input) r.save_input(x, 0);
    if (Rule::save == SaveWhat::Output) r.save_output();
  }
  return std::move(r.out);
}

// A fused first-order derivative kernel op(d, saved value): into d's own
// buffer when the sweep allows it (Node::may_overwrite), else a new one.
template <class N>
Var fused_deriv(N& n, BinaryOp op, const Var& d, const char* name) {
  if (n.may_overwrite(d)) {
    kern::binary_inplace(op, d->data, n.tensor(0), name);
    return d;
  }
  return constant(kern::binary(op, d->data, n.tensor(0), name));
}

#define TG_UNARY_RULE(NAME, KERNEL, SAVE)                                                       \
  static constexpr const char* name = NAME;                                                    \
  static constexpr UnaryOp kernel = KERNEL;                                                    \
  static constexpr SaveWhat save = SAVE;                                                       \
  static constexpr bool pointwise = true;                                                      \
  struct Attrs {};                                                                             \
  template <class N> static Grads vjp(N& n, const Var& g) { return Grads::of(deriv(n, g)); }   \
  template <class N> static Var jvp(N& n, const Grads& t, int) { return deriv(n, t[0]); }

// d(-x) = -dx
struct NegRule { TG_UNARY_RULE("negative", UnaryOp::Neg, SaveWhat::Nothing)
  template <class N> static Var deriv(N&, const Var& d) { return neg(d); } };
// d exp(x) = exp(x) dx          (reads the output)
struct ExpRule { TG_UNARY_RULE("exp", UnaryOp::Exp, SaveWhat::Output)
  template <class N> static Var deriv(N& n, const Var& d) { return mul(d, n.get(0)); } };
// d log(x) = dx / x
struct LogRule { TG_UNARY_RULE("log", UnaryOp::Log, SaveWhat::Input)
  template <class N> static Var deriv(N& n, const Var& d) { return div(d, n.get(0)); } };
// d log1p(x) = dx / (1 + x)
struct Log1pRule { TG_UNARY_RULE("log1p", UnaryOp::Log1p, SaveWhat::Input)
  template <class N> static Var deriv(N& n, const Var& d) {
    Var x = n.get(0);
    return div(d, add(x, scalar(1, x)));
  } };
// d sqrt(x) = dx / (2 sqrt(x))  (reads the output; inf at 0, as NumPy)
struct SqrtRule { TG_UNARY_RULE("sqrt", UnaryOp::Sqrt, SaveWhat::Output)
  template <class N> static Var deriv(N& n, const Var& d) {
    Var y = n.get(0);
    return div(d, mul(y, scalar(2, y)));
  } };
// d sin(x) = cos(x) dx
struct SinRule { TG_UNARY_RULE("sin", UnaryOp::Sin, SaveWhat::Input)
  template <class N> static Var deriv(N& n, const Var& d) { return mul(d, cos(n.get(0))); } };
// d cos(x) = -sin(x) dx
struct CosRule { TG_UNARY_RULE("cos", UnaryOp::Cos, SaveWhat::Input)
  template <class N> static Var deriv(N& n, const Var& d) { return neg(mul(d, sin(n.get(0)))); } };
// d tanh(x) = (1 - tanh(x)^2) dx   (reads the output; one fused kernel
// unless the sweep is recorded for second order)
struct TanhRule { TG_UNARY_RULE("tanh", UnaryOp::Tanh, SaveWhat::Output)
  template <class N> static Var deriv(N& n, const Var& d) {
    if (!grad_enabled()) return fused_deriv(n, BinaryOp::TanhGrad, d, name);
    Var y = n.get(0);
    return mul(d, sub(scalar(1, y), mul(y, y)));
  } };
// d sigmoid(x) = s (1 - s) dx       (reads the output; fused like tanh)
struct SigmoidRule { TG_UNARY_RULE("sigmoid", UnaryOp::Sigmoid, SaveWhat::Output)
  template <class N> static Var deriv(N& n, const Var& d) {
    if (!grad_enabled()) return fused_deriv(n, BinaryOp::SigmoidGrad, d, name);
    Var s = n.get(0);
    return mul(d, mul(s, sub(scalar(1, s), s)));
  } };
// d relu(x) = [x > 0] dx            (relu'(0) = 0)
struct ReluRule { TG_UNARY_RULE("relu", UnaryOp::Relu, SaveWhat::Input)
  template <class N> static Var deriv(N& n, const Var& d) {
    if (!grad_enabled()) return fused_deriv(n, BinaryOp::ReluGrad, d, name);
    return mul(d, constant(kern::unary(UnaryOp::ReluMask, n.tensor(0))));
  } };
// d |x| = sign(x) dx                (abs'(0) = 0)
struct AbsRule { TG_UNARY_RULE("abs", UnaryOp::Abs, SaveWhat::Input)
  template <class N> static Var deriv(N& n, const Var& d) {
    return mul(d, constant(kern::unary(UnaryOp::Sign, n.tensor(0))));
  } };

// clip(x, lo, hi) = minimum(maximum(x, lo), hi) with constant bounds (0-d
// or broadcasting arrays): the derivative is 1 where lo <= x <= hi, inclusive.
struct ClipRule {
  static constexpr const char* name = "clip";
  static constexpr bool pointwise = true;
  struct Attrs { Tensor lo, hi; Shape x_shape; };
  static Tensor inside(OpNode<ClipRule>& n) {
    const Tensor x = n.tensor(0);
    Tensor in;
    if (n.attrs.lo.defined()) in = kern::compare(CompareOp::Ge, x, n.attrs.lo, name);
    if (n.attrs.hi.defined()) {
      Tensor le = kern::compare(CompareOp::Le, x, n.attrs.hi, name);
      in = in.defined() ? kern::logical_and(in, le) : le;
    }
    return in;
  }
  static Grads vjp(OpNode<ClipRule>& n, const Var& g) {
    int nb = n.batch_dims(g);
    return {sum_to(where(inside(n), g, scalar(0, g)), with_batch(g, nb, n.attrs.x_shape), nb)};
  }
  static Var jvp(OpNode<ClipRule>& n, const Grads& t, int nb) {
    return where(inside(n), lift(t[0], nb, n.out_shape.size()), scalar(0, t[0]));
  }
};

// astype: linear; the gradient converts back to the input dtype.
struct AstypeRule {
  static constexpr const char* name = "astype";
  static constexpr bool pointwise = true;
  struct Attrs { DType from = DType::F64, to = DType::F64; };
  static Grads vjp(OpNode<AstypeRule>& n, const Var& g) { return {astype(g, n.attrs.from)}; }
  static Var jvp(OpNode<AstypeRule>& n, const Grads& t, int) { return astype(t[0], n.attrs.to); }
};

// x op c with a number c (c converted to x's dtype, as the binary op with
// a 0-d constant would): the derivative is a scalar op on the tangent too.
template <ScalarOp K>
struct ScalarRule {
  static constexpr const char* name = K == ScalarOp::Add ? "add"
                                      : (K == ScalarOp::Sub || K == ScalarOp::CLeftSub) ? "subtract"
                                      : K == ScalarOp::Mul ? "multiply" : "divide";
  static constexpr bool pointwise = true;
  struct Attrs { double c = 0; };
  static Var deriv(OpNode<ScalarRule>& n, const Var& d) {
    switch (K) {
      case ScalarOp::Add: case ScalarOp::Sub: return d;   // d(x ± c) = dx
      case ScalarOp::CLeftSub: return neg(d);              // d(c - x) = -dx
      case ScalarOp::Mul: case ScalarOp::Div:  // dx c, dx / c
        if (n.may_overwrite(d)) {
          kern::binary_scalar_inplace(K == ScalarOp::Mul ? BinaryOp::Mul : BinaryOp::Div, d->data, n.attrs.c);
          return d;
        }
        return scalar_op(d, n.attrs.c, K);
      case ScalarOp::CLeftDiv: return neg(div(mul(d, n.get(1)), n.get(0)));  // d(c/x) = -(c/x) dx / x
    }
    return nullptr;
  }
  static Grads vjp(OpNode<ScalarRule>& n, const Var& g) { return Grads::of(deriv(n, g)); }
  static Var jvp(OpNode<ScalarRule>& n, const Grads& t, int) { return deriv(n, t[0]); }
};

// ---------------------------------------------------------------------------
// Binary elementwise primitives (broadcasting). `grads` returns gradients in
// the broadcast shape; binary_vjp reduces them with the one helper sum_to.
// `jvp` gets both tangents lifted to the output's rank (null = zero).
// ---------------------------------------------------------------------------
struct BinaryAttrs { Shape a_shape, b_shape; };

template <class Rule>
Grads binary_vjp(OpNode<Rule>& n, const Var& g) {
  int nb = n.batch_dims(g);
  auto [ga, gb] = Rule::grads(n, g);
  return {ga ? sum_to(ga, with_batch(g, nb, n.attrs.a_shape), nb) : nullptr,
          gb ? sum_to(gb, with_batch(g, nb, n.attrs.b_shape), nb) : nullptr};
}

template <class Rule>
Var binary_jvp(OpNode<Rule>& n, const Grads& t, int nb) {
  size_t nd = n.out_shape.size();
  return Rule::tangent(n, lift(t[0], nb, nd), lift(t[1], nb, nd));
}

template <class Rule>
Var binary_op(const Var& a0, const Var& b0, BinaryOp k) {
  DType dt = promote(a0->dtype(), b0->dtype());
  Var a = a0->dtype() == dt ? a0 : astype(a0, dt);
  Var b = b0->dtype() == dt ? b0 : astype(b0, dt);
  Recorder<Rule> r(kern::binary(k, a->data, b->data, Rule::name), {&a, &b});
  if (r) {
    r.attrs().a_shape = a->shape();
    r.attrs().b_shape = b->shape();
    Rule::save(r, a, b);
  }
  return std::move(r.out);
}

#define TG_BINARY_RULE(NAME)                                                                      \
  static constexpr const char* name = NAME;                                                     \
  static constexpr bool pointwise = true;                                                       \
  using Attrs = BinaryAttrs;                                                                    \
  static Grads vjp(OpNode<Rule>& n, const Var& g) { return binary_vjp<Rule>(n, g); }           \
  static Var jvp(OpNode<Rule>& n, const Grads& t, int nb) { return binary_jvp<Rule>(n, t, nb); }

using VarPair = std::pair<Var, Var>;

// d(a + b) = da + db
struct AddRule { using Rule = AddRule; TG_BINARY_RULE("add")
  static void save(Recorder<Rule>&, const Var&, const Var&) {}
  static VarPair grads(OpNode<Rule>& n, const Var& g) { return {n.needs(0) ? g : nullptr, n.needs(1) ? g : nullptr}; }
  static Var tangent(OpNode<Rule>&, const Var& ta, const Var& tb) { return add_opt(ta, tb); } };
// d(a - b) = da - db
struct SubRule { using Rule = SubRule; TG_BINARY_RULE("subtract")
  static void save(Recorder<Rule>&, const Var&, const Var&) {}
  static VarPair grads(OpNode<Rule>& n, const Var& g) { return {n.needs(0) ? g : nullptr, n.needs(1) ? neg(g) : nullptr}; }
  static Var tangent(OpNode<Rule>&, const Var& ta, const Var& tb) { return !tb ? ta : (!ta ? neg(tb) : sub(ta, tb)); } };
// d(a b) = b da + a db
struct MulRule { using Rule = MulRule; TG_BINARY_RULE("multiply")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    return {n.needs(0) ? mul(g, n.get(1)) : nullptr, n.needs(1) ? mul(g, n.get(0)) : nullptr};
  }
  static Var tangent(OpNode<Rule>& n, const Var& ta, const Var& tb) {
    return add_opt(ta ? mul(ta, n.get(1)) : nullptr, tb ? mul(n.get(0), tb) : nullptr);
  } };
// d(a / b) = da / b - (a / b) db / b      (reads the output)
struct DivRule { using Rule = DivRule; TG_BINARY_RULE("divide")
  static void save(Recorder<Rule>& r, const Var&, const Var& b) { r.save_input(b, 1); r.save_output(); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    Var b = n.get(0);
    return {n.needs(0) ? div(g, b) : nullptr, n.needs(1) ? neg(div(mul(g, n.get(1)), b)) : nullptr};
  }
  static Var tangent(OpNode<Rule>& n, const Var& ta, const Var& tb) {
    Var b = n.get(0);
    return add_opt(ta ? div(ta, b) : nullptr, tb ? neg(div(mul(tb, n.get(1)), b)) : nullptr);
  } };
// d(a^b) = b a^(b-1) da + log(a) a^b db; 0 where b == 0 (for da) and where a == 0, b >= 0 (for db).
struct PowRule { using Rule = PowRule; TG_BINARY_RULE("power")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); r.save_output(); }
  // The partial derivatives times d (d broadcasts against them).
  static Var d_base(OpNode<Rule>& n, const Var& d) {
    Var a = n.get(0), b = n.get(1), zero = scalar(0, a);
    Var v = mul(d, mul(b, pow(a, sub(b, scalar(1, b)))));
    return where(kern::compare(CompareOp::Eq, b->data, zero->data, name), zero, v);
  }
  static Var d_exponent(OpNode<Rule>& n, const Var& d) {
    Var a = n.get(0), b = n.get(1), zero = scalar(0, a);
    Var v = mul(d, mul(n.get(2), log(a)));
    Tensor a0 = kern::logical_and(kern::compare(CompareOp::Eq, a->data, zero->data, name),
                                  kern::compare(CompareOp::Ge, b->data, zero->data, name));
    return where(a0, zero, v);
  }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    return {n.needs(0) ? d_base(n, g) : nullptr, n.needs(1) ? d_exponent(n, g) : nullptr};
  }
  static Var tangent(OpNode<Rule>& n, const Var& ta, const Var& tb) {
    return add_opt(ta ? d_base(n, ta) : nullptr, tb ? d_exponent(n, tb) : nullptr);
  } };
// d max(a, b): to the larger operand; ties split evenly (min alike).
template <BinaryOp W>
struct ExtremumPairRule { using Rule = ExtremumPairRule; TG_BINARY_RULE(W == BinaryOp::MaxWeight ? "maximum" : "minimum")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); }
  static Var weight(OpNode<Rule>& n, int i) {
    Tensor a = n.tensor(0), b = n.tensor(1);
    return constant(i == 0 ? kern::binary(W, a, b, name) : kern::binary(W, b, a, name));
  }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    return {n.needs(0) ? mul(g, weight(n, 0)) : nullptr, n.needs(1) ? mul(g, weight(n, 1)) : nullptr};
  }
  static Var tangent(OpNode<Rule>& n, const Var& ta, const Var& tb) {
    return add_opt(ta ? mul(ta, weight(n, 0)) : nullptr, tb ? mul(tb, weight(n, 1)) : nullptr);
  } };
using MaximumRule = ExtremumPairRule<BinaryOp::MaxWeight>;
using MinimumRule = ExtremumPairRule<BinaryOp::MinWeight>;

// where(cond, a, b): linear in (a, b); the gradient goes to the selected operand.
struct WhereRule {
  static constexpr const char* name = "where";
  static constexpr bool pointwise = true;
  struct Attrs { Tensor cond; Shape a_shape, b_shape; };
  static Grads vjp(OpNode<WhereRule>& n, const Var& g) {
    int nb = n.batch_dims(g);
    Var zero = scalar(0, g);
    return {n.needs(0) ? sum_to(where(n.attrs.cond, g, zero), with_batch(g, nb, n.attrs.a_shape), nb) : nullptr,
            n.needs(1) ? sum_to(where(n.attrs.cond, zero, g), with_batch(g, nb, n.attrs.b_shape), nb) : nullptr};
  }
  static Var jvp(OpNode<WhereRule>& n, const Grads& t, int nb) {
    size_t nd = n.out_shape.size();
    Var like = t[0] ? t[0] : t[1];
    Var zero = scalar(0, like);
    Var ta = t[0] ? lift(t[0], nb, nd) : zero, tb = t[1] ? lift(t[1], nb, nd) : zero;
    return where(n.attrs.cond, ta, tb);
  }
};

// ---------------------------------------------------------------------------
// Reductions and normalisers
// ---------------------------------------------------------------------------
struct ReduceAttrs { Shape in_shape, keep_shape; std::vector<bool> mask; };

// A cotangent of a reduction's output, reshaped to keepdims form and
// broadcast back over the input (batch axes kept).
Var spread(const Var& g, int nb, const ReduceAttrs& a) {
  return broadcast_to(reshape(g, with_batch(g, nb, a.keep_shape)), with_batch(g, nb, a.in_shape));
}
// The reduction over the (shifted) axes of a tangent, shaped like the output.
template <class N>
Var reduce_tangent(N& n, const Var& t, int nb) {
  return reshape(sum(t, shift_axes(n.attrs.mask, nb), true), with_batch(t, nb, n.out_shape));
}

// sum: linear. d sum(x) = sum(dx); its VJP broadcasts the cotangent back.
struct SumRule {
  static constexpr const char* name = "sum";
  using Attrs = ReduceAttrs;
  static Grads vjp(OpNode<SumRule>& n, const Var& g) { return {spread(g, n.batch_dims(g), n.attrs)}; }
  static Var jvp(OpNode<SumRule>& n, const Grads& t, int nb) { return reduce_tangent(n, t[0], nb); }
};

// d max(x): to the maximal elements, split evenly among ties (min alike).
template <ReduceOp K>
struct ExtremumRule {
  static constexpr const char* name = K == ReduceOp::Max ? "max" : "min";
  using Attrs = ReduceAttrs;
  static Var weight(OpNode<ExtremumRule>& n) {
    Tensor x = n.tensor(0);
    Tensor best = n.tensor(1).view(n.attrs.keep_shape);
    Tensor hit = kern::astype(kern::compare(CompareOp::Eq, x, best, name), x.dtype);
    return constant(kern::binary(BinaryOp::Div, hit, kern::reduce(ReduceOp::Sum, hit, n.attrs.mask, name), name));
  }
  static Grads vjp(OpNode<ExtremumRule>& n, const Var& g) {
    return {mul(spread(g, n.batch_dims(g), n.attrs), weight(n))};
  }
  static Var jvp(OpNode<ExtremumRule>& n, const Grads& t, int nb) { return reduce_tangent(n, mul(t[0], weight(n)), nb); }
};

// d logsumexp(x) = softmax(x) . dx over the reduced axes   (reads the output)
struct LogsumexpRule {
  static constexpr const char* name = "logsumexp";
  using Attrs = ReduceAttrs;
  // softmax over the reduced axes. First order: from x directly (exp(x - lse)
  // would carry lse's rounding, visible in float32 at logits of 1e4).
  static Var probs(OpNode<LogsumexpRule>& n) {
    if (!grad_enabled()) return constant(kern::softmax_axes(n.tensor(0), n.attrs.mask));
    return exp(sub(n.get(0), reshape(n.get(1), n.attrs.keep_shape)));
  }
  static Grads vjp(OpNode<LogsumexpRule>& n, const Var& g) {
    int nb = n.batch_dims(g);
    return {mul(probs(n), reshape(g, with_batch(g, nb, n.attrs.keep_shape)))};
  }
  static Var jvp(OpNode<LogsumexpRule>& n, const Grads& t, int nb) { return reduce_tangent(n, mul(t[0], probs(n)), nb); }
};

struct AxisAttrs { int64_t axis = 0; };
// d softmax: y * (d - sum(d * y)); the Jacobian is symmetric, so the same
// formula is the VJP and the JVP.        (reads the output)
struct SoftmaxRule {
  static constexpr const char* name = "softmax";
  using Attrs = AxisAttrs;
  static Var apply(OpNode<SoftmaxRule>& n, const Var& d, int nb) {
    Var y = n.get(0);
    if (n.out_shape.empty()) return mul(d, scalar(0, d));
    return mul(y, sub(d, sum(mul(d, y), Axes{n.attrs.axis + nb}, true)));
  }
  static Grads vjp(OpNode<SoftmaxRule>& n, const Var& g) { return {apply(n, g, n.batch_dims(g))}; }
  static Var jvp(OpNode<SoftmaxRule>& n, const Grads& t, int nb) { return apply(n, t[0], nb); }
};
// log_softmax: VJP g - softmax * sum(g); JVP t - sum(softmax * t).   (reads the output)
struct LogSoftmaxRule {
  static constexpr const char* name = "log_softmax";
  using Attrs = AxisAttrs;
  static Grads vjp(OpNode<LogSoftmaxRule>& n, const Var& g) {
    Var y = n.get(0);
    if (n.out_shape.empty()) return {mul(g, scalar(0, g))};
    return {sub(g, mul(exp(y), sum(g, Axes{n.attrs.axis + n.batch_dims(g)}, true)))};
  }
  static Var jvp(OpNode<LogSoftmaxRule>& n, const Grads& t, int nb) {
    Var y = n.get(0);
    if (n.out_shape.empty()) return mul(t[0], scalar(0, t[0]));
    return sub(t[0], sum(mul(exp(y), t[0]), Axes{n.attrs.axis + nb}, true));
  }
};

// Softmax cross-entropy with integer labels, fused: loss_i = -log_softmax(z)_i,y_i
// for logits z of shape (N, C), returned per row, or reduced to
// scale * sum_i loss_i (scale 1/N for the mean, 1 for the sum) when `reduced`.
// d loss_i = sum_j p_ij dz_ij - dz_i,y_i with p = softmax(z), so the VJP is
// g_i (p_i - onehot(y_i)) (g_i = scale g when reduced): one pass over p,
// which the forward kept, instead of log_softmax, an indexing op, its
// scatter, a negation and a mean.
struct CrossEntropyRule {
  static constexpr const char* name = "cross_entropy";
  struct Attrs {
    Tensor labels, flat_index;  // flat_index: i * C + y_i
    Tensor probs;               // softmax(z) from the forward (first-order VJP)
    bool reduced = false;
    double scale = 1;
  };
  static void release(Attrs& a) { a.labels = a.flat_index = a.probs = Tensor(); }
  static Grads vjp(OpNode<CrossEntropyRule>& n, const Var& g) {
    int nb = n.batch_dims(g);
    const Tensor& z = n.tensor(0);
    const int64_t N = z.shape[0], C = z.shape[1];
    const Attrs& a = n.attrs;
    if (!grad_enabled() && nb == 0) {
      Tensor out = Tensor::empty(z.shape, z.dtype);
      TG_DISPATCH_FLOAT(z.dtype, name, {
        const T* p = a.probs.ptr<T>();
        T* o = out.ptr<T>();
        const T* pg = g->data.ptr<T>();
        const int64_t* y = a.labels.ptr<int64_t>();
        const T g_all = a.reduced ? T(a.scale * double(pg[0])) : T(0);
        for (int64_t i = 0; i < N; ++i) {
          const T gi = a.reduced ? g_all : pg[i];
          for (int64_t j = 0; j < C; ++j) o[i * C + j] = p[i * C + j] * gi;
          o[i * C + y[i]] -= gi;
        }
      });
      return {constant(out)};
    }
    // Differentiable form (create_graph) and batched cotangents.
    Var p = softmax(n.get(0), 1);
    Tensor onehot = Tensor::zeros(z.shape, z.dtype);
    TG_DISPATCH_FLOAT(z.dtype, name, {
      const int64_t* y = a.labels.ptr<int64_t>();
      for (int64_t i = 0; i < N; ++i) onehot.ptr<T>()[i * C + y[i]] = T(1);
    });
    Var gcol = a.reduced ? mul(reshape(g, with_batch(g, nb, Shape{1, 1})), scalar(a.scale, g))
                         : reshape(g, with_batch(g, nb, Shape{N, 1}));
    return {mul(sub(p, constant(onehot)), gcol)};
  }
  static Var jvp(OpNode<CrossEntropyRule>& n, const Grads& t, int nb) {
    Var p = softmax(n.get(0), 1);
    Var expected = sum(mul(p, t[0]), Axes{1 + nb}, false);  // batch + (N,)
    Var rows = sub(expected, batched_gather(t[0], n.attrs.flat_index, n.tensor(0).shape, nb));
    if (!n.attrs.reduced) return rows;
    return mul(sum(rows, Axes{nb}, false), scalar(n.attrs.scale, rows));
  }
};

// Squared error against a constant target, reduced to a scalar:
// loss = scale * sum_i (x_i - t_i)^2 with scale 1/n (mean) or 1 (sum), one
// primitive instead of a subtraction, a square and a mean (three nodes and
// a broadcast on the way back). VJP 2 scale g (x - t); JVP 2 scale sum((x - t) dx).
struct SquaredErrorRule {
  static constexpr const char* name = "mse_loss";
  struct Attrs { Tensor target; double scale = 1; };
  static void release(Attrs& a) { a.target = Tensor(); }
  static Grads vjp(OpNode<SquaredErrorRule>& n, const Var& g) {
    const int nb = n.batch_dims(g);
    const Tensor& x = n.tensor(0);
    const Tensor& t = n.attrs.target;
    if (!grad_enabled() && nb == 0) {  // first order: one pass
      Tensor gx = Tensor::empty(x.shape, x.dtype);
      TG_DISPATCH_FLOAT(x.dtype, name, {
        const T c = T(2 * n.attrs.scale * g->data.item());
        const T* px = x.ptr<T>();
        const T* pt = t.ptr<T>();
        T* o = gx.ptr<T>();
        for (int64_t i = 0, m = x.numel(); i < m; ++i) o[i] = c * (px[i] - pt[i]);
      });
      return {constant(gx)};
    }
    // Differentiable form (create_graph) and batched cotangents.
    Shape gs = batch_shape(g, nb);
    gs.insert(gs.end(), x.shape.size(), 1);
    Var d = sub(n.get(0), constant(t));
    return {mul(mul(d, scalar(2 * n.attrs.scale, d)), reshape(g, gs))};
  }
  static Var jvp(OpNode<SquaredErrorRule>& n, const Grads& t, int nb) {
    Var d = sub(n.get(0), constant(n.attrs.target));
    Axes axes;
    for (size_t a = 0; a < d->shape().size(); ++a) axes.push_back(static_cast<int64_t>(a) + nb);
    return mul(sum(mul(d, t[0]), axes, false), scalar(2 * n.attrs.scale, d));
  }
};

// ---------------------------------------------------------------------------
// Shape primitives: all linear (the JVP is the op itself on the tangent).
// ---------------------------------------------------------------------------
struct ReshapeRule {
  static constexpr const char* name = "reshape";
  static constexpr bool pointwise = true;
  struct Attrs { Shape in_shape; };
  static Grads vjp(OpNode<ReshapeRule>& n, const Var& g) { return {reshape(g, with_batch(g, n.batch_dims(g), n.attrs.in_shape))}; }
  static Var jvp(OpNode<ReshapeRule>& n, const Grads& t, int nb) { return reshape(t[0], with_batch(t[0], nb, n.out_shape)); }
};
struct TransposeRule {
  static constexpr const char* name = "transpose";
  struct Attrs { Axes perm; };
  static Axes shifted(const Axes& perm, int nb) {
    Axes p;
    for (int i = 0; i < nb; ++i) p.push_back(i);
    for (int64_t a : perm) p.push_back(a + nb);
    return p;
  }
  static Grads vjp(OpNode<TransposeRule>& n, const Var& g) {
    Axes inv(n.attrs.perm.size());
    for (size_t i = 0; i < inv.size(); ++i) inv[n.attrs.perm[i]] = static_cast<int64_t>(i);
    return {transpose(g, shifted(inv, n.batch_dims(g)))};
  }
  static Var jvp(OpNode<TransposeRule>& n, const Grads& t, int nb) { return transpose(t[0], shifted(n.attrs.perm, nb)); }
};
// broadcast_to and sum_to are each other's VJP.
struct BroadcastRule {
  static constexpr const char* name = "broadcast_to";
  struct Attrs { Shape in_shape; };
  static Grads vjp(OpNode<BroadcastRule>& n, const Var& g) {
    int nb = n.batch_dims(g);
    return {sum_to(g, with_batch(g, nb, n.attrs.in_shape), nb)};
  }
  static Var jvp(OpNode<BroadcastRule>& n, const Grads& t, int nb) {
    return broadcast_to(lift(t[0], nb, n.out_shape.size()), with_batch(t[0], nb, n.out_shape));
  }
};
struct ConcatRule {
  static constexpr const char* name = "concatenate";
  struct Attrs { int64_t axis = 0; std::vector<int64_t> sizes; };
  static Grads vjp(OpNode<ConcatRule>& n, const Var& g) {
    int nb = n.batch_dims(g);
    Grads out;
    int64_t start = 0;
    for (size_t i = 0; i < n.attrs.sizes.size(); ++i) {
      out.push_back(n.needs(i) ? narrow(g, n.attrs.axis + nb, start, n.attrs.sizes[i]) : nullptr);
      start += n.attrs.sizes[i];
    }
    return out;
  }
  static Var jvp(OpNode<ConcatRule>& n, const Grads& t, int nb) {
    Var like;
    for (const Var& v : t) if (v) like = v;
    std::vector<Var> parts;
    for (size_t i = 0; i < n.attrs.sizes.size(); ++i) {
      if (t[i]) {
        parts.push_back(t[i]);
      } else {
        Shape s = with_batch(like, nb, n.out_shape);
        s[n.attrs.axis + nb] = n.attrs.sizes[i];
        parts.push_back(make_var(Tensor::zeros(s, like->dtype())));
      }
    }
    return concatenate(parts, n.attrs.axis + nb);
  }
};
// narrow and pad_axis are each other's VJP; so are gather and scatter_add.
struct NarrowRule {
  static constexpr const char* name = "narrow";
  struct Attrs { int64_t axis = 0, start = 0, total = 0; };
  static Grads vjp(OpNode<NarrowRule>& n, const Var& g) {
    return {pad_axis(g, n.attrs.axis + n.batch_dims(g), n.attrs.start, n.attrs.total)};
  }
  static Var jvp(OpNode<NarrowRule>& n, const Grads& t, int nb) {
    return narrow(t[0], n.attrs.axis + nb, n.attrs.start, n.out_shape[n.attrs.axis]);
  }
};
struct PadRule {
  static constexpr const char* name = "pad";
  struct Attrs { int64_t axis = 0, start = 0, length = 0; };
  static Grads vjp(OpNode<PadRule>& n, const Var& g) {
    return {narrow(g, n.attrs.axis + n.batch_dims(g), n.attrs.start, n.attrs.length)};
  }
  static Var jvp(OpNode<PadRule>& n, const Grads& t, int nb) {
    return pad_axis(t[0], n.attrs.axis + nb, n.attrs.start, n.out_shape[n.attrs.axis]);
  }
};
struct GatherRule {
  static constexpr const char* name = "getitem";
  struct Attrs { Tensor index; Shape in_shape; };
  static Grads vjp(OpNode<GatherRule>& n, const Var& g) {
    return {batched_scatter(g, n.attrs.index, n.attrs.in_shape, n.batch_dims(g))};
  }
  static Var jvp(OpNode<GatherRule>& n, const Grads& t, int nb) { return batched_gather(t[0], n.attrs.index, n.attrs.in_shape, nb); }
};
struct ScatterAddRule {
  static constexpr const char* name = "scatter_add";
  struct Attrs { Tensor index; Shape src_shape; };
  static Grads vjp(OpNode<ScatterAddRule>& n, const Var& g) {
    return {batched_gather(g, n.attrs.index, n.out_shape, n.batch_dims(g))};
  }
  static Var jvp(OpNode<ScatterAddRule>& n, const Grads& t, int nb) { return batched_scatter(t[0], n.attrs.index, n.out_shape, nb); }
};

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

// ===========================================================================
// Public differentiable ops
// ===========================================================================

Var neg(const Var& x) { return unary_op<NegRule>(x); }
Var exp(const Var& x) { return unary_op<ExpRule>(x); }
Var log(const Var& x) { return unary_op<LogRule>(x); }
Var log1p(const Var& x) { return unary_op<Log1pRule>(x); }
Var sqrt(const Var& x) { return unary_op<SqrtRule>(x); }
Var sin(const Var& x) { return unary_op<SinRule>(x); }
Var cos(const Var& x) { return unary_op<CosRule>(x); }
Var tanh(const Var& x) { return unary_op<TanhRule>(x); }
Var sigmoid(const Var& x) { return unary_op<SigmoidRule>(x); }
Var relu(const Var& x) { return unary_op<ReluRule>(x); }
Var abs(const Var& x) { return unary_op<AbsRule>(x); }

Var clip(const Var& x, const Tensor& lo, const Tensor& hi) {
  if (!lo.defined() && !hi.defined()) throw value_error("clip: one of a_min and a_max must be given");
  Tensor out = x->data;
  if (lo.defined()) out = kern::binary(BinaryOp::Maximum, out, lo, "clip");
  if (hi.defined()) out = kern::binary(BinaryOp::Minimum, out, hi, "clip");
  if (out.storage == x->data.storage) out = out.clone();
  Recorder<ClipRule> r(std::move(out), {&x});
  if (r) {
    r.attrs() = ClipRule::Attrs{lo, hi, x->shape()};
    r.save_input(x, 0);
  }
  return std::move(r.out);
}

Var astype(const Var& x, DType dt) {
  if (!is_float(dt)) throw type_error(std::string("astype: dtype must be float32 or float64, got ") + dtype_name(dt));
  Recorder<AstypeRule> r(kern::astype(x->data, dt), {&x});
  if (r) r.attrs() = AstypeRule::Attrs{x->dtype(), dt};
  return std::move(r.out);
}

Var mul_const(const Var& x, const Tensor& c) { return mul(x, constant(c)); }

Var add(const Var& a, const Var& b) { return binary_op<AddRule>(a, b, BinaryOp::Add); }
Var sub(const Var& a, const Var& b) { return binary_op<SubRule>(a, b, BinaryOp::Sub); }
Var mul(const Var& a, const Var& b) { return binary_op<MulRule>(a, b, BinaryOp::Mul); }
Var div(const Var& a, const Var& b) { return binary_op<DivRule>(a, b, BinaryOp::Div); }
Var pow(const Var& a, const Var& b) { return binary_op<PowRule>(a, b, BinaryOp::Pow); }
Var maximum(const Var& a, const Var& b) { return binary_op<MaximumRule>(a, b, BinaryOp::Maximum); }
Var minimum(const Var& a, const Var& b) { return binary_op<MinimumRule>(a, b, BinaryOp::Minimum); }

const char* name_of(ScalarOp op);
[[noreturn]] static void scalar_op_dtype_error(ScalarOp op, DType dt) {
  throw type_error(std::string(name_of(op)) + ": expected a float32 or float64 Variable, got " + dtype_name(dt));
}

template <ScalarOp K>
Var scalar_op_t(const Var& x, double c) {
  if (!is_float(x->dtype())) scalar_op_dtype_error(K, x->dtype());
  constexpr BinaryOp k = K == ScalarOp::Add ? BinaryOp::Add
                         : (K == ScalarOp::Sub || K == ScalarOp::CLeftSub) ? BinaryOp::Sub
                         : K == ScalarOp::Mul ? BinaryOp::Mul : BinaryOp::Div;
  constexpr bool c_left = K == ScalarOp::CLeftSub || K == ScalarOp::CLeftDiv;
  // (Not x + (-c) for x - c: negating a NaN c would flip the result's sign bit.)
  Recorder<ScalarRule<K>> r(kern::binary_scalar(k, x->data, c, c_left, ScalarRule<K>::name), {&x});
  if (r) {
    r.attrs().c = c;
    if (K == ScalarOp::CLeftDiv) {
      r.save_input(x, 0);
      r.save_output();
    }
  }
  return std::move(r.out);
}

const char* name_of(ScalarOp op) {
  switch (op) {
    case ScalarOp::Add: return ScalarRule<ScalarOp::Add>::name;
    case ScalarOp::Sub: case ScalarOp::CLeftSub: return ScalarRule<ScalarOp::Sub>::name;
    case ScalarOp::Mul: return ScalarRule<ScalarOp::Mul>::name;
    default: return ScalarRule<ScalarOp::Div>::name;
  }
}

template Var scalar_op_t<ScalarOp::Add>(const Var&, double);
template Var scalar_op_t<ScalarOp::Sub>(const Var&, double);
template Var scalar_op_t<ScalarOp::CLeftSub>(const Var&, double);
template Var scalar_op_t<ScalarOp::Mul>(const Var&, double);
template Var scalar_op_t<ScalarOp::Div>(const Var&, double);
template Var scalar_op_t<ScalarOp::CLeftDiv>(const Var&, double);

Var scalar_op(const Var& x, double c, ScalarOp op) {
  switch (op) {
    case ScalarOp::Add: return scalar_op_t<ScalarOp::Add>(x, c);
    case ScalarOp::Sub: return scalar_op_t<ScalarOp::Sub>(x, c);
    case ScalarOp::CLeftSub: return scalar_op_t<ScalarOp::CLeftSub>(x, c);
    case ScalarOp::Mul: return scalar_op_t<ScalarOp::Mul>(x, c);
    case ScalarOp::Div: return scalar_op_t<ScalarOp::Div>(x, c);
    case ScalarOp::CLeftDiv: return scalar_op_t<ScalarOp::CLeftDiv>(x, c);
  }
  throw value_error("scalar_op: unknown op");
}

Var where(const Tensor& cond, const Var& a0, const Var& b0) {
  DType dt = promote(a0->dtype(), b0->dtype());
  Var a = a0->dtype() == dt ? a0 : astype(a0, dt);
  Var b = b0->dtype() == dt ? b0 : astype(b0, dt);
  Recorder<WhereRule> r(kern::where(cond, a->data, b->data, "where"), {&a, &b});
  if (r) r.attrs() = WhereRule::Attrs{cond, a->shape(), b->shape()};
  return std::move(r.out);
}

// ----- axes -------------------------------------------------------------------
int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op) {
  if (axis < -ndim || axis >= ndim)
    throw value_error(std::string(op) + ": axis " + std::to_string(axis) + " is out of bounds for an array of dimension " +
                      std::to_string(ndim));
  return axis < 0 ? axis + ndim : axis;
}

Axes normalize_axes(const Axes& axes, int64_t ndim, const char* op) {
  Axes out;
  for (int64_t a : axes) {
    int64_t n = normalize_axis(a, ndim, op);
    if (std::find(out.begin(), out.end(), n) != out.end())
      throw value_error(std::string(op) + ": repeated axis " + std::to_string(a));
    out.push_back(n);
  }
  return out;
}

// ----- reductions ---------------------------------------------------------------
template <class Rule>
static Var reduce_op(const Var& x, const std::optional<Axes>& axes, bool keepdims, Tensor (*kernel)(const Tensor&, const std::vector<bool>&),
                     bool save_in_out) {
  std::vector<bool> mask = axes_mask(axes, x->data.ndim());
  Shape keep = keep_shape_of(x->shape(), mask);
  Tensor out = kernel(x->data, mask);
  if (!keepdims) out = out.view(squeeze_shape(x->shape(), mask));
  Recorder<Rule> r(std::move(out), {&x});
  if (r) {
    r.attrs() = ReduceAttrs{x->shape(), keep, mask};
    if (save_in_out) {
      r.save_input(x, 0);
      r.save_output();
    }
  }
  return std::move(r.out);
}

static Tensor sum_kernel(const Tensor& x, const std::vector<bool>& m) { return kern::reduce(ReduceOp::Sum, x, m, "sum"); }
static Tensor max_kernel(const Tensor& x, const std::vector<bool>& m) { return kern::reduce(ReduceOp::Max, x, m, "max"); }
static Tensor min_kernel(const Tensor& x, const std::vector<bool>& m) { return kern::reduce(ReduceOp::Min, x, m, "min"); }

Var sum(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  return reduce_op<SumRule>(x, axes, keepdims, sum_kernel, false);
}
Var max(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  return reduce_op<ExtremumRule<ReduceOp::Max>>(x, axes, keepdims, max_kernel, true);
}
Var min(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  return reduce_op<ExtremumRule<ReduceOp::Min>>(x, axes, keepdims, min_kernel, true);
}
Var logsumexp(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  return reduce_op<LogsumexpRule>(x, axes, keepdims, kern::logsumexp, true);
}

Var mean(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  int64_t count = 1;
  std::vector<bool> mask = axes_mask(axes, x->data.ndim());
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) count *= x->shape()[d];
  // No element: NumPy's nan, a constant, so its derivative is 0 in every mode
  // (sum * (1/0) gave a JVP of 0 * inf = nan but a VJP and Jacobians of 0).
  if (count == 0) return add(sum(x, axes, keepdims), scalar(std::nan(""), x));
  return mul(sum(x, axes, keepdims), scalar(1.0 / static_cast<double>(count), x));
}

Var softmax(const Var& x, int64_t axis) {
  if (x->data.ndim()) axis = normalize_axis(axis, x->data.ndim(), "softmax");
  Recorder<SoftmaxRule> r(kern::softmax(x->data, axis), {&x});
  if (r) {
    r.attrs().axis = axis;
    r.save_output();
  }
  return std::move(r.out);
}

Var log_softmax(const Var& x, int64_t axis) {
  if (x->data.ndim()) axis = normalize_axis(axis, x->data.ndim(), "log_softmax");
  Recorder<LogSoftmaxRule> r(kern::log_softmax(x->data, axis), {&x});
  if (r) {
    r.attrs().axis = axis;
    r.save_output();
  }
  return std::move(r.out);
}

Var cross_entropy_labels(const Var& z, const Tensor& labels, CrossEntropyReduction reduction) {
  if (!is_float(z->dtype()))
    throw type_error(std::string("cross_entropy: logits must be float32 or float64, got ") + dtype_name(z->dtype()));
  if (z->data.ndim() != 2)
    throw value_error("cross_entropy: logits must have shape (N, C), got " + shape_str(z->shape()));
  const int64_t N = z->shape()[0], C = z->shape()[1];
  if (labels.dtype != DType::I64 || labels.shape != Shape{N})
    throw value_error("cross_entropy: labels must be int64 of shape (" + std::to_string(N) + ",) for logits " +
                      shape_str(z->shape()) + ", got " + dtype_name(labels.dtype) + " " + shape_str(labels.shape));
  const int64_t* y = labels.ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i)
    if (y[i] < 0 || y[i] >= C)
      throw value_error("cross_entropy: labels must be in [0, " + std::to_string(C) + "): label " +
                        std::to_string(y[i]) + " at row " + std::to_string(i) + " is out of range");
  Tensor probs;  // kept for the first-order VJP, so only when this op will be recorded
  const bool recording = grad_enabled() && z->requires_grad;
  Tensor logp = kern::log_softmax(z->data, 1, recording ? &probs : nullptr);
  const bool reduced = reduction != CrossEntropyReduction::None;
  // The mean of no row is nan (below), a constant: the rules get scale 0 (1/0 made the JVP 0 * inf = nan).
  const double scale = reduction == CrossEntropyReduction::Mean ? (N ? 1.0 / static_cast<double>(N) : 0.0) : 1.0;
  Tensor loss = Tensor::empty(reduced ? Shape{} : Shape{N}, z->dtype());
  Tensor flat = Tensor::empty(Shape{N}, DType::I64);
  TG_DISPATCH_FLOAT(z->dtype(), "cross_entropy", {
    double total = 0;  // the reduction accumulates in double
    for (int64_t i = 0; i < N; ++i) {
      flat.ptr<int64_t>()[i] = i * C + y[i];
      const T li = -logp.ptr<T>()[i * C + y[i]];
      if (reduced) total += double(li);
      else loss.ptr<T>()[i] = li;
    }
    if (reduced) *loss.ptr<T>() = T(N == 0 && reduction == CrossEntropyReduction::Mean ? std::nan("") : total * scale);
  });
  Recorder<CrossEntropyRule> r(std::move(loss), {&z});
  if (r) {
    r.attrs() = CrossEntropyRule::Attrs{labels.clone(), flat, probs, reduced, scale};
    r.save_input(z, 0);
  }
  return std::move(r.out);
}

Var mse_loss(const Var& x, const Tensor& target0, bool mean) {
  if (!is_float(x->dtype()))
    throw type_error(std::string("mse_loss: input must be float32 or float64, got ") + dtype_name(x->dtype()));
  if (target0.shape != x->shape())
    throw value_error("mse_loss: input shape " + shape_str(x->shape()) + " and target shape " +
                      shape_str(target0.shape) + " differ");
  Tensor target = target0.dtype == x->dtype() ? target0 : kern::astype(target0, x->dtype());
  const int64_t n = x->data.numel();
  // mean of nothing: NaN, as NumPy (below), a constant: the rules get scale 0 (1/0 made the JVP nan)
  const double scale = mean ? (n ? 1.0 / static_cast<double>(n) : 0.0) : 1.0;
  Tensor loss = Tensor::empty(Shape{}, x->dtype());
  TG_DISPATCH_FLOAT(x->dtype(), "mse_loss", {
    const T* px = x->data.ptr<T>();
    const T* pt = target.ptr<T>();
    double s[4] = {0, 0, 0, 0};  // accumulated in double, four interleaved sums
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (int q = 0; q < 4; ++q) {
        const double d = double(px[i + q]) - double(pt[i + q]);
        s[q] += d * d;
      }
    for (; i < n; ++i) {
      const double d = double(px[i]) - double(pt[i]);
      s[0] += d * d;
    }
    *loss.ptr<T>() = T(((s[0] + s[1]) + (s[2] + s[3])) * (n == 0 && mean ? std::nan("") : scale));
  });
  Recorder<SquaredErrorRule> r(std::move(loss), {&x});
  if (r) {
    r.attrs() = SquaredErrorRule::Attrs{target, scale};
    r.save_input(x, 0);
  }
  return std::move(r.out);
}

Var sum_to(const Var& g, const Shape& shape, int nb) {
  if (g->shape() == shape) return g;
  // The first nb axes are batch axes, kept; the rest broadcast from shape's rest.
  const Shape& gs = g->shape();
  size_t lead = (gs.size() - nb) - (shape.size() - nb);
  Axes axes;
  for (size_t d = nb; d < gs.size(); ++d) {
    bool extra = d < nb + lead;
    if (extra || (shape[d - lead] == 1 && gs[d] != 1)) axes.push_back(static_cast<int64_t>(d));
  }
  return reshape(sum(g, axes, true), shape);
}

// ----- shape ----------------------------------------------------------------------
Var reshape(const Var& x, const Shape& shape0) {
  Shape shape = shape0;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw value_error("reshape: can only specify one unknown dimension (-1), got " + shape_str(shape0));
      infer = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      throw value_error("reshape: negative dimension in " + shape_str(shape0));
    } else {
      known *= shape[i];
    }
  }
  int64_t n = x->data.numel();
  if (infer >= 0 && known != 0 && n % known == 0) shape[infer] = n / known;
  if (numel(shape) != n || (infer >= 0 && known == 0))
    throw value_error("reshape: cannot reshape a Variable of shape " + shape_str(x->shape()) + " (size " +
                      std::to_string(n) + ") into shape " + shape_str(shape0));
  if (shape == x->shape() && !grad_enabled()) return x;
  Recorder<ReshapeRule> r(x->data.view(shape), {&x});  // a view: shares storage and version counter
  if (r) r.attrs().in_shape = x->shape();
  return std::move(r.out);
}

Var transpose(const Var& x, const std::optional<Axes>& perm0) {
  int64_t nd = x->data.ndim();
  Axes perm;
  if (!perm0) {
    for (int64_t i = nd - 1; i >= 0; --i) perm.push_back(i);
  } else {
    if (static_cast<int64_t>(perm0->size()) != nd)
      throw value_error("transpose: axes don't match array: got " + std::to_string(perm0->size()) +
                        " axes for a Variable of shape " + shape_str(x->shape()));
    perm = normalize_axes(*perm0, nd, "transpose");
  }
  Recorder<TransposeRule> r(kern::transpose(x->data, perm), {&x});
  if (r) r.attrs().perm = perm;
  return std::move(r.out);
}

Var broadcast_to(const Var& x, const Shape& shape) {
  Recorder<BroadcastRule> r(kern::broadcast_to(x->data, shape, "broadcast_to"), {&x});
  if (r) r.attrs().in_shape = x->shape();
  return std::move(r.out);
}

Var concatenate(const std::vector<Var>& xs0, int64_t axis) {
  if (xs0.empty()) throw value_error("concatenate: need at least one array to concatenate");
  const Shape& s0 = xs0[0]->shape();
  if (s0.empty()) throw value_error("concatenate: zero-dimensional arrays cannot be concatenated");
  axis = normalize_axis(axis, static_cast<int64_t>(s0.size()), "concatenate");
  DType dt = xs0[0]->dtype();
  for (const Var& v : xs0) dt = promote(dt, v->dtype());
  std::vector<Var> xs;
  std::vector<Tensor> ts;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < xs0.size(); ++i) {
    const Shape& s = xs0[i]->shape();
    bool ok = s.size() == s0.size();
    for (size_t d = 0; ok && d < s.size(); ++d) ok = (static_cast<int64_t>(d) == axis) || s[d] == s0[d];
    if (!ok)
      throw value_error("concatenate: all the input array dimensions except for the concatenation axis " +
                        std::to_string(axis) + " must match exactly, but input 0 has shape " + shape_str(s0) +
                        " and input " + std::to_string(i) + " has shape " + shape_str(s));
    xs.push_back(xs0[i]->dtype() == dt ? xs0[i] : astype(xs0[i], dt));
    ts.push_back(xs.back()->data);
    sizes.push_back(s[axis]);
  }
  Recorder<ConcatRule> r(kern::concat(ts, axis), xs);
  if (r) r.attrs() = ConcatRule::Attrs{axis, sizes};
  return std::move(r.out);
}

Var stack(const std::vector<Var>& xs, int64_t axis) {
  if (xs.empty()) throw value_error("stack: need at least one array to stack");
  const Shape& s0 = xs[0]->shape();
  axis = normalize_axis(axis, static_cast<int64_t>(s0.size()) + 1, "stack");
  std::vector<Var> parts;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (xs[i]->shape() != s0)
      throw value_error("stack: all input arrays must have the same shape, but input 0 has shape " + shape_str(s0) +
                        " and input " + std::to_string(i) + " has shape " + shape_str(xs[i]->shape()));
    Shape s = s0;
    s.insert(s.begin() + axis, 1);
    parts.push_back(reshape(xs[i], s));
  }
  return concatenate(parts, axis);
}

Var narrow(const Var& x, int64_t axis, int64_t start, int64_t length) {
  Recorder<NarrowRule> r(kern::narrow(x->data, axis, start, length), {&x});
  if (r) r.attrs() = NarrowRule::Attrs{axis, start, x->shape()[axis]};
  return std::move(r.out);
}

Var pad_axis(const Var& x, int64_t axis, int64_t start, int64_t total) {
  Recorder<PadRule> r(kern::pad_axis(x->data, axis, start, total), {&x});
  if (r) r.attrs() = PadRule::Attrs{axis, start, x->shape()[axis]};
  return std::move(r.out);
}

Var gather(const Var& x, const Tensor& index) {
  Recorder<GatherRule> r(kern::gather(x->data, index, index.shape), {&x});
  if (r) r.attrs() = GatherRule::Attrs{index, x->shape()};
  return std::move(r.out);
}

Var scatter_add(const Var& src, const Tensor& index, const Shape& shape) {
  Recorder<ScatterAddRule> r(kern::scatter_add(src->data, index, shape), {&src});
  if (r) r.attrs() = ScatterAddRule::Attrs{index, src->shape()};
  return std::move(r.out);
}

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

}  // namespace tg
