// Exhaustive check of float32 elementwise kernels (cpp/src/simd/loops.hpp)
// over all 2^32 inputs: the same bits in the baseline, AVX2 and AVX-512
// builds of unary<float>, and the ulp error of each result against the
// correctly rounded value (a float64 libm oracle: its error, ~2^-52
// relative, is ~2^-29 float ulp). NaN, infinite and zero results must
// match exactly. Not part of the extension; run by hand after changing a
// float32 kernel (the pytest bars sample 10^6 points per run).
//
// Build and run from the repository root (after a build that generated
// build/dev/core/generated/tapegrad_gen/*.inc):
//   sh cpp/tools/exhaustive_f32.sh exp log log1p
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tapegrad/kernels.hpp"

#if defined(TG_ISA)
#include "simd/loops.hpp"
namespace tg::kern {
#define TG_TOOL_NAME2(a) unary_f32_##a
#define TG_TOOL_NAME(a) TG_TOOL_NAME2(a)
void TG_TOOL_NAME(TG_ISA)(UnaryOp op, const float* x, float* y, int64_t n) { TG_ISA::unary<float>(op, x, y, n); }
}  // namespace tg::kern
#else
namespace tg::kern {
void unary_f32_baseline(UnaryOp, const float*, float*, int64_t);
void unary_f32_avx2(UnaryOp, const float*, float*, int64_t);
void unary_f32_avx512(UnaryOp, const float*, float*, int64_t);
}  // namespace tg::kern
using tg::kern::UnaryOp;

static double oracle(UnaryOp op, double x) {
  switch (op) {
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Log1p: return std::log1p(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
    case UnaryOp::Softplus: return (x > 0 ? x : 0.0) + std::log1p(std::exp(-std::fabs(x)));
    default: return NAN;
  }
}

struct Result {
  double max_err = 0;
  uint32_t worst = 0;
  uint64_t bad_special = 0, isa_mismatch = 0, over_half = 0;
  uint32_t first_bad = 0;
};

int main(int argc, char** argv) {
  struct Named { const char* name; UnaryOp op; };
  const Named all[] = {{"exp", UnaryOp::Exp},   {"log", UnaryOp::Log},         {"log1p", UnaryOp::Log1p},
                       {"tanh", UnaryOp::Tanh}, {"sigmoid", UnaryOp::Sigmoid}, {"softplus", UnaryOp::Softplus}};
  int nthreads = std::thread::hardware_concurrency();
  for (int a = 1; a < argc; ++a) {
    const Named* f = nullptr;
    for (const Named& n : all)
      if (std::strcmp(n.name, argv[a]) == 0) f = &n;
    if (!f) {
      std::fprintf(stderr, "unknown function %s\n", argv[a]);
      return 2;
    }
    constexpr int64_t kChunk = 1 << 16;
    std::atomic<int64_t> next{0};
    std::vector<Result> res(nthreads);
    auto work = [&](int t) {
      std::vector<float> x(kChunk), y0(kChunk), y1(kChunk), y2(kChunk);
      Result& r = res[t];
      for (;;) {
        int64_t c = next.fetch_add(1);
        if (c >= (int64_t(1) << 32) / kChunk) break;
        for (int64_t i = 0; i < kChunk; ++i) {
          uint32_t b = uint32_t(c * kChunk + i);
          std::memcpy(&x[i], &b, 4);
        }
        tg::kern::unary_f32_baseline(f->op, x.data(), y0.data(), kChunk);
        tg::kern::unary_f32_avx2(f->op, x.data(), y1.data(), kChunk);
        tg::kern::unary_f32_avx512(f->op, x.data(), y2.data(), kChunk);
        for (int64_t i = 0; i < kChunk; ++i) {
          uint32_t b0, b1, b2;
          std::memcpy(&b0, &y0[i], 4);
          std::memcpy(&b1, &y1[i], 4);
          std::memcpy(&b2, &y2[i], 4);
          if (b0 != b1 || b0 != b2) ++r.isa_mismatch;
          double want = oracle(f->op, double(x[i]));
          float want32 = float(want);
          float got = y0[i];
          if (std::isnan(want32) || std::isinf(want32) || want32 == 0.0f) {
            bool ok = std::isnan(want32) ? std::isnan(got) : got == want32;
            if (!ok && r.bad_special++ == 0) std::memcpy(&r.first_bad, &x[i], 4);
            continue;
          }
          float aw = std::fabs(want32);
          float up = std::nextafter(aw, INFINITY);
          double ulp = std::isinf(up) ? double(aw) - double(std::nextafter(aw, 0.0f)) : double(up) - double(aw);
          double err = std::fabs(double(got) - want) / ulp;
          if (std::isnan(got)) err = INFINITY;
          if (err > 0.5) ++r.over_half;
          if (err > r.max_err) {
            r.max_err = err;
            std::memcpy(&r.worst, &x[i], 4);
          }
        }
      }
    };
    std::vector<std::thread> th;
    for (int t = 0; t < nthreads; ++t) th.emplace_back(work, t);
    for (auto& t : th) t.join();
    Result tot;
    for (const Result& r : res) {
      if (r.max_err > tot.max_err) {
        tot.max_err = r.max_err;
        tot.worst = r.worst;
      }
      if (r.bad_special && !tot.bad_special) tot.first_bad = r.first_bad;
      tot.bad_special += r.bad_special;
      tot.isa_mismatch += r.isa_mismatch;
      tot.over_half += r.over_half;
    }
    float w, fb;
    std::memcpy(&w, &tot.worst, 4);
    std::memcpy(&fb, &tot.first_bad, 4);
    std::printf("%-8s all 2^32 inputs: max error %.4f ulp at x = %a (%.9g); %llu results above 0.5 ulp; "
                "%llu NaN/inf/zero results wrong%s; %llu inputs whose bits differ between ISA builds\n",
                f->name, tot.max_err, double(w), double(w), (unsigned long long)tot.over_half,
                (unsigned long long)tot.bad_special,
                tot.bad_special ? (" (first at x = " + std::to_string(fb) + ")").c_str() : "",
                (unsigned long long)tot.isa_mismatch);
    std::fflush(stdout);
  }
  return 0;
}
#endif
