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
// Unary elementwise primitives
// ---------------------------------------------------------------------------
enum class SaveWhat { Nothing, Input, Output };

template <class Rule>
Var unary_op(const Var& x) {
  Recorder<Rule> r(kern::unary(Rule::kernel, x->data), {&x});
  if (r) {
    if (Rule::save == SaveWhat::Input) r.save_input(x, 0);
    if (Rule::save == SaveWhat::Output) r.save_output();
  }
  return r.out;
}

#define TG_UNARY_RULE(NAME, KERNEL, SAVE)          \
  static constexpr const char* name = NAME;       \
  static constexpr UnaryOp kernel = KERNEL;       \
  static constexpr SaveWhat save = SAVE;          \
  struct Attrs {};

// d(-x) = -dx
struct NegRule { TG_UNARY_RULE("negative", UnaryOp::Neg, SaveWhat::Nothing)
  static Grads vjp(OpNode<NegRule>&, const Var& g) { return {neg(g)}; } };
// d exp(x) = exp(x) dx          (reads the output)
struct ExpRule { TG_UNARY_RULE("exp", UnaryOp::Exp, SaveWhat::Output)
  static Grads vjp(OpNode<ExpRule>& n, const Var& g) { return {mul(g, n.get(0))}; } };
// d log(x) = dx / x
struct LogRule { TG_UNARY_RULE("log", UnaryOp::Log, SaveWhat::Input)
  static Grads vjp(OpNode<LogRule>& n, const Var& g) { return {div(g, n.get(0))}; } };
// d log1p(x) = dx / (1 + x)
struct Log1pRule { TG_UNARY_RULE("log1p", UnaryOp::Log1p, SaveWhat::Input)
  static Grads vjp(OpNode<Log1pRule>& n, const Var& g) {
    Var x = n.get(0);
    return {div(g, add(x, scalar(1, x)))};
  } };
// d sqrt(x) = dx / (2 sqrt(x))  (reads the output; inf at 0, as NumPy)
struct SqrtRule { TG_UNARY_RULE("sqrt", UnaryOp::Sqrt, SaveWhat::Output)
  static Grads vjp(OpNode<SqrtRule>& n, const Var& g) {
    Var y = n.get(0);
    return {div(g, mul(y, scalar(2, y)))};
  } };
// d sin(x) = cos(x) dx
struct SinRule { TG_UNARY_RULE("sin", UnaryOp::Sin, SaveWhat::Input)
  static Grads vjp(OpNode<SinRule>& n, const Var& g) { return {mul(g, cos(n.get(0)))}; } };
// d cos(x) = -sin(x) dx
struct CosRule { TG_UNARY_RULE("cos", UnaryOp::Cos, SaveWhat::Input)
  static Grads vjp(OpNode<CosRule>& n, const Var& g) { return {neg(mul(g, sin(n.get(0))))}; } };
// d tanh(x) = (1 - tanh(x)^2) dx   (reads the output; one fused kernel
// unless the sweep is recorded for second order)
struct TanhRule { TG_UNARY_RULE("tanh", UnaryOp::Tanh, SaveWhat::Output)
  static Grads vjp(OpNode<TanhRule>& n, const Var& g) {
    if (!grad_enabled()) return {constant(kern::binary(BinaryOp::TanhGrad, g->data, n.tensor(0), name))};
    Var y = n.get(0);
    return {mul(g, sub(scalar(1, y), mul(y, y)))};
  } };
// d sigmoid(x) = s (1 - s) dx       (reads the output; fused like tanh)
struct SigmoidRule { TG_UNARY_RULE("sigmoid", UnaryOp::Sigmoid, SaveWhat::Output)
  static Grads vjp(OpNode<SigmoidRule>& n, const Var& g) {
    if (!grad_enabled()) return {constant(kern::binary(BinaryOp::SigmoidGrad, g->data, n.tensor(0), name))};
    Var s = n.get(0);
    return {mul(g, mul(s, sub(scalar(1, s), s)))};
  } };
// d relu(x) = [x > 0] dx            (relu'(0) = 0)
struct ReluRule { TG_UNARY_RULE("relu", UnaryOp::Relu, SaveWhat::Input)
  static Grads vjp(OpNode<ReluRule>& n, const Var& g) {
    return {mul(g, constant(kern::unary(UnaryOp::ReluMask, n.get(0)->data)))};
  } };
