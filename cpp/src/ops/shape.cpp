// Shape primitives (all linear: the JVP is the op itself on the tangent):
// reshape, transpose, broadcast_to, concatenate / stack, narrow / pad, and
// gather / scatter_add (indexing); and the axis helpers. Each rule struct
// sits beside its public forward function.
#include <limits>

#include "ops/common.hpp"
#include "ops/embed_rule.hpp"

#include "tapegrad/parallel.hpp"

namespace tg {

// ----- axes -------------------------------------------------------------------
int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op) {
  if (axis < -ndim || axis >= ndim)
    throw value_error(std::string(op) + ": axis " + std::to_string(axis) + " is out of bounds for an array of dimension " +
                      std::to_string(ndim));
  return axis < 0 ? axis + ndim : axis;
}

Axes normalize_axes(const Axes& axes, int64_t ndim, const char* op) {
  Axes out;
  for (int64_t a : axes) {
    int64_t n = normalize_axis(a, ndim, op);
    if (std::find(out.begin(), out.end(), n) != out.end())
      throw value_error(std::string(op) + ": repeated axis " + std::to_string(a));
    out.push_back(n);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Shape primitives: all linear (the JVP is the op itself on the tangent).
// ---------------------------------------------------------------------------

namespace {
struct ReshapeRule {
  static constexpr const char* name = "reshape";
  static constexpr bool pointwise = true;
  struct Attrs { Shape in_shape; };
  static Grads vjp(OpNode<ReshapeRule>& n, const Var& g) { return {reshape(g, with_batch(g, n.batch_dims(g), n.attrs.in_shape))}; }
  static Var jvp(OpNode<ReshapeRule>& n, const Grads& t, int nb) { return reshape(t[0], with_batch(t[0], nb, n.out_shape)); }
};
}  // namespace

Var reshape(const Var& x, const Shape& shape0) {
  Shape shape = shape0;
  int64_t infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != -1) continue;
    if (infer >= 0) throw value_error("reshape: can only specify one unknown dimension (-1), got " + shape_str(shape0));
    infer = static_cast<int64_t>(i);
    shape[i] = 1;  // (for the check: the known dimensions' product)
  }
  check_shape(shape, "reshape");  // axes, negative dimensions, a product that overflows
  const int64_t known = numel(shape);  // (fits: its non-zero factors' product does)
  const int64_t n = x->data.numel();
  if (infer >= 0 && known != 0 && n % known == 0) shape[infer] = n / known;
  if (numel(shape) != n || (infer >= 0 && known == 0))
    throw value_error("reshape: cannot reshape a Variable of shape " + shape_str(x->shape()) + " (size " +
                      std::to_string(n) + ") into shape " + shape_str(shape0));
  if (shape == x->shape() && !grad_enabled()) return x;
  Recorder<ReshapeRule> r(x->data.view(shape), {&x});  // a view: shares storage and version counter
  if (r) r.attrs().in_shape = x->shape();
  return std::move(r.out);
}

namespace {
struct TransposeRule {
  static constexpr const char* name = "transpose";
  struct Attrs { Axes perm; };
  static Axes shifted(const Axes& perm, int nb) {
    Axes p;
    for (int i = 0; i < nb; ++i) p.push_back(i);
    for (int64_t a : perm) p.push_back(a + nb);
    return p;
  }
  static Grads vjp(OpNode<TransposeRule>& n, const Var& g) {
    Axes inv(n.attrs.perm.size());
    for (size_t i = 0; i < inv.size(); ++i) inv[n.attrs.perm[i]] = static_cast<int64_t>(i);
    return {transpose(g, shifted(inv, n.batch_dims(g)))};
  }
  static Var jvp(OpNode<TransposeRule>& n, const Grads& t, int nb) { return transpose(t[0], shifted(n.attrs.perm, nb)); }
};
}  // namespace

Var transpose(const Var& x, const std::optional<Axes>& perm0) {
  int64_t nd = x->data.ndim();
  Axes perm;
  if (!perm0) {
    for (int64_t i = nd - 1; i >= 0; --i) perm.push_back(i);
  } else {
    if (static_cast<int64_t>(perm0->size()) != nd)
      throw value_error("transpose: axes don't match array: got " + std::to_string(perm0->size()) +
                        " axes for a Variable of shape " + shape_str(x->shape()));
    perm = normalize_axes(*perm0, nd, "transpose");
  }
  Recorder<TransposeRule> r(kern::transpose(x->data, perm), {&x});
  if (r) r.attrs().perm = perm;
  return std::move(r.out);
}

