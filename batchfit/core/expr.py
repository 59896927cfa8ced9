"""Safe, compiled constraint and model expressions.

Expressions come from users and from config files, so they are untrusted.
Rather than interpreting a general Python subset (a plain asteval Interpreter
exposes ``open``), an expression is parsed once with :mod:`ast`, checked
against a whitelist (numbers, names, arithmetic, comparisons, boolean logic,
``a if c else b`` and calls of known functions), rewritten so that every
operator is safe on floats and numpy arrays, and compiled to a code object
evaluated with empty builtins. There is no attribute or subscript access, no
string, no lambda, comprehension, loop or definition, and every number is a
float, so ``9**9**9**9`` is ``inf`` instead of an hour of big-integer work.

Compiling once also makes evaluation cheap: one ``eval`` of a code object per
call, which keeps a fit with tied parameters almost as fast as one without.
"""

from __future__ import annotations

import ast
import functools
import graphlib
import keyword
import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy import special

from batchfit.errors import ExpressionError

MAX_LENGTH = 2000
MAX_NODES = 2000
_FD_STEP = np.finfo(float).eps ** (1.0 / 3.0)  # central differences of tie expressions
CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan}


def _float_args(fn):
    def wrapped(*args):
        return fn(*(np.asarray(a, dtype=float) for a in args))

    wrapped.__name__ = fn.__name__
    return wrapped


def _max(*args):
    return args[0] if len(args) == 1 else np.maximum.reduce(np.broadcast_arrays(*args))


def _min(*args):
    return args[0] if len(args) == 1 else np.minimum.reduce(np.broadcast_arrays(*args))


def _factorial(n):
    return special.gamma(np.asarray(n, dtype=float) + 1.0)


def _fsum(values):
    return np.sum(np.asarray(values, dtype=float), axis=0)


def _ldexp(m, k):
    k = np.clip(np.nan_to_num(np.asarray(k, dtype=float)), -2000, 2000).astype(np.int64)
    return np.ldexp(np.asarray(m, dtype=float), k)


def _as_int(a):
    a = np.nan_to_num(np.asarray(a, dtype=float), posinf=0.0, neginf=0.0)
    return np.clip(a, -(2.0**62), 2.0**62).astype(np.int64)


def _shift(fn):
    def shifted(a, b):
        return fn(_as_int(a), np.clip(_as_int(b), 0, 63)).astype(float)

    return shifted


def _bitwise(fn):
    def op(a, b):
        return fn(_as_int(a), _as_int(b)).astype(float)

    return op


def _pow(a, b):
    return np.power(np.asarray(a, dtype=float), np.asarray(b, dtype=float))


def _scalar(value):
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _where(cond, a, b):
    return _scalar(np.where(cond, a, b))


def _not(a):
    return _scalar(np.logical_not(a))


def _and(*args):
    return _scalar(np.logical_and.reduce(np.broadcast_arrays(*args)))


def _or(*args):
    return _scalar(np.logical_or.reduce(np.broadcast_arrays(*args)))


# lmfit 0.2 lists these, but each returns a pair and expressions cannot index,
# so no expression could use the result: refused with a hint instead.
PAIR_FUNCTIONS = {
    "frexp": "frexp(v) returns (mantissa, exponent); use floor(log2(abs(v))) + 1 for the "
             "exponent and v / 2**that for the mantissa",
    "modf": "modf(v) returns (fraction, integer part); use v - trunc(v) and trunc(v)",
}

