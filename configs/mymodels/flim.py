"""User models for configs/decay_curves.yaml (fluorescence lifetime, relaxometry).

A ``function:`` model is a plain Python function ``f(t, p1, p2, ...)``: the
first argument is the independent variable (here the time axis, shape
``(nt,)``), the others are the fit parameters. batchfit calls it with every
parameter as an array of shape ``(n_pixels, 1)``, so write it with numpy
operations that broadcast (no ``math.exp``, no ``if`` on parameter values);
it must return shape ``(n_pixels, nt)``. Numeric defaults become the
starting values when the config gives none.

The config reaches this file through ``model.python_path: [mymodels]`` and
``model.function: "flim:biexp"``: the folder is put on ``sys.path`` on the
client and on every Dask worker before the function is imported, so on a
cluster the folder must be on a filesystem the workers see.
"""

import numpy as np


def biexp(t, a1=500.0, tau1=0.8, a2=300.0, tau2=3.0, c=0.0):
    """Biexponential decay with offset: ``a1 exp(-t/tau1) + a2 exp(-t/tau2) + c``.

    Parameters
    ----------
    t : ndarray, shape (nt,)
        Time after the excitation pulse (same unit as tau1, tau2).
    a1, a2 : float or ndarray, shape (n, 1)
        Amplitudes of the fast and slow components (counts at t = 0).
    tau1, tau2 : float or ndarray, shape (n, 1)
        Lifetimes of the fast and slow components.
    c : float or ndarray, shape (n, 1)
        Constant offset (background counts, dark counts).

    Returns
    -------
    ndarray, shape (n, nt)
    """
    return a1 * np.exp(-t / tau1) + a2 * np.exp(-t / tau2) + c


def monoexp(t, a=1000.0, tau=2.0, c=0.0):
    """Single-exponential decay with offset: ``a exp(-t/tau) + c`` (same conventions)."""
    return a * np.exp(-t / tau) + c
