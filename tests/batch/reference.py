"""Reference fits and comparison helpers for the batch-engine tests.

The independent reference is the core: one :func:`batchfit.minimize` call
(MINPACK ``leastsq``) per curve, on the curve's finite points only, from the
same starting values and with the same tolerances as the batch fit.
"""

from __future__ import annotations

import copy

import numpy as np

import batchfit
from batchfit.errors import FitError

FTOL = XTOL = 1e-10
"""Tolerances given to both engines."""


def truth_columns(truth: dict) -> dict:
    """``name -> (n, 1)`` columns for ``model(x, **values)``."""
    return {k: np.asarray(v, dtype=float)[:, None] for k, v in truth.items()}


def minimize_each(model, params, x, y, sigma=None, starts=None, max_nfev=None):
    """Fit every row of ``y`` with ``batchfit.minimize(..., engine='leastsq')``.

    Non-finite points of a curve are removed before its fit. ``starts`` maps
    varied names to ``(n,)`` starting values. Returns a dict with ``values``
    and ``stderr`` (name -> (n,)), ``success``, ``chisqr``, ``redchi``, ``ndata``.
    """
    y = np.atleast_2d(np.asarray(y, dtype=float))
    n = y.shape[0]
    sig = np.broadcast_to(1.0 if sigma is None else np.asarray(sigma, float), y.shape)
    nan = np.full(n, np.nan)
    out = {"values": {p: nan.copy() for p in params}, "stderr": {p: nan.copy() for p in params},
           "success": np.zeros(n, bool), "chisqr": nan.copy(), "redchi": nan.copy(),
           "ndata": np.zeros(n, int)}
    kws = {"ftol": FTOL, "xtol": XTOL}
    if max_nfev is not None:
        kws["max_nfev"] = max_nfev
    for i in range(n):
        pars = copy.deepcopy(params)
        for name, v in (starts or {}).items():
            pars[name].value = float(v[i])
        keep = np.isfinite(y[i]) & np.isfinite(sig[i]) & (sig[i] > 0)
        xi, yi, si = x[keep], y[i][keep], sig[i][keep]

        def residual(p, xi=xi, yi=yi, si=si):
            vals = {q: p[q].value for q in model.param_names}
            return (yi - model(xi, **vals)) / si

        try:
            res = batchfit.minimize(residual, pars, engine="leastsq", **kws)
        except FitError:
            continue
        out["success"][i] = res.success
        out["chisqr"][i], out["redchi"][i], out["ndata"][i] = res.chisqr, res.redchi, res.ndata
        for name, par in pars.items():
            out["values"][name][i] = par.value
            out["stderr"][name][i] = np.nan if par.stderr is None else par.stderr
    return out


def percentile_diff(a, b, scale, q=99.0, where=None):
    """``q``-th percentile of ``|a - b| / scale`` over the rows selected by ``where``."""
    d = np.abs(np.asarray(a) - np.asarray(b)) / np.asarray(scale)
    if where is not None:
        d = d[where]
    return float(np.percentile(d, q))


def assert_results_identical(a, b, rows_a=slice(None), rows_b=slice(None)):
    """Every output array of two BatchResults is bit-identical on the given rows."""
    assert a.names == b.names and a.var_names == b.var_names
    for name in a.names:
        np.testing.assert_array_equal(a.values[name][rows_a], b.values[name][rows_b],
                                      err_msg=f"values[{name}]")
        np.testing.assert_array_equal(a.stderr[name][rows_a], b.stderr[name][rows_b],
                                      err_msg=f"stderr[{name}]")
    for field in ("chisqr", "redchi", "nfev", "ndata", "success", "status"):
        fa, fb = getattr(a, field)[rows_a], getattr(b, field)[rows_b]
        assert np.array_equal(fa, fb, equal_nan=fa.dtype.kind == "f"), field
    if a.covar is not None or b.covar is not None:
        assert np.array_equal(a.covar[rows_a], b.covar[rows_b], equal_nan=True), "covar"
