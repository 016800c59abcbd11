// Kernels that move elements: broadcast_to, transpose, gather / scatter,
// concatenation, slicing and padding along an axis.
#include "kernels/common.hpp"

#include <atomic>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

namespace tg::kern {

// A stride-0 view (PyTorch's expand): O(1), whatever the size.
Tensor broadcast_to(const Tensor& x, const Shape& shape, const char* opname) {
  check_shape(shape, opname);  // a view allocates nothing, but its shape is one NumPy accepts
  Shape s = broadcast_shapes(x.shape, shape, opname);
  if (s != shape)
    throw value_error(std::string(opname) + ": cannot broadcast a Variable of shape " + shape_str(x.shape) +
                      " to shape " + shape_str(shape));
  const Shape xs = x.strides();
  Shape st(shape.size(), 0);
  const size_t lead = shape.size() - x.shape.size();
  for (size_t d = 0; d < x.shape.size(); ++d) st[d + lead] = x.shape[d] == 1 ? 0 : xs[d];
  return Tensor::strided(x.storage, shape, st, x.offset, x.dtype);
}

Tensor transpose(const Tensor& x, const std::vector<int64_t>& perm) { return x.permuted(perm); }

namespace {
// o[i * ldo + j] = a[j * lda + i] for i < m, j < n: a 2-D transposed copy.
// Cut into blocks of one cache line per row (8 float64 or 16 float32), so
// that each source line read and each destination line written is whole
// within one block, and blocks into tiles of kTransposeTile for page and
// prefetch locality; inside a block, 2x2 (float64) or 4x4 (float32)
// in-register transposes (SSE2, every x86-64 has it; a copy, so the bits
// are the same at every ISA). `stream`: write with non-temporal stores, so
// each destination line is written without first being read (the
// read-for-ownership of lines 8 KB apart is what a transposed copy of a
// large array waits for; memcpy avoids it the same way); only for a large
// copy, whose result would not stay in cache anyway.
constexpr int64_t kTransposeTile = 128;

#if defined(__SSE2__)
template <bool Stream>
inline void transpose_micro(double* o, int64_t ldo, const double* a, int64_t lda) {
  const __m128d x = _mm_loadu_pd(a), y = _mm_loadu_pd(a + lda);
  if (Stream) {
    _mm_stream_pd(o, _mm_unpacklo_pd(x, y));
    _mm_stream_pd(o + ldo, _mm_unpackhi_pd(x, y));
  } else {
    _mm_storeu_pd(o, _mm_unpacklo_pd(x, y));
    _mm_storeu_pd(o + ldo, _mm_unpackhi_pd(x, y));
  }
}
template <bool Stream>
inline void transpose_micro(float* o, int64_t ldo, const float* a, int64_t lda) {
  __m128 r0 = _mm_loadu_ps(a), r1 = _mm_loadu_ps(a + lda), r2 = _mm_loadu_ps(a + 2 * lda),
         r3 = _mm_loadu_ps(a + 3 * lda);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  if (Stream) {
    _mm_stream_ps(o, r0);
    _mm_stream_ps(o + ldo, r1);
    _mm_stream_ps(o + 2 * ldo, r2);
    _mm_stream_ps(o + 3 * ldo, r3);
  } else {
    _mm_storeu_ps(o, r0);
    _mm_storeu_ps(o + ldo, r1);
    _mm_storeu_ps(o + 2 * ldo, r2);
    _mm_storeu_ps(o + 3 * ldo, r3);
  }
}

template <bool Stream, class F>
void transpose_blocks(F* o, int64_t ldo, const F* a, int64_t lda, int64_t m, int64_t n) {
  constexpr int64_t mb = 16 / sizeof(F), blk = 64 / sizeof(F);
  for (int64_t i0 = 0; i0 < m; i0 += kTransposeTile)
    for (int64_t j0 = 0; j0 < n; j0 += kTransposeTile) {
      const int64_t i1 = std::min(m, i0 + kTransposeTile), j1 = std::min(n, j0 + kTransposeTile);
      for (int64_t jb = j0; jb < j1; jb += blk)
        for (int64_t ib = i0; ib < i1; ib += blk) {
          const int64_t ie = std::min(i1, ib + blk), je = std::min(j1, jb + blk);
          if (ie - ib == blk && je - jb == blk) {
            for (int64_t i = ib; i < ie; i += mb)
              for (int64_t j = jb; j < je; j += mb) transpose_micro<Stream>(o + i * ldo + j, ldo, a + j * lda + i, lda);
          } else {
            for (int64_t i = ib; i < ie; ++i)
              for (int64_t j = jb; j < je; ++j) o[i * ldo + j] = a[j * lda + i];
          }
        }
    }
  if (Stream) _mm_sfence();  // the streamed lines are visible before the threads join
}
#endif

// E is the element's bit pattern (uint32_t / uint64_t); the SSE2 blocks
// move it as float / double, which loads and stores copy bit for bit.
template <class E>
bool transpose_copy(E* o, int64_t ldo, const E* a, int64_t lda, int64_t m, int64_t n, bool stream) {
#if defined(__SSE2__)
  if constexpr (sizeof(E) == 4 || sizeof(E) == 8) {
    using F = std::conditional_t<sizeof(E) == 4, float, double>;
    F* fo = reinterpret_cast<F*>(o);
    const F* fa = reinterpret_cast<const F*>(a);
    // Streaming stores need 16-byte aligned addresses in every row.
    if (stream && reinterpret_cast<uintptr_t>(o) % 16 == 0 && (ldo * int64_t(sizeof(F))) % 16 == 0)
      transpose_blocks<true>(fo, ldo, fa, lda, m, n);
    else
      transpose_blocks<false>(fo, ldo, fa, lda, m, n);
    return true;
  }
#endif
  (void)o, (void)ldo, (void)a, (void)lda, (void)m, (void)n, (void)stream;
  return false;
}

// o[0..n) = c. Long runs take the ISA's loop (this file is built for the
// baseline, whose SSE2 stores made a 4 MB strided fill 2x PyTorch's time);
// short ones (v[2:5] = c) stay inline, without the indirect call.
template <class E>
inline void fill_elems(E* o, int64_t n, E c) {
  constexpr int64_t kShort = 32;
  if constexpr (sizeof(E) == 1) {
    std::memset(o, c, static_cast<size_t>(n));
  } else if (n < kShort) {
    for (int64_t j = 0; j < n; ++j) o[j] = c;
  } else if constexpr (sizeof(E) == 4) {
    isa().fill_u32(reinterpret_cast<uint32_t*>(o), n, static_cast<uint32_t>(c));
  } else {
    isa().fill_u64(reinterpret_cast<uint64_t*>(o), n, static_cast<uint64_t>(c));
  }
}

// dst[i] = src[i] over `shape` for element types of size sizeof(E), the
// operands given by element strides. Axes are merged where both are
// contiguous; a run whose source is strided (a transpose) is copied in
// square tiles so that both the rows read and the rows written stay in L1,
// instead of one cache line per element read.
// Rows this short ((N, 1) broadcast to (N, 2); x[:, :2]) are copied by copy_short_rows.
constexpr int64_t kShortRow = 4;
// The last two axes as one loop nest: copy_elems' odometer step and its memcpy or fill call per row cost
// ~35 instructions, more than a row of 2 elements (h107: (1000, 1) -> (1000, 2) float64 took 78,481).
template <class E>
void copy_short_rows(const Shape& sh, const Shape& ds, const Shape& ss, E* dst, const E* src) {
  const size_t p = sh.size() - 2;  // the odometer runs over the axes before p
  const int64_t n = sh[p + 1], dl = ds[p + 1], sl = ss[p + 1], m = sh[p], dp = ds[p], sp = ss[p];
  Shape idx(p, 0);
  for (;;) {
    int64_t od = 0, os = 0;
    for (size_t d = 0; d < p; ++d) {
      od += idx[d] * ds[d];
      os += idx[d] * ss[d];
    }
    E* o = dst + od;
    const E* a = src + os;
    if (sl == 0) {  // a broadcast last axis: each source element fills a row
      for (int64_t i = 0; i < m; ++i) {
        const E c = a[i * sp];
        for (int64_t j = 0; j < n; ++j) o[i * dp + j * dl] = c;
      }
    } else {
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) o[i * dp + j * dl] = a[i * sp + j * sl];
    }
    size_t d = p;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++idx[d] < sh[d]) break;
      idx[d] = 0;
    }
  }
}

