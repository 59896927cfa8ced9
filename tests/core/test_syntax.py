"""Expressions are closed over float arrays (issue 10, class 5).

Specific refusals, then a property test over generated expressions: each
either evaluates on float arrays to a float result within a memory bound and
without touching its inputs (the watchdog turns a hang into a failure; it
measures nothing), or is refused with a message naming the parameter.
"""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchfit import Parameters
from batchfit.core.expr import MAX_DEPTH, TieSet, compile_expression
from batchfit.core.functions import ARITY
from batchfit.errors import ExpressionError

from .test_expr_safety import watchdog

WHAT = "parameter 'tied'"
A = np.array([[0.5], [-1.5], [0.0], [3.0]])
B = np.array([[2.0], [0.25], [-7.0], [1e300]])
X = np.linspace(-2.0, 5.0, 6)
MEMORY_BOUND = 2**20  # bytes; the inputs and a (4, 6) result are a few hundred
EXAMPLES = int(os.environ.get("BATCHFIT_HYPOTHESIS_EXAMPLES", "400"))


def tied(expr, **values):
    """Parameters a, b and 'tied' = expr, then the tie applied to ``values``."""
    params = Parameters()
    params.add("a", value=1.0)
    params.add("b", value=2.0)
    params.add("tied", expr=expr)
    return TieSet(params).apply(dict(values))


# ---- each kind of non-float value is refused or made a float ----------------

@pytest.mark.parametrize(("text", "expected"), [
    ("7 // 2", 3.0), ("2 ** 100", 2.0**100), ("1" + "0" * 400, np.inf),
    ("True + True", 2.0), ("(a > 0) + (a > 0)", 2.0), ("not a", 0.0), ("~5", -6.0),
    ("isnan(a)", 0.0), ("a and b", 1.0),
])
def test_every_value_is_a_float(text, expected):
    out = compile_expression(text)({"a": 1.0, "b": 2.0})
    assert type(out) is float and out == expected


def test_booleans_behave_as_floats_on_arrays_and_scalars():
    """-(a > 0) is -1.0 or 0.0 on both paths (numpy refuses minus on a bool array)."""
    ex = compile_expression("-(a > 0) - (b > 0)")
    arrays = ex({"a": A, "b": B})
    scalars = [ex({"a": float(a), "b": float(b)}) for a, b in zip(A[:, 0], B[:, 0], strict=True)]
    assert arrays.dtype == np.float64
    np.testing.assert_array_equal(arrays[:, 0], scalars)
    np.testing.assert_array_equal(arrays[:, 0], -1.0 * (A[:, 0] > 0) - 1.0 * (B[:, 0] > 0))


@pytest.mark.parametrize(("text", "why"), [
    ("(a, b)", "Tuple is not allowed.*containers"),
    ("[a]", "List is not allowed.*containers"),
    ("max(a, b=1)", r"max\(\) takes no keyword arguments"),
    ("abs(a, b)", r"abs\(\) takes 1 argument\(s\), got 2"),
    ("exp(a, b)", r"exp\(\) takes 1 argument\(s\), got 2"),
    ("atan2(a)", r"atan2\(\) takes 2 argument\(s\), got 1"),
    ("where(a, b)", r"where\(\) takes 3 argument\(s\), got 2"),
    ("max()", r"max\(\) takes at least 1 argument"),
    ("1j * a", "only numbers"),
])
def test_refused_with_the_parameter_named(text, why):
    with pytest.raises(ExpressionError, match=why) as info:
        tied(text, a=A, b=B)
    assert str(info.value).startswith(WHAT)


def test_a_call_cannot_write_into_the_engines_arrays():
    """abs(a, b) would be numpy's abs(a, out=b): refused, and b is untouched."""
    b = B.copy()
    with pytest.raises(ExpressionError):
        tied("abs(a, b)", a=A, b=b)
    np.testing.assert_array_equal(b, B)


def test_a_user_function_gets_copies():
    """A user function that writes into its argument changes only its copy."""
    def scale_in_place(v):
        v *= 10.0
        return v

    a = A.copy()
    out = compile_expression("f(a) + a", {"f": scale_in_place})({"a": a})
    np.testing.assert_array_equal(a, A)
    np.testing.assert_array_equal(out, 11.0 * A)


def test_a_user_function_with_a_wrong_result_names_the_parameter():
    ex = compile_expression("f(a)", {"f": lambda v: "text"}, what=WHAT)
    with pytest.raises(ExpressionError, match="parameter 'tied'"):
        ex({"a": A})


def test_the_result_is_never_the_callers_array():
    values = tied("a", a=A, b=B)
    assert values["tied"] is not A
    np.testing.assert_array_equal(values["tied"], A)


