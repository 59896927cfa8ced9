"""Typed access to the arrays of a zarr (format 3) store.

zarr's own accessors return unions (an array or a group, format 2 or 3
metadata); a result store holds format-3 arrays only, so these helpers check
that once and give the type checker a plain :class:`zarr.Array`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Literal

import zarr
from zarr import AsyncArray
from zarr.api.asynchronous import open_array as open_async
from zarr.core.sync import sync

from batchfit.stack.inputs import file_signature


def open_group(path: str | os.PathLike, mode: Literal["r", "r+"] = "r") -> zarr.Group:
    """The root group of the store at ``path`` (no consolidated metadata)."""
    return zarr.open_group(str(path), mode=mode, use_consolidated=False)


def array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group``; TypeError when it is a group."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise TypeError(f"{name!r} in {group.store} is a group, not an array")
    return node


def dims(arr: zarr.Array) -> tuple[str, ...]:
    """The dimension names of a format-3 array (xarray's dims of the variable)."""
    names = getattr(arr.metadata, "dimension_names", None)
    if names is None or any(n is None for n in names):
        raise TypeError(f"array {arr.name!r} has no dimension names: not written by xarray")
    return tuple(str(n) for n in names)


def open_arrays(path: str | os.PathLike, names: list[str],
                mode: Literal["r", "r+"] = "r") -> list[AsyncArray]:
    """The arrays ``names`` of the store at ``path``, opened concurrently.

    A result store has one array per parameter and statistic; opened one by
    one, zarr's per-array overhead cost a small task as much as its fit.
    Opened arrays are kept per process for the next task of the same store
    (:func:`store_token`): a store that was replaced (``--overwrite``, an
    interrupted creation rebuilt) has new metadata files and is opened anew.
    """
    token = store_token(path)
    have = {n: _OPENED.get((token, mode, n)) if token else None for n in dict.fromkeys(names)}
    missing = [n for n, a in have.items() if a is None]

    async def open_all() -> list[AsyncArray]:
        return list(await asyncio.gather(*(open_async(store=str(path), path=n, mode=mode)
                                           for n in missing)))
    opened = dict(zip(missing, sync(open_all()) if missing else [], strict=True))
    if token is not None:
        if len(_OPENED) > MAX_OPENED:
            _OPENED.clear()
        _OPENED.update({(token, mode, n): a for n, a in opened.items()})
    have.update(opened)
    return [a for a in map(have.__getitem__, names) if a is not None]


MAX_OPENED = 4096
"""Opened arrays a process keeps (:func:`open_arrays`); the cache is emptied beyond it."""
_OPENED: dict[tuple, AsyncArray] = {}


def store_token(path: str | os.PathLike) -> tuple | None:
    """What identifies one creation of the store at ``path`` (None: nothing there).

    Its absolute path and :func:`batchfit.stack.inputs.file_signature` (inode,
    size and modification time of the folder and its metadata files, the same
    signature that tells a worker its input was rewritten); :func:`open_arrays`
    caches nothing without it.
    """
    signature = file_signature(path)
    return (os.path.abspath(path), signature) if signature else None


def run_all(coroutines: list) -> None:
    """Run zarr coroutines (writes, say) concurrently on zarr's event loop."""
    async def gather() -> None:
        await asyncio.gather(*coroutines)
    sync(gather())
