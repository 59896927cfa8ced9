"""ds.batchfit: model cubes, components, residuals and pixels from a finished store alone."""

from __future__ import annotations

import shutil

import dask
import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback

import batchfit
from batchfit import pipeline
from batchfit.core import Parameters
from batchfit.errors import InputError, ModelError
from batchfit.models import Model, gaussian, linear
from batchfit.stack import open_results
from batchfit.stack.synthetic import make_cube, write_cube
from batchfit.status import Status

from .conftest import make_job

ENERGY_ATTRS = {"units": "eV", "long_name": "photon energy"}


class TaskCounter(Callback):
    """Counts the dask tasks that run while it is active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def _pretask(self, key, dsk, state):
        self.count += 1


def refuse_to_compute(dsk, keys, **kwargs):
    raise AssertionError("something was computed")


@pytest.fixture(scope="module")
def cube():
    cube = make_cube(6, 5, 40, seed=4, n_bad=1)
    cube.energy.attrs.update(ENERGY_ATTRS)
    return cube


@pytest.fixture(scope="module")
def store(tmp_path_factory, cube):
    """A finished store whose input has been moved away afterwards."""
    base = tmp_path_factory.mktemp("acc")
    path = base / "in.zarr"
    write_cube(cube, path, {"y": 3, "x": 5})
    job = make_job(path, base / "out" / "res.zarr", input__chunks={"y": 3, "x": 5},
                   cluster={"kind": "local", "n_workers": 1})
    pipeline.run(job, quiet=True)
    shutil.move(str(path), str(base / "moved.zarr"))
    return job.output.path


def per_pixel_eval(ds, model):
    """The reference: model.eval with a Parameters per pixel, in a Python loop."""
    x = ds.energy.values
    out = np.full(ds.status.shape + (x.size,), np.nan)
    for idx in np.ndindex(ds.status.shape):
        params = Parameters()
        for name in model.param_names:
            params.add(name, value=float(ds[name].values[idx]))
        out[idx] = model.eval(params, x)
    return out


def test_store_keeps_the_fit_coordinate_with_attrs(store, cube):
    ds = open_results(store)
    np.testing.assert_array_equal(ds.energy.values, cube.energy.values)
    assert ds.energy.attrs == ENERGY_ATTRS
    assert not (ds.status == Status.NOT_RUN).any()


def test_best_fit_from_the_store_alone_equals_model_eval(store):
    ds = open_results(store)
    best = ds.batchfit.best_fit()
    assert best.dims == ("y", "x", "energy") and best.energy.attrs == ENERGY_ATTRS
    model = gaussian("p1_") + linear("bg_")
    expected = per_pixel_eval(ds, model)
    got = best.values
    ok = ds.success.values
    assert ok.sum() == ok.size - 1 and np.isnan(got[~ok]).all()
    np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-12, atol=1e-12)


def test_components_sum_to_the_best_fit(store):
    ds = open_results(store)
    comps = ds.batchfit.components()
    assert list(comps.data_vars) == ["p1_", "bg_"]
    np.testing.assert_allclose((comps["p1_"] + comps["bg_"]).values,
                               ds.batchfit.best_fit().values, rtol=1e-13, atol=1e-13)


def test_residual_against_a_given_dataarray(store, cube):
    ds = open_results(store)
    with pytest.raises(InputError, match="is not there.*da="):
        ds.batchfit.residual()
    resid = ds.batchfit.residual(cube.counts.chunk({"y": 2}))
    expected = ds.batchfit.best_fit().values - cube.counts.transpose("y", "x", "energy").values
    np.testing.assert_allclose(resid.values, expected, rtol=1e-13, atol=1e-13)
    other = cube.counts.assign_coords(energy=cube.energy.values + 1.0)
    with pytest.raises(InputError, match="coordinate differs"):
        ds.batchfit.residual(other)


def test_one_pixel(store, cube):
    ds = open_results(store)
    one = ds.batchfit.pixel(cube.counts, y=2, x=1.5).compute()
    assert one.model.dims == ("energy",) and one.components.dims == ("component", "energy")
    np.testing.assert_array_equal(one.data.values, cube.counts.sel(y=2, x=1.5).values)
    np.testing.assert_allclose(one.residual.values, one.model.values - one.data.values)
    np.testing.assert_allclose(one.components.sum("component").values, one.model.values,
                               rtol=1e-13)
    assert float(one.redchi) == float(ds.redchi.sel(y=2, x=1.5))
    alone = ds.batchfit.pixel(y=2, x=1.5, data=False)
    assert "data" not in alone and np.allclose(alone.model.values, one.model.values)
    with pytest.raises(InputError, match="missing \\['x'\\]"):
        ds.batchfit.pixel(y=2, data=False)


def test_everything_is_lazy_until_compute(store, cube):
    ds = open_results(store)
    counts = cube.counts.chunk({"y": 3, "x": 5})
    with TaskCounter() as counter, dask.config.set(scheduler=refuse_to_compute):
        best = ds.batchfit.best_fit()
        comps = ds.batchfit.components()
        resid = ds.batchfit.residual(counts)
        one = ds.batchfit.pixel(counts, y=2, x=1.5)
        fwhm = ds.p1_fwhm * 1.0
    assert counter.count == 0
    for obj in (best, resid, one.model, one.residual, comps["p1_"], fwhm):
        assert obj.chunks is not None
    with TaskCounter() as counter:
        best.compute()
    assert counter.count > 0


def test_derived_maps_are_in_the_store(store):
    ds = open_results(store)
    np.testing.assert_allclose(ds.p1_fwhm.values, 2 * np.sqrt(2 * np.log(2)) * ds.p1_sigma,
                               rtol=1e-15)
    height = ds.p1_amplitude / (ds.p1_sigma * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(ds.p1_height.values, height.values, rtol=1e-15)
    assert "derived" in ds.p1_fwhm.attrs["long_name"]


# ------------------------------------------------------------------ fit() results
def decay(t, amp=2.0, tau=3.0):
    return amp * np.exp(-t / tau)


@pytest.fixture(scope="module")
def decay_cube():
    t = np.linspace(0, 10, 30)
    rng = np.random.default_rng(1)
    amp = rng.uniform(1, 3, (3, 4, 1))
    y = amp * np.exp(-t / 2.5) + rng.normal(0, 0.01, (3, 4, t.size))
    return xr.Dataset({"signal": (("y", "x", "t"), y), "err": (("y", "x", "t"),
                                                            np.full(y.shape, 0.01))},
                      coords={"t": ("t", t, {"units": "ns"})})


def test_fit_takes_a_dataset_and_the_accessor_works_on_its_result(decay_cube):
    model = Model(decay)
    ds = batchfit.fit(decay_cube, model, model.make_params(), dim="t", var="signal",
                      sigma="err")
    assert ds.t.attrs == {"units": "ns"}
    direct = batchfit.fit(decay_cube.signal, model, model.make_params(), dim="t",
                          sigma=decay_cube.err)
    xr.testing.assert_identical(ds, direct)
    with pytest.raises(InputError, match="records no input"):
        ds.batchfit.residual()
    resid = ds.batchfit.residual(decay_cube.signal)
    assert float(np.abs(resid).max()) < 0.05
    np.testing.assert_allclose(ds.batchfit.best_fit().values,
                               per_pixel_eval(ds.rename(t="energy"), model), rtol=1e-12)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({}, "needs var=.*variables: 'signal', 'err'"),
    ({"var": "sig"}, "has no variable 'sig'.*'signal', 'err'"),
    ({"var": "signal", "sigma": "error"}, "sigma='error' is not a variable"),
])
def test_fit_on_a_dataset_names_the_variables(decay_cube, kwargs, match):
    model = Model(decay)
    with pytest.raises(InputError, match=match):
        batchfit.fit(decay_cube, model, model.make_params(), dim="t", **kwargs)


def test_pickled_model_needs_to_be_given(decay_cube):
    namespace = {"__name__": "__main__", "np": np}
    exec("def f(t, amp=2.0, tau=3.0):\n    return amp * np.exp(-t / tau)\n", namespace)
    model = Model(namespace["f"])
    ds = batchfit.fit(decay_cube, model, model.make_params(), dim="t", var="signal")
    with pytest.raises(ModelError, match="allow_pickle"):
        ds.batchfit.best_fit()
    np.testing.assert_allclose(ds.batchfit.best_fit(model=model).values,
                               ds.batchfit.best_fit(model=Model(decay)).values)


def test_count_residuals_of_a_poisson_fit():
    """Deviance residuals square-sum to each pixel's chisqr (the deviance the fit
    minimized); Pearson residuals are (model - data)/sqrt(model), computed here."""
    t = np.linspace(0.0, 8.0, 40)
    rng = np.random.default_rng(7)
    amp = rng.uniform(20.0, 60.0, (3, 4, 1))
    counts = rng.poisson(amp * np.exp(-t / 2.0) + 0.5).astype(float)
    da = xr.DataArray(counts, dims=("y", "x", "t"), coords={"t": t})
    model = batchfit.models.exponential() + batchfit.models.constant()
    params = model.make_params(amplitude={"value": 30.0, "min": 0.0}, decay=1.5,
                               c={"value": 1.0, "min": 0.0})
    ds = batchfit.fit(da.chunk({"y": 2}), model, params, "t", cost="poisson").compute()
    assert (ds.status == Status.CONVERGED).all() and (counts == 0).any()
    assert ds.batchfit.cost == "poisson" and xr.Dataset().batchfit.cost == "chisqr"
    dev = ds.batchfit.residual(da, kind="deviance")
    np.testing.assert_allclose((dev**2).sum("t").values, ds.chisqr.values, rtol=1e-9)
    best = ds.batchfit.best_fit().values
    pearson = ds.batchfit.residual(da.chunk({"y": 2}), kind="pearson")
    assert pearson.chunks is not None and pearson.attrs["long_name"].startswith("(model")
    np.testing.assert_allclose(pearson.values, (best - counts) / np.sqrt(best), rtol=1e-12)
    assert np.all(np.sign(dev.values) == np.sign(best - counts))
    one = ds.batchfit.pixel(da, residual="deviance", y=1, x=2)
    np.testing.assert_array_equal(one.residual.values, dev.isel(y=1, x=2).values)
    with pytest.raises(InputError, match="residual\\(kind='chi'\\): use one of raw, pearson"):
        ds.batchfit.residual(da, kind="chi")
