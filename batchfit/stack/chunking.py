"""The chunk rule: how many pixels one task fits, and the memory model behind it.

Pure functions of the input's sizes, its native chunks and a worker's memory
limit; :func:`batchfit.pipeline.plan` calls :func:`choose_chunks`.

Rule (when ``input.chunks`` is not given)
-----------------------------------------
1. Budget per task: ``min(128 MiB, limit / (8 * threads), (0.75 * limit -
   resident) / threads)`` (:func:`task_budget`, :data:`TARGET_CHUNK_BYTES`,
   :data:`WORKER_FRACTION`, :data:`TARGET_PEAK`). The limit comes from the
   cluster config (local ``memory_limit`` or dask's ``'auto'`` share, job-queue
   ``memory`` per worker process) or, for a running scheduler, from its workers
   (:func:`batchfit.stack.cluster.worker_budget`); the cap when unknown.
   ``resident`` is what a worker keeps between tasks, :data:`WORKER_RESIDENT`
   = 240 MiB: 161 MiB for the started process (numpy, scipy, xarray, zarr,
   dask, distributed imported; :data:`FRESH_WORKER`), ~30 MiB more once tasks
   ran (the opened input, codec and allocator caches), and margin. For a
   running scheduler its workers' RSS is measured and used when larger
   (:func:`resident_estimate`). Its ``threads`` tasks run at once on top of
   that: the third term keeps the worker's peak at or under 75% of its limit;
   the 1/8 share binds above ~384 MiB and leaves room for allocator slack.
   A limit where the third term is under :data:`MIN_TASK_BYTES` is refused
   before anything is written, naming the smallest limit that works
   (:func:`smallest_limit`; 331 MiB for one thread).
   ``scripts/bench_memory.py`` checks it end to end: a job 3x the workers'
   total limit, each worker's peak RSS (the kernel's VmHWM) against 75%.
2. A task of ``p`` pixels needs ``p * bytes_per_pixel + min(p, B) *
   block_bytes + decode`` bytes (:func:`task_bytes`), measured with
   tracemalloc and RSS around :func:`batchfit.stack.task.fit_chunk`
   (scripts/bench_submit.py ``--measure``): ``bytes_per_pixel = 8 * (7 *
   npts + nvar * (nvar + 56))`` (the float32 read and its float64 copy,
   weights, the engine's prepared data, residuals, result and packed arrays,
   the written Dataset); the engine's blocks of ``B`` curves
   (:func:`batchfit.batch.fit.block_size`: 2**18 data points, 64 to 4096
   curves) add ``block_bytes = 24 * npts * (nvar + 1)`` per curve (Jacobian,
   model partials, trial residuals); ``decode`` is one native input chunk of
   the data (and sigma) that zarr decodes whole when the tile is smaller than
   it (counted up to half the budget: a bigger native chunk must be decoded
   anyway). The per-pixel term was fitted with blocks of 512 curves; with
   blocks by points it overestimates: ``scripts/bench_submit.py --parts
   measure`` (128 points, tiles of 32^2 to 128^2) gives estimates 2.1-2.9x
   the measured peak of one task.
3. Balance: a task gets at most 1/16 of the job's pixels (:data:`MIN_TASKS`),
   but never fewer than 1024 pixels for that reason (:data:`MIN_TASK_PIXELS`),
   so that the workers finish together and a small job is not cut into tasks
   whose fixed costs outweigh their fits.
4. The largest pixel count within budget and balance becomes a square-ish tile over the
   pixel dims, aligned to the input's native chunks: a tile at least as big
   as a native chunk is rounded down to a multiple of it; a smaller one to
   the largest divisor of it (77 -> 50 for 100-pixel chunks), unless that
   divisor is under half the size wanted (a prime-sized chunk), where the
   unaligned size is kept. Each input chunk is then read by one task, or
   split exactly between a few.
A task never reads more than its region: :func:`batchfit.stack.task.fit_chunk`
opens the input lazily and loads ``isel(region)`` only, i.e. the native chunks
it overlaps.
"""

from __future__ import annotations

import math

import xarray as xr

from batchfit.batch.fit import block_size
from batchfit.errors import ClusterError, InputError

