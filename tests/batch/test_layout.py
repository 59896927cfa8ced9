"""Layout: how a Parameters template maps onto the arrays of a batch."""

from __future__ import annotations

import numpy as np
import pytest

from batchfit import ExpressionError, ParameterError, Parameters
from batchfit.batch.layout import Layout


def _template():
    p = Parameters()
    p.add("a", value=2.0, min=0.0)
    p.add("b", value=5.0, min=1.0, max=10.0)
    p.add("c", value=3.0, vary=False)
    p.add("z", value=0.1)
    p.add("t1", expr="6563*(1+z)")
    p.add("t2", expr="a*b + c")
    return p


def test_columns_fixed_and_tied():
    lay = Layout(_template())
    assert lay.names == ["a", "b", "c", "z", "t1", "t2"]
    assert lay.var_names == ["a", "b", "z"] and lay.nvar == 3
    assert lay.fixed == {"c": 3.0}
    np.testing.assert_array_equal(lay.start, [2.0, 5.0, 0.1])


def test_starting_values_overrides_and_clipping():
    lay = Layout(_template())
    guess = {"a": np.array([1.0, np.nan, -4.0]), "z": np.array([0.2, 0.3, np.inf])}
    init = {"b": np.array([np.nan, 20.0, 7.0]), "a": np.array([np.nan, 9.0, np.nan])}
    s = lay.starting_values(3, [guess, init])
    np.testing.assert_array_equal(s[:, 0], [1.0, 9.0, 0.0])  # -4 clipped to min=0
    np.testing.assert_array_equal(s[:, 1], [5.0, 10.0, 7.0])  # 20 clipped to max=10
    np.testing.assert_array_equal(s[:, 2], [0.2, 0.3, 0.1])  # inf keeps the template
    np.testing.assert_array_equal(lay.starting_values(2), [[2.0, 5.0, 0.1]] * 2)


def test_values_evaluate_ties_on_arrays():
    lay = Layout(_template())
    ext = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 0.08]])
    v = lay.values(ext)
    assert v["c"] == 3.0
    np.testing.assert_allclose(np.ravel(v["t1"]), [6563.0, 6563.0 * 1.08], rtol=1e-15)
    np.testing.assert_allclose(np.ravel(v["t2"]), [5.0, 15.0], rtol=1e-15)
    assert np.shape(v["a"]) == (2, 1)


def test_tie_gradients_match_closed_form():
    lay = Layout(_template())
    ext = np.array([[1.5, 2.5, 0.05], [3.0, 4.0, 0.08]])
    g = lay.tie_gradients(ext)
    np.testing.assert_allclose(g["t1"], [[0, 0, 6563.0]] * 2, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(g["t2"], [[2.5, 1.5, 0.0], [4.0, 3.0, 0.0]], rtol=1e-8,
                               atol=1e-8)
    assert Layout(Parameters()).tie_gradients(np.zeros((2, 0))) == {}


def test_bounds_match_core_transform():
    lay = Layout(_template())
    ext = np.array([[0.5, 9.0, -0.3]])
    theta = lay.bounds.to_internal(ext)
    np.testing.assert_allclose(lay.bounds.to_external(theta), ext, rtol=1e-12)
    # MINUIT formulas of the contract
    assert lay.bounds.to_external(np.array([[0.0, 0.0, 0.0]]))[0, 1] == pytest.approx(5.5)
    assert lay.bounds.to_external(np.array([[2.0, 0.0, 0.0]]))[0, 0] == pytest.approx(
        0.0 - 1.0 + np.sqrt(5.0))


def test_invalid_templates_raise_once():
    with pytest.raises(ParameterError):
        Layout({"a": 1.0})
    p = Parameters()
    p.add("a", value=1.0)
    p.add("b", expr="a + nope")
    with pytest.raises(ExpressionError):
        Layout(p)
    q = Parameters()
    q.add("a", value=1.0, min=2.0)
    q["a"].max = 1.0  # made inconsistent after construction: caught by the layout
    with pytest.raises(ParameterError):
        Layout(q)
    r = Parameters()
    r.add("a", value=1.0)
    r["a"].value = float("nan")
    with pytest.raises(ParameterError):
        Layout(r)
