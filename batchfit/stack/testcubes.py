"""The three test cubes of issue 9, with known truth and deterministic seeds.

(a) :func:`emission_lines`: five Gaussian emission lines (H-alpha, [NII]
    6548/6583, [SII] 6716/6731) on a linear continuum, sharing one redshift
    ``z`` and one velocity width through tie expressions, the [NII] doublet
    ratio tied, amplitudes ``min=0``, lines absent in a fifth to a quarter of
    the pixels, and noise from photon counts plus read-out.
(b) :func:`gaussian_line`: a Gaussian on a line, every curve fitted from one
    global start (the mean of the true parameters); centres spread over
    +-2 widths, widths over a factor 3.
(c) :func:`biexponential`: two exponential decays and an offset, the slow
    component absent in 20% of the pixels.

Each returns a :class:`Problem`: data, noise, truth for every parameter (tied
ones included), the model and the Parameters template to fit with.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr

from batchfit.core.expr import TieSet
from batchfit.core.parameter import Parameters
from batchfit.models import constant, exponential, gaussian, linear
from batchfit.models.model import Model

LINES = {"ha": 6562.80, "n1": 6548.05, "n2": 6583.45, "s1": 6716.44, "s2": 6730.82}
"""Rest wavelengths (Angstrom, air) of the lines of cube (a), by component prefix."""
NII_RATIO = 3.0
"""Flux ratio [NII] 6583 / 6548 (fixed by atomic physics, about 3)."""


@dataclass(frozen=True)
class Problem:
    """A batch of curves with known truth and the template to fit them with.

    Attributes
    ----------
    name : str
    x : ndarray, shape (n_points,)
    y : ndarray, shape (n_curves, n_points)
    sigma : ndarray, shape (n_curves, n_points)
        The noise standard deviation each point was drawn with.
    truth : dict of str -> ndarray (n_curves,)
        True value of every parameter of ``params`` (tied ones included).
    model : Model
    params : Parameters
        The template (starting values, bounds, ties) every curve starts from.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    truth: dict
    model: Model
    params: Parameters

    def to_dataset(self, ny: int, nx: int, fit_dim: str = "x_axis") -> xr.Dataset:
        """The curves as an ``(y, x, fit_dim)`` cube with ``data``, ``sigma`` and ``truth_*``."""
        dims = ("y", "x", fit_dim)
        shape = (ny, nx, self.x.size)
        data_vars: dict[str, tuple] = {"data": (dims, self.y.reshape(shape)),
                                       "sigma": (dims, self.sigma.reshape(shape))}
        data_vars.update({f"truth_{k}": (("y", "x"), v.reshape(ny, nx))
                          for k, v in self.truth.items()})
        coords = {"y": np.arange(ny), "x": np.arange(nx), fit_dim: self.x}
        return xr.Dataset(data_vars, coords=coords, attrs={"problem": self.name})


def _truth_curves(model: Model, x, truth: dict) -> np.ndarray:
    return model(x, **{k: np.asarray(truth[k], float)[:, None] for k in model.param_names})


# ------------------------------------------------------------------ (a) emission lines


def emission_model() -> Model:
    """The five lines (prefixes ``ha_ n1_ n2_ s1_ s2_``) on a line (``bg_``)."""
    model = linear(prefix="bg_")
    for prefix in LINES:
        model = gaussian(prefix=f"{prefix}_") + model
    return model


def emission_params(z0: float = 0.005) -> Parameters:
    """Template of cube (a): ``z`` and the H-alpha width varied, the others tied to them."""
    model = emission_model()
    hints: dict = {"bg_slope": 0.0, "bg_intercept": 40.0,
                   "ha_sigma": {"value": 2.5, "min": 0.5, "max": 10.0}}
    for prefix, lam in LINES.items():
        hints[f"{prefix}_center"] = {"expr": f"{lam} * (1 + z)"}
        if prefix != "ha":
            hints[f"{prefix}_sigma"] = {"expr": f"ha_sigma * {lam / LINES['ha']!r}"}
        hints[f"{prefix}_amplitude"] = {"value": 100.0, "min": 0.0}
    hints["ha_amplitude"] = {"value": 400.0, "min": 0.0}
    hints["n1_amplitude"] = {"expr": f"n2_amplitude / {NII_RATIO}"}
    params = Parameters()
    params.add("z", value=z0, min=z0 - 0.004, max=z0 + 0.004)
    for name, par in model.make_params(**hints).items():
        params[name] = par
    return params


