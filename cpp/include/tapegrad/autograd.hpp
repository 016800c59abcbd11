// The tape: Variables, graph nodes, saved values and the two sweeps.
//
// Each op that records creates a Node holding edges to the nodes of its
// inputs (an AccumulateGrad node for a leaf). Nodes carry a global sequence
// number in execution order, so the recorded nodes reachable from an output,
// sorted by sequence number, are exactly its Wengert list: backward is a
// reverse loop over that list and forward a loop over it in order, with no
// recursion anywhere.
//
// Ownership: a Variable owns its grad_fn; a node owns its input edges and
// the tensors it saved. Nothing owns a Variable's output back, so there are
// no cycles and a graph is freed as soon as no Variable can reach it.
#pragma once

#include <atomic>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "tapegrad/support/pool.hpp"
#include "tapegrad/support/ref.hpp"
#include "tapegrad/support/small_vector.hpp"
#include "tapegrad/tensor.hpp"

namespace tg {

struct Node;
struct VariableImpl;
using Var = Ref<VariableImpl>;  // counted in place (ref.hpp), as nodes are
using NodeRef = Ref<Node>;
// One gradient per input of an op (null where the input needs none).
using Grads = SmallVec<Var, 2>;

// ----- grad mode and anomaly mode (thread-local) ---------------------------
// One initial-exec TLS byte, inline, read by every op: bit 0 grad mode, bit 1
// anomaly mode (tapegrad.detect_anomaly: every op's forward result and every
// rule's gradients are checked for NaN/inf and the first bad one raises,
// naming the op, its inputs and the Python line that recorded it, which
// nodes keep only in this mode: fetching it per op would cost too much
// otherwise). One byte: an op tests it once when nothing records and once
// more when recording, whether or not anomaly mode exists.
enum : uint8_t { kGradMode = 1, kAnomalyMode = 2 };
extern __attribute__((tls_model("initial-exec"))) thread_local uint8_t t_modes;
inline bool grad_enabled() { return t_modes & kGradMode; }
inline void set_grad_enabled(bool on) { t_modes = static_cast<uint8_t>((t_modes & ~kGradMode) | (on ? kGradMode : 0)); }
inline bool anomaly_enabled() { return t_modes & kAnomalyMode; }
inline void set_anomaly_enabled(bool on) {
  t_modes = static_cast<uint8_t>((t_modes & ~kAnomalyMode) | (on ? kAnomalyMode : 0));
}

struct GradModeGuard {
  bool prev;
  explicit GradModeGuard(bool on) : prev(grad_enabled()) { set_grad_enabled(on); }
  ~GradModeGuard() { set_grad_enabled(prev); }
};

// Hooks a user registered on a Variable (Variable.register_hook and
// register_post_accumulate_grad_hook). The bindings implement them (they call
// Python); the reverse sweep calls them with the engine lock held and without
// the GIL, at the node standing for the Variable: a leaf's hooks live on the
// leaf, a non-leaf's on its grad_fn (so they fire while the graph lives, as
// PyTorch's do, even when the Variable object is gone).
struct VariableHooks {
  virtual ~VariableHooks() = default;
  // g: the Variable's whole gradient in this sweep; a hook may replace it
  // (same shape and dtype, which the implementation checks).
  virtual void on_grad(Var& g) = 0;
  // Adds g into leaf's .grad, then calls the post-accumulate hooks: the
  // sweep calls it as soon as g is final, before the nodes older than the
  // leaf's last consumer.
  virtual void accumulate_and_notify(const Var& leaf, Var g, bool create_graph) = 0;
  virtual bool has_grad_hooks() const = 0;
  virtual bool has_post_hooks() const = 0;
};
// Hooks registered and not removed, in the whole process: while zero, a sweep
// skips every hook check (hooks must cost nothing to sweeps that have none).
inline std::atomic<int64_t> g_live_hooks{0};

struct VariableImpl {
  Tensor data;
  bool requires_grad = false;
  bool retains_grad = false;
  NodeRef grad_fn;  // the op that produced it; null for leaves
  // A leaf's AccumulateGrad node, while a graph uses it; its flag bit is
  // has_extra (an entry in the side table of Extra: a leaf's hooks), so the
  // destructor's one test of this word covers both.
  WeakRef<Node> grad_acc;
  Var grad;                // accumulated gradient (a Variable: create_graph makes it differentiable)
  // The bindings' Python object for this Variable while one is alive (not
  // owned; set and cleared with the GIL held). Returning a Variable to
  // Python finds its object here instead of in a global registry.
  void* py_object = nullptr;

