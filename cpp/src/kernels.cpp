#include "tapegrad/kernels.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include <cblas.h>

#include "simd/isa.hpp"
#include "tapegrad/parallel.hpp"

namespace tg::kern {

// ---------------------------------------------------------------------------
// Broadcasting iteration
// ---------------------------------------------------------------------------

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

// Element strides of a contiguous `in` broadcast to `out` (0 on broadcast axes).
static std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t acc = 1;
  size_t off = out.size() - in.size();
  for (size_t i = in.size(); i-- > 0;) {
    st[i + off] = in[i] == 1 ? 0 : acc;
    acc *= in[i];
  }
  return st;
}

static std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// Walks `shape` with N operands given by element strides, merging axes that
// are contiguous for every operand, and calls
//   f(const std::array<int64_t,N>& offsets, int64_t n, const std::array<int64_t,N>& inner_strides)
// once per innermost run.
template <size_t N, class F>
static void nd_loop(const Shape& shape, std::array<std::vector<int64_t>, N> strides, F&& f) {
  if (numel(shape) == 0) return;
  // Drop size-1 axes and merge axis d into d+1 when contiguous for all operands.
  Shape sh;
  std::array<std::vector<int64_t>, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!sh.empty()) {
      bool merge = true;
      for (size_t k = 0; k < N; ++k)
        if (st[k].back() != strides[k][d] * shape[d]) { merge = false; break; }
      if (merge) {
        sh.back() *= shape[d];
        for (size_t k = 0; k < N; ++k) st[k].back() = strides[k][d];
        continue;
      }
    }
    sh.push_back(shape[d]);
    for (size_t k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
  }
  std::array<int64_t, N> off{};
  std::array<int64_t, N> inner{};
  if (sh.empty()) {
    f(off, int64_t(1), inner);
    return;
  }
  size_t nd = sh.size();
  int64_t n = sh[nd - 1];
  for (size_t k = 0; k < N; ++k) inner[k] = st[k][nd - 1];
  if (nd == 1) {
    f(off, n, inner);
    return;
  }
  std::vector<int64_t> idx(nd - 1, 0);
  int64_t outer = numel(Shape(sh.begin(), sh.end() - 1));
  for (int64_t o = 0; o < outer; ++o) {
    f(off, n, inner);
    for (size_t d = nd - 1; d-- > 0;) {
      if (++idx[d] < sh[d]) {
        for (size_t k = 0; k < N; ++k) off[k] += st[k][d];
        break;
      }
      for (size_t k = 0; k < N; ++k) off[k] -= st[k][d] * (sh[d] - 1);
      idx[d] = 0;
    }
  }
}

// ---------------------------------------------------------------------------
// Unary elementwise
// ---------------------------------------------------------------------------

// Transcendental functions cost ~10x an add per element: split them sooner.
// (The spec's `cost` field; the thresholds are tested at their edges in
// tests/test_kernels_fastpaths.py.)
static int64_t unary_grain(UnaryOp op) {
  switch (op) {
    TG_SPEC_UNARY_COSTLY_CASES
      return kGrainElements / 8;
    default:
      return kGrainElements;
  }
}

// (noinline: the thread split's frame stays out of the 0-d path below)
__attribute__((noinline)) static void unary_loops(UnaryOp op, const Tensor& y, const Tensor& x) {
  const IsaKernels& k = isa();
  parallel_for(x.numel(), unary_grain(op), [&](int64_t b, int64_t e) {
    if (x.dtype == DType::F32) k.unary_f32(op, x.ptr<float>() + b, y.ptr<float>() + b, e - b);
    else k.unary_f64(op, x.ptr<double>() + b, y.ptr<double>() + b, e - b);
  });
}

