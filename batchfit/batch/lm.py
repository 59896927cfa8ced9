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

from batchfit.batch.linalg import _cho_solve_t, _cholesky_t, gram_columns
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
ColumnsFn = Callable[[np.ndarray, float], tuple[list, int]]
EvaluateFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ColumnsFn]]


@dataclass
class LMResult:
    """Outcome of :func:`solve` for ``n`` curves with ``k`` parameters.

    Attributes
    ----------
    theta : ndarray, shape (n, k)
        Final parameters (the last accepted point).
    cost : ndarray, shape (n,)
        ``sum(r**2)`` at `theta`, or the cost returned by ``evaluate`` (the
        cost hook); non-finite for a bad start.
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
    evaluate: EvaluateFn
    ftol: float
    xtol: float
    gtol: float
    max_nfev: int
    rel_step: float
    gram: bool  # keep J^T J at the solution
    resid: bool  # keep the residuals at the solution


def solve(
    resid: ResidFn | None,
    theta0: np.ndarray,
    *,
    jac: JacFn | None = None,
    evaluate: EvaluateFn | None = None,
    ftol: float = 1e-10,
    xtol: float = 1e-10,
    gtol: float = 0.0,
    max_nfev: int | None = None,
    diff_step: float | None = None,
    block_size: int = BLOCK_SIZE,
    return_jac: bool = True,
    return_gram: bool = False,
    return_resid: bool = True,
) -> LMResult:
    """Minimize ``sum(resid(theta)**2)`` for every row of `theta0` at once.

    Parameters
    ----------
    resid : callable or None
        ``resid(theta, idx) -> r``: `theta` (m, k) parameter rows of the curves
        with indices `idx` (int array into ``0..n-1``); returns (m, npts)
        weighted residuals. A row with any non-finite value means the model
        failed there. Exceptions propagate. Unused (may be None) when
        `evaluate` is given.
    theta0 : ndarray, shape (n, k)
        Starting points.
    jac : callable, optional
        ``jac(theta, idx, r) -> J`` (m, npts, k), ``d r / d theta``. When None
        the kernel uses forward differences, one `resid` call per column.
    evaluate : callable, optional
        The fused form of `resid` and `jac`: ``evaluate(theta, idx) -> (r,
        columns)`` with ``r`` as `resid` returns it and ``columns(sel,
        rel_step) -> (cols, nfev)`` giving, for the rows ``sel`` (int array
        into ``0..m-1``) of that evaluation, the ``k`` columns of ``d r / d
        theta``, each of shape (len(sel), npts) or (npts,) when it is the same
        for every row, and the residual evaluations this cost (``k`` for
        forward differences with relative step `rel_step`, else 0). The
        Jacobian is only ever asked for at points whose residual was just
        evaluated, so `evaluate` can share work between the two.

        The cost hook: `evaluate` may return a third item, ``cost`` of shape
        (m,), the per-curve objective that the gain ratio, step acceptance
        and ``ftol`` use instead of ``sum(r**2)``. The step still comes from
        ``J^T J`` and ``J^T r`` (Gauss-Newton / Fisher scoring), so ``r`` and
        the columns must be such that ``2 J^T r`` is the gradient of ``cost``
        and ``2 J^T J`` its (expected) Hessian: for the Poisson deviance
        ``2 sum(f - y - y log(f/y))``, ``r = (f - y) / sqrt(f)`` and columns
        ``(df/dtheta) / sqrt(f)``. A row whose ``r`` is not finite counts as
        a failed model whatever its cost.
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
        Keep `gram_at_solution`: ``J^T J`` at the final point of each curve,
        from the last Jacobian evaluated there (one extra Jacobian only for a
        curve that stops on an accepted step; not counted in `nfev`).
    return_resid : bool, optional
        Keep `resid_at_solution` (else it is None).

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
        evaluate=_evaluator(resid, jac, k) if evaluate is None else evaluate,
        ftol=max(float(ftol), EPS),
        xtol=max(float(xtol), EPS),
        gtol=max(float(gtol), EPS),
        max_nfev=200 * (k + 1) if max_nfev is None else int(max_nfev),
        rel_step=np.sqrt(EPS) if diff_step is None else float(diff_step),
        gram=bool(return_gram),
        resid=bool(return_resid or return_jac),
    )
    out = _Output.allocate(n, k, opts)
    bs = max(int(block_size), 1)
    for start in range(0, n, bs):
        rows = slice(start, min(start + bs, n))
        _solve_block(opts, theta0[rows], np.arange(rows.start, rows.stop), out.view(rows))
    if return_jac:
        out.jac = _final_jacobian(opts, out)
    result = out.result()
    if not return_resid:
        result.resid_at_solution = None
    return result


