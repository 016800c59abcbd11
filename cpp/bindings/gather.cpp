// _take, _take_along_axis, _repeat, _tile: the C++ bodies of those compositions (opspec/ops.py COMPOSITIONS;
// python/tapegrad/_compose.py calls them on this engine), raw METH_FASTCALL functions. The ops themselves are in
// cpp/src/ops/gather.cpp. bind_functions calls bind_gather in its registration order.
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "tapegrad/kernels.hpp"

namespace tgpy {

namespace {
// An index / repeats argument becomes a contiguous int64 Tensor: a Python int,
// a NumPy integer array of any width (native int32/int64 read directly), or
// whatever np.asarray makes an integer array of (lists, NumPy ints).
Tensor int64_array_arg(PyObject* o, const char* op, const char* what, bool cast_reals) {
  if (PyLong_CheckExact(o)) {
    Tensor t = Tensor::empty(Shape{}, DType::I64);
    *t.ptr<int64_t>() = int_arg(o, op, what);
    return t;
  }
  if (is_var(o))
    throw type_error(std::string(op) + ": " + what + " must be integers, got a Variable of dtype " +
                     dtype_name(holder_of(o)->dtype()));
  ArrayFields f;
  static_assert(sizeof(int) == 4 && sizeof(long) == 8, "NumPy's type numbers 5 (int), 7 (long), 9 (longlong)");
  if (array_fields(o, &f) && f.native && f.c_contiguous && (f.type_num == 5 || f.type_num == 7 || f.type_num == 9)) {
    if (f.type_num != 5 && reinterpret_cast<uintptr_t>(f.data) % alignof(int64_t) == 0 && numel(f.shape) > 0) {
      // Read in place, no copy: take, take_along_axis and repeat keep only what they make of it
      // (benchmarks/README.md, h111-takefused)
      Py_INCREF(o);
      StorageRef s = Storage::borrow(f.data, static_cast<size_t>(numel(f.shape)) * sizeof(int64_t), &decref_numpy, o,
                                     !f.writeable);
      return Tensor(std::move(s), std::move(f.shape), DType::I64);
    }
    Tensor t = Tensor::empty(f.shape, DType::I64);
    const int64_t k = t.numel();
    int64_t* p = t.ptr<int64_t>();
    if (f.type_num == 5) {
      const int32_t* q = static_cast<const int32_t*>(f.data);
      for (int64_t i = 0; i < k; ++i) p[i] = q[i];
    } else if (k) {
      kern::copy_bytes(p, f.data, static_cast<size_t>(k) * sizeof(int64_t));  // (threads split a large index)
    }
    return t;
  }
  const bool given_array = py::isinstance<py::array>(py::handle(o));
  py::array arr;
  try {
    arr = py::reinterpret_steal<py::array>(numpy().attr("asarray")(py::handle(o)).release());
  } catch (py::error_already_set& e) {
    reraise_prefixed(e, op);
  }
  const char kind = arr.dtype().kind();
  if (kind == 'u' && arr.itemsize() == 8 && arr.size() > 0 &&
      py::int_(arr.attr("max")()).cast<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    throw index_error(std::string(op) + ": " + what + " " + py::str(arr.attr("max")()).cast<std::string>() +
                      " is out of range (it does not fit a 64-bit integer)");
  if (kind != 'i' && kind != 'u') {
    if (!((cast_reals && (kind == 'f' || kind == 'b')) || (!given_array && arr.size() == 0)))
      throw type_error(std::string(op) + ": " + what + " must be integers, got dtype " +
                       py::str(arr.dtype()).cast<std::string>());
    if (kind == 'f' && !numpy().attr("all")(numpy().attr("less")(numpy().attr("abs")(arr), 9223372036854775808.0)).cast<bool>())
      throw value_error(std::string(op) + ": " + what + " " + py::repr(py::handle(o)).cast<std::string>() +
                        " is out of range (it must be finite and fit a 64-bit integer)");
    arr = arr.attr("astype")("int64");  // (repeats: NumPy's repeat truncates reals; an empty list is float64)
  }
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> ix(arr);
  Tensor t = Tensor::empty(Shape(ix.shape(), ix.shape() + ix.ndim()), DType::I64);
  if (t.nbytes()) std::memcpy(t.raw(), ix.data(), t.nbytes());
  return t;
}
std::optional<int64_t> optional_axis_arg(PyObject* o, const char* op) {
  if (!o || o == Py_None) return std::nullopt;
  return int_arg(o, op, "axis");
}
PyObject* _take_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "take");
  return cast_out(with_op("take", [&] { return take(v, int64_array_arg(a[1], "take", "indices", false), optional_axis_arg(a[2], "take")); }));
}
PyObject* _take_along_axis_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "take_along_axis");
  Tensor ix = int64_array_arg(a[1], "take_along_axis", "indices", false);
  return cast_out(with_op("take_along_axis", [&] { return take_along_axis(v, ix, optional_axis_arg(a[2], "take_along_axis")); }));
}
PyObject* _repeat_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "repeat");
  Tensor r = int64_array_arg(a[1], "repeat", "repeats", true);
  return cast_out(with_op("repeat", [&] { return repeat(v, r, optional_axis_arg(a[2], "repeat")); }));
}
PyObject* _tile_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "tile");
  Shape reps;
  if (PyTuple_Check(a[1]) || PyList_Check(a[1])) {
    reps = int_sequence(a[1], "tile", "reps");
  } else if (py::isinstance<py::array>(py::handle(a[1])) && py::array(py::reinterpret_borrow<py::array>(a[1])).ndim() == 1) {
    reps = int_sequence(py::handle(a[1]).attr("tolist")(), "tile", "reps");
  } else {
    reps = Shape{int_arg(a[1], "tile", "reps")};
  }
  return cast_out(with_op("tile", [&] { return tile(v, reps); }));
}
TG_FASTCALL_FN_REQ(_take, 2, "x", "indices", "axis")
TG_FASTCALL_FN(_take_along_axis, "x", "indices", "axis")
TG_FASTCALL_FN_REQ(_repeat, 2, "x", "repeats", "axis")
TG_FASTCALL_FN(_tile, "x", "reps")
#define TG_GATHER_DEF(NAME) \
  {#NAME, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&NAME##_fn)), METH_FASTCALL | METH_KEYWORDS, \
   "The C++ body of a composition (opspec/ops.py COMPOSITIONS)."}
PyMethodDef kGatherDefs[] = {TG_GATHER_DEF(_take), TG_GATHER_DEF(_take_along_axis), TG_GATHER_DEF(_repeat),
                             TG_GATHER_DEF(_tile), {nullptr, nullptr, 0, nullptr}};
#undef TG_GATHER_DEF
}  // namespace

void bind_gather(py::module_& m) {
  if (PyModule_AddFunctions(m.ptr(), kGatherDefs) != 0) throw py::error_already_set();
}

}  // namespace tgpy
