// The Variable class: its constructor, properties, methods and operators,
// the Node class (grad_fn), and the raw number slots that operators take
// (nb_binary: the scalar op path of `y * 2.0`).
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "bindings.hpp"
#include "convert.hpp"
#include "tapegrad/kernels.hpp"
#include "tapegrad_gen/bindings.inc"  // generated from opspec/ops.py

namespace tgpy {

Var construct_variable(py::handle data, py::handle requires_grad_, py::handle dtype) {
  return with_op("Variable", [&] {
  const bool requires_grad = bool_arg(requires_grad_, "Variable", "requires_grad");
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
  });
}

namespace {

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

py::object not_implemented() { return py::reinterpret_borrow<py::object>(Py_NotImplemented); }

// The name an operator's errors give.
template <Var (*F)(const Var&, const Var&)>
const char* op_name() {
  // Plain ifs: comparing two functions' addresses is not a constant expression
  // for every compiler and flag set (GCC refuses it under the sanitizers).
  using Fn = Var (*)(const Var&, const Var&);
  if (F == static_cast<Fn>(&tg::add)) return "add";
  if (F == static_cast<Fn>(&tg::sub)) return "subtract";
  if (F == static_cast<Fn>(&tg::mul)) return "multiply";
  if (F == static_cast<Fn>(&tg::div)) return "divide";
  if (F == static_cast<Fn>(&tg::pow)) return "power";
  return "matmul";
}

template <Var (*F)(const Var&, const Var&)>
py::object binop(const Var& self, py::handle other) {
  Var o = try_to_var(other, self->dtype());
  if (!o) return not_implemented();
  return with_op(op_name<F>(), [&] { return py::cast(F(self, o)); });
}

template <Var (*F)(const Var&, const Var&)>
py::object rbinop(const Var& self, py::handle other) {
  Var o = try_to_var(other, self->dtype());
  if (!o) return not_implemented();
  return with_op(op_name<F>(), [&] { return py::cast(F(o, self)); });
}

template <kern::CompareOp K>
py::object compare_op(const Var& self, py::handle other) {
  Var o = try_to_var(other, self->dtype());
  if (!o) return not_implemented();
  Tensor a = self->data, b = o->data;
  if (a.numel() >= kPredicateNumpyFrom || b.numel() >= kPredicateNumpyFrom) {
    Tensor out;  // h110-predicates: one shape and dtype, contiguous: SSE2, split over the pool
    if (kern::compare_same_shape(K, a, b, out)) return to_numpy(out);
    static const char* const kNumpyName[] = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal"};
    return numpy().attr(kNumpyName[static_cast<int>(K)])(to_numpy(a), to_numpy(b));
  }
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

// Basic-indexing keys (ints, slices, None, Ellipsis and tuples of them, the
// ints Python ints in range) parsed in C++ into the view they make, with no
// NumPy call. Returns false, having done nothing, for anything else,
// including every key that is an error: getitem then lets NumPy raise
// exactly NumPy's error.
bool parse_basic_index(const Shape& shape, PyObject* key, BasicIndex* ix) {
  PyObject* one[1] = {key};
  PyObject* const* items = one;
  Py_ssize_t nk = 1;
  if (PyTuple_Check(key)) {
    nk = PyTuple_GET_SIZE(key);
    items = &PyTuple_GET_ITEM(key, 0);
  }
  const int64_t ndim = static_cast<int64_t>(shape.size());
  int64_t consumed = 0;
  int ellipsis = -1;
  for (Py_ssize_t k = 0; k < nk; ++k) {
    PyObject* it = items[k];
    if (it == Py_Ellipsis) {
      if (ellipsis >= 0) return false;
      ellipsis = static_cast<int>(k);
    } else if (it != Py_None) {
      if (!PySlice_Check(it) && !(PyLong_Check(it) && !PyBool_Check(it))) return false;
      ++consumed;
    }
  }
  if (consumed > ndim) return false;
  BasicIndex r;
  r.start = Shape(shape.size(), 0);
  int64_t dim = 0;
  auto full_axes = [&](int64_t n) {
    for (int64_t j = 0; j < n; ++j, ++dim) {
      r.out_shape.push_back(shape[dim]);
      r.in_axis.push_back(dim);
      r.step.push_back(1);
    }
  };
  for (Py_ssize_t k = 0; k < nk; ++k) {
    PyObject* it = items[k];
    if (it == Py_Ellipsis) {
      full_axes(ndim - consumed);
    } else if (it == Py_None) {
      r.out_shape.push_back(1);
      r.in_axis.push_back(-1);
      r.step.push_back(0);
    } else if (PyLong_Check(it)) {
      int overflow = 0;
      long long i = PyLong_AsLongLongAndOverflow(it, &overflow);
      if (overflow || (i == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;
      }
      const int64_t n = shape[dim];
      if (i < -n || i >= n) return false;
      r.start[dim] = i < 0 ? i + n : i;
      ++dim;
    } else {
      Py_ssize_t start, stop, step;
      if (PySlice_Unpack(it, &start, &stop, &step) < 0) {
        PyErr_Clear();
        return false;
      }
      const Py_ssize_t len = PySlice_AdjustIndices(shape[dim], &start, &stop, step);
      r.out_shape.push_back(len);
      r.in_axis.push_back(dim);
      r.step.push_back(step);
      if (len) r.start[dim] = start;
      ++dim;
    }
  }
  if (ellipsis < 0) full_axes(ndim - dim);
  *ix = std::move(r);
  return true;
}

// An advanced key taken whole in C++ (no NumPy indexing call): a 1-d
// integer array or a list of Python ints (rows of axis 0; negative ones
// wrapped), or a C-contiguous boolean array shaped like the leading axes
// (the rows where it is true). Returns false, having done nothing, for any
// other key and for every key that is an error (an index out of range, a
// mask of the wrong shape): the NumPy path then raises NumPy's error.
struct RowKey {
  Tensor index;                   // the rows, int64 (ints)
  const uint8_t* mask = nullptr;  // the mask's bytes (masks)
  int64_t lead = 1;               // the axes the key covers
  int64_t rows = 0;               // rows of those axes (mask length)
};

template <class I>
bool copy_rows(const char* p, int64_t stride, int64_t k, int64_t n, int64_t* out) {
  bool ok = true;
  for (int64_t i = 0; i < k; ++i) {
    int64_t r = static_cast<int64_t>(*reinterpret_cast<const I*>(p + i * stride));
    if constexpr (std::is_signed_v<I>) r += r < 0 ? n : 0;
    ok &= r >= 0 && r < n;
    out[i] = r;
  }
  return ok;
}

bool parse_row_key(const Shape& shape, PyObject* key, RowKey* out) {
  if (shape.empty()) return false;
  const int64_t n = shape[0];
  if (PyList_CheckExact(key)) {
    const Py_ssize_t k = PyList_GET_SIZE(key);
    Tensor index = Tensor::empty(Shape{static_cast<int64_t>(k)}, DType::I64);
    int64_t* p = index.ptr<int64_t>();
    for (Py_ssize_t i = 0; i < k; ++i) {
      PyObject* it = PyList_GET_ITEM(key, i);
      if (!PyLong_CheckExact(it)) return false;  // (bools, NumPy ints, nested lists: NumPy's path)
      int overflow = 0;
      long long r = PyLong_AsLongLongAndOverflow(it, &overflow);
      if (overflow || (r == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;
      }
      if (r < 0) r += n;
      if (r < 0 || r >= n) return false;
      p[i] = r;
    }
    out->index = std::move(index);
    out->rows = n;
    return true;
  }
  if (Py_TYPE(key) != py::detail::npy_api::get().PyArray_Type_) return false;  // (subclasses: NumPy's path)
  auto arr = py::reinterpret_borrow<py::array>(py::handle(key));
  const py::ssize_t nd = arr.ndim();
  const char kind = arr.dtype().kind();
  if (kind == 'b') {
    if (nd < 1 || nd > static_cast<py::ssize_t>(shape.size()) || !(arr.flags() & py::array::c_style)) return false;
    int64_t rows = 1;
    for (py::ssize_t d = 0; d < nd; ++d) {
      if (arr.shape(d) != shape[d]) return false;
      rows *= shape[d];
    }
    out->mask = static_cast<const uint8_t*>(arr.data());
    out->lead = nd;
    out->rows = rows;
    return true;
  }
  if (nd != 1 || (kind != 'i' && kind != 'u')) return false;
  const int64_t k = arr.shape(0), stride = arr.strides(0);
  Tensor index = Tensor::empty(Shape{k}, DType::I64);
  const char* p = static_cast<const char*>(arr.data());
  int64_t* o = index.ptr<int64_t>();
  bool ok;
  switch (arr.itemsize() * (kind == 'u' ? -1 : 1)) {
    case 8: ok = copy_rows<int64_t>(p, stride, k, n, o); break;
    case 4: ok = copy_rows<int32_t>(p, stride, k, n, o); break;
    case -8: ok = copy_rows<uint64_t>(p, stride, k, n, o); break;
    case -4: ok = copy_rows<uint32_t>(p, stride, k, n, o); break;
    default: return false;
  }
  if (!ok) return false;
  out->index = std::move(index);
  out->rows = n;
  return true;
}

// The entries of a 1-d C-contiguous int64 ndarray in the machine's byte
// order that does not overlap x (v[ints] = c reads them while writing x);
// p null for any other key.
struct IntsKey {
  const int64_t* p = nullptr;
  int64_t k = 0;
};

IntsKey int64_key(PyObject* key, const Tensor& x) {
  if (Py_TYPE(key) != py::detail::npy_api::get().PyArray_Type_) return {};
  auto arr = py::reinterpret_borrow<py::array>(py::handle(key));
  if (arr.ndim() != 1 || arr.dtype().kind() != 'i' || arr.itemsize() != 8) return {};
  const char order = arr.dtype().byteorder(), native = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? '<' : '>';
  if (order != '=' && order != native) return {};
  const int64_t k = arr.shape(0);
  if (k > 1 && arr.strides(0) != 8) return {};
  const char* a = static_cast<const char*>(arr.data());
  const char* xb = static_cast<const char*>(x.raw());
  if (a < xb + x.nbytes() && xb < a + k * 8) return {};
  return {reinterpret_cast<const int64_t*>(a), k};
}

Var getitem(const Var& self, py::handle key) {
  const Shape& s = self->shape();
  BasicIndex bix;
  // (h99-scalar) v[i], a Python int in range on a 1-d Variable (scalar
  // programs read every element so): the BasicIndex parse_basic_index makes,
  // start {i} and nothing else, without its general walk over the key.
  if (s.size() == 1 && PyLong_CheckExact(key.ptr())) {
    int overflow = 0;
    const long long i = PyLong_AsLongLongAndOverflow(key.ptr(), &overflow);
    if (!overflow && !(i == -1 && PyErr_Occurred()) && i >= -s[0] && i < s[0]) {
      bix.start = Shape(size_t{1}, i < 0 ? i + s[0] : i);
      return with_op("getitem", [&] { return basic_index(self, bix); });
    }
    PyErr_Clear();  // (the general path below makes the error)
  }
  if (parse_basic_index(s, key.ptr(), &bix)) return with_op("getitem", [&] { return basic_index(self, bix); });
  RowKey rk;
  if (parse_row_key(s, key.ptr(), &rk))
    return with_op("getitem", [&] {
      return gather(self, rk.mask ? kern::mask_rows(rk.mask, rk.rows) : std::move(rk.index), rk.lead);
    });
  std::vector<py::ssize_t> shape(s.begin(), s.end());
  bool has_ellipsis = false;
  if (basic_key(key, &has_ellipsis)) {
    // A basic key the parser refused is an error (an index out of range, two
    // Ellipses, too many indices, a bad slice): NumPy, given the key on a
    // zero-size stand-in of the same shape (never read), raises its own.
    py::array base = py::array_t<uint8_t>(1);
    py::object probe = numpy().attr("lib").attr("stride_tricks").attr("as_strided")(
        base, py::tuple(py::cast(shape)), py::tuple(py::cast(std::vector<py::ssize_t>(shape.size(), 0))),
        py::arg("writeable") = false);
    try {
      py::object view = probe[key];  // (an accessor: evaluated when converted)
    } catch (py::error_already_set& e) {
      reraise_prefixed(e, "getitem");
    }
    throw index_error("getitem: internal error: NumPy accepts the key " + py::repr(key).cast<std::string>() +
                      " that the basic-index parser refused");
  }
  // Advanced indexing (arrays, lists, booleans): NumPy computes which flat
  // elements the key selects on an arange, with exact NumPy semantics.
  py::object idx = numpy().attr("arange")(self->data.numel(), py::arg("dtype") = "int64");
  try {
    idx = idx.attr("reshape")(py::tuple(py::cast(shape)))[key];
  } catch (py::error_already_set& e) {
    reraise_prefixed(e, "getitem");
  }
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> ix(idx);
  Shape out_shape(ix.shape(), ix.shape() + ix.ndim());
  Tensor index = Tensor::empty(out_shape, DType::I64);
  if (index.nbytes()) std::memcpy(index.raw(), ix.data(), index.nbytes());
  return with_op("getitem", [&] { return gather(self, index); });
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

// v[key] = value (issue 16): NumPy's semantics for every key and value NumPy
// takes, outside the graph only (as the in-place operators), version-counted
// so that a backward that saved the old values raises. It writes through a
// view to its base, as NumPy and PyTorch do.
void setitem(const Var& self, py::handle key, py::handle value) {
  if (grad_enabled() && self->requires_grad)
    throw graph_error("setitem: `v[key] = value` on a Variable that requires grad (shape " + shape_str(self->shape()) +
                      ") would change a value the graph may need: write under `with tapegrad.no_grad():` or into "
                      "`v.detach()`");
  const bool value_var = is_var(value);
  if (value_var && grad_enabled() && holder_of(value)->requires_grad)
    throw graph_error("setitem: a value that requires grad cannot be recorded by `v[key] = value`: write "
                      "`value.detach()`, or build the result out of place (tapegrad.where, concatenate)");
  if (self->data.storage->readonly) throw value_error("setitem: this Variable shares a read-only NumPy array");
  BasicIndex ix;
  double c;
  if (python_number(value.ptr(), &c) && is_float(self->dtype()) && parse_basic_index(self->shape(), key.ptr(), &ix)) {
    // The common `v[i] = 0.5`, `v[2:5] = 0`: no NumPy call.
    Tensor view = ix.apply(self->data);
    kern::write_through(view, kern::broadcast_to(Tensor::scalar(c, self->dtype()), view.shape, "setitem"), "setitem");
  } else if (IntsKey ik; python_number(value.ptr(), &c) && is_float(self->dtype()) && self->shape().size() == 1 &&
                        self->data.is_contiguous() && (ik = int64_key(key.ptr(), self->data)).p &&
                        kern::fill_ints(self->data, ik.p, ik.k, c)) {
    // `v[ints] = c` with an int64 array: the key read where it is (no
    // copy), its bounds checked and the stores split among threads. A key
    // out of range falls through: the paths below raise NumPy's error.
  } else if (RowKey rk; python_number(value.ptr(), &c) && is_float(self->dtype()) && self->data.is_contiguous() &&
                        parse_row_key(self->shape(), key.ptr(), &rk)) {
    // `v[mask] = 0`, `v[ints] = c`: one pass over the selected rows.
    const Shape& s = self->shape();
    const int64_t inner = numel(Shape(s.begin() + rk.lead, s.end()));
    if (rk.mask) kern::fill_rows(self->data, nullptr, rk.mask, rk.rows, inner, c);
    else kern::fill_rows(self->data, &rk.index, nullptr, rk.index.numel(), inner, c);
  } else {
    py::object val = value_var ? py::object(to_numpy(holder_of(value)->data)) : py::reinterpret_borrow<py::object>(value);
    py::array dst = to_numpy(self->data);
    try {
      dst[key] = val;
    } catch (py::error_already_set& e) {
      reraise_prefixed(e, "setitem");
    }
  }
  self->data.bump_version();
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
  }, op_name<F>());
}

PyObject* nb_power(PyObject* a, PyObject* b, PyObject* mod) {
  if (mod != Py_None) Py_RETURN_NOTIMPLEMENTED;
  return nb_binary<pow>(a, b);
}

PyObject* nb_negative(PyObject* a) {
  return guarded([&] { return cast_out(neg(holder_of(a))); }, "negative");
}

// abs(v) as the number slot (pybind11's __abs__ stays for explicit calls).
PyObject* nb_absolute(PyObject* a) {
  return guarded([&] { return cast_out(abs(holder_of(a))); }, "abs");
}

// v[key] = value as the mapping slot, and del v[key] refused as CPython
// refuses it for a type without deletion (pybind11's slot took
// __setitem__'s dispatcher and a lookup of __delitem__).
int mp_ass_subscript(PyObject* self, PyObject* key, PyObject* value) {
  if (!value) {
    PyErr_SetString(PyExc_TypeError, "'Variable' object does not support item deletion");
    return -1;
  }
  PyObject* r = guarded([&] {
    setitem(holder_of(self), key, value);
    return Py_None;  // (borrowed: only tested for null)
  }, "setitem");
  return r ? 0 : -1;
}

// v[key] as the mapping slot: no pybind11 dispatcher in between.
PyObject* mp_subscript(PyObject* self, PyObject* key) {
  return guarded([&] { return cast_out(getitem(holder_of(self), key)); }, "getitem");
}

// The one element of a dense float tensor read in place; Tensor::item()
// (its checks and errors) for anything else.
inline double item_of(const Tensor& t) {
  if (t.is_contiguous() && t.numel() == 1) {
    if (t.dtype == DType::F64) return *t.ptr<double>();
    if (t.dtype == DType::F32) return *t.ptr<float>();
  }
  return t.item();
}

PyObject* nb_float(PyObject* self) {
  return guarded([&] { return PyFloat_FromDouble(item_of(holder_of(self)->data)); }, "float");
}

// int(v) of a 0-d Variable: int(v.item()) (truncation; NaN and inf raise as
// int(float) does) as the slot, not a Python __int__ (211 ns, 5x this).
PyObject* nb_int(PyObject* self) {
  return guarded([&]() -> PyObject* {
    const Tensor& t = holder_of(self)->data;
    if (t.ndim() != 0)
      throw type_error("int(): only 0-d Variables convert to Python ints, got shape " + shape_str(t.shape));
    return PyLong_FromDouble(item_of(t));
  }, "int");
}

// v.item() as a METH_NOARGS method (pybind11's dispatcher was most of its cost).
PyObject* item_method(PyObject* self, PyObject*) {
  return guarded([&] { return PyFloat_FromDouble(item_of(holder_of(self)->data)); }, "item");
}

// np.asarray(v), np.array([v, w]) and every NumPy function that is not
// dispatched to tapegrad call v.__array__(dtype=None, copy=None): a raw
// METH_FASTCALL method (pybind11's dispatcher was most of its cost). An
// array computed from a graph would silently lose the gradient, so (as
// PyTorch) only a Variable outside the graph converts.
PyObject* array_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    static const char* const kNames[2] = {"dtype", "copy"};
    PyObject* a[2] = {Py_None, Py_None};
    fastcall_args("__array__", kNames, 2, 0, args, nargs, kwnames, a);
    const Var& v = holder_of(self);
    if (v->requires_grad)
      throw type_error(
          "__array__: this Variable requires grad, and a NumPy array made from it would drop the "
          "graph (a silent wrong gradient). Use v.data or v.numpy() for its values, v.detach() for "
          "a Variable outside the graph, or call the np.* function on the Variable itself (it "
          "dispatches to tapegrad).");
    py::object arr = to_numpy(v->data);
    if (a[0] != Py_None) {
      try {
        arr = arr.attr("astype")(py::handle(a[0]), py::arg("copy") = false);
      } catch (py::error_already_set& e) {
        reraise_prefixed(e, "__array__: dtype");
      }
    }
    if (a[1] != Py_None && bool_arg(a[1], "__array__", "copy")) arr = arr.attr("copy")();
    return arr.release().ptr();
  }, "__array__");
}
PyMethodDef g_array_def = {"__array__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&array_method)),
                           METH_FASTCALL | METH_KEYWORDS,
                           "__array__($self, dtype=None, copy=None)\n--\n\nThe values as a NumPy array sharing this "
                           "Variable's buffer (np.asarray(v)); refused for a Variable that requires grad."};
PyMethodDef g_item_def = {"item", &item_method, METH_NOARGS, "item(self)\n--\n\nThe one element as a Python float."};

// iter(v): the rows v[0], v[1], ... made one at a time (`next(iter(v))` on a
// long Variable makes one row, not all), each its own recorded getitem, so
// each element is differentiable on its own; its index is computed here, not
// parsed from a Python key. (An unbind-like op with one node for all rows
// would need nodes with several outputs, which the tape does not have.)
struct VarIter {
  PyObject_HEAD
  PyObject* var;
  int64_t i, n, row;  // next row, rows, elements per row
};

void var_iter_dealloc(PyObject* o) {
  Py_XDECREF(reinterpret_cast<VarIter*>(o)->var);
  PyObject_Free(o);
}

PyObject* var_iter_next(PyObject* o) {
  auto* it = reinterpret_cast<VarIter*>(o);
  if (it->i >= it->n) return nullptr;  // (StopIteration, without an exception object)
  return guarded([&] {
    const Var& v = holder_of(it->var);
    const Shape& s = v->shape();
    BasicIndex ix;  // v[i]: a view of row i
    ix.start = Shape(s.size(), 0);
    ix.start[0] = it->i;
    ix.out_shape.assign(s.begin() + 1, s.end());
    for (size_t d = 1; d < s.size(); ++d) {
      ix.in_axis.push_back(static_cast<int64_t>(d));
      ix.step.push_back(1);
    }
    ++it->i;
    return cast_out(basic_index(v, ix));
  }, "iter");
}

PyTypeObject g_var_iter_type = [] {
  PyTypeObject t;
  std::memset(&t, 0, sizeof t);  // (PyType_Ready fills ob_type from the base)
  Py_SET_REFCNT(reinterpret_cast<PyObject*>(&t), 1);
  t.tp_name = "tapegrad.VariableIterator";
  t.tp_basicsize = sizeof(VarIter);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_dealloc = &var_iter_dealloc;
  t.tp_iter = &PyObject_SelfIter;
  t.tp_iternext = &var_iter_next;
  return t;
}();

PyObject* tp_iter(PyObject* self) {
  return guarded([&]() -> PyObject* {
    const Shape& s = holder_of(self)->shape();
    if (s.empty()) throw type_error("iteration over a 0-d Variable");
    auto* it = PyObject_New(VarIter, &g_var_iter_type);
    if (!it) throw py::error_already_set();
    Py_INCREF(self);
    it->var = self;
    it->i = 0;
    it->n = s[0];
    it->row = 1;
    for (size_t d = 1; d < s.size(); ++d) it->row *= s[d];
    return reinterpret_cast<PyObject*>(it);
  }, "iter");
}

// Shape-like *args: one argument (an int, a sequence) or several ints.
Shape shape_from_fastcall(PyObject* const* args, Py_ssize_t nargs, const char* op, const char* what) {
  if (nargs == 1) return parse_shape(args[0], op, what);
  py::tuple t(nargs);
  for (Py_ssize_t i = 0; i < nargs; ++i) t[i] = py::reinterpret_borrow<py::object>(args[i]);
  return int_sequence(t, op, what);
}

void no_keywords(const char* name, PyObject* kwnames) {
  if (kwnames && PyTuple_GET_SIZE(kwnames))
    throw type_error(std::string(name) + "(): got an unexpected keyword argument '" +
                     py::str(PyTuple_GET_ITEM(kwnames, 0)).cast<std::string>() + "'");
}

// v.clip(a_min=None, a_max=None), v.astype(dtype) and v.reshape(*shape) as
// raw METH_FASTCALL methods (pybind11's dispatcher was about half their
// time on small arrays); their docs are the pybind11 methods' (bind_variable).
PyObject* clip_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] {
    static const char* const kNames[2] = {"a_min", "a_max"};
    PyObject* a[2] = {Py_None, Py_None};
    fastcall_args("clip", kNames, 2, 0, args, nargs, kwnames, a);
    return cast_out(clip_any(self, a[0], a[1]));
  }, "clip");
}
PyObject* astype_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] {
    static const char* const kNames[1] = {"dtype"};
    PyObject* a[1] = {nullptr};
    fastcall_args("astype", kNames, 1, 1, args, nargs, kwnames, a);
    return cast_out(astype(holder_of(self), parse_float_dtype(a[0], "astype")));
  }, "astype");
}
PyObject* reshape_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] {
    no_keywords("reshape", kwnames);
    // (v.reshape(2, 3), v.reshape((2, 3)), or v.reshape() for ())
    return cast_out(reshape(holder_of(self), shape_from_fastcall(args, nargs, "reshape", "shape")));
  }, "reshape");
}

