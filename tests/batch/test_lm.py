"""Tests for the vectorized Levenberg-Marquardt kernel against scipy's MINPACK."""

import numpy as np
import pytest
from scipy.optimize import leastsq

from batchfit.batch.lm import LMResult, solve
from batchfit.status import Status


class Problem:
    """Batched model ``f(theta, x)`` with data rows ``y``; residual = y - f."""

    def __init__(self, x, y, theta):
        self.x, self.y, self.theta = x, np.atleast_2d(y), theta
        self.calls = 0

    def resid(self, theta, idx):
        self.calls += 1
        return self.y[idx] - self.f(theta)

    def jac(self, theta, idx, r):
        return -self.df(theta)

    def cols(self, theta):
        return [theta[:, j : j + 1] for j in range(theta.shape[1])]


class Decay(Problem):
    k = 3

    def f(self, t):
        a, tau, c = self.cols(t)
        return a * np.exp(-self.x / tau) + c

    def df(self, t):
        a, tau, c = self.cols(t)
        e = np.exp(-self.x / tau) * np.ones_like(a)
        return np.stack([e, a * e * self.x / tau**2, np.ones_like(e)], axis=-1)


class GaussLine(Problem):
    k = 5

    def f(self, t):
        a, c, s, b0, b1 = self.cols(t)
        return a * np.exp(-0.5 * ((self.x - c) / s) ** 2) + b0 + b1 * self.x

    def df(self, t):
        a, c, s, b0, b1 = self.cols(t)
        u = (self.x - c) / s
        e = np.exp(-0.5 * u * u)
        one = np.ones_like(e)
        return np.stack([e, a * e * u / s, a * e * u * u / s, one, self.x * one], axis=-1)


class RankDeficient(Problem):
    """``(a + b) * exp(-x / tau)``: only ``a + b`` is identifiable."""

    k = 3

    def f(self, t):
        a, b, tau = self.cols(t)
        return (a + b) * np.exp(-self.x / tau)

    def df(self, t):
        a, b, tau = self.cols(t)
        e = np.exp(-self.x / tau)
        return np.stack([e, e, (a + b) * e * self.x / tau**2], axis=-1)


class GuardedDecay(Decay):
    """Decay whose model fails (NaN) for tau below 0.8: overshooting steps land there."""

    nan_calls = 0

    def f(self, t):
        out = super().f(t)
        bad = t[:, 1] < 0.8
        self.nan_calls += int(bad.sum())
        out[bad] = np.nan
        return out


def make(cls, n, seed, noise=0.05):
    rng = np.random.default_rng(seed)
    if cls is GaussLine:
        x = np.linspace(-10, 10, 128)
        true = np.column_stack([rng.uniform(2, 5, n), rng.uniform(-2, 2, n),
                                rng.uniform(1, 3, n), rng.uniform(-1, 1, n),
                                rng.uniform(-0.1, 0.1, n)])
        start = true * rng.uniform(0.8, 1.2, true.shape)
    elif cls is RankDeficient:
        x = np.linspace(0, 10, 60)
        true = np.column_stack([rng.uniform(1, 3, n), rng.uniform(1, 3, n),
                                rng.uniform(1, 4, n)])
        start = true * rng.uniform(0.7, 1.3, true.shape)
    else:
        x = np.linspace(0, 10, 50)
        true = np.column_stack([rng.uniform(1, 5, n), rng.uniform(0.8, 4, n),
                                rng.uniform(-1, 1, n)])
        start = true * rng.uniform(0.6, 1.4, true.shape)
        if cls is GuardedDecay:
            true[:, 1] = rng.uniform(1.0, 2.0, n)
            start[:, 1] = 4.0 * true[:, 1]  # Gauss-Newton overshoots into tau < 0.8
    prob = cls(x, None, true)
    prob.y = prob.f(true) + rng.normal(0, noise, (n, x.size))
    return prob, start


