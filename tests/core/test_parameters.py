"""Parameter and Parameters: validation, copies, serialization, bounds transform."""

from __future__ import annotations

import copy
import json
import keyword
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchfit import Parameter, Parameters, minimize
from batchfit.core import bounds
from batchfit.errors import ParameterError

BAD_NAMES = ["1abc", "a-b", "a b", "", "a.b", "for", "class", "lambda", "None", "True",
             "import", "x$", "café-1"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_rejected_by_add(name):
    with pytest.raises(ParameterError):
        Parameters().add(name, value=1.0)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_rejected_by_setitem(name):
    params = Parameters()
    with pytest.raises(ParameterError):
        params[name] = Parameter(value=1.0)


@pytest.mark.parametrize("name", [k for k in keyword.kwlist])
def test_every_keyword_rejected(name):
    with pytest.raises(ParameterError, match=name):
        Parameters().add(name, value=1.0)


@pytest.mark.parametrize("name", ["a", "_a", "amp_1", "p1_center", "A", "x0"])
def test_good_names_accepted(name):
    params = Parameters()
    params.add(name, value=1.0)
    assert params[name].name == name


def test_only_parameters_as_values():
    params = Parameters()
    with pytest.raises((ParameterError, TypeError)):
        params["a"] = 1.0


@pytest.mark.parametrize("field", ["value", "min", "max"])
@pytest.mark.parametrize("bad", ["abc", [1.0, 2.0], {"a": 1}, object()])
def test_non_numeric_values_rejected(field, bad):
    with pytest.raises(ParameterError, match="p"):
        Parameters().add("p", **{field: bad})


def test_numeric_strings_and_numpy_scalars_are_numbers():
    params = Parameters()
    params.add("a", value=np.float32(1.5), min=np.int64(0))
    assert params["a"].value == 1.5 and params["a"].min == 0.0


def test_min_above_max_rejected():
    with pytest.raises(ParameterError, match="min"):
        Parameters().add("p", value=1.0, min=2.0, max=1.0)


def test_min_above_max_rejected_when_edited_later():
    params = Parameters()
    params.add("p", value=1.0, min=0.0, max=2.0)
    params["p"].min = 3.0
    with pytest.raises(ParameterError, match="p"):
        minimize(lambda p: np.array([p["p"].value, 1.0]), params)


@pytest.mark.parametrize(("value", "lo", "hi", "expected"),
                         [(5.0, 0.0, 1.0, 1.0), (-5.0, 0.0, 1.0, 0.0),
                          (-5.0, 0.0, None, 0.0), (5.0, None, 2.0, 2.0)])
def test_value_outside_bounds_starts_at_bound(value, lo, hi, expected):
    params = Parameters()
    params.add("p", value=value, min=lo, max=hi)
    params.add("q", value=1.0)
    first = []

    def resid(p):
        first.append(p["p"].value)
        return np.array([p["p"].value - 0.5, p["q"].value - 2.0, 0.0])

    minimize(resid, params)
    assert first[0] == pytest.approx(expected, abs=1e-12)
    lo_ = -np.inf if lo is None else lo
    hi_ = np.inf if hi is None else hi
    assert lo_ <= params["p"].value <= hi_


def fitted_params():
    params = Parameters()
    params.add("amp", value=3.0, min=0.0)
    params.add("cen", value=0.2, min=-1.0, max=1.0)
    params.add("wid", value=0.5, max=5.0)
    params.add("fixed", value=7.0, vary=False)
    params.add("half", expr="amp / 2")
    x = np.linspace(-3, 3, 61)
    y = 2.0 * np.exp(-(x - 0.1) ** 2 / (2 * 0.6**2)) + np.random.default_rng(0).normal(0, .01,
                                                                                     x.size)

    def resid(p):
        v = p.valuesdict()
        return v["amp"] * np.exp(-(x - v["cen"]) ** 2 / (2 * v["wid"] ** 2)) - y

    minimize(resid, params)
    return params


ATTRS = ("name", "value", "vary", "min", "max", "expr", "stderr", "correl", "init_value")


def assert_same_params(a, b, attrs=ATTRS):
    assert list(a) == list(b)
    for name in a:
        for attr in attrs:
            assert getattr(a[name], attr) == getattr(b[name], attr), (name, attr)


def test_pickle_round_trip():
    params = fitted_params()
    assert_same_params(params, pickle.loads(pickle.dumps(params)))


def test_deepcopy_is_independent():
    params = fitted_params()
    clone = copy.deepcopy(params)
    assert_same_params(params, clone)
    clone["amp"].value = -1.0
    clone["cen"].min = -0.5
    assert params["amp"].value != -1.0 and params["cen"].min == -1.0


def test_json_round_trip_with_inf_bounds_and_expr():
    params = Parameters()
    params.add("a", value=1.5)                      # unbounded
    params.add("b", value=2.0, min=0.0)              # lower only
    params.add("c", value=-1.0, max=0.0, vary=False)
    params.add("d", expr="a + b")
    text = params.dumps()
    assert isinstance(text, str)
    restored = Parameters()
    assert restored.loads(text) is restored
    assert_same_params(params, restored, ("name", "value", "vary", "min", "max", "expr"))
    for name in "abcd":
        assert restored[name].lo == params[name].lo and restored[name].hi == params[name].hi


def test_json_is_strict_json():
    """The template is embedded in outputs: no bare NaN/Infinity tokens."""
    params = Parameters()
    params.add("a", value=1.5, min=0.0)            # max is unbounded
    params.add("b", expr="2*a")

    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")

    json.loads(params.dumps(), parse_constant=reject)


def test_json_round_trip_after_fit():
    params = fitted_params()
    restored = Parameters().loads(params.dumps())
    assert_same_params(params, restored, ("name", "value", "vary", "min", "max", "expr"))


def test_valuesdict():
    params = fitted_params()
    values = params.valuesdict()
    assert list(values) == list(params)
    assert all(isinstance(v, float) for v in values.values())
    assert values["half"] == pytest.approx(values["amp"] / 2)


# ---- property tests ---------------------------------------------------------

names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in ("pi", "e", "inf", "nan")
    and not s.startswith("__"))
finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


@st.composite
def parameter_specs(draw):
    lo = draw(st.one_of(st.none(), finite))
    hi = draw(st.one_of(st.none(), finite))
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    value = draw(finite)
    return {"value": value, "min": lo, "max": hi, "vary": draw(st.booleans())}


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(names, parameter_specs(), min_size=1, max_size=6), st.data())
def test_json_round_trip_property(specs, data):
    params = Parameters()
    for name, spec in specs.items():
        params.add(name, **spec)
    if len(specs) > 1:
        first = next(iter(specs))
        tied = data.draw(st.sampled_from(list(specs)[1:]))
        params[tied].expr = f"2*{first} + 1"
    restored = Parameters().loads(params.dumps())
    assert_same_params(params, restored, ("name", "vary", "min", "max", "expr"))
    for name in params:
        assert restored[name].value == params[name].value or (
            math.isnan(restored[name].value) and math.isnan(params[name].value))


@st.composite
def bounded_values(draw):
    kind = draw(st.sampled_from(["both", "lower", "upper", "none"]))
    lo, hi = -np.inf, np.inf
    if kind in ("both", "lower"):
        lo = draw(st.floats(-1e6, 1e6))
    if kind in ("both", "upper"):
        hi = draw(st.floats(-1e6, 1e6))
    if kind == "both":
        lo, hi = min(lo, hi), max(lo, hi)
        if hi - lo < 1e-6:
            hi = lo + 1.0
    span_lo = lo if np.isfinite(lo) else (hi - 1e6 if np.isfinite(hi) else -1e6)
    span_hi = hi if np.isfinite(hi) else span_lo + 2e6
    value = draw(st.floats(span_lo, span_hi))
    return value, lo, hi


@settings(max_examples=300, deadline=None)
@given(bounded_values())
def test_bounds_round_trip_property(case):
    value, lo, hi = case
    theta = bounds.to_internal(np.array([value]), np.array([lo]), np.array([hi]))
    back = bounds.to_external(theta, np.array([lo]), np.array([hi]))[0]
    scale = 1.0 + abs(value) + sum(abs(v) for v in (lo, hi) if np.isfinite(v))
    if np.isfinite(lo) and np.isfinite(hi):
        # sin() near the bounds loses about sqrt(eps) of the range
        tol = 1e-7 * (hi - lo) + 1e-12 * scale
    else:
        tol = 1e-9 * scale
    assert abs(back - value) <= tol
    assert lo <= back <= hi


@settings(max_examples=100, deadline=None)
@given(st.floats(-50, 50), st.sampled_from([(0.0, 2.0), (-1.0, np.inf), (-np.inf, 3.0),
                                            (-np.inf, np.inf)]))
def test_d_external_matches_finite_difference(theta, bnds):
    lo, hi = (np.array([v]) for v in bnds)
    t = np.array([theta])
    h = 1e-6
    fd = (bounds.to_external(t + h, lo, hi) - bounds.to_external(t - h, lo, hi)) / (2 * h)
    assert bounds.d_external(t, lo, hi)[0] == pytest.approx(fd[0], rel=1e-5, abs=1e-7)


def test_transform_is_the_documented_minuit_one():
    t = np.array([0.3])
    assert bounds.to_external(t, np.array([1.0]), np.array([3.0]))[0] == pytest.approx(
        1.0 + (np.sin(0.3) + 1) * 2.0 / 2)
    assert bounds.to_external(t, np.array([1.0]), np.array([np.inf]))[0] == pytest.approx(
        1.0 - 1 + np.sqrt(0.09 + 1))
    assert bounds.to_external(t, np.array([-np.inf]), np.array([3.0]))[0] == pytest.approx(
        3.0 + 1 - np.sqrt(0.09 + 1))
    assert bounds.to_external(t, np.array([-np.inf]), np.array([np.inf]))[0] == 0.3


@pytest.mark.parametrize("lo", [1e-10, 1e-20, 1e-300])
def test_lower_bound_never_crossed_near_a_tiny_bound(lo):
    """``Parameter(value=2, min=1.e-10)``: the fit must never see a value below min."""
    theta = np.array([0.0, 1e-12, 1e-9, 1e-6])
    ext = bounds.to_external(theta, np.full(4, lo), np.full(4, np.inf))
    assert np.all(ext >= lo), ext


def test_min_equal_max_pins_the_parameter():
    """A varied parameter with min == max is held at that value, as if fixed."""
    x = np.linspace(0, 10, 50)
    y = 3 * np.exp(-x / 2) + 1

    def residual(p):
        return y - (p["a"].value * np.exp(-x / p["t"].value) + p["c"].value)

    params = Parameters()
    params.add("a", 1)
    params.add("t", 1, min=2.0, max=2.0)
    params.add("c", 0)
    out = minimize(residual, params)
    assert out.success and out.nvarys == 2 and out.var_names == ["a", "c"]
    assert params["t"].value == 2.0 and params["t"].stderr == 0.0
    assert params["a"].value == pytest.approx(3.0) and params["c"].value == pytest.approx(1.0)
