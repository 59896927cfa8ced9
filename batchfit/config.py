"""Job configs: YAML file -> frozen, validated objects.

:func:`load_config` reads a YAML job file (design section 6) into a
:class:`JobConfig`. Every problem is a :class:`~batchfit.errors.ConfigError`
whose message names the file, the line when known, and the dotted key::

    cube.yaml:14: fit.max_nfev: expected an integer, got 'lots'
    cube.yaml:13: fit: unknown key 'max_nfv'; did you mean 'max_nfev'?

Validation runs in two passes. The pydantic models check shapes and types
(unknown keys, wrong types, impossible values). :meth:`JobConfig.from_dict`
then checks what needs the outside world: the paths, the model (built once
with :mod:`batchfit.models`), the parameter names and expressions (compiled
with the safe :func:`batchfit.core.expr.compile_expression`) and the engine's
needs.

A ``function:`` model is imported by name (``package.module:function``), so
its module must be importable on the client and on every worker: install it,
put it on ``PYTHONPATH``, or list its folders under ``model.python_path``
(relative to the config file). :func:`extend_sys_path` adds those folders to
``sys.path``; the job layer calls it on the workers too.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
import json
import math
import operator
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from batchfit.errors import BatchfitError, ConfigError, ExpressionError, ParameterError

__all__ = [
    "ClusterConfig",
    "ComponentConfig",
    "FitConfig",
    "InputConfig",
    "JobConfig",
    "ModelConfig",
    "OutputConfig",
    "ParameterConfig",
    "extend_sys_path",
    "load_config",
]

JOB_QUEUES = ("slurm", "pbs", "sge", "lsf")
# Sections of the resolved config that change the numbers in the output store.
RESULT_SECTIONS = ("input", "model", "parameters", "guess", "init", "fit")
_OPTIONAL_SECTIONS = ("parameters", "fit", "cluster")
MAX_PROBLEMS = 6

# Strict: a YAML string such as "1.0" or "2000" is an error, not silently a number.
Number = Annotated[float, Field(strict=True, allow_inf_nan=True)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
Flag = Annotated[bool, Field(strict=True)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _resolve(path: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve ``path`` against the config's folder (``base_dir`` in the context)."""
    if path is None:
        return None
    base = Path((info.context or {}).get("base_dir", "."))
    return (base / path.expanduser()).resolve()


# ---------------------------------------------------------------- sections


class InputConfig(_Section):
    """``input:``: the image stack to fit and how to read it."""

    path: Path
    variable: str
    fit_dim: str
    sigma: str | None = None
    mask: str | None = None
    chunks: dict[str, Annotated[int, Field(strict=True)]] | None = None

    _resolve_path = field_validator("path")(_resolve)

    @field_validator("chunks")
    @classmethod
    def _check_chunks(cls, chunks: dict[str, int] | None) -> dict[str, int] | None:
        for dim, size in (chunks or {}).items():
            if size <= 0 and size != -1:
                raise ValueError(f"chunk size of {dim!r} must be a positive integer "
                                 f"(or -1 for the whole dim), got {size}")
        return chunks