// d |x| = sign(x) dx                (abs'(0) = 0)
struct AbsRule { TG_UNARY_RULE("abs", UnaryOp::Abs, SaveWhat::Input)
  static Grads vjp(OpNode<AbsRule>& n, const Var& g) {
    return {mul(g, constant(kern::unary(UnaryOp::Sign, n.get(0)->data)))};
  } };

// clip(x, lo, hi) = minimum(maximum(x, lo), hi) with constant bounds (0-d
// or broadcasting arrays): the gradient passes where lo <= x <= hi, inclusive.
struct ClipRule {
  static constexpr const char* name = "clip";
  struct Attrs { Tensor lo, hi; Shape x_shape; };
  static Grads vjp(OpNode<ClipRule>& n, const Var& g) {
    const Tensor x = n.tensor(0);
    Tensor inside;
    if (n.attrs.lo.defined()) inside = kern::compare(CompareOp::Ge, x, n.attrs.lo, name);
    if (n.attrs.hi.defined()) {
      Tensor le = kern::compare(CompareOp::Le, x, n.attrs.hi, name);
      inside = inside.defined() ? kern::logical_and(inside, le) : le;
    }
    return {sum_to(where(inside, g, scalar(0, g)), n.attrs.x_shape)};
  }
};

// astype: the gradient converts back to the input dtype.
struct AstypeRule {
  static constexpr const char* name = "astype";
  struct Attrs { DType from = DType::F64; };
  static Grads vjp(OpNode<AstypeRule>& n, const Var& g) { return {astype(g, n.attrs.from)}; }
};

// ---------------------------------------------------------------------------
// Binary elementwise primitives (broadcasting). `grads` returns gradients in
// the broadcast shape; binary_vjp reduces them with the one helper sum_to.
// ---------------------------------------------------------------------------
struct BinaryAttrs { Shape a_shape, b_shape; };

template <class Rule>
Grads binary_vjp(OpNode<Rule>& n, const Var& g) {
  auto [ga, gb] = Rule::grads(n, g);
  return {ga ? sum_to(ga, n.attrs.a_shape) : nullptr, gb ? sum_to(gb, n.attrs.b_shape) : nullptr};
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
  return r.out;
}

#define TG_BINARY_RULE(NAME)                                                              \
  static constexpr const char* name = NAME;                                             \
  using Attrs = BinaryAttrs;                                                            \
  static Grads vjp(OpNode<Rule>& n, const Var& g) { return binary_vjp<Rule>(n, g); }

using VarPair = std::pair<Var, Var>;

// d(a + b) = da + db
struct AddRule { using Rule = AddRule; TG_BINARY_RULE("add")
  static void save(Recorder<Rule>&, const Var&, const Var&) {}
  static VarPair grads(OpNode<Rule>& n, const Var& g) { return {n.needs(0) ? g : nullptr, n.needs(1) ? g : nullptr}; } };
// d(a - b) = da - db
struct SubRule { using Rule = SubRule; TG_BINARY_RULE("subtract")
  static void save(Recorder<Rule>&, const Var&, const Var&) {}
  static VarPair grads(OpNode<Rule>& n, const Var& g) { return {n.needs(0) ? g : nullptr, n.needs(1) ? neg(g) : nullptr}; } };
// d(a b) = b da + a db
struct MulRule { using Rule = MulRule; TG_BINARY_RULE("multiply")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    return {n.needs(0) ? mul(g, n.get(1)) : nullptr, n.needs(1) ? mul(g, n.get(0)) : nullptr};
  } };
// d(a / b) = da / b - (a / b) db / b      (reads the output)
struct DivRule { using Rule = DivRule; TG_BINARY_RULE("divide")
  static void save(Recorder<Rule>& r, const Var&, const Var& b) { r.save_input(b, 1); r.save_output(); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    Var b = n.get(0);
    return {n.needs(0) ? div(g, b) : nullptr, n.needs(1) ? neg(div(mul(g, n.get(1)), b)) : nullptr};
  } };
