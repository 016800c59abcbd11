// Matrix multiply through OpenBLAS (GEMM with transpose flags) and linear.
#include <cblas.h>

#include "kernels/common.hpp"

// ---------------------------------------------------------------------------
// LAPACK through scipy-openblas32: its symbols carry a scipy_ prefix and the
// Fortran ABI (arguments by pointer, 32-bit ints, one hidden length per
// character argument). LAPACK is column-major: a row-major buffer is the
// transpose, so A's buffer is factored as A^T and solved with TRANS = 'T'.
// ---------------------------------------------------------------------------
extern "C" {
void scipy_dgetrf_(const int* m, const int* n, double* a, const int* lda, int* ipiv, int* info);
void scipy_sgetrf_(const int* m, const int* n, float* a, const int* lda, int* ipiv, int* info);
void scipy_dgetrs_(const char* trans, const int* n, const int* nrhs, const double* a, const int* lda, const int* ipiv,
                   double* b, const int* ldb, int* info, size_t trans_len);
void scipy_sgetrs_(const char* trans, const int* n, const int* nrhs, const float* a, const int* lda, const int* ipiv,
                   float* b, const int* ldb, int* info, size_t trans_len);
// getri is reference LAPACK in OpenBLAS, but blocked over gemm/trsm, which are OpenBLAS's own.
void scipy_dgetri_(const int* n, double* a, const int* lda, const int* ipiv, double* work, const int* lwork, int* info);
void scipy_sgetri_(const int* n, float* a, const int* lda, const int* ipiv, float* work, const int* lwork, int* info);
void scipy_dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void scipy_spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t uplo_len);
}

namespace tg::kern {

// ---------------------------------------------------------------------------
// Matrix multiply: OpenBLAS GEMM with transpose flags (no materialized
// transposes); batches are folded into one GEMM where the layout allows.
// ---------------------------------------------------------------------------

// C (M x N) = op(A) op(B) + beta C, row-major; A is M x K (K x M if ta), B is K x N (N x K if tb),
// with leading dimensions lda, ldb (a row's stride: >= the stored row length).
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C) {
  scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M),
                    blasint(N), blasint(K), 1.0f, A, blasint(lda), B, blasint(ldb), beta, C, blasint(N));
}
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B,
                 int64_t ldb, double beta, double* C) {
  scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M),
                    blasint(N), blasint(K), 1.0, A, blasint(lda), B, blasint(ldb), beta, C, blasint(N));
}

// A vector times a vector: isa's dot_run (float32 accumulated in double) over
// fixed chunks combined in order, so the same bits at any thread count.
constexpr int64_t kDotChunk = 65536;
static double isa_dot(const float* a, const float* b, int64_t n) { return isa().dot_f32(a, b, n); }
static double isa_dot(const double* a, const double* b, int64_t n) { return isa().dot_f64(a, b, n); }
static float isa_dot_rows(const float* a, const float* b, int64_t n) { return isa().dot_f32f(a, b, n); }
static double isa_dot_rows(const double* a, const double* b, int64_t n) { return isa().dot_f64(a, b, n); }
template <class T>
static double dot_chunked(const T* a, const T* b, int64_t n) {
  if (n < 2 * kDotChunk) return isa_dot(a, b, n);
  const int64_t chunks = (n + kDotChunk - 1) / kDotChunk;
  std::vector<double> partial(chunks);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      partial[c] = isa_dot(a + c * kDotChunk, b + c * kDotChunk, std::min(kDotChunk, n - c * kDotChunk));
  });
  double acc = 0;
  for (double p : partial) acc += p;
  return acc;
}

