"""Config problems: ``(dotted key, message)`` pairs and their wording for users.

A :class:`ConfigProblems` error carries every problem found with its location
(a tuple of keys and list indices), so that :func:`batchfit.config.load_config`
can add the YAML file and line to each one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from batchfit.errors import ConfigError

MAX_PROBLEMS = 6
"""At most this many problems are listed in one message."""

EXPECTED = {
    "int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
    "dict": "a mapping", "model": "a mapping", "list": "a list", "tuple": "a list",
    "path": "a path",
}
"""pydantic's type families in the user's words."""


class ConfigProblems(ConfigError):
    """ConfigError carrying ``(loc, message)`` pairs so the loader can add lines."""

    def __init__(self, problems: Sequence[tuple[tuple, str]]) -> None:
        self.problems = list(problems)
        super().__init__(capped([f"{dotted(loc)}: {msg}" if loc else msg
                                 for loc, msg in problems]))


def capped(lines: Sequence[str]) -> str:
    """At most MAX_PROBLEMS lines, so a badly broken file gives a short message."""
    extra = len(lines) - MAX_PROBLEMS
    return "\n".join([*lines[:MAX_PROBLEMS], f"... and {extra} more"] if extra > 0 else lines)


def fail(loc: tuple, message: str) -> NoReturn:
    """Raise :class:`ConfigProblems` with the one problem ``message`` at ``loc``."""
    raise ConfigProblems([(loc, message)])


def dotted(loc: Sequence[Any]) -> str:
    """``('model', 'components', 0, 'type')`` -> ``'model.components[0].type'``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(value: Any) -> str:
    """A YAML value as the user wrote it, with a hint for numbers written as text."""
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


def translate(err: Mapping[str, Any], fields_at: Callable[[Sequence[Any]], list[str]],
              sections: frozenset[str]) -> tuple[tuple, str]:
    """One pydantic error -> ``(loc, message)`` in the user's words.

    ``fields_at(loc)`` lists the keys valid at ``loc`` (for did-you-mean hints);
    ``sections`` are the top-level section names.
    """
    loc = tuple(p for p in err["loc"] if p not in ("[key]",))
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        message = unknown_key(loc[-1], fields_at(loc[:-1]))
        return loc[:-1], message if len(loc) > 1 else message.replace("key", "section", 1)
    if kind == "missing":
        what = "section" if len(loc) == 1 and loc[0] in sections else "key"
        return loc, f"required {what} is missing"
    if kind == "value_error":
        return loc, str(err["ctx"]["error"])
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", err["ctx"]["expected"])
        return loc, choice_message(value, options)
    family = kind.split("_")[0]
    if kind.endswith(("_type", "_parsing")) and family in EXPECTED:
        return loc, f"expected {EXPECTED[family]}, got {describe(value)}"
    if kind in ("greater_than", "greater_than_equal"):
        return loc, f"{err['msg'].replace('Input should be', 'must be')}, got {value!r}"
    return loc, f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {describe(value)}"


def unknown_key(key: Any, fields: Sequence[str]) -> str:
    """'unknown key' with the closest valid key, or the list of valid ones."""
    close = difflib.get_close_matches(str(key), fields, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(fields)}"
    return f"unknown key {key!r}; {hint}"


def choice_message(value: Any, options: Sequence[str]) -> str:
    """'expected one of ...' with the closest option."""
    close = difflib.get_close_matches(str(value), options, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"expected one of {', '.join(map(repr, options))}, got {describe(value)}{hint}"
