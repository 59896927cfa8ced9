"""scripts/compare_stores.py: exact, NaN-aware, variable by variable."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import xarray as xr

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_stores.py"
spec = importlib.util.spec_from_file_location("compare_stores", SCRIPT)
compare_stores = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_stores)


def store(path, a, status, **attrs):
    ds = xr.Dataset({"a": (("y", "x"), a), "status": (("y", "x"), status)},
                    coords={"y": [0, 1], "x": [0.5, 1.5]}, attrs=attrs)
    ds.to_zarr(path, zarr_format=3, consolidated=False)
    return str(path)


def test_identical_stores_with_nan(tmp_path):
    a = np.array([[1.0, np.nan], [3.0, 4.0]])
    s = np.zeros((2, 2), np.int8)
    first = store(tmp_path / "a.zarr", a, s, engine="lm", input_path="/x")
    second = store(tmp_path / "b.zarr", a.copy(), s, engine="lm", input_path="/y")
    assert compare_stores.compare(first, second, attrs=True) == []


def test_one_ulp_a_dtype_and_an_attribute_differ(tmp_path):
    a = np.array([[1.0, np.nan], [3.0, 4.0]])
    b = a.copy()
    b[1, 1] = np.nextafter(4.0, 5.0)
    first = store(tmp_path / "a.zarr", a, np.zeros((2, 2), np.int8), engine="lm")
    second = store(tmp_path / "b.zarr", b, np.zeros((2, 2), np.int16), engine="leastsq")
    assert compare_stores.compare(first, second, attrs=True) == [
        "a: 1 of 4 values differ", "status: dtype int8 vs int16", "attribute 'engine' differs"]
