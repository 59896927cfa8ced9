"""Per-curve parameter settings: starting or held values, bounds and vary flags.

``fit_batch(..., init=...)`` takes a mapping of arrays of shape ``(n_fits,)``
(``fit`` and a job's ``init:`` store give the same over the pixel dims):

* ``<name>``: the value of parameter ``<name>`` in each curve, its starting
  value where it varies, its held value where it is fixed (NaN keeps the
  template's or the guess's value);
* ``<name>_min``, ``<name>_max``: its bounds in each curve (NaN keeps the
  template's bound; ``-inf``/``inf`` for none);
* ``<name>_vary``: whether it varies in each curve (bool, or 0/1; NaN keeps
  the template's ``vary``).

Other keys are ignored, so an earlier result (with its ``_stderr``,
``chisqr``, ... variables) works as ``init``; but a ``_min``, ``_max`` or
``_vary`` key of a name that is not a parameter is an error (a misspelt
bound must not be dropped silently). An exact parameter name always means a
value (a parameter named ``a_min`` is a value key).

The batch engine fits one set of columns for all curves: every parameter
the template varies, or that has ``<name>_vary`` per curve, is a column (the
values of a parameter the template fixes apply only with its ``_vary``, so
an earlier result's values start the varied parameters and nothing else;
:func:`warn_unused_values` warns when such values differ from the template's);
a curve where a column is fixed pins it by its bounds
(``min == max == value``), which is what the core does with ``min == max``.
Its stderr there is 0 (fixed), and it counts in neither ``nvarys`` nor the
covariance. Settings are validated like the template: a curve where
``min > max``, ``min = inf`` or ``max = -inf``, a ``_vary`` other than
0/1/NaN, or a tied parameter given ``_vary`` is an error that names the
variable and the first bad curve.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from batchfit.core.parameter import Parameters
from batchfit.errors import BatchfitWarning, InputError, ParameterError

SUFFIXES = ("min", "max", "vary")


def split(params: Parameters, init: Mapping | None) -> dict[str, dict[str, object]]:
    """Group the recognised keys of ``init`` by parameter: name -> {"value"|"min"|...: array}.

    Raises
    ------
    ParameterError
        ``_vary`` given for a tied parameter, or ``_min``/``_max`` for one;
        a ``_min``/``_max``/``_vary`` key of a name that is not a parameter.
    """
    out: dict[str, dict[str, object]] = {}
    source: Mapping = init or {}
    for key in source:
        name, kind = parse_key(params, str(key))
        if name is None:
            problem = unknown_setting(params, str(key))
            if problem:
                raise ParameterError(f"init: {problem}")
            continue
        if params[name].expr is not None and kind != "value":
            raise ParameterError(
                f"init: {key!r}: {name!r} is tied by expr={params[name].expr!r}; per-curve "
                "bounds and vary apply to parameters without an expression")
        out.setdefault(name, {})[kind] = source[key]
    return out


def parse_key(params: Mapping, key: str) -> tuple[str | None, str]:
    """``(parameter, 'value'|'min'|'max'|'vary')`` of an ``init`` key, ``(None, '')`` if none."""
    if key in params:
        return key, "value"
    base, _, suffix = key.rpartition("_")
    if suffix in SUFFIXES and base in params:
        return base, suffix
    return None, ""


def unknown_setting(params: Mapping, key: str) -> str | None:
    """What is wrong with ``key`` if it sets a bound or vary flag of no parameter, else None."""
    base, _, suffix = key.rpartition("_")
    if key in params or suffix not in SUFFIXES or not base or base in params:
        return None
    near = difflib.get_close_matches(base, [str(p) for p in params], n=1)
    hint = f"did you mean {near[0] + '_' + suffix!r}?" if near else "check the spelling"
    return (f"{key!r} sets the {suffix} of {base!r}, which is not a parameter of the model "
            f"({', '.join(map(str, params))}); {hint}")


def invalid_entries(kind: str, arr):
    """Curves where a per-curve ``kind`` setting cannot hold, and why (NaN is allowed).

    ``min = inf`` and ``max = -inf`` leave no value; ``vary`` must be 0 or 1.
    ``arr`` is a float ndarray or DataArray (a dask-backed one stays lazy).
    """
    if kind == "min":
        return arr == np.inf, "a minimum of +inf leaves no value (use -inf or NaN for none)"
    if kind == "max":
        return arr == -np.inf, "a maximum of -inf leaves no value (use inf or NaN for none)"
    if kind == "vary":
        return ~np.isnan(arr) & (arr != 0.0) & (arr != 1.0), "a vary flag must be 0/1 or bool"
    return np.zeros(arr.shape, bool), ""


def numbers(value, what: str) -> np.ndarray:
    """``value`` as a float array, or an InputError naming ``what``."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"init[{what!r}] must hold numbers (or bools for _vary), got "
                         f"{np.asarray(value).dtype}") from None


def key(name: str, kind: str) -> str:
    """The ``init`` key of ``kind`` ('value', 'min', 'max' or 'vary') of parameter ``name``."""
    return name if kind == "value" else f"{name}_{kind}"


def template(params: Parameters, per: Mapping[str, Mapping[str, object]]) -> Parameters:
    """The template the engine fits: parameters that vary in some curve become varied.

    A parameter fixed by the template becomes a column when per-curve
    ``_vary`` is given for it; the curves where it stays fixed pin it (at
    its per-curve value, if given).
    """
    promoted = [name for name, kinds in per.items()
                if params[name].expr is None and not params[name].varies and "vary" in kinds]
    if not promoted:
        return params
    out = params.copy()
    for name in promoted:
        par = out[name]
        par.vary = True
        if par.min is not None and par.min == par.max:
            par.min, par.max = None, None  # pinned by equal bounds: pinned per curve below
    return out


