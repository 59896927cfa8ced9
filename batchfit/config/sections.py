"""The sections of a job config as frozen pydantic models (README "Config reference").

Each model checks shapes and types only: unknown keys, wrong types and
impossible values. What needs the outside world (paths, the model, parameter
names, expressions) is checked by :mod:`batchfit.config.checks`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from batchfit.vocabulary import (
    JOB_QUEUE_KINDS,
    ClusterKind,
    Cost,
    Engine,
    parse_function_ref,
)

JOB_QUEUES = JOB_QUEUE_KINDS

# Strict: a YAML string such as "1.0" or "2000" is an error, not silently a number.
Number = Annotated[float, Field(strict=True, allow_inf_nan=True)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
Flag = Annotated[bool, Field(strict=True)]


class Section(BaseModel):
    """Base of the config sections: frozen, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def resolve_path(path: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve ``path`` against the config's folder (``base_dir`` in the context)."""
    if path is None:
        return None
    base = Path((info.context or {}).get("base_dir", "."))
    return (base / path.expanduser()).resolve()


class InputConfig(Section):
    """``input:``: the image stack to fit and how to read it."""

    path: Path
    variable: str
    fit_dim: str
    sigma: str | None = None
    mask: str | None = None
    chunks: dict[str, Annotated[int, Field(strict=True)]] | None = None

    _resolve_path = field_validator("path")(resolve_path)

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


class ModelConfig(Section):
    """``model:``: exactly one of ``components``, ``expression``, ``function``."""

    components: tuple[ComponentConfig, ...] | None = None
    expression: str | None = None
    function: str | None = None
    python_path: tuple[Path, ...] = ()

    @field_validator("python_path")
    @classmethod
    def _resolve_dirs(cls, paths: tuple[Path, ...], info: ValidationInfo) -> tuple[Path, ...]:
        return tuple(resolve_path(p, info) or p for p in paths)

    @field_validator("function")
    @classmethod
    def _check_function(cls, ref: str | None) -> str | None:
        if ref is not None and parse_function_ref(ref) is None:
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


class ParameterConfig(Section):
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


class FitConfig(Section):
    """``fit:``: how each pixel is fitted."""

    engine: Engine = "lm"
    max_nfev: PositiveInt | None = None
    refit_failed: Flag = False
    cost: Cost = "chisqr"
    scale_covar: Flag = True


class OutputConfig(Section):
    """``output:``: where the zarr result store goes."""

    path: Path
    covariance: Flag = False

    _resolve_path = field_validator("path")(resolve_path)


SCHEDULER_WORD = r"[A-Za-z0-9_.,:@%+=/-]+"
"""What ``queue`` and ``account`` may hold: one word a batch scheduler accepts."""
SCHEDULER_ARGS = rf"{SCHEDULER_WORD}( {SCHEDULER_WORD})*"
"""What each of ``job_extra_directives`` and ``python`` may hold: words and single spaces."""


def _scheduler_text(value: str, pattern: str, what: str) -> str:
    """``value`` if it matches ``pattern`` whole; else ValueError giving the pattern.

    These fields are written into the batch script that the job queue runs: a
    newline or a shell metacharacter in one would be a command of its own.
    """
    if not re.fullmatch(pattern, value):
        spaces = "" if pattern == SCHEDULER_WORD else " and single spaces between words"
        raise ValueError(
            f"{value!r} is not allowed in {what}: use letters, digits, the characters "
            f"_ . , : @ % + = / -{spaces} (allowed pattern: {pattern}); newlines, quotes "
            "and shell characters such as ; | & $ ` ( ) < > would reach the batch script")
    return value


_CLUSTER_KEYS = {
    "local": {"n_workers", "threads_per_worker", "memory_limit"},
    "address": {"address"},
    **{kind: {"jobs", "cores", "memory", "walltime", "queue", "account",
              "job_extra_directives", "python", "threads_per_worker"} for kind in JOB_QUEUES},
}
_REQUIRED_CLUSTER_KEYS = {"address": ("address",), **{k: ("jobs", "cores", "memory")
                                                      for k in JOB_QUEUES}}


class ClusterConfig(Section):
    """``cluster:``: where the chunks run; it never changes the results."""

    kind: ClusterKind = "local"
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
        if size is not None and not re.fullmatch(r"\d+(\.\d+)? ?([kKMGTP]i?B|[kKMGT]|B)?", size):
            raise ValueError(f"expected a size such as '4GiB' or '500MB', got {size!r}")
        return size

    @field_validator("walltime")
    @classmethod
    def _check_walltime(cls, walltime: str | None) -> str | None:
        if walltime is not None and not re.fullmatch(r"(\d+-)?\d+(:\d\d){0,2}", walltime):
            raise ValueError(f"expected a time such as '01:30:00', got {walltime!r}")
        return walltime

    @field_validator("queue", "account")
    @classmethod
    def _check_word(cls, value: str | None) -> str | None:
        return None if value is None else _scheduler_text(value, SCHEDULER_WORD, "a job script")

    @field_validator("python")
    @classmethod
    def _check_python(cls, value: str | None) -> str | None:
        return None if value is None else _scheduler_text(value, SCHEDULER_ARGS, "a job script")

    @field_validator("job_extra_directives")
    @classmethod
    def _check_directives(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            _scheduler_text(value, SCHEDULER_ARGS, "a job script")
        return values

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

