"""Fit statistics: covariance, standard errors, correlations, information criteria."""

from __future__ import annotations

import math

import numpy as np

from batchfit.core.fdiff import central_partial, central_step

EPS = np.finfo(float).eps


def information_criteria(chisqr, ndata, nvarys, cost: str = "chisqr"):
    """Akaike and Bayesian information criteria of a fit (scalars or arrays).

    For ``cost='chisqr'`` these are lmfit's: ``-2 log L = ndata *
    log(chisqr / ndata)``, ``aic = -2 log L + 2 nvarys`` and ``bic = -2 log L
    + log(ndata) nvarys``. For ``cost='poisson'``, ``chisqr`` is the Poisson
    deviance, which is ``-2 log L`` up to a term that depends on the data
    only, so ``aic = deviance + 2 nvarys`` and ``bic = deviance + log(ndata)
    nvarys``: differences between models fitted to the same counts are exact.

    Parameters
    ----------
    chisqr : float or ndarray
        Chi-square (or deviance) of each fit.
    ndata, nvarys : int or ndarray
        Points fitted and varied parameters of each fit.
    cost : {'chisqr', 'poisson'}
        What ``chisqr`` holds.

    Returns
    -------
    aic, bic : float or ndarray
        NaN where ``ndata <= 0`` or (chi-square) ``chisqr <= 0``.
    """
    c = np.asarray(chisqr, dtype=float)
    n = np.asarray(ndata, dtype=float)
    k = np.asarray(nvarys, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if cost == "poisson":
            ok, base = (n > 0) & (c >= 0), c
        else:
            ok = (n > 0) & (c > 0)
            base = n * np.log(np.where(ok, c, 1.0) / np.where(n > 0, n, 1.0))
        aic = np.where(ok, base + 2.0 * k, np.nan)
        bic = np.where(ok, base + np.log(np.where(n > 0, n, 1.0)) * k, np.nan)
    if aic.ndim == 0:
        return float(aic), float(bic)
    return aic, bic


def covariance_from_jacobian(jac: np.ndarray) -> np.ndarray | None:
    """Unscaled covariance ``inv(J^T J)``, or None when J is rank deficient.

    Uses the SVD of J (not the normal equations) so that the conditioning is
    that of J, not its square.
    """
    if jac.size == 0 or not np.all(np.isfinite(jac)):
        return None
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    if s[-1] <= s[0] * max(jac.shape) * EPS:
        return None
    v = vt.T / s
    return v @ v.T


def numeric_jacobian(fun, x: np.ndarray, scale: np.ndarray | None = None,
                     lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
    """Central-difference Jacobian of vector function ``fun`` at ``x``, shape (ndata, k).

    The step of each coordinate is relative to its magnitude (or to ``scale``).
    With bounds ``lo``/``hi`` no evaluation leaves the box: at a bound the
    difference is one-sided, into the box.
    """
    x = np.asarray(x, dtype=float)
    steps = central_step(x, None if scale is None else np.maximum(np.abs(x), np.abs(scale)))
    lo = np.full(x.shape, -np.inf) if lo is None else np.asarray(lo, dtype=float)
    hi = np.full(x.shape, np.inf) if hi is None else np.asarray(hi, dtype=float)
    return np.stack([central_partial(fun, x, j, steps[j], lo[j], hi[j]) for j in range(x.size)],
                    axis=1)


def correlations(covar: np.ndarray) -> np.ndarray:
    """Correlation matrix from a covariance matrix (NaN where a variance is zero)."""
    d = np.sqrt(np.diag(covar))
    with np.errstate(divide="ignore", invalid="ignore"):
        return covar / np.outer(d, d)


def propagate(grad: np.ndarray, covar: np.ndarray) -> float:
    """Standard error ``sqrt(g^T C g)`` of a function with gradient ``grad``."""
    var = float(grad @ covar @ grad)
    return math.sqrt(var) if var >= 0 else math.nan


AT_BOUND_SIGMA = 1e-3
"""A parameter this many (conditional) standard errors from a bound is at it."""


def held_parameters(values, lo, hi, gram, redchi) -> np.ndarray:
    """Varied parameters that the covariance treats as fixed: at a bound, or without effect.

    The rule shared by the core and the batch engine. Parameter ``j`` is at
    its bound when its distance to the nearer bound is zero or at most
    ``AT_BOUND_SIGMA * sqrt(redchi / A_jj)`` (``A = J^T J``: a thousandth of
    its standard error with the others held); it has no effect when its
    Jacobian column is zero (``A_jj == 0``). Such parameters get stderr NaN;
    the others get theirs from the covariance of the rest alone.

    Parameters
    ----------
    values, lo, hi : ndarray, shape (..., k)
        Best-fit values and their bounds (``-inf``/``inf`` for none).
    gram : ndarray, shape (..., k, k)
        ``J^T J`` at the best fit (unscaled, in the units of `values`).
    redchi : float or ndarray, shape (...)
        Reduced chi-square of each fit.

    Returns
    -------
    held : ndarray of bool, shape (..., k)
    """
    values = np.asarray(values, dtype=float)
    a = np.diagonal(np.asarray(gram, dtype=float), axis1=-2, axis2=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.minimum(values - lo, hi - values)
        scale = AT_BOUND_SIGMA * np.sqrt(np.asarray(redchi, dtype=float)[..., None] / a)
        at_bound = np.isfinite(dist) & ((dist <= 0.0) | (dist <= scale))
    return at_bound | (a == 0.0)


def covariance_without(jac: np.ndarray, held: np.ndarray) -> np.ndarray | None:
    """Unscaled covariance of the parameters not `held`; NaN rows and columns for the held.

    None when the remaining columns of ``jac`` (ndata, k) are rank deficient
    or every parameter is held.
    """
    keep = ~np.asarray(held, dtype=bool)
    sub = covariance_from_jacobian(jac[:, keep]) if keep.any() else None
    if sub is None:
        return None
    cov = np.full((keep.size, keep.size), np.nan)
    cov[np.ix_(keep, keep)] = sub
    return cov
