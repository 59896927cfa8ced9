"""Engine names and messages of the core's per-curve engines.

The canonical names come from :mod:`batchfit.vocabulary`; this module adds
the aliases ``minimize(method=...)`` accepts, MINPACK's exit messages and the
error text for a residual that is not finite.
"""

from __future__ import annotations

import math

import numpy as np

from batchfit.errors import FitError
from batchfit.vocabulary import CURVE_ENGINES

ENGINES = CURVE_ENGINES
ALIASES = {"lm": "leastsq", "leastsq": "leastsq", "lbfgsb": "lbfgsb", "l-bfgs-b": "lbfgsb",
            "anneal": "anneal", "dual_annealing": "anneal"}

LEASTSQ_MESSAGES = {
    1: "Both actual and predicted relative reductions in the sum of squares are at most ftol.",
    2: "The relative error between two consecutive iterates is at most xtol.",
    3: "Both actual and predicted relative reductions in the sum of squares are at most ftol "
       "and the relative error between two consecutive iterates is at most xtol.",
    4: "The cosine of the angle between the residual vector and any Jacobian column is at "
       "most gtol in absolute value.",
    5: "The number of function evaluations reached maxfev.",
    6: "ftol is too small: no further reduction in the sum of squares is possible.",
    7: "xtol is too small: no further improvement in the approximate solution is possible.",
    8: "gtol is too small: the residual is orthogonal to the Jacobian columns to machine "
       "precision.",
}


def engine_name(engine: str) -> str:
    """The canonical engine name for ``engine`` (or an alias); FitError if unknown."""
    key = str(engine).lower()
    if key not in ALIASES:
        raise FitError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    return ALIASES[key]


def none_if_inf(v: float) -> float | None:
    """``None`` for an infinite bound (what scipy's bound lists take), else the bound."""
    return None if math.isinf(v) else v


def nonfinite_message(r, params, where: str = "at the starting values") -> str:
    """The FitError text for a residual with NaN or infinite values, naming the parameters."""
    bad = int(np.size(r) - np.count_nonzero(np.isfinite(r)))
    vals = ", ".join(f"{k}={v.value:.6g}" for k, v in params.items() if v.value is not None)
    return (
        f"the residual function returned {bad} NaN or infinite value(s) of {np.size(r)} "
        f"{where} ({vals}); check the data for NaN and the model for division by zero "
        "or overflow"
    )
