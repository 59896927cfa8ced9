"""Map the FLIM image window by window: lifetimes, their ratio, and the Poisson bias.

Issue 11 point 2 asks for a median lifetime bias under 1% at 1,000 photons
and under 2% at 200 on real photon counts. On the committed excerpt (the
brightest 64 x 64 window) the Poisson fits of thinned real counts are off by
about -4% / +3% at 200 photons, as are exact Poisson samples of the same
curves. This script looks at the whole 512 x 512 image
(``seminal_receptacle_FLIM_single_image.sdt``, see ``scripts/DATA.md``) to
see whether a region with another decay meets the targets, and how the bias
depends on the decay:

1. ``map``: for every ``--block`` x ``--block`` window holding at least
   ``--min-photons`` in its fitted tail, the pooled Poisson fit of the tail
   model of ``tests/batch/flim_data.py`` (lifetimes, their ratio, the short
   component's share of the tail photons, deviance per degree of freedom) and
   the median lifetime bias of ``--replicates`` fits at 200 and 1,000 photons:
   exact Poisson samples of the pooled fit's curve (the estimator's own bias)
   and binomially thinned pooled counts (the real data), ``bg_c`` held at the
   reference's as the test does; plus the stderr coverage range of the four
   free parameters on the exact samples at 200 photons.
2. ``sweep``: exact samples at 200 photons of tail curves built like the
   brightest window's (same time bins, background share and long lifetime)
   with another lifetime ratio and short-photon share: where the 2% target
   holds for this fitted model.

``--image hazelnut`` maps the wheel's other measured image instead
(``hazelnut_FLIM_single_image.ptu``: autofluorescence of a hazelnut section,
PicoQuant PicoHarp 300 T3 records written by SymPhoTime 64, 5 frames of
256 x 256 pixels, 132 bins of 97 ps in the 12.8 ns laser period; read with
``ptufile``), fitted from 4 bins (0.39 ns) after its peak to bin 130. The
sweep is of the seminal receptacle's decay only.

Run (``pip install --no-deps napari-flim-phasor-plotter==0.2.3 sdtfile ptufile``)::

    python scripts/flim_map.py [--block 64] [--replicates 3000] [--no-sweep | --no-map]
    python scripts/flim_map.py --image hazelnut --block 32 --no-sweep
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "batch"))
sys.path.insert(0, str(ROOT / "scripts"))

from flim_data import FIRST, STOP, tail_model, tail_params  # noqa: E402
from flim_excerpt import source_file, source_image  # noqa: E402

import batchfit  # noqa: E402

FREE = ("s_amplitude", "s_decay", "l_amplitude", "l_decay")
SCALED = ("s_amplitude", "l_amplitude", "bg_c")


def pooled_fit(t: np.ndarray, pooled: np.ndarray) -> tuple[dict[str, float], float]:
    """Poisson fit of one pooled tail: the parameters and the deviance per dof."""
    model = tail_model()
    res = batchfit.fit_batch(model, tail_params(model, pooled[0], pooled[-1]), t,
                             pooled[None], cost="poisson")
    if not res.success[0]:
        raise RuntimeError(f"pooled fit failed: {res.counts()}")
    return {k: float(v[0]) for k, v in res.values.items()}, float(res.redchi[0])


def short_share(t: np.ndarray, ref: dict[str, float]) -> float:
    """The short component's share of the two exponentials' photons in the tail."""
    s = ref["s_amplitude"] * np.exp(-t / ref["s_decay"]).sum()
    return float(s / (s + ref["l_amplitude"] * np.exp(-t / ref["l_decay"]).sum()))


def lifetime_bias(t: np.ndarray, y: np.ndarray, ref: dict[str, float],
                  p: float) -> tuple[float, float, float, float]:
    """Median relative bias of both lifetimes and the coverage range of the free stderr."""
    model = tail_model()
    params = tail_params(model, float(np.mean(y[:, :3])), float(np.mean(y[:, -20:])))
    params["bg_c"].vary = False
    # a value of a parameter the template fixes applies only with its _vary given
    init = {"bg_c": np.full(len(y), ref["bg_c"] * p), "bg_c_vary": np.zeros(len(y), bool)}
    res = batchfit.fit_batch(model, params, t, y, init=init, cost="poisson")
    want = {k: ref[k] * (p if k in SCALED else 1.0) for k in FREE}
    ok = res.success
    cover = [np.mean(np.abs(res.values[k] - want[k])[ok] < res.stderr[k][ok]) for k in FREE]
    return (float(np.median(res.values["s_decay"][ok]) / want["s_decay"] - 1.0),
            float(np.median(res.values["l_decay"][ok]) / want["l_decay"] - 1.0),
            float(min(cover)), float(max(cover)))


def replicates(t: np.ndarray, pooled: np.ndarray, ref: dict[str, float], photons: float,
               n: int, rng: np.random.Generator, exact: bool) -> tuple[np.ndarray, float]:
    """``n`` tails of about ``photons`` counts and the thinning fraction ``p``."""
    p = photons / pooled.sum()
    if exact:
        return rng.poisson(p * tail_model()(t, **ref), (n, t.size)).astype(float), p
    return rng.binomial(pooled.astype(np.int64), p, (n, t.size)).astype(float), p


def window_row(t: np.ndarray, pooled: np.ndarray, n: int, rng: np.random.Generator) -> list:
    """One row of the map: the pooled fit and the biases of the replicates."""
    ref, redchi = pooled_fit(t, pooled)
    row = [ref["s_decay"], ref["l_decay"], ref["l_decay"] / ref["s_decay"],
           short_share(t, ref), ref["bg_c"] * t.size / pooled.sum(), redchi]
    for photons, exact in ((200, True), (200, False), (1000, True)):
        y, p = replicates(t, pooled, ref, photons, n, rng, exact)
        s, l, lo, hi = lifetime_bias(t, y, ref, p)
        row += [100 * s, 100 * l] + ([lo, hi] if (photons, exact) == (200, True) else [])
    return row


def print_map(t: np.ndarray, tail: np.ndarray, args: argparse.Namespace) -> None:
    """The ``map`` table, one line per window with enough photons."""
    b, rng = args.block, np.random.default_rng(args.seed)
    print(f"map: {b} x {b} windows, {args.replicates} replicates each, bias in %")
    print("row col  ph/px  s_ns  l_ns ratio short    bg dev/dof | exact200 s/l   cov200"
          "    | real200 s/l | exact1000 s/l")
    for i in range(0, tail.shape[0] - b + 1, b):
        for j in range(0, tail.shape[1] - b + 1, b):
            block = tail[i:i + b, j:j + b]
            pooled = block.reshape(-1, t.size).sum(axis=0).astype(float)
            if pooled.sum() < args.min_photons:
                continue
            r = window_row(t, pooled, args.replicates, rng)
            print(f"{i:3d} {j:3d} {np.median(block.sum(-1)):6.0f} {r[0]:.3f} {r[1]:.3f} "
                  f"{r[2]:5.2f} {r[3]:.2f} {r[4]:.3f} {r[5]:7.2f} | {r[6]:+5.1f} {r[7]:+5.1f} "
                  f"{r[8]:.2f}-{r[9]:.2f} | {r[10]:+5.1f} {r[11]:+5.1f} | "
                  f"{r[12]:+5.1f} {r[13]:+5.1f}", flush=True)


def print_sweep(t: np.ndarray, pooled: np.ndarray, args: argparse.Namespace) -> None:
    """Exact samples at 200 photons of the pooled curve with another ratio and share."""
    ref, _ = pooled_fit(t, pooled)
    rng = np.random.default_rng(args.seed + 1)
    e_l = np.exp(-t / ref["l_decay"]).sum()
    two = pooled.sum() - ref["bg_c"] * t.size  # photons of the two exponentials
    print(f"sweep: long lifetime {ref['l_decay']:.3f} ns, background share "
          f"{ref['bg_c'] * t.size / pooled.sum():.3f}; exact samples at 200 photons, bias in %")
    print("ratio short | s_bias l_bias | coverage")
    for ratio in (4.0, 6.0, 8.0, 12.0):
        for share in (0.2, 0.37, 0.5):
            s_decay = ref["l_decay"] / ratio
            new = dict(ref, s_decay=s_decay,
                       s_amplitude=share * two / np.exp(-t / s_decay).sum(),
                       l_amplitude=(1.0 - share) * two / e_l)
            y, p = replicates(t, pooled, new, 200, args.replicates, rng, exact=True)
            s, l, lo, hi = lifetime_bias(t, y, new, p)
            print(f"{ratio:5.1f} {share:.2f} | {100 * s:+5.1f} {100 * l:+5.1f} | "
                  f"{lo:.2f}-{hi:.2f}", flush=True)


def hazelnut_tail() -> tuple[np.ndarray, np.ndarray]:
    """Bin times from the first fitted bin (ns) and tail counts (256, 256, bins) of the PTU image.

    The frames and the one detector channel are summed; the fit starts 4 bins
    after the peak of the whole image's decay and stops at bin 130, before
    the last bins of the 132-bin laser period.
    """
    from ptufile import PtuFile  # pip install ptufile

    with PtuFile(source_file().with_name("hazelnut_FLIM_single_image.ptu")) as ptu:
        counts = ptu.decode_image().sum(axis=(0, 3), dtype=np.int64)
        resolution_ns = ptu.tcspc_resolution * 1e9
    first = int(np.argmax(counts.sum(axis=(0, 1)))) + 4
    t = np.arange(130 - first) * resolution_ns
    return t, counts[:, :, first:130]


def main() -> None:
    """Print the map and the sweep."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", type=int, default=64, help="window size (pixels)")
    ap.add_argument("--replicates", type=int, default=3000, help="fits per window and level")
    ap.add_argument("--min-photons", type=float, default=20000, help="pooled tail photons")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-sweep", action="store_true", help="the map only")
    ap.add_argument("--no-map", action="store_true", help="the sweep only")
    ap.add_argument("--image", choices=("seminal_receptacle", "hazelnut"),
                    default="seminal_receptacle", help="which measured image of the wheel")
    args = ap.parse_args()
    if args.image == "hazelnut":
        t, tail = hazelnut_tail()
        args.no_sweep = True
    else:
        full, time_ns = source_image()
        t = time_ns[FIRST:STOP] - time_ns[FIRST]
        tail = np.asarray(full[:, :, FIRST:STOP], dtype=np.int64)
    if not args.no_map:
        print_map(t, tail, args)
    if not args.no_sweep:
        print_sweep(t, tail[161:225, 84:148].reshape(-1, t.size).sum(axis=0).astype(float),
                    args)


if __name__ == "__main__":
    main()
