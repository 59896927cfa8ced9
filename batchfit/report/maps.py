"""Maps of a result store: one figure per parameter, redchi and status (see :mod:`batchfit.report`).

Also the figure helpers the other report modules share (:func:`load_matplotlib`,
:func:`figure`, :func:`save`, :func:`title`, :func:`note`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from batchfit.errors import BatchfitError, StoreError
from batchfit.report.summary import status_counts, status_meanings

FIGSIZE = (10.0, 4.5)  # inches; 1000 x 450 px at DPI
DPI = 100
NAN_COLOUR = "#ff00ff"  # magenta: not in viridis/cividis, so a NaN pixel stands out
ROBUST_PERCENTILES = (1.0, 99.0)  # colour and histogram range: outliers do not wash out maps
HIST_BINS = 40
STATUS_COLOURS = {  # by Status code; unknown codes get grey
    0: "#2ca02c", 1: "#ff7f0e", 2: "#8c564b", 3: "#d62728", 4: "#7f7f7f", 5: "#c7c7c7",
}  # fmt: skip
STAT_VARS = ("chisqr", "redchi", "nfev", "success", "status")


class PlotDependencyError(BatchfitError, ImportError):
    """matplotlib, needed for reports, is not installed."""


# ---------------------------------------------------------------- reading


def load_matplotlib() -> Any:
    """Import matplotlib lazily; a clear install hint when it is missing."""
    try:
        import matplotlib  # first, so a missing package fails even with submodules cached
        from matplotlib import colors, patches
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotDependencyError(
            "batchfit report needs matplotlib, which is not installed "
            f"({exc}); install it with: pip install \"batchfit[plot]\"") from None
    return Mpl(Figure, FigureCanvasAgg, colors, patches, matplotlib.colormaps)


@dataclass(frozen=True)
class Mpl:
    """The matplotlib pieces a report draws with (Agg canvas, no pyplot)."""

    Figure: Any
    Canvas: Any
    colors: Any
    patches: Any
    colormaps: Any


def open_store(path: Path) -> xr.Dataset:
    """Open a result store lazily; StoreError if it is missing or not a batchfit store."""
    if not path.exists():
        raise StoreError(f"{path}: no result store there (expected a zarr folder "
                         "written by batchfit submit)")
    try:
        ds = xr.open_zarr(path)
    except Exception as exc:  # zarr raises many types for a folder that is not a store
        raise StoreError(f"{path}: cannot open as a zarr store: "
                         f"{type(exc).__name__}: {exc}") from None
    missing = [v for v in STAT_VARS if v not in ds.data_vars]
    if missing:
        raise StoreError(f"{path}: not a batchfit result store; missing variable(s) "
                         f"{', '.join(missing)}")
    return ds


@dataclass(frozen=True)
class View:
    """What one panel shows: values over at most two pixel dims, and a note."""

    values: np.ndarray  # (ny, nx) or (n,)
    dims: tuple[str, ...]
    coords: tuple[np.ndarray, ...]
    note: str  # "" or e.g. "band=0 of 3"


def map_view(da: xr.DataArray) -> View:
    """Reduce ``da`` to its last two pixel dims, taking index 0 of the leading ones."""
    lead = tuple(str(d) for d in da.dims[:-2]) if da.ndim > 2 else ()
    note = ", ".join(f"{d}={_coord_label(da, d)} (first of {da.sizes[d]})" for d in lead)
    da = da.isel({d: 0 for d in lead})
    coords = tuple(_axis_values(da, str(d)) for d in da.dims)
    values = np.asarray(da.values)
    if values.ndim == 0:
        values = values.reshape(1)
    return View(values, tuple(str(d) for d in da.dims), coords, note)


def _coord_label(da: xr.DataArray, dim: str) -> str:
    if dim in da.coords:
        return str(np.asarray(da[dim].values)[0])
    return "0"


def _axis_values(da: xr.DataArray, dim: str) -> np.ndarray:
    """Numeric coordinate values of ``dim`` if it has a usable one, else indices."""
    n = da.sizes[dim]
    if dim in da.coords:
        vals = np.asarray(da[dim].values)
        if np.issubdtype(vals.dtype, np.number) and vals.ndim == 1 and np.all(np.isfinite(vals)):
            return vals.astype(float)
    return np.arange(n, dtype=float)


# ---------------------------------------------------------------- figures


def figure(mpl: Mpl, ncols: int, width_ratios: Sequence[float]):
    """A one-row figure of ``ncols`` axes at the report's fixed size."""
    fig = mpl.Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    mpl.Canvas(fig)
    axes = fig.subplots(1, ncols, gridspec_kw={"width_ratios": list(width_ratios)})
    return fig, list(np.atleast_1d(axes))


