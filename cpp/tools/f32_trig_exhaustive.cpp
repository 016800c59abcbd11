// Exhaustive accuracy check of simd/math.hpp's float32 trigonometric kernels:
// every float (all 2^32 bit patterns) in each kernel's vector range, against
// the float64 kernels of the same header (within 1 ulp of float64: 2^-29 of a
// float ulp; tests/test_kernels_fastpaths.py measures them against long
// double) and, where the error exceeds 0.75 ulp, against glibc's double libm.
// Prints the worst error in float ulps of the correctly rounded result.
// Run once by hand; not part of the build:
//   g++ -O2 -std=c++17 -ffp-contract=off -fno-trapping-math -fno-math-errno -mavx2 -fopenmp \
//       -Icpp/src cpp/tools/f32_trig_exhaustive.cpp -o /tmp/f32trig && /tmp/f32trig
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace k {
#include "simd/math.hpp"
}

static float ulp_of(double want) {
  float w = std::fabs(float(want));
  if (std::isinf(w)) return std::nextafter(w, 0.0f) - std::nextafter(std::nextafter(w, 0.0f), 0.0f);
  return std::nextafter(w, INFINITY) - w;
}

// F32, F64: the kernels as functors (inlined, so the block loops vectorize).
static const char* g_only = nullptr;

template <class F32, class F64>
static void check(const char* name, F32 f32, F64 f64, double (*libm)(double), float bound, int64_t stride) {
  if (g_only && !std::strstr(g_only, name)) return;
  double worst = 0;
  float worst_x = 0;
  long over_half = 0, checked = 0;
#pragma omp parallel
  {
    double my_worst = 0;
    float my_x = 0;
    long my_over = 0, my_checked = 0;
    float xs[4096], got[4096];
    double ref[4096];
#pragma omp for schedule(dynamic, 64)
    for (int64_t blk = 0; blk < (int64_t(1) << 20); blk += stride) {
      float first;
      uint32_t b0 = uint32_t(blk << 12);
      std::memcpy(&first, &b0, 4);
      if (!(std::fabs(first) <= bound)) continue;  // (blocks share sign and exponent: all beyond or all NaN)
      for (int i = 0; i < 4096; ++i) {
        uint32_t b = b0 | uint32_t(i);
        std::memcpy(&xs[i], &b, 4);
      }
      for (int i = 0; i < 4096; ++i) got[i] = f32(xs[i]);
      for (int i = 0; i < 4096; ++i) ref[i] = f64(double(xs[i]));
      for (int i = 0; i < 4096; ++i) {
        float x = xs[i];
        if (!(std::fabs(x) <= bound)) continue;
        ++my_checked;
        double want = ref[i];
        double err = std::fabs(double(got[i]) - want) / ulp_of(want);
        if (!(err <= 0.75)) {  // confirm against libm (and catch NaN results)
          want = libm(double(x));
          err = std::fabs(double(got[i]) - want) / ulp_of(want);
          if (err != err) err = 1e9;
        }
        if (err > 0.5) ++my_over;
        if (err > my_worst) {
          my_worst = err;
          my_x = x;
        }
      }
    }
#pragma omp critical
    {
      if (my_worst > worst) {
        worst = my_worst;
        worst_x = my_x;
      }
      over_half += my_over;
      checked += my_checked;
    }
  }
  std::printf("%s: %ld floats with |x| <= %g checked, max error %.4f ulp at x = %.9g (%a); %ld above 0.5 ulp\n", name,
              checked, double(bound), worst, double(worst_x), double(worst_x), over_half);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  // (a second argument: the functions to check, e.g. cos,tan; all by default)
  g_only = argc > 2 ? argv[2] : nullptr;
  // (an optional argument: check every k-th block of 4,096 floats only, for a quick look)
  const int64_t stride = argc > 1 ? std::atoll(argv[1]) : 1;
  check("sin", [](float x) { return k::sin_f32(x); }, [](double x) { return k::sin_f64(x); }, ::sin,
        k::kTrigBoundF, stride);
  check("cos", [](float x) { return k::cos_f32(x); }, [](double x) { return k::cos_f64(x); }, ::cos,
        k::kTrigBoundF, stride);
  check("tan", [](float x) { return k::tan_f32(x); }, [](double x) { return k::tan_f64(x); }, ::tan,
        k::kTrigBoundF, stride);
  check("arctan", [](float x) { return k::atan_f32(x); }, [](double x) { return k::atan_f64(x); }, ::atan,
        __builtin_inff(), stride);
}