namespace {
// broadcast_to and sum_to are each other's VJP.
struct BroadcastRule {
  static constexpr const char* name = "broadcast_to";
  struct Attrs { Shape in_shape; };
  static Grads vjp(OpNode<BroadcastRule>& n, const Var& g) {
    int nb = n.batch_dims(g);
    return {sum_to(g, with_batch(g, nb, n.attrs.in_shape), nb)};
  }
  static Var jvp(OpNode<BroadcastRule>& n, const Grads& t, int nb) {
    return broadcast_to(lift(t[0], nb, n.out_shape.size()), with_batch(t[0], nb, n.out_shape));
  }
};
}  // namespace

Var broadcast_to(const Var& x, const Shape& shape) {
  Recorder<BroadcastRule> r(kern::broadcast_to(x->data, shape, "broadcast_to"), {&x});
  if (r) r.attrs().in_shape = x->shape();
  return std::move(r.out);
}

namespace {
struct ConcatRule {
  static constexpr const char* name = "concatenate";
  struct Attrs { int64_t axis = 0; std::vector<int64_t> sizes; };
  static Grads vjp(OpNode<ConcatRule>& n, const Var& g) {
    int nb = n.batch_dims(g);
    Grads out;
    int64_t start = 0;
    for (size_t i = 0; i < n.attrs.sizes.size(); ++i) {
      out.push_back(n.needs(i) ? basic_index(g, BasicIndex::on_axis(g->shape(), n.attrs.axis + nb, start, n.attrs.sizes[i]))
                               : nullptr);
      start += n.attrs.sizes[i];
    }
    return out;
  }
  static Var jvp(OpNode<ConcatRule>& n, const Grads& t, int nb) {
    Var like;
    for (const Var& v : t) if (v) like = v;
    std::vector<Var> parts;
    for (size_t i = 0; i < n.attrs.sizes.size(); ++i) {
      if (t[i]) {
        parts.push_back(t[i]);
      } else {
        Shape s = with_batch(like, nb, n.out_shape);
        s[n.attrs.axis + nb] = n.attrs.sizes[i];
        parts.push_back(make_var(Tensor::zeros(s, like->dtype())));
      }
    }
    return concatenate(parts, n.attrs.axis + nb);
  }
};
}  // namespace

Var concatenate(const std::vector<Var>& xs0, int64_t axis) {
  if (xs0.empty()) throw value_error("concatenate: need at least one array to concatenate");
  const Shape& s0 = xs0[0]->shape();
  if (s0.empty()) throw value_error("concatenate: zero-dimensional arrays cannot be concatenated");
  axis = normalize_axis(axis, static_cast<int64_t>(s0.size()), "concatenate");
  DType dt = xs0[0]->dtype();
  for (const Var& v : xs0) dt = promote(dt, v->dtype());
  std::vector<Var> xs;
  std::vector<Tensor> ts;
  std::vector<int64_t> sizes;
  xs.reserve(xs0.size());  // (one allocation each, not a regrowth per part)
  ts.reserve(xs0.size());
  sizes.reserve(xs0.size());
  for (size_t i = 0; i < xs0.size(); ++i) {
    const Shape& s = xs0[i]->shape();
    bool ok = s.size() == s0.size();
    for (size_t d = 0; ok && d < s.size(); ++d) ok = (static_cast<int64_t>(d) == axis) || s[d] == s0[d];
    if (!ok)
      throw value_error("concatenate: all the input array dimensions except for the concatenation axis " +
                        std::to_string(axis) + " must match exactly, but input 0 has shape " + shape_str(s0) +
                        " and input " + std::to_string(i) + " has shape " + shape_str(s));
    xs.push_back(xs0[i]->dtype() == dt ? xs0[i] : astype(xs0[i], dt));
    ts.push_back(xs.back()->data);
    sizes.push_back(s[axis]);
  }
  Recorder<ConcatRule> r(kern::concat(ts, axis), xs);
  if (r) r.attrs() = ConcatRule::Attrs{axis, std::move(sizes)};
  return std::move(r.out);
}

