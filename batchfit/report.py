"""PNG maps, histograms and a text summary of a result store (``batchfit report``).

:func:`make_report` reads a store laid out as in the README's "The output store"
(one variable per parameter, ``<param>_stderr``, ``chisqr``, ``redchi``,
``nfev``, ``success``, ``status``) and writes, into ``<store>_report/`` by
default:

- ``<param>.png``: map of the best-fit value and of its standard error, with a
  histogram of each;
- ``redchi.png``: map and histogram of the reduced chi-square;
- ``status.png``: categorical map of the status codes with their meanings,
  and a bar chart of their counts;
- ``summary.txt``: pixels, success rate, status counts, per-parameter median
  and 16th/84th percentiles of value and stderr, median redchi.

Pixel dims of any number are handled: 2-D maps are drawn as images, 1-D
results as line plots, and results with more than two pixel dims show the
first index of the extra leading dims (the figure title says which).

matplotlib is optional (``pip install "batchfit[plot]"``); it is imported
only when a report is made, and always with the non-interactive Agg canvas,
so no display is needed and pyplot's global state is never touched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from batchfit.errors import BatchfitError, StoreError
from batchfit.status import Status

__all__ = ["PlotDependencyError", "make_report", "report"]

FIGSIZE = (10.0, 4.5)  # inches; 1000 x 450 px at DPI
DPI = 100
NAN_COLOUR = "#ff00ff"  # magenta: not in viridis/cividis, so a NaN pixel stands out
ROBUST_PERCENTILES = (1.0, 99.0)  # colour and histogram range: outliers do not wash out maps
HIST_BINS = 40
SUMMARY_PERCENTILES = (16.0, 50.0, 84.0)
STATUS_COLOURS = {  # by Status code; unknown codes get grey
    0: "#2ca02c", 1: "#ff7f0e", 2: "#8c564b", 3: "#d62728", 4: "#7f7f7f", 5: "#c7c7c7",
}  # fmt: skip
STAT_VARS = ("chisqr", "redchi", "nfev", "success", "status")


class PlotDependencyError(BatchfitError, ImportError):
    """matplotlib, needed for reports, is not installed."""


# ---------------------------------------------------------------- public API


def make_report(store_path: str | os.PathLike, out_dir: str | os.PathLike | None = None
                ) -> list[Path]:
    """Write PNG figures and ``summary.txt`` for a result store.

    Parameters
    ----------
    store_path : path-like
        A zarr result store (README "The output store").
    out_dir : path-like, optional
        Folder for the files; created if needed. Default: ``<store>_report``
        next to the store (``cube_fit.zarr`` -> ``cube_fit_report``).

    Returns
    -------
    list of Path
        The files written: one PNG per parameter, ``redchi.png``,
        ``status.png`` and ``summary.txt``.

    Raises
    ------
    PlotDependencyError
        If matplotlib is not installed (install ``batchfit[plot]``).
    StoreError
        If the store does not exist or is not a batchfit result store.
    """
    mpl = _matplotlib()
    store_path = Path(store_path)
    ds = _open(store_path)
    out = Path(out_dir) if out_dir is not None else default_out_dir(store_path)
    out.mkdir(parents=True, exist_ok=True)
    written = [_parameter_figure(mpl, ds, name, out / f"{name}.png")
               for name in parameter_names(ds)]
    written.append(_redchi_figure(mpl, ds, out / "redchi.png"))
    written.append(_status_figure(mpl, ds, out / "status.png"))
    summary = out / "summary.txt"
    summary.write_text(summary_text(ds, store_path), encoding="utf-8")
    return [*written, summary]


def report(store_path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> str:
    """Make the report and return a few lines saying what was written (the CLI's output).

    See :func:`make_report` for the parameters and errors.
    """
    files = make_report(store_path, out_dir)
    folder = files[0].parent
    pngs = [f.name for f in files if f.suffix == ".png"]
    return (f"report written to {folder}: {len(pngs)} figures ({', '.join(pngs)}) "
            f"and summary.txt\n" + (folder / "summary.txt").read_text(encoding="utf-8"))


def default_out_dir(store_path: Path) -> Path:
    """``<store>_report`` next to the store, without the ``.zarr`` suffix."""
    store_path = Path(os.path.abspath(store_path))
    stem = store_path.name.removesuffix(".zarr") or "results"
    return store_path.with_name(f"{stem}_report")


def parameter_names(ds: xr.Dataset) -> list[str]:
    """Parameters of a result Dataset: the variables that have a ``<name>_stderr`` partner.

    In template order when the store records its template (``attrs['template']``),
    else in the store's order.
    """
    found = [str(n) for n in ds.data_vars if f"{n}_stderr" in ds.data_vars]
    order = {name: i for i, name in enumerate(_template_order(ds.attrs.get("template")))}
    return sorted(found, key=lambda n: order.get(n, len(order)))


def _template_order(template: Any) -> list[str]:
    """Parameter names from a ``Parameters.dumps()`` JSON text; [] if unreadable."""
    try:
        entries = json.loads(template)
        return [str(e["name"]) for e in entries]
    except (TypeError, ValueError, KeyError):
        return []


def pixel_dims(ds: xr.Dataset) -> tuple[str, ...]:
    """The pixel dims of a result Dataset (the dims of ``status``)."""
    return tuple(str(d) for d in ds["status"].dims)


# ---------------------------------------------------------------- reading


def _matplotlib() -> Any:
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
    return _Mpl(Figure, FigureCanvasAgg, colors, patches, matplotlib.colormaps)


@dataclass(frozen=True)
class _Mpl:
    Figure: Any
    Canvas: Any
    colors: Any
    patches: Any
    colormaps: Any


def _open(path: Path) -> xr.Dataset:
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
class _View:
    """What one panel shows: values over at most two pixel dims, and a note."""

    values: np.ndarray  # (ny, nx) or (n,)
    dims: tuple[str, ...]
    coords: tuple[np.ndarray, ...]
    note: str  # "" or e.g. "band=0 of 3"


def _view(da: xr.DataArray) -> _View:
    """Reduce ``da`` to its last two pixel dims, taking index 0 of the leading ones."""
    lead = da.dims[:-2] if da.ndim > 2 else ()
    note = ", ".join(f"{d}={_coord_label(da, d)} (first of {da.sizes[d]})" for d in lead)
    da = da.isel({d: 0 for d in lead})
    coords = tuple(_axis_values(da, d) for d in da.dims)
    values = np.asarray(da.values)
    if values.ndim == 0:
        values = values.reshape(1)
    return _View(values, tuple(str(d) for d in da.dims), coords, note)


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


def _figure(mpl: _Mpl, ncols: int, width_ratios: Sequence[float]):
    fig = mpl.Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    mpl.Canvas(fig)
    axes = fig.subplots(1, ncols, gridspec_kw={"width_ratios": list(width_ratios)})
    return fig, list(np.atleast_1d(axes))


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)  # no bbox_inches='tight': keeps the pixel size fixed
    return path


def _title(fig, text: str, note: str) -> None:
    fig.suptitle(f"{text}  [{note}]" if note else text, fontsize=13)


def _parameter_figure(mpl: _Mpl, ds: xr.Dataset, name: str, path: Path) -> Path:
    fig, (ax_map, ax_hist, ax_emap, ax_ehist) = _figure(mpl, 4, (1.35, 1, 1.35, 1))
    value, stderr = _view(ds[name]), _view(ds[f"{name}_stderr"])
    _map_panel(mpl, fig, ax_map, value, name)
    _hist_panel(ax_hist, value.values, name)
    _map_panel(mpl, fig, ax_emap, stderr, f"{name}_stderr")
    _hist_panel(ax_ehist, stderr.values, f"{name}_stderr")
    _title(fig, f"parameter {name}: best-fit value and standard error", value.note)
    return _save(fig, path)


def _redchi_figure(mpl: _Mpl, ds: xr.Dataset, path: Path) -> Path:
    fig, (ax_map, ax_hist) = _figure(mpl, 2, (1.3, 1))
    view = _view(ds["redchi"])
    _map_panel(mpl, fig, ax_map, view, "redchi")
    _hist_panel(ax_hist, view.values, "redchi")
    _title(fig, "reduced chi-square", view.note)
    return _save(fig, path)


def _robust_range(finite: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(finite, ROBUST_PERCENTILES)
    if not lo < hi:  # constant map: widen so the colour scale is defined
        pad = max(abs(lo) * 1e-3, 1e-12)
        lo, hi = lo - pad, hi + pad
    return float(lo), float(hi)


def _map_panel(mpl: _Mpl, fig, ax, view: _View, label: str) -> None:
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


def _cmap_with_nan(mpl: _Mpl, name: str):
    return mpl.colormaps[name].with_extremes(bad=NAN_COLOUR)


def _all_nan_image(mpl: _Mpl, ax, view: _View, label: str) -> None:
    cmap = mpl.colors.ListedColormap([NAN_COLOUR])
    ax.imshow(np.zeros(view.values.shape), origin="lower", cmap=cmap, extent=_extent(view),
              aspect="auto", interpolation="nearest")
    ax.set_title(f"{label}: all NaN", fontsize=10)
    _note(ax, "all NaN\n(not estimated)")


def _image_axes(ax, view: _View) -> None:
    ax.set_xlabel(view.dims[1])
    ax.set_ylabel(view.dims[0])


def _extent(view: _View) -> list[float]:
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


def _line_panel(ax, view: _View, label: str, finite: np.ndarray, n_nan: int) -> None:
    x, y = view.coords[0], np.asarray(view.values, dtype=float)
    ax.set_xlabel(view.dims[0])
    ax.set_ylabel(label)
    if finite.size == 0:
        ax.set_title(f"{label}: all NaN", fontsize=10)
        _note(ax, "all NaN\n(not estimated)")
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
        _note(ax, "no finite\nvalues")
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


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=10,
            color="0.2", bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"})


# ---------------------------------------------------------------- status


def status_meanings(da: xr.DataArray) -> dict[int, str]:
    """``code -> meaning`` from the CF ``flag_values``/``flag_meanings`` attrs.

    Falls back to :class:`batchfit.status.Status` when the attrs are missing
    or inconsistent.
    """
    values, meanings = da.attrs.get("flag_values"), da.attrs.get("flag_meanings")
    if values is not None and isinstance(meanings, str):
        codes = [int(v) for v in np.atleast_1d(values)]
        words = meanings.split()
        if len(codes) == len(words):
            return dict(zip(codes, words, strict=True))
    return {int(s): s.name.lower() for s in Status}


def status_counts(ds: xr.Dataset) -> dict[int, int]:
    """How many pixels hold each status code (every known code, zeros included)."""
    codes = np.asarray(ds["status"].values).ravel().astype(int)
    found, counts = np.unique(codes, return_counts=True)
    out = dict.fromkeys(status_meanings(ds["status"]), 0)
    out.update({int(c): int(n) for c, n in zip(found, counts, strict=True)})
    return dict(sorted(out.items()))


def _status_figure(mpl: _Mpl, ds: xr.Dataset, path: Path) -> Path:
    fig, (ax_map, ax_bar) = _figure(mpl, 2, (1.3, 1))
    meanings = status_meanings(ds["status"])
    counts = status_counts(ds)
    view = _view(ds["status"])
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
    _title(fig, "fit status", view.note)
    return _save(fig, path)


def _status_image(mpl: _Mpl, ax, view: _View, codes: list[int], colours: list[str]) -> None:
    cmap = mpl.colors.ListedColormap(colours)
    arr = np.asarray(codes, dtype=float)
    edges = np.concatenate([[arr[0] - 0.5], (arr[:-1] + arr[1:]) / 2, [arr[-1] + 0.5]])
    norm = mpl.colors.BoundaryNorm(edges, cmap.N)
    ax.imshow(view.values.astype(float), origin="lower", cmap=cmap, norm=norm,
              extent=_extent(view), aspect="auto", interpolation="nearest")
    _image_axes(ax, view)
    ax.set_title("status map", fontsize=10)


def _status_line(ax, view: _View, codes: list[int], colours: list[str]) -> None:
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


# ---------------------------------------------------------------- summary


def _percentiles(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "all NaN"
    p16, p50, p84 = np.percentile(finite, SUMMARY_PERCENTILES)
    return f"{p50:.6g} [{p16:.6g}, {p84:.6g}]"


def summary_text(ds: xr.Dataset, store_path: Path | None = None) -> str:
    """The text of ``summary.txt``: pixels, success, status counts, parameter percentiles."""
    dims = pixel_dims(ds)
    n = int(np.prod([ds.sizes[d] for d in dims])) if dims else 1
    ok = int(np.asarray(ds["success"].values).sum())
    rate = 100.0 * ok / n if n else 0.0
    redchi = np.asarray(ds["redchi"].values, dtype=float).ravel()
    counts = status_counts(ds)
    tried = n - counts.get(int(Status.MASKED), 0) - counts.get(int(Status.NOT_RUN), 0)
    tried_rate = 100.0 * ok / tried if tried else 0.0
    lines = [f"batchfit report of {store_path}" if store_path else "batchfit report",
             f"pixels: {n} ({', '.join(f'{d}={ds.sizes[d]}' for d in dims) or 'scalar'})",
             f"success: {ok} of {n} ({rate:.1f}%)",
             f"success of fitted pixels (not masked, not run): {ok} of {tried} "
             f"({tried_rate:.1f}%)",
             "status counts:"]
    meanings = status_meanings(ds["status"])
    lines += [f"  {code} {meanings.get(code, 'unknown'):<12s} {count}"
              for code, count in counts.items()]
    lines.append(f"median redchi [16th, 84th percentile]: {_percentiles(redchi)}")
    lines.append("parameters: median [16th, 84th percentile] over finite pixels")
    width = max([len(p) for p in parameter_names(ds)] + [9])
    lines.append(f"  {'name':<{width}s}  value  |  stderr")
    for name in parameter_names(ds):
        value = np.asarray(ds[name].values, dtype=float).ravel()
        err = np.asarray(ds[f"{name}_stderr"].values, dtype=float).ravel()
        lines.append(f"  {name:<{width}s}  {_percentiles(value)}  |  {_percentiles(err)}")
    return "\n".join(lines) + "\n"
