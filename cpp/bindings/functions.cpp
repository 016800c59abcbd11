// The module-level op functions (tapegrad.exp, tapegrad.sum, ...): the
// one-argument ones as raw METH_O functions, the others but the linalg ones
// as raw METH_FASTCALL functions, the linalg ones and the fused losses
// through pybind11; and the runtime knobs (ISA, buffer cache, threads).
#include <cstring>
#include <limits>
#include <utility>

#include "bindings.hpp"
#include "convert.hpp"
#include "simd/isa.hpp"
#include "tapegrad/kernels.hpp"
#include "tapegrad/config.hpp"
#include "tapegrad/parallel.hpp"
#include "tapegrad_gen/bindings.inc"  // generated from opspec/ops.py
#include "tapegrad_gen/ops_json.inc"

#include <cblas.h>

namespace tgpy {

// Matmul releases the GIL when the product is large enough to be worth it.
Var matmul_nogil(const Var& a, const Var& b) {
  int64_t work = a->data.numel() * (b->shape().empty() ? 1 : b->shape().back());
  if (work < (1 << 16)) return matmul(a, b);
  py::gil_scoped_release nogil;
  return matmul(a, b);
}

namespace {
// A clip bound: a constant tensor in x's dtype, or undefined for None.
Tensor clip_bound(py::handle b, const Var& x) {
  if (b.is_none()) return Tensor();
  Var v = to_var(b, x->dtype(), "clip");
  if (v->requires_grad)
    throw value_error("clip: the bounds are constants and are not differentiated; use maximum/minimum for "
                      "differentiable bounds");
  return v->dtype() == x->dtype() ? v->data : kern::astype(v->data, x->dtype());
}
}  // namespace

// where's condition as a Bool tensor (a copy: the node keeps it). A
// C-contiguous NumPy bool array is copied directly; anything else goes
// through np.asarray(cond, dtype=bool), as NumPy's where converts it.
Tensor condition_arg(py::handle cond) {
  ArrayFields f;
  if (array_fields(cond, &f) && f.type_num == kNpyBool && f.c_contiguous) {
    Tensor ct = Tensor::empty(f.shape, DType::Bool);
    kern::copy_bytes(ct.raw(), f.data, ct.nbytes());
    return ct;
  }
  py::object carr;
  try {
    carr = numpy().attr("asarray")(cond, py::arg("dtype") = "bool");
  } catch (py::error_already_set& e) {
    reraise_prefixed(e, "where: condition");
  }
  py::array_t<bool, py::array::c_style | py::array::forcecast> c(carr);
  Tensor ct = Tensor::empty(Shape(c.shape(), c.shape() + c.ndim()), DType::Bool);
  if (ct.nbytes()) std::memcpy(ct.raw(), c.data(), ct.nbytes());
  return ct;
}

Var clip_any(py::handle x, py::handle lo, py::handle hi) {
  Var v = unary_arg(x, "clip");
  return clip(v, clip_bound(lo, v), clip_bound(hi, v));
}

// ----- h89-views: the bodies of diagonal, diag, trace, squeeze, expand_dims,
// swapaxes, moveaxis, tril, triu; a[i] is the spec's i-th argument, null when not given.
// The Variable methods (variable.cpp) call the same bodies with self as a[0].
namespace {
int64_t int_or(PyObject* o, int64_t dflt, const char* op, const char* arg) { return o ? int_arg(o, op, arg) : dflt; }
Axes axes_arg(PyObject* o, const char* op, const char* arg) {
  if (o && is_integer(o)) return Axes{int_arg(o, op, arg)};
  if (!o || o == Py_None) throw type_error(std::string(op) + ": " + arg + " must be an int or a tuple of ints, got None");
  return int_sequence(o, op, arg);
}
}  // namespace
PyObject* diagonal_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "diagonal");
  return cast_out(diagonal(v, int_or(a[1], 0, "diagonal", "offset"), int_or(a[2], 0, "diagonal", "axis1"),
                           int_or(a[3], 1, "diagonal", "axis2")));
}
// h100-small: trace(X) of a small contiguous matrix that records nothing: the diagonal summed here, as the
// view + sum below does it (its elements gathered, then the ISA's sum_f32/sum_f64, rounded once to T), without
// the view, the reduction's copy and its axis vectors (2/3 of a 4x4 call's 3,300 instructions, callgrind).
template <class T>
Tensor small_trace(const Tensor& t, int64_t n) {
  T buf[64];
  const T* p = t.ptr<T>();
  for (int64_t i = 0; i < n; ++i) buf[i] = p[i * (t.shape[1] + 1)];
  const kern::IsaKernels& k = kern::isa();
  if constexpr (sizeof(T) == 4) return Tensor::scalar(double(T(k.sum_f32(buf, n))), DType::F32);
  else return Tensor::scalar(k.sum_f64(buf, n), DType::F64);
}
PyObject* trace_body(PyObject* const* a) {
  if (!a[1] && !a[2] && !a[3] && is_var(a[0])) {
    const Var& x = holder_of(a[0]);
    const Tensor& t = x->data;
    const int64_t n = t.ndim() == 2 ? std::min(t.shape[0], t.shape[1]) : 0;
    if (n >= 1 && n <= 64 && !x->requires_grad && !(t_modes & kAnomalyMode) && t.is_contiguous())
      return cast_out(make_var(t.dtype == DType::F32 ? small_trace<float>(t, n) : small_trace<double>(t, n)));
  }
  Var v = unary_arg(a[0], "trace");
  return cast_out(trace(v, int_or(a[1], 0, "trace", "offset"), int_or(a[2], 0, "trace", "axis1"),
                        int_or(a[3], 1, "trace", "axis2")));
}
PyObject* diag_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "diag");
  return cast_out(diag(v, int_or(a[1], 0, "diag", "k")));
}
PyObject* squeeze_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "squeeze");
  return cast_out(squeeze(v, a[1] ? parse_axes(a[1], "squeeze") : std::nullopt));
}
PyObject* expand_dims_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "expand_dims");
  return cast_out(expand_dims(v, axes_arg(a[1], "expand_dims", "axis")));
}
PyObject* swapaxes_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "swapaxes");
  return cast_out(swapaxes(v, int_arg(a[1], "swapaxes", "axis1"), int_arg(a[2], "swapaxes", "axis2")));
}
PyObject* tril_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "tril");
  return cast_out(tril(v, int_or(a[1], 0, "tril", "k")));
}
PyObject* triu_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "triu");
  return cast_out(triu(v, int_or(a[1], 0, "triu", "k")));
}
PyObject* moveaxis_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "moveaxis");
  return cast_out(moveaxis(v, axes_arg(a[1], "moveaxis", "source"), axes_arg(a[2], "moveaxis", "destination")));
}

