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
static inline double isa_sumsq(const float* a, int64_t n) { return isa().sumsq_f32(a, n); }
static inline double isa_sumsq(const double* a, int64_t n) { return isa().sumsq_f64(a, n); }

// max/min of one contiguous run, NaN if the run holds one (NumPy's rule):
// simd/reduce.hpp, compiled per ISA (exact, so the same at every ISA).
template <bool Max>
static inline float extremum_run(const float* a, int64_t n) {
  return Max ? isa().max_f32(a, n) : isa().min_f32(a, n);
}
template <bool Max>
static inline double extremum_run(const double* a, int64_t n) {
  return Max ? isa().max_f64(a, n) : isa().min_f64(a, n);
}

// Folds v into the running extremum r; a NaN sticks (nothing compares with it).
template <bool Max, class T>
static inline T extremum_fold(T r, T v) {
  return ((Max ? v > r : v < r) || v != v) ? v : r;
}

// One reduced value of a contiguous run: a float32 sum accumulates in double.
template <class T>
static inline T reduce_run(ReduceOp op, const T* a, int64_t n) {
  switch (op) {
    case ReduceOp::Sum: return T(isa_sum(a, n));
    case ReduceOp::Max: return extremum_run<true>(a, n);
    default: return extremum_run<false>(a, n);
  }
}

// When the reduced axes (size-1 axes aside) all come after the kept ones,
// x is `rows` contiguous runs of `run` elements, one per output element
// (a total reduction is one run). Returns false otherwise.
static bool trailing_runs(const Tensor& x, const std::vector<bool>& axes, int64_t& rows, int64_t& run) {
  rows = run = 1;
  bool seen_reduced = false;
  for (size_t d = 0; d < axes.size(); ++d) {
    if (x.shape[d] == 1) continue;
    if (axes[d]) {
      run *= x.shape[d];
      seen_reduced = true;
    } else {
      if (seen_reduced) return false;
      rows *= x.shape[d];
    }
  }
  return true;
}

// Reduces `rows` runs of `run` elements, threaded over rows when the size
// pays. A single run of 2 * kSumChunk elements or more is cut into chunks
// of kSumChunk (fixed by the size, so the same bits at any thread count),
// whose partial results are combined in order. sq: the sum of the squares
// (each rounded in T: the bits of the sum of multiply(x, x); h103-reduce).
template <class T>
static void reduce_runs(ReduceOp op, const T* a, T* o, int64_t rows, int64_t run, bool sq = false) {
  if (rows == 1 && run >= 2 * kSumChunk) {
    const int64_t chunks = (run + kSumChunk - 1) / kSumChunk;
    std::vector<double> partial(chunks);
    parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const T* p = a + c * kSumChunk;
        const int64_t n = std::min(kSumChunk, run - c * kSumChunk);
        partial[c] = sq ? isa_sumsq(p, n) : op == ReduceOp::Sum ? isa_sum(p, n) : double(reduce_run(op, p, n));
      }
    });
    if (op == ReduceOp::Sum) {
      double acc = 0;
      for (double p : partial) acc += p;
      *o = T(acc);
    } else {
      T r = T(partial[0]);
      for (int64_t c = 1; c < chunks; ++c)
        r = op == ReduceOp::Max ? extremum_fold<true>(r, T(partial[c])) : extremum_fold<false>(r, T(partial[c]));
      *o = r;
    }
    return;
  }
  // The ISA's loop looked up once, not per row (1,024 rows of 1,024: ~3%).
  auto per_row = [&](auto f) {
    parallel_for(rows, std::max<int64_t>(1, kGrainElements / run), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) o[r] = T(f(a + r * run, run));
    });
  };
  // All the rows of a thread's range in one call (h123-lastaxis, h132-rows64: the same bits).
  auto in_one_call = [&](auto rows_f) {
    parallel_for(rows, std::max<int64_t>(1, kGrainElements / run),
                 [&](int64_t r0, int64_t r1) { rows_f(a + r0 * run, o + r0, r1 - r0, run); });
  };
  const IsaKernels& k = isa();
  if constexpr (std::is_same_v<T, float>) {
    if (op == ReduceOp::Sum) in_one_call(sq ? k.sumsq_rows_f32 : k.sum_rows_f32);
    else in_one_call(op == ReduceOp::Max ? k.max_rows_f32 : k.min_rows_f32);
  } else {
    if (op == ReduceOp::Sum) per_row(sq ? k.sumsq_f64 : k.sum_f64);
    else in_one_call(op == ReduceOp::Max ? k.max_rows_f64 : k.min_rows_f64);
  }
}

