"""``batchfit submit`` end to end on cube (a) against in-process ``fit_batch`` (issue 9, item 5).

Cube (a) of issue 9 (five tied emission lines, ``batchfit.stack.testcubes``)
is written as a ``side x side`` zarr cube; the same job runs through
``pipeline.run`` on batchfit's own local cluster (``stack.cluster.make_client``,
``--workers`` single-threaded workers) that is started and warmed up by a
first job before the clock starts, so start-up is excluded.
``fit_batch`` fits the same curves on one thread in a fresh Python process,
interleaved with the submits (timed in this process after a cluster had
lived here, it ran up to a third slower, which would flatter the ratio). The
target: submit's rate at least 60% of ``fit_batch``'s rate times the number
of workers.

The input is stored in 32 x 32-pixel chunks; tasks are the chunk rule's
(``batchfit.stack.chunking``) unless ``--chunk`` gives their side.

On a shared machine, other processes take the workers' cores and the ratio
means little; ``setsid bash -c 'echo -19 > /proc/self/autogroup; exec python
scripts/bench_submit_tail.py'`` (root) gives this run's session priority.

Run: ``python scripts/bench_submit_tail.py [--side 128] [--chunk N] [--workers 2] [--rounds 2]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batchfit import pipeline  # noqa: E402
from batchfit.config import JobConfig  # noqa: E402
from batchfit.stack import testcubes as tc  # noqa: E402


def job(problem, cube: Path, out: Path, chunk: int | None) -> JobConfig:
    """The config of cube (a): components in the model's order, the template's parameters."""
    comps = [{"type": c.kernel.name,
              "prefix": c.prefix} for c in problem.model.components]
    params = {}
    for name, par in problem.params.items():
        spec: dict = {"expr": par.expr} if par.expr else {"value": float(par.value)}
        if par.expr is None and np.isfinite(par.lo):
            spec["min"] = float(par.lo)
        if par.expr is None and np.isfinite(par.hi):
            spec["max"] = float(par.hi)
        params[name] = spec
    inp = {"path": str(cube), "variable": "data", "fit_dim": "wavelength", "sigma": "sigma"}
    if chunk:  # else the default chunk rule (batchfit.stack.chunking)
        inp["chunks"] = {"y": chunk, "x": chunk}
    return JobConfig.from_dict({
        "input": inp,
        "model": {"components": comps}, "parameters": params,
        "output": {"path": str(out)}})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=None,
                    help="task tile side (default: the chunk rule's choice)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    p = tc.emission_lines(args.side**2, seed=0)
    tmp = Path(tempfile.mkdtemp(prefix="bench_submit_tail_"))
    try:
        native = min(args.side, 32)  # the input's own chunks: 32 x 32 pixels
        p.to_dataset(args.side, args.side, fit_dim="wavelength").chunk(
            {"y": native, "x": native}).to_zarr(str(tmp / "a.zarr"), zarr_format=3,
                                                consolidated=False)
        rounds(p, tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def submit_once(p, tmp: Path, args) -> tuple[float, int]:
    """One submit on batchfit's own local cluster, started and warmed up before the clock."""
    from batchfit.stack.cluster import make_client

    cfg = job(p, tmp / "a.zarr", tmp / "out.zarr", args.chunk)
    warm = job(tc.emission_lines(256, seed=1), tmp / "a.zarr", tmp / "warm.zarr", args.chunk)
    with make_client(cfg.cluster, workers=args.workers) as client:
        address = client.scheduler.address
        pipeline.run(warm, overwrite=True, scheduler=address, quiet=True)
        t0 = time.perf_counter()
        s = pipeline.run(cfg, overwrite=True, scheduler=address, quiet=True)
        return s.fitted / (time.perf_counter() - t0), s.chunks_computed


def fit_batch_rate(side: int) -> tuple[float, float]:
    """fit_batch's rate and success on the same cube, timed in a fresh Python process."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); import batchfit; "
            "from batchfit.stack import testcubes as tc; "
            "p = tc.emission_lines(int(sys.argv[1]) ** 2, seed=0); t0 = time.perf_counter(); "
            "r = batchfit.fit_batch(p.model, p.params, p.x, p.y, sigma=p.sigma); "
            "print(p.y.shape[0] / (time.perf_counter() - t0), r.success.mean())")
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", code, str(side), root], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[-2]), float(out[-1])


def rounds(p, tmp, args) -> None:
    """Interleaved rounds: a submit, then fit_batch in a fresh process.

    Timed in this process, fit_batch ran up to a third slower after a cluster
    had lived here (left-over threads), which would flatter the ratio.
    """
    sub, loc = [], []
    for _ in range(args.rounds):
        rate, tasks = submit_once(p, tmp, args)
        sub.append(rate)
        fb_rate, success = fit_batch_rate(args.side)
        loc.append(fb_rate)
    a, b = float(np.median(sub)), float(np.median(loc))
    tiles = f"tiles {args.chunk}^2" if args.chunk else "the chunk rule's tiles"
    print(f"cube (a): {p.y.shape[0]} curves x {p.x.size} points, {tasks} tasks ({tiles}); "
          f"fit_batch success {100 * success:.2f}%")
    print(f"  submit ({args.workers} workers) {a:8.1f} fits/s   fit_batch (1 thread) {b:8.1f} "
          f"fits/s   submit / (fit_batch x workers) = {a / (b * args.workers):.2f} "
          f"(target >= 0.60); rounds: " + ", ".join(f"{x:.1f}/{y:.1f}" for x, y in
                                                    zip(sub, loc, strict=True)))


if __name__ == "__main__":
    main()
