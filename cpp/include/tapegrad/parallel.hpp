// A small thread pool for large elementwise ops, reductions and optimizer
// steps. Work below the grain runs inline on the calling thread, so small
// tensors (most of an MLP step's ops) never pay for waking a thread.
#pragma once

#include <cstdint>
#include <type_traits>

namespace tg {

// Elements per task below which splitting costs more than it saves. PyTorch
// uses 32768, but here the pool shares the cores with OpenBLAS's workers,
// which spin for a while after every GEMM: in a training loop a worker of
// ours often waits for a core, so a split pays only for tasks long enough
// to cover that wait (benchmarks/run.py's mlp_mnist and mlp_large at 2
// threads place it near 256K elements per task).
constexpr int64_t kGrainElements = 262144;

// A non-owning reference to a callable f(begin, end): no allocation, unlike
// std::function, which matters on the per-op path of small tensors.
struct RangeFn {
  void* ctx;
  void (*call)(void*, int64_t, int64_t);
  void operator()(int64_t b, int64_t e) const { call(ctx, b, e); }
};

void parallel_for_impl(int64_t n, int64_t grain, RangeFn f);

// Calls f(begin, end) over disjoint ranges covering [0, n), in parallel when
// n >= 2 * grain and more than one thread is set; f must not throw. Ranges
// are fixed by n and the thread count only. Nested calls run inline. Below
// the grain this is a direct call.
template <class F>
inline void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  if (n < 2 * grain) {
    f(int64_t(0), n);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  parallel_for_impl(n, grain, RangeFn{const_cast<void*>(static_cast<const void*>(&f)), [](void* c, int64_t b, int64_t e) {
                                        (*static_cast<Fn*>(c))(b, e);
                                      }});
}

// Threads for tapegrad's own kernels (the caller counts as one). The BLAS's
// threads are set alongside, by the bindings.
void set_num_threads(int n);
int get_num_threads();

}  // namespace tg
