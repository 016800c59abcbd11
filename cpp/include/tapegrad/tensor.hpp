// Tensor: a strided n-d array over a reference-counted Storage (PyTorch's
// model): an element offset into the storage and element strides, so that
// transpose, basic indexing and broadcast_to are O(1) views sharing the
// storage and its version counter. Kernels read contiguous row-major data
// only: they take `contiguous()` of their inputs, and the checked accessors
// (raw(), ptr<T>()) throw on a non-contiguous tensor, so a kernel that
// forgot cannot silently read a view as if it were dense.
//
// The core never sees Python. A Storage either owns memory it allocated or
// borrows memory from an outside owner (a NumPy array shared by
// `tapegrad.from_numpy`), released through a deleter. Every Storage carries
// the version counter that in-place operators bump and saved values check.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tapegrad/support/ref.hpp"
#include "tapegrad/support/shape.hpp"

namespace tg {

enum class DType : uint8_t { F32, F64, I64, Bool };

inline size_t itemsize(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I64: return 8;
    case DType::Bool: return 1;
  }
  return 0;
}
const char* dtype_name(DType d);
inline bool is_float(DType d) { return d == DType::F32 || d == DType::F64; }

int64_t numel(const Shape& s);
std::string shape_str(const Shape& s);  // "(3, 4)", "()" for 0-d

// The most axes a shape may have: NumPy's NPY_MAXDIMS (32 in NumPy 1.x, 64
// in 2.x), which the bindings read from the installed NumPy at import.
int max_dims();
void set_max_dims(int n);
// The one check of a shape, where a shape is made (Tensor::empty_nd for every
// allocated result, reshape for views): refuses what NumPy refuses, i.e. more
// than max_dims() axes, a negative dimension, or an element count that does
// not fit int64 (like NumPy, the product of the non-zero dimensions, so that
// (2**62, 2**62, 0) is refused too). Throws value_error naming `op`, or a
// shape_error without an op name when op is null (the bindings add it).
void check_shape(const Shape& s, const char* op);

// Error kinds. The bindings translate them: ValueError, TypeError,
// RuntimeError, IndexError, NotImplementedError.
struct value_error : std::invalid_argument { using std::invalid_argument::invalid_argument; };
struct type_error : std::runtime_error { using std::runtime_error::runtime_error; };
struct graph_error : std::runtime_error { using std::runtime_error::runtime_error; };
struct index_error : std::out_of_range { using std::out_of_range::out_of_range; };
struct not_implemented_error : std::logic_error { using std::logic_error::logic_error; };
// numpy.linalg.LinAlgError (a ValueError): a singular or non-positive-definite matrix, a non-square one.
struct linalg_error : value_error { using value_error::value_error; };
// Errors of the allocator (Tensor::empty), which does not know which op it
// serves: `named` is false until the bindings prefix the op they were called
// as ("broadcast_to: cannot allocate ..."). shape_error is a ValueError
// (check_shape), memory_error a MemoryError (the buffer could not be had).
struct shape_error : value_error {
  bool named;
  explicit shape_error(const std::string& msg, bool named_ = false) : value_error(msg), named(named_) {}
};
struct memory_error : std::runtime_error {
  bool named;
  explicit memory_error(const std::string& msg, bool named_ = false) : std::runtime_error(msg), named(named_) {}
};

struct Storage;
// Storages are counted in place like Variables (ref.hpp): a scalar op
// creates and frees one, and a shared_ptr control block's bookkeeping for it
// was a large part of such an op's cost.
using StorageRef = Ref<Storage>;

struct Storage {
  using Deleter = void (*)(void* data, void* ctx);
  void* data = nullptr;
  size_t nbytes = 0;
  Deleter deleter = nullptr;
  void* ctx = nullptr;
  bool readonly = false;  // borrowed from a read-only NumPy array
  bool borrowed = false;  // memory owned by someone else (NumPy)
  std::atomic<uint32_t> version{0};
  // Small arrays (scalars, short vectors) live inside the Storage itself, so
  // one allocation serves both: scalar-op overhead is dominated by malloc.
  static constexpr size_t kInlineBytes = 64;
  // Larger requests raise std::bad_alloc (Tensor::empty_nd: memory_error)
  // before any arithmetic on them can overflow.
  static constexpr uint64_t kMaxBytes = uint64_t(1) << 60;
  alignas(16) unsigned char inline_buf[kInlineBytes];

  Storage() {}  // user-provided: leaves inline_buf uninitialized (a defaulted one zeroes it on every allocation)
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  // Owned memory: inline for <= kInlineBytes, else from the buffer cache.
  static StorageRef allocate(size_t nbytes);
  static StorageRef borrow(void* data, size_t nbytes, Deleter d, void* ctx, bool readonly);
  // Every Storage comes from the small-object pool (make_ref) and goes back
  // to it when its last StorageRef is released.
  static StorageRef create() { return make_ref<Storage>(); }
  static StorageRef allocate_inline(size_t nbytes) {  // nbytes <= kInlineBytes
    StorageRef s = create();
    s->data = s->inline_buf;
    s->nbytes = nbytes;
    return s;
  }
};

