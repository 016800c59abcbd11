// The elementwise loops for baseline x86-64 (and any other CPU).
#define TG_ISA baseline
#include "simd/loops.hpp"
#include "simd/isa.hpp"
TG_DEFINE_ISA_KERNELS(kBaselineKernels, "baseline")
