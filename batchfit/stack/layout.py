"""The result layout shared by :func:`batchfit.stack.fit` and the output store.

A block of fits is carried as one float64 array of shape ``pixels + (width,)``
("packed"): one field per output scalar. Packing lets a dask graph carry every
result of a block in a single task output; :meth:`ResultLayout.unpack` splits it
into the store's variables (README "The output store"; names, dtypes and fills
in :meth:`ResultLayout.scalar_fields`) and works on numpy and dask arrays alike.
Every integer field (nfev, ndata, nfree, success,
status) is exactly representable in
float64, so the round trip is lossless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from batchfit.errors import ParameterError
from batchfit.status import Status, flag_attrs

COVAR_DIMS = ("param", "param_")

_STAT_FIELDS: tuple[tuple[str, type, float, dict], ...] = (
    # name, dtype, fill (value of a pixel that was never fitted), attrs
    ("chisqr", np.float64, np.nan, {"long_name": "chi-square"}),
    ("redchi", np.float64, np.nan, {"long_name": "reduced chi-square"}),
    ("nfev", np.int32, 0, {"long_name": "function evaluations"}),
    ("ndata", np.int32, 0, {"long_name": "data points used (finite, unmasked)"}),
    ("nfree", np.int32, 0, {"long_name": "degrees of freedom (ndata - nvarys)"}),
    ("aic", np.float64, np.nan, {"long_name": "Akaike information criterion"}),
    ("bic", np.float64, np.nan, {"long_name": "Bayesian information criterion"}),
    ("success", np.bool_, False, {"long_name": "fit converged with finite values"}),
    ("status", np.int8, int(Status.NOT_RUN), flag_attrs()),
)


class NameClashError(ParameterError):
    """Two things a fit writes share a name; ``param`` is the parameter to rename."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def fit_coordinate(da: xr.DataArray, dim: str) -> xr.DataArray:
    """The fit dim's coordinate of ``da`` (values and attrs), kept in every result.

    When ``da`` has no coordinate along ``dim`` the curves were fitted against
    ``0..n-1``, which is what is kept then (with an attribute saying so).
    """
    if dim in da.coords:
        coord = da[dim].variable.to_base_variable()
        return xr.DataArray(coord.values, dims=(dim,), attrs=dict(coord.attrs))
    return xr.DataArray(np.arange(da.sizes[dim], dtype=float), dims=(dim,),
                        attrs={"comment": "the input had no coordinate: positions 0..n-1"})


def _derived_attrs(name: str) -> dict:
    kind = "full width at half maximum" if name.endswith("fwhm") else "peak height"
    return {"long_name": f"{kind} ({name}), derived from the best-fit values",
            "comment": "batchfit.models.derived: lmfit's formulas; no standard error"}