def reference(prob, start, i, analytic=True):
    """scipy.optimize.leastsq on curve i (no NaN guard: plain Decay model)."""
    model = Decay if isinstance(prob, GuardedDecay) else type(prob)
    plain = model(prob.x, prob.y[i : i + 1], None)
    fun = lambda t: plain.resid(t[None], [0])[0]  # noqa: E731
    dfun = (lambda t: plain.jac(t[None], [0], None)[0]) if analytic else None
    t, cov, info, _, ier = leastsq(fun, start[i], Dfun=dfun, full_output=True,
                                   ftol=1e-10, xtol=1e-10)
    assert ier in (1, 2, 3, 4)
    return t, np.sum(info["fvec"] ** 2), cov


@pytest.mark.parametrize("cls", [Decay, GaussLine, GuardedDecay])
@pytest.mark.parametrize("analytic", [True, False])
def test_same_minimum_as_minpack(cls, analytic):
    prob, start = make(cls, 40, seed=1)
    res = solve(prob.resid, start, jac=prob.jac if analytic else None)
    assert (res.status == Status.CONVERGED).all()
    for i in range(40):
        t, cost, cov = reference(prob, start, i, analytic)
        np.testing.assert_allclose(res.cost[i], cost, rtol=1e-10)
        stderr = np.sqrt(np.diag(cov) * cost / (prob.x.size - prob.k))
        assert np.all(np.abs(res.theta[i] - t) <= 1e-3 * stderr)
    np.testing.assert_allclose(res.cost, np.square(res.resid_at_solution).sum(1), rtol=1e-14)
    if cls is GuardedDecay:
        assert prob.nan_calls > 0, "the test never reached the failing region"


def test_rank_deficient_reaches_minpack_minimum():
    prob, start = make(RankDeficient, 30, seed=2)
    res = solve(prob.resid, start, jac=prob.jac)
    assert (res.status == Status.CONVERGED).all()
    for i in range(30):
        t, cost, _ = reference(prob, start, i)
        np.testing.assert_allclose(res.cost[i], cost, rtol=1e-10)
        np.testing.assert_allclose(res.theta[i, 0] + res.theta[i, 1], t[0] + t[1], rtol=1e-6)
        np.testing.assert_allclose(res.theta[i, 2], t[2], rtol=1e-6)


