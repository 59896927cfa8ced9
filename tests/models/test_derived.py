"""Derived maps (fwhm, height): lmfit's values, the curves themselves, and lazy arrays."""

from __future__ import annotations

import dask.array as dsa
import lmfit.models as lm
import numpy as np
import pytest
import xarray as xr

from batchfit.models import gaussian, linear, lorentzian, moffat, pseudo_voigt, voigt

CASES = [
    (gaussian, lm.GaussianModel, {"amplitude": 2.0, "center": 0.3, "sigma": 0.7}),
    (lorentzian, lm.LorentzianModel, {"amplitude": 2.0, "center": 0.3, "sigma": 0.7}),
    (voigt, lm.VoigtModel, {"amplitude": 2.0, "center": 0.3, "sigma": 0.7, "gamma": 0.4}),
    (pseudo_voigt, lm.PseudoVoigtModel, {"amplitude": 2.0, "center": 0.3, "sigma": 0.7,
                                         "fraction": 0.3}),
    (moffat, lm.MoffatModel, {"amplitude": 2.0, "center": 0.3, "sigma": 0.7, "beta": 2.5}),
]


@pytest.mark.parametrize(("ours", "theirs", "values"), CASES, ids=[c[0].__name__ for c in CASES])
def test_derived_maps_equal_lmfits_tied_parameters(ours, theirs, values):
    model = ours(prefix="p_")
    got = model.derived_maps({f"p_{k}": v for k, v in values.items()})
    ref = theirs(prefix="p_").make_params()
    for k, v in values.items():  # lmfit ties voigt's gamma to sigma: untie it
        ref[f"p_{k}"].set(value=v, expr="")
    ref.update_constraints()
    assert model.derived_names == ["p_fwhm", "p_height"] == list(got)
    for name in ("p_fwhm", "p_height"):  # lmfit writes some constants with 7 digits
        assert got[name] == pytest.approx(ref[name].value, rel=1e-6), name


@pytest.mark.parametrize(("ours", "theirs", "values"), CASES, ids=[c[0].__name__ for c in CASES])
def test_height_is_the_peak_value_and_fwhm_its_width(ours, theirs, values):
    model = ours()
    d = model.derived_maps(values)
    c = values["center"]
    assert float(model(np.array([c]), **values)[0]) == pytest.approx(d["height"], rel=1e-12)
    if ours is not voigt and ours is not pseudo_voigt:  # those two: lmfit's approximations
        half = model(np.array([c - d["fwhm"] / 2, c + d["fwhm"] / 2]), **values)
        np.testing.assert_allclose(half, d["height"] / 2, rtol=1e-12)


def test_derived_maps_of_a_composite_work_lazily_on_xarray():
    model = gaussian("p1_") + lorentzian("p2_") + linear("bg_")
    sig = xr.DataArray(dsa.from_array(np.array([[0.5, 1.0]]), chunks=1), dims=("y", "x"))
    values = {"p1_amplitude": 2.0 + 0 * sig, "p1_center": 0 * sig, "p1_sigma": sig,
              "p2_amplitude": 1.0 + 0 * sig, "p2_center": 0 * sig, "p2_sigma": 2 * sig}
    out = model.derived_maps(values)
    assert list(out) == ["p1_fwhm", "p1_height", "p2_fwhm", "p2_height"]
    assert all(isinstance(v.data, dsa.Array) for v in out.values())
    np.testing.assert_allclose(out["p2_fwhm"].values, [[2.0, 4.0]])
    np.testing.assert_allclose(out["p1_height"].values, 2.0 / (np.array([[0.5, 1.0]])
                                                              * np.sqrt(2 * np.pi)))
