r"""Vectorized Levenberg-Marquardt with bounds: every curve of a chunk advances together.

The kernel knows nothing of parameters, expressions or models: it minimizes a
cost (by default ``sum(r(theta)**2)``) independently for each row of
``theta``, inside optional box bounds ``lo <= theta <= hi``. Each curve has
its own damping, scaling, counters and stopping tests; no curve's numbers
depend on the other curves in the batch.

Equations (per curve; ``J`` the Jacobian of the residuals ``r``, ``A = J^T
J``, ``g = J^T r``, ``D = diag(d)`` with ``d_j^2`` the running maximum of the
squared column norms of ``J``, MINPACK's ``diag`` / scipy's ``x_scale='jac'``):

1. Active set. A parameter at a bound whose descent direction ``-g_j``
   points out of the box is held (``p_j = 0``); the others are free (F).
2. Damped normal equations on the free set,
   ``(A_FF + mu D_FF^2) p_F = -g_F``, solved in the scaled variables ``D p``
   (one LAPACK solve per curve). The trial point is projected onto the box,
   ``theta_t = clip(theta + p, lo, hi)``, and ``p`` is the projected step.
3. Gain ratio ``rho = actred / prered`` with ``actred = 1 - C(theta_t) /
   C(theta)`` and ``prered = (|r|^2 - |r + J p|^2) / C(theta)``, where
   ``|r|^2 - |r + J p|^2 = -2 g.p - p^T A p`` (``= p^T A p + 2 mu |D p|^2``
   for an unprojected step). The step is accepted when ``rho >= 1e-4``.
4. Damping update (Nielsen; Madsen, Nielsen & Tingleff 2004, eq. 2.21):
   accepted ``mu *= max(1/3, 1 - (2 rho - 1)^3)``, ``nu = 2``; rejected
   ``mu *= nu``, ``nu *= 2``.
4a. Trust radius ``|D p| <= Delta``, ``Delta = |D theta0|`` at the start (MINPACK's
   ``lmpar`` with ``factor`` 1, as scipy's ``trf``; see ``damped_step``), so that no
   first step throws a rate onto a plateau where the model saturates (NIST's BoxBOD).
5. Stopping tests (MINPACK ``lmder``, Moré 1978): ``ftol`` (``|actred| <=
   ftol`` and ``prered <= ftol`` and ``rho <= 2``), ``xtol`` (``|D p| <= xtol
   |D theta|``), ``gtol`` (``max_j |g_j| / (|J_j| sqrt(C)) <= gtol`` over the
   free parameters) and a zero cost give CONVERGED; ``max_nfev`` evaluations
   give MAX_NFEV; ten non-finite trials in a row or a non-finite Jacobian give
   MODEL_ERROR; STALLED (issue 9) when a step is rejected under maximal
   damping with the cost unchanged, a parameter runs away (non-finite, beyond
   ``1e10 max(|theta0|, 1)``, or, after 150 iterations, beyond ``100 max(|theta0|,
   1)`` or below ``1e-10 |theta0|`` while 25 cut the cost by under 5%), or every column fell to
   ``1e-8`` of its largest norm (a flat model). The rules are the pure
   functions of :mod:`batchfit.batch.lm_rules`.

A solution on a bound is reached like an interior one: once the projected
step puts a parameter on its bound and the gradient holds it there, the
iteration is Levenberg-Marquardt on the free parameters, and the value is the
bound's exact value (not the asymptote of a transform). This is the projected
Levenberg-Marquardt of Kanzow, Yamashita & Fukushima (2004) with the active
set of a projected-gradient method; scipy's ``trf`` (Branch, Coleman & Li
1999) is the reference the tests compare against.

The cost hook: ``evaluate`` may return a per-curve ``cost`` (the Poisson
deviance, say) that the gain ratio, acceptance and ``ftol`` use instead of
``sum(r**2)``; see :func:`solve`. With ``running_scale=False`` (Poisson) ``D^2``
is the current ``diag(A)`` (Marquardt, as Gpufit's MLE): Fisher weights ``1/f``
span decades along a path, and a running maximum taken where ``f`` was near 0
would damp that parameter for good (issue 11's creeping tail curve).

The tail. Up to ``block_size`` curves iterate together in one pool; when half of them
have stopped the pool is refilled with curves not yet started, so a chunk's slow curves
share each step's fixed cost instead of each block paying for its own stragglers.

References: J. J. Moré, "The Levenberg-Marquardt algorithm: implementation
and theory", Lecture Notes in Mathematics 630 (1978), and MINPACK's
``lmder``; K. Madsen, H. B. Nielsen & O. Tingleff, "Methods for non-linear
least squares problems", 2nd ed., DTU (2004); C. Kanzow, N. Yamashita & M.
Fukushima, J. Comput. Appl. Math. 172 (2004) 375; M. A. Branch, T. F. Coleman
& Y. Li, SIAM J. Sci. Comput. 21 (1999) 1 (scipy's ``least_squares(method='trf')``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batchfit.batch.linalg import gram_columns
from batchfit.batch.lm_eval import (
    EvaluateFn,
    JacFn,
    ResidFn,
    evaluate_checked,
    evaluator,
    final_jacobian,
)
from batchfit.batch.lm_rules import (
    ACCEPT_RATIO,
    RUNAWAY,
    Tolerances,
    TrialReport,
    check_linearization,
    check_termination,
    gain_ratio,
    initial_radius,
    update_damping,
    update_radius,
)
from batchfit.batch.lm_state import (
    LMOutput,
    LMState,
    Step,
    box_inputs,
    damped_step,
    free_mask,
    linearize,
    progress_check,
)

__all__ = ["BLOCK_SIZE", "LMResult", "solve"]

EPS = float(np.finfo(np.float64).eps)
BLOCK_SIZE = 512
"""Curves iterating together (the pool size): the arrays of one pool fit in cache."""
REFILL = 0.5
"""The pool takes new curves when the active ones are at most this fraction of it."""


@dataclass
class LMResult:
    """Outcome of :func:`solve` for ``n`` curves with ``k`` parameters.

    Attributes
    ----------
    theta : ndarray, shape (n, k)
        Final parameters (the last accepted point), inside the bounds; a
        parameter on a bound holds the bound's exact value.
    cost : ndarray, shape (n,)
        ``sum(r**2)`` at `theta`, or the cost returned by ``evaluate`` (the
        cost hook); non-finite for a bad start.
    nfev : ndarray of int32, shape (n,)
        Residual evaluations, MINPACK style: ``k`` per finite-difference
        Jacobian, none for analytic Jacobians or for `jac_at_solution`.
    status : ndarray of int8, shape (n,)
        :class:`batchfit.status.Status` codes: CONVERGED, MAX_NFEV,
        MODEL_ERROR or STALLED.
    niter : ndarray of int32, shape (n,)
        Damped steps tried.
    jac_at_solution : ndarray, shape (n, npts, k) or None
        Jacobian freshly evaluated at `theta` (NaN for a bad start).
    resid_at_solution : ndarray, shape (n, npts), or None
        Residuals at `theta` (None with ``return_resid=False``).
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
    resid_at_solution: np.ndarray | None
    gram_at_solution: np.ndarray | None = None


