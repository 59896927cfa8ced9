"""Benchmark ``batchfit submit`` against xarray's ``Dataset.curvefit``, same cluster.

Usage: python scripts/bench_submit.py [--size 256] [--npts 128] [--big-rows 1536]
       [--skip-curvefit]

1. A size x size x npts float32 Gaussian + line cube in zarr.
2. batchfit on 2 local workers vs ``curvefit`` on the same 2-worker cluster with
   the same starting values (the template): fits/s, ratio, agreement.
3. batchfit on 1 worker vs 2.
4. Worker malloc settings: dask's default (MALLOC_TRIM_THRESHOLD_=65536) vs
   batchfit's (unset + mallopt plugin, see batchfit.stack.cluster).
5. A cube several times larger than each worker's memory limit: completes,
   with each worker's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import xarray as xr
from distributed import Client, LocalCluster

from batchfit import pipeline
from batchfit.config import JobConfig
from batchfit.stack import open_results
from batchfit.stack.cluster import MallocTuning, worker_env_config
from batchfit.stack.synthetic import gaussian_line

NAMES = ("p1_amplitude", "p1_center", "p1_sigma", "bg_slope", "bg_intercept")
START = {"p1_amplitude": 10.0, "p1_center": 0.0, "p1_sigma": 0.9, "bg_slope": 0.0,
         "bg_intercept": 1.0}


def job(cube, out, chunks=64):
    params = {k: {"value": v} for k, v in START.items()}
    params["p1_sigma"]["min"] = 0.05
    return JobConfig.from_dict({
        "input": {"path": str(cube), "variable": "counts", "fit_dim": "energy",
                  "chunks": {"y": chunks, "x": chunks}},
        "model": {"components": [{"type": "gaussian", "prefix": "p1_"},
                                 {"type": "linear", "prefix": "bg_"}]},
        "parameters": params, "output": {"path": str(out)}})


def cluster(n, trim_env=False, memory_limit="2GiB"):
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
    return client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    from make_cube import write_big_cube

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--npts", type=int, default=128)
    ap.add_argument("--big-rows", type=int, default=1536)
    ap.add_argument("--worker-mib", type=int, default=400, help="worker memory limit (big cube)")
    ap.add_argument("--skip-curvefit", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_submit_"))
    cube = tmp / "cube.zarr"
    write_big_cube(cube, a.size, a.size, a.npts)
    print(f"cube {a.size}x{a.size}x{a.npts} float32 in {cube}")

    with cluster(2) as c2, Client(c2) as client:
        client.register_plugin(MallocTuning())
        rate2, dt2 = time_submit(job(cube, tmp / "r2.zarr"), c2.scheduler_address)
        print(f"batchfit, 2 workers: {rate2:.0f} fits/s ({dt2:.1f} s)")
        if not a.skip_curvefit:
            rate_cf, dt_cf, coef = time_curvefit(cube, client)
            print(f"xarray curvefit, 2 workers: {rate_cf:.0f} fits/s ({dt_cf:.1f} s); "
                  f"batchfit / curvefit = {rate2 / rate_cf:.1f}x")
            agreement(open_results(tmp / "r2.zarr"), coef)
    with cluster(1) as c1, Client(c1) as client:
        client.register_plugin(MallocTuning())
        rate1, _ = time_submit(job(cube, tmp / "r1.zarr"), c1.scheduler_address)
    print(f"batchfit, 1 worker: {rate1:.0f} fits/s; 2 workers / 1 worker = {rate2 / rate1:.2f}x")
    same = all(np.array_equal(open_results(tmp / "r1.zarr")[k].values,
                              open_results(tmp / "r2.zarr")[k].values, equal_nan=True)
               for k in NAMES)
    print(f"1-worker and 2-worker stores identical: {same}")
    with cluster(2, trim_env=True) as cd, Client(cd):
        rate_trim, _ = time_submit(job(cube, tmp / "rt.zarr"), cd.scheduler_address)
    print(f"dask default MALLOC_TRIM_THRESHOLD_=65536: {rate_trim:.0f} fits/s; "
          f"batchfit malloc settings / dask default = {rate2 / rate_trim:.2f}x")
    big_memory(tmp, a)


def agreement(res, coef):
    ok = (res.status == 0).values
    for k in NAMES:
        b, c = res[k].values[ok], coef.sel(param=k).values[ok]
        rel = np.abs(b - c) / np.maximum(np.abs(c), 1e-3)
        print(f"  {k}: median rel diff {np.nanmedian(rel):.1e}, "
              f"{100 * np.mean(rel < 1e-4):.1f}% within 1e-4")


def big_memory(tmp, a):
    from make_cube import write_big_cube

    big = tmp / "big.zarr"
    write_big_cube(big, a.big_rows, 1024, a.npts)
    nbytes = a.big_rows * 1024 * a.npts * 4
    limit = a.worker_mib * 2**20
    with cluster(2, memory_limit=limit) as cb, Client(cb) as client:
        client.register_plugin(MallocTuning())
        rate, dt = time_submit(job(big, tmp / "rbig.zarr"), cb.scheduler_address)
        peaks = peak_rss(client)
    print(f"big cube {nbytes / 2**20:.0f} MiB = {nbytes / limit:.1f}x the "
          f"{a.worker_mib} MiB worker limit: done in {dt:.0f} s ({rate:.0f} fits/s)")
    for w, mib in peaks.items():
        print(f"  worker {w}: peak RSS {mib:.0f} MiB")
    os.system(f"rm -rf {tmp}")


if __name__ == "__main__":
    main()
