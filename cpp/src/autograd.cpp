#include "tapegrad/autograd.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "tapegrad/kernels.hpp"
#include "tapegrad/ops.hpp"
#include "tapegrad/support/spin_lock.hpp"

namespace tg {

// ----- grad mode ------------------------------------------------------------
// initial-exec: read on every op; see pool.cpp.
__attribute__((tls_model("initial-exec"))) thread_local bool t_grad_enabled = true;

// ----- nodes ----------------------------------------------------------------

// Destroying a long chain of nodes through nested reference destructors
// would recurse once per node and overflow the stack at ~1e5 nodes. A node
// with one edge walks the chain below it in a loop; a node with several
// hands its edges to a thread-local list drained by the outermost
// destructor.
namespace {
struct DeleteQueue;
__attribute__((tls_model("initial-exec"))) thread_local DeleteQueue* tl_delete_queue = nullptr;
struct DeleteQueue {
  std::vector<NodeRef> pending;
  bool draining = false;
  // At thread exit: a node freed later by another thread-local's destructor
  // makes a new queue instead of using this one.
  ~DeleteQueue() { tl_delete_queue = nullptr; }
};
thread_local std::unique_ptr<DeleteQueue> tl_delete_queue_owner;
}  // namespace

Node::~Node() {
  if (next.size() == 1) {
    // A chain (the common case): walk it, taking each dying node's edge
    // before it dies, so its own destructor finds nothing to free. Stops at
    // a node someone else also owns (it survives) or one with several
    // edges (its destructor uses the queue below).
    NodeRef e = std::move(next[0]);
    while (e && e.use_count() == 1 && e->next.size() == 1) {
      NodeRef after = std::move(e->next[0]);
      e = std::move(after);
    }
    return;
  }
  if (__builtin_expect(tl_delete_queue == nullptr, 0)) {
    tl_delete_queue_owner = std::make_unique<DeleteQueue>();
    tl_delete_queue = tl_delete_queue_owner.get();
  }
  auto& pending = tl_delete_queue->pending;
  bool& draining = tl_delete_queue->draining;
  for (auto& e : next)
    if (e) pending.push_back(std::move(e));
  next.clear();
  if (draining) return;
  draining = true;
  while (!pending.empty()) {
    NodeRef n = std::move(pending.back());
    pending.pop_back();
    n.reset();  // may push that node's edges
  }
  draining = false;
}

static std::string released_message(const Node& n) {
  return std::string("Trying to backward through the graph a second time: the node '") + n.name() +
         "' already released its saved values in an earlier backward(). Pass retain_graph=True to the first "
         "backward() if you need to backward through the graph again.";
}

void Node::check_saved_slow() const {
  if (released) throw graph_error(released_message(*this));
  for (const Saved& s : saved) {
    if (s.used && s.data.version() != s.version)
      throw graph_error(std::string("one of the values needed for gradient computation has been modified by an "
                                    "in-place operation: the ") +
                        (s.input < 0 ? std::string("output") : "input " + std::to_string(s.input)) + " of shape " +
                        shape_str(s.data.shape) + " saved by '" + name() + "' is at version " +
                        std::to_string(s.data.version()) + "; expected version " + std::to_string(s.version) +
                        ". Compute a new Variable instead of updating it in place (e.g. `x = x + y`).");
  }
}

const Tensor& Node::tensor(size_t slot) {
  if (released) throw graph_error(released_message(*this));
  const Saved& s = saved.at(slot);
  if (s.data.version() != s.version) check_saved_slow();
  return s.data;
}

Var Node::get(size_t slot) {
  if (released) throw graph_error(released_message(*this));
  const Saved& s = saved.at(slot);
  if (s.data.version() != s.version) check_saved_slow();
  if (!grad_enabled()) return make_var(s.data);
  // create_graph: reconnect the saved value to the graph it came from.
  if (s.input < 0) {
    if (!sweep_owner) throw graph_error(std::string("internal error: '") + name() + "' read its output outside a sweep");
    Var v = make_var(s.data, true);
    v->grad_fn = *sweep_owner;
    return v;
  }
  const NodeRef& e = next.at(s.input);
  if (!e) return make_var(s.data);
  if (e->is_accumulator()) return static_cast<AccumulateGrad*>(e.get())->variable;
  Var v = make_var(s.data, true);
  v->grad_fn = e;
  return v;
}

Var Node::jvp(const Grads&, int) {
  throw not_implemented_error(std::string("forward mode: the op '") + name() + "' has no JVP rule");
}

// Guards the lazy creation of leaves' AccumulateGrad nodes: a create_graph
// sweep (no GIL) and a forward op in another thread may both reach a leaf.
static SpinLock g_acc_lock;  // (every op on a leaf takes it: spin_lock.hpp)

NodeRef grad_edge_slow(const Var& v) {
  if (!v->requires_grad) return nullptr;
  std::lock_guard<SpinLock> lock(g_acc_lock);
  NodeRef acc = v->grad_acc.lock();
  if (!acc) {
    acc = make_ref<AccumulateGrad>(v);
    v->grad_acc = acc;
  }
  return acc;
}

// ----- the reverse sweep ------------------------------------------------------
static std::atomic<uint64_t> g_sweep{1};
// One sweep at a time: sweeps run without the GIL and may share nodes. The
// bindings release the GIL before taking this lock, so a thread holding the
// GIL never waits on it.
// One sweep at a time. A fork() while another thread sweeps would leave the
// child's copy of the lock held forever: the child starts with a new lock
// (the old one is leaked), unless the forking thread is the one sweeping (a
// custom-op rule that forks), which still holds it and will release it.
static std::mutex* g_engine_mutex = new std::mutex;
static thread_local bool t_in_sweep = false;
static std::once_flag g_engine_atfork_once;

namespace {
struct EngineLock {
  std::mutex* m;
  EngineLock() {
    std::call_once(g_engine_atfork_once, [] {
      pthread_atfork(nullptr, nullptr, [] {
        if (!t_in_sweep) g_engine_mutex = new std::mutex;
      });
    });
    m = g_engine_mutex;
    m->lock();
    t_in_sweep = true;
  }
  ~EngineLock() {
    t_in_sweep = false;
    m->unlock();
  }
  EngineLock(const EngineLock&) = delete;
  EngineLock& operator=(const EngineLock&) = delete;
};
}  // namespace

static void check_grad_shape(const Var& g, const Shape& want, DType dt, const char* where) {
  if (g->shape() != want || g->dtype() != dt)
    throw graph_error(std::string("internal error: ") + where + " received a gradient of shape " +
                      shape_str(g->shape()) + " " + dtype_name(g->dtype()) + ", expected " + shape_str(want) + " " +
                      dtype_name(dt));
}

// Adds g into a sweep buffer slot.
static void accumulate(Var& slot, Var&& g) {
  if (!slot) {
    slot = std::move(g);
    return;
  }
  if (grad_enabled()) {  // create_graph: the sum is recorded too
    slot = add(slot, g);
  } else if (exclusive(slot) && slot->shape() == g->shape()) {
    kern::binary_inplace(kern::BinaryOp::Add, slot->data, g->data, "backward");
  } else {
    slot = make_var(kern::binary(kern::BinaryOp::Add, slot->data, g->data, "backward"));
  }
}

// Adds g into a Variable's .grad (leaves, and non-leaves that retain_grad()).
static void accumulate_into_grad(VariableImpl& v, Var g) {
  check_grad_shape(g, v.shape(), v.dtype(), "accumulate_grad");
  if (grad_enabled()) {
    v.grad = v.grad ? add(v.grad, g) : std::move(g);
  } else if (!v.grad) {
    v.grad = exclusive(g) ? std::move(g) : make_var(g->data.clone());
  } else if (v.grad->requires_grad || v.grad->shape() != g->shape()) {
    v.grad = make_var(kern::binary(kern::BinaryOp::Add, v.grad->data, g->data, "backward"));
  } else {
    // In place, like PyTorch: arrays the user took from .grad see the sum.
    kern::binary_inplace(kern::BinaryOp::Add, v.grad->data, g->data, "backward");
  }
}

void accumulate_grads(GradUpdates& updates) {
  GradModeGuard mode(updates.create_graph);
  for (auto& [v, g] : updates.items) accumulate_into_grad(*v, std::move(g));
  updates.items.clear();
}

std::vector<Var> backward(const std::vector<Var>& roots, const std::vector<Var>& seeds, const BackwardOptions& opt,
                          const std::vector<Var>& inputs, GradUpdates* updates) {
  EngineLock lock;
  if (updates) updates->create_graph = opt.create_graph;
  GradModeGuard mode(opt.create_graph);
  const uint64_t id = g_sweep.fetch_add(1);

  // 1. The recorded nodes reachable from the roots: this output's tape.
  std::vector<Node*> nodes;
  std::vector<Node*> stack;
  std::vector<NodeRef> root_nodes;  // keep roots' nodes alive during the sweep
  root_nodes.reserve(roots.size());                // (visit keeps pointers to its elements)
  auto visit = [&](const NodeRef& e) {
    Node* n = e.get();
    if (n && n->sweep_id != id) {
      n->sweep_id = id;
      n->sweep_owner = &e;
      nodes.push_back(n);
      stack.push_back(n);
    }
  };
  for (const Var& r : roots) {
    root_nodes.push_back(grad_edge(r));
    visit(root_nodes.back());
  }
  // 2. (With the walk.) Fail before changing anything: released nodes,
  //    stale saved values.
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    n->check_saved();
    for (const auto& e : n->next) visit(e);
  }

