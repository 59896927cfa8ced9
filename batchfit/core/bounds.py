"""Smooth transforms between bounded external values and unbounded internal ones.

Levenberg-Marquardt knows nothing of bounds, so a bounded parameter is fitted
through an internal variable that can take any real value (the MINUIT recipe):

* both bounds:  ``ext = lo + (sin(t) + 1) * (hi - lo) / 2``
* lower only:   ``ext = lo - 1 + sqrt(t*t + 1)`` (computed without cancellation)
* upper only:   ``ext = hi + 1 - sqrt(t*t + 1)``
* no bounds:    ``ext = t``

The same :class:`Bounds` object serves one fit (``k`` parameters) and a batch
(arrays of shape ``(n, k)``): the parameter axis is always the last one.
"""

from __future__ import annotations

import numpy as np


class Bounds:
    """Bounds of ``k`` parameters and the transforms they imply.

    Parameters
    ----------
    lo, hi : array_like, shape (k,)
        Lower and upper bounds; ``-inf`` / ``inf`` mean unbounded.
    """

    def __init__(self, lo, hi):
        self.lo = np.asarray(lo, dtype=float).reshape(-1)
        self.hi = np.asarray(hi, dtype=float).reshape(-1)
        has_lo, has_hi = np.isfinite(self.lo), np.isfinite(self.hi)
        self.both = np.flatnonzero(has_lo & has_hi)
        self.lower = np.flatnonzero(has_lo & ~has_hi)
        self.upper = np.flatnonzero(~has_lo & has_hi)
        self.bounded = bool(self.both.size or self.lower.size or self.upper.size)
        self._lo_b, self._hi_b = self.lo[self.both], self.hi[self.both]
        self._half = (self._hi_b - self._lo_b) / 2.0
        self._lo_l, self._hi_u = self.lo[self.lower], self.hi[self.upper]

    def clip(self, value):
        """Move values outside their bounds onto the bound."""
        return np.clip(np.asarray(value, dtype=float), self.lo, self.hi)

    def to_internal(self, value):
        """Internal (unbounded) values for external ``value`` (clipped to the bounds)."""
        v = self.clip(value)
        t = v.copy()
        if not self.bounded:
            return t
        b, lo_, up = self.both, self.lower, self.upper
        t[..., b] = np.arcsin(np.clip((v[..., b] - self._lo_b) / self._half - 1.0, -1.0, 1.0))
        # sqrt((d + 1)**2 - 1) written as sqrt(d * (d + 2)): exact for tiny d.
        d_lo = v[..., lo_] - self._lo_l
        d_up = self._hi_u - v[..., up]
        t[..., lo_] = np.sqrt(d_lo * (d_lo + 2.0))
        t[..., up] = np.sqrt(d_up * (d_up + 2.0))
        return t

    def to_external(self, theta):
        """External values for internal ``theta``."""
        t = np.asarray(theta, dtype=float)
        if not self.bounded:
            return t.copy()
        v = t.copy()
        b, lo_, up = self.both, self.lower, self.upper
        v[..., b] = self._lo_b + (np.sin(t[..., b]) + 1.0) * self._half
        # sqrt(t*t + 1) - 1 written as t*t / (sqrt(t*t + 1) + 1): no cancellation,
        # so a value near a tiny bound keeps its digits and never crosses the bound.
        t_lo, t_up = t[..., lo_] ** 2, t[..., up] ** 2
        v[..., lo_] = self._lo_l + t_lo / (np.sqrt(t_lo + 1.0) + 1.0)
        v[..., up] = self._hi_u - t_up / (np.sqrt(t_up + 1.0) + 1.0)
        # "lo + (sin + 1) * half" can round one ulp past hi.
        return np.clip(v, self.lo, self.hi)

    def d_external(self, theta):
        """Derivative d(external)/d(internal) at ``theta``, elementwise."""
        t = np.asarray(theta, dtype=float)
        g = np.ones_like(t)
        if not self.bounded:
            return g
        b, lo_, up = self.both, self.lower, self.upper
        g[..., b] = np.cos(t[..., b]) * self._half
        g[..., lo_] = t[..., lo_] / np.sqrt(t[..., lo_] ** 2 + 1.0)
        g[..., up] = -t[..., up] / np.sqrt(t[..., up] ** 2 + 1.0)
        return g


def to_internal(value, lo, hi):
    """Internal values of ``value`` under bounds ``lo``/``hi`` (last axis = parameters)."""
    return Bounds(lo, hi).to_internal(value)


def to_external(theta, lo, hi):
    """External values of internal ``theta`` under bounds ``lo``/``hi``."""
    return Bounds(lo, hi).to_external(theta)


def d_external(theta, lo, hi):
    """d(external)/d(internal) at ``theta`` under bounds ``lo``/``hi``."""
    return Bounds(lo, hi).d_external(theta)
