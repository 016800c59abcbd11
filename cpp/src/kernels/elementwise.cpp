// Elementwise kernels: unary (the spec's ops, through the ISA's loops), binary with
// broadcasting, number operands, comparisons; and broadcast_shapes, the NumPy
// broadcast rule. (where, clip and dtype conversion: select.cpp.)
#include "kernels/common.hpp"

namespace tg::kern {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  if (a == b) return a;
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw value_error(std::string(op) + ": operands could not be broadcast together with shapes " +
                        shape_str(a) + " and " + shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Unary elementwise
// ---------------------------------------------------------------------------

// (noinline: the thread split's frame stays out of the 0-d path below)
__attribute__((noinline)) static void unary_loops(UnaryOp op, const Tensor& y, const Tensor& x) {
  const IsaKernels& k = isa();
  parallel_for(x.numel(), unary_grain(op), [&](int64_t b, int64_t e) {
    if (x.dtype == DType::F32) k.unary_f32(op, x.ptr<float>() + b, y.ptr<float>() + b, e - b);
    else k.unary_f64(op, x.ptr<double>() + b, y.ptr<double>() + b, e - b);
  });
}

Tensor unary(UnaryOp op, const Tensor& x0) {
  TG_CONTIGUOUS(x, x0);
  if (!is_float(x.dtype)) throw type_error(std::string("unary: expected a float dtype, got ") + dtype_name(x.dtype));
  Tensor y = Tensor::empty(x.shape, x.dtype);
  if (y.shape.empty()) {  // 0-d: one element, the same loop
    if (x.dtype == DType::F64) isa().unary_f64(op, x.ptr<double>(), y.ptr<double>(), 1);
    else isa().unary_f32(op, x.ptr<float>(), y.ptr<float>(), 1);
    return y;
  }
  unary_loops(op, y, x);
  return y;
}

// ---------------------------------------------------------------------------
// Binary elementwise with broadcasting
// ---------------------------------------------------------------------------

// One innermost run of a broadcast binary op, through the ISA's loops.
static inline void bin_run(BinaryOp op, float* o, int64_t so, const float* a, int64_t sa, const float* b, int64_t sb,
                           int64_t n) {
  isa().binary_f32(op, o, so, a, sa, b, sb, n);
}
static inline void bin_run(BinaryOp op, double* o, int64_t so, const double* a, int64_t sa, const double* b,
                           int64_t sb, int64_t n) {
  isa().binary_f64(op, o, so, a, sa, b, sb, n);
}

// Elements per thread chunk: pow, and a derivative kernel with a
// transcendental function (sin's g * cos(x)), cost ~8x an add per element.
static inline int64_t bin_grain(BinaryOp op) {
  switch (op) {
    case BinaryOp::Pow:
    case BinaryOp::PowBase:
    case BinaryOp::PowExp:
    case BinaryOp::LogaddexpWeight:
    case BinaryOp::Logaddexp2Weight:
    TG_SPEC_DERIV_COSTLY_CASES
      return kGrainElements / 8;
    default:
      return kGrainElements;
  }
}

template <class T>
static void bin_broadcast(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);

// Same shapes (the common case) inline; broadcasting in its own function,
// whose large frame a scalar op then does not pay for. always_inline: GCC's
// unit-wide inlining budget otherwise decides, and unrelated changes to the
// unit (a header's constructor) flip it.
template <class T>
__attribute__((always_inline)) static inline void bin_dispatch(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  if (a.shape == out.shape && b.shape == out.shape) {
    T* po = out.ptr<T>();
    const T* pa = a.ptr<T>();
    const T* pb = b.ptr<T>();
    const int64_t grain = bin_grain(op);
    parallel_for(out.numel(), grain, [&](int64_t s, int64_t e) { bin_run(op, po + s, 1, pa + s, 1, pb + s, 1, e - s); });
    return;
  }
  bin_broadcast<T>(op, out, a, b);
}

#include "kernels/rowbcast.hpp"  // h121-outer: col_by_row

template <class T>
static void bin_broadcast(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  T* po = out.ptr<T>();
  const T* pa = a.ptr<T>();
  const T* pb = b.ptr<T>();
  const int64_t grain = bin_grain(op);
  // One operand repeated along leading axes (a bias row): contiguous runs.
  auto suffix = [&](const Shape& s) {
    size_t lead = 0;
    while (lead < s.size() && s[lead] == 1) ++lead;
    size_t k = s.size() - lead;
    return k <= out.shape.size() && std::equal(s.begin() + lead, s.end(), out.shape.end() - k);
  };
  // (A single-element operand is left to the scalar-stride loops below.)
  if ((a.shape == out.shape && b.numel() > 1 && suffix(b.shape)) ||
      (b.shape == out.shape && a.numel() > 1 && suffix(a.shape))) {
    const bool a_full = a.shape == out.shape;
    const int64_t inner = a_full ? b.numel() : a.numel(), rows = out.numel() / inner;
    {
      parallel_for(rows, std::max<int64_t>(1, grain / inner), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          if (a_full) bin_run(op, po + r * inner, 1, pa + r * inner, 1, pb, 1, inner);
          else bin_run(op, po + r * inner, 1, pa, 1, pb + r * inner, 1, inner);
        }
      });
    }
    return;
  }
  // A column against a row (outer): the rows as below, the row operand kept out of 4K aliasing.
  if (col_by_row<T>(op, out, a, b, grain)) return;
  std::array<std::vector<int64_t>, 3> st{contiguous_strides(out.shape), broadcast_strides(a.shape, out.shape),
                                         broadcast_strides(b.shape, out.shape)};
  // Large broadcasts split along the first axis (each part is a smaller
  // broadcast over the rest).
  const Shape& shape = out.shape;
  int64_t rows = shape.empty() ? 1 : shape[0], row_size = rows ? out.numel() / rows : 0;
  auto part = [&](int64_t r0, int64_t r1) {
    Shape sub = shape;
    if (!sub.empty()) sub[0] = r1 - r0;
    nd_loop<3>(sub, st, [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& in) {
      int64_t o = r0 * (shape.empty() ? 0 : st[0][0]), ia = r0 * (shape.empty() ? 0 : st[1][0]),
              ib = r0 * (shape.empty() ? 0 : st[2][0]);
      bin_run(op, po + o + off[0], in[0], pa + ia + off[1], in[1], pb + ib + off[2], in[2], n);
    });
  };
  if (rows > 1 && row_size > 0) {
    parallel_for(rows, std::max<int64_t>(1, grain / row_size), part);
  } else {
    part(0, rows);
  }
}


