"""``ds.batchfit``: curves back from a result store or from :func:`batchfit.fit`'s Dataset.

A result holds every parameter map, the fit dim's coordinate, the model
reference and the template (attributes), so the model curves can be rebuilt
without the script that made them::

    ds = batchfit.open_results("results/cube_fit.zarr")   # or xr.open_zarr(...)
    best = ds.batchfit.best_fit()          # (..., fit_dim) model cube
    parts = ds.batchfit.components()       # Dataset: one cube per component
    resid = ds.batchfit.residual()         # model - data, data from the recorded input
    pears = ds.batchfit.residual(kind="pearson")   # (model - data)/sqrt(model), for counts
    one = ds.batchfit.pixel(y=10, x=20)    # x, data, model, components, residual

Everything is lazy on a dask-backed store (nothing is computed before
``.compute()``, ``.values`` or a plot); eager on a numpy-backed Dataset.
The residual is ``model - data``, lmfit's sign; for counts (``cost='poisson'``)
``kind='pearson'`` scales it by ``sqrt(model)`` and ``kind='deviance'`` gives
the signed square roots of each point's deviance term (their squares sum to
the pixel's ``chisqr``). The accessor is registered
when :mod:`batchfit.stack` is imported (``batchfit.open_results`` and
``batchfit.fit`` do that; after ``xr.open_zarr`` alone, ``import batchfit.stack``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from batchfit.core import poisson
from batchfit.errors import InputError, StoreError

COMPONENT_DIM = "component"
RESIDUALS = {"raw": "model - data", "pearson": "(model - data) / sqrt(model)",
             "deviance": "signed root of the point's Poisson deviance"}


@xr.register_dataset_accessor("batchfit")
class BatchfitAccessor:
    """Downstream calls on a batchfit result Dataset (see the module docstring)."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    # ----------------------------------------------------------- what it holds
    @property
    def fit_dim(self) -> str:
        """The dimension the curves run along (the ``fit_dim`` attribute)."""
        if "fit_dim" not in self._ds.attrs:
            raise StoreError("this Dataset is not a batchfit result (no 'fit_dim' attribute); "
                             "open a result store or use what batchfit.fit returned")
        return str(self._ds.attrs["fit_dim"])

    @property
    def pixel_dims(self) -> tuple[str, ...]:
        """The pixel dims (those of the ``status`` map)."""
        return tuple(str(d) for d in self._ds["status"].dims)

    @property
    def x(self) -> xr.DataArray:
        """The fit dim's coordinate, with its attrs: the independent variable of the model."""
        dim = self.fit_dim
        if dim not in self._ds.coords:
            raise StoreError(f"this result has no {dim!r} coordinate (stores made before "
                             "batchfit kept it); rerun the job, or rebuild curves by hand")
        return self._ds[dim]

    def model(self, model=None):
        """The fitted model, rebuilt from the ``model`` attribute (or ``model`` itself).

        Raises
        ------
        ModelError
            The reference holds a pickled function (pass ``model=``), or names a
            module that does not import here.
        StoreError
            The Dataset records no model.
        """
        if model is not None:
            return model
        from batchfit.models import from_reference

        if "model" not in self._ds.attrs:
            raise StoreError("this result records no model (no 'model' attribute); "
                             "pass model=...")
        return from_reference(json.loads(self._ds.attrs["model"]))

    def params(self):
        """The template :class:`~batchfit.Parameters` of the fit (``template`` attribute)."""
        from batchfit.core import Parameters

        return Parameters().loads(self._ds.attrs["template"])

    # ---------------------------------------------------------------- curves
    def best_fit(self, model=None) -> xr.DataArray:
        """The best-fit model cube over the pixel dims and the fit dim (NaN where not fitted)."""
        out = self._evaluate(self.model(model))
        return out.rename("best_fit").assign_attrs(long_name="best-fit model")

    def components(self, model=None) -> xr.Dataset:
        """One cube per single-kernel component, named by prefix (as lmfit's eval_components)."""
        from batchfit.models.model import component_key

        parts = self.model(model).components
        cubes = {component_key(c): self._evaluate(c) for c in parts}
        return xr.Dataset(cubes).assign_attrs(long_name="model components")

    def data(self, da: xr.DataArray | None = None) -> xr.DataArray:
        """The data the fit saw: ``da``, else the recorded input (opened lazily).

        Raises
        ------
        InputError
            The recorded input is gone (say where) and no ``da`` was given, or
            ``da`` does not match the result's dims and coordinates.
        """
        if da is None:
            da = self._recorded_input()
        return self._match(da)

    @property
    def cost(self) -> str:
        """The fit's cost, ``'chisqr'`` or ``'poisson'`` (``'chisqr'`` when not recorded)."""
        return str(self._ds.attrs.get("cost", "chisqr"))

    def residual(self, da: xr.DataArray | None = None, model=None,
                 kind: str = "raw") -> xr.DataArray:
        """Residuals with lmfit's sign, data from ``da`` or the recorded input.

        Parameters
        ----------
        da, model
            As in :meth:`pixel`.
        kind : {'raw', 'pearson', 'deviance'}
            ``model - data``; for counts ``(model - data) / sqrt(model)``, or
            ``sign(model - data) * sqrt(d)`` with ``d`` the point's Poisson
            deviance term (:mod:`batchfit.core.poisson`).

        Raises
        ------
        InputError
            An unknown ``kind``, or no data (see :meth:`data`).
        """
        _check_kind(kind)
        return residual_of(self.best_fit(model), self.data(da), kind)

    def pixel(self, da: xr.DataArray | None = None, model=None, data: bool = True,
              residual: str = "raw", **indexers) -> xr.Dataset:
        """One pixel (selected by label, as ``ds.sel``): x, data, model, components, residual.

        Parameters
        ----------
        da : xr.DataArray, optional
            The data; default the recorded input.
        model : Model, optional
            Needed when the stored model is a pickled function.
        data : bool
            False: only the model curves (``model``, ``components``), for a
            store whose input is not available.
        residual : {'raw', 'pearson', 'deviance'}
            The ``residual``'s kind, as in :meth:`residual`.
        **indexers
            One label per pixel dim, e.g. ``y=10, x=20``.

        Returns
        -------
        xr.Dataset
            Over the fit dim: ``model``, ``components (component, fit_dim)`` and,
            with ``data``, ``data`` and ``residual``; the pixel's fit results
            (values, ``redchi``, ``status``, ...) as scalar variables.
        """
        _check_kind(residual)
        missing = [d for d in self.pixel_dims if d not in indexers]
        if missing:
            raise InputError(f"pixel(): give a label for each pixel dim; missing {missing} "
                             f"(pixel dims: {list(self.pixel_dims)})")
        one = self._ds.sel(indexers)
        acc = one.batchfit
        comps = acc.components(model)
        out = xr.Dataset({"model": acc.best_fit(model),
                          "components": comps.to_dataarray(COMPONENT_DIM)})
        if data:
            src = self.data(da)
            # pixel dims selected earlier (ds.isel(...).batchfit.pixel()) are scalar coords
            fixed = {d: one[d].values for d in src.dims
                     if d != self.fit_dim and d not in indexers and d in one.coords
                     and not one[d].dims}
            src = src.sel({**indexers, **fixed})
            out["data"] = src
            out["residual"] = residual_of(out["model"], src, residual)
        scalars = {k: v for k, v in one.data_vars.items() if not v.dims}
        return out.assign(scalars).assign_attrs(self._ds.attrs)

    # --------------------------------------------------------------- helpers
    def _evaluate(self, model) -> xr.DataArray:
        names = model.param_names
        missing = [n for n in names if n not in self._ds.data_vars]
        if missing:
            raise StoreError(f"the result has no map for parameter(s) {missing} of "
                             f"{model.name}; was it made by another model?")
        x = self.x
        dim = self.fit_dim
        out = xr.apply_ufunc(
            _evaluate_block, *(self._ds[n] for n in names),
            kwargs={"model": model, "names": tuple(names), "x": np.asarray(x.values, float)},
            output_core_dims=[[dim]], dask="parallelized", output_dtypes=[np.float64],
            dask_gufunc_kwargs={"output_sizes": {dim: x.size}},
        )
        return out.assign_coords({dim: x.variable})

    def _recorded_input(self) -> xr.DataArray:
        attrs = self._ds.attrs
        if "input_path" not in attrs:
            raise InputError("this result records no input (it came from batchfit.fit); "
                             "pass the data: ds.batchfit.residual(da) or pixel(da=...)")
        path = Path(attrs["input_path"])
        if not path.exists():
            raise InputError(f"the recorded input {str(path)!r} is not there (moved or "
                             "deleted); pass the data as da=..., or data=False for model "
                             "curves only")
        opened = xr.open_zarr(str(path)) if path.is_dir() else xr.open_dataset(path, chunks={})
        return opened[attrs["input_variable"]]

    def _match(self, da: xr.DataArray) -> xr.DataArray:
        """``da`` with the result's fit-dim coordinate, checked against it."""
        dim = self.fit_dim
        if not isinstance(da, xr.DataArray) or dim not in da.dims:
            raise InputError(f"the data must be a DataArray with the fit dim {dim!r}; got "
                             f"{type(da).__name__} with dims {list(getattr(da, 'dims', []))}")
        x = self.x
        if dim in da.coords and not np.array_equal(da[dim].values, x.values):
            raise InputError(f"the data's {dim!r} coordinate differs from the result's; "
                             "pass the data that was fitted")
        if da.sizes[dim] != x.size:
            raise InputError(f"the data has {da.sizes[dim]} points along {dim!r}, the "
                             f"result {x.size}")
        return da.assign_coords({dim: x.variable})


