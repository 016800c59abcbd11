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
           its own derivative map (JVP = op(t), VJP = op(g)). "0": piecewise
           constant (floor, sign): the VJP and JVP are zeros, saves nothing.
           "1": the identity map (positive): the VJP and JVP pass d through.
  saves    what the rule keeps for the sweep: input | output | nothing
           (for elementwise ops the generator checks it against `deriv`)
  numpy    the NumPy names the op implements
  method   also a Variable method, with the first argument as self (or
           with `method_sig` where the method takes its arguments otherwise)
  domain   where tests draw inputs: real | positive | nonzero | (lo, hi)
  cost     thread-split class: cheap (an add per element) | transcendental
           (a libm call, ~10x an add: the loop is split across threads sooner)
  operator the Python operator it backs, if any

COMPOSITIONS (below OPS) are public functions built in Python from these
primitives (python/tapegrad/_compose.py, one body for both engines): NumPy's
aliases and helpers. Each declares its signature, the NumPy names it
implements (`np.<name>` dispatches to it through `__array_ufunc__` /
`__array_function__`), whether it is a Variable method (`c_method`: a C method
on the type, its self positional-only, rather than the function attached), and
`deriv`: smooth, zero (piecewise constant: derivative 0 everywhere it exists) or
none (a bool or integer result, outside the graph); `cpp` names the file of the
C++ function the C++ engine runs instead of the Python body, where it has one
(tests/test_opspec.py checks it). The NumPy-name -> tapegrad table of
python/tapegrad/_numpy_dispatch.py, docs/API.md's NumPy coverage table and
the tests' lists come from both lists.
"""
from opspec.schema import Composition as C, Op

# gelu's derivative with x clamped to [-30, 30] (beyond it gelu' is 1 or 0 to double precision, and x^3 would
# overflow float32): by steps, exact at every magnitude (x - relu(x - 30) cancelled to 0 once x - 30 rounds to x:
# gelu'(1e30) was 0.5); +-inf stay NaN (inf * 0), as PyTorch's.
_GELU_X = "(x * (1 - step(x - 30) - step(-30 - x)) + 30 * (step(x - 30) - step(-30 - x)))"
_GELU_U = f"({_GELU_X} + 0.044715 * {_GELU_X} * {_GELU_X} * {_GELU_X})"
_GELU_DERIV = (f"sigmoid(1.5957691216057308 * {_GELU_U}) * (1 + {_GELU_X} * sigmoid(-1.5957691216057308 * {_GELU_U}) "
               f"* 1.5957691216057308 * (1 + 3 * 0.044715 * {_GELU_X} * {_GELU_X}))")

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
    Op("arcsin", "(x, /)", family="elementwise", deriv="1 / sqrt(1 - x * x)", saves="input", numpy=["arcsin"],
       doc="Inverse sine; arcsin'(+-1) = inf, as NumPy's 1/sqrt(0).", method=True, domain=(-0.9, 0.9),
       cost="transcendental"),
    Op("arccos", "(x, /)", family="elementwise", deriv="-1 / sqrt(1 - x * x)", saves="input", numpy=["arccos"],
       doc="Inverse cosine; arccos'(+-1) = -inf.", method=True, domain=(-0.9, 0.9), cost="transcendental"),
    Op("arctan", "(x, /)", family="elementwise", deriv="1 / (1 + x * x)", saves="input", numpy=["arctan"],
       doc="Inverse tangent.", method=True, cost="transcendental"),
    Op("abs", "(x, /)", family="elementwise", deriv="sign(x)", saves="input", numpy=["absolute", "abs"],
       doc="|x|; abs'(0) = 0.", method=True, operator="abs(x)"),
    # ----- h85-expfam: expm1, sinh, cosh, exp2 ---
    Op("expm1", "(x, /)", family="elementwise", deriv="exp(x)", saves="input", numpy=["expm1"],
       doc="e**x - 1, accurate for small x.", method=True, cost="transcendental"),
    Op("sinh", "(x, /)", family="elementwise", deriv="cosh(x)", saves="input", numpy=["sinh"],
       doc="Hyperbolic sine.", method=True, cost="transcendental"),
    Op("cosh", "(x, /)", family="elementwise", deriv="sinh(x)", saves="input", numpy=["cosh"],
       doc="Hyperbolic cosine.", method=True, cost="transcendental"),
    Op("exp2", "(x, /)", family="elementwise", deriv="y * 0.6931471805599453", saves="output", numpy=["exp2"],
       doc="2**x (exact at integers).", method=True, cost="transcendental"),

    # ----- h87-act: activations (silu, gelu, log_sigmoid) ---
    Op("silu", "(x, /)", family="elementwise", deriv="sigmoid(x) * (1 + x * sigmoid(-x))", saves="input",
       numpy=[], doc="x * sigmoid(x), rounded once.", cost="transcendental", deriv_kernel="silu_deriv"),
    # (|x| clamped at 30 in the derivative, where it is 0 or 1: x^3 would overflow to inf * 0)
    Op("gelu", "(x, /)", family="elementwise",
       deriv=_GELU_DERIV,
       saves="input", numpy=[], doc="x * sigmoid(1.5957691216057308 * (x + 0.044715 x^3)) (the tanh form).",
       cost="transcendental", deriv_kernel="gelu_deriv"),
    Op("log_sigmoid", "(x, /)", family="elementwise", deriv="sigmoid(-x)", saves="input", numpy=[],
       doc="log(sigmoid(x)) = -softplus(-x), stable.", cost="transcendental"),

    # ----- h84-round: rounding (derivative 0), square, reciprocal ---------------------------
    Op("floor", "(x, /)", family="elementwise", deriv="0", saves="nothing", numpy=["floor"],
       doc="Round down; derivative 0.", method=True),
    Op("ceil", "(x, /)", family="elementwise", deriv="0", saves="nothing", numpy=["ceil"],
       doc="Round up; derivative 0.", method=True),
    Op("rint", "(x, /)", family="elementwise", deriv="0", saves="nothing", numpy=["rint"],
       doc="Round to the nearest integer, ties to even; derivative 0.", method=True),
    Op("trunc", "(x, /)", family="elementwise", deriv="0", saves="nothing", numpy=["trunc", "fix"],
       doc="Round toward 0; derivative 0.", method=True),
    Op("sign", "(x, /)", family="elementwise", deriv="0", saves="nothing", numpy=["sign"],
       doc="-1, 0 or 1 (sign(-0.0) = 0.0, sign(nan) = nan, as NumPy's); derivative 0.", method=True),
    Op("square", "(x, /)", family="elementwise", deriv="2 * x", saves="input", numpy=["square"],
       doc="x * x.", method=True),
    Op("reciprocal", "(x, /)", family="elementwise", deriv="-y * y", saves="output", numpy=["reciprocal"],
       doc="1 / x.", method=True, domain="nonzero"),
    Op("positive", "(x, /)", family="elementwise", deriv="1", saves="nothing", numpy=["positive"],
       doc="+x, a copy (as NumPy's np.positive; PyTorch's returns its input); the gradient passes through.",
       method=True),

    # ----- h86-logfam: log2, log10, cbrt, arcsinh, arccosh, arctanh (were compositions) ---
    Op("log2", "(x, /)", family="elementwise", deriv="1.4426950408889634 / x", saves="input", numpy=["log2"],
       doc="Base-2 logarithm; log2(2**k) = k exactly.", domain="positive", cost="transcendental"),
    Op("log10", "(x, /)", family="elementwise", deriv="0.4342944819032518 / x", saves="input", numpy=["log10"],
       doc="Base-10 logarithm; log10(10**k) = k exactly.", domain="positive", cost="transcendental"),
    Op("cbrt", "(x, /)", family="elementwise", deriv="1 / (3 * y * y)", saves="output", numpy=["cbrt"],
       doc="Real cube root; cbrt'(0) = inf.", domain="nonzero", cost="transcendental"),
    Op("arcsinh", "(x, /)", family="elementwise", deriv="1 / sqrt(1 + x * x)", saves="input", numpy=["arcsinh"],
       doc="Inverse hyperbolic sine.", cost="transcendental"),
    Op("arccosh", "(x, /)", family="elementwise", deriv="1 / sqrt((x - 1) * (x + 1))", saves="input",
       numpy=["arccosh"], doc="Inverse hyperbolic cosine (x >= 1); arccosh'(1) = inf.", domain=(1.1, 4.0),
       cost="transcendental"),
    Op("arctanh", "(x, /)", family="elementwise", deriv="1 / ((1 - x) * (1 + x))", saves="input",
       numpy=["arctanh"], doc="Inverse hyperbolic tangent (|x| < 1).", domain=(-0.9, 0.9), cost="transcendental"),
    # ----- h92-param: elu, leaky_relu (float parameters), deg2rad, rad2deg (were compositions) ---
    # (elu's derivative for x <= 0 is alpha exp(min(x, 0)): exp of x itself overflows for x > 709, where
    # step(x) = 1 and the other term must be 0, not inf * 0)
    Op("elu", "(x, alpha=1.0)", family="elementwise", deriv="step(x) + alpha * (1 - step(x)) * exp(-relu(-x))",
       saves="input", numpy=[], doc="x if x > 0 else alpha * expm1(x); elu'(0) = alpha, as PyTorch's.",
       cost="transcendental"),
    Op("leaky_relu", "(x, negative_slope=0.01)", family="elementwise",
       deriv="step(x) + negative_slope * (1 - step(x))", saves="input", numpy=[],
       doc="x if x > 0 else negative_slope * x; the slope at 0 is negative_slope, as PyTorch's."),
    Op("deg2rad", "(x, /)", family="elementwise", deriv="linear", saves="nothing", numpy=["deg2rad", "radians"],
       doc="Degrees to radians: x times pi/180 rounded once (NumPy's bits)."),
    Op("rad2deg", "(x, /)", family="elementwise", deriv="linear", saves="nothing", numpy=["rad2deg", "degrees"],
       doc="Radians to degrees: x times 180/pi rounded once (float32: 180f / pi_f, NumPy's bits)."),

    # ----- elementwise with several operands: hand-written rules (elementwise.cpp) -----
    Op("add", "(a, b)", family="binary", saves="nothing", numpy=["add"], doc="a + b", operator="+"),
    Op("subtract", "(a, b)", family="binary", saves="nothing", numpy=["subtract"], doc="a - b", operator="-"),
    Op("multiply", "(a, b)", family="binary", saves="input", numpy=["multiply"], doc="a * b", operator="*"),
    Op("divide", "(a, b)", family="binary", saves="input", numpy=["divide", "true_divide"], doc="a / b",
       operator="/", domain="nonzero"),
    Op("power", "(a, b)", family="binary", saves="input", numpy=["power"], doc="a ** b", operator="**",
       domain="positive", cost="transcendental"),
    Op("arctan2", "(a, b)", family="binary", saves="input", numpy=["arctan2"], kernel=True,
       doc="The angle of the point (b, a) in [-pi, pi]; the gradient at (0, 0) is 0, as PyTorch's.",
       cost="transcendental"),
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
    # ----- h90-binary: logaddexp, logaddexp2, hypot, fmax, fmin (fused kernels; rules in elementwise.cpp) ---
    Op("logaddexp", "(a, b)", family="binary", saves="input", numpy=["logaddexp"], kernel=True,
       doc="log(exp(a) + exp(b)), stable: max(a, b) + log1p(exp(-|a - b|)); d/da = sigmoid(a - b).",
       cost="transcendental"),
    Op("logaddexp2", "(a, b)", family="binary", saves="input", numpy=["logaddexp2"], kernel=True,
       doc="log2(2**a + 2**b), stable; d/da = sigmoid((a - b) ln 2).", cost="transcendental"),
    Op("hypot", "(a, b)", family="binary", saves="input", numpy=["hypot"], kernel=True, domain="nonzero",
       doc="sqrt(a**2 + b**2) without overflow or underflow; d/da = a / hypot (NaN at (0, 0), as PyTorch's)."),
    Op("fmax", "(a, b)", family="binary", saves="input", numpy=["fmax"], kernel=True,
       doc="Elementwise max ignoring NaN (NumPy's); the gradient goes to the chosen operand, ties split evenly."),
    Op("fmin", "(a, b)", family="binary", saves="input", numpy=["fmin"], kernel=True,
       doc="Elementwise min ignoring NaN (NumPy's); the gradient goes to the chosen operand, ties split evenly."),

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
    # ----- h88-scan: scans, product, variance (one-pass kernels) ---
    Op("cumsum", "(x, axis=None)", family="reduction", saves="nothing", numpy=["cumsum"], method=True,
       doc="Cumulative sum along axis (the flattened array when axis is None); float32 adds up in double."),
    Op("cumprod", "(x, axis=None)", family="reduction", saves="input", numpy=["cumprod"], method=True,
       doc="Cumulative product along axis (the flattened array when axis is None); float32 multiplies in double; exact derivatives at zeros."),
    Op("prod", "(x, axis=None, keepdims=False)", family="reduction", saves="input", numpy=["prod"], method=True,
       doc="Product over axes; the gradient is the product of the other elements (exact at zeros)."),
    Op("var", "(x, axis=None, ddof=0, keepdims=False)", family="reduction", saves="input", numpy=["var"],
       method=True, cpp="variance",
       doc="Variance over axes, divided by N - ddof (inf or nan when N - ddof <= 0)."),
    Op("std", "(x, axis=None, ddof=0, keepdims=False)", family="reduction", saves="output", numpy=["std"],
       method=True, cpp="stddev",
       doc="Standard deviation, sqrt(var); its gradient is 0 where it is 0 (a constant input), as PyTorch's."),

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
    # ----- h89-views: diagonals as views; squeeze/expand_dims/swapaxes/moveaxis in C++ ---
    Op("diagonal", "(x, offset=0, axis1=0, axis2=1)", family="shape", saves="nothing", numpy=["diagonal"],
       method=True, doc="The diagonal over axis1 and axis2 as a last axis: a view (writes reach x, as PyTorch's); "
       "the gradient goes onto that diagonal of zeros."),
    Op("diag", "(x, k=0)", family="shape", saves="nothing", numpy=["diag"],
       doc="The k-th diagonal of a matrix (a view), or the square matrix with a vector on its k-th diagonal."),
    Op("trace", "(x, offset=0, axis1=0, axis2=1)", family="shape", saves="nothing", numpy=["trace"], method=True,
       doc="Sum of a diagonal (of the diagonal view: no copy of x)."),
    Op("squeeze", "(x, axis=None)", family="shape", saves="nothing", numpy=["squeeze"], method=True,
       doc="Remove axes of length 1 (a view)."),
    Op("expand_dims", "(x, axis)", family="shape", saves="nothing", numpy=["expand_dims"],
       doc="Insert axes of length 1 (a view)."),
    Op("swapaxes", "(x, axis1, axis2)", family="shape", saves="nothing", numpy=["swapaxes"], method=True,
       doc="Exchange two axes (a view)."),
    Op("moveaxis", "(x, source, destination)", family="shape", saves="nothing", numpy=["moveaxis"],
       doc="Move axes to new positions (a view)."),
    Op("tril", "(x, k=0)", family="shape", saves="nothing", numpy=["tril"],
       doc="Lower triangle of the last two axes (zeros above the k-th diagonal): one masked copy."),
    Op("triu", "(x, k=0)", family="shape", saves="nothing", numpy=["triu"],
       doc="Upper triangle of the last two axes (zeros below the k-th diagonal): one masked copy."),

    # ----- linear algebra (linalg.cpp) --------------------------------------------------------
    Op("matmul", "(a, b)", family="linalg", saves="input", numpy=["matmul"], operator="@",
       doc="Matrix product with NumPy semantics."),
    Op("linear", "(x, weight, bias=None)", family="linalg", saves="input", numpy=[],
       doc="x @ weight + bias in one primitive (tapegrad.nn.Linear's forward)."),
    Op("inv", "(a)", family="linalg", saves="output", numpy=["linalg.inv"],
       doc="Inverse of each matrix of a (..., n, n); numpy.linalg.LinAlgError when one is singular."),
    Op("solve", "(a, b)", family="linalg", saves="input", numpy=["linalg.solve"],
       doc="x with a @ x = b (NumPy 2: b a vector when 1-d, else (..., n, k)); batches broadcast."),
    Op("slogdet", "(a)", family="linalg", saves="input", numpy=["linalg.slogdet"],
       doc="(sign, log(abs(det(a)))) of each matrix: the sign a constant, the log differentiable."),
    Op("cholesky", "(a)", family="linalg", saves="output", numpy=["linalg.cholesky"],
       doc="The lower factor L of a = L L^T (reads a's lower triangle); the gradient is symmetric."),
]

COMPOSITIONS = [
    # ----- ufuncs: aliases and elementwise helpers --------------------------------------
    C("fabs", "(x, /)", "ufunc", "|x| (abs).", numpy=["fabs"]),
    C("float_power", "(a, b)", "ufunc", "a ** b in float64.", numpy=["float_power"], domain="positive",
      cpp="cpp/bindings/param.cpp"),
    C("round", "(x, decimals=0)", "ufunc", "Round to decimals (half to even); derivative 0.",
      numpy=["round", "around"], deriv="zero", method=True, c_method=True,
      cpp="cpp/bindings/round.cpp"),
    # ----- predicates: NumPy bool arrays, outside the graph ------------------------------
    C("less", "(a, b)", "predicate", "a < b", numpy=["less"], deriv="none", cpp="cpp/bindings/functions.cpp"),
    C("less_equal", "(a, b)", "predicate", "a <= b", numpy=["less_equal"], deriv="none",
      cpp="cpp/bindings/functions.cpp"),
    C("greater", "(a, b)", "predicate", "a > b", numpy=["greater"], deriv="none", cpp="cpp/bindings/functions.cpp"),
    C("greater_equal", "(a, b)", "predicate", "a >= b", numpy=["greater_equal"], deriv="none",
      cpp="cpp/bindings/functions.cpp"),
    C("equal", "(a, b)", "predicate", "a == b", numpy=["equal"], deriv="none", cpp="cpp/bindings/functions.cpp"),
    C("not_equal", "(a, b)", "predicate", "a != b", numpy=["not_equal"], deriv="none",
      cpp="cpp/bindings/functions.cpp"),
    C("isnan", "(x, /)", "predicate", "x is NaN.", numpy=["isnan"], deriv="none", cpp="cpp/bindings/functions.cpp"),
    C("isfinite", "(x, /)", "predicate", "x is finite.", numpy=["isfinite"], deriv="none",
      cpp="cpp/bindings/functions.cpp"),
    C("isinf", "(x, /)", "predicate", "x is +-inf.", numpy=["isinf"], deriv="none", cpp="cpp/bindings/functions.cpp"),
    C("signbit", "(x, /)", "predicate", "The sign bit is set.", numpy=["signbit"], deriv="none",
      cpp="cpp/bindings/functions.cpp"),
    # ----- reductions -------------------------------------------------------------------
    C("argmax", "(x, axis=None, keepdims=False)", "reduction", "Index of the maximum (int64, no derivative).",
      numpy=["argmax"], method=True, deriv="none", c_method=True, cpp="cpp/bindings/fast_compositions.cpp"),
    C("argmin", "(x, axis=None, keepdims=False)", "reduction", "Index of the minimum (int64, no derivative).",
      numpy=["argmin"], method=True, deriv="none", c_method=True, cpp="cpp/bindings/fast_compositions.cpp"),
    C("average", "(x, axis=None, weights=None, keepdims=False)", "reduction",
      "Weighted mean: sum(x * w) / sum(w) (weights may be Variables).", numpy=["average"],
      cpp="cpp/bindings/fast_compositions.cpp"),
    C("norm", "(x, ord=None, axis=None, keepdims=False)", "reduction",
      "Vector 1, 2, inf, -inf norms and the matrix Frobenius norm; the 2-norm's subgradient at 0 is 0.",
      numpy=["linalg.norm"], cpp="cpp/bindings/fast_compositions.cpp"),
    # ----- shape ------------------------------------------------------------------------
    C("ravel", "(x)", "shape", "The elements as 1-d.", numpy=["ravel"], method=True, c_method=True,
      cpp="cpp/bindings/shape_fast.cpp"),
    C("flatten", "(x)", "shape", "The elements as 1-d, a copy (ravel is the view; a Variable method in NumPy only).",
      method=True, c_method=True, cpp="cpp/bindings/shape_fast.cpp"),
    C("copy", "(x)", "shape", "A copy on the graph.", numpy=["copy"], method=True, c_method=True,
      cpp="cpp/bindings/shape_fast.cpp"),
    C("atleast_1d", "(*arys)", "shape", "Views with at least 1 axis.", numpy=["atleast_1d"],
      cpp="cpp/bindings/shape_fast.cpp"),
    C("atleast_2d", "(*arys)", "shape", "Views with at least 2 axes.", numpy=["atleast_2d"],
      cpp="cpp/bindings/shape_fast.cpp"),
    C("atleast_3d", "(*arys)", "shape", "Views with at least 3 axes.", numpy=["atleast_3d"],
      cpp="cpp/bindings/shape_fast.cpp"),
    C("hstack", "(arrays)", "shape", "Concatenate along axis 1 (axis 0 for 1-d).", numpy=["hstack"],
      cpp="cpp/bindings/shape_fast.cpp"),
    C("vstack", "(arrays)", "shape", "Concatenate 2-d views along axis 0.", numpy=["vstack"],
      cpp="cpp/bindings/shape_fast.cpp"),
    C("split", "(x, indices_or_sections, axis=0)", "shape", "Split into equal sections or at indices.",
      numpy=["split"], cpp="cpp/bindings/shape_fast.cpp"),
    C("array_split", "(x, indices_or_sections, axis=0)", "shape", "Split, allowing unequal sections.",
      numpy=["array_split"], cpp="cpp/bindings/shape_fast.cpp"),
    C("flip", "(x, axis=None)", "shape", "Reverse the order along axes.", numpy=["flip"],
      cpp="cpp/bindings/shape_fast.cpp"),
    C("roll", "(x, shift, axis=None)", "shape", "Rotate elements along axes.", numpy=["roll"],
      cpp="cpp/bindings/shape_fast.cpp"),
    C("tile", "(x, reps)", "shape", "Repeat the whole array.", numpy=["tile"], cpp="cpp/src/ops/gather.cpp"),
    C("repeat", "(x, repeats, axis=None)", "shape", "Repeat each element.", numpy=["repeat"], method=True,
      cpp="cpp/src/ops/gather.cpp"),
    C("pad", "(x, pad_width, mode='constant', constant_values=0)", "shape",
      "Pad with a constant (mode='constant' only).", numpy=["pad"], cpp="cpp/bindings/shape_fast.cpp"),
    C("take", "(x, indices, axis=None)", "shape", "Elements at integer indices.", numpy=["take"], method=True,
      cpp="cpp/src/ops/gather.cpp"),
    C("take_along_axis", "(x, indices, axis)", "shape", "Elements at indices along an axis.",
      numpy=["take_along_axis"], cpp="cpp/src/ops/gather.cpp"),
    C("shape", "(x)", "shape", "The shape (a tuple; no derivative).", numpy=["shape"], deriv="none",
      cpp="cpp/bindings/fast_compositions.cpp"),
    C("ndim", "(x)", "shape", "The number of axes (no derivative).", numpy=["ndim"], deriv="none",
      cpp="cpp/bindings/fast_compositions.cpp"),
    C("size", "(x, axis=None)", "shape", "The number of elements (no derivative).", numpy=["size"], deriv="none",
      cpp="cpp/bindings/fast_compositions.cpp"),
    # ----- linear algebra ---------------------------------------------------------------
    C("dot", "(a, b)", "linalg", "NumPy's dot: matmul, scalars multiply, N-d x M-d over the last / second-to-last axes.",
      numpy=["dot"], method=True, cpp="cpp/src/ops/contract.cpp"),
    C("vdot", "(a, b)", "linalg", "Dot product of the flattened arrays.", numpy=["vdot"],
      cpp="cpp/src/ops/contract.cpp"),
    C("inner", "(a, b)", "linalg", "Sum over the last axes.", numpy=["inner"], cpp="cpp/src/ops/contract.cpp"),
    C("outer", "(a, b)", "linalg", "Outer product of the flattened arrays.", numpy=["outer"],
      cpp="cpp/src/ops/contract.cpp"),
    C("tensordot", "(a, b, axes=2)", "linalg", "Sum over the given axes (a reshape and one matmul).",
      numpy=["tensordot"], cpp="cpp/src/ops/contract.cpp"),
    C("einsum", "(subscripts, *operands)", "linalg",
      "Einstein summation (any subscripts NumPy accepts, '...' included), contracted pairwise left to right.",
      numpy=["einsum"], cpp="cpp/src/ops/contract.cpp"),
    C("det", "(a)", "linalg", "Determinant of each matrix: sign * exp(logabsdet) from slogdet.",
      numpy=["linalg.det"]),
]
