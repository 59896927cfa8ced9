"""Operators, functions and semantics of constraint expressions (reference section 4).

Every function and operator of section 4.2 is evaluated by batchfit and
compared with Python's own ``math`` / operator result.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from batchfit import Minimizer, Parameters, minimize
from batchfit.core.expr import DEFAULT_FUNCTIONS, TieSet, compile_expression
from batchfit.errors import ExpressionError

A, B = 0.3, -0.8
NS = {"a": A, "b": B}

FUNCTION_CASES = [
    ("abs(b)", abs(B)),
    ("acos(a)", math.acos(A)),
    ("acosh(1.7)", math.acosh(1.7)),
    ("asin(a)", math.asin(A)),
    ("asinh(b)", math.asinh(B)),
    ("atan(b)", math.atan(B)),
    ("atan2(a, b)", math.atan2(A, B)),
    ("atanh(a)", math.atanh(A)),
    ("ceil(2.3)", math.ceil(2.3)),
    ("ceil(b)", math.ceil(B)),
    ("copysign(2, b)", math.copysign(2, B)),
    ("cos(b)", math.cos(B)),
    ("cosh(b)", math.cosh(B)),
    ("degrees(a)", math.degrees(A)),
    ("exp(b)", math.exp(B)),
    ("fabs(b)", math.fabs(B)),
    ("factorial(5)", math.factorial(5)),
    ("factorial(0)", math.factorial(0)),
    ("floor(b)", math.floor(B)),
    ("fmod(7.5, 2)", math.fmod(7.5, 2)),
    ("fmod(-7.5, 2)", math.fmod(-7.5, 2)),
    ("fsum((0.1, 0.2, 0.3))", math.fsum((0.1, 0.2, 0.3))),
    ("fsum(0.1, 0.2, 0.3)", math.fsum((0.1, 0.2, 0.3))),
    ("hypot(3, 4)", math.hypot(3, 4)),
    ("isinf(1e400)", math.isinf(1e400)),
    ("isinf(a)", math.isinf(A)),
    ("isnan(a)", math.isnan(A)),
    ("ldexp(0.75, 3)", math.ldexp(0.75, 3)),
    ("log(a)", math.log(A)),
    ("log10(a)", math.log10(A)),
    ("log1p(1e-10)", math.log1p(1e-10)),
    ("max(a, b, 2)", max(A, B, 2)),
    ("max(a, b)", max(A, B)),
    ("min(a, b, 2)", min(A, B, 2)),
    ("pow(2, 0.5)", math.pow(2, 0.5)),
    ("radians(30)", math.radians(30)),
    ("sin(b)", math.sin(B)),
    ("sinh(b)", math.sinh(B)),
    ("sqrt(a)", math.sqrt(A)),
    ("tan(b)", math.tan(B)),
    ("tanh(b)", math.tanh(B)),
    ("trunc(-2.7)", math.trunc(-2.7)),
    ("pi", math.pi),
    ("e", math.e),
    ("2*pi*a", 2 * math.pi * A),
]

TUPLE_CASES = [
    ("frexp(8.0)", math.frexp(8.0)),
    ("modf(2.5)", math.modf(2.5)),
]

OPERATOR_CASES = [
    ("a + b", A + B),
    ("a - b", A - B),
    ("a * b", A * B),
    ("a / b", A / B),
    ("a ** 2", A**2),
    ("2 ** -1", 2**-1),
    ("-a", -A),
    ("+b", +B),
    ("7 & 3", 7 & 3),
    ("4 | 1", 4 | 1),
    ("6 ^ 3", 6 ^ 3),
    ("1 << 4", 1 << 4),
    ("256 >> 2", 256 >> 2),
    ("7.5 % 2", 7.5 % 2),
    ("-7.5 % 2", -7.5 % 2),
    ("7 // 2", 7 // 2),
    ("~5", ~5),
    ("a == 0.3", A == 0.3),
    ("a != b", A != B),
    ("a > b", A > B),
    ("a >= 0.3", A >= 0.3),
    ("a < b", A < B),
    ("a <= b", A <= B),
    ("b < a < 1", B < A < 1),
    ("b < 1 < a", B < 1 < A),
    ("not a", not A),
    ("not 0", not 0),
    ("(a > 0) and (b > 0)", (A > 0) and (B > 0)),
    ("(a > 0) or (b > 0)", (A > 0) or (B > 0)),
    ("a if a > b else b", A if A > B else B),
    ("a if a < b else b", A if A < B else B),
    ("1 if a > 0 else (2 if b > 0 else 3)", 1),
]


@pytest.mark.parametrize(("text", "expected"), FUNCTION_CASES + OPERATOR_CASES,
                         ids=[c[0] for c in FUNCTION_CASES + OPERATOR_CASES])
def test_scalar_against_python(text, expected):
    value = compile_expression(text)(NS)
    assert float(value) == pytest.approx(float(expected), rel=1e-14, abs=1e-300)


@pytest.mark.parametrize(("text", "expected"), TUPLE_CASES, ids=[c[0] for c in TUPLE_CASES])
def test_tuple_valued_functions_are_refused_with_a_reason(text, expected):
    """frexp and modf return two values; with no subscripts an expression cannot use them."""
    with pytest.raises(ExpressionError, match="returns two values"):
        compile_expression(text)


@pytest.mark.parametrize(("text", "why"), [
    ("a is a", "'is' is not allowed"), ("a is not b", "'is not' is not allowed"),
    ("2 in (1, 2, 3)", "'in' is not allowed"), ("4 not in (a, b)", "'not in' is not allowed"),
])
def test_identity_and_membership_are_refused(text, why):
    with pytest.raises(ExpressionError, match=why):
        compile_expression(text)


def test_every_documented_function_is_available():
    documented = ("abs acos acosh asin asinh atan atan2 atanh ceil copysign cos cosh degrees "
                  "exp fabs factorial floor fmod frexp fsum hypot isinf isnan ldexp log log10 "
                  "log1p max min modf pow radians sin sinh sqrt tan tanh trunc").split()
    missing = [f for f in documented if f not in DEFAULT_FUNCTIONS]
    assert not missing
    tested = {c[0].split("(")[0] for c in FUNCTION_CASES + TUPLE_CASES}
    assert set(documented) <= tested


def test_names_of_expression():
    ex = compile_expression("amp * exp(-x / tau) + c * pi - e")
    assert ex.names == frozenset({"amp", "x", "tau", "c"})


def test_array_evaluation_matches_numpy():
    a = np.arange(3.0)
    out = compile_expression("2*a + sin(a) - a**2")({"a": a})
    np.testing.assert_allclose(out, 2 * a + np.sin(a) - a**2, rtol=1e-15)


def test_array_broadcasting():
    a = np.arange(3.0).reshape(3, 1)
    x = np.linspace(0, 1, 5)
    out = compile_expression("a * exp(-x) + max(a, 1)")({"a": a, "x": x})
    np.testing.assert_allclose(out, a * np.exp(-x) + np.maximum(a, 1))
    assert out.shape == (3, 5)


def test_conditional_on_arrays_is_elementwise():
    a = np.arange(3.0)
    out = compile_expression("a if a > 1 else -a")({"a": a})
    np.testing.assert_array_equal(out, np.where(a > 1, a, -a))


def test_boolean_ops_on_arrays_are_elementwise():
    a = np.arange(4.0)
    out = compile_expression("(a > 0) and (a < 3)")({"a": a})
    np.testing.assert_array_equal(np.asarray(out, bool), (a > 0) & (a < 3))


@pytest.mark.parametrize("text", ["1 / a", "-1 / a", "a / a", "log(a)", "1 // a", "2 % a"])
def test_scalar_and_array_evaluation_agree_at_singularities(text):
    """No exception, and a float gives what a one-element array gives (core == batch)."""
    ex = compile_expression(text)
    scalar = float(ex({"a": 0.0}))
    array = np.asarray(ex({"a": np.array([0.0])}), dtype=float)[0]
    assert scalar == array or (math.isnan(scalar) and math.isnan(array)), (scalar, array)


def test_user_function_via_functions_argument():
    ex = compile_expression("myfunc(a, b) * 2", {"myfunc": lambda x, y: x + y})
    assert ex(NS) == pytest.approx(2 * (A + B))


def test_unknown_function_is_rejected():
    with pytest.raises(ExpressionError, match="nosuchfunc"):
        compile_expression("nosuchfunc(a)")


def test_user_function_from_minimizer_symtable():
    params = Parameters()
    params.add("a", value=1.0)
    params.add("t", expr="twice(a) + 1")
    fitter = Minimizer(lambda p: np.array([p["a"].value - 3.0, p["t"].value * 0]), params)
    fitter.asteval.symtable["twice"] = lambda v: 2 * v
    fitter.leastsq()
    assert fitter.params["t"].value == pytest.approx(2 * fitter.params["a"].value + 1)


# ---- dependency order and errors ---------------------------------------------

def test_expression_referring_to_later_expression():
    params = Parameters()
    params.add("a", value=2.0)
    params.add("c", expr="b * 10")    # b is defined after c, and is itself tied
    params.add("b", expr="a + 1")
    ties = TieSet(params)
    assert ties.order.index("b") < ties.order.index("c")
    values = ties.apply({"a": np.array([2.0, 5.0])})
    np.testing.assert_allclose(values["b"], [3.0, 6.0])
    np.testing.assert_allclose(values["c"], [30.0, 60.0])


def test_dependency_order_holds_through_a_fit():
    params = Parameters()
    params.add("c", expr="b * 10")
    params.add("b", expr="a + 1")
    params.add("a", value=0.0)

    def resid(p):
        return np.array([p["a"].value - 4.0, p["c"].value - 10 * (p["a"].value + 1)])

    out = minimize(resid, params)
    assert params["a"].value == pytest.approx(4.0)
    assert params["b"].value == pytest.approx(5.0)
    assert params["c"].value == pytest.approx(50.0)
    assert out.chisqr == pytest.approx(0.0, abs=1e-16)


def _never_called(params):
    raise AssertionError("the residual must not run when the expressions are invalid")


def _setup(params):
    """Everything up to the first residual call; errors must surface here."""
    minimize(_never_called, params)


def test_cycle_is_reported_with_parameters_and_expressions():
    params = Parameters()
    params.add("x0", value=1.0)
    params.add("a", expr="b + x0")
    params.add("b", expr="2 * a")
    with pytest.raises(ExpressionError) as info:
        _setup(params)
    message = str(info.value)
    assert "cycle" in message.lower()
    assert "'a'" in message or "'b'" in message
    assert "b + x0" in message or "2 * a" in message


def test_self_reference_is_a_cycle():
    params = Parameters()
    params.add("a", value=1.0)
    with pytest.raises(ExpressionError, match="a"):
        params.add("s", expr="s + a")
        _setup(params)


def test_unknown_name_names_parameter_and_expression():
    params = Parameters()
    params.add("a", value=1.0)
    params.add("tied", expr="a + nosuch")
    with pytest.raises(ExpressionError) as info:
        _setup(params)
    message = str(info.value)
    assert "nosuch" in message and "tied" in message and "a + nosuch" in message


def test_syntax_error_names_parameter_and_expression():
    params = Parameters()
    params.add("a", value=1.0)
    with pytest.raises(ExpressionError) as info:
        params.add("broken", expr="a * (2 +")
        _setup(params)
    message = str(info.value)
    assert "broken" in message and "a * (2 +" in message


def test_errors_raised_by_prepare_fit_before_any_residual_call():
    params = Parameters()
    params.add("a", value=1.0)
    params.add("tied", expr="a + nosuch")
    fitter = Minimizer(_never_called, params)
    with pytest.raises(ExpressionError):
        fitter.prepare_fit()


def test_tied_value_updated_every_step():
    """The residual always sees tied values consistent with the varied ones."""
    seen = []
    params = Parameters()
    params.add("a", value=0.5)
    params.add("b", expr="3 * a - 1")

    def resid(p):
        seen.append((p["a"].value, p["b"].value))
        return np.array([p["a"].value - 2.0, 0.1 * (p["b"].value - 5.0)])

    minimize(resid, params)
    assert len(seen) > 2
    for a, b in seen:
        assert b == pytest.approx(3 * a - 1, rel=1e-12, abs=1e-12)
