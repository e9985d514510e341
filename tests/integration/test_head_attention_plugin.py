"""head_attention end to end through pytester on the constructed model.

The known-circuit tokenizer splits on ``\\w+|[^\\w\\s]+`` and maps every book word to <bos> (id 0),
so the prompts tokenize and the model's heads do what they were built to do: L0H0 attends to the
previous token (from the last prompt token ":" that is "Answer", in the prompt_format span), and
heads with zero weights attend evenly, so their mass on a span is its share of the prompt's tokens,
counted here with the regex.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch  # noqa: F401  (imported before pytester snapshots sys.modules)
import transformers  # noqa: F401

WORD = re.compile(r"\w+|[^\w\s]+")


def _spec(circuit_dir: Path, claims: str) -> str:
    return f"schema_version: 1\nmodel: {{path: '{circuit_dir}'}}\nclaims:\n{claims}"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _claims(pytester: pytest.Pytester) -> dict[str, dict]:
    data = json.loads((pytester.path / "out.json").read_text())
    return {c["id"] + "[" + c["target"] + "]": c for c in data["claims"]}


def _answer_share(n: int, seed: int) -> float:
    """Mean share of the prompt's tokens that spell the answer inside the context.

    Every word is one token; no BOS is prepended, because the first word already maps to id 0,
    the BOS id (encode_prompts puts BOS first only when the prompt does not start with it).
    """
    from icltest.probes.books import build_book_prompts, load_book
    from icltest.testing import build_tokenizer

    items = load_book("open_book")
    batch = build_book_prompts("open_book", build_tokenizer(), n=n, seed=seed, shots=0)
    shares = []
    for prompt, q in zip(batch.prompts, batch.query_indices):
        item = items[q]
        mentions = len(re.findall(rf"(?<!\w){re.escape(item.answer)}(?!\w)", item.context))
        shares.append(mentions * len(WORD.findall(item.answer)) / len(WORD.findall(prompt)))
    return sum(shares) / len(shares)


def test_head_attention_claims_run_pass_and_fail(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, (
        "  - id: format\n    kind: head_attention\n    heads: [0.0, 1.3]\n    span: prompt_format\n    n: 6\n"
        "    expect: '>= 0.02'\n"
        "  - id: previous-is-not-question\n    kind: head_attention\n    heads: [0.0]\n    span: question\n    n: 6\n"
        "    expect: '>= 0.5'\n"
        "  - id: uniform\n    kind: head_attention\n    heads: [1.3]\n    span: answer\n    n: 6\n"
        "    expect: '>= 0'\n    over_uniform: '<= 1.001'\n"
        "  - id: best\n    kind: head_attention\n    heads: {top: 1, by: attention}\n    span: prompt_format\n"
        "    n: 6\n    expect: '>= 0.99'\n    over_uniform: '>= 5'\n"
    ))
    pytester.makefile(".yaml", icl_attn=text)
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    assert "icl_attn.yaml::previous-is-not-question[L0H0] FAILED" in out
    assert "attention of L0H0 on question = " in out
    claims = _claims(pytester)
    fmt = claims["format[L0H0]"]
    assert fmt["value"] > 0.99  # previous-token head: ":" -> "Answer"
    details = fmt["details"]
    assert details["mass_by_span"]["L0H0"]["question"] < 0.01
    assert details["top_heads"][0]["head"] == "L0H0"
    assert set(details["uniform"]) == {"question", "answer", "context", "demonstrations", "prompt_format"}
    assert details["uniform"]["demonstrations"] == 0.0  # shots 0
    assert details["split"] == "test" and details["bos"] == 0 and details["n"] == 6
    # a zero-weight head attends evenly: its mass on the answer is the answer's share of the tokens
    share = _answer_share(6, 0)
    uniform = claims["uniform[L1H3]"]
    assert uniform["value"] == pytest.approx(share, abs=1e-4)
    assert uniform["details"]["uniform"]["answer"] == pytest.approx(share, abs=1e-4)
    assert uniform["details"]["over_uniform"]["L1H3"] == pytest.approx(1.0, abs=1e-3)
    best = claims["best[top1]"]
    assert list(best["details"]["heads"]) == ["L0H0"]


def test_head_attention_population_reports_violations(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, "  - id: layer0\n    kind: head_attention\n    heads: {layers: 0}\n"
                              "    span: prompt_format\n    n: 4\n    expect: '>= 0.5'\n")
    pytester.makefile(".yaml", icl_attn=text)
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "1/4 heads meet attention on prompt_format >= 0.5" in out, out
    claim = _claims(pytester)["layer0[layers0]"]
    assert set(claim["details"]["violations"]) == {"L0H1", "L0H2", "L0H3"}


@pytest.mark.parametrize("claim, needle, fragment", [
    ("    shots: 2\n", "shots: 2", "shots: the prompts are up to"),
    ("    chat_template: 'yes'\n", "chat_template:", "chat_template: chat_template='yes' but the tokenizer has no chat template"),
])
def test_head_attention_errors_point_at_the_spec_line(pytester: pytest.Pytester, circuit_dir: Path, claim: str,
                                                      needle: str, fragment: str) -> None:
    text = _spec(circuit_dir, "  - id: bad\n    kind: head_attention\n    heads: [0.0]\n    span: question\n"
                              "    n: 4\n    expect: '>= 0'\n" + claim)
    pytester.makefile(".yaml", icl_attn_err=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert f"ClaimSpecError: icl_attn_err.yaml:{_line_of(text, needle)}:" in out, out
    assert fragment in out, out
    assert "Traceback" not in out


def test_head_out_of_range_is_a_collection_error(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, "  - id: far\n    kind: head_attention\n    heads: [5.0]\n    span: question\n"
                              "    expect: '>= 0'\n")
    pytester.makefile(".yaml", icl_attn_err=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert f"icl_attn_err.yaml:{_line_of(text, 'heads: [5.0]')}:" in out and "head L5H0 is out of range" in out, out
