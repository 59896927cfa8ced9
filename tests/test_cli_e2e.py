"""The command line as a user calls it, against the real pipeline and a real cube.

Bad configs and inputs: exit code 2, a short message naming the problem, no
traceback, nothing written. Good jobs: submit, a rerun that does no work,
status, validate (writes nothing), report and demo.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from batchfit.cli import main
from batchfit.stack.synthetic import make_cube, write_cube

REPO = Path(__file__).resolve().parents[1]

GOOD = {
    "input": {"path": "cube.zarr", "variable": "counts", "fit_dim": "energy",
              "sigma": "counts_err", "chunks": {"y": 8, "x": 8}},
    "model": {"components": [{"type": "gaussian", "prefix": "p1_"},
                             {"type": "linear", "prefix": "bg_"}]},
    "parameters": {"p1_sigma": {"value": 1.0, "min": 0.05}},
    "guess": True,
    "output": {"path": "out/results.zarr"},
    "cluster": {"kind": "local", "n_workers": 1},
}


@pytest.fixture(scope="module")
def cube_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_e2e")
    write_cube(make_cube(16, 16, 48, seed=3), root / "cube.zarr", {"y": 8, "x": 8})
    return root


@pytest.fixture
def job(cube_dir, tmp_path):
    """A job folder: a link to the shared cube, an output folder, a good config."""
    (tmp_path / "cube.zarr").symlink_to(cube_dir / "cube.zarr")
    (tmp_path / "out").mkdir()
    return tmp_path


def write(folder: Path, cfg: dict | None = None, text: str | None = None) -> Path:
    path = folder / "job.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(cfg))
    return path


def tree_digest(folder: Path) -> dict:
    """Path -> content hash of every regular file under ``folder`` (links not followed)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not any(part == "cube.zarr" for part in p.parts):
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def edited(key: str, value=None, delete=False) -> dict:
    import copy

    cfg = copy.deepcopy(GOOD)
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if delete:
        del node[last]
    else:
        node[last] = value
    return cfg


# (config or YAML text, words the message must contain)
BAD = {
    "missing section": (edited("output", delete=True), "output"),
    "missing key": (edited("input.fit_dim", delete=True), "fit_dim"),
    "unknown key": (edited("fit.max_nfv", 10), "did you mean 'max_nfev'"),
    "misspelled section": (edited("clustr", {"kind": "local"}), "clustr"),
    "wrong type": (edited("fit", {"max_nfev": "lots"}), "max_nfev"),
    "unknown model": (edited("model.components", [{"type": "gausian"}]), "gausian"),
    "unknown parameter": (edited("parameters.p9_width", {"value": 1.0}), "p9_width"),
    "function does not import": (edited("model", {"function": "no_such_mod:f"}),
                                 "no_such_mod"),
    "bad expression": (edited("parameters.bg_slope", {"expr": "p1_sigma *"}), "bg_slope"),
    "hostile expression": (edited("parameters.bg_slope", {"expr": "__import__('os')"}),
                           "bg_slope"),
    "min > max": (edited("parameters.p1_sigma", {"value": 1.0, "min": 5, "max": 2}),
                  "p1_sigma"),
    "missing variable": (edited("input.variable", "photons"), "photons"),
    "missing fit dim": (edited("input.fit_dim", "wavelength"), "wavelength"),
    "unreadable input": (edited("input.path", "not_a_cube.zarr"), "not_a_cube.zarr"),
    "output under a file": (edited("output.path", "job.yaml/results.zarr"), "output"),
    "yaml syntax error": ("input: [unclosed\n", "job.yaml"),
    "empty file": ("", "empty"),
    "anneal without bounds": (edited("fit", {"engine": "anneal"}), "anneal"),
    "yaml alias bomb": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a]\n"
                        "c: &c [*b, *b, *b, *b, *b]\nmodel: {components: *c}\n", "aliases"),
    "huge file": ("# padding\n" * 200_000, "larger than"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_config_or_input_exits_2_names_it_writes_nothing(job, capsys, case):
    cfg, words = BAD[case]
    path = write(job, text=cfg) if isinstance(cfg, str) else write(job, cfg)
    if case == "unreadable input":
        (job / "not_a_cube.zarr").write_text("this is not a zarr store")
    before = tree_digest(job)
    for command in ("validate", "submit"):
        assert main([command, str(path)]) == 2, command
        err = capsys.readouterr().err
        assert words.lower() in err.lower(), err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) <= 12, err
    assert tree_digest(job) == before


