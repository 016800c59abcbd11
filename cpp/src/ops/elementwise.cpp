// Elementwise primitives: unary (exp, tanh, ...: generated from opspec/ops.py), binary with broadcasting
// (add, mul, ...), scalar ops (x op c for a Python number c), clip, where
// and astype. Each rule struct sits beside its public forward function.
#include "ops/common.hpp"

namespace tg {

namespace {
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

// The elementwise ops of opspec/ops.py get their rule structs from the spec
// (tapegrad_gen/elementwise_rules.inc, included below): `composite` is d * f'
// in differentiable ops; the first-order sweep runs the fused kernel instead
// (fast path), a recorded one (create_graph) the composite (second order).
#define TG_UNARY_RULE(NAME, KERNEL, SAVE, DERIV_KERNEL)                                       \
  static constexpr const char* name = NAME;                                                  \
  static constexpr UnaryOp kernel = KERNEL;                                                  \
  static constexpr SaveWhat save = SAVE;                                                     \
  static constexpr bool pointwise = true;                                                    \
  struct Attrs {};                                                                           \
  template <class N> static Var deriv(N& n, const Var& d) {                                  \
    if (!grad_enabled()) return fused_deriv(n, DERIV_KERNEL, d, name);                       \
    return composite(n, d);                                                                  \
  }                                                                                          \
  template <class N> static Grads vjp(N& n, const Var& g) { return Grads::of(deriv(n, g)); } \
  template <class N> static Var jvp(N& n, const Grads& t, int) { return deriv(n, t[0]); }

// A linear elementwise op is its own derivative map: JVP = op(t), VJP = op(g).
#define TG_LINEAR_UNARY_RULE(NAME, KERNEL)                                                          \
  static constexpr const char* name = NAME;                                                        \
  static constexpr UnaryOp kernel = KERNEL;                                                        \
  static constexpr SaveWhat save = SaveWhat::Nothing;                                              \
  static constexpr bool pointwise = true;                                                          \
  struct Attrs {};                                                                                 \
  template <class N> static Grads vjp(N& n, const Var& g) { return Grads::of(composite(n, g)); }  \
  template <class N> static Var jvp(N& n, const Grads& t, int) { return composite(n, t[0]); }

// A piecewise-constant op (spec deriv "0": floor, sign, ...): the VJP and JVP are zeros of
// the direction's shape, not d * 0 (NaN where d is inf; PyTorch's floor gives 0 there).
// Recorded (create_graph), where(false, d, 0): zeros still on d's graph, so x.grad is a
// Variable as every other op's, with derivative 0.
#define TG_ZERO_UNARY_RULE(NAME, KERNEL)                                                            \
  static constexpr const char* name = NAME;                                                        \
  static constexpr UnaryOp kernel = KERNEL;                                                        \
  static constexpr SaveWhat save = SaveWhat::Nothing;                                              \
  static constexpr bool pointwise = true;                                                          \
  struct Attrs {};                                                                                 \
  static Var zeros_of(const Var& d) {                                                              \
    if (grad_enabled()) return where(Tensor::zeros(d->shape(), DType::Bool), d, scalar(0, d));     \
    return constant(Tensor::zeros(d->shape(), d->dtype()));                                        \
  }                                                                                                \
  template <class N> static Grads vjp(N&, const Var& g) { return Grads::of(zeros_of(g)); }         \
  template <class N> static Var jvp(N&, const Grads& t, int) { return zeros_of(t[0]); }

// The identity map (spec deriv "1": positive, a copy): the direction passes through, as
// x - c's does (ScalarRule), with no pass over it.
#define TG_IDENTITY_UNARY_RULE(NAME, KERNEL)                                                         \
  static constexpr const char* name = NAME;                                                        \
  static constexpr UnaryOp kernel = KERNEL;                                                        \
  static constexpr SaveWhat save = SaveWhat::Nothing;                                              \
  static constexpr bool pointwise = true;                                                          \
  struct Attrs {};                                                                                 \
  template <class N> static Grads vjp(N&, const Var& g) { return Grads::of(Var(g)); }              \
  template <class N> static Var jvp(N&, const Grads& t, int) { return t[0]; }

// ----- h92-param: elementwise ops with float parameters (elu's alpha): Attrs keep the parameters;
// the first-order sweep runs kern::deriv_p's fused g * f'(s; p) where the direction has the saved
// value's shape (into its buffer when the sweep allows), else (batch axes, create_graph) the composite.
template <class N>
Var fused_deriv_p(N& n, UnaryOp op, const Var& d) {
  const Tensor& s = n.tensor(0);
  if (n.may_overwrite(d) && d->data.is_contiguous() && kern::deriv_p(op, d->data, d->data, s, n.attrs)) return d;
  if (d->data.shape != s.shape || d->dtype() != s.dtype) return nullptr;
  Tensor out = Tensor::empty(s.shape, s.dtype);
  return kern::deriv_p(op, out, d->data, s, n.attrs) ? constant(out) : nullptr;
}

template <class Rule>
Var param_unary_op(const Var& x, const kern::UnaryParams& p) {
  Recorder<Rule> r(kern::unary_p(Rule::kernel, x->data, p, Rule::name), {&x});
  if (r) {
    r.attrs() = p;
    if (Rule::save == SaveWhat::Input) r.save_input(x, 0);
    if (Rule::save == SaveWhat::Output) r.save_output();
  }
  return std::move(r.out);
}

#define TG_PARAM_UNARY_RULE(NAME, KERNEL, SAVE)                                               \
  static constexpr const char* name = NAME;                                                  \
  static constexpr UnaryOp kernel = KERNEL;                                                  \
  static constexpr SaveWhat save = SAVE;                                                     \
  static constexpr bool pointwise = true;                                                    \
  using Attrs = kern::UnaryParams;                                                           \
  template <class N> static Var deriv(N& n, const Var& d) {                                  \
    if (!grad_enabled())                                                                     \
      if (Var f = fused_deriv_p(n, KERNEL, d)) return f;                                     \
    return composite(n, d);                                                                  \
  }                                                                                          \
  template <class N> static Grads vjp(N& n, const Var& g) { return Grads::of(deriv(n, g)); } \
  template <class N> static Var jvp(N& n, const Grads& t, int) { return deriv(n, t[0]); }
}  // namespace

// The rules and public functions of the spec's elementwise ops (exp, tanh, ...).
#include "tapegrad_gen/elementwise_rules.inc"

namespace {
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
  // d masked in one pass (into d's buffer when the sweep allows), when
  // unrecorded and d is shaped as x with bounds of one element; else null.
  static Var fused(OpNode<ClipRule>& n, const Var& d) {
    if (grad_enabled() || !kern::clip_mask_is_fast(d->data, n.tensor(0), n.attrs.lo, n.attrs.hi)) return nullptr;
    const bool reuse = n.may_overwrite(d) && d->data.is_contiguous();
    Tensor out = kern::clip_mask(d->data, n.tensor(0), n.attrs.lo, n.attrs.hi, reuse ? d->data : Tensor(), name);
    return reuse ? d : constant(std::move(out));
  }
  static Grads vjp(OpNode<ClipRule>& n, const Var& g) {
    if (Var f = fused(n, g)) return Grads::of(std::move(f));
    int nb = n.batch_dims(g);
    return {sum_to(where(inside(n), g, scalar(0, g)), with_batch(g, nb, n.attrs.x_shape), nb)};
  }
  static Var jvp(OpNode<ClipRule>& n, const Grads& t, int nb) {
    if (Var f = fused(n, t[0])) return f;
    return where(inside(n), lift(t[0], nb, n.out_shape.size()), scalar(0, t[0]));
  }
};
}  // namespace

