"""Kernels of user models: a Python function (by reference or object), or an expression.

Neither has analytic derivatives (their :meth:`~batchfit.models.Model.jacobian`
is None; the batch engine differentiates numerically) nor a guess. The
factories :func:`~batchfit.models.function_model` and
:func:`~batchfit.models.expression_model` put these kernels in a Model.

A function travels to workers as its ``"package.module:function"`` reference
when that imports back to the same object. A function defined in ``__main__``,
a notebook or another function cannot be imported by a worker; it travels
by value, pickled with cloudpickle into the reference's ``pickle`` entry
(base64). Unpickling runs code, so :func:`batchfit.models.from_reference`
only does it when asked (``allow_pickle=True``, as pickling itself does).
"""

from __future__ import annotations

import ast
import base64
import importlib
import importlib.abc
import importlib.machinery
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from batchfit.errors import ExpressionError, ModelError
from batchfit.models.kernel import Kernel
from batchfit.vocabulary import parse_function_ref

DEFAULT_VALUE = 1.0  # starting value of a parameter with no default in the signature
INDEPENDENT = "x"  # name of the independent variable in expression models


# ------------------------------------------------------------------ functions
class _PositionalCall:
    """Call ``func(x, *positional, **keyword_only)`` from ``(x, *params)``."""

    def __init__(self, func, n_positional: int, kwonly: tuple[str, ...]):
        self.func = func
        self.n_positional = n_positional
        self.kwonly = kwonly

    def __call__(self, x, *params):
        pos, kw = params[: self.n_positional], params[self.n_positional :]
        return self.func(x, *pos, **dict(zip(self.kwonly, kw, strict=True)))


def _fix(ref: str) -> str:
    return (
        f"function model {ref!r}: give an importable 'package.module:function' whose "
        "signature is f(x, p1, p2, ...)"
    )


class ModelPathFinder(importlib.abc.MetaPathFinder):
    """Finds one top-level module, that of ``model.function``, in the given folders.

    It sits at the end of ``sys.meta_path``: an installed package of the same
    name wins, and no other name (``xarray``, say) is ever looked up in the
    folders, so nothing else there can run. The folders never go on ``sys.path``.
    """

    def __init__(self, top: str, folders: tuple[str, ...]):
        self.top = top
        self.folders = folders

    def find_spec(self, fullname, path=None, target=None):
        """The spec of :attr:`top` from the folders; None for every other name."""
        if fullname != self.top:
            return None  # submodules of a package found here use its __path__
        return importlib.machinery.PathFinder.find_spec(fullname, list(self.folders))


def use_model_path(ref: str | None, folders: Iterable[str | os.PathLike]) -> None:
    """Let the module of the function model ``ref`` be imported from ``folders`` only.

    This is what ``model.python_path`` does; with no function model (``ref``
    None) it does nothing. Calling it again with the same arguments is a no-op.
    """
    dirs = tuple(str(os.fspath(f)) for f in folders)
    parts = parse_function_ref(ref)
    if parts is None or not dirs:  # a malformed ref fails when it is resolved
        return
    top = parts[0].split(".")[0]
    for finder in sys.meta_path:
        if isinstance(finder, ModelPathFinder) and (finder.top, finder.folders) == (top, dirs):
            return
    sys.meta_path.append(ModelPathFinder(top, dirs))