@dataclass(frozen=True)
class _Options:
    evaluate: EvaluateFn
    tol: Tolerances
    rel_step: float
    running: bool  # D^2 the running maximum of the column norms (MINPACK), else the current
    gram: bool  # keep J^T J at the solution
    resid: bool  # keep the residuals at the solution


def solve(
    resid: ResidFn | None,
    theta0: np.ndarray,
    *,
    jac: JacFn | None = None,
    evaluate: EvaluateFn | None = None,
    lower: np.ndarray | float | None = None,
    upper: np.ndarray | float | None = None,
    ftol: float = 1e-10,
    xtol: float = 1e-10,
    gtol: float = 0.0,
    max_nfev: int | None = None,
    diff_step: float | None = None,
    block_size: int = BLOCK_SIZE,
    return_jac: bool = True,
    return_gram: bool = False,
    return_resid: bool = True,
    running_scale: bool = True,
) -> LMResult:
    """Minimize ``sum(resid(theta)**2)`` (or a hooked cost) for every row of `theta0` at once.

    Parameters
    ----------
    resid : callable or None
        ``resid(theta, idx) -> r``: `theta` (m, k) parameter rows of the curves
        with indices `idx` (int array into ``0..n-1``); returns (m, npts)
        weighted residuals. A row with any non-finite value means the model
        failed there. Exceptions propagate. Unused (may be None) when
        `evaluate` is given.
    theta0 : ndarray, shape (n, k)
        Starting points; clipped to the bounds.
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
    lower, upper : array_like, optional
        Bounds broadcastable to (n, k); ``-inf``/``inf`` (the default) for
        none. A solution on a bound holds the bound's exact value.
    ftol : float, optional
        Stop when both the actual and the predicted relative reduction of the
        cost are at most `ftol` (MINPACK).
    xtol : float, optional
        Stop when the scaled step is at most ``xtol * |D theta|`` (MINPACK).
    gtol : float, optional
        Stop when the cosine between the residual and every free Jacobian
        column is at most `gtol` (MINPACK). A zero residual always converges.
    max_nfev : int, optional
        Residual evaluations allowed per curve; default ``200 * (k + 1)``.
    diff_step : float, optional
        Relative forward-difference step; default ``sqrt(eps)`` (MINPACK's
        default ``epsfcn``). The step is ``diff_step * |theta_j|``, or
        ``diff_step`` where ``theta_j == 0``.
    block_size : int, optional
        Curves iterating together; results do not depend on it.
    return_jac : bool, optional
        Evaluate `jac_at_solution` (one extra Jacobian per curve, not counted
        in `nfev`).
    return_gram : bool, optional
        Keep `gram_at_solution`: ``J^T J`` at the final point of each curve,
        from the last Jacobian evaluated there (one extra Jacobian only for a
        curve that stops on an accepted step; not counted in `nfev`).
    return_resid : bool, optional
        Keep `resid_at_solution` (else it is None).
    running_scale : bool, optional
        ``D^2`` is the running maximum of the squared column norms (MINPACK's
        ``diag``); False: the current ones (Marquardt), for the Poisson hook.

    Returns
    -------
    LMResult

    Raises
    ------
    ValueError
        If `theta0` is not 2-D, the bounds do not broadcast or cross, or
        `resid`/`jac`/`evaluate` return arrays of the wrong shape.

    Notes
    -----
    Tolerances below machine epsilon are raised to it, so "no further
    reduction possible" (MINPACK's info 6-8) counts as CONVERGED.
    """
    theta0, lo, hi = box_inputs(theta0, lower, upper)
    n, k = theta0.shape
    if evaluate is None:
        if resid is None:
            raise ValueError("solve needs resid (with or without jac) or evaluate")
        evaluate = evaluator(resid, jac, k)
    opts = _Options(
        evaluate=evaluate,
        tol=Tolerances.make(ftol, xtol, gtol, 200 * (k + 1) if max_nfev is None else max_nfev),
        rel_step=np.sqrt(EPS) if diff_step is None else float(diff_step),
        running=bool(running_scale), gram=bool(return_gram), resid=bool(return_resid or return_jac))
    out = LMOutput.allocate(n, k, opts.gram, opts.resid)
    _run(opts, theta0, lo, hi, out, max(int(block_size), 1))
    if return_jac:
        out.jac = final_jacobian(opts.evaluate, out.theta, out.cost, out.resid, opts.rel_step)
    result = LMResult(*out.fields())
    result.resid_at_solution = result.resid_at_solution if return_resid else None
    return result


