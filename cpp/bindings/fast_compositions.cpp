// _core._fast (benchmarks/README.md, h96-small): shape, ndim, size, argmax, argmin, norm's 2-norm, average
// without weights and the six comparisons as raw METH_FASTCALL functions over their compositions (opspec
// COMPOSITIONS): their Python bodies (the wrapper,
// argument handling, a NumPy round trip) were most of their time at 0-d and 16 elements. Each takes the
// common case (a Variable; plain axis/ord/keepdims values) itself and hands every other call, unchanged,
// to the composition's Python function (_compose.build registers it with _set_fallback), so errors and rare
// argument forms keep their one implementation. _compose.build installs them from `_fast`.
// bind_functions calls bind_fast_compositions in its registration order.
#include <cstring>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "tapegrad/kernels.hpp"

namespace tgpy {

namespace {

py::dict& small_fallbacks() {
  static py::dict* d = new py::dict();  // (leaked: lives as long as the module)
  return *d;
}
PyObject* small_fallback(const char* name, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* fn = PyDict_GetItemString(small_fallbacks().ptr(), name);
  if (!fn) {
    PyErr_Format(PyExc_RuntimeError, "%s: no fallback registered (tapegrad._compose.build)", name);
    return nullptr;
  }
  return PyObject_Vectorcall(fn, args, static_cast<size_t>(nargs), kwnames);
}

// The arguments by name, as fastcall_args, but false (instead of an error) for a call it does not
// take: the fallback then raises the composition's own TypeError.
bool small_args(const char* const* names, int n, int required, PyObject* const* args, Py_ssize_t nargs,
                PyObject* kwnames, PyObject** out) {
  if (nargs > n || nargs < 0) return false;
  for (Py_ssize_t i = 0; i < nargs; ++i) out[i] = args[i];
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, k);
    int i = 0;
    while (i < n && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) ++i;
    if (i == n || out[i]) return false;
    out[i] = args[nargs + k];
  }
  for (int i = 0; i < required; ++i)
    if (!out[i]) return false;
  return true;
}

// An axis given as a plain Python int inside [-ndim, ndim), normalized; -1 for anything else.
int64_t plain_axis(PyObject* o, int64_t ndim) {
  if (!PyLong_CheckExact(o)) return -1;
  int overflow = 0;
  const long long a = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow || a < -ndim || a >= ndim) return -1;
  return a < 0 ? a + ndim : a;
}
// keepdims given as a bool (or not given): 0/1; -1 for anything else.
int plain_flag(PyObject* o) { return !o ? 0 : o == Py_True ? 1 : o == Py_False ? 0 : -1; }

#define TG_SMALL_FN(NAME) PyObject* NAME##_small(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames)

TG_SMALL_FN(shape) {
  if (nargs == 1 && !kwnames && is_var(args[0])) {
    const Shape& s = holder_of(args[0])->shape();
    PyObject* t = PyTuple_New(static_cast<Py_ssize_t>(s.size()));
    if (!t) return nullptr;
    for (size_t i = 0; i < s.size(); ++i) {
      PyObject* d = PyLong_FromLongLong(s[i]);
      if (!d) { Py_DECREF(t); return nullptr; }
      PyTuple_SET_ITEM(t, static_cast<Py_ssize_t>(i), d);
    }
    return t;
  }
  return small_fallback("shape", args, nargs, kwnames);
}

TG_SMALL_FN(ndim) {
  if (nargs == 1 && !kwnames && is_var(args[0])) return PyLong_FromLongLong(holder_of(args[0])->data.ndim());
  return small_fallback("ndim", args, nargs, kwnames);
}

TG_SMALL_FN(size) {
  static const char* const names[] = {"x", "axis"};
  PyObject* a[2] = {};
  if (small_args(names, 2, 1, args, nargs, kwnames, a) && is_var(a[0])) {
    const Var& v = holder_of(a[0]);
    if (!a[1] || a[1] == Py_None) return PyLong_FromLongLong(v->data.numel());
    const int64_t ax = plain_axis(a[1], v->data.ndim());
    if (ax >= 0) return PyLong_FromLongLong(v->shape()[ax]);
  }
  return small_fallback("size", args, nargs, kwnames);
}

// NumPy's argmax/argmin along `n` elements `stride` apart: the first NaN if any, else the first extreme.
template <class T, bool Max>
int64_t arg_extreme(const T* p, int64_t n, int64_t stride) {
  T best = p[0];
  if (best != best) return 0;
  int64_t idx = 0;
  for (int64_t k = 1; k < n; ++k) {
    const T v = p[k * stride];
    if (v != v) return k;
    if (Max ? v > best : v < best) {
      best = v;
      idx = k;
    }
  }
  return idx;
}
template <class T, bool Max>
void arg_extreme_axis(const T* p, int64_t outer, int64_t n, int64_t inner, int64_t* out) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) out[o * inner + i] = arg_extreme<T, Max>(p + o * n * inner + i, n, inner);
}

