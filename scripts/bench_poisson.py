"""Benchmark cost='poisson' against cost='chisqr' per fit (one process, one thread).

The same photon-count cube goes to both: bi-exponential decays through a
Gaussian response (``tests/batch/decay_cubes.py``: 128 bins, analytic
partials) at 200, 1,000 and 5,000 photons per pixel, fitted from the same
template start. ``chisqr`` weighs each bin by ``sigma = sqrt(max(counts, 1))``
(all bins kept, so both fit the same points); ``poisson`` minimizes the
deviance. ``--repeat`` interleaved rounds (chisqr, then poisson) per level;
the script prints fits/s, success and nfev p50/p90/p99/max of each, the
ratio of the median times (poisson / chisqr, per fit) and each round's ratio.
The target is a ratio of at most 1.5. Last, the same on the real FLIM excerpt
(``tests/batch/flim_data.py``: 4,096 measured decays, the two-exponential tail
on the pooled fit's background).

Run: ``OMP_NUM_THREADS=1 python scripts/bench_poisson.py [--n 4000] [--repeat 5]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "batch"))

from decay_cubes import biexp_model, biexp_params, decay_cube  # noqa: E402
from flim_data import flim_counts, tail_model, tail_params  # noqa: E402

import batchfit  # noqa: E402


def _timed(model, params, t, y, **kws):
    start = time.perf_counter()
    res = batchfit.fit_batch(model, params, t, y, **kws)
    return time.perf_counter() - start, res


def _describe(name, seconds, res):
    q = np.percentile(res.nfev, [50, 90, 99, 100]).astype(int)
    return (f"  {name:8s} {len(res) / seconds:9.0f} fits/s  success {res.success.mean():.4f}  "
            f"nfev p50/p90/p99/max {q[0]}/{q[1]}/{q[2]}/{q[3]}")


def bench_level(photons, n, repeat):
    """Interleaved rounds on one synthetic cube; returns the ratio of median times."""
    model = biexp_model()
    t, y, _, _ = decay_cube(n, photons, seed=photons)
    return bench_cube(f"{photons} photons/pixel", model, biexp_params(model, photons), t, y,
                      repeat)


def bench_real(repeat):
    """The real FLIM excerpt (tests/batch/flim_data.py): every pixel, background held."""
    t, counts = flim_counts()
    y = counts.reshape(-1, t.size)
    model = tail_model()
    params = tail_params(model, float(np.median(y[:, 0])), float(np.median(y[:, -20:])))
    params["bg_c"].value, params["bg_c"].vary = 0.066, False  # the pooled fit's, per pixel
    return bench_cube("real FLIM (64 x 64 pixels, 1-427 photons)", model, params, t, y, repeat)


def bench_cube(label, model, params, t, y, repeat):
    """Interleaved rounds (chisqr, poisson) on one cube; returns the ratio of median times."""
    n = y.shape[0]
    sigma = np.sqrt(np.maximum(y, 1.0))
    times = {"chisqr": [], "poisson": []}
    last = {}
    for _ in range(repeat):
        for cost in ("chisqr", "poisson"):
            kws = {"cost": "poisson"} if cost == "poisson" else {"sigma": sigma}
            seconds, last[cost] = _timed(model, params, t, y, **kws)
            times[cost].append(seconds)
    ratio = np.median(times["poisson"]) / np.median(times["chisqr"])
    per_eval = {c: np.median(times[c]) / last[c].nfev.sum() for c in times}
    rounds = [p / c for p, c in zip(times["poisson"], times["chisqr"], strict=True)]
    print(f"{label}, {n} pixels, {y.shape[1]} bins, "
          f"{np.mean(y == 0):.0%} empty bins")
    for cost in ("chisqr", "poisson"):
        print(_describe(cost, float(np.median(times[cost])), last[cost]))
    print(f"  poisson / chisqr time per fit: {ratio:.2f} (median of {repeat} rounds; rounds: "
          + ", ".join(f"{r:.2f}" for r in rounds) + ")")
    print(f"  poisson / chisqr time per function evaluation: "
          f"{per_eval['poisson'] / per_eval['chisqr']:.2f} "
          f"({per_eval['chisqr'] * 1e6:.0f} vs {per_eval['poisson'] * 1e6:.0f} us per curve)")
    return ratio


def main(argv=None):
    """Run the benchmark at each photon level; print the worst ratio against the target."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="pixels per cube")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds")
    args = ap.parse_args(argv)
    ratios = [bench_level(photons, args.n, args.repeat) for photons in (200, 1000, 5000)]
    ratios.append(bench_real(args.repeat))
    worst = max(ratios)
    print(f"worst poisson / chisqr ratio {worst:.2f} (target <= 1.5): "
          + ("met" if worst <= 1.5 else "NOT met"))


if __name__ == "__main__":
    main()
