"""Worker memory on a larger-than-memory job: peak RSS as a share of each worker's limit.

Usage: python scripts/bench_memory.py [--workers 2] [--worker-mib 400] [--threads 1]
       [--npts 128] [--factor 3] [--rules new,old] [--cube PATH]

A Gaussian + line cube ``factor`` times the workers' total memory limit
(float32, 1024 columns, native chunks of 64 x 64 pixels) is fitted with the
default chunk rule on a fresh local cluster of ``workers`` workers with
``worker-mib`` MiB each, batchfit's worker environment (see
batchfit.stack.cluster). For each rule, in the same process:

- ``new``: the chunk rule of batchfit.stack.chunking (the worker's resident
  memory is modelled: peak at or under 75% of the limit);
- ``old``: the rule before it (``min(64 MiB, limit / (8 * threads))``), given to
  the same job as explicit ``input.chunks``.

Prints each worker's peak RSS (``ru_maxrss``, the process's lifetime peak) in
MiB and as % of its limit, whether a worker was restarted by dask (over 95%:
its peak is then lost with it, so the job's peak is unknown and over 95%),
the tasks, the time and fits/s of each rule, and new / old throughput.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import dask
from distributed import Client, LocalCluster

from batchfit import pipeline
from batchfit.config import JobConfig
from batchfit.stack import chunking, open_results
from batchfit.stack.cluster import MallocTuning, worker_env_config

MiB = 2**20


def job(cube: Path, out: Path, chunks: dict | None) -> JobConfig:
    """The Gaussian + line job on ``cube``; ``chunks=None``: the default chunk rule."""
    inp = {"path": str(cube), "variable": "counts", "fit_dim": "energy"}
    if chunks:
        inp["chunks"] = chunks
    return JobConfig.from_dict({
        "input": inp,
        "model": {"components": [{"type": "gaussian", "prefix": "p1_"},
                                 {"type": "linear", "prefix": "bg_"}]},
        "parameters": {"p1_sigma": {"value": 1.0, "min": 0.05}},
        "guess": True, "output": {"path": str(out)}})


def old_budget(limit: int, threads: int) -> int:
    """The chunk rule's budget before the worker's resident memory was modelled."""
    return max(1, min(chunking.TARGET_CHUNK_BYTES, limit // (chunking.WORKER_FRACTION * threads)))


def peak_mib() -> float:
    """This process's peak resident memory so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_rule(rule: str, cube: Path, tmp: Path, a) -> dict:
    """One job on a fresh cluster; each worker's peak RSS and whether one was restarted."""
    limit = a.worker_mib * MiB
    with dask.config.set(worker_env_config(trim_env=False)), \
            LocalCluster(n_workers=a.workers, threads_per_worker=a.threads, processes=True,
                         memory_limit=limit, dashboard_address=None,
                         host="127.0.0.1") as cluster, Client(cluster) as client:
        client.register_plugin(MallocTuning())
        address = cluster.scheduler_address
        chunks = None
        if rule == "old":
            p = pipeline.plan(job(cube, tmp / "probe.zarr", None), scheduler=address)
            sizes = chunking.choose_chunks(p.data, "energy", len(p.layout.var_names),
                                           budget=old_budget(limit, a.threads))
            chunks = dict(zip(p.grid.dims, sizes, strict=True))
        cfg = job(cube, tmp / f"{rule}.zarr", chunks)
        p = pipeline.plan(cfg, scheduler=address)
        pids = client.run(os.getpid)
        t0 = time.perf_counter()
        summary = pipeline.run(cfg, overwrite=True, scheduler=address, quiet=True)
        elapsed = time.perf_counter() - t0
        peaks = client.run(peak_mib)
        restarted = client.run(os.getpid) != pids
    return {"chunks": dict(zip(p.grid.dims, p.grid.chunks, strict=True)), "tasks": len(p.grid),
            "elapsed": elapsed, "rate": summary.fitted / elapsed, "peaks": peaks,
            "restarted": restarted, "limit": limit, "n_success": summary.n_success,
            "pixels": summary.pixels}


def report(rule: str, r: dict) -> None:
    shares = [100 * mib * MiB / r["limit"] for mib in r["peaks"].values()]
    print(f"{rule} rule: chunks {r['chunks']} ({r['tasks']} tasks), {r['elapsed']:.0f} s, "
          f"{r['rate']:.0f} fits/s, {r['n_success']} of {r['pixels']} converged")
    for (worker, mib), share in zip(r["peaks"].items(), shares, strict=True):
        print(f"  worker {worker}: peak RSS {mib:.0f} MiB = {share:.1f}% of its limit")
    verdict = ("a worker was RESTARTED (over 95%; its peak is lost)" if r["restarted"]
               else f"max {max(shares):.1f}% ({'<=' if max(shares) <= 75 else '>'} 75%)")
    print(f"  {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-mib", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--npts", type=int, default=128)
    ap.add_argument("--factor", type=float, default=3.0)
    ap.add_argument("--rules", default="new,old")
    ap.add_argument("--cube", default=None,
                    help="reuse (or keep) the cube at this path instead of a temporary one")
    a = ap.parse_args()
    from make_cube import write_big_cube

    total = a.factor * a.workers * a.worker_mib * MiB
    rows = 64 * math.ceil(total / (1024 * a.npts * 4) / 64)
    tmp = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    try:
        cube = Path(a.cube) if a.cube else tmp / "cube.zarr"
        if not cube.exists():
            write_big_cube(cube, rows, 1024, a.npts)
        nbytes = rows * 1024 * a.npts * 4
        print(f"cube {rows}x1024x{a.npts} float32 = {nbytes / MiB:.0f} MiB = "
              f"{nbytes / (a.workers * a.worker_mib * MiB):.2f}x the total limit of "
              f"{a.workers} workers x {a.worker_mib} MiB ({a.threads} thread(s) each); "
              f"budgets: new {chunking.task_budget(a.worker_mib * MiB, a.threads) / MiB:.1f} "
              f"MiB, old {old_budget(a.worker_mib * MiB, a.threads) / MiB:.1f} MiB per task")
        results = {}
        for rule in a.rules.split(","):
            results[rule] = run_rule(rule, cube, tmp, a)
            report(rule, results[rule])
        if {"new", "old"} <= set(results):
            same = all(open_results(tmp / "new.zarr")[k].equals(open_results(tmp / "old.zarr")[k])
                       for k in ("p1_center", "p1_sigma", "status"))
            print(f"throughput new / old = {results['new']['rate'] / results['old']['rate']:.2f}"
                  f"; stores identical: {same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