Tensor unary(UnaryOp op, const Tensor& x) {
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

// Elements per thread chunk: pow, and a derivative kernel that calls libm
// (sin's g * cos(x)), cost ~8x an add per element.
static inline int64_t bin_grain(BinaryOp op) {
  switch (op) {
    case BinaryOp::Pow:
    TG_SPEC_DERIV_COSTLY_CASES
      return kGrainElements / 8;
    default:
      return kGrainElements;
  }
}

template <class T>
static void bin_broadcast(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);

// Same shapes (the common case) inline; broadcasting in its own function,
// whose large frame a scalar op then does not pay for.
template <class T>
static inline void bin_dispatch(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
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

static void check_same_float(const Tensor& a, const Tensor& b, const char* opname) {
  if (a.dtype != b.dtype || !is_float(a.dtype))
    throw type_error(std::string(opname) + ": dtypes " + dtype_name(a.dtype) + " and " + dtype_name(b.dtype) +
                     " do not match (the caller promotes first)");
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* opname) {
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

Tensor binary_scalar(BinaryOp op, const Tensor& x, double c, bool c_left, const char* opname) {
  Tensor out = Tensor::empty(x.shape, x.dtype);
  scalar_into(op, out, x, c, c_left, opname);
  return out;
}

void binary_scalar_inplace(BinaryOp op, const Tensor& x, double c) { scalar_into(op, x, x, c, false, "backward"); }

void binary_inplace(BinaryOp op, const Tensor& a, const Tensor& b, const char* opname) {
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

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b, const char* opname) {
  check_same_float(a, b, opname);
  Shape s = broadcast_shapes(a.shape, b.shape, opname);
  Tensor out = Tensor::empty(s, DType::Bool);
  uint8_t* po = out.ptr<uint8_t>();
  TG_DISPATCH_FLOAT(a.dtype, opname, {
    const T* pa = a.ptr<T>();
    const T* pb = b.ptr<T>();
    std::array<std::vector<int64_t>, 3> st{contiguous_strides(s), broadcast_strides(a.shape, s), broadcast_strides(b.shape, s)};
    nd_loop<3>(s, st, [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& in) {
      for (int64_t i = 0; i < n; ++i) {
        T x = pa[off[1] + i * in[1]], y = pb[off[2] + i * in[2]];
        bool r = false;
        switch (op) {
          case CompareOp::Eq: r = x == y; break;
          case CompareOp::Ne: r = x != y; break;
          case CompareOp::Lt: r = x < y; break;
          case CompareOp::Le: r = x <= y; break;
          case CompareOp::Gt: r = x > y; break;
          case CompareOp::Ge: r = x >= y; break;
        }
        po[off[0] + i * in[0]] = r;
      }
    });
  });
  return out;
}

Tensor logical_and(const Tensor& a, const Tensor& b) {
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

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b, const char* opname) {
  if (cond.dtype != DType::Bool) throw type_error(std::string(opname) + ": condition must be a bool array");
  check_same_float(a, b, opname);
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape, a.shape, opname), b.shape, opname);
  Tensor out = Tensor::empty(s, a.dtype);
  const uint8_t* pc = cond.ptr<uint8_t>();
  TG_DISPATCH_FLOAT(a.dtype, opname, {
    const T* pa = a.ptr<T>();
    const T* pb = b.ptr<T>();
    T* po = out.ptr<T>();
    std::array<std::vector<int64_t>, 4> st{contiguous_strides(s), broadcast_strides(cond.shape, s),
                                           broadcast_strides(a.shape, s), broadcast_strides(b.shape, s)};
    nd_loop<4>(s, st, [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& in) {
      for (int64_t i = 0; i < n; ++i)
        po[off[0] + i * in[0]] = pc[off[1] + i * in[1]] ? pa[off[2] + i * in[2]] : pb[off[3] + i * in[3]];
    });
  });
  return out;
}

// ---------------------------------------------------------------------------
// Reductions (keepdims form)
// ---------------------------------------------------------------------------

// Elements per partial sum of a large total reduction.
constexpr int64_t kSumChunk = 65536;
static inline double isa_sum(const float* a, int64_t n) { return isa().sum_f32(a, n); }
static inline double isa_sum(const double* a, int64_t n) { return isa().sum_f64(a, n); }

// The two sums an MLP does most, on tensors below the threading threshold:
// over leading axes (bias gradients: column sums of a (rows, cols) view)
// and over trailing axes (row sums). Axes of size 1 do not count. Same
// arithmetic, in the same order, as the general path below gives for these
// layouts (it merges such axes into one run), without its stride vectors.
// Returns false when x is not one of these cases.
static bool sum_rows_or_columns(const Tensor& x, const std::vector<bool>& axes, Tensor& out) {
  const int64_t total = x.numel();
  if (total == 0 || total >= 2 * kGrainElements) return false;
  int64_t reduced = 1, kept = 1;
  bool seen_kept = false, seen_reduced = false, leading = true, trailing = true;
  for (size_t d = 0; d < axes.size(); ++d) {
    if (x.shape[d] == 1) continue;
    if (axes[d]) {
      reduced *= x.shape[d];
      leading = leading && !seen_kept;
      seen_reduced = true;
    } else {
      kept *= x.shape[d];
      trailing = trailing && !seen_reduced;
      seen_kept = true;
    }
  }
  if (!seen_reduced || !seen_kept) return false;  // nothing to add up, or a total sum (the general path)
  TG_DISPATCH_FLOAT(x.dtype, "sum", {
    const T* a = x.ptr<T>();
    T* o = out.ptr<T>();
    if (leading) {  // o[c] = sum over rows r of a[r, c], rows in order
      const int64_t R = reduced, C = kept;
      for (int64_t c = 0; c < C; ++c) o[c] = T(0);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t c = 0; c < C; ++c) o[c] += a[r * C + c];
      return true;
    }
    if (trailing) {  // o[r] = sum of row r, accumulated in double
      const int64_t R = kept, C = reduced;
      for (int64_t r = 0; r < R; ++r) o[r] = T(isa_sum(a + r * C, C));
      return true;
    }
  });
  return false;
}

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<bool>& axes, const char* opname) {
  Shape out_shape = x.shape;
  for (size_t d = 0; d < axes.size(); ++d)
    if (axes[d]) {
      if (x.shape[d] == 0 && op != ReduceOp::Sum)
        throw value_error(std::string(opname) + ": zero-size reduction along axis " + std::to_string(d) +
                          " of shape " + shape_str(x.shape) + " has no identity");
      out_shape[d] = 1;
    }
  Tensor out = Tensor::empty(out_shape, x.dtype);
  if (op == ReduceOp::Sum && sum_rows_or_columns(x, axes, out)) return out;
  TG_DISPATCH_FLOAT(x.dtype, opname, {
    T* po = out.ptr<T>();
    const T* px = x.ptr<T>();
    int64_t on = out.numel();
    T init = op == ReduceOp::Sum ? T(0)
             : op == ReduceOp::Max ? -std::numeric_limits<T>::infinity()
                                   : std::numeric_limits<T>::infinity();
    for (int64_t i = 0; i < on; ++i) po[i] = init;
    std::vector<int64_t> ost = broadcast_strides(out_shape, x.shape);
    std::array<std::vector<int64_t>, 2> st{contiguous_strides(x.shape), ost};
    // float32 sums accumulate in double along the reduced run.
    using Acc = double;
    auto body = [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& in) {
      const T* a = px + off[0];
      T* o = po + off[1];
      int64_t sa = in[0], so = in[1];
      if (op == ReduceOp::Sum) {
        if (so == 0 && sa == 1) {
          *o = T(Acc(*o) + isa_sum(a, n));
        } else if (so == 0) {
          Acc s0 = 0;
          for (int64_t i = 0; i < n; ++i) s0 += a[i * sa];
          *o = T(Acc(*o) + s0);
        } else if (sa == 1 && so == 1) {
          for (int64_t i = 0; i < n; ++i) o[i] += a[i];
        } else {
          for (int64_t i = 0; i < n; ++i) o[i * so] += a[i * sa];
        }
      } else if (op == ReduceOp::Max) {
        for (int64_t i = 0; i < n; ++i) {
          T v = a[i * sa];
          T& r = o[i * so];
          if (v > r || v != v) r = v;  // once r is NaN nothing compares greater: NaN sticks
        }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          T v = a[i * sa];
          T& r = o[i * so];
          if (v < r || v != v) r = v;
        }
      }
    };
    const int64_t nd = x.ndim(), total = x.numel();
    const bool all_axes = std::all_of(axes.begin(), axes.end(), [](bool b) { return b; });
    if (nd > 0 && !axes[nd - 1] && x.shape[nd - 1] > 1 && total >= 2 * kGrainElements) {
      // The last axis is kept: threads take disjoint column ranges.
      const int64_t cols = x.shape[nd - 1];
      parallel_for(cols, std::max<int64_t>(1, kGrainElements * cols / total), [&](int64_t c0, int64_t c1) {
        Shape sub = x.shape;
        sub[nd - 1] = c1 - c0;
        nd_loop<2>(sub, st, [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& in) {
          body({off[0] + c0, off[1] + c0 * ost[nd - 1]}, n, in);
        });
      });
    } else if (op == ReduceOp::Sum && all_axes && total >= 2 * kSumChunk) {
      // A large total: partial sums over fixed chunks (the same rounding
      // whatever the thread count), added in order.
      const int64_t chunks = (total + kSumChunk - 1) / kSumChunk;
      std::vector<Acc> partial(chunks);
      parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c)
          partial[c] = isa_sum(px + c * kSumChunk, std::min(kSumChunk, total - c * kSumChunk));
      });
      Acc acc = 0;
      for (Acc p : partial) acc += p;
      *po = T(acc);
    } else {
      nd_loop<2>(x.shape, st, body);
    }
  });
  return out;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape, const char* opname) {
  Shape s = broadcast_shapes(x.shape, shape, opname);
  if (s != shape)
    throw value_error(std::string(opname) + ": cannot broadcast a Variable of shape " + shape_str(x.shape) +
                      " to shape " + shape_str(shape));
  if (x.shape == shape) return x.clone();
  Tensor out = Tensor::empty(shape, x.dtype);
  std::array<std::vector<int64_t>, 2> st{contiguous_strides(shape), broadcast_strides(x.shape, shape)};
  const char* px = static_cast<const char*>(x.raw());
  char* po = static_cast<char*>(out.raw());
  TG_DISPATCH_FLOAT(x.dtype, opname, {
    nd_loop<2>(shape, st, [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& in) {
      T* o = reinterpret_cast<T*>(po) + off[0];
      const T* a = reinterpret_cast<const T*>(px) + off[1];
      if (in[1] == 0) {
        T v = *a;
        for (int64_t i = 0; i < n; ++i) o[i * in[0]] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) o[i * in[0]] = a[i * in[1]];
      }
    });
  });
  return out;
}

