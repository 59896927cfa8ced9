"""Vectorized Levenberg-Marquardt: every curve of a chunk advances together.

The kernel knows nothing of parameters, bounds or models: it minimizes
``sum(resid(theta)**2)`` independently for each row of ``theta``. Each curve
has its own damping, scaling, counters and convergence tests, which follow
MINPACK's ``lmder``/``lmdif`` (same meaning of ``ftol``, ``xtol``, ``gtol``,
``max_nfev`` and the ``nfev`` count), with the trust-region subproblem
replaced by a Marquardt damping parameter adapted by the gain ratio
(Nielsen's update). Curves that stop leave the active set, so the work
shrinks as the chunk converges; curves are processed in blocks that stay in
cache. No curve's numbers depend on the other curves in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from batchfit.batch.linalg import _cho_solve_t, _cholesky_t, gram
from batchfit.status import Status

__all__ = ["LMResult", "solve"]

EPS = np.finfo(np.float64).eps
MU_START = 1e-3
"""Initial damping, relative to the squared column scales."""
MU_MIN, MU_MAX = 1e-15, 1e100
ACCEPT_RATIO = 1e-4
"""A step is taken when actual/predicted reduction reaches this (MINPACK's p0001)."""
MAX_FAIL = 10
"""Consecutive non-finite trial residuals after which a curve is a MODEL_ERROR."""
BLOCK_SIZE = 512
"""Curves per block: the arrays of one block fit in cache."""

ResidFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
JacFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class LMResult:
    """Outcome of :func:`solve` for ``n`` curves with ``k`` parameters.

    Attributes
    ----------
    theta : ndarray, shape (n, k)
        Final parameters (the last accepted point).
    cost : ndarray, shape (n,)
        ``sum(r**2)`` at `theta` (non-finite for a bad start).
    nfev : ndarray of int32, shape (n,)
        Residual evaluations, MINPACK style: ``k`` per finite-difference
        Jacobian, none for analytic Jacobians or for `jac_at_solution`.
    status : ndarray of int8, shape (n,)
        :class:`batchfit.status.Status` codes: CONVERGED, MAX_NFEV or
        MODEL_ERROR.
    niter : ndarray of int32, shape (n,)
        Damped steps tried.
    jac_at_solution : ndarray, shape (n, npts, k) or None
        Jacobian freshly evaluated at `theta` (NaN for a bad start).
    resid_at_solution : ndarray, shape (n, npts)
        Residuals at `theta`.
    gram_at_solution : ndarray, shape (n, k, k) or None
        ``J^T J`` of a fresh Jacobian at `theta` (``return_gram=True``): all a
        covariance needs, without keeping the ``(n, npts, k)`` Jacobian.
    """

    theta: np.ndarray
    cost: np.ndarray
    nfev: np.ndarray
    status: np.ndarray
    niter: np.ndarray
    jac_at_solution: np.ndarray | None
    resid_at_solution: np.ndarray
    gram_at_solution: np.ndarray | None = None


@dataclass(frozen=True)
class _Options:
    resid: ResidFn
    jac: JacFn | None
    ftol: float
    xtol: float
    gtol: float
    max_nfev: int
    rel_step: float


def solve(
    resid: ResidFn,
    theta0: np.ndarray,
    *,
    jac: JacFn | None = None,
    ftol: float = 1e-10,
    xtol: float = 1e-10,
    gtol: float = 0.0,
    max_nfev: int | None = None,
    diff_step: float | None = None,
    block_size: int = BLOCK_SIZE,
    return_jac: bool = True,
    return_gram: bool = False,
) -> LMResult:
    """Minimize ``sum(resid(theta)**2)`` for every row of `theta0` at once.

    Parameters
    ----------
    resid : callable
        ``resid(theta, idx) -> r``: `theta` (m, k) parameter rows of the curves
        with indices `idx` (int array into ``0..n-1``); returns (m, npts)
        weighted residuals. A row with any non-finite value means the model
        failed there. Exceptions propagate.
    theta0 : ndarray, shape (n, k)
        Starting points.
    jac : callable, optional
        ``jac(theta, idx, r) -> J`` (m, npts, k), ``d r / d theta``. When None
        the kernel uses forward differences, one `resid` call per column.
    ftol : float, optional
        Stop when both the actual and the predicted relative reduction of the
        sum of squares are at most `ftol` (MINPACK).
    xtol : float, optional
        Stop when the scaled step is at most ``xtol * |D theta|`` (MINPACK).
    gtol : float, optional
        Stop when the cosine between the residual and every Jacobian column is
        at most `gtol` (MINPACK). A zero residual always converges.
    max_nfev : int, optional
        Residual evaluations allowed per curve; default ``200 * (k + 1)``.
    diff_step : float, optional
        Relative forward-difference step; default ``sqrt(eps)`` (MINPACK's
        default ``epsfcn``). The step is ``diff_step * |theta_j|``, or
        ``diff_step`` where ``theta_j == 0``.
    block_size : int, optional
        Curves advanced together; results do not depend on it.
    return_jac : bool, optional
        Evaluate `jac_at_solution` (one extra Jacobian per curve, not counted
        in `nfev`).
    return_gram : bool, optional
        Evaluate `gram_at_solution` block by block, while the block is in cache.

    Returns
    -------
    LMResult

    Raises
    ------
    ValueError
        If `theta0` is not 2-D or `resid`/`jac` return arrays of the wrong shape.

    Notes
    -----
    Tolerances below machine epsilon are raised to it, so "no further
    reduction possible" (MINPACK's info 6-8) counts as CONVERGED.
    """
    theta0 = np.array(theta0, dtype=np.float64, order="C", ndmin=2)
    if theta0.ndim != 2:
        raise ValueError(f"theta0 must be 2-D (n, k); got shape {theta0.shape}")
    n, k = theta0.shape
    opts = _Options(
        resid=resid,
        jac=jac,
        ftol=max(float(ftol), EPS),
        xtol=max(float(xtol), EPS),
        gtol=max(float(gtol), EPS),
        max_nfev=200 * (k + 1) if max_nfev is None else int(max_nfev),
        rel_step=np.sqrt(EPS) if diff_step is None else float(diff_step),
    )
    out = None
    grams = np.full((n, k, k), np.nan) if return_gram else None
    for start in range(0, max(n, 1), max(int(block_size), 1)):
        idx = np.arange(start, min(start + block_size, n))
        block = _solve_block(opts, theta0[idx], idx)
        out = _Output.allocate(n, k, block.resid.shape[1]) if out is None else out
        out.store(idx, block)
        if return_gram:
            good = np.flatnonzero(np.isfinite(block.cost))
            if good.size:
                jac = _jacobian(opts, block.theta[good], idx[good], block.resid[good])[0]
                grams[idx[good]] = gram(jac)
    if return_jac:
        out.jac = _final_jacobian(opts, out)
    result = out.result()
    result.gram_at_solution = grams
    return result


@dataclass
class _Output:
    """Result arrays for all curves (also used for one block)."""

    theta: np.ndarray
    cost: np.ndarray
    nfev: np.ndarray
    status: np.ndarray
    niter: np.ndarray
    resid: np.ndarray
    jac: np.ndarray | None = None

    @classmethod
    def allocate(cls, n: int, k: int, npts: int) -> _Output:
        return cls(
            theta=np.empty((n, k)),
            cost=np.empty(n),
            nfev=np.zeros(n, dtype=np.int32),
            status=np.full(n, Status.NOT_RUN, dtype=np.int8),
            niter=np.zeros(n, dtype=np.int32),
            resid=np.empty((n, npts)),
        )

    def store(self, rows: np.ndarray, other: _Output) -> None:
        for name in ("theta", "cost", "nfev", "status", "niter", "resid"):
            getattr(self, name)[rows] = getattr(other, name)

    def result(self) -> LMResult:
        return LMResult(
            self.theta, self.cost, self.nfev, self.status, self.niter, self.jac, self.resid
        )


@dataclass
class _Active:
    """State of the curves of one block that are still iterating."""

    pos: np.ndarray  # row in the block
    idx: np.ndarray  # curve index passed to resid/jac
    theta: np.ndarray  # (m, k)
    cost: np.ndarray  # (m,)
    a: np.ndarray  # (m, k, k) J^T J
    g: np.ndarray  # (m, k) J^T r
    d2: np.ndarray  # (m, k) squared scales: running max of column norms squared
    mu: np.ndarray
    nu: np.ndarray
    nfail: np.ndarray

    def take(self, keep: np.ndarray) -> _Active:
        return _Active(**{f: getattr(self, f)[keep] for f in self.__dataclass_fields__})


def _evaluate(opts: _Options, theta: np.ndarray, idx: np.ndarray) -> np.ndarray:
    r = np.ascontiguousarray(opts.resid(theta, idx), dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != theta.shape[0]:
        raise ValueError(
            f"resid must return shape (m, npts) with m={theta.shape[0]}; got {r.shape}"
        )
    return r


def _jacobian(opts: _Options, theta: np.ndarray, idx: np.ndarray, r: np.ndarray):
    """Jacobian (m, npts, k) and the residual evaluations it cost per curve."""
    m, k = theta.shape
    if opts.jac is not None:
        jac = np.asarray(opts.jac(theta, idx, r), dtype=np.float64)
        if jac.shape != (m, r.shape[1], k):
            raise ValueError(f"jac must return shape {(m, r.shape[1], k)}; got {jac.shape}")
        return jac, 0
    jac = np.empty((m, r.shape[1], k))
    for j in range(k):
        h = opts.rel_step * np.abs(theta[:, j])
        h[h == 0.0] = opts.rel_step
        shifted = theta.copy()
        shifted[:, j] += h
        jac[:, :, j] = (_evaluate(opts, shifted, idx) - r) / h[:, None]
    return jac, k


def _linearize(opts, state: _Active, rows, r, d2_old=None):
    """New J^T J, J^T r, scales and gtol test for `rows` of `state` (in place).

    Returns (ok, gconv, nfev_used): Jacobian finite, gradient test met.
    """
    jac, used = _jacobian(opts, state.theta[rows], state.idx[rows], r)
    a, g = gram(jac, r)
    cn2 = np.diagonal(a, axis1=1, axis2=2).copy()
    d2 = np.where(cn2 > 0.0, cn2, 1.0) if d2_old is None else np.maximum(d2_old, cn2)
    state.a[rows], state.g[rows], state.d2[rows] = a, g, d2
    ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(g).all(axis=1)
    cost = state.cost[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.abs(g) / np.sqrt(cn2 * cost[:, None])
    cos[cn2 == 0.0] = 0.0
    gconv = (cost == 0.0) | (np.max(cos, axis=1) <= opts.gtol)
    return ok, gconv & ok, used


def _start(opts: _Options, theta0: np.ndarray, idx: np.ndarray):
    """Evaluate the start; return block output and the active state."""
    m, k = theta0.shape
    r = _evaluate(opts, theta0, idx)
    out = _Output.allocate(m, k, r.shape[1])
    out.theta[:], out.resid[:], out.nfev[:] = theta0, r, 1
    with np.errstate(over="ignore", invalid="ignore"):
        out.cost[:] = np.square(r).sum(axis=1)
    out.status[:] = Status.MODEL_ERROR
    live = np.flatnonzero(np.isfinite(out.cost))
    state = _Active(
        pos=live,
        idx=idx[live],
        theta=theta0[live],
        cost=out.cost[live],
        a=np.empty((live.size, k, k)),
        g=np.empty((live.size, k)),
        d2=np.empty((live.size, k)),
        mu=np.full(live.size, MU_START),
        nu=np.full(live.size, 2.0),
        nfail=np.zeros(live.size, dtype=np.int32),
    )
    if live.size:
        ok, gconv, used = _linearize(opts, state, slice(None), r[live])
        out.nfev[live] += used
        out.status[live[gconv]] = Status.CONVERGED
        state = state.take(ok & ~gconv)
    return out, state


def _solve_block(opts: _Options, theta0: np.ndarray, idx: np.ndarray) -> _Output:
    out, state = _start(opts, theta0, idx)
    # Guard against a curve that never gets a usable step (cannot happen with
    # finite J^T J because the damping grows until the system is definite).
    max_iter = 4 * opts.max_nfev + 100
    while state.pos.size:
        state = _iterate(opts, state, out, max_iter)
    return out


def _damped_step(state: _Active):
    """Solve (A + mu D^2) p = -g in scaled variables; return p, |Dp|^2, pred, ok.

    The k x k algebra runs on batch-last copies, so every operation is on
    contiguous length-m vectors and sums over k are explicit sequential loops.
    """
    dinv = 1.0 / np.sqrt(state.d2.T)  # (k, m)
    scaled = np.ascontiguousarray(state.a.transpose(1, 2, 0))
    scaled *= dinv[:, None, :]
    scaled *= dinv[None, :, :]
    diag = np.arange(scaled.shape[0])
    scaled[diag, diag] += state.mu
    gs = state.g.T * dinv
    low, ok = _cholesky_t(scaled)
    ps = _cho_solve_t(low, gs)
    np.negative(ps, out=ps)
    pnorm2 = _dot_t(ps, ps)
    pred = state.mu * pnorm2 - _dot_t(ps, gs)  # = |r|^2 - |r + J p|^2
    return (ps * dinv).T, pnorm2, pred, ok


def _dot_t(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Column dot products of (k, m) arrays, summed in a fixed order."""
    out = u[0] * v[0]
    for j in range(1, u.shape[0]):
        out += u[j] * v[j]
    return out


def _iterate(opts: _Options, state: _Active, out: _Output, max_iter: int) -> _Active:
    """One damped step for every active curve; return the still-active state."""
    p, pnorm2, pred, ok = _damped_step(state)
    out.niter[state.pos] += 1
    ev = np.flatnonzero(ok)
    trial = state.theta[ev] + p[ev]
    r = _evaluate(opts, trial, state.idx[ev])
    out.nfev[state.pos[ev]] += 1
    cost = state.cost[ev]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cost_t = np.square(r).sum(axis=1)
        finite = np.isfinite(cost_t)
        actred = np.where(cost_t < 100.0 * cost, 1.0 - cost_t / cost, -1.0)
        prered = pred[ev] / cost
        ratio = np.where(prered > 0.0, actred / prered, 0.0)
    accept = finite & (ratio >= ACCEPT_RATIO)

    mu, nu = state.mu, state.nu
    grow = np.ones(mu.size, dtype=bool)
    grow[ev[accept]] = False
    shrink = np.maximum(1.0 / 3.0, 1.0 - (2.0 * ratio[accept] - 1.0) ** 3)
    mu[ev[accept]] *= shrink
    nu[ev[accept]] = 2.0
    mu[grow] *= nu[grow]
    nu[grow] *= 2.0
    np.clip(mu, MU_MIN, MU_MAX, out=mu)
    np.minimum(nu, 1e10, out=nu)
    state.nfail[ev] = np.where(finite, 0, state.nfail[ev] + 1)

    acc = ev[accept]
    state.theta[acc] = trial[accept]
    state.cost[acc] = cost_t[accept]
    out.resid[state.pos[acc]] = r[accept]

    xnorm = np.sqrt((np.square(state.theta[ev]) * state.d2[ev]).sum(axis=1))
    conv = finite & (
        ((np.abs(actred) <= opts.ftol) & (prered <= opts.ftol) & (ratio <= 2.0))
        | (np.sqrt(pnorm2[ev]) <= opts.xtol * xnorm)
    )
    status = np.full(mu.size, -1, dtype=np.int8)
    status[ev[conv]] = Status.CONVERGED
    nfev = out.nfev[state.pos]
    status[(status < 0) & (nfev >= opts.max_nfev)] = Status.MAX_NFEV
    status[(status < 0) & (state.nfail >= MAX_FAIL)] = Status.MODEL_ERROR
    status[(status < 0) & (out.niter[state.pos] >= max_iter)] = Status.MAX_NFEV

    relin = acc[status[acc] < 0]
    if relin.size:
        jok, gconv, used = _linearize(
            opts, state, relin, r[accept][status[acc] < 0], state.d2[relin]
        )
        out.nfev[state.pos[relin]] += used
        status[relin[~jok]] = Status.MODEL_ERROR
        status[relin[gconv]] = Status.CONVERGED
    return _retire(state, out, status)


def _retire(state: _Active, out: _Output, status: np.ndarray) -> _Active:
    """Write finished curves to `out` and drop them from the active set."""
    done = status >= 0
    if not done.any():
        return state
    pos = state.pos[done]
    out.theta[pos] = state.theta[done]
    out.cost[pos] = state.cost[done]
    out.status[pos] = status[done]
    return state.take(~done)


def _final_jacobian(opts: _Options, out: _Output) -> np.ndarray:
    """Fresh Jacobian at every final theta; NaN where the start was bad."""
    n, k = out.theta.shape
    jac = np.empty((n, out.resid.shape[1], k))
    good = np.isfinite(out.cost)
    jac[~good] = np.nan
    for start in range(0, n, BLOCK_SIZE):
        rows = slice(start, min(start + BLOCK_SIZE, n))
        if not good[rows].all():
            rows = np.arange(rows.start, rows.stop)[good[rows]]
        theta = out.theta[rows]
        if len(theta):
            jac[rows] = _jacobian(opts, theta, np.arange(n)[rows], out.resid[rows])[0]
    return jac
