"""Bad curves never raise, get a status and NaN values, and never touch good curves."""

from __future__ import annotations

import numpy as np
import pytest

import batchfit
from batchfit.models import function_model, gaussian, linear
from batchfit.status import Status

from .reference import assert_results_identical, minimize_each, truth_columns

X = np.linspace(-10.0, 10.0, 101)
T = np.linspace(0.0, 10.0, 60)
BAD = (Status.BAD_DATA, Status.MODEL_ERROR)


def _composite():
    model = gaussian(prefix="p1_") + gaussian(prefix="p2_") + linear(prefix="bg_")
    params = model.make_params(
        p1_amplitude={"value": 8.0, "min": 0.0}, p1_center=-2.0, p1_sigma=1.0,
        p2_amplitude={"value": 8.0, "min": 0.0}, p2_center=2.0,
        p2_sigma={"expr": "p1_sigma"}, bg_slope=0.0, bg_intercept=0.0,
    )
    return model, params


def _good_curves(n, seed=0):
    rng = np.random.default_rng(seed)
    model, _ = _composite()
    s = rng.uniform(0.7, 1.3, n)
    truth = {"p1_amplitude": rng.uniform(6, 14, n), "p1_center": rng.uniform(-3, -1, n),
             "p1_sigma": s, "p2_amplitude": rng.uniform(6, 14, n),
             "p2_center": rng.uniform(1, 3, n), "p2_sigma": s,
             "bg_slope": rng.uniform(-0.05, 0.05, n), "bg_intercept": rng.uniform(-0.5, 0.5, n)}
    return model(X, **truth_columns(truth)) + rng.normal(0.0, 0.1, (n, X.size))


def _bad_curves(good_row):
    """Named bad curves for the composite model (7 varied parameters)."""
    few = np.full(X.size, np.nan)
    few[::17] = good_row[::17]  # 6 finite points
    inf = good_row.copy()
    inf[::2] = np.inf
    inf[1::2] = -np.inf
    return {
        "all_nan": np.full(X.size, np.nan),
        "constant": np.full(X.size, 3.0),
        "constant_with_nan": np.where(np.arange(X.size) % 3, 3.0, np.nan),
        "all_inf": np.full(X.size, np.inf),
        "mixed_inf": inf,
        "too_few_points": few,
    }


def test_bad_data_curves_get_bad_data_status_and_nan():
    model, params = _composite()
    good = _good_curves(1)
    bad = _bad_curves(good[0])
    y = np.vstack([good, *bad.values()])
    res = batchfit.fit_batch(model, params, X, y, covar=True)
    assert res.status[0] == Status.CONVERGED and res.success[0]
    for i, name in enumerate(bad, start=1):
        assert res.status[i] == Status.BAD_DATA, name
        assert not res.success[i], name
        for p in res.names:
            assert np.isnan(res.values[p][i]) and np.isnan(res.stderr[p][i]), (name, p)
        assert np.isnan(res.chisqr[i]) and np.isnan(res.redchi[i])
        assert np.all(np.isnan(res.covar[i]))
    assert res.ndata[1 + list(bad).index("too_few_points")] == 6


def test_exactly_nvar_points_fit_without_errors():
    """As many points as varied parameters: fitted, but no degrees of freedom left."""
    model, params = _composite()
    good = _good_curves(1)[0]
    y = np.full(X.size, np.nan)
    keep = np.array([10, 25, 40, 50, 60, 75, 90])
    y[keep] = good[keep]
    res = batchfit.fit_batch(model, params, X, y[None, :])
    assert res.ndata[0] == 7
    assert res.status[0] != Status.BAD_DATA
    assert np.isnan(res.redchi[0])


