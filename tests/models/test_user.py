"""User models: importable functions and safe expressions."""

import json
import pickle

import numpy as np
import pytest

from batchfit.errors import ModelError
from batchfit.models import expression_model, from_reference, function_model, gaussian

pytestmark = pytest.mark.filterwarnings("error")

T = np.linspace(0.0, 10.0, 41)


# ------------------------------------------------------------------ functions
@pytest.mark.usefixtures("user_module_path")
def test_function_model_parameters_from_signature():
    model = function_model("user_models:biexp", prefix="f_")
    assert model.param_names == ["f_a1", "f_tau1", "f_a2", "f_tau2"]
    params = model.make_params()
    assert [params[n].value for n in model.param_names] == [1.0, 2.0, 0.5, 10.0]
    assert model.jacobian(T, **params.valuesdict()) is None
    assert model.reference == {"function": "user_models:biexp", "prefix": "f_"}


@pytest.mark.usefixtures("user_module_path")
def test_function_model_evaluates_and_broadcasts():
    model = function_model("user_models:biexp")
    a1 = np.array([[1.0], [2.0]])
    out = model(T, a1=a1, tau1=2.0, a2=0.5, tau2=10.0)
    expected = a1 * np.exp(-T / 2.0) + 0.5 * np.exp(-T / 10.0)
    np.testing.assert_allclose(out, expected, rtol=1e-15)


@pytest.mark.usefixtures("user_module_path")
def test_function_model_keyword_only_parameter():
    model = function_model("user_models:line_kwonly")
    assert model.param_names == ["slope", "offset"]
    assert model.make_params()["offset"].value == 3.0
    np.testing.assert_allclose(model(T, slope=2.0, offset=1.0), 2.0 * T + 1.0)


@pytest.mark.usefixtures("user_module_path")
def test_function_model_round_trips_and_pickles():
    model = function_model("user_models:biexp") + gaussian(prefix="g_")
    rebuilt = from_reference(json.loads(json.dumps(model.reference)))
    values = {n: 1.0 + 0.1 * i for i, n in enumerate(model.param_names)}
    np.testing.assert_array_equal(rebuilt(T, **values), model(T, **values))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model))(T, **values),
                                  model(T, **values))
    assert model.jacobian(T, **values) is None


@pytest.mark.usefixtures("user_module_path")
def test_function_model_cannot_guess():
    with pytest.raises(ModelError, match="cannot guess starting values"):
        function_model("user_models:biexp").guess(np.ones((2, T.size)), T)


@pytest.mark.usefixtures("user_module_path")
@pytest.mark.parametrize(
    ("ref", "match"),
    [
        ("user_models.biexp", "is not of that form"),
        ("user_models:", "is not of that form"),
        ("os.path:join", "'os.path' is a Python standard library module"),
        ("math:exp", "standard library"),
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'.*PYTHONPATH"),
        ("user_models:missing", "has no attribute 'missing'"),
        ("user_models:NOT_A_FUNCTION", "is a float, not a Python function"),
        ("user_models:ufunc", "is a ufunc, not a Python function"),
        ("user_models:builtin_hypot", "builtin_function_or_method, not a Python function"),
        ("user_models:Scaled", "is a type, not a Python function"),
        ("user_models:with_args", r"\*args/\*\*kwargs \(coefs\) are not allowed"),
        ("user_models:with_kwargs", r"\*args/\*\*kwargs \(kws\) are not allowed"),
        ("user_models:text_default", "the default of 'mode' is 'fast', not a number"),
        ("user_models:no_args", "takes no independent variable"),
    ],
)
def test_function_model_errors(ref, match):
    with pytest.raises(ModelError, match=match) as info:
        function_model(ref)
    assert "package.module:function" in str(info.value)


# ---------------------------------------------------------------- expressions
def test_expression_model_parameters_and_values():
    model = expression_model("amp*exp(-x/tau) + c")
    assert model.param_names == ["amp", "tau", "c"]
    assert all(p.value == 1.0 for p in model.make_params().values())
    tau = np.array([[1.0], [3.0]])
    np.testing.assert_allclose(model(T, amp=2.0, tau=tau, c=0.5), 2.0 * np.exp(-T / tau) + 0.5)
    assert model.jacobian(T, amp=2.0, tau=1.0, c=0.5) is None
    assert model.reference == {"expression": "amp*exp(-x/tau) + c"}


def test_expression_model_constant_broadcasts_and_prefix():
    model = expression_model("c0 + 0*pi", prefix="bg_")
    assert model.param_names == ["bg_c0"]
    out = model(T, bg_c0=np.array([[1.0], [2.0]]))
    assert out.shape == (2, T.size)
    assert model.reference == {"expression": "c0 + 0*pi", "prefix": "bg_"}


