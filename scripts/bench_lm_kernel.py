"""Benchmark the vectorized LM kernel against a loop of scipy.optimize.leastsq.

Problem: Gaussian + line (5 parameters), 128 points, 20,000 curves, starting
points within +-20% of the truth. The baseline is a Python loop of
``leastsq`` with an analytic ``Dfun`` on a subset, scaled to fits/s. Both run
single-threaded (OMP_NUM_THREADS=1 unless already set) in the same process.

Usage: python scripts/bench_lm_kernel.py [n_curves] [n_baseline]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from scipy.optimize import leastsq

from batchfit.batch.lm import solve

NPTS = 128
X = np.linspace(-10.0, 10.0, NPTS)


def make_data(n: int, seed: int = 0):
    """Noisy Gaussian+line curves, their truth and perturbed starting points."""
    rng = np.random.default_rng(seed)
    true = np.column_stack([
        rng.uniform(2, 5, n), rng.uniform(-2, 2, n), rng.uniform(1, 3, n),
        rng.uniform(-1, 1, n), rng.uniform(-0.1, 0.1, n),
    ])
    y = model(true) + rng.normal(0.0, 0.1, (n, NPTS))
    start = true * rng.uniform(0.8, 1.2, true.shape)
    return y, start


def model(theta):
    """Batched model: theta (m, 5) -> (m, NPTS)."""
    a, c, s, b0, b1 = (theta[:, j : j + 1] for j in range(5))
    u = (X - c) / s
    return a * np.exp(-0.5 * u * u) + (b0 + b1 * X)


def model_jac(theta):
    """Batched Jacobian of the model: theta (m, 5) -> (m, NPTS, 5).

    Filled as (m, 5, NPTS) so every column write is contiguous, and returned as
    a transposed view, which the kernel uses without copying.
    """
    a, c, s, _, _ = (theta[:, j : j + 1] for j in range(5))
    u = (X - c) / s
    e = np.exp(-0.5 * u * u)
    ae_s = a * e / s
    jac = np.empty((theta.shape[0], 5, NPTS))
    jac[:, 0] = e
    jac[:, 1] = ae_s * u
    jac[:, 2] = jac[:, 1] * u
    jac[:, 3] = 1.0
    jac[:, 4] = X
    return jac.transpose(0, 2, 1)


def run_kernel(y, start, return_jac=True):
    def resid(theta, idx):
        return y[idx] - model(theta)

    def jac(theta, idx, r):
        return -model_jac(theta)

    t0 = time.perf_counter()
    res = solve(resid, start, jac=jac, return_jac=return_jac)
    return res, time.perf_counter() - t0


def run_leastsq(y, start, rows):
    out = np.empty((len(rows), 6))
    t0 = time.perf_counter()
    for n, i in enumerate(rows):
        yi = y[i]

        def fun(t, yi=yi):
            return yi - model(t[None])[0]

        def dfun(t):
            return -model_jac(t[None])[0]

        t, _, info, _, _ = leastsq(fun, start[i], Dfun=dfun, full_output=True,
                                   ftol=1e-10, xtol=1e-10)
        out[n, :5], out[n, 5] = t, np.sum(info["fvec"] ** 2)
    return out, time.perf_counter() - t0


def main(n: int = 20_000, n_base: int = 1_000) -> None:
    y, start = make_data(n)
    rows = np.linspace(0, n - 1, n_base).astype(int)
    base, t_base = run_leastsq(y, start, rows)
    res, t_kernel = run_kernel(y, start)
    _, t_nojac = run_kernel(y, start, return_jac=False)
    base_rate, kernel_rate = n_base / t_base, n / t_kernel
    rel = np.abs(res.cost[rows] - base[:, 5]) / base[:, 5]
    print(f"curves: {n} x {NPTS} points, 5 parameters, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}")
    print(f"leastsq loop (Dfun): {base_rate:10.0f} fits/s  ({n_base} curves)")
    print(f"lm kernel          : {kernel_rate:10.0f} fits/s  "
          f"(mean nfev {res.nfev.mean():.2f}, statuses {np.bincount(res.status).tolist()})")
    print(f"ratio              : {kernel_rate / base_rate:10.1f} x")
    print(f"without jac_at_solution: {n / t_nojac:10.0f} fits/s, "
          f"ratio {n / t_nojac / base_rate:.1f} x")
    print(f"max relative cost difference vs leastsq: {rel.max():.2e}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
