"""Done markers vouch for chunk files (batchfit/stack/integrity.py and store.mark_done)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import xarray as xr

from batchfit.stack import store
from batchfit.stack.integrity import check_record, chunk_files, chunk_record
from batchfit.stack.layout import ResultLayout
from batchfit.stack.store import ChunkGrid, markers

GRID = ChunkGrid(("y", "x"), (4, 9), (2, 3))


@pytest.fixture
def made(tmp_path):
    """A created store with chunks (0, 0) and (1, 2) written and marked done."""
    out = tmp_path / "res.zarr"
    layout = ResultLayout(("a",), ("a",), covar=True)
    coords = xr.Dataset(coords={"y": np.arange(4), "x": np.arange(9)})
    store.create(out, layout, coords, GRID, {})
    store.atomic_write(markers(out) / "created",
                       json.dumps({"variables": list(layout.fills())}))
    for index in [(0, 0), (1, 2)]:
        region = GRID.region(index)
        packed = np.arange(6 * layout.width, dtype=float).reshape(2, 3, layout.width)
        packed[..., layout.index("status")] = 0
        store.write_region(out, layout.dataset(packed, GRID.dims, {}, {}), region)
        store.mark_done(out, index, {"pixels": 6})
    return out


def test_marker_lists_every_variables_chunk_file(made):
    record = json.loads((markers(made) / "done" / "1_2").read_text())
    assert record["pixels"] == 6
    assert sorted(record["files"]) == sorted(
        chunk_files(made, store.manifest(made)["variables"], (1, 2)))
    assert "covar/c/1/2/0/0" in record["files"] and "status/c/1/2" in record["files"]
    for name, found in record["files"].items():
        assert (made / name).stat().st_size == found[0]
    assert store.damaged_chunks(made, GRID) == {}


def test_fill_only_chunks_are_recorded_as_absent(made):
    # chunk (0, 1) was never written: zarr wrote no file for it, which is recorded as None
    record = chunk_record(made, store.manifest(made)["variables"], (0, 1))
    assert set(record.values()) == {None}
    assert check_record(made, {"files": record}) is None


@pytest.mark.parametrize("damage, reason", [
    (lambda f: f.unlink(), "status/c/1/2 is missing"),
    (lambda f: f.write_bytes(f.read_bytes()[:-3]), r"status/c/1/2 has \d+ bytes, \d+ were written"),
    (lambda f: f.write_bytes(bytes(b ^ 0xFF for b in f.read_bytes())),
     r"status/c/1/2 changed \(checksum differs\)"),
])
def test_damaged_chunk_is_named(made, damage, reason):
    damage(made / "status" / "c" / "1" / "2")
    found = store.damaged_chunks(made, GRID)
    assert list(found) == ["1_2"] and re.fullmatch(reason, found["1_2"])


def test_unreadable_or_old_marker_is_damage(made):
    (markers(made) / "done" / "0_0").write_text("{trunc")
    record = json.loads((markers(made) / "done" / "1_2").read_text())
    record.pop("files")
    (markers(made) / "done" / "1_2").write_text(json.dumps(record))
    assert store.damaged_chunks(made, GRID) == {
        "0_0": "its done marker is unreadable",
        "1_2": "its done marker lists no chunk files (written by an older batchfit)"}
    store.forget(made, ["0_0", "1_2"])
    assert store.done_keys(made) == set()


def test_vouch_records_files_rewritten_after_the_marker(made):
    f = made / "a" / "c" / "0" / "0"
    f.write_bytes(f.read_bytes() + b"x")  # as a later pass (the refit) would rewrite it
    assert "0_0" in store.damaged_chunks(made, GRID)
    store.vouch(made, (0, 0))
    assert store.damaged_chunks(made, GRID) == {}
    assert json.loads((markers(made) / "done" / "0_0").read_text())["pixels"] == 6
