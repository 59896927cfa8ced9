"""Keywords of :meth:`batchfit.Minimizer.lbfgsb`: lmfit 0.2's and scipy's names.

lmfit 0.2 documents that ``lbfgsb(**kws)`` passes its keywords to
:func:`scipy.optimize.fmin_l_bfgs_b`. batchfit runs L-BFGS-B through
:func:`scipy.optimize.minimize`, so each of ``fmin_l_bfgs_b``'s keywords is
either translated to its ``minimize`` option (honoured) or refused with an
error that says why and what to use instead. ``minimize``'s own option names
(``maxcor``, ``ftol``, ``gtol``, ``eps``) are accepted as well.

=================  =========================================================
``fmin_l_bfgs_b``  here
=================  =========================================================
``m``              ``maxcor`` (number of stored corrections)
``factr``          ``ftol = factr * eps(float64)`` (scipy's own relation)
``pgtol``          ``gtol`` (projected-gradient tolerance)
``epsilon``        absolute step of the finite-difference gradient
``maxfun``,        passed on unchanged
``maxiter``,
``maxls``
``callback``       called as ``callback(xk)`` after each iteration
``approx_grad``    ``True`` accepted (the gradient is always numerical)
``func``, ``x0``,  refused: the residual function, starting values and
``args``,          bounds come from the Minimizer and its Parameters
``bounds``,
``fprime``
``iprint``,        refused: deprecated by scipy; read ``message``/``nfev``
``disp``
=================  =========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from batchfit.errors import FitError

DEFAULTS = {"maxiter": 15000, "ftol": 1e-15, "gtol": 1e-12}
_RENAMED = {"m": "maxcor", "pgtol": "gtol", "epsilon": "eps"}
_PASSED = ("maxcor", "ftol", "gtol", "eps", "maxfun", "maxiter", "maxls")
_REFUSED = {
    "func": "the function is the Minimizer's residual function",
    "x0": "starting values are the Parameters' values",
    "args": "give fcn_args= to Minimizer or args= to minimize()",
    "bounds": "bounds are the Parameters' min and max",
    "fprime": "the gradient is computed from the residual function numerically",
    "iprint": "scipy deprecated it; read the Minimizer's message and nfev after the fit",
    "disp": "scipy deprecated it; read the Minimizer's message and nfev after the fit",
}
LEASTSQ_ONLY = ("xtol", "maxfev", "factor", "col_deriv", "diag", "Dfun", "full_output")


def options(nvarys: int, defaults: dict[str, Any], kws: dict[str, Any]) -> tuple[dict, Any]:
    """Translate keywords into ``(options, callback)`` for ``minimize(method='L-BFGS-B')``.

    Parameters
    ----------
    nvarys : int
        Number of varied parameters (sets the default ``maxfun``).
    defaults : dict
        Keywords given to the :class:`~batchfit.Minimizer` constructor;
        leastsq-only ones (``xtol``, ``maxfev``, ...) are skipped here.
    kws : dict
        Keywords given to ``lbfgsb()``; all must be understood.

    Raises
    ------
    FitError
        For a refused or unknown keyword, a bad value, or the same option
        given under both of its names (``m`` and ``maxcor``).
    """
    merged = {k: v for k, v in defaults.items() if k not in LEASTSQ_ONLY}
    merged.update(kws)
    out: dict[str, Any] = {**DEFAULTS, "maxfun": 2000 * (nvarys + 1) * 10}
    callback = merged.pop("callback", None)
    approx = merged.pop("approx_grad", True)
    if not approx:
        raise FitError("lbfgsb: approx_grad=False needs fprime, which is not supported: "
                       "the gradient is computed from the residual function numerically")
    seen: dict[str, str] = {}
    for key, value in merged.items():
        name = _option_name(key)
        if name in seen:
            raise FitError(f"lbfgsb: {seen[name]!r} and {key!r} set the same option; give one")
        seen[name] = key
        out[name] = _value(key, value)
    if "factr" in seen.values():
        out["ftol"] = float(merged["factr"]) * np.finfo(float).eps
    return out, callback


def _option_name(key: str) -> str:
    if key in _REFUSED:
        raise FitError(f"lbfgsb: keyword {key!r} is not accepted: {_REFUSED[key]}")
    if key == "factr":
        return "ftol"
    if key in _RENAMED:
        return _RENAMED[key]
    if key in _PASSED:
        return key
    valid = sorted({*_PASSED, *_RENAMED, "factr", "callback", "approx_grad"})
    raise FitError(f"lbfgsb: unknown keyword {key!r}; valid keywords: {', '.join(valid)}")


def _value(key: str, value: Any) -> float | int:
    integer = key in ("m", "maxcor", "maxfun", "maxiter", "maxls")
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        number = -1
    if isinstance(value, bool) or number <= 0 or (integer and number != value):
        kind = "a positive integer" if integer else "a positive number"
        raise FitError(f"lbfgsb: {key}={value!r} is not usable; give {kind}")
    return number


def cost_and_gradient(residual: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                      step: float | None = None) -> tuple[float, np.ndarray]:
    """Sum of squares of ``residual(x)`` and its forward-difference gradient.

    ``step`` is ``fmin_l_bfgs_b``'s ``epsilon`` (an absolute step); by default
    ``sqrt(eps) * |x|`` (``sqrt(eps)`` at zero).
    """
    r = residual(x)
    cost = float(r @ r)
    if step is None:
        steps = np.sqrt(np.finfo(float).eps) * np.where(x != 0, np.abs(x), 1.0)
    else:
        steps = np.full(x.shape, float(step))
    grad = np.empty_like(x)
    for j, h in enumerate(steps):
        xs = x.copy()
        xs[j] += h
        rs = residual(xs)
        grad[j] = (float(rs @ rs) - cost) / h
    return cost, grad
