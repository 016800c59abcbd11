"""What an op-spec entry is, and the checks every entry must pass."""
import ast
from dataclasses import dataclass, field

FAMILIES = ("elementwise", "binary", "reduction", "shape", "linalg", "loss")
SAVES = ("input", "output", "nothing")
COSTS = ("cheap", "transcendental")
NAMED_DOMAINS = ("real", "positive", "nonzero")
MAX_PARAMS = 2  # h92-param: float parameters of an elementwise op (elu's alpha)
RESERVED_PARAM_NAMES = ("x", "y", "g", "d", "s", "n", "v", "p", "T")  # names the generated C++ uses


@dataclass
class Arg:
    name: str
    default: object = None
    required: bool = True
    positional_only: bool = False


@dataclass
class Op:
    name: str
    sig: str
    family: str
    doc: str
    saves: str = "nothing"
    deriv: str = None
    numpy: list = field(default_factory=list)
    method: bool = False
    domain: object = "real"
    cost: str = "cheap"
    operator: str = None
    cpp: str = None  # the C++ function's name, when it is not `name`
    method_sig: str = None  # the method's signature when it is not the function's with x as self
    # binary only: the forward is k_<name>(a, b) in simd/loops.hpp, its BinaryOp case generated
    # (the rules stay hand-written in elementwise.cpp)
    kernel: bool = False
    # elementwise only (h109-siluderiv): the first-order derivative kernel's C++ k_<deriv_kernel>(saved) in
    # simd/loops.hpp instead of the loop generated from `deriv`, which stays the definition (create_graph
    # rules, the reference engine, docs, and what tests check the kernel against).
    deriv_kernel: str = None

    def __post_init__(self):
        where = f"op spec entry {self.name!r}"
        if self.family not in FAMILIES:
            raise ValueError(f"{where}: family {self.family!r} is not one of {FAMILIES}")
        if self.saves not in SAVES:
            raise ValueError(f"{where}: saves {self.saves!r} is not one of {SAVES}")
        if self.cost not in COSTS:
            raise ValueError(f"{where}: cost {self.cost!r} is not one of {COSTS}")
        if not (self.domain in NAMED_DOMAINS or (isinstance(self.domain, tuple) and len(self.domain) == 2)):
            raise ValueError(f"{where}: domain {self.domain!r} is neither one of {NAMED_DOMAINS} nor (lo, hi)")
        if (self.family == "elementwise") != (self.deriv is not None):
            raise ValueError(f"{where}: exactly the elementwise family declares `deriv`")
        if self.kernel and self.family != "binary":
            raise ValueError(f"{where}: only the binary family declares `kernel`")
        if self.cpp is None:
            self.cpp = self.name
        self.args = parse_signature(self.sig, where)
        # h92-param: an elementwise op's arguments after x are float parameters (elu's alpha), which
        # `deriv` may name; the generator passes them to k_<name>(v, p...) and keeps them in the rule.
        self.params = [a.name for a in self.args[1:]] if self.family == "elementwise" else []
        if len(self.params) > MAX_PARAMS:
            raise ValueError(f"{where}: at most {MAX_PARAMS} float parameters (UnaryParams in kernels.hpp)")
        for a in self.args[1:] if self.family == "elementwise" else []:
            if a.required or type(a.default) is not float or a.positional_only or a.name in RESERVED_PARAM_NAMES:
                raise ValueError(f"{where}: parameter {a.name!r} of an elementwise op must have a float default, "
                                 f"not be positional-only, and not be one of {RESERVED_PARAM_NAMES}")
        if self.deriv_kernel is not None and (self.family != "elementwise" or self.params
                                              or self.deriv in ("linear", "0", "1")):
            raise ValueError(f"{where}: only a non-linear elementwise op without parameters declares `deriv_kernel`")
        if self.params and (self.deriv in ("linear", "0", "1") or self.method or self.operator):
            raise ValueError(f"{where}: a parametrized elementwise op has a `deriv` expression and no method")
        if self.method and self.method_sig is None:
            first = self.args[0].name
            inner = self.sig.strip()[1:-1].split(",", 1)
            if inner[0].strip() != first:
                raise ValueError(f"{where}: cannot derive the method signature from {self.sig!r}")
            rest = inner[1].strip() if len(inner) > 1 else ""
            rest = rest[1:].strip(" ,") if rest.startswith("/") else rest  # self is positional anyway
            self.method_sig = "(self" + (", " + rest if rest else "") + ")"
        if self.method_sig is not None:
            self.method_args = parse_signature(self.method_sig, where, allow_varargs=True)[1:]
        elif self.method:
            raise ValueError(f"{where}: method without a signature")

    @property
    def camel(self):
        """The C++ enum / struct stem: log_softmax -> LogSoftmax."""
        return "".join(part.capitalize() for part in self.name.split("_"))