def test_some_nan_points_fit_on_the_rest():
    """A curve with NaN (or inf, or dropped-sigma) points equals a fit of the rest."""
    model, params = _composite()
    y = _good_curves(6, seed=3)
    rng = np.random.default_rng(4)
    holes = [rng.choice(X.size, k, replace=False) for k in (1, 5, 20, 40, 3, 10)]
    ragged = y.copy()
    for i, h in enumerate(holes):
        ragged[i, h] = np.nan if i % 2 == 0 else np.inf
    sigma = np.full(y.shape, 0.1)
    sigma[5, :7] = np.nan  # a non-finite sigma drops the point too
    sigma[5, 7:9] = 0.0
    res = batchfit.fit_batch(model, params, X, ragged, sigma=sigma)
    ref = minimize_each(model, params, X, ragged, sigma=sigma)
    for i, h in enumerate(holes):
        keep = np.ones(X.size, bool)
        keep[h] = False
        if i == 5:
            keep[:9] = False
        alone = batchfit.fit_batch(model, params, X[keep], y[i][keep], sigma=0.1)
        assert res.ndata[i] == keep.sum() == alone.ndata[0] == ref["ndata"][i]
        assert res.success[i] and alone.success[0] and ref["success"][i]
        for p in res.names:
            se = alone.stderr[p][0]
            assert abs(res.values[p][i] - alone.values[p][0]) <= 1e-6 * se, p
            assert res.stderr[p][i] == pytest.approx(se, rel=1e-6), p
            assert abs(res.values[p][i] - ref["values"][p][i]) <= 1e-3 * se, p
        assert res.chisqr[i] == pytest.approx(alone.chisqr[0], rel=1e-9)


def _singular_starts(n_good, n_sing):
    """init that puts the first peak far outside the data: its columns vanish."""
    c = np.full(n_good + n_sing, np.nan)
    c[n_good:] = 1e6
    return {"p1_center": c}


def test_singular_system_is_contained():
    model, params = _composite()
    good = _good_curves(3)
    y = np.vstack([good, good])
    init = _singular_starts(3, 3)
    res = batchfit.fit_batch(model, params, X, y, init=init, covar=True)
    alone = batchfit.fit_batch(model, params, X, good, covar=True)
    assert_results_identical(res, alone, rows_a=slice(0, 3))
    for i in range(3, 6):  # no error estimate from a singular system
        assert not res.success[i] or np.isnan(res.stderr["p1_amplitude"][i])
        assert res.status[i] in (Status.CONVERGED, Status.MODEL_ERROR, Status.MAX_NFEV)


def _mixed_batch(good, seed, n_total):
    """Good curves scattered at random rows among many bad ones (all kinds)."""
    rng = np.random.default_rng(seed)
    bad = list(_bad_curves(good[0]).values())
    y = np.vstack([bad[i % len(bad)] for i in range(n_total)])
    rows = np.sort(rng.choice(n_total, len(good), replace=False))
    y[rows] = good
    c = np.full(n_total, np.nan)
    # some rows are good data with a singular start (zero Jacobian columns)
    sing = np.setdiff1d(np.arange(0, n_total, 7), rows)
    y[sing] = good[np.arange(sing.size) % len(good)]
    c[sing] = 1e6
    return y, rows, {"p1_center": c}


def test_good_curves_bit_identical_alone_and_among_bad_ones():
    model, params = _composite()
    good = _good_curves(12, seed=9)
    alone = batchfit.fit_batch(model, params, X, good, covar=True)
    assert alone.success.all()
    for seed, n_total in ((1, 40), (2, 700)):  # 700 rows spans two kernel blocks
        y, rows, init = _mixed_batch(good, seed, n_total)
        res = batchfit.fit_batch(model, params, X, y, init=init, covar=True)
        assert_results_identical(res, alone, rows_a=rows)
        others = np.setdiff1d(np.arange(n_total), rows)
        assert not np.any(res.status[others] == Status.NOT_RUN)


def test_good_curves_bit_identical_in_any_position():
    model, params = _composite()
    good = _good_curves(20, seed=10)
    ref = batchfit.fit_batch(model, params, X, good, covar=True)
    perm = np.random.default_rng(0).permutation(20)
    shuffled = batchfit.fit_batch(model, params, X, good[perm], covar=True)
    assert_results_identical(shuffled, ref, rows_b=perm)
    reverse = batchfit.fit_batch(model, params, X, good[::-1], covar=True)
    assert_results_identical(reverse, ref, rows_b=slice(None, None, -1))
    for i in (0, 7, 19):
        one = batchfit.fit_batch(model, params, X, good[i : i + 1], covar=True)
        assert_results_identical(one, ref, rows_b=slice(i, i + 1))


