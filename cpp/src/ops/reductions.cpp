// Reductions and normalisers: sum, mean, max, min, logsumexp, softmax,
// log_softmax, and sum_to (the unbroadcast helper every binary rule uses).
// Each rule struct sits beside its public forward function.
#include "ops/common.hpp"

namespace tg {

namespace {
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

template <class Rule>
Var reduce_op(const Var& x, const std::optional<Axes>& axes, bool keepdims, Tensor (*kernel)(const Tensor&, const std::vector<bool>&),
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

Tensor sum_kernel(const Tensor& x, const std::vector<bool>& m) { return kern::reduce(ReduceOp::Sum, x, m, "sum"); }
Tensor max_kernel(const Tensor& x, const std::vector<bool>& m) { return kern::reduce(ReduceOp::Max, x, m, "max"); }
Tensor min_kernel(const Tensor& x, const std::vector<bool>& m) { return kern::reduce(ReduceOp::Min, x, m, "min"); }
}  // namespace

namespace {
// sum: linear. d sum(x) = sum(dx); its VJP broadcasts the cotangent back.
struct SumRule {
  static constexpr const char* name = "sum";
  using Attrs = ReduceAttrs;
  static Grads vjp(OpNode<SumRule>& n, const Var& g) { return {spread(g, n.batch_dims(g), n.attrs)}; }
  static Var jvp(OpNode<SumRule>& n, const Grads& t, int nb) { return reduce_tangent(n, t[0], nb); }
};
}  // namespace

Var sum(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  return reduce_op<SumRule>(x, axes, keepdims, sum_kernel, false);
}

namespace {
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
    if (!grad_enabled() && n.batch_dims(g) == 0) {  // first order: one count pass, one write pass
      Tensor d = kern::extremum_vjp(n.tensor(0), n.tensor(1), g->data, n.attrs.mask);
      if (d.defined()) return {constant(d)};
    }
    return {mul(spread(g, n.batch_dims(g), n.attrs), weight(n))};
  }
  static Var jvp(OpNode<ExtremumRule>& n, const Grads& t, int nb) { return reduce_tangent(n, mul(t[0], weight(n)), nb); }
};
}  // namespace

Var max(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  return reduce_op<ExtremumRule<ReduceOp::Max>>(x, axes, keepdims, max_kernel, true);
}
Var min(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  return reduce_op<ExtremumRule<ReduceOp::Min>>(x, axes, keepdims, min_kernel, true);
}

namespace {
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
}  // namespace

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

namespace {
struct AxisAttrs { int64_t axis = 0; };
// softmax and log_softmax follow PyTorch on a 0-d input: axis 0 or -1 treats
// it as one element (softmax 1, log_softmax 0); any other axis is refused.
static int64_t normalize_normaliser_axis(int64_t axis, int64_t ndim, const char* op) {
  if (ndim) return normalize_axis(axis, ndim, op);
  if (axis != 0 && axis != -1)
    throw value_error(std::string(op) + ": axis " + std::to_string(axis) +
                      " is out of bounds for a 0-d array (only 0 and -1 are accepted)");
  return 0;
}

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
  static Grads vjp(OpNode<SoftmaxRule>& n, const Var& g) {
    if (!grad_enabled() && n.batch_dims(g) == 0) {  // first order: the same arithmetic, one kernel
      Tensor d = kern::normaliser_vjp(n.tensor(0), g->data, n.attrs.axis, false);
      if (d.defined()) return {constant(d)};
    }
    return {apply(n, g, n.batch_dims(g))};
  }
  static Var jvp(OpNode<SoftmaxRule>& n, const Grads& t, int nb) { return apply(n, t[0], nb); }
};
}  // namespace

Var softmax(const Var& x, int64_t axis) {
  axis = normalize_normaliser_axis(axis, x->data.ndim(), "softmax");
  Recorder<SoftmaxRule> r(kern::softmax(x->data, axis), {&x});
  if (r) {
    r.attrs().axis = axis;
    r.save_output();
  }
  return std::move(r.out);
}

