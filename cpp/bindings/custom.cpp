// Custom ops (tapegrad.custom_op): a node whose VJP and JVP rules are Python
// functions on NumPy arrays.
#include <cstring>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "tapegrad/kernels.hpp"

namespace tgpy {
namespace {

// A node whose rules are Python functions (tapegrad.custom_op). The sweep
// runs without the GIL and takes it back here (call_in_sweep), as it does for
// hooks (hooks.cpp): the only Python that runs inside a sweep.

// A read-only NumPy view for a rule (rules must not change saved values).
py::array rule_view(const Tensor& t) {
  py::array a = to_numpy(t);
  a.attr("setflags")(py::arg("write") = false);
  return a;
}

struct CustomNode final : Node {
  py::object op;  // the tapegrad.custom_op
  std::string op_name;
  SmallVec<Shape, 2> in_shapes;
  SmallVec<DType, 2> in_dtypes;

  ~CustomNode() override {
    if (!Py_IsInitialized()) {
      op.release();  // the interpreter is gone: leak rather than crash
      return;
    }
    py::gil_scoped_acquire gil;  // nodes may die in a sweep, without the GIL
    op = py::object();
  }
  const char* name() const override { return op_name.c_str(); }

  void refuse_second_order() const {
    if (grad_enabled())
      throw not_implemented_error("custom op '" + op_name + "': second-order derivatives (create_graph, hessian, "
                                  "hvp) through a custom op are not supported: its rules run on NumPy arrays");
  }
  py::tuple rule_args(const py::array& first) {
    py::tuple args(1 + saved.size());
    args[0] = first;
    args[1] = rule_view(tensor(saved.size() - 1));  // ans (saved last)
    for (size_t i = 0; i + 1 < saved.size(); ++i) args[2 + i] = rule_view(tensor(i));
    return args;
  }
  // A rule's result as a Variable of `dtype` and shape `shape`. A VJP result
  // that `shape` broadcasts to (an un-reduced broadcast, as the reference
  // engine allows) is summed down to it; any other shape is refused, including
  // one that merely broadcasts to `shape` ((1,) or () for (3,)): that is a rule
  // that lost an axis, not a gradient.
  Var result(py::handle r, const Shape& shape, DType dtype, const char* what, size_t i, int nb) {
    py::array a = as_ndarray(r);
    if (!float_dtype_for(a.dtype(), dtype))
      throw type_error("custom op '" + op_name + "': the " + what + " rule returned dtype " +
                       py::str(a.dtype()).cast<std::string>() + " for input " + std::to_string(i));
    Var v = make_var(copy_to_tensor(a, dtype));
    if (v->shape() == shape) return v;
    if (std::strcmp(what, "VJP") == 0 && v->shape().size() >= shape.size()) {
      Shape common;
      try {
        common = kern::broadcast_shapes(v->shape(), shape, "custom op");
      } catch (const value_error&) {
      }
      if (common == v->shape()) return sum_to(v, shape, nb);
    }
    throw value_error("custom op '" + op_name + "': the " + what + " rule returned shape " + shape_str(v->shape()) +
                      " for input " + std::to_string(i) + ", expected " + shape_str(shape) +
                      (nb ? " (the batch axes of its cotangent or tangent, then the shape)" : ""));
  }

