"""Sums, products and differences of models: values, partials, references, fits."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from batchfit import fit_batch
from batchfit.core import minimize
from batchfit.errors import ModelError
from batchfit.models import (
    OperatorModel,
    constant,
    exponential,
    expression_model,
    from_reference,
    gaussian,
    linear,
    step,
)

X = np.linspace(-5.0, 5.0, 81)
VALUES = {"g_amplitude": 3.0, "g_center": 0.4, "g_sigma": 1.1, "s_amplitude": 2.0,
          "s_center": -0.5, "s_sigma": 0.7, "bg_slope": 0.1, "bg_intercept": 0.3}


def central_differences(model, values, h=1e-6):
    out = {}
    for name in model.param_names:
        up, down = dict(values), dict(values)
        step_ = h * max(1.0, abs(values[name]))
        up[name] += step_
        down[name] -= step_
        out[name] = (model(X, **up) - model(X, **down)) / (2 * step_)
    return out


MODELS = {
    "product": lambda: gaussian("g_") * step("s_"),
    "difference": lambda: gaussian("g_") - step("s_"),
    "sum of product": lambda: gaussian("g_") * step("s_") + linear("bg_"),
    "product of sum": lambda: (gaussian("g_") + linear("bg_")) * step("s_"),
    "difference of sum": lambda: linear("bg_") - (gaussian("g_") + step("s_")),
}
CLOSED_FORMS = {
    "product": lambda g, s, b: g * s,
    "difference": lambda g, s, b: g - s,
    "sum of product": lambda g, s, b: g * s + b,
    "product of sum": lambda g, s, b: (g + b) * s,
    "difference of sum": lambda g, s, b: b - (g + s),
}


def parts(values):
    g = gaussian("g_")(X, **values)
    s = step("s_")(X, **values)
    b = linear("bg_")(X, **values)
    return g, s, b


@pytest.mark.parametrize("kind", MODELS)
def test_values_match_the_arithmetic_of_the_parts(kind):
    model = MODELS[kind]()
    values = {n: VALUES[n] for n in model.param_names}
    np.testing.assert_allclose(model(X, **values), CLOSED_FORMS[kind](*parts(VALUES)),
                               rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kind", MODELS)
def test_partials_match_central_differences(kind):
    model = MODELS[kind]()
    values = {n: VALUES[n] for n in model.param_names}
    value, jac = model.value_and_jacobian(X, **values)
    numeric = central_differences(model, values)
    assert set(jac) == set(model.param_names)
    for name in model.param_names:
        np.testing.assert_allclose(jac[name], numeric[name], atol=1e-6, err_msg=name)
    np.testing.assert_allclose(value, model(X, **values), rtol=1e-15)
    np.testing.assert_allclose(model.jacobian(X, **values)[model.param_names[0]],
                               jac[model.param_names[0]], rtol=1e-15)


@pytest.mark.parametrize("kind", MODELS)
def test_reference_json_and_pickle_round_trip(kind):
    model = MODELS[kind]()
    values = {n: VALUES[n] for n in model.param_names}
    rebuilt = from_reference(json.loads(json.dumps(model.reference)))
    assert rebuilt == model and rebuilt.param_names == model.param_names
    np.testing.assert_array_equal(rebuilt(X, **values), model(X, **values))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model))(X, **values),
                                  model(X, **values))


def test_components_are_the_leaves_and_eval_components_keys_by_prefix():
    model = gaussian("g_") * step("s_") + linear("bg_")
    assert [c.prefix for c in model.components] == ["g_", "s_", "bg_"]
    assert len(model.terms) == 2 and isinstance(model.terms[0], OperatorModel)
    comps = model.eval_components(VALUES, x=X)
    g, s, b = parts(VALUES)
    np.testing.assert_array_equal(comps["g_"], g)
    np.testing.assert_array_equal(comps["s_"], s)
    assert model.make_params().keys() == set(model.param_names)


def test_clashing_names_and_bad_operator_are_refused():
    with pytest.raises(ModelError, match="used by both"):
        gaussian("a_") * gaussian("a_")
    with pytest.raises(ModelError, match="not supported"):
        OperatorModel(gaussian("a_"), step("b_"), "/")
    with pytest.raises(TypeError):
        gaussian("a_") * 2.0


def test_product_cannot_guess_but_says_what_to_do():
    model = gaussian("g_") * step("s_") + constant("c_")
    with pytest.raises(ModelError, match="set guess to false"):
        model.guess(np.ones((2, X.size)), X)


def test_without_analytic_partials_the_product_has_none():
    model = expression_model("a*x + b") * gaussian("g_")
    values = {"a": 1.0, "b": 2.0, "g_amplitude": 1.0, "g_center": 0.0, "g_sigma": 1.0}
    assert model.jacobian(X, **values) is None
    value, jac = model.value_and_jacobian(X, **values)
    assert jac is None
    np.testing.assert_allclose(value, (X + 2.0) * gaussian("g_")(X, **values))


def test_product_fit_matches_the_core():
    """An exponential decay times an edge, fitted by the batch engine and by minimize()."""
    model = exponential("e_") * step("s_") + constant("c_")
    x = np.linspace(0.0, 10.0, 120)
    truth = {"e_amplitude": 5.0, "e_decay": 3.0, "s_amplitude": 1.0, "s_center": 2.0,
             "s_sigma": 0.4, "c_c": 0.2}
    rng = np.random.default_rng(5)
    y = model(x, **truth) + rng.normal(0, 0.02, (4, x.size))
    params = model.make_params(e_amplitude=4.0, e_decay=2.5, s_center=2.3, s_sigma=0.5,
                               c_c=0.1)
    params["s_amplitude"].vary = False  # amplitude of a product is degenerate
    res = fit_batch(model, params, x, y)
    assert res.success.all()
    for i in range(y.shape[0]):
        p = params.copy()
        out = minimize(lambda q, yi=y[i]: model.eval(q, x) - yi, p)
        for name in ("e_amplitude", "e_decay", "s_center", "s_sigma", "c_c"):
            assert res.values[name][i] == pytest.approx(out.params[name].value, rel=1e-5,
                                                       abs=1e-7)
            assert res.stderr[name][i] == pytest.approx(out.params[name].stderr, rel=1e-3)


def test_batch_guess_of_a_product_is_refused_not_guessed_as_a_sum():
    model = gaussian("g_") * step("s_") + linear("bg_")
    y = model(X, **VALUES)[None, :].repeat(2, axis=0)
    with pytest.raises(ModelError, match="cannot guess"):
        fit_batch(model, model.make_params(), X, y, guess=True)
