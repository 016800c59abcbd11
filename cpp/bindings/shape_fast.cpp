// ----- h95-shape: the C++ bodies of the shape compositions ravel, flatten, copy,
// atleast_1d/2d/3d, hstack, vstack, split, array_split, flip, roll, pad
// (opspec/ops.py COMPOSITIONS). Raw METH_FASTCALL functions named as the
// public ones, set on tapegrad._core as `_<name>`: _compose.build uses them
// as the functions themselves (one call from Python, no Python frame), and
// ravel/flatten/copy are also Variable methods. Their docs and signatures
// come from the spec's entries (__compositions__).
#include <deque>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "object.hpp"

namespace tgpy {

namespace {
// The error of a primitive inside, named after the function called (as the Python bodies' wrapper did).
template <class F>
auto renamed(const char* name, F&& f) {
  try {
    return f();
  } catch (const value_error& e) {
    const std::string m = e.what();
    if (m.rfind(std::string(name) + ":", 0) == 0) throw;
    throw value_error(std::string(name) + ": " + m);
  }
}

PyObject* ravel_body(PyObject* const* a) { return cast_out(reshape(unary_arg(a[0], "ravel"), Shape{-1})); }
// flatten copies, as ndarray.flatten (ravel is the view): writes into the result never reach x.
PyObject* flatten_body(PyObject* const* a) { return cast_out(reshape(positive(unary_arg(a[0], "flatten")), Shape{-1})); }
PyObject* copy_body(PyObject* const* a) { return cast_out(positive(unary_arg(a[0], "copy"))); }

// atleast_*(*arys): one result, or a tuple of them.
PyObject* atleast_call(int n, const char* name, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    if (kwnames && PyTuple_GET_SIZE(kwnames))
      throw type_error(std::string(name) + "() got an unexpected keyword argument '" +
                       py::str(py::handle(PyTuple_GET_ITEM(kwnames, 0))).cast<std::string>() + "'");
    if (nargs == 1) return cast_out(atleast(unary_arg(args[0], name), n));
    py::tuple out(nargs);
    for (Py_ssize_t i = 0; i < nargs; ++i)
      out[i] = py::reinterpret_steal<py::object>(cast_out(atleast(unary_arg(args[i], name), n)));
    return out.release().ptr();
  }, name);
}
PyObject* atleast_1d_fn(PyObject*, PyObject* const* a, Py_ssize_t n, PyObject* k) { return atleast_call(1, "atleast_1d", a, n, k); }
PyObject* atleast_2d_fn(PyObject*, PyObject* const* a, Py_ssize_t n, PyObject* k) { return atleast_call(2, "atleast_2d", a, n, k); }
PyObject* atleast_3d_fn(PyObject*, PyObject* const* a, Py_ssize_t n, PyObject* k) { return atleast_call(3, "atleast_3d", a, n, k); }

std::vector<Var> stack_parts(PyObject* arrays, const char* name, int n) {
  if (!PyList_Check(arrays) && !PyTuple_Check(arrays) &&  // (the usual call: no attribute lookups)
      (is_var(arrays) || PyObject_HasAttrString(arrays, "__array_interface__") || !PyObject_HasAttrString(arrays, "__iter__")))
    throw type_error(std::string(name) + ": arrays must be a sequence of arrays, got " + type_name(arrays));
  std::vector<Var> xs = var_list(arrays, name);
  for (Var& v : xs) v = atleast(v, n);
  if (xs.empty()) throw value_error(std::string(name) + ": need at least one array to concatenate");
  return xs;
}
PyObject* hstack_body(PyObject* const* a) {
  std::vector<Var> xs = stack_parts(a[0], "hstack", 1);
  const int64_t axis = xs[0]->data.ndim() == 1 ? 0 : 1;
  return cast_out(renamed("hstack", [&] { return concatenate(xs, axis); }));
}
PyObject* vstack_body(PyObject* const* a) {
  std::vector<Var> xs = stack_parts(a[0], "vstack", 2);
  return cast_out(renamed("vstack", [&] { return concatenate(xs, 0); }));
}

