"""The code-shape rules of issue 8, checked on batchfit's source with ``ast``.

- no import cycle between batchfit modules (module-level imports; imports
  inside functions and under ``if TYPE_CHECKING:`` run later or never, so
  they cannot make a cycle at import time);
- no import of a ``_private`` name from another batchfit module (neither
  ``from batchfit.x import _name`` nor ``x._name`` on an imported module);
- no module over 400 lines, no function whose body is over 40 lines (the
  docstring not counted);
- the README's "Where the code lives" lists every module, and only those.

Each checker is also run on a small synthetic package that breaks its rule,
so the checks are shown to be able to fail.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "batchfit"
MAX_MODULE_LINES = 400
MAX_BODY_LINES = 40


# ------------------------------------------------------------------ reading the package


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the package ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module is imported (not in functions or classes)."""
    for node in body:
        if isinstance(node, ast.If):
            if not _is_type_checking(node):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(h.body for h in node.handlers)):
                yield from _module_level(block)
        elif isinstance(node, ast.With):
            yield from _module_level(node.body)
        else:
            yield node


def _base(name: str, node: ast.ImportFrom, path: Path) -> str:
    """The absolute module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: set[str], *, everywhere: bool) -> Iterator[
        tuple[str, str, int]]:
    """``(target module, imported name or '', line)`` of each import of a known module."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = ast.walk(tree) if everywhere else _module_level(tree.body)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, "", node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _base(name, node, path)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    yield sub, "", node.lineno
                elif base in known:
                    yield base, alias.name, node.lineno


# ------------------------------------------------------------------ the checks


def import_cycles(root: Path) -> list[list[str]]:
    """Each import cycle between the package's modules (module-level imports), once."""
    mods = modules(root)
    graph = {n: sorted({t for t, _, _ in imports(n, p, set(mods), everywhere=False) if t != n})
             for n, p in mods.items()}
    cycles, seen = [], set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    key = frozenset(trail)
                    if key not in seen:
                        seen.add(key)
                        cycles.append(trail + [start])
                elif nxt not in trail and nxt > start:
                    stack.append((nxt, trail + [nxt]))
    return cycles


def private_imports(root: Path) -> list[str]:
    """``module:line imports target._name`` for each private name taken from another module."""
    mods = modules(root)
    found = []
    for name, path in mods.items():
        for target, what, line in imports(name, path, set(mods), everywhere=True):
            if _private(what) and target != name:
                found.append(f"{name}:{line} imports {target}.{what}")
        found += _private_attributes(name, path, set(mods))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_attributes(name: str, path: Path, known: set[str]) -> list[str]:
    """``alias._name`` where ``alias`` is another batchfit module imported by this one."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _base(name, node, path)
            aliases.update({a.asname or a.name: f"{base}.{a.name}" for a in node.names
                            if f"{base}.{a.name}" in known})
        elif isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname and a.name in known})
    return [f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and _private(node.attr)
            and isinstance(node.value, ast.Name)
            and aliases.get(node.value.id, name) != name]


def long_modules(root: Path, limit: int = MAX_MODULE_LINES) -> list[str]:
    """``module (n lines)`` for each module over ``limit`` lines."""
    found = []
    for name, path in modules(root).items():
        n = len(path.read_text().splitlines())
        if n > limit:
            found.append(f"{name} ({n} lines)")
    return found


def body_lines(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end of the function."""
    body = func.body
    if (len(body) > 1 and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1


def long_functions(root: Path, limit: int = MAX_BODY_LINES) -> list[str]:
    """``module:function (n lines)`` for each function whose body is over ``limit`` lines."""
    found = []
    for name, path in modules(root).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = body_lines(node)
                if n > limit:
                    found.append(f"{name}:{node.name} ({n} lines)")
    return found


# ------------------------------------------------------------------ batchfit


def test_no_import_cycles():
    cycles = import_cycles(ROOT)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_imports_across_modules():
    found = private_imports(ROOT)
    assert not found, "private names used from another module:\n" + "\n".join(found)


def test_module_and_function_sizes():
    found = long_modules(ROOT) + long_functions(ROOT)
    assert not found, (f"over {MAX_MODULE_LINES} lines per module or {MAX_BODY_LINES} per "
                       "function body:\n" + "\n".join(found))


def readme_modules(readme: Path) -> set[str]:
    """Module paths listed in the README's "Where the code lives" table."""
    text = readme.read_text()
    start = text.index("## Where the code lives")
    end = text.index("\n## ", start + 1)
    return set(re.findall(r"^\| `([\w/]+\.py)` \|", text[start:end], flags=re.M))


def test_readme_lists_every_module():
    files = {p.relative_to(ROOT).as_posix() for p in modules(ROOT).values()}
    listed = readme_modules(ROOT.parent / "README.md")
    assert files == listed, (f"README 'Where the code lives': missing {sorted(files - listed)}, "
                             f"stale {sorted(listed - files)}")


# ------------------------------------------------------------------ the checks can fail


@pytest.fixture
def bad_package(tmp_path) -> Path:
    """A package with a cycle, private imports, a long module and a long function."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from pkg.b import helper\n\n\ndef _hidden():\n    pass\n",
        "b.py": "import pkg.c\n\n\ndef helper():\n    return 1\n",
        "c.py": """
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from pkg import d  # never runs: no cycle through d
            from pkg import a


            def later():
                from pkg.a import _hidden  # runs late: no cycle, still a private import
                return _hidden
            """,
        "d.py": "import pkg.c\n",
        "sub/__init__.py": "",
        "sub/e.py": """
            from .. import a as mod
            from ..a import _hidden as h


            def f():
                return mod._hidden, h
            """,
        "long.py": "x = 1\n" * (MAX_MODULE_LINES + 1),
        "func.py": ("def f():\n    '''Doc.'''\n" + "    x = 1\n" * MAX_BODY_LINES
                    + "\n\ndef g():\n    '''Doc\n\n    more.\n    '''\n"
                    + "    x = 1\n" * (MAX_BODY_LINES + 1)),
    }
    for rel, text in files.items():
        (root / rel).write_text(textwrap.dedent(text))
    return root


def test_checker_finds_the_cycle(bad_package):
    assert import_cycles(bad_package) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_checker_finds_private_imports(bad_package):
    assert sorted(private_imports(bad_package)) == [
        "pkg.c:10 imports pkg.a._hidden",
        "pkg.sub.e:3 imports pkg.a._hidden",
        "pkg.sub.e:7 uses pkg.a._hidden",
    ]


def test_checker_finds_long_modules_and_functions(bad_package):
    assert long_modules(bad_package) == [f"pkg.long ({MAX_MODULE_LINES + 1} lines)"]
    assert long_functions(bad_package) == [f"pkg.func:g ({MAX_BODY_LINES + 1} lines)"]
