"""The identity of a job's input: what a resumed job must find unchanged.

A store records the identity of the input it was made from: for the data
variable (and ``sigma`` and ``mask`` when used) its dims, shape and dtype; a
hash of every coordinate; and a cheap content signature, a hash of a few
whole curves sampled at fixed positions over the pixel map (plus the whole
mask, which is one byte per pixel). Reading the samples costs a few native
input chunks, whatever the input's size. A regenerated input that changed
shape, dtype, a coordinate or a sampled curve is therefore noticed; one that
changed only curves between the samples is not (the promise is "cheap",
not "complete").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import xarray as xr

from batchfit.stack.inputs import load_region

N_SAMPLES = 5
"""Curves sampled for the content signature."""


def _digest(values: np.ndarray) -> str:
    arr = np.asarray(values)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    if arr.dtype.kind == "O":
        h.update("\x00".join(map(str, arr.ravel())).encode())
    else:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _sample(da: xr.DataArray, pixel_dims: tuple[str, ...]) -> str:
    """Hash of ``N_SAMPLES`` whole curves of ``da`` spread over the pixel map."""
    dims = [d for d in pixel_dims if d in da.dims]
    sizes = [da.sizes[d] for d in dims]
    n = int(np.prod(sizes))
    if n == 0:
        return _digest(np.empty(0))
    flat = np.unique(np.linspace(0, n - 1, min(N_SAMPLES, n)).astype(np.int64))
    idx = np.unravel_index(flat, sizes)
    points = {d: xr.DataArray(i, dims="_sample") for d, i in zip(dims, idx, strict=True)}
    picked = da.isel(points) if points else da
    rest = [d for d in picked.dims if d != "_sample"]
    order = (["_sample"] if points else []) + rest
    return _digest(_read(picked.transpose(*order)))


def _read(da: xr.DataArray) -> np.ndarray:
    """The values of ``da``, read in this thread (:func:`batchfit.stack.inputs.load_region`)."""
    return load_region(da, {}).values


def _describe(da: xr.DataArray) -> dict:
    return {"dims": list(map(str, da.dims)), "shape": list(da.shape), "dtype": da.dtype.str}


def input_identity(data: xr.DataArray, pixel_dims: tuple[str, ...],
                   sigma: xr.DataArray | None = None,
                   mask: xr.DataArray | None = None) -> dict:
    """The identity of a job's input as plain JSON data.

    Parameters
    ----------
    data : xr.DataArray
        The input variable (lazy is fine: only the samples are read).
    pixel_dims : tuple of str
        Its dims other than the fit dim.
    sigma, mask : xr.DataArray, optional
        The uncertainty and mask variables, when the job uses them.

    Returns
    -------
    dict
        ``{"data": ..., "coords": {name: hash}, "sample": hash}`` and the same
        for ``sigma`` and ``mask`` when given.
    """
    out = {"data": _describe(data),
           "coords": {str(k): _digest(_read(v)) for k, v in sorted(data.coords.items())},
           "sample": _sample(data, pixel_dims)}
    if sigma is not None:
        out["sigma"] = {**_describe(sigma), "sample": _sample(sigma, pixel_dims)}
    if mask is not None:
        out["mask"] = {**_describe(mask), "values": _digest(_read(mask))}
    return out


def difference(stored: Mapping | None, current: Mapping) -> str | None:
    """What differs between a stored input identity and the current one, or None."""
    if stored is None:
        return "the store does not record its input (made by an older batchfit)"
    for key in ("data", "sigma", "mask"):
        old, new = stored.get(key), current.get(key)
        if old == new:
            continue
        if old is None or new is None:
            return f"the input {key} variable is {'used now' if old is None else 'no longer used'}"
        for field in ("dims", "shape", "dtype"):
            if old.get(field) != new.get(field):
                return f"input {key} {field} {old.get(field)} -> {new.get(field)}"
        how = "" if key == "mask" else " (sampled curves differ)"
        return f"the values of the input {key} changed{how}"
    for name in sorted(set(stored["coords"]) | set(current["coords"])):
        if stored["coords"].get(name) != current["coords"].get(name):
            return f"input coordinate {name!r} changed"
    if stored.get("sample") != current.get("sample"):
        return "the values of the input data changed (sampled curves differ)"
    return None
