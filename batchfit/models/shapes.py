"""More lineshapes with analytic partials: asymmetric peaks, Moffat, step and rectangle forms.

Same conventions as :mod:`batchfit.models.lineshapes` (``f(x, p1, ...)``,
parameters broadcasting as ``(n, 1)``; ``d_<name>`` returns the partials in
signature order). Parameter names and normalisations are lmfit's (1.3):

* ``skewed_gaussian(amplitude, center, sigma, gamma)``: a Gaussian of area
  ``amplitude`` times ``1 + erf(gamma*(x-center)/(sigma*sqrt(2)))``; area
  stays ``amplitude`` (the skew-normal density).
* ``exponential_gaussian(amplitude, center, sigma, gamma)``: lmfit's
  ``expgaussian``, the exponentially modified Gaussian of area ``amplitude``,
  ``A*gamma/2 * exp(gamma*(center + gamma*sigma^2/2 - x)) *
  erfc((center + gamma*sigma^2 - x)/(sqrt(2)*sigma))``. Evaluated with
  ``erfcx`` where the exponential alone would overflow.
* ``moffat(amplitude, center, sigma, beta)``: ``A / (((x-c)/sigma)^2 + 1)^beta``;
  ``amplitude`` is the height.
* step forms (``arg = (x - center)/sigma``, from 0 to ``amplitude``):
  ``linear`` ``min(1, max(0, arg + 1/2))``, ``arctan`` ``1/2 + arctan(arg)/pi``,
  ``erf`` ``(1 + erf(arg))/2``, ``logistic`` ``1 - 1/(1 + exp(arg))``.
* ``rectangle(amplitude, center1, sigma1, center2, sigma2)`` with the same
  forms: up at ``center1``, down at ``center2``, ``arg1 = (x-center1)/sigma1``,
  ``arg2 = (center2-x)/sigma2``; ``linear`` is
  ``(min(1, max(-1, arg1)) + min(1, max(-1, arg2)))/2``.

Derivatives of the ``linear`` forms are taken as 0 at their kinks.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf, erfc, erfcx, expit

from batchfit.models.lineshapes import S2, S2PI, SQRT_PI, broadcast_partials, quiet

FORMS = ("linear", "arctan", "erf", "logistic")
FORM_ALIASES = {"atan": "arctan"}
TWO_OVER_SQRT_PI = 2.0 / SQRT_PI


# ------------------------------------------------------------ skewed Gaussian
def _skew_parts(x, amplitude, center, sigma, gamma):
    """``u = (x-c)/sigma``, the unit-area Gaussian, the Gaussian and the skew factor."""
    u = (x - center) / sigma
    unit = np.exp(-0.5 * u * u) / (S2PI * sigma)
    return u, unit, amplitude * unit, 1.0 + erf(gamma * u / S2)


@quiet
def skewed_gaussian(x, amplitude, center, sigma, gamma):
    """Gaussian skewed by ``1 + erf(gamma*(x-center)/(sigma*sqrt(2)))``; area ``amplitude``."""
    _, _, g, e = _skew_parts(x, amplitude, center, sigma, gamma)
    return g * e


@quiet
def d_skewed_gaussian(x, amplitude, center, sigma, gamma):
    """Partial derivatives of :func:`skewed_gaussian` (amplitude, center, sigma, gamma)."""
    u, unit, g, e = _skew_parts(x, amplitude, center, sigma, gamma)
    # d(erf(gamma*u/sqrt2))/d(gamma*u) = sqrt(2/pi) * exp(-(gamma*u)^2/2)
    de = np.sqrt(2.0 / np.pi) * np.exp(-0.5 * (gamma * u) ** 2)
    # the Gaussian: dG/dc = G*u/sigma, dG/dsigma = G*(u^2 - 1)/sigma
    d_center = g * (u * e - gamma * de) / sigma
    d_sigma = g * ((u * u - 1.0) * e - gamma * de * u) / sigma
    return broadcast_partials(x, unit * e, d_center, d_sigma, g * de * u)


# ------------------------------------------------ exponentially modified Gaussian
def _emg_parts(x, center, sigma, gamma):
    """``P = exp(arg1) * erfc(arg2)`` (stable), ``Q = 2/sqrt(pi) exp(arg1 - arg2^2)`` and args."""
    d = center - x
    arg2 = (d + gamma * sigma * sigma) / (S2 * sigma)
    gauss = np.exp(-0.5 * (d / sigma) ** 2)  # exp(arg1 - arg2^2), exactly
    arg1 = gamma * (d + 0.5 * gamma * sigma * sigma)
    # erfcx(arg2) = exp(arg2^2) erfc(arg2): no overflow for arg2 > 0; for arg2 <= 0
    # and gamma > 0, arg1 <= -gamma^2 sigma^2 / 2, so exp(arg1) itself is safe.
    p = np.where(arg2 > 0, gauss * erfcx(np.maximum(arg2, 0.0)), np.exp(arg1) * erfc(arg2))
    return p, TWO_OVER_SQRT_PI * gauss, d, arg2


@quiet
def exponential_gaussian(x, amplitude, center, sigma, gamma):
    """Exponentially modified Gaussian of area ``amplitude`` (lmfit's ``expgaussian``)."""
    p, _, _, _ = _emg_parts(x, center, sigma, gamma)
    return 0.5 * amplitude * gamma * p


@quiet
def d_exponential_gaussian(x, amplitude, center, sigma, gamma):
    """Partial derivatives of :func:`exponential_gaussian` (amplitude, center, sigma, gamma).

    With ``P = exp(arg1) erfc(arg2)``: ``dP = P*d(arg1) - Q*d(arg2)``, where
    ``Q = 2/sqrt(pi) * exp(arg1 - arg2^2) = 2/sqrt(pi) * exp(-(x-c)^2/(2 sigma^2))``.
    """
    p, q, d, arg2 = _emg_parts(x, center, sigma, gamma)
    scale = 0.5 * amplitude * gamma
    dp_c = p * gamma - q / (S2 * sigma)
    dp_s = p * gamma * gamma * sigma - q * (gamma / S2 - d / (S2 * sigma * sigma))
    dp_g = p * (d + gamma * sigma * sigma) - q * sigma / S2
    return broadcast_partials(x, 0.5 * gamma * p, scale * dp_c, scale * dp_s,
                              0.5 * amplitude * p + scale * dp_g)


# --------------------------------------------------------------------- Moffat
@quiet
def moffat(x, amplitude, center, sigma, beta):
    """Moffat profile ``amplitude / (((x-center)/sigma)^2 + 1)^beta`` (height ``amplitude``)."""
    u = (x - center) / sigma
    return amplitude / (u * u + 1.0) ** beta


@quiet
def d_moffat(x, amplitude, center, sigma, beta):
    """Partial derivatives of :func:`moffat` (amplitude, center, sigma, beta)."""
    u = (x - center) / sigma
    b = u * u + 1.0
    shape = b**-beta
    f = amplitude * shape
    t = 2.0 * beta * f * u / (b * sigma)
    return broadcast_partials(x, shape, t, t * u, -f * np.log(b))


# ---------------------------------------------------------------- step forms
def edge(arg, form: str, half_width: float = 0.5):
    """Rising edge from 0 to 1 and its derivative by ``arg``, for one of :data:`FORMS`.

    ``half_width`` is the half width (in ``arg``) of the ``linear`` ramp: 0.5
    for lmfit's step, 1 for its rectangle.
    """
    if form == "linear":
        inside = np.abs(arg) < half_width
        s = np.clip(0.5 + arg / (2.0 * half_width), 0.0, 1.0)
        return s, np.where(inside, 0.5 / half_width, 0.0)
    if form == "arctan":
        return 0.5 + np.arctan(arg) / np.pi, 1.0 / (np.pi * (1.0 + arg * arg))
    if form == "erf":
        return 0.5 * (1.0 + erf(arg)), np.exp(-arg * arg) / SQRT_PI
    s = expit(arg)  # logistic: 1 - 1/(1 + exp(arg)), without overflow
    return s, s * (1.0 - s)


class StepForm:
    """``step`` of one form: ``__call__`` is the value, ``partials`` the derivatives."""

    def __init__(self, form: str):
        self.form = form

    def __call__(self, x, amplitude, center, sigma):
        """``amplitude * edge((x - center)/sigma)``."""
        with np.errstate(all="ignore"):
            s, _ = edge((np.asarray(x, float) - center) / sigma, self.form)
            return amplitude * s

    def partials(self, x, amplitude, center, sigma):
        """Partials by amplitude, center and sigma."""
        with np.errstate(all="ignore"):
            arg = (np.asarray(x, float) - center) / sigma
            s, ds = edge(arg, self.form)
            t = -amplitude * ds / sigma
            return broadcast_partials(x, s, t, t * arg)


class RectangleForm:
    """``rectangle`` of one form: up at ``center1``, down at ``center2``."""

    def __init__(self, form: str):
        self.form = form

    def _edges(self, x, center1, sigma1, center2, sigma2):
        x = np.asarray(x, float)
        a1, a2 = (x - center1) / sigma1, (center2 - x) / sigma2
        width = 1.0 if self.form == "linear" else 0.5
        (s1, d1), (s2, d2) = edge(a1, self.form, width), edge(a2, self.form, width)
        return a1, a2, s1, d1, s2, d2

    def __call__(self, x, amplitude, center1, sigma1, center2, sigma2):
        """``amplitude * (edge(arg1) + edge(arg2) - 1)``."""
        with np.errstate(all="ignore"):
            _, _, s1, _, s2, _ = self._edges(x, center1, sigma1, center2, sigma2)
            return amplitude * (s1 + s2 - 1.0)

    def partials(self, x, amplitude, center1, sigma1, center2, sigma2):
        """Partials by amplitude, center1, sigma1, center2 and sigma2."""
        with np.errstate(all="ignore"):
            a1, a2, s1, d1, s2, d2 = self._edges(x, center1, sigma1, center2, sigma2)
            t1, t2 = amplitude * d1 / sigma1, amplitude * d2 / sigma2
            return broadcast_partials(x, s1 + s2 - 1.0, -t1, -t1 * a1, t2, -t2 * a2)


def form_name(form: str, model: str) -> str:
    """Canonical form name (``atan`` -> ``arctan``); ValueError naming the valid ones."""
    name = FORM_ALIASES.get(form, form)
    if name not in FORMS:
        raise ValueError(f"{model}: form={form!r} is not one of {', '.join(FORMS)} (or 'atan')")
    return name
