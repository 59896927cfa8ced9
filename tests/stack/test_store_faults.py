"""The store's promises end to end: kills during creation, two submits at once, damage.

Every job here is the same tiny one (6 x 6 pixels of 16 points, 4 chunks, an
expression model): whatever happens to a run, the store must end equal to a
clean run's. Reruns go to one in-process cluster so that each costs a
fraction of a second.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml
from distributed import LocalCluster

from batchfit import pipeline
from batchfit.cli import main as cli_main
from batchfit.config import load_config
from batchfit.describe import status
from batchfit.stack import open_results
from batchfit.stack.lock import holder, lock_path
from batchfit.stack.synthetic import make_cube, write_cube

from .conftest import PYTHON, assert_same_store, subprocess_env, tree_hash

pytestmark = pytest.mark.slow
N_CHUNKS = 4
DRIVER = Path(__file__).with_name("fault_driver.py")


def _config(input_path, output="res.zarr", **cluster) -> dict:
    return {"input": {"path": str(input_path), "variable": "counts", "fit_dim": "energy",
                      "chunks": {"y": 3, "x": 3}},
            "model": {"expression": "a*exp(-x*x/2) + c"},
            "output": {"path": output},
            "cluster": cluster or {"kind": "local", "n_workers": 1}}


def _job_dir(folder: Path, input_path, **cluster) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.yaml").write_text(yaml.safe_dump(_config(input_path, **cluster)))
    return folder


@pytest.fixture(scope="module")
def tiny_input(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "cube.zarr"
    write_cube(make_cube(6, 6, 16, seed=5), path, {"y": 3, "x": 3})
    return path


@pytest.fixture(scope="module")
def scheduler():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def _run(folder: Path, scheduler: str, **kw):
    return pipeline.run(load_config(folder / "job.yaml"), scheduler=scheduler, quiet=True, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_input, scheduler) -> xr.Dataset:
    folder = _job_dir(tmp_path_factory.mktemp("clean"), tiny_input)
    assert _run(folder, scheduler).chunks_computed == N_CHUNKS
    return open_results(folder / "res.zarr").load()


def _left_over(folder: Path) -> list[str]:
    return sorted(set(os.listdir(folder)) - {"job.yaml", "res.zarr"})


# ------------------------------------------------------------------ kills


def test_kill_at_each_write_of_store_creation_then_plain_rerun(tmp_path, tiny_input,
                                                                scheduler, reference):
    job, states = _job_dir(tmp_path / "job", tiny_input), tmp_path / "states"
    states.mkdir()
    out = subprocess.run([PYTHON, str(DRIVER), str(job), str(states)], env=subprocess_env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    n_writes = int(re.fullmatch(r"writes (\d+)\n", out.stdout).group(1))
    # lock (2), build folder and every file of the empty store, rename, 'created'
    assert n_writes > 20 and len(os.listdir(states)) == n_writes
    seen = set()
    for n in range(1, n_writes + 1):
        folder = states / str(n)
        seen.add(tuple(sorted(os.listdir(folder))))
        summary = _run(folder, scheduler)  # plain: no --overwrite
        assert summary.chunks_computed == N_CHUNKS, n
        assert_same_store(open_results(folder / "res.zarr").load(), reference)
        assert _left_over(folder) == [], (n, _left_over(folder))
    # the kills left different things behind: nothing, a lock, a build folder, a store
    assert len(seen) >= 3


# ------------------------------------------------------------------ two at once


def test_two_submits_at_once_one_runs_the_other_exits_2(tmp_path, tiny_input, reference):
    job = _job_dir(tmp_path, tiny_input)
    cmd = [PYTHON, "-m", "batchfit", "submit", str(job / "job.yaml"), "--quiet"]
    procs = [subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    first = _first_to_end(procs)
    other = procs[1 - procs.index(first)]
    still_running = other.poll() is None
    outs = {p.pid: p.communicate(timeout=300) for p in procs}
    assert first.returncode == 2 and other.returncode == 0, outs
    assert still_running, "the refused submit should end while the other one still runs"
    message = outs[first.pid][1]
    assert f"in use by another batchfit job (pid {other.pid} on host" in message
    assert "started 20" in message and "Traceback" not in message
    assert_same_store(open_results(job / "res.zarr").load(), reference)
    assert _left_over(job) == [] and holder(job / "res.zarr") is None


def _first_to_end(procs: list[subprocess.Popen]) -> subprocess.Popen:
    import time

    while True:  # poll both: whichever ends first
        for p in procs:
            if p.poll() is not None:
                return p
        time.sleep(0.02)


def test_validate_and_status_name_a_running_job(tmp_path, tiny_input, scheduler, reference):
    folder = _job_dir(tmp_path, tiny_input)
    _run(folder, scheduler)
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from dataclasses import asdict, replace

        from batchfit.stack.lock import LockInfo

        info = replace(LockInfo.mine(), pid=fake.pid, boot=None)
        lock_path(folder / "res.zarr").write_text(__import__("json").dumps(asdict(info)))
        assert f"running: pid {fake.pid} on host" in status(folder / "res.zarr")
        assert cli_main(["validate", str(folder / "job.yaml")]) == 2
    finally:
        fake.kill()
        fake.wait()
    assert "running:" not in status(folder / "res.zarr")  # its holder died: stale


# ------------------------------------------------------------------ damage


def test_damaged_chunks_are_named_by_status_and_repaired_by_submit(tmp_path, tiny_input,
                                                                   scheduler, reference):
    folder = _job_dir(tmp_path, tiny_input)
    _run(folder, scheduler)
    out = folder / "res.zarr"
    (out / "status" / "c" / "0" / "1").unlink()
    flipped = out / "status" / "c" / "1" / "0"
    flipped.write_bytes(bytes(b ^ 0x5A for b in flipped.read_bytes()))  # undecodable
    cut = out / "a" / "c" / "1" / "1"
    cut.write_bytes(cut.read_bytes()[:-4])
    report = status(out)
    assert "chunks: 1/4 done" in report and "damaged: 3 chunks" in report
    assert "chunk 0,1 (status/c/0/1 is missing)" in report
    assert "chunk 1,0 (status/c/1/0 changed (checksum differs))" in report
    assert re.search(r"chunk 1,1 \(a/c/1/1 has \d+ bytes, \d+ were written\)", report)
    summary = _run(folder, scheduler)
    assert (summary.chunks_computed, summary.chunks_skipped) == (3, 1)
    assert_same_store(open_results(out).load(), reference)
    assert "damaged:" not in status(out) and "chunks: 4/4 done (complete)" in status(out)


def test_damaged_layout_is_named_by_status_and_restored_by_submit(tmp_path, tiny_input,
                                                                  scheduler, reference):
    """Metadata and coordinate files: recorded at creation, put back byte for byte."""
    folder = _job_dir(tmp_path, tiny_input)
    _run(folder, scheduler)
    out = folder / "res.zarr"
    before = tree_hash(out)
    (out / "chisqr" / "zarr.json").unlink()
    meta = out / "a" / "zarr.json"
    meta.write_text(meta.read_text().replace('"float64"', '"float32"'))  # silently wrong
    (out / "zarr.json").write_text("{")
    (out / "x" / "c" / "0").unlink()  # a coordinate chunk
    report = status(out)
    assert "damaged layout: 4 files changed or missing since the store was created" in report
    for named in ("chisqr/zarr.json (missing)", "a/zarr.json (changed)",
                  "zarr.json (changed)", "x/c/0 (missing)"):
        assert named in report
    summary = _run(folder, scheduler)
    assert summary.chunks_computed == 0  # the results were never in doubt
    assert tree_hash(out) == before
    assert_same_store(open_results(out).load(), reference)
    assert "chunks: 4/4 done (complete)" in status(out)


# ------------------------------------------------------------------ what a resume must match


def test_regenerated_input_is_refused_on_resume(tmp_path, tiny_input, scheduler, capsys):
    data = tmp_path / "cube.zarr"
    shutil.copytree(tiny_input, data)
    folder = _job_dir(tmp_path / "job", data, kind="address", address=scheduler)
    _run(folder, scheduler)
    before = tree_hash(folder / "res.zarr")
    cube = xr.open_zarr(data, consolidated=False).load()
    cube["counts"][-1, -1, 0] += 1.0  # the last pixel is one of the sampled curves
    shutil.rmtree(data)
    write_cube(cube, data, {"y": 3, "x": 3})
    capsys.readouterr()
    assert cli_main(["submit", str(folder / "job.yaml"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "was made from a different input: the values of the input data changed" in err
    assert tree_hash(folder / "res.zarr") == before
    assert cli_main(["submit", str(folder / "job.yaml"), "--quiet", "--overwrite"]) == 0
    assert "chunks: 4/4 done (complete)" in status(folder / "res.zarr")
    assert cli_main(["submit", str(folder / "job.yaml"), "--quiet"]) == 0  # now it matches


def test_copy_of_a_store_is_never_deleted(tmp_path, tiny_input, scheduler, reference, capsys):
    copy = tmp_path / "res.zarr"
    reference.assign(mine=reference.a * 2).to_zarr(copy, zarr_format=3, consolidated=False)
    folder = _job_dir(tmp_path, tiny_input, kind="address", address=scheduler)
    before = tree_hash(copy)
    for extra in ([], ["--overwrite"]):
        assert cli_main(["submit", str(folder / "job.yaml"), "--quiet", *extra]) == 2
        assert "(a copy?); batchfit did not write it" in capsys.readouterr().err
    assert tree_hash(copy) == before


def test_parameter_named_like_an_input_dim_exits_2_before_the_store(tmp_path, tiny_input,
                                                                    capsys):
    cfg = _config(tiny_input)
    cfg["model"] = {"expression": "y*exp(-x*x/2) + c"}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    for command in ("validate", "submit"):
        assert cli_main([command, str(tmp_path / "job.yaml")]) == 2
        err = capsys.readouterr().err
        assert "the result variable 'y' would hold both the input's dim 'y'" in err, err
    assert sorted(os.listdir(tmp_path)) == ["job.yaml"]
