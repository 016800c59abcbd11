#include "tapegrad/tensor.hpp"
#include "tapegrad/parallel.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <pthread.h>
#include <sys/mman.h>
#include <string>
#include <unordered_map>
#include <vector>

#include "tapegrad/config.hpp"
#include "tapegrad/kernels.hpp"
#include "tapegrad/support/pool.hpp"
#include "tapegrad/support/spin_lock.hpp"

namespace tg {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I64: return "int64";
    case DType::Bool: return "bool";
  }
  return "?";
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

namespace {
int g_max_dims = 64;  // NumPy 2.x's; set from the installed NumPy at import
}  // namespace

int max_dims() { return g_max_dims; }
void set_max_dims(int n) { g_max_dims = n; }

namespace {
[[noreturn]] __attribute__((noinline)) void refuse_shape(const Shape& s, const char* op, const std::string& why) {
  std::string msg = why + " (shape " + shape_str(s) + ")";
  if (op) throw value_error(std::string(op) + ": " + msg);
  throw shape_error(msg);
}
}  // namespace

void check_shape(const Shape& s, const char* op) {
  if (static_cast<int64_t>(s.size()) > g_max_dims)
    refuse_shape(s, op, "a shape may have at most " + std::to_string(g_max_dims) + " axes (NumPy's limit), got " +
                            std::to_string(s.size()));
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) refuse_shape(s, op, "negative dimension " + std::to_string(d));
    if (d != 0 && __builtin_mul_overflow(n, d, &n))
      refuse_shape(s, op, "the array is too big: its element count does not fit a 64-bit integer");
  }
}

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  if (s.size() == 1) out += ",";
  out += ")";
  return out;
}

Storage::~Storage() {
  if (deleter) deleter(data, ctx);
}

// ----- the buffer cache (see tensor.hpp) -----------------------------------
namespace {
// Buffers up to this size are rounded to 64 bytes only, and their free lists
// sit in an array (no hashing): they are the bulk of a small network's
// allocations, and glibc's aligned_alloc was ~20K instructions per training
// step of a 2-16-16-1 MLP (memalign splits and frees a chunk every call).
constexpr size_t kSmallMaxBytes = 4096;
constexpr size_t kHugeMinBytes = size_t(4) << 20;
constexpr size_t kHugePage = size_t(2) << 20;

// The size class of n bytes: n rounded up to a quarter of its power of two
// (at most 25% waste), and to 64 bytes (aligned_alloc needs a multiple).
size_t size_class(size_t n) {
  size_t r = (n + 63) / 64 * 64;
  if (r <= kSmallMaxBytes) return r;
  size_t p = size_t(1) << (63 - __builtin_clzll(r - 1));  // p < r <= 2p
  size_t step = p / 4;
  return (r + step - 1) / step * step;
}

// Buffers of 4 MB and more (1M float32 elements) are 2 MB-aligned and asked to
// be backed by transparent huge pages, as NumPy does for its arrays: with 4 KB
// pages for the output a 1M-element float64 multiply ran 1.25x PyTorch's time
// at 1 thread (NumPy, whose outputs are huge-page backed, 0.9x); now 0.82x.
// The alignment wastes address space only; madvise fails harmlessly where THP
// is off.
void* system_alloc(size_t cls) {
  if (cls < kHugeMinBytes) return std::aligned_alloc(64, cls);
  void* p = std::aligned_alloc(kHugePage, (cls + kHugePage - 1) / kHugePage * kHugePage);
  if (p) madvise(p, cls, MADV_HUGEPAGE);
  return p;
}

// The cache's lock guards a few loads and stores (a free-list push or pop
// and the statistics): a pthread mutex's lock and unlock were ~50
// instructions of every small array's allocation and release.
struct BufferCache {
  SpinLock mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // classes above kSmallMaxBytes
  std::vector<void*> small_lists[kSmallMaxBytes / 64];        // class 64 (i + 1)
  BufferCacheStats stats;
  size_t limit;

