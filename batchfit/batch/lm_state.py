"""State of the active curves of the batched Levenberg-Marquardt, and its damped step.

The equations are in :mod:`batchfit.batch.lm`. Here: the explicit state (a
dataclass of per-curve arrays), the linearization update and the projected,
scaled, damped step with its active set.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from batchfit.batch.linalg import solve_stack
from batchfit.batch.lm_rules import (
    COLLAPSE,
    CREEP_START,
    GROWTH,
    MU_MAX,
    MU_START,
    RADIUS_NEWTON,
    WINDOW,
    creeping,
)
from batchfit.status import Status

__all__ = ["LMOutput", "LMState", "Step", "damped_step", "free_mask", "linearize",
           "progress_check"]


@dataclass
class LMState:
    """Per-curve arrays of the ``m`` curves still iterating (``k`` parameters).

    Attributes
    ----------
    idx : ndarray of int, shape (m,)
        Curve indices (rows of the caller's problem and of the output).
    theta : ndarray, shape (m, k)
        Current point (always inside ``[lo, hi]``).
    cost : ndarray, shape (m,)
    a : ndarray, shape (m, k, k)
        ``J^T J`` at `theta`.
    g : ndarray, shape (m, k)
        ``J^T r`` at `theta`.
    cn2 : ndarray, shape (m, k)
        Squared column norms of ``J`` at `theta` (the diagonal of `a`).
    d2 : ndarray, shape (m, k)
        Squared scales ``D^2``: running maximum of `cn2` (MINPACK's ``diag``).
    mu, nu : ndarray, shape (m,)
        Damping and its growth factor.
    nfail : ndarray of int32, shape (m,)
        Consecutive trials with a non-finite cost.
    lo, hi : ndarray, shape (m, k)
        Bounds (``-inf``/``inf`` when absent).
    ref : ndarray, shape (m, k)
        ``max(|theta0|, 1)``, the yardstick of a runaway parameter.
    size0 : ndarray, shape (m, k)
        ``|theta0|``, the yardstick of a collapsed one.
    mark_cost, mark_iter : ndarray, shape (m,)
        Cost and iteration count at the start of the progress window.
    radius : ndarray, shape (m,)
        Trust-region bound on the scaled step ``|D p|`` (see :func:`damped_step`).
    """

    idx: np.ndarray
    theta: np.ndarray
    cost: np.ndarray
    a: np.ndarray
    g: np.ndarray
    cn2: np.ndarray
    d2: np.ndarray
    mu: np.ndarray
    nu: np.ndarray
    nfail: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    ref: np.ndarray
    size0: np.ndarray
    mark_cost: np.ndarray
    mark_iter: np.ndarray
    radius: np.ndarray

    @classmethod
    def start(cls, idx, theta, cost, lo, hi) -> LMState:
        """State at the starting points (the linearization is filled by :func:`linearize`)."""
        m, k = theta.shape
        return cls(idx=idx, theta=theta, cost=cost, a=np.empty((m, k, k)), g=np.empty((m, k)),
                   cn2=np.empty((m, k)), d2=np.zeros((m, k)), mu=np.full(m, MU_START),
                   nu=np.full(m, 2.0), nfail=np.zeros(m, dtype=np.int32), lo=lo, hi=hi,
                   ref=np.maximum(np.abs(theta), 1.0), size0=np.abs(theta), mark_cost=cost.copy(),
                   mark_iter=np.zeros(m, dtype=np.int32), radius=np.full(m, np.inf))

    @property
    def size(self) -> int:
        """Number of curves."""
        return self.idx.shape[0]

    def take(self, keep: np.ndarray) -> LMState:
        """Select the curves `keep` (bool mask or indices) into a new state."""
        return LMState(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def join(self, other: LMState) -> LMState:
        """Concatenate `other`'s curves after these."""
        return LMState(**{f.name: np.concatenate([getattr(self, f.name),
                                                  getattr(other, f.name)])
                          for f in fields(self)})


@dataclass
class LMOutput:
    """Result arrays for all curves, written as curves stop."""

    theta: np.ndarray
    cost: np.ndarray
    nfev: np.ndarray
    status: np.ndarray
    niter: np.ndarray
    resid: np.ndarray | None
    gram: np.ndarray | None
    keep_resid: bool
    jac: np.ndarray | None = None

    @classmethod
    def allocate(cls, n: int, k: int, gram: bool, resid: bool) -> LMOutput:
        """Arrays for `n` curves of `k` parameters; keep ``J^T J`` and residuals if asked."""
        return cls(theta=np.empty((n, k)), cost=np.empty(n), nfev=np.zeros(n, dtype=np.int32),
                   status=np.full(n, Status.NOT_RUN, dtype=np.int8),
                   niter=np.zeros(n, dtype=np.int32), resid=None,
                   gram=np.full((n, k, k), np.nan) if gram else None, keep_resid=resid)

    def start(self, idx, theta, r, cost) -> None:
        """Record the starting evaluation of curves `idx`."""
        if self.keep_resid and self.resid is None:
            self.resid = np.empty((self.theta.shape[0], r.shape[1]))
        if self.resid is not None:
            self.resid[idx] = r
        self.theta[idx], self.cost[idx], self.nfev[idx] = theta, cost, 1
        self.status[idx] = Status.MODEL_ERROR  # until the curve iterates and stops

    def fields(self) -> tuple:
        """``theta, cost, nfev, status, niter, jac, resid, gram`` (resid never None)."""
        resid = self.resid if self.resid is not None else np.empty((self.theta.shape[0], 0))
        return (self.theta, self.cost, self.nfev, self.status, self.niter, self.jac, resid,
                self.gram)


def free_mask(theta, g, lo, hi) -> np.ndarray:
    """Mark the parameters not held at a bound.

    Held (the active set): at a bound, with the descent direction ``-g``
    pointing out of the box.
    """
    return ~(((theta <= lo) & (g > 0.0)) | ((theta >= hi) & (g < 0.0)))


def linearize(state: LMState, rows, a: np.ndarray, g: np.ndarray,
              running: bool = True) -> np.ndarray:
    """Store ``J^T J`` and ``J^T r`` for `rows` of `state`; update the scales.

    With `running` the scales are the running maximum of the column norms
    (MINPACK); without, the current column norms (Marquardt's scaling), a
    column that vanished keeping its previous scale.

    Returns
    -------
    ok : ndarray of bool
        Both are finite.
    """
    cn2 = np.diagonal(a, axis1=1, axis2=2).copy()
    d2 = np.maximum(state.d2[rows], cn2) if running else np.where(cn2 > 0.0, cn2,
                                                                      state.d2[rows])
    state.a[rows], state.g[rows], state.cn2[rows] = a, g, cn2
    state.d2[rows] = np.where(d2 > 0.0, d2, 1.0)
    with np.errstate(invalid="ignore"):
        return np.isfinite(a).all(axis=(1, 2)) & np.isfinite(g).all(axis=1)


@dataclass(frozen=True)
class Step:
    """A damped step for every curve of a state."""

    trial: np.ndarray  # (m, k) theta + p, projected onto the box
    step_norm: np.ndarray  # |D p|
    pred: np.ndarray  # predicted reduction |r|^2 - |r + J p|^2
    ok: np.ndarray  # the damped system was positive definite
    capped: np.ndarray  # the step was shortened to the trust radius


def damped_step(state: LMState) -> Step:
    """Solve ``(A_F + mu D_F^2) p_F = -g_F`` over the free set; bound it; project onto the box.

    In the scaled variables ``D p`` the system matrix has a unit-free
    diagonal; held parameters get the rows of ``mu * I`` and a zero right-hand
    side, so ``p_j = 0``. One LAPACK solve per curve: the Python cost of a
    step does not grow with the number of parameters, and a curve's numbers
    never depend on the other curves. A step longer than the trust radius
    (``|D p| > radius``) is shortened to it along the same direction.
    """
    free = free_mask(state.theta, state.g, state.lo, state.hi)
    dinv = 1.0 / np.sqrt(state.d2)
    scaled = state.a * dinv[:, :, None]
    scaled *= dinv[:, None, :]
    if not free.all():  # held rows and columns become mu * identity: p_j = 0
        scaled *= free[:, :, None] & free[:, None, :]
    diag = np.arange(scaled.shape[-1])
    scaled[:, diag, diag] += state.mu[:, None]
    gs = state.g * dinv * free
    ps, ok = solve_stack(scaled, -gs)
    with np.errstate(invalid="ignore"):
        capped = ok & (np.vecdot(ps, ps) > state.radius * state.radius)
    if capped.any():
        _fit_radius(state, scaled, gs, ps, np.flatnonzero(capped))
    pnorm2 = np.vecdot(ps, ps)
    gp = np.vecdot(ps, gs)
    pred = state.mu * pnorm2 - gp  # = |r|^2 - |r + J p|^2
    with np.errstate(invalid="ignore"):
        long = capped & (pnorm2 > state.radius * state.radius)
    if long.any():
        _shorten(state, ps, pnorm2, gp, pred, long)
    free_step = state.theta + ps * dinv
    trial = np.clip(free_step, state.lo, state.hi)
    clipped = np.flatnonzero(np.any(trial != free_step, axis=1) & ok)
    step_norm = np.sqrt(pnorm2)
    if clipped.size:
        _projected(state, trial, clipped, step_norm, pred)
    return Step(trial, step_norm, pred, ok, capped)


def _fit_radius(state: LMState, scaled, gs, ps, rows) -> None:
    """Raise ``mu`` of `rows` until ``|p| ~ radius``; new steps in `ps`, ``mu`` in `state`.

    Newton's method on ``1/|p(mu)| = 1/radius`` (Moré 1978, MINPACK
    ``lmpar``; Nocedal & Wright, Algorithm 4.3): with ``z = (S + mu I)^-1 p``,
    ``mu += (|p|^2 / p.z) (|p| - radius) / radius``. ``RADIUS_NEWTON`` steps;
    a row still too long is shortened by the caller.
    """
    mat, g, p = scaled[rows], gs[rows], ps[rows]
    mu, radius = state.mu[rows], state.radius[rows]
    diag = np.arange(mat.shape[-1])
    for _ in range(RADIUS_NEWTON):
        z, ok = solve_stack(mat, p)
        pp = np.vecdot(p, p)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            raise_by = pp / np.vecdot(p, z) * (np.sqrt(pp) - radius) / radius
        raise_by = np.where(ok & (raise_by > 0.0) & np.isfinite(raise_by), raise_by, 0.0)
        mat[:, diag, diag] += raise_by[:, None]
        p_new, ok = solve_stack(mat, -g)
        p = np.where(ok[:, None], p_new, p)
        mu = mu + np.where(ok, raise_by, 0.0)
    ps[rows], state.mu[rows] = p, np.minimum(mu, MU_MAX)


def _shorten(state: LMState, ps, pnorm2, gp, pred, rows) -> None:
    """Scale the steps of `capped` rows to the trust radius; their |p|^2 and pred (in place).

    With ``t`` the factor and ``(A + mu I) p = -g`` in scaled variables,
    ``p^T A p = -g.p - mu |p|^2``, so the predicted reduction of ``t p`` is
    ``-2 t g.p + t^2 (g.p + mu |p|^2)`` (no further product with ``A``).
    """
    rows = np.flatnonzero(rows)
    t = state.radius[rows] / np.sqrt(pnorm2[rows])
    ps[rows] *= t[:, None]
    quad = gp[rows] + state.mu[rows] * pnorm2[rows]
    pred[rows] = t * (t * quad - 2.0 * gp[rows])
    pnorm2[rows] = state.radius[rows] ** 2


def _projected(state: LMState, trial, rows, step_norm, pred) -> None:
    """Step norm and predicted reduction of the projected step, for `rows` (in place).

    With ``p`` the clipped step: ``pred = -2 g.p - p^T A p``.
    """
    p = trial[rows] - state.theta[rows]
    ap = np.vecdot(state.a[rows], p[:, None, :])
    step_norm[rows] = np.sqrt(np.vecdot(p * p, state.d2[rows]))
    pred[rows] = -2.0 * np.vecdot(state.g[rows], p) - np.vecdot(p, ap)


def progress_check(state: LMState, niter: np.ndarray) -> np.ndarray:
    """:func:`creeping` for curves at the end of a window; start their next window.

    Running off: a parameter beyond ``GROWTH * max(|theta0|, 1)``, or one off its
    bounds that fell below ``COLLAPSE * |theta0|`` (towards 0, as MGH10's ``b1``).
    """
    out = np.zeros(state.size, dtype=bool)
    due = np.flatnonzero(niter - state.mark_iter >= WINDOW)
    if due.size:
        theta, lo, hi = state.theta[due], state.lo[due], state.hi[due]
        with np.errstate(invalid="ignore"):
            grown = np.abs(theta) > GROWTH * state.ref[due]
            fell = (np.abs(theta) < COLLAPSE * state.size0[due]) & (theta > lo) & (theta < hi)
        grown = np.any(grown | fell, axis=1) & (niter[due] >= CREEP_START)
        out[due] = creeping(state.cost[due], state.mark_cost[due], grown)
        state.mark_cost[due], state.mark_iter[due] = state.cost[due], niter[due]
    return out


def box_inputs(theta0, lower, upper) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`theta0` as float (n, k) clipped to the bounds, and the bounds broadcast to it."""
    theta0 = np.array(theta0, dtype=np.float64, order="C", ndmin=2)
    if theta0.ndim != 2:
        raise ValueError(f"theta0 must be 2-D (n, k); got shape {theta0.shape}")
    try:
        lo = np.broadcast_to(np.asarray(-np.inf if lower is None else lower, float), theta0.shape)
        hi = np.broadcast_to(np.asarray(np.inf if upper is None else upper, float), theta0.shape)
    except ValueError:
        raise ValueError(f"lower/upper must broadcast to theta0's shape {theta0.shape}; got "
                         f"{np.shape(lower)} and {np.shape(upper)}") from None
    if np.any(lo > hi) or np.isnan(lo).any() or np.isnan(hi).any():
        raise ValueError("lower must not exceed upper, and neither may be NaN")
    return np.clip(theta0, lo, hi), lo, hi
