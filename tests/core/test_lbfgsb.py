"""lbfgsb() keywords: fmin_l_bfgs_b's names honoured against scipy, the rest refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from batchfit import Minimizer, Parameters, minimize
from batchfit.core.lbfgsb import options
from batchfit.errors import FitError

X = np.linspace(0, 10, 101)
DATA = 3.0 * np.exp(-X / 2.5) + 0.5 + np.random.default_rng(3).normal(0, 0.01, X.size)


def residual(params, x, data):
    v = params.valuesdict()
    return v["a"] * np.exp(-x / v["tau"]) + v["c"] - data


def make_params():
    p = Parameters()
    p.add("a", value=1.0)
    p.add("tau", value=1.0, min=0.1, max=20)
    p.add("c", value=0.0)
    return p


def test_fmin_l_bfgs_b_names_map_to_minimize_options():
    opts, cb = options(3, {}, {"m": 7, "factr": 1e7, "pgtol": 1e-6, "epsilon": 1e-7,
                               "maxfun": 99, "maxiter": 50, "maxls": 30})
    assert opts["maxcor"] == 7 and opts["gtol"] == 1e-6 and opts["eps"] == 1e-7
    assert opts["ftol"] == pytest.approx(1e7 * np.finfo(float).eps)
    assert (opts["maxfun"], opts["maxiter"], opts["maxls"], cb) == (99, 50, 30, None)


def scipy_reference(factr, pgtol, m):
    """fmin_l_bfgs_b called directly, with the same cost and forward-difference gradient."""
    def cost(v):
        r = v[0] * np.exp(-X / v[1]) + v[2] - DATA
        return r @ r
    best, f, info = optimize.fmin_l_bfgs_b(
        cost, [1.0, 1.0, 0.0], approx_grad=True, epsilon=1e-8, m=m, factr=factr, pgtol=pgtol,
        bounds=[(None, None), (0.1, 20), (None, None)])
    return best, f, info["nit"]


@pytest.mark.parametrize(("factr", "pgtol", "m"), [(1e12, 1e-2, 3), (1e7, 1e-5, 10)])
def test_loose_and_tight_settings_match_scipy(factr, pgtol, m):
    ref, ref_cost, ref_nit = scipy_reference(factr, pgtol, m)
    out = minimize(residual, make_params(), args=(X, DATA), engine="lbfgsb",
                   factr=factr, pgtol=pgtol, m=m, epsilon=1e-8)
    got = [out.params[n].value for n in ("a", "tau", "c")]
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
    assert out.chisqr == pytest.approx(ref_cost, rel=1e-6)


def test_factr_changes_the_result():
    loose = minimize(residual, make_params(), args=(X, DATA), engine="lbfgsb", factr=1e13)
    tight = minimize(residual, make_params(), args=(X, DATA), engine="lbfgsb", factr=10)
    assert tight.chisqr < loose.chisqr


def test_callback_sees_every_iteration():
    seen = []
    minimize(residual, make_params(), args=(X, DATA), engine="lbfgsb", callback=seen.append)
    assert len(seen) > 3 and all(np.shape(v) == (3,) for v in seen)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("bounds", [(0, 1)] * 3, "min and max"),
    ("fprime", lambda v: v, "numerically"),
    ("x0", [1, 2, 3], "Parameters' values"),
    ("iprint", 1, "deprecated"),
    ("disp", True, "deprecated"),
    ("approx_grad", False, "fprime"),
    ("factrr", 1e7, "unknown keyword 'factrr'"),
    ("m", 0, "positive integer"),
    ("pgtol", -1.0, "positive number"),
])
def test_refused_keywords_say_why(key, value, match):
    with pytest.raises(FitError, match=match):
        minimize(residual, make_params(), args=(X, DATA), engine="lbfgsb", **{key: value})


def test_two_names_for_one_option():
    with pytest.raises(FitError, match="'m' and 'maxcor' set the same option"):
        Minimizer(residual, make_params(), fcn_args=(X, DATA)).lbfgsb(m=5, maxcor=6)


def test_constructor_leastsq_keywords_do_not_break_lbfgsb():
    fitter = Minimizer(residual, make_params(), fcn_args=(X, DATA), xtol=1e-9, factr=1e7)
    assert fitter.lbfgsb().success


def test_prepare_fit_takes_engine_keywords_for_the_later_fit():
    fitter = Minimizer(residual, make_params(), fcn_args=(X, DATA))
    fitter.prepare_fit(maxfev=5)
    fitter.leastsq()
    assert fitter.ier == 5  # maxfev reached: the keyword given to prepare_fit was used
