// h94-gather: NumPy's take, take_along_axis, repeat and tile in C++. Each builds
// the flat positions it reads and calls the one gather primitive (shape.cpp:
// GatherRule, whose VJP scatter-adds with np.add.at's accumulation of
// repeated indices and whose JVP gathers the tangent). tile is a broadcast
// view copied once (VJP: broadcast_to's exact sum); repeat by one count is
// one copy loop with its rule beside it (RepeatRule: the same sum).
#include <atomic>
#include <cstring>

#include "ops/common.hpp"
#include "tapegrad/parallel.hpp"

namespace tg {

namespace gather_detail {

// NumPy's message for an index outside [-n, n), naming the op.
[[noreturn]] void out_of_bounds(const char* op, int64_t index, int64_t axis, int64_t n) {
  throw index_error(std::string(op) + ": index " + std::to_string(index) + " is out of bounds for axis " +
                    std::to_string(axis) + " with size " + std::to_string(n));
}

// idx (int64, any shape) wrapped into [0, n) (negative ones count from the end), into `out`.
// Split among the threads above the grain; a bad index is searched for in
// index order afterwards, so the message names the first one at any thread count.
void wrap_into(const char* op, const Tensor& idx, int64_t axis, int64_t n, int64_t* out) {
  const int64_t* p = idx.ptr<int64_t>();
  const int64_t k = idx.numel();
  std::atomic<bool> bad{false};
  parallel_for(k, kGrainElements, [&](int64_t b, int64_t e) {
    bool ok = true;
    for (int64_t i = b; i < e; ++i) {  // branch-free: one pass, the first bad one searched only on failure
      const int64_t v = p[i] + (p[i] < 0 ? n : 0);
      ok &= v >= 0 && v < n;
      out[i] = v;
    }
    if (!ok) bad.store(true, std::memory_order_relaxed);
  });
  if (!bad.load(std::memory_order_relaxed)) return;
  for (int64_t i = 0; i < k; ++i)
    if (p[i] < -n || p[i] >= n) out_of_bounds(op, p[i], axis, n);
}

// The gather of rows `rows` (int64, each in [0, shape[axis]), shape rshape)
// from axis `axis` of x: shape[:axis] + rshape + shape[axis+1:]. With no
// leading axis of length > 1 the rows are the index as they are; otherwise
// each leading row adds its offset (the primitive reads flat positions over
// x's first axis + 1 axes).
Var gather_axis(const Var& x, const int64_t* rows, const Shape& rshape, int64_t axis) {
  const Shape& s = x->shape();
  const int64_t outer = numel(Shape(s.begin(), s.begin() + axis)), n = s[axis], k = numel(rshape);
  Shape ishape(s.begin(), s.begin() + axis);
  ishape.insert(ishape.end(), rshape.begin(), rshape.end());
  Tensor index = Tensor::empty(ishape, DType::I64);
  int64_t* o = index.ptr<int64_t>();
  for (int64_t b = 0; b < outer; ++b)
    for (int64_t j = 0; j < k; ++j) o[b * k + j] = b * n + rows[j];
  return gather(x, index, axis + 1);
}

template <class E>
void repeat_rows(const E* px, E* po, int64_t rows, int64_t r, int64_t inner) {
  parallel_for(rows, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, r * inner)), [&](int64_t b, int64_t e) {
    if (inner == 1) {
      for (int64_t i = b; i < e; ++i) {
        const E v = px[i];
        for (int64_t c = 0; c < r; ++c) po[i * r + c] = v;
      }
      return;
    }
    for (int64_t i = b; i < e; ++i)
      for (int64_t c = 0; c < r; ++c)
        std::memcpy(po + (i * r + c) * inner, px + i * inner, static_cast<size_t>(inner) * sizeof(E));
  });
}

Var repeat_count(const Var& x, int64_t axis, int64_t r);

// repeat by one count r along `axis`: element i becomes r consecutive ones.
// The VJP sums the r copies (a reshape that splits the axis, then a sum
// over the new one: broadcast_to's rule, exact); the JVP repeats the tangent.
struct RepeatRule {
  static constexpr const char* name = "repeat";
  struct Attrs { int64_t axis = 0, r = 1; Shape in_shape; };
  static Grads vjp(OpNode<RepeatRule>& n, const Var& g) {
    const int nb = n.batch_dims(g);
    Shape split = n.attrs.in_shape;
    split.insert(split.begin() + n.attrs.axis + 1, n.attrs.r);
    return {sum(reshape(g, with_batch(g, nb, split)), Axes{nb + n.attrs.axis + 1}, false)};
  }
  static Var jvp(OpNode<RepeatRule>& n, const Grads& t, int nb) { return repeat_count(t[0], nb + n.attrs.axis, n.attrs.r); }
};

