"""Checks a job passes before its store exists (issue 10, class 6).

Everything that can be seen from the config, the input's metadata and a
handful of values is checked here, by ``validate`` and by ``submit`` before
the output store is created, so a mistake is exit 2 with a message naming
the key, never a worker traceback after the store is written:

- the data has pixel dims, and no dim is empty;
- data and sigma are real numbers (complex input would lose its imaginary
  part), and sigma runs along the fit dim;
- ``guess: true`` only with a model that can guess;
- an ``init`` store has the input's pixel dims and sizes and holds at least
  one of the template's parameters (values, or ``_min``/``_max``/``_vary``);
- every tie and model expression evaluates on arrays of the job's real shape
  (the fit dim's coordinate, the template's values as ``(n, 1)`` columns).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from batchfit.batch.layout import Layout
from batchfit.batch.pixels import parse_key, unknown_setting
from batchfit.errors import ConfigError, ExpressionError, InputError, ModelError

SAMPLE_ROWS = 4
"""Rows of the arrays expressions are checked on (the engine's ``(n, 1)`` columns)."""


def check_job(config, ds: xr.Dataset, data: xr.DataArray, model, params) -> None:
    """Run every check of the module docstring; raise on the first problem.

    Parameters
    ----------
    config : JobConfig
        The validated job config.
    ds : xr.Dataset
        The opened (lazy) input.
    data : xr.DataArray
        ``ds[input.variable]``, known to have the fit dim.
    model : Model
        The job's model.
    params : Parameters
        The template.

    Raises
    ------
    InputError, ConfigError, ExpressionError
        Naming the key, variable or parameter at fault.
    """
    inp = config.input
    check_pixels(data, inp.variable, inp.fit_dim)
    check_real(data, "input.variable")
    if inp.sigma is not None and inp.sigma in ds.variables:
        check_sigma(ds[inp.sigma], inp.sigma, inp.fit_dim)
    if config.guess:
        check_guess(model, fit_coordinate(data, inp.fit_dim))
    if config.init is not None:
        check_init(config.init, data, inp.fit_dim, params)
    check_expressions(model, params, fit_coordinate(data, inp.fit_dim))


def fit_coordinate(data: xr.DataArray, fit_dim: str) -> np.ndarray:
    """The independent variable the workers use: the fit dim's coordinate, or 0..n-1."""
    if fit_dim in data.coords:
        return np.asarray(data[fit_dim].values, dtype=float)
    return np.arange(data.sizes[fit_dim], dtype=float)


def check_pixels(data: xr.DataArray, name: str, fit_dim: str) -> None:
    """The data has at least one pixel dim, and no dim of it is empty."""
    pixel_dims = [d for d in data.dims if d != fit_dim]
    if not pixel_dims:
        raise InputError(f"input.variable: {name!r} has only the fit dim {fit_dim!r}, no "
                         "pixel dims; batchfit fits a curve per pixel of an image stack "
                         "(for one curve use batchfit.minimize or fit_batch)")
    empty = [d for d in data.dims if data.sizes[d] == 0]
    if empty:
        raise InputError(f"input.variable: {name!r} is empty along {empty}; its sizes are "
                         f"{dict(data.sizes)}")


def check_real(var: xr.DataArray, key: str) -> None:
    """Real numbers only: complex input would silently lose its imaginary part."""
    kind = var.dtype.kind
    if kind == "c":
        raise InputError(f"{key}: {var.name!r} is complex ({var.dtype}); batchfit fits real "
                         "data. Fit the real and imaginary parts (or the magnitude) as "
                         "separate variables")
    if kind not in "fiu":
        raise InputError(f"{key}: {var.name!r} has dtype {var.dtype}; expected numbers "
                         "(float or integer)")


def check_sigma(sigma: xr.DataArray, name: str, fit_dim: str) -> None:
    """Sigma holds real numbers and runs along the fit dim."""
    check_real(sigma, "input.sigma")
    if fit_dim not in sigma.dims:
        raise InputError(f"input.sigma: {name!r} has dims {list(sigma.dims)}, without the "
                         f"fit dim {fit_dim!r}; sigma is a per-point uncertainty, so it must "
                         f"run along {fit_dim!r}")


def check_guess(model, x: np.ndarray) -> None:
    """``guess: true`` needs a model that can guess its starting values."""
    try:
        with np.errstate(all="ignore"):
            model.guess(np.ones((1, x.size)), x)
    except ModelError as exc:
        raise ConfigError(f"guess: true, but {exc}") from None
    except Exception:  # a guess that fails on flat dummy data may work on real data
        pass


def check_init(path, data: xr.DataArray, fit_dim: str, params: Mapping) -> None:
    """An ``init`` store covers the input's pixel grid and holds some template parameter."""
    from batchfit.stack.store import open_results

    try:
        earlier = open_results(path)
    except Exception as exc:
        raise ConfigError(f"init: cannot open {str(path)!r} as a result store "
                          f"({type(exc).__name__}: {exc})") from None
    sizes = {d: data.sizes[d] for d in data.dims if d != fit_dim}
    for k in earlier.data_vars:
        problem = unknown_setting(params, str(k))
        if problem:
            raise ConfigError(f"init: {str(path)!r}: the variable {problem}")
    # values <name> or per-pixel settings <name>_min/_max/_vary (batchfit.batch.pixels)
    names = [str(k) for k in earlier.data_vars if parse_key(params, str(k))[0] is not None]
    if not names:
        raise ConfigError(f"init: {str(path)!r} holds none of the parameters "
                          f"{', '.join(params)} (nor their _min, _max or _vary); give a store "
                          "of an earlier fit of this model, or of per-pixel settings")
    grids = {n: {d: earlier.sizes[d] for d in earlier[n].dims} for n in sorted(names)}
    if sizes not in grids.values():  # one variable of another shape is pixel_init's to name
        theirs = next(iter(grids.values()))
        raise ConfigError(f"init: {str(path)!r} has the pixel grid {theirs}, the input "
                          f"{sizes}; give a store fitted on this input's grid")


def check_expressions(model, params, x: np.ndarray, rows: int = SAMPLE_ROWS) -> None:
    """Evaluate every tie, and an expression model, on arrays of the job's shape.

    The varied parameters are ``(rows, 1)`` columns of their starting values,
    as in the batch engine; ``x`` is the real fit coordinate.

    Raises
    ------
    ExpressionError
        Naming the parameter (or the model expression) that fails.
    """
    layout = Layout(params)
    values = layout.values(layout.starting_values(rows))  # ties raise here
    for name, value in values.items():
        if np.size(value) not in (1, rows) or np.ndim(value) > 2:
            raise ExpressionError(f"parameter {name!r}: its expression gives shape "
                                  f"{np.shape(value)}, not one value per pixel")
    if not any(c.kernel.kind == "expression" for c in model.components):
        return
    args = {n: values[n] for n in model.param_names}
    out = model(x, **args)
    if np.shape(out) != (rows, x.size):
        raise ExpressionError(f"model expression: gives shape {np.shape(out)} on "
                              f"{rows} pixels of {x.size} points, not {(rows, x.size)}")
