"""`icltest diff A B`: the same suite on two models (or checkpoints) side by side.

A and B are report JSON files (``pytest --icl-json``) or baseline files; in run mode
(``icltest diff --suite S.yaml --models A B``) the suite runs on each model first. The diff shows

- a header: the two models, whether their weights are the same files (by ``weights_sha256``,
  not by name) and the environment facts that differ;
- every claim item side by side (value A, value B, delta, verdict A -> B), the ones that flipped
  first (pass -> fail, then fail -> pass), then the items only one side has;
- per-head maps (``report["maps"]``): the heads whose values moved most at the same index, and
  the heads matched across A and B by behaviour (see :mod:`icltest.diff.heads` for what that
  means and its limits); a baseline file keeps no maps, and the diff says so in one line;
- in run mode with ``--patterns``: heads matched by the correlation of their mean attention
  patterns on one shared probe (:mod:`icltest.diff.run`).

The diff is informational (exit 0); ``--fail-on-flip`` makes it a CI gate that exits 1 when a
claim went from pass to fail.
"""
from __future__ import annotations

from typing import Any

from icltest.diff.claims import compare_claims, compare_header
from icltest.diff.heads import POOR_MATCH, compare_heads
from icltest.diff.inputs import DiffInputError, Side, default_label, load_side, side_from_dict
from icltest.diff.render import render_markdown, render_text

__all__ = ["DiffInputError", "Side", "diff_sides", "load_side", "side_from_dict", "render_text", "render_markdown"]

DIFF_SCHEMA_VERSION = 1


def diff_sides(a: Side, b: Side, *, labels: tuple[str, str] | None = None, top: int = 5,
               poor: float = POOR_MATCH) -> dict[str, Any]:
    """The whole diff as a JSON-ready dict (what ``--json`` writes and the renderers read)."""
    a.label, b.label = labels if labels else (default_label(a), default_label(b))
    if a.label == b.label and not labels:
        a.label, b.label = f"{a.label} (A)", f"{b.label} (B)"
    return {
        "schema_version": DIFF_SCHEMA_VERSION,
        "header": compare_header(a, b),
        "claims": compare_claims(a, b),
        "heads": compare_heads(a, b, top=top, poor=poor),
    }
