"""Tests of batchfit.report: PNG maps and summary.txt of a result store."""

from __future__ import annotations

import re
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

from batchfit.errors import BatchfitError, StoreError
from batchfit.report import (
    DPI,
    FIGSIZE,
    PlotDependencyError,
    default_out_dir,
    make_report,
    map_view,
    report,
)
from batchfit.status import Status, flag_attrs

mpl_image = pytest.importorskip("matplotlib.image")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_SHAPE = (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI))  # (rows, cols) = (450, 1000)
PARAMS = ("p1_center", "p1_sigma", "p1_fraction")  # p1_fraction: all NaN
MAGENTA = np.array([1.0, 0.0, 1.0])


def _status_field(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Mostly converged, with a sprinkling of every failure kind."""
    status = np.zeros(shape, dtype=np.int8).ravel()
    n = status.size
    picks = rng.permutation(n)
    status[picks[: n // 10]] = Status.MAX_NFEV
    status[picks[n // 10 : n // 10 + n // 20]] = Status.BAD_DATA
    status[picks[n // 10 + n // 20 : n // 10 + n // 20 + 3]] = Status.MASKED
    return status.reshape(shape)


def result_dataset(dims: tuple[str, ...], shape: tuple[int, ...], seed: int = 0) -> xr.Dataset:
    """A synthetic result Dataset in the section-5 layout, with failed and NaN pixels."""
    rng = np.random.default_rng(seed)
    status = _status_field(shape, rng)
    ok = status == Status.CONVERGED
    fitted = (status == Status.CONVERGED) | (status == Status.MAX_NFEV)
    truth = {"p1_center": 500.0 + 3 * rng.standard_normal(shape),
             "p1_sigma": 2.0 + 0.2 * rng.standard_normal(shape),
             "p1_fraction": np.full(shape, np.nan)}
    data = {}
    for name, value in truth.items():
        data[name] = (dims, np.where(fitted, value, np.nan))
        err = np.abs(0.05 * value) * (1 + 0.1 * rng.standard_normal(shape))
        data[f"{name}_stderr"] = (dims, np.where(ok, err, np.nan))
    redchi = np.where(fitted, rng.chisquare(50, shape) / 50, np.nan)
    data["chisqr"] = (dims, redchi * 50)
    data["redchi"] = (dims, redchi)
    data["nfev"] = (dims, np.where(fitted, 12, 0).astype(np.int32))
    data["success"] = (dims, ok)
    data["status"] = (dims, status, flag_attrs())
    coords = {d: np.arange(n) * 0.5 + 10 for d, n in zip(dims, shape, strict=True)}
    return xr.Dataset(data, coords=coords, attrs={"batchfit_version": "test"})


def to_store(ds: xr.Dataset, path) -> None:
    """Write like batchfit's stores do: zarr v3 with consolidated metadata."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        ds.to_zarr(path, mode="w", zarr_format=3, consolidated=True)


def write_store(tmp_path, dims=("y", "x"), shape=(12, 15), name="cube_fit.zarr"):
    ds = result_dataset(dims, shape)
    path = tmp_path / name
    to_store(ds, path)
    return path, ds


@pytest.fixture(scope="module")
def store_2d(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("store2d"))


@pytest.fixture(scope="module")
def report_2d(store_2d):
    path, _ = store_2d
    return make_report(path)


def _read_png(path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    return mpl_image.imread(path)


def _distinct_colours(img: np.ndarray) -> int:
    return len(np.unique(img[..., :3].reshape(-1, 3), axis=0))


def _has_colour(img: np.ndarray, rgb: np.ndarray) -> bool:
    return bool(np.all(np.abs(img[..., :3] - rgb) < 1e-6, axis=-1).any())


# ---------------------------------------------------------------- files


def test_writes_one_figure_per_parameter_plus_redchi_status_summary(store_2d, report_2d):
    path, _ = store_2d
    names = sorted(f.name for f in report_2d)
    expected = sorted([f"{p}.png" for p in PARAMS] + ["redchi.png", "status.png", "summary.txt"])
    assert names == expected
    assert all(f.parent == path.parent / "cube_fit_report" for f in report_2d)
    assert all(f.is_file() for f in report_2d)


@pytest.mark.parametrize("name", [*PARAMS, "redchi", "status"])
def test_png_is_valid_sized_and_not_blank(report_2d, name):
    png = next(f for f in report_2d if f.name == f"{name}.png")
    img = _read_png(png)
    assert img.shape[:2] == EXPECTED_SHAPE
    assert img[..., :3].std() > 0.01
    assert _distinct_colours(img) > 2


def test_nan_pixels_are_drawn_in_a_distinct_colour(report_2d):
    img = _read_png(next(f for f in report_2d if f.name == "p1_center.png"))
    assert _has_colour(img, MAGENTA)


def test_nan_colour_absent_without_nans(tmp_path):
    ds = result_dataset(("y", "x"), (8, 9))
    ds["p1_center"] = ds["p1_center"].fillna(500.0)
    ds["p1_center_stderr"] = ds["p1_center_stderr"].fillna(1.0)
    to_store(ds, tmp_path / "full.zarr")
    files = make_report(tmp_path / "full.zarr", tmp_path / "out")
    img = _read_png(next(f for f in files if f.name == "p1_center.png"))
    assert not _has_colour(img, MAGENTA)


def test_all_nan_parameter_does_not_crash_and_is_drawn(report_2d):
    img = _read_png(next(f for f in report_2d if f.name == "p1_fraction.png"))
    assert img.shape[:2] == EXPECTED_SHAPE
    assert _has_colour(img, MAGENTA)  # the all-NaN map is drawn in the NaN colour


def test_out_dir_argument_and_default(tmp_path):
    path, _ = write_store(tmp_path, shape=(4, 5), name="run1.zarr")
    assert default_out_dir(path) == tmp_path / "run1_report"
    files = make_report(path, tmp_path / "elsewhere" / "figs")
    assert {f.parent for f in files} == {tmp_path / "elsewhere" / "figs"}


# ---------------------------------------------------------------- summary


def _summary(report_files) -> str:
    return next(f for f in report_files if f.name == "summary.txt").read_text()


def test_summary_counts_match_the_store(store_2d, report_2d):
    _, ds = store_2d
    text = _summary(report_2d)
    status = ds["status"].values.ravel()
    n = status.size
    assert f"pixels: {n} (y=12, x=15)" in text
    ok = int(ds["success"].values.sum())
    assert f"success: {ok} of {n} ({100 * ok / n:.1f}%)" in text
    tried = int(((status != Status.MASKED) & (status != Status.NOT_RUN)).sum())
    assert f"fitted pixels (not masked, not run): {ok} of {tried} ({100 * ok / tried:.1f}%)" in text
    for code in Status:
        match = re.search(rf"^\s+{int(code)} {code.name.lower()}\s+(\d+)$", text, re.M)
        assert match, f"no count line for {code.name}"
        assert int(match.group(1)) == int((status == code).sum())


def test_summary_percentiles_match_numpy(store_2d, report_2d):
    _, ds = store_2d
    text = _summary(report_2d)
    values = ds["p1_center"].values
    p16, p50, p84 = np.percentile(values[np.isfinite(values)], [16, 50, 84])
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("p1_center"))
    assert f"{p50:.6g} [{p16:.6g}, {p84:.6g}]" in line.split("|")[0]
    redchi = ds["redchi"].values
    assert f"median redchi [16th, 84th percentile]: {np.nanmedian(redchi):.6g}" in text
    fraction = next(ln for ln in text.splitlines() if ln.strip().startswith("p1_fraction"))
    assert fraction.count("all NaN") == 2


def test_report_returns_text_for_the_cli(store_2d, tmp_path):
    path, _ = store_2d
    text = report(path, tmp_path / "cli")
    assert str(tmp_path / "cli") in text
    assert "5 figures" in text
    assert "success:" in text


# ---------------------------------------------------------------- other dims


def test_one_dimensional_store_gives_line_plots(tmp_path):
    path, ds = write_store(tmp_path, dims=("pixel",), shape=(60,))
    files = make_report(path)
    for f in files:
        if f.suffix == ".png":
            img = _read_png(f)
            assert img.shape[:2] == EXPECTED_SHAPE
            assert _distinct_colours(img) > 2
    assert "pixels: 60 (pixel=60)" in _summary(files)


def test_three_dimensional_store_shows_first_leading_index(tmp_path):
    path, ds = write_store(tmp_path, dims=("t", "y", "x"), shape=(3, 6, 7))
    files = make_report(path)
    assert len([f for f in files if f.suffix == ".png"]) == 5
    assert "pixels: 126 (t=3, y=6, x=7)" in _summary(files)
    view = map_view(xr.open_zarr(path)["p1_center"])
    assert view.values.shape == (6, 7)
    assert "t=10.0 (first of 3)" in view.note
    np.testing.assert_array_equal(view.values, ds["p1_center"].values[0])


# ---------------------------------------------------------------- errors


def test_missing_matplotlib_names_the_install_hint(store_2d, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(PlotDependencyError, match=re.escape('pip install "batchfit[plot]"')) as e:
        make_report(store_2d[0], tmp_path / "never")
    assert isinstance(e.value, BatchfitError)
    assert not (tmp_path / "never").exists()


def test_missing_store_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="no result store"):
        make_report(tmp_path / "nothing.zarr")


def test_not_a_result_store_is_a_store_error(tmp_path):
    to_store(xr.Dataset({"a": ("x", np.arange(3.0))}), tmp_path / "other.zarr")
    with pytest.raises(StoreError, match="missing variable"):
        make_report(tmp_path / "other.zarr")


def test_cli_report_command(store_2d, tmp_path):
    from click.testing import CliRunner

    from batchfit.cli import cli

    result = CliRunner().invoke(cli, ["report", str(store_2d[0]), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "status.png").is_file()


def test_status_meanings_from_attrs_or_fallback():
    from batchfit.report import status_meanings

    plain = xr.DataArray(np.zeros(3, np.int8), dims="x")
    assert status_meanings(plain) == {int(s): s.name.lower() for s in Status}
    custom = plain.assign_attrs(flag_values=[0, 7], flag_meanings="ok weird")
    assert status_meanings(custom) == {0: "ok", 7: "weird"}
    broken = plain.assign_attrs(flag_values=[0, 7], flag_meanings="only_one")
    assert status_meanings(broken)[int(Status.MASKED)] == "masked"