TARGET_CHUNK_BYTES = 128 * 2**20
"""Cap on a task's estimated working set (bytes)."""
MIN_TASKS = 16
"""A job is cut into at least this many tasks (so that workers finish together) ..."""
MIN_TASK_PIXELS = 1024
"""... unless that leaves a task fewer pixels than this: a task's fixed costs (reading,
writing some 50 result arrays, its marker) and the engine's per-step overhead over a
small pool of curves cost about a third of a 256-curve task's fit
(``scripts/bench_submit_tail.py``)."""
WORKER_FRACTION = 8
"""A worker's concurrent tasks use at most 1 / WORKER_FRACTION of its memory limit."""
TARGET_PEAK = 0.75
"""A worker's peak resident memory should stay at or under this fraction of its limit."""
WORKER_RESIDENT = 240 * 2**20
"""Resident bytes of a worker besides its tasks: 161 MiB after the imports, 180-200 MiB
measured between tasks of a long job (scripts/bench_memory.py), plus margin."""
FRESH_WORKER = 161 * 2**20
"""Resident bytes of a started worker before its first task (the imports)."""
MIN_TASK_BYTES = 8 * 2**20
"""The smallest budget a task gets (a few hundred curves of 128 points); a worker
limit without room for it within :data:`TARGET_PEAK` is an error."""


def resident_estimate(measured: int | None = None, warmed: bool = False) -> int:
    """What a worker keeps resident besides its tasks, from a measurement if there is one.

    Parameters
    ----------
    measured : int, optional
        A worker's resident bytes now (None: not measured, :data:`WORKER_RESIDENT`).
    warmed : bool
        Whether that worker has run batchfit tasks already. A fresh one grows
        by what tasks leave resident (``WORKER_RESIDENT - FRESH_WORKER``).

    Returns
    -------
    int
        The larger of :data:`WORKER_RESIDENT` and the measured value (plus growth when fresh).
    """
    if measured is None:
        return WORKER_RESIDENT
    grow = 0 if warmed else WORKER_RESIDENT - FRESH_WORKER
    return max(WORKER_RESIDENT, int(measured) + grow)