// d(a^b) = b a^(b-1) da + log(a) a^b db; 0 where b == 0 (for da) and where a == 0, b >= 0 (for db).
struct PowRule { using Rule = PowRule; TG_BINARY_RULE("power")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); r.save_output(); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    Var a = n.get(0), b = n.get(1);
    Var zero = scalar(0, a);
    Var ga, gb;
    if (n.needs(0)) {
      Var d = mul(g, mul(b, pow(a, sub(b, scalar(1, b)))));
      ga = where(kern::compare(CompareOp::Eq, b->data, zero->data, "power"), zero, d);
    }
    if (n.needs(1)) {
      Var d = mul(g, mul(n.get(2), log(a)));
      Tensor a0 = kern::logical_and(kern::compare(CompareOp::Eq, a->data, zero->data, "power"),
                                    kern::compare(CompareOp::Ge, b->data, zero->data, "power"));
      gb = where(a0, zero, d);
    }
    return {ga, gb};
  } };
// d max(a, b): to the larger operand; ties split evenly.
struct MaximumRule { using Rule = MaximumRule; TG_BINARY_RULE("maximum")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    Tensor a = n.get(0)->data, b = n.get(1)->data;
    return {n.needs(0) ? mul(g, constant(kern::binary(BinaryOp::MaxWeight, a, b, name))) : nullptr,
            n.needs(1) ? mul(g, constant(kern::binary(BinaryOp::MaxWeight, b, a, name))) : nullptr};
  } };
struct MinimumRule { using Rule = MinimumRule; TG_BINARY_RULE("minimum")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    Tensor a = n.get(0)->data, b = n.get(1)->data;
    return {n.needs(0) ? mul(g, constant(kern::binary(BinaryOp::MinWeight, a, b, name))) : nullptr,
            n.needs(1) ? mul(g, constant(kern::binary(BinaryOp::MinWeight, b, a, name))) : nullptr};
  } };

// where(cond, a, b): the gradient goes to the selected operand.
struct WhereRule {
  static constexpr const char* name = "where";
  struct Attrs { Tensor cond; Shape a_shape, b_shape; };
  static Grads vjp(OpNode<WhereRule>& n, const Var& g) {
    Var zero = scalar(0, g);
    return {n.needs(0) ? sum_to(where(n.attrs.cond, g, zero), n.attrs.a_shape) : nullptr,
            n.needs(1) ? sum_to(where(n.attrs.cond, zero, g), n.attrs.b_shape) : nullptr};
  }
};

// ---------------------------------------------------------------------------
// Reductions and normalisers
// ---------------------------------------------------------------------------
struct ReduceAttrs { Shape in_shape, keep_shape; std::vector<bool> mask; };

// d sum(x) = broadcast of the output gradient
struct SumRule {
  static constexpr const char* name = "sum";
  using Attrs = ReduceAttrs;
  static Grads vjp(OpNode<SumRule>& n, const Var& g) {
    return {broadcast_to(reshape(g, n.attrs.keep_shape), n.attrs.in_shape)};
  }
};

// d max(x): to the maximal elements, split evenly among ties (min alike).
template <ReduceOp K>
struct ExtremumRule {
  static constexpr const char* name = K == ReduceOp::Max ? "max" : "min";
  using Attrs = ReduceAttrs;
  static Grads vjp(OpNode<ExtremumRule>& n, const Var& g) {
    Tensor x = n.get(0)->data;
    Tensor best = n.get(1)->data.view(n.attrs.keep_shape);
    Tensor hit = kern::astype(kern::compare(CompareOp::Eq, x, best, name), x.dtype);
    Tensor weight = kern::binary(BinaryOp::Div, hit, kern::reduce(ReduceOp::Sum, hit, n.attrs.mask, name), name);
    return {mul(broadcast_to(reshape(g, n.attrs.keep_shape), n.attrs.in_shape), constant(weight))};
  }
};

// d logsumexp(x) = softmax(x) * broadcast(g)   (reads the output)
struct LogsumexpRule {
  static constexpr const char* name = "logsumexp";
  using Attrs = ReduceAttrs;
  static Grads vjp(OpNode<LogsumexpRule>& n, const Var& g) {
    Var x = n.get(0);
    Var p = exp(sub(x, reshape(n.get(1), n.attrs.keep_shape)));
    return {mul(p, reshape(g, n.attrs.keep_shape))};
  }
};

