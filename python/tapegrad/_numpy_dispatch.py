"""NumPy's protocols for the C++ ``Variable``: ``np.<name>(v, ...)`` runs tapegrad.

NumPy hands a call with a Variable argument to ``Variable.__array_ufunc__``
(ufuncs, NEP 13) or ``Variable.__array_function__`` (other functions, NEP 18).
The table from NumPy object to tapegrad function is built once, at import, from
the op spec (``_core.__ops__`` and ``_core.__compositions__``, each entry's
``numpy`` names), so no NumPy name is listed here by hand.

For ``__array_function__`` each NumPy function gets an adapter with NumPy's own
signature (read with inspect, compiled once), so a call costs one dict lookup
and one Python call: arguments tapegrad implements are passed on in tapegrad's
order; any other argument given a non-default value (``out=``, ``where=``,
``initial=``) raises TypeError naming it. Everything NumPy has that is not in
the table raises TypeError naming the function and the nearest tapegrad
function: a NumPy entry point never returns an array computed from a graph.

The protocols themselves are C methods (cpp/bindings/numpy_protocol.cpp) over these
tables: a ufunc call, or a function call the adapter would only pass on renamed (its
*call plan*, below), goes straight to the tapegrad function; every other call comes to
``array_ufunc`` / ``array_function`` here, which stay the definition of what a call does.
"""
import difflib
import inspect
import operator

import numpy as np

from . import _core

_Variable = _core.Variable
_PARAM_ALIASES = {"newshape": "shape"}


def _np_object(name):
    obj = np
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj


def _unsupported(np_name, what):
    raise TypeError(f"np.{np_name}: {what} is not supported on tapegrad Variables (it cannot be "
                    "recorded on the tape); call it on v.data for a plain array")


def _cast(x, dtype, np_name):
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"np.{np_name}: dtype={dt} is not supported on tapegrad Variables "
                        "(float32 or float64)")
    return _core.astype(x if isinstance(x, _Variable) else _Variable(x), dt)


# NumPy's C functions that had no text signature before NumPy 2.1 (inspect.signature raises
# there): their signatures as NumPy 2.4 reports them.
_NO_TEXT_SIGNATURE = {
    "where": "(condition, x=None, y=None, /)",
    "concatenate": "(arrays, /, axis=0, out=None, *, dtype=None, casting='same_kind')",
    "dot": "(a, b, out=None)",
    "vdot": "(a, b, /)",
    "inner": "(a, b, /)",
}


def _numpy_signature(np_name, np_fn):
    try:
        return inspect.signature(np_fn)
    except ValueError:
        if np_name not in _NO_TEXT_SIGNATURE:
            raise
        ns = {}
        exec(f"def f{_NO_TEXT_SIGNATURE[np_name]}: pass", ns)
        return inspect.signature(ns["f"])


