// A small thread pool for large elementwise ops, reductions and optimizer
// steps. Work below the grain runs inline on the calling thread, so small
// tensors (most of an MLP step's ops) never pay for waking a thread.
#pragma once

#include <cstdint>
#include <functional>

namespace tg {

// Elements per task below which splitting costs more than it saves (about
// 10-30 us of elementwise work; PyTorch uses 32768).
constexpr int64_t kGrainElements = 32768;

// Calls f(begin, end) over disjoint ranges covering [0, n), in parallel when
// n >= 2 * grain and more than one thread is set; f must not throw. Ranges
// are fixed by n and the thread count only. Nested calls run inline.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

// Threads for tapegrad's own kernels (the caller counts as one). The BLAS's
// threads are set alongside, by the bindings.
void set_num_threads(int n);
int get_num_threads();

}  // namespace tg
