"""Typed zarr access: arrays opened once per store creation and process."""

from __future__ import annotations

import shutil

import numpy as np
import zarr

from batchfit.stack import zarrio


def _make(path, size: int, chunk: int) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.create_array("v", shape=(size,), chunks=(chunk,), dtype="f8", fill_value=np.nan)


def test_arrays_are_opened_once_per_store(tmp_path):
    path = tmp_path / "s.zarr"
    _make(path, 8, 4)
    first = zarrio.open_arrays(path, ["v"], "r+")
    again = zarrio.open_arrays(path, ["v", "v"], "r+")
    assert again[0] is first[0] and again[1] is first[0]
    assert zarrio.open_arrays(path, ["v"], "r")[0] is not first[0]  # by mode


def test_a_replaced_store_is_opened_anew(tmp_path):
    """Same path, same array name, another shape: the cached array must not be used."""
    path = tmp_path / "s.zarr"
    _make(path, 8, 4)
    old = zarrio.open_arrays(path, ["v"], "r+")[0]
    shutil.rmtree(path)
    _make(path, 20, 5)
    new = zarrio.open_arrays(path, ["v"], "r+")[0]
    assert new is not old and new.shape == (20,)
    zarrio.run_all([new.setitem(slice(15, 20), np.arange(5.0))])
    np.testing.assert_array_equal(zarr.open_array(str(path), path="v")[15:], np.arange(5.0))


def test_no_root_metadata_no_cache(tmp_path):
    assert zarrio.store_token(tmp_path / "absent.zarr") is None
