"""The pure rules of the batched Levenberg-Marquardt: gain ratio, damping, stopping.

Every function here works elementwise on per-curve arrays and has no state;
:mod:`batchfit.batch.lm` gives the equations and the references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batchfit.status import Status

__all__ = [
    "ACCEPT_RATIO",
    "FLAT_RTOL",
    "MAX_FAIL",
    "MU_MAX",
    "MU_MIN",
    "MU_STALL",
    "MU_START",
    "RADIUS_NEWTON",
    "RUNAWAY",
    "STEP_BOUND",
    "Tolerances",
    "TrialReport",
    "check_linearization",
    "check_termination",
    "creeping",
    "gain_ratio",
    "initial_radius",
    "update_damping",
    "update_radius",
]

EPS = float(np.finfo(np.float64).eps)
MU_START = 1e-3
"""Initial damping, relative to the squared column scales."""
MU_MIN, MU_MAX = 1e-15, 1e100
MU_STALL = 1e8
"""A step rejected at this damping (steps 1e-8 of the scaled gradient step) with the
cost unchanged (``|actred| <= FLAT_COST``) means the cost is flat where its linear
model says it should fall: STALLED, not MINPACK's "converged"."""
FLAT_COST = 100 * EPS
"""Relative change of the cost that counts as none."""
NU_MAX = 1e10
ACCEPT_RATIO = 1e-4
"""A step is taken when actual/predicted reduction reaches this (MINPACK's p0001)."""
MAX_FAIL = 10
"""Consecutive non-finite trial residuals after which a curve is a MODEL_ERROR."""
RUNAWAY = 1e10
"""A parameter beyond ``RUNAWAY * max(|start|, 1)`` is running away: STALLED."""
WINDOW = 25
"""Iterations between two progress checks of a curve (see :func:`creeping`)."""
MIN_PROGRESS = 0.05
"""Fraction of the cost a window must remove while the parameters run off."""
GROWTH = 100.0
"""Growth of a parameter over ``max(|theta0|, 1)`` that, with a flat cost, is running off."""
COLLAPSE = 1e-10
"""Fall of a parameter below ``|theta0|`` (off its bounds) that, with a flat cost, is
running off towards 0: the mirror of ``RUNAWAY``'s growth, in a valley without end."""
CREEP_START = 150
"""Iterations before :func:`creeping` may stop a curve: a slow valley that ends in a
minimum (MINPACK's tests) is usually done by then."""
STEP_BOUND = 1.0
"""Initial trust radius on the scaled step, relative to ``|D theta0|`` (MINPACK's ``factor``,
whose default 100 lets BoxBOD's first step saturate the model; scipy's ``trf`` uses 1)."""
RADIUS_SHRINK, RADIUS_GROW = 0.25, 2.0
"""Trust radius update of a step it bounded: shrink when the gain ratio is under 1/4,
grow when it is over 3/4 (the classical thresholds, as scipy's ``trf``)."""
RADIUS_NEWTON = 2
"""Newton steps on ``mu`` that fit a step longer than the trust radius to it."""
FLAT_RTOL = 1e-16
"""Squared column norm below this fraction of its running maximum counts as zero."""
GO_ON = -1
"""Status value of a curve that keeps iterating."""


@dataclass(frozen=True)
class Tolerances:
    """Stopping tolerances (MINPACK's meaning) and the evaluation budget."""

    ftol: float
    xtol: float
    gtol: float
    max_nfev: int
    max_iter: int

    @classmethod
    def make(cls, ftol: float, xtol: float, gtol: float, max_nfev: int) -> Tolerances:
        """Tolerances below machine epsilon raised to it; the iteration guard from `max_nfev`."""
        return cls(max(float(ftol), EPS), max(float(xtol), EPS), max(float(gtol), EPS),
                   int(max_nfev), 4 * int(max_nfev) + 100)


@dataclass(frozen=True)
class TrialReport:
    """What one damped step did, per curve (length-m arrays).

    ``actred``, ``prered`` and ``ratio`` are NaN where no trial was evaluated.
    """

    actred: np.ndarray  # actual relative reduction 1 - cost_t / cost
    prered: np.ndarray  # predicted relative reduction
    ratio: np.ndarray  # gain ratio actred / prered
    step_norm: np.ndarray  # |D p|
    x_norm: np.ndarray  # |D theta|
    finite: np.ndarray  # the trial cost was finite
    accepted: np.ndarray
    runaway: np.ndarray  # parameters non-finite or beyond RUNAWAY
    creeping: np.ndarray  # cost flat over a window while the parameters ran off
    mu: np.ndarray  # damping after the update
    nfev: np.ndarray
    niter: np.ndarray
    nfail: np.ndarray


