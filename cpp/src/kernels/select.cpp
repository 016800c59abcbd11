// Selection kernels: where, clip and its derivative mask; dtype conversion
// and bulk copies. The common cases (operands of one shape, 0-d operands or
// bounds) are one pass over contiguous data, split across the thread pool
// like the binary kernels; other broadcasts walk strides (nd_loop). Not in
// simd/: these loops are selects and conversions, whose results do not
// depend on the instruction set, so one compilation serves every ISA; the
// one-pass clip is the exception (simd/loops.hpp clip_run: at SSE2's width
// without a blend it was compute-bound).
#include <type_traits>

#include "kernels/common.hpp"
#include "simd/isa.hpp"

namespace tg::kern {

namespace {
// o[i] = c[i] ? a[i*sa] : b[i*sb] (sa, sb: 1 or 0 for a 0-d operand). Both
// operands are loaded unconditionally so that the compiler makes a
// branch-free select of it (a random condition would defeat a branch).
template <class T>
void select_run(T* o, const uint8_t* c, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) {
      const T x = a[i], y = b[i];
      o[i] = c[i] ? x : y;
    }
  } else if (sa == 1) {
    const T y = b[0];
    for (int64_t i = 0; i < n; ++i) {
      const T x = a[i];
      o[i] = c[i] ? x : y;
    }
  } else if (sb == 1) {
    const T x = a[0];
    for (int64_t i = 0; i < n; ++i) {
      const T y = b[i];
      o[i] = c[i] ? x : y;
    }
  } else {
    const T x = a[0], y = b[0];
    for (int64_t i = 0; i < n; ++i) o[i] = c[i] ? x : y;
  }
}
}  // namespace

Tensor where(const Tensor& cond0, const Tensor& a0, const Tensor& b0, const char* opname) {
  TG_CONTIGUOUS(cond, cond0); TG_CONTIGUOUS(a, a0); TG_CONTIGUOUS(b, b0);
  if (cond.dtype != DType::Bool) throw type_error(std::string(opname) + ": condition must be a bool array");
  check_same_float(a, b, opname);
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape, a.shape, opname), b.shape, opname);
  Tensor out = Tensor::empty(s, a.dtype);
  const uint8_t* pc = cond.ptr<uint8_t>();
  TG_DISPATCH_FLOAT(a.dtype, opname, {
    const T* pa = a.ptr<T>();
    const T* pb = b.ptr<T>();
    T* po = out.ptr<T>();
    const bool a_full = a.shape == s, b_full = b.shape == s;
    if (cond.shape == s && (a_full || a.numel() == 1) && (b_full || b.numel() == 1)) {
      // One pass: the condition at full size, each operand full or one element.
      const int64_t sa = a_full ? 1 : 0, sb = b_full ? 1 : 0;
      parallel_for(out.numel(), kGrainElements, [&](int64_t i0, int64_t i1) {
        select_run(po + i0, pc + i0, pa + i0 * sa, sa, pb + i0 * sb, sb, i1 - i0);
      });
    } else {
      std::array<std::vector<int64_t>, 4> st{contiguous_strides(s), broadcast_strides(cond.shape, s),
                                             broadcast_strides(a.shape, s), broadcast_strides(b.shape, s)};
      nd_loop<4>(s, st, [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& in) {
        for (int64_t i = 0; i < n; ++i)
          po[off[0] + i * in[0]] = pc[off[1] + i * in[1]] ? pa[off[2] + i * in[2]] : pb[off[3] + i * in[3]];
      });
    }
  });
  return out;
}

namespace {
// NumPy's maximum then minimum (a NaN operand wins, as in the binary
// kernels' Maximum/Minimum), so clip gives the same bits in one pass as the
// two ops would. has_lo / has_hi: a bound was given.
template <class T>
inline T clip_one(T x, T lo, T hi, bool has_lo, bool has_hi) {
  if (has_lo) x = (x > lo || x != x) ? x : lo;
  if (has_hi) x = (x < hi || x != x) ? x : hi;
  return x;
}

template <class T>
void clip_run(T* o, const T* x, T lo, T hi, bool has_lo, bool has_hi, int64_t n) {
  if (lo != lo || hi != hi) {  // a NaN bound (rare): clip_one's NaN rules as they stand
    for (int64_t i = 0; i < n; ++i) o[i] = clip_one(x[i], lo, hi, has_lo, has_hi);
    return;
  }
  // With bounds that are numbers, clip_one is x <= lo ? lo : x then x >= hi ?
  // hi : x (a NaN x compares false and stays; a missing bound is an infinity,
  // which changes no x): two compares and selects, the ISA loops' clip_run.
  const T inf = T(__builtin_inf());
  const T l = has_lo ? lo : -inf, h = has_hi ? hi : inf;
  if constexpr (std::is_same_v<T, float>) isa().clip_f32(o, x, n, l, h);
  else isa().clip_f64(o, x, n, l, h);
}

// The bounds are single elements (0-d, or any shape of one element that
// does not change the result's shape): the one-pass case.
bool scalar_bound(const Tensor& b, const Shape& x_shape) {
  return !b.defined() || (b.numel() == 1 && b.ndim() <= static_cast<int64_t>(x_shape.size()));
}

template <class T>
T bound_value(const Tensor& b) {
  if (!b.defined()) return T(0);
  TG_CONTIGUOUS(c, b);
  return c.ptr<T>()[0];
}
}  // namespace

