"""Every code example of the lmfit 0.2 documentation, run against batchfit.

Only the import is changed (``from batchfit import ...``) and ``print`` is a
function. Data are synthetic with known answers: x = linspace(0, 15, 301) and
data = model + seeded Gaussian noise.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy import exp, pi, sign, sin
from scipy.optimize import leastsq

from batchfit import Minimizer, Parameter, Parameters, fit_report, minimize
from batchfit.errors import BatchfitError

X = np.linspace(0, 15, 301)
NOISE = 0.2
# truth for the damped sine of sections 2 and 2.1 (starts 10, 0.007, 0.2, 3.0)
TRUTH = {"amp": 12.0, "decay": 0.01, "phase": 0.25, "frequency": 3.05}
N_SIGMA = 4.0


def damped_sine(x, amp, frequency, phase, decay):
    return amp * sin(x * frequency + phase) * exp(-x * x * decay)


def noisy(model, seed):
    return model + np.random.default_rng(seed).normal(0.0, NOISE, model.shape)


@pytest.fixture(scope="module")
def data():
    return noisy(damped_sine(X, **TRUTH), seed=11)


def residual(params, x, data):
    """Section 2.1, verbatim apart from the imports."""
    amp = params['amp'].value
    pshift = params['phase'].value
    freq = params['frequency'].value
    decay = params['decay'].value

    model = amp * sin(x * freq + pshift) * exp(-x*x*decay)

    return (data-model)


def doc_params():
    params = Parameters()
    params.add('amp', value=10)
    params.add('decay', value=0.007)
    params.add('phase', value=0.2)
    params.add('frequency', value=3.0)
    return params


def assert_near_truth(params, truth, n_sigma=N_SIGMA):
    for name, true_value in truth.items():
        par = params[name]
        assert par.stderr is not None and par.stderr > 0, name
        assert abs(par.value - true_value) < n_sigma * par.stderr, (
            f"{name}: {par.value} +/- {par.stderr}, truth {true_value}")


def test_section2_traditional_scipy_matches_batchfit(data):
    """The scipy.optimize.leastsq example is an independent reference."""
    def residual_vars(vars, x, data):
        amp, phaseshift, freq, decay = vars
        model = amp * sin(x * freq + phaseshift) * exp(-x*x*decay)
        return (data-model)

    vars = [10.0, 0.2, 3.0, 0.007]
    out = leastsq(residual_vars, vars, args=(X, data))
    params = doc_params()
    result = minimize(residual, params, args=(X, data))
    got = [params[n].value for n in ('amp', 'phase', 'frequency', 'decay')]
    np.testing.assert_allclose(got, out[0], rtol=1e-5)
    assert result.success


def test_section21_minimize_recovers_truth(data):
    params = doc_params()
    out = minimize(residual, params, args=(X, data))
    assert out.success and out.errorbars
    assert_near_truth(params, TRUTH)
    # the returned object holds the same parameters
    for name in TRUTH:
        assert out.params[name].value == pytest.approx(params[name].value, rel=1e-12)
        assert params[name].init_value == doc_params()[name].value


def test_section21_fixed_and_bounded(data):
    params = Parameters()
    params.add('amp', value=10, vary=False)
    params.add('decay', value=0.007, min=0.0)
    params.add('phase', value=0.2)
    params.add('frequency', value=3.0, max=10)
    out = minimize(residual, params, args=(X, data))
    assert params['amp'].value == 10
    assert out.nvarys == 3
    assert params['decay'].value >= 0.0
    assert params['frequency'].value <= 10
    assert params['frequency'].value == pytest.approx(TRUTH['frequency'], abs=0.01)


def test_section21_later_edits(data):
    params = Parameters()
    params.add('amp', value=10, vary=False)
    params.add('decay', value=0.007, min=0.0)
    params.add('phase', value=0.2)
    params.add('frequency', value=3.0, max=10)

    params['amp'].vary = True
    params['decay'].max = 0.10

    assert params['decay'].max == 0.10
    out = minimize(residual, params, args=(X, data))
    assert out.nvarys == 4
    assert 0.0 <= params['decay'].value <= 0.10
    assert_near_truth(params, TRUTH)


def test_bounded_fit_respects_bounds_that_exclude_truth(data):
    """With decay bounded below its true value the fit ends at (or inside) the bound."""
    params = doc_params()
    params['decay'].max = 0.008
    params['decay'].min = 0.0
    minimize(residual, params, args=(X, data))
    assert 0.0 <= params['decay'].value <= 0.008
    assert params['decay'].value == pytest.approx(0.008, abs=1e-5)


def test_section22_parameter_class():
    par = Parameter(value=1.5, vary=False, min=0, max=3, name='p', expr=None)
    assert (par.value, par.vary, par.min, par.max, par.name, par.expr) == (
        1.5, False, 0, 3, 'p', None)
    tied = Parameter(expr='2*p')
    assert tied.expr == '2*p'


def test_section23_add():
    p = Parameters()
    p.add('myvar', value=1, vary=True)
    assert p['myvar'].value == 1 and p['myvar'].vary and p['myvar'].name == 'myvar'


def test_section23_add_many_table():
    p = Parameters()
    #      (Name,   Value,   Vary,   Min,   Max,   Expr)
    p.add_many(('amp1',    10,   True, None, None, None),
               ('cen1',    1.2,   True,  0.5,  2.0, None),
               ('wid1',    0.8,   True,  0.1, None, None),
               ('amp2',    7.5,   True, None, None, None),
               ('cen2',    1.9,   True,  1.0,  3.0, None),
               ('wid2',   None, False, None, None, '2*wid1/3'))
    assert list(p) == ['amp1', 'cen1', 'wid1', 'amp2', 'cen2', 'wid2']
    assert (p['cen1'].min, p['cen1'].max) == (0.5, 2.0)
    assert p['wid1'].min == 0.1 and p['wid1'].max in (None, np.inf)
    assert p['amp1'].min in (None, -np.inf)
    assert p['wid2'].expr == '2*wid1/3' and not p['wid2'].vary
    assert p['amp2'].value == 7.5

    def two_peaks(pars, x, data=None):
        v = {k: par.value for k, par in pars.items()}
        model = (v['amp1'] * exp(-(x - v['cen1'])**2 / (2 * v['wid1']**2))
                 + v['amp2'] * exp(-(x - v['cen2'])**2 / (2 * v['wid2']**2)))
        return model if data is None else model - data

    truth = {'amp1': 9.0, 'cen1': 1.3, 'wid1': 0.75, 'amp2': 7.0, 'cen2': 2.1}
    model = (9.0 * exp(-(X - 1.3)**2 / (2 * 0.75**2))
             + 7.0 * exp(-(X - 2.1)**2 / (2 * 0.5**2)))
    data = noisy(model, seed=5)
    out = minimize(two_peaks, p, args=(X, data))
    assert out.nvarys == 5
    assert p['wid2'].value == pytest.approx(2 * p['wid1'].value / 3, rel=1e-12)
    assert 0.5 <= p['cen1'].value <= 2.0 and 1.0 <= p['cen2'].value <= 3.0
    assert p['wid1'].value >= 0.1
    assert_near_truth(p, truth)


def test_section24_simple_example():
    def residual(params, x, data=None):
        amp = params['amp'].value
        shift = params['phase_shift'].value
        omega = params['omega'].value
        decay = params['decay'].value

        model = amp * sin(x * omega + shift) * exp(-x*x*decay)

        return (data-model)

    x = X
    truth = {'amp': 11.0, 'phase_shift': 0.3, 'omega': 3.1}
    data = noisy(damped_sine(x, 11.0, 3.1, 0.3, 0.007), seed=3)

    params = Parameters()
    params.add('amp', value=10)
    params.add('decay', value=0.007, vary=False)
    params.add('phase_shift', value=0.2)
    params.add('omega', value=3.0)

    result = minimize(residual, params, args=(x, data))

    print(result.chisqr)
    print('Best-Fit Values:')
    lines = []
    for name, par in params.items():
        lines.append(' %s = %.4f +/- %.4f ' % (name, par.value, par.stderr))  # noqa: UP031
        print(lines[-1])
    assert len(lines) == 4
    assert params['decay'].value == 0.007
    assert result.chisqr == pytest.approx(np.sum(result.residual**2), rel=1e-12)
    assert_near_truth(params, truth)


PERIOD_TRUTH = {'amp': 14.0, 'period': 1.9, 'shift': 0.123, 'decay': 0.032}


def period_residual(pars, x, data=None):
    """Section 3.2, with the documentation's typo ``per`` read as ``period``."""
    # unpack parameters:
    # extract .value attribute for each parameter
    amp = pars['amp'].value
    period = pars['period'].value
    shift = pars['shift'].value
    decay = pars['decay'].value

    if abs(shift) > pi/2:
        shift = shift - sign(shift)*pi

    if abs(period) < 1.e-10:
        period = sign(period)*1.e-10

    model = amp * sin(shift + x/period) * exp(-x*x*decay*decay)

    if data is None:
        return model
    return (model - data)


