"""MLP training-step workloads and one class per system that runs them (used by run.py).

A workload is an ``MLPSpec``; ``make_problem(spec)`` draws its fixed, seeded
batch and initial weights with NumPy alone, so every system starts from the
same numbers (and a memory worker for, say, PyTorch imports nothing else).

Every system class is built as ``System(spec, weights, x, y)`` and has

* ``step()``: one training step (forward, backward, SGD update with lr
  ``LR``) on the fixed batch; returns the loss (anything with ``.item()``),
  finished (JAX blocks until ready);
* ``params()``: the current ``[(W, b), ...]`` as NumPy arrays, ``W`` of shape
  ``(in, out)`` (tapegrad's convention; PyTorch's ``(out, in)`` is transposed).

Weights are ``[(W, b), ...]`` per layer, ``W`` of shape ``(in, out)``.
"""
import math
from dataclasses import dataclass

import numpy as np

LR = 0.01
SEED = 0


@dataclass(frozen=True)
class MLPSpec:
    name: str
    sizes: tuple          # layer widths, input first
    activation: str       # "tanh" or "relu", after every layer but the last
    loss: str             # "mse" (one regression target per output) or "cross_entropy" (integer labels)
    batch: int

    @property
    def layers(self):
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    def flops(self):
        """FLOPs of one step's matmuls: forward, weight gradients, input gradients (not of the first layer)."""
        macs = [i * o for i, o in self.layers]
        return 2 * self.batch * (2 * sum(macs) + sum(macs[1:]))

    def describe(self):
        return f"{'-'.join(map(str, self.sizes))} {self.activation} {self.loss.replace('_', '-')} batch {self.batch}"


MLP_WORKLOADS = {
    "mlp_tiny": MLPSpec("mlp_tiny", (2, 16, 16, 1), "tanh", "mse", 32),
    "mlp_mnist": MLPSpec("mlp_mnist", (784, 128, 10), "relu", "cross_entropy", 64),
    "mlp_large": MLPSpec("mlp_large", (784, 1024, 1024, 10), "relu", "cross_entropy", 256),
}


def make_problem(spec, dtype=np.float32, seed=SEED):
    """(weights, x, y): He-normal (relu) or Xavier-uniform (tanh) weights, zero biases, a random batch."""
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in spec.layers:
        if spec.activation == "relu":
            w = rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
        else:
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-bound, bound, (fan_in, fan_out))
        weights.append((w.astype(dtype), np.zeros(fan_out, dtype=dtype)))
    x = rng.standard_normal((spec.batch, spec.sizes[0])).astype(dtype)
    if spec.loss == "mse":
        y = rng.standard_normal((spec.batch, spec.sizes[-1])).astype(dtype)
    else:
        y = rng.integers(0, spec.sizes[-1], spec.batch)
    return weights, x, y


# --------------------------------------------------------------------------- systems


class _EagerStep:
    """The training step of a library with a PyTorch-style API (tapegrad and PyTorch eager):
    the subclass sets model, opt, loss_fn, x and y."""

    def step(self):
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss


class TapegradMLP(_EagerStep):
    """tapegrad as a user's training script writes it: nn.MLP, nn losses, optim.SGD."""

    name = "tapegrad"

    def __init__(self, spec, weights, x, y):
        import tapegrad as tg

        self.model = tg.nn.MLP(spec.sizes, activation=spec.activation, dtype=x.dtype, rng=SEED)
        names = [name for name, _ in self.model.named_parameters()]
        self.model.load_state_dict(dict(zip(names, (a for layer in weights for a in layer))))
        self.opt = tg.optim.SGD(self.model.parameters(), lr=LR)
        self.loss_fn = tg.nn.mse_loss if spec.loss == "mse" else tg.nn.cross_entropy
        self.x, self.y = tg.Variable(x), y

    def params(self):
        p = [np.array(v.data) for v in self.model.parameters()]
        return list(zip(p[::2], p[1::2]))


class ReferenceMLP:
    """tapegrad.reference (pure NumPy engine): the same nn.MLP run on reference
    Variables through ``nn.functional_call``, SGD as an in-place update under no_grad
    (the reference engine has no optim module)."""

    name = "tapegrad.reference"

    def __init__(self, spec, weights, x, y):
        import tapegrad as tg
        from tapegrad import reference as ref

        self.ref, self.functional_call = ref, tg.nn.functional_call
        self.model = tg.nn.MLP(spec.sizes, activation=spec.activation, dtype=x.dtype, rng=SEED)
        names = [name for name, _ in self.model.named_parameters()]
        self.params_ = {n: ref.Variable(a, requires_grad=True)
                        for n, a in zip(names, (a for layer in weights for a in layer))}
        self.loss_fn = tg.nn.mse_loss if spec.loss == "mse" else tg.nn.cross_entropy
        self.x, self.y = ref.Variable(x), y

    def step(self):
        loss = self.loss_fn(self.functional_call(self.model, self.params_, self.x), self.y)
        loss.backward()
        with self.ref.no_grad():
            for p in self.params_.values():
                p -= LR * p.grad
                p.grad = None
        return loss

    def params(self):
        p = [np.array(v.data) for v in self.params_.values()]
        return list(zip(p[::2], p[1::2]))


