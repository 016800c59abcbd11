#include "tapegrad/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

#include "tapegrad/pool.hpp"

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

static void free_owned(void* data, void*) { std::free(data); }

std::shared_ptr<Storage> Storage::allocate(size_t nbytes) {
  if (nbytes <= kInlineBytes) {
    auto s = make_pooled<Storage>();
    s->data = s->inline_buf;
    s->nbytes = nbytes;
    return s;
  }
  // 64-byte aligned so kernels can use aligned vector loads; aligned_alloc
  // needs a size that is a multiple of the alignment.
  size_t rounded = (nbytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  auto s = make_pooled<Storage>();
  s->data = p;
  s->nbytes = nbytes;
  s->deleter = &free_owned;
  return s;
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t nbytes, Deleter d, void* ctx, bool readonly) {
  auto s = std::make_shared<Storage>();
  s->data = data;
  s->nbytes = nbytes;
  s->deleter = d;
  s->ctx = ctx;
  s->readonly = readonly;
  s->borrowed = true;
  return s;
}

Tensor Tensor::empty(const Shape& shape, DType dt) {
  for (int64_t d : shape)
    if (d < 0) throw value_error("negative dimension in shape " + shape_str(shape));
  return Tensor(Storage::allocate(static_cast<size_t>(tg::numel(shape)) * itemsize(dt)), shape, dt);
}

Tensor Tensor::zeros(const Shape& shape, DType dt) {
  Tensor t = empty(shape, dt);
  std::memset(t.raw(), 0, t.nbytes());
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
  Tensor t = empty(shape, dtype);
  if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
  return t;
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
