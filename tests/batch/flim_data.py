"""Real photon counts: a 64 x 64 pixel excerpt of a measured FLIM (TCSPC) image.

Provenance (``scripts/DATA.md``): NAD(P)H autofluorescence of a Drosophila
seminal receptacle, Becker & Hickl SPC-160 (2019-01-25), 256 bins of 48.9 ps,
from ``seminal_receptacle_FLIM_single_image.sdt`` in the
``napari-flim-phasor-plotter`` 0.2.3 wheel (BSD-3-Clause; data of Wetzker
2019). ``scripts/flim_excerpt.py`` cuts the excerpt and checks it.

The fitted model is the tail of the decay, from 6 bins (0.29 ns) after the
peak, where the instrument response has died out, to the end of the measured
window: ``s_amplitude*exp(-t/s_decay) + l_amplitude*exp(-t/l_decay) + bg_c``
with ``t`` from the window's first bin. Light of the previous laser pulse
(12.5 ns earlier) adds the same two exponentials, so the form stays exact.
Pooled over the excerpt (942,000 photons in the window) this tail model
leaves a deviance of 1.9 per degree of freedom: a small misfit at a million
counts, a deviance excess of about 1e-3 per degree of freedom at 1,000.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import batchfit
from batchfit.models import constant, exponential

FILE = Path(__file__).resolve().parent.parent / "data" / "flim" / "seminal_receptacle_64x64.npz"
FIRST, STOP = 36, 244
"""The fitted bins: six after the peak (bin 30) to the last full bin of the window."""


def flim_counts() -> tuple[np.ndarray, np.ndarray]:
    """``(t, counts)``: bin times (ns, 0 at the first fitted bin), counts (64, 64, 208) floats."""
    return _tail(FILE, FIRST, STOP)


def _tail(path: Path, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        counts, time = data["counts"], data["time_ns"]
    return time[first:stop] - time[first], counts[:, :, first:stop].astype(float)


def free_background_fit(t: np.ndarray, y: np.ndarray, background: float):
    """Poisson fit of every curve ``y`` with all five tail parameters free (``bg_c >= 0``)."""
    model = tail_model()
    params = tail_params(model, float(np.median(y[:, 0])), float(np.median(y[:, -20:])))
    params["bg_c"].value, params["bg_c"].min = background, 0.0
    return batchfit.fit_batch(model, params, t, y, cost="poisson")


def tail_model():
    """Two exponentials on a constant: ``s_`` (short), ``l_`` (long) and ``bg_c``."""
    return exponential(prefix="s_") + exponential(prefix="l_") + constant(prefix="bg_")


def tail_params(model, first_bin: float, last_bin: float):
    """A template from the first and last bins: amplitudes >= 0, lifetimes in (0.02, 20) ns."""
    return model.make_params(
        s_amplitude={"value": 0.6 * first_bin, "min": 0.0},
        s_decay={"value": 0.4, "min": 0.02, "max": 20.0},
        l_amplitude={"value": 0.4 * first_bin, "min": 0.0},
        l_decay={"value": 2.5, "min": 0.02, "max": 20.0},
        bg_c={"value": 0.5 * last_bin})


SHAPES = ("s_decay", "l_decay")
AMPLITUDES = ("s_amplitude", "l_amplitude", "bg_c")


HAZELNUT = FILE.with_name("hazelnut_32x32.npz")
"""Second excerpt: PicoQuant PicoHarp 300 image of a hazelnut section (``scripts/DATA.md``)."""
HAZELNUT_FIRST, HAZELNUT_STOP = 16, 130
"""Fitted bins: four (0.39 ns) after the peak (bin 12) to before the end of the 132-bin period."""


def hazelnut_counts() -> tuple[np.ndarray, np.ndarray]:
    """``(t, counts)`` of the hazelnut excerpt's fitted tail: counts (32, 32, 114) floats."""
    return _tail(HAZELNUT, HAZELNUT_FIRST, HAZELNUT_STOP)


def independent_mle(t: np.ndarray, y: np.ndarray, start: np.ndarray, bg: float) -> np.ndarray:
    """MLE of the four free tail parameters by scipy's BFGS on the negative log-likelihood.

    Independent of batchfit: its own model, gradient and optimizer, started at
    ``start`` * 1.02 (a check of the optimum, not a search for it).
    """
    from scipy.optimize import minimize

    def nll(p):
        sa, sd, la, ld = p
        es, el = np.exp(-t / sd), np.exp(-t / ld)
        f = sa * es + la * el + bg
        if np.any(f <= 0):
            return np.inf, np.zeros(4)
        dfs = (es, sa * es * t / sd**2, el, la * el * t / ld**2)
        return np.sum(f - y * np.log(f)), np.array([np.sum((1.0 - y / f) * d) for d in dfs])

    scale = np.abs(start)  # BFGS on parameters scaled to about 1
    out = minimize(lambda u: (lambda v, g: (v, g * scale))(*nll(u * scale)),
                   start / scale * 1.02, jac=True, method="BFGS",
                   options={"gtol": 1e-10, "maxiter": 10000})
    return out.x * scale
