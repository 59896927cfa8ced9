"""Acceptance tests of fit_batch: the core's semantics on thousands of curves.

The reference for every number is the core, :func:`batchfit.minimize` with
``engine='leastsq'`` (scipy's MINPACK), run curve by curve from the same
starting values with the same tolerances; the truth of synthetic curves with
noise of known sigma checks the standard errors' calibration independently.
"""

from __future__ import annotations

import numpy as np
import pytest

import batchfit
from batchfit.models import constant, exponential, gaussian, linear, pseudo_voigt
from batchfit.status import Status

from .reference import (
    FTOL,
    XTOL,
    minimize_each,
    percentile_diff,
    truth_columns,
)

# ----------------------------------------------------------------- data sets


def _composite(n, rng):
    """Two Gaussians with a tied width and amplitudes bounded below, on a line."""
    model = gaussian(prefix="p1_") + gaussian(prefix="p2_") + linear(prefix="bg_")
    params = model.make_params(
        p1_amplitude={"value": 8.0, "min": 0.0}, p1_center=-2.0, p1_sigma=1.0,
        p2_amplitude={"value": 8.0, "min": 0.0}, p2_center=2.0,
        p2_sigma={"expr": "p1_sigma"}, bg_slope=0.0, bg_intercept=0.0,
    )
    x = np.linspace(-10.0, 10.0, 101)
    sig = rng.uniform(0.7, 1.3, n)
    truth = {
        "p1_amplitude": rng.uniform(6, 14, n), "p1_center": rng.uniform(-3, -1, n),
        "p1_sigma": sig, "p2_amplitude": rng.uniform(6, 14, n),
        "p2_center": rng.uniform(1, 3, n), "p2_sigma": sig,
        "bg_slope": rng.uniform(-0.05, 0.05, n), "bg_intercept": rng.uniform(-0.5, 0.5, n),
    }
    return model, params, x, truth, 0.1, _jitter(params, truth, rng)


def _decay(n, rng):
    """Exponential (decay bounded below) plus a constant, per-curve starts."""
    model = exponential() + constant(prefix="bg_")
    params = model.make_params(amplitude=1.0, decay={"value": 1.0, "min": 0.0}, bg_c=0.0)
    x = np.linspace(0.0, 10.0, 80)
    truth = {"amplitude": rng.uniform(50, 150, n), "decay": rng.uniform(1, 3, n),
             "bg_c": rng.uniform(0, 5, n)}
    starts = {k: v * rng.uniform(0.7, 1.3, n) for k, v in truth.items()}
    return model, params, x, truth, 1.0, starts


def _voigt(n, rng):
    """Pseudo-Voigt with fraction bounded on both sides, a fixed background."""
    model = pseudo_voigt() + constant(prefix="bg_")
    params = model.make_params(amplitude=30.0, center=0.0, sigma=1.0,
                               fraction={"value": 0.5, "min": 0.0, "max": 1.0},
                               bg_c={"value": 2.0, "vary": False})
    x = np.linspace(-8.0, 8.0, 90)
    truth = {"amplitude": rng.uniform(20, 40, n), "center": rng.uniform(-1, 1, n),
             "sigma": rng.uniform(0.8, 1.5, n), "fraction": rng.uniform(0.25, 0.75, n),
             "bg_c": np.full(n, 2.0)}
    return model, params, x, truth, 0.2, _jitter(params, truth, rng)


def _jitter(params, truth, rng):
    """Per-curve starting values: the truth of the varied parameters, 10% off."""
    return {k: v * rng.uniform(0.9, 1.1, v.size) for k, v in truth.items()
            if params[k].vary and params[k].expr is None}


DATASETS = {"composite": (_composite, 1500), "decay": (_decay, 2500), "voigt": (_voigt, 1000)}


class Case:
    """One data set fitted by fit_batch and by the per-curve core loop."""

    def __init__(self, name):
        make, n = DATASETS[name]
        rng = np.random.default_rng(sum(map(ord, name)))
        self.model, self.params, self.x, self.truth, self.noise, starts = make(n, rng)
        clean = self.model(self.x, **truth_columns(self.truth))
        self.y = clean + rng.normal(0.0, self.noise, clean.shape)
        self.batch = batchfit.fit_batch(self.model, self.params, self.x, self.y, init=starts,
                                        ftol=FTOL, xtol=XTOL, max_nfev=2000)
        self.ref = minimize_each(self.model, self.params, self.x, self.y, starts=starts,
                                 max_nfev=2000)
        self.both = self.batch.success & self.ref["success"]


