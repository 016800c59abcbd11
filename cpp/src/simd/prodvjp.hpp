// h117-prodgrad: the two per-block loops of prod's VJP lane layout
// (kernels/reductions.cpp prod_vjp), compiled per instruction set (included by
// simd/loops.hpp inside its per-ISA namespace; no namespace of its own).
// A block is B = 16 lanes x L = 128 steps; lane b takes elements b, b + 16,
// b + 32, ... Only multiplies (no adds: nothing to contract), min and max, in
// a fixed order: every build gives the same bits, only the width differs
// (reductions.cpp is built for SSE2 alone: there the whole 1M VJP took 1.4-1.5
// ms float32, here 0.57-0.63 in the AVX-512 build; benchmarks/README.md h117-prodgrad).
constexpr int64_t kProdLanes = 16, kProdSteps = 128;
// The 16 lanes as B / W GCC vectors of W doubles, W the build's native width
// (the plain loops were unrolled into scalar code, a cmova per min/max, at
// every width). The lanes' arithmetic does not depend on W.
#if defined(__AVX512F__)
constexpr int kProdW = 8;
#elif defined(__AVX__)
constexpr int kProdW = 4;
#else
constexpr int kProdW = 2;
#endif
typedef double prod_vd __attribute__((vector_size(8 * kProdW)));
typedef float prod_vf __attribute__((vector_size(4 * kProdW)));
typedef int64_t prod_vi __attribute__((vector_size(8 * kProdW)));
constexpr int kProdNV = kProdLanes / kProdW;
static inline prod_vd prod_load(const double* x) {
  prod_vd v;
  __builtin_memcpy(&v, x, sizeof v);
  return v;
}
static inline prod_vd prod_load(const float* x) {
  prod_vf v;
  __builtin_memcpy(&v, x, sizeof v);
  return __builtin_convertvector(v, prod_vd);
}
static inline void prod_store(double* y, prod_vd v) { __builtin_memcpy(y, &v, sizeof v); }
static inline void prod_store(float* y, prod_vd v) {
  const prod_vf f = __builtin_convertvector(v, prod_vf);  // round to nearest, as T(double)
  __builtin_memcpy(y, &f, sizeof f);
}

// Pass 1: lanes[b] = lane b's product (double); true when every running lane
// product, the final ones included, lies in [2^-200, 2^200] (a NaN fails: it
// stays to the end and compares false). The proof reductions.cpp's guard needs
// (the bound argument is there).
template <class T>
bool prod_lanes_block(const T* x, double* lanes) {
  constexpr int64_t B = kProdLanes, L = kProdSteps, W = kProdW, NV = kProdNV;
  const prod_vd one = prod_vd{} + 1.0;
  const prod_vi abs_mask = prod_vi{} + INT64_MAX;
  prod_vd p[NV], mn[NV], mx[NV];
  for (int k = 0; k < NV; ++k) p[k] = mn[k] = mx[k] = one;
  for (int64_t i = 0; i < L; ++i)
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) {
      p[k] *= prod_load(x + i * B + k * W);
      const prod_vd m = (prod_vd)((prod_vi)p[k] & abs_mask);
      mn[k] = m < mn[k] ? m : mn[k];
      mx[k] = m > mx[k] ? m : mx[k];
    }
  const prod_vd lo = prod_vd{} + 0x1p-200, hi = prod_vd{} + 0x1p200;
  prod_vi in = prod_vi{} - 1;
  for (int k = 0; k < NV; ++k) {
    prod_store(lanes + k * W, p[k]);
    const prod_vd m = (prod_vd)((prod_vi)p[k] & abs_mask);
    in &= (mn[k] >= lo) & (mx[k] <= hi) & (m >= lo) & (m <= hi);
  }
  bool all = true;
  for (int w = 0; w < W; ++w) all = all && in[w] != 0;
  return all;
}

// Pass 2: y[i B + b] = (f[b] x lane b's product before step i) x (lane b's
// product after step i x q[b]), each rounded in double, then once to T.
template <class T>
void prod_grad_block(const T* x, T* y, const double* f0, const double* q0) {
  constexpr int64_t B = kProdLanes, L = kProdSteps, W = kProdW, NV = kProdNV;
  prod_vd buf[L][NV], p[NV], q[NV], f[NV];
  for (int k = 0; k < NV; ++k) {
    p[k] = prod_vd{} + 1.0;
    q[k] = prod_load(q0 + k * W);
    f[k] = prod_load(f0 + k * W);
  }
  for (int64_t i = 0; i < L; ++i)
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) {
      buf[i][k] = p[k];
      p[k] *= prod_load(x + i * B + k * W);
    }
  for (int64_t i = L; i-- > 0;)
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) {
      prod_store(y + i * B + k * W, (f[k] * buf[i][k]) * q[k]);
      q[k] *= prod_load(x + i * B + k * W);
    }
}
