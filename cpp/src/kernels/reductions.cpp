// Reductions (sum, mean, max, min over axes, keepdims form) and the stable
// normalisers (logsumexp, softmax, log_softmax).
#include "kernels/common.hpp"

namespace tg::kern {

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

Tensor reduce(ReduceOp op, const Tensor& x0, const std::vector<bool>& axes, const char* opname) {
  TG_CONTIGUOUS(x, x0);
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

Tensor logsumexp(const Tensor& x0, const std::vector<bool>& axes) {
  TG_CONTIGUOUS(x, x0);
  Tensor m = safe_max(x, axes);
  Tensor s = reduce(ReduceOp::Sum, unary(UnaryOp::Exp, binary(BinaryOp::Sub, x, m, "logsumexp")), axes, "logsumexp");
  return binary(BinaryOp::Add, unary(UnaryOp::Log, s), m, "logsumexp");
}

static std::vector<bool> one_axis(const Tensor& x, int64_t axis) {
  std::vector<bool> axes(x.ndim(), false);
  if (x.ndim()) axes[axis] = true;
  return axes;
}

Tensor softmax_axes(const Tensor& x0, const std::vector<bool>& axes) {
  TG_CONTIGUOUS(x, x0);
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

Tensor softmax(const Tensor& x0, int64_t axis) {
  TG_CONTIGUOUS(x, x0);
  if (rows_on_last_axis(x, axis)) return softmax_last_axis(x, false, "softmax");
  return softmax_axes(x, one_axis(x, axis));
}

Tensor log_softmax(const Tensor& x0, int64_t axis, Tensor* probs) {
  TG_CONTIGUOUS(x, x0);
  if (rows_on_last_axis(x, axis)) return softmax_last_axis(x, true, "log_softmax", probs);
  if (probs) *probs = softmax(x, axis);
  std::vector<bool> axes = one_axis(x, axis);
  // (x - m) - log sum exp(x - m): see softmax_rows on why not x - logsumexp(x).
  Tensor shifted = binary(BinaryOp::Sub, x, safe_max(x, axes), "log_softmax");
  Tensor log_s = unary(UnaryOp::Log, reduce(ReduceOp::Sum, unary(UnaryOp::Exp, shifted), axes, "log_softmax"));
  return binary(BinaryOp::Sub, shifted, log_s, "log_softmax");
}

}  // namespace tg::kern
