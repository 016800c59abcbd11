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

}  // namespace tg
