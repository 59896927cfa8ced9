"""Run a fit job: open -> plan -> fit chunks on Dask workers -> region writes -> summary.

The client only plans and schedules. Each task gets a small JSON-able spec
(template JSON, model reference, input path and variable names, its region,
output path); the worker opens the input lazily, reads only its region, fits
it with :func:`batchfit.stack.fit`, writes the region into the store and
marks the chunk done. Only a small count dict comes back, so inputs larger
than the client's or any worker's memory stream through.

Chunking rule (when ``input.chunks`` is not given)
--------------------------------------------------
1. Budget per task: ``min(64 MiB, worker memory limit / (8 * threads per
   worker))`` (:data:`TARGET_CHUNK_BYTES`, :data:`WORKER_FRACTION`). The limit
   comes from the cluster config (local ``memory_limit`` or dask's ``'auto'``
   share, job-queue ``memory`` per worker process) or, for a running
   scheduler, from its workers (:func:`batchfit.stack.cluster.worker_memory`);
   64 MiB when unknown. Tasks of one worker run ``threads`` at a time, so
   together they use at most 1/8 of its limit; the rest is the worker
   process itself (~150-200 MiB of imported libraries), allocator slack and
   dask's own buffers.
2. A task of ``p`` pixels needs ``p * bytes_per_pixel + min(p, 512) *
   block_bytes + decode`` bytes (:func:`task_bytes`), measured with
   tracemalloc and RSS around :func:`fit_chunk` (scripts/bench_submit.py
   ``--measure``): ``bytes_per_pixel = 8 * (7 * npts + nvar * (nvar + 56))``
   (the float32 read and its float64 copy, weights, the engine's prepared
   data, residuals, result and packed arrays, the written Dataset); the
   engine's blocks of 512 curves add ``block_bytes = 24 * npts * (nvar + 1)``
   per curve (Jacobian, model partials, trial residuals); ``decode`` is one
   native input chunk of the data (and sigma) that zarr decodes whole when the
   tile is smaller than it (counted up to half the budget: a bigger native
   chunk must be decoded anyway). The estimate is 0-35% above the measured
   peaks.
3. The largest pixel count within budget becomes a square-ish tile over the
   pixel dims, aligned to the input's native chunks: a tile at least as big
   as a native chunk is rounded down to a multiple of it; a smaller one to
   the largest divisor of it (77 -> 50 for 100-pixel chunks), unless that
   divisor is under half the size wanted (a prime-sized chunk), where the
   unaligned size is kept. Each input chunk is then read by one task, or
   split exactly between a few.
A task never reads more than its region: :func:`fit_chunk` opens the input
lazily and loads ``isel(region)`` only, i.e. the native chunks it overlaps.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from batchfit.errors import InputError, StoreError
from batchfit.stack import refit, store
from batchfit.stack.apply import fit
from batchfit.stack.cluster import release_memory, worker_memory
from batchfit.stack.layout import ResultLayout
from batchfit.stack.store import ChunkGrid
from batchfit.status import Status

TARGET_CHUNK_BYTES = 64 * 2**20
"""Cap on a task's estimated working set (bytes)."""
WORKER_FRACTION = 8
"""A worker's concurrent tasks use at most 1 / WORKER_FRACTION of its memory limit."""
ENGINE_BLOCK = 512
"""Curves per block of the LM engine (``batchfit.batch.lm.BLOCK_SIZE``)."""


@dataclass(frozen=True)
class JobSummary:
    """What a finished :func:`run` did.

    ``pixels``, ``n_success`` and ``status_counts`` describe the whole store;
    ``fitted``, ``chunks_computed`` and ``fits_per_s`` this run only
    (``fits_per_s`` = pixels of the computed chunks / ``elapsed``, the run's
    wall time including cluster start-up). ``refit_improved`` is how many failed
    pixels of the store the neighbour refit pass turned into successes
    (:mod:`batchfit.stack.refit`); ``refit_chunks_computed`` its tasks run this run.
    """

    pixels: int
    n_success: int
    status_counts: dict
    fits_per_s: float
    elapsed: float
    output: str
    chunks_computed: int
    chunks_skipped: int
    fitted: int = 0
    dashboard: str | None = field(default=None, compare=False)
    refit_improved: int = 0
    refit_chunks_computed: int = 0


