// Variable.__array_ufunc__ and __array_function__ (NEP 13/18) as C methods:
// the common calls of np.<name>(v, ...) go straight to the tapegrad function;
// everything else goes to the Python protocols in tapegrad/_numpy_dispatch.py,
// which build the tables below, own every error message and stay the
// definition of what a call does. A fast call is one the Python side would
// make with the same arguments (checked there: tests/test_numpy_dispatch.py),
// so no result or error changes; what the Python frames cost was most of the
// dispatch (benchmarks/README.md, "NumPy dispatch").
#include <unordered_map>
#include <vector>

#include "bindings.hpp"
#include "object.hpp"

namespace tgpy {
namespace {

// A ufunc's tapegrad function and, for the operators, the number protocol
// call that `v + w` makes (the Python side's `operator.add`).
enum class Slot { None, Add, Sub, Mul, Div, Pow, MatMul, Neg };
struct UfuncEntry {
  PyObject* fn;
  Slot slot;
};

// A NumPy function: its adapter, and when the adapter only renames (it passes
// NumPy's leading positional arguments and some keywords on, in tapegrad's
// order, and fills the rest with fixed values), the tapegrad function with
// that call plan. `fill[j]` is what the adapter passes for tapegrad argument j
// when the caller gives none (np._NoValue: NumPy requires it); `keywords` maps a
// keyword NumPy and tapegrad share to j; `npos` NumPy positionals map to
// tapegrad's first npos arguments.
struct FunctionEntry {
  PyObject* adapter = nullptr;
  PyObject* fn = nullptr;
  Py_ssize_t npos = 0;
  std::vector<PyObject*> fill;
  std::vector<std::pair<PyObject*, Py_ssize_t>> keywords;  // (interned name, argument index)
};

struct Tables {
  std::unordered_map<PyObject*, UfuncEntry> ufuncs;
  std::unordered_map<PyObject*, FunctionEntry> functions;
  PyObject* ufunc_fallback = nullptr;
  PyObject* function_fallback = nullptr;
  PyObject* no_value = nullptr;  // np._NoValue: the adapter turns it into a default
  PyObject* call = nullptr;      // "__call__"
  PyTypeObject* ndarray = nullptr;
  py::list keep;  // references to everything above (the tables live as long as the module)
};
Tables* g_tables = nullptr;

// The Python protocol with this call's arguments, self first (the slow path).
PyObject* fallback(PyObject* fn, PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  std::vector<PyObject*> stack(static_cast<size_t>(1 + nargs + nkw));
  stack[0] = self;
  for (Py_ssize_t i = 0; i < nargs + nkw; ++i) stack[static_cast<size_t>(1 + i)] = args[i];
  return PyObject_Vectorcall(fn, stack.data(), static_cast<size_t>(1 + nargs), kwnames);
}

PyObject* slot_call(Slot s, PyObject* const* in) {
  switch (s) {
    case Slot::Add: return PyNumber_Add(in[0], in[1]);
    case Slot::Sub: return PyNumber_Subtract(in[0], in[1]);
    case Slot::Mul: return PyNumber_Multiply(in[0], in[1]);
    case Slot::Div: return PyNumber_TrueDivide(in[0], in[1]);
    case Slot::Pow: return PyNumber_Power(in[0], in[1], Py_None);
    case Slot::MatMul: return PyNumber_MatrixMultiply(in[0], in[1]);
    case Slot::Neg: return PyNumber_Negative(in[0]);
    case Slot::None: break;
  }
  return nullptr;
}

// __array_ufunc__(self, ufunc, method, *inputs, **kwargs)
PyObject* array_ufunc_impl(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  Tables& t = *g_tables;
  if (nargs >= 2 && !(kwnames && PyTuple_GET_SIZE(kwnames)) &&
      (args[1] == t.call || (PyUnicode_Check(args[1]) && PyUnicode_Compare(args[1], t.call) == 0))) {
    auto hit = t.ufuncs.find(args[0]);
    if (hit != t.ufuncs.end()) {
      PyObject* const* in = args + 2;
      const Py_ssize_t nin = nargs - 2;
      const UfuncEntry& e = hit->second;
      // As `v + w` does, when the first input is a Variable and the second one a Variable or a
      // Python number (not an ndarray: the slot declines it and ndarray.__radd__ comes back here).
      if (e.slot != Slot::None) {
        const Py_ssize_t arity = e.slot == Slot::Neg ? 1 : 2;
        if (nin == arity && Py_TYPE(in[0]) == g_var_type) {
          PyTypeObject* t1 = arity == 2 ? Py_TYPE(in[1]) : g_var_type;
          if (t1 == g_var_type || t1 == &PyFloat_Type || t1 == &PyLong_Type) return slot_call(e.slot, in);
        }
        if (nin != arity) return fallback(t.ufunc_fallback, self, args, nargs, kwnames);
      }
      return PyObject_Vectorcall(e.fn, in, static_cast<size_t>(nin), nullptr);
    }
  }
  return fallback(t.ufunc_fallback, self, args, nargs, kwnames);
}

// The tapegrad call the adapter would make, or false when this call is not one it only renames.
bool plan_call(const FunctionEntry& e, PyObject* args, PyObject* kwargs, std::vector<PyObject*>& call) {
  const Py_ssize_t n = PyTuple_GET_SIZE(args);
  if (!e.fn || n > e.npos) return false;
  call.assign(e.fill.size(), nullptr);
  for (Py_ssize_t i = 0; i < n; ++i) call[static_cast<size_t>(i)] = PyTuple_GET_ITEM(args, i);
  if (kwargs) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(kwargs, &pos, &key, &value)) {
      Py_ssize_t j = -1;
      for (const auto& [name, index] : e.keywords)
        if (key == name || (PyUnicode_Check(key) && PyUnicode_Compare(key, name) == 0)) j = index;
      if (j < 0 || call[static_cast<size_t>(j)]) return false;  // not renamed, or given twice: the adapter says
      call[static_cast<size_t>(j)] = value;
    }
  }
  for (size_t j = 0; j < call.size(); ++j) {
    if (!call[j]) call[j] = e.fill[j];
    if (call[j] == g_tables->no_value) return false;  // the adapter's default, or a required argument
  }
  return true;
}