Var clip(const Var& x, const Tensor& lo, const Tensor& hi) {
  if (!lo.defined() && !hi.defined()) throw value_error("clip: one of a_min and a_max must be given");
  Recorder<ClipRule> r(kern::clip(x->data, lo, hi, "clip"), {&x});
  if (r) {
    r.attrs() = ClipRule::Attrs{lo, hi, x->shape()};
    r.save_input(x, 0);
  }
  return std::move(r.out);
}

namespace {
// astype: linear; the gradient converts back to the input dtype.
struct AstypeRule {
  static constexpr const char* name = "astype";
  static constexpr bool pointwise = true;
  struct Attrs { DType from = DType::F64, to = DType::F64; };
  static Grads vjp(OpNode<AstypeRule>& n, const Var& g) { return {astype(g, n.attrs.from)}; }
  static Var jvp(OpNode<AstypeRule>& n, const Grads& t, int) { return astype(t[0], n.attrs.to); }
};
}  // namespace

Var astype(const Var& x, DType dt) {
  if (!is_float(dt)) throw type_error(std::string("astype: dtype must be float32 or float64, got ") + dtype_name(dt));
  Recorder<AstypeRule> r(kern::astype(x->data, dt), {&x});
  if (r) r.attrs() = AstypeRule::Attrs{x->dtype(), dt};
  return std::move(r.out);
}