template <class E>
void copy_elems(const Shape& shape0, const Shape& dst_st0, const Shape& src_st0, E* dst, const E* src, bool stream) {
  // Drop size-1 axes, merge axis d into d-1 when contiguous for both.
  Shape sh, ds, ss;
  for (size_t d = 0; d < shape0.size(); ++d) {
    if (shape0[d] == 1) continue;
    if (!sh.empty() && ds.back() == dst_st0[d] * shape0[d] && ss.back() == src_st0[d] * shape0[d]) {
      sh.back() *= shape0[d];
      ds.back() = dst_st0[d];
      ss.back() = src_st0[d];
      continue;
    }
    sh.push_back(shape0[d]);
    ds.push_back(dst_st0[d]);
    ss.push_back(src_st0[d]);
  }
  if (sh.empty()) {
    *dst = *src;
    return;
  }
  const size_t nd = sh.size();
  const size_t last = nd - 1;
  // The tiled axis: the one (not the last) the source walks most densely.
  size_t k = last;
  if (ss[last] != 1 && nd >= 2) {
    int64_t best = std::llabs(ss[last]);
    for (size_t d = 0; d < last; ++d)
      if (std::llabs(ss[d]) < best) {
        best = std::llabs(ss[d]);
        k = d;
      }
  }
  if (k == last && nd >= 2 && sh[last] <= kShortRow) return copy_short_rows(sh, ds, ss, dst, src);
  // Odometer over every axis except `last` (and `k` when tiling). The
  // strides the inner loops use are locals: E may be uint64_t, which may
  // alias the Shapes' int64_t, and the compiler would reload them per element.
  Shape idx(nd, 0);
  const int64_t n = sh[last], dl = ds[last], sl = ss[last], dk = ds[k], sk = ss[k], m = sh[k];
  for (;;) {
    int64_t od = 0, os = 0;
    for (size_t d = 0; d < last; ++d) {
      od += idx[d] * ds[d];
      os += idx[d] * ss[d];
    }
    if (k == last) {
      if (dl == 1 && sl == 1) {
        std::memcpy(dst + od, src + os, static_cast<size_t>(n) * sizeof(E));
      } else if (sl == 0) {  // a broadcast value (v[::2] = c): a fill, vectorizable
        const E c = src[os];
        if (dl == 1) {
          fill_elems(dst + od, n, c);
        } else {
          for (int64_t j = 0; j < n; ++j) dst[od + j * dl] = c;
        }
      } else if (dl == -1 && sl == 1) {  // a reversed copy (flip's gradient): constant strides vectorize
        E* d = dst + od;
        const E* q = src + os;
        for (int64_t j = 0; j < n; ++j) d[-j] = q[j];
      } else if (dl == 1 && sl == -1) {
        E* d = dst + od;
        const E* q = src + os;
        for (int64_t j = 0; j < n; ++j) d[j] = q[-j];
      } else {
        for (int64_t j = 0; j < n; ++j) dst[od + j * dl] = src[os + j * sl];
      }
    } else if (dl == 1 && sk == 1 && transpose_copy(dst + od, dk, src + os, sl, m, n, stream)) {
    } else {
      constexpr int64_t B = 32;
      for (int64_t i0 = 0; i0 < m; i0 += B)
        for (int64_t j0 = 0; j0 < n; j0 += B) {
          const int64_t i1 = std::min(m, i0 + B), jn = std::min(n, j0 + B) - j0;
          for (int64_t i = i0; i < i1; ++i) {
            E* o = dst + od + i * dk + j0 * dl;
            const E* a = src + os + i * sk + j0 * sl;
            if (dl == 1) {
              for (int64_t j = 0; j < jn; ++j) o[j] = a[j * sl];
            } else {
              for (int64_t j = 0; j < jn; ++j) o[j * dl] = a[j * sl];
            }
          }
        }
    }
    size_t d = last;
    for (;;) {
      if (d == 0) return;
      --d;
      if (d == k) continue;
      if (++idx[d] < sh[d]) break;
      idx[d] = 0;
    }
  }
}
}  // namespace

