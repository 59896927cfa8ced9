"""Benchmark: batchfit.minimize against scipy.optimize.leastsq called directly.

The damped sine of the lmfit reference (section 2.4), with amp, omega, shift
and decay all varied, on 200 points. Both sides use the same residual
arithmetic and the same MINPACK options; batchfit's overhead is the
Parameters layer (and, in the second case, one expression-tied parameter).
lmfit's minimize is a third column when lmfit is installed.

Prints the best-of-REPEATS time for N_FITS fits and the ratio to scipy.
Requirement: ratio <= 3.

Usage: python scripts/bench_core.py [--fits 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import leastsq

import batchfit

X = np.linspace(0, 15, 200)
TRUTH = (12.0, 3.05, 0.25, 0.01)         # amp, omega, shift, decay
START = (10.0, 3.0, 0.2, 0.007)
SHIFT_OFFSET = 0.1                        # tied case: shift = phase0 - 0.1
OPTIONS = {"xtol": 1e-10, "ftol": 1e-10, "maxfev": 2000 * 5, "factor": 1.0}


def make_data(seed=0):
    amp, omega, shift, decay = TRUTH
    model = amp * np.sin(X * omega + shift) * np.exp(-X * X * decay)
    return model + np.random.default_rng(seed).normal(0, 0.2, X.size)


def residual_array(p, x, data):
    amp, omega, shift, decay = p
    return data - amp * np.sin(x * omega + shift) * np.exp(-x * x * decay)


def residual_array_tied(p, x, data):
    amp, omega, phase0, decay = p
    return residual_array((amp, omega, phase0 - SHIFT_OFFSET, decay), x, data)


def residual_params(params, x, data):
    amp = params["amp"].value
    omega = params["omega"].value
    shift = params["shift"].value
    decay = params["decay"].value
    return data - amp * np.sin(x * omega + shift) * np.exp(-x * x * decay)


def make_params(module, tied=False):
    params = module.Parameters()
    params.add("amp", value=START[0])
    params.add("omega", value=START[1])
    if tied:
        params.add("phase0", value=START[2] + SHIFT_OFFSET)
        params.add("shift", expr=f"phase0 - {SHIFT_OFFSET}")
    else:
        params.add("shift", value=START[2])
    params.add("decay", value=START[3])
    return params


def run_scipy(data, tied):
    fn = residual_array_tied if tied else residual_array
    start = np.array(START) + (np.array([0, 0, SHIFT_OFFSET, 0]) if tied else 0.0)
    return leastsq(fn, start, args=(X, data), full_output=True, **OPTIONS)[0]


def run_batchfit(data, tied):
    params = make_params(batchfit, tied)
    batchfit.minimize(residual_params, params, args=(X, data), **OPTIONS)
    return params


def run_lmfit(data, tied):
    import lmfit

    params = make_params(lmfit, tied)
    opts = {k: v for k, v in OPTIONS.items() if k != "maxfev"}
    return lmfit.minimize(residual_params, params, args=(X, data),
                          max_nfev=OPTIONS["maxfev"], **opts)


def best_time(fn, datasets, tied, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for data in datasets:
            fn(data, tied)
        best = min(best, time.perf_counter() - t0)
    return best


def check_agreement(data):
    """Both sides must find the same minimum, or the timing means nothing."""
    ref = run_scipy(data, tied=False)
    params = run_batchfit(data, tied=False)
    got = [params[n].value for n in ("amp", "omega", "shift", "decay")]
    np.testing.assert_allclose(got, ref, rtol=1e-7)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    datasets = [make_data(seed) for seed in range(args.fits)]
    check_agreement(datasets[0])
    try:
        import lmfit  # noqa: F401
        have_lmfit = True
    except ImportError:
        have_lmfit = False
    header = f"{'case':<14}{'scipy [s]':>11}{'batchfit [s]':>14}{'ratio':>8}"
    print(f"{args.fits} fits, best of {args.repeats} runs, 200 points, 4 varied parameters")
    print(header + (f"{'lmfit [s]':>11}{'ratio':>8}" if have_lmfit else ""))
    worst = 0.0
    for tied in (False, True):
        t_scipy = best_time(run_scipy, datasets, tied, args.repeats)
        t_bf = best_time(run_batchfit, datasets, tied, args.repeats)
        worst = max(worst, t_bf / t_scipy)
        line = (f"{'one expr' if tied else 'plain':<14}{t_scipy:>11.4f}{t_bf:>14.4f}"
                f"{t_bf / t_scipy:>8.2f}")
        if have_lmfit:
            t_lm = best_time(run_lmfit, datasets, tied, args.repeats)
            line += f"{t_lm:>11.4f}{t_lm / t_scipy:>8.2f}"
        print(line)
    verdict = "OK" if worst <= 3 else "TOO SLOW"
    print(f"worst batchfit/scipy ratio {worst:.2f} (requirement <= 3): {verdict}")
    return 0 if worst <= 3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
