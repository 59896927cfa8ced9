"""Checks of a config that need the outside world: paths, the model, parameter names.

Each function raises :class:`~batchfit.config.problems.ConfigProblems` naming
the dotted key of the problem. A ``function:`` model is imported by name
(``package.module:function``), so its module must be importable on the
client and on every worker: install it, put it on ``PYTHONPATH``, or list its
folders under ``model.python_path`` (relative to the config file).
:func:`use_python_path` makes that one module (and its package's submodules)
importable from those folders, never shadowing an installed package and
without touching ``sys.path``; the job layer calls it on the workers too.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from batchfit.config.problems import fail, unknown_key
from batchfit.config.sections import (
    ComponentConfig,
    InputConfig,
    ModelConfig,
    OutputConfig,
    ParameterConfig,
)
from batchfit.errors import BatchfitError, ExpressionError


def use_python_path(paths: Iterable[str | os.PathLike], function: str | None) -> None:
    """Let ``model.function``'s module be imported from the ``model.python_path`` folders.

    Only that module's top-level name is looked up there, after every installed
    package (:func:`batchfit.models.user.use_model_path`); nothing else in the
    folders can run, and without a function model nothing happens.
    """
    from batchfit.models.user import use_model_path

    use_model_path(function, paths)


def check_job_paths(inp: InputConfig, model: ModelConfig, init: Path | None,
                    output: OutputConfig) -> None:
    """Check that the input, ``init`` and python_path folders exist; output is writable.

    The output's parent folders need not exist (submit creates them), but the
    nearest one that does must be a writable folder.
    """
    if not inp.path.exists():
        fail(("input", "path"), f"{inp.path} does not exist" + _example_hint(inp.path))
    if init is not None and not init.exists():
        fail(("init",), f"{init} does not exist (expected an earlier result store)")
    for i, folder in enumerate(model.python_path):
        if not folder.is_dir():
            fail(("model", "python_path", i), f"{folder} is not a folder")
    out = output.path
    if out == inp.path:
        fail(("output", "path"), "is the input itself; choose another path")
    if out.is_relative_to(inp.path):
        fail(("output", "path"), f"{out} is inside the input {inp.path}; a result store "
                                 "there would change the input: choose a path outside it")
    if inp.path.is_relative_to(out):
        fail(("output", "path"), f"{out} holds the input {inp.path}; --overwrite could "
                                 "delete the input: choose a path of its own for the results")
    if out.exists() and not out.is_dir():
        fail(("output", "path"), f"{out} exists and is not a folder (a zarr store)")
    # Missing parent folders are created by submit (never by validate): the
    # nearest existing ancestor must be a writable folder.
    parent = next(p for p in out.parents if p.exists())
    if not parent.is_dir():
        fail(("output", "path"), f"{parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        what = "folder" if parent == out.parent else "folder (where the missing ones go)"
        fail(("output", "path"), f"{what} {parent} is not writable")


def _example_hint(path: Path) -> str:
    """How to make a missing example input (configs/data/peak_map.zarr, ...)."""
    from batchfit.examples import COMMAND, INPUTS

    if path.name not in INPUTS or path.parent.name != "data":
        return ""
    return f"; it is an example input: make it with `{COMMAND} {path.parent.parent}`"


def check_init_output(init: Path | None, output: OutputConfig) -> None:
    """Check that ``init`` (earlier results to start from) is not the output store itself.

    With ``--overwrite`` the output is deleted before the fits read ``init``, and
    a resume would read values the job itself wrote: both silently change results.
    """
    if init is None:
        return
    same = init == output.path
    if not same and init.exists() and output.path.exists():
        same = os.path.samefile(init, output.path)
    if same:
        fail(("init",), f"{init} is also output.path: the job would overwrite the results "
                        "it starts from. Copy the earlier store elsewhere, or choose another "
                        "output.path")


def check_store_names(params: Mapping[str, Any], covariance: bool,
                      parameters: Mapping[str, ParameterConfig]) -> None:
    """Check that no parameter is named like another variable of the output store.

    The names come from :class:`batchfit.stack.layout.ResultLayout`, which lists
    everything a fit writes (``a_stderr`` beside ``a``, ``chisqr``, ``status``, ...).
    """
    from batchfit.stack.layout import NameClashError, ResultLayout

    try:
        ResultLayout.from_params(params, covariance)
    except NameClashError as exc:
        fail(("parameters", exc.param) if exc.param in parameters else ("model",), str(exc))


def build_model(spec: ModelConfig) -> Any:
    """Build the model, naming the config key that is wrong if it cannot be."""
    from batchfit import models

    if spec.components:
        parts = [_build_component(models, i, c) for i, c in enumerate(spec.components)]
        try:
            return functools.reduce(operator.add, parts)
        except BatchfitError as exc:
            fail(("model", "components"), str(exc))
    key = "expression" if spec.expression else "function"
    try:
        return models.from_reference(spec.reference)
    except BatchfitError as exc:
        fail(("model", key), str(exc))
    except Exception as exc:  # importing user code can raise anything
        fail(("model", key), f"cannot import {spec.function!r}: {type(exc).__name__}: {exc}")


def _build_component(models: Any, i: int, spec: ComponentConfig) -> Any:
    loc = ("model", "components", i)
    if spec.type not in models.FACTORIES:
        close = difflib.get_close_matches(spec.type, models.FACTORIES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        fail((*loc, "type"), f"unknown model type {spec.type!r}; {hint}"
                             f"valid types: {', '.join(sorted(models.FACTORIES))}")
    valid = ["type", "prefix", *inspect.signature(models.FACTORIES[spec.type]).parameters]
    for key in spec.options:
        if key not in valid:
            fail(loc, unknown_key(key, list(dict.fromkeys(valid))))
    try:
        return models.get(spec.type, prefix=spec.prefix, **spec.options)
    except BatchfitError as exc:
        fail(loc, str(exc))


def check_parameter_names(parameters: Mapping[str, ParameterConfig],
                          model_names: Sequence[str]) -> None:
    """Every name under ``parameters:`` is the model's or used by some expression."""
    from batchfit.core.expr import compile_expression

    used: set[str] = set()
    compiled = {}
    for name, spec in parameters.items():
        if spec.expr is None:
            continue
        try:
            compiled[name] = compile_expression(spec.expr, what="expr")
        except ExpressionError as exc:
            fail(("parameters", name, "expr"), str(exc).removeprefix("expr: "))
        used |= compiled[name].names
    known = set(model_names) | set(parameters)
    for name in parameters:
        if name not in model_names and name not in used:
            fail(("parameters", name), _unknown_parameter(name, model_names))
    for name, expression in compiled.items():
        missing = sorted(expression.names - known)
        if missing:
            fail(("parameters", name, "expr"),
                  f"uses {missing[0]!r}, which is neither a model parameter nor declared "
                  f"under parameters: add `{missing[0]}: {{value: ...}}`")


def _unknown_parameter(name: str, model_names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, model_names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return (f"unknown parameter {name!r}{hint} The model's parameters are "
            f"{', '.join(model_names)}; other names are allowed only when an "
            "expression uses them")


def check_anneal_bounds(params: Mapping[str, Any]) -> None:
    """Check that every varied parameter has finite bounds (the 'anneal' engine needs them)."""
    for name, par in params.items():
        if par.vary and not par.expr and not (_finite(par.min) and _finite(par.max)):
            fail(("fit", "engine"),
                 f"'anneal' needs a finite min and max on every varied parameter; "
                 f"parameters.{name} has min={par.min}, max={par.max} (give both, "
                 "or vary: false)")


def _finite(bound: float | None) -> bool:
    return bound is not None and math.isfinite(bound)


def merged(default: Any, spec: ParameterConfig | None) -> dict[str, Any]:
    """Attributes of one template parameter: the model's, overridden by the config's."""
    attrs = {"value": None, "vary": True, "min": None, "max": None, "expr": None}
    if default is not None:
        attrs.update({k: getattr(default, k) for k in attrs})
    attrs.update(spec.hints() if spec is not None else {})
    return attrs
