"""batchfit.stack.fit: xarray in, result Dataset out; numpy and dask alike."""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback

from batchfit.errors import InputError
from batchfit.models import gaussian, linear
from batchfit.stack import fit
from batchfit.status import Status, flag_attrs

from .conftest import PARAMS, assert_same_store


@pytest.fixture(scope="module")
def model():
    return gaussian(prefix="p1_") + linear(prefix="bg_")


@pytest.fixture(scope="module")
def params(model):
    return model.make_params(p1_sigma={"value": 1.0, "min": 0.05})


@pytest.fixture(scope="module")
def eager(cube, model, params):
    return fit(cube.counts, model, params, "energy", sigma=cube.counts_err, guess=True,
               covar=True)


def test_recovers_truth_within_stderr(cube, eager):
    ok = eager.status == Status.CONVERGED
    assert int(ok.sum()) == cube.sizes["y"] * cube.sizes["x"] - 2
    for name in PARAMS:
        z = np.abs(eager[name] - cube[f"truth_{name}"]) / eager[f"{name}_stderr"]
        assert float(z.where(ok).max()) < 5.0, name


def test_layout_dtypes_coords_attrs(cube, eager, params):
    for name in PARAMS:
        assert eager[name].dtype == np.float64
        assert eager[f"{name}_stderr"].dtype == np.float64
    assert eager.chisqr.dtype == eager.redchi.dtype == np.float64
    assert eager.nfev.dtype == eager.ndata.dtype == eager.nfree.dtype == np.int32
    assert eager.aic.dtype == eager.bic.dtype == np.float64
    assert eager.success.dtype == bool
    assert eager.status.dtype == np.int8
    assert eager.status.attrs["flag_values"] == flag_attrs()["flag_values"]
    assert eager.status.attrs["flag_meanings"].split()[Status.MASKED] == "masked"
    assert eager.status.dims == ("y", "x")
    np.testing.assert_array_equal(eager.x, cube.x)
    # the fit dim's coordinate is kept (with its attrs) but no variable uses it
    xr.testing.assert_identical(eager.energy.reset_coords(drop=True),
                                cube.energy.reset_coords(drop=True))
    assert not any("energy" in v.dims for v in eager.data_vars.values())
    assert eager.covar.dims == ("y", "x", "param", "param_")
    assert list(eager.param.values) == list(PARAMS)
    assert eager.attrs["fit_dim"] == "energy"
    assert type(params)().loads(eager.attrs["template"]).valuesdict() == params.valuesdict()


def test_bad_pixels_are_flagged(eager):
    flat = eager.status.values.ravel()
    assert list(flat[:2]) == [Status.BAD_DATA] * 2
    assert not eager.success.values.ravel()[:2].any()
    assert np.isnan(eager.p1_center.values.ravel()[:2]).all()


def test_covar_diagonal_is_stderr_squared(eager):
    ok = eager.status.values == Status.CONVERGED
    for i, name in enumerate(PARAMS):
        var = eager.covar.values[..., i, i][ok]
        np.testing.assert_allclose(np.sqrt(var), eager[f"{name}_stderr"].values[ok], rtol=1e-10)


@pytest.mark.parametrize("chunks", [{"y": 5, "x": 3}, {"y": 1, "x": 10, "energy": 7}])
def test_dask_equals_numpy(cube, model, params, eager, chunks):
    lazy = fit(cube.counts.chunk(chunks), model, params, "energy",
               sigma=cube.counts_err.chunk(chunks), guess=True, covar=True)
    assert isinstance(lazy.p1_center.data, dsa.Array)
    assert_same_store(lazy.compute(), eager)


def test_dask_graph_is_not_computed(cube, model, params):
    ran = []

    class Count(Callback):
        def _pretask(self, key, dask, state):
            ran.append(key)

    data = cube.counts.chunk({"y": 4})
    with Count():
        lazy = fit(data, model, params, "energy", guess=True)
    assert ran == []
    assert all(isinstance(v.data, dsa.Array) for v in lazy.data_vars.values())
    with Count(), dask.config.set(scheduler="synchronous"):
        lazy.status.compute()
    assert ran


def test_masked_pixels(cube, model, params, eager):
    mask = (cube.x > 1.0) & (cube.y < 9)
    res = fit(cube.counts, model, params, "energy", sigma=cube.counts_err, guess=True,
              covar=True, mask=mask)
    off = ~mask.broadcast_like(res.status).values
    assert (res.status.values[off] == Status.MASKED).all()
    assert np.isnan(res.p1_amplitude.values[off]).all()
    assert np.isnan(res.covar.values[off]).all()
    assert (res.nfev.values[off] == 0).all() and not res.success.values[off].any()
    # the fitted pixels do not depend on which others were masked out
    for name in res.data_vars:
        assert np.array_equal(res[name].values[~off], eager[name].values[~off],
                              equal_nan=res[name].dtype.kind == "f"), name


