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
void install_fast_paths();            // variable.cpp: raw number slots, dealloc, __init__ guard (last)
void install_call_errors(py::module_& m);  // object.cpp: a readable TypeError for calls no overload takes

// functions.cpp
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

// ----- h96-small: argmax/argmin(x, axis=None, keepdims=False) (v.argmax()'s args with self first).
PyObject* small_arg_extreme(bool max, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames);
py::object small_compositions();  // _core.__compositions__ (set in bind_functions)

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
