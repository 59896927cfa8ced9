"""Shared fixtures of the stack tests: a small synthetic cube and job configs."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from batchfit.config import JobConfig
from batchfit.stack.synthetic import make_cube, write_cube

REPO = Path(__file__).resolve().parents[2]
PARAMS = ("p1_amplitude", "p1_center", "p1_sigma", "bg_slope", "bg_intercept")


@pytest.fixture(scope="session")
def cube():
    """12 x 10 pixels, 48 points, two all-NaN pixels; truth_* variables inside."""
    return make_cube(12, 10, 48, seed=3, n_bad=2)


@pytest.fixture(scope="session")
def cube_path(tmp_path_factory, cube):
    path = tmp_path_factory.mktemp("input") / "cube.zarr"
    write_cube(cube, path, {"y": 4, "x": 5})
    return path


@pytest.fixture(scope="session")
def fault_cube_path(tmp_path_factory):
    """A cube for the fault tests: 7 x 7 = 49 chunks of 4 x 4 pixels."""
    path = tmp_path_factory.mktemp("fault") / "cube.zarr"
    write_cube(make_cube(28, 28, 40, seed=11), path, {"y": 28, "x": 28})
    return path


def job_dict(input_path, output_path, **changes) -> dict:
    """A Gaussian + line job over a cube from :func:`make_cube`."""
    data = {
        "input": {"path": str(input_path), "variable": "counts", "fit_dim": "energy",
                  "sigma": "counts_err"},
        "model": {"components": [{"type": "gaussian", "prefix": "p1_"},
                                 {"type": "linear", "prefix": "bg_"}]},
        "parameters": {"p1_sigma": {"value": 1.0, "min": 0.05}},
        "guess": True,
        "fit": {"engine": "lm"},
        "output": {"path": str(output_path)},
        "cluster": {"kind": "local", "n_workers": 2},
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            data[section] = {**data.get(section, {}), name: value}
        else:
            data[section] = value
    return data


def make_job(input_path, output_path, **changes) -> JobConfig:
    return JobConfig.from_dict(job_dict(input_path, output_path, **changes))


def write_job(path: Path, input_path, output_path, **changes) -> Path:
    path.write_text(yaml.safe_dump(job_dict(input_path, output_path, **changes)))
    return path


def subprocess_env() -> dict:
    """Environment for child processes: this checkout importable, one BLAS thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


PYTHON = sys.executable


def tree_hash(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (relative name -> digest)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(path).rglob("*")) if p.is_file()}


def assert_same_store(a, b) -> None:
    """Two result Datasets hold exactly the same values, variable by variable (NaN = NaN)."""
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in a.data_vars:
        x, y = a[name].values, b[name].values
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