// argmax/argmin(x, axis=None, keepdims=False) of a contiguous, non-empty Variable; NumPy's results
// (an np.int64, or an int64 array); null (no error set) for a call the fallback takes.
template <bool Max>
PyObject* arg_extreme_fast(PyObject* const* a) {
  if (!is_var(a[0])) return nullptr;
  const Tensor& t = holder_of(a[0])->data;
  const int keep = plain_flag(a[2]);
  // From 4,096 elements NumPy's SIMD argmax (through the composition) wins: 1M float32 68 vs 762 us here.
  if (!t.is_contiguous() || t.numel() == 0 || t.numel() >= 4096 || keep < 0) return nullptr;
  const int64_t nd = t.ndim();
  int64_t ax = -2;  // -2: all axes
  if (a[1] && a[1] != Py_None) {
    ax = plain_axis(a[1], nd);
    if (ax < 0) return nullptr;
  }
  // A 0-d result is an np.int64, as NumPy's (all axes without keepdims; a vector's one axis; a 0-d input).
  if ((ax == -2 && !keep) || nd == 0 || (nd == 1 && !keep)) {
    const int64_t i = t.dtype == DType::F32 ? arg_extreme<float, Max>(t.ptr<float>(), t.numel(), 1)
                                            : arg_extreme<double, Max>(t.ptr<double>(), t.numel(), 1);
    static PyObject* int64_type = py::object(numpy().attr("int64")).release().ptr();
    py::object k = py::reinterpret_steal<py::object>(PyLong_FromLongLong(i));
    return PyObject_CallOneArg(int64_type, k.ptr());
  }
  Shape out_shape;
  int64_t outer = 1, n = t.numel(), inner = 1;
  if (ax == -2) {
    out_shape.assign(static_cast<size_t>(nd), 1);
  } else {
    const Shape& s = t.shape;
    for (int64_t d = 0; d < nd; ++d) {
      if (d < ax) outer *= s[d];
      if (d > ax) inner *= s[d];
      if (d != ax) out_shape.push_back(s[d]);
      else if (keep) out_shape.push_back(1);
    }
    n = s[ax];
  }
  Tensor out = Tensor::empty(out_shape, DType::I64);
  if (t.dtype == DType::F32) arg_extreme_axis<float, Max>(t.ptr<float>(), outer, n, inner, out.ptr<int64_t>());
  else arg_extreme_axis<double, Max>(t.ptr<double>(), outer, n, inner, out.ptr<int64_t>());
  return to_numpy(out).release().ptr();
}
template <bool Max>
PyObject* arg_extreme_small(const char* name, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"x", "axis", "keepdims"};
  PyObject* a[3] = {};
  if (small_args(names, 3, 1, args, nargs, kwnames, a)) {
    PyObject* r = guarded([&] { return arg_extreme_fast<Max>(a); }, name);
    if (r || PyErr_Occurred()) return r;
  }
  return small_fallback(name, args, nargs, kwnames);
}
TG_SMALL_FN(argmax) { return arg_extreme_small<true>("argmax", args, nargs, kwnames); }
TG_SMALL_FN(argmin) { return arg_extreme_small<false>("argmin", args, nargs, kwnames); }

// norm(x) / norm(x, 2) of a vector / norm(x, None or 2, axis=k): the composition's l2 (the same primitives
// in the same order: the same values, gradient, subgradient 0 at 0 and second derivatives), built here.
TG_SMALL_FN(norm) {
  static const char* const names[] = {"x", "ord", "axis", "keepdims"};
  PyObject* a[4] = {};
  if (small_args(names, 4, 1, args, nargs, kwnames, a) && is_var(a[0])) {
    const Var& x = holder_of(a[0]);
    const int64_t nd = x->data.ndim();
    const bool ord_none = !a[1] || a[1] == Py_None;
    const bool ord_two = !ord_none && ((PyLong_CheckExact(a[1]) && PyLong_AsLong(a[1]) == 2) ||
                                       (PyFloat_CheckExact(a[1]) && PyFloat_AS_DOUBLE(a[1]) == 2.0));
    if (PyErr_Occurred()) PyErr_Clear();  // (a huge int: not 2)
    const int keep = plain_flag(a[3]);
    std::optional<Axes> axes;
    if (!a[2] || a[2] == Py_None) {
      if (ord_none) {  // (np.linalg.norm(x) of any x: the 2-norm of all its elements)
        Axes all(static_cast<size_t>(nd));
        for (int64_t d = 0; d < nd; ++d) all[static_cast<size_t>(d)] = d;
        axes = all;
      } else if (ord_two && nd == 1) {
        axes = Axes{0};
      }
    } else if (ord_none || ord_two) {
      const int64_t ax = plain_axis(a[2], nd);
      if (ax >= 0) axes = Axes{ax};
    }
    if (axes && keep >= 0) {
      return guarded([&] {
        return with_op("norm", [&] {
          const Var s = sum_squares(x, axes, keep == 1);
          // Every sum positive (the usual case): both masks select everything, so the wheres are identities
          // in value and in every derivative; sqrt(s) alone gives the same bits at a third of the ops. Else
          // s * 0 where s <= 0 or NaN: a NaN sum stays NaN (NumPy's), 0 and its derivatives stay 0.
          bool all_pos = true;
          const int64_t m = s->data.numel();
          if (s->dtype() == DType::F32) {
            const float* p = s->data.ptr<float>();
            for (int64_t i = 0; i < m && all_pos; ++i) all_pos = p[i] > 0;
          } else {
            const double* p = s->data.ptr<double>();
            for (int64_t i = 0; i < m && all_pos; ++i) all_pos = p[i] > 0;
          }
          if (all_pos) return cast_out(sqrt(s));
          const Tensor pos = kern::compare(kern::CompareOp::Gt, s->data, Tensor::scalar(0.0, s->dtype()), "norm");
          return cast_out(where(pos, sqrt(where(pos, s, scalar_like(1.0, s))), mul(where(pos, scalar_like(0.0, s), s), scalar_like(0.0, s))));
        });
      }, "norm");
    }
  }
  return small_fallback("norm", args, nargs, kwnames);
}

