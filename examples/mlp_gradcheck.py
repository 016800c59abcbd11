"""Train a small MLP with tapegrad, cross-checking its gradients three ways.

    python examples/mlp_gradcheck.py [--steps 300] [--seed 0]

1. Gradients of the loss of a 2-16-16-1 tanh network on a two-spirals data
   set are computed by the C++ engine, by the pure-NumPy reference engine
   and by central finite differences (float64); all three must agree.
2. The network is trained with plain gradient descent; the loss must fall
   and the training accuracy must rise.
Exits with status 1 if either check fails.
"""
import argparse
import sys
import time

import numpy as np

import tapegrad
import tapegrad.reference


def spirals(n, rng):
    """Two interleaved spirals in the plane, labels 0 and 1."""
    t = np.sqrt(rng.uniform(0.05, 1.0, n)) * 3 * np.pi
    label = rng.integers(0, 2, n)
    sign = np.where(label == 1, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (3 * np.pi)
    return x + rng.normal(0, 0.02, x.shape), label.astype(np.float64)


def init_params(rng, sizes=(2, 16, 16, 1)):
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(rng.normal(0, np.sqrt(1.0 / fan_in), (fan_in, fan_out)))
        params.append(np.zeros(fan_out))
    return params


def loss_fn(engine, params, x, y):
    """Mean binary cross-entropy with logits of an MLP (tanh hidden layers)."""
    h = engine.Variable(x)
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < n_layers - 1:
            h = engine.tanh(h)
    logits = h.reshape(-1)
    # log(1 + exp(z)) - y z, written stably as logsumexp([0, z]) - y z
    zeros = engine.Variable(np.zeros(logits.shape))
    softplus = engine.logsumexp(engine.stack([zeros, logits], axis=0), axis=0)
    return (softplus - logits * y).mean()


def gradients(engine, arrays, x, y):
    params = [engine.Variable(a, requires_grad=True) for a in arrays]
    loss = loss_fn(engine, params, x, y)
    loss.backward()
    return loss.item(), [p.grad.copy() for p in params]


def finite_differences(arrays, x, y, eps=1e-6):
    def value(arrs):
        with tapegrad.no_grad():
            return loss_fn(tapegrad, [tapegrad.Variable(a) for a in arrs], x, y).item()

    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            g[idx] = (value(plus) - value(minus)) / (2 * eps)
        grads.append(g)
    return grads


def max_rel_error(a, b):
    return max(float(np.max(np.abs(u - v) / (np.abs(u) + np.abs(v) + 1e-8))) for u, v in zip(a, b))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x, y = spirals(256, rng)
    arrays = init_params(rng)

    print(f"tapegrad {tapegrad.__version__}: gradient cross-check on a 2-16-16-1 MLP, 256 points")
    loss_cpp, g_cpp = gradients(tapegrad, arrays, x, y)
    loss_ref, g_ref = gradients(tapegrad.reference, arrays, x, y)
    g_fd = finite_differences(arrays, x, y)
    err_ref = max_rel_error(g_cpp, g_ref)
    err_fd = max_rel_error(g_cpp, g_fd)
    print(f"  loss: C++ {loss_cpp:.12f}  reference {loss_ref:.12f}")
    print(f"  max relative gradient error, C++ vs reference engine:     {err_ref:.2e}")
    print(f"  max relative gradient error, C++ vs finite differences:   {err_fd:.2e}")
    ok = abs(loss_cpp - loss_ref) < 1e-12 and err_ref < 1e-9 and err_fd < 1e-5

    params = [tapegrad.Variable(a, requires_grad=True) for a in arrays]
    xv = tapegrad.Variable(x)
    first = None
    t0 = time.perf_counter()
    for step in range(args.steps + 1):
        loss = loss_fn(tapegrad, params, x, y)
        if first is None:
            first = loss.item()
        loss.backward()
        with tapegrad.no_grad():
            for p in params:
                p -= args.lr * p.grad
                p.zero_grad()
        if step % 100 == 0:
            print(f"  step {step:4d}  loss {loss.item():.4f}")
    elapsed = time.perf_counter() - t0
    with tapegrad.no_grad():
        h = xv
        for i in range(len(params) // 2):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < len(params) // 2 - 1:
                h = tapegrad.tanh(h)
    accuracy = float(np.mean((h.numpy().reshape(-1) > 0) == (y == 1)))
    print(f"  trained {args.steps} steps in {elapsed:.2f} s: loss {first:.4f} -> {loss.item():.4f}, "
          f"training accuracy {accuracy:.1%}")
    ok = ok and loss.item() < first

    print("OK: gradients agree three ways and training reduced the loss" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
