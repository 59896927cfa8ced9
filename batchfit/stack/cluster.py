"""Dask clusters for fit jobs: local, an existing scheduler, or a job queue.

Worker environment
------------------
Fits are single-threaded numpy code run in many worker processes, so every
worker gets ``OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = 1``
(more BLAS threads than cores only oversubscribe the machine).

Memory allocation: dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every
worker (``distributed.nanny.pre-spawn-environ``), which switches off glibc's
dynamic mmap threshold: every temporary array above 128 KiB is a fresh
``mmap`` that the kernel zero-fills page by page and unmaps on free. The LM
engine makes such temporaries (blocks of 2**18 points, 2 MiB each) every
iteration. By default batchfit therefore unsets that variable and registers
:class:`MallocTuning`: ``M_MMAP_THRESHOLD`` 4 MiB (engine temporaries come
from the heap and are reused; chunk-sized arrays are still mmapped) and
``M_TRIM_THRESHOLD`` 32 MiB (at most 1/8 of the worker's limit), and each task
ends with ``malloc_trim(0)`` (:func:`release_memory`) so that freed pages in
the middle of the heap go back to the system as well.

Measured on the 2-core dev machine (scripts/bench_submit.py, 256x256x128
cube, 2 workers): 1.87x the throughput of dask's default (29,948 against
16,012 fits/s). Worker RSS over 256 tasks of 64x64 pixels x 128 points (one
worker, sampled between batches): 276-352 MiB, against 194-245 MiB with
dask's default; an earlier setting (32 MiB mmap threshold, 256 MiB trim, no
``malloc_trim``) reached 519 MiB and still growing, and stalled a
larger-than-memory job. ``BATCHFIT_MALLOC_TUNING=0`` keeps dask's default.

Worker memory
-------------
:func:`worker_memory` tells the chunk planner (``batchfit.pipeline``) how much
memory one worker may use and how many tasks it runs at once: from the config
for local clusters (``memory_limit``, or dask's ``'auto'`` share of the
machine) and job queues (``memory`` per job split over its worker processes),
and by asking the scheduler for the workers' ``memory_limit`` for a running
scheduler. :func:`worker_budget` turns that into the bytes one task may use
(:func:`batchfit.stack.chunking.task_budget`); for a running scheduler it also
measures the workers' resident memory (:func:`resident_memory`).

What a worker keeps between tasks must not grow with the job. It grew by
~0.22 MiB per second of work (``scripts/bench_memory.py``): dask's profiler
keeps 1000 one-second call trees, ~220 MiB once full, which took workers to
86-91% of their limit. batchfit's workers therefore run with
:data:`WORKER_MEMORY`: no profiler, no spilling (dask manages no data of
ours), no pause (it would wait for memory no pause releases); the chunk rule
keeps the peak at or under 75%, and dask's terminate (95%) stays as the
safety net. Local workers get it through the nanny's config, job-queue
workers through ``DASK_...`` variables in the batch script; a running
scheduler's workers keep their own. :func:`map_tasks` releases each task once
its result is read, and a worker opens the input once
(:func:`batchfit.stack.inputs.open_cached`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from batchfit.batch import allocator
from batchfit.config import ClusterConfig
from batchfit.errors import ClusterError, ConfigError
from batchfit.stack.chunking import resident_estimate, task_budget
from batchfit.stack.inputs import inputs_opened
from batchfit.vocabulary import JOB_QUEUE_CLASSES, JOB_QUEUE_KINDS

THREAD_ENV = {"OMP_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1, "MKL_NUM_THREADS": 1,
              # glibc gives each thread that allocates (dask's task threads, zarr's I/O and
              # codec threads) its own arena, each keeping freed memory: measured +68 MiB
              # of worker RSS after 256 small tasks with the default, +38 MiB with 1
              "MALLOC_ARENA_MAX": 2}
MMAP_THRESHOLD = 4 * 2**20
TRIM_THRESHOLD = 32 * 2**20
WORKER_MEMORY = {"distributed.worker.memory.target": False,
                 "distributed.worker.memory.spill": False,
                 "distributed.worker.memory.pause": False,
                 "distributed.worker.profile.enabled": False}
"""Dask's memory thresholds for batchfit's workers (module docstring, "Worker memory")."""
WORKER_TIMEOUT = 60.0
"""Seconds a job waits for a running scheduler to have a worker
(environment variable ``BATCHFIT_WORKER_TIMEOUT`` overrides it)."""


def worker_timeout() -> float:
    """:data:`WORKER_TIMEOUT`, or ``BATCHFIT_WORKER_TIMEOUT`` when set."""
    return float(os.environ.get("BATCHFIT_WORKER_TIMEOUT", WORKER_TIMEOUT))


@contextlib.contextmanager
def scheduler_client(address: str, timeout: float | None = None) -> Iterator[Client]:
    """A client of the running scheduler at ``address`` that has at least one worker.

    Raises
    ------
    ClusterError
        The scheduler cannot be reached, or has no worker after ``timeout``
        seconds (default :func:`worker_timeout`): a clear message instead of a
        job that waits forever.
    """
    timeout = worker_timeout() if timeout is None else timeout
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address!r} within "
                           f"{timeout:g} s ({type(exc).__name__}: {exc})") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterError(
                f"the Dask scheduler at {address!r} has no workers after {timeout:g} s; "
                f"start some (`dask worker {address}`), or run without --scheduler "
                "to use a local cluster (BATCHFIT_WORKER_TIMEOUT sets the wait)") from None
        yield client


def tune_malloc(memory_limit: int | None = None) -> bool:
    """Set glibc's mmap and trim thresholds for this process; False if not glibc.

    With a ``memory_limit``, the trim threshold is at most 1/8 of it, so a
    small worker returns freed heap to the system instead of staying above
    dask's pause threshold with memory it no longer uses.
    """
    trim = min(TRIM_THRESHOLD, memory_limit // 8) if memory_limit else TRIM_THRESHOLD
    done = allocator.set_thresholds(min(MMAP_THRESHOLD, trim), trim)
    allocator.mark_tuned()  # so fit_batch keeps these worker thresholds
    return done


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim``); no-op elsewhere.

    Called after each task when :class:`MallocTuning` keeps temporaries in the heap:
    trimming returns the free pages in the middle of the heap too, which the
    trim threshold alone does not.
    """
    allocator.trim_heap()


