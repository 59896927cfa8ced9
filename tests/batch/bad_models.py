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


def decay_raises_big(t, amp=1.0, tau=1.0):
    """``amp*exp(-t/tau)``; raises ValueError when any ``amp`` exceeds 1000."""
    if np.any(np.asarray(amp) > 1000.0):
        raise ValueError("amp too large")
    return amp * np.exp(-t / tau)


# Models that fail exactly at tau == 7 (a start no optimizer reaches by itself),
# so that every engine, the annealer included, fails on the chosen curves only.
SENTINEL = 7.0


def decay_raises_at(t, amp=1.0, tau=1.0):
    """``amp*exp(-t/tau)``; raises ValueError when any ``tau == 7``."""
    if np.any(np.asarray(tau) == SENTINEL):
        raise ValueError("tau == 7")
    return amp * np.exp(-t / tau)


def decay_nan_at(t, amp=1.0, tau=1.0):
    """``amp*exp(-t/tau)``; all NaN where ``tau == 7``."""
    return np.where(np.asarray(tau) == SENTINEL, np.nan, amp * np.exp(-t / tau))


def decay_short_at(t, amp=1.0, tau=1.0):
    """``amp*exp(-t/tau)``; only half of the points when any ``tau == 7``."""
    out = amp * np.exp(-t / tau)
    return out[..., : t.shape[-1] // 2] if np.any(np.asarray(tau) == SENTINEL) else out