void decref_numpy(void*, void* ctx) {
  if (!Py_IsInitialized()) return;
  py::gil_scoped_acquire gil;  // a sweep may drop the last reference without the GIL
  Py_DECREF(static_cast<PyObject*>(ctx));
}

namespace {

Var from_numpy(py::handle obj) {
  ArrayFields f;
  if (!array_fields(obj, &f))
    throw type_error("from_numpy: expected a numpy.ndarray, got " +
                     py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  std::optional<DType> d = native_float(f);
  if (!d)
    throw type_error("from_numpy: the array must have dtype float32 or float64 in native byte order, got " +
                     py::str(py::reinterpret_borrow<py::array>(obj).dtype()).cast<std::string>() +
                     " (use tapegrad.Variable(arr) to convert with a copy)");
  if (!f.c_contiguous)
    throw value_error("from_numpy: the array of shape " + shape_str(f.shape) +
                      " is not C-contiguous, so its buffer cannot be shared; pass np.ascontiguousarray(arr) or use "
                      "tapegrad.Variable(arr) to copy");
  PyObject* owner = obj.ptr();
  Py_INCREF(owner);
  const size_t nbytes = static_cast<size_t>(numel(f.shape)) * itemsize(*d);
  auto storage = Storage::borrow(f.data, nbytes, &decref_numpy, owner, !f.writeable);
  return make_var(Tensor(storage, std::move(f.shape), *d));
}

// ----- raw CPython fast paths (see also variable.cpp's number slots) -------------
struct UnaryEntry {
  const char* name;
  Var (*fn)(const Var&);
  const char* doc;
};
// The elementwise ops of opspec/ops.py, with their docs and text signatures.
const UnaryEntry kUnary[] = {TG_SPEC_UNARY_FUNCTIONS};
constexpr size_t kNumUnary = sizeof(kUnary) / sizeof(kUnary[0]);

template <size_t I>
PyObject* unary_fn(PyObject*, PyObject* arg) {
  return guarded([&] {
    const UnaryEntry& e = kUnary[I];
    return cast_out(e.fn(is_var(arg) ? holder_of(arg) : to_var(arg, std::nullopt, e.name)));
  }, kUnary[I].name);
}

template <size_t... I>
PyMethodDef* unary_method_table(std::index_sequence<I...>) {
  static PyMethodDef defs[] = {{kUnary[I].name, &unary_fn<I>, METH_O, kUnary[I].doc}..., {nullptr, nullptr, 0, nullptr}};
  return defs;
}

// linear(x, weight, bias=None): Linear's forward, called once per layer per
// step, so it is a raw METH_FASTCALL function (no pybind11 dispatcher).
// Array operands are converted to weight's dtype like the operators do.
PyObject* linear_fn(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    static const char* const kNames[3] = {"x", "weight", "bias"};
    PyObject* a[3] = {nullptr, nullptr, Py_None};
    fastcall_args("linear", kNames, 3, 2, args, nargs, kwnames, a);
    std::optional<DType> like;
    for (PyObject* o : {a[1], a[0], a[2]})
      if (!like && o != Py_None && is_var(o)) like = holder_of(o)->dtype();
    auto arg = [&](PyObject* o) { return is_var(o) ? holder_of(o) : to_var(o, like, "linear"); };
    Var x = arg(a[0]), w = arg(a[1]);
    Var b = a[2] == Py_None ? nullptr : arg(a[2]);
    const int64_t work = x->data.numel() * (w->shape().empty() ? 1 : w->shape().back());
    if (work < (1 << 16)) return cast_out(linear(x, w, b));
    Var y;
    {
      py::gil_scoped_release nogil;
      y = linear(x, w, b);
    }
    return cast_out(std::move(y));
  }, "linear");
}