Tensor transpose(const Tensor& x, const std::vector<int64_t>& perm) {
  Shape out_shape(perm.size());
  std::vector<int64_t> xs = contiguous_strides(x.shape);
  std::vector<int64_t> in_st(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    out_shape[i] = x.shape[perm[i]];
    in_st[i] = xs[perm[i]];
  }
  Tensor out = Tensor::empty(out_shape, x.dtype);
  std::array<std::vector<int64_t>, 2> st{contiguous_strides(out_shape), in_st};
  TG_DISPATCH_FLOAT(x.dtype, "transpose", {
    const T* px = x.ptr<T>();
    T* po = out.ptr<T>();
    nd_loop<2>(out_shape, st, [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& in) {
      for (int64_t i = 0; i < n; ++i) po[off[0] + i * in[0]] = px[off[1] + i * in[1]];
    });
  });
  return out;
}

Tensor astype(const Tensor& x, DType dt) {
  if (x.dtype == dt) return x.clone();
  Tensor out = Tensor::empty(x.shape, dt);
  int64_t n = x.numel();
  auto conv = [&](auto* dst) {
    using D = std::remove_pointer_t<decltype(dst)>;
    switch (x.dtype) {
      case DType::F32: { const float* s = x.ptr<float>(); for (int64_t i = 0; i < n; ++i) dst[i] = D(s[i]); break; }
      case DType::F64: { const double* s = x.ptr<double>(); for (int64_t i = 0; i < n; ++i) dst[i] = D(s[i]); break; }
      case DType::I64: { const int64_t* s = x.ptr<int64_t>(); for (int64_t i = 0; i < n; ++i) dst[i] = D(s[i]); break; }
      case DType::Bool: { const uint8_t* s = x.ptr<uint8_t>(); for (int64_t i = 0; i < n; ++i) dst[i] = D(s[i]); break; }
    }
  };
  switch (dt) {
    case DType::F32: conv(out.ptr<float>()); break;
    case DType::F64: conv(out.ptr<double>()); break;
    default: throw type_error(std::string("astype: cannot convert to ") + dtype_name(dt));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Matrix multiply: OpenBLAS GEMM with transpose flags (no materialized
// transposes); batches are folded into one GEMM where the layout allows.
// ---------------------------------------------------------------------------

// C (M x N) = op(A) op(B) + beta C, row-major; A is M x K (K x M if ta), B is K x N (N x K if tb).
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float beta,
                 float* C) {
  scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M),
                    blasint(N), blasint(K), 1.0f, A, blasint(ta ? M : K), B, blasint(tb ? K : N), beta, C, blasint(N));
}
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, const double* B, double beta,
                 double* C) {
  scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M),
                    blasint(N), blasint(K), 1.0, A, blasint(ta ? M : K), B, blasint(tb ? K : N), beta, C, blasint(N));
}