  BufferCache() {
    constexpr long long kDefaultMb = 1024;
    const char* env = std::getenv("TAPEGRAD_CACHE_LIMIT_MB");
    long long mb = kDefaultMb;
    if (env && *env) {
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(env, &end, 10);
      if (errno || *end || v < 0 || v > (1LL << 40)) {  // 2^40 MB: far past any machine
        note_config_warning(std::string("TAPEGRAD_CACHE_LIMIT_MB='") + env +
                            "' is not a whole number of megabytes >= 0 (0 turns the cache off); using " +
                            std::to_string(kDefaultMb));
      } else {
        mb = v;
      }
    }
    limit = static_cast<size_t>(mb) << 20;
  }
  void* take(size_t cls) {
    {
      std::lock_guard<SpinLock> lock(mu);
      stats.in_use_bytes += cls;
      std::vector<void*>* list = nullptr;
      if (cls <= kSmallMaxBytes) {
        list = &small_lists[cls / 64 - 1];
      } else {
        auto it = free_lists.find(cls);
        if (it != free_lists.end()) list = &it->second;
      }
      if (list && !list->empty()) {
        void* p = list->back();
        list->pop_back();
        stats.cached_bytes -= cls;
        ++stats.reuses;
        return p;
      }
      ++stats.system_allocs;
    }
    void* p = system_alloc(cls);
    if (!p) {
      // Out of memory: give the cached buffers back and try once more.
      empty();
      p = system_alloc(cls);
      if (!p) {
        std::lock_guard<SpinLock> lock(mu);
        stats.in_use_bytes -= cls;
        throw std::bad_alloc();
      }
    }
    return p;
  }
  void give(void* p, size_t cls) {
    {
      std::lock_guard<SpinLock> lock(mu);
      stats.in_use_bytes -= cls;
      if (stats.cached_bytes + cls <= limit) {
        (cls <= kSmallMaxBytes ? small_lists[cls / 64 - 1] : free_lists[cls]).push_back(p);
        stats.cached_bytes += cls;
        return;
      }
    }
    std::free(p);
  }
  void empty() {
    std::vector<void*> all;
    {
      std::lock_guard<SpinLock> lock(mu);
      for (auto& [cls, list] : free_lists) all.insert(all.end(), list.begin(), list.end());
      free_lists.clear();
      for (auto& list : small_lists) {
        all.insert(all.end(), list.begin(), list.end());
        list.clear();
      }
      stats.cached_bytes = 0;
    }
    for (void* p : all) std::free(p);
  }
};

// Never destroyed: Storages may be freed during interpreter shutdown, after
// static destructors have run. fork() while another thread (a backward sweep
// runs without the GIL) holds the lock would leave the child's copy locked
// forever: the lock is taken around fork, so the child gets it free.
BufferCache* g_cache = nullptr;

BufferCache& cache() {
  static BufferCache* c = [] {
    g_cache = new BufferCache();
    pthread_atfork([] { g_cache->mu.lock(); }, [] { g_cache->mu.unlock(); }, [] { g_cache->mu.unlock(); });
    return g_cache;
  }();
  return *c;
}

void free_cached(void* data, void* ctx) { cache().give(data, reinterpret_cast<size_t>(ctx)); }
}  // namespace

BufferCacheStats buffer_cache_stats() {
  BufferCache& c = cache();
  std::lock_guard<SpinLock> lock(c.mu);
  return c.stats;
}

void empty_buffer_cache() { cache().empty(); }

