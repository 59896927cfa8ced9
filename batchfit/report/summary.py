"""Text side of a report: parameter names, status meanings and counts, ``summary.txt``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from batchfit.status import Status, count

SUMMARY_PERCENTILES = (16.0, 50.0, 84.0)


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
    out = dict.fromkeys(status_meanings(ds["status"]), 0)
    out.update({int(c): n for c, n in count(ds["status"].values).items() if n})
    return dict(sorted(out.items()))


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
