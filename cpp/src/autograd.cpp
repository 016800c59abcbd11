#include "tapegrad/autograd.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "tapegrad/kernels.hpp"
#include "tapegrad/ops.hpp"
#include "tapegrad/support/spin_lock.hpp"

namespace tg {

// ----- grad mode ------------------------------------------------------------
// initial-exec: read on every op; see pool.cpp.
__attribute__((tls_model("initial-exec"))) thread_local uint8_t t_modes = kGradMode;

// ----- anomaly mode -----------------------------------------------------------
static std::atomic<std::string (*)()> g_anomaly_location{nullptr};
void set_anomaly_location_source(std::string (*source)()) { g_anomaly_location.store(source); }
std::string anomaly_location() {
  auto source = g_anomaly_location.load();
  return source ? source() : std::string();
}

// "" when every value is finite, else what is wrong ("2 nan, 1 inf").
static std::string non_finite(const Tensor& t0) {
  TG_CONTIGUOUS(t, t0);
  int64_t nan = 0, inf = 0;
  auto scan = [&](const auto* p) {
    // x - x is 0 for finite x, NaN otherwise: a sum of those vectorizes, and
    // the count runs only when there is something to count.
    using T = std::remove_const_t<std::remove_pointer_t<decltype(p)>>;
    const int64_t n = t.numel();
    T acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; ++k) acc[k] += p[i + k] - p[i + k];
    T all = 0;
    for (int k = 0; k < 8; ++k) all += acc[k];
    for (; i < n; ++i) all += p[i] - p[i];
    if (all == 0) return;
    for (i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) ++(std::isnan(p[i]) ? nan : inf);
  };
  if (t.dtype == DType::F32) scan(t.ptr<float>());
  else if (t.dtype == DType::F64) scan(t.ptr<double>());
  else return "";
  if (!nan && !inf) return "";
  std::string r;
  if (nan) r = std::to_string(nan) + " nan";
  if (inf) r += (r.empty() ? "" : ", ") + std::to_string(inf) + " inf";
  return r + " of " + std::to_string(t.numel()) + " values";
}

static std::string describe(const std::vector<const VariableImpl*>& inputs) {
  std::string r;
  for (const VariableImpl* v : inputs) {
    if (!r.empty()) r += ", ";
    r += shape_str(v->shape()) + " " + dtype_name(v->dtype());
    if (!non_finite(v->data).empty()) r += " (already not finite)";
  }
  return r.empty() ? "none" : r;
}

// The node whose VJP (or JVP) rule a sweep runs in anomaly mode, else null: an op the rule calls (subtract's
// VJP calls negative, sqrt's divide) is the user's op's backward, and its check names that op.
static thread_local const Node* t_anomaly_rule = nullptr;
static thread_local bool t_anomaly_rule_reverse = true;
static std::string rule_context(const Node& n);

void anomaly_check_forward(const char* op, const VariableImpl& out, const std::vector<const VariableImpl*>& inputs,
                           const std::string& where) {
  const std::string bad = non_finite(out.data);
  if (bad.empty()) return;
  const std::string what = "output " + shape_str(out.shape()) + " " + dtype_name(out.dtype()) +
                           "; inputs: " + describe(inputs);
  if (const Node* n = t_anomaly_rule)
    throw graph_error(std::string("detect_anomaly: the ") + (t_anomaly_rule_reverse ? "backward" : "forward-mode JVP") +
                      " of '" + n->name() + "' produced " + bad + " (in its '" + op + "': " + what + ")" +
                      rule_context(*n));
  throw graph_error(std::string("detect_anomaly: the forward of '") + op + "' produced " + bad + " (" + what + ")" +
                    (where.empty() ? "" : ", recorded at " + where));
}

// ----- the side table of Extra -------------------------------------------------
// Entries are made with the GIL (hooks) or by the recording thread (anomaly
// mode), read by sweeps and dropped by destructors on any thread: a lock,
// taken only for flagged objects. unordered_map's elements do not move.
namespace {
struct ExtraTable {
  std::mutex lock;
  std::unordered_map<const void*, Extra> map;
};
ExtraTable& extra_table() {
  // Never destroyed: objects may die after static destructors ran. fork()
  // takes the lock first, so a child never inherits it held by a thread it
  // does not have (the lock is never held across a call out).
  static ExtraTable* t = [] {
    auto* table = new ExtraTable;
    pthread_atfork([] { extra_table().lock.lock(); }, [] { extra_table().lock.unlock(); },
                   [] { extra_table().lock.unlock(); });
    return table;
  }();
  return *t;
}
}  // namespace

Extra& extra_make(const void* key) {
  ExtraTable& t = extra_table();
  std::lock_guard<std::mutex> g(t.lock);
  return t.map[key];
}

Extra* extra_find(const void* key) {
  ExtraTable& t = extra_table();
  std::lock_guard<std::mutex> g(t.lock);
  auto it = t.map.find(key);
  return it == t.map.end() ? nullptr : &it->second;
}

