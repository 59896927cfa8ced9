"""Benchmark the batch engine against per-curve MINPACK loops (one process, one thread).

Gaussian + line on 128 points. The same data and the same starting values go
to every method:

* built-in model (analytic derivatives) through ``fit_batch`` against a loop of
  ``scipy.optimize.leastsq`` with an analytic Jacobian (``Dfun``);
* the same model written as a user function without derivatives
  (``scripts/bench_models.py:gaussian_line``) through ``fit_batch`` against a
  loop of ``leastsq`` with finite differences;
* lmfit's ``minimize`` loop when lmfit is installed.

Loops run on a subset of the curves and are scaled to the full count. Each
comparison runs ``--repeat`` interleaved rounds (fit_batch, then the loop) and
reports the ratio of the median times, with each round's ratio. The
peak traced memory of ``fit_batch`` is measured with tracemalloc (in separate
runs, not timed) for two chunk sizes, to show it is linear in the chunk.

Run: ``OMP_NUM_THREADS=1 python scripts/bench_engine.py [--n 20000] [--subset 1000]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import leastsq  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import batchfit  # noqa: E402
from batchfit.models import function_model, gaussian, linear  # noqa: E402

NAMES = ("amplitude", "center", "sigma", "slope", "intercept")
TOL = {"ftol": 1e-10, "xtol": 1e-10}
S2PI = np.sqrt(2.0 * np.pi)


def make_data(n, seed=0):
    """Curves, truth and per-curve starting values (truth 10% off)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-10.0, 10.0, 128)
    truth = {"amplitude": rng.uniform(20, 40, n), "center": rng.uniform(-3, 3, n),
             "sigma": rng.uniform(0.8, 2.0, n), "slope": rng.uniform(-0.1, 0.1, n),
             "intercept": rng.uniform(0, 2, n)}
    cols = {k: v[:, None] for k, v in truth.items()}
    u = (x - cols["center"]) / cols["sigma"]
    clean = (cols["amplitude"] * np.exp(-0.5 * u * u) / (S2PI * cols["sigma"])
             + cols["slope"] * x + cols["intercept"])
    y = clean + rng.normal(0.0, 0.2, clean.shape)
    start = {k: v * rng.uniform(0.9, 1.1, n) for k, v in truth.items()}
    start["slope"] = truth["slope"] + rng.uniform(-0.02, 0.02, n)
    return x, y, start


def f_model(p, x):
    a, c, s, m, b = p
    u = (x - c) / s
    return a * np.exp(-0.5 * u * u) / (S2PI * s) + m * x + b


def f_resid(p, x, y):
    return y - f_model(p, x)


def f_dfun(p, x, y):
    """d resid / d p, shape (npts, 5)."""
    a, c, s, _, _ = p
    u = (x - c) / s
    g = np.exp(-0.5 * u * u) / (S2PI * s)
    out = np.empty((x.size, 5))
    out[:, 0] = -g
    out[:, 1] = -a * g * u / s
    out[:, 2] = -a * g * (u * u - 1.0) / s
    out[:, 3] = -x
    out[:, 4] = -1.0
    return out


def leastsq_loop(x, y, start, analytic):
    """Fit each row with scipy's leastsq; returns values, stderr (redchi-scaled), success."""
    n = y.shape[0]
    vals, errs, ok = np.full((n, 5), np.nan), np.full((n, 5), np.nan), np.zeros(n, bool)
    for i in range(n):
        p0 = np.array([start[k][i] for k in NAMES])
        kw = {"Dfun": f_dfun} if analytic else {}
        p, cov, info, _, ier = leastsq(f_resid, p0, args=(x, y[i]), full_output=True,
                                       maxfev=2000, **kw, **TOL)
        ok[i] = ier in (1, 2, 3, 4)
        vals[i] = p
        if cov is not None:
            redchi = np.sum(info["fvec"] ** 2) / (x.size - 5)
            errs[i] = np.sqrt(np.diag(cov) * redchi)
    return vals, errs, ok


def lmfit_loop(x, y, start):
    import lmfit

    def resid(pars, x, y):
        v = pars.valuesdict()
        return f_resid([v[k] for k in NAMES], x, y)

    for i in range(y.shape[0]):
        pars = lmfit.Parameters()
        for k in NAMES:
            pars.add(k, value=start[k][i])
        lmfit.minimize(resid, pars, args=(x, y[i]), method="leastsq", **TOL)


def timed(fn, *args, **kws):
    t0 = time.perf_counter()
    out = fn(*args, **kws)
    return out, time.perf_counter() - t0


def peak_bytes(model, params, x, y, start):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    batchfit.fit_batch(model, params, x, y, init=start, **TOL)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def agreement(res, vals, errs, ok, m):
    both = res.success[:m] & ok
    parts = []
    for j, k in enumerate(NAMES):
        d = np.abs(res.values[k][:m] - vals[:, j]) / errs[:, j]
        parts.append(f"{k} {np.median(d[both]):.1e}")
    se = np.median(np.abs(res.stderr["sigma"][:m] / errs[:, 2] - 1.0)[both])
    return (f"  agreement with the leastsq loop, median |diff|/stderr: {', '.join(parts)}; "
            f"median stderr rel. diff (sigma) {se:.1e}; success agree "
            f"{np.mean(res.success[:m] == ok):.4f}")


