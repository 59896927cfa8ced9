"""What a done marker vouches for: the chunk files written for one chunk.

The store's ``created`` marker also records every file of the empty layout
(metadata and coordinates, :func:`tree_record`); :func:`layout_damage` names
the ones deleted or changed since.

A chunk's done marker lists, for every result variable, the file zarr wrote
for that chunk (``<var>/c/<i>/<j>...``) with its size and BLAKE2b hash, or
``None`` when zarr wrote no file because the chunk holds only fill values
(zarr's ``write_empty_chunks=False``). :func:`check_record` compares the
files on disk with that record, so a chunk file deleted, truncated or changed
after its marker was written is found, by name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from batchfit.stack import zarrio

BLOCK = 1 << 20


def file_digest(path: Path) -> list | None:
    """``[size, blake2b hex]`` of a file, or None when it does not exist."""
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while block := f.read(BLOCK):
                h.update(block)
    except FileNotFoundError:
        return None
    return [path.stat().st_size, h.hexdigest()]


def chunk_files(store, variables: Iterable[str], index: tuple[int, ...]) -> list[str]:
    """Store-relative names of the files holding chunk ``index`` of each variable.

    Dims beyond the pixel dims (the covariance's) are one chunk each.
    """
    names = []
    variables = list(variables)
    for name, arr in zip(variables, zarrio.open_arrays(store, variables), strict=True):
        coords = tuple(index) + (0,) * (arr.ndim - len(index))
        encode = getattr(arr.metadata, "encode_chunk_key", None)
        if encode is None:  # format 2 metadata: not a store batchfit made
            raise ValueError(f"{name}: not a zarr format 3 array")
        names.append(f"{name}/{encode(coords)}")
    return names


def chunk_record(store, variables: Iterable[str], index: tuple[int, ...]) -> dict:
    """``{file: [size, hash] or None}`` of chunk ``index``: what its done marker vouches for."""
    root = Path(store)
    return {name: file_digest(root / name) for name in chunk_files(store, variables, index)}


def check_record(store, record: Mapping) -> str | None:
    """Why the chunk files no longer match a done marker's record, or None if they do."""
    files = record.get("files")
    if not isinstance(files, Mapping):
        return "its done marker lists no chunk files (written by an older batchfit)"
    root = Path(store)
    for name, expected in files.items():
        found = file_digest(root / name)
        if found == (list(expected) if expected is not None else None):
            continue
        if found is None:
            return f"{name} is missing"
        if expected is None:
            return f"{name} appeared after the chunk was done"
        if found[0] != expected[0]:
            return f"{name} has {found[0]} bytes, {expected[0]} were written"
        return f"{name} changed (checksum differs)"
    return None


def tree_record(root: Path, skip: str) -> dict[str, list | None]:
    """``{file: [size, hash]}`` of every file under ``root`` outside its folder ``skip``."""
    root = Path(root)
    found: dict[str, list | None] = {}
    for folder, subdirs, files in os.walk(root):
        if Path(folder) == root and skip in subdirs:
            subdirs.remove(skip)
        for name in files:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = file_digest(path)
    return dict(sorted(found.items()))


def layout_damage(store, record: Mapping) -> dict[str, str]:
    """Files of ``record['layout']`` (:func:`tree_record`) missing or changed: ``file -> why``.

    Empty when the record has no layout (a store of an older batchfit).
    """
    root = Path(store)
    damage = {}
    for name, expected in (record.get("layout") or {}).items():
        found = file_digest(root / name)
        if found is None:
            damage[name] = "missing"
        elif found != list(expected):
            damage[name] = "changed"
    return damage
