"""Model loading, architecture adapters and forward hooks."""
from __future__ import annotations
