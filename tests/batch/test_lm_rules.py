"""The pure rules of the batched Levenberg-Marquardt, one case per row."""

import numpy as np
import pytest

from batchfit.batch.lm_rules import (
    FLAT_RTOL,
    MAX_FAIL,
    MU_MAX,
    MU_MIN,
    MU_STALL,
    Tolerances,
    TrialReport,
    check_linearization,
    check_termination,
    creeping,
    gain_ratio,
    update_damping,
)
from batchfit.status import Status

GO_ON = -1
TOL = Tolerances.make(ftol=1e-8, xtol=1e-8, gtol=1e-6, max_nfev=50)


def report(**overrides):
    """A one-curve TrialReport of an ordinary accepted step, with `overrides`."""
    base = dict(actred=0.5, prered=0.6, ratio=0.5 / 0.6, step_norm=1.0, x_norm=10.0, creeping=False,
                finite=True, accepted=True, runaway=False, mu=1e-3, nfev=5, niter=4, nfail=0)
    base.update(overrides)
    return TrialReport(**{k: np.atleast_1d(np.asarray(v)) for k, v in base.items()})


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, GO_ON),
    ({"actred": 1e-9, "prered": 1e-9, "ratio": 1.0}, Status.CONVERGED),  # ftol
    ({"actred": -1e-9, "prered": 1e-9, "ratio": -1.0, "accepted": False}, Status.CONVERGED),
    ({"actred": 1e-9, "prered": 1e-9, "ratio": 3.0}, GO_ON),  # ratio > 2: model is off
    ({"actred": 1e-9, "prered": 1e-7, "ratio": 0.01}, GO_ON),  # predicted still large
    ({"step_norm": 1e-8}, Status.CONVERGED),  # xtol: |Dp| <= 1e-8 * |D theta|
    ({"step_norm": 1e-8, "x_norm": 0.0}, GO_ON),
    ({"step_norm": 0.0, "x_norm": 0.0}, Status.CONVERGED),
    ({"step_norm": 1e-8, "finite": False, "accepted": False}, GO_ON),  # not on a failed trial
    ({"nfev": 50}, Status.MAX_NFEV),
    ({"niter": TOL.max_iter}, Status.MAX_NFEV),
    ({"nfev": 50, "step_norm": 1e-9}, Status.CONVERGED),  # converging on the last evaluation
    ({"nfail": MAX_FAIL, "finite": False, "accepted": False}, Status.MODEL_ERROR),
    ({"nfail": MAX_FAIL - 1, "finite": False, "accepted": False}, GO_ON),
    ({"nfail": MAX_FAIL, "finite": False, "accepted": False, "nfev": 50}, Status.MODEL_ERROR),
    ({"runaway": True}, Status.STALLED),
    ({"runaway": True, "step_norm": 1e-9}, Status.STALLED),
    ({"accepted": False, "mu": MU_STALL}, Status.STALLED),  # flat under maximal damping
    ({"accepted": False, "mu": MU_STALL, "actred": 1e-9, "prered": 1e-9, "ratio": -1.0},
     Status.STALLED),  # MINPACK would call this converged
    ({"accepted": False, "mu": MU_STALL / 10}, GO_ON),
    ({"accepted": True, "mu": MU_STALL}, GO_ON),
    ({"accepted": False, "finite": False, "mu": MU_MAX, "nfail": 3}, GO_ON),
])
def test_check_termination(overrides, expected):
    assert check_termination(report(**overrides), TOL)[0] == expected


def test_check_termination_is_elementwise():
    cases = [{}, {"step_norm": 1e-9}, {"nfev": 50}, {"runaway": True}]
    rows = [report(**c) for c in cases]
    batch = TrialReport(**{f: np.concatenate([getattr(r, f) for r in rows])
                           for f in TrialReport.__dataclass_fields__})
    np.testing.assert_array_equal(check_termination(batch, TOL),
                                  [GO_ON, Status.CONVERGED, Status.MAX_NFEV, Status.STALLED])