// beta is 0 (C is overwritten) or 1 (the product accumulates onto C).
template <class T>
static void gemm_checked(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C,
                         T beta = T(0)) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // the empty sum is 0 (BLAS may not touch C at all when K = 0)
    if (beta == T(0)) std::fill(C, C + M * N, T(0));
    return;
  }
  constexpr int64_t kMax = std::numeric_limits<blasint>::max();
  if (M > kMax || N > kMax || K > kMax)
    throw value_error("matmul: a dimension exceeds the BLAS's 32-bit index range (" + std::to_string(M) + ", " +
                      std::to_string(N) + ", " + std::to_string(K) + ")");
  gemm(ta, tb, M, N, K, A, B, beta, C);
}

static bool all_zero(const std::vector<int64_t>& v) {
  for (int64_t x : v)
    if (x) return false;
  return true;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  if (a.ndim() < 2 || b.ndim() < 2) throw value_error("matmul kernel: operands must have ndim >= 2");
  check_same_float(a, b, "matmul");
  int64_t ar = a.shape[a.ndim() - 2], ac = a.shape[a.ndim() - 1];
  int64_t br = b.shape[b.ndim() - 2], bc = b.shape[b.ndim() - 1];
  int64_t M = ta ? ac : ar, K = ta ? ar : ac;
  int64_t K2 = tb ? bc : br, N = tb ? br : bc;
  if (K != K2) {
    throw value_error("matmul: shapes " + shape_str(a.shape) + (ta ? "ᵀ" : "") + " and " + shape_str(b.shape) +
                      (tb ? "ᵀ" : "") + " are not aligned: " + std::to_string(K) + " (dim " +
                      std::to_string(ta ? a.ndim() - 2 : a.ndim() - 1) + " of the first) != " + std::to_string(K2) +
                      " (dim " + std::to_string(tb ? b.ndim() - 1 : b.ndim() - 2) + " of the second)");
  }
  Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  Shape batch = broadcast_shapes(ab, bb, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, a.dtype);
  int64_t a_mat = ar * ac, b_mat = br * bc, o_mat = M * N, nbatch = numel(batch);
  std::vector<int64_t> sa = broadcast_strides(ab, batch), sb = broadcast_strides(bb, batch);
  bool a_full = numel(ab) == nbatch, b_full = numel(bb) == nbatch;
  TG_DISPATCH_FLOAT(a.dtype, "matmul", {
    const T* pa = a.ptr<T>();
    const T* pb = b.ptr<T>();
    T* po = out.ptr<T>();
    if (nbatch == 0) {
      // an empty batch: nothing to write (the one-GEMM path below would write M*N elements)
    } else if (nbatch == 1) {
      gemm_checked<T>(ta, tb, M, N, K, pa, pb, po);
    } else if (!ta && a_full && all_zero(sb)) {
      // A batched, B shared: the batches stack into the rows of one GEMM.
      gemm_checked<T>(false, tb, nbatch * M, N, K, pa, pb, po);
    } else if (N == 1 && b_full && all_zero(sa)) {
      // A shared, B a batch of vectors: out (batch x M) = B (batch x K) op(A)^T.
      gemm_checked<T>(false, !ta, nbatch, M, K, pb, pa, po);
    } else {
      std::array<std::vector<int64_t>, 3> st{contiguous_strides(batch), sa, sb};
      nd_loop<3>(batch, st, [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& in) {
        for (int64_t i = 0; i < n; ++i)
          gemm_checked<T>(ta, tb, M, N, K, pa + (off[1] + i * in[1]) * a_mat, pb + (off[2] + i * in[2]) * b_mat,
                          po + (off[0] + i * in[0]) * o_mat);
      });
    }
  });
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (x.ndim() < 1 || w.ndim() != 2 || x.shape.back() != w.shape[0])
    throw value_error("linear kernel: expected x (..., K) and w (K, N), got " + shape_str(x.shape) + " and " +
                      shape_str(w.shape));
  check_same_float(x, w, "linear");
  const int64_t K = w.shape[0], N = w.shape[1];
  if (b.defined()) {
    check_same_float(x, b, "linear");
    if (b.shape != Shape{N}) throw value_error("linear kernel: bias must have shape (N,)");
  }
  Shape out_shape(x.shape.begin(), x.shape.end() - 1);
  const int64_t R = numel(out_shape);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, x.dtype);
  TG_DISPATCH_FLOAT(x.dtype, "linear", {
    T* po = out.ptr<T>();
    if (b.defined() && R > 0) {  // the bias rows first, then the GEMM adds onto them (one pass fewer than y = xW; y += b)
      std::memcpy(po, b.ptr<T>(), N * sizeof(T));
      for (int64_t done = 1; done < R;) {  // doubling: log2(R) copies instead of R
        const int64_t n = std::min(done, R - done);
        std::memcpy(po + done * N, po, n * N * sizeof(T));
        done += n;
      }
    }
    gemm_checked<T>(false, false, R, N, K, x.ptr<T>(), w.ptr<T>(), po, b.defined() ? T(1) : T(0));
  });
  return out;
}