Tensor binary(BinaryOp op, const Tensor& a0, const Tensor& b0, const char* opname) {
  TG_CONTIGUOUS(a, a0); TG_CONTIGUOUS(b, b0);
  check_same_float(a, b, opname);
  // (Same shapes, the common case, need no broadcast bookkeeping.)
  Tensor out = a.shape == b.shape ? Tensor::empty(a.shape, a.dtype)
                                  : Tensor::empty(broadcast_shapes(a.shape, b.shape, opname), a.dtype);
  TG_DISPATCH_FLOAT(a.dtype, opname, bin_dispatch<T>(op, out, a, b));
  return out;
}

// out = x op c (c_left: c op x) for op Add/Sub/Mul/Div; out may be x itself.
// (noinline: as unary_loops)
__attribute__((noinline)) static void scalar_loops(BinaryOp op, const Tensor& out, const Tensor& x, double c, bool c_left, const char* opname) {
  TG_DISPATCH_FLOAT(x.dtype, opname, {
    const T cv = static_cast<T>(c);
    T* po = out.ptr<T>();
    const T* px = x.ptr<T>();
    parallel_for(out.numel(), kGrainElements, [&](int64_t s, int64_t e) {
      if (c_left) bin_run(op, po + s, 1, &cv, 0, px + s, 1, e - s);
      else bin_run(op, po + s, 1, px + s, 1, &cv, 0, e - s);
    });
  });
}

// One element: one IEEE operation, as the loops do it (kept apart from the
// loops so that a scalar op pays for no stack frame of theirs).
template <class T>
static inline void scalar_one(BinaryOp op, T* po, const T* px, double c, bool c_left) {
  const T cv = static_cast<T>(c);
  const T a = c_left ? cv : px[0], b = c_left ? px[0] : cv;
  switch (op) {
    case BinaryOp::Add: po[0] = a + b; return;
    case BinaryOp::Sub: po[0] = a - b; return;
    case BinaryOp::Mul: po[0] = a * b; return;
    default: po[0] = a / b; return;  // Div (only these four reach here)
  }
}

static inline void scalar_into(BinaryOp op, const Tensor& out, const Tensor& x, double c, bool c_left,
                               const char* opname) {
  if (out.shape.empty()) {  // 0-d
    if (x.dtype == DType::F64) return scalar_one(op, out.ptr<double>(), x.ptr<double>(), c, c_left);
    if (x.dtype == DType::F32) return scalar_one(op, out.ptr<float>(), x.ptr<float>(), c, c_left);
  }
  scalar_loops(op, out, x, c, c_left, opname);
}

Tensor binary_scalar(BinaryOp op, const Tensor& x0, double c, bool c_left, const char* opname) {
  TG_CONTIGUOUS(x, x0);
  Tensor out = Tensor::empty(x.shape, x.dtype);
  scalar_into(op, out, x, c, c_left, opname);
  return out;
}

void binary_scalar_inplace(BinaryOp op, const Tensor& x, double c) {
  if (!x.is_contiguous()) return write_through(x, binary_scalar(op, x, c, false, "backward"), "backward");
  scalar_into(op, x, x, c, false, "backward");
}