DEFAULT_FUNCTIONS: dict[str, Callable] = {
    "abs": np.abs, "fabs": np.fabs, "sign": np.sign,
    "acos": np.arccos, "acosh": np.arccosh, "asin": np.arcsin, "asinh": np.arcsinh,
    "atan": np.arctan, "atan2": np.arctan2, "atanh": np.arctanh,
    "arccos": np.arccos, "arcsin": np.arcsin, "arctan": np.arctan, "arctan2": np.arctan2,
    "ceil": np.ceil, "floor": np.floor, "trunc": np.trunc, "copysign": np.copysign,
    "cos": np.cos, "cosh": np.cosh, "sin": np.sin, "sinh": np.sinh,
    "tan": np.tan, "tanh": np.tanh, "degrees": np.degrees, "radians": np.radians,
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log10": np.log10,
    "log1p": np.log1p, "log2": np.log2, "sqrt": np.sqrt, "hypot": np.hypot,
    "fmod": _float_args(np.fmod),
    "ldexp": _ldexp, "isinf": np.isinf, "isnan": np.isnan, "isfinite": np.isfinite,
    "factorial": _factorial, "gamma": special.gamma, "erf": special.erf,
    "erfc": special.erfc, "fsum": _fsum, "max": _max, "min": _min, "pow": _pow,
    "where": _where,
}

# Rewrites of operators into functions that are safe on floats and arrays.
_HELPERS = {
    "_bf_pow": _pow, "_bf_div": _float_args(np.true_divide),
    "_bf_floordiv": _float_args(np.floor_divide), "_bf_mod": _float_args(np.mod),
    "_bf_lshift": _shift(np.left_shift), "_bf_rshift": _shift(np.right_shift),
    "_bf_band": _bitwise(np.bitwise_and), "_bf_bor": _bitwise(np.bitwise_or),
    "_bf_bxor": _bitwise(np.bitwise_xor), "_bf_invert": lambda a: (~_as_int(a)).astype(float),
    "_bf_where": _where, "_bf_not": _not, "_bf_and": _and, "_bf_or": _or,
}
_BINOP_HELPERS = {
    # Division goes through numpy so that 1/0 is inf for a float as for an array.
    ast.Div: "_bf_div", ast.FloorDiv: "_bf_floordiv", ast.Mod: "_bf_mod",
    ast.Pow: "_bf_pow", ast.LShift: "_bf_lshift", ast.RShift: "_bf_rshift",
    ast.BitAnd: "_bf_band", ast.BitOr: "_bf_bor", ast.BitXor: "_bf_bxor",
}
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp,
    ast.Call, ast.Name, ast.Load, ast.Constant, ast.Tuple, ast.keyword,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.LShift, ast.RShift, ast.BitAnd, ast.BitOr, ast.BitXor,
    ast.UAdd, ast.USub, ast.Not, ast.Invert, ast.And, ast.Or,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
)


def _fail(what: str, text: str, why: str) -> ExpressionError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return ExpressionError(f"{what}: invalid expression {shown!r}: {why}")