def period_data():
    t = PERIOD_TRUTH
    return noisy(t['amp'] * sin(t['shift'] + X / t['period']) * exp(-X * X * t['decay']**2), 7)


def period_params():
    params = Parameters()
    params.add('amp', value=13)
    params.add('shift', value=0.1)
    params.add('decay', value=0.03)
    params['period'] = Parameter(value=2, min=1.e-10)
    return params


def test_section32_parameter_assignment_and_fit():
    params = period_params()
    assert params['period'].name == 'period'
    assert params['period'].min == 1.e-10
    minimize(period_residual, params, args=(X,), kws={'data': period_data()})
    assert params['period'].value > 1.e-10
    assert_near_truth(params, PERIOD_TRUTH)


def test_section35_prepare_fit_then_call_residual():
    params = period_params()
    params.add('half_amp', expr='amp / 2')
    data = period_data()
    myfit = Minimizer(period_residual, params, fcn_args=(X,), fcn_kws={'data': data})

    myfit.prepare_fit()
    p_fit = myfit.params
    init = period_residual(p_fit, X)
    expected = 13 * sin(0.1 + X / 2) * exp(-X * X * 0.03**2)
    np.testing.assert_allclose(init, expected, rtol=1e-12)
    assert p_fit['half_amp'].value == pytest.approx(6.5)

    myfit.leastsq()
    assert myfit.success
    assert_near_truth(myfit.params, PERIOD_TRUTH)
    assert myfit.params['half_amp'].value == pytest.approx(myfit.params['amp'].value / 2)


