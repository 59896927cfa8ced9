"""The result layout (batchfit/stack/layout.py): every name a fit writes, and no clashes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from batchfit import ParameterError, Parameters, stack
from batchfit.models import from_reference
from batchfit.stack.layout import NameClashError, ResultLayout


def _layout(names=("a", "b"), covar=True) -> ResultLayout:
    return ResultLayout(tuple(names), tuple(names), covar)


def _written_names(layout: ResultLayout) -> set[str]:
    packed = np.zeros((2, 3, layout.width))
    ds = layout.dataset(packed, ("y", "x"), {}, {})
    return set(ds.variables) - {"y", "x"}


@pytest.mark.parametrize("covar", [False, True])
def test_store_variables_are_exactly_what_the_dataset_holds(covar):
    layout = _layout(covar=covar)
    listed = [name for name, _ in layout.store_variables()]
    assert len(listed) == len(set(listed))
    assert set(listed) == _written_names(layout)


def _other_names() -> list[str]:
    """Every name the store writes besides a parameter's value (derived, not hard-coded)."""
    return [n for n, _ in _layout(("p",), covar=True).store_variables() if n != "p"]


@pytest.mark.parametrize("name", _other_names())
def test_parameter_named_like_any_other_variable_is_refused(name):
    taken = "p_stderr" if name == "p_stderr" else name
    with pytest.raises(NameClashError, match=rf"result variable '{taken}' would hold both") as e:
        _layout(("p", name), covar=True)
    assert e.value.param == name and isinstance(e.value, ParameterError)


def test_stderr_clash_names_both_parameters():
    with pytest.raises(ParameterError) as info:
        _layout(("a", "a_stderr"), covar=False)
    message = str(info.value)
    assert "the best-fit value of parameter 'a_stderr'" in message
    assert "the standard error of parameter 'a'" in message


def test_no_clash_without_covariance_for_its_names():
    _layout(("param", "covar"), covar=False)  # not written without covariance


def _cube() -> xr.DataArray:
    x = np.linspace(-1, 1, 12)
    data = np.stack([np.stack([2.0 * x + 1 + 0.01 * (i + j) for j in range(3)])
                     for i in range(2)])
    return xr.DataArray(data, dims=("y", "x_pix", "energy"),
                        coords={"energy": x, "y": [10, 20], "gain": ("y", [1.0, 1.1])})


@pytest.mark.parametrize("expression, clash", [
    ("chisqr*x + c", "'chisqr'"),
    ("a*x + a_stderr", "'a_stderr'"),
    ("y*x + c", "the input's dim 'y'"),
    ("energy*x + c", "the input's dim 'energy'"),
    ("gain*x + c", "the input's coordinate 'gain'"),
])
def test_api_fit_refuses_clashing_names(expression, clash):
    model = from_reference({"expression": expression})
    params = Parameters()
    for name in model.param_names:
        params.add(name, value=1.0)
    with pytest.raises(ParameterError, match=clash):
        stack.fit(_cube(), model, params, "energy")


def test_api_fit_without_clash_writes_every_listed_variable():
    model = from_reference({"expression": "a*x + c"})
    params = Parameters()
    params.add("a", value=1.0)
    params.add("c", value=0.0)
    res = stack.fit(_cube(), model, params, "energy", covar=True)
    listed = {n for n, _ in ResultLayout.from_params(params, True).store_variables()}
    assert set(res.variables) - set(_cube().coords) - {"y", "x_pix"} == listed
    np.testing.assert_allclose(res.a.values, 2.0, rtol=1e-8)
