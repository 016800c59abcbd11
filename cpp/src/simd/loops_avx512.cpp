// The elementwise loops compiled for AVX-512 (F, DQ, VL, BW) with 512-bit
// vectors (CMakeLists.txt sets the flags on this file only); used only when
// the CPU reports all four. Twice the lanes of AVX2: the float32
// exp/tanh/sigmoid, which run in double arithmetic, gain the most.
#define TG_ISA avx512
#include "simd/loops.hpp"
#include "simd/isa.hpp"
TG_DEFINE_ISA_KERNELS(kAvx512Kernels, "avx512")
