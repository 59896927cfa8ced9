"""The NIST StRD problems (``tests/core/nist.py``) as batch fits: ``Model(func)`` + ``fit_batch``.

Each problem's formula becomes a user function ``f(x, b1, ..., bk)`` (no
derivatives: the batch engine differentiates numerically, as for any user
model), fitted with default settings from NIST's start 1 or 2.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import numpy as np

import batchfit
from batchfit.models import Model
from batchfit.status import Status
from tests.core import nist

#: problems with one predictor (Nelson has two; ``fit_batch`` takes a 1-D x)
SINGLE = tuple(n for n in nist.NAMES if nist.read(n).x.ndim == 1)


def model_function(name: str, k: int):
    """``f(x, b1, ..., bk)`` evaluating NIST problem `name` (parameters as (n, 1) arrays)."""
    formula = nist.MODELS[name]

    def f(x, *b):
        with np.errstate(all="ignore"):
            return formula(b, x)

    names = [f"b{i + 1}" for i in range(k)]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    f.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("x", kind)] + [inspect.Parameter(n, kind) for n in names])
    f.__name__ = f.__qualname__ = f"nist_{name.lower()}"
    return f


def canonical(name: str, values: np.ndarray) -> np.ndarray:
    """`values` in the certified one of the models' equivalent parametrizations.

    Eckerle4, ``(b1/b2) exp(-((x - b3)/b2)^2 / 2)``, is unchanged by ``(b1, b2)
    -> (-b1, -b2)``; NIST certifies ``b2 > 0``.
    """
    if name == "Eckerle4" and values[1] < 0:
        return values * np.array([-1.0, -1.0, 1.0])
    return values


@dataclass(frozen=True)
class BatchOutcome:
    """One batch fit of a NIST problem from one start."""

    name: str
    start: int
    status: int
    success: bool
    values: np.ndarray
    chisqr: float
    nfev: int
    value_digits: float  # min LRE of the parameters against the certified values
    certified_rss: float

    def describe(self) -> str:
        """One line for failure messages."""
        return (f"{self.name} start {self.start}: status {Status(self.status).name}, "
                f"value digits {self.value_digits:.2f}, chisqr {self.chisqr:.8g} "
                f"(certified {self.certified_rss:.8g}), nfev {self.nfev}")


@functools.cache
def fit_pair(name: str, start: int, max_nfev: int | None = None) -> BatchOutcome:
    """Fit NIST problem `name` from start 1 or 2 with ``fit_batch`` (one curve)."""
    problem = nist.read(name)
    model = Model(model_function(name, problem.nparams))
    params = model.make_params()
    for i, value in enumerate(problem.start1 if start == 1 else problem.start2):
        params[f"b{i + 1}"].value = float(value)
    res = batchfit.fit_batch(model, params, problem.x, problem.y[None, :], max_nfev=max_nfev)
    values = np.array([res.values[f"b{i + 1}"][0] for i in range(problem.nparams)])
    return BatchOutcome(
        name=name, start=start, status=int(res.status[0]), success=bool(res.success[0]),
        values=values, chisqr=float(np.sum(problem.residual_array(values) ** 2)),
        nfev=int(res.nfev[0]),
        value_digits=float(nist.log_relative_error(canonical(name, values),
                                                   problem.certified).min()),
        certified_rss=problem.certified_rss)
