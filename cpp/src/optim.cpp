#include "tapegrad/optim.hpp"

#include <cmath>
#include <string>

#include "tapegrad/parallel.hpp"

namespace tg::optim {

static void check(const VariableImpl& p, const Tensor& t, const char* what, const char* op) {
  if (!t.defined() || t.shape != p.shape() || t.dtype != p.dtype())
    throw value_error(std::string(op) + ": " + what + " must have the parameter's shape " + shape_str(p.shape()) +
                      " and dtype " + dtype_name(p.dtype()) +
                      (t.defined() ? ", got shape " + shape_str(t.shape) + " " + dtype_name(t.dtype) : ", got none"));
  if (p.data.storage->readonly) throw value_error(std::string(op) + ": the parameter is read-only");
}

void sgd_step(VariableImpl& p, const Tensor& grad, Tensor* buf, double lr, double momentum, bool nesterov,
              double weight_decay) {
  check(p, grad, "the gradient", "SGD");
  if (buf) check(p, *buf, "the momentum buffer", "SGD");
  int64_t n = p.data.numel();
  TG_DISPATCH_FLOAT(p.dtype(), "SGD", {
    T* w = p.data.ptr<T>();
    const T* g = grad.ptr<T>();
    T* b = buf ? buf->ptr<T>() : nullptr;
    const T lr_ = T(lr), mu = T(momentum), wd = T(weight_decay);
    parallel_for(n, kGrainElements, [&](int64_t i0, int64_t i1) {
      if (!b) {  // plain SGD: the loop the compiler vectorizes
        for (int64_t i = i0; i < i1; ++i) w[i] -= lr_ * (g[i] + wd * w[i]);
        return;
      }
      for (int64_t i = i0; i < i1; ++i) {
        T d = g[i] + wd * w[i];
        b[i] = mu * b[i] + d;
        d = nesterov ? d + mu * b[i] : b[i];
        w[i] -= lr_ * d;
      }
    });
  });
  p.data.bump_version();
}

void adam_step(VariableImpl& p, const Tensor& grad, const Tensor& m, const Tensor& v, int64_t step, double lr,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
  const char* op = decoupled ? "AdamW" : "Adam";
  check(p, grad, "the gradient", op);
  check(p, m, "the first-moment buffer", op);
  check(p, v, "the second-moment buffer", op);
  if (step < 1) throw value_error(std::string(op) + ": step must be >= 1");
  int64_t n = p.data.numel();
  const double c1 = 1.0 - std::pow(beta1, double(step)), c2 = 1.0 - std::pow(beta2, double(step));
  TG_DISPATCH_FLOAT(p.dtype(), op, {
    T* w = p.data.ptr<T>();
    const T* g = grad.ptr<T>();
    T* mm = m.ptr<T>();
    T* vv = v.ptr<T>();
    const T b1 = T(beta1), b2 = T(beta2), wd = T(weight_decay), step_size = T(lr / c1), e = T(eps);
    const T rc2 = T(1.0 / std::sqrt(c2)), decay = T(1.0 - lr * weight_decay);
    parallel_for(n, kGrainElements / 4, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        T gi = decoupled ? g[i] : g[i] + wd * w[i];
        if (decoupled) w[i] *= decay;
        mm[i] = b1 * mm[i] + (T(1) - b1) * gi;
        vv[i] = b2 * vv[i] + (T(1) - b2) * gi * gi;
        w[i] -= step_size * mm[i] / (std::sqrt(vv[i]) * rc2 + e);
      }
    });
  });
  p.data.bump_version();
}

}  // namespace tg::optim
