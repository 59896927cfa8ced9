"""Synthetic photon-count decay cubes: bi-exponential decays through a Gaussian response.

Used by ``tests/batch/test_poisson.py`` and ``scripts/bench_poisson.py``. The
model is written here from its closed form (an exponential convolved with a
normalized Gaussian instrument response, Grinvald and Steinberg 1974):

    g(t; tau) = 0.5 exp(sigma^2 / (2 tau^2) - u / tau) erfc((sigma^2 / tau - u) / (sqrt(2) sigma))

with ``u = t - t0``, computed through ``erfcx`` where its argument is positive
so nothing overflows, and its derivative in ``tau``

    dg/dtau = (g * (u - sigma^2 / tau) + sigma * exp(-u^2 / (2 sigma^2)) / sqrt(2 pi)) / tau^2.

The fitted model is ``a1 * g(t; tau1) + a2 * g(t; tau2)`` (``t0`` and the
response width ``irf`` fixed by default), a :class:`batchfit.models.Model` with
analytic partials.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc, erfcx

from batchfit.models.model import Kernel, Model

T0, IRF = 1.0, 0.12
"""Response centre and width (ns) of the synthetic cubes."""
TAU1, TAU2, FRACTION = 0.4, 2.5, 0.5
"""True lifetimes (ns) and the photon fraction of the short one (free and bound
NADH in cells are about 0.4 and 2.5 ns)."""


def decay_shape(t, tau, t0=T0, irf=IRF):
    """``g(t; tau)``: a unit-amplitude exponential convolved with the response."""
    u = t - t0
    z = (irf * irf / tau - u) / (np.sqrt(2.0) * irf)
    with np.errstate(over="ignore", invalid="ignore"):
        pos = 0.5 * np.exp(-u * u / (2.0 * irf * irf)) * erfcx(np.maximum(z, 0.0))
        neg = 0.5 * np.exp(irf * irf / (2.0 * tau * tau) - u / tau) * erfc(np.minimum(z, 0.0))
    return np.where(z >= 0.0, pos, neg)


def decay_shape_dtau(t, tau, g, t0=T0, irf=IRF):
    """``dg/dtau`` given ``g = decay_shape(t, tau)``."""
    u = t - t0
    gauss = irf * np.exp(-u * u / (2.0 * irf * irf)) / np.sqrt(2.0 * np.pi)
    return (g * (u - irf * irf / tau) + gauss) / (tau * tau)


def _biexp(t, a1, tau1, a2, tau2, t0, irf):
    return a1 * decay_shape(t, tau1, t0, irf) + a2 * decay_shape(t, tau2, t0, irf)


def _biexp_both(t, a1, tau1, a2, tau2, t0, irf):
    g1, g2 = decay_shape(t, tau1, t0, irf), decay_shape(t, tau2, t0, irf)
    value = a1 * g1 + a2 * g2
    partials = (g1, a1 * decay_shape_dtau(t, tau1, g1, t0, irf),
                g2, a2 * decay_shape_dtau(t, tau2, g2, t0, irf), None, None)
    return value, partials


def biexp_model() -> Model:
    """``a1*g(t; tau1) + a2*g(t; tau2)`` with partials in a1, tau1, a2, tau2.

    ``t0`` and ``irf`` are parameters too (make them ``vary=False``); their
    partials are not given, so they cannot be fitted with this model.
    """
    kernel = Kernel(kind="function", name="tests.batch.decay_cubes:biexp",
                    param_names=("a1", "tau1", "a2", "tau2", "t0", "irf"), func=_biexp,
                    deriv=lambda *a: _biexp_both(*a)[1], both=_biexp_both)
    return Model(kernel)


def biexp_params(model: Model, photons: float):
    """A template: amplitudes >= 0, lifetimes in (0.05, 20) ns, response held fixed."""
    start = photons * 0.25
    return model.make_params(
        a1={"value": start, "min": 0.0}, tau1={"value": 0.4, "min": 0.05, "max": 20.0},
        a2={"value": start, "min": 0.0}, tau2={"value": 2.0, "min": 0.05, "max": 20.0},
        t0={"value": T0, "vary": False}, irf={"value": IRF, "vary": False})


def decay_cube(n: int, photons: float, seed: int = 0, nbins: int = 128, period: float = 12.5):
    """``n`` Poisson-sampled decays with ``photons`` expected counts each.

    Returns ``(t, counts (n, nbins), truth dict of (n,) arrays, expected (n, nbins))``.
    Each bin holds the model at its centre times the bin width (fine bins:
    the response is resolved), so the fitted model is exactly the truth.
    """
    rng = np.random.default_rng(seed)
    t = (np.arange(nbins) + 0.5) * (period / nbins)
    width = period / nbins
    shape1, shape2 = decay_shape(t, TAU1) * width, decay_shape(t, TAU2) * width
    # Photon fractions: each component's integral over the window is a_i * sum(shape_i).
    a1 = FRACTION * photons / shape1.sum()
    a2 = (1.0 - FRACTION) * photons / shape2.sum()
    truth = {"a1": np.full(n, a1 * width), "tau1": np.full(n, TAU1),
             "a2": np.full(n, a2 * width), "tau2": np.full(n, TAU2)}
    expected = a1 * shape1 + a2 * shape2
    counts = rng.poisson(np.broadcast_to(expected, (n, nbins))).astype(float)
    return t, counts, truth, np.broadcast_to(expected, (n, nbins))
