// The Python Variable object's life (see object.hpp): the generic holder
// lookup, the error mapping, and the dealloc that puts a dead plain
// Variable's memory on the free list cast_out takes it from.
#include "object.hpp"

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"

namespace tgpy {

// Any other layout, or a Variable whose __init__ never ran.
const Var& holder_of_general(PyInstance* inst) {
  if (inst->simple_layout) throw type_error("Variable.__init__ was not called on this object");
  auto vh = inst->get_value_and_holder(g_var_tinfo);
  if (!vh.holder_constructed()) throw type_error("Variable.__init__ was not called on this object");
  return vh.holder<Var>();
}

// The one mapping of core exceptions to Python ones. Returns false for an
// exception it does not know (pybind11's own translators take those).
bool set_python_error(std::exception_ptr p, const char* op) {
  const std::string prefix = std::string(op ? op : "tapegrad") + ": ";
  try {
    std::rethrow_exception(p);
  } catch (const memory_error& e) {
    PyErr_SetString(PyExc_MemoryError, e.named ? e.what() : (prefix + e.what()).c_str());
  } catch (const linalg_error& e) {
    PyErr_SetString(py::module_::import("numpy.linalg").attr("LinAlgError").ptr(), e.what());
  } catch (const shape_error& e) {
    PyErr_SetString(PyExc_ValueError, e.named ? e.what() : (prefix + e.what()).c_str());
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

namespace {

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

// Variable(...) reaches tp_init straight from type.__call__: for a plain
// Variable with arguments it takes (no unknown or repeated keywords), the
// holder is built here the way cast_out builds one, without pybind11's two
// dispatches (the __init__ guard, then its constructor overloads). Anything
// else goes the general way (slot_tp_init: __init__ by name), which raises
// the readable errors.
initproc g_general_init = nullptr;

int var_init(PyObject* self, PyObject* args, PyObject* kwargs) {
  auto* inst = reinterpret_cast<PyInstance*>(self);
  if (Py_TYPE(self) != g_var_type || !inst->simple_layout || inst->simple_holder_constructed)
    return g_general_init(self, args, kwargs);
  static const char* const kNames[3] = {"data", "requires_grad", "dtype"};
  PyObject* a[3] = {nullptr, Py_False, Py_None};
  const Py_ssize_t nargs = PyTuple_GET_SIZE(args);
  if (nargs > 3) return g_general_init(self, args, kwargs);
  for (Py_ssize_t i = 0; i < nargs; ++i) a[i] = PyTuple_GET_ITEM(args, i);
  if (kwargs) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(kwargs, &pos, &key, &value)) {
      int slot = -1;
      for (int j = 0; j < 3; ++j)
        if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, kNames[j]) == 0) slot = j;
      if (slot < nargs) return g_general_init(self, args, kwargs);  // unknown (-1) or repeated
      a[slot] = value;
    }
  }
  if (!a[0]) return g_general_init(self, args, kwargs);
  PyObject* ok = guarded([&]() -> PyObject* {
    Var v = construct_variable(a[0], a[1], a[2]);
    inst->simple_value_holder[0] = v.get();
    v->py_object = self;
    new (&inst->simple_value_holder[1]) Var(std::move(v));
    inst->simple_holder_constructed = true;
    return self;
  }, "Variable");
  return ok ? 0 : -1;
}

}  // namespace

