// Argument conversion for the bindings (see convert.hpp).
#include "convert.hpp"

namespace tgpy {

// ----- NumPy access -------------------------------------------------------------
py::module_& numpy() {
  static py::module_* np = new py::module_(py::module_::import("numpy"));  // leaked: outlives finalization
  return *np;
}

py::dtype np_dtype(DType d) {
  switch (d) {
    case DType::F32: return py::dtype::of<float>();
    case DType::F64: return py::dtype::of<double>();
    case DType::I64: return py::dtype::of<int64_t>();
    case DType::Bool: return py::dtype::of<bool>();
  }
  return py::dtype::of<double>();
}

// Parses a user-supplied dtype (np.float32, "float64", np.dtype(...)).
DType parse_float_dtype(py::handle obj, const char* op) {
  py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(obj));
  if (dt.kind() == 'f' && dt.itemsize() == 4) return DType::F32;
  if (dt.kind() == 'f' && dt.itemsize() == 8) return DType::F64;
  throw type_error(std::string(op) + ": dtype must be float32 or float64, got " + py::str(dt).cast<std::string>());
}

// The float dtype an array of NumPy dtype `dt` takes (NumPy promotion with
// `like` when given, else float64 for integers and bools), or nullopt when
// the data is not real numbers.
std::optional<DType> float_dtype_for(const py::dtype& dt, std::optional<DType> like) {
  char k = dt.kind();
  if (k == 'f') return dt.itemsize() <= 4 ? DType::F32 : DType::F64;  // float16 -> float32
  if (k == 'b' || k == 'i' || k == 'u') {
    if (like == DType::F32 && (k == 'b' || dt.itemsize() <= 2)) return DType::F32;
    return DType::F64;
  }
  return std::nullopt;
}

// Copies any array-like into a new contiguous Tensor of dtype `dt`. NumPy
// handles strides, Fortran order, negative strides and read-only input.
Tensor copy_to_tensor(const py::array& arr, DType dt) {
  py::array c;
  if (dt == DType::F32)
    c = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
  else
    c = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!c) throw py::error_already_set();
  Shape shape(c.shape(), c.shape() + c.ndim());
  Tensor t = Tensor::empty(shape, dt);
  if (t.nbytes()) std::memcpy(t.raw(), c.data(), t.nbytes());
  return t;
}

py::array as_ndarray(py::handle obj) {
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);  // no Python-level call
  return numpy().attr("asarray")(obj);
}

// Converts an operand to a Variable; returns null when it is not numeric
// (so operators can return NotImplemented). Python scalars take `like`'s dtype.
Var try_to_var(py::handle h, std::optional<DType> like) {
  if (is_var(h)) return holder_of(h);
  // Python numbers are "weak" (NEP 50): they take the other operand's dtype.
  // NumPy scalars (np.float64 subclasses float) are strong and go the array way.
  if (PyFloat_CheckExact(h.ptr()) || PyLong_CheckExact(h.ptr()) || PyBool_Check(h.ptr())) {
    double v = PyFloat_CheckExact(h.ptr()) ? PyFloat_AS_DOUBLE(h.ptr()) : h.cast<double>();
    return make_var(Tensor::scalar(v, like.value_or(DType::F64)));
  }
  if (h.is_none() || PyUnicode_Check(h.ptr()) || PyBytes_Check(h.ptr())) return nullptr;
  py::array arr;
  try {
    arr = as_ndarray(h);
  } catch (py::error_already_set&) {
    return nullptr;
  }
  std::optional<DType> dt = float_dtype_for(arr.dtype(), like);
  if (!dt) return nullptr;
  return make_var(copy_to_tensor(arr, *dt));
}

