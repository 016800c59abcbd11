// h54's accuracy check of simd/math.hpp's float32 inverse trigonometric
// kernels, kept for arctan2 on a dense 2-d sample (check_inverse_trig); the
// one-argument functions are also in cpp/tools/exhaustive_f32.cpp's table.
// (Folding arctan2 into that tool's driver is left to do.)
// every float (all 2^32 bit patterns) in each kernel's vector range, against
// the float64 kernels of the same header (within 1 ulp of float64: 2^-29 of a
// float ulp; tests/test_kernels_fastpaths.py measures them against long
// double) and, where the error exceeds 0.75 ulp, against glibc's double libm.
// Prints the worst error in float ulps of the correctly rounded result.
// Run once by hand; not part of the build:
//   g++ -O2 -std=c++17 -ffp-contract=off -fno-trapping-math -fno-math-errno -mavx2 -fopenmp \
//       -Icpp/src cpp/tools/atan2_f32_sample.cpp -o /tmp/f32trig && /tmp/f32trig
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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
// (whole names: "arcsin" does not select sin)
static bool selected(const char* name) {
  if (!g_only) return true;
  std::string list = std::string(",") + g_only + ",";
  return list.find(std::string(",") + name + ",") != std::string::npos;
}

template <class F32, class F64>
static void check(const char* name, F32 f32, F64 f64, double (*libm)(double), float bound, int64_t stride) {
  if (!selected(name)) return;
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

// arcsin, arccos (every float; |x| > 1 must give NaN) and arctan2: a 2-d
// sample, (a) y and x each every 2^18-th float bit pattern (both signs, a
// fixed offset in the low bits): 2^14 x 2^14 = 2^28 pairs, NaNs included,
// (b) |y| / |x| near the quadrant fold (y = x times each of 4,096 ratios in
// [1/2, 2], alternating signs, for 2^14 x): 2^26 pairs, (c) every pair of a special
// value grid (zeros, subnormals, min/max normal, 1, inf, NaN, both signs);
// NaN and zero results must match the float64 kernel's exactly.
static double err_ulps(float got, double want) {
  if (want != want) return got != got ? 0.0 : 1e9;
  if (got != got) return 1e9;
  if (want == 0.0) return got == 0.0f && std::signbit(got) == std::signbit(want) ? 0.0 : 1e9;
  double e = std::fabs(double(got) - want) / ulp_of(want);
  return e;
}

static void check_atan2_points(const char* what, const float* ys, const float* xs, int64_t n, double& worst,
                               float& wy, float& wx, long& over, long& checked) {
  for (int64_t i = 0; i < n; ++i) {
    float got = k::atan2_f32(ys[i], xs[i]);
    double want = k::atan2_f64(double(ys[i]), double(xs[i]));
    double e = err_ulps(got, want);
    if (!(e <= 0.75)) e = err_ulps(got, ::atan2(double(ys[i]), double(xs[i])));
    ++checked;
    if (e > 0.5) ++over;
    if (e > worst) {
      worst = e;
      wy = ys[i];
      wx = xs[i];
    }
  }
  (void)what;
}

static void check_inverse_trig(int64_t stride) {
  // (|x| > 1: NaN, checked by tests/test_kernels_fastpaths.py)
  check("arcsin", [](float x) { return k::asin_f32(x); }, [](double x) { return k::asin_f64(x); }, ::asin, 1.0f,
        stride);
  check("arccos", [](float x) { return k::acos_f32(x); }, [](double x) { return k::acos_f64(x); }, ::acos, 1.0f,
        stride);
  if (!selected("arctan2")) return;
  double worst = 0;
  float wy = 0, wx = 0;
  long over = 0, checked = 0;
  const int64_t side = int64_t(1) << 14 >> (stride > 1 ? 3 : 0);  // (a quick look: 2^11 per side)
  const uint32_t step = uint32_t((int64_t(1) << 32) / side);
#pragma omp parallel
  {
    double mw = 0;
    float my = 0, mx = 0;
    long mo = 0, mc = 0;
    static thread_local float ys[1 << 12], xs[1 << 12];
#pragma omp for schedule(dynamic, 16)
    for (int64_t iy = 0; iy < side; ++iy) {  // (a)
      uint32_t by = uint32_t(iy) * step + 0x1234u;
      float y;
      std::memcpy(&y, &by, 4);
      for (int64_t ix0 = 0; ix0 < side; ix0 += 4096) {
        int m = 0;
        for (int64_t ix = ix0; ix < ix0 + 4096 && ix < side; ++ix) {
          uint32_t bx = uint32_t(ix) * step + 0x2b5u;
          std::memcpy(&xs[m], &bx, 4);
          ys[m++] = y;
        }
        check_atan2_points("grid", ys, xs, m, mw, my, mx, mo, mc);
      }
    }
#pragma omp for schedule(dynamic, 16)
    for (int64_t ix = 0; ix < 16384; ix += (stride > 1 ? 8 : 1)) {  // (b)
      uint32_t bx = uint32_t(ix) * 262144u + 0x3a7u;
      float x;
      std::memcpy(&x, &bx, 4);
      if (!(std::fabs(x) <= 3e38f)) continue;
      for (int i = 0; i < 4096; ++i) {
        xs[i] = x;
        ys[i] = x * (0.5f + 1.5f * float(i) / 4096.0f) * (i & 1 ? -1.0f : 1.0f);
      }
      check_atan2_points("fold", ys, xs, 4096, mw, my, mx, mo, mc);
    }
#pragma omp critical
    {
      if (mw > worst) {
        worst = mw;
        wy = my;
        wx = mx;
      }
      over += mo;
      checked += mc;
    }
  }
  const float sp[] = {0.0f, 0x1p-149f, 0x1p-130f, 0x1p-126f, 1e-30f, 0x1p-30f, 0.4375f, 0.5f, 0.6875f, 1.0f, 1.5f,
                      2.4375f, 0x1p30f, 1e30f, 0x1p64f, 0x1p100f, 3.4028235e38f, __builtin_inff(), __builtin_nanf("")};
  std::vector<float> gy, gx;
  for (float a : sp)
    for (float b : sp)
      for (int s = 0; s < 4; ++s) {
        gy.push_back(s & 1 ? -a : a);
        gx.push_back(s & 2 ? -b : b);
      }
  check_atan2_points("special", gy.data(), gx.data(), int64_t(gy.size()), worst, wy, wx, over, checked);
  std::printf("arctan2: %ld (y, x) pairs checked, max error %.4f ulp at (%.9g, %.9g) (%a, %a); %ld above 0.5 ulp\n",
              checked, worst, double(wy), double(wx), double(wy), double(wx), over);
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
  check_inverse_trig(stride);
}
