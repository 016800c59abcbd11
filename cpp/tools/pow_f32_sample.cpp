// Sampled check of float32 x ** y (binary<float>(BinaryOp::Pow) of
// cpp/src/simd/loops.hpp): pow is 2-d, so instead of all 2^64 pairs a dense
// seeded random sample plus every pair of a grid of special values. For each
// pair: the same bits in the baseline, AVX2 and AVX-512 builds, and the ulp
// error against float64 libm pow (error ~2^-52 relative, ~2^-29 float ulp);
// NaN and infinite results must match exactly. Not part of the
// extension; run by hand after changing the kernel:
//   sh cpp/tools/pow_f32_sample.sh [pairs, default 10^9]
// Samples (a quarter each): x of uniformly random bits over the positive
// finite floats with y chosen so that y log2 x is uniform over [-152, 130]
// (the results that are neither 0 nor inf, subnormals included); x uniform
// in (0, 4) with y uniform in [-60, 60]; x in [0.5, 2) with y uniform in
// [-2^13, 2^13]; x and y of random bits (any sign, NaN, inf: the fix-up lanes).
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "tapegrad/kernels.hpp"

#if defined(TG_ISA)
#include "simd/loops.hpp"
namespace tg::kern {
#define TG_TOOL_NAME2(a) pow_f32_##a
#define TG_TOOL_NAME(a) TG_TOOL_NAME2(a)
void TG_TOOL_NAME(TG_ISA)(const float* x, const float* y, float* o, int64_t n) {
  TG_ISA::binary<float>(BinaryOp::Pow, o, 1, x, 1, y, 1, n);
}
}  // namespace tg::kern
#else
namespace tg::kern {
void pow_f32_baseline(const float*, const float*, float*, int64_t);
void pow_f32_avx2(const float*, const float*, float*, int64_t);
void pow_f32_avx512(const float*, const float*, float*, int64_t);
}  // namespace tg::kern

static uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static float bits_f(uint32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
static uint32_t f_bits(float f) { uint32_t b; std::memcpy(&b, &f, 4); return b; }
static double unif(uint64_t& s) { return double(splitmix(s) >> 11) * 0x1p-53; }

struct Result {
  double max_err = 0;
  float wx = 0, wy = 0;
  uint64_t n = 0, bad_special = 0, isa_mismatch = 0, over_half = 0;
  float bx = 0, by = 0;
};

static void check(Result& r, const float* x, const float* y, int64_t n, float* o0, float* o1, float* o2) {
  tg::kern::pow_f32_baseline(x, y, o0, n);
  tg::kern::pow_f32_avx2(x, y, o1, n);
  tg::kern::pow_f32_avx512(x, y, o2, n);
  for (int64_t i = 0; i < n; ++i) {
    ++r.n;
    if (f_bits(o0[i]) != f_bits(o1[i]) || f_bits(o0[i]) != f_bits(o2[i])) ++r.isa_mismatch;
    const double want = std::pow(double(x[i]), double(y[i]));
    const float want32 = float(want), got = o0[i];
    // (A result that rounds to 0 is measured in ulps of the smallest subnormal below: 2^-150 itself rounds to
    // 0 or 2^-149, both 0.5 ulp away.)
    if (std::isnan(want32) || std::isinf(want32)) {
      const bool ok = std::isnan(want32) ? std::isnan(got) : f_bits(got) == f_bits(want32);
      if (!ok && r.bad_special++ == 0) r.bx = x[i], r.by = y[i];
      continue;
    }
    const float aw = want32 == 0.0f ? 0x1p-149f : std::fabs(want32), up = std::nextafter(aw, INFINITY);
    const double ulp = std::isinf(up) ? double(aw) - double(std::nextafter(aw, 0.0f)) : double(up) - double(aw);
    double err = std::fabs(double(got) - want) / ulp;
    if (std::isnan(got)) err = INFINITY;
    if (err > 0.5) ++r.over_half;
    if (err > r.max_err) r.max_err = err, r.wx = x[i], r.wy = y[i];
  }
}

int main(int argc, char** argv) {
  const int64_t pairs = argc > 1 ? std::atoll(argv[1]) : 1000000000LL;
  const int nthreads = std::thread::hardware_concurrency();
  constexpr int64_t kChunk = 1 << 16;
  std::atomic<int64_t> next{0};
  std::vector<Result> res(nthreads + 1);
  auto work = [&](int t) {
    std::vector<float> x(kChunk), y(kChunk), o0(kChunk), o1(kChunk), o2(kChunk);
    for (;;) {
      const int64_t c = next.fetch_add(1);
      if (c * kChunk >= pairs) break;
      uint64_t s = uint64_t(c) * 0x2545F4914F6CDD1DULL + 1;  // a seed per chunk: the same sample at any thread count
      const int kind = int(c % 4);
      for (int64_t i = 0; i < kChunk; ++i) {
        float a, b;
        if (kind == 0) {
          a = bits_f(uint32_t(splitmix(s) % 0x7f800000u));  // positive finite (0 and subnormals included)
          const double l2 = std::log2(double(a));
          b = l2 == 0 ? float(unif(s) * 200 - 100) : float((unif(s) * 282 - 152) / l2);
        } else if (kind == 1) {
          a = float(unif(s) * 4), b = float(unif(s) * 120 - 60);
        } else if (kind == 2) {
          a = float(0.5 + unif(s) * 1.5), b = float((unif(s) * 2 - 1) * 8192);
        } else {
          const uint64_t v = splitmix(s);
          a = bits_f(uint32_t(v)), b = bits_f(uint32_t(v >> 32));
        }
        x[i] = a, y[i] = b;
      }
      check(res[t], x.data(), y.data(), std::min<int64_t>(kChunk, pairs - c * kChunk), o0.data(), o1.data(), o2.data());
    }
  };
  std::vector<std::thread> th;
  for (int t = 0; t < nthreads; ++t) th.emplace_back(work, t);
  for (auto& t : th) t.join();
  // Every pair of special and boundary values (also in blocks, so that vector and fix-up lanes mix).
  const float sv[] = {0.0f, -0.0f, 0x1p-149f, -0x1p-149f, 0x1p-126f, 1e-30f, 0.25f, 0.5f, -0.5f, 0.75f,
                      1.0f, -1.0f, 0x1.fffffep-1f, 0x1.000002p0f, 1.5f, -1.5f, 2.0f, -2.0f, 2.5f, 3.0f,
                      -3.0f, 10.0f, 127.0f, 128.0f, -149.0f, -150.0f, 1e10f, 0x1p31f, 0x1p32f + 0x1p9f, 0x1p24f,
                      0x1p24f + 2, 3.4028235e38f, -3.4028235e38f, INFINITY, -INFINITY, NAN, -NAN};
  const int ns = sizeof(sv) / sizeof(sv[0]);
  std::vector<float> gx, gy;
  for (int i = 0; i < ns; ++i)
    for (int j = 0; j < ns; ++j) gx.push_back(sv[i]), gy.push_back(sv[j]);
  std::vector<float> o0(gx.size()), o1(gx.size()), o2(gx.size());
  Result& g = res[nthreads];
  check(g, gx.data(), gy.data(), int64_t(gx.size()), o0.data(), o1.data(), o2.data());
  Result tot;
  for (int t = 0; t < nthreads; ++t) {
    const Result& r = res[t];
    if (r.max_err > tot.max_err) tot.max_err = r.max_err, tot.wx = r.wx, tot.wy = r.wy;
    if (r.bad_special && !tot.bad_special) tot.bx = r.bx, tot.by = r.by;
    tot.n += r.n, tot.bad_special += r.bad_special, tot.isa_mismatch += r.isa_mismatch, tot.over_half += r.over_half;
  }
  std::printf("pow float32, %llu random pairs: max error %.4f ulp at x = %a, y = %a; %llu results above 0.5 ulp; "
              "%llu NaN/inf results wrong (first x = %a, y = %a); %llu pairs whose bits differ between ISAs\n",
              (unsigned long long)tot.n, tot.max_err, double(tot.wx), double(tot.wy),
              (unsigned long long)tot.over_half, (unsigned long long)tot.bad_special, double(tot.bx), double(tot.by),
              (unsigned long long)tot.isa_mismatch);
  std::printf("special grid, %llu pairs: max error %.4f ulp; %llu NaN/inf results wrong (first x = %a, y = %a); "
              "%llu pairs whose bits differ between ISAs\n",
              (unsigned long long)g.n, g.max_err, (unsigned long long)g.bad_special, double(g.bx), double(g.by),
              (unsigned long long)g.isa_mismatch);
  return tot.max_err <= 1.0 && g.max_err <= 1.0 && !tot.bad_special && !g.bad_special && !tot.isa_mismatch &&
                 !g.isa_mismatch ? 0 : 1;
}
#endif
