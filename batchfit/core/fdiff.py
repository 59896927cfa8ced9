"""Finite-difference derivatives, written once for the core, the batch engine and the ties.

Two schemes, each with one implementation:

- :func:`forward_columns`: the batched forward-difference Jacobian of the
  Levenberg-Marquardt engine (MINPACK's ``fdjac2`` per curve: the step of
  parameter ``j`` is ``rel_step * |theta_j|``, or ``rel_step`` where that is
  0), one evaluation of the function per column, for many curves at once;
- :func:`central_partial`: a central difference of a function of named or
  indexed values by one of them (step ``CENTRAL_STEP * scale``), one-sided
  into the box at a bound; the quotient uses the step actually taken, so
  rounding of ``x + h`` does not bias it. The core's covariance Jacobian and
  the gradients of tie expressions without a symbolic derivative use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

EPS = float(np.finfo(np.float64).eps)
FORWARD_STEP = float(np.sqrt(EPS))
"""Default relative step of forward differences (error ~ sqrt(eps))."""
CENTRAL_STEP = EPS ** (1.0 / 3.0)
"""Relative step of central differences (balances truncation and rounding)."""


def forward_columns(fun: Callable[[np.ndarray], np.ndarray], theta: np.ndarray,
                    f0: np.ndarray, rel_step: float = FORWARD_STEP) -> list[np.ndarray]:
    """Forward-difference columns ``d f / d theta_j`` for a batch of curves.

    Parameters
    ----------
    fun : callable
        ``fun(theta) -> f`` with ``theta`` of shape (m, k) and ``f`` of shape (m, n).
    theta : ndarray, shape (m, k)
        Where to differentiate, one row per curve.
    f0 : ndarray, shape (m, n)
        ``fun(theta)``, already computed.
    rel_step : float
        Relative step; the step of ``theta[i, j]`` is ``rel_step * |theta[i, j]|``
        (``rel_step`` where ``theta[i, j]`` is 0).

    Returns
    -------
    list of ndarray, each (m, n)
        One column per parameter; non-finite where ``fun`` is (no warning).
    """
    cols = []
    for j in range(theta.shape[1]):
        h = rel_step * np.abs(theta[:, j])
        h[h == 0.0] = rel_step
        shifted = theta.copy()
        shifted[:, j] += h
        f1 = fun(shifted)
        with np.errstate(all="ignore"):
            col = np.subtract(f1, f0)
            col /= h[:, None]
        cols.append(col)
    return cols


def central_step(x: Any, scale: Any = None) -> np.ndarray:
    """The central-difference step for values ``x``: ``CENTRAL_STEP * scale``.

    ``scale`` defaults to ``|x|``; a zero scale is replaced by 1.
    """
    ref = np.abs(np.asarray(x, dtype=float)) if scale is None else np.asarray(scale, dtype=float)
    return CENTRAL_STEP * np.where(ref > 0, ref, 1.0)


def central_partial(fun: Callable[[Any], Any], point: Any, key: Any, h: Any,
                    lo: Any = -np.inf, hi: Any = np.inf) -> np.ndarray:
    """Central difference of ``fun`` at ``point`` by the entry ``key``.

    Parameters
    ----------
    fun : callable
        ``fun(point) -> value`` (a float or an array).
    point : mapping or ndarray
        The values: a mapping (``key`` a name) or a 1-d array (``key`` an index).
        It is not modified.
    key : str or int
        The entry to differentiate by; its value may be a float or an array
        (one value per curve), ``h``, ``lo`` and ``hi`` broadcast against it.
    h : float or ndarray
        The step (:func:`central_step`).
    lo, hi : float or ndarray
        Bounds the perturbed entry never leaves: at a bound the difference is
        one-sided, into the box.

    Returns
    -------
    ndarray
        ``(fun(up) - fun(down)) / (up - down)`` with the steps actually taken.
    """
    v = np.asarray(point[key], dtype=float)
    up, down = np.minimum(v + h, hi), np.maximum(v - h, lo)
    diff = (np.asarray(fun(_with(point, key, up)), dtype=float)
            - np.asarray(fun(_with(point, key, down)), dtype=float))
    return diff / (up - down)


def _with(point: Any, key: Any, value: np.ndarray) -> Any:
    """A copy of ``point`` with ``point[key] = value``."""
    if isinstance(point, Mapping):
        return {**point, key: value}
    out = np.array(point, dtype=float)
    out[key] = value
    return out
