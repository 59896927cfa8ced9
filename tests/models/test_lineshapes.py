"""Lineshapes: closed forms, lmfit's conventions, and analytic derivatives."""

import numpy as np
import pytest
from scipy import integrate

from batchfit.models import get
from batchfit.models import lineshapes as ls

pytestmark = pytest.mark.filterwarnings("error")

# per model: parameter values (one row per test curve) away from degenerate spots
ROWS = {
    "gaussian": [(2.0, 0.3, 0.7), (-1.0, -1.2, 1.5), (0.5, 2.0, 0.4)],
    "lorentzian": [(2.0, 0.3, 0.7), (-1.0, -1.2, 1.5), (0.5, 2.0, 0.4)],
    "voigt": [(2.0, 0.3, 0.7, 0.4), (1.0, -1.2, 1.5, 0.05), (0.5, 2.0, 0.4, 1.3)],
    "pseudo_voigt": [(2.0, 0.3, 0.7, 0.2), (1.0, -1.2, 1.5, 0.9), (0.5, 2.0, 0.4, 0.5)],
    "step": [(2.0, 0.3, 0.7), (-1.0, -1.2, 1.5), (0.5, 2.0, 0.4)],
    "exponential": [(2.0, 1.7), (-1.0, 0.8), (0.5, 4.0)],
    "damped_sine": [(2.0, 1.7, 0.3, 0.05), (-1.0, 0.8, -1.0, 0.2), (0.5, 3.0, 2.0, 0.01)],
    "linear": [(2.0, 1.7), (-1.0, 0.8), (0.5, 4.0)],
    "quadratic": [(0.3, -1.0, 2.0), (-1.0, 0.8, 0.1), (0.5, 0.0, -3.0)],
    "constant": [(2.0,), (-1.0,), (0.5,)],
    "polynomial": [(1.0, -0.5, 0.2, 0.05), (-1.0, 0.8, 0.1, -0.02), (0.5, 0.0, -0.3, 0.01)],
}
X = np.linspace(-4.0, 4.0, 81)


def _model(name):
    return get(name, degree=3) if name == "polynomial" else get(name)


def _values(model, rows, shape):
    cols = np.asarray(rows, dtype=float).T
    return {n: c.reshape(shape) for n, c in zip(model.param_names, cols, strict=True)}


def _central_difference(model, x, values, name, h=1e-6):
    up, down = dict(values), dict(values)
    step = h * np.maximum(1.0, np.abs(values[name]))
    up[name] = values[name] + step
    down[name] = values[name] - step
    return (model(x, **up) - model(x, **down)) / (2.0 * step)


@pytest.mark.parametrize("name", sorted(ROWS))
@pytest.mark.parametrize("shape", [(3, 1), "scalar"])
def test_jacobian_matches_central_differences(name, shape):
    model = _model(name)
    rows = ROWS[name] if shape != "scalar" else ROWS[name][:1]
    values = _values(model, rows, (len(rows), 1))
    if shape == "scalar":
        values = {k: float(v[0, 0]) for k, v in values.items()}
    jac = model.jacobian(X, **values)
    out_shape = model(X, **values).shape
    assert list(jac) == model.param_names
    for pname in model.param_names:
        expected = _central_difference(model, X, values, pname)
        assert jac[pname].shape == out_shape
        np.testing.assert_allclose(jac[pname], expected, rtol=1e-6, atol=1e-7, err_msg=pname)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_broadcasting_rows_match_scalar_evaluation(name):
    model = _model(name)
    values = _values(model, ROWS[name], (3, 1))
    out = model(X, **values)
    assert out.shape == (3, X.size)
    for i, row in enumerate(ROWS[name]):
        scalar = model(X, **dict(zip(model.param_names, row, strict=True)))
        np.testing.assert_allclose(out[i], scalar, rtol=1e-14)


@pytest.mark.parametrize("name", ["gaussian", "lorentzian", "voigt", "pseudo_voigt", "step"])
def test_zero_sigma_gives_nonfinite_without_raising(name):
    model = _model(name)
    values = dict(zip(model.param_names, ROWS[name][0], strict=True))
    values["sigma"] = 0.0
    out = model(X, **values)
    jac = model.jacobian(X, **values)
    assert out.shape == X.shape
    assert not np.all(np.isfinite(jac["sigma"]))


@pytest.mark.parametrize(
    ("func", "sigma"), [(ls.gaussian, 0.7), (ls.voigt, 0.7), (ls.pseudo_voigt, 0.7)]
)
def test_peak_area_is_amplitude(func, sigma):
    extra = {ls.voigt: (0.3,), ls.pseudo_voigt: (0.4,)}.get(func, ())
    area, _ = integrate.quad(lambda t: func(t, 2.5, 0.3, sigma, *extra), -np.inf, np.inf)
    assert area == pytest.approx(2.5, rel=1e-7)


def test_gaussian_integral_on_wide_grid():
    x = np.linspace(-40, 40, 40001)
    y = ls.gaussian(x, np.array([[1.5], [-2.0]]), 0.5, np.array([[0.8], [2.0]]))
    np.testing.assert_allclose(np.trapezoid(y, x, axis=1), [1.5, -2.0], rtol=1e-10)


