"""Finite differences against closed-form derivatives."""

from __future__ import annotations

import numpy as np
import pytest

from batchfit.core.fdiff import (
    CENTRAL_STEP,
    FORWARD_STEP,
    central_partial,
    central_step,
    forward_columns,
)


def curves(theta):
    """f = a * exp(-b * x) on 7 points, one curve per row of theta = (a, b)."""
    x = np.linspace(0.0, 3.0, 7)
    return theta[:, :1] * np.exp(-theta[:, 1:2] * x)


def test_forward_columns_match_the_closed_form():
    theta = np.array([[2.0, 0.5], [1e-3, 3.0], [0.0, 1.0]])
    x = np.linspace(0.0, 3.0, 7)
    cols = forward_columns(curves, theta, curves(theta))
    da = np.exp(-theta[:, 1:2] * x)
    db = -theta[:, :1] * x * np.exp(-theta[:, 1:2] * x)
    np.testing.assert_allclose(cols[0], da, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(cols[1], db, rtol=1e-6, atol=1e-9)


def test_forward_columns_are_per_curve():
    """A batch gives each row exactly what that row alone gives."""
    rng = np.random.default_rng(0)
    theta = rng.uniform(0.1, 2.0, (5, 2))
    batch = forward_columns(curves, theta, curves(theta), 1e-6)
    for i in range(5):
        one = forward_columns(curves, theta[i:i + 1], curves(theta[i:i + 1]), 1e-6)
        for j in range(2):
            np.testing.assert_array_equal(batch[j][i], one[j][0])


def test_forward_columns_flag_failures_without_warnings():
    def fails(theta):
        out = curves(theta)
        out[theta[:, 0] > 1.5] = np.nan
        return out

    theta = np.array([[1.5 - 1e-12, 1.0], [0.5, 1.0]])
    with np.errstate(all="raise"):
        cols = forward_columns(fails, theta, fails(theta))
    assert np.isnan(cols[0][0]).all() and np.isfinite(cols[0][1]).all()


def test_central_partial_by_name_and_by_index():
    values = {"a": np.array([0.3, 2.0]), "b": 1.5}

    def f(v):
        return np.sin(v["a"]) * v["b"]

    h = central_step(values["a"])
    np.testing.assert_allclose(central_partial(f, values, "a", h), np.cos(values["a"]) * 1.5,
                               rtol=1e-9)
    x = np.array([0.3, 1.5])
    got = central_partial(lambda p: np.sin(p[0]) * p[1], x, 1, central_step(x[1]))
    assert got == pytest.approx(np.sin(0.3), rel=1e-10)
    assert values["a"].tolist() == [0.3, 2.0] and x.tolist() == [0.3, 1.5]  # not modified


def test_central_partial_stays_inside_the_bounds():
    seen = []

    def f(p):
        seen.append(p[0])
        return np.sqrt(p[0]) if p[0] >= 0 else np.nan

    got = central_partial(f, np.array([0.0]), 0, 1e-6, lo=0.0)
    assert min(seen) == 0.0 and got == pytest.approx(1.0 / np.sqrt(1e-6), rel=1e-12)


def test_steps():
    assert FORWARD_STEP == pytest.approx(np.sqrt(np.finfo(float).eps))
    np.testing.assert_array_equal(central_step([0.0, -4.0]), CENTRAL_STEP * np.array([1.0, 4.0]))
    np.testing.assert_array_equal(central_step(3.0, scale=0.0), CENTRAL_STEP)
