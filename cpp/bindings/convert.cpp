// Argument conversion for the bindings (see convert.hpp).
#include "convert.hpp"

#include "tapegrad/kernels.hpp"

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
  py::dtype dt;
  try {
    dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(obj));
  } catch (py::error_already_set&) {
    throw type_error(std::string(op) + ": dtype must be float32 or float64, got " + type_name(obj) + " " +
                     py::repr(obj).cast<std::string>().substr(0, 80));
  }
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

bool array_fields(py::handle h, ArrayFields* f) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(h.ptr())) return false;
  const auto* a = py::detail::array_proxy(h.ptr());
  const auto* d = py::detail::array_descriptor_proxy(a->descr);
  f->data = a->data;
  f->shape.assign(a->dimensions, a->dimensions + a->nd);
  f->type_num = d->type_num;
  // NumPy spells the native order '=' ('|' for one-byte types); '<' or '>' only when it is not native.
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  f->native = d->byteorder != '>';
#else
  f->native = d->byteorder != '<';
#endif
  f->c_contiguous = (a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) != 0;
  f->writeable = (a->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_) != 0;
  return true;
}

std::optional<DType> native_float(const ArrayFields& f) {
  if (!f.native) return std::nullopt;
  if (f.type_num == kNpyFloat) return DType::F32;
  if (f.type_num == kNpyDouble) return DType::F64;
  return std::nullopt;
}

// Copies any array-like into a new contiguous Tensor of dtype `dt`. NumPy
// handles strides, Fortran order, negative strides and read-only input; a
// C-contiguous array of dtype `dt` is copied here directly (threads split a
// large one).
Tensor copy_to_tensor(const py::array& arr, DType dt) {
  ArrayFields f;
  if (array_fields(arr, &f) && f.c_contiguous && native_float(f) == dt) {
    Tensor t = Tensor::empty(f.shape, dt);
    kern::copy_bytes(t.raw(), f.data, t.nbytes());
    return t;
  }
  py::array c;
  if (dt == DType::F32)
    c = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
  else
    c = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!c) throw py::error_already_set();
  Shape shape(c.shape(), c.shape() + c.ndim());
  Tensor t = Tensor::empty(shape, dt);
  if (t.nbytes()) kern::copy_bytes(t.raw(), c.data(), t.nbytes());
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
    double v = PyFloat_CheckExact(h.ptr()) ? PyFloat_AS_DOUBLE(h.ptr()) : PyLong_AsDouble(h.ptr());
    if (v == -1.0 && PyErr_Occurred()) {  // an int beyond float64's range: not a number we take
      PyErr_Clear();
      return nullptr;
    }
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

// A NumPy array viewing a Tensor's storage (no copy, the view's strides in
// bytes); a capsule holding a reference to the storage is its base. A
// broadcast view is read-only, as np.broadcast_to's result: its elements
// share memory. Made with NumPy's C API directly (pybind11's py::array
// constructor takes heap vectors, and marks read-only through a Python call).
py::array to_numpy(const Tensor& t) {
  const auto& api = py::detail::npy_api::get();
  const int nd = static_cast<int>(t.shape.size());
  Py_intptr_t dims[64], strides[64];  // (max_dims() <= 64)
  const Py_intptr_t isz = static_cast<Py_intptr_t>(itemsize(t.dtype));
  bool overlapping = false;
  const bool contiguous = t.is_contiguous();
  Shape st;
  if (!contiguous) st = t.strides();
  for (int i = 0; i < nd; ++i) {
    dims[i] = t.shape[i];
    if (!contiguous) {
      strides[i] = st[i] * isz;
      overlapping = overlapping || (st[i] == 0 && t.shape[i] > 1);
    }
  }
  int type_num = kNpyDouble;
  switch (t.dtype) {
    case DType::F32: type_num = kNpyFloat; break;
    case DType::F64: type_num = kNpyDouble; break;
    case DType::I64: type_num = py::dtype::of<int64_t>().num(); break;
    case DType::Bool: type_num = kNpyBool; break;
  }
  const int flags = t.storage->readonly || overlapping ? 0 : py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  PyObject* descr = api.PyArray_DescrFromType_(type_num);
  if (!descr) throw py::error_already_set();
  auto arr = py::reinterpret_steal<py::array>(api.PyArray_NewFromDescr_(  // (steals descr)
      api.PyArray_Type_, descr, nd, dims, contiguous ? nullptr : strides, t.data_ptr(), flags, nullptr));
  if (!arr) throw py::error_already_set();
  // (NumPy allocated a zero-size array's data itself when the storage had none.)
  if (!t.data_ptr()) return arr;
  // The capsule's pointer is the Storage itself, holding one reference (no
  // heap cell for a StorageRef: np.asarray(v) of a small Variable is mostly
  // allocations); its destructor adopts that reference back and drops it.
  auto capsule = py::reinterpret_steal<py::object>(PyCapsule_New(t.storage.get(), nullptr, [](PyObject* c) {
    StorageRef::adopt(static_cast<Storage*>(PyCapsule_GetPointer(c, nullptr)));
  }));
  if (!capsule) throw py::error_already_set();
  alignas(StorageRef) unsigned char held[sizeof(StorageRef)];
  new (held) StorageRef(t.storage);  // the capsule's reference (never destroyed here: the capsule owns it)
  if (api.PyArray_SetBaseObject_(arr.ptr(), capsule.release().ptr()) != 0)
    throw py::error_already_set();  // (SetBaseObject steals the capsule, and frees it on failure)
  return arr;
}