  explicit VariableImpl(Tensor&& t, bool rg = false) : data(std::move(t)), requires_grad(rg) {}
  inline ~VariableImpl();
  VariableImpl(const VariableImpl&) = delete;
  VariableImpl& operator=(const VariableImpl&) = delete;
  bool is_leaf() const { return grad_fn == nullptr; }
  const Shape& shape() const { return data.shape; }
  DType dtype() const { return data.dtype; }
};

// (By reference: each by-value hop of a Tensor is a move plus a destructor,
// on every op's path.)
inline Var make_var(Tensor&& t, bool requires_grad = false) { return make_ref<VariableImpl>(std::move(t), requires_grad); }
inline Var make_var(const Tensor& t, bool requires_grad = false) { return make_var(Tensor(t), requires_grad); }
inline Var scalar_like(double v, const Var& like) { return make_var(Tensor::scalar(v, like->dtype())); }

// Nothing but this reference sees v's values (no other owner, no view, no
// outside memory, not part of a graph): they may be overwritten.
inline bool exclusive(const Var& v) {
  return v.use_count() == 1 && v->data.storage.use_count() == 1 && !v->data.storage->borrowed && !v->requires_grad &&
         v->data.is_contiguous();
}

// The node that receives this Variable's gradient: its grad_fn, or (for a
// leaf that requires grad) its AccumulateGrad node, created on first use.
NodeRef grad_edge_slow(const Var& v);
inline NodeRef grad_edge(const Var& v) {
  if (v->grad_fn) return v->grad_fn;
  return grad_edge_slow(v);
}

// A value saved for the backward pass, with the storage version it had.
struct Saved {
  Tensor data;
  uint32_t version = 0;
  int16_t input = -1;  // index of the input it came from, or -1 for the output
  bool used = false;
};

// What few Variables and nodes carry (none for nearly all): hooks (a leaf's
// on the Variable, a non-leaf's on its grad_fn) and, for a node recorded in
// anomaly mode, where and on what. Kept apart, in a table keyed by the
// object's address (autograd.cpp) and flagged by a byte the object has
// room for: an unused member costs every node and Variable its
// initialization, its destructor's test and call, and 8-16 bytes.
struct Extra {
  std::shared_ptr<VariableHooks> hooks;
  std::string recorded_at;  // "file.py:12 (in f)"
  std::string inputs;       // "(3,) float64, () float32"
};
// The entry of the object at `key` (made when missing; the caller sets the
// object's has_extra), or null when none; stable while the object lives. The
// destructors drop it.
Extra& extra_make(const void* key);
Extra* extra_find(const void* key);
void extra_drop(const void* key) noexcept;
inline VariableImpl::~VariableImpl() {
  if (__builtin_expect(grad_acc.word() != 0, 0) && grad_acc.drop()) extra_drop(this);
}

// Sequence numbers of nodes, in creation (= execution) order.
inline std::atomic<uint64_t> g_node_seq{1};

struct Node {
  uint64_t seq = 0;
  Shape out_shape;                          // shape of the op's output
  SmallVec<NodeRef, 2> next;       // one edge per input; null: needs no grad
  SmallVec<Saved, 3> saved;
  // The output Variable that called retain_grad(); its flag bit is has_extra
  // (an entry in the side table of Extra), tested with the word by ~Node.
  WeakRef<VariableImpl> retained;
  bool released = false;
  // Scratch space of the sweep that is visiting this node: its position in
  // the sweep's tape, and the edge (or root) the sweep reached it through.
  // Node::get needs an owning pointer to the node itself under create_graph,
  // and a Node keeps no weak pointer to itself (enable_shared_from_this would
  // set one up and tear it down on every op).
  uint64_t sweep_id = 0;
  size_t sweep_slot = 0;
  const NodeRef* sweep_owner = nullptr;
  // Set by the reverse sweep around vjp() when the rules run unrecorded: a
  // cotangent nothing else holds may then be overwritten with the input's
  // gradient (a chain of scalar ops or a tanh layer allocates no gradient).
  bool sweep_may_overwrite = false;
  bool accumulator = false;      // an AccumulateGrad (a leaf's)
  bool has_attr_release = true;  // release_attrs() frees something (OpNode knows statically)
  bool has_vjp_into = false;     // vjp_into() may apply (OpNode knows statically)

