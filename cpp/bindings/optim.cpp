// Fused optimizer steps (tapegrad.optim drives them): one call per step
// updates every parameter with one fused kernel (cpp/src/optim.cpp).
#include <string>
#include <utility>

#include "bindings.hpp"
#include "convert.hpp"
#include "tapegrad/optim.hpp"

namespace tgpy {

void bind_optim(py::module_& m) {
  // ----- fused optimizer steps (tapegrad.optim drives them) -----
  // One call per optimizer step for all parameters: each parameter with a
  // .grad is updated in place by one fused kernel; parameters without one
  // are skipped. states[i] is the parameter's state dict (the optimizer's
  // own, so state_dict() sees it); buffers are created in it on first use.
  // grad_scale (tapegrad.distributed's 1/N) multiplies each gradient in the
  // same pass and is written back, so .grad holds what the update used.
  auto param_list = [](py::handle params, py::handle states, const char* op) {
    py::list ps = py::reinterpret_borrow<py::list>(params), ss = py::reinterpret_borrow<py::list>(states);
    if (!py::isinstance<py::list>(params) || !py::isinstance<py::list>(states) || ps.size() != ss.size())
      throw type_error(std::string(op) + ": expected two lists of equal length (parameters, state dicts)");
    for (size_t i = 0; i < ps.size(); ++i) {
      if (!is_var(ps[i])) throw type_error(std::string(op) + ": parameter " + std::to_string(i) + " is not a Variable");
      if (!py::isinstance<py::dict>(ss[i])) throw type_error(std::string(op) + ": state " + std::to_string(i) + " is not a dict");
    }
    return std::make_pair(ps, ss);
  };
  auto buffer = [](py::dict st, const char* key, const Var& p) -> Tensor {
    if (!st.contains(key)) st[key] = py::reinterpret_steal<py::object>(cast_out(make_var(Tensor::zeros(p->shape(), p->dtype()))));
    py::handle b = st[key];
    if (!is_var(b)) throw type_error(std::string("optimizer state ") + key + " is not a Variable");
    return holder_of(b)->data;
  };
  m.def("_sgd_steps", [param_list, buffer](py::handle params, py::handle states, double lr, double momentum,
                                           bool nesterov, double wd, double grad_scale) {
        auto [ps, ss] = param_list(params, states, "SGD");
        for (size_t i = 0; i < ps.size(); ++i) {
          const Var& p = holder_of(ps[i]);
          if (!p->grad) continue;
          Tensor b;
          if (momentum != 0) b = buffer(ss[i].cast<py::dict>(), "momentum_buffer", p);
          optim::sgd_step(*p, p->grad->data, momentum != 0 ? &b : nullptr, lr, momentum, nesterov, wd, grad_scale);
        }
      }, py::arg("params"), py::arg("states"), py::arg("lr"), py::arg("momentum"), py::arg("nesterov"),
      py::arg("weight_decay"), py::arg("grad_scale") = 1.0,
      "One fused SGD update of every parameter that has a .grad (in place; with grad_scale != 1 each .grad is "
      "first multiplied by it, in place, in the same pass).");
  m.def("_adam_steps", [param_list, buffer](py::handle params, py::handle states, double lr, double beta1,
                                            double beta2, double eps, double wd, bool decoupled,
                                            double grad_scale) {
        auto [ps, ss] = param_list(params, states, decoupled ? "AdamW" : "Adam");
        for (size_t i = 0; i < ps.size(); ++i) {
          const Var& p = holder_of(ps[i]);
          if (!p->grad) continue;
          py::dict st = ss[i].cast<py::dict>();
          Tensor m1 = buffer(st, "exp_avg", p), m2 = buffer(st, "exp_avg_sq", p);
          int64_t step = (st.contains("step") ? st["step"].cast<int64_t>() : 0) + 1;
          optim::adam_step(*p, p->grad->data, m1, m2, step, lr, beta1, beta2, eps, wd, decoupled, grad_scale);
          st["step"] = step;
        }
      }, py::arg("params"), py::arg("states"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("decoupled"), py::arg("grad_scale") = 1.0,
      "One fused Adam/AdamW update of every parameter that has a .grad (in place; its exp_avg and exp_avg_sq "
      "too, created in its state dict on first use, and its step count; with grad_scale != 1 each .grad is "
      "first multiplied by it, in place, in the same pass).");
  // tapegrad.distributed makes each parameter's .grad a view of its flat
  // bucket (PyTorch DDP's gradient_as_bucket_view): a backward then adds
  // into the bucket and the reduction runs in place there, with no copy back.
  // Assigning .grad copies (a user's array must not alias it by accident);
  // this shares the array's memory, after checking it can hold the gradient.
  m.def("_set_grad_view", [m](py::handle param, py::handle array, py::handle name) {
        // (the messages are built only on failure: the reducer calls this once per parameter per step)
        auto what = [&] { return "_set_grad_view: parameter " + py::str(name).cast<std::string>(); };
        if (!is_var(param)) throw type_error(what() + " is not a Variable");
        const Var& p = holder_of(param);
        if (!p->is_leaf() || !p->requires_grad)
          throw value_error(what() + " (shape " + shape_str(p->shape()) + ") must be a leaf that requires grad");
        if (!py::isinstance<py::array>(array))
          throw type_error(what() + ": the view must be a numpy.ndarray, got " + type_name(array));
        py::array arr = py::reinterpret_borrow<py::array>(array);
        const bool same_shape = static_cast<size_t>(arr.ndim()) == p->shape().size() &&
                                std::equal(p->shape().begin(), p->shape().end(), arr.shape());
        const bool contiguous = (arr.flags() & py::array::c_style) && arr.writeable();
        if (!same_shape || !contiguous || !arr.dtype().is(np_dtype(p->dtype()))) {
          Shape shape(arr.shape(), arr.shape() + arr.ndim());
          const std::string got = "a view of shape " + shape_str(shape) + " and dtype " +
                                  py::str(arr.dtype()).cast<std::string>();
          if (!same_shape || !arr.dtype().equal(np_dtype(p->dtype())))
            throw value_error(what() + " has shape " + shape_str(p->shape()) + " and dtype " +
                              py::str(np_dtype(p->dtype())).cast<std::string>() + ", got " + got);
          if (!contiguous) throw value_error(what() + ": " + got + " must be C-contiguous and writeable");
        }
        static py::handle from_numpy = py::object(m.attr("from_numpy")).release();  // shares arr's memory, keeps it alive
        p->grad = holder_of(from_numpy(arr));
      }, py::arg("param"), py::arg("array"), py::arg("name"),
      "Make param.grad share the memory of array (same shape and dtype, C-contiguous, writeable): no copy.");
}

}  // namespace tgpy
