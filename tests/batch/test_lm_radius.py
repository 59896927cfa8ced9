"""The trust radius of the batched Levenberg-Marquardt: a step may not outrun ``|D theta0|``.

Without it, the first near-Gauss-Newton step of a saturating model can throw
the rate onto the plateau where the model is a constant, the rate's column
vanishes and the gradient test passes: a wrong minimum reported CONVERGED.
"""

import numpy as np
import pytest
from scipy.optimize import least_squares

from batchfit.batch import lm_rules
from batchfit.batch.lm import solve
from batchfit.batch.lm_rules import (
    RADIUS_GROW,
    RADIUS_SHRINK,
    STEP_BOUND,
    initial_radius,
    update_radius,
)
from batchfit.batch.lm_state import LMState, damped_step, linearize
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


def test_a_step_beyond_the_radius_is_shortened_along_its_direction():
    state, a, g = random_state()
    free = damped_step(state)
    assert not free.capped.any()
    state.radius = np.where(np.arange(state.size) % 2 == 0, 0.1 * free.step_norm, np.inf)
    short = damped_step(state)
    even = np.arange(state.size) % 2 == 0
    np.testing.assert_array_equal(short.capped, even)
    np.testing.assert_allclose(short.step_norm[even], state.radius[even], rtol=1e-12)
    p_free, p_short = free.trial - state.theta, short.trial - state.theta
    np.testing.assert_allclose(p_short[even], 0.1 * p_free[even], rtol=1e-9)
    np.testing.assert_array_equal(short.trial[~even], free.trial[~even])
    # predicted reduction of the shortened step, straight from its definition
    pred = -2.0 * np.vecdot(g, p_short) - np.vecdot(p_short, np.vecdot(a, p_short[:, None, :]))
    np.testing.assert_allclose(short.pred, pred, rtol=1e-9)