def _evaluator(resid: ResidFn, jac: JacFn | None, k: int) -> EvaluateFn:
    """The ``evaluate`` form of a plain `resid` and `jac` pair."""

    def evaluate(theta, idx):
        r = _checked(resid(theta, idx), theta)

        def columns(sel, rel_step):
            th, ix, rs = theta[sel], idx[sel], r[sel]
            if jac is not None:
                jm = np.asarray(jac(th, ix, rs), dtype=np.float64)
                if jm.shape != (th.shape[0], r.shape[1], k):
                    raise ValueError(
                        f"jac must return shape {(th.shape[0], r.shape[1], k)}; got {jm.shape}"
                    )
                return [jm[:, :, j] for j in range(k)], 0
            cols = []
            for j in range(k):
                h = rel_step * np.abs(th[:, j])
                h[h == 0.0] = rel_step
                shifted = th.copy()
                shifted[:, j] += h
                cols.append((_checked(resid(shifted, ix), shifted) - rs) / h[:, None])
            return cols, k

        return r, columns

    return evaluate


def _checked(r, theta: np.ndarray) -> np.ndarray:
    r = np.ascontiguousarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != theta.shape[0]:
        raise ValueError(
            f"resid must return shape (m, npts) with m={theta.shape[0]}; got {r.shape}"
        )
    return r


@dataclass
class _Output:
    """Result arrays for all curves; :meth:`view` gives one block's rows."""

    theta: np.ndarray
    cost: np.ndarray
    nfev: np.ndarray
    status: np.ndarray
    niter: np.ndarray
    resid: list  # [array (n, npts)] once the first block knows npts, or [None]
    gram: np.ndarray | None
    keep_resid: bool
    jac: np.ndarray | None = None

    @classmethod
    def allocate(cls, n: int, k: int, opts: _Options) -> _Output:
        return cls(
            theta=np.empty((n, k)),
            cost=np.empty(n),
            nfev=np.zeros(n, dtype=np.int32),
            status=np.full(n, Status.NOT_RUN, dtype=np.int8),
            niter=np.zeros(n, dtype=np.int32),
            resid=[None],
            gram=np.full((n, k, k), np.nan) if opts.gram else None,
            keep_resid=opts.resid,
        )

    def view(self, rows: slice) -> _Block:
        return _Block(self, rows)

    def result(self) -> LMResult:
        resid = self.resid[0]
        if resid is None:
            resid = np.empty((self.theta.shape[0], 0))
        return LMResult(self.theta, self.cost, self.nfev, self.status, self.niter, self.jac,
                        resid, self.gram)


class _Block:
    """The rows of one block inside :class:`_Output` (views: writes go through)."""

    def __init__(self, out: _Output, rows: slice):
        self.out, self.rows = out, rows
        for name in ("theta", "cost", "nfev", "status", "niter"):
            setattr(self, name, getattr(out, name)[rows])
        self.gram = None if out.gram is None else out.gram[rows]
        self.resid = None

    def init_resid(self, npts: int) -> None:
        if not self.out.keep_resid:
            return
        if self.out.resid[0] is None:
            self.out.resid[0] = np.empty((self.out.theta.shape[0], npts))
        self.resid = self.out.resid[0][self.rows]


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


def _evaluate(opts: _Options, theta: np.ndarray, idx: np.ndarray):
    """Residuals, Jacobian columns and per-curve cost (the hook, else ``sum r**2``)."""
    out = opts.evaluate(theta, idx)
    r = _checked(out[0], theta)
    if len(out) == 3:
        cost = np.asarray(out[2], dtype=np.float64).reshape(-1)
        if cost.shape != (theta.shape[0],):
            raise ValueError(f"evaluate's cost must have shape ({theta.shape[0]},); "
                             f"got {np.shape(out[2])}")
        # A non-finite residual is a failed model whatever the cost says.
        cost = np.where(np.isfinite(r).all(axis=1), cost, np.nan)
    else:
        cost = _sumsq(r)
    return r, out[1], cost


