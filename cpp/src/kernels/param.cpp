// h92-param: the parametrized elementwise ops' kernels (elu(x, alpha), leaky_relu(x, negative_slope)):
// simd/loops.hpp's unary_p and deriv_p loops through the ISA table, split across threads as unary().
#include "kernels/common.hpp"

namespace tg::kern {

Tensor unary_p(UnaryOp op, const Tensor& x0, const UnaryParams& p, const char* name) {
  TG_CONTIGUOUS(x, x0);
  if (!is_float(x.dtype)) throw type_error(std::string(name) + ": expected a float dtype, got " + dtype_name(x.dtype));
  Tensor y = Tensor::empty(x.shape, x.dtype);
  const IsaKernels& k = isa();
  if (y.numel() == 1) {  // 0-d: no thread split
    if (x.dtype == DType::F64) k.unary_p_f64(op, x.ptr<double>(), y.ptr<double>(), 1, p.p);
    else k.unary_p_f32(op, x.ptr<float>(), y.ptr<float>(), 1, p.p);
    return y;
  }
  parallel_for(x.numel(), unary_grain(op), [&](int64_t b, int64_t e) {
    if (x.dtype == DType::F32) k.unary_p_f32(op, x.ptr<float>() + b, y.ptr<float>() + b, e - b, p.p);
    else k.unary_p_f64(op, x.ptr<double>() + b, y.ptr<double>() + b, e - b, p.p);
  });
  return y;
}

bool deriv_p(UnaryOp op, const Tensor& out, const Tensor& g0, const Tensor& s0, const UnaryParams& p) {
  if (g0.shape != s0.shape || g0.dtype != s0.dtype || out.shape != g0.shape || out.dtype != g0.dtype ||
      !out.is_contiguous() || !is_float(g0.dtype))
    return false;
  TG_CONTIGUOUS(g, g0);
  TG_CONTIGUOUS(s, s0);
  const IsaKernels& k = isa();
  parallel_for(out.numel(), unary_grain(op), [&](int64_t b, int64_t e) {
    if (out.dtype == DType::F32)
      k.deriv_p_f32(op, out.ptr<float>() + b, g.ptr<float>() + b, s.ptr<float>() + b, e - b, p.p);
    else k.deriv_p_f64(op, out.ptr<double>() + b, g.ptr<double>() + b, s.ptr<double>() + b, e - b, p.p);
  });
  return true;
}

}  // namespace tg::kern
