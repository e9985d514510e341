"""Which YAML files the plugin collects: conventional names and folders (ini ``icl_spec_paths``) and
files named on the command line; never another tool's YAML that happens to have the same keys."""
from __future__ import annotations

import re
from pathlib import Path

import pytest


def _spec(model_dir: Path, claim_id: str = "a") -> str:
    return (f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\nclaims:\n  - id: {claim_id}\n    kind: head_rank\n"
            "    score: induction\n    head: 1.0\n    expect: {rank: '<= 1'}\n"
            "    probe: {kind: repeated_random, length: 10, repeats: 2, batch: 2}\n")


def _write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)


def _collected(result: pytest.RunResult) -> list[str]:
    return sorted(line for line in result.outlines if "::" in line)


FOREIGN = "# another tool's settings\nschema_version: 3\nclaims:\n  owner: ops\n  budget: 12\n"


def test_another_tools_yaml_is_not_collected(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    _write(pytester.path, "deploy/config.yaml", FOREIGN)
    _write(pytester.path, "config.yml", FOREIGN)
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert "error" not in result.stdout.str().lower(), result.stdout.str()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_conventional_names_and_folders_are_collected(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    for name in ("specs/one.yaml", "suites/two.yml", "icl_three.yaml", "sub/four.icl.yaml", "sub/icl_five.yml"):
        _write(pytester.path, name, _spec(circuit_dir, name.split("/")[-1].split(".")[0]))
    _write(pytester.path, "data/six.yaml", _spec(circuit_dir, "six"))  # a spec-shaped file elsewhere: not by default
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert _collected(result) == ["icl_three.yaml::icl_three[L1H0]", "specs/one.yaml::one[L1H0]",
                                  "sub/four.icl.yaml::four[L1H0]", "sub/icl_five.yml::icl_five[L1H0]",
                                  "suites/two.yml::two[L1H0]"]


def test_a_file_named_on_the_command_line_is_collected(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    _write(pytester.path, "data/six.yaml", _spec(circuit_dir, "six"))
    _write(pytester.path, "deploy/config.yaml", FOREIGN)
    result = pytester.runpytest("data/six.yaml", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert _collected(result) == ["data/six.yaml::six[L1H0]"]
    # named, and it looks like a spec: its problems are reported, located
    named = pytester.runpytest("deploy/config.yaml", "-p", "no:cacheprovider")
    named.assert_outcomes(errors=1)
    assert re.search(r"deploy/config\.yaml:2:\d+: schema_version: ", named.stdout.str()), named.stdout.str()


def test_ini_option_replaces_the_default_patterns(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makeini("[pytest]\nicl_spec_paths = claims/*.yaml\n    *.claims.yaml\n")
    _write(pytester.path, "claims/one.yaml", _spec(circuit_dir, "one"))
    _write(pytester.path, "x/two.claims.yaml", _spec(circuit_dir, "two"))
    _write(pytester.path, "icl_three.yaml", _spec(circuit_dir, "three"))
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert _collected(result) == ["claims/one.yaml::one[L1H0]", "x/two.claims.yaml::two[L1H0]"]


def test_only_the_head_of_a_file_is_read_to_decide(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    """``schema_version:`` must be a top-level key in the first 4 KB (by convention the first line)."""
    _write(pytester.path, "specs/late.yaml", "# " + "x" * 5000 + "\n" + _spec(circuit_dir, "late"))
    _write(pytester.path, "specs/indented.yaml", "config:\n  schema_version: 1\n  claims: []\n")
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout.str()