// Sums over leading axes (bias gradients: column sums of a (rows, cols)
// view) below the threading threshold. Axes of size 1 do not count. Same
// arithmetic, in the same order, as the general path below gives for this
// layout (it merges such axes into one run), without its stride vectors.
// Returns false when x is not this case.
static bool sum_columns(const Tensor& x, const std::vector<bool>& axes, Tensor& out) {
  const int64_t total = x.numel();
  if (total == 0 || total >= 2 * kGrainElements) return false;
  int64_t reduced = 1, kept = 1;
  bool seen_kept = false, seen_reduced = false, leading = true;
  for (size_t d = 0; d < axes.size(); ++d) {
    if (x.shape[d] == 1) continue;
    if (axes[d]) {
      reduced *= x.shape[d];
      leading = leading && !seen_kept;
      seen_reduced = true;
    } else {
      kept *= x.shape[d];
      seen_kept = true;
    }
  }
  if (!seen_reduced || !seen_kept || !leading) return false;
  TG_DISPATCH_FLOAT(x.dtype, "sum", {
    const T* a = x.ptr<T>();
    T* o = out.ptr<T>();
    const int64_t R = reduced, C = kept;  // o[c] = sum over rows r of a[r, c], rows in order
    for (int64_t c = 0; c < C; ++c) o[c] = T(0);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) o[c] += a[r * C + c];
  });
  return true;
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
  int64_t rows, run;
  if (x.numel() > 0 && trailing_runs(x, axes, rows, run)) {
    TG_DISPATCH_FLOAT(x.dtype, opname, { reduce_runs<T>(op, x.ptr<T>(), out.ptr<T>(), rows, run); });
    return out;
  }
  if (op == ReduceOp::Sum && sum_columns(x, axes, out)) return out;
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
        if (so == 0 && sa == 1) *o = extremum_fold<true>(*o, extremum_run<true>(a, n));
        else
          for (int64_t i = 0; i < n; ++i) o[i * so] = extremum_fold<true>(o[i * so], a[i * sa]);
      } else {
        if (so == 0 && sa == 1) *o = extremum_fold<false>(*o, extremum_run<false>(a, n));
        else
          for (int64_t i = 0; i < n; ++i) o[i * so] = extremum_fold<false>(o[i * so], a[i * sa]);
      }
    };
    const int64_t nd = x.ndim(), total = x.numel();
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
    } else {
      nd_loop<2>(x.shape, st, body);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------
// Stable normalisers
// ---------------------------------------------------------------------------
//
// All three shift by the finite max m of their run (NaN or +-inf give m = 0:
// the shift keeps exp() from overflowing without turning inf into NaN) and
// add e = exp(x - m) up in pieces of kExpChunk elements (isa_sum each, the
// pieces in order: fixed by the size). Over trailing axes (softmax's last
// axis, a total logsumexp, logits (N, C)) that is, per run or per L2-sized
// chunk of a long run, the max, then exp and its sum while the run is still
// in cache, then the write; threaded over runs (a long run: over chunks).
// The arithmetic between those passes (x - m, e / s) goes through the ISA's
// binary loops: the same IEEE operations at full vector width. Other axes
// go through the broadcast kernels (the general path below).

constexpr int64_t kExpChunk = 2048;

static inline void isa_exp(const float* x, float* y, int64_t n) { isa().unary_f32(UnaryOp::Exp, x, y, n); }
static inline void isa_exp(const double* x, double* y, int64_t n) { isa().unary_f64(UnaryOp::Exp, x, y, n); }
// o = a - b or a / b over n elements with b one number (o may be a): a short
// run inline (a call through the ISA table costs more than its few lanes),
// a long one in the ISA's loop. The same IEEE operation either way.
template <class T>
static inline void by_scalar(BinaryOp op, T* o, const T* a, T b, int64_t n) {
  if (n >= 64) {
    if constexpr (std::is_same_v<T, float>) isa().binary_f32(op, o, 1, a, 1, &b, 0, n);
    else isa().binary_f64(op, o, 1, a, 1, &b, 0, n);
  } else if (op == BinaryOp::Sub) {
    for (int64_t i = 0; i < n; ++i) o[i] = a[i] - b;
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = a[i] / b;
  }
}
// o = a * b elementwise, as by_scalar (h123-lastaxis: softmax's VJP).
template <class T>
static inline void mul_vector(T* o, const T* a, const T* b, int64_t n) {
  if (n >= 64) {
    if constexpr (std::is_same_v<T, float>) isa().binary_f32(BinaryOp::Mul, o, 1, a, 1, b, 1, n);
    else isa().binary_f64(BinaryOp::Mul, o, 1, a, 1, b, 1, n);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = a[i] * b[i];
  }
}

// h123-lastaxis: the normalisers' first-order VJP ends in the ISA's loops (simd/lastaxis.hpp).
static inline void lsm_vjp(float* o, const float* g, const float* y, float s, int64_t n) { isa().lsm_vjp_f32(o, g, y, s, n); }
static inline void lsm_vjp(double* o, const double* g, const double* y, double s, int64_t n) { isa().lsm_vjp_f64(o, g, y, s, n); }
static inline void sm_vjp(float* o, const float* g, const float* y, float s, int64_t n) { isa().sm_vjp_f32(o, g, y, s, n); }
static inline void sm_vjp(double* o, const double* g, const double* y, double s, int64_t n) { isa().sm_vjp_f64(o, g, y, s, n); }

// h123-lastaxis: e = exp(x - m) in one pass (the ISA's exp_shift_run: x - m
// rounded, then exp, as the two passes were), and log_softmax's o = (x - m) - c
// in one (a short run inline: the same two subtractions).
static inline void exp_shift(float* e, const float* x, float m, int64_t n) { isa().exp_shift_f32(e, x, m, n); }
static inline void exp_shift(double* e, const double* x, double m, int64_t n) { isa().exp_shift_f64(e, x, m, n); }
template <class T>
static inline void sub2(T* o, const T* x, T m, T c, int64_t n) {
  if (n < 64) {
    for (int64_t i = 0; i < n; ++i) o[i] = (x[i] - m) - c;
  } else if constexpr (std::is_same_v<T, float>) {
    isa().sub2_f32(o, x, m, c, n);
  } else {
    isa().sub2_f64(o, x, m, c, n);
  }
}

// o = a / s, s softmax's sum: the ISA's div_by_run (the division's bits, by
// a reciprocal and one fma correction) for a long run, else divided inline.
template <class T>
static inline void div_by(T* o, const T* a, T s, int64_t n) {
  if (n < 64) return by_scalar(BinaryOp::Div, o, a, s, n);
  if constexpr (std::is_same_v<T, float>) isa().div_by_f32(o, a, s, n);
  else isa().div_by_f64(o, a, s, n);
}

// Runs shorter than the ISA loops' 32 lanes (logits rows of a few classes)
// are added up and maxed inline: the loops' own order for such a run (one
// chain from the start, simd/reduce.hpp), so the same bits, without a call
// through the ISA table and the set-up of 32 lanes per row.
constexpr int64_t kShortRun = 32;

template <class T>
static inline double run_sum(const T* a, int64_t n) {
  if (n >= kShortRun) return isa_sum(a, n);
  double r = 0;
  for (int64_t i = 0; i < n; ++i) r += double(a[i]);
  return r;
}

template <class T>
static inline T safe_shift(const T* x, int64_t n) {
  T m;
  if (n >= kShortRun) {
    m = extremum_run<true>(x, n);
  } else {
    m = -std::numeric_limits<T>::infinity();
    for (int64_t i = 0; i < n; ++i) m = x[i] > m || x[i] != x[i] ? x[i] : m;
  }
  return std::isfinite(m) ? m : T(0);
}

// e = exp(x - m) over one run; returns the sum of e. `e` has room for the
// whole run, or, with `scratch`, for kExpChunk elements (reused per piece).
template <class T>
static double exp_sum(const T* x, int64_t n, T m, T* e, bool scratch) {
  double s = 0;
  for (int64_t j = 0; j < n; j += kExpChunk) {
    const int64_t k = std::min(kExpChunk, n - j);
    T* ej = scratch ? e : e + j;
    exp_shift(ej, x + j, m, k);
    s += isa_sum(ej, k);
  }
  return s;
}

enum class Norm { Softmax, LogSoftmax, Logsumexp };

// `rows` runs of C elements from x. Softmax writes e / s to out (rows x C);
// log_softmax writes (x - m) - log s (not x - (m + log s): at logits of 1e7
// in float32, m + log s rounds to m and the answer is lost), and with
// `probs` e / s there too; logsumexp writes log s + m to out (rows).
// Runs shorter than kExpChunk go in blocks, so that exp runs over a whole
// block at once (one vector loop, not one call per short run): the same
// arithmetic as one run at a time.
template <class T>
static void normalise_runs(Norm kind, const T* x, T* out, T* probs, int64_t rows, int64_t C) {
  const int64_t block = C < kExpChunk ? kExpChunk / C : 1;
  T buf[kExpChunk];
  T shift[kExpChunk];
  double sums[kExpChunk];
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nr = std::min(block, rows - r0);
    const T* xb = x + r0 * C;
    // Where e goes: softmax's output, log_softmax's probs, else scratch.
    T* eb = kind == Norm::Softmax ? out + r0 * C : probs ? probs + r0 * C : nullptr;
    const bool scratch = eb == nullptr;
    if (C < kExpChunk) {
      T* e = scratch ? buf : eb;
      for (int64_t r = 0; r < nr; ++r) {
        const T* xr = xb + r * C;
        shift[r] = safe_shift(xr, C);
        if (C >= 64) exp_shift(e + r * C, xr, shift[r], C);
        else by_scalar(BinaryOp::Sub, e + r * C, xr, shift[r], C);
      }
      if (C < 64) isa_exp(e, e, nr * C);  // (short rows: one call for the block)
      for (int64_t r = 0; r < nr; ++r) sums[r] = run_sum(e + r * C, C);
    } else {
      shift[0] = safe_shift(xb, C);
      sums[0] = exp_sum(xb, C, shift[0], scratch ? buf : eb, scratch);
    }
    for (int64_t r = 0; r < nr; ++r) {
      const T s = T(sums[r]), m = shift[r];
      const T* xr = xb + r * C;
      if (kind == Norm::Logsumexp) {
        out[r0 + r] = std::log(s) + m;
        continue;
      }
      if (kind == Norm::LogSoftmax) sub2(out + (r0 + r) * C, xr, m, std::log(s), C);
      if (eb) div_by(eb + r * C, eb + r * C, s, C);
    }
  }
}

