"""Helpers for the config and command-line tests: a job folder with a good config."""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path
from typing import Any

import yaml

GOOD: dict[str, Any] = {
    "input": {"path": "data/cube.zarr", "variable": "counts", "fit_dim": "energy",
              "chunks": {"y": 8, "x": 8}},
    "model": {"components": [{"type": "gaussian", "prefix": "p1_"},
                             {"type": "linear", "prefix": "bg_"}]},
    "parameters": {
        "p1_center": {"value": 0.0, "min": -5.0, "max": 5.0},
        "p1_sigma": {"value": 1.0, "min": 0.01},
        "bg_slope": {"value": 0.0, "vary": False},
    },
    "guess": True,
    "fit": {"engine": "lm", "max_nfev": 2000},
    "output": {"path": "results/cube_fit.zarr"},
    "cluster": {"kind": "local", "n_workers": 2},
}


def job_folder(root: Path) -> Path:
    """Make ``root`` hold an input 'store' and a results folder; return it."""
    (root / "data" / "cube.zarr").mkdir(parents=True, exist_ok=True)
    (root / "results").mkdir(exist_ok=True)
    return root


def good_config() -> dict[str, Any]:
    """A fresh deep copy of :data:`GOOD`."""
    return copy.deepcopy(GOOD)


def edit(data: dict[str, Any], key: str, value: Any = None, *, delete: bool = False) -> dict:
    """Set (or delete) the dotted ``key`` in ``data`` in place; return ``data``."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        last = int(last)
    if delete:
        del node[last]
    else:
        node[last] = value
    return data


def write_config(folder: Path, data: dict | None = None, *, text: str | None = None,
                 name: str = "job.yaml") -> Path:
    """Write ``data`` as YAML (or ``text`` verbatim) to ``folder/name``; return the path."""
    path = folder / name
    path.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False))
    return path


def listing(folder: Path) -> list[str]:
    """Every path under ``folder``, relative and sorted (to check nothing was written)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


class FakeSummary:
    """What ``pipeline.run`` returns, per the job-layer contract."""

    pixels = 64
    n_success = 60
    status_counts = {"converged": 60, "bad_data": 3, "masked": 1}
    fits_per_s = 1234.5
    elapsed = 0.25
    output = Path("/somewhere/cube_fit.zarr")
    fitted = 48
    chunks_computed = 3
    chunks_skipped = 1


HOMES = {"run": "batchfit.pipeline", "validate": "batchfit.describe",
         "status": "batchfit.describe", "demo": "batchfit.demo"}
"""The module the command line takes each job-layer function from."""


def fake_pipeline(monkeypatch, **functions) -> None:
    """Install stand-in job-layer modules (:data:`HOMES`) holding ``functions``."""
    modules = {}
    for name, func in functions.items():
        home = HOMES[name]
        module = modules.setdefault(home, types.ModuleType(home))
        setattr(module, name, func)
    for home, module in modules.items():
        monkeypatch.setitem(sys.modules, home, module)
