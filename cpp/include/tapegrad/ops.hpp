// Differentiable ops on Variables. Each records a node when grad mode is on
// and an input requires grad. Their forward kernels and VJP rules sit side
// by side in src/ops/, one file per section below (one rule struct per
// primitive, beside its forward function); composite ops
// (mean, sum_to, ...) are built from primitives and need no rule.
//
// Binary ops promote dtypes like NumPy (float32 with float64 -> float64) and
// broadcast; every binary rule reduces its gradients to the operand shapes
// through the one helper `sum_to`.
#pragma once

#include <optional>
#include <vector>

#include "tapegrad/autograd.hpp"

namespace tg {

using Axes = std::vector<int64_t>;  // empty + all_axes=true means "all axes"

// ----- elementwise ----------------------------------------------------------
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
Var pow(const Var& a, const Var& b);
Var maximum(const Var& a, const Var& b);
Var minimum(const Var& a, const Var& b);
Var arctan2(const Var& a, const Var& b);
// h90-binary: logaddexp, logaddexp2, hypot, fmax, fmin (fused forward kernels; rules in elementwise.cpp)
Var logaddexp(const Var& a, const Var& b);
Var logaddexp2(const Var& a, const Var& b);
Var hypot(const Var& a, const Var& b);
Var fmax(const Var& a, const Var& b);
Var fmin(const Var& a, const Var& b);
// x op c for a Python number c, which NumPy (NEP 50) treats as "weak": it
// takes x's float dtype. One node holding c, no constant Variable and no
// unbroadcast: what `y * 2.0` or `y - 1` costs. Same values and derivatives
// as the binary op with c as a 0-d constant. CLeft: c - x, c / x.
enum class ScalarOp { Add, Sub, CLeftSub, Mul, Div, CLeftDiv };
Var scalar_op(const Var& x, double c, ScalarOp op);
template <ScalarOp K> Var scalar_op_t(const Var& x, double c);  // op fixed at compile time (the operators)
// The elementwise ops of opspec/ops.py: Var exp(const Var& x), ...
#include "tapegrad_gen/ops_decls.inc"
// Bounds are constant tensors of x's dtype (undefined = unbounded); they
// broadcast with x. Gradient passes where lo <= x <= hi (inclusive).
Var clip(const Var& x, const Tensor& lo, const Tensor& hi);
// cond is a Bool tensor (not differentiable).
Var where(const Tensor& cond, const Var& a, const Var& b);
Var astype(const Var& x, DType dt);
// Multiplies by a constant mask/weight tensor (not differentiated).
Var mul_const(const Var& x, const Tensor& c);

// ----- reductions -------------------------------------------------------------
// `axes` already normalised (non-negative, unique); nullopt = all axes.
Var sum(const Var& x, const std::optional<Axes>& axes, bool keepdims);
Var mean(const Var& x, const std::optional<Axes>& axes, bool keepdims);
Var max(const Var& x, const std::optional<Axes>& axes, bool keepdims);
Var min(const Var& x, const std::optional<Axes>& axes, bool keepdims);
Var logsumexp(const Var& x, const std::optional<Axes>& axes, bool keepdims);
Var softmax(const Var& x, int64_t axis);
Var log_softmax(const Var& x, int64_t axis);
// h88-scan: axis None scans the flattened array; var/std divide by max(N - ddof, 0).
Var cumsum(const Var& x, std::optional<int64_t> axis);
Var cumprod(const Var& x, std::optional<int64_t> axis);
Var prod(const Var& x, const std::optional<Axes>& axes, bool keepdims);
// ----- h103-reduce: sum(x * x) over the axes in one pass (norm's), the bits and derivatives of the two ops
Var sum_squares(const Var& x, const std::optional<Axes>& axes, bool keepdims);
Var variance(const Var& x, const std::optional<Axes>& axes, double ddof, bool keepdims);
Var stddev(const Var& x, const std::optional<Axes>& axes, double ddof, bool keepdims);
// Softmax cross-entropy of logits (N, C) against int64 labels (N,): per row
// (None) or reduced to their mean or sum, in one primitive.
enum class CrossEntropyReduction { None, Mean, Sum };
Var cross_entropy_labels(const Var& z, const Tensor& labels, CrossEntropyReduction reduction);
// mean (or sum) over all elements of (x - target)^2, target a constant of
// x's shape: one primitive (tapegrad.nn.mse_loss uses it).
Var mse_loss(const Var& x, const Tensor& target, bool mean);
// The unbroadcast helper: sums g down to `shape` (g's shape broadcasts from
// it). The first `nb` axes are batch axes, present in both and kept.
Var sum_to(const Var& g, const Shape& shape, int nb = 0);

// ----- shape --------------------------------------------------------------------
Var reshape(const Var& x, const Shape& shape);  // shape may hold one -1
Var transpose(const Var& x, const std::optional<Axes>& perm);
Var broadcast_to(const Var& x, const Shape& shape);
Var concatenate(const std::vector<Var>& xs, int64_t axis);
Var stack(const std::vector<Var>& xs, int64_t axis);
Var narrow(const Var& x, int64_t axis, int64_t start, int64_t length);
Var pad_axis(const Var& x, int64_t axis, int64_t start, int64_t total);
// NumPy's basic indexing (ints, slices with any step, None, Ellipsis), parsed:
// the view it makes of any tensor of the input's shape. Per input axis, the
// first index taken (an int's index, a slice's start; 0 for an empty slice);
// per output axis, its length, the input axis it walks (-1: a new axis) and
// the step.
struct BasicIndex {
  Shape start;
  Shape out_shape, in_axis, step;
  Tensor apply(const Tensor& x) const;  // O(1): a view sharing x's storage
  // On `axis` of `shape`, the other axes whole: x[..., start:start+length]
  // or, without a length, x[..., start] (the axis dropped).
  static BasicIndex on_axis(const Shape& shape, int64_t axis, int64_t start, std::optional<int64_t> length);
  // The same selection after `batch` leading axes taken whole.
  BasicIndex with_batch(const Shape& batch) const;
};
// The view x[ix] (no copy); its VJP embeds the gradient into zeros of x's shape.
Var basic_index(const Var& x, const BasicIndex& ix);
// zeros(shape) with g written at the positions ix selects (ix's adjoint).
Var basic_index_embed(const Var& g, const BasicIndex& ix, const Shape& shape);
// Rows of x by an int64 index of flat positions over x's first `lead` axes
// (-1: all of them, x.flat[index]): shape index.shape + x.shape[lead:];
// backward scatter-adds. scatter_add is its adjoint, into zeros of `shape`.
Var gather(const Var& x, const Tensor& index, int64_t lead = -1);
Var scatter_add(const Var& src, const Tensor& index, const Shape& shape, int64_t lead = -1);
// ----- h89-views: NumPy's diagonal as a view (its adjoint diag_embed writes g
// onto that diagonal of zeros(shape)); diag, trace; squeeze, expand_dims,
// swapaxes, moveaxis (views through reshape / transpose). NumPy's arguments.
Var diagonal(const Var& x, int64_t offset, int64_t axis1, int64_t axis2);
Var diag_embed(const Var& g, int64_t offset, int64_t axis1, int64_t axis2, const Shape& shape);
Var diag(const Var& x, int64_t k);
Var trace(const Var& x, int64_t offset, int64_t axis1, int64_t axis2);
Var squeeze(const Var& x, const std::optional<Axes>& axis);
Var expand_dims(const Var& x, const Axes& axis);
Var swapaxes(const Var& x, int64_t axis1, int64_t axis2);
Var moveaxis(const Var& x, const Axes& source, const Axes& destination);
// zeros above (tril) / below (triu) the k-th diagonal of the last two axes: one masked copy.
Var triangle(const Var& x, int64_t k, bool lower);
Var tril(const Var& x, int64_t k);
Var triu(const Var& x, int64_t k);
// ----- h95-shape: NumPy's split parts, flip, atleast_*, pad, roll (shape_fast.cpp) -----
// The parts x[..., a:b] between the points (NumPy's slice bounds), views.
std::vector<Var> split_at(const Var& x, const std::vector<int64_t>& points, int64_t axis);
Var flip(const Var& x, const std::optional<Axes>& axes);  // a view; nullopt: every axis
Var atleast(const Var& x, int n);                         // x itself when it has n axes or more
// widths[d] = (before, after) per axis, filled with value (rounded to x's dtype).
Var pad_constant(const Var& x, const std::vector<std::pair<int64_t, int64_t>>& widths, double value);
// NumPy's roll (shift and axis broadcast; nullopt: the flattened array); roll_axes: shifts in [0, n).
Var roll(const Var& x, const Axes& shift, const std::optional<Axes>& axis);
Var roll_axes(const Var& x, const Axes& shifts, const Axes& axes);

// ----- h94-gather: NumPy's take, take_along_axis, repeat, tile (gather.cpp),
// over the gather primitive (its VJP scatter-adds: repeated indices
// accumulate), a broadcast copy (tile) or a copy loop with its rule (repeat
// by one count). Indices and repeats int64 (negative
// indices wrap; out of range: IndexError naming the op, index and axis size);
// axis nullopt: the flattened array. Results are copies.
Var take(const Var& x, const Tensor& indices, std::optional<int64_t> axis);
Var take_along_axis(const Var& x, const Tensor& indices, std::optional<int64_t> axis);
Var repeat(const Var& x, const Tensor& repeats, std::optional<int64_t> axis);  // repeats 0-d or 1-d
Var tile(const Var& x, const Shape& reps);

// ----- h111-takefused: take / take_along_axis in one pass over the index (take_fused.cpp).
// out = x viewed as (rows, n) gathered by `indices` (int64, rows * m entries, read
// once, never kept: it may be a NumPy array's memory), negative ones wrapped; the
// first index outside [-n, n) in index order raises (`axis` names it).
Var take_rows_fused(const char* op, const Var& x, const Tensor& indices, int64_t rows, int64_t n, int64_t axis,
                    const Shape& out_shape);
// gather(x, positions, -1)'s result and node, from a value the caller gathered
// (positions: x's flat positions, needed when the node is recorded).
Var gather_made(const Var& x, Tensor&& y, const Tensor& positions);

// ----- linear algebra -------------------------------------------------------------
// NumPy matmul semantics (1-D operands, broadcast batch dimensions).
Var matmul(const Var& a, const Var& b);
// op(a) @ op(b) for ndim >= 2 operands: the primitive.
Var matmul_t(const Var& a, const Var& b, bool ta, bool tb);
// x (..., K) @ weight (K, N) + bias (N,) in one primitive (bias may be null): Linear's forward.
Var linear(const Var& x, const Var& weight, const Var& bias);
// Over the last two axes, leading axes a batch (LAPACK: cpp/src/kernels/linalg.cpp);
// a singular / non-positive-definite / non-square matrix raises linalg_error.
Var inv(const Var& a);
// NumPy 2's solve: b is a vector when 1-d, else (..., n, k); batches broadcast.
Var solve(const Var& a, const Var& b);
// (sign, log|det a|): the sign a constant, the log differentiable.
std::pair<Var, Var> slogdet(const Var& a);
Var cholesky(const Var& a);  // the lower factor

// ----- h93-contract: NumPy's dot, vdot, inner, outer, tensordot, and einsum's pairwise plan (contract.cpp):
// recorded as the matmul / multiply / reshape / transpose / sum / diagonal / broadcast_to they call, so every
// derivative is those primitives'. Errors name the function and the shapes.
Var dot(const Var& a, const Var& b);
Var vdot(const Var& a, const Var& b);
Var inner(const Var& a, const Var& b);
Var outer(const Var& a, const Var& b);
Var tensordot(const Var& a, const Var& b, const Axes& axes_a, const Axes& axes_b);
Var tensordot(const Var& a, const Var& b, int64_t n);  // a's last n axes with b's first n
// One step of einsum's plan (python/tapegrad/_compose.py _einsum_plan): register dst = op(register src, args).
struct EinsumStep {
  enum Kind : int64_t { Diagonal, Sum, Transpose, Reshape, BroadcastTo, Matmul } kind;
  int64_t dst, src;
  Axes args;  // Diagonal: (axis1, axis2); Sum: axes; Transpose: perm; Reshape/BroadcastTo: shape; Matmul: (register)
};
Var einsum_run(std::vector<Var> regs, const std::vector<EinsumStep>& plan, int64_t result);

// Axis helpers shared with the bindings (throw value_error naming `op`).
int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op);
Axes normalize_axes(const Axes& axes, int64_t ndim, const char* op);

// ----- h100-small: round(x, decimals): NumPy's rint(x * 10^d) / 10^d (d >= 0), rint(x / 10^-d) * 10^-d (d < 0),
// one pass (simd/round.cpp), derivative 0 (ops/round.cpp); decimals 0 is rint.
namespace kern {
Tensor round_decimals(const Tensor& x, int64_t decimals);
}
Var round_decimals(const Var& x, int64_t decimals);

// ----- h110-predicates: a comparison of two contiguous float operands of one shape and dtype, SSE2 and split over
// the pool (compare_split.cpp); false (out untouched) for any other operands.
namespace kern {
enum class CompareOp;
bool compare_same_shape(CompareOp op, const Tensor& a, const Tensor& b, Tensor& out);
}

}  // namespace tg
