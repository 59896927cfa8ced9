"""Fit statistics of the core against independent computations.

The references here are computed from scratch: the residual is re-evaluated at
the returned best values, the Jacobian is a central difference taken by the
test itself, and tied-parameter errors are propagated by the delta method.
"""

from __future__ import annotations

import numpy as np
import pytest

from batchfit import Minimizer, Parameters, minimize

X = np.linspace(0, 15, 301)
TRUTH = np.array([12.0, 3.05, 0.25, 0.01])   # amp, frequency, phase, decay
NAMES = ("amp", "frequency", "phase", "decay")


def model(x, amp, frequency, phase, decay):
    return amp * np.sin(x * frequency + phase) * np.exp(-x * x * decay)


DATA = model(X, *TRUTH) + np.random.default_rng(42).normal(0, 0.2, X.size)


def residual(params, x, data):
    v = params.valuesdict()
    return data - model(x, v["amp"], v["frequency"], v["phase"], v["decay"])


def residual_array(values):
    return DATA - model(X, *values)


def make_params(**bounds):
    params = Parameters()
    for name, start in zip(NAMES, (10.0, 3.0, 0.2, 0.007), strict=True):
        lo, hi = bounds.get(name, (None, None))
        params.add(name, value=start, min=lo, max=hi)
    return params


def central_jacobian(fun, p, rel_step=1e-6):
    """d fun / d p by central differences, shape (n_points, n_params)."""
    p = np.asarray(p, dtype=float)
    cols = []
    for j in range(p.size):
        h = rel_step * max(abs(p[j]), 1e-3)
        up, down = p.copy(), p.copy()
        up[j] += h
        down[j] -= h
        cols.append((fun(up) - fun(down)) / (2 * h))
    return np.column_stack(cols)


def independent_covar(best):
    jac = central_jacobian(residual_array, best)
    r = residual_array(best)
    redchi = r @ r / (X.size - len(best))
    return np.linalg.inv(jac.T @ jac) * redchi


@pytest.fixture(scope="module")
def fit():
    params = make_params()
    out = minimize(residual, params, args=(X, DATA))
    return out, params


def best_values(params, names=NAMES):
    return np.array([params[n].value for n in names])


def test_counts(fit):
    out, _ = fit
    assert (out.ndata, out.nvarys, out.nfree) == (X.size, 4, X.size - 4)
    assert out.var_names == list(NAMES)


def test_counts_with_fixed_and_tied():
    params = make_params()
    params["decay"].vary = False
    params.add("half", expr="amp / 2")
    out = minimize(residual, params, args=(X, DATA))
    assert out.nvarys == 3 and out.nfree == X.size - 3
    assert "decay" not in out.var_names and "half" not in out.var_names


def test_chisqr_and_redchi_from_recomputed_residual(fit):
    out, params = fit
    r = residual_array(best_values(params))
    assert out.chisqr == pytest.approx(r @ r, rel=1e-12)
    np.testing.assert_allclose(out.residual, r, rtol=1e-10, atol=1e-12)
    assert out.redchi == pytest.approx(r @ r / (X.size - 4), rel=1e-12)


def test_stderr_is_sqrt_diag_covar(fit):
    out, params = fit
    assert out.covar.shape == (4, 4)
    np.testing.assert_allclose([params[n].stderr for n in NAMES],
                               np.sqrt(np.diag(out.covar)), rtol=1e-12)


def test_covar_against_central_difference_jacobian(fit):
    out, params = fit
    expected = independent_covar(best_values(params))
    np.testing.assert_allclose(out.covar, expected, rtol=2e-3,
                               atol=1e-6 * np.sqrt(np.outer(np.diag(expected),
                                                            np.diag(expected))).max())


def test_correl_symmetric_and_from_covar(fit):
    out, params = fit
    cov = out.covar
    for i, a in enumerate(NAMES):
        correl = params[a].correl
        assert set(correl) == set(NAMES) - {a}
        for j, b in enumerate(NAMES):
            if i == j:
                continue
            expected = cov[i, j] / np.sqrt(cov[i, i] * cov[j, j])
            assert correl[b] == pytest.approx(expected, rel=1e-9, abs=1e-12)
            assert correl[b] == pytest.approx(params[b].correl[a], rel=1e-12, abs=1e-15)
            assert -1 <= correl[b] <= 1


