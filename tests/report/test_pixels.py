"""The report's pixel page: which pixels, and a PNG with data, model, components, residual."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import batchfit
from batchfit.errors import InputError
from batchfit.models import gaussian, linear
from batchfit.report import make_report
from batchfit.report.pixels import choose_pixels, parse_pixel
from batchfit.stack.synthetic import make_cube, write_cube

mpl_image = pytest.importorskip("matplotlib.image")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOURS = {"data": (0.35, 0.35, 0.35), "model": (0x1F / 255, 0x77 / 255, 0xB4 / 255),
           "residual": (0xD6 / 255, 0x27 / 255, 0x28 / 255),
           "component p1_": (0xFF / 255, 0x7F / 255, 0x0E / 255),
           "component bg_": (0x2C / 255, 0xA0 / 255, 0x2C / 255)}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store as submit writes it: composite model, recorded input, one all-NaN pixel."""
    base = tmp_path_factory.mktemp("pix")
    cube = make_cube(5, 4, 40, seed=8, n_bad=1)
    write_cube(cube, base / "in.zarr", {"y": 5, "x": 4})
    model = gaussian("p1_") + linear("bg_")
    params = model.make_params(p1_sigma={"value": 1.0, "min": 0.05})
    ds = batchfit.fit(cube.counts, model, params, "energy", sigma=cube.counts_err, guess=True)
    ds.attrs.update(input_path=str(base / "in.zarr"), input_variable="counts")
    ds.to_zarr(base / "res.zarr", zarr_format=3, consolidated=False)
    return base / "res.zarr"


def test_parse_pixel():
    assert parse_pixel("y=3, x=1.5") == {"y": 3, "x": 1.5}
    with pytest.raises(InputError, match="dim=value"):
        parse_pixel("y3")


def test_choice_best_median_worst_failures_and_asked(store):
    ds = xr.open_zarr(store)
    chosen = choose_pixels(ds, [{"y": 2, "x": 1.0}])
    labels = [c[0] for c in chosen]
    assert labels[:3] == ["best redchi", "median redchi", "worst redchi"]
    assert labels.count("bad_data") == 1 and labels[-1] == "asked: y=2, x=1.0"
    redchi = ds.redchi.values
    best, worst = chosen[0][1], chosen[2][1]
    assert redchi[best["y"], best["x"]] == np.nanmin(redchi)
    assert redchi[worst["y"], worst["x"]] == np.nanmax(redchi)
    assert chosen[-1][1] == {"y": 2, "x": 2}
    with pytest.raises(InputError, match="x=7.25 is not a label"):
        choose_pixels(ds, [{"y": 2, "x": 7.25}])
    with pytest.raises(InputError, match="one value for each pixel dim"):
        choose_pixels(ds, [{"y": 2}])


def colour_pixels(image: np.ndarray, rgb, tol=0.06) -> int:
    return int((np.abs(image[..., :3] - np.asarray(rgb)) < tol).all(axis=-1).sum())


def test_pixel_page_is_a_png_with_every_curve_drawn(store, tmp_path):
    files = make_report(store, tmp_path / "rep", pixels=["y=2,x=1.0"])
    page = tmp_path / "rep" / "pixels.png"
    assert page in files
    assert page.read_bytes()[:8] == PNG_SIGNATURE
    image = mpl_image.imread(page)
    assert image.shape[0] > 500 and image.shape[1] > 1000
    for what, rgb in COLOURS.items():
        assert colour_pixels(image, rgb) > 200, what  # drawn, not a blank page


def test_without_the_input_the_page_shows_the_model_only(store, tmp_path):
    moved = store.parent / "in.zarr"
    moved.rename(store.parent / "away.zarr")
    try:
        make_report(store, tmp_path / "rep")
        image = mpl_image.imread(tmp_path / "rep" / "pixels.png")
        assert colour_pixels(image, COLOURS["model"]) > 200
        assert colour_pixels(image, COLOURS["residual"]) < 20
    finally:
        (store.parent / "away.zarr").rename(moved)


def test_poisson_fits_draw_the_pearson_residual():
    """For counts the panel's residual is (model - data)/sqrt(model), computed here."""
    from batchfit.report.pixels import _residual_kind
    from batchfit.stack.accessor import residual_of

    model = np.array([0.0, 0.5, 4.0, 100.0])
    data = np.array([0.0, 2.0, 1.0, 90.0])
    f, y = xr.DataArray(model, dims="e"), xr.DataArray(data, dims="e")
    np.testing.assert_array_equal(residual_of(f, y, _residual_kind("chisqr")).values,
                                  model - data)
    got = residual_of(f, y, _residual_kind("poisson")).values
    np.testing.assert_allclose(got[1:], [-1.5 / np.sqrt(0.5), 1.5, 1.0])
    assert got[0] == 0.0