namespace {
// stack as one node: the parts, viewed with the new axis (no copy), are
// concatenated; part i's gradient is the view g[..., i, ...] of the
// incoming gradient (a reshape node per part and a narrow and a reshape per
// part in the backward, as stack = concatenate of reshapes had, cost three
// times the nodes in programs that stack scalars: an RK4 right-hand side).
struct StackRule {
  static constexpr const char* name = "stack";
  struct Attrs { int64_t axis = 0; };
  static Grads vjp(OpNode<StackRule>& n, const Var& g) {
    const int64_t axis = n.attrs.axis + n.batch_dims(g);
    Grads out;
    // (h99-scalar) 0-d parts of a contiguous 1-d g, nothing recorded or
    // checked (no create_graph, no anomaly mode): part i's gradient is the
    // 0-d view of g[i] basic_index makes, without building a BasicIndex and
    // calling the op for each (an RK4 right-hand side stacks 20 scalars).
    if (t_modes == 0 && axis == 0 && g->data.shape.size() == 1 && g->data.is_contiguous() &&
        g->data.shape[0] == static_cast<int64_t>(n.next.size())) {
      for (size_t i = 0; i < n.next.size(); ++i) {
        if (!n.needs(i)) {
          out.push_back(nullptr);
          continue;
        }
        Tensor t(g->data.storage, g->data.dtype);
        t.offset = g->data.offset + static_cast<int64_t>(i);
        out.push_back(make_var(std::move(t)));
      }
      return out;
    }
    for (size_t i = 0; i < n.next.size(); ++i)
      out.push_back(n.needs(i) ? basic_index(g, BasicIndex::on_axis(g->shape(), axis, static_cast<int64_t>(i), std::nullopt)) : nullptr);
    return out;
  }
  static Var jvp(OpNode<StackRule>& n, const Grads& t, int nb) {
    Var like;
    for (const Var& v : t) if (v) like = v;
    Shape part = n.out_shape;
    part.erase(part.begin() + n.attrs.axis);
    std::vector<Var> parts;
    for (const Var& v : t) parts.push_back(v ? v : make_var(Tensor::zeros(with_batch(like, nb, part), like->dtype())));
    return stack(parts, n.attrs.axis + nb);
  }
};
}  // namespace

Var stack(const std::vector<Var>& xs, int64_t axis) {
  if (xs.empty()) throw value_error("stack: need at least one array to stack");
  const Shape& s0 = xs[0]->shape();
  axis = normalize_axis(axis, static_cast<int64_t>(s0.size()) + 1, "stack");
  bool one_dtype = true;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (xs[i]->shape() != s0)
      throw value_error("stack: all input arrays must have the same shape, but input 0 has shape " + shape_str(s0) +
                        " and input " + std::to_string(i) + " has shape " + shape_str(xs[i]->shape()));
    one_dtype = one_dtype && xs[i]->dtype() == xs[0]->dtype();
  }
  Shape s = s0;
  s.insert(s.begin() + axis, 1);
  check_shape(s, "stack");  // one axis more than the inputs
  if (!one_dtype) {  // (promotion: concatenate converts the parts)
    std::vector<Var> parts;
    for (const Var& x : xs) parts.push_back(reshape(x, s));
    return concatenate(parts, axis);
  }
  std::vector<Tensor> ts;
  ts.reserve(xs.size());
  for (const Var& x : xs) ts.push_back(x->data.view(s));
  Recorder<StackRule> r(kern::concat(ts, axis), xs);
  if (r) r.attrs().axis = axis;
  return std::move(r.out);
}

namespace {
// narrow and pad_axis are each other's VJP; so are gather and scatter_add.
struct NarrowRule {
  static constexpr const char* name = "narrow";
  struct Attrs { int64_t axis = 0, start = 0, total = 0; };
  static Grads vjp(OpNode<NarrowRule>& n, const Var& g) {
    return {pad_axis(g, n.attrs.axis + n.batch_dims(g), n.attrs.start, n.attrs.total)};
  }
  static Var jvp(OpNode<NarrowRule>& n, const Grads& t, int nb) {
    return narrow(t[0], n.attrs.axis + nb, n.attrs.start, n.out_shape[n.attrs.axis]);
  }
};
}  // namespace

Var narrow(const Var& x, int64_t axis, int64_t start, int64_t length) {
  Recorder<NarrowRule> r(kern::narrow(x->data, axis, start, length), {&x});
  if (r) r.attrs() = NarrowRule::Attrs{axis, start, x->shape()[axis]};
  return std::move(r.out);
}

namespace {
struct PadRule {
  static constexpr const char* name = "pad";
  struct Attrs { int64_t axis = 0, start = 0, length = 0; };
  static Grads vjp(OpNode<PadRule>& n, const Var& g) {
    return {narrow(g, n.attrs.axis + n.batch_dims(g), n.attrs.start, n.attrs.length)};
  }
  static Var jvp(OpNode<PadRule>& n, const Grads& t, int nb) {
    return pad_axis(t[0], n.attrs.axis + nb, n.attrs.start, n.out_shape[n.attrs.axis]);
  }
};
}  // namespace

Var pad_axis(const Var& x, int64_t axis, int64_t start, int64_t total) {
  Recorder<PadRule> r(kern::pad_axis(x->data, axis, start, total), {&x});
  if (r) r.attrs() = PadRule::Attrs{axis, start, x->shape()[axis]};
  return std::move(r.out);
}

