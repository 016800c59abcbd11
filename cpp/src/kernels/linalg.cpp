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
void scipy_dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void scipy_spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t uplo_len);
}

namespace tg::kern {

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

Tensor matmul(const Tensor& a0, const Tensor& b0, bool ta, bool tb) {
  TG_CONTIGUOUS(a, a0); TG_CONTIGUOUS(b, b0);
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

Tensor linear(const Tensor& x0, const Tensor& w0, const Tensor& b0) {
  TG_CONTIGUOUS(x, x0); TG_CONTIGUOUS(w, w0); TG_CONTIGUOUS(b, b0);
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



namespace {
void getrf(int n, double* a, int* ipiv, int* info) { scipy_dgetrf_(&n, &n, a, &n, ipiv, info); }
void getrf(int n, float* a, int* ipiv, int* info) { scipy_sgetrf_(&n, &n, a, &n, ipiv, info); }
void getrs(int n, int k, const double* a, const int* ipiv, double* b, int* info) {
  scipy_dgetrs_("T", &n, &k, a, &n, ipiv, b, &n, info, 1);
}
void getrs(int n, int k, const float* a, const int* ipiv, float* b, int* info) {
  scipy_sgetrs_("T", &n, &k, a, &n, ipiv, b, &n, info, 1);
}
// Row-major lower triangle = column-major upper: 'U' on the buffer factors A's lower triangle.
void potrf(int n, double* a, int* info) { scipy_dpotrf_("U", &n, a, &n, info, 1); }
void potrf(int n, float* a, int* info) { scipy_spotrf_("U", &n, a, &n, info, 1); }

int lapack_dim(int64_t n, const char* op) {
  if (n > std::numeric_limits<int>::max())
    throw value_error(std::string(op) + ": dimension " + std::to_string(n) + " exceeds LAPACK's 32-bit index range");
  return int(n);
}

std::string batch_where(const Shape& s, int64_t i, int64_t nbatch) {
  return "matrix of shape " + shape_str(s) + (nbatch > 1 ? " (batch element " + std::to_string(i) + ")" : "");
}
}  // namespace

void check_square(const Shape& s, const char* op) {
  if (s.size() < 2)
    throw linalg_error(std::string(op) + ": " + std::to_string(s.size()) +
                       "-dimensional array given; the array must be at least two-dimensional");
  if (s[s.size() - 1] != s[s.size() - 2])
    throw linalg_error(std::string(op) + ": the last 2 dimensions of the array must be square, got shape " +
                       shape_str(s));
}

// A^-1 = solve(A, I), as NumPy's inv (gesv): one code path with solve; with getri the
// 32 x 32 inverse timed 3.5x PyTorch's in one (loaded) run, see benchmarks/README.md.
Tensor inv(const Tensor& a, const char* op) {
  check_square(a.shape, op);
  const int64_t n = a.shape.back();
  Tensor eye = Tensor::empty(a.shape, a.dtype);
  TG_DISPATCH_FLOAT(a.dtype, op, {
    T* p = eye.ptr<T>();
    std::fill(p, p + eye.numel(), T(0));
    for (int64_t i = 0; n && i < eye.numel() / (n * n); ++i)
      for (int64_t d = 0; d < n; ++d) p[i * n * n + d * n + d] = T(1);
  });
  return solve(a, eye, op);
}

Tensor solve(const Tensor& a0, const Tensor& b0, const char* op) {
  TG_CONTIGUOUS(a, a0); TG_CONTIGUOUS(b, b0);
  check_square(a.shape, op);
  const int64_t n = a.shape.back();
  if (b.ndim() != a.ndim() || b.shape[b.ndim() - 2] != n ||
      !std::equal(a.shape.begin(), a.shape.end() - 2, b.shape.begin()))
    throw value_error(std::string(op) + ": kernel expects b (..., n, k) with a's batch, got " + shape_str(a.shape) +
                      " and " + shape_str(b.shape));
  check_same_float(a, b, op);
  const int64_t k = b.shape.back(), nbatch = n ? a.numel() / (n * n) : numel(Shape(a.shape.begin(), a.shape.end() - 2));
  Tensor out = Tensor::empty(b.shape, b.dtype);
  if (n == 0 || k == 0 || nbatch == 0) return out;
  const int ni = lapack_dim(n, op), ki = lapack_dim(k, op);
  std::vector<int> ipiv(n);
  TG_DISPATCH_FLOAT(a.dtype, op, {
    std::vector<T> lu(n * n), rhs(n * k);
    for (int64_t i = 0; i < nbatch; ++i) {
      std::memcpy(lu.data(), a.ptr<T>() + i * n * n, n * n * sizeof(T));
      const T* pb = b.ptr<T>() + i * n * k;
      for (int64_t r = 0; r < n; ++r)  // row-major (n, k) -> column-major n x k
        for (int64_t c = 0; c < k; ++c) rhs[c * n + r] = pb[r * k + c];
      int info = 0;
      getrf(ni, lu.data(), ipiv.data(), &info);
      if (info > 0) throw linalg_error(std::string(op) + ": singular " + batch_where(a.shape, i, nbatch));
      getrs(ni, ki, lu.data(), ipiv.data(), rhs.data(), &info);
      T* po = out.ptr<T>() + i * n * k;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) po[r * k + c] = rhs[c * n + r];
    }
  });
  return out;
}

std::pair<Tensor, Tensor> slogdet(const Tensor& a0, const char* op) {
  TG_CONTIGUOUS(a, a0);
  check_square(a.shape, op);
  const int64_t n = a.shape.back();
  Shape batch(a.shape.begin(), a.shape.end() - 2);
  const int64_t nbatch = numel(batch);
  Tensor sign = Tensor::empty(batch, a.dtype), logdet = Tensor::empty(batch, a.dtype);
  const int ni = lapack_dim(n, op);
  std::vector<int> ipiv(n);
  TG_DISPATCH_FLOAT(a.dtype, op, {
    std::vector<T> lu(n * n);
    for (int64_t i = 0; i < nbatch; ++i) {
      T s = T(1), l = T(0);  // the empty product: det of a 0 x 0 matrix is 1
      if (n > 0) {
        std::memcpy(lu.data(), a.ptr<T>() + i * n * n, n * n * sizeof(T));
        int info = 0;
        getrf(ni, lu.data(), ipiv.data(), &info);
        if (info > 0) {
          s = T(0);
          l = -std::numeric_limits<T>::infinity();
        } else {
          for (int64_t d = 0; d < n; ++d) {
            const T u = lu[d * n + d];
            if (u < T(0)) s = -s;
            if (ipiv[d] != d + 1) s = -s;  // a row swap (1-based pivots)
            l += std::log(std::abs(u));
          }
        }
      }
      sign.ptr<T>()[i] = s;
      logdet.ptr<T>()[i] = l;
    }
  });
  return {sign, logdet};
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