Var mul_const(const Var& x, const Tensor& c) { return mul(x, constant(c)); }

namespace {
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
}  // namespace

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

namespace {
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
  // ----- h99-scalar: 0-d operands and cotangent (scalar programs): the
  // gradients already have the inputs' shape (), which is all sum_to would
  // find (with_batch's Shape and the call were ~460 instructions a node).
  // (One named result, moved into: a braced list copies both references, a
  // second return statement costs a move of the whole SmallVec.)
  Grads out;
  if (n.out_shape.empty() && nb == 0 && (!ga || ga->data.shape.empty()) && (!gb || gb->data.shape.empty())) {
    out.push_back(std::move(ga));
    out.push_back(std::move(gb));
  } else {
    out.push_back(ga ? sum_to(ga, with_batch(g, nb, n.attrs.a_shape), nb) : nullptr);
    out.push_back(gb ? sum_to(gb, with_batch(g, nb, n.attrs.b_shape), nb) : nullptr);
  }
  return out;
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
}  // namespace

namespace {
// d(a + b) = da + db
struct AddRule { using Rule = AddRule; TG_BINARY_RULE("add")
  static void save(Recorder<Rule>&, const Var&, const Var&) {}
  static VarPair grads(OpNode<Rule>& n, const Var& g) { return {n.needs(0) ? g : nullptr, n.needs(1) ? g : nullptr}; }
  static Var tangent(OpNode<Rule>&, const Var& ta, const Var& tb) { return add_opt(ta, tb); } };
}  // namespace

Var add(const Var& a, const Var& b) { return binary_op<AddRule>(a, b, BinaryOp::Add); }

namespace {
// d(a - b) = da - db
struct SubRule { using Rule = SubRule; TG_BINARY_RULE("subtract")
  static void save(Recorder<Rule>&, const Var&, const Var&) {}
  static VarPair grads(OpNode<Rule>& n, const Var& g) { return {n.needs(0) ? g : nullptr, n.needs(1) ? negated(g) : nullptr}; }
  // (h99-scalar) -g; for a 0-d float g with nothing recorded or checked (no
  // create_graph, no anomaly mode), the -v neg()'s kernel computes, written
  // into a new 0-d without the op's dispatch (~680 -> ~150 instructions).
  static Var negated(const Var& g) {
    const Tensor& d = g->data;
    if (t_modes == 0 && d.shape.empty() && d.is_contiguous()) {
      if (d.dtype == DType::F64 || d.dtype == DType::F32) {  // (contiguous: data_ptr, not raw()'s outlined check)
        Tensor r = Tensor::empty(Shape(), d.dtype);
        if (d.dtype == DType::F64) *static_cast<double*>(r.data_ptr()) = -*static_cast<const double*>(d.data_ptr());
        else *static_cast<float*>(r.data_ptr()) = -*static_cast<const float*>(d.data_ptr());
        return make_var(std::move(r));
      }
    }
    return neg(g);
  }
  static Var tangent(OpNode<Rule>&, const Var& ta, const Var& tb) { return !tb ? ta : (!ta ? neg(tb) : sub(ta, tb)); } };
}  // namespace

Var sub(const Var& a, const Var& b) { return binary_op<SubRule>(a, b, BinaryOp::Sub); }