  // always_inline: each op's recording path constructs one; GCC outlined it
  // (+22 instructions per op) as soon as the node grew by one member.
  __attribute__((always_inline)) Node() : seq(g_node_seq.fetch_add(1, std::memory_order_relaxed)) {}
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  virtual const char* name() const = 0;
  // Gradients for each input, given the gradient of the output (null = zero).
  // `grad` may carry leading batch axes (a batch of cotangents): its shape is
  // batch + out_shape, and each returned gradient is batch + input shape.
  virtual Grads vjp(const Var& grad) = 0;
  // The output's tangent given one tangent per input (null = zero; not all
  // null), each of shape batch + input shape with `nb` leading batch axes.
  // The result may broadcast to batch + out_shape.
  virtual Var jvp(const Grads& tangents, int nb);
  // Leading batch axes of a cotangent for this node's output.
  int batch_dims(const Var& g) const { return static_cast<int>(g->shape().size() - out_shape.size()); }
  bool is_accumulator() const { return accumulator; }  // (a field: the sweep asks at every node)

  // Structured batches. jacobian() seeds a sweep with a chunk of the identity:
  // batch element b is e_{start+b}. The sweep keeps such a batch as one vector
  // d (element b is d[start+b]·e_{start+b}, a chunk of diag(d)) while it
  // passes ops that act position by position, and makes it dense at the first
  // op that mixes positions, where a rule may do that more cheaply than its
  // dense form (matmul with a vector: a scaled copy instead of a GEMM with the
  // identity). See Basis.
  //
  // True when output position i depends only on position i of each input of
  // the output's size (elementwise ops, reshape, astype): vjp/jvp applied to d
  // alone (no batch axes) then give the diagonal batch's d for each input.
  virtual bool pointwise() const { return false; }
  // Dense gradients (batch axis first) from the diagonal cotangent d of shape
  // out_shape; empty when the rule has no form cheaper than densifying.
  virtual Grads vjp_diag(const Var& d, int64_t start, int64_t stop) { return {}; }
  // Dense output tangent when input `i` alone carries the diagonal tangent d
  // (its shape); null when the rule has no form cheaper than densifying.
  virtual Var jvp_diag(size_t i, const Var& d, int64_t start, int64_t stop) { return nullptr; }

  // First-order sweeps only: adds this node's gradient for input 0 straight
  // into `slot` (that input's accumulated cotangent so far, null when none),
  // with the bits accumulate(slot, vjp(g)[0]) would give, and returns true;
  // false (nothing done) when it cannot. Lets a single-element getitem add
  // one element instead of a zero vector of its input's size.
  virtual bool vjp_into(const Var& g, Var& slot) { return false; }

  // Frees what a rule keeps in its attributes beyond the saved values
  // (release() calls it; the node cannot be swept again afterwards).
  virtual void release_attrs() {}

