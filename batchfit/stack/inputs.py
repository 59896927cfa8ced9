"""The job's input: open it lazily, look up its variables, read one region.

A worker opens a job's input once, not once per task: :func:`open_cached`
keeps the last few opened inputs of the process, keyed on the path and a
signature of its files (:func:`file_signature`: inode, size and modification
time of the file, or of a zarr store's folder and metadata files). Opening
takes ~15 ms and ~20 MiB of xarray and zarr caches the first time; reopening
it per task cost time and let the worker's memory creep. An input regenerated
at the same path has new metadata files, so a new signature, and is opened
afresh; chunk data is always read from the files (the cache holds only the
lazy Dataset).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import overload

import xarray as xr

from batchfit.errors import InputError


def open_input(path: str | os.PathLike) -> xr.Dataset:
    """Open a zarr store or netCDF file lazily (dask-backed).

    Raises
    ------
    InputError
        The path cannot be opened as either.
    """
    path = Path(path)
    try:
        if not path.is_dir():
            return xr.open_dataset(str(path), chunks={})
        try:  # consolidated metadata is one read; fall back quietly when absent
            return xr.open_zarr(str(path), consolidated=True)
        except (KeyError, ValueError, FileNotFoundError):
            return xr.open_zarr(str(path), consolidated=False)
    except Exception as exc:
        raise InputError(f"cannot open input {str(path)!r}: {type(exc).__name__}: {exc}") from exc


CACHE_SIZE = 4
"""Inputs a process keeps open (:func:`open_cached`)."""
_META = ("zarr.json", ".zmetadata", ".zgroup", ".zattrs", ".zarray")
_cache: OrderedDict[tuple, xr.Dataset] = OrderedDict()
_lock = threading.Lock()
_opened = [0]


def file_signature(path: str | os.PathLike) -> tuple:
    """What changes when the input at ``path`` is rewritten: stats of its files.

    A file: its inode, size and modification time (ns). A folder (zarr): the
    same for the folder, its metadata files and those of its arrays
    (``zarr.json``, ``.zarray``, ``.zattrs``, ``.zgroup``, ``.zmetadata``).
    A missing path gives an empty signature.
    """
    path = Path(path)
    try:
        stats = [("", path.stat())]
        if path.is_dir():
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                if entry.name in _META:
                    stats.append((entry.name, entry.stat()))
                elif entry.is_dir():
                    stats += [(f"{entry.name}/{m}", (path / entry.name / m).stat())
                              for m in _META if (path / entry.name / m).exists()]
    except OSError:
        return ()
    return tuple((name, st.st_ino, st.st_size, st.st_mtime_ns) for name, st in stats)


def open_cached(path: str | os.PathLike) -> xr.Dataset:
    """:func:`open_input`, once per process for an unchanged input (module docstring).

    The Dataset is shared by the tasks of the process: read from it, never modify it.
    """
    key = (os.path.abspath(path), file_signature(path))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    ds = open_input(path)
    with _lock:
        for stale in [k for k in _cache if k[0] == key[0]]:  # the same path, rewritten
            del _cache[stale]
        _cache[key] = ds
        _opened[0] += 1
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return ds


def inputs_opened() -> int:
    """How many times :func:`open_cached` opened an input in this process."""
    return _opened[0]


@overload
def variable(ds: xr.Dataset, name: str, key: str) -> xr.DataArray: ...
@overload
def variable(ds: xr.Dataset, name: None, key: str) -> None: ...
@overload
def variable(ds: xr.Dataset, name: str | None, key: str) -> xr.DataArray | None: ...


def variable(ds: xr.Dataset, name: str | None, key: str) -> xr.DataArray | None:
    """The variable ``name`` of ``ds`` (None when ``name`` is None).

    Raises
    ------
    InputError
        ``name`` is not in ``ds``; the message names the config ``key`` and the
        available variables.
    """
    if name is None:
        return None
    if name not in ds.variables:
        raise InputError(f"{key}: variable {name!r} is not in the input; available: "
                         f"{', '.join(sorted(map(str, ds.data_vars))) or 'none'}")
    return ds[name]


def load_region(da: xr.DataArray, region: Mapping[str, slice]) -> xr.DataArray:
    """Load only ``region`` (dim -> slice; dims ``da`` lacks are ignored) into memory.

    The read runs in the calling thread (dask's synchronous scheduler). Inside
    a Dask worker the default would be the worker's client: the task would
    send its read to the scheduler as new tasks and leave the worker's thread
    pool while it waits, so the worker starts the next chunk meanwhile and
    single-threaded workers end up fitting several chunks at once.
    """
    return da.isel({d: s for d, s in region.items() if d in da.dims}).load(
        scheduler="synchronous")
