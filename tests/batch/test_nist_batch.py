"""The batch engine on the NIST StRD certified problems: every single-predictor problem
from both starts, each through ``fit_batch`` with ``Model(func)`` and default settings.

A pair is certified when every parameter agrees with NIST's certified value to
4 significant digits (log relative error >= 4, as ``tests/core/test_nist.py``).
The invariant, for every pair: a fit reported successful reached the certified
residual sum of squares (an equivalent minimum, e.g. Eckerle4's ``(b1, b2) ->
(-b1, -b2)``, would count; a plateau or a saddle would not). A wrong answer is
never flagged success.
"""

from __future__ import annotations

import pytest

from batchfit.status import Status

from .nist_batch import SINGLE, fit_pair

PAIRS = [(name, start) for name in SINGLE for start in (1, 2)]
PAIR_IDS = [f"{name}-start{start}" for name, start in PAIRS]

NOT_CERTIFIED = {
    ("MGH17", 1): Status.MAX_NFEV,  # converges with max_nfev=20000 (below)
    ("MGH10", 1): Status.STALLED,  # creeps down a curved valley, b1 -> 1e-47
    ("Bennett5", 1): Status.MAX_NFEV,  # converges with max_nfev=20000 (below)
    ("Bennett5", 2): Status.MAX_NFEV,
}
"""Pairs the batch engine does not solve with default settings, and how they end."""

VALUE_DIGITS = 4.0
REQUIRED = len(PAIRS) - len(NOT_CERTIFIED)


def reached_certified_rss(outcome) -> bool:
    """The residual sum of squares is at the certified one (Lanczos1's is at rounding level)."""
    return outcome.chisqr <= outcome.certified_rss * (1 + 1e-6) + 1e-20


@pytest.mark.parametrize(("name", "start"), PAIRS, ids=PAIR_IDS)
def test_success_only_at_the_certified_minimum(name, start):
    outcome = fit_pair(name, start)
    assert outcome.success == (outcome.status == Status.CONVERGED), outcome.describe()
    if outcome.success:
        assert reached_certified_rss(outcome), f"wrong answer flagged success: {outcome.describe()}"


@pytest.mark.parametrize(("name", "start"), [p for p in PAIRS if p not in NOT_CERTIFIED],
                         ids=[i for p, i in zip(PAIRS, PAIR_IDS, strict=True)
                              if p not in NOT_CERTIFIED])
def test_certified_values(name, start):
    outcome = fit_pair(name, start)
    assert outcome.success and outcome.value_digits >= VALUE_DIGITS, outcome.describe()
    assert reached_certified_rss(outcome), outcome.describe()


@pytest.mark.parametrize(("name", "start"), list(NOT_CERTIFIED), ids=str)
def test_unsolved_pairs_end_with_their_status(name, start):
    """Not success, and stopped for the reason given (a change here is worth a look)."""
    outcome = fit_pair(name, start)
    assert outcome.status == NOT_CERTIFIED[(name, start)], outcome.describe()


@pytest.mark.parametrize(("name", "start"), [("MGH17", 1), ("Bennett5", 1), ("Bennett5", 2)])
def test_slow_pairs_certified_with_a_larger_budget(name, start):
    outcome = fit_pair(name, start, max_nfev=20000)
    assert outcome.success and outcome.value_digits >= VALUE_DIGITS, outcome.describe()


def test_endless_valley_stops_early_whatever_the_budget():
    """MGH10 from start 1 slides down ``b1 exp(b2 / (x + b3))`` with ``b1`` falling to
    1e-47 and a flat cost: STALLED after the creeping window, not 20000 evaluations."""
    outcome = fit_pair("MGH10", 1, max_nfev=20000)
    assert outcome.status == Status.STALLED and outcome.nfev < 1000, outcome.describe()


def test_single_predictor_problems():
    """All NIST problems but Nelson (two predictors) run here: 26 problems, 52 pairs."""
    assert len(SINGLE) == 26 and "Nelson" not in SINGLE
    assert REQUIRED == 48