def _decay_data(n, seed):
    rng = np.random.default_rng(seed)
    amp, tau = rng.uniform(50, 150, n), rng.uniform(1.5, 3.0, n)
    y = amp[:, None] * np.exp(-T / tau[:, None]) + rng.normal(0.0, 1.0, (n, T.size))
    return y, amp, tau


@pytest.mark.usefixtures("bad_models_path")
def test_model_that_raises_is_a_model_error():
    model = function_model("bad_models:decay_raises")
    params = model.make_params(amp=80.0, tau=2.0)
    y, amp, tau = _decay_data(10, seed=20)
    tau0 = np.full(10, np.nan)
    tau0[[1, 4, 5, 9]] = -1.0  # the model raises ValueError at these starts
    res = batchfit.fit_batch(model, params, T, y, init={"tau": tau0})
    bad = np.isfinite(tau0)
    assert np.all(res.status[bad] == Status.MODEL_ERROR)
    assert not res.success[bad].any()
    for p in res.names:
        assert np.all(np.isnan(res.values[p][bad])) and np.all(np.isnan(res.stderr[p][bad]))
    alone = batchfit.fit_batch(model, params, T, y[~bad])
    assert alone.success.all()
    assert_results_identical(res, alone, rows_a=~bad)
    ref = minimize_each(model, params, T, y[~bad])
    for p in res.names:
        d = np.abs(alone.values[p] - ref["values"][p]) / ref["stderr"][p]
        assert d.max() <= 1e-3, p


@pytest.mark.usefixtures("bad_models_path")
def test_model_that_returns_nan_is_a_model_error():
    model = function_model("bad_models:decay_nan")
    params = model.make_params(amp=80.0, tau=2.0)
    y, amp, tau = _decay_data(10, seed=21)
    amp0 = np.full(10, np.nan)
    amp0[[0, 3, 8]] = 5000.0  # NaN model values at these starts
    res = batchfit.fit_batch(model, params, T, y, init={"amp": amp0})
    bad = np.isfinite(amp0)
    assert np.all(res.status[bad] == Status.MODEL_ERROR)
    for p in res.names:
        assert np.all(np.isnan(res.values[p][bad]))
    alone = batchfit.fit_batch(model, params, T, y[~bad])
    assert alone.success.all()
    assert_results_identical(res, alone, rows_a=~bad)


@pytest.mark.usefixtures("bad_models_path")
def test_model_nan_beyond_the_optimum_never_raises():
    """Data that pull amp into the NaN region: every curve gets some status, no exception."""
    model = function_model("bad_models:decay_nan")
    params = model.make_params(amp=500.0, tau=2.0)
    rng = np.random.default_rng(22)
    y = 1500.0 * np.exp(-T / 2.0) + rng.normal(0.0, 1.0, (5, T.size))
    good, _, _ = _decay_data(3, seed=23)
    res = batchfit.fit_batch(model, params, T, np.vstack([y, good]))
    assert np.all(res.status != Status.NOT_RUN)
    assert np.all(np.isnan(res.values["amp"][:5]) | (res.values["amp"][:5] <= 1000.0))
    alone = batchfit.fit_batch(model, params, T, good)
    assert_results_identical(res, alone, rows_a=slice(5, None))


@pytest.mark.usefixtures("bad_models_path")
def test_user_model_batch_full_of_bad_curves():
    """All kinds of bad curve with a finite-difference user model; good rows untouched."""
    model = function_model("bad_models:decay_raises")
    params = model.make_params(amp=80.0, tau=2.0)
    good, _, _ = _decay_data(5, seed=24)
    rows = np.array([0, 6, 13, 17, 29])
    y = np.full((30, T.size), np.nan)
    y[1::4] = 4.0
    y[2::4, :1] = 1.0  # one finite point, two varied parameters
    y[3::4] = np.inf
    tau0 = np.full(30, np.nan)
    tau0[4::4] = -3.0
    y[4::4] = good[0]
    y[rows] = good
    tau0[rows] = np.nan
    res = batchfit.fit_batch(model, params, T, y, init={"tau": tau0})
    alone = batchfit.fit_batch(model, params, T, good)
    assert_results_identical(res, alone, rows_a=rows)
    others = np.setdiff1d(np.arange(30), rows)
    assert np.all(np.isin(res.status[others], BAD))
    assert not res.success[others].any()
