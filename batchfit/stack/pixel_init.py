"""Per-pixel values, bounds and vary flags over the pixel dims, checked before any fit.

The xarray face of :mod:`batchfit.batch.pixels`: ``fit(..., init=...)`` and a
job's ``init:`` store give ``<name>``, ``<name>_min``, ``<name>_max`` and
``<name>_vary`` as variables over (some of) the pixel dims. They are checked
here once, with the data's coordinates at hand, so that an error names the
variable and the first bad pixel by its coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from batchfit.batch import pixels
from batchfit.core.parameter import Parameters
from batchfit.errors import InputError, ParameterError


def pixel_init(params: Parameters, init: Mapping | None, da: xr.DataArray,
               dim: str) -> dict[str, xr.DataArray]:
    """The recognised per-pixel variables of ``init``, checked against the data ``da``.

    Returns
    -------
    dict
        ``init`` key -> DataArray over pixel dims of ``da`` (other keys dropped).

    Raises
    ------
    InputError
        A variable that is not a DataArray, has the fit dim, a dim the data
        lacks, or another size along a dim.
    ParameterError
        ``min > max``, ``min = inf``, ``max = -inf`` or a vary flag other
        than 0/1 at some pixel (naming the first by its coordinates), or
        bounds or vary given for a tied parameter.
    """
    if init is None:
        return {}
    per = pixels.split(params, init)
    out = {}
    for name, kinds in per.items():
        for kind, arr in kinds.items():
            key = pixels.key(name, kind)
            out[key] = _checked(arr, da, dim, key)
            _check_entries(kind, out[key], key, da)
        _check_order(params[name], name, out, da)
    return out


def _checked(arr, da: xr.DataArray, dim: str, key: str) -> xr.DataArray:
    if not isinstance(arr, xr.DataArray):
        raise InputError(f"init[{key!r}] must be an xarray DataArray over the pixel dims "
                         f"{[d for d in da.dims if d != dim]}")
    pixel_dims = [d for d in da.dims if d != dim]
    extra = [d for d in arr.dims if d not in pixel_dims]
    if extra:
        raise InputError(f"init[{key!r}] has dims {list(arr.dims)}; per-pixel settings must "
                         f"be over the pixel dims {pixel_dims} (not {extra})")
    for d in arr.dims:
        if arr.sizes[d] != da.sizes[d]:
            raise InputError(f"init[{key!r}] has {arr.sizes[d]} entries along {d!r}, the "
                             f"data {da.sizes[d]}")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"init[{key!r}] must hold numbers (or bools for _vary), got "
                         f"{arr.dtype}")
    return arr


def _check_entries(kind: str, arr: xr.DataArray, key: str, da: xr.DataArray) -> None:
    if kind == "value":
        return
    values = arr.astype(float)
    lazy, why = pixels.invalid_entries(kind, values)
    bad = np.asarray(lazy.values)  # one bool per pixel; the values stay lazy
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad.ravel())), bad.shape)
        value = float(values[first].values)
        raise ParameterError(f"init[{key!r}] is {value!r} at {int(bad.sum())} "
                             f"pixel(s), the first at {_where(arr, first, da)}: {why}")


def _where(arr: xr.DataArray, index: tuple, da: xr.DataArray) -> str:
    """``dim=coordinate, ...`` of the pixel at ``index`` of ``arr``."""
    where = {d: da[d].values[i].item() if d in da.coords else int(i)
             for d, i in zip(arr.dims, index, strict=True)}
    return ", ".join(f"{d}={v!r}" for d, v in where.items())


def _check_order(par, name: str, out: Mapping[str, xr.DataArray], da: xr.DataArray) -> None:
    lo = out.get(pixels.key(name, "min"))
    hi = out.get(pixels.key(name, "max"))
    if lo is None and hi is None:
        return
    lo = xr.DataArray(par.lo) if lo is None else lo.fillna(par.lo)
    hi = xr.DataArray(par.hi) if hi is None else hi.fillna(par.hi)
    bad = (lo > hi).compute()
    if not bool(bad.any()):
        return
    first = np.unravel_index(int(np.argmax(bad.values.ravel())), bad.shape)
    at = _where(bad, first, da)
    lo_v, hi_v = float(lo.broadcast_like(bad).values[first]), float(
        hi.broadcast_like(bad).values[first])
    raise ParameterError(
        f"init: {name}_min > {name}_max at {int(bad.sum())} pixel(s), the first at {at} "
        f"(min={lo_v!r}, max={hi_v!r}); use min <= max, or {name}_vary=False to hold it "
        f"fixed (data dims {list(da.dims)})")