// numpy.integer and numpy.bool_, looked up once: strong references leaked as numpy()'s module is (they
// outlive finalization; NumPy's scalar types are static types, never freed while it is loaded).
static PyTypeObject* np_type(const char* name) {
  py::object t = numpy().attr(name);
  if (!PyType_Check(t.ptr())) throw type_error(std::string("numpy.") + name + " is not a type");
  return reinterpret_cast<PyTypeObject*>(t.release().ptr());
}
static PyTypeObject* np_integer_type() {
  static PyTypeObject* t = np_type("integer");
  return t;
}
static PyTypeObject* np_bool_type() {
  static PyTypeObject* t = np_type("bool_");
  return t;
}

bool is_integer(py::handle h) {
  PyObject* o = h.ptr();
  if (PyLong_Check(o)) return !PyBool_Check(o);
  // (a type check, as isinstance: numpy.integer defines no __instancecheck__)
  return !PyFloat_CheckExact(o) && PyObject_TypeCheck(o, np_integer_type());
}

std::string type_name(py::handle h) { return py::str(py::type::of(h).attr("__name__")).cast<std::string>(); }

int64_t int_arg(py::handle h, const char* op, const char* arg) {
  if (!is_integer(h))
    throw type_error(std::string(op) + ": " + arg + " must be an int, got " + type_name(h));
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!i) throw py::error_already_set();
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow)
    throw value_error(std::string(op) + ": " + arg + " " + py::str(i).cast<std::string>() +
                      " is out of range (it does not fit a 64-bit integer)");
  return v;
}

bool bool_arg(py::handle h, const char* op, const char* arg) {
  if (h.ptr() == Py_True) return true;
  if (h.ptr() == Py_False) return false;
  if (PyLong_Check(h.ptr()) || PyObject_TypeCheck(h.ptr(), np_bool_type()) || PyObject_TypeCheck(h.ptr(), np_integer_type())) {
    int r = PyObject_IsTrue(h.ptr());
    if (r < 0) throw py::error_already_set();
    return r != 0;
  }
  throw type_error(std::string(op) + ": " + arg + " must be a bool, got " + type_name(h));
}

// A tuple/list of ints (an axis tuple or a shape); TypeError otherwise.
std::vector<int64_t> int_sequence(py::handle seq, const char* op, const char* what) {
  if (!PyTuple_Check(seq.ptr()) && !PyList_Check(seq.ptr()))
    throw type_error(std::string(op) + ": " + what + " must be an int or a tuple of ints, got " + type_name(seq));
  std::vector<int64_t> out;
  for (auto item : seq) {
    if (!is_integer(item))
      throw type_error(std::string(op) + ": " + what + " must contain only ints, got " + type_name(item));
    out.push_back(int_arg(item, op, what));
  }
  return out;
}

