"""Guesses for composites that respect the template: windows around the centres, bounds."""

from __future__ import annotations

import numpy as np

import batchfit
from batchfit.models import gaussian, linear
from batchfit.models.template_guess import guess_from_template, template_values

X = np.linspace(-8.0, 8.0, 161)


def _two_lines(n=200, seed=0, weak_absent=0.0):
    """A weak line near -3 (first in the model) and a strong one near +2, on a line."""
    rng = np.random.default_rng(seed)
    model = gaussian(prefix="w_") + gaussian(prefix="s_") + linear(prefix="bg_")
    params = model.make_params(
        w_amplitude={"value": 2.0, "min": 0.0}, w_center={"value": -3.0, "min": -5.0, "max": -1.0},
        w_sigma={"value": 0.6, "min": 0.1, "max": 2.0},
        s_amplitude={"value": 8.0, "min": 0.0}, s_center={"value": 2.0, "min": 0.0, "max": 5.0},
        s_sigma={"value": 0.6, "min": 0.1, "max": 2.0}, bg_slope=0.0, bg_intercept=1.0)
    truth = {"w_amplitude": rng.uniform(1.0, 3.0, n) * (rng.random(n) >= weak_absent),
             "w_center": rng.uniform(-3.6, -2.4, n), "w_sigma": rng.uniform(0.4, 0.8, n),
             "s_amplitude": rng.uniform(6.0, 12.0, n), "s_center": rng.uniform(1.4, 2.6, n),
             "s_sigma": rng.uniform(0.4, 0.8, n), "bg_slope": rng.uniform(-0.03, 0.03, n),
             "bg_intercept": rng.uniform(0.5, 1.5, n)}
    y = model(X, **{k: v[:, None] for k, v in truth.items()}) + rng.normal(0, 0.1, (n, X.size))
    return model, params, truth, y


def test_the_data_only_guess_puts_both_peaks_on_the_strong_line():
    """The failure this module exists for (so the next test can fail)."""
    model, _, truth, y = _two_lines()
    g = model.guess(y, X)
    assert np.median(np.abs(g["w_center"] - truth["s_center"])) < 0.3


def test_each_centre_guess_stays_in_its_window_and_bounds():
    model, params, truth, y = _two_lines()
    g = guess_from_template(model, y, X, params)
    assert np.all((g["w_center"] > -5.0) & (g["w_center"] < -1.0))
    assert np.all((g["s_center"] > 0.0) & (g["s_center"] < 5.0))
    assert np.max(np.abs(g["w_center"] - truth["w_center"])) < 0.3
    assert np.max(np.abs(g["s_center"] - truth["s_center"])) < 0.3
    np.testing.assert_allclose(g["s_amplitude"], truth["s_amplitude"], rtol=0.25)
    np.testing.assert_allclose(g["w_amplitude"], truth["w_amplitude"], rtol=0.5)


def test_amplitude_guesses_respect_min_zero_when_a_line_is_absent():
    model, params, truth, y = _two_lines(weak_absent=1.0)
    g = guess_from_template(model, y, X, params)
    assert np.all(g["w_amplitude"] > 0.0)
    assert np.all(g["w_center"] > -5.0) and np.all(g["w_center"] < -1.0)
    for name, v in g.items():
        assert np.all(v >= params[name].lo) and np.all(v <= params[name].hi), name


def test_tied_centres_place_each_line_in_its_own_window():
    """Centres tied to one shift: each amplitude is measured at its own line."""
    model, params, truth, y = _two_lines()
    params.add("shift", value=0.0, min=-1.0, max=1.0)
    params["w_center"].expr = "-3.0 + shift"
    params["s_center"].expr = "2.0 + shift"
    assert template_values(params)["s_center"] == 2.0
    g = guess_from_template(model, y, X, params)
    np.testing.assert_allclose(g["s_amplitude"], truth["s_amplitude"], rtol=0.25)
    np.testing.assert_allclose(g["w_amplitude"], truth["w_amplitude"], rtol=0.5)


def test_fit_with_guess_reaches_the_minima_of_a_start_from_the_truth():
    model, params, truth, y = _two_lines(n=100, seed=1)
    guessed = batchfit.fit_batch(model, params, X, y, guess=True)
    ideal = batchfit.fit_batch(model, params, X, y, init=truth)
    assert guessed.success.all() and ideal.success.all()
    np.testing.assert_allclose(guessed.chisqr, ideal.chisqr, rtol=1e-6)
    np.testing.assert_allclose(guessed.values["w_center"], ideal.values["w_center"], atol=1e-5)


def test_a_sum_with_a_product_term_cannot_guess():
    """Terms are guessed whole: a product inside a sum is refused, not guessed piecewise."""
    import pytest

    from batchfit.errors import ModelError
    from batchfit.models import step

    model = gaussian(prefix="g_") * step(prefix="s_") + linear(prefix="b_")
    with pytest.raises(ModelError, match="cannot guess"):
        guess_from_template(model, np.zeros((2, X.size)) + X, X, model.make_params())
