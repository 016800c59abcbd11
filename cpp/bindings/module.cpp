// tapegrad._core: the Variable class and the op functions, bound with pybind11.
//
// Everything a user calls lands here first, so this is where input is
// validated and converted: array-likes and Python scalars become Variables
// (scalars take the other operand's dtype), NumPy dtypes are checked, and
// core exceptions become ValueError / TypeError / RuntimeError / IndexError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <new>
#include <optional>
#include <limits>
#include <utility>

#include "tapegrad/autograd.hpp"
#include "tapegrad/kernels.hpp"
#include "simd/isa.hpp"
#include "tapegrad/parallel.hpp"
#include "tapegrad/ops.hpp"
#include "tapegrad/optim.hpp"

#include <cblas.h>

namespace py = pybind11;
using namespace tg;

// tg::Shape <-> Python: a tuple of ints out (NumPy's shape type), any sequence of ints in.
// Variables and nodes are held by tg::Ref (intrusive counts, see ref.hpp): it can be
// built from a raw pointer to a live object, so pybind11 may always do so.
PYBIND11_DECLARE_HOLDER_TYPE(T, tg::Ref<T>, true)

namespace pybind11::detail {
template <>
struct type_caster<tg::Shape> {
  PYBIND11_TYPE_CASTER(tg::Shape, const_name("tuple[int, ...]"));
  bool load(handle src, bool) {
    if (!isinstance<sequence>(src) || isinstance<str>(src)) return false;
    value.clear();
    for (auto item : reinterpret_borrow<sequence>(src)) {
      if (!PyIndex_Check(item.ptr())) return false;
      value.push_back(item.cast<int64_t>());
    }
    return true;
  }
  static handle cast(const tg::Shape& s, return_value_policy, handle) {
    PyObject* t = PyTuple_New(static_cast<Py_ssize_t>(s.size()));
    if (!t) return nullptr;
    for (size_t i = 0; i < s.size(); ++i) {
      PyObject* d = PyLong_FromLongLong(s[i]);
      if (!d) {
        Py_DECREF(t);
        return nullptr;
      }
      PyTuple_SET_ITEM(t, static_cast<Py_ssize_t>(i), d);
    }
    return t;
  }
};

// Variables out: a Variable that has a live Python object is returned as that
// object (VariableImpl::py_object), so `x.grad is x.grad` and an op that
// returns its input returns the same object; otherwise pybind11 wraps it and
// the new object is remembered. Hot paths make their objects in cast_out.
template <>
class type_caster<tg::Var> : public copyable_holder_caster<tg::VariableImpl, tg::Var> {
 public:
  static handle cast(const tg::Var& src, return_value_policy policy, handle parent) {
    if (src && src->py_object) return handle(static_cast<PyObject*>(src->py_object)).inc_ref();
    handle h = copyable_holder_caster::cast(src, policy, parent);
    if (src && h) src->py_object = h.ptr();
    return h;
  }
};
}  // namespace pybind11::detail