// y (n) = X v, X n x K row-major with leading dimension ldx: a dot product per row (accumulated in T,
// as GEMM), threaded over rows; a strided v is packed first.
template <class T>
static void matvec_rows(const T* X, int64_t ldx, const T* v, int64_t incv, T* y, int64_t n, int64_t K, bool acc) {
  std::vector<T> packed;
  if (incv != 1) {
    packed.resize(K);
    for (int64_t k = 0; k < K; ++k) packed[k] = v[k * incv];
    v = packed.data();
  }
  parallel_for(n, std::max<int64_t>(1, kGrainElements / K), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T d = isa_dot_rows(X + r * ldx, v, K);
      y[r] = acc ? d + y[r] : d;
    }
  });
}
// y (N) = sum_k v_k X[k, :]: isa's vecmat_run over blocks of columns, threaded over the blocks.
static void isa_vecmat(const float* v, int64_t incv, const float* X, int64_t ldx, float* y, int64_t K, int64_t N,
                       bool acc) {
  isa().vecmat_f32(v, incv, X, ldx, y, K, N, acc);
}
static void isa_vecmat(const double* v, int64_t incv, const double* X, int64_t ldx, double* y, int64_t K, int64_t N,
                       bool acc) {
  isa().vecmat_f64(v, incv, X, ldx, y, K, N, acc);
}
template <class T>
static void vecmat_cols(const T* v, int64_t incv, const T* X, int64_t ldx, T* y, int64_t K, int64_t N, bool acc) {
  constexpr int64_t kBlock = 256;  // columns per task (a multiple of vecmat_run's blocks)
  const int64_t blocks = (N + kBlock - 1) / kBlock;
  parallel_for(blocks, std::max<int64_t>(1, kGrainElements / (K * kBlock)), [&](int64_t b0, int64_t b1) {
    const int64_t j0 = b0 * kBlock, j1 = std::min(N, b1 * kBlock);
    isa_vecmat(v, incv, X + j0, ldx, y + j0, K, j1 - j0, acc);
  });
}

// beta is 0 (C is overwritten) or 1 (the product accumulates onto C). lda/ldb 0: the packed row length.
// A product with one row or one column is a matrix-vector product and one
// with both a dot product: OpenBLAS's GEMM packs its operands even then (a
// 1024 x 1024 matrix times a vector took 2.8x NumPy's GEMV; two vectors of
// 2^20 floats, 15x). They run as tapegrad's own dot_run / vecmat_run, not
// OpenBLAS's GEMV: its x A form splits the sum between threads (other bits
// at 2 threads than at 1). A dot product of two vectors sums float32 in
// double, as sum does (memory-bound: no slower); matrix-vector rows in
// float, as GEMM (in double they took 1.4x NumPy's sgemv).
template <class T>
static void gemm_checked(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C,
                         T beta = T(0), int64_t lda = 0, int64_t ldb = 0) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // the empty sum is 0 (BLAS may not touch C at all when K = 0)
    if (beta == T(0)) std::fill(C, C + M * N, T(0));
    return;
  }
  if (!lda) lda = ta ? M : K;
  if (!ldb) ldb = tb ? K : N;
  constexpr int64_t kMax = std::numeric_limits<blasint>::max();
  if (M > kMax || N > kMax || K > kMax || lda > kMax || ldb > kMax)
    throw value_error("matmul: a dimension exceeds the BLAS's 32-bit index range (" + std::to_string(M) + ", " +
                      std::to_string(N) + ", " + std::to_string(K) + ")");
  // The vectors' element strides: A's row (its column when ta), B's column (its row when tb).
  const int64_t inca = ta ? lda : 1, incb = tb ? 1 : ldb;
  if (M == 1 && N == 1 && inca == 1 && incb == 1) {
    const double d = dot_chunked(A, B, K);
    C[0] = T(beta == T(0) ? d : d + double(C[0]));
  } else if (N == 1 && K > 1) {  // C (M) = op(A) b
    if (ta) vecmat_cols(B, incb, A, lda, C, K, M, beta != T(0));
    else matvec_rows(A, lda, B, incb, C, M, K, beta != T(0));
  } else if (M == 1 && K > 1) {  // C (N) = a op(B)
    if (tb) matvec_rows(B, ldb, A, inca, C, N, K, beta != T(0));
    else vecmat_cols(A, inca, B, ldb, C, K, N, beta != T(0));
  } else if (K == 1) {  // an outer product (a dot product's VJP): one rounding per element, as GEMM
    const int64_t sa = ta ? 1 : lda, sb = tb ? ldb : 1;
    if (N == 1) {  // a column times a number: one loop over the column
      const T b0 = B[0];
      parallel_for(M, kGrainElements, [&](int64_t r0, int64_t r1) {
        if (beta == T(0))
          for (int64_t i = r0; i < r1; ++i) C[i] = A[i * sa] * b0;
        else
          for (int64_t i = r0; i < r1; ++i) C[i] += A[i * sa] * b0;
      });
      return;
    }
    parallel_for(M, std::max<int64_t>(1, kGrainElements / N), [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T ai = A[i * sa];
        T* c = C + i * N;
        if (beta == T(0))
          for (int64_t j = 0; j < N; ++j) c[j] = ai * B[j * sb];
        else
          for (int64_t j = 0; j < N; ++j) c[j] += ai * B[j * sb];
      }
    });
  } else {
    gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C);
  }
}