def _adapter(np_name, np_fn, tg_fn):
    """A function with np_fn's signature that calls tg_fn (compiled with exec), and its call plan.

    The plan, (npos, fill, keywords) or None, says when the adapter only renames: NumPy's first
    npos positional arguments are tg_fn's first npos, `keywords` maps each keyword both share to
    tg_fn's argument index, and fill[j] is what the adapter passes for argument j when the call
    gives none (np._NoValue where NumPy requires the argument). A call within the plan (no other
    argument, no np._NoValue given) is tg_fn(*the same values), which the C protocol makes itself.
    """
    np_sig = _numpy_signature(np_name, np_fn)
    tg_params = list(inspect.signature(tg_fn).parameters.values())
    env = {"_g": tg_fn, "_bad": lambda what: _unsupported(np_name, what), "_cast": _cast, "_n": np_name}
    header, checks, arg_of = [], [], {}
    src = {}  # tg argument -> the NumPy parameter passed on unchanged (when not np._NoValue)
    first = True
    posonly_done = False
    kw_only = False
    var_kw = None
    for i, p in enumerate(np_sig.parameters.values()):
        if p.kind == p.VAR_POSITIONAL:
            header.append("*" + p.name)
            kw_only = True
            arg_of["*"] = "*" + p.name
            first = False
            continue
        if p.kind == p.VAR_KEYWORD:
            var_kw = p.name
            continue
        if p.kind != p.POSITIONAL_ONLY and not posonly_done and any(
                q.kind == q.POSITIONAL_ONLY for q in np_sig.parameters.values()):
            header.append("/")  # before a "*": np.linalg.cholesky(a, /, *, upper=False)
            posonly_done = True
        if p.kind == p.KEYWORD_ONLY and not kw_only:
            header.append("*")
            kw_only = True
        d = f"_d{i}"
        if p.default is p.empty:
            header.append(p.name)
        else:
            env[d] = p.default
            header.append(f"{p.name}={d}")
        target = tg_params[0].name if first else _PARAM_ALIASES.get(p.name, p.name)
        first = False
        if any(q.name == target and q.kind != q.VAR_POSITIONAL for q in tg_params):
            if p.default is not p.empty and p.default is np._NoValue:  # NumPy's "not given"
                tp = next(q for q in tg_params if q.name == target)
                env[d + "t"] = None if tp.default is tp.empty else tp.default
                arg_of[target] = f"({d}t if {p.name} is {d} else {p.name})"
                src[target] = (p, env[d + "t"])
            elif target in arg_of and p.default is None:
                # two NumPy names for one argument (reshape's shape and newshape, NumPy 2.1-2.3);
                # the plan passes the first one on while the second is not given
                arg_of[target] = f"({p.name} if {p.name} is not None else {arg_of[target]})"
            else:
                arg_of[target] = p.name
                src[target] = (p, np._NoValue if p.default is p.empty else p.default)
        elif p.name == "dtype" and tg_params[0].name not in ("arrays", "subscripts") and \
                tg_params[0].kind != tg_params[0].VAR_POSITIONAL:
            checks.append(f"    if dtype is not None: {arg_of[tg_params[0].name]} = "
                          f"_cast({arg_of[tg_params[0].name]}, dtype, _n)")
        elif p.default is p.empty:
            raise RuntimeError(f"np.{np_name}: required argument {p.name!r} has no tapegrad counterpart")
        else:
            checks.append(f"    if {p.name} is not {d} and not (type({p.name}) is type({d}) and "
                          f"{p.name} == {d}): _bad('argument {p.name}={{!r}}'.format({p.name}))")
    if var_kw:
        header.append("**" + var_kw)
    call = []
    if "*" in arg_of:  # np.einsum(*operands), np.atleast_1d(*arys): the positionals pass as they came
        call.append(arg_of["*"])
        tg_params = tg_params[[q.kind for q in tg_params].index(inspect.Parameter.VAR_POSITIONAL) + 1:]
    for q in tg_params:
        if q.kind == q.VAR_POSITIONAL:
            call.append(arg_of.get("*", ""))
        elif q.name in arg_of:
            call.append(arg_of[q.name])
        elif var_kw:
            env[f"_t_{q.name}"] = None if q.default is q.empty else q.default
            call.append(f"{var_kw}.pop({q.name!r}, _t_{q.name})")
        elif q.default is not q.empty:
            env[f"_t_{q.name}"] = q.default
            call.append(f"_t_{q.name}")
        else:
            raise RuntimeError(f"np.{np_name}: tapegrad.{tg_fn.__name__}'s argument {q.name!r} is not in "
                               f"NumPy's signature {np_sig}")
    body = checks[:]
    ret = f"_g({', '.join(c for c in call if c)})"
    if var_kw:
        body.append(f"    _r = {ret}")
        body.append(f"    if {var_kw}: _bad('argument(s) ' + ', '.join({var_kw}))")
        body.append("    return _r")
    else:
        body.append(f"    return {ret}")
    code = f"def {np_fn.__name__}({', '.join(header)}):\n" + "\n".join(body) + "\n"
    exec(compile(code, f"<np.{np_name} adapter>", "exec"), env)
    fn = env[np_fn.__name__]
    fn.__doc__ = f"np.{np_name} on tapegrad Variables: tapegrad.{tg_fn.__name__}."
    return fn, _plan(np_sig, tg_params, src, var_kw or "*" in arg_of)


def _plan(np_sig, tg_params, src, passes_rest):
    """The adapter's call plan (see _adapter), or None when its call is more than a renaming."""
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if passes_rest or any(q.kind not in positional for q in tg_params):
        return None
    index = {q.name: j for j, q in enumerate(tg_params)}
    mapped = {p.name: (target, j) for target, (p, _) in src.items() for j in [index[target]]}
    npos = 0
    for i, p in enumerate(np_sig.parameters.values()):
        if p.kind not in positional or p.name not in mapped or mapped[p.name][1] != i:
            break
        npos += 1
    fill = tuple(src[q.name][1] if q.name in src else q.default for q in tg_params)
    keywords = {p.name: mapped[p.name][1] for p in np_sig.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name in mapped
                and mapped[p.name][0] == p.name}
    return npos, fill, keywords


def _clip(a, a_min=np._NoValue, a_max=np._NoValue, out=None, *, min=np._NoValue, max=np._NoValue, **kwargs):
    # NumPy 2 spells the bounds two ways; either is one of tapegrad.clip's.
    if out is not None or kwargs:
        _unsupported("clip", "argument(s) " + ", ".join((["out"] if out is not None else []) + list(kwargs)))
    lo = min if a_min is np._NoValue else a_min
    hi = max if a_max is np._NoValue else a_max
    return _core.clip(a, None if lo is np._NoValue else lo, None if hi is np._NoValue else hi)