// v.sum/mean/max/min(axis=None, keepdims=False) and v.transpose(*axes) too.
template <Var (*F)(const Var&, const std::optional<Axes>&, bool)>
PyObject* reduce_method(const char* name, PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] {
    static const char* const kNames[2] = {"axis", "keepdims"};
    PyObject* a[2] = {nullptr, nullptr};
    fastcall_args(name, kNames, 2, 0, args, nargs, kwnames, a);
    const Var& v = holder_of(self);
    std::optional<Axes> axes;
    if (a[0] && a[0] != Py_None) axes = normalized_axes(v, a[0], name);
    return cast_out(F(v, axes, a[1] && bool_arg(a[1], name, "keepdims")));
  }, name);
}
#define TG_REDUCE_METHOD(NAME, FN)                                                                      \
  PyObject* NAME##_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) { \
    return reduce_method<FN>(#NAME, self, args, nargs, kwnames);                                        \
  }
TG_REDUCE_METHOD(sum, sum)
TG_REDUCE_METHOD(mean, mean_warn)
TG_REDUCE_METHOD(max, max)
TG_REDUCE_METHOD(min, min)

TG_REDUCE_METHOD(prod, prod)
#undef TG_REDUCE_METHOD

// h88-scan: v.cumsum/cumprod(axis=None), v.var/std(axis=None, ddof=0, keepdims=False).
template <Var (*F)(const Var&, std::optional<int64_t>)>
PyObject* scan_method(const char* name, PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] {
    static const char* const kNames[1] = {"axis"};
    PyObject* a[1] = {nullptr};
    fastcall_args(name, kNames, 1, 0, args, nargs, kwnames, a);
    std::optional<int64_t> axis;
    if (a[0] && a[0] != Py_None) axis = int_arg(a[0], name, "axis");
    return cast_out(F(holder_of(self), axis));
  }, name);
}
template <Var (*F)(const Var&, const std::optional<Axes>&, double, bool)>
PyObject* moments_method(const char* name, PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] {
    static const char* const kNames[3] = {"axis", "ddof", "keepdims"};
    PyObject* a[3] = {nullptr, nullptr, nullptr};
    fastcall_args(name, kNames, 3, 0, args, nargs, kwnames, a);
    const Var& v = holder_of(self);
    std::optional<Axes> axes;
    if (a[0] && a[0] != Py_None) axes = normalized_axes(v, a[0], name);
    const double ddof = ddof_arg(a[1], name);
    const bool keepdims = a[2] && bool_arg(a[2], name, "keepdims");
    warn_empty_moments(v, axes);
    return cast_out(F(v, axes, ddof, keepdims));
  }, name);
}
PyObject* cumsum_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return scan_method<cumsum>("cumsum", self, args, nargs, kwnames);
}
PyObject* cumprod_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return scan_method<cumprod>("cumprod", self, args, nargs, kwnames);
}
PyObject* var_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return moments_method<variance>("var", self, args, nargs, kwnames);
}
PyObject* std_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return moments_method<stddev>("std", self, args, nargs, kwnames);
}

