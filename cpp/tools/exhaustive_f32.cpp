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
// Two-argument functions (arctan2) cannot be exhaustive (2^64 pairs): they
// get a seeded sample through binary<float> instead, 2^27 pairs by default
// (--pairs N): half with both bit patterns uniformly random (every sign,
// exponent, subnormal, inf and NaN), half with |y/x| spread over [2^-26,
// 2^26] (x a random finite float, y = x m 2^e, random signs: every
// reduction interval and the quadrant fold), plus every pair of a grid of
// special values (zeros, subnormals, min/max normal, 1, the reduction
// edges, inf, NaN; both signs). (This was cpp/tools/atan2_f32_sample.cpp.)
//
// One driver, one table (kFunctions below): adding a function is one line.
// Build and run from the repository root (after a build that generated
// build/dev/core/generated/tapegrad_gen/*.inc):
//   sh cpp/tools/exhaustive_f32.sh exp log log1p sin cos tan arctan arcsin arccos
//   sh cpp/tools/exhaustive_f32.sh --stride 64 sin    (every 64th block: a quick look)
//   sh cpp/tools/exhaustive_f32.sh arctan2            (2^27 sampled pairs + the special grid)
//   sh cpp/tools/exhaustive_f32.sh --pairs 1000000000 arctan2
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
void TG_TOOL_NAME(TG_ISA)(UnaryOp op, const float* x, float* y, int64_t n) {
  // h92-param: the parametrized ops at the parameters of their kFunctions lines (elu: alpha = 1,
  // leaky_relu: the default 0.01)
  if (op == UnaryOp::Elu || op == UnaryOp::LeakyRelu) {
    const double p[2] = {op == UnaryOp::Elu ? 1.0 : 0.01, 0.0};
    return TG_ISA::unary_p<float>(op, x, y, n, p);
  }
  TG_ISA::unary<float>(op, x, y, n);
}
#define TG_TOOL_BNAME2(a) binary_f32_##a
#define TG_TOOL_BNAME(a) TG_TOOL_BNAME2(a)
void TG_TOOL_BNAME(TG_ISA)(BinaryOp op, const float* a, const float* b, float* o, int64_t n) {
  TG_ISA::binary<float>(op, o, 1, a, 1, b, 1, n);
}
}  // namespace tg::kern
#else
namespace tg::kern {
void unary_f32_baseline(UnaryOp, const float*, float*, int64_t);
void unary_f32_avx2(UnaryOp, const float*, float*, int64_t);
void unary_f32_avx512(UnaryOp, const float*, float*, int64_t);
void binary_f32_baseline(BinaryOp, const float*, const float*, float*, int64_t);
void binary_f32_avx2(BinaryOp, const float*, const float*, float*, int64_t);
void binary_f32_avx512(BinaryOp, const float*, const float*, float*, int64_t);
}  // namespace tg::kern
using tg::kern::BinaryOp;
using tg::kern::UnaryOp;

// Oracles: float64 functions whose error is far below a float ulp.
static double sigmoid_ref(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }
static double softplus_ref(double x) { return (x > 0 ? x : 0.0) + std::log1p(std::exp(-std::fabs(x))); }
// h87-act: silu, gelu (tapegrad's tanh form, its two doubles; u's double rounding error, |u| * 2^-52 with
// |u| < 110 where a float result is nonzero, costs float ~2^-20 ulp), log_sigmoid.
static double silu_ref(double x) { return x * sigmoid_ref(x); }
static double gelu_ref(double x) { return x * sigmoid_ref(1.5957691216057308 * (x + 0.044715 * x * x * x)); }
static double log_sigmoid_ref(double x) { return -softplus_ref(-x); }

struct Function {
  const char* name;  // the command-line name (the op's name in the spec)
  UnaryOp op;
  double (*oracle)(double);
  BinaryOp op2 = BinaryOp::Add;              // two-argument functions: the op, sampled
  double (*oracle2)(double, double) = nullptr;  // (set: a sampled pair function)
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
    // h86-logfam
    {"log2", UnaryOp::Log2, [](double x) { return std::log2(x); }},
    {"log10", UnaryOp::Log10, [](double x) { return std::log10(x); }},
    {"cbrt", UnaryOp::Cbrt, [](double x) { return std::cbrt(x); }},
    {"arcsinh", UnaryOp::Arcsinh, [](double x) { return std::asinh(x); }},
    {"arccosh", UnaryOp::Arccosh, [](double x) { return std::acosh(x); }},
    {"arctanh", UnaryOp::Arctanh, [](double x) { return std::atanh(x); }},
    {"arctan2", UnaryOp::Arctan, nullptr, BinaryOp::Arctan2, [](double y, double x) { return std::atan2(y, x); }},
    // h85-expfam
    {"expm1", UnaryOp::Expm1, [](double x) { return std::expm1(x); }},
    {"sinh", UnaryOp::Sinh, [](double x) { return std::sinh(x); }},
    {"cosh", UnaryOp::Cosh, [](double x) { return std::cosh(x); }},
    {"exp2", UnaryOp::Exp2, [](double x) { return std::exp2(x); }},

