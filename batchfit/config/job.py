"""The whole job config (:class:`JobConfig`) and its resolved identity (fingerprint).

Validation runs in two passes. The pydantic models of
:mod:`batchfit.config.sections` check shapes and types.
:meth:`JobConfig.from_dict` then checks what needs the outside world: the
paths, the model (built once with :mod:`batchfit.models`), the parameter names
and expressions (compiled with the safe
:func:`batchfit.core.expr.compile_expression`) and the engine's needs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from batchfit.config.checks import (
    build_model,
    check_anneal_bounds,
    check_init_output,
    check_job_paths,
    check_parameter_names,
    check_store_names,
    merged,
    use_python_path,
)
from batchfit.config.problems import ConfigProblems, describe, fail, translate
from batchfit.config.sections import (
    ClusterConfig,
    FitConfig,
    Flag,
    InputConfig,
    ModelConfig,
    OutputConfig,
    ParameterConfig,
    Section,
    resolve_path,
)
from batchfit.errors import ExpressionError, ParameterError

# Sections of the resolved config that change the numbers in the output store.
RESULT_SECTIONS = ("input", "model", "parameters", "guess", "init", "fit")
_OPTIONAL_SECTIONS = ("parameters", "fit", "cluster")


class JobConfig(Section):
    """A whole job: what to fit, with which model, where the results go.

    Build one with :func:`load_config` or :meth:`from_dict`; both validate
    everything that can be checked without reading the data.
    """

    input: InputConfig
    model: ModelConfig
    parameters: dict[str, ParameterConfig] = Field(default_factory=dict)
    guess: Flag = False
    init: Path | None = None
    fit: FitConfig = Field(default_factory=FitConfig)
    output: OutputConfig
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    _resolve_init = field_validator("init")(resolve_path)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        # `parameters:` with every entry commented out reads as null: treat it as empty.
        if isinstance(data, Mapping):
            data = {k: ({} if v is None and k in _OPTIONAL_SECTIONS else v)
                    for k, v in data.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | os.PathLike | None = None,
                  *, check_paths: bool = True) -> JobConfig:
        """Validate a config mapping (as read from YAML) into a JobConfig.

        Parameters
        ----------
        data : mapping
            The config sections.
        base_dir : path-like, optional
            Folder that relative paths resolve against (default: the working directory).
        check_paths : bool
            Check that the input exists and the output folder is writable.

        Raises
        ------
        ConfigError
            Naming the dotted key of every problem found.
        """
        if not isinstance(data, Mapping):
            fail((), "the config must be a mapping of sections (input, model, output, ...), "
                     f"got {describe(data)}")
        base = Path(base_dir if base_dir is not None else Path.cwd()).resolve()
        try:
            config = cls.model_validate(data, context={"base_dir": base})
        except ValidationError as exc:
            raise ConfigProblems([translate(err, fields_at, SECTION_NAMES)
                                  for err in exc.errors()]) from None
        _check_job(config, check_paths=check_paths)
        return config

    def build_model(self):
        """The :class:`~batchfit.models.Model` this config describes.

        Raises
        ------
        ConfigError
            If a component type is unknown, a function does not import, or an
            expression is invalid; the message names the key.
        """
        use_python_path(self.model.python_path, self.model.function)
        return build_model(self.model)

    def build_params(self, model=None):
        """The template :class:`~batchfit.Parameters`: model defaults + ``parameters:``.

        Model parameters come first, in model order, then the extra parameters
        that expressions use. ``model`` saves building it again when the caller has it.
        """
        from batchfit import Parameters

        template = (model if model is not None else self.build_model()).make_params()
        params = Parameters()
        extras = [n for n in self.parameters if n not in template]
        for name in [*template, *extras]:
            params.add(name, **merged(template.get(name), self.parameters.get(name)))
        return params

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the resolved sections that affect the results.

        The cluster, the output location, the input chunks and
        ``model.python_path`` are left out: they never change the numbers.
        """
        data = self.to_dict()
        picked = {key: data[key] for key in RESULT_SECTIONS}
        picked["input"].pop("chunks")
        picked["model"].pop("python_path")
        text = json.dumps(picked, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The resolved config (absolute paths, defaults filled in) as plain JSON data."""
        return self.model_dump(mode="json")


SECTION_NAMES = frozenset(JobConfig.model_fields)
"""The top-level sections of a job config."""


def _check_job(config: JobConfig, *, check_paths: bool) -> None:
    from batchfit.core.expr import TieSet

    if check_paths:
        check_job_paths(config.input, config.model, config.init, config.output)
    check_init_output(config.init, config.output)
    use_python_path(config.model.python_path, config.model.function)
    model = build_model(config.model)
    check_parameter_names(config.parameters, model.param_names)
    try:
        params = config.build_params(model)
        TieSet(params)  # cycles
    except (ParameterError, ExpressionError) as exc:
        fail(("parameters",), str(exc))
    check_store_names(params, config.output.covariance, config.parameters)
    if config.fit.engine == "anneal":
        check_anneal_bounds(params)
    if config.fit.cost == "poisson" and config.input.sigma:
        fail(("fit", "cost"), "'poisson' fits counts without sigma (the Poisson variance is "
                              "the model itself); remove input.sigma, or use cost: chisqr")


def fields_at(loc: Sequence[Any]) -> list[str]:
    """The field names of the section at ``loc`` (for did-you-mean suggestions)."""
    cls: type[BaseModel] | None = JobConfig
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        if cls is JobConfig and part == "parameters":
            cls = ParameterConfig
            continue
        if cls is ParameterConfig:
            continue  # the key below `parameters` is a parameter name
        field = cls.model_fields.get(part)
        cls = _section_class(field.annotation) if field else None
    return list(cls.model_fields) if cls else []


def _section_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _section_class(arg)
        if found:
            return found
    return None