PyObject* transpose_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] {
    no_keywords("transpose", kwnames);
    const Var& v = holder_of(self);
    if (nargs == 0 || (nargs == 1 && args[0] == Py_None)) return cast_out(transpose(v, std::nullopt));
    return cast_out(transpose(v, std::optional<Axes>(shape_from_fastcall(args, nargs, "transpose", "axes"))));
  }, "transpose");
}

// h89-views: v.diagonal/trace/squeeze/swapaxes, the functions' bodies with self first.
template <size_t N>
PyObject* spec_method(PyObject* (*body)(PyObject* const*), const char* name, const char* const (&names)[N], int required,
                      PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] {
    PyObject* a[N + 1] = {self};
    fastcall_args(name, names, static_cast<int>(N), required, args, nargs, kwnames, a + 1);
    return body(a);
  }, name);
}
#define TG_SPEC_METHOD(NAME, REQ, ...)                                                                   \
  PyObject* NAME##_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) { \
    static const char* const names[] = {__VA_ARGS__};                                                    \
    return spec_method(&NAME##_body, #NAME, names, REQ, self, args, nargs, kwnames);                     \
  }
TG_SPEC_METHOD(diagonal, 0, "offset", "axis1", "axis2")
TG_SPEC_METHOD(trace, 0, "offset", "axis1", "axis2")
TG_SPEC_METHOD(squeeze, 0, "axis")
TG_SPEC_METHOD(swapaxes, 2, "axis1", "axis2")
#undef TG_SPEC_METHOD