def emission_lines(n: int, *, seed: int = 0, z0: float = 0.005,
                   step: float = 1.25) -> Problem:
    """Cube (a): ``n`` spectra from 6500 to 6900 Angstrom.

    Truth: ``z = z0 +- 0.001`` (a rotating galaxy's +-300 km/s), H-alpha width
    1.5-3.5 A, H-alpha flux log-uniform 150-3000, [NII] 6583 at 0.1-0.6 of it
    (absent in 25% of the pixels), each [SII] line at 0.05-0.3 of it (both absent
    in 20%), a continuum of 20-80 counts with a slope. Noise: Gaussian with the
    variance of photon counts plus a read-out noise of 3 counts.
    """
    rng = np.random.default_rng(seed)
    x = np.arange(6500.0, 6900.0 + step / 2, step)
    model, params = emission_model(), emission_params(z0)
    ha = np.exp(rng.uniform(np.log(150.0), np.log(3000.0), n))
    cont, slope = rng.uniform(20.0, 80.0, n), rng.uniform(-0.02, 0.02, n)
    truth = {"z": z0 + rng.uniform(-0.001, 0.001, n), "ha_sigma": rng.uniform(1.5, 3.5, n),
             "ha_amplitude": ha, "bg_slope": slope, "bg_intercept": cont - slope * 6700.0,
             "n2_amplitude": ha * rng.uniform(0.1, 0.6, n) * (rng.random(n) >= 0.25)}
    no_sii = rng.random(n) < 0.20
    for prefix in ("s1", "s2"):
        truth[f"{prefix}_amplitude"] = np.where(no_sii, 0.0, ha * rng.uniform(0.05, 0.3, n))
    truth.update(_tied_truth(params, truth))
    clean = _truth_curves(model, x, truth)
    sigma = np.sqrt(np.maximum(clean, 0.0) + 3.0**2)
    y = clean + rng.normal(0.0, 1.0, clean.shape) * sigma
    return Problem("emission_lines", x, y, sigma, truth, model, params)


def _tied_truth(params: Parameters, truth: dict) -> dict:
    ties = TieSet(params)
    values = {k: np.asarray(v, float) for k, v in truth.items()}
    return {k: np.asarray(v, float) for k, v in ties.apply(values).items() if k not in truth}


# ------------------------------------------------------------ (b) Gaussian + line


def gaussian_line(n: int, *, seed: int = 0, npts: int = 101, noise: float = 0.3) -> Problem:
    """Cube (b): a Gaussian on a line, fitted from the mean of the true parameters.

    Truth: area 5-15, width 0.5-1.5 (a factor 3), centre uniform within
    +-2 mean widths of 0, slope +-0.05, intercept 0.5-1.5; x from -10 to 10.
    """
    rng = np.random.default_rng(seed)
    x = np.linspace(-10.0, 10.0, npts)
    model = gaussian(prefix="p1_") + linear(prefix="bg_")
    truth = {"p1_amplitude": rng.uniform(5.0, 15.0, n), "p1_sigma": rng.uniform(0.5, 1.5, n),
             "p1_center": rng.uniform(-2.0, 2.0, n), "bg_slope": rng.uniform(-0.05, 0.05, n),
             "bg_intercept": rng.uniform(0.5, 1.5, n)}
    params = model.make_params(p1_amplitude=10.0, p1_center=0.0,
                               p1_sigma={"value": 1.0, "min": 0.0}, bg_slope=0.0,
                               bg_intercept=1.0)
    clean = _truth_curves(model, x, truth)
    sigma = np.full(clean.shape, noise)
    return Problem("gaussian_line", x, clean + rng.normal(0.0, noise, clean.shape), sigma,
                   truth, model, params)


# --------------------------------------------------------- (c) bi-exponential decays