void binary_inplace(BinaryOp op, const Tensor& a, const Tensor& b0, const char* opname) {
  if (!a.is_contiguous()) {  // a view: updated in a dense copy, then written through
    Tensor t = a.contiguous_copy();
    binary_inplace(op, t, b0, opname);
    return write_through(a, t, opname);
  }
  const Tensor b = b0.storage == a.storage && (b0.offset != a.offset || !b0.is_contiguous()) ? b0.clone() : b0.contiguous();
  if (b.dtype == a.dtype && b.shape == a.shape) {  // the common case (no conversion, no broadcast; alias-safe)
    TG_DISPATCH_FLOAT(a.dtype, opname, bin_dispatch<T>(op, a, a, b));
    return;
  }
  Tensor bb = b.dtype == a.dtype ? b : astype(b, a.dtype);
  Shape s = broadcast_shapes(a.shape, bb.shape, opname);
  if (s != a.shape)
    throw value_error(std::string(opname) + ": cannot update a Variable of shape " + shape_str(a.shape) +
                      " in place with an operand of shape " + shape_str(b.shape) + " (the result would have shape " +
                      shape_str(s) + ")");
  // Elementwise update is alias-safe when b is a itself (same shape); a
  // broadcast view of a's own storage is copied first.
  if (bb.storage == a.storage && bb.shape != a.shape) bb = bb.clone();
  TG_DISPATCH_FLOAT(a.dtype, opname, bin_dispatch<T>(op, a, a, bb));
}

Tensor compare(CompareOp op, const Tensor& a0, const Tensor& b0, const char* opname) {
  TG_CONTIGUOUS(a, a0); TG_CONTIGUOUS(b, b0);
  check_same_float(a, b, opname);
  Shape s = broadcast_shapes(a.shape, b.shape, opname);
  Tensor out = Tensor::empty(s, DType::Bool);
  uint8_t* po = out.ptr<uint8_t>();
  TG_DISPATCH_FLOAT(a.dtype, opname, {
    const T* pa = a.ptr<T>();
    const T* pb = b.ptr<T>();
    std::array<std::vector<int64_t>, 3> st{contiguous_strides(s), broadcast_strides(a.shape, s), broadcast_strides(b.shape, s)};
    // (the op chosen outside the loop: a switch per element kept it scalar, 1.13x PyTorch's time at 1M)
    auto run = [&](auto f) {
      nd_loop<3>(s, st, [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& in) {
        uint8_t* o = po + off[0];
        const T* x = pa + off[1];
        const T* y = pb + off[2];
        if (in[0] == 1 && in[1] == 1 && in[2] == 1)
          for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
        else if (in[0] == 1 && in[1] == 1 && in[2] == 0)
          for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], *y);
        else
          for (int64_t i = 0; i < n; ++i) o[i * in[0]] = f(x[i * in[1]], y[i * in[2]]);
      });
    };
    switch (op) {
      case CompareOp::Eq: run([](T x, T y) -> uint8_t { return x == y; }); break;
      case CompareOp::Ne: run([](T x, T y) -> uint8_t { return x != y; }); break;
      case CompareOp::Lt: run([](T x, T y) -> uint8_t { return x < y; }); break;
      case CompareOp::Le: run([](T x, T y) -> uint8_t { return x <= y; }); break;
      case CompareOp::Gt: run([](T x, T y) -> uint8_t { return x > y; }); break;
      case CompareOp::Ge: run([](T x, T y) -> uint8_t { return x >= y; }); break;
    }
  });
  return out;
}

Tensor classify(ClassifyOp op, const Tensor& x0) {
  TG_CONTIGUOUS(x, x0);
  Tensor out = Tensor::empty(x.shape, DType::Bool);
  uint8_t* o = out.ptr<uint8_t>();
  const int64_t n = x.numel();
  TG_DISPATCH_FLOAT(x.dtype, "classify", {
    const T* p = x.ptr<T>();
    constexpr T inf = std::numeric_limits<T>::infinity();
    switch (op) {
      case ClassifyOp::IsNan: for (int64_t i = 0; i < n; ++i) o[i] = p[i] != p[i]; break;
      case ClassifyOp::IsInf: for (int64_t i = 0; i < n; ++i) o[i] = std::fabs(p[i]) == inf; break;
      case ClassifyOp::IsFinite: for (int64_t i = 0; i < n; ++i) o[i] = std::fabs(p[i]) < inf; break;
      case ClassifyOp::SignBit: for (int64_t i = 0; i < n; ++i) o[i] = std::signbit(p[i]); break;
    }
  });
  return out;
}

Tensor logical_and(const Tensor& a0, const Tensor& b0) {
  TG_CONTIGUOUS(a, a0); TG_CONTIGUOUS(b, b0);
  if (a.dtype != DType::Bool || b.dtype != DType::Bool) throw type_error("logical_and: expected bool masks");
  Shape s = broadcast_shapes(a.shape, b.shape, "logical_and");
  Tensor out = Tensor::empty(s, DType::Bool);
  const uint8_t* pa = a.ptr<uint8_t>();
  const uint8_t* pb = b.ptr<uint8_t>();
  uint8_t* po = out.ptr<uint8_t>();
  std::array<std::vector<int64_t>, 3> st{contiguous_strides(s), broadcast_strides(a.shape, s), broadcast_strides(b.shape, s)};
  nd_loop<3>(s, st, [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& in) {
    for (int64_t i = 0; i < n; ++i) po[off[0] + i * in[0]] = pa[off[1] + i * in[1]] && pb[off[2] + i * in[2]];
  });
  return out;
}

}  // namespace tg::kern
