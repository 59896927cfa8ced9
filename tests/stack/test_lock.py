"""The job lock (batchfit/stack/lock.py): one submit per output, stale locks broken safely."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict, replace

import pytest

from batchfit.errors import StoreError
from batchfit.stack.lock import JobLock, LockInfo, holder, lock_path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(store, info: LockInfo) -> None:
    lock_path(store).write_text(json.dumps(asdict(info)))


def test_second_lock_is_refused_naming_the_holder(tmp_path):
    store = tmp_path / "res.zarr"
    with JobLock(store) as first:
        with pytest.raises(StoreError) as info:
            JobLock(store).acquire()
        message = str(info.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
        assert first.info.started in message and str(lock_path(store)) in message
        assert holder(store) == first.info
    assert not lock_path(store).exists() and holder(store) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temp files left


def test_lock_of_a_dead_process_on_this_host_is_broken(tmp_path):
    store = tmp_path / "res.zarr"
    stale = replace(LockInfo.mine(), pid=_dead_pid())
    _plant(store, stale)
    assert stale.is_stale() and holder(store) is None
    with JobLock(store) as lock:
        assert holder(store) == lock.info != stale


def test_reused_pid_counts_as_stale(tmp_path):
    store = tmp_path / "res.zarr"
    me = LockInfo.mine()
    if me.boot is None:
        pytest.skip("no /proc: process start times unknown")
    reused = replace(me, boot=me.boot - 1, token="old")  # same pid, started at another time
    assert reused.is_stale()
    _plant(store, reused)
    with JobLock(store) as lock:
        assert holder(store) == lock.info


def test_lock_from_another_host_is_never_broken(tmp_path):
    store = tmp_path / "res.zarr"
    other = replace(LockInfo.mine(), host="elsewhere-node-7", pid=_dead_pid())
    _plant(store, other)
    with pytest.raises(StoreError, match="pid .* on host elsewhere-node-7"):
        JobLock(store).acquire()
    assert json.loads(lock_path(store).read_text()) == asdict(other)


def test_unreadable_lock_is_not_broken(tmp_path):
    store = tmp_path / "res.zarr"
    lock_path(store).write_text("not json")
    with pytest.raises(StoreError, match="unreadable lock file"):
        JobLock(store).acquire()
    assert lock_path(store).read_text() == "not json"


def test_release_leaves_another_jobs_lock(tmp_path):
    store = tmp_path / "res.zarr"
    lock = JobLock(store)
    lock.acquire()
    theirs = replace(LockInfo.mine(), token="theirs")
    _plant(store, theirs)  # as if ours had been broken and another job took it
    lock.release()
    assert holder(store) == theirs


def test_lock_is_released_when_the_job_raises(tmp_path):
    store = tmp_path / "res.zarr"
    with pytest.raises(RuntimeError), JobLock(store):
        raise RuntimeError("the job failed")
    assert not lock_path(store).exists()


def test_private_files_of_killed_jobs_are_cleaned_up(tmp_path):
    store = tmp_path / "res.zarr"
    host = socket.gethostname()
    name = lock_path(store).name
    dead = _dead_pid()
    for leftover in (f"{name}.{host}.{dead}", f"{name}.stale.{host}.{dead}",
                     f"{name}.other-host.{dead}"):
        (tmp_path / leftover).write_text("{}")
    with JobLock(store):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.other-host.{dead}"]