def _run(opts: _Options, theta0, lo, hi, out: LMOutput, pool: int) -> None:
    """Iterate all curves in one pool of at most `pool`, refilled when half have stopped."""
    n, nxt = theta0.shape[0], 0
    state: LMState | None = None
    while True:
        size = 0 if state is None else state.size
        if size <= REFILL * pool and nxt < n:
            rows = np.arange(nxt, min(n, nxt + pool - size))
            nxt = int(rows[-1]) + 1
            new = _init(opts, theta0[rows], rows, lo[rows], hi[rows], out)
            state = new if state is None else state.join(new)
        elif state is None or size == 0:
            return
        else:
            state = _step(opts, state, out)


def _normal(cols, r):
    with np.errstate(over="ignore", invalid="ignore"):
        return gram_columns(cols, r)


def _init(opts: _Options, theta0, idx, lo, hi, out: LMOutput) -> LMState:
    """Evaluate the starting points; return the state of the curves that go on."""
    r, columns, cost = evaluate_checked(opts.evaluate, theta0, idx)
    out.start(idx, theta0, r, cost)
    live = np.flatnonzero(np.isfinite(cost))
    state = LMState.start(idx[live], theta0[live], cost[live], lo[live], hi[live])
    if not live.size:
        return state
    cols, used = columns(live, opts.rel_step)
    out.nfev[state.idx] += used
    a, g = _normal(cols, r[live])
    jac_ok = linearize(state, slice(None), a, g, running=opts.running)
    state.radius = initial_radius(state.theta, state.d2)
    return _retire(state, out, _point_status(opts, state, slice(None), jac_ok))


