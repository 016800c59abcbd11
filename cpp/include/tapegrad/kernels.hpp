// Kernels: tensor in, tensor out, no autograd. Differentiable ops (ops.hpp)
// call these for their forward values; VJP rules are written in terms of
// differentiable ops so that a backward sweep can itself be recorded.
//
// Every kernel reads contiguous row-major data (it takes contiguous() of a
// view at entry: Tensor::ptr() refuses a non-contiguous one) and returns a
// new contiguous tensor (except the *_inplace ones and the views
// broadcast_to and transpose). NumPy broadcasting rules.
#pragma once

#include <vector>

#include "tapegrad/tensor.hpp"
#include "tapegrad_gen/kernels_enum.inc"  // generated from opspec/ops.py

namespace tg::kern {

// The NumPy broadcast of two shapes; throws value_error naming `op`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// The spec's elementwise ops (UnaryOp::Exp, ..., Sign: the spec's sign(x) too), then the
// kernel-only helper ReluMask(x) = [x > 0], the spec's piecewise-constant step.
enum class UnaryOp { TG_SPEC_UNARY_OPS ReluMask };
Tensor unary(UnaryOp op, const Tensor& x);

// MaxWeight(a, b) is d max(a,b)/da with ties split: 1 if a > b, 0.5 if a == b, else 0.
// PowBase(a, b) = b a^(b-1) (0 where b == 0) and PowExp(a, y = a^b) = y log(a) (0 where a == 0 and
// b >= 0): power's partial derivatives, its first-order VJP and JVP factors. Atan2R2(a, b) = a a + b b
// (1 where both are 0): arctan2's.
// <Op>Deriv(g, s) = g * f'(s), generated from the spec's `deriv` for each
// non-linear elementwise op: its fused first-order VJP and JVP from the saved
// input or output s (TanhDeriv(g, y) = g (1 - y^2)).
// LogaddexpWeight(a, b) = sigmoid(a - b), Logaddexp2Weight(a, b) = sigmoid((a - b) ln 2): d/da of
// logaddexp(a, b), logaddexp2(a, b); FmaxWeight, FminWeight: d/da of fmax, fmin (1 - it is d/db).
enum class BinaryOp { Add, Sub, Mul, Div, Pow, Maximum, Minimum, MaxWeight, MinWeight, PowBase, PowExp, Atan2R2,
                      LogaddexpWeight, Logaddexp2Weight, FmaxWeight, FminWeight,
                      TG_SPEC_DERIV_OPS };
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* opname);
// x op c (c_left: c op x) for a number c, converted to x's float dtype
// first: the same values as binary() with a 0-d c, without a tensor for c.
Tensor binary_scalar(BinaryOp op, const Tensor& x, double c, bool c_left, const char* opname);
// x = x op c in place (x a float tensor).
void binary_scalar_inplace(BinaryOp op, const Tensor& x, double c);
// a = a op b with b broadcast to a's shape (a's dtype kept).
void binary_inplace(BinaryOp op, const Tensor& a, const Tensor& b, const char* opname);

// Boolean masks used by VJP rules (Bool tensors).
enum class CompareOp { Eq, Ne, Lt, Le, Gt, Ge };
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b, const char* opname);
// NumPy's isnan, isinf, isfinite, signbit: a Bool tensor of x's shape.
enum class ClassifyOp { IsNan, IsInf, IsFinite, SignBit };
Tensor classify(ClassifyOp op, const Tensor& x);
Tensor logical_and(const Tensor& a, const Tensor& b);

// out = cond ? a : b, all three broadcast together. cond is Bool.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b, const char* opname);
// minimum(maximum(x, lo), hi) in one pass (lo / hi undefined: no bound),
// the bounds already in x's dtype; array bounds broadcast.
Tensor clip(const Tensor& x, const Tensor& lo, const Tensor& hi, const char* opname);
// g where lo <= x <= hi, else 0 (clip's derivative), into `into` when it is
// defined (g's own buffer); only where clip_mask_is_fast (g shaped as x,
// bounds of one element).
bool clip_mask_is_fast(const Tensor& g, const Tensor& x, const Tensor& lo, const Tensor& hi);
Tensor clip_mask(const Tensor& g, const Tensor& x, const Tensor& lo, const Tensor& hi, const Tensor& into,
                 const char* opname);