// split / array_split(x, indices_or_sections, axis=0): a list of views.
PyObject* splits(PyObject* const* a, const char* name, bool equal) {
  Var v = unary_arg(a[0], name);
  const int64_t axis = normalize_axis(a[2] ? int_arg(a[2], name, "axis") : 0, v->data.ndim(), name);
  const int64_t n = v->shape()[axis];
  std::vector<int64_t> points;
  PyObject* ios = a[1];
  if (is_integer(ios)) {
    const int64_t k = int_arg(ios, name, "indices_or_sections");
    if (k <= 0) throw value_error(std::string(name) + ": number of sections must be larger than 0");
    if (equal && n % k)
      throw value_error(std::string(name) + ": array split does not result in an equal division (" + std::to_string(n) +
                        " into " + std::to_string(k) + ")");
    const int64_t each = n / k, extra = n % k;
    int64_t at = 0;
    for (int64_t i = 0; i + 1 < k; ++i) points.push_back(at += each + (i < extra ? 1 : 0));
  } else {
    py::object seq = py::reinterpret_borrow<py::object>(ios);
    if (!PyList_Check(ios) && !PyTuple_Check(ios)) {  // (a NumPy array or another iterable of ints)
      if (PyBool_Check(ios) || !PyObject_HasAttrString(ios, "__iter__"))
        throw type_error(std::string(name) + ": indices_or_sections must be an int or a sequence of ints, got " +
                         type_name(ios));
      seq = py::list(seq);
    }
    for (auto item : seq) {
      PyObject* i = item.ptr();
      if (PyBool_Check(i) || !PyIndex_Check(i))
        throw type_error(std::string(name) + ": indices_or_sections must hold ints, got " + type_name(i));
      points.push_back(int_arg(i, name, "indices_or_sections"));
    }
  }
  std::vector<Var> parts = split_at(v, points, axis);
  py::list out(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) out[i] = py::reinterpret_steal<py::object>(cast_out(std::move(parts[i])));
  return out.release().ptr();
}
PyObject* split_body(PyObject* const* a) { return splits(a, "split", true); }
PyObject* array_split_body(PyObject* const* a) { return splits(a, "array_split", false); }

PyObject* flip_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "flip");
  return cast_out(flip(v, a[1] ? parse_axes(a[1], "flip") : std::nullopt));
}

Axes ints_arg(PyObject* o, const char* op, const char* what) {
  if (is_integer(o)) return Axes{int_arg(o, op, what)};
  if (!PyTuple_Check(o) && !PyList_Check(o)) {
    if (PyBool_Check(o) || !PyObject_HasAttrString(o, "__iter__"))
      throw type_error(std::string(op) + ": " + what + " must be an int or a tuple of ints, got " + type_name(o));
    return int_sequence(py::list(py::reinterpret_borrow<py::object>(o)), op, what);
  }
  Axes r = int_sequence(o, op, what);
  if (r.empty()) throw value_error(std::string(op) + ": " + what + " must not be empty");
  return r;
}
PyObject* roll_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "roll");
  const Axes shift = ints_arg(a[1], "roll", "shift");
  std::optional<Axes> axis;
  if (a[2] && a[2] != Py_None) axis = ints_arg(a[2], "roll", "axis");
  return cast_out(roll(v, shift, axis));
}

// pad_width: NumPy's forms (an int, (before, after), ((before, after),) * ndim, ... any shape that
// broadcasts to (ndim, 2)), read through NumPy when not an int.
// The first int in w (through tuples and lists) outside int64, as its text; empty when none.
std::string oversized(PyObject* w) {
  if (PyLong_Check(w) && !PyBool_Check(w)) {
    int overflow = 0;
    PyLong_AsLongLongAndOverflow(w, &overflow);
    return overflow ? py::str(py::handle(w)).cast<std::string>() : std::string();
  }
  if (PyTuple_Check(w) || PyList_Check(w))
    for (auto item : py::reinterpret_borrow<py::sequence>(w)) {
      std::string s = oversized(item.ptr());
      if (!s.empty()) return s;
    }
  return {};
}
std::vector<std::pair<int64_t, int64_t>> pad_widths(PyObject* w, int64_t nd) {
  if (is_integer(w)) {
    const int64_t k = int_arg(w, "pad", "pad_width");
    return std::vector<std::pair<int64_t, int64_t>>(static_cast<size_t>(nd), {k, k});
  }
  py::object arr;
  try {
    arr = numpy().attr("broadcast_to")(numpy().attr("asarray")(py::handle(w), py::arg("dtype") = "int64"),
                                       py::make_tuple(nd, 2));
  } catch (py::error_already_set& e) {
    const std::string big = oversized(w);
    if (!big.empty()) throw value_error("pad: pad_width " + big + " is out of range (it does not fit a 64-bit integer)");
    reraise_prefixed(e, "pad: pad_width " + py::repr(py::handle(w)).cast<std::string>());
  }
  std::vector<std::pair<int64_t, int64_t>> out;
  for (auto row : arr.attr("tolist")()) {
    auto pr = row.cast<std::vector<int64_t>>();
    out.emplace_back(pr[0], pr[1]);
  }
  return out;
}
PyObject* pad_body(PyObject* const* a) {
  Var v = unary_arg(a[0], "pad");
  if (a[2] && !(PyUnicode_Check(a[2]) && PyUnicode_CompareWithASCIIString(a[2], "constant") == 0))
    throw value_error("pad: mode=" + py::repr(a[2]).cast<std::string>() + " is not implemented (only 'constant')");
  double value = 0;
  if (a[3]) {
    PyObject* c = a[3];
    if (!PyFloat_Check(c) && !PyLong_Check(c)) {
      if (is_var(c) || numpy().attr("ndim")(py::handle(c)).cast<int64_t>() != 0)
        throw value_error("pad: only a scalar constant_values is implemented");
    }
    PyObject* f = PyNumber_Float(c);
    if (!f) {
      py::error_already_set e;
      reraise_prefixed(e, "pad: constant_values");
    }
    value = PyFloat_AS_DOUBLE(f);
    Py_DECREF(f);
  }
  return cast_out(pad_constant(v, pad_widths(a[1], v->data.ndim()), value));
}

