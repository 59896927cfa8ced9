"""The tail's cost in the LM kernel: one refilled pool against independent blocks.

Gaussian + line (5 parameters, 128 points) from one global start, centres
spread over +-2 widths and widths over a factor 3, so a few curves need many
more steps than the rest. Two ways to run the same curves with the same
per-step block size, interleaved in one process:

* pool: ``solve(all curves, block_size=B)``: the kernel keeps up to B curves
  iterating and refills the pool from the pending curves when half have
  stopped, so the slow curves of all blocks share each step's fixed cost;
* blocks: ``solve(block)`` for each block of B curves in turn (the kernel
  before issue 9): each block pays the fixed per-step cost for its own tail.

Results are bit-identical between the two (checked). Also printed: the
kernel's per-step time for one curve as the number of parameters grows (a
linear model), which shows the Python overhead of a step does not grow with k.

Run: ``OMP_NUM_THREADS=1 python scripts/bench_lm_tail.py [--n 20000] [--block 2048]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batchfit.batch.lm import solve  # noqa: E402

X = np.linspace(-10.0, 10.0, 128)


def make(n: int, seed: int = 0):
    """Curves and one global start (the mean of the truth)."""
    rng = np.random.default_rng(seed)
    sig = rng.uniform(1.0, 3.0, n)
    true = np.column_stack([rng.uniform(2, 5, n), rng.uniform(-2, 2, n) * sig, sig,
                            rng.uniform(-1, 1, n), rng.uniform(-0.1, 0.1, n)])
    y = model(true) + rng.normal(0.0, 0.1, (n, X.size))
    start = np.broadcast_to(true.mean(axis=0), true.shape).copy()
    return y, start


def model(t):
    a, c, s, b0, b1 = (t[:, j : j + 1] for j in range(5))
    u = (X - c) / s
    return a * np.exp(-0.5 * u * u) + b0 + b1 * X


def jac_of(t):
    a, c, s, _, _ = (t[:, j : j + 1] for j in range(5))
    u = (X - c) / s
    e = np.exp(-0.5 * u * u)
    one = np.ones_like(e)
    return np.stack([e, a * e * u / s, a * e * u * u / s, one, X * one], axis=-1)


def run_pool(y, start, block):
    return solve(lambda t, i: model(t) - y[i], start, jac=lambda t, i, r: jac_of(t),
                 block_size=block, return_jac=False)


def run_blocks(y, start, block):
    parts = []
    for s0 in range(0, y.shape[0], block):
        yb = y[s0 : s0 + block]
        parts.append(solve(lambda t, i, yb=yb: model(t) - yb[i], start[s0 : s0 + block],
                           jac=lambda t, i, r: jac_of(t), block_size=block, return_jac=False))
    return parts


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def per_step_time(k: int, repeat: int = 20) -> float:
    """Seconds per kernel step (start included) for one curve with k parameters.

    ``r_j = theta_j**2 - 2`` from ``theta = 1000``: Newton halves each
    coordinate per step, so every k takes the same ~20 steps.
    """
    t0 = time.perf_counter()
    steps = 0
    for _ in range(repeat):
        res = solve(lambda t, i: t * t - 2.0, np.full((1, k), 1000.0),
                    jac=lambda t, i, r: 2.0 * t[:, None, :] * np.eye(k)[None], return_jac=False)
        steps += int(res.niter[0]) + 1
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    y, start = make(args.n)
    t_pool, t_blocks = [], []
    for _ in range(args.repeat):
        pool, t = timed(run_pool, y, start, args.block)
        t_pool.append(t)
        parts, t = timed(run_blocks, y, start, args.block)
        t_blocks.append(t)
    theta = np.concatenate([p.theta for p in parts])
    nfev = np.concatenate([p.nfev for p in parts])
    assert np.array_equal(theta, pool.theta) and np.array_equal(nfev, pool.nfev)
    p50, p90, p99, pmax = np.percentile(pool.nfev, [50, 90, 99, 100])
    status = {int(s): int(c) for s, c in zip(*np.unique(pool.status, return_counts=True),
                                             strict=True)}
    print(f"bench_lm_tail: Gaussian + line from one global start, {args.n} curves, "
          f"block {args.block}; nfev p50 {p50:.0f} p90 {p90:.0f} p99 {p99:.0f} max {pmax:.0f}; "
          f"status counts {status}")
    tp, tb = np.median(t_pool), np.median(t_blocks)
    print(f"  pool   {tp:7.3f} s = {args.n / tp:8.0f} fits/s")
    print(f"  blocks {tb:7.3f} s = {args.n / tb:8.0f} fits/s")
    each = ", ".join(f"{b / p:.2f}" for p, b in zip(t_pool, t_blocks, strict=True))
    print(f"  pool speed-up {tb / tp:.2f}x (each round: {each}); results bit-identical")
    print("  kernel time per step, one curve, linear model:")
    for k in (2, 5, 10, 20, 40):
        print(f"    k={k:3d}: {per_step_time(k) * 1e6:7.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