class ComponentConfig(BaseModel):
    """One entry of ``model.components``: a built-in model by name.

    Keys other than ``type`` and ``prefix`` go to the model's factory
    (``degree`` for ``polynomial``, say) and are checked when it is built.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    prefix: str = ""

    @property
    def options(self) -> dict[str, Any]:
        """Factory keywords besides ``prefix``."""
        return dict(self.model_extra or {})


class ModelConfig(_Section):
    """``model:``: exactly one of ``components``, ``expression``, ``function``."""

    components: tuple[ComponentConfig, ...] | None = None
    expression: str | None = None
    function: str | None = None
    python_path: tuple[Path, ...] = ()

    @field_validator("python_path")
    @classmethod
    def _resolve_dirs(cls, paths: tuple[Path, ...], info: ValidationInfo) -> tuple[Path, ...]:
        return tuple(_resolve(p, info) for p in paths)

    @field_validator("function")
    @classmethod
    def _check_function(cls, ref: str | None) -> str | None:
        if ref is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", ref):
            raise ValueError(f"expected 'package.module:function', got {ref!r}")
        return ref

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelConfig:
        given = [k for k in ("components", "expression", "function") if getattr(self, k)]
        if len(given) != 1:
            got = "none" if not given else " and ".join(repr(k) for k in given)
            raise ValueError("give exactly one of 'components', 'expression' or "
                             f"'function'; got {got}")
        return self

    @property
    def reference(self) -> dict[str, Any]:
        """The JSON-able model reference that :func:`batchfit.models.from_reference` takes."""
        if self.components:
            return {"components": [c.model_dump(mode="json") for c in self.components]}
        if self.expression:
            return {"expression": self.expression}
        return {"function": self.function}


class ParameterConfig(_Section):
    """One entry of ``parameters:``; unset keys keep the model's defaults."""

    value: Number | None = None
    min: Number | None = None
    max: Number | None = None
    vary: Flag | None = None
    expr: str | None = None

    @field_validator("value")
    @classmethod
    def _finite_value(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value}")
        return value

    @field_validator("min", "max")
    @classmethod
    def _bound(cls, bound: float | None, info: ValidationInfo) -> float | None:
        # An infinite bound on its own side means "unbounded": store it as None, so the
        # resolved config stays plain JSON and `min: -.inf` fingerprints like no min.
        if bound is None or math.isfinite(bound):
            return bound
        if math.isinf(bound) and (bound < 0) == (info.field_name == "min"):
            return None
        raise ValueError(f"expected a number, or {'-' if info.field_name == 'min' else ''}"
                         f".inf for no bound, got {bound}")

    @model_validator(mode="after")
    def _ordered(self) -> ParameterConfig:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min={self.min:g} is not below max={self.max:g}; use min < max, "
                             "or vary: false to hold it fixed")
        return self

    def hints(self) -> dict[str, Any]:
        """The keys that were given (not None), as keywords for ``Parameters.add``."""
        return self.model_dump(exclude_none=True)


class FitConfig(_Section):
    """``fit:``: how each pixel is fitted."""

    engine: Literal["lm", "leastsq", "lbfgsb", "anneal"] = "lm"
    max_nfev: PositiveInt | None = None
    refit_failed: Flag = False
    cost: Literal["chisqr", "poisson"] = "chisqr"
    scale_covar: Flag = True


class OutputConfig(_Section):
    """``output:``: where the zarr result store goes."""

    path: Path
    covariance: Flag = False

    _resolve_path = field_validator("path")(_resolve)


_CLUSTER_KEYS = {
    "local": {"n_workers", "threads_per_worker", "memory_limit"},
    "address": {"address"},
    **{kind: {"jobs", "cores", "memory", "walltime", "queue", "account",
              "job_extra_directives", "python", "threads_per_worker"} for kind in JOB_QUEUES},
}
_REQUIRED_CLUSTER_KEYS = {"address": ("address",), **{k: ("jobs", "cores", "memory")
                                                      for k in JOB_QUEUES}}


class ClusterConfig(_Section):
    """``cluster:``: where the chunks run; it never changes the results."""

    kind: Literal["local", "address", "slurm", "pbs", "sge", "lsf"] = "local"
    n_workers: PositiveInt | None = None
    threads_per_worker: PositiveInt = 1
    memory_limit: str | None = None
    address: str | None = None
    jobs: PositiveInt | None = None
    cores: PositiveInt | None = None
    memory: str | None = None
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    job_extra_directives: tuple[str, ...] = ()
    python: str | None = None

    @field_validator("memory_limit", "memory")
    @classmethod
    def _check_memory(cls, size: str | None) -> str | None:
        if size is not None and not re.fullmatch(r"\d+(\.\d+)?\s*([kKMGTP]i?B|[kKMGT]|B)?", size):
            raise ValueError(f"expected a size such as '4GiB' or '500MB', got {size!r}")
        return size

    @field_validator("walltime")
    @classmethod
    def _check_walltime(cls, walltime: str | None) -> str | None:
        if walltime is not None and not re.fullmatch(r"(\d+-)?\d+(:\d\d){0,2}", walltime):
            raise ValueError(f"expected a time such as '01:30:00', got {walltime!r}")
        return walltime

    @model_validator(mode="after")
    def _check_kind(self) -> ClusterConfig:
        allowed = _CLUSTER_KEYS[self.kind] | {"kind"}
        fields = type(self).model_fields
        given = {k for k in self.model_fields_set if getattr(self, k) != fields[k].default}
        for key in sorted(given - allowed):
            users = [k for k, keys in _CLUSTER_KEYS.items() if key in keys]
            raise ValueError(f"key {key!r} is not used with kind {self.kind!r} "
                             f"(it is used with kind: {', '.join(users)})")
        for key in _REQUIRED_CLUSTER_KEYS.get(self.kind, ()):
            if getattr(self, key) is None:
                raise ValueError(f"kind {self.kind!r} needs the key {key!r}")
        return self