namespace {

// ----- NumPy access -------------------------------------------------------------
py::module_& numpy() {
  static py::module_* np = new py::module_(py::module_::import("numpy"));  // leaked: outlives finalization
  return *np;
}

PyTypeObject* g_var_type = nullptr;

__attribute__((always_inline)) inline bool is_var(py::handle h) {  // (every op asks, once per operand)
  PyTypeObject* t = Py_TYPE(h.ptr());
  if (t == g_var_type) return true;
  if (t == &PyFloat_Type || t == &PyLong_Type) return false;  // the other operand of `x * 2.0`: skip the MRO walk
  return PyType_IsSubtype(t, g_var_type);
}

// pybind11 keeps a Variable's Ref (its holder) inside its instance; with one
// bound base type and a holder of two pointers the layout is "simple": the
// value pointer then the holder, inline. The hot paths below read and build
// that layout directly (pybind11's generic accessors look up type info in a
// table first: a sixth of a scalar op). Anything else goes the generic way.
using PyInstance = py::detail::instance;
static_assert(sizeof(Var) <= sizeof(void*) * py::detail::instance_simple_holder_in_ptrs(),
              "a Variable's holder must fit pybind11's simple instance layout");

const py::detail::type_info* g_var_tinfo = nullptr;

// Any other layout, or a Variable whose __init__ never ran.
__attribute__((noinline)) const Var& holder_of_general(PyInstance* inst) {
  if (inst->simple_layout) throw type_error("Variable.__init__ was not called on this object");
  auto vh = inst->get_value_and_holder(g_var_tinfo);
  if (!vh.holder_constructed()) throw type_error("Variable.__init__ was not called on this object");
  return vh.holder<Var>();
}

// The Ref inside a Python Variable (the caller checked is_var). Inline:
// every op reads one or two.
__attribute__((always_inline)) inline const Var& holder_of(py::handle h) {
  auto* inst = reinterpret_cast<PyInstance*>(h.ptr());
  if (__builtin_expect(inst->simple_layout && inst->simple_holder_constructed, 1))
    return *std::launder(reinterpret_cast<Var*>(&inst->simple_value_holder[1]));
  return holder_of_general(inst);
}

// The memory of recently freed plain Variable objects, reused by cast_out
// (CPython keeps such a free list for floats): a scalar op allocates and
// frees one object, and obmalloc's path is a tenth of the op. GIL-guarded.
struct FreeObjects {
  static constexpr int kMax = 256;
  PyObject* slots[kMax];
  int count = 0;
};
FreeObjects g_free_objects;

// A new Python Variable for an op's result. A result nobody else holds
// (use_count 1) cannot have a Python object yet, so we build the instance
// the way pybind11's init_instance does for a simple layout, minus its
// type-info lookups and its instance registry (see the Var type_caster).
PyObject* cast_out(Var v) {
  if (v.use_count() != 1 || !g_var_tinfo) return py::cast(std::move(v)).release().ptr();
  PyObject* self;
  if (g_free_objects.count) {
    self = g_free_objects.slots[--g_free_objects.count];
    // (A constant size, so the compiler writes the zeros inline; the type's
    // tp_basicsize is checked to be exactly this at import.)
    std::memset(reinterpret_cast<char*>(self) + sizeof(PyObject), 0, sizeof(PyInstance) - sizeof(PyObject));
    // A free-listed object kept its type and its reference to the type
    // (var_dealloc): only the count needs setting (PyObject_Init's job
    // otherwise, as a call).
    Py_SET_REFCNT(self, 1);
  } else {
    self = PyType_GenericAlloc(g_var_type, 0);  // zeroed: every flag false, no weakrefs
    if (!self) throw py::error_already_set();
  }
  auto* inst = reinterpret_cast<PyInstance*>(self);
  inst->simple_layout = true;
  inst->owned = true;
  inst->simple_value_holder[0] = v.get();
  v->py_object = self;
  new (&inst->simple_value_holder[1]) Var(std::move(v));
  inst->simple_holder_constructed = true;
  return self;
}

// The one mapping of core exceptions to Python ones. Returns false for an
// exception it does not know (pybind11's own translators take those).
bool set_python_error(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const value_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const type_error& e) {
    PyErr_SetString(PyExc_TypeError, e.what());
  } catch (const graph_error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (const index_error& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (const not_implemented_error& e) {
    PyErr_SetString(PyExc_NotImplementedError, e.what());
  } catch (const py::cast_error& e) {
    PyErr_SetString(PyExc_TypeError, e.what());  // an argument of the wrong Python type deep in a conversion
  } catch (...) {
    return false;
  }
  return true;
}

// Runs f, turning C++ exceptions into Python ones (for raw CPython slots,
// which bypass pybind11's dispatcher).
template <class F>
PyObject* guarded(F&& f) {
  try {
    return f();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (...) {
    if (!set_python_error(std::current_exception())) {
      try {
        throw;
      } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
      } catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "tapegrad: unknown C++ exception");
      }
    }
  }
  return nullptr;
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

// mean over no element: the op gives NumPy's nan; the binding adds NumPy's
// RuntimeWarning "Mean of empty slice." (the reference engine's np.mean warns).
static Var mean_warn(const Var& x, const std::optional<Axes>& axes, bool keepdims) {
  int64_t count = 1;
  if (axes) {
    for (int64_t a : *axes) count *= x->shape()[a];
  } else {
    count = x->data.numel();
  }
  if (count == 0 && PyErr_WarnEx(PyExc_RuntimeWarning, "Mean of empty slice.", 1) < 0) throw py::error_already_set();
  return mean(x, axes, keepdims);
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

py::object not_implemented() { return py::reinterpret_borrow<py::object>(Py_NotImplemented); }

template <Var (*F)(const Var&, const Var&)>
py::object binop(const Var& self, py::handle other) {
  Var o = try_to_var(other, self->dtype());
  if (!o) return not_implemented();
  return py::cast(F(self, o));
}

template <Var (*F)(const Var&, const Var&)>
py::object rbinop(const Var& self, py::handle other) {
  Var o = try_to_var(other, self->dtype());
  if (!o) return not_implemented();
  return py::cast(F(o, self));
}

// Matmul releases the GIL when the product is large enough to be worth it.
Var matmul_nogil(const Var& a, const Var& b) {
  int64_t work = a->data.numel() * (b->shape().empty() ? 1 : b->shape().back());
  if (work < (1 << 16)) return matmul(a, b);
  py::gil_scoped_release nogil;
  return matmul(a, b);
}

template <kern::CompareOp K>
py::object compare_op(const Var& self, py::handle other) {
  Var o = try_to_var(other, self->dtype());
  if (!o) return not_implemented();
  Tensor a = self->data, b = o->data;
  if (a.dtype != b.dtype) {
    a = kern::astype(a, DType::F64);
    b = kern::astype(b, DType::F64);
  }
  return to_numpy(kern::compare(K, a, b, "comparison"));
}

// v += x and friends: allowed on a Variable that requires grad only under
// no_grad; they bump the version counter so a backward that saved the old
// value raises instead of using the new one.
template <kern::BinaryOp K>
py::object inplace_op(const Var& self, py::handle other, const char* sym) {
  Var o = try_to_var(other, self->dtype());
  if (!o) return not_implemented();
  if (grad_enabled() && self->requires_grad)
    throw graph_error(std::string("in-place `") + sym + "` on a Variable that requires grad (shape " +
                      shape_str(self->shape()) + ") would change a value the graph may need: wrap updates in "
                      "`with tapegrad.no_grad():` or write `v = v " + std::string(sym).substr(0, 1) + " x`");
  if (grad_enabled() && o->requires_grad)
    throw graph_error(std::string("in-place `") + sym + "` with an operand that requires grad cannot be recorded "
                      "on the tape: write `v = v " + std::string(sym).substr(0, 1) + " x` instead");
  if (self->data.storage->readonly)
    throw value_error(std::string("in-place `") + sym + "`: this Variable shares a read-only NumPy array");
  kern::binary_inplace(K, self->data, o->data, sym);
  self->data.bump_version();
  return py::cast(self);
}

// A seed for a sweep from `self`: shape batch + self.shape, where batch is
// the first `nb` axes of the given array (nb = 0: exactly self's shape).
Var make_seed(const Var& self, py::handle grad, int nb = 0, const char* what = "backward") {
  if (grad.is_none()) {
    if (self->data.numel() != 1 || nb != 0)
      throw graph_error(std::string(what) + ": grad can be implicitly created only for a single-element output, "
                        "but this output has shape " + shape_str(self->shape()) + ": pass grad= an array of that shape");
    return make_var(Tensor::full(self->shape(), self->dtype(), 1.0));
  }
  Var g = to_var(grad, self->dtype(), what);
  const Shape& gs = g->shape();
  bool ok = static_cast<int>(gs.size()) == nb + static_cast<int>(self->shape().size()) &&
            std::equal(self->shape().begin(), self->shape().end(), gs.begin() + nb);
  if (!ok)
    throw value_error(std::string(what) + ": the cotangent has shape " + shape_str(gs) + " but the output has shape " +
                      shape_str(self->shape()) + (nb ? " (expected batch + output shape)" : ""));
  if (g->requires_grad) return g->dtype() == self->dtype() ? g : astype(g, self->dtype());
  // A private copy in the output's dtype: the sweep may accumulate into it.
  return make_var(g->dtype() == self->dtype() ? g->data.clone() : kern::astype(g->data, self->dtype()));
}

void run_backward(const std::vector<Var>& roots, const std::vector<Var>& seeds, bool retain, bool create) {
  for (const Var& r : roots)
    if (!r->requires_grad)
      throw graph_error("backward: this Variable does not require grad and has no grad_fn: create its inputs with "
                        "requires_grad=True (and outside no_grad)");
  BackwardOptions opt{retain, create, {}};
  GradUpdates updates;
  {
    py::gil_scoped_release nogil;  // the sweep never touches Python
    backward(roots, seeds, opt, {}, &updates);
  }
  accumulate_grads(updates);  // with the GIL: Python threads read and reset .grad
}

Var unary_arg(py::handle x, const char* op) { return to_var(x, std::nullopt, op); }

// A clip bound: a constant tensor in x's dtype, or undefined for None.
Tensor clip_bound(py::handle b, const Var& x) {
  if (b.is_none()) return Tensor();
  Var v = to_var(b, x->dtype(), "clip");
  if (v->requires_grad)
    throw value_error("clip: the bounds are constants and are not differentiated; use maximum/minimum for "
                      "differentiable bounds");
  return v->dtype() == x->dtype() ? v->data : kern::astype(v->data, x->dtype());
}

Var clip_any(py::handle x, py::handle lo, py::handle hi) {
  Var v = unary_arg(x, "clip");
  return clip(v, clip_bound(lo, v), clip_bound(hi, v));
}

// A key of basic indexing only (ints, slices, None, Ellipsis): its result is
// a strided view, so the selected flat positions follow from the view's
// offset and strides.
bool basic_key_item(py::handle k) {
  if (k.is_none() || k.ptr() == Py_Ellipsis || PySlice_Check(k.ptr())) return true;
  return !PyBool_Check(k.ptr()) && PyLong_Check(k.ptr());
}
// Also reports whether the key holds an Ellipsis.
bool basic_key(py::handle key, bool* has_ellipsis) {
  *has_ellipsis = key.ptr() == Py_Ellipsis;
  if (!PyTuple_Check(key.ptr())) return basic_key_item(key);
  for (auto k : py::reinterpret_borrow<py::tuple>(key)) {
    if (!basic_key_item(k)) return false;
    *has_ellipsis = *has_ellipsis || k.ptr() == Py_Ellipsis;
  }
  return true;
}

Var getitem(const Var& self, py::handle key) {
  const Shape& s = self->shape();
  std::vector<py::ssize_t> shape(s.begin(), s.end());
  Tensor index;
  bool has_ellipsis = false;
  if (basic_key(key, &has_ellipsis)) {
    // NumPy applies the key to a byte-strided stand-in whose element i sits at
    // byte i (never read: basic indexing only makes a view), so the view's
    // byte offsets are the flat indices: O(result), not O(size).
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t st = 1;
    for (size_t d = shape.size(); d-- > 0;) {
      strides[d] = st;
      st *= std::max<py::ssize_t>(shape[d], 1);
    }
    py::array base = py::array_t<uint8_t>(1);
    py::object probe = numpy().attr("lib").attr("stride_tricks").attr("as_strided")(
        base, py::tuple(py::cast(shape)), py::tuple(py::cast(strides)), py::arg("writeable") = false);
    // With an Ellipsis in the key NumPy returns a 0-d view, not a scalar copy.
    py::object full_key = py::reinterpret_borrow<py::object>(key);
    if (!has_ellipsis)
      full_key = PyTuple_Check(key.ptr()) ? py::object(py::reinterpret_borrow<py::tuple>(key) + py::make_tuple(py::ellipsis()))
                                           : py::object(py::make_tuple(key, py::ellipsis()));
    py::object viewobj = probe[full_key];
    if (!py::isinstance<py::array>(viewobj)) throw index_error("getitem: internal error: basic indexing gave no view");
    py::array view = py::reinterpret_borrow<py::array>(viewobj);
    const int64_t off = static_cast<const uint8_t*>(view.data()) - static_cast<const uint8_t*>(base.data());
    Shape out_shape(view.shape(), view.shape() + view.ndim());
    index = Tensor::empty(out_shape, DType::I64);
    int64_t* dst = index.ptr<int64_t>();
    const int64_t total = index.numel();
    std::vector<int64_t> pos(out_shape.size(), 0);
    for (int64_t i = 0; i < total; ++i) {
      int64_t flat = off;
      for (size_t d = 0; d < pos.size(); ++d) flat += pos[d] * view.strides(d);
      dst[i] = flat;
      for (size_t d = pos.size(); d-- > 0;) {  // odometer over the result's shape
        if (++pos[d] < out_shape[d]) break;
        pos[d] = 0;
      }
    }
  } else {
    // Advanced indexing (arrays, lists, booleans): NumPy computes which flat
    // elements the key selects on an arange, with exact NumPy semantics.
    py::object idx = numpy().attr("arange")(self->data.numel(), py::arg("dtype") = "int64");
    idx = idx.attr("reshape")(py::tuple(py::cast(shape)))[key];
    py::array_t<int64_t, py::array::c_style | py::array::forcecast> ix(idx);
    Shape out_shape(ix.shape(), ix.shape() + ix.ndim());
    index = Tensor::empty(out_shape, DType::I64);
    if (index.nbytes()) std::memcpy(index.raw(), ix.data(), index.nbytes());
  }
  return gather(self, index);
}

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

void decref_numpy(void*, void* ctx) {
  if (!Py_IsInitialized()) return;
  py::gil_scoped_acquire gil;  // a sweep may drop the last reference without the GIL
  Py_DECREF(static_cast<PyObject*>(ctx));
}

Var from_numpy(py::handle obj) {
  if (!py::isinstance<py::array>(obj))
    throw type_error("from_numpy: expected a numpy.ndarray, got " +
                     py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  py::dtype dt = arr.dtype();
  DType d;
  if (dt.is(py::dtype::of<float>()) || (dt.kind() == 'f' && dt.itemsize() == 4 && dt.attr("isnative").cast<bool>()))
    d = DType::F32;
  else if (dt.kind() == 'f' && dt.itemsize() == 8 && dt.attr("isnative").cast<bool>())
    d = DType::F64;
  else
    throw type_error("from_numpy: the array must have dtype float32 or float64 in native byte order, got " +
                     py::str(dt).cast<std::string>() + " (use tapegrad.Variable(arr) to convert with a copy)");
  auto flags = arr.flags();
  if (!(flags & py::array::c_style))
    throw value_error("from_numpy: the array of shape " +
                      shape_str(Shape(arr.shape(), arr.shape() + arr.ndim())) +
                      " is not C-contiguous, so its buffer cannot be shared; pass np.ascontiguousarray(arr) or use "
                      "tapegrad.Variable(arr) to copy");
  bool readonly = !arr.writeable();
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  PyObject* owner = arr.ptr();
  Py_INCREF(owner);
  auto storage = Storage::borrow(const_cast<void*>(arr.data()), static_cast<size_t>(arr.nbytes()), &decref_numpy, owner, readonly);
  return make_var(Tensor(storage, shape, d));
}

Var construct(py::handle data, bool requires_grad, py::handle dtype) {
  std::optional<DType> want;
  if (!dtype.is_none()) want = parse_float_dtype(dtype, "Variable");
  Tensor t;
  if (is_var(data)) {
    Var src = holder_of(data);
    t = want && *want != src->dtype() ? kern::astype(src->data, *want) : src->data.clone();
  } else {
    py::array arr;
    try {
      arr = as_ndarray(data);
    } catch (py::error_already_set& e) {
      throw value_error(std::string("Variable: could not convert the data to an array: ") + e.what());
    }
    std::optional<DType> natural = float_dtype_for(arr.dtype(), std::nullopt);
    if (!natural)
      throw type_error("Variable: data must be real numbers (float, int or bool), got an array of dtype " +
                       py::str(arr.dtype()).cast<std::string>());
    t = copy_to_tensor(arr, want.value_or(*natural));
  }
  return make_var(std::move(t), requires_grad);
}

py::object grad_of(const Var& v) {
  if (!v->grad) return py::none();
  if (v->grad->requires_grad) return py::cast(v->grad);  // create_graph: a differentiable Variable
  return to_numpy(v->grad->data);
}

void set_grad(const Var& v, py::handle g) {
  if (g.is_none()) {
    v->grad = nullptr;
    return;
  }
  Var gv = to_var(g, v->dtype(), "grad");
  if (gv->shape() != v->shape())
    throw value_error("grad: assigned gradient has shape " + shape_str(gv->shape()) + " but the Variable has shape " +
                      shape_str(v->shape()));
  v->grad = gv->requires_grad ? gv : make_var(gv->dtype() == v->dtype() ? gv->data.clone() : kern::astype(gv->data, v->dtype()));
}

// The counterpart of cast_out: pybind11's generic dealloc walks every
// registered base type; a plain Variable has exactly one value and holder.
// Subclasses and unusual layouts go to pybind11's own dealloc.
destructor g_pybind11_dealloc = nullptr;

__attribute__((noinline)) void var_dealloc_general(PyObject* self);

// A dead plain Variable's memory: onto the free list, keeping its reference
// to the type (cast_out reuses both), or back to Python when the list is
// full. (Python run by the holder's release may have revived it, or freed
// other objects onto the list: both are checked here, after that release.)
inline void free_object_memory(PyObject* self) {
  if (g_free_objects.count < FreeObjects::kMax && Py_REFCNT(self) == 0) {
    g_free_objects.slots[g_free_objects.count++] = self;
  } else {
    g_var_type->tp_free(self);
    Py_DECREF(g_var_type);
  }
}

// Every scalar op frees one object, nearly always an op result (cast_out):
// the plain type and layout, not in pybind11's registry, no weak references,
// no pending Python error. That case is a straight line; everything else
// goes to var_dealloc_general.
void var_dealloc(PyObject* self) {
  auto* inst = reinterpret_cast<PyInstance*>(self);
  if (Py_TYPE(self) == g_var_type && inst->simple_layout && inst->simple_holder_constructed &&
      !inst->simple_instance_registered && !inst->has_patients && !inst->weakrefs && !PyErr_Occurred()) {
    Var& v = *std::launder(reinterpret_cast<Var*>(&inst->simple_value_holder[1]));
    if (v && v->py_object == self) v->py_object = nullptr;
    v.~Var();
    inst->simple_holder_constructed = false;
    inst->simple_value_holder[0] = nullptr;
    free_object_memory(self);
    return;
  }
  var_dealloc_general(self);
}

void var_dealloc_general(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  auto* inst = reinterpret_cast<PyInstance*>(self);
  if (!g_var_tinfo) {
    g_pybind11_dealloc(self);
    return;
  }
  if (type != g_var_type || !inst->simple_layout || inst->has_patients) {
    // The Variable may outlive this object as C++ only: forget the object.
    auto vh = inst->get_value_and_holder(g_var_tinfo, false);
    if (vh && vh.holder_constructed() && vh.holder<Var>() && vh.holder<Var>()->py_object == self)
      vh.holder<Var>()->py_object = nullptr;
    g_pybind11_dealloc(self);
    return;
  }
  if (inst->simple_holder_constructed) {
    Var& v = *std::launder(reinterpret_cast<Var*>(&inst->simple_value_holder[1]));
    if (inst->simple_instance_registered) {  // made by pybind11 (Variable(...), a def's result)
      auto vh = inst->get_value_and_holder(g_var_tinfo, false);
      if (!py::detail::deregister_instance(inst, vh.value_ptr(), g_var_tinfo))
        py::pybind11_fail("tapegrad: tried to deallocate an unregistered Variable instance");
      inst->simple_instance_registered = false;
    }
    if (v && v->py_object == self) v->py_object = nullptr;
    // A freed from_numpy buffer runs Python (Py_DECREF): keep a pending error.
    std::optional<py::error_scope> keep_error;
    if (PyErr_Occurred()) keep_error.emplace();
    v.~Var();
    inst->simple_holder_constructed = false;
  }
  inst->simple_value_holder[0] = nullptr;
  if (inst->weakrefs) PyObject_ClearWeakRefs(self);
  free_object_memory(self);  // (type is g_var_type here: others returned above)
}

// ----- custom ops ----------------------------------------------------------------
// A node whose rules are Python functions (tapegrad.custom_op). The sweep
// runs without the GIL and takes it back here: the only Python that runs
// inside a sweep.

// A read-only NumPy view for a rule (rules must not change saved values).
py::array rule_view(const Tensor& t) {
  py::array a = to_numpy(t);
  a.attr("setflags")(py::arg("write") = false);
  return a;
}

struct CustomNode final : Node {
  py::object op;  // the tapegrad.custom_op
  std::string op_name;
  SmallVec<Shape, 2> in_shapes;
  SmallVec<DType, 2> in_dtypes;

  ~CustomNode() override {
    if (!Py_IsInitialized()) {
      op.release();  // the interpreter is gone: leak rather than crash
      return;
    }
    py::gil_scoped_acquire gil;  // nodes may die in a sweep, without the GIL
    op = py::object();
  }
  const char* name() const override { return op_name.c_str(); }

  void refuse_second_order() const {
    if (grad_enabled())
      throw not_implemented_error("custom op '" + op_name + "': second-order derivatives (create_graph, hessian, "
                                  "hvp) through a custom op are not supported: its rules run on NumPy arrays");
  }
  py::tuple rule_args(const py::array& first) {
    py::tuple args(1 + saved.size());
    args[0] = first;
    args[1] = rule_view(tensor(saved.size() - 1));  // ans (saved last)
    for (size_t i = 0; i + 1 < saved.size(); ++i) args[2 + i] = rule_view(tensor(i));
    return args;
  }
  // A rule's result as a Variable of `dtype` summed down to `shape`.
  Var result(py::handle r, const Shape& shape, DType dtype, const char* what, size_t i, int nb) {
    py::array a = as_ndarray(r);
    if (!float_dtype_for(a.dtype(), dtype))
      throw type_error("custom op '" + op_name + "': the " + what + " rule returned dtype " +
                       py::str(a.dtype()).cast<std::string>() + " for input " + std::to_string(i));
    Var v = make_var(copy_to_tensor(a, dtype));
    if (v->shape() == shape) return v;
    // A result that broadcasts to the expected shape is broadcast; one that
    // the expected shape broadcasts to (an un-reduced broadcast) is summed.
    Shape common;
    try {
      common = kern::broadcast_shapes(v->shape(), shape, "custom op");
    } catch (const value_error&) {
    }
    if (common == shape) return broadcast_to(v, shape);
    if (common == v->shape() && v->shape().size() >= shape.size()) return sum_to(v, shape, nb);
    throw value_error("custom op '" + op_name + "': the " + what + " rule returned shape " + shape_str(v->shape()) +
                      " for input " + std::to_string(i) + ", expected " + shape_str(shape));
  }

  Grads vjp(const Var& g) override {
    refuse_second_order();
    py::gil_scoped_acquire gil;
    py::object rule = op.attr("vjp_rule");
    if (rule.is_none())
      throw not_implemented_error("custom op '" + op_name + "' has no VJP rule (reverse mode): define one with "
                                  "@" + op_name + ".defvjp");
    py::object r = rule(*rule_args(rule_view(g->data)));
    size_t n = in_shapes.size();
    bool seq = py::isinstance<py::tuple>(r) || py::isinstance<py::list>(r);
    if (n > 1 && !seq)
      throw value_error("custom op '" + op_name + "': the VJP rule must return a tuple of " + std::to_string(n) +
                        " gradients (one per input), got " + type_name(r));
    py::tuple rs = seq ? py::tuple(r) : py::make_tuple(r);
    if (rs.size() != n)
      throw value_error("custom op '" + op_name + "': the VJP rule returned " + std::to_string(rs.size()) +
                        " gradients for " + std::to_string(n) + " inputs");
    int nb = batch_dims(g);
    Grads out;
    for (size_t i = 0; i < n; ++i) {
      if (!needs(i) || rs[i].is_none()) {
        out.push_back(nullptr);
        continue;
      }
      Shape want(g->shape().begin(), g->shape().begin() + nb);
      want.insert(want.end(), in_shapes[i].begin(), in_shapes[i].end());
      out.push_back(result(rs[i], want, in_dtypes[i], "VJP", i, nb));
    }
    return out;
  }

  Var jvp(const Grads& ts, int nb) override {
    refuse_second_order();
    py::gil_scoped_acquire gil;
    py::object rules = op.attr("jvp_rules");
    if (rules.is_none())
      throw not_implemented_error("custom op '" + op_name + "' has no JVP rule (forward mode): define one with "
                                  "@" + op_name + ".defjvp");
    Var total;
    for (size_t i = 0; i < ts.size(); ++i) {
      if (!ts[i]) continue;
      py::object rule = py::tuple(rules)[i];
      if (rule.is_none())
        throw not_implemented_error("custom op '" + op_name + "' has no JVP rule for input " + std::to_string(i));
      Shape want(ts[i]->shape().begin(), ts[i]->shape().begin() + nb);
      want.insert(want.end(), out_shape.begin(), out_shape.end());
      Var c = result(rule(*rule_args(rule_view(ts[i]->data))), want, tensor(saved.size() - 1).dtype, "JVP", i, nb);
      total = total ? add(total, c) : c;
    }
    return total;
  }
};

Var custom_record(py::object op, const std::vector<Var>& inputs, py::handle out_array) {
  std::string op_name = py::str(op.attr("name")).cast<std::string>();
  py::array arr = as_ndarray(out_array);
  std::optional<DType> dt = float_dtype_for(arr.dtype(), std::nullopt);
  if (!dt) throw type_error("custom op '" + op_name + "': the forward function must return real numbers");
  Var out = make_var(copy_to_tensor(arr, *dt));
  bool any = false;
  for (const Var& v : inputs) any = any || v->requires_grad;
  if (!grad_enabled() || !any) return out;
  auto n = make_ref<CustomNode>();
  n->op = std::move(op);
  n->op_name = std::move(op_name);
  n->out_shape = out->shape();
  for (const Var& v : inputs) {
    n->next.push_back(v->requires_grad ? grad_edge(v) : nullptr);
    n->in_shapes.push_back(v->shape());
    n->in_dtypes.push_back(v->dtype());
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    n->saved.push_back(Saved{inputs[i]->data, inputs[i]->data.version(), static_cast<int16_t>(i), true});
  n->saved.push_back(Saved{out->data, out->data.version(), -1, true});
  out->requires_grad = true;
  out->grad_fn = std::move(n);
  return out;
}

// ----- raw CPython fast paths ----------------------------------------------------
// Operators and one-argument functions are what a scalar-heavy program calls
// millions of times; as raw number slots / METH_O functions they skip the
// slot-wrapper lookup and pybind11's overload dispatcher.

// A Python float, or an int that a double holds exactly enough to convert as
// NumPy does (bools and NumPy scalars take the general path).
bool python_number(PyObject* o, double* c) {
  if (PyFloat_CheckExact(o)) {
    *c = PyFloat_AS_DOUBLE(o);
    return true;
  }
  if (PyLong_CheckExact(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
      PyErr_Clear();
      return false;
    }
    *c = static_cast<double>(v);
    return true;
  }
  return false;
}

constexpr ScalarOp kNoScalarOp = static_cast<ScalarOp>(-1);

// F(a, b) for two operands; with one float Variable and a Python number,
// the scalar op (XC: x op c, CX: c op x) when the operator has one.
template <Var (*F)(const Var&, const Var&), ScalarOp XC = kNoScalarOp, ScalarOp CX = kNoScalarOp>
PyObject* nb_binary(PyObject* a, PyObject* b) {
  return guarded([&]() -> PyObject* {
    bool va = is_var(a), vb = is_var(b);
    if (va && vb) return cast_out(F(holder_of(a), holder_of(b)));
    double c;
    if (va) {
      const Var& x = holder_of(a);
      if constexpr (XC != kNoScalarOp)
        if (is_float(x->dtype()) && python_number(b, &c)) return cast_out(scalar_op_t<XC>(x, c));
      Var o = try_to_var(b, x->dtype());
      if (!o) Py_RETURN_NOTIMPLEMENTED;
      return cast_out(F(x, o));
    }
    const Var& x = holder_of(b);
    if constexpr (CX != kNoScalarOp)
      if (is_float(x->dtype()) && python_number(a, &c)) return cast_out(scalar_op_t<CX>(x, c));
    Var o = try_to_var(a, x->dtype());
    if (!o) Py_RETURN_NOTIMPLEMENTED;
    return cast_out(F(o, x));
  });
}

PyObject* nb_power(PyObject* a, PyObject* b, PyObject* mod) {
  if (mod != Py_None) Py_RETURN_NOTIMPLEMENTED;
  return nb_binary<pow>(a, b);
}

PyObject* nb_negative(PyObject* a) {
  return guarded([&] { return cast_out(neg(holder_of(a))); });
}

struct UnaryEntry {
  const char* name;
  Var (*fn)(const Var&);
  const char* doc;
};
const UnaryEntry kUnary[] = {
    {"negative", neg, "-x"},
    {"exp", exp, "e**x"},
    {"log", log, "Natural logarithm."},
    {"log1p", log1p, "log(1 + x), accurate for small x."},
    {"sqrt", sqrt, "Square root; sqrt'(0) = inf, as NumPy's 1/(2*sqrt(0))."},
    {"sin", sin, "Sine."},
    {"cos", cos, "Cosine."},
    {"tanh", tanh, "Hyperbolic tangent."},
    {"sigmoid", sigmoid, "1 / (1 + exp(-x)), stable for large |x|."},
    {"relu", relu, "max(x, 0); relu'(0) = 0."},
    {"abs", abs, "|x|; abs'(0) = 0."},
};
constexpr size_t kNumUnary = sizeof(kUnary) / sizeof(kUnary[0]);

template <size_t I>
PyObject* unary_fn(PyObject*, PyObject* arg) {
  return guarded([&] {
    const UnaryEntry& e = kUnary[I];
    return cast_out(e.fn(is_var(arg) ? holder_of(arg) : to_var(arg, std::nullopt, e.name)));
  });
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
    if (nargs > 3) throw type_error("linear() takes at most 3 arguments (" + std::to_string(nargs) + " given)");
    for (Py_ssize_t i = 0; i < nargs; ++i) a[i] = args[i];
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
      const char* key = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, k));
      if (!key) {  // not encodable: no such keyword
        PyErr_Clear();
        throw type_error("linear() got an unexpected keyword argument");
      }
      int slot = -1;
      for (int j = 0; j < 3; ++j)
        if (std::strcmp(key, kNames[j]) == 0) slot = j;
      if (slot < 0) throw type_error(std::string("linear() got an unexpected keyword argument '") + key + "'");
      if (slot < nargs) throw type_error(std::string("linear() got multiple values for argument '") + key + "'");
      a[slot] = args[nargs + k];
    }
    if (!a[0] || !a[1])
      throw type_error(std::string("linear() missing required argument ") + (a[0] ? "'weight' (pos 2)" : "'x' (pos 1)"));
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
  });
}

