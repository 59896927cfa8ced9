"""Make the small synthetic input cubes that the example configs in configs/ read.

Usage (from the repository root, where ``configs/`` is)::

    batchfit examples                     # into configs/data/
    batchfit examples FOLDER              # into FOLDER/data/ (a copy of configs/)
    python scripts/make_examples.py OUT_DIR --scale 0.25

Three zarr stores, each with the known truth stored beside the data
(``true_<param>`` variables over the pixel dims) and a fixed seed, so a fit
can be checked against what went in:

- ``peak_map.zarr``: a Raman map, ``intensity (y, x, wavenumber)`` with
  ``intensity_err``: one Gaussian band (the silicon line near 520 1/cm, shifted
  by a strain pattern) on a sloping background, Poisson-like noise, and a few
  dead pixels (all-NaN spectra).
- ``emission_lines.zarr``: an IFU cube, ``flux (y, x, wavelength)`` with
  ``flux_err`` and a ``valid`` mask: H-alpha, [NII] 6548/6583 and [SII]
  6716/6731 of a rotating disc galaxy; every line shares one redshift and one
  velocity dispersion per spaxel, [NII] 6583/6548 = 3.05.
- ``decay_curves.zarr``: fluorescence-lifetime images, ``counts (y, x, time)``
  with ``counts_err``: a biexponential decay plus offset per pixel.

The data are made with plain numpy (not with batchfit's models), so they
are an independent reference for the fits.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

DEFAULT_OUT = Path("configs") / "data"
INPUTS = ("peak_map.zarr", "emission_lines.zarr", "decay_curves.zarr")
"""File names of the example inputs (``validate`` says how to make a missing one)."""
COMMAND = "batchfit examples"
C_KMS = 299792.458  # speed of light, km/s
NII_RATIO = 3.05  # [NII] 6583.5 / 6548.0 flux ratio, fixed by atomic physics
REST = {"ha": 6562.8, "n2a": 6548.0, "n2b": 6583.5, "s2a": 6716.4, "s2b": 6730.8}
STORE_CHUNK = 16  # pixels per zarr chunk along y and x
SEEDS = {"peak_map": 20240601, "emission_lines": 20240602, "decay_curves": 20240603}


def _grid(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates scaled to [-1, 1] along each axis, shape (ny, nx)."""
    v, u = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    return v, u


def _gauss(x: np.ndarray, area, center, sigma) -> np.ndarray:
    """Gaussian of the given area; parameters broadcast as (ny, nx, 1) against x."""
    return area / (np.sqrt(2 * np.pi) * sigma) * np.exp(-0.5 * ((x - center) / sigma) ** 2)


def _dataset(name: str, dims: tuple[str, str, str], axis: np.ndarray, data: np.ndarray,
             err: np.ndarray, truth: dict[str, np.ndarray], extra: dict | None = None,
             attrs: dict | None = None) -> xr.Dataset:
    ny, nx = data.shape[:2]
    pix = dims[:2]
    variables: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
        name: (dims, data), f"{name}_err": (dims, err)}
    variables |= {f"true_{k}": (pix, np.broadcast_to(v, (ny, nx)).copy()) for k, v in truth.items()}
    variables |= extra or {}
    coords = {pix[0]: np.arange(ny), pix[1]: np.arange(nx), dims[2]: axis}
    ds = xr.Dataset(variables, coords=coords, attrs=attrs or {})
    # Store chunks hold whole curves: a fit never reads a curve from two chunks.
    return ds.chunk({pix[0]: STORE_CHUNK, pix[1]: STORE_CHUNK, dims[2]: -1})


# ------------------------------------------------------------------ the three cubes


def peak_map(ny: int = 48, nx: int = 64, seed: int = SEEDS["peak_map"]) -> xr.Dataset:
    """Raman map: Gaussian band + linear background, Poisson-like noise, dead pixels."""
    rng = np.random.default_rng(seed)
    v, u = _grid(ny, nx)
    x = np.linspace(400.0, 650.0, 251)  # wavenumber, 1/cm
    strain = np.sin(2.5 * u) * np.cos(1.5 * v)
    truth = {
        "p1_amplitude": 4000.0 * (1.2 + 0.5 * np.cos(2 * u + v)),
        "p1_center": 520.5 + 3.0 * strain,
        "p1_sigma": 4.0 + 1.0 * (u * u + v * v),
        "bg_slope": 0.2 + 0.1 * v,
        "bg_intercept": 20.0 + 10.0 * u,
    }
    t = {k: val[..., None] for k, val in truth.items()}
    clean = _gauss(x, t["p1_amplitude"], t["p1_center"], t["p1_sigma"])
    clean = clean + t["bg_slope"] * x + t["bg_intercept"]
    err = np.sqrt(clean)  # Poisson-like
    data = clean + err * rng.standard_normal(clean.shape)
    dead = rng.random((ny, nx)) < 0.01
    data[dead] = np.nan
    return _dataset("intensity", ("y", "x", "wavenumber"), x, data, err, truth,
                    attrs={"description": "synthetic Raman map (batchfit example)"})


