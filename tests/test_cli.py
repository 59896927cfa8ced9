"""Tests of batchfit/cli.py: commands, summary, and exit codes (in process and as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from cli_helpers import (
    FakeSummary,
    edit,
    fake_pipeline,
    good_config,
    job_folder,
    listing,
    write_config,
)
from click.testing import CliRunner

import batchfit
from batchfit import Status
from batchfit.cli import cli, format_summary, main
from batchfit.config import JobConfig
from batchfit.errors import StoreError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path):
    return job_folder(tmp_path)


@pytest.fixture
def config_path(folder):
    return write_config(folder, good_config())


@pytest.fixture
def bad_config_path(folder):
    return write_config(folder, edit(good_config(), "fit.max_nfv", 10), name="bad.yaml")


# ------------------------------------------------------------------ CliRunner


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"batchfit {batchfit.__version__}"


def test_submit_passes_options_and_prints_summary(monkeypatch, config_path):
    calls = []

    def run(config, **kws):
        calls.append((config, kws))
        return FakeSummary()

    fake_pipeline(monkeypatch, run=run)
    args = ["submit", str(config_path), "--overwrite", "--workers", "3",
            "--scheduler", "tcp://10.0.0.5:8786", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    [(config, kws)] = calls
    assert isinstance(config, JobConfig)
    assert config.output.path == config_path.parent.resolve() / "results" / "cube_fit.zarr"
    assert kws == {"overwrite": True, "workers": 3, "scheduler": "tcp://10.0.0.5:8786",
                   "quiet": True}
    out = result.output
    assert "pixels: 64 (60 succeeded, 93.8%)" in out
    assert "status: converged 60, bad_data 3, masked 1" in out
    assert ("this run: 48 pixels in 3 chunks (1 chunks already done), 1234.5 fits/s, "
            "elapsed 0.2 s") in out
    assert "output: /somewhere/cube_fit.zarr" in out


def test_summary_names_status_codes():
    summary = FakeSummary()
    summary.status_counts = {Status.CONVERGED: 2, 2: 1, Status.MASKED: 0}
    assert "status: converged 2, bad_data 1\n" in format_summary(summary)


def test_submit_defaults(monkeypatch, config_path):
    seen = {}
    fake_pipeline(monkeypatch, run=lambda config, **kws: seen.update(kws) or FakeSummary())
    assert CliRunner().invoke(cli, ["submit", str(config_path)]).exit_code == 0
    assert seen == {"overwrite": False, "workers": None, "scheduler": None, "quiet": False}


def test_validate_prints_the_report(monkeypatch, config_path):
    seen = []
    fake_pipeline(monkeypatch, validate=lambda config: seen.append(config) or "all good")
    result = CliRunner().invoke(cli, ["validate", str(config_path)])
    assert result.exit_code == 0
    assert result.output.strip() == "all good"
    assert isinstance(seen[0], JobConfig)


def test_status_calls_the_pipeline(monkeypatch, tmp_path):
    fake_pipeline(monkeypatch, status=lambda store: f"status of {Path(store).name}")
    result = CliRunner().invoke(cli, ["status", str(tmp_path / "x.zarr")])
    assert result.exit_code == 0
    assert "status of x.zarr" in result.output


@pytest.mark.parametrize("command, module", [(["status", "s.zarr"], "batchfit.describe"),
                                             (["report", "s.zarr"], "batchfit.report"),
                                             (["demo"], "batchfit.demo")])
def test_missing_command_says_not_available(monkeypatch, command, module):
    monkeypatch.setitem(sys.modules, module, types.ModuleType(module))
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1
    assert "not available yet" in result.stderr


def test_report_passes_out_dir(monkeypatch, tmp_path):
    module = types.ModuleType("batchfit.report")
    module.report = lambda store, out_dir: f"maps of {store} in {out_dir}"
    monkeypatch.setitem(sys.modules, "batchfit.report", module)
    result = CliRunner().invoke(cli, ["report", "s.zarr", "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert f"maps of s.zarr in {tmp_path}" in result.output


# ------------------------------------------------------------------ main(): exit codes


def test_bad_config_exits_2_without_traceback(capsys, bad_config_path):
    before = listing(bad_config_path.parent)
    assert main(["submit", str(bad_config_path)]) == 2
    err = capsys.readouterr().err
    assert "fit: unknown key 'max_nfv'; did you mean 'max_nfev'?" in err
    assert "bad.yaml" in err and "Traceback" not in err
    assert listing(bad_config_path.parent) == before


def test_usage_error_exits_2(capsys):
    assert main(["submit"]) == 2
    assert "Missing argument 'CONFIG'" in capsys.readouterr().err
    assert main(["submit", "x.yaml", "--workers", "0"]) == 2


def test_store_error_from_the_job_exits_2(monkeypatch, capsys, config_path):
    def run(config, **kws):
        raise StoreError("results/cube_fit.zarr was made by another config; use --overwrite")

    fake_pipeline(monkeypatch, run=run)
    assert main(["submit", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert "batchfit: store error: results/cube_fit.zarr was made by another config" in err
    assert "Traceback" not in err


def test_interrupt_exits_130_and_says_resume(monkeypatch, capsys, config_path):
    def run(config, **kws):
        raise KeyboardInterrupt

    fake_pipeline(monkeypatch, run=run)
    assert main(["submit", str(config_path)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "again to resume" in err


@pytest.mark.parametrize("debug", [False, True])
def test_job_failure_exits_1_traceback_only_in_debug(monkeypatch, capsys, config_path, debug):
    def run(config, **kws):
        raise RuntimeError("worker died")

    fake_pipeline(monkeypatch, run=run)
    monkeypatch.setenv("BATCHFIT_DEBUG", "1" if debug else "0")
    assert main(["submit", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert "batchfit: job failed: RuntimeError: worker died" in err
    assert ("Traceback" in err) is debug


def test_debug_flag_shows_traceback(monkeypatch, capsys, bad_config_path):
    monkeypatch.delenv("BATCHFIT_DEBUG", raising=False)
    assert main(["--debug", "validate", str(bad_config_path)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys):
    assert main(["--help"]) == 0
    assert "submit" in capsys.readouterr().out
    assert main(["--version"]) == 0


# ------------------------------------------------------------------ real subprocesses


def _run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BATCHFIT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "batchfit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_subprocess_version(tmp_path):
    proc = _run("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"batchfit {batchfit.__version__}"


@pytest.mark.parametrize("case", ["unknown key", "hostile expression", "yaml error",
                                  "missing input", "missing file"])
def test_subprocess_bad_config_exits_2_writes_nothing(folder, case):
    data = good_config()
    text = None
    if case == "unknown key":
        edit(data, "fit.max_nfv", 10)
    elif case == "hostile expression":
        edit(data, "parameters.p1_sigma", {"expr": "__import__('os').system('touch pwned')"})
    elif case == "yaml error":
        text = "input: [unclosed\n"
    elif case == "missing input":
        edit(data, "input.path", "data/none.zarr")
    name = "missing.yaml" if case == "missing file" else "job.yaml"
    if case != "missing file":
        write_config(folder, data, text=text)
    before = listing(folder)
    for command in ("submit", "validate"):
        proc = _run(command, name, cwd=folder)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("batchfit: config error: ")
        assert "Traceback" not in proc.stderr
        assert proc.stdout == ""
    assert listing(folder) == before