@pytest.fixture(scope="module", params=sorted(DATASETS))
def case(request):
    return Case(request.param)


def test_success_agrees_with_core(case):
    agree = np.mean(case.batch.success == case.ref["success"])
    assert agree >= 0.99
    assert np.mean(case.batch.success) >= 0.98
    ok = case.batch.success
    assert np.all(case.batch.status[ok] == Status.CONVERGED)


def test_values_agree_with_core_within_1e3_stderr(case):
    for name in case.batch.names:
        if case.params[name].vary or case.params[name].expr:
            d = percentile_diff(case.batch.values[name], case.ref["values"][name],
                                case.ref["stderr"][name], where=case.both)
            assert d <= 1e-3, (name, d)
        else:  # fixed parameters keep their value
            assert np.all(case.batch.values[name][case.batch.success] == case.params[name].value)


def test_stderr_agrees_with_core_within_1e2_relative(case):
    for name in case.batch.names:
        if case.params[name].vary or case.params[name].expr:
            ref = case.ref["stderr"][name]
            d = percentile_diff(case.batch.stderr[name], ref, ref, where=case.both)
            assert d <= 1e-2, (name, d)
        else:  # held fixed: stderr 0, as in the core
            assert np.all(case.batch.stderr[name][case.batch.success] == 0.0)
            assert np.all(case.ref["stderr"][name][case.both] == 0.0)


def test_statistics_agree_with_core(case):
    b, r = case.batch, case.ref
    np.testing.assert_array_equal(b.ndata[case.both], r["ndata"][case.both])
    np.testing.assert_allclose(b.chisqr[case.both], r["chisqr"][case.both], rtol=1e-6)
    np.testing.assert_allclose(b.redchi[case.both], r["redchi"][case.both], rtol=1e-6)
    nfree = b.ndata - len(b.var_names)
    np.testing.assert_allclose(b.redchi[b.success], (b.chisqr / nfree)[b.success], rtol=1e-12)


def test_stderr_calibrated_against_truth(case):
    """Median |value - truth| / stderr is 0.674 for a well-estimated Gaussian error."""
    ok = case.batch.success
    for name in case.batch.names:
        if not (case.params[name].vary or case.params[name].expr):
            continue
        z = np.abs(case.batch.values[name][ok] - case.truth[name][ok])
        z /= case.batch.stderr[name][ok]
        assert 0.6 <= np.median(z) <= 0.75, (name, np.median(z))


@pytest.mark.parametrize("case", ["composite"], indirect=True)
def test_tied_parameter_follows_expression_on_arrays(case):
    b = case.batch
    np.testing.assert_array_equal(b.values["p2_sigma"], b.values["p1_sigma"])
    np.testing.assert_allclose(b.stderr["p2_sigma"][b.success],
                               b.stderr["p1_sigma"][b.success], rtol=1e-6)


def test_bounds_respected(case):
    b = case.batch
    for name in b.var_names:
        lo, hi = case.params[name].lo, case.params[name].hi
        v = b.values[name][b.success]
        assert np.all((v >= lo) & (v <= hi)), name


def test_covar_consistent_with_stderr(case):
    b = batchfit.fit_batch(case.model, case.params, case.x, case.y[:300], covar=True)
    k = len(b.var_names)
    assert b.covar.shape == (300, k, k)
    ok = b.success
    np.testing.assert_allclose(b.covar[ok], np.swapaxes(b.covar[ok], 1, 2), rtol=1e-12)
    diag = np.diagonal(b.covar, axis1=1, axis2=2)
    for j, name in enumerate(b.var_names):
        np.testing.assert_allclose(np.sqrt(diag[ok, j]), b.stderr[name][ok], rtol=1e-12)
    assert np.all(np.isnan(b.covar[~ok]))
    plain = batchfit.fit_batch(case.model, case.params, case.x, case.y[:300])
    assert plain.covar is None
    for name in b.names:
        np.testing.assert_array_equal(plain.values[name], b.values[name])


# ------------------------------------------------------------- scale robust


