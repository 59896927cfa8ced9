"""The default chunk rule: bounded by the worker memory limit, aligned to native chunks.

The planning side is tested here (tests/stack/test_task.py: a task reads only its region).
A real larger-than-memory run is not: a worker process alone is ~160 MiB of
libraries, so a limit small enough for a cube 3x larger to fit in a fast
test leaves tiles of a few dozen pixels and thousands of tasks. That run
(with each worker's peak RSS) is scripts/bench_submit.py's ``big`` part.
"""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from batchfit import pipeline
from batchfit.batch.fit import block_size
from batchfit.errors import ClusterError
from batchfit.stack import chunking
from batchfit.stack.synthetic import make_cube, write_cube

from .conftest import make_job

MiB = 2**20


def cube(shape, chunks=None, dtype="float32"):
    """A lazy (y, x, e) DataArray with dask chunks (the native chunks) or numpy."""
    if chunks is None:
        return xr.DataArray(np.zeros(shape, dtype), dims=("y", "x", "e"))
    return xr.DataArray(dsa.zeros(shape, chunks=chunks, dtype=dtype), dims=("y", "x", "e"))


@pytest.mark.parametrize("limit, threads, expect", [
    (None, 1, 128 * MiB),                # unknown: the cap
    (16 * 2**30, 1, 128 * MiB),          # big workers: still the cap
    (384 * MiB, 1, 48 * MiB),            # 1/8 of the limit
    (384 * MiB, 4, 12 * MiB),            # shared by the worker's threads
    (352 * MiB, 1, 24 * MiB),            # 75% of the limit less the worker's 240 MiB
    (352 * MiB, 2, 12 * MiB),            # shared by the worker's threads
    (512 * MiB, 1, 64 * MiB),            # the default of scripts/bench_memory.py: 1/8
])
def test_task_budget(limit, threads, expect):
    assert chunking.task_budget(limit, threads) == expect


@pytest.mark.parametrize("limit, threads, resident, expect", [
    (512 * MiB, 1, 300 * MiB, 64 * MiB),   # 384 - 300 = 84 MiB: 1/8 of the limit binds
    (512 * MiB, 1, 340 * MiB, 44 * MiB),   # a measured baseline above the model binds
    (512 * MiB, 2, 340 * MiB, 22 * MiB),   # ... shared by 2 threads
    (2**30, 4, 700 * MiB, 17 * MiB),       # (768 - 700) / 4
])
def test_task_budget_with_a_measured_resident(limit, threads, resident, expect):
    assert chunking.task_budget(limit, threads, resident) == expect


@pytest.mark.parametrize("limit", [352 * MiB, 400 * MiB, 512 * MiB, 2**30, 2**34])
@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("resident", [chunking.WORKER_RESIDENT, 200 * MiB, 500 * MiB])
def test_budget_keeps_the_worker_under_75_percent_or_is_refused(limit, threads, resident):
    """Resident memory plus the concurrent tasks' budgets stay <= 75%; else a clear error."""
    if limit < chunking.smallest_limit(threads, resident):
        with pytest.raises(ClusterError, match="too small"):
            chunking.task_budget(limit, threads, resident)
        return
    budget = chunking.task_budget(limit, threads, resident)
    assert resident + threads * budget <= 0.75 * limit
    assert budget >= chunking.MIN_TASK_BYTES
    assert budget <= limit / (8 * threads) and budget <= chunking.TARGET_CHUNK_BYTES


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("resident", [chunking.WORKER_RESIDENT, 333 * MiB])
def test_smallest_limit_is_the_boundary(threads, resident):
    """The limit the error names works; one MiB less is refused."""
    smallest = chunking.smallest_limit(threads, resident)
    assert smallest % MiB == 0
    assert chunking.task_budget(smallest, threads, resident) >= chunking.MIN_TASK_BYTES
    with pytest.raises(ClusterError):
        chunking.task_budget(smallest - MiB, threads, resident)


def test_too_small_limit_names_the_limit_and_the_smallest_that_works():
    with pytest.raises(ClusterError) as err:
        chunking.task_budget(256 * MiB)
    text = str(err.value)
    # (240 MiB resident + one task of 8 MiB) / 0.75 = 330.7 -> 331 MiB
    assert "256 MiB" in text and "smallest limit that works is 331 MiB" in text
    assert "cluster.memory_limit" in text


