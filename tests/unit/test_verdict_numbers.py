"""Numbers a verdict rests on: NaN / missing values never pass, and reports are strict JSON."""
from __future__ import annotations

import json
import math

import pytest

from icltest.report.json import dumps_report, write_json
from icltest.schema.expect import parse_comparison

COMPARISONS = [">= 0.5", "> 0.5", "<= 0.5", "< 0.5", "== 0.5", "!= 0.5", {"between": [0.2, 0.6]},
               ">= -1e300", "<= 1e300", "!= 1e300", {"between": [-1e300, 1e300]}]


@pytest.mark.parametrize("text", COMPARISONS, ids=str)
@pytest.mark.parametrize("value", [math.nan, -math.nan, None, "nan"], ids=repr)
def test_no_evidence_never_passes_any_operator(text, value):
    comparison = parse_comparison(text)
    assert comparison.check(value) is False
    assert comparison.margin(value) == -math.inf  # the worst margin: reported as closest to failing


@pytest.mark.parametrize("text, value, expected", [
    (">= 0.5", 0.5, True), ("> 0.5", 0.5, False), ("<= 0.5", 0.5, True), ("< 0.5", 0.5, False),
    ("== 0.5", 0.5, True), ("!= 0.5", 0.5, False), ("!= 0.5", 0.4, True), ({"between": [0.2, 0.6]}, 0.6, True),
    (">= 1000000", math.inf, True), ("<= 0", -math.inf, True), ({"between": [0.2, 0.6]}, math.inf, False),
])
def test_finite_and_infinite_values_compare_as_numbers(text, value, expected):
    assert parse_comparison(text).check(value) is expected


def test_a_nan_bound_is_a_spec_error_not_a_claim_that_can_never_pass():
    with pytest.raises(ValueError, match="not NaN"):
        parse_comparison({"between": [math.nan, 1.0]})


def _strict_loads(text: str) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_report_json_is_strict_and_names_every_non_finite_number(tmp_path) -> None:
    report = {
        "summary": {"claims": 1},
        "claims": [{"id": "a/b", "value": math.nan, "details": {"control": {"z": math.inf, "p": 0.05,
                                                                           "draws": [1.0, -math.inf]}}}],
        "env": {"path": tmp_path},
    }
    path = tmp_path / "r.json"
    write_json(report, path)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = _strict_loads(text)
    claim = loaded["claims"][0]
    assert claim["value"] is None and claim["details"]["control"]["z"] is None
    assert claim["details"]["control"]["p"] == 0.05 and claim["details"]["control"]["draws"] == [1.0, None]
    assert loaded["nonfinite"] == {"/claims/0/value": "nan", "/claims/0/details/control/z": "inf",
                                   "/claims/0/details/control/draws/1": "-inf"}
    assert loaded["env"]["path"] == str(tmp_path)
    assert report["claims"][0]["details"]["control"]["z"] == math.inf  # the caller's dict is left alone


def test_json_pointer_escapes_and_numpy_numbers() -> None:
    np = pytest.importorskip("numpy")
    text = dumps_report({"claims": [], "x": {"a/b~c": np.float32("nan"), "n": np.int64(3), "f": np.float64(0.25)}})
    loaded = _strict_loads(text)
    assert loaded["nonfinite"] == {"/x/a~1b~0c": "nan"}
    assert loaded["x"]["n"] == 3 and isinstance(loaded["x"]["n"], int) and loaded["x"]["f"] == 0.25
    assert _strict_loads(dumps_report({"claims": []}))["nonfinite"] == {}
