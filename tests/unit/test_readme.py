"""Every YAML example in README.md is a valid spec (claim-list fragments get a header)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from icltest.schema import load_spec

README = Path(__file__).parents[2] / "README.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_yaml_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_yaml_example_validates(index: int, tmp_path: Path) -> None:
    text = BLOCKS[index]
    if "schema_version:" not in text:  # a fragment of a claims list
        text = "schema_version: 1\nmodel: smollm2-135m\nclaims:\n" + text
    path = tmp_path / "example.yaml"
    path.write_text(text)
    assert load_spec(path).spec.claims