PyObject* where_body(PyObject* const* a) {
  Tensor c = condition_arg(a[0]);
  auto [x, y] = operands(a[1], a[2], "where");
  return cast_out(where(c, x, y));
}
PyObject* clip_body(PyObject* const* a) { return cast_out(clip_any(a[0], a[1], a[2])); }
PyObject* astype_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "astype");
  return cast_out(astype(v, parse_float_dtype(a[1], "astype")));
}
PyObject* reshape_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "reshape");
  return cast_out(reshape(v, parse_shape(a[1], "reshape")));
}
PyObject* broadcast_to_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "broadcast_to");
  return cast_out(broadcast_to(v, parse_shape(a[1], "broadcast_to")));
}
PyObject* from_numpy_body(PyObject* const* a) { return cast_out(from_numpy(a[0])); }

// sum/mean/max/min/logsumexp(x, axis=None, keepdims=False).
template <Var (*F)(const Var&, const std::optional<Axes>&, bool)>
PyObject* reduce_body(const char* name, PyObject* const* a) {
  Var v = unary_arg(a[0], name);
  std::optional<Axes> axes;
  if (a[1] && a[1] != Py_None) axes = normalized_axes(v, a[1], name);
  const bool keepdims = a[2] && bool_arg(a[2], name, "keepdims");
  return cast_out(F(v, axes, keepdims));
}

// softmax/log_softmax(x, axis=-1).
template <Var (*F)(const Var&, int64_t)>
PyObject* softmax_body(const char* name, PyObject* const* a) {
  Var v = unary_arg(a[0], name);
  return cast_out(F(v, a[1] ? int_arg(a[1], name, "axis") : -1));
}

// h88-scan: cumsum/cumprod(x, axis=None); prod(x, axis=None, keepdims=False);
// var/std(x, axis=None, ddof=0, keepdims=False) (ddof an int or a float, as NumPy's).
template <Var (*F)(const Var&, std::optional<int64_t>)>
PyObject* scan_body(const char* name, PyObject* const* a) {
  Var v = unary_arg(a[0], name);
  std::optional<int64_t> axis;
  if (a[1] && a[1] != Py_None) axis = int_arg(a[1], name, "axis");
  return cast_out(F(v, axis));
}
template <Var (*F)(const Var&, const std::optional<Axes>&, double, bool)>
PyObject* moments_body(const char* name, PyObject* const* a) {
  Var v = unary_arg(a[0], name);
  std::optional<Axes> axes;
  if (a[1] && a[1] != Py_None) axes = normalized_axes(v, a[1], name);
  const double ddof = ddof_arg(a[2], name);
  const bool keepdims = a[3] && bool_arg(a[3], name, "keepdims");
  warn_empty_moments(v, axes);
  return cast_out(F(v, axes, ddof, keepdims));
}
PyObject* cumsum_body(PyObject* const* a) { return scan_body<cumsum>("cumsum", a); }
PyObject* cumprod_body(PyObject* const* a) { return scan_body<cumprod>("cumprod", a); }
PyObject* var_body(PyObject* const* a) { return moments_body<variance>("var", a); }
PyObject* std_body(PyObject* const* a) { return moments_body<stddev>("std", a); }

PyObject* transpose_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "transpose");
  if (!a[1] || a[1] == Py_None) return cast_out(transpose(v, std::nullopt));
  return cast_out(transpose(v, std::optional<Axes>(parse_shape(a[1], "transpose", "axes"))));
}