PyMethodDef kLinearDef[] = {
    {"linear", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&linear_fn)), METH_FASTCALL | METH_KEYWORDS,
     "linear(x, weight, bias=None)\n--\n\nx @ weight + bias in one primitive (tapegrad.nn.Linear's forward): x has shape "
     "(..., K), weight (K, N), bias (N,) or None. One GEMM accumulating onto the bias rows; the backward is "
     "dx = g weightᵀ, dweight = xᵀ g, dbias = column sums of g."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "tapegrad's C++ core: Variable, primitive ops and the reverse sweep";

  py::register_exception_translator([](std::exception_ptr p) {
    if (p && !set_python_error(p)) std::rethrow_exception(p);
  });

  py::class_<Node, NodeRef>(m, "Node", "A recorded operation (the grad_fn of a Variable).")
      .def_property_readonly("name", [](const Node& n) { return std::string(n.name()); })
      .def_property_readonly("next_functions", [](const Node& n) { return n.next.to_vector(); })
      .def("__repr__", [](const Node& n) { return std::string("<tapegrad.Node ") + n.name() + ">"; });

  py::class_<VariableImpl, Var> V(m, "Variable", R"doc(
An n-d float32/float64 array that records the operations applied to it.

Variable(data, requires_grad=False, dtype=None) copies `data`; use
tapegrad.from_numpy(arr) to share a NumPy array's buffer instead.
)doc");
  g_var_type = reinterpret_cast<PyTypeObject*>(V.ptr());
  g_var_tinfo = py::detail::get_type_info(typeid(VariableImpl));
  if (g_var_type->tp_basicsize != static_cast<Py_ssize_t>(sizeof(PyInstance)))
    throw std::runtime_error("tapegrad: the Variable type's instance size differs from pybind11's instance struct");

  V.def(py::init(&construct), py::arg("data"), py::arg("requires_grad") = false, py::arg("dtype") = py::none())
      // ----- data access
      .def_property("data", [](const Var& v) { return to_numpy(v->data); },
                    [](const Var& v, py::handle arr) {
                      // Replaces the values (keeping the dtype) without recording, like torch's `.data =`.
                      Tensor t = to_var(arr, v->dtype(), "data")->data;
                      v->data = t.dtype == v->dtype() ? t.clone() : kern::astype(t, v->dtype());
                    })
      .def("numpy", [](const Var& v) { return to_numpy(v->data); }, "The values as a NumPy array sharing this Variable's buffer.")
      .def("__array__", [](const Var& v, py::handle dtype, py::handle copy) -> py::object {
             py::object a = to_numpy(v->data);
             if (!dtype.is_none()) a = a.attr("astype")(dtype, py::arg("copy") = false);
             if (!copy.is_none() && copy.cast<bool>()) a = a.attr("copy")();
             return a;
           }, py::arg("dtype") = py::none(), py::arg("copy") = py::none())
      .def("item", [](const Var& v) { return v->data.item(); })
      .def("__float__", [](const Var& v) { return v->data.item(); })
      .def("__bool__", [](const Var& v) {
        if (v->data.numel() != 1)
          throw value_error("The truth value of a Variable with more than one element is ambiguous (shape " +
                            shape_str(v->shape()) + ")");
        return v->data.item() != 0;
      })
      .def("__len__", [](const Var& v) {
        if (v->shape().empty()) throw type_error("len() of a 0-d Variable");
        return v->shape()[0];
      })
      .def("__hash__", [](py::handle self) { return reinterpret_cast<intptr_t>(self.ptr()) >> 4; })
      .def_property_readonly("shape", [](const Var& v) { return py::reinterpret_steal<py::tuple>(py::cast(v->shape()).release()); })
      .def_property_readonly("ndim", [](const Var& v) { return v->data.ndim(); })
      .def_property_readonly("size", [](const Var& v) { return v->data.numel(); })
      .def_property_readonly("dtype", [](const Var& v) { return np_dtype(v->dtype()); })
      .def_property_readonly("_version", [](const Var& v) { return v->data.version(); })
      // ----- autograd state
      .def_property("requires_grad", [](const Var& v) { return v->requires_grad; },
                    [](const Var& v, bool rg) {
                      if (!v->is_leaf())
                        throw graph_error("requires_grad can only be changed on leaf Variables; use .detach() on "
                                          "the result of an op");
                      v->requires_grad = rg;
                    })
      .def_property_readonly("is_leaf", [](const Var& v) { return v->is_leaf(); })
      .def_property_readonly("grad_fn", [](const Var& v) { return v->grad_fn; })
      .def_property("grad", &grad_of, &set_grad)
      .def("zero_grad", [](const Var& v) { v->grad = nullptr; }, "Reset .grad to None.")
      .def("retain_grad", [](const Var& v) {
        if (!v->requires_grad) throw graph_error("retain_grad: this Variable does not require grad");
        if (v->is_leaf()) return;
        v->retains_grad = true;
        v->grad_fn->retained = v;
      })
      .def_property_readonly("retains_grad", [](const Var& v) { return v->retains_grad; })
      .def("detach", [](const Var& v) { return make_var(v->data); },
           "A Variable sharing this one's buffer, outside the graph.")
      .def("backward", [](const Var& self, py::handle grad, py::handle retain_graph, bool create_graph) {
             Var seed = make_seed(self, grad);
             bool retain = retain_graph.is_none() ? create_graph : retain_graph.cast<bool>();
             run_backward({self}, {seed}, retain, create_graph);
           }, py::arg("grad") = py::none(), py::arg("retain_graph") = py::none(), py::arg("create_graph") = false,
           "Reverse sweep from this Variable; leaf gradients accumulate into .grad.")
      .def("astype", [](const Var& v, py::handle dt) { return astype(v, parse_float_dtype(dt, "astype")); })
      // ----- operators
      .def("__add__", &binop<add>).def("__radd__", &rbinop<add>)
      .def("__sub__", &binop<sub>).def("__rsub__", &rbinop<sub>)
      .def("__mul__", &binop<mul>).def("__rmul__", &rbinop<mul>)
      .def("__truediv__", &binop<div>).def("__rtruediv__", &rbinop<div>)
      .def("__pow__", &binop<pow>).def("__rpow__", &rbinop<pow>)
      .def("__matmul__", &binop<matmul_nogil>).def("__rmatmul__", &rbinop<matmul_nogil>)
      .def("__neg__", [](const Var& v) { return neg(v); })
      .def("__pos__", [](const Var& v) { return v; })
      .def("__abs__", [](const Var& v) { return abs(v); })
      .def("__iadd__", [](const Var& v, py::handle o) { return inplace_op<kern::BinaryOp::Add>(v, o, "+="); })
      .def("__isub__", [](const Var& v, py::handle o) { return inplace_op<kern::BinaryOp::Sub>(v, o, "-="); })
      .def("__imul__", [](const Var& v, py::handle o) { return inplace_op<kern::BinaryOp::Mul>(v, o, "*="); })
      .def("__itruediv__", [](const Var& v, py::handle o) { return inplace_op<kern::BinaryOp::Div>(v, o, "/="); })
      .def("__lt__", &compare_op<kern::CompareOp::Lt>)
      .def("__le__", &compare_op<kern::CompareOp::Le>)
      .def("__gt__", &compare_op<kern::CompareOp::Gt>)
      .def("__ge__", &compare_op<kern::CompareOp::Ge>)
      .def("__eq__", &compare_op<kern::CompareOp::Eq>)
      .def("__ne__", &compare_op<kern::CompareOp::Ne>)
      .def("__getitem__", &getitem)
      // ----- methods mirroring the functions
      .def("sum", [](const Var& v, py::handle axis, bool keepdims) { return sum(v, normalized_axes(v, axis, "sum"), keepdims); },
           py::arg("axis") = py::none(), py::arg("keepdims") = false)
      .def("mean", [](const Var& v, py::handle axis, bool keepdims) { return mean_warn(v, normalized_axes(v, axis, "mean"), keepdims); },
           py::arg("axis") = py::none(), py::arg("keepdims") = false)
      .def("max", [](const Var& v, py::handle axis, bool keepdims) { return max(v, normalized_axes(v, axis, "max"), keepdims); },
           py::arg("axis") = py::none(), py::arg("keepdims") = false)
      .def("min", [](const Var& v, py::handle axis, bool keepdims) { return min(v, normalized_axes(v, axis, "min"), keepdims); },
           py::arg("axis") = py::none(), py::arg("keepdims") = false)
      .def("reshape", [](const Var& v, py::args shape) { return reshape(v, shape_from_args(shape)); })
      .def("transpose", [](const Var& v, py::args axes) {
        if (axes.size() == 0 || (axes.size() == 1 && axes[0].is_none())) return transpose(v, std::nullopt);
        return transpose(v, shape_from_args(axes));
      })
      .def_property_readonly("T", [](const Var& v) { return transpose(v, std::nullopt); })
      .def("exp", [](const Var& v) { return exp(v); })
      .def("log", [](const Var& v) { return log(v); })
      .def("sqrt", [](const Var& v) { return sqrt(v); })
      .def("tanh", [](const Var& v) { return tanh(v); })
      .def("sigmoid", [](const Var& v) { return sigmoid(v); })
      .def("relu", [](const Var& v) { return relu(v); })
      .def("abs", [](const Var& v) { return abs(v); })
      .def("clip", [](py::handle v, py::handle lo, py::handle hi) { return clip_any(v, lo, hi); },
           py::arg("a_min") = py::none(), py::arg("a_max") = py::none());

  // ----- functions ---------------------------------------------------------------
  if (PyModule_AddFunctions(m.ptr(), unary_method_table(std::make_index_sequence<kNumUnary>())) != 0)
    throw py::error_already_set();
  if (PyModule_AddFunctions(m.ptr(), kLinearDef) != 0) throw py::error_already_set();

