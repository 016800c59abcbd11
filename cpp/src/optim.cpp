#include "tapegrad/optim.hpp"

#include <cmath>
#include <string>

#include "simd/isa.hpp"
#include "tapegrad/parallel.hpp"


namespace tg::optim {

static void check(const VariableImpl& p, const Tensor& t, const char* what, const char* op) {
  if (!t.defined() || t.shape != p.shape() || t.dtype != p.dtype())
    throw value_error(std::string(op) + ": " + what + " must have the parameter's shape " + shape_str(p.shape()) +
                      " and dtype " + dtype_name(p.dtype()) +
                      (t.defined() ? ", got shape " + shape_str(t.shape) + " " + dtype_name(t.dtype) : ", got none"));
  if (p.data.storage->readonly) throw value_error(std::string(op) + ": the parameter is read-only");
  // The fused loops write flat arrays: a parameter or buffer that is a view
  // (a transpose, a strided slice, a broadcast) is refused, never updated in
  // a copy. (A gradient is only read: the steps take its contiguous().)
  const bool written = std::string(what) != "the gradient";
  if (!p.data.is_contiguous() || (written && !t.is_contiguous()))
    throw value_error(std::string(op) + ": the parameter (shape " + shape_str(p.shape()) + ") or " + what +
                      " is a non-contiguous view: optimize a contiguous Variable");
}

// The loops themselves are in simd/loops.hpp, compiled per instruction set.
static void sgd_loop(const kern::IsaKernels& k, float* w, const float* g, float* b, int64_t n, float lr, float wd,
                     float mu, bool nesterov) {
  k.sgd_f32(w, g, b, n, lr, wd, mu, nesterov);
}
static void sgd_loop(const kern::IsaKernels& k, double* w, const double* g, double* b, int64_t n, double lr, double wd,
                     double mu, bool nesterov) {
  k.sgd_f64(w, g, b, n, lr, wd, mu, nesterov);
}
static void adam_loop(const kern::IsaKernels& k, float* w, const float* g, float* m, float* v, int64_t n,
                      const kern::AdamScalars<float>& c) {
  k.adam_f32(w, g, m, v, n, c);
}
static void adam_loop(const kern::IsaKernels& k, double* w, const double* g, double* m, double* v, int64_t n,
                      const kern::AdamScalars<double>& c) {
  k.adam_f64(w, g, m, v, n, c);
}

void sgd_step(VariableImpl& p, const Tensor& grad, Tensor* buf, double lr, double momentum, bool nesterov,
              double weight_decay) {
  check(p, grad, "the gradient", "SGD");
  if (buf) check(p, *buf, "the momentum buffer", "SGD");
  int64_t n = p.data.numel();
  const kern::IsaKernels& k = kern::isa();
  TG_CONTIGUOUS(gc, grad);
  TG_DISPATCH_FLOAT(p.dtype(), "SGD", {
    T* w = p.data.ptr<T>();
    const T* g = gc.ptr<T>();
    T* b = buf ? buf->ptr<T>() : nullptr;
    auto run = [&](int64_t i0, int64_t i1) {
      T* bb = b ? b + i0 : nullptr;
      sgd_loop(k, w + i0, g + i0, bb, i1 - i0, T(lr), T(weight_decay), T(momentum), nesterov);
    };
    parallel_for(n, kGrainElements, run);
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
  const kern::IsaKernels& k = kern::isa();
  TG_CONTIGUOUS(gc, grad);
  TG_DISPATCH_FLOAT(p.dtype(), op, {
    T* w = p.data.ptr<T>();
    const T* g = gc.ptr<T>();
    T* mm = m.ptr<T>();
    T* vv = v.ptr<T>();
    const kern::AdamScalars<T> c{T(beta1), T(beta2), T(weight_decay), T(lr / c1), T(eps), T(1.0 / std::sqrt(c2)),
                                 T(1.0 - lr * weight_decay), decoupled};
    parallel_for(n, kGrainElements / 4, [&](int64_t i0, int64_t i1) {
      adam_loop(k, w + i0, g + i0, mm + i0, vv + i0, i1 - i0, c);
    });
  });
  p.data.bump_version();
}

}  // namespace tg::optim
