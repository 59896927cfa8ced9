"""Constraint expressions are untrusted input.

Each hostile expression must be rejected with ExpressionError when it is added
to a Parameters set or, at the latest, when a fit is set up; nothing may run:
no file is opened, nothing is imported, the residual is never called.
Resource bombs must come back at once, as an error or as a number.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import signal

import numpy as np
import pytest

from batchfit import Minimizer, Parameters
from batchfit.core.expr import compile_expression
from batchfit.errors import ExpressionError

CANARY = "/tmp/batchfit_expr_canary"

HOSTILE = [
    f"open('{CANARY}', 'w')",
    f"open('{CANARY}').read()",
    "__import__('os')",
    "__import__('os').system('touch " + CANARY + "')",
    "().__class__.__bases__",
    "().__class__.__bases__[0].__subclasses__()",
    "(lambda: 1)()",
    "lambda: 0",
    "[x for x in range(10)]",
    "{x: 1 for x in range(3)}",
    "(x for x in range(3))",
    "{}.get",
    "{}",
    "[1, 2]",
    "{1, 2}",
    "\"a\".join",
    "'abc'",
    "b'abc'",
    "f'{a}'",
    "getattr(a, '__class__')",
    "eval('1')",
    "exec('1')",
    "compile('1', '', 'eval')",
    "globals()",
    "locals()",
    "vars()",
    "dir()",
    "type(a)",
    "breakpoint()",
    "input()",
    "print(a)",
    "exit()",
    "help()",
    "open",
    "__builtins__",
    "__class__",
    "os.system('ls')",
    "sin.__globals__",
    "1.0.__class__",
    "(1).__class__",
    "a.real",
    "a[0]",
    "max(*a)",
    "max(**a)",
    "\"x\" * 10**9",
    "while 1: pass",
    "for i in range(3): pass",
    "def f(): pass",
    "import os",
    "from os import system",
    "a; import os",
    "a; a",
    "(y := 2)",
    "yield a",
    "await a",
    "a if 1 else __import__('os')",
    "a +",
    "",
    "   ",
    "+".join(["a"] * 50_000),      # 100k characters
    "(" * 1000 + "a" + ")" * 1000,  # 1000 levels of nesting
]

# Resource bombs: they may be rejected, or evaluate (to inf, say), but quickly.
BOMBS = [
    "9**9**9**9",
    "10**10**10",
    "factorial(10**9)",
    "1 << 10**9",
    "(1 << 62) << 62",
    "2 ** 2 ** 2 ** 2 ** 2 ** 2",
    "-(-(-(-(-(-(-(-(-(-a)))))))))",
]

WATCHDOG_SECONDS = 20


@contextlib.contextmanager
def watchdog(seconds=WATCHDOG_SECONDS):
    """Turn a hang into a test failure (SIGALRM; not a timing measurement)."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"expression handling did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def no_side_effects(monkeypatch):
    """Record any call to open() or __import__ made while expressions are handled."""
    calls = []
    real_open = builtins.open

    def spy_open(file, *args, **kws):
        if str(file).startswith(CANARY):
            calls.append(("open", file))
        return real_open(file, *args, **kws)

    with contextlib.suppress(FileNotFoundError):
        os.remove(CANARY)
    monkeypatch.setattr(builtins, "open", spy_open)
    yield calls
    monkeypatch.setattr(builtins, "open", real_open)
    assert not os.path.exists(CANARY), "an expression created a file"


def _residual_never_called(params):
    raise AssertionError("the residual must not be called with an invalid expression")


def add_and_prepare(expr):
    """Add a tied parameter and set up a fit; return the Minimizer."""
    params = Parameters()
    params.add("a", value=1.0)
    params.add("b", value=2.0)
    params.add("bad", expr=expr)
    fitter = Minimizer(_residual_never_called, params)
    fitter.prepare_fit()
    return fitter


def test_there_are_enough_hostile_expressions():
    assert len(HOSTILE) >= 25


@pytest.mark.parametrize("expr", HOSTILE, ids=[repr(e)[:40] for e in HOSTILE])
def test_hostile_expression_rejected(expr, no_side_effects, monkeypatch):
    import_calls = []
    real_import = builtins.__import__

    def spy_import(name, *args, **kws):
        if name in ("os", "subprocess", "shutil"):
            import_calls.append(name)
        return real_import(name, *args, **kws)

    with watchdog():
        monkeypatch.setattr(builtins, "__import__", spy_import)
        try:
            with pytest.raises(ExpressionError) as info:
                add_and_prepare(expr)
        finally:
            monkeypatch.setattr(builtins, "__import__", real_import)
    assert not no_side_effects
    assert not import_calls, import_calls
    message = str(info.value)
    assert "bad" in message, f"error does not name the parameter: {message}"


@pytest.mark.parametrize("expr", [e for e in HOSTILE if e.strip() and len(e) < 200])
def test_hostile_expression_rejected_by_compile_unless_only_a_name(expr):
    """compile_expression alone rejects everything but bare unknown names."""
    with watchdog():
        try:
            compiled = compile_expression(expr)
        except ExpressionError:
            return
    # only a bare name can compile; it is then unknown at fit setup
    assert expr.isidentifier(), f"compile_expression accepted {expr!r}"
    assert compiled.names == {expr}


@pytest.mark.parametrize("expr", BOMBS)
def test_resource_bombs_return_at_once(expr, no_side_effects):
    with watchdog():
        try:
            fitter = add_and_prepare(expr)
        except ExpressionError:
            return
        value = fitter.params["bad"].value
    assert isinstance(value, float | np.floating), type(value)


@pytest.mark.parametrize("expr", BOMBS)
def test_resource_bombs_on_arrays(expr):
    with watchdog():
        try:
            compiled = compile_expression(expr)
        except ExpressionError:
            return
        out = np.asarray(compiled({"a": np.arange(3.0)}))
    assert out.dtype.kind in "fb"


def test_expression_cannot_reach_python_objects_through_user_names():
    """A parameter value is a number; ``a.__class__`` stays rejected even then."""
    with pytest.raises(ExpressionError):
        compile_expression("a.__class__.__subclasses__()")


def test_builtins_are_not_reachable_at_evaluation():
    compiled = compile_expression("a + 1")
    # even if the caller passes a hostile namespace entry, no builtin is exposed
    assert compiled({"a": 1.0}) == 2.0
    with pytest.raises(ExpressionError):
        compile_expression("__builtins__['open']")
