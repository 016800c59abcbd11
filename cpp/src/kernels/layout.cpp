// Kernels that move elements: broadcast_to, transpose, gather / scatter,
// concatenation, slicing and padding along an axis.
#include "kernels/common.hpp"

namespace tg::kern {

Tensor broadcast_to(const Tensor& x, const Shape& shape, const char* opname) {
  Shape s = broadcast_shapes(x.shape, shape, opname);
  if (s != shape)
    throw value_error(std::string(opname) + ": cannot broadcast a Variable of shape " + shape_str(x.shape) +
                      " to shape " + shape_str(shape));
  if (x.shape == shape) return x.clone();
  Tensor out = Tensor::empty(shape, x.dtype);
  std::array<std::vector<int64_t>, 2> st{contiguous_strides(shape), broadcast_strides(x.shape, shape)};
  const char* px = static_cast<const char*>(x.raw());
  char* po = static_cast<char*>(out.raw());
  TG_DISPATCH_FLOAT(x.dtype, opname, {
    nd_loop<2>(shape, st, [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& in) {
      T* o = reinterpret_cast<T*>(po) + off[0];
      const T* a = reinterpret_cast<const T*>(px) + off[1];
      if (in[1] == 0) {
        T v = *a;
        for (int64_t i = 0; i < n; ++i) o[i * in[0]] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) o[i * in[0]] = a[i * in[1]];
      }
    });
  });
  return out;
}

Tensor transpose(const Tensor& x, const std::vector<int64_t>& perm) {
  Shape out_shape(perm.size());
  std::vector<int64_t> xs = contiguous_strides(x.shape);
  std::vector<int64_t> in_st(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    out_shape[i] = x.shape[perm[i]];
    in_st[i] = xs[perm[i]];
  }
  Tensor out = Tensor::empty(out_shape, x.dtype);
  std::array<std::vector<int64_t>, 2> st{contiguous_strides(out_shape), in_st};
  TG_DISPATCH_FLOAT(x.dtype, "transpose", {
    const T* px = x.ptr<T>();
    T* po = out.ptr<T>();
    nd_loop<2>(out_shape, st, [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& in) {
      for (int64_t i = 0; i < n; ++i) po[off[0] + i * in[0]] = px[off[1] + i * in[1]];
    });
  });
  return out;
}

// ---------------------------------------------------------------------------
// Gather / scatter, concatenation, slicing along an axis
// ---------------------------------------------------------------------------

static void check_index(const Tensor& index, int64_t limit, const char* opname) {
  if (index.dtype != DType::I64) throw type_error(std::string(opname) + ": index must be int64");
  const int64_t* ix = index.ptr<int64_t>();
  int64_t n = index.numel();
  for (int64_t i = 0; i < n; ++i)
    if (ix[i] < 0 || ix[i] >= limit)
      throw index_error(std::string(opname) + ": flat index " + std::to_string(ix[i]) + " out of range for size " +
                        std::to_string(limit));
}

Tensor gather(const Tensor& x, const Tensor& index, const Shape& out_shape) {
  if (numel(out_shape) != index.numel()) throw value_error("gather: index size does not match the output shape");
  check_index(index, x.numel(), "getitem");
  Tensor out = Tensor::empty(out_shape, x.dtype);
  const int64_t* ix = index.ptr<int64_t>();
  int64_t n = index.numel();
  TG_DISPATCH_FLOAT(x.dtype, "getitem", {
    const T* px = x.ptr<T>();
    T* po = out.ptr<T>();
    for (int64_t i = 0; i < n; ++i) po[i] = px[ix[i]];
  });
  return out;
}

Tensor scatter_add(const Tensor& src, const Tensor& index, const Shape& out_shape) {
  if (src.numel() != index.numel()) throw value_error("scatter_add: index size does not match the source size");
  check_index(index, numel(out_shape), "getitem backward");
  Tensor out = Tensor::zeros(out_shape, src.dtype);
  const int64_t* ix = index.ptr<int64_t>();
  int64_t n = index.numel();
  TG_DISPATCH_FLOAT(src.dtype, "scatter_add", {
    const T* ps = src.ptr<T>();
    T* po = out.ptr<T>();
    for (int64_t i = 0; i < n; ++i) po[ix[i]] += ps[i];  // repeated indices accumulate
  });
  return out;
}

Tensor diag_rows(const Tensor& d, int64_t start, int64_t stop) {
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
  for (const Tensor& t : xs)
    if (__builtin_add_overflow(total, t.shape[axis], &total))
      throw value_error("concatenate: the array is too big: the length of axis " + std::to_string(axis) +
                        " does not fit a 64-bit integer");
  out_shape[axis] = total;
  Tensor out = Tensor::empty(out_shape, xs[0].dtype);
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

Tensor narrow(const Tensor& x, int64_t axis, int64_t start, int64_t length) {
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

Tensor pad_axis(const Tensor& x, int64_t axis, int64_t start, int64_t total) {
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

}  // namespace tg::kern
