"""Vectorized starting values for the lineshapes of :mod:`batchfit.models.shapes`.

Same contract as :mod:`batchfit.models.guess`: ``y (n, nx)`` (NaN allowed),
``x (nx,)`` in any order, a dict of ``(n,)`` arrays back, nothing raises.

* asymmetric peaks: method of moments of the baseline-subtracted curve
  (area, mean, variance, skewness), inverted in closed form for the
  skew-normal and the exponentially modified Gaussian;
* Moffat: the height, the half-maximum width and the quarter-maximum width,
  whose ratio is ``sqrt(2**(1/beta) + 1)``;
* steps and rectangles: edge levels from the ends (steps) or the top
  (rectangles), and the 25%, 50% and 75% crossings of each edge.
"""

from __future__ import annotations

import numpy as np

from batchfit.models.guess import edge_mask, fill_nan, peak_shape, prepare
from batchfit.models.shapes import RectangleForm, edge

MAX_SKEW_NORMAL = 0.99  # |skewness| of a skew-normal is below 0.9953


def row_mean(y, where):
    """Mean of the finite points of each row within the ``(nx,)`` mask ``where`` (NaN if none)."""
    ok = np.isfinite(y) & where
    with np.errstate(all="ignore"):
        return np.where(ok, y, 0.0).sum(axis=1) / ok.sum(axis=1)


def _baseline_weights(y, x):
    """Curve minus the mean of its edge points, negative parts set to 0 (for moments)."""
    w = fill_nan(y) - row_mean(y, edge_mask(x.size))[:, None]
    return np.where(np.isfinite(w) & (w > 0), w, 0.0)


def moments(y, x):
    """Area, mean, variance and skewness of each row, as ``(n,)`` arrays."""
    y, x = prepare(y, x)
    w = _baseline_weights(y, x)
    with np.errstate(all="ignore"):
        area = np.trapezoid(w, x, axis=1)
        mean = np.trapezoid(w * x, x, axis=1) / area
        dev = x - mean[:, None]
        var = np.trapezoid(w * dev**2, x, axis=1) / area
        skew = np.trapezoid(w * dev**3, x, axis=1) / area / var**1.5
    return area, mean, var, skew


def guess_skewed_gaussian(y, x):
    """Guess ``amplitude, center, sigma, gamma`` by inverting the skew-normal moments.

    ``delta = gamma/sqrt(1+gamma^2)``; the skewness gives ``delta``, then
    ``sigma^2 = var/(1 - 2 delta^2/pi)`` and ``center = mean - sigma*delta*sqrt(2/pi)``.
    """
    area, mean, var, skew = moments(y, x)
    with np.errstate(all="ignore"):
        s = np.clip(np.nan_to_num(skew), -MAX_SKEW_NORMAL, MAX_SKEW_NORMAL)
        r = np.cbrt(2.0 * np.abs(s) / (4.0 - np.pi)) ** 2  # (b*delta)^2/(1 - (b*delta)^2)
        b_delta = np.sign(s) * np.sqrt(r / (1.0 + r))  # b = sqrt(2/pi)
        delta = b_delta / np.sqrt(2.0 / np.pi)
        gamma = delta / np.sqrt(1.0 - delta * delta)
        sigma = np.sqrt(var / (1.0 - b_delta * b_delta))
    return {"amplitude": area, "center": mean - sigma * b_delta, "sigma": sigma,
            "gamma": gamma}


def guess_exponential_gaussian(y, x):
    """Guess ``amplitude, center, sigma, gamma`` by inverting the EMG moments.

    With ``tau = 1/gamma``: the variance is ``sigma^2 + tau^2``, the mean
    ``center + tau`` and the skewness ``2 (tau^2/variance)^(3/2)``.
    """
    area, mean, var, skew = moments(y, x)
    with np.errstate(all="ignore"):
        frac = np.clip(np.nan_to_num(skew) / 2.0, 1e-3, 0.99) ** (2.0 / 3.0)  # share of 1/gamma^2
        tau = np.sqrt(frac * var)
        sigma = np.sqrt((1.0 - frac) * var)
    return {"amplitude": area, "center": mean - tau, "sigma": sigma, "gamma": 1.0 / tau}


def guess_moffat(y, x):
    """Guess ``amplitude, center, sigma, beta`` from the widths at 1/2 and 1/4 of the height."""
    height, center, fwhm = peak_shape(y, x)
    yb, xs = prepare(y, x)
    with np.errstate(all="ignore"):
        s = (fill_nan(yb) - row_mean(yb, edge_mask(xs.size))[:, None]) / height[:, None]
    quarter = crossing(s, xs, 0.25, from_right=True) - crossing(s, xs, 0.25)
    half = crossing(s, xs, 0.5, from_right=True) - crossing(s, xs, 0.5)
    with np.errstate(all="ignore"):
        two_pow = np.clip((quarter / half) ** 2 - 1.0, 1.0 + 1e-3, 4.0)  # 2**(1/beta)
        beta = np.log(2.0) / np.log(two_pow)
        sigma = fwhm / (2.0 * np.sqrt(two_pow - 1.0))
    return {"amplitude": height, "center": center, "sigma": sigma, "beta": beta}


