"""Per-curve scipy references for ``fit_batch``: the baselines of tests and benchmarks.

:func:`least_squares_each` fits each curve with
``scipy.optimize.least_squares(method='trf', x_scale='jac')`` on the varied
parameters, with the template's bounds as scipy's own bounds (no transform)
and the template's ties evaluated per curve, so its results are independent of
the batch engine's solver and bounds handling. It is a slow loop by design.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import optimize

from batchfit.batch.layout import Layout


def least_squares_each(model, params, x, y, sigma=None, starts=None, *, tol: float = 1e-10,
                       jac: str = "2-point", max_nfev: int | None = None) -> dict:
    """Fit every row of ``y`` with scipy's trust-region reflective least squares.

    Parameters
    ----------
    model : Model
    params : Parameters
        The template (starting values, bounds, ties), as for ``fit_batch``.
    x : array_like, shape (n_points,)
    y : array_like, shape (n, n_points)
        Non-finite points are left out of each curve's fit.
    sigma : array_like, optional
        Broadcastable to ``y``.
    starts : ndarray, shape (n, nvar), optional
        External starting values of the varied parameters (default: the template's).
    tol : float
        ``ftol``, ``xtol`` and ``gtol``.
    jac : str
        scipy's finite-difference scheme.
    max_nfev : int, optional

    Returns
    -------
    dict
        ``values`` (name -> (n,), every parameter, NaN where no fit), ``success``,
        ``status`` (scipy's codes), ``nfev``, ``chisqr`` (each (n,)), ``var_names``.
    """
    layout = Layout(params)
    x, y = np.asarray(x, float), np.atleast_2d(np.asarray(y, float))
    sig = np.broadcast_to(1.0 if sigma is None else np.asarray(sigma, float), y.shape)
    n = y.shape[0]
    if starts is None:
        starts = layout.starting_values(n)
    out = {"values": {p: np.full(n, np.nan) for p in layout.names}, "success": np.zeros(n, bool),
           "status": np.zeros(n, int), "nfev": np.zeros(n, int), "chisqr": np.full(n, np.nan),
           "var_names": list(layout.var_names)}
    for i in range(n):
        keep = np.isfinite(y[i]) & np.isfinite(sig[i]) & (sig[i] > 0)
        if keep.sum() < max(layout.nvar, 1):
            continue
        res = _fit_one(model, layout, x[keep], y[i, keep], sig[i, keep], starts[i], tol, jac,
                       max_nfev)
        _store(out, i, layout, res)
    return out


def _fit_one(model, layout, x, y, s, start, tol, jac, max_nfev):
    def resid(p):
        vals = layout.values(p[None, :])
        f = model(x, **{q: vals[q] for q in model.param_names})
        return (np.asarray(f, float).reshape(-1) - y) / s

    with np.errstate(all="ignore"), warnings.catch_warnings(action="ignore"):
        try:
            return optimize.least_squares(
                resid, layout.bounds.clip(start), jac=jac, bounds=(layout.bounds.lo,
                                                                   layout.bounds.hi),
                method="trf", x_scale="jac", ftol=tol, xtol=tol, gtol=tol, max_nfev=max_nfev)
        except (ValueError, FloatingPointError):
            return None


def _store(out, i, layout, res):
    if res is None:
        return
    out["status"][i], out["nfev"][i] = res.status, res.nfev
    out["success"][i] = bool(res.success) and bool(np.all(np.isfinite(res.fun)))
    out["chisqr"][i] = 2.0 * res.cost
    vals = layout.values(res.x[None, :])
    for name in layout.names:
        out["values"][name][i] = float(np.asarray(vals[name], float).reshape(-1)[0])
