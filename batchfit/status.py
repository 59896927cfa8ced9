"""Per-fit status codes: why a fit ended, stored as int8 in results."""

from __future__ import annotations

from enum import IntEnum


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
