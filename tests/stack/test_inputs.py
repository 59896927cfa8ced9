"""The input cache of a worker process: one open per input, a rewritten input is noticed."""

from __future__ import annotations

import numpy as np
import pytest

from batchfit.stack import inputs
from batchfit.stack.synthetic import make_cube, write_cube

REGION = {"y": slice(1, 3), "x": slice(0, 4)}


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty cache for the test (the process's own is left alone)."""
    from collections import OrderedDict

    monkeypatch.setattr(inputs, "_cache", OrderedDict())
    return inputs._cache


def test_an_unchanged_input_is_opened_once(tmp_path, fresh_cache):
    path = tmp_path / "cube.zarr"
    write_cube(make_cube(4, 6, 16, seed=1), path, {"y": 2, "x": 3})
    before = inputs.inputs_opened()
    first = inputs.open_cached(path)
    assert inputs.open_cached(str(path)) is first
    assert inputs.inputs_opened() == before + 1
    np.testing.assert_array_equal(inputs.load_region(first["counts"], REGION).values,
                                  inputs.open_input(path)["counts"].isel(REGION).values)


@pytest.mark.parametrize("shape", [(4, 6, 16), (5, 6, 16)], ids=["same shape", "new shape"])
def test_an_input_regenerated_at_the_same_path_is_reopened(tmp_path, fresh_cache, shape):
    """Other values (and another shape) written at the same path: the task reads the new ones."""
    path = tmp_path / "cube.zarr"
    write_cube(make_cube(4, 6, 16, seed=1), path, {"y": 2, "x": 3})
    old = inputs.open_cached(path)
    new_cube = make_cube(*shape, seed=2)
    write_cube(new_cube, path, {"y": 2, "x": 3})  # replaces the store (mode "w")
    ds = inputs.open_cached(path)
    assert ds is not old and ds.sizes["y"] == shape[0]
    np.testing.assert_array_equal(inputs.load_region(ds["counts"], REGION).values,
                                  new_cube["counts"].isel(REGION).values)
    assert len(fresh_cache) == 1  # the stale entry of the same path is dropped


def test_a_rewritten_netcdf_file_is_reopened(tmp_path, fresh_cache):
    """A netCDF handle would keep reading the replaced file: the new file is opened."""
    path = tmp_path / "cube.nc"
    first, second = make_cube(4, 6, 16, seed=1), make_cube(4, 6, 16, seed=2)
    first.to_netcdf(path, engine="h5netcdf")
    old = inputs.open_cached(path)
    inputs.load_region(old["counts"], REGION)
    path.unlink()
    second.to_netcdf(path, engine="h5netcdf")
    ds = inputs.open_cached(path)
    assert ds is not old
    np.testing.assert_array_equal(inputs.load_region(ds["counts"], REGION).values,
                                  second["counts"].isel(REGION).values)


def test_the_signature_follows_the_metadata_files(tmp_path):
    path = tmp_path / "cube.zarr"
    write_cube(make_cube(4, 6, 16, seed=1), path, {"y": 2, "x": 3})
    sig = inputs.file_signature(path)
    names = {name for name, *_ in sig}
    assert {"", "zarr.json", "counts/zarr.json"} <= names
    assert inputs.file_signature(path) == sig
    (path / "counts" / "zarr.json").write_text((path / "counts" / "zarr.json").read_text())
    assert inputs.file_signature(path) != sig
    assert inputs.file_signature(tmp_path / "missing.zarr") == ()


def test_the_cache_keeps_a_few_inputs(tmp_path, fresh_cache):
    paths = [tmp_path / f"c{i}.zarr" for i in range(inputs.CACHE_SIZE + 2)]
    for i, path in enumerate(paths):
        write_cube(make_cube(2, 2, 8, seed=i), path, {"y": 2, "x": 2})
        inputs.open_cached(path)
    assert len(fresh_cache) == inputs.CACHE_SIZE
    assert {k[0] for k in fresh_cache} == {str(p) for p in paths[2:]}
