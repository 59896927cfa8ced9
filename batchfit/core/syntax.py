"""The syntax of expressions: parse, check against a whitelist, rewrite for floats.

:func:`parse_checked` turns untrusted text into a checked :mod:`ast` tree:
only numbers, names, arithmetic, comparisons, boolean logic, ``a if c else b``
and calls of known functions with the right number of positional arguments.
Size and nesting are measured without recursion before any recursive pass,
so a deeply nested expression is a clear error, never a RecursionError.
:func:`rewrite` then makes every value a float: integer literals become
floats, comparisons and boolean operators give 1.0 or 0.0, and the operators
whose Python meaning differs between floats and arrays (``/``, ``**``,
shifts, bit operations, ``a if c else b``, ``and``) become calls of the
helpers in :data:`batchfit.core.functions.HELPERS`.
"""

from __future__ import annotations

import ast
import copy
import math
from collections.abc import Callable, Mapping

from batchfit.core.functions import TUPLE_VALUED, Arity
from batchfit.errors import ExpressionError

MAX_LENGTH = 2000
MAX_NODES = 2000
MAX_DEPTH = 100
"""Deepest nesting of an expression's syntax tree (checked before anything recursive)."""
CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan}

_BINOP_HELPERS = {
    # Division goes through numpy so that 1/0 is inf for a float as for an array.
    ast.Div: "_bf_div", ast.FloorDiv: "_bf_floordiv", ast.Mod: "_bf_mod",
    ast.Pow: "_bf_pow", ast.LShift: "_bf_lshift", ast.RShift: "_bf_rshift",
    ast.BitAnd: "_bf_band", ast.BitOr: "_bf_bor", ast.BitXor: "_bf_bxor",
}
ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp,
    ast.Call, ast.Name, ast.Load, ast.Constant,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.LShift, ast.RShift, ast.BitAnd, ast.BitOr, ast.BitXor,
    ast.UAdd, ast.USub, ast.Not, ast.Invert, ast.And, ast.Or,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
)
"""The syntax an expression may use (its checked tree holds nothing else)."""
_REFUSED_OPS = {ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


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
        raise _fail(what, text, f"nested more than {MAX_DEPTH} levels deep") from None
    _check_size(tree, lambda why: _fail(what, text, why))
    return tree


def _check_size(tree: ast.AST, fail: Callable[[str], ExpressionError]) -> None:
    """Refuse a tree deeper than MAX_DEPTH or larger than MAX_NODES, without recursion."""
    stack, count = [(tree, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise fail(f"nested more than {MAX_DEPTH} levels deep; split it into "
                       "parameters tied by shorter expressions")
        if count > MAX_NODES:
            raise fail(f"more than {MAX_NODES} syntax nodes")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _Checker(ast.NodeVisitor):
    """Reject every construct that is not float arithmetic on names and numbers."""

    def __init__(self, arities: Mapping[str, Arity], fail):
        self.arities = arities
        self.fail = fail
        self.names: set[str] = set()

    def generic_visit(self, node):
        if not isinstance(node, ALLOWED_NODES):
            raise self.fail(_refusal(node))
        super().generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, bool | int | float):
            return self.generic_visit(node)
        raise self.fail(f"only numbers are allowed as literals, not {node.value!r}")

    def visit_Compare(self, node):
        for op in node.ops:
            if type(op) in _REFUSED_OPS:
                raise self.fail(f"'{_REFUSED_OPS[type(op)]}' is not allowed: expressions "
                                "compare numbers only (use ==, !=, <, <=, >, >=)")
        return self.generic_visit(node)

    def visit_Name(self, node):
        _check_name(node.id, self.fail)
        if node.id in self.arities:
            raise self.fail(f"function {node.id!r} used as a value; call it")
        if node.id not in CONSTANTS:
            self.names.add(node.id)
        return self.generic_visit(node)

    def visit_Call(self, node):
        name = self._function(node)
        args = _fsum_args(node) if name == "fsum" else node.args
        fewest, most = self.arities[name]
        if not fewest <= len(args) <= (len(args) if most is None else most):
            takes = f"{fewest}" if fewest == most else (
                f"at least {fewest}" if most is None else f"{fewest} to {most}")
            raise self.fail(f"{name}() takes {takes} argument(s), got {len(args)}")
        for child in args:
            self.visit(child)

    def _function(self, node: ast.Call) -> str:
        fn = node.func
        if not isinstance(fn, ast.Name) or fn.id not in self.arities:
            name = fn.id if isinstance(fn, ast.Name) else type(fn).__name__
            known = ", ".join(sorted(set(self.arities) - TUPLE_VALUED))
            raise self.fail(f"unknown function {name!r}; known: {known}")
        if node.keywords:
            raise self.fail(f"{fn.id}() takes no keyword arguments; pass them in order")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(f"{fn.id}(): *unpacking is not allowed")
        if fn.id in TUPLE_VALUED:
            raise self.fail(f"{fn.id}() returns two values and expressions have no "
                            "subscripts to pick one; it cannot be used in an expression")
        return fn.id


def _refusal(node: ast.AST) -> str:
    if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
        return (f"{type(node).__name__} is not allowed: expressions hold numbers only, "
                "not containers")
    return f"{type(node).__name__} is not allowed in expressions"


def _fsum_args(node: ast.Call) -> list[ast.expr]:
    """``fsum((a, b))`` (lmfit's form) and ``fsum(a, b)`` both mean the sum of a and b."""
    if len(node.args) == 1 and isinstance(node.args[0], ast.Tuple | ast.List):
        return list(node.args[0].elts)
    return list(node.args)


def _check_name(name: str, fail) -> None:
    if name.startswith("_"):
        raise fail(f"name {name!r}: names starting with '_' are not allowed")


class _Rewriter(ast.NodeTransformer):
    """Make every operator float- and array-safe; make every value a float."""

    def visit_Constant(self, node):
        try:
            value = float(node.value)
        except OverflowError:  # an integer literal beyond float range
            value = math.inf
        return ast.copy_location(ast.Constant(value), node)

    def visit_Call(self, node):
        self.generic_visit(node)
        if node.func.id == "fsum":
            node.args = _fsum_args(node)
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
        if len(node.ops) == 1:  # a comparison is 1.0 or 0.0, never a boolean
            return _call("_bf_float", [node], node)
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




def parse_checked(text: str, what: str,
                  arities: Mapping[str, Arity]) -> tuple[ast.Expression, frozenset]:
    """The checked tree of ``text`` and its free names (constants excluded).

    Parameters
    ----------
    text : str
        The untrusted expression.
    what : str
        What it is for (a parameter name, a config key); starts every error message.
    arities : mapping
        The functions it may call: name -> (fewest, most) positional arguments.

    Raises
    ------
    ExpressionError
        Naming ``what`` and the expression, and saying what is not allowed.
    """
    tree = _parse(text, what)
    checker = _Checker(arities, lambda why: _fail(what, text, why))
    checker.visit(tree)
    return tree, frozenset(checker.names)


def rewrite(tree: ast.Expression) -> ast.Expression:
    """A copy of a checked tree with every value a float (see the module docstring)."""
    return ast.fix_missing_locations(_Rewriter().visit(copy.deepcopy(tree)))


def fail(what: str, text: str, why: str) -> ExpressionError:
    """The ExpressionError for ``text`` (shortened) used for ``what``, saying ``why``."""
    return _fail(what, text, why)