  // 3. Execution order, newest first; leaves' accumulators (seq 0) come last,
  //    so an error in any rule leaves every .grad untouched.
  // (A chain is found in that order already: check before sorting.)
  auto newer = [](const Node* a, const Node* b) { return a->seq > b->seq; };
  if (!std::is_sorted(nodes.begin(), nodes.end(), newer)) std::sort(nodes.begin(), nodes.end(), newer);
  for (size_t i = 0; i < nodes.size(); ++i) nodes[i]->sweep_slot = i;

  std::unordered_map<const Node*, std::vector<size_t>> capture;
  std::vector<Var> captured(inputs.size());
  for (size_t j = 0; j < inputs.size(); ++j) {
    const Var& in = inputs[j];
    NodeRef n = in->grad_fn ? in->grad_fn : in->grad_acc.lock();
    if (n && n->sweep_id == id) capture[n.get()].push_back(j);
  }

  // The sweep buffer: buf[i] is node i's accumulated cotangent; diag[i] marks
  // a structured one (buf[i] holds d, see Node::pointwise).
  std::vector<Var> buf(nodes.size());
  std::vector<char> diag(nodes.size(), 0);
  const Basis basis = opt.basis;
  auto densify = [&](const Var& d) { return make_var(kern::diag_rows(d->data, basis.start, basis.stop)); };
  auto put = [&](size_t slot, Var&& g, bool is_diag) __attribute__((always_inline)) {
    if (buf[slot] && diag[slot] != is_diag) {  // structured + dense: both dense
      if (diag[slot]) buf[slot] = densify(buf[slot]);
      else g = densify(g);
      diag[slot] = is_diag = false;
    }
    if (!buf[slot]) diag[slot] = is_diag;
    accumulate(buf[slot], std::move(g));
  };
  if (basis.active()) {
    if (roots.size() != 1 || !root_nodes[0] || inputs.empty() || opt.create_graph || updates)
      throw value_error("internal error: a basis sweep needs one root that requires grad, inputs, no create_graph");
    put(root_nodes[0]->sweep_slot, make_var(Tensor::full(roots[0]->shape(), roots[0]->dtype(), 1.0)), true);
  } else {
    for (size_t r = 0; r < roots.size(); ++r)
      if (root_nodes[r]) put(root_nodes[r]->sweep_slot, Var(seeds[r]), false);
  }

