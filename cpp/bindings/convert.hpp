// Argument conversion for the bindings: array-likes and Python scalars to
// Variables (scalars take the other operand's dtype), NumPy dtypes, shapes
// and axes, and Tensors out as NumPy views. Internal to the bindings.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "object.hpp"
#include "tapegrad/ops.hpp"

namespace tgpy {

py::module_& numpy();  // the numpy module
py::dtype np_dtype(DType d);
// Parses a user-supplied dtype (np.float32, "float64", np.dtype(...)).
DType parse_float_dtype(py::handle obj, const char* op);
// The float dtype an array of NumPy dtype `dt` takes (NumPy promotion with
// `like` when given, else float64 for integers and bools), or nullopt when
// the data is not real numbers.
std::optional<DType> float_dtype_for(const py::dtype& dt, std::optional<DType> like);
// Copies any array-like into a new contiguous Tensor of dtype `dt`.
Tensor copy_to_tensor(const py::array& arr, DType dt);
// A NumPy array's fields, read from its struct (no Python call).
struct ArrayFields {
  void* data;
  Shape shape;
  int type_num;       // NumPy's: NPY_BOOL 0, NPY_FLOAT 11, NPY_DOUBLE 12
  bool native;        // native byte order
  bool c_contiguous;
  bool writeable;
};
// True (and `f` filled) when h is a numpy.ndarray (or a subclass).
bool array_fields(py::handle h, ArrayFields* f);
constexpr int kNpyBool = 0, kNpyFloat = 11, kNpyDouble = 12;
// The float dtype of native float32 / float64 fields, or nullopt.
std::optional<DType> native_float(const ArrayFields& f);
py::array as_ndarray(py::handle obj);
// Converts an operand to a Variable; returns null when it is not numeric
// (so operators can return NotImplemented). Python scalars take `like`'s dtype.
Var try_to_var(py::handle h, std::optional<DType> like);
// The same, raising TypeError naming `op` instead of returning null.
Var to_var(py::handle h, std::optional<DType> like, const char* op);
// Two operands of a binary function: scalars take the Variable's dtype.
std::pair<Var, Var> operands(py::handle a, py::handle b, const char* op);
// The one operand of a one-argument function.
Var unary_arg(py::handle x, const char* op);
// A sequence of operands (concatenate, stack): scalars take the first Variable's dtype.
std::vector<Var> var_list(py::handle seq, const char* op);
// A NumPy array viewing a Tensor's storage (no copy); keeps the storage alive.
py::array to_numpy(const Tensor& t);
// From this many elements a comparison or classification (isnan, ...) runs NumPy's own loop on views of
// the data: its SIMD loops write bools ~4x faster than tapegrad's kernel, built for the baseline (1M
// float64: 135 vs 600 us); below, the kernel saves NumPy's ~0.5 us of call and conversion.
// (Two contiguous Variables of one shape and dtype take kern::compare_same_shape instead: h110-predicates.)
constexpr int64_t kPredicateNumpyFrom = 4096;

bool is_integer(py::handle h);
std::string type_name(py::handle h);
// Scalar arguments, converted here rather than by pybind11 (whose failures
// are a dump of C++ signatures): an int (a Python or NumPy integer, not a
// bool) that fits int64, else TypeError / ValueError naming `op` and `arg`.
int64_t int_arg(py::handle h, const char* op, const char* arg);
// A flag (keepdims, requires_grad, ...): a bool, a NumPy bool or an int; TypeError otherwise.
bool bool_arg(py::handle h, const char* op, const char* arg);
// A tuple/list of ints (an axis tuple or a shape); TypeError otherwise.
std::vector<int64_t> int_sequence(py::handle seq, const char* op, const char* what);
std::optional<Axes> parse_axes(py::handle axis, const char* op);
std::optional<Axes> normalized_axes(const Var& x, py::handle axis, const char* op);
// An int or a sequence of ints (a shape; what = "axes" for transpose's).
Shape parse_shape(py::handle shape, const char* op, const char* what = "shape");
// Shape from a method's *args: v.reshape(2, 3) or v.reshape((2, 3)).
Shape shape_from_args(const py::args& args, const char* op, const char* what = "shape");
// The arguments of a raw METH_FASTCALL | METH_KEYWORDS function `fname`
// whose parameters are `names` (the first `required` of them required):
// out[i] is set for each one given (the caller presets the defaults).
// TypeError in inspect.Signature.bind's words (as the pybind11 functions')
// for too many, unknown, repeated or missing ones.
void fastcall_args(const char* fname, const char* const* names, int n, int required, PyObject* const* args,
                   Py_ssize_t nargs, PyObject* kwnames, PyObject** out);
// Re-raises the Python error in `e` (NumPy's, from a conversion) as the
// builtin type it derives from, its message prefixed with "op: ".
[[noreturn]] void reraise_prefixed(py::error_already_set& e, const std::string& prefix);

}  // namespace tgpy
