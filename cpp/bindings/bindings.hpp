// The pieces of tapegrad._core, one bind_* function per file; module.cpp
// calls them in this order. Also the few helpers one file lends another.
// Internal to the bindings (argument conversion: convert.hpp; the Python
// object's life: object.hpp).
#pragma once

#include <pybind11/pybind11.h>

#include <optional>
#include <vector>

#include "tapegrad/autograd.hpp"
#include "tapegrad/ops.hpp"

#include "convert.hpp"  // (fastcall_fn and binary_body below)

namespace tgpy {
using namespace tg;
namespace py = pybind11;

void bind_errors(py::module_& m);     // object.cpp: C++ exceptions -> Python ones
void bind_variable(py::module_& m);   // variable.cpp: the Node and Variable classes
void bind_functions(py::module_& m);  // functions.cpp: the op functions
void bind_sweeps(py::module_& m);     // sweeps.cpp: grad mode, _backward, _grad, _forward, ...
void bind_runtime(py::module_& m);    // functions.cpp: ISA, buffer cache, threads
void bind_optim(py::module_& m);      // optim.cpp: fused optimizer steps
void bind_distributed(py::module_& m);  // distributed.cpp: tapegrad.distributed's gradient-address test
void bind_custom(py::module_& m);     // custom.cpp: tapegrad.custom_op's recording
void bind_hooks(py::module_& m);      // hooks.cpp: Variable.register_hook and friends
void bind_numpy_protocol(py::module_& m);  // numpy_protocol.cpp: Variable.__array_ufunc__ / __array_function__
void bind_shape_fast(py::module_& m);  // shape_fast.cpp (h95-shape): the shape compositions' C++ bodies
void bind_round(py::module_& m);  // round.cpp (h100-small): round(x, decimals) and v.round
// called by bind_functions, in its order (__compositions__ and the fast paths depend on it):
void bind_contract(py::module_& m);  // contract.cpp: _dot, _vdot, _inner, _outer, _tensordot, _einsum_run
void bind_param(py::module_& m);     // param.cpp: elu, leaky_relu, _float_power
void bind_gather(py::module_& m);    // gather.cpp: _take, _take_along_axis, _repeat, _tile
void bind_fast_compositions(py::module_& m);  // fast_compositions.cpp: _fast, _set_fallback
void install_fast_paths();            // variable.cpp: raw number slots, dealloc, __init__ guard (last)
void install_call_errors(py::module_& m);  // object.cpp: a readable TypeError for calls no overload takes

// Storage::borrow's release for a NumPy array's buffer: drops the array's reference (under the GIL).
void decref_numpy(void*, void* ctx);
// functions.cpp (here, as gather.cpp and contract.cpp use them too)
// The other spec functions (and from_numpy) as raw METH_FASTCALL functions
// too: pybind11's dispatcher (overload matching, kwargs re-parsed into a
// dict, a function record walk) was a third to a half of their time on small
// arrays. F(a) gets the arguments by the spec's parameter names; an optional
// one not given is null and F supplies the spec's default.
template <size_t N, int Required, PyObject* (*F)(PyObject* const*)>
PyObject* fastcall_fn(const char* name, const char* const (&names)[N], PyObject* const* args, Py_ssize_t nargs,
                      PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    PyObject* a[N] = {};
    fastcall_args(name, names, static_cast<int>(N), Required < 0 ? static_cast<int>(N) : Required, args, nargs,
                  kwnames, a);
    return F(a);
  }, name);
}
#define TG_FASTCALL_FN_REQ(NAME, REQ, ...)                                                     \
  PyObject* NAME##_fn(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) { \
    static const char* const names[] = {__VA_ARGS__};                                          \
    return fastcall_fn<sizeof(names) / sizeof(names[0]), REQ, &NAME##_body>(#NAME, names, args, nargs, kwnames); \
  }
#define TG_FASTCALL_FN(NAME, ...) TG_FASTCALL_FN_REQ(NAME, -1, __VA_ARGS__)  // every argument required

// The binary functions (add(a, b), ..., matmul(a, b)).
template <Var (*F)(const Var&, const Var&)>
PyObject* binary_body(const char* name, PyObject* const* a) {
  auto [x, y] = operands(a[0], a[1], name);
  return cast_out(F(x, y));
}

Var matmul_nogil(const Var& a, const Var& b);  // releases the GIL for large products
Var clip_any(py::handle x, py::handle lo, py::handle hi);
// mean, plus NumPy's RuntimeWarning "Mean of empty slice." when no element is averaged.
Var mean_warn(const Var& x, const std::optional<Axes>& axes, bool keepdims);
// h89-views: the argument handling of diagonal, trace, squeeze, swapaxes (a[0] the
// Variable, a[i] the spec's i-th argument or null), shared with their methods.
PyObject* diagonal_body(PyObject* const* a);
PyObject* trace_body(PyObject* const* a);
PyObject* squeeze_body(PyObject* const* a);
PyObject* swapaxes_body(PyObject* const* a);

// The comparisons' bodies (_less, ...) under their public names (fast_compositions.cpp's less, ...).
PyObject* less_compare_body(PyObject* const* a);
PyObject* less_equal_compare_body(PyObject* const* a);
PyObject* greater_compare_body(PyObject* const* a);
PyObject* greater_equal_compare_body(PyObject* const* a);
PyObject* equal_compare_body(PyObject* const* a);
PyObject* not_equal_compare_body(PyObject* const* a);

// fast_compositions.cpp: argmax/argmin(x, axis=None, keepdims=False) (v.argmax()'s args with self first).
PyObject* small_arg_extreme(bool max, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames);
py::object small_compositions();  // _core.__compositions__ (set in bind_fast_compositions)

// var/std's ddof: an int or a float (null: 0); TypeError naming `name` otherwise.
double ddof_arg(PyObject* h, const char* name);
// RuntimeWarning "Mean of empty slice." when var/std reduce no element (as the composition did).
void warn_empty_moments(const Var& x, const std::optional<Axes>& axes);

// sweeps.cpp
// share: use a given gradient's buffer as is instead of a private copy
// (share_seed: when no hook could write into it and no graph keep it).
Var make_seed(const Var& self, py::handle grad, int nb = 0, const char* what = "backward", bool share = false);
bool share_seed(bool create_graph);
// Takes the seeds over (move them in: a seed only the sweep holds is one it owns).
void run_backward(const std::vector<Var>& roots, std::vector<Var> seeds, bool retain, bool create);
// Calls fn(*args) from inside a sweep (with the GIL; the sweep's engine lock
// released meanwhile, so that fn may run sweeps itself or wait for another
// thread's: see SweepPause). Custom-op rules and hooks run this way.
py::object call_in_sweep(py::handle fn, const py::tuple& args);

}  // namespace tgpy