// How GEMM reads the last two axes of a view without copying it: row-major
// with a leading dimension (unit column stride: a column slice), or
// column-major (a transpose's view: read with the transpose flag flipped).
// Other views (negative, zero or two non-unit strides) are copied first.
struct BlasMat {
  bool ok = false, trans = false;
  int64_t ld = 0;
};
static BlasMat blas_mat(const Tensor& t) {
  const size_t nd = t.ndim();
  const int64_t R = t.shape[nd - 2], C = t.shape[nd - 1];
  if (t.is_contiguous()) return {true, false, std::max<int64_t>(C, 1)};
  const Shape st = t.strides();
  const int64_t r = st[nd - 2], c = st[nd - 1];
  if ((c == 1 || C <= 1) && r >= std::max<int64_t>(C, 1)) return {true, false, r};
  if ((r == 1 || R <= 1) && c >= std::max<int64_t>(R, 1)) return {true, true, c};
  return {};
}

static bool all_zero(const std::vector<int64_t>& v) {
  for (int64_t x : v)
    if (x) return false;
  return true;
}

// Batch strides (in elements) of t's leading axes aligned to `batch`, 0 where t broadcasts.
static std::vector<int64_t> batch_strides(const Tensor& t, const Shape& batch) {
  const size_t nb = t.ndim() - 2, off = batch.size() - nb;
  const Shape st = t.strides();
  std::vector<int64_t> out(batch.size(), 0);
  for (size_t i = 0; i < nb; ++i) out[i + off] = t.shape[i] == 1 ? 0 : st[i];
  return out;
}

Tensor matmul(const Tensor& a0, const Tensor& b0, bool ta, bool tb) {
  if (a0.ndim() < 2 || b0.ndim() < 2) throw value_error("matmul kernel: operands must have ndim >= 2");
  check_same_float(a0, b0, "matmul");
  // A view GEMM can read (a transpose, a column slice) passes as it is, with
  // its leading dimension and the flag flipped for a transpose; others are copied.
  BlasMat va = blas_mat(a0), vb = blas_mat(b0);
  const Tensor a = va.ok ? a0 : a0.contiguous_copy(), b = vb.ok ? b0 : b0.contiguous_copy();
  if (!va.ok) va = blas_mat(a);
  if (!vb.ok) vb = blas_mat(b);
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
  const bool ta2 = ta != va.trans, tb2 = tb != vb.trans;  // the flags on the stored matrices
  int64_t o_mat = M * N, nbatch = numel(batch);
  std::vector<int64_t> sa = batch_strides(a, batch), sb = batch_strides(b, batch);
  bool a_full = numel(ab) == nbatch, b_full = numel(bb) == nbatch;
  TG_DISPATCH_FLOAT(a.dtype, "matmul", {
    const T* pa = static_cast<const T*>(a.data_ptr());
    const T* pb = static_cast<const T*>(b.data_ptr());
    T* po = out.ptr<T>();
    if (nbatch == 0) {
      // an empty batch: nothing to write (the one-GEMM path below would write M*N elements)
    } else if (nbatch == 1) {
      gemm_checked<T>(ta2, tb2, M, N, K, pa, pb, po, T(0), va.ld, vb.ld);
    } else if (!ta && a_full && a.is_contiguous() && all_zero(sb)) {
      // A batched, B shared: the batches stack into the rows of one GEMM.
      gemm_checked<T>(false, tb2, nbatch * M, N, K, pa, pb, po, T(0), 0, vb.ld);
    } else if (N == 1 && b_full && b.is_contiguous() && all_zero(sa)) {
      // A shared, B a batch of vectors: out (batch x M) = B (batch x K) op(A)^T.
      gemm_checked<T>(false, !ta2, nbatch, M, K, pb, pa, po, T(0), 0, va.ld);
    } else {
      std::array<std::vector<int64_t>, 3> st{contiguous_strides(batch), sa, sb};
      nd_loop<3>(batch, st, [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& in) {
        for (int64_t i = 0; i < n; ++i)
          gemm_checked<T>(ta2, tb2, M, N, K, pa + off[1] + i * in[1], pb + off[2] + i * in[2],
                          po + (off[0] + i * in[0]) * o_mat, T(0), va.ld, vb.ld);
      });
    }
  });
  return out;
}

