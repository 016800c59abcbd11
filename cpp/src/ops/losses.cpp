// Fused losses: softmax cross-entropy against integer labels and the
// squared error against a constant target, each one primitive. Each rule
// struct sits beside its public forward function.
#include "ops/common.hpp"

namespace tg {

namespace {
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
      TG_CONTIGUOUS(gd, g->data);
      TG_DISPATCH_FLOAT(z.dtype, name, {
        const T* p = a.probs.ptr<T>();
        T* o = out.ptr<T>();
        const T* pg = gd.ptr<T>();
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
}  // namespace

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

namespace {
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
    TG_CONTIGUOUS(x, n.tensor(0));
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
}  // namespace

Var mse_loss(const Var& x, const Tensor& target0, bool mean) {
  if (!is_float(x->dtype()))
    throw type_error(std::string("mse_loss: input must be float32 or float64, got ") + dtype_name(x->dtype()));
  if (target0.shape != x->shape())
    throw value_error("mse_loss: input shape " + shape_str(x->shape()) + " and target shape " +
                      shape_str(target0.shape) + " differ");
  Tensor target = (target0.dtype == x->dtype() ? target0 : kern::astype(target0, x->dtype())).contiguous();
  const int64_t n = x->data.numel();
  // mean of nothing: NaN, as NumPy (below), a constant: the rules get scale 0 (1/0 made the JVP nan)
  const double scale = mean ? (n ? 1.0 / static_cast<double>(n) : 0.0) : 1.0;
  Tensor loss = Tensor::empty(Shape{}, x->dtype());
  TG_CONTIGUOUS(xd, x->data);
  TG_DISPATCH_FLOAT(x->dtype(), "mse_loss", {
    const T* px = xd.ptr<T>();
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

}  // namespace tg
