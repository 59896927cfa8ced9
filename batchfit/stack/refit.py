"""The neighbour refit pass (``fit.refit_failed: true``).

After the main pass, a pixel whose fit failed (``success`` false and status
not ``masked``, ``bad_data`` or ``not_run``: in practice ``max_nfev`` and
``model_error``) is fitted once more, starting from its neighbours' results:
for each varied parameter, the median over the *successful* pixels of the
``3^d`` box around it (3 x 3 on a 2-d map; all pixel dims take part). When
that box holds no successful pixel the ``5^d`` box is used; when it holds none
either, the pixel is left as it is.

Determinism. Starting values come from the complete first-pass maps only.
Before any refit task runs, the client reads the store chunk by chunk (each
with a 2-pixel halo) and saves a *plan* per chunk that has candidates:
``<store>/.batchfit/refit/plan/<key>.json`` with the candidates' flat
positions in the chunk, their first-pass status and their starting values;
``<store>/.batchfit/refit/planned`` marks the plan complete. Refit tasks only
run once ``planned`` exists, so until then the store holds the first-pass maps
and a plan can be (re)made from them; afterwards the saved plan is used and
never recomputed. A refit's result depends only on the input and its starting
values (the batch engine fits each curve independently), hence the store is
the same whatever the chunking or the order the tasks run in.

Writes. One task per chunk with candidates, on the job's Dask client: it
reads its input region, fits the candidates only (``mask`` + ``init``), and
writes, for the pixels whose refit succeeded, every result variable of the
refit (values, stderr, chisqr, redchi, the refit's own nfev, success, status,
covar); a failed refit leaves the first-pass result untouched. Each task then
writes ``.batchfit/refit/done/<key>`` (its counts); a repeated task rewrites
the same values, so an interrupted pass resumes safely. When every task is
done, ``.batchfit/refit_done`` records the totals and a rerun does no work.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import xarray as xr
import zarr
from distributed import Client

from batchfit.config import JobConfig
from batchfit.stack import zarrio
from batchfit.stack.cluster import map_tasks
from batchfit.stack.layout import ResultLayout
from batchfit.stack.store import ChunkGrid, atomic_write, markers, vouch
from batchfit.stack.task import TaskSpec, fit_region, init_region, read_inputs
from batchfit.status import Status

REFIT_DIR = "refit"
DONE_MARKER = "refit_done"
RADII = (1, 2)  # 3^d box, then 5^d
NOT_CANDIDATES = (Status.MASKED, Status.BAD_DATA, Status.NOT_RUN)


# ------------------------------------------------------------------ markers


def is_done(path: str | os.PathLike) -> bool:
    """True when the refit pass of the store at ``path`` has finished."""
    return (markers(path) / DONE_MARKER).exists()


def _done_summaries(path) -> dict[str, dict]:
    folder = markers(path) / REFIT_DIR / "done"
    if not folder.is_dir():
        return {}
    return {p.name: json.loads(p.read_text()) for p in folder.iterdir()
            if not p.name.startswith(".")}


def forget(path: str | os.PathLike, keys: Iterable[str]) -> None:
    """Drop the refit results of chunks about to be recomputed (their plans are kept)."""
    keys = list(keys)
    for key in keys:
        (markers(path) / REFIT_DIR / "done" / key).unlink(missing_ok=True)
    if keys:
        (markers(path) / DONE_MARKER).unlink(missing_ok=True)


def counts(path: str | os.PathLike) -> dict[str, int]:
    """Refit totals of a store so far: ``candidates``, ``improved``, ``chunks`` done."""
    done = _done_summaries(path)
    return {"candidates": sum(s["candidates"] for s in done.values()),
            "improved": sum(s["improved"] for s in done.values()),
            "chunks": len(done)}


# ------------------------------------------------------------------ plan (client side)


def candidates(status: np.ndarray, success: np.ndarray) -> np.ndarray:
    """Pixels to refit: failed, and not masked, bad data or never run."""
    skip = np.isin(status, [int(c) for c in NOT_CANDIDATES])
    return ~np.asarray(success, bool) & ~skip


def neighbour_medians(ok: np.ndarray, values: dict[str, np.ndarray], pos: np.ndarray,
                      radii=RADII) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-parameter medians of the successful neighbours of the pixels ``pos``.

    Parameters
    ----------
    ok : ndarray of bool, shape (...)
        Which pixels of the map succeeded.
    values : dict of str -> ndarray, same shape as ``ok``
        The first-pass value maps.
    pos : ndarray of int, shape (k, ok.ndim)
        The pixels to find starting values for.
    radii : sequence of int
        Box half-widths to try in turn (1: the ``3^d`` box, 2: ``5^d``).

    Returns
    -------
    medians : dict of str -> ndarray (k,)
        NaN where no box holds a successful pixel.
    found : ndarray of bool (k,)
    """
    k, shape = len(pos), np.array(ok.shape)
    medians = {n: np.full(k, np.nan) for n in values}
    found = np.zeros(k, bool)
    for r in radii:
        todo = np.flatnonzero(~found)
        if not todo.size:
            break
        offsets = np.array(list(itertools.product(range(-r, r + 1), repeat=ok.ndim)))
        idx = pos[todo, None, :] + offsets[None, :, :]  # (m, window, d)
        inside = ((idx >= 0) & (idx < shape)).all(axis=-1)
        at = tuple(np.clip(idx, 0, shape - 1)[..., j] for j in range(ok.ndim))
        good = inside & ok[at]
        hit = good.any(axis=1)
        for name, v in values.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no neighbour
                med = np.nanmedian(np.where(good, v[at], np.nan), axis=1)
            medians[name][todo[hit]] = med[hit]
        found[todo[hit]] = True
    return medians, found


