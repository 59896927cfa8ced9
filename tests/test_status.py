"""Status codes: one counting function for tasks, the store summary, status and the report."""

from __future__ import annotations

import numpy as np

from batchfit.status import Status, count, format_counts, label


def test_count_matches_a_direct_tally():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, len(Status), (13, 7)).astype(np.int8)
    got = count(codes)
    assert list(got) == sorted(Status)
    for code in Status:
        assert got[code] == int((codes == code).sum())


def test_unknown_codes_are_counted_not_dropped():
    got = count(np.array([0, 0, 9, 4], np.int8))
    assert got[Status.CONVERGED] == 2 and got[Status.MASKED] == 1 and got[9] == 1
    assert sum(got.values()) == 4
    assert [label(c) for c in got][-1] == "code_9"


def test_format_counts_names_the_nonzero_counts():
    assert format_counts(count(np.array([2, 0, 0]))) == "converged 2, bad_data 1"
    assert format_counts({"Converged": 3, "masked": 0}) == "converged 3"
    assert format_counts({}) == "none"
