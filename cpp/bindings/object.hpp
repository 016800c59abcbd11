// The Python Variable object's life: the pybind11 holder and type casters,
// the back pointer from a Variable to its Python object, cast_out (an op's
// result as a new object, from a free list of dead objects' memory) and the
// error mapping for raw CPython slots. Internal to the bindings.
//
// Everything here that a scalar op runs (is_var, holder_of, cast_out, the
// free list) is inline, so the hot callers in other files compile it in.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <exception>
#include <new>
#include <utility>

#include "tapegrad/autograd.hpp"

namespace py = pybind11;

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

namespace tgpy {
using namespace tg;

// The Variable type and its pybind11 type info (set once at import).
inline PyTypeObject* g_var_type = nullptr;
inline const py::detail::type_info* g_var_tinfo = nullptr;

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

// Any other layout, or a Variable whose __init__ never ran.
__attribute__((noinline)) const Var& holder_of_general(PyInstance* inst);  // (object.cpp)

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
  PyObject* slots[kMax] = {};
  int count = 0;
};
inline FreeObjects g_free_objects;

// A new Python Variable for an op's result. A result nobody else holds
// (use_count 1) cannot have a Python object yet, so we build the instance
// the way pybind11's init_instance does for a simple layout, minus its
// type-info lookups and its instance registry (see the Var type_caster).
inline PyObject* cast_out(Var v) {
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
// `op` names an allocator error that no op has named yet (see with_op).
bool set_python_error(std::exception_ptr p, const char* op = nullptr);  // (object.cpp)

// Runs f, turning C++ exceptions into Python ones (for raw CPython slots,
// which bypass pybind11's dispatcher); `op` names allocator errors, as
// with_op does, but inside the catch that is there anyway (the hot paths
// take no second handler).
template <class F>
PyObject* guarded(F&& f, const char* op = nullptr) {
  try {
    return f();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (...) {
    if (!set_python_error(std::current_exception(), op)) {
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

// Runs f under the name of the op the user called: an error of the
// allocator, which does not know it (shape_error, memory_error; see
// tensor.hpp), gets that name. Nothing runs unless one is thrown.
template <class F>
decltype(auto) with_op(const char* op, F&& f) {
  try {
    return f();
  } catch (const shape_error& e) {
    if (e.named) throw;
    throw shape_error(std::string(op) + ": " + e.what(), true);
  } catch (const memory_error& e) {
    if (e.named) throw;
    throw memory_error(std::string(op) + ": " + e.what(), true);
  }
}

// A pybind11 function body (a captureless lambda, given as a function
// pointer) run under with_op(op).
template <class R, class... A>
auto named(const char* op, R (*f)(A...)) {
  return [op, f](A... a) -> R { return with_op(op, [&]() -> R { return f(std::forward<A>(a)...); }); };
}

// Gives every pybind11 function of the module and method of its classes a
// last overload that takes any arguments, so that a call no overload takes
// raises a TypeError like CPython's ("sum(): got an unexpected keyword
// argument 'axes'") instead of pybind11's dump of C++ signatures (object.cpp).
void install_call_errors(py::module_& m);
// That TypeError's message: CPython's words when the arguments do not fit the
// signature `sig` (an inspect.Signature, or None), else their types.
std::string bad_call_message(const std::string& qualname, py::handle sig, bool method, const py::args& args,
                             const py::kwargs& kwargs);

// Variable(data, requires_grad, dtype): the constructor's body (variable.cpp).
Var construct_variable(py::handle data, py::handle requires_grad, py::handle dtype);

// Installs the Variable type's dealloc, its __init__ guard and its tp_init (object.cpp).
void install_object_hooks();

}  // namespace tgpy