template <size_t N, int Required, PyObject* (*F)(PyObject* const*)>
PyObject* call(const char* name, const char* const (&names)[N], PyObject* const* args, Py_ssize_t nargs,
               PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    PyObject* a[N] = {};
    fastcall_args(name, names, static_cast<int>(N), Required, args, nargs, kwnames, a);
    return F(a);
  }, name);
}
#define TG_SHAPE_FN(NAME, REQ, ...)                                                                  \
  PyObject* NAME##_fn(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {     \
    static const char* const names[] = {__VA_ARGS__};                                              \
    return call<sizeof(names) / sizeof(names[0]), REQ, &NAME##_body>(#NAME, names, args, nargs, kwnames); \
  }
TG_SHAPE_FN(ravel, 1, "x")
TG_SHAPE_FN(flatten, 1, "x")
TG_SHAPE_FN(copy, 1, "x")
TG_SHAPE_FN(hstack, 1, "arrays")
TG_SHAPE_FN(vstack, 1, "arrays")
TG_SHAPE_FN(split, 2, "x", "indices_or_sections", "axis")
TG_SHAPE_FN(array_split, 2, "x", "indices_or_sections", "axis")
TG_SHAPE_FN(flip, 1, "x", "axis")
TG_SHAPE_FN(roll, 2, "x", "shift", "axis")
TG_SHAPE_FN(pad, 2, "x", "pad_width", "mode", "constant_values")
#undef TG_SHAPE_FN

// The methods v.ravel(), v.flatten(), v.copy(): the bodies with self as x.
template <PyObject* (*F)(PyObject* const*)>
PyObject* self_method(const char* name, PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    fastcall_args(name, nullptr, 0, 0, args, nargs, kwnames, nullptr);
    PyObject* a[1] = {self};
    return F(a);
  }, name);
}
#define TG_SHAPE_METHOD(NAME)                                                                              \
  PyObject* NAME##_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) { \
    return self_method<&NAME##_body>(#NAME, self, args, nargs, kwnames);                                   \
  }
TG_SHAPE_METHOD(ravel)
TG_SHAPE_METHOD(flatten)
TG_SHAPE_METHOD(copy)
#undef TG_SHAPE_METHOD

#define TG_DEF(NAME, FN) {#NAME, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&FN)), METH_FASTCALL | METH_KEYWORDS, nullptr}
PyMethodDef kShapeFns[] = {
    TG_DEF(ravel, ravel_fn), TG_DEF(flatten, flatten_fn), TG_DEF(copy, copy_fn),
    TG_DEF(atleast_1d, atleast_1d_fn), TG_DEF(atleast_2d, atleast_2d_fn), TG_DEF(atleast_3d, atleast_3d_fn),
    TG_DEF(hstack, hstack_fn), TG_DEF(vstack, vstack_fn), TG_DEF(split, split_fn), TG_DEF(array_split, array_split_fn),
    TG_DEF(flip, flip_fn), TG_DEF(roll, roll_fn), TG_DEF(pad, pad_fn)};
PyMethodDef kShapeMethods[] = {TG_DEF(ravel, ravel_method), TG_DEF(flatten, flatten_method), TG_DEF(copy, copy_method)};
#undef TG_DEF
std::deque<std::string> g_docs;  // (stable addresses for ml_doc)
}  // namespace

void bind_shape_fast(py::module_& m) {
  py::dict spec = m.attr("__compositions__");
  for (PyMethodDef& d : kShapeFns) {
    py::dict e = spec[d.ml_name];
    // CPython's text signature first, so inspect.signature reads the spec's
    g_docs.push_back(std::string(d.ml_name) + e["signature"].cast<std::string>() + "\n--\n\n" + e["doc"].cast<std::string>());
    d.ml_doc = g_docs.back().c_str();
    py::object f = py::reinterpret_steal<py::object>(PyCFunction_NewEx(&d, nullptr, m.attr("__name__").ptr()));
    if (!f) throw py::error_already_set();
    m.attr(("_" + std::string(d.ml_name)).c_str()) = f;
  }
  for (PyMethodDef& d : kShapeMethods) {
    py::dict e = spec[d.ml_name];
    g_docs.push_back(std::string(d.ml_name) + "($self, /)\n--\n\n" + e["doc"].cast<std::string>());
    d.ml_doc = g_docs.back().c_str();
    py::object f = py::reinterpret_steal<py::object>(PyDescr_NewMethod(g_var_type, &d));
    if (!f) throw py::error_already_set();
    m.attr(("_" + std::string(d.ml_name) + "_method").c_str()) = f;  // (tapegrad/__init__.py sets the methods)
  }
}

}  // namespace tgpy
