"""icltest: mechanistic claims about transformer language models, as pytest tests.

Importing the top-level package is cheap on purpose (no torch/transformers): the pytest
plugin imports it at start-up and must not slow down sessions that never touch a model.
"""
from __future__ import annotations

__version__ = "0.1.0"