Tensor clip(const Tensor& x0, const Tensor& lo, const Tensor& hi, const char* opname) {
  if (!scalar_bound(lo, x0.shape) || !scalar_bound(hi, x0.shape)) {
    // Array bounds: the two broadcasting kernels (the result may take the bounds' shape).
    Tensor out = x0;
    if (lo.defined()) out = binary(BinaryOp::Maximum, out, lo, opname);
    if (hi.defined()) out = binary(BinaryOp::Minimum, out, hi, opname);
    return out.storage == x0.storage ? out.clone() : out;
  }
  TG_CONTIGUOUS(x, x0);
  if ((lo.defined() && lo.dtype != x.dtype) || (hi.defined() && hi.dtype != x.dtype))
    throw type_error(std::string(opname) + ": the bounds' dtype must be the input's (the caller converts them)");
  Tensor out = Tensor::empty(x.shape, x.dtype);
  TG_DISPATCH_FLOAT(x.dtype, opname, {
    const T l = bound_value<T>(lo), h = bound_value<T>(hi);
    const bool has_lo = lo.defined(), has_hi = hi.defined();
    const T* px = x.ptr<T>();
    T* po = out.ptr<T>();
    parallel_for(x.numel(), kGrainElements,
                 [&](int64_t i0, int64_t i1) { clip_run(po + i0, px + i0, l, h, has_lo, has_hi, i1 - i0); });
  });
  return out;
}

bool clip_mask_is_fast(const Tensor& g, const Tensor& x, const Tensor& lo, const Tensor& hi) {
  return g.shape == x.shape && g.dtype == x.dtype && scalar_bound(lo, x.shape) && scalar_bound(hi, x.shape);
}

Tensor clip_mask(const Tensor& g0, const Tensor& x0, const Tensor& lo, const Tensor& hi, const Tensor& into,
                 const char* opname) {
  TG_CONTIGUOUS(g, g0); TG_CONTIGUOUS(x, x0);
  Tensor out = into.defined() ? into : Tensor::empty(g.shape, g.dtype);
  TG_DISPATCH_FLOAT(x.dtype, opname, {
    const T l = bound_value<T>(lo), h = bound_value<T>(hi);
    const bool has_lo = lo.defined(), has_hi = hi.defined();
    const T* pg = g.ptr<T>();
    const T* px = x.ptr<T>();
    T* po = out.ptr<T>();
    // The comparisons the two-kernel mask made (x >= lo, x <= hi; false for a
    // NaN x or bound); a missing bound is an infinity, true for every x but
    // NaN, which the other bound's test rejects anyway. & not &&, so that the
    // loop is branch-free and vectorizes: with && it branched on random data
    // (1M float32: 1.4x PyTorch's clip grad).
    const T inf = T(__builtin_inf());
    const T lo_v = has_lo ? l : -inf, hi_v = has_hi ? h : inf;
    parallel_for(x.numel(), kGrainElements, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const T xi = px[i], v = pg[i];
        po[i] = (xi >= lo_v) & (xi <= hi_v) ? v : T(0);
      }
    });
  });
  return out;
}

namespace {
template <class D, class S>
void convert_run(D* dst, const S* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<D>(src[i]);
}

template <class D>
void convert_to(D* dst, const Tensor& x) {
  const int64_t n = x.numel();
  // (Cheap per element, like an add: the binary kernels' grain.)
  parallel_for(n, kGrainElements, [&](int64_t b, int64_t e) {
    switch (x.dtype) {
      case DType::F32: convert_run(dst + b, x.ptr<float>() + b, e - b); break;
      case DType::F64: convert_run(dst + b, x.ptr<double>() + b, e - b); break;
      case DType::I64: convert_run(dst + b, x.ptr<int64_t>() + b, e - b); break;
      case DType::Bool: convert_run(dst + b, x.ptr<uint8_t>() + b, e - b); break;
    }
  });
}
}  // namespace

Tensor astype(const Tensor& x0, DType dt) {
  TG_CONTIGUOUS(x, x0);
  if (x.dtype == dt) return x.clone();
  Tensor out = Tensor::empty(x.shape, dt);
  switch (dt) {
    case DType::F32: convert_to(out.ptr<float>(), x); break;
    case DType::F64: convert_to(out.ptr<double>(), x); break;
    default: throw type_error(std::string("astype: cannot convert to ") + dtype_name(dt));
  }
  return out;
}

}  // namespace tg::kern