def test_tolerances_floor_at_machine_epsilon():
    tol = Tolerances.make(0.0, 1e-30, 0.0, 10)
    eps = np.finfo(float).eps
    assert tol.ftol == tol.xtol == tol.gtol == eps
    assert tol.max_iter == 4 * 10 + 100


def test_update_damping():
    mu = np.array([1.0, 1.0, 1.0, 1.0, 5e99, 2e-15])
    nu = np.array([2.0, 2.0, 8.0, 2.0, 4.0, 16.0])
    accepted = np.array([True, True, False, True, False, True])
    ratio = np.array([1.0, 0.5, 0.0, 0.75, -1.0, 1.0])
    new_mu, new_nu = update_damping(mu, nu, accepted, ratio)
    # Nielsen: accepted -> mu * max(1/3, 1 - (2 rho - 1)^3), nu = 2; rejected -> mu * nu, nu * 2
    np.testing.assert_allclose(new_mu[:4], [1.0 / 3.0, 1.0, 8.0, 1.0 - 0.5**3])
    np.testing.assert_array_equal(new_nu, [2.0, 2.0, 16.0, 2.0, 8.0, 2.0])
    assert new_mu[4] == MU_MAX and new_mu[5] == MU_MIN  # clipped to its range
    assert mu[0] == 1.0 and nu[2] == 8.0  # inputs untouched


def test_gain_ratio():
    cost = np.array([10.0, 10.0, 10.0, 10.0])
    trial = np.array([5.0, 11.0, 2000.0, np.nan])
    pred = np.array([10.0, 5.0, 5.0, 5.0])
    actred, prered, ratio = gain_ratio(cost, trial, pred)
    np.testing.assert_allclose(actred, [0.5, -0.1, -1.0, -1.0])
    np.testing.assert_allclose(prered, [1.0, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(ratio, [0.5, -0.2, -2.0, -2.0])
    _, _, ratio = gain_ratio(cost[:1], trial[:1], np.array([0.0]))
    assert ratio[0] == 0.0  # no predicted reduction: never accepted


def lin(**overrides):
    base = dict(cost=np.array([4.0]), g=np.array([[1.0, -1.0]]), cn2=np.array([[4.0, 1.0]]),
                d2=np.array([[4.0, 1.0]]), free=np.array([[True, True]]),
                jac_ok=np.array([True]), gtol=1e-6)
    base.update(overrides)
    return check_linearization(**base)[0]


def test_check_linearization():
    assert lin() == GO_ON
    assert lin(g=np.array([[1e-9, 0.0]])) == Status.CONVERGED  # gtol
    assert lin(free=np.array([[False, False]])) == Status.CONVERGED  # all held at bounds
    assert lin(g=np.array([[0.0, 1.0]]), free=np.array([[True, False]])) == Status.CONVERGED
    assert lin(g=np.array([[1.0, 0.0]]), free=np.array([[True, False]])) == GO_ON
    assert lin(cost=np.array([0.0])) == Status.CONVERGED
    assert lin(jac_ok=np.array([False]), cost=np.array([0.0])) == Status.MODEL_ERROR
    flat = np.array([[4.0, 1.0]]) * FLAT_RTOL
    assert lin(cn2=flat) == Status.STALLED  # every column ~0 relative to its maximum
    assert lin(cn2=np.array([[4.0 * FLAT_RTOL, 1.0]])) == GO_ON  # one column still alive
    assert lin(cn2=np.zeros((1, 2)), cost=np.array([0.0])) == Status.CONVERGED


def test_creeping():
    from batchfit.batch.lm_rules import MIN_PROGRESS, VALLEY

    mark = np.array([100.0, 100.0, 100.0, 100.0])
    cost = np.array([99.0, 100.0 * (1 - 2 * MIN_PROGRESS), 99.0, 99.0])
    moved = np.array([2 * VALLEY * 10, 2 * VALLEY * 10, 0.5 * VALLEY * 10, np.nan])
    np.testing.assert_array_equal(creeping(cost, mark, moved), [True, False, False, False])
