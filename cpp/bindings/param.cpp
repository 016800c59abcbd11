// The parametrized elementwise ops (elu(x, alpha=1.0), leaky_relu(x, negative_slope=0.01)): raw METH_FASTCALL
// functions, the parameters by position or name with the spec's defaults; and float_power (set as _float_power).
// The C++ bodies: cpp/src/ops/elementwise.cpp (elu and leaky_relu's loops: cpp/src/kernels/param.cpp; pow).
// bind_functions calls bind_param in its registration order.
#include <string>
#include <utility>

#include "bindings.hpp"
#include "convert.hpp"
#include "tapegrad/kernels.hpp"
#include "tapegrad_gen/bindings.inc"  // generated from opspec/ops.py

namespace tgpy {

namespace {
struct ParamEntry {
  const char* name;
  Var (*fn)(const Var&, const double*);
  int nparams;
  const char* names[3];
  double defaults[2];
  const char* doc;
};
const ParamEntry kParam[] = {TG_SPEC_PARAM_FUNCTIONS};
constexpr size_t kNumParam = sizeof(kParam) / sizeof(kParam[0]);

// A real number (a Python or NumPy float or int, anything with __float__); not a string.
double param_arg(PyObject* o, const char* op, const char* arg) {
  if (PyFloat_Check(o)) return PyFloat_AS_DOUBLE(o);
  if (!PyUnicode_Check(o) && !PyBytes_Check(o) && o != Py_None) {
    const double v = PyFloat_AsDouble(o);
    if (!(v == -1.0 && PyErr_Occurred())) return v;
    if (PyErr_ExceptionMatches(PyExc_OverflowError) && PyLong_Check(o)) {  // (as _compose's message)
      PyErr_Clear();
      std::string digits = py::str(o).cast<std::string>();
      if (digits.size() > 40)
        digits = digits.substr(0, 12) + "... (" + std::to_string(digits.size() - (digits[0] == '-')) + " digits)";
      throw value_error(std::string(op) + ": " + arg + " " + digits + " is out of range (it does not fit a float64)");
    }
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) {  // (__float__'s own error: a Variable of 3 elements)
      py::error_already_set e;
      reraise_prefixed(e, std::string(op) + ": " + arg);
    }
    PyErr_Clear();
  }
  throw type_error(std::string(op) + ": " + arg + " must be a real number, got " + type_name(o));
}

template <size_t I>
PyObject* param_fn(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    const ParamEntry& e = kParam[I];
    PyObject* a[3] = {};
    fastcall_args(e.name, e.names, 1 + e.nparams, 1, args, nargs, kwnames, a);
    double p[2] = {e.defaults[0], e.defaults[1]};
    for (int i = 0; i < e.nparams; ++i)
      if (a[1 + i]) p[i] = param_arg(a[1 + i], e.name, e.names[1 + i]);
    return cast_out(e.fn(is_var(a[0]) ? holder_of(a[0]) : to_var(a[0], std::nullopt, e.name), p));
  }, kParam[I].name);
}

template <size_t... I>
PyMethodDef* param_method_table(std::index_sequence<I...>) {
  static PyMethodDef defs[] = {{kParam[I].name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&param_fn<I>)),
                                METH_FASTCALL | METH_KEYWORDS, kParam[I].doc}...,
                               {nullptr, nullptr, 0, nullptr}};
  return defs;
}

// float_power(a, b): the composition's body (power in float64) as one call: the operands converted to
// float64 (a Python number directly, not through the other operand's float32), then power; its
// derivatives are astype's and power's. _compose.py's float_power is this function for tapegrad.
PyObject* float_power_fn(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    static const char* const kNames[2] = {"a", "b"};
    PyObject* a[2] = {};
    fastcall_args("float_power", kNames, 2, 2, args, nargs, kwnames, a);
    auto f64 = [](PyObject* o) {
      Var v = is_var(o) ? holder_of(o) : to_var(o, DType::F64, "float_power");
      return v->dtype() == DType::F64 ? v : astype(v, DType::F64);
    };
    Var x = f64(a[0]), y = f64(a[1]);
    kern::broadcast_shapes(x->shape(), y->shape(), "float_power");  // (the error names this function)
    return cast_out(pow(x, y));
  }, "float_power");
}
// (named float_power, so that its text signature is found; the module holds it as _float_power)
PyMethodDef kFloatPowerDef = {"float_power", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&float_power_fn)),
                              METH_FASTCALL | METH_KEYWORDS, "float_power(a, b)\n--\n\na ** b in float64."};
}  // namespace

void bind_param(py::module_& m) {
  if (PyModule_AddFunctions(m.ptr(), param_method_table(std::make_index_sequence<kNumParam>())) != 0)
    throw py::error_already_set();
  {
    PyObject* fp = PyCFunction_NewEx(&kFloatPowerDef, nullptr, py::str("tapegrad._core").ptr());
    if (!fp) throw py::error_already_set();
    m.attr("_float_power") = py::reinterpret_steal<py::object>(fp);
  }
}

}  // namespace tgpy