@dataclass(frozen=True)
class ResultLayout:
    """Names, dtypes and fill values of the result variables of one fit job.

    Parameters
    ----------
    names : tuple of str
        Every parameter name, in template order (varied, fixed and tied).
    var_names : tuple of str
        The varied parameters: the rows and columns of ``covar``.
    covar : bool
        Whether a ``covar`` variable of shape ``(..., nvar, nvar)`` is stored.
    derived : tuple of str
        Derived maps of the model (``<prefix>fwhm``, ``<prefix>height`` of
        peaks), computed from the best-fit values after the fit.
    """

    names: tuple[str, ...]
    var_names: tuple[str, ...]
    covar: bool = False
    derived: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.check_names()

    @classmethod
    def from_params(cls, params, covar: bool = False, model=None) -> ResultLayout:
        """Layout for a Parameters template (varied = ``vary`` and no ``expr``).

        With ``model``, its derived maps are stored too, except a name that a
        parameter of the template already has (the parameter wins).
        """
        var_names = [n for n, p in params.items() if p.varies]
        derived = [n for n in getattr(model, "derived_names", ()) if n not in params]
        return cls(tuple(params), tuple(var_names), bool(covar), tuple(derived))

    def scalar_fields(self) -> list[tuple[str, type, float, dict]]:
        """``(variable, dtype, fill, attrs)`` of each per-pixel scalar, in packed order."""
        fields: list[tuple[str, type, float, dict]] = [
            (n, np.float64, np.nan, {"long_name": f"best-fit {n}"}) for n in self.names]
        fields += [
            (f"{n}_stderr", np.float64, np.nan, {"long_name": f"standard error of {n}"})
            for n in self.names
        ]
        fields += list(_STAT_FIELDS)
        return fields + [(n, np.float64, np.nan, _derived_attrs(n)) for n in self.derived]

    def store_variables(self) -> list[tuple[str, str]]:
        """``(name, what it holds)`` of every variable and coordinate a fit writes.

        Derived from :meth:`scalar_fields` (and the covariance), so it lists
        exactly what :meth:`dataset` writes; a name may appear twice, which
        :meth:`check_names` refuses.
        """
        out = [(n, f"the best-fit value of parameter {n!r}") for n in self.names]
        out += [(f"{n}_stderr", f"the standard error of parameter {n!r}") for n in self.names]
        out += [(name, f"the per-pixel {attrs.get('long_name', name)!r}")
                for name, _, _, attrs in self.scalar_fields()[2 * len(self.names):]]
        if self.covar:
            out.append(("covar", "the covariance matrix of the varied parameters"))
            out += [(d, "a dim of the covariance matrix") for d in COVAR_DIMS]
        return out

    def check_names(self, reserved: dict[str, str] | None = None) -> None:
        """Raise ParameterError if two things would be written under one name.

        Parameters
        ----------
        reserved : dict of str -> str, optional
            Other names the result will hold (the input's dims and coordinates),
            each with what it is.

        Raises
        ------
        NameClashError
            A ParameterError naming the variable and both things it would hold;
            its ``param`` attribute is the parameter to rename.
        """
        owner = dict(reserved or {})
        for name, what in self.store_variables():
            if name in owner:
                param = _param_of(name, owner[name], what)
                raise NameClashError(
                    f"parameter name clash: the result variable {name!r} would hold both "
                    f"{owner[name]} and {what}, and one would silently overwrite the "
                    f"other; rename parameter {param!r}", param)
            owner[name] = what

    @property
    def n_scalar(self) -> int:
        """Number of per-pixel scalars (the packed width without covar)."""
        return 2 * len(self.names) + len(_STAT_FIELDS) + len(self.derived)

    @property
    def width(self) -> int:
        """Packed width: scalars plus the flattened covariance matrix."""
        return self.n_scalar + (len(self.var_names) ** 2 if self.covar else 0)

    def index(self, field: str) -> int:
        """Position of a scalar field in the packed array."""
        return [f[0] for f in self.scalar_fields()].index(field)

    def fill_row(self) -> np.ndarray:
        """Packed values of a pixel that was never fitted: NaN, status NOT_RUN."""
        row = np.full(self.width, np.nan)
        for i, (_, _, fill, _) in enumerate(self.scalar_fields()):
            row[i] = fill
        return row

    def fills(self) -> dict[str, object]:
        """Fill value of every variable, for the store's zarr ``fill_value``."""
        out: dict[str, object] = {name: fill for name, _, fill, _ in self.scalar_fields()}
        if self.covar:
            out["covar"] = np.nan
        return out

    def unpack(self, packed) -> dict[str, tuple[object, dict, bool]]:
        """Split a packed array into ``name -> (array, attrs, is_covar)``.

        ``packed`` has shape ``pixels + (width,)``, numpy or dask; covar comes
        back with shape ``pixels + (nvar, nvar)``.
        """
        out = {}
        for i, (name, dtype, _, attrs) in enumerate(self.scalar_fields()):
            out[name] = (packed[..., i].astype(dtype), attrs, False)
        if self.covar:
            nv = len(self.var_names)
            flat = packed[..., self.n_scalar :]
            cov = flat.reshape(tuple(packed.shape[:-1]) + (nv, nv))
            out["covar"] = (cov, {"long_name": "covariance of the varied parameters"}, True)
        return out

    def pack_into(self, packed: np.ndarray, rows: np.ndarray, result) -> None:
        """Scatter a batch result (``fit_batch``'s fields) into ``packed[rows]``.

        ``packed`` has shape ``(n, width)``; ``result`` describes ``len(rows)`` fits.
        """
        cols = [result.values[n] for n in self.names]
        cols += [result.stderr[n] for n in self.names]
        cols += [result.chisqr, result.redchi, result.nfev, result.ndata, result.nfree,
                 result.aic, result.bic, result.success, result.status]
        packed[rows, : len(cols)] = np.stack(
            [np.asarray(c, dtype=np.float64) for c in cols], axis=1
        )
        if self.covar and result.covar is not None:
            packed[rows, self.n_scalar :] = np.asarray(result.covar, np.float64).reshape(
                len(rows), -1
            )

    def pack_derived(self, packed: np.ndarray, rows: np.ndarray, values) -> None:
        """Scatter derived maps (name -> ``(len(rows),)``) into ``packed[rows]``."""
        for name in self.derived:
            packed[rows, self.index(name)] = np.asarray(values[name], dtype=np.float64)

    def dataset(self, packed, pixel_dims: tuple, coords: dict, attrs: dict) -> xr.Dataset:
        """The result Dataset from a packed array (numpy or dask) over ``pixel_dims``."""
        coords = dict(coords)
        data_vars = {}
        for name, (arr, var_attrs, is_cov) in self.unpack(packed).items():
            dims = tuple(pixel_dims) + (COVAR_DIMS if is_cov else ())
            data_vars[name] = xr.Variable(dims, arr, attrs=dict(var_attrs))
        if self.covar:
            # object dtype -> zarr's variable-length string type; fixed-width numpy
            # strings have no zarr v3 specification (UnstableSpecificationWarning).
            names = np.array(self.var_names, dtype=object)
            coords[COVAR_DIMS[0]] = names
            coords[COVAR_DIMS[1]] = names.copy()
        return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs))


def input_names(da: xr.DataArray) -> dict[str, str]:
    """The dims and coordinates of the input ``da``: names a result may not reuse."""
    names = {str(c): f"the input's coordinate {c!r}" for c in da.coords}
    names.update({str(d): f"the input's dim {d!r}" for d in da.dims})
    return names


def _param_of(name: str, first: str, second: str) -> str:
    """The parameter to rename in a clash over ``name`` (the one named ``name``)."""
    for what in (second, first):
        if what == f"the best-fit value of parameter {name!r}":
            return name
    return name.removesuffix("_stderr")