// The buffer cache. Buffers above Storage::kInlineBytes are not returned to
// the system when freed but kept by size class (64-byte steps up to 4 KiB,
// then 4 classes per power of two) for the next allocation of that class: a
// training loop allocates the same sizes every step, so after the first step
// it asks the OS for no new memory and takes no page faults. Bounded
// (TAPEGRAD_CACHE_LIMIT_MB, default 1024).
struct BufferCacheStats {
  size_t cached_bytes = 0;     // free buffers held for reuse
  size_t in_use_bytes = 0;     // cache-class buffers owned by live Storages
  uint64_t system_allocs = 0;  // buffers the cache had to get from the system
  uint64_t reuses = 0;         // allocations served from the cache
};
BufferCacheStats buffer_cache_stats();
void empty_buffer_cache();  // returns every cached buffer to the system

struct Tensor {
  StorageRef storage;
  Shape shape;
  DType dtype = DType::F64;
  int64_t offset = 0;  // in elements, into storage->data
  // Element strides of a non-contiguous view; null for a contiguous row-major
  // tensor (every op's result), so a dense tensor pays one null pointer and
  // its copies no atomic. Never holds the contiguous strides (see strided()).
  std::shared_ptr<const Shape> strides_;

  // User-provided, as Shape's is: `Tensor()` and `Tensor{}` (a rule's Attrs{})
  // then leave the Shape's inline slots alone instead of zeroing them.
  Tensor() noexcept {}
  // (Two overloads instead of a by-value Shape: no extra move and destructor
  // of a 72-byte Shape per array made.)
  Tensor(StorageRef s, const Shape& sh, DType dt) : storage(std::move(s)), shape(sh), dtype(dt) {}
  Tensor(StorageRef s, Shape&& sh, DType dt) : storage(std::move(s)), shape(std::move(sh)), dtype(dt) {}
  Tensor(StorageRef s, DType dt) : storage(std::move(s)), dtype(dt) {}  // 0-d (no Shape temporary to move)

  static Tensor empty(const Shape& shape, DType dt) {
    if (shape.empty()) return Tensor(Storage::allocate_inline(itemsize(dt)), dt);  // 0-d: inline, no call
    return empty_nd(shape, dt);
  }
  static Tensor empty_nd(const Shape& shape, DType dt);
  static Tensor zeros(const Shape& shape, DType dt);
  static Tensor full(const Shape& shape, DType dt, double value);
  static Tensor scalar(double value, DType dt) { return full({}, dt, value); }
  // A view of `storage` with the given shape, element strides and offset;
  // contiguous strides (size-1 and empty axes ignored) are stored as none.
  static Tensor strided(StorageRef s, const Shape& shape, const Shape& strides, int64_t offset, DType dt);

  bool defined() const { return storage != nullptr; }
  int64_t numel() const { return tg::numel(shape); }
  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * itemsize(dtype); }
  bool is_contiguous() const { return !strides_; }
  // The element strides (the contiguous ones when is_contiguous()).
  Shape strides() const;
  // Itself when contiguous, else a contiguous copy (a new storage).
  Tensor contiguous() const { return strides_ ? contiguous_copy() : *this; }
  Tensor contiguous_copy() const;
  // The checked accessors: the first element of a contiguous tensor.
  void* raw() const {
    if (strides_) [[unlikely]] throw_not_contiguous();
    return data_ptr();
  }
  template <class T> T* ptr() const { return static_cast<T*>(raw()); }
  // Unchecked: the address of element (0, ..., 0) of any view, for the few
  // kernels that walk strides themselves (copies, NumPy views).
  void* data_ptr() const { return static_cast<char*>(storage->data) + offset * static_cast<int64_t>(itemsize(dtype)); }
  [[noreturn]] static void throw_not_contiguous();
  // The view of the same elements with axes permuted (perm: a permutation).
  Tensor permuted(const std::vector<int64_t>& perm) const;
  uint32_t version() const { return storage->version.load(std::memory_order_relaxed); }
  void bump_version() const { storage->version.fetch_add(1, std::memory_order_relaxed); }
  // Same elements, new shape (the caller checked numel): a view when the
  // strides allow one (always for a contiguous tensor, NumPy's rule
  // otherwise), else a view of a contiguous copy.
  Tensor view(Shape new_shape) const {
    if (!strides_) {
      Tensor t(storage, std::move(new_shape), dtype);
      t.offset = offset;
      return t;
    }
    return view_strided(new_shape);
  }
  Tensor view_strided(const Shape& new_shape) const;
  Tensor clone() const;  // always a new contiguous storage
  double item() const;  // numel must be 1
};

// A kernel's input as contiguous data: `name` refers to x0 itself when it is
// contiguous (no Tensor copy on the scalar path), else to a contiguous copy
// that lives to the end of the scope.
#define TG_CONTIGUOUS(name, x0)   \
  ::tg::Tensor name##_copy_;       \
  const ::tg::Tensor& name = (x0).is_contiguous() ? (x0) : (name##_copy_ = (x0).contiguous_copy())

// Calls body with T bound to float or double.
#define TG_DISPATCH_FLOAT(DT, OPNAME, ...)                                          \
  switch (DT) {                                                                    \
    case ::tg::DType::F32: { using T = float; __VA_ARGS__; break; }                \
    case ::tg::DType::F64: { using T = double; __VA_ARGS__; break; }               \
    default: throw ::tg::type_error(std::string(OPNAME) + ": expected a float32 or float64 array, got " + ::tg::dtype_name(DT)); \
  }

}  // namespace tg
