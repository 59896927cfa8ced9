"""fit_report: a plain-text summary of a fit."""

from __future__ import annotations

import math

from batchfit.core.parameter import Parameters


def _fmt(v) -> str:
    return "None" if v is None else f"{v:.7g}"


def _param_line(name, par, width) -> str:
    line = f"    {name + ':':<{width}} {_fmt(par.value)}"
    if par.stderr is not None and par.value:
        pct = abs(par.stderr / par.value) * 100 if par.value else math.nan
        line += f" +/- {par.stderr:.7g} ({pct:.2f}%)"
    elif par.stderr is not None:
        line += f" +/- {par.stderr:.7g}"
    if par.expr is not None:
        line += f" == '{par.expr}'"
    elif not par.vary:
        line += " (fixed)"
    else:
        line += f" (init = {_fmt(par.init_value)})"
    if par.min is not None or par.max is not None:
        line += f" bounds=[{par.lo:g}, {par.hi:g}]"
    return line


def fit_report(result, show_correl=True, min_correl=0.1) -> str:
    """Text report of a fit (a Minimizer) or of a Parameters set.

    Lists the fit statistics, each parameter with its uncertainty, and the
    correlations larger than ``min_correl`` in absolute value.
    """
    params = result if isinstance(result, Parameters) else result.params
    lines = []
    if not isinstance(result, Parameters):
        lines += ["[[Fit Statistics]]",
                  f"    # function evals   = {result.nfev}",
                  f"    # data points      = {result.ndata}",
                  f"    # variables        = {result.nvarys}",
                  f"    chi-square         = {result.chisqr:.7g}",
                  f"    reduced chi-square = {result.redchi:.7g}",
                  f"    Akaike info crit   = {result.aic:.7g}",
                  f"    Bayesian info crit = {result.bic:.7g}",
                  f"    success            = {result.success} ({result.message})"]
    width = max((len(n) for n in params), default=4) + 1
    lines.append("[[Variables]]")
    lines += [_param_line(name, par, width) for name, par in params.items()]
    pairs = {}
    for name, par in params.items():
        for other, c in (par.correl or {}).items():
            key = tuple(sorted((name, other)))
            if abs(c) >= min_correl:
                pairs[key] = c
    if show_correl and pairs:
        lines.append(f"[[Correlations]] (unreported correlations are < {min_correl:.3f})")
        for (a, b), c in sorted(pairs.items(), key=lambda kv: -abs(kv[1])):
            lines.append(f"    C({a}, {b}) = {c:+.4f}")
    return "\n".join(lines)