// logsumexp of one long run, threaded, reading x from memory once: each
// kSumChunk chunk takes its own max m_c and then, while the chunk is still
// in L2, s_c = sum exp(x - m_c) over kExpChunk pieces; the chunks combine in
// order as sum_c s_c exp(m_c - m) in double, m the largest m_c (a chunk of
// -inf only adds nothing). The partition is fixed by the size: the same bits
// at any thread count. A NaN or +inf anywhere makes the answer that max
// itself (the shifted sum would be NaN or inf), and a run of -inf only gives -inf.
template <class T>
static T logsumexp_run(const T* x, int64_t n) {
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> part(chunks);
  std::vector<T> top(chunks);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    T buf[kExpChunk];
    for (int64_t c = c0; c < c1; ++c) {
      const T* p = x + c * kSumChunk;
      const int64_t k = std::min(kSumChunk, n - c * kSumChunk);
      const T mc = top[c] = extremum_run<true>(p, k);
      part[c] = 0;
      if (!std::isfinite(mc)) continue;  // (combined below)
      // kSumChunk is a multiple of kExpChunk: each chunk is whole pieces.
      for (int64_t j = 0; j < k; j += kExpChunk) part[c] += exp_sum(p + j, std::min(kExpChunk, k - j), mc, buf, true);
    }
  });
  T m = top[0];
  for (int64_t c = 1; c < chunks; ++c) m = extremum_fold<true>(m, top[c]);
  if (!std::isfinite(m)) return m;
  double s = 0;
  for (int64_t c = 0; c < chunks; ++c)
    if (std::isfinite(top[c])) s += part[c] * std::exp(double(top[c]) - double(m));
  return std::log(T(s)) + m;
}

// The general path (the normalised axes are not trailing).
// The max over `axes` with non-finite entries replaced by 0 (keepdims form).
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

// Runs `rows` x `run` of a non-empty x when `axes` are trailing (see trailing_runs).
static bool normalised_runs(const Tensor& x, const std::vector<bool>& axes, int64_t& rows, int64_t& run) {
  return x.numel() > 0 && trailing_runs(x, axes, rows, run);
}

// softmax / log_softmax of one long run (a 1-d array), threaded over fixed
// kSumChunk chunks: each chunk's max, then e = exp(x - m) with each chunk's
// sum (added in chunk order), then the write. Fixed by the size: the same
// bits at any thread count.
template <class T>
static void normalise_long(Norm kind, const T* x, T* out, T* probs, int64_t C) {
  const int64_t chunks = (C + kSumChunk - 1) / kSumChunk;
  auto each_chunk = [&](auto f) {
    parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) f(c, c * kSumChunk, std::min(kSumChunk, C - c * kSumChunk));
    });
  };
  std::vector<T> top(chunks);
  each_chunk([&](int64_t c, int64_t j, int64_t k) { top[c] = extremum_run<true>(x + j, k); });
  T m = top[0];
  for (int64_t c = 1; c < chunks; ++c) m = extremum_fold<true>(m, top[c]);
  if (!std::isfinite(m)) m = 0;
  T* e = kind == Norm::Softmax ? out : probs;  // null: log_softmax alone, e in scratch
  std::vector<double> part(chunks);
  each_chunk([&](int64_t c, int64_t j, int64_t k) {
    T buf[kExpChunk];
    part[c] = exp_sum(x + j, k, m, e ? e + j : buf, e == nullptr);
  });
  double sum = 0;
  for (double p : part) sum += p;
  const T s = T(sum);
  each_chunk([&](int64_t, int64_t j, int64_t k) {
    if (kind == Norm::LogSoftmax) sub2(out + j, x + j, m, std::log(s), k);
    if (e) div_by(e + j, e + j, s, k);
  });
}

// Threads over runs, at the elementwise ops' grain for exp (one long run: over its chunks).
template <class T>
static void normalise(Norm kind, const T* x, T* out, T* probs, int64_t rows, int64_t C) {
  if (rows == 1 && C >= 2 * kSumChunk && kind != Norm::Logsumexp) return normalise_long(kind, x, out, probs, C);
  parallel_for(rows, std::max<int64_t>(1, kGrainElements / 8 / C), [&](int64_t r0, int64_t r1) {
    normalise_runs<T>(kind, x + r0 * C, out + (kind == Norm::Logsumexp ? r0 : r0 * C), probs ? probs + r0 * C : nullptr,
                      r1 - r0, C);
  });
}

Tensor logsumexp(const Tensor& x0, const std::vector<bool>& axes) {
  TG_CONTIGUOUS(x, x0);
  int64_t rows, run;
  if (normalised_runs(x, axes, rows, run)) {
    Shape keep = x.shape;
    for (size_t d = 0; d < axes.size(); ++d)
      if (axes[d]) keep[d] = 1;
    Tensor out = Tensor::empty(keep, x.dtype);
    TG_DISPATCH_FLOAT(x.dtype, "logsumexp", {
      if (rows == 1 && run >= 2 * kSumChunk) *out.ptr<T>() = logsumexp_run(x.ptr<T>(), run);
      else normalise<T>(Norm::Logsumexp, x.ptr<T>(), out.ptr<T>(), nullptr, rows, run);
    });
    return out;
  }
  Tensor m = safe_max(x, axes);
  Tensor s = reduce(ReduceOp::Sum, unary(UnaryOp::Exp, binary(BinaryOp::Sub, x, m, "logsumexp")), axes, "logsumexp");
  return binary(BinaryOp::Add, unary(UnaryOp::Log, s), m, "logsumexp");
}

static std::vector<bool> one_axis(const Tensor& x, int64_t axis) {
  std::vector<bool> axes(x.ndim(), false);
  if (x.ndim()) axes[axis] = true;
  return axes;
}