def test_scalar_sigma_equals_constant_array(cube, model, params):
    data = cube.counts.isel(y=slice(4, 8))
    a = fit(data, model, params, "energy", sigma=0.05, guess=True)
    b = fit(data, model, params, "energy", sigma=xr.full_like(data, 0.05, dtype=float), guess=True)
    assert_same_store(a, b)


def test_fit_dim_first_and_no_coordinate(cube, model, params, eager):
    data = cube.counts.transpose("energy", "x", "y")
    res = fit(data, model, params, "energy", sigma=cube.counts_err, guess=True)
    assert res.status.dims == ("x", "y")
    np.testing.assert_array_equal(res.p1_center.T.values, eager.p1_center.values)


def test_slow_path_agrees_with_lm(cube, model, params, eager):
    few = cube.isel(y=slice(5, 7), x=slice(0, 4))
    slow = fit(few.counts, model, params, "energy", sigma=few.counts_err, guess=True,
               engine="leastsq")
    ref = eager.isel(y=slice(5, 7), x=slice(0, 4))
    assert (slow.status == Status.CONVERGED).all()
    for name in PARAMS:
        np.testing.assert_allclose(slow[name], ref[name], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(slow[f"{name}_stderr"], ref[f"{name}_stderr"], rtol=1e-3)


def test_init_from_earlier_result(cube, model, params, eager):
    res = fit(cube.counts, model, params, "energy", sigma=cube.counts_err, init=eager)
    ok = eager.status.values == Status.CONVERGED
    np.testing.assert_allclose(res.p1_center.values[ok], eager.p1_center.values[ok],
                               rtol=1e-6, atol=1e-8)
    assert res.nfev.values[ok].mean() < eager.nfev.values[ok].mean()


def test_unknown_dim_names_the_dims(cube, model, params):
    with pytest.raises(InputError, match=r"'wavelength'.*\['y', 'x', 'energy'\]"):
        fit(cube.counts, model, params, "wavelength")


def test_mask_over_fit_dim_is_refused(cube, model, params):
    with pytest.raises(InputError, match="mask must not have the fit dim"):
        fit(cube.counts, model, params, "energy", mask=cube.counts > 0)


def test_statistics_per_pixel_equal_fit_batch(cube, model, params, eager):
    """ndata, nfree, aic and bic of the Dataset are fit_batch's, pixel by pixel."""
    from batchfit import fit_batch

    y = cube.counts.transpose("y", "x", "energy").values.reshape(-1, cube.sizes["energy"])
    y = y.copy()
    y[5, :7] = np.nan  # a curve with NaN points: fewer data
    s = cube.counts_err.transpose("y", "x", "energy").values.reshape(y.shape)
    da = cube.counts.copy(data=y.reshape(cube.counts.transpose("y", "x", "energy").shape))
    ds = fit(da.transpose(*cube.counts.dims), model, params, "energy",
             sigma=cube.counts_err, guess=True)
    ref = fit_batch(model, params, cube.energy.values, y, sigma=s, guess=True)
    for name in ("ndata", "nfree", "aic", "bic", "chisqr"):
        got = ds[name].transpose("y", "x").values.ravel()
        np.testing.assert_array_equal(got, getattr(ref, name), err_msg=name)
    assert ds.ndata.values.ravel()[5] == cube.sizes["energy"] - 7


def test_poisson_cost_and_absolute_sigma_reach_fit_batch(cube, model, params):
    """fit(cost=..., scale_covar=...) gives fit_batch's numbers, eager and dask alike."""
    from batchfit import fit_batch

    counts = np.random.default_rng(2).poisson(
        np.clip(np.nan_to_num(cube.counts.transpose("y", "x", "energy").values), 0, None) * 20)
    da = xr.DataArray(counts.astype(float), dims=("y", "x", "energy"),
                      coords={"energy": cube.energy.values})
    y = da.values.reshape(-1, da.sizes["energy"])
    for kws in ({"cost": "poisson"}, {"sigma": 0.5, "scale_covar": False}):
        ref = fit_batch(model, params, da.energy.values, y, guess=True, **kws)
        for data in (da, da.chunk({"y": 5})):
            ds = fit(data, model, params, "energy", guess=True, **kws).compute()
            for name in ("p1_center", "p1_center_stderr", "chisqr", "aic", "nfree"):
                got = ds[name].values.ravel()
                want = ref.stderr["p1_center"] if name.endswith("stderr") else (
                    ref.values["p1_center"] if name == "p1_center" else getattr(ref, name))
                np.testing.assert_array_equal(got, want, err_msg=f"{kws} {name}")
    assert ref.success.mean() > 0.9
