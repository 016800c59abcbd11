// ----- h100-small: round(x, decimals=0) and v.round(decimals=0) as raw METH_FASTCALL functions over the
// primitive tg::round_decimals (NumPy's bits, one pass, derivative 0): set on tapegrad._core as _round and
// _round_method; _compose.build makes _round the function, tapegrad/__init__.py the method. Its doc and
// signature come from the spec's entry (opspec/ops.py COMPOSITIONS "round").
#include <climits>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "object.hpp"

namespace tgpy {

namespace {
// NumPy's decimals is a C int (np.round(x, 2**31) raises OverflowError).
int64_t decimals_arg(PyObject* d) {
  if (!d) return 0;
  const int64_t v = int_arg(d, "round", "decimals");
  if (v < INT_MIN || v > INT_MAX)
    throw value_error("round: decimals " + std::to_string(v) + " is out of range (NumPy's is a C int)");
  return v;
}

PyObject* round_fn(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    static const char* const kNames[2] = {"x", "decimals"};
    PyObject* a[2] = {};
    fastcall_args("round", kNames, 2, 1, args, nargs, kwnames, a);
    const int64_t d = decimals_arg(a[1]);
    return cast_out(round_decimals(is_var(a[0]) ? holder_of(a[0]) : unary_arg(a[0], "round"), d));
  }, "round");
}
PyObject* round_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    static const char* const kNames[1] = {"decimals"};
    PyObject* a[1] = {};
    fastcall_args("round", kNames, 1, 0, args, nargs, kwnames, a);
    return cast_out(round_decimals(holder_of(self), decimals_arg(a[0])));
  }, "round");
}

PyMethodDef kRoundFn = {"round", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&round_fn)),
                        METH_FASTCALL | METH_KEYWORDS, nullptr};
PyMethodDef kRoundMethod = {"round", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&round_method)),
                            METH_FASTCALL | METH_KEYWORDS, nullptr};
std::string g_fn_doc, g_method_doc;  // (stable addresses for ml_doc)
}  // namespace

void bind_round(py::module_& m) {
  py::dict e = py::dict(m.attr("__compositions__"))["round"];
  const std::string doc = e["doc"].cast<std::string>();
  g_fn_doc = "round" + e["signature"].cast<std::string>() + "\n--\n\n" + doc;  // (inspect.signature reads it)
  g_method_doc = "round($self, /, decimals=0)\n--\n\n" + doc;
  kRoundFn.ml_doc = g_fn_doc.c_str();
  kRoundMethod.ml_doc = g_method_doc.c_str();
  py::object f = py::reinterpret_steal<py::object>(PyCFunction_NewEx(&kRoundFn, nullptr, m.attr("__name__").ptr()));
  if (!f) throw py::error_already_set();
  m.attr("_round") = f;
  py::object meth = py::reinterpret_steal<py::object>(PyDescr_NewMethod(g_var_type, &kRoundMethod));
  if (!meth) throw py::error_already_set();
  m.attr("_round_method") = meth;
}

}  // namespace tgpy