class TorchMLP(_EagerStep):
    """PyTorch eager, idiomatic: nn.Sequential of nn.Linear, F.mse_loss / F.cross_entropy, optim.SGD."""

    name = "torch eager"

    def __init__(self, spec, weights, x, y):
        import torch
        import torch.nn.functional as F

        layers = []
        for i, (w, b) in enumerate(weights):
            linear = torch.nn.Linear(*w.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w.T))   # torch stores (out, in)
                linear.bias.copy_(torch.from_numpy(b))
            layers.append(linear)
            if i < len(weights) - 1:
                layers.append(torch.nn.Tanh() if spec.activation == "tanh" else torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.loss_fn = F.mse_loss if spec.loss == "mse" else F.cross_entropy
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y if spec.loss == "mse" else y.astype(np.int64))

    def params(self):
        p = [t.detach().numpy().copy() for t in self.model.parameters()]
        return [(w.T.copy(), b) for w, b in zip(p[::2], p[1::2])]


class NumpyMLP:
    """Hand-written NumPy backprop: forward, backward by hand, SGD update, in place where natural.

    The floor a Python-driven library can reach (no graph, no bookkeeping).
    Run in float64, it is also the oracle the correctness check compares against."""

    name = "numpy by hand"

    def __init__(self, spec, weights, x, y):
        self.spec = spec
        self.weights = [(w.copy(), b.copy()) for w, b in weights]
        self.x, self.y = x, y
        self.rows = np.arange(spec.batch)

    def step(self):
        tanh = self.spec.activation == "tanh"
        last = len(self.weights) - 1
        acts = [self.x]                      # the input of each layer
        h = self.x
        for i, (w, b) in enumerate(self.weights):
            h = h @ w
            h += b
            if i < last:
                np.tanh(h, out=h) if tanh else np.maximum(h, 0, out=h)
                acts.append(h)
        # loss and its gradient with respect to the outputs
        if self.spec.loss == "mse":
            g = h - self.y
            loss = np.mean(g * g)
            g *= 2.0 / g.size
        else:
            h -= h.max(axis=1, keepdims=True)
            e = np.exp(h)
            s = e.sum(axis=1, keepdims=True)
            loss = np.mean(np.log(s[:, 0]) - h[self.rows, self.y])
            g = e
            g /= s
            g[self.rows, self.y] -= 1.0
            g /= len(g)
        # backward, updating each layer once its weight has been used for the input gradient
        for i in range(last, -1, -1):
            w, b = self.weights[i]
            gw = acts[i].T @ g
            gb = g.sum(axis=0)
            if i > 0:
                g = g @ w.T
                a = acts[i]
                if tanh:
                    g *= 1.0 - a * a
                else:
                    g *= a > 0
            w -= LR * gw
            b -= LR * gb
        return loss

    def params(self):
        return [(w.copy(), b.copy()) for w, b in self.weights]


class JaxMLP:
    """JAX: value_and_grad and the SGD update jit-compiled into one function, parameters donated."""

    name = "jax jit"

    def __init__(self, spec, weights, x, y):
        import functools

        import jax
        import jax.numpy as jnp

        act = jnp.tanh if spec.activation == "tanh" else jax.nn.relu

        def loss_fn(params, x, y):
            h = x
            for i, (w, b) in enumerate(params):
                h = h @ w + b
                if i < len(params) - 1:
                    h = act(h)
            if spec.loss == "mse":
                return jnp.mean((h - y) ** 2)
            logp = jax.nn.log_softmax(h, axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        @functools.partial(jax.jit, donate_argnums=0)
        def update(params, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            return jax.tree.map(lambda p, g: p - LR * g, params, grads), loss

        self.jax, self.update = jax, update
        self.params_ = [(jnp.asarray(w), jnp.asarray(b)) for w, b in weights]
        self.x = jnp.asarray(x)
        self.y = jnp.asarray(y if spec.loss == "mse" else y.astype(np.int32))

    def step(self):
        self.params_, loss = self.update(self.params_, self.x, self.y)
        return self.jax.block_until_ready((self.params_, loss))[1]

    def params(self):
        return [(np.array(w), np.array(b)) for w, b in self.params_]


SYSTEMS = {cls.name: cls for cls in (TapegradMLP, TorchMLP, NumpyMLP, ReferenceMLP, JaxMLP)}
_NEEDS = {"torch eager": "torch", "jax jit": "jax"}


def missing(system):
    """None if the system can run here, else why not (e.g. "not installed")."""
    module = _NEEDS.get(system)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        return "not installed"
    return None


def set_threads(n):
    """Run every loaded system at n threads: tapegrad (and its BLAS), torch, NumPy's BLAS.

    JAX (XLA) fixes its thread pool when its backend starts; see ``jax_thread_flags``.
    Returns the threadpoolctl limiter (keep it alive; calling again replaces it)."""
    import sys

    from threadpoolctl import threadpool_limits

    if "tapegrad" in sys.modules:
        sys.modules["tapegrad"].set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return threadpool_limits(limits=n, user_api="blas")


def jax_thread_flags(n):
    """XLA_FLAGS that make XLA:CPU use one thread (must be set before jax starts); '' for n > 1."""
    return "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" if n == 1 else ""
