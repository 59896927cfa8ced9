"""Tests of the batchfit.config package: every bad config names its key; good ones resolve."""

from __future__ import annotations

import math
import sys

import pytest
from cli_helpers import edit, good_config, job_folder, listing, write_config
from pydantic import ValidationError

from batchfit import Parameters
from batchfit.config import JobConfig, load_config
from batchfit.core.expr import TieSet
from batchfit.errors import ConfigError
from batchfit.models import gaussian, linear


@pytest.fixture
def folder(tmp_path):
    return job_folder(tmp_path)


def _fails(folder, data, match):
    """Loading ``data`` raises ConfigError matching ``match``; nothing gets written."""
    path = write_config(folder, data)
    before = listing(folder)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    assert listing(folder) == before
    return str(info.value)


# (dotted key to set or "-key" to delete, value, regex the message must match)
BAD_EDITS = {
    "missing section": ("-output", None, r"output: required section is missing"),
    "missing key": ("-input.variable", None, r"input\.variable: required key is missing"),
    "unknown key, close": ("fit.max_nfv", 10, r"fit: unknown key 'max_nfv'; did you mean "
                                              r"'max_nfev'\?"),
    "unknown key, far": ("fit.colour", "red", r"fit: unknown key 'colour'; valid keys: engine"),
    "misspelled section": ("paramters", {}, r"unknown section 'paramters'; did you mean "
                                           r"'parameters'\?"),
    "misspelled parameter key": ("parameters.p1_center.mni", 0.0,
                                 r"parameters\.p1_center: unknown key 'mni'; did you mean 'min'"),
    "wrong type int": ("fit.max_nfev", "lots", r"fit\.max_nfev: expected an integer, got 'lots'"),
    "float for int": ("fit.max_nfev", 20.5, r"fit\.max_nfev: expected an integer, got 20\.5"),
    "non-positive": ("fit.max_nfev", 0, r"fit\.max_nfev: must be greater than 0"),
    "string number": ("parameters.p1_center.value", "1.0",
                      r"parameters\.p1_center\.value: expected a number, got the text '1\.0'"),
    "wrong type bool": ("guess", "maybe", r"guess: expected true or false, got 'maybe'"),
    "parameter not a mapping": ("parameters.p1_sigma", 5,
                                r"parameters\.p1_sigma: expected a mapping, got 5"),
    "bad engine": ("fit.engine", "lmm", r"fit\.engine: expected one of 'lm', .*got 'lmm'; "
                                        r"did you mean 'lm'\?"),
    "unknown model type": ("model.components.0.type", "gausian",
                           r"model\.components\[0\]\.type: unknown model type 'gausian'; "
                           r"did you mean 'gaussian'\?"),
    "unknown component key": ("model.components.1", {"type": "linear", "prefx": "bg_"},
                              r"model\.components\[1\]: unknown key 'prefx'; did you mean "
                              r"'prefix'\?"),
    "two models": ("model.expression", "a*x", r"model: give exactly one of 'components', "
                                              r"'expression' or 'function'; got 'components' "
                                              r"and 'expression'"),
    "no model": ("-model.components", None, r"model: give exactly one .*; got none"),
    "prefix clash": ("model.components.1", {"type": "gaussian", "prefix": "p1_"},
                     r"model\.components: .*p1_"),
    "unknown parameter": ("parameters.zz", {"value": 1.0},
                          r"parameters\.zz: unknown parameter 'zz'\. The model's parameters "
                          r"are p1_amplitude, p1_center"),
    "close parameter": ("parameters.p1_centre", {"value": 1.0},
                        r"parameters\.p1_centre: unknown parameter 'p1_centre'; "
                        r"did you mean 'p1_center'\?"),
    "function does not import": ("model", {"function": "no_such_module_xyz:f"},
                                 r"model\.function: .*cannot import 'no_such_module_xyz'"),
    "function malformed": ("model", {"function": "not a reference"},
                           r"model\.function: expected 'package\.module:function'"),
    "expression syntax": ("parameters.p1_sigma", {"expr": "2*(p1_center"},
                          r"parameters\.p1_sigma\.expr: invalid expression .*syntax error"),
    "hostile import": ("parameters.p1_sigma", {"expr": "__import__('os').system('ls')"},
                       r"parameters\.p1_sigma\.expr: invalid expression"),
    "hostile dunder": ("parameters.p1_sigma", {"expr": "().__class__"},
                       r"parameters\.p1_sigma\.expr: invalid expression"),
    "hostile model expression": ("model", {"expression": "open('/etc/passwd')"},
                                 r"model\.expression: .*invalid expression"),
    "undeclared name": ("parameters.p1_center", {"expr": "6563*(1+z)"},
                        r"parameters\.p1_center\.expr: uses 'z', which is neither"),
    "min > max": ("parameters.p1_center", {"value": 0.0, "min": 5.0, "max": -5.0},
                  r"parameters\.p1_center: min=5 is not below max=-5"),
    "impossible bound": ("parameters.p1_center.min", float("inf"),
                         r"parameters\.p1_center\.min: expected a number, or -\.inf for no bound"),
    "nan value": ("parameters.p1_center.value", float("nan"),
                  r"parameters\.p1_center\.value: expected a finite number"),
    "anneal without bounds": ("fit.engine", "anneal",
                              r"fit\.engine: 'anneal' needs a finite min and max on every "
                              r"varied parameter; parameters\.p1_amplitude"),
    "missing input": ("input.path", "data/nothing.zarr",
                      r"input\.path: .*nothing\.zarr does not exist"),
    "output is the input": ("output.path", "data/cube.zarr", r"output\.path: is the input"),
    "missing init store": ("init", "old.zarr", r"init: .*old\.zarr does not exist"),
    "bad chunks": ("input.chunks", {"y": 0}, r"input\.chunks: chunk size of 'y'"),
    "python_path missing": ("model.python_path", ["mods"],
                            r"model\.python_path\[0\]: .*mods is not a folder"),
    "cluster address needs address": ("cluster", {"kind": "address"},
                                      r"cluster: kind 'address' needs the key 'address'"),
    "cluster key for other kind": ("cluster.address", "tcp://10.0.0.5:8786",
                                   r"cluster: key 'address' is not used with kind 'local'"),
    "slurm needs memory": ("cluster", {"kind": "slurm", "jobs": 2, "cores": 8},
                           r"cluster: kind 'slurm' needs the key 'memory'"),
    "bad memory": ("cluster", {"kind": "slurm", "jobs": 2, "cores": 8, "memory": "lots"},
                   r"cluster\.memory: expected a size such as '4GiB'"),
    "bad cost": ("fit.cost", "poison", r"fit\.cost: expected one of 'chisqr', 'poisson'.*"
                                       r"did you mean 'poisson'\?"),
    "bad scale_covar": ("fit.scale_covar", "no", r"fit\.scale_covar: expected true or false"),
    "bad cluster kind": ("cluster.kind", "kubernetes", r"cluster\.kind: expected one of 'local'"),
    "bad workers": ("cluster.n_workers", -1, r"cluster\.n_workers: must be greater than 0"),
}