// average(x, axis) without weights: the composition's mean (the same primitive), without its Python body.
TG_SMALL_FN(average) {
  static const char* const names[] = {"x", "axis", "weights", "keepdims"};
  PyObject* a[4] = {};
  if (small_args(names, 4, 1, args, nargs, kwnames, a) && is_var(a[0]) && (!a[2] || a[2] == Py_None)) {
    const Var& x = holder_of(a[0]);
    const int keep = plain_flag(a[3]);
    std::optional<Axes> axes;
    bool plain = !a[1] || a[1] == Py_None;
    if (!plain) {
      const int64_t ax = plain_axis(a[1], x->data.ndim());
      plain = ax >= 0;
      if (plain) axes = Axes{ax};
    }
    if (plain && keep >= 0)
      return guarded([&] { return with_op("average", [&] { return cast_out(mean_warn(x, axes, keep == 1)); }); },
                     "average");
  }
  return small_fallback("average", args, nargs, kwnames);
}

// The comparisons under their public names (the composition was a Python lambda around `_less` ...).
#define TG_SMALL_COMPARE(NAME)                                                                    \
  TG_SMALL_FN(NAME) {                                                                             \
    static const char* const names[] = {"a", "b"};                                                \
    return fastcall_fn<2, -1, &NAME##_compare_body>(#NAME, names, args, nargs, kwnames);               \
  }
TG_SMALL_COMPARE(less) TG_SMALL_COMPARE(less_equal) TG_SMALL_COMPARE(greater)
TG_SMALL_COMPARE(greater_equal) TG_SMALL_COMPARE(equal) TG_SMALL_COMPARE(not_equal)
#undef TG_SMALL_COMPARE

// Their docs (CPython's text signature first) come from the spec's COMPOSITIONS at import.
#define TG_SMALL_DEF(NAME) \
  {#NAME, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&NAME##_small)), METH_FASTCALL | METH_KEYWORDS, nullptr}
PyMethodDef kSmallDefs[] = {
    TG_SMALL_DEF(shape), TG_SMALL_DEF(ndim), TG_SMALL_DEF(size), TG_SMALL_DEF(argmax), TG_SMALL_DEF(argmin),
    TG_SMALL_DEF(norm), TG_SMALL_DEF(average), TG_SMALL_DEF(less), TG_SMALL_DEF(less_equal), TG_SMALL_DEF(greater),
    TG_SMALL_DEF(greater_equal), TG_SMALL_DEF(equal), TG_SMALL_DEF(not_equal)};
#undef TG_SMALL_DEF
#undef TG_SMALL_FN

}  // namespace

// v.argmax()/v.argmin() (variable.cpp): the function with self first.
PyObject* small_arg_extreme(bool max, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return max ? argmax_small(nullptr, args, nargs, kwnames) : argmin_small(nullptr, args, nargs, kwnames);
}

py::object& small_spec() {
  static py::object* o = new py::object();
  return *o;
}
py::object small_compositions() { return small_spec(); }

// _core._fast: {name: function} (kSmallDefs, each documented as its composition); _core._set_fallback.
void bind_fast_compositions(py::module_& m) {
  py::dict fast, spec = m.attr("__compositions__");
  small_spec() = spec;
  for (PyMethodDef& d : kSmallDefs) {
    py::dict e = spec[d.ml_name];
    const std::string doc = std::string(d.ml_name) + py::str(e["signature"]).cast<std::string>() + "\n--\n\n" +
                            py::str(e["doc"]).cast<std::string>();
    d.ml_doc = strdup(doc.c_str());  // (kept for the process's life, as the methods' docs)
    py::object f = py::reinterpret_steal<py::object>(PyCFunction_NewEx(&d, nullptr, nullptr));
    if (!f) throw py::error_already_set();
    fast[d.ml_name] = f;
  }
  m.attr("_fast") = fast;
  m.def("_set_fallback", [](const std::string& name, py::object fn) { small_fallbacks()[py::str(name)] = fn; },
        py::arg("name"), py::arg("fn"), "The Python function a fast composition (_fast) hands the calls it does not take.");
}

}  // namespace tgpy
