"""The slow reference path of ``fit_batch``: one core Minimizer per curve.

Engines ``leastsq``, ``lbfgsb`` and ``anneal`` run here. A curve whose model
raises, returns the wrong shape or non-finite values gets the status
``MODEL_ERROR``; the other curves are unaffected and nothing is raised.
"""

from __future__ import annotations

import numpy as np

from batchfit.batch import pixels
from batchfit.batch.pixels import CurveSettings
from batchfit.core.minimizer import Minimizer
from batchfit.errors import FitError
from batchfit.status import Status


def fit_loop(model, layout, x, y, w, starts, result, todo, *, max_nfev, ftol, xtol,
             engine: str, curves: CurveSettings, scale_covar: bool = True,
             cost: str = "chisqr") -> None:
    """Fit the curves ``todo`` one by one with the core engine ``engine``.

    Parameters
    ----------
    model : Model
        The batch model (called with one curve's scalar values).
    layout : Layout
        The template's array view.
    x : ndarray, shape (n_points,)
    y, w : ndarray, shape (len(todo), n_points)
        Data and weights of the curves to fit (weight 0 drops a point).
    starts : ndarray, shape (len(todo), nvar)
        External starting values.
    result : BatchResult
        Filled in place at the rows ``todo``.
    todo : ndarray of int
        Rows of ``result`` that the curves belong to.
    max_nfev, ftol, xtol :
        Passed to the engine where it has them (``leastsq``).
    engine : {'leastsq', 'lbfgsb', 'anneal'}
        The core engine.
    curves : CurveSettings
        Each curve's bounds and held parameters (:mod:`batchfit.batch.pixels`).
    scale_covar : bool
        Scale the covariance by ``redchi``.
    cost : {'chisqr', 'poisson'}
        ``'poisson'``: ``y`` are counts and the core minimizes the deviance.
    """
    params = layout.params.copy()
    kws = {"max_nfev": max_nfev} if (max_nfev and engine == "leastsq") else {}
    if engine == "leastsq":
        kws.update(ftol=ftol, xtol=xtol)
    for i, row in enumerate(todo):
        keep = w[i] > 0
        residual = _CurveResidual(model, x[keep], y[i][keep], w[i][keep], cost == "poisson")
        pixels.set_curve(params, layout.var_names, starts[i], curves, i)
        try:
            with np.errstate(all="ignore"):
                fitter = Minimizer(residual, params, scale_covar=scale_covar, cost=cost,
                                   counts=y[i][keep] if cost == "poisson" else None)
                getattr(fitter, engine)(**kws)
        except FitError:
            result.status[row] = Status.MODEL_ERROR
            continue
        _store_one(fitter, result, row)


class _CurveResidual:
    """``(data - model) * w`` of one curve for the core Minimizer (the model for Poisson).

    Whatever goes wrong in a user's model (an exception, a result of the wrong
    shape) becomes a :class:`FitError`, which the loop turns into a status.
    """

    def __init__(self, model, x, y, w, model_only=False):
        self.model, self.x, self.y, self.w = model, x, y, w
        self.model_only = model_only  # cost='poisson': the Minimizer wants the model

    def __call__(self, p):
        vals = {q: p[q].value for q in self.model.param_names}
        try:
            f = np.asarray(self.model(self.x, **vals), dtype=float)
        except Exception as exc:  # a user model failing at these values
            raise FitError(f"the model raised {type(exc).__name__}: {exc}") from None
        if f.shape != self.x.shape and f.size != self.x.size:
            raise FitError(f"the model returned shape {f.shape}, expected {self.x.shape}")
        f = f.reshape(self.x.shape)
        return f if self.model_only else (self.y - f) * self.w


def _store_one(fitter, result, row):
    ok = bool(fitter.success)
    result.status[row] = Status.CONVERGED if ok else Status.MAX_NFEV
    result.success[row] = ok
    result.nfev[row] = fitter.nfev
    if not ok:
        return
    result.chisqr[row], result.redchi[row] = fitter.chisqr, fitter.redchi
    result.aic[row], result.bic[row] = fitter.aic, fitter.bic
    for name, par in fitter.params.items():
        result.values[name][row] = par.value
        result.stderr[name][row] = np.nan if par.stderr is None else par.stderr
    if result.covar is not None and fitter.covar is not None:
        cols = [result.var_names.index(v) for v in fitter.var_names]
        result.covar[row] = 0.0  # parameters held fixed in this curve
        result.covar[row][np.ix_(cols, cols)] = fitter.covar
