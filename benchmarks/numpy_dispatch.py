"""What a call through NumPy's protocols costs on top of the direct tapegrad call.

    python benchmarks/numpy_dispatch.py [--number 200000] [--repeat 7]

In one process: `np.add(v, w)` vs `v + w`, and `np.sum(v)` vs `tg.sum(v)` (3-element
float64 Variables, no graph), against NumPy's own dispatch floor: the same NumPy call on
a class whose `__array_ufunc__` / `__array_function__` return at once. The extra cost
of tapegrad's dispatch is (np.f(v) - direct) - floor; the target is at most 0.15 µs.
Minimum over repeats of the mean per call (the machines are noisy: read the differences).
"""
import argparse
import timeit

import numpy as np

import tapegrad as tg


class Nothing:
    """NumPy's dispatch floor: protocols that do nothing."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return None

    def __array_function__(self, func, types, args, kwargs):
        return None


def per_call(stmt, env, number, repeat):
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=repeat)) / number * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--number", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=7)
    a = p.parse_args(argv)
    env = {"np": np, "tg": tg, "v": tg.Variable(np.ones(3)), "w": tg.Variable(np.ones(3)), "d": Nothing()}
    t = {stmt: per_call(stmt, env, a.number, a.repeat) for stmt in (
        "v + w", "np.add(v, w)", "np.add(d, d)", "tg.sum(v)", "np.sum(v)", "np.sum(d)")}
    print(f"{'call':<14} {'µs':>7}")
    for stmt, us in t.items():
        print(f"{stmt:<14} {us:7.3f}")
    for direct, via, floor in (("v + w", "np.add(v, w)", "np.add(d, d)"), ("tg.sum(v)", "np.sum(v)", "np.sum(d)")):
        extra = t[via] - t[direct] - t[floor]
        print(f"{via}: {t[via] - t[direct]:.3f} µs over {direct}; NumPy's floor {t[floor]:.3f} µs; "
              f"tapegrad's dispatch {extra:+.3f} µs over the floor (target <= 0.15)")


if __name__ == "__main__":
    main()