def test_fsum_of_a_tuple_is_the_sum_of_its_items():
    values = tied("fsum((a, b, 1))", a=A, b=B)
    np.testing.assert_array_equal(values["tied"], A + B + 1.0)


def test_factorial_of_a_large_value_is_inf_at_once():
    with watchdog():
        assert compile_expression("factorial(a)")({"a": 1e9}) == np.inf


@pytest.mark.parametrize("text", [
    "-" * 1500 + "a",
    "-(" * 150 + "a" + ")" * 150,
    "+".join(["a"] * (MAX_DEPTH + 5)),
    "exp(" * 120 + "a" + ")" * 120,
])
def test_deep_nesting_is_refused_before_any_recursion(text):
    with pytest.raises(ExpressionError, match=f"nested more than {MAX_DEPTH} levels") as info:
        tied(text, a=A, b=B)
    assert str(info.value).startswith(WHAT)


def test_nesting_within_the_limit_evaluates():
    text = "-(" * 40 + "a" + ")" * 40
    np.testing.assert_array_equal(tied(text, a=A, b=B)["tied"], A)


def test_a_tie_that_does_not_broadcast_names_the_parameter():
    with pytest.raises(ExpressionError, match=r"parameter 'tied'.*cannot be evaluated"):
        tied("a + b", a=np.ones((4, 1)), b=np.ones((3, 1)))


# ---- property: every generated expression evaluates or is refused -----------

NAMES = ["a", "b", "x", "pi", "e", "inf", "nan", "True", "False", "nosuch", "_bf_pow", "open"]
BINOPS = ["+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&", "|", "^"]
COMPARE = ["<", "<=", ">", ">=", "==", "!=", "is", "in"]
FUNCTIONS = [*sorted(ARITY), "nosuch", "getattr", "open"]

leaves = st.one_of(
    st.sampled_from(NAMES),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["9**9**9", "1" + "0" * 400, "1e400", "0", "1j", "'s'"]),
)


def _binop(t):
    return f"({t[0]} {t[1]} {t[2]})"


def _compare(t):
    return "(" + t[0] + "".join(f" {op} {c}" for op, c in t[1]) + ")"


def _call(t):
    return f"{t[0]}({', '.join(t[1])}{', k=1' if t[2] else ''})"


def _composite(children):
    comparisons = st.lists(st.tuples(st.sampled_from(COMPARE), children), min_size=1, max_size=3)
    return st.one_of(
        st.tuples(children, st.sampled_from(BINOPS), children).map(_binop),
        st.tuples(st.sampled_from(["-", "+", "~", "not "]), children).map("({0[0]}{0[1]})".format),
        st.tuples(children, comparisons).map(_compare),
        st.tuples(children, st.sampled_from(["and", "or"]), children).map(_binop),
        st.tuples(children, children, children).map("({0[0]} if {0[1]} else {0[2]})".format),
        st.tuples(st.sampled_from(FUNCTIONS), st.lists(children, max_size=4),
                  st.booleans()).map(_call),
        st.lists(children, max_size=3).map(lambda items: "(" + ", ".join(items) + ",)"),
    )


nested = st.tuples(st.sampled_from(["-", "exp(", "(", "not "]),
                   st.integers(1, 400)).map(
    lambda t: t[0] * t[1] + "a" + (")" * t[1] if t[0].endswith("(") else ""))
expressions = st.one_of(st.recursive(leaves, _composite, max_leaves=25), nested)


@given(expressions)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_expression_evaluates_on_float_arrays_or_is_refused(text):
    inputs = {"a": A.copy(), "b": B.copy(), "x": X.copy()}
    with watchdog():
        try:
            ex = compile_expression(text, what=WHAT)
        except ExpressionError as exc:
            assert str(exc).startswith(WHAT), exc
            return
        if ex.names - set(inputs):  # an unknown name: TieSet refuses it, evaluation too
            with pytest.raises(ExpressionError, match=f"^{WHAT}.*needs a value"):
                ex(inputs)
            return
        tracemalloc.start()
        try:
            out = ex(inputs)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        scalar = ex({"a": float(A[1, 0]), "b": float(B[1, 0]), "x": float(X[2])})
    assert peak < MEMORY_BOUND, peak
    assert type(out) is float or (isinstance(out, np.ndarray) and out.dtype == np.float64)
    assert type(scalar) is float
    full = np.broadcast_to(out, (4, 6))  # raises if the shape is not the inputs' broadcast
    assert all(out is not v for v in inputs.values())
    for name, original in (("a", A), ("b", B), ("x", X)):
        np.testing.assert_array_equal(inputs[name], original)
    # the core (floats) and the batch (arrays) give the same number
    np.testing.assert_array_equal(np.float64(scalar), full[1, 2])
