"""The per-curve engines (leastsq, lbfgsb, anneal) in fit_batch: a bad model is a status.

Curves whose model raises, returns NaN or returns the wrong shape get
``MODEL_ERROR`` and NaN values; every other curve gets exactly the result it
gets when fitted alone, and nothing is raised.
"""

from __future__ import annotations

import numpy as np
import pytest

import batchfit
from batchfit.models import function_model
from batchfit.status import Status

from .reference import assert_results_identical

T = np.linspace(0.0, 10.0, 40)
KINDS = ("decay_raises_at", "decay_nan_at", "decay_short_at")
ENGINES = ("leastsq", "lbfgsb", "anneal")


def _data(n, seed):
    rng = np.random.default_rng(seed)
    amp, tau = rng.uniform(50, 150, n), rng.uniform(1.5, 3.0, n)
    return amp[:, None] * np.exp(-T / tau[:, None]) + rng.normal(0.0, 1.0, (n, T.size))


def _fit(model, y, engine, init=None):
    params = model.make_params(amp={"value": 80.0, "min": 0.0, "max": 400.0},
                               tau={"value": 2.0, "min": 0.2, "max": 20.0})
    kws = {"max_nfev": 3000} if engine == "leastsq" else {}
    return batchfit.fit_batch(model, params, T, y, init=init, engine=engine, **kws)


@pytest.mark.usefixtures("bad_models_path")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("engine", ENGINES)
def test_failing_model_is_a_status_and_spares_the_other_curves(engine, kind):
    model = function_model(f"bad_models:{kind}")
    n = 3 if engine == "anneal" else 6
    y = _data(n, seed=ENGINES.index(engine))
    tau0 = np.full(n, np.nan)
    bad = np.zeros(n, bool)
    bad[1::2] = True
    tau0[bad] = 7.0  # the model fails there
    res = _fit(model, y, engine, init={"tau": tau0})
    assert np.all(res.status[bad] == Status.MODEL_ERROR)
    assert not res.success[bad].any()
    for p in res.names:
        assert np.all(np.isnan(res.values[p][bad])), p
    alone = _fit(model, y[~bad], engine)
    assert alone.success.all(), alone.status
    assert_results_identical(res, alone, rows_a=~bad)


@pytest.mark.usefixtures("bad_models_path")
@pytest.mark.parametrize("engine", ("leastsq", "lbfgsb"))
def test_model_raising_during_the_fit_is_a_status(engine):
    """Data pull ``amp`` past 1000, where the model raises: those curves only fail."""
    model = function_model("bad_models:decay_raises_big")
    params = model.make_params(amp={"value": 80.0, "min": 0.0}, tau={"value": 2.0, "min": 0.2})
    y = _data(4, seed=5)
    y[[1, 2]] *= 15.0  # amplitude about 750-2250: the fit goes beyond 1000
    res = batchfit.fit_batch(model, params, T, y, engine=engine)
    assert np.all(np.isin(res.status, (Status.CONVERGED, Status.MODEL_ERROR)))
    assert res.success[[0, 3]].all()
    assert (res.status[[1, 2]] == Status.MODEL_ERROR).any()
    alone = batchfit.fit_batch(model, params, T, y[[0, 3]], engine=engine)
    assert_results_identical(res, alone, rows_a=np.array([0, 3]))
