"""Fit a model along one dimension of an xarray DataArray, for every pixel.

:func:`fit` is the xarray face of the batch engine: it moves the fit dimension
last, flattens the pixel dimensions to ``(n, npts)`` and hands each block to
:func:`batchfit.batch.fit_batch` (one call for numpy data, one call per pixel
chunk for dask data, lazily). The result is an ``xr.Dataset`` laid out exactly
like the output store (see :mod:`batchfit.stack.layout`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from batchfit.batch import fit_batch, pixels
from batchfit.batch.fit import check_options
from batchfit.errors import InputError
from batchfit.stack.layout import ResultLayout, fit_coordinate, input_names
from batchfit.stack.pixel_init import pixel_init
from batchfit.status import Status

FIELD_DIM = "_field"


def fit(
    da: xr.DataArray | xr.Dataset,
    model,
    params,
    dim: str,
    sigma=None,
    mask=None,
    engine: str = "lm",
    guess: bool = False,
    init=None,
    max_nfev: int | None = None,
    covar: bool = False,
    cost: str = "chisqr",
    scale_covar: bool = True,
    var: str | None = None,
) -> xr.Dataset:
    """Fit ``model`` to every curve of ``da`` along ``dim``.

    Parameters
    ----------
    da : xr.DataArray or xr.Dataset
        Data, numpy- or dask-backed, any number of pixel dims plus ``dim``.
        A Dataset needs ``var``, the name of the data variable to fit; then
        ``sigma`` and ``mask`` may be names of its variables too.
    model : Model
        A batchfit model; its independent variable is the ``dim`` coordinate
        (or ``0..npts-1`` when ``dim`` has none).
    params : Parameters
        The template: starting values, bounds, fixed and tied parameters.
    dim : str
        The dimension each curve runs along.
    sigma : float or xr.DataArray, optional
        Per-point uncertainty: a scalar, or an array broadcastable against ``da``.
    mask : xr.DataArray of bool, optional
        Over (some of) the pixel dims; True = fit. Other pixels get status
        ``MASKED`` and NaN values.
    engine : {'lm', 'leastsq', 'lbfgsb', 'anneal'}
        ``'lm'`` is the vectorized engine. The others run the core
        :class:`batchfit.Minimizer` pixel by pixel (inside ``fit_batch``): the
        slow reference path, hundreds of times slower, meant for checks and
        small maps.
    guess : bool
        Start each pixel from the model's vectorized ``guess``.
    init : Mapping or xr.Dataset, optional
        Per-pixel settings, each a DataArray over (some of) the pixel dims:
        ``<name>`` a value (the start, or the held value where the parameter
        is fixed), ``<name>_min`` / ``<name>_max`` bounds, ``<name>_vary``
        (bool); NaN keeps the template's. Other variables are ignored, so an
        earlier result Dataset works. See :mod:`batchfit.batch.pixels`.
    max_nfev : int, optional
        Maximum function evaluations per pixel.
    covar : bool
        Also return ``covar`` with dims ``(..., 'param', 'param_')``.
    cost : {'chisqr', 'poisson'}
        ``'poisson'`` minimizes the Poisson deviance of counts (see
        :func:`batchfit.fit_batch`).
    scale_covar : bool
        Scale the covariance by ``redchi``; False takes ``sigma`` as absolute.
    var : str, optional
        With a Dataset ``da``: the variable to fit.

    Returns
    -------
    xr.Dataset
        One variable per parameter (float64) and per stderr, ``chisqr``,
        ``redchi``, ``aic``, ``bic`` (float64), ``nfev``, ``ndata``, ``nfree``
        (int32), ``success`` (bool), ``status`` (int8, CF flag attrs), optional
        ``covar``, derived maps of peaks (``<prefix>fwhm``, ``<prefix>height``);
        with the non-fit coords of ``da`` and the fit dim's coordinate (so
        curves can be rebuilt, see ``ds.batchfit``). Lazy (dask-backed,
        nothing computed) when ``da`` is dask-backed.

    Raises
    ------
    InputError
        ``dim`` is not a dim of ``da``, ``sigma`` / ``mask`` / ``init`` do not
        fit its shape, or a Dataset comes without a valid ``var``.
    ParameterError
        A parameter is named like another variable of the result (``chisqr``,
        ``a_stderr`` beside ``a``, a dim or coordinate of ``da``).
        Per-pixel ``min > max`` (naming the first pixel by its coordinates).
    """
    if isinstance(da, xr.Dataset):
        da, sigma, mask = _from_dataset(da, var, sigma, mask)
    _check_dim(da, dim)
    check_options(cost, sigma, scale_covar)
    init = pixel_init(params, init, da, dim) if init is not None else None
    template = pixels.template(params, pixels.split(params, init))
    layout = ResultLayout.from_params(template, covar, model)
    layout.check_names(input_names(da))
    x = np.asarray(da[dim].values if dim in da.coords else np.arange(da.sizes[dim]), float)
    data = _single_chunk_along(da, dim)
    args, spec = _extra_args(da, dim, sigma, mask, init, layout)
    core_dims = [[dim]] + [[dim] if spec["has_sigma"] and i == 0 else [] for i in range(len(args))]
    kernel = dict(model=model, params=params, x=x, layout=layout, engine=engine,
                  guess=guess, max_nfev=max_nfev, cost=cost, scale_covar=scale_covar, **spec)
    packed = xr.apply_ufunc(
        fit_block, data, *args,
        input_core_dims=core_dims,
        output_core_dims=[[FIELD_DIM]], kwargs=kernel, dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {FIELD_DIM: layout.width}},
    )
    ds = _to_dataset(packed, layout, model, params, dim, engine, cost)
    return ds.assign_coords({dim: fit_coordinate(da, dim)})


def _from_dataset(ds: xr.Dataset, var, sigma, mask) -> tuple[xr.DataArray, Any, Any]:
    """The DataArrays to fit from a Dataset: ``ds[var]``, and sigma/mask given by name."""
    names = ", ".join(map(repr, map(str, ds.data_vars))) or "none"
    if var is None or var not in ds.data_vars:
        what = "needs var=" if var is None else f"has no variable {var!r}; give var="
        raise InputError(f"fit() got a Dataset and {what}the name of the variable to fit, "
                         f"e.g. fit(ds, ..., var={next(iter(ds.data_vars), 'counts')!r}); "
                         f"its variables: {names}")
    pick = {}
    for key, value in (("sigma", sigma), ("mask", mask)):
        if isinstance(value, str) and value not in ds.variables:
            raise InputError(f"fit(): {key}={value!r} is not a variable of the Dataset; "
                             f"its variables: {names}")
        pick[key] = ds[value] if isinstance(value, str) else value
    return ds[var], pick["sigma"], pick["mask"]


def _check_dim(da: xr.DataArray, dim: str) -> None:
    if dim not in da.dims:
        raise InputError(
            f"fit dim {dim!r} is not a dimension of {da.name or 'the data'!r}; "
            f"its dims are {list(da.dims)}"
        )


def _single_chunk_along(obj, dim: str):
    """Rechunk a dask-backed object so ``dim`` is one chunk (each curve whole)."""
    if obj.chunks is not None and dim in obj.dims:
        return obj.chunk({dim: -1})
    return obj


def _extra_args(da, dim, sigma, mask, init, layout) -> tuple[list, dict]:
    """Arrays passed beside the data (sigma, mask, init) and how to read them."""
    args: list = []
    spec: dict[str, Any] = {"has_sigma": isinstance(sigma, xr.DataArray),
                            "has_mask": mask is not None, "sigma_scalar": None, "init_names": ()}
    if spec["has_sigma"]:
        _check_dim(sigma, dim)
        args.append(_single_chunk_along(sigma, dim))
    elif sigma is not None:
        spec["sigma_scalar"] = float(sigma)
    if mask is not None:
        args.append(_pixel_array(mask, dim, "mask").astype(bool))
    if init:
        spec["init_names"] = tuple(init)
        args.extend(init.values())
    return args, spec


def _pixel_array(obj, dim: str, what: str) -> xr.DataArray:
    if not isinstance(obj, xr.DataArray):
        raise InputError(f"{what} must be an xarray DataArray over the pixel dims")
    if dim in obj.dims:
        raise InputError(f"{what} must not have the fit dim {dim!r}; its dims are "
                         f"{list(obj.dims)}")
    return obj


def fit_block(y: np.ndarray, *arrays, model, params, x, layout: ResultLayout, engine: str,
              guess: bool, max_nfev, has_sigma: bool, has_mask: bool, sigma_scalar,
              init_names, cost: str = "chisqr", scale_covar: bool = True) -> np.ndarray:
    """Fit every curve of one numpy block; returns the packed results.

    ``y`` has shape ``pixels + (npts,)``; ``arrays`` are, in order, sigma (same
    shape, if ``has_sigma``), mask (pixel shape, if ``has_mask``) and one
    pixel-shaped starting-value array per name in ``init_names``. Returns a
    float64 array of shape ``pixels + (layout.width,)``.
    """
    shape, npts = y.shape[:-1], y.shape[-1]
    n = int(np.prod(shape))
    rest = list(arrays)
    sigma = np.broadcast_to(rest.pop(0), y.shape).reshape(n, npts) if has_sigma else None
    active = np.ones(n, bool)
    if has_mask:
        active = np.broadcast_to(rest.pop(0), shape).reshape(n).astype(bool)
    rows = np.flatnonzero(active)
    init = {k: np.broadcast_to(a, shape).reshape(n)[rows]
            for k, a in zip(init_names, rest, strict=True)}
    packed = np.tile(layout.fill_row(), (n, 1))
    packed[~active, layout.index("status")] = int(Status.MASKED)
    if rows.size:
        y_rows = y.reshape(n, npts)[rows]
        s_rows = sigma[rows] if sigma is not None else sigma_scalar
        result = fit_batch(model, params, x, y_rows, sigma=s_rows, init=init or None,
                           guess=guess, max_nfev=max_nfev, covar=layout.covar, engine=engine,
                           cost=cost, scale_covar=scale_covar)
        layout.pack_into(packed, rows, result)
        if layout.derived:
            layout.pack_derived(packed, rows, model.derived_maps(result.values))
    return packed.reshape(tuple(shape) + (layout.width,))


def _to_dataset(packed: xr.DataArray, layout: ResultLayout, model, params, dim,
                engine, cost) -> xr.Dataset:
    pixel_dims = tuple(d for d in packed.dims if d != FIELD_DIM)
    coords = {k: v for k, v in packed.coords.items() if FIELD_DIM not in v.dims}
    attrs = {"fit_dim": dim, "engine": engine, "cost": cost, "template": params.dumps(),
             "model": json.dumps(getattr(model, "reference", None))}
    return layout.dataset(packed.data, pixel_dims, coords, attrs)