  // 4. The reverse loop.
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node* n = nodes[i];
    Var g = std::move(buf[i]);
    if (!g) {  // no adjoint reached this node: skip it (never because it is numerically zero)
      if (!opt.retain_graph && !n->is_accumulator()) n->release();
      continue;
    }
    const bool captured_here = !capture.empty() && capture.count(n);
    if (diag[i]) {
      // Structured: pass d through pointwise rules, let the rule densify
      // cheaply if it can, else densify here.
      bool done = false;
      if (!captured_here && !n->is_accumulator()) {
        const int64_t size = numel(n->out_shape);
        if (n->pointwise()) {
          Grads grads = n->vjp(g);
          bool ok = true;  // an input broadcast to the output's size is not pointwise
          for (size_t k = 0; k < n->next.size() && k < grads.size(); ++k)
            ok = ok && !(n->next[k] && grads[k] && grads[k]->data.numel() != size);
          if (ok) {
            for (size_t k = 0; k < n->next.size() && k < grads.size(); ++k)
              if (n->next[k] && grads[k]) put(n->next[k]->sweep_slot, std::move(grads[k]), true);
            done = true;
          }
        } else {
          Grads grads = n->vjp_diag(g, basis.start, basis.stop);
          if (!grads.empty()) {
            for (size_t k = 0; k < n->next.size() && k < grads.size(); ++k)
              if (n->next[k] && grads[k]) put(n->next[k]->sweep_slot, std::move(grads[k]), false);
            done = true;
          }
        }
      }
      if (done) {
        if (!opt.retain_graph) n->release();
        continue;
      }
      g = densify(g);
    }
    if (captured_here)
      for (size_t j : capture.find(n)->second) captured[j] = g;
    if (n->is_accumulator()) {
      if (updates) updates->items.emplace_back(static_cast<AccumulateGrad*>(n)->variable, std::move(g));
      continue;
    }
    if (updates) {
      if (Var rv = n->retained.lock()) updates->items.emplace_back(std::move(rv), g);
    }
    Grads grads = [&] {
      struct Overwrite {  // reset even when a rule throws
        Node* n;
        ~Overwrite() { n->sweep_may_overwrite = false; }
      } scope{n};
      n->sweep_may_overwrite = !opt.create_graph;
      return n->vjp(g);
    }();
    for (size_t k = 0; k < n->next.size() && k < grads.size(); ++k) {
      if (n->next[k] && grads[k]) put(n->next[k]->sweep_slot, std::move(grads[k]), false);
    }
    if (!opt.retain_graph) n->release();
  }
  return captured;
}

