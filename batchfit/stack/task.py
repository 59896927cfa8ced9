"""One chunk of a job on a worker: the task spec, reading its inputs, the fit.

The client turns each chunk of the job's grid into a :class:`TaskSpec`, a
small frozen record (template JSON, model reference, input path and variable
names, the chunk's region, output path) that travels to a worker. There
:func:`read_inputs` opens the input lazily (once per worker process,
:func:`batchfit.stack.inputs.open_cached`) and loads only the region, and
:func:`fit_chunk` fits it with :func:`batchfit.stack.fit`, writes the region
into the store and marks the chunk done. Only a small count dict comes back,
so inputs larger than the client's or any worker's memory stream through.
The neighbour refit pass (:mod:`batchfit.stack.refit`) reads and fits its
chunks through the same :func:`read_inputs` and :func:`fit_region`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import xarray as xr

from batchfit import status
from batchfit.batch import pixels
from batchfit.config import InputConfig
from batchfit.core import Parameters
from batchfit.models import Model
from batchfit.stack import store
from batchfit.stack.apply import fit
from batchfit.stack.cluster import release_memory
from batchfit.stack.inputs import load_region, open_cached
from batchfit.stack.store import ChunkGrid
from batchfit.status import Status


@dataclass(frozen=True)
class FitOptions:
    """How a task fits its pixels (``fit:`` and ``guess`` of the config)."""

    engine: str = "lm"
    max_nfev: int | None = None
    guess: bool = False
    covar: bool = False
    cost: str = "chisqr"
    scale_covar: bool = True


@dataclass(frozen=True)
class TaskSpec:
    """All a worker needs to fit one chunk of a job.

    Attributes
    ----------
    index : tuple of int
        The chunk's index in the job's :class:`~batchfit.stack.store.ChunkGrid`.
    region : tuple of (dim, start, stop)
        The chunk's pixels, one entry per pixel dim in the grid's order.
    input : InputConfig
        The job's ``input:`` section: file, variable names, fit dim.
    model : dict
        The model's :attr:`~batchfit.models.Model.reference`.
    template : str
        The template :class:`~batchfit.Parameters` as JSON.
    fit : FitOptions
        Engine, ``max_nfev``, guess, covariance, cost and ``scale_covar``.
    output : str
        Path of the result store.
    init : str or None
        Path of an earlier result store whose values start the fits.
    python_path : tuple of str
        Folders a function model's module is imported from
        (:func:`batchfit.config.use_python_path`; never put on ``sys.path``).
    """

    index: tuple[int, ...]
    region: tuple[tuple[str, int, int], ...]
    input: InputConfig
    model: Mapping[str, Any]
    template: str
    fit: FitOptions
    output: str
    init: str | None = None
    python_path: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The chunk's name in the store's markers (:meth:`ChunkGrid.key`)."""
        return ChunkGrid.key(self.index)

    @property
    def slices(self) -> dict[str, slice]:
        """The region as ``dim -> slice``."""
        return {d: slice(a, b) for d, a, b in self.region}

    @property
    def dims(self) -> tuple[str, ...]:
        """The pixel dims, in the grid's order."""
        return tuple(d for d, _, _ in self.region)

    @property
    def shape(self) -> tuple[int, ...]:
        """Pixels along each of :attr:`dims`."""
        return tuple(b - a for _, a, b in self.region)


@dataclass(frozen=True)
class TaskInputs:
    """What a task read: its region of the input, its model and template."""

    data: xr.DataArray
    sigma: xr.DataArray | None
    mask: xr.DataArray | None
    model: Model
    params: Parameters


def read_inputs(task: TaskSpec) -> TaskInputs:
    """Import the model and load the task's region of data, sigma and mask."""
    from batchfit.config import use_python_path
    from batchfit.models import from_reference

    use_python_path(task.python_path, task.model.get("function"))
    region, inp = task.slices, task.input
    ds = open_cached(inp.path)  # once per worker process for an unchanged input
    data = load_region(ds[inp.variable], region)
    sigma = load_region(ds[inp.sigma], region) if inp.sigma else None
    mask = load_region(ds[inp.mask], region) if inp.mask else None
    return TaskInputs(data, sigma, mask, from_reference(task.model),
                      Parameters().loads(task.template))


def fit_region(task: TaskSpec, inputs: TaskInputs, *, mask: xr.DataArray | None,
               init: Mapping[str, xr.DataArray] | None, guess: bool) -> xr.Dataset:
    """Fit the task's region with its engine and options (:func:`batchfit.stack.fit`)."""
    opts = task.fit
    return fit(inputs.data, inputs.model, inputs.params, task.input.fit_dim,
               sigma=inputs.sigma, mask=mask, engine=opts.engine, guess=guess, init=init,
               max_nfev=opts.max_nfev, covar=opts.covar, cost=opts.cost,
               scale_covar=opts.scale_covar)


def fit_chunk(task: TaskSpec) -> dict:
    """Run one chunk on a worker: read its region, fit, write, mark done.

    Returns
    -------
    dict
        ``{"index", "pixels", "fitted", "counts": {status code: n}}``.
    """
    inputs = read_inputs(task)
    res = fit_region(task, inputs, mask=inputs.mask, init=init_region(task, inputs.params),
                     guess=task.fit.guess)
    store.write_region(task.output, res, task.slices)
    counts = status.count(res["status"])
    summary = {"index": list(task.index), "pixels": int(res["status"].size),
               "fitted": int(res["status"].size - counts[Status.MASKED]),
               "counts": {str(int(c)): n for c, n in counts.items() if n}}
    store.mark_done(task.output, task.index, summary)
    del res, inputs
    release_memory()
    return summary


def init_region(task: TaskSpec, params: Parameters) -> dict[str, xr.DataArray] | None:
    """The task's region of the ``init`` store's per-pixel settings, or None.

    The variables ``<name>`` (values), ``<name>_min``, ``<name>_max`` and
    ``<name>_vary`` of the parameters (:mod:`batchfit.batch.pixels`).
    """
    if not task.init:
        return None
    earlier = store.open_results(task.init)
    keys = [str(k) for k in earlier.data_vars
            if pixels.parse_key(params, str(k))[0] is not None]
    return {k: load_region(earlier[k], task.slices) for k in keys}