Tensor linear(const Tensor& x0, const Tensor& w0, const Tensor& b0) {
  if (x0.ndim() < 1 || w0.ndim() != 2 || x0.shape.back() != w0.shape[0])
    throw value_error("linear kernel: expected x (..., K) and w (K, N), got " + shape_str(x0.shape) + " and " +
                      shape_str(w0.shape));
  // A 2-d x and w that GEMM can read as they are (a transpose, a column slice) are not copied.
  BlasMat vx = x0.ndim() == 2 ? blas_mat(x0) : BlasMat{}, vw = blas_mat(w0);
  const Tensor x = vx.ok ? x0 : x0.contiguous(), w = vw.ok ? w0 : w0.contiguous();
  if (!vx.ok) vx = BlasMat{true, false, std::max<int64_t>(x.shape.back(), 1)};
  if (!vw.ok) vw = blas_mat(w);
  TG_CONTIGUOUS(b, b0);
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
    gemm_checked<T>(vx.trans, vw.trans, R, N, K, static_cast<const T*>(x.data_ptr()),
                    static_cast<const T*>(w.data_ptr()), po, b.defined() ? T(1) : T(0), vx.ld, vw.ld);
  });
  return out;
}



namespace {
void getrf(int n, double* a, int* ipiv, int* info) { scipy_dgetrf_(&n, &n, a, &n, ipiv, info); }
void getrf(int n, float* a, int* ipiv, int* info) { scipy_sgetrf_(&n, &n, a, &n, ipiv, info); }
// The row-major buffer factored is A^T, so TRANS = 'T' solves with A and 'N' with A^T.
void getrs(bool with_at, int n, int k, const double* a, const int* ipiv, double* b, int* info) {
  scipy_dgetrs_(with_at ? "N" : "T", &n, &k, a, &n, ipiv, b, &n, info, 1);
}
void getrs(bool with_at, int n, int k, const float* a, const int* ipiv, float* b, int* info) {
  scipy_sgetrs_(with_at ? "N" : "T", &n, &k, a, &n, ipiv, b, &n, info, 1);
}
// Row-major lower triangle = column-major upper: 'U' on the buffer factors A's lower triangle.
void potrf(int n, double* a, int* info) { scipy_dpotrf_("U", &n, a, &n, info, 1); }
void potrf(int n, float* a, int* info) { scipy_spotrf_("U", &n, a, &n, info, 1); }
void getri(int n, double* a, const int* ipiv, double* work, int lwork, int* info) {
  scipy_dgetri_(&n, a, &n, ipiv, work, &lwork, info);
}
void getri(int n, float* a, const int* ipiv, float* work, int lwork, int* info) {
  scipy_sgetri_(&n, a, &n, ipiv, work, &lwork, info);
}
// B := L^T B for lower-triangular L (n x n) and B (n x n), row-major.
void trmm_lt(int n, const double* l, double* b) {
  scipy_cblas_dtrmm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, n, n, 1.0, l, n, b, n);
}
void trmm_lt(int n, const float* l, float* b) {
  scipy_cblas_strmm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, n, n, 1.0f, l, n, b, n);
}
void trsm(CBLAS_SIDE side, CBLAS_TRANSPOSE t, int m, int n, const double* l, double* b) {
  scipy_cblas_dtrsm(CblasRowMajor, side, CblasLower, t, CblasNonUnit, m, n, 1.0, l, side == CblasLeft ? m : n, b, n);
}
void trsm(CBLAS_SIDE side, CBLAS_TRANSPOSE t, int m, int n, const float* l, float* b) {
  scipy_cblas_strsm(CblasRowMajor, side, CblasLower, t, CblasNonUnit, m, n, 1.0f, l, side == CblasLeft ? m : n, b, n);
}