def _plan_chunk(group: zarr.Group, grid: ChunkGrid, index: tuple[int, ...],
                var_names: Sequence[str]) -> dict | None:
    """The refit plan of one chunk from the first-pass maps, or None without candidates."""
    region = grid.region(index)
    sel = tuple(region[d] for d in grid.dims)
    status, success = zarrio.array(group, "status"), zarrio.array(group, "success")
    first_status = np.asarray(status[sel])
    cand = candidates(first_status, np.asarray(success[sel]))
    if not cand.any():
        return None
    pad = max(RADII)
    halo = tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n))
                 for s, n in zip(sel, grid.sizes, strict=True))
    ok = np.asarray(success[halo], bool)
    values = {n: np.asarray(zarrio.array(group, n)[halo], np.float64) for n in var_names}
    ok &= np.all([np.isfinite(v) for v in values.values()], axis=0)
    pos = np.argwhere(cand)
    start = np.array([s.start - h.start for s, h in zip(sel, halo, strict=True)])
    medians, found = neighbour_medians(ok, values, pos + start)
    flat = np.asarray(np.ravel_multi_index(tuple(pos.T), cand.shape))
    return {"index": list(index), "candidates": int(cand.sum()),
            "rows": flat[found].tolist(),
            "first_status": first_status.ravel()[flat[found]].astype(int).tolist(),
            "init": {n: m[found].tolist() for n, m in medians.items()}}


def make_plan(path: str | os.PathLike, grid: ChunkGrid, var_names: Sequence[str]) -> list[dict]:
    """Read (or make and save) the refit plans of every chunk with candidates."""
    folder = markers(path) / REFIT_DIR
    if (folder / "planned").exists():
        return [json.loads(p.read_text()) for p in sorted((folder / "plan").iterdir())
                if not p.name.startswith(".")]
    # No refit task has run yet: the store still holds the first-pass maps.
    shutil.rmtree(folder, ignore_errors=True)
    group = zarrio.open_group(path)
    plans = [p for i in grid.indices() if (p := _plan_chunk(group, grid, i, var_names))]
    for p in plans:
        atomic_write(folder / "plan" / f"{ChunkGrid.key(tuple(p['index']))}.json",
                      json.dumps(p))
    atomic_write(folder / "planned", str(len(plans)))
    return plans


