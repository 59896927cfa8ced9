"""guess=True never starts a curve worse than the template's own start."""

from __future__ import annotations

import numpy as np

from batchfit.batch.layout import Layout
from batchfit.batch.start import guessed_starts
from batchfit.stack import testcubes as tc


def _cost(problem, ext, layout):
    vals = layout.values(ext)
    f = problem.model(problem.x, **{p: vals[p] for p in problem.model.param_names})
    return (((f - problem.y) / problem.sigma) ** 2).sum(axis=1)


def test_chosen_start_is_never_worse_than_the_template():
    p = tc.gaussian_line(300, seed=5, noise=2.0)  # weak peaks: some guesses chase noise
    layout = Layout(p.params)
    w = 1.0 / p.sigma
    starts = guessed_starts(p.model, layout, p.x, p.y, w)
    template = layout.starting_values(300)
    chosen = layout.starting_values(300, [starts])
    guessed_rows = np.isfinite(starts["p1_center"])
    assert 0 < guessed_rows.sum() < 300  # both kinds of start occur
    assert np.all(_cost(p, chosen, layout) <= _cost(p, template, layout))
    np.testing.assert_array_equal(chosen[~guessed_rows], template[~guessed_rows])


def test_emission_lines_guess_respects_the_ties_and_bounds():
    """The redshift (only ties use it) is found on a grid; amplitudes at their own lines, > 0."""
    p = tc.emission_lines(200, seed=6)
    layout = Layout(p.params)
    starts = guessed_starts(p.model, layout, p.x, p.y, 1.0 / p.sigma)
    assert set(starts) == set(layout.var_names)
    rows = np.isfinite(starts["ha_amplitude"])
    z, par = starts["z"][rows], p.params["z"]
    assert np.all((z > par.lo) & (z < par.hi))
    assert np.mean(np.abs(z - p.truth["z"][rows]) < 4e-4) > 0.95  # grid spacing 3.8e-4
    assert rows.mean() > 0.8  # the rest start from the template, which fits them better
    for name in ("ha_amplitude", "n2_amplitude", "s1_amplitude", "s2_amplitude"):
        assert np.all(starts[name][rows] > 0.0), name
    ratio = starts["ha_amplitude"][rows] / p.truth["ha_amplitude"][rows]
    assert 0.7 < np.median(ratio) < 1.3