int lapack_dim(int64_t n, const char* op) {
  if (n > std::numeric_limits<int>::max())
    throw value_error(std::string(op) + ": dimension " + std::to_string(n) + " exceeds LAPACK's 32-bit index range");
  return int(n);
}

std::string batch_where(const Shape& s, int64_t i, int64_t nbatch) {
  return "matrix of shape " + shape_str(s) + (nbatch > 1 ? " (batch element " + std::to_string(i) + ")" : "");
}

int64_t batch_count(const Shape& s) { return numel(Shape(s.begin(), s.end() - 2)); }
}  // namespace

void check_square(const Shape& s, const char* op) {
  if (s.size() < 2)
    throw linalg_error(std::string(op) + ": " + std::to_string(s.size()) +
                       "-dimensional array given; the array must be at least two-dimensional");
  if (s[s.size() - 1] != s[s.size() - 2])
    throw linalg_error(std::string(op) + ": the last 2 dimensions of the array must be square, got shape " +
                       shape_str(s));
}

LU lu_factor(const Tensor& a0, const char* op, bool throw_singular) {
  check_square(a0.shape, op);
  LU f;
  f.lu = a0.clone();  // (contiguous)
  const int64_t n = a0.shape.back(), nbatch = batch_count(a0.shape);
  f.piv.resize(size_t(n * nbatch));
  f.singular.assign(size_t(nbatch), false);
  if (n == 0) return f;
  const int ni = lapack_dim(n, op);
  TG_DISPATCH_FLOAT(a0.dtype, op, {
    for (int64_t i = 0; i < nbatch; ++i) {
      int info = 0;
      getrf(ni, f.lu.ptr<T>() + i * n * n, f.piv.data() + i * n, &info);
      if (info > 0) {
        if (throw_singular) throw linalg_error(std::string(op) + ": singular " + batch_where(a0.shape, i, nbatch));
        f.singular[size_t(i)] = true;
      }
    }
  });
  return f;
}

Tensor lu_solve(const LU& f, const Tensor& b0, bool with_at, const char* op) {
  TG_CONTIGUOUS(b, b0);
  const Shape& as = f.lu.shape;
  const int64_t n = as.back();
  if (size_t(b.ndim()) != as.size() || b.shape[b.ndim() - 2] != n || !std::equal(as.begin(), as.end() - 2, b.shape.begin()))
    throw value_error(std::string(op) + ": kernel expects b (..., n, k) with a's batch, got " + shape_str(as) +
                      " and " + shape_str(b.shape));
  check_same_float(f.lu, b, op);
  const int64_t k = b.shape.back(), nbatch = batch_count(as);
  Tensor out = Tensor::empty(b.shape, b.dtype);
  if (n == 0 || k == 0 || nbatch == 0) return out;
  const int ni = lapack_dim(n, op), ki = lapack_dim(k, op);
  TG_DISPATCH_FLOAT(b.dtype, op, {
    std::vector<T> rhs(n * k);
    for (int64_t i = 0; i < nbatch; ++i) {
      if (f.singular[size_t(i)]) throw linalg_error(std::string(op) + ": singular " + batch_where(as, i, nbatch));
      const T* pb = b.ptr<T>() + i * n * k;
      for (int64_t r = 0; r < n; ++r)  // row-major (n, k) -> column-major n x k
        for (int64_t c = 0; c < k; ++c) rhs[c * n + r] = pb[r * k + c];
      int info = 0;
      getrs(with_at, ni, ki, f.lu.ptr<T>() + i * n * n, f.piv.data() + i * n, rhs.data(), &info);
      T* po = out.ptr<T>() + i * n * k;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) po[r * k + c] = rhs[c * n + r];
    }
  });
  return out;
}

