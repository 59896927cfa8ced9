"""The text of ``batchfit validate`` and ``batchfit status``.

:func:`validate` checks everything :func:`batchfit.pipeline.run` would and fits
a few sample pixels in this process, writing nothing; :func:`status` reads a
result store and says how far its job is.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import yaml

from batchfit.config import JobConfig
from batchfit.errors import StoreError
from batchfit.pipeline import Plan, damage_text, plan, store_counts, store_record
from batchfit.stack import refit, store
from batchfit.stack.apply import fit
from batchfit.stack.inputs import open_input
from batchfit.stack.integrity import layout_damage
from batchfit.stack.lock import holder
from batchfit.stack.prepare import decide
from batchfit.status import format_counts, label


def validate(config: JobConfig, n_samples: int = 4) -> str:
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
    running = holder(out)
    if running is not None:
        raise StoreError(f"output {str(out)!r} is in use by a running batchfit job "
                         f"({running.describe()}); submit would refuse to start")
    state = {"resume": "resume (same config and input)", "create": "create",
             "rebuild": "create again (an earlier creation was interrupted)"}[
        decide(out, store_record(config, p), overwrite=False)]
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


def _sample_fits(config: JobConfig, p: Plan, n_samples: int) -> list[str]:
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
        code = label(int(res["status"].values[k]))
        lines.append(f"  [{where}] {code}, redchi={res['redchi'].values[k]:.3g}: {vals}")
    return lines


def status(store_path: str | os.PathLike) -> str:
    """Chunks done, success rate and status counts of a result store."""
    path = Path(store_path)
    damage = layout_damage(path, store.manifest(path)) if store.is_complete(path) else {}
    if damage:
        return _layout_report(path, damage)
    if store.read_fingerprint(path) is None:
        raise StoreError(f"{str(path)!r} is not a batchfit result store")
    if not store.is_complete(path):
        raise StoreError(f"{str(path)!r} has batchfit's attributes but not its marker "
                         f"{store.MARKER_DIR}/created, so it is not a batchfit result store "
                         "(a copy, or a store whose creation was interrupted: `batchfit "
                         "submit` with its config finishes it)")
    try:
        grid = store.read_grid(path)
        damaged = store.damaged_chunks(path, grid)
        c = store_counts(path, damaged)
    except (KeyError, FileNotFoundError) as exc:  # zarr: ArrayNotFoundError, a FileNotFoundError
        raise StoreError(f"{str(path)!r} is not a usable batchfit result store: "
                         f"{type(exc).__name__}: {exc}") from None
    done = len(store.done_keys(path) - set(damaged))
    rate = 100.0 * c["n_success"] / c["pixels"] if c["pixels"] else 0.0
    running = holder(path)
    lines = [
        f"store: {path}",
        f"chunks: {done}/{len(grid)} done" + ("" if done < len(grid) else " (complete)"),
        *([f"damaged: {len(damaged)} chunks, recomputed by the next submit: "
           f"{damage_text(damaged, 20)}"] if damaged else []),
        *([f"running: {running.describe()}"] if running else []),
        f"pixels: {c['pixels']}, succeeded {c['n_success']} ({rate:.1f}%)",
        f"status: {format_counts(c['status_counts'])}",
    ]
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



def _layout_report(path: Path, damage: dict[str, str], limit: int = 20) -> str:
    """Status of a store whose metadata or coordinate files were damaged after creation."""
    named = "; ".join(f"{name} ({why})" for name, why in list(damage.items())[:limit])
    more = f"; and {len(damage) - limit} more" if len(damage) > limit else ""
    done = len(store.done_keys(path))
    return "\n".join([
        f"store: {path}",
        f"damaged layout: {len(damage)} files changed or missing since the store was created: "
        f"{named}{more}",
        f"chunks: {done} done; results are kept: the next `batchfit submit` of its config "
        "restores these files (or says why it cannot)",
    ])


def _without_unset(tree: Any) -> Any:
    """``tree`` without None values and empty containers (what a user did not set)."""
    if isinstance(tree, dict):
        kept = {k: _without_unset(v) for k, v in tree.items()}
        return {k: v for k, v in kept.items() if v not in (None, [], {})}
    return tree