// One copy loop (repeat_rows): the broadcast view's strided copy walked runs
// of r equal elements, a fill call and an odometer step per run, ~2 ns per
// element at r = 2 (1M float32: 4.1 vs 0.9 ms, thread CPU).
Var repeat_count(const Var& x, int64_t axis, int64_t r) {
  const Shape& s = x->shape();
  Shape out = s;
  out[axis] *= r;
  Tensor y = Tensor::empty(out, x->dtype());
  if (y.numel()) {
    const Tensor xc = x->data.contiguous();
    const int64_t rows = numel(Shape(s.begin(), s.begin() + axis + 1)), inner = numel(Shape(s.begin() + axis + 1, s.end()));
    if (itemsize(x->dtype()) == 8)
      repeat_rows(static_cast<const uint64_t*>(xc.raw()), static_cast<uint64_t*>(y.raw()), rows, r, inner);
    else
      repeat_rows(static_cast<const uint32_t*>(xc.raw()), static_cast<uint32_t*>(y.raw()), rows, r, inner);
  }
  Recorder<RepeatRule> rec(std::move(y), {&x});
  if (rec) rec.attrs() = RepeatRule::Attrs{axis, r, s};
  return std::move(rec.out);
}

Shape row_major_strides(const Shape& s) {
  Shape st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

}  // namespace gather_detail

Var take(const Var& x, const Tensor& indices, std::optional<int64_t> axis) {
  using namespace gather_detail;
  if (indices.dtype != DType::I64) throw type_error("take: internal error: indices must be int64");
  if (!axis || x->data.ndim() == 0) {  // the flattened array (a 0-d x has one axis to NumPy's take)
    if (axis && *axis != 0 && *axis != -1) normalize_axis(*axis, 1, "take");
    return take_rows_fused("take", x, indices, 1, x->data.numel(), 0, indices.shape);
  }
  const int64_t a = normalize_axis(*axis, x->data.ndim(), "take");
  if (x->data.ndim() == 1) return take_rows_fused("take", x, indices, 1, x->shape()[0], 0, indices.shape);
  Tensor rows = Tensor::empty(indices.shape, DType::I64);
  wrap_into("take", indices, a, x->shape()[a], rows.ptr<int64_t>());
  if (a == 0) return gather(x, rows, 1);
  return gather_axis(x, rows.ptr<int64_t>(), indices.shape, a);
}

Var take_along_axis(const Var& x, const Tensor& indices, std::optional<int64_t> axis) {
  using namespace gather_detail;
  if (indices.dtype != DType::I64) throw type_error("take_along_axis: internal error: indices must be int64");
  if (!axis) {
    if (indices.ndim() != 1)
      throw value_error("take_along_axis: with axis=None the indices must be 1-d (they index the flattened array), "
                        "got shape " + shape_str(indices.shape));
    return take(x, indices, std::nullopt);
  }
  const int64_t nd = x->data.ndim();
  if (indices.ndim() != nd)
    throw value_error("take_along_axis: indices and x must have the same number of dimensions, got shapes " +
                      shape_str(indices.shape) + " and " + shape_str(x->shape()));
  const int64_t a = normalize_axis(*axis, nd, "take_along_axis");
  const Shape& xs = x->shape();
  const Shape& is = indices.shape;
  if (a == nd - 1 && std::equal(is.begin(), is.end() - 1, xs.begin()))  // rows of the last axis, no broadcast
    return take_rows_fused("take_along_axis", x, indices, numel(Shape(xs.begin(), xs.end() - 1)), xs[a], a, is);
  // The result's shape: x's and the indices' broadcast outside `axis`, the indices' along it.
  Shape out(nd);
  for (int64_t d = 0; d < nd; ++d) {
    if (d == a || xs[d] == is[d] || xs[d] == 1 || is[d] == 1) {
      out[d] = d == a ? is[d] : (xs[d] == 1 ? is[d] : xs[d]);
      continue;
    }
    throw index_error("take_along_axis: shape mismatch: indices of shape " + shape_str(is) +
                      " do not broadcast against x of shape " + shape_str(xs) + " outside axis " + std::to_string(a));
  }
  const Shape xst = row_major_strides(xs), ist = row_major_strides(is);
  // per output axis: the step in x's flat positions (0 along `axis` and where x broadcasts) and in the indices
  Shape sx(nd), si(nd);
  for (int64_t d = 0; d < nd; ++d) {
    sx[d] = d == a || xs[d] == 1 ? 0 : xst[d];
    si[d] = is[d] == 1 ? 0 : ist[d];
  }
  const int64_t n = xs[a], step = xst[a], total = numel(out);
  Tensor index = Tensor::empty(out, DType::I64);
  int64_t* o = index.ptr<int64_t>();
  const int64_t* p = indices.ptr<int64_t>();
  if (total > 0) {
    const int64_t last = out[nd - 1], lx = sx[nd - 1], li = si[nd - 1], nrows = total / std::max<int64_t>(1, last);
    std::atomic<bool> bad{false};
    // Rows of the last axis split among the threads: each range finds its
    // first row's offsets, then steps the odometer over the leading axes.
    parallel_for(last ? nrows : 0, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, last)), [&](int64_t rb, int64_t re) {
      Shape pos(nd, 0);
      int64_t bx = 0, bi = 0;
      for (int64_t d = nd - 2, r = rb; d >= 0; --d) {
        pos[d] = r % out[d];
        r /= out[d];
        bx += pos[d] * sx[d];
        bi += pos[d] * si[d];
      }
      bool ok = true;
      for (int64_t row = rb; row < re; ++row) {
        int64_t* orow = o + row * last;
        for (int64_t j = 0; j < last; ++j) {
          const int64_t v0 = p[bi + j * li], v = v0 + (v0 < 0 ? n : 0);
          ok &= v >= 0 && v < n;
          orow[j] = bx + j * lx + v * step;
        }
        for (int64_t d = nd - 2; d >= 0; --d) {  // the odometer over the leading axes
          bx += sx[d];
          bi += si[d];
          if (++pos[d] < out[d]) break;
          bx -= sx[d] * out[d];
          bi -= si[d] * out[d];
          pos[d] = 0;
        }
      }
      if (!ok) bad.store(true, std::memory_order_relaxed);
    });
    if (bad.load(std::memory_order_relaxed))
      for (int64_t i = 0; i < indices.numel(); ++i)
        if (p[i] < -n || p[i] >= n) out_of_bounds("take_along_axis", p[i], a, n);
  }
  return gather(x, index, -1);
}