void extra_drop(const void* key) noexcept {
  ExtraTable& t = extra_table();
  Extra gone;  // destroyed after the lock is released (PyHooks' destructor takes the GIL)
  {
    std::lock_guard<std::mutex> g(t.lock);
    auto it = t.map.find(key);
    if (it == t.map.end()) return;
    gone = std::move(it->second);
    t.map.erase(it);
  }
}

static const Extra* extra_of(const Node& n) { return has_extra(n) ? extra_find(&n) : nullptr; }

void anomaly_annotate(Node& n, const std::vector<const VariableImpl*>& inputs, const std::string& where) {
  Extra& e = extra_make(&n);
  set_has_extra(n);
  e.recorded_at = where;
  for (const VariableImpl* v : inputs) {
    if (!e.inputs.empty()) e.inputs += ", ";
    e.inputs += shape_str(v->shape()) + " " + dtype_name(v->dtype());
  }
}

template <class In>
static void anomaly_recorded_impl(const char* op, const VariableImpl& out, Node* node, const In* inputs, size_t n) {
  std::vector<const VariableImpl*> ins;
  for (size_t i = 0; i < n; ++i) {
    if constexpr (std::is_pointer_v<In>) ins.push_back(inputs[i]->get());
    else ins.push_back(inputs[i].get());
  }
  const std::string where = anomaly_location();
  anomaly_check_forward(op, out, ins, where);
  if (node) anomaly_annotate(*node, ins, where);
}
void anomaly_recorded(const char* op, const VariableImpl& out, Node* node, const Var* const* inputs, size_t n) {
  anomaly_recorded_impl(op, out, node, inputs, n);
}
void anomaly_recorded(const char* op, const VariableImpl& out, Node* node, const Var* inputs, size_t n) {
  anomaly_recorded_impl(op, out, node, inputs, n);
}

static std::string recorded_at(const Extra* extra) {
  if (extra && !extra->recorded_at.empty()) return "; recorded at " + extra->recorded_at;
  return "; recorded before detect_anomaly() was entered (no location kept)";
}
static std::string rule_context(const Node& n) {
  const Extra* extra = extra_of(n);
  return (extra && !extra->inputs.empty() ? "; the op's inputs: " + extra->inputs : std::string()) + recorded_at(extra);
}

// The sweeps' check: the gradients a VJP rule returned (reverse) or the
// tangent a JVP rule returned (forward), each given the incoming ones.
static void anomaly_check_rule(const Node& n, const Grads& incoming, const Grads& results, bool reverse) {
  for (size_t k = 0; k < results.size(); ++k) {
    if (!results[k]) continue;
    const std::string bad = non_finite(results[k]->data);
    if (bad.empty()) continue;
    std::string msg = std::string("detect_anomaly: the ") + (reverse ? "backward" : "forward-mode JVP") + " of '" +
                      n.name() + "' produced " + bad + " in " +
                      (reverse ? "the gradient for input " + std::to_string(k) : std::string("its output tangent")) +
                      " (" + shape_str(results[k]->shape()) + " " + dtype_name(results[k]->dtype()) + ")";
    const Extra* extra = extra_of(n);
    if (extra && !extra->inputs.empty()) msg += "; the op's inputs: " + extra->inputs;
    for (const Var& g : incoming)
      if (g && !non_finite(g->data).empty()) {
        msg += std::string("; the incoming ") + (reverse ? "gradient" : "tangent") + " already had " + non_finite(g->data);
        break;
      }
    throw graph_error(msg + recorded_at(extra));
  }
}

// A rule run with t_anomaly_rule set (the sweeps call these only in anomaly mode).
namespace {
struct AnomalyRuleScope {
  const Node* prev;
  bool prev_reverse;
  AnomalyRuleScope(const Node& n, bool reverse) : prev(t_anomaly_rule), prev_reverse(t_anomaly_rule_reverse) {
    t_anomaly_rule = &n;
    t_anomaly_rule_reverse = reverse;
  }
  ~AnomalyRuleScope() {
    t_anomaly_rule = prev;
    t_anomaly_rule_reverse = prev_reverse;
  }
};
}  // namespace
__attribute__((noinline)) static Grads anomaly_vjp(Node& n, const Var& g) {
  AnomalyRuleScope scope(n, true);
  return n.vjp(g);
}

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
  if (__builtin_expect(retained.word() != 0, 0) && retained.drop()) extra_drop(this);
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
  // (An edge to a node that others also own only drops a count: queued,
  // it cost a push and a pop; h99-scalar.)
  for (auto& e : next)
    if (e) {
      if (e.use_count() > 1) e.reset();
      else pending.push_back(std::move(e));
    }
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

// (grad_edge_slow writes grad_acc, whose word holds the flag, under the lock
// and without the GIL.)
void set_has_extra(VariableImpl& v) {
  std::lock_guard<SpinLock> lock(g_acc_lock);
  v.grad_acc.set_flag();
}

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

