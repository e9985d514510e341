"""Root conftest: shared fixtures for the project's own tests (the plugin itself is the entry point).

`ICLTEST_REQUIRE_MODELS=1` (set by scripts/test.sh and CI) turns "real model weights not
installed" from a skip into a failure, so CI can never go green by skipping the real-model tests.
"""
from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]


def _require_models() -> bool:
    return os.environ.get("ICLTEST_REQUIRE_MODELS", "") not in ("", "0")


@pytest.fixture(scope="session")
def real_model(pytestconfig: pytest.Config):
    """Factory: load an aliased real model once per session, or skip/fail when its wheel is absent.

    Loads through this run's icltest session, so pytester runs of spec files in the same process
    reuse the model instead of loading it again.
    """
    from icltest.models.aliases import ModelUnavailable
    from icltest.models.loading import ModelSource
    from icltest.plugin import session_of

    session = session_of(pytestconfig)

    def load(alias: str):
        try:
            return session.model(ModelSource(alias=alias))
        except ModelUnavailable as exc:
            if _require_models():
                pytest.fail(str(exc))
            pytest.skip(str(exc))

    return load
