// tapegrad.distributed's per-step question "is this parameter's .grad still
// the view of its bucket that the reducer made it?" Reading .grad from Python
// builds a new ndarray each time (1.6 us) and np.may_share_memory costs
// 2.7 us more per parameter; this answers with the gradient's address alone.
#include "bindings.hpp"
#include "convert.hpp"

namespace tgpy {

void bind_distributed(py::module_& m) {
  m.def("_grad_address", [](py::handle param) -> int64_t {
        if (!is_var(param)) throw type_error("_grad_address: expected a Variable, got " + type_name(param));
        const Var& p = holder_of(param);
        if (!p->grad) return 0;
        if (p->grad->requires_grad) return -1;            // create_graph: a Variable, not an array
        // never compared with a view's address: not contiguous, or empty (its address may be null or a neighbour's)
        if (!p->grad->data.is_contiguous() || p->grad->data.numel() == 0) return -2;
        return reinterpret_cast<int64_t>(p->grad->data.data_ptr());
      }, py::arg("param"),
      "The address of param.grad's first element: 0 when .grad is None, -1 when it is a Variable (create_graph), "
      "-2 when it is not contiguous or empty. Equal to a non-empty contiguous view's address: .grad is that view.");
}

}  // namespace tgpy
