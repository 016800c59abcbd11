#include "simd/isa.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tapegrad/config.hpp"

namespace tg::kern {

static bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

static bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#else
  return false;
#endif
}

static const IsaKernels* best() {
  if (cpu_has_avx512()) return &kAvx512Kernels;
  return cpu_has_avx2() ? &kAvx2Kernels : &kBaselineKernels;
}

// TAPEGRAD_ISA caps the choice: baseline, avx2 or avx512 (the CPU's best at most).
static const IsaKernels* initial() {
  const char* env = std::getenv("TAPEGRAD_ISA");
  if (!env || !*env) return best();
  if (std::strcmp(env, "baseline") == 0) return &kBaselineKernels;
  if (std::strcmp(env, "avx2") == 0) return cpu_has_avx2() ? &kAvx2Kernels : &kBaselineKernels;
  if (std::strcmp(env, "avx512") == 0) return best();
  note_config_warning(std::string("TAPEGRAD_ISA='") + env +
                      "' is not one of baseline, avx2, avx512; using the CPU's best (" + best()->name + ")");
  return best();
}

static std::atomic<const IsaKernels*> g_isa{initial()};

const IsaKernels& isa() { return *g_isa.load(std::memory_order_relaxed); }

bool set_isa(const char* name) {
  if (std::strcmp(name, "baseline") == 0) {
    g_isa = &kBaselineKernels;
    return true;
  }
  if (std::strcmp(name, "avx2") == 0 && cpu_has_avx2()) {
    g_isa = &kAvx2Kernels;
    return true;
  }
  if (std::strcmp(name, "avx512") == 0 && cpu_has_avx512()) {
    g_isa = &kAvx512Kernels;
    return true;
  }
  return false;
}

const char* isa_name() { return isa().name; }

}  // namespace tg::kern