// ----- the sweeps -------------------------------------------------------------
static std::atomic<uint64_t> g_sweep{1};
// One sweep at a time: sweeps run without the GIL and may share nodes. The
// bindings release the GIL before taking this lock, so a thread holding the
// GIL never waits on it. A fork() while another thread sweeps would leave the
// child's copy of the lock held forever: the child starts with a new lock
// (the old one is leaked), unless the forking thread is the one sweeping,
// which still holds it and will release it.
//
// Python code inside a sweep (a custom-op rule, a hook registered on a
// Variable, a signal handler run by the Ctrl-C check) runs with the lock
// released (SweepPause): it
// may then start a sweep itself (a nested sweep, on this thread) or wait for
// one on another thread, and that sweep simply takes the lock. The paused
// sweep's state is its own (its Tape and values, on its stack) except the
// scratch fields it stamped on the nodes (Node::sweep_*), which another
// sweep over shared nodes overwrites: every Tape and every re-stamp bumps
// g_sweep, and a sweep that sees g_sweep moved while it was paused stamps
// its nodes again. A sweep cannot be entered in any other way from inside a
// sweep (the lock is not re-entrant): that raises instead of hanging.
static std::timed_mutex* g_engine_mutex = new std::timed_mutex;
static thread_local bool t_in_sweep = false;  // this thread holds the engine lock
static std::once_flag g_engine_atfork_once;
static std::atomic<void (*)()> g_engine_wait_check{nullptr};

void set_engine_wait_check(void (*check)()) { g_engine_wait_check.store(check); }

namespace {
class Tape;
}  // namespace

// A running sweep, on its thread's stack (innermost first).
struct EngineFrame {
  std::timed_mutex* m = nullptr;
  const Tape* tape = nullptr;  // set once the sweep has built its tape
  EngineFrame* outer = nullptr;
};
static thread_local EngineFrame* t_frame = nullptr;