Tensor BasicIndex::apply(const Tensor& x) const {
  if (out_shape.empty() && x.is_contiguous()) {  // one element of dense data (v[i]): no strides built
    int64_t off = x.offset, stride = 1;
    for (size_t d = start.size(); d-- > 0;) {
      off += start[d] * stride;
      stride *= x.shape[d];
    }
    Tensor t(x.storage, x.dtype);
    t.offset = off;
    return t;
  }
  const Shape st = x.strides();
  int64_t off = x.offset;
  for (size_t d = 0; d < start.size(); ++d) off += start[d] * st[d];
  Shape ost(out_shape.size());
  for (size_t i = 0; i < out_shape.size(); ++i) ost[i] = in_axis[i] < 0 ? 0 : step[i] * st[in_axis[i]];
  return Tensor::strided(x.storage, out_shape, ost, off, x.dtype);
}

BasicIndex BasicIndex::on_axis(const Shape& shape, int64_t axis, int64_t start, std::optional<int64_t> length) {
  BasicIndex r;
  r.start = Shape(shape.size(), 0);
  r.start[axis] = start;
  for (size_t d = 0; d < shape.size(); ++d) {
    const bool here = static_cast<int64_t>(d) == axis;
    if (here && !length) continue;
    r.out_shape.push_back(here ? *length : shape[d]);
    r.in_axis.push_back(static_cast<int64_t>(d));
    r.step.push_back(1);
  }
  return r;
}

BasicIndex BasicIndex::with_batch(const Shape& batch) const {
  if (batch.empty()) return *this;
  const int64_t nb = static_cast<int64_t>(batch.size());
  BasicIndex r;
  r.start = Shape(batch.size(), 0);
  r.start.insert(r.start.end(), start.begin(), start.end());
  r.out_shape = batch;
  r.out_shape.insert(r.out_shape.end(), out_shape.begin(), out_shape.end());
  for (int64_t d = 0; d < nb; ++d) {
    r.in_axis.push_back(d);
    r.step.push_back(1);
  }
  for (size_t i = 0; i < in_axis.size(); ++i) {
    r.in_axis.push_back(in_axis[i] < 0 ? -1 : in_axis[i] + nb);
    r.step.push_back(step[i]);
  }
  return r;
}

namespace {
// True when ix selects every element of an array of shape `in` in order
// (None, `...`, full slices, ints on length-1 axes): then its adjoint is a
// reshape, a view of the gradient instead of zeros and a copy.
bool selects_all(const BasicIndex& ix, const Shape& in) {
  if (numel(ix.out_shape) != numel(in)) return false;
  for (size_t i = 0; i < ix.out_shape.size(); ++i)
    if (ix.in_axis[i] >= 0 && ix.out_shape[i] > 1 && ix.step[i] != 1) return false;
  return true;  // (equal counts with unit steps leave no room for a start other than 0)
}

// basic_index and basic_index_embed are each other's VJP.
struct BasicIndexRule {
  static constexpr const char* name = "getitem";
  struct Attrs { BasicIndex ix; Shape in_shape; };
  static Grads vjp(OpNode<BasicIndexRule>& n, const Var& g) {
    const Shape b = batch_shape(g, n.batch_dims(g));
    const Shape in = with_batch(g, static_cast<int>(b.size()), n.attrs.in_shape);
    if (selects_all(n.attrs.ix, n.attrs.in_shape)) return {reshape(g, in)};
    return {basic_index_embed(g, n.attrs.ix.with_batch(b), in)};
  }
  static Var jvp(OpNode<BasicIndexRule>& n, const Grads& t, int nb) {
    return basic_index(t[0], n.attrs.ix.with_batch(batch_shape(t[0], nb)));
  }
  // (Node::vjp_into) A selection that is one contiguous block of the input
  // (v[i], M[i], v[a:b]) adds g into that block of an exclusive dense slot
  // and 0 to the rest: slot + embed(g) bit for bit (x + 0 turns -0 into +0).
  // The first gradient (no slot yet) and everything else take the dense path.
  static bool vjp_into(OpNode<BasicIndexRule>& n, const Var& g, Var& slot) {
    if (!slot || !exclusive(slot)) return false;
    const Tensor& gt = g->data;
    Tensor& st = slot->data;
    if (st.dtype != gt.dtype || !gt.is_contiguous() || g->shape() != n.out_shape || st.shape != n.attrs.in_shape)
      return false;
    const Tensor at = n.attrs.ix.apply(st);
    if (!at.is_contiguous()) return false;
    const int64_t lo = at.offset - st.offset, len = at.numel(), total = st.numel();
    auto add = [&](auto* p, const auto* q) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(q)>>;
      for (int64_t j = 0; j < lo; ++j) p[j] += T(0);
      for (int64_t j = 0; j < len; ++j) p[lo + j] += q[j];
      for (int64_t j = lo + len; j < total; ++j) p[j] += T(0);
    };
    if (st.dtype == DType::F64) add(st.ptr<double>(), gt.ptr<double>());
    else if (st.dtype == DType::F32) add(st.ptr<float>(), gt.ptr<float>());
    else return false;
    return true;
  }
};
struct GetitemBackward { static constexpr const char* name = "getitem backward"; };
using BasicEmbedRule = EmbedRule<GetitemBackward>;  // (embed_rule.hpp: pad's rule too)
}  // namespace