PyObject* concatenate_body(PyObject* const* a) {
  PyObject* axis = a[1];  // (null: the default, 0)
  if (axis && axis != Py_None && !is_integer(axis))
    throw type_error("concatenate: axis must be an int or None, got " + type_name(axis));
  std::vector<Var> xs = var_list(a[0], "concatenate");
  if (axis == Py_None) {
    for (Var& v : xs) v = reshape(v, Shape{-1});
    return cast_out(concatenate(xs, 0));
  }
  return cast_out(concatenate(xs, axis ? int_arg(axis, "concatenate", "axis") : 0));
}

PyObject* stack_body(PyObject* const* a) {
  const int64_t ax = a[1] ? int_arg(a[1], "stack", "axis") : 0;
  return cast_out(stack(var_list(a[0], "stack"), ax));
}

// The predicates' kernels (tapegrad.less, ..., isnan: opspec COMPOSITIONS, whose Python bodies call
// these): NumPy bool results, outside the graph; a 0-d result is a NumPy bool, as NumPy's. Arguments
// without a Variable go to NumPy itself (its integer comparisons are exact; converting to float is not).
// `name` is the private name ("_less"); name + 1 the public and NumPy's.
PyObject* bool_result(const Tensor& t) {
  py::object r = to_numpy(t);
  if (t.ndim() == 0) r = r[py::tuple()];
  return r.release().ptr();
}
template <class... A>
PyObject* numpy_predicate(const char* pub, A... args) {
  try {
    return numpy().attr(pub)(py::handle(args)...).release().ptr();
  } catch (py::error_already_set& e) {  // NumPy's message, naming the function as the project's errors do
    const std::string msg = std::string(pub) + ": " + py::str(e.value()).cast<std::string>();
    if (e.matches(PyExc_ValueError)) throw value_error(msg);
    if (e.matches(PyExc_TypeError)) throw type_error(msg);
    throw;
  }
}
// Large Variables go to NumPy too, on views of their data (kPredicateNumpyFrom).
py::object numpy_view(PyObject* h) {
  return is_var(h) ? py::object(to_numpy(holder_of(h)->data)) : py::reinterpret_borrow<py::object>(h);
}
bool large_var(PyObject* h) { return is_var(h) && holder_of(h)->data.numel() >= kPredicateNumpyFrom; }
template <kern::CompareOp K, class T>
void same_shape_compare(const T* x, const T* y, uint8_t* o, int64_t n) {
  using C = kern::CompareOp;
  for (int64_t i = 0; i < n; ++i)
    o[i] = K == C::Eq ? x[i] == y[i] : K == C::Ne ? x[i] != y[i] : K == C::Lt ? x[i] < y[i]
         : K == C::Le ? x[i] <= y[i] : K == C::Gt ? x[i] > y[i] : x[i] >= y[i];
}
template <kern::CompareOp K>
PyObject* compare_body(const char* name, PyObject* const* a) {
  if (!is_var(a[0]) && !is_var(a[1])) return numpy_predicate(name + 1, a[0], a[1]);
  if (large_var(a[0]) || large_var(a[1])) {
    Tensor out;  // h110-predicates: two Variables of one shape and dtype, contiguous: SSE2, split over the pool
    if (is_var(a[0]) && is_var(a[1]) && kern::compare_same_shape(K, holder_of(a[0])->data, holder_of(a[1])->data, out))
      return bool_result(out);
    return numpy_predicate(name + 1, numpy_view(a[0]).ptr(), numpy_view(a[1]).ptr());
  }
  auto [x, y] = operands(a[0], a[1], name + 1);
  Tensor p = x->data, q = y->data;
  if (p.dtype != q.dtype) {  // float32 with float64: compared in float64, as NumPy
    p = kern::astype(p, DType::F64);
    q = kern::astype(q, DType::F64);
  }
  // h100-small: one shape, both contiguous (the usual call): the kernel's loop without its broadcast set-up (the
  // stride vectors were 70% of a 16-element call's 4,260 instructions, callgrind); IEEE comparisons as its own.
  if (p.shape == q.shape && is_float(p.dtype) && p.numel() > 0 && p.is_contiguous() && q.is_contiguous()) {
    Tensor out = Tensor::empty(p.shape, DType::Bool);
    if (p.dtype == DType::F32) same_shape_compare<K>(p.ptr<float>(), q.ptr<float>(), out.ptr<uint8_t>(), p.numel());
    else same_shape_compare<K>(p.ptr<double>(), q.ptr<double>(), out.ptr<uint8_t>(), p.numel());
    return bool_result(out);
  }
  return bool_result(kern::compare(K, p, q, name + 1));
}
template <kern::ClassifyOp K>
PyObject* classify_body(const char* name, PyObject* const* a) {
  if (!is_var(a[0])) return numpy_predicate(name + 1, a[0]);
  if (large_var(a[0])) return numpy_predicate(name + 1, numpy_view(a[0]).ptr());
  return bool_result(kern::classify(K, holder_of(a[0])->data));
}
#define TG_COMPARE_BODY(NAME, K) \
  PyObject* NAME##_body(PyObject* const* a) { return compare_body<kern::CompareOp::K>(#NAME, a); }