namespace {
struct EngineLock {
  EngineFrame frame;
  EngineLock() {
    std::call_once(g_engine_atfork_once, [] {
      pthread_atfork(nullptr, nullptr, [] {
        if (!t_in_sweep) g_engine_mutex = new std::timed_mutex;
      });
    });
    if (t_in_sweep)
      throw graph_error("a sweep (backward, grad, jvp, jacobian...) cannot be started from inside a sweep except "
                        "from a custom-op rule");
    std::timed_mutex* m = g_engine_mutex;
    if (!m->try_lock()) {
      // Wait, checking for Ctrl-C now and then (the check may throw).
      while (!m->try_lock_for(std::chrono::milliseconds(100)))
        if (auto check = g_engine_wait_check.load()) check();
    }
    frame.m = m;
    frame.outer = t_frame;
    t_frame = &frame;
    t_in_sweep = true;
  }
  ~EngineLock() {
    t_in_sweep = false;
    t_frame = frame.outer;
    frame.m->unlock();
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

// (h99-scalar) slot + g for 0-d float operands of one dtype (scalar
// programs: rk4's c, k and y[i] each feed several ops), the sum
// kern::binary's Add gives, without its dispatch: in place when the slot is
// exclusive, else into a new 0-d. False (nothing done) otherwise.
// (noinline: inlined, it grew accumulate's frame, +6 instructions a node on
// the callgrind chain, whose slots never accumulate.)
__attribute__((noinline)) static bool accumulate_0d(Var& slot, const Var& g) {
  const Tensor &s = slot->data, &d = g->data;
  if (!s.shape.empty() || !d.shape.empty() || s.dtype != d.dtype || !s.is_contiguous() || !d.is_contiguous())
    return false;
  auto sum = [&](auto zero) {  // (contiguous: data_ptr, not raw()'s outlined check)
    using T = decltype(zero);
    const T v = *static_cast<const T*>(s.data_ptr()) + *static_cast<const T*>(d.data_ptr());
    if (exclusive(slot)) {
      *static_cast<T*>(s.data_ptr()) = v;
    } else {
      Tensor r = Tensor::empty(Shape(), s.dtype);
      *static_cast<T*>(r.data_ptr()) = v;
      slot = make_var(std::move(r));
    }
  };
  if (s.dtype == DType::F64) sum(0.0);
  else if (s.dtype == DType::F32) sum(0.0f);
  else return false;
  return true;
}

// Adds g into a sweep's value for a node.
static void accumulate(Var& slot, Var&& g) {
  if (!slot) {
    slot = std::move(g);
    return;
  }
  if (grad_enabled()) {  // create_graph: the sum is recorded too
    slot = add(slot, g);
  } else if (accumulate_0d(slot, g)) {
  } else if (exclusive(slot) && slot->shape() == g->shape()) {
    kern::binary_inplace(kern::BinaryOp::Add, slot->data, g->data, "backward");
  } else {
    slot = make_var(kern::binary(kern::BinaryOp::Add, slot->data, g->data, "backward"));
  }
}

// Adds g into a Variable's .grad (leaves, and non-leaves that retain_grad()).
// `owned`: g is a contiguous block of a buffer that only this update list's
// gradients hold, in disjoint blocks (disjoint_blocks): adopted like an
// exclusive gradient.
static void accumulate_into_grad(VariableImpl& v, Var g, bool owned = false) {
  check_grad_shape(g, v.shape(), v.dtype(), "accumulate_grad");
  if (grad_enabled()) {
    v.grad = v.grad ? add(v.grad, g) : std::move(g);
  } else if (!v.grad) {
    v.grad = owned || exclusive(g) ? std::move(g) : make_var(g->data.clone());
  } else if (v.grad->requires_grad || v.grad->shape() != g->shape()) {
    v.grad = make_var(kern::binary(kern::BinaryOp::Add, v.grad->data, g->data, "backward"));
  } else {
    // In place, like PyTorch: arrays the user took from .grad see the sum.
    kern::binary_inplace(kern::BinaryOp::Add, v.grad->data, g->data, "backward");
  }
}

// Which updates' gradients are blocks of one buffer that nothing but these
// gradients holds, pairwise disjoint (a stack's or concatenate's parts, a
// split, of a gradient the sweep computed or copied): each .grad may adopt
// its block, as the one copy (or none) the buffer already cost suffices.
// A buffer held by anything else (the caller's seed, a hook, a retained
// .grad, a saved value) is not adopted from: those gradients are copied.
static std::vector<char> disjoint_blocks(const GradUpdates& updates) {
  struct Block { const Storage* s; int64_t begin, end; size_t i; };
  std::vector<Block> c;
  for (size_t i = 0; i < updates.items.size(); ++i) {
    const auto& [v, g] = updates.items[i];
    const Tensor& t = g->data;
    if (v->grad || g.use_count() != 1 || g->requires_grad || !t.is_contiguous() || t.numel() == 0 ||
        t.storage.use_count() == 1 || t.storage->borrowed)
      continue;
    const int64_t b = t.offset * static_cast<int64_t>(itemsize(t.dtype));
    c.push_back({t.storage.get(), b, b + static_cast<int64_t>(t.nbytes()), i});
  }
  std::vector<char> owned(updates.items.size(), 0);
  if (c.size() < 2) return owned;
  std::sort(c.begin(), c.end(), [](const Block& x, const Block& y) { return x.s != y.s ? x.s < y.s : x.begin < y.begin; });
  for (size_t lo = 0, hi; lo < c.size(); lo = hi) {
    bool disjoint = true;
    for (hi = lo + 1; hi < c.size() && c[hi].s == c[lo].s; ++hi) disjoint = disjoint && c[hi - 1].end <= c[hi].begin;
    const Tensor& t = updates.items[c[lo].i].second->data;
    if (!disjoint || t.storage.use_count() != static_cast<long>(hi - lo)) continue;
    for (size_t k = lo; k < hi; ++k) owned[c[k].i] = 1;
  }
  return owned;
}

void accumulate_grads(GradUpdates& updates) {
  GradModeGuard mode(updates.create_graph);
  const std::vector<char> owned = updates.create_graph || updates.items.size() < 2 ? std::vector<char>()
                                                                                      : disjoint_blocks(updates);
  for (size_t i = 0; i < updates.items.size(); ++i) {
    auto& [v, g] = updates.items[i];
    accumulate_into_grad(*v, std::move(g), !owned.empty() && owned[i]);
  }
  updates.items.clear();
}

namespace {

// The recorded nodes reachable from `roots` (the outputs a sweep starts or
// ends at), in execution order: the roots' Wengert list, which the reverse
// sweep runs backwards and the forward sweep runs forwards. Building it
// stamps each node with the sweep's id and its position (sweep_slot), and
// checks each node's saved values, so a sweep fails before changing
// anything (released nodes, values modified in place).
class Tape {
 public:
  static constexpr size_t npos = static_cast<size_t>(-1);

  explicit Tape(const std::vector<Var>& roots) : id_(g_sweep.fetch_add(1)) {
    roots_.reserve(roots.size());
    // A root may be a leaf, or one of the inputs itself (f = identity).
    for (const Var& r : roots) roots_.push_back(grad_edge(r));
    // roots_ is complete and never changes again: nodes may point into it
    // (sweep_owner).
    std::vector<Node*> stack;
    auto visit = [&](const NodeRef& e) {
      Node* n = e.get();
      if (n && n->sweep_id != id_) {
        n->sweep_id = id_;
        n->sweep_owner = &e;
        nodes_.push_back(n);
        stack.push_back(n);
      }
    };
    for (const NodeRef& e : roots_) visit(e);
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      n->check_saved();
      for (const auto& e : n->next) visit(e);
    }
    // Execution order. Leaves' accumulators (seq 0) come first, so the
    // reverse sweep reaches them last: an error in any rule leaves every
    // .grad untouched. The walk finds nodes roughly newest first (a chain
    // exactly so), so they are sorted newest first, where there is least to
    // do, then reversed.
    auto newer = [](const Node* a, const Node* b) { return a->seq > b->seq; };
    if (std::is_sorted(nodes_.begin(), nodes_.end(), newer)) std::reverse(nodes_.begin(), nodes_.end());
    else sort_by_seq(nodes_);
    for (size_t i = 0; i < nodes_.size(); ++i) nodes_[i]->sweep_slot = i;
  }
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // Oldest first, accumulators (seq 0) before all. Sequence numbers are
  // unique and a graph's are nearly consecutive (those of nodes it does not
  // reach lie between): when their range is within a few times the count,
  // each node goes to its own place in a table of the range and the table is
  // read in order, O(n) (std::sort was 258 instructions a node on rk4's
  // graph of 36,456 nodes, 8% of its gradient evaluation).
  static void sort_by_seq(std::vector<Node*>& v) {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (const Node* x : v)
      if (x->seq) lo = std::min(lo, x->seq), hi = std::max(hi, x->seq);
    if (v.size() < 64 || hi < lo || hi - lo >= 4 * v.size() + 1024) {
      std::sort(v.begin(), v.end(), [](const Node* a, const Node* b) { return a->seq < b->seq; });
      return;
    }
    std::vector<Node*> at(hi - lo + 1, nullptr);
    size_t k = 0;
    for (Node* x : v) {  // (k <= the index read: accumulators compact in place, in walk order)
      if (x->seq) at[x->seq - lo] = x;
      else v[k++] = x;
    }
    for (Node* x : at)
      if (x) v[k++] = x;
  }

  // Stamps the nodes again after another sweep (run while this one was
  // paused in a Python rule) overwrote their scratch fields.
  void restamp() const {
    g_sweep.fetch_add(1);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      nodes_[i]->sweep_id = id_;
      nodes_[i]->sweep_slot = i;
    }
    for (Node* n : nodes_)
      for (const auto& e : n->next)
        if (e && e->sweep_id == id_) e->sweep_owner = &e;
    for (const NodeRef& e : roots_)
      if (e) e->sweep_owner = &e;
  }

  size_t size() const { return nodes_.size(); }
  Node* operator[](size_t i) const { return nodes_[i]; }
  // Root r's node (null when it requires no grad).
  Node* root(size_t r) const { return roots_[r].get(); }
  // The position of the node standing for v (its grad_fn, or a leaf's
  // AccumulateGrad) when the walk reached it, else npos. Creates no node:
  // one that does not exist yet is not on the tape.
  size_t slot_of(const Var& v) const {
    Node* n = v->grad_fn.get();
    NodeRef acc;
    if (!n) {
      std::lock_guard<SpinLock> lock(g_acc_lock);
      acc = v->grad_acc.lock();
      n = acc.get();
    }
    return n && n->sweep_id == id_ ? n->sweep_slot : npos;
  }

 private:
  const uint64_t id_;
  std::vector<NodeRef> roots_;  // keeps the roots' nodes alive during the sweep
  std::vector<Node*> nodes_;
};

// One value per tape position: the cotangents of the reverse sweep or the
// tangents of the forward sweep. In a basis sweep (jacobian's identity seed)
// a value may be structured: a vector d shaped like the node's output
// standing for the batch of rows basis.start..stop of diag(d) (see
// Node::pointwise). Everything the sweeps do with that form is here:
// seeding it, passing it through rules that keep it, the rules' cheaper
// dense forms, and making it dense everywhere else.
class SweepValues {
 public:
  SweepValues(size_t n, Basis basis) : v_(n), structured_(n, 0), basis_(basis) {}