Var basic_index(const Var& x, const BasicIndex& ix) {
  Recorder<BasicIndexRule> r(ix.apply(x->data), {&x});
  if (r) {  // (assigned in place: an Attrs temporary cost a copy of its five Shapes more)
    r.attrs().ix = ix;
    r.attrs().in_shape = x->shape();
  }
  return std::move(r.out);
}

namespace {
// o[0..m): g[0], 0, g[1], 0, ... (m elements; an odd m ends on a g).
template <class E>
void interleave_zeros(E* o, const E* g, int64_t m) {
  const int64_t h = m / 2;
  for (int64_t j = 0; j < h; ++j) {
    o[2 * j] = g[j];
    o[2 * j + 1] = 0;
  }
  if (m & 1) o[m - 1] = g[h];
}

// The strided embed (v[::2], M[::2, 1:-1]) zeroed the whole output, then
// wrote the selection into it: the zeros left the cache before the copy
// came back to the same lines (1M float32 v[::2] at 2 threads: 1.5x
// PyTorch's time). Here the selection's first axis of length > 1 is cut
// into pieces of ~8K elements, each zeroed from the previous piece's end to
// its own and then written while those lines are cached; the pieces are
// split among the threads. Needs positive strides with each row of that
// axis inside its stride (basic indexing with positive steps); false if not.
bool embed_by_rows(const Tensor& at, const Tensor& g, Tensor& out) {
  const Shape st = at.strides(), gs = g.strides();
  size_t a0 = 0;
  while (a0 < at.shape.size() && at.shape[a0] == 1) ++a0;
  if (a0 == at.shape.size() || st[a0] <= 0) return false;
  int64_t span = 0;  // the elements of out one row of axis a0 reaches past its first, minus one
  for (size_t d = a0 + 1; d < st.size(); ++d) {
    if (st[d] < 0) return false;
    span += (at.shape[d] - 1) * st[d];
  }
  if (span >= st[a0]) return false;
  const int64_t len = at.shape[a0], first = at.offset - out.offset, total = out.numel(), row = st[a0];
  const int64_t inner = at.numel() / len, isz = static_cast<int64_t>(itemsize(out.dtype));
  auto pos = [&](int64_t r) { return r == 0 ? 0 : r == len ? total : first + r * row; };
  Shape part = at.shape;
  char* base = static_cast<char*>(out.data_ptr());
  const int64_t piece = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, inner));
  const bool pairs = inner == 1 && row == 2 && gs[a0] == 1 && (isz == 4 || isz == 8);
  parallel_for(len, std::max<int64_t>(1, kGrainElements / row), [&](int64_t b, int64_t e) {
    Shape sh = part;
    for (int64_t r0 = b; r0 < e; r0 += piece) {
      const int64_t r1 = std::min(e, r0 + piece);
      if (pairs) {  // v[::2]: each selected element and the zero after it, one pass, no fill first
        const int64_t p0 = first + 2 * r0, p1 = std::min(first + 2 * r1, total);
        kern::zero_bytes(base + pos(r0) * isz, static_cast<size_t>((p0 - pos(r0)) * isz));  // (before the first)
        if (isz == 8) interleave_zeros(reinterpret_cast<uint64_t*>(base) + p0, static_cast<const uint64_t*>(g.data_ptr()) + r0, p1 - p0);
        else interleave_zeros(reinterpret_cast<uint32_t*>(base) + p0, static_cast<const uint32_t*>(g.data_ptr()) + r0, p1 - p0);
        kern::zero_bytes(base + p1 * isz, static_cast<size_t>((pos(r1) - p1) * isz));  // (after the last)
        continue;
      }
      kern::zero_bytes(base + pos(r0) * isz, static_cast<size_t>((pos(r1) - pos(r0)) * isz));
      sh[a0] = r1 - r0;
      kern::copy_strided(Tensor::strided(out.storage, sh, st, at.offset + r0 * row, out.dtype),
                         Tensor::strided(g.storage, sh, gs, g.offset + r0 * gs[a0], g.dtype));
    }
  });
  return true;
}
}  // namespace