// ----- the forward sweep -----------------------------------------------------
std::vector<Var> forward(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                         const std::vector<Var>& tangents, int nb, bool create_graph, Basis basis) {
  EngineLock lock;
  GradModeGuard mode(create_graph);
  const uint64_t id = g_sweep.fetch_add(1);
  Shape batch;
  if (basis.active()) {
    if (inputs.size() != 1 || !tangents.empty() || nb != 1 || create_graph)
      throw value_error("internal error: a basis sweep needs one input, no tangents, nb = 1, no create_graph");
    batch = Shape{basis.stop - basis.start};
  } else {
    if (tangents.size() != inputs.size()) throw value_error("forward: one tangent per input is needed");
    if (tangents.empty()) throw value_error("forward: no inputs");
    batch = Shape(tangents[0]->shape().begin(), tangents[0]->shape().begin() + nb);
  }

  // 1. The nodes the outputs depend on, in execution order.
  std::vector<Node*> nodes, stack;
  std::vector<NodeRef> keep;
  keep.reserve(outputs.size());  // (visit keeps pointers to its elements)
  auto visit = [&](const NodeRef& e) {
    Node* n = e.get();
    if (n && n->sweep_id != id) {
      n->sweep_id = id;
      n->sweep_owner = &e;
      nodes.push_back(n);
      stack.push_back(n);
    }
  };
  for (const Var& o : outputs) {
    keep.push_back(grad_edge(o));  // an output may be an input itself (f = identity)
    visit(keep.back());
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const auto& e : n->next) visit(e);
  }
  for (Node* n : nodes) n->check_saved();
  std::sort(nodes.begin(), nodes.end(), [](const Node* a, const Node* b) { return a->seq < b->seq; });
  for (size_t i = 0; i < nodes.size(); ++i) nodes[i]->sweep_slot = i;

  // 2. Seeds: an input's tangent enters at the node standing for it (its
  //    grad_fn, or a leaf's AccumulateGrad). Inputs the outputs do not reach
  //    contribute nothing.
  //    diag[i] marks a structured tangent (tan[i] holds d, see Node::pointwise).
  std::vector<Var> tan(nodes.size());
  std::vector<char> seeded(nodes.size(), 0), diag(nodes.size(), 0);
  auto densify = [&](const Var& d) { return make_var(kern::diag_rows(d->data, basis.start, basis.stop)); };
  for (size_t j = 0; j < inputs.size(); ++j) {
    NodeRef n = grad_edge(inputs[j]);
    if (n && n->sweep_id == id) {
      if (basis.active()) {
        tan[n->sweep_slot] = make_var(Tensor::full(inputs[j]->shape(), inputs[j]->dtype(), 1.0));
        diag[n->sweep_slot] = 1;
      } else {
        tan[n->sweep_slot] = tangents[j];
      }
      seeded[n->sweep_slot] = 1;
    }
  }

  // 3. The forward loop: each node's JVP from its inputs' tangents.
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node* n = nodes[i];
    if (seeded[i] || n->is_accumulator()) continue;
    Grads ts;
    bool any = false, any_dense = false;
    size_t n_diag = 0, diag_input = 0;
    const int64_t size = numel(n->out_shape);
    bool same_size = true;
    for (size_t k = 0; k < n->next.size(); ++k) {
      const auto& e = n->next[k];
      Var t = e ? tan[e->sweep_slot] : nullptr;
      if (t && diag[e->sweep_slot]) {
        ++n_diag;
        diag_input = k;
        same_size = same_size && t->data.numel() == size;
      } else if (t) {
        any_dense = true;
      }
      any = any || t != nullptr;
      ts.push_back(std::move(t));
    }
    if (!any) continue;  // no tangent reaches this node: zero, skipped
    if (n_diag) {
      // Structured: pass d through pointwise rules, let the rule densify
      // cheaply if it can, else densify here.
      Var t;
      if (!any_dense && same_size && n->pointwise()) {
        t = n->jvp(ts, 0);
        if (t && t->data.numel() == size) {
          if (t->shape() != n->out_shape) t = reshape(t, n->out_shape);
          tan[i] = std::move(t);
          diag[i] = 1;
          continue;
        }
      } else if (!any_dense && n_diag == 1) {
        t = n->jvp_diag(diag_input, ts[diag_input], basis.start, basis.stop);
      }
      if (!t) {
        for (size_t k = 0; k < ts.size(); ++k)
          if (ts[k] && diag[n->next[k]->sweep_slot]) ts[k] = densify(ts[k]);
        t = n->jvp(ts, nb);
      }
      Shape want = batch;
      want.insert(want.end(), n->out_shape.begin(), n->out_shape.end());
      if (t && t->shape() != want) t = broadcast_to(t, want);
      tan[i] = std::move(t);
      continue;
    }
    Var t = n->jvp(ts, nb);
    Shape want = batch;
    want.insert(want.end(), n->out_shape.begin(), n->out_shape.end());
    if (t && t->shape() != want) t = broadcast_to(t, want);
    tan[i] = std::move(t);
  }

  std::vector<Var> out;
  for (size_t k = 0; k < outputs.size(); ++k) {
    Node* n = keep[k].get();
    Var t = n && n->sweep_id == id ? tan[n->sweep_slot] : nullptr;
    if (t && diag[n->sweep_slot]) t = densify(t);
    if (!t) {
      Shape want = batch;
      want.insert(want.end(), outputs[k]->shape().begin(), outputs[k]->shape().end());
      t = make_var(Tensor::zeros(want, outputs[k]->dtype()));
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace tg