_MANUAL = {"clip": _clip}
_SLOT_OPERANDS = (_Variable, float, int)
_OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
              "**": operator.pow, "@": operator.matmul, "-x": operator.neg}


def build_tables(entries, functions):
    """({ufunc: (fn, operator)}, {np function: adapter}, {np object: np name},
    {np function: (tapegrad function, call plan)}) from spec entries."""
    ufuncs, funcs, names, plans = {}, {}, {}, {}
    for entry in entries:
        fn = functions[entry["name"]]
        for np_name in entry["numpy"]:
            obj = _np_object(np_name)
            if obj is None:  # not in this NumPy version (np.row_stack, np.fix ...)
                continue
            names[obj] = np_name
            if isinstance(obj, np.ufunc):
                symbol = entry.get("operator") if obj.nin == 2 or entry.get("operator") == "-x" else None
                ufuncs[obj] = (fn, _OPERATORS.get(symbol), symbol)
            elif np_name in _MANUAL:
                funcs[obj] = _MANUAL[np_name]
            else:
                funcs[obj], plan = _adapter(np_name, obj, fn)
                if plan is not None:
                    plans[obj] = (fn, plan)
    return ufuncs, funcs, names, plans


_UFUNCS = _FUNCTIONS = _NAMES = _PLANS = None
_REDUCE_HINTS = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min"}


def _nearest(name, public):
    if name in public:
        return f"tapegrad.{name}"
    close = difflib.get_close_matches(name, public, n=1, cutoff=0.75)
    return f"tapegrad.{close[0]}" if close else "a tapegrad function"


def _public_names():
    import tapegrad
    return [n for n in dir(tapegrad) if not n.startswith("_") and callable(getattr(tapegrad, n))]


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if method == "__call__" and not kwargs:
        hit = _UFUNCS.get(ufunc)
        if hit is not None:  # (the C protocol makes these calls itself: here when called from Python)
            # Variables (or a Python number second) take the type's number slot, as `v + w` does,
            # skipping pybind11's argument parsing. Not with an ndarray: when the slot declines
            # it (NotImplemented), Python asks ndarray.__radd__, which would come back here.
            if hit[1] is not None and inputs[0].__class__ is _Variable and (
                    len(inputs) == 1 or inputs[1].__class__ in _SLOT_OPERANDS):
                return hit[1](*inputs)
            return hit[0](*inputs)
    name = ufunc.__name__
    if ufunc in _UFUNCS:
        if method != "__call__":
            hint = {"reduce": _REDUCE_HINTS.get(name), "accumulate": {"add": "cumsum", "multiply": "cumprod"}.get(
                name)}.get(method)
            raise TypeError(f"np.{name}.{method} is not supported on tapegrad Variables"
                            + (f"; use tapegrad.{hint}" if hint else ""))
        _unsupported(name, "argument(s) " + ", ".join(kwargs))
    raise TypeError(
        f"np.{name} is not implemented for tapegrad Variables (it would drop the graph, so it raises); "
        f"the nearest is {_nearest(name, _public_names())}, or np.{name}(v.data) for a plain array "
        "without gradients.")


def array_function(self, func, types, args, kwargs):
    impl = _FUNCTIONS.get(func)
    if impl is not None:
        for t in types:
            if t is not _Variable and not issubclass(t, np.ndarray):
                return NotImplemented
        return impl(*args, **kwargs) if kwargs else impl(*args)
    name = getattr(func, "__name__", str(func))
    raise TypeError(
        f"np.{name} is not implemented for tapegrad Variables (it would drop the graph, so it raises); "
        f"the nearest is {_nearest(name, _public_names())}, or np.{name} on v.data / v.detach() for "
        "values without gradients.")


def install(functions):
    """Build the tables from the spec and attach the protocols (C methods over them) to the C++ Variable."""
    global _UFUNCS, _FUNCTIONS, _NAMES, _PLANS
    entries = list(_core.__ops__.values()) + list(_core.__compositions__.values())
    _UFUNCS, _FUNCTIONS, _NAMES, _PLANS = build_tables(entries, functions)
    functions = {obj: (adapter, *((_PLANS[obj][0], *_PLANS[obj][1]) if obj in _PLANS else (None, 0, (), {})))
                 for obj, adapter in _FUNCTIONS.items()}
    _core._install_numpy_protocols({u: (fn, symbol) for u, (fn, _, symbol) in _UFUNCS.items()}, functions,
                                   array_ufunc, array_function)
