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
next run recomputes from scratch; region writes are idempotent. A marker
also records the size and hash of every chunk file written for it, so a
chunk file deleted or changed later is found (:func:`damaged_chunks`) and
recomputed. zarr and xarray ignore the ``.batchfit`` folder (it has no
``zarr.json``).

Bookkeeping files::

    <store>/.batchfit/created       JSON: fingerprint, input identity, variables,
                                    the top-level entries batchfit wrote
    <store>/.batchfit/done/<key>    JSON: the chunk's counts and its chunk files
    <store>/.batchfit/refit/...     the neighbour refit pass (batchfit.stack.refit)
    <parent>/.<name>.batchfit-lock  the job lock (batchfit.stack.lock)

How a store is created, reused or replaced: :mod:`batchfit.stack.prepare`.
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dask.array as dsa
import numpy as np
import xarray as xr
import zarr
from zarr import AsyncArray

from batchfit.errors import StoreError
from batchfit.stack import zarrio
from batchfit.stack.integrity import check_record, chunk_record
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
        found = zarr.open_group(str(path), mode="r").attrs.get(FINGERPRINT_ATTR)
    except Exception:  # not a zarr group at all
        return None
    return found if isinstance(found, str) else None


def read_manifest(marker: Path) -> dict | None:
    """The record in a ``created`` or ``creating`` marker, or None if there is none.

    Stores of older versions hold only the fingerprint text there.
    """
    try:
        text = marker.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    return found if isinstance(found, dict) else {"fingerprint": text.strip()}


def manifest(path) -> dict:
    """The record of a complete store: fingerprint, input identity, variables, entries."""
    return read_manifest(markers(path) / "created") or {}


def create(path, layout: ResultLayout, coords: xr.Dataset, grid: ChunkGrid,
           attrs: Mapping) -> None:
    """Write the full, empty layout of a store (metadata and coords only) into ``path``.

    ``path`` is a private build folder (:mod:`batchfit.stack.prepare` renames it
    into place), so files are written plainly, each once. ``coords`` carries the
    pixel coordinates (dims ``grid.dims``); ``attrs`` the global attributes. Data
    chunks are left unwritten: they read as fill values.
    """
    shape = grid.sizes + (layout.width,)
    packed = dsa.broadcast_to(layout.fill_row(), shape, chunks=grid.chunks + (layout.width,))
    ds = layout.dataset(packed, grid.dims, dict(coords.coords), dict(attrs))
    encoding = {}
    for name, fill in layout.fills().items():
        extra = ds[name].shape[len(grid.dims):]
        encoding[name] = {"chunks": grid.chunks + tuple(extra), "fill_value": fill}
    files: dict = {}
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec yet; we want
        # it anyway (one read opens the store) and the metadata never changes.
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        ds.to_zarr(zarr.storage.MemoryStore(files), mode="w", compute=False, zarr_format=3,
                   encoding=encoding, consolidated=True)
    # xarray rewrites each array's metadata a few times while it builds a store:
    # build it in memory, then write every file once (a third of the file-system
    # writes, which matters on network file systems).
    root = Path(path)
    for key, buffer in sorted(files.items()):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(buffer.to_bytes())


def read_grid(path) -> ChunkGrid:
    """The chunk grid of an existing store (from the ``status`` array)."""
    arr = zarr.open_array(str(path), path=CHUNK_VAR, mode="r")
    return ChunkGrid(_dim_names(arr), tuple(arr.shape), tuple(arr.chunks))


def _dim_names(arr: zarr.Array | AsyncArray) -> tuple[str, ...]:
    names = getattr(arr.metadata, "dimension_names", None) or ()
    return tuple(str(n) for n in names)


def write_region(path, ds: xr.Dataset, region: Mapping[str, slice]) -> None:
    """Write the data variables of an in-memory ``ds`` into ``region`` of the store.

    The arrays are opened and written concurrently on zarr's event loop
    (:func:`batchfit.stack.zarrio.open_arrays`).
    """
    names = [str(n) for n in ds.data_vars]
    writes = []
    for name, arr in zip(names, zarrio.open_arrays(path, names, "r+"), strict=True):
        dims = _dim_names(arr)
        sel = tuple(region.get(d, slice(None)) for d in dims)
        writes.append(arr.setitem(sel, np.asarray(ds[name].transpose(*dims).values,
                                                  dtype=arr.dtype)))
    zarrio.run_all(writes)


def mark_done(path, index: tuple[int, ...], summary: Mapping) -> None:
    """Record chunk ``index`` as finished; call only after its data is written.

    The marker holds ``summary`` and the size and hash of every chunk file
    written for it (:func:`batchfit.stack.integrity.chunk_record`).
    """
    files = chunk_record(path, manifest(path).get("variables", ()), index)
    atomic_write(markers(path) / "done" / ChunkGrid.key(index),
                 json.dumps({**summary, "files": files}, sort_keys=True))


def vouch(path, index: tuple[int, ...]) -> None:
    """Record the current chunk files of a done chunk (after a later pass rewrote them)."""
    marker = markers(path) / "done" / ChunkGrid.key(index)
    summary = json.loads(marker.read_text())
    summary.pop("files", None)
    mark_done(path, index, summary)


def done_keys(path) -> set[str]:
    """Marker names of the finished chunks (damaged or not: see :func:`damaged_chunks`)."""
    done = markers(path) / "done"
    if not done.is_dir():
        return set()
    return {p.name for p in done.iterdir() if not p.name.startswith(".")}


def damaged_chunks(path, grid: ChunkGrid) -> dict[str, str]:
    """Done chunks whose files no longer match their marker: ``key -> what is wrong``."""
    done = markers(path) / "done"
    keys = {ChunkGrid.key(i) for i in grid.indices()} & done_keys(path)
    damaged = {}
    for key in sorted(keys, key=lambda k: tuple(map(int, k.split("_")))):
        try:
            record = json.loads((done / key).read_text())
        except (OSError, ValueError):
            damaged[key] = "its done marker is unreadable"
            continue
        problem = check_record(path, record) if isinstance(record, dict) else "bad marker"
        if problem:
            damaged[key] = problem
    return damaged


def forget(path, keys) -> None:
    """Remove the done markers of ``keys`` so that the next run recomputes those chunks."""
    for key in keys:
        (markers(path) / "done" / key).unlink(missing_ok=True)


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