# ---------------------------------------------------------------- the job


class JobConfig(_Section):
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

    _resolve_init = field_validator("init")(_resolve)

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
            _fail((), "the config must be a mapping of sections (input, model, output, ...), "
                      f"got {_describe(data)}")
        base = Path(base_dir if base_dir is not None else Path.cwd()).resolve()
        try:
            config = cls.model_validate(data, context={"base_dir": base})
        except ValidationError as exc:
            raise _Problems([_translate(err) for err in exc.errors()]) from None
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
        extend_sys_path(self.model.python_path)
        return _build_model(self.model)

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
            params.add(name, **_merged(template.get(name), self.parameters.get(name)))
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


def load_config(path: str | os.PathLike) -> JobConfig:
    """Read and validate a YAML job config.

    Parameters
    ----------
    path : path-like
        The YAML file; relative paths inside it resolve against its folder.

    Returns
    -------
    JobConfig

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, not YAML, not a mapping, or any
        key is invalid. The message names the file, the line when known and
        the dotted key.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        _reject_aliases(path, text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_message(path, exc)) from None
    if data is None:
        raise ConfigError(f"{path}: the config is empty; expected the sections "
                          "input, model and output")
    _check_duplicate_keys(path, yaml.compose(text, Loader=yaml.SafeLoader))
    try:
        return JobConfig.from_dict(data, path.parent)
    except _Problems as exc:
        lines = [_located(path, text, loc, msg) for loc, msg in exc.problems]
        raise ConfigError(_capped(lines)) from None


def extend_sys_path(paths: Iterable[str | os.PathLike]) -> None:
    """Put each folder at the front of ``sys.path`` once (``model.python_path``)."""
    for folder in reversed([os.fspath(p) for p in paths]):
        if folder not in sys.path:
            sys.path.insert(0, folder)


# ---------------------------------------------------------------- problems


class _Problems(ConfigError):
    """ConfigError carrying ``(loc, message)`` pairs so the loader can add lines."""

    def __init__(self, problems: Sequence[tuple[tuple, str]]) -> None:
        self.problems = list(problems)
        super().__init__(_capped([f"{_dotted(loc)}: {msg}" if loc else msg
                                  for loc, msg in problems]))


def _capped(lines: Sequence[str]) -> str:
    """At most MAX_PROBLEMS lines, so a badly broken file gives a short message."""
    extra = len(lines) - MAX_PROBLEMS
    return "\n".join([*lines[:MAX_PROBLEMS], f"... and {extra} more"] if extra > 0 else lines)


def _fail(loc: tuple, message: str) -> NoReturn:
    raise _Problems([(loc, message)])


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value):
        return (f"the text {value!r}; write numbers without quotes, and with a dot "
                "before an exponent (YAML reads 1e-3 as text, 1.0e-3 as a number)")
    return repr(value)


_EXPECTED = {
    "int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
    "dict": "a mapping", "model": "a mapping", "list": "a list", "tuple": "a list",
    "path": "a path",
}


def _translate(err: Mapping[str, Any]) -> tuple[tuple, str]:
    """One pydantic error -> ``(loc, message)`` in the user's words."""
    loc = tuple(p for p in err["loc"] if p not in ("[key]",))
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        message = _unknown_key(loc[-1], _fields_at(loc[:-1]))
        return loc[:-1], message if len(loc) > 1 else message.replace("key", "section", 1)
    if kind == "missing":
        what = "section" if len(loc) == 1 and loc[0] in _SECTION_NAMES else "key"
        return loc, f"required {what} is missing"
    if kind == "value_error":
        return loc, str(err["ctx"]["error"])
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", err["ctx"]["expected"])
        return loc, _choice_message(value, options)
    family = kind.split("_")[0]
    if kind.endswith(("_type", "_parsing")) and family in _EXPECTED:
        return loc, f"expected {_EXPECTED[family]}, got {_describe(value)}"
    if kind in ("greater_than", "greater_than_equal"):
        return loc, f"{err['msg'].replace('Input should be', 'must be')}, got {value!r}"
    return loc, f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {_describe(value)}"