namespace {
// log_softmax: VJP g - softmax * sum(g); JVP t - sum(softmax * t).   (reads the output)
struct LogSoftmaxRule {
  static constexpr const char* name = "log_softmax";
  using Attrs = AxisAttrs;
  static Grads vjp(OpNode<LogSoftmaxRule>& n, const Var& g) {
    if (!grad_enabled() && n.batch_dims(g) == 0) {  // first order: the same arithmetic, one kernel
      Tensor d = kern::normaliser_vjp(n.tensor(0), g->data, n.attrs.axis, true);
      if (d.defined()) return {constant(d)};
    }
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
}  // namespace

Var log_softmax(const Var& x, int64_t axis) {
  axis = normalize_normaliser_axis(axis, x->data.ndim(), "log_softmax");
  Recorder<LogSoftmaxRule> r(kern::log_softmax(x->data, axis), {&x});
  if (r) {
    r.attrs().axis = axis;
    r.save_output();
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


// ---------------------------------------------------------------------------
// h88-scan: cumsum, cumprod, prod, var, std
// ---------------------------------------------------------------------------
namespace {
// axis None flattens x first (flat): the output is 1-d, its cotangent reshaped back.
struct ScanAttrs { int64_t axis = 0; bool reverse = false, flat = false; Shape in_shape; };

Tensor flat_tensor(const Tensor& x) { return x.contiguous().view(Shape{x.numel()}); }

// v shifted by d along axis (fwd: out_k = v_{k-d}; else out_k = v_{k+d}), the
// d vacated places `fill` (0 or 1). Differentiable (narrow, pad, concatenate).
Var shifted(const Var& v, int64_t axis, int64_t d, bool fwd, double fill) {
  const int64_t n = v->shape()[axis];
  Shape s = v->shape();
  if (d >= n) return constant(Tensor::full(s, v->dtype(), fill));
  Var kept = narrow(v, axis, fwd ? 0 : d, n - d);
  if (fill == 0) return pad_axis(kept, axis, fwd ? d : 0, n);
  s[axis] = d;
  Var ones = constant(Tensor::full(s, v->dtype(), fill));
  return fwd ? concatenate({ones, kept}, axis) : concatenate({kept, ones}, axis);
}

// z_k = b_k + a_k z_{k-1} (fwd; else z_k = b_k + a_k z_{k+1}) along the axis,
// by recursive doubling: log2(n) differentiable steps, no division (exact
// at zeros). a has x's shape, b `nb` more leading (batch) axes.
Var linrec(Var a, Var b, int64_t axis, int nb, bool fwd) {
  const int64_t n = a->shape()[axis];
  for (int64_t d = 1; d < n; d *= 2) {
    b = add(b, mul(a, shifted(b, axis + nb, d, fwd, 0)));
    if (2 * d < n) a = mul(a, shifted(a, axis, d, fwd, 1));
  }
  return b;
}

Var cumsum_dir(const Var& x, int64_t axis, bool reverse);

// d cumsum = cumsum(dx); its VJP the reversed cumsum of the cotangent.
struct CumsumRule {
  static constexpr const char* name = "cumsum";
  using Attrs = ScanAttrs;
  static Grads vjp(OpNode<CumsumRule>& n, const Var& g) {
    const int nb = n.batch_dims(g);
    Var r = cumsum_dir(g, n.attrs.axis + nb, !n.attrs.reverse);
    return {n.attrs.flat ? reshape(r, with_batch(g, nb, n.attrs.in_shape)) : r};
  }
  static Var jvp(OpNode<CumsumRule>& n, const Grads& t, int nb) {
    Var v = n.attrs.flat ? reshape(t[0], with_batch(t[0], nb, Shape{numel(n.attrs.in_shape)})) : t[0];
    return cumsum_dir(v, n.attrs.axis + nb, n.attrs.reverse);
  }
};

template <class Rule>
Var scan_op(const Var& x, int64_t axis, bool reverse, bool flat, bool prod) {
  Recorder<Rule> r(kern::scan(prod, flat ? flat_tensor(x->data) : x->data, axis, reverse), {&x});
  if (r) {
    r.attrs() = ScanAttrs{axis, reverse, flat, x->shape()};
    if (prod) {
      r.save_input(x, 0);
      r.save_output();
    }
  }
  return std::move(r.out);
}

Var cumsum_dir(const Var& x, int64_t axis, bool reverse) { return scan_op<CumsumRule>(x, axis, reverse, false, false); }

// The axis of a scan: None flattens (axis 0 of the 1-d view).
int64_t scan_axis(const Var& x, std::optional<int64_t> axis, const char* op) {
  return axis ? normalize_axis(*axis, x->data.ndim(), op) : 0;
}

// d cumprod, exact at zeros (no division by x), e_k = y_{k-1} (e_0 = 1):
//   VJP dx_k = e_k S_k with S_k = g_k + x_{k+1} S_{k+1};  JVP dy_j = x_j dy_{j-1} + e_j t_j.
// First order: one kernel (sequential per lane); under create_graph the same
// recurrences by doubling (linrec), differentiable.        (reads x and y)
struct CumprodRule {
  static constexpr const char* name = "cumprod";
  using Attrs = ScanAttrs;
  static Tensor xt(OpNode<CumprodRule>& n) { return n.attrs.flat ? flat_tensor(n.tensor(0)) : n.tensor(0); }
  static Var xv(OpNode<CumprodRule>& n) {
    Var x = n.get(0);
    return n.attrs.flat ? reshape(x, Shape{numel(n.attrs.in_shape)}) : x;
  }
  static Var deriv(OpNode<CumprodRule>& n, const Var& g, int nb, bool vjp) {
    const int64_t ax = n.attrs.axis;
    if (!grad_enabled()) return constant(kern::cumprod_deriv(xt(n), n.tensor(1), g->data, ax, vjp));
    Var x = xv(n), e = shifted(n.get(1), ax, 1, true, 1);
    if (vjp) return mul(e, linrec(shifted(x, ax, 1, false, 1), g, ax, nb, false));
    return linrec(x, mul(e, g), ax, nb, true);
  }
  static Grads vjp(OpNode<CumprodRule>& n, const Var& g) {
    const int nb = n.batch_dims(g);
    Var r = deriv(n, g, nb, true);
    return {n.attrs.flat ? reshape(r, with_batch(g, nb, n.attrs.in_shape)) : r};
  }
  static Var jvp(OpNode<CumprodRule>& n, const Grads& t, int nb) {
    Var v = n.attrs.flat ? reshape(t[0], with_batch(t[0], nb, Shape{numel(n.attrs.in_shape)})) : t[0];
    return deriv(n, v, nb, false);
  }
};
}  // namespace

Var cumsum(const Var& x, std::optional<int64_t> axis) {
  return scan_op<CumsumRule>(x, scan_axis(x, axis, "cumsum"), false, !axis, false);
}
Var cumprod(const Var& x, std::optional<int64_t> axis) {
  return scan_op<CumprodRule>(x, scan_axis(x, axis, "cumprod"), false, !axis, true);
}

namespace {
// d prod(x) / dx_i = the product of the other elements of x_i's run: the
// exclusive prefix times the exclusive suffix product (no division: exact
// at one, two or all zeros, as PyTorch's prod_backward).   (reads x)
struct ProdRule {
  static constexpr const char* name = "prod";
  using Attrs = ReduceAttrs;
  // That product in x's shape. First order: one kernel; under create_graph,
  // the prefix and suffix products by doubling (differentiable).
  static Var others(OpNode<ProdRule>& n, const Tensor* g) {
    const ReduceAttrs& a = n.attrs;
    if (!grad_enabled()) {
      Tensor gk = g ? g->contiguous().view(a.keep_shape) : Tensor::full(a.keep_shape, n.tensor(0).dtype, 1.0);
      return constant(kern::prod_vjp(n.tensor(0), gk, a.mask));
    }
    Axes perm, inv(a.mask.size());
    Shape ps;
    int64_t rows = 1, run = 1;
    for (int pass = 0; pass < 2; ++pass)
      for (size_t d = 0; d < a.mask.size(); ++d)
        if (a.mask[d] == (pass == 1)) {
          inv[d] = int64_t(perm.size());
          perm.push_back(int64_t(d));
          ps.push_back(a.in_shape[d]);
          (pass ? run : rows) *= a.in_shape[d];
        }
    Var xr = reshape(transpose(n.get(0), perm), Shape{rows, run});
    Var pre = shifted(xr, 1, 1, true, 1), suf = shifted(xr, 1, 1, false, 1);
    for (int64_t d = 1; d < run; d *= 2) {
      pre = mul(pre, shifted(pre, 1, d, true, 1));
      suf = mul(suf, shifted(suf, 1, d, false, 1));
    }
    return transpose(reshape(mul(pre, suf), ps), inv);
  }
  static Grads vjp(OpNode<ProdRule>& n, const Var& g) {
    const int nb = n.batch_dims(g);
    if (!grad_enabled() && nb == 0) return {others(n, &g->data)};
    return {mul(spread(g, nb, n.attrs), others(n, nullptr))};
  }
  static Var jvp(OpNode<ProdRule>& n, const Grads& t, int nb) { return reduce_tangent(n, mul(t[0], others(n, nullptr)), nb); }
};

// var and std: d var = 2 (x - mean) . dx / (N - ddof); d std = d var / (2 std).
// Where std is 0 (a constant input) its gradient is 0, as PyTorch's
// std_backward masks it (the old sqrt(var) composition gave 0 * inf = NaN). (reads x and y)
struct MomentAttrs : ReduceAttrs { double den = 0; Tensor mean; };
template <bool Root>
struct MomentsRule {
  static constexpr const char* name = Root ? "std" : "var";
  using Attrs = MomentAttrs;
  // d out / dx in x's shape: (x - mean) * 2 / den (var), / (den * std) (std).
  static Var weight(OpNode<MomentsRule>& n, const Tensor* g) {
    const MomentAttrs& a = n.attrs;
    if (!grad_enabled()) {
      const Tensor& x = n.tensor(0);
      Tensor gk = g ? g->contiguous().view(a.keep_shape) : Tensor::full(a.keep_shape, x.dtype, 1.0);
      Tensor m = a.mean;
      if (!m.defined()) kern::moments(x, a.mask, 0, false, &m);
      return constant(kern::moments_vjp(x, m, n.tensor(1).contiguous().view(a.keep_shape), gk, a.mask, a.den, Root));
    }
    Var x = n.get(0);
    Var d = sub(x, mean(x, shift_axes(a.mask, 0), true));
    if (!Root) return mul(d, scalar(2.0 / a.den, x));
    // 0 where std is 0; the denominator made 1 there first, so that no 0 / 0 reaches a higher order.
    Var y = reshape(n.get(1), a.keep_shape);
    Tensor zero = kern::compare(CompareOp::Eq, y->data, Tensor::scalar(0, y->dtype()), "std");
    Var w = div(d, mul(where(zero, scalar(1, y), y), scalar(a.den, x)));
    return where(zero, scalar(0, w), w);
  }
  static Grads vjp(OpNode<MomentsRule>& n, const Var& g) {
    const int nb = n.batch_dims(g);
    if (!grad_enabled() && nb == 0) return {weight(n, &g->data)};
    return {mul(spread(g, nb, n.attrs), weight(n, nullptr))};
  }
  static Var jvp(OpNode<MomentsRule>& n, const Grads& t, int nb) { return reduce_tangent(n, mul(t[0], weight(n, nullptr)), nb); }
};

template <bool Root>
Var moments_op(const Var& x, const std::optional<Axes>& axes, double ddof, bool keepdims) {
  std::vector<bool> mask = axes_mask(axes, x->data.ndim());
  Shape keep = keep_shape_of(x->shape(), mask);
  double count = 1;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) count *= double(x->shape()[d]);
  Tensor m;
  const bool want_mean = grad_enabled() && x->requires_grad;
  Tensor out = kern::moments(x->data, mask, ddof, Root, want_mean ? &m : nullptr);
  if (!keepdims) out = out.view(squeeze_shape(x->shape(), mask));
  Recorder<MomentsRule<Root>> r(std::move(out), {&x});
  if (r) {
    MomentAttrs& a = r.attrs();
    a.in_shape = x->shape();
    a.keep_shape = keep;
    a.mask = mask;
    a.den = std::max(count - ddof, 0.0);
    a.mean = m;
    r.save_input(x, 0);
    r.save_output();
  }
  return std::move(r.out);
}

}  // namespace

Var prod(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  std::vector<bool> mask = axes_mask(axes, x->data.ndim());
  Shape keep = keep_shape_of(x->shape(), mask);
  Tensor out = kern::prod(x->data, mask);
  if (!keepdims) out = out.view(squeeze_shape(x->shape(), mask));
  Recorder<ProdRule> r(std::move(out), {&x});
  if (r) {
    r.attrs() = ReduceAttrs{x->shape(), keep, mask};
    r.save_input(x, 0);
  }
  return std::move(r.out);
}
Var variance(const Var& x, const std::optional<Axes>& axes, double ddof, bool keepdims) {
  return moments_op<false>(x, axes, ddof, keepdims);
}
Var stddev(const Var& x, const std::optional<Axes>& axes, double ddof, bool keepdims) {
  return moments_op<true>(x, axes, ddof, keepdims);
}

// ----- h103-reduce: norm's sum of squares in one pass -----
namespace {
// d sum(x * x) = sum(2 x dx). The VJP as multiply(x, x)'s two VJPs add up: (g x) + (g x), that is
// (g x) * 2 exactly (not g (2 x): 2 x may overflow where g x does not).   (reads x)
struct SumSquaresRule {
  static constexpr const char* name = "norm";
  using Attrs = ReduceAttrs;
  static Grads vjp(OpNode<SumSquaresRule>& n, const Var& g) {
    return {mul(mul(spread(g, n.batch_dims(g), n.attrs), n.get(0)), scalar(2.0, g))};
  }
  static Var jvp(OpNode<SumSquaresRule>& n, const Grads& t, int nb) {
    return reduce_tangent(n, mul(mul(t[0], n.get(0)), scalar(2.0, t[0])), nb);
  }
};
}  // namespace

Var sum_squares(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  std::vector<bool> mask = axes_mask(axes, x->data.ndim());
  Tensor out = kern::sum_squares(x->data, mask);
  if (!out.defined()) return sum(mul(x, x), axes, keepdims);  // (leading axes: sum's own paths)
  if (!keepdims) out = out.view(squeeze_shape(x->shape(), mask));
  Recorder<SumSquaresRule> r(std::move(out), {&x});
  if (r) {
    r.attrs() = ReduceAttrs{x->shape(), keep_shape_of(x->shape(), mask), mask};
    r.save_input(x, 0);
  }
  return std::move(r.out);
}

}  // namespace tg