@pytest.mark.parametrize("cls", [Decay, GaussLine])
def test_analytic_and_finite_difference_agree(cls):
    prob, start = make(cls, 25, seed=3)
    exact = solve(prob.resid, start, jac=prob.jac)
    approx = solve(prob.resid, start)
    np.testing.assert_allclose(approx.cost, exact.cost, rtol=1e-9)
    np.testing.assert_allclose(approx.theta, exact.theta, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(approx.jac_at_solution, exact.jac_at_solution,
                               rtol=1e-5, atol=1e-6 * np.abs(exact.jac_at_solution).max())
    np.testing.assert_allclose(exact.jac_at_solution, prob.jac(exact.theta, None, None))
    # forward differences cost k evaluations per Jacobian, MINPACK style
    assert (approx.nfev >= 1 + cls.k * (approx.niter > 0)).all()
    assert (approx.nfev > exact.nfev).all()


def test_nfev_counts_like_minpack_with_analytic_jacobian():
    prob, start = make(Decay, 1, seed=4)
    res = solve(prob.resid, start, jac=prob.jac, return_jac=False)
    assert res.nfev[0] == prob.calls  # one resid call per trial step, plus the start
    assert res.nfev[0] == res.niter[0] + 1
    assert res.jac_at_solution is None


class Halving(Problem):
    """r = 1/theta: every Gauss-Newton step doubles theta and never converges."""

    def f(self, t):
        return -1.0 / t

    def df(self, t):
        return (1.0 / t**2)[:, :, None]


def test_max_nfev_explicit():
    prob = Halving(np.zeros(1), np.zeros((2, 1)), None)
    res = solve(prob.resid, np.ones((2, 1)), jac=prob.jac, max_nfev=7)
    np.testing.assert_array_equal(res.status, Status.MAX_NFEV)
    np.testing.assert_array_equal(res.nfev, 7)
    res = solve(prob.resid, np.ones((2, 1)), max_nfev=7)  # finite differences
    assert (res.status == Status.MAX_NFEV).all() and (res.nfev <= 7 + 1).all()


def test_runaway_parameters_stall_early():
    """theta grows without end as the model flattens: STALLED early, not at max_nfev."""
    prob = Halving(np.zeros(1), np.zeros((2, 1)), None)
    res = solve(prob.resid, np.ones((2, 1)), jac=prob.jac)
    np.testing.assert_array_equal(res.status, Status.STALLED)
    assert (res.nfev < 100).all() and (np.abs(res.theta) > 1e3).all()


def test_cost_flat_under_maximal_damping_stalls():
    """The Jacobian promises a decrease, the cost does not move: STALLED, not converged."""
    start = np.zeros((3, 3))  # |theta| = 0: the xtol test cannot end it either
    res = solve(lambda t, i: np.tile(np.arange(1.0, 4.0), (len(i), 1)), start,
                jac=lambda t, i, r: -np.ones((len(i), 3, 3)))
    np.testing.assert_array_equal(res.status, Status.STALLED)
    assert (res.nfev < 100).all()
    np.testing.assert_array_equal(res.theta, start)


def test_kink_converges_as_in_minpack():
    """A cost that jumps up across an edge (at theta = 0.95, approached from above) is
    not flat: the steps shrink onto the edge and MINPACK's tests end it, CONVERGED."""
    x = np.linspace(0, 1, 20)

    def resid(t, i):
        return t * x - 1.0 + 0.5 * (t > 0.95)

    res = solve(resid, np.array([[0.5]]), jac=lambda t, i, r: np.broadcast_to(
        x[None, :, None], (len(i), x.size, 1)))
    assert res.status[0] == Status.CONVERGED
    assert 0.95 < res.theta[0, 0] < 0.95 + 1e-6
    assert res.niter[0] > 10  # it did meet the edge


def test_flat_model_stalls():
    """A peak far outside the data: every column of J is zero, the cost is not."""
    x = np.linspace(-5, 5, 30)

    def resid(t, i):
        return t[:, :1] * np.exp(-0.5 * (x - t[:, 1:2]) ** 2) - 1.0

    for jac in (None, lambda t, i, r: np.zeros((len(i), x.size, 2))):
        res = solve(resid, np.array([[1.0, 200.0], [1.0, -300.0]]), jac=jac)
        np.testing.assert_array_equal(res.status, Status.STALLED)
        assert (res.niter == 0).all()


def test_bad_start_and_failing_model_are_model_errors():
    prob, start = make(Decay, 3, seed=5)
    start[1, 0] = np.nan

    def resid(theta, idx):  # curve 2 fails everywhere except at its start
        r = prob.resid(theta, idx)
        moved = (idx == 2) & np.any(theta != start[idx], axis=1)
        r[moved] = np.nan
        return r

    res = solve(resid, start, jac=prob.jac)
    np.testing.assert_array_equal(res.status, [Status.CONVERGED, Status.MODEL_ERROR,
                                               Status.MODEL_ERROR])
    assert res.nfev[1] == 1 and np.isnan(res.jac_at_solution[1]).all()
    np.testing.assert_array_equal(res.theta[2], start[2])


def test_perfect_fit_converges_at_once():
    prob, _ = make(Decay, 2, seed=6, noise=0.0)
    res = solve(prob.resid, prob.theta, jac=prob.jac)
    np.testing.assert_array_equal(res.status, Status.CONVERGED)
    np.testing.assert_array_equal(res.nfev, 1)
    np.testing.assert_array_equal(res.theta, prob.theta)


def same(a: LMResult, b: LMResult, rows_a, rows_b):
    for name in ("theta", "cost", "nfev", "status", "niter", "jac_at_solution",
                 "resid_at_solution"):
        if getattr(a, name) is None:
            assert getattr(b, name) is None, name
            continue
        np.testing.assert_array_equal(getattr(a, name)[rows_a], getattr(b, name)[rows_b],
                                      err_msg=name)


@pytest.mark.parametrize("analytic", [True, False])
def test_good_curves_bit_identical_alone_and_among_bad_ones(analytic):
    prob, start = make(GaussLine, 4, seed=7)
    rng = np.random.default_rng(8)
    n = 203
    y = rng.normal(0, 1, (n, prob.x.size))
    y[0::4] = np.nan
    y[1::4, 5] = np.inf
    y[2::4] = 3.0  # constant: the Gaussian is not identifiable
    y[3::4] *= 1e200
    theta = start[np.arange(n) % 4] * rng.uniform(0.2, 5, (n, 5))
    theta[3::8, 2] = 0.0  # zero width: the model is NaN at the start
    pos = np.array([5, 77, 150, 202])
    y[pos], theta[pos] = prob.y, start
    crowd = GaussLine(prob.x, y, None)

    def jac(p):
        return p.jac if analytic else None

    alone = solve(prob.resid, start, jac=jac(prob))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mixed = solve(crowd.resid, theta, jac=jac(crowd), block_size=64)
    same(alone, mixed, slice(None), pos)
    assert (alone.status == Status.CONVERGED).all()
    assert {Status.MODEL_ERROR, Status.CONVERGED} <= set(mixed.status.tolist())
    for i in range(4):  # one curve at a time
        single = GaussLine(prob.x, prob.y[i : i + 1], None)
        same(solve(single.resid, start[i : i + 1], jac=jac(single)), alone, slice(None), [i])


def test_results_do_not_depend_on_block_size():
    prob, start = make(Decay, 50, seed=9)
    ref = solve(prob.resid, start, jac=prob.jac, block_size=7)
    for bs in (1, 16, 1000):
        same(ref, solve(prob.resid, start, jac=prob.jac, block_size=bs), slice(None),
             slice(None))


def test_wrong_shapes_raise():
    prob, start = make(Decay, 3, seed=10)
    with pytest.raises(ValueError, match="resid must return"):
        solve(lambda t, i: np.zeros(3), start)
    with pytest.raises(ValueError, match="jac must return"):
        solve(prob.resid, start, jac=lambda t, i, r: np.zeros((len(i), 5, 3)))


class PoissonDecay:
    """Counts ``y ~ Poisson(a exp(-x/tau) + c)``; the hook minimizes the deviance."""

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.x = np.linspace(0, 10, 40)
        self.true = np.column_stack([rng.uniform(20, 60, n), rng.uniform(1.0, 3.0, n),
                                     rng.uniform(0.5, 2.0, n)])
        self.y = rng.poisson(self.f(self.true)).astype(float)  # zero counts kept

    def f(self, t):
        return t[:, :1] * np.exp(-self.x / t[:, 1:2]) + t[:, 2:3]

    def df(self, t):
        e = np.exp(-self.x / t[:, 1:2])
        return [e, t[:, :1] * e * self.x / t[:, 1:2] ** 2, np.ones_like(e)]

    def deviance(self, f, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            ylog = np.where(y > 0, y * np.log(y / f), 0.0)
        return 2.0 * np.sum(f - y + ylog, axis=-1)

    def evaluate(self, theta, idx):
        f = self.f(theta)
        with np.errstate(invalid="ignore", divide="ignore"):
            root = np.where(f > 0, np.sqrt(f), np.nan)
        y = self.y[idx]
        r = (f - y) / root

        def columns(sel, rel_step):
            return [c[sel] / root[sel] for c in self.df(theta)], 0

        return r, columns, self.deviance(f, y)


def test_cost_hook_minimizes_poisson_deviance():
    from scipy.optimize import minimize

    prob = PoissonDecay(12, seed=21)
    assert (prob.y == 0).any(), "zero counts must be part of the test"
    start = prob.true * 1.3
    res = solve(None, start, evaluate=prob.evaluate, return_jac=False)
    assert (res.status == Status.CONVERGED).all()
    for i in range(12):
        def nll(t, i=i):  # negative log-likelihood up to a constant
            f = prob.f(t[None])[0]
            return np.sum(f - prob.y[i] * np.log(f)) if (f > 0).all() else np.inf

        ref = minimize(nll, start[i], method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000,
                                "maxfev": 20000})
        np.testing.assert_allclose(res.theta[i], ref.x, rtol=1e-4)
        assert nll(res.theta[i]) <= ref.fun + 1e-9
        np.testing.assert_allclose(res.cost[i], prob.deviance(prob.f(res.theta[i:i + 1]),
                                                              prob.y[i:i + 1])[0], rtol=1e-12)
    # the hook's cost is not sum(r**2): the minimum differs from the chi-square one
    chi = solve(None, start, evaluate=lambda t, i: prob.evaluate(t, i)[:2], return_jac=False)
    assert np.abs(chi.theta - res.theta).max() > 1e-3


def bounded_decay(n, seed):
    """Decays with per-curve boxes: c forced onto a lower bound, tau onto an upper one."""
    prob, start = make(Decay, n, seed=seed)
    lo, hi = np.full((n, 3), -np.inf), np.full((n, 3), np.inf)
    lo[::2, 2] = prob.theta[::2, 2] + 0.3
    hi[1::4, 1] = 0.8 * prob.theta[1::4, 1]
    lo[:, 0] = 0.0
    return prob, np.clip(start, lo, hi), lo, hi


def test_per_curve_bounds_against_trf():
    from scipy.optimize import least_squares

    n = 24
    prob, start, lo, hi = bounded_decay(n, seed=15)
    res = solve(prob.resid, start, jac=prob.jac, lower=lo, upper=hi)
    assert (res.status == Status.CONVERGED).all()
    on = (res.theta == lo) | (res.theta == hi)
    np.testing.assert_array_equal(on[:, 2], np.arange(n) % 2 == 0)
    np.testing.assert_array_equal(on[:, 1], np.arange(n) % 4 == 1)
    for i in range(n):
        plain = Decay(prob.x, prob.y[i : i + 1], None)
        ref = least_squares(lambda t, p=plain: p.resid(t[None], [0])[0], start[i],
                            jac=lambda t, p=plain: p.jac(t[None], [0], None)[0],
                            bounds=(lo[i], hi[i]), method="trf", x_scale="jac",
                            ftol=1e-12, xtol=1e-12, gtol=1e-12)
        b = on[i]
        np.testing.assert_allclose(ref.x[b], res.theta[i, b], rtol=1e-6, atol=1e-12)
        jf = res.jac_at_solution[i][:, ~b]
        cov = np.linalg.inv(jf.T @ jf) * res.cost[i] / (prob.x.size - (~b).sum())
        assert np.all(np.abs(ref.x[~b] - res.theta[i, ~b]) <= 1e-3 * np.sqrt(np.diag(cov)))
        np.testing.assert_allclose(res.cost[i], 2 * ref.cost, rtol=1e-9)
    free = solve(prob.resid, start, jac=prob.jac)  # no bounds: the interior reference
    assert np.median(res.nfev) <= np.median(free.nfev) + 2
    assert res.nfev.max() <= 5 * np.median(res.nfev)


def test_bounded_results_do_not_depend_on_pool_size():
    prob, start, lo, hi = bounded_decay(50, seed=16)
    ref = solve(prob.resid, start, jac=prob.jac, lower=lo, upper=hi, block_size=7)
    for bs in (1, 16, 1000):
        same(ref, solve(prob.resid, start, jac=prob.jac, lower=lo, upper=hi, block_size=bs),
             slice(None), slice(None))


def test_bad_bounds_raise():
    prob, start = make(Decay, 3, seed=17)
    with pytest.raises(ValueError, match="must broadcast"):
        solve(prob.resid, start, lower=np.zeros(2))
    with pytest.raises(ValueError, match="must not exceed"):
        solve(prob.resid, start, lower=np.ones(3), upper=np.zeros(3))


def test_valley_without_end_stalls_early():
    """Gaussians from one global start: the few that slide into an ever wider parabola
    (amplitude and baseline growing and cancelling) stop early as STALLED; the others
    converge at the minimum (2 of 300 stall since the trust radius, 12 before it, and 3
    then converged above the cost of the true parameters)."""
    n, x = 300, np.linspace(-10, 10, 128)
    rng = np.random.default_rng(0)
    sig = rng.uniform(1.0, 3.0, n)
    true = np.column_stack([rng.uniform(2, 5, n), rng.uniform(-2, 2, n) * sig, sig,
                            rng.uniform(-1, 1, n), rng.uniform(-0.1, 0.1, n)])
    prob = GaussLine(x, None, true)
    prob.y = prob.f(true) + rng.normal(0.0, 0.1, (n, x.size))
    start = np.broadcast_to(true.mean(axis=0), true.shape).copy()
    res = solve(prob.resid, start, jac=prob.jac, return_jac=False)
    stalled = res.status == Status.STALLED
    assert stalled.sum() >= 1 and (res.status != Status.MAX_NFEV).all()
    conv = res.status == Status.CONVERGED
    cost_true = np.sum((prob.y - prob.f(true)) ** 2, axis=1)
    assert (res.cost[conv] <= 1.01 * cost_true[conv]).all()
    assert res.nfev[stalled].max() < 400 < 200 * 6
    assert (np.abs(res.theta[stalled, 0]) > 20 * np.abs(true[stalled, 0])).all()
    # long runs through pools of every size (down to one curve, whose row is
    # contiguous where a pool's rows are strided): not one bit changes
    rows = np.r_[np.flatnonzero(stalled)[:6], np.flatnonzero(~stalled)[:4]]
    sub = GaussLine(x, prob.y[rows], None)
    ref = solve(sub.resid, start[rows], jac=sub.jac, block_size=1, return_jac=False)
    same(ref, res, slice(None), rows)
    same(ref, solve(sub.resid, start[rows], jac=sub.jac, block_size=3, return_jac=False),
         slice(None), slice(None))


class TwoPeaks(Problem):
    """Two Gaussians on a quadratic: k = 9, above the kernel's small-k loops."""

    k = 9

    def f(self, t):
        a1, c1, s1, a2, c2, s2, q0, q1, q2 = self.cols(t)
        x = self.x
        return (a1 * np.exp(-0.5 * ((x - c1) / s1) ** 2) + a2 * np.exp(-0.5 * ((x - c2) / s2) ** 2)
                + q0 + q1 * x + q2 * x * x)

    def df(self, t):
        a1, c1, s1, a2, c2, s2, *_ = self.cols(t)
        x, out = self.x, []
        for a, c, s in ((a1, c1, s1), (a2, c2, s2)):
            u = (x - c) / s
            e = np.exp(-0.5 * u * u)
            out += [e, a * e * u / s, a * e * u * u / s]
        one = np.ones_like(out[0])
        return np.stack(out + [one, x * one, x * x * one], axis=-1)


def test_nine_parameters_match_minpack_and_ignore_the_pool():
    rng = np.random.default_rng(21)
    n, x = 12, np.linspace(-10, 10, 150)
    true = np.column_stack([rng.uniform(3, 5, n), rng.uniform(-4, -2, n), rng.uniform(0.8, 1.5, n),
                            rng.uniform(3, 5, n), rng.uniform(2, 4, n), rng.uniform(0.8, 1.5, n),
                            rng.uniform(-1, 1, n), rng.uniform(-0.1, 0.1, n),
                            rng.uniform(-0.01, 0.01, n)])
    prob = TwoPeaks(x, None, true)
    prob.y = prob.f(true) + rng.normal(0, 0.1, (n, x.size))
    start = true + rng.normal(0, 0.05, true.shape) * np.maximum(np.abs(true), 0.1)
    res = solve(prob.resid, start, jac=prob.jac, block_size=1)
    assert (res.status == Status.CONVERGED).all()
    same(res, solve(prob.resid, start, jac=prob.jac, block_size=5), slice(None), slice(None))
    for i in range(n):
        one = TwoPeaks(x, prob.y[i : i + 1], None)
        t, cov, info, _, ier = leastsq(lambda p, o=one: o.resid(p[None], [0])[0], start[i],
                                       Dfun=lambda p, o=one: o.jac(p[None], [0], None)[0],
                                       full_output=True, ftol=1e-10, xtol=1e-10)
        cost = np.sum(info["fvec"] ** 2)
        np.testing.assert_allclose(res.cost[i], cost, rtol=1e-10)
        stderr = np.sqrt(np.diag(cov) * cost / (x.size - 9))
        assert np.all(np.abs(res.theta[i] - t) <= 1e-3 * stderr)
