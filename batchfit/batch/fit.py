"""fit_batch: fit one model to many curves at once, with the core's semantics.

The template means what it means to :func:`batchfit.minimize`: varied
parameters are fitted through the same bounds transform, tied parameters are
evaluated from their expressions (on whole arrays), and standard errors come
from the covariance scaled by the reduced chi-square, with tied ones
propagated. A bad curve is a status code, never an exception.
"""

from __future__ import annotations

import warnings

import numpy as np

from batchfit.batch import lm, pixels
from batchfit.batch.allocator import tune_malloc
from batchfit.batch.layout import Layout
from batchfit.batch.linalg import covariance_from_gram
from batchfit.batch.loop import fit_loop
from batchfit.batch.problem import Problem, unit_weights
from batchfit.batch.result import BatchResult
from batchfit.batch.start import guessed_starts
from batchfit.core import poisson
from batchfit.core.engines import engine_name
from batchfit.core.stats import held_parameters, information_criteria
from batchfit.errors import BatchfitWarning, InputError, ModelError
from batchfit.status import Status
from batchfit.vocabulary import COSTS


def fit_batch(model, params, x, y, sigma=None, mask=None, init=None, guess=False,
              max_nfev=None, covar=False, engine="lm", ftol=1e-10, xtol=1e-10,
              symtable=None, cost="chisqr", scale_covar=True) -> BatchResult:
    """Fit ``model`` to every row of ``y``.

    Parameters
    ----------
    model : Model
        A vectorized model (``batchfit.models``).
    params : Parameters
        The template: names, starting values, vary, bounds, expressions.
    x : array_like, shape (n_points,)
    y : array_like, shape (n_fits, n_points)
        Curves; NaN points are ignored (each curve keeps its own ``ndata``).
    sigma : array_like, optional
        Per-point uncertainties broadcastable to ``y``; non-positive or
        non-finite sigma drops the point.
    mask : array_like of bool, shape (n_fits,), optional
        True = fit; False gives status ``masked``.
    init : mapping of str -> array (n_fits,), optional
        Per-curve settings (see :mod:`batchfit.batch.pixels`): ``<name>``
        values (starting values; held values where fixed), ``<name>_min``,
        ``<name>_max`` bounds and ``<name>_vary`` flags; NaN keeps the
        template's. Values override ``guess`` and the template. Other keys
        are ignored.
    guess : bool
        Start each curve from a guess from its data that respects the template's
        centres and bounds, or from the template where that fits better
        (:mod:`batchfit.batch.start`).
    max_nfev : int, optional
        Maximum function evaluations per curve (default ``200*(nvar+1)``).
    covar : bool
        Also return the covariance matrices.
    engine : {'lm', 'leastsq', 'lbfgsb', 'anneal'}
        'lm' is the vectorized engine; the others loop :class:`Minimizer`
        over the curves (the slow reference path).
    cost : {'chisqr', 'poisson'}
        What is minimized: the (weighted) sum of squares, or the Poisson
        deviance ``2*sum(f - y - y*log(f/y))`` for counts ``y``.
    scale_covar : bool
        Scale the covariance by ``redchi`` (lmfit's default); False takes
        ``sigma`` as absolute. Ignored for ``cost='poisson'``, whose
        covariance is the inverse Fisher information, never scaled.

    Returns
    -------
    BatchResult

    Raises
    ------
    InputError
        Wrong shapes; ``max_nfev`` not a positive integer.
    ParameterError, ExpressionError, ModelError
        An invalid template, or one that misses model parameters; per-curve
        ``min > max`` (naming the first such curve).
    """
    _check_max_nfev(max_nfev)
    tune_malloc()  # large temporaries from the heap, not page faults (batch/allocator.py)
    per = pixels.split(params, init)
    pixels.warn_unused_values(params, per)
    layout = Layout(pixels.template(params, per), symtable)
    _check_model(model, layout)
    check_options(cost, sigma, scale_covar)
    x, y, w = _prepare_data(x, y, sigma)
    n = y.shape[0]
    starts = pixels.starting_values(params, layout.var_names, n,
                                    _guesses(model, layout, x, y, w, guess), per)
    curves = pixels.settings(params, layout.var_names, per, starts)
    result = BatchResult.empty(layout.names, layout.var_names, n, covar)
    todo = _classify(y, w, mask, curves.nvary, result, cost)
    if todo.size:
        name = "lm" if engine == "lm" else engine_name(engine)
        runner = _fit_lm if name == "lm" else fit_loop
        runner(model, layout, x, _rows(y, todo), _rows(w, todo), _rows(starts, todo), result, todo,
               max_nfev=max_nfev, ftol=ftol, xtol=xtol, engine=name, curves=curves.take(todo),
               scale_covar=bool(scale_covar) and cost == "chisqr", cost=cost)
    return result