// __array_function__(self, func, types, args, kwargs)
PyObject* array_function_impl(PyObject* self, PyObject* const* a, Py_ssize_t nargs, PyObject* kwnames) {
  Tables& t = *g_tables;
  if (nargs == 4 && !(kwnames && PyTuple_GET_SIZE(kwnames)) && PyTuple_Check(a[1]) && PyTuple_Check(a[2]) &&
      (a[3] == Py_None || PyDict_Check(a[3]))) {
    auto hit = t.functions.find(a[0]);
    if (hit != t.functions.end()) {
      // Another type among the arguments (not a Variable, not an ndarray) decides: NotImplemented,
      // which the Python protocol returns.
      bool ours = true;
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(a[1]) && ours; ++i) {
        PyObject* ty = PyTuple_GET_ITEM(a[1], i);
        ours = ty == reinterpret_cast<PyObject*>(g_var_type) ||
               (PyType_Check(ty) && PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(ty), t.ndarray));
      }
      if (ours) {
        const FunctionEntry& e = hit->second;
        PyObject* kwargs = a[3] == Py_None || PyDict_GET_SIZE(a[3]) == 0 ? nullptr : a[3];
        std::vector<PyObject*> call;
        if (plan_call(e, a[2], kwargs, call))
          return PyObject_Vectorcall(e.fn, call.data(), call.size(), nullptr);
        return PyObject_Call(e.adapter, a[2], kwargs);
      }
    }
  }
  return fallback(t.function_fallback, self, a, nargs, kwnames);
}

// (The only C++ exception either can meet is std::bad_alloc, as a Python MemoryError.)
PyObject* array_ufunc(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] { return array_ufunc_impl(self, args, nargs, kwnames); });
}
PyObject* array_function(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] { return array_function_impl(self, args, nargs, kwnames); });
}

