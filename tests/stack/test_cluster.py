"""Cluster set-up: the worker memory the chunk rule is bounded by."""

from __future__ import annotations

import time
from dataclasses import dataclass

import dask
import psutil
import pytest
from distributed import Client, LocalCluster

from batchfit.config import ClusterConfig
from batchfit.errors import ClusterError
from batchfit.stack import chunking
from batchfit.stack.cluster import (
    job_script,
    make_client,
    map_tasks,
    resident_memory,
    worker_budget,
    worker_memory,
)
from batchfit.stack.inputs import inputs_opened

MiB = 2**20


def test_worker_memory_from_the_config():
    assert worker_memory(ClusterConfig(memory_limit="300MiB")) == (300 * MiB, 1)
    assert worker_memory(ClusterConfig(memory_limit="1GiB", threads_per_worker=2)) == (2**30, 2)
    auto, _ = worker_memory(ClusterConfig())
    assert 0 < auto <= dask.utils.parse_bytes("1PiB")
    slurm = ClusterConfig(kind="slurm", jobs=3, cores=8, memory="32GiB", threads_per_worker=2)
    assert worker_memory(slurm) == (8 * 2**30, 2)  # 4 worker processes per job
    # validation requires an address; a scheduler address without workers is unknown too
    assert worker_memory(ClusterConfig.model_construct(kind="address")) == (None, 1)


def test_worker_memory_asks_a_running_scheduler():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, memory_limit="123MiB",
                      dashboard_address=None) as c:
        assert worker_memory(ClusterConfig(), scheduler=c.scheduler_address) == (123 * MiB, 2)


def test_worker_budget_measures_a_running_schedulers_workers():
    """In-process workers: their resident memory is this process's, plus a fresh worker's growth.

    The budget is 75% of the limit less that measurement; a limit without
    room above it is refused, naming the limit.
    """
    rss, warmed = resident_memory()
    assert abs(rss - psutil.Process().memory_info().rss) < 16 * MiB
    assert warmed == (inputs_opened() > 0)
    roomy = (chunking.resident_estimate(rss, warmed) + 60 * MiB) * 4 // 3
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, memory_limit=roomy,
                      dashboard_address=None) as c:
        resident = chunking.resident_estimate(*resident_memory())
        budget = worker_budget(ClusterConfig(), scheduler=c.scheduler_address)
        expect = min(int(0.75 * roomy) - resident, roomy // 8, chunking.TARGET_CHUNK_BYTES)
        assert abs(budget - expect) < 4 * MiB, (budget / MiB, expect / MiB)
    tight = chunking.resident_estimate(rss, warmed) * 4 // 3
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, memory_limit=tight,
                      dashboard_address=None) as c:
        with pytest.raises(ClusterError, match=f"limit {tight / MiB:.0f} MiB is too small"):
            worker_budget(ClusterConfig(), scheduler=c.scheduler_address)


@pytest.mark.slow
def test_local_workers_get_batchfits_memory_thresholds():
    """Spill, pause and the profiler are off in the workers a job starts; terminate stays.

    The profiler's history (1000 one-second call trees) grew a worker by
    ~0.22 MiB/s: after a task and two profile cycles, no history is kept.
    """
    def state(dask_worker):
        m = dask_worker.memory_manager
        return (m.memory_target_fraction, m.memory_spill_fraction, m.memory_pause_fraction,
                dask.config.get("distributed.worker.memory.terminate"),  # the nanny's
                len(dask_worker.profile_history))

    cfg = ClusterConfig(n_workers=1, memory_limit="1GiB")
    with make_client(cfg) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        time.sleep(2.5)  # the profiler's cycle is 1 s
        assert list(client.run(state).values()) == [(False, False, False, 0.95, 0)]


def test_job_queue_workers_get_the_same_thresholds():
    text = job_script(ClusterConfig(kind="slurm", jobs=1, cores=2, memory="8GiB"))
    for line in ("export DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE=False",
                 "export DASK_DISTRIBUTED__WORKER__MEMORY__SPILL=False",
                 "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False"):
        assert line in text


def test_map_tasks_releases_each_finished_task():
    """The worker forgets a task once its result is yielded, not at the end of the job."""
    tasks = [Task(str(i)) for i in range(12)]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as c, Client(c) as client:
        worker = next(iter(c.workers.values()))
        results = map_tasks(client, square, tasks, prefix="t")
        got = [next(results) for _ in tasks]  # the generator is still open
        deadline = time.monotonic() + 10
        while worker.state.tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not worker.state.tasks, list(worker.state.tasks)
        assert sorted(got) == [int(t.key) ** 2 for t in tasks]
        assert list(results) == []


@dataclass(frozen=True)
class Task:
    key: str


def square(task: Task) -> int:
    return int(task.key) ** 2