def emission_lines(ny: int = 32, nx: int = 32, seed: int = SEEDS["emission_lines"]
                   ) -> xr.Dataset:
    """IFU cube of a rotating disc: five lines sharing a redshift and a dispersion."""
    rng = np.random.default_rng(seed)
    v, u = _grid(ny, nx)
    x = np.arange(6540.0, 6800.0, 1.25)  # observed wavelength, Angstrom
    radius = np.hypot(u, 1.6 * v)
    rotation = 180.0 * np.tanh(3.0 * u) * np.exp(-0.5 * (v / 0.8) ** 2)  # km/s
    truth = {
        "z": 0.005 + rotation / C_KMS,
        "vdisp": 60.0 + 50.0 * np.exp(-radius**2 / 0.2),  # km/s
        "ha_amplitude": 900.0 * np.exp(-radius / 0.45),
        "bg_c": 1.0 + 0.5 * np.exp(-radius / 0.6),
    }
    truth["n2b_amplitude"] = truth["ha_amplitude"] * (0.35 + 0.15 * u)
    truth["s2a_amplitude"] = truth["ha_amplitude"] * 0.18
    truth["s2b_amplitude"] = truth["ha_amplitude"] * 0.13
    amps = {"ha": truth["ha_amplitude"], "n2a": truth["n2b_amplitude"] / NII_RATIO,
            "n2b": truth["n2b_amplitude"], "s2a": truth["s2a_amplitude"],
            "s2b": truth["s2b_amplitude"]}
    z, vd = truth["z"][..., None], truth["vdisp"][..., None]
    clean = np.broadcast_to(truth["bg_c"][..., None], (ny, nx, x.size)).copy()
    for line, rest in REST.items():
        centre = rest * (1 + z)
        clean += _gauss(x, amps[line][..., None], centre, centre * vd / C_KMS)
    err = np.full_like(clean, 0.4)  # read-noise dominated
    data = clean + err * rng.standard_normal(clean.shape)
    valid = truth["ha_amplitude"] > 40.0  # fit only where H-alpha is well detected
    extra = {"valid": (("y", "x"), valid)}
    return _dataset("flux", ("y", "x", "wavelength"), x, data, err, truth, extra,
                    attrs={"description": "synthetic IFU emission-line cube (batchfit example)"})


def decay_curves(ny: int = 32, nx: int = 48, seed: int = SEEDS["decay_curves"]) -> xr.Dataset:
    """FLIM image: biexponential decays ``a1 exp(-t/tau1) + a2 exp(-t/tau2) + c``."""
    rng = np.random.default_rng(seed)
    v, u = _grid(ny, nx)
    t = np.linspace(0.0, 12.5, 256)  # ns (80 MHz laser period)
    truth = {
        "a1": 800.0 + 300.0 * u,
        "tau1": 0.5 + 0.2 * np.cos(2 * v),
        "a2": 600.0 + 200.0 * np.sin(3 * v),
        "tau2": 2.8 + 0.6 * u * v,
        "c": 5.0 + 2.0 * v,
    }
    p = {k: val[..., None] for k, val in truth.items()}
    clean = p["a1"] * np.exp(-t / p["tau1"]) + p["a2"] * np.exp(-t / p["tau2"]) + p["c"]
    err = np.sqrt(np.maximum(clean, 1.0))  # photon counting
    data = clean + err * rng.standard_normal(clean.shape)
    return _dataset("counts", ("y", "x", "time"), t, data, err, truth,
                    attrs={"description": "synthetic FLIM decay curves (batchfit example)"})


MAKERS: dict[str, Callable[..., xr.Dataset]] = {
    "peak_map": peak_map, "emission_lines": emission_lines, "decay_curves": decay_curves,
}  # fmt: skip
SIZES = {"peak_map": (48, 64), "emission_lines": (32, 32), "decay_curves": (32, 48)}


def write(ds: xr.Dataset, path: Path) -> Path:
    """Write ``ds`` to a zarr store at ``path``, replacing an old one."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        ds.to_zarr(path, mode="w", zarr_format=3, consolidated=True)
    return path


def make_examples(out_dir: str | Path = DEFAULT_OUT, scale: float = 1.0,
                  names: tuple[str, ...] = tuple(MAKERS)) -> dict[str, Path]:
    """Write the example cubes into ``out_dir`` (created if needed).

    Parameters
    ----------
    out_dir : path-like
        Folder for ``<name>.zarr``; the example configs expect ``configs/data``.
    scale : float
        Multiplies the pixel counts along y and x (at least 2 each); 1 gives
        the default sizes, smaller values make tiny cubes for tests.
    names : tuple of str
        Which cubes to make (keys of ``MAKERS``).

    Returns
    -------
    dict
        name -> path of the store written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        ny, nx = (max(2, round(n * scale)) for n in SIZES[name])
        paths[name] = write(MAKERS[name](ny, nx), out / f"{name}.zarr")
    return paths


def examples(folder: str | Path = "configs") -> str:
    """Make the example configs' data in ``<folder>/data``; returns what was written.

    This is ``batchfit examples [FOLDER]``: FOLDER holds the example configs
    (``configs/`` of the repository, or a copy of it), whose ``input.path``
    values point into its ``data/`` folder.
    """
    paths = make_examples(Path(folder) / "data")
    lines = [f"{name}: {path}" for name, path in paths.items()]
    return "example data written:\n  " + "\n  ".join(lines) + (
        f"\nnext: batchfit validate {Path(folder) / 'peak_map.yaml'}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python scripts/make_examples.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=str(DEFAULT_OUT),
                        help="output folder (default: configs/data)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="scale factor on the pixel counts (default 1)")
    args = parser.parse_args(argv)
    for name, path in make_examples(args.out_dir, args.scale).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
