"""Hard curves for the batched Levenberg-Marquardt: the trust radius and the collapse rule.

Without the radius, the first near-Gauss-Newton step of a saturating model can
throw the rate onto the plateau where the model is a constant, the rate's column
vanishes and the gradient test passes: a wrong minimum reported CONVERGED. A
parameter that falls by ten orders of magnitude while the cost stands still is
running off towards 0 (the mirror of one growing without end): STALLED early.
"""

import numpy as np
import pytest
from scipy.optimize import least_squares

from batchfit.batch import lm_rules, lm_state
from batchfit.batch.lm import solve
from batchfit.batch.lm_rules import (
    RADIUS_GROW,
    RADIUS_SHRINK,
    STEP_BOUND,
    initial_radius,
    update_radius,
)
from batchfit.batch.lm_state import LMState, damped_step, linearize, progress_check
from batchfit.status import Status

X_RISE = np.array([1.0, 2.0, 3.0, 5.0, 7.0, 10.0])


def rise_problem(n=40, seed=3):
    """``a (1 - exp(-b x))`` on six points, ``b`` in [0.3, 0.8], started far below at (1, 1)."""
    rng = np.random.default_rng(seed)
    true = np.column_stack([rng.uniform(150, 250, n), rng.uniform(0.3, 0.8, n)])
    y = true[:, :1] * (1 - np.exp(-true[:, 1:] * X_RISE)) + rng.normal(0, 10, (n, X_RISE.size))

    def resid(t, idx):
        with np.errstate(all="ignore"):
            return y[idx] - t[:, :1] * (1 - np.exp(-t[:, 1:] * X_RISE))

    return resid, np.tile([1.0, 1.0], (n, 1))


def trf_costs(resid, start):
    """scipy's trf (its own trust region, x_scale='jac') from the same starts: the reference."""
    out = []
    for i, s in enumerate(start):
        with np.errstate(all="ignore"):
            fit = least_squares(lambda p, i=i: resid(p[None], np.array([i]))[0], s,
                                method="trf", x_scale="jac")
        out.append(2.0 * fit.cost)
    return np.array(out)


def test_saturating_rise_reaches_the_minimum_not_the_plateau():
    resid, start = rise_problem()
    ref = trf_costs(resid, start)
    res = solve(resid, start, return_jac=False)
    assert (res.status == Status.CONVERGED).all()
    np.testing.assert_allclose(res.cost, ref, rtol=1e-8)
    assert (res.theta[:, 1] < 1.0).all()  # the rate stayed off the plateau


def test_without_the_radius_the_plateau_is_reported_converged(monkeypatch):
    """The same curves with an unbounded first step (the solver before the radius):
    most end on the plateau ``a = mean(y)`` and claim success. This is what the
    test above guards against."""
    monkeypatch.setattr(lm_rules, "STEP_BOUND", np.inf)
    resid, start = rise_problem()
    ref = trf_costs(resid, start)
    res = solve(resid, start, return_jac=False)
    wrong = (res.status == Status.CONVERGED) & (res.cost > 1.5 * ref)
    assert wrong.sum() > 30


def test_initial_radius():
    theta = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    d2 = np.array([[1.0, 1.0], [5.0, 5.0], [4.0, 9.0]])
    np.testing.assert_allclose(initial_radius(theta, d2), STEP_BOUND * np.array([5.0, np.inf, 2.0]))


@pytest.mark.parametrize(("capped", "ratio", "expected"), [
    (False, 0.1, 8.0),  # the damping set the step: radius untouched
    (False, 0.9, 8.0),
    (True, 0.1, RADIUS_SHRINK * 6.0),  # poor bounded step: a quarter of the step
    (True, np.nan, RADIUS_SHRINK * 6.0),  # not evaluated / not finite counts as poor
    (True, 0.5, 8.0),
    (True, 0.9, RADIUS_GROW * 8.0),
])
def test_update_radius(capped, ratio, expected):
    out = update_radius(np.array([8.0]), np.array([6.0]), np.array([capped]), np.array([ratio]))
    np.testing.assert_allclose(out, [expected])


