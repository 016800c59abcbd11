// Internal to the ops: what several op families share. The batch helpers
// (a cotangent or tangent with leading batch axes), dtype promotion and
// reduction masks. Each op family lives in its own file under src/ops/,
// every rule struct beside its public forward function (see ops.hpp).
//
// A rule struct has `name`, an `Attrs` struct (what the VJP needs besides
// saved values) and `vjp(node, g)` returning one gradient per input (null
// where the input needs none), with `jvp` beside it. Rules are written with
// differentiable ops, so a sweep under create_graph records its own graph
// (second order).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/kernels.hpp"
#include "tapegrad/ops.hpp"

namespace tg {

using kern::BinaryOp;
using kern::CompareOp;
using kern::ReduceOp;
using kern::UnaryOp;

// Internal linkage and no `inline`, as when the families were one file (they
// still compile as one unit: see CMakeLists.txt). Not every family uses every
// helper, hence [[maybe_unused]].
namespace {

[[maybe_unused]] Var constant(const Tensor& t) { return make_var(t); }
[[maybe_unused]] Var scalar(double v, const Var& like) { return scalar_like(v, like); }

// NumPy promotion for two float Variables.
[[maybe_unused]] DType promote(DType a, DType b) { return (a == DType::F64 || b == DType::F64) ? DType::F64 : DType::F32; }

[[maybe_unused]] std::vector<bool> axes_mask(const std::optional<Axes>& axes, int64_t ndim) {
  std::vector<bool> m(ndim, !axes.has_value());
  if (axes)
    for (int64_t a : *axes) m[a] = true;
  return m;
}

[[maybe_unused]] Shape keep_shape_of(const Shape& in, const std::vector<bool>& mask) {
  Shape k = in;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) k[d] = 1;
  return k;
}

[[maybe_unused]] Shape squeeze_shape(const Shape& in, const std::vector<bool>& mask) {
  Shape s;
  for (size_t d = 0; d < mask.size(); ++d)
    if (!mask[d]) s.push_back(in[d]);
  return s;
}

// ---------------------------------------------------------------------------
// Batch helpers. A cotangent or tangent may carry `nb` leading batch axes (k
// directions in one sweep). Saved values broadcast against it from the right,
// so elementwise rules need nothing; rules that name axes or shapes shift
// them past the batch axes with these helpers.
// ---------------------------------------------------------------------------
[[maybe_unused]] Shape batch_shape(const Var& v, int nb) { return Shape(v->shape().begin(), v->shape().begin() + nb); }
[[maybe_unused]] Shape with_batch(const Var& v, int nb, const Shape& s) {
  Shape out = batch_shape(v, nb);
  out.insert(out.end(), s.begin(), s.end());
  return out;
}
// A tangent of an input with fewer axes than the output, padded with size-1
// axes after the batch axes so that it broadcasts like the input did.
[[maybe_unused]] Var lift(const Var& t, int nb, size_t out_ndim) {
  if (!t) return t;
  size_t in_ndim = t->shape().size() - nb;
  if (in_ndim >= out_ndim) return t;
  Shape s = batch_shape(t, nb);
  s.insert(s.end(), out_ndim - in_ndim, 1);
  s.insert(s.end(), t->shape().begin() + nb, t->shape().end());
  return reshape(t, s);
}
[[maybe_unused]] Axes shift_axes(const std::vector<bool>& mask, int nb) {
  Axes a;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) a.push_back(static_cast<int64_t>(d) + nb);
  return a;
}
// Sums two optional tangents (null = zero).
[[maybe_unused]] Var add_opt(const Var& a, const Var& b) { return !a ? b : (!b ? a : add(a, b)); }
// Flat indices of `index` repeated for each of `batch` rows of size `row`.
[[maybe_unused]] Tensor batched_index(const Tensor& index, int64_t batch, int64_t row) {
  Shape s{batch};
  s.insert(s.end(), index.shape.begin(), index.shape.end());
  Tensor out = Tensor::empty(s, DType::I64);
  int64_t n = index.numel();
  const int64_t* src = index.ptr<int64_t>();
  int64_t* dst = out.ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < n; ++i) dst[b * n + i] = src[i] + b * row;
  return out;
}
// gather / scatter_add over the trailing (non-batch) axes of a batched
// value; the index selects rows of the first `lead` of them (-1: all).
[[maybe_unused]] Var batched_gather(const Var& v, const Tensor& index, const Shape& in_shape, int nb, int64_t lead = -1) {
  if (nb == 0) return gather(v, index, lead);
  if (lead < 0) lead = static_cast<int64_t>(in_shape.size());
  Shape b = batch_shape(v, nb);
  const Shape tail(in_shape.begin() + lead, in_shape.end());
  const int64_t batch = numel(b), rows = numel(Shape(in_shape.begin(), in_shape.begin() + lead));
  Shape flat_shape{batch * rows};
  flat_shape.insert(flat_shape.end(), tail.begin(), tail.end());
  Var flat = gather(reshape(v, flat_shape), batched_index(index, batch, rows), 1);
  Shape out = b;
  out.insert(out.end(), index.shape.begin(), index.shape.end());
  out.insert(out.end(), tail.begin(), tail.end());
  return reshape(flat, out);
}
[[maybe_unused]] Var batched_scatter(const Var& v, const Tensor& index, const Shape& out_shape, int nb, int64_t lead = -1) {
  if (nb == 0) return scatter_add(v, index, out_shape, lead);
  if (lead < 0) lead = static_cast<int64_t>(out_shape.size());
  Shape b = batch_shape(v, nb);
  const Shape tail(out_shape.begin() + lead, out_shape.end());
  const int64_t batch = numel(b), rows = numel(Shape(out_shape.begin(), out_shape.begin() + lead));
  Tensor bi = batched_index(index, batch, rows);
  const int64_t k = numel(bi.shape);
  Shape src_shape{k}, dst_shape{batch * rows};
  src_shape.insert(src_shape.end(), tail.begin(), tail.end());
  dst_shape.insert(dst_shape.end(), tail.begin(), tail.end());
  Var flat = scatter_add(reshape(v, src_shape), bi.view(Shape{k}), dst_shape, 1);
  return reshape(flat, with_batch(v, nb, out_shape));
}

}  // namespace

}  // namespace tg