    // h87-act
    {"silu", UnaryOp::Silu, silu_ref},
    {"gelu", UnaryOp::Gelu, gelu_ref},
    {"log_sigmoid", UnaryOp::LogSigmoid, log_sigmoid_ref},
    // h92-param: elu at alpha = 1 (expm1's kernel), leaky_relu at 0.01 (x * 0.01f: exact in double)
    {"elu", UnaryOp::Elu, [](double x) { return x > 0 ? x : std::expm1(x); }},
    {"leaky_relu", UnaryOp::LeakyRelu, [](double x) { return x > 0 ? x : x * double(0.01f); }},

    // h84-round: exact (0 ulp, -0.0 kept, the same bits on every ISA)
    {"floor", UnaryOp::Floor, [](double x) { return std::floor(x); }},
    {"ceil", UnaryOp::Ceil, [](double x) { return std::ceil(x); }},
    {"rint", UnaryOp::Rint, [](double x) { return std::rint(x); }},
    {"trunc", UnaryOp::Trunc, [](double x) { return std::trunc(x); }},
    {"sign", UnaryOp::Sign, [](double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : (x != x ? x : 0.0)); }},
    {"square", UnaryOp::Square, [](double x) { return x * x; }},
    {"reciprocal", UnaryOp::Reciprocal, [](double x) { return 1.0 / x; }},

    // h90-binary (sampled pairs; a == b: a + log(2), so inf, inf is inf as NumPy's)
    {"logaddexp", UnaryOp::Exp, nullptr, BinaryOp::Logaddexp,
     [](double a, double b) { return a == b ? a + std::log(2.0) : std::fmax(a, b) + std::log1p(std::exp(-std::fabs(a - b))); }},
    {"logaddexp2", UnaryOp::Exp, nullptr, BinaryOp::Logaddexp2,
     [](double a, double b) { return a == b ? a + 1.0 : std::fmax(a, b) + std::log1p(std::exp2(-std::fabs(a - b))) / std::log(2.0); }},
    {"hypot", UnaryOp::Exp, nullptr, BinaryOp::Hypot, [](double a, double b) { return std::hypot(a, b); }},
};

struct Result {
  double max_err = 0;
  uint32_t worst = 0, worst_x = 0;  // (worst_x: a pair function's second argument)
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

static std::string hexf(float v) {
  char b[32];
  std::snprintf(b, sizeof b, "%a", double(v));
  return b;
}
static std::string dec(float v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", double(v));
  return b;
}
static void report(const Function& f, const std::vector<Result>& res, const std::string& scope, bool pairs);

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
  std::string scope = stride == 1 ? std::string("all 2^32 inputs")
                                  : std::to_string([&] {
                                      uint64_t c = 0;
                                      for (const Result& r : res) c += r.checked;
                                      return c;
                                    }()) + " inputs (every " + std::to_string(stride) + "th block)";
  report(f, res, scope, false);
}

static void report(const Function& f, const std::vector<Result>& res, const std::string& scope, bool pairs) {
  Result tot;
  for (const Result& r : res) {
    if (r.max_err > tot.max_err) {
      tot.max_err = r.max_err;
      tot.worst = r.worst;
      tot.worst_x = r.worst_x;
    }
    if (r.bad_special && !tot.bad_special) tot.first_bad = r.first_bad;
    tot.bad_special += r.bad_special;
    tot.isa_mismatch += r.isa_mismatch;
    tot.over_half += r.over_half;
    tot.checked += r.checked;
  }
  float w, wx, fb;
  std::memcpy(&w, &tot.worst, 4);
  std::memcpy(&wx, &tot.worst_x, 4);
  std::memcpy(&fb, &tot.first_bad, 4);
  std::string at = pairs ? "(y, x) = (" + hexf(w) + ", " + hexf(wx) + ")" : "x = " + hexf(w) + " (" + dec(w) + ")";
  std::printf("%-8s %s: max error %.4f ulp at %s; %llu results above 0.5 ulp; "
              "%llu NaN/inf/zero results wrong%s; %llu %s whose bits differ between ISA builds\n",
              f.name, scope.c_str(), tot.max_err, at.c_str(), (unsigned long long)tot.over_half,
              (unsigned long long)tot.bad_special,
              tot.bad_special ? (" (first at " + std::string(pairs ? "y" : "x") + " = " + dec(fb) + ")").c_str() : "",
              (unsigned long long)tot.isa_mismatch, pairs ? "pairs" : "inputs");
  std::fflush(stdout);
}