enum class ReduceOp { Sum, Max, Min };
// Reduces the axes flagged in `axes` (size == x.ndim); the result keeps
// them as size-1 axes (keepdims form).
Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<bool>& axes, const char* opname);

// Views (no copy): stride 0 on broadcast axes; permuted strides.
Tensor broadcast_to(const Tensor& x, const Shape& shape, const char* opname);
Tensor transpose(const Tensor& x, const std::vector<int64_t>& perm);
// x with zeros above (lower) or below (upper) the k-th diagonal of its last two axes (h89-views).
Tensor triangle(const Tensor& x, int64_t k, bool lower);
// dst = src elementwise, both any strides (same shape and dtype): memcpy
// when both are contiguous, else tiled (Tensor::contiguous() and writes
// through views use it).
void copy_strided(const Tensor& dst, const Tensor& src);
// memcpy / memset(0) of n bytes, split across tapegrad's threads when large:
// one core does not reach the memory bandwidth (PyTorch's copies and zeros
// are threaded too), and a backward of large arrays is mostly such passes.
void copy_bytes(void* dst, const void* src, size_t n);
void zero_bytes(void* dst, size_t n);
// copy_strided into a view that an in-place op updates (the same elements
// its base sees), refusing a broadcast view, whose elements overlap.
void write_through(const Tensor& view, const Tensor& values, const char* opname);
Tensor astype(const Tensor& x, DType dt);

// op(a) @ op(b) with NumPy batch broadcasting; a and b have ndim >= 2;
// ta / tb transpose the last two axes of a / b without materializing them.
Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb);
// x (..., K) @ w (K, N) + b (N,) (b undefined: no bias), the leading axes of
// x folded into the rows of one GEMM that accumulates onto the bias rows.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

// LAPACK (scipy-openblas32's LU and Cholesky) over the last two axes; the
// leading axes are a batch. Throw linalg_error naming `op` and the shape for
// a singular (inv, solve) or non-positive-definite (cholesky) matrix.
// solve: a (..., n, n), b (..., n, k) with the same batch.
// LU factors of each matrix (getrf), which solve and slogdet hand back through
// `keep` so that their backward solves with them instead of factoring again.
struct LU {
  Tensor lu;                  // getrf of each A^T (LAPACK is column-major; the row-major buffer is A^T)
  std::vector<int> piv;       // its pivots, n per matrix (1-based)
  std::vector<bool> singular;  // per matrix: a zero pivot (lu_solve refuses it)
};
LU lu_factor(const Tensor& a, const char* op, bool throw_singular);
// A^-1 b, or A^-T b when with_at, from the factors; b (..., n, k) with a's batch.
Tensor lu_solve(const LU& f, const Tensor& b, bool with_at, const char* op);
Tensor inv(const Tensor& a, const char* op);
// A^-1 (A^-T when transpose) of each matrix from its factors (getri on a copy); raises at a singular one.
Tensor lu_inverse(const LU& f, bool transpose, const char* op);
Tensor solve(const Tensor& a, const Tensor& b, const char* op, LU* keep = nullptr);
// (sign, log|det|) of each matrix, shaped like the batch; a singular one gives (0, -inf) as NumPy.
std::pair<Tensor, Tensor> slogdet(const Tensor& a, const char* op, LU* keep = nullptr);
// The lower factor L of A = L L^T, reading A's lower triangle (NumPy's default).
Tensor cholesky(const Tensor& a, const char* op);
// cholesky's first-order VJP from L (..., n, n) and the cotangent g of L's shape:
// sym(L^-T Phi(L^T g) L^-1), Phi = the lower triangle with the diagonal halved.
Tensor cholesky_backward(const Tensor& l, const Tensor& g);
// Refuses ndim < 2 or non-square last axes with linalg_error, as NumPy does.
void check_square(const Shape& s, const char* op);