def gain_ratio(cost: np.ndarray, cost_trial: np.ndarray, pred: np.ndarray):
    """Relative actual and predicted reductions and their ratio (MINPACK ``lmder``).

    Parameters
    ----------
    cost, cost_trial : ndarray, shape (m,)
        Cost at the current and at the trial point.
    pred : ndarray, shape (m,)
        Reduction predicted by the linear model, ``|r|^2 - |r + J p|^2``.

    Returns
    -------
    actred, prered, ratio : ndarray, shape (m,)
        ``actred = 1 - cost_trial / cost`` (-1 when the trial is 10 times
        worse or not finite), ``prered = pred / cost`` and ``actred /
        prered`` (0 when ``prered <= 0``).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        actred = np.where(cost_trial < 100.0 * cost, 1.0 - cost_trial / cost, -1.0)
        prered = pred / cost
        ratio = np.where(prered > 0.0, actred / prered, 0.0)
    return actred, prered, ratio


def update_damping(mu: np.ndarray, nu: np.ndarray, accepted: np.ndarray, ratio: np.ndarray):
    """Nielsen's damping update (Madsen, Nielsen & Tingleff 2004, eq. 2.21).

    Accepted: ``mu *= max(1/3, 1 - (2 ratio - 1)^3)``, ``nu = 2``; rejected:
    ``mu *= nu``, ``nu *= 2``. ``mu`` is kept in ``[MU_MIN, MU_MAX]``.

    Parameters
    ----------
    mu, nu : ndarray, shape (m,)
        Current damping and growth factor.
    accepted : ndarray of bool, shape (m,)
    ratio : ndarray, shape (m,)
        Gain ratio of the step (read where accepted only).

    Returns
    -------
    mu, nu : ndarray, shape (m,)
        New arrays; the inputs are not modified.
    """
    with np.errstate(invalid="ignore"):
        t = 2.0 * np.where(accepted, ratio, 1.0) - 1.0
        shrink = np.maximum(1.0 / 3.0, 1.0 - t * t * t)
    mu = np.clip(np.where(accepted, mu * shrink, mu * nu), MU_MIN, MU_MAX)
    nu = np.where(accepted, 2.0, np.minimum(2.0 * nu, NU_MAX))
    return mu, nu


def initial_radius(theta: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Trust radius at the start: ``STEP_BOUND * |D theta0|``; no bound where that is 0.

    Parameters
    ----------
    theta : ndarray, shape (m, k)
        Starting points.
    d2 : ndarray, shape (m, k)
        Squared scales ``D^2`` at the start.

    Returns
    -------
    ndarray, shape (m,)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        size = STEP_BOUND * np.sqrt(np.vecdot(theta * theta, d2))
    return np.where(size > 0.0, size, np.inf)


def update_radius(radius: np.ndarray, step_norm: np.ndarray, capped: np.ndarray,
                  ratio: np.ndarray) -> np.ndarray:
    """New trust radius after a step; changed only where the radius bounded the step.

    A bounded step (`capped`, ``step_norm == radius`` unless projected onto
    the box) whose gain ratio is under 1/4 (or not finite) shrinks the radius
    to ``RADIUS_SHRINK * step_norm``; one over 3/4 grows it by
    ``RADIUS_GROW``. A step shorter than the radius was set by the damping
    ``mu`` alone, which :func:`update_damping` adjusts.

    Parameters
    ----------
    radius, step_norm : ndarray, shape (m,)
    capped : ndarray of bool, shape (m,)
    ratio : ndarray, shape (m,)
        Gain ratio (NaN where no trial was evaluated).

    Returns
    -------
    ndarray, shape (m,)
        A new array.
    """
    with np.errstate(invalid="ignore"):
        poor = capped & ~(ratio >= 0.25)
        good = capped & (ratio > 0.75)
    radius = np.where(poor, RADIUS_SHRINK * step_norm, radius)
    return np.where(good, RADIUS_GROW * radius, radius)


def check_termination(t: TrialReport, tol: Tolerances) -> np.ndarray:
    """Status of each curve after a damped step; ``GO_ON`` (-1) to keep going.

    In order of precedence: STALLED when parameters run away (non-finite,
    beyond ``RUNAWAY * max(|theta0|, 1)``, or :func:`creeping`) or a step was
    rejected under maximal damping with the cost unchanged (``mu >=
    MU_STALL``, ``|actred| <= FLAT_COST``: the cost is flat where its linear
    model says it should fall; a cost that jumps, at a kink, is left to
    MINPACK's tests); CONVERGED by MINPACK's ``ftol`` test (actual and
    predicted relative reductions at most ``ftol``, ratio at most 2) or
    ``xtol`` test (``|D p| <= xtol |D theta|``) on a finite trial; MODEL_ERROR
    after ``MAX_FAIL`` non-finite trials in a row; MAX_NFEV when the
    evaluation (or iteration) budget is spent.

    Parameters
    ----------
    t : TrialReport
    tol : Tolerances

    Returns
    -------
    status : ndarray of int8, shape (m,)
    """
    with np.errstate(invalid="ignore"):
        ftol = (np.abs(t.actred) <= tol.ftol) & (t.prered <= tol.ftol) & (t.ratio <= 2.0)
        xtol = t.step_norm <= tol.xtol * t.x_norm
    conv = t.finite & (ftol | xtol)
    with np.errstate(invalid="ignore"):
        flat = t.finite & ~t.accepted & (t.mu >= MU_STALL) & (np.abs(t.actred) <= FLAT_COST)
    stall = t.runaway | t.creeping | flat
    spent = (t.nfev >= tol.max_nfev) | (t.niter >= tol.max_iter)
    status = np.full(t.mu.shape, GO_ON, dtype=np.int8)
    for code, hit in ((Status.MAX_NFEV, spent), (Status.MODEL_ERROR, t.nfail >= MAX_FAIL),
                      (Status.CONVERGED, conv), (Status.STALLED, stall)):
        status[hit] = code  # later entries take precedence
    return status


def creeping(cost: np.ndarray, mark_cost: np.ndarray, grown: np.ndarray) -> np.ndarray:
    """Curves sliding down a valley without end: flat cost, parameters running off.

    True when, over the last ``WINDOW`` iterations, the cost fell by less
    than ``MIN_PROGRESS`` of its value at the window's start (``mark_cost``)
    while some parameter has grown beyond ``GROWTH * max(|theta0|, 1)`` or
    fallen below ``COLLAPSE * |theta0|`` (`grown`). Such a curve (a Gaussian
    turning into a parabola with ever larger parameters that cancel, say, or
    MGH10's ``b1 exp(b2 / (x + b3))`` with ``b1 -> 1e-47``) would otherwise creep
    to ``max_nfev``; a curve converging slowly near its start's scale goes on.

    Parameters
    ----------
    cost, mark_cost : ndarray, shape (m,)
    grown : ndarray of bool, shape (m,)

    Returns
    -------
    ndarray of bool, shape (m,)
    """
    with np.errstate(invalid="ignore"):
        return (cost > (1.0 - MIN_PROGRESS) * mark_cost) & grown


def check_linearization(cost: np.ndarray, g: np.ndarray, cn2: np.ndarray, d2: np.ndarray,
                        free: np.ndarray, jac_ok: np.ndarray, gtol: float) -> np.ndarray:
    """Status of each curve at a new linearization point; ``GO_ON`` (-1) to keep going.

    In order of precedence: MODEL_ERROR for a non-finite Jacobian; CONVERGED
    for a zero cost; STALLED when the model went flat (every squared column
    norm at most ``FLAT_RTOL`` times its running maximum); CONVERGED by
    MINPACK's ``gtol`` test on the free parameters (the cosine between the
    residual and each free column at most `gtol`; a curve whose parameters
    are all held at a bound passes it).

    Parameters
    ----------
    cost : ndarray, shape (m,)
    g : ndarray, shape (m, k)
        ``J^T r``.
    cn2, d2 : ndarray, shape (m, k)
        Squared column norms of ``J`` now, and their running maximum.
    free : ndarray of bool, shape (m, k)
        Parameters not held at a bound.
    jac_ok : ndarray of bool, shape (m,)
        The Jacobian and ``J^T r`` are finite.
    gtol : float

    Returns
    -------
    status : ndarray of int8, shape (m,)
    """
    # |g_j| / (|J_j| sqrt(cost)) > gtol, squared: no division, no square root
    with np.errstate(invalid="ignore", over="ignore"):
        above = (g * g > (gtol * gtol) * cn2 * cost[:, None]) & free & (cn2 > 0.0)
    flat = np.all(cn2 <= FLAT_RTOL * d2, axis=1)
    status = np.full(cost.shape, GO_ON, dtype=np.int8)
    for code, hit in ((Status.CONVERGED, ~np.any(above, axis=1)),
                      (Status.STALLED, flat), (Status.CONVERGED, cost == 0.0),
                      (Status.MODEL_ERROR, ~jac_ok)):
        status[hit] = code  # later entries take precedence
    return status