#define TG_CLASSIFY_BODY(NAME, K) \
  PyObject* NAME##_body(PyObject* const* a) { return classify_body<kern::ClassifyOp::K>(#NAME, a); }
TG_COMPARE_BODY(_less, Lt) TG_COMPARE_BODY(_less_equal, Le) TG_COMPARE_BODY(_greater, Gt)
TG_COMPARE_BODY(_greater_equal, Ge) TG_COMPARE_BODY(_equal, Eq) TG_COMPARE_BODY(_not_equal, Ne)
TG_CLASSIFY_BODY(_isnan, IsNan) TG_CLASSIFY_BODY(_isinf, IsInf) TG_CLASSIFY_BODY(_isfinite, IsFinite)
TG_CLASSIFY_BODY(_signbit, SignBit)
#undef TG_COMPARE_BODY
#undef TG_CLASSIFY_BODY

TG_FASTCALL_FN(where, "condition", "x", "y")
TG_FASTCALL_FN(clip, "x", "a_min", "a_max")
TG_FASTCALL_FN(astype, "x", "dtype")
TG_FASTCALL_FN(reshape, "x", "shape")
TG_FASTCALL_FN(broadcast_to, "x", "shape")
TG_FASTCALL_FN(from_numpy, "array")
TG_FASTCALL_FN_REQ(transpose, 1, "x", "axes")
TG_FASTCALL_FN_REQ(concatenate, 1, "arrays", "axis")
TG_FASTCALL_FN_REQ(stack, 1, "arrays", "axis")
TG_FASTCALL_FN_REQ(diagonal, 1, "x", "offset", "axis1", "axis2")
TG_FASTCALL_FN_REQ(trace, 1, "x", "offset", "axis1", "axis2")
TG_FASTCALL_FN_REQ(diag, 1, "x", "k")
TG_FASTCALL_FN_REQ(squeeze, 1, "x", "axis")
TG_FASTCALL_FN(expand_dims, "x", "axis")
TG_FASTCALL_FN(swapaxes, "x", "axis1", "axis2")
TG_FASTCALL_FN(moveaxis, "x", "source", "destination")
TG_FASTCALL_FN_REQ(tril, 1, "x", "k")
TG_FASTCALL_FN_REQ(triu, 1, "x", "k")

// The families: one body template, the op's function and name as arguments.
#define TG_BINARY_BODY(NAME, FN) \
  PyObject* NAME##_body(PyObject* const* a) { return binary_body<FN>(#NAME, a); }
#define TG_REDUCE_BODY(NAME, FN) \
  PyObject* NAME##_body(PyObject* const* a) { return reduce_body<FN>(#NAME, a); }
#define TG_SOFTMAX_BODY(NAME, FN) \
  PyObject* NAME##_body(PyObject* const* a) { return softmax_body<FN>(#NAME, a); }