// The sample for two-argument functions (see the top): chunk c of 2^16 pairs
// from a splitmix64 stream seeded by c, so a run is reproducible at any
// thread count.
static uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static float bits_f(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
static void fill_pairs(int64_t c, float* y, float* x, int64_t n) {
  uint64_t s = uint64_t(c) * 0x2545f4914f6cdd1dULL + 1;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t r = splitmix(s);
    if (c % 2 == 0) {  // both bit patterns uniform
      y[i] = bits_f(uint32_t(r));
      x[i] = bits_f(uint32_t(r >> 32));
    } else {  // x finite, y = x m 2^e: |y/x| over [2^-26, 2^26]
      float xi = bits_f(uint32_t(r) & 0x7effffffu);  // (exponent < 254: finite)
      float m = 1.0f + float((r >> 32) & 0xffffff) * 0x1p-24f;
      int e = int((r >> 56) % 53) - 26;
      float yi = xi * std::ldexp(m, e);
      x[i] = (r >> 31) & 1 ? -xi : xi;
      y[i] = (r >> 30) & 1 ? -yi : yi;
    }
  }
}

static void run_pairs(const Function& f, int64_t npairs, int64_t stride, int nthreads) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (npairs + kChunk - 1) / kChunk;
  std::atomic<int64_t> next{0};
  std::vector<Result> res(nthreads);
  auto check = [&](const float* y, const float* x, int64_t n, Result& r, float* o0, float* o1, float* o2) {
    tg::kern::binary_f32_baseline(f.op2, y, x, o0, n);
    tg::kern::binary_f32_avx2(f.op2, y, x, o1, n);
    tg::kern::binary_f32_avx512(f.op2, y, x, o2, n);
    for (int64_t i = 0; i < n; ++i) {
      if (std::memcmp(&o0[i], &o1[i], 4) != 0 || std::memcmp(&o0[i], &o2[i], 4) != 0) ++r.isa_mismatch;
      double before = r.max_err;
      check_one(y[i], o0[i], f.oracle2(double(y[i]), double(x[i])), r);
      if (r.max_err > before) std::memcpy(&r.worst_x, &x[i], 4);
    }
  };
  auto work = [&](int t) {
    std::vector<float> y(kChunk), x(kChunk), o0(kChunk), o1(kChunk), o2(kChunk);
    for (;;) {
      int64_t c = next.fetch_add(1) * stride;
      if (c >= chunks) break;
      fill_pairs(c, y.data(), x.data(), kChunk);
      check(y.data(), x.data(), kChunk, res[t], o0.data(), o1.data(), o2.data());
    }
  };
  std::vector<std::thread> th;
  for (int t = 0; t < nthreads; ++t) th.emplace_back(work, t);
  for (auto& t : th) t.join();
  const float sp[] = {0.0f,    0x1p-149f, 0x1p-130f, 0x1p-126f, 1e-30f,   0x1p-30f, 0.4375f,
                      0.5f,    0.6875f,   1.0f,      1.1875f,   1.5f,     2.4375f,  0x1p30f,
                      1e30f,   0x1p64f,   0x1p100f,  3.4028235e38f, __builtin_inff(), __builtin_nanf("")};
  std::vector<float> gy, gx;
  for (float a : sp)
    for (float b : sp)
      for (int s = 0; s < 4; ++s) {
        gy.push_back(s & 1 ? -a : a);
        gx.push_back(s & 2 ? -b : b);
      }
  int64_t ng = int64_t(gy.size());
  std::vector<float> o0(ng), o1(ng), o2(ng);
  check(gy.data(), gx.data(), ng, res[0], o0.data(), o1.data(), o2.data());
  int64_t sampled = 0;
  for (const Result& r : res) sampled += int64_t(r.checked);
  report(f, res, std::to_string(sampled - ng) + " sampled pairs" + (stride > 1 ? " (every " + std::to_string(stride) + "th chunk)" : std::string()) + " + " + std::to_string(ng) + " special pairs", true);
}

int main(int argc, char** argv) {
  int nthreads = std::thread::hardware_concurrency();
  int64_t stride = 1, npairs = int64_t(1) << 27;
  std::vector<const Function*> todo;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--stride") == 0 && a + 1 < argc) {
      stride = std::atoll(argv[++a]);
      if (stride < 1) stride = 1;
      continue;
    }
    if (std::strcmp(argv[a], "--pairs") == 0 && a + 1 < argc) {
      npairs = std::atoll(argv[++a]);
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
  for (const Function* f : todo) f->oracle2 ? run_pairs(*f, npairs, stride, nthreads) : run(*f, stride, nthreads);
  return 0;
}
#endif