// ---------------------------------------------------------------------------
// Gather / scatter, concatenation, slicing along an axis
// ---------------------------------------------------------------------------

static void check_index(const Tensor& index, int64_t limit, const char* opname) {
  if (index.dtype != DType::I64) throw type_error(std::string(opname) + ": index must be int64");
  const int64_t* ix = index.ptr<int64_t>();
  int64_t n = index.numel();
  for (int64_t i = 0; i < n; ++i)
    if (ix[i] < 0 || ix[i] >= limit)
      throw index_error(std::string(opname) + ": flat index " + std::to_string(ix[i]) + " out of range for size " +
                        std::to_string(limit));
}

Tensor gather(const Tensor& x, const Tensor& index, const Shape& out_shape) {
  if (numel(out_shape) != index.numel()) throw value_error("gather: index size does not match the output shape");
  check_index(index, x.numel(), "getitem");
  Tensor out = Tensor::empty(out_shape, x.dtype);
  const int64_t* ix = index.ptr<int64_t>();
  int64_t n = index.numel();
  TG_DISPATCH_FLOAT(x.dtype, "getitem", {
    const T* px = x.ptr<T>();
    T* po = out.ptr<T>();
    for (int64_t i = 0; i < n; ++i) po[i] = px[ix[i]];
  });
  return out;
}

