"""Killed jobs, killed workers, an external scheduler: the store always ends identical.

The jobs here use the per-pixel 'leastsq' engine on 49 chunks so that they run
long enough (a few seconds) to be interrupted midway.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest
from distributed import Client, LocalCluster

from batchfit import pipeline
from batchfit.stack import open_results
from batchfit.stack.store import done_keys

from .conftest import PYTHON, assert_same_store, make_job, subprocess_env, write_job

pytestmark = pytest.mark.slow
SLOW = {"fit": {"engine": "leastsq"}, "input__chunks": {"y": 4, "x": 4}}
N_CHUNKS = 49


@pytest.fixture(scope="module")
def reference(tmp_path_factory, fault_cube_path):
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    summary = pipeline.run(make_job(fault_cube_path, out, **SLOW), quiet=True)
    assert summary.chunks_computed == N_CHUNKS
    return open_results(out).load()


def _wait_for_markers(out, at_least: int, timeout: float = 120.0, proc=None) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        n = len(done_keys(out))
        if n >= at_least:
            return n
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"job ended early: {proc.returncode}")
        time.sleep(0.02)
    raise AssertionError("no chunk finished in time")


def test_sigkill_submit_then_resume(tmp_path, fault_cube_path, reference):
    out = tmp_path / "res.zarr"
    cfg = write_job(tmp_path / "job.yaml", fault_cube_path, out,
                    cluster={"kind": "local", "n_workers": 1}, **SLOW)
    proc = subprocess.Popen([PYTHON, "-m", "batchfit", "submit", str(cfg), "--quiet"],
                            env=subprocess_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_markers(out, 3, proc=proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the job and its worker processes
        proc.wait()
    done_before = done_keys(out)
    assert 3 <= len(done_before) < N_CHUNKS, "the kill came too late to test a resume"
    stamps = {k: os.stat(out / ".batchfit" / "done" / k).st_mtime_ns for k in done_before}
    status_files = {p: p.stat().st_mtime_ns for p in (out / "status").rglob("*") if p.is_file()}

    summary = pipeline.run(make_job(fault_cube_path, out, **SLOW), quiet=True)
    assert summary.chunks_computed == N_CHUNKS - len(done_before)
    assert summary.chunks_skipped == len(done_before)
    # finished chunks were not touched: their markers keep their times
    assert {k: os.stat(out / ".batchfit" / "done" / k).st_mtime_ns for k in done_before} == stamps
    assert len(status_files) >= len(done_before)
    assert_same_store(open_results(out).load(), reference)


def test_killed_worker_job_completes(tmp_path, fault_cube_path, reference):
    out = tmp_path / "res.zarr"
    job = make_job(fault_cube_path, out, **SLOW)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as cluster, \
            Client(cluster) as client:
        pids = client.run(os.getpid)
        result = {}
        runner = threading.Thread(target=lambda: result.update(summary=pipeline.run(
            job, scheduler=cluster.scheduler_address, quiet=True)))
        runner.start()
        _wait_for_markers(out, 2)
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        runner.join(timeout=180)
        assert not runner.is_alive()
    assert result["summary"].chunks_computed == N_CHUNKS
    assert len(done_keys(out)) == N_CHUNKS
    assert_same_store(open_results(out).load(), reference)


def test_external_scheduler_and_workers(tmp_path, fault_cube_path, reference):
    sched_file = tmp_path / "scheduler.json"
    env = subprocess_env()
    procs = [subprocess.Popen(
        [PYTHON, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(sched_file)], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        t0 = time.monotonic()
        while not sched_file.exists() and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        procs += [subprocess.Popen(
            [PYTHON, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
             "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"], env=env,
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(2)]
        address = json.loads(sched_file.read_text())["address"]
        with Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        out = tmp_path / "res.zarr"
        job = make_job(fault_cube_path, out, cluster={"kind": "address", "address": address},
                       **SLOW)
        summary = pipeline.run(job, quiet=True)
        assert summary.chunks_computed == N_CHUNKS
        assert_same_store(open_results(out).load(), reference)
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
