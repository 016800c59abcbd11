// The kernels of the compositions dot, vdot, inner, outer, tensordot, einsum: _dot, _vdot, _inner, _outer,
// _tensordot, _einsum_run, raw METH_FASTCALL functions as the spec's (python/tapegrad/_compose.py calls them; their
// errors name the public function). The C++ bodies are in cpp/src/ops/contract.cpp. bind_functions calls
// bind_contract in its registration order.
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"

namespace tgpy {

namespace {
// o as a list or tuple (PySequence_Fast), owned; TypeError "<op>: <what> must be <kind>, got <o's type>" when
// o is not a sequence (the message built only then: einsum's plan passes here per step).
py::object fast_sequence(PyObject* o, const char* op, const char* what, const char* kind) {
  PyObject* seq = PySequence_Fast(o, "");
  if (!seq) {
    PyErr_Clear();
    throw type_error(std::string(op) + ": " + what + " must be " + kind + ", got " + type_name(o));
  }
  return py::reinterpret_steal<py::object>(seq);
}
// A sequence of ints (any sequence: tuple, list, range, array), or one int.
Axes contract_ints(PyObject* o, const char* op, const char* what) {
  if (!PyTuple_Check(o) && !PyList_Check(o) && is_integer(o)) return Axes{int_arg(o, op, what)};
  py::object hold = fast_sequence(o, op, what, "an int or a sequence of ints");
  PyObject* seq = hold.ptr();
  Axes out;
  out.reserve(PySequence_Fast_GET_SIZE(seq));
  for (Py_ssize_t i = 0, n = PySequence_Fast_GET_SIZE(seq); i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
    int overflow = 0;  // a small Python int (einsum's plan is made of them) without is_integer's NumPy check
    const long long v = PyLong_CheckExact(item) ? PyLong_AsLongLongAndOverflow(item, &overflow) : 0;
    out.push_back(PyLong_CheckExact(item) && !overflow ? int64_t(v) : int_arg(item, op, what));
  }
  return out;
}
PyObject* contract_dot_body(PyObject* const* a) { return binary_body<dot>("dot", a); }
PyObject* contract_vdot_body(PyObject* const* a) { return binary_body<vdot>("vdot", a); }
PyObject* contract_inner_body(PyObject* const* a) { return binary_body<inner>("inner", a); }
PyObject* contract_outer_body(PyObject* const* a) { return binary_body<outer>("outer", a); }
PyObject* contract_tensordot_body(PyObject* const* a) {
  auto [x, y] = operands(a[0], a[1], "tensordot");
  if (!a[2]) return cast_out(tensordot(x, y, int64_t(2)));
  if (is_integer(a[2])) return cast_out(tensordot(x, y, int_arg(a[2], "tensordot", "axes")));
  const char* kind = "an int or a pair (axes of a, axes of b)";
  py::object hold = fast_sequence(a[2], "tensordot", "axes", kind);
  PyObject* pair = hold.ptr();
  if (PySequence_Fast_GET_SIZE(pair) != 2)
    throw type_error(std::string("tensordot: axes must be ") + kind + ", got a sequence of " +
                     std::to_string(PySequence_Fast_GET_SIZE(pair)));
  return cast_out(tensordot(x, y, contract_ints(PySequence_Fast_GET_ITEM(pair, 0), "tensordot", "axes"),
                            contract_ints(PySequence_Fast_GET_ITEM(pair, 1), "tensordot", "axes")));
}
// _einsum_run(subscripts, operands, planner): operands Variables; planner(subscripts, shapes) -> (steps, result)
// (python/tapegrad/_compose.py _einsum_plan), steps (kind, dst, src, *args) of ints. Its plans are kept here by
// (subscripts, shapes) with the planner: a repeated call builds that key from the Variables' shapes and runs the plan,
// no Python call in between (the shapes as Python tuples, the lru_cache's lookup and the steps' conversion cost
// 2/3 of a 4-element einsum's instructions).
std::vector<EinsumStep> einsum_steps(PyObject* steps_obj) {
  py::object hold_steps = fast_sequence(steps_obj, "einsum", "the plan", "a sequence of steps");
  PyObject* steps = hold_steps.ptr();
  std::vector<EinsumStep> plan;
  plan.reserve(PySequence_Fast_GET_SIZE(steps));
  for (Py_ssize_t i = 0, n = PySequence_Fast_GET_SIZE(steps); i < n; ++i) {
    Axes v = contract_ints(PySequence_Fast_GET_ITEM(steps, i), "einsum", "a plan step");
    if (v.size() < 3 || v[0] < EinsumStep::Diagonal || v[0] > EinsumStep::Matmul)
      throw value_error("einsum: a plan step is (kind, dst, src, *args) with kind in [0, 5], got " +
                        std::to_string(v.size()) + " ints");
    plan.push_back(EinsumStep{static_cast<EinsumStep::Kind>(v[0]), v[1], v[2], Axes(v.begin() + 3, v.end())});
  }
  return plan;
}
struct EinsumPlan {
  py::object planner;  // (held: its id cannot pass to another planner)
  std::vector<EinsumStep> steps;
  int64_t result;
};
PyObject* contract_einsum_run_body(PyObject* const* a) {
  if (!PyUnicode_Check(a[0])) throw type_error("einsum: subscripts must be a string, got " + type_name(a[0]));
  py::object hold_ops = fast_sequence(a[1], "einsum", "operands", "a sequence of Variables");
  PyObject* ops = hold_ops.ptr();
  const Py_ssize_t n_ops = PySequence_Fast_GET_SIZE(ops);
  std::vector<Var> regs;
  regs.reserve(n_ops);
  Py_ssize_t len = 0;
  const char* sub = PyUnicode_AsUTF8AndSize(a[0], &len);
  if (!sub) throw py::error_already_set();
  std::string key(reinterpret_cast<const char*>(&len), sizeof len);  // (lengths first: no two keys alike)
  key.append(sub, len);
  for (Py_ssize_t i = 0; i < n_ops; ++i) {
    PyObject* o = PySequence_Fast_GET_ITEM(ops, i);
    if (!is_var(o)) throw type_error("einsum: the plan's operands must be Variables, got " + type_name(o));
    regs.push_back(holder_of(o));
    const Shape& s = regs.back()->shape();
    const int64_t nd = static_cast<int64_t>(s.size());
    key.append(reinterpret_cast<const char*>(&nd), sizeof nd);
    key.append(reinterpret_cast<const char*>(s.data()), s.size() * sizeof(int64_t));
  }
  // (the GIL is held: no other thread here; never destroyed, as it holds Python objects)
  static auto& plans = *new std::unordered_map<std::string, EinsumPlan>();
  auto it = plans.find(key);
  if (it == plans.end() || it->second.planner.ptr() != a[2]) {
    py::tuple shapes(n_ops);
    for (Py_ssize_t i = 0; i < n_ops; ++i) {
      const Shape& s = regs[i]->shape();
      py::tuple t(s.size());
      for (size_t d = 0; d < s.size(); ++d) t[d] = py::int_(s[d]);
      shapes[i] = t;
    }
    py::object planned = py::reinterpret_borrow<py::object>(a[2])(py::reinterpret_borrow<py::object>(a[0]), shapes);
    py::object hold = fast_sequence(planned.ptr(), "einsum", "the planner's result", "a pair (steps, result)");
    if (PySequence_Fast_GET_SIZE(hold.ptr()) != 2)
      throw type_error("einsum: the planner's result must be a pair (steps, result)");
    EinsumPlan plan{py::reinterpret_borrow<py::object>(a[2]), einsum_steps(PySequence_Fast_GET_ITEM(hold.ptr(), 0)),
                    int_arg(PySequence_Fast_GET_ITEM(hold.ptr(), 1), "einsum", "result")};
    if (plans.size() >= 1024) plans.clear();  // a bound, as the planner's lru_cache
    it = plans.insert_or_assign(std::move(key), std::move(plan)).first;
  }
  return cast_out(einsum_run(std::move(regs), it->second.steps, it->second.result));
}
template <size_t N, PyObject* (*F)(PyObject* const*)>
PyObject* contract_fn(const char* name, const char* const (&names)[N], int required, PyObject* const* args,
                      Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> PyObject* {
    PyObject* a[N] = {};
    fastcall_args(name + 1, names, static_cast<int>(N), required, args, nargs, kwnames, a);
    return F(a);
  }, name + 1);
}
const char* const kContractAB[] = {"a", "b"};
const char* const kContractAxes[] = {"a", "b", "axes"};
const char* const kContractRun[] = {"subscripts", "operands", "planner"};
#define TG_CONTRACT_FN(NAME, NAMES, REQ)                                                           \
  PyObject* contract##NAME##_fn(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) { \
    return contract_fn<sizeof(NAMES) / sizeof(NAMES[0]), &contract##NAME##_body>(#NAME, NAMES, REQ, args, nargs, kw);  \
  }
