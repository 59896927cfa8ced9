"""The issue-9 test cubes: deterministic, truth consistent with the template's ties and bounds."""

from __future__ import annotations

import numpy as np
import pytest

from batchfit.core.expr import TieSet
from batchfit.stack import testcubes as tc

MAKERS = (tc.emission_lines, tc.gaussian_line, tc.biexponential)


@pytest.mark.parametrize("make", MAKERS)
def test_same_seed_same_cube_other_seed_other_cube(make):
    a, b, c = make(50, seed=3), make(50, seed=3), make(50, seed=4)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    assert set(a.truth) == set(a.params)


@pytest.mark.parametrize("make", MAKERS)
def test_truth_within_bounds_and_noise_as_stated(make):
    p = make(2000, seed=1)
    for name, par in p.params.items():
        assert np.all(p.truth[name] >= par.lo) and np.all(p.truth[name] <= par.hi), name
    clean = p.model(p.x, **{k: p.truth[k][:, None] for k in p.model.param_names})
    pull = (p.y - clean) / p.sigma
    assert abs(pull.std() - 1.0) < 0.01 and abs(pull.mean()) < 0.01


def test_emission_lines_ties_absent_lines_and_start():
    p = tc.emission_lines(4000, seed=2)
    ties = TieSet(p.params)
    again = ties.apply({k: v.copy() for k, v in p.truth.items()})
    for name in ties.order:
        np.testing.assert_allclose(again[name], p.truth[name], rtol=1e-14)
    np.testing.assert_allclose(p.truth["n2_center"] / p.truth["ha_center"], 6583.45 / 6562.80)
    np.testing.assert_allclose(p.truth["s2_sigma"] / p.truth["ha_sigma"], 6730.82 / 6562.80)
    assert 0.22 < np.mean(p.truth["n2_amplitude"] == 0) < 0.28
    assert 0.17 < np.mean(p.truth["s1_amplitude"] == 0) < 0.23
    assert all(p.params[f"{k}_amplitude"].min == 0.0 for k in ("ha", "n2", "s1", "s2"))


def test_gaussian_line_spread_and_biexponential_absence():
    b = tc.gaussian_line(4000, seed=0)
    s = b.truth["p1_sigma"]
    assert s.max() / s.min() > 2.9 and np.abs(b.truth["p1_center"]).max() > 1.9
    start = {k: b.params[k].value for k in b.params}
    for name, value in start.items():  # the global start is the mean of the truth
        assert abs(value - b.truth[name].mean()) < 0.05 * max(1.0, abs(value)), name
    c = tc.biexponential(4000, seed=0)
    assert 0.18 < np.mean(c.truth["s_amplitude"] == 0) < 0.22


def test_to_dataset_round_trip():
    p = tc.gaussian_line(12, seed=0)
    ds = p.to_dataset(3, 4, fit_dim="energy")
    assert ds["data"].dims == ("y", "x", "energy")
    np.testing.assert_array_equal(ds["data"].values.reshape(12, -1), p.y)
    np.testing.assert_array_equal(ds["truth_p1_center"].values.ravel(), p.truth["p1_center"])
