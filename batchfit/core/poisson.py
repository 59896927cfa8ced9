"""The Poisson cost of photon and event counts: deviance, weights, residuals.

For counts ``y`` and model values ``f`` the negative log-likelihood is, up to
a term that depends on the data only, half the Poisson deviance

    D = 2 * sum(f - y - y * log(f / y)),     y * log(f / y) := 0 where y = 0,

which is zero for a perfect fit and is the statistic that ``cost='poisson'``
minimizes (Baker and Cousins 1984; the Cash statistic of X-ray astronomy
differs from it by a constant). Zero-count points are kept: they contribute
``2 f``. With the Pearson residuals and scaled partials

    r = (f - y) / sqrt(f),     J = (df/dtheta) / sqrt(f),

``2 J^T r`` is the gradient of D and ``2 J^T J`` its expected Hessian (twice
the Fisher information), so a Levenberg-Marquardt step on ``(r, J)`` with D as
the cost that accepts steps is Fisher scoring with damping (the MLE estimator
of Gpufit, Przybylski et al. 2017). At the optimum ``inv(J^T J)`` is the
inverse Fisher information: the covariance, never scaled by ``D / nfree``.

A model value at or below zero has no Poisson meaning. The weights use the
model raised to a tiny floor, ``wt = 1/sqrt(max(f, FLOOR))``, and below the
floor each point's deviance term is continued by the quadratic that matches
its value and slope at the floor and has the curvature of those weights,

    t(f) = t(FLOOR) + 2 (1 - y / FLOOR) (f - FLOOR) + (f - FLOOR)^2 / FLOOR,

so the residual stays ``r = (f - y) * wt`` with the unclamped ``f`` and
``2 J^T r`` and ``2 J^T J`` are that quadratic's exact gradient and
curvature. Everything stays finite (no NaN), the continuation is convex for
every ``y`` (``y = 0`` included), and a step from a start where the model is
negative is predicted as well as it is taken, so the fit moves back to
positive values. (A plain clamp of ``f`` in the cost makes it flat below the
floor while the weights predict huge reductions: every step is rejected and
the fit stops, falsely converged, at its start.)

The core's engines minimize a sum of squares; for them
:func:`deviance_residuals` are residuals whose squares sum to D exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from batchfit.errors import FitError
from batchfit.vocabulary import COSTS

FLOOR = 1e-12
"""Model value (counts per point) below which the deviance is continued quadratically."""


def clamp(f: np.ndarray) -> np.ndarray:
    """Model values raised to :data:`FLOOR` (NaN stays NaN)."""
    return np.maximum(f, FLOOR)


def _continuation(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Half the continuation's extra term below the floor (0 above it)."""
    d = np.minimum(f - FLOOR, 0.0)
    return (1.0 - y / FLOOR) * d + 0.5 * d * d / FLOOR


