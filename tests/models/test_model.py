"""Model, CompositeModel, make_params, references, pickling and the registry."""

import copy
import functools
import json
import operator
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import batchfit.models as models
from batchfit.errors import ModelError
from batchfit.models import (
    CompositeModel,
    Model,
    constant,
    from_reference,
    gaussian,
    get,
    linear,
    lorentzian,
    polynomial,
    pseudo_voigt,
    voigt,
)
from batchfit.models import lineshapes as ls

pytestmark = pytest.mark.filterwarnings("error")

X = np.linspace(-5.0, 5.0, 51)
VALUES = {"p1_amplitude": 2.0, "p1_center": 0.5, "p1_sigma": 0.8,
          "p2_amplitude": 1.0, "p2_center": -1.0, "p2_sigma": 0.3,
          "bg_slope": 0.1, "bg_intercept": 1.0}  # fmt: skip


def _composite():
    return gaussian(prefix="p1_") + lorentzian(prefix="p2_") + linear(prefix="bg_")


def test_prefixed_names_and_sum():
    model = _composite()
    assert isinstance(model, CompositeModel) and isinstance(model, Model)
    assert model.param_names == list(VALUES)
    expected = (ls.gaussian(X, 2.0, 0.5, 0.8) + ls.lorentzian(X, 1.0, -1.0, 0.3)
                + 0.1 * X + 1.0)  # fmt: skip
    np.testing.assert_allclose(model(X, **VALUES), expected, rtol=1e-14)


def test_composite_broadcasts_rows():
    model = _composite()
    values = dict(VALUES, p1_center=np.array([[0.0], [1.0], [2.0]]))
    out = model(X, **values)
    assert out.shape == (3, X.size)
    np.testing.assert_allclose(out[2], model(X, **dict(VALUES, p1_center=2.0)))


def test_constant_broadcasts_to_rows():
    out = constant()(X, c=np.array([[1.0], [2.0]]))
    assert out.shape == (2, X.size)
    assert (out[1] == 2.0).all()


def test_composites_flatten_and_keep_order():
    model = gaussian("p1_") + (lorentzian("p2_") + linear("bg_"))
    assert [c.name for c in model.components] == [c.name for c in _composite().components]


def test_clashing_names_raise():
    with pytest.raises(ModelError, match="'amplitude' is used by both.*different prefixes"):
        gaussian() + lorentzian()
    with pytest.raises(ModelError, match="name .p_amplitude. is used by both gaussian"):
        _ = gaussian("p_") + linear() + gaussian("p_")


def test_add_rejects_non_models():
    with pytest.raises(TypeError):
        _ = gaussian() + 1.0


def test_bad_prefix_raises():
    with pytest.raises(ModelError, match="prefix '1x' is not usable"):
        gaussian(prefix="1x")


def test_missing_value_raises_and_extra_names_are_ignored():
    model = gaussian("p1_")
    with pytest.raises(ModelError, match=r"no value given for parameter\(s\) \['p1_sigma'\]"):
        model(X, p1_amplitude=1.0, p1_center=0.0)
    out = model(X, p1_amplitude=1.0, p1_center=0.0, p1_sigma=1.0, shared=3.0)
    np.testing.assert_allclose(out, ls.gaussian(X, 1.0, 0.0, 1.0))


def test_jacobian_of_composite_is_union_of_parts():
    model = _composite()
    jac = model.jacobian(X, **VALUES)
    assert list(jac) == model.param_names
    np.testing.assert_allclose(jac["bg_slope"], X)
    np.testing.assert_allclose(jac["p1_sigma"], ls.d_gaussian(X, 2.0, 0.5, 0.8)[2])


def test_make_params_defaults_and_hints():
    model = gaussian("p1_") + pseudo_voigt("pv_")
    params = model.make_params(p1_center=2, p1_sigma={"value": 0.5, "min": 0.0},
                               pv_amplitude={"vary": False})
    assert list(params) == model.param_names
    assert params["p1_center"].value == 2.0
    assert params["p1_sigma"].value == 0.5 and params["p1_sigma"].min == 0.0
    assert params["p1_amplitude"].value == 1.0
    assert params["pv_amplitude"].vary is False
    assert (params["pv_fraction"].min, params["pv_fraction"].max) == (0.0, 1.0)


def test_make_params_errors():
    model = gaussian("p1_")
    with pytest.raises(ModelError, match="unknown parameter 'p1_centre'; did you mean 'p1_center'"):
        model.make_params(p1_centre=1.0)
    with pytest.raises(ModelError, match=r"unknown key\(s\) \['mn'\]"):
        model.make_params(p1_center={"mn": 0.0})
    with pytest.raises(ModelError, match="neither a number nor a dict"):
        model.make_params(p1_center="zero")


