"""User model functions for the function_model tests (imported by reference)."""

from math import hypot as builtin_hypot  # noqa: F401 - a builtin, for the error test

import numpy as np


def biexp(t, a1, tau1=2.0, a2=0.5, tau2=10.0):
    """Two exponential decays; ``t`` is the independent variable."""
    return a1 * np.exp(-t / tau1) + a2 * np.exp(-t / tau2)


def line_kwonly(x, slope, *, offset=3.0):
    """Straight line with a keyword-only parameter."""
    return slope * x + offset


def with_args(x, *coefs):
    """Not usable: variable positional parameters."""
    return sum(coefs) * x


def with_kwargs(x, a, **kws):
    """Not usable: variable keyword parameters."""
    return a * x


def text_default(x, a, mode="fast"):
    """Not usable: a non-numeric default."""
    return a * x


def no_args():
    """Not usable: no independent variable."""
    return 0.0


NOT_A_FUNCTION = 3.0
ufunc = np.sin


class Scaled:
    """Not usable: a class."""

    def __init__(self, x, a):
        self.value = a * x