std::optional<Axes> parse_axes(py::handle axis, const char* op) {
  if (axis.is_none()) return std::nullopt;
  if (is_integer(axis)) return Axes{int_arg(axis, op, "axis")};
  return int_sequence(axis, op, "axis");
}

std::optional<Axes> normalized_axes(const Var& x, py::handle axis, const char* op) {
  std::optional<Axes> a = parse_axes(axis, op);
  if (a) a = normalize_axes(*a, x->data.ndim(), op);
  return a;
}

Shape parse_shape(py::handle shape, const char* op, const char* what) {
  if (is_integer(shape)) return Shape{int_arg(shape, op, what)};
  return int_sequence(shape, op, what);
}

// Shape from a method's *args: v.reshape(2, 3) or v.reshape((2, 3)).
Shape shape_from_args(const py::args& args, const char* op, const char* what) {
  if (args.size() == 1) return parse_shape(args[0], op, what);
  return int_sequence(args, op, what);
}

void fastcall_args(const char* fname, const char* const* names, int n, int required, PyObject* const* args,
                   Py_ssize_t nargs, PyObject* kwnames, PyObject** out) {
  // (The words of inspect.Signature.bind, as the pybind11 functions' bad_call_message;
  // made only for an error: a string per call was a measurable part of a 0-d op.)
  auto f = [fname] { return std::string(fname) + "(): "; };
  if (nargs > n) throw type_error(f() + "too many positional arguments");
  for (Py_ssize_t i = 0; i < nargs; ++i) out[i] = args[i];
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  uint64_t given = (uint64_t(1) << nargs) - 1;
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    const char* key = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, k));
    if (!key) {  // not encodable: no such keyword
      PyErr_Clear();
      throw type_error(f() + "got an unexpected keyword argument");
    }
    int slot = -1;
    for (int j = 0; j < n; ++j)
      if (std::strcmp(key, names[j]) == 0) slot = j;
    if (slot < 0) throw type_error(f() + "got an unexpected keyword argument '" + key + "'");
    if (given >> slot & 1) throw type_error(f() + "multiple values for argument '" + key + "'");
    given |= uint64_t(1) << slot;
    out[slot] = args[nargs + k];
  }
  for (int j = 0; j < required; ++j)
    if (!(given >> j & 1)) throw type_error(f() + "missing a required argument: '" + names[j] + "'");
}

void reraise_prefixed(py::error_already_set& e, const std::string& prefix) {
  PyObject* base = PyExc_TypeError;
  for (PyObject* t : {PyExc_IndexError, PyExc_ValueError, PyExc_TypeError, PyExc_MemoryError, PyExc_OverflowError})
    if (e.matches(t)) {
      base = t == PyExc_OverflowError ? PyExc_ValueError : t;
      break;
    }
  std::string msg = prefix + ": " + py::str(e.value()).cast<std::string>();
  PyErr_SetString(base, msg.c_str());
  throw py::error_already_set();
}

Var unary_arg(py::handle x, const char* op) { return to_var(x, std::nullopt, op); }

std::vector<Var> var_list(py::handle seq, const char* op) {
  if (PyList_Check(seq.ptr()) || PyTuple_Check(seq.ptr())) {  // the usual call: no iterator, no copy of the items
    PyObject* s = seq.ptr();
    std::optional<DType> like;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(s) && !like; ++i)
      if (is_var(PySequence_Fast_GET_ITEM(s, i))) like = holder_of(PySequence_Fast_GET_ITEM(s, i))->dtype();
    std::vector<Var> out;
    out.reserve(static_cast<size_t>(PySequence_Fast_GET_SIZE(s)));
    // (Size and item re-read, the item held, per step: converting an
    // array-like runs its Python code, which may change the list.)
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(s); ++i)
      out.push_back(to_var(py::reinterpret_borrow<py::object>(PySequence_Fast_GET_ITEM(s, i)), like, op));
    return out;
  }
  std::vector<py::object> items;
  try {
    for (auto it : seq) items.push_back(py::reinterpret_borrow<py::object>(it));
  } catch (py::error_already_set& e) {  // not iterable
    reraise_prefixed(e, std::string(op) + ": arrays must be a sequence of arrays");
  }
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