  bool structured(size_t i) const { return structured_[i]; }
  const Var& operator[](size_t i) const { return v_[i]; }
  Var take(size_t i) { return std::move(v_[i]); }
  Var& slot(size_t i) { return v_[i]; }  // (a dense position's value, for Node::vjp_into)

  // The identity seed at position i: d = 1, shaped like `like`.
  void seed_identity(size_t i, const Var& like) {
    v_[i] = make_var(Tensor::full(like->shape(), like->dtype(), 1.0));
    structured_[i] = 1;
  }
  void set(size_t i, Var&& v, bool structured) {
    v_[i] = std::move(v);
    structured_[i] = structured;
  }
  // Adds g into position i. A structured and a dense value add up dense.
  __attribute__((always_inline)) void add(size_t i, Var&& g, bool structured) {
    if (v_[i] && structured_[i] != structured) {
      if (structured_[i]) v_[i] = densify(v_[i]);
      else g = densify(g);
      structured_[i] = structured = false;
    }
    if (!v_[i]) structured_[i] = structured;
    accumulate(v_[i], std::move(g));
  }
  // The dense batch a structured d stands for.
  Var densify(const Var& d) const { return make_var(kern::diag_rows(d->data, basis_.start, basis_.stop)); }
  // Position i's value, dense.
  Var dense(size_t i) const { return v_[i] && structured_[i] ? densify(v_[i]) : v_[i]; }

  // Reverse sweep: passes n's structured cotangent d on to n's inputs
  // without densifying it where it can: through a pointwise rule (still
  // structured), or through the rule's own cheaper dense form. False when
  // neither applies (nothing was passed on): the caller densifies d.
  bool vjp_structured(Node& n, const Var& d) {
    if (n.pointwise()) {
      Grads grads = n.vjp(d);
      const int64_t size = numel(n.out_shape);
      // An input broadcast to the output's size is not pointwise.
      for (size_t k = 0; k < n.next.size() && k < grads.size(); ++k)
        if (n.next[k] && grads[k] && grads[k]->data.numel() != size) return false;
      for (size_t k = 0; k < n.next.size() && k < grads.size(); ++k)
        if (n.next[k] && grads[k]) add(n.next[k]->sweep_slot, std::move(grads[k]), true);
      return true;
    }
    Grads grads = n.vjp_diag(d, basis_.start, basis_.stop);
    if (grads.empty()) return false;
    for (size_t k = 0; k < n.next.size() && k < grads.size(); ++k)
      if (n.next[k] && grads[k]) add(n.next[k]->sweep_slot, std::move(grads[k]), false);
    return true;
  }