def test_resident_estimate_from_a_measurement():
    model, fresh = chunking.WORKER_RESIDENT, chunking.FRESH_WORKER
    assert chunking.resident_estimate() == model
    assert chunking.resident_estimate(100 * MiB) == model  # never under the model
    # a fresh worker of 300 MiB (another BLAS, more libraries) grows like ours after tasks
    assert chunking.resident_estimate(300 * MiB) == 300 * MiB + model - fresh
    assert chunking.resident_estimate(300 * MiB, warmed=True) == 300 * MiB


def test_task_bytes_is_the_documented_formula():
    npts, nvar = 128, 5
    per = 8 * (7 * npts + nvar * (nvar + 56))
    blk = 24 * npts * (nvar + 1)
    assert block_size(npts) == 2048  # the engine's blocks: 2**18 points
    assert chunking.task_bytes(100, npts, nvar) == 100 * (per + blk)
    assert chunking.task_bytes(5000, npts, nvar, 7) == 5000 * per + 2048 * blk + 7
    assert chunking.task_bytes(5000, 2**14, nvar) == 5000 * per_(2**14, nvar) + 64 * blk * 2**7


def per_(npts, nvar):
    return 8 * (7 * npts + nvar * (nvar + 56))


@pytest.mark.parametrize("budget", [1 * MiB, 5 * MiB, 31 * MiB, 64 * MiB, 10**9])
@pytest.mark.parametrize("npts, nvar", [(16, 2), (128, 5), (512, 14)])
def test_pixel_budget_is_the_largest_within_budget(budget, npts, nvar):
    p = chunking.pixel_budget(budget, npts, nvar)
    assert chunking.task_bytes(p, npts, nvar) <= budget
    assert chunking.task_bytes(p + 1, npts, nvar) > budget


def share(limit):
    """A task budget of 1/8 of ``limit`` (the cap when None): tiles of many sizes."""
    return chunking.task_budget(limit, resident=0)


SHARE_250 = share(250 * MiB)  # 31.25 MiB


