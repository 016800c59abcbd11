"""The op spec: every public primitive of tapegrad, declared once.

`opspec/generate.py` turns this file into the C++ op tables (enums, kernel
switch cases, elementwise rules, declarations, bindings with signatures,
`tapegrad._core.__ops__`) at build time, and into the op tables of
docs/API.md (`python opspec/generate.py --docs`). Tests parametrize over
`tapegrad._core.__ops__`; a parity test fails when an op is missing from a
Variable method, the reference engine, the symbolic engine, the docs or the
tests.

Fields of an entry (see `Op` in opspec/schema.py):
  sig      the Python signature, as NumPy spells the arguments
  family   elementwise | binary | reduction | normalize | shape | linalg | loss
           Only `elementwise` rules are generated (from `deriv`); the other
           families' rules are hand-written C++ in cpp/src/ops/<family>.cpp,
           each beside its forward.
  deriv    elementwise only: f'(x) as an expression of the input `x` and the
           output `y`. It gives the VJP (g * f') and the JVP (t * f') alike;
           the generator emits both a differentiable composite (used under
           create_graph, so second order works) and a fused first-order
           kernel. Names: the elementwise ops below, `step(x)` = [x > 0]
           and `sign(x)` (both constants: derivative 0). "linear": the op is
           its own derivative map (JVP = op(t), VJP = op(g)).
  saves    what the rule keeps for the sweep: input | output | nothing
           (for elementwise ops the generator checks it against `deriv`)
  numpy    the NumPy names the op implements
  method   also a Variable method, with the first argument as self (or
           with `method_sig` where the method takes its arguments otherwise)
  domain   where tests draw inputs: real | positive | nonzero | (lo, hi)
  cost     thread-split class: cheap (an add per element) | transcendental
           (a libm call, ~10x an add: the loop is split across threads sooner)
  operator the Python operator it backs, if any
"""
from opspec.schema import Op

