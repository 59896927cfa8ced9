"""The job lock: one ``submit`` at a time on an output store.

The lock is a file beside the store, ``<parent>/.<name>.batchfit-lock``,
holding JSON with the host, pid, process start time and start time (UTC) of
the job that holds it. It is taken by hard-linking a fully written private
file to that name: ``link`` either creates the name or fails with EEXIST,
atomically, also on NFS (the classic NFS-safe form of
``O_CREAT | O_EXCL``); where hard links are not supported, ``O_CREAT |
O_EXCL`` itself is used. A reader therefore never sees half a lock.

A lock whose holder runs on this host and is dead (no such pid, or the pid
now belongs to a process started later) is stale and is broken: renamed away
atomically, so that two jobs breaking it at once cannot both win. A lock held
from another host is never broken: the message says how to remove it by hand
if that job is gone. :class:`JobLock` releases the lock when the job ends,
only if the file is still its own.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from batchfit.errors import StoreError

LOCK_SUFFIX = ".batchfit-lock"


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock: ``host``, ``pid``, ``started`` (UTC) and the process start tick.

    ``boot`` (the pid's start time in ticks since boot) tells a reused pid
    from the holder; ``token`` tells two locks of one process apart.
    """

    host: str
    pid: int
    started: str
    boot: int | None = None
    token: str = ""

    @classmethod
    def mine(cls) -> LockInfo:
        """The record of this process."""
        return cls(socket.gethostname(), os.getpid(),
                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), _start_tick(os.getpid()),
                   secrets.token_hex(8))

    def describe(self) -> str:
        """``'pid 123 on host n7, started 2026-12-02T05:10:00Z'``."""
        return f"pid {self.pid} on host {self.host}, started {self.started}"

    def is_stale(self) -> bool:
        """True when the holder ran on this host and is gone (a pid reused later counts)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's process
        tick = _start_tick(self.pid)
        return self.boot is not None and tick is not None and tick != self.boot


def lock_path(store) -> Path:
    """The lock file of the store at ``store``: beside it, hidden."""
    store = Path(store)
    return store.parent / f".{store.name}{LOCK_SUFFIX}"


def holder(store) -> LockInfo | None:
    """Who holds the lock of ``store`` now, or None (no lock, or a stale one)."""
    info = _read(lock_path(store))
    return None if info is None or info.is_stale() else info


class JobLock:
    """Context manager holding the lock of one output store.

    Raises
    ------
    StoreError
        On entry, when another live job holds the lock; the message names it
        (pid, host, start time) and the lock file.
    """

    def __init__(self, store) -> None:
        self.store = Path(store)
        self.path = lock_path(store)
        self.info = LockInfo.mine()

    def __enter__(self) -> JobLock:
        """Take the lock (see :meth:`acquire`)."""
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        """Release the lock, whether the job ended well or not."""
        self.release()

    def acquire(self) -> None:
        """Take the lock, breaking a stale one; raise StoreError if a live job holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if _create(self.path, json.dumps(asdict(self.info))):
                _clean_leftovers(self.path)
                return
            other = _read(self.path)
            if other is not None and not other.is_stale():
                raise StoreError(
                    f"output {str(self.store)!r} is in use by another batchfit job "
                    f"({other.describe()}); wait for it to finish. If that job is no "
                    f"longer running, delete {str(self.path)!r}")
            if other is not None:
                _break(self.path, other)
        raise StoreError(f"cannot take the lock {str(self.path)!r}: it keeps changing; "
                         "is another job starting on the same output?")

    def release(self) -> None:
        """Remove the lock file if it is still this job's."""
        if _read(self.path) == self.info:
            self.path.unlink(missing_ok=True)


def _clean_leftovers(path: Path) -> None:
    """Remove private files ``<lock>.[stale.]<host>.<pid>`` of dead processes on this host."""
    host = socket.gethostname()
    for leftover in path.parent.glob(f"{path.name}.*"):
        rest = leftover.name[len(path.name) + 1:].removeprefix("stale.")
        owner, _, pid = rest.rpartition(".")
        if owner == host and pid.isdigit() and LockInfo(host, int(pid), "").is_stale():
            leftover.unlink(missing_ok=True)


def _create(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` if it does not exist; False if it does."""
    tmp = path.with_name(f"{path.name}.{socket.gethostname()}.{os.getpid()}")
    tmp.write_text(text)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:  # no hard links here: fall back to O_EXCL
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        return _create_excl(path, text)
    finally:
        tmp.unlink(missing_ok=True)


def _create_excl(path: Path, text: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


def _read(path: Path) -> LockInfo | None:
    """The lock's record, or None when there is no lock file.

    An unreadable lock (written by something else) is reported as held by an
    unknown process, which is never stale: it must be removed by hand.
    """
    try:
        return LockInfo(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return LockInfo("unknown", -1, "unknown time (unreadable lock file)")


def _break(path: Path, stale: LockInfo) -> None:
    """Remove a stale lock, unless someone replaced it since it was read."""
    aside = path.with_name(f"{path.name}.stale.{socket.gethostname()}.{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # someone else broke it first
    if _read(aside) != stale:  # a live lock was taken in between: put it back
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def _start_tick(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])
