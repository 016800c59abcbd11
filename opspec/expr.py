"""Translate an elementwise op's `deriv` expression into C++, twice.

`deriv` is f'(x) written in Python syntax over the input `x` and the output
`y`. The chain rule multiplies it by the incoming direction d (a cotangent
in the VJP, a tangent in the JVP), so one expression gives:

  fused(...)      d * f' as a scalar expression of T, for the first-order
                  kernel the sweep runs over (g, saved value) in one loop;
  composite(...)  d * f' built from differentiable Var ops, for sweeps
                  recorded under create_graph (second order).

`1 / e` at the top becomes a division (d / e), which rounds once instead of
twice. `step(x)` ([x > 0]) and `sign(x)` are piecewise constant: constants
in the composite, whose derivative is 0.
"""
import ast

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_VAR_FN = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
_SCALAR_OP = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div"}
_SCALAR_OP_LEFT = {"+": "Add", "-": "CLeftSub", "*": "Mul", "/": "CLeftDiv"}
# Piecewise-constant helpers: the kernel-only UnaryOp that computes them.
CONSTANT_FNS = {"step": "ReluMask", "sign": "Sign"}


class DerivError(ValueError):
    pass


def parse(op, unary_names):
    """The checked AST of `op.deriv`, and which of x, y it reads."""
    try:
        tree = ast.parse(op.deriv, mode="eval").body
    except SyntaxError as e:
        raise DerivError(f"op {op.name!r}: deriv {op.deriv!r} does not parse: {e}") from None
    reads = set()
    callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if id(node) in callees:
            continue
        if isinstance(node, ast.Name):
            if node.id in op.params:  # h92-param: a float parameter (a number in the composite)
                continue
            if node.id not in ("x", "y"):
                raise DerivError(f"op {op.name!r}: deriv {op.deriv!r} names {node.id!r}; only x, y and the "
                                 f"parameters {op.params} exist")
            reads.add(node.id)
        elif isinstance(node, ast.Call):
            fn = node.func.id if isinstance(node.func, ast.Name) else None
            if fn not in unary_names and fn not in CONSTANT_FNS or len(node.args) != 1 or node.keywords:
                raise DerivError(f"op {op.name!r}: deriv {op.deriv!r} calls {ast.unparse(node)!r}; allowed: one "
                                 f"argument to an elementwise op of the spec or to {sorted(CONSTANT_FNS)}")
        elif isinstance(node, ast.BinOp) and type(node.op) not in _OPS:
            raise DerivError(f"op {op.name!r}: deriv {op.deriv!r}: operator {ast.unparse(node)!r} is not + - * /")
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise DerivError(f"op {op.name!r}: deriv {op.deriv!r}: {node.value!r} is not a number")
        elif not isinstance(node, (ast.Name, ast.Call, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Load,
                                   ast.operator, ast.unaryop)) or (isinstance(node, ast.UnaryOp)
                                                                   and not isinstance(node.op, ast.USub)):
            raise DerivError(f"op {op.name!r}: deriv {op.deriv!r}: {ast.unparse(node)!r} is not supported")
    if len(reads) > 1:
        raise DerivError(f"op {op.name!r}: deriv {op.deriv!r} reads both x and y; a rule saves one value")
    want = {"input": {"x"}, "output": {"y"}, "nothing": set()}[op.saves]
    if reads != want:
        raise DerivError(f"op {op.name!r}: deriv {op.deriv!r} reads {sorted(reads) or 'nothing'} but the entry "
                         f"says saves={op.saves!r}")
    return tree


def _num(v):
    return repr(float(v)) if isinstance(v, float) else str(v)


def _split_reciprocal(tree):
    """1 / e -> e (so d * (1 / e) can be emitted as d / e), else None."""
    if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Div) and isinstance(tree.left, ast.Constant) \
            and tree.left.value == 1:
        return tree.right
    return None


def fused(tree, cpp_of, params=()):
    """d * f' over scalars of type T; the direction is `g`, the saved value `x` or `y`, the
    parameters p0, p1 (values of T)."""
    def emit(n):
        if isinstance(n, ast.Constant):
            return f"T({_num(n.value)})"
        if isinstance(n, ast.Name):
            return f"p{params.index(n.id)}" if n.id in params else n.id
        if isinstance(n, ast.UnaryOp):
            return f"(-{emit(n.operand)})"
        if isinstance(n, ast.BinOp):
            return f"({emit(n.left)} {_OPS[type(n.op)]} {emit(n.right)})"
        fn = n.func.id
        return f"k_{fn}({emit(n.args[0])})"

    recip = _split_reciprocal(tree)
    return f"g / {emit(recip)}" if recip is not None else f"g * {emit(tree)}"


def composite(tree, cpp_of, saved, params=()):
    """d * f' as differentiable Var ops on the direction `d` and the saved Var `saved`; the
    parameters are the doubles p0, p1 (numbers)."""
    def emit(n):  # -> (code, is_number)
        if isinstance(n, ast.Constant):
            return _num(n.value), True
        if isinstance(n, ast.Name):
            return (f"p{params.index(n.id)}", True) if n.id in params else (saved, False)
        if isinstance(n, ast.UnaryOp):
            code, num = emit(n.operand)
            return (f"(-{code})", True) if num else (f"neg({code})", False)
        if isinstance(n, ast.BinOp):
            (l, lnum), (r, rnum) = emit(n.left), emit(n.right)
            op = _OPS[type(n.op)]
            if lnum and rnum:
                return f"({l} {op} {r})", True
            if rnum:
                return f"scalar_op({l}, {r}, ScalarOp::{_SCALAR_OP[op]})", False
            if lnum:
                return f"scalar_op({r}, {l}, ScalarOp::{_SCALAR_OP_LEFT[op]})", False
            return f"{_VAR_FN[op]}({l}, {r})", False
        fn = n.func.id
        arg, num = emit(n.args[0])
        if num:
            raise DerivError(f"deriv calls {fn} on a number")
        if fn in CONSTANT_FNS:
            return f"constant(kern::unary(UnaryOp::{CONSTANT_FNS[fn]}, {arg}->data))", False
        return f"{cpp_of[fn]}({arg})", False

    recip = _split_reciprocal(tree)
    code, num = emit(recip if recip is not None else tree)
    if num:
        return f"scalar_op(d, {code}, ScalarOp::{'Div' if recip is not None else 'Mul'})"
    return f"div(d, {code})" if recip is not None else f"mul(d, {code})"
