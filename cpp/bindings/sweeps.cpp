// The sweeps and modes behind backward(), grad/vjp, jvp and jacobian: seeds
// checked and converted here, then the C++ sweep runs without the GIL.
#include <algorithm>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "tapegrad/kernels.hpp"

namespace tgpy {

// A seed for a sweep from `self`: shape batch + self.shape, where batch is
// the first `nb` axes of the given array (nb = 0: exactly self's shape).
// (bind_sweeps: the module's from_numpy, for the seeds borrowed below)
static py::handle g_from_numpy;
// A NumPy seed at least this large is borrowed rather than copied when it may be shared.
constexpr size_t kBorrowSeedBytes = 64 << 10;

Var make_seed(const Var& self, py::handle grad, int nb, const char* what, bool share) {
  // A shared NumPy seed of the output's shape and dtype, C-contiguous, is
  // borrowed (from_numpy: no copy). Its storage is marked borrowed, so the
  // sweep never writes into it and .grad copies from it, as from a Variable
  // seed; the copy to_var made cost a pass over the seed in every grad row
  // fed a NumPy array, needed by none whose VJP writes a new array (flip,
  // roll, pad: 250-450 us per 1M float32, h95-shape).
  ArrayFields f;
  if (share && nb == 0 && array_fields(grad, &f) && f.c_contiguous && native_float(f) == self->dtype() &&
      f.shape == self->shape() && static_cast<size_t>(numel(f.shape)) * itemsize(self->dtype()) >= kBorrowSeedBytes)
    return holder_of(g_from_numpy(grad));
  if (grad.is_none()) {
    if (self->data.numel() != 1 || nb != 0)
      throw graph_error(std::string(what) + ": grad can be implicitly created only for a single-element output, "
                        "but this output has shape " + shape_str(self->shape()) + ": pass grad= an array of that shape");
    return make_var(Tensor::full(self->shape(), self->dtype(), 1.0));
  }
  Var g = to_var(grad, self->dtype(), what);
  const Shape& gs = g->shape();
  bool ok = static_cast<int>(gs.size()) == nb + static_cast<int>(self->shape().size()) &&
            std::equal(self->shape().begin(), self->shape().end(), gs.begin() + nb);
  if (!ok)
    throw value_error(std::string(what) + ": the cotangent has shape " + shape_str(gs) + " but the output has shape " +
                      shape_str(self->shape()) + (nb ? " (expected batch + output shape)" : ""));
  if (g->requires_grad) return g->dtype() == self->dtype() ? g : astype(g, self->dtype());
  // Shared: the caller's array itself. The sweep never writes into a
  // gradient someone else holds (exclusive()) and .grad copies one, so the
  // one copy is made where it is needed (none when a rule makes a new array).
  if (share && g->dtype() == self->dtype()) return make_var(g->data);
  // A private copy in the output's dtype: the sweep may accumulate into it.
  return make_var(g->dtype() == self->dtype() ? g->data.clone() : kern::astype(g->data, self->dtype()));
}

// The elements of t's storage it can reach: [lo, hi) in elements.
static std::pair<int64_t, int64_t> extent(const Tensor& t) {
  int64_t lo = t.offset, hi = t.offset + 1;
  const Shape st = t.strides();
  for (size_t d = 0; d < st.size(); ++d) {
    const int64_t span = (t.shape[d] - 1) * st[d];
    (span < 0 ? lo : hi) += span;
  }
  return {lo, hi};
}

// grad()/vjp() hand back arrays of their own: a result that shares elements
// with an earlier one (a + b gives both inputs the same gradient) is copied,
// so that a write into one result never changes another. Disjoint blocks of
// one buffer (a stack's parts) stay as they are.
static void unshare_results(std::vector<Var>& res) {
  for (size_t i = 1; i < res.size(); ++i) {
    if (!res[i] || res[i]->requires_grad || res[i]->data.numel() == 0) continue;
    const auto [lo, hi] = extent(res[i]->data);
    for (size_t j = 0; j < i; ++j) {
      if (!res[j] || res[j]->data.storage.get() != res[i]->data.storage.get() || res[j]->data.numel() == 0) continue;
      const auto [lo2, hi2] = extent(res[j]->data);
      if (lo < hi2 && lo2 < hi) {
        res[i] = make_var(res[i]->data.clone());
        break;
      }
    }
  }
}

py::object call_in_sweep(py::handle fn, const py::tuple& args) {
  SweepPause pause;
  py::object r;
  try {
    r = fn(*args);
  } catch (...) {
    py::gil_scoped_release nogil;
    pause.resume();
    throw;
  }
  py::gil_scoped_release nogil;
  pause.resume();
  return r;
}

// Python's signal handlers run only on the main thread: a sweep there checks
// for them between nodes (Ctrl-C -> KeyboardInterrupt), one elsewhere need not.
static unsigned long g_main_thread = 0;

static void check_signals_in_sweep() {
  if (PyThread_get_thread_ident() != g_main_thread || !Py_IsInitialized()) return;
  py::gil_scoped_acquire gil;
  SweepPause pause;  // a handler may be any Python code
  const int rc = PyErr_CheckSignals();
  {
    py::gil_scoped_release nogil;
    pause.resume();
  }
  if (rc != 0) throw py::error_already_set();
}

// Anomaly mode: where the op being recorded was called from. The innermost
// frame of the caller's own code, outside the tapegrad package and Python's
// frozen modules ("train.py:40 (in step)"), followed by the innermost frame
// when that one is inside the package (a layer's forward).
static std::string python_location() {
  if (!Py_IsInitialized()) return "";
  py::gil_scoped_acquire gil;  // large matmuls record without the GIL
  static std::vector<std::string> package_dirs;  // (an editable install has two)
  if (package_dirs.empty()) {
    py::object pkg = py::module_::import("sys").attr("modules").attr("get")("tapegrad");
    if (!pkg.is_none())
      for (py::handle d : pkg.attr("__path__")) package_dirs.push_back(py::str(d).cast<std::string>() + "/");
  }
  auto ours = [](const std::string& file) {
    if (file.empty() || file[0] == '<') return true;
    for (const std::string& d : package_dirs)
      if (file.compare(0, d.size(), d) == 0) return true;
    return false;
  };
  std::string first, outside;
  PyFrameObject* f = PyEval_GetFrame();  // borrowed
  Py_XINCREF(f);
  while (f && outside.empty()) {
    PyCodeObject* code = PyFrame_GetCode(f);
    std::string file = py::str(reinterpret_cast<PyObject*>(code->co_filename)).cast<std::string>();
    std::string here = file + ":" + std::to_string(PyFrame_GetLineNumber(f)) + " (in " +
                       py::str(reinterpret_cast<PyObject*>(code->co_name)).cast<std::string>() + ")";
    Py_DECREF(code);
    if (first.empty()) first = here;
    if (!ours(file)) outside = here;
    PyFrameObject* back = PyFrame_GetBack(f);
    Py_DECREF(f);
    f = back;
  }
  Py_XDECREF(f);
  if (outside.empty()) return first;
  return outside == first ? outside : outside + ", via " + first;
}

bool share_seed(bool create_graph) { return !create_graph && g_live_hooks.load(std::memory_order_relaxed) == 0; }

void run_backward(const std::vector<Var>& roots, std::vector<Var> seeds, bool retain, bool create) {
  for (const Var& r : roots)
    if (!r->requires_grad)
      throw graph_error("backward: this Variable does not require grad and has no grad_fn: create its inputs with "
                        "requires_grad=True (and outside no_grad)");
  BackwardOptions opt{retain, create, {}};
  GradUpdates updates;
  {
    py::gil_scoped_release nogil;  // the sweep never touches Python
    with_op("backward", [&] { backward(roots, std::move(seeds), opt, {}, &updates); });
  }
  accumulate_grads(updates);  // with the GIL: Python threads read and reset .grad
}

void bind_sweeps(py::module_& m) {
  // A thread waiting for another thread's sweep can be interrupted (Ctrl-C).
  set_engine_wait_check([] {
    if (!Py_IsInitialized()) return;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  });
  g_from_numpy = py::object(m.attr("from_numpy")).release();  // (bound by bind_functions, before this)
  g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  set_sweep_interrupt_check(&check_signals_in_sweep);
  set_anomaly_location_source(&python_location);
  m.def("is_anomaly_enabled", &anomaly_enabled, "True inside tapegrad.detect_anomaly() (per thread).");
  m.def("_set_anomaly_enabled", [](bool on) { bool prev = anomaly_enabled(); set_anomaly_enabled(on); return prev; });
  m.def("is_grad_enabled", &grad_enabled, "Whether ops are recorded on this thread (see no_grad / enable_grad).");
  m.def("_set_grad_enabled", [](bool on) { bool prev = grad_enabled(); set_grad_enabled(on); return prev; });
  m.def("_backward", [](const std::vector<Var>& roots, py::list grads, bool retain, bool create) {
        std::vector<Var> seeds;
        for (size_t i = 0; i < roots.size(); ++i) seeds.push_back(make_seed(roots[i], grads[i], 0, "backward", share_seed(create)));
        run_backward(roots, std::move(seeds), retain, create);
      }, py::arg("roots"), py::arg("grads"), py::arg("retain_graph") = false, py::arg("create_graph") = false);
  m.def("_grad", [](const std::vector<Var>& outputs, const std::vector<Var>& inputs, py::list grads, bool retain,
                    bool create, int nb) {
        if (grads.size() != outputs.size()) throw value_error("grad: one cotangent per output is needed");
        std::vector<Var> seeds;
        for (size_t i = 0; i < outputs.size(); ++i) {
          if (!outputs[i]->requires_grad)
            throw graph_error("grad: output " + std::to_string(i) + " does not depend on an input that requires grad");
          seeds.push_back(make_seed(outputs[i], grads[i], nb, "vjp"));
        }
        BackwardOptions opt{retain, create, {}};
        std::vector<Var> res;
        {
          py::gil_scoped_release nogil;
          res = with_op("grad", [&] { return backward(outputs, seeds, opt, inputs, nullptr); });
        }
        unshare_results(res);
        return res;
      }, py::arg("outputs"), py::arg("inputs"), py::arg("grads"), py::arg("retain_graph") = false,
      py::arg("create_graph") = false, py::arg("batch_dims") = 0,
      "Gradients of outputs with respect to inputs (None where unreached), without touching .grad. With "
      "batch_dims=1 each cotangent carries a leading batch axis (k cotangents in one sweep).");

  // jacobian()'s sweeps seeded with rows start..stop of the identity, kept
  // structured inside the sweep (see Basis in autograd.hpp): no seed arrays.
  auto check_rows = [](int64_t start, int64_t stop, int64_t size, const char* what) {
    if (start < 0 || stop <= start || stop > size)
      throw value_error(std::string(what) + ": basis rows " + std::to_string(start) + ".." + std::to_string(stop) +
                        " out of range for size " + std::to_string(size));
  };
  m.def("_grad_basis", [check_rows](const Var& output, const std::vector<Var>& inputs, int64_t start, int64_t stop,
                                    bool retain) {
        if (!output->requires_grad)
          throw graph_error("jacobian: the output does not depend on an input that requires grad");
        if (inputs.empty()) throw value_error("jacobian: no inputs");
        check_rows(start, stop, output->data.numel(), "jacobian");
        BackwardOptions opt{retain, false, Basis{start, stop}};
        std::vector<Var> res;
        {
          py::gil_scoped_release nogil;
          res = with_op("jacobian", [&] { return backward({output}, {}, opt, inputs, nullptr); });
        }
        return res;
      }, py::arg("output"), py::arg("inputs"), py::arg("start"), py::arg("stop"), py::arg("retain_graph") = false,
      "Rows start..stop of the Jacobian of output (flattened) with respect to each input, one reverse sweep "
      "seeded with those rows of the identity (None where unreached).");
  m.def("_forward_basis", [check_rows](const Var& output, const Var& input, int64_t start, int64_t stop) {
        check_rows(start, stop, input->data.numel(), "jacobian");
        std::vector<Var> res;
        {
          py::gil_scoped_release nogil;
          res = with_op("jacobian", [&] { return forward({output}, {input}, {}, 1, false, Basis{start, stop}); });
        }
        return res[0];
      }, py::arg("output"), py::arg("input"), py::arg("start"), py::arg("stop"),
      "Columns start..stop of the Jacobian of output with respect to input (batch axis first), one forward "
      "sweep seeded with those rows of the identity.");

  m.def("_forward", [](const std::vector<Var>& outputs, const std::vector<Var>& inputs, py::list tangents, int nb,
                       bool create) {
        if (tangents.size() != inputs.size()) throw value_error("jvp: one tangent per input is needed");
        if (inputs.empty()) throw value_error("jvp: no inputs");
        std::vector<Var> ts;
        Shape batch;
        for (size_t i = 0; i < inputs.size(); ++i) {
          Var t = to_var(tangents[i], inputs[i]->dtype(), "jvp");
          const Shape& s = t->shape();
          const Shape& want = inputs[i]->shape();
          bool ok = static_cast<int>(s.size()) == nb + static_cast<int>(want.size()) &&
                    std::equal(want.begin(), want.end(), s.begin() + nb);
          if (ok && i == 0) batch = Shape(s.begin(), s.begin() + nb);
          ok = ok && std::equal(batch.begin(), batch.end(), s.begin());
          if (!ok)
            throw value_error("jvp: tangent " + std::to_string(i) + " has shape " + shape_str(s) + " but its primal has shape " +
                              shape_str(want) + (nb ? " (expected batch + primal shape)" : ""));
          if (t->dtype() != inputs[i]->dtype()) t = make_var(kern::astype(t->data, inputs[i]->dtype()));
          ts.push_back(t);
        }
        std::vector<Var> res;
        {
          py::gil_scoped_release nogil;
          res = with_op("jvp", [&] { return forward(outputs, inputs, ts, nb, create); });
        }
        return res;
      }, py::arg("outputs"), py::arg("inputs"), py::arg("tangents"), py::arg("batch_dims") = 0,
      py::arg("create_graph") = false,
      "Forward sweep over the recorded tape: tangents of outputs given tangents of inputs (batch_dims leading "
      "batch axes: k directions in one sweep).");
}

}  // namespace tgpy