void write_through(const Tensor& view, const Tensor& values, const char* opname) {
  const Shape st = view.strides();
  for (size_t d = 0; d < st.size(); ++d)
    if (st[d] == 0 && view.shape[d] > 1)
      throw value_error(std::string(opname) + ": cannot write in place into a broadcast view (shape " +
                        shape_str(view.shape) + ", stride 0 on axis " + std::to_string(d) +
                        "): its elements share memory; copy it first");
  copy_strided(view, values);
}

// Bytes per task of a threaded copy or fill: 512 KB, so copies and fills
// split from 1 MB. (The elementwise grain's bytes in float64, 2 MB, left a
// float32 array of 1M elements (4 MB) one byte short of splitting when a
// slice's gradient zeroed around its block, and the 2 MB halves of a
// concatenate's gradient whole: 1.1-1.7x PyTorch's time at 2 threads.)
constexpr int64_t kGrainBytes = 512 << 10;
// A strided copy this large writes its destination with non-temporal
// stores (see transpose_copy): 4 MB, past the private L2.
constexpr int64_t kStreamBytes = 4 << 20;
// An outer axis this long splits evenly enough among the pool's threads.
constexpr int64_t kMinSplitRows = 16;

void copy_bytes(void* dst, const void* src, size_t n) {
  parallel_for(static_cast<int64_t>(n), kGrainBytes, [&](int64_t b, int64_t e) {
    std::memcpy(static_cast<char*>(dst) + b, static_cast<const char*>(src) + b, static_cast<size_t>(e - b));
  });
}