def save(fig, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` and return the path."""
    fig.savefig(path, dpi=DPI)  # no bbox_inches='tight': keeps the pixel size fixed
    return path


def title(fig, text: str, note: str) -> None:
    """Figure title, with a note in brackets when there is one."""
    fig.suptitle(f"{text}  [{note}]" if note else text, fontsize=13)


def parameter_figure(mpl: Mpl, ds: xr.Dataset, name: str, path: Path) -> Path:
    """Map and histogram of parameter ``name`` and of its stderr, written to ``path``."""
    fig, (ax_map, ax_hist, ax_emap, ax_ehist) = figure(mpl, 4, (1.35, 1, 1.35, 1))
    value, stderr = map_view(ds[name]), map_view(ds[f"{name}_stderr"])
    _map_panel(mpl, fig, ax_map, value, name)
    _hist_panel(ax_hist, value.values, name)
    _map_panel(mpl, fig, ax_emap, stderr, f"{name}_stderr")
    _hist_panel(ax_ehist, stderr.values, f"{name}_stderr")
    title(fig, f"parameter {name}: best-fit value and standard error", value.note)
    return save(fig, path)


def redchi_figure(mpl: Mpl, ds: xr.Dataset, path: Path) -> Path:
    """Map and histogram of the reduced chi-square, written to ``path``."""
    fig, (ax_map, ax_hist) = figure(mpl, 2, (1.3, 1))
    view = map_view(ds["redchi"])
    _map_panel(mpl, fig, ax_map, view, "redchi")
    _hist_panel(ax_hist, view.values, "redchi")
    title(fig, "reduced chi-square", view.note)
    return save(fig, path)


def _robust_range(finite: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(finite, ROBUST_PERCENTILES)
    if not lo < hi:  # constant map: widen so the colour scale is defined
        pad = max(abs(lo) * 1e-3, 1e-12)
        lo, hi = lo - pad, hi + pad
    return float(lo), float(hi)


def _map_panel(mpl: Mpl, fig, ax, view: View, label: str) -> None:
    values = np.asarray(view.values, dtype=float)
    finite = values[np.isfinite(values)]
    n_nan = values.size - finite.size
    if view.values.ndim == 1:
        _line_panel(ax, view, label, finite, n_nan)
        return
    _image_axes(ax, view)
    if finite.size == 0:
        _all_nan_image(mpl, ax, view, label)
        return
    lo, hi = _robust_range(finite)
    cmap = _cmap_with_nan(mpl, "viridis")
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", cmap=cmap, vmin=lo,
                      vmax=hi, extent=_extent(view), aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, extend=_extend(finite, lo, hi), shrink=0.9, pad=0.02)
    ax.set_title(label if not n_nan else f"{label} ({n_nan} NaN)", fontsize=10)
    if n_nan:
        ax.legend(handles=[mpl.patches.Patch(color=NAN_COLOUR, label="NaN")],
                  loc="upper right", fontsize=8, framealpha=0.8)


def _cmap_with_nan(mpl: Mpl, name: str):
    return mpl.colormaps[name].with_extremes(bad=NAN_COLOUR)


def _all_nan_image(mpl: Mpl, ax, view: View, label: str) -> None:
    cmap = mpl.colors.ListedColormap([NAN_COLOUR])
    ax.imshow(np.zeros(view.values.shape), origin="lower", cmap=cmap, extent=_extent(view),
              aspect="auto", interpolation="nearest")
    ax.set_title(f"{label}: all NaN", fontsize=10)
    note(ax, "all NaN\n(not estimated)")


def _image_axes(ax, view: View) -> None:
    ax.set_xlabel(view.dims[1])
    ax.set_ylabel(view.dims[0])


def _extent(view: View) -> list[float]:
    """Image extent from the coordinates (pixel centres), for evenly spaced numeric axes."""
    out: list[float] = []
    for axis in (view.coords[1], view.coords[0]):
        step = (axis[-1] - axis[0]) / (axis.size - 1) if axis.size > 1 else 1.0
        if step == 0 or not np.allclose(np.diff(axis), step, rtol=1e-3, atol=0):
            axis, step = np.arange(axis.size, dtype=float), 1.0  # uneven: fall back to indices
        out += [axis[0] - step / 2, axis[-1] + step / 2]
    return out


def _extend(finite: np.ndarray, lo: float, hi: float) -> str:
    below, above = bool((finite < lo).any()), bool((finite > hi).any())
    return {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
        (below, above), "neither")


def _line_panel(ax, view: View, label: str, finite: np.ndarray, n_nan: int) -> None:
    x, y = view.coords[0], np.asarray(view.values, dtype=float)
    ax.set_xlabel(view.dims[0])
    ax.set_ylabel(label)
    if finite.size == 0:
        ax.set_title(f"{label}: all NaN", fontsize=10)
        note(ax, "all NaN\n(not estimated)")
        return
    ax.plot(x, y, ".-", color="C0", lw=1, ms=3)
    nan = ~np.isfinite(y)
    if nan.any():
        # NaN pixels as magenta ticks along the bottom edge (x in data, y in axes units).
        ax.plot(x[nan], np.full(nan.sum(), 0.03), "|", color=NAN_COLOUR, ms=12, mew=2,
                transform=ax.get_xaxis_transform(), label="NaN")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(label if not n_nan else f"{label} ({n_nan} NaN)", fontsize=10)


def _hist_panel(ax, values: np.ndarray, label: str) -> None:
    values = np.asarray(values, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    ax.set_xlabel(label)
    ax.set_ylabel("pixels")
    ax.set_title("histogram", fontsize=10)
    # Self-contained tick labels: an offset text ("1e-6") would collide with the x label.
    ax.xaxis.set_major_formatter(_short_number)
    if finite.size == 0:
        ax.set_xticks([])
        ax.set_yticks([])
        note(ax, "no finite\nvalues")
        return
    lo, hi = _robust_range(finite)
    inside = finite[(finite >= lo) & (finite <= hi)]
    ax.hist(inside, bins=HIST_BINS, range=(lo, hi), color="C0", edgecolor="white", lw=0.3)
    outside = finite.size - inside.size
    text = f"n={finite.size}" + (f"\n{outside} outside\n1-99%" if outside else "")
    ax.text(0.97, 0.97, text, transform=ax.transAxes, ha="right", va="top", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.8", "alpha": 0.8})
    ax.tick_params(axis="x", labelsize=8)
    ax.locator_params(axis="x", nbins=4)


def _short_number(value: float, _pos: Any = None) -> str:
    """Tick label with 3 significant digits (``0.00455``, ``2e-06``, ``6.6e+03``)."""
    return f"{value:.3g}"


def note(ax, text: str) -> None:
    """A boxed note in the middle of ``ax``."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=10,
            color="0.2", bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"})


# ---------------------------------------------------------------- status


def status_figure(mpl: Mpl, ds: xr.Dataset, path: Path) -> Path:
    """Status map with its meanings and a bar chart of the counts, written to ``path``."""
    fig, (ax_map, ax_bar) = figure(mpl, 2, (1.3, 1))
    meanings = status_meanings(ds["status"])
    counts = status_counts(ds)
    view = map_view(ds["status"])
    codes = sorted(counts)
    colours = [STATUS_COLOURS.get(c, "#bcbd22") for c in codes]
    if view.values.ndim == 1:
        _status_line(ax_map, view, codes, colours)
    else:
        _status_image(mpl, ax_map, view, codes, colours)
    handles = [mpl.patches.Patch(color=col, label=f"{c}: {meanings.get(c, 'unknown')}")
               for c, col in zip(codes, colours, strict=True) if counts[c]]
    ax_map.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  title="status", title_fontsize=9, borderaxespad=0)
    _status_bars(ax_bar, codes, colours, counts, meanings)
    title(fig, "fit status", view.note)
    return save(fig, path)


def _status_image(mpl: Mpl, ax, view: View, codes: list[int], colours: list[str]) -> None:
    cmap = mpl.colors.ListedColormap(colours)
    arr = np.asarray(codes, dtype=float)
    edges = np.concatenate([[arr[0] - 0.5], (arr[:-1] + arr[1:]) / 2, [arr[-1] + 0.5]])
    norm = mpl.colors.BoundaryNorm(edges, cmap.N)
    ax.imshow(view.values.astype(float), origin="lower", cmap=cmap, norm=norm,
              extent=_extent(view), aspect="auto", interpolation="nearest")
    _image_axes(ax, view)
    ax.set_title("status map", fontsize=10)


def _status_line(ax, view: View, codes: list[int], colours: list[str]) -> None:
    x, y = view.coords[0], view.values.astype(int)
    for code, colour in zip(codes, colours, strict=True):
        hit = y == code
        if hit.any():
            ax.plot(x[hit], y[hit], "s", color=colour, ms=5)
    ax.set_yticks(codes)
    ax.set_xlabel(view.dims[0])
    ax.set_ylabel("status code")
    ax.set_title("status along " + view.dims[0], fontsize=10)


def _status_bars(ax, codes, colours, counts: Mapping[int, int], meanings) -> None:
    labels = [meanings.get(c, f"code {c}") for c in codes]
    heights = [counts[c] for c in codes]
    bars = ax.barh(labels, heights, color=colours, edgecolor="0.3", lw=0.5)
    ax.bar_label(bars, labels=[str(h) for h in heights], padding=2, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("pixels")
    ax.set_title(f"status counts ({sum(heights)} pixels)", fontsize=10)
    ax.margins(x=0.15)


