"""Per-pixel settings from a job's ``init:`` store (values, ``_min``/``_max``/``_vary``)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from batchfit import pipeline
from batchfit.cli import main as cli_main
from batchfit.stack import fit, open_results

from .conftest import make_job, write_job


def _settings_store(path, cube, sigma_max, **extra):
    ds = xr.Dataset({"p1_sigma_max": (("y", "x"), sigma_max), **extra},
                    coords={"y": cube.y, "x": cube.x})
    ds.to_zarr(path, zarr_format=3, consolidated=False)
    return path


def test_job_uses_per_pixel_bounds_of_the_init_store(cube, cube_path, tmp_path):
    truth = cube.truth_p1_sigma.transpose("y", "x").values
    half = (np.arange(truth.size) % 2 == 0).reshape(truth.shape)
    sigma_max = np.where(half, 0.8 * truth, np.nan)
    init = _settings_store(tmp_path / "init.zarr", cube, sigma_max)
    job = make_job(cube_path, tmp_path / "out.zarr", init=str(init),
                   input__chunks={"y": 6, "x": 5})
    pipeline.run(job, quiet=True)
    res = open_results(job.output.path).load()
    ok = res.success.values
    np.testing.assert_array_equal(res.p1_sigma.values[half & ok], sigma_max[half & ok])
    assert np.isnan(res.p1_sigma_stderr.values[half & ok]).all()
    ref = fit(cube.counts, job.build_model(), job.build_params(), "energy",
              sigma=cube.counts_err, guess=True,
              init={"p1_sigma_max": xr.DataArray(sigma_max, dims=("y", "x"))})
    for name in ref.data_vars:
        assert np.array_equal(res[name].values, ref[name].transpose("y", "x").values,
                              equal_nan=ref[name].dtype.kind == "f"), name


def test_bad_per_pixel_bounds_exit_2_and_write_nothing(cube, cube_path, tmp_path, capsys):
    sigma_max = np.full((cube.sizes["y"], cube.sizes["x"]), 2.0)
    sigma_max[4, 3] = 0.01  # below the template's min of 0.05
    init = _settings_store(tmp_path / "init.zarr", cube, sigma_max)
    out = tmp_path / "out.zarr"
    path = write_job(tmp_path / "job.yaml", cube_path, out, init=str(init))
    assert cli_main(["submit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "p1_sigma_min > p1_sigma_max at 1 pixel(s), the first at y=4, x=1.5" in err
    assert "Traceback" not in err and not out.exists()
    with pytest.raises(Exception, match="has dims"):
        bad = _settings_store(tmp_path / "bad.zarr", cube, np.full(sigma_max.shape, 2.0),
                              p1_center=(("band",), np.zeros(3)))
        pipeline.plan(make_job(cube_path, out, init=str(bad)))


@pytest.mark.parametrize("extra, message", [
    ({"p1_sigmaa_vary": (("y", "x"), "ones")},
     "the variable 'p1_sigmaa_vary' sets the vary of 'p1_sigmaa', which is not a parameter"),
    ({"p1_center_min": (("y", "x"), "inf_at_2_3")},
     "init['p1_center_min'] is inf at 1 pixel(s), the first at y=2, x=1.5: a minimum of +inf"),
])
def test_misspelt_or_impossible_store_settings_exit_2(cube, cube_path, tmp_path, capsys,
                                                        extra, message):
    shape = (cube.sizes["y"], cube.sizes["x"])
    arrays = {"ones": np.ones(shape), "inf_at_2_3": np.zeros(shape)}
    arrays["inf_at_2_3"][2, 3] = np.inf
    extra = {k: (dims, arrays[name]) for k, (dims, name) in extra.items()}
    init = _settings_store(tmp_path / "init.zarr", cube, np.full(shape, 2.0), **extra)
    out = tmp_path / "out.zarr"
    path = write_job(tmp_path / "job.yaml", cube_path, out, init=str(init))
    assert cli_main(["submit", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("wrong", ["p1_center", "p1_sigma_min"])  # sorted before / after
def test_one_variable_of_another_shape_is_named_whatever_the_order(cube, cube_path, tmp_path,
                                                                    wrong):
    """The store is on the input's grid; its one odd variable is named, not the store refused.

    The grid check used to look at the first variable zarr listed, and zarr's
    listing order varies with the folder (this failed 1 run in 6 before the fix).
    """
    bad = _settings_store(tmp_path / "bad.zarr", cube, np.full((12, 10), 2.0),
                          **{wrong: (("band",), np.zeros(3))})
    with pytest.raises(Exception, match=rf"init\[{wrong!r}\] has dims \['band'\]"):
        pipeline.plan(make_job(cube_path, tmp_path / "out.zarr", init=str(bad)))


def test_job_passes_cost_and_scale_covar_to_the_workers(cube, cube_path, tmp_path):
    """fit.scale_covar and fit.cost reach fit_chunk: the store equals fit() with them."""
    counts = np.random.default_rng(4).poisson(
        np.clip(np.nan_to_num(cube.counts.values), 0, None) * 30).astype(float)
    data = cube.assign(counts=(cube.counts.dims, counts)).drop_vars("counts_err")
    path = tmp_path / "counts.zarr"
    data.to_zarr(path, zarr_format=3, consolidated=False)
    job = make_job(path, tmp_path / "out.zarr", input__sigma=None,
                   fit={"engine": "lm", "cost": "poisson", "scale_covar": False},
                   input__chunks={"y": 12, "x": 10})
    pipeline.run(job, quiet=True)
    res = open_results(job.output.path).load()
    ref = fit(data.counts, job.build_model(), job.build_params(), "energy", guess=True,
              cost="poisson")
    assert float(res.success.mean()) > 0.9
    for name in ("p1_center", "p1_center_stderr", "chisqr", "aic", "ndata"):
        np.testing.assert_array_equal(res[name].values, ref[name].values, err_msg=name)
