"""User-function models for scripts/bench_engine.py (imported by reference)."""

import numpy as np

S2PI = np.sqrt(2.0 * np.pi)


def gaussian_line(x, amplitude=1.0, center=0.0, sigma=1.0, slope=0.0, intercept=0.0):
    """Gaussian of area ``amplitude`` on a straight line; no derivatives."""
    u = (x - center) / sigma
    return amplitude * np.exp(-0.5 * u * u) / (S2PI * sigma) + slope * x + intercept