// log_softmax with `probs` non-null also returns the softmax there.
static Tensor normalise_axes(const Tensor& x0, const std::vector<bool>& axes, bool log, Tensor* probs) {
  TG_CONTIGUOUS(x, x0);
  const char* opname = log ? "log_softmax" : "softmax";
  int64_t rows, run;
  if (normalised_runs(x, axes, rows, run)) {
    Tensor out = Tensor::empty(x.shape, x.dtype);
    Tensor p = log && probs ? Tensor::empty(x.shape, x.dtype) : Tensor();
    TG_DISPATCH_FLOAT(x.dtype, opname, {
      normalise<T>(log ? Norm::LogSoftmax : Norm::Softmax, x.ptr<T>(), out.ptr<T>(), p.defined() ? p.ptr<T>() : nullptr,
                   rows, run);
    });
    if (probs) *probs = log ? p : out;
    return out;
  }
  Tensor shifted = binary(BinaryOp::Sub, x, safe_max(x, axes), opname);
  if (!log) {
    Tensor e = unary(UnaryOp::Exp, shifted);
    return binary(BinaryOp::Div, e, reduce(ReduceOp::Sum, e, axes, opname), opname);
  }
  if (probs) *probs = normalise_axes(x, axes, false, nullptr);
  // (x - m) - log sum exp(x - m): see normalise_runs on why not x - logsumexp(x).
  Tensor log_s = unary(UnaryOp::Log, reduce(ReduceOp::Sum, unary(UnaryOp::Exp, shifted), axes, opname));
  return binary(BinaryOp::Sub, shifted, log_s, opname);
}

Tensor softmax_axes(const Tensor& x, const std::vector<bool>& axes) { return normalise_axes(x, axes, false, nullptr); }

Tensor softmax(const Tensor& x, int64_t axis) { return normalise_axes(x, one_axis(x, axis), false, nullptr); }

Tensor log_softmax(const Tensor& x, int64_t axis, Tensor* probs) {
  return normalise_axes(x, one_axis(x, axis), true, probs);
}

// ---------------------------------------------------------------------------
// First-order VJPs over trailing axes (the rules' composite arithmetic, fused)
// ---------------------------------------------------------------------------

// The sum of a run as reduce() adds it up (fixed chunks from 2 * kSumChunk), on one thread.
template <class T>
static double sum_as_reduce(const T* a, int64_t n) {
  if (n < 2 * kSumChunk) return isa_sum(a, n);
  double acc = 0;
  for (int64_t j = 0; j < n; j += kSumChunk) acc += isa_sum(a + j, std::min(kSumChunk, n - j));
  return acc;
}

Tensor extremum_vjp(const Tensor& x0, const Tensor& best0, const Tensor& g0, const std::vector<bool>& axes) {
  int64_t rows, run;
  if (x0.numel() == 0 || g0.dtype != x0.dtype || !trailing_runs(x0, axes, rows, run)) return Tensor();
  TG_CONTIGUOUS(x, x0);
  TG_CONTIGUOUS(best, best0);
  TG_CONTIGUOUS(g, g0);
  Tensor out = Tensor::empty(x.shape, x.dtype);
  TG_DISPATCH_FLOAT(x.dtype, "max", {
    const T* px = x.ptr<T>();
    const T* pb = best.ptr<T>();
    const T* pg = g.ptr<T>();
    T* po = out.ptr<T>();
    // g * (hit / count) per element, hit 0 or 1: NaN everywhere when the
    // extremum is NaN (count 0), as the composite rule gives.
    auto write = [&](int64_t r, int64_t cnt, int64_t j0, int64_t j1) {
      const T b = pb[r], w1 = pg[r] * (T(1) / T(cnt)), w0 = pg[r] * (T(0) / T(cnt));
      const T* a = px + r * run;
      T* o = po + r * run;
      for (int64_t j = j0; j < j1; ++j) o[j] = a[j] == b ? w1 : w0;
    };
    auto count = [&](int64_t r, int64_t j0, int64_t j1) {
      const T b = pb[r];
      const T* a = px + r * run;
      int64_t c = 0;
      for (int64_t j = j0; j < j1; ++j) c += a[j] == b;
      return c;
    };
    if (rows == 1 && run >= 2 * kGrainElements) {  // one long run: count, then write, in chunks
      const int64_t chunks = (run + kSumChunk - 1) / kSumChunk;
      std::vector<int64_t> part(chunks);
      parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) part[c] = count(0, c * kSumChunk, std::min(run, (c + 1) * kSumChunk));
      });
      int64_t cnt = 0;
      for (int64_t p : part) cnt += p;
      parallel_for(run, kGrainElements, [&](int64_t j0, int64_t j1) { write(0, cnt, j0, j1); });
    } else {
      parallel_for(rows, std::max<int64_t>(1, kGrainElements / run), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) write(r, count(r, 0, run), 0, run);
      });
    }
  });
  return out;
}

Tensor normaliser_vjp(const Tensor& y0, const Tensor& g0, int64_t axis, bool log) {
  int64_t rows, C;
  if (y0.ndim() == 0 || y0.numel() == 0 || g0.dtype != y0.dtype || g0.shape != y0.shape ||
      !trailing_runs(y0, one_axis(y0, axis), rows, C))
    return Tensor();
  TG_CONTIGUOUS(y, y0);
  TG_CONTIGUOUS(g, g0);
  Tensor out = Tensor::empty(y.shape, y.dtype);
  TG_DISPATCH_FLOAT(y.dtype, log ? "log_softmax" : "softmax", {
    const T* py = y.ptr<T>();
    const T* pg = g.ptr<T>();
    T* po = out.ptr<T>();
    parallel_for(rows, std::max<int64_t>(1, kGrainElements / 8 / C), [&](int64_t r0, int64_t r1) {
      T stack[kExpChunk];
      std::vector<T> heap(C > kExpChunk ? C : 0);
      T* t = C > kExpChunk ? heap.data() : stack;
      for (int64_t r = r0; r < r1; ++r) {
        const T* yr = py + r * C;
        const T* gr = pg + r * C;
        T* o = po + r * C;
        // (h123-lastaxis: the elementwise steps in the ISA's loops, the same
        // IEEE operations: this file is built for SSE2.)
        if (log) {  // g - exp(y) * sum(g)
          const T s = T(sum_as_reduce(gr, C));
          lsm_vjp(o, gr, yr, s, C);
        } else {  // y * (g - sum(g * y))
          mul_vector(t, gr, yr, C);
          const T s = T(sum_as_reduce(t, C));
          sm_vjp(o, gr, yr, s, C);
        }
      }
    });
  });
  return out;
}