Var repeat(const Var& x, const Tensor& repeats, std::optional<int64_t> axis) {
  using namespace gather_detail;
  if (repeats.dtype != DType::I64) throw type_error("repeat: internal error: repeats must be int64");
  Var v = x;
  int64_t a = 0;
  if (!axis || x->data.ndim() == 0) {  // the flattened array (a 0-d x has one axis to NumPy's repeat)
    if (axis && *axis != 0 && *axis != -1) normalize_axis(*axis, 1, "repeat");
    if (x->data.ndim() != 1) v = reshape(x, Shape{x->data.numel()});
  } else {
    a = normalize_axis(*axis, x->data.ndim(), "repeat");
  }
  const int64_t n = v->shape()[a], k = repeats.numel();
  if (repeats.ndim() > 1 || (k != 1 && k != n))
    throw value_error("repeat: repeats of shape " + shape_str(repeats.shape) + " do not broadcast to the " +
                      std::to_string(n) + " elements along axis " + std::to_string(a));
  const int64_t* r = repeats.ptr<int64_t>();
  int64_t total = 0;
  for (int64_t i = 0; i < k; ++i) {
    if (r[i] < 0) throw value_error("repeat: repeats may not contain negative values, got " + std::to_string(r[i]));
    if (__builtin_add_overflow(total, r[i], &total)) throw value_error("repeat: the repeated length overflows int64");
  }
  if (k == 1) {
    if (n != 0 && r[0] > std::numeric_limits<int64_t>::max() / n)
      throw value_error("repeat: the repeated length overflows int64");
    return repeat_count(v, a, r[0]);
  }
  Tensor rows = Tensor::empty(Shape{total}, DType::I64);  // element i, r[i] times
  int64_t* o = rows.ptr<int64_t>();
  for (int64_t i = 0, j = 0; i < n; ++i)
    for (int64_t c = 0; c < r[i]; ++c) o[j++] = i;
  return a == 0 ? gather(v, rows, 1) : gather_axis(v, o, Shape{total}, a);
}

Var tile(const Var& x, const Shape& reps0) {
  const Shape& s0 = x->shape();
  const size_t d = std::max(reps0.size(), s0.size());
  Shape reps(d - reps0.size(), 1), s(d - s0.size(), 1);  // NumPy's leading ones on the shorter
  reps.insert(reps.end(), reps0.begin(), reps0.end());
  s.insert(s.end(), s0.begin(), s0.end());
  Shape split, wide, out;  // (1, n) per axis, broadcast to (r, n), merged to r * n
  for (size_t i = 0; i < d; ++i) {
    if (reps[i] < 0) throw value_error("tile: negative dimensions are not allowed, got reps " + shape_str(reps0));
    split.insert(split.end(), {1, s[i]});
    wide.insert(wide.end(), {reps[i], s[i]});
    int64_t m;
    if (__builtin_mul_overflow(reps[i], s[i], &m)) throw value_error("tile: the tiled shape overflows int64");
    out.push_back(m);
  }
  check_shape(out, "tile");
  Var y = reshape(broadcast_to(reshape(x, split), wide), out);
  // all reps 1 (or no element): the reshapes were views of x, and NumPy's tile returns a copy
  return y->data.storage.get() == x->data.storage.get() ? positive(y) : y;
}

}  // namespace tg