def _unknown_key(key: Any, fields: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), fields, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(fields)}"
    return f"unknown key {key!r}; {hint}"


def _choice_message(value: Any, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"expected one of {', '.join(map(repr, options))}, got {_describe(value)}{hint}"


def _fields_at(loc: Sequence[Any]) -> list[str]:
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


_SECTION_NAMES = frozenset(JobConfig.model_fields)


# ---------------------------------------------------------------- YAML


MAX_CONFIG_BYTES = 1 << 20


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a YAML config file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; a job config is a "
                          "short YAML file (data belongs in the input store)")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None


def _reject_aliases(path: Path, text: str) -> None:
    """Refuse YAML aliases: a few nested ``*refs`` expand exponentially (a "YAML bomb")."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1
            raise ConfigError(f"{path}:{line}: YAML aliases (*{event.anchor}) are not "
                              "supported in job configs; write the values out")


def _yaml_message(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return f"{where}: YAML syntax error: {detail}"


def _check_duplicate_keys(path: Path, node: Any, loc: tuple = ()) -> None:
    """Raise on a key given twice in one mapping (YAML would silently keep the last)."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicate_keys(path, item, (*loc, i))
    if not isinstance(node, yaml.MappingNode):
        return
    seen = set()
    for key, value in node.value:
        if key.value in seen:
            raise ConfigError(f"{path}:{key.start_mark.line + 1}: "
                              f"{_dotted((*loc, key.value))}: key given twice")
        seen.add(key.value)
        _check_duplicate_keys(path, value, (*loc, key.value))


def _located(path: Path, text: str, loc: tuple, message: str) -> str:
    line = _yaml_line(text, loc)
    where = f"{path}:{line}" if line else str(path)
    return f"{where}: {_dotted(loc)}: {message}" if loc else f"{where}: {message}"


