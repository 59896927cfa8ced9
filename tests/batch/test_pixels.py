"""Per-curve values, bounds and vary flags (``init`` of fit_batch and fit).

References: ``scipy.optimize.least_squares(method='trf')`` called directly per
curve with that curve's bounds, and the core's ``minimize`` per curve with the
curve's settings put on its Parameters.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from scipy.optimize import least_squares

import batchfit
from batchfit.errors import InputError, ParameterError
from batchfit.models import gaussian, linear

NAMES = ("p1_amplitude", "p1_center", "p1_sigma", "bg_slope", "bg_intercept")


def _cube(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(-6, 6, 81)
    truth = {"p1_amplitude": rng.uniform(8, 12, n), "p1_center": rng.uniform(-1, 1, n),
             "p1_sigma": rng.uniform(0.8, 1.2, n), "bg_slope": rng.uniform(-0.05, 0.05, n),
             "bg_intercept": rng.uniform(0, 1, n)}
    model = gaussian(prefix="p1_") + linear(prefix="bg_")
    y = model(x, **{k: v[:, None] for k, v in truth.items()}) + rng.normal(0, 0.1, (n, x.size))
    params = model.make_params(p1_amplitude=10, p1_center=0, p1_sigma={"value": 1, "min": 0.1},
                               bg_slope=0, bg_intercept=0.5)
    return model, params, x, y, truth


def _trf(model, x, y, start, lo, hi):
    def resid(p):
        return model(x, **dict(zip(NAMES, p, strict=True))) - y

    out = least_squares(resid, np.clip(start, lo, hi), bounds=(lo, hi), method="trf",
                        x_scale="jac", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    return out.x


def test_per_curve_bounds_change_the_solution_like_trf_and_minimize():
    model, params, x, y, truth = _cube()
    n = y.shape[0]
    bound = np.where(np.arange(n) % 2 == 0, truth["p1_sigma"] * 0.7, np.nan)  # half the curves
    res = batchfit.fit_batch(model, params, x, y, init={"p1_sigma_max": bound}, sigma=0.1)
    free = batchfit.fit_batch(model, params, x, y, sigma=0.1)
    assert res.success.all()
    bounded = np.isfinite(bound)
    np.testing.assert_array_equal(res.values["p1_sigma"][bounded], bound[bounded])
    assert np.isnan(res.stderr["p1_sigma"][bounded]).all()  # held at its bound
    assert (np.abs(res.values["p1_amplitude"] - free.values["p1_amplitude"])[bounded]
            > 5 * free.stderr["p1_amplitude"][bounded]).all()  # the bound changed the fit
    for name in NAMES:  # the other half is untouched
        np.testing.assert_array_equal(res.values[name][~bounded], free.values[name][~bounded])
    lo = np.array([-np.inf, -np.inf, 0.1, -np.inf, -np.inf])
    start = np.array([params[k].value for k in NAMES])
    for i in range(n):
        hi = np.full(5, np.inf)
        hi[2] = bound[i] if bounded[i] else np.inf
        ref = _trf(model, x, y[i], start, lo, hi)
        got = np.array([res.values[k][i] for k in NAMES])
        sd = np.array([free.stderr[k][i] for k in NAMES])
        assert np.all(np.abs(got - ref) <= 1e-3 * sd), (i, got, ref)
        pars = params.copy()
        if bounded[i]:  # the core's MINPACK transform cannot leave a start on the bound
            pars["p1_sigma"].value, pars["p1_sigma"].max = 0.95 * bound[i], bound[i]
        core = batchfit.minimize(lambda p, i=i: (y[i] - model.eval(p, x)) / 0.1, pars)
        for k in NAMES:
            assert abs(pars[k].value - res.values[k][i]) <= 1e-3 * free.stderr[k][i], (i, k)
        np.testing.assert_allclose(core.chisqr, res.chisqr[i], rtol=1e-7)


def test_per_curve_vary_and_held_values_like_minimize():
    model, params, x, y, truth = _cube(n=40, seed=1)
    n = y.shape[0]
    hold = np.arange(n) % 3 == 0  # bg_slope held at its true value in a third of the curves
    init = {"bg_slope_vary": ~hold, "bg_slope": np.where(hold, truth["bg_slope"], np.nan),
            "p1_center": truth["p1_center"] + 0.3}
    res = batchfit.fit_batch(model, params, x, y, init=init, sigma=0.1, covar=True)
    assert res.success.all()
    np.testing.assert_array_equal(res.values["bg_slope"][hold], truth["bg_slope"][hold])
    assert (res.stderr["bg_slope"][hold] == 0).all() and (res.stderr["bg_slope"][~hold] > 0).all()
    np.testing.assert_array_equal(res.nfree, x.size - np.where(hold, 4, 5))
    j = res.var_names.index("bg_slope")
    assert (res.covar[hold][:, j, :] == 0).all()
    for i in range(n):
        pars = params.copy()
        pars["p1_center"].value = init["p1_center"][i]
        if hold[i]:
            pars["bg_slope"].value, pars["bg_slope"].vary = truth["bg_slope"][i], False
        core = batchfit.minimize(lambda p, i=i: (y[i] - model.eval(p, x)) / 0.1, pars)
        for k in NAMES:
            sd = max(pars[k].stderr, 1e-12)
            assert abs(pars[k].value - res.values[k][i]) <= 1e-3 * sd, (i, k)
        np.testing.assert_allclose([res.aic[i], res.bic[i]], [core.aic, core.bic], rtol=1e-9)
        assert res.nfree[i] == core.nfree


def test_template_fixed_parameter_varies_where_asked():
    model, params, x, y, truth = _cube(n=20, seed=2)
    params["bg_slope"].vary = False
    vary = np.arange(20) % 2 == 0
    res = batchfit.fit_batch(model, params, x, y, init={"bg_slope_vary": vary}, sigma=0.1)
    loop = batchfit.fit_batch(model, params, x, y, init={"bg_slope_vary": vary}, sigma=0.1,
                              engine="leastsq")
    assert res.success.all() and loop.success.all()
    assert (res.values["bg_slope"][~vary] == 0).all() and (res.stderr["bg_slope"][~vary] == 0).all()
    assert (res.values["bg_slope"][vary] != 0).all()
    np.testing.assert_allclose(res.values["bg_slope"], loop.values["bg_slope"],
                               atol=1e-3 * np.nanmax(res.stderr["bg_slope"]))
    np.testing.assert_array_equal(res.nfree, loop.nfree)


def test_values_of_a_fixed_parameter_without_vary_warn_that_they_are_unused():
    """Per-curve values of a fixed parameter apply only with ``_vary``: say so when they differ."""
    from batchfit.errors import BatchfitWarning

    model, params, x, y, truth = _cube(n=20, seed=3)
    params["bg_slope"].vary = False
    held = truth["bg_slope"]
    with pytest.warns(BatchfitWarning, match=r"values of 'bg_slope', which the template fixes "
                                             r"at 0.*bg_slope_vary=False"):
        unused = batchfit.fit_batch(model, params, x, y, init={"bg_slope": held}, sigma=0.1)
    assert (unused.values["bg_slope"] == 0).all()
    used = batchfit.fit_batch(model, params, x, y, sigma=0.1,
                              init={"bg_slope": held, "bg_slope_vary": np.zeros(20, bool)})
    np.testing.assert_array_equal(used.values["bg_slope"], held)
    same = {"bg_slope": np.zeros(20), "bg_intercept": np.full(20, np.nan)}  # an earlier result
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batchfit.fit_batch(model, params, x, y, init=same, sigma=0.1)


def test_bad_per_curve_settings_name_the_variable_and_curve():
    model, params, x, y, _ = _cube(n=6)
    lo = np.zeros(6)
    hi = np.ones(6)
    hi[3] = -1.0
    with pytest.raises(ParameterError, match=r"p1_center_min > p1_center_max in 1 curve\(s\), "
                                             r"the first is curve 3"):
        batchfit.fit_batch(model, params, x, y, init={"p1_center_min": lo, "p1_center_max": hi})
    with pytest.raises(ParameterError, match=r"p1_sigma_min > p1_sigma_max .* curve 0"):
        batchfit.fit_batch(model, params, x, y, init={"p1_sigma_max": np.full(6, 0.05)})
    with pytest.raises(InputError, match=r"init\['p1_center_max'\] has shape \(5,\)"):
        batchfit.fit_batch(model, params, x, y, init={"p1_center_max": np.ones(5)})
    params["bg_slope"].expr = "0.01 * p1_center"
    with pytest.raises(ParameterError, match="'bg_slope_vary': 'bg_slope' is tied"):
        batchfit.fit_batch(model, params, x, y, init={"bg_slope_vary": np.ones(6, bool)})


@pytest.mark.parametrize("init, error, message", [
    ({"p1_centre_min": np.zeros(6)}, ParameterError,
     r"'p1_centre_min' sets the min of 'p1_centre', which is not a parameter .* "
     r"did you mean 'p1_center_min'\?"),
    ({"p1_center_min": np.where(np.arange(6) == 4, np.inf, 0.0)}, ParameterError,
     r"init\['p1_center_min'\] is inf in 1 curve\(s\), the first is curve 4: a minimum of "
     r"\+inf leaves no value"),
    ({"p1_center_max": np.full(6, -np.inf)}, ParameterError,
     r"init\['p1_center_max'\] is -inf in 6 curve\(s\), the first is curve 0"),
    ({"bg_slope_vary": np.array([0, 1, 2, 1, 0, 1])}, ParameterError,
     r"init\['bg_slope_vary'\] is 2.0 in 1 curve\(s\), the first is curve 2: a vary flag "
     r"must be 0/1"),
    ({"p1_center_min": np.array(["low"] * 6)}, InputError,
     r"init\['p1_center_min'\] must hold numbers"),
])
def test_misspelt_or_impossible_settings_are_errors_not_ignored(init, error, message):
    model, params, x, y, _ = _cube(n=6)
    with pytest.raises(error, match=message):
        batchfit.fit_batch(model, params, x, y, init=init)


def test_nan_and_open_bounds_keep_the_template_and_other_keys_are_ignored():
    """NaN keeps the template's setting, -inf/inf mean no bound, and names that are
    not settings (an earlier result's ``_stderr``, ``chisqr``) are ignored."""
    model, params, x, y, _ = _cube(n=6)
    plain = batchfit.fit_batch(model, params, x, y)
    same = batchfit.fit_batch(model, params, x, y, init={
        "p1_center_min": np.full(6, -np.inf), "p1_center_max": np.full(6, np.nan),
        "bg_slope_vary": np.full(6, np.nan), "p1_center_stderr": np.ones(6),
        "chisqr": np.ones(6)})
    for name in plain.values:
        np.testing.assert_array_equal(same.values[name], plain.values[name])


def test_fit_takes_a_dataset_of_settings_over_pixel_dims():
    model, params, x, y, truth = _cube(n=24, seed=3)
    da = xr.DataArray(y.reshape(4, 6, -1), dims=("row", "col", "e"),
                      coords={"row": [10, 20, 30, 40], "col": np.arange(6) * 0.5, "e": x})
    bound = xr.DataArray(np.where(np.arange(24) % 2 == 0, truth["p1_sigma"] * 0.7, np.nan)
                         .reshape(4, 6), dims=("row", "col"))
    ds = batchfit.fit(da, model, params, "e", sigma=0.1,
                      init=xr.Dataset({"p1_sigma_max": bound, "chisqr": bound}))
    ref = batchfit.fit_batch(model, params, x, y, sigma=0.1,
                             init={"p1_sigma_max": bound.values.ravel()})
    np.testing.assert_array_equal(ds.p1_sigma.values.ravel(), ref.values["p1_sigma"])
    bad = xr.DataArray(np.zeros((4, 6)), dims=("row", "col")).copy()
    bad[2, 1] = 5.0
    with pytest.raises(ParameterError, match=r"p1_center_min > p1_center_max at 1 pixel\(s\), "
                                             r"the first at row=30, col=0.5 \(min=5.0, "
                                             r"max=1.0\)"):
        batchfit.fit(da, model, params, "e", init={"p1_center_min": bad,
                                                    "p1_center_max": bad * 0 + 1.0})
    with pytest.raises(InputError, match=r"init\['p1_center'\] has dims \['band'\]"):
        batchfit.fit(da, model, params, "e", init={"p1_center": xr.DataArray([1.0],
                                                                              dims="band")})