Var basic_index_embed(const Var& g, const BasicIndex& ix, const Shape& shape) {
  Tensor out = Tensor::empty(shape, g->dtype());
  const Tensor at = ix.apply(out);
  const size_t isz = itemsize(out.dtype);
  char* base = static_cast<char*>(out.data_ptr());
  bool done = false;
  // basic indexing selects each position at most once: a selection of as
  // many elements as out (flip's step -1 views) leaves no zero to write
  if (at.is_contiguous() && at.numel() > 0) {  // one block (M[3], v[1:-1]): zero only around it
    const size_t lo = static_cast<size_t>(at.offset) * isz, len = at.nbytes();
    kern::zero_bytes(base, lo);
    kern::zero_bytes(base + lo + len, out.nbytes() - lo - len);
  } else if (at.numel() != out.numel()) {
    // (small: the whole zero fill stays cached anyway)
    done = out.numel() >= (1 << 16) && embed_by_rows(at, g->data, out);
    if (!done) kern::zero_bytes(base, out.nbytes());
  }
  if (!done) kern::copy_strided(at, g->data);
  Recorder<BasicEmbedRule> r(std::move(out), {&g});
  if (r) r.attrs().ix = ix;
  return std::move(r.out);
}

namespace {
// The rows (of the trailing axes) an index over the first `lead` axes of
// `shape` selects: (number of rows, elements per row).
std::pair<int64_t, int64_t> rows_inner(const Shape& shape, int64_t lead) {
  return {numel(Shape(shape.begin(), shape.begin() + lead)), numel(Shape(shape.begin() + lead, shape.end()))};
}
Shape gathered_shape(const Tensor& index, const Shape& in_shape, int64_t lead) {
  Shape out = index.shape;
  out.insert(out.end(), in_shape.begin() + lead, in_shape.end());
  return out;
}

struct GatherRule {
  static constexpr const char* name = "getitem";
  struct Attrs { Tensor index; Shape in_shape; int64_t lead = 0; };
  static Grads vjp(OpNode<GatherRule>& n, const Var& g) {
    return {batched_scatter(g, n.attrs.index, n.attrs.in_shape, n.batch_dims(g), n.attrs.lead)};
  }
  static Var jvp(OpNode<GatherRule>& n, const Grads& t, int nb) {
    return batched_gather(t[0], n.attrs.index, n.attrs.in_shape, nb, n.attrs.lead);
  }
};
}  // namespace

Var gather(const Var& x, const Tensor& index, int64_t lead) {
  if (lead < 0) lead = x->data.ndim();
  const auto [rows, inner] = rows_inner(x->shape(), lead);
  Recorder<GatherRule> r(kern::gather(x->data, index, rows, inner, gathered_shape(index, x->shape(), lead)), {&x});
  if (r) r.attrs() = GatherRule::Attrs{index, x->shape(), lead};
  return std::move(r.out);
}

// h111-takefused: take_rows_fused's node (the rule above, lead = ndim).
Var gather_made(const Var& x, Tensor&& y, const Tensor& positions) {
  Recorder<GatherRule> r(std::move(y), {&x});
  if (r) {
    if (!positions.storage) throw std::logic_error("gather: internal error: recorded without positions");
    r.attrs() = GatherRule::Attrs{positions, x->shape(), x->data.ndim()};
  }
  return std::move(r.out);
}

namespace {
struct ScatterAddRule {
  static constexpr const char* name = "scatter_add";
  struct Attrs { Tensor index; int64_t lead = 0; };
  static Grads vjp(OpNode<ScatterAddRule>& n, const Var& g) {
    return {batched_gather(g, n.attrs.index, n.out_shape, n.batch_dims(g), n.attrs.lead)};
  }
  static Var jvp(OpNode<ScatterAddRule>& n, const Grads& t, int nb) {
    return batched_scatter(t[0], n.attrs.index, n.out_shape, nb, n.attrs.lead);
  }
};
}  // namespace

Var scatter_add(const Var& src, const Tensor& index, const Shape& shape, int64_t lead) {
  if (lead < 0) lead = static_cast<int64_t>(shape.size());
  const auto [rows, inner] = rows_inner(shape, lead);
  Recorder<ScatterAddRule> r(kern::scatter_add(src->data, index, rows, inner, shape), {&src});
  if (r) r.attrs() = ScatterAddRule::Attrs{index, lead};
  return std::move(r.out);
}