struct AxisAttrs { int64_t axis = 0; };
// d softmax: y * (g - sum(g * y))        (reads the output)
struct SoftmaxRule {
  static constexpr const char* name = "softmax";
  using Attrs = AxisAttrs;
  static Grads vjp(OpNode<SoftmaxRule>& n, const Var& g) {
    Var y = n.get(0);
    if (y->data.ndim() == 0) return {mul(g, scalar(0, g))};
    return {mul(y, sub(g, sum(mul(g, y), Axes{n.attrs.axis}, true)))};
  }
};
// d log_softmax: g - exp(y) * sum(g)     (reads the output)
struct LogSoftmaxRule {
  static constexpr const char* name = "log_softmax";
  using Attrs = AxisAttrs;
  static Grads vjp(OpNode<LogSoftmaxRule>& n, const Var& g) {
    Var y = n.get(0);
    if (y->data.ndim() == 0) return {mul(g, scalar(0, g))};
    return {sub(g, mul(exp(y), sum(g, Axes{n.attrs.axis}, true)))};
  }
};

// ---------------------------------------------------------------------------
// Shape primitives
// ---------------------------------------------------------------------------
struct ReshapeRule {
  static constexpr const char* name = "reshape";
  struct Attrs { Shape in_shape; };
  static Grads vjp(OpNode<ReshapeRule>& n, const Var& g) { return {reshape(g, n.attrs.in_shape)}; }
};
struct TransposeRule {
  static constexpr const char* name = "transpose";
  struct Attrs { Axes perm; };
  static Grads vjp(OpNode<TransposeRule>& n, const Var& g) {
    Axes inv(n.attrs.perm.size());
    for (size_t i = 0; i < inv.size(); ++i) inv[n.attrs.perm[i]] = static_cast<int64_t>(i);
    return {transpose(g, inv)};
  }
};
// broadcast_to and sum_to are each other's VJP.
struct BroadcastRule {
  static constexpr const char* name = "broadcast_to";
  struct Attrs { Shape in_shape; };
  static Grads vjp(OpNode<BroadcastRule>& n, const Var& g) { return {sum_to(g, n.attrs.in_shape)}; }
};
struct ConcatRule {
  static constexpr const char* name = "concatenate";
  struct Attrs { int64_t axis = 0; std::vector<int64_t> sizes; };
  static Grads vjp(OpNode<ConcatRule>& n, const Var& g) {
    Grads out;
    int64_t start = 0;
    for (size_t i = 0; i < n.attrs.sizes.size(); ++i) {
      out.push_back(n.needs(i) ? narrow(g, n.attrs.axis, start, n.attrs.sizes[i]) : nullptr);
      start += n.attrs.sizes[i];
    }
    return out;
  }
};
// narrow and pad_axis are each other's VJP; so are gather and scatter_add.
struct NarrowRule {
  static constexpr const char* name = "narrow";
  struct Attrs { int64_t axis = 0, start = 0, total = 0; };
  static Grads vjp(OpNode<NarrowRule>& n, const Var& g) {
    return {pad_axis(g, n.attrs.axis, n.attrs.start, n.attrs.total)};
  }
};
struct PadRule {
  static constexpr const char* name = "pad";
  struct Attrs { int64_t axis = 0, start = 0, length = 0; };
  static Grads vjp(OpNode<PadRule>& n, const Var& g) {
    return {narrow(g, n.attrs.axis, n.attrs.start, n.attrs.length)};
  }
};
struct GatherRule {
  static constexpr const char* name = "getitem";
  struct Attrs { Tensor index; Shape in_shape; };
  static Grads vjp(OpNode<GatherRule>& n, const Var& g) {
    return {scatter_add(g, n.attrs.index, n.attrs.in_shape)};
  }
};
struct ScatterAddRule {
  static constexpr const char* name = "scatter_add";
  struct Attrs { Tensor index; };
  static Grads vjp(OpNode<ScatterAddRule>& n, const Var& g) { return {gather(g, n.attrs.index)}; }
};