  bool needs(size_t i) const { return i < next.size() && next[i] != nullptr; }
  // True when this vjp may write its result into g's buffer and return g.
  bool may_overwrite(const Var& g) const { return sweep_may_overwrite && exclusive(g); }
  // A saved value as a Variable. Under create_graph it is reconnected to the
  // graph (input i through edge i, the output through this node) so that
  // the backward sweep itself is differentiable.
  Var get(size_t slot);
  // The saved tensor itself (version-checked), for fused first-order rules.
  const Tensor& tensor(size_t slot);
  // Throws graph_error when a saved value was modified in place (or the
  // node was released).
  void check_saved() const {
    if (released || !saved.empty()) check_saved_slow();
  }
  void check_saved_slow() const;
  // Frees the saved values and attributes (inline: the sweep calls it at
  // every node).
  void release() {
    saved.clear();
    if (has_attr_release) release_attrs();
    released = true;
  }
};

// has_extra: the object has an entry in the side table of Extra (kept in a
// flag bit of grad_acc / retained, see there). Set once, never cleared
// while the object lives.
inline bool has_extra(const VariableImpl& v) { return v.grad_acc.flag(); }
inline bool has_extra(const Node& n) { return n.retained.flag(); }
void set_has_extra(VariableImpl& v);  // (under the lock that guards grad_acc)
inline void set_has_extra(Node& n) { n.retained.set_flag(); }

struct AccumulateGrad final : Node {
  Var variable;
  explicit AccumulateGrad(Var v) : variable(std::move(v)) {
    seq = 0;
    accumulator = true;
  }
  const char* name() const override { return "AccumulateGrad"; }
  Grads vjp(const Var&) override { return {}; }
};

// Optional parts of a rule: `static constexpr bool pointwise = true`,
// static vjp_diag / jvp_diag (see Node), and static release(Attrs&) for a
// rule whose attributes hold tensors (freed with the saved values).
template <class R, class = void> struct rule_is_pointwise : std::false_type {};
template <class R> struct rule_is_pointwise<R, std::void_t<decltype(R::pointwise)>> : std::bool_constant<R::pointwise> {};
template <class R, class = void> struct rule_has_release : std::false_type {};
template <class R> struct rule_has_release<R, std::void_t<decltype(&R::release)>> : std::true_type {};
template <class R, class = void> struct rule_has_vjp_into : std::false_type {};
template <class R> struct rule_has_vjp_into<R, std::void_t<decltype(&R::vjp_into)>> : std::true_type {};
template <class R, class = void> struct rule_has_vjp_diag : std::false_type {};
template <class R> struct rule_has_vjp_diag<R, std::void_t<decltype(&R::vjp_diag)>> : std::true_type {};
template <class R, class = void> struct rule_has_jvp_diag : std::false_type {};
template <class R> struct rule_has_jvp_diag<R, std::void_t<decltype(&R::jvp_diag)>> : std::true_type {};

// Anomaly mode's pieces (autograd.cpp): the Python location of the op being
// recorded (from the bindings), the forward check (throws), and the notes a
// node keeps for its backward check.
std::string anomaly_location();
void set_anomaly_location_source(std::string (*source)());
void anomaly_check_forward(const char* op, const VariableImpl& out, const std::vector<const VariableImpl*>& inputs,
                           const std::string& where);
void anomaly_annotate(Node& n, const std::vector<const VariableImpl*>& inputs, const std::string& where);
// Recorder's anomaly step, after the op's node (null when none) was made:
// the forward check, then the node's notes.
void anomaly_recorded(const char* op, const VariableImpl& out, Node* node, const Var* const* inputs, size_t n);
void anomaly_recorded(const char* op, const VariableImpl& out, Node* node, const Var* inputs, size_t n);

// The generic node of an op: the op's rule struct provides `name`, an
// `Attrs` struct and static `vjp(OpNode&, grad)` and `jvp(OpNode&, tangents,
// nb)` next to its forward.
template <class Rule>
struct OpNode final : Node {
  static constexpr bool has_diag = rule_has_vjp_diag<Rule>::value;
  static_assert(has_diag == rule_has_jvp_diag<Rule>::value,
                "a rule defines both vjp_diag and jvp_diag or neither (the sweeps would ignore one alone)");

  // `{}` on an aggregate: each field gets its default member initializer if
  // it has one, zero if it is a scalar, its default constructor otherwise,
  // so none is left indeterminate. Nothing is zero-filled, as `attrs()`
  // would do to the whole struct first (Shape's and Tensor's constructors
  // are user-provided, so their inline slots are left alone).
  static_assert(std::is_aggregate_v<typename Rule::Attrs>, "a rule's Attrs is a plain struct");
  typename Rule::Attrs attrs{};
  // User-provided: make_ref's value-initialization (new T()) would otherwise
  // zero the whole node before constructing it.
  // (always_inline: Recorder::record makes it at two sites.)
  __attribute__((always_inline)) OpNode() {
    has_attr_release = rule_has_release<Rule>::value;
    has_vjp_into = rule_has_vjp_into<Rule>::value;
  }
  const char* name() const override { return Rule::name; }
  Grads vjp(const Var& grad) override { return Rule::vjp(*this, grad); }
  Var jvp(const Grads& tangents, int nb) override { return Rule::jvp(*this, tangents, nb); }
  bool pointwise() const override { return rule_is_pointwise<Rule>::value; }
  void release_attrs() override {
    if constexpr (rule_has_release<Rule>::value) Rule::release(attrs);
  }
  bool vjp_into(const Var& g, Var& slot) override {
    if constexpr (rule_has_vjp_into<Rule>::value) return Rule::vjp_into(*this, g, slot);
    return false;
  }
  Grads vjp_diag(const Var& d, int64_t start, int64_t stop) override {
    if constexpr (has_diag) return Rule::vjp_diag(*this, d, start, stop);
    return {};
  }
  Var jvp_diag(size_t i, const Var& d, int64_t start, int64_t stop) override {
    if constexpr (has_diag) return Rule::jvp_diag(*this, i, d, start, stop);
    return nullptr;
  }
};

// Creates an op's result, and its node when recording is on and an input
// requires grad. Usage:
//   Recorder<ExpRule> r(kern::unary(...), {x});
//   if (r) r.save_output();
//   return r.out;
template <class Rule>
struct Recorder {
  Var out;
  OpNode<Rule>* node = nullptr;