namespace {
// d(a b) = b da + a db
struct MulRule { using Rule = MulRule; TG_BINARY_RULE("multiply")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    // First order, 0-d (scalar programs): mul()'s bits, 1/3 the work. Not in anomaly mode, where mul() checks
    // each product as the user's op's backward (tests/test_anomaly.py).
    if (!(t_modes & (kGradMode | kAnomalyMode)) && g->data.shape.empty()) {
      const Tensor &a = n.tensor(0), &b = n.tensor(1), &d = g->data;
      if (a.shape.empty() && b.shape.empty() && a.dtype == d.dtype && b.dtype == d.dtype && a.is_contiguous() &&
          b.is_contiguous() && d.is_contiguous()) {
        // (contiguous: data_ptr, not raw()'s outlined check; h99-scalar)
        auto times = [&](const Tensor& x) -> Var {
          Tensor r = Tensor::empty(Shape(), d.dtype);
          if (d.dtype == DType::F64)
            *static_cast<double*>(r.data_ptr()) = *static_cast<const double*>(d.data_ptr()) * *static_cast<const double*>(x.data_ptr());
          else if (d.dtype == DType::F32)
            *static_cast<float*>(r.data_ptr()) = *static_cast<const float*>(d.data_ptr()) * *static_cast<const float*>(x.data_ptr());
          else return mul(g, constant(x));
          return make_var(std::move(r));
        };
        return {n.needs(0) ? times(b) : nullptr, n.needs(1) ? times(a) : nullptr};
      }
    }
    return {n.needs(0) ? mul(g, n.get(1)) : nullptr, n.needs(1) ? mul(g, n.get(0)) : nullptr};
  }
  static Var tangent(OpNode<Rule>& n, const Var& ta, const Var& tb) {
    return add_opt(ta ? mul(ta, n.get(1)) : nullptr, tb ? mul(n.get(0), tb) : nullptr);
  } };
}  // namespace

Var mul(const Var& a, const Var& b) { return binary_op<MulRule>(a, b, BinaryOp::Mul); }

namespace {
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
}  // namespace

Var div(const Var& a, const Var& b) { return binary_op<DivRule>(a, b, BinaryOp::Div); }

namespace {
// d(a^b) = b a^(b-1) da + log(a) a^b db; 0 where b == 0 (for da) and where a == 0, b >= 0 (for db).
// The factors are masked before d multiplies them, as PyTorch's pow_backward does (an inf d gives NaN
// there). The first-order sweep computes each factor in one kernel (PowBase, PowExp: the composite's
// bits) instead of 5-6 passes (sub, pow, mul, compare, where; log, mul, two compares, and, where).
struct PowRule { using Rule = PowRule; TG_BINARY_RULE("power")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); r.save_output(); }
  static bool fused(const Var& a, const Var& b) { return !grad_enabled() && a->dtype() == b->dtype(); }
  // d * factor, into the factor's fresh buffer when d does not broadcast it.
  static Var times(const Var& d, Tensor f) {
    if (d->dtype() != f.dtype || d->shape() != f.shape) return mul(d, constant(std::move(f)));
    kern::binary_inplace(BinaryOp::Mul, f, d->data, name);
    return constant(std::move(f));
  }
  // The partial derivatives times d (d broadcasts against them).
  static Var d_base(OpNode<Rule>& n, const Var& d) {
    Var a = n.get(0), b = n.get(1), zero = scalar(0, a);
    if (fused(a, b)) return times(d, kern::binary(BinaryOp::PowBase, a->data, b->data, name));
    Var v = mul(b, pow(a, sub(b, scalar(1, b))));
    return mul(d, where(kern::compare(CompareOp::Eq, b->data, zero->data, name), zero, v));
  }
  static Var d_exponent(OpNode<Rule>& n, const Var& d) {
    Var a = n.get(0), b = n.get(1), y = n.get(2), zero = scalar(0, a);
    if (fused(a, b)) return times(d, kern::binary(BinaryOp::PowExp, a->data, y->data, name));
    Var v = mul(y, log(a));
    Tensor a0 = kern::logical_and(kern::compare(CompareOp::Eq, a->data, zero->data, name),
                                  kern::compare(CompareOp::Ge, b->data, zero->data, name));
    return mul(d, where(a0, zero, v));
  }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    return {n.needs(0) ? d_base(n, g) : nullptr, n.needs(1) ? d_exponent(n, g) : nullptr};
  }
  static Var tangent(OpNode<Rule>& n, const Var& ta, const Var& tb) {
    return add_opt(ta ? d_base(n, ta) : nullptr, tb ? d_exponent(n, tb) : nullptr);
  } };
}  // namespace

