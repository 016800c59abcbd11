// h110-predicates: a comparison of two contiguous float operands of one shape and dtype, split over the
// pool. From kPredicateNumpyFrom elements the predicates ran NumPy's loop, which is one thread: at 1M
// float64 and 2 threads PyTorch's split loop was 0.9x its time. At the baseline ISA the loop is SSE2
// intrinsics: GCC does not vectorize a float64 -> bool comparison there (the 64-bit masks must be
// narrowed). IEEE comparisons are exact, so every ISA and every thread count gives the same bits:
// NaN compares false (true for !=), -0.0 == 0.0.
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "simd/isa.hpp"
#include "tapegrad/kernels.hpp"
#include "tapegrad/ops.hpp"
#include "tapegrad/parallel.hpp"

namespace tg::kern {
namespace {

template <CompareOp K, class T>
inline uint8_t cmp1(T x, T y) {
  return K == CompareOp::Eq ? x == y : K == CompareOp::Ne ? x != y : K == CompareOp::Lt ? x < y
       : K == CompareOp::Le ? x <= y : K == CompareOp::Gt ? x > y : x >= y;
}

#if defined(__SSE2__)
// The SSE2 predicates (ordered for all but !=, which is unordered: NaN != x is true, as in C++).
template <CompareOp K>
inline __m128d cmp2(__m128d x, __m128d y) {
  if constexpr (K == CompareOp::Eq) return _mm_cmpeq_pd(x, y);
  else if constexpr (K == CompareOp::Ne) return _mm_cmpneq_pd(x, y);
  else if constexpr (K == CompareOp::Lt) return _mm_cmplt_pd(x, y);
  else if constexpr (K == CompareOp::Le) return _mm_cmple_pd(x, y);
  else if constexpr (K == CompareOp::Gt) return _mm_cmplt_pd(y, x);
  else return _mm_cmple_pd(y, x);
}
template <CompareOp K>
inline __m128 cmp4(__m128 x, __m128 y) {
  if constexpr (K == CompareOp::Eq) return _mm_cmpeq_ps(x, y);
  else if constexpr (K == CompareOp::Ne) return _mm_cmpneq_ps(x, y);
  else if constexpr (K == CompareOp::Lt) return _mm_cmplt_ps(x, y);
  else if constexpr (K == CompareOp::Le) return _mm_cmple_ps(x, y);
  else if constexpr (K == CompareOp::Gt) return _mm_cmplt_ps(y, x);
  else return _mm_cmple_ps(y, x);
}
// 16 results (all-ones / zero lanes) narrowed to 16 bytes of 0 / 1.
inline void store16(uint8_t* o, __m128i a, __m128i b, __m128i c, __m128i d) {
  const __m128i m = _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_and_si128(m, _mm_set1_epi8(1)));
}
// Two float64 masks as four int32 masks (the low halves).
inline __m128i low_halves(__m128d lo, __m128d hi) {
  return _mm_castps_si128(_mm_shuffle_ps(_mm_castpd_ps(lo), _mm_castpd_ps(hi), _MM_SHUFFLE(2, 0, 2, 0)));
}
#endif

#if defined(__SSE2__)
// Four elements' masks as four int32 lanes: one float compare, or two double compares narrowed.
template <CompareOp K>
inline __m128i masks4(const float* x, const float* y) {
  return _mm_castps_si128(cmp4<K>(_mm_loadu_ps(x), _mm_loadu_ps(y)));
}
template <CompareOp K>
inline __m128i masks4(const double* x, const double* y) {
  return low_halves(cmp2<K>(_mm_loadu_pd(x), _mm_loadu_pd(y)), cmp2<K>(_mm_loadu_pd(x + 2), _mm_loadu_pd(y + 2)));
}
#endif

template <CompareOp K, class T>
void run(const T* x, const T* y, uint8_t* o, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 16 <= n; i += 16)
    store16(o + i, masks4<K>(x + i, y + i), masks4<K>(x + i + 4, y + i + 4), masks4<K>(x + i + 8, y + i + 8),
            masks4<K>(x + i + 12, y + i + 12));
#endif
  for (; i < n; ++i) o[i] = cmp1<K>(x[i], y[i]);
}

// The same loop for the avx2 and avx512 ISA settings: GCC vectorizes it with 32-byte vectors.
template <CompareOp K, class T>
__attribute__((target("avx2"))) void run_avx2(const T* __restrict x, const T* __restrict y, uint8_t* __restrict o,
                                              int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = cmp1<K>(x[i], y[i]);
}

template <CompareOp K, class T>
void split(const T* x, const T* y, uint8_t* o, int64_t n) {
  const bool avx2 = std::strcmp(isa_name(), "baseline") != 0;
  // The elementwise kernels' grain: split from 2 * kGrainElements (512K) elements.
  parallel_for(n, kGrainElements, [&](int64_t b, int64_t e) {
    if (avx2) run_avx2<K>(x + b, y + b, o + b, e - b);
    else run<K>(x + b, y + b, o + b, e - b);
  });
}
template <class T>
void dispatch(CompareOp op, const T* x, const T* y, uint8_t* o, int64_t n) {
  switch (op) {
    case CompareOp::Eq: split<CompareOp::Eq>(x, y, o, n); break;
    case CompareOp::Ne: split<CompareOp::Ne>(x, y, o, n); break;
    case CompareOp::Lt: split<CompareOp::Lt>(x, y, o, n); break;
    case CompareOp::Le: split<CompareOp::Le>(x, y, o, n); break;
    case CompareOp::Gt: split<CompareOp::Gt>(x, y, o, n); break;
    case CompareOp::Ge: split<CompareOp::Ge>(x, y, o, n); break;
  }
}

}  // namespace

bool compare_same_shape(CompareOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  if (a.shape != b.shape || a.dtype != b.dtype || !is_float(a.dtype) || !a.is_contiguous() || !b.is_contiguous())
    return false;
  out = Tensor::empty(a.shape, DType::Bool);
  if (a.dtype == DType::F64) dispatch(op, a.ptr<double>(), b.ptr<double>(), out.ptr<uint8_t>(), a.numel());
  else dispatch(op, a.ptr<float>(), b.ptr<float>(), out.ptr<uint8_t>(), a.numel());
  return true;
}

}  // namespace tg::kern
