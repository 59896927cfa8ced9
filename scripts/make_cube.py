"""Write a synthetic Gaussian + line cube with known truth to a zarr store.

Usage: python scripts/make_cube.py OUT.zarr [--ny 256] [--nx 256] [--npts 128]
       [--chunk 64] [--seed 0]

The cube is written in blocks of ``--chunk`` rows, so cubes far larger than
memory can be made. ``counts`` is float32; ``truth_<param>`` hold the truth.
"""

from __future__ import annotations

import argparse

from batchfit.stack.synthetic import make_cube


def write_big_cube(path, ny: int, nx: int, npts: int, chunk: int = 64, seed: int = 0) -> None:
    """Write a ``ny x nx x npts`` cube block by block (each block its own seed)."""
    for i, y0 in enumerate(range(0, ny, chunk)):
        rows = min(chunk, ny - y0)
        block = make_cube(rows, nx, npts, seed=seed + i).assign_coords(y=range(y0, y0 + rows))
        block = block.chunk({"y": chunk, "x": min(chunk, nx)})
        if i == 0:
            block.to_zarr(str(path), mode="w", zarr_format=3, consolidated=False)
        else:
            block.to_zarr(str(path), append_dim="y", consolidated=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--ny", type=int, default=256)
    ap.add_argument("--nx", type=int, default=256)
    ap.add_argument("--npts", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    write_big_cube(a.out, a.ny, a.nx, a.npts, a.chunk, a.seed)
    print(f"wrote {a.out}: {a.ny} x {a.nx} x {a.npts} float32")


if __name__ == "__main__":
    main()