@pytest.mark.parametrize("limit", [40 * MiB, 250 * MiB, 2 * 2**30, None])
@pytest.mark.parametrize("native", [None, 64, 100, 97])
def test_default_chunks_bounded_by_the_worker_limit(limit, native):
    chunks = None if native is None else (native, native, 128)
    data = cube((1000, 1000, 128), chunks)
    budget = share(limit)
    cy, cx = chunking.choose_chunks(data, "e", 5, budget=budget)
    decode = 0 if native is None else min(native * native * 128 * 4, budget // 2)
    assert chunking.task_bytes(cy * cx, 128, 5, decode) <= budget
    assert chunking.task_bytes(cy * cx, 128, 5) <= (limit or 2**40) / 8
    assert cy * cx >= chunking.pixel_budget(budget, 128, 5, decode) / 4  # not wastefully small


@pytest.mark.parametrize("limit", [40 * MiB, 128 * MiB, 250 * MiB, 2 * 2**30])
@pytest.mark.parametrize("native", [8, 50, 64, 100, 128, 256])
def test_tiles_divide_or_multiply_native_chunks(limit, native):
    data = cube((1024, 1000, 128), (native, native, 128))
    for c, size in zip(chunking.choose_chunks(data, "e", 5, budget=share(limit)),
                       (1024, 1000), strict=True):
        aligned = c == size or native % c == 0 or c % native == 0
        # the documented exception: no divisor of the native chunk within [c / 2, c]
        no_divisor = c < native and all(native % d for d in range(-(-c // 2), c + 1))
        assert aligned or no_divisor, (c, native)


def test_tile_smaller_than_native_chunks_is_a_divisor():
    """The old rule gave 77 x 77 for 100 x 100 input chunks (each read by 4 tasks).

    Budgets: 1168 pixels in 31.25 MiB, 10040 in 128 MiB (128 points, blocks of 2048 curves).
    """
    data = cube((1000, 1000, 128), (100, 100, 128))
    assert chunking.choose_chunks(data, "e", 5, budget=250 * MiB // 8) == (25, 25)
    assert chunking.choose_chunks(data, "e", 5) == (50, 100)


def test_multiples_of_small_native_chunks():
    data = cube((1000, 1000, 128), (16, 16, 128))
    cy, cx = chunking.choose_chunks(data, "e", 5)
    assert cy % 16 == 0 and cx % 16 == 0 and cy * cx >= 48 * 48


def test_prime_native_chunk_keeps_the_wanted_size():
    """A divisor under half the wanted size (1 for 97) would make needlessly many tasks."""
    data = cube((1000, 1000, 128), (97, 97, 128))
    cy, cx = chunking.choose_chunks(data, "e", 5, budget=SHARE_250)
    assert cy > 1 and cx > 1


def test_numpy_input_has_no_alignment():
    cy, cx = chunking.choose_chunks(cube((300, 300, 128)), "e", 5,
                                    budget=SHARE_250)
    assert abs(cy - cx) <= 1 and chunking.task_bytes(cy * cx, 128, 5) <= 32 * MiB


def test_a_job_is_cut_into_at_least_16_tasks_of_at_least_1024_pixels():
    """Balance (rule 3): the budget alone would give 2 x 2 tiles of 64 x 64."""
    assert chunking.choose_chunks(cube((128, 128, 128)), "e", 5) == (32, 32)
    assert chunking.choose_chunks(cube((64, 64, 128)), "e", 5) == (32, 32)  # 4 x 1024
    assert chunking.choose_chunks(cube((40, 20, 128)), "e", 5) == (40, 20)  # 800 < 1024: one
    assert chunking.choose_chunks(cube((1024, 64, 128)), "e", 5, {"x": -1}) == (64, 64)


def test_small_cube_is_one_chunk():
    assert chunking.choose_chunks(cube((12, 10, 48), (4, 5, 48)), "e", 5) == (12, 10)


def test_given_chunks_are_respected_and_the_rest_fills_the_budget():
    data = cube((1000, 1000, 128), (100, 100, 128))
    assert chunking.choose_chunks(data, "e", 5, {"y": -1, "x": 7}) == (1000, 7)
    assert chunking.choose_chunks(data, "e", 5, {"y": 33, "x": 3000}) == (33, 1000)
    cy, cx = chunking.choose_chunks(data, "e", 5, {"y": 10}, budget=SHARE_250)
    assert cy == 10 and 100 % cx == 0 or cx % 100 == 0
    assert chunking.task_bytes(cy * cx, 128, 5) <= 32 * MiB


def test_sigma_counts_a_second_decode_buffer():
    data = cube((1000, 1000, 128), (100, 100, 128))
    one = chunking.choose_chunks(data, "e", 5, budget=20 * MiB)
    two = chunking.choose_chunks(data, "e", 5, budget=20 * MiB, n_inputs=2)
    assert np.prod(two) < np.prod(one)


def test_three_pixel_dims():
    data = xr.DataArray(dsa.zeros((40, 300, 300, 64), chunks=(10, 60, 60, 64), dtype="f4"),
                        dims=("t", "y", "x", "e"))
    chunks = chunking.choose_chunks(data, "e", 3, budget=8 * MiB)
    assert chunking.task_bytes(int(np.prod(chunks)), 64, 3) <= 8 * MiB
    for c, nat in zip(chunks, (10, 60, 60), strict=True):
        assert nat % c == 0 or c % nat == 0


def test_plan_uses_the_configured_worker_limit(tmp_path):
    path = tmp_path / "cube.zarr"
    write_cube(make_cube(256, 256, 128, seed=1), path, {"y": 64, "x": 64})
    roomy = pipeline.plan(make_job(path, tmp_path / "a.zarr", cluster__memory_limit="4GiB"))
    small = pipeline.plan(make_job(path, tmp_path / "b.zarr", cluster__memory_limit="352MiB"))
    # 128 MiB would hold 9167 pixels; a task gets at most 1/16 of the 65536: 64 x 64
    assert roomy.grid.chunks == (64, 64)
    # 352 MiB: 75% less the worker's 240 MiB leaves 24 MiB; divisors of 64 within it
    assert small.grid.chunks == (16, 32)
    assert chunking.task_bytes(16 * 32, 128, 5, 4 * MiB) <= 24 * MiB