Var pow(const Var& a, const Var& b) { return binary_op<PowRule>(a, b, BinaryOp::Pow); }

namespace {
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
}  // namespace

Var maximum(const Var& a, const Var& b) { return binary_op<MaximumRule>(a, b, BinaryOp::Maximum); }
Var minimum(const Var& a, const Var& b) { return binary_op<MinimumRule>(a, b, BinaryOp::Minimum); }

namespace {
// d atan2(a, b) = (b da - a db) / (a^2 + b^2). At the origin (0/0) the gradient is 0, as PyTorch's
// backward gives: a^2 + b^2 is replaced by 1 there, where b da - a db is 0 (also in the JVP).
struct Arctan2Rule { using Rule = Arctan2Rule; TG_BINARY_RULE("arctan2")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); }
  static Var r2(OpNode<Rule>& n) {
    Var a = n.get(0), b = n.get(1), zero = scalar(0, a);
    // (first order: one kernel, the same bits, instead of two compares, and, two products, sum, where)
    if (!grad_enabled() && a->dtype() == b->dtype()) return constant(kern::binary(BinaryOp::Atan2R2, a->data, b->data, name));
    Tensor origin = kern::logical_and(kern::compare(CompareOp::Eq, a->data, zero->data, name),
                                      kern::compare(CompareOp::Eq, b->data, zero->data, name));
    return where(origin, scalar(1, a), add(mul(a, a), mul(b, b)));
  }
  // d x / r; first order: divided in the product's own buffer (one allocation fewer).
  static Var quot(const Var& d, const Var& x, const Var& r) {
    if (grad_enabled() || d->dtype() != x->dtype() || x->dtype() != r->dtype()) return div(mul(d, x), r);
    Tensor t = kern::binary(BinaryOp::Mul, d->data, x->data, name);
    if (kern::broadcast_shapes(t.shape, r->shape(), name) != t.shape) return div(constant(std::move(t)), r);
    kern::binary_inplace(BinaryOp::Div, t, r->data, name);
    return constant(std::move(t));
  }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    Var r = r2(n);
    return {n.needs(0) ? quot(g, n.get(1), r) : nullptr, n.needs(1) ? neg(quot(g, n.get(0), r)) : nullptr};
  }
  static Var tangent(OpNode<Rule>& n, const Var& ta, const Var& tb) {
    Var r = r2(n);
    return add_opt(ta ? quot(ta, n.get(1), r) : nullptr, tb ? neg(quot(tb, n.get(0), r)) : nullptr);
  } };
}  // namespace

Var arctan2(const Var& a, const Var& b) { return binary_op<Arctan2Rule>(a, b, BinaryOp::Arctan2); }

namespace {
// ----- h90-binary: logaddexp, logaddexp2, hypot, fmax, fmin -----
// Each partial derivative is a weight w(a, b) times d: w for a, w with the operands swapped (or 1 - w)
// for b. First order: w in one kernel (the composite's bits) and d multiplied into its fresh buffer.
template <class Rule>
struct WeightedPair {
  static Var times(const Var& d, const Var& w) { return grad_enabled() ? mul(d, w) : PowRule::times(d, w->data); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    return {n.needs(0) ? times(g, Rule::weight(n, 0)) : nullptr, n.needs(1) ? times(g, Rule::weight(n, 1)) : nullptr};
  }
  static Var tangent(OpNode<Rule>& n, const Var& ta, const Var& tb) {
    return add_opt(ta ? times(ta, Rule::weight(n, 0)) : nullptr, tb ? times(tb, Rule::weight(n, 1)) : nullptr);
  }
  static bool fused(const Var& a, const Var& b) { return !grad_enabled() && a->dtype() == b->dtype(); }
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); }
};

