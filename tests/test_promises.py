"""The README's Promises section names tests that exist (a promise without a test is none)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _promises() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Promises")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_promise_names_existing_tests():
    section = _promises()
    items = re.split(r"\n- ", section)[1:]
    assert len(items) >= 8
    for item in items:
        refs = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", item)
        assert refs, f"a promise names no test: {item[:60]!r}"
        for path, name in refs:
            assert (ROOT / path).is_file(), path
            if name:
                assert name in _test_names(ROOT / path), f"{path}::{name} does not exist"
            else:  # "(all)": the file has tests
                assert _test_names(ROOT / path), path