// ---------------------------------------------------------------------------
// h88-scan: cumsum / cumprod (sequential per lane), prod, var / std
// ---------------------------------------------------------------------------
//
// x seen as (outer, n, inner) around `axis`. A scan runs each of the
// outer * inner lanes from one end to the other, in order; threads take
// whole lanes (never a piece of a scan): the same bits at any thread count.
// Plain C++ compiled once (not per ISA), no FMA contraction: the same bits
// on every ISA. float32 sums and products accumulate in double, as PyTorch's
// (more accurate than NumPy's float32 chains; a float32 output is the double
// running value rounded once).
static void axis_split(const Shape& s, int64_t axis, int64_t& outer, int64_t& n, int64_t& inner) {
  outer = inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[d];
  n = s[axis];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
}

// Runs f(o, j0, j1) over lanes: outer rows o, inner columns [j0, j1); the
// thread split by outer rows, or by column blocks when outer is small.
template <class F>
static void over_lanes(int64_t outer, int64_t n, int64_t inner, F&& f) {
  const int64_t per = std::max<int64_t>(1, n * inner);
  if (outer > 1 || inner < 64) {
    parallel_for(outer, std::max<int64_t>(1, kGrainElements / per), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) f(o, int64_t(0), inner);
    });
  } else {
    parallel_for(inner, std::max<int64_t>(64, kGrainElements / std::max<int64_t>(1, n)),
                 [&](int64_t j0, int64_t j1) { f(int64_t(0), j0, j1); });
  }
}

template <class T>
using SumAcc = std::conditional_t<std::is_same_v<T, float>, double, T>;

#include "simd/scan.hpp"

Tensor scan(bool prod, const Tensor& x0, int64_t axis, bool reverse) {
  TG_CONTIGUOUS(x, x0);
  Tensor out = Tensor::empty(x.shape, x.dtype);
  if (x.numel() == 0) return out;
  int64_t outer, n, inner;
  axis_split(x.shape, axis, outer, n, inner);
  TG_DISPATCH_FLOAT(x.dtype, prod ? "cumprod" : "cumsum", {
    const T* px = x.ptr<T>();
    T* po = out.ptr<T>();
    using Acc = SumAcc<T>;
    if (inner == 1) {  // the lanes are rows: 8 chains at a time (h122-scans, simd/scan.hpp)
      parallel_for(outer, std::max<int64_t>(1, kGrainElements / n), [&](int64_t o0, int64_t o1) {
        if (prod) scan_rows<T, true>(px + o0 * n, po + o0 * n, o1 - o0, n, reverse);
        else scan_rows<T, false>(px + o0 * n, po + o0 * n, o1 - o0, n, reverse);
      });
      break;
    }
    over_lanes(outer, n, inner, [&](int64_t o, int64_t j0, int64_t j1) {
      const T* a = px + o * n * inner;
      T* y = po + o * n * inner;
      // Many lanes: a row of running values across the inner axis (vector loops).
      Acc accs[256];
      for (int64_t c0 = j0; c0 < j1; c0 += 256) {
        const int64_t m = std::min<int64_t>(256, j1 - c0);
        for (int64_t j = 0; j < m; ++j) accs[j] = prod ? Acc(1) : Acc(0);
        for (int64_t s = 0; s < n; ++s) {
          const int64_t k = reverse ? n - 1 - s : s;
          const T* ak = a + k * inner + c0;
          T* yk = y + k * inner + c0;
          if (prod)
            for (int64_t j = 0; j < m; ++j) yk[j] = T(accs[j] *= Acc(ak[j]));
          else
            for (int64_t j = 0; j < m; ++j) yk[j] = T(accs[j] += Acc(ak[j]));
        }
      }
    });
  });
  return out;
}

// cumprod's first-order derivatives along `axis`, exact at zeros (no
// division by x). y = cumprod(x), e_k = y_{k-1} (e_0 = 1):
//   VJP  dx_k = e_k S_k,  S_k = g_k + x_{k+1} S_{k+1}   (S_{n-1} = g_{n-1})
//   JVP  dy_j = x_j dy_{j-1} + e_j t_j
// g / t may carry leading batch axes (x and y broadcast over them).
// float32 runs its chains in double.
Tensor cumprod_deriv(const Tensor& x0, const Tensor& y0, const Tensor& g0, int64_t axis, bool vjp) {
  TG_CONTIGUOUS(x, x0);
  TG_CONTIGUOUS(y, y0);
  Tensor gc = g0.dtype == x.dtype ? g0 : astype(g0, x.dtype);
  TG_CONTIGUOUS(g, gc);
  Tensor out = Tensor::empty(g.shape, x.dtype);
  if (g.numel() == 0) return out;
  int64_t outer, n, inner;
  axis_split(x.shape, axis, outer, n, inner);
  const int64_t batch = g.numel() / x.numel();
  TG_DISPATCH_FLOAT(x.dtype, "cumprod", {
    const T* px = x.ptr<T>();
    const T* py = y.ptr<T>();
    const T* pg = g.ptr<T>();
    T* po = out.ptr<T>();
    using Acc = SumAcc<T>;
    const int64_t N = x.numel();
    over_lanes(batch * outer, n, inner, [&](int64_t bo, int64_t j0, int64_t j1) {
      const int64_t o = bo % outer;
      const T* a = px + o * n * inner;
      const T* yy = py + o * n * inner;
      const T* gg = pg + (bo / outer) * N + o * n * inner;
      T* r = po + (bo / outer) * N + o * n * inner;
      for (int64_t j = j0; j < j1; ++j) {
        if (vjp) {
          Acc s = 0;
          for (int64_t k = n; k-- > 0;) {
            s = k == n - 1 ? Acc(gg[k * inner + j]) : Acc(gg[k * inner + j]) + Acc(a[(k + 1) * inner + j]) * s;
            r[k * inner + j] = T((k ? Acc(yy[(k - 1) * inner + j]) : Acc(1)) * s);
          }
        } else {
          Acc d = 0;
          for (int64_t k = 0; k < n; ++k) {
            const Acc e = k ? Acc(yy[(k - 1) * inner + j]) : Acc(1);
            d = k ? Acc(a[k * inner + j]) * d + e * Acc(gg[k * inner + j]) : Acc(gg[k * inner + j]);
            r[k * inner + j] = T(d);
          }
        }
      }
    });
  });
  return out;
}

// x with the reduced axes moved last (a contiguous copy when they are not
// already trailing): `rows` runs of `run` elements; perm the permutation.
static Tensor runs_of(const Tensor& x0, const std::vector<bool>& axes, int64_t& rows, int64_t& run,
                      std::vector<int64_t>& perm) {
  perm.clear();
  for (size_t d = 0; d < axes.size(); ++d)
    if (!axes[d]) perm.push_back(int64_t(d));
  for (size_t d = 0; d < axes.size(); ++d)
    if (axes[d]) perm.push_back(int64_t(d));
  TG_CONTIGUOUS(x, x0);
  const bool trailing = trailing_runs(x, axes, rows, run);
  rows = run = 1;  // (trailing_runs leaves them partial when it fails)
  for (size_t d = 0; d < axes.size(); ++d) (axes[d] ? run : rows) *= x0.shape[d];
  if (trailing) {
    perm.clear();
    return x;
  }
  return x.permuted(perm).contiguous_copy();
}

