"""PNG maps, pixel fits, histograms and a text summary of a result store (``batchfit report``).

:func:`make_report` reads a store laid out as in the README's "The output store"
(one variable per parameter, ``<param>_stderr``, ``chisqr``, ``redchi``,
``nfev``, ``success``, ``status``) and writes, into ``<store>_report/`` by
default:

- ``<param>.png``: map of the best-fit value and of its standard error, with a
  histogram of each (:mod:`batchfit.report.maps`);
- ``redchi.png``: map and histogram of the reduced chi-square;
- ``status.png``: categorical map of the status codes with their meanings,
  and a bar chart of their counts;
- ``pixels.png``: data, model, components and residual of the pixels at the
  best, median and worst redchi, a few of each failure status, and pixels
  asked for (:mod:`batchfit.report.pixels`);
- ``summary.txt``: pixels, success rate, status counts, per-parameter median
  and 16th/84th percentiles of value and stderr, median redchi
  (:mod:`batchfit.report.summary`).

Pixel dims of any number are handled: 2-D maps are drawn as images, 1-D
results as line plots, and results with more than two pixel dims show the
first index of the extra leading dims (the figure title says which).

matplotlib is optional (``pip install "batchfit[plot]"``); it is imported
only when a report is made, and always with the non-interactive Agg canvas,
so no display is needed and pyplot's global state is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batchfit.errors import ModelError, StoreError
from batchfit.report.maps import (
    DPI,
    FIGSIZE,
    PlotDependencyError,
    load_matplotlib,
    map_view,
    open_store,
    parameter_figure,
    redchi_figure,
    status_figure,
)
from batchfit.report.pixels import parse_pixel, pixel_figure
from batchfit.report.summary import (
    parameter_names,
    pixel_dims,
    status_counts,
    status_meanings,
    summary_text,
)

__all__ = ["DPI", "FIGSIZE", "PlotDependencyError", "default_out_dir", "make_report",
           "map_view", "parameter_names", "pixel_dims", "report", "status_counts",
           "status_meanings", "summary_text"]


def make_report(store_path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                pixels: Sequence[str | Mapping[str, Any]] = ()) -> list[Path]:
    """Write PNG figures and ``summary.txt`` for a result store.

    Parameters
    ----------
    store_path : path-like
        A zarr result store (README "The output store").
    out_dir : path-like, optional
        Folder for the files; created if needed. Default: ``<store>_report``
        next to the store (``cube_fit.zarr`` -> ``cube_fit_report``).
    pixels : sequence of str or dict
        Extra pixels for ``pixels.png``: ``"y=3,x=5"`` or ``{"y": 3, "x": 5}``
        (labels of the pixel dims).

    Returns
    -------
    list of Path
        The files written: one PNG per parameter, ``redchi.png``,
        ``status.png``, ``pixels.png`` and ``summary.txt``. When the model
        cannot be rebuilt here (a pickled function), ``pixels.png`` is left
        out and ``summary.txt`` says why.

    Raises
    ------
    PlotDependencyError
        If matplotlib is not installed (install ``batchfit[plot]``).
    StoreError
        If the store does not exist or is not a batchfit result store.
    """
    mpl = load_matplotlib()
    store_path = Path(store_path)
    ds = open_store(store_path)
    named = [parse_pixel(p) if isinstance(p, str) else dict(p) for p in pixels]
    out = Path(out_dir) if out_dir is not None else default_out_dir(store_path)
    out.mkdir(parents=True, exist_ok=True)
    written = [parameter_figure(mpl, ds, name, out / f"{name}.png")
               for name in parameter_names(ds)]
    written.append(redchi_figure(mpl, ds, out / "redchi.png"))
    written.append(status_figure(mpl, ds, out / "status.png"))
    text = summary_text(ds, store_path)
    try:
        written.append(pixel_figure(mpl, ds, out / "pixels.png", named))
    except (ModelError, StoreError) as exc:
        text += f"pixels.png not drawn: {exc}\n"
    summary = out / "summary.txt"
    summary.write_text(text, encoding="utf-8")
    return [*written, summary]


def report(store_path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
           pixels: Sequence[str | Mapping[str, Any]] = ()) -> str:
    """Make the report and return a few lines saying what was written (the CLI's output).

    See :func:`make_report` for the parameters and errors.
    """
    files = make_report(store_path, out_dir, pixels)
    folder = files[0].parent
    pngs = [f.name for f in files if f.suffix == ".png"]
    return (f"report written to {folder}: {len(pngs)} figures ({', '.join(pngs)}) "
            f"and summary.txt\n" + (folder / "summary.txt").read_text(encoding="utf-8"))


def default_out_dir(store_path: Path) -> Path:
    """``<store>_report`` next to the store, without the ``.zarr`` suffix."""
    store_path = Path(os.path.abspath(store_path))
    stem = store_path.name.removesuffix(".zarr") or "results"
    return store_path.with_name(f"{stem}_report")


