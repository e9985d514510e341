"""Fixtures for plugin runs through pytester: a saved known-circuit model on disk."""
from __future__ import annotations

from pathlib import Path

import pytest



@pytest.fixture(scope="session")
def circuit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The constructed known-answer model saved as a local HF folder (loaded via `model: {path:}`)."""
    from icltest.testing import build_known_circuit

    return build_known_circuit().save(tmp_path_factory.mktemp("known-circuit"))
