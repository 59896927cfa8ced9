"""NIST StRD nonlinear regression problems against their certified results.

Every problem is fitted from both NIST starting points with
``batchfit.minimize(residual, params)`` (default engine, no tuning keywords).
A pair passes when every best-fit value agrees with the certified value to 4
significant digits and every stderr with the certified standard deviation to
2 digits, counting digits as the log relative error (LRE).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.optimize import leastsq

import batchfit
from batchfit.errors import BatchfitError

from . import nist

VALUE_DIGITS = 4.0
STDERR_DIGITS = 2.0
REQUIRED_PASSES = 48

PAIRS = [(name, start) for name in nist.NAMES for start in (1, 2)]
PAIR_IDS = [f"{name}-start{start}" for name, start in PAIRS]


@dataclass(frozen=True)
class Outcome:
    """Digits of agreement of one fit with the certified results."""

    value_digits: float
    stderr_digits: float
    nfev: int
    chisqr: float
    error: str = ""

    @property
    def passed(self) -> bool:
        """Values to 4 digits and stderr to 2 digits."""
        return self.value_digits >= VALUE_DIGITS and self.stderr_digits >= STDERR_DIGITS

    def describe(self) -> str:
        """One-line summary for failure messages."""
        text = (f"value digits {self.value_digits:.2f}, stderr digits "
                f"{self.stderr_digits:.2f}, nfev {self.nfev}, chisqr {self.chisqr:.6g}")
        return f"{text}, error {self.error}" if self.error else text


def residual(params, problem):
    """NIST residual written against the Parameters interface."""
    b = np.array([params[f"b{i + 1}"].value for i in range(problem.nparams)])
    return problem.residual_array(b)


def make_params(start):
    params = batchfit.Parameters()
    for i, value in enumerate(start):
        params.add(f"b{i + 1}", value=float(value))
    return params


@functools.cache
def fit_outcome(name: str, start: int) -> Outcome:
    """Fit one problem/start pair with batchfit (cached across tests)."""
    problem = nist.read(name)
    params = make_params(problem.start1 if start == 1 else problem.start2)
    try:
        out = batchfit.minimize(residual, params, args=(problem,))
    except BatchfitError as exc:
        return Outcome(0.0, 0.0, -1, np.inf, error=f"{type(exc).__name__}: {exc}")
    names = [f"b{i + 1}" for i in range(problem.nparams)]
    values = np.array([out.params[n].value for n in names])
    stderr = np.array([np.nan if out.params[n].stderr is None else out.params[n].stderr
                       for n in names])
    return Outcome(
        value_digits=float(nist.log_relative_error(values, problem.certified).min()),
        stderr_digits=float(nist.log_relative_error(stderr, problem.certified_stderr).min()),
        nfev=int(out.nfev), chisqr=float(out.chisqr))


@functools.cache
def minpack_outcome(name: str, start: int) -> Outcome:
    """The same fit by scipy.optimize.leastsq directly (MINPACK defaults)."""
    problem = nist.read(name)
    b0 = problem.start1 if start == 1 else problem.start2
    with np.errstate(all="ignore"):
        b, cov, info, _, _ = leastsq(problem.residual_array, b0, full_output=True)
    chisqr = float(np.sum(problem.residual_array(b) ** 2))
    if cov is None:
        stderr = np.full(problem.nparams, np.nan)
    else:
        stderr = np.sqrt(np.diag(cov) * chisqr / (problem.nobs - problem.nparams))
    return Outcome(
        value_digits=float(nist.log_relative_error(b, problem.certified).min()),
        stderr_digits=float(nist.log_relative_error(stderr, problem.certified_stderr).min()),
        nfev=int(info["nfev"]), chisqr=chisqr)


@pytest.mark.parametrize(("name", "start"), PAIRS, ids=PAIR_IDS)
def test_nist_pair(name, start):
    outcome = fit_outcome(name, start)
    assert outcome.passed, f"{name} start {start}: {outcome.describe()}"


@pytest.mark.parametrize(("name", "start"), PAIRS, ids=PAIR_IDS)
def test_nist_chisqr_not_above_certified(name, start):
    """A passing fit also reaches the certified residual sum of squares."""
    outcome = fit_outcome(name, start)
    if not outcome.passed:
        pytest.skip(f"fit did not pass (reported by test_nist_pair): {outcome.describe()}")
    certified = nist.read(name).certified_rss
    # Lanczos1's certified RSS (1.4e-25) is at the rounding level of the data
    assert outcome.chisqr <= certified * (1 + 1e-6) + 1e-20


@pytest.mark.parametrize(("name", "start"), PAIRS, ids=PAIR_IDS)
def test_nist_not_worse_than_direct_minpack(name, start):
    """Where MINPACK alone reaches the certified minimum, batchfit does too."""
    reference = minpack_outcome(name, start)
    certified = nist.read(name).certified_rss
    reached = reference.chisqr <= certified * (1 + 1e-6) + 1e-20
    outcome = fit_outcome(name, start)
    if reached:
        assert outcome.chisqr <= certified * (1 + 1e-6) + 1e-20, (
            f"scipy.optimize.leastsq reached chisqr {reference.chisqr:.10g} "
            f"(nfev {reference.nfev}); batchfit: {outcome.describe()}")
    else:
        assert np.isfinite(outcome.chisqr) or outcome.error, outcome.describe()


def test_nist_aggregate():
    outcomes = {pair: fit_outcome(*pair) for pair in PAIRS}
    failed = {pair: o for pair, o in outcomes.items() if not o.passed}
    report = "\n".join(f"  {n} start {s}: {o.describe()}" for (n, s), o in failed.items())
    assert len(PAIRS) - len(failed) >= REQUIRED_PASSES, (
        f"{len(PAIRS) - len(failed)}/{len(PAIRS)} NIST pairs pass; failing:\n{report}")


def test_nist_files_complete():
    """All 27 problems parse, with the header's number of observations."""
    assert len(nist.NAMES) == 27
    for name in nist.NAMES:
        problem = nist.read(name)
        assert problem.y.shape == (problem.nobs,)
        assert problem.x.shape[-1] == problem.nobs
        assert len(problem.start1) == len(problem.start2) == problem.nparams
        assert np.all(problem.certified_stderr > 0)


@pytest.mark.parametrize("name", [n for n in nist.NAMES if n != "Lanczos1"])
def test_nist_models_reproduce_certified_rss(name):
    """The transcribed model at the certified values gives the certified RSS."""
    problem = nist.read(name)
    rss = np.sum(problem.residual_array(problem.certified) ** 2)
    assert nist.log_relative_error(rss, problem.certified_rss) >= 9