// Gather / scatter-add of rows by int64 row indices: x (or the result) is
// `rows` rows of `inner` elements; row i of the gathered result is row
// index[i] of x. Threaded at large sizes; a repeated index accumulates in
// index order at any thread count.
Tensor gather(const Tensor& x, const Tensor& index, int64_t rows, int64_t inner, const Shape& out_shape);
Tensor scatter_add(const Tensor& src, const Tensor& index, int64_t rows, int64_t inner, const Shape& out_shape);
// The positions of the non-zero bytes of mask[0..n), as an int64 vector.
Tensor mask_rows(const uint8_t* mask, int64_t n);
// Sets to c the rows (of `inner` elements) of contiguous x that index[0..n)
// names, or (index null) those where mask[0..n) is non-zero.
void fill_rows(const Tensor& x, const Tensor* index, const uint8_t* mask, int64_t n, int64_t inner, double c);
// v[ints] = c on a contiguous vector x, ints[0..k) int64 as the caller gave
// them (read in place, negative ones wrapped): false, having written
// nothing, when one is outside [-n, n).
bool fill_ints(const Tensor& x, const int64_t* ints, int64_t k, double c);

// Rows start..stop of diag(d) over d's flat positions: shape
// (stop - start,) + d.shape, element b holding d[start+b] at position start+b.
Tensor diag_rows(const Tensor& d, int64_t start, int64_t stop);

Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
Tensor narrow(const Tensor& x, int64_t axis, int64_t start, int64_t length);
Tensor pad_axis(const Tensor& x, int64_t axis, int64_t start, int64_t total);

// Numerically stable: shifts by the (finite part of the) max.
Tensor logsumexp(const Tensor& x, const std::vector<bool>& axes);  // keepdims form
Tensor softmax(const Tensor& x, int64_t axis);
Tensor softmax_axes(const Tensor& x, const std::vector<bool>& axes);  // normalised over several axes
// With `probs` non-null the softmax is returned there too (one pass for both).
Tensor log_softmax(const Tensor& x, int64_t axis, Tensor* probs = nullptr);
// First-order VJPs fused into one kernel where the reduced axes are trailing
// (an undefined Tensor otherwise: the rule's composite form runs instead).
// max/min: g split evenly among the extremal elements of x (`best` holds the
// extremum, `g` the cotangent, one per output element).
Tensor extremum_vjp(const Tensor& x, const Tensor& best, const Tensor& g, const std::vector<bool>& axes);
// softmax / log_softmax from their output y and a cotangent g of y's shape.
Tensor normaliser_vjp(const Tensor& y, const Tensor& g, int64_t axis, bool log);
// ----- h88-scan: scans along one axis, prod, var / std (keepdims forms)
Tensor scan(bool prod, const Tensor& x, int64_t axis, bool reverse);  // cumprod / cumsum, reversed from the end
// cumprod's first-order VJP (vjp) or JVP of g along axis, exact at zeros; g may carry leading batch axes.
Tensor cumprod_deriv(const Tensor& x, const Tensor& y, const Tensor& g, int64_t axis, bool vjp);
Tensor prod(const Tensor& x, const std::vector<bool>& axes);
Tensor prod_vjp(const Tensor& x, const Tensor& g, const std::vector<bool>& axes);  // g * the others' product
// var (std when root) divided by max(N - ddof, 0); `mean` gets the mean when not null.
Tensor moments(const Tensor& x, const std::vector<bool>& axes, double ddof, bool root, Tensor* mean);
Tensor moments_vjp(const Tensor& x, const Tensor& mean, const Tensor& y, const Tensor& g,
                   const std::vector<bool>& axes, double den, bool root);  // den = max(N - ddof, 0)
// ----- h103-reduce: sum(x * x) over trailing axes in one pass (keepdims; the bits of the two ops);
// undefined for other axes
Tensor sum_squares(const Tensor& x, const std::vector<bool>& axes);

// ----- h92-param: parametrized elementwise ops (elu's alpha; opspec entries with float parameters)
// The parameters of one op (its rule's Attrs too), unused ones 0.
struct UnaryParams {
  double p[2] = {0, 0};
};
// y = f(x; p) for a parametrized UnaryOp (Elu, LeakyRelu); `name` for errors.
Tensor unary_p(UnaryOp op, const Tensor& x, const UnaryParams& p, const char* name);
// out = g * f'(s; p) in one pass where g and s have one shape and dtype and out is contiguous of that
// shape (it may be g's own buffer); false otherwise (the rule's composite runs instead).
bool deriv_p(UnaryOp op, const Tensor& out, const Tensor& g, const Tensor& s, const UnaryParams& p);

// Per-step constants of an Adam update, bias corrections folded in (optim.cpp).
template <class T>
struct AdamScalars {
  T b1, b2, wd, step_size, eps, rc2, decay;
  bool decoupled;
};

}  // namespace tg::kern
