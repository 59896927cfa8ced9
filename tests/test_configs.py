"""The example configs in configs/ load, describe the data made by
scripts/make_examples.py, fit it, and run end to end through the pipeline."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from batchfit.batch import fit_batch
from batchfit.config import load_config
from batchfit.core.expr import TieSet
from batchfit.status import Status

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
EXAMPLES = ("peak_map", "emission_lines", "decay_curves")
SCALE = 0.25  # tiny cubes: 12x16, 8x8 and 8x12 pixels


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_examples",
                                                  ROOT / "scripts" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_examples = _load_generator()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of configs/ (yaml files and mymodels/) with tiny generated cubes in data/."""
    folder = tmp_path_factory.mktemp("configs")
    for path in CONFIGS:
        shutil.copy(path, folder / path.name)
    shutil.copytree(CONFIG_DIR / "mymodels", folder / "mymodels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    make_examples.make_examples(folder / "data", scale=SCALE)
    return folder


def _curves(config, ds: xr.Dataset) -> dict[str, np.ndarray]:
    """x, y (n_pix, n_x), sigma and mask of a config's input, pixels flattened in C order."""
    inp = config.input
    da = ds[inp.variable]
    pix = [d for d in da.dims if d != inp.fit_dim]
    shape = (-1, da.sizes[inp.fit_dim])
    out = {"x": ds[inp.fit_dim].values,
           "y": da.transpose(*pix, inp.fit_dim).values.reshape(shape),
           "sigma": ds[inp.sigma].transpose(*pix, inp.fit_dim).values.reshape(shape),
           "mask": ds[inp.mask].transpose(*pix).values.ravel() if inp.mask else None}
    out["truth"] = {k.removeprefix("true_"): ds[k].transpose(*pix).values.ravel()
                    for k in ds.data_vars if k.startswith("true_")}
    return out


def _load(workdir: Path, name: str):
    config = load_config(workdir / f"{name}.yaml")
    return config, xr.open_zarr(config.input.path).load()


# ---------------------------------------------------------------- static checks


def test_all_three_examples_are_there():
    assert {p.stem for p in CONFIGS} >= set(EXAMPLES)
    assert (CONFIG_DIR / "mymodels" / "flim.py").is_file()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_key_is_commented(path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        if re.match(r"\s*(- )?[{\w]", code):
            assert "#" in line, f"{path.name}:{number}: key without a comment: {line.strip()}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_config_loads_and_points_into_the_generated_data(workdir, name):
    config = load_config(workdir / f"{name}.yaml")
    assert config.input.path == (workdir / "data" / f"{name}.zarr").resolve()
    assert config.output.path.parent == (workdir / "data").resolve()
    params = config.build_params()
    assert set(config.build_model().param_names) <= set(params)


def test_emission_lines_ties_share_redshift_and_dispersion(workdir):
    params = load_config(workdir / "emission_lines.yaml").build_params()
    varied = [n for n, p in params.items() if p.vary and not p.expr]
    assert sorted(varied) == sorted(["z", "vdisp", "ha_amplitude", "n2b_amplitude",
                                     "s2a_amplitude", "s2b_amplitude", "bg_c"])
    values = {n: np.asarray(p.value, float) for n, p in params.items()}
    values.update(z=np.asarray(0.01), vdisp=np.asarray(150.0), n2b_amplitude=np.asarray(6.1))
    TieSet(params).apply(values)
    assert values["n2b_center"] == pytest.approx(6583.5 * 1.01)
    assert values["s2b_sigma"] == pytest.approx(6730.8 * 1.01 * 150.0 / 299792.458)
    assert values["n2a_amplitude"] == pytest.approx(2.0)


# ---------------------------------------------------------------- models vs data


@pytest.mark.parametrize("name", EXAMPLES)
def test_model_at_the_truth_reproduces_the_data(workdir, name):
    """chi-square per point ~ 1 at the generator's truth: the config models the data."""
    config, ds = _load(workdir, name)
    c = _curves(config, ds)
    params = config.build_params()
    n = c["y"].shape[0]
    values = {k: np.full(n, p.value, dtype=float) for k, p in params.items()}
    values.update(c["truth"])
    TieSet(params).apply(values)
    model = config.build_model()
    curve = model(c["x"], **{k: v[:, None] for k, v in values.items()})
    assert curve.shape == c["y"].shape
    pull = ((c["y"] - curve) / c["sigma"]).ravel()
    pull = pull[np.isfinite(pull)]
    assert pull.size > 0.9 * c["y"].size
    assert np.mean(pull**2) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("name", EXAMPLES)
def test_config_fits_recover_the_truth(workdir, name):
    """The batch engine with each config's template recovers the truth within its stderr."""
    config, ds = _load(workdir, name)
    c = _curves(config, ds)
    res = fit_batch(config.build_model(), config.build_params(), c["x"], c["y"],
                    sigma=c["sigma"], mask=c["mask"], guess=config.guess,
                    max_nfev=config.fit.max_nfev)
    fitted = res.status != Status.MASKED
    has_data = np.isfinite(c["y"]).any(axis=1)
    assert res.success[fitted & has_data].mean() > 0.95
    ok = res.success
    for pname, truth in c["truth"].items():
        pull = (res.values[pname][ok] - truth[ok]) / res.stderr[pname][ok]
        assert abs(np.mean(pull)) < 0.3, pname
        assert 0.7 < np.std(pull) < 1.3, pname


# ---------------------------------------------------------------- end to end


def _pipeline_run():
    try:
        from batchfit.pipeline import run
    except ImportError:
        return None
    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_config_runs_end_to_end(workdir, name):
    run = _pipeline_run()
    if run is None:
        pytest.skip("batchfit.pipeline.run is not available")
    config = load_config(workdir / f"{name}.yaml")
    summary = run(config, overwrite=True, workers=1, quiet=True)
    assert summary.pixels > 0
    out = xr.open_zarr(config.output.path)
    status = out["status"].values
    fitted = status != Status.MASKED
    assert out["success"].values[fitted].mean() > 0.9
    truth = xr.open_zarr(config.input.path)
    ok = out["success"].values
    for var in truth.data_vars:
        if var.startswith("true_"):
            pname = var.removeprefix("true_")
            err = out[f"{pname}_stderr"].values[ok]
            pull = (out[pname].values[ok] - truth[var].values[ok]) / err
            assert np.mean(np.abs(pull) < 4) > 0.95, pname
    report = pytest.importorskip("batchfit.report")
    files = report.make_report(config.output.path, workdir / f"{name}_report")
    assert (workdir / f"{name}_report" / "summary.txt") in files