#define TG_BINARY_FN(PYNAME, FN, DOC) \
  m.def(PYNAME, [](py::handle a, py::handle b) { auto [x, y] = operands(a, b, PYNAME); return FN(x, y); }, py::arg("a"), py::arg("b"), DOC)
  TG_BINARY_FN("add", add, "a + b");
  TG_BINARY_FN("subtract", sub, "a - b");
  TG_BINARY_FN("multiply", mul, "a * b");
  TG_BINARY_FN("divide", div, "a / b");
  TG_BINARY_FN("power", pow, "a ** b");
  TG_BINARY_FN("maximum", maximum, "Elementwise max; ties split the gradient evenly.");
  TG_BINARY_FN("minimum", minimum, "Elementwise min; ties split the gradient evenly.");
  TG_BINARY_FN("matmul", matmul_nogil, "Matrix product with NumPy semantics.");
#undef TG_BINARY_FN

  m.def("clip", &clip_any, py::arg("x"), py::arg("a_min"), py::arg("a_max"),
        "Clip to [a_min, a_max]; the gradient passes where a_min <= x <= a_max.");
  m.def("where", [](py::handle cond, py::handle a, py::handle b) {
        py::array_t<bool, py::array::c_style | py::array::forcecast> c(numpy().attr("asarray")(cond, py::arg("dtype") = "bool"));
        Tensor ct = Tensor::empty(Shape(c.shape(), c.shape() + c.ndim()), DType::Bool);
        if (ct.nbytes()) std::memcpy(ct.raw(), c.data(), ct.nbytes());
        auto [x, y] = operands(a, b, "where");
        return where(ct, x, y);
      }, py::arg("condition"), py::arg("x"), py::arg("y"), "cond ? x : y, broadcast together.");

