"""Fixtures for the batch-engine tests."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture
def bad_models_path(monkeypatch):
    """Put this folder on sys.path so ``bad_models:...`` references import."""
    monkeypatch.syspath_prepend(str(HERE))