def test_scale_exponential_amplitude_3e4_decay_half():
    """Amplitude 3e4 and decay 0.5 (a 6e4 ratio) converge without rescaling."""
    rng = np.random.default_rng(11)
    n = 1000
    model = exponential() + constant(prefix="bg_")
    params = model.make_params(amplitude=1000.0, decay={"value": 1.0, "min": 0.0}, bg_c=0.0)
    x = np.linspace(0.0, 4.0, 100)
    truth = {"amplitude": rng.uniform(2.5e4, 3.5e4, n), "decay": rng.uniform(0.4, 0.6, n),
             "bg_c": rng.uniform(5, 15, n)}
    y = model(x, **truth_columns(truth)) + rng.normal(0.0, 30.0, (n, x.size))
    b = batchfit.fit_batch(model, params, x, y)
    assert np.mean(b.success) >= 0.99
    _assert_calibrated(b, truth)
    ref = minimize_each(model, params, x, y[:100])
    for name in b.names:
        d = percentile_diff(b.values[name][:100], ref["values"][name], ref["stderr"][name])
        assert d <= 1e-3, name


def test_scale_redshift_shared_by_line_centres():
    """z=0.08 ties two line centres near 7100 with amplitudes ~300."""
    rng = np.random.default_rng(12)
    n = 1000
    model = gaussian(prefix="p1_") + gaussian(prefix="p2_") + linear(prefix="bg_")
    params = model.make_params(
        p1_amplitude={"value": 200.0, "min": 0.0}, p1_center={"expr": "6563*(1+z)"},
        p1_sigma=2.5, p2_amplitude={"value": 200.0, "min": 0.0},
        p2_center={"expr": "6583*(1+z)"}, p2_sigma={"expr": "p1_sigma"},
        bg_slope=0.0, bg_intercept=10.0,
    )
    params.add("z", value=0.0797)
    x = np.linspace(7050.0, 7150.0, 200)
    z = rng.uniform(0.0795, 0.0805, n)
    sig = rng.uniform(2.0, 3.0, n)
    truth = {"z": z, "p1_center": 6563 * (1 + z), "p2_center": 6583 * (1 + z),
             "p1_amplitude": rng.uniform(250, 350, n), "p2_amplitude": rng.uniform(250, 350, n),
             "p1_sigma": sig, "p2_sigma": sig, "bg_slope": rng.uniform(-0.01, 0.01, n),
             "bg_intercept": rng.uniform(5, 15, n)}
    vals = truth_columns(truth)
    vals["bg_intercept"] = vals["bg_intercept"] - vals["bg_slope"] * 7100.0
    truth["bg_intercept"] = vals["bg_intercept"][:, 0]
    y = model(x, **vals) + rng.normal(0.0, 1.0, (n, x.size))
    b = batchfit.fit_batch(model, params, x, y)
    assert np.mean(b.success) >= 0.99
    _assert_calibrated(b, truth)
    np.testing.assert_allclose(b.values["p1_center"], 6563 * (1 + b.values["z"]), rtol=1e-14)
    ref = minimize_each(model, params, x, y[:100])
    for name in b.names:
        d = percentile_diff(b.values[name][:100], ref["values"][name], ref["stderr"][name])
        assert d <= 1e-3, name
        s = percentile_diff(b.stderr[name][:100], ref["stderr"][name], ref["stderr"][name])
        assert s <= 1e-2, name


def _assert_calibrated(b, truth):
    ok = b.success
    for name in b.names:
        z = np.abs(b.values[name][ok] - truth[name][ok]) / b.stderr[name][ok]
        assert 0.6 <= np.median(z) <= 0.75, (name, np.median(z))
        assert np.max(z) < 6.0, (name, np.max(z))


# ------------------------------------------------------- options and engines


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(5)
    model, params, x, truth, noise, _ = _composite(200, rng)
    y = model(x, **truth_columns(truth)) + rng.normal(0.0, noise, (200, x.size))
    return model, params, x, y, truth


def test_mask_gives_masked_status(small):
    model, params, x, y, _ = small
    mask = np.ones(len(y), bool)
    mask[::3] = False
    b = batchfit.fit_batch(model, params, x, y, mask=mask)
    full = batchfit.fit_batch(model, params, x, y)
    assert np.all(b.status[~mask] == Status.MASKED)
    assert not b.success[~mask].any()
    assert np.all(b.nfev[~mask] == 0)
    for name in b.names:
        assert np.all(np.isnan(b.values[name][~mask]))
        np.testing.assert_array_equal(b.values[name][mask], full.values[name][mask])
    assert b.counts()["masked"] == int((~mask).sum())


