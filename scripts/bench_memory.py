"""Worker memory on a larger-than-memory job: each worker's peak RSS as a share of its limit.

Usage: python scripts/bench_memory.py [--workers 2] [--worker-mib 512] [--threads 1]
       [--npts 128] [--factor 3] [--interval 0.05] [--cube PATH]

A Gaussian + line cube ``factor`` times the workers' total memory limit
(float32, 1024 columns, native chunks of 64 x 64 pixels) is fitted by
``batchfit.pipeline.run`` end to end: a local cluster of ``workers`` worker
processes with ``cluster.memory_limit = worker-mib`` MiB each, started by
batchfit itself (its worker environment and dask memory thresholds), the
default chunk rule (:mod:`batchfit.stack.chunking`).

A thread of this process samples the resident memory of every worker process
(the children started by the nannies) every ``interval`` seconds with psutil,
and reads each one's ``VmHWM`` (the kernel's exact lifetime peak RSS, so a
spike between two samples is not missed). Printed per worker: the limit, the
peak (VmHWM and the sampled maximum, MiB and % of the limit), RSS at its first
sample, after 5% of its life and at the end (what stays resident, what
grows), and whether it was restarted (a new worker process: dask restarts a
worker over 95%). Then the tasks, wall time and fits/s
(cluster start-up included) and the verdict: every worker's peak at or
under 75% of its limit (exit status 1 if not, or if a worker was restarted).

Measured on the 2-core dev machine, shared with other jobs (3 GiB cube at
512 MiB, 2.4 GiB at 400 MiB; 128 points, Gaussian + line with guesses):

- 2 x 512 MiB (default): peaks 41.0% and 40.9%; RSS at 5% of a worker's
  life 196-197 MiB, at the end 183-184 MiB (no growth); 3,072 tasks of
  64 x 32 pixels, 218 s, 28,848 fits/s (an earlier run: 45.5%, 20,954 fits/s).
  Before dask's profiler was turned off: 70.1% and 69.8%, RSS growing from
  213-221 to 333-334 MiB (0.22 MiB/s), 11,480 fits/s (a busier machine).
- 2 x 400 MiB: peaks 50.2% and 50.7%, RSS 161 -> 187 MiB; 4,800 tasks,
  14,982 fits/s (beside a full test run). Before: not finished in 8 minutes,
  workers paused 130 times at 80%.
- 2 x 512 MiB, 2 threads each (tasks of 32 MiB): peaks 43.2% and 43.4%, RSS
  at the end 194-195 MiB; 6,144 tasks, 21,745 fits/s.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from batchfit import pipeline
from batchfit.config import JobConfig
from batchfit.stack import chunking

MiB = 2**20


def job(cube: Path, out: Path, workers: int = 2, worker_mib: int | None = None,
        threads: int = 1) -> JobConfig:
    """The Gaussian + line job on ``cube`` with the default chunk rule, on a local cluster."""
    cluster: dict = {"kind": "local", "n_workers": workers, "threads_per_worker": threads}
    if worker_mib:
        cluster["memory_limit"] = f"{worker_mib}MiB"
    return JobConfig.from_dict({
        "input": {"path": str(cube), "variable": "counts", "fit_dim": "energy"},
        "model": {"components": [{"type": "gaussian", "prefix": "p1_"},
                                 {"type": "linear", "prefix": "bg_"}]},
        "parameters": {"p1_sigma": {"value": 1.0, "min": 0.05}},
        "guess": True, "output": {"path": str(out)}, "cluster": cluster})


def _hwm(pid: int) -> int:
    """The kernel's peak resident memory of ``pid`` (bytes), 0 when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Samples the RSS of this process's worker processes every ``interval`` s."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval, self.stop = interval, threading.Event()
        self.series: dict[int, list[tuple[float, int]]] = {}
        self.hwm: dict[int, int] = {}

    def workers(self) -> list[psutil.Process]:
        out = []
        for p in psutil.Process().children(recursive=True):
            try:  # the nanny's worker processes; not multiprocessing's resource tracker
                if any("spawn_main" in part for part in p.cmdline()):
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.perf_counter()
            for p in self.workers():
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                self.series.setdefault(p.pid, []).append((now, rss))
                self.hwm[p.pid] = max(self.hwm.get(p.pid, 0), _hwm(p.pid))
            self.stop.wait(self.interval)


