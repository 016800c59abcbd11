// tapegrad._core: the Variable class and the op functions, bound with pybind11.
//
// Everything a user calls lands here first, so this is where input is
// validated and converted: array-likes and Python scalars become Variables
// (scalars take the other operand's dtype), NumPy dtypes are checked, and
// core exceptions become ValueError / TypeError / RuntimeError / IndexError.
// One file per concern (see bindings.hpp); this one only puts them together.
#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "tapegrad's C++ core: Variable, primitive ops and the reverse sweep";
  tgpy::bind_errors(m);
  tgpy::bind_variable(m);  // first: the other signatures name Variable
  tgpy::bind_functions(m);
  tgpy::bind_shape_fast(m);  // (after bind_functions: reads __compositions__)
  tgpy::bind_round(m);  // h100-small (reads __compositions__ too)
  tgpy::bind_sweeps(m);
  tgpy::bind_runtime(m);
  tgpy::bind_optim(m);
  tgpy::bind_distributed(m);
  tgpy::bind_custom(m);
  tgpy::bind_hooks(m);
  tgpy::bind_numpy_protocol(m);
  tgpy::install_call_errors(m);  // a last overload each: calls that fit none raise a readable TypeError
  tgpy::install_fast_paths();  // last: replaces pybind11's dealloc, __init__ and number slots
}