  Grads vjp(const Var& g) override {
    refuse_second_order();
    py::gil_scoped_acquire gil;
    py::object rule = op.attr("vjp_rule");
    if (rule.is_none())
      throw not_implemented_error("custom op '" + op_name + "' has no VJP rule (reverse mode): define one with "
                                  "@" + op_name + ".defvjp");
    py::object r = call_in_sweep(rule, rule_args(rule_view(g->data)));
    size_t n = in_shapes.size();
    bool seq = py::isinstance<py::tuple>(r) || py::isinstance<py::list>(r);
    if (n > 1 && !seq)
      throw value_error("custom op '" + op_name + "': the VJP rule must return a tuple of " + std::to_string(n) +
                        " gradients (one per input), got " + type_name(r));
    py::tuple rs = seq ? py::tuple(r) : py::make_tuple(r);
    if (rs.size() != n)
      throw value_error("custom op '" + op_name + "': the VJP rule returned " + std::to_string(rs.size()) +
                        " gradients for " + std::to_string(n) + " inputs");
    int nb = batch_dims(g);
    Grads out;
    for (size_t i = 0; i < n; ++i) {
      if (!needs(i) || rs[i].is_none()) {
        out.push_back(nullptr);
        continue;
      }
      Shape want(g->shape().begin(), g->shape().begin() + nb);
      want.insert(want.end(), in_shapes[i].begin(), in_shapes[i].end());
      out.push_back(result(rs[i], want, in_dtypes[i], "VJP", i, nb));
    }
    return out;
  }

  Var jvp(const Grads& ts, int nb) override {
    refuse_second_order();
    py::gil_scoped_acquire gil;
    py::object rules = op.attr("jvp_rules");
    if (rules.is_none())
      throw not_implemented_error("custom op '" + op_name + "' has no JVP rule (forward mode): define one with "
                                  "@" + op_name + ".defjvp");
    Var total;
    for (size_t i = 0; i < ts.size(); ++i) {
      if (!ts[i]) continue;
      py::object rule = py::tuple(rules)[i];
      if (rule.is_none())
        throw not_implemented_error("custom op '" + op_name + "' has no JVP rule for input " + std::to_string(i));
      Shape want(ts[i]->shape().begin(), ts[i]->shape().begin() + nb);
      want.insert(want.end(), out_shape.begin(), out_shape.end());
      Var c = result(call_in_sweep(rule, rule_args(rule_view(ts[i]->data))), want, tensor(saved.size() - 1).dtype, "JVP", i, nb);
      total = total ? add(total, c) : c;
    }
    return total;
  }
};

Var custom_record(py::object op, const std::vector<Var>& inputs, py::handle out_array) {
  std::string op_name = py::str(op.attr("name")).cast<std::string>();
  py::array arr = as_ndarray(out_array);
  std::optional<DType> dt = float_dtype_for(arr.dtype(), std::nullopt);
  if (!dt) throw type_error("custom op '" + op_name + "': the forward function must return real numbers");
  Var out = make_var(copy_to_tensor(arr, *dt));
  std::string where;
  std::vector<const VariableImpl*> ins;
  if (anomaly_enabled()) {  // the same checks as the built-in ops' (Recorder)
    for (const Var& v : inputs) ins.push_back(v.get());
    where = anomaly_location();
    anomaly_check_forward(op_name.c_str(), *out, ins, where);
  }
  bool any = false;
  for (const Var& v : inputs) any = any || v->requires_grad;
  if (!grad_enabled() || !any) return out;
  auto n = make_ref<CustomNode>();
  n->op = std::move(op);
  n->op_name = std::move(op_name);
  n->out_shape = out->shape();
  for (const Var& v : inputs) {
    n->next.push_back(v->requires_grad ? grad_edge(v) : nullptr);
    n->in_shapes.push_back(v->shape());
    n->in_dtypes.push_back(v->dtype());
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    n->saved.push_back(Saved{inputs[i]->data, inputs[i]->data.version(), static_cast<int16_t>(i), true});
  n->saved.push_back(Saved{out->data, out->data.version(), -1, true});
  if (anomaly_enabled()) anomaly_annotate(*n, ins, where);
  out->requires_grad = true;
  out->grad_fn = std::move(n);
  return out;
}

}  // namespace

void bind_custom(py::module_& m) {
  m.def("_custom_record", &custom_record, py::arg("op"), py::arg("inputs"), py::arg("output"),
        "Record a tapegrad.custom_op application (its forward already computed) on the tape.");
}

}  // namespace tgpy