  // Forward sweep: n's output tangent when some of its input tangents `ts`
  // are structured, and whether it is structured itself: through a
  // pointwise rule it stays structured; else the rule's cheaper dense form
  // or, failing that, its dense rule on densified tangents gives a dense one
  // (batch + output shape, or broadcastable to it).
  std::pair<Var, bool> jvp_structured(Node& n, Grads& ts, int nb) {
    const int64_t size = numel(n.out_shape);
    size_t n_structured = 0, structured_input = 0;
    bool any_dense = false, same_size = true;
    for (size_t k = 0; k < ts.size(); ++k) {
      if (!ts[k]) continue;
      if (structured_[n.next[k]->sweep_slot]) {
        ++n_structured;
        structured_input = k;
        same_size = same_size && ts[k]->data.numel() == size;
      } else {
        any_dense = true;
      }
    }
    Var t;
    if (!any_dense && same_size && n.pointwise()) {
      t = n.jvp(ts, 0);
      if (t && t->data.numel() == size) {
        if (t->shape() != n.out_shape) t = reshape(t, n.out_shape);
        return {std::move(t), true};
      }
    } else if (!any_dense && n_structured == 1) {
      t = n.jvp_diag(structured_input, ts[structured_input], basis_.start, basis_.stop);
    }
    if (!t) {
      for (size_t k = 0; k < ts.size(); ++k)
        if (ts[k] && structured_[n.next[k]->sweep_slot]) ts[k] = densify(ts[k]);
      t = n.jvp(ts, nb);
    }
    return {std::move(t), false};
  }

