"""Deciding whether a job may use its output location, and creating the store there.

What is at ``output.path`` is one of:

``absent``
    nothing, or an empty folder: the store is created.
``complete``
    a batchfit store (``.batchfit/created``). Reused when its config
    fingerprint and input identity match the job's; otherwise refused
    (exit 2) unless ``--overwrite``, which replaces it.
``partial``
    a batchfit store whose creation or removal was interrupted
    (``.batchfit`` without ``created``). It holds no results: a plain rerun
    removes what batchfit wrote there and creates the store again.
``copy``
    a zarr store with batchfit's attributes but no ``.batchfit`` markers (a
    copy a user made, maybe with extra variables). batchfit did not write
    it, so it is never deleted, even with ``--overwrite``.
``foreign``
    anything else. Never touched.

Creation is atomic: the store is built beside its place, in
``<parent>/.<name>.batchfit-new``, with a ``.batchfit/creating`` marker that
lists every top-level entry batchfit wrote, then renamed into place, and
``creating`` is renamed to ``created`` last. A kill before the rename leaves
only the build folder (removed by the next run); a kill after it leaves a
``partial`` store. Removal (``--overwrite``) first renames ``created`` to
``creating``, then deletes only the listed entries and the other markers;
other files in the folder stay, and so does ``creating`` while they are there
(without it, a half-replaced store would look like the user's own folder). Callers hold the job lock
(:class:`batchfit.stack.lock.JobLock`), so no two runs do this at once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from batchfit.errors import StoreError
from batchfit.stack.identity import difference
from batchfit.stack.integrity import file_digest, layout_damage, tree_record
from batchfit.stack.store import (
    MARKER_DIR,
    atomic_write,
    markers,
    read_fingerprint,
    read_manifest,
)

FORMAT = 2
"""Version of the ``created`` record (1: the fingerprint text only)."""


def state(path) -> str:
    """What is at ``path``: absent, complete, partial, copy or foreign (see the module)."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return "absent"
    if markers(path).is_dir():
        return "complete" if (markers(path) / "created").exists() else "partial"
    if path.is_dir() and read_fingerprint(path) is not None:
        return "copy"
    return "foreign"


def decide(path, record: Mapping, overwrite: bool) -> str:
    """What a job with ``record`` will do at ``path``: resume, create, rebuild or replace.

    ``record`` holds the job's ``fingerprint`` and ``input`` identity.

    Raises
    ------
    StoreError
        ``path`` holds a store of another config or input (without
        ``overwrite``), or something batchfit did not write (always).
    """
    found = state(path)
    where = f"output {str(path)!r}"
    if found == "copy":
        raise StoreError(
            f"{where} holds a zarr store with batchfit's attributes but without its "
            f"{MARKER_DIR} markers (a copy?); batchfit did not write it and will not delete "
            "it, even with --overwrite. Remove it yourself, or choose another output.path")
    if found == "foreign":
        raise StoreError(f"{where} exists and is not a batchfit store; refusing to touch it, "
                         "even with --overwrite. Choose another output.path")
    if found != "complete":
        return "create" if found == "absent" else "rebuild"
    if overwrite:
        return "replace"
    problem = _mismatch(path, record)
    if problem:
        raise StoreError(f"{where} {problem}; refusing to touch it. Use --overwrite to "
                         "replace it, or choose another output.path")
    return "resume"


def _mismatch(path, record: Mapping) -> str | None:
    stored = read_manifest(markers(path) / "created") or {}
    old, new = stored.get("fingerprint"), record["fingerprint"]
    if old != new:
        return (f"was made by a different config (fingerprint {str(old)[:12]}... vs "
                f"{new[:12]}...)")
    diff = difference(stored.get("input"), record["input"])
    return f"was made from a different input: {diff}" if diff else None


def prepare(path, record: Mapping, overwrite: bool,
            create: Callable[[Path, list | None], None]) -> str:
    """Make ``path`` ready for a job (the caller holds the job lock).

    Parameters
    ----------
    path : path-like
        The store location.
    record : mapping
        ``fingerprint``, ``input`` (identity), ``variables`` (the result
        variables, whose chunk files done markers vouch for) and ``chunks``.
    overwrite : bool
        Replace a complete batchfit store of another config or input.
    create : callable
        ``create(folder, chunks)`` writes the full, empty store layout into
        ``folder``, with the pixel chunks ``chunks`` (the record's when None).

    Returns
    -------
    str
        What was done: ``'resume'``, ``'create'``, ``'rebuild'`` or ``'replace'``.

    Raises
    ------
    StoreError
        As :func:`decide`, or a damaged layout file that cannot be restored
        (:func:`restore_layout`); nothing is touched then.
    """
    path = Path(path)
    _remove(build_folder(path))  # left by a run killed while building
    action = decide(path, record, overwrite)
    if action == "resume":
        restore_layout(path, create)
        return action
    if action != "create":
        remove_ours(path)
    _build(path, record, create)
    return action