void zero_bytes(void* dst, size_t n) {
  parallel_for(static_cast<int64_t>(n), kGrainBytes,
               [&](int64_t b, int64_t e) { std::memset(static_cast<char*>(dst) + b, 0, static_cast<size_t>(e - b)); });
}

void copy_strided(const Tensor& dst, const Tensor& src) {
  if (dst.shape != src.shape || dst.dtype != src.dtype)
    throw value_error("copy: shapes or dtypes differ: " + shape_str(dst.shape) + " " + dtype_name(dst.dtype) + " and " +
                      shape_str(src.shape) + " " + dtype_name(src.dtype));
  const int64_t n = dst.numel();
  if (n == 0) return;
  // Threads only between distinct buffers: an overlapping copy (x[1:] = x[:-1])
  // keeps the one order it always had.
  const bool split = dst.storage != src.storage;
  if (dst.is_contiguous() && src.is_contiguous()) {
    if (split) copy_bytes(dst.raw(), src.raw(), dst.nbytes());
    else std::memcpy(dst.raw(), src.raw(), dst.nbytes());
    return;
  }
  const Shape ds = dst.strides(), ss = src.strides();
  const size_t isz = itemsize(dst.dtype);
  const bool stream = split && static_cast<int64_t>(dst.nbytes()) >= kStreamBytes;
  auto run = [&](const Shape& shape, int64_t dst_off, int64_t src_off) {
    char* d = static_cast<char*>(dst.data_ptr()) + dst_off * static_cast<int64_t>(isz);
    const char* s = static_cast<const char*>(src.data_ptr()) + src_off * static_cast<int64_t>(isz);
    switch (isz) {
      case 8: copy_elems(shape, ds, ss, reinterpret_cast<uint64_t*>(d), reinterpret_cast<const uint64_t*>(s), stream); break;
      case 4: copy_elems(shape, ds, ss, reinterpret_cast<uint32_t*>(d), reinterpret_cast<const uint32_t*>(s), stream); break;
      default: copy_elems(shape, ds, ss, reinterpret_cast<uint8_t*>(d), reinterpret_cast<const uint8_t*>(s), stream); break;
    }
  };
  const int64_t grain = kGrainBytes / static_cast<int64_t>(isz);  // (elements)
  if (!split || n < 2 * grain) return run(dst.shape, 0, 0);
  // Large: each thread copies a block of the longest axis (the tiles of a
  // transpose stay whole within a block). A copy or fill whose rows run
  // along the last axis of both splits an outer axis instead, so that each
  // thread writes whole rows: the halves of every row of M[::2, 1:-1] = c
  // shared a cache line at their edge.
  size_t ax = 0;
  for (size_t d = 1; d < dst.shape.size(); ++d)
    if (dst.shape[d] > dst.shape[ax]) ax = d;
  if (!ds.empty() && ds.back() == 1 && (ss.back() == 0 || ss.back() == 1))
    for (size_t d = 0; d + 1 < dst.shape.size(); ++d)
      if (dst.shape[d] >= kMinSplitRows) {
        ax = d;
        break;
      }
  const int64_t len = dst.shape[ax];
  parallel_for(len, std::max<int64_t>(1, grain / (n / len)), [&](int64_t b, int64_t e) {
    Shape part = dst.shape;
    part[ax] = e - b;
    run(part, b * ds[ax], b * ss[ax]);
  });
}

// ---------------------------------------------------------------------------
// Gather / scatter, concatenation, slicing along an axis
// ---------------------------------------------------------------------------

