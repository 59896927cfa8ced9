"""Synthetic image stacks with known truth: a Gaussian peak on a line, per pixel.

Used by ``batchfit demo``, the tests and ``scripts/``. The model is
``gaussian(prefix='p1_') + linear(prefix='bg_')`` over an ``energy`` axis.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

TRUTH_RANGES = {
    "p1_amplitude": (5.0, 15.0),
    "p1_center": (-1.0, 1.0),
    "p1_sigma": (0.6, 1.2),
    "bg_slope": (-0.05, 0.05),
    "bg_intercept": (0.5, 1.5),
}
NOISE = 0.05


def make_cube(ny: int = 32, nx: int = 32, npts: int = 64, *, seed: int = 0,
              dtype=np.float32, noise: float = NOISE, n_bad: int = 0) -> xr.Dataset:
    """A Gaussian + line cube with known per-pixel parameters.

    Parameters
    ----------
    ny, nx, npts : int
        Pixel grid and points per curve (``energy`` from -5 to 5).
    seed : int
        Seed of all randomness (truth and noise).
    dtype : numpy dtype
        Of ``counts``.
    noise : float
        Standard deviation of the Gaussian noise (also stored as ``counts_err``).
    n_bad : int
        Number of pixels (the first ones, row-major) made all-NaN.

    Returns
    -------
    xr.Dataset
        ``counts (y, x, energy)``, ``counts_err (y, x, energy)``, ``valid (y, x)``
        (all True) and ``truth_<param> (y, x)``, with coords ``y``, ``x``, ``energy``.
    """
    rng = np.random.default_rng(seed)
    energy = np.linspace(-5.0, 5.0, npts)
    truth = {k: lo + (hi - lo) * _smooth_map(rng, ny, nx) for k, (lo, hi) in TRUTH_RANGES.items()}
    curve = gaussian_line(energy, **{k: v[..., None] for k, v in truth.items()})
    counts = (curve + rng.normal(0.0, noise, curve.shape)).astype(dtype)
    counts.reshape(ny * nx, npts)[:n_bad] = np.nan
    dims = ("y", "x", "energy")
    data_vars = {
        "counts": (dims, counts, {"long_name": "counts"}),
        "counts_err": (dims, np.full(counts.shape, noise, dtype)),
        "valid": (("y", "x"), np.ones((ny, nx), bool)),
    }
    data_vars.update({f"truth_{k}": (("y", "x"), v) for k, v in truth.items()})
    coords = {"y": np.arange(ny), "x": np.arange(nx) * 0.5, "energy": energy}
    return xr.Dataset(data_vars, coords=coords, attrs={"seed": seed, "noise": noise})


def _smooth_map(rng, ny: int, nx: int) -> np.ndarray:
    """A smooth random map in [0, 1] (a few random plane waves), so results look like images."""
    yy, xx = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    field = np.zeros((ny, nx))
    for _ in range(3):
        ky, kx, py, px = rng.uniform(0.3, 2.0, 4)
        field += np.sin(2 * np.pi * (ky * yy + py)) * np.cos(2 * np.pi * (kx * xx + px))
    span = np.ptp(field)
    return (field - field.min()) / span if span > 0 else np.full((ny, nx), 0.5)


def gaussian_line(x, p1_amplitude, p1_center, p1_sigma, bg_slope, bg_intercept):
    """Area-normalised Gaussian plus a line (lmfit's ``gaussian`` parameters)."""
    g = np.exp(-((x - p1_center) ** 2) / (2 * p1_sigma**2)) / (p1_sigma * np.sqrt(2 * np.pi))
    return p1_amplitude * g + bg_slope * x + bg_intercept


def write_cube(ds: xr.Dataset, path, chunks: dict | None = None) -> None:
    """Write a cube to a zarr (format 3) store, chunked over pixels."""
    chunks = chunks or {"y": min(64, ds.sizes["y"]), "x": min(64, ds.sizes["x"])}
    ds.chunk(chunks).to_zarr(str(path), mode="w", zarr_format=3, consolidated=False)
