"""Spec files that are valid YAML but hostile or self-contradictory: each is one located SpecError.

Duplicate heads would give two pytest items the same id; YAML aliases can expand a small file
exponentially ("billion laughs") or refer to themselves; deep nesting and huge numbers crash the
YAML library itself. None of them may hang, exhaust memory or escape as a Python exception.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from icltest.schema import SpecError, load_spec

HEAD = "schema_version: 1\nmodel: smollm2-135m\nclaims:\n"


def _error(tmp_path: Path, text: str) -> SpecError:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value


def _line_col(text: str, needle: str, nth: int = 1) -> str:
    """``line:col`` (1-based) of the nth occurrence of ``needle`` in ``text``."""
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return f"{line}:{at - (text.rfind(chr(10), 0, at) + 1) + 1}"


def test_a_head_listed_twice_is_an_error_at_the_second(tmp_path: Path) -> None:
    text = HEAD + ("  - id: a\n    kind: head_score\n    score: induction\n    heads: [18.6, 17.3, 'L18H6']\n"
                   "    expect: '>= 0.5'\n"
                   "  - id: b\n    kind: ablation\n    heads: [1.0, 2.0, 1.0]\n    method: zero\n"
                   "    metric: {name: repeated_token_loss}\n    expect: {increase: '>= 0'}\n")
    error = _error(tmp_path, text)
    where = str(tmp_path / "s.yaml")
    assert [str(p) for p in error.problems] == [
        f"{where}:{_line_col(text, chr(39) + 'L18H6')}: claims[0].heads[2]: head L18H6 is listed twice (first at "
        f"line {_line_col(text, '18.6').replace(':', ', col ')}); each listed head is its own pytest item",
        f"{where}:{_line_col(text, '1.0', 2)}: claims[1].heads[2]: head L1H0 is listed twice (first at "
        f"line {_line_col(text, '1.0').replace(':', ', col ')}); each listed head is its own pytest item",
    ]


def test_alias_bomb_is_refused_quickly_at_the_value_that_explodes(tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdef", "bcdefg"):
        levels.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    text = "schema_version: 1\n" + "\n".join(levels) + "\nclaims: []\n"  # e: 111111 values, g: 10^7
    start = time.perf_counter()
    error = _error(tmp_path, text)
    assert time.perf_counter() - start < 2
    (problem,) = error.problems
    assert problem.where == f"{tmp_path / 's.yaml'}:{_line_col(text, '&e')}" and problem.key == "e"
    assert "YAML aliases expand this value to more than 100000 values" in problem.message


@pytest.mark.parametrize("text, needle, key", [
    ("schema_version: 1\nclaims: &c [1, *c]\n", "&c", "claims"),
    ("schema_version: 1\nmodel: &m {id: x, also: *m}\nclaims: []\n", "&m", "model"),
])
def test_self_referencing_alias_is_a_located_error(tmp_path: Path, text: str, needle: str, key: str) -> None:
    (problem,) = _error(tmp_path, text).problems
    assert problem.where == f"{tmp_path / 's.yaml'}:{_line_col(text, needle)}" and problem.key == key
    assert "refers to itself" in problem.message


@pytest.mark.parametrize("depth", [100, 10_000])
def test_deep_nesting_is_a_located_error(tmp_path: Path, depth: int) -> None:
    text = "schema_version: 1\nclaims: " + "[" * depth + "]" * depth + "\n"
    (problem,) = _error(tmp_path, text).problems
    assert problem.where.startswith(f"{tmp_path / 's.yaml'}:2:")
    assert "nested more than 64 levels deep" in problem.message


def test_a_number_too_long_to_read_is_a_located_error(tmp_path: Path) -> None:
    text = HEAD + ("  - id: a\n    kind: head_score\n    score: induction\n    heads: [1.0]\n    expect: '>= 0.5'\n"
                   "    probe: {kind: repeated_random, seed: " + "9" * 5000 + "}\n")
    (problem,) = _error(tmp_path, text).problems
    assert problem.where == f"{tmp_path / 's.yaml'}:{_line_col(text, '9999')}"
    assert problem.key == "claims[0].probe.seed" and "cannot read this value" in problem.message


def test_control_characters_are_a_located_error(tmp_path: Path) -> None:
    text = "schema_version: 1\nclaims:\n  - id: a\x00b\n"
    (problem,) = _error(tmp_path, text).problems
    assert problem.where == f"{tmp_path / 's.yaml'}:3:10" and "#x0000" in problem.message


def test_non_utf8_bytes_are_located_to_their_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"schema_version: 1\nclaims:\n  - id: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem.where == f"{path}:3:12" and "byte 0xe9" in problem.message and "UTF-8" in problem.message
