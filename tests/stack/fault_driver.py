"""Kill ``batchfit submit`` at each file-system write of store creation in turn.

Usage: ``python fault_driver.py JOB_DIR STATES_DIR``

``JOB_DIR`` holds ``job.yaml`` (its output inside ``JOB_DIR``). For N = 1, 2, ...
this process forks a child that runs ``batchfit submit JOB_DIR/job.yaml`` with
every write counted from the moment it starts taking the job lock until the
store is prepared, and ends with ``os._exit`` (no cleanup, like SIGKILL) just
before write N. The parent copies ``JOB_DIR`` to ``STATES_DIR/N`` and resets
``JOB_DIR`` to just its config. It stops at the first N that the creation
survives, and prints ``writes <N - 1>``.

A write is anything that changes the file system: opening a file for
writing, rename/replace/link, mkdir of a new folder, unlink, rmdir. The
parent imports everything first and does no I/O with zarr or dask before
forking, so each child starts its own zarr event loop.
"""

from __future__ import annotations

import builtins
import io
import os
import shutil
import sys
import threading
from pathlib import Path

from batchfit import cli, pipeline
from batchfit.stack import lock

KILLED, SURVIVED = 137, 99


class Counter:
    """Counts writes once armed; exits the process just before write ``kill_at``."""

    def __init__(self, kill_at: int) -> None:
        self.kill_at, self.n, self.armed = kill_at, 0, False
        self.lock = threading.Lock()

    def write(self) -> None:
        if not self.armed:
            return
        with self.lock:
            self.n += 1
            if self.n == self.kill_at:
                os._exit(KILLED)


def _writes_mode(mode) -> bool:
    return any(c in str(mode) for c in "wax+")


def install(counter: Counter) -> None:
    """Route every file-system write through ``counter``."""
    real_open, real_os_open = builtins.open, os.open

    def open_(file, mode="r", *args, **kwargs):
        if _writes_mode(mode):
            counter.write()
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            counter.write()
        return real_os_open(path, flags, *args, **kwargs)

    def counted(real, only_if=None):
        def wrapper(*args, **kwargs):
            if only_if is None or "dir_fd" in kwargs or only_if(args[0]):
                counter.write()
            return real(*args, **kwargs)
        return wrapper

    builtins.open = io.open = open_
    os.open = os_open
    for name in ("replace", "rename", "link", "rmdir"):
        setattr(os, name, counted(getattr(os, name)))
    os.mkdir = counted(os.mkdir, only_if=lambda p: not os.path.exists(p))
    os.unlink = os.remove = counted(os.unlink, only_if=os.path.lexists)


def child(config: Path, kill_at: int) -> None:
    counter = Counter(kill_at)
    install(counter)
    acquire, prepare_store = lock.JobLock.acquire, pipeline.prepare_store

    def armed_acquire(self):
        counter.armed = True
        return acquire(self)

    def prepared(*args, **kwargs):
        prepare_store(*args, **kwargs)
        os._exit(SURVIVED)

    lock.JobLock.acquire = armed_acquire
    pipeline.prepare_store = prepared
    cli.main(["submit", str(config), "--quiet"])
    os._exit(1)  # not reached: the run ends in prepare_store


def reset(job_dir: Path) -> None:
    for entry in job_dir.iterdir():
        if entry.name == "job.yaml":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def main(job_dir: Path, states: Path) -> int:
    for n in range(1, 10_000):
        pid = os.fork()
        if pid == 0:
            try:
                child(job_dir / "job.yaml", n)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == SURVIVED:
            reset(job_dir)
            print(f"writes {n - 1}")
            return 0
        if code != KILLED:
            print(f"child {n} exited with {code}", file=sys.stderr)
            return 1
        shutil.copytree(job_dir, states / str(n), symlinks=True)
        reset(job_dir)
    return 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