// out, laid out as runs_of's copy, back in x's layout (shape `shape`).
static Tensor unpermute(const Tensor& out, const Shape& shape, const std::vector<int64_t>& perm) {
  if (perm.empty()) return out;
  std::vector<int64_t> inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = int64_t(i);
  Shape ps;
  for (int64_t p : perm) ps.push_back(shape[p]);
  return out.view(ps).permuted(inv).contiguous_copy();
}

// Product of one run (simd/reduce.hpp prod_run: 32 lanes in a fixed order, in double for float32).
static inline double prod_run(const float* a, int64_t n) { return isa().prod_f32(a, n); }
static inline double prod_run(const double* a, int64_t n) { return isa().prod_f64(a, n); }
// Products of `rows` runs (h123-lastaxis: float32 in one call per range, the same bits).
static inline void prod_rows(const float* a, float* o, int64_t rows, int64_t run) { isa().prod_rows_f32(a, o, rows, run); }
static inline void prod_rows(const double* a, double* o, int64_t rows, int64_t run) {
  for (int64_t r = 0; r < rows; ++r) o[r] = prod_run(a + r * run, run);
}

Tensor prod(const Tensor& x0, const std::vector<bool>& axes) {
  Shape keep = x0.shape;
  for (size_t d = 0; d < axes.size(); ++d)
    if (axes[d]) keep[d] = 1;
  Tensor out = Tensor::empty(keep, x0.dtype);
  int64_t rows, run;
  std::vector<int64_t> perm;
  Tensor x = runs_of(x0, axes, rows, run, perm);
  if (rows == 0) return out;
  TG_DISPATCH_FLOAT(x.dtype, "prod", {
    const T* a = x.ptr<T>();
    T* o = out.ptr<T>();
    if (rows == 1 && run >= 2 * kSumChunk) {  // fixed chunks, combined in order
      const int64_t chunks = (run + kSumChunk - 1) / kSumChunk;
      std::vector<SumAcc<T>> part(chunks);
      parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) part[c] = prod_run(a + c * kSumChunk, std::min(kSumChunk, run - c * kSumChunk));
      });
      SumAcc<T> p = 1;
      for (auto q : part) p *= q;
      *o = T(p);
    } else {
      parallel_for(rows, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, run)), [&](int64_t r0, int64_t r1) {
        prod_rows(a + r0 * run, o + r0, r1 - r0, run);
      });
    }
  });
  return out;
}

// ----- prod's VJP (h103-reduce, h112-prodgrad, h117-prodgrad) -----
// d prod / dx_k = the product of the other elements of its run: an exclusive
// prefix times an exclusive suffix product, no division (exact at one zero,
// two zeros, all zeros), times g. The pieces below are shared by the short
// rows, h103's chains and the lane layout.

// The product of x[0, m) in order; with `in`, whether every running product
// lies in [2^-200, 2^200] (a NaN fails: it stays to the end and compares false).
template <class T, class Acc = SumAcc<T>>
static Acc prod_seq(const T* x, int64_t m, bool* in = nullptr) {
  const Acc lo = std::ldexp(Acc(1), -200), hi = std::ldexp(Acc(1), 200);
  Acc p = 1;
  bool ok = true;
  for (int64_t k = 0; k < m; ++k) {
    p *= Acc(x[k]);
    ok = ok && std::fabs(p) >= lo && std::fabs(p) <= hi;
  }
  if (in) *in = ok && std::fabs(p) >= lo && std::fabs(p) <= hi;
  return p;
}

// The exclusive scans of n partial products s: before[t] = s_0 ... s_{t-1}
// (1 for t = 0), after[t] = s_{t+1} ... s_{n-1} g (g for t = n - 1).
template <class Acc>
static void prod_scans(const Acc* s, int64_t n, Acc g, Acc* before, Acc* after) {
  before[0] = 1;
  for (int64_t t = 1; t < n; ++t) before[t] = before[t - 1] * s[t - 1];
  after[n - 1] = g;
  for (int64_t t = n - 1; t-- > 0;) after[t] = after[t + 1] * s[t + 1];
}

// One sequential chain over x[0, m): y_k = (f x_0 ... x_{k-1}) (x_{k+1} ... x_{m-1} q),
// in Acc, rounded to T once (pre: m prefixes of scratch). A short row is one chain
// with f = 1: float32 used to store the prefix as float and round again after
// the suffix (up to 1.93 x 2^-24 relative, h112-prodgrad); float64 bits unchanged.
template <class T, class Acc>
static void prod_chain_vjp(const T* x, int64_t m, Acc f, Acc q, T* y, Acc* pre) {
  Acc p = 1;
  for (int64_t k = 0; k < m; ++k) {
    pre[k] = p;
    p *= Acc(x[k]);
  }
  for (int64_t k = m; k-- > 0;) {
    y[k] = T((f * pre[k]) * q);
    q *= Acc(x[k]);
  }
}

// prod_vjp's long run by h103's layout: B chains of L contiguous elements,
// interleaved (~3 ns/element: each chain reads x with a stride of L). Kept
// for the rows whose partial products leave the safe range of the lane layout
// below (zeros, infinities, NaN, magnitudes that a lane's products take out
// of range): its bits are those of every earlier version.
template <class T>
static void prod_vjp_chains(const T* ar, T g, T* o, int64_t run) {
  using Acc = SumAcc<T>;
  constexpr int64_t L = 136, B = 16;
  const int64_t ns = (run + L - 1) / L, ng = (ns + B - 1) / B;
  std::vector<Acc> sp(ns), before(ns), after(ns);
  // Each sub-block's product (x read once, nothing written), B chains interleaved. The
  // groups of B sub-blocks are split between threads (h103-reduce: a whole-array prod's
  // one run ran on one thread, 3x PyTorch's time at 2 threads); each group's work is the
  // same at any split (inside the row loop's own split the nested call runs inline).
  parallel_for(ng, std::max<int64_t>(1, kGrainElements / (L * B)), [&](int64_t g0, int64_t g1) {
    Acc p[B];
    for (int64_t s0 = g0 * B; s0 < std::min(ns, g1 * B); s0 += B) {
      const int64_t nb = std::min(B, ns - s0);
      if (nb == B && (s0 + B) * L <= run) {  // a whole group, interleaved
        const T* x = ar + s0 * L;
        for (int64_t b = 0; b < B; ++b) p[b] = 1;
        for (int64_t i = 0; i < L; ++i)
          for (int64_t b = 0; b < B; ++b) p[b] *= Acc(x[b * L + i]);
        for (int64_t b = 0; b < B; ++b) sp[s0 + b] = p[b];
      } else {  // the last group: each chain alone (the same products)
        for (int64_t b = 0; b < nb; ++b)
          sp[s0 + b] = prod_seq<T>(ar + (s0 + b) * L, std::min(L, run - (s0 + b) * L));
      }
    }
  });
  prod_scans<Acc>(sp.data(), ns, Acc(g), before.data(), after.data());
  // Then per B sub-blocks: the prefixes into buf (L1), the suffixes back, o written once.
  parallel_for(ng, std::max<int64_t>(1, kGrainElements / (L * B)), [&](int64_t g0, int64_t g1) {
    Acc p[B], q[B], f[B], buf[B][L];
    for (int64_t s0 = g0 * B; s0 < std::min(ns, g1 * B); s0 += B) {
      const int64_t nb = std::min(B, ns - s0);
      if (nb == B && (s0 + B) * L <= run) {  // a whole group (~25% of the float32 VJP's time)
        for (int64_t b = 0; b < B; ++b) {
          p[b] = 1;
          q[b] = after[s0 + b];
          f[b] = before[s0 + b];
        }
        const T* x = ar + s0 * L;
        T* y = o + s0 * L;
        for (int64_t i = 0; i < L; ++i)
          for (int64_t b = 0; b < B; ++b) {
            buf[b][i] = p[b];
            p[b] *= Acc(x[b * L + i]);
          }
        for (int64_t i = L; i-- > 0;)
          for (int64_t b = 0; b < B; ++b) {
            y[b * L + i] = T((f[b] * buf[b][i]) * q[b]);
            q[b] *= Acc(x[b * L + i]);
          }
        continue;
      }
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t k0 = (s0 + b) * L;
        prod_chain_vjp<T, Acc>(ar + k0, std::min(L, run - k0), before[s0 + b], after[s0 + b], o + k0, buf[b]);
      }
    }
  });
}

