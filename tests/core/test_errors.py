"""Clear errors from minimize() for unusable residuals and unknown engines."""

from __future__ import annotations

import numpy as np
import pytest

from batchfit import Minimizer, Parameters, minimize
from batchfit.errors import BatchfitError, FitError

X = np.linspace(0, 1, 20)


def make_params():
    params = Parameters()
    params.add("a", value=1.0)
    params.add("b", value=0.5)
    return params


def linear(params):
    return params["a"].value * X + params["b"].value - (2 * X + 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("engine", ["leastsq", "lbfgsb"])
def test_nonfinite_residual_at_start(bad, engine):
    def resid(p):
        r = linear(p)
        r[3] = bad
        return r

    with pytest.raises(FitError, match=r"(?i)nan|inf|finite") as info:
        minimize(resid, make_params(), engine=engine)
    assert "a" in str(info.value) or "residual" in str(info.value).lower()


def test_all_nan_residual():
    with pytest.raises(FitError, match=r"(?i)nan|finite"):
        minimize(lambda p: np.full(10, np.nan), make_params())


def test_nan_residual_is_not_silently_a_success():
    """A residual that turns NaN away from the start never yields a NaN 'success'."""
    def resid(p):
        r = linear(p)
        if p["a"].value > 1.5:
            r = r * np.nan
        return r

    try:
        out = minimize(resid, make_params())
    except FitError:
        return
    assert np.isfinite(out.chisqr)
    assert np.isfinite(make_params()["a"].value)


def test_residual_changing_length():
    calls = []

    def resid(p):
        calls.append(1)
        n = 20 if len(calls) < 4 else 19
        return linear(p)[:n]

    with pytest.raises(FitError, match=r"(?i)length|size|shape") as info:
        minimize(resid, make_params())
    assert "20" in str(info.value) and "19" in str(info.value)


@pytest.mark.parametrize("engine", ["lbfgsb", "anneal"])
def test_residual_changing_length_other_engines(engine):
    calls = []

    def resid(p):
        calls.append(1)
        n = 20 if len(calls) < 3 else 21
        return linear(p)[:n] if n <= 20 else np.append(linear(p), 0.0)

    params = make_params()
    for par in params.values():
        par.min, par.max = -5.0, 5.0
    with pytest.raises(FitError, match=r"(?i)length|size|shape"):
        minimize(resid, params, engine=engine)


@pytest.mark.parametrize("engine", ["levenberg", "nelder", "", "LEASTSQ ", "bfgs"])
def test_unknown_engine_lists_valid_ones(engine):
    with pytest.raises(BatchfitError) as info:
        minimize(linear, make_params(), engine=engine)
    message = str(info.value)
    for valid in ("leastsq", "lbfgsb", "anneal"):
        assert valid in message
    assert repr(engine) in message or engine.strip() in message


def test_unknown_method_alias_lists_valid_ones():
    with pytest.raises(BatchfitError, match="leastsq.*lbfgsb.*anneal|anneal.*lbfgsb.*leastsq"):
        minimize(linear, make_params(), method="simplex")


def test_unknown_engine_through_minimizer():
    fitter = Minimizer(linear, make_params())
    with pytest.raises((BatchfitError, AttributeError)):
        fitter.fit(engine="simplex")


def test_residual_of_wrong_type():
    with pytest.raises((FitError, TypeError, ValueError)):
        minimize(lambda p: None, make_params())


def test_no_varied_parameters():
    params = make_params()
    for par in params.values():
        par.vary = False
    try:
        out = minimize(linear, params)
    except BatchfitError as exc:
        assert "vary" in str(exc).lower() or "varied" in str(exc).lower()
        return
    assert out.nvarys == 0
    assert out.chisqr == pytest.approx(np.sum(linear(params) ** 2))
