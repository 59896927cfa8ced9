"""Per-step cost of tie derivatives: symbolic (TieSet.gradients now) vs central differences.

Cube (a) of issue 9: five Gaussians whose centres are tied to a redshift and
whose widths are tied to one width (9 tied parameters, 8 varied). Measured in
one process, interleaved rounds, one thread:

* ``tie_gradients`` alone on a block of curves: the symbolic chain rule against
  the previous implementation, central differences of every tie for every varied
  parameter (kept below as the baseline, unchanged);
* one LM step's model work (residuals + Jacobian columns for the block), which
  is where the tie gradients are paid, with each of the two.

Run: ``python scripts/bench_ties.py [--m 2048] [--rounds 5]``
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

from batchfit.batch.layout import Layout  # noqa: E402
from batchfit.batch.problem import Problem  # noqa: E402
from batchfit.core.expr import TieSet  # noqa: E402
from batchfit.stack import testcubes as tc  # noqa: E402

FD_STEP = np.finfo(float).eps ** (1.0 / 3.0)


def central_differences(self, values, var_names, scale):
    """The previous TieSet.gradients: two applications of every tie per varied parameter."""
    scale = np.asarray(scale, dtype=float)
    cols = {name: [] for name in self.order}
    for j, var in enumerate(var_names):
        v = np.asarray(values[var], dtype=float)
        h = FD_STEP * np.reshape(scale[..., j], v.shape)
        up, dn = dict(values), dict(values)
        up[var], dn[var] = v + h, v - h
        up, dn = self.apply(up), self.apply(dn)
        for name in self.order:
            diff = np.asarray(up[name], dtype=float) - np.asarray(dn[name], dtype=float)
            cols[name].append(np.broadcast_to(diff / ((v + h) - (v - h)), v.shape))
    return {name: np.stack(c, axis=-1) for name, c in cols.items()}


def timed(fn, repeat):
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, nargs="+", default=[16, 256, 2048],
                    help="curves per block (the tail of a fit has few active curves)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    for m in args.m:
        one_block(m, args.rounds)


def one_block(m: int, rounds: int) -> None:
    p = tc.emission_lines(m, seed=0)
    layout = Layout(p.params)
    ext = np.column_stack([p.truth[n] for n in layout.var_names])
    theta = layout.bounds.to_internal(ext)
    prob = Problem(p.model, layout, p.x, p.y, 1.0 / p.sigma)
    rows = np.arange(m)

    def step():
        _r, columns = prob.evaluate(theta, rows)
        columns(rows, 0.0)

    symbolic = TieSet.gradients
    fd = _fd_grads(layout, ext)
    worst = max(float(np.max(np.abs(a - fd[k]) / np.maximum(np.abs(fd[k]), 1e-12)))
                for k, a in layout.tie_gradients(ext).items())
    print(f"\ncube (a): {len(layout.ties.order)} tied, {layout.nvar} varied, block of {m} curves"
          f" x {p.x.size} points; one thread; symbolic vs differences differ by <= {worst:.1e}")
    res: dict = {"symbolic": [], "differences": []}
    repeat = max(3, 20000 // m)
    for _ in range(rounds):
        for name, impl in (("symbolic", symbolic), ("differences", central_differences)):
            TieSet.gradients = impl
            res[name].append((timed(lambda: layout.tie_gradients(ext), repeat),
                              timed(step, max(2, repeat // 10))))
    TieSet.gradients = symbolic
    med = {k: np.median(np.array(v), axis=0) for k, v in res.items()}
    for k, (g, s) in med.items():
        print(f"  {k:<12} tie gradients {1e3 * g:8.3f} ms   one LM step's model work "
              f"{1e3 * s:8.2f} ms")
    print(f"  ratio differences/symbolic: tie gradients "
          f"{med['differences'][0] / med['symbolic'][0]:.1f}x, "
          f"step {med['differences'][1] / med['symbolic'][1]:.2f}x")


def _fd_grads(layout, ext):
    saved = TieSet.gradients
    TieSet.gradients = central_differences
    try:
        return layout.tie_gradients(ext)
    finally:
        TieSet.gradients = saved


if __name__ == "__main__":
    main()