// The lane layout's per-block loops, compiled per ISA (simd/prodvjp.hpp: multiplies,
// min and max only, in a fixed order: the same bits in every build).
static inline bool prod_lanes(const float* x, double* l) { return isa().prod_lanes_f32(x, l); }
static inline bool prod_lanes(const double* x, double* l) { return isa().prod_lanes_f64(x, l); }
static inline void prod_grad(const float* x, float* y, const double* f, const double* q) {
  isa().prod_grad_f32(x, y, f, q);
}
static inline void prod_grad(const double* x, double* y, const double* f, const double* q) {
  isa().prod_grad_f64(x, y, f, q);
}

Tensor prod_vjp(const Tensor& x0, const Tensor& g0, const std::vector<bool>& axes) {
  int64_t rows, run;
  std::vector<int64_t> perm;
  Tensor x = runs_of(x0, axes, rows, run, perm);
  Tensor gc = g0.dtype == x.dtype ? g0 : astype(g0, x.dtype);
  TG_CONTIGUOUS(g, gc);
  Tensor out = Tensor::empty(x.shape, x.dtype);
  if (x.numel() == 0) return perm.empty() ? out : Tensor::empty(x0.shape, x0.dtype);
  TG_DISPATCH_FLOAT(x.dtype, "prod", {
    const T* a = x.ptr<T>();
    const T* pg = g.ptr<T>();
    T* po = out.ptr<T>();
    using Acc = SumAcc<T>;
    static_assert(std::is_same_v<Acc, double>, "simd/prodvjp.hpp's lanes are double");
    // A long run in blocks of B x L elements (simd/prodvjp.hpp's kProdLanes x
    // kProdSteps); in a block, lane b's chain takes elements b, b + B, b + 2B, ...:
    // each step multiplies B contiguous elements into B lanes (vectors, where
    // h103's chains read x with a stride of 136 scalars: ~3 ns/element). d/dx_k =
    // (the other blocks' products before, and the lanes before b in the block) x
    // (lane b's prefix and suffix around k) x (the lanes after b, the blocks
    // after, g): the product of every other element, no division, so exact at
    // zeros as before. The order of the roundings differs from the sequential
    // chain (the same bound, n - 1 multiplies; measured: benchmarks/README.md
    // h112-prodgrad). Fixed by the run's length: the same bits at any thread count.
    constexpr int64_t L = 128, B = 16, BL = B * L;
    parallel_for(rows, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, run)), [&](int64_t r0, int64_t r1) {
      std::vector<Acc> sp, before, after, lanes, pre;  // lanes: B per full block
      for (int64_t r = r0; r < r1; ++r) {
        const T* ar = a + r * run;
        T* o = po + r * run;
        if (run < BL) {
          pre.resize(run);
          prod_chain_vjp<T, Acc>(ar, run, Acc(1), Acc(pg[r]), o, pre.data());
          continue;
        }
        const int64_t nf = run / BL, ns = nf + (run % BL != 0);  // full blocks; blocks with the tail
        sp.resize(ns);
        before.resize(ns);
        after.resize(ns);
        lanes.resize(nf * B);
        // The range proof. The lane order multiplies other subsets than the chains
        // do: a row with a period dividing B (1e15, 1e-15, ...) overflows a lane
        // where the chains do not. So the lane layout is used only when every
        // running lane product stays in [2^-200, 2^200] (pass 1 checks each one)
        // and every block factor (f, q below) in [2^-600, 2^600]. Then f x a lane
        // prefix lies in [2^-800, 2^800] and a lane's running suffix x q in
        // [2^-1000, 2^1000] (a suffix is the lane's total over a prefix: within
        // 2^+-400), so no intermediate overflows or goes subnormal and each
        // gradient is n - 1 multiplies each within half an ulp, the chains' bound
        // (the last one, the gradient itself, rounds as the chains' last does).
        // Otherwise (zeros, inf, NaN, g = 0, wide magnitudes) the row takes the
        // chains: their bits. Pass 1 checks every running product (not a cheaper
        // per-block range of |x|: h117-prodgrad in benchmarks/README.md).
        const Acc flo = std::ldexp(Acc(1), -600), fhi = std::ldexp(Acc(1), 600);
        std::vector<char> ok(ns);
        // Pass 1: each block's lane products (x read once), and the block's product (lanes in order).
        parallel_for(ns, std::max<int64_t>(1, kGrainElements / BL), [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const T* x = ar + t * BL;
            if (t == nf) {  // the tail: one sequential chain
              bool in;
              sp[t] = prod_seq<T>(x, run - nf * BL, &in);
              ok[t] = in;
              continue;
            }
            ok[t] = prod_lanes(x, &lanes[t * B]);
            Acc s = 1;
            for (int64_t b = 0; b < B; ++b) s *= lanes[t * B + b];
            sp[t] = s;
          }
        });
        bool use_lanes = true;
        for (int64_t t = 0; t < ns; ++t) use_lanes = use_lanes && ok[t];
        if (use_lanes) {
          prod_scans<Acc>(sp.data(), ns, Acc(pg[r]), before.data(), after.data());
          // the block factors: before x the lanes before b, the lanes after b x after
          for (int64_t t = 0; t < ns && use_lanes; ++t) {
            Acc e = before[t], q = after[t];
            auto in = [&](Acc v) { return std::fabs(v) >= flo && std::fabs(v) <= fhi; };
            use_lanes = in(e) && in(q);
            for (int64_t b = 0; t < nf && b < B; ++b) {
              e *= lanes[t * B + b];
              q *= lanes[t * B + B - 1 - b];
              use_lanes = use_lanes && in(e) && in(q);
            }
          }
        }
        if (!use_lanes) {
          prod_vjp_chains<T>(ar, pg[r], o, run);
          continue;
        }
        // Pass 2 per block: lane prefixes into a buffer (L1), then suffixes back, o written once.
        parallel_for(ns, std::max<int64_t>(1, kGrainElements / BL), [&](int64_t t0, int64_t t1) {
          Acc f[B], q[B], tail[BL];
          for (int64_t t = t0; t < t1; ++t) {
            const T* x = ar + t * BL;
            T* y = o + t * BL;
            if (t == nf) {  // the tail
              prod_chain_vjp<T, Acc>(x, run - nf * BL, before[t], after[t], y, tail);
              continue;
            }
            // f[b] = before x the lanes before b; q[b] = the lanes after b x after.
            const Acc* lp = &lanes[t * B];
            Acc e = before[t];
            for (int64_t b = 0; b < B; ++b) {
              f[b] = e;
              e *= lp[b];
            }
            e = after[t];
            for (int64_t b = B; b-- > 0;) {
              q[b] = e;
              e *= lp[b];
            }
            prod_grad(x, y, f, q);
          }
        });
      }
    });
  });
  return unpermute(out, x0.shape, perm);
}