  Recorder(Tensor&& value, std::initializer_list<const Var*> inputs) { init(std::move(value), inputs); }
  Recorder(Tensor&& value, const std::vector<Var>& inputs) { init(std::move(value), inputs); }
  explicit operator bool() const { return node != nullptr; }
  typename Rule::Attrs& attrs() { return node->attrs; }

 private:
  template <class Inputs>
  __attribute__((always_inline)) void init(Tensor&& value, const Inputs& inputs) {
    out = make_var(std::move(value));
    // Recording without anomaly mode (nearly every op) is one compare of the
    // byte, as it is with anomaly mode compiled out; no_grad tests it once
    // more, anomaly mode goes out of line.
    const uint8_t m = t_modes;
    if (__builtin_expect(m == kGradMode, 1))
      node = record(out.get(), inputs);
    else if (__builtin_expect(m != 0, 0))
      node = unusual(out.get(), inputs, m);
  }
  // The inputs' addresses are copied here, in the cold branch: handing the
  // op's braced list itself to a function made it live in memory on every
  // op's path (a store, and loads instead of a register). Inline, so that
  // the list stays the op's own.
  // (The cold functions are given the output's raw pointer, not the
  // Recorder: its address escaping kept the Recorder in memory on the
  // op's path.)
  static __attribute__((always_inline)) OpNode<Rule>* unusual(VariableImpl* o, std::initializer_list<const Var*> inputs,
                                                             uint8_t m) {
    const Var* ins[kListed];
    size_t n = 0;
    for (const Var* v : inputs) {
      if (n == kListed) return unusual_listed(o, std::data(inputs), inputs.size(), m);
      ins[n++] = v;
    }
    return unusual_listed(o, ins, n, m);
  }
  static __attribute__((always_inline)) OpNode<Rule>* unusual(VariableImpl* o, const std::vector<Var>& inputs,
                                                             uint8_t m) {
    return unusual_vector(o, inputs, m);
  }
  struct Listed {  // (record's view of the copied addresses)
    const Var* const* p;
    size_t n;
    const Var* const* begin() const { return p; }
    const Var* const* end() const { return p + n; }
  };
  // Anomaly mode, grad mode on or off: the node as usual, then the forward
  // check and the node's notes.
  static __attribute__((noinline, cold)) OpNode<Rule>* unusual_listed(VariableImpl* o, const Var* const* ins,
                                                                      size_t n, uint8_t m) {
    OpNode<Rule>* made = (m & kGradMode) ? record(o, Listed{ins, n}) : nullptr;
    anomaly_recorded(Rule::name, *o, made, ins, n);
    return made;
  }
  static __attribute__((noinline, cold)) OpNode<Rule>* unusual_vector(VariableImpl* o, const std::vector<Var>& inputs,
                                                                      uint8_t m) {
    OpNode<Rule>* made = (m & kGradMode) ? record(o, inputs) : nullptr;
    anomaly_recorded(Rule::name, *o, made, inputs.data(), inputs.size());
    return made;
  }
  static constexpr size_t kListed = 4;  // (ops list 1-3 inputs)
  // The node of output o, when an input requires grad, else null
  // (make_ref_inline: the cold path above repeats it, and the op's own copy
  // must stay inlined).
  template <class Inputs>
  static __attribute__((always_inline)) OpNode<Rule>* record(VariableImpl* o, const Inputs& inputs) {
    bool any = false;
    for (const auto& v : inputs) any = any || deref(v)->requires_grad;
    if (!any) return nullptr;
    auto n = make_ref_inline<OpNode<Rule>>();
    n->out_shape.assign_inline(o->shape());
    for (const auto& v : inputs) n->next.push_back(deref(v)->requires_grad ? grad_edge(deref(v)) : nullptr);
    o->requires_grad = true;
    OpNode<Rule>* made = n.get();
    NodeRef as_node(std::move(n));
    o->grad_fn.swap(as_node);  // (o is new: nothing to release; a move-assignment was an outlined call)
    return made;
  }
  static const Var& deref(const Var* v) { return *v; }
  static const Var& deref(const Var& v) { return v; }