def smallest_limit(threads: int = 1, resident: int = WORKER_RESIDENT) -> int:
    """The smallest worker limit (bytes, rounded up to MiB) with room for :data:`MIN_TASK_BYTES`."""
    need = (resident + max(threads, 1) * MIN_TASK_BYTES) / TARGET_PEAK
    return -(-math.ceil(need) // 2**20) * 2**20


def task_budget(memory_limit: int | None, threads: int = 1,
                resident: int = WORKER_RESIDENT) -> int:
    """Bytes one task may use (rule 1 of the module docstring).

    Parameters
    ----------
    memory_limit : int or None
        A worker's memory limit in bytes; None when unknown (the cap is used).
    threads : int
        Tasks a worker runs at once.
    resident : int
        What a worker keeps resident besides its tasks (:func:`resident_estimate`).

    Returns
    -------
    int
        ``min(TARGET_CHUNK_BYTES, limit / (WORKER_FRACTION * threads),
        (TARGET_PEAK * limit - resident) / threads)``.

    Raises
    ------
    ClusterError
        The last term is under :data:`MIN_TASK_BYTES`: no task fits within
        75% of the limit. The message names the limit and the smallest that works.
    """
    if not memory_limit:
        return TARGET_CHUNK_BYTES
    limit, threads = int(memory_limit), max(threads, 1)
    headroom = (int(TARGET_PEAK * limit) - resident) // threads
    if headroom < MIN_TASK_BYTES:
        raise ClusterError(
            f"worker memory limit {limit / 2**20:.0f} MiB is too small: a worker keeps about "
            f"{resident / 2**20:.0f} MiB resident between tasks and its {threads} task(s) at "
            f"once need at least {MIN_TASK_BYTES / 2**20:.0f} MiB each, within "
            f"{TARGET_PEAK:.0%} of the limit; the smallest limit that works is "
            f"{smallest_limit(threads, resident) // 2**20} MiB (raise cluster.memory_limit, "
            "or cluster.memory per job for job queues, or use fewer threads_per_worker)")
    return min(TARGET_CHUNK_BYTES, limit // (WORKER_FRACTION * threads), headroom)


def bytes_per_pixel(npts: int, nvar: int) -> int:
    """Measured working set of a task per pixel, beyond the engine's blocks."""
    return 8 * (7 * npts + nvar * (nvar + 56))


def block_bytes(npts: int, nvar: int) -> int:
    """Working set per curve of one engine block (Jacobian, partials, trial residuals)."""
    return 24 * npts * (nvar + 1)


def task_bytes(pixels: int, npts: int, nvar: int, decode: int = 0) -> int:
    """Estimated peak bytes of a task of ``pixels`` pixels (``decode``: native chunk bytes)."""
    return (pixels * bytes_per_pixel(npts, nvar)
            + min(pixels, block_size(npts)) * block_bytes(npts, nvar) + decode)


def pixel_budget(budget: int, npts: int, nvar: int, decode: int = 0) -> int:
    """The most pixels whose :func:`task_bytes` stay within ``budget`` (at least 1)."""
    per, blk, block = bytes_per_pixel(npts, nvar), block_bytes(npts, nvar), block_size(npts)
    room = budget - decode
    if room >= block * (per + blk):
        return (room - block * blk) // per
    return max(1, room // (per + blk))


def choose_chunks(data: xr.DataArray, fit_dim: str, nvar: int, given: dict | None = None,
                  *, budget: int = TARGET_CHUNK_BYTES, n_inputs: int = 1) -> tuple[int, ...]:
    """Pixel chunk sizes: ``given`` (``-1`` = whole dim) or the module's default rule.

    Parameters
    ----------
    data : xr.DataArray
        The input variable (its native chunks come from dask or the encoding).
    fit_dim : str
        The dim each curve runs along.
    nvar : int
        Number of varied parameters.
    given : dict, optional
        ``input.chunks``; dims it names are taken as given.
    budget : int
        Bytes one task may use (:func:`task_budget`).
    n_inputs : int
        Variables read per pixel with the data's chunking (2 with sigma).
    """
    dims = [str(d) for d in data.dims if d != fit_dim]
    sizes = [data.sizes[d] for d in dims]
    given = dict(given or {})
    given.pop(fit_dim, None)
    unknown = set(given) - set(dims)
    if unknown:
        raise InputError(f"input.chunks: {sorted(unknown)} are not pixel dims of the data; "
                         f"they are {dims}")
    native = _native_chunks(data, dims)
    fixed = {i: (s if given[d] == -1 else min(given[d], s))
             for i, (d, s) in enumerate(zip(dims, sizes, strict=True)) if d in given}
    npts = data.sizes[fit_dim]
    pixels = pixel_budget(budget, npts, nvar)
    if any(n is not None for n in native):  # room for zarr's decoded native chunks
        decode = n_inputs * data.dtype.itemsize * npts * math.prod(
            n or s for n, s in zip(native, sizes, strict=True))
        decode = min(decode, budget // 2)  # a bigger native chunk is unavoidable anyway
        small = math.prod(fixed.get(i, s) for i, s in enumerate(sizes)) > pixels
        pixels = pixel_budget(budget, npts, nvar, decode) if small else pixels
    pixels = min(pixels, max(MIN_TASK_PIXELS, -(-math.prod(sizes) // MIN_TASKS)))
    for c in fixed.values():
        pixels = max(1, pixels // c)
    free = [i for i in range(len(dims)) if i not in fixed]
    tile = _square_tile([sizes[i] for i in free], pixels, [native[i] for i in free])
    fixed.update(zip(free, tile, strict=True))
    return tuple(max(1, fixed[i]) for i in range(len(dims)))


def _square_tile(sizes: list[int], budget: int,
                 native: list[int | None] | None = None) -> list[int]:
    """Chunk sizes with product <= budget, as equal as the dim sizes allow.

    With ``native`` chunk sizes, each is aligned by :func:`_align`; the budget
    a dim leaves unused goes to the dims after it.
    """
    native = native or [None] * len(sizes)
    chunks = [1] * len(sizes)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])  # small dims take all first
    for k, i in enumerate(order):
        share = int(budget ** (1.0 / (len(sizes) - k)) + 1e-9)
        chunks[i] = _align(max(1, min(sizes[i], share)), native[i], sizes[i])
        budget = max(1, budget // chunks[i])
    return chunks


def _align(c: int, native: int | None, size: int) -> int:
    """``c`` made a multiple (``c >= native``) or a divisor (``c < native``) of ``native``."""
    if native is None or native <= 0 or c >= size:
        return c
    if c >= native:
        return c - c % native
    divisor = max(d for d in range(1, c + 1) if native % d == 0)
    return divisor if 2 * divisor >= c else c


def _native_chunks(data: xr.DataArray, dims: list[str]) -> list[int | None]:
    enc = data.encoding.get("preferred_chunks") or {}
    if data.chunks is not None:
        return [enc.get(d, data.chunksizes[d][0]) for d in dims]
    return [enc.get(d) for d in dims]