TG_BINARY_BODY(add, add)
TG_BINARY_BODY(subtract, sub)
TG_BINARY_BODY(multiply, mul)
TG_BINARY_BODY(divide, div)
TG_BINARY_BODY(power, pow)
TG_BINARY_BODY(maximum, maximum)
TG_BINARY_BODY(minimum, minimum)
TG_BINARY_BODY(arctan2, arctan2)
TG_BINARY_BODY(logaddexp, logaddexp)
TG_BINARY_BODY(logaddexp2, logaddexp2)
TG_BINARY_BODY(hypot, hypot)
TG_BINARY_BODY(fmax, fmax)
TG_BINARY_BODY(fmin, fmin)
TG_BINARY_BODY(matmul, matmul_nogil)
TG_REDUCE_BODY(sum, sum)
TG_REDUCE_BODY(mean, mean_warn)
TG_REDUCE_BODY(max, max)
TG_REDUCE_BODY(min, min)
TG_REDUCE_BODY(logsumexp, logsumexp)
TG_REDUCE_BODY(prod, prod)
TG_SOFTMAX_BODY(softmax, softmax)
TG_SOFTMAX_BODY(log_softmax, log_softmax)
#undef TG_BINARY_BODY
#undef TG_REDUCE_BODY
#undef TG_SOFTMAX_BODY
#define TG_BINARY_FN(NAME) TG_FASTCALL_FN(NAME, "a", "b")
TG_BINARY_FN(add) TG_BINARY_FN(subtract) TG_BINARY_FN(multiply) TG_BINARY_FN(divide) TG_BINARY_FN(power)
TG_BINARY_FN(maximum) TG_BINARY_FN(minimum) TG_BINARY_FN(arctan2) TG_BINARY_FN(matmul)
TG_BINARY_FN(logaddexp) TG_BINARY_FN(logaddexp2) TG_BINARY_FN(hypot) TG_BINARY_FN(fmax) TG_BINARY_FN(fmin)
#undef TG_BINARY_FN
#define TG_REDUCE_FN(NAME) TG_FASTCALL_FN_REQ(NAME, 1, "x", "axis", "keepdims")
TG_REDUCE_FN(sum) TG_REDUCE_FN(mean) TG_REDUCE_FN(max) TG_REDUCE_FN(min) TG_REDUCE_FN(logsumexp)
TG_REDUCE_FN(prod)
#undef TG_REDUCE_FN
TG_FASTCALL_FN(_less, "a", "b") TG_FASTCALL_FN(_less_equal, "a", "b") TG_FASTCALL_FN(_greater, "a", "b")
TG_FASTCALL_FN(_greater_equal, "a", "b") TG_FASTCALL_FN(_equal, "a", "b") TG_FASTCALL_FN(_not_equal, "a", "b")
TG_FASTCALL_FN(_isnan, "x") TG_FASTCALL_FN(_isinf, "x") TG_FASTCALL_FN(_isfinite, "x") TG_FASTCALL_FN(_signbit, "x")
TG_FASTCALL_FN_REQ(softmax, 1, "x", "axis")
TG_FASTCALL_FN_REQ(log_softmax, 1, "x", "axis")
TG_FASTCALL_FN_REQ(cumsum, 1, "x", "axis")
TG_FASTCALL_FN_REQ(cumprod, 1, "x", "axis")
TG_FASTCALL_FN_REQ(var, 1, "x", "axis", "ddof", "keepdims")
TG_FASTCALL_FN_REQ(std, 1, "x", "axis", "ddof", "keepdims")

#define TG_FASTCALL_DEF(NAME) \
  {#NAME, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&NAME##_fn)), METH_FASTCALL | METH_KEYWORDS, TG_DOC(NAME)}
PyMethodDef kFastcallDefs[] = {
    TG_FASTCALL_DEF(linear), TG_FASTCALL_DEF(where), TG_FASTCALL_DEF(clip), TG_FASTCALL_DEF(astype),
    TG_FASTCALL_DEF(reshape), TG_FASTCALL_DEF(broadcast_to), TG_FASTCALL_DEF(add), TG_FASTCALL_DEF(subtract),
    TG_FASTCALL_DEF(multiply), TG_FASTCALL_DEF(divide), TG_FASTCALL_DEF(power), TG_FASTCALL_DEF(maximum),
    TG_FASTCALL_DEF(minimum), TG_FASTCALL_DEF(arctan2), TG_FASTCALL_DEF(matmul), TG_FASTCALL_DEF(sum),
    TG_FASTCALL_DEF(mean), TG_FASTCALL_DEF(max), TG_FASTCALL_DEF(min), TG_FASTCALL_DEF(logsumexp),
    TG_FASTCALL_DEF(softmax), TG_FASTCALL_DEF(log_softmax), TG_FASTCALL_DEF(transpose),
    TG_FASTCALL_DEF(concatenate), TG_FASTCALL_DEF(stack),
    TG_FASTCALL_DEF(diagonal), TG_FASTCALL_DEF(trace), TG_FASTCALL_DEF(diag), TG_FASTCALL_DEF(squeeze),
    TG_FASTCALL_DEF(expand_dims), TG_FASTCALL_DEF(swapaxes), TG_FASTCALL_DEF(moveaxis), TG_FASTCALL_DEF(tril),
    TG_FASTCALL_DEF(triu),
#define TG_PREDICATE_DEF(NAME) \
  {#NAME, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&NAME##_fn)), METH_FASTCALL | METH_KEYWORDS, \
   "The kernel of a predicate composition (opspec/ops.py COMPOSITIONS)."}
    TG_PREDICATE_DEF(_less), TG_PREDICATE_DEF(_less_equal), TG_PREDICATE_DEF(_greater),
    TG_PREDICATE_DEF(_greater_equal), TG_PREDICATE_DEF(_equal), TG_PREDICATE_DEF(_not_equal),
    TG_PREDICATE_DEF(_isnan), TG_PREDICATE_DEF(_isinf), TG_PREDICATE_DEF(_isfinite), TG_PREDICATE_DEF(_signbit),
#undef TG_PREDICATE_DEF

    TG_FASTCALL_DEF(logaddexp), TG_FASTCALL_DEF(logaddexp2), TG_FASTCALL_DEF(hypot), TG_FASTCALL_DEF(fmax),
    TG_FASTCALL_DEF(fmin),

    TG_FASTCALL_DEF(cumsum), TG_FASTCALL_DEF(cumprod), TG_FASTCALL_DEF(prod), TG_FASTCALL_DEF(var), TG_FASTCALL_DEF(std),
    {"from_numpy", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&from_numpy_fn)),
     METH_FASTCALL | METH_KEYWORDS, "from_numpy(array)\n--\n\nA Variable sharing the NumPy array's buffer (no copy)."},
    {nullptr, nullptr, 0, nullptr}};
