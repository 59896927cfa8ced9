"""Cluster set-up: the worker memory the chunk rule is bounded by."""

from __future__ import annotations

import dask
from distributed import LocalCluster

from batchfit.config import ClusterConfig
from batchfit.stack.cluster import worker_memory

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