def resolve_function(ref: str):
    """Import ``"pkg.mod:func"`` and return the function object.

    Raises
    ------
    ModelError
        Malformed reference, module from the standard library, import failure,
        missing attribute, or an attribute that is not a Python function.
    """
    parts = parse_function_ref(ref)
    if parts is None:
        raise ModelError(f"{_fix(ref)}; {ref!r} is not of that form")
    module_name, attr = parts
    if module_name.split(".")[0] in sys.stdlib_module_names:
        raise ModelError(
            f"{_fix(ref)}; {module_name!r} is a Python standard library module, "
            "write your model in a module of your own"
        )
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:
        raise ModelError(
            f"{_fix(ref)}; cannot import {module_name!r} ({type(exc).__name__}: {exc}); "
            "check the name and that its folder is on PYTHONPATH on every worker"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"{_fix(ref)}; {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not inspect.isfunction(obj):
        raise ModelError(
            f"{_fix(ref)}; {attr!r} is a {type(obj).__name__}, not a Python function "
            "(builtins, ufuncs and classes are not accepted: wrap them in a def)"
        )
    return obj


def _signature_params(ref: str, func) -> tuple[list[str], tuple[str, ...], dict[str, float]]:
    """Positional parameter names, keyword-only names and starting values."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    kinds = inspect.Parameter
    bad = [p.name for p in params if p.kind in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD)]
    if bad:
        raise ModelError(f"{_fix(ref)}; *args/**kwargs ({', '.join(bad)}) are not allowed")
    if not params or params[0].kind == kinds.KEYWORD_ONLY:
        raise ModelError(f"{_fix(ref)}; it takes no independent variable")
    rest = params[1:]
    if any(p.kind == kinds.POSITIONAL_ONLY for p in rest):
        raise ModelError(f"{_fix(ref)}; parameters after x may not be positional-only")
    defaults = {p.name: _start_value(ref, p) for p in rest}
    positional = [p.name for p in rest if p.kind != kinds.KEYWORD_ONLY]
    kwonly = tuple(p.name for p in rest if p.kind == kinds.KEYWORD_ONLY)
    return positional, kwonly, defaults


def _start_value(ref: str, p: inspect.Parameter) -> float:
    if p.default is inspect.Parameter.empty:
        return DEFAULT_VALUE
    try:
        return float(p.default)
    except (TypeError, ValueError):
        raise ModelError(
            f"{_fix(ref)}; the default of {p.name!r} is {p.default!r}, not a number"
        ) from None


def function_kernel(func: str | Callable[..., Any], payload: str | None = None) -> Kernel:
    """Kernel of a function ``f(x, p1, p2=2.0, ...)`` given by reference or as an object.

    Parameters
    ----------
    func : str or function
        ``"package.module:function"``, or the function itself. The first
        argument is the independent variable whatever its name; the others
        are the parameters, and their numeric defaults become starting values
        (1.0 when absent).
    payload : str, optional
        The base64 cloudpickle of the function (for a reference ``func`` that
        does not import: rebuilt from the payload instead).

    Raises
    ------
    ModelError
        See :func:`resolve_function`; also for ``*args``/``**kwargs``,
        non-numeric defaults, or an object that is not a Python function.
    """
    options: dict[str, Any] = {}
    if payload is not None:  # kept, so that the rebuilt model pickles again
        ref, obj = str(func), unpickle_function(str(func), payload)
        options["pickle"] = payload
    elif isinstance(func, str):
        ref, obj = func, resolve_function(func)
    else:
        ref, obj = function_reference(func)
        if not importable(ref, obj):
            options["pickle"] = pickle_function(obj)
    ref = str(ref)
    positional, kwonly, defaults = _signature_params(ref, obj)
    return Kernel(kind="function", name=ref, param_names=(*positional, *kwonly),
                  func=_PositionalCall(obj, len(positional), kwonly),
                  defaults={n: {"value": v} for n, v in defaults.items()}, options=options)


def function_reference(func: Callable[..., Any]) -> tuple[str, Callable[..., Any]]:
    """``("module:qualname", func)`` for a Python function object.

    Raises
    ------
    ModelError
        If ``func`` is not a Python function (a ufunc, a class, a builtin).
    """
    if not inspect.isfunction(func):
        raise ModelError(
            f"Model: {func!r} is a {type(func).__name__}, not a Python function; wrap it "
            "in a def f(x, p1, p2, ...) (builtins, ufuncs and classes have no usable signature)"
        )
    return f"{func.__module__}:{func.__qualname__}", func


def importable(ref: str, func: Callable[..., Any]) -> bool:
    """True when a worker can import ``ref`` and get ``func`` back (so no pickle is needed)."""
    if parse_function_ref(ref) is None or ref.startswith("__main__:"):
        return False
    try:
        return resolve_function(ref) is func
    except ModelError:
        return False


def pickle_function(func: Callable[..., Any]) -> str:
    """The function pickled by value with cloudpickle, as base64 text."""
    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(func)).decode("ascii")


def unpickle_function(ref: str, payload: str) -> Callable[..., Any]:
    """Inverse of :func:`pickle_function`; ModelError if the payload does not load."""
    import cloudpickle

    try:
        return cloudpickle.loads(base64.b64decode(payload.encode("ascii")))
    except Exception as exc:
        raise ModelError(
            f"function model {ref!r}: its pickled function does not load here "
            f"({type(exc).__name__}: {exc}); the Python and library versions must match "
            "those that pickled it, or give the model explicitly"
        ) from None


# ---------------------------------------------------------------- expressions
class _ExpressionCall:
    """Evaluate a compiled expression from ``(x, *params)``."""

    def __init__(self, expression, names: tuple[str, ...]):
        self.expression = expression
        self.names = names

    def __call__(self, x, *params):
        values = dict(zip(self.names, params, strict=True))
        values[INDEPENDENT] = x
        shape = np.broadcast_shapes(np.shape(x), *(np.shape(p) for p in params))
        with np.errstate(all="ignore"):
            out = np.asarray(self.expression(values), dtype=float)
        return np.broadcast_to(out, shape).copy()


def _names_in_order(text: str, names: frozenset) -> tuple[str, ...]:
    first: dict[str, tuple[int, int]] = {}
    for node in ast.walk(ast.parse(text.strip(), mode="eval")):
        if isinstance(node, ast.Name) and node.id in names and node.id != INDEPENDENT:
            pos = (node.lineno, node.col_offset)
            first[node.id] = min(pos, first.get(node.id, pos))
    return tuple(sorted(first, key=first.__getitem__))


def expression_kernel(text: str) -> Kernel:
    """Kernel of an expression in ``x``, e.g. ``"amp*exp(-x/tau) + c"``.

    The parameters are the free names other than ``x``, in order of first
    appearance; each starts at 1.0. The text is checked and compiled once by
    :func:`batchfit.core.expr.compile_expression` (no attributes, imports or
    calls of unknown functions).

    Raises
    ------
    ModelError
        If the expression is invalid or unsafe (the message says why).
    """
    from batchfit.core.expr import compile_expression

    if not isinstance(text, str):
        raise ModelError(f"expression model: expected a string, got {type(text).__name__}")
    try:
        expression = compile_expression(text, what="model expression")
    except ExpressionError as exc:
        raise ModelError(str(exc)) from None
    names = _names_in_order(text, expression.names)
    return Kernel(kind="expression", name=text, param_names=names,
                  func=_ExpressionCall(expression, names),
                  defaults={n: {"value": DEFAULT_VALUE} for n in names})