def test_expression_model_round_trips_and_pickles_in_composites():
    model = expression_model("a*x + b", prefix="e_") + gaussian(prefix="g_")
    assert model.reference["components"][0] == {"expression": "a*x + b", "prefix": "e_"}
    values = {n: 0.5 + i for i, n in enumerate(model.param_names)}
    for other in (from_reference(json.loads(json.dumps(model.reference))),
                  pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(other(T, **values), model(T, **values))


def test_expression_model_gives_nonfinite_values_not_errors():
    out = expression_model("a / x")(T, a=1.0)
    assert np.isinf(out[0])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("__import__('os').system('true')", "model expression"),
        ("a.real * x", "model expression"),
        ("amp * exp(", "model expression"),
        ("open('f')", "model expression"),
    ],
)
def test_expression_model_rejects_unsafe_or_invalid_text(text, match):
    with pytest.raises(ModelError, match=match):
        expression_model(text)


def test_expression_model_needs_text():
    with pytest.raises(ModelError, match="expected a string"):
        expression_model(3.0)


# ------------------------------------------------------------------ callables
def notebook_function(source: str, name: str):
    """A function defined as in a notebook or a script: its module is ``__main__``."""
    namespace = {"__name__": "__main__", "np": np}
    exec(source, namespace)
    return namespace[name]


NOTEBOOK_DECAY = """
def decay(t, amp=2.0, tau=3.0):
    return amp * np.exp(-t / tau)
"""


@pytest.mark.usefixtures("user_module_path")
def test_model_of_an_importable_function_keeps_its_reference():
    import user_models

    from batchfit.models import Model

    model = Model(user_models.biexp, prefix="f_")
    assert model.reference == {"function": "user_models:biexp", "prefix": "f_"}
    assert model == function_model("user_models:biexp", prefix="f_")
    assert model == function_model(user_models.biexp, prefix="f_")


def test_notebook_function_travels_by_value():
    from batchfit.models import Model

    decay = notebook_function(NOTEBOOK_DECAY, "decay")
    model = Model(decay)
    ref = model.reference
    assert ref["function"] == "__main__:decay" and isinstance(ref["pickle"], str)
    assert model.param_names == ["amp", "tau"]
    assert [model.make_params()[n].value for n in model.param_names] == [2.0, 3.0]
    rebuilt = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(rebuilt(T, amp=2.0, tau=3.0), 2.0 * np.exp(-T / 3.0))
    again = from_reference(json.loads(json.dumps(ref)), allow_pickle=True)
    np.testing.assert_array_equal(again(T, amp=1.0, tau=2.0), np.exp(-T / 2.0))


def test_closure_travels_by_value_and_keeps_its_state():
    from batchfit.models import Model

    scale = 7.0

    def scaled(x, a):
        return scale * a * x

    model = Model(scaled)
    assert "pickle" in model.reference and "<locals>" in model.reference["function"]
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model))(T, a=2.0), 14.0 * T)


def test_pickled_reference_needs_allow_pickle():
    decay = notebook_function(NOTEBOOK_DECAY, "decay")
    ref = function_model(decay, prefix="d_").reference
    with pytest.raises(ModelError, match="allow_pickle=True"):
        from_reference(ref)
    bad = {**ref, "pickle": "bm90IGEgcGlja2xl"}
    with pytest.raises(ModelError, match="does not load here"):
        from_reference(bad, allow_pickle=True)


@pytest.mark.parametrize("obj", [np.sin, len, dict, 3.0])
def test_model_of_a_non_function_is_refused(obj):
    from batchfit.models import Model

    with pytest.raises(ModelError, match="not a Python function"):
        Model(obj)


def test_lmfit_keywords_checked_against_the_signature():
    from batchfit.models import Model

    decay = notebook_function(NOTEBOOK_DECAY, "decay")
    Model(decay, independent_vars=["t"], param_names=["amp", "tau"])
    with pytest.raises(ModelError, match="independent variable is the first argument, 't'"):
        Model(decay, independent_vars=["amp"])
    with pytest.raises(ModelError, match="do not match"):
        Model(decay, param_names=["tau", "amp"])


def test_rebuilt_notebook_model_pickles_again():
    decay = notebook_function(NOTEBOOK_DECAY, "decay")
    once = pickle.loads(pickle.dumps(function_model(decay, prefix="d_")))
    twice = pickle.loads(pickle.dumps(once))
    assert twice.reference == once.reference
    np.testing.assert_array_equal(twice(T, d_amp=1.0, d_tau=2.0), np.exp(-T / 2.0))
