// The elementwise loops compiled with -mavx2 -mfma (CMakeLists.txt sets the
// flags on this file only); used only when the CPU reports both.
#define TG_ISA avx2
#include "simd/loops.hpp"
#include "simd/isa.hpp"
TG_DEFINE_ISA_KERNELS(kAvx2Kernels, "avx2")