def _evaluate_block(*arrays, model, names, x) -> np.ndarray:
    """Model values for one block of parameter maps: ``pixels + (nx,)``."""
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    n = int(np.prod(shape))
    values = {k: np.broadcast_to(a, shape).reshape(n, 1).astype(float)
              for k, a in zip(names, arrays, strict=True)}
    if n == 0:
        return np.empty(shape + (x.size,))
    with np.errstate(all="ignore"):
        out = np.broadcast_to(model(x, **values), (n, x.size))
    return np.array(out).reshape(shape + (x.size,))


def residual_of(f: xr.DataArray, y: xr.DataArray, kind: str = "raw") -> xr.DataArray:
    """Residual of model values ``f`` and data ``y``: ``kind`` as in ``ds.batchfit.residual``."""
    if kind == "raw":
        out = f - y
    elif kind == "pearson":
        out = (f - y) / np.sqrt(np.maximum(f, poisson.FLOOR))
    else:
        out = xr.apply_ufunc(poisson.deviance_residuals, f, y, dask="parallelized",
                             output_dtypes=[float])
    return out.rename("residual").assign_attrs(long_name=RESIDUALS[kind])


def _check_kind(kind: str) -> None:
    if kind not in RESIDUALS:
        raise InputError(f"residual(kind={kind!r}): use one of {', '.join(RESIDUALS)}")
