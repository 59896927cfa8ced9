"""The input identity (batchfit/stack/identity.py): what a resume must find unchanged."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from batchfit.stack.identity import N_SAMPLES, difference, input_identity

DIMS = ("y", "x")


def _cube(ny=6, nx=5, npts=8, seed=0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    counts = rng.normal(size=(ny, nx, npts))
    return xr.Dataset(
        {"counts": (("y", "x", "energy"), counts),
         "err": (("y", "x", "energy"), np.ones_like(counts)),
         "valid": (("y", "x"), np.ones((ny, nx), bool))},
        coords={"y": np.arange(ny), "x": np.arange(nx) * 0.5,
                "energy": np.linspace(-1, 1, npts)})


def _ident(ds: xr.Dataset, **kw) -> dict:
    return input_identity(ds.counts, DIMS, ds.err if kw.get("sigma") else None,
                          ds.valid if kw.get("mask") else None)


def test_same_input_read_back_lazily_has_the_same_identity(tmp_path):
    ds = _cube()
    ds.to_zarr(tmp_path / "a.zarr", zarr_format=3, consolidated=False)
    lazy = xr.open_zarr(tmp_path / "a.zarr", consolidated=False)
    assert _ident(lazy, sigma=True, mask=True) == _ident(ds, sigma=True, mask=True)
    assert difference(_ident(ds), _ident(lazy)) is None


def _sampled_pixel(ds: xr.Dataset) -> tuple[int, int]:
    # the last pixel is always among the samples (they span the map end to end)
    return ds.sizes["y"] - 1, ds.sizes["x"] - 1


@pytest.mark.parametrize("change, expected", [
    (lambda ds: ds.isel(x=slice(0, 4)), r"input data shape \[6, 5, 8\] -> \[6, 4, 8\]"),
    (lambda ds: ds.astype("float32"), r"input data dtype <f8 -> <f4"),
    (lambda ds: ds.assign_coords(energy=ds.energy * 2), r"coordinate 'energy' changed"),
    (lambda ds: ds.assign_coords(y=ds.y + 1), r"coordinate 'y' changed"),
    (lambda ds: ds.rename(x="col"), r"input data dims \['y', 'x', 'energy'\] -> "),
])
def test_changed_layout_is_named(change, expected):
    ds = _cube()
    new = change(ds)
    found = input_identity(new.counts, tuple(d for d in new.counts.dims if d != "energy"))
    assert re.search(expected, difference(_ident(ds), found))


def test_changed_values_of_a_sampled_curve_are_noticed():
    ds = _cube()
    new = ds.copy(deep=True)
    new.counts[_sampled_pixel(ds)][3] += 1e-12
    assert difference(_ident(ds), _ident(new)) == (
        "the values of the input data changed (sampled curves differ)")


def test_changed_sigma_and_mask_are_noticed():
    ds = _cube()
    new = ds.copy(deep=True)
    new.err[_sampled_pixel(ds)][0] = 2.0
    assert difference(_ident(ds, sigma=True), _ident(new, sigma=True)) == (
        "the values of the input sigma changed (sampled curves differ)")
    new = ds.copy(deep=True)
    new.valid[1, 1] = False  # the whole mask is hashed, not samples
    assert difference(_ident(ds, mask=True), _ident(new, mask=True)) == (
        "the values of the input mask changed")
    assert "sigma variable is used now" in difference(_ident(ds), _ident(ds, sigma=True))


def test_signature_is_a_sample_not_every_value():
    """The documented limit: a curve between the samples can change unnoticed."""
    ds = _cube()
    flat = np.unique(np.linspace(0, 29, N_SAMPLES).astype(int))
    unsampled = next(i for i in range(30) if i not in flat)
    new = ds.copy(deep=True)
    new.counts[np.unravel_index(unsampled, (6, 5))][0] += 1.0
    assert difference(_ident(ds), _ident(new)) is None


def test_store_of_an_older_version_has_no_identity():
    assert "older batchfit" in difference(None, _ident(_cube()))
