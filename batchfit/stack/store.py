"""The zarr output store: layout, region writes, completion markers, resume.

A store is a zarr (format 3) group laid out like :func:`batchfit.stack.fit`'s
result. It is created once, in full, before any fit runs: every variable,
dim, coordinate and attribute, with zarr chunks equal to the job's pixel
chunks, so that two tasks never write the same zarr chunk. Unwritten chunks
read as their fill value: NaN, ``status = NOT_RUN``.

Completion is recorded per chunk by a marker file
``<store>/.batchfit/done/<i>_<j>...`` written (atomically, by rename) only
after all of that chunk's data is written. A killed job therefore leaves
either a finished chunk with its marker, or a chunk without marker that the
next run recomputes from scratch; region writes are idempotent. zarr and
xarray ignore the ``.batchfit`` folder (it has no ``zarr.json``).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dask.array as dsa
import numpy as np
import xarray as xr
import zarr

from batchfit.errors import StoreError
from batchfit.stack.layout import ResultLayout

MARKER_DIR = ".batchfit"
FINGERPRINT_ATTR = "batchfit_fingerprint"
CHUNK_VAR = "status"  # every store has it; its zarr chunks are the job's chunks


@dataclass(frozen=True)
class ChunkGrid:
    """The pixel chunks of a job: ``dims``, their ``sizes`` and ``chunks`` (per dim).

    A chunk is named by its index tuple; its region is a ``dim -> slice`` dict.
    """

    dims: tuple[str, ...]
    sizes: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of chunks along each dim."""
        return tuple(-(-s // c) for s, c in zip(self.sizes, self.chunks, strict=True))

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    def indices(self) -> Iterator[tuple[int, ...]]:
        """Every chunk index, in C order."""
        return itertools.product(*(range(n) for n in self.shape))

    def region(self, index: tuple[int, ...]) -> dict[str, slice]:
        """``dim -> slice`` of the pixels of chunk ``index``."""
        return {d: slice(i * c, min((i + 1) * c, s))
                for d, i, c, s in zip(self.dims, index, self.chunks, self.sizes, strict=True)}

    @staticmethod
    def key(index: tuple[int, ...]) -> str:
        """Marker file name of a chunk, e.g. ``'3_1'``."""
        return "_".join(str(i) for i in index)


def markers(path) -> Path:
    """The folder of a store's bookkeeping files (created, done and refit markers)."""
    return Path(path) / MARKER_DIR


def is_complete(path) -> bool:
    """True when a store at ``path`` was fully created (its layout is usable)."""
    return (markers(path) / "created").exists()


def read_fingerprint(path) -> str | None:
    """The fingerprint recorded in a store's attributes, or None if unreadable."""
    try:
        return zarr.open_group(str(path), mode="r").attrs.get(FINGERPRINT_ATTR)
    except Exception:  # not a zarr group at all
        return None


def prepare(path, fingerprint: str, overwrite: bool, create) -> str:
    """Make ``path`` ready for a job; returns ``'created'`` or ``'resumed'``.

    Parameters
    ----------
    path : path-like
        The store location.
    fingerprint : str
        The config's fingerprint; an existing store must carry the same one.
    overwrite : bool
        Delete whatever is at ``path`` and create afresh.
    create : callable
        ``create(path)`` writes the full layout (called when creating).

    Raises
    ------
    StoreError
        ``path`` holds a store made by another config, or something that is not
        a batchfit store, and ``overwrite`` is false. Nothing is touched then.
    """
    path = Path(path)
    check_reusable(path, fingerprint, overwrite)
    if is_complete(path) and not overwrite:
        return "resumed"
    _remove(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # output.path's folders are made
    create(path)
    markers(path).mkdir(parents=True, exist_ok=True)
    atomic_write(markers(path) / "created", fingerprint)
    return "created"


def check_reusable(path, fingerprint: str, overwrite: bool) -> None:
    """Raise StoreError if a job with ``fingerprint`` may not use ``path``."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    found = read_fingerprint(path)
    if overwrite:
        # --overwrite replaces batchfit stores (even half-created ones), never other data.
        if found is None and not markers(path).is_dir():
            raise StoreError(f"output {str(path)!r} exists and is not a batchfit store; "
                             "refusing to delete it even with --overwrite. Choose another "
                             "output.path")
        return
    if found == fingerprint:
        return
    what = ("was made by a different config (fingerprint "
            f"{found[:12]}... vs {fingerprint[:12]}...)") if found else "is not a batchfit store"
    raise StoreError(f"output {str(path)!r} {what}; refusing to touch it. "
                     "Use --overwrite to replace it, or choose another output.path")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def create(path, layout: ResultLayout, coords: xr.Dataset, grid: ChunkGrid,
           attrs: Mapping) -> None:
    """Write the full, empty layout of a store (metadata and coords only).

    ``coords`` carries the pixel coordinates (dims ``grid.dims``); ``attrs`` the
    global attributes. Data chunks are left unwritten: they read as fill values.
    """
    shape = grid.sizes + (layout.width,)
    packed = dsa.broadcast_to(layout.fill_row(), shape, chunks=grid.chunks + (layout.width,))
    ds = layout.dataset(packed, grid.dims, dict(coords.coords), attrs)
    encoding = {}
    for name, fill in layout.fills().items():
        extra = ds[name].shape[len(grid.dims):]
        encoding[name] = {"chunks": grid.chunks + tuple(extra), "fill_value": fill}
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec yet; we want
        # it anyway (one read opens the store) and the metadata never changes.
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        ds.to_zarr(str(path), mode="w", compute=False, zarr_format=3, encoding=encoding,
                   consolidated=True)


def read_grid(path) -> ChunkGrid:
    """The chunk grid of an existing store (from the ``status`` array)."""
    arr = zarr.open_array(str(path), path=CHUNK_VAR, mode="r")
    dims = tuple(arr.metadata.dimension_names)
    return ChunkGrid(dims, tuple(arr.shape), tuple(arr.chunks))


def write_region(path, ds: xr.Dataset, region: Mapping[str, slice]) -> None:
    """Write the data variables of an in-memory ``ds`` into ``region`` of the store."""
    group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    for name, var in ds.data_vars.items():
        arr = group[name]
        dims = tuple(arr.metadata.dimension_names)
        sel = tuple(region.get(d, slice(None)) for d in dims)
        arr[sel] = np.asarray(var.transpose(*dims).values, dtype=arr.dtype)


def mark_done(path, index: tuple[int, ...], summary: Mapping) -> None:
    """Record chunk ``index`` as finished; call only after its data is written."""
    done = markers(path) / "done"
    done.mkdir(parents=True, exist_ok=True)
    atomic_write(done / ChunkGrid.key(index), json.dumps(summary, sort_keys=True))


def done_keys(path) -> set[str]:
    """Marker names of the finished chunks."""
    done = markers(path) / "done"
    if not done.is_dir():
        return set()
    return {p.name for p in done.iterdir() if not p.name.startswith(".")}


def atomic_write(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` so that readers see all of it or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def open_results(path) -> xr.Dataset:
    """Open a result store as a (lazy) ``xr.Dataset``; same as ``xr.open_zarr(path)``."""
    if not Path(path).exists():
        raise StoreError(f"no result store at {str(path)!r}")
    return xr.open_zarr(str(path))
