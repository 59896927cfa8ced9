"""Issue 9 benchmark: the hard cubes against per-curve scipy loops, in one process, one thread.

Cubes (``batchfit.stack.testcubes``): (a) five tied emission lines, (b) Gaussian +
line from one global start, (c) bi-exponential decays with an absent component,
and real data (the HCN cube shipped with pyspeckit, see ``scripts/DATA.md``;
skipped, saying so, when pyspeckit or astropy is missing).

Methods, on the same data from the same template start:

* ``fit_batch`` (engine 'lm') on the whole cube, and with ``guess=True``;
* (a), (c), real: a loop of ``scipy.optimize.least_squares(method='trf',
  x_scale='jac')`` with the same bounds and ties (finite-difference Jacobian, as a
  user would call it) on a subset of the curves;
* (b): a loop of ``scipy.optimize.leastsq`` (no bounds: MINPACK has none) and
  xarray's ``curvefit`` on a subset.

Each cube runs ``--rounds`` interleaved rounds (fit_batch, then each loop);
rates are curves per second of the median round, ratios are fit_batch's rate
over the loop's. For every method the whole distribution is printed: success
(the method's own flag) over the fittable curves, ``at-min`` (for synthetic
cubes: chi-square at or below the chi-square of the true parameters, i.e. the
global minimum region was reached), and nfev p50/p90/p99/max.

Run: ``python scripts/bench_tail.py [--scale 1.0] [--rounds 3]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import optimize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import batchfit  # noqa: E402
from batchfit.batch.layout import Layout  # noqa: E402
from batchfit.batch.reference import least_squares_each  # noqa: E402
from batchfit.stack import testcubes as tc  # noqa: E402

TARGETS = {"emission_lines": ("trf", 20.0), "biexponential": ("trf", None),
           "hcn_real": ("trf", None), "gaussian_line": ("leastsq", 10.0)}


def fittable(problem) -> np.ndarray:
    """Rows with at least one finite point per varied parameter (the others are bad data)."""
    return np.isfinite(problem.y).sum(axis=1) >= Layout(problem.params).nvar


def truth_chisqr(problem) -> np.ndarray | None:
    if not problem.truth:
        return None
    f = problem.model(problem.x, **{k: problem.truth[k][:, None]
                                    for k in problem.model.param_names})
    return np.nansum(((problem.y - f) / problem.sigma) ** 2, axis=1)


def run_batch(problem, rows, guess=False) -> dict:
    t0 = time.perf_counter()
    res = batchfit.fit_batch(problem.model, problem.params, problem.x, problem.y[rows],
                             sigma=problem.sigma[rows], guess=guess)
    return {"seconds": time.perf_counter() - t0, "rows": rows, "success": res.success,
            "nfev": res.nfev, "chisqr": res.chisqr}


def run_trf(problem, rows) -> dict:
    t0 = time.perf_counter()
    out = least_squares_each(problem.model, problem.params, problem.x, problem.y[rows],
                             problem.sigma[rows])
    return {"seconds": time.perf_counter() - t0, "rows": rows, "success": out["success"],
            "nfev": out["nfev"], "chisqr": out["chisqr"]}


def run_leastsq(problem, rows) -> dict:
    """scipy.optimize.leastsq per curve, analytic-free (finite differences), template start."""
    layout = Layout(problem.params)
    x0 = layout.starting_values(1)[0]
    ok, nfev, chisqr = np.zeros(rows.size, bool), np.zeros(rows.size, int), np.zeros(rows.size)
    t0 = time.perf_counter()
    for k, i in enumerate(rows):
        def resid(p, i=i):
            vals = layout.values(p[None, :])
            f = problem.model(problem.x, **{q: vals[q] for q in problem.model.param_names})
            return (f.reshape(-1) - problem.y[i]) / problem.sigma[i]

        with np.errstate(all="ignore"), warnings.catch_warnings(action="ignore"):
            p, _cov, info, _msg, ier = optimize.leastsq(resid, x0, full_output=True,
                                                        ftol=1e-10, xtol=1e-10)
        r = info["fvec"]
        ok[k] = ier in (1, 2, 3, 4) and np.isfinite(r).all()
        nfev[k], chisqr[k] = info["nfev"], r @ r
    return {"seconds": time.perf_counter() - t0, "rows": rows, "success": ok, "nfev": nfev,
            "chisqr": chisqr}


def run_curvefit(problem, rows) -> dict:
    """xarray's DataArray.curvefit (a per-pixel curve_fit loop), template start and bounds."""
    import xarray as xr

    names = problem.model.param_names

    def func(x, *p):
        return problem.model(x, **dict(zip(names, p, strict=True)))

    da = xr.DataArray(problem.y[rows], dims=("pixel", "x"), coords={"x": problem.x})
    p0 = {n: problem.params[n].value for n in names}
    bounds = {n: (problem.params[n].lo, problem.params[n].hi) for n in names}
    t0 = time.perf_counter()
    with np.errstate(all="ignore"), warnings.catch_warnings(action="ignore"):
        fit = da.curvefit("x", func, p0=p0, bounds=bounds, param_names=list(names),
                          errors="ignore", kwargs={"sigma": problem.sigma[rows[0]]})
    seconds = time.perf_counter() - t0
    best = fit["curvefit_coefficients"].values
    ok = np.isfinite(best).all(axis=1)
    f = problem.model(problem.x, **{n: best[:, j:j + 1] for j, n in enumerate(names)})
    chisqr = np.sum(((f - problem.y[rows]) / problem.sigma[rows]) ** 2, axis=1)
    return {"seconds": seconds, "rows": rows, "success": ok, "nfev": np.zeros(rows.size, int),
            "chisqr": np.where(ok, chisqr, np.nan)}