// ---------------------------------------------------------------------------
// Matrix product: C = op(A) op(B), op = identity or transpose of the last two axes.
//   dA = dC op(B)^T  (or its transpose),  dB = op(A)^T dC  (or its transpose)
// computed with transpose flags, never materialized transposes.
// ---------------------------------------------------------------------------
struct MatmulRule {
  static constexpr const char* name = "matmul";
  struct Attrs { bool ta = false, tb = false; Shape a_shape, b_shape; };
  static Grads vjp(OpNode<MatmulRule>& n, const Var& g) {
    const Attrs& t = n.attrs;
    Var ga, gb;
    if (n.needs(0)) {
      Var b = n.get(1);
      ga = sum_to(t.ta ? matmul_t(b, g, t.tb, true) : matmul_t(g, b, false, !t.tb), t.a_shape);
    }
    if (n.needs(1)) {
      Var a = n.get(0);
      gb = sum_to(t.tb ? matmul_t(g, a, true, t.ta) : matmul_t(a, g, !t.ta, false), t.b_shape);
    }
    return {ga, gb};
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
  return r.out;
}

Var astype(const Var& x, DType dt) {
  if (!is_float(dt)) throw type_error(std::string("astype: dtype must be float32 or float64, got ") + dtype_name(dt));
  Recorder<AstypeRule> r(kern::astype(x->data, dt), {&x});
  if (r) r.attrs().from = x->dtype();
  return r.out;
}

Var mul_const(const Var& x, const Tensor& c) { return mul(x, constant(c)); }

Var add(const Var& a, const Var& b) { return binary_op<AddRule>(a, b, BinaryOp::Add); }
Var sub(const Var& a, const Var& b) { return binary_op<SubRule>(a, b, BinaryOp::Sub); }
Var mul(const Var& a, const Var& b) { return binary_op<MulRule>(a, b, BinaryOp::Mul); }
Var div(const Var& a, const Var& b) { return binary_op<DivRule>(a, b, BinaryOp::Div); }
Var pow(const Var& a, const Var& b) { return binary_op<PowRule>(a, b, BinaryOp::Pow); }
Var maximum(const Var& a, const Var& b) { return binary_op<MaximumRule>(a, b, BinaryOp::Maximum); }
Var minimum(const Var& a, const Var& b) { return binary_op<MinimumRule>(a, b, BinaryOp::Minimum); }

Var where(const Tensor& cond, const Var& a0, const Var& b0) {
  DType dt = promote(a0->dtype(), b0->dtype());
  Var a = a0->dtype() == dt ? a0 : astype(a0, dt);
  Var b = b0->dtype() == dt ? b0 : astype(b0, dt);
  Recorder<WhereRule> r(kern::where(cond, a->data, b->data, "where"), {&a, &b});
  if (r) r.attrs() = WhereRule::Attrs{cond, a->shape(), b->shape()};
  return r.out;
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
  return r.out;
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
  return mul(sum(x, axes, keepdims), scalar(1.0 / static_cast<double>(count), x));
}

Var softmax(const Var& x, int64_t axis) {
  if (x->data.ndim()) axis = normalize_axis(axis, x->data.ndim(), "softmax");
  Recorder<SoftmaxRule> r(kern::softmax(x->data, axis), {&x});
  if (r) {
    r.attrs().axis = axis;
    r.save_output();
  }
  return r.out;
}

Var log_softmax(const Var& x, int64_t axis) {
  if (x->data.ndim()) axis = normalize_axis(axis, x->data.ndim(), "log_softmax");
  Recorder<LogSoftmaxRule> r(kern::log_softmax(x->data, axis), {&x});
  if (r) {
    r.attrs().axis = axis;
    r.save_output();
  }
  return r.out;
}

Var sum_to(const Var& g, const Shape& shape) {
  if (g->shape() == shape) return g;
  size_t lead = g->shape().size() - shape.size();
  Axes axes;
  for (size_t d = 0; d < g->shape().size(); ++d)
    if (d < lead || (shape[d - lead] == 1 && g->shape()[d] != 1)) axes.push_back(static_cast<int64_t>(d));
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
  return r.out;
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
  return r.out;
}

Var broadcast_to(const Var& x, const Shape& shape) {
  Recorder<BroadcastRule> r(kern::broadcast_to(x->data, shape, "broadcast_to"), {&x});
  if (r) r.attrs().in_shape = x->shape();
  return r.out;
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
  return r.out;
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
  return r.out;
}

Var pad_axis(const Var& x, int64_t axis, int64_t start, int64_t total) {
  Recorder<PadRule> r(kern::pad_axis(x->data, axis, start, total), {&x});
  if (r) r.attrs() = PadRule::Attrs{axis, start, x->shape()[axis]};
  return r.out;
}

Var gather(const Var& x, const Tensor& index) {
  Recorder<GatherRule> r(kern::gather(x->data, index, index.shape), {&x});
  if (r) r.attrs() = GatherRule::Attrs{index, x->shape()};
  return r.out;
}

Var scatter_add(const Var& src, const Tensor& index, const Shape& shape) {
  Recorder<ScatterAddRule> r(kern::scatter_add(src->data, index, shape), {&src});
  if (r) r.attrs().index = index;
  return r.out;
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
  return r.out;
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