#define TG_REDUCE_FN(PYNAME, FN)                                                                              \
  m.def(PYNAME, [](py::handle x, py::handle axis, bool keepdims) {                                            \
        Var v = unary_arg(x, PYNAME);                                                                         \
        return FN(v, normalized_axes(v, axis, PYNAME), keepdims);                                             \
      }, py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false)
  TG_REDUCE_FN("sum", sum);
  TG_REDUCE_FN("mean", mean_warn);
  TG_REDUCE_FN("max", max);
  TG_REDUCE_FN("min", min);
  TG_REDUCE_FN("logsumexp", logsumexp);
#undef TG_REDUCE_FN

  m.def("softmax", [](py::handle x, int64_t axis) { return softmax(unary_arg(x, "softmax"), axis); }, py::arg("x"), py::arg("axis") = -1);
  m.def("_cross_entropy_labels", [](py::handle logits, py::handle labels, const std::string& reduction) {
        Var z = unary_arg(logits, "cross_entropy");
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
      }, py::arg("logits"), py::arg("labels"), py::arg("reduction") = "none",
      "Softmax cross-entropy of logits (N, C) against integer labels (N,), per row or reduced ('mean', 'sum'), "
      "one fused primitive (tapegrad.nn.cross_entropy uses it).");
  m.def("_mse_loss", [](py::handle x, py::handle target, bool mean) {
        Var v = unary_arg(x, "mse_loss");
        // A Variable target is copied: the node keeps the target, and an
        // in-place update of the Variable must not change the gradient.
        Tensor t = is_var(target) ? holder_of(target)->data.clone() : to_var(target, v->dtype(), "mse_loss")->data;
        return mse_loss(v, t, mean);
      }, py::arg("input"), py::arg("target"), py::arg("mean"),
      "mean (or sum) of (input - target)^2 over all elements, target a constant: one fused primitive "
      "(tapegrad.nn.mse_loss uses it).");
  m.def("log_softmax", [](py::handle x, int64_t axis) { return log_softmax(unary_arg(x, "log_softmax"), axis); }, py::arg("x"), py::arg("axis") = -1);
  m.def("reshape", [](py::handle x, py::handle shape) { return reshape(unary_arg(x, "reshape"), parse_shape(shape)); }, py::arg("x"), py::arg("shape"));
  m.def("transpose", [](py::handle x, py::handle axes) {
        Var v = unary_arg(x, "transpose");
        return transpose(v, axes.is_none() ? std::nullopt : std::optional<Axes>(parse_shape(axes)));
      }, py::arg("x"), py::arg("axes") = py::none());
  m.def("broadcast_to", [](py::handle x, py::handle shape) { return broadcast_to(unary_arg(x, "broadcast_to"), parse_shape(shape)); }, py::arg("x"), py::arg("shape"));
  m.def("concatenate", [](py::handle seq, py::handle axis) {
        std::vector<Var> xs = var_list(seq, "concatenate");
        if (axis.is_none()) {
          for (Var& v : xs) v = reshape(v, Shape{-1});
          return concatenate(xs, 0);
        }
        if (!is_integer(axis)) throw type_error("concatenate: axis must be an int or None, got " + type_name(axis));
        return concatenate(xs, axis.cast<int64_t>());
      }, py::arg("arrays"), py::arg("axis") = 0);
  m.def("stack", [](py::handle seq, int64_t axis) { return stack(var_list(seq, "stack"), axis); }, py::arg("arrays"), py::arg("axis") = 0);
  m.def("astype", [](py::handle x, py::handle dt) { return astype(unary_arg(x, "astype"), parse_float_dtype(dt, "astype")); }, py::arg("x"), py::arg("dtype"));
  m.def("from_numpy", &from_numpy, py::arg("array"), "A Variable sharing the NumPy array's buffer (no copy).");

  m.def("is_grad_enabled", &grad_enabled);
  m.def("_set_grad_enabled", [](bool on) { bool prev = grad_enabled(); set_grad_enabled(on); return prev; });
  m.def("_backward", [](const std::vector<Var>& roots, py::list grads, bool retain, bool create) {
        std::vector<Var> seeds;
        for (size_t i = 0; i < roots.size(); ++i) seeds.push_back(make_seed(roots[i], grads[i]));
        run_backward(roots, seeds, retain, create);
      }, py::arg("roots"), py::arg("grads"), py::arg("retain_graph") = false, py::arg("create_graph") = false);
  m.def("_grad", [](const std::vector<Var>& outputs, const std::vector<Var>& inputs, py::list grads, bool retain,
                    bool create, int nb) {
        if (grads.size() != outputs.size()) throw value_error("grad: one cotangent per output is needed");
        std::vector<Var> seeds;
        for (size_t i = 0; i < outputs.size(); ++i) {
          if (!outputs[i]->requires_grad)
            throw graph_error("grad: output " + std::to_string(i) + " does not depend on an input that requires grad");
          seeds.push_back(make_seed(outputs[i], grads[i], nb, "vjp"));
        }
        BackwardOptions opt{retain, create, {}};
        std::vector<Var> res;
        {
          py::gil_scoped_release nogil;
          res = backward(outputs, seeds, opt, inputs, nullptr);
        }
        return res;
      }, py::arg("outputs"), py::arg("inputs"), py::arg("grads"), py::arg("retain_graph") = false,
      py::arg("create_graph") = false, py::arg("batch_dims") = 0,
      "Gradients of outputs with respect to inputs (None where unreached), without touching .grad. With "
      "batch_dims=1 each cotangent carries a leading batch axis (k cotangents in one sweep).");

  // jacobian()'s sweeps seeded with rows start..stop of the identity, kept
  // structured inside the sweep (see Basis in autograd.hpp): no seed arrays.
  auto check_rows = [](int64_t start, int64_t stop, int64_t size, const char* what) {
    if (start < 0 || stop <= start || stop > size)
      throw value_error(std::string(what) + ": basis rows " + std::to_string(start) + ".." + std::to_string(stop) +
                        " out of range for size " + std::to_string(size));
  };
  m.def("_grad_basis", [check_rows](const Var& output, const std::vector<Var>& inputs, int64_t start, int64_t stop,
                                    bool retain) {
        if (!output->requires_grad)
          throw graph_error("jacobian: the output does not depend on an input that requires grad");
        if (inputs.empty()) throw value_error("jacobian: no inputs");
        check_rows(start, stop, output->data.numel(), "jacobian");
        BackwardOptions opt{retain, false, Basis{start, stop}};
        std::vector<Var> res;
        {
          py::gil_scoped_release nogil;
          res = backward({output}, {}, opt, inputs, nullptr);
        }
        return res;
      }, py::arg("output"), py::arg("inputs"), py::arg("start"), py::arg("stop"), py::arg("retain_graph") = false,
      "Rows start..stop of the Jacobian of output (flattened) with respect to each input, one reverse sweep "
      "seeded with those rows of the identity (None where unreached).");
  m.def("_forward_basis", [check_rows](const Var& output, const Var& input, int64_t start, int64_t stop) {
        check_rows(start, stop, input->data.numel(), "jacobian");
        std::vector<Var> res;
        {
          py::gil_scoped_release nogil;
          res = forward({output}, {input}, {}, 1, false, Basis{start, stop});
        }
        return res[0];
      }, py::arg("output"), py::arg("input"), py::arg("start"), py::arg("stop"),
      "Columns start..stop of the Jacobian of output with respect to input (batch axis first), one forward "
      "sweep seeded with those rows of the identity.");

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

  m.def("set_num_threads", [](int n) {
        if (n < 1 || n > 1024) throw value_error("set_num_threads: n must be in [1, 1024], got " + std::to_string(n));
        tg::set_num_threads(n);
        scipy_openblas_set_num_threads(n);
      }, py::arg("n"), "Threads used by tapegrad's kernels: its elementwise/reduction pool and its BLAS (OpenBLAS).");
  m.def("_set_pool_threads", [](int n) {
        if (n < 1 || n > 1024) throw value_error("_set_pool_threads: n must be in [1, 1024], got " + std::to_string(n));
        tg::set_num_threads(n);
      }, py::arg("n"), "Threads of tapegrad's own pool only (not the BLAS's); for experiments.");
  m.def("get_num_threads", []() { return tg::get_num_threads(); },
        "Threads used by tapegrad's kernels (its pool and its BLAS).");

  // ----- fused optimizer steps (tapegrad.optim drives them) -----
  // One call per optimizer step for all parameters: each parameter with a
  // .grad is updated in place by one fused kernel; parameters without one
  // are skipped. states[i] is the parameter's state dict (the optimizer's
  // own, so state_dict() sees it); buffers are created in it on first use.
  auto param_list = [](py::handle params, py::handle states, const char* op) {
    py::list ps = py::reinterpret_borrow<py::list>(params), ss = py::reinterpret_borrow<py::list>(states);
    if (!py::isinstance<py::list>(params) || !py::isinstance<py::list>(states) || ps.size() != ss.size())
      throw type_error(std::string(op) + ": expected two lists of equal length (parameters, state dicts)");
    for (size_t i = 0; i < ps.size(); ++i) {
      if (!is_var(ps[i])) throw type_error(std::string(op) + ": parameter " + std::to_string(i) + " is not a Variable");
      if (!py::isinstance<py::dict>(ss[i])) throw type_error(std::string(op) + ": state " + std::to_string(i) + " is not a dict");
    }
    return std::make_pair(ps, ss);
  };
  auto buffer = [](py::dict st, const char* key, const Var& p) -> Tensor {
    if (!st.contains(key)) st[key] = py::reinterpret_steal<py::object>(cast_out(make_var(Tensor::zeros(p->shape(), p->dtype()))));
    py::handle b = st[key];
    if (!is_var(b)) throw type_error(std::string("optimizer state ") + key + " is not a Variable");
    return holder_of(b)->data;
  };
  m.def("_sgd_steps", [param_list, buffer](py::handle params, py::handle states, double lr, double momentum,
                                           bool nesterov, double wd) {
        auto [ps, ss] = param_list(params, states, "SGD");
        for (size_t i = 0; i < ps.size(); ++i) {
          const Var& p = holder_of(ps[i]);
          if (!p->grad) continue;
          Tensor b;
          if (momentum != 0) b = buffer(ss[i].cast<py::dict>(), "momentum_buffer", p);
          optim::sgd_step(*p, p->grad->data, momentum != 0 ? &b : nullptr, lr, momentum, nesterov, wd);
        }
      }, py::arg("params"), py::arg("states"), py::arg("lr"), py::arg("momentum"), py::arg("nesterov"),
      py::arg("weight_decay"), "One fused SGD update of every parameter that has a .grad (in place).");
  m.def("_adam_steps", [param_list, buffer](py::handle params, py::handle states, double lr, double beta1,
                                            double beta2, double eps, double wd, bool decoupled) {
        auto [ps, ss] = param_list(params, states, decoupled ? "AdamW" : "Adam");
        for (size_t i = 0; i < ps.size(); ++i) {
          const Var& p = holder_of(ps[i]);
          if (!p->grad) continue;
          py::dict st = ss[i].cast<py::dict>();
          Tensor m1 = buffer(st, "exp_avg", p), m2 = buffer(st, "exp_avg_sq", p);
          int64_t step = (st.contains("step") ? st["step"].cast<int64_t>() : 0) + 1;
          optim::adam_step(*p, p->grad->data, m1, m2, step, lr, beta1, beta2, eps, wd, decoupled);
          st["step"] = step;
        }
      }, py::arg("params"), py::arg("states"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("decoupled"),
      "One fused Adam/AdamW update of every parameter that has a .grad (in place; its exp_avg and exp_avg_sq "
      "too, created in its state dict on first use, and its step count).");

  m.def("_custom_record", &custom_record, py::arg("op"), py::arg("inputs"), py::arg("output"),
        "Record a tapegrad.custom_op application (its forward already computed) on the tape.");
  m.def("_forward", [](const std::vector<Var>& outputs, const std::vector<Var>& inputs, py::list tangents, int nb,
                       bool create) {
        if (tangents.size() != inputs.size()) throw value_error("jvp: one tangent per input is needed");
        if (inputs.empty()) throw value_error("jvp: no inputs");
        std::vector<Var> ts;
        Shape batch;
        for (size_t i = 0; i < inputs.size(); ++i) {
          Var t = to_var(tangents[i], inputs[i]->dtype(), "jvp");
          const Shape& s = t->shape();
          const Shape& want = inputs[i]->shape();
          bool ok = static_cast<int>(s.size()) == nb + static_cast<int>(want.size()) &&
                    std::equal(want.begin(), want.end(), s.begin() + nb);
          if (ok && i == 0) batch = Shape(s.begin(), s.begin() + nb);
          ok = ok && std::equal(batch.begin(), batch.end(), s.begin());
          if (!ok)
            throw value_error("jvp: tangent " + std::to_string(i) + " has shape " + shape_str(s) + " but its primal has shape " +
                              shape_str(want) + (nb ? " (expected batch + primal shape)" : ""));
          if (t->dtype() != inputs[i]->dtype()) t = make_var(kern::astype(t->data, inputs[i]->dtype()));
          ts.push_back(t);
        }
        std::vector<Var> res;
        {
          py::gil_scoped_release nogil;
          res = forward(outputs, inputs, ts, nb, create);
        }
        return res;
      }, py::arg("outputs"), py::arg("inputs"), py::arg("tangents"), py::arg("batch_dims") = 0,
      py::arg("create_graph") = false,
      "Forward sweep over the recorded tape: tangents of outputs given tangents of inputs (batch_dims leading "
      "batch axes: k directions in one sweep).");

  // Number slots straight to C++ (the pybind11 __add__ etc. above stay for
  // introspection and explicit calls; they do the same thing).
  // A second __init__ on an existing Variable is ignored. pybind11 does that
  // only for instances in its registry; op results are not there (cast_out),
  // and for them it would destroy the holder and build a new one while other
  // Variables may hold the old value.
  {
    py::object pybind11_init = V.attr("__init__");
    V.attr("__init__") = py::cpp_function(
        [pybind11_init](py::handle self, py::args args, py::kwargs kwargs) {
          if (PyObject_TypeCheck(self.ptr(), g_var_type)) {
            auto vh = reinterpret_cast<PyInstance*>(self.ptr())->get_value_and_holder(g_var_tinfo, false);
            if (vh && vh.holder_constructed()) return;
          }
          pybind11_init(self, *args, **kwargs);
        },
        py::name("__init__"), py::is_method(V), py::doc(py::str(pybind11_init.attr("__doc__")).cast<std::string>().c_str()));
  }
  // cast_out, var_dealloc and the object free list assume a non-GC type
  // (no py::dynamic_attr): fail at import rather than corrupt the GC lists.
  if (PyType_HasFeature(g_var_type, Py_TPFLAGS_HAVE_GC))
    throw std::runtime_error("tapegrad: the Variable type is garbage-collected; cast_out/var_dealloc need updating");
  g_pybind11_dealloc = g_var_type->tp_dealloc;
  g_var_type->tp_dealloc = &var_dealloc;
  PyNumberMethods* nb = g_var_type->tp_as_number;
  nb->nb_add = &nb_binary<add, ScalarOp::Add, ScalarOp::Add>;
  nb->nb_subtract = &nb_binary<sub, ScalarOp::Sub, ScalarOp::CLeftSub>;
  nb->nb_multiply = &nb_binary<mul, ScalarOp::Mul, ScalarOp::Mul>;
  nb->nb_true_divide = &nb_binary<div, ScalarOp::Div, ScalarOp::CLeftDiv>;
  nb->nb_matrix_multiply = &nb_binary<matmul_nogil>;
  nb->nb_power = &nb_power;
  nb->nb_negative = &nb_negative;
  PyType_Modified(g_var_type);
}
