"""Derived maps of peak models: full width at half maximum (``fwhm``) and ``height``.

lmfit adds these as tied parameters of its peak models; batchfit computes
them from the best-fit values after the fit and writes them to the store as
``<prefix>fwhm`` and ``<prefix>height`` (float64, no standard error). The
formulas are lmfit's (1.3):

* gaussian: fwhm ``2 sqrt(2 ln 2) sigma``, height ``amplitude / (sigma sqrt(2 pi))``
* lorentzian: fwhm ``2 sigma``, height ``amplitude / (pi sigma)``
* voigt: fwhm ``1.0692 g + sqrt(0.8664 g^2 + 5.545083 s^2)``, height
  ``amplitude Re w(i g / (s sqrt(2))) / (s sqrt(2 pi))``
* pseudo_voigt: fwhm ``2 sigma``, height
  ``(1-fraction) amplitude sqrt(ln 2 / pi) / sigma + fraction amplitude / (pi sigma)``
* moffat: fwhm ``2 sigma sqrt(2^(1/beta) - 1)``, height ``amplitude``

(voigt: ``g = gamma``, ``s = sigma``, the Olivero-Longbothum approximation
lmfit uses.) Each function is elementwise, so it works on floats and on
numpy, dask or xarray arrays alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import wofz

FWHM_GAUSS = 2.0 * np.sqrt(2.0 * np.log(2.0))
SQRT_2PI = np.sqrt(2.0 * np.pi)


def gaussian_fwhm(amplitude, center, sigma):
    """FWHM of a Gaussian."""
    return FWHM_GAUSS * sigma


def gaussian_height(amplitude, center, sigma):
    """Peak height of a Gaussian of area ``amplitude``."""
    return amplitude / (sigma * SQRT_2PI)


def lorentzian_fwhm(amplitude, center, sigma):
    """FWHM of a Lorentzian (``sigma`` is the half width)."""
    return 2.0 * sigma


def lorentzian_height(amplitude, center, sigma):
    """Peak height of a Lorentzian of area ``amplitude``."""
    return amplitude / (np.pi * sigma)


def voigt_fwhm(amplitude, center, sigma, gamma):
    """FWHM of a Voigt profile (Olivero-Longbothum, as lmfit)."""
    return 1.0692 * gamma + np.sqrt(0.8664 * gamma**2 + 5.545083 * sigma**2)


def voigt_height(amplitude, center, sigma, gamma):
    """Peak height of a Voigt profile of area ``amplitude`` (its value at ``center``)."""
    return amplitude * np.real(wofz(1j * gamma / (sigma * np.sqrt(2.0)))) / (sigma * SQRT_2PI)


def pseudo_voigt_fwhm(amplitude, center, sigma, fraction):
    """FWHM of a pseudo-Voigt (both parts have FWHM ``2 sigma``)."""
    return 2.0 * sigma


def pseudo_voigt_height(amplitude, center, sigma, fraction):
    """Peak height of a pseudo-Voigt of area ``amplitude``."""
    gauss = amplitude * np.sqrt(np.log(2.0) / np.pi) / sigma
    return (1.0 - fraction) * gauss + fraction * amplitude / (np.pi * sigma)


def moffat_fwhm(amplitude, center, sigma, beta):
    """FWHM of a Moffat profile."""
    return 2.0 * sigma * np.sqrt(2.0 ** (1.0 / beta) - 1.0)


def moffat_height(amplitude, center, sigma, beta):
    """Peak height of a Moffat profile (its ``amplitude``)."""
    return amplitude * 1.0


DERIVED: dict[str, dict[str, Callable[..., Any]]] = {
    "gaussian": {"fwhm": gaussian_fwhm, "height": gaussian_height},
    "lorentzian": {"fwhm": lorentzian_fwhm, "height": lorentzian_height},
    "voigt": {"fwhm": voigt_fwhm, "height": voigt_height},
    "pseudo_voigt": {"fwhm": pseudo_voigt_fwhm, "height": pseudo_voigt_height},
    "moffat": {"fwhm": moffat_fwhm, "height": moffat_height},
}
"""Built-in model name -> derived map name -> function of its parameters."""
