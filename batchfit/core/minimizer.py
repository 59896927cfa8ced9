"""Minimizer and minimize(): one fit at a time, the reference path of batchfit.

Engines:

* ``leastsq``: MINPACK Levenberg-Marquardt (:func:`scipy.optimize.leastsq`);
  bounds through the smooth transform of :mod:`batchfit.core.bounds`.
* ``lbfgsb``: L-BFGS-B (:func:`scipy.optimize.minimize`) with native bounds.
* ``anneal``: simulated annealing (:func:`scipy.optimize.dual_annealing`);
  every varied parameter needs finite ``min`` and ``max``.

leastsq defaults differ from lmfit 0.2's documented ``xtol=ftol=1e-7``:
``xtol=ftol=1e-10``, ``maxfev=2000*(nvarys+1)`` and MINPACK's initial step
bound ``factor=1`` (scipy's default is 100). On the 54 NIST StRD
nonlinear-regression problem/start pairs, the looser tolerances stop fits of
ENSO, MGH09, MGH17 and Bennett5 before the fourth certified digit, and
``factor=100`` lets the first step of BoxBOD (start 1) jump onto a plateau far
from the minimum; with these defaults all 54 pairs match the certified values
to 4 digits and the certified standard deviations to 2, with fewer function
evaluations in total (13,163 against 14,570 with ``factor=100``).

``cost='poisson'`` (with ``counts``): ``fcn`` returns the model's expected
counts and the engines minimize the Poisson deviance, as the sum of squares
of the deviance residuals (:mod:`batchfit.core.poisson`); the covariance is
then the inverse Fisher information at the solution (from a central-difference
Jacobian of the model), never scaled.

A residual that is non-finite at the starting point is an error. If it turns
non-finite later, at a trial point of the engine, the trial is given a huge
cost so that the engine rejects it and steps back, as a careful user would.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy import optimize

from batchfit.core import poisson, stats
from batchfit.core.bounds import Bounds
from batchfit.core.engines import (
    LEASTSQ_MESSAGES,
    engine_name,
    none_if_inf,
    nonfinite_message,
)
from batchfit.core.expr import Interpreter, TieSet
from batchfit.core.lbfgsb import cost_and_gradient
from batchfit.core.lbfgsb import options as lbfgsb_options
from batchfit.core.parameter import Parameters, check_parameter
from batchfit.errors import FitError, ParameterError

# Cost of a trial point where the residual is not finite: large but far from overflow.
_PENALTY = 1e100


class Minimizer:
    """A fit of ``fcn(params, *fcn_args, **fcn_kws)`` in the least-squares sense.

    After a fit the object holds the statistics (``nfev, success, errorbars,
    message, ier, lmdif_message, nvarys, ndata, nfree, residual, chisqr,
    redchi, covar, var_names, init_vals, aic, bic``) and ``params`` hold the
    best-fit values, ``stderr`` and ``correl``.

    Parameters
    ----------
    fcn : callable
        Returns the residual array; its length may not change between calls.
    params : Parameters
    fcn_args : tuple, optional
    fcn_kws : dict, optional
    scale_covar : bool, optional
        Scale the covariance by the reduced chi-square (lmfit's default).
        False takes the residual's weights as absolute (``curve_fit``'s
        ``absolute_sigma=True``).
    cost : {'chisqr', 'poisson'}, optional
        ``'poisson'``: ``fcn`` returns the model's expected counts (not a
        residual) and the fit minimizes the Poisson deviance against
        ``counts``; ``chisqr`` then holds the deviance and the covariance is
        the inverse Fisher information (``scale_covar`` is ignored).
    counts : array_like, optional
        The observed counts (``>= 0``), required with ``cost='poisson'``.
    **kws
        Default keywords for the engine (e.g. ``xtol``).
    """

    def __init__(self, fcn=None, params=None, fcn_args=None, fcn_kws=None,
                 scale_covar: bool = True, cost: str = "chisqr", counts=None, **kws):
        self.userfcn = fcn
        self.params = params
        self.userargs = tuple(fcn_args or ())
        self.userkws = dict(fcn_kws or {})
        self.cost = cost
        self.counts = poisson.checked_counts(cost, counts)
        self.scale_covar = bool(scale_covar) and cost == "chisqr"
        self.kws = kws
        self.asteval = Interpreter()
        self._reset()

    def _reset(self):
        self.nfev = 0
        self.success = False
        self.errorbars = False
        self.message = self.lmdif_message = None
        self.ier = None
        self.nvarys = self.ndata = self.nfree = 0
        self.residual = None
        self.chisqr = self.redchi = self.aic = self.bic = math.nan
        self.covar = None
        self.var_names: list[str] = []
        self.init_vals: list[float] = []
        self._ndata = None

    # -- set-up -------------------------------------------------------------

    def prepare_fit(self, params=None, **kws):
        """Check the parameters, compile the constraints and set starting values.

        Afterwards ``params`` hold the starting values (tied ones evaluated),
        so the residual function can be called on them before the fit, as
        lmfit 0.2's documentation shows. Returns the internal starting vector
        of the varied parameters.

        Parameters
        ----------
        params : Parameters, optional
            Replaces the Minimizer's parameters.
        **kws
            Engine keywords kept for the later fit (as given to the
            constructor), e.g. ``prepare_fit(xtol=1e-8)`` then ``leastsq()``.

        Raises
        ------
        ParameterError, ExpressionError
            Invalid value or bounds; invalid, unknown or cyclic expression.
        """
        if params is not None:
            self.params = params
        self.kws.update(kws)
        if not isinstance(self.params, Parameters):
            raise ParameterError("Minimizer needs a Parameters object as params")
        if self.userfcn is None or not callable(self.userfcn):
            raise FitError("Minimizer needs a callable residual function")
        self._reset()
        self._ties = TieSet(self.params, self.asteval.user_symbols())
        for name, par in self.params.items():
            check_parameter(name, par)
        self._vars = [p for p in self.params.values() if p.varies]
        self.var_names = [p.name for p in self._vars]
        self.nvarys = len(self._vars)
        self._bounds = Bounds([p.lo for p in self._vars], [p.hi for p in self._vars])
        start = self._bounds.clip([p.value for p in self._vars])
        self.init_vals = start.tolist()
        for par in self.params.values():
            par.stderr, par.correl = None, None
            par.init_value = par.value
        self._set_external(start)
        return self._bounds.to_internal(start)

    def _set_external(self, values):
        for par, v in zip(self._vars, np.asarray(values, dtype=float).tolist(), strict=False):
            par.value = v
        if self._ties:
            done = self._ties.apply(self.params.valuesdict())
            for name in self._ties.order:
                self.params[name].value = float(np.asarray(done[name]))

    # -- residuals ------------------------------------------------------------

    def _raw(self, values):
        """What ``fcn`` returns at external ``values``, as a flat float array."""
        self._set_external(values)
        out = self.userfcn(self.params, *self.userargs, **self.userkws)
        self.nfev += 1
        return np.asarray(out, dtype=float).ravel()

    def _call(self, values):
        """Residual at external ``values`` of the varied parameters."""
        r = self._raw(values)
        if self.counts is not None:
            if r.size != self.counts.size:
                raise FitError(f"with cost='poisson' fcn must return the model's "
                               f"{self.counts.size} expected counts; it returned {r.size} values")
            r = poisson.deviance_residuals(r, self.counts)
        if self._ndata is None:
            self._ndata = r.size
            if not np.all(np.isfinite(r)):
                raise FitError(nonfinite_message(r, self.params))
        elif r.size != self._ndata:
            raise FitError(
                f"the residual function returned {r.size} values, but {self._ndata} before; "
                "its length may not change between calls"
            )
        return r

    def _penalized(self, values):
        r = self._call(values)
        if np.all(np.isfinite(r)):
            return r
        return np.where(np.isfinite(r), r, _PENALTY)

    def _residual_internal(self, theta):
        return self._penalized(self._bounds.to_external(theta))

    def _cost(self, values):
        r = self._penalized(values)
        return float(r @ r)

    # -- engines --------------------------------------------------------------

    def leastsq(self, **kws):
        """Levenberg-Marquardt fit; keywords pass to :func:`scipy.optimize.leastsq`."""
        theta0 = self.prepare_fit()
        if self.nvarys == 0:
            return self._finish(np.empty(0), None, True, 1, "no varied parameters")
        opts = {"xtol": 1e-10, "ftol": 1e-10, "maxfev": 2000 * (self.nvarys + 1), "factor": 1.0}
        opts.update(self.kws)
        opts.update(kws)
        if "max_nfev" in opts:
            opts["maxfev"] = opts.pop("max_nfev")
        theta, cov, _info, mesg, ier = optimize.leastsq(
            self._residual_internal, theta0, full_output=True, **opts)
        self.lmdif_message = mesg
        if cov is not None:
            g = self._bounds.d_external(theta)
            cov = cov * np.outer(g, g)
        return self._finish(self._bounds.to_external(theta), cov, ier in (1, 2, 3, 4), ier,
                            LEASTSQ_MESSAGES.get(ier, mesg))

    def lbfgsb(self, **kws):
        """L-BFGS-B fit with native bounds; keywords as :mod:`batchfit.core.lbfgsb` lists.

        lmfit 0.2's ``fmin_l_bfgs_b`` names (``m, factr, pgtol, epsilon, ...``)
        are honoured; keywords that cannot be are refused with a FitError.
        """
        self.prepare_fit()
        options, callback = lbfgsb_options(self.nvarys, self.kws, kws)
        x0 = np.array(self.init_vals)
        if self.nvarys == 0:
            return self._finish(x0, None, True, 1, "no varied parameters")
        cost = partial(cost_and_gradient, self._penalized, step=options.pop("eps", None))
        bounds = [(none_if_inf(p.lo), none_if_inf(p.hi)) for p in self._vars]
        res = optimize.minimize(cost, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                options=options, callback=callback)
        return self._finish(res.x, self._jacobian_covar(res.x), bool(res.success),
                            int(res.status), str(res.message))

    def anneal(self, **kws):
        """Simulated annealing (dual annealing); keywords go to ``dual_annealing``.

        ``seed`` defaults to 0 so that results are reproducible.
        """
        self.prepare_fit()
        missing = [p.name for p in self._vars if not (math.isfinite(p.lo) and math.isfinite(p.hi))]
        if missing:
            raise FitError(
                "engine 'anneal' needs finite min and max on every varied parameter; "
                f"missing for: {', '.join(missing)}"
            )
        if self.nvarys == 0:
            return self._finish(np.empty(0), None, True, 1, "no varied parameters")
        opts = {"seed": 0, "maxiter": 1000}
        opts.update(self.kws)
        opts.update(kws)
        res = optimize.dual_annealing(self._cost, [(p.lo, p.hi) for p in self._vars],
                                      x0=np.array(self.init_vals), **opts)
        return self._finish(res.x, self._jacobian_covar(res.x), bool(res.success),
                            int(getattr(res, "status", 0)), str(res.message))

    def _fisher_covar(self, best):
        """Inverse Fisher information ``inv(J^T J)``, ``J = (df/dp) / sqrt(f)`` at ``best``."""
        return stats.covariance_from_jacobian(self._covar_jacobian(best))

    def _jacobian_covar(self, x):
        nfev = self.nfev
        try:
            jac = stats.numeric_jacobian(self._call, x)
        finally:
            self.nfev = nfev
        return stats.covariance_from_jacobian(jac)

    # -- results --------------------------------------------------------------

    def _finish(self, best, cov, success, ier, message):
        nfev = self.nfev
        r = self._call(best)
        self.nfev = nfev
        self.residual = r
        self.ndata = r.size
        self.nfree = self.ndata - self.nvarys
        self.chisqr = float(r @ r)
        self.redchi = self.chisqr / self.nfree if self.nfree > 0 else math.nan
        self.aic, self.bic = stats.information_criteria(self.chisqr, self.ndata, self.nvarys,
                                                        self.cost)
        self.success = bool(success) and bool(np.all(np.isfinite(r)))
        self.ier, self.message = ier, message
        if not np.all(np.isfinite(r)):
            raise FitError(nonfinite_message(r, self.params, where="at the best-fit point"))
        if self.counts is not None and self.nvarys:
            cov = self._fisher_covar(best)
        self._set_uncertainties(self._covar_without_held(best, cov))
        return self

    def _covar_without_held(self, best, cov):
        """`cov` with parameters at a bound or without effect held fixed (their rows NaN).

        The rule is :func:`batchfit.core.stats.held_parameters`, as in the batch
        engine. Only fits with bounds or a singular covariance need the
        external Jacobian this takes (not counted in ``nfev``).
        """
        lo, hi = self._bounds.lo, self._bounds.hi
        if self.nvarys == 0 or (cov is not None and not self._bounds.bounded):
            return cov
        jac = self._covar_jacobian(best)
        scale = self.redchi if self.scale_covar else 1.0
        held = stats.held_parameters(best, lo, hi, jac.T @ jac, scale)
        return stats.covariance_without(jac, held) if held.any() else cov

    def _covar_jacobian(self, best):
        """Jacobian whose ``inv(J^T J)`` is the unscaled covariance (not counted in nfev).

        The residual's, or for ``cost='poisson'`` the model's scaled by
        ``1/sqrt(f)`` (then ``J^T J`` is the Fisher information).
        """
        fun = self._call
        nfev = self.nfev
        try:
            if self.counts is not None:
                scale = 1.0 / np.sqrt(poisson.clamp(self._raw(best)))
                fun = lambda v: self._raw(v) * scale  # noqa: E731
            return stats.numeric_jacobian(fun, best, lo=self._bounds.lo, hi=self._bounds.hi)
        finally:
            self.nfev = nfev
            self._set_external(best)

    def _set_uncertainties(self, cov):
        self.covar = None
        self.errorbars = False
        for par in self.params.values():
            if not par.varies and par.expr is None:
                par.stderr = 0.0  # held fixed: no uncertainty from this fit
        if cov is None:
            return
        held = np.isnan(np.diag(cov))
        if not np.all(np.isfinite(cov[~held][:, ~held])):
            return
        if self.scale_covar:
            if self.nfree <= 0:
                return
            cov = cov * self.redchi
        self.covar = cov
        sd = np.sqrt(np.abs(np.diag(cov)))
        corr = stats.correlations(cov)
        for i, par in enumerate(self._vars):
            par.stderr = float(sd[i])  # NaN for a parameter held at its bound
            par.correl = None if held[i] else {
                q.name: float(corr[i, j]) for j, q in enumerate(self._vars)
                if j != i and not held[j]}
        self.errorbars = bool(np.all(np.isfinite(sd)))
        self._tied_stderr(sd, held, cov)

    def _tied_stderr(self, sd, held, covar):
        if not self._ties:
            return
        best = np.array([p.value for p in self._vars])
        scale = np.maximum(np.maximum(np.abs(best), np.where(held, 0.0, sd)), 1e-300)
        grads = self._ties.gradients(self.params.valuesdict(), self.var_names, scale)
        # A parameter held at its bound contributes nothing to a tied one's error.
        covar = np.where(held[:, None] | held[None, :], 0.0, covar)
        for name, g in grads.items():
            self.params[name].stderr = stats.propagate(g, covar)

    def fit(self, engine="leastsq", **kws):
        """Run the fit with ``engine`` ('leastsq', 'lbfgsb' or 'anneal')."""
        return getattr(self, engine_name(engine))(**kws)


def minimize(fcn, params, args=None, kws=None, engine="leastsq", method=None,
             scale_covar=True, cost="chisqr", counts=None, **fit_kws):
    """Fit ``params`` so that the sum of squares of ``fcn(params, *args, **kws)`` is minimal.

    ``method`` is an alias of ``engine``. ``scale_covar``, ``cost`` and
    ``counts`` as in :class:`Minimizer` (``cost='poisson'``: ``fcn`` returns
    the model, the fit minimizes the Poisson deviance against ``counts``).
    Extra keywords go to the engine. Returns the :class:`Minimizer`, whose
    attributes hold the statistics; ``params`` are updated in place with
    best-fit values and uncertainties.
    """
    name = engine_name(method if method is not None else engine)
    fitter = Minimizer(fcn, params, fcn_args=args, fcn_kws=kws, scale_covar=scale_covar,
                       cost=cost, counts=counts)
    return getattr(fitter, name)(**fit_kws)