// ----- h89-views: diagonal as a strided view and its adjoint (diag, trace);
// squeeze / expand_dims / swapaxes / moveaxis over reshape / transpose -----
namespace {
int64_t diagonal_length(int64_t n1, int64_t n2, int64_t offset) {  // (no overflow for any int64 offset)
  if (offset >= 0) return offset >= n2 ? 0 : std::min(n1, n2 - offset);
  return offset <= -n1 ? 0 : std::min(n1 + offset, n2);
}
// NumPy's diagonal of x over axes a1, a2 as a view (no copy): those axes
// removed and a last axis walking both at once, stride st[a1] + st[a2].
Tensor diagonal_view(const Tensor& x, int64_t offset, int64_t a1, int64_t a2) {
  const Shape st = x.strides();
  const int64_t k = diagonal_length(x.shape[a1], x.shape[a2], offset);
  int64_t off = x.offset;
  if (k > 0) off += offset >= 0 ? offset * st[a2] : -offset * st[a1];
  Shape shape, strides;
  for (int64_t d = 0; d < x.ndim(); ++d) {
    if (d == a1 || d == a2) continue;
    shape.push_back(x.shape[d]);
    strides.push_back(st[d]);
  }
  shape.push_back(k);
  strides.push_back(st[a1] + st[a2]);
  return Tensor::strided(x.storage, shape, strides, off, x.dtype);
}
std::pair<int64_t, int64_t> diagonal_axes(const Var& x, int64_t axis1, int64_t axis2, const char* op) {
  const int64_t nd = x->data.ndim();
  if (nd < 2) throw value_error(std::string(op) + ": needs at least 2 axes, got shape " + shape_str(x->shape()));
  const int64_t a1 = normalize_axis(axis1, nd, op), a2 = normalize_axis(axis2, nd, op);
  if (a1 == a2) throw value_error(std::string(op) + ": axis1 and axis2 cannot be the same");
  return {a1, a2};
}

// diagonal and diag_embed are each other's VJP (as basic_index and its embed).
struct DiagonalRule {
  static constexpr const char* name = "diagonal";
  struct Attrs { int64_t offset = 0, a1 = 0, a2 = 1; Shape in_shape; };
  static Grads vjp(OpNode<DiagonalRule>& n, const Var& g) {
    const int nb = n.batch_dims(g);
    return {diag_embed(g, n.attrs.offset, n.attrs.a1 + nb, n.attrs.a2 + nb, with_batch(g, nb, n.attrs.in_shape))};
  }
  static Var jvp(OpNode<DiagonalRule>& n, const Grads& t, int nb) {
    return diagonal(t[0], n.attrs.offset, n.attrs.a1 + nb, n.attrs.a2 + nb);
  }
};
struct DiagEmbedRule {
  static constexpr const char* name = "diag_embed";
  struct Attrs { int64_t offset = 0, a1 = 0, a2 = 1; };
  static Grads vjp(OpNode<DiagEmbedRule>& n, const Var& g) {
    const int nb = n.batch_dims(g);
    return {diagonal(g, n.attrs.offset, n.attrs.a1 + nb, n.attrs.a2 + nb)};
  }
  static Var jvp(OpNode<DiagEmbedRule>& n, const Grads& t, int nb) {
    return diag_embed(t[0], n.attrs.offset, n.attrs.a1 + nb, n.attrs.a2 + nb, with_batch(t[0], nb, n.out_shape));
  }
};
}  // namespace

Var diagonal(const Var& x, int64_t offset, int64_t axis1, int64_t axis2) {
  const auto [a1, a2] = diagonal_axes(x, axis1, axis2, "diagonal");
  // A view sharing x's storage and version counter: writes through it reach x, as PyTorch's.
  Recorder<DiagonalRule> r(diagonal_view(x->data, offset, a1, a2), {&x});
  if (r) r.attrs() = DiagonalRule::Attrs{offset, a1, a2, x->shape()};
  return std::move(r.out);
}

Var diag_embed(const Var& g, int64_t offset, int64_t a1, int64_t a2, const Shape& shape) {
  Tensor out = Tensor::zeros(shape, g->dtype());
  kern::copy_strided(diagonal_view(out, offset, a1, a2), g->data);
  Recorder<DiagEmbedRule> r(std::move(out), {&g});
  if (r) r.attrs() = DiagEmbedRule::Attrs{offset, a1, a2};
  return std::move(r.out);
}

Var diag(const Var& x, int64_t k) {
  if (x->data.ndim() == 2) return diagonal(x, k, 0, 1);
  if (x->data.ndim() != 1) throw value_error("diag: input must be 1-d or 2-d, got shape " + shape_str(x->shape()));
  const int64_t n = x->shape()[0];
  if (k > std::numeric_limits<int64_t>::max() - n || k < n - std::numeric_limits<int64_t>::max())
    throw value_error("diag: k " + std::to_string(k) + " is out of range for a vector of length " + std::to_string(n));
  const int64_t m = n + (k < 0 ? -k : k);
  const Shape shape{m, m};
  check_shape(shape, "diag");  // (m * m must fit)
  return diag_embed(x, k, 0, 1, shape);
}