def test_eval_with_parameters_matches_call():
    model = _composite()
    params = model.make_params(**VALUES)
    np.testing.assert_allclose(model.eval(params, X), model(X, **VALUES))


@pytest.mark.parametrize(
    "model",
    [_composite(), voigt("v_"), polynomial(3, prefix="bg_"), get("step"),
     gaussian() + polynomial(degree=0, prefix="b_")],
    ids=lambda m: m.name,
)
def test_reference_round_trip_json_and_pickle(model):
    ref = json.loads(json.dumps(model.reference))
    rebuilt = from_reference(ref)
    values = {n: 0.3 + 0.1 * i for i, n in enumerate(model.param_names)}
    np.testing.assert_array_equal(rebuilt(X, **values), model(X, **values))
    assert rebuilt == model and hash(rebuilt) == hash(model)
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert type(other) is type(model)
        np.testing.assert_array_equal(other(X, **values), model(X, **values))
        assert other.guess is not None


def test_reference_format():
    assert _composite().reference == {"components": [
        {"type": "gaussian", "prefix": "p1_"}, {"type": "lorentzian", "prefix": "p2_"},
        {"type": "linear", "prefix": "bg_"}]}  # fmt: skip
    assert polynomial(2).reference == {"components": [
        {"type": "polynomial", "prefix": "", "degree": 2}]}  # fmt: skip


def test_repr_and_name():
    assert repr(gaussian("p1_")) == "<Model gaussian(prefix='p1_')>"
    assert repr(polynomial(2)) == "<Model polynomial(prefix='', degree=2)>"
    assert "gaussian(prefix='p1_') + lorentzian(prefix='p2_')" in repr(_composite())


@pytest.mark.parametrize(
    ("ref", "match"),
    [
        ({"components": [{"type": "gausian"}]}, "unknown model type 'gausian'; did you mean "
                                                 "'gaussian'"),
        ({"components": []}, "non-empty list"),
        ({"components": [{"prefix": "a_"}]}, "needs 'type'"),
        ({"components": ["gaussian"]}, "is not a mapping"),
        ({"model": "gaussian"}, "exactly one of 'components', 'expression', 'function' or 'op'"),
        ({"components": [{"type": "gaussian", "degree": 2}]}, "takes no option"),
        ([1, 2], "is not a mapping"),
    ],
)
def test_bad_references(ref, match):
    with pytest.raises(ModelError, match=match):
        from_reference(ref)


def test_get_and_factories_agree():
    for name, factory in models.FACTORIES.items():
        assert get(name, prefix="q_") == factory(prefix="q_")
    with pytest.raises(ModelError, match="valid: constant, damped_sine"):
        get("nonsense")


@pytest.mark.parametrize("degree", [-1, 11, 2.5, "3"])
def test_polynomial_degree_errors(degree):
    with pytest.raises(ModelError, match="give an integer from 0 to 10"):
        polynomial(degree)


def test_polynomial_names():
    assert polynomial(3, prefix="bg_").param_names == ["bg_c0", "bg_c1", "bg_c2", "bg_c3"]


def test_public_api():
    assert set(models.__all__) >= {
        "gaussian", "lorentzian", "voigt", "pseudo_voigt", "exponential", "damped_sine",
        "linear", "quadratic", "polynomial", "constant", "step", "Model", "CompositeModel",
        "get", "from_reference", "function_model", "expression_model"}  # fmt: skip


def test_bad_parameter_values_raise_clear_errors():
    model = gaussian()
    with pytest.raises(ModelError, match=r"'center' has shape \(3,\); .* shape \(n, 1\)"):
        model(X, amplitude=1.0, center=np.zeros(3), sigma=1.0)
    with pytest.raises(ModelError, match="'sigma' = None is not a number"):
        model(X, amplitude=1.0, center=0.0, sigma=None)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(sorted(models.FACTORIES)), min_size=1, max_size=4),
       st.integers(0, 4))
def test_any_builtin_composite_round_trips(names, degree):
    parts = [get(n, prefix=f"m{i}_", **({"degree": degree} if n == "polynomial" else {}))
             for i, n in enumerate(names)]
    model = functools.reduce(operator.add, parts)
    rebuilt = from_reference(json.loads(json.dumps(model.reference)))
    assert rebuilt.param_names == model.param_names
    values = {n: 0.5 + 0.01 * i for i, n in enumerate(model.param_names)}
    np.testing.assert_array_equal(rebuilt(X, **values), model(X, **values))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model))(X, **values),
                                  model(X, **values))