def bench_pair(label, model, params, x, y, start, m, analytic, target, repeat):
    warm = {k: v[:50] for k, v in start.items()}
    batchfit.fit_batch(model, params, x, y[:50], init=warm, **TOL)  # imports, caches
    leastsq_loop(x, y[:20], warm, analytic)
    sub = {k: v[:m] for k, v in start.items()}
    t_batch, t_loop = [], []
    for _ in range(repeat):  # interleaved, so both see the same machine load
        res, t = timed(batchfit.fit_batch, model, params, x, y, init=start, **TOL)
        t_batch.append(t)
        (vals, errs, ok), t = timed(leastsq_loop, x, y[:m], sub, analytic)
        t_loop.append(t)
    n = y.shape[0]
    rate_b, rate_l = n / np.median(t_batch), m / np.median(t_loop)
    ratio = rate_b / rate_l
    each = ", ".join(f"{(n / tb) / (m / tl):.1f}" for tb, tl in zip(t_batch, t_loop, strict=True))
    loop_kind = "analytic Dfun" if analytic else "finite differences"
    print(f"{label}:")
    print(f"  fit_batch        {n:7d} curves in {np.median(t_batch):7.2f} s  = {rate_b:9.0f} "
          f"fits/s (median of {repeat}; success {res.success.mean():.4f}, "
          f"counts {res.counts()})")
    print(f"  leastsq loop     {m:7d} curves in {np.median(t_loop):7.2f} s  = {rate_l:9.0f} "
          f"fits/s ({loop_kind}; {n} curves would take {n / rate_l:.1f} s)")
    verdict = "PASS" if ratio >= target else "FAIL"
    print(f"  speed-up {ratio:.1f}x of the medians (each round: {each}; "
          f"required >= {target}x): {verdict}")
    print(agreement(res, vals, errs, ok, m))
    return ratio >= target


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="curves for fit_batch")
    ap.add_argument("--subset", type=int, default=1000, help="curves for each loop")
    ap.add_argument("--repeat", type=int, default=3,
                    help="interleaved rounds of fit_batch and loop (medians reported)")
    ap.add_argument("--lmfit-subset", type=int, default=300, help="curves for the lmfit loop")
    ap.add_argument("--chunks", type=int, nargs=2, default=(1000, 4000),
                    help="two chunk sizes for the memory measurement")
    args = ap.parse_args(argv)
    x, y, start = make_data(args.n)
    m = min(args.subset, args.n)
    print(f"batchfit bench: Gaussian + line, {x.size} points, {args.n} curves, "
          f"loops on {m}; numpy {np.__version__}, OMP_NUM_THREADS="
          f"{os.environ['OMP_NUM_THREADS']}")
    builtin = gaussian() + linear()
    user = function_model("bench_models:gaussian_line")
    params_b = builtin.make_params()
    params_u = user.make_params()
    ok1 = bench_pair("built-in model (analytic derivatives)", builtin, params_b, x, y, start,
                     m, analytic=True, target=10, repeat=args.repeat)
    ok2 = bench_pair("user function model (no derivatives)", user, params_u, x, y, start,
                     m, analytic=False, target=6, repeat=args.repeat)
    try:
        import lmfit  # noqa: F401
    except ImportError:
        print("lmfit: not installed")
    else:
        k = min(args.lmfit_subset, args.n)
        _, t = timed(lmfit_loop, x, y[:k], {kk: v[:k] for kk, v in start.items()})
        print(f"lmfit.minimize loop {k:5d} curves in {t:7.2f} s  = {k / t:9.0f} fits/s")
    print("peak traced memory of fit_batch (tracemalloc, separate untimed runs):")
    for label, model, params in (("built-in", builtin, params_b), ("user fn", user, params_u)):
        peaks = []
        for c in args.chunks:
            c = min(c, args.n)
            sub = {kk: v[:c] for kk, v in start.items()}
            peaks.append((c, peak_bytes(model, params, x, y[:c], sub)))
            print(f"  {label:8s} chunk {c:6d}: peak {peaks[-1][1] / 2**20:8.1f} MiB = "
                  f"{peaks[-1][1] / c:9.0f} bytes/curve")
        (c1, p1), (c2, p2) = peaks
        if c2 != c1:
            print(f"  {label:8s} marginal: {(p2 - p1) / (c2 - c1):9.0f} bytes/curve "
                  f"(y itself is {8 * x.size} bytes/curve)")
    print("RESULT:", "PASS" if (ok1 and ok2) else "FAIL")
    return 0 if (ok1 and ok2) else 1


if __name__ == "__main__":
    raise SystemExit(main())
