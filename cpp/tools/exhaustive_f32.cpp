// Exhaustive check of float32 elementwise kernels (cpp/src/simd/loops.hpp,
// simd/math.hpp) over all 2^32 inputs, through unary<float> itself (vector
// kernels and their scalar libm fix-up lanes, e.g. sin beyond kTrigBoundF):
// the same bits in the baseline, AVX2 and AVX-512 builds, and the ulp error
// of each result against the correctly rounded value (a float64 libm oracle:
// its error, ~2^-52 relative, is ~2^-29 float ulp). NaN, infinite and zero
// results must match exactly (zeros with their sign). Not part of the
// extension; run by hand after changing a float32 kernel (the pytest bars
// sample 10^6 points per run).
//
// One driver, one table (kFunctions below): adding a function is one line.
// Build and run from the repository root (after a build that generated
// build/dev/core/generated/tapegrad_gen/*.inc):
//   sh cpp/tools/exhaustive_f32.sh exp log log1p sin cos tan arctan
//   sh cpp/tools/exhaustive_f32.sh --stride 64 sin    (every 64th block: a quick look)
//   sh cpp/tools/exhaustive_f32.sh all
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// Oracles: float64 functions whose error is far below a float ulp.
static double sigmoid_ref(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }
static double softplus_ref(double x) { return (x > 0 ? x : 0.0) + std::log1p(std::exp(-std::fabs(x))); }

struct Function {
  const char* name;  // the command-line name (the op's name in the spec)
  UnaryOp op;
  double (*oracle)(double);
};
static const Function kFunctions[] = {
    {"exp", UnaryOp::Exp, [](double x) { return std::exp(x); }},
    {"log", UnaryOp::Log, [](double x) { return std::log(x); }},
    {"log1p", UnaryOp::Log1p, [](double x) { return std::log1p(x); }},
    {"tanh", UnaryOp::Tanh, [](double x) { return std::tanh(x); }},
    {"sigmoid", UnaryOp::Sigmoid, sigmoid_ref},
    {"softplus", UnaryOp::Softplus, softplus_ref},
    {"sin", UnaryOp::Sin, [](double x) { return std::sin(x); }},
    {"cos", UnaryOp::Cos, [](double x) { return std::cos(x); }},
    {"tan", UnaryOp::Tan, [](double x) { return std::tan(x); }},
    {"arctan", UnaryOp::Arctan, [](double x) { return std::atan(x); }},
    {"arcsin", UnaryOp::Arcsin, [](double x) { return std::asin(x); }},
    {"arccos", UnaryOp::Arccos, [](double x) { return std::acos(x); }},
};

struct Result {
  double max_err = 0;
  uint32_t worst = 0;
  uint64_t bad_special = 0, isa_mismatch = 0, over_half = 0, checked = 0;
  uint32_t first_bad = 0;
};

// Error of got in float ulps of the correctly rounded want (special results exact).
static bool check_one(float x, float got, double want, Result& r) {
  ++r.checked;
  float want32 = float(want);
  if (std::isnan(want32) || std::isinf(want32) || want32 == 0.0f) {
    uint32_t bg, bw;
    std::memcpy(&bg, &got, 4);
    std::memcpy(&bw, &want32, 4);
    bool ok = std::isnan(want32) ? std::isnan(got) : bg == bw;
    if (!ok && r.bad_special++ == 0) std::memcpy(&r.first_bad, &x, 4);
    return ok;
  }
  float aw = std::fabs(want32);
  float up = std::nextafter(aw, INFINITY);
  double ulp = std::isinf(up) ? double(aw) - double(std::nextafter(aw, 0.0f)) : double(up) - double(aw);
  double err = std::isnan(got) ? INFINITY : std::fabs(double(got) - want) / ulp;
  if (err > 0.5) ++r.over_half;
  if (err > r.max_err) {
    r.max_err = err;
    std::memcpy(&r.worst, &x, 4);
  }
  return true;
}

static void run(const Function& f, int64_t stride, int nthreads) {
  constexpr int64_t kChunk = 1 << 16, kChunks = (int64_t(1) << 32) / kChunk;
  std::atomic<int64_t> next{0};
  std::vector<Result> res(nthreads);
  auto work = [&](int t) {
    std::vector<float> x(kChunk), y0(kChunk), y1(kChunk), y2(kChunk);
    Result& r = res[t];
    for (;;) {
      int64_t c = next.fetch_add(1) * stride;
      if (c >= kChunks) break;
      for (int64_t i = 0; i < kChunk; ++i) {
        uint32_t b = uint32_t(c * kChunk + i);
        std::memcpy(&x[i], &b, 4);
      }
      tg::kern::unary_f32_baseline(f.op, x.data(), y0.data(), kChunk);
      tg::kern::unary_f32_avx2(f.op, x.data(), y1.data(), kChunk);
      tg::kern::unary_f32_avx512(f.op, x.data(), y2.data(), kChunk);
      for (int64_t i = 0; i < kChunk; ++i) {
        if (std::memcmp(&y0[i], &y1[i], 4) != 0 || std::memcmp(&y0[i], &y2[i], 4) != 0) ++r.isa_mismatch;
        check_one(x[i], y0[i], f.oracle(double(x[i])), r);
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
    tot.checked += r.checked;
  }
  float w, fb;
  std::memcpy(&w, &tot.worst, 4);
  std::memcpy(&fb, &tot.first_bad, 4);
  std::string scope = stride == 1 ? "all 2^32 inputs" : std::to_string(tot.checked) + " inputs (every " +
                                                            std::to_string(stride) + "th block)";
  std::printf("%-8s %s: max error %.4f ulp at x = %a (%.9g); %llu results above 0.5 ulp; "
              "%llu NaN/inf/zero results wrong%s; %llu inputs whose bits differ between ISA builds\n",
              f.name, scope.c_str(), tot.max_err, double(w), double(w), (unsigned long long)tot.over_half,
              (unsigned long long)tot.bad_special,
              tot.bad_special ? (" (first at x = " + std::to_string(fb) + ")").c_str() : "",
              (unsigned long long)tot.isa_mismatch);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  int nthreads = std::thread::hardware_concurrency();
  int64_t stride = 1;
  std::vector<const Function*> todo;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--stride") == 0 && a + 1 < argc) {
      stride = std::atoll(argv[++a]);
      if (stride < 1) stride = 1;
      continue;
    }
    if (std::strcmp(argv[a], "all") == 0) {
      for (const Function& f : kFunctions) todo.push_back(&f);
      continue;
    }
    const Function* f = nullptr;
    for (const Function& g : kFunctions)
      if (std::strcmp(g.name, argv[a]) == 0) f = &g;
    if (!f) {
      std::fprintf(stderr, "unknown function %s; known:", argv[a]);
      for (const Function& g : kFunctions) std::fprintf(stderr, " %s", g.name);
      std::fprintf(stderr, "\n");
      return 2;
    }
    todo.push_back(f);
  }
  for (const Function* f : todo) run(*f, stride, nthreads);
  return 0;
}
#endif