def at(series: list[tuple[float, int]], t: float) -> float:
    """RSS (MiB) of the first sample at or after time ``t``."""
    return next((r for s, r in series if s >= t), series[-1][1]) / MiB


def report(sampler: Sampler, limit: int) -> float:
    """Print each worker's memory; return the largest peak as a share of the limit."""
    worst = 0.0
    for i, (pid, series) in enumerate(sorted(sampler.series.items())):
        early = series[0][0] + 0.05 * (series[-1][0] - series[0][0])  # of the worker's life
        hwm, sampled = sampler.hwm.get(pid, 0), max(r for _, r in series)
        peak = max(hwm, sampled)
        worst = max(worst, peak / limit)
        print(f"  worker {i} (pid {pid}): limit {limit / MiB:.0f} MiB, peak RSS "
              f"{hwm / MiB:.0f} MiB (VmHWM) = {100 * hwm / limit:.1f}%, sampled max "
              f"{sampled / MiB:.0f} MiB = {100 * sampled / limit:.1f}% ({len(series)} samples); "
              f"first sample {series[0][1] / MiB:.0f}, at 5% of its life "
              f"{at(series, early):.0f}, at the end {series[-1][1] / MiB:.0f} MiB")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-mib", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--npts", type=int, default=128)
    ap.add_argument("--factor", type=float, default=3.0)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--cube", default=None,
                    help="reuse (or keep) the cube at this path instead of a temporary one")
    a = ap.parse_args()
    from make_cube import write_big_cube

    limit = a.worker_mib * MiB
    rows = 64 * math.ceil(a.factor * a.workers * limit / (1024 * a.npts * 4) / 64)
    tmp = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    try:
        cube = Path(a.cube) if a.cube else tmp / "cube.zarr"
        if not cube.exists():
            write_big_cube(cube, rows, 1024, a.npts)
        nbytes = rows * 1024 * a.npts * 4
        cfg = job(cube, tmp / "out.zarr", a.workers, a.worker_mib, a.threads)
        p = pipeline.plan(cfg)
        print(f"cube {rows}x1024x{a.npts} float32 = {nbytes / MiB:.0f} MiB = "
              f"{nbytes / (a.workers * limit):.2f}x the total limit of {a.workers} workers x "
              f"{a.worker_mib} MiB ({a.threads} thread(s) each); modelled resident "
              f"{chunking.WORKER_RESIDENT / MiB:.0f} MiB, task budget "
              f"{chunking.task_budget(limit, a.threads) / MiB:.1f} MiB: chunks "
              f"{dict(zip(p.grid.dims, p.grid.chunks, strict=True))}, {len(p.grid)} tasks")
        sampler = Sampler(a.interval)
        sampler.start()
        t0 = time.perf_counter()
        summary = pipeline.run(cfg, quiet=True)
        t1 = time.perf_counter()
        sampler.stop.set()
        sampler.join()
        print(f"{summary.chunks_computed} tasks, {t1 - t0:.0f} s, {summary.fitted / (t1 - t0):.0f} "
              f"fits/s (cluster start-up included), {summary.n_success} of {summary.pixels} "
              f"converged")
        worst = report(sampler, limit)
        restarted = len(sampler.series) > a.workers
        print(f"workers restarted: {'YES' if restarted else 'no'}; largest peak {100 * worst:.1f}%"
              f" of the limit: {'<=' if worst <= chunking.TARGET_PEAK else '>'} 75%")
        sys.exit(0 if worst <= chunking.TARGET_PEAK and not restarted else 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
