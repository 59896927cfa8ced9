"""End to end: config -> local cluster -> zarr store; rerun, refusal, validate, status."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

from batchfit import describe, pipeline
from batchfit.cli import main as cli_main
from batchfit.errors import InputError, StoreError
from batchfit.stack import job_script, open_results
from batchfit.stack.store import ChunkGrid, done_keys
from batchfit.status import Status

from .conftest import PARAMS, make_job, tree_hash, write_job


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cube_path):
    out = tmp_path_factory.mktemp("out") / "res.zarr"
    job = make_job(cube_path, out, input__chunks={"y": 5, "x": 4})
    summary = pipeline.run(job, quiet=True)
    return job, summary


def test_run_end_to_end(finished, cube):
    job, summary = finished
    res = open_results(job.output.path)
    assert summary.pixels == 120 and summary.chunks_computed == 9 == len(done_keys(
        job.output.path))
    assert summary.status_counts["converged"] == 118 == summary.n_success
    assert summary.status_counts["bad_data"] == 2
    ok = res.status == Status.CONVERGED
    for name in PARAMS:
        z = np.abs(res[name] - cube[f"truth_{name}"]) / res[f"{name}_stderr"]
        assert float(z.where(ok).max()) < 5.0, name
    assert res.status.dtype == np.int8 and res.nfev.dtype == np.int32
    assert res.success.dtype == bool and res.p1_center.dtype == np.float64
    assert res.ndata.dtype == res.nfree.dtype == np.int32 and res.bic.dtype == np.float64
    assert int(res.ndata.where(ok).max()) == 48 and int(res.nfree.where(ok).max()) == 43
    np.testing.assert_array_equal(res.x, cube.x)
    assert res.status.attrs["flag_meanings"].split()[-2:] == ["not_run", "stalled"]
    attrs = res.attrs
    assert attrs["batchfit_fingerprint"] == job.fingerprint()
    assert json.loads(attrs["batchfit_config"]) == job.to_dict()
    assert set(json.loads(attrs["versions"])) == {"batchfit", "numpy", "scipy", "dask",
                                                 "xarray", "zarr"}
    assert attrs["fit_dim"] == "energy" and attrs["input_path"] == str(job.input.path)
    assert json.loads(attrs["model"])["components"][0]["type"] == "gaussian"


def test_store_chunks_are_the_job_chunks(finished):
    job, _ = finished
    group = zarr.open_group(str(job.output.path), mode="r")
    for name in ("p1_center", "status", "success", "nfev"):
        assert group[name].chunks == (5, 4)
        assert group[name].metadata.zarr_format == 3


def test_store_equals_in_memory_fit(finished, cube):
    from batchfit import stack

    job, _ = finished
    ref = stack.fit(cube.counts, job.build_model(), job.build_params(), "energy",
                    sigma=cube.counts_err, guess=True)
    res = open_results(job.output.path).load()
    for name in ref.data_vars:
        assert np.array_equal(res[name].values, ref[name].values,
                              equal_nan=ref[name].dtype.kind == "f"), name


def test_rerun_of_finished_job_does_nothing(finished):
    job, _ = finished
    before = tree_hash(job.output.path)
    again = pipeline.run(job, quiet=True)
    assert (again.chunks_computed, again.chunks_skipped, again.fitted) == (0, 9, 0)
    assert tree_hash(job.output.path) == before


def test_different_config_is_refused_untouched(finished, tmp_path):
    job, _ = finished
    before = tree_hash(job.output.path)
    other = make_job(job.input.path, job.output.path,
                     parameters={"p1_sigma": {"value": 1.5, "min": 0.05}})
    with pytest.raises(StoreError, match="different config"):
        pipeline.run(other, quiet=True)
    cfg = write_job(tmp_path / "job.yaml", job.input.path, job.output.path, guess=False)
    assert cli_main(["submit", str(cfg), "--quiet"]) == 2
    assert cli_main(["validate", str(cfg)]) == 2
    assert tree_hash(job.output.path) == before


def test_status_report(finished):
    job, _ = finished
    text = describe.status(job.output.path)
    assert "9/9 done" in text and "converged 118" in text and "bad_data 2" in text


def test_validate_writes_nothing(cube_path, tmp_path):
    out = tmp_path / "never.zarr"
    text = describe.validate(make_job(cube_path, out), n_samples=3)
    assert "sample fits (3 pixels)" in text and "converged" in text
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_foreign_store_is_never_deleted_even_with_overwrite(cube_path, tmp_path):
    """--overwrite replaces batchfit stores only: other data at output.path is left alone."""
    out = tmp_path / "res.zarr"
    xr.Dataset({"a": ("q", np.arange(3.0))}).to_zarr(out, zarr_format=3, consolidated=False)
    job = make_job(cube_path, out, input__chunks={"y": 12, "x": 10})
    for overwrite in (False, True):
        with pytest.raises(StoreError, match="not a batchfit store"):
            pipeline.run(job, overwrite=overwrite, quiet=True)
    np.testing.assert_array_equal(xr.open_zarr(out, consolidated=False)["a"], np.arange(3.0))


@pytest.mark.parametrize(("changes", "match"), [
    ({"input__variable": "cts"}, r"'cts' is not in the input; available: counts, counts_err"),
    ({"input__fit_dim": "wavelength"}, r"'wavelength' is not a dim.*\['y', 'x', 'energy'\]"),
    ({"input__mask": "counts"}, r"input.mask: 'counts' must be over pixel dims"),
    ({"input__chunks": {"z": 3}}, r"\['z'\] are not pixel dims"),
])
def test_input_errors_name_the_problem(cube_path, tmp_path, changes, match):
    with pytest.raises(InputError, match=match):
        pipeline.plan(make_job(cube_path, tmp_path / "o.zarr", **changes))


def test_chunk_grid_regions_cover_once():
    grid = ChunkGrid(("y", "x"), (10, 7), (4, 3))
    hits = np.zeros((10, 7), int)
    for idx in grid.indices():
        r = grid.region(idx)
        hits[r["y"], r["x"]] += 1
    assert len(grid) == 9 and (hits == 1).all()


def test_slurm_job_script(cube_path, tmp_path):
    job = make_job(cube_path, tmp_path / "o.zarr", cluster={
        "kind": "slurm", "jobs": 3, "cores": 4, "memory": "16GiB", "walltime": "02:30:00",
        "queue": "short", "account": "proj42", "job_extra_directives": ["--constraint=cpu"]})
    text = job_script(job.cluster)
    for line in ("#SBATCH -p short", "#SBATCH -A proj42", "#SBATCH --cpus-per-task=4",
                 "#SBATCH -t 02:30:00", "#SBATCH --constraint=cpu", "export OMP_NUM_THREADS=1"):
        assert line in text
    assert "#SBATCH --mem=" in text and "--nworkers 4" in text
