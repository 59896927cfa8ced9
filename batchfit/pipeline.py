"""Run a fit job: plan -> prepare the store -> fit chunks on Dask workers -> summary.

The client only plans and schedules: :func:`plan` opens and checks the input,
builds the model and template and chooses the chunks
(:mod:`batchfit.stack.chunking`); :func:`prepare_store` creates or reuses the
result store; :func:`run` sends one :class:`~batchfit.stack.task.TaskSpec` per
chunk not yet done to the workers (:func:`batchfit.stack.task.fit_chunk`), then
the neighbour refit pass (:mod:`batchfit.stack.refit`) when the config asks
for it, and sums up the store.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import xarray as xr

from batchfit.batch import pixels
from batchfit.config import JobConfig
from batchfit.core import Parameters
from batchfit.errors import BatchfitError, InputError, StoreError
from batchfit.models import Model
from batchfit.stack import preflight, refit, store, zarrio
from batchfit.stack.chunking import choose_chunks
from batchfit.stack.cluster import make_client, map_tasks, worker_budget
from batchfit.stack.identity import input_identity
from batchfit.stack.inputs import open_input, variable
from batchfit.stack.layout import ResultLayout, fit_coordinate, input_names
from batchfit.stack.lock import JobLock
from batchfit.stack.pixel_init import pixel_init
from batchfit.stack.prepare import prepare
from batchfit.stack.store import ChunkGrid
from batchfit.stack.task import FitOptions, TaskSpec, fit_chunk
from batchfit.status import Status, count, label


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

    config: JobConfig
    data: xr.DataArray
    model: Model
    params: Parameters
    layout: ResultLayout
    grid: ChunkGrid


# ------------------------------------------------------------------ input


def plan(config: JobConfig, workers: int | None = None, scheduler: str | None = None) -> Plan:
    """Open and check the input, build model and template, choose the chunks.

    ``workers`` and ``scheduler`` are :func:`run`'s overrides: they decide the
    worker memory limit that bounds the default chunks.

    Raises
    ------
    InputError
        A missing variable or dim (naming the available ones), a sigma or mask
        that does not fit the data, or a curve too short for the parameters.
    ParameterError
        A parameter is named like a dim or coordinate of the input.
    """
    inp = config.input
    ds = open_input(inp.path)
    data = variable(ds, inp.variable, "input.variable")
    if inp.fit_dim not in data.dims:
        raise InputError(f"input.fit_dim: {inp.fit_dim!r} is not a dim of {inp.variable!r}; "
                         f"its dims are {list(data.dims)}")
    _check_aux(ds, data, inp)
    model = config.build_model()
    params = config.build_params(model)
    preflight.check_job(config, ds, data, model, params)
    per = _check_init(config, params, data)
    layout = ResultLayout.from_params(pixels.template(params, per), config.output.covariance,
                                      model)
    layout.check_names(input_names(data))  # a parameter named like a dim or coordinate
    dims = tuple(str(d) for d in data.dims if d != inp.fit_dim)
    budget = worker_budget(config.cluster, workers, scheduler)
    chunks = choose_chunks(data, inp.fit_dim, len(layout.var_names), inp.chunks,
                           budget=budget, n_inputs=2 if inp.sigma else 1)
    grid = ChunkGrid(dims, tuple(data.sizes[d] for d in dims), chunks)
    return Plan(config, data, model, params, layout, grid)


def _check_init(config: JobConfig, params: Parameters, data: xr.DataArray | None) -> dict:
    """Check the ``init`` store's per-pixel settings against the input (before any write)."""
    if config.init is None or data is None:  # a missing input variable is named before
        return {}
    earlier = store.open_results(config.init)
    try:
        found = pixel_init(params, earlier.data_vars, data, config.input.fit_dim)
    except BatchfitError as exc:
        text = str(exc).removeprefix("init: ")
        raise InputError(f"init: store {str(config.init)!r}: {text}") from None
    return pixels.split(params, found)