def check_options(cost, sigma, scale_covar=True) -> None:
    """Raise an InputError for a ``cost`` / ``sigma`` / ``scale_covar`` that cannot be taken."""
    if not isinstance(scale_covar, (bool, np.bool_)):
        raise InputError(f"scale_covar={scale_covar!r}: use True (stderr scaled by redchi) or "
                         "False (sigma is absolute)")
    if cost not in COSTS:
        raise InputError(f"cost={cost!r} is not one of {', '.join(map(repr, COSTS))}")
    if cost == "poisson" and sigma is not None:
        raise InputError("cost='poisson' takes counts without sigma (the Poisson variance is "
                         "the model itself); drop sigma, or use cost='chisqr'")


def _check_max_nfev(max_nfev) -> None:
    if max_nfev is None:
        return
    if isinstance(max_nfev, bool) or not isinstance(max_nfev, int | np.integer) or max_nfev <= 0:
        raise InputError(f"max_nfev must be a positive integer (or None for the default "
                         f"200*(nvar+1)), got {max_nfev!r}")


def _check_model(model, layout):
    names = getattr(model, "param_names", None)
    if names is None or not callable(model):
        raise ModelError(f"expected a batchfit Model, got {type(model).__name__}")
    missing = [p for p in names if p not in layout.names]
    if missing:
        raise ModelError(
            f"the parameters template lacks model parameter(s) {', '.join(missing)}; "
            "build it with model.make_params()"
        )


def _prepare_data(x, y, sigma):
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise InputError(f"y must have shape (n_fits, n_points), got {y.shape}")
    x = np.asarray(x, dtype=float)
    if x.shape != (y.shape[1],):
        raise InputError(f"x must have shape ({y.shape[1]},) to match y {y.shape}, got {x.shape}")
    if sigma is None:
        finite = np.isfinite(y)
        if finite.all():  # every point used with unit weight: no copies
            return x, y, np.broadcast_to(1.0, y.shape)
        w = finite.astype(float)
    else:
        try:
            s = np.broadcast_to(np.asarray(sigma, dtype=float), y.shape)
        except ValueError:
            raise InputError(
                f"sigma of shape {np.shape(sigma)} does not broadcast to y {y.shape}") from None
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(np.isfinite(s) & (s > 0), 1.0 / s, 0.0)
    w = np.where(np.isfinite(y) & np.isfinite(w), w, 0.0)
    return x, np.where(w > 0, y, 0.0), w


def _guesses(model, layout, x, y, w, guess):
    out = []
    if guess:
        try:
            out.append(guessed_starts(model, layout, x, y, w))
        except Exception as exc:  # a user model without a guess
            raise ModelError(f"guess=True but the model cannot guess: {exc}") from None
    return out


def _classify(y, w, mask, nvary, result, cost="chisqr"):
    """Mark masked and bad-data curves in ``result``; return indices to fit.

    For ``cost='poisson'`` a curve with a negative count is bad data too.
    """
    n = y.shape[0]
    fit = np.ones(n, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), (n,))
    if unit_weights(w):  # all points used, all finite
        ndata = np.full(n, y.shape[1])
        span = np.max(y, axis=1, initial=-np.inf) - np.min(y, axis=1, initial=np.inf)
    else:
        used = w > 0
        ndata = used.sum(axis=1)
        yu = np.where(used, y, np.nan)
        # All-NaN rows are bad data, not news: silence nanmax/nanmin's RuntimeWarning.
        quiet = warnings.catch_warnings(action="ignore", category=RuntimeWarning)
        with np.errstate(all="ignore"), quiet:
            span = np.nanmax(yu, axis=1) - np.nanmin(yu, axis=1)
    bad = (ndata < np.maximum(nvary, 1)) | ~(span > 0)
    if cost == "poisson":  # a negative count: bad data, and said
        negative, problem = poisson.count_problems(y, (w > 0) & fit[:, None])
        bad |= negative
        if problem:
            warnings.warn(problem, BatchfitWarning, stacklevel=3)
    result.ndata[:] = np.where(fit, ndata, 0)
    result.nfree[:] = np.where(fit, ndata - nvary, 0)
    result.status[:] = np.where(~fit, Status.MASKED, np.where(bad, Status.BAD_DATA,
                                                               Status.NOT_RUN))
    return np.flatnonzero(fit & ~bad)


def _rows(a, todo):
    return a if todo.size == a.shape[0] else a[todo]