Var to_var(py::handle h, std::optional<DType> like, const char* op) {
  Var v = try_to_var(h, like);
  if (!v) {
    std::string what = py::str(py::type::of(h).attr("__name__")).cast<std::string>();
    if (!h.is_none() && !PyUnicode_Check(h.ptr())) {
      try {
        what = "an array of dtype " + py::str(as_ndarray(h).dtype()).cast<std::string>();
      } catch (py::error_already_set&) {
      }
    }
    throw type_error(std::string(op) + ": expected a Variable, an array of real numbers or a Python number, got " + what);
  }
  return v;
}

// Two operands of a binary function: scalars take the Variable's dtype.
std::pair<Var, Var> operands(py::handle a, py::handle b, const char* op) {
  std::optional<DType> like;
  if (is_var(a)) like = holder_of(a)->dtype();
  else if (is_var(b)) like = holder_of(b)->dtype();
  Var va = to_var(a, like, op);
  return {va, to_var(b, like ? like : std::optional<DType>(va->dtype()), op)};
}

// A NumPy array viewing a Tensor's storage (no copy); keeps the storage alive.
py::array to_numpy(const Tensor& t) {
  auto* keep = new StorageRef(t.storage);
  py::capsule base(keep, [](void* p) { delete static_cast<StorageRef*>(p); });
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  std::vector<py::ssize_t> strides(t.shape.size());
  py::ssize_t acc = static_cast<py::ssize_t>(itemsize(t.dtype));
  for (size_t i = t.shape.size(); i-- > 0;) {
    strides[i] = acc;
    acc *= t.shape[i];
  }
  py::array arr(np_dtype(t.dtype), shape, strides, t.raw(), base);
  if (t.storage->readonly) arr.attr("setflags")(py::arg("write") = false);
  return arr;
}

bool is_integer(py::handle h) {
  if (PyBool_Check(h.ptr())) return false;
  return PyLong_Check(h.ptr()) || py::isinstance(h, numpy().attr("integer"));
}

std::string type_name(py::handle h) { return py::str(py::type::of(h).attr("__name__")).cast<std::string>(); }

// A tuple/list of ints (an axis tuple or a shape); TypeError otherwise.
std::vector<int64_t> int_sequence(py::handle seq, const char* what) {
  if (!PyTuple_Check(seq.ptr()) && !PyList_Check(seq.ptr()))
    throw type_error(std::string(what) + " must be an int or a tuple of ints, got " + type_name(seq));
  std::vector<int64_t> out;
  for (auto item : seq) {
    if (!is_integer(item))
      throw type_error(std::string(what) + " must contain only ints, got " + type_name(item));
    out.push_back(item.cast<int64_t>());
  }
  return out;
}

std::optional<Axes> parse_axes(py::handle axis) {
  if (axis.is_none()) return std::nullopt;
  if (is_integer(axis)) return Axes{axis.cast<int64_t>()};
  return int_sequence(axis, "axis");
}

std::optional<Axes> normalized_axes(const Var& x, py::handle axis, const char* op) {
  std::optional<Axes> a = parse_axes(axis);
  if (a) a = normalize_axes(*a, x->data.ndim(), op);
  return a;
}

Shape parse_shape(py::handle shape) {
  if (is_integer(shape)) return Shape{shape.cast<int64_t>()};
  return int_sequence(shape, "shape");
}

// Shape from a method's *args: v.reshape(2, 3) or v.reshape((2, 3)).
Shape shape_from_args(const py::args& args) {
  if (args.size() == 1) return parse_shape(args[0]);
  return int_sequence(args, "shape");
}

Var unary_arg(py::handle x, const char* op) { return to_var(x, std::nullopt, op); }

std::vector<Var> var_list(py::handle seq, const char* op) {
  std::vector<py::object> items;
  for (auto it : seq) items.push_back(py::reinterpret_borrow<py::object>(it));
  std::optional<DType> like;
  for (auto& it : items)
    if (is_var(it)) {
      like = holder_of(it)->dtype();
      break;
    }
  std::vector<Var> out;
  for (auto& it : items) out.push_back(to_var(it, like, op));
  return out;
}

}  // namespace tgpy