def _parse(text: str, what: str) -> ast.Expression:
    if not isinstance(text, str):
        raise ExpressionError(f"{what}: expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise _fail(what, text, f"longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise _fail(what, text, "empty expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise _fail(what, text, f"syntax error ({exc.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise _fail(what, text, "too deeply nested") from None
    return tree


class _Checker(ast.NodeVisitor):
    """Reject every construct that is not plain arithmetic on names and numbers."""

    def __init__(self, functions: Mapping[str, Callable], fail):
        self.functions = functions
        self.fail = fail
        self.names: set[str] = set()
        self.count = 0

    def generic_visit(self, node):
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES} syntax nodes")
        if not isinstance(node, _ALLOWED_NODES):
            raise self.fail(f"{type(node).__name__} is not allowed in expressions")
        super().generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, bool | int | float):
            return self.generic_visit(node)
        raise self.fail(f"only numbers are allowed as literals, not {node.value!r}")

    def visit_Name(self, node):
        _check_name(node.id, self.fail)
        if node.id in self.functions:
            raise self.fail(f"function {node.id!r} used as a value; call it")
        if node.id not in CONSTANTS:
            self.names.add(node.id)
        return self.generic_visit(node)

    def visit_Call(self, node):
        fn = node.func
        if not isinstance(fn, ast.Name) or fn.id not in self.functions:
            name = fn.id if isinstance(fn, ast.Name) else type(fn).__name__
            if name in PAIR_FUNCTIONS:
                raise self.fail(f"function {name!r} is not available: {PAIR_FUNCTIONS[name]}")
            known = ", ".join(sorted(self.functions))
            raise self.fail(f"unknown function {name!r}; known: {known}")
        if any(k.arg is None for k in node.keywords):
            raise self.fail("**keyword unpacking is not allowed")
        self.count += 1
        for child in [*node.args, *(k.value for k in node.keywords)]:
            self.visit(child)


def _check_name(name: str, fail) -> None:
    if name.startswith("_"):
        raise fail(f"name {name!r}: names starting with '_' are not allowed")


class _Rewriter(ast.NodeTransformer):
    """Make operators float- and array-safe; make every number a float."""

    def visit_Constant(self, node):
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            return ast.copy_location(ast.Constant(float(node.value)), node)
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        helper = _BINOP_HELPERS.get(type(node.op))
        return node if helper is None else _call(helper, [node.left, node.right], node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return _call("_bf_not", [node.operand], node)
        if isinstance(node.op, ast.Invert):
            return _call("_bf_invert", [node.operand], node)
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        return _call("_bf_and" if isinstance(node.op, ast.And) else "_bf_or", node.values, node)

    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) == 1:
            return node
        lefts = [node.left, *node.comparators[:-1]]
        triples = zip(lefts, node.ops, node.comparators, strict=True)
        pairs = [ast.Compare(a, [op], [b]) for a, op, b in triples]
        return _call("_bf_and", pairs, node)

    def visit_IfExp(self, node):
        self.generic_visit(node)
        return _call("_bf_where", [node.test, node.body, node.orelse], node)


def _call(name, args, like):
    call = ast.Call(ast.Name(name, ast.Load()), list(args), [])
    return ast.fix_missing_locations(ast.copy_location(call, like))


class Expression:
    """A checked, compiled expression; call it with a mapping of name -> value.

    Attributes
    ----------
    text : str
        The source text.
    names : frozenset of str
        Free variable names (functions and the constants pi, e excluded).
    """

    def __init__(self, text: str, code, names: frozenset, namespace: dict):
        self.text = text
        self.names = names
        self._code = code
        self._globals = namespace

    def __call__(self, values: Mapping):
        """Evaluate with ``values`` (floats or broadcastable numpy arrays).

        Arithmetic errors give NaN or inf (numpy semantics), never an exception.
        """
        with np.errstate(all="ignore"):
            try:
                return eval(self._code, self._globals, values)
            except ArithmeticError:
                return math.nan

    def __repr__(self):
        return f"Expression({self.text!r})"

    def __reduce__(self):
        return (_recompile, (self.text, self._globals.get("_bf_user_functions", {})))


def _recompile(text, functions):
    return compile_expression(text, functions)


def compile_expression(
    text: str, functions: Mapping[str, Callable] | None = None, *, what: str = "expression"
) -> Expression:
    """Check and compile an untrusted expression.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"amp * exp(-x / tau) + c"``.
    functions : mapping, optional
        Extra functions the expression may call, on top of :data:`DEFAULT_FUNCTIONS`.
    what : str
        What the expression is for (a parameter name, a config key); used in errors.

    Raises
    ------
    ExpressionError
        Syntax error, disallowed construct, unknown function, too long.
    """
    if not functions:
        return _compile_plain(text, what)
    return _compile(text, dict(functions), what)


@functools.lru_cache(maxsize=4096)
def _compile_plain(text: str, what: str) -> Expression:
    # Expressions are immutable, so fits that reuse a template share the compiled code.
    return _compile(text, {}, what)


def _compile(text: str, user: dict, what: str) -> Expression:
    allowed = {**DEFAULT_FUNCTIONS, **{k: v for k, v in user.items() if callable(v)}}

    def fail(why):
        return _fail(what, text, why)

    tree = _parse(text, what)
    checker = _Checker(allowed, fail)
    checker.visit(tree)
    tree = ast.fix_missing_locations(_Rewriter().visit(tree))
    try:
        code = compile(tree, f"<{what}>", "eval")
    except (RecursionError, MemoryError, ValueError, SyntaxError):
        raise fail("too deeply nested") from None
    namespace = {"__builtins__": {}, **CONSTANTS, **allowed, **_HELPERS}
    namespace["_bf_user_functions"] = user
    return Expression(text, code, frozenset(checker.names), namespace)


def check_name(name) -> None:
    """Raise ParameterError if ``name`` is not a valid parameter name."""
    from batchfit.errors import ParameterError

    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(
            f"invalid parameter name {name!r}: use a Python identifier that is not a keyword, "
            "e.g. 'amp' or 'p1_center'"
        )
    if name.startswith("__") or name in CONSTANTS:
        raise ParameterError(f"invalid parameter name {name!r}: reserved name")


class TieSet:
    """The expression-tied parameters of a Parameters set, in dependency order.

    Parameters
    ----------
    params : Parameters
        Parameters whose ``expr`` attributes define the ties.
    symtable : mapping, optional
        User functions (callables) and constants (numbers) the expressions may use.

    Raises
    ------
    ExpressionError
        Invalid expression, unknown name, or a cycle; the message names the
        parameter and its expression.
    """

    def __init__(self, params, symtable: Mapping | None = None):
        symtable = dict(symtable or {})
        funcs = {k: v for k, v in symtable.items() if callable(v)}
        self.constants = {k: v for k, v in symtable.items() if not callable(v)}
        self.exprs: dict[str, Expression] = {}
        for name, par in params.items():
            if par.expr is not None:
                self.exprs[name] = compile_expression(par.expr, funcs, what=f"parameter {name!r}")
        known = set(params) | set(self.constants)
        for name, ex in self.exprs.items():
            unknown = sorted(ex.names - known)
            if unknown:
                raise ExpressionError(
                    f"parameter {name!r}: expression {ex.text!r} uses unknown name(s) "
                    f"{', '.join(map(repr, unknown))}; known parameters: {', '.join(params)}"
                )
        self.order = self._sort()

    def _sort(self) -> list[str]:
        graph = {n: {d for d in ex.names if d in self.exprs} for n, ex in self.exprs.items()}
        try:
            return list(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as exc:
            cycle = exc.args[1]
            detail = "; ".join(f"{n} = {self.exprs[n].text!r}" for n in dict.fromkeys(cycle))
            raise ExpressionError(
                f"parameter {cycle[0]!r}: expressions form a cycle ({' -> '.join(cycle)}): "
                f"{detail}; break the cycle by giving one of them a value instead of expr"
            ) from None

    def __bool__(self):
        return bool(self.exprs)

    def gradients(self, values: Mapping, var_names, scale) -> dict:
        """d(tied)/d(varied) by central differences: tied name -> array ``(..., k)``.

        Only the (cheap) expressions are evaluated, never a model.

        Parameters
        ----------
        values : mapping
            Every parameter's value: floats (one fit) or arrays of one shape (a batch).
        var_names : sequence of str
            The ``k`` varied parameters to differentiate by.
        scale : array_like, shape (..., k)
            Typical magnitude of each varied value; the step is ``eps**(1/3) * scale``.
        """
        scale = np.asarray(scale, dtype=float)
        cols = {name: [] for name in self.order}
        for j, var in enumerate(var_names):
            v = np.asarray(values[var], dtype=float)
            h = _FD_STEP * np.reshape(scale[..., j], v.shape)
            up, dn = dict(values), dict(values)
            up[var], dn[var] = v + h, v - h
            up, dn = self.apply(up), self.apply(dn)
            for name in self.order:
                diff = np.asarray(up[name], dtype=float) - np.asarray(dn[name], dtype=float)
                cols[name].append(np.broadcast_to(diff / ((v + h) - (v - h)), v.shape))
        if not var_names:
            return {name: np.zeros(scale.shape) for name in self.order}
        return {name: np.stack(c, axis=-1) for name, c in cols.items()}

    def apply(self, values: dict) -> dict:
        """Set every tied value in ``values`` (in place) from the others; return it."""
        if self.constants:
            ns = {**self.constants, **values}
            for name in self.order:
                ns[name] = values[name] = self.exprs[name](ns)
            return values
        for name in self.order:
            values[name] = self.exprs[name](values)
        return values
