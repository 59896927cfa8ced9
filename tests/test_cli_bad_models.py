"""``batchfit submit`` with a per-curve engine and a user model that raises on some pixels.

The pixels whose fit drives the model into raising get ``model_error`` in the
store, the others converge to the in-process ``fit_batch`` result, and the
job exits 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

import batchfit
from batchfit.cli import main
from batchfit.models import function_model
from batchfit.status import Status

BAD_MODELS = Path(__file__).resolve().parent / "batch"
T = np.linspace(0.0, 10.0, 40)


def _cube(path: Path) -> np.ndarray:
    rng = np.random.default_rng(11)
    ny, nx = 4, 4
    amp = rng.uniform(50, 150, (ny, nx))
    amp[0, 1] = amp[2, 3] = amp[3, 0] = 1800.0  # fits go past 1000, where the model raises
    tau = rng.uniform(1.5, 3.0, (ny, nx))
    y = amp[..., None] * np.exp(-T / tau[..., None]) + rng.normal(0.0, 1.0, (ny, nx, T.size))
    ds = xr.Dataset({"signal": (("y", "x", "t"), y)},
                    coords={"y": np.arange(ny), "x": np.arange(nx), "t": T})
    ds.chunk({"y": 2, "x": 4}).to_zarr(str(path), mode="w", zarr_format=3, consolidated=False)
    return y


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["leastsq", "lbfgsb"])
def test_submit_with_a_raising_model_exits_0_with_model_error_pixels(tmp_path, capsys, engine):
    y = _cube(tmp_path / "cube.zarr")
    cfg = {
        "input": {"path": "cube.zarr", "variable": "signal", "fit_dim": "t",
                  "chunks": {"y": 2, "x": 4}},
        "model": {"function": "bad_models:decay_raises_big", "python_path": [str(BAD_MODELS)]},
        "parameters": {"amp": {"value": 80.0, "min": 0.0}, "tau": {"value": 2.0, "min": 0.2}},
        "fit": {"engine": engine},
        "output": {"path": "out.zarr"},
        "cluster": {"kind": "local", "n_workers": 1},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["submit", str(path), "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    ds = xr.open_zarr(tmp_path / "out.zarr")
    status = ds["status"].values
    bad = np.zeros(status.shape, bool)
    bad[0, 1] = bad[2, 3] = bad[3, 0] = True
    assert np.all(status[bad] == Status.MODEL_ERROR)
    assert np.all(status[~bad] != Status.MODEL_ERROR)
    assert np.all(np.isnan(ds["amp"].values[bad]))
    import sys

    sys.path.insert(0, str(BAD_MODELS))
    try:
        model = function_model("bad_models:decay_raises_big")
    finally:
        sys.path.remove(str(BAD_MODELS))
    params = model.make_params(amp={"value": 80.0, "min": 0.0}, tau={"value": 2.0, "min": 0.2})
    ref = batchfit.fit_batch(model, params, T, y[~bad], engine=engine)
    np.testing.assert_array_equal(status[~bad], ref.status)
    assert ref.success.sum() >= 11
    for name in ("amp", "tau"):
        np.testing.assert_allclose(ds[name].values[~bad], ref.values[name], rtol=1e-10)
