// Run-time choice of the elementwise loops' instruction set (see loops.hpp).
#pragma once

#include <cstdint>

#include "tapegrad/kernels.hpp"

namespace tg::kern {

struct IsaKernels {
  const char* name;
  void (*unary_f32)(UnaryOp, const float*, float*, int64_t);
  void (*unary_f64)(UnaryOp, const double*, double*, int64_t);
  void (*binary_f32)(BinaryOp, float*, int64_t, const float*, int64_t, const float*, int64_t, int64_t);
  void (*binary_f64)(BinaryOp, double*, int64_t, const double*, int64_t, const double*, int64_t, int64_t);
  double (*sum_f32)(const float*, int64_t);   // accumulated in double
  double (*sum_f64)(const double*, int64_t);
  double (*dot_f32)(const float*, const float*, int64_t);  // accumulated in double
  float (*dot_f32f)(const float*, const float*, int64_t);  // accumulated in float (a matrix-vector row, as GEMM)
  double (*dot_f64)(const double*, const double*, int64_t);
  // y = sum_k v[k incv] X[k ldx + (0, N)] (+ y when accumulate); float32 accumulated in float, as GEMM
  void (*vecmat_f32)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, bool);
  void (*vecmat_f64)(const double*, int64_t, const double*, int64_t, double*, int64_t, int64_t, bool);
  float (*max_f32)(const float*, int64_t);  // NaN if the run holds one
  double (*max_f64)(const double*, int64_t);
  float (*min_f32)(const float*, int64_t);
  double (*min_f64)(const double*, int64_t);
  void (*sgd_f32)(float*, const float*, float*, int64_t, float, float, float, bool);
  void (*sgd_f64)(double*, const double*, double*, int64_t, double, double, double, bool);
  void (*adam_f32)(float*, const float*, float*, float*, int64_t, const AdamScalars<float>&);
  void (*adam_f64)(double*, const double*, double*, double*, int64_t, const AdamScalars<double>&);
  void (*clip_f32)(float*, const float*, int64_t, float, float);  // bounds: numbers (+-inf if absent)
  void (*clip_f64)(double*, const double*, int64_t, double, double);
  void (*fill_u32)(uint32_t*, int64_t, uint32_t);  // o[i] = c: float32 bits
  void (*fill_u64)(uint64_t*, int64_t, uint64_t);  // float64 bits
  double (*prod_f32)(const float*, int64_t);  // h88-scan: accumulated in double
  double (*prod_f64)(const double*, int64_t);
  // ----- h98-membound: o = a / s, s one number (o may be a); the bits of the division
  void (*div_by_f32)(float*, const float*, float, int64_t);
  void (*div_by_f64)(double*, const double*, double, int64_t);
  // h92-param: y = f(x; p) (unary_p) and o = g * f'(s; p) (deriv_p, o may be g) of a parametrized UnaryOp
  void (*unary_p_f32)(UnaryOp, const float*, float*, int64_t, const double*);
  void (*unary_p_f64)(UnaryOp, const double*, double*, int64_t, const double*);
  void (*deriv_p_f32)(UnaryOp, float*, const float*, const float*, int64_t, const double*);
  void (*deriv_p_f64)(UnaryOp, double*, const double*, const double*, int64_t, const double*);
  // ----- h103-reduce: the sum of x * x (each square rounded in T), norm's one pass; sum_f32's lanes
  double (*sumsq_f32)(const float*, int64_t);
  double (*sumsq_f64)(const double*, int64_t);
  // ----- h117-prodgrad: prod's VJP per block of 16 x 128 (simd/prodvjp.hpp)
  bool (*prod_lanes_f32)(const float*, double*);
  bool (*prod_lanes_f64)(const double*, double*);
  void (*prod_grad_f32)(const float*, float*, const double*, const double*);
  void (*prod_grad_f64)(const double*, double*, const double*, const double*);
  // ----- h123-lastaxis: the softmax family in fewer passes (simd/lastaxis.hpp): e = exp(x - m), o = (x - m) - c,
  // the first-order VJP ends; and the float32 last-axis reductions' rows in one call (simd/reduce.hpp rows_run)
  void (*exp_shift_f32)(float*, const float*, float, int64_t);
  void (*exp_shift_f64)(double*, const double*, double, int64_t);
  void (*sub2_f32)(float*, const float*, float, float, int64_t);
  void (*sub2_f64)(double*, const double*, double, double, int64_t);
  void (*lsm_vjp_f32)(float*, const float*, const float*, float, int64_t);  // o = g - exp(y) s
  void (*lsm_vjp_f64)(double*, const double*, const double*, double, int64_t);
  void (*sm_vjp_f32)(float*, const float*, const float*, float, int64_t);  // o = y (g - s)
  void (*sm_vjp_f64)(double*, const double*, const double*, double, int64_t);
  // float32 last-axis sum / sum of squares / product of `rows` runs of `run`, o[r] per run (simd/reduce.hpp rows_run)
  void (*sum_rows_f32)(const float*, float*, int64_t, int64_t);
  void (*sumsq_rows_f32)(const float*, float*, int64_t, int64_t);
  void (*prod_rows_f32)(const float*, float*, int64_t, int64_t);
  // ----- h132-rows64: last-axis max / min of `rows` runs of `run`, o[r] per run (simd/reduce.hpp extremum_rows_run)
  void (*max_rows_f32)(const float*, float*, int64_t, int64_t);
  void (*max_rows_f64)(const double*, double*, int64_t, int64_t);
  void (*min_rows_f32)(const float*, float*, int64_t, int64_t);
  void (*min_rows_f64)(const double*, double*, int64_t, int64_t);
  // ----- h133-outer: o[r C + j] = col[r] op row[j] (a_col) or row[j] op col[r], rows [0, R) (kernels/rowbcast.hpp)
  void (*col_row_f32)(BinaryOp, float*, const float*, const float*, int64_t, int64_t, bool);
  void (*col_row_f64)(BinaryOp, double*, const double*, const double*, int64_t, int64_t, bool);
};

