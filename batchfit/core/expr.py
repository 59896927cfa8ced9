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

from batchfit.core.exprdiff import TieChain
from batchfit.core.functions import (
    ARITY,
    DEFAULT_FUNCTIONS,
    HELPERS,
    arity,
    as_float,
    float_result,
    guard,
)
from batchfit.core.syntax import (
    ALLOWED_NODES,
    CONSTANTS,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NODES,
    fail,
    parse_checked,
    rewrite,
)
from batchfit.errors import ExpressionError

__all__ = ["ALLOWED_NODES", "CONSTANTS", "DEFAULT_FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH",
           "MAX_NODES", "Expression", "TieSet", "check_name", "compile_expression",
           "parse_expression"]


class Expression:
    """A checked, compiled expression; call it with a mapping of name -> value.

    Attributes
    ----------
    text : str
        The source text.
    names : frozenset of str
        Free variable names (functions and the constants pi, e excluded).
    tree : ast.Expression
        The checked syntax tree, before operators are rewritten (only
        :data:`ALLOWED_NODES`, calls of known functions with the right number
        of arguments); for tools that transform expressions, e.g. derivatives.
    what : str
        What the expression is for; named in errors.
    """

    def __init__(self, text: str, code, names: frozenset, namespace: dict, *,
                 tree: ast.Expression | None = None, what: str = "expression"):
        self.text = text
        self.names = names
        self.tree = tree
        self.what = what
        self._code = code
        self._globals = namespace

    def __call__(self, values: Mapping):
        """Evaluate with ``values`` (floats or broadcastable numpy arrays).

        Every value is taken as a float (or float64 array); the result is a
        float or a new float64 array, never one of ``values``. Arithmetic errors
        give NaN or inf (numpy semantics), never an exception.

        Raises
        ------
        ExpressionError
            A name without a value, a non-numeric value, arrays that do not
            broadcast together, or a user function that fails or returns no
            number; the message names :attr:`what`.
        """
        ns = self._inputs(values)
        try:
            with np.errstate(all="ignore"):
                out = float_result(eval(self._code, self._globals, ns))
        except ArithmeticError:
            return math.nan
        except (TypeError, ValueError, NameError, IndexError) as exc:
            shapes = ", ".join(f"{k}: {np.shape(v)}" for k, v in ns.items())
            raise self._error(f"cannot be evaluated on values of shape ({shapes}): "
                              f"{type(exc).__name__}: {exc}") from None
        if isinstance(out, np.ndarray) and any(out is v for v in ns.values()):
            out = out.copy()  # a bare name: never hand back the caller's own array
        return out

    def _inputs(self, values: Mapping) -> dict:
        ns = {}
        for name in self.names:
            if name not in values:
                raise self._error(f"needs a value for {name!r}")
            try:
                ns[name] = as_float(values[name])
            except (TypeError, ValueError):
                raise self._error(f"the value of {name!r} is not a number or an array "
                                  f"of numbers: {values[name]!r:.60}") from None
        return ns

    def _error(self, why: str) -> ExpressionError:
        return ExpressionError(f"{self.what}: expression {self.text!r} {why}")

    def __repr__(self):
        return f"Expression({self.text!r})"

    def __reduce__(self):
        return (_recompile, (self.text, self._globals.get("_bf_user_functions", {}), self.what))


def _recompile(text, functions, what="expression"):
    return compile_expression(text, functions, what=what)


def parse_expression(text: str, *, what: str = "expression",
                     functions: Mapping[str, Callable] | None = None) -> ast.Expression:
    """The checked syntax tree of an untrusted expression (see :attr:`Expression.tree`).

    Raises
    ------
    ExpressionError
        As :func:`compile_expression`.
    """
    tree = compile_expression(text, functions, what=what).tree
    assert tree is not None  # a compiled expression always has its tree
    return tree


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
        Each gets copies of its arguments and must return numbers.
    what : str
        What the expression is for (a parameter name, a config key); used in errors.

    Raises
    ------
    ExpressionError
        Syntax error, disallowed construct (containers, ``is``/``in``, keyword
        arguments, attributes, ...), unknown function, wrong number of
        arguments, nested more than :data:`MAX_DEPTH` levels, too long.
    """
    if not functions:
        return _compile_plain(text, what)
    return _compile(text, dict(functions), what)


@functools.lru_cache(maxsize=4096)
def _compile_plain(text: str, what: str) -> Expression:
    # Expressions are immutable, so fits that reuse a template share the compiled code.
    return _compile(text, {}, what)


def _compile(text: str, user: dict, what: str) -> Expression:
    user_funcs = {k: v for k, v in user.items() if callable(v)}
    arities = {**ARITY, **{k: arity(v) for k, v in user_funcs.items()}}
    tree, names = parse_checked(text, what, arities)
    try:
        code = compile(rewrite(tree), f"<{what}>", "eval")
    except (RecursionError, MemoryError, ValueError, SyntaxError):
        raise fail(what, text, f"nested more than {MAX_DEPTH} levels deep") from None
    allowed = {**DEFAULT_FUNCTIONS, **{k: guard(v) for k, v in user_funcs.items()}}
    namespace = {"__builtins__": {}, **CONSTANTS, **allowed, **HELPERS}
    namespace["_bf_user_functions"] = user
    return Expression(text, code, names, namespace, tree=tree, what=what)


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
        self._funcs = funcs
        self._chain: TieChain | None = None
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
        """d(tied)/d(varied): tied name -> array ``(..., k)``.

        Symbolic derivatives of the expressions with the chain rule through
        ties of ties (:mod:`batchfit.core.exprdiff`); an expression without
        one falls back to central differences of that expression alone.

        Parameters
        ----------
        values : mapping
            Every parameter's value: floats (one fit) or arrays of one shape (a batch).
        var_names : sequence of str
            The ``k`` varied parameters to differentiate by.
        scale : array_like, shape (..., k)
            Typical magnitude of each varied value (step of the fallback differences).
        """
        if self._chain is None:  # compiled on first use: most fits never need it
            self._chain = TieChain(self.exprs, self.order, compile_expression, self._funcs)
        return self._chain.gradients({**self.constants, **values}, var_names, scale)

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


class Interpreter:
    """Namespace of the constraint expressions (the ``Minimizer.asteval`` attribute).

    ``symtable`` holds the built-in functions and constants; add your own
    functions (or numbers) to it and constraint expressions may use them.
    """

    def __init__(self):
        self.symtable = {**DEFAULT_FUNCTIONS, **CONSTANTS}

    def user_symbols(self) -> dict:
        """Entries of ``symtable`` added by the user."""
        return {k: v for k, v in self.symtable.items()
                if DEFAULT_FUNCTIONS.get(k, CONSTANTS.get(k, self)) is not v}