def test_submit_rerun_status_report(job, capsys):
    path = write(job, GOOD)
    assert main(["submit", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "256" in out and "results.zarr" in out
    ds = xr.open_zarr(job / "out" / "results.zarr")
    assert ds["status"].dtype == np.int8 and ds["nfev"].dtype == np.int32
    assert bool(ds["success"].all())
    before = tree_digest(job)
    assert main(["submit", str(path), "--quiet"]) == 0  # finished: no work
    assert tree_digest(job) == before
    assert main(["status", str(job / "out" / "results.zarr")]) == 0
    out = capsys.readouterr().out
    assert "4/4 done" in out and "converged 256" in out
    assert main(["report", str(job / "out" / "results.zarr"), "--out", str(job / "maps")]) == 0
    pngs = sorted(p.name for p in (job / "maps").glob("*.png"))
    assert {"p1_center.png", "redchi.png", "status.png"} <= set(pngs)


def test_validate_fits_samples_and_writes_nothing(job, capsys):
    path = write(job, GOOD)
    before = tree_digest(job)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sample fits" in out and "converged" in out and "resolved config" in out
    assert tree_digest(job) == before
    assert not (job / "out" / "results.zarr").exists()


def test_status_of_a_non_store_exits_2(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_demo_as_a_user_runs_it(tmp_path):
    """``batchfit demo DIR`` in a fresh process: job, store and report."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "batchfit", "demo", str(tmp_path / "d")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "100.0% succeeded" in proc.stdout
    ds = xr.open_zarr(tmp_path / "d" / "results.zarr")
    truth = xr.open_zarr(tmp_path / "d" / "cube.zarr", consolidated=False)
    pull = (ds["p1_center"] - truth["truth_p1_center"]) / ds["p1_center_stderr"]
    assert float(np.abs(pull).load().median()) < 1.5  # about 0.67 if stderr is right
    assert (tmp_path / "d" / "report" / "p1_center.png").stat().st_size > 10_000


def test_expression_model_runs_on_the_workers_and_matches_the_builtin(job, capsys):
    """An expression-string model travels to the workers as text and gives the built-in's fit."""
    import copy

    builtin = copy.deepcopy(GOOD)
    builtin["guess"] = False
    builtin["parameters"] = {"p1_amplitude": {"value": 8.0}, "p1_center": {"value": 0.0},
                             "p1_sigma": {"value": 1.0, "min": 0.05},
                             "bg_slope": {"value": 0.0}, "bg_intercept": {"value": 1.0}}
    expr = copy.deepcopy(builtin)
    expr["model"] = {"expression": "p1_amplitude * exp(-(x - p1_center)**2 / (2 * p1_sigma**2))"
                                   " / (p1_sigma * sqrt(2 * pi)) + bg_slope * x + bg_intercept"}
    expr["output"] = {"path": "out/expr.zarr"}
    assert main(["submit", str(write(job, builtin)), "--quiet"]) == 0
    assert main(["submit", str(write(job, expr)), "--quiet"]) == 0
    a = xr.open_zarr(job / "out" / "results.zarr")
    b = xr.open_zarr(job / "out" / "expr.zarr")
    assert bool(b["success"].all())
    for name in ("p1_amplitude", "p1_center", "p1_sigma", "bg_slope", "bg_intercept"):
        diff = np.abs(a[name] - b[name]) / a[f"{name}_stderr"]
        assert float(diff.max()) < 1e-3, name


def test_overwrite_never_deletes_what_is_not_a_batchfit_store(job, capsys):
    """``--overwrite`` replaces an earlier result store, never a folder of other data."""
    (job / "out" / "notes.txt").write_text("precious")
    cfg = edited("output.path", "out")
    path = write(job, cfg)
    before = tree_digest(job)
    assert main(["submit", str(path), "--overwrite", "--quiet"]) == 2
    assert "not a batchfit store" in capsys.readouterr().err
    assert tree_digest(job) == before


def test_overwrite_replaces_a_store_made_by_another_config(job, capsys):
    path = write(job, GOOD)
    assert main(["submit", str(path), "--quiet"]) == 0
    other = edited("parameters.p1_sigma", {"value": 1.5, "min": 0.05})
    path = write(job, other)
    assert main(["submit", str(path), "--quiet"]) == 2  # refused without --overwrite
    assert main(["submit", str(path), "--overwrite", "--quiet"]) == 0
    assert bool(xr.open_zarr(job / "out" / "results.zarr")["success"].all())


def test_netcdf_input_gives_the_same_store_as_zarr(job, cube_dir, capsys):
    """A netCDF copy of the cube (h5netcdf) fits to the same maps as the zarr cube."""
    cube = xr.open_zarr(cube_dir / "cube.zarr", consolidated=False).load()
    cube.to_netcdf(job / "cube.nc", engine="h5netcdf")  # netCDF4 (HDF5)
    zarr_cfg = edited("output.path", "out/from_zarr.zarr")
    nc_cfg = edited("input.path", "cube.nc")
    nc_cfg["output"]["path"] = "out/from_nc.zarr"
    for cfg in (zarr_cfg, nc_cfg):
        assert main(["submit", str(write(job, cfg)), "--quiet"]) == 0
    a = xr.open_zarr(job / "out" / "from_zarr.zarr")
    b = xr.open_zarr(job / "out" / "from_nc.zarr")
    for name in ("p1_center", "p1_center_stderr", "redchi", "status"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