def crossing(s, x, level: float, from_right: bool = False):
    """``x`` where each row of ``s`` first reaches ``level`` (from the left or the right).

    Linear interpolation between the two points around the crossing; the end
    of ``x`` when the row never reaches it.
    """
    if from_right:
        return -crossing(s[:, ::-1], -x[::-1], level)
    above = np.nan_to_num(s, nan=-np.inf) >= level
    i = np.argmax(above, axis=1)
    j = np.maximum(i - 1, 0)
    rows = np.arange(s.shape[0])
    s1, s0 = s[rows, i], s[rows, j]
    with np.errstate(all="ignore"):
        frac = np.where(i > 0, (level - s0) / (s1 - s0), 1.0)
    frac = np.clip(np.nan_to_num(frac, nan=1.0), 0.0, 1.0)
    return np.where(above.any(axis=1), x[j] + frac * (x[i] - x[j]), x[-1])


def _quartile_arg(form: str, half_width: float) -> float:
    """``arg`` at which the rising edge of ``form`` reaches 3/4."""
    grid = np.linspace(0.0, 5.0, 50001)
    s, _ = edge(grid, form, half_width)
    return float(np.interp(0.75, s, grid))


class StepGuess:
    """``guess(y, x)`` of a step of one form: ends, 50% crossing, quartile width."""

    def __init__(self, form: str):
        self.form = form

    def __call__(self, y, x):
        """Guess ``amplitude, center, sigma``."""
        y, x = prepare(y, x)
        ends = edge_mask(x.size)
        left = ends & (np.arange(x.size) < x.size // 2)
        lo, hi = row_mean(y, left), row_mean(y, ends & ~left)
        with np.errstate(all="ignore"):
            s = (fill_nan(y) - lo[:, None]) / (hi - lo)[:, None]
        q1, q2, q3 = (crossing(s, x, q) for q in (0.25, 0.5, 0.75))
        sigma = np.maximum((q3 - q1) / (2.0 * _quartile_arg(self.form, 0.5)), _spacing(x))
        return {"amplitude": hi - lo, "center": q2, "sigma": sigma}


class RectangleGuess:
    """``guess(y, x)`` of a rectangle of one form: top level and both edges' crossings."""

    def __init__(self, form: str):
        self.form = form

    def __call__(self, y, x):
        """Guess ``amplitude, center1, sigma1, center2, sigma2``.

        The top of the curve is below ``amplitude`` when the edges overlap
        (long ``arctan`` tails): the amplitude is corrected by the guessed
        shape's own top, each edge is measured after removing the guessed
        tail of the other, and this is repeated four times.
        """
        y, x = prepare(y, x)
        filled = fill_nan(y)
        top = np.max(np.where(np.isfinite(filled), filled, -np.inf), axis=1)
        amplitude, other_up, other_down = top, 0.0, 0.0
        for _ in range(4):
            with np.errstate(all="ignore"):
                s = filled / amplitude[:, None]
            est = self._edges(s - other_up, s - other_down, x)
            with np.errstate(all="ignore"):
                args = [est[k][:, None] for k in _EDGE_KEYS]
                amplitude = top / np.max(RectangleForm(self.form)(x, 1.0, *args), axis=1)
                # what each edge's tail adds below 1 where the other edge is measured
                width = 1.0 if self.form == "linear" else 0.5
                other_up = edge((args[2] - x) / args[3], self.form, width)[0] - 1.0
                other_down = edge((x - args[0]) / args[1], self.form, width)[0] - 1.0
        return {"amplitude": amplitude, **est}

    def _edges(self, rising, falling, x):
        a75 = _quartile_arg(self.form, 1.0 if self.form == "linear" else 0.5)
        up = [crossing(rising, x, q) for q in (0.25, 0.5, 0.75)]
        down = [crossing(falling, x, q, from_right=True) for q in (0.25, 0.5, 0.75)]
        dx = _spacing(x)
        return {"center1": up[1], "sigma1": np.maximum((up[2] - up[0]) / (2.0 * a75), dx),
                "center2": down[1], "sigma2": np.maximum((down[0] - down[2]) / (2.0 * a75), dx)}


_EDGE_KEYS = ("center1", "sigma1", "center2", "sigma2")


def _spacing(x):
    return float(np.min(np.diff(x))) if x.size > 1 else 1.0