def _point_status(opts: _Options, state: LMState, rows, jac_ok) -> np.ndarray:
    free = free_mask(state.theta[rows], state.g[rows], state.lo[rows], state.hi[rows])
    return check_linearization(state.cost[rows], state.g[rows], state.cn2[rows],
                               state.d2[rows], free, jac_ok, opts.tol.gtol)


def _step(opts: _Options, state: LMState, out: LMOutput) -> LMState:
    """One damped step for every curve of `state`; return the curves that go on."""
    step = damped_step(state)
    out.niter[state.idx] += 1
    ev = np.flatnonzero(step.ok)
    r, columns, cost_t = evaluate_checked(opts.evaluate, step.trial[ev], state.idx[ev])
    out.nfev[state.idx[ev]] += 1
    report = _judge(state, step, ev, cost_t, out)
    if out.resid is not None:
        acc = np.flatnonzero(report.accepted[ev])
        out.resid[state.idx[ev[acc]]] = r[acc]
    status = check_termination(report, opts.tol)
    _relinearize(opts, state, out, status, report.accepted, ev, r, columns)
    return _retire(state, out, status)


def _judge(state: LMState, step: Step, ev, cost_t, out: LMOutput) -> TrialReport:
    """Gain ratio, acceptance and damping of the evaluated trials; updates `state`."""
    m = state.size
    actred, prered, ratio = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
    actred[ev], prered[ev], ratio[ev] = gain_ratio(state.cost[ev], cost_t, step.pred[ev])
    finite = np.zeros(m, dtype=bool)
    finite[ev] = np.isfinite(cost_t)
    with np.errstate(invalid="ignore"):
        accepted = finite & (ratio >= ACCEPT_RATIO)
    state.mu, state.nu = update_damping(state.mu, state.nu, accepted, ratio)
    if step.capped.any():  # the radius bounded some step (rarely on easy pools)
        state.radius = update_radius(state.radius, step.step_norm, step.capped, ratio)
    state.nfail[ev] = np.where(finite[ev], 0, state.nfail[ev] + 1)
    acc = np.flatnonzero(accepted)
    state.theta[acc] = step.trial[acc]
    state.cost[acc] = cost_t[np.flatnonzero(accepted[ev])]
    theta, niter = state.theta, out.niter[state.idx]
    with np.errstate(over="ignore", invalid="ignore"):
        x_norm = np.sqrt(np.vecdot(theta * theta, state.d2))
        runaway = np.any(~(np.abs(theta) <= RUNAWAY * state.ref), axis=1)  # NaN too
    return TrialReport(actred=actred, prered=prered, ratio=ratio, step_norm=step.step_norm,
                       x_norm=x_norm, finite=finite, accepted=accepted, runaway=runaway,
                       creeping=progress_check(state, niter), mu=state.mu,
                       nfev=out.nfev[state.idx], niter=niter, nfail=state.nfail)


def _relinearize(opts, state: LMState, out: LMOutput, status, accepted, ev, r, columns):
    """Evaluate a new Jacobian at accepted points: for curves that go on, and for ``J^T J``."""
    going = status < 0
    need = np.flatnonzero(accepted & (going | opts.gram))
    if not need.size:
        return
    in_ev = np.empty(state.size, dtype=np.intp)
    in_ev[ev] = np.arange(ev.size)
    cols, used = columns(in_ev[need], opts.rel_step)
    a, g = _normal(cols, r[in_ev[need]])
    go = going[need]
    state.a[need[~go]] = a[~go]  # J^T J at the new point of curves stopping here
    rows = need[go]
    if rows.size:
        jac_ok = linearize(state, rows, a[go], g[go], running=opts.running)
        out.nfev[state.idx[rows]] += used
        status[rows] = _point_status(opts, state, rows, jac_ok)


def _retire(state: LMState, out: LMOutput, status: np.ndarray) -> LMState:
    """Write finished curves to `out` and drop them from the state."""
    done = status >= 0
    if not done.any():
        return state
    idx = state.idx[done]
    out.theta[idx], out.cost[idx], out.status[idx] = state.theta[done], state.cost[done], \
        status[done]
    if out.gram is not None:
        out.gram[idx] = state.a[done]
    return state.take(~done)