def test_lorentzian_integral_matches_arctan_closed_form():
    half = 30.0
    area, _ = integrate.quad(ls.lorentzian, -half, half, args=(2.0, 0.0, 0.5), limit=200)
    assert area == pytest.approx(2.0 * 2.0 / np.pi * np.arctan(half / 0.5), rel=1e-10)


def test_fwhm_relations():
    c, s = 0.3, 0.7
    half_g = 0.5 * ls.gaussian(c, 1.0, c, s)
    fwhm_g = 2.0 * np.sqrt(2.0 * np.log(2.0)) * s
    assert ls.gaussian(c + fwhm_g / 2, 1.0, c, s) == pytest.approx(half_g, rel=1e-12)
    assert ls.lorentzian(c + s, 1.0, c, s) == pytest.approx(0.5 * ls.lorentzian(c, 1.0, c, s))
    for fraction in (0.0, 0.3, 1.0):  # both parts have FWHM 2*sigma
        peak = ls.pseudo_voigt(c, 1.0, c, s, fraction)
        assert ls.pseudo_voigt(c - s, 1.0, c, s, fraction) == pytest.approx(0.5 * peak)


def test_voigt_fwhm_matches_olivero_approximation():
    sigma, gamma = 0.6, 0.9
    f_g, f_l = 2.0 * np.sqrt(2.0 * np.log(2.0)) * sigma, 2.0 * gamma
    approx = 0.5346 * f_l + np.sqrt(0.2166 * f_l**2 + f_g**2)
    x = np.linspace(0, 5, 500001)
    y = ls.voigt(x, 1.0, 0.0, sigma, gamma)
    measured = 2.0 * x[np.argmin(np.abs(y - 0.5 * y[0]))]
    assert measured == pytest.approx(approx, rel=3e-4)  # the formula is good to 0.02%


def test_voigt_limits():
    np.testing.assert_allclose(ls.voigt(X, 2.0, 0.3, 0.7, 0.0), ls.gaussian(X, 2.0, 0.3, 0.7),
                               rtol=1e-12)
    np.testing.assert_allclose(ls.voigt(X, 2.0, 0.3, 1e-5, 0.7),
                               ls.lorentzian(X, 2.0, 0.3, 0.7), rtol=1e-8)


def test_pseudo_voigt_fraction_endpoints():
    sigma_g = 0.7 / np.sqrt(2.0 * np.log(2.0))
    np.testing.assert_allclose(ls.pseudo_voigt(X, 2.0, 0.3, 0.7, 0.0),
                               ls.gaussian(X, 2.0, 0.3, sigma_g), rtol=1e-14)
    np.testing.assert_allclose(ls.pseudo_voigt(X, 2.0, 0.3, 0.7, 1.0),
                               ls.lorentzian(X, 2.0, 0.3, 0.7), rtol=1e-14)


def test_step_is_integral_of_gaussian():
    assert ls.step(0.3, 2.0, 0.3, 0.7) == pytest.approx(1.0)
    area, _ = integrate.quad(ls.gaussian, -np.inf, 1.1, args=(2.0, 0.3, 0.7))
    assert ls.step(1.1, 2.0, 0.3, 0.7) == pytest.approx(area, rel=1e-10)


def test_closed_forms_of_simple_models():
    t = np.linspace(0, 5, 11)
    np.testing.assert_allclose(ls.exponential(t, 2.0, 1.5), 2.0 * np.exp(-t / 1.5))
    np.testing.assert_allclose(ls.damped_sine(t, 2.0, 3.0, 0.5, 0.1),
                               2.0 * np.sin(3.0 * t + 0.5) * np.exp(-0.1 * t * t))
    np.testing.assert_allclose(ls.quadratic(t, 0.5, -1.0, 2.0), 0.5 * t**2 - t + 2.0)
    np.testing.assert_allclose(ls.linear(t, 0.5, -1.0), 0.5 * t - 1.0)
    np.testing.assert_allclose(ls.constant(t, 0.5), np.full_like(t, 0.5))
    coefs = (1.0, -0.5, 0.2, 0.05)
    np.testing.assert_allclose(ls.polynomial(t, *coefs), np.polynomial.polynomial.polyval(t, coefs))


@pytest.mark.parametrize(
    ("ours", "theirs", "args"),
    [
        ("gaussian", "gaussian", (2.0, 0.3, 0.7)),
        ("lorentzian", "lorentzian", (2.0, 0.3, 0.7)),
        ("voigt", "voigt", (2.0, 0.3, 0.7, 0.4)),
        ("pseudo_voigt", "pvoigt", (2.0, 0.3, 0.7, 0.3)),
        ("exponential", "exponential", (2.0, 1.7)),
    ],
)
def test_same_normalisation_as_lmfit(ours, theirs, args):
    lmfit_shapes = pytest.importorskip("lmfit.lineshapes")
    np.testing.assert_allclose(getattr(ls, ours)(X, *args),
                               getattr(lmfit_shapes, theirs)(X, *args), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_python_float_zeros_never_raise(name):
    func = getattr(ls, name)
    deriv = getattr(ls, "d_" + name)
    args = (0.0,) * len(ROWS[name][0])
    func(0.0, *args)
    deriv(0.0, *args)