PyMethodDef kProtocolDefs[] = {
    {"__array_ufunc__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&array_ufunc)),
     METH_FASTCALL | METH_KEYWORDS,
     "__array_ufunc__($self, ufunc, method, *inputs, **kwargs)\n--\n\n"
     "NumPy's ufunc protocol (NEP 13): np.exp(v), np.add(v, w) ... run tapegrad's ops."},
    {"__array_function__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&array_function)),
     METH_FASTCALL | METH_KEYWORDS,
     "__array_function__($self, func, types, args, kwargs)\n--\n\n"
     "NumPy's function protocol (NEP 18): np.sum(v), np.concatenate(...) ... run tapegrad's functions."},
};

Slot slot_of(py::handle symbol) {
  if (symbol.is_none()) return Slot::None;
  const std::string s = py::str(symbol);
  if (s == "+") return Slot::Add;
  if (s == "-") return Slot::Sub;
  if (s == "*") return Slot::Mul;
  if (s == "/") return Slot::Div;
  if (s == "**") return Slot::Pow;
  if (s == "@") return Slot::MatMul;
  if (s == "-x") return Slot::Neg;
  throw value_error("_install_numpy_protocols: unknown operator " + s);
}

}  // namespace

void bind_numpy_protocol(py::module_& m) {
  m.def("_install_numpy_protocols", [](py::dict ufuncs, py::dict functions, py::object ufunc_fallback,
                                       py::object function_fallback) {
    auto* t = new Tables();  // (replaces the tables of an earlier call; those stay alive: nothing frees them)
    auto keep = [&](py::handle h) {
      t->keep.append(h);
      return h.ptr();
    };
    for (auto [ufunc, entry] : ufuncs) {
      auto e = entry.cast<py::tuple>();
      t->ufuncs[keep(ufunc)] = UfuncEntry{keep(e[0]), slot_of(e[1])};
    }
    // np function -> (adapter, tapegrad function or None, npos, fill, {keyword: index}).
    for (auto [func, entry] : functions) {
      auto e = entry.cast<py::tuple>();
      FunctionEntry f;
      f.adapter = keep(e[0]);
      if (!e[1].is_none()) {
        f.fn = keep(e[1]);
        f.npos = e[2].cast<Py_ssize_t>();
        for (auto v : e[3].cast<py::tuple>()) f.fill.push_back(keep(v));
        for (auto [k, j] : e[4].cast<py::dict>()) {
          py::str name = py::reinterpret_borrow<py::str>(k);
          PyObject* interned = name.inc_ref().ptr();
          PyUnicode_InternInPlace(&interned);
          t->keep.append(py::reinterpret_steal<py::object>(interned));
          f.keywords.emplace_back(interned, j.cast<Py_ssize_t>());
        }
      }
      t->functions.emplace(keep(func), std::move(f));
    }
    py::module_ np = py::module_::import("numpy");
    t->ufunc_fallback = keep(ufunc_fallback);
    t->function_fallback = keep(function_fallback);
    t->no_value = keep(np.attr("_NoValue"));
    t->call = keep(py::reinterpret_steal<py::object>(PyUnicode_InternFromString("__call__")));
    t->ndarray = reinterpret_cast<PyTypeObject*>(keep(np.attr("ndarray")));
    g_tables = t;
    for (PyMethodDef& d : kProtocolDefs) {
      py::object descr = py::reinterpret_steal<py::object>(PyDescr_NewMethod(g_var_type, &d));
      if (!descr || PyDict_SetItemString(g_var_type->tp_dict, d.ml_name, descr.ptr()) != 0)
        throw py::error_already_set();
    }
    PyType_Modified(g_var_type);
  }, py::arg("ufuncs"), py::arg("functions"), py::arg("ufunc_fallback"), py::arg("function_fallback"),
        "Installs Variable.__array_ufunc__ / __array_function__ over these tables (tapegrad._numpy_dispatch).");
}

}  // namespace tgpy