def parse_signature(sig, where, allow_varargs=False):
    """'(x, axis=None, keepdims=False)' -> [Arg, ...]; defaults must be literals.
    A method may take *args (v.reshape(2, 3)): that Arg has name '*shape'."""
    try:
        fn = ast.parse(f"def f{sig}: pass").body[0]
    except SyntaxError as e:
        raise ValueError(f"{where}: signature {sig!r} does not parse: {e}") from None
    a = fn.args
    if (a.vararg and not allow_varargs) or a.kwarg or a.kwonlyargs:
        raise ValueError(f"{where}: *args, **kwargs and keyword-only arguments are not supported in {sig!r}")
    params = [(p, True) for p in a.posonlyargs] + [(p, False) for p in a.args]
    defaults = [None] * (len(params) - len(a.defaults)) + list(a.defaults)
    out = []
    for (p, posonly), d in zip(params, defaults):
        if d is None:
            out.append(Arg(p.arg, positional_only=posonly))
        else:
            out.append(Arg(p.arg, ast.literal_eval(d), required=False, positional_only=posonly))
    if a.vararg:
        out.append(Arg("*" + a.vararg.arg))
    return out


def format_params(args, fmt, first=()):
    """The parameters of a signature as strings: `first` (e.g. self), then fmt(arg) for each
    Arg with a '/' after the positional-only ones. The one place for that rule: the bindings'
    text signatures (generate.py) and the stubs (stubs.py) both use it."""
    parts = list(first)
    posonly = False
    for a in args:
        if a.positional_only:
            posonly = True
        elif posonly:
            parts.append("/")
            posonly = False
        parts.append(fmt(a))
    if posonly:
        parts.append("/")
    return parts


COMPOSITION_FAMILIES = ("ufunc", "predicate", "reduction", "shape", "linalg", "activation")
DERIVS = ("smooth", "zero", "none")


@dataclass
class Composition:
    """A public function built in Python from the primitives above (no rule of its own: its
    derivatives are those of the primitives it calls). NumPy's aliases and helpers (`fabs`,
    `hstack`, `var`, `linalg.norm`) are compositions, so the primitive set stays small. The
    body lives in python/tapegrad/_compose.py, written once over an engine's primitives and
    instantiated for both engines; where the C++ engine runs a C++ function in its place
    (the same primitives, without a Python frame), `cpp` names its file."""
    name: str
    sig: str
    family: str
    doc: str
    numpy: list = field(default_factory=list)  # dotted for submodules: "linalg.norm"
    method: bool = False
    deriv: str = "smooth"  # smooth | zero (piecewise constant) | none (bool or int result)
    domain: object = "real"
    # The Variable method is a C method on the type (its self positional-only: the stub says `self, /`),
    # not the Python function attached with x as self.
    c_method: bool = False
    # The file (from the repository's root) of the C++ function that runs instead of the Python body on the
    # C++ engine (the reference and symbolic engines run the body). tests/test_opspec.py checks that the file
    # defines it and that every composition whose body the core bypasses declares it.
    cpp: str = None

    def __post_init__(self):
        where = f"op spec composition {self.name!r}"
        if self.family not in COMPOSITION_FAMILIES:
            raise ValueError(f"{where}: family {self.family!r} is not one of {COMPOSITION_FAMILIES}")
        if self.deriv not in DERIVS:
            raise ValueError(f"{where}: deriv {self.deriv!r} is not one of {DERIVS}")
        if not (self.domain in NAMED_DOMAINS or (isinstance(self.domain, tuple) and len(self.domain) == 2)):
            raise ValueError(f"{where}: domain {self.domain!r} is neither one of {NAMED_DOMAINS} nor (lo, hi)")
        self.args = parse_signature(self.sig, where, allow_varargs=True)
        if self.c_method and not self.method:
            raise ValueError(f"{where}: c_method without method")
