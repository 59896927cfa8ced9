"""Symbolic derivatives of tie expressions, and their chain rule through ties of ties.

The standard errors of tied parameters (and the batch engine's Jacobian
columns of models with ties) need ``d(tied)/d(varied)``. Central differences
of every tie for every varied parameter cost two evaluations of every tie per
varied parameter; instead, each tie expression is differentiated once,
symbolically, with respect to each name it uses:

- :func:`partial_derivatives` works on the (already checked) syntax tree of the
  expression: ``+ - * / **``, unary ``-``/``+`` and the whitelisted functions
  of one or two arguments with a closed-form derivative. The result is
  expression text over the same whitelist, so it is compiled by the same safe
  compiler as the tie itself and evaluated on whole arrays.
- :class:`TieChain` applies the chain rule in dependency order:
  ``dq/dv = sum_n (dq/dn) (dn/dv)`` over the names ``n`` that ``q`` uses, where
  ``dn/dv`` is one-hot for a varied ``n`` and the already computed gradient for
  a tied one.

An expression that cannot be differentiated symbolically (a conditional, a
comparison, a function such as ``gamma``, ``max`` or a user function) falls back
to central differences of that expression alone, with respect to the names it
uses; the chain rule is the same. This module imports nothing from the rest of
batchfit, so the expression module can use it without an import cycle.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Collection, Iterable, Mapping

import numpy as np

from batchfit.core.fdiff import central_partial, central_step


class NotDifferentiable(Exception):
    """The expression uses a construct without a symbolic derivative here."""


# -- building derivative trees; ``None`` stands for an exact zero ------------------------


def _num(value: float) -> ast.expr:
    return ast.Constant(float(value))


def _is(node, value: float) -> bool:
    return isinstance(node, ast.Constant) and node.value == value


def _call(name: str, *args) -> ast.expr:
    return ast.Call(ast.Name(name, ast.Load()), list(args), [])


def _bin(a, op, b) -> ast.expr:
    return ast.BinOp(a, op, b)


def _neg(a):
    return None if a is None else ast.UnaryOp(ast.USub(), a)


def _add(a, b):
    if a is None:
        return b
    return a if b is None else _bin(a, ast.Add(), b)


def _sub(a, b):
    if b is None:
        return a
    return _neg(b) if a is None else _bin(a, ast.Sub(), b)


def _mul(a, b):
    if a is None or b is None:
        return None
    if _is(a, 1.0):
        return b
    return a if _is(b, 1.0) else _bin(a, ast.Mult(), b)


def _div(a, b):
    return None if a is None else _bin(a, ast.Div(), b)


def _sq(a) -> ast.expr:
    return _bin(a, ast.Pow(), _num(2.0))


# f'(a) for the whitelisted functions of one argument (None: piecewise constant).
_ONE_ARG: dict[str, Callable[[ast.expr], ast.expr | None]] = {
    "sqrt": lambda a: _div(_num(0.5), _call("sqrt", a)),
    "exp": lambda a: _call("exp", a),
    "expm1": lambda a: _call("exp", a),
    "log": lambda a: _div(_num(1.0), a),
    "log10": lambda a: _div(_num(1.0 / math.log(10.0)), a),
    "log2": lambda a: _div(_num(1.0 / math.log(2.0)), a),
    "log1p": lambda a: _div(_num(1.0), _bin(_num(1.0), ast.Add(), a)),
    "sin": lambda a: _call("cos", a),
    "cos": lambda a: _neg(_call("sin", a)),
    "tan": lambda a: _div(_num(1.0), _sq(_call("cos", a))),
    "sinh": lambda a: _call("cosh", a),
    "cosh": lambda a: _call("sinh", a),
    "tanh": lambda a: _sub(_num(1.0), _sq(_call("tanh", a))),
    "asin": lambda a: _div(_num(1.0), _call("sqrt", _sub(_num(1.0), _sq(a)))),
    "acos": lambda a: _div(_num(-1.0), _call("sqrt", _sub(_num(1.0), _sq(a)))),
    "atan": lambda a: _div(_num(1.0), _add(_num(1.0), _sq(a))),
    "asinh": lambda a: _div(_num(1.0), _call("sqrt", _add(_sq(a), _num(1.0)))),
    "acosh": lambda a: _div(_num(1.0), _call("sqrt", _sub(_sq(a), _num(1.0)))),
    "atanh": lambda a: _div(_num(1.0), _sub(_num(1.0), _sq(a))),
    "abs": lambda a: _call("sign", a),
    "fabs": lambda a: _call("sign", a),
    "degrees": lambda a: _num(180.0 / math.pi),
    "radians": lambda a: _num(math.pi / 180.0),
    "erf": lambda a: _mul(_num(2.0 / math.sqrt(math.pi)), _call("exp", _neg(_sq(a)))),
    "erfc": lambda a: _mul(_num(-2.0 / math.sqrt(math.pi)), _call("exp", _neg(_sq(a)))),
    "sign": lambda a: None,
    "ceil": lambda a: None,
    "floor": lambda a: None,
    "trunc": lambda a: None,
}
_ONE_ARG.update(arcsin=_ONE_ARG["asin"], arccos=_ONE_ARG["acos"], arctan=_ONE_ARG["atan"])


class _Differentiator:
    """d(node)/d(name) as a new syntax tree (``None`` = 0), for one name."""

    def __init__(self, name: str, overridden: Collection[str]):
        self.name = name
        self.overridden = overridden

    def __call__(self, node):
        method = getattr(self, f"_d_{type(node).__name__}", None)
        if method is None:
            raise NotDifferentiable(type(node).__name__)
        return method(node)

    def _d_Expression(self, node):
        return self(node.body)

    def _d_Constant(self, node):
        return None

    def _d_Name(self, node):
        return _num(1.0) if node.id == self.name else None

    def _d_UnaryOp(self, node):
        d = self(node.operand)
        if isinstance(node.op, ast.USub):
            return _neg(d)
        if isinstance(node.op, ast.UAdd):
            return d
        raise NotDifferentiable(type(node.op).__name__)

    def _d_BinOp(self, node):
        a, b = node.left, node.right
        da, db = self(a), self(b)
        op = node.op
        if isinstance(op, ast.Add):
            return _add(da, db)
        if isinstance(op, ast.Sub):
            return _sub(da, db)
        if isinstance(op, ast.Mult):
            return _add(_mul(da, b), _mul(a, db))
        if isinstance(op, ast.Div):
            return _sub(_div(da, b), _div(_mul(a, db), _sq(b)))
        if isinstance(op, ast.Pow):
            return _power(a, b, da, db)
        raise NotDifferentiable(type(op).__name__)

    def _d_Call(self, node):
        fn = node.func
        if not isinstance(fn, ast.Name) or node.keywords or fn.id in self.overridden:
            raise NotDifferentiable("call")
        args = node.args
        if len(args) == 1 and fn.id in _ONE_ARG:
            da = self(args[0])
            return None if da is None else _mul(_ONE_ARG[fn.id](args[0]), da)
        if len(args) == 2 and fn.id == "pow":
            return _power(args[0], args[1], self(args[0]), self(args[1]))
        if len(args) == 2 and fn.id == "hypot":
            da, db = self(args[0]), self(args[1])
            num = _add(_mul(args[0], da), _mul(args[1], db))
            return _div(num, node)
        if len(args) == 2 and fn.id in ("atan2", "arctan2"):
            y, x = args
            num = _sub(_mul(x, self(y)), _mul(y, self(x)))
            return _div(num, _add(_sq(x), _sq(y)))
        raise NotDifferentiable(fn.id)


def _power(a, b, da, db):
    """d(a**b): the power rule where ``b`` is constant here, the general rule otherwise."""
    if db is None:
        if da is None:
            return None
        if _is(b, 2.0):
            return _mul(_mul(_num(2.0), a), da)
        lower = _bin(a, ast.Pow(), _bin(b, ast.Sub(), _num(1.0)))
        return _mul(_mul(b, lower), da)
    whole = _bin(a, ast.Pow(), b)
    inner = _add(_mul(db, _call("log", a)), _div(_mul(b, da), a))
    return _mul(whole, inner)


def partial_derivatives(text: str, names: Iterable[str],
                        overridden: Collection[str] = ()) -> dict[str, str] | None:
    """Symbolic partial derivatives of an expression, as expression text.

    Parameters
    ----------
    text : str
        A checked expression (see :func:`batchfit.core.expr.compile_expression`).
    names : iterable of str
        The names to differentiate by.
    overridden : collection of str
        Function names that a user redefined; calls of them are not differentiated.

    Returns
    -------
    dict or None
        ``name -> text`` of ``d(text)/d(name)`` (``"0.0"`` where it is zero), or
        None if the expression has a construct without a symbolic derivative.
    """
    tree = ast.parse(text.strip(), mode="eval")
    out = {}
    for name in names:
        try:
            d = _Differentiator(name, set(overridden))(tree)
        except NotDifferentiable:
            return None
        out[name] = "0.0" if d is None else ast.unparse(ast.fix_missing_locations(d))
    return out


class TieChain:
    """``d(tied)/d(varied)`` for a set of ties, by symbolic partials and the chain rule.

    Parameters
    ----------
    exprs : mapping of str -> Expression
        Each tied parameter's compiled expression (with ``text`` and ``names``).
    order : sequence of str
        The tied names in dependency order.
    compile_expression : callable
        ``compile_expression(text, functions, what=...)``, the safe compiler.
    functions : mapping of str -> callable
        The user functions the ties may call.
    """

    def __init__(self, exprs: Mapping, order, compile_expression: Callable,
                 functions: Mapping[str, Callable]):
        self.exprs = exprs
        self.order = list(order)
        self.partials: dict[str, dict | None] = {}
        for name in self.order:
            self.partials[name] = self._compile(name, compile_expression, functions)

    def _compile(self, name, compile_expression, functions) -> dict | None:
        ex = self.exprs[name]
        texts = partial_derivatives(ex.text, sorted(ex.names), overridden=set(functions))
        if texts is None:
            return None
        try:
            return {n: compile_expression(t, functions, what=f"d {name} / d {n}")
                    for n, t in texts.items()}
        except Exception:  # a derivative too long for the compiler's limits
            return None

    def gradients(self, values: Mapping, var_names, scale) -> dict:
        """d(tied)/d(varied): tied name -> array ``(..., k)``.

        Parameters
        ----------
        values : mapping
            Every parameter's value (tied ones included) and the user constants:
            floats (one fit) or arrays of one shape (a batch).
        var_names : sequence of str
            The ``k`` varied parameters to differentiate by.
        scale : array_like, shape (..., k)
            Typical magnitude of each varied value (steps of the fallback differences).
        """
        scale = np.asarray(scale, dtype=float)
        shape = scale.shape[:-1]
        index = {v: j for j, v in enumerate(var_names)}
        grads: dict[str, np.ndarray] = {}
        with np.errstate(all="ignore"):
            for name in self.order:
                total = np.zeros(shape + (len(var_names),))
                for n, dq in self._partials(name, values, index, scale).items():
                    dq = _batch_shaped(dq, shape)
                    if n in index:
                        total[..., index[n]] += dq
                    elif n in grads:
                        total += dq[..., None] * grads[n]
                grads[name] = total
        return grads

    def _partials(self, name, values, index, scale) -> dict:
        """``n -> d(name)/d(n)`` at ``values``, shaped like the values, for the names used."""
        ex = self.exprs[name]
        compiled = self.partials[name]
        wanted = [n for n in sorted(ex.names) if n in index or n in self.exprs]
        if compiled is not None:
            return {n: compiled[n](values) for n in wanted}
        return {n: self._difference(ex, values, n, index, scale) for n in wanted}

    @staticmethod
    def _difference(ex, values, n, index, scale):
        """Central difference of one expression by one of its names."""
        v = np.asarray(values[n], dtype=float)
        size = None  # a name that is not varied: the step follows its value
        if n in index:
            size = np.reshape(scale[..., index[n]], v.shape) if v.ndim else scale[..., index[n]]
        return central_partial(ex, values, n, central_step(v, size))


def _batch_shaped(a, shape: tuple) -> np.ndarray:
    """A partial (a float, or an array with one value per curve) as an array of ``shape``."""
    a = np.asarray(a, dtype=float)
    return a.reshape(shape) if a.size == math.prod(shape) else np.broadcast_to(a.reshape(()), shape)
