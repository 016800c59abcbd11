// h95-shape: NumPy's split / array_split, flip, atleast_*, pad (constant) and
// roll in C++ (tapegrad's compositions, opspec/ops.py COMPOSITIONS, call these
// from the bindings in one call; the reference and symbolic engines keep the
// Python bodies of python/tapegrad/_compose.py). Two general primitives carry
// them: the strided view `basic_index` (split's parts, flip) and its adjoint
// `basic_index_embed`; pad is a filled embed (its VJP the strided view of g),
// roll a block copy whose VJP is the roll back. atleast_* are reshapes.
#include <cmath>
#include <limits>

#include "ops/common.hpp"
#include "ops/embed_rule.hpp"

namespace tg {

namespace {
// The parts' bounds as NumPy's slices x[a:b] along the axis (Python's slice rules: negative values count
// from the end, out of range ones clamp, b < a gives an empty part).
int64_t clamp_bound(int64_t v, int64_t n) {
  if (v < 0) v = v < -n ? 0 : v + n;
  return v > n ? n : v;
}
}  // namespace

std::vector<Var> split_at(const Var& x, const std::vector<int64_t>& points, int64_t axis) {
  const Shape& s = x->shape();
  std::vector<Var> out;
  out.reserve(points.size() + 1);
  const int64_t n = s[axis];
  int64_t prev = 0;
  for (size_t i = 0; i <= points.size(); ++i) {
    const int64_t a = clamp_bound(prev, n), b = i < points.size() ? clamp_bound(points[i], n) : n;
    const int64_t start = a, len = b > a ? b - a : 0;
    out.push_back(basic_index(x, BasicIndex::on_axis(s, axis, len ? start : 0, len)));
    if (i < points.size()) prev = points[i];
  }
  return out;
}

Var flip(const Var& x, const std::optional<Axes>& axes0) {
  const Shape& s = x->shape();
  const int64_t nd = static_cast<int64_t>(s.size());
  std::vector<bool> rev(s.size(), !axes0);
  if (axes0)
    for (int64_t a : normalize_axes(*axes0, nd, "flip")) rev[a] = true;
  BasicIndex ix;
  ix.start = Shape(s.size(), 0);
  for (int64_t d = 0; d < nd; ++d) {
    if (rev[d] && s[d] > 0) ix.start[d] = s[d] - 1;
    ix.out_shape.push_back(s[d]);
    ix.in_axis.push_back(d);
    ix.step.push_back(rev[d] ? -1 : 1);
  }
  return basic_index(x, ix);  // a view, as NumPy's flip
}

Var atleast(const Var& x, int n) {
  const Shape& s = x->shape();
  if (static_cast<int>(s.size()) >= n) return x;  // x itself, as NumPy's (asanyarray)
  Shape out;
  if (s.empty()) out = Shape(static_cast<size_t>(n), 1);
  else if (s.size() == 1) out = n == 2 ? Shape{1, s[0]} : Shape{1, s[0], 1};
  else out = Shape{s[0], s[1], 1};
  return reshape(x, out);
}

namespace {
// pad: `value` around x (the interior is ix of the result): getitem's backward's rule (embed_rule.hpp).
struct PadName { static constexpr const char* name = "pad"; };
using PadConstRule = EmbedRule<PadName>;

template <class T>
void fill_range(char* base, int64_t from, int64_t to, double value) {
  std::fill(reinterpret_cast<T*>(base) + from, reinterpret_cast<T*>(base) + to, static_cast<T>(value));
}
void fill_elements(Tensor& t, int64_t from, int64_t to, double value) {
  if (to <= from) return;
  char* base = static_cast<char*>(t.data_ptr());
  if (value == 0 && !std::signbit(value)) {
    kern::zero_bytes(base + from * itemsize(t.dtype), static_cast<size_t>(to - from) * itemsize(t.dtype));
    return;
  }
  TG_DISPATCH_FLOAT(t.dtype, "pad", fill_range<T>(base, from, to, value));
}
}  // namespace

Var pad_constant(const Var& x, const std::vector<std::pair<int64_t, int64_t>>& widths, double value) {
  const Shape& s = x->shape();
  Shape shape(s.size());
  BasicIndex ix;
  ix.start = Shape(s.size(), 0);
  for (size_t d = 0; d < s.size(); ++d) {
    const auto [before, after] = widths[d];
    if (before < 0 || after < 0)
      throw value_error("pad: negative pad_width (" + std::to_string(before) + ", " + std::to_string(after) +
                        ") for axis " + std::to_string(d));
    if (before > std::numeric_limits<int64_t>::max() / 4 || after > std::numeric_limits<int64_t>::max() / 4)
      throw value_error("pad: pad_width (" + std::to_string(before) + ", " + std::to_string(after) + ") is too large");
    shape[d] = s[d] + before + after;
    ix.start[d] = before;
    ix.out_shape.push_back(s[d]);
    ix.in_axis.push_back(static_cast<int64_t>(d));
    ix.step.push_back(1);
  }
  check_shape(shape, "pad");  // (the padded size must fit)
  Tensor out = Tensor::empty(shape, x->dtype());
  const Tensor at = ix.apply(out);
  if (at.is_contiguous() && at.numel() > 0) {  // one block (a vector, or padding of the first axis only)
    fill_elements(out, 0, at.offset - out.offset, value);
    fill_elements(out, at.offset - out.offset + at.numel(), out.numel(), value);
  } else {
    fill_elements(out, 0, out.numel(), value);
  }
  if (at.numel() > 0) kern::copy_strided(at, x->data);
  Recorder<PadConstRule> r(std::move(out), {&x});
  if (r) r.attrs().ix = std::move(ix);
  return std::move(r.out);
}

namespace {
// roll: each rolled axis splits into the blocks [0, n - s) -> [s, n) and [n - s, n) -> [0, s); the
// 2^k block copies (k rolled axes) move every element once. Its VJP is the roll back.
Tensor roll_tensor(const Tensor& x, const Axes& shifts, const Axes& axes) {
  Tensor out = Tensor::empty(x.shape, x.dtype);
  if (out.numel() == 0) return out;
  const Shape xs = x.strides(), os = out.strides();
  const size_t k = axes.size();
  for (uint64_t mask = 0; mask < (uint64_t(1) << k); ++mask) {
    Shape shape = x.shape;
    int64_t xoff = x.offset, ooff = out.offset;
    bool empty = false;
    for (size_t i = 0; i < k; ++i) {
      const int64_t a = axes[i], n = x.shape[a], s = shifts[i];
      if (mask >> i & 1) {  // the tail [n - s, n) goes to [0, s)
        shape[a] = s;
        xoff += (n - s) * xs[a];
      } else {  // the head [0, n - s) goes to [s, n)
        shape[a] = n - s;
        ooff += s * os[a];
      }
      empty = empty || shape[a] == 0;
    }
    if (empty) continue;
    kern::copy_strided(Tensor::strided(out.storage, shape, os, ooff, out.dtype),
                       Tensor::strided(x.storage, shape, xs, xoff, x.dtype));
  }
  return out;
}

struct RollRule {
  static constexpr const char* name = "roll";
  struct Attrs { Axes shifts, axes; };
  static Axes shifted_axes(const Axes& axes, int nb) {
    Axes r = axes;
    for (int64_t& a : r) a += nb;
    return r;
  }
  static Grads vjp(OpNode<RollRule>& n, const Var& g) {
    Axes back;
    for (size_t i = 0; i < n.attrs.axes.size(); ++i) {
      const int64_t len = n.out_shape[n.attrs.axes[i]];
      back.push_back(n.attrs.shifts[i] ? len - n.attrs.shifts[i] : 0);
    }
    return {roll_axes(g, back, shifted_axes(n.attrs.axes, n.batch_dims(g)))};
  }
  static Var jvp(OpNode<RollRule>& n, const Grads& t, int nb) {
    return roll_axes(t[0], n.attrs.shifts, shifted_axes(n.attrs.axes, nb));
  }
};
}  // namespace

// shifts already in [0, n) per (distinct, normalized) axis.
Var roll_axes(const Var& x, const Axes& shifts, const Axes& axes) {
  Axes s, a;
  for (size_t i = 0; i < axes.size(); ++i)
    if (shifts[i]) {
      s.push_back(shifts[i]);
      a.push_back(axes[i]);
    }
  Recorder<RollRule> r(roll_tensor(x->data, s, a), {&x});  // (no shift: a copy, as NumPy's roll)
  if (r) r.attrs() = RollRule::Attrs{std::move(s), std::move(a)};
  return std::move(r.out);
}

Var roll(const Var& x, const Axes& shift, const std::optional<Axes>& axis) {
  const Shape& sh = x->shape();
  if (!axis && sh.size() != 1) {  // NumPy's: the flattened array rolled, then reshaped
    const Var flat = reshape(x, Shape{-1});
    return reshape(roll(flat, shift, Axes{0}), sh);
  }
  const Axes ax0 = axis ? *axis : Axes{0};
  const int64_t nd = static_cast<int64_t>(sh.size());
  if (shift.size() != ax0.size() && shift.size() != 1 && ax0.size() != 1)
    throw value_error("roll: shift and axis differ in length (" + std::to_string(shift.size()) + " and " +
                      std::to_string(ax0.size()) + ") and neither is a single value");
  const size_t m = std::max(shift.size(), ax0.size());
  Axes total(sh.size(), 0);
  for (size_t i = 0; i < m; ++i) {  // broadcast as NumPy's; shifts of a repeated axis add up
    const int64_t a = normalize_axis(ax0[ax0.size() == 1 ? 0 : i], nd, "roll");
    const int64_t n = sh[a];
    if (n == 0) continue;
    const int64_t s = shift[shift.size() == 1 ? 0 : i] % n;
    total[a] = ((total[a] + s) % n + n) % n;
  }
  Axes shifts, axes;
  for (int64_t d = 0; d < nd; ++d) {
    shifts.push_back(total[d]);
    axes.push_back(d);
  }
  return roll_axes(x, shifts, axes);
}

}  // namespace tg