Tensor scatter_add(const Tensor& src, const Tensor& index, const Shape& out_shape) {
  if (src.numel() != index.numel()) throw value_error("scatter_add: index size does not match the source size");
  check_index(index, numel(out_shape), "getitem backward");
  Tensor out = Tensor::zeros(out_shape, src.dtype);
  const int64_t* ix = index.ptr<int64_t>();
  int64_t n = index.numel();
  TG_DISPATCH_FLOAT(src.dtype, "scatter_add", {
    const T* ps = src.ptr<T>();
    T* po = out.ptr<T>();
    for (int64_t i = 0; i < n; ++i) po[ix[i]] += ps[i];  // repeated indices accumulate
  });
  return out;
}

Tensor diag_rows(const Tensor& d, int64_t start, int64_t stop) {
  int64_t n = d.numel(), k = stop - start;
  if (start < 0 || k < 0 || stop > n)
    throw value_error("diag_rows: rows " + std::to_string(start) + ".." + std::to_string(stop) +
                      " out of range for size " + std::to_string(n));
  Shape s{k};
  s.insert(s.end(), d.shape.begin(), d.shape.end());
  Tensor out = Tensor::zeros(s, d.dtype);
  TG_DISPATCH_FLOAT(d.dtype, "diag_rows", {
    const T* pd = d.ptr<T>();
    T* po = out.ptr<T>();
    for (int64_t b = 0; b < k; ++b) po[b * n + start + b] = pd[start + b];
  });
  return out;
}

static void outer_inner(const Shape& s, int64_t axis, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) throw value_error("concatenate: need at least one array to concatenate");
  Shape out_shape = xs[0].shape;
  int64_t total = 0;
  for (const Tensor& t : xs)
    if (__builtin_add_overflow(total, t.shape[axis], &total))
      throw value_error("concatenate: the array is too big: the length of axis " + std::to_string(axis) +
                        " does not fit a 64-bit integer");
  out_shape[axis] = total;
  Tensor out = Tensor::empty(out_shape, xs[0].dtype);
  int64_t outer, inner;
  outer_inner(out_shape, axis, outer, inner);
  size_t isz = itemsize(out.dtype);
  char* po = static_cast<char*>(out.raw());
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor& t : xs) {
      size_t chunk = static_cast<size_t>(t.shape[axis] * inner) * isz;
      if (chunk) std::memcpy(po, static_cast<const char*>(t.raw()) + o * chunk, chunk);
      po += chunk;
    }
  }
  return out;
}