def biexponential(n: int, *, seed: int = 0, npts: int = 128) -> Problem:
    """Cube (c): ``a1 exp(-t/tau1) + a2 exp(-t/tau2) + c`` over 0-12.5 ns.

    Truth: tau1 0.3-0.8 ns, tau2 2-4 ns, a1 300-1000, a2 100-500 counts but 0 in
    20% of the pixels, offset 2-10 counts. Noise: Gaussian with the variance of
    the counts (at least 1). Template: amplitudes and offset ``min=0``, tau1 in
    [0.05, 1.5], tau2 in [1.5, 20].
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 12.5, npts)
    model = exponential(prefix="f_") + exponential(prefix="s_") + constant(prefix="c_")
    absent = rng.random(n) < 0.20
    truth = {"f_amplitude": rng.uniform(300.0, 1000.0, n), "f_decay": rng.uniform(0.3, 0.8, n),
             "s_amplitude": np.where(absent, 0.0, rng.uniform(100.0, 500.0, n)),
             "s_decay": rng.uniform(2.0, 4.0, n), "c_c": rng.uniform(2.0, 10.0, n)}
    params = model.make_params(
        f_amplitude={"value": 600.0, "min": 0.0}, f_decay={"value": 0.5, "min": 0.05, "max": 1.5},
        s_amplitude={"value": 250.0, "min": 0.0}, s_decay={"value": 3.0, "min": 1.5, "max": 20.0},
        c_c={"value": 5.0, "min": 0.0})
    clean = _truth_curves(model, t, truth)
    sigma = np.sqrt(np.maximum(clean, 1.0))
    y = clean + rng.normal(0.0, 1.0, clean.shape) * sigma
    return Problem("biexponential", t, y, sigma, truth, model, params)



# ----------------------------------------------------------- real data: HCN (1-0) cube

HCN_OFFSETS = {"f21": 0.0, "f11": 4.842, "f01": -7.064}
"""Velocity (km/s) of the HCN J=1-0 hyperfine components F=2-1, 1-1, 0-1 relative to F=2-1."""


def hcn_model() -> Model:
    """Three hyperfine Gaussians (``f21_ f11_ f01_``) on a constant baseline (``bl_``)."""
    return (gaussian(prefix="f21_") + gaussian(prefix="f11_") + gaussian(prefix="f01_")
            + constant(prefix="bl_"))


def hcn_params() -> Parameters:
    """One velocity ``v`` and one width for the triplet; amplitudes (K km/s) ``min=0``."""
    hints: dict = {"f21_sigma": {"value": 1.2, "min": 0.2, "max": 5.0}, "bl_c": 0.0}
    start = {"f21": 0.5, "f11": 0.3, "f01": 0.1}
    for prefix, dv in HCN_OFFSETS.items():
        hints[f"{prefix}_center"] = {"expr": f"v + {dv}" if dv else "v"}
        hints[f"{prefix}_amplitude"] = {"value": start[prefix], "min": 0.0}
        if prefix != "f21":
            hints[f"{prefix}_sigma"] = {"expr": "f21_sigma"}
    params = Parameters()
    params.add("v", value=-5.0, min=-15.0, max=5.0)
    for name, par in hcn_model().make_params(**hints).items():
        params[name] = par
    return params


def hcn_cube() -> Problem:
    """Real data: the HCN (1-0) cube shipped with pyspeckit 1.0.4 (``tests/data``).

    A Mopra single-dish cube (47 x 37 pixels, 352 channels of 0.114 km/s, in K);
    see ``scripts/DATA.md`` for its provenance. Pixels outside the mapped area
    are NaN (bad data). ``sigma`` per pixel is the standard deviation of the
    line-free channels (below -15 and above +10 km/s). No truth is known.

    Raises
    ------
    ImportError
        If pyspeckit (for the file) or astropy (to read FITS) is not installed.
    """
    import importlib.util
    from pathlib import Path

    from astropy.io import fits  # optional: only this loader needs it

    spec = importlib.util.find_spec("pyspeckit")  # found without importing pyspeckit
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the real-data cube needs pyspeckit: pip install pyspeckit==1.0.4")
    folder = Path(spec.submodule_search_locations[0]) / "tests" / "data"
    with fits.open(folder / "region5_hcn_crop.fits") as hdul:
        data, head = hdul[0].data.astype(float), hdul[0].header
    chan = np.arange(data.shape[0]) + 1 - head["CRPIX3"]
    v = (head["CRVAL3"] + chan * head["CDELT3"]) / 1e3  # m/s -> km/s
    y = data.reshape(data.shape[0], -1).T
    free = (v < -15.0) | (v > 10.0)
    quiet = warnings.catch_warnings(action="ignore", category=RuntimeWarning)
    with np.errstate(all="ignore"), quiet:  # all-NaN pixels outside the map
        noise = np.nanstd(y[:, free], axis=1)
    sigma = np.broadcast_to(noise[:, None], y.shape).copy()
    return Problem("hcn_real", v, y, sigma, {}, hcn_model(), hcn_params())
