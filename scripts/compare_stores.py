"""Compare two result stores variable by variable, exactly.

Usage::

    python scripts/compare_stores.py A.zarr B.zarr [--attrs]

Every data variable and coordinate of either store must be in both, with the
same dims, shape, dtype and values (bit for bit; NaN equals NaN at the same
place). With ``--attrs`` the stores' attributes are compared too, except the
ones that name paths or versions. Prints one line per variable and exits 0
when the stores are identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import xarray as xr

PATH_ATTRS = {"batchfit_config", "batchfit_fingerprint", "input_path", "versions"}


def compare_variable(name: str, a: xr.DataArray, b: xr.DataArray) -> str | None:
    """Why ``a`` and ``b`` differ, or None when they are identical."""
    if a.dims != b.dims or a.shape != b.shape:
        return f"dims {dict(a.sizes)} vs {dict(b.sizes)}"
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} vs {b.dtype}"
    va, vb = np.asarray(a.values), np.asarray(b.values)
    if va.dtype.kind in "fc":
        same = (va == vb) | (np.isnan(va) & np.isnan(vb))
    else:
        same = va == vb
    if not np.all(same):
        bad = int(np.size(same) - np.count_nonzero(same))
        return f"{bad} of {va.size} values differ"
    return None


def compare(path_a: str, path_b: str, attrs: bool = False) -> list[str]:
    """Lines describing every difference between the stores (empty: identical)."""
    with warnings.catch_warnings():  # batchfit's marker folder is not a zarr node
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        a = xr.open_zarr(path_a, consolidated=False)
        b = xr.open_zarr(path_b, consolidated=False)
    problems = []
    names_a = set(a.variables)
    names_b = set(b.variables)
    for name in sorted(names_a ^ names_b):
        problems.append(f"{name}: only in {'A' if name in names_a else 'B'}")
    for name in sorted(names_a & names_b):
        why = compare_variable(name, a[name], b[name])
        print(f"  {name:24s} {why or 'identical'}")
        if why:
            problems.append(f"{name}: {why}")
    if attrs:
        keys = (set(a.attrs) | set(b.attrs)) - PATH_ATTRS
        problems += [f"attribute {k!r} differs" for k in sorted(keys)
                     if a.attrs.get(k) != b.attrs.get(k)]
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--attrs", action="store_true", help="compare attributes too")
    args = ap.parse_args()
    print(f"A: {args.a}\nB: {args.b}")
    problems = compare(args.a, args.b, args.attrs)
    if problems:
        print("DIFFERENT:\n" + "\n".join(f"  {p}" for p in problems))
        return 1
    print("identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
