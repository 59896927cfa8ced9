"""One chunk on a worker: its spec, what it reads, what it writes."""

from __future__ import annotations

import pytest

from batchfit import pipeline
from batchfit.stack import task
from batchfit.stack.synthetic import make_cube, write_cube

from .conftest import make_job


def test_a_task_reads_only_its_region(tmp_path):
    """Corrupt every input chunk outside one task's region: that task still succeeds."""
    path = tmp_path / "cube.zarr"
    write_cube(make_cube(16, 16, 32, seed=2), path, {"y": 4, "x": 4})
    cfg = make_job(path, tmp_path / "out.zarr", input__chunks={"y": 8, "x": 4}, input__sigma=None)
    p = pipeline.plan(cfg)
    _, grid = pipeline.prepare_store(cfg, p, True)
    spec = pipeline.task_spec(cfg, p, grid, (1, 2))  # y 8:16 -> native 2, 3; x 8:12 -> 2
    keep = {f"{j}/{i}/0" for j in (2, 3) for i in (2,)}
    corrupted = 0
    for f in (path / "counts" / "c").rglob("*"):
        if f.is_file() and str(f.relative_to(path / "counts" / "c")) not in keep:
            f.write_bytes(b"not a chunk")
            corrupted += 1
    assert corrupted == 14
    out = task.fit_chunk(spec)
    assert out["counts"] == {"0": 32}
    with pytest.raises(Exception):  # noqa: B017 - any decode error: the corruption is real
        task.fit_chunk(pipeline.task_spec(cfg, p, grid, (0, 0)))


@pytest.mark.slow
def test_a_worker_reads_its_region_itself(tmp_path, cube_path):
    """Reads inside a task (input and ``init``) run in the task's thread.

    Were they sent to the scheduler as new tasks (dask's default inside a
    worker), the task would leave the worker's thread pool while it waits and
    a one-thread worker would start the next chunk meanwhile: several chunks
    fitting at once on one core. The client's own small reads (the input's
    identity) stay off the cluster too. The task stream lists every task the
    cluster ran.
    """
    from distributed import Client, LocalCluster, get_task_stream

    first = make_job(cube_path, tmp_path / "first.zarr", input__chunks={"y": 4, "x": 5})
    pipeline.run(first, quiet=True, workers=1)
    cfg = make_job(cube_path, tmp_path / "out.zarr", input__chunks={"y": 4, "x": 5},
                   init=str(tmp_path / "first.zarr"))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as cluster, \
            Client(cluster) as client, get_task_stream(client) as stream:
        summary = pipeline.run(cfg, quiet=True, scheduler=cluster.scheduler_address)
    assert summary.chunks_computed == 6
    keys = [str(r["key"]) for r in stream.data]
    assert len(keys) == 6 and all(k.startswith("batchfit-chunk") for k in keys), keys
