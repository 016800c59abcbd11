#include "tapegrad/optim.hpp"

#include <algorithm>
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

// A grad_scale s != 1 (tapegrad.distributed's 1/N, folded into the update
// so the average costs no pass of its own) is applied to the gradient in
// place, g = g * s, a cache-sized block at a time right before the update
// reads that block: .grad then holds the scaled gradient after the step,
// with the bits a separate g * s pass would give, and the gradient crosses
// memory once. The gradient must then be writeable and contiguous.
static void check_scaled(const Tensor& grad, double grad_scale, const char* op) {
  if (grad_scale == 1.0) return;
  if (!std::isfinite(grad_scale))
    throw value_error(std::string(op) + ": grad_scale must be finite, got " + std::to_string(grad_scale));
  if (grad.storage->readonly || !grad.is_contiguous())
    throw value_error(std::string(op) + ": grad_scale needs a writeable, contiguous gradient (shape " +
                      shape_str(grad.shape) + "): the scaled gradient is written back into it");
}

constexpr int64_t kScaleBlock = 2048;  // elements: 8-16 KB, in L1 when the update reads them

// update(j0, j1) runs the step over [j0, j1) after g[j0, j1) has been scaled.
template <class T, class F>
static void scaled_blocks(const kern::IsaKernels& k, T* g, T s, int64_t i0, int64_t i1, F update) {
  if (s == T(1)) return update(i0, i1);
  for (int64_t j0 = i0; j0 < i1; j0 += kScaleBlock) {
    const int64_t j1 = std::min(i1, j0 + kScaleBlock);
    if constexpr (sizeof(T) == 4)
      k.binary_f32(kern::BinaryOp::Mul, g + j0, 1, g + j0, 1, &s, 0, j1 - j0);
    else
      k.binary_f64(kern::BinaryOp::Mul, g + j0, 1, g + j0, 1, &s, 0, j1 - j0);
    update(j0, j1);
  }
}

void sgd_step(VariableImpl& p, const Tensor& grad, Tensor* buf, double lr, double momentum, bool nesterov,
              double weight_decay, double grad_scale) {
  check(p, grad, "the gradient", "SGD");
  check_scaled(grad, grad_scale, "SGD");
  if (buf) check(p, *buf, "the momentum buffer", "SGD");
  int64_t n = p.data.numel();
  const kern::IsaKernels& k = kern::isa();
  TG_CONTIGUOUS(gc, grad);
  TG_DISPATCH_FLOAT(p.dtype(), "SGD", {
    T* w = p.data.ptr<T>();
    T* g = const_cast<T*>(gc.ptr<T>());  // written only when scaled: then gc is grad itself (checked)
    T* b = buf ? buf->ptr<T>() : nullptr;
    auto run = [&](int64_t i0, int64_t i1) {
      scaled_blocks(k, g, T(grad_scale), i0, i1, [&](int64_t j0, int64_t j1) {
        T* bb = b ? b + j0 : nullptr;
        sgd_loop(k, w + j0, g + j0, bb, j1 - j0, T(lr), T(weight_decay), T(momentum), nesterov);
      });
    };
    parallel_for(n, kGrainElements, run);
  });
  p.data.bump_version();
  if (grad_scale != 1.0) grad.bump_version();
}

void adam_step(VariableImpl& p, const Tensor& grad, const Tensor& m, const Tensor& v, int64_t step, double lr,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled, double grad_scale) {
  const char* op = decoupled ? "AdamW" : "Adam";
  check(p, grad, "the gradient", op);
  check_scaled(grad, grad_scale, op);
  check(p, m, "the first-moment buffer", op);
  check(p, v, "the second-moment buffer", op);
  if (step < 1) throw value_error(std::string(op) + ": step must be >= 1");
  int64_t n = p.data.numel();
  const double c1 = 1.0 - std::pow(beta1, double(step)), c2 = 1.0 - std::pow(beta2, double(step));
  const kern::IsaKernels& k = kern::isa();
  TG_CONTIGUOUS(gc, grad);
  TG_DISPATCH_FLOAT(p.dtype(), op, {
    T* w = p.data.ptr<T>();
    T* g = const_cast<T*>(gc.ptr<T>());  // written only when scaled: then gc is grad itself (checked)
    T* mm = m.ptr<T>();
    T* vv = v.ptr<T>();
    const kern::AdamScalars<T> c{T(beta1), T(beta2), T(weight_decay), T(lr / c1), T(eps), T(1.0 / std::sqrt(c2)),
                                 T(1.0 - lr * weight_decay), decoupled};
    parallel_for(n, kGrainElements / 4, [&](int64_t i0, int64_t i1) {
      scaled_blocks(k, g, T(grad_scale), i0, i1, [&](int64_t j0, int64_t j1) {
        adam_loop(k, w + j0, g + j0, mm + j0, vv + j0, j1 - j0, c);
      });
    });
  });
  p.data.bump_version();
  if (grad_scale != 1.0) grad.bump_version();
}

}  // namespace tg::optim