// Index values must lie in [0, limit): one min/max pass (vectorizable),
// then a search for the first bad one only when there is one. A large index
// is cut into blocks of kIndexBlock entries whose bounds are taken in
// parallel and kept (`lo`/`hi`, one entry per block): scatter_add skips the
// blocks that cannot reach a task's rows.
constexpr int64_t kIndexBlock = 16384;

static void index_block_bounds(const int64_t* ix, int64_t n, int64_t* lo, int64_t* hi) {
  const int64_t blocks = (n + kIndexBlock - 1) / kIndexBlock;
  parallel_for(blocks, std::max<int64_t>(1, kGrainElements / kIndexBlock), [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const int64_t i0 = c * kIndexBlock, i1 = std::min(n, i0 + kIndexBlock);
      int64_t l = ix[i0], h = ix[i0];
      for (int64_t i = i0; i < i1; ++i) {
        l = std::min(l, ix[i]);
        h = std::max(h, ix[i]);
      }
      lo[c] = l;
      hi[c] = h;
    }
  });
}

// Returns the index's (min, max); with `lo_hi`, an index of more than one
// block leaves its blocks' bounds there (left empty for one block).
static std::pair<int64_t, int64_t> check_index(const Tensor& index, int64_t limit, const char* opname,
                                               std::vector<int64_t>* lo_hi = nullptr) {
  if (index.dtype != DType::I64) throw type_error(std::string(opname) + ": index must be int64");
  const int64_t* ix = index.ptr<int64_t>();
  const int64_t n = index.numel();
  int64_t lo = 0, hi = 0;
  if (n <= kIndexBlock) {  // (small: no block vector allocated)
    if (n) lo = hi = ix[0];
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, ix[i]);
      hi = std::max(hi, ix[i]);
    }
  } else if (n) {
    const int64_t blocks = (n + kIndexBlock - 1) / kIndexBlock;
    std::vector<int64_t> local;
    std::vector<int64_t>& b = lo_hi ? *lo_hi : local;
    b.resize(static_cast<size_t>(2 * blocks));
    index_block_bounds(ix, n, b.data(), b.data() + blocks);
    lo = *std::min_element(b.begin(), b.begin() + blocks);
    hi = *std::max_element(b.begin() + blocks, b.end());
  }
  if (n == 0 || (lo >= 0 && hi < limit)) return {lo, hi};
  const int64_t bad = lo < 0 ? lo : hi;
  throw index_error(std::string(opname) + ": flat index " + std::to_string(bad) + " out of range for size " +
                    std::to_string(limit));
}

namespace {
// Elements moved per task of a gather or scatter; memory-bound, so the
// pool's grain in elements applies.
int64_t row_grain(int64_t inner) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, inner)); }

template <class E>
void gather_rows(const E* px, const int64_t* ix, E* po, int64_t n, int64_t inner) {
  parallel_for(n, row_grain(inner), [&](int64_t b, int64_t e) {
    if (inner == 1) {
      for (int64_t i = b; i < e; ++i) po[i] = px[ix[i]];
    } else {
      for (int64_t i = b; i < e; ++i)
        std::memcpy(po + i * inner, px + ix[i] * inner, static_cast<size_t>(inner) * sizeof(E));
    }
  });
}
}  // namespace

Tensor gather(const Tensor& x0, const Tensor& index, int64_t rows, int64_t inner, const Shape& out_shape) {
  TG_CONTIGUOUS(x, x0);
  if (numel(out_shape) != index.numel() * inner || x.numel() != rows * inner)
    throw value_error("gather: index size does not match the output shape");
  check_index(index, rows, "getitem");
  Tensor out = Tensor::empty(out_shape, x.dtype);
  if (out.numel() == 0) return out;
  const int64_t* ix = index.ptr<int64_t>();
  const int64_t n = index.numel();
  switch (itemsize(x.dtype)) {
    case 8: gather_rows(static_cast<const uint64_t*>(x.raw()), ix, static_cast<uint64_t*>(out.raw()), n, inner); break;
    case 4: gather_rows(static_cast<const uint32_t*>(x.raw()), ix, static_cast<uint32_t*>(out.raw()), n, inner); break;
    default: throw type_error(std::string("getitem: unsupported dtype ") + dtype_name(x.dtype));
  }
  return out;
}