 private:
  std::vector<Var> v_;
  std::vector<char> structured_;
  const Basis basis_;
};

}  // namespace

SweepPause::SweepPause() {
  if (!t_in_sweep || !t_frame) return;
  frame_ = t_frame;
  sweeps_seen_ = g_sweep.load();
  t_in_sweep = false;
  frame_->m->unlock();
}

void SweepPause::resume() {
  if (!frame_) return;
  // Not interruptible: the paused sweep must hold the lock again to unwind.
  // The current lock: a fork() in the rule gives the child a new one.
  std::timed_mutex* m = g_engine_mutex;
  m->lock();
  frame_->m = m;
  t_in_sweep = true;
  if (g_sweep.load() != sweeps_seen_ && frame_->tape) frame_->tape->restamp();
  frame_ = nullptr;
}

SweepPause::~SweepPause() { resume(); }

// Checks for Ctrl-C between the nodes of a sweep. The loops compare their
// node index with the index of the next check (a register compare, no
// counter of its own); the clock is read every kEvery nodes (every node
// while nodes are slow, so one long node delays the check by itself alone),
// and the bindings' check (which takes the GIL) runs at most every
// kInterval. The first node reads the clock: a slow first node must not
// delay the check kEvery times.
namespace {
class InterruptPoll {
 public:
  // Reads the clock (and maybe checks); returns how many nodes to pass before the next read.
  size_t slow();

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kEvery = 32;
  static constexpr auto kInterval = std::chrono::milliseconds(20);
  Clock::time_point last_read_{}, last_check_{};
};
}  // namespace

static std::atomic<void (*)()> g_sweep_interrupt_check{nullptr};
void set_sweep_interrupt_check(void (*check)()) { g_sweep_interrupt_check.store(check); }

size_t InterruptPoll::slow() {
  const Clock::time_point now = Clock::now();
  if (last_check_ == Clock::time_point{}) last_check_ = now;  // the sweep's first read
  const size_t next = now - last_read_ < std::chrono::milliseconds(1) ? kEvery : 1;
  last_read_ = now;
  if (now - last_check_ >= kInterval) {
    last_check_ = now;
    if (auto check = g_sweep_interrupt_check.load(std::memory_order_relaxed)) check();
  }
  return next;
}

// The hooks of the node standing for a Variable in the reverse sweep: a
// leaf's (on the leaf) or a non-leaf's (on its grad_fn); null when none.
static VariableHooks* hooks_of(const void* key, bool flag) {
  if (!flag) return nullptr;
  Extra* e = extra_find(key);
  return e ? e->hooks.get() : nullptr;
}
static VariableHooks* hooks_at(const Node* n) {
  if (n->is_accumulator()) {
    const VariableImpl* v = static_cast<const AccumulateGrad*>(n)->variable.get();
    return hooks_of(v, has_extra(*v));
  }
  return hooks_of(n, has_extra(*n));
}

// The reverse sweep, compiled twice: kMayHook false is the sweep of nearly
// every call (no hook anywhere, anomaly mode off), with no hook or anomaly
// test at all; true tests both per node. (One copy testing a runtime flag
// cost +14 instructions per node in the callgrind chain.)
template <bool kMayHook>
static std::vector<Var> backward_sweep(const std::vector<Var>& roots, std::vector<Var>& seeds,
                                       const BackwardOptions& opt, const std::vector<Var>& inputs,
                                       GradUpdates* updates) {
  EngineLock lock;
  if (updates) updates->create_graph = opt.create_graph;
  GradModeGuard mode(opt.create_graph);
  const Tape tape(roots);
  lock.frame.tape = &tape;

  // The gradients requested for `inputs` are read at their nodes.
  std::unordered_map<const Node*, std::vector<size_t>> capture;
  std::vector<Var> captured(inputs.size());
  for (size_t j = 0; j < inputs.size(); ++j) {
    const size_t slot = tape.slot_of(inputs[j]);
    if (slot != Tape::npos) capture[tape[slot]].push_back(j);
  }

  // cot[i]: node i's accumulated cotangent.
  SweepValues cot(tape.size(), opt.basis);
  if (opt.basis.active()) {
    if (roots.size() != 1 || !tape.root(0) || inputs.empty() || opt.create_graph || updates)
      throw value_error("internal error: a basis sweep needs one root that requires grad, inputs, no create_graph");
    cot.seed_identity(tape.root(0)->sweep_slot, roots[0]);
  } else {
    for (size_t r = 0; r < roots.size(); ++r)
      if (Node* n = tape.root(r)) cot.add(n->sweep_slot, std::move(seeds[r]), false);
  }

  // Hooks (only when some exist anywhere). A leaf with hooks is handled as
  // soon as its gradient is final, when the last node with an edge to it has
  // passed (pending[slot] edges to go), not with the other leaves at the end
  // of the sweep: its post-accumulate hooks may start work (an allreduce)
  // while the sweep goes on.
  const bool hooked = kMayHook && g_live_hooks.load(std::memory_order_relaxed) != 0;
  std::vector<uint32_t> pending;
  if (hooked) {
    pending.assign(tape.size(), 0);
    for (size_t i = 0; i < tape.size(); ++i)
      for (const auto& e : tape[i]->next)
        if (e && e->is_accumulator() && hooks_at(e.get())) ++pending[e->sweep_slot];
  }

  // A gradient reaching the Variable node n stands for: its hooks, then the
  // gradients `inputs` asked for.
  auto reached = [&](Node* n, Var& g) {
    if (hooked)
      if (VariableHooks* h = hooks_at(n); h && h->has_grad_hooks()) h->on_grad(g);
    if (!capture.empty())
      if (auto it = capture.find(n); it != capture.end())
        for (size_t j : it->second) captured[j] = g;
  };
  auto accumulate_leaf = [&](Node* n, Var g) {
    reached(n, g);
    if (!updates) return;
    const Var& leaf = static_cast<AccumulateGrad*>(n)->variable;
    if (hooked)
      if (VariableHooks* h = hooks_at(n); h && h->has_post_hooks())
        return h->accumulate_and_notify(leaf, std::move(g), opt.create_graph);
    updates->items.emplace_back(leaf, std::move(g));
  };
  // After node n: the hooked leaves it was the last to feed.
  auto passed = [&](const Node* n) {
    for (const auto& e : n->next) {
      if (!e || !pending[e->sweep_slot] || --pending[e->sweep_slot]) continue;
      const size_t slot = e->sweep_slot;
      const bool structured = cot.structured(slot);
      if (Var g = cot.take(slot)) accumulate_leaf(e.get(), structured ? cot.densify(g) : std::move(g));
    }
  };

  // The reverse loop, newest node first. (The loop is not a generic lambda
  // compiled twice within this function: GCC outlined it, +24 per node.)
  InterruptPoll poll;
  const bool anomaly = kMayHook && anomaly_enabled();
  const bool unusual = hooked || anomaly;
  const bool may_overwrite = !opt.create_graph && !anomaly;  // (anomaly mode reads g afterwards)
  auto step = [&](size_t i) {
    Node* n = tape[i];
    Var g = cot.take(i);
    if (!g) {  // no adjoint reached this node: skip it (never because it is numerically zero)
      if (!opt.retain_graph && !n->is_accumulator()) n->release();
      return;
    }
    const bool in_capture = !capture.empty() && capture.count(n);
    if (cot.structured(i)) {
      if (!in_capture && !n->is_accumulator() && !(unusual && ((hooked && hooks_at(n)) || anomaly)) &&
          cot.vjp_structured(*n, g)) {
        if (!opt.retain_graph) n->release();
        return;
      }
      g = cot.densify(g);
    }
    if (n->is_accumulator()) {
      if (unusual) return accumulate_leaf(n, std::move(g));
      if (in_capture) reached(n, g);
      if (updates) updates->items.emplace_back(static_cast<AccumulateGrad*>(n)->variable, std::move(g));
      return;
    }
    if (hooked || in_capture) reached(n, g);
    if (updates) {
      if (Var rv = n->retained.lock()) updates->items.emplace_back(std::move(rv), g);
    }
    // A gradient that is a few elements of its input's (a single-element
    // getitem's): added into the input's cotangent in place, with the dense
    // path's bits, instead of a zero vector of the input's size and a sum.
    // (Not with hooks or anomaly mode anywhere, nor under create_graph.)
    // (No return of its own: a fourth call of release() here made GCC
    // outline it, +31 instructions a node on the callgrind chain.)
    bool added = false;
    if (n->has_vjp_into && !unusual && may_overwrite) {
      Node* e = n->next[0].get();
      added = e && !cot.structured(e->sweep_slot) && n->vjp_into(g, cot.slot(e->sweep_slot));
    }
    if (!added) {
      Grads grads = [&] {
        struct Overwrite {  // reset even when a rule throws
          Node* n;
          ~Overwrite() { n->sweep_may_overwrite = false; }
        } scope{n};
        n->sweep_may_overwrite = may_overwrite;
        return anomaly ? anomaly_vjp(*n, g) : n->vjp(g);
      }();
      if (anomaly) anomaly_check_rule(*n, Grads::of(Var(g)), grads, true);
      for (size_t k = 0; k < n->next.size() && k < grads.size(); ++k) {
        if (n->next[k] && grads[k]) cot.add(n->next[k]->sweep_slot, std::move(grads[k]), false);
      }
    }
    if (!opt.retain_graph) n->release();
  };
  // (poll_at: the index of the next clock read; signed: it may fall below 0)
  for (ptrdiff_t i = static_cast<ptrdiff_t>(tape.size()) - 1, poll_at = i; i >= 0; --i) {
    if (__builtin_expect(i == poll_at, 0)) poll_at = i - static_cast<ptrdiff_t>(poll.slow());
    step(static_cast<size_t>(i));
    if (hooked) passed(tape[i]);
  }
  return captured;
}

__attribute__((noinline)) static std::vector<Var> backward_hooked(const std::vector<Var>& roots,
                                                                  std::vector<Var>& seeds,
                                                                  const BackwardOptions& opt,
                                                                  const std::vector<Var>& inputs,
                                                                  GradUpdates* updates) {
  return backward_sweep<true>(roots, seeds, opt, inputs, updates);
}

std::vector<Var> backward(const std::vector<Var>& roots, std::vector<Var> seeds, const BackwardOptions& opt,
                          const std::vector<Var>& inputs, GradUpdates* updates) {
  // (Hooks registered by another thread while this one starts its sweep are
  // a data race anyway: see hooks.cpp.)
  if (__builtin_expect(g_live_hooks.load(std::memory_order_relaxed) != 0 || anomaly_enabled(), 0))
    return backward_hooked(roots, seeds, opt, inputs, updates);
  return backward_sweep<false>(roots, seeds, opt, inputs, updates);
}

std::vector<Var> forward(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                         const std::vector<Var>& tangents, int nb, bool create_graph, Basis basis) {
  EngineLock lock;
  GradModeGuard mode(create_graph);
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
  const Tape tape(outputs);
  lock.frame.tape = &tape;
  // A dense tangent of a value of shape s is batch + s.
  auto batched = [&](const Shape& s) {
    Shape want = batch;
    want.insert(want.end(), s.begin(), s.end());
    return want;
  };

  // Seeds: an input's tangent enters at the node standing for it. Inputs the
  // outputs do not reach contribute nothing.
  SweepValues tan(tape.size(), basis);
  std::vector<char> seeded(tape.size(), 0);
  for (size_t j = 0; j < inputs.size(); ++j) {
    const size_t slot = tape.slot_of(inputs[j]);
    if (slot == Tape::npos) continue;
    if (basis.active()) tan.seed_identity(slot, inputs[j]);
    else tan.set(slot, Var(tangents[j]), false);
    seeded[slot] = 1;
  }

  // The forward loop, oldest node first: each node's JVP from its inputs'
  // tangents.
  InterruptPoll poll;
  const bool anomaly = anomaly_enabled();
  for (size_t i = 0, poll_at = 0; i < tape.size(); ++i) {
    if (__builtin_expect(i == poll_at, 0)) poll_at = i + poll.slow();
    Node* n = tape[i];
    if (seeded[i] || n->is_accumulator()) continue;
    Grads ts;
    bool any = false, any_structured = false;
    for (const auto& e : n->next) {
      Var t = e ? tan[e->sweep_slot] : nullptr;
      if (t) {
        any = true;
        any_structured = any_structured || tan.structured(e->sweep_slot);
      }
      ts.push_back(std::move(t));
    }
    if (!any) continue;  // no tangent reaches this node: zero, skipped
    Var t;
    bool structured = false;
    std::optional<AnomalyRuleScope> scope;
    if (anomaly) scope.emplace(*n, false);
    if (any_structured) std::tie(t, structured) = tan.jvp_structured(*n, ts, nb);
    else t = n->jvp(ts, nb);
    scope.reset();
    if (anomaly && t) anomaly_check_rule(*n, ts, Grads::of(Var(t)), false);
    if (!structured && t) {
      Shape want = batched(n->out_shape);
      if (t->shape() != want) t = broadcast_to(t, want);
    }
    tan.set(i, std::move(t), structured);
  }

  std::vector<Var> out;
  for (size_t k = 0; k < outputs.size(); ++k) {
    Node* n = tape.root(k);
    Var t = n ? tan.dense(n->sweep_slot) : nullptr;
    if (!t) t = make_var(Tensor::zeros(batched(outputs[k]->shape()), outputs[k]->dtype()));
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace tg
