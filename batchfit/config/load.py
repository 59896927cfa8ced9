"""Reading a YAML job file: :func:`load_config` and the file/line of each problem.

Every problem is a :class:`~batchfit.errors.ConfigError` whose message names
the file, the line when known, and the dotted key::

    cube.yaml:14: fit.max_nfev: expected an integer, got 'lots'
    cube.yaml:13: fit: unknown key 'max_nfv'; did you mean 'max_nfev'?
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from batchfit.config.job import JobConfig
from batchfit.config.problems import ConfigProblems, capped, dotted
from batchfit.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than this is refused unread."""


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
    except ConfigProblems as exc:
        lines = [_located(path, text, loc, msg) for loc, msg in exc.problems]
        raise ConfigError(capped(lines)) from None



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
                              f"{dotted((*loc, key.value))}: key given twice")
        seen.add(key.value)
        _check_duplicate_keys(path, value, (*loc, key.value))


def _located(path: Path, text: str, loc: tuple, message: str) -> str:
    line = _yaml_line(text, loc)
    where = f"{path}:{line}" if line else str(path)
    return f"{where}: {dotted(loc)}: {message}" if loc else f"{where}: {message}"


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