def build_folder(path: Path) -> Path:
    """Where the store at ``path`` is built before it is renamed into place."""
    return path.parent / f".{path.name}.batchfit-new"


def _build(path: Path, record: Mapping, create: Callable[[Path, list | None], None]) -> None:
    tmp = build_folder(path)
    create(tmp, None)
    entries = sorted(os.listdir(tmp)) + [MARKER_DIR]
    manifest = {**record, "format": FORMAT, "entries": entries,
                "layout": tree_record(tmp, MARKER_DIR)}
    atomic_write(markers(tmp) / "creating", json.dumps(manifest, sort_keys=True))
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
    if not path.exists():
        os.rename(tmp, path)
    else:
        _move_in(tmp, path, entries[:-1])
    os.replace(markers(path) / "creating", markers(path) / "created")


def restore_layout(path: Path, create: Callable[[Path, list | None], None]) -> list[str]:
    """Put back the layout files (metadata, coordinates) deleted or changed since creation.

    The empty layout is built again beside the store with the store's own
    chunks; a damaged file is replaced by its rebuilt twin only when that is
    byte for byte the file recorded at creation, so a restored store is the
    store that was created. Returns the files restored.

    Raises
    ------
    StoreError
        A damaged file that the rebuild does not reproduce (another version of
        batchfit, zarr or xarray wrote the store): nothing is changed then.
    """
    recorded = read_manifest(markers(path) / "created") or {}
    damage = layout_damage(path, recorded)
    if not damage:
        return []
    tmp = build_folder(path)
    try:
        create(tmp, recorded.get("chunks"))
        for name, why in damage.items():
            if file_digest(tmp / name) != list(recorded["layout"][name]):
                raise StoreError(
                    f"output {str(path)!r}: {name} is {why} since the store was created and "
                    "cannot be rebuilt exactly (made by another version of batchfit, zarr "
                    "or xarray?); use --overwrite to start the store again")
        for name in damage:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / name, path / name)
    finally:
        _remove(tmp)
    return sorted(damage)


def _move_in(tmp: Path, path: Path, entries: list[str]) -> None:
    """Move a built store into a folder that holds other files: the marker first."""
    clash = [e for e in entries if (path / e).exists()]
    if clash:
        raise StoreError(f"output {str(path)!r} holds {clash[0]!r}, which the new store "
                         "would overwrite; move it away or choose another output.path")
    markers(path).mkdir(exist_ok=True)  # may hold the 'creating' left by remove_ours
    os.replace(markers(tmp) / "creating", markers(path) / "creating")
    for name in entries:
        os.rename(tmp / name, path / name)
    shutil.rmtree(tmp)


def remove_ours(path) -> None:
    """Delete what batchfit wrote at ``path`` (a complete or partial store), nothing else.

    Until the folder holds nothing else, ``.batchfit/creating`` stays: it is what
    tells a half-removed store (with the user's files beside) from a user's folder.
    """
    path = Path(path)
    marks = markers(path)
    if (marks / "created").exists():  # from here on a kill leaves a 'partial' store
        os.replace(marks / "created", marks / "creating")
    elif not (marks / "creating").exists():  # made by an older version
        atomic_write(marks / "creating", json.dumps({"entries": _zarr_entries(path)}))
    listed = (read_manifest(marks / "creating") or {}).get("entries")
    for name in _zarr_entries(path) if listed is None else listed:
        if name != MARKER_DIR:
            _remove(path / name)
    if all(p.name == MARKER_DIR for p in path.iterdir()):
        _remove(path)  # nothing else was here
        return
    for leftover in marks.iterdir():
        if leftover.name != "creating":
            _remove(leftover)


def _zarr_entries(path: Path) -> list[str]:
    """Top-level zarr entries of a store of an older version (no list of entries)."""
    return [p.name for p in path.iterdir()
            if p.name == "zarr.json" or (p / "zarr.json").exists()]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