Tensor scatter_add(const Tensor& src0, const Tensor& index, int64_t rows, int64_t inner, const Shape& out_shape) {
  TG_CONTIGUOUS(src, src0);
  if (src.numel() != index.numel() * inner || numel(out_shape) != rows * inner)
    throw value_error("scatter_add: index size does not match the source size");
  std::vector<int64_t> bounds;  // per index block: lo[0..blocks), then hi[0..blocks)
  const auto [lo, hi] = check_index(index, rows, "getitem backward", &bounds);
  Tensor out = Tensor::zeros(out_shape, src.dtype);
  const int64_t* ix = index.ptr<int64_t>();
  const int64_t n = index.numel();
  if (out.numel() == 0 || n == 0) return out;
  const int64_t one[2] = {lo, hi};  // (an index of one block)
  const int64_t blocks = bounds.empty() ? 1 : static_cast<int64_t>(bounds.size() / 2);
  const int64_t* blo = bounds.empty() ? one : bounds.data();
  const int64_t* bhi = bounds.empty() ? one + 1 : bounds.data() + blocks;
  TG_DISPATCH_FLOAT(src.dtype, "scatter_add", {
    const T* ps = src.ptr<T>();
    T* po = out.ptr<T>();
    // Each task owns a range of output rows and walks the index in order,
    // adding the entries that land in its range: a repeated index
    // accumulates in index order at any thread count (the same bits). A
    // block of the index whose bounds miss the range is skipped (take_along_axis's
    // rows, a sorted index: each task reads its part only); a block inside
    // the range is added without a test; in a block that straddles it, the
    // entries in range are first listed branch-free (a random index's test
    // mispredicted every other entry at 2 threads).
    parallel_for(rows, row_grain(inner), [&](int64_t rb, int64_t re) {
      std::vector<int64_t> sel;
      for (int64_t c = 0; c < blocks; ++c) {
        if (bhi[c] < rb || blo[c] >= re) continue;
        const int64_t i0 = c * kIndexBlock, i1 = std::min(n, i0 + kIndexBlock);
        if (blo[c] >= rb && bhi[c] < re) {
          if (inner == 1) {
            for (int64_t i = i0; i < i1; ++i) po[ix[i]] += ps[i];
          } else {
            for (int64_t i = i0; i < i1; ++i) {
              T* o = po + ix[i] * inner;
              const T* s = ps + i * inner;
              for (int64_t j = 0; j < inner; ++j) o[j] += s[j];
            }
          }
          continue;
        }
        if (sel.empty()) sel.resize(static_cast<size_t>(kIndexBlock) + 1);
        int64_t k = 0;
        for (int64_t i = i0; i < i1; ++i) {
          sel[static_cast<size_t>(k)] = i;
          k += ix[i] >= rb && ix[i] < re;
        }
        for (int64_t q = 0; q < k; ++q) {
          const int64_t i = sel[static_cast<size_t>(q)];
          T* o = po + ix[i] * inner;
          const T* s = ps + i * inner;
          for (int64_t j = 0; j < inner; ++j) o[j] += s[j];
        }
      }
    });
  });
  return out;
}

Tensor mask_rows(const uint8_t* mask, int64_t n) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += mask[i] != 0;
  // One slot more than the count: the branch-free loop below stores every
  // position and advances only past selected ones (a random mask would
  // mispredict a branch half the time).
  Tensor buf = Tensor::empty(Shape{count + 1}, DType::I64);
  int64_t* po = buf.ptr<int64_t>();
  for (int64_t i = 0, k = 0; i < n; ++i) {
    po[k] = i;
    k += mask[i] != 0;
  }
  return buf.view(Shape{count});
}