PyMethodDef g_fastcall_methods[] = {
    {"clip", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&clip_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"astype", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&astype_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"reshape", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&reshape_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"sum", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&sum_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"mean", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&mean_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"max", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&max_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"min", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&min_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"transpose", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&transpose_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"diagonal", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&diagonal_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"trace", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&trace_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"squeeze", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&squeeze_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"swapaxes", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&swapaxes_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},

    {"prod", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&prod_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"cumsum", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&cumsum_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"cumprod", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&cumprod_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"var", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&var_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"std", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&std_method)), METH_FASTCALL | METH_KEYWORDS, nullptr},
};

}  // namespace

// The Variable methods of the spec's elementwise ops (v.exp()): METH_NOARGS
// descriptors; CPython checks that self is a Variable before the call.
struct UnaryMethod {
  const char* name;
  Var (*fn)(const Var&);
  const char* doc;
};
const UnaryMethod kUnaryMethods[] = {TG_SPEC_UNARY_METHODS};
constexpr size_t kNumUnaryMethods = sizeof(kUnaryMethods) / sizeof(kUnaryMethods[0]);

template <size_t I>
PyObject* unary_method(PyObject* self, PyObject*) {
  return guarded([&] { return cast_out(kUnaryMethods[I].fn(holder_of(self))); }, kUnaryMethods[I].name);
}

