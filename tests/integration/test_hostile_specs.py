"""Malformed and hostile spec files (tests/data/hostile_specs/), each run through the plugin with one
good spec file: the hostile one is a located collection error (``file:line:col``), never a
traceback, an INTERNALERROR, a hang or a crash, and the good file's claims still run and pass.

The corpus: alias bombs and self / merge-key cycles, !!python and custom tags, duplicate keys and
heads, numbers Python cannot read or the schema refuses, non-UTF-8 bytes, a UTF-16 file, a NUL
byte, a list at the top level, 10k-deep flow and 200-deep block nesting, a file with only
schema_version, tabs, several documents, non-string keys, a bad timestamp, !!binary and !!set,
wrong types. Every file mentions schema_version in its head and is named on the command line, so
it is collected however malformed it is.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile_specs"
FILES = sorted(p.name for p in CORPUS.iterdir() if p.suffix == ".yaml")

GOOD = """\
  - id: induction
    kind: head_score
    score: induction
    heads: [1.0]
    expect: ">= 0.9"
  - id: previous
    kind: head_score
    score: previous_token
    heads: [0.0]
    expect: ">= 0.9"
"""


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 20, FILES


@pytest.mark.parametrize("name", FILES)
def test_hostile_spec_is_one_located_error_and_the_good_file_runs(pytester: pytest.Pytester, circuit_dir: Path,
                                                                   name: str) -> None:
    shutil.copyfile(CORPUS / name, pytester.path / name)
    pytester.makefile(".yaml", icl_good=(f"schema_version: 1\nmodel: {{path: '{circuit_dir}'}}\ndefaults:\n"
                                         "  probe: {kind: repeated_random, length: 20, repeats: 2, batch: 4, seed: 3}\n"
                                         f"claims:\n{GOOD}"))
    result = pytester.runpytest(name, "icl_good.yaml", "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    result.assert_outcomes(passed=2, errors=1)
    assert f"ERROR collecting {name}" in out, out
    assert re.search(rf"^{re.escape(name)}:\d+:\d+: ", out, re.M), out
    error = out.split(f"ERROR collecting {name}")[1].split("=====")[0]
    assert len(error.splitlines()) <= 12, error  # a short message, not pages of output