Tensor narrow(const Tensor& x, int64_t axis, int64_t start, int64_t length) {
  Shape out_shape = x.shape;
  out_shape[axis] = length;
  Tensor out = Tensor::empty(out_shape, x.dtype);
  int64_t outer, inner;
  outer_inner(x.shape, axis, outer, inner);
  size_t isz = itemsize(x.dtype);
  size_t chunk = static_cast<size_t>(length * inner) * isz, row = static_cast<size_t>(x.shape[axis] * inner) * isz;
  const char* px = static_cast<const char*>(x.raw()) + static_cast<size_t>(start * inner) * isz;
  char* po = static_cast<char*>(out.raw());
  for (int64_t o = 0; o < outer; ++o)
    if (chunk) std::memcpy(po + o * chunk, px + o * row, chunk);
  return out;
}

Tensor pad_axis(const Tensor& x, int64_t axis, int64_t start, int64_t total) {
  Shape out_shape = x.shape;
  out_shape[axis] = total;
  Tensor out = Tensor::zeros(out_shape, x.dtype);
  int64_t outer, inner;
  outer_inner(out_shape, axis, outer, inner);
  size_t isz = itemsize(x.dtype);
  size_t chunk = static_cast<size_t>(x.shape[axis] * inner) * isz, row = static_cast<size_t>(total * inner) * isz;
  char* po = static_cast<char*>(out.raw()) + static_cast<size_t>(start * inner) * isz;
  const char* px = static_cast<const char*>(x.raw());
  for (int64_t o = 0; o < outer; ++o)
    if (chunk) std::memcpy(po + o * row, px + o * chunk, chunk);
  return out;
}

// ---------------------------------------------------------------------------
// Stable normalisers
// ---------------------------------------------------------------------------

// The max over `axes` with non-finite entries replaced by 0 (keepdims form):
// the shift that keeps exp() from overflowing without turning inf into NaN.
// An empty x (a reduced axis of size 0, whose max does not exist) shifts by
// 0: logsumexp of an empty axis is then log(0) = -inf, and softmax /
// log_softmax of an empty array are empty, as in NumPy/SciPy and PyTorch.
static Tensor safe_max(const Tensor& x, const std::vector<bool>& axes) {
  if (x.numel() == 0) {
    Shape keep = x.shape;
    for (size_t d = 0; d < axes.size(); ++d)
      if (axes[d]) keep[d] = 1;
    return Tensor::zeros(keep, x.dtype);
  }
  Tensor m = reduce(ReduceOp::Max, x, axes, "logsumexp");
  int64_t n = m.numel();
  TG_DISPATCH_FLOAT(m.dtype, "logsumexp", {
    T* p = m.ptr<T>();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) p[i] = 0;
  });
  return m;
}

Tensor logsumexp(const Tensor& x, const std::vector<bool>& axes) {
  Tensor m = safe_max(x, axes);
  Tensor s = reduce(ReduceOp::Sum, unary(UnaryOp::Exp, binary(BinaryOp::Sub, x, m, "logsumexp")), axes, "logsumexp");
  return binary(BinaryOp::Add, unary(UnaryOp::Log, s), m, "logsumexp");
}

static std::vector<bool> one_axis(const Tensor& x, int64_t axis) {
  std::vector<bool> axes(x.ndim(), false);
  if (x.ndim()) axes[axis] = true;
  return axes;
}

Tensor softmax_axes(const Tensor& x, const std::vector<bool>& axes) {
  Tensor e = unary(UnaryOp::Exp, binary(BinaryOp::Sub, x, safe_max(x, axes), "softmax"));
  return binary(BinaryOp::Div, e, reduce(ReduceOp::Sum, e, axes, "softmax"), "softmax");
}