template <size_t... I>
void add_unary_methods(PyTypeObject* type, std::index_sequence<I...>) {
  static PyMethodDef defs[] = {{kUnaryMethods[I].name, &unary_method<I>, METH_NOARGS, kUnaryMethods[I].doc}...};
  for (PyMethodDef& d : defs) {
    py::object descr = py::reinterpret_steal<py::object>(PyDescr_NewMethod(type, &d));
    if (!descr || PyDict_SetItemString(type->tp_dict, d.ml_name, descr.ptr()) != 0) throw py::error_already_set();
  }
  PyType_Modified(type);
}

void bind_variable(py::module_& m) {
  py::class_<Node, NodeRef>(m, "Node", "A recorded operation (the grad_fn of a Variable).")
      .def_property_readonly("name", [](const Node& n) { return std::string(n.name()); }, "The op's name (\"tanh\").")
      .def_property_readonly("next_functions", [](const Node& n) { return n.next.to_vector(); },
                             "The Nodes of the op's inputs that are not leaves.")
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

  V.def(py::init(&construct_variable), py::arg("data"), py::arg("requires_grad") = false, py::arg("dtype") = py::none())
      // ----- data access
      .def_property("data", [](const Var& v) { return to_numpy(v->data); },
                    [](const Var& v, py::handle arr) {
                      // Replaces the values (keeping the dtype) without recording, like torch's `.data =`.
                      Tensor t = to_var(arr, v->dtype(), "data")->data;
                      v->data = t.dtype == v->dtype() ? t.clone() : kern::astype(t, v->dtype());
                    }, "The values as a NumPy array sharing this Variable's buffer; assigning replaces them "
                       "without recording.")
      .def("numpy", [](const Var& v) { return to_numpy(v->data); }, "The values as a NumPy array sharing this Variable's buffer.")
      .def("item", [](const Var& v) { return v->data.item(); }, "The value of a one-element Variable as a Python float.")
      .def("__float__", [](const Var& v) { return v->data.item(); })
      .def("__int__", [](py::handle self) { return py::reinterpret_steal<py::object>(nb_int(self.ptr())); })
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
      .def_property_readonly("shape", [](const Var& v) { return py::reinterpret_steal<py::tuple>(py::cast(v->shape()).release()); },
                             "The shape, a tuple of ints.")
      .def_property_readonly("ndim", [](const Var& v) { return v->data.ndim(); }, "The number of axes.")
      .def_property_readonly("size", [](const Var& v) { return v->data.numel(); }, "The number of elements.")
      .def_property_readonly("dtype", [](const Var& v) { return np_dtype(v->dtype()); },
                             "The NumPy dtype: float32 or float64.")
      .def_property_readonly("_version", [](const Var& v) { return v->data.version(); })
      // ----- autograd state
      .def_property("requires_grad", [](const Var& v) { return v->requires_grad; },
                    [](const Var& v, py::handle rg_) {
                      const bool rg = bool_arg(rg_, "requires_grad", "the value");
                      if (!v->is_leaf())
                        throw graph_error("requires_grad can only be changed on leaf Variables; use .detach() on "
                                          "the result of an op");
                      v->requires_grad = rg;
                    }, "Whether ops record this Variable on the tape (settable on leaves).")
      .def_property_readonly("is_leaf", [](const Var& v) { return v->is_leaf(); },
                             "True for a Variable no recorded op made (its .grad accumulates in backward).")
      .def_property_readonly("grad_fn", [](const Var& v) { return v->grad_fn; },
                             "The Node of the op that made this Variable, or None for a leaf.")
      .def_property("grad", &grad_of, &set_grad,
                    "The accumulated gradient: a NumPy array, a Variable after backward(create_graph=True), "
                    "or None; settable.")
      .def("zero_grad", [](const Var& v) { v->grad = nullptr; }, "Reset .grad to None.")
      .def("retain_grad", [](const Var& v) {
        if (!v->requires_grad) throw graph_error("retain_grad: this Variable does not require grad");
        if (v->is_leaf()) return;
        v->retains_grad = true;
        v->grad_fn->retained = v;
      }, "Keep this non-leaf Variable's gradient in .grad during backward (as leaves do).")
      .def_property_readonly("retains_grad", [](const Var& v) { return v->retains_grad; },
                             "Whether retain_grad() was called (always False for a leaf).")
      .def("detach", [](const Var& v) { return make_var(v->data); },
           "A Variable sharing this one's buffer, outside the graph.")
      .def("backward", named("backward", +[](const Var& self, py::handle grad, py::handle retain_graph, py::handle create_graph_) {
             const bool create_graph = bool_arg(create_graph_, "backward", "create_graph");
             bool retain = retain_graph.is_none() ? create_graph : bool_arg(retain_graph, "backward", "retain_graph");
             std::vector<Var> seeds;
             seeds.push_back(make_seed(self, grad, 0, "backward", share_seed(create_graph)));
             run_backward({self}, std::move(seeds), retain, create_graph);
           }), py::arg("grad") = py::none(), py::arg("retain_graph") = py::none(), py::arg("create_graph") = false,
           "Reverse sweep from this Variable; leaf gradients accumulate into .grad.")
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
      .def("__setitem__", &setitem, "v[key] = value with NumPy's semantics, outside the graph (under no_grad or on "
           "a Variable that requires no grad); bumps the version counter and writes through views.");
  V.def_property_readonly("T", [](const Var& v) { return transpose(v, std::nullopt); }, "The axes reversed (transpose()).");

  // ----- methods of the op spec, with its argument names, defaults and docs
  // pybind11's own signature lines are off here: each doc starts with CPython's
  // text signature (sum(self, axis=None)\n--\n\n), so inspect.signature works.
  py::options spec_docs;
  spec_docs.disable_function_signatures();
  add_unary_methods(g_var_type, std::make_index_sequence<kNumUnaryMethods>());
#define TG_REDUCE_METHOD(NAME, FN)                                                              \
  V.def(#NAME, named(#NAME, +[](const Var& v, py::handle axis, py::handle keepdims) {           \
    std::optional<Axes> axes = normalized_axes(v, axis, #NAME);                                 \
    return FN(v, axes, bool_arg(keepdims, #NAME, "keepdims"));                                  \
  }), TG_METHOD_SIG(NAME))
  TG_REDUCE_METHOD(sum, sum);
  TG_REDUCE_METHOD(mean, mean_warn);
  TG_REDUCE_METHOD(max, max);
  TG_REDUCE_METHOD(min, min);
  TG_REDUCE_METHOD(prod, prod);
#undef TG_REDUCE_METHOD
  V.def("cumsum", named("cumsum", +[](const Var& v, py::handle axis) {
    return cumsum(v, axis.is_none() ? std::nullopt : std::optional<int64_t>(int_arg(axis, "cumsum", "axis")));
  }), TG_METHOD_SIG(cumsum));
  V.def("cumprod", named("cumprod", +[](const Var& v, py::handle axis) {
    return cumprod(v, axis.is_none() ? std::nullopt : std::optional<int64_t>(int_arg(axis, "cumprod", "axis")));
  }), TG_METHOD_SIG(cumprod));
  V.def("var", named("var", +[](const Var& v, py::handle axis, py::handle ddof, py::handle keepdims) {
    std::optional<Axes> axes = normalized_axes(v, axis, "var");
    const double d = ddof_arg(ddof.ptr(), "var");
    const bool kd = bool_arg(keepdims, "var", "keepdims");
    warn_empty_moments(v, axes);
    return variance(v, axes, d, kd);
  }), TG_METHOD_SIG(var));
  V.def("std", named("std", +[](const Var& v, py::handle axis, py::handle ddof, py::handle keepdims) {
    std::optional<Axes> axes = normalized_axes(v, axis, "std");
    const double d = ddof_arg(ddof.ptr(), "std");
    const bool kd = bool_arg(keepdims, "std", "keepdims");
    warn_empty_moments(v, axes);
    return stddev(v, axes, d, kd);
  }), TG_METHOD_SIG(std));
  V.def("reshape", named("reshape", +[](const Var& v, py::args shape) { return reshape(v, shape_from_args(shape, "reshape")); }),
        TG_METHOD_SIG(reshape));
  V.def("transpose", named("transpose", +[](const Var& v, py::args axes) {
    if (axes.size() == 0 || (axes.size() == 1 && axes[0].is_none())) return transpose(v, std::nullopt);
    return transpose(v, shape_from_args(axes, "transpose", "axes"));
  }), TG_METHOD_SIG(transpose));
  V.def("clip", named("clip", +[](py::handle v, py::handle lo, py::handle hi) { return clip_any(v, lo, hi); }), TG_METHOD_SIG(clip));
  V.def("astype", named("astype", +[](const Var& v, py::handle dt) { return astype(v, parse_float_dtype(dt, "astype")); }),
        TG_METHOD_SIG(astype));
  // (h89-views: replaced by raw methods in install_fast_paths; these give their docs)
  V.def("diagonal", named("diagonal", +[](py::handle v, py::handle o, py::handle a1, py::handle a2) {
    PyObject* a[4] = {v.ptr(), o.ptr(), a1.ptr(), a2.ptr()};
    return py::reinterpret_steal<py::object>(diagonal_body(a));
  }), TG_METHOD_SIG(diagonal));
  V.def("trace", named("trace", +[](py::handle v, py::handle o, py::handle a1, py::handle a2) {
    PyObject* a[4] = {v.ptr(), o.ptr(), a1.ptr(), a2.ptr()};
    return py::reinterpret_steal<py::object>(trace_body(a));
  }), TG_METHOD_SIG(trace));
  V.def("squeeze", named("squeeze", +[](py::handle v, py::handle axis) {
    PyObject* a[2] = {v.ptr(), axis.ptr()};
    return py::reinterpret_steal<py::object>(squeeze_body(a));
  }), TG_METHOD_SIG(squeeze));
  V.def("swapaxes", named("swapaxes", +[](py::handle v, py::handle a1, py::handle a2) {
    PyObject* a[3] = {v.ptr(), a1.ptr(), a2.ptr()};
    return py::reinterpret_steal<py::object>(swapaxes_body(a));
  }), TG_METHOD_SIG(swapaxes));
}

// ----- h96-small: v.argmax(), v.argmin(), v.tolist(), v.detach() as raw methods (pybind11's dispatcher or
// a Python body was most of their time at 0-d and 16 elements). __init__ leaves the compositions' Python
// methods off where these are (_core._fast_methods).
template <bool Max>
PyObject* small_arg_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  PyObject* all[8];
  if (nargs + nkw + 1 > 8) {  // (more arguments than argmax has: the function's fallback words the error)
    py::object f = py::module_::import("tapegrad").attr(Max ? "argmax" : "argmin");
    py::list l;
    l.append(py::handle(self));
    for (Py_ssize_t i = 0; i < nargs + nkw; ++i) l.append(py::handle(args[i]));
    std::vector<PyObject*> v(l.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = l[i].ptr();
    return PyObject_Vectorcall(f.ptr(), v.data(), static_cast<size_t>(nargs + 1), kwnames);
  }
  all[0] = self;
  for (Py_ssize_t i = 0; i < nargs + nkw; ++i) all[i + 1] = args[i];
  return small_arg_extreme(Max, all, nargs + 1, kwnames);
}

// NumPy's tolist: nested lists of Python floats (a float for 0-d), walking the strides.
PyObject* small_tolist_walk(const char* p, const Shape& shape, const Shape& strides, size_t d, bool f32) {
  if (d == shape.size()) return PyFloat_FromDouble(f32 ? double(*reinterpret_cast<const float*>(p))
                                                       : *reinterpret_cast<const double*>(p));
  const int64_t step = strides[d] * (f32 ? 4 : 8);
  PyObject* l = PyList_New(static_cast<Py_ssize_t>(shape[d]));
  if (!l) return nullptr;
  for (int64_t i = 0; i < shape[d]; ++i) {
    PyObject* e = small_tolist_walk(p + i * step, shape, strides, d + 1, f32);
    if (!e) {
      Py_DECREF(l);
      return nullptr;
    }
    PyList_SET_ITEM(l, static_cast<Py_ssize_t>(i), e);
  }
  return l;
}
PyObject* small_tolist(PyObject* self, PyObject*) {
  return guarded([&] {
    const Tensor& t = holder_of(self)->data;
    return small_tolist_walk(static_cast<const char*>(t.data_ptr()), t.shape, t.strides(), 0, t.dtype == DType::F32);
  }, "tolist");
}
PyObject* small_detach(PyObject* self, PyObject*) {
  return guarded([&] { return cast_out(make_var(holder_of(self)->data)); }, "detach");
}
PyMethodDef g_small_methods[] = {
    {"argmax", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&small_arg_method<true>)),
     METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"argmin", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&small_arg_method<false>)),
     METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"tolist", &small_tolist, METH_NOARGS, "tolist($self)\n--\n\nThe values as nested Python lists (a number for a 0-d Variable)."},
    {"detach", &small_detach, METH_NOARGS, "detach($self)\n--\n\nA Variable sharing this one's buffer, outside the graph."}};