namespace {
// v[ints] = c: index entries per task of the scatter (a random store costs
// several streamed elements' time), split only over a destination of >=
// kGrainElements (a small one's lines would pass between the cores at every
// store).
constexpr int64_t kScatterGrain = kGrainElements / 8;
constexpr int64_t kScatterAhead = 16;  // (prefetch distance, in entries)

// Stores `bits` at p[ix[i]] for i in [b, e), negative entries wrapped by n.
// Each target line is prefetched for writing 16 entries ahead: without it
// the random stores' misses (and page walks) overlapped little, 1.7x the
// time at 1 thread. Threads split the entries, so two may store the same
// element: the same bits, as relaxed atomic stores (plain moves).
template <class E>
void scatter_bits(E* p, const int64_t* ix, int64_t b, int64_t e, int64_t n, E bits) {
  auto at = [&](int64_t i) { return ix[i] + (ix[i] < 0 ? n : 0); };
  int64_t i = b;
  for (; i < e - kScatterAhead; ++i) {
    __builtin_prefetch(p + at(i + kScatterAhead), 1);
    __atomic_store_n(p + at(i), bits, __ATOMIC_RELAXED);
  }
  for (; i < e; ++i) __atomic_store_n(p + at(i), bits, __ATOMIC_RELAXED);
}

template <class T>
void scatter_number(T* p, int64_t rows, const int64_t* ix, int64_t k, T c) {
  using E = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  E bits;
  std::memcpy(&bits, &c, sizeof bits);
  parallel_for(k, rows >= kGrainElements ? kScatterGrain : k, [&](int64_t b, int64_t e) {
    scatter_bits(reinterpret_cast<E*>(p), ix, b, e, rows, bits);
  });
}

template <class T>
void fill_selected(T* p, const int64_t* ix, const uint8_t* mask, int64_t n, int64_t inner, T c, int64_t rows) {
  if (!mask && inner == 1) {
    scatter_number(p, rows, ix, n, c);
    return;
  }
  parallel_for(n, row_grain(inner), [&](int64_t b, int64_t e) {
    if (mask && inner == 1) {
      for (int64_t i = b; i < e; ++i) p[i] = mask[i] ? c : p[i];  // a blend, vectorizable
      return;
    }
    using E = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    E bits;
    std::memcpy(&bits, &c, sizeof bits);
    for (int64_t i = b; i < e; ++i) {
      if (mask && !mask[i]) continue;
      fill_elems(reinterpret_cast<E*>(p + (mask ? i : ix[i]) * inner), inner, bits);
    }
  });
}
}  // namespace

void fill_rows(const Tensor& x, const Tensor* index, const uint8_t* mask, int64_t n, int64_t inner, double c) {
  if (!x.is_contiguous()) throw value_error("setitem: internal error: fill_rows needs a contiguous tensor");
  TG_DISPATCH_FLOAT(x.dtype, "setitem", {
    fill_selected(x.ptr<T>(), index ? index->ptr<int64_t>() : nullptr, mask, n, inner, static_cast<T>(c),
                  x.numel() / std::max<int64_t>(1, inner));
  });
}

bool fill_ints(const Tensor& x, const int64_t* ix, int64_t k, double c) {
  if (!x.is_contiguous() || x.shape.size() != 1)
    throw value_error("setitem: internal error: fill_ints needs a contiguous vector");
  const int64_t n = x.numel();
  // Every entry in [-n, n) before the first store (a refused key writes nothing).
  std::atomic<bool> bad{false};
  parallel_for(k, kGrainElements, [&](int64_t b, int64_t e) {
    int64_t lo = ix[b], hi = ix[b];
    for (int64_t i = b; i < e; ++i) {
      lo = std::min(lo, ix[i]);
      hi = std::max(hi, ix[i]);
    }
    if (lo < -n || hi >= n) bad.store(true, std::memory_order_relaxed);
  });
  if (bad.load(std::memory_order_relaxed)) return false;
  TG_DISPATCH_FLOAT(x.dtype, "setitem", { scatter_number(x.ptr<T>(), n, ix, k, static_cast<T>(c)); });
  return true;
}

Tensor diag_rows(const Tensor& d0, int64_t start, int64_t stop) {
  TG_CONTIGUOUS(d, d0);
  int64_t n = d.numel(), k = stop - start;
  if (start < 0 || k < 0 || stop > n)
    throw value_error("diag_rows: rows " + std::to_string(start) + ".." + std::to_string(stop) +
                      " out of range for size " + std::to_string(n));
  Shape s{k};
  s.insert(s.end(), d.shape.begin(), d.shape.end());
  Tensor out = Tensor::zeros(s, d.dtype);
  TG_DISPATCH_FLOAT(d.dtype, "diag_rows", {
    const T* pd = d.ptr<T>();
    T* po = out.ptr<T>();
    for (int64_t b = 0; b < k; ++b) po[b * n + start + b] = pd[start + b];
  });
  return out;
}