def test_init_overrides_starting_values(small):
    """A bad template start fails; per-curve init from it converges to the right fit."""
    model, params, x, y, truth = small
    bad = params.copy()
    bad["p1_center"].value, bad["p2_center"].value = 7.0, 8.0
    start = {"p1_center": truth["p1_center"] + 0.2, "p2_center": truth["p2_center"] - 0.2}
    y, start = y[:80], {k: v[:80] for k, v in start.items()}
    truth = {k: v[:80] for k, v in truth.items()}
    good = batchfit.fit_batch(model, params, x, y)
    fixed = batchfit.fit_batch(model, bad, x, y, init=start)
    wrong = batchfit.fit_batch(model, bad, x, y, max_nfev=200)
    ok = good.success & fixed.success
    assert ok.mean() > 0.98
    d = percentile_diff(fixed.values["p1_center"][ok], good.values["p1_center"][ok],
                        good.stderr["p1_center"][ok], q=100)
    assert d < 1e-3
    off = np.abs(wrong.values["p1_center"] - truth["p1_center"]) > 1.0
    assert np.mean(off | ~wrong.success) > 0.5  # the template start alone is wrong
    # non-finite init entries keep the template start
    nan_init = {"p1_center": np.full(len(y), np.nan)}
    same = batchfit.fit_batch(model, params, x, y, init=nan_init)
    np.testing.assert_array_equal(same.values["p1_center"], good.values["p1_center"])


def test_init_same_start_as_core(small):
    model, params, x, y, truth = small
    start = {k: truth[k] * 1.05 for k in ("p1_amplitude", "p1_sigma", "bg_intercept")}
    b = batchfit.fit_batch(model, params, x, y[:50], init={k: v[:50] for k, v in start.items()})
    ref = minimize_each(model, params, x, y[:50], starts={k: v[:50] for k, v in start.items()})
    both = b.success & ref["success"]
    assert both.mean() > 0.95
    for name in b.names:
        d = percentile_diff(b.values[name], ref["values"][name], ref["stderr"][name], where=both)
        assert d <= 1e-3, name


def test_guess_true_starts_from_model_guess():
    rng = np.random.default_rng(6)
    n = 300
    model = gaussian() + constant(prefix="bg_")
    params = model.make_params(amplitude=1.0, center=40.0, sigma=0.1, bg_c=0.0)
    x = np.linspace(-10.0, 10.0, 120)
    truth = {"amplitude": rng.uniform(20, 40, n), "center": rng.uniform(-5, 5, n),
             "sigma": rng.uniform(0.5, 2.0, n), "bg_c": rng.uniform(0, 3, n)}
    y = model(x, **truth_columns(truth)) + rng.normal(0.0, 0.2, (n, x.size))
    guessed = batchfit.fit_batch(model, params, x, y, guess=True)
    plain = batchfit.fit_batch(model, params, x, y)
    assert guessed.success.mean() >= 0.99
    _assert_calibrated(guessed, truth)
    plain_right = plain.success & (np.abs(plain.values["center"] - truth["center"]) < 0.5)
    assert plain_right.mean() < 0.5  # without the guess this template start fails
    # init wins over the guess
    init = {"center": truth["center"] + 0.1}
    both = batchfit.fit_batch(model, params, x, y, guess=True, init=init)
    assert both.success.mean() >= 0.99


