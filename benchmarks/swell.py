"""Expression swell: symbolic derivatives vs the tape, as functions nest.

    python benchmarks/swell.py [--depth-sincos 12] [--depth-sigmoid 6]

For x ↦ sin(x)·cos(x) and x ↦ σ(A·x + b) nested 1…depth times, prints a
Markdown table per layer: the tree size of the composition and of its
symbolic Jacobian (sympy.diff), the size after common-subexpression
elimination, the tapegrad tape length, the time of sympy.diff + cse and the
time of tapegrad.jacobian.  The tape grows by a constant per layer; the
symbolic derivative's tree roughly doubles per layer (docs/NUMERIC.md).
Needs SymPy (pip install 'tapegrad[symbolic]').
"""
import argparse
import platform
import time

from tapegrad import symbolic


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth-sincos", type=int, default=12)
    parser.add_argument("--depth-sigmoid", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5, help="best of this many AD timings")
    args = parser.parse_args()
    print(f"# python {platform.python_version()} on {platform.machine()}, {time.strftime('%Y-%m-%d')}\n")
    for layer, depth in (("sincos", args.depth_sincos), ("sigmoid", args.depth_sigmoid)):
        report = symbolic.swell_report(layer, depth, repeats=args.repeats)
        print(report)
        print(f"\ngrowth from depth 1 to {depth}: f' tree ×{report.growth('df_tree'):.0f}, "
              f"after CSE ×{report.growth('df_cse'):.1f}, tape ×{report.growth('tape'):.0f}, "
              f"sympy time ×{report.growth('sym_ms'):.0f}\n")


if __name__ == "__main__":
    main()