def _yaml_line(text: str, loc: Sequence[Any]) -> int | None:
    """1-based line of the deepest key of ``loc`` found in the YAML text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = _yaml_child(node, part)
        if child is None:
            break
        line, node = child
    return line


def _yaml_child(node: Any, part: Any) -> tuple[int, Any] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return key.start_mark.line + 1, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    return None


# ---------------------------------------------------------------- job checks


def _check_job(config: JobConfig, *, check_paths: bool) -> None:
    from batchfit.core.expr import TieSet

    if check_paths:
        _check_paths(config)
    extend_sys_path(config.model.python_path)
    model = _build_model(config.model)
    _check_parameter_names(config, model.param_names)
    try:
        params = config.build_params(model)
        TieSet(params)  # cycles
    except (ParameterError, ExpressionError) as exc:
        _fail(("parameters",), str(exc))
    if config.fit.engine == "anneal":
        _check_anneal_bounds(params)
    if config.fit.cost == "poisson" and config.input.sigma:
        _fail(("fit", "cost"), "'poisson' fits counts without sigma (the Poisson variance is "
                               "the model itself); remove input.sigma, or use cost: chisqr")


def _check_paths(config: JobConfig) -> None:
    if not config.input.path.exists():
        _fail(("input", "path"), f"{config.input.path} does not exist")
    if config.init is not None and not config.init.exists():
        _fail(("init",), f"{config.init} does not exist (expected an earlier result store)")
    for i, folder in enumerate(config.model.python_path):
        if not folder.is_dir():
            _fail(("model", "python_path", i), f"{folder} is not a folder")
    out = config.output.path
    if out == config.input.path:
        _fail(("output", "path"), "is the input itself; choose another path")
    if out.exists() and not out.is_dir():
        _fail(("output", "path"), f"{out} exists and is not a folder (a zarr store)")
    parent = out.parent
    if parent.exists() and not parent.is_dir():
        _fail(("output", "path"), f"{parent} is a file, not a folder")
    if not parent.is_dir():
        _fail(("output", "path"), f"folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        _fail(("output", "path"), f"folder {parent} is not writable")


def _build_model(spec: ModelConfig):
    """Build the model, naming the config key that is wrong if it cannot be."""
    from batchfit import models

    if spec.components:
        parts = [_build_component(models, i, c) for i, c in enumerate(spec.components)]
        try:
            return functools.reduce(operator.add, parts)
        except BatchfitError as exc:
            _fail(("model", "components"), str(exc))
    key = "expression" if spec.expression else "function"
    try:
        return models.from_reference(spec.reference)
    except BatchfitError as exc:
        _fail(("model", key), str(exc))
    except Exception as exc:  # importing user code can raise anything
        _fail(("model", key), f"cannot import {spec.function!r}: {type(exc).__name__}: {exc}")


def _build_component(models: Any, i: int, spec: ComponentConfig):
    loc = ("model", "components", i)
    if spec.type not in models.FACTORIES:
        close = difflib.get_close_matches(spec.type, models.FACTORIES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        _fail((*loc, "type"), f"unknown model type {spec.type!r}; {hint}"
                              f"valid types: {', '.join(sorted(models.FACTORIES))}")
    valid = ["type", "prefix", *inspect.signature(models.FACTORIES[spec.type]).parameters]
    for key in spec.options:
        if key not in valid:
            _fail(loc, _unknown_key(key, list(dict.fromkeys(valid))))
    try:
        return models.get(spec.type, prefix=spec.prefix, **spec.options)
    except BatchfitError as exc:
        _fail(loc, str(exc))


def _check_parameter_names(config: JobConfig, model_names: Sequence[str]) -> None:
    """Every name under ``parameters:`` is the model's or used by some expression."""
    from batchfit.core.expr import compile_expression

    used: set[str] = set()
    compiled = {}
    for name, spec in config.parameters.items():
        if spec.expr is None:
            continue
        try:
            compiled[name] = compile_expression(spec.expr, what="expr")
        except ExpressionError as exc:
            _fail(("parameters", name, "expr"), str(exc).removeprefix("expr: "))
        used |= compiled[name].names
    known = set(model_names) | set(config.parameters)
    for name in config.parameters:
        if name not in model_names and name not in used:
            _fail(("parameters", name), _unknown_parameter(name, model_names))
    for name, expression in compiled.items():
        missing = sorted(expression.names - known)
        if missing:
            _fail(("parameters", name, "expr"),
                  f"uses {missing[0]!r}, which is neither a model parameter nor declared "
                  f"under parameters: add `{missing[0]}: {{value: ...}}`")


def _unknown_parameter(name: str, model_names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, model_names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return (f"unknown parameter {name!r}{hint} The model's parameters are "
            f"{', '.join(model_names)}; other names are allowed only when an "
            "expression uses them")


def _check_anneal_bounds(params: Mapping[str, Any]) -> None:
    for name, par in params.items():
        if par.vary and not par.expr and not (_finite(par.min) and _finite(par.max)):
            _fail(("fit", "engine"),
                  f"'anneal' needs a finite min and max on every varied parameter; "
                  f"parameters.{name} has min={par.min}, max={par.max} (give both, "
                  "or vary: false)")


def _finite(bound: float | None) -> bool:
    return bound is not None and math.isfinite(bound)


def _merged(default: Any, spec: ParameterConfig | None) -> dict[str, Any]:
    """Attributes of one template parameter: the model's, overridden by the config's."""
    attrs = {"value": None, "vary": True, "min": None, "max": None, "expr": None}
    if default is not None:
        attrs.update({k: getattr(default, k) for k in attrs})
    attrs.update(spec.hints() if spec is not None else {})
    return attrs
