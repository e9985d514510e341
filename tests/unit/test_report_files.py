"""Report files are written atomically: a temp file in the same folder, then os.replace.

A reader (CI, a dashboard) must never see half a report, and a failed write must leave the last
good one in place.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from icltest.report import build_report, write_json, write_markdown

OLD = "the previous report\n"


@pytest.fixture
def report() -> dict:
    return build_report([{"id": "a", "kind": "head_score", "target": "L1H0", "passed": True, "value": 0.9}],
                        [{"file": "bad.yaml", "error": "bad.yaml:3:5: claims[0].expct: unknown key"}])


@pytest.mark.parametrize("writer", [write_json, write_markdown])
def test_written_through_a_temp_file_in_the_same_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        report: dict, writer) -> None:
    target = tmp_path / "out"
    target.write_text(OLD)
    calls: list[tuple[Path, Path]] = []
    real = os.replace

    def spy(src: str, dst: str) -> None:
        calls.append((Path(src), Path(dst)))
        assert Path(dst).read_text() == OLD  # untouched until the complete file replaces it
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    writer(report, target)
    assert len(calls) == 1 and calls[0][1] == target, calls
    assert calls[0][0].parent == target.parent and calls[0][0] != target
    assert target.read_text() != OLD
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp file left behind


@pytest.mark.parametrize("writer", [write_json, write_markdown])
def test_a_failed_write_keeps_the_previous_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  report: dict, writer) -> None:
    target = tmp_path / "out"
    target.write_text(OLD)

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        writer(report, target)
    assert target.read_text() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_markdown_lists_each_spec_error_with_its_message(report: dict) -> None:
    from icltest.report import render_markdown

    text = render_markdown(report)
    assert "## Spec files with errors" in text
    assert "- `bad.yaml`" in text and "bad.yaml:3:5: claims[0].expct: unknown key" in text
