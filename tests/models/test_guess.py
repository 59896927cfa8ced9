"""Vectorized guesses recover known parameters from noisy synthetic curves."""

import numpy as np
import pytest

from batchfit.models import (
    constant,
    damped_sine,
    exponential,
    gaussian,
    linear,
    lorentzian,
    polynomial,
    pseudo_voigt,
    quadratic,
    step,
    voigt,
)
from batchfit.models.guess import fill_nan, poly_coefs

pytestmark = pytest.mark.filterwarnings("error")

N = 200


def _noisy(model, x, truth, noise, seed, nan_fraction=0.05):
    """Evaluate ``model`` for each row of ``truth``; add noise and some NaN points."""
    rng = np.random.default_rng(seed)
    y = model(x, **{k: v[:, None] for k, v in truth.items()})
    y = y + noise * rng.standard_normal(y.shape)
    y[rng.random(y.shape) < nan_fraction] = np.nan
    return y


def _truth(seed, **ranges):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(lo, hi, N) for k, (lo, hi) in ranges.items()}


def _rel(a, b):
    return np.abs(a - b) / np.abs(b)


PEAK_RANGES = {"amplitude": (2.0, 5.0), "center": (-3.0, 3.0), "sigma": (0.4, 1.2)}


@pytest.mark.parametrize("factory", [gaussian, lorentzian, pseudo_voigt, voigt])
def test_peak_guess_recovers_parameters(factory):
    model = factory()
    ranges = dict(PEAK_RANGES)
    if factory is pseudo_voigt:
        ranges["fraction"] = (0.5, 0.5)
    if factory is voigt:
        ranges["gamma"] = ranges["sigma"] = (0.4, 0.8)
    truth = _truth(1, **ranges)
    if factory is voigt:
        truth["gamma"] = truth["sigma"].copy()
    x = np.linspace(-10, 10, 401)
    y = _noisy(model, x, truth, noise=0.02, seed=2)
    est = model.guess(y, x)
    assert set(est) == set(model.param_names)
    assert all(v.shape == (N,) for v in est.values())
    assert np.median(np.abs(est["center"] - truth["center"]) / truth["sigma"]) < 0.05
    assert np.median(_rel(est["sigma"], truth["sigma"])) < 0.05
    assert np.median(_rel(est["amplitude"], truth["amplitude"])) < 0.05
    assert np.max(_rel(est["sigma"], truth["sigma"])) < 0.25
    assert np.max(_rel(est["amplitude"], truth["amplitude"])) < 0.25


def test_guess_accepts_descending_x():
    model = gaussian()
    truth = _truth(3, **PEAK_RANGES)
    x = np.linspace(10, -10, 401)
    est = model.guess(_noisy(model, x, truth, noise=0.01, seed=4), x)
    assert np.median(np.abs(est["center"] - truth["center"])) < 0.05


def test_step_guess():
    truth = _truth(5, amplitude=(1.0, 3.0), center=(-2.0, 2.0), sigma=(0.3, 1.0))
    x = np.linspace(-8, 8, 321)
    est = step().guess(_noisy(step(), x, truth, noise=0.02, seed=6), x)
    assert np.median(_rel(est["amplitude"], truth["amplitude"])) < 0.05
    assert np.median(np.abs(est["center"] - truth["center"])) < 0.1
    assert np.median(_rel(est["sigma"], truth["sigma"])) < 0.2


def test_exponential_guess():
    truth = _truth(7, amplitude=(2.0, 10.0), decay=(0.5, 3.0))
    x = np.linspace(0, 10, 201)
    est = exponential().guess(_noisy(exponential(), x, truth, noise=0.02, seed=8), x)
    assert np.median(_rel(est["amplitude"], truth["amplitude"])) < 0.05
    assert np.median(_rel(est["decay"], truth["decay"])) < 0.05


def test_damped_sine_guess():
    truth = _truth(9, amp=(1.0, 3.0), omega=(2.0, 6.0), shift=(-1.0, 1.0), decay=(0.01, 0.05))
    x = np.linspace(0, 10, 501)
    est = damped_sine().guess(_noisy(damped_sine(), x, truth, noise=0.02, seed=10), x)
    assert np.median(_rel(est["omega"], truth["omega"])) < 0.05
    assert np.median(_rel(est["amp"], truth["amp"])) < 0.15
    assert np.median(_rel(est["decay"], truth["decay"])) < 0.4
    phase_error = np.angle(np.exp(1j * (est["shift"] - truth["shift"])))
    assert np.median(np.abs(phase_error)) < 0.3


