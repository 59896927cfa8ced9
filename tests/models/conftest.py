"""Shared fixtures for the model tests."""

from pathlib import Path

import pytest


@pytest.fixture
def user_module_path(monkeypatch):
    """Put this folder on sys.path so ``user_models:...`` references import."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
