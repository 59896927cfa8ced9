"""Symbolic tie derivatives against closed forms and against independent central differences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from batchfit import Parameters
from batchfit.core.expr import TieSet
from batchfit.core.exprdiff import partial_derivatives

RNG = np.random.default_rng(1)
N = 50

# function -> (closed-form derivative, domain of the argument)
CLOSED = {
    "sqrt": (lambda a: 0.5 / np.sqrt(a), (0.1, 4.0)),
    "exp": (np.exp, (-2.0, 2.0)),
    "expm1": (np.exp, (-2.0, 2.0)),
    "log": (lambda a: 1 / a, (0.1, 4.0)),
    "log10": (lambda a: 1 / (a * np.log(10)), (0.1, 4.0)),
    "log2": (lambda a: 1 / (a * np.log(2)), (0.1, 4.0)),
    "log1p": (lambda a: 1 / (1 + a), (-0.5, 4.0)),
    "sin": (np.cos, (-3.0, 3.0)),
    "cos": (lambda a: -np.sin(a), (-3.0, 3.0)),
    "tan": (lambda a: 1 / np.cos(a) ** 2, (-1.2, 1.2)),
    "sinh": (np.cosh, (-2.0, 2.0)),
    "cosh": (np.sinh, (-2.0, 2.0)),
    "tanh": (lambda a: 1 / np.cosh(a) ** 2, (-2.0, 2.0)),
    "asin": (lambda a: 1 / np.sqrt(1 - a * a), (-0.9, 0.9)),
    "arcsin": (lambda a: 1 / np.sqrt(1 - a * a), (-0.9, 0.9)),
    "acos": (lambda a: -1 / np.sqrt(1 - a * a), (-0.9, 0.9)),
    "arccos": (lambda a: -1 / np.sqrt(1 - a * a), (-0.9, 0.9)),
    "atan": (lambda a: 1 / (1 + a * a), (-3.0, 3.0)),
    "arctan": (lambda a: 1 / (1 + a * a), (-3.0, 3.0)),
    "asinh": (lambda a: 1 / np.sqrt(a * a + 1), (-3.0, 3.0)),
    "acosh": (lambda a: 1 / np.sqrt(a * a - 1), (1.1, 4.0)),
    "atanh": (lambda a: 1 / (1 - a * a), (-0.9, 0.9)),
    "abs": (np.sign, (-3.0, 3.0)),
    "fabs": (np.sign, (-3.0, 3.0)),
    "degrees": (lambda a: np.full_like(a, 180 / np.pi), (-3.0, 3.0)),
    "radians": (lambda a: np.full_like(a, np.pi / 180), (-3.0, 3.0)),
    "erf": (lambda a: 2 / np.sqrt(np.pi) * np.exp(-a * a), (-2.0, 2.0)),
    "erfc": (lambda a: -2 / np.sqrt(np.pi) * np.exp(-a * a), (-2.0, 2.0)),
    "floor": (np.zeros_like, (-3.0, 3.0)),
}


def _ties(exprs: dict, varied: dict, symtable=None):
    params = Parameters()
    for name, value in varied.items():
        params.add(name, value=float(np.mean(value)))
    for name, text in exprs.items():
        params.add(name, expr=text)
    return TieSet(params, symtable)


def _grad(ties, varied: dict):
    """Gradients on a batch: values as (N, 1) columns, like the batch engine gives them."""
    names = list(varied)
    values = {k: np.asarray(v, float)[:, None] for k, v in varied.items()}
    ties.apply(values)
    scale = np.maximum(np.abs(np.column_stack([varied[n] for n in names])), 1e-12)
    return {k: g.reshape(N, len(names)) for k, g in ties.gradients(values, names, scale).items()}


def _fd(fn, varied: dict, name: str):
    """A 4th-order central difference of ``fn(**varied)`` by ``name`` (independent reference)."""
    v = np.asarray(varied[name], float)
    h = 1e-3 * np.maximum(np.abs(v), 1e-2)
    def at(shift):
        return fn(**{**varied, name: v + shift * h})
    return (8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * h)


@pytest.mark.parametrize("func", sorted(CLOSED))
def test_each_function_matches_its_closed_form(func):
    deriv, (lo, hi) = CLOSED[func]
    a = RNG.uniform(lo, hi, N)
    b = RNG.uniform(0.5, 2.0, N)
    ties = _ties({"q": f"b * {func}(a)"}, {"a": a, "b": b})
    g = _grad(ties, {"a": a, "b": b})["q"]
    np.testing.assert_allclose(g[:, 0], b * deriv(a), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g[:, 1], _np_func(func)(a), rtol=1e-12, atol=1e-14)


def _np_func(name):
    alias = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
             "acosh": "arccosh", "atanh": "arctanh"}
    return getattr(np, alias.get(name, name), None) or getattr(special, name)


COMPOSITE = {
    "a * exp(-b / c) + sqrt(a**2 + b**2) / c":
        lambda a, b, c: a * np.exp(-b / c) + np.sqrt(a**2 + b**2) / c,
    "a ** b - c ** 3 / (1 + a)": lambda a, b, c: a**b - c**3 / (1 + a),
    "pow(c, a) * hypot(a, b)": lambda a, b, c: c**a * np.hypot(a, b),
    "atan2(b, a) + arctan2(c, -b) - -a": lambda a, b, c: np.arctan2(b, a) + np.arctan2(c, -b) + a,
    "log(a * b) * cos(c) / (a - 3.5) + 2**c": (
        lambda a, b, c: np.log(a * b) * np.cos(c) / (a - 3.5) + 2**c),
    "+a * 6583.45 / 6562.8 * (1 + c)": lambda a, b, c: a * 6583.45 / 6562.8 * (1 + c),
}


@pytest.mark.parametrize("text", sorted(COMPOSITE))
def test_composite_expressions_match_central_differences(text):
    fn = COMPOSITE[text]
    varied = {"a": RNG.uniform(0.5, 2.0, N), "b": RNG.uniform(0.5, 2.0, N),
              "c": RNG.uniform(0.2, 1.5, N)}
    assert partial_derivatives(text, ["a", "b", "c"]) is not None  # symbolic, no fallback
    g = _grad(_ties({"q": text}, varied), varied)["q"]
    for j, name in enumerate(varied):
        np.testing.assert_allclose(g[:, j], _fd(fn, varied, name), rtol=1e-7, atol=1e-9)


def test_ties_of_ties_use_the_chain_rule():
    """z tied to a varied redshift, centres tied to z, a width tied to a centre."""
    varied = {"z": RNG.uniform(0.01, 0.05, N), "s": RNG.uniform(1.0, 3.0, N)}
    exprs = {"c1": "6562.8 * (1 + z)", "c2": "c1 * 6583.45 / 6562.8",
             "w2": "s * c2 / c1 + c2**2 * 1e-6"}
    g = _grad(_ties(exprs, varied), varied)
    z = varied["z"]
    c2 = 6583.45 * (1 + z)
    np.testing.assert_allclose(g["c1"], np.column_stack([np.full(N, 6562.8), np.zeros(N)]))
    np.testing.assert_allclose(g["c2"][:, 0], 6583.45, rtol=1e-14)
    np.testing.assert_allclose(g["w2"][:, 0], 2 * c2 * 6583.45 * 1e-6, rtol=1e-10)
    np.testing.assert_allclose(g["w2"][:, 1], 6583.45 / 6562.8, rtol=1e-12)


FALLBACK = {
    "a if a > b else b**2": lambda a, b, c: np.where(a > b, a, b**2),
    "gamma(a) * c": lambda a, b, c: special.gamma(a) * c,
    "max(a, b) + c": lambda a, b, c: np.maximum(a, b) + c,
    "a * (b > 1) + c": lambda a, b, c: a * (b > 1) + c,
}


@pytest.mark.parametrize("text", sorted(FALLBACK))
def test_expressions_without_a_derivative_fall_back_to_differences(text):
    fn = FALLBACK[text]
    assert partial_derivatives(text, ["a", "b", "c"]) is None
    varied = {"a": RNG.uniform(0.5, 2.0, N), "b": RNG.uniform(0.5, 2.0, N),
              "c": RNG.uniform(0.2, 1.5, N)}
    # keep away from the kinks so that a difference is a derivative
    varied["b"] = np.where(np.abs(varied["a"] - varied["b"]) < 0.05, varied["b"] + 0.2, varied["b"])
    varied["b"] = np.where(np.abs(varied["b"] - 1) < 0.05, 1.2, varied["b"])
    ties = _ties({"q": text, "r": "q * a + 1"}, varied)
    g = _grad(ties, varied)
    for j, name in enumerate(varied):
        dq = _fd(fn, varied, name)
        np.testing.assert_allclose(g["q"][:, j], dq, rtol=1e-6, atol=1e-8)
        dr = dq * varied["a"] + (fn(**varied) if name == "a" else 0.0)
        np.testing.assert_allclose(g["r"][:, j], dr, rtol=1e-6, atol=1e-8)


def test_user_functions_and_constants():
    """A user function that shadows ``exp`` is differenced, never given exp's derivative."""
    varied = {"a": RNG.uniform(0.5, 2.0, N)}
    symtable = {"exp": lambda v: v**3, "k": 2.5}
    g = _grad(_ties({"q": "k * exp(a)"}, varied, symtable), varied)["q"]
    np.testing.assert_allclose(g[:, 0], 2.5 * 3 * varied["a"] ** 2, rtol=1e-7)
    g = _grad(_ties({"q": "k * sin(a)"}, varied, symtable), varied)["q"]
    np.testing.assert_allclose(g[:, 0], 2.5 * np.cos(varied["a"]), rtol=1e-13)


def test_one_fit_with_float_values():
    """The core's path: floats in, a (k,) gradient out; fixed parameters give no column."""
    params = Parameters()
    params.add("a", value=1.5)
    params.add("f", value=3.0, vary=False)
    params.add("b", value=0.5)
    params.add("q", expr="a * f + b**2")
    ties = TieSet(params)
    values = ties.apply(params.valuesdict())
    g = ties.gradients(values, ["a", "b"], np.array([1.5, 0.5]))
    assert g["q"].shape == (2,)
    np.testing.assert_allclose(g["q"], [3.0, 1.0], rtol=1e-14)
    assert ties.gradients(values, [], np.zeros(0))["q"].shape == (0,)


def test_derivative_text_is_simplified():
    d = partial_derivatives("3 * a + b", ["a", "b", "z"])
    assert d == {"a": "3", "b": "1.0", "z": "0.0"}