def random_state(m=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    jac = rng.normal(size=(m, 20, k)) * rng.uniform(0.1, 10, (m, 1, k))
    r = rng.normal(size=(m, 20))
    theta = rng.normal(size=(m, k))
    inf = np.full((m, k), np.inf)
    state = LMState.start(np.arange(m), theta, np.vecdot(r, r), -inf, inf)
    a = np.matmul(jac.transpose(0, 2, 1), jac)
    g = np.matmul(jac.transpose(0, 2, 1), r[:, :, None])[:, :, 0]
    linearize(state, slice(None), a, g)
    state.mu[:] = 1e-3
    return state, a, g


def lm_step(state, rows):
    """``p`` from ``(A + mu D^2) p = -g`` with numpy, one row at a time (all free)."""
    out = []
    for i in rows:
        mat = state.a[i] + state.mu[i] * np.diag(state.d2[i])
        out.append(np.linalg.solve(mat, -state.g[i]))
    return np.array(out)


def test_a_step_beyond_the_radius_gets_more_damping():
    """MINPACK's ``lmpar``: a step longer than the radius is recomputed with a larger
    ``mu`` (kept in the state), which makes it fit the radius."""
    state, a, g = random_state()
    mu0 = state.mu.copy()
    free = damped_step(state)
    assert not free.capped.any()
    np.testing.assert_allclose(free.trial - state.theta, lm_step(state, range(state.size)),
                               rtol=1e-8, atol=1e-12)
    even = np.arange(state.size) % 2 == 0
    state.radius = np.where(even, 0.1 * free.step_norm, np.inf)
    bounded = damped_step(state)
    np.testing.assert_array_equal(bounded.capped, even)
    np.testing.assert_array_equal(bounded.trial[~even], free.trial[~even])
    np.testing.assert_array_equal(state.mu[~even], mu0[~even])
    assert (state.mu[even] > 10 * mu0[even]).all()
    assert (bounded.step_norm[even] <= state.radius[even] * (1 + 1e-12)).all()
    assert (bounded.step_norm[even] >= 0.5 * state.radius[even]).all()
    p = bounded.trial - state.theta
    lm = lm_step(state, np.flatnonzero(even))  # the LM step at the new mu, shortened
    cos = np.vecdot(p[even], lm) / np.sqrt(np.vecdot(lm, lm) * np.vecdot(p[even], p[even]))
    np.testing.assert_allclose(cos, 1.0, rtol=1e-9)
    # predicted reduction, straight from its definition
    pred = -2.0 * np.vecdot(g, p) - np.vecdot(p, np.vecdot(a, p[:, None, :]))
    np.testing.assert_allclose(bounded.pred, pred, rtol=1e-9)


def test_shortened_step_keeps_its_direction_and_prediction(monkeypatch):
    """With no Newton step on ``mu`` the bounded step is the LM step scaled to the radius."""
    state, a, g = random_state(seed=1)
    free = damped_step(state)
    state.radius = 0.1 * free.step_norm
    monkeypatch.setattr(lm_state, "RADIUS_NEWTON", 0)
    short = damped_step(state)
    np.testing.assert_allclose(short.step_norm, state.radius, rtol=1e-12)
    p = short.trial - state.theta
    np.testing.assert_allclose(p, 0.1 * (free.trial - state.theta), rtol=1e-9)
    pred = -2.0 * np.vecdot(g, p) - np.vecdot(p, np.vecdot(a, p[:, None, :]))
    np.testing.assert_allclose(short.pred, pred, rtol=1e-9)


def creeping_state(theta0, theta, lo=-np.inf, hi=np.inf):
    """One-curve-per-row state at `theta` (started at `theta0`) whose cost stood still."""
    theta0, theta = np.atleast_2d(theta0).astype(float), np.atleast_2d(theta).astype(float)
    m = theta.shape[0]
    lo, hi = np.broadcast_to(lo, theta.shape), np.broadcast_to(hi, theta.shape)
    state = LMState.start(np.arange(m), theta0, np.ones(m), lo, hi)
    state.theta = theta
    return state


@pytest.mark.parametrize(("theta0", "theta", "lo", "expected"), [
    ([2.0, 4e5], [1e-47, 3.8e5], -np.inf, True),  # fell 1e-47: running off towards 0
    ([2.0, 4e5], [1e-5, 3.8e5], -np.inf, False),  # fell 1e-5: a scale, not a collapse
    ([5.0, 1.0], [0.0, 1.0], 0.0, False),  # held at its bound 0: an absent line
    ([0.0, 1.0], [1e-30, 1.0], -np.inf, False),  # started at 0: no scale to fall from
    ([1e-12, 1.0], [3e-12, 1.0], -np.inf, False),  # a small unit is not a collapse
    ([1.0, 1.0], [150.0, 1.0], -np.inf, True),  # grown 150 times (the old rule)
])
def test_progress_check_collapsed_or_grown(theta0, theta, lo, expected):
    state = creeping_state(theta0, theta, lo=lo)
    niter = np.array([lm_rules.CREEP_START])
    assert progress_check(state, niter)[0] == expected
    fast = creeping_state(theta0, theta, lo=lo)  # the same, with the cost falling fast
    fast.cost[:] = 0.5
    assert not progress_check(fast, niter)[0]
    early = creeping_state(theta0, theta, lo=lo)  # and before CREEP_START iterations
    assert not progress_check(early, np.array([lm_rules.WINDOW]))[0]
