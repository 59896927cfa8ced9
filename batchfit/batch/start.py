"""Starting values for ``fit_batch(guess=True)``: a guess that never starts worse than the template.

The guess (:func:`batchfit.models.template_guess.guess_from_template`) respects
the template's centres and bounds. A varied parameter that the model does not
see, only the template's ties (a redshift or a velocity that all centres are
tied to), cannot be guessed from one component; it is searched on a grid over
its bounds with the other guessed values held, per curve. Then, curve by
curve, the start with the lower weighted sum of squares wins: the guess, or
the template's own values.
"""

from __future__ import annotations

import numpy as np

from batchfit.batch.layout import Layout
from batchfit.models.template_guess import guess_from_template


def guessed_starts(model, layout: Layout, x: np.ndarray, y: np.ndarray,
                   w: np.ndarray) -> dict[str, np.ndarray]:
    """Guessed starting values, NaN for curves where the template's start fits better.

    Parameters
    ----------
    model : Model
        A model with a guess.
    layout : Layout
        The template's array view.
    x : ndarray, shape (n_points,)
    y, w : ndarray, shape (n, n_points)
        Data and weights (weight 0: the point is not used).

    Returns
    -------
    dict of str -> ndarray (n,)
        Varied name -> start; NaN keeps the template's value (as ``init`` does).

    Raises
    ------
    ModelError
        The model has no guess.
    """
    n = y.shape[0]
    with np.errstate(all="ignore"):
        data = np.where(w > 0, y, np.nan)
        guesses = guess_from_template(model, data, x, layout.params, layout.symtable)
    guessed = _grid_hidden(model, layout, x, y, w, layout.starting_values(n, [guesses]))
    template = layout.starting_values(n)
    better = _cost(model, layout, x, y, w, guessed) <= _cost(model, layout, x, y, w, template)
    return {name: np.where(better, guessed[:, j], np.nan)
            for j, name in enumerate(layout.var_names)}


GRID = 21
"""Grid points over the bounds of a parameter that only ties use."""


def _grid_hidden(model, layout: Layout, x, y, w, start: np.ndarray) -> np.ndarray:
    """``start`` with each bounded varied parameter that only ties use set by a grid search."""
    for j, name in enumerate(layout.var_names):
        lo, hi = layout.bounds.lo[j], layout.bounds.hi[j]
        if name in model.param_names or not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        best, best_cost = start[:, j].copy(), _cost(model, layout, x, y, w, start)
        trial = start.copy()
        for value in np.linspace(lo, hi, GRID + 2)[1:-1]:  # inside the bounds
            trial[:, j] = value
            cost = _cost(model, layout, x, y, w, trial)
            better = cost < best_cost
            best, best_cost = np.where(better, value, best), np.where(better, cost, best_cost)
        start[:, j] = best
    return start


def _cost(model, layout: Layout, x, y, w, ext: np.ndarray) -> np.ndarray:
    """Weighted sum of squares per curve at external values ``ext``; inf where it fails."""
    vals = layout.values(ext)
    try:
        with np.errstate(all="ignore"):
            f = model(x, **{p: vals[p] for p in model.param_names})
            r = np.where(w > 0, (f - y) * w, 0.0)
            cost = np.einsum("ij,ij->i", r, r)
    except Exception:  # a model failing on some curve: compare nothing, keep the guess
        return np.zeros(y.shape[0])
    return np.where(np.isfinite(cost), cost, np.inf)
