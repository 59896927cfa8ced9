"""The report's page of pixel fits (``pixels.png``): the curves people look at to trust a fit.

Which pixels: of the converged ones, the best, median and worst reduced
chi-square; up to :data:`PER_STATUS` pixels of each failure status that
leaves a fit to draw (max_nfev, bad_data, model_error, stalled, ...: every
status but converged, masked and not_run); then the pixels named by the
caller (``batchfit report STORE --pixel y=3,x=5``). Each panel shows the
data (points), the best-fit model (line), each component (dashed, when the
model has more than one) and, below, the residual ``model - data`` (for a
``cost='poisson'`` fit the Pearson residual ``(model - data)/sqrt(model)``,
whose scale does not grow with the counts). The
curves come from :mod:`batchfit.stack.accessor` (``ds.batchfit.pixel``);
without the recorded input only the model curves are drawn, and the title
says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from batchfit.errors import InputError
from batchfit.report.maps import Mpl, note, save
from batchfit.report.summary import status_meanings
from batchfit.stack.accessor import BatchfitAccessor
from batchfit.status import Status

PER_STATUS = 2
NCOLS = 3
MAX_PANELS = 18
PANEL_SIZE = (4.2, 3.4)  # inches per panel (curve and residual)
COMPONENT_COLOURS = ("C1", "C2", "C4", "C5", "C6", "C8", "C9")  # not C0 (model), C3 (residual)
NO_FIT = (int(Status.CONVERGED), int(Status.MASKED), int(Status.NOT_RUN))


def parse_pixel(text: str) -> dict[str, Any]:
    """``"y=3,x=1.5"`` -> ``{"y": 3, "x": 1.5}`` (numbers where they parse).

    Raises
    ------
    InputError
        If an item is not ``dim=value``.
    """
    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in str(text).split(","))):
        dim, sep, value = item.partition("=")
        if not sep or not dim.strip() or not value.strip():
            raise InputError(f"--pixel {text!r}: expected dim=value pairs such as y=3,x=5")
        out[dim.strip()] = _number(value.strip())
    return out


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def choose_pixels(ds: xr.Dataset, named: Sequence[Mapping[str, Any]] = ()
                  ) -> list[tuple[str, dict[str, int]]]:
    """``(label, {pixel dim: index})`` of the pixels to draw, in page order.

    Raises
    ------
    InputError
        A named pixel with a wrong dim or a label not in the store.
    """
    status = np.asarray(ds["status"].values).astype(int)
    dims = tuple(ds["status"].dims)
    chosen = _by_redchi(ds, status, dims)
    meanings = status_meanings(ds["status"])
    for code in sorted(set(np.unique(status).tolist()) - set(NO_FIT)):
        for flat in np.flatnonzero(status.ravel() == code)[:PER_STATUS]:
            chosen.append((meanings.get(code, f"status {code}"), _index(flat, status.shape, dims)))
    chosen += [(_named_label(p), _named_index(ds, dims, p)) for p in named]
    return chosen[:MAX_PANELS]


def _by_redchi(ds, status, dims) -> list[tuple[str, dict[str, int]]]:
    redchi = np.asarray(ds["redchi"].values, dtype=float)
    ok = (status == int(Status.CONVERGED)) & np.isfinite(redchi)
    if not ok.any():
        return []
    flat = np.flatnonzero(ok.ravel())
    values = redchi.ravel()[flat]
    order = np.argsort(values, kind="stable")
    picks = {"best redchi": order[0], "median redchi": order[len(order) // 2],
             "worst redchi": order[-1]}
    seen, out = set(), []
    for label, k in picks.items():
        if k not in seen:
            seen.add(k)
            out.append((label, _index(flat[k], status.shape, dims)))
    return out


def _index(flat: int, shape, dims) -> dict[str, int]:
    return dict(zip(dims, (int(i) for i in np.unravel_index(flat, shape)), strict=True))


def _named_label(pixel: Mapping[str, Any]) -> str:
    return "asked: " + ", ".join(f"{k}={v}" for k, v in pixel.items())


def _named_index(ds, dims, pixel: Mapping[str, Any]) -> dict[str, int]:
    if set(pixel) != set(dims):
        raise InputError(f"--pixel {dict(pixel)}: give one value for each pixel dim "
                         f"{list(dims)}")
    out = {}
    for dim, label in pixel.items():
        where: Any = np.flatnonzero(np.asarray(ds[dim].values) == label) if dim in ds.coords else []
        if len(where) == 0 and dim not in ds.coords and isinstance(label, int):
            where = [label] if 0 <= label < ds.sizes[dim] else []
        if len(where) == 0:
            raise InputError(f"--pixel: {dim}={label!r} is not a label of {dim!r} in the store")
        out[dim] = int(where[0])
    return out


def pixel_figure(mpl: Mpl, ds: xr.Dataset, path: Path,
                 named: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Draw the pixel page into ``path`` (see the module docstring).

    Raises
    ------
    ModelError
        If the stored model cannot be rebuilt here (a pickled or missing function).
    """
    chosen = choose_pixels(ds, named)
    nrows = max(1, -(-len(chosen) // NCOLS))
    fig = mpl.Figure(figsize=(PANEL_SIZE[0] * NCOLS, PANEL_SIZE[1] * nrows), dpi=100,
                     layout="constrained")
    mpl.Canvas(fig)
    grid = fig.add_gridspec(2 * nrows, NCOLS, height_ratios=[3, 1] * nrows)
    meanings = status_meanings(ds["status"])
    model = BatchfitAccessor(ds).model()
    for k, (label, index) in enumerate(chosen):
        row, col = divmod(k, NCOLS)
        top = fig.add_subplot(grid[2 * row, col])
        bottom = fig.add_subplot(grid[2 * row + 1, col], sharex=top)
        where = ", ".join(_where(ds, d, i) for d, i in index.items())
        _panel(top, bottom, ds.isel(index), model, f"{label}: {where}", meanings)
    if not chosen:
        fig.text(0.5, 0.5, "no fitted pixels to draw", ha="center", va="center")
    fig.suptitle(f"pixel fits: data, model, components, residual ({model.name})", fontsize=11)
    return save(fig, path)


def _where(ds: xr.Dataset, dim: str, index: int) -> str:
    if dim in ds.coords:
        return f"{dim}={np.asarray(ds[dim].values)[index]:.6g}"
    return f"{dim}[{index}]"


def _panel(top, bottom, one: xr.Dataset, model, label: str, meanings) -> None:
    acc = BatchfitAccessor(one)
    try:
        curves = acc.pixel(model=model, residual=_residual_kind(acc.cost)).compute()
        missing = ""
    except InputError:
        curves = acc.pixel(model=model, data=False).compute()
        missing = " (input not found: model only)"
    x = np.asarray(curves[acc.fit_dim].values, dtype=float)
    if "data" in curves:
        top.plot(x, curves["data"].values, ".", ms=3, color="0.35", label="data")
        bottom.plot(x, curves["residual"].values, "-", lw=0.8, color="C3")
        bottom.axhline(0.0, color="0.5", lw=0.5)
    top.plot(x, curves["model"].values, "-", lw=1.4, color="C0", label="model")
    if curves.sizes["component"] > 1:
        for i, name in enumerate(curves["component"].values):
            colour = COMPONENT_COLOURS[i % len(COMPONENT_COLOURS)]
            top.plot(x, curves["components"].sel(component=name).values, "--", lw=0.9,
                     color=colour, label=str(name))
    finite = np.isfinite(curves["model"].values).any() or (
        "data" in curves and np.isfinite(curves["data"].values).any())
    if not finite:
        note(top, "no finite data or model values")
    code = int(one["status"].values)
    top.set_title(f"{label}\nredchi={float(one['redchi'].values):.3g}, "
                  f"{meanings.get(code, code)}{missing}", fontsize=8)
    top.legend(fontsize=6, loc="best")
    top.tick_params(labelbottom=False, labelsize=7)
    bottom.tick_params(labelsize=7)
    bottom.set_xlabel(acc.fit_dim, fontsize=8)
    bottom.set_ylabel("(model - data)/√model" if acc.cost == "poisson" else "model - data",
                      fontsize=7)


def _residual_kind(cost: str) -> str:
    """The residual drawn: Pearson's for counts, ``model - data`` otherwise."""
    return "pearson" if cost == "poisson" else "raw"
