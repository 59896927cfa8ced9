"""cost='poisson' on real photon counts: an X-ray (EDS) spectrum measured on FePt nanoparticles.

Data provenance: ``EDS_TEM_FePt_nanoparticles.hspy`` shipped in the ``exspy``
wheel (version 0.3.2, ``exspy/data/``; HyperSpy developers, GPL-3.0-or-later),
a TEM energy-dispersive X-ray spectrum of 992 channels (20 eV each, 205,795
counts). It is read here from the installed package with h5py (the file is
HDF5), not copied into this repository; the test is skipped, saying why, when
exspy or h5py is not installed (``pip install exspy h5py``).

The Pt M line at 2.05 keV is fitted with a Gaussian on a line between 1.6 and
2.6 keV (50 channels, 54,765 counts). Low-count spectra are made from the real
one by binomial thinning, which turns Poisson counts of rate ``lambda`` into
Poisson counts of rate ``p * lambda`` exactly, so the full spectrum's own fit
(scaled by ``p``) is the reference each thinned fit should find on average.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize

import batchfit
from batchfit.models import gaussian, linear

FILE = "EDS_TEM_FePt_nanoparticles.hspy"


def _spectrum():
    spec = importlib.util.find_spec("exspy")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("exspy is not installed (pip install exspy): it ships the real spectrum")
    h5py = pytest.importorskip("h5py", reason="h5py reads the exspy sample file")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / FILE
    if not path.exists():
        pytest.skip(f"{path} is not in the installed exspy")
    with h5py.File(path, "r") as h:
        group = h["Experiments"]["EDS TEM Spectrum"]
        counts = group["data"][()].astype(float)
        axis = dict(group["axis-0"].attrs)
    energy = axis["offset"] + axis["scale"] * np.arange(counts.size)
    window = (energy > 1.6) & (energy < 2.6)
    return energy[window], counts[window]


def _model_params(total):
    model = gaussian(prefix="pt_") + linear(prefix="bg_")
    params = model.make_params(pt_amplitude=0.014 * total, pt_center=2.05,
                               pt_sigma={"value": 0.06, "min": 0.01}, bg_slope=0.0,
                               bg_intercept=0.016 * total)
    return model, params


@pytest.mark.slow
def test_thinned_real_spectra_poisson_unbiased_where_neyman_is_not():
    x, y = _spectrum()
    assert y.sum() == 54765 and x.size == 50
    model, params = _model_params(y.sum())
    full = batchfit.fit_batch(model, params, x, y[None], cost="poisson")
    assert full.success.all()
    p = 300.0 / y.sum()
    thin = np.random.default_rng(0).binomial(y.astype(int), p, (2000, y.size)).astype(float)
    model, params = _model_params(thin.sum(axis=1).mean())
    pois = batchfit.fit_batch(model, params, x, thin, cost="poisson")
    neyman_sigma = np.where(thin > 0, np.sqrt(thin), np.nan)  # empty channels drop out
    ney = batchfit.fit_batch(model, params, x, thin, sigma=neyman_sigma)
    assert pois.success.mean() > 0.99 and (pois.ndata == x.size).all()
    assert (thin == 0).any(axis=1).mean() > 0.5  # most spectra have empty channels
    ref = {"pt_amplitude": p * full.values["pt_amplitude"][0],
           "pt_sigma": full.values["pt_sigma"][0]}
    for name, want in ref.items():
        bias = np.nanmedian(pois.values[name]) / want - 1.0
        assert abs(bias) < 0.01, (name, bias)
    ney_bias = np.nanmedian(ney.values["pt_amplitude"]) / ref["pt_amplitude"] - 1.0
    assert ney_bias < -0.03  # Neyman chi-square loses counts in the peak


def test_real_spectrum_agrees_with_an_independent_mle():
    x, y = _spectrum()
    thin = np.random.default_rng(1).binomial(y.astype(int), 1000 / y.sum(), (5, y.size))
    thin = thin.astype(float)
    model, params = _model_params(thin.sum(axis=1).mean())
    res = batchfit.fit_batch(model, params, x, thin, cost="poisson")
    names = ("pt_amplitude", "pt_center", "pt_sigma", "bg_slope", "bg_intercept")
    for i in range(thin.shape[0]):
        def nll(v, i=i):
            f = model(x, **dict(zip(names, v, strict=True)))
            return np.sum(f - thin[i] * np.log(f)) if np.all(f > 0) else np.inf

        start = np.array([res.values[k][i] for k in names]) * 1.02
        ref = scipy_minimize(nll, start, method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40000,
                                      "maxfev": 40000}).x
        got = np.array([res.values[k][i] for k in names])
        # relative to each value, or to the largest for a slope near zero
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