void install_object_hooks() {
  py::handle V(reinterpret_cast<PyObject*>(g_var_type));
  // A second __init__ on an existing Variable is ignored. pybind11 does that
  // only for instances in its registry; op results are not there (cast_out),
  // and for them it would destroy the holder and build a new one while other
  // Variables may hold the old value.
  {
    py::object pybind11_init = V.attr("__init__");
    // The constructor's parameters: a call they do not take raises CPython's
    // kind of TypeError rather than pybind11's dump of C++ signatures.
    py::object P = py::module_::import("inspect").attr("Parameter");
    py::object kind = P.attr("POSITIONAL_OR_KEYWORD");
    py::object sig = py::module_::import("inspect").attr("Signature")(py::make_tuple(
        P("data", kind), P("requires_grad", kind, py::arg("default") = false),
        P("dtype", kind, py::arg("default") = py::none())));
    // CPython's text signature, so that inspect.signature(Variable) works.
    const std::string init_doc = "__init__(self, " + py::str(sig).cast<std::string>().substr(1) + "\n--\n\n" +
                                 py::str(V.attr("__doc__")).cast<std::string>();
    py::options text_signature_only;
    text_signature_only.disable_function_signatures();
    V.attr("__init__") = py::cpp_function(
        [pybind11_init, sig](py::handle self, py::args args, py::kwargs kwargs) {
          if (PyObject_TypeCheck(self.ptr(), g_var_type)) {
            auto vh = reinterpret_cast<PyInstance*>(self.ptr())->get_value_and_holder(g_var_tinfo, false);
            if (vh && vh.holder_constructed()) return;
          }
          try {
            pybind11_init(self, *args, **kwargs);
          } catch (py::error_already_set& e) {
            // Only on failure (binding in Python costs more than the construction).
            if (!e.matches(PyExc_TypeError) ||
                py::str(e.value()).cast<std::string>().find("incompatible constructor arguments") == std::string::npos)
              throw;
            try {
              sig.attr("bind")(*args, **kwargs);
            } catch (py::error_already_set& e2) {
              if (!e2.matches(PyExc_TypeError)) throw;
              throw type_error("Variable(): " + py::str(e2.value()).cast<std::string>());
            }
            throw type_error("Variable(): unsupported arguments; expected Variable" + py::str(sig).cast<std::string>());
          }
        },
        py::name("__init__"), py::is_method(V), py::doc(init_doc.c_str()));
  }
  // cast_out, var_dealloc and the object free list assume a non-GC type
  // (no py::dynamic_attr): fail at import rather than corrupt the GC lists.
  if (PyType_HasFeature(g_var_type, Py_TPFLAGS_HAVE_GC))
    throw std::runtime_error("tapegrad: the Variable type is garbage-collected; cast_out/var_dealloc need updating");
  g_pybind11_dealloc = g_var_type->tp_dealloc;
  g_var_type->tp_dealloc = &var_dealloc;
  g_general_init = g_var_type->tp_init;
  g_var_type->tp_init = &var_init;
}

// ----- calls that no overload takes --------------------------------------------
namespace {

// The pybind11 record behind a function object (or an instance method's), or null.
const py::detail::function_record* record_of(py::handle f) {
  if (PyInstanceMethod_Check(f.ptr())) f = PyInstanceMethod_GET_FUNCTION(f.ptr());
  if (!PyCFunction_Check(f.ptr())) return nullptr;
  PyObject* self = PyCFunction_GET_SELF(f.ptr());
  return self ? py::detail::function_record_ptr_from_PyObject(self) : nullptr;
}

// The record's parameters as an inspect.Signature (None if they do not make one).
py::object signature_of(const py::detail::function_record* rec) {
  py::module_ inspect = py::module_::import("inspect");
  py::object P = inspect.attr("Parameter");
  py::list params;
  // self is positional-only when an unnamed argument follows it (operators: `__add__(self, arg1, /)`).
  bool unnamed_after_self = false;
  for (size_t i = 1; i < rec->nargs_pos; ++i) unnamed_after_self |= i >= rec->args.size() || !rec->args[i].name;
  for (size_t i = 0; i < rec->nargs_pos; ++i) {
    const char* name = i < rec->args.size() ? rec->args[i].name : nullptr;
    const bool self = rec->is_method && i == 0;
    std::string n = name ? name : (self ? "self" : "arg" + std::to_string(i));
    py::object kind = P.attr((name || self) && !(self && unnamed_after_self) ? "POSITIONAL_OR_KEYWORD" : "POSITIONAL_ONLY");
    if (i < rec->args.size() && rec->args[i].value)
      params.append(P(n, kind, py::arg("default") = rec->args[i].value));
    else
      params.append(P(n, kind));
  }
  if (rec->has_args) params.append(P("args", P.attr("VAR_POSITIONAL")));
  if (rec->has_kwargs) params.append(P("kwargs", P.attr("VAR_KEYWORD")));
  try {
    return inspect.attr("Signature")(params);
  } catch (py::error_already_set&) {
    return py::none();
  }
}

}  // namespace

std::string bad_call_message(const std::string& qualname, py::handle sig, bool method, const py::args& args,
                             const py::kwargs& kwargs) {
  if (!sig.is_none()) {
    try {
      sig.attr("bind")(*args, **kwargs);
    } catch (py::error_already_set& e) {
      if (!e.matches(PyExc_TypeError)) throw;
      return qualname + "(): " + py::str(e.value()).cast<std::string>();
    }
  }
  if (method && (args.empty() || !is_var(args[0])))
    return qualname + "(): self must be a tapegrad.Variable, got " +
           (args.empty() ? std::string("nothing") : py::str(py::type::of(args[0]).attr("__name__")).cast<std::string>());
  std::string types;
  for (auto a : args) types += (types.empty() ? "" : ", ") + py::str(py::type::of(a).attr("__name__")).cast<std::string>();
  for (auto kv : kwargs)
    types += (types.empty() ? "" : ", ") + py::str(kv.first).cast<std::string>() + "=" +
             py::str(py::type::of(kv.second).attr("__name__")).cast<std::string>();
  return qualname + "(): unsupported argument types (" + types + ")" +
         (sig.is_none() ? std::string() : "; expected " + qualname + py::str(sig).cast<std::string>());
}