#undef TG_FASTCALL_DEF

}  // namespace

// The comparisons' bodies under their public names, for fast_compositions.cpp's less, ... (the same calls).
#define TG_COMPARE_EXPORT(NAME) \
  PyObject* NAME##_compare_body(PyObject* const* a) { return _##NAME##_body(a); }
TG_COMPARE_EXPORT(less) TG_COMPARE_EXPORT(less_equal) TG_COMPARE_EXPORT(greater)
TG_COMPARE_EXPORT(greater_equal) TG_COMPARE_EXPORT(equal) TG_COMPARE_EXPORT(not_equal)
#undef TG_COMPARE_EXPORT

double ddof_arg(PyObject* h, const char* name) {
  if (!h) return 0;
  if (is_integer(h)) return double(int_arg(h, name, "ddof"));
  if (PyFloat_Check(h)) return PyFloat_AS_DOUBLE(h);
  throw type_error(std::string(name) + ": ddof must be an int or a float, got " + type_name(h));
}

// var/std (and mean) of no element: nan, with NumPy's mean warning (var/std's composition gave it through mean).
void warn_empty_moments(const Var& x, const std::optional<Axes>& axes) {
  int64_t count = 1;
  if (axes) {
    for (int64_t a : *axes) count *= x->shape()[a];
  } else {
    count = x->data.numel();
  }
  if (count == 0 && PyErr_WarnEx(PyExc_RuntimeWarning, "Mean of empty slice.", 1) < 0) throw py::error_already_set();
}

// The op gives NumPy's nan; the binding adds NumPy's warning (the reference engine's np.mean warns).
Var mean_warn(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  warn_empty_moments(x, axes);  // (the same count and message)
  return mean(x, axes, keepdims);
}

