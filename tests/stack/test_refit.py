"""The neighbour refit pass (fit.refit_failed) and starting from an earlier store (init:).

The refit cube starts 12% of its pixels (random) from a poor per-pixel init
store (peak centre far from the peak) with a small ``max_nfev``, so most of
those pixels, and only those, stop at ``max_nfev`` (the bounded solver of issue 9
rescues about a quarter of them within ``max_nfev``); their neighbours start
from the truth.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from batchfit import pipeline, stack
from batchfit.stack import open_results, refit
from batchfit.stack.synthetic import make_cube, write_cube
from batchfit.status import Status

from .conftest import PARAMS, assert_same_store, make_job, tree_hash

NY, NX, NPTS = 24, 24, 48
MAX_NFEV = 15
REFIT = {"guess": False, "fit": {"engine": "lm", "max_nfev": MAX_NFEV, "refit_failed": True}}


@pytest.fixture(scope="module")
def refit_cube():
    return make_cube(NY, NX, NPTS, seed=5)


@pytest.fixture(scope="module")
def refit_inputs(tmp_path_factory, refit_cube):
    """(input cube path, poor init store path, mask of the poorly started pixels)."""
    folder = tmp_path_factory.mktemp("refit_in")
    write_cube(refit_cube, folder / "cube.zarr", {"y": 8, "x": 4})
    poor = np.random.default_rng(42).random((NY, NX)) < 0.12
    init = xr.Dataset({n: refit_cube[f"truth_{n}"].copy() for n in PARAMS})
    for name, value in (("p1_center", 4.0), ("p1_sigma", 0.3), ("p1_amplitude", 0.5)):
        init[name] = init[name].where(~poor, value)
    init.to_zarr(folder / "init.zarr", zarr_format=3, consolidated=False)
    return folder / "cube.zarr", folder / "init.zarr", poor


def _job(inputs, out, chunks):
    cube_path, init_path, _ = inputs
    return make_job(cube_path, out, init=str(init_path), input__chunks=chunks, **REFIT)


@pytest.fixture(scope="module")
def first_pass(refit_inputs, refit_cube):
    """The main pass alone, in memory (the store's main pass equals it exactly)."""
    job = _job(refit_inputs, "unused.zarr", None)
    init = xr.open_zarr(refit_inputs[1], consolidated=False).load()
    return stack.fit(refit_cube.counts, job.build_model(), job.build_params(), "energy",
                     sigma=refit_cube.counts_err, init=init, max_nfev=MAX_NFEV)


@pytest.fixture(scope="module")
def refitted(tmp_path_factory, refit_inputs):
    out = tmp_path_factory.mktemp("refit_a") / "res.zarr"
    job = _job(refit_inputs, out, {"y": 8, "x": 8})
    summary = pipeline.run(job, quiet=True)
    return job, summary, open_results(out).load()


def test_first_pass_fails_the_poorly_started_pixels(first_pass, refit_inputs):
    poor = refit_inputs[2]
    failed = ~first_pass.success.values
    assert 0.05 < failed.mean() < 0.20
    assert (failed <= poor).all() and failed.sum() >= 0.5 * poor.sum()
    assert (first_pass.status.values[failed] == Status.MAX_NFEV).all()


def test_refit_turns_failures_into_good_fits(refitted, first_pass, refit_cube):
    _, summary, res = refitted
    failed = ~first_pass.success.values
    now_ok = res.success.values & failed
    assert summary.refit_improved == int(now_ok.sum()) >= 0.9 * failed.sum()
    assert summary.n_success == int(res.success.sum()) == int((~failed).sum() + now_ok.sum())
    assert summary.refit_chunks_computed > 0
    for name in PARAMS:  # refitted values are right, within their errors
        z = np.abs(res[name].values - refit_cube[f"truth_{name}"].values) / res[
            f"{name}_stderr"].values
        assert np.nanmax(z[now_ok]) < 5.0, name
    assert (res.status.values[now_ok] == Status.CONVERGED).all()
    assert (res.nfev.values[now_ok] < MAX_NFEV).all()


def test_refit_leaves_other_pixels_untouched(refitted, first_pass):
    _, _, res = refitted
    keep = first_pass.success.values | ~res.success.values  # not improved by the refit
    for name in first_pass.data_vars:
        a, b = res[name].values[keep], first_pass[name].values[keep]
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


def test_refit_is_independent_of_chunking(refitted, refit_inputs, tmp_path):
    _, _, res = refitted
    job = _job(refit_inputs, tmp_path / "res.zarr", {"y": 16, "x": 4})
    pipeline.run(job, quiet=True, workers=1)
    assert_same_store(res, open_results(job.output.path).load())


def test_rerun_after_refit_does_nothing(refitted):
    job, summary, _ = refitted
    before = tree_hash(job.output.path)
    again = pipeline.run(job, quiet=True)
    assert (again.chunks_computed, again.refit_chunks_computed) == (0, 0)
    assert again.refit_improved == summary.refit_improved
    assert tree_hash(job.output.path) == before


@pytest.mark.parametrize("lost", ["one_chunk", "all_chunks"])
def test_interrupted_refit_resumes_to_the_same_store(refitted, tmp_path, lost):
    """Refit writes landed but markers did not: the saved plan, not the store, decides."""
    job0, summary, res = refitted
    out = tmp_path / "res.zarr"
    shutil.copytree(job0.output.path, out)
    meta = out / ".batchfit"
    (meta / "refit_done").unlink()
    markers = sorted((meta / "refit" / "done").iterdir())
    for marker in markers[:1] if lost == "one_chunk" else markers:
        marker.unlink()
    job = make_job(job0.input.path, out, init=str(job0.init), input__chunks={"y": 8, "x": 8},
                   **REFIT)
    again = pipeline.run(job, quiet=True, workers=1)
    assert again.chunks_computed == 0
    assert again.refit_chunks_computed == (1 if lost == "one_chunk" else len(markers))
    assert again.refit_improved == summary.refit_improved
    assert_same_store(res, open_results(out).load())


def test_init_from_an_earlier_store_saves_evaluations(cube_path, tmp_path):
    first = make_job(cube_path, tmp_path / "a.zarr", input__chunks={"y": 6, "x": 10})
    pipeline.run(first, quiet=True, workers=1)
    second = make_job(cube_path, tmp_path / "b.zarr", init=str(tmp_path / "a.zarr"),
                      input__chunks={"y": 6, "x": 10})
    pipeline.run(second, quiet=True, workers=1)
    a, b = open_results(first.output.path).load(), open_results(second.output.path).load()
    np.testing.assert_array_equal(a.status, b.status)
    ok = a.success.values
    assert ok.sum() == 118
    assert b.nfev.values[ok].sum() < 0.7 * a.nfev.values[ok].sum()
    assert np.median(b.nfev.values[ok]) < np.median(a.nfev.values[ok])
    for name in PARAMS:  # the same optimum, well within the errors
        diff = np.abs(a[name].values - b[name].values)[ok]
        assert (diff < 1e-3 * a[f"{name}_stderr"].values[ok]).all(), name


# ------------------------------------------------------------------ neighbour medians


def _brute_medians(ok, values, pos, radii=refit.RADII):
    """One pixel at a time: the successful pixels of the smallest box that has any."""
    out = {n: np.full(len(pos), np.nan) for n in values}
    for k, p in enumerate(pos):
        for r in radii:
            box = tuple(slice(max(c - r, 0), c + r + 1) for c in p)
            if ok[box].any():
                for n, v in values.items():
                    out[n][k] = np.median(v[box][ok[box]])
                break
    return out


@pytest.mark.parametrize("shape", [(9, 7), (31,), (5, 6, 4)])
def test_neighbour_medians_match_brute_force(shape):
    rng = np.random.default_rng(len(shape))
    ok = rng.random(shape) < 0.35
    values = {"a": rng.normal(size=shape), "b": rng.uniform(1, 2, shape)}
    pos = np.array(list(itertools.product(*(range(s) for s in shape))))
    got, found = refit.neighbour_medians(ok, values, pos)
    want = _brute_medians(ok, values, pos)
    for name in values:
        np.testing.assert_array_equal(got[name], want[name])
    assert (found == np.isfinite(want["a"])).all()


def test_neighbour_medians_widen_then_give_up():
    ok = np.zeros((7, 7), bool)
    values = {"a": np.arange(49.0).reshape(7, 7)}
    ok[0, 0] = ok[0, 1] = True  # two pixels at distance 2 from (2, 2), none at distance 1
    got, found = refit.neighbour_medians(ok, values, np.array([[2, 2], [1, 1], [6, 6]]))
    assert got["a"][0] == 0.5 and got["a"][1] == 0.5  # 5x5 median of 0, 1; 3x3 median
    assert not found[2] and np.isnan(got["a"][2])
    assert found[:2].all()


def test_candidates_are_failed_fits_only():
    status = np.array([Status.CONVERGED, Status.MAX_NFEV, Status.BAD_DATA, Status.MODEL_ERROR,
                       Status.MASKED, Status.NOT_RUN, Status.CONVERGED], np.int8)
    success = np.array([True, False, False, False, False, False, False])
    np.testing.assert_array_equal(refit.candidates(status, success),
                                  [False, True, False, True, False, False, True])


def test_damaged_refitted_chunk_is_recomputed_with_its_refit(refitted, tmp_path):
    """The refit's writes are vouched for; damage to a refitted chunk redoes both passes."""
    job0, summary, res = refitted
    out = tmp_path / "res.zarr"
    shutil.copytree(job0.output.path, out)
    key = sorted(p.name for p in (out / ".batchfit" / "refit" / "done").iterdir())[0]
    (out / "p1_center" / "c" / Path(*key.split("_"))).unlink()
    job = make_job(job0.input.path, out, init=str(job0.init), input__chunks={"y": 8, "x": 8},
                   **REFIT)
    again = pipeline.run(job, quiet=True, workers=1)
    assert (again.chunks_computed, again.refit_chunks_computed) == (1, 1)
    assert again.refit_improved == summary.refit_improved
    assert_same_store(res, open_results(out).load())