def _fit_lm(model, layout, x, y, w, starts, result, todo, *, max_nfev, ftol, xtol, engine,
            curves, scale_covar=True, cost="chisqr"):
    prob = Problem(model, layout, x, y, w, cost)
    opts = {"scale_covar": scale_covar, "cost_kind": cost, "curves": curves}
    if layout.nvar == 0:
        _store_fixed(prob, starts, result, todo, opts)
        return
    lo, hi = curves.lower, curves.upper
    out = lm.solve(None, starts, evaluate=prob.evaluate, lower=lo, upper=hi,
                   ftol=ftol, xtol=xtol, max_nfev=max_nfev, block_size=block_size(x.size),
                   return_jac=False, return_gram=True, return_resid=False,
                   running_scale=cost != "poisson")
    gram = out.gram_at_solution
    assert gram is not None  # return_gram=True
    nfree = result.nfree[todo]
    with np.errstate(all="ignore"):
        redchi = np.where(nfree > 0, out.cost / nfree, np.nan)
    held = held_parameters(out.theta, lo, hi, gram, redchi if scale_covar else 1.0)
    cov = covariance_from_gram(gram, exclude=held | curves.pinned)
    _store(layout, out.theta, out.cost, out.nfev, out.status, cov, result, todo, held, **opts)


BLOCK_POINTS = 2**18
"""Data points per block of the LM kernel (2 MiB per (curves, points) array).

Measured on Gaussian + line with 128 points: 512 curves per block took 1.2x
the time of 2048 (per-iteration overhead on (m,)-sized arrays), 4096 was
slower again (cache); results never depend on it.
"""


def block_size(npts: int) -> int:
    """Curves per block of the LM kernel for curves of ``npts`` points (64 to 4096)."""
    return int(np.clip(BLOCK_POINTS // max(npts, 1), 64, 4096))


def _store_fixed(prob, theta0, result, todo, opts):
    cost = prob.cost_at(theta0, np.arange(theta0.shape[0]))
    ok = np.isfinite(cost)
    status = np.where(ok, Status.CONVERGED, Status.MODEL_ERROR).astype(np.int8)
    _store(prob.layout, theta0, cost, np.ones(len(todo), np.int32), status,
           np.zeros((len(todo), 0, 0)), result, todo, **opts)


def _store(layout, theta, cost, nfev, status, cov, result, todo, held=None, *,
           curves, scale_covar=True, cost_kind="chisqr"):
    """Write the fitted curves' values, errors and statistics into ``result``."""
    ext = theta
    nfree = result.nfree[todo]
    with np.errstate(all="ignore"):
        redchi = np.where(nfree > 0, cost / nfree, np.nan)
    ok = (status == Status.CONVERGED) & np.isfinite(cost) & np.isfinite(ext).all(axis=1)
    status = np.where((status == Status.CONVERGED) & ~ok, Status.MODEL_ERROR, status)
    result.status[todo] = status
    result.success[todo] = ok
    result.nfev[todo] = nfev
    result.chisqr[todo] = np.where(ok, cost, np.nan)
    result.redchi[todo] = np.where(ok, redchi, np.nan)
    aic, bic = information_criteria(cost, result.ndata[todo], curves.nvary, cost_kind)
    result.aic[todo] = np.where(ok, aic, np.nan)
    result.bic[todo] = np.where(ok, bic, np.nan)
    cov_ext = cov * (redchi if scale_covar else np.ones_like(redchi))[:, None, None]
    cov_ext[~ok] = np.nan
    vals = layout.values(ext)
    for name in layout.names:
        v = np.broadcast_to(np.asarray(vals[name], dtype=float).reshape(-1), (len(todo),))
        result.values[name][todo] = np.where(ok, v, np.nan)
    if curves.pinned.any():  # held fixed in these curves: no uncertainty, as in the core
        pin = curves.pinned & ok[:, None]
        cov_ext[pin[:, :, None] | pin[:, None, :]] = 0.0
        held = pin if held is None else held | pin
    _store_stderr(layout, ext, cov_ext, (ok, held), result, todo)
    if result.covar is not None:
        result.covar[todo] = cov_ext


def _store_stderr(layout, ext, cov_ext, ok_held, result, todo):
    ok, held = ok_held
    with np.errstate(invalid="ignore"):
        sd = np.sqrt(np.diagonal(cov_ext, axis1=1, axis2=2))
    for j, name in enumerate(layout.var_names):
        result.stderr[name][todo] = sd[:, j]
    for name in layout.fixed:
        result.stderr[name][todo] = np.where(ok, 0.0, np.nan)  # held fixed, as in the core
    # A parameter held at its bound contributes nothing to a tied one's error.
    cov_tied = cov_ext if held is None else np.where(
        held[:, :, None] | held[:, None, :], 0.0, cov_ext)
    for name, g in layout.tie_gradients(ext).items():
        with np.errstate(invalid="ignore"):
            var = np.einsum("mi,mij,mj->m", g, cov_tied, g)
            result.stderr[name][todo] = np.where(ok, np.sqrt(var), np.nan)