class MallocTuning(WorkerPlugin):
    """Worker plugin: :func:`tune_malloc` in every worker process, at start."""

    name = "batchfit-malloc-tuning"

    def setup(self, worker) -> None:
        """Tune the allocator of the worker's process (trim bounded by its memory limit)."""
        manager = getattr(worker, "memory_manager", None)
        tune_malloc(getattr(manager, "memory_limit", None))


def worker_env_config(trim_env: bool = True) -> dict:
    """Dask config for local workers: the nanny's pre-spawn environment, :data:`WORKER_MEMORY`.

    ``trim_env=True`` (default) keeps dask's ``MALLOC_TRIM_THRESHOLD_=65536``;
    ``False`` unsets it, for :class:`MallocTuning` experiments (module docstring).
    """
    env: dict = dict(THREAD_ENV)
    env["MALLOC_TRIM_THRESHOLD_"] = 65536 if trim_env else None
    return {"distributed.nanny.pre-spawn-environ": env, **WORKER_MEMORY}


@contextlib.contextmanager
def make_client(cluster_cfg: ClusterConfig, workers: int | None = None,
                scheduler: str | None = None,
                malloc_tuning: bool | None = None) -> Iterator[Client]:
    """A connected ``distributed.Client`` for a job; closes what it started.

    Parameters
    ----------
    cluster_cfg : ClusterConfig
        The ``cluster`` section of a job config.
    workers : int, optional
        Overrides ``n_workers`` (local) or ``jobs`` (job queues).
    scheduler : str, optional
        Address of a running scheduler; overrides the kind.
    malloc_tuning : bool, optional
        Register :class:`MallocTuning` on the workers and unset dask's
        ``MALLOC_TRIM_THRESHOLD_``. Default: on, unless the environment variable
        ``BATCHFIT_MALLOC_TUNING=0`` (see the module docstring).

    Yields
    ------
    distributed.Client
    """
    if malloc_tuning is None:
        malloc_tuning = os.environ.get("BATCHFIT_MALLOC_TUNING", "1") != "0"
    with contextlib.ExitStack() as stack:
        stack.enter_context(dask.config.set(worker_env_config(trim_env=not malloc_tuning)))
        client = stack.enter_context(_open_client(cluster_cfg, workers, scheduler))
        if malloc_tuning:
            client.register_plugin(MallocTuning())
        yield client