def _check_aux(ds, data, inp) -> None:
    sigma = variable(ds, inp.sigma, "input.sigma")
    if sigma is not None and not set(sigma.dims) <= set(data.dims):
        raise InputError(f"input.sigma: dims {list(sigma.dims)} of {inp.sigma!r} are not "
                         f"among the data's dims {list(data.dims)}")
    mask = variable(ds, inp.mask, "input.mask")
    if mask is not None and (inp.fit_dim in mask.dims or not set(mask.dims) <= set(data.dims)):
        raise InputError(f"input.mask: {inp.mask!r} must be over pixel dims of the data "
                         f"(not {inp.fit_dim!r}); its dims are {list(mask.dims)}")


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
        "cost": config.fit.cost,
        "versions": json.dumps(versions, sort_keys=True),
    }


def _pixel_coords(p: Plan) -> xr.Dataset:
    fit_dim = p.config.input.fit_dim
    coords = {k: v for k, v in p.data.coords.items() if fit_dim not in v.dims}
    coords[fit_dim] = fit_coordinate(p.data, fit_dim)  # so curves rebuild from the store
    return xr.Dataset(coords=coords).compute()


def store_record(config: JobConfig, p: Plan) -> dict:
    """What a store vouches for: config fingerprint, input identity, result variables, chunks."""
    inp = config.input
    ds = open_input(inp.path)
    ident = input_identity(p.data, p.grid.dims, ds[inp.sigma] if inp.sigma else None,
                           ds[inp.mask] if inp.mask else None)
    return {"fingerprint": config.fingerprint(), "input": ident,
            "variables": list(p.layout.fills()), "chunks": list(p.grid.chunks)}


def prepare_store(config: JobConfig, p: Plan, overwrite: bool) -> tuple[str, ChunkGrid]:
    """Create or reuse the output store (hold the job lock); returns (action, chunk grid).

    The action is :func:`batchfit.stack.prepare.prepare`'s: resume, create,
    rebuild (an interrupted creation) or replace (``overwrite``). A resume
    first restores layout files damaged since creation
    (:func:`batchfit.stack.prepare.restore_layout`).
    """
    coords, attrs = _pixel_coords(p), _store_attrs(config, p)

    def create(folder, chunks: list | None) -> None:  # chunks: a resumed store's own
        grid = p.grid if chunks is None else ChunkGrid(p.grid.dims, p.grid.sizes, tuple(chunks))
        store.create(folder, layout=p.layout, coords=coords, grid=grid, attrs=attrs)

    action = prepare(config.output.path, store_record(config, p), overwrite, create)
    grid = store.read_grid(config.output.path)
    if (grid.dims, grid.sizes) != (p.grid.dims, p.grid.sizes):
        raise StoreError(f"output {str(config.output.path)!r} has pixel dims "
                         f"{dict(zip(grid.dims, grid.sizes, strict=True))}, the input "
                         f"{dict(zip(p.grid.dims, p.grid.sizes, strict=True))}; use --overwrite")
    return action, grid


def chunks_to_run(path, grid: ChunkGrid, quiet: bool = True) -> list[tuple[int, ...]]:
    """Chunks not done, and done ones whose files are damaged (their markers are removed)."""
    damaged = store.damaged_chunks(path, grid)
    if damaged:
        if not quiet:
            print(f"batchfit: recomputing {len(damaged)} damaged chunks: "
                  f"{damage_text(damaged)}", file=sys.stderr)
        store.forget(path, damaged)
        refit.forget(path, damaged)
    done = store.done_keys(path)
    return [i for i in grid.indices() if ChunkGrid.key(i) not in done]


def damage_text(damaged: dict[str, str], limit: int = 5) -> str:
    """``'chunk 0,1 (status/c/0/1 is missing); ...'`` for at most ``limit`` chunks."""
    items = [f"chunk {k.replace('_', ',')} ({why})" for k, why in list(damaged.items())[:limit]]
    more = len(damaged) - limit
    return "; ".join(items) + (f"; and {more} more" if more > 0 else "")


# ------------------------------------------------------------------ the tasks