def summary(name: str, runs: list, chi_truth, n_fittable_rows: np.ndarray) -> dict:
    """Median-round rate and the distribution of the last round, as a printed line."""
    rate = float(np.median([r["rows"].size / r["seconds"] for r in runs]))
    last = runs[-1]
    ok = last["success"]
    nfev = last["nfev"][ok] if ok.any() else np.zeros(1)
    line = (f"  {name:<22} {rate:10.1f} fits/s  success {100 * ok.mean():6.2f}% "
            f"({int((~ok).sum())} failed of {ok.size})")
    if chi_truth is not None:
        ref = chi_truth[last["rows"]]
        at_min = ok & (last["chisqr"] <= ref * (1 + 1e-9))
        line += f"  at-min {100 * at_min.mean():6.2f}%"
    if np.any(last["nfev"]):
        p50, p90, p99 = np.percentile(nfev, [50, 90, 99])
        line += (f"  nfev p50 {p50:.0f} p90 {p90:.0f} p99 {p99:.0f} max {nfev.max()}"
                 f"  p99/p50 {p99 / max(p50, 1):.1f}")
    print(line, flush=True)
    return {"rate": rate, "success": ok.mean()}


def bench(problem, n_loop: int, rounds: int, methods) -> None:
    rows = np.flatnonzero(fittable(problem))
    sub = rows[:n_loop]
    print(f"\n{problem.name}: {problem.y.shape[0]} curves x {problem.x.size} points, "
          f"{rows.size} fittable; loops on {sub.size}", flush=True)
    runs = {"fit_batch": [], "fit_batch guess=True": []} | {m: [] for m in methods}
    for _ in range(rounds):
        runs["fit_batch"].append(run_batch(problem, rows))
        runs["fit_batch guess=True"].append(run_batch(problem, rows, guess=True))
        for m in methods:
            runs[m].append(RUNNERS[m](problem, sub))
    chi = truth_chisqr(problem)
    stats = {m: summary(m, r, chi, rows) for m, r in runs.items()}
    for m in methods:
        ratio = stats["fit_batch"]["rate"] / stats[m]["rate"]
        each = [a["rows"].size / a["seconds"] / (b["rows"].size / b["seconds"])
                for a, b in zip(runs["fit_batch"], runs[m], strict=True)]
        target = TARGETS.get(problem.name)
        goal = f" (target >= {target[1]:.0f}x)" if target and target[0] == m and target[1] else ""
        print(f"  ratio fit_batch / {m}: {ratio:.1f}x{goal}; per round "
              + ", ".join(f"{e:.1f}x" for e in each), flush=True)


RUNNERS = {"trf": run_trf, "leastsq": run_leastsq, "curvefit": run_curvefit}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every cube size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="abcr", help="cubes to run, e.g. 'ab' or 'r'")
    args = ap.parse_args(argv)
    k = args.scale
    print(f"batchfit {batchfit.__version__} from {Path(batchfit.__file__).parent}; one thread")
    if "a" in args.only:
        bench(tc.emission_lines(int(1000 * k), seed=0), int(100 * k), args.rounds, ["trf"])
    if "b" in args.only:
        bench(tc.gaussian_line(int(4000 * k), seed=0), int(400 * k), args.rounds,
              ["leastsq", "curvefit"])
    if "c" in args.only:
        bench(tc.biexponential(int(4000 * k), seed=0), int(300 * k), args.rounds, ["trf"])
    if "r" in args.only:
        try:
            real = tc.hcn_cube()
        except ImportError as exc:
            print(f"\nreal data: SKIPPED ({exc})")
            return
        bench(real, int(200 * k), args.rounds, ["trf"])


if __name__ == "__main__":
    main()