namespace {
std::string u128_str(unsigned __int128 v) {
  std::string out;
  do {
    out.insert(out.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v);
  return out;
}

[[noreturn]] __attribute__((noinline)) void throw_cannot_allocate(unsigned __int128 bytes, const Shape& shape, DType dt) {
  throw memory_error("cannot allocate " + u128_str(bytes) + " bytes for shape " + shape_str(shape) + " of dtype " +
                     dtype_name(dt));
}
}  // namespace

StorageRef Storage::allocate(size_t nbytes) {
  if (nbytes > kMaxBytes) throw std::bad_alloc();  // size_class would overflow
  if (nbytes <= kInlineBytes) return allocate_inline(nbytes);
  // 64-byte aligned so kernels can use aligned vector loads.
  size_t cls = size_class(nbytes);
  void* data = cache().take(cls);  // (may throw: before the Storage exists)
  StorageRef s = create();
  s->nbytes = nbytes;
  s->data = data;
  s->deleter = &free_cached;
  s->ctx = reinterpret_cast<void*>(cls);
  return s;
}

StorageRef Storage::borrow(void* data, size_t nbytes, Deleter d, void* ctx, bool readonly) {
  StorageRef s = create();
  s->data = data;
  s->nbytes = nbytes;
  s->deleter = d;
  s->ctx = ctx;
  s->readonly = readonly;
  s->borrowed = true;
  return s;
}

Tensor Tensor::empty_nd(const Shape& shape, DType dt) {
  // Every allocated array's shape is checked here (check_shape), then its
  // byte count, refusing sizes that overflow (they would wrap to a small
  // allocation and the kernels would write past it).
  check_shape(shape, nullptr);
  unsigned __int128 bytes = itemsize(dt);
  for (int64_t d : shape) bytes *= static_cast<uint64_t>(d);  // < 2^63 * 8: no overflow in 128 bits
  if (bytes > Storage::kMaxBytes) throw_cannot_allocate(bytes, shape, dt);
  try {
    return Tensor(Storage::allocate(static_cast<size_t>(bytes)), shape, dt);
  } catch (const std::bad_alloc&) {
    throw_cannot_allocate(bytes, shape, dt);
  }
}

Tensor Tensor::zeros(const Shape& shape, DType dt) {
  Tensor t = empty(shape, dt);
  kern::zero_bytes(t.raw(), t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, DType dt, double value) {
  Tensor t = empty(shape, dt);
  int64_t n = t.numel();
  switch (dt) {
    case DType::F32: { float* p = t.ptr<float>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(value); break; }
    case DType::F64: { double* p = t.ptr<double>(); for (int64_t i = 0; i < n; ++i) p[i] = value; break; }
    case DType::I64: { int64_t* p = t.ptr<int64_t>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int64_t>(value); break; }
    case DType::Bool: { uint8_t* p = t.ptr<uint8_t>(); for (int64_t i = 0; i < n; ++i) p[i] = value != 0; break; }
  }
  return t;
}

Tensor Tensor::clone() const {
  if (strides_) return contiguous_copy();
  Tensor t = empty(shape, dtype);
  if (nbytes()) kern::copy_bytes(t.raw(), raw(), nbytes());
  return t;
}

void Tensor::throw_not_contiguous() {
  throw std::logic_error("internal error: a kernel read a non-contiguous view without contiguous()");
}

Tensor Tensor::strided(StorageRef s, const Shape& shape, const Shape& strides, int64_t offset, DType dt) {
  check_shape(shape, nullptr);  // (None adds axes: the one check of a shape where it is made)
  Tensor t(std::move(s), shape, dt);
  t.offset = offset;
  // Contiguous unless some axis of length > 1 has a stride other than the
  // row-major one (an empty tensor is contiguous: it has no element to read).
  int64_t expect = 1;
  bool contiguous = true;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 0) return t;
    if (shape[d] != 1 && strides[d] != expect) contiguous = false;
    expect *= shape[d];
  }
  if (!contiguous) t.strides_ = std::make_shared<const Shape>(strides);
  return t;
}

Shape Tensor::strides() const {
  if (strides_) return *strides_;
  Shape st(shape.size());
  int64_t acc = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    st[d] = acc;
    acc *= shape[d];
  }
  return st;
}

Tensor Tensor::contiguous_copy() const {
  Tensor t = empty(shape, dtype);
  kern::copy_strided(t, *this);
  return t;
}

Tensor Tensor::permuted(const std::vector<int64_t>& perm) const {
  const Shape st = strides();
  Shape sh(perm.size()), ps(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    sh[i] = shape[perm[i]];
    ps[i] = st[perm[i]];
  }
  return strided(storage, sh, ps, offset, dtype);
}

// NumPy's _attempt_nocopy_reshape: groups of old axes whose elements are
// evenly spaced map onto groups of new axes with the same element count.
Tensor Tensor::view_strided(const Shape& new_shape) const {
  Shape os, ost;  // the old shape and strides without size-1 axes
  const Shape st = strides();
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1) {
      os.push_back(shape[d]);
      ost.push_back(st[d]);
    }
  Shape nst(new_shape.size(), 0);
  size_t oi = 0, oj = 1, ni = 0, nj = 1;
  const size_t on = os.size(), nn = new_shape.size();
  bool ok = numel() != 0;
  while (ok && ni < nn && oi < on) {
    int64_t np = new_shape[ni], op = os[oi];
    while (np != op) {
      if (np < op) np *= new_shape[nj++];
      else op *= os[oj++];
    }
    for (size_t k = oi; k + 1 < oj; ++k)
      if (ost[k] != os[k + 1] * ost[k + 1]) ok = false;  // the old group is not evenly spaced
    if (!ok) break;
    nst[nj - 1] = ost[oj - 1];
    for (size_t k = nj - 1; k > ni; --k) nst[k - 1] = nst[k] * new_shape[k];
    ni = nj++;
    oi = oj++;
  }
  if (ok) {
    // Trailing size-1 axes of the new shape.
    for (size_t k = ni; k < nn; ++k) nst[k] = 1;
    return strided(storage, new_shape, nst, offset, dtype);
  }
  Tensor c = contiguous_copy();
  return c.view(new_shape);
}

double Tensor::item() const {
  if (numel() != 1)
    throw value_error("item: only a Variable with one element can be converted to a Python scalar, got shape " + shape_str(shape));
  switch (dtype) {
    case DType::F32: return *ptr<float>();
    case DType::F64: return *ptr<double>();
    case DType::I64: return static_cast<double>(*ptr<int64_t>());
    case DType::Bool: return *ptr<uint8_t>();
  }
  return 0;
}

}  // namespace tg