def task_spec(config: JobConfig, p: Plan, grid: ChunkGrid, index: tuple[int, ...]) -> TaskSpec:
    """The description of one chunk's work (all a worker needs)."""
    inp = config.input
    return TaskSpec(
        index=tuple(index),
        region=tuple((d, s.start, s.stop) for d, s in grid.region(index).items()),
        input=inp,
        model=p.model.reference,
        template=p.params.dumps(),
        fit=FitOptions(config.fit.engine, config.fit.max_nfev, bool(config.guess),
                       bool(config.output.covariance), config.fit.cost,
                       bool(config.fit.scale_covar)),
        output=str(config.output.path),
        init=str(config.init) if config.init else None,
        python_path=tuple(str(d) for d in config.model.python_path),
    )


# ------------------------------------------------------------------ run


def run(config: JobConfig, *, overwrite: bool = False, workers: int | None = None,
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
        Bad input, a store made by another config or input, or another job
        running on the same output (nothing is written then).
    """
    t0 = time.perf_counter()
    p = plan(config, workers, scheduler)
    with JobLock(config.output.path):
        _, grid = prepare_store(config, p, overwrite)
        todo = chunks_to_run(config.output.path, grid, quiet)
        tasks = [task_spec(config, p, grid, i) for i in todo]
        after = refit.hook(config, p.layout, grid, partial(task_spec, config, p, grid), quiet)
        results, dashboard, again = _execute(config, tasks, workers, scheduler, quiet, after)
    elapsed = time.perf_counter() - t0
    fitted = sum(r["pixels"] for r in results)
    return JobSummary(**store_counts(config.output.path), fits_per_s=fitted / elapsed,
                      elapsed=elapsed, output=str(config.output.path),
                      chunks_computed=len(tasks), chunks_skipped=len(grid) - len(tasks),
                      fitted=fitted, dashboard=dashboard,
                      refit_improved=refit.counts(config.output.path)["improved"],
                      refit_chunks_computed=(again or {}).get("chunks_computed", 0))


def _execute(config: JobConfig, tasks: list[TaskSpec], workers, scheduler, quiet,
             after=None) -> tuple[list, str | None, dict | None]:
    """Run the tasks on a cluster, then ``after(client)`` if given.

    Returns the tasks' small result dicts, the dashboard link and what ``after``
    returned (None when not called).
    """
    if not tasks and after is None:
        return [], None, None
    with make_client(config.cluster, workers=workers, scheduler=scheduler) as client:
        link = client.dashboard_link
        if not quiet:
            print(f"batchfit: dashboard {link}", file=sys.stderr)
        bar = _Progress(len(tasks), enabled=not quiet and sys.stderr.isatty())
        results = []
        for result in map_tasks(client, fit_chunk, tasks, prefix="chunk"):
            results.append(result)
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


def store_counts(path: str | os.PathLike, skip: Iterable[str] = ()) -> dict[str, Any]:
    """Pixels, n_success and status counts (name -> n) over a whole store.

    Chunks named in ``skip`` (damaged ones) are not read; their pixels count as not run.
    """
    group = zarrio.open_group(path)
    skip = set(skip)
    if skip:
        codes, success = _read_skipping(group, store.read_grid(path), skip)
    else:
        codes = np.asarray(zarrio.array(group, "status")[...])
        success = np.asarray(zarrio.array(group, "success")[...])
    counts = {label(c): n for c, n in count(codes).items()}
    n_success = int(np.count_nonzero(success))
    return {"pixels": int(codes.size), "n_success": n_success, "status_counts": counts}


def _read_skipping(group: Any, grid: ChunkGrid, skip: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """``status`` and ``success`` read chunk by chunk, without the chunks in ``skip``."""
    status = np.full(grid.sizes, int(Status.NOT_RUN), np.int8)
    success = np.zeros(grid.sizes, bool)
    arrays = zarrio.array(group, "status"), zarrio.array(group, "success")
    for index in grid.indices():
        if ChunkGrid.key(index) in skip:
            continue
        sel = tuple(grid.region(index)[d] for d in grid.dims)
        status[sel], success[sel] = arrays[0][sel], arrays[1][sel]
    return status, success


def submit(config_path, *, overwrite: bool = False, workers: int | None = None,
           scheduler: str | None = None, quiet: bool = True) -> JobSummary:
    """Run the job of the config file ``config_path`` from Python (``batchfit.submit``)."""
    from batchfit.config import load_config

    return run(load_config(config_path), overwrite=overwrite, workers=workers,
               scheduler=scheduler, quiet=quiet)