@pytest.mark.parametrize("case", list(BAD_EDITS))
def test_bad_config_names_the_key(folder, case):
    key, value, match = BAD_EDITS[case]
    data = good_config()
    if key.startswith("-"):
        edit(data, key[1:], delete=True)
    else:
        edit(data, key, value)
    _fails(folder, data, match)


BAD_TEXTS = {
    "empty file": ("", r"job\.yaml: the config is empty"),
    "only comments": ("# nothing here\n", r"the config is empty"),
    "yaml syntax error": ("input:\n  path: [data\nmodel: {}\n", r"job\.yaml:\d+:\d+: YAML syntax"),
    "non-mapping": ("- input\n- model\n", r"job\.yaml:1: the config must be a mapping of sections"),
    "scalar": ("just text\n", r"the config must be a mapping .*got 'just text'"),
    "python tag": ("!!python/object/apply:os.system ['echo hi']\n", r"YAML syntax error"),
    "duplicate key": ("fit:\n  engine: lm\n  engine: lbfgsb\n", r"job\.yaml:3: fit\.engine: "
                                                              r"key given twice"),
}


@pytest.mark.parametrize("case", list(BAD_TEXTS))
def test_bad_yaml(folder, case):
    text, match = BAD_TEXTS[case]
    path = write_config(folder, text=text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_error_gives_line_number(folder):
    text = write_config(folder, good_config()).read_text().replace("2000", "lots")
    line = 1 + text.splitlines().index("  max_nfev: lots")
    path = write_config(folder, text=text)
    with pytest.raises(ConfigError, match=rf"job\.yaml:{line}: fit\.max_nfev: expected"):
        load_config(path)


def test_scientific_notation_hint(folder):
    path = write_config(folder, text=write_config(folder, good_config()).read_text()
                        .replace("min: 0.01", "min: 1e-3"))
    with pytest.raises(ConfigError, match=r"p1_sigma\.min: .*'1e-3'.*1\.0e-3"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_output_under_a_regular_file(folder):
    (folder / "file.txt").write_text("not a folder")
    data = edit(good_config(), "output.path", "file.txt/out.zarr")
    _fails(folder, data, r"output\.path: .*file\.txt is a file, not a folder")


def test_output_under_a_file_deeper_up(folder):
    (folder / "file.txt").write_text("not a folder")
    data = edit(good_config(), "output.path", "file.txt/a/b/out.zarr")
    _fails(folder, data, r"output\.path: .*file\.txt is a file, not a folder")


def test_output_folders_that_do_not_exist_yet_are_accepted_and_not_made(folder):
    data = edit(good_config(), "output.path", "newruns/2026/run1/out.zarr")
    path = write_config(folder, data)
    before = listing(folder)
    config = load_config(path)
    assert config.output.path == (folder / "newruns/2026/run1/out.zarr").resolve()
    assert listing(folder) == before and not (folder / "newruns").exists()


@pytest.mark.skipif(sys.platform == "win32" or getattr(__import__("os"), "geteuid", lambda: 0)()
                    == 0, reason="root can write to read-only folders")
def test_output_in_read_only_folder(folder):
    ro = folder / "ro"
    ro.mkdir(mode=0o555)
    data = edit(good_config(), "output.path", "ro/out.zarr")
    _fails(folder, data, r"output\.path: folder .*ro is not writable")


def test_many_problems_are_listed_together(folder):
    data = edit(edit(good_config(), "fit.max_nfev", "lots"), "guess", "maybe")
    message = _fails(folder, data, r"fit\.max_nfev")
    assert "guess: expected true or false" in message
    assert len(message.splitlines()) == 2


# ------------------------------------------------------------------ good configs


def test_relative_paths_resolve_against_config_folder(folder, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    config = load_config(write_config(folder, good_config()))
    assert config.input.path == (folder / "data" / "cube.zarr").resolve()
    assert config.output.path == (folder / "results" / "cube_fit.zarr").resolve()
    assert config.input.chunks == {"y": 8, "x": 8}
    assert config.fit.engine == "lm" and config.fit.max_nfev == 2000
    assert config.fit.refit_failed is False and config.output.covariance is False
    assert config.cluster.threads_per_worker == 1


def test_defaults_of_optional_sections(folder):
    data = good_config()
    for section in ("fit", "cluster", "guess"):
        del data[section]
    data["parameters"] = None  # every entry commented out
    config = load_config(write_config(folder, data))
    assert config.parameters == {}
    assert config.guess is False and config.init is None
    assert config.fit.engine == "lm" and config.fit.max_nfev is None
    assert config.cluster.kind == "local" and config.cluster.n_workers is None


def test_poisson_cost_with_sigma_is_refused(folder):
    data = edit(edit(good_config(), "fit.cost", "poisson"), "input.sigma", "counts_err")
    _fails(folder, data, r"fit\.cost: 'poisson' fits counts without sigma")
    config = load_config(write_config(folder, edit(good_config(), "fit.cost", "poisson")))
    assert config.fit.cost == "poisson" and config.fit.scale_covar is True


def test_config_is_frozen(folder):
    config = load_config(write_config(folder, good_config()))
    with pytest.raises(ValidationError):
        config.guess = False
    with pytest.raises(ValidationError):
        config.fit.max_nfev = 1


def test_round_trip_through_to_dict(folder, tmp_path_factory):
    config = load_config(write_config(folder, good_config()))
    again = JobConfig.from_dict(config.to_dict(), tmp_path_factory.mktemp("other"))
    assert again == config
    assert again.fingerprint() == config.fingerprint()


def test_build_params_merges_model_defaults_and_config(folder):
    params = load_config(write_config(folder, good_config())).build_params()
    expected = (gaussian(prefix="p1_") + linear(prefix="bg_")).make_params(
        p1_center={"value": 0.0, "min": -5.0, "max": 5.0},
        p1_sigma={"value": 1.0, "min": 0.01},
        bg_slope={"value": 0.0, "vary": False},
    )
    assert isinstance(params, Parameters)
    assert list(params) == list(expected)
    for name, par in expected.items():
        got = params[name]
        assert (got.value, got.vary, got.min, got.max, got.expr) == (
            par.value, par.vary, par.min, par.max, par.expr), name


def test_extra_parameter_used_by_an_expression(folder):
    data = edit(good_config(), "parameters.p1_center", {"expr": "6563*(1+z)"})
    edit(data, "parameters.z", {"value": 0.1, "min": 0.0, "max": 2.0})
    params = load_config(write_config(folder, data)).build_params()
    assert list(params)[-1] == "z"
    assert params["p1_center"].expr == "6563*(1+z)"
    values = TieSet(params).apply(params.valuesdict())
    assert values["p1_center"] == pytest.approx(6563 * 1.1)


def test_expression_cycle_names_the_parameters(folder):
    data = edit(good_config(), "parameters.p1_center", {"expr": "2*p1_sigma"})
    edit(data, "parameters.p1_sigma", {"expr": "p1_center/2"})
    _fails(folder, data, r"parameters: .*cycle")


def test_anneal_with_bounds_on_every_varied_parameter(folder):
    data = good_config()
    data["fit"] = {"engine": "anneal"}
    data["parameters"] = {
        "p1_amplitude": {"min": 0.0, "max": 10.0}, "p1_center": {"min": -5.0, "max": 5.0},
        "p1_sigma": {"min": 0.1, "max": 3.0}, "bg_slope": {"vary": False},
        "bg_intercept": {"expr": "0.5*p1_amplitude"},
    }
    params = load_config(write_config(folder, data)).build_params()
    assert params["p1_amplitude"].max == 10.0
    assert math.isinf(params["bg_slope"].lo)


def test_expression_model_and_polynomial(folder):
    data = edit(good_config(), "model", {"expression": "a*exp(-x/tau) + c"})
    data["parameters"] = {"tau": {"value": 2.0, "min": 0.0}}
    model = load_config(write_config(folder, data)).build_model()
    assert sorted(model.param_names) == ["a", "c", "tau"]
    data = edit(good_config(), "model", {"components": [{"type": "polynomial", "degree": 3}]})
    data["parameters"] = {}
    model = load_config(write_config(folder, data)).build_model()
    assert model.param_names == ["c0", "c1", "c2", "c3"]


def test_function_model_on_python_path(folder, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    before = list(sys.path)
    monkeypatch.delitem(sys.modules, "bf_cfg_user_models", raising=False)
    mods = folder / "mods"
    mods.mkdir()
    (mods / "bf_cfg_user_models.py").write_text(
        "import numpy as np\n\ndef biexp(t, a1, tau1, a2=1.0, tau2=5.0):\n"
        "    return a1*np.exp(-t/tau1) + a2*np.exp(-t/tau2)\n")
    data = edit(good_config(), "model", {"function": "bf_cfg_user_models:biexp",
                                         "python_path": ["mods"]})
    data["parameters"] = {"tau1": {"value": 1.0, "min": 0.0}}
    config = load_config(write_config(folder, data))
    assert config.model.python_path == (mods.resolve(),)
    assert sys.path == before  # the folder is used for the function's module only
    assert config.build_model().param_names == ["a1", "tau1", "a2", "tau2"]
    monkeypatch.delitem(sys.modules, "bf_cfg_user_models", raising=False)


def _fingerprint(folder, data):
    return load_config(write_config(folder, data)).fingerprint()


def test_fingerprint_is_stable_and_tracks_results(folder):
    base = _fingerprint(folder, good_config())
    assert len(base) == 64 and int(base, 16) >= 0
    assert _fingerprint(folder, good_config()) == base
    # key order and 1 vs 1.0 do not matter
    reordered = dict(reversed(list(good_config().items())))
    edit(reordered, "parameters.p1_sigma.value", 1)
    assert _fingerprint(folder, reordered) == base
    # an infinite bound is no bound
    assert _fingerprint(folder, edit(good_config(), "parameters.p1_sigma.max", math.inf)) == base
    # what never changes results leaves it alone
    for key, value in [("cluster", {"kind": "address", "address": "tcp://h:8786"}),
                       ("input.chunks", {"y": 4}), ("output.path", "results/other.zarr"),
                       ("output.covariance", True)]:
        assert _fingerprint(folder, edit(good_config(), key, value)) == base, key
    # what changes results changes it
    for key, value in [("parameters.p1_center.value", 0.5), ("parameters.p1_sigma.max", 9.0),
                       ("parameters.bg_slope.vary", True), ("fit.max_nfev", 100),
                       ("fit.engine", "leastsq"), ("guess", False), ("input.variable", "other"),
                       ("model.components.1.type", "constant")]:
        changed = good_config()
        if key.startswith("model"):
            changed["parameters"].pop("bg_slope")
        assert _fingerprint(folder, edit(changed, key, value)) != base, key


def test_from_dict_can_skip_path_checks(tmp_path):
    data = edit(good_config(), "input.path", "missing.zarr")
    config = JobConfig.from_dict(data, tmp_path, check_paths=False)
    assert config.input.path == (tmp_path / "missing.zarr").resolve()
    with pytest.raises(ConfigError, match=r"input\.path: .* does not exist"):
        JobConfig.from_dict(data, tmp_path)


# ------------------------------------------------------------------ names the store writes


def _expression_config(expression: str, parameters: dict, **output) -> dict:
    data = good_config()
    data["model"] = {"expression": expression}
    data["parameters"] = parameters
    data["guess"] = False
    data["output"].update(output)
    return data


@pytest.mark.parametrize("expression, parameters, match", [
    ("a*x + a_stderr", {"a_stderr": {"value": 0.0}},
     r"parameters\.a_stderr: parameter name clash: the result variable 'a_stderr' would hold "
     r"both the best-fit value of parameter 'a_stderr' and the standard error of parameter 'a'"),
    ("chisqr*x + c", {}, r"model: .*the result variable 'chisqr' would hold both the best-fit "
                         r"value of parameter 'chisqr' and the per-pixel 'chi-square'"),
    ("amp*exp(-x/status)", {"status": {"value": 1.0}},
     r"parameters\.status: .*'status' would hold both .*'fit status'"),
    ("nfev*x", {}, r"model: .*'nfev'"),
])
def test_parameter_named_like_a_store_variable(folder, expression, parameters, match):
    _fails(folder, _expression_config(expression, parameters), match)


def test_covariance_names_clash_only_with_covariance(folder):
    data = _expression_config("param*x + c", {})
    load_config(write_config(folder, data))
    _fails(folder, _expression_config("param*x + c", {}, covariance=True),
           r"model: .*'param' would hold both .*a dim of the covariance")


def test_init_may_not_be_the_output(folder):
    out = folder / "results" / "cube_fit.zarr"
    out.mkdir()
    data = edit(good_config(), "init", "results/cube_fit.zarr")
    _fails(folder, data, r"init: .*cube_fit\.zarr is also output\.path: the job would "
                         r"overwrite the results it starts from")
    (folder / "alias.zarr").symlink_to(out)
    _fails(folder, edit(good_config(), "init", "alias.zarr"), r"init: .* is also output\.path")