def test_sigma_scale_does_not_change_stderr(small):
    """stderr is scaled by redchi: multiplying sigma by 10 changes chisqr only."""
    model, params, x, y, _ = small
    one = batchfit.fit_batch(model, params, x, y, sigma=0.1)
    ten = batchfit.fit_batch(model, params, x, y, sigma=np.full(y.shape, 1.0))
    ok = one.success & ten.success
    assert ok.mean() > 0.98
    np.testing.assert_allclose(ten.chisqr[ok], one.chisqr[ok] / 100.0, rtol=1e-6)
    for name in one.names:
        np.testing.assert_allclose(ten.values[name][ok], one.values[name][ok],
                                   rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(ten.stderr[name][ok], one.stderr[name][ok], rtol=1e-5)


def test_sigma_weights_like_core(small):
    model, params, x, y, _ = small
    rng = np.random.default_rng(8)
    sigma = rng.uniform(0.05, 0.2, y[:40].shape)
    b = batchfit.fit_batch(model, params, x, y[:40], sigma=sigma)
    ref = minimize_each(model, params, x, y[:40], sigma=sigma)
    both = b.success & ref["success"]
    assert both.mean() > 0.95
    np.testing.assert_allclose(b.chisqr[both], ref["chisqr"][both], rtol=1e-6)
    for name in b.names:
        d = percentile_diff(b.values[name], ref["values"][name], ref["stderr"][name], where=both)
        assert d <= 1e-3, name


def test_fixed_parameters_keep_value(small):
    model, params, x, y, _ = small
    p = params.copy()
    p["bg_slope"].value, p["bg_slope"].vary = 0.01, False
    b = batchfit.fit_batch(model, p, x, y, covar=True)
    assert "bg_slope" not in b.var_names and len(b.var_names) == 6
    assert b.covar.shape == (len(y), 6, 6)
    assert np.all(b.values["bg_slope"][b.success] == 0.01)
    assert np.all(b.stderr["bg_slope"][b.success] == 0.0)
    ref = minimize_each(model, p, x, y[:30])
    both = b.success[:30] & ref["success"]
    for name in b.var_names:
        d = percentile_diff(b.values[name][:30], ref["values"][name], ref["stderr"][name],
                            where=both)
        assert d <= 1e-3, name


def test_no_varied_parameters(small):
    model, params, x, y, truth = small
    p = params.copy()
    for name in p:
        if p[name].expr is None:
            p[name].vary = False
    b = batchfit.fit_batch(model, p, x, y[:5])
    assert b.var_names == []
    assert np.all(b.success)
    expected = ((y[:5] - model.eval(p, x)) ** 2).sum(axis=1)
    np.testing.assert_allclose(b.chisqr, expected, rtol=1e-12)


def test_engine_leastsq_loop_agrees_with_lm(small):
    model, params, x, y, _ = small
    lm = batchfit.fit_batch(model, params, x, y[:60], engine="lm", covar=True)
    loop = batchfit.fit_batch(model, params, x, y[:60], engine="leastsq", covar=True)
    both = lm.success & loop.success
    assert both.mean() > 0.95
    assert np.array_equal(lm.success, loop.success)
    np.testing.assert_array_equal(lm.ndata, loop.ndata)
    for name in lm.names:
        d = percentile_diff(lm.values[name], loop.values[name], loop.stderr[name], where=both)
        assert d <= 1e-3, name
        s = percentile_diff(lm.stderr[name], loop.stderr[name], loop.stderr[name], where=both)
        assert s <= 1e-2, name
    np.testing.assert_allclose(lm.covar[both], loop.covar[both], rtol=2e-2, atol=1e-12)
    np.testing.assert_allclose(lm.redchi[both], loop.redchi[both], rtol=1e-6)


def test_result_dtypes_and_shapes(small):
    model, params, x, y, _ = small
    b = batchfit.fit_batch(model, params, x, y[:7])
    assert len(b) == 7
    assert b.names == list(params) and b.var_names == [
        n for n in params if params[n].vary and params[n].expr is None]
    for name in b.names:
        assert b.values[name].shape == (7,) and b.values[name].dtype == np.float64
        assert b.stderr[name].shape == (7,) and b.stderr[name].dtype == np.float64
    assert b.chisqr.dtype == np.float64 and b.redchi.dtype == np.float64
    assert b.nfev.dtype == np.int32 and b.status.dtype == np.int8
    assert b.success.dtype == bool and b.covar is None


def test_unknown_engine_and_bad_shapes_raise(small):
    model, params, x, y, _ = small
    with pytest.raises(batchfit.FitError):
        batchfit.fit_batch(model, params, x, y[:2], engine="nope")
    with pytest.raises(batchfit.InputError):
        batchfit.fit_batch(model, params, x[:-1], y[:2])
    with pytest.raises(batchfit.InputError):
        batchfit.fit_batch(model, params, x, y[:2], sigma=np.ones(3))