// The table in use: AVX-512 (F/DQ/VL/BW) when the CPU has it, else AVX2+FMA,
// else baseline x86-64; TAPEGRAD_ISA=baseline or =avx2 in the environment
// caps the choice.
const IsaKernels& isa();
// Switches the table ("baseline", "avx2" or "avx512"); false if the CPU lacks it.
// For tests that compare the two builds of every loop.
bool set_isa(const char* name);
const char* isa_name();

// Defined in loops_baseline.cpp / loops_avx2.cpp / loops_avx512.cpp.
extern const IsaKernels kBaselineKernels;
extern const IsaKernels kAvx2Kernels;
extern const IsaKernels kAvx512Kernels;

}  // namespace tg::kern

// Each loops_*.cpp instantiates the table for its TG_ISA namespace.
#define TG_DEFINE_ISA_KERNELS(VAR, NAME)                                                        \
  namespace tg::kern {                                                                         \
  const IsaKernels VAR = {NAME,                                                                \
                          &TG_ISA::unary<float>,                                               \
                          &TG_ISA::unary<double>,                                              \
                          &TG_ISA::binary<float>,                                              \
                          &TG_ISA::binary<double>,                                             \
                          &TG_ISA::sum_run<float, double>,                                     \
                          &TG_ISA::sum_run<double, double>,                                    \
                          &TG_ISA::dot_run<float, float, double>,                              \
                          &TG_ISA::dot_run<float, float, float>,                               \
                          &TG_ISA::dot_run<double, double, double>,                            \
                          &TG_ISA::vecmat_run<float, float>,                                   \
                          &TG_ISA::vecmat_run<double, double>,                                 \
                          &TG_ISA::extremum_run<true, float>,                                  \
                          &TG_ISA::extremum_run<true, double>,                                 \
                          &TG_ISA::extremum_run<false, float>,                                 \
                          &TG_ISA::extremum_run<false, double>,                                \
                          &TG_ISA::sgd_run<float>,                                             \
                          &TG_ISA::sgd_run<double>,                                            \
                          &TG_ISA::adam_run<float>,                                            \
                          &TG_ISA::adam_run<double>,                                           \
                          &TG_ISA::clip_run<float>,                                            \
                          &TG_ISA::clip_run<double>,                                           \
                          &TG_ISA::fill_run<uint32_t>,                                         \
                          &TG_ISA::fill_run<uint64_t>,                                         \
                          &TG_ISA::prod_run<float, double>,                                    \
                          &TG_ISA::prod_run<double, double>,                                   \
                          &TG_ISA::div_by_run<float>,                                          \
                          &TG_ISA::div_by_run<double>,                                         \
                          &TG_ISA::unary_p<float>,  /* h92-param */                            \
                          &TG_ISA::unary_p<double>,                                            \
                          &TG_ISA::deriv_p<float>,                                             \
                          &TG_ISA::deriv_p<double>,                                            \
                          &TG_ISA::sum_run<float, double, true>, /* h103-reduce */             \
                          &TG_ISA::sum_run<double, double, true>,                              \
                          &TG_ISA::prod_lanes_block<float>, /* h117-prodgrad */                \
                          &TG_ISA::prod_lanes_block<double>,                                   \
                          &TG_ISA::prod_grad_block<float>,                                     \
                          &TG_ISA::prod_grad_block<double>,                                    \
                          &TG_ISA::exp_shift_run<float>, /* h123-lastaxis */                   \
                          &TG_ISA::exp_shift_run<double>,                                      \
                          &TG_ISA::sub2_run<float>,                                            \
                          &TG_ISA::sub2_run<double>,                                           \
                          &TG_ISA::lsm_vjp_run<float>,                                         \
                          &TG_ISA::lsm_vjp_run<double>,                                        \
                          &TG_ISA::sm_vjp_run<float>,                                          \
                          &TG_ISA::sm_vjp_run<double>,                                         \
                          &TG_ISA::rows_run<0, float>,                                         \
                          &TG_ISA::rows_run<1, float>,                                         \
                          &TG_ISA::rows_run<2, float>,                                         \
                          &TG_ISA::extremum_rows_run<true, float>, /* h132-rows64 */           \
                          &TG_ISA::extremum_rows_run<true, double>,                            \
                          &TG_ISA::extremum_rows_run<false, float>,                            \
                          &TG_ISA::extremum_rows_run<false, double>,                           \
                          &TG_ISA::col_row_run<float>, /* h133-outer */                        \
                          &TG_ISA::col_row_run<double>};                                       \
  }
