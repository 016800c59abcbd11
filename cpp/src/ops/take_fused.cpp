// h111-takefused: take / take_along_axis over an int64 index in one pass.
// Each element's index is read once: wrapped (negative ones count from the
// end), checked, its element gathered and, when a node will keep them, its
// flat position written; the pass is split among the threads. PyTorch's
// kernel makes one pass too; gather.cpp's general path made three over the
// index (wrap, the kernel's range check, the gather) besides the binding's copy.
#include <atomic>

#include "ops/common.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/parallel.hpp"

namespace tg {

namespace gather_detail {
[[noreturn]] void out_of_bounds(const char* op, int64_t index, int64_t axis, int64_t n);
}

namespace {

// out[r, j] = x[r, wrap(p[r, j])] over rows of m index entries and n
// elements; pos[r, j] = r * n + wrap(p[r, j]) when pos is given. A bad
// index reads element 0 of its row (never outside x) and sets `bad`.
template <class E, bool Pos>
void gather_rows_fused(const E* px, const int64_t* p, E* po, int64_t* pos, int64_t rows, int64_t m, int64_t n,
                       std::atomic<bool>& bad) {
  const int64_t total = rows * m;
  parallel_for(total, kGrainElements, [&](int64_t b, int64_t e) {
    bool ok = true;
    int64_t r = b / m, j = b - r * m, base = r * n;
    for (int64_t t = b; t < e;) {
      const int64_t stop = std::min(e, t + (m - j));  // the end of this row
      const E* xr = px + base;
      for (; t < stop; ++t) {  // branch-free
        const int64_t v0 = p[t], v = v0 + (v0 < 0 ? n : 0);
        const bool in = static_cast<uint64_t>(v) < static_cast<uint64_t>(n);
        ok &= in;
        const int64_t vc = in ? v : 0;
        po[t] = xr[vc];
        if constexpr (Pos) pos[t] = base + vc;
      }
      j = 0;
      base += n;
    }
    if (!ok) bad.store(true, std::memory_order_relaxed);
  });
}

template <class E>
void run(const E* px, const int64_t* p, E* po, int64_t* pos, int64_t rows, int64_t m, int64_t n,
         std::atomic<bool>& bad) {
  if (pos)
    gather_rows_fused<E, true>(px, p, po, pos, rows, m, n, bad);
  else
    gather_rows_fused<E, false>(px, p, po, nullptr, rows, m, n, bad);
}

}  // namespace

Var take_rows_fused(const char* op, const Var& x, const Tensor& indices, int64_t rows, int64_t n, int64_t axis,
                    const Shape& out_shape) {
  const int64_t total = indices.numel(), m = rows ? total / rows : 0;
  const Tensor xc = x->data.contiguous();
  Tensor y = Tensor::empty(out_shape, x->dtype());
  // The positions only when a node will keep them (as Recorder decides):
  // the node never holds the caller's index, which may be a NumPy array's memory.
  const bool keep = x->requires_grad && grad_enabled();
  Tensor positions = keep ? Tensor::empty(out_shape, DType::I64) : Tensor();
  if (total) {
    if (n == 0) gather_detail::out_of_bounds(op, indices.ptr<int64_t>()[0], axis, n);
    std::atomic<bool> bad{false};
    const int64_t* p = indices.ptr<int64_t>();
    int64_t* q = keep ? positions.ptr<int64_t>() : nullptr;
    switch (itemsize(x->dtype())) {
      case 8: run(static_cast<const uint64_t*>(xc.raw()), p, static_cast<uint64_t*>(y.raw()), q, rows, m, n, bad); break;
      case 4: run(static_cast<const uint32_t*>(xc.raw()), p, static_cast<uint32_t*>(y.raw()), q, rows, m, n, bad); break;
      default: throw type_error(std::string(op) + ": unsupported dtype " + dtype_name(x->dtype()));
    }
    if (bad.load(std::memory_order_relaxed))  // the first bad one in index order, at any thread count
      for (int64_t i = 0; i < total; ++i)
        if (p[i] < -n || p[i] >= n) gather_detail::out_of_bounds(op, p[i], axis, n);
  }
  return gather_made(x, std::move(y), positions);
}

}  // namespace tg
