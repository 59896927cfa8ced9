"""What a model is made of: the :class:`Kernel`, and helpers shared by model classes.

A kernel is one model function with its derivatives, guess and defaults. The
model classes (:mod:`batchfit.models.model`, :mod:`batchfit.models.algebra`)
put kernels under prefixes and combine them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchfit.errors import ModelError

HINT_KEYS = ("value", "min", "max", "vary", "expr")


@dataclass(frozen=True)
class Kernel:
    """One model function and what belongs to it.

    Attributes
    ----------
    kind : str
        ``"builtin"``, ``"function"`` or ``"expression"``.
    name : str
        Built-in type name, ``"pkg.mod:func"`` or the expression text.
    param_names : tuple of str
        Unprefixed parameter names, in the order ``func`` takes them.
    func : callable
        ``func(x, *params)`` -> array broadcast to ``(n, nx)``.
    deriv : callable or None
        ``deriv(x, *params)`` -> tuple of partials, one per parameter.
    guess : callable or None
        ``guess(y, x)`` -> dict unprefixed name -> ``(n,)`` array.
    both : callable or None
        ``both(x, *params)`` -> ``(value, partials)``: ``func`` and ``deriv``
        at the same values in one pass, sharing intermediate results. Taken
        from ``func.value_and_partials`` when not given.
    defaults : dict
        Unprefixed name -> dict of ``make_params`` settings.
    options : dict
        Extra factory keywords recorded in the reference (e.g. ``degree``;
        ``pickle`` for a callable that travels by cloudpickle).
    role : str
        ``"peak"``, ``"background"`` or ``"other"``: guides composite guesses.
    derived : dict
        Name -> ``f(**params)``: maps computed from the best-fit values after
        the fit (``fwhm``, ``height`` of peaks), elementwise on arrays.
    """

    kind: str
    name: str
    param_names: tuple[str, ...]
    func: Callable[..., Any]
    deriv: Callable[..., Any] | None = None
    guess: Callable[..., Any] | None = None
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    role: str = "other"
    both: Callable[..., Any] | None = None
    derived: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def __post_init__(self):
        if self.both is None and self.deriv is not None:
            object.__setattr__(self, "both", getattr(self.func, "value_and_partials", None))


def as_float(value) -> np.ndarray:
    """``value`` as a float64 array."""
    return np.asarray(value, dtype=float)


def param_array(model: Any, name: str, value: Any) -> np.ndarray:
    """A parameter value as a float array, refusing shapes that would mis-broadcast.

    ``model`` is the model asking (its ``name`` goes into the message).
    """
    if type(value) is np.ndarray and value.dtype == np.float64 and value.ndim != 1:
        return value  # the common case, checked without building messages
    model = model.name
    try:
        if value is None:  # np.asarray(None, float) would quietly give nan
            raise TypeError
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ModelError(f"{model}: parameter {name!r} = {value!r} is not a number") from None
    if arr.ndim == 1 and arr.size > 1:
        raise ModelError(
            f"{model}: parameter {name!r} has shape {arr.shape}; give a float or an "
            f"array of shape (n, 1) so that it broadcasts against x (use value[:, None])"
        )
    return arr


def full_shape(out, x: np.ndarray, args) -> np.ndarray:
    """``out`` as a float array of the broadcast shape of ``x`` and ``args``."""
    out = np.asarray(out, dtype=float)
    shape = np.broadcast_shapes(x.shape, *(a.shape for a in args))
    return out if out.shape == shape else np.broadcast_to(out, shape).copy()


def sum_arrays(parts: list[np.ndarray]) -> np.ndarray:
    """``parts[0] + parts[1] + ...`` left to right, adding in place after the first sum."""
    if len(parts) == 1:
        return parts[0]
    total = parts[0] + parts[1]
    for p in parts[2:]:
        if np.broadcast_shapes(total.shape, p.shape) == total.shape:
            total += p
        else:
            total = total + p
    return total


def check_clashes(components: list[Any]) -> None:
    """ModelError if two single-kernel models share a parameter name."""
    seen: dict[str, str] = {}
    for comp in components:
        for name in comp.param_names:
            if name in seen:
                raise ModelError(
                    f"parameter name {name!r} is used by both {seen[name]} and "
                    f"{comp.name}; give the components different prefixes, "
                    "e.g. gaussian(prefix='p1_') + gaussian(prefix='p2_')"
                )
            seen[name] = comp.name


def hint_settings(name: str, hint: Any) -> dict[str, Any]:
    """``make_params`` settings from one hint: a number (the value) or a dict."""
    if isinstance(hint, Mapping):
        bad = [k for k in hint if k not in HINT_KEYS]
        if bad:
            raise ModelError(
                f"hint for {name!r}: unknown key(s) {bad}; use any of {list(HINT_KEYS)}"
            )
        return dict(hint)
    if isinstance(hint, (int, float, np.number)) and not isinstance(hint, bool):
        return {"value": float(hint)}
    raise ModelError(
        f"hint for {name!r}: {hint!r} is neither a number nor a dict of {list(HINT_KEYS)}"
    )


def unknown_name_message(name: str, valid: list[str], what: str) -> str:
    """Message for an unknown name, suggesting the closest valid one."""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}{hint} (valid: {', '.join(valid)})"
