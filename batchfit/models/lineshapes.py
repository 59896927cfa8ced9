"""Vectorized lineshapes and their analytic partial derivatives.

Every function has the signature ``f(x, p1, p2, ...)``: ``x`` has shape
``(nx,)`` and each parameter is a float or an array of shape ``(n, 1)``, so the
result broadcasts to ``(n, nx)``. Each ``d_<name>`` function returns a tuple of
partial derivatives, one per parameter in signature order, each broadcast to
the full output shape.

Normalisations follow lmfit: for the peaks, ``amplitude`` is the area.
Nothing here raises for odd parameter values: ``sigma=0`` gives ``inf`` or
``nan``, which the batch engine flags per pixel.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import erf, wofz

S2 = np.sqrt(2.0)
S2PI = np.sqrt(2.0 * np.pi)
SQRT_PI = np.sqrt(np.pi)
# pseudo-Voigt: Gaussian sigma with the same FWHM (2*sigma) as the Lorentzian
PV_SIGMA_G = 1.0 / np.sqrt(2.0 * np.log(2.0))


def _quiet(func):
    """Evaluate ``func`` on float arrays with numpy floating-point warnings silenced.

    Converting Python floats to numpy makes ``1.0/0.0`` give ``inf`` instead of raising.
    """

    @functools.wraps(func)
    def wrapper(*args):
        arrays = [np.asarray(a, dtype=float) for a in args]
        with np.errstate(all="ignore"):
            return func(*arrays)

    return wrapper


def _full(x, *arrays):
    """Broadcast ``arrays`` to the common shape of ``x`` and ``arrays``.

    The results are read-only broadcast views, not copies: the batch engine
    multiplies them into its own Jacobian buffer, so a copy would only cost
    one more pass over memory per parameter.
    """
    shape = np.broadcast_shapes(np.shape(x), *(np.shape(a) for a in arrays))
    return tuple(np.broadcast_to(np.asarray(a, dtype=float), shape) for a in arrays)


# --------------------------------------------------------------------- peaks
def _gaussian_parts(x, amplitude, center, sigma):
    """``u = (x-c)/sigma``, ``e = exp(-u*u/2)`` and the value ``e * A/(sigma*sqrt(2pi))``."""
    inv = 1.0 / np.asarray(sigma, dtype=float)  # per curve: one division, not one per point
    u = (x - center) * inv
    e = np.asarray(u * u)
    np.multiply(e, -0.5, out=e)
    np.exp(e, out=e)
    return u, e, e * (amplitude * inv / S2PI)


@_quiet
def gaussian(x, amplitude, center, sigma):
    """Gaussian of area ``amplitude``: ``A/(sigma*sqrt(2pi)) * exp(-(x-c)^2/(2 sigma^2))``."""
    return _gaussian_parts(x, amplitude, center, sigma)[2]


def _gaussian_partials(x, amplitude, center, sigma, u, e, f):
    inv = 1.0 / np.asarray(sigma, dtype=float)
    t = f * inv
    d_center = t * u  # f * u / sigma
    d_sigma = d_center * u
    d_sigma -= t  # f * (u*u - 1) / sigma
    return _full(x, e * (inv / S2PI), d_center, d_sigma)


@_quiet
def d_gaussian(x, amplitude, center, sigma):
    """Partial derivatives of :func:`gaussian` (amplitude, center, sigma)."""
    return _gaussian_partials(x, amplitude, center, sigma,
                              *_gaussian_parts(x, amplitude, center, sigma))


@_quiet
def gaussian_both(x, amplitude, center, sigma):
    """:func:`gaussian` and :func:`d_gaussian` sharing one ``exp``."""
    u, e, f = _gaussian_parts(x, amplitude, center, sigma)
    return f, _gaussian_partials(x, amplitude, center, sigma, u, e, f)


gaussian.value_and_partials = gaussian_both  # found by models.model.Kernel


@_quiet
def lorentzian(x, amplitude, center, sigma):
    """Lorentzian of area ``amplitude`` and half width at half maximum ``sigma``."""
    u = (x - center) / sigma
    return amplitude / (np.pi * sigma * (1.0 + u * u))


@_quiet
def d_lorentzian(x, amplitude, center, sigma):
    """Partial derivatives of :func:`lorentzian` (amplitude, center, sigma)."""
    u = (x - center) / sigma
    q = 1.0 + u * u
    shape = 1.0 / (np.pi * sigma * q)
    f = amplitude * shape
    return _full(x, shape, f * 2.0 * u / (sigma * q), f * (u * u - 1.0) / (sigma * q))


def _voigt_parts(x, center, sigma, gamma):
    z = (x - center + 1j * gamma) / (sigma * S2)
    return z, wofz(z)


@_quiet
def voigt(x, amplitude, center, sigma, gamma):
    """Voigt profile of area ``amplitude``: ``A * Re w(z) / (sigma*sqrt(2pi))``.

    ``z = (x - center + i*gamma) / (sigma*sqrt(2))``; ``w`` is the Faddeeva function.
    """
    _, w = _voigt_parts(x, center, sigma, gamma)
    return amplitude * w.real / (sigma * S2PI)


@_quiet
def d_voigt(x, amplitude, center, sigma, gamma):
    """Partial derivatives of :func:`voigt` (amplitude, center, sigma, gamma).

    Uses ``w'(z) = -2 z w(z) + 2i/sqrt(pi)``.
    """
    z, w = _voigt_parts(x, center, sigma, gamma)
    dw = -2.0 * z * w + 2.0j / SQRT_PI
    norm = 1.0 / (sigma * S2PI)
    scale = amplitude * norm
    f = scale * w.real
    inv = 1.0 / (sigma * S2)  # real first: complex / 0.0 would raise, not give inf
    d_center = -scale * inv * dw.real
    d_gamma = -scale * inv * dw.imag  # Re(i * dw) = -Im(dw)
    d_sigma = scale * (dw * (-z / sigma)).real - f / sigma
    return _full(x, norm * w.real, d_center, d_sigma, d_gamma)


@_quiet
def pseudo_voigt(x, amplitude, center, sigma, fraction):
    """Pseudo-Voigt of area ``amplitude``: ``(1-fraction)*G + fraction*L``.

    ``L`` is :func:`lorentzian` with ``sigma``; ``G`` is :func:`gaussian` with
    ``sigma_g = sigma/sqrt(2 ln 2)``, so both have FWHM ``2*sigma``.
    """
    g = gaussian(x, amplitude, center, sigma * PV_SIGMA_G)
    lor = lorentzian(x, amplitude, center, sigma)
    return (1.0 - fraction) * g + fraction * lor


@_quiet
def d_pseudo_voigt(x, amplitude, center, sigma, fraction):
    """Partial derivatives of :func:`pseudo_voigt` (amplitude, center, sigma, fraction)."""
    ga, gc, gs = d_gaussian(x, amplitude, center, sigma * PV_SIGMA_G)
    la, lc, ls = d_lorentzian(x, amplitude, center, sigma)
    g = gaussian(x, amplitude, center, sigma * PV_SIGMA_G)
    lor = lorentzian(x, amplitude, center, sigma)
    w = 1.0 - fraction
    return _full(
        x,
        w * ga + fraction * la,
        w * gc + fraction * lc,
        w * gs * PV_SIGMA_G + fraction * ls,
        lor - g,
    )


@_quiet
def step(x, amplitude, center, sigma):
    """Error-function step from 0 to ``amplitude``, half way at ``center``.

    ``amplitude * (1 + erf((x - center)/(sigma*sqrt(2)))) / 2``: the integral
    of a unit Gaussian of width ``sigma``.
    """
    return amplitude * 0.5 * (1.0 + erf((x - center) / (sigma * S2)))


@_quiet
def d_step(x, amplitude, center, sigma):
    """Partial derivatives of :func:`step` (amplitude, center, sigma)."""
    u = (x - center) / sigma
    density = amplitude * np.exp(-0.5 * u * u) / S2PI
    return _full(x, 0.5 * (1.0 + erf(u / S2)), -density / sigma, -density * u / sigma)


# -------------------------------------------------------------- time domain
@_quiet
def exponential(x, amplitude, decay):
    """Exponential decay ``amplitude * exp(-x/decay)``."""
    return amplitude * np.exp(-x / decay)


@_quiet
def d_exponential(x, amplitude, decay):
    """Partial derivatives of :func:`exponential` (amplitude, decay)."""
    e = np.exp(-x / decay)
    return _full(x, e, amplitude * e * x / (decay * decay))


@_quiet
def damped_sine(x, amp, omega, shift, decay):
    """Damped sine ``amp * sin(x*omega + shift) * exp(-x*x*decay)``."""
    return amp * np.sin(x * omega + shift) * np.exp(-x * x * decay)


@_quiet
def d_damped_sine(x, amp, omega, shift, decay):
    """Partial derivatives of :func:`damped_sine` (amp, omega, shift, decay)."""
    phase = x * omega + shift
    env = np.exp(-x * x * decay)
    s = np.sin(phase) * env
    c = amp * np.cos(phase) * env
    return _full(x, s, c * x, c, -x * x * amp * s)


# --------------------------------------------------------------- polynomials
@_quiet
def polynomial(x, *coefs):
    """Polynomial ``sum_k coefs[k] * x**k`` (Horner's scheme)."""
    shape = np.broadcast_shapes(np.shape(x), *(np.shape(c) for c in coefs))
    if len(coefs) < 2 or not shape or not np.isfinite(x).all():
        out = np.zeros(shape)
        for c in reversed(coefs):
            out = out * x + c
        return out
    # Horner from the top coefficient (0*x + c is c for finite x), in place.
    out = np.multiply(coefs[-1], x)
    out = out + coefs[-2] if out.shape != shape else np.add(out, coefs[-2], out=out)
    for c in reversed(coefs[:-2]):
        out *= x
        out += c
    return out


@_quiet
def d_polynomial(x, *coefs):
    """Partial derivatives of :func:`polynomial`: ``x**k`` for each coefficient."""
    return _full(x, *(np.power(x, k) for k in range(len(coefs))), *coefs)[: len(coefs)]


def linear(x, slope, intercept):
    """Straight line ``slope*x + intercept``."""
    return polynomial(x, intercept, slope)


def d_linear(x, slope, intercept):
    """Partial derivatives of :func:`linear` (slope, intercept)."""
    d_c0, d_c1 = d_polynomial(x, intercept, slope)
    return d_c1, d_c0


def quadratic(x, a, b, c):
    """Parabola ``a*x**2 + b*x + c``."""
    return polynomial(x, c, b, a)


def d_quadratic(x, a, b, c):
    """Partial derivatives of :func:`quadratic` (a, b, c)."""
    return d_polynomial(x, c, b, a)[::-1]


def constant(x, c):
    """Constant ``c`` broadcast against ``x``."""
    return polynomial(x, c)


def d_constant(x, c):
    """Partial derivative of :func:`constant` (c)."""
    return d_polynomial(x, c)


# Public names of the helpers for the other lineshape modules (batchfit.models.shapes).
quiet = _quiet
broadcast_partials = _full