namespace {
// Overwrites each matrix's factors in `lu` (getrf of A^T, column-major) with
// its inverse, (A^T)^-1 column-major = A^-1 row-major: getri, the inverse of
// U and then the solve with L (4/3 n^3 flops after getrf), where getrs on I
// (NumPy's gesv) does 2 n^3. 1024 x 1024, 1 thread, CPU time under load:
// getrf + getri 90.6 ms float64 (MKL's inv 89.5), getrf + getrs on I 132.8.
void invert_factors(Tensor& lu, const std::vector<int>& piv, const char* op) {
  const int64_t n = lu.shape.back(), nbatch = batch_count(lu.shape);
  if (n == 0 || nbatch == 0) return;
  const int ni = lapack_dim(n, op);
  TG_DISPATCH_FLOAT(lu.dtype, op, {
    T query = T(0);
    int info = 0;
    getri(ni, lu.ptr<T>(), piv.data(), &query, -1, &info);  // workspace query: n x the block size
    const int lwork = std::max(ni, int(query));
    std::vector<T> work(static_cast<size_t>(lwork));
    std::vector<T> eye;
    for (int64_t i = 0; i < nbatch; ++i) {
      T* p = lu.ptr<T>() + i * n * n;
      const int* ip = piv.data() + i * n;
      if (std::all_of(p, p + n * n, [](T v) { return std::isfinite(v); })) {
        getri(ni, p, ip, work.data(), lwork, &info);
        if (info > 0) throw linalg_error(std::string(op) + ": singular " + batch_where(lu.shape, i, nbatch));
        continue;
      }
      // A NaN or inf in the factors: getrs on I as before getri (and NumPy's gesv), which spreads
      // it to every entry it reaches; getri leaves some entries finite (a NaN input gave -1 and 1).
      eye.assign(size_t(n * n), T(0));
      for (int64_t d = 0; d < n; ++d) eye[size_t(d * n + d)] = T(1);
      getrs(false, ni, ni, p, ip, eye.data(), &info);
      for (int64_t r = 0; r < n; ++r)  // column-major A^-1 -> row-major
        for (int64_t c = 0; c < n; ++c) p[r * n + c] = eye[size_t(c * n + r)];
    }
  });
}

Tensor swap_last_axes(const Tensor& x) {
  std::vector<int64_t> perm(x.ndim());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = int64_t(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  return transpose(x, perm).contiguous_copy();
}
}  // namespace

Tensor inv(const Tensor& a, const char* op) {
  LU f = lu_factor(a, op, true);  // (a copy of a; raises at a singular matrix)
  invert_factors(f.lu, f.piv, op);
  return f.lu;
}

Tensor lu_inverse(const LU& f, bool transpose_result, const char* op) {
  for (size_t i = 0; i < f.singular.size(); ++i)
    if (f.singular[i]) throw linalg_error(std::string(op) + ": singular " + batch_where(f.lu.shape, int64_t(i), int64_t(f.singular.size())));
  Tensor x = f.lu.clone();
  invert_factors(x, f.piv, op);
  return transpose_result ? swap_last_axes(x) : x;
}

Tensor solve(const Tensor& a, const Tensor& b, const char* op, LU* keep) {
  check_square(a.shape, op);
  check_same_float(a, b, op);
  LU f = lu_factor(a, op, true);
  Tensor x = lu_solve(f, b, false, op);
  if (keep) *keep = std::move(f);
  return x;
}

std::pair<Tensor, Tensor> slogdet(const Tensor& a, const char* op, LU* keep) {
  LU f = lu_factor(a, op, false);
  const int64_t n = a.shape.back();
  Shape batch(a.shape.begin(), a.shape.end() - 2);
  const int64_t nbatch = numel(batch);
  Tensor sign = Tensor::empty(batch, a.dtype), logdet = Tensor::empty(batch, a.dtype);
  TG_DISPATCH_FLOAT(a.dtype, op, {
    for (int64_t i = 0; i < nbatch; ++i) {
      T s = T(1), l = T(0);  // the empty product: det of a 0 x 0 matrix is 1
      if (f.singular[size_t(i)]) {
        s = T(0);
        l = -std::numeric_limits<T>::infinity();
      } else {
        const T* lu = f.lu.ptr<T>() + i * n * n;
        const int* ipiv = f.piv.data() + i * n;
        for (int64_t d = 0; d < n; ++d) {
          const T u = lu[d * n + d];
          if (u < T(0)) s = -s;
          if (ipiv[d] != d + 1) s = -s;  // a row swap (1-based pivots)
          l += std::log(std::abs(u));
        }
      }
      sign.ptr<T>()[i] = s;
      logdet.ptr<T>()[i] = l;
    }
  });
  if (keep) *keep = std::move(f);
  return {sign, logdet};
}

// gA = sym(L^-T Phi(L^T g) L^-1) in place on a copy of g: trmm (L^T g, n^3
// flops where a GEMM does 2 n^3), Phi, two trsm, then sym over pairs of tiles.
Tensor cholesky_backward(const Tensor& l0, const Tensor& g) {
  TG_CONTIGUOUS(l, l0);
  check_same_float(l, g, "cholesky");
  if (l.shape != g.shape)
    throw value_error("cholesky backward kernel: expected equal shapes, got " + shape_str(l.shape) + " and " +
                      shape_str(g.shape));
  Tensor out = g.clone();
  const int64_t n = l.shape.back(), nbatch = batch_count(l.shape);
  if (n == 0) return out;
  const int ni = lapack_dim(n, "cholesky");
  TG_DISPATCH_FLOAT(l.dtype, "cholesky", {
    for (int64_t i = 0; i < nbatch; ++i) {
      const T* pl = l.ptr<T>() + i * n * n;
      T* p = out.ptr<T>() + i * n * n;
      trmm_lt(ni, pl, p);  // L^T g
      for (int64_t r = 0; r < n; ++r) {  // Phi: the lower triangle, the diagonal halved
        std::fill(p + r * n + r + 1, p + (r + 1) * n, T(0));
        p[r * n + r] *= T(0.5);
      }
      trsm(CblasLeft, CblasTrans, ni, ni, pl, p);      // L^-T Phi
      trsm(CblasRight, CblasNoTrans, ni, ni, pl, p);   // L^-T Phi L^-1
      constexpr int64_t kTile = 64;  // sym(X) = (X + X^T) / 2, tile (I, J) with its mirror (J, I)
      for (int64_t r0 = 0; r0 < n; r0 += kTile)
        for (int64_t c0 = r0; c0 < n; c0 += kTile)
          for (int64_t r = r0; r < std::min(n, r0 + kTile); ++r)
            for (int64_t c = std::max(c0, r + 1); c < std::min(n, c0 + kTile); ++c) {
              const T v = (p[r * n + c] + p[c * n + r]) * T(0.5);
              p[r * n + c] = v;
              p[c * n + r] = v;
            }
    }
  });
  return out;
}

Tensor cholesky(const Tensor& a, const char* op) {
  check_square(a.shape, op);
  const int64_t n = a.shape.back(), nbatch = n ? a.numel() / (n * n) : 0;
  Tensor out = a.clone();
  if (n == 0) return out;
  const int ni = lapack_dim(n, op);
  TG_DISPATCH_FLOAT(a.dtype, op, {
    for (int64_t i = 0; i < nbatch; ++i) {
      T* m = out.ptr<T>() + i * n * n;
      int info = 0;
      potrf(ni, m, &info);
      if (info > 0)
        throw linalg_error(std::string(op) + ": " + batch_where(a.shape, i, nbatch) + " is not positive definite");
      for (int64_t r = 0; r < n; ++r)  // LAPACK leaves the other triangle as it was
        for (int64_t c = r + 1; c < n; ++c) m[r * n + c] = T(0);
    }
  });
  return out;
}

}  // namespace tg::kern