@dataclass(frozen=True)
class Plan:
    """Everything the client decides before any fit runs."""

    config: object
    data: xr.DataArray
    model: object
    params: object
    layout: ResultLayout
    grid: ChunkGrid


# ------------------------------------------------------------------ input


def open_input(path) -> xr.Dataset:
    """Open a zarr store or netCDF file lazily (dask-backed)."""
    path = Path(path)
    try:
        if not path.is_dir():
            return xr.open_dataset(str(path), chunks={})
        try:  # consolidated metadata is one read; fall back quietly when absent
            return xr.open_zarr(str(path), consolidated=True)
        except (KeyError, ValueError, FileNotFoundError):
            return xr.open_zarr(str(path), consolidated=False)
    except Exception as exc:
        raise InputError(f"cannot open input {str(path)!r}: {type(exc).__name__}: {exc}") from exc


def _variable(ds: xr.Dataset, name: str | None, key: str) -> xr.DataArray | None:
    if name is None:
        return None
    if name not in ds.variables:
        raise InputError(f"{key}: variable {name!r} is not in the input; available: "
                         f"{', '.join(sorted(map(str, ds.data_vars))) or 'none'}")
    return ds[name]


def plan(config, workers: int | None = None, scheduler: str | None = None) -> Plan:
    """Open and check the input, build model and template, choose the chunks.

    ``workers`` and ``scheduler`` are :func:`run`'s overrides: they decide the
    worker memory limit that bounds the default chunks.

    Raises
    ------
    InputError
        A missing variable or dim (naming the available ones), a sigma or mask
        that does not fit the data, or a curve too short for the parameters.
    """
    inp = config.input
    ds = open_input(inp.path)
    data = _variable(ds, inp.variable, "input.variable")
    if inp.fit_dim not in data.dims:
        raise InputError(f"input.fit_dim: {inp.fit_dim!r} is not a dim of {inp.variable!r}; "
                         f"its dims are {list(data.dims)}")
    _check_aux(ds, data, inp)
    model, params = config.build_model(), config.build_params()
    layout = ResultLayout.from_params(params, config.output.covariance)
    dims = tuple(d for d in data.dims if d != inp.fit_dim)
    budget = task_budget(*worker_memory(config.cluster, workers, scheduler))
    chunks = choose_chunks(data, inp.fit_dim, len(layout.var_names), inp.chunks,
                           budget=budget, n_inputs=2 if inp.sigma else 1)
    grid = ChunkGrid(dims, tuple(data.sizes[d] for d in dims), chunks)
    return Plan(config, data, model, params, layout, grid)


def _check_aux(ds, data, inp) -> None:
    sigma = _variable(ds, inp.sigma, "input.sigma")
    if sigma is not None and not set(sigma.dims) <= set(data.dims):
        raise InputError(f"input.sigma: dims {list(sigma.dims)} of {inp.sigma!r} are not "
                         f"among the data's dims {list(data.dims)}")
    mask = _variable(ds, inp.mask, "input.mask")
    if mask is not None and (inp.fit_dim in mask.dims or not set(mask.dims) <= set(data.dims)):
        raise InputError(f"input.mask: {inp.mask!r} must be over pixel dims of the data "
                         f"(not {inp.fit_dim!r}); its dims are {list(mask.dims)}")


