"""Benchmark ``batchfit submit`` against xarray's ``Dataset.curvefit``, same cluster.

Usage: python scripts/bench_submit.py [--size 256] [--npts 128] [--big-rows 1536]
       [--worker-mib 256] [--skip-curvefit] [--parts measure,compare,malloc,big]

1. A size x size x npts float32 Gaussian + line cube in zarr.
2. batchfit on 2 local workers vs ``curvefit`` on the same 2-worker cluster with
   the same starting values (the template): fits/s, ratio, agreement.
3. batchfit on 1 worker vs 2.
4. Worker malloc settings: dask's default (MALLOC_TRIM_THRESHOLD_=65536) vs
   batchfit's (unset + mallopt plugin, see batchfit.stack.cluster).
5. A cube several times larger than each worker's memory limit, with the
   default chunk rule (which asks the scheduler for the workers' limit):
   completes, with each worker's RSS before the job and its peak.
0. (``measure``) The peak memory of one ``task.fit_chunk`` task per pixel,
   by tracemalloc and by RSS (VmHWM), for a few tile sizes, against the chunk
   rule's estimate ``chunking.task_bytes``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import dask
import numpy as np
import xarray as xr
from distributed import Client, LocalCluster

from batchfit import pipeline
from batchfit.config import JobConfig
from batchfit.stack import chunking, open_results, task
from batchfit.stack.cluster import worker_env_config
from batchfit.stack.synthetic import gaussian_line

NAMES = ("p1_amplitude", "p1_center", "p1_sigma", "bg_slope", "bg_intercept")
START = {"p1_amplitude": 10.0, "p1_center": 0.0, "p1_sigma": 0.9, "bg_slope": 0.0,
         "bg_intercept": 1.0}


def job(cube, out, chunks=64):
    """The Gaussian + line job; ``chunks=None`` uses the default chunk rule."""
    params = {k: {"value": v} for k, v in START.items()}
    params["p1_sigma"]["min"] = 0.05
    inp = {"path": str(cube), "variable": "counts", "fit_dim": "energy"}
    if chunks:
        inp["chunks"] = {"y": chunks, "x": chunks}
    return JobConfig.from_dict({
        "input": inp,
        "model": {"components": [{"type": "gaussian", "prefix": "p1_"},
                                 {"type": "linear", "prefix": "bg_"}]},
        "parameters": params, "output": {"path": str(out)}})


def cluster(n, trim_env=False, memory_limit="2GiB"):
    """A local cluster; ``trim_env=False`` is batchfit's worker environment (see cluster.py)."""
    with dask.config.set(worker_env_config(trim_env=trim_env)):
        return LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                            memory_limit=memory_limit, dashboard_address=None,
                            host="127.0.0.1")


def time_submit(cfg, address, overwrite=True):
    t0 = time.perf_counter()
    s = pipeline.run(cfg, overwrite=overwrite, scheduler=address, quiet=True)
    dt = time.perf_counter() - t0
    return s.fitted / dt, dt


def time_curvefit(cube, client):
    ds = xr.open_zarr(str(cube))
    t0 = time.perf_counter()
    fit = ds.counts.curvefit("energy", gaussian_line, p0=START,
                             bounds={"p1_sigma": (0.05, np.inf)}).compute()
    dt = time.perf_counter() - t0
    return ds.sizes["y"] * ds.sizes["x"] / dt, dt, fit.curvefit_coefficients


def peak_rss(client):
    """Each worker's peak RSS so far (MiB)."""
    return client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def rss_now() -> float:
    """This process's resident memory (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def warm_rss() -> float:
    """Import what a task imports, then report the worker's RSS (MiB)."""
    import batchfit.pipeline
    import batchfit.stack.task  # noqa: F401

    return rss_now()


def main() -> None:

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--npts", type=int, default=128)
    ap.add_argument("--big-rows", type=int, default=1536)
    ap.add_argument("--worker-mib", type=int, default=256, help="worker memory limit (big cube)")
    ap.add_argument("--skip-curvefit", action="store_true")
    ap.add_argument("--parts", default="measure,compare,malloc,big")
    a = ap.parse_args()
    parts = set(a.parts.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="bench_submit_"))
    try:
        if "measure" in parts:
            measure_tasks(tmp, a.npts)
        if parts & {"compare", "malloc"}:
            compare(tmp, a, parts)
        if "big" in parts:
            big_memory(tmp, a)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(tmp, a, parts):
    """Parts 1-4: batchfit vs curvefit, 1 vs 2 workers, malloc settings."""
    from make_cube import write_big_cube

    cube = tmp / "cube.zarr"
    write_big_cube(cube, a.size, a.size, a.npts)
    print(f"cube {a.size}x{a.size}x{a.npts} float32 in {cube}")

    with cluster(2) as c2, Client(c2) as client:
        rate2, dt2 = time_submit(job(cube, tmp / "r2.zarr"), c2.scheduler_address)
        print(f"batchfit, 2 workers: {rate2:.0f} fits/s ({dt2:.1f} s)")
        if not a.skip_curvefit:
            rate_cf, dt_cf, coef = time_curvefit(cube, client)
            print(f"xarray curvefit, 2 workers: {rate_cf:.0f} fits/s ({dt_cf:.1f} s); "
                  f"batchfit / curvefit = {rate2 / rate_cf:.1f}x")
            agreement(open_results(tmp / "r2.zarr"), coef)
    with cluster(1) as c1, Client(c1) as client:
        rate1, _ = time_submit(job(cube, tmp / "r1.zarr"), c1.scheduler_address)
    print(f"batchfit, 1 worker: {rate1:.0f} fits/s; 2 workers / 1 worker = {rate2 / rate1:.2f}x")
    same = all(np.array_equal(open_results(tmp / "r1.zarr")[k].values,
                              open_results(tmp / "r2.zarr")[k].values, equal_nan=True)
               for k in NAMES)
    print(f"1-worker and 2-worker stores identical: {same}")
    if "malloc" not in parts:
        return
    os.environ["BATCHFIT_MALLOC_TUNING"] = "0"  # dask's allocator defaults, no plugin
    try:
        with cluster(2, trim_env=True) as cd, Client(cd):
            rate_dask, _ = time_submit(job(cube, tmp / "rt.zarr"), cd.scheduler_address)
    finally:
        del os.environ["BATCHFIT_MALLOC_TUNING"]
    print(f"dask's allocator defaults (MALLOC_TRIM_THRESHOLD_=65536, no MallocTuning): "
          f"{rate_dask:.0f} fits/s; batchfit's settings / dask's = {rate2 / rate_dask:.2f}x")