def _polyfit_reference(y, x, degree):
    """Slow reference: numpy.polyfit row by row on the finite points."""
    out = np.empty((y.shape[0], degree + 1))
    for i, row in enumerate(y):
        ok = np.isfinite(row)
        out[i] = np.polynomial.polynomial.polyfit(x[ok], row[ok], degree)
    return out


@pytest.mark.parametrize("degree", [0, 1, 2, 4])
def test_polynomial_coefficients_match_polyfit(degree):
    rng = np.random.default_rng(degree)
    x = np.linspace(100.0, 300.0, 60)  # far from 0: needs the internal rescaling
    y = rng.standard_normal((20, x.size)) + 0.01 * x
    y[rng.random(y.shape) < 0.1] = np.nan
    np.testing.assert_allclose(poly_coefs(y, x, degree), _polyfit_reference(y, x, degree),
                               rtol=1e-6, atol=1e-9)


def test_named_polynomial_guesses():
    x = np.linspace(-2, 2, 41)
    y = np.stack([0.5 * x**2 - x + 2.0, 3.0 * x + 1.0])
    q = quadratic().guess(y[:1], x)
    np.testing.assert_allclose([q["a"][0], q["b"][0], q["c"][0]], [0.5, -1.0, 2.0])
    lin = linear().guess(y[1:], x)
    np.testing.assert_allclose([lin["slope"][0], lin["intercept"][0]], [3.0, 1.0])
    assert constant().guess(np.array([[1.0, np.nan, 3.0]]), x[:3])["c"][0] == 2.0
    p = polynomial(1).guess(y[1:], x)
    np.testing.assert_allclose([p["c0"][0], p["c1"][0]], [1.0, 3.0])


@pytest.mark.parametrize(
    "factory", [gaussian, lorentzian, voigt, pseudo_voigt, step, exponential, damped_sine,
                linear, quadratic, constant]
)
def test_all_nan_and_constant_rows_give_values_without_warnings(factory):
    x = np.linspace(0.1, 5, 30)
    y = np.stack([np.full(30, np.nan), np.full(30, 2.0), np.linspace(1, 2, 30)])
    est = factory().guess(y, x)
    assert all(v.shape == (3,) for v in est.values())
    assert all(np.isnan(v[0]) for v in est.values())


def test_fill_nan_forward_then_backward():
    y = np.array([[np.nan, 1.0, np.nan, 3.0, np.nan], [np.nan] * 5])
    out = fill_nan(y)
    np.testing.assert_array_equal(out[0], [1.0, 1.0, 1.0, 3.0, 3.0])
    assert np.isnan(out[1]).all()


def test_composite_peak_on_linear_background():
    model = gaussian(prefix="p_") + linear(prefix="bg_")
    truth = _truth(11, p_amplitude=(3.0, 6.0), p_center=(-2.0, 2.0), p_sigma=(0.4, 0.8),
                   bg_slope=(-0.1, 0.1), bg_intercept=(0.5, 1.5))
    x = np.linspace(-10, 10, 401)
    est = model.guess(_noisy(model, x, truth, noise=0.02, seed=12), x)
    assert list(est) == model.param_names
    assert np.median(np.abs(est["p_center"] - truth["p_center"])) < 0.05
    assert np.median(_rel(est["p_sigma"], truth["p_sigma"])) < 0.15
    assert np.median(_rel(est["p_amplitude"], truth["p_amplitude"])) < 0.15
    assert np.median(np.abs(est["bg_intercept"] - truth["bg_intercept"])) < 0.1


def test_composite_two_peaks_take_successive_maxima():
    model = gaussian(prefix="p1_") + gaussian(prefix="p2_") + constant(prefix="bg_")
    truth = {"p1_amplitude": np.full(N, 5.0), "p1_center": np.full(N, -3.0),
             "p1_sigma": np.full(N, 0.5), "p2_amplitude": np.full(N, 2.0),
             "p2_center": np.full(N, 3.0), "p2_sigma": np.full(N, 0.5),
             "bg_c": np.full(N, 1.0)}  # fmt: skip
    x = np.linspace(-10, 10, 401)
    est = model.guess(_noisy(model, x, truth, noise=0.02, seed=13), x)
    centers = np.sort(np.stack([est["p1_center"], est["p2_center"]]), axis=0)
    assert np.median(np.abs(centers[0] + 3.0)) < 0.05
    assert np.median(np.abs(centers[1] - 3.0)) < 0.05
    assert np.median(np.abs(est["bg_c"] - 1.0)) < 0.05
