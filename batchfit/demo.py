"""``batchfit demo``: a synthetic cube, a config and a job, run end to end."""

from __future__ import annotations

import os
from pathlib import Path

from batchfit.config import load_config
from batchfit.pipeline import run
from batchfit.stack.synthetic import make_cube, write_cube


def demo(folder: str | os.PathLike, ny: int = 48, nx: int = 48, npts: int = 64) -> str:
    """Make a synthetic cube and a config in ``folder``, run it and its report.

    Returns the summary text; the report (PNG maps) is skipped with a note
    when matplotlib is not installed.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_cube(make_cube(ny, nx, npts, seed=0), folder / "cube.zarr", {"y": 16, "x": 16})
    cfg_path = folder / "config.yaml"
    cfg_path.write_text(DEMO_CONFIG)
    summary = run(load_config(cfg_path), overwrite=True)
    rate = 100.0 * summary.n_success / max(summary.pixels, 1)
    text = (f"demo config: {cfg_path}\n"
            f"pixels fitted: {summary.pixels} ({rate:.1f}% succeeded), "
            f"{summary.fits_per_s:.0f} fits/s\noutput: {summary.output}")
    from batchfit.report import PlotDependencyError, report

    try:
        return text + "\n" + report(summary.output, folder / "report")
    except PlotDependencyError as exc:
        return text + f"\nreport skipped: {exc}"


DEMO_CONFIG = """\
# batchfit demo job: a Gaussian peak on a sloped background in every pixel
input:
  path: cube.zarr
  variable: counts
  fit_dim: energy
  sigma: counts_err
  chunks: {y: 16, x: 16}
model:
  components:
    - {type: gaussian, prefix: p1_}
    - {type: linear, prefix: bg_}
parameters:
  p1_sigma: {value: 1.0, min: 0.05}
guess: true
fit:
  engine: lm
output:
  path: results.zarr
cluster:
  kind: local
  n_workers: 2
"""