@contextlib.contextmanager
def _open_client(cfg: ClusterConfig, workers: int | None,
                 scheduler: str | None) -> Iterator[Client]:
    kind = "address" if scheduler else cfg.kind
    if kind == "address":
        address = scheduler or cfg.address
        if not address:
            raise ConfigError("cluster.address: required when cluster.kind is 'address'")
        with scheduler_client(address) as client:
            yield client
    elif kind == "local":
        with _local_cluster(cfg, workers) as cluster, Client(cluster) as client:
            yield client
    elif kind in JOB_QUEUE_KINDS:
        with _jobqueue_cluster(cfg) as cluster, Client(cluster) as client:
            cluster.scale(jobs=workers or cfg.jobs or 1)
            yield client
    else:
        raise ConfigError(f"cluster.kind: unknown kind {kind!r}; use local, address, "
                          f"{', '.join(JOB_QUEUE_KINDS)}")


class Keyed(Protocol):
    """A task with a ``key``: its chunk's name."""

    @property
    def key(self) -> str:
        """The chunk's name, unique within a job."""
        ...


TASK_RETRIES = 1
"""A task whose worker died is run once more elsewhere before the job fails."""


def map_tasks(client: Client, func: Callable[..., Any], tasks: Sequence[Keyed],
              *more: Sequence[Any], prefix: str) -> Iterator[Any]:
    """Run ``func(task, *more)`` for each task on the cluster; yield results as they finish.

    Each task gets the dask key ``batchfit-<prefix>-<task.key>`` (shown on the
    dashboard) and :data:`TASK_RETRIES` retries. A finished task's future is
    released as soon as its result is yielded: a worker keeps the state and the
    result of every task a client holds (measured ~6 KiB each, 15 MiB over a
    job of 2,400 tasks per worker).
    """
    from distributed import as_completed

    keys = [f"batchfit-{prefix}-{t.key}" for t in tasks]
    pending = as_completed(client.map(func, tasks, *more, key=keys, retries=TASK_RETRIES))
    for fut in pending:  # as_completed drops a future once it is yielded
        result = fut.result()
        fut.release()  # so the worker forgets the task: ~6 KiB of worker memory each
        yield result


def default_workers(cpu_count: int | None = None) -> int:
    """Default number of local workers: ``min(2, cpu_count)``."""
    return max(1, min(2, cpu_count or os.cpu_count() or 1))


def _local_cluster(cfg: ClusterConfig, workers: int | None) -> LocalCluster:
    return LocalCluster(
        n_workers=workers or cfg.n_workers or default_workers(),
        threads_per_worker=cfg.threads_per_worker,
        processes=True,
        memory_limit=cfg.memory_limit or "auto",
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
        silence_logs=logging.ERROR,
    )


