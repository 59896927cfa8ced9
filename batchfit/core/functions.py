"""The functions and operator helpers that compiled expressions may call.

Every value inside an expression is a float or a float64 array (see
:mod:`batchfit.core.expr`), and every function here keeps it so: it takes
floats, returns floats (never booleans, integers or tuples), works out of
place (none takes an ``out`` argument, and the arity of each call is checked
when the expression is compiled, so ``abs(a, b)`` cannot become numpy's
``abs(a, out=b)``) and cannot be made to take seconds or gigabytes
(``factorial`` is ``gamma(n + 1)``, shifts and ``ldexp`` clip their counts).

User functions (``Minimizer.asteval.symtable``, the ``functions`` argument of
:func:`batchfit.core.expr.compile_expression`) are wrapped by :func:`guard`:
they get copies of their arguments and must return numbers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
from scipy import special

Arity = tuple[int, int | None]
"""(fewest, most) positional arguments of a function; ``None``: no upper limit."""


def as_float(value):
    """``value`` as a float or float64 array (no copy when it already is one).

    Raises
    ------
    TypeError, ValueError
        If ``value`` is not numeric (a string, a container of mixed things).
    """
    if isinstance(value, float):
        return value
    if isinstance(value, np.ndarray) and value.dtype == np.float64:
        return value
    if isinstance(value, bool | int | np.integer | np.bool_):
        return float(value)
    out = np.asarray(value, dtype=float)  # complex and text raise here
    return out.item() if out.ndim == 0 else out


def float_result(value):
    """``value`` as a Python float (0-d) or a float64 array."""
    out = np.asarray(value, dtype=float)
    return out.item() if out.ndim == 0 else out


def _floats(fn: Callable) -> Callable:
    def wrapped(*args):
        return float_result(fn(*(np.asarray(a, dtype=float) for a in args)))

    wrapped.__name__ = getattr(fn, "__name__", "function")
    return wrapped


def _stack(reduce: Callable) -> Callable:
    """A variadic ``f(a, b, ...)`` reducing the broadcast arguments (a copy for one)."""

    def variadic(*args):
        arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in args))
        return float_result(reduce(arrays, axis=0))

    return variadic


def _factorial(n):
    return float_result(special.gamma(np.asarray(n, dtype=float) + 1.0))


def _ldexp(m, k):
    k = np.clip(np.nan_to_num(np.asarray(k, dtype=float)), -2000, 2000).astype(np.int64)
    return float_result(np.ldexp(np.asarray(m, dtype=float), k))


def _as_int(a):
    a = np.nan_to_num(np.asarray(a, dtype=float), posinf=0.0, neginf=0.0)
    return np.clip(a, -(2.0**62), 2.0**62).astype(np.int64)


def _shift(fn: Callable) -> Callable:
    def shifted(a, b):
        return float_result(fn(_as_int(a), np.clip(_as_int(b), 0, 63)))

    return shifted


def _bitwise(fn: Callable) -> Callable:
    def op(a, b):
        return float_result(fn(_as_int(a), _as_int(b)))

    return op


def _pow(a, b):
    return float_result(np.power(np.asarray(a, dtype=float), np.asarray(b, dtype=float)))


def _where(cond, a, b):
    return float_result(np.where(cond, a, b))


def _not(a):
    return float_result(np.logical_not(a))


def _and(*args):
    return float_result(np.logical_and.reduce(np.broadcast_arrays(*args)))


def _or(*args):
    return float_result(np.logical_or.reduce(np.broadcast_arrays(*args)))


_ONE = ("abs fabs sign acos acosh asin asinh atan atanh arccos arcsin arctan ceil floor "
        "trunc cos cosh sin sinh tan tanh degrees radians exp expm1 log log10 log1p log2 "
        "sqrt isinf isnan isfinite factorial gamma erf erfc frexp modf").split()
_TWO = "atan2 arctan2 copysign hypot fmod ldexp pow".split()
ARITY: dict[str, Arity] = {
    **{name: (1, 1) for name in _ONE}, **{name: (2, 2) for name in _TWO},
    "max": (1, None), "min": (1, None), "fsum": (1, None), "where": (3, 3),
}
"""How many positional arguments each built-in function takes."""

TUPLE_VALUED = frozenset({"frexp", "modf"})
"""Functions returning two values: listed for lmfit's sake, refused in expressions
(an expression has no subscripts to pick one value)."""

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
    "fmod": _floats(np.fmod), "frexp": np.frexp, "modf": np.modf,
    "ldexp": _ldexp, "isinf": _floats(np.isinf), "isnan": _floats(np.isnan),
    "isfinite": _floats(np.isfinite), "factorial": _factorial, "gamma": special.gamma,
    "erf": special.erf, "erfc": special.erfc, "fsum": _stack(np.sum),
    "max": _stack(np.max), "min": _stack(np.min), "pow": _pow, "where": _where,
}
"""The built-in functions of expressions (lmfit's list, plus a few numpy names)."""

HELPERS: dict[str, Callable] = {
    "_bf_pow": _pow, "_bf_div": _floats(np.true_divide),
    "_bf_floordiv": _floats(np.floor_divide), "_bf_mod": _floats(np.mod),
    "_bf_lshift": _shift(np.left_shift), "_bf_rshift": _shift(np.right_shift),
    "_bf_band": _bitwise(np.bitwise_and), "_bf_bor": _bitwise(np.bitwise_or),
    "_bf_bxor": _bitwise(np.bitwise_xor), "_bf_invert": lambda a: float_result(~_as_int(a)),
    "_bf_where": _where, "_bf_not": _not, "_bf_and": _and, "_bf_or": _or,
    "_bf_float": float_result,
}
"""Functions that operators are rewritten into (names no expression can spell)."""


def arity(func: Callable) -> Arity:
    """(fewest, most) positional arguments ``func`` accepts; ``(0, None)`` if unknown."""
    nin = getattr(func, "nin", None)
    if isinstance(nin, int):  # a numpy ufunc: the rest of its positionals are outputs
        return nin, nin
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return 0, None
    kinds = inspect.Parameter
    fewest = most = 0
    for p in sig.parameters.values():
        if p.kind == kinds.VAR_POSITIONAL:
            return fewest, None
        if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
            most += 1
            fewest += p.default is kinds.empty
    return fewest, most


def guard(func: Callable) -> Callable:
    """``func`` called with copies of its arguments, its result made a float (array).

    A user function thus cannot write into the caller's arrays, and a
    non-numeric result raises TypeError or ValueError at once.
    """

    def guarded(*args):
        return float_result(func(*(np.array(a, dtype=float) for a in args)))

    guarded.__name__ = getattr(func, "__name__", "function")
    return guarded