// var (or std) over the axes, keepdims form: the mean in double, then the
// sum of squared deviations in double (32 lanes, fixed order), divided by
// max(N - ddof, 0) (0 gives inf or NaN, as NumPy). `mean` (if not null)
// gets the mean, keepdims, in x's dtype.
Tensor moments(const Tensor& x0, const std::vector<bool>& axes, double ddof, bool root, Tensor* mean) {
  Shape keep = x0.shape;
  for (size_t d = 0; d < axes.size(); ++d)
    if (axes[d]) keep[d] = 1;
  Tensor out = Tensor::empty(keep, x0.dtype);
  if (mean) *mean = Tensor::empty(keep, x0.dtype);
  int64_t rows, run;
  std::vector<int64_t> perm;
  Tensor x = runs_of(x0, axes, rows, run, perm);
  if (rows == 0) return out;
  const double den = std::max(double(run) - ddof, 0.0);
  TG_DISPATCH_FLOAT(x.dtype, root ? "std" : "var", {
    const T* a = x.ptr<T>();
    T* o = out.ptr<T>();
    T* pm = mean ? mean->ptr<T>() : nullptr;
    auto ssd = [](const T* p, int64_t k, double m) {  // sum of (p - m)^2 in 32 lanes
      constexpr int L = 32;
      double s[L] = {};
      int64_t i = 0;
      for (; i + L <= k; i += L)
        for (int l = 0; l < L; ++l) {
          const double d = double(p[i + l]) - m;
          s[l] += d * d;
        }
      for (; i < k; ++i) {
        const double d = double(p[i]) - m;
        s[0] += d * d;
      }
      for (int w = L / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) s[l] += s[l + w];
      return s[0];
    };
    auto finish = [&](int64_t r, double m, double ss) {
      const double v = ss / den;
      o[r] = T(root ? std::sqrt(v) : v);
      if (pm) pm[r] = T(m);
    };
    if (rows == 1 && run >= 2 * kSumChunk) {  // fixed chunks, combined in order
      const int64_t chunks = (run + kSumChunk - 1) / kSumChunk;
      std::vector<double> part(chunks);
      auto each = [&](auto f) {
        parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) part[c] = f(a + c * kSumChunk, std::min(kSumChunk, run - c * kSumChunk));
        });
      };
      each([&](const T* p, int64_t k) { return isa_sum(p, k); });
      double s = 0;
      for (double q : part) s += q;
      const double m = s / double(run);
      each([&](const T* p, int64_t k) { return ssd(p, k, m); });
      double ss = 0;
      for (double q : part) ss += q;
      finish(0, m, ss);
    } else {
      parallel_for(rows, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, run)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const T* p = a + r * run;
          const double m = run_sum(p, run) / double(run);
          finish(r, m, ssd(p, run, m));
        }
      });
    }
  });
  return out;
}

// var's / std's first-order VJP: g * (x - mean) * c, c = 2 / (N - ddof)
// (var) or 1 / ((N - ddof) std) (std; 0 where std is 0), den = max(N - ddof, 0); g, mean and y keepdims.
Tensor moments_vjp(const Tensor& x0, const Tensor& mean, const Tensor& y, const Tensor& g0,
                   const std::vector<bool>& axes, double den, bool root) {
  int64_t rows, run;
  std::vector<int64_t> perm;
  Tensor x = runs_of(x0, axes, rows, run, perm);
  Tensor gc = g0.dtype == x.dtype ? g0 : astype(g0, x.dtype);
  TG_CONTIGUOUS(g, gc);
  TG_CONTIGUOUS(m, mean);
  TG_CONTIGUOUS(yy, y);
  Tensor out = Tensor::empty(x.shape, x.dtype);
  if (x.numel() == 0) return perm.empty() ? out : Tensor::empty(x0.shape, x0.dtype);
  TG_DISPATCH_FLOAT(x.dtype, root ? "std" : "var", {
    const T* a = x.ptr<T>();
    const T* pg = g.ptr<T>();
    const T* pm = m.ptr<T>();
    const T* py = yy.ptr<T>();
    T* po = out.ptr<T>();
    parallel_for(rows, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, run)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        // (std: 0 where std is 0, as PyTorch's std_backward masks it)
        const T c = root ? (py[r] == T(0) ? T(0) : T(pg[r] / (T(den) * py[r]))) : T(pg[r] * (T(2) / T(den)));
        const T mr = pm[r];
        const T* p = a + r * run;
        T* o = po + r * run;
        for (int64_t i = 0; i < run; ++i) o[i] = (p[i] - mr) * c;
      }
    });
  });
  return unpermute(out, x0.shape, perm);
}

// ----- h103-reduce: norm's sum of squares in one pass
// The sum of x * x over trailing axes (keepdims form), with the bits of
// reduce(Sum, multiply(x, x)): each square rounded in T, then sum's lanes and
// chunks. Undefined when the axes are not trailing (sum's other paths: the
// caller multiplies and sums instead).
Tensor sum_squares(const Tensor& x0, const std::vector<bool>& axes) {
  TG_CONTIGUOUS(x, x0);
  int64_t rows, run;
  if (x.numel() == 0 || !trailing_runs(x, axes, rows, run)) return Tensor();
  Shape out_shape = x.shape;
  for (size_t d = 0; d < axes.size(); ++d)
    if (axes[d]) out_shape[d] = 1;
  Tensor out = Tensor::empty(out_shape, x.dtype);
  TG_DISPATCH_FLOAT(x.dtype, "norm", { reduce_runs<T>(ReduceOp::Sum, x.ptr<T>(), out.ptr<T>(), rows, run, true); });
  return out;
}

}  // namespace tg::kern
