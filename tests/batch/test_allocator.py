"""glibc malloc thresholds: the engine's large temporaries are reused, not page-faulted."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest

from batchfit.batch import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_large_temporaries_come_from_the_heap_without_page_faults():
    """Arrays of 5.6 MB, made and freed 40 times: with glibc's default thresholds each
    is mapped and zeroed afresh (about 1,400 faults each, 55,000 in all); tuned, the
    heap keeps them."""
    assert allocator.tune_malloc()
    base = np.ones(700_000)
    warm = [base * 2.0 for _ in range(4)]
    del warm
    before = _minor_faults()
    for _ in range(20):
        tmp = base * 2.0
        tmp += base * 3.0
        del tmp
    assert _minor_faults() - before < 1_000


def test_a_tuned_worker_keeps_its_thresholds(monkeypatch):
    """batchfit's workers set thresholds bounded by their limit; fit_batch keeps them."""
    monkeypatch.setattr(allocator, "_state", {})
    calls = []
    monkeypatch.setattr(allocator, "set_thresholds", lambda *a: calls.append(a) or True)
    from batchfit.stack.cluster import tune_malloc as worker_tune

    worker_tune(256 * 2**20)
    assert calls == [(4 * 2**20, 32 * 2**20)]
    assert allocator.tune_malloc() and len(calls) == 1


def test_opt_out_and_user_settings_leave_malloc_alone(monkeypatch):
    monkeypatch.setenv("BATCHFIT_TUNE_MALLOC", "0")
    assert allocator._apply() is False
    monkeypatch.delenv("BATCHFIT_TUNE_MALLOC")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert allocator._apply() is False
