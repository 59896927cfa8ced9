"""Typed access to the arrays of a zarr (format 3) store.

zarr's own accessors return unions (an array or a group, format 2 or 3
metadata); a result store holds format-3 arrays only, so these helpers check
that once and give the type checker a plain :class:`zarr.Array`.
"""

from __future__ import annotations

import os
from typing import Literal

import zarr


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
