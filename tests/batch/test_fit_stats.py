"""fit_batch's statistics: scale_covar, ndata, nfree, aic and bic per curve.

References: ``scipy.optimize.curve_fit`` called directly (``absolute_sigma``
is scale_covar's opposite), and the core's :func:`batchfit.minimize` per
curve for ndata/nfree/aic/bic.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit

import batchfit
from batchfit.models import constant, exponential, gaussian, linear

from .reference import minimize_each


def _decays(n=40, seed=1):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 8.0, 60)
    amp, tau, c = rng.uniform(50, 150, n), rng.uniform(1, 3, n), rng.uniform(0, 5, n)
    clean = amp[:, None] * np.exp(-x / tau[:, None]) + c[:, None]
    sigma = rng.uniform(0.5, 2.0, (n, x.size))
    y = clean + rng.normal(0.0, 1.0, clean.shape) * sigma * rng.uniform(0.5, 2.0, (n, 1))
    model = exponential() + constant(prefix="bg_")
    params = model.make_params(amplitude=100.0, decay=2.0, bg_c=1.0)
    return model, params, x, y, sigma


def _curve_fit_stderr(x, y, s, absolute):
    def f(x, a, tau, c):
        return a * np.exp(-x / tau) + c

    def jac(x, a, tau, c):
        e = np.exp(-x / tau)
        return np.stack([e, a * e * x / tau**2, np.ones_like(x)], axis=1)

    p, cov = curve_fit(f, x, y, p0=[100.0, 2.0, 1.0], sigma=s, absolute_sigma=absolute,
                       jac=jac, method="trf", ftol=1e-14, xtol=1e-14, gtol=1e-14)
    return p, np.sqrt(np.diag(cov))


@pytest.mark.parametrize("scale_covar", [False, True])
def test_stderr_matches_curve_fit_absolute_sigma(scale_covar):
    model, params, x, y, sigma = _decays()
    res = batchfit.fit_batch(model, params, x, y, sigma=sigma, scale_covar=scale_covar)
    assert res.success.all()
    for i in range(y.shape[0]):
        p, sd = _curve_fit_stderr(x, y[i], sigma[i], absolute=not scale_covar)
        got = [res.stderr[k][i] for k in ("amplitude", "decay", "bg_c")]
        np.testing.assert_allclose(got, sd, rtol=1e-6, err_msg=f"curve {i}")
    # the two settings differ by exactly sqrt(redchi), which is far from 1 here
    other = batchfit.fit_batch(model, params, x, y, sigma=sigma, scale_covar=not scale_covar)
    ratio = res.stderr["decay"] / other.stderr["decay"]
    root = np.sqrt(res.redchi)
    np.testing.assert_allclose(ratio, root if scale_covar else 1 / root, rtol=1e-9)
    assert np.abs(np.log(root)).max() > 0.3


def test_core_scale_covar_matches_curve_fit():
    model, params, x, y, sigma = _decays(n=8, seed=2)
    for i in range(y.shape[0]):
        def residual(p, i=i):
            vals = {q: p[q].value for q in model.param_names}
            return (y[i] - model(x, **vals)) / sigma[i]

        pars = params.copy()
        out = batchfit.minimize(residual, pars, scale_covar=False)
        _, sd = _curve_fit_stderr(x, y[i], sigma[i], absolute=True)
        got = [pars[k].stderr for k in ("amplitude", "decay", "bg_c")]
        # The core's covariance comes from MINPACK's forward-difference Jacobian
        # of its last iterate (as lmfit's), good to about 1e-6, not from an
        # analytic one at the solution as the batch engine's: hence 1e-5 here.
        np.testing.assert_allclose(got, sd, rtol=1e-5)
        assert out.scale_covar is False


def test_ndata_nfree_aic_bic_equal_the_core_with_nan_points():
    model, params, x, y, sigma = _decays(n=30, seed=3)
    y = y.copy()
    rng = np.random.default_rng(4)
    for i in range(0, 30, 3):  # NaN points in every third curve change its ndata
        y[i, rng.choice(x.size, size=i // 3 + 1, replace=False)] = np.nan
    res = batchfit.fit_batch(model, params, x, y, sigma=sigma)
    ref = minimize_each(model, params, x, y, sigma=sigma)
    np.testing.assert_array_equal(res.ndata, ref["ndata"])
    assert len(set(res.ndata.tolist())) > 5
    np.testing.assert_array_equal(res.nfree, res.ndata - 3)
    for i in range(y.shape[0]):
        keep = np.isfinite(y[i])
        core = _core_fit(model, params, x[keep], y[i][keep], sigma[i][keep])
        assert res.nfree[i] == core.nfree
        np.testing.assert_allclose([res.aic[i], res.bic[i]], [core.aic, core.bic],
                                   rtol=1e-8, atol=1e-8)
    assert res.nfree.dtype == np.int32 and res.ndata.dtype == np.int32


def _core_fit(model, params, x, y, s):
    def residual(p):
        return (y - model(x, **{q: p[q].value for q in model.param_names})) / s

    return batchfit.minimize(residual, params.copy(), ftol=1e-10, xtol=1e-10)


def test_masked_curves_have_no_data_and_nan_criteria():
    model, params, x, y, sigma = _decays(n=6)
    mask = np.array([True, False] * 3)
    res = batchfit.fit_batch(model, params, x, y, sigma=sigma, mask=mask)
    assert (res.ndata[~mask] == 0).all() and (res.nfree[~mask] == 0).all()
    assert np.isnan(res.aic[~mask]).all() and np.isfinite(res.aic[mask]).all()


def test_bic_picks_the_second_component_where_it_exists():
    rng = np.random.default_rng(5)
    n, x = 200, np.linspace(-10, 10, 121)
    two = np.arange(n) % 2 == 1
    c1, c2 = rng.uniform(-4, -2, n), rng.uniform(2, 4, n)
    a2 = np.where(two, rng.uniform(3, 6, n), 0.0)
    g = lambda a, c: a[:, None] / np.sqrt(2 * np.pi) * np.exp(-((x - c[:, None]) ** 2) / 2)  # noqa: E731
    y = g(np.full(n, 8.0), c1) + g(a2, c2) + 0.2 + rng.normal(0, 0.1, (n, x.size))
    one_m = gaussian(prefix="p1_") + linear(prefix="bg_")
    two_m = one_m + gaussian(prefix="p2_")
    p1 = one_m.make_params(p1_amplitude=8, p1_center=-3, p1_sigma=1, bg_slope=0, bg_intercept=0)
    p2 = two_m.make_params(p1_amplitude=8, p1_center=-3, p1_sigma=1, bg_slope=0, bg_intercept=0,
                           p2_amplitude=4, p2_center=3, p2_sigma={"value": 1, "min": 0.3})
    r1 = batchfit.fit_batch(one_m, p1, x, y, sigma=0.1)
    r2 = batchfit.fit_batch(two_m, p2, x, y, sigma=0.1)
    pick_two = r2.bic < r1.bic
    assert np.mean(pick_two == two) >= 0.98
    # chi-square alone would pick the second component on most one-component pixels
    assert np.mean(r2.chisqr[~two] < r1.chisqr[~two]) > 0.5