TG_CONTRACT_FN(_dot, kContractAB, 2)
TG_CONTRACT_FN(_vdot, kContractAB, 2)
TG_CONTRACT_FN(_inner, kContractAB, 2)
TG_CONTRACT_FN(_outer, kContractAB, 2)
TG_CONTRACT_FN(_tensordot, kContractAxes, 2)
TG_CONTRACT_FN(_einsum_run, kContractRun, 3)
#undef TG_CONTRACT_FN
#define TG_CONTRACT_DEF(NAME)                                                                             \
  {#NAME, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&contract##NAME##_fn)),              \
   METH_FASTCALL | METH_KEYWORDS, "The kernel of the composition " #NAME "[1:] (opspec/ops.py COMPOSITIONS)."}
PyMethodDef kContractDefs[] = {TG_CONTRACT_DEF(_dot),   TG_CONTRACT_DEF(_vdot),      TG_CONTRACT_DEF(_inner),
                               TG_CONTRACT_DEF(_outer), TG_CONTRACT_DEF(_tensordot), TG_CONTRACT_DEF(_einsum_run),
                               {nullptr, nullptr, 0, nullptr}};
#undef TG_CONTRACT_DEF
}  // namespace

void bind_contract(py::module_& m) {
  if (PyModule_AddFunctions(m.ptr(), kContractDefs) != 0) throw py::error_already_set();
}

}  // namespace tgpy
