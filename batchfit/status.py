"""Per-fit status codes: why a fit ended, stored as int8 in results."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike


class Status(IntEnum):
    """Why a fit ended.

    ``CONVERGED`` is the only code for which ``success`` can be true.
    """

    CONVERGED = 0
    MAX_NFEV = 1
    BAD_DATA = 2
    MODEL_ERROR = 3
    MASKED = 4
    NOT_RUN = 5
    STALLED = 6


MESSAGES = {
    Status.CONVERGED: "fit converged",
    Status.MAX_NFEV: "stopped at the maximum number of function evaluations",
    Status.BAD_DATA: "no information to fit: all-NaN, constant, or fewer finite points "
    "than varied parameters",
    Status.MODEL_ERROR: "the model returned non-finite values or raised",
    Status.MASKED: "masked out: not fitted",
    Status.NOT_RUN: "not run yet",
    Status.STALLED: "stopped early without progress: cost flat under maximal damping, "
    "parameters running away, or the model flat in every parameter",
}


def flag_attrs() -> dict:
    """CF attributes (``flag_values``, ``flag_meanings``) for a status variable."""
    codes = sorted(Status)
    return {
        "flag_values": [int(c) for c in codes],
        "flag_meanings": " ".join(c.name.lower() for c in codes),
        "long_name": "fit status",
    }


def count(status: ArrayLike) -> dict[int, int]:
    """Pixels per status code, in code order: every known code (zeros included).

    Parameters
    ----------
    status : array_like of int
        Status codes of any shape (a ``status`` variable or its values).

    Returns
    -------
    dict
        :class:`Status` -> count; a code this version does not know (a store
        written by another one) is counted under its int.
    """
    codes, counts = np.unique(np.asarray(status).ravel().astype(np.int64), return_counts=True)
    out: dict[int, int] = dict.fromkeys(Status, 0)
    out.update({_known(int(c)): int(n) for c, n in zip(codes, counts, strict=True)})
    return dict(sorted(out.items()))


def _known(code: int) -> int:
    try:
        return Status(code)
    except ValueError:
        return code


def label(code: int | str) -> str:
    """The lower-case name of a status code (``code_<n>`` for an unknown one).

    A name is returned lower-cased.
    """
    if isinstance(code, str):
        return code.lower()
    known = _known(int(code))
    return known.name.lower() if isinstance(known, Status) else f"code_{known}"


def format_counts(counts: Mapping[int | str, int]) -> str:
    """``"converged 118, bad_data 2"``: the non-zero counts by name, or ``"none"``."""
    return ", ".join(f"{label(code)} {n}" for code, n in counts.items() if n) or "none"