def test_section35_minimizer_methods_and_result_attributes(data):
    fitter = Minimizer(residual, doc_params(), fcn_args=(X, data))
    fitter.leastsq()
    for attr in ('nfev', 'success', 'errorbars', 'message', 'ier', 'lmdif_message',
                 'nvarys', 'ndata', 'nfree', 'residual', 'chisqr', 'redchi'):
        assert hasattr(fitter, attr), attr
    assert fitter.ndata == X.size and fitter.nvarys == 4 and fitter.nfree == X.size - 4


def test_section43_user_function_in_symtable(data, capsys):
    calls = []

    def custom_function(x, y, **kws):
        print('In custom function!')
        calls.append((x, y))
        return x+y

    params = doc_params()
    params.add('offset', value=0.05)
    params.add('phase', expr='myfunc(offset, 0.15)')
    fitter = Minimizer(residual, params, fcn_args=(X, data))
    fitter.asteval.symtable['myfunc'] = custom_function
    fitter.leastsq()
    assert calls, "the user function was never called"
    assert 'In custom function!' in capsys.readouterr().out
    p = fitter.params
    assert p['phase'].value == pytest.approx(p['offset'].value + 0.15, rel=1e-12)
    assert p['phase'].value == pytest.approx(TRUTH['phase'], abs=4 * p['offset'].stderr)


# ---- engines (section 3.3) ----------------------------------------------

def bounded_params():
    params = Parameters()
    params.add('amp', value=10, min=5, max=20)
    params.add('decay', value=0.007, min=0.001, max=0.05)
    params.add('phase', value=0.2, min=-0.5, max=1.0)
    params.add('frequency', value=3.0, min=2.9, max=3.2)
    return params


@pytest.fixture(scope="module")
def leastsq_chisqr(data):
    return minimize(residual, doc_params(), args=(X, data)).chisqr


@pytest.mark.parametrize("engine", ["leastsq", "lbfgsb", "anneal"])
def test_engines_reach_leastsq_minimum(engine, data, leastsq_chisqr):
    params = bounded_params()
    out = minimize(residual, params, args=(X, data), engine=engine)
    assert out.chisqr <= leastsq_chisqr * 1.01, (engine, out.chisqr, leastsq_chisqr)
    for name, par in params.items():
        assert par.min <= par.value <= par.max, name
        assert par.value == pytest.approx(TRUTH[name], rel=0.05), (engine, name)


@pytest.mark.parametrize("engine", ["leastsq", "lbfgsb", "anneal"])
def test_method_is_alias_of_engine(engine, data):
    by_engine = minimize(residual, bounded_params(), args=(X, data), engine=engine)
    by_method = minimize(residual, bounded_params(), args=(X, data), method=engine)
    assert by_method.chisqr == pytest.approx(by_engine.chisqr, rel=1e-6)


@pytest.mark.parametrize("method", ["leastsq", "lbfgsb", "anneal"])
def test_minimizer_engine_methods(method, data, leastsq_chisqr):
    fitter = Minimizer(residual, bounded_params(), fcn_args=(X, data))
    getattr(fitter, method)()
    assert fitter.chisqr <= leastsq_chisqr * 1.01