def _sumsq(r: np.ndarray) -> np.ndarray:
    """Row sums of squares, each row by the same dot product whatever the batch."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.vecdot(r, r)


def _normal(cols, r):
    with np.errstate(over="ignore", invalid="ignore"):
        return gram_columns(cols, r)


def _linearize(opts, state: _Active, rows, a, g, d2_old=None):
    """Store J^T J `a`, J^T r `g`, new scales and the gtol test for `rows` of `state`.

    Returns (ok, gconv): Jacobian finite, gradient test met.
    """
    cn2 = np.diagonal(a, axis1=1, axis2=2).copy()
    d2 = np.where(cn2 > 0.0, cn2, 1.0) if d2_old is None else np.maximum(d2_old, cn2)
    state.a[rows], state.g[rows], state.d2[rows] = a, g, d2
    ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(g).all(axis=1)
    cost = state.cost[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.abs(g) / np.sqrt(cn2 * cost[:, None])
    cos[cn2 == 0.0] = 0.0
    gconv = (cost == 0.0) | (np.max(cos, axis=1) <= opts.gtol)
    return ok, gconv & ok


def _start(opts: _Options, theta0: np.ndarray, idx: np.ndarray, out: _Block) -> _Active:
    """Evaluate the start, fill the block output; return the active state."""
    m, k = theta0.shape
    r, columns, cost = _evaluate(opts, theta0, idx)
    out.init_resid(r.shape[1])
    out.theta[:] = theta0
    out.nfev[:] = 1
    if out.resid is not None:
        out.resid[:] = r
    out.cost[:] = cost
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
        cols, used = columns(live, opts.rel_step)
        ok, gconv = _linearize(opts, state, slice(None), *_normal(cols, r[live]))
        out.nfev[live] += used
        out.status[live[gconv]] = Status.CONVERGED
        if out.gram is not None:
            out.gram[live] = state.a
        state = state.take(ok & ~gconv)
    return state


def _solve_block(opts: _Options, theta0: np.ndarray, idx: np.ndarray, out: _Block) -> None:
    state = _start(opts, theta0, idx, out)
    # Guard against a curve that never gets a usable step (cannot happen with
    # finite J^T J because the damping grows until the system is definite).
    max_iter = 4 * opts.max_nfev + 100
    while state.pos.size:
        state = _iterate(opts, state, out, max_iter)


def _damped_step(state: _Active):
    """Solve (A + mu D^2) p = -g in scaled variables; return p, |Dp|^2, pred, ok.

    The k x k algebra runs on batch-last copies, so every operation is on
    contiguous length-m vectors and sums over k are explicit sequential loops.
    """
    dinv = 1.0 / np.sqrt(state.d2.T)  # (k, m)
    # Always a copy: for one curve the transpose is already contiguous, and
    # ascontiguousarray would return a view, scaling state.a in place.
    scaled = np.array(state.a.transpose(1, 2, 0), order="C")
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


def _iterate(opts: _Options, state: _Active, out: _Block, max_iter: int) -> _Active:
    """One damped step for every active curve; return the still-active state."""
    p, pnorm2, pred, ok = _damped_step(state)
    out.niter[state.pos] += 1
    ev = np.flatnonzero(ok)
    trial = state.theta[ev] + p[ev]
    r, columns, cost_t = _evaluate(opts, trial, state.idx[ev])
    out.nfev[state.pos[ev]] += 1
    cost = state.cost[ev]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
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

    sel = np.flatnonzero(accept)  # rows of this evaluation
    acc = ev[sel]
    state.theta[acc] = trial[sel]
    state.cost[acc] = cost_t[sel]
    if out.resid is not None:
        out.resid[state.pos[acc]] = r[sel]

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

    going = status[acc] < 0
    relin = acc[going]
    # One Jacobian for the accepted curves that go on (to linearize) and, when
    # J^T J at the solution is kept, for those that stop here too.
    need = sel if out.gram is not None else sel[going]
    if need.size:
        cols, used = columns(need, opts.rel_step)
        a, g = _normal(cols, r[need])
        if need.size != relin.size:
            state.a[acc[~going]] = a[~going]  # J^T J at the new point of stopping curves
            a, g = a[going], g[going]
    if relin.size:
        jok, gconv = _linearize(opts, state, relin, a, g, state.d2[relin])
        out.nfev[state.pos[relin]] += used
        status[relin[~jok]] = Status.MODEL_ERROR
        status[relin[gconv]] = Status.CONVERGED
    return _retire(state, out, status)


def _retire(state: _Active, out: _Block, status: np.ndarray) -> _Active:
    """Write finished curves to `out` and drop them from the active set."""
    done = status >= 0
    if not done.any():
        return state
    pos = state.pos[done]
    out.theta[pos] = state.theta[done]
    out.cost[pos] = state.cost[done]
    out.status[pos] = status[done]
    if out.gram is not None:
        out.gram[pos] = state.a[done]
    return state.take(~done)


def _final_jacobian(opts: _Options, out: _Output) -> np.ndarray:
    """Fresh Jacobian at every final theta; NaN where the start was bad."""
    n, k = out.theta.shape
    npts = 0 if out.resid[0] is None else out.resid[0].shape[1]
    jac = np.full((n, npts, k), np.nan)
    good = np.flatnonzero(np.isfinite(out.cost))
    for start in range(0, good.size, BLOCK_SIZE):
        rows = good[start : start + BLOCK_SIZE]
        _, columns, _ = _evaluate(opts, out.theta[rows], rows)
        cols, _ = columns(np.arange(rows.size), opts.rel_step)
        for j, col in enumerate(cols):
            jac[rows, :, j] = col
    return jac