def task_budget(memory_limit: int | None, threads: int = 1) -> int:
    """Bytes one task may use: ``min(TARGET_CHUNK_BYTES, limit / (WORKER_FRACTION * threads))``."""
    if not memory_limit:
        return TARGET_CHUNK_BYTES
    return max(1, min(TARGET_CHUNK_BYTES, int(memory_limit) // (WORKER_FRACTION * max(threads, 1))))


def bytes_per_pixel(npts: int, nvar: int) -> int:
    """Measured working set of :func:`fit_chunk` per pixel, beyond the engine's blocks."""
    return 8 * (7 * npts + nvar * (nvar + 56))


def block_bytes(npts: int, nvar: int) -> int:
    """Working set per curve of one engine block (Jacobian, partials, trial residuals)."""
    return 24 * npts * (nvar + 1)


def task_bytes(pixels: int, npts: int, nvar: int, decode: int = 0) -> int:
    """Estimated peak bytes of a task of ``pixels`` pixels (``decode``: native chunk bytes)."""
    return (pixels * bytes_per_pixel(npts, nvar)
            + min(pixels, ENGINE_BLOCK) * block_bytes(npts, nvar) + decode)


def pixel_budget(budget: int, npts: int, nvar: int, decode: int = 0) -> int:
    """The most pixels whose :func:`task_bytes` stay within ``budget`` (at least 1)."""
    per, blk = bytes_per_pixel(npts, nvar), block_bytes(npts, nvar)
    room = budget - decode
    if room >= ENGINE_BLOCK * (per + blk):
        return (room - ENGINE_BLOCK * blk) // per
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
    dims = [d for d in data.dims if d != fit_dim]
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


# ------------------------------------------------------------------ the store


def _store_attrs(config, p: Plan) -> dict:
    import dask
    import scipy
    import zarr

    import batchfit

    versions = {"batchfit": batchfit.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__, "dask": dask.__version__,
                "xarray": xr.__version__, "zarr": zarr.__version__}
    return {
        "batchfit_config": json.dumps(config.to_dict(), sort_keys=True),
        "batchfit_fingerprint": config.fingerprint(),
        "template": p.params.dumps(),
        "model": json.dumps(p.model.reference, sort_keys=True),
        "input_path": str(config.input.path),
        "input_variable": config.input.variable,
        "fit_dim": config.input.fit_dim,
        "engine": config.fit.engine,
        "versions": json.dumps(versions, sort_keys=True),
    }


def _pixel_coords(p: Plan) -> xr.Dataset:
    fit_dim = p.config.input.fit_dim
    coords = {k: v for k, v in p.data.coords.items() if fit_dim not in v.dims}
    return xr.Dataset(coords=coords).compute()


def prepare_store(config, p: Plan, overwrite: bool) -> tuple[str, ChunkGrid]:
    """Create or reuse the output store; returns (state, the store's chunk grid)."""
    create = partial(store.create, layout=p.layout, coords=_pixel_coords(p), grid=p.grid,
                     attrs=_store_attrs(config, p))
    state = store.prepare(config.output.path, config.fingerprint(), overwrite, create)
    grid = store.read_grid(config.output.path)
    if (grid.dims, grid.sizes) != (p.grid.dims, p.grid.sizes):
        raise StoreError(f"output {str(config.output.path)!r} has pixel dims "
                         f"{dict(zip(grid.dims, grid.sizes, strict=True))}, the input "
                         f"{dict(zip(p.grid.dims, p.grid.sizes, strict=True))}; use --overwrite")
    return state, grid


# ------------------------------------------------------------------ the task


def task_spec(config, p: Plan, grid: ChunkGrid, index: tuple[int, ...]) -> dict:
    """The JSON-able description of one chunk's work (all a worker needs)."""
    inp = config.input
    region = grid.region(index)
    return {
        "index": list(index),
        "region": {d: [s.start, s.stop] for d, s in region.items()},
        "input": {"path": str(inp.path), "variable": inp.variable, "fit_dim": inp.fit_dim,
                  "sigma": inp.sigma, "mask": inp.mask},
        "init": str(config.init) if config.init else None,
        "model": p.model.reference,
        "template": p.params.dumps(),
        "python_path": [str(d) for d in config.model.python_path],
        "fit": {"engine": config.fit.engine, "max_nfev": config.fit.max_nfev,
                "guess": bool(config.guess), "covar": bool(config.output.covariance),
                "cost": config.fit.cost, "scale_covar": bool(config.fit.scale_covar)},
        "output": str(config.output.path),
    }


def fit_chunk(task: dict) -> dict:
    """Run one chunk on a worker: read its region, fit, write, mark done.

    Returns ``{"index", "pixels", "fitted", "counts": {status code: n}}``.
    """
    from batchfit.config import extend_sys_path
    from batchfit.core import Parameters
    from batchfit.models import from_reference

    extend_sys_path(task["python_path"])
    region = {d: slice(a, b) for d, (a, b) in task["region"].items()}
    inp = task["input"]
    ds = open_input(inp["path"])
    data = _region(ds[inp["variable"]], region)
    sigma = _region(ds[inp["sigma"]], region) if inp["sigma"] else None
    mask = _region(ds[inp["mask"]], region) if inp["mask"] else None
    params = Parameters().loads(task["template"])
    init = _init_region(task["init"], params, region)
    opts = task["fit"]
    res = fit(data, from_reference(task["model"]), params, inp["fit_dim"], sigma=sigma,
              mask=mask, engine=opts["engine"], guess=opts["guess"], init=init,
              max_nfev=opts["max_nfev"], covar=opts["covar"], cost=opts["cost"],
              scale_covar=opts["scale_covar"])
    store.write_region(task["output"], res, region)
    codes = np.bincount(res["status"].values.ravel().astype(np.int64), minlength=len(Status))
    summary = {"index": task["index"], "pixels": int(res["status"].size),
               "fitted": int(res["status"].size - codes[Status.MASKED]),
               "counts": {str(int(c)): int(n) for c, n in enumerate(codes) if n}}
    store.mark_done(task["output"], tuple(task["index"]), summary)
    del res, data, sigma, mask
    release_memory()
    return summary


def _region(da: xr.DataArray, region: dict) -> xr.DataArray:
    """Load only ``region`` of a lazy variable into memory."""
    return da.isel({d: s for d, s in region.items() if d in da.dims}).load()


def _init_region(path, params, region) -> dict | None:
    if not path:
        return None
    earlier = store.open_results(path)
    names = [n for n in params if n in earlier.data_vars]
    return {n: _region(earlier[n], region) for n in names}


# ------------------------------------------------------------------ run


def run(config, *, overwrite: bool = False, workers: int | None = None,
        scheduler: str | None = None, quiet: bool = False) -> JobSummary:
    """Run a job to completion; a rerun computes only the chunks not yet done.

    Parameters
    ----------
    config : JobConfig
        The validated job config.
    overwrite : bool
        Replace an output store made by a different config.
    workers : int, optional
        Number of workers (local) or jobs (job queues); overrides the config.
    scheduler : str, optional
        Address of a running Dask scheduler; overrides ``cluster``.
    quiet : bool
        No dashboard link, no progress bar.

    Raises
    ------
    InputError, ConfigError, StoreError
        Bad input or a store made by another config (nothing is written then).
    """
    t0 = time.perf_counter()
    p = plan(config, workers, scheduler)
    _, grid = prepare_store(config, p, overwrite)
    done = store.done_keys(config.output.path)
    todo = [i for i in grid.indices() if ChunkGrid.key(i) not in done]
    tasks = [task_spec(config, p, grid, i) for i in todo]
    after = refit.hook(config, p.layout, grid, partial(task_spec, config, p, grid), quiet)
    results, dashboard, again = _execute(config, tasks, workers, scheduler, quiet, after)
    elapsed = time.perf_counter() - t0
    fitted = sum(r["pixels"] for r in results)
    return JobSummary(**_store_counts(config.output.path), fits_per_s=fitted / elapsed,
                      elapsed=elapsed, output=str(config.output.path),
                      chunks_computed=len(tasks), chunks_skipped=len(grid) - len(tasks),
                      fitted=fitted, dashboard=dashboard,
                      refit_improved=refit.counts(config.output.path)["improved"],
                      refit_chunks_computed=(again or {}).get("chunks_computed", 0))


def _execute(config, tasks: list[dict], workers, scheduler, quiet,
             after=None) -> tuple[list, str | None, object]:
    """Run the tasks on a cluster, then ``after(client)`` if given.

    Returns the tasks' small result dicts, the dashboard link and what ``after``
    returned (None when not called).
    """
    if not tasks and after is None:
        return [], None, None
    from distributed import as_completed

    from batchfit.stack.cluster import make_client

    with make_client(config.cluster, workers=workers, scheduler=scheduler) as client:
        link = client.dashboard_link
        if not quiet:
            print(f"batchfit: dashboard {link}", file=sys.stderr)
        keys = [f"batchfit-chunk-{ChunkGrid.key(tuple(t['index']))}" for t in tasks]
        futures = client.map(fit_chunk, tasks, key=keys, retries=1)
        bar = _Progress(len(tasks), enabled=not quiet and sys.stderr.isatty())
        results = []
        for fut in as_completed(futures):
            results.append(fut.result())
            bar.update(len(results))
        bar.close()
        extra = after(client) if after is not None else None
    return results, link, extra


class _Progress:
    """A one-line progress bar on stderr (TTY only)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.t0 = total, enabled, time.perf_counter()

    def update(self, n: int) -> None:
        if not self.enabled:
            return
        width = 30
        fill = int(width * n / self.total)
        rate = n / max(time.perf_counter() - self.t0, 1e-9)
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {n}/{self.total} "
                         f"chunks ({rate:.1f}/s)")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _store_counts(path) -> dict:
    """pixels, n_success and status counts (name -> n) over a whole store."""
    import zarr

    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    status = np.asarray(group["status"][...]).ravel().astype(np.int64)
    codes = np.bincount(status, minlength=len(Status))
    counts = {Status(c).name.lower(): int(codes[c]) for c in range(len(Status))}
    n_success = int(np.count_nonzero(group["success"][...]))
    return {"pixels": int(status.size), "n_success": n_success, "status_counts": counts}


# ------------------------------------------------------------------ validate / status


def validate(config, n_samples: int = 4) -> str:
    """Check everything :func:`run` would and fit a few sample pixels; writes nothing.

    Returns
    -------
    str
        A short report: input, model, chunks, output state and the sample fits.

    Raises
    ------
    InputError, StoreError, ConfigError
        As :func:`run` would.
    """
    p = plan(config)
    out = config.output.path
    store.check_reusable(out, config.fingerprint(), overwrite=False)
    state = "resume (same config)" if store.is_complete(out) else "create"
    lines = [
        f"input: {config.input.path} variable {config.input.variable!r} "
        f"{dict(p.data.sizes)} {p.data.dtype}, fit dim {config.input.fit_dim!r}",
        f"model: {json.dumps(p.model.reference)}; varied: {', '.join(p.layout.var_names)}",
        f"chunks: {dict(zip(p.grid.dims, p.grid.chunks, strict=True))} -> {len(p.grid)} tasks",
        f"output: {out} ({state})",
    ]
    resolved = yaml.safe_dump(_without_unset(config.to_dict()), sort_keys=False,
                              default_flow_style=None)
    lines += ["resolved config:", *("  " + line for line in resolved.splitlines())]
    return "\n".join(lines + _sample_fits(config, p, n_samples))


def _sample_fits(config, p: Plan, n_samples: int) -> list[str]:
    """Fit ``n_samples`` pixels spread over the map, in this process."""
    ds = open_input(config.input.path)
    candidates = np.arange(math.prod(p.grid.sizes))
    if config.input.mask:  # sample pixels the job will fit, not masked ones
        keep = ds[config.input.mask].transpose(*p.grid.dims).values.astype(bool).ravel()
        candidates = candidates[keep] if keep.any() else candidates
    pick = np.linspace(0, candidates.size - 1, max(1, min(n_samples, candidates.size)))
    flat = np.unique(candidates[pick.astype(int)])
    idx = np.unravel_index(flat, p.grid.sizes)
    points = {d: xr.DataArray(i, dims="sample") for d, i in zip(p.grid.dims, idx, strict=True)}
    data = ds[config.input.variable].isel(points).load()
    sigma = ds[config.input.sigma].isel(
        {d: v for d, v in points.items() if d in ds[config.input.sigma].dims}
    ).load() if config.input.sigma else None
    res = fit(data, p.model, p.params, config.input.fit_dim, sigma=sigma,
              engine=config.fit.engine, guess=config.guess, max_nfev=config.fit.max_nfev,
              cost=config.fit.cost, scale_covar=config.fit.scale_covar)
    lines = [f"sample fits ({len(flat)} pixels):"]
    for k in range(len(flat)):
        where = ", ".join(f"{d}={int(i[k])}" for d, i in zip(p.grid.dims, idx, strict=True))
        vals = ", ".join(f"{n}={res[n].values[k]:.4g}" for n in p.layout.names)
        code = Status(int(res["status"].values[k])).name.lower()
        lines.append(f"  [{where}] {code}, redchi={res['redchi'].values[k]:.3g}: {vals}")
    return lines


def status(store_path) -> str:
    """Chunks done, success rate and status counts of a result store."""
    path = Path(store_path)
    if store.read_fingerprint(path) is None:
        raise StoreError(f"{str(path)!r} is not a batchfit result store")
    grid = store.read_grid(path)
    done = len(store.done_keys(path))
    c = _store_counts(path)
    rate = 100.0 * c["n_success"] / c["pixels"] if c["pixels"] else 0.0
    counts = ", ".join(f"{k} {n}" for k, n in c["status_counts"].items() if n)
    lines = [
        f"store: {path}",
        f"chunks: {done}/{len(grid)} done" + ("" if done < len(grid) else " (complete)"),
        f"pixels: {c['pixels']}, succeeded {c['n_success']} ({rate:.1f}%)",
        f"status: {counts}",
    ]
    from batchfit.stack import refit

    rc = refit.counts(path)
    if rc["chunks"]:
        lines.append(f"neighbour refit: {rc['improved']} of {rc['candidates']} failed pixels "
                     f"recovered ({'complete' if refit.is_done(path) else 'in progress'})")
    made_with = xr.open_zarr(path).attrs.get("batchfit_config")
    if made_with:
        resolved = yaml.safe_dump(_without_unset(json.loads(made_with)), sort_keys=False,
                                  default_flow_style=None)
        lines += ["made with config:", *("  " + line for line in resolved.splitlines())]
    return "\n".join(lines)


# ------------------------------------------------------------------ demo


def _without_unset(tree):
    """``tree`` without None values and empty containers (what a user did not set)."""
    if isinstance(tree, dict):
        kept = {k: _without_unset(v) for k, v in tree.items()}
        return {k: v for k, v in kept.items() if v not in (None, [], {})}
    return tree


def submit(config_path, *, overwrite: bool = False, workers: int | None = None,
           scheduler: str | None = None, quiet: bool = True) -> JobSummary:
    """Run the job of the config file ``config_path`` from Python (``batchfit.submit``)."""
    from batchfit.config import load_config

    return run(load_config(config_path), overwrite=overwrite, workers=workers,
               scheduler=scheduler, quiet=quiet)


def demo(folder, ny: int = 48, nx: int = 48, npts: int = 64) -> str:
    """Make a synthetic cube and a config in ``folder``, run it and its report.

    Returns the summary text; the report (PNG maps) is skipped with a note
    when matplotlib is not installed.
    """
    from batchfit.config import load_config
    from batchfit.stack.synthetic import make_cube, write_cube

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_cube(make_cube(ny, nx, npts, seed=0), folder / "cube.zarr", {"y": 16, "x": 16})
    cfg_path = folder / "config.yaml"
    cfg_path.write_text(DEMO_CONFIG)
    summary = run(load_config(cfg_path), overwrite=True)
    rate = 100.0 * summary.n_success / max(summary.pixels, 1)
    text = (f"demo config: {cfg_path}\n"
            f"pixels fitted: {summary.pixels} ({rate:.1f}% succeeded), "
            f"{summary.fits_per_s:.0f} fits/s\noutput: {summary.output}")
    from batchfit.report import PlotDependencyError, report

    try:
        return text + "\n" + report(summary.output, folder / "report")
    except PlotDependencyError as exc:
        return text + f"\nreport skipped: {exc}"


DEMO_CONFIG = """\
# batchfit demo job: a Gaussian peak on a sloped background in every pixel
input:
  path: cube.zarr
  variable: counts
  fit_dim: energy
  sigma: counts_err
  chunks: {y: 16, x: 16}
model:
  components:
    - {type: gaussian, prefix: p1_}
    - {type: linear, prefix: bg_}
parameters:
  p1_sigma: {value: 1.0, min: 0.05}
guess: true
fit:
  engine: lm
output:
  path: results.zarr
cluster:
  kind: local
  n_workers: 2
"""