// d logaddexp(a, b) = sigmoid(a - b) da + sigmoid(b - a) db (PyTorch's exp(a - out), without its
// cancellation); logaddexp2 the same with (a - b) ln 2. (a = b = +-inf: NaN, as PyTorch's.)
template <BinaryOp W>
struct LogaddexpRule : WeightedPair<LogaddexpRule<W>> {
  using Rule = LogaddexpRule; TG_BINARY_RULE(W == BinaryOp::LogaddexpWeight ? "logaddexp" : "logaddexp2")
  static Var weight(OpNode<Rule>& n, int i) {
    Var a = n.get(i), b = n.get(1 - i);
    if (WeightedPair<Rule>::fused(a, b)) return constant(kern::binary(W, a->data, b->data, name));
    Var d = sub(a, b);
    return sigmoid(W == BinaryOp::LogaddexpWeight ? d : scalar_op(d, 0.6931471805599453094, ScalarOp::Mul));
  } };

// d hypot(a, b) = (a da + b db) / hypot (0/0 = NaN at the origin, as PyTorch's grad * a / result).
struct HypotRule { using Rule = HypotRule; TG_BINARY_RULE("hypot")
  static void save(Recorder<Rule>& r, const Var& a, const Var& b) { r.save_input(a, 0); r.save_input(b, 1); r.save_output(); }
  static VarPair grads(OpNode<Rule>& n, const Var& g) {
    Var y = n.get(2);
    return {n.needs(0) ? Arctan2Rule::quot(g, n.get(0), y) : nullptr, n.needs(1) ? Arctan2Rule::quot(g, n.get(1), y) : nullptr};
  }
  static Var tangent(OpNode<Rule>& n, const Var& ta, const Var& tb) {
    Var y = n.get(2);
    return add_opt(ta ? Arctan2Rule::quot(ta, n.get(0), y) : nullptr, tb ? Arctan2Rule::quot(tb, n.get(1), y) : nullptr);
  } };

// d fmax(a, b): to the operand chosen (a NaN loses; both NaN: to a), ties split evenly as maximum's.
// The weights are constants (0, 1/2, 1): b's is 1 - a's, exactly.
template <BinaryOp W>
struct FextremumRule : WeightedPair<FextremumRule<W>> {
  using Rule = FextremumRule; TG_BINARY_RULE(W == BinaryOp::FmaxWeight ? "fmax" : "fmin")
  static Var weight(OpNode<Rule>& n, int i) {
    Tensor w = kern::binary(W, n.tensor(0), n.tensor(1), name);
    return constant(i == 0 ? w : kern::binary_scalar(BinaryOp::Sub, w, 1.0, true, name));
  } };
}  // namespace

Var logaddexp(const Var& a, const Var& b) {
  return binary_op<LogaddexpRule<BinaryOp::LogaddexpWeight>>(a, b, BinaryOp::Logaddexp);
}
Var logaddexp2(const Var& a, const Var& b) {
  return binary_op<LogaddexpRule<BinaryOp::Logaddexp2Weight>>(a, b, BinaryOp::Logaddexp2);
}
Var hypot(const Var& a, const Var& b) { return binary_op<HypotRule>(a, b, BinaryOp::Hypot); }
Var fmax(const Var& a, const Var& b) { return binary_op<FextremumRule<BinaryOp::FmaxWeight>>(a, b, BinaryOp::Fmax); }
Var fmin(const Var& a, const Var& b) { return binary_op<FextremumRule<BinaryOp::FminWeight>>(a, b, BinaryOp::Fmin); }

namespace {
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
}  // namespace

Var where(const Tensor& cond, const Var& a0, const Var& b0) {
  DType dt = promote(a0->dtype(), b0->dtype());
  Var a = a0->dtype() == dt ? a0 : astype(a0, dt);
  Var b = b0->dtype() == dt ? b0 : astype(b0, dt);
  Recorder<WhereRule> r(kern::where(cond, a->data, b->data, "where"), {&a, &b});
  if (r) r.attrs() = WhereRule::Attrs{cond, a->shape(), b->shape()};
  return std::move(r.out);
}

}  // namespace tg