def worker_memory(cluster_cfg: ClusterConfig, workers: int | None = None,
                  scheduler: str | None = None) -> tuple[int | None, int]:
    """(memory limit per worker in bytes or None if unknown, threads per worker).

    Parameters
    ----------
    cluster_cfg : ClusterConfig
        The ``cluster`` section of a job config.
    workers : int, optional
        Overrides ``n_workers`` (unused: dask's ``'auto'`` share depends on threads).
    scheduler : str, optional
        Address of a running scheduler: its workers are asked (smallest limit,
        most threads).

    Raises
    ------
    ClusterError
        The scheduler cannot be reached or has no worker (:func:`scheduler_client`),
        so a job on it stops before anything is written.
    """
    kind = "address" if scheduler else cluster_cfg.kind
    threads = cluster_cfg.threads_per_worker
    if kind == "address":
        return _scheduler_memory(scheduler or cluster_cfg.address)
    if kind == "local":
        from distributed.worker_memory import parse_memory_limit

        # as each local worker's nanny does: 'auto' = the machine's memory * threads / cores
        limit = cluster_cfg.memory_limit or "auto"
        return parse_memory_limit(limit, threads, logger=logging.getLogger(__name__)), threads
    if kind in JOB_QUEUE_KINDS:
        processes = max(1, (cluster_cfg.cores or 1) // threads)
        memory = dask.utils.parse_bytes(cluster_cfg.memory or "4GiB")
        return memory // processes, threads
    return None, threads


def worker_budget(cluster_cfg: ClusterConfig, workers: int | None = None,
                  scheduler: str | None = None) -> int:
    """Bytes one task may use on the job's workers (:func:`~batchfit.stack.chunking.task_budget`).

    The limit and threads come from :func:`worker_memory`. What a worker keeps
    resident is :data:`~batchfit.stack.chunking.WORKER_RESIDENT`; for a running
    scheduler, its workers' resident memory is measured, and the largest plus
    what tasks add to a fresh worker (:func:`~batchfit.stack.chunking.resident_estimate`)
    is used when it is more (other libraries, another BLAS).

    Raises
    ------
    ClusterError
        The limit is too small for any task within 75% of it (the message gives the
        smallest limit that works), or the scheduler has no workers.
    """
    kind = "address" if scheduler else cluster_cfg.kind
    if kind != "address":
        limit, threads = worker_memory(cluster_cfg, workers)
        return task_budget(limit, threads)
    limit, threads, rss = _scheduler_memory(scheduler or cluster_cfg.address, measure=True)
    return task_budget(limit, threads, resident_estimate(*rss))


def resident_memory() -> tuple[int, bool]:
    """Resident bytes of the calling process and whether it ran batchfit tasks (on workers)."""
    import psutil

    return int(psutil.Process().memory_info().rss), inputs_opened() > 0


def _scheduler_memory(address: str | None, timeout: float | None = None,
                      measure: bool = False) -> tuple:
    """(smallest memory limit or None, most threads[, largest resident bytes if ``measure``])."""
    if not address:
        return (None, 1, None) if measure else (None, 1)
    with scheduler_client(address, timeout) as client:
        info = client.scheduler_info(n_workers=-1)["workers"].values()
        rss = max(client.run(resident_memory).values(), default=(None, False)) if measure else None
    limits = [w.get("memory_limit") or 0 for w in info]
    threads = max((w.get("nthreads") or 1 for w in info), default=1)
    limit = min(limits) if limits and min(limits) > 0 else None
    return (limit, threads, rss) if measure else (limit, threads)


def _jobqueue_cluster(cfg: ClusterConfig) -> Any:
    """A dask-jobqueue cluster from the config (no job is submitted until scaled)."""
    import dask_jobqueue

    cores = cfg.cores or 1
    kwargs = dict(
        cores=cores,
        processes=max(1, cores // cfg.threads_per_worker),
        memory=cfg.memory or "4GiB",
        walltime=cfg.walltime,
        queue=cfg.queue,
        account=cfg.account,
        job_extra_directives=list(cfg.job_extra_directives),
        job_script_prologue=[f"export {k}={v}" for k, v in THREAD_ENV.items()] + [
            f"export DASK_{k.upper().replace('.', '__').replace('-', '_')}={v}"
            for k, v in WORKER_MEMORY.items()],
        silence_logs=logging.ERROR,
        python=cfg.python or None,
    )
    cluster_class = getattr(dask_jobqueue, JOB_QUEUE_CLASSES[cfg.kind])
    return cluster_class(**{k: v for k, v in kwargs.items() if v is not None})


def job_script(cluster_cfg: ClusterConfig) -> str:
    """The batch script a job-queue cluster would submit for one worker job."""
    if cluster_cfg.kind not in JOB_QUEUE_KINDS:
        raise ConfigError(f"cluster.kind: job scripts exist for {', '.join(JOB_QUEUE_KINDS)}; "
                          f"got {cluster_cfg.kind!r}")
    with _jobqueue_cluster(cluster_cfg) as cluster:
        return cluster.job_script()
