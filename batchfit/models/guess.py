"""Vectorized starting values: one guess per row of ``y``, no loop over pixels.

Every ``guess_<model>(y, x)`` takes ``y`` of shape ``(n, nx)`` (NaN allowed)
and ``x`` of shape ``(nx,)`` (any order) and returns a dict mapping the
model's unprefixed parameter names to ``(n,)`` float64 arrays. Rows with no
finite value give NaN guesses; nothing raises for odd data.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import wofz

from batchfit.models import lineshapes as ls

FWHM_GAUSS = 2.0 * np.sqrt(2.0 * np.log(2.0))  # FWHM / sigma of a Gaussian
EDGE_FRACTION = 0.1  # fraction of points at each end taken as background


def _quiet(func):
    """Run ``func`` with numpy floating-point warnings silenced."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return func(*args, **kwargs)

    return wrapper


def prepare(y, x):
    """Return float64 ``(y, x)`` with ``x`` ascending and ``y`` 2-d, columns reordered."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.atleast_2d(np.asarray(y, dtype=float))
    order = np.argsort(x, kind="stable")
    return y[:, order], x[order]


def fill_nan(y):
    """Fill NaN along each row with the previous finite value (the next one at the start)."""
    idx = np.arange(y.shape[1])
    finite = np.isfinite(y)
    fwd = np.maximum.accumulate(np.where(finite, idx, 0), axis=1)
    filled = np.take_along_axis(y, fwd, axis=1)
    first = np.argmax(finite, axis=1)[:, None]
    return np.where(idx < first, np.take_along_axis(y, first, axis=1), filled)


@_quiet
def _nanmean(y, axis=1):
    finite = np.isfinite(y)
    return np.where(finite, y, 0.0).sum(axis=axis) / finite.sum(axis=axis)


def edge_mask(nx):
    """Boolean ``(nx,)`` mask of the points taken as background at both ends."""
    k = max(1, int(round(EDGE_FRACTION * nx)))
    mask = np.zeros(nx, dtype=bool)
    mask[:k] = True
    mask[-k:] = True
    return mask


# --------------------------------------------------------------- polynomials
def _poly_matrix(center, scale, degree):
    """Matrix taking coefficients in ``t=(x-center)/scale`` to coefficients in ``x``."""
    from math import comb

    k = degree + 1
    m = np.zeros((k, k))
    for j in range(k):
        for i in range(j + 1):
            m[i, j] = comb(j, i) * (-center) ** (j - i) / scale**j
    return m


@_quiet
def poly_coefs(y, x, degree):
    """Per-row least-squares polynomial coefficients ``(n, degree+1)``, lowest first.

    NaN points are left out of each row's fit; rows with too few finite points
    give NaN. ``x`` is centred and scaled internally for conditioning.
    """
    y, x = prepare(y, x)
    center = 0.5 * (x[0] + x[-1])
    scale = max(0.5 * (x[-1] - x[0]), np.finfo(float).tiny)
    t = (x - center) / scale
    basis = np.power.outer(t, np.arange(degree + 1))  # (nx, k)
    w = np.isfinite(y).astype(float)  # (n, nx)
    normal = np.einsum("ni,ij,ik->njk", w, basis, basis)
    rhs = np.einsum("ni,ij->nj", w * np.where(w > 0, y, 0.0), basis)
    ok = np.linalg.matrix_rank(normal) == degree + 1
    normal[~ok] = np.eye(degree + 1)
    coefs_t = np.linalg.solve(normal, rhs[..., None])[..., 0]
    coefs_t[~ok] = np.nan
    return coefs_t @ _poly_matrix(center, scale, degree).T


def guess_polynomial(y, x, degree=0):
    """Guess ``c0..c<degree>`` by per-row least squares."""
    coefs = poly_coefs(y, x, degree)
    return {f"c{k}": coefs[:, k] for k in range(degree + 1)}


def guess_linear(y, x):
    """Guess ``slope, intercept`` by per-row least squares."""
    c0, c1 = poly_coefs(y, x, 1).T
    return {"slope": c1, "intercept": c0}


def guess_quadratic(y, x):
    """Guess ``a, b, c`` by per-row least squares."""
    c, b, a = poly_coefs(y, x, 2).T
    return {"a": a, "b": b, "c": c}


def guess_constant(y, x):
    """Guess ``c`` as the mean of the finite points."""
    return {"c": _nanmean(np.atleast_2d(np.asarray(y, dtype=float)))}


# --------------------------------------------------------------------- peaks
@_quiet
def peak_shape(y, x):
    """Height above the edge baseline, center and FWHM of the largest peak per row.

    Returns ``(height, center, fwhm)``, each ``(n,)``. The FWHM is measured
    between the half-maximum crossings next to the maximum, interpolated
    linearly, and is at least the smallest point spacing.
    """
    y, x = prepare(y, x)
    base = _nanmean(np.where(edge_mask(x.size), y, np.nan))
    yb = fill_nan(y) - base[:, None]
    ipk = np.argmax(np.where(np.isfinite(yb), yb, -np.inf), axis=1)
    rows = np.arange(y.shape[0])
    height = yb[rows, ipk]
    below = yb < 0.5 * height[:, None]
    left = _crossing(yb, x, below, ipk, height, side=-1)
    right = _crossing(yb, x, below, ipk, height, side=+1)
    dx_min = np.min(np.diff(x)) if x.size > 1 else 1.0
    fwhm = np.maximum(right - left, dx_min)
    # the midpoint of the crossings is less noisy than the arg-max for symmetric peaks
    center = np.where(np.isfinite(left + right), 0.5 * (left + right), x[ipk])
    return height, center, fwhm


def _crossing(yb, x, below, ipk, height, side):
    """The x of the half-maximum crossing nearest to ``ipk`` on one ``side`` (-1 or +1)."""
    nx = x.size
    idx = np.arange(nx)
    if side < 0:
        i_out = np.where(below & (idx < ipk[:, None]), idx, -1).max(axis=1)
        i_in = i_out + 1
        missing, edge = i_out < 0, x[0]
    else:
        i_out = np.where(below & (idx > ipk[:, None]), idx, nx).min(axis=1)
        i_in = i_out - 1
        missing, edge = i_out >= nx, x[-1]
    i_out = np.clip(i_out, 0, nx - 1)
    rows = np.arange(yb.shape[0])
    y_out, y_in = yb[rows, i_out], yb[rows, i_in]
    frac = (0.5 * height - y_out) / (y_in - y_out)
    frac = np.where(np.isfinite(frac), np.clip(frac, 0.0, 1.0), 0.5)
    xc = x[i_out] + frac * (x[i_in] - x[i_out])
    return np.where(missing, edge, xc)


def guess_gaussian(y, x):
    """Guess ``amplitude, center, sigma`` of a Gaussian from the largest peak."""
    height, center, fwhm = peak_shape(y, x)
    sigma = fwhm / FWHM_GAUSS
    return {"amplitude": height * sigma * ls.S2PI, "center": center, "sigma": sigma}


def guess_lorentzian(y, x):
    """Guess ``amplitude, center, sigma`` of a Lorentzian from the largest peak."""
    height, center, fwhm = peak_shape(y, x)
    sigma = 0.5 * fwhm
    return {"amplitude": height * sigma * np.pi, "center": center, "sigma": sigma}


# FWHM / sigma of a Voigt profile with gamma == sigma (Olivero-Longbothum formula)
_FL, _FG = 2.0, FWHM_GAUSS
VOIGT_FWHM = 0.5346 * _FL + np.sqrt(0.2166 * _FL**2 + _FG**2)
VOIGT_PEAK = wofz(1j / ls.S2).real / ls.S2PI  # peak height * sigma / area, gamma == sigma


def guess_voigt(y, x):
    """Guess ``amplitude, center, sigma, gamma`` with ``gamma == sigma``."""
    height, center, fwhm = peak_shape(y, x)
    sigma = fwhm / VOIGT_FWHM
    return {
        "amplitude": height * sigma / VOIGT_PEAK,
        "center": center,
        "sigma": sigma,
        "gamma": sigma.copy(),
    }


def guess_pseudo_voigt(y, x):
    """Guess ``amplitude, center, sigma, fraction`` with ``fraction = 0.5``."""
    height, center, fwhm = peak_shape(y, x)
    sigma = 0.5 * fwhm
    fraction = np.full_like(sigma, 0.5)
    peak = ls.pseudo_voigt(0.0, 1.0, 0.0, sigma, fraction)  # height of unit area
    return {"amplitude": height / peak, "center": center, "sigma": sigma, "fraction": fraction}


@_quiet
def guess_step(y, x):
    """Guess ``amplitude, center, sigma`` of an erf step.

    The amplitude is the difference of the edge means; with ``s`` the curve
    scaled to run from 0 to 1, ``center = x0 + integral(1 - s)`` and
    ``sigma = sqrt(pi) * integral(s*(1-s))``, exact for a noise-free erf step.
    """
    y, x = prepare(y, x)
    k = max(1, int(round(EDGE_FRACTION * x.size)))
    lo, hi = _nanmean(y[:, :k]), _nanmean(y[:, -k:])
    amplitude = hi - lo
    s = (fill_nan(y) - lo[:, None]) / amplitude[:, None]
    center = x[0] + np.trapezoid(1.0 - s, x, axis=1)
    sigma = ls.SQRT_PI * np.trapezoid(s * (1.0 - s), x, axis=1)
    dx_min = np.min(np.diff(x)) if x.size > 1 else 1.0
    return {"amplitude": amplitude, "center": center, "sigma": np.maximum(sigma, dx_min)}


# -------------------------------------------------------------- time domain
@_quiet
def guess_exponential(y, x):
    """Guess ``amplitude, decay`` by weighted regression of ``log(y)`` on ``x``.

    Only positive points count, weighted by ``y**2`` (the inverse variance of
    ``log(y)`` for constant noise on ``y``), so the noisy tail matters little.
    """
    y, x = prepare(y, x)
    pos = np.isfinite(y) & (y > 0)
    w = np.where(pos, y, 0.0) ** 2
    logy = np.log(np.where(pos, y, 1.0))
    sw, swx, swxx = w.sum(1), w @ x, w @ (x * x)
    swy, swxy = (w * logy).sum(1), (w * logy) @ x
    det = sw * swxx - swx * swx
    slope = (sw * swxy - swx * swy) / det
    intercept = (swxx * swy - swx * swxy) / det
    return {"amplitude": np.exp(intercept), "decay": -1.0 / slope}


@_quiet
def guess_damped_sine(y, x):
    """Guess ``amp, omega, shift, decay`` from the spectrum and a sine/cosine projection.

    ``omega`` is the peak of the zero-padded FFT (nearly uniform sampling
    assumed); ``amp`` and ``shift`` come from a per-row least-squares fit of
    ``A sin(omega x) + B cos(omega x)``; ``decay`` compares the RMS of the first
    and second halves of the curve (``rms ~ exp(-x^2 decay)``), clipped at zero.
    """
    y, x = prepare(y, x)
    yf = fill_nan(y)
    yf = np.where(np.isfinite(yf), yf, 0.0)
    yc = yf - yf.mean(axis=1, keepdims=True)
    omega = _fft_peak(yc, x)
    decay = _envelope_decay(yc, x)
    env = np.exp(-np.outer(decay, x * x))
    amp, shift = _sine_projection(np.where(np.isfinite(y), yc, 0.0), x, omega, env)
    return {"amp": amp, "omega": omega, "shift": shift, "decay": decay}


def _fft_peak(yc, x, pad=8):
    """Angular frequency of the largest non-zero FFT peak per row, zero-padded ``pad`` times."""
    dx = (x[-1] - x[0]) / max(x.size - 1, 1)
    n = pad * x.size
    spec = np.abs(np.fft.rfft(yc, n=n, axis=1))
    k = pad + np.argmax(spec[:, pad:], axis=1)  # skip the zero-frequency lobe
    return 2.0 * np.pi * np.fft.rfftfreq(n, d=dx)[k]


def _envelope_decay(yc, x):
    half = x.size // 2
    rms1 = np.sqrt(np.mean(yc[:, :half] ** 2, axis=1))
    rms2 = np.sqrt(np.mean(yc[:, half:] ** 2, axis=1))
    x1, x2 = np.mean(x[:half] ** 2), np.mean(x[half:] ** 2)
    decay = np.log(rms1 / rms2) / (x2 - x1)
    return np.where(np.isfinite(decay), np.maximum(decay, 0.0), 0.0)


def _sine_projection(yc, x, omega, env):
    """Least squares ``yc ~ env*(A sin(w x) + B cos(w x))`` -> ``(hypot(A, B), atan2(B, A))``."""
    phase = np.outer(omega, x)
    s, c = env * np.sin(phase), env * np.cos(phase)
    w = (yc != 0.0).astype(float)  # NaN points were set to exactly 0
    ss, cc, sc = (w * s * s).sum(1), (w * c * c).sum(1), (w * s * c).sum(1)
    ys, yc_ = (yc * s).sum(1), (yc * c).sum(1)
    det = ss * cc - sc * sc
    a = (cc * ys - sc * yc_) / det
    b = (ss * yc_ - sc * ys) / det
    return np.hypot(a, b), np.arctan2(b, a)
