"""cost='poisson' on a second measured FLIM image: another instrument, format and tissue.

The data (``tests/batch/flim_data.py``, provenance in ``scripts/DATA.md``) are
32 x 32 pixels of a hazelnut section's autofluorescence, PicoQuant PicoHarp
300 T3 records (PTU) summed over 5 frames: a median of 323 photons per pixel
in the fitted tail, 43% of its bins empty. As for the seminal receptacle
excerpt (``test_poisson_flim.py``), the reference is the pooled fit, and
binomial thinning of the pooled real counts gives replicates that should find
it on average; independent checks are scipy's BFGS on the negative
log-likelihood per curve, and chi-square with ``sigma = sqrt(counts)``.
"""

from __future__ import annotations

import numpy as np
import pytest

import batchfit

from .flim_data import (
    SHAPES,
    free_background_fit,
    hazelnut_counts,
    independent_mle,
    tail_model,
    tail_params,
)

FREE = ("s_amplitude", "s_decay", "l_amplitude", "l_decay")


def _pooled(t, y):
    model = tail_model()
    pooled = y.sum(axis=0)
    res = batchfit.fit_batch(model, tail_params(model, pooled[0], pooled[-1]), t,
                             pooled[None], cost="poisson")
    assert res.success.all()
    return pooled, {k: float(v[0]) for k, v in res.values.items()}, float(res.redchi[0])


def _held_background(t, y, bg, **kws):
    """Fit the four free parameters with ``bg_c`` held per curve at ``bg``."""
    model = tail_model()
    params = tail_params(model, float(np.mean(y[:, :3])), float(np.mean(y[:, -20:])))
    params["bg_c"].vary = False
    init = {"bg_c": np.broadcast_to(bg, len(y)), "bg_c_vary": np.zeros(len(y), bool)}
    return batchfit.fit_batch(model, params, t, y, init=init, **kws)


def test_excerpt_is_measured_counts_the_tail_model_describes():
    t, counts = hazelnut_counts()
    assert counts.shape == (32, 32, 114) and np.array_equal(counts, np.round(counts))
    y = counts.reshape(-1, t.size)
    assert np.median(y.sum(axis=1)) == 323 and 0.4 < (y == 0).mean() < 0.5
    _, ref, redchi = _pooled(t, y)
    assert 1.5 < redchi < 4.0  # 330,000 photons: a small misfit of the two-exponential tail
    assert 0.3 < ref["s_decay"] < 0.45 and 1.8 < ref["l_decay"] < 2.3


@pytest.mark.slow
def test_thinned_to_1000_photons_lifetimes_within_about_one_percent():
    t, counts = hazelnut_counts()
    pooled, ref, _ = _pooled(t, counts.reshape(-1, t.size))
    rng = np.random.default_rng(1)
    p, n = 1000 / pooled.sum(), 2000
    y = rng.binomial(pooled.astype(np.int64), p, (n, t.size)).astype(float)
    res = _held_background(t, y, ref["bg_c"] * p, cost="poisson")
    assert res.success.all() and (res.ndata == t.size).all() and (y == 0).any(axis=1).all()
    want = {k: ref[k] * (p if k.endswith("amplitude") else 1.0) for k in FREE}
    bias = {k: float(np.median(res.values[k]) / want[k] - 1.0) for k in SHAPES}
    assert all(abs(b) < 0.015 for b in bias.values()), bias
    for name in FREE:
        inside = np.abs(res.values[name] - want[name]) < res.stderr[name]
        assert 0.6 <= inside.mean() <= 0.76, (name, inside.mean())
    ney = _held_background(t, y, ref["bg_c"] * p, sigma=np.where(y > 0, np.sqrt(y), np.nan))
    ney_bias = [abs(float(np.median(ney.values[k]) / want[k] - 1.0)) for k in SHAPES]
    assert max(ney_bias) > 5 * max(abs(b) for b in bias.values())


def test_every_pixel_converges_and_agrees_with_an_independent_mle():
    """The un-thinned pixels (1 to 800 photons): with a free background every pixel
    converges; with the background held, three pixels agree with scipy's BFGS."""
    t, counts = hazelnut_counts()
    y = counts.reshape(-1, t.size)
    free = free_background_fit(t, y, 0.05)
    assert free.success.all(), free.counts()
    assert np.percentile(free.nfev, 99) <= 5 * np.median(free.nfev)
    _, ref, _ = _pooled(t, y)
    bg = ref["bg_c"] / len(y)
    some = y[[7, 500, 1000]]
    held = _held_background(t, some, bg, cost="poisson")
    assert held.success.all()
    for i in range(len(some)):
        got = np.array([held.values[k][i] for k in FREE])
        np.testing.assert_allclose(got, independent_mle(t, some[i], got, bg), rtol=1e-4,
                                   err_msg=f"pixel {i}")
