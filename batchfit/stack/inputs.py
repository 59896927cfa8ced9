"""The job's input: open it lazily, look up its variables, read one region."""

from __future__ import annotations

import os
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