// Softmax / log-softmax over the last axis, the common case (logits (N, C)),
// row by row in one pass each instead of seven broadcast kernels (~10 us for
// a 64 x 10 batch). The arithmetic is the general path's: shift by the
// row's finite max m, e = exp(x - m), s = sum e; softmax = e / s,
// log_softmax = (x - m) - log s. (Not x - (m + log s): at logits of 1e7 in
// float32, m + log s rounds to m and the answer is lost.)
static inline void isa_exp(const float* x, float* y, int64_t n) { isa().unary_f32(UnaryOp::Exp, x, y, n); }
static inline void isa_exp(const double* x, double* y, int64_t n) { isa().unary_f64(UnaryOp::Exp, x, y, n); }

// Rows go in blocks so that exp runs over a whole block at once (one vector
// loop, not one call per short row).
template <class T>
static void softmax_rows(const T* x, T* out, T* tmp, int64_t rows, int64_t C, bool log, bool probs_too) {
  constexpr int64_t kBlock = 256;
  T shift[kBlock];
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t nr = std::min(kBlock, rows - r0);
    const T* xb = x + r0 * C;
    T* eb = (log ? tmp : out) + r0 * C;
    for (int64_t r = 0; r < nr; ++r) {
      const T* xr = xb + r * C;
      T m = -std::numeric_limits<T>::infinity();
      bool nan = false;
      for (int64_t j = 0; j < C; ++j) {
        nan = nan || xr[j] != xr[j];
        m = xr[j] > m ? xr[j] : m;
      }
      if (nan || !std::isfinite(m)) m = 0;
      shift[r] = m;
      for (int64_t j = 0; j < C; ++j) eb[r * C + j] = xr[j] - m;
    }
    isa_exp(eb, eb, nr * C);
    for (int64_t r = 0; r < nr; ++r) {
      T* e = eb + r * C;
      T s = 0;
      for (int64_t j = 0; j < C; ++j) s += e[j];
      if (log) {
        const T log_s = std::log(s), m = shift[r];
        const T* xr = xb + r * C;
        T* o = out + (r0 + r) * C;
        for (int64_t j = 0; j < C; ++j) o[j] = (xr[j] - m) - log_s;
        if (probs_too)
          for (int64_t j = 0; j < C; ++j) e[j] /= s;
      } else {
        for (int64_t j = 0; j < C; ++j) e[j] /= s;
      }
    }
  }
}

// log_softmax with `probs` non-null also returns the softmax there (its
// scratch buffer, normalized).
static Tensor softmax_last_axis(const Tensor& x, bool log, const char* opname, Tensor* probs = nullptr) {
  Tensor out = Tensor::empty(x.shape, x.dtype);
  const int64_t C = x.shape.back(), rows = x.numel() / C;
  Tensor tmp = log ? Tensor::empty(x.shape, x.dtype) : Tensor();
  const bool probs_too = log && probs;
  TG_DISPATCH_FLOAT(x.dtype, opname, {
    const T* px = x.ptr<T>();
    T* po = out.ptr<T>();
    T* pt = log ? tmp.ptr<T>() : nullptr;
    parallel_for(rows, std::max<int64_t>(1, kGrainElements / 8 / C), [&](int64_t r0, int64_t r1) {
      softmax_rows<T>(px + r0 * C, po + r0 * C, pt ? pt + r0 * C : nullptr, r1 - r0, C, log, probs_too);
    });
  });
  if (probs_too) *probs = tmp;
  return out;
}

static bool rows_on_last_axis(const Tensor& x, int64_t axis) {
  return x.ndim() >= 1 && axis == x.ndim() - 1 && x.shape.back() > 0 && x.numel() > 0;
}

Tensor softmax(const Tensor& x, int64_t axis) {
  if (rows_on_last_axis(x, axis)) return softmax_last_axis(x, false, "softmax");
  return softmax_axes(x, one_axis(x, axis));
}

Tensor log_softmax(const Tensor& x, int64_t axis, Tensor* probs) {
  if (rows_on_last_axis(x, axis)) return softmax_last_axis(x, true, "log_softmax", probs);
  if (probs) *probs = softmax(x, axis);
  std::vector<bool> axes = one_axis(x, axis);
  // (x - m) - log sum exp(x - m): see softmax_rows on why not x - logsumexp(x).
  Tensor shifted = binary(BinaryOp::Sub, x, safe_max(x, axes), "log_softmax");
  Tensor log_s = unary(UnaryOp::Log, reduce(ReduceOp::Sum, unary(UnaryOp::Exp, shifted), axes, "log_softmax"));
  return binary(BinaryOp::Sub, shifted, log_s, "log_softmax");
}

}  // namespace tg::kern
