"""`batchfit examples` makes the example configs' data; validate says so when it is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from batchfit.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def configs(tmp_path) -> Path:
    """A copy of configs/ without its data folder."""
    folder = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", folder,
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    return folder


@pytest.mark.slow
def test_validate_names_the_command_then_passes_after_it(configs, monkeypatch, capsys):
    monkeypatch.chdir(configs.parent)
    for name in ("peak_map", "emission_lines", "decay_curves"):
        assert main(["validate", str(configs / f"{name}.yaml")]) == 2
        assert f"make it with `batchfit examples {configs}`" in capsys.readouterr().err
    assert main(["examples", "configs"]) == 0
    assert "peak_map: configs/data/peak_map.zarr" in capsys.readouterr().out
    for name in ("peak_map", "emission_lines", "decay_curves"):
        assert main(["validate", str(configs / f"{name}.yaml")]) == 0, capsys.readouterr()


def test_other_missing_inputs_get_no_example_hint(configs, capsys):
    text = (configs / "peak_map.yaml").read_text().replace("data/peak_map.zarr",
                                                          "elsewhere/cube.zarr")
    (configs / "mine.yaml").write_text(text)
    assert main(["validate", str(configs / "mine.yaml")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "batchfit examples" not in err