void bind_functions(py::module_& m) {
  // The op spec (opspec/ops.py) as data: tapegrad re-exports its ops from it.
  m.attr("__ops__") = py::module_::import("json").attr("loads")(kOpsJson);
  m.attr("__compositions__") = py::module_::import("json").attr("loads")(kCompositionsJson);
  m.def("_cross_entropy_labels", named("cross_entropy", +[](py::handle logits, py::handle labels, py::handle reduction_) {
        Var z = unary_arg(logits, "cross_entropy");
        if (!PyUnicode_Check(reduction_.ptr()))
          throw type_error("cross_entropy: reduction must be one of 'mean', 'sum', 'none', got " + type_name(reduction_));
        const std::string reduction = reduction_.cast<std::string>();
        py::array arr = py::array::ensure(labels);
        const char kind = arr ? arr.dtype().kind() : '?';
        if (kind != 'i' && kind != 'u' && kind != 'b')
          throw type_error("cross_entropy: labels must be an integer (or bool) array");
        if (kind == 'u' && arr.dtype().itemsize() == 8 && arr.size() > 0 &&
            py::int_(arr.attr("max")()).cast<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
          throw value_error("cross_entropy: labels must be in [0, C): a uint64 label exceeds the int64 range");
        CrossEntropyReduction red;
        if (reduction == "none") red = CrossEntropyReduction::None;
        else if (reduction == "mean") red = CrossEntropyReduction::Mean;
        else if (reduction == "sum") red = CrossEntropyReduction::Sum;
        else throw value_error("cross_entropy: reduction must be one of 'mean', 'sum', 'none', got '" + reduction + "'");
        py::array_t<int64_t, py::array::c_style | py::array::forcecast> ix(arr);
        Tensor t = Tensor::empty(Shape(ix.shape(), ix.shape() + ix.ndim()), DType::I64);
        if (t.nbytes()) std::memcpy(t.raw(), ix.data(), t.nbytes());
        return cross_entropy_labels(z, t, red);
      }), py::arg("logits"), py::arg("labels"), py::arg("reduction") = "none",
      "Softmax cross-entropy of logits (N, C) against integer labels (N,), per row or reduced ('mean', 'sum'), "
      "one fused primitive (tapegrad.nn.cross_entropy uses it).");
  m.def("_mse_loss", named("mse_loss", +[](py::handle x, py::handle target, py::handle mean_) {
        const bool mean = bool_arg(mean_, "mse_loss", "mean");
        Var v = unary_arg(x, "mse_loss");
        // A Variable target is copied: the node keeps the target, and an
        // in-place update of the Variable must not change the gradient.
        Tensor t = is_var(target) ? holder_of(target)->data.clone() : to_var(target, v->dtype(), "mse_loss")->data;
        return mse_loss(v, t, mean);
      }), py::arg("input"), py::arg("target"), py::arg("mean"),
      "mean (or sum) of (input - target)^2 over all elements, target a constant: one fused primitive "
      "(tapegrad.nn.mse_loss uses it).");
  // The op spec's functions, with its argument names, defaults and docs.
  // pybind11's own signature lines are off: each doc starts with CPython's
  // text signature (sum(x, axis=None)\n--\n\n), so inspect.signature works.
  py::options spec_docs;
  spec_docs.disable_function_signatures();
  if (PyModule_AddFunctions(m.ptr(), unary_method_table(std::make_index_sequence<kNumUnary>())) != 0)
    throw py::error_already_set();
  if (PyModule_AddFunctions(m.ptr(), kFastcallDefs) != 0) throw py::error_already_set();
  bind_contract(m);

  bind_fast_compositions(m);  // fast_compositions.cpp

  bind_param(m);

  bind_gather(m);

  m.def("inv", named("inv", +[](py::handle a) { return inv(unary_arg(a, "inv")); }), TG_SIG(inv));
  m.def("solve", named("solve", +[](py::handle a, py::handle b) {
        auto [x, y] = operands(a, b, "solve");
        return solve(x, y);
      }), TG_SIG(solve));
  m.def("slogdet", named("slogdet", +[](py::handle a) {
        auto [sign, logdet] = slogdet(unary_arg(a, "slogdet"));
        return py::make_tuple(sign, logdet);
      }), TG_SIG(slogdet));
  m.def("cholesky", named("cholesky", +[](py::handle a) { return cholesky(unary_arg(a, "cholesky")); }),
        TG_SIG(cholesky));
}

void bind_runtime(py::module_& m) {
  m.def("_isa", []() { return std::string(kern::isa_name()); },
        "The instruction set of the elementwise loops in use: 'avx2' or 'baseline'.");
  m.def("_set_isa", [](const std::string& name) {
        if (!kern::set_isa(name.c_str()))
          throw value_error("_set_isa: unknown instruction set or not supported by this CPU: '" + name + "'");
      }, py::arg("name"), "Switch the elementwise loops ('baseline', 'avx2' or 'avx512'); for tests.");
  m.def("_buffer_cache_stats", []() {
        BufferCacheStats s = buffer_cache_stats();
        py::dict d;
        d["cached_bytes"] = s.cached_bytes;
        d["in_use_bytes"] = s.in_use_bytes;
        d["system_allocs"] = s.system_allocs;
        d["reuses"] = s.reuses;
        return d;
      }, "Counters of the buffer cache (tensor.hpp): bytes cached and in use, buffers got from the system, reuses.");
  m.def("_empty_buffer_cache", &empty_buffer_cache, "Return every cached free buffer to the system.");

  m.def("set_num_threads", [](py::handle n_) {
        if (!is_integer(n_)) throw type_error("set_num_threads: n must be an int, got " + type_name(n_));
        const int64_t n = int_arg(n_, "set_num_threads", "n");
        if (n < 1 || n > 1024) throw value_error("set_num_threads: n must be in [1, 1024], got " + std::to_string(n));
        tg::set_num_threads(static_cast<int>(n));
        scipy_openblas_set_num_threads(static_cast<int>(n));
      }, py::arg("n"), "Threads used by tapegrad's kernels: its elementwise/reduction pool and its BLAS (OpenBLAS).");
  m.def("_set_pool_threads", [](int n) {
        if (n < 1 || n > 1024) throw value_error("_set_pool_threads: n must be in [1, 1024], got " + std::to_string(n));
        tg::set_num_threads(n);
      }, py::arg("n"), "Threads of tapegrad's own pool only (not the BLAS's); for experiments.");
  m.def("get_num_threads", []() { return tg::get_num_threads(); },
        "Threads used by tapegrad's kernels (its pool and its BLAS).");

  // NumPy's NPY_MAXDIMS (32 in NumPy 1.x, 64 in 2.x): the most axes a
  // shape may have (tg::check_shape), read from the installed NumPy.
  for (int k : {64, 32}) {
    try {
      numpy().attr("empty")(py::tuple(py::cast(std::vector<int>(k, 1))), py::arg("dtype") = "uint8");
      tg::set_max_dims(k);
      break;
    } catch (py::error_already_set&) {
    }
  }
  buffer_cache_stats();  // builds the buffer cache now, so that its setting is read (and checked) at import
  for (const std::string& w : take_config_warnings())
    if (PyErr_WarnEx(PyExc_RuntimeWarning, w.c_str(), 1) != 0) throw py::error_already_set();
}

}  // namespace tgpy
