"""User model functions that misbehave for some parameter values (imported by reference)."""

import numpy as np


def decay_raises(t, amp=1.0, tau=1.0):
    """``amp*exp(-t/tau)``; raises ValueError when any ``tau`` is negative."""
    if np.any(np.asarray(tau) < 0):
        raise ValueError("tau must be non-negative")
    return amp * np.exp(-t / tau)


def decay_nan(t, amp=1.0, tau=1.0):
    """``amp*exp(-t/tau)``; NaN wherever ``amp`` exceeds 1000."""
    amp = np.asarray(amp, dtype=float)
    return np.where(amp > 1000.0, np.nan, amp * np.exp(-t / tau))
