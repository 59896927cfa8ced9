"""How the batched Levenberg-Marquardt calls the problem: the ``evaluate`` protocol.

``evaluate(theta, idx) -> (r, columns)`` or ``(r, columns, cost)``; see
:func:`batchfit.batch.lm.solve`. :func:`evaluator` builds it from a plain
``resid``/``jac`` pair, :func:`evaluate_checked` calls it and checks shapes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from batchfit.core.fdiff import forward_columns

__all__ = ["ColumnsFn", "EvaluateFn", "JacFn", "ResidFn", "evaluate_checked", "evaluator",
           "final_jacobian", "sumsq"]

BLOCK = 512
"""Curves per call when evaluating the final Jacobians."""

ResidFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
JacFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
ColumnsFn = Callable[[np.ndarray, float], tuple[list, int]]
EvaluateFn = Callable[[np.ndarray, np.ndarray], tuple]


def evaluator(resid: ResidFn, jac: JacFn | None, k: int) -> EvaluateFn:
    """Make the ``evaluate`` form of a plain `resid` and `jac` pair.

    Parameters
    ----------
    resid : callable
        ``resid(theta, idx) -> r`` of shape (m, npts).
    jac : callable or None
        ``jac(theta, idx, r) -> J`` of shape (m, npts, k); None for forward
        differences (``k`` residual evaluations per Jacobian).
    k : int
        Number of parameters.

    Returns
    -------
    callable
    """

    def evaluate(theta, idx):
        r = checked(resid(theta, idx), theta)

        def columns(sel, rel_step):
            th, ix, rs = theta[sel], idx[sel], r[sel]
            if jac is None:
                return forward_columns(lambda t: checked(resid(t, ix), t), th, rs, rel_step), k
            jm = np.asarray(jac(th, ix, rs), dtype=np.float64)
            if jm.shape != (th.shape[0], r.shape[1], k):
                raise ValueError(
                    f"jac must return shape {(th.shape[0], r.shape[1], k)}; got {jm.shape}")
            return [jm[:, :, j] for j in range(k)], 0

        return r, columns

    return evaluate


def checked(r, theta: np.ndarray) -> np.ndarray:
    """`r` as a C-contiguous float64 (m, npts) array; ValueError if it is not one."""
    r = np.ascontiguousarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != theta.shape[0]:
        raise ValueError(
            f"resid must return shape (m, npts) with m={theta.shape[0]}; got {r.shape}")
    return r


def sumsq(r: np.ndarray) -> np.ndarray:
    """Row sums of squares, each row by the same dot product whatever the batch."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.vecdot(r, r)


def evaluate_checked(evaluate: EvaluateFn, theta: np.ndarray, idx: np.ndarray):
    """Residuals, Jacobian columns and per-curve cost (the hook's, else ``sum r**2``).

    Returns
    -------
    r : ndarray, shape (m, npts)
    columns : callable
    cost : ndarray, shape (m,)
        NaN where `r` is not finite, whatever the hook says.

    Raises
    ------
    ValueError
        Wrong shapes of `r` or of the cost.
    """
    out = evaluate(theta, idx)
    r = checked(out[0], theta)
    if len(out) == 2:
        return r, out[1], sumsq(r)
    cost = np.asarray(out[2], dtype=np.float64).reshape(-1)
    if cost.shape != (theta.shape[0],):
        raise ValueError(
            f"evaluate's cost must have shape ({theta.shape[0]},); got {np.shape(out[2])}")
    with np.errstate(invalid="ignore"):
        return r, out[1], np.where(np.isfinite(r).all(axis=1), cost, np.nan)


def final_jacobian(evaluate: EvaluateFn, theta: np.ndarray, cost: np.ndarray,
                   resid: np.ndarray | None, rel_step: float) -> np.ndarray:
    """Fresh Jacobian at every row of `theta`; NaN where `cost` is not finite.

    Returns
    -------
    jac : ndarray, shape (n, npts, k)
        ``npts`` from `resid` (0 when it is None).
    """
    n, k = theta.shape
    npts = 0 if resid is None else resid.shape[1]
    jac = np.full((n, npts, k), np.nan)
    good = np.flatnonzero(np.isfinite(cost))
    for start in range(0, good.size, BLOCK):
        rows = good[start : start + BLOCK]
        _, columns, _ = evaluate_checked(evaluate, theta[rows], rows)
        cols, _ = columns(np.arange(rows.size), rel_step)
        for j, col in enumerate(cols):
            jac[rows, :, j] = col
    return jac