 public:
  void save_input(const Var& v, int index) {
    node->saved.emplace_back(v->data, v->data.version(), static_cast<int16_t>(index), true);
  }
  void save_output() { node->saved.emplace_back(out->data, out->data.version(), int16_t(-1), true); }
};

// ----- the sweeps ----------------------------------------------------------
// A sweep seeded with rows start..stop of the identity (jacobian's basis
// directions, one batch axis), kept structured while it can (see Node).
struct Basis {
  int64_t start = 0, stop = -1;
  bool active() const { return stop >= 0; }
};

struct BackwardOptions {
  bool retain_graph = false;
  bool create_graph = false;
  Basis basis;  // when active: one root, no seeds, inputs given, no create_graph
};

// What a sweep produced for `.grad` fields: (Variable, gradient) pairs, in
// the order the sweep reached them. They are applied by accumulate_grads,
// apart from the sweep, because the sweep runs without the GIL while Python
// threads may read or reset `.grad`: the bindings apply them with the GIL.
struct GradUpdates {
  std::vector<std::pair<Var, Var>> items;
  bool create_graph = false;
};

// Backpropagates `seeds` (one per root, same shapes) from `roots`. The
// sweep takes the seeds over: a seed nothing else holds (moved in) is a
// gradient the sweep owns, which rules may overwrite and a leaf's .grad may
// adopt without a copy. With `inputs` empty, the gradients of leaves (and of non-leaves that
// called retain_grad) go to `updates`; otherwise the gradients reaching
// `inputs` are returned (null where none reached) and no `.grad` changes
// (torch.autograd.grad semantics).
std::vector<Var> backward(const std::vector<Var>& roots, std::vector<Var> seeds, const BackwardOptions& opt,
                          const std::vector<Var>& inputs, GradUpdates* updates);
// Adds each update into its Variable's `.grad` (accumulating, in place when
// possible, as PyTorch does).
void accumulate_grads(GradUpdates& updates);

// The forward sweep: tangents of `outputs` given tangents of `inputs`
// (Variables the outputs were computed from). Each tangent carries `nb`
// leading batch axes (k directions in one sweep): shape batch + input
// shape; results are batch + output shape. Under `create_graph` the sweep
// is recorded (its results can be differentiated again).
// With `basis` active, `inputs` holds one Variable, `tangents` is empty and
// the tangents are rows basis.start..stop of the identity (nb = 1).
std::vector<Var> forward(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                         const std::vector<Var>& tangents, int nb, bool create_graph, Basis basis = {});


// Python inside a sweep (custom-op rules, hooks, signal handlers) runs with
// the engine lock released,
// so that a rule may start sweeps of its own (nested backward/grad/jvp, as in
// PyTorch) or wait for another thread's sweep. Construct a SweepPause (with
// the GIL) just before the rule; call resume() after it, WITHOUT the GIL (it
// waits for the engine lock, which a thread holding the GIL must never do),
// also when the rule raised. If another sweep ran meanwhile, resume()
// re-stamps the paused sweep's per-node scratch state (Node::sweep_*).
// Outside a sweep both do nothing.
class SweepPause {
 public:
  SweepPause();
  void resume();
  ~SweepPause();  // resumes if resume() was not called (only on a path that cannot hold the GIL)
  SweepPause(const SweepPause&) = delete;
  SweepPause& operator=(const SweepPause&) = delete;

 private:
  struct EngineFrame* frame_ = nullptr;
  uint64_t sweeps_seen_ = 0;
};

// Called about every 100 ms by a thread waiting for the engine lock (without
// the GIL): the bindings check for Ctrl-C there (it may throw).
void set_engine_wait_check(void (*check)());
// Called by the sweeps between nodes, about every 20 ms while a sweep runs
// (a node in progress, such as one long GEMM, finishes first): the bindings
// run Python's signal handlers there, so Ctrl-C raises KeyboardInterrupt out
// of the sweep (it may throw; .grad is then untouched, as for any error).
void set_sweep_interrupt_check(void (*check)());

}  // namespace tg