# ------------------------------------------------------------------ the task (worker side)


def refit_chunk(task: TaskSpec, plan: dict) -> dict:
    """Refit one chunk's failed pixels on a worker and write the improved ones.

    ``task`` is the chunk's main-pass task spec, ``plan`` its refit plan
    (:func:`make_plan`). Returns ``{"index", "candidates", "refitted", "improved"}``.
    """
    inputs = read_inputs(task)
    dims, shape = task.dims, task.shape
    rows = np.asarray(plan["rows"], np.int64)
    mask = np.zeros(int(np.prod(shape)), bool)
    mask[rows] = True
    init = dict(init_region(task, inputs.params) or {})  # per-pixel bounds and vary stay
    for name, vals in plan["init"].items():
        full = np.full(mask.size, np.nan)
        full[rows] = vals
        start = xr.DataArray(full.reshape(shape), dims=dims)
        if f"{name}_vary" in init and name in init:  # a held value is never replaced
            start = start.where(init[f"{name}_vary"].astype(bool), init[name])
        init[name] = start
    res = fit_region(task, inputs, mask=xr.DataArray(mask.reshape(shape), dims=dims),
                     init=init, guess=False)
    improved = res["success"].transpose(*dims).values & mask.reshape(shape)
    if improved.any():
        _write_pixels(task.output, res, task.slices, improved)
        vouch(task.output, task.index)  # the chunk's files changed: the marker follows
    summary = {"index": list(task.index), "candidates": plan["candidates"],
               "refitted": int(rows.size), "improved": int(improved.sum())}
    atomic_write(markers(task.output) / REFIT_DIR / "done" / task.key,
                 json.dumps(summary, sort_keys=True))
    return summary


def _write_pixels(path, res: xr.Dataset, region: dict, pixels: np.ndarray) -> None:
    """Overwrite only ``pixels`` (bool over the region) of every variable in the store."""
    group = zarrio.open_group(path, mode="r+")
    for name, var in res.data_vars.items():
        arr = zarrio.array(group, str(name))
        dims = zarrio.dims(arr)
        sel = tuple(region.get(d, slice(None)) for d in dims)
        current = np.asarray(arr[sel])
        current[pixels] = np.asarray(var.transpose(*dims).values, dtype=arr.dtype)[pixels]
        arr[sel] = current


# ------------------------------------------------------------------ the pass (client side)


MakeTask = Callable[[tuple[int, ...]], TaskSpec]
"""``make_task(index)``: the main-pass task spec of a chunk."""


def hook(config: JobConfig, layout: ResultLayout, grid: ChunkGrid, make_task: MakeTask,
         quiet: bool = True) -> Callable[[Client], dict] | None:
    """The refit pass as ``f(client) -> summary dict``, or None when none is due."""
    if not config.fit.refit_failed or is_done(config.output.path):
        return None

    def run_pass(client: Client) -> dict:
        return execute(client, config.output.path, layout.var_names, grid, make_task, quiet)

    return run_pass


def execute(client: Client, path: str | os.PathLike, var_names: Sequence[str], grid: ChunkGrid,
            make_task: MakeTask, quiet: bool = True) -> dict:
    """Plan (or reload the plan), run the missing chunk tasks, mark the pass done."""
    plans = make_plan(path, grid, var_names)
    done = _done_summaries(path)
    todo = [p for p in plans if ChunkGrid.key(tuple(p["index"])) not in done]
    tasks = [make_task(tuple(p["index"])) for p in todo]
    if not quiet:
        print(f"batchfit: refit pass: {sum(p['candidates'] for p in plans)} failed pixels, "
              f"{len(tasks)} chunk tasks", file=sys.stderr)
    if tasks:
        for _ in map_tasks(client, refit_chunk, tasks, todo, prefix="refit"):
            pass
    totals = counts(path)
    atomic_write(markers(path) / DONE_MARKER, json.dumps(totals, sort_keys=True))
    return {**totals, "chunks_computed": len(tasks)}
