// Hooks on Variables, with PyTorch's names and semantics:
//   v.register_hook(fn): fn(grad) when the gradient with respect to v is
//     computed in a reverse sweep; it may return a replacement (same shape
//     and dtype) or None.
//   v.register_post_accumulate_grad_hook(fn) (leaves): fn(v) once v.grad has
//     received its last accumulation of a backward().
// Both return a RemovableHandle. The sweep calls them (VariableHooks in
// autograd.hpp) without the GIL and with the engine lock held; they take the
// GIL and release the lock while Python runs (call_in_sweep), as custom-op
// rules do. Registering a hook on a Variable while another thread sweeps its
// graph is a data race (like concurrent in-place updates): register first.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"

namespace tgpy {
namespace {

struct PyHooks final : VariableHooks {
  struct Entry {
    int64_t id;
    py::object fn;
  };
  std::vector<Entry> grad_hooks, post_hooks;  // changed and read with the GIL
  std::atomic<int> n_grad{0}, n_post{0};      // their sizes, for the sweep (no GIL)
  std::string what;                           // "a Variable of shape (3,) float32", for messages

  ~PyHooks() override {
    g_live_hooks.fetch_sub(n_grad + n_post);
    if (!Py_IsInitialized()) {  // the interpreter is gone: leak rather than crash
      for (auto* list : {&grad_hooks, &post_hooks})
        for (Entry& e : *list) e.fn.release();
      return;
    }
    py::gil_scoped_acquire gil;  // nodes (and so their hooks) may die in a sweep, without the GIL
    grad_hooks.clear();
    post_hooks.clear();
  }

  bool has_grad_hooks() const override { return n_grad.load(std::memory_order_relaxed) != 0; }
  bool has_post_hooks() const override { return n_post.load(std::memory_order_relaxed) != 0; }

  static std::string hook_name(py::handle fn) {
    py::object name = py::getattr(fn, "__qualname__", py::none());
    return name.is_none() ? py::repr(fn).cast<std::string>() : name.cast<std::string>();
  }

  // Calls one hook; an exception leaves it naming the hook (a note, on Python 3.11+).
  py::object call(const Entry& e, py::handle arg, const char* kind) {
    try {
      return call_in_sweep(e.fn, py::make_tuple(arg));
    } catch (py::error_already_set& err) {
      if (py::hasattr(err.value(), "add_note"))
        err.value().attr("add_note")("(raised by the hook '" + hook_name(e.fn) + "' registered with " + kind +
                                     " on " + what + ")");
      throw;
    }
  }

  // A hook's return value as the new gradient, checked against the one it got.
  Var replacement(py::handle r, const Var& g, const Entry& e) {
    const std::string who = "register_hook: the hook '" + hook_name(e.fn) + "' registered on " + what;
    Var v;
    if (is_var(r)) {
      v = holder_of(r);
    } else if (py::isinstance<py::array>(r)) {
      py::array a = py::reinterpret_borrow<py::array>(r);
      if (!a.dtype().is(np_dtype(g->dtype())))
        throw type_error(who + " returned an array of dtype " + py::str(a.dtype()).cast<std::string>() +
                         " for a gradient of dtype " + dtype_name(g->dtype()));
      v = make_var(copy_to_tensor(a, g->dtype()));
    } else {
      throw type_error(who + " returned " + type_name(r) + ": a hook returns a Variable, a NumPy array or None");
    }
    if (v->dtype() != g->dtype())
      throw type_error(who + " returned a gradient of dtype " + dtype_name(v->dtype()) + ", expected " +
                       dtype_name(g->dtype()));
    if (v->shape() != g->shape())
      throw value_error(who + " returned a gradient of shape " + shape_str(v->shape()) + ", expected " +
                        shape_str(g->shape()));
    return v;
  }

  void on_grad(Var& g) override {
    py::gil_scoped_acquire gil;
    // A hook may write into its argument in place: one that anything else
    // holds (the same gradient going to another input of an add, a view of
    // a sibling's) is copied first, so the write reaches this edge only.
    if (!g->requires_grad && (g.use_count() != 1 || g->data.storage.use_count() != 1 || g->data.storage->borrowed))
      g = make_var(g->data.clone());
    const std::vector<Entry> hooks = grad_hooks;  // a hook may remove hooks
    for (const Entry& e : hooks) {
      py::object r = call(e, py::cast(g), "register_hook");
      if (!r.is_none()) g = replacement(r, g, e);
    }
  }

  void accumulate_and_notify(const Var& leaf, Var g, bool create_graph) override {
    py::gil_scoped_acquire gil;  // Python threads read and reset .grad
    GradUpdates u;
    u.create_graph = create_graph;
    u.items.emplace_back(leaf, std::move(g));
    accumulate_grads(u);
    const std::vector<Entry> hooks = post_hooks;
    for (const Entry& e : hooks) {
      py::object r = call(e, py::cast(leaf), "register_post_accumulate_grad_hook");
      if (!r.is_none())
        throw type_error("register_post_accumulate_grad_hook: the hook '" + hook_name(e.fn) + "' registered on " +
                         what + " returned " + type_name(r) + "; these hooks must return None");
    }
  }