OPS = [
    # ----- elementwise unary: rules generated from `deriv` -----------------------------
    Op("negative", "(x, /)", family="elementwise", deriv="linear", saves="nothing", numpy=["negative"],
       doc="-x", method=False, operator="-x", cpp="neg"),
    Op("exp", "(x, /)", family="elementwise", deriv="y", saves="output", numpy=["exp"],
       doc="e**x", method=True, cost="transcendental"),
    Op("log", "(x, /)", family="elementwise", deriv="1 / x", saves="input", numpy=["log"],
       doc="Natural logarithm.", method=True, domain="positive", cost="transcendental"),
    Op("log1p", "(x, /)", family="elementwise", deriv="1 / (1 + x)", saves="input", numpy=["log1p"],
       doc="log(1 + x), accurate for small x.", method=True, domain=(-0.9, 5.0), cost="transcendental"),
    Op("sqrt", "(x, /)", family="elementwise", deriv="1 / (2 * y)", saves="output", numpy=["sqrt"],
       doc="Square root; sqrt'(0) = inf, as NumPy's 1/(2*sqrt(0)).", method=True, domain="positive"),
    Op("sin", "(x, /)", family="elementwise", deriv="cos(x)", saves="input", numpy=["sin"],
       doc="Sine.", method=True, cost="transcendental"),
    Op("cos", "(x, /)", family="elementwise", deriv="-sin(x)", saves="input", numpy=["cos"],
       doc="Cosine.", method=True, cost="transcendental"),
    Op("tanh", "(x, /)", family="elementwise", deriv="1 - y * y", saves="output", numpy=["tanh"],
       doc="Hyperbolic tangent.", method=True, cost="transcendental"),
    Op("sigmoid", "(x, /)", family="elementwise", deriv="y * (1 - y)", saves="output", numpy=[],
       doc="1 / (1 + exp(-x)), stable for large |x|.", method=True, cost="transcendental"),
    Op("relu", "(x, /)", family="elementwise", deriv="step(x)", saves="input", numpy=[],
       doc="max(x, 0); relu'(0) = 0.", method=True),
    Op("softplus", "(x, /)", family="elementwise", deriv="sigmoid(x)", saves="input", numpy=[],
       doc="log(1 + exp(x)), stable: max(x, 0) + log1p(exp(-|x|)).", method=True, cost="transcendental"),
    Op("tan", "(x, /)", family="elementwise", deriv="1 + y * y", saves="output", numpy=["tan"],
       doc="Tangent.", method=True, domain=(-1.3, 1.3), cost="transcendental"),
    Op("abs", "(x, /)", family="elementwise", deriv="sign(x)", saves="input", numpy=["absolute", "abs"],
       doc="|x|; abs'(0) = 0.", method=True, operator="abs(x)"),

    # ----- elementwise with several operands: hand-written rules (elementwise.cpp) -----
    Op("add", "(a, b)", family="binary", saves="nothing", numpy=["add"], doc="a + b", operator="+"),
    Op("subtract", "(a, b)", family="binary", saves="nothing", numpy=["subtract"], doc="a - b", operator="-"),
    Op("multiply", "(a, b)", family="binary", saves="input", numpy=["multiply"], doc="a * b", operator="*"),
    Op("divide", "(a, b)", family="binary", saves="input", numpy=["divide", "true_divide"], doc="a / b",
       operator="/", domain="nonzero"),
    Op("power", "(a, b)", family="binary", saves="input", numpy=["power"], doc="a ** b", operator="**",
       domain="positive", cost="transcendental"),
    Op("maximum", "(a, b)", family="binary", saves="input", numpy=["maximum"],
       doc="Elementwise max; ties split the gradient evenly."),
    Op("minimum", "(a, b)", family="binary", saves="input", numpy=["minimum"],
       doc="Elementwise min; ties split the gradient evenly."),
    Op("clip", "(x, a_min, a_max)", family="binary", saves="input", numpy=["clip"], method=True,
       method_sig="(self, a_min=None, a_max=None)",
       doc="Clip to [a_min, a_max]; the gradient passes where a_min <= x <= a_max."),
    Op("where", "(condition, x, y)", family="binary", saves="input", numpy=["where"],
       doc="condition ? x : y, broadcast together."),
    Op("astype", "(x, dtype)", family="binary", saves="nothing", numpy=[], method=True,
       doc="x converted to float32 or float64 (differentiable)."),

    # ----- reductions and normalizers (reductions.cpp) -----------------------------------
    Op("sum", "(x, axis=None, keepdims=False)", family="reduction", saves="nothing", numpy=["sum"],
       method=True, doc="Sum over axes (an int, a tuple of ints, or None for all)."),
    Op("mean", "(x, axis=None, keepdims=False)", family="reduction", saves="nothing", numpy=["mean"],
       method=True, doc="Mean over axes."),
    Op("max", "(x, axis=None, keepdims=False)", family="reduction", saves="output", numpy=["max", "amax"],
       method=True, doc="Maximum over axes; tied elements share the gradient evenly."),
    Op("min", "(x, axis=None, keepdims=False)", family="reduction", saves="output", numpy=["min", "amin"],
       method=True, doc="Minimum over axes; tied elements share the gradient evenly."),
    Op("logsumexp", "(x, axis=None, keepdims=False)", family="reduction", saves="output", numpy=[],
       doc="log(sum(exp(x))) over axes, computed stably.", cost="transcendental"),
    Op("softmax", "(x, axis=-1)", family="reduction", saves="output", numpy=[],
       doc="exp(x) / sum(exp(x)) along axis, computed stably.", cost="transcendental"),
    Op("log_softmax", "(x, axis=-1)", family="reduction", saves="output", numpy=[],
       doc="x - logsumexp(x) along axis, computed stably.", cost="transcendental"),

    # ----- shape (shape.cpp) ------------------------------------------------------------
    Op("reshape", "(x, shape)", family="shape", saves="nothing", numpy=["reshape"], method=True,
       method_sig="(self, *shape)",
       doc="The same elements in a new shape (one axis may be -1)."),
    Op("transpose", "(x, axes=None)", family="shape", saves="nothing", numpy=["transpose"], method=True,
       method_sig="(self, *axes)",
       doc="Permute the axes (reversed when axes is None)."),
    Op("broadcast_to", "(x, shape)", family="shape", saves="nothing", numpy=["broadcast_to"],
       doc="x broadcast to shape; the gradient sums back."),
    Op("concatenate", "(arrays, axis=0)", family="shape", saves="nothing", numpy=["concatenate"],
       doc="Join a sequence of arrays along an existing axis."),
    Op("stack", "(arrays, axis=0)", family="shape", saves="nothing", numpy=["stack"],
       doc="Join a sequence of arrays along a new axis."),

    # ----- linear algebra (linalg.cpp) --------------------------------------------------------
    Op("matmul", "(a, b)", family="linalg", saves="input", numpy=["matmul"], operator="@",
       doc="Matrix product with NumPy semantics."),
    Op("linear", "(x, weight, bias=None)", family="linalg", saves="input", numpy=[],
       doc="x @ weight + bias in one primitive (tapegrad.nn.Linear's forward)."),
]
