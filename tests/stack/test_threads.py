"""Workers running several tasks at once give the store a single-threaded worker gives.

The 2-thread worker runs two chunks at the same time in one process (shared
compiled expressions, numpy error state, the allocator tuning, zarr writes to
one store), so anything shared that a task mutated would show up here.
"""

from __future__ import annotations

import pytest

from batchfit import pipeline
from batchfit.stack import open_results

from .conftest import assert_same_store, make_job


@pytest.mark.slow
def test_two_threads_per_worker_give_an_identical_store(cube_path, tmp_path):
    stores = {}
    for threads in (1, 2):
        out = tmp_path / f"threads{threads}.zarr"
        config = make_job(cube_path, out, input__chunks={"y": 2, "x": 5},
                          parameters={"p1_sigma": {"value": 1.0, "min": 0.05},
                                      "bg_slope": {"expr": "0.01 * p1_sigma"}},
                          cluster={"kind": "local", "n_workers": 1,
                                   "threads_per_worker": threads})
        summary = pipeline.run(config, quiet=True)
        assert summary.chunks_computed == 12
        stores[threads] = open_results(out).load()
    assert_same_store(stores[1], stores[2])
    assert int(stores[2]["success"].sum()) >= 100  # 120 pixels, 2 without data