void install_small_methods() {
  py::dict spec = small_compositions();
  for (PyMethodDef& d : g_small_methods) {
    if (!d.ml_doc) {  // argmax/argmin: the spec's signature and doc, as the methods the compositions made
      py::dict e = spec[d.ml_name];
      std::string sig = py::str(e["signature"]).cast<std::string>();  // "(x, axis=None, ...)"
      sig = "($self" + sig.substr(sig.find(','));
      d.ml_doc = strdup((std::string(d.ml_name) + sig + "\n--\n\n" + py::str(e["doc"]).cast<std::string>()).c_str());
    }
    py::object m = py::reinterpret_steal<py::object>(PyDescr_NewMethod(g_var_type, &d));
    if (!m || PyDict_SetItemString(g_var_type->tp_dict, d.ml_name, m.ptr()) != 0) throw py::error_already_set();
  }
}

void install_fast_paths() {
  install_object_hooks();  // dealloc and the __init__ guard (object.cpp)
  // Number slots straight to C++ (the pybind11 __add__ etc. above stay for
  // introspection and explicit calls; they do the same thing).
  PyNumberMethods* nb = g_var_type->tp_as_number;
  nb->nb_add = &nb_binary<add, ScalarOp::Add, ScalarOp::Add>;
  nb->nb_subtract = &nb_binary<sub, ScalarOp::Sub, ScalarOp::CLeftSub>;
  nb->nb_multiply = &nb_binary<mul, ScalarOp::Mul, ScalarOp::Mul>;
  nb->nb_true_divide = &nb_binary<div, ScalarOp::Div, ScalarOp::CLeftDiv>;
  nb->nb_matrix_multiply = &nb_binary<matmul_nogil>;
  nb->nb_power = &nb_power;
  nb->nb_negative = &nb_negative;
  nb->nb_absolute = &nb_absolute;
  nb->nb_float = &nb_float;
  nb->nb_int = &nb_int;
  py::object item = py::reinterpret_steal<py::object>(PyDescr_NewMethod(g_var_type, &g_item_def));
  if (!item || PyDict_SetItemString(g_var_type->tp_dict, "item", item.ptr()) != 0) throw py::error_already_set();
  for (PyMethodDef& d : g_fastcall_methods) {
    // The doc (with its text signature) of the pybind11 method this replaces; kept for the process's life.
    // (Its raw ml_doc: __doc__ would drop the text signature.)
    py::object f = py::handle(reinterpret_cast<PyObject*>(g_var_type)).attr(d.ml_name);
    if (PyInstanceMethod_Check(f.ptr())) f = py::reinterpret_borrow<py::object>(PyInstanceMethod_GET_FUNCTION(f.ptr()));
    if (!PyCFunction_Check(f.ptr())) throw std::runtime_error(std::string("tapegrad: Variable.") + d.ml_name + " is not a builtin");
    const char* doc = reinterpret_cast<PyCFunctionObject*>(f.ptr())->m_ml->ml_doc;
    std::string text = doc ? doc : "";
    // A method descriptor marks its bound argument `$self` (inspect then drops it from v.clip's signature).
    const std::string head = std::string(d.ml_name) + "(self";
    if (text.rfind(head, 0) == 0) text.insert(head.size() - 4, "$");
    d.ml_doc = strdup(text.c_str());
    py::object m = py::reinterpret_steal<py::object>(PyDescr_NewMethod(g_var_type, &d));
    if (!m || PyDict_SetItemString(g_var_type->tp_dict, d.ml_name, m.ptr()) != 0) throw py::error_already_set();
  }
  py::object array = py::reinterpret_steal<py::object>(PyDescr_NewMethod(g_var_type, &g_array_def));
  if (!array || PyDict_SetItemString(g_var_type->tp_dict, "__array__", array.ptr()) != 0) throw py::error_already_set();
  g_var_type->tp_as_mapping->mp_subscript = &mp_subscript;
  g_var_type->tp_as_mapping->mp_ass_subscript = &mp_ass_subscript;
  if (PyType_Ready(&g_var_iter_type) < 0) throw py::error_already_set();
  g_var_type->tp_iter = &tp_iter;
  install_small_methods();  // h96-small
  PyType_Modified(g_var_type);
}

}  // namespace tgpy