static void outer_inner(const Shape& s, int64_t axis, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) throw value_error("concatenate: need at least one array to concatenate");
  Shape out_shape = xs[0].shape;
  int64_t total = 0;
  bool contiguous = true;
  for (const Tensor& t : xs) {
    if (__builtin_add_overflow(total, t.shape[axis], &total))
      throw value_error("concatenate: the array is too big: the length of axis " + std::to_string(axis) +
                        " does not fit a 64-bit integer");
    contiguous = contiguous && t.is_contiguous();
  }
  out_shape[axis] = total;
  Tensor out = Tensor::empty(out_shape, xs[0].dtype);
  if (contiguous && static_cast<int64_t>(out.nbytes()) < 2 * kGrainBytes) {  // small: one memcpy per part and outer index
    int64_t outer, inner;
    outer_inner(out_shape, axis, outer, inner);
    size_t isz = itemsize(out.dtype);
    char* po = static_cast<char*>(out.raw());
    for (int64_t o = 0; o < outer; ++o) {
      for (const Tensor& t : xs) {
        size_t chunk = static_cast<size_t>(t.shape[axis] * inner) * isz;
        if (chunk) std::memcpy(po, static_cast<const char*>(t.raw()) + o * chunk, chunk);
        po += chunk;
      }
    }
    return out;
  }
  // Each part copied straight into its block of the result (a strided view
  // of it): no contiguous copy of a strided part, threaded when large.
  const Shape ost = out.strides();
  int64_t start = 0;
  for (const Tensor& t : xs) {
    if (t.numel()) copy_strided(Tensor::strided(out.storage, t.shape, ost, start * ost[axis], out.dtype), t);
    start += t.shape[axis];
  }
  return out;
}

Tensor narrow(const Tensor& x0, int64_t axis, int64_t start, int64_t length) {
  TG_CONTIGUOUS(x, x0);
  Shape out_shape = x.shape;
  out_shape[axis] = length;
  Tensor out = Tensor::empty(out_shape, x.dtype);
  int64_t outer, inner;
  outer_inner(x.shape, axis, outer, inner);
  size_t isz = itemsize(x.dtype);
  size_t chunk = static_cast<size_t>(length * inner) * isz, row = static_cast<size_t>(x.shape[axis] * inner) * isz;
  const char* px = static_cast<const char*>(x.raw()) + static_cast<size_t>(start * inner) * isz;
  char* po = static_cast<char*>(out.raw());
  for (int64_t o = 0; o < outer; ++o)
    if (chunk) std::memcpy(po + o * chunk, px + o * row, chunk);
  return out;
}

Tensor pad_axis(const Tensor& x0, int64_t axis, int64_t start, int64_t total) {
  TG_CONTIGUOUS(x, x0);
  Shape out_shape = x.shape;
  out_shape[axis] = total;
  Tensor out = Tensor::zeros(out_shape, x.dtype);
  int64_t outer, inner;
  outer_inner(out_shape, axis, outer, inner);
  size_t isz = itemsize(x.dtype);
  size_t chunk = static_cast<size_t>(x.shape[axis] * inner) * isz, row = static_cast<size_t>(total * inner) * isz;
  char* po = static_cast<char*>(out.raw()) + static_cast<size_t>(start * inner) * isz;
  const char* px = static_cast<const char*>(x.raw());
  for (int64_t o = 0; o < outer; ++o)
    if (chunk) std::memcpy(po + o * row, px + o * chunk, chunk);
  return out;
}

// ----- h89-views: tril / triu as one masked copy (a memcpy and a zero fill per
// row of each matrix of the last two axes); their VJPs run it on the seed.
Tensor triangle(const Tensor& x0, int64_t k, bool lower) {
  TG_CONTIGUOUS(x, x0);
  Tensor out = Tensor::empty(x.shape, x.dtype);
  const int64_t nd = x.ndim(), n = x.shape[nd - 2], m = x.shape[nd - 1];
  if (out.numel() == 0) return out;
  const int64_t mats = x.numel() / (n * m);
  k = std::clamp<int64_t>(k, -n - 1, m + 1);  // (beyond those the mask is all or nothing: no overflow below)
  const size_t isz = itemsize(x.dtype);
  const char* px = static_cast<const char*>(x.raw());
  char* po = static_cast<char*>(out.raw());
  for (int64_t b = 0; b < mats; ++b) {
    for (int64_t i = 0; i < n; ++i) {
      // lower keeps columns j <= i + k; upper keeps j >= i + k
      const int64_t edge = std::clamp<int64_t>(lower ? i + k + 1 : i + k, 0, m);
      const size_t row = static_cast<size_t>((b * n + i) * m) * isz, cut = static_cast<size_t>(edge) * isz,
                   all = static_cast<size_t>(m) * isz;
      if (lower) {
        std::memcpy(po + row, px + row, cut);
        std::memset(po + row + cut, 0, all - cut);
      } else {
        std::memset(po + row, 0, cut);
        std::memcpy(po + row + cut, px + row + cut, all - cut);
      }
    }
  }
  return out;
}

}  // namespace tg::kern