  int64_t add(py::handle fn, bool post) {
    static int64_t next_id = 0;  // (the GIL guards it)
    (post ? post_hooks : grad_hooks).push_back({++next_id, py::reinterpret_borrow<py::object>(fn)});
    ++(post ? n_post : n_grad);
    g_live_hooks.fetch_add(1);
    return next_id;
  }
  void remove(int64_t id) {
    for (bool post : {false, true}) {
      auto& list = post ? post_hooks : grad_hooks;
      for (auto it = list.begin(); it != list.end(); ++it) {
        if (it->id != id) continue;
        py::object fn = std::move(it->fn);  // freed after the list is consistent again
        list.erase(it);
        --(post ? n_post : n_grad);
        g_live_hooks.fetch_sub(1);
        return;
      }
    }
  }
};

// What register_* returns: .remove() (idempotent), and a context manager
// that removes the hook on exit. It does not keep the hooks alive.
struct RemovableHandle {
  std::weak_ptr<PyHooks> hooks;
  int64_t id = 0;
  void remove() {
    if (auto h = hooks.lock()) h->remove(id);
    hooks.reset();
  }
};

// The hooks of `obj` (v itself, or v's grad_fn), made on first use.
template <class Obj>
std::shared_ptr<PyHooks> hooks_for(Obj& obj, const Var& v) {
  std::shared_ptr<VariableHooks>& slot = extra_make(&obj).hooks;
  set_has_extra(obj);
  if (!slot) {
    auto h = std::make_shared<PyHooks>();
    h->what = "a Variable of shape " + shape_str(v->shape()) + " " + dtype_name(v->dtype());
    slot = h;
  }
  return std::static_pointer_cast<PyHooks>(slot);
}

void check_callable(py::handle fn, const char* op) {
  if (!PyCallable_Check(fn.ptr()))
    throw type_error(std::string(op) + ": the hook must be callable, got " + type_name(fn));
}

RemovableHandle register_hook(const Var& v, py::handle fn) {
  check_callable(fn, "register_hook");
  if (!v->requires_grad)
    throw graph_error("register_hook: cannot register a hook on a Variable that does not require grad (shape " +
                      shape_str(v->shape()) + ")");
  std::shared_ptr<PyHooks> h;
  if (v->is_leaf()) {
    h = hooks_for(*v, v);
  } else {
    Node& n = *v->grad_fn;
    h = hooks_for(n, v);
  }
  return RemovableHandle{h, h->add(fn, false)};
}

RemovableHandle register_post_accumulate_grad_hook(const Var& v, py::handle fn) {
  check_callable(fn, "register_post_accumulate_grad_hook");
  if (!v->requires_grad)
    throw graph_error("register_post_accumulate_grad_hook: cannot register a hook on a Variable that does not "
                      "require grad (shape " + shape_str(v->shape()) + ")");
  if (!v->is_leaf())
    throw graph_error("register_post_accumulate_grad_hook: post accumulate grad hooks cannot be registered on "
                      "non-leaf Variables (this one has shape " + shape_str(v->shape()) + " and grad_fn '" +
                      v->grad_fn->name() + "'); register_hook sees a non-leaf's gradient");
  std::shared_ptr<PyHooks> h = hooks_for(*v, v);
  return RemovableHandle{h, h->add(fn, true)};
}

}  // namespace

void bind_hooks(py::module_& m) {
  py::class_<RemovableHandle>(m, "RemovableHandle", "Returned by Variable.register_hook and "
                                                    "register_post_accumulate_grad_hook: .remove() unregisters the hook.")
      .def_readonly("id", &RemovableHandle::id)
      .def("remove", &RemovableHandle::remove, "Unregister the hook (again: does nothing).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](RemovableHandle& h, py::args) { h.remove(); });

  auto V = py::reinterpret_borrow<py::class_<VariableImpl, Var>>(m.attr("Variable"));
  V.def("register_hook", &register_hook, py::arg("hook"), R"doc(
Register hook(grad) to run when the gradient with respect to this Variable is
computed in a reverse sweep (backward, grad, vjp, jacobian...). It may return
a replacement gradient (a Variable or array of the same shape and dtype) or
None. On a leaf it runs before the gradient is added into .grad. Returns a
handle whose .remove() unregisters it (also a context manager).)doc");
  V.def("register_post_accumulate_grad_hook", &register_post_accumulate_grad_hook, py::arg("hook"), R"doc(
Register hook(variable) on a leaf, to run in each backward() as soon as this
Variable's .grad has received its last accumulation of that sweep (while the
sweep goes on with older nodes). It must return None. Returns a handle whose
.remove() unregisters it (also a context manager).)doc");
}

}  // namespace tgpy