@dataclass(frozen=True)
class CurveSettings:
    """Per-curve bounds of the engine's columns and which are held fixed.

    Attributes
    ----------
    lower, upper : ndarray, shape (n, k)
    pinned : ndarray of bool, shape (n, k)
        Held fixed in that curve (``lower == upper``).
    nvary : ndarray of int, shape (n,)
        Varied parameters of each curve.
    """

    lower: np.ndarray
    upper: np.ndarray
    pinned: np.ndarray
    nvary: np.ndarray

    def take(self, rows: np.ndarray) -> CurveSettings:
        """The settings of the curves ``rows``."""
        if rows.size == self.nvary.size:
            return self
        return CurveSettings(self.lower[rows], self.upper[rows], self.pinned[rows],
                             self.nvary[rows])


def settings(params: Parameters, var_names, per, starts: np.ndarray) -> CurveSettings:
    """Bounds and pins of every curve; ``starts`` (n, k) are moved into the bounds in place.

    ``params`` is the user's template (its vary flags and bounds are the
    defaults), ``var_names`` the engine's columns.

    Raises
    ------
    InputError
        An array that does not have one entry per curve.
    ParameterError
        ``min > max`` in some curve (the message names the first).
    """
    n, k = starts.shape
    lower, upper = np.empty((n, k)), np.empty((n, k))
    pinned = np.zeros((n, k), bool)
    for j, name in enumerate(var_names):
        par, kinds = params[name], per.get(name, {})
        lo = _per_curve(kinds.get("min"), par.lo, n, name, "min")
        hi = _per_curve(kinds.get("max"), par.hi, n, name, "max")
        _check_order(name, lo, hi)
        vary = _per_curve(kinds.get("vary"), float(par.vary), n, name, "vary") != 0.0
        starts[:, j] = np.clip(starts[:, j], lo, hi)
        pinned[:, j] = ~vary | (lo == hi)
        lower[:, j] = np.where(pinned[:, j], starts[:, j], lo)
        upper[:, j] = np.where(pinned[:, j], starts[:, j], hi)
    return CurveSettings(lower, upper, pinned, k - pinned.sum(axis=1))


def _per_curve(value, default: float, n: int, name: str, kind: str = "value") -> np.ndarray:
    what = key(name, kind)
    if value is None:
        return np.full(n, default)
    arr = numbers(value, what)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape != (n,)):
        raise InputError(f"init[{what!r}] has shape {arr.shape}; expected one value per "
                         f"curve, shape ({n},)")
    arr = np.broadcast_to(arr, (n,))
    bad, why = invalid_entries(kind, arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise ParameterError(f"init[{what!r}] is {float(arr[i])!r} in {int(bad.sum())} "
                             f"curve(s), the first is curve {i}: {why}")
    return np.where(np.isnan(arr), default, arr)


def _check_order(name: str, lo: np.ndarray, hi: np.ndarray) -> None:
    bad = np.flatnonzero(lo > hi)
    if bad.size:
        i = int(bad[0])
        raise ParameterError(
            f"init: {name}_min > {name}_max in {bad.size} curve(s), the first is curve {i} "
            f"(min={float(lo[i])!r}, max={float(hi[i])!r}); use min <= max, or "
            f"{name}_vary=False to hold it fixed")


def starting_values(params: Parameters, var_names, n: int, guessed, per) -> np.ndarray:
    """External starts (n, k) of the engine's columns, not yet moved into the bounds.

    The template's values, then each mapping of ``guessed`` (later ones win;
    non-finite entries keep the earlier value), then the per-curve values. A
    parameter the template fixes starts from its value, never from a guess.
    """
    start = np.empty((n, len(var_names)))
    for j, name in enumerate(var_names):
        col = np.full(n, float(params[name].value))
        sources = [m.get(name) for m in guessed] if params[name].varies else []
        sources.append(per.get(name, {}).get("value"))
        for v in sources:
            if v is not None:
                v = _per_curve(v, np.nan, n, name)
                col = np.where(np.isfinite(v), v, col)
        start[:, j] = col
    return start


def set_curve(params: Parameters, var_names, start: np.ndarray, curves: CurveSettings,
              i: int) -> None:
    """Give ``params`` (a copy of the engine's template) curve ``i``'s values and settings."""
    for j, name in enumerate(var_names):
        par = params[name]
        par.value = float(start[j])
        par.vary = not curves.pinned[i, j]
        lo, hi = curves.lower[i, j], curves.upper[i, j]
        par.min = None if not par.vary or np.isinf(lo) else float(lo)
        par.max = None if not par.vary or np.isinf(hi) else float(hi)


def warn_unused_values(params: Parameters, per: Mapping[str, Mapping[str, object]]) -> None:
    """Warn when per-curve values of a parameter the template fixes would be ignored.

    Without ``<name>_vary`` they do not apply (module docstring), which is
    right for an earlier result used as ``init`` but a trap for a user who
    meant a per-curve held value; the warning fires only where the values
    differ from the template's.
    """
    for name, kinds in per.items():
        par, value = params[name], kinds.get("value")
        if par.expr is not None or par.varies or "vary" in kinds or value is None:
            continue
        v = np.asarray(value, dtype=float)
        if np.any(np.isfinite(v) & (v != float(par.value))):
            warnings.warn(
                f"init gives per-curve values of {name!r}, which the template fixes at "
                f"{par.value!r}: they are not used. To hold {name!r} at them curve by curve, "
                f"also give {name}_vary=False (or let it vary in the template)",
                BatchfitWarning, stacklevel=3)