def agreement(res, coef):
    ok = (res.status == 0).values
    for k in NAMES:
        b, c = res[k].values[ok], coef.sel(param=k).values[ok]
        rel = np.abs(b - c) / np.maximum(np.abs(c), 1e-3)
        print(f"  {k}: median rel diff {np.nanmedian(rel):.1e}, "
              f"{100 * np.mean(rel < 1e-4):.1f}% within 1e-4")


def big_memory(tmp, a):
    """Part 5: a cube >= 3x a worker's memory limit, default chunks, peak RSS per worker."""
    from make_cube import write_big_cube

    big = tmp / "big.zarr"
    write_big_cube(big, a.big_rows, 1024, a.npts)
    nbytes = a.big_rows * 1024 * a.npts * 4
    limit = a.worker_mib * 2**20
    cfg = job(big, tmp / "rbig.zarr", chunks=None)
    with cluster(2, memory_limit=limit) as cb, Client(cb) as client:
        base = client.run(warm_rss)
        p = pipeline.plan(cfg, scheduler=cb.scheduler_address)
        npix = int(np.prod(p.grid.chunks))
        est = chunking.task_bytes(npix, a.npts, len(p.layout.var_names))
        print(f"big cube {nbytes / 2**20:.0f} MiB, worker limit {a.worker_mib} MiB: "
              f"cube / worker limit = {nbytes / limit:.1f}; default chunks "
              f"{dict(zip(p.grid.dims, p.grid.chunks, strict=True))} ({len(p.grid)} tasks, "
              f"estimated {est / 2**20:.1f} MiB per task, budget "
              f"{chunking.task_budget(limit) / 2**20:.1f} MiB)")
        rate, dt = time_submit(cfg, cb.scheduler_address)
        peaks = peak_rss(client)
    ok = int((open_results(tmp / "rbig.zarr").status == 0).sum())
    print(f"  done in {dt:.0f} s ({rate:.0f} fits/s), {ok} of {a.big_rows * 1024} converged")
    for w, mib in peaks.items():
        print(f"  worker {w}: RSS {base[w]:.0f} MiB before the job, peak {mib:.0f} MiB "
              f"({100 * mib * 2**20 / limit:.0f}% of its limit; job adds {mib - base[w]:.0f} MiB)")


def measure_tasks(tmp, npts, sides=(32, 64, 128)):
    """Part 0: peak memory of one fit_chunk task (tracemalloc, RSS) vs the rule's estimate."""
    from batchfit.stack.synthetic import make_cube, write_cube

    print(f"fit_chunk peak memory per task (npts={npts}, 5 varied parameters, "
          f"native chunks = tile):")
    for side in sides:
        cube = tmp / f"m{side}.zarr"
        write_cube(make_cube(2 * side, 2 * side, npts, seed=side), cube, {"y": side, "x": side})
        cfg = job(cube, tmp / f"m{side}_out.zarr", chunks=side)
        p = pipeline.plan(cfg)
        _, grid = pipeline.prepare_store(cfg, p, True)
        task.fit_chunk(pipeline.task_spec(cfg, p, grid, (0, 0)))  # warm up imports
        spec = pipeline.task_spec(cfg, p, grid, (1, 1))
        tracemalloc.start()
        task.fit_chunk(spec)
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = _rss_peak_of(task.fit_chunk, spec)
        est = chunking.task_bytes(side * side, npts, 5)
        print(f"  {side}x{side} px: tracemalloc {traced / 2**20:6.1f} MiB "
              f"({traced / side**2:5.0f} B/px), RSS +{rss / 2**20:6.1f} MiB "
              f"({rss / side**2:5.0f} B/px); estimate {est / 2**20:6.1f} MiB "
              f"= {est / max(traced, rss):.2f}x the larger")
        shutil.rmtree(cube)


def _rss_peak_of(fn, *args) -> int:
    """Peak RSS growth (bytes) while ``fn(*args)`` runs (Linux: VmHWM reset by clear_refs)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = rss_now() * 2**20
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    fn(*args)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
    return int(hwm - base)


if __name__ == "__main__":
    main()