def test_anneal_requires_finite_bounds(data):
    params = doc_params()   # unbounded
    with pytest.raises(BatchfitError, match=r"(?i)bound|min|max") as info:
        minimize(residual, params, args=(X, data), engine='anneal')
    assert any(name in str(info.value) for name in params), str(info.value)


def test_anneal_ignores_bounds_of_fixed_params(data):
    params = bounded_params()
    params.add('amp', value=12.0, vary=False)   # unbounded but fixed: fine
    out = minimize(residual, params, args=(X, data), engine='anneal')
    assert params['amp'].value == 12.0 and out.nvarys == 3


# ---- constraints (section 4) --------------------------------------------

def test_section41_fraction_constraint():
    pars = Parameters()
    pars.add('frac_curve1', value=0.5, min=0, max=1)
    pars.add('frac_curve2', expr='1 - frac_curve1')
    pars.add('t1', value=1.0, min=0.01)
    pars.add('t2', value=5.0, min=0.01)

    def resid(p, x, data):
        v = p.valuesdict()
        model = 10 * (v['frac_curve1'] * exp(-x / v['t1']) + v['frac_curve2'] * exp(-x / v['t2']))
        return model - data

    data = noisy(10 * (0.3 * exp(-X / 1.5) + 0.7 * exp(-X / 6.0)), seed=9)
    minimize(resid, pars, args=(X, data))
    assert pars['frac_curve1'].value + pars['frac_curve2'].value == pytest.approx(1.0)
    assert 0 <= pars['frac_curve1'].value <= 1
    assert_near_truth(pars, {'frac_curve1': 0.3, 't1': 1.5, 't2': 6.0})


def test_section42_peak_expressions():
    pars = Parameters()
    pars.add('amp_1', value=0.5, min=0, max=1)
    pars.add('cen_1', value=2.2)
    pars.add('wid_1', value=0.2)

    pars.add('amp_2', expr='(2.0 - amp_1**2)')
    pars.add('cen_2', expr='cen_1 * wid_2 / max(wid_1, 0.001)')
    pars.add('wid_2', expr='sqrt(pi)*wid_1')

    def gauss(x, a, c, w):
        return a * exp(-(x - c)**2 / (2 * w**2))

    def resid(p, x, data):
        v = p.valuesdict()
        return (gauss(x, v['amp_1'], v['cen_1'], v['wid_1'])
                + gauss(x, v['amp_2'], v['cen_2'], v['wid_2']) - data)

    a1, c1, w1 = 0.6, 2.2, 0.25
    w2 = np.sqrt(np.pi) * w1
    data = noisy(gauss(X, a1, c1, w1) + gauss(X, 2 - a1**2, c1 * w2 / w1, w2), seed=4)
    out = minimize(resid, pars, args=(X, data))
    assert out.nvarys == 3
    v = pars.valuesdict()
    assert v['amp_2'] == pytest.approx(2.0 - v['amp_1']**2, rel=1e-12)
    assert v['wid_2'] == pytest.approx(np.sqrt(np.pi) * v['wid_1'], rel=1e-12)
    assert v['cen_2'] == pytest.approx(v['cen_1'] * v['wid_2'] / max(v['wid_1'], 0.001),
                                       rel=1e-12)
    assert_near_truth(pars, {'amp_1': a1, 'cen_1': c1, 'wid_1': w1})


@pytest.mark.parametrize(("test_val", "expected"), [(150.0, 'param_b'), (250.0, 'param_a')])
def test_section42_conditional_expression(test_val, expected):
    pars = Parameters()
    pars.add('param_a', value=1.5)
    pars.add('param_b', value=2.5)
    pars.add('test_val', value=test_val, vary=False)
    pars.add('bounded', expr='param_a if test_val/2. > 100 else param_b')

    def resid(p):
        v = p.valuesdict()
        return np.array([v['param_a'] - 1.0, v['param_b'] - 3.0, 0.1 * v['bounded']])

    minimize(resid, pars)
    assert pars['bounded'].value == pytest.approx(pars[expected].value, rel=1e-12)


def test_fit_report_mentions_every_parameter(data):
    params = doc_params()
    params.add('half_amp', expr='amp/2')
    params.add('fixed', value=1.0, vary=False)
    minimize(residual, params, args=(X, data))
    report = fit_report(params)
    assert isinstance(report, str)
    for name in params:
        assert name in report, name
    assert f"{params['amp'].value:.4f}"[:5] in report