Var trace(const Var& x, int64_t offset, int64_t axis1, int64_t axis2) {
  const auto [a1, a2] = diagonal_axes(x, axis1, axis2, "trace");
  const Var d = diagonal(x, offset, a1, a2);
  return sum(d, Axes{d->data.ndim() - 1}, false);
}

Var squeeze(const Var& x, const std::optional<Axes>& axis) {
  const Shape& s = x->shape();
  std::vector<bool> drop(s.size());
  if (!axis) {
    for (size_t d = 0; d < s.size(); ++d) drop[d] = s[d] == 1;
  } else {
    for (int64_t a : normalize_axes(*axis, static_cast<int64_t>(s.size()), "squeeze")) {
      if (s[a] != 1)
        throw value_error("squeeze: cannot select an axis to squeeze out which has size not equal to one (axis " +
                          std::to_string(a) + " of shape " + shape_str(s) + ")");
      drop[a] = true;
    }
  }
  Shape out;
  for (size_t d = 0; d < s.size(); ++d)
    if (!drop[d]) out.push_back(s[d]);
  return reshape(x, out);
}

Var expand_dims(const Var& x, const Axes& axis) {
  const Shape& s = x->shape();
  const int64_t nd = static_cast<int64_t>(s.size() + axis.size());
  std::vector<bool> fresh(nd);
  for (int64_t a : normalize_axes(axis, nd, "expand_dims")) fresh[a] = true;
  Shape out;
  size_t i = 0;
  for (int64_t d = 0; d < nd; ++d) out.push_back(fresh[d] ? 1 : s[i++]);
  check_shape(out, "expand_dims");  // (no more axes than NumPy allows)
  return reshape(x, out);
}

Var swapaxes(const Var& x, int64_t axis1, int64_t axis2) {
  const int64_t nd = x->data.ndim();
  const int64_t i = normalize_axis(axis1, nd, "swapaxes"), j = normalize_axis(axis2, nd, "swapaxes");
  Axes perm(nd);
  for (int64_t d = 0; d < nd; ++d) perm[d] = d;
  std::swap(perm[i], perm[j]);
  return transpose(x, perm);
}

Var moveaxis(const Var& x, const Axes& source, const Axes& destination) {
  const int64_t nd = x->data.ndim();
  const Axes src = normalize_axes(source, nd, "moveaxis"), dst = normalize_axes(destination, nd, "moveaxis");
  if (src.size() != dst.size())
    throw value_error("moveaxis: source and destination must have the same number of elements, got " +
                      std::to_string(src.size()) + " and " + std::to_string(dst.size()));
  Axes perm(nd, -1);
  std::vector<bool> moved(nd);
  for (size_t i = 0; i < src.size(); ++i) {
    perm[dst[i]] = src[i];
    moved[src[i]] = true;
  }
  int64_t next = 0;  // the other axes fill the free places in their order
  for (int64_t& p : perm) {
    if (p >= 0) continue;
    while (moved[next]) ++next;
    p = next++;
  }
  return transpose(x, perm);
}

namespace {
// tril and triu: a masked copy, linear, so the same mask on the seed (VJP) and tangent (JVP).
template <bool Lower>
struct TriangleRule {
  static constexpr const char* name = Lower ? "tril" : "triu";
  struct Attrs { int64_t k = 0; };
  static Grads vjp(OpNode<TriangleRule>& n, const Var& g) { return {triangle(g, n.attrs.k, Lower)}; }
  static Var jvp(OpNode<TriangleRule>& n, const Grads& t, int) { return triangle(t[0], n.attrs.k, Lower); }
};
template <bool Lower>
Var record_triangle(const Var& x, int64_t k) {
  Recorder<TriangleRule<Lower>> r(kern::triangle(x->data, k, Lower), {&x});
  if (r) r.attrs().k = k;
  return std::move(r.out);
}
}  // namespace

Var triangle(const Var& x, int64_t k, bool lower) {
  if (x->data.ndim() < 2)
    throw value_error(std::string(lower ? "tril" : "triu") + ": needs at least 2 axes, got shape " + shape_str(x->shape()));
  return lower ? record_triangle<true>(x, k) : record_triangle<false>(x, k);
}
Var tril(const Var& x, int64_t k) { return triangle(x, k, true); }
Var triu(const Var& x, int64_t k) { return triangle(x, k, false); }

}  // namespace tg
