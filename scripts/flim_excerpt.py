"""Cut the FLIM excerpt of ``tests/data/flim/`` out of the file it comes from.

The source is ``seminal_receptacle_FLIM_single_image.sdt`` (Becker & Hickl
SPC-160 TCSPC image, 512 x 512 pixels, 256 time bins of 48.9 ps) shipped in
the ``napari-flim-phasor-plotter`` 0.2.3 wheel; see ``scripts/DATA.md``. The
excerpt is the 64 x 64 pixel window with the most photons (rows 161-224,
columns 84-147), every time bin, stored as the measured integer counts
(uint8: the largest count of the window is below 256) with the bin times.

``--image hazelnut`` cuts the second excerpt from the wheel's other measured
image, ``hazelnut_FLIM_single_image.ptu`` (PicoQuant PicoHarp 300 T3 records,
5 frames of 256 x 256 pixels, 139 bins of 97.0 ps, read with ``ptufile``):
the frames summed, the 32 x 32 window of a 32-pixel grid with the most photons,
every bin, the measured counts.

Run (writes the excerpt, or with ``--check`` verifies the committed one equals
what the package's file gives)::

    pip install --no-deps napari-flim-phasor-plotter==0.2.3 && pip install sdtfile ptufile
    python scripts/flim_excerpt.py [--image hazelnut] [--check]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "flim" / "seminal_receptacle_64x64.npz"
SOURCE = "seminal_receptacle_FLIM_single_image.sdt"
ROWS, COLS = slice(161, 225), slice(84, 148)
HAZELNUT = "hazelnut_FLIM_single_image.ptu"
OUT_HAZELNUT = OUT.with_name("hazelnut_32x32.npz")


def source_file() -> Path:
    spec = importlib.util.find_spec("napari_flim_phasor_plotter")  # found, not imported
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs: pip install --no-deps napari-flim-phasor-plotter==0.2.3")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / SOURCE


def source_image() -> tuple[np.ndarray, np.ndarray]:
    """The whole image's counts (512, 512, 256) and bin start times (ns) from the SDT file."""
    from sdtfile import SdtFile  # pip install sdtfile

    sdt = SdtFile(source_file())
    return sdt.data[0], sdt.times[0] * 1e9


def excerpt() -> dict[str, np.ndarray]:
    """The cropped counts (64, 64, 256) and bin start times (ns) from the SDT file."""
    full, time_ns = source_image()
    counts = full[ROWS, COLS]
    if counts.max() > 255:
        raise ValueError("counts above 255 do not fit uint8")
    return {"counts": counts.astype(np.uint8), "time_ns": time_ns,
            "window": np.array([ROWS.start, ROWS.stop, COLS.start, COLS.stop]),
            "full_image_photons": np.array(full.sum(dtype=np.int64))}


def hazelnut_excerpt(block: int = 32) -> dict[str, np.ndarray]:
    """The brightest ``block`` x ``block`` window of the PTU image (frames summed)."""
    from ptufile import PtuFile  # pip install ptufile

    with PtuFile(source_file().with_name(HAZELNUT)) as ptu:
        full = ptu.decode_image().sum(axis=(0, 3), dtype=np.int64)  # (256, 256, bins)
        time_ns = np.arange(full.shape[-1]) * ptu.tcspc_resolution * 1e9
    image = full.sum(axis=-1)
    tiles = image.reshape(image.shape[0] // block, block, image.shape[1] // block, block)
    i, j = np.unravel_index(int(np.argmax(tiles.sum(axis=(1, 3)))), tiles.shape[::2])
    counts = full[i * block:(i + 1) * block, j * block:(j + 1) * block]
    if counts.max() > 255:
        raise ValueError("counts above 255 do not fit uint8")
    return {"counts": counts.astype(np.uint8), "time_ns": time_ns,
            "window": np.array([i * block, (i + 1) * block, j * block, (j + 1) * block]),
            "full_image_photons": np.array(full.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file")
    ap.add_argument("--image", choices=("seminal_receptacle", "hazelnut"),
                    default="seminal_receptacle")
    args = ap.parse_args()
    new, out = (hazelnut_excerpt(), OUT_HAZELNUT) if args.image == "hazelnut" else (
        excerpt(), OUT)
    if args.check:
        old = np.load(out)
        same = all(np.array_equal(old[k], v) for k, v in new.items())
        print("excerpt matches the package's file" if same else "EXCERPT DIFFERS")
        sys.exit(0 if same else 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **new)
    c = new["counts"].astype(np.int64)
    print(f"wrote {out} ({out.stat().st_size} bytes): {c.shape}, {c.sum()} photons, "
          f"median {np.median(c.sum(-1)):.0f} per pixel")


if __name__ == "__main__":
    main()