def point_terms(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Deviance terms ``2*(f - y - y*log(f/y))`` of each point, continued below the floor.

    Parameters
    ----------
    f, y : ndarray
        Model values and counts (``y >= 0``), broadcastable.
    """
    fc = clamp(f)
    with np.errstate(all="ignore"):
        return 2.0 * (fc - y - (xlogy(y, fc) - xlogy(y, y)) + _continuation(f, y))


def data_term(y: np.ndarray, used: np.ndarray | None = None) -> np.ndarray:
    """The model-free part ``2*sum(y*log(y) - y)`` of each row's deviance, shape (m,)."""
    t = xlogy(y, y) - y
    if used is not None:
        t = t * used
    return 2.0 * t.sum(axis=-1)


def deviance(f: np.ndarray, y: np.ndarray, used: np.ndarray | None = None,
             data: np.ndarray | None = None) -> np.ndarray:
    """Poisson deviance of each row of ``f`` against the counts ``y``, shape (m,).

    Call it under ``np.errstate(all='ignore')``: NaN and inf propagate.

    Parameters
    ----------
    f, y : ndarray, shape (m, npts)
        Model values and counts (``y >= 0``).
    used : ndarray, shape (m, npts), optional
        0/1 per point: 0 drops the point. A NaN model value gives a NaN row
        even where unused, so a failing model is never hidden.
    data : ndarray, shape (m,), optional
        :func:`data_term` of the rows, when already known.
    """
    fc = clamp(f)
    t = np.log(fc)
    t *= y  # y*log(fc) is 0 at y=0: fc >= FLOOR is finite
    np.subtract(fc, t, out=t)
    low = (f < FLOOR).any(axis=0)
    if low.any():  # only the points below the floor (the same few bins, usually)
        cols = np.flatnonzero(low)
        t[:, cols] += _continuation(f[:, cols], y[:, cols])
    if used is not None:
        t *= used
    return 2.0 * t.sum(axis=-1) + (data_term(y, used) if data is None else data)


def linearize(f: np.ndarray, y: np.ndarray, used=None) -> tuple[np.ndarray, np.ndarray]:
    """Fisher-scoring residuals ``r = (f - y) * wt`` and weights ``wt = used/sqrt(max(f, FLOOR))``.

    The Jacobian is ``wt * df/dtheta``. Points with ``used == 0`` get
    ``r = wt = 0``; NaN model values give NaN residuals. Call it under
    ``np.errstate(all='ignore')``.

    Returns
    -------
    r, wt : ndarray, shape of ``f``
    """
    wt = np.sqrt(clamp(f))
    np.reciprocal(wt, out=wt)
    if used is not None:
        wt *= used
    r = np.subtract(f, y)
    r *= wt
    return r, wt


def fisher_terms(f: np.ndarray, y: np.ndarray, used: np.ndarray | None = None,
                 data: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`linearize` and :func:`deviance` at once: ``(r, wt, deviance)``.

    The same numbers with one clamp of ``f`` and fewer temporary arrays (the
    batch engine calls it once per evaluation). Call it under
    ``np.errstate(all='ignore')``.
    """
    fc = clamp(f)
    t = np.log(fc)
    t *= y
    np.subtract(fc, t, out=t)
    if f.size and not f.min() >= FLOOR:  # some point below the floor, or NaN
        low = np.flatnonzero((f < FLOOR).any(axis=0))
        t[:, low] += _continuation(f[:, low], y[:, low])
    if used is not None:
        t *= used
    dev = 2.0 * t.sum(axis=-1) + (data_term(y, used) if data is None else data)
    wt = np.sqrt(fc, out=fc)
    np.reciprocal(wt, out=wt)
    if used is not None:
        wt *= used
    r = np.subtract(f, y)
    r *= wt
    return r, wt, dev


def deviance_residuals(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sign(f - y) * sqrt(point_terms(f, y))``: their sum of squares is the deviance."""
    terms = np.maximum(point_terms(f, y), 0.0)  # rounding can give -1e-17 where f == y
    with np.errstate(all="ignore"):
        return np.sign(f - y) * np.sqrt(terms)  # NaN where f is NaN


def checked_counts(cost: str, counts) -> np.ndarray | None:
    """The counts as a flat float array for ``cost='poisson'``, None for ``'chisqr'``.

    Raises
    ------
    FitError
        An unknown cost, counts given with ``'chisqr'``, or missing, non-finite
        or negative counts with ``'poisson'``.
    """
    if cost not in COSTS:
        raise FitError(f"cost={cost!r} is not one of {', '.join(map(repr, COSTS))}")
    if cost == "chisqr":
        if counts is not None:
            raise FitError("counts= is only used with cost='poisson'")
        return None
    y = None if counts is None else np.asarray(counts, dtype=float).ravel()
    if y is None or not np.all(np.isfinite(y)) or np.any(y < 0):
        raise FitError("cost='poisson' needs counts=: the observed counts, finite and >= 0")
    return y


def count_problems(y: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Curves with a negative used count, and what in ``y`` is not photon or event counts.

    Negative values make a curve unfittable (the caller marks it bad data);
    non-integer values fit, but their deviance and stderr are those of counts
    only if the values are counts (not scaled, averaged or background-subtracted).

    Returns
    -------
    negative_rows : ndarray of bool, shape (curves,)
    message : str or None
        None when every used value is a count.
    """
    values = np.where(used & np.isfinite(y), y, 0.0)
    negative_rows = np.asarray((values < 0).any(axis=1))
    negative = int(negative_rows.sum())
    fractional = int((values != np.round(values)).any(axis=1).sum())
    problems = []
    if negative:
        problems.append(f"{negative} curve(s) hold negative values and are marked bad_data")
    if fractional:
        problems.append(f"{fractional} curve(s) hold non-integer values, fitted as if they "
                        "were counts: their deviance and stderr hold only for raw counts (not "
                        "scaled, averaged or background-subtracted data; model a background "
                        "instead of subtracting it)")
    if not problems:
        return negative_rows, None
    return negative_rows, "cost='poisson' expects counts (integers >= 0): " + "; ".join(problems)
