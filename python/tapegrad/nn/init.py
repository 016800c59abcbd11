"""Random number generation and weight initialisation for ``tapegrad.nn``.

All randomness in ``tapegrad.nn``, ``tapegrad.optim`` and ``tapegrad.data``
that is not given an explicit ``rng``/``seed`` comes from one global NumPy
generator, reset by :func:`manual_seed`. Same seed => same run, bit for bit.
"""
import numbers

import numpy as np

__all__ = ["manual_seed", "default_generator", "get_rng", "he_normal", "xavier_uniform", "initialize"]

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed the global generator used by layers (initialisation, dropout) without an ``rng``."""
    global _generator
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator():
    """The global ``numpy.random.Generator`` (the one :func:`manual_seed` resets)."""
    return _generator


def get_rng(rng=None):
    """``rng`` as a Generator: None -> the global one, an int -> a new seeded one."""
    if rng is None:
        return _generator
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def he_normal(shape, fan_in, rng=None, dtype=np.float64):
    """He (Kaiming) normal: N(0, 2 / fan_in), for ReLU-like activations."""
    return get_rng(rng).normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(dtype)


def xavier_uniform(shape, fan_in, fan_out, rng=None, dtype=np.float64):
    """Xavier (Glorot) uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), for tanh/sigmoid."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return get_rng(rng).uniform(-a, a, shape).astype(dtype)


INITS = ("he", "xavier")


def initialize(init, shape, fan_in, fan_out, rng=None, dtype=np.float64):
    """An array of ``shape`` drawn by the named scheme: ``"he"`` (:func:`he_normal`) or ``"xavier"``
    (:func:`xavier_uniform`)."""
    if init == "he":
        return he_normal(shape, fan_in, rng, dtype)
    if init == "xavier":
        return xavier_uniform(shape, fan_in, fan_out, rng, dtype)
    raise ValueError(f"unknown init {init!r}: expected one of {', '.join(map(repr, INITS))}")