def test_correl_keys_exclude_fixed_and_tied():
    params = make_params()
    params["decay"].vary = False
    params.add("twice_phase", expr="2 * phase")
    minimize(residual, params, args=(X, DATA))
    assert set(params["amp"].correl) == {"frequency", "phase"}


def test_aic_bic_formulas(fit):
    out, _ = fit
    n, k = out.ndata, out.nvarys
    assert out.aic == pytest.approx(n * np.log(out.chisqr / n) + 2 * k, rel=1e-12)
    assert out.bic == pytest.approx(n * np.log(out.chisqr / n) + np.log(n) * k, rel=1e-12)


def test_tied_parameter_stderr_by_delta_method():
    params = make_params()
    params.add("envelope", expr="amp * exp(-decay * 4)")
    out = minimize(residual, params, args=(X, DATA))
    amp, decay = params["amp"].value, params["decay"].value
    assert params["envelope"].value == pytest.approx(amp * np.exp(-4 * decay), rel=1e-12)
    # gradient of the expression with respect to (amp, frequency, phase, decay)
    g = np.array([np.exp(-4 * decay), 0.0, 0.0, -4 * amp * np.exp(-4 * decay)])
    expected = np.sqrt(g @ out.covar @ g)
    assert params["envelope"].stderr == pytest.approx(expected, rel=1e-6)


def test_tied_stderr_of_linear_expression_is_exact():
    params = make_params()
    params.add("combo", expr="2*amp - 3*phase")
    out = minimize(residual, params, args=(X, DATA))
    g = np.array([2.0, 0.0, -3.0, 0.0])
    assert params["combo"].stderr == pytest.approx(np.sqrt(g @ out.covar @ g), rel=1e-6)


def test_errorbars_false_for_parameter_without_effect():
    params = make_params()
    params.add("useless", value=1.0)
    out = minimize(residual, params, args=(X, DATA))
    assert not out.errorbars
    assert out.chisqr == pytest.approx(minimize(residual, make_params(), args=(X, DATA)).chisqr,
                                       rel=1e-6)


def test_bounded_interior_stderr_in_external_units(fit):
    """Bounds that are inactive at the solution do not change value or stderr."""
    _, free = fit
    params = make_params(amp=(5, 20), decay=(0.0, 0.05), frequency=(2.9, 3.2))
    out = minimize(residual, params, args=(X, DATA))
    assert out.errorbars
    for name in NAMES:
        assert params[name].value == pytest.approx(free[name].value, rel=1e-6)
        assert params[name].stderr == pytest.approx(free[name].stderr, rel=1e-2)


@pytest.mark.parametrize("engine", ["lbfgsb", "anneal"])
def test_other_engines_stderr_from_jacobian(engine, fit):
    _, free = fit
    params = make_params(amp=(5, 20), decay=(0.001, 0.05), frequency=(2.9, 3.2),
                         phase=(-0.5, 1.0))
    out = minimize(residual, params, args=(X, DATA), engine=engine)
    assert out.errorbars
    best = best_values(params)
    expected = np.sqrt(np.diag(independent_covar(best)))
    np.testing.assert_allclose([params[n].stderr for n in NAMES], expected, rtol=2e-2)
    np.testing.assert_allclose([params[n].stderr for n in NAMES],
                               [free[n].stderr for n in NAMES], rtol=5e-2)


def test_minimizer_object_attributes(fit):
    out, _ = fit
    for attr in ("nfev", "success", "errorbars", "message", "ier", "lmdif_message",
                 "nvarys", "ndata", "nfree", "residual", "chisqr", "redchi",
                 "params", "var_names", "covar", "init_vals", "aic", "bic"):
        assert hasattr(out, attr), attr
    assert out.init_vals == pytest.approx([10.0, 3.0, 0.2, 0.007])
    assert out.nfev > 0 and out.success


def test_refit_from_minimizer_reuses_setup():
    fitter = Minimizer(residual, make_params(), fcn_args=(X, DATA))
    fitter.leastsq()
    first = fitter.chisqr
    fitter.leastsq()
    assert fitter.chisqr == pytest.approx(first, rel=1e-9)