namespace {
// `doc` starting with CPython's text signature `name(a, b=1)\n--\n\n` built
// from `sig` (an inspect.Signature, or None: doc unchanged), in place of the
// `name(a: T, b: U = 1) -> R` line pybind11 writes.
std::string with_text_signature(const std::string& name, const std::string& doc, py::handle sig) {
  if (sig.is_none() || doc.find(")\n--\n\n") != std::string::npos) return doc;
  std::string body = doc;
  if (body.rfind(name + "(", 0) == 0) {
    size_t eol = body.find('\n');
    body = eol == std::string::npos ? "" : body.substr(eol);
    body.erase(0, body.find_first_not_of('\n') == std::string::npos ? body.size() : body.find_first_not_of('\n'));
  }
  return name + py::str(sig).cast<std::string>() + "\n--\n\n" + body;
}

void add_fallback(py::handle scope, const std::string& name, bool in_class) {
  py::object f = scope.attr(name.c_str());
  const py::detail::function_record* rec = record_of(f);
  if (!rec || rec->is_constructor) return;
  for (auto* r = rec; r; r = r->next)
    if (r->has_args && r->has_kwargs && r->nargs_pos == 0 && !r->doc) return;  // (already there)
  std::string qualname = in_class ? py::str(scope.attr("__name__")).cast<std::string>() + "." + name : name;
  py::object sig = rec->next ? py::none() : signature_of(rec);  // (several overloads: no one signature)
  const bool method = rec->is_method;
  py::handle fn = PyInstanceMethod_Check(f.ptr()) ? PyInstanceMethod_GET_FUNCTION(f.ptr()) : f.ptr();
  PyMethodDef* def = reinterpret_cast<PyCFunctionObject*>(fn.ptr())->m_ml;
  std::string doc = def->ml_doc ? def->ml_doc : "";
  auto fallback = [qualname, sig, method](py::args args, py::kwargs kwargs) -> py::object {
    throw type_error(bad_call_message(qualname, sig, method, args, kwargs));
  };
  py::cpp_function cf = in_class ? py::cpp_function(fallback, py::name(name.c_str()), py::is_method(scope), py::sibling(f))
                                 : py::cpp_function(fallback, py::name(name.c_str()), py::scope(scope), py::sibling(f));
  scope.attr(name.c_str()) = cf;
  // pybind11 rebuilt the doc from both overloads: keep the original one, with
  // CPython's text signature in place of pybind11's signature line so that
  // inspect.signature works (the spec's ops carry theirs already).
  std::free(const_cast<char*>(def->ml_doc));
  def->ml_doc = strdup(with_text_signature(name, doc, sig).c_str());
  try {
    py::module_::import("inspect").attr("signature")(scope.attr(name.c_str()));
  } catch (py::error_already_set&) {  // a default inspect cannot read back: no signature rather than a wrong one
    std::free(const_cast<char*>(def->ml_doc));
    def->ml_doc = strdup(doc.c_str());
  }
}
}  // namespace

void install_call_errors(py::module_& m) {
  auto add_all = [](py::handle scope, bool in_class) {
    std::vector<std::string> names;
    for (auto item : scope.attr("__dict__").attr("items")()) {
      std::string n = py::str(item[py::int_(0)]).cast<std::string>();
      if (n.rfind("_pybind11", 0) == 0) continue;
      if (record_of(item[py::int_(1)])) names.push_back(n);
    }
    for (const std::string& n : names) add_fallback(scope, n, in_class);
  };
  add_all(m, false);
  std::vector<py::object> classes;  // Variable, Node, RemovableHandle, ...: every class the module binds
  for (auto item : m.attr("__dict__").attr("items")())
    if (PyType_Check(item[py::int_(1)].ptr())) classes.push_back(py::reinterpret_borrow<py::object>(item[py::int_(1)]));
  for (const py::object& cls : classes) add_all(cls, true);
}

void bind_errors(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    if (p && !set_python_error(p)) std::rethrow_exception(p);
  });
}

}  // namespace tgpy
