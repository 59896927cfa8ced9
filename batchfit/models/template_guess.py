"""Starting values from the data that respect the Parameters template.

``model.guess(y, x)`` knows only the data: in a composite, each peak takes the
largest maximum left by the ones before, so with a weak line first in the model
two peaks can both land on the strong line, and a centre can be guessed far
outside its bounds. :func:`guess_from_template` uses the template too:

- each peak component looks for its peak only in a window around the
  template's value of its ``center`` (tied centres evaluated from their
  expressions), reaching halfway to the nearest other peak's centre and no
  further than the centre's bounds, so two peaks never share one line;
- every guessed value lies inside its parameter's bounds, strictly, so that a
  bounded amplitude never starts exactly on ``min=0``.

Choosing per curve between this guess and the template's own start (whichever
fits better) is the batch engine's part, see ``batchfit.batch.start``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from batchfit.core.expr import TieSet
from batchfit.core.parameter import Parameters
from batchfit.models.guess import edge_mask, prepare
from batchfit.models.model import Model

_ROLE_ORDER = {"background": 0, "other": 1, "peak": 2}
INSIDE = 1e-3
"""How far inside a bound a guess is put, as a fraction of a typical size of the parameter."""


def template_values(params: Parameters, symtable: Mapping | None = None) -> dict[str, float]:
    """Every parameter's starting value, tied ones evaluated from their expressions."""
    values = {name: par.value for name, par in params.items() if par.expr is None}
    return TieSet(params, symtable).apply(values)


def guess_from_template(model: Model, y, x, params: Parameters,
                        symtable: Mapping | None = None) -> dict[str, np.ndarray]:
    """Per-row starting values of every model parameter, guided by the template.

    Parameters
    ----------
    model : Model
        A built-in model or a sum of built-ins (each term with a guess).
    y : array_like, shape (n, n_points)
        Curves; NaN points are ignored.
    x : array_like, shape (n_points,)
    params : Parameters
        The template: centre values and bounds of the peaks, bounds of all.
    symtable : mapping, optional
        User functions and constants of the template's expressions.

    Returns
    -------
    dict of str -> ndarray (n,)
        Prefixed parameter name -> guess, inside the template's bounds.

    Raises
    ------
    ModelError
        A term without a guess (user functions, expressions, products).
    """
    if len(model.terms) != len(model.components):  # a product or difference inside
        model.guess(y, x)  # raises the ModelError that says what to do instead
    y, x = prepare(y, x)
    start = template_values(params, symtable)
    comps = sorted(model.terms, key=lambda c: _ROLE_ORDER.get(c.role, 1))
    windows = _peak_windows(comps, x, start, params)
    resid, edges = y.copy(), edge_mask(x.size)
    out: dict[str, np.ndarray] = {}
    for k, comp in enumerate(comps):
        if comp.role == "background":
            data = np.where(edges, resid, np.nan)
        elif windows[k] is not None:
            data = np.where(windows[k], resid, 0.0)  # no peak outside its window
        else:
            data = resid
        values = _inside_bounds(comp.guess(data, x), params, start)
        out.update(values)
        with np.errstate(all="ignore"):
            resid = resid - comp(x, **{name: v[:, None] for name, v in values.items()})
    return {name: out[name] for name in model.param_names}


def _peak_windows(comps, x, start, params) -> list:
    """For each component: a boolean mask of ``x`` where its peak may be, or None."""
    centres = [_centre(c, start) for c in comps]
    windows: list = []
    for k, comp in enumerate(comps):
        c = centres[k]
        if comp.role != "peak" or c is None:
            windows.append(None)
            continue
        gaps = [abs(c - o) for j, o in enumerate(centres) if j != k and o is not None]
        gaps = [g for g in gaps if g > 0]  # equal template centres: nothing to tell apart
        half = min(gaps) / 2 if gaps else np.inf
        par = params[comp.prefix + "center"]
        lo, hi = max(c - half, par.lo), min(c + half, par.hi)
        mask = (x >= lo) & (x <= hi)
        windows.append(mask if mask.any() and not mask.all() else None)
    return windows


def _centre(comp, start) -> float | None:
    name = comp.prefix + "center"
    if name not in comp.param_names or name not in start:
        return None
    value = float(np.asarray(start[name], dtype=float))
    return value if np.isfinite(value) else None


def _inside_bounds(values: dict, params: Parameters, start: dict) -> dict:
    """Each guess moved strictly inside its parameter's bounds (NaN stays NaN)."""
    out = {}
    for name, v in values.items():
        par = params[name] if name in params else None
        if par is None or (np.isinf(par.lo) and np.isinf(par.hi)):
            out[name] = v
            continue
        lo, hi = par.lo, par.hi
        if np.isfinite(lo) and np.isfinite(hi):
            margin = INSIDE * (hi - lo)
        else:
            bound = lo if np.isfinite(lo) else hi
            value = float(np.asarray(start.get(name, bound), dtype=float))
            margin = INSIDE * max(abs(value - bound), abs(bound), 1.0)
        out[name] = np.clip(v, lo + margin, hi - margin)
    return out
